//! Batch inference with a layout compiled for speed.
//!
//! In the stored tree, a leaf ends traversal. In the compiled tree, a leaf points at itself with
//! threshold `+inf`, so `i = left + (x > threshold)` stays on it: a step needs no data-dependent
//! branch, and the CPU overlaps the independent chains of many rows walking one tree at once.
//!
//! Rows are scored in blocks: a block's rows are copied row-major (plus one all-zero padding row)
//! so they stay in cache while every tree runs; each tree maps each row to the node where it
//! ends, then that leaf's class probabilities are added to the row's sum. Two kernels find the
//! end nodes, with identical results (the sums run in tree order either way, so the outputs are
//! equal bit for bit):
//!
//! - [`Kernel::Portable`]: [`LANES`] rows walk the tree interleaved, their state in registers,
//!   without data-dependent branches; every few steps a lane whose row reached its leaf takes the
//!   next row, so a row costs about its own depth. It compares `u32` [`order_key`]s rather than
//!   floats (an integer compare and add per step), and reads nodes packed in eight bytes
//!   (threshold key, `feature | left << 8`) when the forest allows it.
//! - [`Kernel::Avx512`] (x86-64 CPUs with AVX-512F, chosen with [`KERNEL_ENV`]): 32 lanes in
//!   two vectors walk with gathers, refilled the same way. On NSL-KDD's 100-tree forest the mean
//!   path is about 11.5 nodes; a lock-step walk pays a 32-row group's deepest path, about 18.
//!   It is not the default: on the Zen 4 machine we measured, it ran at 0.59-0.65x the portable
//!   kernel's rate ([`Kernel::preferred`]).
//!
//! There is no AVX2 kernel: on the Zen 3 machine we measured, an 8-lane AVX2 gather costs about
//! 12 cycles, and an AVX2 version of the refilling kernel ran no faster than the portable one.
//!
//! A row equal to an earlier row of its block (every value the same, as the kernels compare them)
//! does not walk: it takes that row's outputs, which are the same bit for bit. Floods repeat flows
//! by the thousand: in the KDD Cup 99 test split of `bench/vs_sklearn.sh`, 39,646 of 98,804 rows
//! are the first of their kind in their block. Where rows hardly repeat (NSL-KDD), finding that out
//! costs a hash and a probe per row, about 2% of the prediction time.
//!
//! [`Predictor::predict`] wants classes, not probabilities. Where the CPU has AVX2, its default
//! ([`Kernel::Sets`]) runs the first half of the trees once per group of rows on bit sets of
//! rows instead of walking them (`sets.rs`), and walks on only the rows those votes leave open.
//! Walking, from the middle of the forest on it drops the rows whose class the remaining trees
//! can no longer change (compacting the block). Either way it returns exactly the argmax of
//! [`Predictor::predict_proba`].
//! [`Predictor::predict_settling`] drops only the rows decided to be one class (detection:
//! benign), and gives every other row its exact probabilities.

use fedids_data::FeatureMatrix;
use rayon::prelude::*;

use crate::error::ForestError;
use crate::sets::{self, SetForest, SetScratch, SEEDED, UNDECIDED};
use crate::tree::{argmax, Tree};

/// Rows walked through a tree together by the portable kernel: their states fit in registers.
const LANES: usize = 8;

/// Steps each lane of the portable kernel takes between two looks at which rows ended. More
/// steps mean fewer looks (each costs about as many instructions as two steps of all lanes) but
/// more idle steps on leaves. Under `perf`, with both kinds of forest (NSL-KDD, KDD Cup 99) and
/// one process running each count in turn, 6 to 8 took 9-11% fewer samples than 4, and 3 about
/// 10% more.
const STEPS: usize = 6;

/// [`Predictor::predict`] looks for decided rows after every this many trees.
const EXIT_EVERY: usize = 4;

/// Slack, relative to the most a whole forest can add to one class, that a decided row's lead
/// keeps beyond the remaining trees' reach: far above the rounding of `f32` sums and of their
/// scaling to means, so the class `predict_proba` would give is the leading one, strictly.
pub(crate) const MARGIN: f64 = 1.0 / 4096.0;

/// Which inner loop finds the leaves. All give the same outputs, bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Scalar interleaved walk, lanes refilled as rows finish; runs everywhere.
    Portable,
    /// AVX-512F gathers with lanes refilled as rows finish.
    Avx512,
    /// Row sets (x86-64 with AVX2) for [`Predictor::predict`]'s classes: the first half of the
    /// trees run once per group of 1,024 rows on bit sets of rows (see `sets.rs`); the rows
    /// their votes cannot settle, and every probability, go to the portable walk.
    Sets,
}

/// The environment variable that picks the kernel: `sets` (the default where the CPU has AVX2),
/// `portable` (the default elsewhere) or `avx512`.
pub const KERNEL_ENV: &str = "FEDIDS_KERNEL";

/// What [`KERNEL_ENV`] accepts.
const KERNEL_VALUES: &str = "expected `sets`, `portable` or `avx512`";

impl Kernel {
    /// The kernel [`KERNEL_ENV`] asks for: `None` when it is unset or empty, an error naming the
    /// accepted values when it holds anything else. Binaries call this at start-up to reject a
    /// misspelt value; [`Kernel::preferred`] falls back to the portable kernel on one.
    pub fn from_env() -> Result<Option<Kernel>, ForestError> {
        match std::env::var(KERNEL_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(v)) => Err(ForestError::Kernel(format!(
                "{KERNEL_ENV}={v:?}: {KERNEL_VALUES}"
            ))),
            Ok(v) => match v.trim() {
                "" => Ok(None),
                "portable" => Ok(Some(Kernel::Portable)),
                "sets" => {
                    if sets::available() {
                        Ok(Some(Kernel::Sets))
                    } else {
                        Err(ForestError::Kernel(format!(
                            "{KERNEL_ENV}=sets, but this CPU has no AVX2"
                        )))
                    }
                }
                "avx512" => {
                    if avx512::available() {
                        Ok(Some(Kernel::Avx512))
                    } else {
                        Err(ForestError::Kernel(format!(
                            "{KERNEL_ENV}=avx512, but this CPU has no AVX-512F"
                        )))
                    }
                }
                other => Err(ForestError::Kernel(format!(
                    "{KERNEL_ENV}={other:?}: {KERNEL_VALUES}"
                ))),
            },
        }
    }

    /// The kernel [`Forest::predictor`](crate::Forest::predictor) asks for: the one
    /// [`KERNEL_ENV`] names, else [`Kernel::Sets`] where the CPU has AVX2, else
    /// [`Kernel::Portable`]. A forest that does not suit row sets gets the portable kernel, and
    /// so, unless [`KERNEL_ENV`] asks for row sets, does one whose trees walk faster by their
    /// cost model (trees of many thousand nodes).
    ///
    /// Of the walking kernels, the portable one is the faster on every CPU we have measured
    /// since its refills were tuned: on a Zen 4 EPYC (AVX-512F, gathers split into micro-ops) the
    /// AVX-512 kernel ran at 0.59-0.65x its rate on NSL-KDD, one process timing both in turn
    /// (`docs/performance.md`). The AVX-512 kernel stays for CPUs whose gathers are cheaper;
    /// `cargo bench -p fedids-forest --bench forest` compares them all.
    pub fn preferred() -> Kernel {
        static PREFERRED: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *PREFERRED.get_or_init(|| {
            Kernel::from_env()
                .ok()
                .flatten()
                .unwrap_or(if sets::available() {
                    Kernel::Sets
                } else {
                    Kernel::Portable
                })
        })
    }
}

/// Rows per parallel task when walking: the row-major copy of a block stays in L2 while every
/// tree runs, and the refilling kernels' tail (where lanes run out of rows) comes once per 1,024
/// rows and tree.
const BLOCK: usize = 1024;

/// Rows per parallel task for row sets, given the batch's rows: up to 4,096, so that a block's
/// distinct rows, where flows repeat, still fill groups of 1,024; but at least 16 blocks per
/// thread where the batch allows (never below a group), so that the last blocks do not leave a
/// thread idle. KDDTest+ (22,544 rows) on 2 threads takes blocks of 1,024, the KDD Cup 99 test
/// split (98,804) blocks of 4,096.
fn sets_block(n_rows: usize) -> usize {
    let tasks = 16 * rayon::current_num_threads().max(1);
    n_rows
        .div_ceil(tasks)
        .next_multiple_of(sets::GROUP)
        .clamp(sets::GROUP, 4 * sets::GROUP)
}

/// A node as the portable kernel reads it: the threshold as an [`order_key`], compared with the
/// keys of the row's values; a leaf has `left` = its own index and the key of `+inf`, which no
/// value's key exceeds, so a walk that reached it stays there.
trait WalkNode: Copy {
    fn feature(self) -> usize;
    fn key(self) -> u32;
    fn left(self) -> u32;
}

/// Eight bytes: `feature | left << 8` and the key (forests with at most 256 features and trees
/// of fewer than 2^23 nodes: see [`packable`]).
#[derive(Clone, Copy)]
struct PackedNode {
    key: u32,
    feature_left: u32,
}

impl WalkNode for PackedNode {
    #[inline(always)]
    fn feature(self) -> usize {
        (self.feature_left & 0xff) as usize
    }
    #[inline(always)]
    fn key(self) -> u32 {
        self.key
    }
    #[inline(always)]
    fn left(self) -> u32 {
        self.feature_left >> 8
    }
}

/// Twelve bytes, for any forest.
#[derive(Clone, Copy)]
struct WideNode {
    feature: u32,
    key: u32,
    left: u32,
}

impl WalkNode for WideNode {
    #[inline(always)]
    fn feature(self) -> usize {
        self.feature as usize
    }
    #[inline(always)]
    fn key(self) -> u32 {
        self.key
    }
    #[inline(always)]
    fn left(self) -> u32 {
        self.left
    }
}

/// The portable kernel's nodes of one tree.
enum Nodes {
    Packed(Vec<PackedNode>),
    Wide(Vec<WideNode>),
}

impl Nodes {
    /// The tree's node count.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn len(&self) -> usize {
        match self {
            Nodes::Packed(nodes) => nodes.len(),
            Nodes::Wide(nodes) => nodes.len(),
        }
    }
}

