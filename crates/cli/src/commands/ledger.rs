//! `fedids ledger`: the ledger's client side: genesis, publications, exports, audits.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use fedids_ledger::contrib::contributions;
use fedids_ledger::{export, Body, Entry, Ledger, Record, Role};
use fedids_net::pki::PkiDir;
use fedids_node::LedgerView;
use fedids_raft::{RaftClient, TlsIdentity};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::node::{hex, tls_identity};
use crate::args::{LedgerClientArgs, LedgerCommand};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A ledger client acting as one identity of a PKI directory.
pub struct Client {
    urls: Vec<String>,
    tls: TlsIdentity,
    pki: PkiDir,
    name: String,
}

impl Client {
    pub fn new(a: &LedgerClientArgs) -> Result<Client> {
        let pki = PkiDir::new(&a.pki);
        Ok(Client {
            urls: a.node.clone(),
            tls: tls_identity(&pki, &a.name)?,
            pki,
            name: a.name.clone(),
        })
    }

    pub fn sign(&self, author: &str, body: Body) -> Result<Entry> {
        let key = self.pki.read_site(&self.name)?.signing_key;
        Ok(Ledger::unsigned(author, now_ms(), body).sign(&key))
    }

    /// Writes an entry through the cluster, following the leader; refusals carry the reason.
    pub async fn write(&self, entry: &Entry) -> Result<u64> {
        let bytes = entry.encode();
        let mut url = self.urls[0].clone();
        let mut next = 0;
        let mut last_error = String::new();
        for _ in 0..40 {
            let client = RaftClient::connect(&url, None, &self.tls)?;
            match client.write(bytes.clone()).await {
                Ok(position) => return Ok(position),
                Err(fedids_raft::Error::Refused(why)) => {
                    bail!(
                        "the ledger refused the {}: {why}",
                        entry.unsigned.body.kind()
                    )
                }
                Err(fedids_raft::Error::NotLeader {
                    addr: Some(addr), ..
                }) => url = addr,
                Err(e) => {
                    last_error = format!("{url}: {e}");
                    next = (next + 1) % self.urls.len();
                    url = self.urls[next].clone();
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        bail!("no ledger node accepted the write; last error: {last_error}")
    }

    /// Writes an entry and counts content the ledger already holds (a replay: the same entry
    /// recorded before a restart, or the same bundle posted again) as recorded. Returns the
    /// log position of a new entry.
    pub async fn record(&self, entry: &Entry) -> Result<Option<u64>, String> {
        match self.write(entry).await {
            Ok(position) => Ok(Some(position)),
            Err(e) if format!("{e:#}").contains("replayed content") => Ok(None),
            Err(e) => Err(format!("{e:#}")),
        }
    }

    /// Every applied entry of the node at `url`.
    async fn read_all(&self, url: &str) -> Result<Vec<Vec<u8>>> {
        let client = RaftClient::connect(url, None, &self.tls)?;
        let mut out = Vec::new();
        loop {
            let page = client
                .read(out.len() as u64, 0)
                .await
                .with_context(|| format!("cannot read the ledger from {url}"))?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(command: LedgerCommand) -> Result<()> {
    match command {
        LedgerCommand::Genesis {
            client,
            federation,
            sites,
            nodes,
            authorities,
        } => {
            let c = Client::new(&client)?;
            let me = c.pki.read_site(&c.name)?;
            let mut entries = vec![c.sign(
                &c.name,
                Body::Genesis {
                    federation,
                    authorities: vec![(c.name.clone(), me.signing_key.verifying_key().to_bytes())],
                },
            )?];
            for (names, role) in [
                (&sites, Role::Site),
                (&nodes, Role::Node),
                (&authorities, Role::Authority),
            ] {
                for name in names {
                    let key = c
                        .pki
                        .read_site_verifying_key(name)
                        .with_context(|| format!("the verifying key of '{name}'"))?;
                    entries.push(c.sign(
                        &c.name,
                        Body::RegisterKey {
                            name: name.clone(),
                            key: key.to_bytes(),
                            role,
                        },
                    )?);
                }
            }
            runtime()?.block_on(async {
                for e in &entries {
                    c.write(e).await?;
                }
                anyhow::Ok(())
            })?;
            println!(
                "genesis written by '{}': {} entries (genesis and {} key registrations)",
                c.name,
                entries.len(),
                entries.len() - 1
            );
        }
        LedgerCommand::Publish {
            client,
            bundle,
            channel,
            author,
        } => {
            let c = Client::new(&client)?;
            let bytes = std::fs::read(&bundle)
                .with_context(|| format!("cannot read {}", bundle.display()))?;
            let n_objects = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["objects"].as_array().map(Vec::len))
                .unwrap_or(0) as u32;
            let hash: [u8; 32] = Sha256::digest(&bytes).into();
            let entry = c.sign(
                author.as_deref().unwrap_or(&c.name),
                Body::IntelPublication {
                    bundle_sha256: hash,
                    n_objects,
                    channel,
                },
            )?;
            let position = runtime()?.block_on(c.write(&entry))?;
            println!(
                "recorded publication of {} (sha256 {}) at log position {position}",
                bundle.display(),
                hex(&hash)
            );
        }
        LedgerCommand::Export { client, out } => {
            let c = Client::new(&client)?;
            let url = c.urls[0].clone();
            let entries = runtime()?.block_on(c.read_all(&url))?;
            let view = LedgerView::rebuild(&entries);
            let records: Vec<Vec<u8>> =
                view.ledger().records().iter().map(Record::encode).collect();
            std::fs::write(&out, export::encode(&records))
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "exported {} records from {url} to {} (root {}; {} log entries refused at apply time)",
                records.len(),
                out.display(),
                hex(&view.ledger().merkle().root()),
                view.refused().len()
            );
        }
        LedgerCommand::Verify {
            file,
            state,
            model,
            replay,
            json,
        } => {
            let (ledger, file) = match (&file, &state) {
                (Some(file), _) => {
                    let bytes = std::fs::read(file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let records =
                        export::decode(&bytes).map_err(|e| anyhow!("{}: {e}", file.display()))?;
                    let ledger = Ledger::from_encoded(&records)
                        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
                    (ledger, file.clone())
                }
                (None, Some(dir)) => (verify_stored(dir)?, dir.clone()),
                (None, None) => bail!("give --file or --state"),
            };
            let contrib = contributions(&ledger);
            let root = hex(&ledger.merkle().root());
            let mut checks = Vec::new();
            if let Some(path) = &model {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let hash: [u8; 32] = Sha256::digest(&bytes).into();
                let Some(a) = ledger
                    .aggregations()
                    .values()
                    .find(|a| a.output_sha256 == hash)
                else {
                    bail!(
                        "{}: sha256 {} is not the recorded output of any aggregation in {}",
                        path.display(),
                        hex(&hash),
                        file.display()
                    );
                };
                checks.push(format!(
                    "{} is the recorded global model of round {} ({}, inputs from {})",
                    path.display(),
                    a.round,
                    a.strategy,
                    a.inputs
                        .iter()
                        .map(|(s, _)| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let Some(dir) = &replay {
                for a in ledger.aggregations().values() {
                    checks.push(replay_round(dir, a)?);
                }
            }
            if json {
                let publications: Vec<serde_json::Value> = ledger
                    .records()
                    .iter()
                    .filter_map(|r| match &r.entry.unsigned.body {
                        Body::IntelPublication {
                            bundle_sha256,
                            n_objects,
                            channel,
                        } => Some(json!({
                            "index": r.index,
                            "author": r.entry.unsigned.author,
                            "sha256": hex(bundle_sha256),
                            "n_objects": n_objects,
                            "channel": channel,
                        })),
                        _ => None,
                    })
                    .collect();
                let v = json!({
                    "records": ledger.len(),
                    "root": root,
                    "checks": checks,
                    "federation": ledger.federation(),
                    "keys": ledger.keys(),
                    "contributions": contrib,
                    "publications": publications,
                });
                crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
            } else {
                let mut out = String::new();
                let _ = writeln!(
                    out,
                    "{}: {} records verified (hash chain, signatures, authors and roles, no replays); federation '{}', root {root}",
                    file.display(),
                    ledger.len(),
                    ledger.federation()
                );
                for c in &checks {
                    let _ = writeln!(out, "  {c}");
                }
                for c in contrib {
                    let _ = writeln!(
                        out,
                        "  {}: {} models contributed, {} trees accepted, validation gain {}",
                        c.site,
                        c.models_contributed,
                        c.trees_accepted,
                        c.validation_gain_ppm
                            .map_or("not measured".to_string(), |g| format!("{g:+} ppm"))
                    );
                }
                crate::ui::emit(&out)?;
            }
        }
        LedgerCommand::Heads { client, json } => {
            let c = Client::new(&client)?;
            let heads = runtime()?.block_on(async {
                let mut heads = Vec::new();
                for url in &c.urls {
                    let entries = c.read_all(url).await?;
                    let view = LedgerView::rebuild(&entries);
                    let status = RaftClient::connect(url, None, &c.tls)?
                        .status()
                        .await
                        .with_context(|| format!("cannot ask {url} for its status"))?;
                    heads.push((url.clone(), view, status));
                }
                anyhow::Ok(heads)
            })?;
            let mut forks = Vec::new();
            let (first_url, first, _) = &heads[0];
            for (url, view, _) in &heads[1..] {
                let size = view.ledger().len().min(first.ledger().len());
                let (a, b) = (
                    first.ledger().root_at(size).ok(),
                    view.ledger().root_at(size).ok(),
                );
                if a != b {
                    forks.push(format!(
                        "{url} and {first_url} hold different histories at size {size}"
                    ));
                }
            }
            let rows: Vec<serde_json::Value> = heads
                .iter()
                .map(|(url, v, st)| {
                    json!({
                        "node": url,
                        "id": st.id,
                        "state": st.state,
                        "leader": st.leader,
                        "term": st.term,
                        "size": v.ledger().len(),
                        "root": hex(&v.ledger().merkle().root()),
                    })
                })
                .collect();
            if json {
                let v = json!({ "heads": rows, "forks": forks });
                crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
            } else {
                let mut out = String::new();
                for r in &rows {
                    let _ = writeln!(
                        out,
                        "{} (node {}, {})  size {}  root {}",
                        r["node"].as_str().unwrap_or("?"),
                        r["id"],
                        r["state"].as_str().unwrap_or("?"),
                        r["size"],
                        r["root"].as_str().unwrap_or("?")
                    );
                }
                crate::ui::emit(&out)?;
            }
            if !forks.is_empty() {
                bail!("fork detected: {}", forks.join("; "));
            }
        }
    }
    Ok(())
}

/// Records TAXII publications on the ledger, signed by the server's identity.
pub struct LedgerHook(pub Client);

impl fedids_intel::taxii::PublishHook for LedgerHook {
    fn published(
        &self,
        p: fedids_intel::taxii::Publication,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let entry = self
                .0
                .sign(
                    &self.0.name,
                    Body::IntelPublication {
                        bundle_sha256: p.sha256,
                        n_objects: u32::try_from(p.n_objects).unwrap_or(u32::MAX),
                        channel: p.collection,
                    },
                )
                .map_err(|e| format!("{e:#}"))?;
            if let Some(position) = self.0.record(&entry).await? {
                tracing::info!(position, sha256 = %hex(&p.sha256), "publication recorded on the ledger");
            }
            Ok(())
        })
    }
}

/// Records the coordinator's rounds on the ledger.
pub struct CoordinatorLedger(pub Client);

impl fedids_round::coordinator::LedgerSink for CoordinatorLedger {
    fn record<'a>(
        &'a self,
        entry: &'a Entry,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move { self.0.record(entry).await.map(|_| ()) })
    }
}

/// Re-executes a recorded merge from a coordinator's state directory; `Ok` describes the match.
fn replay_round(dir: &std::path::Path, a: &fedids_ledger::Aggregation) -> Result<String> {
    use fedids_round::coordinator::{merge_models, scores_sha256};
    let report = dir.join(format!("round-{}.json", a.round));
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("round {}: cannot read {}", a.round, report.display()))?;
    let record: fedids_round::state::RoundRecord = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a round record", report.display()))?;
    if scores_sha256(&record) != a.scores_sha256 {
        bail!(
            "round {}: the scores in {} are not the ones the ledger recorded",
            a.round,
            report.display()
        );
    }
    let mut sites = Vec::new();
    let mut models = Vec::new();
    for (site, hash) in &a.inputs {
        let path = dir.join("models").join(format!("{}.fedids", hex(hash)));
        let bytes = std::fs::read(&path)
            .with_context(|| format!("round {}: input of '{site}'", a.round))?;
        let got: [u8; 32] = Sha256::digest(&bytes).into();
        if got != *hash {
            bail!(
                "round {}: {} does not hash to the recorded input of '{site}'",
                a.round,
                path.display()
            );
        }
        sites.push(site.clone());
        models.push(bytes);
    }
    let first = models
        .first()
        .ok_or_else(|| anyhow!("round {}: the aggregation has no inputs", a.round))?;
    let schema = fedids_forest::model::decode(first)?.schema().clone();
    let strategy: fedids_federation::MergeStrategy = a
        .strategy
        .parse()
        .map_err(|e| anyhow!("round {}: strategy '{}': {e}", a.round, a.strategy))?;
    let global = merge_models(&record, &sites, &models, &schema, &strategy, a.seed)
        .map_err(|e| anyhow!("round {}: replaying the merge failed: {e}", a.round))?;
    let got: [u8; 32] = Sha256::digest(&global.model).into();
    if got != a.output_sha256 {
        bail!(
            "round {}: the replayed merge gives {}, the ledger recorded {}",
            a.round,
            hex(&got),
            hex(&a.output_sha256)
        );
    }
    Ok(format!(
        "round {}: replayed {} from {} recorded inputs: output {} matches the ledger",
        a.round,
        a.strategy,
        sites.len(),
        hex(&got)
    ))
}

/// Checks the entries a stopped node stored: every one must pass the ledger's rules in order.
fn verify_stored(dir: &std::path::Path) -> Result<Ledger> {
    let entries = fedids_raft::stored_entries(dir).with_context(|| {
        format!(
            "cannot read the ledger stored in {} (is the node stopped?)",
            dir.display()
        )
    })?;
    let view = LedgerView::rebuild(&entries);
    if let Some((position, why)) = view.refused().first() {
        bail!(
            "{}: stored entry {position}: {why} (damaged on disk, or refused by the ledger's rules when it was applied)",
            dir.display()
        );
    }
    Ok(view.ledger().clone())
}
