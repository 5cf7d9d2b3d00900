//! Model files of either kind: a forest model file (magic `FEDIDSMF`, written by `fedids train`)
//! or a global model file (magic `FEDIDSGM`, a merged federation model with its voting rule and
//! gating). Commands that only need a schema and predictions take either through [`ModelFile`].

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use fedids_data::{FeatureMatrix, Schema};
use fedids_federation::{decode_global, is_global_model, GlobalModel, GLOBAL_MODEL_MAGIC};
use fedids_forest::{model, Forest};

/// A decoded model of either kind.
pub enum LoadedModel {
    /// A forest model file: the forest predicts by soft voting.
    Forest(Forest),
    /// A global model file: predictions follow its voting rule and gating.
    Global(GlobalModel),
}

impl LoadedModel {
    /// `forest` or `global`, as reported in JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            LoadedModel::Forest(_) => "forest",
            LoadedModel::Global(_) => "global",
        }
    }

    /// The forest: the model itself, or the merged forest of a global model.
    pub fn forest(&self) -> &Forest {
        match self {
            LoadedModel::Forest(f) => f,
            LoadedModel::Global(g) => g.forest(),
        }
    }

    /// The feature schema input data must be read with.
    pub fn schema(&self) -> &Schema {
        self.forest().schema()
    }

    /// The predicted class of each row: soft voting for a forest, the global model's own rule
    /// (sv/wv voting, experts or support gating) for a global model.
    pub fn predict(&self, x: &FeatureMatrix) -> Result<Vec<u32>> {
        Ok(match self {
            LoadedModel::Forest(f) => f.predict(x)?,
            LoadedModel::Global(g) => g.predict(x)?,
        })
    }
}

/// Class probabilities for batches of rows, from a model of either kind.
pub enum Scorer<'a> {
    /// A forest's compiled predictor.
    Forest(fedids_forest::Predictor),
    /// A global model: probabilities follow its voting rule and gating.
    Global(&'a GlobalModel),
}

impl Scorer<'_> {
    /// Row-major probabilities, `n_rows * n_classes`.
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Result<Vec<f32>> {
        Ok(match self {
            Scorer::Forest(p) => p.predict_proba(x)?,
            Scorer::Global(g) => g.predict_proba(x)?,
        })
    }

    /// Each row's class and row-major probabilities, for detection: a forest stops walking a
    /// row once it is sure the row is benign (class 0), whose probabilities are then all zero
    /// (an alert never needs them); every other row has its exact probabilities.
    pub fn classify_for_detection(&self, x: &FeatureMatrix) -> Result<(Vec<u32>, Vec<f32>)> {
        match self {
            Scorer::Forest(p) => Ok(p.predict_settling(x, 0)?),
            Scorer::Global(g) => {
                let proba = g.predict_proba(x)?;
                let classes = proba
                    .chunks_exact(g.forest().n_classes().max(1))
                    .map(|row| fedids_forest::argmax_class(row) as u32)
                    .collect();
                Ok((classes, proba))
            }
        }
    }
}

impl LoadedModel {
    /// A scorer for streaming batches.
    pub fn scorer(&self) -> Scorer<'_> {
        match self {
            LoadedModel::Forest(f) => Scorer::Forest(f.predictor()),
            LoadedModel::Global(g) => Scorer::Global(g),
        }
    }
}

/// A model read from disk, with its identity.
pub struct ModelFile {
    pub model: LoadedModel,
    /// Lowercase hex SHA-256 of the file bytes.
    pub hash: String,
    pub n_bytes: usize,
}

impl ModelFile {
    /// Reads `path` as a global model file if it starts with the global model magic, and as a
    /// forest model file otherwise, exactly as the forest-only commands read it (same errors).
    /// Decode errors are prefixed with the path and name what the bytes look like.
    pub fn load(path: &Path) -> Result<ModelFile> {
        let cannot_read = || format!("cannot read model file {}", path.display());
        let mut head = Vec::with_capacity(GLOBAL_MODEL_MAGIC.len());
        std::fs::File::open(path)
            .and_then(|f| {
                f.take(GLOBAL_MODEL_MAGIC.len() as u64)
                    .read_to_end(&mut head)
            })
            .with_context(cannot_read)?;
        if !is_global_model(&head) {
            let m = super::read_model(path)?;
            return Ok(ModelFile {
                model: LoadedModel::Forest(m.forest),
                hash: m.hash,
                n_bytes: m.n_bytes,
            });
        }
        let bytes = std::fs::read(path).with_context(cannot_read)?;
        Self::global_from_bytes(path, &bytes)
    }

