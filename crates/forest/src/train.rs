//! Growing one CART tree: depth-first, with histogram (binned) or exact (sorted) split search.

use fedids_data::FeatureMatrix;
use serde::{Deserialize, Serialize};

use crate::binning::{midpoint, BinnedMatrix};
use crate::tree::{Node, Tree, LEAF};
use fedids_rng::Rng;

/// Node impurity measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Criterion {
    Gini,
    Entropy,
}

impl Criterion {
    /// Impurity of a node with class weights `t` summing to `w` (> 0).
    #[inline]
    fn impurity(self, t: &[f64], w: f64) -> f64 {
        match self {
            Criterion::Gini => {
                let s: f64 = t.iter().map(|&c| c * c).sum();
                1.0 - s / (w * w)
            }
            Criterion::Entropy => {
                let mut h = 0.0;
                for &c in t {
                    if c > 0.0 {
                        let p = c / w;
                        h -= p * p.log2();
                    }
                }
                h
            }
        }
    }
}

/// Per-tree growth limits, already resolved to concrete numbers.
#[derive(Debug, Clone)]
pub(crate) struct TreeParams {
    pub criterion: Criterion,
    pub max_depth: u32,
    pub min_samples_split: u32,
    pub min_samples_leaf: u32,
    /// Number of non-constant features to evaluate per node (1..=n_features).
    pub max_features: usize,
}

/// Everything shared by all trees of one forest fit.
pub(crate) struct TrainData<'a> {
    pub x: &'a FeatureMatrix,
    /// `Some` for histogram search, `None` for exact search.
    pub binned: Option<&'a BinnedMatrix>,
    pub y: &'a [u32],
    pub n_classes: usize,
    /// Weight of one sample of each class (1.0 unless class_weight=balanced).
    pub class_weight: &'a [f64],
}

/// The impurity reduction below which a node counts as pure (as scikit-learn's EPSILON).
const EPSILON: f64 = f64::EPSILON;

/// Nodes with at most this many rows sort their bin codes instead of filling a histogram.
const SMALL_NODE: usize = 32;

/// Candidate features evaluated together in one pass over a node's rows.
const BATCH: usize = 8;

/// Above this many rows, batched histogram passes skip per-row range tracking.
const SCAN_RANGE_ABOVE: usize = 512;

/// Interleaved histogram copies for large nodes (a power of two).
const HIST_COPIES: usize = 4;

/// One drawn row: its id, class and weight (`count * class_weight`).
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    row: u32,
    class: u32,
    weight: f32,
}

struct NodeTask {
    node_idx: usize,
    start: usize,
    end: usize,
    depth: u32,
    totals: Vec<f64>,
    constant: Vec<u64>,
}

struct Best {
    feature: usize,
    threshold: f32,
    /// With histogram search: rows with `bin <= split_bin` go left.
    split_bin: Option<u8>,
    score: f64,
    left: Vec<f64>,
}

struct Builder<'a, 'd> {
    data: &'a TrainData<'d>,
    params: &'a TreeParams,
    rng: Rng,
    /// The drawn rows, grouped by node: a node owns `samples[start..end]`. Class and weight
    /// travel with the row id so that histogram passes read them sequentially.
    samples: Vec<Sample>,
    nodes: Vec<Node>,
    leaf_values: Vec<f32>,
    importances: Vec<f64>,
    features: Vec<u32>,
    hist: Vec<f64>,
    groups: Vec<f64>,
    bounds: Vec<f32>,
    /// With histogram search: the cut index behind each entry of `bounds`.
    bound_bins: Vec<u8>,
    /// Whether histograms also count rows per bin (needed only when min_samples_leaf > 1).
    track_counts: bool,
    keys: Vec<u64>,
    scratch: Vec<Sample>,
    /// One group's statistics while sorting small nodes (class weights and a row count).
    stats_buf: Vec<f64>,
    pairs: Vec<(f32, u32)>,
}

