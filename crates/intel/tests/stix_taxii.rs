//! The STIX builders against the OASIS validator, and the TAXII server against the
//! `taxii2-client` package, both from PyPI (installed in a venv by the test itself).

#[path = "../../../tests/support/python.rs"]
mod python;

use std::net::IpAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::Digest;

use fedids_detect::{Incident, ThreatKind, Timestamp};
use fedids_intel::taxii::{self, Credentials};
use fedids_intel::{stix_bundle, StixOptions, Tlp};

/// Records what the publish hook is told.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, usize)>>);

impl taxii::PublishHook for Recorder {
    fn published(
        &self,
        p: taxii::Publication,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        let hex: String = p.sha256.iter().map(|b| format!("{b:02x}")).collect();
        self.0.lock().unwrap().push((hex, p.ids.len()));
        Box::pin(async { Ok(()) })
    }
}

fn incidents() -> Vec<Incident> {
    let kinds = [
        ("DoS", ThreatKind::DenialOfService),
        ("PortScan", ThreatKind::Reconnaissance),
        ("FTP-Patator", ThreatKind::BruteForce),
        ("R2L", ThreatKind::RemoteAccess),
        ("U2R", ThreatKind::PrivilegeEscalation),
        ("Web Attack - XSS", ThreatKind::WebAttack),
        ("Exploits", ThreatKind::Exploit),
        ("Bot", ThreatKind::Malware),
        ("attack", ThreatKind::Other),
    ];
    kinds
        .iter()
        .enumerate()
        .map(|(i, (class, threat))| {
            let src: IpAddr = if i % 3 == 2 {
                format!("2001:db8::{}", i + 1).parse().unwrap()
            } else {
                format!("203.0.113.{}", i + 1).parse().unwrap()
            };
            Incident {
                id: format!("00000000-0000-5000-8000-00000000000{i}"),
                class: class.to_string(),
                threat: *threat,
                severity: threat.severity(),
                src_ip: Some(src),
                dest_ip: (i % 2 == 0).then(|| "192.0.2.1".parse().unwrap()),
                dest_ports: if i % 4 == 0 { vec![80] } else { vec![21, 22] },
                n_dest_ports: 1,
                protos: if i == 1 { vec![] } else { vec!["TCP".into()] },
                first_seen: Timestamp::from_secs(1_600_000_000 + i as i64),
                last_seen: Timestamp::from_secs(1_600_000_100 + i as i64),
                n_alerts: 10 + i as u64,
                max_probability: 0.75,
                model_sha256: "cd".repeat(32),
            }
        })
        .collect()
}

fn bundle(tlp: Tlp) -> serde_json::Value {
    stix_bundle(
        &incidents(),
        &StixOptions {
            site: "plant-b".into(),
            tlp,
            indicator_valid_secs: 3600,
        },
    )
    .bundle
}

#[test]
fn every_bundle_passes_the_oasis_validator() {
    let dir = tempfile::tempdir().unwrap();
    for tlp in [Tlp::White, Tlp::Green, Tlp::Amber, Tlp::Red] {
        let path = dir.path().join(format!("bundle-{}.json", tlp.name()));
        std::fs::write(&path, serde_json::to_string_pretty(&bundle(tlp)).unwrap()).unwrap();
        python::validate_stix(&path);
    }
    // An empty bundle too (identity and marking only).
    let empty = stix_bundle(
        &[],
        &StixOptions {
            site: "plant-b".into(),
            tlp: Tlp::Amber,
            indicator_valid_secs: 1,
        },
    );
    let path = dir.path().join("empty.json");
    std::fs::write(&path, empty.bundle.to_string()).unwrap();
    python::validate_stix(&path);
}

const CLIENT: &str = r#"
import json, sys
import requests
from taxii2client.v21 import Server, as_pages
url, user, password, bundle_path = sys.argv[1:5]
objects = json.load(open(bundle_path))["objects"]

