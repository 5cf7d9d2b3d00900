// 2026-12-06 (third session that day, same Zen 4 VM): node blocks, four levels of a tree (15 nodes) taken
// per step with AVX-512: the row's values for the 15 features by vpermt2d (and vpermd for features >= 32),
// one compare, an exit table of 2^15 bytes, a child offset. Run as an example of fedids-forest: copy to
// crates/forest/examples/zz_blocks.rs, then
// cargo run --release -p fedids-forest --example zz_blocks -- MODEL DATA RUNS   (output: node_blocks.txt)
// Scratch (2026-12-06): four-level blocks of 15 nodes evaluated with AVX-512 permutes and one
// compare, against the kept scalar walk (8 lanes, 6 steps between looks), walks only, every
// tree for every row.
use fedids_data::{load_path_with_schema, LoadOptions};
use fedids_forest::model;
use std::arch::x86_64::*;
use std::path::Path;
use std::time::Instant;

const LEAF_KEY: u32 = 0xff80_0000;
const W: usize = 48; // row stride (keys), padded
const BLK: usize = 208; // bytes per block: keys@0 (key15 = hi mask), feat bytes@64, feat dwords@80, children@144

fn order_key(v: f32) -> u32 {
    let bits = (v + 0.0).to_bits();
    let key = bits ^ ((bits as i32 >> 31) as u32 | 1 << 31);
    if v.is_nan() { 0 } else { key }
}

#[derive(Clone, Copy)]
struct PackedNode { key: u32, fl: u32 }

fn walk_scalar(nodes: &[PackedNode], buf: &[u32], nf: usize, ends: &mut [u32]) {
    const LANES: usize = 8;
    const STEPS: usize = 6;
    let n_rows = ends.len();
    let mut row = [0usize; LANES];
    let mut node = [0usize; LANES];
    for (k, r) in row.iter_mut().enumerate() { *r = k.min(n_rows - 1); }
    let mut next_row = LANES.min(n_rows);
    loop {
        for _ in 0..STEPS {
            for k in 0..LANES {
                let n = unsafe { *nodes.get_unchecked(node[k]) };
                let v = unsafe { *buf.get_unchecked(row[k] * nf + (n.fl & 0xff) as usize) };
                node[k] = (n.fl >> 8) as usize + (v > n.key) as usize;
            }
        }
        let finished: [bool; LANES] = std::array::from_fn(|k| unsafe { nodes.get_unchecked(node[k]).key } == LEAF_KEY);
        for k in 0..LANES { unsafe { *ends.get_unchecked_mut(row[k]) = node[k] as u32 }; }
        let n_finished: usize = finished.iter().map(|&f| f as usize).sum();
        if next_row + n_finished <= n_rows {
            let mut r = next_row;
            for k in 0..LANES {
                row[k] = if finished[k] { r } else { row[k] };
                node[k] = if finished[k] { 0 } else { node[k] };
                r += finished[k] as usize;
            }
            next_row = r;
        } else {
            let mut all_parked = true;
            for k in 0..LANES {
                let take = finished[k] & (next_row < n_rows);
                row[k] = if take { next_row } else { row[k] };
                node[k] = if take { 0 } else { node[k] };
                next_row += take as usize;
                all_parked &= finished[k] & !take;
            }
            if all_parked { return; }
        }
    }
}

/// A tree as blocks: internal blocks first, then one absorbing block per leaf.
struct Blocks { arena: Vec<u32>, leaf_start: u32, leaf_of: Vec<u32> /* per leaf block: node index */ }

