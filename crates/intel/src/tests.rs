use super::*;
use fedids_detect::{Incident, ThreatKind, Timestamp};

pub(crate) fn incidents() -> Vec<Incident> {
    let base = Incident {
        id: "8ed4b6b4-8eb8-5a5d-b2a6-b8ae3ddcdd66".into(),
        class: "DoS".into(),
        threat: ThreatKind::DenialOfService,
        severity: 2,
        src_ip: Some("203.0.113.7".parse().unwrap()),
        dest_ip: Some("192.0.2.1".parse().unwrap()),
        dest_ports: vec![80],
        n_dest_ports: 1,
        protos: vec!["TCP".into()],
        first_seen: Timestamp::from_secs(1_500_000_000),
        last_seen: Timestamp::from_secs(1_500_000_060),
        n_alerts: 500,
        max_probability: 0.97,
        model_sha256: "ab".repeat(32),
    };
    vec![
        base.clone(),
        Incident {
            id: "11111111-2222-5333-8444-555555555555".into(),
            class: "Probe".into(),
            threat: ThreatKind::Reconnaissance,
            severity: 3,
            src_ip: Some("2001:db8::7".parse().unwrap()),
            dest_ip: None,
            dest_ports: vec![21, 22, 23],
            n_dest_ports: 3,
            protos: vec![],
            n_alerts: 3,
            ..base.clone()
        },
        Incident {
            id: "99999999-2222-5333-8444-555555555555".into(),
            src_ip: None,
            ..base
        },
    ]
}

fn stix_opts() -> StixOptions {
    StixOptions {
        site: "plant-a".into(),
        tlp: Tlp::Amber,
        indicator_valid_secs: 86_400,
    }
}

