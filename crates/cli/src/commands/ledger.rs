//! `fedids ledger`: the ledger's client side: genesis, publications, exports, audits, and each
//! site's contributions.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use fedids_ledger::contrib::{contributions, SiteContribution};
use fedids_ledger::merkle::Hash;
use fedids_ledger::{export, Body, Entry, Ledger, Record, Role};
use fedids_net::pki::PkiDir;
use fedids_node::heads::judge;
use fedids_node::{LedgerView, PeerOutcome};
use fedids_raft::{RaftClient, TlsIdentity};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::node::{hex, tls_identity};
use crate::args::{LedgerClientArgs, LedgerCommand, LedgerSource};

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

/// A node's signed tree head as checked against a ledger, in words.
fn signed_head(outcome: &PeerOutcome) -> String {
    match outcome {
        PeerOutcome::Consistent(h) => format!(
            "size {} signed by '{}', signature and root verified",
            h.head.size, h.signer
        ),
        PeerOutcome::Ahead(h) => format!(
            "size {} signed by '{}', ahead of the entries read (not checked)",
            h.head.size, h.signer
        ),
        PeerOutcome::Fork { reason, .. } => format!("FORK: {reason}"),
        PeerOutcome::Invalid { reason, .. } => format!("not verified: {reason}"),
        PeerOutcome::Unreachable(e) => format!("unreachable: {e}"),
    }
}

/// The ledger of an export file, or of the first node of `client`, checked through the ledger's
/// rules; with where it came from.
fn load_ledger(source: &LedgerSource) -> Result<(fedids_ledger::Ledger, String)> {
    match (&source.file, &source.client) {
        (Some(file), _) => Ok((read_export(file)?, file.display().to_string())),
        (None, Some(client)) => {
            let c = Client::new(client)?;
            let url = c.urls[0].clone();
            let entries = runtime()?.block_on(c.read_all(&url))?;
            // Every applied entry goes through the ledger's gate as the view is rebuilt.
            let view = LedgerView::rebuild(&entries);
            if let Some((position, why)) = view.refused().first() {
                tracing::warn!(
                    refused = view.refused().len(),
                    "{url}: log entries refused at apply time are not part of the ledger (first at position {position}: {why})"
                );
            }
            Ok((view.ledger().clone(), url))
        }
        (None, None) => bail!("give --file, or --pki, --name and --node"),
    }
}

