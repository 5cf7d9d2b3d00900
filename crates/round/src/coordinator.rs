//! The coordinator: the round logic behind the gRPC service, and the task that drives rounds.
//!
//! State lives in memory behind one mutex and in the [`Store`] after every change; the
//! transitions themselves are the pure rules of [`crate::state`]. Long polls wait on a watch
//! channel that every change bumps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{SigningKey, VerifyingKey};
use fedids_data::Schema;
use fedids_federation::{
    encode_global, merge, merge_support, CategorySupport, MergeStrategy, Metric, ScoreTable,
    SiteId, SiteModel,
};
use fedids_forest::{model as forest_model, Forest, TreeScore};
use fedids_net::proto::{
    EvaluationAck, EvaluationReport, JoinReply, JoinRequest, RoundOpen, ScoreAck, ScoreReport,
    TreeRef, UploadReply,
};
use fedids_net::server::{check_join_key, Candidates, ReceivedModel, Rounds, SignedModel};
use fedids_net::signing::{hex, model_hash, sign_global};
use fedids_net::PROTOCOL_VERSION;
use tokio::sync::{watch, Mutex, MutexGuard};
use tonic::Status;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::state::{GlobalMeta, Phase, RoundRecord, Scoring, SiteScores, Step, UploadMeta};
use crate::store::Store;

/// How long a long poll waits before answering `UNAVAILABLE` (the site asks again).
const LONG_POLL: Duration = Duration::from_secs(10);
/// How often the driver re-checks deadlines when nothing happens.
const TICK: Duration = Duration::from_millis(200);

/// Everything that determines how the coordinator runs.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The coordinator's certificate name (the signer of global models).
    pub name: String,
    /// The sites expected in every round, with their model verifying keys.
    pub site_keys: HashMap<String, VerifyingKey>,
    /// The coordinator's key, which signs global models.
    pub signing_key: SigningKey,
    /// Rounds complete with at least this many sites.
    pub min_sites: usize,
    /// How models are merged.
    pub strategy: MergeStrategy,
    /// Trees each site grows.
    pub trees_per_site: u32,
    /// Share of each site's rows kept for validation.
    pub validation_fraction: f64,
    /// Rounds to run.
    pub rounds: u64,
    /// Time for sites to join before the first round.
    pub join_timeout: Duration,
    /// Time for uploads after a round opens.
    pub upload_timeout: Duration,
    /// Time for scores after uploads close.
    pub scoring_timeout: Duration,
    /// Time sites get to download the last global model before the coordinator exits.
    pub fetch_grace: Duration,
    /// Seed of the merge (`weighted:K` sampling).
    pub seed: u64,
}

impl CoordinatorConfig {
    /// Refuses strategies the network protocol cannot run and impossible site counts.
    pub fn check(&self) -> Result<(), String> {
        if self.strategy.needs_refit() {
            return Err(format!(
                "strategy '{}' needs the leaf-count round, which the network protocol does not run; use all, top-per-site, top-global, cross-site (without :refit), weighted or support",
                self.strategy
            ));
        }
        if self.min_sites == 0 || self.min_sites > self.site_keys.len() {
            return Err(format!(
                "--min-sites must be between 1 and the number of sites ({}), found {}",
                self.site_keys.len(),
                self.min_sites
            ));
        }
        if self.trees_per_site == 0 {
            return Err("--trees-per-site must be at least 1".to_string());
        }
        Ok(())
    }
}

struct State {
    /// Schema proposals of the sites that joined.
    joined: BTreeMap<String, Schema>,
    /// The agreed schema and its JSON.
    schema: Option<(Schema, Vec<u8>)>,
    round: Option<RoundRecord>,
    /// Sites that downloaded the current round's global model.
    fetched: BTreeSet<String>,
}

/// Where the coordinator records each round's contributions and aggregation (the replicated
/// ledger, through the binary's ledger client).
pub trait LedgerSink: Send + Sync + 'static {
    /// Records one signed entry. Content the ledger already holds counts as recorded.
    fn record<'a>(
        &'a self,
        entry: &'a fedids_ledger::Entry,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

/// The coordinator's round logic ([`Rounds`]) and driver ([`Coordinator::run`]).
pub struct Coordinator {
    cfg: CoordinatorConfig,
    store: Store,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    metrics: Arc<Metrics>,
    ledger: Option<Arc<dyn LedgerSink>>,
}

/// The ranking metric of a strategy in its command-line spelling (`a`, `wa`; empty when the
/// strategy ranks nothing).
fn ranking_metric(strategy: &MergeStrategy) -> &'static str {
    match strategy {
        MergeStrategy::TopPerSite { metric, .. }
        | MergeStrategy::TopGlobal { metric, .. }
        | MergeStrategy::CrossSite { metric, .. } => match metric {
            Metric::Accuracy => "a",
            Metric::WeightedAccuracy => "wa",
        },
        _ => "",
    }
}

/// Unix time in ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// A change the store did not commit (a replicated log without a quorum, a deposed leader):
/// `UNAVAILABLE`, so the site tries again, elsewhere when it knows other nodes.
fn not_committed(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!(
        "the round state was not committed ({e}); try again"
    ))
}