/// A `u32` whose unsigned order is the order of `f32` comparisons: for `a` and `b` not NaN,
/// `a > b` exactly when `order_key(a) > order_key(b)` (`-0.0` and `0.0` share a key). NaN maps
/// to 0, below every other key, so `NaN > threshold` stays false and NaN goes left, as the
/// stored tree and the AVX-512 kernel send it.
///
/// Without a branch: a block's values are turned into keys by the million.
#[inline(always)]
fn order_key(v: f32) -> u32 {
    // `v + 0.0` turns `-0.0` into `0.0`.
    let bits = (v + 0.0).to_bits();
    // Negative: all bits flipped; otherwise the sign bit set.
    let key = bits ^ ((bits as i32 >> 31) as u32 | 1 << 31);
    if v.is_nan() {
        0
    } else {
        key
    }
}

struct CompiledTree {
    /// For the portable kernel.
    nodes: Nodes,
    /// The class probabilities of each node's leaf, `n_classes` per node (zeros for internal
    /// nodes), so the node where a row ends gives its values without a lookup.
    node_values: Vec<f32>,
    /// Per node: the class `k` when the node is a leaf whose values are `1.0` for `k` and `0.0`
    /// for every other class, else [`MIXED`].
    pure: Vec<u8>,
    /// For the AVX-512 kernel: `feature | left << 8` per node (see [`packable`]).
    packed: Vec<i32>,
    /// For the AVX-512 kernel: the thresholds, in node order.
    thresholds: Vec<f32>,
    /// The largest leaf value: the most this tree adds to one class's sum.
    top: f32,
}

/// Whether [`PackedNode`]s and the AVX-512 kernel can hold these trees: a feature index in 8
/// bits and a node index in 23 (so `feature | left << 8` is a non-negative `i32`), and at least
/// one feature (a leaf reads feature 0 of its row).
fn packable(trees: &[Tree], n_features: usize) -> bool {
    (1..=256).contains(&n_features) && trees.iter().all(|t| t.nodes.len() < 1 << 23)
}

/// A forest's trees in inference layout. Build once, predict many batches.
pub struct Predictor {
    trees: Vec<CompiledTree>,
    /// The trees as row sets, for [`Kernel::Sets`].
    sets: Option<SetForest>,
    n_features: usize,
    n_classes: usize,
    kernel: Kernel,
    /// Whether blocks are copied row-major in AVX2 tiles ([`tiles`]).
    tiled: bool,
}

impl Predictor {
    /// With the [`Kernel::preferred`] kernel.
    /// Row sets, unless [`KERNEL_ENV`] asked for them, give way to the walk where their cost
    /// model says the walk is faster ([`SetForest::pays`]).
    pub(crate) fn new(trees: &[Tree], n_features: usize, n_classes: usize) -> Self {
        let mut p = Predictor::with_kernel(trees, n_features, n_classes, Kernel::preferred())
            .unwrap_or_else(|_| {
                Predictor::with_kernel(trees, n_features, n_classes, Kernel::Portable)
                    .expect("the portable kernel runs everywhere")
            });
        let asked = matches!(Kernel::from_env(), Ok(Some(_)));
        if !asked && p.sets.as_ref().is_some_and(|sets| !sets.pays()) {
            p.kernel = Kernel::Portable;
            p.sets = None;
        }
        p
    }

    /// With the given kernel, or an error when this CPU or these trees cannot run it (the
    /// AVX-512 kernel needs AVX-512F and trees [`packable`] into its nodes).
    pub(crate) fn with_kernel(
        trees: &[Tree],
        n_features: usize,
        n_classes: usize,
        kernel: Kernel,
    ) -> Result<Self, ForestError> {
        // The kernels index without bounds checks on the strength of these invariants.
        trees.par_iter().enumerate().for_each(|(k, t)| {
            if let Err(e) = t.validate(n_features, n_classes) {
                panic!("tree {k} of a forest is invalid (forests hold validated trees): {e}");
            }
        });
        let packs = packable(trees, n_features);
        if kernel == Kernel::Avx512 && !(avx512::available() && packs) {
            return Err(ForestError::Kernel(if packs {
                "the AVX-512 kernel needs AVX-512F, which this CPU lacks".into()
            } else {
                "the AVX-512 kernel needs at most 256 features and trees of fewer than 2^23 nodes"
                    .into()
            }));
        }
        let sets = match kernel {
            Kernel::Sets => Some(
                // Only the trees before the walk's first look, and their thresholds.
                SetForest::new(
                    &trees[..sets_trees(trees.len())],
                    n_classes,
                    order_key,
                    pure_class,
                )
                .map_err(ForestError::Kernel)?,
            ),
            Kernel::Portable | Kernel::Avx512 => None,
        };
        let compiled = trees
            .par_iter()
            .map(|t| {
                // (feature, threshold, left) as the kernels walk them.
                let walked = t.nodes.iter().enumerate().map(|(i, n)| {
                    if n.is_leaf() {
                        // `order_key(+inf)` is `LEAF_KEY`.
                        (0, f32::INFINITY, i as u32)
                    } else {
                        (n.feature, n.threshold, n.left)
                    }
                });
                let nodes = if packs {
                    Nodes::Packed(
                        walked
                            .clone()
                            .map(|(feature, threshold, left)| PackedNode {
                                key: order_key(threshold),
                                feature_left: feature | left << 8,
                            })
                            .collect(),
                    )
                } else {
                    Nodes::Wide(
                        walked
                            .clone()
                            .map(|(feature, threshold, left)| WideNode {
                                feature,
                                key: order_key(threshold),
                                left,
                            })
                            .collect(),
                    )
                };
                let mut node_values = vec![0.0f32; t.nodes.len() * n_classes];
                for (n, values) in t.nodes.iter().zip(node_values.chunks_exact_mut(n_classes)) {
                    if n.is_leaf() {
                        let leaf = n.left as usize;
                        values.copy_from_slice(
                            &t.leaf_values[leaf * n_classes..(leaf + 1) * n_classes],
                        );
                    }
                }
                let pure = (0..t.nodes.len())
                    .map(|i| {
                        pure_class(&node_values[i * n_classes..(i + 1) * n_classes])
                            .unwrap_or(MIXED)
                    })
                    .collect();
                let (packed, thresholds) = if kernel == Kernel::Avx512 {
                    walked
                        .map(|(feature, threshold, left)| ((feature | left << 8) as i32, threshold))
                        .unzip()
                } else {
                    (Vec::new(), Vec::new())
                };
                CompiledTree {
                    top: t.leaf_values.iter().fold(0.0f32, |m, &v| m.max(v)),
                    nodes,
                    node_values,
                    pure,
                    packed,
                    thresholds,
                }
            })
            .collect();
        Ok(Predictor {
            trees: compiled,
            sets,
            n_features,
            n_classes,
            kernel,
            tiled: tiles::available(),
        })
    }

    /// The kernel this predictor uses.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Whether this predictor copies each block row-major in AVX2 tiles (the CPU has AVX2),
    /// rather than with the portable loops.
    pub fn tiled(&self) -> bool {
        self.tiled
    }

    /// This predictor with the portable kernel and no other CPU-specific code, whatever the CPU
    /// (for comparisons and tests).
    pub fn portable(mut self) -> Self {
        self.kernel = Kernel::Portable;
        self.sets = None;
        self.tiled = false;
        self
    }

    /// Mean class probabilities over the trees, row-major (`n_rows * n_classes`).
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Result<Vec<f32>, ForestError> {
        Ok(self.classify(x, Exit::Never, true)?.proba)
    }

    /// The class of each row with the highest mean probability (lowest index on ties): exactly
    /// the argmax of [`Predictor::predict_proba`]'s rows, found with less work.
    ///
    /// From the middle of the forest on, every few trees, a row stops walking once no choice of
    /// leaves in the trees left could change its class: its leading class's sum beats every
    /// other's by more than the most the remaining trees can add (the sum of each tree's largest
    /// leaf value), plus a margin covering the rounding of `f32` sums. Rows still undecided walk
    /// every tree and are decided as `predict_proba` decides them.
    pub fn predict(&self, x: &FeatureMatrix) -> Result<Vec<u32>, ForestError> {
        Ok(self.predict_counting(x)?.0)
    }

    /// [`Predictor::predict`], and how many (row, tree) walks it took: `n_rows * n_trees`
    /// without early exits and repeated rows (a row equal to an earlier one of its block of
    /// 1,024 rows, up to 4,096 for row sets, takes that row's outputs instead of walking). With
    /// row sets, each (row, tree) pair they evaluate counts as a walk.
    pub fn predict_counting(&self, x: &FeatureMatrix) -> Result<(Vec<u32>, u64), ForestError> {
        let done = self.classify(x, Exit::Any, false)?;
        Ok((done.classes, done.walks))
    }

    /// Each row's class, as [`Predictor::predict`] gives it, and its mean probabilities, as
    /// [`Predictor::predict_proba`] gives them, bit for bit, except for the rows whose class is
    /// decided early to be `settle`: those stop walking and their probabilities are all zero.
    ///
    /// For detection: a flow settled as benign raises no alert, whatever its exact probability,
    /// while an alert carries the exact probability of its class.
    pub fn predict_settling(
        &self,
        x: &FeatureMatrix,
        settle: u32,
    ) -> Result<(Vec<u32>, Vec<f32>), ForestError> {
        let done = self.classify(x, Exit::Class(settle), true)?;
        Ok((done.classes, done.proba))
    }

