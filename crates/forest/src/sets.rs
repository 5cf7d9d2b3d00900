//! Row-set evaluation: a forest's classes for a group of rows, computed on sets of rows rather
//! than row by row.
//!
//! For a group of up to [`GROUP`] rows, every distinct `(feature, threshold)` of the forest gets
//! the bit set of the group's rows whose value exceeds it (the *index*, built with packed AVX2
//! compares: eight rows per compare). A tree then runs once for the whole group, node by node in
//! preorder, carrying the set of rows that reach each node: its right child gets `set & B`, its
//! left child `set & !B`, where `B` is the node's threshold set, and a leaf marks its set with its
//! class. No step depends on a row's value, nothing branches on the data, and a node costs the
//! same whether one row or a thousand reach it: a few loads and blends per 256 rows.
//!
//! The walk keeps the right children still to visit on a stack whose top stays in registers: an
//! internal node pushes the old top and makes its right set the top; a leaf takes the top as the
//! next node's set and pops the one below it. Which stack slot a node writes or reads is fixed by
//! the tree's shape, so it is compiled into the node, and every node runs the same instructions
//! (a leaf is a node whose threshold set is empty and whose blend masks pick the stack).
//!
//! A leaf stores its set (where an internal node stores the old top: the same store, of a blended
//! value), and after the tree, the sets of each class's leaves are joined and added to that
//! class's bit-sliced vote counter. A leaf's class is that of a *pure* leaf, whose values are
//! `1.0` for one class and `0.0` for the others; mixed leaves count as a class of their own.
//! Class 0's leaves need not be stored (its votes follow from the others'). A row that reached
//! only pure leaves has, in the walking kernels, class sums that are whole numbers of votes
//! (adding `1.0` to an `f32` is exact far beyond a forest's size), so its class, the argmax with
//! ties to the lowest class, is the argmax of its vote counts. A row that reached a mixed leaf is
//! decided only if those leaves' values cannot close its lead, else left *undecided* here, for
//! the walking kernel to classify exactly.
//!
//! The caller may run only the first trees, up to where the walk would first look for decided
//! rows. A row whose lead the trees left cannot overturn is decided; any other row is *seeded*:
//! it joins the walk at the next tree with its votes as its class sums, which are the walk's sums
//! at that point, exactly. After 52 of 100 trees, about 70% of KDDTest+'s rows are decided
//! (binary forest), and on the KDD Cup 99 test split nearly all: `predict_counting` gives 20.0
//! (row, tree) pairs per row there, where its distinct rows, 38.5% of all, take 52 each.
//!
//! This module knows trees and order keys; it does not know blocks or threads, nor the trees it
//! does not run: the most those can add to a sum comes from its caller.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::collections::HashMap;

use crate::predict::MARGIN;
use crate::tree::Tree;

/// Rows per group: each set is 1,024 bits, four AVX2 registers. On NSL-KDD's binary forest,
/// one thread, groups of 1,024 ran in 0.93-0.95x the time of groups of 512 (fastest of 100
/// runs): a node's loads of its fields and masks serve twice the rows.
pub(crate) const GROUP: usize = 1024;

/// 64-bit words per set.
const WORDS: usize = GROUP / 64;

/// Bytes per set.
const SET_BYTES: usize = GROUP / 8;

/// 256-bit parts per set.
const LANES: usize = GROUP / 256;

/// A row [`SetForest::classify`] leaves to the walking kernel, from the first tree: it reached
/// a mixed leaf whose values could change its class.
pub(crate) const UNDECIDED: u32 = u32::MAX;

/// A row [`SetForest::classify`] leaves to the walking kernel from the first tree it did not
/// run, with its votes so far as its class sums: the trees left could change its class.
pub(crate) const SEEDED: u32 = u32::MAX - 1;

/// Classes at most (vote counters and their extraction are per class).
const MAX_CLASSES: usize = 15;

/// Stack and leaf slots a tree can name (a set each, per thread: 8 MB at most).
const MAX_SLOTS: usize = 1 << 16;

/// Nodes over all trees, once subtrees shared by several parents are copied for each (a stored
/// tree may share them; trained trees do not).
const MAX_NODES: usize = 1 << 22;

/// Distinct `(feature, threshold)` pairs at most: each costs a set (128 bytes) of index per
/// thread and a pass of compares over each group's values of its feature.
const MAX_THRESHOLDS: usize = 1 << 16;

