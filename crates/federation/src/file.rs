//! The global model file: versioned, checksummed, deterministic bytes for a [`GlobalModel`], for
//! the coordinator to hash, sign and ship to sites.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"FEDIDSGM"
//! 8       2     format version, u16 little-endian (currently 1)
//! 10      8     payload length n in bytes, u64 little-endian
//! 18      n     payload, postcard encoding of, in order:
//!                 the forest as its own model file bytes (fedids_forest::model::encode),
//!                 the voting rule, the per-tree class vote weights, the tree sources,
//!                 the optional site gating (experts), the optional support gate (support)
//! 18+n    32    SHA-256 of bytes 0..18+n (header and payload)
//! ```
//!
//! postcard has no maps and the forest file is itself deterministic, so the same model always
//! encodes to the same bytes. Decoding checks the magic, version, length and checksum, decodes the
//! payload and the embedded forest file (with all of its own checks), then rebuilds the model
//! through the checking constructors ([`GlobalModel::new`], [`GlobalModel::with_gating`], the
//! support gate's checks) and finally requires the bytes to be the canonical encoding of what
//! they decoded to. A truncated, corrupted or hostile file is an error, never a panic, and two
//! different accepted files never hold the same model.

use fedids_forest::model as forest_file;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::FederationError;
use crate::global::{Gating, GlobalModel, Voting};
use crate::merge::TreeRef;
use crate::support::SupportGate;

/// The first 8 bytes of every global model file.
pub const GLOBAL_MODEL_MAGIC: &[u8; 8] = b"FEDIDSGM";
/// The global model file format version this build writes and reads.
pub const GLOBAL_MODEL_FORMAT_VERSION: u16 = 1;

const HEADER_LEN: usize = 8 + 2 + 8;
const CHECKSUM_LEN: usize = 32;

/// The payload as written: borrowed from the model.
#[derive(Serialize)]
struct PayloadRef<'a> {
    forest: &'a [u8],
    voting: Voting,
    class_weights: &'a [Vec<f64>],
    sources: &'a [TreeRef],
    gating: Option<&'a Gating>,
    support: Option<&'a SupportGate>,
}

/// The payload as read: the same fields in the same order, owned and not yet checked.
#[derive(Deserialize)]
struct Payload {
    forest: Vec<u8>,
    voting: Voting,
    class_weights: Vec<Vec<f64>>,
    sources: Vec<TreeRef>,
    gating: Option<Gating>,
    support: Option<SupportGate>,
}

/// Whether `bytes` start with the global model magic (`FEDIDSGM`), to tell a global model file
/// from a forest model file (`FEDIDSMF`) before decoding. Says nothing about validity.
pub fn is_global_model(bytes: &[u8]) -> bool {
    bytes.starts_with(GLOBAL_MODEL_MAGIC)
}

/// Encodes a global model as global model file bytes (see the module docs for the layout). The
/// same model always gives the same bytes.
pub fn encode_global(model: &GlobalModel) -> Vec<u8> {
    let forest = forest_file::encode(model.forest());
    let payload = postcard::to_stdvec(&PayloadRef {
        forest: &forest,
        voting: model.voting(),
        class_weights: model.class_weights(),
        sources: model.sources(),
        gating: model.gating(),
        support: model.support(),
    })
    .expect("encoding a global model into memory cannot fail");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + CHECKSUM_LEN);
    out.extend_from_slice(GLOBAL_MODEL_MAGIC);
    out.extend_from_slice(&GLOBAL_MODEL_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    let checksum = Sha256::digest(&out);
    out.extend_from_slice(&checksum);
    out
}

fn invalid(message: impl Into<String>) -> FederationError {
    FederationError::InvalidModelFile(message.into())
}