impl Coordinator {
    /// A coordinator over `store`, resuming the round the store was in.
    pub fn new(
        cfg: CoordinatorConfig,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Result<Coordinator, String> {
        cfg.check()?;
        let schema = match store.schema().map_err(|e| e.to_string())? {
            Some(json) => {
                let schema: Schema = serde_json::from_slice(&json)
                    .map_err(|e| format!("stored federation schema does not decode: {e}"))?;
                Some((schema, json))
            }
            None => None,
        };
        let mut round = store.last_round().map_err(|e| e.to_string())?;
        if let Some(r) = &mut round {
            match r.phase {
                Phase::Uploading | Phase::Scoring => {
                    let timeout = if r.phase == Phase::Uploading {
                        cfg.upload_timeout
                    } else {
                        cfg.scoring_timeout
                    };
                    // Sites need time to notice the restart and reconnect.
                    r.deadline_ms = r.deadline_ms.max(now_ms() + ms(timeout));
                    info!(
                        round = r.id,
                        phase = ?r.phase,
                        uploads = r.uploads.len(),
                        scores = r.scores.len(),
                        "resuming round from the store"
                    );
                }
                _ => info!(round = r.id, phase = ?r.phase, "store holds a finished round"),
            }
            metrics.current_round.set(r.id as i64);
        }
        let (changed, _) = watch::channel(0);
        Ok(Coordinator {
            cfg,
            store,
            state: Mutex::new(State {
                joined: BTreeMap::new(),
                schema,
                round,
                fetched: BTreeSet::new(),
            }),
            changed,
            metrics,
            ledger: None,
        })
    }

    /// The current round's record, if a round was opened.
    pub async fn current_round(&self) -> Option<RoundRecord> {
        self.lock().await.round.clone()
    }

    /// Records every round's contributions (the sites' signed entries) and aggregation (signed
    /// by the coordinator's key) on `ledger` before the round's global model is served. Sites
    /// must then send their signed contribution with their scores.
    pub fn with_ledger(mut self, ledger: Arc<dyn LedgerSink>) -> Coordinator {
        self.ledger = Some(ledger);
        self
    }

    /// The state; held across a store write, so that changes are stored in the order they are
    /// made.
    async fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().await
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Waits until `check` answers, at most [`LONG_POLL`] (then `UNAVAILABLE` with `waiting`).
    async fn wait_for<T>(
        &self,
        waiting: &str,
        mut check: impl FnMut(&State) -> Option<Result<T, Status>>,
    ) -> Result<T, Status> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            if let Some(answer) = check(&*self.lock().await) {
                return answer;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Status::unavailable("coordinator is shutting down")),
                Err(_) => {
                    return Err(Status::unavailable(format!(
                        "{}{waiting}",
                        fedids_net::STILL_WAITING
                    )))
                }
            }
        }
    }

    fn round_open(&self, r: &RoundRecord, schema_json: &[u8]) -> RoundOpen {
        RoundOpen {
            protocol_version: PROTOCOL_VERSION,
            round_id: r.id,
            strategy: r.strategy.clone(),
            trees_per_site: r.trees_per_site,
            ranking_metric: ranking_metric(&self.cfg.strategy).to_string(),
            nonce: r.nonce.clone(),
            schema_json: schema_json.to_vec(),
            validation_fraction: r.validation_fraction,
            upload_deadline_unix_ms: r.deadline_ms,
        }
    }

    async fn persist(&self, r: &RoundRecord, schema: Option<&[u8]>) -> Result<(), String> {
        self.store
            .put_round(r, schema)
            .await
            .map_err(|e| e.to_string())
    }

    /// Runs every configured round, then gives sites [`CoordinatorConfig::fetch_grace`] to
    /// download the last global model. Returns the record of each round run (or resumed).
    pub async fn run(self: Arc<Self>) -> Result<Vec<RoundRecord>, String> {
        let mut done = Vec::new();
        let join_deadline = Instant::now() + self.cfg.join_timeout;
        loop {
            let current = self.lock().await.round.clone();
            let next_id = match &current {
                Some(r) if matches!(r.phase, Phase::Uploading | Phase::Scoring) => {
                    done.push(self.drive(r.id).await?);
                    continue;
                }
                Some(r) => {
                    if let Phase::Failed { reason } = &r.phase {
                        return Err(reason.clone());
                    }
                    r.id + 1
                }
                None => 1,
            };
            if next_id > self.cfg.rounds {
                break;
            }
            if next_id > 1 {
                // Sites download round r's model before round r + 1 replaces it.
                self.wait_for_fetches().await;
                self.refresh_last(&mut done).await;
            }
            // Joins agree the schema; once it is agreed (and stored), a resumed coordinator does
            // not wait for sites that joined its predecessor: the upload deadline covers them.
            if self.lock().await.schema.is_none() {
                self.wait_for_joins(join_deadline).await?;
            }
            self.open_round(next_id).await?;
        }
        self.wait_for_fetches().await;
        self.refresh_last(&mut done).await;
        Ok(done)
    }

    /// Replaces the last reported round with its current record (which holds the evaluations
    /// that arrived after the merge).
    async fn refresh_last(&self, done: &mut [RoundRecord]) {
        if let (Some(last), Some(current)) = (done.last_mut(), &self.lock().await.round) {
            if last.id == current.id {
                *last = current.clone();
            }
        }
    }

    async fn wait_for_joins(&self, deadline: Instant) -> Result<(), String> {
        let mut rx = self.changed.subscribe();
        loop {
            let (joined, missing): (usize, Vec<String>) = {
                let st = self.lock().await;
                let missing = self
                    .cfg
                    .site_keys
                    .keys()
                    .filter(|s| !st.joined.contains_key(*s))
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                (st.joined.len(), missing)
            };
            if missing.is_empty() || (Instant::now() >= deadline && joined >= self.cfg.min_sites) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{joined} of {} sites joined within {:?}, --min-sites is {}; missing: {}",
                    self.cfg.site_keys.len(),
                    self.cfg.join_timeout,
                    self.cfg.min_sites,
                    missing.join(", ")
                ));
            }
            let _ = tokio::time::timeout(TICK, rx.changed()).await;
        }
    }

    async fn open_round(&self, id: u64) -> Result<(), String> {
        let mut st = self.lock().await;
        let mut new_schema = None;
        if st.schema.is_none() {
            let proposals: Vec<(String, Schema)> = st
                .joined
                .iter()
                .map(|(s, p)| (s.clone(), p.clone()))
                .collect();
            let schema = crate::schema::agree(&proposals)?;
            let json = serde_json::to_vec(&schema).map_err(|e| e.to_string())?;
            info!(
                sites = proposals.len(),
                features = schema.features.len(),
                classes = schema.classes.len(),
                "federation schema agreed"
            );
            st.schema = Some((schema, json.clone()));
            new_schema = Some(json);
        }
        let mut nonce = vec![0u8; 32];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| format!("no randomness for the nonce: {e}"))?;
        let now = now_ms();
        let mut expected: Vec<String> = self.cfg.site_keys.keys().cloned().collect();
        expected.sort();
        let opening = crate::state::Opening {
            id,
            nonce,
            strategy: self.cfg.strategy.to_string(),
            trees_per_site: self.cfg.trees_per_site,
            validation_fraction: self.cfg.validation_fraction,
            expected,
        };
        let record = RoundRecord::open(opening, now, now + ms(self.cfg.upload_timeout));
        self.persist(&record, new_schema.as_deref()).await?;
        info!(round = id, strategy = %record.strategy, "round opened");
        self.metrics.current_round.set(id as i64);
        st.round = Some(record);
        st.fetched.clear();
        drop(st);
        self.notify();
        Ok(())
    }

    /// Moves round `id` through its phases until it is merged (or fails).
    async fn drive(&self, id: u64) -> Result<RoundRecord, String> {
        let mut rx = self.changed.subscribe();
        loop {
            let step = {
                let st = self.lock().await;
                let r = st
                    .round
                    .as_ref()
                    .filter(|r| r.id == id)
                    .ok_or("round vanished")?;
                r.next_step(now_ms(), self.cfg.min_sites)
            };
            match step {
                Step::Wait => {
                    let _ = tokio::time::timeout(TICK, rx.changed()).await;
                }
                Step::CloseUploads => {
                    let mut st = self.lock().await;
                    let r = st.round.as_mut().ok_or("round vanished")?;
                    r.close_uploads(now_ms(), ms(self.cfg.scoring_timeout));
                    self.metrics
                        .observe_phase("upload", r.phase_ms["upload"] as f64 / 1e3);
                    info!(
                        round = id,
                        sites = r.survivors.join(","),
                        missing = r.missing.keys().cloned().collect::<Vec<_>>().join(","),
                        "uploads closed"
                    );
                    self.persist(r, None).await?;
                    drop(st);
                    self.notify();
                }
                Step::Merge => {
                    let record = self.merge_round().await?;
                    self.notify();
                    return Ok(record);
                }
                Step::Fail(reason) => {
                    let mut st = self.lock().await;
                    let r = st.round.as_mut().ok_or("round vanished")?;
                    r.phase = Phase::Failed {
                        reason: reason.clone(),
                    };
                    self.persist(r, None).await?;
                    drop(st);
                    self.metrics.rounds_failed.inc();
                    self.notify();
                    warn!(round = id, %reason, "round failed");
                    return Err(reason);
                }
            }
        }
    }

    async fn merge_round(&self) -> Result<RoundRecord, String> {
        let started = Instant::now();
        let (mut record, schema) = {
            let mut st = self.lock().await;
            let schema = st.schema.clone().ok_or("no federation schema")?.0;
            let r = st.round.as_mut().ok_or("round vanished")?;
            let scoring_ms =
                now_ms().saturating_sub(r.deadline_ms.saturating_sub(ms(self.cfg.scoring_timeout)));
            r.phase_ms.insert("scoring".into(), scoring_ms);
            (r.clone(), schema)
        };
        let sites = record.merge_sites();
        let mut models = Vec::with_capacity(sites.len());
        for site in &sites {
            let bytes = self
                .store
                .model(record.id, Some(site))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the upload of site '{site}' is missing from the store"))?;
            models.push(bytes);
        }
        // Copies of the inputs for auditors, written by whichever coordinator merges (with a
        // replicated store, the uploads may have reached an earlier leader).
        for (site, bytes) in sites.iter().zip(&models) {
            if let Some(u) = record.uploads.get(site) {
                self.store.export_model(&u.hash, "fedids", bytes);
            }
        }
        let strategy = self.cfg.strategy;
        let seed = fedids_rng::derive_seed(self.cfg.seed, 7, record.id);
        let inputs = record.clone();
        let names = sites.clone();
        let merged = tokio::task::spawn_blocking(move || {
            merge_models(&inputs, &names, &models, &schema, &strategy, seed)
        })
        .await
        .map_err(|e| format!("merge task failed: {e}"))??;
        let Merged {
            model: global,
            n_trees,
            accepted,
        } = merged;
        let hash = model_hash(&global);
        if let Some(ledger) = &self.ledger {
            let entries = self.ledger_entries(&record, &sites, &accepted, hash, seed)?;
            for entry in &entries {
                ledger.record(entry).await.map_err(|e| {
                    format!(
                        "round {}: the ledger did not record the {}: {e}",
                        record.id,
                        entry.unsigned.body.kind()
                    )
                })?;
            }
            info!(
                round = record.id,
                entries = entries.len(),
                "round recorded on the ledger"
            );
        }
        let signature = sign_global(&self.cfg.signing_key, record.id, &record.nonce, &hash);
        let merge_ms = started.elapsed().as_millis() as u64;
        record.phase_ms.insert("merge".into(), merge_ms);
        record.phase = Phase::Merged;
        record.global = Some(GlobalMeta {
            hash: hex(&hash),
            signature: hex(&signature),
            signer: self.cfg.name.clone(),
            n_bytes: global.len() as u64,
            n_trees,
            merged_sites: sites,
        });
        self.store
            .put_model(&record, None, &global)
            .await
            .map_err(|e| e.to_string())?;
        self.store.export_model(&hex(&hash), "fedg", &global);
        self.lock().await.round = Some(record.clone());
        self.metrics
            .observe_phase("scoring", record.phase_ms["scoring"] as f64 / 1e3);
        self.metrics.observe_phase("merge", merge_ms as f64 / 1e3);
        self.metrics.observe_phase(
            "round",
            now_ms().saturating_sub(record.opened_ms) as f64 / 1e3,
        );
        self.metrics.rounds_completed.inc();
        info!(
            round = record.id,
            trees = n_trees,
            hash = %hex(&hash),
            missing = record.missing.keys().cloned().collect::<Vec<_>>().join(","),
            "global model signed"
        );
        Ok(record)
    }

    /// The round's ledger entries: each merged site's signed contribution, then the aggregation.
    fn ledger_entries(
        &self,
        record: &RoundRecord,
        sites: &[String],
        accepted: &BTreeMap<String, u32>,
        output: [u8; 32],
        seed: u64,
    ) -> Result<Vec<fedids_ledger::Entry>, String> {
        let mut entries = Vec::new();
        let mut inputs = Vec::new();
        for site in sites {
            let bytes = &record.scores[site].ledger_entry;
            let entry = fedids_ledger::Entry::decode(bytes)
                .map_err(|e| format!("the contribution entry of '{site}': {e}"))?;
            if let fedids_ledger::Body::ModelContribution(c) = &entry.unsigned.body {
                inputs.push((site.clone(), c.model_sha256));
            }
            entries.push(entry);
        }
        let aggregation = fedids_ledger::Aggregation {
            round: record.id,
            strategy: record.strategy.clone(),
            seed,
            inputs,
            scores_sha256: scores_sha256(record),
            output_sha256: output,
            accepted: sites
                .iter()
                .map(|s| fedids_ledger::Accepted {
                    site: s.clone(),
                    n_trees: accepted.get(s).copied().unwrap_or(0),
                    // Not measured yet: sites evaluate the global model after the merge.
                })
                .collect(),
        };
        entries.push(
            fedids_ledger::Ledger::unsigned(
                &self.cfg.name,
                now_ms(),
                fedids_ledger::Body::Aggregation(aggregation),
            )
            .sign(&self.cfg.signing_key),
        );
        Ok(entries)
    }

    /// Waits (at most [`CoordinatorConfig::fetch_grace`]) until every merged site fetched the
    /// global model and sent its evaluation.
    async fn wait_for_fetches(&self) {
        let deadline = Instant::now() + self.cfg.fetch_grace;
        let mut rx = self.changed.subscribe();
        loop {
            // Sites evaluate the model right after fetching it.
            let all = {
                let st = self.lock().await;
                match st
                    .round
                    .as_ref()
                    .and_then(|r| Some((r, r.global.as_ref()?)))
                {
                    Some((r, g)) => g
                        .merged_sites
                        .iter()
                        .all(|s| st.fetched.contains(s) && r.evaluations.contains_key(s)),
                    None => true,
                }
            };
            if all || Instant::now() >= deadline {
                return;
            }
            let _ = tokio::time::timeout(TICK, rx.changed()).await;
        }
    }

    fn refuse_upload(&self, status: Status) -> Status {
        self.metrics.uploads_refused.inc();
        status
    }
}

