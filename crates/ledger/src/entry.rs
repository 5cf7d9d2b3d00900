//! Ledger entries: what is recorded, who signed it, and its deterministic bytes.
//!
//! An author signs an [`Entry`] on its own: `"fedids-ledger-entry-v1" ‖ postcard(UnsignedEntry)`
//! with Ed25519. It does not need to know where the entry will land, so a site can sign its
//! contribution before the ledger orders it (as a Fabric client signs a transaction before the
//! orderer puts it in a block). The ledger wraps it in a [`Record`] with its position and the hash
//! of the previous record; a record's bytes are `FEDIDSLE`, then the postcard encoding of the
//! record (format version first). Postcard's encoding is documented and stable, and there are no
//! maps or floats here, so the same record always has the same bytes and the same hash.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Magic prefix of an encoded record.
pub const ENTRY_MAGIC: &[u8; 8] = b"FEDIDSLE";
/// Magic prefix of a signed entry on its own (as it travels to the ledger).
pub const SIGNED_MAGIC: &[u8; 8] = b"FEDIDSLS";
/// Version of the entry format written by this build.
pub const ENTRY_VERSION: u16 = 1;
/// Largest encoded entry accepted.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;
const SIGNING_DOMAIN: &[u8] = b"fedids-ledger-entry-v1";

/// What an author may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Registers and revokes keys, records aggregations (a federation operator or coordinator).
    Authority,
    /// Contributes models and publishes intelligence.
    Site,
    /// Runs a ledger node and signs tree heads.
    Node,
}

/// A model a site contributed to a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The round.
    pub round: u64,
    /// SHA-256 of the model file.
    pub model_sha256: Hash,
    /// Trees in the forest.
    pub n_trees: u32,
    /// Rows the forest was trained on.
    pub n_train_rows: u64,
    /// Accuracy of the forest on the site's own validation rows, in parts per million.
    pub validation_accuracy_ppm: u32,
}

/// Trees of one site kept in a global model (their validation gain comes from the sites'
/// [`Evaluation`]s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The site.
    pub site: String,
    /// Its trees in the global model.
    pub n_trees: u32,
}

/// A site's measurement of a round's global model on its own validation rows (by the site
/// itself, after it verified the model): what the global model is worth there, and what each
/// contributing site's trees are worth in it. The basis of [`crate::contrib`]'s validation gains.
///
/// Accuracies are in parts per million. `vote_accuracy_ppm` and `without` use one simple,
/// strategy-independent rule, a plain majority vote of the global model's trees (lowest class on
/// ties), so that removing a site's trees is measured the same way whatever the merge strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The round.
    pub round: u64,
    /// SHA-256 of the global model measured (the round's recorded aggregation output).
    pub global_sha256: Hash,
    /// Validation rows measured on.
    pub n_rows: u64,
    /// Accuracy of the site's own forest of the round.
    pub local_accuracy_ppm: u32,
    /// Accuracy of the global model, as it predicts.
    pub global_accuracy_ppm: u32,
    /// Accuracy of a majority vote of all the global model's trees.
    pub vote_accuracy_ppm: u32,
    /// `(site, accuracy)`: the majority vote without that site's trees, for every site with
    /// trees in the global model, sorted by site.
    pub without: Vec<(String, u32)>,
}

/// The result of merging a round's contributions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregation {
    /// The round.
    pub round: u64,
    /// Merge strategy, command-line spelling.
    pub strategy: String,
    /// Seed of the merge.
    pub seed: u64,
    /// `(site, model hash)` of every merged input, sorted by site.
    pub inputs: Vec<(String, Hash)>,
    /// SHA-256 of the scores the merge used (their canonical encoding).
    pub scores_sha256: Hash,
    /// SHA-256 of the global model file.
    pub output_sha256: Hash,
    /// Trees kept per site.
    pub accepted: Vec<Accepted>,
}

