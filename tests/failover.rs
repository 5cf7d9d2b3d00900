//! The federation without a single coordinator, with real processes on 127.0.0.1: three
//! `fedids node --federation-listen` processes (Raft over mutual TLS, redb), whichever leads
//! holds the coordinator's role; three `fedids site` processes that know every node.
//!
//! The leader is SIGKILLed in the middle of a round; the test bounds its own time and kills its
//! processes on drop.

mod util;

use std::time::{Duration, Instant};

use serde_json::Value;
use util::{free_port, s, Dir, Nodes, Proc};

const SITES: [&str; 3] = ["site-a", "site-b", "site-c"];

/// The three nodes, each serving the federation protocol on a port of its own.
struct Federation {
    cluster: Nodes,
    fed_ports: Vec<u16>,
}

impl std::ops::Deref for Federation {
    type Target = Nodes;
    fn deref(&self) -> &Nodes {
        &self.cluster
    }
}

impl std::ops::DerefMut for Federation {
    fn deref_mut(&mut self) -> &mut Nodes {
        &mut self.cluster
    }
}

impl Federation {
    fn start() -> Federation {
        let dir = Dir::new();
        let names: Vec<&str> = ["coordinator", "node-1", "node-2", "node-3"]
            .into_iter()
            .chain(SITES)
            .collect();
        util::pki(&dir, &names);
        // 2,000 NSL-KDD flows per site.
        util::deal_nsl_kdd(&dir, &SITES, 2000);
        let fed_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let ports = fed_ports.clone();
        let cluster = Nodes::start(dir, move |i| {
            [
                "--heartbeat-ms",
                "200",
                "--federation-listen",
                &format!("127.0.0.1:{}", ports[i - 1]),
                "--sites",
                "site-a,site-b,site-c",
                "--trees-per-site",
                "10",
                // The round opens with the two sites that joined; it waits for the third's
                // upload.
                "--join-timeout",
                "2s",
                "--min-sites",
                "2",
                "--upload-timeout",
                "90s",
                "--scoring-timeout",
                "60s",
                "--fetch-grace",
                "5s",
            ]
            .iter()
            .map(|a| a.to_string())
            .collect()
        });
        Federation { cluster, fed_ports }
    }

    fn raft_urls(&self) -> String {
        self.urls(&[1, 2, 3])
    }

    fn start_site(&self, site: &str) -> Proc {
        let urls: Vec<String> = self
            .fed_ports
            .iter()
            .map(|p| format!("https://127.0.0.1:{p}"))
            .collect();
        util::start_site(
            &self.dir,
            "pki",
            site,
            &urls.join(","),
            &[
                "--coordinator-name",
                "node-1,node-2,node-3",
                "--timeout",
                "100s",
            ],
        )
    }

