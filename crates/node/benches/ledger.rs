//! Ledger benchmark (issue 5): a 3-node cluster on loopback (Raft over mutual-TLS gRPC, redb).
//!
//! Prints, each with a reference measured in the same process:
//! - committed ledger entries per second, one writer at a time and 32 concurrent writers, against
//!   the same number of opaque entries of the same size through a bare Raft cluster (no ledger
//!   gate): the ratio is what signature checks and the ledger's rules cost on the write path;
//! - verification speed (`Ledger::from_encoded`: decoding, chain, signatures, roles, replays, the
//!   Merkle log) against decoding alone.
//!
//! Run: `cargo bench -p fedids-node --bench ledger` (N entries per run: `FEDIDS_BENCH_N`,
//! default 2000).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use fedids_ledger::{Body, Entry, Ledger, Record, Role};
use fedids_net::pki::{init_ca, issue_site, Ca, Validity};
use fedids_node::LedgerNode;
use fedids_raft::{NodeConfig, RaftNode, Timing, TlsIdentity};

fn identity(ca: &Ca, name: &str) -> TlsIdentity {
    let site = issue_site(ca, name, Validity::days_from_now(1)).unwrap();
    TlsIdentity {
        ca_pem: ca.cert_pem.clone(),
        cert_pem: site.cert_pem,
        key_pem: site.key_pem,
        server_names: BTreeMap::new(),
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn configs(ca: &Ca, dir: &std::path::Path, tag: &str) -> Vec<NodeConfig> {
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let peers: BTreeMap<u64, String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (i as u64 + 1, format!("https://{a}")))
        .collect();
    (0..3)
        .map(|i| {
            let mut c = NodeConfig::new(
                i as u64 + 1,
                addrs[i],
                peers.clone(),
                dir.join(format!("{tag}-{i}")),
                identity(ca, &format!("node-{}", i + 1)),
            );
            c.timing = Timing {
                heartbeat_ms: 100,
                election_min_ms: 400,
                election_max_ms: 800,
            };
            c.write_timeout = Duration::from_secs(30);
            c
        })
        .collect()
}

async fn wait_leader(node: &RaftNode) {
    while node.leader().is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Genesis, a site registration, then `n` publications signed by the site.
fn entries(n: usize) -> (Vec<Entry>, Vec<Entry>) {
    let setup = vec![
        Ledger::unsigned(
            "coordinator",
            1,
            Body::Genesis {
                federation: "bench".into(),
                authorities: vec![("coordinator".into(), key(1).verifying_key().to_bytes())],
            },
        )
        .sign(&key(1)),
        Ledger::unsigned(
            "coordinator",
            2,
            Body::RegisterKey {
                name: "site-a".into(),
                key: key(2).verifying_key().to_bytes(),
                role: Role::Site,
            },
        )
        .sign(&key(1)),
    ];
    let body = (0..n)
        .map(|i| {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Ledger::unsigned(
                "site-a",
                10 + i as u64,
                Body::IntelPublication {
                    bundle_sha256: hash,
                    n_objects: 12,
                    channel: "collection-1".into(),
                },
            )
            .sign(&key(2))
        })
        .collect();
    (setup, body)
}

/// Writes `items` through `write` with `concurrency` writers; returns entries per second.
async fn rate<F, Fut>(items: Vec<Vec<u8>>, concurrency: usize, write: F) -> f64
where
    F: Fn(Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let n = items.len();
    let write = Arc::new(write);
    let queue = Arc::new(std::sync::Mutex::new(items.into_iter()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (q, w) = (queue.clone(), write.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = q.lock().unwrap().next();
                match next {
                    Some(item) => w(item).await,
                    None => break,
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = std::env::var("FEDIDS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = init_ca("bench").unwrap();
    runtime.block_on(async {
        let (setup, body) = entries(2 * n);
        let (seq_items, conc_items) = body.split_at(n);
        let encode = |v: &[Entry]| v.iter().map(Entry::encode).collect::<Vec<_>>();

        // The ledger: Raft plus the ledger's gate on every write.
        let mut nodes = Vec::new();
        for c in configs(&ca, dir.path(), "ledger") {
            nodes.push(Arc::new(LedgerNode::start(c).await.unwrap()));
        }
        let members = nodes[0].raft().raft().metrics().borrow().id;
        let _ = members;
        let peers: BTreeMap<u64, String> = configs_peers(&nodes);
        nodes[0].raft().initialize(peers).await.unwrap();
        wait_leader(nodes[0].raft()).await;
        let leader_id = nodes[0].raft().leader().unwrap();
        let leader = nodes
            .iter()
            .find(|n| n.raft().id() == leader_id)
            .unwrap()
            .clone();
        for e in &setup {
            leader.raft().write(e.encode()).await.unwrap();
        }
        let l = leader.clone();
        let ledger_seq = rate(encode(seq_items), 1, move |b| {
            let l = l.clone();
            async move {
                l.raft().write(b).await.unwrap();
            }
        })
        .await;
        let l = leader.clone();
        let ledger_conc = rate(encode(conc_items), 32, move |b| {
            let l = l.clone();
            async move {
                l.raft().write(b).await.unwrap();
            }
        })
        .await;
        let view = leader.view().unwrap();
        assert_eq!(view.ledger().len(), (2 + 2 * n) as u64, "every entry committed");
        assert!(view.refused().is_empty());
        let records: Vec<Vec<u8>> = view.ledger().records().iter().map(Record::encode).collect();

        // The reference: a bare Raft cluster, same entry bytes, no gate.
        let mut bare = Vec::new();
        for c in configs(&ca, dir.path(), "bare") {
            bare.push(Arc::new(RaftNode::start(c).await.unwrap()));
        }
        let peers: BTreeMap<u64, String> = bare
            .iter()
            .map(|b| (b.id(), format!("https://{}", b.local_addr())))
            .collect();
        bare[0].initialize(peers).await.unwrap();
        wait_leader(&bare[0]).await;
        let lid = bare[0].leader().unwrap();
        let bl = bare.iter().find(|b| b.id() == lid).unwrap().clone();
        let b = bl.clone();
        let raft_seq = rate(encode(seq_items), 1, move |x| {
            let b = b.clone();
            async move {
                b.write(x).await.unwrap();
            }
        })
        .await;
        let b = bl.clone();
        let raft_conc = rate(encode(conc_items), 32, move |x| {
            let b = b.clone();
            async move {
                b.write(x).await.unwrap();
            }
        })
        .await;

        // Verification against decoding alone.
        let t = Instant::now();
        let verified = Ledger::from_encoded(&records).unwrap();
        let verify = records.len() as f64 / t.elapsed().as_secs_f64();
        assert_eq!(verified.merkle().root(), view.ledger().merkle().root());
        let t = Instant::now();
        let decoded = records.iter().filter(|r| Record::decode(r).is_ok()).count();
        let decode = records.len() as f64 / t.elapsed().as_secs_f64();
        assert_eq!(decoded, records.len());

        println!("ledger benchmark: 3 nodes on 127.0.0.1, mutual TLS, redb; {n} entries per run");
        println!(
            "commit, 1 writer:    ledger {ledger_seq:>9.0} entries/s   bare raft {raft_seq:>9.0} entries/s   ratio {:.2}x",
            ledger_seq / raft_seq
        );
        println!(
            "commit, 32 writers:  ledger {ledger_conc:>9.0} entries/s   bare raft {raft_conc:>9.0} entries/s   ratio {:.2}x",
            ledger_conc / raft_conc
        );
        println!(
            "verify:              ledger {verify:>9.0} records/s   decode only {decode:>9.0} records/s   ratio {:.2}x",
            verify / decode
        );
        for node in nodes {
            if let Ok(node) = Arc::try_unwrap(node) {
                let _ = node.shutdown().await;
            }
        }
        for b in bare {
            if let Ok(b) = Arc::try_unwrap(b) {
                let _ = b.shutdown().await;
            }
        }
    });
}

fn configs_peers(nodes: &[Arc<LedgerNode>]) -> BTreeMap<u64, String> {
    nodes
        .iter()
        .map(|n| (n.raft().id(), format!("https://{}", n.raft().local_addr())))
        .collect()
}
