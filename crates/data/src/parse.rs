//! Record parsing: splitting lines into cells, numbers, categorical codes, labels, and the
//! parallel whole-file parse that produces a [`Dataset`].
//!
//! The input is split into chunks of about [`CHUNK_BYTES`] at line boundaries; chunks are parsed
//! in parallel with chunk-local categorical dictionaries, which are merged (sorted) afterwards and
//! the codes remapped. Chunk boundaries do not depend on the thread count, and every merge keeps
//! file order, so the result is identical with any number of threads.

mod categories;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use rayon::prelude::*;

use crate::error::DataError;
use crate::formats::{self, is_blank, Layout, Role};
use crate::labels::LabelOutcome;
use crate::{
    Dataset, Feature, FeatureKind, FeatureMatrix, FormatSpec, LoadOptions, LoadReport,
    NonFinitePolicy, Schema, Task, UnmappedLabelPolicy,
};
use categories::CategoryCodes;

/// Target chunk size for the parallel parse.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// How many skip reasons a [`LoadReport`] keeps.
pub const MAX_SKIP_REASONS: usize = 10;

/// The cells of one line: split at commas, trimmed, with RFC 4180 quotes removed.
///
/// A quoted cell may contain commas and doubled quotes (`""`), but not newlines: records are
/// lines.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    /// Byte ranges of the cells, in `line` or (for lines with quotes) in `scratch`.
    ranges: Vec<(usize, usize)>,
    scratch: Vec<u8>,
    in_scratch: bool,
}

fn trim_range(line: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && line.get(start).is_some_and(u8::is_ascii_whitespace) {
        start += 1;
    }
    while end > start && line.get(end - 1).is_some_and(u8::is_ascii_whitespace) {
        end -= 1;
    }
    (start, end)
}

impl Fields {
    /// Splits `line` (without its `\n`). `Err` holds the 1-based number of a field whose quote
    /// does not close.
    pub(crate) fn split(&mut self, line: &[u8]) -> Result<(), usize> {
        self.ranges.clear();
        if !line.contains(&b'"') {
            self.in_scratch = false;
            let mut start = 0;
            for (i, &b) in line.iter().enumerate() {
                if b == b',' {
                    self.ranges.push(trim_range(line, start, i));
                    start = i + 1;
                }
            }
            self.ranges.push(trim_range(line, start, line.len()));
            return Ok(());
        }
        self.in_scratch = true;
        self.scratch.clear();
        let mut bytes = line.iter().copied().peekable();
        loop {
            while bytes
                .next_if(|&b| b != b',' && b.is_ascii_whitespace())
                .is_some()
            {}
            let start = self.scratch.len();
            if bytes.next_if_eq(&b'"').is_some() {
                loop {
                    match bytes.next() {
                        None => return Err(self.ranges.len() + 1),
                        Some(b'"') => {
                            if bytes.next_if_eq(&b'"').is_some() {
                                self.scratch.push(b'"');
                            } else {
                                break;
                            }
                        }
                        Some(b) => self.scratch.push(b),
                    }
                }
            }
            // Unquoted text, or (leniently) text after a closing quote, up to the comma.
            while let Some(b) = bytes.next_if(|&b| b != b',') {
                self.scratch.push(b);
            }
            let (s, e) = trim_range(&self.scratch, start, self.scratch.len());
            self.ranges.push((start.min(s), e));
            if bytes.next().is_none() {
                return Ok(());
            }
        }
    }

    /// Splits a tab-separated line (Zeek): no quoting, cells trimmed of spaces and `\r`.
    pub(crate) fn split_tsv(&mut self, line: &[u8]) {
        self.ranges.clear();
        self.in_scratch = false;
        let mut start = 0;
        for (i, &b) in line.iter().enumerate() {
            if b == b'\t' {
                self.ranges.push(trim_range(line, start, i));
                start = i + 1;
            }
        }
        self.ranges.push(trim_range(line, start, line.len()));
    }

    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Cell `i` of the line last split (`line` must be that line); empty if out of range.
    pub(crate) fn get<'a>(&'a self, line: &'a [u8], i: usize) -> &'a [u8] {
        let Some(&(start, end)) = self.ranges.get(i) else {
            return &[];
        };
        let buf = if self.in_scratch { &self.scratch } else { line };
        buf.get(start..end).unwrap_or_default()
    }
}

/// `10^-k` rounded to `f64`, for `k` decimals.
const INV_POW10: [f64; 11] = [
    1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10,
];

