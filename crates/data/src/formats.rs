//! What each format's columns are: feature names, label columns, headers, detection, and the
//! per-file [`Layout`] that tells the record parser what to do with every field.

use std::collections::HashMap;

use crate::error::DataError;
use crate::labels::LabelRule;
use crate::meta::{meta_field, MetaField};
use crate::parse::{parse_number, Fields};
use crate::{CsvSchema, Feature, FeatureKind, FormatSpec, NonFinitePolicy, Schema, Task};

/// The 41 NSL-KDD feature names, in column order (KDD Cup 99 uses the same ones).
pub const KDD_FEATURES: [&str; 41] = [
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
];

/// The symbolic NSL-KDD / KDD Cup 99 features.
pub const KDD_CATEGORICAL: [&str; 3] = ["protocol_type", "service", "flag"];

/// The UNSW-NB15 partition-file columns, in file order.
pub const UNSW_COLUMNS: [&str; 45] = [
    "id",
    "dur",
    "proto",
    "service",
    "state",
    "spkts",
    "dpkts",
    "sbytes",
    "dbytes",
    "rate",
    "sttl",
    "dttl",
    "sload",
    "dload",
    "sloss",
    "dloss",
    "sinpkt",
    "dinpkt",
    "sjit",
    "djit",
    "swin",
    "stcpb",
    "dtcpb",
    "dwin",
    "tcprtt",
    "synack",
    "ackdat",
    "smean",
    "dmean",
    "trans_depth",
    "response_body_len",
    "ct_srv_src",
    "ct_state_ttl",
    "ct_dst_ltm",
    "ct_src_dport_ltm",
    "ct_dst_sport_ltm",
    "ct_dst_src_ltm",
    "is_ftp_login",
    "ct_ftp_cmd",
    "ct_flw_http_mthd",
    "ct_src_ltm",
    "ct_srv_dst",
    "is_sm_ips_ports",
    "attack_cat",
    "label",
];

/// The symbolic UNSW-NB15 features.
pub const UNSW_CATEGORICAL: [&str; 3] = ["proto", "service", "state"];

/// The Zeek `conn.log` fields a [`FormatSpec::ZeekConn`] model reads, in matrix order.
///
/// They are the per-connection counters and states that Zeek writes for every connection:
/// the responder port (the service actually contacted), duration, payload and IP-level byte and
/// packet counts in both directions, missed bytes, and the symbolic `proto`, `service`,
/// `conn_state` and `history` (the latter as a whole string, e.g. `ShADadFf`, coded like every
/// categorical value: learned dictionary, explicit unknown code). Addresses, the originator port,
/// `uid` and `ts` are identity, not features: a model must not learn who talked, only how.
/// An unset numeric field (`-`, e.g. the duration of an unanswered `S0` attempt) reads as 0.
pub const ZEEK_CONN_FEATURES: [&str; 13] = [
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
];

/// The symbolic Zeek `conn.log` features.
pub const ZEEK_CONN_CATEGORICAL: [&str; 4] = ["proto", "service", "conn_state", "history"];

/// Values of the optional Zeek `label` field that mean benign traffic (the first names class 0).
/// Every other value is an attack class (learned from the training data under `multiclass`).
pub const ZEEK_CONN_BENIGN: [&str; 6] = ["benign", "Benign", "BENIGN", "normal", "Normal", "-"];

/// The (non-standard) Zeek field that holds a flow's label in labelled logs.
const ZEEK_LABEL: &str = "label";

/// UNSW-NB15 columns that are not features.
const UNSW_NON_FEATURES: [&str; 3] = ["id", "attack_cat", "label"];

const NSL_KDD_FIELDS: usize = 43;
const KDD99_FIELDS: usize = 42;
const MAX_DIFFICULTY: u32 = 21;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading UTF-8 byte order mark.
pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The first non-blank line of `bytes`: (its 1-based line number, the line without its newline,
/// the offset just past it).
pub(crate) fn first_line(bytes: &[u8]) -> Option<(usize, &[u8], usize)> {
    let mut start = 0;
    let mut line_no = 1;
    while start < bytes.len() {
        let rest = bytes.get(start..).unwrap_or_default();
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(p) => (rest.get(..p).unwrap_or_default(), start + p + 1),
            None => (rest, bytes.len()),
        };
        if !is_blank(line) {
            return Some((line_no, line, next));
        }
        start = next;
        line_no += 1;
    }
    None
}

