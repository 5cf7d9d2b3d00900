//! Zeek conn.log, the CICFlowMeter preset and flow identity.

use super::*;
use crate::formats::detect;
use crate::{BatchReader, CsvSchema, MetaField};
use proptest::prelude::*;

const ZEEK_HEAD: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2026-01-01-00-00-00\n";
const ZEEK_FIELDS: &str = "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents";
const ZEEK_TYPES: &str = "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]";

fn zeek_row(ts: &str, src: &str, dst_port: u16, state: &str, label: Option<&str>) -> String {
    let mut row = format!(
        "{ts}\tCx1\t{src}\t4242\t192.0.2.10\t{dst_port}\ttcp\t-\t0.5\t10\t20\t{state}\t-\t-\t0\tShAd\t2\t90\t1\t60\t(empty)"
    );
    if let Some(l) = label {
        row.push('\t');
        row.push_str(l);
    }
    row
}

fn zeek_log(rows: &[String], labelled: bool) -> String {
    let (fields, types) = if labelled {
        (
            format!("{ZEEK_FIELDS}\tlabel"),
            format!("{ZEEK_TYPES}\tstring"),
        )
    } else {
        (ZEEK_FIELDS.to_string(), ZEEK_TYPES.to_string())
    };
    let mut s = format!("{ZEEK_HEAD}{fields}\n{types}\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s.push_str("#close\t2026-01-01-00-10-00\n");
    s
}

fn labelled() -> String {
    zeek_log(
        &[
            zeek_row(
                "1700000000.000001",
                "198.51.100.1",
                80,
                "SF",
                Some("benign"),
            ),
            zeek_row("1700000001.5", "203.0.113.7", 22, "S0", Some("PortScan")),
            zeek_row("1700000002", "203.0.113.7", 23, "REJ", Some("PortScan")),
            zeek_row("1700000003", "198.51.100.2", 443, "SF", Some("-")),
        ],
        true,
    )
}

#[test]
fn zeek_is_detected_and_trains() {
    let text = labelled();
    assert_eq!(
        detect("c.log", text.as_bytes()).unwrap(),
        FormatSpec::ZeekConn
    );
    let ds = parse_bytes(
        "conn.log",
        text.as_bytes(),
        &LoadOptions::new(Task::Multiclass),
    )
    .unwrap();
    assert_eq!(ds.schema.format, FormatSpec::ZeekConn);
    assert_eq!(ds.schema.classes, ["benign", "PortScan"]);
    assert_eq!(ds.y, [0, 1, 1, 0]);
    let names: Vec<&str> = ds.schema.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, crate::ZEEK_CONN_FEATURES);
    // id.resp_p is a numeric feature; conn_state a learned dictionary.
    assert_eq!(ds.x.column(0), &[80.0, 22.0, 23.0, 443.0]);
    let state = &ds.schema.features[6];
    assert_eq!(
        state.kind,
        FeatureKind::Categorical {
            categories: vec!["REJ".into(), "S0".into(), "SF".into()]
        }
    );
    let binary = parse_bytes("conn.log", text.as_bytes(), &LoadOptions::new(Task::Binary)).unwrap();
    assert_eq!(binary.y, [0, 1, 1, 0]);
}

#[test]
fn zeek_unset_numbers_read_as_zero() {
    let row = zeek_row("1", "10.0.0.1", 80, "S0", Some("benign"))
        .replace("\t0.5\t10\t20\t", "\t-\t-\t-\t");
    let text = zeek_log(&[row], true);
    let ds = parse_bytes("conn.log", text.as_bytes(), &LoadOptions::new(Task::Binary)).unwrap();
    assert_eq!(ds.x.get(0, 3), 0.0);
    assert_eq!(ds.x.get(0, 4), 0.0);
}

