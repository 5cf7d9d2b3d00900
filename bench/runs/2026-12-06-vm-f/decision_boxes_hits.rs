// 2026-12-06 (third session that day, same Zen 4 VM): decision boxes, how often a row falls in an earlier
// row's box. Copy to crates/forest/examples/zz_boxes.rs; KEYT=8 cargo run --release -p fedids-forest --example
// zz_boxes -- MODEL DATA 1024 MAXCHECKS   (output: decision_boxes.txt)
// Scratch: how often a row falls inside an earlier row's decision box (the intersection of the
// leaf cells of the trees that decided that row with early exits); a block sees the boxes of
// earlier blocks only (CACHES=2: even and odd blocks keep separate boxes).
use fedids_data::{load_path_with_schema, LoadOptions};
use fedids_forest::model;
use std::path::Path;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&a[1]).unwrap();
    let forest = model::decode(&bytes).unwrap();
    let schema = forest.schema();
    let opts = LoadOptions { format: Some(schema.format.clone()), task: schema.task, skip_invalid: false, unmapped_label: Default::default() };
    let data = load_path_with_schema(Path::new(&a[2]), schema, &opts).unwrap();
    let block: usize = a.get(3).map(|s| s.parse().unwrap()).unwrap_or(1024);
    let x = data.x;
    let nf = x.n_features();
    let n = x.n_rows();
    let trees = forest.trees();
    let nt = trees.len();
    let nc = forest.n_classes();
    let rows: Vec<Vec<f32>> = (0..n).map(|r| (0..nf).map(|f| x.column(f)[r]).collect()).collect();
    let kmax: usize = a.get(4).map(|s| s.parse().unwrap()).unwrap_or(16);
    let (mut hits, mut walks, mut checks) = (0usize, 0usize, 0usize);
    let keyt: usize = std::env::var("KEYT").map(|s| s.parse().unwrap()).unwrap_or(1);
    // boxes bucketed by the leaves of the first KEYT trees; a block sees the boxes of earlier blocks only
    let caches: usize = std::env::var("CACHES").map(|s| s.parse().unwrap()).unwrap_or(1);
    let mut all_buckets: Vec<std::collections::HashMap<Vec<usize>, Vec<(Vec<f32>, Vec<f32>, usize)>>> = (0..caches).map(|_| Default::default()).collect();
    let mut boxes_made = 0usize;
    let mut pending: Vec<(Vec<usize>, (Vec<f32>, Vec<f32>, usize))> = Vec::new();
    for r in 0..n {
        if r % block == 0 && r > 0 {
            let c = (r / block - 1) % caches;
            for (l, b) in pending.drain(..) { all_buckets[c].entry(l).or_default().push(b); boxes_made += 1; }
        }
        let buckets = &all_buckets[(r / block) % caches];
        let row = &rows[r];
        let l0: Vec<usize> = trees[..keyt].iter().map(|t| t.leaf_of(row)).collect();
        let l0c = l0.clone();
        if let Some(bs) = buckets.get(&l0) {
            let mut hit = false;
            for b in bs.iter().rev().take(kmax) {
                checks += 1;
                if (0..nf).all(|f| row[f] > b.0[f] && row[f] <= b.1[f]) { hit = true; break; }
            }
            if hit { hits += 1; walks += keyt; continue; }
        }
        let mut lo = vec![f32::NEG_INFINITY; nf];
        let mut hi = vec![f32::INFINITY; nf];
        let mut votes = vec![0usize; nc];
        let mut class = 0;
        for (t, tree) in trees.iter().enumerate() {
            let nodes = tree.nodes();
            let mut i = 0usize;
            while !nodes[i].is_leaf() {
                let nd = nodes[i];
                let f = nd.feature as usize;
                if row[f] > nd.threshold { lo[f] = lo[f].max(nd.threshold); i = nd.left as usize + 1; } else { hi[f] = hi[f].min(nd.threshold); i = nd.left as usize; }
            }
            walks += 1;
            let k = tree.predict_row(row) as usize;
            votes[k] += 1;
            let left = nt - t - 1;
            let (best, bk) = votes.iter().enumerate().map(|(k, &v)| (v, k)).max().unwrap();
            let second = votes.iter().enumerate().filter(|&(k, _)| k != bk).map(|(_, &v)| v).max().unwrap_or(0);
            class = bk;
            if best > second + left { break; }
        }
        pending.push((l0c, (lo, hi, class)));
    }
    println!("{caches} caches, {boxes_made} boxes; {n} rows, blocks of {block}, up to {kmax} boxes checked in the bucket of the first {keyt} trees' leaves: {hits} hits ({:.1}%), {:.2} checks per row, {:.1} walks per row", 100.0 * hits as f64 / n as f64, checks as f64 / n as f64, walks as f64 / n as f64);
}
