//! STIX 2.1 bundles built from incidents: pure, deterministic functions.

use std::collections::BTreeMap;
use std::net::IpAddr;

use fedids_detect::{Incident, Timestamp};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::attack::{techniques, Technique};
use crate::Tlp;

/// The namespace STIX 2.1 prescribes for deterministic cyber-observable ids (section 2.9).
pub const STIX_SCO_NAMESPACE: Uuid = Uuid::from_u128(0x00ab_edb4_aa42_466c_9c01_fed2_3315_a9b7);

/// What the bundle says about its producer.
#[derive(Debug, Clone, PartialEq)]
pub struct StixOptions {
    /// The site's name (the identity that produced and sighted everything).
    pub site: String,
    /// The TLP marking of every object the site creates.
    pub tlp: Tlp,
    /// Indicators stay valid this long after an incident's last alert.
    pub indicator_valid_secs: u64,
}

impl Tlp {
    /// The canonical STIX 2.1 TLP marking-definition object.
    pub fn marking_definition(self) -> Value {
        let (id, name) = match self {
            Tlp::White => ("613f2e26-407d-48c7-9eca-b8e91df99dc9", "white"),
            Tlp::Green => ("34098fce-860f-48ae-8e50-ebd3cc5e41da", "green"),
            Tlp::Amber => ("f88d31f6-486f-44da-b317-01333bde0b82", "amber"),
            Tlp::Red => ("5e57c739-391a-4eb3-b6be-7d15ca92d5ed", "red"),
        };
        json!({
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": format!("marking-definition--{id}"),
            "created": "2017-01-20T00:00:00.000Z",
            "definition_type": "tlp",
            "name": format!("TLP:{}", name.to_ascii_uppercase()),
            "definition": { "tlp": name },
        })
    }
}

/// A fedids SDO id: `type--UUIDv5(fedids namespace, name)`.
fn sdo_id(kind: &str, name: &str) -> String {
    let uuid = Uuid::new_v5(
        &fedids_detect::FEDIDS_NAMESPACE,
        format!("{kind}|{name}").as_bytes(),
    );
    format!("{kind}--{uuid}")
}

/// A cyber-observable id as STIX 2.1 defines it: UUIDv5 in the STIX namespace over the
/// canonical JSON (sorted keys, no spaces) of the ID contributing properties.
fn sco_id(kind: &str, contributing: &Value) -> String {
    // serde_json's default map is sorted, and compact output has no spaces: the JCS form for
    // the strings and integers used here.
    let canonical = contributing.to_string();
    format!(
        "{kind}--{}",
        Uuid::new_v5(&STIX_SCO_NAMESPACE, canonical.as_bytes())
    )
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "ipv4-addr",
        IpAddr::V6(_) => "ipv6-addr",
    }
}

fn addr_object(ip: IpAddr) -> (String, Value) {
    let kind = addr_type(ip);
    let id = sco_id(kind, &json!({ "value": ip.to_string() }));
    let obj = json!({ "type": kind, "spec_version": "2.1", "id": id, "value": ip.to_string() });
    (id, obj)
}

/// What [`stix_bundle`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct StixExport {
    /// The bundle.
    pub bundle: Value,
    /// Incidents that became indicators.
    pub n_indicators: usize,
    /// Incidents left out because their input named no source address.
    pub n_without_source: usize,
}

