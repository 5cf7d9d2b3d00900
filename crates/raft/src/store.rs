//! openraft storage (v2 `RaftLogStorage` + `RaftStateMachine`) in one redb database per node.
//!
//! Tables:
//! - `log`: Raft log index -> JSON of the openraft entry;
//! - `meta`: vote, committed log id, last purged log id, last applied log id, membership, and
//!   the current snapshot;
//! - `applied`: application log position -> opaque entry bytes (the state machine).

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::TypeConfig;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const APPLIED: TableDefinition<u64, &[u8]> = TableDefinition::new("applied");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "last_purged";
const LAST_APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";
const SNAPSHOT: &str = "snapshot";
const SNAPSHOT_SEQ: &str = "snapshot_seq";

type SErr = StorageError<u64>;

/// Opens (creating if needed) `dir/raft.redb`, retrying for a few seconds while a previous
/// instance in this process still holds the file (a node restarted right after shutdown).
pub(crate) fn open(dir: &Path) -> Result<Arc<Database>, DbError> {
    let path = dir.join("raft.redb");
    let mut attempts = 0;
    let db = loop {
        match Database::create(&path) {
            Ok(db) => break db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if attempts < 100 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let w = db.begin_write()?;
    {
        w.open_table(LOG)?;
        w.open_table(META)?;
        w.open_table(APPLIED)?;
    }
    w.commit()?;
    Ok(Arc::new(db))
}

/// A redb failure or an undecodable stored value (boxed: redb's errors are large).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct DbError(Box<redb::Error>);

impl DbError {
    fn corrupted(what: String) -> DbError {
        DbError(Box::new(redb::Error::Corrupted(what)))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> DbError {
                DbError(Box::new(e.into()))
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn get_meta<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>, DbError> {
    let r = db.begin_read()?;
    let t = r.open_table(META)?;
    match t.get(key)? {
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| DbError::corrupted(format!("meta {key}: {e}"))),
        None => Ok(None),
    }
}

fn put_meta<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<(), DbError> {
    let bytes =
        serde_json::to_vec(value).map_err(|e| DbError::corrupted(format!("meta {key}: {e}")))?;
    let w = db.begin_write()?;
    {
        let mut t = w.open_table(META)?;
        t.insert(key, bytes.as_slice())?;
    }
    w.commit()?;
    Ok(())
}

fn corrupted(what: &str, e: serde_json::Error) -> DbError {
    DbError::corrupted(format!("{what}: {e}"))
}

/// Applied application entries from position `from`, at most `limit`.
pub(crate) fn applied_entries(
    db: &Database,
    from: u64,
    limit: usize,
) -> Result<Vec<Vec<u8>>, DbError> {
    let r = db.begin_read()?;
    let t = r.open_table(APPLIED)?;
    let mut out = Vec::new();
    for item in t.range(from..)?.take(limit) {
        let (_, v) = item?;
        out.push(v.value().to_vec());
    }
    Ok(out)
}

/// The applied entries stored in `dir/raft.redb`, read offline (the node must be stopped: a
/// running node holds the file).
pub(crate) fn stored_entries(dir: &Path) -> Result<Vec<Vec<u8>>, DbError> {
    let db = Database::open(dir.join("raft.redb"))?;
    applied_entries(&db, 0, usize::MAX)
}

/// Number of applied application entries.
pub(crate) fn applied_count(db: &Database) -> Result<u64, DbError> {
    let r = db.begin_read()?;
    let t = r.open_table(APPLIED)?;
    Ok(t.len()?)
}

/// The Raft log and vote.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>) -> LogStore {
        LogStore { db }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let read = || -> Result<Vec<Entry<TypeConfig>>, DbError> {
            let r = self.db.begin_read()?;
            let t = r.open_table(LOG)?;
            let start = match range.start_bound() {
                Bound::Included(&s) => s,
                Bound::Excluded(&s) => s + 1,
                Bound::Unbounded => 0,
            };
            let mut out = Vec::new();
            for item in t.range(start..)? {
                let (k, v) = item?;
                if !range.contains(&k.value()) {
                    break;
                }
                out.push(serde_json::from_slice(v.value()).map_err(|e| corrupted("log", e))?);
            }
            Ok(out)
        };
        read().map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let read = || -> Result<LogState<TypeConfig>, DbError> {
            let last_purged_log_id: Option<LogId<u64>> = get_meta(&self.db, PURGED)?;
            let r = self.db.begin_read()?;
            let t = r.open_table(LOG)?;
            let last = match t.last()? {
                Some((_, v)) => {
                    let e: Entry<TypeConfig> =
                        serde_json::from_slice(v.value()).map_err(|e| corrupted("log", e))?;
                    Some(e.log_id)
                }
                None => None,
            };
            Ok(LogState {
                last_purged_log_id,
                last_log_id: last.or(last_purged_log_id),
            })
        };
        read().map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), SErr> {
        put_meta(&self.db, VOTE, vote).map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, SErr> {
        get_meta(&self.db, VOTE).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), SErr> {
        put_meta(&self.db, COMMITTED, &committed).map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, SErr> {
        get_meta::<Option<LogId<u64>>>(&self.db, COMMITTED)
            .map(Option::flatten)
            .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = || -> Result<(), DbError> {
            let w = self.db.begin_write()?;
            {
                let mut t = w.open_table(LOG)?;
                for entry in entries {
                    let bytes = serde_json::to_vec(&entry).map_err(|e| corrupted("log", e))?;
                    t.insert(entry.log_id.index, bytes.as_slice())?;
                }
            }
            w.commit()?;
            Ok(())
        };
        match write() {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        self.remove_range(log_id.index..)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        put_meta(&self.db, PURGED, &log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        self.remove_range(..=log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

impl LogStore {
    fn remove_range(&self, range: impl RangeBounds<u64>) -> Result<(), DbError> {
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(LOG)?;
            let keys = t
                .range(range)?
                .map(|item| item.map(|(k, _)| k.value()))
                .collect::<Result<Vec<u64>, _>>()?;
            for k in keys {
                t.remove(k)?;
            }
        }
        w.commit()?;
        Ok(())
    }
}

/// A snapshot as stored in `meta`: openraft's metadata and the serialized entry list.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    data: Vec<u8>,
}

/// The state machine: the ordered list of applied application entries.
#[derive(Clone)]
pub(crate) struct StateMachine {
    db: Arc<Database>,
}

impl StateMachine {
    pub(crate) fn new(db: Arc<Database>) -> StateMachine {
        StateMachine { db }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let build = || -> Result<StoredSnapshot, DbError> {
            let r = self.db.begin_read()?;
            let meta_t = r.open_table(META)?;
            let get = |key: &str| -> Result<Option<Vec<u8>>, DbError> {
                Ok(meta_t.get(key)?.map(|v| v.value().to_vec()))
            };
            let last_applied: Option<LogId<u64>> = match get(LAST_APPLIED)? {
                Some(b) => serde_json::from_slice(&b).map_err(|e| corrupted("applied", e))?,
                None => None,
            };
            let membership: StoredMembership<u64, openraft::BasicNode> = match get(MEMBERSHIP)? {
                Some(b) => serde_json::from_slice(&b).map_err(|e| corrupted("membership", e))?,
                None => StoredMembership::default(),
            };
            let seq: u64 = match get(SNAPSHOT_SEQ)? {
                Some(b) => serde_json::from_slice(&b).map_err(|e| corrupted("seq", e))?,
                None => 0,
            };
            let t = r.open_table(APPLIED)?;
            let mut entries = Vec::new();
            for item in t.iter()? {
                let (_, v) = item?;
                entries.push(v.value().to_vec());
            }
            let data = serde_json::to_vec(&entries).map_err(|e| corrupted("snapshot", e))?;
            let snapshot_id = match last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, seq + 1),
                None => format!("none-{}", seq + 1),
            };
            Ok(StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: last_applied,
                    last_membership: membership,
                    snapshot_id,
                },
                data,
            })
        };
        let stored = build().map_err(|e| StorageIOError::read_state_machine(&e))?;
        let seq: u64 = get_meta::<u64>(&self.db, SNAPSHOT_SEQ)
            .map_err(|e| StorageIOError::read_state_machine(&e))?
            .unwrap_or(0);
        put_meta(&self.db, SNAPSHOT_SEQ, &(seq + 1))
            .and_then(|()| put_meta(&self.db, SNAPSHOT, &stored))
            .map_err(|e| StorageIOError::write_snapshot(Some(stored.meta.signature()), &e))?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<u64>>,
            StoredMembership<u64, openraft::BasicNode>,
        ),
        SErr,
    > {
        let read = || -> Result<_, DbError> {
            let applied: Option<LogId<u64>> =
                get_meta::<Option<LogId<u64>>>(&self.db, LAST_APPLIED)?.flatten();
            let membership = get_meta(&self.db, MEMBERSHIP)?.unwrap_or_default();
            Ok((applied, membership))
        };
        read().map_err(|e| StorageIOError::read_state_machine(&e).into())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<u64>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let apply = || -> Result<Vec<u64>, DbError> {
            let w = self.db.begin_write()?;
            let mut responses = Vec::new();
            {
                let mut sm = w.open_table(APPLIED)?;
                let mut meta = w.open_table(META)?;
                let mut next = sm.len()?;
                let mut last_applied = None;
                let mut membership = None;
                for entry in entries {
                    last_applied = Some(entry.log_id);
                    match entry.payload {
                        EntryPayload::Blank => responses.push(next),
                        EntryPayload::Normal(data) => {
                            sm.insert(next, data.0.as_slice())?;
                            responses.push(next);
                            next += 1;
                        }
                        EntryPayload::Membership(m) => {
                            membership = Some(StoredMembership::new(Some(entry.log_id), m));
                            responses.push(next);
                        }
                    }
                }
                if let Some(l) = last_applied {
                    let bytes =
                        serde_json::to_vec(&Some(l)).map_err(|e| corrupted("applied", e))?;
                    meta.insert(LAST_APPLIED, bytes.as_slice())?;
                }
                if let Some(m) = membership {
                    let bytes = serde_json::to_vec(&m).map_err(|e| corrupted("membership", e))?;
                    meta.insert(MEMBERSHIP, bytes.as_slice())?;
                }
            }
            w.commit()?;
            Ok(responses)
        };
        apply().map_err(|e| StorageIOError::write_state_machine(&e).into())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let data = snapshot.into_inner();
        let install = || -> Result<(), DbError> {
            let entries: Vec<Vec<u8>> =
                serde_json::from_slice(&data).map_err(|e| corrupted("snapshot", e))?;
            let stored = StoredSnapshot {
                meta: meta.clone(),
                data: data.clone(),
            };
            let w = self.db.begin_write()?;
            {
                w.delete_table(APPLIED)?;
                let mut sm = w.open_table(APPLIED)?;
                for (i, e) in entries.iter().enumerate() {
                    sm.insert(i as u64, e.as_slice())?;
                }
                let mut m = w.open_table(META)?;
                let enc = |v: &dyn erased::Ser| v.to_json();
                m.insert(
                    LAST_APPLIED,
                    enc(&meta.last_log_id)
                        .map_err(|e| corrupted("applied", e))?
                        .as_slice(),
                )?;
                m.insert(
                    MEMBERSHIP,
                    enc(&meta.last_membership)
                        .map_err(|e| corrupted("membership", e))?
                        .as_slice(),
                )?;
                m.insert(
                    SNAPSHOT,
                    enc(&stored)
                        .map_err(|e| corrupted("snapshot", e))?
                        .as_slice(),
                )?;
            }
            w.commit()?;
            Ok(())
        };
        install().map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e).into())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let stored: Option<StoredSnapshot> =
            get_meta(&self.db, SNAPSHOT).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

/// Object-safe JSON encoding, so one closure can serialize values of different types.
mod erased {
    pub(super) trait Ser {
        fn to_json(&self) -> Result<Vec<u8>, serde_json::Error>;
    }

    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
            serde_json::to_vec(self)
        }
    }
}
