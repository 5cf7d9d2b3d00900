//! Flows and EVE alert records.

use std::net::IpAddr;

use fedids_data::FlowMeta;
use serde::{Deserialize, Serialize};

use crate::threat::ThreatKind;
use crate::time::Timestamp;

/// Alert signature ids are `SIGNATURE_ID_BASE + class index`: a block of the local range that
/// Suricata leaves to site rules, so ids never clash with published rule sets.
pub const SIGNATURE_ID_BASE: u32 = 9_100_000;

/// The identity of one scored flow, interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// When the flow started: from the file, or the scoring time when the file has none.
    pub timestamp: Timestamp,
    /// The originator.
    pub src_ip: Option<IpAddr>,
    /// The originator's port.
    pub src_port: Option<u16>,
    /// The responder.
    pub dest_ip: Option<IpAddr>,
    /// The responder's port.
    pub dest_port: Option<u16>,
    /// Upper-case protocol name as Suricata writes it (`TCP`, `UDP`, `ICMP`, ...).
    pub proto: Option<String>,
    /// 1-based line of the flow in its file.
    pub line: usize,
}

/// A protocol as Suricata names it: IANA numbers 1, 6, 17 and 58 become `ICMP`, `TCP`, `UDP`
/// and `IPv6-ICMP`; names are upper-cased.
pub fn normalize_proto(text: &str) -> String {
    match text.trim() {
        "1" => "ICMP".to_string(),
        "6" => "TCP".to_string(),
        "17" => "UDP".to_string(),
        "58" => "IPv6-ICMP".to_string(),
        other if other.eq_ignore_ascii_case("ipv6-icmp") || other.eq_ignore_ascii_case("icmp6") => {
            "IPv6-ICMP".to_string()
        }
        other => other.to_ascii_uppercase(),
    }
}

impl Flow {
    /// Interprets a row's identity. Unparseable addresses, ports or timestamps count as absent
    /// (they are not model inputs, so a bad one must not stop detection); `fallback` stands in
    /// for a missing timestamp.
    pub fn from_meta(meta: &FlowMeta<'_>, fallback: Timestamp, line: usize) -> Flow {
        Flow {
            timestamp: meta
                .timestamp
                .and_then(Timestamp::parse)
                .unwrap_or(fallback),
            src_ip: meta.src_ip.and_then(|s| s.trim().parse().ok()),
            src_port: meta.src_port.and_then(|s| s.trim().parse().ok()),
            dest_ip: meta.dest_ip.and_then(|s| s.trim().parse().ok()),
            dest_port: meta.dest_port.and_then(|s| s.trim().parse().ok()),
            proto: meta.proto.map(normalize_proto),
            line,
        }
    }
}

/// One EVE `alert` record, following Suricata's field names where they apply, plus a `fedids`
/// object with what a model-based detector knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EveAlert {
    /// Flow start, `2017-07-07T15:30:00.000000+0000`.
    pub timestamp: String,
    /// Always `alert`.
    pub event_type: String,
    /// The originator.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub src_ip: Option<IpAddr>,
    /// The originator's port.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub src_port: Option<u16>,
    /// The responder.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dest_ip: Option<IpAddr>,
    /// The responder's port.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dest_port: Option<u16>,
    /// The protocol, upper case.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub proto: Option<String>,
    /// Suricata's `alert` object.
    pub alert: EveAlertBody,
    /// What fedids adds.
    pub fedids: EveFedids,
}

/// Suricata's `alert` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EveAlertBody {
    /// `allowed`: fedids observes, it does not block (see `fedids respond`).
    pub action: String,
    /// Generator id: 1, as for rule-based alerts.
    pub gid: u32,
    /// [`SIGNATURE_ID_BASE`] + class index.
    pub signature_id: u32,
    /// Revision: 1.
    pub rev: u32,
    /// `FEDIDS ML <class> (<threat kind>)`.
    pub signature: String,
    /// The Suricata classification description.
    pub category: String,
    /// 1 (high) to 3 (low).
    pub severity: u8,
}

/// The fedids part of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EveFedids {
    /// The predicted class.
    pub class: String,
    /// Its probability (mean over trees).
    pub probability: f32,
    /// The threat kind of the class.
    pub threat: ThreatKind,
    /// SHA-256 of the model file.
    pub model_sha256: String,
    /// The incident the alert belongs to.
    pub incident_id: String,
    /// 1-based line of the flow in its input.
    pub line: usize,
}

