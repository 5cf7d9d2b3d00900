//! The forest crate's one error type.

/// Everything that can go wrong when training, combining, encoding or decoding forests.
#[derive(Debug, thiserror::Error)]
pub enum ForestError {
    #[error("invalid training parameter: {0}")]
    InvalidParams(String),
    #[error("invalid training data: {0}")]
    InvalidData(String),
    #[error("input has {found} features but the model expects {expected}")]
    FeatureCount { expected: usize, found: usize },
    #[error("trees do not share a feature schema: {0}")]
    SchemaMismatch(String),
    #[error("not a fedids model file: {0}")]
    NotAModel(String),
    #[error("unsupported model format version {found} (this build reads version {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("model file is truncated: {0}")]
    Truncated(String),
    #[error("model file is corrupted: {0}")]
    Corrupted(String),
    #[error("model is invalid: {0}")]
    InvalidModel(String),
    #[error("prediction kernel unavailable: {0}")]
    Kernel(String),
}