impl Evaluation {
    /// Checks what the numbers alone must satisfy: at least one row, accuracies of at most
    /// 1,000,000 ppm, and the sites of `without` sorted without repeats. Whether they fit a
    /// round is the ledger's (or the coordinator's) check.
    pub fn check_values(&self) -> Result<(), String> {
        let round = self.round;
        if self.n_rows == 0 {
            return Err(format!(
                "evaluation of round {round} measured no validation rows"
            ));
        }
        let accuracies = [
            ("local accuracy", self.local_accuracy_ppm),
            ("global accuracy", self.global_accuracy_ppm),
            ("majority-vote accuracy", self.vote_accuracy_ppm),
        ];
        if let Some((what, ppm)) = accuracies.iter().find(|(_, ppm)| *ppm > 1_000_000) {
            return Err(format!(
                "evaluation of round {round}: {what} of {ppm} ppm is above 1,000,000"
            ));
        }
        if let Some((site, ppm)) = self.without.iter().find(|(_, ppm)| *ppm > 1_000_000) {
            return Err(format!(
                "evaluation of round {round}: majority-vote accuracy without '{site}' of {ppm} \
                 ppm is above 1,000,000"
            ));
        }
        if self.without.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(format!(
                "evaluation of round {round}: the accuracies without each site must be sorted by \
                 site, without repeats"
            ));
        }
        Ok(())
    }
}

/// What an entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// The first entry: the federation's name and its authorities' keys.
    Genesis {
        /// Federation name.
        federation: String,
        /// `(name, Ed25519 key)` of each authority.
        authorities: Vec<(String, [u8; 32])>,
    },
    /// A key registration (by an authority).
    RegisterKey {
        /// Whose key.
        name: String,
        /// The Ed25519 verifying key.
        key: [u8; 32],
        /// What the key may sign.
        role: Role,
    },
    /// A site's model contribution (by the site itself: non-repudiation).
    ModelContribution(Contribution),
    /// A merge (by an authority).
    Aggregation(Aggregation),
    /// A threat-intelligence publication (by a site or an authority).
    IntelPublication {
        /// SHA-256 of the published bundle.
        bundle_sha256: Hash,
        /// Objects in the bundle.
        n_objects: u32,
        /// Where it was published (e.g. a TAXII collection id).
        channel: String,
    },
    /// A key revocation (by an authority, or by the key's owner).
    KeyRevocation {
        /// Whose key.
        name: String,
        /// The revoked key.
        key: [u8; 32],
        /// Why.
        reason: String,
    },
    /// A site's measurement of a round's global model (by the site itself).
    Evaluation(Evaluation),
}

impl Body {
    /// The kind of entry, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Genesis { .. } => "genesis",
            Body::RegisterKey { .. } => "key registration",
            Body::ModelContribution(_) => "model contribution",
            Body::Aggregation(_) => "aggregation",
            Body::IntelPublication { .. } => "intel publication",
            Body::KeyRevocation { .. } => "key revocation",
            Body::Evaluation(_) => "evaluation",
        }
    }
}

/// Everything an author signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsignedEntry {
    /// Format version ([`ENTRY_VERSION`]).
    pub version: u16,
    /// The author's registered name.
    pub author: String,
    /// When the author wrote it (unix ms, as the author claims).
    pub timestamp_ms: u64,
    /// What is recorded.
    pub body: Body,
}

/// A signed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The signed part.
    pub unsigned: UnsignedEntry,
    /// The author's Ed25519 signature (64 bytes).
    pub signature: Vec<u8>,
}

/// An entry at its place in the ledger: what the hash chain and the Merkle tree cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version ([`ENTRY_VERSION`]).
    pub version: u16,
    /// Position in the log (0 for the genesis).
    pub index: u64,
    /// Hash of the previous record's bytes (all zeros for the genesis).
    pub prev_hash: Hash,
    /// The signed entry.
    pub entry: Entry,
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not an entry.
    #[error("not a ledger record or entry (wrong magic)")]
    Magic,
    /// Too large.
    #[error("record of {0} bytes exceeds the limit of {MAX_ENTRY_BYTES}")]
    TooLarge(usize),
    /// A version this build does not read.
    #[error("record format version {0} is not supported (this build reads {ENTRY_VERSION})")]
    Version(u16),
    /// Malformed payload.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// Bytes that decode but are not the canonical encoding of what they decode to.
    #[error("record bytes are not canonical")]
    NotCanonical,
}

fn signed_message(unsigned: &UnsignedEntry) -> Vec<u8> {
    let mut msg = SIGNING_DOMAIN.to_vec();
    // Encoding into a Vec cannot fail for these types.
    msg.extend(postcard::to_stdvec(unsigned).unwrap_or_default());
    msg
}

impl UnsignedEntry {
    /// Signs the entry with `key`.
    pub fn sign(self, key: &SigningKey) -> Entry {
        let signature = key.sign(&signed_message(&self)).to_bytes().to_vec();
        Entry {
            unsigned: self,
            signature,
        }
    }
}