/// SHA-256 of a round's scores as the record stores them (JSON): what the ledger's aggregation
/// entry commits to, so that a replay can prove it used the same scores.
pub fn scores_sha256(record: &RoundRecord) -> [u8; 32] {
    let json = serde_json::to_vec(&record.scores).unwrap_or_default();
    model_hash(&json)
}

/// A merge's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The global model file.
    pub model: Vec<u8>,
    /// Its trees.
    pub n_trees: u32,
    /// Trees kept per site.
    pub accepted: BTreeMap<String, u32>,
}

/// Decodes the uploads of `sites` and merges them as `record` says. Pure apart from the CPU it burns, so an
/// auditor can replay a recorded round bit for bit.
pub fn merge_models(
    record: &RoundRecord,
    sites: &[String],
    models: &[Vec<u8>],
    schema: &Schema,
    strategy: &MergeStrategy,
    seed: u64,
) -> Result<Merged, String> {
    let id_of: HashMap<&str, SiteId> = sites
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), SiteId(i as u32)))
        .collect();
    let mut site_models = Vec::with_capacity(sites.len());
    for (site, bytes) in sites.iter().zip(models) {
        let forest = forest_model::decode(bytes).map_err(|e| format!("upload of '{site}': {e}"))?;
        if forest.schema() != schema {
            return Err(format!("upload of '{site}' has another schema"));
        }
        let n_train_rows = record.scores.get(site).map_or(0, |s| s.n_train_rows);
        site_models.push(SiteModel {
            site: id_of[site.as_str()],
            forest,
            n_train_rows,
        });
    }
    let scoring = Scoring::of(strategy);
    let global = if *strategy == MergeStrategy::Support {
        let mut supports = Vec::new();
        for site in sites {
            let json = &record.scores[site].support_json;
            let support: CategorySupport = serde_json::from_str(json)
                .map_err(|e| format!("category support of '{site}' does not decode: {e}"))?;
            supports.push((id_of[site.as_str()], support));
        }
        merge_support(&site_models, &supports).map_err(|e| e.to_string())?
    } else {
        let mut table = ScoreTable::new();
        for evaluator in sites {
            let candidates = record.candidates_for(evaluator, scoring);
            let scores = &record.scores[evaluator].scores;
            let mut by_owner: BTreeMap<&str, Vec<TreeScore>> = BTreeMap::new();
            for ((owner, _), score) in candidates.iter().zip(scores) {
                by_owner
                    .entry(owner.as_str())
                    .or_default()
                    .push(score.clone());
            }
            for (owner, owner_scores) in by_owner {
                if let Some(&owner_id) = id_of.get(owner) {
                    table.insert(id_of[evaluator.as_str()], owner_id, owner_scores);
                }
            }
        }
        merge(&site_models, &table, strategy, seed).map_err(|e| e.to_string())?
    };
    let n_trees = global.n_trees() as u32;
    let name_of: HashMap<SiteId, &String> = sites
        .iter()
        .enumerate()
        .map(|(i, s)| (SiteId(i as u32), s))
        .collect();
    let mut accepted: BTreeMap<String, u32> = BTreeMap::new();
    for src in global.sources() {
        if let Some(name) = name_of.get(&src.site) {
            *accepted.entry((*name).clone()).or_default() += 1;
        }
    }
    Ok(Merged {
        model: encode_global(&global),
        n_trees,
        accepted,
    })
}