/// Grows one tree on the rows with a non-zero `sample_count`, each weighing
/// `count * class_weight[y]`.
pub(crate) fn build_tree(
    data: &TrainData<'_>,
    params: &TreeParams,
    sample_count: &[u32],
    rng: Rng,
) -> Tree {
    let n_features = data.x.n_features();
    let c = data.n_classes;
    let samples: Vec<Sample> = sample_count
        .iter()
        .zip(data.y)
        .enumerate()
        .filter(|(_, (&n, _))| n > 0)
        .map(|(r, (&n, &y))| Sample {
            row: r as u32,
            class: y,
            weight: (n as f64 * data.class_weight[y as usize]) as f32,
        })
        .collect();
    let mut b = Builder {
        data,
        params,
        rng,
        samples,
        nodes: vec![Node {
            feature: LEAF,
            threshold: 0.0,
            left: 0,
        }],
        leaf_values: Vec::new(),
        importances: vec![0.0; n_features],
        features: (0..n_features as u32).collect(),
        hist: vec![0.0; HIST_COPIES.max(BATCH) * 256 * (c + 1)],
        groups: Vec::new(),
        bounds: Vec::new(),
        bound_bins: Vec::new(),
        track_counts: params.min_samples_leaf > 1,
        keys: Vec::new(),
        scratch: Vec::new(),
        stats_buf: vec![0.0; c + 1],
        pairs: Vec::new(),
    };
    b.grow();
    Tree {
        n_features: n_features as u32,
        n_classes: c as u32,
        nodes: b.nodes,
        leaf_values: b.leaf_values,
        importances: b.importances,
    }
}

impl Builder<'_, '_> {
    fn grow(&mut self) {
        let c = self.data.n_classes;
        let mut totals = vec![0.0; c];
        for s in &self.samples {
            totals[s.class as usize] += s.weight as f64;
        }
        let n_words = self.data.x.n_features().div_ceil(64);
        let mut stack = vec![NodeTask {
            node_idx: 0,
            start: 0,
            end: self.samples.len(),
            depth: 0,
            totals,
            constant: vec![0; n_words],
        }];
        while let Some(task) = stack.pop() {
            let w: f64 = task.totals.iter().sum();
            let n = task.end - task.start;
            let impurity = if w > 0.0 {
                self.params.criterion.impurity(&task.totals, w)
            } else {
                0.0
            };
            let can_split = task.depth < self.params.max_depth
                && n >= self.params.min_samples_split as usize
                && n >= 2 * self.params.min_samples_leaf as usize
                && impurity > EPSILON;
            let mut constant = task.constant;
            let best = if can_split {
                self.find_split(task.start, task.end, &task.totals, &mut constant)
            } else {
                None
            };
            match best {
                None => self.make_leaf(task.node_idx, &task.totals, w),
                Some(best) => {
                    let mid = self.partition(task.start, task.end, &best);
                    let right: Vec<f64> = task
                        .totals
                        .iter()
                        .zip(&best.left)
                        .map(|(t, l)| (t - l).max(0.0))
                        .collect();
                    let wl: f64 = best.left.iter().sum();
                    let wr: f64 = right.iter().sum();
                    let crit = self.params.criterion;
                    let decrease = w * impurity
                        - wl * crit.impurity(&best.left, wl)
                        - wr * crit.impurity(&right, wr);
                    self.importances[best.feature] += decrease.max(0.0);
                    let left_idx = self.nodes.len();
                    self.nodes[task.node_idx] = Node {
                        feature: best.feature as u32,
                        threshold: best.threshold,
                        left: left_idx as u32,
                    };
                    let placeholder = Node {
                        feature: LEAF,
                        threshold: 0.0,
                        left: 0,
                    };
                    self.nodes.push(placeholder);
                    self.nodes.push(placeholder);
                    // Right first so that the left subtree is grown (and laid out) first.
                    stack.push(NodeTask {
                        node_idx: left_idx + 1,
                        start: mid,
                        end: task.end,
                        depth: task.depth + 1,
                        totals: right,
                        constant: constant.clone(),
                    });
                    stack.push(NodeTask {
                        node_idx: left_idx,
                        start: task.start,
                        end: mid,
                        depth: task.depth + 1,
                        totals: best.left,
                        constant,
                    });
                }
            }
        }
    }

    fn make_leaf(&mut self, node_idx: usize, totals: &[f64], w: f64) {
        let leaf_idx = self.leaf_values.len() / self.data.n_classes;
        if w > 0.0 {
            self.leaf_values
                .extend(totals.iter().map(|&t| (t / w) as f32));
        } else {
            let u = 1.0 / self.data.n_classes as f32;
            self.leaf_values
                .extend(std::iter::repeat_n(u, self.data.n_classes));
        }
        self.nodes[node_idx] = Node {
            feature: LEAF,
            threshold: 0.0,
            left: leaf_idx as u32,
        };
    }

