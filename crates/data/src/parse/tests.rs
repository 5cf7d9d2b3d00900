use super::*;
use crate::{detect_format, Batch, BatchReader, CsvSchema, KDD_FEATURES, UNSW_COLUMNS};
use proptest::prelude::*;

/// One NSL-KDD record (the first record of KDDTrain+ with the doc example's values).
const NSL_ROW: &str = "0,tcp,http,SF,181,5450,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,8,8,0.00,0.00,0.00,0.00,1.00,0.00,0.00,9,9,1.00,0.00,0.11,0.00,0.00,0.00,0.00,0.00,normal,21";

/// The first record of UNSW_NB15_training-set.csv.
const UNSW_ROW: &str = "1,0.000011,udp,-,INT,2,0,496,0,90909.0902,254,0,180363632,0,0,0,0.011,0,0,0,0,0,0,0,0,0,0,248,0,0,0,2,2,1,1,1,2,0,0,0,1,2,0,Normal,0";

/// `NSL_ROW` with 1-based columns replaced.
fn nsl(edits: &[(usize, &str)]) -> String {
    edit(NSL_ROW, edits)
}

fn unsw(edits: &[(usize, &str)]) -> String {
    edit(UNSW_ROW, edits)
}

fn edit(row: &str, edits: &[(usize, &str)]) -> String {
    let mut cells: Vec<&str> = row.split(',').collect();
    for &(col, value) in edits {
        cells[col - 1] = value;
    }
    cells.join(",")
}

fn lines(rows: &[String]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

fn unsw_file(rows: &[String]) -> String {
    format!(
        "\u{feff}{}\r\n{}",
        UNSW_COLUMNS.join(","),
        rows.iter().map(|r| format!("{r}\r\n")).collect::<String>()
    )
}

fn opts(task: Task) -> LoadOptions {
    LoadOptions::new(task)
}

fn skipping(task: Task) -> LoadOptions {
    LoadOptions {
        skip_invalid: true,
        unmapped_label: UnmappedLabelPolicy::Skip,
        ..LoadOptions::new(task)
    }
}

fn parse(text: &str, opts: &LoadOptions) -> Dataset {
    parse_bytes("t.txt", text.as_bytes(), opts).unwrap_or_else(|e| panic!("{e}"))
}

/// The error message of a training parse.
fn err(text: &[u8], opts: &LoadOptions) -> String {
    parse_bytes("t.txt", text, opts).unwrap_err().to_string()
}

fn csv_schema(extra: &str) -> CsvSchema {
    let text = format!(
        "label = 'Label'\nbenign = ['BENIGN', 'Benign']\ncategorical = ['Protocol']\nignore = ['Flow ID']\n{extra}"
    );
    CsvSchema::from_toml_str("s.toml", &text).unwrap()
}

fn csv_opts(schema: CsvSchema, task: Task) -> LoadOptions {
    LoadOptions {
        format: Some(FormatSpec::Csv(schema)),
        ..LoadOptions::new(task)
    }
}

const FLOWS: &str = "Flow ID, Protocol, Flow Duration, Fwd Pkts/s, Label\n\
                     a,6,100,1.5,BENIGN\n\
                     b,17,200,2.5,DDoS\n\
                     \"c, quoted\",6,300,\"3.5\",PortScan\n\
                     d,1,400,4.5,Benign\n";

#[test]
fn fields_are_split_trimmed_and_unquoted() {
    let check = |line: &str, want: Result<Vec<&str>, usize>| {
        let mut fields = Fields::default();
        let got = fields.split(line.as_bytes()).map(|()| {
            (0..fields.len())
                .map(|i| String::from_utf8(fields.get(line.as_bytes(), i).to_vec()).unwrap())
                .collect::<Vec<_>>()
        });
        let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{line:?}");
    };
    check("a,b,c", Ok(vec!["a", "b", "c"]));
    check(" a , b\t,c \r", Ok(vec!["a", "b", "c"]));
    check("", Ok(vec![""]));
    check("a,", Ok(vec!["a", ""]));
    check(",", Ok(vec!["", ""]));
    check("\"a,b\",c", Ok(vec!["a,b", "c"]));
    check(" \"say \"\"hi\"\"\" , x", Ok(vec!["say \"hi\"", "x"]));
    check("\"\",\"\"", Ok(vec!["", ""]));
    check("a,\"b\"c,d", Ok(vec!["a", "bc", "d"]));
    check("a,b\"c,d", Ok(vec!["a", "b\"c", "d"]));
    check("a,\"b,c", Err(2));
    check("\"", Err(1));
    assert_eq!(Fields::default().get(b"", 3), b"");
}

#[test]
fn numbers_match_std_parsing() {
    for text in [
        "0",
        "181",
        "-3",
        "+7",
        "0.00",
        "1.00",
        "0.11",
        "90909.0902",
        "180363632",
        "0.000011",
        "5.",
        ".5",
        "1e3",
        "1.5E-3",
        "16777217",
        "99999999999999999999",
        "0.1234567891",
        "123456789.5",
        "-0",
        "007",
        "3.4028236e38",
    ] {
        let want: f32 = text.parse().unwrap();
        assert_eq!(
            parse_number(text.as_bytes()).map(f32::to_bits),
            Some(want.to_bits()),
            "{text}"
        );
    }
    for text in [
        "", "-", ".", "tcp", "1.2.3", "1,5", "0x10", "1_000", "--1", "1e",
    ] {
        assert_eq!(parse_number(text.as_bytes()), None, "{text}");
    }
    for text in [
        "NaN",
        "nan",
        "inf",
        "Infinity",
        "-Infinity",
        "-inf",
        "1e39",
        "-1e50",
    ] {
        assert!(
            parse_number(text.as_bytes()).is_some_and(|v| !v.is_finite()),
            "{text}"
        );
    }
}

/// `decimal` multiplies by a rounded `10^-k` in `f64` instead of dividing by `10^k` in `f32`:
/// both must round every short decimal the same way, and as `str::parse` does.
#[test]
fn every_short_decimal_rounds_as_division_does() {
    const POW10: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];
    for (n_frac, &p) in POW10.iter().enumerate().skip(1) {
        // IEEE 754 division of exact operands is correctly rounded.
        let wrong = (0..1u64 << 24)
            .filter(|&m| {
                decimal(m, n_frac as u32).map(f32::to_bits) != Some((m as f32 / p).to_bits())
            })
            .count();
        assert_eq!(wrong, 0, "{wrong} mantissas with {n_frac} decimals");
        // The same quotients as text, through `parse_number` and `str::parse`.
        for m in (0..1u64 << 24).step_by(997).chain([(1 << 24) - 1]) {
            let digits = format!("{m:0>width$}", width = n_frac + 1);
            let text = format!(
                "{}.{}",
                &digits[..digits.len() - n_frac],
                &digits[digits.len() - n_frac..]
            );
            let want: f32 = text.parse().unwrap();
            assert_eq!(
                parse_number(text.as_bytes()).map(f32::to_bits),
                Some(want.to_bits()),
                "{text}"
            );
        }
    }
    assert_eq!(
        decimal(1 << 24, 1),
        None,
        "no fast path for a mantissa of 2^24 with decimals"
    );
    assert_eq!(decimal(12, 11), None, "no fast path for 11 decimals");
}