/// Builds the EVE record of a flow predicted as `class` (index `class_idx`).
pub fn eve_alert(
    flow: &Flow,
    class: &str,
    class_idx: u32,
    probability: f32,
    model_sha256: &str,
    incident_id: &str,
) -> EveAlert {
    let threat = ThreatKind::of_class(class);
    EveAlert {
        timestamp: flow.timestamp.eve(),
        event_type: "alert".to_string(),
        src_ip: flow.src_ip,
        src_port: flow.src_port,
        dest_ip: flow.dest_ip,
        dest_port: flow.dest_port,
        proto: flow.proto.clone(),
        alert: alert_body(class, class_idx),
        fedids: EveFedids {
            class: class.to_string(),
            probability,
            threat,
            model_sha256: model_sha256.to_string(),
            incident_id: incident_id.to_string(),
            line: flow.line,
        },
    }
}

/// The `alert` object of every alert of `class` (index `class_idx`).
fn alert_body(class: &str, class_idx: u32) -> EveAlertBody {
    let threat = ThreatKind::of_class(class);
    EveAlertBody {
        action: "allowed".to_string(),
        gid: 1,
        signature_id: SIGNATURE_ID_BASE + class_idx,
        rev: 1,
        signature: format!("FEDIDS ML {class} ({})", threat.title()),
        category: threat.category().to_string(),
        severity: threat.severity(),
    }
}

/// Appends `value` as JSON, as `serde_json` writes it inside a record.
fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, value)
}

/// Appends `key` (`,"name":`) and `value` as JSON, if there is a value.
fn optional<T: Serialize>(
    out: &mut Vec<u8>,
    key: &[u8],
    value: Option<&T>,
) -> Result<(), serde_json::Error> {
    if let Some(value) = value {
        out.extend_from_slice(key);
        json(out, value)?;
    }
    Ok(())
}

/// The parts of an EVE line (the JSON of an [`EveAlert`]) that depend only on its class and the
/// model, serialised once.
#[derive(Debug, Clone)]
pub(crate) struct ClassLine {
    /// From `,"alert":` to `"probability":`.
    head: Vec<u8>,
    /// From `,"threat":` to `"incident_id":`.
    tail: Vec<u8>,
}

impl ClassLine {
    pub(crate) fn new(
        class: &str,
        class_idx: u32,
        model_sha256: &str,
    ) -> Result<ClassLine, serde_json::Error> {
        let mut head = b",\"alert\":".to_vec();
        json(&mut head, &alert_body(class, class_idx))?;
        head.extend_from_slice(b",\"fedids\":{\"class\":");
        json(&mut head, class)?;
        head.extend_from_slice(b",\"probability\":");
        let mut tail = b",\"threat\":".to_vec();
        json(&mut tail, &ThreatKind::of_class(class))?;
        tail.extend_from_slice(b",\"model_sha256\":");
        json(&mut tail, model_sha256)?;
        tail.extend_from_slice(b",\"incident_id\":");
        Ok(ClassLine { head, tail })
    }

    /// Appends the EVE line of an alert of this class on `flow`, then `\n`: the bytes
    /// `serde_json` writes for the record [`eve_alert`] builds, field for field.
    pub(crate) fn write(
        &self,
        out: &mut Vec<u8>,
        flow: &Flow,
        probability: f32,
        incident_id: &str,
        stamp: &mut StampCache,
    ) -> Result<(), serde_json::Error> {
        out.extend_from_slice(b"{\"timestamp\":\"");
        stamp.write(out, flow.timestamp);
        out.extend_from_slice(b"\",\"event_type\":\"alert\"");
        // The fields `EveAlert` skips when absent.
        optional(out, b",\"src_ip\":", flow.src_ip.as_ref())?;
        optional(out, b",\"src_port\":", flow.src_port.as_ref())?;
        optional(out, b",\"dest_ip\":", flow.dest_ip.as_ref())?;
        optional(out, b",\"dest_port\":", flow.dest_port.as_ref())?;
        optional(out, b",\"proto\":", flow.proto.as_ref())?;
        out.extend_from_slice(&self.head);
        json(out, &probability)?;
        out.extend_from_slice(&self.tail);
        json(out, incident_id)?;
        out.extend_from_slice(b",\"line\":");
        json(out, &flow.line)?;
        out.extend_from_slice(b"}}\n");
        Ok(())
    }
}

/// The EVE form of the last timestamp written: consecutive alerts often share it (a file
/// without timestamps gives them all the scoring time).
#[derive(Debug, Default)]
pub(crate) struct StampCache {
    last: Option<Timestamp>,
    text: Vec<u8>,
}

impl StampCache {
    fn write(&mut self, out: &mut Vec<u8>, t: Timestamp) {
        if self.last != Some(t) {
            self.text.clear();
            t.write_eve(&mut self.text);
            self.last = Some(t);
        }
        out.extend_from_slice(&self.text);
    }
}
