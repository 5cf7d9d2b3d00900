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

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use fedids_data::{load_path, load_path_with_schema, Dataset, FeatureMatrix, LoadOptions, Schema};
use fedids_federation::{category_support, decode_global, local_split, GlobalModel};
use fedids_forest::{model as forest_model, Forest, ForestParams, Metrics};
use fedids_net::client::{signed_chunks, SiteClient};
use fedids_net::proto::{RoundOpen, ScoreReport, TreeScore as WireScore};
use fedids_net::signing::hex;
use fedids_net::tls::client_channel;
use fedids_net::PROTOCOL_VERSION;
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

/// Everything a site needs to take part.
#[derive(Clone)]
pub struct SiteConfig {
    /// The site's name (its certificate CN).
    pub name: String,
    /// Coordinator URL, `https://HOST:PORT`.
    pub coordinator_url: String,
    /// The coordinator's certificate name.
    pub coordinator_name: String,
    /// Federation CA certificate, PEM.
    pub ca_pem: String,
    /// Site certificate, PEM.
    pub cert_pem: String,
    /// Site TLS key, PEM.
    pub key_pem: String,
    /// The site's model signing key.
    pub signing_key: SigningKey,
    /// The coordinator's verifying key (global model signatures).
    pub coordinator_key: VerifyingKey,
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
    /// `wait_global`, `fetch`.
    pub ms: std::collections::BTreeMap<String, u64>,
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

/// Calls `f` until it succeeds, fails for good, or `budget` runs out.
async fn retry<T, F, Fut>(what: &str, budget: Duration, mut f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let deadline = Instant::now() + budget;
    let mut pause = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(s) if retryable(&s) && Instant::now() < deadline => {
                debug!(what, code = ?s.code(), message = %s.message(), "retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(s) => return Err(s),
        }
    }
}

fn fail(what: &str, status: Status) -> String {
    let mut msg = format!("{what}: {} ({:?})", status.message(), status.code());
    if retryable(&status) {
        msg.push_str(": coordinator unreachable or still busy when the timeout ran out");
    } else if matches!(status.code(), Code::Unavailable | Code::Unknown) {
        msg.push_str(
            ": the TLS connection was refused (is the certificate issued by the federation CA and still valid?)",
        );
    }
    msg
}

/// Fails when the coordinator refuses this site's certificate (see [`fedids_net::tls::probe`]).
async fn check_tls(cfg: &SiteConfig) -> Result<(), String> {
    let addr = cfg
        .coordinator_url
        .split_once("://")
        .map_or(cfg.coordinator_url.as_str(), |(_, rest)| rest)
        .trim_end_matches('/');
    match fedids_net::tls::probe(
        addr,
        &cfg.coordinator_name,
        &cfg.ca_pem,
        &cfg.cert_pem,
        &cfg.key_pem,
    )
    .await
    {
        Ok(fedids_net::tls::Probe::Refused(why)) => Err(format!(
            "join refused: the TLS connection was refused ({why}); is the certificate issued by the federation CA and still valid?"
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
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
    let channel = client_channel(
        &cfg.coordinator_url,
        &cfg.coordinator_name,
        &cfg.ca_pem,
        &cfg.cert_pem,
        &cfg.key_pem,
    )
    .map_err(|e| e.to_string())?;
    let client = SiteClient::new(channel, &cfg.name);

    progress.step(&format!("reading {}", cfg.data.display()));
    let (data, opts) = (cfg.data.clone(), cfg.load.clone());
    let own = tokio::task::spawn_blocking(move || load(&data, &opts, None))
        .await
        .map_err(|e| e.to_string())??;
    let proposal = serde_json::to_vec(&own.schema).map_err(|e| e.to_string())?;
    drop(own);

    progress.step("joining the federation");
    check_tls(&cfg).await?;
    let joined = retry("join", cfg.timeout, || {
        let mut c = client.clone();
        let key = cfg.signing_key.clone();
        let proposal = proposal.clone();
        async move { c.join_with_schema(&key, proposal).await }
    })
    .await;
    let joined = match joined {
        Ok(j) => j,
        Err(s) => {
            // Say why when the coordinator refuses our certificate rather than being away.
            check_tls(&cfg).await?;
            return Err(fail("join refused", s));
        }
    };
    info!(site = %joined.site_id, current_round = joined.current_round, "joined");

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
    client: &SiteClient,
    detector: &mut Option<Detector>,
    after: u64,
    progress: &Arc<dyn Progress>,
) -> Result<SiteRoundReport, String> {
    let mut ms = std::collections::BTreeMap::new();
    let t = Instant::now();
    progress.step(&format!("waiting for round {}", after + 1));
    let round: RoundOpen = retry("await round", cfg.timeout, || {
        let mut c = client.clone();
        async move { c.await_round(after).await }
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
    let uploaded = retry("upload", cfg.timeout, || {
        let mut c = client.clone();
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
    let candidates = retry("await candidates", cfg.timeout, || {
        let mut c = client.clone();
        async move { c.await_candidates(round_id, cfg.max_model_bytes).await }
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
    let accuracy_ppm = if y_val.is_empty() {
        0
    } else {
        (correct as u64 * 1_000_000 / y_val.len() as u64) as u32
    };
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
    let sent = retry("submit scores", cfg.timeout, || {
        let mut c = client.clone();
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
    let signed = retry("fetch global", cfg.timeout, || {
        let mut c = client.clone();
        let round = round.clone();
        async move {
            c.fetch_global(&round, cfg.max_model_bytes, &cfg.coordinator_key)
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
