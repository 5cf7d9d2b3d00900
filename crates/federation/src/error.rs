//! The crate's one error type.

use fedids_forest::ForestError;

/// Everything that can go wrong while partitioning, training sites, scoring or merging.
///
/// Messages are lowercase, without a trailing period, and say what was expected and what was
/// found.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// A partition, strategy or voting name that does not parse.
    #[error("invalid {what} '{found}': {expected}")]
    Spec {
        /// What was being parsed (`partition`, `strategy`, ...).
        what: &'static str,
        /// The text given.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// A partition that cannot be made from this data with these parameters.
    #[error("partition {spec}: {message}")]
    Partition {
        /// The partition spec.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// Inputs that do not fit together (empty data, mismatched sizes, missing scores).
    #[error("{0}")]
    InvalidInput(String),
    /// Bytes that are not a valid global model file (see [`crate::decode_global`]): wrong magic,
    /// unsupported version, truncated, corrupted, or a structurally invalid model.
    #[error("invalid global model file: {0}")]
    InvalidModelFile(String),
    /// The forest engine refused (training, combining trees, predicting).
    #[error("{context}")]
    Forest {
        /// What was being done, e.g. `training site 'tcp'`.
        context: String,
        /// The engine's error.
        source: ForestError,
    },
}

impl FederationError {
    pub(crate) fn forest(context: impl Into<String>) -> impl FnOnce(ForestError) -> Self {
        let context = context.into();
        move |source| FederationError::Forest { context, source }
    }
}