fn build_blocks(nodes: &[fedids_forest::Node]) -> Blocks {
    // Assign blocks: BFS over block roots.
    let mut internal_roots: Vec<usize> = Vec::new();
    let mut leaves: Vec<usize> = Vec::new();
    let mut block_of_internal = std::collections::HashMap::new();
    let mut block_of_leaf = std::collections::HashMap::new();
    let mut queue = std::collections::VecDeque::new();
    queue.push_back(0usize);
    // first pass: find block roots in order
    let mut exits_of: Vec<[usize; 16]> = Vec::new();
    let mut pos_nodes: Vec<[Option<usize>; 15]> = Vec::new();
    if nodes[0].is_leaf() {
        leaves.push(0);
        block_of_leaf.insert(0, 0usize);
    } else {
        block_of_internal.insert(0usize, 0usize);
        internal_roots.push(0);
        while let Some(r) = queue.pop_front() {
            let mut pn: [Option<usize>; 15] = [None; 15];
            let mut ex = [usize::MAX; 16];
            pn[0] = Some(r);
            // exit node for each exit slot (a node index; leaf or internal)
            fn fill(nodes: &[fedids_forest::Node], p: usize, n: usize, pn: &mut [Option<usize>; 15], ex: &mut [usize; 16]) {
                // n occupies position p
                pn[p] = Some(n);
                if nodes[n].is_leaf() {
                    // all exits under p go to n
                    let mut lo = p; let mut hi = p;
                    while lo < 15 { lo = 2 * lo + 1; hi = 2 * hi + 2; }
                    for e in lo..=hi { ex[e - 15] = n; }
                    return;
                }
                let l = nodes[n].left as usize;
                for (c, child) in [(2 * p + 1, l), (2 * p + 2, l + 1)] {
                    if c >= 15 { ex[c - 15] = child; } else { fill(nodes, c, child, pn, ex); }
                }
            }
            fill(nodes, 0, r, &mut pn, &mut ex);
            for &e in ex.iter() {
                if nodes[e].is_leaf() {
                    if !block_of_leaf.contains_key(&e) { block_of_leaf.insert(e, leaves.len()); leaves.push(e); }
                } else if !block_of_internal.contains_key(&e) {
                    block_of_internal.insert(e, internal_roots.len());
                    internal_roots.push(e);
                    queue.push_back(e);
                }
            }
            exits_of.push(ex);
            pos_nodes.push(pn);
        }
    }
    let n_int = internal_roots.len();
    let total = n_int + leaves.len();
    let mut arena = vec![0u32; total * BLK / 4];
    let off_of = |n: usize| -> u32 {
        if nodes[n].is_leaf() { ((n_int + block_of_leaf[&n]) * BLK) as u32 } else { (block_of_internal[&n] * BLK) as u32 }
    };
    for b in 0..n_int {
        let base = b * BLK / 4;
        let mut hi: u16 = 0;
        let mut feats = [0u8; 16];
        for p in 0..15 {
            let (key, f) = match pos_nodes[b][p] {
                Some(n) if !nodes[n].is_leaf() => (order_key(nodes[n].threshold), nodes[n].feature as u8),
                _ => (u32::MAX, 0u8),
            };
            arena[base + p] = key;
            feats[p] = f;
            if f >= 32 { hi |= 1 << p; }
        }
        arena[base + 15] = hi as u32;
        for i in 0..4 { arena[base + 16 + i] = u32::from_le_bytes(feats[4 * i..4 * i + 4].try_into().unwrap()); }
        for p in 0..16 { arena[base + 20 + p] = feats[p] as u32; }
        for e in 0..16 { arena[base + 36 + e] = off_of(exits_of[b][e]); }
    }
    let mut leaf_of = Vec::new();
    for (j, &n) in leaves.iter().enumerate() {
        let base = (n_int + j) * BLK / 4;
        for p in 0..15 { arena[base + p] = u32::MAX; }
        arena[base + 15] = 0;
        for e in 0..16 { arena[base + 36 + e] = ((n_int + j) * BLK) as u32; }
        leaf_of.push(n as u32);
    }
    Blocks { arena, leaf_start: (n_int * BLK) as u32, leaf_of }
}

