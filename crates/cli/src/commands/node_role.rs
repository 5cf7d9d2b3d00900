//! The federation coordinator's role inside `fedids node --federation-listen`.
//!
//! Every coordinating node serves the federation protocol. The node that leads the ledger
//! cluster holds the role: it builds a [`Coordinator`] over the round state replicated in the
//! log ([`ReplicatedStore`]), so it resumes whatever round the previous leader left, and records
//! rounds on the ledger through its own Raft node. Followers answer sites with
//! `NOT_COORDINATOR` and the leader's id, and sites move on to the next node.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use fedids_ledger::{Body, Entry, Role};
use fedids_net::pki::PkiDir;
use fedids_net::server::{serve, CoordinatorService, ServiceConfig};
use fedids_net::tls::server_config;
use fedids_node::LedgerNode;
use fedids_raft::Error as RaftError;
use fedids_round::coordinator::{Coordinator, CoordinatorConfig, LedgerSink};
use fedids_round::leader::RoleSwitch;
use fedids_round::metrics::Metrics;
use fedids_round::replicated::{ReplicatedStore, SharedLog};
use fedids_round::state::{Phase, RoundRecord};
use fedids_round::store::Store;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::args::FederationArgs;

/// The node's Raft log as the coordinator's round-state log. Writes only while leading: a node
/// that lost the role must not keep writing through the new leader.
struct RaftLog(Arc<LedgerNode>);

impl SharedLog for RaftLog {
    fn append(
        &self,
        entry: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.0
                .raft()
                .write_as_leader(entry)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    fn entries(&self, from: u64) -> Result<Vec<Vec<u8>>, String> {
        self.0.raft().entries(from).map_err(|e| e.to_string())
    }
}

/// Records rounds on the ledger through the node itself.
struct NodeLedger(Arc<LedgerNode>);

impl NodeLedger {
    /// Whether the ledger already holds what `entry` says: the same content (a replay), or an
    /// aggregation of the same round with the same output, signed by an earlier leader.
    fn already_recorded(&self, entry: &Entry, why: &str) -> bool {
        if why.contains("replayed content") {
            return true;
        }
        let Body::Aggregation(a) = &entry.unsigned.body else {
            return false;
        };
        self.0.view().is_ok_and(|v| {
            v.ledger()
                .aggregations()
                .get(&a.round)
                .is_some_and(|recorded| recorded.output_sha256 == a.output_sha256)
        })
    }
}

impl LedgerSink for NodeLedger {
    fn record<'a>(
        &'a self,
        entry: &'a Entry,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            match self.0.raft().write_as_leader(entry.encode()).await {
                Ok(_) => Ok(()),
                Err(RaftError::Refused(why)) if self.already_recorded(entry, &why) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// The authorities of the ledger (who may coordinate and sign round state), by name.
fn authorities(node: &LedgerNode) -> Result<HashMap<String, VerifyingKey>> {
    let view = node.view()?;
    let mut out = HashMap::new();
    for (name, k) in view.ledger().keys() {
        if k.role == Role::Authority && k.revoked_at.is_none() {
            if let Ok(key) = VerifyingKey::from_bytes(&k.key) {
                out.insert(name.clone(), key);
            }
        }
    }
    // The genesis authorities are not key registrations.
    if let Some(record) = view.ledger().records().first() {
        if let Body::Genesis { authorities, .. } = &record.entry.unsigned.body {
            for (name, k) in authorities {
                if let Ok(key) = VerifyingKey::from_bytes(k) {
                    out.entry(name.clone()).or_insert(key);
                }
            }
        }
    }
    Ok(out)
}

/// What the role needs to run.
pub struct RoleConfig {
    pub name: String,
    pub listen: SocketAddr,
    pub state: PathBuf,
    pub coordinator: CoordinatorConfig,
    pub max_model_bytes: u64,
    pub signing_key: SigningKey,
}

/// Reads the node's coordinator settings.
pub fn role_config(
    pki_path: &std::path::Path,
    name: &str,
    listen: SocketAddr,
    state: PathBuf,
    fed: &FederationArgs,
) -> Result<RoleConfig> {
    if fed.sites.is_empty() {
        anyhow::bail!(
            "--federation-listen needs --sites: the PKI directory also holds the identities of nodes and authorities, which are not sites"
        );
    }
    let pki = PkiDir::new(pki_path);
    let (coordinator, _) = super::coordinator::coordinator_config(&pki, pki_path, name, fed)?;
    Ok(RoleConfig {
        name: name.to_string(),
        listen,
        state,
        signing_key: coordinator.signing_key.clone(),
        coordinator,
        max_model_bytes: fed.max_model_bytes,
    })
}

/// Serves the federation protocol and takes the coordinator's role whenever the node leads.
/// Runs until the task is aborted.
pub async fn run(node: Arc<LedgerNode>, pki_path: PathBuf, cfg: RoleConfig) -> Result<()> {
    let pki = PkiDir::new(&pki_path);
    let me = pki.read_site(&cfg.name)?;
    let tls = server_config(&pki.read_ca_cert()?, &me.cert_pem, &me.key_pem)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let bound = listener.local_addr()?;
    let switch = Arc::new(RoleSwitch::new());
    let service = CoordinatorService::new(
        ServiceConfig {
            max_model_bytes: cfg.max_model_bytes,
        },
        switch.clone(),
    );
    let _server = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = serve(listener, tls, service, std::future::pending()).await {
            error!(error = %e, "the federation server failed");
        }
    }));
    info!(addr = %bound, "federation protocol served; coordinating while this node leads");
    let metrics = Arc::new(Metrics::new());
    // The term in which the role was taken, and the coordinator's driver.
    let mut held: Option<(u64, Driver)> = None;
    let mut finished_term = None;
    let mut last_refusal: Option<String> = None;
    let mut retake_after = None;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let raft = node.raft();
        let leading = raft.is_leader();
        let term = raft.term();
        if !leading {
            if held.take().is_some() {
                warn!(term, leader = ?raft.leader(), "leadership lost: coordinator role given up");
            }
            let why = match raft.leader() {
                Some(l) => format!(
                    "node {} leads the ledger cluster; the leader is node {l}",
                    raft.id()
                ),
                None => "no node leads the ledger cluster yet".to_string(),
            };
            switch.stand_by(&why);
            continue;
        }
        if let Some((held_term, task)) = &mut held {
            if *held_term != term {
                // Re-elected in a later term: another leader may have written in between, so
                // the old coordinator's memory is stale. Start over from the replicated state.
                switch.stand_by("the coordinator is restarting");
                held = None;
                continue;
            }
            if task.0.is_finished() {
                let result = (&mut task.0).await;
                match result {
                    Ok(Ok(records)) => {
                        finished_term = Some(term);
                        info!(rounds = records.len(), "federation rounds complete");
                        super::coordinator::write_reports(&cfg.state, &records)?;
                        eprint!("{}", super::coordinator::summary(&records));
                    }
                    Ok(Err(e)) => {
                        let failed = match switch_current(&switch).await {
                            Some(r) => matches!(r.phase, Phase::Failed { .. }),
                            None => false,
                        };
                        if failed {
                            // The round failed for good: stays installed to tell the sites why.
                            finished_term = Some(term);
                            error!(error = %e, "the round failed");
                        } else {
                            // The log did not commit (no quorum, a slow follower): rebuild the
                            // coordinator from the replicated state once it can.
                            warn!(error = %e, "the coordinator stopped; taking the role again");
                            switch.stand_by("the coordinator is restarting");
                            retake_after =
                                Some(tokio::time::Instant::now() + Duration::from_secs(1));
                        }
                    }
                    Err(e) => error!(error = %e, "the coordinator task failed"),
                }
                // A finished coordinator stays installed: sites may still fetch the last model.
                held = None;
            }
            continue;
        }
        if finished_term == Some(term)
            || retake_after.is_some_and(|t| tokio::time::Instant::now() < t)
        {
            continue;
        }
        match take_role(&node, &cfg, &metrics).await {
            Ok(coordinator) => {
                retake_after = None;
                switch.install(coordinator.clone()).await;
                info!(term, "leading the ledger cluster: coordinator role taken");
                held = Some((term, AbortOnDrop(tokio::spawn(coordinator.run()))));
            }
            Err(e) => {
                // Each attempt asks the followers to confirm this node's leadership: not more
                // than once a second.
                retake_after = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                let why = format!("{e:#}");
                if last_refusal.as_deref() != Some(why.as_str()) {
                    warn!(error = %why, "cannot take the coordinator role yet");
                    last_refusal = Some(why);
                }
                switch.stand_by(&format!(
                    "node {} leads but cannot coordinate: {e:#}",
                    raft.id()
                ));
            }
        }
    }
}