# Authentication is required.
try:
    Server(url + "/taxii2/", user=user, password="wrong").refresh()
    sys.exit("a wrong password was accepted")
except requests.exceptions.HTTPError as e:
    assert e.response.status_code == 401, e.response.status_code

server = Server(url + "/taxii2/", user=user, password=password)
assert server.title, "discovery has a title"
root = server.default
assert root is not None and root.versions == ["application/taxii+json;version=2.1"], root.versions
[coll] = root.collections
assert coll.can_read and coll.can_write

status = coll.add_objects({"objects": objects})
assert status.status == "complete", status.status
assert status.success_count == len(objects) and status.failure_count == 0, (status.success_count, status.failure_count)
again = root.get_status(status.id)
assert again.status == "complete" and again.total_count == len(objects)

# Publishing the same objects again stores nothing twice.
coll.add_objects({"objects": objects[:3]})

pages = list(as_pages(coll.get_objects, per_request=4))
got = [o for p in pages for o in p.get("objects", [])]
assert len(pages) == (len(objects) + 3) // 4, len(pages)
assert [o["id"] for o in got] == [o["id"] for o in objects], "every object once, in the order added"

indicators = coll.get_objects(type="indicator")["objects"]
want = [o for o in objects if o["type"] == "indicator"]
assert [o["id"] for o in indicators] == [o["id"] for o in want]
one = coll.get_objects(id=want[0]["id"])["objects"]
assert one == [want[0]], one
several = coll.get_objects(type=["indicator", "sighting"], limit=2)
assert len(several["objects"]) == 2 and several["more"] is True and several["next"]
assert coll.get_object(want[0]["id"])["objects"] == [want[0]]
assert coll.get_objects(added_after="2100-01-01T00:00:00Z").get("objects", []) == []
assert len(coll.get_objects(added_after="2000-01-01T00:00:00Z")["objects"]) == len(objects)
manifest = coll.get_manifest(type="identity")["objects"]
assert len(manifest) == 1 and manifest[0]["media_type"] == "application/stix+json;version=2.1"
print("taxii ok:", len(got), "objects in", len(pages), "pages")
"#;

#[test]
fn taxii2_client_publishes_and_fetches() {
    let py = python::python();
    let dir = tempfile::tempdir().unwrap();
    let bundle_path = dir.path().join("bundle.json");
    let bundle = bundle(Tlp::Amber);
    std::fs::write(&bundle_path, bundle.to_string()).unwrap();
    let store = dir.path().join("store");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hook = Arc::new(Recorder::default());
    let router = taxii::router_with_hook(
        &store,
        Credentials {
            user: "site".into(),
            password: "s3cret".into(),
        },
        "test server",
        Some(hook.clone()),
    )
    .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(taxii::serve(listener, router, async {
        let _ = stop_rx.await;
    }));
    let mut child = Command::new(&py)
        .arg("-c")
        .arg(CLIENT)
        .arg(format!("http://{addr}"))
        .args(["site", "s3cret"])
        .arg(&bundle_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded in time: the client gets 120 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the taxii2-client script did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let _ = stop_tx.send(());
    runtime.block_on(server).unwrap().unwrap();
    assert!(
        out.status.success(),
        "taxii2-client script failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The ledger extension point saw both POSTs, with the hash of what was posted.
    let seen = hook.0.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let objects = bundle["objects"].as_array().unwrap();
    let want = sha2::Sha256::digest(serde_json::Value::Array(objects.clone()).to_string());
    let want: String = want.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(seen[0].0, want);
    assert_eq!(seen[0].1, objects.len());
    assert_eq!(seen[1].1, 3);
    // Persistence: a new server over the same store serves the same objects.
    let text = std::fs::read_to_string(store.join("objects.jsonl")).unwrap();
    assert_eq!(
        text.lines().count(),
        bundle["objects"].as_array().unwrap().len()
    );
}
