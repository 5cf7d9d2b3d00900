//! The model file: versioned, compact, deterministic bytes.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"FEDIDSMF"
//! 8       4     format version, u32 little-endian (currently 1)
//! 12      8     payload length in bytes, u64 little-endian
//! 20      n     payload: the Forest (schema, trees, provenance) in postcard encoding
//! 20+n    32    SHA-256 of the payload
//! ```
//!
//! postcard is a stable, documented wire format without maps, so the same model always encodes to
//! the same bytes and therefore the same [`model_hash`]. Decoding checks the magic, version,
//! length, checksum, and then every structural invariant of the trees, so a truncated, corrupted
//! or hostile file is an error, never a panic or a wrong prediction.

use sha2::{Digest, Sha256};

use crate::error::ForestError;
use crate::forest::{schema_difference, Forest};

pub const MAGIC: &[u8; 8] = b"FEDIDSMF";
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8;
const CHECKSUM_LEN: usize = 32;

/// Encodes a forest as model-file bytes.
pub fn encode(forest: &Forest) -> Vec<u8> {
    let payload = postcard::to_stdvec(forest).expect("encoding a forest into memory cannot fail");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + CHECKSUM_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&Sha256::digest(&payload));
    out
}

/// Decodes and validates model-file bytes.
pub fn decode(bytes: &[u8]) -> Result<Forest, ForestError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(ForestError::NotAModel(
            "missing the FEDIDSMF magic bytes at the start".into(),
        ));
    }
    if bytes.len() < HEADER_LEN {
        return Err(ForestError::Truncated(format!(
            "{} bytes, the header alone takes {HEADER_LEN}",
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4-byte slice"));
    if version != FORMAT_VERSION {
        return Err(ForestError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let declared = u64::from_le_bytes(bytes[12..20].try_into().expect("8-byte slice"));
    let available = (bytes.len() - HEADER_LEN) as u64;
    let expected_total = declared.checked_add(CHECKSUM_LEN as u64);
    match expected_total {
        Some(t) if t == available => {}
        Some(t) if t > available => {
            return Err(ForestError::Truncated(format!(
                "header announces {declared} payload bytes plus a {CHECKSUM_LEN}-byte checksum, only {available} bytes follow"
            )))
        }
        _ => {
            return Err(ForestError::Corrupted(format!(
                "header announces {declared} payload bytes but {available} bytes follow the header"
            )))
        }
    }
    let payload = &bytes[HEADER_LEN..HEADER_LEN + declared as usize];
    let checksum = &bytes[HEADER_LEN + declared as usize..];
    if Sha256::digest(payload).as_slice() != checksum {
        return Err(ForestError::Corrupted("payload checksum mismatch".into()));
    }
    let (forest, rest): (Forest, &[u8]) = postcard::take_from_bytes(payload)
        .map_err(|e| ForestError::Corrupted(format!("payload does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(ForestError::Corrupted(format!(
            "{} unexpected bytes after the model",
            rest.len()
        )));
    }
    validate(&forest)?;
    Ok(forest)
}

/// Checks every invariant a decoded forest must hold before it may predict.
pub fn validate(forest: &Forest) -> Result<(), ForestError> {
    let schema = &forest.schema;
    let nf = schema.features.len();
    let nc = schema.classes.len();
    if nc == 0 {
        return Err(ForestError::InvalidModel(
            "the schema has no classes".into(),
        ));
    }
    if nf == 0 {
        return Err(ForestError::InvalidModel(
            "the schema has no features".into(),
        ));
    }
    for f in &schema.features {
        if let fedids_data::FeatureKind::Categorical { categories } = &f.kind {
            if categories.windows(2).any(|w| w[0] >= w[1]) {
                return Err(ForestError::InvalidModel(format!(
                    "categories of feature '{}' are not sorted and unique",
                    f.name
                )));
            }
        }
    }
    if forest.trees.is_empty() {
        return Err(ForestError::InvalidModel("the forest has no trees".into()));
    }
    for (i, t) in forest.trees.iter().enumerate() {
        t.validate(nf, nc)
            .map_err(|e| ForestError::InvalidModel(format!("tree {i}: {e}")))?;
    }
    // A schema always equals itself; this keeps schema_difference exercised by decoding too.
    debug_assert!(schema_difference(schema, schema).is_none());
    Ok(())
}

/// The model's identity: lowercase hex SHA-256 of its file bytes.
pub fn model_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
