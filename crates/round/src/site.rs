//! A site's side of the network federation.
//!
//! [`run_site`] joins the federation with the schema the site learned from its own flows, then
//! for each round: encodes its flows with the federation schema, splits off local validation
//! rows, trains its forest, signs and uploads it, scores the candidate trees it is sent on its
//! validation rows (only the scores leave), downloads the global model, verifies the
//! coordinator's signature and the hash, and swaps it into its [`Detector`]. Rows never leave
//! the site.
//!
//! Calls that fail because the coordinator is unreachable or still waiting are retried until
//! [`SiteConfig::timeout`]; every other refusal ends the run with the coordinator's reason.
//!
//! A site may know several coordinator endpoints (the nodes of a ledger cluster, one of which
//! holds the coordinator role at a time). A call that finds its node unreachable or not holding
//! the role moves on to the next node, joins it, and tries again there: a round survives the
//! loss of the node that coordinated it.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use fedids_data::{load_path, load_path_with_schema, Dataset, FeatureMatrix, LoadOptions, Schema};
use fedids_federation::{category_support, decode_global, local_split, GlobalModel};
use fedids_forest::{model as forest_model, Forest, ForestParams, Metrics};
use fedids_net::client::{signed_chunks, SiteClient};
use fedids_net::proto::{EvaluationReport, RoundOpen, ScoreReport, TreeScore as WireScore};
use fedids_net::signing::hex;
use fedids_net::tls::client_channel;
use fedids_net::{NOT_COORDINATOR, PROTOCOL_VERSION, STILL_WAITING};
use serde::Serialize;
use tonic::{Code, Status};
use tracing::{debug, info, warn};

/// A fault a site injects on purpose (for tests of the coordinator's defences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Flip one byte of the model after signing it.
    TamperUpload,
    /// Exit the process right after the upload is accepted (a site that dies mid-round).
    ExitAfterUpload,
}

/// Where a coordinator may be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://HOST:PORT`.
    pub url: String,
    /// Its certificate name.
    pub name: String,
}

/// Everything a site needs to take part.
#[derive(Clone)]
pub struct SiteConfig {
    /// The site's name (its certificate CN).
    pub name: String,
    /// The coordinator, or the ledger nodes that may hold the coordinator role (tried in turn).
    pub coordinators: Vec<Endpoint>,
    /// Federation CA certificate, PEM.
    pub ca_pem: String,
    /// Site certificate, PEM.
    pub cert_pem: String,
    /// Site TLS key, PEM.
    pub key_pem: String,
    /// The site's model signing key.
    pub signing_key: SigningKey,
    /// Verifying keys of the coordinators whose global model signatures are accepted, by name.
    pub coordinator_keys: HashMap<String, VerifyingKey>,
    /// The site's own flows.
    pub data: PathBuf,
    /// How to read them.
    pub load: LoadOptions,
    /// Optional labelled test flows on which local and global models are compared (otherwise
    /// the local validation rows are used).
    pub test: Option<PathBuf>,
    /// Seed of the local split and forest.
    pub seed: u64,
    /// Rounds to take part in.
    pub rounds: u64,
    /// How long to keep retrying an unreachable or busy coordinator.
    pub timeout: Duration,
    /// Largest model accepted from the coordinator.
    pub max_model_bytes: u64,
    /// Where the current global model is written (`global.fedg`), if anywhere.
    pub state_dir: Option<PathBuf>,
    /// A fault to inject.
    pub fault: Option<Fault>,
}

/// The model a site scores traffic with, swapped atomically when a global model arrives.
#[derive(Clone)]
pub enum ActiveModel {
    /// The site's own forest.
    Local(Arc<Forest>),
    /// A verified global model.
    Global(Arc<GlobalModel>),
}

impl ActiveModel {
    /// Predicted classes.
    pub fn predict(&self, x: &FeatureMatrix) -> Result<Vec<u32>, String> {
        match self {
            ActiveModel::Local(f) => f.predict(x).map_err(|e| e.to_string()),
            ActiveModel::Global(g) => g.predict(x).map_err(|e| e.to_string()),
        }
    }
}

/// The site's detector: readers take the current model, a round swaps in the next one.
pub struct Detector {
    current: RwLock<ActiveModel>,
}

impl Detector {
    /// A detector starting with `model`.
    pub fn new(model: ActiveModel) -> Detector {
        Detector {
            current: RwLock::new(model),
        }
    }