    /// Classes (and, if `with_proba`, probabilities) with the early exits `exit` allows.
    fn classify(
        &self,
        x: &FeatureMatrix,
        exit: Exit,
        with_proba: bool,
    ) -> Result<Classified, ForestError> {
        self.check_input(x)?;
        let c = self.n_classes;
        let nf = self.n_features;
        let n_trees = self.trees.len();
        // Row sets give classes only, with the walk's exits for any class.
        let row_sets = (matches!(exit, Exit::Any) && !with_proba)
            .then_some(self.sets.as_ref())
            .flatten();
        let block = if row_sets.is_some() {
            sets_block(x.n_rows())
        } else {
            BLOCK
        };
        let scale = 1.0 / n_trees.max(1) as f32;
        // `reach[t]`: the most trees `t..` can add to one class's sum.
        let mut reach = vec![0.0f64; n_trees + 1];
        for t in (0..n_trees).rev() {
            reach[t] = reach[t + 1] + self.trees[t].top as f64;
        }
        let total = reach[0];
        let n_blocks = x.n_rows().div_ceil(block);
        let blocks: Vec<Classified> = (0..n_blocks)
            .into_par_iter()
            .map(|block_idx| {
                let start = block_idx * block;
                let rows = block.min(x.n_rows() - start);
                let mut classes = vec![0u32; rows];
                let mut proba = vec![0.0f32; if with_proba { rows * c } else { 0 }];
                let mut walks = 0u64;
                let mut buf = self.row_major(x, start, rows);
                // The rows still walking, compacted to the front of `buf`, `acc` and `ids`:
                // at first, each distinct row of the block.
                let Distinct {
                    rows: mut ids,
                    copies,
                } = distinct_rows(&mut buf, nf, rows);
                // Row sets run the first `seed_at` trees: they give the classes the trees left
                // cannot change; rows that met a mixed leaf walk from the first tree, and the
                // other undecided rows join the walk at tree `seed_at`, their votes as their sums.
                let mut seeded = Seeded::default();
                let seed_at = sets_trees(n_trees);
                if let Some(sets) = row_sets {
                    let n = ids.len();
                    let mut decided = vec![0u32; n];
                    let mut sums = vec![0.0f32; n * c];
                    let cols: Vec<&[f32]> =
                        (0..nf).map(|f| &x.column(f)[start..start + rows]).collect();
                    let left = (n_trees - seed_at) as f64;
                    let rest = (seed_at < n_trees)
                        .then(|| reach[seed_at] + total * (MARGIN + left * f32::EPSILON as f64));
                    SET_SCRATCH.with(|scratch| {
                        let scratch = &mut scratch.borrow_mut();
                        sets.classify(
                            &cols,
                            &ids,
                            order_key,
                            rest,
                            scratch,
                            &mut decided,
                            &mut sums,
                        )
                    });
                    walks += (n * seed_at) as u64;
                    let mut kept = 0;
                    for (k, &class) in decided.iter().enumerate() {
                        match class {
                            UNDECIDED => {
                                ids[kept] = ids[k];
                                buf.copy_within(k * nf..(k + 1) * nf, kept * nf);
                                kept += 1;
                            }
                            SEEDED => {
                                seeded.ids.push(ids[k]);
                                seeded.rows.extend_from_slice(&buf[k * nf..(k + 1) * nf]);
                                seeded.sums.extend_from_slice(&sums[k * c..(k + 1) * c]);
                            }
                            class => classes[ids[k] as usize] = class,
                        }
                    }
                    ids.truncate(kept);
                    buf[kept * nf..(kept + 1) * nf].fill(0);
                }
                let mut acc = vec![0.0f32; ids.len() * c];
                let mut ends = vec![0u32; ids.len()];
                let mut scratch = Scratch::default();
                for t in 0..n_trees {
                    if t == seed_at && !seeded.ids.is_empty() {
                        // The seeded rows join behind the rows walking, the padding row after.
                        let live = ids.len();
                        let joined = live + seeded.ids.len();
                        buf[live * nf..joined * nf].copy_from_slice(&seeded.rows);
                        buf[joined * nf..(joined + 1) * nf].fill(0);
                        ids.extend_from_slice(&seeded.ids);
                        acc.truncate(live * c);
                        acc.extend_from_slice(&seeded.sums);
                        ends.resize(joined, 0);
                    }
                    let live = ids.len();
                    walks += live as u64;
                    self.walk(t, &buf[..(live + 1) * nf], &mut ends[..live], &mut scratch);
                    self.add_leaves(t, &ends[..live], &mut acc[..live * c]);
                    let done = t + 1;
                    if matches!(exit, Exit::Never)
                        || c < 2
                        || done * 2 < n_trees
                        || done % EXIT_EVERY != 0
                        || done == n_trees
                    {
                        continue;
                    }
                    // Each of the `left` additions still to come to a sum rounds by at most half
                    // an ulp of `total`; a leading sum never shrinks (its terms are >= 0).
                    let left = (n_trees - done) as f64;
                    let bound = reach[done] + total * (MARGIN + left * f32::EPSILON as f64);
                    let mut kept = 0;
                    for k in 0..live {
                        let sums = &acc[k * c..(k + 1) * c];
                        let best = argmax(sums);
                        let may_exit = match exit {
                            Exit::Never => false,
                            Exit::Any => true,
                            Exit::Class(settle) => best == settle,
                        };
                        let decided = may_exit
                            && sums
                                .iter()
                                .enumerate()
                                .filter(|&(j, _)| j != best as usize)
                                .all(|(_, &v)| sums[best as usize] as f64 - v as f64 > bound);
                        if decided {
                            classes[ids[k] as usize] = best;
                        } else {
                            if kept != k {
                                ids[kept] = ids[k];
                                acc.copy_within(k * c..(k + 1) * c, kept * c);
                                buf.copy_within(k * nf..(k + 1) * nf, kept * nf);
                            }
                            kept += 1;
                        }
                    }
                    ids.truncate(kept);
                    // The padding row moves up behind the rows left.
                    buf[kept * nf..(kept + 1) * nf].fill(0);
                }
                // The rows that walked every tree: their means, as `predict_proba` scales them.
                let mut mean = vec![0.0f32; c];
                for (k, &id) in ids.iter().enumerate() {
                    for (m, &a) in mean.iter_mut().zip(&acc[k * c..(k + 1) * c]) {
                        *m = a * scale;
                    }
                    let id = id as usize;
                    classes[id] = argmax(&mean);
                    if with_proba {
                        proba[id * c..(id + 1) * c].copy_from_slice(&mean);
                    }
                }
                // A repeated row walks as its first occurrence did, so it gets its outputs.
                for &(copy, of) in &copies {
                    let (copy, of) = (copy as usize, of as usize);
                    classes[copy] = classes[of];
                    if with_proba {
                        proba.copy_within(of * c..(of + 1) * c, copy * c);
                    }
                }
                Classified {
                    classes,
                    proba,
                    walks,
                }
            })
            .collect();
        let mut all = Classified {
            classes: Vec::with_capacity(x.n_rows()),
            proba: Vec::with_capacity(if with_proba { x.n_rows() * c } else { 0 }),
            walks: 0,
        };
        for b in blocks {
            all.classes.extend(b.classes);
            all.proba.extend(b.proba);
            all.walks += b.walks;
        }
        Ok(all)
    }

    fn check_input(&self, x: &FeatureMatrix) -> Result<(), ForestError> {
        if x.n_features() != self.n_features {
            return Err(ForestError::FeatureCount {
                expected: self.n_features,
                found: x.n_features(),
            });
        }
        Ok(())
    }

    /// Rows `start..start + rows` of `x`, row-major, then one all-zero row for the AVX-512
    /// kernel's idle lanes: as [`order_key`]s for the portable kernel, as `f32` bits for the
    /// AVX-512 kernel.
    fn row_major(&self, x: &FeatureMatrix, start: usize, rows: usize) -> Vec<u32> {
        let nf = self.n_features;
        let mut buf = vec![0u32; (rows + 1) * nf];
        let keys = self.kernel != Kernel::Avx512;
        let cols: Vec<&[f32]> = (0..nf).map(|f| &x.column(f)[start..start + rows]).collect();
        // Tiles of 8 rows by 8 features where the CPU has AVX2: 8 loads from the columns, the
        // keys, a transpose in registers and 8 stores to the rows. Alternate blocks one way and
        // the other in one process, then swapped: 4.2-4.4% of KDD Cup 99's prediction samples
        // against 6.9-7.1% for the scalar copy below, 1.9-2.1% against 2.7-2.9% on NSL-KDD
        // (with rows as the outer loop; feature tiles outside took it down by 55-70% again).
        let (tiled_rows, tiled_features) = if self.tiled {
            tiles::copy(&cols, rows, &mut buf, keys)
        } else {
            (0, 0)
        };
        // The rest column by column: each column's part is one sequential read, which the
        // hardware prefetcher follows, and the block's copy stays in L2 for the strided writes.
        // (In tiles of 64 rows, 41 short reads in turn, this took 12.5% of KDD Cup 99's
        // prediction time under `perf`, against 9.6%; row by row, 8.7% of the samples against
        // 6.2%.)
        for (f, col) in cols.iter().enumerate() {
            let from = if f < tiled_features { tiled_rows } else { 0 };
            for (row, &v) in buf.chunks_exact_mut(nf).zip(col.iter()).skip(from) {
                row[f] = v.to_bits();
            }
        }
        // Their keys in a second pass over the copy's rows, which the compiler vectorises:
        // computed on the strided writes, they took 7.4% and 6.4% of KDD Cup 99's prediction
        // samples against 5.9% and 5.7% so (alternate blocks, swapped).
        if keys {
            for (r, row) in buf.chunks_exact_mut(nf).take(rows).enumerate() {
                let from = if r < tiled_rows { tiled_features } else { 0 };
                for cell in &mut row[from..] {
                    *cell = order_key(f32::from_bits(*cell));
                }
            }
        }
        buf
    }

    /// Writes to `ends[r]` the node of tree `t` where row `r` of `buf` ends (`buf` holds
    /// `ends.len() + 1` rows, the last all zeros).
    fn walk(&self, t: usize, buf: &[u32], ends: &mut [u32], scratch: &mut Scratch) {
        let tree = &self.trees[t];
        match self.kernel {
            Kernel::Portable | Kernel::Sets => match &tree.nodes {
                Nodes::Packed(nodes) => walk_refill(nodes, buf, self.n_features, ends),
                Nodes::Wide(nodes) => walk_refill(nodes, buf, self.n_features, ends),
            },
            Kernel::Avx512 => avx512::walk(tree, buf, self.n_features, ends, scratch),
        }
    }

