//! Replicated, append-only log of opaque entries for the fedids federation.
//!
//! This crate owns replication of opaque entries (`Vec<u8>`) across three or more nodes with
//! the Raft consensus protocol ([openraft]), each node keeping its Raft log, vote and applied
//! entries in one redb database (`DIR/raft.redb`), nodes talking gRPC over mutual TLS. It must
//! not know what entries mean: no forests, no ledger semantics; the ledger crate defines those.
//!
//! An entry's *position* is its index in the replicated application log: 0-based, counting only
//! application entries (not Raft's blank or membership entries). Every node applies the same
//! entries in the same positions.
//!
//! Start a [`RaftNode`] per member, [`RaftNode::initialize`] one of them with the full
//! membership, then [`RaftNode::write`] on any node (followers forward to the leader) and read
//! applied entries with [`RaftNode::entries`]. [`RaftClient`] talks to a node from outside.

#![deny(missing_docs)]

mod client;
mod network;
mod server;
mod store;

/// Generated gRPC types of `proto/raft.proto` (package `fedids.raft.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("fedids.raft.v1");
}

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::warn;

/// The openraft version this crate is built on, for [`RaftNode::raft`] users.
pub use openraft;

pub use client::{NodeStatus, RaftClient, LEADER_ADDR_HEADER, LEADER_ID_HEADER};

/// Largest gRPC message sent or accepted (Raft batches and snapshot chunks, JSON-encoded).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// An opaque entry as openraft carries it. Raft messages and the log store openraft's types as
/// JSON; a plain `Vec<u8>` would be a JSON array of numbers (about 3.6 bytes per byte), so the
/// payload travels as one base64 string (4 bytes per 3) in human-readable formats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload(pub Vec<u8>);

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        use base64::Engine as _;
        if d.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map(Payload)
                .map_err(serde::de::Error::custom)
        } else {
            <Vec<u8>>::deserialize(d).map(Payload)
        }
    }
}

openraft::declare_raft_types!(
    /// openraft type configuration: u64 node ids, nodes with an address (`https://host:port`),
    /// opaque byte entries whose response is the entry's position in the application log.
    pub TypeConfig:
        D = Payload,
        R = u64,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The applied entries a stopped node stored in `dir` (its `raft.redb`), in order: what an
/// auditor checks when a node's disk is in question.
pub fn stored_entries(dir: &std::path::Path) -> Result<Vec<Vec<u8>>, Error> {
    Ok(store::stored_entries(dir)?)
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This node is not the leader and could not hand the write to one.
    #[error("not the leader; {}", match (leader, addr) {
        (Some(id), Some(addr)) => format!("the leader is node {id} at {addr}"),
        (Some(id), None) => format!("the leader is node {id}"),
        _ => "no leader is known".to_string(),
    })]
    NotLeader {
        /// The leader's id, when known.
        leader: Option<u64>,
        /// The leader's address, when known.
        addr: Option<String>,
    },
    /// A write was not committed in time (for instance, no quorum is reachable).
    #[error("write not committed within {0:?}")]
    Timeout(Duration),
    /// An RPC to another node failed.
    #[error("rpc {code:?}: {message}")]
    Rpc {
        /// gRPC status code.
        code: tonic::Code,
        /// gRPC status message.
        message: String,
    },
    /// The Raft core reported an error (fatal errors, refused membership changes...).
    #[error("raft: {0}")]
    Raft(String),
    /// The redb store failed.
    #[error("storage: {0}")]
    Storage(String),
    /// Invalid TLS material.
    #[error("tls: {0}")]
    Tls(#[from] fedids_net::tls::TlsError),
    /// Binding or serving failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Invalid configuration.
    #[error("config: {0}")]
    Config(String),
    /// The application's admission check refused the entry before it was proposed.
    #[error("entry refused: {0}")]
    Refused(String),
}

/// The application's check of an entry before the leader proposes it: `Err` carries the reason,
/// which goes back to the writer. The log stays ignorant of what entries mean; the check is
/// the application's (for the ledger: signature, author, chain rules).
#[derive(Clone)]
pub struct Admission(pub Arc<AdmitFn>);

