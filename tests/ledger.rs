//! The replicated ledger with real processes on 127.0.0.1: three `fedids node` processes (Raft
//! over mutual-TLS gRPC, redb), written to and audited with `fedids ledger`.
//!
//! Each test bounds its own time and kills its processes on drop.

mod util;

use std::time::{Duration, Instant};

use serde_json::Value;
use util::{s, Dir, Nodes, Proc};

/// The three nodes, with the ledger commands that read them.
struct Cluster(Nodes);

impl std::ops::Deref for Cluster {
    type Target = Nodes;
    fn deref(&self) -> &Nodes {
        &self.0
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Nodes {
        &mut self.0
    }
}

impl Cluster {
    /// A PKI (coordinator, two sites, three nodes) and three running nodes, node 1 bootstrapping.
    fn start() -> Cluster {
        let dir = Dir::new();
        util::pki(
            &dir,
            &[
                "coordinator",
                "site-a",
                "site-b",
                "node-1",
                "node-2",
                "node-3",
            ],
        );
        Cluster(Nodes::start(dir, |_| {
            vec!["--heartbeat-ms".to_string(), "100".to_string()]
        }))
    }

    /// `fedids ledger SUB --pki pki --name NAME --node URLS EXTRA...`
    fn ledger(&self, sub: &str, name: &str, urls: &str, extra: &[&str]) -> std::process::Output {
        let mut args = vec![
            "ledger", sub, "--pki", "pki", "--name", name, "--node", urls,
        ];
        args.extend_from_slice(extra);
        self.dir.run(&args)
    }

