//! Grouping alerts into incidents: one flood is one incident, not a million alerts.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::alert::Flow;
use crate::threat::ThreatKind;
use crate::time::Timestamp;

/// The namespace of fedids' name-based (v5) UUIDs.
pub const FEDIDS_NAMESPACE: Uuid = Uuid::from_u128(0x6b3c_1f9e_52a4_4c7d_9e0f_3a8d_2b61_c0de);

/// At most this many distinct destination ports are listed per incident (a scan touches
/// thousands); `n_dest_ports` still counts them all.
pub const MAX_LISTED_PORTS: usize = 64;

/// Alerts with the same source, target and class, none further than the window from the
/// previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Deterministic: a UUIDv5 of (source, target, class, first alert time).
    pub id: String,
    /// The predicted class.
    pub class: String,
    /// Its threat kind.
    pub threat: ThreatKind,
    /// Suricata severity of the class (1 high, 3 low).
    pub severity: u8,
    /// The attacking side, if the input names it.
    pub src_ip: Option<IpAddr>,
    /// The attacked side, if the input names it.
    pub dest_ip: Option<IpAddr>,
    /// Destination ports seen (sorted, at most [`MAX_LISTED_PORTS`]).
    pub dest_ports: Vec<u16>,
    /// Distinct destination ports seen.
    pub n_dest_ports: usize,
    /// Protocols seen (sorted).
    pub protos: Vec<String>,
    /// The first alert's flow time.
    pub first_seen: Timestamp,
    /// The last alert's flow time.
    pub last_seen: Timestamp,
    /// Alerts grouped into this incident.
    pub n_alerts: u64,
    /// The highest alert probability.
    pub max_probability: f32,
    /// SHA-256 of the model that raised the alerts.
    pub model_sha256: String,
}

type Key = (Option<IpAddr>, Option<IpAddr>, u32);

struct Open {
    incident: Incident,
    ports: BTreeSet<u16>,
    protos: BTreeSet<String>,
}

/// Groups alerts as they come. Memory holds only incidents that may still grow: an incident
/// whose last alert is more than a window older than the newest alert seen is closed.
pub struct IncidentGrouper {
    window_secs: u64,
    model_sha256: String,
    open: HashMap<Key, Open>,
    closed: Vec<Incident>,
    newest: Timestamp,
    n_since_sweep: usize,
}

impl std::fmt::Debug for IncidentGrouper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncidentGrouper")
            .field("window_secs", &self.window_secs)
            .field("n_open", &self.open.len())
            .field("n_closed", &self.closed.len())
            .finish_non_exhaustive()
    }
}

/// The id of the incident that starts with an alert of `class` from `src` to `dest` at `first`.
pub fn incident_id(
    src: Option<IpAddr>,
    dest: Option<IpAddr>,
    class: &str,
    first: Timestamp,
) -> String {
    let show = |ip: Option<IpAddr>| ip.map_or_else(|| "-".to_string(), |ip| ip.to_string());
    let name = format!("incident|{}|{}|{class}|{}", show(src), show(dest), first.0);
    Uuid::new_v5(&FEDIDS_NAMESPACE, name.as_bytes()).to_string()
}

impl IncidentGrouper {
    /// Alerts further apart than `window_secs` start a new incident.
    pub fn new(window_secs: u64, model_sha256: &str) -> Self {
        IncidentGrouper {
            window_secs,
            model_sha256: model_sha256.to_string(),
            open: HashMap::new(),
            closed: Vec::new(),
            newest: Timestamp(i64::MIN),
            n_since_sweep: 0,
        }
    }

