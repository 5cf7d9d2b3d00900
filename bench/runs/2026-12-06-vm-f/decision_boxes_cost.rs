// 2026-12-06 (third session that day): what building and checking a decision box costs. Copy to
// crates/forest/examples/zz_boxcost.rs; cargo run --release -p fedids-forest --example zz_boxcost -- MODEL DATA TREES
// Scratch: the cost of building a decision box (intersection of the leaf cells of the first T
// trees, from per-leaf sparse lists of (slot, lo key, hi key)) and of checking a row against a box
// (48 slots of u32 keys: lo < v <= hi, AVX-512), one thread.
use fedids_data::{load_path_with_schema, LoadOptions};
use fedids_forest::model;
use std::arch::x86_64::*;
use std::path::Path;
use std::time::Instant;
const W: usize = 48;
fn order_key(v: f32) -> u32 {
    let bits = (v + 0.0).to_bits();
    let key = bits ^ ((bits as i32 >> 31) as u32 | 1 << 31);
    if v.is_nan() { 0 } else { key }
}
#[target_feature(enable = "avx512f")]
unsafe fn inside(row: &[u32], lo: &[u32], hi: &[u32]) -> bool {
    let mut ok: u16 = 0xffff;
    for c in 0..3 {
        let v = _mm512_loadu_si512(row.as_ptr().add(16 * c) as *const _);
        let l = _mm512_loadu_si512(lo.as_ptr().add(16 * c) as *const _);
        let h = _mm512_loadu_si512(hi.as_ptr().add(16 * c) as *const _);
        ok &= _mm512_cmpge_epu32_mask(v, l) & _mm512_cmple_epu32_mask(v, h);
    }
    ok == 0xffff
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&a[1]).unwrap();
    let forest = model::decode(&bytes).unwrap();
    let schema = forest.schema();
    let opts = LoadOptions { format: Some(schema.format.clone()), task: schema.task, skip_invalid: false, unmapped_label: Default::default() };
    let data = load_path_with_schema(Path::new(&a[2]), schema, &opts).unwrap();
    let nt: usize = a[3].parse().unwrap();
    let x = data.x;
    let nf = x.n_features();
    let n = x.n_rows();
    let trees = forest.trees();
    let mut keys = vec![0u32; n * W];
    for f in 0..nf { for r in 0..n { keys[r * W + f] = order_key(x.column(f)[r]); } }
    // per tree: per node, the sparse list of constraints on its path (leaves only used)
    let mut leaf_lists: Vec<Vec<Vec<(u32, u32, u32)>>> = Vec::new(); // tree -> node -> list
    for t in trees {
        let nodes = t.nodes();
        let mut lists: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); nodes.len()];
        // dense per node along DFS is simpler: push constraints
        let mut stack = vec![(0usize, Vec::<(u32, u32, u32)>::new())];
        while let Some((i, path)) = stack.pop() {
            let nd = nodes[i];
            if nd.is_leaf() {
                // merge per feature
                let mut m: std::collections::BTreeMap<u32, (u32, u32)> = Default::default();
                for &(f, l, h) in &path { let e = m.entry(f).or_insert((0, u32::MAX)); e.0 = e.0.max(l); e.1 = e.1.min(h); }
                lists[nd.left as usize] = m.into_iter().map(|(f, (l, h))| (f, l, h)).collect();
                continue;
            }
            let k = order_key(nd.threshold);
            let mut lp = path.clone(); lp.push((nd.feature, 0, k));
            let mut rp = path; rp.push((nd.feature, k + 1, u32::MAX));
            stack.push((nd.left as usize, lp));
            stack.push((nd.left as usize + 1, rp));
        }
        leaf_lists.push(lists);
    }
    // the leaves of every row in the first nt trees
    let leaves: Vec<Vec<u32>> = (0..n).map(|r| { let row: Vec<f32> = (0..nf).map(|f| x.column(f)[r]).collect(); trees[..nt].iter().map(|t| t.leaf_of(&row) as u32).collect() }).collect();
    let entries: usize = leaves.iter().map(|ls| ls.iter().enumerate().map(|(t, &l)| leaf_lists[t][l as usize].len()).sum::<usize>()).sum();
    let mut lo = vec![0u32; n * W];
    let mut hi = vec![u32::MAX; n * W];
    let mut best_build = f64::MAX;
    for _ in 0..10 {
        let st = Instant::now();
        for r in 0..n {
            let (l, h) = (&mut lo[r * W..r * W + W], &mut hi[r * W..r * W + W]);
            l.fill(0); h.fill(u32::MAX);
            for (t, &leaf) in leaves[r].iter().enumerate() {
                for &(f, a, b) in &leaf_lists[t][leaf as usize] {
                    let f = f as usize;
                    l[f] = l[f].max(a); h[f] = h[f].min(b);
                }
            }
        }
        best_build = best_build.min(st.elapsed().as_secs_f64());
    }
    for r in 0..n { assert!(unsafe { inside(&keys[r * W..r * W + W], &lo[r * W..r * W + W], &hi[r * W..r * W + W]) }, "row {r} in its own box"); }
    // checks: each row against 32 boxes of other rows (pseudo-random)
    let mut best_check = f64::MAX;
    let mut found = 0usize;
    for _ in 0..10 {
        found = 0;
        let st = Instant::now();
        let mut s = 12345u64;
        for r in 0..n {
            for _ in 0..32 {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let b = (s >> 33) as usize % n;
                found += unsafe { inside(&keys[r * W..r * W + W], &lo[b * W..b * W + W], &hi[b * W..b * W + W]) } as usize;
            }
        }
        best_check = best_check.min(st.elapsed().as_secs_f64());
    }
    println!("{n} rows, boxes of the first {nt} trees: {:.1} constraints per row; build {:.1} ns per row; check {:.2} ns per check ({found} of {} random checks inside)",
        entries as f64 / n as f64, best_build * 1e9 / n as f64, best_check * 1e9 / (n * 32) as f64, n * 32);
}