/// Checks a site's signed contribution entry against what the coordinator received from it.
fn check_contribution(
    bytes: &[u8],
    site: &str,
    round: u64,
    upload: &UploadMeta,
    n_train_rows: u64,
    key: &VerifyingKey,
) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("this federation records contributions on the ledger: send the signed entry with the scores".into());
    }
    let entry = signed_by(bytes, site, key)?;
    let fedids_ledger::Body::ModelContribution(c) = &entry.unsigned.body else {
        return Err(format!(
            "a {}, not a model contribution",
            entry.unsigned.body.kind()
        ));
    };
    if c.round != round || hex(&c.model_sha256) != upload.hash {
        return Err(format!(
            "it names round {} and model {}, the upload was round {round} and model {}",
            c.round,
            hex(&c.model_sha256),
            upload.hash
        ));
    }
    if c.n_trees != upload.n_trees || c.n_train_rows != n_train_rows {
        return Err("its tree or row count differs from the upload and scores".into());
    }
    Ok(())
}

/// Decodes a ledger entry a site sent and checks that the site wrote and signed it.
fn signed_by(bytes: &[u8], site: &str, key: &VerifyingKey) -> Result<fedids_ledger::Entry, String> {
    let entry = fedids_ledger::Entry::decode(bytes).map_err(|e| e.to_string())?;
    if entry.unsigned.author != site {
        return Err(format!("authored by '{}'", entry.unsigned.author));
    }
    if !entry.signature_ok(&key.to_bytes()) {
        return Err("bad signature".into());
    }
    Ok(entry)
}

