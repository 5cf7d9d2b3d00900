//! fedids-node: a member of the ledger cluster.
//!
//! A ledger node is a [`fedids_raft::RaftNode`] whose opaque entries are signed ledger entries
//! ([`fedids_ledger::Entry`] bytes). Raft orders them; every node applies the same sequence
//! through the same gate ([`fedids_ledger::Ledger::append`]), so all nodes derive identical
//! records, Merkle roots and tree heads. The leader also runs the gate before proposing an entry
//! (Raft's admission hook), so a bad signature, an unknown or revoked author or a replay is
//! refused with its reason instead of entering the log. An entry that passes admission but loses
//! a race (two conflicting entries in flight) is skipped at apply time by every node alike, and
//! reported by [`LedgerView::refused`].
//!
//! [`LedgerView::rebuild`] is also what auditors run on entries read from any node: the view a
//! node holds and the one an auditor computes cannot differ.
//!
//! A node started with a [`HeadSigner`] ([`LedgerNode::start_signing`]) answers Raft's `Status`
//! with its signed tree head, and [`LedgerNode::check_peers`] checks every peer's head against
//! its own ledger ([`heads`]): a peer presenting a forked history is named.
//!
//! **Architecture invariant:** no federation round logic and no forests here: the node replicates
//! and validates entries; what the entries say is `fedids-ledger`'s business.

#![deny(missing_docs)]

pub mod heads;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fedids_ledger::head::SignedTreeHead;
use fedids_ledger::{Entry, Ledger, LedgerError};
use fedids_raft::{Admission, AppStatus, NodeConfig, RaftClient, RaftNode, TlsIdentity};

pub use heads::{check_peer_head, HeadSigner, HeadVerdict, PeerHeadError, PeerOutcome, PeerReport};

/// The ledger derived from a node's applied Raft entries.
#[derive(Debug, Clone, Default)]
pub struct LedgerView {
    ledger: Ledger,
    consumed: u64,
    refused: Vec<(u64, String)>,
}

impl LedgerView {
    /// The view of a sequence of applied entries (as [`fedids_raft::RaftClient::read`] returns
    /// them).
    pub fn rebuild(entries: &[Vec<u8>]) -> LedgerView {
        let mut view = LedgerView::default();
        view.apply(entries);
        view
    }