#[test]
fn nsl_kdd_rows() {
    let text = lines(&[
        nsl(&[]),
        nsl(&[(2, "udp"), (3, "private"), (5, "7"), (42, "neptune")]),
    ]);
    let ds = parse(&text, &opts(Task::Binary));
    assert_eq!(ds.schema.format, FormatSpec::NslKdd);
    assert_eq!(ds.schema.classes, vec!["normal", "attack"]);
    assert_eq!(ds.y, vec![0, 1]);
    assert_eq!(ds.x.n_features(), 41);
    let names: Vec<&str> = ds.schema.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, KDD_FEATURES);
    assert_eq!(
        ds.schema.features[2].kind,
        FeatureKind::Categorical {
            categories: vec!["http".into(), "private".into()]
        }
    );
    assert_eq!(ds.x.column(1), &[0.0, 1.0]); // tcp < udp
    assert_eq!(ds.x.column(2), &[0.0, 1.0]);
    assert_eq!(ds.x.column(4), &[181.0, 7.0]);
    assert_eq!(ds.x.column(35), &[0.11, 0.11]);
    assert_eq!(
        ds.report,
        LoadReport {
            source: "t.txt".into(),
            n_rows: 2,
            ..LoadReport::default()
        }
    );

    let multi = parse(&text, &opts(Task::Multiclass));
    assert_eq!(
        multi.schema.classes,
        vec!["normal", "DoS", "Probe", "R2L", "U2R"]
    );
    assert_eq!(multi.y, vec![0, 1]);
}

#[test]
fn cells_are_trimmed_and_blank_lines_are_not_records() {
    let padded: Vec<String> = NSL_ROW.split(',').map(|c| format!(" {c}\t")).collect();
    let text = format!(
        "\n{}\r\n   \n{}\n\n",
        padded.join(","),
        nsl(&[(42, " smurf ")])
    );
    let ds = parse(&text, &opts(Task::Binary));
    assert_eq!(ds.x.n_rows(), 2);
    assert_eq!(ds.y, vec![0, 1]);
    assert_eq!(
        ds.x.row_into_vec(0),
        parse(NSL_ROW, &opts(Task::Binary)).x.row_into_vec(0)
    );
    // Line numbers count blank lines.
    let text = format!("\n{}\n\n{}\n", NSL_ROW, nsl(&[(5, "x")]));
    assert_eq!(
        err(text.as_bytes(), &opts(Task::Binary)),
        "t.txt:4:5: expected a number, found 'x' (src_bytes)"
    );
}

trait RowVec {
    fn row_into_vec(&self, row_idx: usize) -> Vec<f32>;
}

impl RowVec for FeatureMatrix {
    fn row_into_vec(&self, row_idx: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.n_features()];
        self.row_into(row_idx, &mut out);
        out
    }
}

#[test]
fn kdd99_with_and_without_header_and_trailing_dots() {
    let row = |label: &str| {
        let mut cells: Vec<&str> = NSL_ROW.split(',').collect();
        cells.truncate(41);
        cells.push(label);
        cells.join(",")
    };
    let header = "duration,protocol_type,service,flag,src_bytes,dst_bytes,land,wrong_fragment,urgent,hot,num_failed_logins,logged_in,lnum_compromised,lroot_shell,lsu_attempted,lnum_root,lnum_file_creations,lnum_shells,lnum_access_files,lnum_outbound_cmds,is_host_login,is_guest_login,count,srv_count,serror_rate,srv_serror_rate,rerror_rate,srv_rerror_rate,same_srv_rate,diff_srv_rate,srv_diff_host_rate,dst_host_count,dst_host_srv_count,dst_host_same_srv_rate,dst_host_diff_srv_rate,dst_host_same_src_port_rate,dst_host_srv_diff_host_rate,dst_host_serror_rate,dst_host_srv_serror_rate,dst_host_rerror_rate,dst_host_srv_rerror_label,label";
    let body = lines(&[row("normal."), row("smurf."), row("ipsweep"), row("normal")]);
    let without = parse(&body, &opts(Task::Multiclass));
    let with = parse(&format!("{header}\n{body}"), &opts(Task::Multiclass));
    assert_eq!(without.schema.format, FormatSpec::Kdd99);
    assert_eq!(with.schema, without.schema);
    assert_eq!(with.x, without.x);
    assert_eq!(with.y, vec![0, 1, 2, 0]);
    assert_eq!(with.schema.features[12].name, "num_compromised");
    // The header counts as line 1.
    let bad = format!("{header}\n{}\n", row("smurf.."));
    assert_eq!(
        err(bad.as_bytes(), &opts(Task::Binary)),
        "t.txt:2:42: label 'smurf..' does not map to a binary class; pass --unmapped-label skip to skip such rows"
    );
    let kdd = LoadOptions {
        format: Some(FormatSpec::Kdd99),
        ..opts(Task::Binary)
    };
    assert_eq!(
        err(b"duration,protocol_type\n", &kdd),
        "t.txt:1: expected 42 fields, found 2"
    );
}