/// Parses a trimmed numeric cell. `None` if it is not a number; the result may be non-finite
/// (`NaN`, `inf`, or a value beyond the `f32` range).
///
/// Plain integers and short decimals take a fast path that gives exactly what
/// `str::parse::<f32>` gives (an exact integer mantissa below 2^24 divided by an exact power of
/// ten is correctly rounded); everything else goes to `str::parse`.
pub(crate) fn parse_number(cell: &[u8]) -> Option<f32> {
    let (negative, digits) = match cell {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, cell),
    };
    let mut mantissa: u64 = 0;
    let mut n_digits = 0u32;
    let mut n_frac = 0u32;
    let mut seen_dot = false;
    let mut fast = true;
    for &c in digits {
        if c.is_ascii_digit() {
            if n_digits >= 19 {
                fast = false;
                break;
            }
            mantissa = mantissa * 10 + u64::from(c - b'0');
            n_digits += 1;
            n_frac += u32::from(seen_dot);
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            fast = false;
            break;
        }
    }
    if fast && n_digits > 0 {
        if let Some(v) = decimal(mantissa, n_frac) {
            return Some(if negative { -v } else { v });
        }
    }
    std::str::from_utf8(cell).ok()?.parse::<f32>().ok()
}

/// `mantissa / 10^n_frac` (of at most 19 digits) correctly rounded to `f32`, as
/// `str::parse::<f32>` rounds it, where that is cheap: any integer, or a mantissa below 2^24
/// with at most 10 decimals. `None` otherwise.
///
/// A decimal is the mantissa times `10^-n_frac` in `f64`, rounded once to `f32`. The `f64`
/// product is within about 2^-52 of the exact quotient, relatively; such a quotient is never the
/// midpoint of two `f32`s, and with up to 8 decimals never closer to one than 2^-25 / 10^8
/// (relatively), so rounding the product gives the correctly rounded quotient.
/// `every_short_decimal_rounds_as_division_does` checks every mantissa below 2^24 with every
/// decimal count (9 and 10 included) against the `f32` division by the exact power of ten,
/// which IEEE 754 rounds correctly and which this replaces.
///
/// Under `perf`, alternate lines one way and the other in `fedids detect` on 503,892 NSL-KDD
/// flows, then swapped: the one-pass split took 7.6-7.8% of the samples against 8.0-8.8% with
/// the division.
#[inline]
fn decimal(mantissa: u64, n_frac: u32) -> Option<f32> {
    if n_frac == 0 {
        Some(mantissa as f32)
    } else if mantissa < (1 << 24) {
        INV_POW10
            .get(n_frac as usize)
            .map(|p| (mantissa as f64 * p) as f32)
    } else {
        None
    }
}

/// Splits a comma-separated `line` in one pass and parses its numeric cells on the way, when the
/// line is of the common kind: `roles.len()` cells, no quote, no space or tab around a cell, and
/// every numeric cell (`Role::Num(f)`, into `row[f]`) a plain decimal (digits with at most one
/// dot, at most 19 digits) that [`decimal`] converts exactly. The cells are those
/// [`Fields::split`] gives and each value the one [`parse_number`] gives. `false` if the line
/// is not of that kind; `fields` and `row` then hold garbage and the caller takes the general
/// path.
pub(crate) fn split_plain(
    line: &[u8],
    roles: &[Role],
    fields: &mut Fields,
    row: &mut [f32],
) -> bool {
    fields.ranges.clear();
    fields.in_scratch = false;
    // A `\r` before the `\n` is trimmed off the last cell, as `trim_range` trims it.
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let len = line.len();
    let mut pos = 0;
    for (i, role) in roles.iter().enumerate() {
        let start = pos;
        if let Role::Num(f) = *role {
            let mut mantissa: u64 = 0;
            let mut n_digits = 0u32;
            let mut n_frac = 0u32;
            let mut seen_dot = false;
            while let Some(&c) = line.get(pos) {
                let d = c.wrapping_sub(b'0');
                if d < 10 {
                    mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
                    n_digits += 1;
                    n_frac += u32::from(seen_dot);
                } else if c == b'.' && !seen_dot {
                    seen_dot = true;
                } else if c == b',' {
                    break;
                } else {
                    return false;
                }
                pos += 1;
            }
            if n_digits == 0 || n_digits > 19 {
                return false;
            }
            match (decimal(mantissa, n_frac), row.get_mut(f)) {
                (Some(v), Some(slot)) => *slot = v,
                _ => return false,
            }
        } else {
            while line.get(pos).is_some_and(|&c| c != b',') {
                pos += 1;
            }
            let cell = &line[start..pos];
            let padded = |c: Option<&u8>| c.is_some_and(u8::is_ascii_whitespace);
            if padded(cell.first()) || padded(cell.last()) || cell.contains(&b'"') {
                return false;
            }
        }
        fields.ranges.push((start, pos));
        // `pos` is at a comma or at the end: a comma needs a cell after it, the end no more
        // roles.
        let last = i + 1 == roles.len();
        if (pos == len) != last {
            return false;
        }
        pos += 1;
    }
    !roles.is_empty()
}