/// Why `bytes` do not start with the global model magic.
fn wrong_magic(bytes: &[u8]) -> FederationError {
    if bytes.is_empty() {
        return invalid("empty input, expected a global model file");
    }
    if bytes.len() < GLOBAL_MODEL_MAGIC.len() && GLOBAL_MODEL_MAGIC.starts_with(bytes) {
        return invalid(format!(
            "truncated: {} bytes, the header alone takes {HEADER_LEN}",
            bytes.len()
        ));
    }
    if bytes.starts_with(forest_file::MAGIC) {
        return invalid(
            "this is a forest model file (magic FEDIDSMF), not a global model file (magic \
             FEDIDSGM); decode it as a forest model",
        );
    }
    let head = &bytes[..bytes.len().min(GLOBAL_MODEL_MAGIC.len())];
    let shown = if head.iter().all(|b| b.is_ascii_graphic()) {
        format!("'{}'", String::from_utf8_lossy(head))
    } else {
        format!("0x{}", forest_file::hex(head))
    };
    let kind = if head.starts_with(b"FEDIDS") {
        "another fedids file type"
    } else {
        "not a fedids file"
    };
    invalid(format!(
        "not a global model file: it starts with {shown} ({kind}), expected the magic FEDIDSGM"
    ))
}

/// Decodes and validates global model file bytes.
///
/// Errors ([`FederationError::InvalidModelFile`]) name the problem: wrong magic (a forest model
/// file is recognized as such), unsupported version, truncated input, a length that does not
/// match, a checksum mismatch, trailing bytes, a payload or embedded forest that does not decode,
/// a structurally invalid model, or bytes that are not the canonical encoding of their model.
pub fn decode_global(bytes: &[u8]) -> Result<GlobalModel, FederationError> {
    if !is_global_model(bytes) {
        return Err(wrong_magic(bytes));
    }
    if bytes.len() < HEADER_LEN {
        return Err(invalid(format!(
            "truncated: {} bytes, the header alone takes {HEADER_LEN}",
            bytes.len()
        )));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != GLOBAL_MODEL_FORMAT_VERSION {
        return Err(invalid(format!(
            "unsupported format version {version} (this build reads version \
             {GLOBAL_MODEL_FORMAT_VERSION})"
        )));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[10..HEADER_LEN]);
    let declared = u64::from_le_bytes(len);
    let available = (bytes.len() - HEADER_LEN) as u64;
    match declared.checked_add(CHECKSUM_LEN as u64) {
        Some(total) if total == available => {}
        Some(total) if total > available => {
            return Err(invalid(format!(
                "truncated: the header announces {declared} payload bytes and a \
                 {CHECKSUM_LEN}-byte checksum, only {available} bytes follow it"
            )))
        }
        Some(total) => {
            return Err(invalid(format!(
                "{} trailing bytes: the header announces {declared} payload bytes and a \
                 {CHECKSUM_LEN}-byte checksum, {available} bytes follow it",
                available - total
            )))
        }
        None => {
            return Err(invalid(format!(
                "length mismatch: the header announces {declared} payload bytes, \
                 {available} bytes follow it"
            )))
        }
    }
    let end = HEADER_LEN + declared as usize;
    if Sha256::digest(&bytes[..end]).as_slice() != &bytes[end..] {
        return Err(invalid("checksum mismatch: the file is corrupted"));
    }
    let (payload, rest): (Payload, &[u8]) = postcard::take_from_bytes(&bytes[HEADER_LEN..end])
        .map_err(|e| invalid(format!("the payload does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid(format!(
            "{} unexpected bytes after the payload",
            rest.len()
        )));
    }
    let model = rebuild(payload)?;
    if encode_global(&model) != bytes {
        return Err(invalid(
            "the bytes are not the canonical encoding of the model they hold",
        ));
    }
    Ok(model)
}