/// The check behind an [`Admission`].
pub type AdmitFn = dyn Fn(&[u8]) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admission(..)")
    }
}

/// The application's status, answered with every `Status` RPC as opaque bytes
/// ([`NodeStatus::app_status`]). The log never interprets them: what they mean (for the ledger,
/// the node's signed tree head) is between the application and its peers. The function is
/// called on the RPC's task for each `Status` request, so it should be quick.
#[derive(Clone)]
pub struct AppStatus(pub Arc<AppStatusFn>);

/// The function behind an [`AppStatus`].
pub type AppStatusFn = dyn Fn() -> Vec<u8> + Send + Sync;

impl std::fmt::Debug for AppStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppStatus(..)")
    }
}

impl Error {
    fn from_status(s: &tonic::Status) -> Error {
        Error::Rpc {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

impl From<store::DbError> for Error {
    fn from(e: store::DbError) -> Error {
        Error::Storage(e.to_string())
    }
}

/// A node's TLS material: the federation CA, its certificate and key (PEM), and optionally the
/// certificate name to expect from each peer (default: the host of the peer's URL).
#[derive(Clone)]
pub struct TlsIdentity {
    /// CA certificate that signs every member's certificate, PEM.
    pub ca_pem: String,
    /// This node's certificate (used as TLS server and client), PEM.
    pub cert_pem: String,
    /// This node's private key, PEM.
    pub key_pem: String,
    /// Expected server name of each peer, by node id; a missing peer uses its URL's host.
    pub server_names: BTreeMap<u64, String>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("server_names", &self.server_names)
            .finish_non_exhaustive()
    }
}

/// Raft timing, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Smallest election timeout.
    pub election_min_ms: u64,
    /// Largest election timeout.
    pub election_max_ms: u64,
}

impl Default for Timing {
    /// 250 ms heartbeats, 1–2 s election timeout.
    fn default() -> Timing {
        Timing {
            heartbeat_ms: 250,
            election_min_ms: 1000,
            election_max_ms: 2000,
        }
    }
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id (unique in the cluster).
    pub id: u64,
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// URLs (`https://host:port`) of the cluster's nodes by id, this node's included or not;
    /// used when the membership does not name a node's address.
    pub peers: BTreeMap<u64, String>,
    /// Directory of the node's store (`dir/raft.redb`), created if missing.
    pub dir: PathBuf,
    /// TLS material.
    pub tls: TlsIdentity,
    /// Raft timing.
    pub timing: Timing,
    /// How long [`RaftNode::write`] waits for the entry to be committed and applied.
    pub write_timeout: Duration,
    /// Take a snapshot (and purge the log) every this many Raft log entries.
    pub snapshot_every: u64,
    /// Checks every entry before the leader proposes it (none: every entry is admitted).
    pub admission: Option<Admission>,
    /// Opaque application status answered by `Status` (none: empty bytes).
    pub app_status: Option<AppStatus>,
}

impl NodeConfig {
    /// A configuration with default timing, a 5 s write timeout and a snapshot every 5000
    /// log entries.
    pub fn new(
        id: u64,
        listen: SocketAddr,
        peers: BTreeMap<u64, String>,
        dir: PathBuf,
        tls: TlsIdentity,
    ) -> NodeConfig {
        NodeConfig {
            id,
            listen,
            peers,
            dir,
            tls,
            timing: Timing::default(),
            write_timeout: Duration::from_secs(5),
            snapshot_every: 5000,
            admission: None,
            app_status: None,
        }
    }
}

/// One running member of the replicated log: the Raft core, its redb store and its gRPC server.
pub struct RaftNode {
    id: u64,
    raft: Raft<TypeConfig>,
    db: Arc<server::DbSlot>,
    tls: TlsIdentity,
    peers: BTreeMap<u64, String>,
    write_timeout: Duration,
    admission: Option<Admission>,
    local_addr: SocketAddr,
    server: JoinHandle<()>,
    stop_server: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RaftNode {
    /// Opens (or creates) the node's store in `config.dir`, starts Raft and serves gRPC on
    /// `config.listen`. A node restarted from an existing directory resumes with its log, vote
    /// and applied entries and catches up from the leader.
    pub async fn start(config: NodeConfig) -> Result<RaftNode, Error> {
        let t = config.timing;
        if t.heartbeat_ms == 0 || t.election_min_ms <= t.heartbeat_ms {
            return Err(Error::Config(
                "election timeout must exceed the heartbeat interval".to_string(),
            ));
        }
        let raft_config = openraft::Config {
            cluster_name: "fedids".to_string(),
            heartbeat_interval: t.heartbeat_ms,
            election_timeout_min: t.election_min_ms,
            election_timeout_max: t.election_max_ms.max(t.election_min_ms + 1),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: 0,
            snapshot_max_chunk_size: 1024 * 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Config(e.to_string()))?;

        std::fs::create_dir_all(&config.dir)?;
        let dir = config.dir.clone();
        let db = tokio::task::spawn_blocking(move || store::open(&dir))
            .await
            .map_err(|e| Error::Storage(e.to_string()))??;
        let tls_server = fedids_net::tls::server_config(
            &config.tls.ca_pem,
            &config.tls.cert_pem,
            &config.tls.key_pem,
        )?;
        let listener = server::bind(config.listen)?;
        let local_addr = listener.local_addr()?;

        let network = network::Network {
            tls: config.tls.clone(),
        };
        let raft = Raft::new(
            config.id,
            Arc::new(raft_config),
            network,
            store::LogStore::new(db.clone()),
            store::StateMachine::new(db.clone()),
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;

        let slot = Arc::new(server::DbSlot::new(db));
        let service = server::Service {
            raft: raft.clone(),
            db: slot.clone(),
            write_timeout: config.write_timeout,
            admission: config.admission.clone(),
            app_status: config.app_status.clone(),
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let id = config.id;
        let server = tokio::spawn(async move {
            if let Err(e) = server::serve(listener, tls_server, service, stop_rx).await {
                warn!(node = id, error = %e, "raft gRPC server failed");
            }
        });
        Ok(RaftNode {
            id: config.id,
            raft,
            db: slot,
            tls: config.tls,
            peers: config.peers,
            write_timeout: config.write_timeout,
            admission: config.admission,
            local_addr,
            server,
            stop_server: Some(stop_tx),
        })
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address the gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Bootstraps a new cluster with `members` (node id -> `https://host:port`) as voters. Call
    /// it on one node only, once; the others learn the membership from the leader.
    pub async fn initialize(&self, members: BTreeMap<u64, String>) -> Result<(), Error> {
        let nodes: BTreeMap<u64, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
        self.raft
            .initialize(nodes)
            .await
            .map_err(|e| Error::Raft(e.to_string()))
    }

    /// Appends `entry` to the replicated log and returns its position once it is committed and
    /// applied on this node (leader) or the leader (when forwarded). Fails with
    /// [`Error::NotLeader`] when no leader is known or the leader refuses, and with
    /// [`Error::Timeout`] when the entry is not committed within the configured time.
    ///
    /// A write that failed with `Timeout` (or a forwarding error) may still have reached the
    /// leader's log and be committed later, once a quorum is back: entries should carry what
    /// the application needs to recognise a duplicate (the ledger's chain does).
    pub async fn write(&self, entry: Vec<u8>) -> Result<u64, Error> {
        let timeout = self.write_timeout;
        tokio::time::timeout(timeout, self.write_inner(entry))
            .await
            .unwrap_or(Err(Error::Timeout(timeout)))
    }

    /// Like [`RaftNode::write`], but only while this node leads: a follower (or a leader that
    /// lost its role meanwhile) answers [`Error::NotLeader`] instead of forwarding the entry.
    /// For writers whose role is tied to leadership, such as the federation coordinator.
    pub async fn write_as_leader(&self, entry: Vec<u8>) -> Result<u64, Error> {
        let timeout = self.write_timeout;
        let write = async {
            if !self.is_leader() {
                return Err(Error::NotLeader {
                    leader: self.leader(),
                    addr: None,
                });
            }
            if let Some(admit) = &self.admission {
                (admit.0)(&entry).map_err(Error::Refused)?;
            }
            match self.raft.client_write(Payload(entry)).await {
                Ok(r) => Ok(r.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    Err(Error::NotLeader {
                        leader: f.leader_id,
                        addr: f.leader_node.map(|n| n.addr),
                    })
                }
                Err(e) => Err(Error::Raft(e.to_string())),
            }
        };
        tokio::time::timeout(timeout, write)
            .await
            .unwrap_or(Err(Error::Timeout(timeout)))
    }

    async fn write_inner(&self, entry: Vec<u8>) -> Result<u64, Error> {
        if self.is_leader() {
            if let Some(admit) = &self.admission {
                (admit.0)(&entry).map_err(Error::Refused)?;
            }
        }
        let forward = match self.raft.client_write(Payload(entry.clone())).await {
            Ok(r) => return Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => f,
            Err(e) => return Err(Error::Raft(e.to_string())),
        };
        let Some(leader) = forward.leader_id.filter(|l| *l != self.id) else {
            return Err(Error::NotLeader {
                leader: None,
                addr: None,
            });
        };
        let addr = forward
            .leader_node
            .map(|n| n.addr)
            .or_else(|| self.peers.get(&leader).cloned());
        let Some(addr) = addr else {
            return Err(Error::NotLeader {
                leader: Some(leader),
                addr: None,
            });
        };
        let client = RaftClient::connect(
            &addr,
            self.tls.server_names.get(&leader).map(String::as_str),
            &self.tls,
        )?;
        match client.write(entry).await {
            Ok(position) => Ok(position),
            Err(Error::NotLeader { leader, addr }) => Err(Error::NotLeader { leader, addr }),
            Err(Error::Refused(why)) => Err(Error::Refused(why)),
            Err(e) => {
                warn!(node = self.id, leader, error = %e, "forwarding a write failed");
                Err(Error::NotLeader {
                    leader: Some(leader),
                    addr: Some(addr),
                })
            }
        }
    }

    /// Applied entries from position `from` on, in order.
    pub fn entries(&self, from: u64) -> Result<Vec<Vec<u8>>, Error> {
        let db = self
            .db
            .get()
            .ok_or_else(|| Error::Raft("node is shut down".to_string()))?;
        Ok(store::applied_entries(&db, from, usize::MAX)?)
    }

    /// Number of application entries applied on this node.
    pub fn applied_len(&self) -> Result<u64, Error> {
        let db = self
            .db
            .get()
            .ok_or_else(|| Error::Raft("node is shut down".to_string()))?;
        Ok(store::applied_count(&db)?)
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id)
    }

    /// The node's current term.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The underlying openraft handle, for metrics and membership changes (advanced use).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Stops Raft and the gRPC server and closes the store; the directory can then be opened
    /// again by [`RaftNode::start`].
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let raft_result = self.raft.shutdown().await;
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        // Graceful stop lets in-flight RPCs finish; connections that linger are cut off.
        if tokio::time::timeout(Duration::from_secs(2), &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
            let _ = (&mut self.server).await;
        }
        self.db.clear();
        raft_result.map_err(|e| Error::Raft(e.to_string()))
    }
}

impl Drop for RaftNode {
    /// A node dropped without [`RaftNode::shutdown`] stops its server and Raft core in the
    /// background (when a tokio runtime is running); prefer `shutdown`, which waits for both.
    fn drop(&mut self) {
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let raft = self.raft.clone();
                handle.spawn(async move {
                    let _ = raft.shutdown().await;
                });
            }
        }
    }
}

#[cfg(test)]
mod payload_tests {
    use super::Payload;

    #[test]
    fn payloads_travel_as_base64_in_json() {
        let p = Payload((0..=255u8).collect());
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.starts_with('"') && json.len() < 2 * 256, "{json}");
        assert_eq!(serde_json::from_str::<Payload>(&json).unwrap(), p);
        let empty = serde_json::to_string(&Payload::default()).unwrap();
        assert_eq!(empty, "\"\"");
        let err = serde_json::from_str::<Payload>("\"not base64!\"").unwrap_err();
        assert!(err.to_string().contains("Invalid"), "{err}");
        assert!(serde_json::from_str::<Payload>("[1,2,3]").is_err());
    }
}