    /// Visits features in random order until `max_features` non-constant ones have been
    /// evaluated (constant features do not count, as in scikit-learn), and returns the best split.
    ///
    /// Large nodes under histogram search evaluate features in batches: one pass over the node's
    /// rows fills a histogram per feature of the batch. Batches are drawn from the same
    /// permutation, never past what one-at-a-time visiting would draw, so the features evaluated,
    /// the random draws and the resulting tree are the same as visiting one feature at a time.
    fn find_split(
        &mut self,
        start: usize,
        end: usize,
        totals: &[f64],
        constant: &mut [u64],
    ) -> Option<Best> {
        let n_features = self.features.len();
        let batched = self.data.binned.is_some() && end - start > SMALL_NODE;
        let mut n_evaluated = 0;
        let mut best: Option<Best> = None;
        let mut cursor = 0;
        let mut batch = [0usize; BATCH];
        while n_evaluated < self.params.max_features && cursor < n_features {
            let need =
                (self.params.max_features - n_evaluated).min(if batched { BATCH } else { 1 });
            let mut n_batch = 0;
            while n_batch < need && cursor < n_features {
                let j = cursor + self.rng.below((n_features - cursor) as u64) as usize;
                self.features.swap(cursor, j);
                let f = self.features[cursor] as usize;
                cursor += 1;
                if constant[f / 64] & (1 << (f % 64)) == 0 {
                    batch[n_batch] = f;
                    n_batch += 1;
                }
            }
            let mut ranges = [(0u8, 0u8); BATCH];
            if batched && n_batch > 1 {
                self.fill_batch(start, end, &batch[..n_batch], &mut ranges);
            }
            for (k, &f) in batch[..n_batch].iter().enumerate() {
                let varies = if batched && n_batch > 1 {
                    let (lo, hi) = ranges[k];
                    self.groups_from_hist(f, k * 256 * (self.data.n_classes + 1), lo, hi)
                } else {
                    self.build_groups(start, end, f)
                };
                if !varies {
                    constant[f / 64] |= 1 << (f % 64);
                    continue;
                }
                n_evaluated += 1;
                if let Some((g, score)) = self.sweep(totals, end - start) {
                    if best.as_ref().is_none_or(|b| score > b.score) {
                        let c1 = self.data.n_classes + 1;
                        let mut left = vec![0.0; self.data.n_classes];
                        for grp in self.groups.chunks_exact(c1).take(g + 1) {
                            for (l, v) in left.iter_mut().zip(grp) {
                                *l += v;
                            }
                        }
                        best = Some(Best {
                            feature: f,
                            threshold: self.bounds[g],
                            split_bin: self.data.binned.map(|_| self.bound_bins[g]),
                            score,
                            left,
                        });
                    }
                }
            }
        }
        best
    }

