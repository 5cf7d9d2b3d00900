//! `fedids respond`: nftables and Suricata drop rules for the sources of incidents.

use anyhow::{Context, Result};
use fedids_detect::Timestamp;
use fedids_respond::{plan, Allowlist, PlanOptions};

use crate::args::RespondArgs;

pub fn run(a: RespondArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.incidents)
        .with_context(|| format!("cannot read incidents file {}", a.incidents.display()))?;
    let incidents = fedids_detect::parse_incidents(&a.incidents.display().to_string(), &text)?;
    let allow_text = std::fs::read_to_string(&a.allowlist)
        .with_context(|| format!("cannot read allowlist {}", a.allowlist.display()))?;
    let allowlist = Allowlist::parse(&a.allowlist.display().to_string(), &allow_text)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let p = plan(
        &incidents,
        &allowlist,
        &PlanOptions {
            block_secs: a.block_secs,
            now: Timestamp::from_secs(now.as_secs() as i64),
        },
    );
    for s in &p.skipped {
        eprintln!("not blocked: incident {}: {}", s.incident_id, s.reason);
    }
    let (nft, rules) = (p.nftables(), p.suricata());
    if a.apply {
        std::fs::write(&a.nft_out, &nft)
            .with_context(|| format!("cannot write {}", a.nft_out.display()))?;
        std::fs::write(&a.suricata_out, &rules)
            .with_context(|| format!("cannot write {}", a.suricata_out.display()))?;
        eprintln!(
            "wrote {} ({} source(s)) and {}; load them with: nft -f {}",
            a.nft_out.display(),
            p.blocks.len(),
            a.suricata_out.display(),
            a.nft_out.display()
        );
    } else {
        crate::ui::emit(&format!(
            "# dry run: nothing written; pass --apply to write {} and {}\n\n{nft}\n{rules}",
            a.nft_out.display(),
            a.suricata_out.display()
        ))?;
    }
    Ok(())
}