/// Mixed leaves at most, as a share of all leaves: every row that reaches one is walked again by
/// the walking kernel, so forests of mostly mixed leaves (grown with a leaf-size limit, say) are
/// better served by walking alone.
const MAX_MIXED_SHARE: f64 = 0.1;

/// One set: a bit per row of a group.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bits([u64; WORDS]);

/// All zeros, then all ones: a node's masks are byte offsets into this (0 or 32).
static MASKS: Masks = Masks([0, 0, 0, 0, !0, !0, !0, !0]);

/// Aligned for 256-bit loads.
#[repr(C, align(32))]
struct Masks([u64; 8]);

/// One node of a tree in preorder, as the set walk reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct SetNode {
    /// Byte offset of the node's threshold set in the index (set 0, all zeros, for a leaf).
    set: u32,
    /// Byte offset of the slot this node stores to: the stack slot the old top goes to, for an
    /// internal node; the leaf's own slot, for a leaf whose set is counted (the spare slot for
    /// class 0's leaves).
    store: u32,
    /// Byte offset of the stack slot a leaf pops into the top (the spare slot for an internal
    /// node).
    pop: u32,
    /// Byte offset into [`MASKS`]: ones for a leaf.
    leaf: u32,
}

/// A tree as the set walk reads it.
struct SetTree {
    nodes: Vec<SetNode>,
    /// Byte offsets of the slots of the leaves of class 1, then 2, ..., then the mixed leaves.
    counted: Vec<u32>,
    /// `counted[ends[k - 1]..ends[k]]` (with `ends[-1]` = 0): the slots of class `k + 1`'s
    /// leaves, the mixed leaves last.
    ends: Vec<u32>,
}

/// A forest compiled for row-set evaluation.
pub(crate) struct SetForest {
    /// The distinct `(feature, threshold key)` pairs, sorted; pair `i` owns index set `i + 1`.
    thresholds: Vec<(u32, u32)>,
    /// Each tree's nodes in preorder, and its counted leaves.
    trees: Vec<SetTree>,
    n_classes: usize,
    /// Stack and leaf slots, the spare one included.
    slots: usize,
    /// Bit planes of each class's vote counter: enough to count every tree.
    vote_planes: usize,
    /// The largest value of any mixed leaf: the most one adds to a class's sum.
    mixed_top: f64,
    /// Beyond the mixed leaves' reach, the lead a row that met one needs over the runner-up:
    /// far above the rounding of the `f32` sums (the walk's own early exits use this bound).
    margin: f64,
    /// Whether row sets should beat walking these trees, by a rough cost model.
    pays: bool,
}

/// Per-task memory of [`SetForest::classify`].
#[derive(Default)]
pub(crate) struct SetScratch {
    /// The group's keys column by column ([`GROUP`] per feature), sign bit flipped.
    keys: Vec<u32>,
    index: Vec<Bits>,
    /// The stack, the spare slot, then the counted leaves' sets.
    stack: Vec<Bits>,
    /// `votes[c * vote_planes + p]`: bit `p` of each row's votes for class `c`.
    votes: Vec<[u64; WORDS]>,
}