#[target_feature(enable = "avx512f,avx512bw,bmi1,bmi2")]
unsafe fn walk_blocks<const L: usize, const S: usize, const M: usize>(bl: &Blocks, table: &[u8; 32768], buf: &[u32], ends: &mut [u32]) {
    let n_rows = ends.len();
    let arena = bl.arena.as_ptr() as *const u8;
    let tab = table.as_ptr();
    let base = buf.as_ptr();
    let mut row = [0usize; L];
    let mut b = [0usize; L];
    for (k, r) in row.iter_mut().enumerate() { *r = k.min(n_rows - 1); }
    let mut next_row = L.min(n_rows);
    let leaf_start = bl.leaf_start as usize;
    loop {
        for _ in 0..S {
            for k in 0..L {
                let blk = arena.add(b[k]);
                let rp = base.add(row[k] * W);
                let keys = _mm512_loadu_si512(blk as *const _);
                let idx = if M == 0 { _mm512_cvtepu8_epi32(_mm_loadu_si128(blk.add(64) as *const __m128i)) } else { _mm512_loadu_si512(blk.add(80) as *const _) };
                let ra = _mm512_loadu_si512(rp as *const _);
                let rb = _mm512_loadu_si512(rp.add(16) as *const _);
                let rc = _mm512_loadu_si512(rp.add(32) as *const _);
                let v = _mm512_permutex2var_epi32(ra, idx, rb);
                let v = if M == 2 { v } else {
                    let hi: __mmask16 = if M == 3 { _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)) } else { _cvtu32_mask16(*(blk.add(60) as *const u16) as u32) };
                    _mm512_mask_permutexvar_epi32(v, hi, idx, rc) };
                let m = _mm512_cmpgt_epu32_mask(v, keys) as usize & 0x7fff;
                let e = *tab.add(m) as usize;
                b[k] = *(blk.add(e) as *const u32) as usize;
            }
        }
        let finished: [bool; L] = std::array::from_fn(|k| b[k] >= leaf_start);
        for k in 0..L { *ends.get_unchecked_mut(row[k]) = b[k] as u32; }
        let n_finished: usize = finished.iter().map(|&f| f as usize).sum();
        if next_row + n_finished <= n_rows {
            let mut r = next_row;
            for k in 0..L {
                row[k] = if finished[k] { r } else { row[k] };
                b[k] = if finished[k] { 0 } else { b[k] };
                r += finished[k] as usize;
            }
            next_row = r;
        } else {
            let mut all_parked = true;
            for k in 0..L {
                let take = finished[k] & (next_row < n_rows);
                row[k] = if take { next_row } else { row[k] };
                b[k] = if take { 0 } else { b[k] };
                next_row += take as usize;
                all_parked &= finished[k] & !take;
            }
            if all_parked { return; }
        }
    }
}

/// Blocks whose 15 features fit a window of 32 slots of the (reordered) row; a node that would
/// widen the window past 32 starts a new block instead.
fn build_blocks_w(nodes: &[fedids_forest::Node], slot: &[u8], two: bool) -> Blocks {
    let mut internal_roots: Vec<usize> = Vec::new();
    let mut leaves: Vec<usize> = Vec::new();
    let mut block_of_internal = std::collections::HashMap::new();
    let mut block_of_leaf = std::collections::HashMap::new();
    let mut queue = std::collections::VecDeque::new();
    let mut exits_of: Vec<[usize; 16]> = Vec::new();
    let mut pos_nodes: Vec<[Option<usize>; 15]> = Vec::new();
    let mut windows: Vec<u32> = Vec::new();
    fn lo_hi(mut lo: usize) -> (usize, usize) { let mut hi = lo; while lo < 15 { lo = 2 * lo + 1; hi = 2 * hi + 2; } (lo - 15, hi - 15) }
    if nodes[0].is_leaf() {
        leaves.push(0);
        block_of_leaf.insert(0, 0usize);
    } else {
        block_of_internal.insert(0usize, 0usize);
        internal_roots.push(0);
        queue.push_back(0usize);
        while let Some(r) = queue.pop_front() {
            let mut pn: [Option<usize>; 15] = [None; 15];
            let mut ex = [usize::MAX; 16];
            let (mut mn, mut mx) = (slot[nodes[r].feature as usize] as usize, slot[nodes[r].feature as usize] as usize);
            // BFS over positions
            let mut bfs: std::collections::VecDeque<(usize, usize)> = std::collections::VecDeque::new();
            bfs.push_back((0, r));
            while let Some((p, n)) = bfs.pop_front() {
                if p >= 15 { ex[p - 15] = n; continue; }
                let nd = nodes[n];
                if nd.is_leaf() {
                    let (a, b) = lo_hi(p);
                    for e in a..=b { ex[e] = n; }
                    continue;
                }
                let sl = slot[nd.feature as usize] as usize;
                let (nmn, nmx) = (mn.min(sl), mx.max(sl));
                if nmx - nmn >= 32 || (two && nmn < 16 && nmx >= 32) {
                    // excluded: padded, its leftmost exit starts a block at n
                    let (a, b) = lo_hi(p);
                    for e in a..=b { ex[e] = n; }
                    continue;
                }
                mn = nmn; mx = nmx;
                pn[p] = Some(n);
                bfs.push_back((2 * p + 1, nd.left as usize));
                bfs.push_back((2 * p + 2, nd.left as usize + 1));
            }
            for &e in ex.iter() {
                if nodes[e].is_leaf() {
                    if !block_of_leaf.contains_key(&e) { block_of_leaf.insert(e, leaves.len()); leaves.push(e); }
                } else if !block_of_internal.contains_key(&e) {
                    block_of_internal.insert(e, internal_roots.len());
                    internal_roots.push(e);
                    queue.push_back(e);
                }
            }
            exits_of.push(ex);
            pos_nodes.push(pn);
            windows.push(if two { if mx >= 32 { 16 } else { 0 } } else { mn.min(16) as u32 });
        }
    }
    let n_int = internal_roots.len();
    let total = n_int + leaves.len();
    let mut arena = vec![0u32; total * BLK / 4];
    let off_of = |n: usize| -> u32 {
        if nodes[n].is_leaf() { ((n_int + block_of_leaf[&n]) * BLK) as u32 } else { (block_of_internal[&n] * BLK) as u32 }
    };
    for b in 0..n_int {
        let base = b * BLK / 4;
        let w = windows[b];
        for p in 0..15 {
            let (key, f) = match pos_nodes[b][p] {
                Some(n) => (order_key(nodes[n].threshold), slot[nodes[n].feature as usize] as u32 - w),
                None => (u32::MAX, 0),
            };
            assert!(f < 32);
            arena[base + p] = key;
            arena[base + 20 + p] = f;
        }
        arena[base + 15] = if two { if w == 16 { 0xffff } else { 0 } } else { w * 4 };
        for e in 0..16 { arena[base + 36 + e] = off_of(exits_of[b][e]); }
    }
    let mut leaf_of = Vec::new();
    for (j, &n) in leaves.iter().enumerate() {
        let base = (n_int + j) * BLK / 4;
        for p in 0..15 { arena[base + p] = u32::MAX; }
        arena[base + 15] = 0;
        for e in 0..16 { arena[base + 36 + e] = ((n_int + j) * BLK) as u32; }
        leaf_of.push(n as u32);
    }
    Blocks { arena, leaf_start: (n_int * BLK) as u32, leaf_of }
}