/// Whether the first non-blank line of a file in `format` is a header.
pub(crate) fn is_header(format: &FormatSpec, line: &[u8]) -> bool {
    match format {
        FormatSpec::NslKdd => false,
        FormatSpec::Kdd99 => {
            let mut fields = Fields::default();
            fields.split(line).is_ok() && fields.get(line, 0) == b"duration"
        }
        FormatSpec::UnswNb15 | FormatSpec::Csv(_) => true,
        FormatSpec::ZeekConn => is_zeek_fields(line),
    }
}

/// Whether `line` is a Zeek `#fields` header line.
pub(crate) fn is_zeek_fields(line: &[u8]) -> bool {
    line.strip_prefix(b"#fields")
        .is_some_and(|rest| rest.first().is_none_or(|&b| b == b'\t'))
}

/// A header line: its 1-based line number, the line, and the offset just past it.
pub(crate) type HeaderAt<'a> = (usize, &'a [u8], usize);

/// Checks a Zeek `#separator` line: only the tab separator (`\x09`) is supported.
pub(crate) fn check_zeek_separator(
    input: &str,
    line_no: usize,
    line: &[u8],
) -> Result<(), DataError> {
    let Some(rest) = line.strip_prefix(b"#separator") else {
        return Ok(());
    };
    let value = String::from_utf8_lossy(rest).trim().to_string();
    if value == "\\x09" || value.is_empty() {
        Ok(())
    } else {
        Err(DataError::BadHeader {
            input: input.to_string(),
            line: line_no,
            message: format!("zeek separator '{value}' is not supported, expected a tab ('\\x09')"),
        })
    }
}

/// The Zeek `#fields` line of `bytes`: its line number, the line, and the offset just past it.
/// Leading lines must all be `#` lines (a record before `#fields` is an error); `None` if the file
/// has no `#fields` line before its first record.
pub(crate) fn zeek_header<'a>(
    input: &str,
    bytes: &'a [u8],
) -> Result<Option<HeaderAt<'a>>, DataError> {
    let mut start = 0;
    let mut line_no = 1;
    while start < bytes.len() {
        let rest = bytes.get(start..).unwrap_or_default();
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(p) => (rest.get(..p).unwrap_or_default(), start + p + 1),
            None => (rest, bytes.len()),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if is_zeek_fields(line) {
            return Ok(Some((line_no, line, next)));
        }
        if line.first() == Some(&b'#') {
            check_zeek_separator(input, line_no, line)?;
        } else if !is_blank(line) {
            return Ok(None);
        }
        start = next;
        line_no += 1;
    }
    Ok(None)
}

/// Guesses the format of a flow file from its first line (after an optional UTF-8 BOM).
///
/// * a header starting `id,dur,` is UNSW-NB15;
/// * a header starting `duration,` with 42 columns is KDD Cup 99;
/// * a record (first field a number) with 43 fields is NSL-KDD, with 42 fields KDD Cup 99.
///
/// Anything else is [`DataError::UnknownFormat`], which suggests `--format csv --schema FILE`.
/// Generic CSV is never detected: it needs a schema.
pub fn detect_format(bytes: &[u8]) -> Result<FormatSpec, DataError> {
    detect(DETECT_SOURCE, bytes)
}

const DETECT_SOURCE: &str = "input";

