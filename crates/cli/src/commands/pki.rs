//! `fedids pki init` and `fedids pki issue`: the federation's certificates and signing keys.

use anyhow::{bail, Result};
use fedids_net::pki::{init_ca, issue_site, PkiDir, Validity};

use crate::args::PkiCommand;

pub fn run(command: PkiCommand) -> Result<()> {
    match command {
        PkiCommand::Init { dir, name, force } => {
            let pki = PkiDir::new(&dir);
            let ca = init_ca(&name)?;
            pki.write_ca(&ca, force)?;
            println!("created federation CA '{name}'");
            println!("  certificate  {}", pki.ca_cert().display());
            println!(
                "  key          {} (keep it offline)",
                pki.ca_key().display()
            );
        }
        PkiCommand::Issue {
            site,
            dir,
            days,
            force,
        } => {
            if days == 0 {
                bail!("--days must be at least 1");
            }
            let pki = PkiDir::new(&dir);
            let ca = pki.read_ca()?;
            let identity = issue_site(&ca, &site, Validity::days_from_now(days))?;
            pki.write_site(&identity, force)?;
            println!("issued '{site}' for {days} day(s)");
            println!("  certificate  {}", pki.site_cert(&site).display());
            println!("  key          {}", pki.site_key(&site).display());
            println!("  signing key  {}", pki.site_sign_key(&site).display());
            println!("  verify key   {}", pki.site_sign_pub(&site).display());
        }
    }
    Ok(())
}
