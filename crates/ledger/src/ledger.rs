//! The ledger as a state machine: every entry is checked against everything before it.
//!
//! [`Ledger::append`] is the one gate for a new signed entry: format version, the author's
//! registered and unrevoked key, the signature, what the author's role allows, the entry's
//! consistency with what is recorded (aggregation inputs that match contributions, evaluations of
//! a round's recorded global model), and replays; it then wraps the entry in a [`Record`] at the
//! next position, chained to the previous record.
//! [`Ledger::from_encoded`] runs the same gate over stored records, checking their positions and
//! chain too, so a verifier and a node can never disagree about what a valid ledger is, and an
//! error names the first bad record.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::entry::ENTRY_VERSION;
use crate::entry::{
    Aggregation, Body, Contribution, DecodeError, Entry, Evaluation, Record, Role, UnsignedEntry,
};
use crate::merkle::{leaf_hash, Hash, MerkleError, MerkleLog};

/// Why an entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The bytes are not an entry.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// Another format version.
    #[error("format version {0}, expected {ENTRY_VERSION}")]
    Version(u16),
    /// Out of place.
    #[error("claims position {found}, expected {expected}")]
    Position {
        /// Where it should be.
        expected: u64,
        /// Where it claims to be.
        found: u64,
    },
    /// `prev_hash` is not the previous entry's hash.
    #[error("hash chain broken: prev_hash does not match the previous entry")]
    Chain,
    /// The author has no registered key.
    #[error("unknown author '{0}'")]
    UnknownAuthor(String),
    /// The author's key was revoked.
    #[error("author '{0}' signs with a revoked key")]
    Revoked(String),
    /// The signature does not verify.
    #[error("bad signature by '{0}'")]
    BadSignature(String),
    /// The author's role does not allow this entry.
    #[error("'{author}' ({role:?}) may not record this {what}")]
    NotAllowed {
        /// The author.
        author: String,
        /// Its role.
        role: Role,
        /// The entry kind.
        what: &'static str,
    },
    /// The same author already recorded the same content.
    #[error("replayed content: '{0}' already recorded this exact entry body")]
    Replay(String),
    /// The content is inconsistent with the ledger.
    #[error("{0}")]
    Invalid(String),
}

/// An entry that cannot be appended, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index}: {refusal}")]
pub struct LedgerError {
    /// Position of the refused entry.
    pub index: u64,
    /// Why.
    pub refusal: Refusal,
}

/// A registered key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    /// The Ed25519 verifying key.
    pub key: [u8; 32],
    /// What it may sign.
    pub role: Role,
    /// Position of the revocation, if revoked.
    pub revoked_at: Option<u64>,
}

/// A validated, append-only ledger with its Merkle log.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    records: Vec<Record>,
    hashes: Vec<Hash>,
    merkle: MerkleLog,
    federation: String,
    keys: BTreeMap<String, KeyRecord>,
    seen: BTreeSet<Hash>,
    contributions: BTreeMap<(u64, String), Contribution>,
    aggregations: BTreeMap<u64, Aggregation>,
    evaluations: BTreeMap<(u64, String), Evaluation>,
}

fn content_hash(author: &str, body: &Body) -> Hash {
    let mut h = Sha256::new();
    h.update(postcard::to_stdvec(&(author, body)).unwrap_or_default());
    h.finalize().into()
}

impl Ledger {
    /// An empty ledger (its first entry must be the genesis).
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Validates stored record bytes, in order. The error names the first bad record.
    pub fn from_encoded<B: AsRef<[u8]>>(records: &[B]) -> Result<Ledger, LedgerError> {
        let mut ledger = Ledger::new();
        for (i, bytes) in records.iter().enumerate() {
            let record = Record::decode(bytes.as_ref()).map_err(|e| LedgerError {
                index: i as u64,
                refusal: Refusal::Decode(e),
            })?;
            ledger.append_record(record)?;
        }
        Ok(ledger)
    }

    /// Records so far.
    pub fn len(&self) -> u64 {
        self.records.len() as u64
    }

    /// Whether there is no record (not even the genesis).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The federation's name (empty before the genesis).
    pub fn federation(&self) -> &str {
        &self.federation
    }

    /// Registered keys by name.
    pub fn keys(&self) -> &BTreeMap<String, KeyRecord> {
        &self.keys
    }

    /// Signs and wraps nothing: a convenience that builds the unsigned entry an author signs.
    pub fn unsigned(author: &str, timestamp_ms: u64, body: Body) -> UnsignedEntry {
        UnsignedEntry {
            version: ENTRY_VERSION,
            author: author.to_string(),
            timestamp_ms,
            body,
        }
    }

    /// Recorded contributions by (round, site).
    pub fn contributions(&self) -> &BTreeMap<(u64, String), Contribution> {
        &self.contributions
    }

    /// Recorded aggregations by round.
    pub fn aggregations(&self) -> &BTreeMap<u64, Aggregation> {
        &self.aggregations
    }

