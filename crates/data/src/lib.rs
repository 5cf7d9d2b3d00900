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
//! ```
//! use fedids_data::{parse_bytes, LoadOptions, Task};
//! let rows = b"0,tcp,http,SF,181,5450,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,8,8,0.00,0.00,0.00,0.00,1.00,0.00,0.00,9,9,1.00,0.00,0.11,0.00,0.00,0.00,0.00,0.00,normal,21\n";
//! let ds = parse_bytes("mini.txt", rows, &LoadOptions::new(Task::Binary)).unwrap();
//! assert_eq!(ds.x.n_rows(), 1);
//! assert_eq!(ds.schema.classes[ds.y[0] as usize], "normal");
//! ```

mod matrix;
mod schema;

pub use matrix::FeatureMatrix;
pub use schema::{Feature, FeatureKind, Schema, Task};

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
    /// Any flow CSV with a header, described by a [`CsvSchema`].
    Csv(CsvSchema),
}

impl FormatSpec {
    /// The name used by `--format` and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            FormatSpec::NslKdd => "nsl-kdd",
            FormatSpec::Kdd99 => "kdd99",
            FormatSpec::UnswNb15 => "unsw-nb15",
            FormatSpec::Csv(_) => "csv",
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
    pub label: String,
    pub benign: Vec<String>,
    #[serde(default)]
    pub categorical: Vec<String>,
    #[serde(default)]
    pub ignore: Vec<String>,
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
    pub task: Task,
    /// Skip malformed rows (counted and reported) instead of stopping at the first one.
    pub skip_invalid: bool,
    pub unmapped_label: UnmappedLabelPolicy,
}

impl LoadOptions {
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
    pub schema: Schema,
    pub x: FeatureMatrix,
    /// Class index per row, `< schema.classes.len()`.
    pub y: Vec<u32>,
    pub report: LoadReport,
}

/// What happened while loading: rows read, rows skipped and why (never silent).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LoadReport {
    pub source: String,
    pub n_rows: usize,
    pub n_skipped_invalid: usize,
    pub n_skipped_unmapped_label: usize,
    /// The first few skip reasons, rendered like errors (`file:line:col: ...`).
    pub first_skips: Vec<String>,
}