/// FNV-1a: categorical values are short, and SipHash's setup dominates for them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A hash map keyed by short byte strings.
pub(crate) type BytesMap<V> = HashMap<Box<[u8]>, V, std::hash::BuildHasherDefault<Fnv>>;

/// A chunk-local dictionary of categorical values (or learned class names).
#[derive(Debug, Default)]
pub(crate) struct LocalDict {
    map: BytesMap<u32>,
    values: Vec<Box<[u8]>>,
    last: Option<u32>,
}

impl LocalDict {
    fn code(&mut self, value: &[u8]) -> u32 {
        if let Some(last) = self.last {
            if self
                .values
                .get(last as usize)
                .is_some_and(|v| **v == *value)
            {
                return last;
            }
        }
        let code = match self.map.get(value) {
            Some(&code) => code,
            None => {
                let code = self.values.len() as u32;
                self.values.push(value.into());
                self.map.insert(value.into(), code);
                code
            }
        };
        self.last = Some(code);
        code
    }
}

/// How categorical cells become codes.
#[derive(Debug)]
pub(crate) enum Coding {
    /// Learning: chunk-local dictionaries, merged and remapped afterwards.
    Learn,
    /// A learned schema: per feature, the value-to-code table (`None` for numeric features).
    /// Values outside it get the unknown code, the dictionary's length.
    Fixed(Vec<Option<CategoryCodes>>),
}

impl Coding {
    pub(crate) fn fixed(features: &[Feature]) -> Coding {
        Coding::Fixed(
            features
                .iter()
                .map(|f| match &f.kind {
                    FeatureKind::Numeric => None,
                    FeatureKind::Categorical { categories } => Some(CategoryCodes::new(categories)),
                })
                .collect(),
        )
    }
}

/// Everything the record parser needs, shared by all chunks of one file.
#[derive(Debug)]
pub(crate) struct Decoder {
    pub input: String,
    pub task: Task,
    pub layout: Layout,
    pub coding: Coding,
    pub skip_invalid: bool,
    pub unmapped: UnmappedLabelPolicy,
    /// Prediction: a label problem does not fail the row; the batch just has no labels.
    pub lenient_labels: bool,
    /// Record the file line of every row (prediction batches).
    pub keep_lines: bool,
}

/// A row that could not be used.
enum RowError {
    Invalid(DataError),
    Unmapped(DataError),
}

/// What one chunk (or one prediction batch) produced.
#[derive(Debug)]
pub(crate) struct ChunkOut {
    pub n_rows: usize,
    /// Every row's features, row-major (`n_rows * n_features`): the numbers, with 0 in the slots
    /// of categorical features. One sequential stream to write; [`merge`] transposes it.
    values: Vec<f32>,
    /// Per feature, the categorical codes of every row (empty for numeric features).
    codes: Vec<Vec<u32>>,
    /// Per feature, while learning.
    dicts: Vec<LocalDict>,
    /// Class index per row; while learning generic CSV classes, 0 for benign and
    /// `1 + label_dict code` otherwise.
    pub labels: Vec<u32>,
    label_dict: LocalDict,
    /// Set when a lenient label did not resolve.
    pub labels_broken: bool,
    pub lines: Vec<usize>,
    /// Flow identity per row (prediction batches only).
    pub meta: crate::FlowMetaTable,
    pub n_skipped_invalid: usize,
    pub n_skipped_unmapped: usize,
    pub skips: Vec<DataError>,
    pub error: Option<DataError>,
}

/// Reusable per-thread buffers.
#[derive(Default)]
pub(crate) struct Scratch {
    fields: Fields,
    row: Vec<f32>,
    /// The lines being parsed are known to be valid UTF-8.
    utf8_checked: bool,
}

impl Decoder {
    pub(crate) fn new_chunk(&self) -> ChunkOut {
        ChunkOut {
            n_rows: 0,
            values: Vec::new(),
            codes: vec![Vec::new(); self.layout.features.len()],
            dicts: match self.coding {
                Coding::Learn => self
                    .layout
                    .features
                    .iter()
                    .map(|_| LocalDict::default())
                    .collect(),
                Coding::Fixed(_) => Vec::new(),
            },
            labels: Vec::new(),
            label_dict: LocalDict::default(),
            labels_broken: false,
            lines: Vec::new(),
            meta: crate::FlowMetaTable::new(if self.keep_lines {
                self.layout.meta.iter().map(|&(_, f)| f).collect()
            } else {
                Vec::new()
            }),
            n_skipped_invalid: 0,
            n_skipped_unmapped: 0,
            skips: Vec::new(),
            error: None,
        }
    }

