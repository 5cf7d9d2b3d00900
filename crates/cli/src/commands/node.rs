//! `fedids node`: a member of the ledger cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use fedids_ledger::merkle::Hash;
use fedids_net::pki::PkiDir;
use fedids_node::{HeadSigner, LedgerNode, PeerHeadError, PeerOutcome};
use fedids_raft::{NodeConfig, Timing, TlsIdentity};
use tracing::{debug, error, info, warn};

use crate::args::NodeArgs;

/// `ID=URL` pairs into a map.
pub fn parse_peers(peers: &[String]) -> Result<BTreeMap<u64, String>> {
    let mut out = BTreeMap::new();
    for p in peers {
        let (id, url) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--peers: '{p}' is not ID=https://HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| anyhow!("--peers: '{id}' in '{p}' is not a node id (a number)"))?;
        if !url.starts_with("https://") {
            bail!("--peers: '{url}' must start with https://");
        }
        if out.insert(id, url.trim().to_string()).is_some() {
            bail!("--peers: node id {id} appears twice");
        }
    }
    Ok(out)
}

/// TLS material of an identity in a PKI directory.
pub fn tls_identity(pki: &PkiDir, name: &str) -> Result<TlsIdentity> {
    let me = pki
        .read_site(name)
        .with_context(|| format!("the identity '{name}'"))?;
    Ok(TlsIdentity {
        ca_pem: pki.read_ca_cert()?,
        cert_pem: me.cert_pem,
        key_pem: me.key_pem,
        server_names: BTreeMap::new(),
    })
}

pub fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn run(a: NodeArgs) -> Result<()> {
    let pki = PkiDir::new(&a.pki);
    let peers = parse_peers(&a.peers)?;
    if !peers.contains_key(&a.id) {
        bail!("--peers must name this node's id {}", a.id);
    }
    if a.heartbeat_ms == 0 {
        bail!("--heartbeat-ms must be at least 1");
    }
    let mut config = NodeConfig::new(
        a.id,
        a.listen,
        peers.clone(),
        a.state.clone(),
        tls_identity(&pki, &a.name)?,
    );
    config.timing = Timing {
        heartbeat_ms: a.heartbeat_ms,
        election_min_ms: a.heartbeat_ms * 4,
        election_max_ms: a.heartbeat_ms * 8,
    };
    let role = a
        .federation_listen
        .map(|addr| super::node_role::role_config(&a.pki, &a.name, addr, a.state.clone(), &a.fed))
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let signer = HeadSigner {
            name: a.name.clone(),
            key: pki.read_site(&a.name)?.signing_key,
        };
        let node = LedgerNode::start_signing(config, signer)
            .await
            .with_context(|| format!("cannot start ledger node {}", a.id))?;
        let node = std::sync::Arc::new(node);
        info!(id = a.id, addr = %node.raft().local_addr(), "ledger node serving");
        if a.init {
            node.raft()
                .initialize(peers)
                .await
                .context("cannot initialize the cluster")?;
            info!("cluster initialized");
        }
        let mut role =
            role.map(|cfg| tokio::spawn(super::node_role::run(node.clone(), a.pki.clone(), cfg)));
        let mut last = (u64::MAX, None);
        let mut peer_heads = PeerHeads::default();
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            if let Some(task) = role.take_if(|t| t.is_finished()) {
                // The role only ends on an error (it cannot serve).
                task.await.context("the coordinator role failed")??;
            }
            peer_heads.tick(&node).await;
            let view = node.view()?;
            let leader = node.raft().leader();
            let size = view.ledger().len();
            if (size, leader) != last {
                info!(
                    size,
                    root = %hex(&view.ledger().merkle().root()),
                    leader = ?leader,
                    refused = view.refused().len(),
                    "ledger head"
                );
                last = (size, leader);
            }
        }
        if let Some(task) = role {
            task.abort();
            let _ = task.await;
        }
        if let Ok(node) = std::sync::Arc::try_unwrap(node) {
            node.shutdown().await?;
        }
        Ok(())
    })
}

/// Checks the peers' signed tree heads about once a second and logs what is wrong with them,
/// once per peer and distinct head (or reason): a fork at ERROR, a refused head (bad signature,
/// not a node's key) at WARN, a head that cannot be checked yet (unknown signer) at INFO.
#[derive(Default)]
struct PeerHeads {
    odd_tick: bool,
    forks: BTreeSet<(u64, u64, Hash)>,
    invalid: BTreeSet<(u64, String)>,
}

impl PeerHeads {
    /// Called every 500 ms; polls every other call.
    async fn tick(&mut self, node: &LedgerNode) {
        self.odd_tick = !self.odd_tick;
        if self.odd_tick {
            return;
        }
        for report in node.check_peers(Duration::from_millis(900)).await {
            let (peer, url) = (report.id, report.url);
            match report.outcome {
                PeerOutcome::Fork { head, reason } => {
                    if self.forks.insert((peer, head.head.size, head.head.root)) {
                        error!(
                            peer,
                            %url,
                            signer = %head.signer,
                            size = head.head.size,
                            root = %hex(&head.head.root),
                            %reason,
                            "ledger node '{}' ({url}) presents a forked history at size {}",
                            head.signer,
                            head.head.size
                        );
                    }
                }
                PeerOutcome::Invalid { reason, .. } => {
                    if self.invalid.insert((peer, reason.to_string())) {
                        if matches!(
                            reason,
                            PeerHeadError::UnknownSigner(_) | PeerHeadError::NoHead
                        ) {
                            // Expected while the genesis is being written, or from a node
                            // that signs no heads.
                            info!(peer, %url, %reason, "cannot check the tree head of a peer yet");
                        } else {
                            warn!(peer, %url, %reason, "refused the tree head of a peer");
                        }
                    }
                }
                PeerOutcome::Unreachable(e) => debug!(peer, %url, error = %e, "peer unreachable"),
                PeerOutcome::Consistent(_) | PeerOutcome::Ahead(_) => {}
            }
        }
    }
}