#[target_feature(enable = "avx512f,avx512bw,bmi1,bmi2")]
unsafe fn walk_blocks_w<const L: usize, const S: usize>(bl: &Blocks, table: &[u8; 32768], buf: &[u32], ends: &mut [u32]) {
    let n_rows = ends.len();
    let arena = bl.arena.as_ptr() as *const u8;
    let tab = table.as_ptr();
    let base = buf.as_ptr() as *const u8;
    let mut row = [0usize; L];
    let mut b = [0usize; L];
    for (k, r) in row.iter_mut().enumerate() { *r = k.min(n_rows - 1); }
    let mut next_row = L.min(n_rows);
    let leaf_start = bl.leaf_start as usize;
    loop {
        for _ in 0..S {
            for k in 0..L {
                let blk = arena.add(b[k]);
                let rp = base.add(row[k] * W * 4 + *(blk.add(60) as *const u32) as usize);
                let keys = _mm512_loadu_si512(blk as *const _);
                let idx = _mm512_loadu_si512(blk.add(80) as *const _);
                let ra = _mm512_loadu_si512(rp as *const _);
                let rb = _mm512_loadu_si512(rp.add(64) as *const _);
                let v = _mm512_permutex2var_epi32(ra, idx, rb);
                let m = _mm512_cmpgt_epu32_mask(v, keys) as usize & 0x7fff;
                let e = *tab.add(m) as usize;
                b[k] = *(blk.add(e) as *const u32) as usize;
            }
        }
        let finished: [bool; L] = std::array::from_fn(|k| b[k] >= leaf_start);
        for k in 0..L { *ends.get_unchecked_mut(row[k]) = b[k] as u32; }
        let n_finished: usize = finished.iter().map(|&f| f as usize).sum();
        if next_row + n_finished <= n_rows {
            let mut r = next_row;
            for k in 0..L {
                row[k] = if finished[k] { r } else { row[k] };
                b[k] = if finished[k] { 0 } else { b[k] };
                r += finished[k] as usize;
            }
            next_row = r;
        } else {
            let mut all_parked = true;
            for k in 0..L {
                let take = finished[k] & (next_row < n_rows);
                row[k] = if take { next_row } else { row[k] };
                b[k] = if take { 0 } else { b[k] };
                next_row += take as usize;
                all_parked &= finished[k] & !take;
            }
            if all_parked { return; }
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,bmi1,bmi2")]
unsafe fn walk_blocks_2<const L: usize, const S: usize>(bl: &Blocks, table: &[u8; 32768], buf: &[u32], ends: &mut [u32]) {
    let n_rows = ends.len();
    let arena = bl.arena.as_ptr() as *const u8;
    let tab = table.as_ptr();
    let base = buf.as_ptr();
    let mut row = [0usize; L];
    let mut b = [0usize; L];
    for (k, r) in row.iter_mut().enumerate() { *r = k.min(n_rows - 1); }
    let mut next_row = L.min(n_rows);
    let leaf_start = bl.leaf_start as usize;
    loop {
        for _ in 0..S {
            for k in 0..L {
                let blk = arena.add(b[k]);
                let rp = base.add(row[k] * W);
                let keys = _mm512_loadu_si512(blk as *const _);
                let idx = _mm512_loadu_si512(blk.add(80) as *const _);
                let ra = _mm512_loadu_si512(rp as *const _);
                let rb = _mm512_loadu_si512(rp.add(16) as *const _);
                let rc = _mm512_loadu_si512(rp.add(32) as *const _);
                let kw: __mmask16 = _cvtu32_mask16(*(blk.add(60) as *const u16) as u32);
                let t1 = _mm512_mask_mov_epi32(ra, kw, rb);
                let t2 = _mm512_mask_mov_epi32(rb, kw, rc);
                let v = _mm512_permutex2var_epi32(t1, idx, t2);
                let m = _mm512_cmpgt_epu32_mask(v, keys) as usize & 0x7fff;
                let e = *tab.add(m) as usize;
                b[k] = *(blk.add(e) as *const u32) as usize;
            }
        }
        let finished: [bool; L] = std::array::from_fn(|k| b[k] >= leaf_start);
        for k in 0..L { *ends.get_unchecked_mut(row[k]) = b[k] as u32; }
        let n_finished: usize = finished.iter().map(|&f| f as usize).sum();
        if next_row + n_finished <= n_rows {
            let mut r = next_row;
            for k in 0..L {
                row[k] = if finished[k] { r } else { row[k] };
                b[k] = if finished[k] { 0 } else { b[k] };
                r += finished[k] as usize;
            }
            next_row = r;
        } else {
            let mut all_parked = true;
            for k in 0..L {
                let take = finished[k] & (next_row < n_rows);
                row[k] = if take { next_row } else { row[k] };
                b[k] = if take { 0 } else { b[k] };
                next_row += take as usize;
                all_parked &= finished[k] & !take;
            }
            if all_parked { return; }
        }
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&a[1]).unwrap();
    let forest = model::decode(&bytes).unwrap();
    let schema = forest.schema();
    let opts = LoadOptions { format: Some(schema.format.clone()), task: schema.task, skip_invalid: false, unmapped_label: Default::default() };
    let data = load_path_with_schema(Path::new(&a[2]), schema, &opts).unwrap();
    let runs: usize = a.get(3).map(|s| s.parse().unwrap()).unwrap_or(10);
    let blockrows: usize = std::env::var("BLOCKROWS").ok().map(|s| s.parse().unwrap()).unwrap_or(1024);
    let x = data.x;
    let nf = x.n_features();
    assert!(nf <= W);
    let n = x.n_rows();
    let mut buf_s = vec![0u32; n * nf];
    let mut buf_b = vec![0u32; n * W];
    for f in 0..nf {
        let c = x.column(f);
        for r in 0..n { buf_s[r * nf + f] = order_key(c[r]); buf_b[r * W + f] = order_key(c[r]); }
    }
    let mut table = Box::new([0u8; 32768]);
    for m in 0..32768usize {
        let mut p = 0usize;
        for _ in 0..4 { let bit = (m >> p) & 1; p = 2 * p + 1 + bit; }
        table[m] = (144 + 4 * (p - 15)) as u8;
    }
    let trees = forest.trees();
    let scal: Vec<Vec<PackedNode>> = trees.iter().map(|t| t.nodes().iter().enumerate().map(|(i, nd)| {
        if nd.is_leaf() { PackedNode { key: LEAF_KEY, fl: (i as u32) << 8 } } else { PackedNode { key: order_key(nd.threshold), fl: nd.feature | nd.left << 8 } }
    }).collect()).collect();
    let blocks: Vec<Blocks> = trees.iter().map(|t| build_blocks(t.nodes())).collect();
    let mut use_count = vec![0usize; nf];
    for t in trees { for nd in t.nodes() { if !nd.is_leaf() { use_count[nd.feature as usize] += 1; } } }
    let mut order: Vec<usize> = (0..nf).collect();
    order.sort_by_key(|&f| std::cmp::Reverse(use_count[f]));
    // the 32 most used at slots 8..40, the rest alternately below 8 and from 40
    let mut slot = vec![0u8; nf];
    let (mut lo, mut hi) = (7i32, 40usize);
    for (i, &f) in order.iter().enumerate() {
        if i < 32 { slot[f] = (8 + i) as u8; } else if i % 2 == 0 && lo >= 0 { slot[f] = lo as u8; lo -= 1; } else { slot[f] = hi as u8; hi += 1; }
    }
    let blocks_w: Vec<Blocks> = trees.iter().map(|t| build_blocks_w(t.nodes(), &slot, false)).collect();
    let mut slot2 = vec![0u8; nf];
    for (i, &f) in order.iter().enumerate() { slot2[f] = if i < 16 { 16 + i } else if i < 32 { i - 16 } else { i } as u8; }
    let blocks_2: Vec<Blocks> = trees.iter().map(|t| build_blocks_w(t.nodes(), &slot2, true)).collect();
    let mut buf_2 = vec![0u32; n * W];
    for f in 0..nf { let c = x.column(f); for r in 0..n { buf_2[r * W + slot2[f] as usize] = order_key(c[r]); } }
    let mut buf_w = vec![0u32; n * W];
    for f in 0..nf { let c = x.column(f); for r in 0..n { buf_w[r * W + slot[f] as usize] = order_key(c[r]); } }
    println!("windowed: {} internal blocks", blocks_w.iter().map(|b| b.leaf_start as usize / BLK).sum::<usize>());
    let nb: usize = blocks.iter().map(|b| b.leaf_start as usize / BLK).sum();
    let nl: usize = blocks.iter().map(|b| b.leaf_of.len()).sum();
    let bytes_b: usize = blocks.iter().map(|b| b.arena.len() * 4).sum();
    let nodes_total: usize = trees.iter().map(|t| t.nodes().len()).sum();
    println!("{} trees, {} nodes ({} KB packed), {} internal blocks + {} leaf blocks ({} KB)", trees.len(), nodes_total, nodes_total * 8 / 1024, nb, nl, bytes_b / 1024);
    // verify
    let mut ends_s = vec![0u32; n];
    let mut ends_b = vec![0u32; n];
    let mut bsteps = 0u64;
    let mut wsteps = 0u64;
    let mut steps2 = 0u64;
    for (t, tr) in trees.iter().enumerate() {
        for s in (0..n).step_by(blockrows) {
            let e = (s + blockrows).min(n);
            walk_scalar(&scal[t], &buf_s[s * nf..e * nf], nf, &mut ends_s[s..e]);
            unsafe { walk_blocks::<8, 2, 1>(&blocks[t], &table, &buf_b[s * W..e * W], &mut ends_b[s..e]) };
        }
        let bl = &blocks[t];
        for r in 0..n {
            let lb = (ends_b[r] - bl.leaf_start) as usize / BLK;
            assert_eq!(bl.leaf_of[lb], ends_s[r], "tree {t} row {r}");
        }
        let _ = tr;
        let blw = &blocks_w[t];
        for s in (0..n).step_by(blockrows) {
            let e = (s + blockrows).min(n);
            unsafe { walk_blocks_w::<8, 2>(blw, &table, &buf_w[s * W..e * W], &mut ends_b[s..e]) };
        }
        let bl2 = &blocks_2[t];
        let mut ends_2 = vec![0u32; n];
        for s in (0..n).step_by(blockrows) {
            let e = (s + blockrows).min(n);
            unsafe { walk_blocks_2::<8, 2>(bl2, &table, &buf_2[s * W..e * W], &mut ends_2[s..e]) };
        }
        for r in 0..n {
            let lb = (ends_2[r] - bl2.leaf_start) as usize / BLK;
            assert_eq!(bl2.leaf_of[lb], ends_s[r], "two tree {t} row {r}");
            let mut off = 0usize;
            while off < bl2.leaf_start as usize {
                let blk = &bl2.arena[off / 4..off / 4 + 52];
                let w = if blk[15] != 0 { 16 } else { 0 };
                let mut m = 0usize;
                for p in 0..15 { if buf_2[r * W + w + blk[20 + p] as usize] > blk[p] { m |= 1 << p; } }
                off = blk[(table[m] as usize) / 4] as usize; steps2 += 1;
            }
        }
        for r in 0..n {
            let lb = (ends_b[r] - blw.leaf_start) as usize / BLK;
            assert_eq!(blw.leaf_of[lb], ends_s[r], "windowed tree {t} row {r}");
            let mut off = 0usize;
            while off < blw.leaf_start as usize {
                let blk = &blw.arena[off / 4..off / 4 + 52];
                let w = blk[15] as usize / 4;
                let mut m = 0usize;
                for p in 0..15 { if buf_w[r * W + w + blk[20 + p] as usize] > blk[p] { m |= 1 << p; } }
                off = blk[(table[m] as usize) / 4] as usize; wsteps += 1;
            }
        }
        // count block steps per walk (scalar reference path)
        for r in 0..n {
            let mut off = 0usize; let mut c = 0;
            while off < bl.leaf_start as usize { 
                let blk = &bl.arena[off / 4..off / 4 + 52];
                let mut m = 0usize;
                for p in 0..15 { let f = (blk[16 + p / 4] >> (8 * (p % 4))) & 0xff; if buf_b[r * W + f as usize] > blk[p] { m |= 1 << p; } }
                off = blk[(table[m] as usize) / 4] as usize; c += 1;
            }
            bsteps += c;
        }
    }
    println!("ends equal; {:.2} block steps per walk, windowed {:.2}, two windows {:.2}", bsteps as f64 / (n * trees.len()) as f64, wsteps as f64 / (n * trees.len()) as f64, steps2 as f64 / (n * trees.len()) as f64);
    let time = |f: &mut dyn FnMut()| -> f64 { let st = Instant::now(); f(); st.elapsed().as_secs_f64() };
    macro_rules! tb { ($l:literal, $st:literal, $m:literal) => { time(&mut || for t in 0..trees.len() { for s in (0..n).step_by(blockrows) { let e = (s + blockrows).min(n); unsafe { walk_blocks::<$l, $st, $m>(&blocks[t], &table, &buf_b[s * W..e * W], &mut ends_b[s..e]) }; } }) } }
    let names = ["scalar", "8x2 dwords+maskload", "windowed 8x2", "two 8x2", "two 6x2", "two 8x1", "two 4x2"];
    macro_rules! t2 { ($l:literal, $st:literal) => { time(&mut || for t in 0..trees.len() { for s in (0..n).step_by(blockrows) { let e = (s + blockrows).min(n); unsafe { walk_blocks_2::<$l, $st>(&blocks_2[t], &table, &buf_2[s * W..e * W], &mut ends_b[s..e]) }; } }) } }
    macro_rules! tw { ($l:literal, $st:literal) => { time(&mut || for t in 0..trees.len() { for s in (0..n).step_by(blockrows) { let e = (s + blockrows).min(n); unsafe { walk_blocks_w::<$l, $st>(&blocks_w[t], &table, &buf_w[s * W..e * W], &mut ends_b[s..e]) }; } }) } }
    let mut best = [f64::MAX; 7];
    for _ in 0..runs {
        best[0] = best[0].min(time(&mut || for t in 0..trees.len() { for s in (0..n).step_by(blockrows) { let e = (s + blockrows).min(n); walk_scalar(&scal[t], &buf_s[s * nf..e * nf], nf, &mut ends_s[s..e]); } }));
        best[1] = best[1].min(tb!(8, 2, 1));
        best[2] = best[2].min(tw!(8, 2));
        best[3] = best[3].min(t2!(8, 2));
        best[4] = best[4].min(t2!(6, 2));
        best[5] = best[5].min(t2!(8, 1));
        best[6] = best[6].min(t2!(4, 2));
    }
    for i in 0..7 { println!("{:32} {:.2} ms  {:.2}x scalar", names[i], best[i] * 1e3, best[0] / best[i]); }
}
