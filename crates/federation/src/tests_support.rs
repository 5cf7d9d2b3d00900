//! Small synthetic datasets for unit tests.

use fedids_data::{Feature, FeatureKind, FeatureMatrix, FormatSpec, Schema, Task};

use fedids_rng::Rng;

/// A binary schema with `n_features` numeric features.
pub(crate) fn binary_schema(n_features: usize) -> Schema {
    schema(n_features, &["normal", "attack"])
}

/// A schema with `n_features` numeric features and the given classes.
pub(crate) fn schema(n_features: usize, classes: &[&str]) -> Schema {
    Schema {
        format: FormatSpec::NslKdd,
        task: Task::Binary,
        features: (0..n_features)
            .map(|f| Feature {
                name: format!("f{f}"),
                kind: FeatureKind::Numeric,
            })
            .collect(),
        classes: classes.iter().map(|c| c.to_string()).collect(),
    }
}

/// `n` rows, two classes around 0 and 10 in every feature, with noise.
pub(crate) fn two_blobs(n: usize, n_features: usize) -> (FeatureMatrix, Vec<u32>) {
    let mut rng = Rng::new(n as u64);
    let y: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
    let mut rows = Vec::with_capacity(n * n_features);
    for &c in &y {
        for _ in 0..n_features {
            rows.push(c as f32 * 10.0 + (rng.unit() as f32 - 0.5) * 12.0);
        }
    }
    (FeatureMatrix::from_rows(n, n_features, &rows), y)
}
