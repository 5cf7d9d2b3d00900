//! Signed tree heads: a node's signed statement "my ledger has `size` entries with this Merkle
//! root", and the checks that expose a node presenting a forked history.
//!
//! Two heads of one honest ledger are always consistent: the smaller tree is a prefix of the
//! larger one, which an RFC 9162 consistency proof shows. Equal sizes with different roots, or a
//! consistency proof that fails, mean the two nodes hold different histories.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ledger::Ledger;
use crate::merkle::{verify_consistency, Hash, MerkleError};

const DOMAIN: &[u8] = b"fedids-tree-head-v1";

/// A tree head: size and root of a ledger at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// Entries covered.
    pub size: u64,
    /// Merkle root of those entries.
    pub root: Hash,
    /// When it was signed (unix ms, as the signer claims).
    pub timestamp_ms: u64,
}

/// A tree head signed by a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// The head.
    pub head: TreeHead,
    /// The signing node's registered name.
    pub signer: String,
    /// Ed25519 signature over the domain, size, root and timestamp.
    pub signature: Vec<u8>,
}

/// A tree head that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The signature does not verify.
    #[error("tree head of '{0}': bad signature")]
    BadSignature(String),
    /// The head covers more entries than the ledger it is checked against.
    #[error("tree head of '{signer}' covers {size} entries, the ledger has {len}")]
    Beyond {
        /// The signer.
        signer: String,
        /// Its size.
        size: u64,
        /// Our size.
        len: u64,
    },
    /// Two histories: the heads cannot both be right.
    #[error("fork: '{signer}' signed a ledger of {size} entries whose root differs from ours")]
    Fork {
        /// The signer.
        signer: String,
        /// The size at which the histories differ.
        size: u64,
    },
    /// A consistency proof that does not verify.
    #[error("fork: '{signer}' cannot prove its {their_size}-entry ledger extends our {our_size} entries ({source})")]
    Inconsistent {
        /// The signer.
        signer: String,
        /// Our size.
        our_size: u64,
        /// Their size.
        their_size: u64,
        /// What failed.
        source: MerkleError,
    },
}

fn message(head: &TreeHead) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(&head.size.to_be_bytes());
    m.extend_from_slice(&head.root);
    m.extend_from_slice(&head.timestamp_ms.to_be_bytes());
    m
}

impl SignedTreeHead {
    /// Signs the head of `ledger` as `signer`.
    pub fn sign(ledger: &Ledger, signer: &str, key: &SigningKey, timestamp_ms: u64) -> Self {
        let head = TreeHead {
            size: ledger.len(),
            root: ledger.merkle().root(),
            timestamp_ms,
        };
        SignedTreeHead {
            signature: key.sign(&message(&head)).to_bytes().to_vec(),
            head,
            signer: signer.to_string(),
        }
    }

    /// Whether the signature verifies under `key`.
    pub fn signature_ok(&self, key: &[u8; 32]) -> bool {
        let (Ok(key), Ok(sig)) = (
            VerifyingKey::from_bytes(key),
            <[u8; 64]>::try_from(self.signature.as_slice()),
        ) else {
            return false;
        };
        key.verify(&message(&self.head), &Signature::from_bytes(&sig))
            .is_ok()
    }

    /// Checks a head against our ledger: signature under `key`, and when the head covers no more
    /// entries than we hold, the same root at its size. For a longer head, use
    /// [`SignedTreeHead::check_extends`] with the signer's consistency proof.
    pub fn check_against(&self, ledger: &Ledger, key: &[u8; 32]) -> Result<(), HeadError> {
        if !self.signature_ok(key) {
            return Err(HeadError::BadSignature(self.signer.clone()));
        }
        let size = self.head.size;
        if size > ledger.len() {
            return Err(HeadError::Beyond {
                signer: self.signer.clone(),
                size,
                len: ledger.len(),
            });
        }
        match ledger.root_at(size) {
            Ok(root) if root == self.head.root => Ok(()),
            _ => Err(HeadError::Fork {
                signer: self.signer.clone(),
                size,
            }),
        }
    }

    /// Checks that a longer head extends our ledger: signature under `key`, then the signer's
    /// consistency proof from our size to theirs.
    pub fn check_extends(
        &self,
        ledger: &Ledger,
        key: &[u8; 32],
        proof: &[Hash],
    ) -> Result<(), HeadError> {
        if self.head.size <= ledger.len() {
            return self.check_against(ledger, key);
        }
        if !self.signature_ok(key) {
            return Err(HeadError::BadSignature(self.signer.clone()));
        }
        verify_consistency(
            ledger.len(),
            self.head.size,
            &ledger.merkle().root(),
            &self.head.root,
            proof,
        )
        .map_err(|source| HeadError::Inconsistent {
            signer: self.signer.clone(),
            our_size: ledger.len(),
            their_size: self.head.size,
            source,
        })
    }
}
