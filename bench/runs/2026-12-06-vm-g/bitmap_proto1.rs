//! Scratch: bitmap evaluation. A block of 512 rows; for every distinct (feature, threshold) of
//! the forest, the 512-bit set of the block's rows whose value exceeds it. A tree then runs once
//! per block, in preorder, carrying the set of rows at each node: right = set & B, left = set &
//! !B. Leaves OR their set into their class's vote set.
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
    slot: u32,
    leafslot: u32,
    push: u32,
    pop: u32,
    kleaf: u8,
    kc1: u8,
    kmix: u8,
    _pad: u8,
}

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Rec2 {
    bm: u32,
    push: u16,
    pop: u16,
    ml: u16,
    m1: u16,
    mm: u16,
    _pad: u16,
}

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Rec3 {
    bm: u32,
    end: u32,
    push: u16,
    pop: u16,
    spop: u16,
    ml: u16,
    m1: u16,
    mm: u16,
}

struct BTree {
    recs3: Vec<Rec3>,
    recs2: Vec<Rec2>,
    has_mix: bool,
    recs: Vec<Rec>,
    n: usize,
    /// leaf slot -> class (255 mixed)
    leaf_class: Vec<u8>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let model_path = args.next().unwrap();
    let data_path = args.next().unwrap();
    let runs: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(20);
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

    // Distinct thresholds.
    let mut thr: HashMap<(u32, u32), u32> = HashMap::new();
    let mut list: Vec<(u32, u32)> = Vec::new();
    let mut nodes_total = 0;
    for t in trees {
        nodes_total += t.nodes().len();
        for n in t.nodes() {
            if n.feature != LEAF {
                let k = (n.feature, order_key(n.threshold));
                thr.entry(k).or_insert_with(|| {
                    list.push(k);
                    0
                });
            }
        }
    }
    list.sort();
    for (i, k) in list.iter().enumerate() {
        thr.insert(*k, i as u32 + 1); // 0 = zero bitmap
    }
    let t_count = list.len();
    {
        let mut per = vec![0usize; nf];
        for &(f, _) in &list {
            per[f as usize] += 1;
        }
        let mut v: Vec<_> = per.iter().enumerate().filter(|(_, &c)| c > 0).map(|(f, &c)| (c, f)).collect();
        v.sort();
        v.reverse();
        println!("thresholds per feature: {:?}", v);
    }
    println!(
        "{} trees, {:.0} nodes per tree, {} distinct thresholds, {} rows, {} classes",
        trees.len(),
        nodes_total as f64 / trees.len() as f64,
        t_count,
        x.n_rows(),
        nc
    );

