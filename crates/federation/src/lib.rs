//! Federated Random Forests for fedids.
//!
//! Sites each train a Random Forest on their own flows; the federation merges trees into one
//! global forest without moving any data. Only trees and tree scores cross site boundaries.
//!
//! * [`partition`] deals a pooled dataset to sites ([`PartitionSpec`]: `iid`, `dirichlet:ALPHA`,
//!   `by-class:K`, `by-feature:COLUMN`) and summarises it ([`PartitionSummary`]);
//! * [`local_split`] splits a site's rows into local training and validation rows;
//! * [`merge`] is the pure merge: site forests ([`SiteModel`]) plus the scores sites computed on
//!   their own validation rows ([`ScoreTable`]) and a [`MergeStrategy`] give a [`GlobalModel`]
//!   (a forest and its [`Voting`] rule);
//! * [`simulate`] runs one seed of a whole federation in process ([`SimulationConfig`] to
//!   [`SimulationReport`]), with the `centralized` and `local-only` baselines;
//!   [`run_protocol`] runs the published protocol ([`ProtocolConfig`]);
//! * [`encode_global`] and [`decode_global`] are the global model file (magic `FEDIDSGM`,
//!   versioned, checksummed, deterministic bytes), [`is_global_model`] tells it from a forest
//!   model file.
//!
//! Everything here is synchronous and deterministic: no file I/O, clocks or unseeded randomness.
//! Every random choice derives from an explicit seed through the crate's own xoshiro256++.
//!
//! ```
//! use fedids_federation::{merge, MergeStrategy, ScoreTable, SiteId, SiteModel};
//! use fedids_data::{Feature, FeatureKind, FeatureMatrix, FormatSpec, Schema, Task};
//! use fedids_forest::{Forest, ForestParams};
//!
//! let schema = Schema {
//!     format: FormatSpec::NslKdd,
//!     task: Task::Binary,
//!     features: vec![Feature { name: "f".into(), kind: FeatureKind::Numeric }],
//!     classes: vec!["normal".into(), "attack".into()],
//! };
//! let x = FeatureMatrix::from_rows(4, 1, &[0.0, 1.0, 10.0, 11.0]);
//! let y = [0, 0, 1, 1];
//! let mut sites = Vec::new();
//! let mut scores = ScoreTable::new();
//! for i in 0..2u32 {
//!     let params = ForestParams { n_trees: 4, seed: i as u64, ..ForestParams::default() };
//!     let forest = Forest::fit(&x, &y, schema.clone(), &params, &|| ()).unwrap();
//!     scores.insert(SiteId(i), SiteId(i), forest.score_trees(&x, &y).unwrap());
//!     sites.push(SiteModel { site: SiteId(i), forest, n_train_rows: 4 });
//! }
//! let strategy: MergeStrategy = "top-global:3:wa:wv".parse().unwrap();
//! let global = merge(&sites, &scores, &strategy, 0).unwrap();
//! assert!(global.n_trees() <= 3);
//! assert_eq!(global.predict(&x).unwrap().len(), 4);
//! ```

#![deny(missing_docs)]

mod error;
mod file;
mod global;
mod merge;
mod partition;
mod refit;
mod simulate;
mod split;
mod support;
#[cfg(test)]
mod tests_support;

pub use error::FederationError;
pub use file::{
    decode_global, encode_global, is_global_model, GLOBAL_MODEL_FORMAT_VERSION, GLOBAL_MODEL_MAGIC,
};
pub use global::{Gating, GlobalModel, Voting};
pub use merge::{
    merge, pool_scores, vote_weights, MergeStrategy, Metric, ScoreTable, SiteId, SiteModel, TreeRef,
};
pub use partition::{
    partition, Partition, PartitionSpec, PartitionSummary, SiteShare, SiteSummary,
};
pub use refit::{leaf_counts, merge_experts, refit_sites, LeafCountTable, LeafCounts};
pub use simulate::{
    published_strategies, run_protocol, simulate, LocalOnlySummary, ModelResult, ProtocolConfig,
    ProtocolReport, SimulationConfig, SimulationReport, SiteReport, Spread, PROTOCOL_TEST_FRACTION,
    PROTOCOL_VALIDATION_FRACTION,
};
pub use split::{local_split, protocol_split, LocalSplit, ProtocolSplitSummary};
pub use support::{category_support, merge_support, CategorySupport, SupportGate};