    /// One pass over the node's rows fills histogram `k` (at `k * 256 * (n_classes + 1)`) for
    /// each feature `batch[k]`, and records each feature's occupied bin range.
    #[inline(never)]
    fn fill_batch(&mut self, start: usize, end: usize, batch: &[usize], ranges: &mut [(u8, u8)]) {
        let binned = self
            .data
            .binned
            .expect("batches only under histogram search");
        let c = self.data.n_classes;
        let c1 = c + 1;
        let stride = 256 * c1;
        let mut cols: [&[u8]; BATCH] = [&[]; BATCH];
        for (col, &f) in cols.iter_mut().zip(batch) {
            *col = binned.column(f);
        }
        let cols = &cols[..batch.len()];
        let hist = &mut self.hist[..];
        let mut lo = [u8::MAX; BATCH];
        let mut hi = [0u8; BATCH];
        let samples = &self.samples[start..end];
        // Large nodes find each feature's occupied bin range afterwards, by scanning the 256
        // bins once, instead of tracking it for every row.
        let track_range = samples.len() <= SCAN_RANGE_ABOVE;
        // One pass over the rows instead of a check per row and feature: every row is below
        // `n`, the shortest column's length, so the loop below reads the columns unchecked.
        let n = cols.iter().map(|col| col.len()).min().unwrap_or(0);
        assert!(
            samples.iter().all(|s| (s.row as usize) < n),
            "rows of the columns"
        );
        macro_rules! fill {
            ($m:literal, $counts:literal) => {{
                // The loop twice, so that neither copy tests `track_range` per row.
                if track_range {
                    fill_loop!($m, $counts, true)
                } else {
                    fill_loop!($m, $counts, false)
                }
            }};
        }
        macro_rules! fill_loop {
            ($m:literal, $counts:literal, $track:literal) => {{
                let cols: &[&[u8]; $m] = cols.try_into().expect("batch length");
                let hist = &mut hist[..$m * stride];
                for s in samples {
                    // Read once per row, not once per feature (the compiler cannot tell that
                    // the histogram stores leave the samples alone).
                    let w = s.weight as f64;
                    let row = s.row as usize;
                    // Classes are below `c` (checked by `Forest::fit`); the clamp, which never
                    // changes one, puts the bound below in plain sight.
                    let class = (s.class as usize).min(c);
                    for k in 0..$m {
                        // SAFETY: `row < n <= cols[k].len()` (asserted before the macros).
                        let b = unsafe { *cols[k].get_unchecked(row) };
                        if $track {
                            lo[k] = lo[k].min(b);
                            hi[k] = hi[k].max(b);
                        }
                        let at = k * stride + b as usize * c1;
                        // SAFETY: `k < $m`, `b <= 255` and `class <= c`, so
                        // `at + class <= ($m - 1) * stride + 255 * c1 + c = $m * stride - 1`,
                        // below `hist.len()` (the slice above is exactly `$m * stride` long);
                        // the same holds for `at + c`. With the checks gone (here and on the
                        // columns) and the row read once, this function (two thirds of
                        // training) took 0.61 of its time against the rest of training under
                        // `perf` (NSL-KDD, one thread).
                        unsafe { *hist.get_unchecked_mut(at + class) += w };
                        if $counts {
                            unsafe { *hist.get_unchecked_mut(at + c) += 1.0 };
                        }
                    }
                }
            }};
        }
        // Monomorphised per batch size so that the inner loop is unrolled.
        match (batch.len(), self.track_counts) {
            (2, false) => fill!(2, false),
            (3, false) => fill!(3, false),
            (4, false) => fill!(4, false),
            (5, false) => fill!(5, false),
            (6, false) => fill!(6, false),
            (7, false) => fill!(7, false),
            (8, false) => fill!(8, false),
            (2, true) => fill!(2, true),
            (3, true) => fill!(3, true),
            (4, true) => fill!(4, true),
            (5, true) => fill!(5, true),
            (6, true) => fill!(6, true),
            (7, true) => fill!(7, true),
            (8, true) => fill!(8, true),
            (n, _) => unreachable!("fill_batch is called with 2..={BATCH} features, got {n}"),
        }
        for (k, range) in ranges.iter_mut().enumerate().take(batch.len()) {
            *range = if track_range {
                (lo[k], hi[k])
            } else {
                let bins = &hist[k * stride..(k + 1) * stride];
                let occupied = |b: &usize| bins[b * c1..b * c1 + c].iter().any(|&v| v > 0.0);
                let first = (0..256).find(occupied).unwrap_or(0);
                let last = (0..256).rev().find(occupied).unwrap_or(first);
                (first as u8, last as u8)
            };
        }
    }

    /// Turns the histogram at `offset` (occupied bins `lo..=hi`) of feature `f` into groups and
    /// bounds, clearing it for the next use. Returns false when the feature is constant.
    fn groups_from_hist(&mut self, f: usize, offset: usize, lo: u8, hi: u8) -> bool {
        let c = self.data.n_classes;
        let c1 = c + 1;
        let (lo, hi) = (lo as usize, hi as usize);
        let range = &mut self.hist[offset + lo * c1..offset + (hi + 1) * c1];
        if lo == hi {
            range.iter_mut().for_each(|h| *h = 0.0);
            return false;
        }
        let cuts = &self.data.binned.expect("histogram search").cuts[f];
        self.groups.clear();
        self.bounds.clear();
        self.bound_bins.clear();
        let mut prev_bin: Option<usize> = None;
        for (b, stats) in range.chunks_exact_mut(c1).enumerate() {
            if stats[..c].iter().any(|&v| v > 0.0) {
                let bin = lo + b;
                if let Some(p) = prev_bin {
                    // Any cut between two occupied bins separates them; take the middle one.
                    let k = p + (bin - 1 - p) / 2;
                    self.bounds.push(cuts[k]);
                    self.bound_bins.push(k as u8);
                }
                prev_bin = Some(bin);
                self.groups.extend_from_slice(stats);
                stats.iter_mut().for_each(|h| *h = 0.0);
            }
        }
        true
    }

