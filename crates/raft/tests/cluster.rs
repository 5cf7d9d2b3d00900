//! Clusters of real nodes on 127.0.0.1: gRPC over mutual TLS, redb stores in temporary
//! directories, short Raft timeouts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use fedids_net::pki::{init_ca, issue_site, Ca, Validity};
use fedids_raft::{Error, NodeConfig, RaftClient, RaftNode, Timing, TlsIdentity};

/// Bound of every test.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Tests run one at a time: they share two CPU cores and short election timeouts.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn identity(ca: &Ca, id: u64, ids: &[u64]) -> TlsIdentity {
    let site = issue_site(ca, &format!("node-{id}"), Validity::days_from_now(1)).unwrap();
    TlsIdentity {
        ca_pem: ca.cert_pem.clone(),
        cert_pem: site.cert_pem,
        key_pem: site.key_pem,
        server_names: ids.iter().map(|i| (*i, format!("node-{i}"))).collect(),
    }
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn url(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

struct Cluster {
    _tmp: tempfile::TempDir,
    configs: BTreeMap<u64, NodeConfig>,
    nodes: BTreeMap<u64, RaftNode>,
}

impl Cluster {
    async fn start(n: u64) -> Cluster {
        Cluster::start_with(n, |_| {}).await
    }

    async fn start_with(n: u64, tweak: impl Fn(&mut NodeConfig)) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let ca = init_ca("fedids raft test CA").unwrap();
        let ids: Vec<u64> = (1..=n).collect();
        let addrs: BTreeMap<u64, SocketAddr> = ids.iter().map(|i| (*i, free_addr())).collect();
        let peers: BTreeMap<u64, String> = addrs.iter().map(|(i, a)| (*i, url(*a))).collect();
        let mut configs = BTreeMap::new();
        for &id in &ids {
            let mut config = NodeConfig::new(
                id,
                addrs[&id],
                peers.clone(),
                tmp.path().join(format!("node-{id}")),
                identity(&ca, id, &ids),
            );
            config.timing = Timing {
                heartbeat_ms: 100,
                election_min_ms: 300,
                election_max_ms: 600,
            };
            config.write_timeout = Duration::from_secs(3);
            tweak(&mut config);
            configs.insert(id, config);
        }
        let mut nodes = BTreeMap::new();
        for (id, config) in &configs {
            nodes.insert(*id, RaftNode::start(config.clone()).await.unwrap());
        }
        nodes[&1].initialize(peers).await.unwrap();
        Cluster {
            _tmp: tmp,
            configs,
            nodes,
        }
    }

    fn peers(&self) -> BTreeMap<u64, String> {
        self.configs[&1].peers.clone()
    }

    /// Waits until every running node names the same leader, which is running.
    async fn leader(&self) -> u64 {
        loop {
            let leaders: Vec<Option<u64>> = self.nodes.values().map(RaftNode::leader).collect();
            if let Some(Some(l)) = leaders.first() {
                if leaders.iter().all(|x| *x == Some(*l)) && self.nodes.contains_key(l) {
                    return *l;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node has applied `n` entries; returns them (all equal).
    async fn converge(&self, n: usize) -> Vec<Vec<u8>> {
        loop {
            let all: Vec<Vec<Vec<u8>>> = self
                .nodes
                .values()
                .map(|node| node.entries(0).unwrap())
                .collect();
            if all.iter().all(|e| e.len() == n) {
                for e in &all[1..] {
                    assert_eq!(e, &all[0], "nodes applied different entries");
                }
                return all[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(&mut self, id: u64) {
        let node = self.nodes.remove(&id).unwrap();
        node.shutdown().await.unwrap();
    }

    async fn restart(&mut self, id: u64) {
        let node = RaftNode::start(self.configs[&id].clone()).await.unwrap();
        self.nodes.insert(id, node);
    }

    async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

fn entry(i: usize) -> Vec<u8> {
    format!("entry-{i:03}").into_bytes()
}

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_in_order() {
    bounded(async {
        // Node 2 answers `Status` with opaque application bytes; the others with none.
        let cluster = Cluster::start_with(3, |c| {
            if c.id == 2 {
                c.app_status = Some(fedids_raft::AppStatus(std::sync::Arc::new(|| {
                    b"opaque \x00 status".to_vec()
                })));
            }
        })
        .await;
        let leader = cluster.leader().await;
        // Writes through every node: followers forward to the leader.
        for i in 0..20 {
            let via = (i as u64 % 3) + 1;
            let position = cluster.nodes[&via].write(entry(i)).await.unwrap();
            assert_eq!(position, i as u64, "write {i} via node {via}");
        }
        let entries = cluster.converge(20).await;
        assert_eq!(entries, (0..20).map(entry).collect::<Vec<_>>());
        assert_eq!(
            cluster.nodes[&2].entries(15).unwrap(),
            entries[15..].to_vec()
        );

        // The client-facing RPCs.
        let client = RaftClient::connect(
            &cluster.peers()[&2],
            Some("node-2"),
            &cluster.configs[&1].tls,
        )
        .unwrap();
        assert_eq!(client.read(5, 3).await.unwrap(), entries[5..8].to_vec());
        let status = client.status().await.unwrap();
        assert_eq!(status.id, 2);
        assert_eq!(status.leader, Some(leader));
        assert_eq!(status.applied_entries, 20);
        assert_eq!(status.app_status, b"opaque \x00 status".to_vec());
        assert_eq!(status.membership.len(), 3);
        assert!(status.membership.values().all(|(_, voter)| *voter));
        let follower = if leader == 1 { 2 } else { 1 };
        let follower_client = RaftClient::connect(
            &cluster.peers()[&follower],
            Some(&format!("node-{follower}")),
            &cluster.configs[&1].tls,
        )
        .unwrap();
        match follower_client.write(b"direct".to_vec()).await {
            Err(Error::NotLeader {
                leader: Some(l),
                addr: Some(a),
            }) => {
                assert_eq!(l, leader);
                assert_eq!(a, cluster.peers()[&leader]);
            }
            other => panic!("expected NotLeader from a follower, got {other:?}"),
        }
        let leader_client = RaftClient::connect(
            &cluster.peers()[&leader],
            Some(&format!("node-{leader}")),
            &cluster.configs[&1].tls,
        )
        .unwrap();
        assert_eq!(leader_client.write(b"direct".to_vec()).await.unwrap(), 20);
        cluster.converge(21).await;
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_and_restart_catch_up() {
    bounded(async {
        let mut cluster = Cluster::start(3).await;
        let old = cluster.leader().await;
        for i in 0..20 {
            cluster.nodes[&old].write(entry(i)).await.unwrap();
        }
        let before = cluster.converge(20).await;
        let old_term = cluster.nodes[&old].term();

        cluster.stop(old).await;
        let new = cluster.leader().await;
        assert_ne!(new, old);
        assert!(cluster.nodes[&new].term() > old_term);
        for i in 20..30 {
            let position = cluster.nodes[&new].write(entry(i)).await.unwrap();
            assert_eq!(position, i as u64);
        }
        let after = cluster.converge(30).await;
        assert_eq!(&after[..20], &before[..], "a committed entry was lost");

        // The old leader comes back from its redb directory and catches up.
        cluster.restart(old).await;
        assert!(
            cluster.nodes[&old].entries(0).unwrap().len() >= 20,
            "a restarted node keeps its applied entries"
        );
        let caught_up = cluster.converge(30).await;
        assert_eq!(caught_up, (0..30).map(entry).collect::<Vec<_>>());
        // And the cluster still commits with it.
        let leader = cluster.leader().await;
        cluster.nodes[&leader].write(entry(30)).await.unwrap();
        cluster.converge(31).await;
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn minority_cannot_commit() {
    bounded(async {
        let mut cluster = Cluster::start(3).await;
        let leader = cluster.leader().await;
        cluster.nodes[&leader].write(entry(0)).await.unwrap();
        cluster.converge(1).await;

        // Keep the leader alone: it can append but never commit.
        let others: Vec<u64> = cluster
            .nodes
            .keys()
            .copied()
            .filter(|i| *i != leader)
            .collect();
        for id in others {
            cluster.stop(id).await;
        }
        let alone = &cluster.nodes[&leader];
        let started = std::time::Instant::now();
        let result = alone.write(entry(1)).await;
        assert!(
            matches!(
                result,
                Err(Error::Timeout(_)) | Err(Error::NotLeader { .. })
            ),
            "a minority committed a write: {result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(alone.entries(0).unwrap(), vec![entry(0)]);
        // A second attempt fails too.
        assert!(alone.write(entry(2)).await.is_err());
        assert_eq!(alone.applied_len().unwrap(), 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_from_another_ca_is_refused() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let leader = cluster.leader().await;
        cluster.nodes[&leader].write(entry(0)).await.unwrap();

        let rogue_ca = init_ca("rogue CA").unwrap();
        let rogue_tls = identity(&rogue_ca, 4, &[1, 2, 3, 4]);
        let tmp = tempfile::tempdir().unwrap();
        let rogue_addr = free_addr();
        let mut peers = cluster.peers();
        peers.insert(4, url(rogue_addr));
        let mut config = NodeConfig::new(
            4,
            rogue_addr,
            peers,
            PathBuf::from(tmp.path()),
            rogue_tls.clone(),
        );
        config.timing = cluster.configs[&1].timing;
        config.write_timeout = Duration::from_secs(2);
        let rogue = RaftNode::start(config).await.unwrap();

        // Positive control: a member's certificate is accepted.
        let good = RaftClient::connect(
            &cluster.peers()[&leader],
            Some(&format!("node-{leader}")),
            &cluster.configs[&1].tls,
        )
        .unwrap();
        assert_eq!(good.status().await.unwrap().id, leader);

        // The rogue's certificate is refused by members...
        let rogue_client = RaftClient::connect(
            &cluster.peers()[&leader],
            Some(&format!("node-{leader}")),
            &rogue_tls,
        )
        .unwrap();
        assert!(rogue_client.status().await.is_err());
        assert!(rogue_client.write(b"forged".to_vec()).await.is_err());
        assert!(rogue_client.read(0, 0).await.is_err());
        // ... and members refuse the rogue's server certificate.
        let to_rogue =
            RaftClient::connect(&url(rogue_addr), Some("node-4"), &cluster.configs[&1].tls)
                .unwrap();
        assert!(to_rogue.status().await.is_err());

        // Even added as a learner by the leader, it receives nothing.
        cluster.nodes[&leader]
            .raft()
            .add_learner(
                4,
                fedids_raft::openraft::BasicNode {
                    addr: url(rogue_addr),
                },
                false,
            )
            .await
            .unwrap();
        for i in 1..4 {
            cluster.nodes[&leader].write(entry(i)).await.unwrap();
        }
        cluster.converge(4).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(rogue.entries(0).unwrap().is_empty());
        // The rogue cannot write through the cluster either.
        assert!(rogue.write(b"forged".to_vec()).await.is_err());
        for node in cluster.nodes.values() {
            assert_eq!(
                node.entries(0).unwrap(),
                (0..4).map(entry).collect::<Vec<_>>()
            );
        }
        rogue.shutdown().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_node_catches_up_from_snapshot() {
    bounded(async {
        let mut cluster = Cluster::start_with(3, |c| c.snapshot_every = 10).await;
        let leader = cluster.leader().await;
        for i in 0..5 {
            cluster.nodes[&leader].write(entry(i)).await.unwrap();
        }
        cluster.converge(5).await;
        let lagging = (1..=3).find(|i| *i != leader).unwrap();
        cluster.stop(lagging).await;
        for i in 5..45 {
            cluster.nodes[&leader].write(entry(i)).await.unwrap();
        }
        cluster.converge(45).await;
        // The leader snapshotted and purged the log the lagging node misses.
        let purged = loop {
            let m = cluster.nodes[&leader].raft().metrics().borrow().clone();
            if let Some(p) = m.purged {
                break p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(purged.index > 10, "purged up to {purged:?}");

        cluster.restart(lagging).await;
        let entries = cluster.converge(45).await;
        assert_eq!(entries, (0..45).map(entry).collect::<Vec<_>>());
        let m = cluster.nodes[&lagging].raft().metrics().borrow().clone();
        assert!(
            m.snapshot.is_some(),
            "the lagging node installed a snapshot"
        );

        // Restarted again, it starts from its installed snapshot and stored entries.
        cluster.stop(lagging).await;
        cluster.restart(lagging).await;
        assert_eq!(cluster.nodes[&lagging].entries(0).unwrap().len(), 45);
        let leader = cluster.leader().await;
        cluster.nodes[&leader].write(entry(45)).await.unwrap();
        cluster.converge(46).await;
        cluster.shutdown().await;
    })
    .await;
}
