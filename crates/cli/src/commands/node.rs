//! `fedids node`: a member of the ledger cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use fedids_ledger::merkle::Hash;
use fedids_net::pki::PkiDir;
use fedids_node::LedgerNode;
use fedids_raft::{NodeConfig, Timing, TlsIdentity};
use tracing::info;

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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = LedgerNode::start(config)
            .await
            .with_context(|| format!("cannot start ledger node {}", a.id))?;
        info!(id = a.id, addr = %node.raft().local_addr(), "ledger node serving");
        if a.init {
            node.raft()
                .initialize(peers)
                .await
                .context("cannot initialize the cluster")?;
            info!("cluster initialized");
        }
        let mut last = (u64::MAX, None);
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
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
        node.shutdown().await?;
        Ok(())
    })
}
