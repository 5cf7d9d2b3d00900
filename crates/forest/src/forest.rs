//! Random Forests: parallel, seeded training; batch prediction; combining trees of several forests.

use std::sync::{Arc, OnceLock};

use fedids_data::{FeatureMatrix, Schema};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::binning::BinnedMatrix;
use crate::error::ForestError;
use crate::predict::{Kernel, Predictor};
use crate::train::{build_tree, Criterion, TrainData, TreeParams};
use crate::tree::Tree;
use fedids_rng::{tree_seed, Rng};

/// How many features each split considers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MaxFeatures {
    /// `floor(sqrt(n_features))`, at least 1 (the default; as scikit-learn).
    Sqrt,
    /// `floor(log2(n_features))`, at least 1 (as scikit-learn).
    Log2,
    /// Every feature.
    All,
    /// `round(fraction * n_features)`, at least 1; `fraction` in `(0, 1]`.
    Fraction(f64),
    /// A fixed count, capped at `n_features`.
    Count(usize),
}

impl MaxFeatures {
    pub fn resolve(self, n_features: usize) -> usize {
        let n = n_features as f64;
        let k = match self {
            MaxFeatures::Sqrt => n.sqrt().floor() as usize,
            MaxFeatures::Log2 => n.log2().floor() as usize,
            MaxFeatures::All => n_features,
            MaxFeatures::Fraction(f) => (f * n).round() as usize,
            MaxFeatures::Count(k) => k,
        };
        k.clamp(1, n_features.max(1))
    }
}

impl std::str::FromStr for MaxFeatures {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sqrt" => Ok(MaxFeatures::Sqrt),
            "log2" => Ok(MaxFeatures::Log2),
            "all" => Ok(MaxFeatures::All),
            _ if s.contains('.') => match s.parse::<f64>() {
                Ok(f) if f > 0.0 && f <= 1.0 => Ok(MaxFeatures::Fraction(f)),
                _ => Err(format!("expected a fraction in (0, 1], found '{s}'")),
            },
            _ => match s.parse::<usize>() {
                Ok(k) if k > 0 => Ok(MaxFeatures::Count(k)),
                _ => Err(format!(
                    "expected 'sqrt', 'log2', 'all', a fraction like 0.5 or a count, found '{s}'"
                )),
            },
        }
    }
}

/// Which rows each tree sees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Sampling {
    /// `n` draws with replacement (the Random Forest default).
    Bootstrap,
    /// A `fraction` of the rows drawn without replacement.
    Subsample(f64),
    /// Every row, once.
    All,
}

impl std::str::FromStr for Sampling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bootstrap" => Ok(Sampling::Bootstrap),
            "all" | "none" => Ok(Sampling::All),
            _ => match s.strip_prefix("fraction:").map(str::parse::<f64>) {
                Some(Ok(f)) if f > 0.0 && f <= 1.0 => Ok(Sampling::Subsample(f)),
                _ => Err(format!(
                    "expected 'bootstrap', 'all' or 'fraction:F' with F in (0, 1], found '{s}'"
                )),
            },
        }
    }
}

/// Split search strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitSearch {
    /// Bins (at most `max_bins`, <= 256) per feature, computed once per fit; each bin holds a
    /// share of the rows and of the distinct values (see `binning`).
    Histogram { max_bins: u16 },
    /// Every distinct value of the node, sorted at each node (slow; for comparison).
    Exact,
}

/// Class weighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClassWeight {
    /// Every sample weighs 1.
    Uniform,
    /// Class `c` weighs `n_rows / (n_classes * n_rows_of_c)` (scikit-learn's "balanced").
    Balanced,
}

/// Everything that determines a trained forest, together with the data and the seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    pub n_trees: usize,
    pub criterion: Criterion,
    /// `None`: grow until leaves are pure or too small.
    pub max_depth: Option<u32>,
    pub min_samples_split: u32,
    pub min_samples_leaf: u32,
    pub max_features: MaxFeatures,
    pub sampling: Sampling,
    pub class_weight: ClassWeight,
    pub split: SplitSearch,
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            n_trees: 100,
            criterion: Criterion::Gini,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Sqrt,
            sampling: Sampling::Bootstrap,
            class_weight: ClassWeight::Uniform,
            split: SplitSearch::Histogram { max_bins: 256 },
            seed: 42,
        }
    }
}