    /// Recorded evaluations of global models by (round, evaluating site).
    pub fn evaluations(&self) -> &BTreeMap<(u64, String), Evaluation> {
        &self.evaluations
    }

    /// The Merkle log over the entries' bytes.
    pub fn merkle(&self) -> &MerkleLog {
        &self.merkle
    }

    /// The Merkle root of the first `size` entries.
    pub fn root_at(&self, size: u64) -> Result<Hash, MerkleError> {
        self.merkle.root_at(size)
    }

    /// The record `entry` would become if appended next.
    pub fn next_record(&self, entry: Entry) -> Record {
        Record {
            version: ENTRY_VERSION,
            index: self.len(),
            prev_hash: self.hashes.last().copied().unwrap_or([0; 32]),
            entry,
        }
    }

    /// Checks `entry` against the ledger without appending it.
    pub fn check(&self, entry: &Entry) -> Result<(), LedgerError> {
        self.validate(&self.next_record(entry.clone())).map(|_| ())
    }

    /// Checks and appends a signed entry at the next position; returns the position.
    pub fn append(&mut self, entry: Entry) -> Result<u64, LedgerError> {
        let record = self.next_record(entry);
        self.append_record(record)
    }

    /// Checks and appends a stored record (its position and chain must be the next ones).
    pub fn append_record(&mut self, record: Record) -> Result<u64, LedgerError> {
        let content = self.validate(&record)?;
        let index = self.len();
        let u = &record.entry.unsigned;
        match &u.body {
            Body::Genesis {
                federation,
                authorities,
            } => {
                self.federation = federation.clone();
                for (name, key) in authorities {
                    self.keys.insert(
                        name.clone(),
                        KeyRecord {
                            key: *key,
                            role: Role::Authority,
                            revoked_at: None,
                        },
                    );
                }
            }
            Body::RegisterKey { name, key, role } => {
                self.keys.insert(
                    name.clone(),
                    KeyRecord {
                        key: *key,
                        role: *role,
                        revoked_at: None,
                    },
                );
            }
            Body::ModelContribution(c) => {
                self.contributions
                    .insert((c.round, u.author.clone()), c.clone());
            }
            Body::Aggregation(a) => {
                self.aggregations.insert(a.round, a.clone());
            }
            Body::IntelPublication { .. } => {}
            Body::KeyRevocation { name, .. } => {
                if let Some(k) = self.keys.get_mut(name) {
                    k.revoked_at = Some(index);
                }
            }
            Body::Evaluation(e) => {
                self.evaluations
                    .insert((e.round, u.author.clone()), e.clone());
            }
        }
        self.seen.insert(content);
        let bytes = record.encode();
        self.hashes.push(Sha256::digest(&bytes).into());
        self.merkle.push(leaf_hash(&bytes));
        self.records.push(record);
        Ok(index)
    }

