//! Flow-record ingestion for fedids.
//!
//! This crate owns everything between a flow file on disk and a dense [`FeatureMatrix`] with class
//! labels: the built-in dataset formats ([`FormatSpec`]: NSL-KDD, KDD Cup 99, UNSW-NB15 and generic
//! CSV with a TOML [`CsvSchema`]), format auto-detection, label mapping for the two [`Task`]s,
//! categorical dictionaries ([`Schema`]) and precise errors ([`DataError`]: file, line, column,
//! value, what was expected).
//!
//! It must not know about forests, federation, async runtimes or sockets. Its parsing functions take
//! bytes or readers plus a source name used in error messages; [`load_path`] is the one thin
//! convenience that opens a file.
//!
//! Entry points:
//!
//! * [`parse_bytes`] / [`load_path`] read a training file and learn its [`Schema`];
//! * [`parse_bytes_with_schema`] / [`load_path_with_schema`] read an evaluation file with a learned
//!   schema (unknown categorical values get the explicit unknown code);
//! * [`BatchReader`] streams a file in bounded-memory [`Batch`]es for prediction;
//! * [`detect_format`] guesses the format, [`CsvSchema::from_toml_str`] reads a generic CSV schema,
//!   [`CsvSchema::cicflowmeter`] is the CICFlowMeter (CIC-IDS-2017) preset;
//! * [`Batch::meta`] carries each streamed row's flow identity ([`FlowMeta`]: timestamp, addresses,
//!   ports, protocol) where the format has it, for alerts; it is never a model feature unless the
//!   format also lists the column as one.
//!
//! Whole-file parsing is parallel (rayon) over chunks of the input, with results identical for any
//! thread count. Records are lines: cells are trimmed, `\r\n` line ends and a leading UTF-8 BOM are
//! accepted, blank lines are not records, and quoted cells (RFC 4180) may hold commas but not
//! newlines. Malformed rows are errors unless [`LoadOptions::skip_invalid`] is set, in which case
//! they are skipped and counted in the [`LoadReport`] (never silently).
//!
//! ```
//! use fedids_data::{parse_bytes, LoadOptions, Task};
//! let rows = b"0,tcp,http,SF,181,5450,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,8,8,0.00,0.00,0.00,0.00,1.00,0.00,0.00,9,9,1.00,0.00,0.11,0.00,0.00,0.00,0.00,0.00,normal,21\n";
//! let ds = parse_bytes("mini.txt", rows, &LoadOptions::new(Task::Binary)).unwrap();
//! assert_eq!(ds.x.n_rows(), 1);
//! assert_eq!(ds.schema.classes[ds.y[0] as usize], "normal");
//! ```

#![deny(missing_docs)]

mod error;
mod formats;
mod labels;
mod matrix;
mod meta;
mod parse;
mod schema;
mod stream;

pub use error::DataError;
pub use formats::{
    detect_format, KDD_CATEGORICAL, KDD_FEATURES, UNSW_CATEGORICAL, UNSW_COLUMNS, ZEEK_CONN_BENIGN,
    ZEEK_CONN_CATEGORICAL, ZEEK_CONN_FEATURES,
};
pub use labels::{kdd_category, BINARY_CLASSES, KDD_CLASSES, UNSW_CLASSES};
pub use matrix::FeatureMatrix;
pub use meta::{FlowMeta, FlowMetaTable, MetaField};
pub use parse::{
    load_path, load_path_with_schema, parse_bytes, parse_bytes_with_schema, MAX_SKIP_REASONS,
};
pub use schema::{Feature, FeatureKind, Schema, Task};
pub use stream::{Batch, BatchReader};

use serde::{Deserialize, Serialize};