/// An inclusion or consistency proof of `ledger`, verified with the RFC 9162 algorithms before
/// it is returned (as JSON, hashes in hex).
fn proof(
    ledger: &fedids_ledger::Ledger,
    inclusion: Option<u64>,
    consistency: Option<u64>,
    size: Option<u64>,
) -> Result<serde_json::Value> {
    use fedids_ledger::merkle::{verify_consistency, verify_inclusion};
    let merkle = ledger.merkle();
    let size = size.unwrap_or(ledger.len());
    if size > ledger.len() {
        bail!("--size {size}: the ledger holds {} records", ledger.len());
    }
    let root = merkle.root_at(size)?;
    let hexes = |p: &[Hash]| p.iter().map(hex).collect::<Vec<_>>();
    match (inclusion, consistency) {
        (Some(index), _) => {
            if index >= size {
                bail!(
                    "--inclusion {index}: the tree of size {size} has records 0 to {}",
                    size.saturating_sub(1)
                );
            }
            let leaf = *merkle
                .leaf(index)
                .ok_or_else(|| anyhow!("record {index} has no leaf"))?;
            let path = merkle.inclusion_proof(index, size)?;
            verify_inclusion(&leaf, index, size, &path, &root)
                .context("the inclusion proof does not verify")?;
            let u = &ledger.records()[index as usize].entry.unsigned;
            Ok(json!({
                "kind": "inclusion",
                "index": index,
                "size": size,
                "leaf_hash": hex(&leaf),
                "root": hex(&root),
                "proof": hexes(&path),
                "record": { "author": u.author, "what": u.body.kind() },
                "statement": format!(
                    "record {index} ({} by '{}', leaf {}) is in the tree of size {size} with root {}: {} hashes, verified",
                    u.body.kind(), u.author, hex(&leaf), hex(&root), path.len()
                ),
            }))
        }
        (None, Some(old)) => {
            if old > size {
                bail!("--consistency {old}: larger than the tree size {size}");
            }
            let old_root = merkle.root_at(old)?;
            let path = merkle.consistency_proof(old, size)?;
            verify_consistency(old, size, &old_root, &root, &path)
                .context("the consistency proof does not verify")?;
            Ok(json!({
                "kind": "consistency",
                "old_size": old,
                "old_root": hex(&old_root),
                "size": size,
                "root": hex(&root),
                "proof": hexes(&path),
                "statement": format!(
                    "the tree of size {old} (root {}) is a prefix of the tree of size {size} (root {}): {} hashes, verified",
                    hex(&old_root), hex(&root), path.len()
                ),
            }))
        }
        (None, None) => bail!("give --inclusion INDEX or --consistency OLD"),
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
                (Some(file), _) => (read_export(file)?, file.clone()),
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
                        "  {}: {} models contributed, {} trees accepted, {} evaluations, gain brought to the others {}, gain received {}",
                        c.site,
                        c.models_contributed,
                        c.trees_accepted,
                        c.evaluations,
                        pp(c.gain_brought_ppm),
                        pp(c.gain_received_ppm)
                    );
                }
                crate::ui::emit(&out)?;
            }
        }
        LedgerCommand::Contributions { source, json } => {
            let (ledger, source) = load_ledger(&source)?;
            let contrib = contributions(&ledger);
            let root = hex(&ledger.merkle().root());
            if json {
                let v = json!({
                    "source": source,
                    "records": ledger.len(),
                    "root": root,
                    "federation": ledger.federation(),
                    "contributions": contrib,
                });
                crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
            } else {
                let mut out = format!(
                    "{source}: {} records verified; federation '{}', root {root}\n",
                    ledger.len(),
                    ledger.federation()
                );
                out.push_str(&contributions_table(&contrib));
                crate::ui::emit(&out)?;
            }
        }
        LedgerCommand::Proof {
            source,
            inclusion,
            consistency,
            size,
            json,
        } => {
            let (ledger, source) = load_ledger(&source)?;
            let v = proof(&ledger, inclusion, consistency, size)?;
            if json {
                crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
            } else {
                let mut out = format!("{source}: {}\n", v["statement"].as_str().unwrap_or(""));
                for (i, h) in v["proof"].as_array().into_iter().flatten().enumerate() {
                    let _ = writeln!(out, "  proof[{i}] {}", h.as_str().unwrap_or(""));
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
            // Each node's signed tree head: its signature (under the key the ledger registers for
            // it), checked against the ledger it served and against the first node's.
            let mut signed = Vec::new();
            for (url, v, st) in &heads {
                let own = signed_head(&judge(v.ledger(), &st.app_status));
                if let PeerOutcome::Fork { head, reason } = judge(first.ledger(), &st.app_status) {
                    forks.push(format!(
                        "{url} signed a head of size {} that {first_url}'s ledger contradicts ({reason})",
                        head.head.size
                    ));
                }
                signed.push(own);
            }
            let rows: Vec<serde_json::Value> = heads
                .iter()
                .zip(&signed)
                .map(|((url, v, st), signed)| {
                    json!({
                        "node": url,
                        "id": st.id,
                        "state": st.state,
                        "leader": st.leader,
                        "term": st.term,
                        "size": v.ledger().len(),
                        "root": hex(&v.ledger().merkle().root()),
                        "signed_head": signed,
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
                        "{} (node {}, {})  size {}  root {}\n    signed head: {}",
                        r["node"].as_str().unwrap_or("?"),
                        r["id"],
                        r["state"].as_str().unwrap_or("?"),
                        r["size"],
                        r["root"].as_str().unwrap_or("?"),
                        r["signed_head"].as_str().unwrap_or("?")
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

/// Reads an export file and checks every record through the ledger's rules; an error names the
/// file and the first bad record.
fn read_export(file: &std::path::Path) -> Result<Ledger> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let records = export::decode(&bytes).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    Ledger::from_encoded(&records).map_err(|e| anyhow!("{}: {e}", file.display()))
}

/// A gain in ppm of accuracy as signed percentage points (`+1.23 pp`), `n/a` when not measured.
fn pp(ppm: Option<i64>) -> String {
    let Some(ppm) = ppm else {
        return "n/a".into();
    };
    let sign = if ppm < 0 { '-' } else { '+' };
    // 100 ppm is a hundredth of a percentage point; round half away from zero.
    let hundredths = (ppm.unsigned_abs() + 50) / 100;
    format!("{sign}{}.{:02} pp", hundredths / 100, hundredths % 100)
}

/// The contributions as an aligned text table, one row per site.
fn contributions_table(contrib: &[SiteContribution]) -> String {
    if contrib.is_empty() {
        return "no site has contributed yet\n".into();
    }
    let header = [
        "site",
        "models",
        "rounds accepted",
        "trees accepted",
        "train rows",
        "evaluations",
        "gain brought",
        "gain received",
    ]
    .map(String::from);
    let rows: Vec<[String; 8]> = contrib
        .iter()
        .map(|c| {
            [
                c.site.clone(),
                c.models_contributed.to_string(),
                c.rounds_accepted.to_string(),
                c.trees_accepted.to_string(),
                c.train_rows.to_string(),
                c.evaluations.to_string(),
                pp(c.gain_brought_ppm),
                pp(c.gain_received_ppm),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = format!("{:<w$}", row[0], w = widths[0]);
        for (cell, w) in row.iter().zip(widths).skip(1) {
            let _ = write!(line, "  {cell:>w$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(
        "gain brought: what its trees added to the majority vote on the other sites' validation rows; gain received: the global model against its own forest on its own rows (summed over rounds)\n",
    );
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gains_read_as_signed_percentage_points() {
        assert_eq!(pp(None), "n/a");
        assert_eq!(pp(Some(0)), "+0.00 pp");
        assert_eq!(pp(Some(12_345)), "+1.23 pp");
        assert_eq!(pp(Some(12_350)), "+1.24 pp");
        assert_eq!(pp(Some(-4_499)), "-0.45 pp");
        assert_eq!(pp(Some(1_000_000)), "+100.00 pp");
        assert_eq!(pp(Some(-1_000_000)), "-100.00 pp");
    }

    #[test]
    fn the_contributions_table_aligns_its_columns() {
        let row = |site: &str, brought, received| SiteContribution {
            site: site.into(),
            models_contributed: 2,
            rounds_accepted: 2,
            trees_accepted: 15,
            train_rows: 123_456,
            evaluations: 2,
            gain_brought_ppm: brought,
            gain_received_ppm: received,
        };
        let table = contributions_table(&[
            row("site-a", Some(9_999), Some(30_000)),
            row("plant-12", None, Some(-160_000)),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "site      models  rounds accepted  trees accepted  train rows  evaluations  gain brought  gain received"
        );
        assert_eq!(
            lines[1],
            "site-a         2                2              15      123456            2      +1.00 pp       +3.00 pp"
        );
        assert!(lines[2].starts_with("plant-12 "), "{table}");
        assert!(lines[2].ends_with("n/a      -16.00 pp"), "{table}");
        assert_eq!(contributions_table(&[]), "no site has contributed yet\n");
    }
}