    fn validate(&self, record: &Record) -> Result<Hash, LedgerError> {
        let index = self.len();
        let fail = |refusal| LedgerError { index, refusal };
        let entry = &record.entry;
        let u = &entry.unsigned;
        for version in [record.version, u.version] {
            if version != ENTRY_VERSION {
                return Err(fail(Refusal::Version(version)));
            }
        }
        if record.index != index {
            return Err(fail(Refusal::Position {
                expected: index,
                found: record.index,
            }));
        }
        let prev = self.hashes.last().copied().unwrap_or([0; 32]);
        if record.prev_hash != prev {
            return Err(fail(Refusal::Chain));
        }
        // The author's key: the genesis is signed by one of the authorities it lists.
        let (key, role) = match (&u.body, index) {
            (Body::Genesis { authorities, .. }, 0) => {
                check_genesis(authorities).map_err(|m| fail(Refusal::Invalid(m)))?;
                let key = authorities
                    .iter()
                    .find(|(n, _)| *n == u.author)
                    .map(|(_, k)| *k)
                    .ok_or_else(|| fail(Refusal::UnknownAuthor(u.author.clone())))?;
                (key, Role::Authority)
            }
            (Body::Genesis { .. }, _) => {
                return Err(fail(Refusal::Invalid(
                    "a genesis entry after the first position".into(),
                )))
            }
            (_, 0) => {
                return Err(fail(Refusal::Invalid(
                    "the first entry must be the genesis".into(),
                )))
            }
            _ => {
                let rec = self
                    .keys
                    .get(&u.author)
                    .ok_or_else(|| fail(Refusal::UnknownAuthor(u.author.clone())))?;
                if rec.revoked_at.is_some() {
                    return Err(fail(Refusal::Revoked(u.author.clone())));
                }
                (rec.key, rec.role)
            }
        };
        if !entry.signature_ok(&key) {
            return Err(fail(Refusal::BadSignature(u.author.clone())));
        }
        let not_allowed = || {
            fail(Refusal::NotAllowed {
                author: u.author.clone(),
                role,
                what: u.body.kind(),
            })
        };
        match &u.body {
            Body::Genesis { .. } => {}
            Body::RegisterKey { name, key, .. } => {
                if role != Role::Authority {
                    return Err(not_allowed());
                }
                if VerifyingKey::from_bytes(key).is_err() {
                    return Err(fail(Refusal::Invalid(format!(
                        "the key registered for '{name}' is not an Ed25519 public key"
                    ))));
                }
                if let Some(rec) = self.keys.get(name) {
                    if rec.revoked_at.is_none() {
                        return Err(fail(Refusal::Invalid(format!(
                            "'{name}' already has an unrevoked key"
                        ))));
                    }
                }
            }
            Body::ModelContribution(c) => {
                if role != Role::Site {
                    return Err(not_allowed());
                }
                if self
                    .contributions
                    .contains_key(&(c.round, u.author.clone()))
                {
                    return Err(fail(Refusal::Invalid(format!(
                        "'{}' already contributed a model to round {}",
                        u.author, c.round
                    ))));
                }
                if c.validation_accuracy_ppm > 1_000_000 {
                    return Err(fail(Refusal::Invalid(format!(
                        "validation accuracy of {} ppm is above 1,000,000",
                        c.validation_accuracy_ppm
                    ))));
                }
            }
            Body::Aggregation(a) => {
                if role != Role::Authority {
                    return Err(not_allowed());
                }
                self.check_aggregation(a)
                    .map_err(|m| fail(Refusal::Invalid(m)))?;
            }
            Body::IntelPublication { .. } => {
                if role == Role::Node {
                    return Err(not_allowed());
                }
            }
            Body::KeyRevocation { name, key, .. } => {
                if role != Role::Authority && *name != u.author {
                    return Err(not_allowed());
                }
                match self.keys.get(name) {
                    Some(rec) if rec.key == *key && rec.revoked_at.is_none() => {}
                    _ => {
                        return Err(fail(Refusal::Invalid(format!(
                            "'{name}' has no such unrevoked key"
                        ))))
                    }
                }
            }
            Body::Evaluation(e) => {
                if role != Role::Site {
                    return Err(not_allowed());
                }
                self.check_evaluation(&u.author, e)
                    .map_err(|m| fail(Refusal::Invalid(m)))?;
            }
        }
        let content = content_hash(&u.author, &u.body);
        if self.seen.contains(&content) {
            return Err(fail(Refusal::Replay(u.author.clone())));
        }
        Ok(content)
    }

    fn check_aggregation(&self, a: &Aggregation) -> Result<(), String> {
        if self.aggregations.contains_key(&a.round) {
            return Err(format!("round {} already has an aggregation", a.round));
        }
        if a.inputs.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("aggregation inputs must be sorted by site, without repeats".into());
        }
        for (site, hash) in &a.inputs {
            match self.contributions.get(&(a.round, site.clone())) {
                Some(c) if c.model_sha256 == *hash => {}
                Some(_) => {
                    return Err(format!(
                        "input of '{site}' is not the model it contributed to round {}",
                        a.round
                    ))
                }
                None => {
                    return Err(format!(
                        "'{site}' contributed no model to round {}",
                        a.round
                    ))
                }
            }
        }
        for acc in &a.accepted {
            if !a.inputs.iter().any(|(s, _)| *s == acc.site) {
                return Err(format!(
                    "accepted trees of '{}', which is not an input",
                    acc.site
                ));
            }
        }
        Ok(())
    }

    fn check_evaluation(&self, author: &str, e: &Evaluation) -> Result<(), String> {
        let round = e.round;
        let Some(a) = self.aggregations.get(&round) else {
            return Err(format!(
                "evaluation of round {round}, which has no recorded aggregation"
            ));
        };
        if a.output_sha256 != e.global_sha256 {
            return Err(format!(
                "evaluation of round {round} measured a model that is not the round's recorded \
                 global model (the aggregation's output)"
            ));
        }
        if self.evaluations.contains_key(&(round, author.to_string())) {
            return Err(format!("'{author}' already evaluated round {round}"));
        }
        e.check_values()?;
        for (site, _) in &e.without {
            if !a.inputs.iter().any(|(s, _)| s == site) {
                return Err(format!(
                    "evaluation of round {round} measures the global model without '{site}', \
                     which is not an input of the round's aggregation"
                ));
            }
        }
        Ok(())
    }
}

fn check_genesis(authorities: &[(String, [u8; 32])]) -> Result<(), String> {
    if authorities.is_empty() {
        return Err("the genesis names no authority".into());
    }
    let names: BTreeSet<&String> = authorities.iter().map(|(n, _)| n).collect();
    if names.len() != authorities.len() {
        return Err("the genesis names an authority twice".into());
    }
    if let Some((n, _)) = authorities
        .iter()
        .find(|(_, k)| VerifyingKey::from_bytes(k).is_err())
    {
        return Err(format!("authority '{n}' has an invalid key"));
    }
    Ok(())
}