/// The round of the coordinator `switch` holds, if any.
async fn switch_current(switch: &RoleSwitch) -> Option<RoundRecord> {
    switch.coordinator()?.current_round().await
}

/// Builds the coordinator over the replicated round state, once this node has applied
/// everything committed before its term.
async fn take_role(
    node: &Arc<LedgerNode>,
    cfg: &RoleConfig,
    metrics: &Arc<Metrics>,
) -> Result<Arc<Coordinator>> {
    tokio::time::timeout(
        Duration::from_secs(5),
        node.raft().raft().ensure_linearizable(),
    )
    .await
    .context("catching up with the log timed out")?
    .map_err(|e| anyhow::anyhow!("catching up with the log: {e}"))?;
    let trusted = authorities(node)?;
    if !trusted.contains_key(&cfg.name) {
        anyhow::bail!(
            "'{}' is not an authority of the ledger (write the genesis with --authorities {})",
            cfg.name,
            cfg.name
        );
    }
    let log: Arc<dyn SharedLog> = Arc::new(RaftLog(node.clone()));
    let replicated = ReplicatedStore::new(log, &cfg.name, cfg.signing_key.clone(), trusted)
        .map_err(|e| anyhow::anyhow!(e))?;
    let store = Store::replicated(replicated, &cfg.state);
    let coordinator = Coordinator::new(cfg.coordinator.clone(), store, metrics.clone())
        .map_err(|e| anyhow::anyhow!(e))?
        .with_ledger(Arc::new(NodeLedger(node.clone())));
    Ok(Arc::new(coordinator))
}

/// The task running a coordinator's rounds.
type Driver = AbortOnDrop<Result<Vec<RoundRecord>, String>>;

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