#[test]
fn unsw_nb15_with_bom_and_crlf() {
    let text = unsw_file(&[
        unsw(&[]),
        unsw(&[(3, "tcp"), (4, "http"), (44, " Exploits "), (45, "1")]),
        unsw(&[(44, "Backdoors"), (45, "1")]),
    ]);
    let ds = parse(&text, &opts(Task::Binary));
    assert_eq!(ds.schema.format, FormatSpec::UnswNb15);
    assert_eq!(ds.x.n_features(), 42);
    assert_eq!(ds.schema.features[0].name, "dur");
    assert_eq!(ds.schema.features[41].name, "is_sm_ips_ports");
    assert_eq!(ds.y, vec![0, 1, 1]);
    assert_eq!(ds.x.column(0), &[0.000011; 3]);
    assert_eq!(ds.x.column(8), &["90909.0902".parse::<f32>().unwrap(); 3]);
    assert_eq!(ds.x.column(1), &[1.0, 0.0, 1.0]); // tcp < udp
    let multi = parse(&text, &opts(Task::Multiclass));
    assert_eq!(multi.y, vec![0, 4, 2]);
    assert_eq!(multi.schema.classes[0], "Normal");

    // Columns in another order are found by name.
    let mut names: Vec<&str> = UNSW_COLUMNS.to_vec();
    names.swap(1, 2);
    let swapped_row = edit(UNSW_ROW, &[(2, "udp"), (3, "0.000011")]);
    let swapped = format!("{}\n{swapped_row}\n", names.join(","));
    let forced = LoadOptions {
        format: Some(FormatSpec::UnswNb15),
        ..opts(Task::Binary)
    };
    let ds2 = parse(&swapped, &forced);
    assert_eq!(
        ds2.schema.features,
        parse(&unsw_file(&[unsw(&[])]), &opts(Task::Binary))
            .schema
            .features
    );
    assert_eq!(ds2.x.column(0), &[0.000011]);

    let check = |rows: &[String], task: Task, want: &str| {
        assert_eq!(err(unsw_file(rows).as_bytes(), &opts(task)), want);
    };
    check(
        &[unsw(&[(45, "2")])],
        Task::Binary,
        "t.txt:2:45: expected 0 or 1, found '2' (label)",
    );
    check(
        &[unsw(&[(45, "yes")])],
        Task::Multiclass,
        "t.txt:2:45: expected 0 or 1, found 'yes' (label)",
    );
    check(
        &[unsw(&[(44, "Spam")])],
        Task::Multiclass,
        "t.txt:2:44: label 'Spam' does not map to a multiclass class; pass --unmapped-label skip to skip such rows",
    );
    check(
        &[unsw(&[(2, "1e39")])],
        Task::Binary,
        "t.txt:2:2: expected a finite number, found '1e39' (dur)",
    );
    check(
        &[unsw(&[(2, "NaN")])],
        Task::Binary,
        "t.txt:2:2: expected a finite number, found 'NaN' (dur)",
    );
    // A header without some columns.
    let short = "id,dur,proto\n1,2,tcp\n";
    let unsw_opts = LoadOptions {
        format: Some(FormatSpec::UnswNb15),
        ..opts(Task::Binary)
    };
    let message = err(short.as_bytes(), &unsw_opts);
    assert!(
        message
            .starts_with("t.txt: header lacks columns 'attack_cat', 'label', 'service', 'state', "),
        "{message}"
    );
    assert!(
        message.ends_with("'is_sm_ips_ports' named in the schema"),
        "{message}"
    );
}

#[test]
fn every_row_error_has_an_exact_message() {
    let b = opts(Task::Binary);
    let check = |text: &[u8], want: &str| assert_eq!(err(text, &b), want);
    check(
        lines(&[NSL_ROW.to_string(), nsl(&[(5, "tcp")])]).as_bytes(),
        "t.txt:2:5: expected a number, found 'tcp' (src_bytes)",
    );
    check(
        lines(&[NSL_ROW.to_string(), nsl(&[(1, "")])]).as_bytes(),
        "t.txt:2:1: expected a number, found '' (duration)",
    );
    check(
        nsl(&[(1, "inf")]).as_bytes(),
        "t.txt:1:1: expected a finite number, found 'inf' (duration)",
    );
    check(
        nsl(&[(43, "22")]).as_bytes(),
        "t.txt:1:43: expected an integer difficulty from 0 to 21, found '22' (difficulty)",
    );
    check(
        nsl(&[(42, "zeroday")]).as_bytes(),
        "t.txt:1:42: label 'zeroday' does not map to a binary class; pass --unmapped-label skip to skip such rows",
    );
    check(
        lines(&[NSL_ROW.to_string(), format!("{NSL_ROW},extra")]).as_bytes(),
        "t.txt:2: expected 43 fields, found 44",
    );
    let mut invalid_utf8 = lines(&[NSL_ROW.to_string(), NSL_ROW.to_string()]).into_bytes();
    invalid_utf8.extend_from_slice(b"0,tcp,\xff\xfe,SF\n");
    check(&invalid_utf8, "t.txt:3: invalid UTF-8");
    check(
        lines(&[NSL_ROW.to_string(), nsl(&[(3, "\"http")])]).as_bytes(),
        "t.txt:2:3: unterminated quoted field (quoted fields cannot span lines)",
    );
    check(b"", "t.txt: no records");
    check(b"\n \r\n", "t.txt: no records");
    // Control characters and long values are escaped and cut.
    let long = "y".repeat(70);
    check(
        nsl(&[(5, &long)]).as_bytes(),
        &format!(
            "t.txt:1:5: expected a number, found '{}...' (src_bytes)",
            "y".repeat(60)
        ),
    );
    check(
        nsl(&[(5, "a\u{1b}b")]).as_bytes(),
        "t.txt:1:5: expected a number, found 'a\\u{1b}b' (src_bytes)",
    );
    // The first problem of a row, in column order.
    check(
        nsl(&[(5, "x"), (6, "y")]).as_bytes(),
        "t.txt:1:5: expected a number, found 'x' (src_bytes)",
    );
    // A forced format that does not fit.
    let forced = LoadOptions {
        format: Some(FormatSpec::NslKdd),
        ..opts(Task::Binary)
    };
    assert_eq!(
        err(b"1,2,3\n", &forced),
        "t.txt:1: expected 43 fields, found 3"
    );
}

#[test]
fn the_first_bad_line_in_file_order_is_reported_whatever_the_chunking() {
    let mut rows = vec![NSL_ROW.to_string(); 50];
    rows[30] = nsl(&[(7, "late")]);
    rows[12] = nsl(&[(6, "early")]);
    let text = lines(&rows);
    for chunk_bytes in [1, 100, 300, 1_000, 100_000] {
        let e = parse_bytes_chunked("t.txt", text.as_bytes(), &opts(Task::Binary), chunk_bytes)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.txt:13:6: expected a number, found 'early' (dst_bytes)"
        );
        assert_eq!(e.line(), Some(13));
    }
}