/// Builds a STIX 2.1 bundle from incidents: the site's identity, the TLP marking, one
/// attack-pattern per ATT&CK technique involved, and per incident with a source address an
/// indicator (`[ipv4-addr:value = '...']`), the observed addresses and network traffic, an
/// observed-data, a sighting of the indicator by the site, and `indicates` relationships from the
/// indicator to its attack patterns.
///
/// Deterministic: ids are name-based UUIDs and every timestamp comes from the incidents, so the
/// same incidents and options give the same bundle, byte for byte.
pub fn stix_bundle(incidents: &[Incident], opts: &StixOptions) -> StixExport {
    let marking = opts.tlp.marking_definition();
    let marking_id = marking["id"].clone();
    let epoch = incidents
        .iter()
        .map(|i| i.first_seen)
        .min()
        .unwrap_or(Timestamp(0));
    let identity_id = sdo_id("identity", &opts.site);
    let mut objects: BTreeMap<String, Value> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let put = |objects: &mut BTreeMap<String, Value>, order: &mut Vec<String>, v: Value| {
        let id = v["id"].as_str().unwrap_or_default().to_string();
        if let std::collections::btree_map::Entry::Vacant(slot) = objects.entry(id.clone()) {
            order.push(id);
            slot.insert(v);
        }
    };
    put(&mut objects, &mut order, marking);
    put(
        &mut objects,
        &mut order,
        json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": identity_id,
            "created": epoch.rfc3339_millis(),
            "modified": epoch.rfc3339_millis(),
            "name": opts.site,
            "identity_class": "organization",
            "description": "A fedids site: a federated network intrusion detector",
            "object_marking_refs": [marking_id],
        }),
    );
    let mut n_indicators = 0;
    let mut n_without_source = 0;
    for inc in incidents {
        let Some(src) = inc.src_ip else {
            n_without_source += 1;
            continue;
        };
        n_indicators += 1;
        let first = inc.first_seen.rfc3339_millis();
        let last = inc.last_seen.rfc3339_millis();
        let patterns: Vec<String> = techniques(inc.threat)
            .iter()
            .map(|t: &Technique| {
                let id = sdo_id("attack-pattern", t.id);
                put(
                    &mut objects,
                    &mut order,
                    json!({
                        "type": "attack-pattern",
                        "spec_version": "2.1",
                        "id": id,
                        "created": epoch.rfc3339_millis(),
                        "modified": epoch.rfc3339_millis(),
                        "created_by_ref": identity_id,
                        "name": t.name,
                        "external_references": [{
                            "source_name": t.source_name(),
                            "external_id": t.id,
                            "url": t.url(),
                        }],
                        "object_marking_refs": [marking_id],
                    }),
                );
                id
            })
            .collect();

        let (src_ref, src_obj) = addr_object(src);
        put(&mut objects, &mut order, src_obj);
        let mut refs = vec![src_ref.clone()];
        let mut traffic = serde_json::Map::new();
        traffic.insert("src_ref".into(), json!(src_ref));
        if let Some(dest) = inc.dest_ip {
            let (dest_ref, dest_obj) = addr_object(dest);
            put(&mut objects, &mut order, dest_obj);
            refs.push(dest_ref.clone());
            traffic.insert("dst_ref".into(), json!(dest_ref));
        }
        if let [port] = inc.dest_ports[..] {
            traffic.insert("dst_port".into(), json!(port));
        }
        let mut protocols: Vec<String> =
            inc.protos.iter().map(|p| p.to_ascii_lowercase()).collect();
        if protocols.is_empty() {
            protocols.push(match src {
                IpAddr::V4(_) => "ipv4".to_string(),
                IpAddr::V6(_) => "ipv6".to_string(),
            });
        }
        traffic.insert("protocols".into(), json!(protocols));
        traffic.insert("start".into(), json!(first));
        let traffic_id = sco_id("network-traffic", &Value::Object(traffic.clone()));
        traffic.insert("type".into(), json!("network-traffic"));
        traffic.insert("spec_version".into(), json!("2.1"));
        traffic.insert("id".into(), json!(traffic_id));
        put(&mut objects, &mut order, Value::Object(traffic));
        refs.push(traffic_id);

        let pattern = format!("[{}:value = '{src}']", addr_type(src));
        let indicator_id = sdo_id("indicator", &inc.id);
        let dest_text = inc
            .dest_ip
            .map_or_else(|| "an unknown target".to_string(), |d| d.to_string());
        let confidence = (f64::from(inc.max_probability) * 100.0)
            .round()
            .clamp(0.0, 100.0) as u64;
        put(
            &mut objects,
            &mut order,
            json!({
                "type": "indicator",
                "spec_version": "2.1",
                "id": indicator_id,
                "created": first,
                "modified": last,
                "created_by_ref": identity_id,
                "name": format!("{} ({}) from {src}", inc.class, inc.threat.title()),
                "description": format!(
                    "fedids incident {}: {} alert(s) of class '{}' from {src} to {dest_text} \
                     between {first} and {last}, model sha256 {}",
                    inc.id, inc.n_alerts, inc.class, inc.model_sha256
                ),
                "indicator_types": ["malicious-activity"],
                "pattern": pattern,
                "pattern_type": "stix",
                "pattern_version": "2.1",
                "valid_from": first,
                "valid_until": inc.last_seen.plus_secs(opts.indicator_valid_secs.max(1)).rfc3339_millis(),
                "confidence": confidence,
                "object_marking_refs": [marking_id],
            }),
        );
        let observed_id = sdo_id("observed-data", &inc.id);
        let count = inc.n_alerts.clamp(1, 999_999_999);
        put(
            &mut objects,
            &mut order,
            json!({
                "type": "observed-data",
                "spec_version": "2.1",
                "id": observed_id,
                "created": first,
                "modified": last,
                "created_by_ref": identity_id,
                "first_observed": first,
                "last_observed": last,
                "number_observed": count,
                "object_refs": refs,
                "object_marking_refs": [marking_id],
            }),
        );
        put(
            &mut objects,
            &mut order,
            json!({
                "type": "sighting",
                "spec_version": "2.1",
                "id": sdo_id("sighting", &inc.id),
                "created": first,
                "modified": last,
                "created_by_ref": identity_id,
                "first_seen": first,
                "last_seen": last,
                "count": count,
                "sighting_of_ref": indicator_id,
                "observed_data_refs": [observed_id],
                "where_sighted_refs": [identity_id],
                "object_marking_refs": [marking_id],
            }),
        );
        for pattern_id in patterns {
            put(
                &mut objects,
                &mut order,
                json!({
                    "type": "relationship",
                    "spec_version": "2.1",
                    "id": sdo_id("relationship", &format!("{indicator_id}|indicates|{pattern_id}")),
                    "created": first,
                    "modified": first,
                    "created_by_ref": identity_id,
                    "relationship_type": "indicates",
                    "source_ref": indicator_id,
                    "target_ref": pattern_id,
                    "object_marking_refs": [marking_id],
                }),
            );
        }
    }
    let bundle_id = sdo_id("bundle", &order.join(","));
    let objects: Vec<Value> = order.iter().filter_map(|id| objects.remove(id)).collect();
    StixExport {
        bundle: json!({ "type": "bundle", "id": bundle_id, "objects": objects }),
        n_indicators,
        n_without_source,
    }
}