    /// Parses one line (without its `\n`; not blank). On success the row is appended to `out`.
    /// `Ok(false)` means the row was skipped (and counted) by policy; `Err` is a fatal error.
    pub(crate) fn record(
        &self,
        line: &[u8],
        line_no: usize,
        scratch: &mut Scratch,
        out: &mut ChunkOut,
    ) -> Result<bool, DataError> {
        match self.parse_row(line, line_no, scratch, out) {
            Ok(()) => Ok(true),
            Err(RowError::Invalid(e)) if self.skip_invalid => {
                out.n_skipped_invalid += 1;
                if out.skips.len() < MAX_SKIP_REASONS {
                    out.skips.push(e);
                }
                Ok(false)
            }
            Err(RowError::Unmapped(e)) if self.unmapped == UnmappedLabelPolicy::Skip => {
                out.n_skipped_unmapped += 1;
                if out.skips.len() < MAX_SKIP_REASONS {
                    out.skips.push(e);
                }
                Ok(false)
            }
            Err(RowError::Invalid(e) | RowError::Unmapped(e)) => Err(e),
        }
    }

    fn parse_row(
        &self,
        line: &[u8],
        line_no: usize,
        scratch: &mut Scratch,
        out: &mut ChunkOut,
    ) -> Result<(), RowError> {
        let layout = &self.layout;
        if !scratch.utf8_checked && std::str::from_utf8(line).is_err() {
            return Err(RowError::Invalid(DataError::InvalidUtf8 {
                input: self.input.clone(),
                line: line_no,
            }));
        }
        let fields = &mut scratch.fields;
        let row = &mut scratch.row;
        row.clear();
        row.resize(layout.features.len(), 0.0);
        // Most lines take the one-pass split, which also parses the numbers.
        let plain = layout.separator == b',' && split_plain(line, &layout.roles, fields, row);
        if !plain {
            row.fill(0.0);
            if layout.separator == b'\t' {
                fields.split_tsv(line);
            } else if let Err(column) = fields.split(line) {
                return Err(RowError::Invalid(DataError::UnterminatedQuote {
                    input: self.input.clone(),
                    line: line_no,
                    column,
                }));
            }
        }
        if fields.len() != layout.n_fields() {
            return Err(RowError::Invalid(DataError::FieldCount {
                input: self.input.clone(),
                line: line_no,
                expected: layout.n_fields(),
                found: fields.len(),
            }));
        }
        let invalid = |i: usize, cell: &[u8], expected: &str| {
            RowError::Invalid(DataError::InvalidValue {
                input: self.input.clone(),
                line: line_no,
                column: i + 1,
                name: layout.names.get(i).cloned().unwrap_or_default(),
                value: String::from_utf8_lossy(cell).into_owned(),
                expected: expected.to_string(),
            })
        };
        let mut label: Option<LabelOutcome<'_>> = None;
        // A plain line's numbers are parsed: only the checked fields are left to look at.
        let to_check: &mut dyn Iterator<Item = (usize, &Role)> = if plain {
            &mut layout.checked.iter().map(|&i| (i, &layout.roles[i]))
        } else {
            &mut layout.roles.iter().enumerate()
        };
        for (i, role) in to_check {
            let cell = fields.get(line, i);
            match *role {
                Role::Skip | Role::Cat(_) => {}
                Role::Num(f) => {
                    let value = match parse_number(cell) {
                        _ if layout.unset_numeric == Some(cell) => 0.0,
                        Some(v) if v.is_finite() => v,
                        Some(v) => match layout.non_finite {
                            Some(NonFinitePolicy::Clamp) => clamp(v),
                            _ => return Err(invalid(i, cell, "a finite number")),
                        },
                        None => return Err(invalid(i, cell, "a number")),
                    };
                    if let Some(slot) = row.get_mut(f) {
                        *slot = value;
                    }
                }
                Role::Label => {
                    let Some(rule) = &layout.label else { continue };
                    let text = std::str::from_utf8(cell).unwrap_or_default();
                    let outcome = rule.resolve(text);
                    match outcome {
                        LabelOutcome::Class(_) | LabelOutcome::Learned(_) => {}
                        _ if self.lenient_labels => {}
                        LabelOutcome::Invalid(expected) => {
                            return Err(invalid(i, cell, expected));
                        }
                        LabelOutcome::Unmapped => {
                            return Err(RowError::Unmapped(DataError::UnmappedLabel {
                                input: self.input.clone(),
                                line: line_no,
                                column: i + 1,
                                label: text.to_string(),
                                task: self.task.name(),
                            }));
                        }
                    }
                    label = Some(outcome);
                }
                Role::Flag => {
                    if cell != b"0" && cell != b"1" {
                        return Err(invalid(i, cell, "0 or 1"));
                    }
                }
                Role::Difficulty => {
                    if !formats::is_difficulty(cell) {
                        return Err(invalid(i, cell, "an integer difficulty from 0 to 21"));
                    }
                }
            }
        }

        // Commit the row.
        for &(i, f) in &layout.categorical {
            let cell = fields.get(line, i);
            let code = match &self.coding {
                Coding::Learn => out.dicts.get_mut(f).map_or(0, |d| d.code(cell)),
                Coding::Fixed(tables) => match tables.get(f) {
                    Some(Some(codes)) => codes.code(cell),
                    _ => 0,
                },
            };
            if let Some(codes) = out.codes.get_mut(f) {
                codes.push(code);
            }
        }
        out.values.extend_from_slice(row);
        match label {
            Some(LabelOutcome::Class(c)) => out.labels.push(c),
            Some(LabelOutcome::Learned(name)) => {
                let code = out.label_dict.code(name.as_bytes());
                out.labels.push(code + 1);
            }
            Some(LabelOutcome::Unmapped | LabelOutcome::Invalid(_)) => {
                out.labels_broken = true;
                out.labels.push(0);
            }
            None => {}
        }
        if self.keep_lines {
            out.lines.push(line_no);
            for &(i, _) in &layout.meta {
                let cell = fields.get(line, i);
                out.meta
                    .push_cell(std::str::from_utf8(cell).unwrap_or_default());
            }
        }
        out.n_rows += 1;
        Ok(())
    }