    /// Adds to each row's class sums (`acc`, row-major) the leaf of tree `t` it ended on.
    fn add_leaves(&self, t: usize, ends: &[u32], acc: &mut [f32]) {
        let values = &self.trees[t].node_values;
        let pure = &self.trees[t].pure;
        // A loop per common class count, so the compiler unrolls each row's additions.
        match self.n_classes {
            2 => add_values::<2>(values, pure, ends, acc),
            5 => add_values::<5>(values, pure, ends, acc),
            c => {
                for (acc, &end) in acc.chunks_exact_mut(c).zip(ends) {
                    let end = end as usize;
                    add_leaf(acc, pure[end], values, end);
                }
            }
        }
    }
}

/// Marks a node in [`CompiledTree::pure`] that is not a pure leaf.
const MIXED: u8 = u8::MAX;

/// `k` when `values` are `1.0` for class `k < MIXED` and `0.0` for every other class.
fn pure_class(values: &[f32]) -> Option<u8> {
    let k = values.iter().position(|&v| v != 0.0)?;
    let only = values[k] == 1.0 && values[k + 1..].iter().all(|&v| v == 0.0);
    u8::try_from(k).ok().filter(|&k| only && k < MIXED)
}

/// Adds to each row's `C` class sums the values of the node it ended on (`C` per node).
///
/// Almost every leaf of a forest grown to full depth is pure: in NSL-KDD's 5-class forest, 99.97%
/// of the (row, tree) walks end on one. Such a leaf adds `1.0` to one class and `0.0` to the
/// others, and adding `0.0` leaves a sum (never below `+0.0`) as it was, bit for bit; so a pure
/// leaf's row takes one addition and a byte from [`CompiledTree::pure`] instead of `C` values
/// from a table that, forest-wide, does not stay in L2.
fn add_values<const C: usize>(values: &[f32], pure: &[u8], ends: &[u32], acc: &mut [f32]) {
    for (acc, &end) in acc.chunks_exact_mut(C).zip(ends) {
        let end = end as usize;
        add_leaf(acc, pure[end], values, end);
    }
}

/// Adds the leaf a row ended on (node `end`) to the row's class sums (`acc`): `1.0` to the class
/// a pure leaf's mark names, or, for a mixed leaf ([`MIXED`]), its values from `values` (one per
/// class, per node), sliced only then (on KDD Cup 99 the additions took 3.5-3.6% of the samples
/// against 3.8-4.0% when every row sliced them). The mark itself is tested, not a range: with
/// more classes than a byte names, `MIXED` is also a class index.
#[inline(always)]
fn add_leaf(acc: &mut [f32], mark: u8, values: &[f32], end: usize) {
    if mark == MIXED {
        let c = acc.len();
        for (a, v) in acc.iter_mut().zip(&values[end * c..(end + 1) * c]) {
            *a += v;
        }
    } else {
        acc[mark as usize] += 1.0;
    }
}

/// The key of a leaf in the portable kernel's nodes: that of `+inf`, which no value's key
/// exceeds. No internal node has it: a validated tree's thresholds are finite.
const LEAF_KEY: u32 = 0xff80_0000;

/// The portable kernel: writes the node where row `r` of `buf` ends to `ends[r]`.
///
/// [`LANES`] rows walk at once, their state held in registers: every lane takes [`STEPS`] steps
/// in turn, so the CPU overlaps the lanes' independent chains of loads, and nothing in a step
/// branches on the data (a leaf loops on itself, so a lane that reached one stays there). After
/// the steps, each lane writes its node to its row's slot (the last write is the leaf), and a
/// lane whose row ended takes the next row, from the root, so a row costs about its own depth.
/// Once no row is left to start, finished lanes stay parked on their leaves until all are done.
/// Looking at the lanes only every few steps costs a parked lane up to `STEPS - 1` idle steps and
/// saves a refill decision on the other steps.
///
/// While rows remain for every finished lane (all but the last rounds of a walk), the refill
/// hands them out without asking, lane by lane, whether one is left: the lanes' new rows follow
/// from a running count of finished lanes, with no chain of compares through the lanes. Under
/// `perf` (even trees one way, odd trees the other, and swapped) this took the walk's samples
/// down by about 8% on NSL-KDD and 6% on KDD Cup 99 against a refill that asked.
fn walk_refill<N: WalkNode>(nodes: &[N], buf: &[u32], nf: usize, ends: &mut [u32]) {
    let n_rows = ends.len();
    assert!(buf.len() >= n_rows * nf, "a value per row and feature");
    if n_rows == 0 {
        return;
    }
    if nf == 0 {
        // No feature to split on: every tree of such a forest is one leaf, its root.
        ends.fill(0);
        return;
    }
    // Lane `k` walks row `row[k]` and is at node `node[k]`. With fewer rows than lanes, the
    // spare lanes walk the last row as well: the same path, so the same writes.
    let mut row = [0usize; LANES];
    // Nodes as `usize`: as `u32` each step spent an instruction widening the index.
    let mut node = [0usize; LANES];
    for (k, r) in row.iter_mut().enumerate() {
        *r = k.min(n_rows - 1);
    }
    let mut next_row = LANES.min(n_rows);
    loop {
        for _ in 0..STEPS {
            for k in 0..LANES {
                let i = node[k];
                // SAFETY: `i < nodes.len()`: it is the root or `left + 0 or 1` of a node of a
                // validated tree, where a leaf's `left` is itself and no key exceeds its key of
                // `+inf`. `row[k] < n_rows` (rows start only below it) and a node's feature is
                // below `nf` (validated; leaves read feature 0 and `nf > 0`), so
                // `row[k] * nf + feature < buf.len()`.
                let n = unsafe { *nodes.get_unchecked(i) };
                let v = unsafe { *buf.get_unchecked(row[k] * nf + n.feature()) };
                node[k] = n.left() as usize + (v > n.key()) as usize;
            }
        }
        // A lane has finished when its node is a leaf, known by its key. Looking at the node
        // after the steps, rather than at the last step's move, catches a row that reached its
        // leaf on that very step; under `perf` the kernel took 4-8% fewer samples so.
        let finished: [bool; LANES] = std::array::from_fn(|k| {
            // SAFETY: `node[k] < nodes.len()`, as for every step above.
            let n = unsafe { *nodes.get_unchecked(node[k]) };
            n.key() == LEAF_KEY
        });
        for k in 0..LANES {
            // SAFETY: `row[k] < n_rows == ends.len()` (above).
            unsafe { *ends.get_unchecked_mut(row[k]) = node[k] as u32 };
        }
        let n_finished: usize = finished.iter().map(|&f| f as usize).sum();
        if next_row + n_finished <= n_rows {
            // A row for every finished lane: lane `k` takes `next_row` plus the count of
            // finished lanes before it, which stays below `n_rows`.
            let mut r = next_row;
            for k in 0..LANES {
                row[k] = if finished[k] { r } else { row[k] };
                node[k] = if finished[k] { 0 } else { node[k] };
                r += finished[k] as usize;
            }
            next_row = r;
        } else {
            // The last rows: a finished lane takes one while any is left, else it parks.
            let mut all_parked = true;
            for k in 0..LANES {
                let take = finished[k] & (next_row < n_rows);
                row[k] = if take { next_row } else { row[k] };
                node[k] = if take { 0 } else { node[k] };
                next_row += take as usize;
                all_parked &= finished[k] & !take;
            }
            if all_parked {
                return;
            }
        }
    }
}

/// The row-major copy of a block in tiles of 8 rows by 8 features, with AVX2.
#[cfg(target_arch = "x86_64")]
mod tiles {
    use std::arch::x86_64::*;

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    /// Writes the first `rows / 8 * 8` rows and `cols.len() / 8 * 8` features of a block into
    /// `buf`, row-major (`cols.len()` values per row): as [`super::order_key`]s if `keys`, else
    /// as `f32` bits. `cols[f]` holds feature `f` of the block's rows. Returns the counts of
    /// rows and features written; the caller writes the rest.
    pub(super) fn copy(
        cols: &[&[f32]],
        rows: usize,
        buf: &mut [u32],
        keys: bool,
    ) -> (usize, usize) {
        assert!(available(), "the tiled copy runs only where AVX2 is");
        let nf = cols.len();
        assert!(cols.iter().all(|c| c.len() >= rows) && buf.len() >= rows * nf);
        // SAFETY: AVX2 is available (checked above). Every load reads 8 values of a column from
        // row `r`, with `r + 8 <= rows <= column length`; every store writes 8 values of row
        // `r + i < rows` from feature `f0`, with `f0 + 8 <= nf`, so below `rows * nf <=
        // buf.len()`.
        unsafe { copy_inner(cols, rows, buf, keys) }
    }

    /// [`super::order_key`] of 8 values.
    #[target_feature(enable = "avx2")]
    fn keys_of(v: __m256) -> __m256 {
        // `v + 0.0` turns `-0.0` into `0.0`.
        let v = _mm256_add_ps(v, _mm256_setzero_ps());
        let bits = _mm256_castps_si256(v);
        let flip = _mm256_or_si256(_mm256_srai_epi32::<31>(bits), _mm256_set1_epi32(i32::MIN));
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        _mm256_castsi256_ps(_mm256_andnot_si256(nan, _mm256_xor_si256(bits, flip)))
    }

    #[target_feature(enable = "avx2")]
    unsafe fn copy_inner(
        cols: &[&[f32]],
        rows: usize,
        buf: &mut [u32],
        keys: bool,
    ) -> (usize, usize) {
        let nf = cols.len();
        let (tiled_rows, tiled_features) = (rows / 8 * 8, nf / 8 * 8);
        let out = buf.as_mut_ptr().cast::<f32>();
        // Feature tiles outside, rows inside: each pass reads 8 columns in order, which the
        // hardware prefetcher follows, while the block's rows stay in L2 for the writes. Rows
        // outside (41 columns read in turn, 8 rows at a time) took 2.3-2.4% of NSL-KDD's
        // prediction samples against 0.7-0.8%, and 4.6-5.1% of KDD Cup 99's against 2.0%
        // (alternate blocks one way and the other, in one process, then swapped).
        for f0 in (0..tiled_features).step_by(8) {
            for r in (0..tiled_rows).step_by(8) {
                // `v[j]`: feature `f0 + j` of rows `r..r + 8`.
                let v: [__m256; 8] = std::array::from_fn(|j| {
                    let v = _mm256_loadu_ps(cols[f0 + j].as_ptr().add(r));
                    if keys {
                        keys_of(v)
                    } else {
                        v
                    }
                });
                // Transposed: `w[i]`, features `f0..f0 + 8` of row `r + i`.
                let t0 = _mm256_unpacklo_ps(v[0], v[1]);
                let t1 = _mm256_unpackhi_ps(v[0], v[1]);
                let t2 = _mm256_unpacklo_ps(v[2], v[3]);
                let t3 = _mm256_unpackhi_ps(v[2], v[3]);
                let t4 = _mm256_unpacklo_ps(v[4], v[5]);
                let t5 = _mm256_unpackhi_ps(v[4], v[5]);
                let t6 = _mm256_unpacklo_ps(v[6], v[7]);
                let t7 = _mm256_unpackhi_ps(v[6], v[7]);
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let w = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (i, w) in w.into_iter().enumerate() {
                    _mm256_storeu_ps(out.add((r + i) * nf + f0), w);
                }
            }
        }
        (tiled_rows, tiled_features)
    }
}

