//! Scratch, second prototype of row-set evaluation: class codes in bit planes (any class
//! count), the index built with packed compares, and a first phase of K trees after which the
//! decided rows stop. Prints the parts' times and the rows left after K trees.
//!
//! `zz_sets MODEL DATA [RUNS] [K...]`
use std::arch::x86_64::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use fedids_data::{load_path_with_schema, LoadOptions};
use fedids_forest::{model, LEAF};

const ROWS: usize = 512;

#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct A([u64; 8]);

fn order_key(v: f32) -> u32 {
    let bits = (v + 0.0).to_bits();
    let key = bits ^ ((bits as i32 >> 31) as u32 | 1 << 31);
    if v.is_nan() {
        0
    } else {
        key
    }
}

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Rec {
    bm: u32,
    push: u16,
    pop: u16,
    ml: u16,
    m: [u16; 3],
}

struct STree {
    recs: Vec<Rec>,
}

static MASKS: A = A([0, 0, 0, 0, !0, !0, !0, !0]);

fn main() {
    let mut args = std::env::args().skip(1);
    let model_path = args.next().unwrap();
    let data_path = args.next().unwrap();
    let runs: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(20);
    let ks: Vec<usize> = args.map(|s| s.parse().unwrap()).collect();
    let bytes = std::fs::read(&model_path).unwrap();
    let forest = model::decode(&bytes).unwrap();
    let schema = forest.schema();
    let opts = LoadOptions {
        format: Some(schema.format.clone()),
        task: schema.task,
        skip_invalid: false,
        unmapped_label: Default::default(),
    };
    let data = load_path_with_schema(Path::new(&data_path), schema, &opts).unwrap();
    let x = data.x;
    let nf = x.n_features();
    let nc = forest.n_classes();
    let trees = forest.trees();
    let n_trees = trees.len();
    let codes = nc + 1; // + mixed
    let planes_c = (usize::BITS - (codes - 1).leading_zeros()) as usize;
    assert!(planes_c <= 3);
    let vote_planes = (usize::BITS - n_trees.leading_zeros()) as usize;

    let mut thr: HashMap<(u32, u32), u32> = HashMap::new();
    let mut list: Vec<(u32, u32)> = Vec::new();
    for t in trees {
        for n in t.nodes() {
            if n.feature != LEAF {
                let k = (n.feature, order_key(n.threshold));
                if let std::collections::hash_map::Entry::Vacant(e) = thr.entry(k) {
                    e.insert(0);
                    list.push(k);
                }
            }
        }
    }
    list.sort();
    for (i, k) in list.iter().enumerate() {
        thr.insert(*k, i as u32 + 1);
    }
    let stack_dummy = 255u32;
    let mut max_h = 0;
    let stree: Vec<STree> = trees
        .iter()
        .map(|t| {
            let nodes = t.nodes();
            let lv = t.leaf_values();
            let mut order = Vec::new();
            let mut st = vec![0usize];
            while let Some(i) = st.pop() {
                order.push(i);
                let n = nodes[i];
                if n.feature != LEAF {
                    st.push(n.left as usize + 1);
                    st.push(n.left as usize);
                }
            }
            let mut h = 0u32;
            let recs = order
                .iter()
                .map(|&i| {
                    let nd = nodes[i];
                    if nd.feature == LEAF {
                        let vals = &lv[nd.left as usize * nc..(nd.left as usize + 1) * nc];
                        let k = vals.iter().position(|&v| v != 0.0).unwrap();
                        let pure = vals[k] == 1.0 && vals[k + 1..].iter().all(|&v| v == 0.0);
                        let code = if pure { k } else { nc };
                        let r = Rec {
                            bm: 0,
                            push: (stack_dummy * 64) as u16,
                            pop: (h.wrapping_sub(2).min(stack_dummy) * 64) as u16,
                            ml: 32,
                            m: [0, 1, 2].map(|p| if code >> p & 1 == 1 { 32 } else { 0 }),
                        };
                        h = h.wrapping_sub(1);
                        r
                    } else {
                        let r = Rec {
                            bm: thr[&(nd.feature, order_key(nd.threshold))] * 64,
                            push: (h.wrapping_sub(1).min(stack_dummy) * 64) as u16,
                            pop: (stack_dummy * 64) as u16,
                            ml: 0,
                            m: [0; 3],
                        };
                        h += 1;
                        max_h = max_h.max(h);
                        r
                    }
                })
                .collect();
            STree { recs }
        })
        .collect();
    let mixed_trees = stree
        .iter()
        .filter(|t| t.recs.iter().any(|r| r.ml != 0 && {
            let code: usize = (0..3).map(|p| ((r.m[p] != 0) as usize) << p).sum();
            code == nc
        }))
        .count();
    println!(
        "{} trees, {:.0} nodes per tree, {} thresholds, stack {}, {} rows, {} classes, {} code planes, {} trees with mixed leaves",
        n_trees,
        stree.iter().map(|t| t.recs.len()).sum::<usize>() as f64 / n_trees as f64,
        list.len(),
        max_h,
        x.n_rows(),
        nc,
        planes_c,
        mixed_trees
    );

    let predictor = forest.predictor();
    let reference = predictor.predict(&x).unwrap();
    let n_rows = x.n_rows();
    let cols: Vec<&[f32]> = (0..nf).map(|f| x.column(f)).collect();
    let mut index = vec![A::default(); list.len() + 1];
    let mut keys = vec![0u32; nf * ROWS];
    let mut stack = vec![A::default(); 256];

    let mut ks = ks;
    if ks.is_empty() {
        ks.push(n_trees);
    }
    for &k_trees in &ks {
        let mut best = [f64::MAX; 5];
        let mut left_rows = Vec::new();
        for _ in 0..runs {
            let mut tb = 0.0;
            let mut tp = 0.0;
            let mut te = 0.0;
            let start = Instant::now();
            let mut out = vec![u32::MAX; n_rows];
            left_rows.clear();
            for b0 in (0..n_rows).step_by(ROWS) {
                let m = ROWS.min(n_rows - b0);
                let s0 = Instant::now();
                for f in 0..nf {
                    let k = &mut keys[f * ROWS..(f + 1) * ROWS];
                    for r in 0..m {
                        k[r] = order_key(cols[f][b0 + r]) ^ 0x8000_0000;
                    }
                    for kk in &mut k[m..] {
                        *kk = 0x8000_0000;
                    }
                }
                unsafe { build_index(&list, &keys, &mut index) };
                let s1 = Instant::now();
                tb += (s1 - s0).as_secs_f64();
                let mut all = [0u64; 8];
                for r in 0..m {
                    all[r / 64] |= 1 << (r % 64);
                }
                let mut votes = vec![[[0u64; 8]; 8]; nc];
                let mut mixed = [0u64; 8];
                for t in &stree[..k_trees] {
                    let pl = unsafe {
                        match planes_c {
                            1 => pass::<1>(&t.recs, &index, &mut stack, all),
                            2 => pass::<2>(&t.recs, &index, &mut stack, all),
                            _ => pass::<3>(&t.recs, &index, &mut stack, all),
                        }
                    };
                    for (c, v) in votes.iter_mut().enumerate() {
                        let mut s = all;
                        for (p, plane) in pl.iter().enumerate().take(planes_c) {
                            for w in 0..8 {
                                s[w] &= if c >> p & 1 == 1 { plane[w] } else { !plane[w] };
                            }
                        }
                        add_plane(&mut v[..vote_planes], &s);
                    }
                    let mut s = all;
                    for (p, plane) in pl.iter().enumerate().take(planes_c) {
                        for w in 0..8 {
                            s[w] &= if nc >> p & 1 == 1 { plane[w] } else { !plane[w] };
                        }
                    }
                    for w in 0..8 {
                        mixed[w] |= s[w];
                    }
                }
                let s2 = Instant::now();
                tp += (s2 - s1).as_secs_f64();
                let rest = (n_trees - k_trees) as u32;
                let mut counts = vec![0u32; nc];
                for r in 0..m {
                    let (w, bit) = (r / 64, r % 64);
                    if mixed[w] >> bit & 1 == 1 {
                        left_rows.push(b0 + r);
                        continue;
                    }
                    for (c, v) in votes.iter().enumerate() {
                        let mut n = 0;
                        for (p, plane) in v.iter().enumerate().take(vote_planes) {
                            n |= ((plane[w] >> bit & 1) as u32) << p;
                        }
                        counts[c] = n;
                    }
                    let mut lead = 0;
                    for c in 1..nc {
                        if counts[c] > counts[lead] {
                            lead = c;
                        }
                    }
                    let decided = (0..nc).all(|c| c == lead || counts[lead] > counts[c] + rest)
                        || (rest == 0);
                    if decided {
                        out[b0 + r] = lead as u32;
                    } else {
                        left_rows.push(b0 + r);
                    }
                }
                te += s2.elapsed().as_secs_f64();
            }
            let s3 = Instant::now();
            let left_x = x.select_rows(&left_rows);
            let s4 = Instant::now();
            let left_out = predictor.predict(&left_x).unwrap();
            let tl = s4.elapsed().as_secs_f64();
            for (&r, &c) in left_rows.iter().zip(&left_out) {
                out[r] = c;
            }
            let total = start.elapsed().as_secs_f64() - (s4 - s3).as_secs_f64();
            let bad = out.iter().zip(&reference).filter(|(a, b)| a != b).count();
            assert!(bad == 0, "K={k_trees}: {bad} outputs differ");
            for (b, v) in best.iter_mut().zip([total, tb, tp, te, tl]) {
                *b = b.min(v);
            }
        }
        let mut rbest = f64::MAX;
        for _ in 0..runs {
            let s = Instant::now();
            std::hint::black_box(predictor.predict(&x).unwrap());
            rbest = rbest.min(s.elapsed().as_secs_f64());
        }
        println!(
            "K={k_trees}: fastest total {:.3} ms (build {:.3}, pass {:.3}, votes {:.3}, left rows {} through the kept kernel {:.3}); kept predictor {:.3} ms; ratio {:.2}x",
            best[0] * 1e3,
            best[1] * 1e3,
            best[2] * 1e3,
            best[3] * 1e3,
            left_rows.len(),
            best[4] * 1e3,
            rbest * 1e3,
            rbest / best[0]
        );
    }
}