/// Checks a site's evaluation entry against the round it measures; returns the entry.
fn check_evaluation(
    bytes: &[u8],
    site: &str,
    record: &RoundRecord,
    key: &VerifyingKey,
) -> Result<fedids_ledger::Entry, String> {
    let entry = signed_by(bytes, site, key)?;
    let fedids_ledger::Body::Evaluation(e) = &entry.unsigned.body else {
        return Err(format!(
            "a {}, not an evaluation",
            entry.unsigned.body.kind()
        ));
    };
    let Some(global) = &record.global else {
        return Err(format!("round {} has no global model yet", record.id));
    };
    if e.round != record.id || hex(&e.global_sha256) != global.hash {
        return Err(format!(
            "it names round {} and model {}, round {}'s global model is {}",
            e.round,
            hex(&e.global_sha256),
            record.id,
            global.hash
        ));
    }
    e.check_values()?;
    if let Some((s, _)) = e
        .without
        .iter()
        .find(|(s, _)| !global.merged_sites.contains(s))
    {
        return Err(format!("it names '{s}', which is not a merged site"));
    }
    Ok(entry)
}

/// The candidate model file for `site`: every candidate tree of another site, in candidate order.
fn candidate_model(
    store: &Store,
    round_id: u64,
    site: &str,
    candidates: &[(String, u32)],
) -> Result<Vec<u8>, String> {
    let mut owners: Vec<(&str, Vec<usize>)> = Vec::new();
    for (owner, tree) in candidates.iter().filter(|(o, _)| o != site) {
        match owners.last_mut() {
            Some((o, trees)) if *o == owner.as_str() => trees.push(*tree as usize),
            _ => owners.push((owner.as_str(), vec![*tree as usize])),
        }
    }
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let mut forests: Vec<Forest> = Vec::new();
    for (owner, _) in &owners {
        let bytes = store
            .model(round_id, Some(owner))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the upload of '{owner}' is missing from the store"))?;
        forests.push(forest_model::decode(&bytes).map_err(|e| e.to_string())?);
    }
    let picks: Vec<(&Forest, &[usize])> = forests
        .iter()
        .zip(&owners)
        .map(|(f, (_, t))| (f, t.as_slice()))
        .collect();
    let forest = Forest::from_trees(&picks).map_err(|e| e.to_string())?;
    Ok(forest_model::encode(&forest))
}