/// Stand-in where AVX2 cannot exist: never available, never called.
#[cfg(not(target_arch = "x86_64"))]
mod tiles {
    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn copy(_: &[&[f32]], _: usize, _: &mut [u32], _: bool) -> (usize, usize) {
        unreachable!("the predictor never copies in AVX2 tiles off x86-64")
    }
}

/// Which rows [`Predictor::classify`] lets stop walking once their class is decided.
#[derive(Clone, Copy)]
enum Exit {
    /// None: every row walks every tree.
    Never,
    /// Every row.
    Any,
    /// Rows decided to be this class.
    Class(u32),
}

/// A block's distinct rows, as [`distinct_rows`] leaves them.
struct Distinct {
    /// The first occurrence of each distinct row, by index in the block, ascending.
    rows: Vec<u32>,
    /// `(row, earlier row it repeats)` for every other row.
    copies: Vec<(u32, u32)>,
}

/// Moves the first occurrence of each distinct row of a block (`rows` rows of `nf` values in
/// `buf`, row-major, plus one padding row) to the front of `buf`, in order, followed by an
/// all-zero padding row; the rest of `buf` is left unspecified.
///
/// Rows are equal when their values are, bit for bit as the kernels read them, so a repeat walks
/// every tree to the same leaves as its first occurrence and gets the same outputs, bit for bit.
/// Flood traffic repeats flows by the thousand (KDD Cup 99 is mostly such floods), and this costs
/// a hash and a probe per row where nothing repeats.
fn distinct_rows(buf: &mut [u32], nf: usize, rows: usize) -> Distinct {
    distinct_rows_by(buf, nf, rows, hash_row)
}

/// [`distinct_rows`] with any hash: equal hashes are only a hint, rows are compared.
fn distinct_rows_by(
    buf: &mut [u32],
    nf: usize,
    rows: usize,
    hash: impl Fn(&[u32]) -> u64,
) -> Distinct {
    let mut distinct = Distinct {
        rows: Vec::with_capacity(rows),
        copies: Vec::new(),
    };
    if rows == 0 || nf == 0 {
        // No value tells rows apart: each walks on its own (a forest without features is one
        // leaf per tree).
        distinct.rows.extend(0..rows as u32);
        buf[rows * nf..(rows + 1) * nf].fill(0);
        return distinct;
    }
    // Open addressing, at most half full: the compacted position of a distinct row, or EMPTY.
    const EMPTY: u32 = u32::MAX;
    let bits = (2 * rows).next_power_of_two().trailing_zeros();
    let mask = (1usize << bits) - 1;
    let mut slots = vec![EMPTY; mask + 1];
    let mut hashes: Vec<u64> = Vec::with_capacity(rows);
    for r in 0..rows {
        let h = hash(&buf[r * nf..(r + 1) * nf]);
        let mut s = (h >> (64 - bits)) as usize;
        loop {
            let k = slots[s];
            if k == EMPTY {
                let kept = distinct.rows.len();
                slots[s] = kept as u32;
                // `kept <= r`: rows before `r` that were not kept left room at the front.
                buf.copy_within(r * nf..(r + 1) * nf, kept * nf);
                distinct.rows.push(r as u32);
                hashes.push(h);
                break;
            }
            let k = k as usize;
            if hashes[k] == h && buf[k * nf..(k + 1) * nf] == buf[r * nf..(r + 1) * nf] {
                distinct.copies.push((r as u32, distinct.rows[k]));
                break;
            }
            s = (s + 1) & mask;
        }
    }
    let kept = distinct.rows.len();
    buf[kept * nf..(kept + 1) * nf].fill(0);
    distinct
}

/// A hash of a row's values: four independent multiply-xor chains (so the multiplies overlap),
/// folded and mixed so that the top bits, which pick a slot, depend on every value.
fn hash_row(row: &[u32]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = [1u64, 2, 3, 4];
    let mut quads = row.chunks_exact(8);
    for q in &mut quads {
        for (j, h) in h.iter_mut().enumerate() {
            let v = q[2 * j] as u64 | (q[2 * j + 1] as u64) << 32;
            *h = (*h ^ v).wrapping_mul(K).rotate_left(29);
        }
    }
    for (j, &v) in quads.remainder().iter().enumerate() {
        h[j % 4] = (h[j % 4] ^ v as u64).wrapping_mul(K).rotate_left(29);
    }
    let mut s = h[0] ^ h[1].rotate_left(16) ^ h[2].rotate_left(32) ^ h[3].rotate_left(48);
    fedids_rng::splitmix64(&mut s)
}

thread_local! {
    /// Each thread's memory for row sets (index, stack, keys: about 250 KB on NSL-KDD's forests),
    /// kept from block to block.
    static SET_SCRATCH: std::cell::RefCell<SetScratch> = std::cell::RefCell::default();
}

/// Rows row sets leave to the walk from a later tree: block-relative ids, their row-major keys
/// and their class sums so far.
#[derive(Default)]
struct Seeded {
    ids: Vec<u32>,
    rows: Vec<u32>,
    sums: Vec<f32>,
}

/// The trees row sets run before the walk takes the rows they leave undecided: the first tree
/// after which the walk looks for decided rows (the middle of the forest, rounded up to a look),
/// or all of them.
fn sets_trees(n_trees: usize) -> usize {
    n_trees
        .div_ceil(2)
        .next_multiple_of(EXIT_EVERY)
        .min(n_trees)
}

/// Classes, probabilities (if asked for) and the (row, tree) walks it took.
struct Classified {
    classes: Vec<u32>,
    proba: Vec<f32>,
    walks: u64,
}

