//! Random Forests: parallel, seeded training; batch prediction; combining trees of several forests.

use fedids_data::{FeatureMatrix, Schema};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::binning::BinnedMatrix;
use crate::error::ForestError;
use crate::predict::Predictor;
use crate::rng::{tree_seed, Rng};
use crate::train::{build_tree, Criterion, TrainData, TreeParams};
use crate::tree::{argmax, Tree};

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
    /// Quantile bins (at most `max_bins`, <= 256) per feature, computed once per fit.
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
        let binned = match params.split {
            SplitSearch::Histogram { max_bins } => Some(BinnedMatrix::new(x, max_bins as usize)),
            SplitSearch::Exact => None,
        };
        let data = TrainData {
            x,
            binned: binned.as_ref(),
            y,
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
                let counts = draw_sample(params.sampling, n_rows, &mut rng);
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
        self.predictor().predict_proba(x)
    }

    /// The trees compiled for fast batch inference; build once when scoring many batches.
    pub fn predictor(&self) -> Predictor<'_> {
        Predictor::new(&self.trees, self.schema.features.len(), self.n_classes())
    }

    /// The predicted class of each row (highest mean probability; lowest index on ties).
    pub fn predict(&self, x: &FeatureMatrix) -> Result<Vec<u32>, ForestError> {
        let proba = self.predict_proba(x)?;
        Ok(proba.chunks_exact(self.n_classes()).map(argmax).collect())
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