#[tonic::async_trait]
impl Rounds for Coordinator {
    async fn join(&self, site: &str, request: JoinRequest) -> Result<JoinReply, Status> {
        check_join_key(&self.cfg.site_keys, site, &request)?;
        let proposal: Schema = serde_json::from_slice(&request.schema_json).map_err(|e| {
            Status::invalid_argument(format!("schema proposal does not parse as JSON: {e}"))
        })?;
        let mut st = self.lock().await;
        if let Some((agreed, _)) = &st.schema {
            crate::schema::fits(agreed, &proposal).map_err(|e| {
                Status::failed_precondition(format!(
                    "site '{site}' does not fit the federation schema: {e}"
                ))
            })?;
        }
        st.joined.insert(site.to_string(), proposal);
        self.metrics.sites_joined.set(st.joined.len() as i64);
        let current_round = st.round.as_ref().map_or(0, |r| r.id);
        drop(st);
        self.notify();
        Ok(JoinReply {
            protocol_version: PROTOCOL_VERSION,
            site_id: site.to_string(),
            current_round,
        })
    }

    async fn await_round(&self, _site: &str, after_round: u64) -> Result<RoundOpen, Status> {
        self.wait_for("no round open yet", |st| {
            let r = st.round.as_ref()?;
            if r.id <= after_round {
                return None;
            }
            Some(match &r.phase {
                Phase::Failed { reason } => Err(Status::aborted(reason.clone())),
                _ => Ok(self.round_open(r, &st.schema.as_ref()?.1)),
            })
        })
        .await
    }

    async fn upload_target(
        &self,
        site: &str,
        round_id: u64,
    ) -> Result<(RoundOpen, VerifyingKey), Status> {
        let key =
            *self.cfg.site_keys.get(site).ok_or_else(|| {
                Status::permission_denied(format!("site '{site}' is not registered"))
            })?;
        let st = self.lock().await;
        let r = st
            .round
            .as_ref()
            .ok_or_else(|| self.refuse_upload(Status::failed_precondition("no round is open")))?;
        if r.id != round_id {
            return Err(self.refuse_upload(Status::failed_precondition(format!(
                "upload for round {round_id} refused: round {} is the current round",
                r.id
            ))));
        }
        if let Some(u) = r.uploads.get(site) {
            return Err(self.refuse_upload(Status::already_exists(format!(
                "site '{site}' already uploaded a model for round {round_id} (sha256 {})",
                u.hash
            ))));
        }
        if r.phase != Phase::Uploading {
            return Err(self.refuse_upload(Status::failed_precondition(format!(
                "upload for round {round_id} refused: uploads are closed"
            ))));
        }
        let schema = &st.schema.as_ref().ok_or_else(|| internal("no schema"))?.1;
        Ok((self.round_open(r, schema), key))
    }