    /// Whether `line` is a comment line of the format (Zeek's `#` lines), not a record.
    pub(crate) fn is_comment(&self, line: &[u8]) -> bool {
        self.layout.comment.is_some() && line.first() == self.layout.comment.as_ref()
    }

    /// Parses `bytes`, whose first line is file line `first_line`, in chunks of about `target`
    /// bytes cut at line ends, on rayon's pool; the outputs are in file order.
    pub(crate) fn parse_chunks(
        &self,
        bytes: &[u8],
        target: usize,
        first_line: usize,
    ) -> Vec<ChunkOut> {
        let bounds = chunk_bounds(bytes, target);
        let first_lines = chunk_first_lines(bytes, &bounds, first_line);
        bounds
            .par_iter()
            .zip(&first_lines)
            .map(|(&(s, e), &first)| self.parse_chunk(bytes.get(s..e).unwrap_or_default(), first))
            .collect()
    }

    /// Parses every line of `chunk`, whose first line is file line `first_line`. Stops at the
    /// first fatal error.
    pub(crate) fn parse_chunk(&self, chunk: &[u8], first_line: usize) -> ChunkOut {
        let mut out = self.new_chunk();
        // A record has at least a byte and a separator per feature, so this is room for every
        // row without growing (and the unused part is never touched).
        out.values.reserve(chunk.len() / 2);
        let mut scratch = Scratch {
            utf8_checked: std::str::from_utf8(chunk).is_ok(),
            ..Scratch::default()
        };
        for (k, line) in split_lines(chunk).enumerate() {
            if is_blank(line) || self.is_comment(line) {
                continue;
            }
            if let Err(e) = self.record(line, first_line + k, &mut scratch, &mut out) {
                out.error = Some(e);
                break;
            }
        }
        out
    }
}

/// The lines of `text`, split at `\n` as `text.split(|&b| b == b'\n')` splits it (the part
/// after the last newline included, even when empty), with a vectorised newline search: a
/// byte-at-a-time search took about a fifth of the time spent parsing NSL-KDD lines.
fn split_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        let rest = &text[from..];
        match memchr::memchr(b'\n', rest) {
            Some(p) => {
                start = Some(from + p + 1);
                Some(&rest[..p])
            }
            None => {
                start = None;
                Some(rest)
            }
        }
    })
}

fn clamp(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else if v > 0.0 {
        f32::MAX
    } else {
        f32::MIN
    }
}

/// `(start, end)` byte ranges of chunks of about `target` bytes, each ending after a newline
/// (or at the end of `bytes`).
fn chunk_bounds(bytes: &[u8], target: usize) -> Vec<(usize, usize)> {
    let target = target.max(1);
    let mut bounds = Vec::with_capacity(bytes.len() / target + 1);
    let mut start = 0;
    while start < bytes.len() {
        let probe = (start + target).min(bytes.len());
        let end = match bytes
            .get(probe..)
            .and_then(|rest| memchr::memchr(b'\n', rest))
        {
            Some(p) => probe + p + 1,
            None => bytes.len(),
        };
        bounds.push((start, end));
        start = end;
    }
    bounds
}