#[test]
fn skipped_rows_are_counted_with_their_first_reasons() {
    let mut rows = Vec::new();
    for i in 0..30 {
        rows.push(NSL_ROW.to_string());
        rows.push(match i % 3 {
            0 => nsl(&[(5, "bad")]),
            1 => nsl(&[(42, "zeroday")]),
            _ => "1,2,3".to_string(),
        });
    }
    let text = lines(&rows);
    let want_first = [
        "t.txt:2:5: expected a number, found 'bad' (src_bytes)",
        "t.txt:4:42: label 'zeroday' does not map to a binary class; pass --unmapped-label skip to skip such rows",
        "t.txt:6: expected 43 fields, found 3",
    ];
    for chunk_bytes in [1, 700, CHUNK_BYTES] {
        let ds = parse_bytes_chunked(
            "t.txt",
            text.as_bytes(),
            &skipping(Task::Binary),
            chunk_bytes,
        )
        .unwrap();
        assert_eq!(ds.x.n_rows(), 30);
        assert_eq!(ds.report.n_rows, 30);
        assert_eq!(ds.report.n_skipped_invalid, 20);
        assert_eq!(ds.report.n_skipped_unmapped_label, 10);
        assert_eq!(ds.report.first_skips.len(), MAX_SKIP_REASONS);
        assert_eq!(ds.report.first_skips[..3], want_first);
        assert_eq!(
            ds.report.first_skips[9],
            "t.txt:20:5: expected a number, found 'bad' (src_bytes)"
        );
    }
    // Each policy alone.
    let invalid_only = LoadOptions {
        skip_invalid: true,
        ..opts(Task::Binary)
    };
    assert_eq!(err(text.as_bytes(), &invalid_only), want_first[1]);
    let unmapped_only = LoadOptions {
        unmapped_label: UnmappedLabelPolicy::Skip,
        ..opts(Task::Binary)
    };
    assert_eq!(err(text.as_bytes(), &unmapped_only), want_first[0]);

    // Skipped rows do not contribute categories.
    let text = lines(&[NSL_ROW.to_string(), nsl(&[(3, "gopher"), (5, "bad")])]);
    let ds = parse(&text, &skipping(Task::Binary));
    assert_eq!(
        ds.schema.features[2].kind,
        FeatureKind::Categorical {
            categories: vec!["http".into()]
        }
    );

    // Nothing left.
    let text = lines(&[nsl(&[(5, "bad")]), nsl(&[(42, "zeroday")])]);
    assert_eq!(
        err(text.as_bytes(), &skipping(Task::Binary)),
        "t.txt: no records left after skipping 2 rows (first skip: t.txt:1:5: expected a number, found 'bad' (src_bytes))"
    );
}

#[test]
fn evaluation_uses_the_schema() {
    let train = parse(
        &lines(&[nsl(&[]), nsl(&[(3, "smtp"), (42, "satan")])]),
        &opts(Task::Multiclass),
    );
    let test_text = lines(&[
        nsl(&[(3, "gopher"), (42, "mscan")]),
        nsl(&[(3, "smtp"), (42, "normal")]),
    ]);
    // opts.task is not used: the schema's task is.
    let test = parse_bytes_with_schema(
        "e.txt",
        test_text.as_bytes(),
        &train.schema,
        &opts(Task::Binary),
    )
    .unwrap();
    assert_eq!(test.schema, train.schema);
    assert_eq!(test.y, vec![2, 0]);
    // gopher is unknown: code 2 (the dictionary is [http, smtp]).
    assert_eq!(test.x.column(2), &[2.0, 1.0]);
    assert_eq!(train.schema.features[2].category_code("gopher"), Some(2));

    let unmapped = nsl(&[(42, "zeroday")]);
    let e = parse_bytes_with_schema(
        "e.txt",
        unmapped.as_bytes(),
        &train.schema,
        &opts(Task::Binary),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "e.txt:1:42: label 'zeroday' does not map to a multiclass class; pass --unmapped-label skip to skip such rows"
    );
    let text = lines(&[unmapped, NSL_ROW.to_string()]);
    let ds = parse_bytes_with_schema(
        "e.txt",
        text.as_bytes(),
        &train.schema,
        &skipping(Task::Binary),
    )
    .unwrap();
    assert_eq!(ds.report.n_skipped_unmapped_label, 1);
    assert_eq!(ds.y, vec![0]);

    let wrong = LoadOptions {
        format: Some(FormatSpec::Kdd99),
        ..opts(Task::Binary)
    };
    let e =
        parse_bytes_with_schema("e.txt", NSL_ROW.as_bytes(), &train.schema, &wrong).unwrap_err();
    assert_eq!(
        e.to_string(),
        "e.txt: --format kdd99 does not match the model's format nsl-kdd"
    );
    let same = LoadOptions {
        format: Some(FormatSpec::NslKdd),
        ..opts(Task::Binary)
    };
    assert!(parse_bytes_with_schema("e.txt", NSL_ROW.as_bytes(), &train.schema, &same).is_ok());
}

#[test]
fn generic_csv_binary() {
    let ds = parse(FLOWS, &csv_opts(csv_schema(""), Task::Binary));
    let names: Vec<&str> = ds.schema.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Protocol", "Flow Duration", "Fwd Pkts/s"]);
    assert_eq!(
        ds.schema.features[0].kind,
        FeatureKind::Categorical {
            categories: vec!["1".into(), "17".into(), "6".into()]
        }
    );
    assert_eq!(ds.schema.classes, vec!["normal", "attack"]);
    assert_eq!(ds.y, vec![0, 1, 1, 0]);
    assert_eq!(ds.x.column(0), &[2.0, 1.0, 2.0, 0.0]);
    assert_eq!(ds.x.column(2), &[1.5, 2.5, 3.5, 4.5]);
}

