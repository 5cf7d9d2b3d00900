//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading flow records.
///
/// Messages are lowercase, without a trailing period, and say where (`source:line:column`, all
/// 1-based; the column is the field number), what was expected and what was found:
/// `KDDTrain+.txt:1042:5: expected a number, found 'tcp' (src_bytes)`.
///
/// `input` is the source name given to the parser (usually the file name).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read (or decompressed).
    #[error("cannot read {}", path.display())]
    Io {
        /// The file (or source name, for readers).
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A cell does not hold what its column needs.
    #[error(
        "{input}:{line}:{column}: expected {expected}, found '{}' ({name})",
        shown(value)
    )]
    InvalidValue {
        /// Source name.
        input: String,
        /// 1-based line in the file.
        line: usize,
        /// 1-based field number.
        column: usize,
        /// The column's name.
        name: String,
        /// The cell, trimmed.
        value: String,
        /// What the column needs, e.g. `a number`.
        expected: String,
    },

    /// A record has the wrong number of fields.
    #[error("{input}:{line}: expected {expected} fields, found {found}")]
    FieldCount {
        /// Source name.
        input: String,
        /// 1-based line in the file.
        line: usize,
        /// Fields the format or header has.
        expected: usize,
        /// Fields the record has.
        found: usize,
    },

    /// A line is not valid UTF-8.
    #[error("{input}:{line}: invalid UTF-8")]
    InvalidUtf8 {
        /// Source name.
        input: String,
        /// 1-based line in the file.
        line: usize,
    },

    /// A quoted field does not end on its line (quoted newlines are not supported).
    #[error(
        "{input}:{line}:{column}: unterminated quoted field (quoted fields cannot span lines)"
    )]
    UnterminatedQuote {
        /// Source name.
        input: String,
        /// 1-based line in the file.
        line: usize,
        /// 1-based field number.
        column: usize,
    },

    /// The format could not be recognised from the first line.
    #[error(
        "{input}: unrecognised format: {seen}; pass --format nsl-kdd, kdd99 or unsw-nb15, \
         or --format csv --schema FILE for another flow csv"
    )]
    UnknownFormat {
        /// Source name.
        input: String,
        /// What the first line looked like.
        seen: String,
    },

    /// `--format` disagrees with the format the schema (model) was learned from.
    #[error("{input}: --format {requested} does not match the model's format {expected}")]
    FormatMismatch {
        /// Source name.
        input: String,
        /// The format the options asked for.
        requested: String,
        /// The schema's format.
        expected: String,
    },

    /// A label that the task's class mapping does not know.
    #[error(
        "{input}:{line}:{column}: label '{}' does not map to a {task} class; \
         pass --unmapped-label skip to skip such rows",
        shown(label)
    )]
    UnmappedLabel {
        /// Source name.
        input: String,
        /// 1-based line in the file.
        line: usize,
        /// 1-based field number of the label column.
        column: usize,
        /// The label, trimmed.
        label: String,
        /// `binary` or `multiclass`.
        task: &'static str,
    },

    /// The TOML schema file does not parse or has unknown keys.
    #[error("{input}:{line}:{column}: {message}")]
    SchemaToml {
        /// Source name of the schema file.
        input: String,
        /// 1-based line of the problem in the TOML text.
        line: usize,
        /// 1-based column of the problem in the TOML text.
        column: usize,
        /// The TOML parser's message.
        message: String,
    },

    /// A schema (TOML or stored in a model) that parses but cannot be used.
    #[error("{input}: invalid schema: {message}")]
    InvalidSchema {
        /// Source name (the schema file or the data file it is applied to).
        input: String,
        /// What is wrong.
        message: String,
    },

    /// The header lacks columns that the schema names.
    #[error("{input}: header lacks {}", column_list(columns))]
    MissingColumns {
        /// Source name.
        input: String,
        /// The missing column names, in schema order.
        columns: Vec<String>,
    },

    /// The header is unusable (for example, it names the label column twice).
    #[error("{input}:{line}: {message}")]
    BadHeader {
        /// Source name.
        input: String,
        /// 1-based line of the header.
        line: usize,
        /// What is wrong.
        message: String,
    },

    /// No records were left to use.
    #[error("{input}: no records{}", empty_detail(*n_skipped, first_skip.as_deref()))]
    Empty {
        /// Source name.
        input: String,
        /// Rows skipped under `--skip-invalid` or `--unmapped-label skip`.
        n_skipped: usize,
        /// The first skip reason, if any row was skipped.
        first_skip: Option<String>,
    },
}

impl DataError {
    /// The 1-based file line the error refers to, if it refers to one.
    pub fn line(&self) -> Option<usize> {
        match self {
            DataError::InvalidValue { line, .. }
            | DataError::FieldCount { line, .. }
            | DataError::InvalidUtf8 { line, .. }
            | DataError::UnterminatedQuote { line, .. }
            | DataError::UnmappedLabel { line, .. }
            | DataError::BadHeader { line, .. }
            | DataError::SchemaToml { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Values are shown escaped (no control characters reach the terminal) and cut to 60 characters.
fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 60;
    let mut out: String = value
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(MAX_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

fn column_list(columns: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|c| format!("'{}'", shown(c))).collect();
    let noun = if columns.len() == 1 {
        "column"
    } else {
        "columns"
    };
    format!("{noun} {} named in the schema", names.join(", "))
}

fn empty_detail(n_skipped: usize, first_skip: Option<&str>) -> String {
    match (n_skipped, first_skip) {
        (0, _) => String::new(),
        (n, Some(first)) => format!(" left after skipping {n} rows (first skip: {first})"),
        (n, None) => format!(" left after skipping {n} rows"),
    }
}