    async fn accept_upload(&self, upload: ReceivedModel) -> Result<UploadReply, Status> {
        let schema = self
            .lock()
            .await
            .schema
            .clone()
            .ok_or_else(|| internal("no schema"))?
            .0;
        let bytes = upload.model;
        let (forest, bytes) = tokio::task::spawn_blocking(move || {
            let decoded = forest_model::decode(&bytes);
            (decoded, bytes)
        })
        .await
        .map_err(internal)?;
        let forest = forest.map_err(|e| {
            self.refuse_upload(Status::invalid_argument(format!(
                "model refused: not a valid forest model file: {e}"
            )))
        })?;
        if forest.schema() != &schema {
            return Err(self.refuse_upload(Status::invalid_argument(
                "model refused: its schema is not the federation schema of this round",
            )));
        }
        let mut st = self.lock().await;
        let r = st.round.as_mut().ok_or_else(|| internal("no round"))?;
        if r.id != upload.round_id || r.phase != Phase::Uploading {
            return Err(self.refuse_upload(Status::failed_precondition(format!(
                "upload for round {} refused: uploads closed while it arrived",
                upload.round_id
            ))));
        }
        if r.uploads.contains_key(&upload.site_id) {
            return Err(self.refuse_upload(Status::already_exists(format!(
                "site '{}' already uploaded a model for round {}",
                upload.site_id, r.id
            ))));
        }
        r.uploads.insert(
            upload.site_id.clone(),
            UploadMeta {
                hash: hex(&upload.model_sha256),
                signature: hex(&upload.signature),
                n_bytes: bytes.len() as u64,
                n_trees: forest.trees().len() as u32,
            },
        );
        r.bytes_received += bytes.len() as u64;
        if let Err(e) = self.store.put_model(r, Some(&upload.site_id), &bytes).await {
            r.uploads.remove(&upload.site_id);
            r.bytes_received -= bytes.len() as u64;
            return Err(not_committed(e));
        }
        self.store
            .export_model(&hex(&upload.model_sha256), "fedids", &bytes);
        let reply = UploadReply {
            round_id: r.id,
            n_bytes: bytes.len() as u64,
            model_sha256: upload.model_sha256.to_vec(),
        };
        drop(st);
        info!(round = reply.round_id, site = %upload.site_id, bytes = reply.n_bytes, "upload accepted");
        self.metrics.uploads_accepted.inc();
        self.metrics.bytes_received.inc_by(bytes.len() as u64);
        self.notify();
        Ok(reply)
    }

    async fn await_candidates(&self, site: &str, round_id: u64) -> Result<Candidates, Status> {
        let scoring = Scoring::of(&self.cfg.strategy);
        let candidates = self
            .wait_for("uploads are still open", |st| {
                let r = st.round.as_ref().filter(|r| r.id == round_id);
                let Some(r) = r else {
                    return Some(Err(Status::failed_precondition(format!(
                        "round {round_id} is not the current round"
                    ))));
                };
                match &r.phase {
                    Phase::Uploading => None,
                    Phase::Failed { reason } => Some(Err(Status::aborted(reason.clone()))),
                    _ if !r.survivors.iter().any(|s| s == site) => {
                        Some(Err(Status::failed_precondition(format!(
                            "round {round_id}: the upload of site '{site}' was not in when uploads closed"
                        ))))
                    }
                    _ => Some(Ok(r.candidates_for(site, scoring))),
                }
            })
            .await?;
        let model = candidate_model(&self.store, round_id, site, &candidates).map_err(internal)?;
        Ok(Candidates {
            round_id,
            candidates: candidates
                .into_iter()
                .map(|(site_id, tree_idx)| TreeRef { site_id, tree_idx })
                .collect(),
            model,
        })
    }