    /// `fedids ledger heads` of every node, waiting (bounded) until they all hold `size` records.
    fn heads(&self, size: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.dir.run(&[
                "ledger",
                "heads",
                "--pki",
                "pki",
                "--name",
                "site-a",
                "--node",
                &self.raft_urls(),
                "--json",
            ]);
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                if v["heads"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|h| h["size"] == size)
                {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the nodes did not reach {size} records: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn the_leader_killed_mid_round_and_the_round_completes_on_the_new_leader() {
    let mut f = Federation::start();
    f.genesis();
    f.coordinating_now();

    // Two sites join and upload; the round waits for the third until its upload deadline.
    let mut sites = vec![f.start_site("site-a"), f.start_site("site-b")];
    f.await_uploads(2);
    // The node coordinating now (on a loaded machine leadership may have moved since).
    let first = f.coordinating_now();
    let log_before = f.nodes[first - 1].as_ref().unwrap().stderr();
    f.nodes[first - 1] = None; // SIGKILL, on drop

    // A new leader takes the role from the replicated round state; the third site arrives.
    sites.push(f.start_site("site-c"));
    let reports: Vec<Value> = sites.iter_mut().map(Proc::json).collect();
    let logs: String = f.nodes.iter().flatten().map(Proc::stderr).collect();
    assert!(
        logs.lines()
            .any(|l| l.contains("resuming round from the store") && l.contains("uploads=2")),
        "no surviving node resumed the round with both uploads:\n{logs}"
    );
    assert!(
        !log_before.contains("global model signed"),
        "the round finished before the kill"
    );
    let hashes: Vec<&str> = reports
        .iter()
        .map(|r| r[0]["global_sha256"].as_str().unwrap())
        .collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    for (site, r) in SITES.iter().zip(&reports) {
        assert_eq!(r[0]["round"], 1, "{site}: {r}");
        assert_eq!(r[0]["evaluation_accepted"], true, "{site}: {r}");
        assert!(
            r[0]["global"]["accuracy"].as_f64().unwrap() > 0.8,
            "{site}: {r}"
        );
    }
    for site in &sites[..2] {
        assert!(
            site.stderr().contains("trying the next coordinator node"),
            "{} never moved to another node:\n{}",
            site.name,
            site.stderr()
        );
    }

    // The killed node comes back and catches up: genesis, 6 registrations, 3 contributions,
    // 1 aggregation and 3 evaluations on every node, with identical heads.
    f.start_node(first, false);
    let v = f.heads(14);
    let roots: Vec<&Value> = v["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["root"])
        .collect();
    assert!(roots.iter().all(|r| *r == roots[0]), "{v}");
    assert_eq!(v["forks"].as_array().unwrap().len(), 0, "{v}");
    for h in v["heads"].as_array().unwrap() {
        let signed = h["signed_head"].as_str().unwrap();
        assert!(signed.contains("signature and root verified"), "{h}");
    }

    // Each site's contribution, read from a node: one model, one evaluation, and the validation
    // gains derived from the sites' signed evaluations.
    let v = f.dir.json(&[
        "ledger",
        "contributions",
        "--pki",
        "pki",
        "--name",
        "site-a",
        "--node",
        &f.url(first),
        "--json",
    ]);
    let contrib = v["contributions"].as_array().unwrap();
    assert_eq!(contrib.len(), 3, "{v}");
    for c in contrib {
        assert_eq!(c["models_contributed"], 1, "{c}");
        assert_eq!(c["evaluations"], 1, "{c}");
        assert!(
            c["gain_brought_ppm"].is_i64() && c["gain_received_ppm"].is_i64(),
            "{c}"
        );
    }

    // Every node's ledger verifies, and the sites' global model is the recorded aggregation.
    for i in 1..=3 {
        let export = f.dir.path(&format!("ledger-{i}.fedl"));
        f.dir.ok(&[
            "ledger",
            "export",
            "--pki",
            "pki",
            "--name",
            "site-b",
            "--node",
            &f.url(i),
            "--out",
            s(&export),
        ]);
        let out = f.dir.json(&[
            "ledger",
            "verify",
            "--file",
            s(&export),
            "--model",
            "site-c-state/global.fedg",
            "--json",
        ]);
        let checks = out["checks"].as_array().unwrap();
        assert!(
            checks[0]
                .as_str()
                .unwrap()
                .contains("is the recorded global model of round 1"),
            "node-{i}: {out}"
        );
    }
}

impl Federation {
    /// The genesis: three sites, and the three nodes as authorities (they coordinate).
    fn genesis(&self) {
        self.dir.ok(&[
            "ledger",
            "genesis",
            "--pki",
            "pki",
            "--name",
            "coordinator",
            "--node",
            &self.raft_urls(),
            "--federation",
            "plants",
            "--sites",
            "site-a,site-b,site-c",
            "--authorities",
            "node-1,node-2,node-3",
        ]);
    }

    /// Waits (bounded) until the nodes accepted `n` uploads in all.
    fn await_uploads(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let accepted: usize = self
                .nodes
                .iter()
                .flatten()
                .map(|p| p.stderr().matches("upload accepted").count())
                .sum();
            if accepted >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{accepted} of {n} uploads accepted"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node holding the coordinator's role now: it took the role and has not lost it since
    /// (waits, bounded, for one).
    fn coordinating_now(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let holders: Vec<usize> = (0..3)
                .filter(|&i| {
                    self.nodes[i].as_ref().is_some_and(|p| {
                        let log = p.stderr();
                        let taken = log.rfind("coordinator role taken");
                        taken.is_some() && taken > log.rfind("leadership lost")
                    })
                })
                .collect();
            if let [one] = holders[..] {
                return one + 1;
            }
            assert!(
                Instant::now() < deadline,
                "holders of the role: {holders:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_leader_cut_off_from_its_followers_commits_nothing_until_they_return() {
    let mut f = Federation::start();
    f.genesis();
    let leader = f.coordinating_now();
    // Both followers die: the leader is a minority of one.
    for i in (1..=3).filter(|&i| i != leader) {
        f.nodes[i - 1] = None; // SIGKILL, on drop
    }
    let mut sites: Vec<Proc> = SITES.iter().map(|s| f.start_site(s)).collect();
    // The sites join, but no round can be opened: nothing commits without a majority.
    std::thread::sleep(Duration::from_secs(8));
    let log = f.nodes[leader - 1].as_ref().unwrap().stderr();
    assert!(log.contains("site joined"), "{log}");
    assert!(
        !log.contains("round opened"),
        "a round opened without a quorum:\n{log}"
    );
    for site in &mut sites {
        assert!(
            site.child.try_wait().unwrap().is_none(),
            "{} gave up",
            site.name
        );
    }

    // The followers return: the round opens, completes, and every node holds it.
    for i in (1..=3).filter(|&i| i != leader) {
        f.start_node(i, false);
    }
    let reports: Vec<Value> = sites.iter_mut().map(Proc::json).collect();
    let hashes: Vec<&str> = reports
        .iter()
        .map(|r| r[0]["global_sha256"].as_str().unwrap())
        .collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    let v = f.heads(14);
    assert_eq!(v["forks"].as_array().unwrap().len(), 0, "{v}");
}

#[test]
fn a_coordinating_node_must_be_told_its_sites() {
    let dir = Dir::new();
    dir.ok(&["pki", "init", "--dir", "pki"]);
    dir.ok(&["pki", "issue", "node-1", "--dir", "pki"]);
    let err = dir.fails(&[
        "node",
        "--pki",
        "pki",
        "--name",
        "node-1",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--peers",
        "1=https://127.0.0.1:1",
        "--state",
        "state",
        "--federation-listen",
        "127.0.0.1:0",
    ]);
    assert!(err.contains("--federation-listen needs --sites"), "{err}");

    // A site given several nodes needs one certificate name per node.
    dir.ok(&["pki", "issue", "site-a", "--dir", "pki"]);
    dir.write("a.csv", b"");
    let err = dir.fails(&[
        "site",
        "--pki",
        "pki",
        "--name",
        "site-a",
        "--data",
        "a.csv",
        "--coordinator",
        "https://127.0.0.1:1,https://127.0.0.1:2",
        "--coordinator-name",
        "node-1",
    ]);
    assert!(err.contains("give one name per URL"), "{err}");
}
