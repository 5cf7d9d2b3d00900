//! Round state kept in a replicated log instead of a local database, so that whichever node is
//! the log's leader can take the coordinator's role and resume a round another node started.
//!
//! Every change the coordinator makes (a round opened, an upload accepted with its model bytes,
//! scores in, uploads closed, the merged global model) becomes one *round-state entry* appended
//! to the log; it is acknowledged to a site only once the log has committed it on a quorum.
//! Every node applies the same entries in the same order, so a node that becomes leader reads
//! exactly the state the previous leader acknowledged.
//!
//! A round-state entry is signed by the node that wrote it, and readers ignore entries whose
//! signer is not one of the coordinator nodes they trust (anyone holding a certificate of the
//! federation CA can append bytes to the log; only a coordinator's key makes them state).
//!
//! Layout (little endian):
//!
//! ```text
//! "FEDIDSRS" | version u8 (1) | signer length u16 | signer (UTF-8)
//!            | Ed25519 signature (64) over "fedids-round-state-v1" ‖ SHA-256(body)
//!            | body = header length u32 | header (JSON) | model bytes (the rest)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use fedids_ledger::ROUND_STATE_MAGIC;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::state::RoundRecord;

/// Version byte of the round-state encoding.
pub const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"fedids-round-state-v1";
/// Largest signer name accepted.
const MAX_SIGNER: usize = 256;

/// The replicated log the round state is appended to (a Raft log, in the binary).
pub trait SharedLog: Send + Sync + 'static {
    /// Appends `entry`; resolves once the log has committed it and this node has applied it.
    fn append(
        &self,
        entry: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
    /// Entries this node has applied, from position `from` on, in order.
    fn entries(&self, from: u64) -> Result<Vec<Vec<u8>>, String>;
}

/// Where a model entry's bytes belong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelSlot {
    /// A site's upload.
    Upload(String),
    /// The round's global model.
    Global,
}

/// The JSON header of a round-state entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The round record after the change.
    pub record: RoundRecord,
    /// The agreed federation schema (JSON), on the first round's opening.
    #[serde(default)]
    pub schema: Option<String>,
    /// Which model the trailing bytes are, if any.
    #[serde(default)]
    pub model: Option<ModelSlot>,
}

/// A decoded round-state entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StateEntry {
    /// The node that wrote it.
    pub signer: String,
    /// What changed.
    pub header: Header,
    /// The model bytes (empty without [`Header::model`]).
    pub model: Vec<u8>,
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(&Sha256::digest(body));
    m
}