/// Whether this CPU runs the set walk (x86-64 with AVX2).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl SetForest {
    /// Compiles validated `trees`, or says why they do not suit row sets: this CPU lacks AVX2,
    /// fewer than two or more than 15 classes, no tree or more than 65,535, too many distinct
    /// thresholds, nodes or stack slots, or more than a tenth of the leaves mixed.
    ///
    /// `pure_class` gives the class of a pure leaf from its values, `None` for a mixed one.
    pub(crate) fn new(
        trees: &[Tree],
        n_classes: usize,
        order_key: impl Fn(f32) -> u32,
        pure_class: impl Fn(&[f32]) -> Option<u8>,
    ) -> Result<SetForest, String> {
        if !available() {
            return Err("row sets need AVX2, which this CPU lacks".into());
        }
        if !(2..=MAX_CLASSES).contains(&n_classes) {
            return Err(format!(
                "row sets take 2 to {MAX_CLASSES} classes, not {n_classes}"
            ));
        }
        if trees.is_empty() || trees.len() > u16::MAX as usize {
            return Err(format!(
                "row sets take 1 to {} trees, not {}",
                u16::MAX,
                trees.len()
            ));
        }
        // Nodes after copying shared subtrees, saturating: children follow their parent, so a
        // pass from the end sees both children's sizes before the parent's.
        let mut total = 0usize;
        for t in trees {
            let nodes = t.nodes();
            let mut size = vec![0usize; nodes.len()];
            for i in (0..nodes.len()).rev() {
                let n = nodes[i];
                size[i] = if n.is_leaf() {
                    1
                } else {
                    let l = n.left as usize;
                    1usize.saturating_add(size[l]).saturating_add(size[l + 1])
                };
            }
            total = total.saturating_add(size[0]);
        }
        if total > MAX_NODES {
            return Err(format!(
                "row sets take at most {MAX_NODES} nodes (shared subtrees copied), not {total}"
            ));
        }
        let mut ids: HashMap<(u32, u32), u32> = HashMap::new();
        for t in trees {
            for n in t.nodes().iter().filter(|n| !n.is_leaf()) {
                ids.insert((n.feature, order_key(n.threshold)), 0);
            }
        }
        if ids.len() > MAX_THRESHOLDS {
            return Err(format!(
                "row sets take at most {MAX_THRESHOLDS} distinct thresholds, not {}",
                ids.len()
            ));
        }
        let mut thresholds: Vec<(u32, u32)> = ids.keys().copied().collect();
        thresholds.sort_unstable();
        for (i, pair) in thresholds.iter().enumerate() {
            ids.insert(*pair, i as u32 + 1);
        }
        let mixed = n_classes as u32;
        // Leaves as stored (a shared one counts once).
        let leaves: usize = trees.iter().map(|t| t.n_leaves()).sum();
        // The values of the mixed leaves, as stored.
        let mixed_values: Vec<&[f32]> = trees
            .iter()
            .flat_map(|t| t.leaf_values().chunks_exact(t.n_classes()))
            .filter(|v| pure_class(v).is_none())
            .collect();
        let mixed_leaves = mixed_values.len();
        if mixed_leaves as f64 > MAX_MIXED_SHARE * leaves as f64 {
            return Err(format!(
                "{mixed_leaves} of {leaves} leaves are mixed: row sets leave their rows to the \
                 walking kernel, and take at most a tenth"
            ));
        }
        let mixed_top = mixed_values
            .iter()
            .flat_map(|v| v.iter())
            .fold(0.0f64, |m, &v| m.max(v as f64));
        // The most all trees can add to one class (leaf values are finite and at least 0).
        let total: f64 = trees
            .iter()
            .map(|t| t.leaf_values().iter().fold(0.0f64, |m, &v| m.max(v as f64)))
            .sum();
        let margin = total * (MARGIN + trees.len() as f64 * f32::EPSILON as f64);
        // Preorder: each node's threshold set (none for a leaf), its stack height (pending
        // right children, the top included) before it, and a leaf's class (`mixed` for a mixed
        // leaf). Slots are given once the deepest stack, hence the spare slot, is known.
        struct Shaped {
            set: Option<u32>,
            height: u32,
            code: u32,
        }
        let mut shaped: Vec<Vec<Shaped>> = Vec::with_capacity(trees.len());
        let mut deepest = 0u32;
        let mut most_counted = 0usize;
        // The sum over the trees of their leaves' mean depth, for `pays`.
        let mut mean_depths = 0.0f64;
        for t in trees {
            let nodes = t.nodes();
            let c = t.n_classes();
            let mut out = Vec::new();
            let mut pending = vec![(0usize, 0u32)];
            let mut height = 0u32;
            let mut counted = 0;
            let (mut depths, mut leaves) = (0u64, 0u64);
            while let Some((i, depth)) = pending.pop() {
                let n = nodes[i];
                if n.is_leaf() {
                    depths += u64::from(depth);
                    leaves += 1;
                    let leaf = n.left as usize;
                    let code = pure_class(&t.leaf_values()[leaf * c..(leaf + 1) * c])
                        .map_or(mixed, u32::from);
                    counted += usize::from(code != 0);
                    out.push(Shaped {
                        set: None,
                        height,
                        code,
                    });
                    height = height.wrapping_sub(1);
                } else {
                    out.push(Shaped {
                        set: Some(ids[&(n.feature, order_key(n.threshold))]),
                        height,
                        code: 0,
                    });
                    height += 1;
                    deepest = deepest.max(height);
                    pending.push((n.left as usize + 1, depth + 1));
                    pending.push((n.left as usize, depth + 1));
                }
            }
            mean_depths += depths as f64 / leaves as f64;
            most_counted = most_counted.max(counted);
            shaped.push(out);
        }
        // Slots 0..deepest - 1 hold the pending sets below the top; slot `spare` takes the
        // writes and reads that do not matter; the counted leaves' slots follow it.
        let spare = deepest as usize;
        let slots = spare + 1 + most_counted;
        if slots > MAX_SLOTS {
            return Err(format!(
                "row sets take at most {MAX_SLOTS} stack and leaf slots per tree, not {slots}"
            ));
        }
        let offset = |slot: usize| (slot * SET_BYTES) as u32;
        let stack_slot = |h: u32| offset((h as usize).min(spare));
        let trees: Vec<SetTree> = shaped
            .into_iter()
            .map(|nodes| {
                let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); n_classes + 1];
                let nodes = nodes
                    .into_iter()
                    .map(|node| match node.set {
                        // The old top (pending set h - 1) goes below the new one.
                        Some(set) => SetNode {
                            set: set * SET_BYTES as u32,
                            store: stack_slot(node.height.wrapping_sub(1)),
                            pop: offset(spare),
                            leaf: 0,
                        },
                        // The top (set h - 1) is this leaf's successor; set h - 2 rises.
                        None => {
                            let store = if node.code == 0 {
                                offset(spare)
                            } else {
                                let counted: usize = by_class.iter().map(Vec::len).sum();
                                let slot = offset(spare + 1 + counted);
                                by_class[node.code as usize].push(slot);
                                slot
                            };
                            SetNode {
                                set: 0,
                                store,
                                pop: stack_slot(node.height.wrapping_sub(2)),
                                leaf: 32,
                            }
                        }
                    })
                    .collect();
                let mut counted = Vec::new();
                let mut ends = Vec::with_capacity(n_classes);
                for class in &by_class[1..] {
                    counted.extend_from_slice(class);
                    ends.push(counted.len() as u32);
                }
                SetTree {
                    nodes,
                    counted,
                    ends,
                }
            })
            .collect();
        // The cost model of `pays`, in cycles per row (a Zen 3 core, docs/performance.md): a node
        // costs about 16 cycles per group of 1,024 rows, a threshold's set about 150, a step of
        // the walk about 4 (its refills and looks included). A leaf's mean depth stands for a
        // walk's steps: it overstates them (rows go where the training rows went, mostly along
        // shorter paths), so the model leans to row sets; but trees of thousands of nodes, whose
        // walks stay short, still go to the walk.
        let nodes: usize = trees.iter().map(|t| t.nodes.len()).sum();
        let sets_cycles = (nodes as f64 * 16.0 + thresholds.len() as f64 * 150.0) / GROUP as f64;
        let walk_cycles = mean_depths * 4.0;
        Ok(SetForest {
            pays: sets_cycles < walk_cycles,
            thresholds,
            vote_planes: (usize::BITS - trees.len().leading_zeros()) as usize,
            trees,
            n_classes,
            slots,
            mixed_top,
            margin,
        })
    }

    /// Whether row sets should be faster than walking these trees, by a rough model of both
    /// costs: the nodes and thresholds row sets pay for per group of rows, against the depth a
    /// walk pays for per row. Trees of many thousand nodes (grown on large noisy data, say) walk
    /// faster.
    pub(crate) fn pays(&self) -> bool {
        self.pays
    }

    /// Runs the trees over the rows `rows` of the columns `cols` (one per feature), their values
    /// compared as `key`s (the kernels' order keys). These trees may be the first of a forest:
    /// `rest` is then the most the forest's other trees can add to any class's sum, rounding
    /// included, and `None` when there are none. `out[k]` gets row `rows[k]`'s class over the
    /// whole forest, the argmax of its class sums with ties to the lowest class; or
    /// [`UNDECIDED`] when the row reached a mixed leaf whose values could change that; or, when
    /// the other trees could change it, [`SEEDED`], with its votes in `sums[k * n_classes..]`,
    /// which are its class sums after these trees, exactly.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn classify(
        &self,
        cols: &[&[f32]],
        rows: &[u32],
        key: impl Fn(f32) -> u32,
        rest: Option<f64>,
        scratch: &mut SetScratch,
        out: &mut [u32],
        sums: &mut [f32],
    ) {
        let (n, nf) = (rows.len(), cols.len());
        let c = self.n_classes;
        assert!(out.len() >= n && sums.len() >= n * c, "an output per row");
        let (last, rest) = (rest.is_none(), rest.unwrap_or(0.0));
        assert!(available(), "row sets run only where AVX2 is");
        if n == 0 {
            return;
        }
        let vp = self.vote_planes;
        scratch.keys.resize(nf * GROUP, 0);
        scratch
            .index
            .resize(self.thresholds.len() + 1, Bits::default());
        scratch.stack.resize(self.slots, Bits::default());
        // Counters for classes 1..c and, at c, for the mixed leaves met.
        scratch.votes.resize((c + 1) * vp, [0; WORDS]);
        // Groups of equal size: 700 rows make two groups of 350 rather than 512 and 188.
        let groups = n.div_ceil(GROUP);
        let size = n.div_ceil(groups);
        for g0 in (0..n).step_by(size) {
            let m = size.min(n - g0);
            // Column by column, sign bit flipped so that signed compares order the keys as
            // unsigned; padding rows get the least key, but no set holds them anyway.
            let group = &rows[g0..g0 + m];
            // Where no row of the group repeats an earlier one, its rows are consecutive, and
            // their keys come from a plain run of each column, which the compiler vectorises.
            let run = group
                .windows(2)
                .all(|w| w[1] == w[0].wrapping_add(1))
                .then_some(group[0] as usize);
            for (col, src) in scratch.keys.chunks_exact_mut(GROUP).zip(cols) {
                match run {
                    Some(first) => {
                        for (k, &v) in col[..m].iter_mut().zip(&src[first..first + m]) {
                            *k = key(v) ^ SIGN;
                        }
                    }
                    None => {
                        for (k, &r) in col[..m].iter_mut().zip(group) {
                            *k = key(src[r as usize]) ^ SIGN;
                        }
                    }
                }
                col[m..].fill(SIGN);
            }
            let mut all = [0u64; WORDS];
            for (w, word) in all.iter_mut().enumerate() {
                let bits = m.saturating_sub(w * 64).min(64);
                *word = if bits == 64 { !0 } else { (1u64 << bits) - 1 };
            }
            // SAFETY: AVX2 is available (asserted above); `keys` holds `GROUP` keys for each of
            // `nf` features and every threshold's feature is below `nf` (the trees were
            // validated against the predictor's feature count); `index` has a set per threshold
            // plus set 0.
            unsafe { build_index(&self.thresholds, &scratch.keys, &mut scratch.index) };
            scratch.votes.fill([0; WORDS]);
            for tree in &self.trees {
                // SAFETY: AVX2 is available; every node's set offset names a set of `index`
                // (below `thresholds.len() + 1`), and its store and pop offsets, and those of
                // its counted leaves, a slot below `slots`, the length of `stack`:
                // `SetForest::new` made them so.
                unsafe {
                    tree_votes(
                        tree,
                        &scratch.index,
                        &mut scratch.stack,
                        all,
                        &mut scratch.votes[vp..],
                        vp,
                    )
                };
            }
            let n_trees = self.trees.len() as u32;
            let mut votes = [0u32; MAX_CLASSES + 1];
            for (j, slot) in out[g0..g0 + m].iter_mut().enumerate() {
                let (w, bit) = (j / 64, j % 64);
                for (class, v) in votes.iter_mut().enumerate().take(c + 1).skip(1) {
                    *v = 0;
                    for (p, plane) in scratch.votes[class * vp..(class + 1) * vp]
                        .iter()
                        .enumerate()
                    {
                        *v |= ((plane[w] >> bit & 1) as u32) << p;
                    }
                }
                // Every tree gives a row one leaf: pure of some class, or mixed.
                let mixed = votes[c];
                votes[0] = n_trees - votes[1..=c].iter().sum::<u32>();
                // The leading class, ties to the lowest, and the runner-up's votes.
                let (mut best, mut second) = (0usize, 0u32);
                for class in 1..c {
                    if votes[class] > votes[best] {
                        second = votes[best];
                        best = class;
                    } else {
                        second = second.max(votes[class]);
                    }
                }
                // Without mixed leaves, the class sums are the votes, exactly. With them, the
                // leader keeps its place only if the mixed leaves' values (each at most
                // `mixed_top` for any one class; the leader's own are at least 0) cannot close
                // the gap, with room to spare for the rounding of the sums.
                // The trees left may add up to `rest` to any class.
                let gap = votes[best] as f64 - second as f64;
                // Without mixed leaves, after the last tree, the votes are the final sums.
                *slot = if mixed == 0 && (last || gap > rest) {
                    best as u32
                } else if mixed == 0 {
                    let row = (g0 + j) * c;
                    for (s, &v) in sums[row..row + c].iter_mut().zip(&votes[..c]) {
                        *s = v as f32;
                    }
                    SEEDED
                } else if gap > mixed as f64 * self.mixed_top + self.margin + rest {
                    best as u32
                } else {
                    UNDECIDED
                };
            }
        }
    }
}

