//! The federation over the network, with real processes on 127.0.0.1: a coordinator and site
//! processes of the `fedids` binary talking gRPC over mutual TLS.
//!
//! Every test bounds its own time (a process still running at its deadline is killed and the test
//! fails) and kills whatever it started when it ends, pass or fail.

mod util;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use util::{datasets, free_port, s, Dir, Proc, LIMIT};

/// A federation on disk: a PKI with a coordinator and three sites, and three non-IID site files
/// cut from NSL-KDD's KDDTrain+_20Percent (split by protocol, capped at 3000 rows each).
struct Fed {
    dir: Dir,
}

const SITES: [&str; 3] = ["site-1", "site-2", "site-3"];

impl Fed {
    fn new() -> Fed {
        let dir = Dir::new();
        dir.ok(&["pki", "init", "--dir", "pki"]);
        for name in ["coordinator"].iter().chain(&SITES) {
            dir.ok(&["pki", "issue", name, "--dir", "pki"]);
        }
        let text =
            std::fs::read_to_string(datasets().join("nsl-kdd/KDDTrain+_20Percent.txt")).unwrap();
        let mut files = [String::new(), String::new(), String::new()];
        let mut counts = [0usize; 3];
        for line in text.lines() {
            let site = match line.split(',').nth(1) {
                Some("tcp") => 0,
                Some("udp") => 1,
                _ => 2,
            };
            if counts[site] < 3000 {
                files[site].push_str(line);
                files[site].push('\n');
                counts[site] += 1;
            }
        }
        for (i, f) in files.iter().enumerate() {
            dir.write(&format!("site-{}.csv", i + 1), f.as_bytes());
        }
        Fed { dir }
    }

    /// Starts a coordinator on a free port; returns it once its ready file names the address.
    fn coordinator(&self, name: &str, extra: &[&str]) -> (Proc, String) {
        let (proc, ready) = self.coordinator_ready(name, extra);
        (proc, ready["grpc"].as_str().unwrap().to_string())
    }

    /// [`Fed::coordinator`], returning the whole ready file (gRPC and metrics addresses).
    fn coordinator_ready(&self, name: &str, extra: &[&str]) -> (Proc, Value) {
        let ready = self.dir.path(&format!("{name}.ready"));
        let _ = std::fs::remove_file(&ready);
        let mut args = vec![
            "coordinator",
            "--pki",
            "pki",
            "--state",
            "cstate",
            "--ready-file",
            s(&ready),
            "--trees-per-site",
            "10",
            "--json",
        ];
        if !extra.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        args.extend_from_slice(extra);
        let mut proc = Proc::start(&self.dir, name, &args);
        let ready = util::wait_ready(&mut proc, &ready);
        (proc, ready)
    }

    fn site(&self, site: &str, addr: &str, extra: &[&str]) -> Proc {
        self.site_with_pki(site, addr, "pki", extra)
    }

    fn site_with_pki(&self, site: &str, addr: &str, pki: &str, extra: &[&str]) -> Proc {
        util::start_site(&self.dir, pki, site, &format!("https://{addr}"), extra)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }
}