#[test]
fn generic_csv_multiclass() {
    let schema = csv_schema("");
    let ds = parse(FLOWS, &csv_opts(schema.clone(), Task::Multiclass));
    assert_eq!(ds.schema.classes, vec!["BENIGN", "DDoS", "PortScan"]);
    assert_eq!(ds.y, vec![0, 1, 2, 0]);
    // The same classes, whatever the chunking (labels seen in a different order per chunk).
    let reordered = "Flow ID,Protocol,Flow Duration,Fwd Pkts/s,Label\nx,6,1,1,PortScan\ny,6,1,1,BENIGN\nz,6,1,1,DDoS\nw,6,1,1,Bot\n";
    for chunk_bytes in [1, 20, CHUNK_BYTES] {
        let ds = parse_bytes_chunked(
            "t.txt",
            reordered.as_bytes(),
            &csv_opts(schema.clone(), Task::Multiclass),
            chunk_bytes,
        )
        .unwrap();
        assert_eq!(ds.schema.classes, vec!["BENIGN", "Bot", "DDoS", "PortScan"]);
        assert_eq!(ds.y, vec![3, 0, 2, 1]);
    }
    // Evaluation: an unseen label is unmapped; columns may come in another order.
    let eval =
        "Label,Fwd Pkts/s,Flow Duration,Protocol,Flow ID,Extra\nDDoS,1,2,99,q,7\nBot,1,2,6,q,7\n";
    let e = parse_bytes_with_schema(
        "e.csv",
        eval.as_bytes(),
        &ds.schema,
        &opts(Task::Multiclass),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "e.csv:3:1: label 'Bot' does not map to a multiclass class; pass --unmapped-label skip to skip such rows"
    );
    let ok = &eval[..eval.len() - "Bot,1,2,6,q,7\n".len()];
    let ev = parse_bytes_with_schema("e.csv", ok.as_bytes(), &ds.schema, &opts(Task::Multiclass))
        .unwrap();
    assert_eq!(ev.y, vec![1]);
    assert_eq!(ev.x.row_into_vec(0), vec![3.0, 2.0, 1.0]); // 99 is an unknown protocol: code 3
}

#[test]
fn generic_csv_non_finite_policies() {
    let text = "Flow ID,Protocol,Rate,Label\na,6,NaN,BENIGN\nb,6,Infinity,BENIGN\nc,6,-Infinity,x\nd,6,1e39,x\ne,6,inf,x\nf,6,-1e50,x\ng,6,2.5,x\n";
    let clamp = parse(text, &csv_opts(csv_schema(""), Task::Binary));
    assert_eq!(
        clamp.x.column(1),
        &[0.0, f32::MAX, f32::MIN, f32::MAX, f32::MAX, f32::MIN, 2.5]
    );
    let reject = csv_opts(csv_schema("non_finite = 'reject'"), Task::Binary);
    assert_eq!(
        err(text.as_bytes(), &reject),
        "t.txt:2:3: expected a finite number, found 'NaN' (Rate)"
    );
    let ds = parse(
        text,
        &LoadOptions {
            skip_invalid: true,
            ..reject
        },
    );
    assert_eq!(ds.report.n_skipped_invalid, 6);
    assert_eq!(ds.x.column(1), &[2.5]);
    let empty_cell = "Flow ID,Protocol,Rate,Label\na,6,,BENIGN\n";
    assert_eq!(
        err(
            empty_cell.as_bytes(),
            &csv_opts(csv_schema(""), Task::Binary)
        ),
        "t.txt:2:3: expected a number, found '' (Rate)"
    );
}

#[test]
fn generic_csv_header_errors() {
    let b = |extra: &str| csv_opts(csv_schema(extra), Task::Binary);
    assert_eq!(
        err(b"Protocol,Rate\n6,1\n", &b("")),
        "t.txt: header lacks columns 'Label', 'Flow ID' named in the schema"
    );
    assert_eq!(
        err(b"Flow ID,Rate,Label\na,1,BENIGN\n", &b("")),
        "t.txt: header lacks column 'Protocol' named in the schema"
    );
    assert_eq!(
        err(
            b"\n\nFlow ID,Protocol,Label,Label\na,1,BENIGN,BENIGN\n",
            &b("")
        ),
        "t.txt:3: the header names column 'Label' 2 times"
    );
    assert_eq!(
        err(b"Flow ID,Label\na,BENIGN\n", &csv_opts(CsvSchema { categorical: vec![], ..csv_schema("") }, Task::Binary)),
        "t.txt: invalid schema: no feature columns are left once the label and ignored columns are removed"
    );
    assert_eq!(err(b"", &b("")), "t.txt: no records");
    assert_eq!(
        err(b"Flow ID,Protocol,Rate,Label\n", &b("")),
        "t.txt: no records"
    );
    assert_eq!(
        err(b"Flow ID,Protocol,Rate,Label\na,6,1\n", &b("")),
        "t.txt:2: expected 4 fields, found 3"
    );
    let no_benign = CsvSchema {
        benign: vec![],
        ..csv_schema("")
    };
    assert_eq!(
        err(FLOWS.as_bytes(), &csv_opts(no_benign, Task::Binary)),
        "t.txt: invalid schema: 'benign' must list at least one label value"
    );
    // A repeated ignored column is ignored each time.
    let twice = "Flow ID,Protocol,Rate,Flow ID,Label\na,6,1,a,BENIGN\n";
    assert_eq!(parse(twice, &b("")).x.n_features(), 2);
    // Duplicate feature names (CICFlowMeter repeats 'Fwd Header Length') are two features.
    let dup = "Flow ID,Protocol,Len,Len,Label\na,6,1,2,BENIGN\n";
    let ds = parse(dup, &b(""));
    assert_eq!(ds.x.row_into_vec(0), vec![0.0, 1.0, 2.0]);
    let eval = "Len,Label,Protocol,Len,Flow ID\n1,BENIGN,6,2,a\n";
    let ev =
        parse_bytes_with_schema("e.csv", eval.as_bytes(), &ds.schema, &opts(Task::Binary)).unwrap();
    assert_eq!(ev.x, ds.x);
}

#[test]
fn detection_feeds_parsing() {
    let e = parse_bytes("f.csv", FLOWS.as_bytes(), &opts(Task::Binary)).unwrap_err();
    assert!(matches!(e, DataError::UnknownFormat { .. }));
    assert!(e
        .to_string()
        .starts_with("f.csv: unrecognised format: the first line is 'Flow ID, Protocol,"));
    assert_eq!(
        detect_format(NSL_ROW.as_bytes()).unwrap(),
        FormatSpec::NslKdd
    );
}

