//! `fedids coordinator`: serve the federation over mutual TLS and drive its rounds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use fedids_federation::MergeStrategy;
use fedids_net::pki::PkiDir;
use fedids_net::server::{serve_counted, CoordinatorService, ServiceConfig, WireBytes};
use fedids_net::tls::server_config;
use fedids_round::coordinator::{Coordinator, CoordinatorConfig};
use fedids_round::metrics::{serve_metrics, Metrics};
use fedids_round::state::{Phase, RoundRecord};
use fedids_round::store::Store;
use tracing::info;

use crate::args::{CoordinatorArgs, FederationArgs};

/// The coordinator's settings for identity `name` of the PKI directory, and the sites taking
/// part.
pub fn coordinator_config(
    pki: &PkiDir,
    pki_path: &std::path::Path,
    name: &str,
    fed: &FederationArgs,
) -> Result<(CoordinatorConfig, Vec<String>)> {
    let me = pki
        .read_site(name)
        .with_context(|| format!("the coordinator identity '{name}'"))?;
    let sites: Vec<String> = if fed.sites.is_empty() {
        pki.site_names()?
            .into_iter()
            .filter(|s| s != name)
            .collect()
    } else {
        fed.sites.clone()
    };
    if sites.is_empty() {
        bail!(
            "no sites: pass --sites or issue site identities into {} with `fedids pki issue`",
            pki_path.display()
        );
    }
    let mut site_keys = HashMap::new();
    for site in &sites {
        let key = pki
            .read_site_verifying_key(site)
            .with_context(|| format!("the verifying key of site '{site}'"))?;
        site_keys.insert(site.clone(), key);
    }
    let strategy: MergeStrategy = fed
        .strategy
        .parse()
        .map_err(|e| anyhow!("--strategy: {e}"))?;
    if !(0.0..1.0).contains(&fed.validation_fraction) {
        bail!(
            "--validation-fraction must be in [0, 1), found {}",
            fed.validation_fraction
        );
    }
    let cfg = CoordinatorConfig {
        name: name.to_string(),
        min_sites: fed.min_sites.unwrap_or(sites.len()),
        site_keys,
        signing_key: me.signing_key.clone(),
        strategy,
        trees_per_site: fed.trees_per_site,
        validation_fraction: fed.validation_fraction,
        rounds: fed.rounds,
        join_timeout: fed.join_timeout,
        upload_timeout: fed.upload_timeout,
        scoring_timeout: fed.scoring_timeout,
        fetch_grace: fed.fetch_grace,
        seed: fed.seed,
    };
    cfg.check().map_err(|e| anyhow!(e))?;
    Ok((cfg, sites))
}

pub fn run(a: CoordinatorArgs) -> Result<()> {
    let pki = PkiDir::new(&a.pki);
    let ca_pem = pki.read_ca_cert()?;
    let me = pki
        .read_site(&a.name)
        .with_context(|| format!("the coordinator identity '{}'", a.name))?;
    let (cfg, sites) = coordinator_config(&pki, &a.pki, &a.name, &a.fed)?;
    let tls = server_config(&ca_pem, &me.cert_pem, &me.key_pem)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let wire = Arc::new(WireBytes::default());
    let records = runtime.block_on(async {
        let store = Store::open(&a.state)?;
        let metrics = Arc::new(Metrics::new());
        let mut coordinator =
            Coordinator::new(cfg, store, metrics.clone()).map_err(|e| anyhow!(e))?;
        if !a.ledger_node.is_empty() {
            let client = super::ledger::Client::new(&crate::args::LedgerClientArgs {
                pki: a.pki.clone(),
                name: a.name.clone(),
                node: a.ledger_node.clone(),
            })?;
            coordinator =
                coordinator.with_ledger(Arc::new(super::ledger::CoordinatorLedger(client)));
        }
        let coordinator = Arc::new(coordinator);
        let metrics_addr = match a.metrics {
            Some(addr) => {
                let (bound, _task) = serve_metrics(addr, metrics)
                    .await
                    .with_context(|| format!("cannot serve metrics on {addr}"))?;
                info!(addr = %bound, "metrics at http://{bound}/metrics");
                Some(bound)
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let bound = listener.local_addr()?;
        info!(addr = %bound, sites = sites.join(","), "coordinator listening");
        if let Some(path) = &a.ready_file {
            let ready = serde_json::json!({
                "grpc": bound.to_string(),
                "metrics": metrics_addr.map(|m| m.to_string()),
            });
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, ready.to_string())
                .and_then(|()| std::fs::rename(&tmp, path))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = CoordinatorService::new(
            ServiceConfig {
                max_model_bytes: a.fed.max_model_bytes,
            },
            coordinator.clone(),
        );
        let server = tokio::spawn(serve_counted(listener, tls, service, wire.clone(), async {
            let _ = stopped.await;
        }));
        let result = coordinator.run().await;
        let _ = stop.send(());
        let _ = server.await;
        result.map_err(|e| anyhow!(e))
    })?;
    write_reports(&a.state, &records)?;
    if a.json {
        let v = serde_json::json!({ "rounds": records, "wire": wire.snapshot() });
        crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        crate::ui::emit(&summary(&records))?;
    }
    Ok(())
}

/// Writes each round's record as `STATE/round-N.json` (what `ledger verify --replay` reads).
pub fn write_reports(state: &std::path::Path, records: &[RoundRecord]) -> Result<()> {
    for r in records {
        let path = state.join(format!("round-{}.json", r.id));
        std::fs::write(&path, serde_json::to_string_pretty(r)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn secs(r: &RoundRecord, phase: &str) -> f64 {
    r.phase_ms.get(phase).copied().unwrap_or(0) as f64 / 1e3
}

pub fn summary(records: &[RoundRecord]) -> String {
    let mut out = String::new();
    for r in records {
        let merged = match &r.global {
            Some(g) => g.merged_sites.len(),
            None => 0,
        };
        let _ = writeln!(
            out,
            "round {}: strategy {}, {merged} of {} sites merged",
            r.id,
            r.strategy,
            r.expected.len()
        );
        for (site, why) in &r.missing {
            let _ = writeln!(out, "  missing {site}: {why}");
        }
        let _ = writeln!(
            out,
            "  upload phase {:.2} s, scoring {:.2} s, merge {:.2} s; {} model bytes received",
            secs(r, "upload"),
            secs(r, "scoring"),
            secs(r, "merge"),
            super::thousands(r.bytes_received)
        );
        if let (Phase::Merged, Some(g)) = (&r.phase, &r.global) {
            let _ = writeln!(
                out,
                "  global model: {} trees, {} bytes, sha256 {}",
                g.n_trees,
                super::thousands(g.n_bytes),
                g.hash
            );
        }
    }
    out
}