    /// Applies further entries, in order.
    pub fn apply(&mut self, entries: &[Vec<u8>]) {
        for bytes in entries {
            let position = self.consumed;
            self.consumed += 1;
            if bytes.starts_with(fedids_ledger::ROUND_STATE_MAGIC) {
                // Federation round state shares the log; it is not a ledger entry.
                continue;
            }
            let outcome = Entry::decode(bytes)
                .map_err(|e| e.to_string())
                .and_then(|e| self.ledger.append(e).map_err(|e| e.refusal.to_string()));
            if let Err(why) = outcome {
                self.refused.push((position, why));
            }
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Raft entries consumed so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Raft positions skipped at apply time, and why.
    pub fn refused(&self) -> &[(u64, String)] {
        &self.refused
    }

    /// Whether `entry` would be appended next. Round-state entries are admitted as they are:
    /// their readers check their signatures.
    pub fn admit(&self, entry: &[u8]) -> Result<(), String> {
        if entry.starts_with(fedids_ledger::ROUND_STATE_MAGIC) {
            return Ok(());
        }
        let entry = Entry::decode(entry).map_err(|e| e.to_string())?;
        self.ledger
            .check(&entry)
            .map_err(|LedgerError { refusal, .. }| refusal.to_string())
    }
}

/// A running ledger node.
pub struct LedgerNode {
    raft: Arc<RaftNode>,
    view: Arc<Mutex<LedgerView>>,
    peers: BTreeMap<u64, String>,
    tls: TlsIdentity,
    clients: Mutex<BTreeMap<u64, RaftClient>>,
}

/// Errors of a ledger node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The replicated log failed.
    #[error(transparent)]
    Raft(#[from] fedids_raft::Error),
}

fn refresh(raft: &RaftNode, view: &Mutex<LedgerView>) -> Result<(), fedids_raft::Error> {
    let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
    let fresh = raft.entries(v.consumed())?;
    v.apply(&fresh);
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl LedgerNode {
    /// Starts the Raft node with the ledger's admission check. It signs no tree heads: its
    /// `Status` carries no application status, so its peers cannot check its history.
    pub async fn start(config: NodeConfig) -> Result<LedgerNode, NodeError> {
        LedgerNode::start_inner(config, None).await
    }

    /// Starts the Raft node with the ledger's admission check; its `Status` answers its current
    /// signed tree head, signed by `signer` ([`heads::encode_head`]), for its peers to check.
    pub async fn start_signing(
        config: NodeConfig,
        signer: HeadSigner,
    ) -> Result<LedgerNode, NodeError> {
        LedgerNode::start_inner(config, Some(signer)).await
    }

    async fn start_inner(
        mut config: NodeConfig,
        signer: Option<HeadSigner>,
    ) -> Result<LedgerNode, NodeError> {
        let view = Arc::new(Mutex::new(LedgerView::default()));
        // A weak handle: the hook lives inside the node, so a strong one would keep it alive.
        let cell: Arc<OnceLock<Weak<RaftNode>>> = Arc::new(OnceLock::new());
        let (v, c) = (view.clone(), cell.clone());
        config.admission = Some(Admission(Arc::new(move |entry: &[u8]| {
            if let Some(node) = c.get().and_then(Weak::upgrade) {
                refresh(&node, &v).map_err(|e| e.to_string())?;
            }
            v.lock().unwrap_or_else(|p| p.into_inner()).admit(entry)
        })));
        if let Some(signer) = signer {
            let (v, c) = (view.clone(), cell.clone());
            config.app_status = Some(AppStatus(Arc::new(move || {
                if let Some(node) = c.get().and_then(Weak::upgrade) {
                    // A store that cannot be read leaves the head where it was.
                    let _ = refresh(&node, &v);
                }
                let v = v.lock().unwrap_or_else(|p| p.into_inner());
                let head = SignedTreeHead::sign(v.ledger(), &signer.name, &signer.key, now_ms());
                heads::encode_head(&head)
            })));
        }
        let (peers, tls) = (config.peers.clone(), config.tls.clone());
        let peers = peers
            .into_iter()
            .filter(|(id, _)| *id != config.id)
            .collect();
        let raft = Arc::new(RaftNode::start(config).await?);
        let _ = cell.set(Arc::downgrade(&raft));
        refresh(&raft, &view)?;
        Ok(LedgerNode {
            raft,
            view,
            peers,
            tls,
            clients: Mutex::new(BTreeMap::new()),
        })
    }

    /// Asks every peer (the configuration's other nodes) for its signed tree head, at most
    /// `timeout` each and all at once, and checks each against this node's ledger
    /// ([`heads::judge`]). Reports come in node id order.
    pub async fn check_peers(&self, timeout: Duration) -> Vec<PeerReport> {
        let mut tasks = tokio::task::JoinSet::new();
        for (&id, url) in &self.peers {
            let client = match self.client(id, url) {
                Ok(c) => c,
                Err(e) => {
                    tasks.spawn(std::future::ready((id, url.clone(), Err(e.to_string()))));
                    continue;
                }
            };
            let url = url.clone();
            tasks.spawn(async move {
                let status = match tokio::time::timeout(timeout, client.status()).await {
                    Ok(Ok(s)) => Ok(s.app_status),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no status within {timeout:?}")),
                };
                (id, url, status)
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(answer) = joined {
                answers.push(answer);
            }
        }
        answers.sort_by_key(|(id, ..)| *id);
        // Refresh once the heads are in, so a peer's head is never judged against an older
        // view than the one this node held when the peer answered.
        let _ = refresh(&self.raft, &self.view);
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        answers
            .into_iter()
            .map(|(id, url, status)| PeerReport {
                id,
                url,
                outcome: match status {
                    Ok(bytes) => heads::judge(view.ledger(), &bytes),
                    Err(e) => PeerOutcome::Unreachable(e),
                },
            })
            .collect()
    }

    /// A cached client of peer `id` (channels reconnect on their own).
    fn client(&self, id: u64, url: &str) -> Result<RaftClient, fedids_raft::Error> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&id) {
            return Ok(c.clone());
        }
        let name = self.tls.server_names.get(&id).map(String::as_str);
        let c = RaftClient::connect(url, name, &self.tls)?;
        clients.insert(id, c.clone());
        Ok(c)
    }

    /// The Raft node.
    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// The node's ledger view, brought up to date with what it has applied.
    pub fn view(&self) -> Result<LedgerView, NodeError> {
        refresh(&self.raft, &self.view)?;
        Ok(self.view.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Stops the node.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let LedgerNode { raft, .. } = self;
        match Arc::try_unwrap(raft) {
            Ok(raft) => raft.shutdown().await?,
            // An admission check in progress holds the node: dropping stops it in the background.
            Err(raft) => drop(raft),
        }
        Ok(())
    }
}