    async fn submit_scores(&self, site: &str, report: ScoreReport) -> Result<ScoreAck, Status> {
        let scoring = Scoring::of(&self.cfg.strategy);
        let mut st = self.lock().await;
        let n_classes = st.schema.as_ref().map_or(0, |s| s.0.classes.len());
        let r = st
            .round
            .as_mut()
            .filter(|r| r.id == report.round_id)
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "scores for round {} refused: not the current round",
                    report.round_id
                ))
            })?;
        // A site whose scores were recorded hears so whatever the phase: a retry after a lost
        // acknowledgement (or a leader change) may arrive once scoring has already closed.
        if r.scores.contains_key(site) {
            return Err(Status::already_exists(format!(
                "site '{site}' already sent scores for round {}",
                r.id
            )));
        }
        if r.phase != Phase::Scoring {
            return Err(Status::failed_precondition(format!(
                "scores for round {} refused: the round is not scoring",
                r.id
            )));
        }
        if !r.survivors.iter().any(|s| s == site) {
            return Err(Status::failed_precondition(format!(
                "scores refused: site '{site}' has no upload in round {}",
                r.id
            )));
        }
        let candidates = r.candidates_for(site, scoring);
        if candidates.len() != report.scores.len() {
            return Err(Status::invalid_argument(format!(
                "{} scores for {} candidate trees",
                report.scores.len(),
                candidates.len()
            )));
        }
        let mut scores = Vec::with_capacity(candidates.len());
        for (i, ((owner, tree), s)) in candidates.iter().zip(&report.scores).enumerate() {
            let named = s.tree.as_ref();
            if named.map(|t| (t.site_id.as_str(), t.tree_idx)) != Some((owner.as_str(), *tree)) {
                return Err(Status::invalid_argument(format!(
                    "score {i} is not for candidate ({owner}, tree {tree})"
                )));
            }
            if !(0.0..=1.0).contains(&s.accuracy)
                || s.class_recall.len() != n_classes
                || s.class_support.len() != n_classes
                || s.class_recall
                    .iter()
                    .any(|v| !v.is_nan() && !(0.0..=1.0).contains(v))
            {
                return Err(Status::invalid_argument(format!(
                    "score {i}: accuracy and recalls must be in [0, 1], with {n_classes} classes"
                )));
            }
            scores.push(TreeScore {
                accuracy: s.accuracy,
                class_recall: s.class_recall.clone(),
                class_support: s.class_support.clone(),
            });
        }
        let support_json = String::from_utf8(report.support_json)
            .map_err(|_| Status::invalid_argument("category support is not UTF-8"))?;
        if self.cfg.strategy == MergeStrategy::Support {
            serde_json::from_str::<CategorySupport>(&support_json).map_err(|e| {
                Status::invalid_argument(format!("category support does not parse: {e}"))
            })?;
        }
        if !report.ledger_entry.is_empty() || self.ledger.is_some() {
            let upload = &r.uploads[site];
            check_contribution(
                &report.ledger_entry,
                site,
                r.id,
                upload,
                report.n_train_rows,
                &self.cfg.site_keys[site],
            )
            .map_err(|e| Status::invalid_argument(format!("contribution entry refused: {e}")))?;
        }
        let n = scores.len() as u32;
        r.scores.insert(
            site.to_string(),
            SiteScores {
                scores,
                n_train_rows: report.n_train_rows,
                support_json,
                ledger_entry: report.ledger_entry,
            },
        );
        if let Err(e) = self.persist(r, None).await {
            r.scores.remove(site);
            return Err(not_committed(e));
        }
        let round_id = r.id;
        drop(st);
        self.notify();
        Ok(ScoreAck {
            round_id,
            n_scores: n,
        })
    }

    async fn submit_evaluation(
        &self,
        site: &str,
        report: EvaluationReport,
    ) -> Result<EvaluationAck, Status> {
        let key =
            *self.cfg.site_keys.get(site).ok_or_else(|| {
                Status::permission_denied(format!("site '{site}' is not registered"))
            })?;
        let mut st = self.lock().await;
        let r = st
            .round
            .as_mut()
            .filter(|r| r.id == report.round_id && r.phase == Phase::Merged)
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "evaluation of round {} refused: not the current, merged round",
                    report.round_id
                ))
            })?;
        if r.evaluations.contains_key(site) {
            return Err(Status::already_exists(format!(
                "site '{site}' already evaluated round {}",
                r.id
            )));
        }
        let in_merge = r
            .global
            .as_ref()
            .is_some_and(|g| g.merged_sites.iter().any(|s| s == site));
        if !in_merge {
            return Err(Status::failed_precondition(format!(
                "site '{site}' is not among round {}'s merged sites",
                r.id
            )));
        }
        let entry = check_evaluation(&report.ledger_entry, site, r, &key)
            .map_err(|e| Status::invalid_argument(format!("evaluation refused: {e}")))?;
        if let Some(ledger) = &self.ledger {
            ledger.record(&entry).await.map_err(|e| {
                Status::unavailable(format!("the ledger did not record the evaluation: {e}"))
            })?;
        }
        r.evaluations.insert(site.to_string(), report.ledger_entry);
        if let Err(e) = self.persist(r, None).await {
            r.evaluations.remove(site);
            return Err(not_committed(e));
        }
        let round_id = r.id;
        drop(st);
        self.notify();
        Ok(EvaluationAck { round_id })
    }

    async fn fetch_global(&self, site: &str, round_id: u64) -> Result<SignedModel, Status> {
        let meta = self
            .wait_for("the global model is not merged yet", |st| {
                let r = st.round.as_ref()?;
                if r.id < round_id {
                    return None;
                }
                if r.id > round_id {
                    return Some(Err(Status::failed_precondition(format!(
                        "round {round_id} is over; round {} is current",
                        r.id
                    ))));
                }
                match &r.phase {
                    Phase::Failed { reason } => Some(Err(Status::aborted(reason.clone()))),
                    Phase::Merged => r.global.clone().map(|g| Ok((g, r.nonce.clone()))),
                    _ => None,
                }
            })
            .await?;
        let (global, _nonce) = meta;
        let model = self
            .store
            .model(round_id, None)
            .map_err(internal)?
            .ok_or_else(|| internal("global model missing from the store"))?;
        let hash = model_hash(&model);
        if hex(&hash) != global.hash {
            return Err(internal("stored global model does not match its hash"));
        }
        let signature = (0..global.signature.len() / 2)
            .map(|i| u8::from_str_radix(&global.signature[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(internal)?;
        self.metrics.bytes_sent.inc_by(model.len() as u64);
        self.lock().await.fetched.insert(site.to_string());
        self.notify();
        Ok(SignedModel {
            round_id,
            // A model merged by an earlier leader carries that leader's signature.
            signer: if global.signer.is_empty() {
                self.cfg.name.clone()
            } else {
                global.signer.clone()
            },
            model,
            model_sha256: hash,
            signature,
            sources: global.merged_sites.clone(),
        })
    }
}