pub(crate) fn detect(input: &str, bytes: &[u8]) -> Result<FormatSpec, DataError> {
    let bytes = strip_bom(bytes);
    let Some((_, line, _)) = first_line(bytes) else {
        return Err(DataError::Empty {
            input: input.to_string(),
            n_skipped: 0,
            first_skip: None,
        });
    };
    let unknown = |seen: String| DataError::UnknownFormat {
        input: input.to_string(),
        seen,
    };
    if line.starts_with(b"#separator") || is_zeek_fields(line) {
        return Ok(FormatSpec::ZeekConn);
    }
    let mut fields = Fields::default();
    if fields.split(line).is_err() {
        return Err(unknown(
            "the first line has an unterminated quote".to_string(),
        ));
    }
    let n = fields.len();
    let first = fields.get(line, 0);
    let second = fields.get(line, 1);
    if first == b"id" && second == b"dur" {
        return Ok(FormatSpec::UnswNb15);
    }
    if first == b"duration" {
        return if n == KDD99_FIELDS {
            Ok(FormatSpec::Kdd99)
        } else {
            Err(unknown(format!(
                "a header starting 'duration' with {n} columns (kdd99 has {KDD99_FIELDS})"
            )))
        };
    }
    if parse_number(first).is_some() {
        return match n {
            NSL_KDD_FIELDS => Ok(FormatSpec::NslKdd),
            KDD99_FIELDS => Ok(FormatSpec::Kdd99),
            _ => Err(unknown(format!(
                "the first record has {n} fields (nsl-kdd has {NSL_KDD_FIELDS}, kdd99 has {KDD99_FIELDS})"
            ))),
        };
    }
    let text = String::from_utf8_lossy(line);
    let shown: String = text
        .trim()
        .chars()
        .take(60)
        .flat_map(char::escape_debug)
        .collect();
    let more = if text.trim().chars().nth(60).is_some() {
        "..."
    } else {
        ""
    };
    Err(unknown(format!("the first line is '{shown}{more}'")))
}

impl CsvSchema {
    /// The preset for CICFlowMeter flow tables as published in CIC-IDS-2017 (the
    /// `TrafficLabelling` files): label ` Label` (header names are trimmed), benign `BENIGN`,
    /// `Protocol` categorical, and the identity columns `Flow ID`, `Source IP`, `Source Port`,
    /// `Destination IP`, `Destination Port` and `Timestamp` ignored as features (they still reach
    /// alerts as [`FlowMeta`](crate::FlowMeta)). `Infinity` and `NaN` cells are clamped.
    pub fn cicflowmeter() -> CsvSchema {
        CsvSchema {
            label: "Label".to_string(),
            benign: vec!["BENIGN".to_string()],
            categorical: vec!["Protocol".to_string()],
            ignore: [
                "Flow ID",
                "Source IP",
                "Source Port",
                "Destination IP",
                "Destination Port",
                "Timestamp",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            non_finite: NonFinitePolicy::Clamp,
        }
    }

    /// Parses a TOML schema file (see the type's documentation for the keys). Unknown keys are
    /// errors; so are an empty `label` or `benign` list.
    pub fn from_toml_str(source: &str, text: &str) -> Result<CsvSchema, DataError> {
        let schema: CsvSchema = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            DataError::SchemaToml {
                input: source.to_string(),
                line,
                column,
                message: e.message().trim().lines().collect::<Vec<_>>().join(", "),
            }
        })?;
        schema.validate(source)?;
        Ok(schema)
    }

    /// Checks what serde cannot: a label column, at least one benign value, no column both the
    /// label and ignored or categorical.
    pub(crate) fn validate(&self, source: &str) -> Result<(), DataError> {
        let invalid = |message: String| DataError::InvalidSchema {
            input: source.to_string(),
            message,
        };
        if self.label.trim().is_empty() {
            return Err(invalid("'label' is empty".to_string()));
        }
        if self.benign.is_empty() {
            return Err(invalid(
                "'benign' must list at least one label value".to_string(),
            ));
        }
        let label = self.label.trim();
        if self.ignore.iter().any(|c| c.trim() == label) {
            return Err(invalid(format!(
                "the label column '{label}' is also in 'ignore'"
            )));
        }
        if self.categorical.iter().any(|c| c.trim() == label) {
            return Err(invalid(format!(
                "the label column '{label}' is also in 'categorical'"
            )));
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// What the record parser does with one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Not used (an id, an ignored column, a column the schema does not read).
    Skip,
    /// Numeric feature `feature_idx`.
    Num(usize),
    /// Categorical feature `feature_idx`.
    Cat(usize),
    /// The label column.
    Label,
    /// A `0`/`1` flag that is not the label source (UNSW-NB15 `label` under multiclass).
    Flag,
    /// The NSL-KDD difficulty level: an integer from 0 to 21.
    Difficulty,
}

/// How one file's fields map to features and labels.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Column names (for messages), one per field.
    pub names: Vec<String>,
    /// One per field.
    pub roles: Vec<Role>,
    /// The fields whose cell is checked on every row besides numbers: label, flag, difficulty.
    pub checked: Vec<usize>,
    /// The categorical fields: (field, feature).
    pub categorical: Vec<(usize, usize)>,
    /// The features, in matrix order. While learning, categorical dictionaries are empty.
    pub features: Vec<Feature>,
    /// `None` when the file has no label column (allowed only for prediction).
    pub label: Option<LabelRule>,
    /// `None` for built-in formats: a non-finite number is an invalid value.
    pub non_finite: Option<NonFinitePolicy>,
    /// The field separator: `,` (CSV) or a tab (Zeek).
    pub separator: u8,
    /// Lines starting with this byte are not records (Zeek's `#` lines).
    pub comment: Option<u8>,
    /// A numeric cell equal to this reads as 0 (Zeek's unset `-`).
    pub unset_numeric: Option<&'static [u8]>,
    /// The fields that carry flow identity (read only when streaming for prediction).
    pub meta: Vec<(usize, MetaField)>,
}