impl ForestParams {
    fn check(&self) -> Result<(), ForestError> {
        let bad = |m: &str| Err(ForestError::InvalidParams(m.to_string()));
        if self.n_trees == 0 {
            return bad("n_trees must be at least 1");
        }
        if self.min_samples_split < 2 {
            return bad("min_samples_split must be at least 2");
        }
        if self.min_samples_leaf < 1 {
            return bad("min_samples_leaf must be at least 1");
        }
        if self.max_depth == Some(0) {
            return bad("max_depth must be at least 1");
        }
        if let SplitSearch::Histogram { max_bins } = self.split {
            if !(2..=256).contains(&max_bins) {
                return bad("max_bins must be between 2 and 256");
            }
        }
        if let MaxFeatures::Fraction(f) = self.max_features {
            if !(f > 0.0 && f <= 1.0) {
                return bad("max_features fraction must be in (0, 1]");
            }
        }
        if let Sampling::Subsample(f) = self.sampling {
            if !(f > 0.0 && f <= 1.0) {
                return bad("sampling fraction must be in (0, 1]");
            }
        }
        Ok(())
    }
}

/// How a forest came to be: recorded in the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Provenance {
    /// Trained locally with these parameters on `n_rows` rows.
    Trained {
        params: ForestParams,
        n_rows: u64,
        class_counts: Vec<u64>,
    },
    /// Assembled from trees of other forests (federation).
    Combined {
        /// One line per source: where its trees came from and how many were taken.
        sources: Vec<String>,
    },
}

/// A Random Forest: a schema, trees, and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    pub(crate) schema: Schema,
    pub(crate) trees: Vec<Tree>,
    pub(crate) provenance: Provenance,
    /// The trees compiled for [`Forest::predict`] and [`Forest::predict_proba`], on first use.
    /// Not part of the model: never encoded, never compared.
    #[serde(skip)]
    pub(crate) compiled: Compiled,
}

/// A forest's [`Predictor`], built once. The trees of a forest never change after it is made,
/// so the cache never goes stale.
#[derive(Default, Clone)]
pub(crate) struct Compiled(OnceLock<Arc<Predictor>>);

impl PartialEq for Compiled {
    /// A cache says nothing about the model: forests are equal when their trees are.
    fn eq(&self, _: &Compiled) -> bool {
        true
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.0.get().is_some() {
            "built"
        } else {
            "not built"
        };
        write!(f, "Compiled({state})")
    }
}

/// A tree's quality on a labelled dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeScore {
    pub accuracy: f64,
    /// Recall of each class (`NaN` where the class has no rows).
    pub class_recall: Vec<f64>,
    /// Rows per class in the scored dataset.
    pub class_support: Vec<u64>,
}

impl Forest {
    /// Trains a forest on `x`, `y` (class indices into `schema.classes`).
    ///
    /// `on_tree` is called once per finished tree, from worker threads (for progress bars). The
    /// result depends only on the data, `schema`, and `params` (including the seed), never on the
    /// number of threads.
    pub fn fit(
        x: &FeatureMatrix,
        y: &[u32],
        schema: Schema,
        params: &ForestParams,
        on_tree: &(dyn Fn() + Sync),
    ) -> Result<Forest, ForestError> {
        Self::fit_with(x, y, schema, params, on_tree, true)
    }

