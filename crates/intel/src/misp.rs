//! MISP events built from incidents.

use fedids_detect::{Incident, Timestamp};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::attack::techniques;
use crate::Tlp;

/// MISP distribution levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// 0: your organisation only.
    Organisation,
    /// 1: this community only.
    Community,
    /// 2: connected communities.
    Connected,
    /// 3: all communities.
    All,
}

impl Distribution {
    /// MISP's numeric code.
    pub fn code(self) -> u8 {
        match self {
            Distribution::Organisation => 0,
            Distribution::Community => 1,
            Distribution::Connected => 2,
            Distribution::All => 3,
        }
    }
}

/// What the event says about its producer and sharing.
#[derive(Debug, Clone, PartialEq)]
pub struct MispOptions {
    /// The producing site (the event's organisation name).
    pub site: String,
    /// The event's TLP tag.
    pub tlp: Tlp,
    /// Who may see the event.
    pub distribution: Distribution,
}

fn uuid(name: &str) -> String {
    Uuid::new_v5(&fedids_detect::FEDIDS_NAMESPACE, name.as_bytes()).to_string()
}

/// Builds one MISP event (the `{"Event": ...}` JSON MISP imports) from incidents.
///
/// Per incident: an `ip-src` attribute with `to_ids` (the attacker: block or alert on it), an
/// `ip-dst` without `to_ids` (the victim is context, not an indicator) and a `port` attribute
/// per listed destination port, all in category `Network activity`, commented with the incident
/// id and class. The event carries the TLP tag and a `misp-galaxy:mitre-attack-pattern` tag per
/// ATT&CK technique. Threat level: 1 (high) to 3 (low), from the most severe incident.
/// Deterministic like the STIX bundle.
pub fn misp_event(incidents: &[Incident], opts: &MispOptions) -> Value {
    let first = incidents
        .iter()
        .map(|i| i.first_seen)
        .min()
        .unwrap_or(Timestamp(0));
    let last = incidents
        .iter()
        .map(|i| i.last_seen)
        .max()
        .unwrap_or(Timestamp(0));
    let ids: Vec<&str> = incidents.iter().map(|i| i.id.as_str()).collect();
    let event_uuid = uuid(&format!("misp-event|{}|{}", opts.site, ids.join(",")));
    let mut attributes = Vec::new();
    let mut galaxy: Vec<String> = Vec::new();
    for inc in incidents {
        let ts = inc.last_seen.secs().to_string();
        let comment = format!(
            "fedids incident {}: {} ({}), {} alert(s), {} to {}",
            inc.id,
            inc.class,
            inc.threat.title(),
            inc.n_alerts,
            inc.first_seen.rfc3339_millis(),
            inc.last_seen.rfc3339_millis()
        );
        let mut attr = |kind: &str, value: String, to_ids: bool| {
            attributes.push(json!({
                "uuid": uuid(&format!("misp-attribute|{}|{kind}|{value}", inc.id)),
                "type": kind,
                "category": "Network activity",
                "value": value,
                "to_ids": to_ids,
                "distribution": "5",
                "timestamp": ts,
                "comment": comment,
            }));
        };
        if let Some(src) = inc.src_ip {
            attr("ip-src", src.to_string(), true);
        }
        if let Some(dest) = inc.dest_ip {
            attr("ip-dst", dest.to_string(), false);
        }
        for port in &inc.dest_ports {
            attr("port", port.to_string(), false);
        }
        for t in techniques(inc.threat) {
            let cluster = if t.ics {
                "mitre-ics-techniques"
            } else {
                "mitre-attack-pattern"
            };
            let tag = format!("misp-galaxy:{cluster}=\"{} - {}\"", t.name, t.id);
            if !galaxy.contains(&tag) {
                galaxy.push(tag);
            }
        }
    }
    let threat_level = incidents
        .iter()
        .map(|i| i.severity)
        .min()
        .unwrap_or(4)
        .clamp(1, 4);
    let mut tags = vec![json!({ "name": format!("tlp:{}", opts.tlp.name()) })];
    tags.extend(galaxy.into_iter().map(|g| json!({ "name": g })));
    json!({
        "Event": {
            "uuid": event_uuid,
            "info": format!(
                "fedids {}: {} incident(s) between {} and {}",
                opts.site,
                incidents.len(),
                first.rfc3339_millis(),
                last.rfc3339_millis()
            ),
            "date": first.date(),
            "timestamp": last.secs().to_string(),
            "published": false,
            "analysis": "2",
            "threat_level_id": threat_level.to_string(),
            "distribution": opts.distribution.code().to_string(),
            "Orgc": { "name": opts.site },
            "Tag": tags,
            "Attribute": attributes,
        }
    })
}
