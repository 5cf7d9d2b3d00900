//! Model signatures: a site signs (round id, nonce, model hash) of its upload with its Ed25519
//! key, and the coordinator signs the same triple for the global model of the round.
//!
//! Binding the round id and the round's nonce makes an upload unusable in any other round, and
//! binding the hash makes it unusable for any other model. Uploads and global models sign under
//! different domain prefixes, so neither signature can stand in for the other.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Domain separation prefix of a site's upload signature.
const DOMAIN: &[u8] = b"fedids-model-v1";
/// Domain separation prefix of the coordinator's global model signature.
const DOMAIN_GLOBAL: &[u8] = b"fedids-global-v1";

/// Errors verifying a signed model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The model bytes do not hash to the announced hash.
    #[error("model hash mismatch: announced {announced}, computed {computed}")]
    HashMismatch {
        /// Hex of the announced hash.
        announced: String,
        /// Hex of the hash of the received bytes.
        computed: String,
    },
    /// A hash that is not 32 bytes.
    #[error("malformed model hash: expected 32 bytes, found {0}")]
    MalformedHash(usize),
    /// A signature that is not 64 bytes.
    #[error("malformed signature: expected 64 bytes, found {0}")]
    MalformedSignature(usize),
    /// The signature does not verify under the site's key.
    #[error("bad signature for round {round_id}: not signed by this site's key over this round, nonce and model")]
    BadSignature {
        /// The round.
        round_id: u64,
    },
}

/// A fresh signing key from the operating system's random source.
pub fn generate_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// SHA-256 of model bytes.
pub fn model_hash(model: &[u8]) -> [u8; 32] {
    Sha256::digest(model).into()
}

/// The exact bytes a site signs: domain, round id (big endian), nonce length, nonce, hash.
pub fn signed_message(round_id: u64, nonce: &[u8], model_hash: &[u8; 32]) -> Vec<u8> {
    message(DOMAIN, round_id, nonce, model_hash)
}

fn message(domain: &[u8], round_id: u64, nonce: &[u8], model_hash: &[u8; 32]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(domain.len() + 8 + 4 + nonce.len() + 32);
    msg.extend_from_slice(domain);
    msg.extend_from_slice(&round_id.to_be_bytes());
    // Lengths fit in u32 (nonces are 32 bytes); saturate rather than wrap just in case.
    msg.extend_from_slice(&u32::try_from(nonce.len()).unwrap_or(u32::MAX).to_be_bytes());
    msg.extend_from_slice(nonce);
    msg.extend_from_slice(model_hash);
    msg
}

/// Signs (round id, nonce, model hash) of a site's upload.
pub fn sign_model(
    key: &SigningKey,
    round_id: u64,
    nonce: &[u8],
    model_hash: &[u8; 32],
) -> [u8; 64] {
    key.sign(&signed_message(round_id, nonce, model_hash))
        .to_bytes()
}

/// Signs (round id, nonce, model hash) of a round's global model (the coordinator's key).
pub fn sign_global(
    key: &SigningKey,
    round_id: u64,
    nonce: &[u8],
    model_hash: &[u8; 32],
) -> [u8; 64] {
    key.sign(&message(DOMAIN_GLOBAL, round_id, nonce, model_hash))
        .to_bytes()
}

/// Verifies a global model: `model` hashes to `announced_hash` and `signature` is the
/// coordinator's signature of (round id, nonce, hash).
pub fn verify_global(
    key: &VerifyingKey,
    round_id: u64,
    nonce: &[u8],
    model: &[u8],
    announced_hash: &[u8],
    signature: &[u8],
) -> Result<[u8; 32], SignatureError> {
    verify(
        DOMAIN_GLOBAL,
        key,
        round_id,
        nonce,
        model,
        announced_hash,
        signature,
    )
}

