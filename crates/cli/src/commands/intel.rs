//! `fedids intel export`: incidents as a STIX 2.1 bundle or a MISP event.

use std::io::Write;

use anyhow::{Context, Result};
use fedids_intel::{misp_event, stix_bundle, Distribution, MispOptions, StixOptions, Tlp};

use crate::args::{DistributionName, IntelCommand, IntelExportArgs, IntelFormat, TlpName};

pub fn run(command: IntelCommand) -> Result<()> {
    match command {
        IntelCommand::Export(a) => export(a),
    }
}

fn tlp(t: TlpName) -> Tlp {
    match t {
        TlpName::White | TlpName::Clear => Tlp::White,
        TlpName::Green => Tlp::Green,
        TlpName::Amber => Tlp::Amber,
        TlpName::Red => Tlp::Red,
    }
}

fn distribution(d: DistributionName) -> Distribution {
    match d {
        DistributionName::Organisation => Distribution::Organisation,
        DistributionName::Community => Distribution::Community,
        DistributionName::Connected => Distribution::Connected,
        DistributionName::All => Distribution::All,
    }
}

fn export(a: IntelExportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.incidents)
        .with_context(|| format!("cannot read incidents file {}", a.incidents.display()))?;
    let incidents = fedids_detect::parse_incidents(&a.incidents.display().to_string(), &text)?;
    let json = match a.format {
        IntelFormat::Stix => {
            let export = stix_bundle(
                &incidents,
                &StixOptions {
                    site: a.site.clone(),
                    tlp: tlp(a.tlp),
                    indicator_valid_secs: a.valid_for,
                },
            );
            eprintln!(
                "{} incident(s): {} indicator(s); {} without a source address (no indicator)",
                incidents.len(),
                export.n_indicators,
                export.n_without_source
            );
            export.bundle
        }
        IntelFormat::Misp => misp_event(
            &incidents,
            &MispOptions {
                site: a.site.clone(),
                tlp: tlp(a.tlp),
                distribution: distribution(a.distribution),
            },
        ),
    };
    let mut text = serde_json::to_string_pretty(&json)?;
    text.push('\n');
    match &a.output {
        Some(p) => std::fs::File::create(p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("cannot write {}", p.display()))?,
        None => crate::ui::emit(&text)?,
    }
    Ok(())
}