/// The AVX-512 kernel's record of finished rows (and the node each ended on).
#[derive(Default)]
struct Scratch {
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    rows: Vec<i32>,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    ends: Vec<i32>,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{CompiledTree, Scratch};

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// The AVX-512 kernel: writes the node where row `r` of `buf` ends to `ends[r]`.
    ///
    /// `buf` holds `ends.len() + 1` rows of `nf` values, the last all zeros; `tree.packed` and
    /// `tree.thresholds` are filled (the predictor chose this kernel).
    pub(super) fn walk(
        tree: &CompiledTree,
        buf: &[u32],
        nf: usize,
        ends: &mut [u32],
        scratch: &mut Scratch,
    ) {
        assert!(
            available(),
            "the AVX-512 kernel runs only where AVX-512F is available"
        );
        assert_eq!(
            buf.len(),
            (ends.len() + 1) * nf,
            "one padding row after the block"
        );
        let len = tree.nodes.len();
        assert!(tree.packed.len() == len && tree.thresholds.len() == len);
        // SAFETY: AVX-512F is available (checked above). Every gather index is in bounds: node
        // indices start at 0 and follow `left + (0 or 1)`, which stays below `nodes.len()` in a
        // validated tree; a leaf loops on itself (`left` is its own index and no value is
        // greater than its `+inf` threshold under the ordered compare, NaN included); a row
        // index is at most `ends.len()`, the
        // padding row, and a feature index is below `nf` (validated; leaves read feature 0 and
        // `nf >= 1` by `packable`), so `row * nf + feature < buf.len()`.
        unsafe { walk_inner(tree, buf, nf, ends, scratch) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn walk_inner(
        tree: &CompiledTree,
        buf: &[u32],
        nf: usize,
        ends: &mut [u32],
        scratch: &mut Scratch,
    ) {
        /// Vectors of 16 lanes walked together: two hide most of the gathers' latency.
        const V: usize = 2;
        let n_rows = ends.len() as i32;
        let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let ones = _mm512_set1_epi32(1);
        let low8 = _mm512_set1_epi32(0xff);
        let nf_v = _mm512_set1_epi32(nf as i32);
        let last = _mm512_set1_epi32(n_rows);
        let packed = tree.packed.as_ptr();
        let thresholds = tree.thresholds.as_ptr();
        // The block holds `f32` bits for this kernel.
        let rows_ptr = buf.as_ptr().cast::<f32>();

        // Lane state: its row (the padding row once rows run out), that row's offset in `buf`,
        // and its node.
        let mut row = [_mm512_setzero_si512(); V];
        let mut base = [_mm512_setzero_si512(); V];
        let mut node = [_mm512_setzero_si512(); V];
        for j in 0..V {
            row[j] = _mm512_min_epi32(
                _mm512_add_epi32(iota, _mm512_set1_epi32(16 * j as i32)),
                last,
            );
            base[j] = _mm512_mullo_epi32(row[j], nf_v);
        }
        let mut next_row = (16 * V) as i32;
        let mut done = 0i32;
        scratch.rows.clear();
        scratch.ends.clear();
        while done < n_rows {
            for j in 0..V {
                let i = node[j];
                let fl = _mm512_i32gather_epi32::<4>(i, packed);
                let th = _mm512_i32gather_ps::<4>(i, thresholds);
                let feature = _mm512_and_si512(fl, low8);
                let left = _mm512_srli_epi32::<8>(fl);
                let v = _mm512_i32gather_ps::<4>(_mm512_add_epi32(base[j], feature), rows_ptr);
                // Ordered compare: NaN goes left, as in the portable kernel, and a leaf's `+inf`
                // keeps its lane in place (the bounds argument in `walk` relies on it).
                let right = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, th);
                let next = _mm512_mask_add_epi32(left, right, left, ones);
                let finished = _mm512_cmpeq_epi32_mask(next, i);
                let real = finished & _mm512_cmplt_epi32_mask(row[j], last);
                let n_real = real.count_ones() as usize;
                let len = scratch.rows.len();
                scratch.rows.reserve(16);
                scratch.ends.reserve(16);
                // SAFETY: both vectors have room for 16 more values (reserved above); the first
                // `n_real` written are the finished real rows, and only those are kept.
                _mm512_storeu_si512(
                    scratch.rows.as_mut_ptr().add(len).cast(),
                    _mm512_maskz_compress_epi32(real, row[j]),
                );
                _mm512_storeu_si512(
                    scratch.ends.as_mut_ptr().add(len).cast(),
                    _mm512_maskz_compress_epi32(real, i),
                );
                scratch.rows.set_len(len + n_real);
                scratch.ends.set_len(len + n_real);
                done += n_real as i32;
                // Finished lanes take the next rows in order, from the root.
                let fresh = _mm512_maskz_expand_epi32(
                    finished,
                    _mm512_add_epi32(iota, _mm512_set1_epi32(next_row)),
                );
                next_row += finished.count_ones() as i32;
                row[j] = _mm512_mask_blend_epi32(finished, row[j], _mm512_min_epi32(fresh, last));
                base[j] = _mm512_mullo_epi32(row[j], nf_v);
                node[j] = _mm512_mask_blend_epi32(finished, next, _mm512_setzero_si512());
            }
        }
        for (&r, &end) in scratch.rows.iter().zip(&scratch.ends) {
            ends[r as usize] = end as u32;
        }
    }
}

/// Stand-in where the AVX-512 kernel cannot exist: never available, never called.
#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    use super::{CompiledTree, Scratch};

    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn walk(_: &CompiledTree, _: &[u32], _: usize, _: &mut [u32], _: &mut Scratch) {
        unreachable!("the predictor never picks the AVX-512 kernel off x86-64")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::tree::{Node, LEAF};

    /// Every way this CPU can predict with these trees: the default predictor, the portable
    /// kernel without the AVX2 block copy, row sets where the CPU and the trees allow them, and
    /// the AVX-512 kernel where the CPU and the trees allow it (on a CPU without AVX-512F,
    /// `tests/forest.rs` says so aloud).
    fn kernels(trees: &[Tree], n_features: usize, n_classes: usize) -> Vec<Predictor> {
        let mut all = vec![
            Predictor::new(trees, n_features, n_classes),
            Predictor::new(trees, n_features, n_classes).portable(),
        ];
        if let Ok(p) = Predictor::with_kernel(trees, n_features, n_classes, Kernel::Sets) {
            assert_eq!(p.kernel(), Kernel::Sets);
            all.push(p);
        }
        if avx512::available() && packable(trees, n_features) {
            let p = Predictor::with_kernel(trees, n_features, n_classes, Kernel::Avx512).unwrap();
            assert_eq!(p.kernel(), Kernel::Avx512);
            all.push(p);
        }
        all
    }

    /// A valid tree of `n_nodes` nodes drawn from `picks`: any node may be a leaf, an internal
    /// node's children are any later adjacent pair (so subtrees may be shared), features and
    /// thresholds are arbitrary.
    fn tree(n_features: usize, n_classes: usize, picks: &[(bool, u32, u32, f32)]) -> Tree {
        let n_nodes = picks.len();
        let mut nodes = Vec::with_capacity(n_nodes);
        let mut n_leaves = 0;
        for (i, &(split, child, feature, threshold)) in picks.iter().enumerate() {
            if split && i + 2 < n_nodes {
                let first = i + 1;
                let span = (n_nodes - 1 - first) as u32;
                nodes.push(Node {
                    feature: feature % n_features as u32,
                    threshold,
                    left: first as u32 + child % span,
                });
            } else {
                nodes.push(Node {
                    feature: LEAF,
                    threshold: 0.0,
                    left: n_leaves,
                });
                n_leaves += 1;
            }
        }
        let leaf_values = (0..n_leaves as usize * n_classes)
            .map(|k| ((k * 7919) % 101) as f32 / 101.0)
            .collect();
        let t = Tree {
            n_features: n_features as u32,
            n_classes: n_classes as u32,
            nodes,
            leaf_values,
            importances: vec![0.0; n_features],
        };
        t.validate(n_features, n_classes).expect("a valid tree");
        t
    }

    /// One node's picks for [`tree`]: whether it splits, its children, its feature and its
    /// threshold (some equal to values the rows hold, which go left; signed zeros included).
    fn node_pick() -> impl Strategy<Value = (bool, u32, u32, f32)> {
        (
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            prop_oneof![
                3 => -4.0f32..4.0,
                1 => (-16i32..16).prop_map(|k| k as f32 * 0.25),
                1 => Just(-0.0f32),
            ],
        )
    }

    /// Makes every `every`-th leaf of `t` pure (`1.0` for one class, `0.0` or `-0.0` for the
    /// others), and the leaf after each a near miss (`1.0` for one class and `0.5` for another).
    fn purify(t: &mut Tree, every: usize) {
        let c = t.n_classes();
        if every == 0 {
            return;
        }
        for (l, values) in t.leaf_values.chunks_exact_mut(c).enumerate() {
            let k = l * 3 % c;
            match l % every {
                0 => {
                    let zero = if l % 2 == 0 { 0.0 } else { -0.0 };
                    values.fill(zero);
                    values[k] = 1.0;
                }
                1 if c > 1 => {
                    values.fill(0.0);
                    values[k] = 1.0;
                    values[(k + 1) % c] = 0.5;
                }
                _ => {}
            }
        }
    }

    #[test]
    fn pure_leaves_add_one_class() {
        let mut t = tree(
            1,
            3,
            &[(true, 0, 0, 0.5), (false, 0, 0, 0.0), (false, 0, 0, 0.0)],
        );
        purify(&mut t, 2);
        let p = Predictor::new(std::slice::from_ref(&t), 1, 3);
        // Leaf 0 is pure (class 0), leaf 1 a near miss (1.0 for class 0, 0.5 for class 1).
        assert_eq!(p.trees[0].pure, [MIXED, 0, MIXED]);
        let x = FeatureMatrix::from_rows(2, 1, &[0.0, 1.0]);
        assert_eq!(p.predict_proba(&x).unwrap(), [1.0, 0.0, 0.0, 1.0, 0.5, 0.0]);
        assert_eq!(pure_class(&[0.0, -0.0, 1.0]), Some(2));
        assert_eq!(pure_class(&[0.0, 0.0]), None);
        assert_eq!(pure_class(&[1.0, 1.0]), None);
        assert_eq!(pure_class(&[0.999, 0.0]), None);
    }

    #[test]
    fn mixed_leaves_of_forests_with_more_classes_than_a_byte() {
        // 300 classes: a mixed leaf's mark, 255, is also a class index.
        let mut t = tree(
            1,
            300,
            &[(true, 0, 0, 0.5), (false, 0, 0, 0.0), (false, 0, 0, 0.0)],
        );
        purify(&mut t, 2);
        let p = Predictor::new(std::slice::from_ref(&t), 1, 300);
        assert_eq!(p.trees[0].pure, [MIXED, 0, MIXED]);
        let x = FeatureMatrix::from_rows(2, 1, &[0.0, 1.0]);
        let want = bits(&naive(std::slice::from_ref(&t), &x, 300));
        assert_eq!(bits(&p.predict_proba(&x).unwrap()), want);
    }

    fn naive(trees: &[Tree], x: &FeatureMatrix, n_classes: usize) -> Vec<f32> {
        let scale = 1.0 / trees.len() as f32;
        let mut row = vec![0.0; x.n_features()];
        let mut out = Vec::new();
        for r in 0..x.n_rows() {
            x.row_into(r, &mut row);
            let mut acc = vec![0.0f32; n_classes];
            for t in trees {
                for (a, p) in acc.iter_mut().zip(t.predict_proba_row(&row)) {
                    *a += p;
                }
            }
            out.extend(acc.iter().map(|a| a * scale));
        }
        out
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A lone leaf, and a chain 3,000 nodes deep: both kernels agree with the reference.
    #[test]
    fn lone_leaves_and_deep_chains() {
        let leaf = tree(1, 2, &[(false, 0, 0, 0.0)]);
        // Node 2k splits on feature 0 at k: its left child (2k + 1) is a leaf, its right child
        // (2k + 2) goes on.
        let picks: Vec<_> = (0..6001)
            .map(|i| (i % 2 == 0, 0, 0, (i / 2) as f32))
            .collect();
        let chain = tree(1, 2, &picks);
        let trees = [leaf, chain];
        let values: Vec<f32> = (0..3000).map(|r| (r % 3100) as f32 - 50.5).collect();
        let x = FeatureMatrix::from_rows(values.len(), 1, &values);
        let expected = bits(&naive(&trees, &x, 2));
        for p in kernels(&trees, 1, 2) {
            assert_eq!(
                bits(&p.predict_proba(&x).unwrap()),
                expected,
                "{:?}",
                p.kernel()
            );
        }
    }

    fn labels(proba: &[f32], n_classes: usize) -> Vec<u32> {
        proba.chunks_exact(n_classes).map(argmax).collect()
    }

    /// A stump on one feature: node 0 splits at 0.5, leaf 0 (values `low`) left, leaf 1
    /// (values `high`) right.
    fn stump(low: &[f32], high: &[f32]) -> Tree {
        let t = Tree {
            n_features: 1,
            n_classes: low.len() as u32,
            nodes: vec![
                Node {
                    feature: 0,
                    threshold: 0.5,
                    left: 1,
                },
                Node {
                    feature: LEAF,
                    threshold: 0.0,
                    left: 0,
                },
                Node {
                    feature: LEAF,
                    threshold: 0.0,
                    left: 1,
                },
            ],
            leaf_values: [low, high].concat(),
            importances: vec![0.0],
        };
        t.validate(1, low.len()).expect("a valid stump");
        t
    }

    /// Trees that all vote alike decide rows early; ties between classes never do, and fall to
    /// the lowest class, as in `predict_proba`.
    #[test]
    fn unanimous_forests_exit_early_and_ties_do_not() {
        let stump = |low: [f32; 2], high: [f32; 2]| stump(&low, &high);
        // Distinct rows (a repeat would not walk): even rows go left, odd ones right.
        let values: Vec<f32> = (0..3000)
            .map(|r| (r % 2) as f32 + r as f32 * 1e-4)
            .collect();
        let x = FeatureMatrix::from_rows(values.len(), 1, &values);
        let n = values.len() as u64;

        let unanimous = vec![stump([1.0, 0.0], [0.0, 1.0]); 100];
        // The walk's exits (row sets, where the CPU has them, evaluate every tree).
        let p = Predictor::new(&unanimous, 1, 2).portable();
        let (pred, walks) = p.predict_counting(&x).unwrap();
        assert_eq!(pred, labels(&naive(&unanimous, &x, 2), 2));
        assert_eq!(pred[..4], [0, 1, 0, 1]);
        // Decided at the first look, after 52 trees (the lead, 52, beats the 48 trees left).
        assert_eq!(walks, 52 * n);

        // Settling class 1 only: its rows stop with no probabilities, class 0's walk every tree.
        let (classes, proba) = p.predict_settling(&x, 1).unwrap();
        assert_eq!(classes, pred);
        assert_eq!(proba[..4], [1.0, 0.0, 0.0, 0.0]);

        let tied = vec![stump([0.5, 0.5], [0.5, 0.5]); 100];
        let p = Predictor::new(&tied, 1, 2).portable();
        let (pred, walks) = p.predict_counting(&x).unwrap();
        assert_eq!(walks, 100 * n);
        assert!(pred.iter().all(|&c| c == 0));

        // A lead the trees left can just erase is never enough: half the trees vote one way,
        // half the other, and every row ties (class 0) after walking all of them.
        let mut late = vec![stump([1.0, 0.0], [0.0, 1.0]); 50];
        late.extend(vec![stump([0.0, 1.0], [1.0, 0.0]); 50]);
        let p = Predictor::new(&late, 1, 2);
        let (pred, walks) = p.predict_counting(&x).unwrap();
        assert_eq!(walks, 100 * n);
        assert!(pred.iter().all(|&c| c == 0));
    }

    /// A row equal to an earlier row of its block takes that row's outputs without walking:
    /// signed zeros are one value to the kernels, NaNs with any payload are one, and rows that
    /// differ in any value, or sit in different blocks, walk on their own.
    #[test]
    fn repeated_rows_walk_once_per_block() {
        let t = tree(
            3,
            3,
            &[
                (true, 0, 0, 0.5),
                (true, 0, 1, -1.0),
                (true, 0, 2, 2.0),
                (false, 0, 0, 0.0),
                (false, 0, 0, 0.0),
                (false, 0, 0, 0.0),
                (false, 0, 0, 0.0),
            ],
        );
        let trees = vec![t; 10];
        // Four kinds of rows, each in several spellings.
        let nan = f32::from_bits(0x7fc0_0001);
        let kinds: [&[[f32; 3]]; 4] = [
            &[[0.0, 1.0, 2.0], [-0.0, 1.0, 2.0]],
            &[
                [f32::NAN, -0.0, 3.0],
                [nan, 0.0, 3.0],
                [-f32::NAN, 0.0, 3.0],
            ],
            &[[0.75, -2.0, 9.0]],
            &[[0.75, -2.0, 9.5]],
        ];
        let n_rows = 2 * 1024 + 100;
        let mut values = Vec::new();
        for r in 0..n_rows {
            let spellings = kinds[r % 4];
            values.extend_from_slice(&spellings[(r / 4) % spellings.len()]);
        }
        let x = FeatureMatrix::from_rows(n_rows, 3, &values);
        let expected = bits(&naive(&trees, &x, 3));
        let want = labels(&naive(&trees, &x, 3), 3);
        for p in kernels(&trees, 3, 3) {
            assert_eq!(bits(&p.predict_proba(&x).unwrap()), expected);
            let (pred, walks) = p.predict_counting(&x).unwrap();
            assert_eq!(pred, want);
            // Three blocks, four distinct rows in each as the portable kernel's keys tell them
            // (seven as the AVX-512 kernel's bits do: `-0.0` and `0.0`, and NaNs, differ); a row
            // agreed on by all 10 identical trees is decided at the first look, after 8 trees.
            // (Row sets refuse these trees: their leaves are mixed.)
            let distinct = match p.kernel() {
                Kernel::Portable => 4,
                Kernel::Avx512 => 7,
                Kernel::Sets => unreachable!("row sets refuse trees of mixed leaves"),
            };
            let range = 3 * distinct * 8..=3 * distinct * 10;
            assert!(
                range.contains(&walks),
                "{walks} walks, {:?} kernel",
                p.kernel()
            );
            let (classes, proba) = p.predict_settling(&x, 2).unwrap();
            assert_eq!(classes, want);
            for (r, (got, exact)) in bits(&proba).chunks(3).zip(expected.chunks(3)).enumerate() {
                assert!(got == exact || (classes[r] == 2 && got.iter().all(|&b| b == 0)));
            }
        }
    }

    proptest! {
        /// A block's row-major copy, in AVX2 tiles (where the CPU has AVX2, as on the machines
        /// CI runs on) or by the scalar loops alone, holds each value's key for the portable
        /// kernel, or its bits for the AVX-512 kernel, then an all-zero row: for any block
        /// shape, tiles and remainders alike.
        #[test]
        fn block_copies_hold_keys_or_bits(
            nf in 1usize..40,
            rows in 0usize..70,
            start in 0usize..9,
            cells in proptest::collection::vec(
                prop_oneof![
                    8 => -5.0f32..5.0,
                    1 => Just(f32::NAN),
                    1 => Just(-f32::NAN),
                    1 => Just(f32::INFINITY),
                    1 => Just(f32::NEG_INFINITY),
                    1 => Just(-0.0f32),
                ],
                1..64,
            ),
        ) {
            let n_rows = start + rows;
            let values: Vec<f32> = (0..n_rows * nf)
                .map(|k| cells[k % cells.len()] * (1 + k / cells.len()) as f32)
                .collect();
            let x = FeatureMatrix::from_rows(n_rows, nf, &values);
            let leaf = tree(nf, 2, &[(false, 0, 0, 0.0)]);
            for kernel in [Kernel::Portable, Kernel::Sets, Kernel::Avx512] {
                let mut tiled = Predictor::new(std::slice::from_ref(&leaf), nf, 2);
                prop_assert_eq!(tiled.tiled, tiles::available());
                // Only the copy runs here, never the AVX-512 kernel itself.
                tiled.kernel = kernel;
                let mut scalar = Predictor::new(std::slice::from_ref(&leaf), nf, 2).portable();
                scalar.kernel = kernel;
                let mut want: Vec<u32> = values[start * nf..]
                    .iter()
                    .map(|&v| match kernel {
                        Kernel::Portable | Kernel::Sets => order_key(v),
                        Kernel::Avx512 => v.to_bits(),
                    })
                    .collect();
                want.extend(std::iter::repeat_n(0, nf));
                prop_assert_eq!(&tiled.row_major(&x, start, rows), &want);
                prop_assert_eq!(&scalar.row_major(&x, start, rows), &want);
            }
        }
    }

    proptest! {
        /// Whatever the hash, even one that collides every row with every other, the distinct
        /// rows are kept in order at the front and every other row names its first occurrence.
        #[test]
        fn distinct_rows_survive_any_hash_collisions(
            nf in 1usize..4,
            cells in proptest::collection::vec(0u32..3, 0..120),
            hash_kind in 0u8..3,
        ) {
            let rows = cells.len() / nf;
            let mut buf = cells[..rows * nf].to_vec();
            buf.extend(std::iter::repeat_n(7, nf));
            let original = buf.clone();
            let row = |r: usize| &original[r * nf..(r + 1) * nf];
            let d = match hash_kind {
                0 => distinct_rows_by(&mut buf, nf, rows, |_| 0),
                1 => distinct_rows_by(&mut buf, nf, rows, |v| v[0] as u64),
                _ => distinct_rows(&mut buf, nf, rows),
            };
            let mut firsts: Vec<u32> = Vec::new();
            for r in 0..rows {
                match (0..r).find(|&q| row(q) == row(r)) {
                    None => firsts.push(r as u32),
                    Some(q) => prop_assert!(d.copies.contains(&(r as u32, q as u32))),
                }
            }
            prop_assert_eq!(&d.rows, &firsts);
            prop_assert_eq!(d.copies.len(), rows - firsts.len());
            for (k, &r) in d.rows.iter().enumerate() {
                prop_assert_eq!(&buf[k * nf..(k + 1) * nf], row(r as usize));
            }
            let k = d.rows.len();
            prop_assert!(buf[k * nf..(k + 1) * nf].iter().all(|&v| v == 0), "padding row");
        }
    }

    /// The kernels skip bounds checks, so a tree that breaks the invariants never reaches
    /// them: here an internal node's children lie past the end of the tree.
    #[test]
    #[should_panic(expected = "tree 1 of a forest is invalid")]
    fn invalid_trees_are_refused_before_any_walk() {
        let good = tree(
            2,
            2,
            &[(true, 0, 1, 0.5), (false, 0, 0, 0.0), (false, 0, 0, 0.0)],
        );
        let mut bad = good.clone();
        bad.nodes[0].left = 7;
        Predictor::new(&[good, bad], 2, 2);
    }

    /// Signed zeros compare equal, and NaN is greater than nothing.
    #[test]
    fn order_keys_of_zeros_and_nan() {
        assert_eq!(order_key(-0.0), order_key(0.0));
        assert!(order_key(f32::NAN) < order_key(f32::NEG_INFINITY));
        assert!(order_key(-f32::NAN) < order_key(f32::NEG_INFINITY));
        assert!(order_key(f32::INFINITY) > order_key(f32::MAX));
        assert!(order_key(f32::MIN_POSITIVE) > order_key(-f32::MIN_POSITIVE));
        // Leaves are known by their key, which no finite threshold has.
        assert_eq!(order_key(f32::INFINITY), LEAF_KEY);
        assert!(order_key(f32::MAX) < LEAF_KEY);
    }

    proptest! {
        /// The unsigned order of keys is the order of `>` on floats, for any value against any
        /// threshold a tree may hold (anything but NaN), NaN values included.
        #[test]
        fn order_keys_keep_comparisons(
            a in any::<f32>(),
            b in any::<f32>().prop_filter("thresholds are never NaN", |b| !b.is_nan()),
        ) {
            prop_assert_eq!(a > b, order_key(a) > order_key(b));
            prop_assert_eq!(a <= b, !a.is_nan() && order_key(a) <= order_key(b));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any valid trees (shared subtrees included) and any inputs: the kernel this CPU runs,
        /// the portable kernel (with packed nodes, or wide ones past 256 features) and the
        /// row-at-a-time reference agree bit for bit.
        #[test]
        fn kernels_agree_on_arbitrary_valid_trees(
            n_features in prop_oneof![4 => 1usize..6, 1 => 257usize..260],
            n_classes in 1usize..7,
            shapes in proptest::collection::vec(
                proptest::collection::vec(node_pick(), 1..80),
                1..24,
            ),
            // Every `pure`-th leaf pure (none for 0), as almost all are in a forest grown deep.
            pure in 0usize..4,
            n_rows in 0usize..1100,
            // Row `r` repeats row `r % period`: from every row repeated to none.
            period in prop_oneof![1 => 1usize..8, 1 => Just(usize::MAX)],
            cells in proptest::collection::vec(
                prop_oneof![
                    8 => -5.0f32..5.0,
                    1 => Just(f32::NAN),
                    1 => Just(f32::INFINITY),
                    1 => Just(f32::NEG_INFINITY),
                    1 => Just(0.0f32),
                    1 => Just(-0.0f32),
                ],
                1..64,
            ),
        ) {
            let trees: Vec<Tree> = shapes
                .iter()
                .map(|p| {
                    let mut t = tree(n_features, n_classes, p);
                    purify(&mut t, pure);
                    t
                })
                .collect();
            let values: Vec<f32> = (0..n_rows * n_features)
                .map(|k| (k / n_features % period) * n_features + k % n_features)
                .map(|k| cells[k % cells.len()] + (k / cells.len()) as f32 * 0.25)
                .collect();
            let x = FeatureMatrix::from_rows(n_rows, n_features, &values);
            let expected = bits(&naive(&trees, &x, n_classes));
            let want = labels(&naive(&trees, &x, n_classes), n_classes);
            // Settling one class: the same classes; exact probabilities except for rows of that
            // class, which may have none (all zeros).
            let settle = (n_rows % n_classes) as u32;
            for p in kernels(&trees, n_features, n_classes) {
                let wide = matches!(p.trees[0].nodes, Nodes::Wide(_));
                prop_assert_eq!(wide, n_features > 256);
                prop_assert_eq!(bits(&p.predict_proba(&x).unwrap()), expected.clone());
                prop_assert_eq!(&p.predict(&x).unwrap(), &want);
                let (classes, proba) = p.predict_settling(&x, settle).unwrap();
                prop_assert_eq!(&classes, &want);
                let got = bits(&proba);
                for (r, (row, exact)) in got.chunks(n_classes).zip(expected.chunks(n_classes)).enumerate() {
                    let settled = classes[r] == settle && row.iter().all(|&b| b == 0);
                    prop_assert!(row == exact || settled, "row {}: {:?} vs {:?}", r, row, exact);
                }
            }
        }
    }

    /// `t` with every leaf pure (`1.0` for one class, `0.0` or `-0.0` for the others) except
    /// every 13th, which is mixed: a near miss (`1.0` for one class, `0.5` for the next) or its
    /// own values. At most a 13th of the leaves, so row sets take the forest.
    fn mostly_pure(mut t: Tree) -> Tree {
        let c = t.n_classes();
        for (l, values) in t.leaf_values.chunks_exact_mut(c).enumerate() {
            let k = (l * 7 + l / 5) % c;
            if l % 13 != 12 {
                values.fill(if l % 3 == 0 { -0.0 } else { 0.0 });
                values[k] = 1.0;
            } else if l % 2 == 0 {
                values.fill(0.0);
                values[k] = 1.0;
                values[(k + 1) % c] = 0.5;
            }
        }
        t
    }

    /// A row that met a mixed leaf is decided by its votes only when the mixed leaves cannot
    /// close the gap: here one mixed leaf (`1.0` for class 0) ties class 0 with the leader,
    /// class 1, and the tie goes to class 0.
    #[test]
    fn a_mixed_leaf_can_tie_the_leader() {
        let stump = |low: [f32; 3], high: [f32; 3]| stump(&low, &high);
        let one = |k: usize| {
            let mut v = [0.0; 3];
            v[k] = 1.0;
            v
        };
        // Votes: class 1 ten, class 0 nine, one mixed leaf adding 1.0 to class 0 (and 0.5 to
        // class 2): sums of 10, 10 and 0.5.
        let mut trees = vec![
            stump(one(1), one(1)),
            stump([1.0, 0.0, 0.5], [1.0, 0.0, 0.5]),
        ];
        for _ in 0..9 {
            trees.push(stump(one(0), one(0)));
            trees.push(stump(one(1), one(1)));
        }
        let x = FeatureMatrix::from_rows(3, 1, &[0.0, 1.0, f32::NAN]);
        let want = labels(&naive(&trees, &x, 3), 3);
        assert_eq!(want, [0, 0, 0]);
        for p in kernels(&trees, 1, 3) {
            assert_eq!(p.predict(&x).unwrap(), want, "{:?} kernel", p.kernel());
        }
        if sets::available() {
            let p = Predictor::with_kernel(&trees, 1, 3, Kernel::Sets).unwrap();
            // Every distinct row (0.0, 1.0; NaN goes left as 0.0 does, but is a row of its own)
            // through the sets' first 12 trees, then walked again through all 20.
            assert_eq!(sets_trees(20), 12);
            assert_eq!(p.predict_counting(&x).unwrap(), (want, 3 * 12 + 3 * 20));
        }
    }

    /// Leaf values may exceed 1 (a model file only promises finite values of at least 0): a
    /// mixed leaf worth 3.0 to class 0 overturns a lead of two votes.
    #[test]
    fn mixed_leaves_worth_more_than_a_vote() {
        let stump = |v: [f32; 2]| stump(&v, &v);
        // Class 1: 11 votes; class 0: 9 votes and one mixed leaf adding 3.0 (and 0.5 to 1).
        let mut trees = vec![stump([3.0, 0.5])];
        trees.extend((0..9).map(|_| stump([1.0, 0.0])));
        trees.extend((0..11).map(|_| stump([0.0, 1.0])));
        let x = FeatureMatrix::from_rows(2, 1, &[0.0, 1.0]);
        let want = labels(&naive(&trees, &x, 2), 2);
        assert_eq!(want, [0, 0]);
        for p in kernels(&trees, 1, 2) {
            assert_eq!(p.predict(&x).unwrap(), want, "{:?} kernel", p.kernel());
        }
        if sets::available() {
            let p = Predictor::with_kernel(&trees, 1, 2, Kernel::Sets).unwrap();
            assert_eq!(p.predict(&x).unwrap(), want);
        }
    }

    #[test]
    fn row_sets_run_where_avx2_is() {
        let trees = [mostly_pure(tree(
            2,
            3,
            &[(true, 0, 1, 0.5), (false, 0, 0, 0.0), (false, 0, 0, 0.0)],
        ))];
        let p = Predictor::with_kernel(&trees, 2, 3, Kernel::Sets);
        if sets::available() {
            assert_eq!(p.unwrap().kernel(), Kernel::Sets);
            assert_eq!(Predictor::new(&trees, 2, 3).kernel(), Kernel::preferred());
        } else {
            eprintln!("NOTE: no AVX2 on this CPU: row sets are not checked");
            let err = p.err().expect("refused").to_string();
            assert!(err.contains("AVX2"), "{err}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Row sets give the classes the walk and the row-at-a-time reference give: on any
        /// number of rows (groups of uneven sizes, blocks, repeats) and trees (shared subtrees
        /// included), with NaN, infinities, signed zeros and values equal to thresholds among
        /// the inputs, and with some mixed leaves, whose rows are either decided by their pure
        /// votes or walked.
        #[test]
        fn row_sets_classify_as_the_walk_does(
            n_features in 1usize..6,
            n_classes in prop_oneof![4 => 2usize..7, 1 => 7usize..16],
            shapes in proptest::collection::vec(
                proptest::collection::vec(node_pick(), 1..120),
                1..40,
            ),
            n_rows in prop_oneof![3 => 0usize..1100, 1 => 1100usize..2600],
            period in prop_oneof![1 => 1usize..8, 2 => Just(usize::MAX)],
            cells in proptest::collection::vec(
                prop_oneof![
                    8 => (-20i32..20).prop_map(|k| k as f32 * 0.25),
                    4 => -5.0f32..5.0,
                    1 => Just(f32::NAN),
                    1 => Just(f32::INFINITY),
                    1 => Just(f32::NEG_INFINITY),
                    1 => Just(-0.0f32),
                ],
                1..64,
            ),
        ) {
            let trees: Vec<Tree> = shapes
                .iter()
                .map(|p| mostly_pure(tree(n_features, n_classes, p)))
                .collect();
            let values: Vec<f32> = (0..n_rows * n_features)
                .map(|k| (k / n_features % period) * n_features + k % n_features)
                .map(|k| cells[k % cells.len()] + (k / cells.len() % 3) as f32 * 0.25)
                .collect();
            let x = FeatureMatrix::from_rows(n_rows, n_features, &values);
            let want = labels(&naive(&trees, &x, n_classes), n_classes);
            match Predictor::with_kernel(&trees, n_features, n_classes, Kernel::Sets) {
                Ok(p) => {
                    prop_assert_eq!(p.kernel(), Kernel::Sets);
                    prop_assert_eq!(&p.predict(&x).unwrap(), &want);
                    let portable = Predictor::new(&trees, n_features, n_classes).portable();
                    prop_assert_eq!(&portable.predict(&x).unwrap(), &want);
                }
                Err(e) => prop_assert!(!sets::available(), "refused: {}", e),
            }
        }
    }
}