/// The file line where each chunk of `bytes` (`bounds`, from [`chunk_bounds`]) starts, when
/// `bytes` starts at line `first_line`.
fn chunk_first_lines(bytes: &[u8], bounds: &[(usize, usize)], first_line: usize) -> Vec<usize> {
    let line_counts: Vec<usize> = bounds
        .par_iter()
        .map(|&(s, e)| {
            bytes
                .get(s..e)
                .map_or(0, |chunk| memchr::memchr_iter(b'\n', chunk).count())
        })
        .collect();
    line_counts
        .iter()
        .scan(first_line, |line, &n| {
            let first = *line;
            *line += n;
            Some(first)
        })
        .collect()
}

/// The merged result of all chunks.
pub(crate) struct Merged {
    pub features: Vec<Feature>,
    pub x: FeatureMatrix,
    pub labels: Vec<u32>,
    /// Learned non-benign class names (generic CSV multiclass), sorted.
    pub learned_classes: Vec<String>,
    pub report: LoadReport,
}

/// Merges chunk outputs in order: first error wins, skip reasons are kept in file order,
/// learned dictionaries are sorted and the codes remapped.
pub(crate) fn merge(decoder: &Decoder, chunks: Vec<ChunkOut>) -> Result<Merged, DataError> {
    let mut chunks = chunks;
    let mut skips: Vec<DataError> = Vec::new();
    let (mut n_invalid, mut n_unmapped, mut n_rows) = (0, 0, 0);
    for chunk in &mut chunks {
        if let Some(e) = chunk.error.take() {
            return Err(e);
        }
        n_invalid += chunk.n_skipped_invalid;
        n_unmapped += chunk.n_skipped_unmapped;
        n_rows += chunk.n_rows;
        let room = MAX_SKIP_REASONS.saturating_sub(skips.len());
        skips.extend(chunk.skips.drain(..).take(room));
    }
    let first_skips: Vec<String> = skips.iter().map(ToString::to_string).collect();
    if n_rows == 0 {
        return Err(DataError::Empty {
            input: decoder.input.clone(),
            n_skipped: n_invalid + n_unmapped,
            first_skip: first_skips.first().cloned(),
        });
    }

    // Dictionaries: the schema's, or the sorted union of what the chunks saw.
    let n_features = decoder.layout.features.len();
    let mut features = decoder.layout.features.clone();
    // remaps[chunk][feature][local code] -> global code
    let mut remaps: Vec<Vec<Vec<u32>>> = vec![vec![Vec::new(); n_features]; chunks.len()];
    if matches!(decoder.coding, Coding::Learn) {
        for (f, feature) in features.iter_mut().enumerate() {
            let FeatureKind::Categorical { categories } = &mut feature.kind else {
                continue;
            };
            let (sorted, maps) = union_sorted(chunks.iter().map(|c| c.dicts.get(f)));
            *categories = sorted;
            for (remap, map) in remaps.iter_mut().zip(maps) {
                if let Some(slot) = remap.get_mut(f) {
                    *slot = map;
                }
            }
        }
    }

    // Each chunk fills its rows of every column, chunks in parallel.
    let mut values = vec![0.0f32; n_rows * n_features];
    let mut pieces: Vec<Vec<&mut [f32]>> = chunks
        .iter()
        .map(|_| Vec::with_capacity(n_features))
        .collect();
    for column in values.chunks_mut(n_rows.max(1)) {
        let mut rest = column;
        for (piece, chunk) in pieces.iter_mut().zip(&chunks) {
            let (rows, tail) = rest.split_at_mut(chunk.n_rows.min(rest.len()));
            piece.push(rows);
            rest = tail;
        }
    }
    pieces
        .into_par_iter()
        .zip(&chunks)
        .zip(&remaps)
        .for_each(|((mut columns, chunk), remap)| {
            fill_columns(&mut columns, chunk, remap, &decoder.layout.features);
        });
    let x = FeatureMatrix::from_columns(n_rows, n_features, values);

    // Labels.
    let (learned_classes, label_maps) = union_sorted(chunks.iter().map(|c| Some(&c.label_dict)));
    let mut labels = Vec::with_capacity(n_rows);
    for (chunk, map) in chunks.iter().zip(&label_maps) {
        if matches!(
            decoder.layout.label,
            Some(
                crate::labels::LabelRule::BenignOpen { .. }
                    | crate::labels::LabelRule::KddOpen { .. }
            )
        ) {
            labels.extend(chunk.labels.iter().map(|&c| match c {
                0 => 0,
                c => map.get(c as usize - 1).map_or(c, |g| g + 1),
            }));
        } else {
            labels.extend_from_slice(&chunk.labels);
        }
    }
    let report = LoadReport {
        source: decoder.input.clone(),
        n_rows,
        n_skipped_invalid: n_invalid,
        n_skipped_unmapped_label: n_unmapped,
        first_skips,
    };
    Ok(Merged {
        features,
        x,
        labels,
        learned_classes,
        report,
    })
}