    /// Fills `groups` (per distinct bin or value, in increasing order: class weights then the
    /// row count) and `bounds` (the threshold between group `i` and `i + 1`). Returns false when
    /// the feature is constant on the node.
    #[inline(never)]
    fn build_groups(&mut self, start: usize, end: usize, f: usize) -> bool {
        let c = self.data.n_classes;
        let c1 = c + 1;
        self.groups.clear();
        self.bounds.clear();
        let samples = &self.samples[start..end];
        match self.data.binned {
            Some(binned) => {
                let codes = binned.column(f);
                let cuts = &binned.cuts[f];
                let mut prev_bin: Option<usize> = None;
                let bound_bins = &mut self.bound_bins;
                bound_bins.clear();
                let mut push_group =
                    |bin: usize, stats: &[f64], groups: &mut Vec<f64>, bounds: &mut Vec<f32>| {
                        if let Some(p) = prev_bin {
                            // Any cut between two occupied bins separates them; take the middle one.
                            let k = p + (bin - 1 - p) / 2;
                            bounds.push(cuts[k]);
                            bound_bins.push(k as u8);
                        }
                        prev_bin = Some(bin);
                        groups.extend_from_slice(stats);
                    };
                if samples.len() <= SMALL_NODE {
                    // Few rows: sorting (bin, position) keys beats scanning a histogram.
                    self.keys.clear();
                    self.keys.extend(
                        samples
                            .iter()
                            .enumerate()
                            .map(|(i, s)| ((codes[s.row as usize] as u64) << 32) | i as u64),
                    );
                    self.keys.sort_unstable();
                    let first = (self.keys[0] >> 32) as usize;
                    if first == (self.keys[self.keys.len() - 1] >> 32) as usize {
                        return false;
                    }
                    let stats = &mut self.stats_buf[..c1];
                    stats.fill(0.0);
                    let mut cur = first;
                    for &k in &self.keys {
                        let bin = (k >> 32) as usize;
                        let i = (k & 0xFFFF_FFFF) as usize;
                        if bin != cur {
                            push_group(cur, stats, &mut self.groups, &mut self.bounds);
                            stats.iter_mut().for_each(|s| *s = 0.0);
                            cur = bin;
                        }
                        stats[samples[i].class as usize] += samples[i].weight as f64;
                        stats[c] += 1.0;
                    }
                    push_group(cur, stats, &mut self.groups, &mut self.bounds);
                } else {
                    // One pass fills full-range histograms and finds the occupied range; only
                    // that range is read and cleared again, so the histograms stay zeroed.
                    // Consecutive rows often share a bin (most flow features are mostly zero);
                    // spreading them over HIST_COPIES copies breaks the store-to-load chain.
                    let stride = 256 * c1;
                    let copies = if samples.len() >= 4 * SMALL_NODE {
                        HIST_COPIES
                    } else {
                        1
                    };
                    let hist = &mut self.hist[..];
                    let (mut lo, mut hi) = (u8::MAX, 0u8);
                    macro_rules! fill {
                        ($counts:literal) => {
                            for (i, s) in samples.iter().enumerate() {
                                let b = codes[s.row as usize];
                                lo = lo.min(b);
                                hi = hi.max(b);
                                let at = (i & (copies - 1)) * stride + b as usize * c1;
                                hist[at + s.class as usize] += s.weight as f64;
                                if $counts {
                                    hist[at + c] += 1.0;
                                }
                            }
                        };
                    }
                    // Per-bin row counts are needed only when min_samples_leaf > 1 (weights are
                    // always positive, so occupancy shows in the class weights).
                    if self.track_counts {
                        fill!(true)
                    } else {
                        fill!(false)
                    }
                    let (lo, hi) = (lo as usize, hi as usize);
                    let (first, rest) = hist.split_at_mut(stride);
                    for k in 1..copies {
                        let other = &mut rest[(k - 1) * stride..k * stride];
                        for (h, o) in first[lo * c1..(hi + 1) * c1]
                            .iter_mut()
                            .zip(&mut other[lo * c1..(hi + 1) * c1])
                        {
                            *h += *o;
                            *o = 0.0;
                        }
                    }
                    let range = &mut first[lo * c1..(hi + 1) * c1];
                    if lo == hi {
                        range.iter_mut().for_each(|h| *h = 0.0);
                        return false;
                    }
                    for (b, stats) in range.chunks_exact_mut(c1).enumerate() {
                        if stats.iter().any(|&v| v > 0.0) {
                            push_group(lo + b, stats, &mut self.groups, &mut self.bounds);
                            stats.iter_mut().for_each(|h| *h = 0.0);
                        }
                    }
                }
                true
            }
            None => {
                let col = self.data.x.column(f);
                self.pairs.clear();
                self.pairs.extend(
                    samples
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (col[s.row as usize], i as u32)),
                );
                self.pairs
                    .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let first = self.pairs[0].0;
                let last = self.pairs[self.pairs.len() - 1].0;
                if first >= last {
                    return false;
                }
                let stats = &mut self.stats_buf[..c1];
                stats.fill(0.0);
                let mut cur = first;
                for &(v, i) in &self.pairs {
                    if v != cur {
                        self.groups.extend_from_slice(stats);
                        self.bounds.push(midpoint(cur, v));
                        stats.iter_mut().for_each(|s| *s = 0.0);
                        cur = v;
                    }
                    let smp = samples[i as usize];
                    stats[smp.class as usize] += smp.weight as f64;
                    stats[c] += 1.0;
                }
                self.groups.extend_from_slice(stats);
                true
            }
        }
    }

    /// Scans boundaries between consecutive groups and returns the best (group index, score),
    /// where score is minus the weighted impurity of the two children (higher is better).
    #[inline(never)]
    fn sweep(&self, totals: &[f64], n: usize) -> Option<(usize, f64)> {
        let c = self.data.n_classes;
        let c1 = c + 1;
        let n_groups = self.groups.len() / c1;
        let min_leaf = self.params.min_samples_leaf as f64;
        let crit = self.params.criterion;
        let mut left = vec![0.0; c];
        let mut right = vec![0.0; c];
        let mut n_left = 0.0;
        let mut best: Option<(usize, f64)> = None;
        for g in 0..n_groups - 1 {
            let stats = &self.groups[g * c1..(g + 1) * c1];
            for (l, s) in left.iter_mut().zip(stats) {
                *l += s;
            }
            if self.track_counts {
                n_left += stats[c];
                let n_right = n as f64 - n_left;
                if n_left < min_leaf {
                    continue;
                }
                if n_right < min_leaf {
                    break;
                }
            }
            for ((r, t), l) in right.iter_mut().zip(totals).zip(&left) {
                *r = (t - l).max(0.0);
            }
            let wl: f64 = left.iter().sum();
            let wr: f64 = right.iter().sum();
            if wl <= 0.0 || wr <= 0.0 {
                continue;
            }
            let score = -(wl * crit.impurity(&left, wl) + wr * crit.impurity(&right, wr));
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((g, score));
            }
        }
        best
    }

    /// Reorders `samples[start..end]` so that rows going left come
    /// first, keeping their relative order; returns the index of the first row that goes right.
    #[inline(never)]
    fn partition(&mut self, start: usize, end: usize, best: &Best) -> usize {
        let n_left = match (self.data.binned, best.split_bin) {
            (Some(binned), Some(k)) => {
                let codes = binned.column(best.feature);
                self.stable_partition(start, end, |r| codes[r as usize] <= k)
            }
            _ => {
                let col = self.data.x.column(best.feature);
                let t = best.threshold;
                self.stable_partition(start, end, |r| col[r as usize] <= t)
            }
        };
        start + n_left
    }

    /// Branch-free stable partition: each sample is written to both sides and only the cursor
    /// of its side advances. Returns the number of samples whose row `goes_left`.
    fn stable_partition(
        &mut self,
        start: usize,
        end: usize,
        goes_left: impl Fn(u32) -> bool,
    ) -> usize {
        let samples = &mut self.samples[start..end];
        let scratch = &mut self.scratch;
        scratch.resize(samples.len(), Sample::default());
        let mut n_left = 0;
        let mut n_right = 0;
        for i in 0..samples.len() {
            let s = samples[i];
            let left = goes_left(s.row);
            // n_left <= i: the slot written here has already been read.
            samples[n_left] = s;
            scratch[n_right] = s;
            n_left += left as usize;
            n_right += !left as usize;
        }
        samples[n_left..].copy_from_slice(&scratch[..n_right]);
        n_left
    }
}