/// Encodes and signs a round-state entry.
pub fn encode(signer: &str, key: &SigningKey, header: &Header, model: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("a round record always serializes");
    let mut body = Vec::with_capacity(4 + json.len() + model.len());
    body.extend_from_slice(&(json.len() as u32).to_le_bytes());
    body.extend_from_slice(&json);
    body.extend_from_slice(model);
    let signature = key.sign(&signed_message(&body));
    let mut out = ROUND_STATE_MAGIC.to_vec();
    out.push(VERSION);
    out.extend_from_slice(&(signer.len() as u16).to_le_bytes());
    out.extend_from_slice(signer.as_bytes());
    out.extend_from_slice(&signature.to_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a round-state entry and checks its signature against `trusted` (the coordinator
/// nodes by name). The error says what is wrong.
pub fn decode(bytes: &[u8], trusted: &HashMap<String, VerifyingKey>) -> Result<StateEntry, String> {
    let rest = bytes
        .strip_prefix(ROUND_STATE_MAGIC)
        .ok_or("not a round-state entry (expected the magic FEDIDSRS)")?;
    let (&version, rest) = rest.split_first().ok_or("truncated before the version")?;
    if version != VERSION {
        return Err(format!(
            "round-state version {version}, this build reads {VERSION}"
        ));
    }
    let (len, rest) = rest
        .split_first_chunk::<2>()
        .ok_or("truncated in the signer length")?;
    let len = u16::from_le_bytes(*len) as usize;
    if len == 0 || len > MAX_SIGNER || len > rest.len() {
        return Err(format!("signer length {len} is out of bounds"));
    }
    let (signer, rest) = rest.split_at(len);
    let signer = std::str::from_utf8(signer).map_err(|_| "the signer is not UTF-8")?;
    let (signature, body) = rest
        .split_first_chunk::<64>()
        .ok_or("truncated in the signature")?;
    let key = trusted
        .get(signer)
        .ok_or_else(|| format!("signed by '{signer}', which is not a coordinator node"))?;
    key.verify(&signed_message(body), &Signature::from_bytes(signature))
        .map_err(|_| format!("bad signature of '{signer}'"))?;
    let (json_len, rest) = body
        .split_first_chunk::<4>()
        .ok_or("truncated in the header length")?;
    let json_len = u32::from_le_bytes(*json_len) as usize;
    if json_len > rest.len() {
        return Err(format!(
            "header length {json_len} runs past the end ({} bytes left)",
            rest.len()
        ));
    }
    let (json, model) = rest.split_at(json_len);
    let header: Header =
        serde_json::from_slice(json).map_err(|e| format!("header does not decode: {e}"))?;
    if header.model.is_none() && !model.is_empty() {
        return Err("model bytes without a model slot".into());
    }
    Ok(StateEntry {
        signer: signer.to_string(),
        header,
        model: model.to_vec(),
    })
}

/// The round state derived from the log's round-state entries: pure, so that it can be tested
/// without a log.
#[derive(Debug, Default, Clone)]
pub struct RoundView {
    consumed: u64,
    schema: Option<Vec<u8>>,
    rounds: BTreeMap<u64, RoundRecord>,
    models: BTreeMap<(u64, Option<String>), Vec<u8>>,
    ignored: Vec<(u64, String)>,
}

/// Rounds whose models are kept in memory (the current one and the one before it).
const KEEP_ROUNDS: u64 = 2;

impl RoundView {
    /// Applies further log entries (ledger entries and entries of other writers are skipped;
    /// round-state entries that do not verify are ignored and reported).
    pub fn apply(&mut self, entries: &[Vec<u8>], trusted: &HashMap<String, VerifyingKey>) {
        for bytes in entries {
            let position = self.consumed;
            self.consumed += 1;
            if !bytes.starts_with(ROUND_STATE_MAGIC) {
                continue;
            }
            let entry = match decode(bytes, trusted) {
                Ok(e) => e,
                Err(why) => {
                    warn!(position, %why, "round-state entry ignored");
                    self.ignored.push((position, why));
                    continue;
                }
            };
            let Header {
                record,
                schema,
                model,
            } = entry.header;
            if let Some(s) = schema {
                self.schema = Some(s.into_bytes());
            }
            let id = record.id;
            if let Some(slot) = model {
                let site = match slot {
                    ModelSlot::Upload(s) => Some(s),
                    ModelSlot::Global => None,
                };
                self.models.insert((id, site), entry.model);
            }
            self.rounds.insert(id, record);
            let oldest = id.saturating_sub(KEEP_ROUNDS - 1);
            self.models.retain(|(r, _), _| *r >= oldest);
        }
    }

    /// Log entries consumed.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The agreed schema (JSON).
    pub fn schema(&self) -> Option<&[u8]> {
        self.schema.as_deref()
    }

    /// The latest round.
    pub fn last_round(&self) -> Option<&RoundRecord> {
        self.rounds.values().next_back()
    }

    /// A model of a recent round (`site == None`: the global model).
    pub fn model(&self, round: u64, site: Option<&str>) -> Option<&[u8]> {
        self.models
            .get(&(round, site.map(str::to_string)))
            .map(Vec::as_slice)
    }

    /// Round-state entries ignored, by log position, and why.
    pub fn ignored(&self) -> &[(u64, String)] {
        &self.ignored
    }
}

/// The coordinator's state in a [`SharedLog`], written as this node and read from what this
/// node applied.
pub struct ReplicatedStore {
    log: Arc<dyn SharedLog>,
    name: String,
    key: SigningKey,
    trusted: HashMap<String, VerifyingKey>,
    view: Mutex<RoundView>,
}

impl ReplicatedStore {
    /// A store writing as `name` with `key`, trusting round state signed by `trusted` (this
    /// node must be among them).
    pub fn new(
        log: Arc<dyn SharedLog>,
        name: &str,
        key: SigningKey,
        trusted: HashMap<String, VerifyingKey>,
    ) -> Result<ReplicatedStore, String> {
        match trusted.get(name) {
            Some(k) if *k == key.verifying_key() => {}
            Some(_) => {
                return Err(format!(
                    "the trusted key of '{name}' is not this node's key"
                ))
            }
            None => {
                return Err(format!(
                    "'{name}' is not among the trusted coordinator nodes"
                ))
            }
        }
        let store = ReplicatedStore {
            log,
            name: name.to_string(),
            key,
            trusted,
            view: Mutex::new(RoundView::default()),
        };
        store.refresh().map(drop)?;
        Ok(store)
    }

    /// Brings the view up to date with what this node applied, and returns it.
    pub fn refresh(&self) -> Result<std::sync::MutexGuard<'_, RoundView>, String> {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = self.log.entries(view.consumed())?;
        view.apply(&fresh, &self.trusted);
        Ok(view)
    }

    /// Appends one change and waits for it to be committed and applied.
    pub async fn append(&self, header: &Header, model: &[u8]) -> Result<(), String> {
        let entry = encode(&self.name, &self.key, header, model);
        self.log.append(entry).await?;
        self.refresh().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Opening, Phase};
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn trusted() -> HashMap<String, VerifyingKey> {
        [("node-1", 1), ("node-2", 2)]
            .into_iter()
            .map(|(n, s)| (n.to_string(), key(s).verifying_key()))
            .collect()
    }

    fn record(id: u64) -> RoundRecord {
        RoundRecord::open(
            Opening {
                id,
                nonce: vec![7; 32],
                strategy: "all".into(),
                trees_per_site: 3,
                validation_fraction: 0.2,
                expected: vec!["a".into(), "b".into()],
            },
            1,
            2,
        )
    }

    fn header(id: u64, model: Option<ModelSlot>) -> Header {
        Header {
            record: record(id),
            schema: None,
            model,
        }
    }

    #[test]
    fn entries_round_trip_and_build_the_view() {
        let t = trusted();
        let mut opening = header(1, None);
        opening.schema = Some("{\"x\":1}".into());
        let entries = vec![
            encode("node-1", &key(1), &opening, &[]),
            b"a ledger entry".to_vec(),
            encode(
                "node-2",
                &key(2),
                &header(1, Some(ModelSlot::Upload("a".into()))),
                &[1, 2, 3],
            ),
        ];
        let mut view = RoundView::default();
        view.apply(&entries, &t);
        assert_eq!(view.consumed(), 3);
        assert_eq!(view.schema(), Some(&b"{\"x\":1}"[..]));
        assert_eq!(view.model(1, Some("a")), Some(&[1u8, 2, 3][..]));
        assert_eq!(view.model(1, None), None);
        assert_eq!(view.last_round().unwrap().phase, Phase::Uploading);
        assert!(view.ignored().is_empty());
    }

    #[test]
    fn entries_of_strangers_and_forgeries_are_ignored() {
        let t = trusted();
        let h = header(1, None);
        let stranger = encode("site-a", &key(9), &h, &[]);
        let impostor = encode("node-1", &key(9), &h, &[]);
        let mut tampered = encode("node-1", &key(1), &h, &[]);
        let n = tampered.len();
        tampered[n - 3] ^= 1;
        let mut view = RoundView::default();
        view.apply(&[stranger, impostor, tampered], &t);
        assert!(view.last_round().is_none());
        let why: Vec<&str> = view.ignored().iter().map(|(_, w)| w.as_str()).collect();
        assert!(why[0].contains("not a coordinator node"), "{why:?}");
        assert!(why[1].contains("bad signature"), "{why:?}");
        assert!(why[2].contains("bad signature"), "{why:?}");
    }

    #[test]
    fn old_rounds_models_are_dropped() {
        let t = trusted();
        let mut view = RoundView::default();
        for id in 1..=3 {
            let e = encode(
                "node-1",
                &key(1),
                &header(id, Some(ModelSlot::Global)),
                &[id as u8],
            );
            view.apply(&[e], &t);
        }
        assert_eq!(view.model(1, None), None);
        assert_eq!(view.model(2, None), Some(&[2u8][..]));
        assert_eq!(view.model(3, None), Some(&[3u8][..]));
    }

    proptest! {
        /// Truncated or arbitrary bytes after the magic give an error, never a panic.
        #[test]
        fn damaged_entries_are_refused(cut in 0usize..400, flip in 0usize..400, bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let t = trusted();
            let good = encode("node-1", &key(1), &header(1, Some(ModelSlot::Upload("a".into()))), &[5; 40]);
            prop_assert!(decode(&good, &t).is_ok());
            let cut = cut.min(good.len() - 1);
            prop_assert!(decode(&good[..cut], &t).is_err());
            let mut flipped = good.clone();
            let i = flip % flipped.len();
            flipped[i] ^= 0x40;
            // A flipped byte is refused (magic, version, signer, signature or body) unless it
            // landed nowhere that matters, which this layout does not have.
            prop_assert!(decode(&flipped, &t).is_err());
            let mut junk = ROUND_STATE_MAGIC.to_vec();
            junk.extend_from_slice(&bytes);
            prop_assert!(decode(&junk, &t).is_err());
        }
    }
}