/// The model a decoded payload describes, through the checking constructors.
fn rebuild(p: Payload) -> Result<GlobalModel, FederationError> {
    let forest =
        forest_file::decode(&p.forest).map_err(|e| invalid(format!("the embedded forest: {e}")))?;
    let structure = |e: FederationError| invalid(format!("invalid model: {e}"));
    let model =
        GlobalModel::new(forest, p.voting, p.class_weights, p.sources).map_err(structure)?;
    let gated = match (&p.gating, &p.support) {
        (None, None) => return Ok(model),
        (Some(_), Some(_)) => {
            return Err(invalid(
                "invalid model: it has both a site gating and a support gate",
            ))
        }
        (Some(_), None) => "site gating",
        (None, Some(_)) => "support gate",
    };
    if model.voting() != Voting::Soft {
        return Err(invalid(format!(
            "invalid model: a model with a {gated} votes soft, found {}",
            model.voting()
        )));
    }
    let forest = model.forest().clone();
    let sources = model.sources().to_vec();
    if let Some(g) = p.gating {
        let (n_experts, expert_of_tree, leaf_site_share) = g.into_parts();
        GlobalModel::with_gating(forest, sources, n_experts, expert_of_tree, leaf_site_share)
            .map_err(structure)
    } else if let Some(gate) = p.support {
        GlobalModel::with_support(forest, sources, gate).map_err(structure)
    } else {
        unreachable!("handled above")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::tests_support::{binary_schema, two_blobs};
    use crate::{
        category_support, leaf_counts, merge, merge_experts, merge_support, CategorySupport,
        LeafCountTable, MergeStrategy, ScoreTable, SiteId, SiteModel,
    };
    use fedids_data::{Feature, FeatureKind, FeatureMatrix, FormatSpec, Schema, Task};
    use fedids_forest::{Forest, ForestParams, Sampling};
    use proptest::prelude::*;

    /// Two sites of two-blob data, with every site's scores and leaf counts of every forest.
    fn blob_sites() -> (Vec<SiteModel>, ScoreTable, LeafCountTable) {
        let (x, y) = two_blobs(60, 2);
        let mut models = Vec::new();
        let mut data = Vec::new();
        for s in 0..2usize {
            let rows: Vec<usize> = (s * 30..(s + 1) * 30).collect();
            let sx = x.select_rows(&rows);
            let sy: Vec<u32> = rows.iter().map(|&r| y[r]).collect();
            let params = ForestParams {
                n_trees: 4,
                max_depth: Some(3),
                seed: 7 + s as u64,
                ..ForestParams::default()
            };
            let forest = Forest::fit(&sx, &sy, binary_schema(2), &params, &|| ()).unwrap();
            models.push(SiteModel {
                site: SiteId(s as u32),
                forest,
                n_train_rows: 30,
            });
            data.push((sx, sy));
        }
        let mut scores = ScoreTable::new();
        let mut counts = LeafCountTable::new();
        for (e, (sx, sy)) in data.iter().enumerate() {
            for m in &models {
                let ev = models[e].site;
                scores.insert(ev, m.site, m.forest.score_trees(sx, sy).unwrap());
                counts.insert(ev, m.site, leaf_counts(&m.forest, sx, sy).unwrap());
            }
        }
        (models, scores, counts)
    }

    fn categorical_schema() -> Schema {
        Schema {
            format: FormatSpec::NslKdd,
            task: Task::Binary,
            features: vec![
                Feature {
                    name: "service".into(),
                    kind: FeatureKind::Categorical {
                        categories: vec!["a".into(), "b".into(), "c".into()],
                    },
                },
                Feature {
                    name: "bytes".into(),
                    kind: FeatureKind::Numeric,
                },
            ],
            classes: vec!["normal".into(), "attack".into()],
        }
    }

    /// Rows of the given services, attack when `bytes > 0.5` (the opposite when `flip`).
    fn service_rows(codes: &[u32], flip: bool, n: usize) -> (FeatureMatrix, Vec<u32>) {
        let mut v = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let bytes = ((i * 37) % 100) as f32 / 100.0;
            v.extend([codes[i % codes.len()] as f32, bytes]);
            y.push(u32::from((bytes > 0.5) != flip));
        }
        (FeatureMatrix::from_rows(n, 2, &v), y)
    }

    fn support_model() -> GlobalModel {
        let mut sites = Vec::new();
        let mut supports = Vec::new();
        for (id, codes, flip) in [(0u32, &[0u32, 1][..], false), (1, &[2][..], true)] {
            let (x, y) = service_rows(codes, flip, 80);
            let params = ForestParams {
                n_trees: 3,
                sampling: Sampling::All,
                seed: id as u64,
                ..ForestParams::default()
            };
            let forest = Forest::fit(&x, &y, categorical_schema(), &params, &|| ()).unwrap();
            supports.push((
                SiteId(id),
                category_support(&categorical_schema(), &x).unwrap(),
            ));
            sites.push(SiteModel {
                site: SiteId(id),
                forest,
                n_train_rows: 80,
            });
        }
        merge_support(&sites, &supports).unwrap()
    }

    /// One model of every kind, with a matrix it predicts on: soft, sv, wv, experts, support.
    fn fixtures() -> &'static [(&'static str, GlobalModel, FeatureMatrix)] {
        static FIXTURES: OnceLock<Vec<(&'static str, GlobalModel, FeatureMatrix)>> =
            OnceLock::new();
        FIXTURES.get_or_init(|| {
            let (sites, scores, counts) = blob_sites();
            let (blobs, _) = two_blobs(64, 2);
            let mut out: Vec<(&'static str, GlobalModel, FeatureMatrix)> = [
                ("all:soft", "soft"),
                ("all:sv", "sv"),
                ("top-global:5:wa:wv", "wv"),
            ]
            .into_iter()
            .map(|(spec, name)| {
                let strategy: MergeStrategy = spec.parse().unwrap();
                let model = merge(&sites, &scores, &strategy, 0).unwrap();
                (name, model, blobs.clone())
            })
            .collect();
            out.push((
                "experts",
                merge_experts(&sites, &counts).unwrap(),
                blobs.clone(),
            ));
            let (x, _) = service_rows(&[0, 1, 2, 3], false, 64);
            out.push(("support", support_model(), x));
            out
        })
    }

    fn encodings() -> &'static [Vec<u8>] {
        static ENCODINGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        ENCODINGS.get_or_init(|| {
            fixtures()
                .iter()
                .map(|(_, m, _)| encode_global(m))
                .collect()
        })
    }

    /// `bytes` with a correct header and checksum around `payload`.
    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = GLOBAL_MODEL_MAGIC.to_vec();
        out.extend_from_slice(&GLOBAL_MODEL_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(payload);
        let checksum = Sha256::digest(&out);
        out.extend_from_slice(&checksum);
        out
    }

    fn error_of(bytes: &[u8]) -> String {
        decode_global(bytes).unwrap_err().to_string()
    }

    #[test]
    fn fixtures_cover_every_kind_of_model() {
        let kinds: Vec<(Voting, bool, bool)> = fixtures()
            .iter()
            .map(|(_, m, _)| (m.voting(), m.gating().is_some(), m.support().is_some()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Voting::Soft, false, false),
                (Voting::Simple, false, false),
                (Voting::Weighted, false, false),
                (Voting::Soft, true, false),
                (Voting::Soft, false, true),
            ]
        );
    }

    #[test]
    fn every_kind_of_model_round_trips_and_predicts_the_same() {
        for ((name, model, x), bytes) in fixtures().iter().zip(encodings()) {
            assert!(is_global_model(bytes), "{name}");
            assert_eq!(&bytes[..8], b"FEDIDSGM");
            assert_eq!(&bytes[8..10], &[1, 0], "{name}: version 1, little-endian");
            let declared = u64::from_le_bytes(bytes[10..18].try_into().unwrap()) as usize;
            assert_eq!(bytes.len(), 18 + declared + 32, "{name}");
            let back = decode_global(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&back, model, "{name}");
            assert_eq!(
                back.predict(x).unwrap(),
                model.predict(x).unwrap(),
                "{name}"
            );
            assert_eq!(encode_global(&back), *bytes, "{name}");
        }
    }

    #[test]
    fn encoding_is_deterministic() {
        for ((name, model, _), bytes) in fixtures().iter().zip(encodings()) {
            assert_eq!(encode_global(model), *bytes, "{name}");
            assert_eq!(encode_global(&model.clone()), *bytes, "{name}");
        }
        // Rebuilt from scratch, the same model gives the same bytes.
        let (sites, scores, _) = blob_sites();
        let wv = merge(&sites, &scores, &"top-global:5:wa:wv".parse().unwrap(), 0).unwrap();
        assert_eq!(encode_global(&wv), encodings()[2]);
        assert_eq!(encode_global(&support_model()), encodings()[4]);
    }

    #[test]
    fn a_forest_model_file_is_recognized_and_refused() {
        let forest = fixtures()[0].1.forest();
        let bytes = forest_file::encode(forest);
        assert!(!is_global_model(&bytes));
        let err = error_of(&bytes);
        assert!(err.contains("forest model file"), "{err}");
        assert!(err.starts_with("invalid global model file: "), "{err}");
        let err = error_of(b"PK\x03\x04 not a model at all");
        assert!(
            err.contains("not a fedids file") && err.contains("0x504b0304"),
            "{err}"
        );
        let err = error_of(b"FEDIDSXXsomething");
        assert!(
            err.contains("'FEDIDSXX'") && err.contains("another fedids file type"),
            "{err}"
        );
        assert!(error_of(b"").contains("empty input"));
        assert!(error_of(b"FEDI").contains("truncated"));
        assert!(!is_global_model(b"FEDIDSG"));
    }

    #[test]
    fn header_problems_have_clear_errors() {
        let good = &encodings()[0];
        let mut v2 = good.clone();
        v2[8] = 2;
        assert!(
            error_of(&v2).contains("unsupported format version 2 (this build reads version 1)"),
            "{}",
            error_of(&v2)
        );
        let err = error_of(&good[..good.len() - 1]);
        assert!(err.contains("truncated"), "{err}");
        let err = error_of(&good[..12]);
        assert!(err.contains("truncated") && err.contains("header"), "{err}");
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0, 0, 0]);
        let err = error_of(&trailing);
        assert!(err.contains("3 trailing bytes"), "{err}");
        let mut huge = good.clone();
        huge[10..18].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = error_of(&huge);
        assert!(err.contains("length mismatch"), "{err}");
        let mut flipped = good.clone();
        let mid = 18 + (good.len() - 50) / 2;
        flipped[mid] ^= 0x10;
        let err = error_of(&flipped);
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn payload_problems_behind_a_valid_checksum_have_clear_errors() {
        let err = error_of(&framed(&[0xff; 10]));
        assert!(err.contains("the payload does not decode"), "{err}");
        // A forest field that is not a forest model file.
        let payload = postcard::to_stdvec(&PayloadRef {
            forest: b"nonsense",
            voting: Voting::Soft,
            class_weights: &[],
            sources: &[],
            gating: None,
            support: None,
        })
        .unwrap();
        let err = error_of(&framed(&payload));
        assert!(err.contains("the embedded forest"), "{err}");
        let mut extra = payload.clone();
        extra.push(0);
        let err = error_of(&framed(&extra));
        assert!(
            err.contains("1 unexpected bytes after the payload"),
            "{err}"
        );
    }

    /// The payload of `model` with some fields replaced, framed.
    fn tampered(model: &GlobalModel, edit: impl FnOnce(&mut Payload)) -> Vec<u8> {
        let bytes = encode_global(model);
        let (mut p, _): (Payload, _) =
            postcard::take_from_bytes(&bytes[18..bytes.len() - 32]).unwrap();
        edit(&mut p);
        let payload = postcard::to_stdvec(&PayloadRef {
            forest: &p.forest,
            voting: p.voting,
            class_weights: &p.class_weights,
            sources: &p.sources,
            gating: p.gating.as_ref(),
            support: p.support.as_ref(),
        })
        .unwrap();
        framed(&payload)
    }

    #[test]
    fn structurally_invalid_models_are_refused() {
        let [soft, sv, wv, experts, support] = [0, 1, 2, 3, 4].map(|i| &fixtures()[i].1);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tampered(soft, |p| {
                    p.sources.pop();
                }),
                "sources for",
            ),
            (
                tampered(sv, |p| p.class_weights = vec![vec![1.0, 1.0]]),
                "vote weights given for sv voting",
            ),
            (
                tampered(wv, |p| p.class_weights[0] = vec![1.0, f64::NAN]),
                "finite non-negative",
            ),
            (
                tampered(wv, |p| p.class_weights[1] = vec![1.0, -1.0]),
                "finite non-negative",
            ),
            (
                tampered(wv, |p| {
                    p.class_weights.pop();
                }),
                "rows of vote weights",
            ),
            (
                tampered(experts, |p| p.voting = Voting::Simple),
                "votes soft, found sv",
            ),
            (
                tampered(experts, |p| p.support = support.support().cloned()),
                "both a site gating and a support gate",
            ),
            (
                tampered(support, |p| p.voting = Voting::Simple),
                "votes soft",
            ),
        ];
        for (bytes, expected) in cases {
            let err = error_of(&bytes);
            assert!(
                err.contains("invalid model") && err.contains(expected),
                "{err}"
            );
        }
    }

    #[test]
    fn invalid_gating_tables_are_refused() {
        let experts = &fixtures()[3].1;
        let (n, owners, shares) = experts.gating().unwrap().clone().into_parts();
        let rebuild = |n: usize, owners: Vec<usize>, shares: Vec<Vec<f32>>| {
            GlobalModel::with_gating(
                experts.forest().clone(),
                experts.sources().to_vec(),
                n,
                owners,
                shares,
            )
        };
        assert!(rebuild(n, owners.clone(), shares.clone()).is_ok());
        let mut negative = shares.clone();
        negative[0][0] = -0.5;
        assert!(rebuild(n, owners.clone(), negative).is_err());
        let mut nan = shares.clone();
        nan[1][0] = f32::NAN;
        assert!(rebuild(n, owners.clone(), nan).is_err());
        let mut outside = owners.clone();
        outside[0] = n;
        assert!(rebuild(n, outside, shares.clone()).is_err());
        assert!(rebuild(n + 1, owners.clone(), shares.clone()).is_err());
        let mut short = shares.clone();
        short[2].pop();
        assert!(rebuild(n, owners, short).is_err());
    }

    #[test]
    fn invalid_support_gates_are_refused() {
        let model = &fixtures()[4].1;
        let gate = model.support().unwrap();
        let check = |gate: SupportGate| {
            let bytes = tampered(model, |p| p.support = Some(gate));
            decode_global(&bytes).map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(check(gate.clone()), Ok(()));
        let mut json = serde_json::to_value(gate).unwrap();
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let edits: Vec<(Edit, &str)> = vec![
            (
                Box::new(|j| {
                    j["supports"].as_array_mut().unwrap().pop();
                }),
                "belongs to expert 1 of 1",
            ),
            (
                Box::new(|j| {
                    let first = j["supports"][0].clone();
                    j["supports"].as_array_mut().unwrap().push(first);
                }),
                "expert 2 of the support gate owns no tree",
            ),
            (
                Box::new(|j| {
                    j["expert_of_tree"].as_array_mut().unwrap().pop();
                }),
                "support gate for 5 trees, the forest has 6",
            ),
            (
                Box::new(|j| j["expert_of_tree"][0] = 7.into()),
                "tree 0 belongs to expert 7 of 2",
            ),
            (
                Box::new(|j| {
                    j["supports"][0]["seen"][0].as_array_mut().unwrap().pop();
                }),
                "3 flags for feature 'service', expected 4",
            ),
            (
                Box::new(|j| j["supports"][1]["seen"][1] = serde_json::json!([true])),
                "1 flags for feature 'bytes', expected 0",
            ),
            (
                Box::new(|j| {
                    j["supports"][1]["seen"].as_array_mut().unwrap().pop();
                }),
                "1 flag vectors for a schema of 2 features",
            ),
        ];
        let original = json.clone();
        for (edit, expected) in edits {
            json.clone_from(&original);
            edit(&mut json);
            let bad: SupportGate = serde_json::from_value(json.clone()).unwrap();
            let err = check(bad).unwrap_err();
            assert!(err.contains(expected), "{err}, expected '{expected}'");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for bytes in encodings() {
            for len in 0..bytes.len() {
                assert!(decode_global(&bytes[..len]).is_err(), "length {len}");
            }
        }
    }

    #[test]
    fn non_canonical_bytes_are_refused() {
        // The same payload with the forest's length written as an overlong varint (a redundant
        // continuation byte): whether postcard reads it or not, the file must be refused, so
        // that one model has exactly one accepted encoding.
        let bytes = &encodings()[0];
        let payload = &bytes[18..bytes.len() - 32];
        let (p, _): (Payload, _) = postcard::take_from_bytes(payload).unwrap();
        let mut varint = Vec::new();
        let mut n = p.forest.len();
        loop {
            varint.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
            if n == 0 {
                break;
            }
        }
        let canonical_len = varint.len();
        varint.push(0);
        let mut rewritten = varint;
        rewritten.extend_from_slice(&payload[canonical_len..]);
        let err = error_of(&framed(&rewritten));
        assert!(
            err.contains("canonical") || err.contains("does not decode"),
            "{err}"
        );
    }

    #[test]
    fn predict_proba_is_normalized_and_agrees_with_predict() {
        for (name, model, x) in fixtures() {
            let c = model.forest().n_classes();
            let proba = model.predict_proba(x).unwrap();
            let pred = model.predict(x).unwrap();
            assert_eq!(proba.len(), x.n_rows() * c, "{name}");
            for (row, &p) in proba.chunks_exact(c).zip(&pred) {
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{name}: {row:?}");
                assert!(row.iter().all(|v| (0.0..=1.0 + 1e-6).contains(v)), "{name}");
                assert_eq!(fedids_forest::argmax_class(row) as u32, p, "{name}");
            }
        }
    }

    #[test]
    fn predict_proba_means_what_each_voting_rule_says() {
        let (_, soft, x) = &fixtures()[0];
        let forest = soft.forest().predict_proba(x).unwrap();
        for (a, b) in soft.predict_proba(x).unwrap().iter().zip(&forest) {
            assert!((a - b).abs() < 1e-6);
        }
        let (_, sv, x) = &fixtures()[1];
        let votes = sv.forest().tree_predictions(x).unwrap();
        let n = sv.n_trees() as f32;
        for (r, row) in sv.predict_proba(x).unwrap().chunks_exact(2).enumerate() {
            let ones = votes.iter().filter(|v| v[r] == 1).count() as f32;
            assert!((row[1] - ones / n).abs() < 1e-6, "{row:?}");
        }
        let (_, wv, x) = &fixtures()[2];
        let votes = wv.forest().tree_predictions(x).unwrap();
        for (r, row) in wv.predict_proba(x).unwrap().chunks_exact(2).enumerate() {
            let mut acc = [0f64; 2];
            for (t, v) in votes.iter().enumerate() {
                acc[v[r] as usize] += wv.class_weights()[t][v[r] as usize];
            }
            let share = acc[1] / (acc[0] + acc[1]);
            assert!((row[1] as f64 - share).abs() < 1e-5, "{row:?} {acc:?}");
        }
        let wrong = FeatureMatrix::from_rows(1, 3, &[0.0; 3]);
        for (name, model, _) in fixtures() {
            assert!(model.predict_proba(&wrong).is_err(), "{name}");
        }
    }

    #[test]
    fn category_support_serde_is_stable() {
        // The wire form of a support is its flag vectors, field for field.
        let (x, _) = service_rows(&[1], false, 4);
        let s: CategorySupport = category_support(&categorical_schema(), &x).unwrap();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"seen":[[false,true,false,false],[]]}"#
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_truncation_is_an_error(which in 0usize..5, cut in any::<prop::sample::Index>()) {
            let bytes = &encodings()[which];
            let len = cut.index(bytes.len());
            prop_assert!(decode_global(&bytes[..len]).is_err());
        }

        #[test]
        fn any_single_byte_flip_is_an_error(
            which in 0usize..5,
            at in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let mut bytes = encodings()[which].clone();
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
            prop_assert!(decode_global(&bytes).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            prop_assert!(decode_global(&bytes).is_err());
            let mut headed = GLOBAL_MODEL_MAGIC.to_vec();
            headed.extend_from_slice(&bytes);
            let _ = decode_global(&headed);
            let _ = decode_global(&framed(&bytes));
        }

        #[test]
        fn corrupted_payloads_behind_a_valid_checksum_never_panic(
            which in 0usize..5,
            flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        ) {
            let bytes = &encodings()[which];
            let mut payload = bytes[18..bytes.len() - 32].to_vec();
            for (at, mask) in flips {
                let i = at.index(payload.len());
                payload[i] ^= mask;
            }
            let framed = framed(&payload);
            if let Ok(model) = decode_global(&framed) {
                // Whatever decodes is a checked model whose encoding is exactly these bytes.
                prop_assert_eq!(encode_global(&model), framed);
                let (_, _, x) = &fixtures()[which];
                let _ = model.predict_proba(x);
            }
        }
    }
}