    // Compile trees to preorder records.
    let mut btrees = Vec::new();
    for t in trees {
        let nodes = t.nodes();
        let lv = t.leaf_values();
        let mut order = Vec::new(); // preorder of stored indices
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            order.push(i);
            let n = nodes[i];
            if n.feature != LEAF {
                stack.push(n.left as usize + 1);
                stack.push(n.left as usize);
            }
        }
        let mut pos = vec![0usize; nodes.len()];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = p;
        }
        let n = order.len();
        let dummy = n + 1;
        let mut recs = Vec::with_capacity(n);
        let mut leaf_class = Vec::new();
        for &i in &order {
            let nd = nodes[i];
            if nd.feature == LEAF {
                let vals = &lv[nd.left as usize * nc..(nd.left as usize + 1) * nc];
                let pure = vals.iter().position(|&v| v == 1.0).filter(|&k| {
                    vals.iter().enumerate().all(|(j, &v)| j == k || v == 0.0)
                });
                let cls = pure.map(|k| k as u8).unwrap_or(255);
                recs.push(Rec {
                    bm: 0,
                    slot: dummy as u32,
                    leafslot: leaf_class.len() as u32,
                    push: 0,
                    pop: 0,
                    kleaf: 0xff,
                    kc1: if cls == 1 { 0xff } else { 0 },
                    kmix: if cls == 255 { 0xff } else { 0 },
                    _pad: 0,
                });
                leaf_class.push(cls);
            } else {
                recs.push(Rec {
                    bm: thr[&(nd.feature, order_key(nd.threshold))],
                    slot: pos[nd.left as usize + 1] as u32,
                    leafslot: u32::MAX, // patched below
                    push: 0,
                    pop: 0,
                    kleaf: 0,
                    kc1: 0,
                    kmix: 0,
                    _pad: 0,
                });
            }
        }
        // Stack heights: pending right sets before each node in preorder.
        let mut h = 0u32;
        let stack_dummy = 200u32;
        for r in recs.iter_mut() {
            if r.kleaf == 0 {
                r.push = h.wrapping_sub(1).min(stack_dummy);
                r.pop = stack_dummy;
                h += 1;
            } else {
                r.push = stack_dummy;
                r.pop = h.wrapping_sub(2).min(stack_dummy);
                h = h.wrapping_sub(1);
            }
        }
        let nl = leaf_class.len() as u32;
        for r in &mut recs {
            if r.leafslot == u32::MAX {
                r.leafslot = nl;
            }
        }
        let recs2: Vec<Rec2> = recs
            .iter()
            .map(|r| Rec2 {
                bm: r.bm * 64,
                push: (r.push * 64) as u16,
                pop: (r.pop * 64) as u16,
                ml: if r.kleaf != 0 { 32 } else { 0 },
                m1: if r.kc1 != 0 { 32 } else { 0 },
                mm: if r.kmix != 0 { 32 } else { 0 },
                _pad: 0,
            })
            .collect();
        let has_mix = recs.iter().any(|r| r.kmix != 0);
        // subtree ends and skip pops
        let mut end = vec![0u32; n];
        for i in (0..n).rev() {
            end[i] = if recs[i].kleaf != 0 { i as u32 + 1 } else {
                // left child is i+1; right child starts at end[i+1]; its end is end of subtree
                end[end[i + 1] as usize]
            };
        }
        let mut hh = 0u32;
        let mut spop = vec![0u32; n];
        for (i, r) in recs.iter().enumerate() {
            spop[i] = hh.wrapping_sub(2).min(stack_dummy);
            if r.kleaf == 0 { hh += 1 } else { hh = hh.wrapping_sub(1) }
        }
        let recs3: Vec<Rec3> = recs
            .iter()
            .enumerate()
            .map(|(i, r)| Rec3 {
                bm: r.bm * 64,
                end: end[i],
                push: (r.push * 64) as u16,
                pop: (r.pop * 64) as u16,
                spop: (spop[i] * 64) as u16,
                ml: if r.kleaf != 0 { 32 } else { 0 },
                m1: if r.kc1 != 0 { 32 } else { 0 },
                mm: if r.kmix != 0 { 32 } else { 0 },
            })
            .collect();
        btrees.push(BTree {
            recs3,
            recs2,
            has_mix,
            recs,
            n,
            leaf_class,
        });
    }
    let max_n = btrees.iter().map(|b| b.n).max().unwrap();
    let max_l = btrees.iter().map(|b| b.leaf_class.len()).max().unwrap();

    // Reference.
    let predictor = forest.predictor();
    let reference = predictor.predict(&x).unwrap();

    let n_rows = x.n_rows();
    let cols: Vec<&[f32]> = (0..nf).map(|f| x.column(f)).collect();
    let mut index = vec![A::default(); t_count + 1];
    let mut keys = vec![0u32; nf * ROWS];
    let mut sets = vec![A::default(); max_n + 2];
    let mut leafsets = vec![A::default(); max_l + 1];
    let mut out = vec![0u32; n_rows];

    let mut stack = vec![A::default(); 256];
    // Stats: nodes reached by an empty set.
    {
        let (mut empty, mut total, mut tops) = (0usize, 0usize, 0usize);
        for b0 in (0..n_rows).step_by(ROWS) {
            let m = ROWS.min(n_rows - b0);
            for f in 0..nf {
                let k = &mut keys[f * ROWS..(f + 1) * ROWS];
                for r in 0..m {
                    k[r] = order_key(cols[f][b0 + r]);
                }
                for kk in &mut k[m..] {
                    *kk = 0;
                }
            }
            unsafe { build_index(&list, &keys, &mut index) };
            let mut all = [0u64; 8];
            for r in 0..m {
                all[r / 64] |= 1 << (r % 64);
            }
            for bt in &btrees {
                // recursive walk on preorder recs
                let mut st: Vec<([u64; 8], bool)> = vec![(all, false)];
                for r in &bt.recs {
                    let (cur, parent_empty) = st.pop().unwrap();
                    total += 1;
                    let e = cur.iter().all(|&w| w == 0);
                    if e {
                        empty += 1;
                        if !parent_empty {
                            tops += 1;
                        }
                    }
                    if r.kleaf == 0 {
                        let b = index[r.bm as usize].0;
                        let mut rr = [0u64; 8];
                        let mut ll = [0u64; 8];
                        for w in 0..8 {
                            rr[w] = cur[w] & b[w];
                            ll[w] = cur[w] & !b[w];
                        }
                        st.push((rr, e));
                        st.push((ll, e));
                    }
                }
            }
        }
        println!("nodes with an empty set: {:.1}%, top-most empty nodes {:.1}% of nodes", 100.0 * empty as f64 / total as f64, 100.0 * tops as f64 / total as f64);
    }
    println!("trees with mixed leaves: {}", btrees.iter().filter(|b| b.has_mix).count());
    for variant in ["v2", "e1", "e2", "e3"] {
        if variant != "leafstore" && nc != 2 {
            continue;
        }
        let mut best = [f64::MAX; 3];
        for _ in 0..runs {
            let mut t_build = 0.0;
            let mut t_trees = 0.0;
            let start = Instant::now();
            let mut mixed_rows = 0usize;
            for b0 in (0..n_rows).step_by(ROWS) {
                let m = ROWS.min(n_rows - b0);
                let s0 = Instant::now();
                for f in 0..nf {
                    let k = &mut keys[f * ROWS..(f + 1) * ROWS];
                    for r in 0..m {
                        k[r] = order_key(cols[f][b0 + r]);
                    }
                    for kk in &mut k[m..] {
                        *kk = 0;
                    }
                }
                unsafe { build_index(&list, &keys, &mut index) };
                let s1 = Instant::now();
                t_build += (s1 - s0).as_secs_f64();
                let mut all = [0u64; 8];
                for r in 0..m {
                    all[r / 64] |= 1 << (r % 64);
                }
                // votes: bit-sliced counters, 7 planes per class
                let mut planes = vec![[[0u64; 8]; 7]; nc];
                let mut mixed = [0u64; 8];
                for bt in &btrees {
                    let (acc1, mix) = unsafe {
                        if variant == "v3" {
                            if bt.has_mix {
                                pass_v3::<true>(&bt.recs3, &index, &mut stack, all)
                            } else {
                                pass_v3::<false>(&bt.recs3, &index, &mut stack, all)
                            }
                        } else if variant == "v2" {
                            if bt.has_mix {
                                pass_v2::<true, false, 0>(&bt.recs2, &index, &mut stack, all)
                            } else {
                                pass_v2::<false, false, 0>(&bt.recs2, &index, &mut stack, all)
                            }
                        } else if variant == "e1" {
                            pass_v2::<true, false, 1>(&bt.recs2, &index, &mut stack, all)
                        } else if variant == "e2" {
                            pass_v2::<true, false, 2>(&bt.recs2, &index, &mut stack, all)
                        } else if variant == "e3" {
                            pass_v2::<true, false, 3>(&bt.recs2, &index, &mut stack, all)
                        } else if variant == "regtop" {
                            pass_regtop(&bt.recs, &index, &mut stack, all)
                        } else if variant == "kmask" {
                            pass_kmask(&bt.recs, &index, &mut sets, all)
                        } else {
                            pass_leafstore(&bt.recs, &index, &mut sets, &mut leafsets, all)
                        }
                    };
                    if variant != "leafstore" {
                        add_plane(&mut planes[1], acc1);
                        for w in 0..8 {
                            mixed[w] |= mix[w];
                        }
                    } else {
                        let mut per = vec![[0u64; 8]; nc];
                        for (j, &c) in bt.leaf_class.iter().enumerate() {
                            let s = &leafsets[j].0;
                            let d = if c == 255 { &mut mixed } else { &mut per[c as usize] };
                            for w in 0..8 {
                                d[w] |= s[w];
                            }
                        }
                        for c in 0..nc {
                            add_plane(&mut planes[c], per[c]);
                        }
                    }
                }
                if variant == "kmask" {
                    // class 0 votes = trees - class 1 votes
                }
                t_trees += s1.elapsed().as_secs_f64();
                for r in 0..m {
                    let (w, bit) = (r / 64, r % 64);
                    if mixed[w] >> bit & 1 == 1 {
                        mixed_rows += 1;
                        let mut row = vec![0f32; nf];
                        x.row_into(b0 + r, &mut row);
                        let mut acc = vec![0f32; nc];
                        for t in trees {
                            for (a, v) in acc.iter_mut().zip(t.predict_proba_row(&row)) {
                                *a += v;
                            }
                        }
                        out[b0 + r] = fedids_forest::argmax_class(&acc) as u32;
                        continue;
                    }
                    let count = |c: usize| -> u32 {
                        (0..7).map(|p| ((planes[c][p][w] >> bit & 1) as u32) << p).sum()
                    };
                    if variant != "leafstore" {
                        let v1 = count(1);
                        let v0 = trees.len() as u32 - v1;
                        out[b0 + r] = (v1 > v0) as u32;
                    } else {
                        let mut bc = 0;
                        let mut bv = count(0);
                        for c in 1..nc {
                            let v = count(c);
                            if v > bv {
                                bv = v;
                                bc = c;
                            }
                        }
                        out[b0 + r] = bc as u32;
                    }
                }
            }
            let total = start.elapsed().as_secs_f64();
            best[0] = best[0].min(total);
            best[1] = best[1].min(t_build);
            best[2] = best[2].min(t_trees);
            let bad = out.iter().zip(&reference).filter(|(a, b)| a != b).count();
            assert!(bad == 0 || variant == "e1" || variant == "e2", "{variant}: {bad} outputs differ");
            if best[0] == total {
                eprintln!("{variant}: mixed rows {mixed_rows}, extract+fallback {:.3} ms", (total - t_build - t_trees) * 1e3);
            }
        }
        // reference timing
        let mut rbest = f64::MAX;
        for _ in 0..runs {
            let s = Instant::now();
            std::hint::black_box(predictor.predict(&x).unwrap());
            rbest = rbest.min(s.elapsed().as_secs_f64());
        }
        println!(
            "{variant}: fastest total {:.3} ms (build {:.3}, trees {:.3}); kept predictor {:.3} ms; ratio {:.2}x",
            best[0] * 1e3,
            best[1] * 1e3,
            best[2] * 1e3,
            rbest * 1e3,
            rbest / best[0]
        );
    }
}