impl Record {
    /// The record's canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = ENTRY_MAGIC.to_vec();
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    /// Decodes canonical record bytes; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let payload = bytes.strip_prefix(ENTRY_MAGIC).ok_or(DecodeError::Magic)?;
        // The version is the first field: read it alone so that a newer format gets a clear error.
        let (version, _) = postcard::take_from_bytes::<u16>(payload)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if version != ENTRY_VERSION {
            return Err(DecodeError::Version(version));
        }
        let record: Record =
            postcard::from_bytes(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if record.encode() != bytes {
            return Err(DecodeError::NotCanonical);
        }
        Ok(record)
    }

    /// SHA-256 of the record's bytes: what the next record's `prev_hash` holds.
    pub fn hash(&self) -> Hash {
        Sha256::digest(self.encode()).into()
    }
}

impl Entry {
    /// The signed entry's canonical bytes, as it travels to the ledger.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = SIGNED_MAGIC.to_vec();
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    /// Decodes a signed entry's canonical bytes; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let payload = bytes.strip_prefix(SIGNED_MAGIC).ok_or(DecodeError::Magic)?;
        let (version, _) = postcard::take_from_bytes::<u16>(payload)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if version != ENTRY_VERSION {
            return Err(DecodeError::Version(version));
        }
        let entry: Entry =
            postcard::from_bytes(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if entry.encode() != bytes {
            return Err(DecodeError::NotCanonical);
        }
        Ok(entry)
    }

    /// Whether the signature verifies under `key`.
    pub fn signature_ok(&self, key: &[u8; 32]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(key) else {
            return false;
        };
        let Ok(sig) = <[u8; 64]>::try_from(self.signature.as_slice()) else {
            return false;
        };
        key.verify(
            &signed_message(&self.unsigned),
            &Signature::from_bytes(&sig),
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sample() -> Record {
        let entry = UnsignedEntry {
            version: ENTRY_VERSION,
            author: "site-a".into(),
            timestamp_ms: 1_700_000_000_000,
            body: Body::ModelContribution(Contribution {
                round: 2,
                model_sha256: [1; 32],
                n_trees: 50,
                n_train_rows: 1234,
                validation_accuracy_ppm: 987_654,
            }),
        }
        .sign(&key(1));
        Record {
            version: ENTRY_VERSION,
            index: 3,
            prev_hash: [9; 32],
            entry,
        }
    }

    #[test]
    fn entries_round_trip_and_sign() {
        let r = sample();
        let bytes = r.encode();
        assert_eq!(Record::decode(&bytes), Ok(r.clone()));
        assert_eq!(r.encode(), bytes, "same record, same bytes");
        let e = r.entry;
        assert!(e.signature_ok(&key(1).verifying_key().to_bytes()));
        assert!(!e.signature_ok(&key(2).verifying_key().to_bytes()));
        let mut changed = e.clone();
        changed.unsigned.timestamp_ms += 1;
        assert!(!changed.signature_ok(&key(1).verifying_key().to_bytes()));
    }

    #[test]
    fn signed_entries_travel_on_their_own() {
        let e = sample().entry;
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes), Ok(e));
        assert_eq!(Entry::decode(&sample().encode()), Err(DecodeError::Magic));
        assert!(Entry::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn decoding_errors_are_clear() {
        assert_eq!(Record::decode(b"nope"), Err(DecodeError::Magic));
        let mut bytes = sample().encode();
        bytes[8] = 9; // version 9
        assert_eq!(Record::decode(&bytes), Err(DecodeError::Version(9)));
        let bytes = sample().encode();
        assert!(matches!(
            Record::decode(&bytes[..bytes.len() - 3]),
            Err(DecodeError::Malformed(_))
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(Record::decode(&long).is_err());
        assert_eq!(
            Record::decode(&vec![0; MAX_ENTRY_BYTES + 1]),
            Err(DecodeError::TooLarge(MAX_ENTRY_BYTES + 1))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut with_magic = ENTRY_MAGIC.to_vec();
            with_magic.extend(&bytes);
            let _ = Record::decode(&bytes);
            let _ = Record::decode(&with_magic);
        }

        #[test]
        fn any_byte_flip_is_detected(pos in 0usize..1000, bit in 0u8..8) {
            let mut bytes = sample().encode();
            let pos = pos % bytes.len();
            bytes[pos] ^= 1 << bit;
            match Record::decode(&bytes) {
                Err(_) => {}
                // A flip that still decodes changes the signed content or the signature.
                Ok(d) => prop_assert!(
                    d != sample() && (d.index != 3 || d.prev_hash != [9; 32]
                        || !d.entry.signature_ok(&key(1).verifying_key().to_bytes()))
                ),
            }
        }
    }
}