    /// The model in use now.
    pub fn current(&self) -> ActiveModel {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the model; readers see either the old or the new one, never a mix.
    pub fn swap(&self, model: ActiveModel) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = model;
    }
}

/// Accuracy and macro-F1 of a model on the site's evaluation rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// Accuracy.
    pub accuracy: f64,
    /// Macro-averaged F1.
    pub macro_f1: f64,
}

/// What a site saw in one round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteRoundReport {
    /// The site.
    pub site: String,
    /// The round.
    pub round: u64,
    /// Merge strategy of the round.
    pub strategy: String,
    /// Local training rows.
    pub n_train_rows: usize,
    /// Local validation rows.
    pub n_validation_rows: usize,
    /// What local and global models were compared on (`validation` or the test file name).
    pub evaluated_on: String,
    /// Rows compared on.
    pub n_eval_rows: usize,
    /// The site's own forest.
    pub local: Score,
    /// The global model.
    pub global: Score,
    /// Trees in the global model.
    pub global_trees: usize,
    /// SHA-256 of the global model file (verified against the coordinator's signature).
    pub global_sha256: String,
    /// Size of the uploaded model file.
    pub model_bytes: usize,
    /// Size of the downloaded global model file.
    pub global_bytes: usize,
    /// Size of the candidate model file received for scoring (0 when only own trees are scored).
    pub candidate_bytes: usize,
    /// Milliseconds per step: `wait_round`, `train`, `upload`, `wait_candidates`, `scoring`,
    /// `wait_global`, `fetch`, `evaluate`.
    pub ms: std::collections::BTreeMap<String, u64>,
    /// The site's measurement of the global model on its validation rows, as it signed it
    /// (`None` without validation rows).
    pub evaluation: Option<fedids_ledger::Evaluation>,
    /// Whether the coordinator accepted the evaluation.
    pub evaluation_accepted: bool,
}

/// Accuracy in parts per million.
fn ppm(correct: usize, n: usize) -> u32 {
    if n == 0 {
        0
    } else {
        (correct as u64 * 1_000_000 / n as u64) as u32
    }
}

/// Accuracy (ppm) of a plain majority vote of the trees `keep` admits, from each tree's
/// predictions (`[tree][row]`); ties go to the lowest class, and no tree at all predicts class 0.
fn vote_accuracy_ppm(votes: &[Vec<u32>], keep: impl Fn(usize) -> bool, y: &[u32]) -> u32 {
    let n_classes = votes
        .iter()
        .flatten()
        .chain(y)
        .max()
        .map_or(1, |&c| c as usize + 1);
    let mut tally = vec![0u32; n_classes];
    let mut correct = 0;
    for (row, &truth) in y.iter().enumerate() {
        tally.iter_mut().for_each(|t| *t = 0);
        for (t, tree) in votes.iter().enumerate() {
            if keep(t) {
                tally[tree[row] as usize] += 1;
            }
        }
        let mut best = 0;
        for (c, &v) in tally.iter().enumerate() {
            if v > tally[best] {
                best = c;
            }
        }
        correct += usize::from(best as u32 == truth);
    }
    ppm(correct, y.len())
}

/// The site's evaluation of a global model on its validation rows: its own forest's accuracy,
/// the global model's, a majority vote of all its trees, and that vote without each source
/// site's trees (`sources` names the sites the model's tree sources number).
pub fn evaluate_global(
    round: u64,
    global_sha256: [u8; 32],
    global: &GlobalModel,
    local_pred: &[u32],
    sources: &[String],
    x: &FeatureMatrix,
    y: &[u32],
) -> Result<fedids_ledger::Evaluation, String> {
    let correct = |pred: &[u32]| pred.iter().zip(y).filter(|(p, t)| p == t).count();
    let global_pred = global.predict(x).map_err(|e| e.to_string())?;
    let votes = global
        .forest()
        .tree_predictions(x)
        .map_err(|e| e.to_string())?;
    let origin: Vec<u32> = global.sources().iter().map(|s| s.site.0).collect();
    let mut present: Vec<u32> = origin.clone();
    present.sort_unstable();
    present.dedup();
    let mut without = Vec::with_capacity(present.len());
    for id in present {
        let name = sources.get(id as usize).ok_or_else(|| {
            format!(
                "the global model names source {id}, but the coordinator named {} sites",
                sources.len()
            )
        })?;
        let acc = vote_accuracy_ppm(&votes, |t| origin.get(t) != Some(&id), y);
        without.push((name.clone(), acc));
    }
    without.sort();
    Ok(fedids_ledger::Evaluation {
        round,
        global_sha256,
        n_rows: y.len() as u64,
        local_accuracy_ppm: ppm(correct(local_pred), y.len()),
        global_accuracy_ppm: ppm(correct(&global_pred), y.len()),
        vote_accuracy_ppm: vote_accuracy_ppm(&votes, |_| true, y),
        without,
    })
}