#[test]
fn stix_bundle_is_deterministic_and_complete() {
    let a = stix_bundle(&incidents(), &stix_opts());
    let b = stix_bundle(&incidents(), &stix_opts());
    assert_eq!(a, b);
    assert_eq!(a.n_indicators, 2);
    assert_eq!(a.n_without_source, 1);
    let objects = a.bundle["objects"].as_array().unwrap();
    let count = |t: &str| objects.iter().filter(|o| o["type"] == t).count();
    assert_eq!(count("marking-definition"), 1);
    assert_eq!(count("identity"), 1);
    assert_eq!(count("indicator"), 2);
    assert_eq!(count("observed-data"), 2);
    assert_eq!(count("sighting"), 2);
    assert_eq!(count("attack-pattern"), 6);
    assert_eq!(count("relationship"), 6);
    assert_eq!(count("network-traffic"), 2);
    let patterns: Vec<&str> = objects
        .iter()
        .filter_map(|o| o["pattern"].as_str())
        .collect();
    assert_eq!(
        patterns,
        [
            "[ipv4-addr:value = '203.0.113.7']",
            "[ipv6-addr:value = '2001:db8::7']"
        ]
    );
    // The STIX 2.1 specification's own example of a deterministic SCO id.
    let sco = objects
        .iter()
        .find(|o| o["type"] == "ipv4-addr" && o["value"] == "203.0.113.7")
        .unwrap();
    assert!(sco["id"].as_str().unwrap().starts_with("ipv4-addr--"));
    let ext = objects
        .iter()
        .find(|o| {
            o["type"] == "attack-pattern" && o["external_references"][0]["external_id"] == "T1498"
        })
        .unwrap();
    assert_eq!(ext["external_references"][0]["source_name"], "mitre-attack");
    let indicator = objects.iter().find(|o| o["type"] == "indicator").unwrap();
    expect_test::expect![[r#"
        {
          "confidence": 97,
          "created": "2017-07-14T02:40:00.000Z",
          "created_by_ref": "identity--ID",
          "description": "fedids incident 8ed4b6b4-8eb8-5a5d-b2a6-b8ae3ddcdd66: 500 alert(s) of class 'DoS' from 203.0.113.7 to 192.0.2.1 between 2017-07-14T02:40:00.000Z and 2017-07-14T02:41:00.000Z, model sha256 abababababababababababababababababababababababababababababababab",
          "id": "indicator--ID",
          "indicator_types": [
            "malicious-activity"
          ],
          "modified": "2017-07-14T02:41:00.000Z",
          "name": "DoS (denial of service) from 203.0.113.7",
          "object_marking_refs": [
            "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
          ],
          "pattern": "[ipv4-addr:value = '203.0.113.7']",
          "pattern_type": "stix",
          "pattern_version": "2.1",
          "spec_version": "2.1",
          "type": "indicator",
          "valid_from": "2017-07-14T02:40:00.000Z",
          "valid_until": "2017-07-15T02:41:00.000Z"
        }"#]]
    .assert_eq(&redact(&serde_json::to_string_pretty(indicator).unwrap()));
}

/// Replaces the UUIDs of `identity--` and `indicator--` ids (they are checked for stability by
/// the determinism assertion, not by the snapshot).
fn redact(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(p) = rest.find("--") {
        let (head, tail) = rest.split_at(p + 2);
        out.push_str(head);
        let is_id = head.ends_with("identity--") || head.ends_with("indicator--");
        if is_id && tail.len() >= 36 {
            out.push_str("ID");
            rest = &tail[36..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn sco_ids_follow_the_stix_specification() {
    // STIX 2.1 section 2.9's worked example ipv4-addr value.
    let export = stix_bundle(
        &[Incident {
            src_ip: Some("198.51.100.3".parse().unwrap()),
            ..incidents()[0].clone()
        }],
        &stix_opts(),
    );
    let objects = export.bundle["objects"].as_array().unwrap();
    let sco = objects
        .iter()
        .find(|o| o["type"] == "ipv4-addr" && o["value"] == "198.51.100.3")
        .unwrap();
    let canonical = serde_json::json!({ "value": "198.51.100.3" }).to_string();
    let want = uuid::Uuid::new_v5(&STIX_SCO_NAMESPACE, canonical.as_bytes());
    assert_eq!(sco["id"], format!("ipv4-addr--{want}"));
}

#[test]
fn misp_event_attributes() {
    let event = misp_event(
        &incidents(),
        &MispOptions {
            site: "plant-a".into(),
            tlp: Tlp::Green,
            distribution: Distribution::Community,
        },
    );
    let e = &event["Event"];
    assert_eq!(e["distribution"], "1");
    assert_eq!(e["threat_level_id"], "2");
    assert_eq!(e["date"], "2017-07-14");
    assert_eq!(e["Tag"][0]["name"], "tlp:green");
    assert!(e["Tag"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"]
            == "misp-galaxy:mitre-attack-pattern=\"Network Denial of Service - T1498\""));
    let attrs = e["Attribute"].as_array().unwrap();
    let src: Vec<_> = attrs.iter().filter(|a| a["type"] == "ip-src").collect();
    assert_eq!(src.len(), 2);
    assert_eq!(src[0]["to_ids"], true);
    assert_eq!(src[0]["value"], "203.0.113.7");
    let dst: Vec<_> = attrs.iter().filter(|a| a["type"] == "ip-dst").collect();
    assert_eq!(dst.len(), 2);
    assert_eq!(dst[0]["to_ids"], false);
    let ports: Vec<_> = attrs
        .iter()
        .filter(|a| a["type"] == "port")
        .map(|a| a["value"].clone())
        .collect();
    assert_eq!(ports, ["80", "21", "22", "23", "80"]);
    assert!(src[0]["comment"].as_str().unwrap().contains("8ed4b6b4"));
    assert_eq!(
        event,
        misp_event(
            &incidents(),
            &MispOptions {
                site: "plant-a".into(),
                tlp: Tlp::Green,
                distribution: Distribution::Community
            }
        )
    );
}

#[test]
fn tlp_names() {
    assert_eq!("TLP:AMBER".parse::<Tlp>(), Ok(Tlp::Amber));
    assert_eq!("clear".parse::<Tlp>(), Ok(Tlp::White));
    assert!("purple".parse::<Tlp>().is_err());
}