    fn ok(&self, sub: &str, name: &str, urls: &str, extra: &[&str]) -> String {
        let out = self.ledger(sub, name, urls, extra);
        assert!(
            out.status.success(),
            "ledger {sub} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn refused(&self, sub: &str, name: &str, urls: &str, extra: &[&str]) -> String {
        let out = self.ledger(sub, name, urls, extra);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "ledger {sub}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    /// Heads of the given nodes, waiting (bounded) until they all hold `size` records.
    fn heads(&self, ids: &[usize], size: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.ledger("heads", "site-a", &self.urls(ids), &["--json"]);
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                let heads = v["heads"].as_array().unwrap().clone();
                if heads.iter().all(|h| h["size"] == size) {
                    return heads;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nodes {ids:?} did not reach {size} records: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The coordinator's genesis, registering `sites` and the three nodes.
    fn genesis(&self, sites: &str) {
        let nodes = "node-1,node-2,node-3";
        self.ok(
            "genesis",
            "coordinator",
            &self.urls(&[1, 2, 3]),
            &["--federation", "plants", "--sites", sites, "--nodes", nodes],
        );
    }

    fn publish(&self, name: &str, bundle: &str) -> String {
        let path = self.dir.write(
            &format!("{bundle}.json"),
            format!("{{\"objects\":[\"{bundle}\"]}}").as_bytes(),
        );
        self.ok(
            "publish",
            name,
            &self.urls(&[1, 2, 3]),
            &["--bundle", s(&path)],
        )
    }
}

#[test]
fn the_ledger_survives_its_leader_and_every_node_holds_the_same_heads() {
    let mut c = Cluster::start();
    c.genesis("site-a,site-b");
    c.publish("site-a", "first");
    c.publish("site-b", "second");
    let heads = c.heads(&[1, 2, 3], 8);
    let leader = heads[0]["leader"].as_u64().expect("a leader") as usize;
    assert!(heads.iter().all(|h| h["root"] == heads[0]["root"]));

    // SIGKILL the leader; the survivors elect another and keep committing.
    c.nodes[leader - 1].as_mut().unwrap().kill();
    let survivors: Vec<usize> = (1..=3).filter(|&i| i != leader).collect();
    let out = c.ok(
        "publish",
        "site-a",
        &c.urls(&survivors),
        &[
            "--bundle",
            s(&c.dir.write("third.json", b"{\"objects\":[]}")),
        ],
    );
    assert!(out.contains("recorded publication"), "{out}");
    let heads = c.heads(&survivors, 9);
    let new_leader = heads[0]["leader"].as_u64().unwrap() as usize;
    assert_ne!(new_leader, leader, "a new leader was elected");
    assert_eq!(heads[0]["root"], heads[1]["root"]);

    // The killed node restarts from its store and catches up: identical heads everywhere, each
    // signed by its node.
    c.start_node(leader, false);
    let heads = c.heads(&[1, 2, 3], 9);
    for h in &heads {
        let signed = h["signed_head"].as_str().unwrap();
        assert!(
            signed.contains("signature and root verified") && signed.contains("signed by 'node-"),
            "{h}"
        );
    }
    assert!(
        heads.iter().all(|h| h["root"] == heads[0]["root"]),
        "{heads:?}"
    );

    // An export from any node verifies, and names a damaged record.
    let export = c.dir.path("ledger.fedl");
    c.ok("export", "site-a", &c.url(leader), &["--out", s(&export)]);
    let v = c
        .dir
        .json(&["ledger", "verify", "--file", s(&export), "--json"]);
    assert_eq!(v["records"], 9);
    assert_eq!(v["root"], heads[0]["root"]);
    assert_eq!(v["federation"], "plants");
    let mut bytes = std::fs::read(&export).unwrap();
    // Records are length-prefixed after the 8-byte magic: find record 7 and flip a byte in it.
    let mut at = 8;
    for _ in 0..7 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + len;
    }
    bytes[at + 4 + 40] ^= 0x01;
    let damaged = c.dir.write("damaged.fedl", &bytes);
    let err = c.dir.fails(&["ledger", "verify", "--file", s(&damaged)]);
    assert!(err.contains("entry 7:"), "{err}");
}

#[test]
fn bad_entries_are_refused_with_their_reason() {
    let c = Cluster::start();
    let all = c.urls(&[1, 2, 3]);
    c.genesis("site-a");
    c.publish("site-a", "bundle");
    let bundle = c.dir.path("bundle.json");
    // The same publication again: a replay.
    let err = c.refused("publish", "site-a", &all, &["--bundle", s(&bundle)]);
    assert!(err.contains("replayed content"), "{err}");
    // site-b holds a valid certificate but was never registered on the ledger.
    let err = c.refused("publish", "site-b", &all, &["--bundle", s(&bundle)]);
    assert!(err.contains("unknown author 'site-b'"), "{err}");
    // site-b signs, claiming to be site-a.
    let other = c.dir.write("other.json", b"{}");
    let err = c.refused(
        "publish",
        "site-b",
        &all,
        &["--bundle", s(&other), "--author", "site-a"],
    );
    assert!(err.contains("bad signature by 'site-a'"), "{err}");
    // A node may not publish intelligence.
    let err = c.refused("publish", "node-2", &all, &["--bundle", s(&other)]);
    assert!(
        err.contains("may not record this intel publication"),
        "{err}"
    );
    // Nothing refused reached the log.
    let heads = c.heads(&[1, 2, 3], 6);
    assert!(heads.iter().all(|h| h["root"] == heads[0]["root"]));
}

/// POSTs a TAXII envelope with basic auth over plain HTTP/1.0; returns the status line and body.
fn taxii_post(addr: &str, objects: &Value) -> (String, String) {
    use std::io::{Read, Write};
    let body = serde_json::json!({ "objects": objects }).to_string();
    let auth = {
        // Basic base64("analyst:s3cret").
        "YW5hbHlzdDpzM2NyZXQ="
    };
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "POST /fedids/collections/{}/objects/ HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/taxii+json;version=2.1\r\nAccept: application/taxii+json;version=2.1\r\nContent-Length: {}\r\n\r\n{body}",
        fedids_intel::taxii::COLLECTION_ID,
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[test]
fn taxii_publications_are_recorded_on_the_ledger() {
    let c = Cluster::start();
    let all = c.urls(&[1, 2, 3]);
    c.genesis("site-a");
    let mut taxii = Proc::start(
        &c.dir,
        "taxii",
        &[
            "taxii",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "taxii-store",
            "--user",
            "analyst",
            "--password",
            "s3cret",
            "--ledger-node",
            &all,
            "--ledger-pki",
            "pki",
            "--ledger-name",
            "site-a",
        ],
    );
    taxii.await_log("listening on http://", 1);
    let log = taxii.stderr();
    let addr = log
        .split("listening on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    let objects = serde_json::json!([{
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2026-11-23T10:00:00.000Z",
        "modified": "2026-11-23T10:00:00.000Z",
        "pattern": "[ipv4-addr:value = '198.51.100.7']",
        "pattern_type": "stix",
        "valid_from": "2026-11-23T10:00:00.000Z"
    }]);
    let (status, body) = taxii_post(&addr, &objects);
    assert!(status.contains("202"), "{status}\n{body}");
    // Genesis, four registrations, the publication.
    c.heads(&[1, 2, 3], 6);
    let export = c.dir.path("ledger.fedl");
    c.ok("export", "site-a", &c.url(2), &["--out", s(&export)]);
    let v = c
        .dir
        .json(&["ledger", "verify", "--file", s(&export), "--json"]);
    let p = &v["publications"][0];
    assert_eq!(p["author"], "site-a");
    assert_eq!(p["n_objects"], 1);
    assert_eq!(p["channel"], fedids_intel::taxii::COLLECTION_ID);
    use sha2::{Digest, Sha256};
    let want: String = Sha256::digest(objects.to_string())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(p["sha256"], want);
    // Posting the same objects again is idempotent: the ledger already holds the publication.
    let (status, body) = taxii_post(&addr, &objects);
    assert!(status.contains("202"), "{status}\n{body}");
    c.heads(&[1, 2, 3], 6);
    taxii.kill();
}

#[test]
fn a_federation_round_is_recorded_and_an_auditor_can_replay_it() {
    let c = Cluster::start();
    let all = c.urls(&[1, 2, 3]);
    c.genesis("site-a,site-b");
    // Two sites with 2,000 NSL-KDD flows each.
    util::deal_nsl_kdd(&c.dir, &["site-a", "site-b"], 2000);
    let ready = c.dir.path("ready.json");
    let mut coordinator = Proc::start(
        &c.dir,
        "coordinator",
        &[
            "coordinator",
            "--pki",
            "pki",
            "--sites",
            "site-a,site-b",
            "--listen",
            "127.0.0.1:0",
            "--ready-file",
            s(&ready),
            "--state",
            "cstate",
            "--trees-per-site",
            "10",
            "--ledger-node",
            &all,
            "--json",
        ],
    );
    let ready = util::wait_ready(&mut coordinator, &ready);
    let url = format!("https://{}", ready["grpc"].as_str().unwrap());
    let mut sites: Vec<Proc> = ["site-a", "site-b"]
        .iter()
        .map(|site| util::start_site(&c.dir, "pki", site, &url, &[]))
        .collect();
    let reports: Vec<Value> = sites.iter_mut().map(Proc::json).collect();
    let out = coordinator.json();
    let round = &out["rounds"][0];
    assert_eq!(round["phase"], "Merged", "{round}");
    assert!(coordinator
        .stderr()
        .contains("round recorded on the ledger"));

    // Genesis and five registrations, two signed contributions, one aggregation, and the two
    // sites' signed evaluations of the global model.
    c.heads(&[1, 2, 3], 11);
    let export = c.dir.path("ledger.fedl");
    c.ok("export", "site-a", &c.url(3), &["--out", s(&export)]);
    let global = c.dir.path("site-a-state/global.fedg");
    let v = c.dir.json(&[
        "ledger",
        "verify",
        "--file",
        s(&export),
        "--model",
        s(&global),
        "--replay",
        "cstate",
        "--json",
    ]);
    let checks = v["checks"].as_array().unwrap();
    assert!(checks[0]
        .as_str()
        .unwrap()
        .contains("is the recorded global model of round 1"));
    assert!(
        checks[1].as_str().unwrap().contains("matches the ledger"),
        "{checks:?}"
    );
    let trees: u64 = v["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["trees_accepted"].as_u64().unwrap())
        .sum();
    assert_eq!(trees, round["global"]["n_trees"].as_u64().unwrap());

    // Each site's contributions, from the export, agree with the global model; text or JSON.
    let v = c
        .dir
        .json(&["ledger", "contributions", "--file", s(&export), "--json"]);
    let contrib = v["contributions"].as_array().unwrap();
    let sites: Vec<&str> = contrib
        .iter()
        .map(|c| c["site"].as_str().unwrap())
        .collect();
    assert_eq!(sites, ["site-a", "site-b"], "{v}");
    let trees: u64 = contrib
        .iter()
        .map(|c| c["trees_accepted"].as_u64().unwrap())
        .sum();
    assert_eq!(trees, round["global"]["n_trees"].as_u64().unwrap());
    for (c, report) in contrib.iter().zip(&reports) {
        assert_eq!(c["models_contributed"], 1, "{c}");
        // What the site measured and signed is what the ledger derives.
        let e = &report[0]["evaluation"];
        assert_eq!(report[0]["evaluation_accepted"], true, "{report}");
        assert_eq!(c["evaluations"], 1, "{c}");
        assert_eq!(
            c["gain_received_ppm"].as_i64().unwrap(),
            e["global_accuracy_ppm"].as_i64().unwrap() - e["local_accuracy_ppm"].as_i64().unwrap(),
            "{c} {e}"
        );
        assert!(c["gain_brought_ppm"].is_i64(), "{c}");
    }
    // Each site's gain brought is what the other site's vote lost without its trees.
    for (i, c) in contrib.iter().enumerate() {
        let other = &reports[1 - i][0]["evaluation"];
        let without = other["without"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w[0] == c["site"])
            .unwrap()[1]
            .as_i64()
            .unwrap();
        assert_eq!(
            c["gain_brought_ppm"].as_i64().unwrap(),
            other["vote_accuracy_ppm"].as_i64().unwrap() - without,
            "{c} {other}"
        );
    }
    let text = c.dir.ok(&["ledger", "contributions", "--file", s(&export)]);
    assert!(text.contains("records verified"), "{text}");
    assert!(text.contains("gain brought"), "{text}");
    // A live node gives the same contributions.
    let live = c.ok("contributions", "site-b", &c.url(2), &["--json"]);
    let live: Value = serde_json::from_str(&live).unwrap();
    let accepted = |v: &Value| -> Vec<(String, u64)> {
        v["contributions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let site = c["site"].as_str().unwrap().to_string();
                (site, c["trees_accepted"].as_u64().unwrap())
            })
            .collect()
    };
    assert_eq!(accepted(&live), accepted(&v), "{live}");
    // With no source, or two, clap says what to give.
    let none = vec!["ledger", "contributions", "--json"];
    let both = vec![
        "ledger",
        "contributions",
        "--file",
        s(&export),
        "--pki",
        "pki",
        "--name",
        "site-a",
        "--node",
        &all,
    ];
    for args in [none, both] {
        let out = c.dir.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("--file <FILE>"), "{err}");
        assert!(err.contains("--node <NODE>"), "{err}");
    }

    // Inclusion and consistency proofs on request, checked here with an independent RFC 9162
    // verifier against the root `contributions` reports.
    let root = v["root"].as_str().unwrap().to_string();
    let p = c.dir.json(&[
        "ledger",
        "proof",
        "--file",
        s(&export),
        "--inclusion",
        "8",
        "--json",
    ]);
    assert_eq!(p["record"]["what"], "aggregation", "{p}");
    assert_eq!(p["root"], root.as_str(), "{p}");
    let path: Vec<[u8; 32]> = p["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect();
    let leaf = unhex(p["leaf_hash"].as_str().unwrap());
    assert!(rfc9162_inclusion(8, 11, leaf, &path, unhex(&root)));
    let mut bad = path.clone();
    bad[0][0] ^= 1;
    assert!(!rfc9162_inclusion(8, 11, leaf, &bad, unhex(&root)));
    let p = c.dir.json(&[
        "ledger",
        "proof",
        "--file",
        s(&export),
        "--consistency",
        "6",
        "--json",
    ]);
    assert_eq!(p["old_size"], 6);
    assert!(!p["proof"].as_array().unwrap().is_empty(), "{p}");
    let err = c
        .dir
        .fails(&["ledger", "proof", "--file", s(&export), "--inclusion", "11"]);
    assert!(err.contains("has records 0 to 10"), "{err}");

    // A model that is not the recorded one is named as such.
    let mut bytes = std::fs::read(&global).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    let other = c.dir.write("other.fedg", &bytes);
    let err = c.dir.fails(&[
        "ledger",
        "verify",
        "--file",
        s(&export),
        "--model",
        s(&other),
    ]);
    assert!(
        err.contains("is not the recorded output of any aggregation"),
        "{err}"
    );
}

#[test]
fn one_byte_changed_in_a_nodes_stored_ledger_is_named() {
    let mut c = Cluster::start();
    c.genesis("site-a");
    let marker = "marker-channel-7f3a";
    let bundle = c.dir.write("b.json", b"{\"objects\":[]}");
    c.ok(
        "publish",
        "site-a",
        &c.urls(&[1, 2, 3]),
        &["--bundle", s(&bundle), "--channel", marker],
    );
    c.heads(&[1, 2, 3], 6);
    // A stopped node's store verifies as it is.
    c.nodes[2].as_mut().unwrap().kill();
    let state = c.dir.path("state-3");
    let v = c
        .dir
        .json(&["ledger", "verify", "--state", s(&state), "--json"]);
    assert_eq!(v["records"], 6);
    // Change one byte of the publication inside the node's database file.
    flip_stored(&state, marker);
    let err = c.dir.fails(&["ledger", "verify", "--state", s(&state)]);
    assert!(
        err.contains("stored entry 5: bad signature by 'site-a'"),
        "{err}"
    );
}

#[test]
fn a_node_presenting_a_forked_history_is_named_by_its_peers() {
    let mut c = Cluster::start();
    c.genesis("site-a");
    let marker = "marker-channel-5c1e";
    let first = c.dir.write("first.json", b"{\"objects\":[1]}");
    let second = c.dir.write("second.json", b"{\"objects\":[2]}");
    let all = c.urls(&[1, 2, 3]);
    c.ok(
        "publish",
        "site-a",
        &all,
        &["--bundle", s(&first), "--channel", marker],
    );
    c.ok("publish", "site-a", &all, &["--bundle", s(&second)]);
    c.heads(&[1, 2, 3], 7);

    // Stop node 3 and change one byte of the first publication in its store: on restart its
    // ledger skips that entry, so the second publication sits at position 5 on node 3 alone.
    c.nodes[2].as_mut().unwrap().kill();
    // Opening the killed node's store once repairs it and closes it cleanly, so the node's
    // restart below reopens it without a checksum pass that would refuse the edited page.
    let state = c.dir.path("state-3");
    let v = c
        .dir
        .json(&["ledger", "verify", "--state", s(&state), "--json"]);
    assert_eq!(v["records"], 7);
    flip_stored(&state, marker);
    c.start_node(3, false);

    // Node 3 signs a 6-entry head whose root is not the others' root at 6: they name it.
    let needle = "presents a forked history";
    let deadline = Instant::now() + Duration::from_secs(30);
    let (who, line) = loop {
        let found = [1, 2].into_iter().find_map(|i| {
            let log = c.nodes[i - 1].as_ref().unwrap().stderr();
            log.lines()
                .find(|l| l.contains(needle))
                .map(|l| (i, l.to_string()))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no node logged '{needle}' in time:\nnode 1:\n{}\nnode 2:\n{}\nnode 3:\n{}",
            c.nodes[0].as_ref().unwrap().stderr(),
            c.nodes[1].as_ref().unwrap().stderr(),
            c.nodes[2].as_ref().unwrap().stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("'node-3'"), "{line}");
    assert!(line.contains(&c.url(3)), "{line}");
    assert!(line.contains("at size 6"), "{line}");

    // Logged once per peer and head, however often the peers are polled; and only about node 3:
    // node 3 itself sees longer heads it cannot judge yet (its own lag), not forks.
    std::thread::sleep(Duration::from_secs(3));
    let log = c.nodes[who - 1].as_ref().unwrap().stderr();
    assert_eq!(log.matches(needle).count(), 1, "{log}");
    for i in 1..=3 {
        let log = c.nodes[i - 1].as_ref().unwrap().stderr();
        assert!(
            log.lines()
                .filter(|l| l.contains(needle))
                .all(|l| l.contains("'node-3'")),
            "node {i}:\n{log}"
        );
        assert!(!log.contains("refused the tree head"), "node {i}:\n{log}");
    }
}

fn unhex(h: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// RFC 9162 section 2.1.3.2, written here independently of the crate under test.
fn rfc9162_inclusion(
    index: u64,
    size: u64,
    leaf: [u8; 32],
    path: &[[u8; 32]],
    root: [u8; 32],
) -> bool {
    use sha2::{Digest, Sha256};
    let node = |l: &[u8; 32], r: &[u8; 32]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    };
    if index >= size {
        return false;
    }
    let (mut f, mut sn, mut r) = (index, size - 1, leaf);
    for p in path {
        if sn == 0 {
            return false;
        }
        if f & 1 == 1 || f == sn {
            r = node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                sn >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == root
}

/// Flips a bit of every occurrence of `marker` in the stopped node's `raft.redb` under `state`.
fn flip_stored(state: &std::path::Path, marker: &str) {
    let db = state.join("raft.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    let needle = marker.as_bytes();
    let hits: Vec<usize> = (0..bytes.len() - needle.len())
        .filter(|&i| &bytes[i..i + needle.len()] == needle)
        .collect();
    assert!(!hits.is_empty(), "the entry is stored verbatim");
    for i in hits {
        bytes[i] ^= 0x01;
    }
    std::fs::write(&db, &bytes).unwrap();
}