fn add_plane(planes: &mut [[u64; 8]], s: &[u64; 8]) {
    let mut carry = *s;
    for p in planes.iter_mut() {
        for w in 0..8 {
            let t = p[w] & carry[w];
            p[w] ^= carry[w];
            carry[w] = t;
        }
    }
}

/// Keys are stored with the sign bit flipped, so signed compares order them as unsigned.
#[target_feature(enable = "avx2")]
unsafe fn build_index(list: &[(u32, u32)], keys: &[u32], index: &mut [A]) {
    index[0] = A::default();
    let mut f_prev = u32::MAX;
    let mut kv = [_mm256_setzero_si256(); ROWS / 8];
    for (i, &(f, t)) in list.iter().enumerate() {
        if f != f_prev {
            f_prev = f;
            let base = keys.as_ptr().add(f as usize * ROWS);
            for (j, v) in kv.iter_mut().enumerate() {
                *v = _mm256_loadu_si256(base.add(j * 8) as *const _);
            }
        }
        let tv = _mm256_set1_epi32((t ^ 0x8000_0000) as i32);
        let dst = index[i + 1].0.as_mut_ptr() as *mut u32;
        for j in 0..ROWS / 32 {
            let c0 = _mm256_cmpgt_epi32(kv[4 * j], tv);
            let c1 = _mm256_cmpgt_epi32(kv[4 * j + 1], tv);
            let c2 = _mm256_cmpgt_epi32(kv[4 * j + 2], tv);
            let c3 = _mm256_cmpgt_epi32(kv[4 * j + 3], tv);
            // packs interleave 128-bit lanes: rows 0-3,8-11 | 4-7,12-15 ...
            let p01 = _mm256_packs_epi32(c0, c1);
            let p23 = _mm256_packs_epi32(c2, c3);
            let p = _mm256_packs_epi16(p01, p23);
            // byte order now: [0-3, 8-11, 16-19, 24-27 | 4-7, 12-15, 20-23, 28-31]
            let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            *dst.add(j) = _mm256_movemask_epi8(p) as u32;
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn pass<const P: usize>(
    recs: &[Rec],
    index: &[A],
    stack: &mut [A],
    all: [u64; 8],
) -> [[u64; 8]; 3] {
    let ip = index.as_ptr() as *const u8;
    let sp = stack.as_mut_ptr() as *mut u8;
    let mp = &MASKS as *const A as *const u8;
    let ld = |p: *const u8| _mm256_load_si256(p as *const __m256i);
    let mut c0 = _mm256_loadu_si256(all.as_ptr() as *const _);
    let mut c1 = _mm256_loadu_si256(all.as_ptr().add(4) as *const _);
    let (mut t0, mut t1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut a = [[_mm256_setzero_si256(); 2]; 3];
    for r in recs {
        let b = ip.add(r.bm as usize);
        let push = sp.add(r.push as usize);
        _mm256_store_si256(push as *mut __m256i, t0);
        _mm256_store_si256(push.add(32) as *mut __m256i, t1);
        let pop = sp.add(r.pop as usize);
        let ml = ld(mp.add(r.ml as usize));
        let b0 = ld(b);
        let b1 = ld(b.add(32));
        let l0 = _mm256_andnot_si256(b0, c0);
        let l1 = _mm256_andnot_si256(b1, c1);
        let r0 = _mm256_and_si256(b0, c0);
        let r1 = _mm256_and_si256(b1, c1);
        for p in 0..P {
            let m = ld(mp.add(r.m[p] as usize));
            a[p][0] = _mm256_or_si256(a[p][0], _mm256_and_si256(l0, m));
            a[p][1] = _mm256_or_si256(a[p][1], _mm256_and_si256(l1, m));
        }
        c0 = _mm256_blendv_epi8(l0, t0, ml);
        c1 = _mm256_blendv_epi8(l1, t1, ml);
        t0 = _mm256_blendv_epi8(r0, ld(pop), ml);
        t1 = _mm256_blendv_epi8(r1, ld(pop.add(32)), ml);
    }
    let mut out = [[0u64; 8]; 3];
    for p in 0..P {
        _mm256_storeu_si256(out[p].as_mut_ptr() as *mut _, a[p][0]);
        _mm256_storeu_si256(out[p].as_mut_ptr().add(4) as *mut _, a[p][1]);
    }
    out
}