    /// [`Forest::fit`], with deduplication of identical rows switchable (for tests proving it
    /// changes nothing).
    fn fit_with(
        x: &FeatureMatrix,
        y: &[u32],
        schema: Schema,
        params: &ForestParams,
        on_tree: &(dyn Fn() + Sync),
        allow_dedup: bool,
    ) -> Result<Forest, ForestError> {
        params.check()?;
        let n_rows = x.n_rows();
        let n_classes = schema.classes.len();
        if x.n_features() != schema.features.len() {
            return Err(ForestError::FeatureCount {
                expected: schema.features.len(),
                found: x.n_features(),
            });
        }
        if n_rows == 0 || y.len() != n_rows {
            return Err(ForestError::InvalidData(format!(
                "{n_rows} rows of features and {} labels",
                y.len()
            )));
        }
        if x.n_features() == 0 {
            return Err(ForestError::InvalidData("no features".into()));
        }
        if let Some(&bad) = y.iter().find(|&&c| c as usize >= n_classes) {
            return Err(ForestError::InvalidData(format!(
                "label {bad} is not one of the schema's {n_classes} classes"
            )));
        }
        let mut class_counts = vec![0u64; n_classes];
        for &c in y {
            class_counts[c as usize] += 1;
        }
        let class_weight: Vec<f64> = match params.class_weight {
            ClassWeight::Uniform => vec![1.0; n_classes],
            ClassWeight::Balanced => class_counts
                .iter()
                .map(|&k| {
                    if k == 0 {
                        0.0
                    } else {
                        n_rows as f64 / (n_classes as f64 * k as f64)
                    }
                })
                .collect(),
        };
        // With the default node limits, identical rows can never be separated, so training on the
        // distinct rows weighted by how often each was drawn grows the same trees with less work.
        let dedup = if allow_dedup && params.min_samples_split == 2 && params.min_samples_leaf == 1
        {
            Dedup::find(x, y)
        } else {
            None
        };
        let (train_x, train_y) = match &dedup {
            Some(d) => (&d.x, &d.y[..]),
            None => (x, y),
        };
        let binned = match params.split {
            SplitSearch::Histogram { max_bins } => {
                Some(BinnedMatrix::new(x, train_x, max_bins as usize))
            }
            SplitSearch::Exact => None,
        };
        let data = TrainData {
            x: train_x,
            binned: binned.as_ref(),
            y: train_y,
            n_classes,
            class_weight: &class_weight,
        };
        let tree_params = TreeParams {
            criterion: params.criterion,
            max_depth: params.max_depth.unwrap_or(u32::MAX),
            min_samples_split: params.min_samples_split,
            min_samples_leaf: params.min_samples_leaf,
            max_features: params.max_features.resolve(x.n_features()),
        };
        let trees: Vec<Tree> = (0..params.n_trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = Rng::new(tree_seed(params.seed, t as u64));
                let mut counts = draw_sample(params.sampling, n_rows, &mut rng);
                if let Some(d) = &dedup {
                    counts = d.group_counts(&counts);
                }
                let tree = build_tree(&data, &tree_params, &counts, rng);
                on_tree();
                tree
            })
            .collect();
        Ok(Forest {
            schema,
            trees,
            provenance: Provenance::Trained {
                params: params.clone(),
                n_rows: n_rows as u64,
                class_counts,
            },
            compiled: Compiled::default(),
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    pub fn n_classes(&self) -> usize {
        self.schema.classes.len()
    }

    fn check_input(&self, x: &FeatureMatrix) -> Result<(), ForestError> {
        if x.n_features() != self.schema.features.len() {
            return Err(ForestError::FeatureCount {
                expected: self.schema.features.len(),
                found: x.n_features(),
            });
        }
        Ok(())
    }

    /// Mean class probabilities over the trees, row-major (`n_rows * n_classes`).
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Result<Vec<f32>, ForestError> {
        self.compiled().predict_proba(x)
    }

    /// The predictor [`Forest::predict`] and [`Forest::predict_proba`] use, built on first use.
    fn compiled(&self) -> &Predictor {
        self.compiled.0.get_or_init(|| Arc::new(self.predictor()))
    }

    /// The trees compiled for fast batch inference; build once when scoring many batches.
    pub fn predictor(&self) -> Predictor {
        Predictor::new(&self.trees, self.schema.features.len(), self.n_classes())
    }

    /// [`Forest::predictor`] with the given kernel, or an error when this CPU or these trees
    /// cannot run it (for comparisons and tests: both kernels give the same outputs, bit for bit).
    pub fn predictor_with(&self, kernel: Kernel) -> Result<Predictor, ForestError> {
        Predictor::with_kernel(
            &self.trees,
            self.schema.features.len(),
            self.n_classes(),
            kernel,
        )
    }

    /// The predicted class of each row (highest mean probability; lowest index on ties).
    ///
    /// Exactly the argmax of [`Forest::predict_proba`], with less work: see
    /// [`Predictor::predict`].
    pub fn predict(&self, x: &FeatureMatrix) -> Result<Vec<u32>, ForestError> {
        self.compiled().predict(x)
    }

    /// Each tree's own predictions, `[tree][row]`.
    pub fn tree_predictions(&self, x: &FeatureMatrix) -> Result<Vec<Vec<u32>>, ForestError> {
        self.check_input(x)?;
        let rows = x.to_row_major();
        let nf = x.n_features();
        Ok(self
            .trees
            .par_iter()
            .map(|t| rows.chunks_exact(nf).map(|r| t.predict_row(r)).collect())
            .collect())
    }

    /// Scores every tree on a labelled dataset: accuracy and per-class recall.
    pub fn score_trees(&self, x: &FeatureMatrix, y: &[u32]) -> Result<Vec<TreeScore>, ForestError> {
        if y.len() != x.n_rows() {
            return Err(ForestError::InvalidData(format!(
                "{} rows of features and {} labels",
                x.n_rows(),
                y.len()
            )));
        }
        let c = self.n_classes();
        let mut support = vec![0u64; c];
        for &l in y {
            match support.get_mut(l as usize) {
                Some(s) => *s += 1,
                None => {
                    return Err(ForestError::InvalidData(format!(
                        "label {l} is not one of the model's {c} classes"
                    )))
                }
            }
        }
        let preds = self.tree_predictions(x)?;
        Ok(preds
            .iter()
            .map(|p| {
                let mut hits = vec![0u64; c];
                for (&pred, &truth) in p.iter().zip(y) {
                    if pred == truth {
                        hits[truth as usize] += 1;
                    }
                }
                let correct: u64 = hits.iter().sum();
                TreeScore {
                    accuracy: if y.is_empty() {
                        0.0
                    } else {
                        correct as f64 / y.len() as f64
                    },
                    class_recall: hits
                        .iter()
                        .zip(&support)
                        .map(|(&h, &s)| {
                            if s == 0 {
                                f64::NAN
                            } else {
                                h as f64 / s as f64
                            }
                        })
                        .collect(),
                    class_support: support.clone(),
                }
            })
            .collect())
    }

    /// Builds a forest from chosen trees of several forests, in the order given:
    /// `picks[i] = (forest, tree indices)`. Every forest must have the same schema as the first.
    pub fn from_trees(picks: &[(&Forest, &[usize])]) -> Result<Forest, ForestError> {
        let Some((first, _)) = picks.first() else {
            return Err(ForestError::InvalidData(
                "no forests to take trees from".into(),
            ));
        };
        let schema = first.schema.clone();
        let mut trees = Vec::new();
        let mut sources = Vec::new();
        for (k, (forest, idxs)) in picks.iter().enumerate() {
            if let Some(diff) = schema_difference(&schema, &forest.schema) {
                return Err(ForestError::SchemaMismatch(format!(
                    "source {k} differs from source 0: {diff}"
                )));
            }
            for &i in idxs.iter() {
                let tree = forest.trees.get(i).ok_or_else(|| {
                    ForestError::InvalidData(format!(
                        "source {k} has {} trees, tree {i} requested",
                        forest.trees.len()
                    ))
                })?;
                trees.push(tree.clone());
            }
            sources.push(format!(
                "source {k}: {} of {} trees",
                idxs.len(),
                forest.trees.len()
            ));
        }
        if trees.is_empty() {
            return Err(ForestError::InvalidData("no trees selected".into()));
        }
        Ok(Forest {
            schema,
            trees,
            provenance: Provenance::Combined { sources },
            compiled: Compiled::default(),
        })
    }

    /// Impurity-based feature importances: per-tree normalised decreases, averaged over trees and
    /// normalised to sum to 1 (all zero if no tree ever split).
    pub fn feature_importances(&self) -> Vec<f64> {
        let nf = self.schema.features.len();
        let mut acc = vec![0.0; nf];
        for t in &self.trees {
            let s: f64 = t.importances.iter().sum();
            if s > 0.0 {
                for (a, v) in acc.iter_mut().zip(&t.importances) {
                    *a += v / s;
                }
            }
        }
        let total: f64 = acc.iter().sum();
        if total > 0.0 {
            acc.iter_mut().for_each(|a| *a /= total);
        }
        acc
    }
}

/// A description of the first difference between two schemas, or `None` if they are equal.
pub fn schema_difference(a: &Schema, b: &Schema) -> Option<String> {
    if a == b {
        return None;
    }
    if a.task != b.task {
        return Some(format!("task {} vs {}", a.task.name(), b.task.name()));
    }
    if a.classes != b.classes {
        return Some(format!("classes {:?} vs {:?}", a.classes, b.classes));
    }
    if a.features.len() != b.features.len() {
        return Some(format!(
            "{} features vs {}",
            a.features.len(),
            b.features.len()
        ));
    }
    for (fa, fb) in a.features.iter().zip(&b.features) {
        if fa != fb {
            return Some(format!("feature '{}' differs from '{}'", fa.name, fb.name));
        }
    }
    Some(format!(
        "input format {} vs {}",
        a.format.name(),
        b.format.name()
    ))
}

/// The distinct rows of a training set (same features, same label), in order of first
/// occurrence, and the group of every original row.
struct Dedup {
    x: FeatureMatrix,
    y: Vec<u32>,
    group_of_row: Vec<u32>,
}

impl Dedup {
    /// Groups identical rows; `None` when fewer than 10% of the rows are duplicates.
    fn find(x: &FeatureMatrix, y: &[u32]) -> Option<Dedup> {
        let n = x.n_rows();
        let nf = x.n_features();
        let mut hashes: Vec<u64> = y.iter().map(|&c| mix(0x5EED, c as u64)).collect();
        for f in 0..nf {
            for (h, v) in hashes.iter_mut().zip(x.column(f)) {
                *h = mix(*h, v.to_bits() as u64);
            }
        }
        let same = |a: usize, b: usize| {
            y[a] == y[b] && (0..nf).all(|f| x.get(a, f).to_bits() == x.get(b, f).to_bits())
        };
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.par_sort_unstable_by_key(|&r| (hashes[r as usize], r));
        // Within a run of equal hashes (ascending row index), each row joins the first earlier
        // row it equals; collisions of unequal rows simply start new groups.
        let mut leader = vec![u32::MAX; n];
        let mut run_start = 0;
        while run_start < n {
            let h = hashes[order[run_start] as usize];
            let mut run_end = run_start + 1;
            while run_end < n && hashes[order[run_end] as usize] == h {
                run_end += 1;
            }
            let run = &order[run_start..run_end];
            for (i, &r) in run.iter().enumerate() {
                let r = r as usize;
                leader[r] = run[..i]
                    .iter()
                    .map(|&q| q as usize)
                    .find(|&q| leader[q] == q as u32 && same(q, r))
                    .map_or(r as u32, |q| q as u32);
            }
            run_start = run_end;
        }
        let mut group_of_row = vec![0u32; n];
        let mut first_rows = Vec::new();
        let mut id_of_leader = vec![u32::MAX; n];
        for r in 0..n {
            let l = leader[r] as usize;
            if id_of_leader[l] == u32::MAX {
                id_of_leader[l] = first_rows.len() as u32;
                first_rows.push(r);
            }
            group_of_row[r] = id_of_leader[l];
        }
        if first_rows.len() * 10 > n * 9 {
            return None;
        }
        Some(Dedup {
            x: x.select_rows(&first_rows),
            y: first_rows.iter().map(|&r| y[r]).collect(),
            group_of_row,
        })
    }

    /// Per-group counts from per-row counts.
    fn group_counts(&self, counts: &[u32]) -> Vec<u32> {
        let mut out = vec![0u32; self.y.len()];
        for (&g, &c) in self.group_of_row.iter().zip(counts) {
            out[g as usize] += c;
        }
        out
    }
}

fn mix(h: u64, v: u64) -> u64 {
    let mut s = h ^ v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    fedids_rng::splitmix64(&mut s)
}

/// Per-row sample counts for one tree.
fn draw_sample(sampling: Sampling, n: usize, rng: &mut Rng) -> Vec<u32> {
    match sampling {
        Sampling::All => vec![1; n],
        Sampling::Bootstrap => {
            let mut counts = vec![0u32; n];
            for _ in 0..n {
                counts[rng.below(n as u64) as usize] += 1;
            }
            counts
        }
        Sampling::Subsample(f) => {
            let k = ((f * n as f64).round() as usize).clamp(1, n);
            let mut idx: Vec<u32> = (0..n as u32).collect();
            for i in 0..k {
                let j = i + rng.below((n - i) as u64) as usize;
                idx.swap(i, j);
            }
            let mut counts = vec![0u32; n];
            for &i in &idx[..k] {
                counts[i as usize] = 1;
            }
            counts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedids_data::{Feature, FeatureKind, FormatSpec, Task};

    /// 600 rows drawn from only 40 distinct (features, label) combinations.
    fn duplicated() -> (FeatureMatrix, Vec<u32>, Schema) {
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..600u32 {
            let k = (i * 7919) % 40;
            rows.extend([(k % 5) as f32, (k / 5) as f32, (k % 3) as f32 * 0.5]);
            y.push(u32::from(k % 5 + k / 5 > 5) + u32::from(k == 13));
        }
        let schema = Schema {
            format: FormatSpec::NslKdd,
            task: Task::Multiclass,
            features: ["a", "b", "c"]
                .iter()
                .map(|n| Feature {
                    name: n.to_string(),
                    kind: FeatureKind::Numeric,
                })
                .collect(),
            classes: vec!["normal".into(), "x".into(), "y".into()],
        };
        (FeatureMatrix::from_rows(600, 3, &rows), y, schema)
    }

    #[test]
    fn dedup_groups_identical_rows_in_first_seen_order() {
        let (x, y, _) = duplicated();
        let d = Dedup::find(&x, &y).expect("many duplicates");
        assert_eq!(d.y.len(), 40);
        assert_eq!(d.group_of_row[0], 0);
        for (r, &label) in y.iter().enumerate() {
            let g = d.group_of_row[r] as usize;
            assert_eq!(d.y[g], label);
            for f in 0..3 {
                assert_eq!(d.x.get(g, f), x.get(r, f));
            }
        }
        assert_eq!(d.group_counts(&vec![1; 600]).iter().sum::<u32>(), 600);
    }

    #[test]
    fn training_on_distinct_rows_grows_the_same_trees() {
        let (x, y, schema) = duplicated();
        for params in [
            ForestParams {
                n_trees: 10,
                ..ForestParams::default()
            },
            ForestParams {
                n_trees: 5,
                sampling: Sampling::Subsample(0.7),
                ..ForestParams::default()
            },
            ForestParams {
                n_trees: 5,
                split: SplitSearch::Exact,
                max_features: MaxFeatures::All,
                ..ForestParams::default()
            },
        ] {
            let with = Forest::fit_with(&x, &y, schema.clone(), &params, &|| (), true).unwrap();
            let without = Forest::fit_with(&x, &y, schema.clone(), &params, &|| (), false).unwrap();
            assert_eq!(with, without, "{params:?}");
        }
    }

    /// The predictor a forest keeps after its first prediction is the forest's own: it gives
    /// what a fresh one gives, and leaves the model's bytes, equality and clones alone.
    #[test]
    fn the_kept_predictor_changes_no_output_and_no_bytes() {
        let (x, y, schema) = duplicated();
        let params = ForestParams {
            n_trees: 7,
            ..ForestParams::default()
        };
        let forest = Forest::fit(&x, &y, schema, &params, &|| ()).unwrap();
        let fresh = forest.clone();
        let bytes = crate::model::encode(&forest);
        let proba = forest.predictor().predict_proba(&x).unwrap();
        let classes = forest.predictor().predict(&x).unwrap();
        for _ in 0..2 {
            assert_eq!(forest.predict_proba(&x).unwrap(), proba);
            assert_eq!(forest.predict(&x).unwrap(), classes);
        }
        assert!(format!("{forest:?}").contains("Compiled(built)"));
        assert_eq!(forest, fresh);
        assert_eq!(crate::model::encode(&forest), bytes);
        let copy = forest.clone();
        assert_eq!(copy.predict(&x).unwrap(), classes);
        let decoded = crate::model::decode(&bytes).unwrap();
        assert!(format!("{decoded:?}").contains("Compiled(not built)"));
        assert_eq!(decoded.predict(&x).unwrap(), classes);
    }
}