fn add_plane(planes: &mut [[u64; 8]; 7], s: [u64; 8]) {
    let mut carry = s;
    for p in planes.iter_mut() {
        for w in 0..8 {
            let t = p[w] & carry[w];
            p[w] ^= carry[w];
            carry[w] = t;
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn build_index(list: &[(u32, u32)], keys: &[u32], index: &mut [A]) {
    index[0] = A::default();
    let mut f_prev = u32::MAX;
    let flip = _mm256_set1_epi32(i32::MIN);
    let mut kv = [_mm256_setzero_si256(); ROWS / 8];
    for (i, &(f, t)) in list.iter().enumerate() {
        if f != f_prev {
            f_prev = f;
            let base = keys.as_ptr().add(f as usize * ROWS);
            for (j, v) in kv.iter_mut().enumerate() {
                *v = _mm256_xor_si256(_mm256_loadu_si256(base.add(j * 8) as *const _), flip);
            }
        }
        let tv = _mm256_set1_epi32((t ^ 0x8000_0000) as i32);
        let dst = index[i + 1].0.as_mut_ptr() as *mut u8;
        for (j, v) in kv.iter().enumerate() {
            *dst.add(j) = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(*v, tv))) as u8;
        }
    }
}

#[inline(always)]
fn mask(flag: u8, bit: u8) -> u64 {
    ((flag >> bit & 1) as u64).wrapping_neg()
}

#[target_feature(enable = "avx2")]
unsafe fn pass_kmask(recs: &[Rec], index: &[A], sets: &mut [A], all: [u64; 8]) -> ([u64; 8], [u64; 8]) {
    let mut cur = all;
    let mut acc1 = [0u64; 8];
    let mut mix = [0u64; 8];
    let sp = sets.as_mut_ptr();
    for (i, r) in recs.iter().enumerate() {
        let b = &(*index.as_ptr().add(r.bm as usize)).0;
        let (ml, mc, mm) = (mask(r.kleaf, 0), mask(r.kc1, 0), mask(r.kmix, 0));
        let dst = &mut (*sp.add(r.slot as usize)).0;
        let mut l = [0u64; 8];
        for w in 0..8 {
            dst[w] = cur[w] & b[w];
            l[w] = cur[w] & !b[w];
        }
        let nxt = &(*sp.add(i + 1)).0;
        for w in 0..8 {
            acc1[w] |= l[w] & mc;
            mix[w] |= l[w] & mm;
            cur[w] = (l[w] & !ml) | (nxt[w] & ml);
        }
    }
    (acc1, mix)
}

#[target_feature(enable = "avx2")]
unsafe fn pass_leafstore(
    recs: &[Rec],
    index: &[A],
    sets: &mut [A],
    leafsets: &mut [A],
    all: [u64; 8],
) -> ([u64; 8], [u64; 8]) {
    let mut cur = all;
    let sp = sets.as_mut_ptr();
    let lp = leafsets.as_mut_ptr();
    for (i, r) in recs.iter().enumerate() {
        let b = &(*index.as_ptr().add(r.bm as usize)).0;
        let ml = mask(r.kleaf, 0);
        let dst = &mut (*sp.add(r.slot as usize)).0;
        let ld = &mut (*lp.add(r.leafslot as usize)).0;
        let mut l = [0u64; 8];
        for w in 0..8 {
            dst[w] = cur[w] & b[w];
            l[w] = cur[w] & !b[w];
            ld[w] = l[w];
        }
        let nxt = &(*sp.add(i + 1)).0;
        for w in 0..8 {
            cur[w] = (l[w] & !ml) | (nxt[w] & ml);
        }
    }
    ([0; 8], [0; 8])
}

#[target_feature(enable = "avx2")]
unsafe fn pass_regtop(recs: &[Rec], index: &[A], stack: &mut [A], all: [u64; 8]) -> ([u64; 8], [u64; 8]) {
    let mut cur = all;
    let mut top = [0u64; 8];
    let mut acc1 = [0u64; 8];
    let mut mix = [0u64; 8];
    let sp = stack.as_mut_ptr();
    for r in recs {
        let b = &(*index.as_ptr().add(r.bm as usize)).0;
        let (ml, mc, mm) = (mask(r.kleaf, 0), mask(r.kc1, 0), mask(r.kmix, 0));
        let dst = &mut (*sp.add(r.push as usize)).0;
        *dst = top;
        let popped = (*sp.add(r.pop as usize)).0;
        for w in 0..8 {
            let right = cur[w] & b[w];
            let l = cur[w] & !b[w];
            acc1[w] |= l & mc;
            mix[w] |= l & mm;
            cur[w] = (l & !ml) | (top[w] & ml);
            top[w] = (right & !ml) | (popped[w] & ml);
        }
    }
    (acc1, mix)
}

static MASKS: A = A([0, 0, 0, 0, !0, !0, !0, !0]);

#[target_feature(enable = "avx2")]
unsafe fn pass_v2<const MIX: bool, const NOPOP: bool, const E: u8>(
    recs: &[Rec2],
    index: &[A],
    stack: &mut [A],
    all: [u64; 8],
) -> ([u64; 8], [u64; 8]) {
    let ip = index.as_ptr() as *const u8;
    let sp = stack.as_mut_ptr() as *mut u8;
    let mp = &MASKS as *const A as *const u8;
    let ld = |p: *const u8| _mm256_load_si256(p as *const __m256i);
    let mut c0 = _mm256_loadu_si256(all.as_ptr() as *const _);
    let mut c1 = _mm256_loadu_si256(all.as_ptr().add(4) as *const _);
    let (mut t0, mut t1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let (mut x0, mut x1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for r in recs {
        let b = ip.add(r.bm as usize);
        let push = sp.add(r.push as usize);
        if E != 2 {
        _mm256_store_si256(push as *mut __m256i, t0);
        _mm256_store_si256(push.add(32) as *mut __m256i, t1);
        }
        let pop = if NOPOP { sp.add(200 * 64) } else { sp.add(r.pop as usize) };
        let ml = ld(mp.add(r.ml as usize));
        let m1 = ld(mp.add(r.m1 as usize));
        let b0 = ld(b);
        let b1 = ld(b.add(32));
        let l0 = _mm256_andnot_si256(b0, c0);
        let l1 = _mm256_andnot_si256(b1, c1);
        let r0 = _mm256_and_si256(b0, c0);
        let r1 = _mm256_and_si256(b1, c1);
        if E != 1 {
        a0 = _mm256_or_si256(a0, _mm256_and_si256(l0, m1));
        a1 = _mm256_or_si256(a1, _mm256_and_si256(l1, m1));
        if MIX {
            let mm = ld(mp.add(r.mm as usize));
            x0 = _mm256_or_si256(x0, _mm256_and_si256(l0, mm));
            x1 = _mm256_or_si256(x1, _mm256_and_si256(l1, mm));
        }
        }
        if E == 3 {
            let nl = _mm256_xor_si256(ml, _mm256_set1_epi32(-1));
            c0 = _mm256_or_si256(_mm256_and_si256(l0, nl), _mm256_and_si256(t0, ml));
            c1 = _mm256_or_si256(_mm256_and_si256(l1, nl), _mm256_and_si256(t1, ml));
            t0 = _mm256_or_si256(_mm256_and_si256(r0, nl), _mm256_and_si256(ld(pop), ml));
            t1 = _mm256_or_si256(_mm256_and_si256(r1, nl), _mm256_and_si256(ld(pop.add(32)), ml));
        } else {
        c0 = _mm256_blendv_epi8(l0, t0, ml);
        c1 = _mm256_blendv_epi8(l1, t1, ml);
        t0 = _mm256_blendv_epi8(r0, ld(pop), ml);
        t1 = _mm256_blendv_epi8(r1, ld(pop.add(32)), ml);
        }
    }
    let mut a = [0u64; 8];
    let mut m = [0u64; 8];
    _mm256_storeu_si256(a.as_mut_ptr() as *mut _, a0);
    _mm256_storeu_si256(a.as_mut_ptr().add(4) as *mut _, a1);
    _mm256_storeu_si256(m.as_mut_ptr() as *mut _, x0);
    _mm256_storeu_si256(m.as_mut_ptr().add(4) as *mut _, x1);
    (a, m)
}

#[target_feature(enable = "avx2")]
unsafe fn pass_v3<const MIX: bool>(
    recs: &[Rec3],
    index: &[A],
    stack: &mut [A],
    all: [u64; 8],
) -> ([u64; 8], [u64; 8]) {
    let ip = index.as_ptr() as *const u8;
    let sp = stack.as_mut_ptr() as *mut u8;
    let mp = &MASKS as *const A as *const u8;
    let ld = |p: *const u8| _mm256_load_si256(p as *const __m256i);
    let mut c0 = _mm256_loadu_si256(all.as_ptr() as *const _);
    let mut c1 = _mm256_loadu_si256(all.as_ptr().add(4) as *const _);
    let (mut t0, mut t1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let (mut x0, mut x1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let n = recs.len();
    let rp = recs.as_ptr();
    let mut i = 0usize;
    while i < n {
        let r = &*rp.add(i);
        let any = _mm256_or_si256(c0, c1);
        if _mm256_testz_si256(any, any) != 0 {
            let pop = sp.add(r.spop as usize);
            c0 = t0;
            c1 = t1;
            t0 = ld(pop);
            t1 = ld(pop.add(32));
            i = r.end as usize;
            continue;
        }
        let b = ip.add(r.bm as usize);
        let push = sp.add(r.push as usize);
        _mm256_store_si256(push as *mut __m256i, t0);
        _mm256_store_si256(push.add(32) as *mut __m256i, t1);
        let pop = sp.add(r.pop as usize);
        let ml = ld(mp.add(r.ml as usize));
        let m1 = ld(mp.add(r.m1 as usize));
        let b0 = ld(b);
        let b1 = ld(b.add(32));
        let l0 = _mm256_andnot_si256(b0, c0);
        let l1 = _mm256_andnot_si256(b1, c1);
        let r0 = _mm256_and_si256(b0, c0);
        let r1 = _mm256_and_si256(b1, c1);
        a0 = _mm256_or_si256(a0, _mm256_and_si256(l0, m1));
        a1 = _mm256_or_si256(a1, _mm256_and_si256(l1, m1));
        if MIX {
            let mm = ld(mp.add(r.mm as usize));
            x0 = _mm256_or_si256(x0, _mm256_and_si256(l0, mm));
            x1 = _mm256_or_si256(x1, _mm256_and_si256(l1, mm));
        }
        c0 = _mm256_blendv_epi8(l0, t0, ml);
        c1 = _mm256_blendv_epi8(l1, t1, ml);
        t0 = _mm256_blendv_epi8(r0, ld(pop), ml);
        t1 = _mm256_blendv_epi8(r1, ld(pop.add(32)), ml);
        i += 1;
    }
    let mut a = [0u64; 8];
    let mut m = [0u64; 8];
    _mm256_storeu_si256(a.as_mut_ptr() as *mut _, a0);
    _mm256_storeu_si256(a.as_mut_ptr().add(4) as *mut _, a1);
    _mm256_storeu_si256(m.as_mut_ptr() as *mut _, x0);
    _mm256_storeu_si256(m.as_mut_ptr().add(4) as *mut _, x1);
    (a, m)
}