#[test]
fn zeek_errors_have_locations() {
    let bad =
        zeek_row("1", "10.0.0.1", 80, "SF", Some("benign")).replace("\t10\t20\t", "\t1x0\t20\t");
    let text = zeek_log(
        &[zeek_row("1", "10.0.0.1", 80, "SF", Some("benign")), bad],
        true,
    );
    let e = parse_bytes("conn.log", text.as_bytes(), &LoadOptions::new(Task::Binary))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "conn.log:10:10: expected a number, found '1x0' (orig_bytes)"
    );
    let short = "1\tCx\t10.0.0.1\t1\t10.0.0.2".to_string();
    let text = zeek_log(&[short], true);
    let e = parse_bytes("conn.log", text.as_bytes(), &LoadOptions::new(Task::Binary))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "conn.log:9: expected 22 fields, found 5");
    // Training needs the label field.
    let text = zeek_log(&[zeek_row("1", "10.0.0.1", 80, "SF", None)], false);
    let e = parse_bytes("conn.log", text.as_bytes(), &LoadOptions::new(Task::Binary))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "conn.log: header lacks column 'label' named in the schema"
    );
    // A record before #fields.
    let opts = LoadOptions {
        format: Some(FormatSpec::ZeekConn),
        ..LoadOptions::new(Task::Binary)
    };
    let e = parse_bytes("conn.log", b"#separator \\x09\n1\t2\n", &opts)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "conn.log:1: a zeek log needs its '#fields' header line before the first record"
    );
    let e = parse_bytes("conn.log", b"#separator ,\n#fields\tts\n", &opts)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "conn.log:1: zeek separator ',' is not supported, expected a tab ('\\x09')"
    );
}

#[test]
fn zeek_stream_carries_identity_and_needs_the_model_columns() {
    let ds = parse_bytes(
        "conn.log",
        labelled().as_bytes(),
        &LoadOptions::new(Task::Binary),
    )
    .unwrap();
    let live = zeek_log(
        &[
            zeek_row("1700000005.25", "203.0.113.9", 21, "S0", None),
            zeek_row("1700000006", "-", 21, "S0", None),
        ],
        false,
    );
    let batches: Vec<_> = BatchReader::new("live.log", live.as_bytes(), &ds.schema, 1)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].labels, None);
    assert_eq!(batches[0].lines, [9]);
    let meta = batches[0].meta.get(0);
    assert_eq!(meta.timestamp, Some("1700000005.25"));
    assert_eq!(meta.src_ip, Some("203.0.113.9"));
    assert_eq!(meta.src_port, Some("4242"));
    assert_eq!(meta.dest_ip, Some("192.0.2.10"));
    assert_eq!(meta.dest_port, Some("21"));
    assert_eq!(meta.proto, Some("tcp"));
    assert_eq!(batches[1].meta.get(0).src_ip, None);

    // A batch parsed in parallel chunks keeps every row's identity, in order.
    let rows: Vec<String> = (0..40)
        .map(|k| {
            let ts = format!("17000000{k:02}");
            let ip = format!("203.0.113.{k}");
            zeek_row(&ts, &ip, 21, "S0", None)
        })
        .collect();
    let live = zeek_log(&rows, false);
    let read = |parallel_from| {
        let mut reader = BatchReader::new("live.log", live.as_bytes(), &ds.schema, 16).unwrap();
        reader.parallel_from = parallel_from;
        reader.collect::<Result<Vec<_>, _>>().unwrap()
    };
    let parallel = read(1);
    assert_eq!(parallel, read(usize::MAX));
    assert_eq!(parallel.len(), 3);
    assert_eq!(parallel[1].meta.get(5).src_ip, Some("203.0.113.21"));
    assert_eq!(parallel[2].lines[0], 9 + 32);

    // A log without the model's columns is refused, naming them.
    let narrow = format!("{ZEEK_HEAD}#fields\tts\tid.orig_h\tproto\n1\t10.0.0.1\ttcp\n");
    let e = BatchReader::new("narrow.log", narrow.as_bytes(), &ds.schema, 8)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("narrow.log: header lacks columns 'id.resp_p', 'service', 'duration'"),
        "{e}"
    );
}

#[test]
fn batch_reader_hands_out_early_on_would_block() {
    /// Hands out one line per read, then `WouldBlock` once, then the next line.
    struct Trickle {
        lines: Vec<Vec<u8>>,
        blocked: bool,
    }
    impl std::io::Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.lines.is_empty() {
                return Ok(0);
            }
            if !self.blocked {
                self.blocked = true;
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            self.blocked = false;
            let line = self.lines.remove(0);
            buf[..line.len()].copy_from_slice(&line);
            Ok(line.len())
        }
    }
    let ds = parse_bytes(
        "conn.log",
        labelled().as_bytes(),
        &LoadOptions::new(Task::Binary),
    )
    .unwrap();
    let text = zeek_log(
        &[
            zeek_row("1", "10.0.0.1", 21, "S0", None),
            zeek_row("2", "10.0.0.2", 21, "S0", None),
        ],
        false,
    );
    let lines = text
        .split_inclusive('\n')
        .map(|l| l.as_bytes().to_vec())
        .collect();
    let reader = std::io::BufReader::with_capacity(
        4096,
        Trickle {
            lines,
            blocked: false,
        },
    );
    let batches: Vec<_> = BatchReader::new("live.log", reader, &ds.schema, 100)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // The batch size is 100, yet each row came out on its own.
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].meta.get(0).src_ip, Some("10.0.0.2"));
}