    /// Adds an alert of class `class` (index `class_idx`) on `flow`; returns its incident's id.
    pub fn add(&mut self, flow: &Flow, class: &str, class_idx: u32, probability: f32) -> &str {
        let key = (flow.src_ip, flow.dest_ip, class_idx);
        let t = flow.timestamp;
        self.newest = self.newest.max(t);
        self.n_since_sweep += 1;
        if self.n_since_sweep >= 4096 {
            self.sweep();
        }
        let window = self.window_secs;
        let start = || {
            let threat = ThreatKind::of_class(class);
            Open {
                incident: Incident {
                    id: incident_id(flow.src_ip, flow.dest_ip, class, t),
                    class: class.to_string(),
                    threat,
                    severity: threat.severity(),
                    src_ip: flow.src_ip,
                    dest_ip: flow.dest_ip,
                    dest_ports: Vec::new(),
                    n_dest_ports: 0,
                    protos: Vec::new(),
                    first_seen: t,
                    last_seen: t,
                    n_alerts: 0,
                    max_probability: 0.0,
                    model_sha256: self.model_sha256.clone(),
                },
                ports: BTreeSet::new(),
                protos: BTreeSet::new(),
            }
        };
        // One hash per alert: the key's incident, if it still fits, or a new one in its place.
        let open = match self.open.entry(key) {
            Entry::Occupied(entry) => {
                let open = entry.into_mut();
                let fits = t <= open.incident.last_seen.plus_secs(window)
                    && open.incident.first_seen <= t.plus_secs(window);
                if !fits {
                    self.closed.push(finish(std::mem::replace(open, start())));
                }
                open
            }
            Entry::Vacant(entry) => entry.insert(start()),
        };
        let inc = &mut open.incident;
        inc.first_seen = inc.first_seen.min(t);
        inc.last_seen = inc.last_seen.max(t);
        inc.n_alerts += 1;
        inc.max_probability = inc.max_probability.max(probability);
        if let Some(p) = flow.dest_port {
            open.ports.insert(p);
        }
        if let Some(p) = &flow.proto {
            if !open.protos.contains(p) {
                open.protos.insert(p.clone());
            }
        }
        &open.incident.id
    }

    /// Closes incidents that can no longer grow.
    fn sweep(&mut self) {
        self.n_since_sweep = 0;
        let horizon = self.newest;
        let window = self.window_secs;
        let stale: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, o)| o.incident.last_seen.plus_secs(window) < horizon)
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            if let Some(o) = self.open.remove(&key) {
                self.closed.push(finish(o));
            }
        }
    }

    /// Number of incidents so far (open and closed).
    pub fn n_incidents(&self) -> usize {
        self.open.len() + self.closed.len()
    }

    /// All incidents, sorted by first alert time, then id.
    pub fn finish(mut self) -> Vec<Incident> {
        let open: Vec<Open> = self.open.drain().map(|(_, o)| o).collect();
        self.closed.extend(open.into_iter().map(finish));
        self.closed
            .sort_by(|a, b| (a.first_seen, &a.id).cmp(&(b.first_seen, &b.id)));
        self.closed
    }
}

fn finish(open: Open) -> Incident {
    let mut inc = open.incident;
    inc.n_dest_ports = open.ports.len();
    inc.dest_ports = open.ports.into_iter().take(MAX_LISTED_PORTS).collect();
    inc.protos = open.protos.into_iter().collect();
    inc
}

/// The `event_type` of an incident written into an EVE alert stream.
pub const INCIDENT_EVENT: &str = "fedids_incident";

/// An incident as an EVE-stream event: `{"event_type": "fedids_incident", "incident": {...}}`.
pub fn incident_event(incident: &Incident) -> serde_json::Value {
    serde_json::json!({ "event_type": INCIDENT_EVENT, "incident": incident })
}

/// Reads incidents written as JSON lines: one incident per line, or an EVE stream from which the
/// `fedids_incident` events are taken (other events are skipped). Errors name the line.
pub fn parse_incidents(source: &str, text: &str) -> Result<Vec<Incident>, crate::DetectError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // An alert stream from `fedids detect` holds incidents as `fedids_incident` events
        // among `alert` events.
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| crate::DetectError::Incident {
                input: source.to_string(),
                line: i + 1,
                column: e.column(),
                message: e.to_string(),
            })?;
        let strip = |m: String| match m.rfind(" at line ") {
            Some(p) => m[..p].to_string(),
            None => m,
        };
        let inc: Incident = match value.get("event_type").and_then(|v| v.as_str()) {
            Some(INCIDENT_EVENT) => {
                let inner = value.get("incident").cloned().unwrap_or_default();
                serde_json::from_value(inner).map_err(|e| crate::DetectError::Incident {
                    input: source.to_string(),
                    line: i + 1,
                    column: 1,
                    message: strip(e.to_string()),
                })?
            }
            Some(_) => continue,
            None => serde_json::from_str(line).map_err(|e| crate::DetectError::Incident {
                input: source.to_string(),
                line: i + 1,
                column: e.column(),
                message: strip(e.to_string()),
            })?,
        };
        out.push(inc);
    }
    Ok(out)
}
