//! The coordinator's durable state: an embedded redb database in the coordinator's state
//! directory ([`Store::open`]), or the replicated log of the ledger cluster
//! ([`Store::replicated`], see [`crate::replicated`]).
//!
//! Every accepted upload is written together with the round record that lists it, in one write
//! transaction that is durable when it commits (locally, or on a quorum of the log), before the
//! site hears "accepted". A coordinator killed at any point restarts, or a new leader takes
//! over, from the last committed write: nothing it acknowledged is lost.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};

use crate::replicated::{Header, ModelSlot, ReplicatedStore};
use crate::state::RoundRecord;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const ROUNDS: TableDefinition<u64, &[u8]> = TableDefinition::new("rounds");
const MODELS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("models");

/// Key of the federation schema in the meta table.
const SCHEMA: &str = "schema";
/// Site name under which a round's global model is stored (site names are never empty).
const GLOBAL: &str = "";

/// Errors of the coordinator store.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}")]
pub struct StoreError {
    path: PathBuf,
    what: String,
}

fn db_err(e: impl Into<redb::Error>) -> String {
    e.into().to_string()
}

fn insert_round(tx: &redb::WriteTransaction, id: u64, record: &[u8]) -> Result<(), String> {
    tx.open_table(ROUNDS)
        .map_err(db_err)?
        .insert(id, record)
        .map_err(db_err)?;
    Ok(())
}

/// Where the coordinator keeps its state.
pub struct Store {
    backend: Backend,
    dir: PathBuf,
}

enum Backend {
    Local(LocalStore),
    Replicated(Box<ReplicatedStore>),
}

impl Store {
    /// Opens (or creates) `state_dir/coordinator.redb`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Local(LocalStore::open(state_dir)?),
            dir: state_dir.to_path_buf(),
        })
    }

    /// State in a replicated log; `state_dir` only receives model copies for auditors.
    pub fn replicated(replicated: ReplicatedStore, state_dir: &Path) -> Store {
        Store {
            backend: Backend::Replicated(Box::new(replicated)),
            dir: state_dir.to_path_buf(),
        }
    }

    fn replicated_err(&self, what: String) -> StoreError {
        StoreError {
            path: self.dir.clone(),
            what: format!("replicated round state: {what}"),
        }
    }

    /// The agreed federation schema (JSON), if one was stored.
    pub fn schema(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Local(s) => s.schema(),
            Backend::Replicated(r) => Ok(r
                .refresh()
                .map_err(|e| self.replicated_err(e))?
                .schema()
                .map(<[u8]>::to_vec)),
        }
    }

    /// The latest round record, if any.
    pub fn last_round(&self) -> Result<Option<RoundRecord>, StoreError> {
        match &self.backend {
            Backend::Local(s) => s.last_round(),
            Backend::Replicated(r) => Ok(r
                .refresh()
                .map_err(|e| self.replicated_err(e))?
                .last_round()
                .cloned()),
        }
    }

    /// Stores a round record, with the schema when it is given (the first round's opening).
    pub async fn put_round(
        &self,
        round: &RoundRecord,
        schema_json: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Local(s) => s.put_round(round, schema_json),
            Backend::Replicated(r) => {
                let schema = schema_json
                    .map(|s| String::from_utf8(s.to_vec()))
                    .transpose()
                    .map_err(|_| self.replicated_err("the schema is not UTF-8".into()))?;
                let header = Header {
                    record: round.clone(),
                    schema,
                    model: None,
                };
                r.append(&header, &[])
                    .await
                    .map_err(|e| self.replicated_err(e))
            }
        }
    }

    /// Stores a model (an upload, or with `site == None` the global model) and the round record
    /// that refers to it, atomically.
    pub async fn put_model(
        &self,
        round: &RoundRecord,
        site: Option<&str>,
        model: &[u8],
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Local(s) => s.put_model(round, site, model),
            Backend::Replicated(r) => {
                let header = Header {
                    record: round.clone(),
                    schema: None,
                    model: Some(site.map_or(ModelSlot::Global, |s| ModelSlot::Upload(s.into()))),
                };
                r.append(&header, model)
                    .await
                    .map_err(|e| self.replicated_err(e))
            }
        }
    }

    /// A stored model (`site == None`: the round's global model).
    pub fn model(&self, round_id: u64, site: Option<&str>) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Local(s) => s.model(round_id, site),
            Backend::Replicated(r) => Ok(r
                .refresh()
                .map_err(|e| self.replicated_err(e))?
                .model(round_id, site)
                .map(<[u8]>::to_vec)),
        }
    }

    /// Writes a copy of a model as `STATE/models/<sha256>.<ext>` for auditors replaying a round
    /// (`fedids ledger verify --replay`). The database stays the record; a failure is logged.
    pub fn export_model(&self, sha256_hex: &str, ext: &str, bytes: &[u8]) {
        let dir = self.dir.join("models");
        let path = dir.join(format!("{sha256_hex}.{ext}"));
        let tmp = dir.join(format!("{sha256_hex}.{ext}.tmp"));
        let result = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the model copy");
        }
    }
}

/// The coordinator's local database.
struct LocalStore {
    db: Database,
    path: PathBuf,
}

impl LocalStore {
    fn open(state_dir: &Path) -> Result<LocalStore, StoreError> {
        let path = state_dir.join("coordinator.redb");
        let err = |what: String| StoreError {
            path: path.clone(),
            what,
        };
        std::fs::create_dir_all(state_dir).map_err(|e| err(e.to_string()))?;
        let db = Database::create(&path).map_err(|e| err(e.to_string()))?;
        let store = LocalStore { db, path };
        store.write(|tx| {
            tx.open_table(META).map_err(db_err)?;
            tx.open_table(ROUNDS).map_err(db_err)?;
            tx.open_table(MODELS).map_err(db_err)?;
            Ok(())
        })?;
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.clone(),
            what: e.to_string(),
        }
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), String>,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn schema(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(META).map_err(|e| self.err(e))?;
        let value = table.get(SCHEMA).map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn last_round(&self) -> Result<Option<RoundRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(ROUNDS).map_err(|e| self.err(e))?;
        let last = table.last().map_err(|e| self.err(e))?;
        match last {
            None => Ok(None),
            Some((_, v)) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| self.err(format!("round record does not decode: {e}"))),
        }
    }

    fn put_round(&self, round: &RoundRecord, schema_json: Option<&[u8]>) -> Result<(), StoreError> {
        let record = serde_json::to_vec(round).map_err(|e| self.err(e))?;
        self.write(|tx| {
            if let Some(schema) = schema_json {
                tx.open_table(META)
                    .map_err(db_err)?
                    .insert(SCHEMA, schema)
                    .map_err(db_err)?;
            }
            insert_round(tx, round.id, &record)
        })
    }

    fn put_model(
        &self,
        round: &RoundRecord,
        site: Option<&str>,
        model: &[u8],
    ) -> Result<(), StoreError> {
        let record = serde_json::to_vec(round).map_err(|e| self.err(e))?;
        self.write(|tx| {
            tx.open_table(MODELS)
                .map_err(db_err)?
                .insert((round.id, site.unwrap_or(GLOBAL)), model)
                .map_err(db_err)?;
            insert_round(tx, round.id, &record)
        })
    }

    fn model(&self, round_id: u64, site: Option<&str>) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(MODELS).map_err(|e| self.err(e))?;
        let value = table
            .get((round_id, site.unwrap_or(GLOBAL)))
            .map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }
}