/// Verifies that `model` hashes to `announced_hash` and that `signature` signs (round id, nonce,
/// hash) under `key`.
pub fn verify_model(
    key: &VerifyingKey,
    round_id: u64,
    nonce: &[u8],
    model: &[u8],
    announced_hash: &[u8],
    signature: &[u8],
) -> Result<[u8; 32], SignatureError> {
    verify(
        DOMAIN,
        key,
        round_id,
        nonce,
        model,
        announced_hash,
        signature,
    )
}

fn verify(
    domain: &[u8],
    key: &VerifyingKey,
    round_id: u64,
    nonce: &[u8],
    model: &[u8],
    announced_hash: &[u8],
    signature: &[u8],
) -> Result<[u8; 32], SignatureError> {
    let announced: [u8; 32] = announced_hash
        .try_into()
        .map_err(|_| SignatureError::MalformedHash(announced_hash.len()))?;
    let computed = model_hash(model);
    if computed != announced {
        return Err(SignatureError::HashMismatch {
            announced: hex(&announced),
            computed: hex(&computed),
        });
    }
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| SignatureError::MalformedSignature(signature.len()))?;
    key.verify(
        &message(domain, round_id, nonce, &computed),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| SignatureError::BadSignature { round_id })?;
    Ok(computed)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(model: &[u8]) -> (SigningKey, [u8; 32], [u8; 64]) {
        let key = generate_key();
        let hash = model_hash(model);
        let sig = sign_model(&key, 7, b"nonce", &hash);
        (key, hash, sig)
    }

    #[test]
    fn signed_model_verifies() {
        let model = b"FEDIDSMF model bytes".to_vec();
        let (key, hash, sig) = check(&model);
        let vk = key.verifying_key();
        assert_eq!(
            verify_model(&vk, 7, b"nonce", &model, &hash, &sig),
            Ok(hash)
        );
    }

    #[test]
    fn tampered_model_fails_hash_check() {
        let mut model = b"FEDIDSMF model bytes".to_vec();
        let (key, hash, sig) = check(&model);
        model[3] ^= 1;
        let err = verify_model(&key.verifying_key(), 7, b"nonce", &model, &hash, &sig).unwrap_err();
        assert!(matches!(err, SignatureError::HashMismatch { .. }), "{err}");
        assert!(err.to_string().starts_with("model hash mismatch"), "{err}");
    }

    #[test]
    fn tampered_model_with_rehash_fails_signature() {
        // An attacker who changes a byte and recomputes the hash still cannot sign.
        let mut model = b"FEDIDSMF model bytes".to_vec();
        let (key, _, sig) = check(&model);
        model[0] ^= 0x80;
        let hash = model_hash(&model);
        let err = verify_model(&key.verifying_key(), 7, b"nonce", &model, &hash, &sig).unwrap_err();
        assert_eq!(err, SignatureError::BadSignature { round_id: 7 });
    }

    #[test]
    fn upload_and_global_signatures_are_not_interchangeable() {
        let model = b"m".to_vec();
        let (key, hash, sig) = check(&model);
        let vk = key.verifying_key();
        assert!(verify_global(&vk, 7, b"nonce", &model, &hash, &sig).is_err());
        let global = sign_global(&key, 7, b"nonce", &hash);
        assert_eq!(
            verify_global(&vk, 7, b"nonce", &model, &hash, &global),
            Ok(hash)
        );
        assert!(verify_model(&vk, 7, b"nonce", &model, &hash, &global).is_err());
    }

    #[test]
    fn replay_in_other_round_or_nonce_fails() {
        let model = b"m".to_vec();
        let (key, hash, sig) = check(&model);
        let vk = key.verifying_key();
        assert!(verify_model(&vk, 8, b"nonce", &model, &hash, &sig).is_err());
        assert!(verify_model(&vk, 7, b"other", &model, &hash, &sig).is_err());
        let other = generate_key().verifying_key();
        assert!(verify_model(&other, 7, b"nonce", &model, &hash, &sig).is_err());
        assert_eq!(
            verify_model(&vk, 7, b"nonce", &model, &hash, &sig[..10]),
            Err(SignatureError::MalformedSignature(10))
        );
    }
}
