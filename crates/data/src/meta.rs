//! Flow identity: the per-row metadata (when, who, to whom, over what) that alerts need but that
//! is not a model input.
//!
//! A format carries as much of it as it has: Zeek `conn.log` and CICFlowMeter flows carry all of
//! it, NSL-KDD, KDD Cup 99 and the UNSW-NB15 partition files only the protocol. Values are kept as
//! the file spells them (a Zeek epoch, a CICFlowMeter `d/m/Y H:M:S`, a protocol name or number);
//! interpreting them is the consumer's job.

use crate::FormatSpec;

/// One piece of flow identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaField {
    /// When the flow started.
    Timestamp,
    /// The originator's address.
    SrcIp,
    /// The originator's port.
    SrcPort,
    /// The responder's address.
    DestIp,
    /// The responder's port.
    DestPort,
    /// The transport protocol (a name such as `tcp`, or an IP protocol number).
    Proto,
}

/// The flow identity of one row; `None` where the format lacks the column or the cell is empty
/// (or Zeek's unset `-`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowMeta<'a> {
    /// When the flow started, as written in the file.
    pub timestamp: Option<&'a str>,
    /// The originator's address.
    pub src_ip: Option<&'a str>,
    /// The originator's port.
    pub src_port: Option<&'a str>,
    /// The responder's address.
    pub dest_ip: Option<&'a str>,
    /// The responder's port.
    pub dest_port: Option<&'a str>,
    /// The transport protocol.
    pub proto: Option<&'a str>,
}

/// The flow identity of every row of a batch, stored as one text buffer (one allocation per
/// batch, not per row).
///
/// Invariant: `ends.len() == n_rows * fields.len()`, the ends are non-decreasing offsets into
/// `text` at `char` boundaries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlowMetaTable {
    fields: Vec<MetaField>,
    text: String,
    ends: Vec<u32>,
}

impl FlowMetaTable {
    pub(crate) fn new(fields: Vec<MetaField>) -> Self {
        FlowMetaTable {
            fields,
            text: String::new(),
            ends: Vec::new(),
        }
    }

    /// Which pieces of identity the rows carry.
    pub fn fields(&self) -> &[MetaField] {
        &self.fields
    }

    /// Number of rows (0 when the format carries no identity).
    pub fn n_rows(&self) -> usize {
        self.ends.len().checked_div(self.fields.len()).unwrap_or(0)
    }

    /// Appends one cell of the current row; cells come in `fields` order.
    pub(crate) fn push_cell(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len() as u32);
    }

    /// Appends the rows of `other`, a table of the same fields, after this table's.
    pub(crate) fn append(&mut self, other: &FlowMetaTable) {
        let base = self.text.len() as u32;
        self.text.push_str(&other.text);
        self.ends.extend(other.ends.iter().map(|&end| base + end));
    }

    /// The identity of row `row_idx`; all `None` past the last row.
    pub fn get(&self, row_idx: usize) -> FlowMeta<'_> {
        let mut meta = FlowMeta::default();
        let n = self.fields.len();
        for (k, field) in self.fields.iter().enumerate() {
            let cell_idx = row_idx * n + k;
            let Some(&end) = self.ends.get(cell_idx) else {
                return FlowMeta::default();
            };
            let start = match cell_idx.checked_sub(1) {
                Some(prev) => self.ends.get(prev).copied().unwrap_or(0),
                None => 0,
            };
            let value = self
                .text
                .get(start as usize..end as usize)
                .filter(|v| !v.is_empty() && *v != "-" && *v != "(empty)");
            let slot = match field {
                MetaField::Timestamp => &mut meta.timestamp,
                MetaField::SrcIp => &mut meta.src_ip,
                MetaField::SrcPort => &mut meta.src_port,
                MetaField::DestIp => &mut meta.dest_ip,
                MetaField::DestPort => &mut meta.dest_port,
                MetaField::Proto => &mut meta.proto,
            };
            *slot = value;
        }
        meta
    }
}

/// The identity a column carries, by its (trimmed) name, for `format`.
///
/// Zeek uses its own field names. Every CSV-like format recognises the CICFlowMeter names
/// (`Timestamp`, `Source IP`/`Src IP`, `Source Port`/`Src Port`, `Destination IP`/`Dst IP`,
/// `Destination Port`/`Dst Port`, `Protocol`), the UNSW-NB15 full-release names (`stime`, `srcip`,
/// `sport`, `dstip`, `dsport`, `proto`) and NSL-KDD's `protocol_type`, case-insensitively.
pub(crate) fn meta_field(format: &FormatSpec, name: &str) -> Option<MetaField> {
    if matches!(format, FormatSpec::ZeekConn) {
        return match name {
            "ts" => Some(MetaField::Timestamp),
            "id.orig_h" => Some(MetaField::SrcIp),
            "id.orig_p" => Some(MetaField::SrcPort),
            "id.resp_h" => Some(MetaField::DestIp),
            "id.resp_p" => Some(MetaField::DestPort),
            "proto" => Some(MetaField::Proto),
            _ => None,
        };
    }
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "timestamp" | "stime" | "ts" => Some(MetaField::Timestamp),
        "source ip" | "src ip" | "srcip" | "src_ip" => Some(MetaField::SrcIp),
        "source port" | "src port" | "sport" | "src_port" => Some(MetaField::SrcPort),
        "destination ip" | "dst ip" | "dstip" | "dst_ip" | "dest_ip" => Some(MetaField::DestIp),
        "destination port" | "dst port" | "dsport" | "dst_port" | "dest_port" => {
            Some(MetaField::DestPort)
        }
        "protocol" | "proto" | "protocol_type" => Some(MetaField::Proto),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows() {
        let mut t = FlowMetaTable::new(vec![MetaField::SrcIp, MetaField::DestPort]);
        for cell in ["10.0.0.1", "80", "-", ""] {
            t.push_cell(cell);
        }
        assert_eq!(t.n_rows(), 2);
        let first = t.get(0);
        assert_eq!(first.src_ip, Some("10.0.0.1"));
        assert_eq!(first.dest_port, Some("80"));
        assert_eq!(first.timestamp, None);
        assert_eq!(t.get(1), FlowMeta::default());
        assert_eq!(t.get(7), FlowMeta::default());
        assert_eq!(FlowMetaTable::default().n_rows(), 0);
    }

    #[test]
    fn names() {
        let csv = FormatSpec::NslKdd;
        assert_eq!(meta_field(&csv, " Source IP"), Some(MetaField::SrcIp));
        assert_eq!(meta_field(&csv, "Dst Port"), Some(MetaField::DestPort));
        assert_eq!(meta_field(&csv, "protocol_type"), Some(MetaField::Proto));
        assert_eq!(meta_field(&csv, "src_bytes"), None);
        assert_eq!(
            meta_field(&FormatSpec::ZeekConn, "id.resp_h"),
            Some(MetaField::DestIp)
        );
        assert_eq!(meta_field(&FormatSpec::ZeekConn, "Source IP"), None);
    }
}