/// Flips a key's sign bit: signed order of flipped keys is unsigned order of keys.
const SIGN: u32 = 1 << 31;

/// Adds one vote to the rows of `rows` in a bit-sliced counter (`planes[p]`: bit `p` of each
/// row's count), rippling the carry up.
#[inline(always)]
fn add_vote(planes: &mut [[u64; WORDS]], rows: [u64; WORDS]) {
    let mut carry = rows;
    for plane in planes {
        for (b, c) in plane.iter_mut().zip(carry.iter_mut()) {
            let next = *b & *c;
            *b ^= *c;
            *c = next;
        }
    }
}

/// Writes each threshold's set of rows: bit `j` of set `i + 1` is whether row `j`'s key of
/// feature `thresholds[i].0` exceeds `thresholds[i].1`. Set 0 is all zeros.
///
/// # Safety
///
/// AVX2 must be available; `keys` must hold [`GROUP`] flipped keys for every feature the
/// thresholds name, and `index` a set for every threshold plus set 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn build_index(thresholds: &[(u32, u32)], keys: &[u32], index: &mut [Bits]) {
    index[0] = Bits::default();
    // Packing 4 compares' results into bytes interleaves the 128-bit lanes: dwords in the
    // order of rows 0-3, 8-11, 16-19, 24-27, 4-7, 12-15, 20-23, 28-31; this puts them back.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (&(feature, key), set) in thresholds.iter().zip(&mut index[1..]) {
        let col = &keys[feature as usize * GROUP..(feature as usize + 1) * GROUP];
        let t = _mm256_set1_epi32((key ^ SIGN) as i32);
        let out = set.0.as_mut_ptr().cast::<u32>();
        for (j, rows) in col.chunks_exact(32).enumerate() {
            let p = rows.as_ptr().cast::<__m256i>();
            let c0 = _mm256_cmpgt_epi32(_mm256_loadu_si256(p), t);
            let c1 = _mm256_cmpgt_epi32(_mm256_loadu_si256(p.add(1)), t);
            let c2 = _mm256_cmpgt_epi32(_mm256_loadu_si256(p.add(2)), t);
            let c3 = _mm256_cmpgt_epi32(_mm256_loadu_si256(p.add(3)), t);
            let bytes = _mm256_packs_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));
            let bytes = _mm256_permutevar8x32_epi32(bytes, order);
            // `j < GROUP / 32`: within the set's 16 dwords.
            *out.add(j) = _mm256_movemask_epi8(bytes) as u32;
        }
    }
}