impl Layout {
    pub(crate) fn n_fields(&self) -> usize {
        self.roles.len()
    }
}

/// Which columns of the file are special, for one format and task.
struct Specials {
    /// (column name, role, required).
    columns: Vec<(String, Role, bool)>,
}

/// Builds the layout of a file.
///
/// `header` is the header line and its line number (for formats that have one). `schema` is the
/// learned schema in evaluation and prediction mode; `None` while learning. `label_required` is
/// false only for prediction, where label columns may be absent.
pub(crate) fn layout(
    input: &str,
    format: &FormatSpec,
    task: Task,
    header: Option<(usize, &[u8])>,
    schema: Option<&Schema>,
    label_required: bool,
) -> Result<Layout, DataError> {
    let names: Vec<String> = match format {
        FormatSpec::NslKdd => KDD_FEATURES
            .iter()
            .chain(&["attack", "difficulty"])
            .map(|s| s.to_string())
            .collect(),
        FormatSpec::Kdd99 => {
            if let Some((line_no, line)) = header {
                let n = header_names(input, line_no, line)?.len();
                if n != KDD99_FIELDS {
                    return Err(DataError::FieldCount {
                        input: input.to_string(),
                        line: line_no,
                        expected: KDD99_FIELDS,
                        found: n,
                    });
                }
            }
            KDD_FEATURES
                .iter()
                .chain(&["label"])
                .map(|s| s.to_string())
                .collect()
        }
        FormatSpec::ZeekConn => match header {
            Some((line_no, line)) => zeek_header_names(input, line_no, line)?,
            None => {
                return Err(DataError::BadHeader {
                    input: input.to_string(),
                    line: 1,
                    message: "a zeek log needs its '#fields' header line before the first record"
                        .to_string(),
                })
            }
        },
        FormatSpec::UnswNb15 | FormatSpec::Csv(_) => match header {
            Some((line_no, line)) => header_names(input, line_no, line)?,
            None => {
                return Err(DataError::Empty {
                    input: input.to_string(),
                    n_skipped: 0,
                    first_skip: None,
                })
            }
        },
    };
    let header_line = header.map_or(1, |(line_no, _)| line_no);
    let bad_header = |message: String| DataError::BadHeader {
        input: input.to_string(),
        line: header_line,
        message,
    };

    // Special (non-feature) columns.
    let specials = match format {
        FormatSpec::NslKdd => Specials {
            columns: vec![
                ("attack".into(), Role::Label, true),
                ("difficulty".into(), Role::Difficulty, true),
            ],
        },
        FormatSpec::Kdd99 => Specials {
            columns: vec![("label".into(), Role::Label, true)],
        },
        FormatSpec::UnswNb15 => {
            let (cat_role, flag_role) = match task {
                Task::Binary => (Role::Skip, Role::Label),
                Task::Multiclass | Task::AttackName => (Role::Label, Role::Flag),
            };
            Specials {
                columns: vec![
                    ("id".into(), Role::Skip, true),
                    ("attack_cat".into(), cat_role, label_required),
                    ("label".into(), flag_role, label_required),
                ],
            }
        }
        FormatSpec::Csv(csv) => {
            let mut columns = vec![(csv.label.trim().to_string(), Role::Label, label_required)];
            for name in &csv.ignore {
                columns.push((name.trim().to_string(), Role::Skip, true));
            }
            Specials { columns }
        }
        FormatSpec::ZeekConn => Specials {
            columns: vec![(ZEEK_LABEL.to_string(), Role::Label, label_required)],
        },
    };

    let mut roles = vec![Role::Skip; names.len()];
    let mut taken = vec![false; names.len()];
    let mut missing: Vec<String> = Vec::new();
    let mut has_label = false;
    for (name, role, required) in &specials.columns {
        let hits: Vec<usize> = (0..names.len())
            .filter(|&i| names.get(i) == Some(name))
            .collect();
        match hits.as_slice() {
            [] => {
                if *required {
                    missing.push(name.clone());
                }
            }
            // An ignored name may repeat: every such column is ignored.
            _ if *role == Role::Skip => {
                for &i in &hits {
                    if let (Some(r), Some(t)) = (roles.get_mut(i), taken.get_mut(i)) {
                        *r = Role::Skip;
                        *t = true;
                    }
                }
            }
            [i] => {
                if let (Some(r), Some(t)) = (roles.get_mut(*i), taken.get_mut(*i)) {
                    *r = *role;
                    *t = true;
                }
                has_label |= *role == Role::Label;
            }
            _ => {
                return Err(bad_header(format!(
                    "the header names column '{name}' {} times",
                    hits.len()
                )))
            }
        }
    }

    // Features: the schema's, or the format's.
    let features: Vec<Feature> = match schema {
        Some(schema) => schema.features.clone(),
        None => {
            let (list, categorical): (Vec<String>, Vec<String>) = match format {
                FormatSpec::NslKdd | FormatSpec::Kdd99 => (
                    KDD_FEATURES.iter().map(|s| s.to_string()).collect(),
                    KDD_CATEGORICAL.iter().map(|s| s.to_string()).collect(),
                ),
                FormatSpec::UnswNb15 => (
                    UNSW_COLUMNS
                        .iter()
                        .filter(|c| !UNSW_NON_FEATURES.contains(c))
                        .map(|s| s.to_string())
                        .collect(),
                    UNSW_CATEGORICAL.iter().map(|s| s.to_string()).collect(),
                ),
                FormatSpec::ZeekConn => (
                    ZEEK_CONN_FEATURES.iter().map(|s| s.to_string()).collect(),
                    ZEEK_CONN_CATEGORICAL
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                ),
                FormatSpec::Csv(csv) => {
                    let categorical: Vec<String> = csv
                        .categorical
                        .iter()
                        .map(|c| c.trim().to_string())
                        .collect();
                    for c in &categorical {
                        if !names.contains(c) {
                            missing.push(c.clone());
                        }
                    }
                    let list = names
                        .iter()
                        .zip(&taken)
                        .filter(|(_, &t)| !t)
                        .map(|(n, _)| n.clone())
                        .collect();
                    (list, categorical)
                }
            };
            list.into_iter()
                .map(|name| {
                    let kind = if categorical.contains(&name) {
                        FeatureKind::Categorical {
                            categories: Vec::new(),
                        }
                    } else {
                        FeatureKind::Numeric
                    };
                    Feature { name, kind }
                })
                .collect()
        }
    };

    // Map the k-th feature called N to the k-th free column called N.
    let mut free: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, name) in names.iter().enumerate().rev() {
        if !taken.get(i).copied().unwrap_or(true) {
            free.entry(name.as_str()).or_default().push(i);
        }
    }
    for (feature_idx, feature) in features.iter().enumerate() {
        match free.get_mut(feature.name.as_str()).and_then(Vec::pop) {
            Some(i) => {
                if let Some(r) = roles.get_mut(i) {
                    *r = match feature.kind {
                        FeatureKind::Numeric => Role::Num(feature_idx),
                        FeatureKind::Categorical { .. } => Role::Cat(feature_idx),
                    };
                }
            }
            None => missing.push(feature.name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(DataError::MissingColumns {
            input: input.to_string(),
            columns: missing,
        });
    }
    if features.is_empty() {
        return Err(DataError::InvalidSchema {
            input: input.to_string(),
            message: "no feature columns are left once the label and ignored columns are removed"
                .to_string(),
        });
    }

    let label = if has_label {
        let classes = match schema {
            Some(schema) => Some(schema.classes.clone()),
            None => crate::labels::fixed_classes(format, task),
        };
        Some(
            LabelRule::new(format, task, classes.as_deref()).map_err(|message| {
                DataError::InvalidSchema {
                    input: input.to_string(),
                    message,
                }
            })?,
        )
    } else {
        None
    };
    let non_finite = match format {
        FormatSpec::Csv(csv) => Some(csv.non_finite),
        _ => None,
    };
    let zeek = matches!(format, FormatSpec::ZeekConn);
    let mut meta: Vec<(usize, MetaField)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(field) = meta_field(format, name) {
            // The first column naming a piece of identity wins.
            if !meta.iter().any(|&(_, f)| f == field) {
                meta.push((i, field));
            }
        }
    }
    let checked = roles
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Role::Label | Role::Flag | Role::Difficulty))
        .map(|(i, _)| i)
        .collect();
    let categorical = roles
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match *r {
            Role::Cat(f) => Some((i, f)),
            _ => None,
        })
        .collect();
    Ok(Layout {
        names,
        roles,
        checked,
        categorical,
        features,
        label,
        non_finite,
        separator: if zeek { b'\t' } else { b',' },
        comment: zeek.then_some(b'#'),
        unset_numeric: zeek.then_some(&b"-"[..]),
        meta,
    })
}