/// What the site reports as it goes (progress bars live at the caller).
pub trait Progress: Send + Sync {
    /// A new step begins.
    fn step(&self, message: &str);
    /// Training starts, with this many trees.
    fn training(&self, n_trees: u64);
    /// One tree is trained.
    fn tree_done(&self);
}

/// A [`Progress`] that only logs.
pub struct LogProgress;

impl Progress for LogProgress {
    fn step(&self, message: &str) {
        info!("{message}");
    }
    fn training(&self, _n_trees: u64) {}
    fn tree_done(&self) {}
}

/// Whether a failed call is worth retrying: the coordinator is down, restarting or busy. TLS
/// refusals (an untrusted or expired certificate) are not.
fn retryable(status: &Status) -> bool {
    let detail = format!("{status:?}").to_lowercase();
    let tls = [
        "certificate",
        "handshake",
        "unknownca",
        "unknown ca",
        "badcertificate",
        "alert",
    ];
    if tls.iter().any(|w| detail.contains(w)) {
        return false;
    }
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

/// The coordinator endpoints a site knows, the one it talks to now, and whether it joined it.
struct Coordinators {
    clients: Vec<(Endpoint, SiteClient)>,
    /// Index of the endpoint in use, and whether this site joined it.
    at: Mutex<(usize, bool)>,
    signing_key: SigningKey,
    proposal: Vec<u8>,
}

impl Coordinators {
    fn new(cfg: &SiteConfig, proposal: Vec<u8>) -> Result<Coordinators, String> {
        if cfg.coordinators.is_empty() {
            return Err("no coordinator endpoint".to_string());
        }
        let mut clients = Vec::with_capacity(cfg.coordinators.len());
        for e in &cfg.coordinators {
            let channel = client_channel(&e.url, &e.name, &cfg.ca_pem, &cfg.cert_pem, &cfg.key_pem)
                .map_err(|err| format!("{}: {err}", e.url))?;
            clients.push((e.clone(), SiteClient::new(channel, &cfg.name)));
        }
        Ok(Coordinators {
            clients,
            at: Mutex::new((0, false)),
            signing_key: cfg.signing_key.clone(),
            proposal,
        })
    }

    fn at(&self) -> (usize, bool) {
        *self.at.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, value: (usize, bool)) {
        *self.at.lock().unwrap_or_else(|p| p.into_inner()) = value;
    }

    /// Calls `f` on the current endpoint (joining it first if needed) until it succeeds, fails
    /// for good, or `budget` runs out. An endpoint that is unreachable or does not hold the
    /// coordinator role is left for the next one.
    async fn call<T, F, Fut>(&self, what: &str, budget: Duration, mut f: F) -> Result<T, Status>
    where
        F: FnMut(SiteClient) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + budget;
        let mut pause = Duration::from_millis(100);
        loop {
            let (i, joined) = self.at();
            let (endpoint, client) = &self.clients[i];
            let outcome = if joined {
                f(client.clone()).await
            } else {
                match client
                    .clone()
                    .join_with_schema(&self.signing_key, self.proposal.clone())
                    .await
                {
                    Ok(j) => {
                        info!(coordinator = %endpoint.url, current_round = j.current_round, "joined");
                        self.set((i, true));
                        f(client.clone()).await
                    }
                    Err(s) => Err(s),
                }
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(s) if retryable(&s) && Instant::now() < deadline => {
                    let waiting = s.message().starts_with(STILL_WAITING);
                    if !waiting && self.clients.len() > 1 {
                        let next = (i + 1) % self.clients.len();
                        info!(
                            what,
                            from = %endpoint.url,
                            to = %self.clients[next].0.url,
                            reason = %s.message(),
                            "trying the next coordinator node"
                        );
                        self.set((next, false));
                    } else {
                        debug!(what, code = ?s.code(), message = %s.message(), "retrying");
                    }
                    if waiting {
                        pause = Duration::from_millis(100);
                        continue;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(s) => return Err(s),
            }
        }
    }
}

fn fail(what: &str, status: Status) -> String {
    let mut msg = format!("{what}: {} ({:?})", status.message(), status.code());
    if status.message().starts_with(NOT_COORDINATOR) {
        msg.push_str(": no node took the coordinator role before the timeout ran out");
    } else if retryable(&status) {
        msg.push_str(": coordinator unreachable or still busy when the timeout ran out");
    } else if matches!(status.code(), Code::Unavailable | Code::Unknown) {
        msg.push_str(
            ": the TLS connection was refused (is the certificate issued by the federation CA and still valid?)",
        );
    }
    msg
}

/// Fails when a coordinator refuses this site's certificate (see [`fedids_net::tls::probe`]).
async fn check_tls(cfg: &SiteConfig) -> Result<(), String> {
    for e in &cfg.coordinators {
        let addr = e
            .url
            .split_once("://")
            .map_or(e.url.as_str(), |(_, rest)| rest)
            .trim_end_matches('/');
        match fedids_net::tls::probe(addr, &e.name, &cfg.ca_pem, &cfg.cert_pem, &cfg.key_pem)
            .await
        {
            Ok(fedids_net::tls::Probe::Refused(why)) => {
                return Err(format!(
                    "join refused by {}: the TLS connection was refused ({why}); is the certificate issued by the federation CA and still valid?",
                    e.url
                ))
            }
            Ok(_) => {}
            Err(err) => return Err(format!("{}: {err}", e.url)),
        }
    }
    Ok(())
}

fn load(path: &Path, opts: &LoadOptions, schema: Option<&Schema>) -> Result<Dataset, String> {
    match schema {
        Some(s) => load_path_with_schema(path, s, opts),
        None => load_path(path, opts),
    }
    .map_err(|e| e.to_string())
}

fn score(model: &ActiveModel, ds: &Dataset, rows: Option<&[usize]>) -> Result<Score, String> {
    let (x, y) = match rows {
        Some(r) => (ds.x.select_rows(r), r.iter().map(|&i| ds.y[i]).collect()),
        None => (ds.x.clone(), ds.y.clone()),
    };
    let pred = model.predict(&x)?;
    let m = Metrics::compute(&ds.schema.classes, &y, &pred);
    Ok(Score {
        accuracy: m.accuracy,
        macro_f1: m.macro_f1,
    })
}

/// Runs the site: join, then every round. Returns one report per round.
pub async fn run_site(
    cfg: SiteConfig,
    progress: Arc<dyn Progress>,
) -> Result<Vec<SiteRoundReport>, String> {
    progress.step(&format!("reading {}", cfg.data.display()));
    let (data, opts) = (cfg.data.clone(), cfg.load.clone());
    let own = tokio::task::spawn_blocking(move || load(&data, &opts, None))
        .await
        .map_err(|e| e.to_string())??;
    let proposal = serde_json::to_vec(&own.schema).map_err(|e| e.to_string())?;
    drop(own);

    progress.step("joining the federation");
    check_tls(&cfg).await?;
    let client = Coordinators::new(&cfg, proposal)?;
    // The first call joins the coordinator.
    if let Err(s) = client.call("join", cfg.timeout, |_| async { Ok(()) }).await {
        // Say why when a coordinator refuses our certificate rather than being away.
        check_tls(&cfg).await?;
        return Err(fail("join refused", s));
    }

    let mut detector = None;
    let mut reports = Vec::new();
    let mut after = 0;
    for _ in 0..cfg.rounds {
        let report = run_round(&cfg, &client, &mut detector, after, &progress).await?;
        after = report.round;
        reports.push(report);
    }
    Ok(reports)
}

fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// One round, from waiting for it to swapping in its global model.
async fn run_round(
    cfg: &SiteConfig,
    client: &Coordinators,
    detector: &mut Option<Detector>,
    after: u64,
    progress: &Arc<dyn Progress>,
) -> Result<SiteRoundReport, String> {
    let mut ms = std::collections::BTreeMap::new();
    let t = Instant::now();
    progress.step(&format!("waiting for round {}", after + 1));
    let round: RoundOpen = client
        .call("await round", cfg.timeout, |mut c| async move {
            c.await_round(after).await
        })
        .await
        .map_err(|s| fail("waiting for a round", s))?;
    ms.insert("wait_round".to_string(), ms_since(t));
    let round_id = round.round_id;
    let schema: Schema = serde_json::from_slice(&round.schema_json)
        .map_err(|e| format!("round {round_id}: the federation schema does not parse: {e}"))?;
    info!(round = round_id, strategy = %round.strategy, trees = round.trees_per_site, "round opened");

    // Encode the site's flows with the federation schema, split, train.
    let t = Instant::now();
    progress.step(&format!(
        "round {round_id}: encoding flows with the federation schema"
    ));
    let (data, opts, sch) = (cfg.data.clone(), cfg.load.clone(), schema.clone());
    let ds = tokio::task::spawn_blocking(move || load(&data, &opts, Some(&sch)))
        .await
        .map_err(|e| e.to_string())??;
    let all: Vec<usize> = (0..ds.y.len()).collect();
    let split =
        local_split(&ds.y, &all, round.validation_fraction, cfg.seed).map_err(|e| e.to_string())?;
    if split.train.is_empty() {
        return Err(format!("{}: no training rows", cfg.data.display()));
    }
    let params = ForestParams {
        n_trees: round.trees_per_site as usize,
        seed: fedids_rng::derive_seed(cfg.seed, 11, round_id),
        ..ForestParams::default()
    };
    progress.step(&format!(
        "round {round_id}: training {} trees on {} rows ({} kept for validation)",
        params.n_trees,
        split.train.len(),
        split.validation.len()
    ));
    progress.training(params.n_trees as u64);
    let x_train = ds.x.select_rows(&split.train);
    let y_train: Vec<u32> = split.train.iter().map(|&i| ds.y[i]).collect();
    // Training is CPU-bound: it runs on the blocking pool, whatever the runtime's flavour.
    let (forest, x_train) = {
        let (schema, params, progress) = (schema.clone(), params.clone(), progress.clone());
        tokio::task::spawn_blocking(move || {
            let forest = Forest::fit(&x_train, &y_train, schema, &params, &|| {
                progress.tree_done()
            });
            forest.map(|f| (f, x_train))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    };
    ms.insert("train".to_string(), ms_since(t));
    let support = category_support(&schema, &x_train).map_err(|e| e.to_string())?;
    drop(x_train);
    let forest = Arc::new(forest);
    if detector.is_none() {
        *detector = Some(Detector::new(ActiveModel::Local(forest.clone())));
    }

    // Upload, signed.
    let t = Instant::now();
    let model = forest_model::encode(&forest);
    let hash = hex(&fedids_net::signing::model_hash(&model));
    progress.step(&format!(
        "round {round_id}: uploading {} bytes (sha256 {})",
        model.len(),
        &hash[..16]
    ));
    let mut chunks = signed_chunks(&round, &cfg.name, &model, &cfg.signing_key);
    if cfg.fault == Some(Fault::TamperUpload) {
        warn!("fault injection: flipping a byte of the signed model");
        if let Some(byte) = chunks.first_mut().and_then(|c| c.data.get_mut(20)) {
            *byte ^= 0x01;
        }
    }
    let uploaded = client
        .call("upload", cfg.timeout, |mut c| {
            let chunks = chunks.clone();
            async move { c.upload_chunks(chunks).await }
        })
        .await;
    match uploaded {
        Ok(_) => {}
        // An upload the coordinator committed before it went down: the retry finds it there.
        Err(s) if s.code() == Code::AlreadyExists && s.message().contains(&hash) => {
            info!(round = round_id, "upload was already committed");
        }
        Err(s) => return Err(fail(&format!("round {round_id}: upload refused"), s)),
    }
    ms.insert("upload".to_string(), ms_since(t));
    if cfg.fault == Some(Fault::ExitAfterUpload) {
        warn!("fault injection: exiting after the upload");
        std::process::exit(3);
    }

    // Score the candidates on the validation rows.
    let t = Instant::now();
    progress.step(&format!(
        "round {round_id}: waiting for the other sites' uploads"
    ));
    let candidates = client
        .call("await candidates", cfg.timeout, |mut c| async move {
            c.await_candidates(round_id, cfg.max_model_bytes).await
        })
        .await
        .map_err(|s| fail(&format!("round {round_id}: candidates"), s))?;
    ms.insert("wait_candidates".to_string(), ms_since(t));
    let t = Instant::now();
    progress.step(&format!(
        "round {round_id}: scoring {} candidate trees on {} validation rows",
        candidates.candidates.len(),
        split.validation.len()
    ));
    let x_val = ds.x.select_rows(&split.validation);
    let y_val: Vec<u32> = split.validation.iter().map(|&i| ds.y[i]).collect();
    let own_scores = forest
        .score_trees(&x_val, &y_val)
        .map_err(|e| e.to_string())?;
    let others = if candidates.model.is_empty() {
        Vec::new()
    } else {
        let other = forest_model::decode(&candidates.model)
            .map_err(|e| format!("round {round_id}: candidate trees refused: {e}"))?;
        if other.schema() != &schema {
            return Err(format!(
                "round {round_id}: candidate trees refused: another schema"
            ));
        }
        other
            .score_trees(&x_val, &y_val)
            .map_err(|e| e.to_string())?
    };
    let candidate_bytes = candidates.model.len();
    let mut other_iter = others.into_iter();
    let mut scores = Vec::with_capacity(candidates.candidates.len());
    for c in &candidates.candidates {
        let s = if c.site_id == cfg.name {
            own_scores
                .get(c.tree_idx as usize)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "round {round_id}: candidate tree {} is not in this site's forest",
                        c.tree_idx
                    )
                })?
        } else {
            other_iter.next().ok_or_else(|| {
                format!("round {round_id}: the candidate model holds fewer trees than named")
            })?
        };
        scores.push(WireScore {
            tree: Some(c.clone()),
            accuracy: s.accuracy,
            class_recall: s.class_recall,
            class_support: s.class_support,
        });
    }
    // The site's own record of what it contributed, signed with its key: the coordinator puts
    // it on the ledger as it is, so the site cannot later deny the model, nor anyone forge it.
    let own_pred = forest.predict(&x_val).map_err(|e| e.to_string())?;
    let correct = own_pred.iter().zip(&y_val).filter(|(p, y)| p == y).count();
    let accuracy_ppm = ppm(correct, y_val.len());
    let contribution = fedids_ledger::Ledger::unsigned(
        &cfg.name,
        crate::coordinator::now_ms(),
        fedids_ledger::Body::ModelContribution(fedids_ledger::Contribution {
            round: round_id,
            model_sha256: fedids_net::signing::model_hash(&model),
            n_trees: forest.trees().len() as u32,
            n_train_rows: split.train.len() as u64,
            validation_accuracy_ppm: accuracy_ppm,
        }),
    )
    .sign(&cfg.signing_key);
    let report = ScoreReport {
        protocol_version: PROTOCOL_VERSION,
        round_id,
        site_id: cfg.name.clone(),
        scores,
        n_train_rows: split.train.len() as u64,
        support_json: serde_json::to_vec(&support).map_err(|e| e.to_string())?,
        ledger_entry: contribution.encode(),
    };
    let sent = client
        .call("submit scores", cfg.timeout, |mut c| {
            let report = report.clone();
            async move { c.submit_scores(report).await }
        })
        .await;
    match sent {
        Ok(_) => {}
        Err(s) if s.code() == Code::AlreadyExists => {}
        Err(s) => return Err(fail(&format!("round {round_id}: scores refused"), s)),
    }
    ms.insert("scoring".to_string(), ms_since(t));

    // Fetch, verify and swap in the global model.
    let t = Instant::now();
    progress.step(&format!("round {round_id}: waiting for the global model"));
    let signed = client
        .call("fetch global", cfg.timeout, |mut c| {
            let round = round.clone();
            async move {
                c.fetch_global(&round, cfg.max_model_bytes, &cfg.coordinator_keys)
                    .await
            }
        })
        .await
        .map_err(|s| fail(&format!("round {round_id}: global model"), s))?;
    ms.insert("wait_global".to_string(), ms_since(t));
    let t = Instant::now();
    let global = decode_global(&signed.model)
        .map_err(|e| format!("round {round_id}: global model refused: {e}"))?;
    if global.forest().schema() != &schema {
        return Err(format!(
            "round {round_id}: global model refused: not the federation schema"
        ));
    }
    let global_sha256 = hex(&signed.model_sha256);
    if let Some(dir) = &cfg.state_dir {
        write_atomically(&dir.join("global.fedg"), &signed.model)?;
    }
    ms.insert("fetch".to_string(), ms_since(t));

    // Measure the global model on the validation rows and send the signed numbers.
    let t = Instant::now();
    let (evaluation, evaluation_accepted) = if y_val.is_empty() {
        (None, false)
    } else {
        let e = evaluate_global(
            round_id,
            signed.model_sha256,
            &global,
            &own_pred,
            &signed.sources,
            &x_val,
            &y_val,
        )
        .map_err(|e| format!("round {round_id}: evaluating the global model: {e}"))?;
        let entry = fedids_ledger::Ledger::unsigned(
            &cfg.name,
            crate::coordinator::now_ms(),
            fedids_ledger::Body::Evaluation(e.clone()),
        )
        .sign(&cfg.signing_key);
        let report = EvaluationReport {
            protocol_version: PROTOCOL_VERSION,
            round_id,
            site_id: cfg.name.clone(),
            ledger_entry: entry.encode(),
        };
        let sent = client
            .call("submit evaluation", cfg.timeout, |mut c| {
                let report = report.clone();
                async move { c.submit_evaluation(report).await }
            })
            .await;
        let accepted = match sent {
            Ok(_) => true,
            Err(s) if s.code() == Code::AlreadyExists => true,
            // The global model is in hand: a refused evaluation costs the record, not the round.
            Err(s) => {
                warn!(round = round_id, reason = %s.message(), "evaluation not accepted");
                false
            }
        };
        (Some(e), accepted)
    };
    ms.insert("evaluate".to_string(), ms_since(t));

    // Compare the local forest and the global model on the same rows, through the detector.
    let local_model = ActiveModel::Local(forest.clone());
    let global_model = ActiveModel::Global(Arc::new(global));
    let (eval_ds, rows, evaluated_on) = match &cfg.test {
        Some(path) => {
            let (p, o, s) = (path.clone(), cfg.load.clone(), schema.clone());
            let test = tokio::task::spawn_blocking(move || load(&p, &o, Some(&s)))
                .await
                .map_err(|e| e.to_string())??;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            (test, None, name)
        }
        None => (ds, Some(split.validation.clone()), "validation".to_string()),
    };
    let local = score(&local_model, &eval_ds, rows.as_deref())?;
    let det = detector.get_or_insert_with(|| Detector::new(local_model.clone()));
    det.swap(global_model);
    let global_score = score(&det.current(), &eval_ds, rows.as_deref())?;
    let global_trees = match det.current() {
        ActiveModel::Global(g) => g.n_trees(),
        ActiveModel::Local(f) => f.trees().len(),
    };
    info!(
        round = round_id,
        local = local.accuracy,
        global = global_score.accuracy,
        hash = %global_sha256,
        "global model verified and swapped in"
    );
    Ok(SiteRoundReport {
        site: cfg.name.clone(),
        round: round_id,
        strategy: round.strategy.clone(),
        n_train_rows: split.train.len(),
        n_validation_rows: split.validation.len(),
        n_eval_rows: rows.as_ref().map_or(eval_ds.y.len(), Vec::len),
        evaluated_on,
        local,
        global: global_score,
        global_trees,
        global_sha256,
        model_bytes: model.len(),
        global_bytes: signed.model.len(),
        candidate_bytes,
        ms,
        evaluation,
        evaluation_accepted,
    })
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over `path`: readers see
/// the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_vote_accuracy_counts_kept_trees_and_breaks_ties_low() {
        // Three trees, four rows.
        let votes = vec![vec![0, 1, 1, 2], vec![0, 1, 0, 2], vec![1, 0, 0, 1]];
        let y = [0, 1, 0, 2];
        assert_eq!(vote_accuracy_ppm(&votes, |_| true, &y), 1_000_000);
        // Trees 0 and 2 only: row 0 ties 0/1 -> 0 (right), row 1 ties 1/0 -> 0 (wrong),
        // row 2 ties 1/0 -> 0 (right), row 3 ties 2/1 -> 1 (wrong).
        assert_eq!(vote_accuracy_ppm(&votes, |t| t != 1, &y), 500_000);
        // No tree: class 0 everywhere.
        assert_eq!(vote_accuracy_ppm(&votes, |_| false, &y), 500_000);
        assert_eq!(vote_accuracy_ppm(&votes, |_| true, &[]), 0);
    }
}