    fn global_from_bytes(path: &Path, bytes: &[u8]) -> Result<ModelFile> {
        let global = decode_global(bytes).with_context(|| format!("{}", path.display()))?;
        Ok(ModelFile {
            model: LoadedModel::Global(global),
            hash: model::model_hash(bytes),
            n_bytes: bytes.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedids_data::{Feature, FeatureKind, FormatSpec, Task};
    use fedids_federation::{encode_global, merge, ScoreTable, SiteId, SiteModel};
    use fedids_forest::ForestParams;

    fn forests() -> (Vec<SiteModel>, ScoreTable, FeatureMatrix) {
        let schema = Schema {
            format: FormatSpec::NslKdd,
            task: Task::Binary,
            features: vec![Feature {
                name: "f".into(),
                kind: FeatureKind::Numeric,
            }],
            classes: vec!["normal".into(), "attack".into()],
        };
        let x = FeatureMatrix::from_rows(6, 1, &[0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
        let y = [0, 0, 0, 1, 1, 1];
        let mut sites = Vec::new();
        let mut scores = ScoreTable::new();
        for i in 0..2u32 {
            let params = ForestParams {
                n_trees: 4,
                seed: i as u64,
                ..ForestParams::default()
            };
            let forest = Forest::fit(&x, &y, schema.clone(), &params, &|| ()).unwrap();
            scores.insert(SiteId(i), SiteId(i), forest.score_trees(&x, &y).unwrap());
            sites.push(SiteModel {
                site: SiteId(i),
                forest,
                n_train_rows: 6,
            });
        }
        (sites, scores, x)
    }

    #[test]
    fn dispatches_on_the_magic() {
        let (sites, scores, x) = forests();
        let dir = tempfile::tempdir().unwrap();
        let forest_bytes = model::encode(&sites[0].forest);
        let forest_path = dir.path().join("m.fedids");
        std::fs::write(&forest_path, &forest_bytes).unwrap();
        let f = ModelFile::load(&forest_path).unwrap();
        assert_eq!(f.model.kind(), "forest");
        assert_eq!(f.hash, model::model_hash(&forest_bytes));
        assert_eq!(f.n_bytes, forest_bytes.len());
        assert_eq!(
            f.model.predict(&x).unwrap(),
            sites[0].forest.predict(&x).unwrap()
        );

        let global = merge(&sites, &scores, &"top-global:6:a:wv".parse().unwrap(), 0).unwrap();
        let global_bytes = encode_global(&global);
        let global_path = dir.path().join("g.fedg");
        std::fs::write(&global_path, &global_bytes).unwrap();
        let g = ModelFile::load(&global_path).unwrap();
        assert_eq!(g.model.kind(), "global");
        assert_eq!(g.hash, model::model_hash(&global_bytes));
        assert_eq!(g.n_bytes, global_bytes.len());
        assert_eq!(g.model.schema(), global.forest().schema());
        assert_eq!(g.model.predict(&x).unwrap(), global.predict(&x).unwrap());
    }

    #[test]
    fn errors_name_the_file_and_the_kind() {
        let (sites, scores, _) = forests();
        let global = merge(&sites, &scores, &"all".parse().unwrap(), 0).unwrap();
        let mut bytes = encode_global(&global);
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        let err = ModelFile::global_from_bytes(Path::new("g.fedg"), &bytes)
            .err()
            .unwrap();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("g.fedg: invalid global model file: "),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in [
            ("x.bin", &b"PK\x03\x04 zip"[..]),
            ("short", b"FED"),
            ("empty", b""),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            let msg = format!("{:#}", ModelFile::load(&path).err().unwrap());
            assert!(msg.contains(name) && msg.contains("FEDIDSMF"), "{msg}");
        }
        let missing = dir.path().join("missing");
        let msg = format!("{:#}", ModelFile::load(&missing).err().unwrap());
        assert!(msg.starts_with("cannot read model file "), "{msg}");
    }
}