/// The trimmed column names of a header line.
fn header_names(input: &str, line_no: usize, line: &[u8]) -> Result<Vec<String>, DataError> {
    let line = if line_no == 1 { strip_bom(line) } else { line };
    let text = std::str::from_utf8(line).map_err(|_| DataError::InvalidUtf8 {
        input: input.to_string(),
        line: line_no,
    })?;
    let mut fields = Fields::default();
    fields
        .split(text.as_bytes())
        .map_err(|column| DataError::UnterminatedQuote {
            input: input.to_string(),
            line: line_no,
            column,
        })?;
    Ok((0..fields.len())
        .map(|i| String::from_utf8_lossy(fields.get(line, i)).into_owned())
        .collect())
}

/// The field names of a Zeek `#fields` line (tab-separated, after the `#fields` tag).
fn zeek_header_names(input: &str, line_no: usize, line: &[u8]) -> Result<Vec<String>, DataError> {
    let text = std::str::from_utf8(line).map_err(|_| DataError::InvalidUtf8 {
        input: input.to_string(),
        line: line_no,
    })?;
    Ok(text
        .trim_end_matches('\r')
        .split('\t')
        .skip(1)
        .map(|s| s.trim().to_string())
        .collect())
}

/// Checks an NSL-KDD difficulty cell.
pub(crate) fn is_difficulty(cell: &[u8]) -> bool {
    !cell.is_empty()
        && cell.len() <= 2
        && cell.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(cell)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .is_some_and(|d| d <= MAX_DIFFICULTY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        let nsl = "0,tcp,http,SF,181,5450,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,8,8,0.00,0.00,0.00,0.00,1.00,0.00,0.00,9,9,1.00,0.00,0.11,0.00,0.00,0.00,0.00,0.00,normal,21\n";
        assert_eq!(detect_format(nsl.as_bytes()).unwrap(), FormatSpec::NslKdd);
        let kdd = nsl.replace(",21\n", ".\n");
        assert_eq!(detect_format(kdd.as_bytes()).unwrap(), FormatSpec::Kdd99);
        let header = format!("{}\n{kdd}", kdd_header());
        assert_eq!(detect_format(header.as_bytes()).unwrap(), FormatSpec::Kdd99);
        let unsw = format!("\u{feff}{}\r\n", UNSW_COLUMNS.join(","));
        assert_eq!(
            detect_format(unsw.as_bytes()).unwrap(),
            FormatSpec::UnswNb15
        );
        let unsw_spaces = "  id , dur ,proto\n";
        assert_eq!(
            detect_format(unsw_spaces.as_bytes()).unwrap(),
            FormatSpec::UnswNb15
        );
        let blank_first = format!("\n  \n{nsl}");
        assert_eq!(
            detect_format(blank_first.as_bytes()).unwrap(),
            FormatSpec::NslKdd
        );
    }

    fn kdd_header() -> String {
        KDD_FEATURES
            .iter()
            .chain(&["label"])
            .copied()
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn unknown_formats_say_what_was_seen() {
        let check = |bytes: &[u8], want: &str| {
            assert_eq!(detect("flows.csv", bytes).unwrap_err().to_string(), want);
        };
        let hint = "; pass --format nsl-kdd, kdd99 or unsw-nb15, or --format csv --schema FILE for another flow csv";
        check(
            b"Flow ID, Source IP,Label\n1,2,BENIGN\n",
            &format!("flows.csv: unrecognised format: the first line is 'Flow ID, Source IP,Label'{hint}"),
        );
        check(
            b"1,2,3\n",
            &format!("flows.csv: unrecognised format: the first record has 3 fields (nsl-kdd has 43, kdd99 has 42){hint}"),
        );
        check(
            b"duration,protocol_type\n",
            &format!("flows.csv: unrecognised format: a header starting 'duration' with 2 columns (kdd99 has 42){hint}"),
        );
        check(
            b"\"abc\n",
            &format!(
                "flows.csv: unrecognised format: the first line has an unterminated quote{hint}"
            ),
        );
        check(b"", "flows.csv: no records");
        check(b"\xEF\xBB\xBF\n\n", "flows.csv: no records");
        assert_eq!(
            detect_format(b"x\n").unwrap_err().to_string(),
            format!("input: unrecognised format: the first line is 'x'{hint}")
        );
    }

    #[test]
    fn toml_schemas() {
        let ok = "label = \" Label\"\nbenign = [\"BENIGN\"]\ncategorical = [\"Protocol\"]\nignore = [\"Flow ID\"]\nnon_finite = \"reject\"\n";
        let schema = CsvSchema::from_toml_str("s.toml", ok).unwrap();
        assert_eq!(schema.non_finite, NonFinitePolicy::Reject);
        assert_eq!(schema.categorical, vec!["Protocol".to_string()]);
        let minimal = CsvSchema::from_toml_str("s.toml", "label = 'y'\nbenign = ['0']\n").unwrap();
        assert_eq!(minimal.non_finite, NonFinitePolicy::Clamp);
        assert!(minimal.ignore.is_empty());

        let check = |text: &str, want: &str| {
            assert_eq!(
                CsvSchema::from_toml_str("s.toml", text)
                    .unwrap_err()
                    .to_string(),
                want
            );
        };
        check(
            "label = 'y'\nbenign = ['0']\ncolour = 'red'\n",
            "s.toml:3:1: unknown field `colour`, expected one of `label`, `benign`, `categorical`, `ignore`, `non_finite`",
        );
        check("benign = ['0']\n", "s.toml:1:1: missing field `label`");
        check(
            "label = 'y'\nbenign = ['0'\n",
            "s.toml:3:1: invalid array, expected `]`",
        );
        check(
            "label = 'y'\nbenign = ['0']\nnon_finite = 'drop'\n",
            "s.toml:3:14: unknown variant `drop`, expected `clamp` or `reject`",
        );
        check(
            "label = 'y'\nbenign = []\n",
            "s.toml: invalid schema: 'benign' must list at least one label value",
        );
        check(
            "label = ' '\nbenign = ['a']\n",
            "s.toml: invalid schema: 'label' is empty",
        );
        check(
            "label = 'y'\nbenign = ['a']\nignore = ['y']\n",
            "s.toml: invalid schema: the label column 'y' is also in 'ignore'",
        );
        check(
            "label = 'y'\nbenign = ['a']\ncategorical = ['y']\n",
            "s.toml: invalid schema: the label column 'y' is also in 'categorical'",
        );
    }

    #[test]
    fn difficulty_cells() {
        assert!(is_difficulty(b"0"));
        assert!(is_difficulty(b"21"));
        assert!(!is_difficulty(b"22"));
        assert!(!is_difficulty(b"-1"));
        assert!(!is_difficulty(b""));
        assert!(!is_difficulty(b"1.5"));
        assert!(!is_difficulty(b"100"));
    }

    #[test]
    fn line_columns() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