const CIC: &str = "Flow ID, Source IP, Source Port, Destination IP, Destination Port, Protocol, Timestamp, Flow Duration, Flow Bytes/s, Flow Packets/s, Label\n\
192.168.10.5-8.8.8.8-1-53-17,192.168.10.5,1,8.8.8.8,53,17,3/7/2017 8:55:58,100,Infinity,NaN,BENIGN\n\
172.16.0.1-192.168.10.50-2-80-6,172.16.0.1,2,192.168.10.50,80,6,7/7/2017 3:30:00 PM,5,1.5,-Infinity,DDoS\n";

#[test]
fn cicflowmeter_preset() {
    let opts = LoadOptions {
        format: Some(FormatSpec::Csv(CsvSchema::cicflowmeter())),
        ..LoadOptions::new(Task::Multiclass)
    };
    let ds = parse_bytes("Friday.csv", CIC.as_bytes(), &opts).unwrap();
    let names: Vec<&str> = ds.schema.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Protocol",
            "Flow Duration",
            "Flow Bytes/s",
            "Flow Packets/s"
        ]
    );
    assert_eq!(ds.schema.classes, ["BENIGN", "DDoS"]);
    assert_eq!(ds.x.column(2), &[f32::MAX, 1.5]);
    assert_eq!(ds.x.column(3), &[0.0, f32::MIN]);

    let batches: Vec<_> = BatchReader::new("live.csv", CIC.as_bytes(), &ds.schema, 8)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let meta = batches[0].meta.get(1);
    assert_eq!(meta.src_ip, Some("172.16.0.1"));
    assert_eq!(meta.dest_port, Some("80"));
    assert_eq!(meta.proto, Some("6"));
    assert_eq!(meta.timestamp, Some("7/7/2017 3:30:00 PM"));
    assert_eq!(
        batches[0].meta.fields(),
        [
            MetaField::SrcIp,
            MetaField::SrcPort,
            MetaField::DestIp,
            MetaField::DestPort,
            MetaField::Proto,
            MetaField::Timestamp
        ]
    );
    // The whole-file parse does not keep identity.
    assert_eq!(batches[0].labels, Some(vec![0, 1]));

    // Columns the model needs are named when missing.
    let narrow = "Flow ID, Source IP, Source Port, Destination IP, Destination Port, Protocol, Timestamp, Flow Duration, Label\nx,1,2,3,4,6,t,1,BENIGN\n";
    let e = BatchReader::new("narrow.csv", narrow.as_bytes(), &ds.schema, 8)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "narrow.csv: header lacks columns 'Flow Bytes/s', 'Flow Packets/s' named in the schema"
    );
}

#[test]
fn nsl_kdd_streams_carry_the_protocol() {
    let row = "0,udp,private,SF,105,146,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,0.00,0.00,0.00,0.00,1.00,0.00,0.00,255,254,1.00,0.01,0.00,0.00,0.00,0.00,0.00,0.00,normal,21\n";
    let ds = parse_bytes("t.txt", row.as_bytes(), &LoadOptions::new(Task::Binary)).unwrap();
    let batch = BatchReader::new("t.txt", row.as_bytes(), &ds.schema, 8)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(batch.meta.get(0).proto, Some("udp"));
    assert_eq!(batch.meta.get(0).src_ip, None);
}

proptest! {
    #[test]
    fn zeek_never_panics_on_arbitrary_bytes(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut text = format!("{ZEEK_HEAD}{ZEEK_FIELDS}\tlabel\n").into_bytes();
        text.extend_from_slice(&tail);
        let opts = LoadOptions { format: Some(FormatSpec::ZeekConn), ..LoadOptions::new(Task::Multiclass) };
        let _ = parse_bytes("fuzz.log", &text, &opts);
        let _ = detect("fuzz.log", &tail);
        if let Ok(ds) = parse_bytes("conn.log", labelled().as_bytes(), &LoadOptions::new(Task::Binary)) {
            if let Ok(reader) = BatchReader::new("fuzz.log", &text[..], &ds.schema, 3) {
                for b in reader.flatten() {
                    for r in 0..b.x.n_rows() + 1 {
                        let _ = b.meta.get(r);
                    }
                }
            }
        }
    }

    #[test]
    fn zeek_never_panics_on_arbitrary_whole_files(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let opts = LoadOptions { format: Some(FormatSpec::ZeekConn), ..LoadOptions::new(Task::Binary) };
        let _ = parse_bytes("fuzz.log", &bytes, &opts);
    }
}
