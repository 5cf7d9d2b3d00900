//! `fedids site`: take part in a federation.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use fedids_data::LoadOptions;
use fedids_net::pki::PkiDir;
use fedids_round::site::{run_site, Endpoint, Fault, Progress, SiteConfig, SiteRoundReport};
use indicatif::ProgressBar;
use tracing::info;

use crate::args::{FaultName, SiteArgs};

/// Steps go to the log; training draws a bar (when stderr is a terminal).
struct Bars {
    quiet: bool,
    bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn step(&self, message: &str) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
        info!("{message}");
    }
    fn training(&self, n_trees: u64) {
        *self.bar.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(crate::ui::bar(n_trees, "trees", self.quiet));
    }
    fn tree_done(&self) {
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|p| p.into_inner()) {
            bar.inc(1);
        }
    }
}

pub fn run(a: SiteArgs, quiet: bool) -> Result<()> {
    let pki = PkiDir::new(&a.pki);
    let ca_pem = pki.read_ca_cert()?;
    let me = pki
        .read_site(&a.name)
        .with_context(|| format!("the identity of site '{}'", a.name))?;
    if a.coordinator_name.len() != a.coordinator.len() {
        bail!(
            "--coordinator names {} URL(s) but --coordinator-name {} name(s); give one name per URL",
            a.coordinator.len(),
            a.coordinator_name.len()
        );
    }
    let mut coordinators = Vec::new();
    let mut coordinator_keys = HashMap::new();
    for (url, name) in a.coordinator.iter().zip(&a.coordinator_name) {
        if !url.starts_with("https://") {
            bail!("--coordinator: '{url}' must start with https://");
        }
        let key = pki.read_site_verifying_key(name).with_context(|| {
            format!("the coordinator's verifying key ('{name}'), needed to check global models")
        })?;
        coordinator_keys.insert(name.clone(), key);
        coordinators.push(Endpoint {
            url: url.clone(),
            name: name.clone(),
        });
    }
    let load = LoadOptions {
        format: super::format_spec(&a.input)?,
        task: a.task.into(),
        skip_invalid: a.input.skip_invalid,
        unmapped_label: a.input.unmapped_label.into(),
    };
    let cfg = SiteConfig {
        name: a.name.clone(),
        coordinators,
        ca_pem,
        cert_pem: me.cert_pem.clone(),
        key_pem: me.key_pem.clone(),
        signing_key: me.signing_key.clone(),
        coordinator_keys,
        data: a.data.clone(),
        load,
        test: a.test.clone(),
        seed: a.seed,
        rounds: a.rounds,
        timeout: a.timeout,
        max_model_bytes: a.max_model_bytes,
        state_dir: a.state.clone(),
        fault: a.fault.map(|f| match f {
            FaultName::TamperUpload => Fault::TamperUpload,
            FaultName::ExitAfterUpload => Fault::ExitAfterUpload,
        }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let progress = Arc::new(Bars {
        quiet,
        bar: std::sync::Mutex::new(None),
    });
    let reports = runtime
        .block_on(run_site(cfg, progress))
        .map_err(|e| anyhow!("site '{}': {e}", a.name))?;
    if a.json {
        crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&reports)?))?;
    } else {
        crate::ui::emit(&summary(&reports))?;
    }
    Ok(())
}

pub fn summary(reports: &[SiteRoundReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "{} round {} ({}): local accuracy {:.4} (macro-F1 {:.4}), global {:.4} (macro-F1 {:.4}) on {} rows of {}; global model {} trees, sha256 {}",
            r.site,
            r.round,
            r.strategy,
            r.local.accuracy,
            r.local.macro_f1,
            r.global.accuracy,
            r.global.macro_f1,
            super::thousands(r.n_eval_rows as u64),
            r.evaluated_on,
            r.global_trees,
            &r.global_sha256[..16]
        );
    }
    out
}