#[test]
fn batches_stream_with_the_schema() {
    let schema = parse(FLOWS, &csv_opts(csv_schema(""), Task::Binary)).schema;
    let read = |text: &str, n: usize| -> Vec<Batch> {
        BatchReader::new("p.csv", text.as_bytes(), &schema, n)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };
    let batches = read(FLOWS, 3);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].first_line, 2);
    assert_eq!(batches[0].lines, vec![2, 3, 4]);
    assert_eq!(batches[0].labels, Some(vec![0, 1, 1]));
    assert_eq!(batches[1].first_line, 5);
    assert_eq!(batches[1].x.n_rows(), 1);
    // Without the label column: no labels, same features.
    let unlabelled = "Flow ID,Protocol,Flow Duration,Fwd Pkts/s\na,6,100,1.5\n\nb,17,200,2.5\n";
    let batches = read(unlabelled, 10);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].labels, None);
    assert_eq!(batches[0].lines, vec![2, 4]);
    assert_eq!(batches[0].x.row_into_vec(1), vec![1.0, 200.0, 2.5]);
    // A bad row ends the stream with its error.
    let bad = "Flow ID,Protocol,Flow Duration,Fwd Pkts/s\na,6,100,1.5\nb,17,oops,2.5\nc,6,1,1\n";
    let items: Vec<_> = BatchReader::new("p.csv", bad.as_bytes(), &schema, 1)
        .unwrap()
        .collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(
        items[1].as_ref().unwrap_err().to_string(),
        "p.csv:3:3: expected a number, found 'oops' (Flow Duration)"
    );
    // Missing feature columns and empty input.
    let e = BatchReader::new("p.csv", &b"Flow ID,Protocol\n"[..], &schema, 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.csv: header lacks columns 'Flow Duration', 'Fwd Pkts/s' named in the schema"
    );
    let e = BatchReader::new("p.csv", &b"\n"[..], &schema, 1).unwrap_err();
    assert_eq!(e.to_string(), "p.csv: no records");

    // NSL-KDD: no header; an unmapped label drops the batch's labels, not the rows.
    let nsl_schema = parse(NSL_ROW, &opts(Task::Binary)).schema;
    let text = lines(&[
        NSL_ROW.to_string(),
        nsl(&[(42, "zeroday")]),
        NSL_ROW.to_string(),
    ]);
    let batches: Vec<Batch> = BatchReader::new("p.txt", text.as_bytes(), &nsl_schema, 2)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches[0].labels, None);
    assert_eq!(batches[0].x.n_rows(), 2);
    assert_eq!(batches[1].labels, Some(vec![0]));
    assert_eq!(batches[1].first_line, 3);
}

// ---------------------------------------------------------------------------------------------
// Properties

const ATTACKS: [&str; 8] = [
    "normal",
    "neptune",
    "smurf",
    "satan",
    "guess_passwd",
    "rootkit",
    "mscan",
    "apache2",
];

/// A random NSL-KDD-like row: (cells as rendered, expected numeric values).
fn nsl_row_strategy() -> impl Strategy<Value = Vec<String>> {
    let numeric = prop_oneof![
        (0u32..100_000).prop_map(|v| v.to_string()),
        (0u32..=100).prop_map(|v| format!("{:.2}", f64::from(v) / 100.0)),
        any::<f32>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| v.to_string()),
        (-1e30f64..1e30).prop_map(|v| format!("{v:e}")),
    ];
    (
        proptest::collection::vec(numeric, 38),
        prop::sample::select(vec!["tcp", "udp", "icmp"]),
        "[a-z_]{1,6}",
        prop::sample::select(vec!["SF", "S0", "REJ", "RSTO"]),
        prop::sample::select(ATTACKS.to_vec()),
        0u32..=21,
        " {0,2}",
    )
        .prop_map(|(nums, proto, service, flag, attack, difficulty, pad)| {
            let mut cells = Vec::with_capacity(43);
            let mut nums = nums.into_iter();
            for i in 0..41 {
                cells.push(match i {
                    1 => proto.to_string(),
                    2 => service.clone(),
                    3 => flag.to_string(),
                    _ => nums.next().unwrap_or_default(),
                });
            }
            cells.push(attack.to_string());
            cells.push(difficulty.to_string());
            cells
                .into_iter()
                .map(|c| format!("{pad}{c}{pad}"))
                .collect()
        })
}

fn render(rows: &[Vec<String>], crlf: bool) -> String {
    let end = if crlf { "\r\n" } else { "\n" };
    rows.iter()
        .map(|r| format!("{}{end}", r.join(",")))
        .collect()
}

/// Random flow-file-like bytes: valid rows with some broken ones.
fn messy_file() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(nsl_row_strategy(), 1..25),
        proptest::collection::vec((0usize..25, 0usize..43, "[a-z0-9.,\"]{0,4}"), 0..4),
    )
        .prop_map(|(mut rows, damage)| {
            for (r, c, text) in damage {
                let n_rows = rows.len();
                if let Some(cell) = rows.get_mut(r % n_rows).and_then(|row| row.get_mut(c)) {
                    *cell = text;
                }
            }
            render(&rows, false)
        })
}

fn run_in_pool<T: Send>(n_threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n_threads)
        .build()
        .unwrap()
        .install(f)
}

fn result_text(r: Result<Dataset, DataError>) -> Result<Dataset, String> {
    r.map_err(|e| e.to_string())
}