/// Walks one tree over a group's rows (`all`) and adds its votes to the counters `votes` (`vp`
/// planes for class 1, then class 2, ..., then the mixed leaves).
///
/// # Safety
///
/// As for [`walk`]; besides, the tree's counted slots must be those of slots of `stack`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tree_votes(
    tree: &SetTree,
    index: &[Bits],
    stack: &mut [Bits],
    all: [u64; WORDS],
    votes: &mut [[u64; WORDS]],
    vp: usize,
) {
    walk(&tree.nodes, index, stack, all);
    // Class 0's votes follow from the others' (every tree votes once for a row that met no
    // mixed leaf), so it needs no counter.
    let mut from = 0;
    for (planes, &end) in votes.chunks_exact_mut(vp).zip(&tree.ends) {
        let mut rows = [0u64; WORDS];
        for &slot in &tree.counted[from..end as usize] {
            let set = &(*stack.as_ptr().add(slot as usize / SET_BYTES)).0;
            for (r, &b) in rows.iter_mut().zip(set) {
                *r |= b;
            }
        }
        from = end as usize;
        add_vote(planes, rows);
    }
}

/// Walks one tree over a group's rows (`all`), leaving the set of each counted leaf in its
/// slot of `stack`.
///
/// # Safety
///
/// AVX2 must be available; every node's `set` must be the byte offset of a set of `index`, and
/// its `store` and `pop` those of a slot of `stack`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn walk(nodes: &[SetNode], index: &[Bits], stack: &mut [Bits], all: [u64; WORDS]) {
    let index = index.as_ptr().cast::<u8>();
    let stack = stack.as_mut_ptr().cast::<u8>();
    let masks = MASKS.0.as_ptr().cast::<u8>();
    // Unaligned loads and stores: as fast as aligned ones on aligned data, and no fault if a
    // set were ever misaligned.
    let load = |p: *const u8| _mm256_loadu_si256(p.cast::<__m256i>());
    // The set reaching the node, in 256-bit parts; the top of the stack of right sets.
    let mut cur: [__m256i; LANES] =
        std::array::from_fn(|h| _mm256_loadu_si256(all.as_ptr().add(4 * h).cast::<__m256i>()));
    let mut top = [_mm256_setzero_si256(); LANES];
    for node in nodes {
        let b = index.add(node.set as usize);
        let store = stack.add(node.store as usize);
        let pop = stack.add(node.pop as usize);
        let leaf = load(masks.add(node.leaf as usize));
        for h in 0..LANES {
            let b = load(b.add(32 * h));
            // An internal node stores the old top below its right set; a leaf, its own set.
            let kept = _mm256_blendv_epi8(top[h], cur[h], leaf);
            _mm256_storeu_si256(store.add(32 * h).cast::<__m256i>(), kept);
            // A leaf (its threshold set empty, so `left` is its whole set) hands on to the top
            // and pops; an internal node goes left and makes its right set the top.
            let left = _mm256_andnot_si256(b, cur[h]);
            let right = _mm256_and_si256(b, cur[h]);
            cur[h] = _mm256_blendv_epi8(left, top[h], leaf);
            top[h] = _mm256_blendv_epi8(right, load(pop.add(32 * h)), leaf);
        }
    }
}