/// Writes `chunk`'s rows into `columns` (one slice per feature, `chunk.n_rows` long each): its
/// row-major numbers transposed, and its categorical codes, through `remap` (per feature, local
/// code to merged code; empty when the codes are already final).
fn fill_columns(
    columns: &mut [&mut [f32]],
    chunk: &ChunkOut,
    remap: &[Vec<u32>],
    features: &[Feature],
) {
    /// Rows transposed at a time: their row-major values stay in L1 while every column takes
    /// its part.
    const TILE: usize = 64;
    let n_features = columns.len();
    let mut numeric = Vec::with_capacity(n_features);
    for (f, (column, feature)) in columns.iter_mut().zip(features).enumerate() {
        match feature.kind {
            FeatureKind::Numeric => numeric.push(f),
            FeatureKind::Categorical { .. } => {
                let map = remap.get(f).filter(|m| !m.is_empty());
                let codes = chunk.codes.get(f).map_or(&[][..], Vec::as_slice);
                for (d, &code) in column.iter_mut().zip(codes) {
                    let code = map
                        .and_then(|m| m.get(code as usize).copied())
                        .unwrap_or(code);
                    *d = code as f32;
                }
            }
        }
    }
    for (t, tile) in chunk.values.chunks(TILE * n_features.max(1)).enumerate() {
        let start = t * TILE;
        for &f in &numeric {
            let dst = columns[f].get_mut(start..).unwrap_or_default();
            for (d, row) in dst.iter_mut().zip(tile.chunks_exact(n_features)) {
                *d = row[f];
            }
        }
    }
}

/// The sorted union of local dictionaries, and per dictionary the local-to-sorted code map.
fn union_sorted<'a>(
    dicts: impl Iterator<Item = Option<&'a LocalDict>> + Clone,
) -> (Vec<String>, Vec<Vec<u32>>) {
    let all: BTreeSet<&[u8]> = dicts
        .clone()
        .flatten()
        .flat_map(|d| d.values.iter().map(|v| &**v))
        .collect();
    let sorted: Vec<&[u8]> = all.into_iter().collect();
    let maps = dicts
        .map(|d| {
            d.map_or_else(Vec::new, |d| {
                d.values
                    .iter()
                    .map(|v| sorted.binary_search(&&**v).map_or(0, |i| i as u32))
                    .collect()
            })
        })
        .collect();
    let names = sorted
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    (names, maps)
}

/// Where the records of `bytes` start: the header line (if the format has one) and the offset and
/// line number of the first record line.
/// The header line (line number, line) if any, and the offset and line number of the body.
pub(crate) type BodyAt<'a> = (Option<(usize, &'a [u8])>, usize, usize);

pub(crate) fn split_header<'a>(
    input: &str,
    format: &FormatSpec,
    bytes: &'a [u8],
) -> Result<BodyAt<'a>, DataError> {
    if matches!(format, FormatSpec::ZeekConn) {
        return Ok(match formats::zeek_header(input, bytes)? {
            Some((line_no, line, next)) => (Some((line_no, line)), next, line_no + 1),
            None => (None, 0, 1),
        });
    }
    Ok(match formats::first_line(bytes) {
        Some((line_no, line, next)) if formats::is_header(format, line) => {
            (Some((line_no, line)), next, line_no + 1)
        }
        _ => (None, 0, 1),
    })
}