#[test]
fn plain_lines_take_the_one_pass_split() {
    let roles = [Role::Num(0), Role::Cat(0), Role::Label, Role::Num(1)];
    let mut fields = Fields::default();
    let mut row = [0.0f32; 2];
    for (line, values) in [
        ("181,tcp,normal.,0.11", [181.0, 0.11]),
        ("0,udp,smurf,5.\r", [0.0, 5.0]),
        (".5,,x,007", [0.5, 7.0]),
    ] {
        assert!(
            split_plain(line.as_bytes(), &roles, &mut fields, &mut row),
            "{line:?}"
        );
        assert_eq!(row, values, "{line:?}");
    }
    // Anything else goes to the general path.
    for line in [
        "181,tcp,normal",
        "181,tcp,normal,1,2",
        " 181,tcp,normal,1",
        "181,tcp ,normal,1",
        "-1,tcp,normal,1",
        "1e3,tcp,normal,1",
        "1,\"tcp\",normal,1",
        "1,tcp,normal,",
        "1,tcp,normal,.",
        "1.2.3,tcp,normal,1",
        "99999999999999999999,tcp,normal,1",
        "0.123456789012,tcp,normal,1",
        "",
    ] {
        assert!(
            !split_plain(line.as_bytes(), &roles, &mut fields, &mut row),
            "{line:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Where the one-pass split takes a line, it splits it as `Fields::split` does and parses
    /// each numeric cell as `parse_number` does.
    #[test]
    fn one_pass_split_equals_the_general_path(
        cells in proptest::collection::vec(prop_oneof![
            "[0-9]{1,8}(\\.[0-9]{0,4})?",
            "[0-9. \r\"a-z+-]{0,5}",
            "[0-9]{18,21}",
        ], 1..8),
        kinds in proptest::collection::vec(0u8..3, 8),
        crlf in any::<bool>(),
    ) {
        let roles: Vec<Role> = kinds[..cells.len()]
            .iter()
            .enumerate()
            .map(|(i, k)| match k {
                0 => Role::Num(i),
                1 => Role::Cat(i),
                _ => Role::Skip,
            })
            .collect();
        let mut line = cells.join(",");
        if crlf {
            line.push('\r');
        }
        let mut fast = Fields::default();
        let mut row = vec![0.0f32; cells.len()];
        if split_plain(line.as_bytes(), &roles, &mut fast, &mut row) {
            let mut general = Fields::default();
            prop_assert!(general.split(line.as_bytes()).is_ok());
            let bytes = line.as_bytes();
            let cells_of = |f: &Fields| (0..f.len()).map(|i| f.get(bytes, i).to_vec()).collect::<Vec<_>>();
            prop_assert_eq!(cells_of(&fast), cells_of(&general));
            for (i, role) in roles.iter().enumerate() {
                if let Role::Num(f) = *role {
                    let want = parse_number(general.get(line.as_bytes(), i));
                    prop_assert_eq!(Some(row[f].to_bits()), want.map(f32::to_bits));
                }
            }
        } else {
            // It may refuse a line only for what it does not handle; integers of 1 to 19 digits
            // and unpadded cells without quotes it always takes.
            let simple = cells.iter().zip(&roles).all(|(c, role)| match role {
                Role::Num(_) => (1..=19).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()),
                _ => !c.contains('"') && c.trim() == c,
            });
            prop_assert!(!simple, "refused a plain line: {:?}", line);
        }
    }

    #[test]
    fn fast_number_parsing_equals_std(text in prop_oneof![
        "[-+]?[0-9]{1,12}(\\.[0-9]{0,12})?",
        "[-+]?\\.[0-9]{1,8}",
        "[-+]?[0-9]{1,3}(\\.[0-9]{1,3})?[eE][-+]?[0-9]{1,2}",
        any::<f32>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        "[0-9.eE+-]{0,6}",
    ]) {
        let want = text.parse::<f32>().ok();
        prop_assert_eq!(parse_number(text.as_bytes()).map(f32::to_bits), want.map(f32::to_bits));
    }

    #[test]
    fn nsl_kdd_round_trip(rows in proptest::collection::vec(nsl_row_strategy(), 1..40), crlf in any::<bool>()) {
        let text = render(&rows, crlf);
        let ds = parse_bytes("p.txt", text.as_bytes(), &opts(Task::Multiclass)).unwrap();
        prop_assert_eq!(ds.x.n_rows(), rows.len());
        for (f, feature) in ds.schema.features.iter().enumerate() {
            let column = ds.x.column(f);
            match &feature.kind {
                FeatureKind::Numeric => {
                    for (r, row) in rows.iter().enumerate() {
                        let want: f32 = row[f].trim().parse().unwrap();
                        prop_assert_eq!(column[r].to_bits(), want.to_bits());
                    }
                }
                FeatureKind::Categorical { categories } => {
                    let mut distinct: Vec<&str> = rows.iter().map(|row| row[f].trim()).collect();
                    distinct.sort_unstable();
                    distinct.dedup();
                    prop_assert_eq!(categories, &distinct);
                    for (r, row) in rows.iter().enumerate() {
                        let code = distinct.binary_search(&row[f].trim()).unwrap();
                        prop_assert_eq!(column[r], code as f32);
                    }
                }
            }
        }
        for (r, row) in rows.iter().enumerate() {
            let category = crate::kdd_category(row[41].trim()).unwrap();
            prop_assert_eq!(ds.schema.classes[ds.y[r] as usize].as_str(), category);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), skip in any::<bool>()) {
        let formats = [
            None,
            Some(FormatSpec::NslKdd),
            Some(FormatSpec::Kdd99),
            Some(FormatSpec::UnswNb15),
            Some(FormatSpec::Csv(csv_schema(""))),
        ];
        let _ = detect_format(&bytes);
        for format in formats {
            for task in [Task::Binary, Task::Multiclass] {
                let o = LoadOptions { format: format.clone(), skip_invalid: skip, ..opts(task) };
                if let Ok(ds) = parse_bytes("p", &bytes, &o) {
                    prop_assert!(ds.x.column(0).iter().all(|v| v.is_finite()));
                }
            }
        }
        let schema = parse(NSL_ROW, &opts(Task::Binary)).schema;
        let _ = parse_bytes_with_schema("p", &bytes, &schema, &skipping(Task::Binary));
        if let Ok(reader) = BatchReader::new("p", &bytes[..], &schema, 3) {
            for _ in reader {}
        }
        let _ = CsvSchema::from_toml_str("p", &String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn truncated_and_damaged_files_never_panic(text in messy_file(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let bytes = text.as_bytes();
        let truncated = &bytes[..cut.index(bytes.len() + 1)];
        let mut flipped = bytes.to_vec();
        let i = flip.0.index(flipped.len());
        flipped[i] = flip.1;
        let unsw = unsw_file(&[unsw(&[])]);
        let unsw_cut = &unsw.as_bytes()[..cut.index(unsw.len() + 1)];
        for input in [truncated, &flipped[..], unsw_cut] {
            for o in [opts(Task::Binary), skipping(Task::Multiclass)] {
                let _ = parse_bytes("p", input, &o);
            }
        }
    }

    #[test]
    fn parallel_chunked_parse_equals_sequential(text in messy_file(), chunk_bytes in 1usize..400, skip in any::<bool>(), multi in any::<bool>()) {
        let task = if multi { Task::Multiclass } else { Task::Binary };
        let o = LoadOptions { skip_invalid: skip, unmapped_label: if skip { UnmappedLabelPolicy::Skip } else { UnmappedLabelPolicy::Error }, ..opts(task) };
        let sequential = run_in_pool(1, || result_text(parse_bytes_chunked("p", text.as_bytes(), &o, usize::MAX)));
        let parallel = run_in_pool(2, || result_text(parse_bytes_chunked("p", text.as_bytes(), &o, chunk_bytes)));
        prop_assert_eq!(&sequential, &parallel);
        if let Ok(train) = &sequential {
            let again = run_in_pool(2, || result_text(parse_bytes_with_schema_chunked("p", text.as_bytes(), &train.schema, &o, chunk_bytes)));
            prop_assert_eq!(&again.map(|d| (d.x, d.y)), &Ok((train.x.clone(), train.y.clone())));
        }
    }

    /// A batch parsed in parallel chunks equals one parsed in one piece: rows, labels, line
    /// numbers, flow identities, and the first error, with blank lines between records.
    #[test]
    fn parallel_batches_equal_sequential_ones(text in messy_file(), blank_every in 2usize..9, batch_rows in 1usize..30) {
        let schema = parse(NSL_ROW, &opts(Task::Binary)).schema;
        let text: String = text
            .lines()
            .enumerate()
            .map(|(k, l)| if k % blank_every == 1 { format!("\n{l}\n") } else { format!("{l}\n") })
            .collect();
        let read = |parallel_from: usize| {
            run_in_pool(2, || match BatchReader::new("p", text.as_bytes(), &schema, batch_rows) {
                Ok(mut reader) => {
                    reader.parallel_from = parallel_from;
                    Ok(reader.map(|b| b.map_err(|e| e.to_string())).collect::<Vec<_>>())
                }
                Err(e) => Err(e.to_string()),
            })
        };
        prop_assert_eq!(read(usize::MAX), read(1));
    }

    /// However the reader's buffer cuts the input (a line may arrive in several parts), the
    /// batches are those of the whole input read at once: rows, line numbers, errors, with blank
    /// lines, `\r\n` line ends and a last line without its newline.
    #[test]
    fn batches_do_not_depend_on_the_reader_buffer(text in messy_file(), blank_every in 2usize..9, crlf in any::<bool>(), last_newline in any::<bool>(), capacity in 1usize..64, batch_rows in 1usize..30) {
        let schema = parse(NSL_ROW, &opts(Task::Binary)).schema;
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text: String = text
            .lines()
            .enumerate()
            .map(|(k, l)| if k % blank_every == 1 { format!("{end}{l}{end}") } else { format!("{l}{end}") })
            .collect();
        if !last_newline {
            text.truncate(text.trim_end().len());
        }
        let read = |reader: Box<dyn std::io::BufRead>| match BatchReader::new("p", reader, &schema, batch_rows) {
            Ok(reader) => Ok(reader.map(|b| b.map_err(|e| e.to_string())).collect::<Vec<_>>()),
            Err(e) => Err(e.to_string()),
        };
        let whole = read(Box::new(text.as_bytes()));
        // Reads of at most `capacity` bytes, whatever was asked: lines arrive in pieces.
        let cut = read(Box::new(std::io::BufReader::with_capacity(capacity, Trickle(text.as_bytes(), capacity))));
        prop_assert_eq!(&whole, &cut);
        // Without labels: the same batches (and errors), with `labels: None`.
        let unlabelled = match BatchReader::new("p", text.as_bytes(), &schema, batch_rows) {
            Ok(reader) => Ok(reader.without_labels().map(|b| b.map_err(|e| e.to_string())).collect::<Vec<_>>()),
            Err(e) => Err(e.to_string()),
        };
        let stripped = whole.map(|batches| {
            batches.into_iter().map(|b| b.map(|b| Batch { labels: None, ..b })).collect::<Vec<_>>()
        });
        prop_assert_eq!(unlabelled, stripped);
    }

    #[test]
    fn batches_concatenated_equal_the_whole_parse(rows in proptest::collection::vec(nsl_row_strategy(), 1..40), batch_rows in 1usize..12) {
        let text = render(&rows, false);
        let train_rows = rows.len() / 2 + 1;
        let train = parse(&render(&rows[..train_rows.min(rows.len())], false), &opts(Task::Binary));
        let whole = parse_bytes_with_schema("p", text.as_bytes(), &train.schema, &opts(Task::Binary)).unwrap();
        let mut values = Vec::new();
        let mut labels = Vec::new();
        let reader = BatchReader::new("p", text.as_bytes(), &train.schema, batch_rows).unwrap();
        for (n_batches, batch) in reader.enumerate() {
            let batch = batch.unwrap();
            prop_assert!(batch.x.n_rows() <= batch_rows);
            prop_assert_eq!(batch.first_line, n_batches * batch_rows + 1);
            values.extend(batch.x.to_row_major());
            labels.extend(batch.labels.unwrap());
        }
        prop_assert_eq!(values, whole.x.to_row_major());
        prop_assert_eq!(labels, whole.y);
    }
}

#[test]
fn nsl_kdd_attack_names_are_learned_sorted_after_normal() {
    let text = lines(&[
        nsl(&[(42, "smurf")]),
        nsl(&[]),
        nsl(&[(42, "neptune")]),
        nsl(&[(42, "smurf")]),
    ]);
    let ds = parse(&text, &opts(Task::AttackName));
    assert_eq!(ds.schema.task, Task::AttackName);
    assert_eq!(ds.schema.classes, ["normal", "neptune", "smurf"]);
    assert_eq!(ds.y, [2, 0, 1, 2]);
    // Evaluation with the learned schema: a name unseen in training is unmapped.
    let test = lines(&[nsl(&[(42, "neptune")]), nsl(&[(42, "satan")])]);
    let e = parse_bytes_with_schema("t.txt", test.as_bytes(), &ds.schema, &opts(Task::Binary))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("label 'satan' does not map to a attack-name class"),
        "{e}"
    );
}

/// A reader that hands out at most `.1` bytes per read.
struct Trickle<'a>(&'a [u8], usize);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

proptest! {
    /// Lines found with the vectorised newline search are the lines `split` gives, empty ones,
    /// a missing or present final newline, and `\r` included.
    #[test]
    fn split_lines_equals_split_at_newlines(
        text in proptest::collection::vec(
            prop_oneof![4 => Just(b'\n'), 1 => Just(b'\r'), 8 => any::<u8>()],
            0..300,
        ),
    ) {
        let fast: Vec<&[u8]> = split_lines(&text).collect();
        let slow: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        prop_assert_eq!(fast, slow);
    }
}