/// Stand-ins where AVX2 cannot exist: [`available`] is false, so [`SetForest::new`] refuses
/// and these are never called.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn build_index(_: &[(u32, u32)], _: &[u32], _: &mut [Bits]) {
    unreachable!("row sets never run off x86-64")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tree_votes(
    _: &SetTree,
    _: &[Bits],
    _: &mut [Bits],
    _: [u64; WORDS],
    _: &mut [[u64; WORDS]],
    _: usize,
) {
    unreachable!("row sets never run off x86-64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Node, LEAF};

    fn key(v: f32) -> u32 {
        v.to_bits()
    }

    fn pure(values: &[f32]) -> Option<u8> {
        let k = values.iter().position(|&v| v == 1.0)?;
        values
            .iter()
            .enumerate()
            .all(|(j, &v)| j == k || v == 0.0)
            .then_some(k as u8)
    }

    fn leaf(left: u32) -> Node {
        Node {
            feature: LEAF,
            threshold: 0.0,
            left,
        }
    }

    fn split(left: u32) -> Node {
        Node {
            feature: 0,
            threshold: 0.5,
            left,
        }
    }

    fn tree(nodes: Vec<Node>, n_classes: usize, leaf_class: impl Fn(usize) -> usize) -> Tree {
        let n_leaves = nodes.iter().filter(|n| n.is_leaf()).count();
        let mut leaf_values = vec![0.0; n_leaves * n_classes];
        for l in 0..n_leaves {
            leaf_values[l * n_classes + leaf_class(l) % n_classes] = 1.0;
        }
        let t = Tree {
            n_features: 1,
            n_classes: n_classes as u32,
            nodes,
            leaf_values,
            importances: vec![0.0],
        };
        t.validate(1, n_classes).expect("a valid tree");
        t
    }

    fn refusal(trees: &[Tree], n_classes: usize) -> String {
        match SetForest::new(trees, n_classes, key, pure) {
            Ok(_) => panic!("row sets took these trees"),
            Err(e) => e,
        }
    }

    /// A stump: node 0 splits, nodes 1 and 2 are leaves 0 and 1.
    fn stump(n_classes: usize) -> Tree {
        tree(vec![split(1), leaf(0), leaf(1)], n_classes, |l| l)
    }

    #[test]
    fn forests_row_sets_cannot_hold_are_refused_with_the_reason() {
        if !available() {
            eprintln!("NOTE: no AVX2 on this CPU: row sets refuse every forest");
            assert!(refusal(&[stump(2)], 2).contains("AVX2"));
            return;
        }
        assert!(SetForest::new(&[stump(2)], 2, key, pure).is_ok());
        assert!(SetForest::new(&[stump(15)], 15, key, pure).is_ok());
        assert!(refusal(&[stump(16)], 16).contains("15 classes, not 16"));
        assert!(refusal(&[], 2).contains("trees"));
        // Both nodes of each level split into the next level's pair: 83 nodes, 2^41 paths.
        let levels = 40u32;
        let mut nodes = vec![split(1)];
        for i in 0..levels {
            nodes.push(split(2 * i + 3));
            nodes.push(split(2 * i + 3));
        }
        nodes.extend([leaf(0), leaf(1)]);
        let e = refusal(&[tree(nodes, 2, |l| l)], 2);
        assert!(e.contains("nodes"), "{e}");
        // A chain of 70,000 splits, each the left child of the one before (its sibling a leaf):
        // the stack of right children grows past the slots a tree may use.
        let depth = 70_000u32;
        let mut nodes = vec![split(1)];
        for i in 1..depth {
            nodes.push(split(2 * i + 1));
            nodes.push(leaf(i - 1));
        }
        nodes.extend([leaf(depth - 1), leaf(depth)]);
        let e = refusal(&[tree(nodes, 2, |l| l)], 2);
        assert!(e.contains("slots"), "{e}");
        // Mixed leaves: 1 of 10 is taken, 2 of 10 are not.
        let mut trees: Vec<Tree> = (0..5).map(|_| stump(2)).collect();
        trees[0].leaf_values[..2].copy_from_slice(&[0.5, 0.5]);
        assert!(SetForest::new(&trees, 2, key, pure).is_ok());
        trees[1].leaf_values[..2].copy_from_slice(&[0.5, 0.5]);
        assert!(refusal(&trees, 2).contains("2 of 10 leaves are mixed"));
    }

    /// The cost model sends small trees to row sets and trees of thousands of nodes, each with
    /// its own threshold, to the walk.
    #[test]
    fn row_sets_pay_for_small_trees_not_for_huge_ones() {
        if !available() {
            eprintln!("NOTE: no AVX2 on this CPU: row sets are not compiled");
            return;
        }
        let stumps: Vec<Tree> = (0..10).map(|_| stump(2)).collect();
        assert!(SetForest::new(&stumps, 2, key, pure).unwrap().pays());
        // Complete trees 13 levels deep: 16,383 nodes, 8,191 thresholds each.
        let levels = 13u32;
        let internal = (1u32 << (levels - 1)) - 1;
        let big = |seed: u32| {
            let nodes: Vec<Node> = (0..2 * internal + 1)
                .map(|i| {
                    if i < internal {
                        Node {
                            feature: 0,
                            threshold: (i * 7 + seed) as f32,
                            left: 2 * i + 1,
                        }
                    } else {
                        leaf(i - internal)
                    }
                })
                .collect();
            tree(nodes, 2, |l| l)
        };
        let forest: Vec<Tree> = (0..4).map(big).collect();
        assert!(!SetForest::new(&forest, 2, key, pure).unwrap().pays());
    }

    /// Preorder slots: a leaf's successor is the right set on top, and each class's counted
    /// leaves are listed in turn, the mixed ones last.
    #[test]
    fn trees_compile_to_preorder_with_their_stack_slots() {
        if !available() {
            eprintln!("NOTE: no AVX2 on this CPU: row sets are not compiled");
            return;
        }
        // 0: split (1, 2); 1: split (3, 4); 2: leaf 0 (class 1); 3: leaf 1 (class 0);
        // 4: leaf 2 (mixed).
        let mut t = tree(
            vec![split(1), split(3), leaf(0), leaf(1), leaf(2)],
            2,
            |l| [1, 0, 0][l],
        );
        t.leaf_values[4..6].copy_from_slice(&[0.25, 0.75]);
        let mut trees = vec![t];
        trees.extend((0..9).map(|_| stump(2)));
        let f = SetForest::new(&trees, 2, key, pure).unwrap();
        // Preorder: 0, 1, 3, 4, 2. Two splits deep: slots 0 and 1 for the stack, 2 spare,
        // 3 and 4 for the counted leaves.
        assert_eq!(f.slots, 2 + 1 + 2);
        let bytes = SET_BYTES as u32;
        let (spare, at) = (2 * bytes, |s: u32| s * bytes);
        let tree = &f.trees[0];
        let kinds: Vec<(u32, u32, u32)> = tree
            .nodes
            .iter()
            .map(|n| (n.store, n.pop, n.leaf))
            .collect();
        assert_eq!(
            kinds,
            [
                // Splits store the old top (none yet at the root).
                (spare, spare, 0),
                (at(0), spare, 0),
                // Leaf 1 (class 0, not stored) goes on to node 4 (the top) and pops node 2's
                // set from slot 0; then leaves 2 and 0 store their sets.
                (spare, at(0), 32),
                (at(3), spare, 32),
                (at(4), spare, 32),
            ]
        );
        // Class 1: leaf 0 (node 2, slot 4); mixed: leaf 2 (node 4, slot 3).
        assert_eq!(tree.counted, [at(4), at(3)]);
        assert_eq!(tree.ends, [1, 2]);
    }
}