fn parse_with(
    input: &str,
    bytes: &[u8],
    format: FormatSpec,
    task: Task,
    schema: Option<&Schema>,
    opts: &LoadOptions,
    chunk_bytes: usize,
) -> Result<Dataset, DataError> {
    let bytes = formats::strip_bom(bytes);
    let (header, body_start, body_line) = split_header(input, &format, bytes)?;
    let layout = formats::layout(input, &format, task, header, schema, true)?;
    let coding = match schema {
        Some(_) => Coding::fixed(&layout.features),
        None => Coding::Learn,
    };
    let decoder = Decoder {
        input: input.to_string(),
        task,
        layout,
        coding,
        skip_invalid: opts.skip_invalid,
        unmapped: opts.unmapped_label,
        lenient_labels: false,
        keep_lines: false,
    };
    let body = bytes.get(body_start..).unwrap_or_default();
    let chunks = decoder.parse_chunks(body, chunk_bytes, body_line);
    let merged = merge(&decoder, chunks)?;
    let schema = match schema {
        Some(schema) => schema.clone(),
        None => {
            let classes = match crate::labels::fixed_classes(&format, task) {
                Some(classes) => classes,
                None => {
                    let benign = match &format {
                        FormatSpec::Csv(csv) => csv.benign.first().cloned().unwrap_or_default(),
                        FormatSpec::NslKdd | FormatSpec::Kdd99 => "normal".to_string(),
                        FormatSpec::UnswNb15 => String::new(),
                        FormatSpec::ZeekConn => crate::ZEEK_CONN_BENIGN[0].to_string(),
                    };
                    std::iter::once(benign)
                        .chain(merged.learned_classes)
                        .collect()
                }
            };
            Schema {
                format,
                task,
                features: merged.features,
                classes,
            }
        }
    };
    Ok(Dataset {
        schema,
        x: merged.x,
        y: merged.labels,
        report: merged.report,
    })
}

/// Parses a whole flow file held in memory, learning the [`Schema`] (training mode).
///
/// The format is `opts.format`, or detected with [`detect_format`](crate::detect_format).
/// Categorical dictionaries are the sorted distinct values of the kept rows; for generic CSV
/// multiclass, the classes are the first benign value followed by the sorted distinct other
/// labels. `source` names the input in errors and in the report.
pub fn parse_bytes(source: &str, bytes: &[u8], opts: &LoadOptions) -> Result<Dataset, DataError> {
    parse_bytes_chunked(source, bytes, opts, CHUNK_BYTES)
}

pub(crate) fn parse_bytes_chunked(
    source: &str,
    bytes: &[u8],
    opts: &LoadOptions,
    chunk_bytes: usize,
) -> Result<Dataset, DataError> {
    let format = match &opts.format {
        Some(format) => format.clone(),
        None => formats::detect(source, bytes)?,
    };
    if let FormatSpec::Csv(csv) = &format {
        csv.validate(source)?;
    }
    parse_with(source, bytes, format, opts.task, None, opts, chunk_bytes)
}

/// Parses a whole flow file with a learned schema (evaluation mode).
///
/// The format and task come from `schema` (`opts.task` is not used; `opts.format`, if given, must
/// equal the schema's). Categorical values outside a dictionary get the unknown code
/// `categories.len()`; labels must map to `schema.classes`, else `opts.unmapped_label` applies.
/// The returned dataset's schema equals `schema`.
pub fn parse_bytes_with_schema(
    source: &str,
    bytes: &[u8],
    schema: &Schema,
    opts: &LoadOptions,
) -> Result<Dataset, DataError> {
    parse_bytes_with_schema_chunked(source, bytes, schema, opts, CHUNK_BYTES)
}

pub(crate) fn parse_bytes_with_schema_chunked(
    source: &str,
    bytes: &[u8],
    schema: &Schema,
    opts: &LoadOptions,
    chunk_bytes: usize,
) -> Result<Dataset, DataError> {
    check_format(source, opts.format.as_ref(), &schema.format)?;
    parse_with(
        source,
        bytes,
        schema.format.clone(),
        schema.task,
        Some(schema),
        opts,
        chunk_bytes,
    )
}

fn check_format(
    source: &str,
    requested: Option<&FormatSpec>,
    expected: &FormatSpec,
) -> Result<(), DataError> {
    match requested {
        Some(requested) if requested != expected => {
            let requested = if requested.name() == expected.name() {
                format!("{} (with a different schema)", requested.name())
            } else {
                requested.name().to_string()
            };
            Err(DataError::FormatMismatch {
                input: source.to_string(),
                requested,
                expected: expected.name().to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// Reads a flow file (gzip-decompressed if its name ends in `.gz`) and parses it with
/// [`parse_bytes`], naming it by its file name.
pub fn load_path(path: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let bytes = read_path(path)?;
    parse_bytes(&source_name(path), &bytes, opts)
}

/// Reads a flow file (gzip-decompressed if its name ends in `.gz`) and parses it with
/// [`parse_bytes_with_schema`], naming it by its file name.
pub fn load_path_with_schema(
    path: &Path,
    schema: &Schema,
    opts: &LoadOptions,
) -> Result<Dataset, DataError> {
    let bytes = read_path(path)?;
    parse_bytes_with_schema(&source_name(path), &bytes, schema, opts)
}

/// The name a path goes by in messages: its file name.
pub(crate) fn source_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

fn read_path(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut out)
            .map_err(io)?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_flows;