/// A flow-file format. Built-in formats know their columns; `Csv` carries a user schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FormatSpec {
    /// NSL-KDD: 43 columns, no header (41 features, attack name, difficulty).
    NslKdd,
    /// KDD Cup 99: 42 columns (41 features, label), optional header, label with or without a
    /// trailing dot.
    Kdd99,
    /// UNSW-NB15 partition CSV: header (optionally after a UTF-8 BOM), `id`, 42 features,
    /// `attack_cat`, `label`.
    UnswNb15,
    /// Any flow CSV with a header, described by a [`CsvSchema`] (see
    /// [`CsvSchema::cicflowmeter`] for the CICFlowMeter / CIC-IDS-2017 preset).
    Csv(CsvSchema),
    /// Zeek `conn.log` in its TSV form: `#separator \x09`, `#fields` and `#types` header lines,
    /// `-` for unset and `(empty)` for empty fields. The features are [`ZEEK_CONN_FEATURES`]; an
    /// optional extra `label` field (not standard in Zeek) makes the file usable for training.
    /// Added last so that model files written before it still decode.
    ZeekConn,
}

impl FormatSpec {
    /// The name used by `--format` and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            FormatSpec::NslKdd => "nsl-kdd",
            FormatSpec::Kdd99 => "kdd99",
            FormatSpec::UnswNb15 => "unsw-nb15",
            FormatSpec::Csv(_) => "csv",
            FormatSpec::ZeekConn => "zeek-conn",
        }
    }
}

/// What to do with a non-finite numeric cell (`NaN`, `Infinity`) in a generic CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NonFinitePolicy {
    /// `NaN` becomes 0; `Infinity`/`-Infinity` become the largest/smallest finite `f32`.
    #[default]
    Clamp,
    /// The cell is an invalid value (an error, or a skipped row under `--skip-invalid`).
    Reject,
}

/// The TOML schema that describes a generic flow CSV (CICFlowMeter, Zeek-derived tables, ...).
///
/// ```toml
/// label = "Label"               # the label column (header names are trimmed)
/// benign = ["BENIGN"]           # label values that mean benign traffic
/// categorical = ["Protocol"]    # columns holding symbols; every other used column is numeric
/// ignore = ["Flow ID", "Timestamp"]  # columns that are not features
/// non_finite = "clamp"          # or "reject"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSchema {
    /// The label column.
    pub label: String,
    /// Label values that mean benign traffic (at least one; the first names class 0 under the
    /// multiclass task).
    pub benign: Vec<String>,
    /// Columns holding symbols; every other feature column is numeric.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Columns that are not features (and not the label).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// What to do with `NaN` and infinities in numeric columns.
    #[serde(default)]
    pub non_finite: NonFinitePolicy,
}

/// What to do with a label the task's mapping does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum UnmappedLabelPolicy {
    /// Stop with an error naming the label, file and line.
    #[default]
    Error,
    /// Skip the row and count it in the [`LoadReport`].
    Skip,
}

/// How to read a flow file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// `None` auto-detects the format from the header and the column count.
    pub format: Option<FormatSpec>,
    /// What the labels are mapped to (training only; with a schema, the schema's task is used).
    pub task: Task,
    /// Skip malformed rows (counted and reported) instead of stopping at the first one.
    pub skip_invalid: bool,
    /// What to do with a label the task's class mapping does not know.
    pub unmapped_label: UnmappedLabelPolicy,
}

impl LoadOptions {
    /// Auto-detected format, no skipping: the first malformed row or unmapped label is an error.
    pub fn new(task: Task) -> Self {
        LoadOptions {
            format: None,
            task,
            skip_invalid: false,
            unmapped_label: UnmappedLabelPolicy::Error,
        }
    }
}

/// A labelled, encoded dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The schema the rows were encoded with (learned, or the one given).
    pub schema: Schema,
    /// One row per kept record.
    pub x: FeatureMatrix,
    /// Class index per row, `< schema.classes.len()`.
    pub y: Vec<u32>,
    /// What happened while loading.
    pub report: LoadReport,
}

/// What happened while loading: rows read, rows skipped and why (never silent).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LoadReport {
    /// The source name (file name).
    pub source: String,
    /// Rows kept (the rows of the dataset).
    pub n_rows: usize,
    /// Malformed rows skipped under [`LoadOptions::skip_invalid`].
    pub n_skipped_invalid: usize,
    /// Rows skipped under [`UnmappedLabelPolicy::Skip`].
    pub n_skipped_unmapped_label: usize,
    /// The first [`MAX_SKIP_REASONS`] skip reasons of either kind, in file order, rendered like
    /// errors (`file:line:col: ...`).
    pub first_skips: Vec<String>,
}
