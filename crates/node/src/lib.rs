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
//! **Architecture invariant:** no federation round logic and no forests here: the node replicates
//! and validates entries; what the entries say is `fedids-ledger`'s business.

#![deny(missing_docs)]

use std::sync::{Arc, Mutex, OnceLock, Weak};

use fedids_ledger::{Entry, Ledger, LedgerError};
use fedids_raft::{Admission, NodeConfig, RaftNode};

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

    /// Whether `entry` would be appended next.
    pub fn admit(&self, entry: &[u8]) -> Result<(), String> {
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

impl LedgerNode {
    /// Starts the Raft node with the ledger's admission check.
    pub async fn start(mut config: NodeConfig) -> Result<LedgerNode, NodeError> {
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
        let raft = Arc::new(RaftNode::start(config).await?);
        let _ = cell.set(Arc::downgrade(&raft));
        refresh(&raft, &view)?;
        Ok(LedgerNode { raft, view })
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
