//! Threat intelligence for fedids: what a site shares about the incidents it detected.
//!
//! * [`stix_bundle`] turns [`Incident`](fedids_detect::Incident)s into a STIX 2.1 bundle
//!   (identity, indicators with STIX patterns, observed-data, attack patterns referencing MITRE
//!   ATT&CK and ATT&CK for ICS, sightings, relationships), deterministically;
//! * [`misp_event`] turns them into a MISP event;
//! * [`taxii`] is a TAXII 2.1 server (axum) that stores and serves STIX objects.
//!
//! The builders are pure functions: no I/O, no clock; every timestamp comes from the incidents.
//! Only [`taxii`] does I/O (its store directory and its socket).
//!
//! ```
//! use fedids_intel::{stix_bundle, StixOptions, Tlp};
//! let export = stix_bundle(&[], &StixOptions { site: "plant-a".into(), tlp: Tlp::Amber, indicator_valid_secs: 86_400 });
//! assert_eq!(export.bundle["type"], "bundle");
//! ```

#![deny(missing_docs)]

pub mod attack;
mod misp;
mod stix;
pub mod taxii;

pub use misp::{misp_event, Distribution, MispOptions};
pub use stix::{stix_bundle, StixExport, StixOptions, STIX_SCO_NAMESPACE};

/// Traffic Light Protocol levels (TLP 1.0, as STIX 2.1 defines marking definitions for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tlp {
    /// Disclosure is not limited.
    White,
    /// Limited to the community.
    Green,
    /// Limited to participants' organisations.
    Amber,
    /// Limited to the participants.
    Red,
}

impl Tlp {
    /// The lowercase name: `white`, `green`, `amber`, `red`.
    pub fn name(self) -> &'static str {
        match self {
            Tlp::White => "white",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::Red => "red",
        }
    }
}

impl std::str::FromStr for Tlp {
    type Err = String;
    fn from_str(s: &str) -> Result<Tlp, String> {
        match s.to_ascii_lowercase().trim_start_matches("tlp:") {
            "white" | "clear" => Ok(Tlp::White),
            "green" => Ok(Tlp::Green),
            "amber" => Ok(Tlp::Amber),
            "red" => Ok(Tlp::Red),
            other => Err(format!(
                "unknown TLP level '{other}', expected white, green, amber or red"
            )),
        }
    }
}

#[cfg(test)]
mod tests;