fn sha256_hex(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `GET /metrics` over plain HTTP/1.0.
fn scrape(addr: &str) -> String {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(conn, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    text
}

#[test]
fn three_sites_complete_a_round_and_agree_on_the_signed_global_model() {
    let fed = Fed::new();
    let (mut coordinator, addr) = fed.coordinator("coordinator", &["--join-timeout", "60s"]);
    let mut sites: Vec<Proc> = SITES.iter().map(|s| fed.site(s, &addr, &[])).collect();
    let reports: Vec<Value> = sites.iter_mut().map(|p| p.json()).collect();
    let out = coordinator.json();
    let round = &out["rounds"][0];
    assert_eq!(round["id"], 1);
    assert_eq!(round["phase"], "Merged", "{round}");
    let global = &round["global"];
    assert_eq!(global["merged_sites"], serde_json::json!(SITES));
    assert!(round["missing"].as_object().unwrap().is_empty(), "{round}");
    let hash = global["hash"].as_str().unwrap();
    for (site, report) in SITES.iter().zip(&reports) {
        let r = &report[0];
        assert_eq!(r["site"], *site);
        assert_eq!(r["global_sha256"], hash, "{site} verified another model");
        // The model each site swapped in is the file it wrote.
        assert_eq!(
            sha256_hex(&fed.path(&format!("{site}-state/global.fedg"))),
            hash
        );
        assert_eq!(r["global_trees"], global["n_trees"]);
        let local = r["local"]["accuracy"].as_f64().unwrap();
        let glob = r["global"]["accuracy"].as_f64().unwrap();
        assert!(
            local > 0.5 && glob > 0.5,
            "{site}: local {local}, global {glob}"
        );
    }
    // The coordinator's durable report matches what it printed.
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(fed.path("cstate/round-1.json")).unwrap())
            .unwrap();
    assert_eq!(&saved, round);
    // Bytes on the wire cover at least the models that crossed it.
    let model_bytes: u64 = SITES
        .iter()
        .map(|s| round["uploads"][s]["n_bytes"].as_u64().unwrap())
        .sum();
    assert!(
        out["wire"]["received"].as_u64().unwrap() > model_bytes,
        "{out}"
    );
    let global_bytes = round["global"]["n_bytes"].as_u64().unwrap();
    assert!(
        out["wire"]["sent"].as_u64().unwrap() > 3 * global_bytes,
        "{out}"
    );
    // Every upload was verified: hash and signature recorded per site.
    for site in SITES {
        assert_eq!(
            round["uploads"][site]["signature"].as_str().unwrap().len(),
            128
        );
    }
    let log = coordinator.stderr();
    assert_eq!(log.matches("model accepted").count(), 3, "{log}");
    // The global model works with the rest of the CLI.
    let eval = fed.dir.json(&[
        "eval",
        "--model",
        "site-1-state/global.fedg",
        "--data",
        "site-2.csv",
        "--json",
        "--quiet",
    ]);
    assert!(
        eval["metrics"]["accuracy"].as_f64().unwrap() > 0.5,
        "{eval}"
    );
}

#[test]
fn a_site_that_dies_mid_round_is_named_and_the_round_completes_with_min_sites() {
    let fed = Fed::new();
    let (mut coordinator, ready) = fed.coordinator_ready(
        "coordinator",
        &[
            "--min-sites",
            "2",
            "--scoring-timeout",
            "4s",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let addr = ready["grpc"].as_str().unwrap().to_string();
    let metrics_addr = ready["metrics"].as_str().unwrap().to_string();
    // site-3 uploads, then its process exits before it scores anything.
    let mut dying = fed.site("site-3", &addr, &["--fault", "exit-after-upload"]);
    let mut survivors: Vec<Proc> = ["site-1", "site-2"]
        .iter()
        .map(|s| fed.site(s, &addr, &[]))
        .collect();
    assert_eq!(dying.wait(LIMIT).code(), Some(3), "{}", dying.stderr());
    coordinator.await_log("model accepted", 3);
    let metrics = scrape(&metrics_addr);
    assert!(
        metrics.contains("fedids_uploads_accepted_total 3"),
        "{metrics}"
    );
    assert!(metrics.contains("fedids_sites_joined 3"), "{metrics}");
    assert!(
        !metrics.contains("fedids_received_bytes_total 0\n"),
        "{metrics}"
    );
    for p in &mut survivors {
        let report = p.json();
        assert_eq!(report[0]["round"], 1);
    }
    let out = coordinator.json();
    let round = &out["rounds"][0];
    assert_eq!(round["phase"], "Merged", "{round}");
    assert_eq!(
        round["global"]["merged_sites"],
        serde_json::json!(["site-1", "site-2"])
    );
    assert_eq!(
        round["missing"]["site-3"],
        "uploaded, but sent no scores before the deadline"
    );
}

#[test]
fn too_few_sites_fail_the_round_naming_the_missing_ones() {
    let fed = Fed::new();
    let (mut coordinator, addr) =
        fed.coordinator("coordinator", &["--min-sites", "2", "--join-timeout", "8s"]);
    let mut lone = fed.site("site-1", &addr, &["--timeout", "10s"]);
    let err = coordinator.fails();
    assert!(
        err.contains("1 of 3 sites joined") && err.contains("missing: site-2, site-3"),
        "{err}"
    );
    lone.kill();
}

#[test]
fn a_killed_coordinator_restarts_and_completes_the_round_without_losing_uploads() {
    let fed = Fed::new();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    // The round opens with two sites; the third joins after the crash.
    let common = [
        "--listen",
        &listen,
        "--join-timeout",
        "8s",
        "--min-sites",
        "2",
    ];
    let (mut first, addr) = fed.coordinator("coordinator-1", &common);
    let mut sites: Vec<Proc> = ["site-1", "site-2"]
        .iter()
        .map(|s| fed.site(s, &addr, &[]))
        .collect();
    first.await_log("model accepted", 2);
    // SIGKILL: no chance to flush anything that was not already committed.
    first.kill();
    let (mut second, addr2) = fed.coordinator("coordinator-2", &common);
    assert_eq!(addr, addr2);
    second.await_log("resuming round from the store", 1);
    assert!(second.stderr().contains("uploads=2"), "{}", second.stderr());
    let mut late = fed.site("site-3", &addr, &[]);
    let mut reports: Vec<Value> = sites.iter_mut().map(|p| p.json()).collect();
    reports.push(late.json());
    let out = second.json();
    let round = &out["rounds"][0];
    assert_eq!(round["phase"], "Merged", "{round}");
    assert_eq!(round["global"]["merged_sites"], serde_json::json!(SITES));
    // The two uploads from before the crash were not sent again: the restarted coordinator
    // accepted only site-3's.
    assert_eq!(second.stderr().matches("model accepted").count(), 1);
    let hash = round["global"]["hash"].as_str().unwrap();
    for r in &reports {
        assert_eq!(r[0]["global_sha256"], hash);
    }
}

#[test]
fn a_site_with_a_certificate_from_another_ca_is_refused() {
    let fed = Fed::new();
    // An intruder's PKI: its own CA and a "site-1" certificate, plus the real CA certificate and
    // the coordinator's verifying key, so that only its own identity is foreign.
    fed.dir.ok(&["pki", "init", "--dir", "other"]);
    fed.dir.ok(&["pki", "issue", "site-1", "--dir", "other"]);
    std::fs::copy(fed.path("pki/ca.pem"), fed.path("other/ca.pem")).unwrap();
    std::fs::copy(
        fed.path("pki/sites/coordinator.sign.pub"),
        fed.path("other/sites/coordinator.sign.pub"),
    )
    .unwrap();
    let (mut coordinator, addr) = fed.coordinator("coordinator", &["--join-timeout", "60s"]);
    let mut intruder = fed.site_with_pki("site-1", &addr, "other", &["--timeout", "20s"]);
    let err = intruder.fails();
    assert!(err.contains("site 'site-1': join refused"), "{err}");
    assert!(err.contains("TLS connection was refused"), "{err}");
    coordinator.await_log("tls handshake refused", 1);
    let log = coordinator.stderr();
    // rustls names the failed check (the CA names match here, so the signature check fails).
    assert!(log.contains("invalid peer certificate"), "{log}");
    assert!(!log.contains("site joined"), "{log}");
    coordinator.kill();
}

#[test]
fn a_tampered_model_is_refused_and_the_site_is_told_why() {
    let fed = Fed::new();
    let (mut coordinator, addr) = fed.coordinator("coordinator", &["--sites", "site-1"]);
    let mut tamperer = fed.site("site-1", &addr, &["--fault", "tamper-upload"]);
    let err = tamperer.fails();
    assert!(
        err.contains("upload refused: model refused: model hash mismatch"),
        "{err}"
    );
    let log = coordinator.stderr();
    assert!(log.contains("upload refused"), "{log}");
    assert!(!log.contains("model accepted"), "{log}");
    coordinator.kill();
}

#[test]
fn rounds_run_back_to_back_and_every_site_takes_part_in_each() {
    let fed = Fed::new();
    let (mut coordinator, addr) = fed.coordinator(
        "coordinator",
        &["--sites", "site-1,site-2", "--rounds", "2"],
    );
    let mut sites: Vec<Proc> = ["site-1", "site-2"]
        .iter()
        .map(|s| fed.site(s, &addr, &["--rounds", "2"]))
        .collect();
    let reports: Vec<Value> = sites.iter_mut().map(|p| p.json()).collect();
    let out = coordinator.json();
    let rounds = out["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    for (i, round) in rounds.iter().enumerate() {
        assert_eq!(round["id"], i + 1);
        assert_eq!(round["phase"], "Merged", "{round}");
        for r in &reports {
            assert_eq!(r[i]["round"], i + 1);
            assert_eq!(r[i]["global_sha256"], round["global"]["hash"]);
        }
    }
    // A fresh nonce per round: round 1's signatures are worthless in round 2.
    assert_ne!(rounds[0]["nonce"], rounds[1]["nonce"]);
}
