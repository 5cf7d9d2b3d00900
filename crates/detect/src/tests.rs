use super::*;
use fedids_data::{parse_bytes, BatchReader, LoadOptions, Task};

const ZEEK: &str = "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\tlabel\n";

fn row(ts: &str, src: &str, dst: &str, port: u16, label: &str) -> String {
    format!(
        "{ts}\tC\t{src}\t5000\t{dst}\t{port}\ttcp\t-\t1\t1\t1\tS0\t0\tS\t1\t40\t0\t0\t{label}\n"
    )
}

fn batch(rows: &[String]) -> (Vec<String>, fedids_data::Batch) {
    batch_with_classes(&["DoS"], rows)
}

fn config(window_secs: u64) -> DetectConfig {
    DetectConfig {
        min_probability: 0.5,
        window_secs,
        model_sha256: "0123".into(),
    }
}

#[test]
fn eve_records() {
    let (classes, b) = batch(&[
        row("1500000000.25", "203.0.113.7", "192.0.2.1", 80, "-"),
        row("1500000001", "203.0.113.8", "192.0.2.1", 80, "-"),
    ]);
    let mut d = Detector::new(&classes, config(60));
    // Row 0 is DoS, row 1 benign.
    let alerts = d.process(&b, &[0.2, 0.8, 0.9, 0.1], Timestamp(0)).unwrap();
    assert_eq!(alerts.len(), 1);
    let json = serde_json::to_string_pretty(&alerts[0]).unwrap();
    expect_test::expect![[r#"
        {
          "timestamp": "2017-07-14T02:40:00.250000+0000",
          "event_type": "alert",
          "src_ip": "203.0.113.7",
          "src_port": 5000,
          "dest_ip": "192.0.2.1",
          "dest_port": 80,
          "proto": "TCP",
          "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": 9100001,
            "rev": 1,
            "signature": "FEDIDS ML DoS (denial of service)",
            "category": "Attempted Denial of Service",
            "severity": 2
          },
          "fedids": {
            "class": "DoS",
            "probability": 0.8,
            "threat": "denial-of-service",
            "model_sha256": "0123",
            "incident_id": "686a408b-5b90-5005-98ee-a75d31c5bccb",
            "line": 3
          }
        }"#]]
    .assert_eq(&json);
    assert_eq!(d.n_flows(), 2);
    assert_eq!(d.n_alerts(), 1);
}

/// Rows given with their class: a benign row's probabilities are not read (a predictor that
/// settled it early leaves them zero), and the alerts are those of the full probabilities.
#[test]
fn classified_rows_alert_as_their_probabilities_do() {
    let (classes, b) = batch(&[
        row("1500000000.25", "203.0.113.7", "192.0.2.1", 80, "-"),
        row("1500000001", "203.0.113.8", "192.0.2.1", 80, "-"),
    ]);
    let mut full = Detector::new(&classes, config(60));
    let want = full
        .process(&b, &[0.2, 0.8, 0.9, 0.1], Timestamp(0))
        .unwrap();
    let mut d = Detector::new(&classes, config(60));
    let got = d
        .process_classified(&b, &[1, 0], &[0.2, 0.8, 0.0, 0.0], Timestamp(0))
        .unwrap();
    assert_eq!(got, want);
    assert_eq!((d.n_flows(), d.n_alerts()), (2, 1));

    let proba = [0.2, 0.8, 0.9, 0.1];
    let err = d.process_classified(&b, &[1], &proba, Timestamp(0));
    assert_eq!(
        err.unwrap_err().to_string(),
        "expected a class for each of 2 rows, found 1"
    );
    let err = d.process_classified(&b, &[0, 7], &proba, Timestamp(0));
    assert_eq!(
        err.unwrap_err().to_string(),
        "row 1: class 7 is not one of the model's 2 classes"
    );
}

#[test]
fn low_probability_and_bad_shapes() {
    let (classes, b) = batch(&[row("1", "203.0.113.7", "192.0.2.1", 80, "-")]);
    let mut d = Detector::new(&classes, config(60));
    assert!(d.process(&b, &[0.45, 0.55], Timestamp(0)).unwrap().len() == 1);
    let mut strict = Detector::new(
        &classes,
        DetectConfig {
            min_probability: 0.9,
            ..config(60)
        },
    );
    assert!(strict
        .process(&b, &[0.45, 0.55], Timestamp(0))
        .unwrap()
        .is_empty());
    assert_eq!(
        d.process(&b, &[1.0], Timestamp(0)).unwrap_err().to_string(),
        "expected 2 probabilities (1 rows x 2 classes), found 1"
    );
}

#[test]
fn one_flood_is_one_incident() {
    let mut rows = Vec::new();
    for i in 0..500 {
        rows.push(row(
            &format!("{}", 1000 + i / 10),
            "203.0.113.7",
            "192.0.2.1",
            80 + (i % 3) as u16,
            "-",
        ));
    }
    // The same source, later than the window: a second incident.
    rows.push(row("2000", "203.0.113.7", "192.0.2.1", 80, "-"));
    // Another source.
    rows.push(row("1001", "198.51.100.1", "192.0.2.1", 80, "-"));
    let (classes, b) = batch(&rows);
    let proba: Vec<f32> = (0..rows.len()).flat_map(|_| [0.0, 1.0]).collect();
    let mut d = Detector::new(&classes, config(60));
    let alerts = d.process(&b, &proba, Timestamp(0)).unwrap();
    assert_eq!(alerts.len(), 502);
    let incidents = d.finish();
    assert_eq!(incidents.len(), 3);
    let flood = &incidents[0];
    assert_eq!(flood.n_alerts, 500);
    assert_eq!(flood.dest_ports, [80, 81, 82]);
    assert_eq!(flood.protos, ["TCP"]);
    assert_eq!(flood.first_seen, Timestamp::from_secs(1000));
    assert_eq!(flood.last_seen, Timestamp::from_secs(1049));
    assert_eq!(alerts[0].fedids.incident_id, flood.id);
    assert_eq!(incidents[1].src_ip.unwrap().to_string(), "198.51.100.1");
    assert_eq!(incidents[2].first_seen, Timestamp::from_secs(2000));
    // The late alert opened the incident that took its key's place, and carries its id.
    assert_eq!(alerts[500].fedids.incident_id, incidents[2].id);
    assert_ne!(incidents[2].id, flood.id);

    // Incidents round-trip through JSON lines.
    let text: String = incidents
        .iter()
        .map(|i| serde_json::to_string(i).unwrap() + "\n")
        .collect();
    assert_eq!(parse_incidents("i.jsonl", &text).unwrap(), incidents);
    let e = parse_incidents("i.jsonl", &format!("{text}{{\"id\": 3}}\n")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "i.jsonl:4:8: expected an incident as JSON, invalid type: integer `3`, expected a string"
    );
}

#[test]
fn flows_without_identity_use_the_given_time() {
    let nsl = b"0,tcp,private,S0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,123,6,1.00,1.00,0.00,0.00,0.05,0.07,0.00,255,26,0.10,0.05,0.00,0.00,1.00,1.00,0.00,0.00,neptune,21\n";
    let ds = parse_bytes("t.txt", nsl, &LoadOptions::new(Task::Binary)).unwrap();
    let b = BatchReader::new("t.txt", &nsl[..], &ds.schema, 8)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mut d = Detector::new(&ds.schema.classes, config(60));
    let alerts = d
        .process(&b, &[0.0, 1.0], Timestamp::from_secs(86_400))
        .unwrap();
    assert_eq!(alerts[0].timestamp, "1970-01-02T00:00:00.000000+0000");
    assert_eq!(alerts[0].src_ip, None);
    let json = serde_json::to_string(&alerts[0]).unwrap();
    assert!(!json.contains("src_ip"), "{json}");
}

/// A Zeek batch of `rows` for a model trained on the classes `benign` and `labels`.
fn batch_with_classes(labels: &[&str], rows: &[String]) -> (Vec<String>, fedids_data::Batch) {
    let mut train = format!("{ZEEK}{}", row("1", "10.0.0.1", "10.0.0.2", 80, "benign"));
    for label in labels {
        train.push_str(&row("2", "10.0.0.3", "10.0.0.2", 22, label));
    }
    let ds = parse_bytes(
        "train.log",
        train.as_bytes(),
        &LoadOptions::new(Task::Multiclass),
    )
    .unwrap();
    let live = format!("{ZEEK}{}", rows.concat());
    let b = BatchReader::new("live.log", live.as_bytes(), &ds.schema, 1000)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    (ds.schema.classes, b)
}

#[test]
fn written_lines_are_the_records_as_json() {
    let (classes, b) = batch(&[
        row("1500000000.25", "203.0.113.7", "192.0.2.1", 80, "-"),
        row("-", "2001:db8::1", "-", 443, "-"),
        row("1500000001", "not-an-ip", "192.0.2.9", 53, "-"),
    ]);
    let proba = [0.2, 0.8, 0.6, 0.4, 0.1, 0.9];
    let mut records = Detector::new(&classes, config(60));
    let alerts = records.process(&b, &proba, Timestamp(7)).unwrap();
    let mut lines = Detector::new(&classes, config(60));
    let mut out = Vec::new();
    let n = lines
        .write_classified(&b, &[1, 0, 1], &proba, Timestamp(7), &mut out)
        .unwrap();
    assert_eq!(n, 2);
    let want: String = alerts
        .iter()
        .map(|a| serde_json::to_string(a).unwrap() + "\n")
        .collect();
    assert_eq!(String::from_utf8(out).unwrap(), want);
    assert_eq!(lines.n_alerts(), 2);
    assert_eq!(lines.finish(), records.finish());
}

mod written {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// `write_classified` writes, byte for byte, the JSON lines of the records
        /// `process_classified` returns, and groups the same incidents.
        #[test]
        fn written_lines_equal_serialised_records(
            labels in proptest::collection::btree_set("[A-Za-z\"\\\\é ]{1,6}", 1..4),
            flows in proptest::collection::vec(
                (
                    prop_oneof![
                        (0u32..4_000_000_000).prop_map(|s| s.to_string()),
                        (0u32..2_000_000_000, 0u32..1_000_000).prop_map(|(s, us)| format!("{s}.{us:06}")),
                        Just("-".to_string()),
                        "[a-z0-9.]{1,5}",
                    ],
                    prop_oneof![
                        (any::<[u8; 4]>()).prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
                        (any::<u128>()).prop_map(|b| std::net::Ipv6Addr::from(b).to_string()),
                        "[a-z0-9:.\"-]{1,6}",
                    ],
                    any::<u16>(),
                    any::<proptest::sample::Index>(),
                    0.0f32..=1.0,
                ),
                1..40,
            ),
            min_probability in 0.0f32..0.6,
            window_secs in 0u64..100,
            now in any::<i64>(),
        ) {
            let labels: Vec<&str> = labels.iter().map(String::as_str).filter(|l| l.trim() != "benign").collect();
            prop_assume!(!labels.is_empty());
            let rows: Vec<String> = flows
                .iter()
                .map(|(ts, ip, port, _, _)| row(ts, ip, "192.0.2.1", *port, "-"))
                .collect();
            let (classes, b) = batch_with_classes(&labels, &rows);
            let n_classes = classes.len();
            let mut proba = vec![0.0f32; rows.len() * n_classes];
            let mut chosen = Vec::new();
            for (r, (_, _, _, class, p)) in flows.iter().enumerate() {
                let class = class.index(n_classes);
                proba[r * n_classes + class] = *p;
                chosen.push(class as u32);
            }
            let config = DetectConfig { min_probability, window_secs, model_sha256: "ab\"c".into() };
            let mut records = Detector::new(&classes, config.clone());
            let alerts = records.process_classified(&b, &chosen, &proba, Timestamp(now)).unwrap();
            let mut lines = Detector::new(&classes, config);
            let mut out = Vec::new();
            let n = lines.write_classified(&b, &chosen, &proba, Timestamp(now), &mut out).unwrap();
            let want: String = alerts.iter().map(|a| serde_json::to_string(a).unwrap() + "\n").collect();
            prop_assert_eq!(n, alerts.len());
            prop_assert_eq!(String::from_utf8(out).unwrap(), want);
            prop_assert_eq!(lines.finish(), records.finish());
        }

        #[test]
        fn eve_text_written_equals_formatted(t in any::<i64>(), near in -10_000_000_000_000_000i64..300_000_000_000_000_000) {
            for t in [Timestamp(t), Timestamp(near)] {
                let mut out = b"x".to_vec();
                t.write_eve(&mut out);
                let text = t.eve();
                prop_assert_eq!(&out[1..], text.as_bytes());
            }
        }
    }
}
