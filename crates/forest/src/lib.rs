//! The fedids Random Forest engine.
//!
//! This crate owns CART classification trees and Random Forests: training ([`Forest::fit`] with
//! [`ForestParams`]: Gini or entropy, depth and leaf limits, features per split, bootstrap or
//! subsampling, balanced class weights, histogram or exact split search), inference
//! ([`Forest::predict`], [`Forest::predict_proba`]), the tree-level API federation needs
//! ([`Forest::trees`], [`Forest::score_trees`], [`Forest::from_trees`]), the model file
//! ([`model::encode`], [`model::decode`], [`model::model_hash`]) and evaluation [`Metrics`].
//!
//! It must not know about files, sockets, async runtimes or federation protocols: it takes
//! matrices and bytes and returns values. Training is parallel over trees (rayon) and
//! deterministic: a tree's randomness comes only from `(seed, tree index)`, so the same inputs give
//! the same model bit for bit whatever the thread count.
//!
//! Trees are flat node arrays; thresholds are stored in raw feature units (never bin indices) so
//! trees trained on different data, at different sites, can be combined into one forest.
//!
//! ```
//! use fedids_data::{FeatureMatrix, Schema, Feature, FeatureKind, FormatSpec, Task};
//! use fedids_forest::{Forest, ForestParams, Sampling};
//! let x = FeatureMatrix::from_rows(4, 1, &[0.0, 1.0, 10.0, 11.0]);
//! let y = [0, 0, 1, 1];
//! let schema = Schema {
//!     format: FormatSpec::NslKdd,
//!     task: Task::Binary,
//!     features: vec![Feature { name: "f".into(), kind: FeatureKind::Numeric }],
//!     classes: vec!["normal".into(), "attack".into()],
//! };
//! let params = ForestParams { n_trees: 5, sampling: Sampling::All, ..ForestParams::default() };
//! let forest = Forest::fit(&x, &y, schema, &params, &|| ()).unwrap();
//! assert_eq!(forest.predict(&x).unwrap(), vec![0, 0, 1, 1]);
//! ```

mod binning;
mod error;
mod forest;
mod metrics;
pub mod model;
mod predict;
mod sets;
mod train;
mod tree;

pub use error::ForestError;
pub use forest::{
    schema_difference, ClassWeight, Forest, ForestParams, MaxFeatures, Provenance, Sampling,
    SplitSearch, TreeScore,
};
pub use metrics::{ClassMetrics, Metrics};
pub use predict::{Kernel, Predictor};
pub use train::Criterion;
pub use tree::{Node, Tree, LEAF};

/// The index of the most probable class in a probability row (lowest index on ties).
pub fn argmax_class(proba: &[f32]) -> usize {
    tree::argmax(proba) as usize
}

impl std::str::FromStr for Criterion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gini" => Ok(Criterion::Gini),
            "entropy" => Ok(Criterion::Entropy),
            _ => Err(format!("expected 'gini' or 'entropy', found '{s}'")),
        }
    }
}
