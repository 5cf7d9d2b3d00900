//! The feature schema: which columns a model reads, how categorical values are coded, and which
//! classes it predicts. A schema is learned once, on training data, and then travels inside the
//! model so that evaluation and prediction encode rows exactly as training did.

use serde::{Deserialize, Serialize};

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Task {
    /// Benign versus attack: classes are always `[benign, attack]`, benign at index 0.
    Binary,
    /// Attack category: for NSL-KDD and KDD99 `normal, DoS, Probe, R2L, U2R`; for UNSW-NB15 the
    /// `attack_cat` values; for generic CSV the label values (benign first, then sorted).
    Multiclass,
    /// Attack name (the classification task of the federated-forest literature): for NSL-KDD and
    /// KDD99 `normal` first, then the distinct attack names seen in the training data, sorted (a
    /// KDD99 trailing dot is stripped); for UNSW-NB15 and generic CSV the same classes as
    /// [`Task::Multiclass`].
    AttackName,
}

impl Task {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Task::Binary => "binary",
            Task::Multiclass => "multiclass",
            Task::AttackName => "attack-name",
        }
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "binary" => Ok(Task::Binary),
            "multiclass" => Ok(Task::Multiclass),
            "attack-name" => Ok(Task::AttackName),
            other => Err(format!(
                "unknown task '{other}', expected 'binary', 'multiclass' or 'attack-name'"
            )),
        }
    }
}

/// How one feature column is encoded into the `f32` feature matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureKind {
    /// A number, stored as `f32`.
    Numeric,
    /// A symbol, stored as the index of its value in `categories` (sorted, learned on training
    /// data). A value absent from `categories` is stored as the explicit unknown code
    /// `categories.len()`, which sorts after every known code.
    Categorical {
        /// The known values, sorted, without duplicates.
        categories: Vec<String>,
    },
}

/// One input column of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    /// The column name (canonical for built-in formats, the trimmed header name for CSV).
    pub name: String,
    /// How the column is encoded.
    pub kind: FeatureKind,
}

impl Feature {
    /// The code a categorical value maps to: its index, or the unknown code. `None` for numeric
    /// features.
    pub fn category_code(&self, value: &str) -> Option<u32> {
        match &self.kind {
            FeatureKind::Numeric => None,
            FeatureKind::Categorical { categories } => Some(
                categories
                    .binary_search_by(|c| c.as_str().cmp(value))
                    .map_or(categories.len() as u32, |i| i as u32),
            ),
        }
    }
}

/// Everything needed to turn a raw flow record into a model input row and a class index.
///
/// Invariant: `classes` is non-empty; every categorical dictionary is sorted and free of
/// duplicates. Two models can share trees only when their schemas are equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// The input format the schema was learned from; evaluation and prediction parse with it.
    pub format: crate::FormatSpec,
    /// What the model predicts.
    pub task: Task,
    /// The model's inputs, in matrix column order.
    pub features: Vec<Feature>,
    /// Class names, indexed by class code. Index 0 is the benign class.
    pub classes: Vec<String>,
}

impl Schema {
    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// The class index of benign traffic (always 0).
    pub fn benign_class(&self) -> u32 {
        0
    }
}
