//! Command-line arguments (clap derive). Parsing only: no behaviour lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fedids_data::Task;
use fedids_forest::{Criterion, MaxFeatures, Sampling};

/// Federated network intrusion detection: train, evaluate and run Random Forest detectors on
/// network-flow records.
#[derive(Debug, Parser)]
#[command(name = "fedids", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Worker threads for training and prediction (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    /// No progress bars and no informational logs (errors are still printed).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a Random Forest on a flow file and write a model file.
    Train(TrainArgs),
    /// Evaluate a model on a labelled flow file.
    Eval(EvalArgs),
    /// Score flows from a file or stdin, streaming one prediction per row.
    Predict(PredictArgs),
    /// Score flows as they arrive and write Suricata-style EVE alerts, grouped into incidents.
    Detect(DetectArgs),
    /// Threat intelligence: export incidents as STIX 2.1 or MISP.
    Intel {
        #[command(subcommand)]
        command: IntelCommand,
    },
    /// A TAXII 2.1 server for sharing STIX bundles.
    Taxii {
        #[command(subcommand)]
        command: TaxiiCommand,
    },
    /// Turn incidents into nftables and Suricata drop rules (dry run unless --apply).
    Respond(RespondArgs),
    /// Work with model files.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// The embedded default job: a federation of 3 site processes and a coordinator on
    /// 127.0.0.1 over the bundled NSL-KDD sample, evaluated on KDDTest+ (`--local`: one forest).
    Demo(DemoArgs),
    /// Simulate a federation in one process: partition a dataset over sites, train local
    /// forests, merge them with each strategy, and compare with the baselines.
    Simulate(SimulateArgs),
    /// Run a predefined experiment and write its report folder.
    Experiment(ExperimentArgs),
    /// Run a federation coordinator: open rounds, receive signed site models over mutual TLS,
    /// merge them, and serve the signed global model. Rounds survive a restart.
    Coordinator(CoordinatorArgs),
    /// Take part in a federation as a site: train on local flows, upload the signed forest,
    /// score candidate trees, then fetch, verify and swap in the global model.
    Site(SiteArgs),
    /// Run a member of the ledger cluster: a Raft-replicated, signed, hash-chained ledger.
    Node(NodeArgs),
    /// Work with the ledger: write the genesis, publish, export, verify, compare nodes.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Federation PKI: create the CA and issue site certificates and signing keys.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a federation CA (ca.pem, ca.key) in DIR.
    Init {
        /// PKI directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Common name of the CA.
        #[arg(long, default_value = "federation")]
        name: String,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue a TLS certificate and an Ed25519 model signing key for SITE, signed by DIR's CA.
    Issue {
        /// Site name (a-z, 0-9 and '-'); becomes the certificate's CN and DNS name.
        site: String,
        /// PKI directory holding the CA.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Training flow file, dealt to the sites.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Common test file (default: a seeded, stratified 20% of --data, held out before partitioning).
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    #[command(flatten)]
    pub input: InputArgs,
    /// What to predict.
    #[arg(long, value_enum, default_value = "binary")]
    pub task: TaskName,
    /// How rows are dealt to sites: iid, dirichlet:ALPHA, by-class:K or by-feature:COLUMN.
    #[arg(long, default_value = "iid")]
    pub partition: String,
    /// Number of sites (ignored by by-feature).
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    /// Merge strategies, comma-separated (e.g. top-global:129:wa:wv,cross-site:129,all).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "all,top-global:100:a:sv,cross-site:100"
    )]
    pub strategy: Vec<String>,
    /// Seeds: a comma-separated list (0,1,2) or a count (5 means 0..5).
    #[arg(long, default_value = "3")]
    pub seeds: String,
    /// Trees of each site's local forest.
    #[arg(long, default_value_t = 50)]
    pub trees_per_site: usize,
    /// Trees of the centralized baseline.
    #[arg(long, default_value_t = 100)]
    pub central_trees: usize,
    /// Share of each site's rows kept for local validation.
    #[arg(long, default_value_t = 0.125)]
    pub validation_fraction: f64,
    /// Sites with fewer rows are dropped (and reported).
    #[arg(long, default_value_t = 10)]
    pub min_site_rows: usize,
    /// Report folder (default: reports/simulate-<dataset>-<task>-<partition>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExperimentName {
    /// The published protocol (Markovic et al.): NSL-KDD, UNSW-NB15 and KDD99, sites by a
    /// feature, both tasks, every strategy, 5 repetitions.
    Paper,
    /// The official NSL-KDD test sets with iid, dirichlet:0.5 and by-class:2 partitions over 3, 5
    /// and 10 sites.
    Standard,
}

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Which experiment.
    #[arg(value_enum)]
    pub name: ExperimentName,
    /// Folder holding nsl-kdd/, unsw-nb15/ and kdd99/ (default: ../shared/datasets).
    #[arg(long, value_name = "DIR", default_value = "../shared/datasets")]
    pub datasets: PathBuf,
    /// Repetitions (seeds 0..N).
    #[arg(long)]
    pub reps: Option<usize>,
    /// Report folder (default: reports/<experiment>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Show what a model file holds: schema, classes, trees, training parameters, hash.
    Inspect {
        /// The model file.
        model: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Input format names accepted by `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatName {
    NslKdd,
    Kdd99,
    UnswNb15,
    Csv,
    /// Zeek conn.log (TSV with its #fields header).
    ZeekConn,
    /// CICFlowMeter CSV (CIC-IDS-2017 columns), the built-in schema.
    Cicflowmeter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskName {
    /// Benign vs attack.
    Binary,
    /// Attack category (NSL-KDD/KDD99: normal, DoS, Probe, R2L, U2R; UNSW-NB15: attack_cat).
    Multiclass,
    /// Attack name (NSL-KDD/KDD99 attack names; UNSW-NB15: attack_cat).
    AttackName,
}

impl From<TaskName> for Task {
    fn from(t: TaskName) -> Task {
        match t {
            TaskName::Binary => Task::Binary,
            TaskName::Multiclass => Task::Multiclass,
            TaskName::AttackName => Task::AttackName,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnmappedLabel {
    /// Stop at the first label the task does not know.
    Error,
    /// Skip such rows, count them and report the count.
    Skip,
}

/// How to read a flow file.
#[derive(Debug, Args, Clone)]
pub struct InputArgs {
    /// Input format (default: detected from the header and column count).
    #[arg(long, value_enum)]
    pub format: Option<FormatName>,
    /// TOML schema for `--format csv` (label column, benign values, categorical and ignored
    /// columns).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Skip malformed rows instead of stopping at the first one; skipped rows are counted and
    /// reported.
    #[arg(long)]
    pub skip_invalid: bool,
    /// What to do with a label the task's mapping does not know.
    #[arg(long, value_enum, default_value = "error")]
    pub unmapped_label: UnmappedLabel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitName {
    /// Histograms over at most 256 bins per feature, filled by rows and distinct values (fast).
    Hist,
    /// Sorted exact thresholds at every node (slow; for comparison).
    Exact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassWeightName {
    None,
    Balanced,
}

/// Forest hyper-parameters.
#[derive(Debug, Args, Clone)]
pub struct ForestArgs {
    /// Number of trees.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Split quality measure: gini or entropy.
    #[arg(long, default_value = "gini")]
    pub criterion: Criterion,
    /// Maximum tree depth (default: unlimited).
    #[arg(long)]
    pub max_depth: Option<u32>,
    /// Minimum rows a node needs to be split.
    #[arg(long, default_value_t = 2)]
    pub min_samples_split: u32,
    /// Minimum rows in each leaf.
    #[arg(long, default_value_t = 1)]
    pub min_samples_leaf: u32,
    /// Features considered per split: sqrt, log2, all, a fraction (0.3) or a count (6).
    #[arg(long, default_value = "sqrt")]
    pub max_features: MaxFeatures,
    /// Rows per tree: bootstrap, all, or fraction:F (drawn without replacement).
    #[arg(long, default_value = "bootstrap")]
    pub sample: Sampling,
    /// Class weights: none, or balanced (inverse class frequency).
    #[arg(long, value_enum, default_value = "none")]
    pub class_weight: ClassWeightName,
    /// Split search: hist (binned) or exact.
    #[arg(long, value_enum, default_value = "hist")]
    pub split: SplitName,
    /// Bins per feature for the histogram search (2 to 256).
    #[arg(long, default_value_t = 256)]
    pub max_bins: u16,
    /// Random seed: the same seed, data and parameters give the same model, bit for bit.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training flow file (CSV; `.gz` is decompressed).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// What to predict.
    #[arg(long, value_enum, default_value = "binary")]
    pub task: TaskName,
    #[command(flatten)]
    pub forest: ForestArgs,
    /// Where to write the model.
    #[arg(long, short, value_name = "FILE", default_value = "model.fedids")]
    pub out: PathBuf,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The model file.
    #[arg(long, short, value_name = "FILE")]
    pub model: PathBuf,
    /// Labelled flow file in the model's input format.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Skip malformed rows (counted and reported).
    #[arg(long)]
    pub skip_invalid: bool,
    /// What to do with a label the model's classes do not include.
    #[arg(long, value_enum, default_value = "error")]
    pub unmapped_label: UnmappedLabel,
    /// Predict the data this many times and report the median time (for benchmarks on noisy
    /// machines); every run must give the same predictions.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub timing_runs: u32,
    /// Before the timed runs, predict untimed until this many seconds have passed (at least
    /// once), so that the CPU's clock and caches settle first. At most 600.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0, value_parser = warmup_seconds)]
    pub timing_warmup: f64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PredictFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header.
    Csv,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The model file.
    #[arg(long, short, value_name = "FILE")]
    pub model: PathBuf,
    /// Flow file in the model's input format, or `-` for stdin.
    #[arg(long, short, value_name = "FILE")]
    pub input: PathBuf,
    /// Where to write predictions (default: stdout).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub output_format: PredictFormat,
    /// Include every class probability.
    #[arg(long)]
    pub proba: bool,
    /// Rows per batch (bounds memory).
    #[arg(long, default_value_t = 8192)]
    pub batch_rows: usize,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run the single-process demo (one forest on the whole sample) instead of the federation.
    #[arg(long)]
    pub local: bool,
    /// Number of trees (per site in the federated demo).
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Merge strategy of the federated demo (default: top-per-site:TREES/3:wa:wv, the best third
    /// of every site's trees, ranked by weighted accuracy on the site's own validation rows).
    #[arg(long)]
    pub strategy: Option<String>,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The model file.
    #[arg(long, short, value_name = "FILE")]
    pub model: PathBuf,
    /// Flow file in a format the model reads (Zeek conn.log, CICFlowMeter CSV, the dataset
    /// formats), or `-` for stdin.
    #[arg(long, short, value_name = "FILE")]
    pub input: PathBuf,
    /// Keep reading as the file grows (stops on Ctrl-C, or when the file is removed or
    /// truncated).
    #[arg(long)]
    pub follow: bool,
    /// Raise an alert only when the predicted attack class has at least this probability.
    #[arg(long, default_value_t = 0.5, value_name = "P")]
    pub min_probability: f32,
    /// Where to write the EVE alerts, as JSON lines (default: stdout).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Where to write the incidents, as JSON lines (default: appended to the alert stream as
    /// `fedids_incident` events).
    #[arg(long, value_name = "FILE")]
    pub incidents: Option<PathBuf>,
    /// Alerts of one (source, target, class) further apart than this start a new incident.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub window: u64,
    /// Rows per batch (bounds memory; in --follow mode a batch is also handed out when the
    /// file has nothing new).
    #[arg(long, default_value_t = 8192)]
    pub batch_rows: usize,
}

#[derive(Debug, Subcommand)]
pub enum IntelCommand {
    /// Export incidents (from `fedids detect`) as a STIX 2.1 bundle or a MISP event.
    Export(IntelExportArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IntelFormat {
    Stix,
    Misp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlpName {
    White,
    Clear,
    Green,
    Amber,
    Red,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DistributionName {
    /// 0: your organisation only.
    Organisation,
    /// 1: this community only.
    Community,
    /// 2: connected communities.
    Connected,
    /// 3: all communities.
    All,
}

#[derive(Debug, Args)]
pub struct IntelExportArgs {
    /// Incidents file written by `fedids detect` (`--incidents`, or its alert stream).
    #[arg(long, value_name = "FILE")]
    pub incidents: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: IntelFormat,
    /// Traffic Light Protocol marking.
    #[arg(long, value_enum, default_value = "amber")]
    pub tlp: TlpName,
    /// The site's name (the STIX identity, the MISP organisation).
    #[arg(long, default_value = "fedids site")]
    pub site: String,
    /// MISP distribution level.
    #[arg(long, value_enum, default_value = "community")]
    pub distribution: DistributionName,
    /// Indicators stay valid this long after an incident's last alert.
    #[arg(long, default_value_t = 7 * 86_400, value_name = "SECS")]
    pub valid_for: u64,
    /// Where to write (default: stdout).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TaxiiCommand {
    /// Serve a TAXII 2.1 API root with one collection, stored in a directory.
    Serve(TaxiiServeArgs),
}

#[derive(Debug, Args)]
pub struct TaxiiServeArgs {
    /// Address to listen on (port 0 picks a free port, printed on stderr).
    #[arg(long, default_value = "127.0.0.1:9500")]
    pub listen: String,
    /// Directory that stores the objects and statuses.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// The user name clients authenticate with.
    #[arg(long)]
    pub user: String,
    /// The password clients authenticate with. Prefer the environment variable: a command-line
    /// argument is visible to every user of the machine.
    #[arg(long, env = "FEDIDS_TAXII_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// The server's title in discovery.
    #[arg(long, default_value = "fedids TAXII server")]
    pub title: String,
    /// Record every publication (the bundle's hash) on the ledger at these node URLs,
    /// comma-separated; needs --ledger-pki and --ledger-name.
    #[arg(long, value_delimiter = ',', requires_all = ["ledger_pki", "ledger_name"])]
    pub ledger_node: Vec<String>,
    /// PKI directory of the identity that signs ledger entries.
    #[arg(long, value_name = "DIR")]
    pub ledger_pki: Option<PathBuf>,
    /// The identity (a site registered on the ledger) that signs ledger entries.
    #[arg(long)]
    pub ledger_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct RespondArgs {
    /// Incidents file written by `fedids detect`.
    #[arg(long, value_name = "FILE")]
    pub incidents: PathBuf,
    /// Addresses and CIDR blocks never to block (one per line, `#` comments).
    #[arg(long, value_name = "FILE")]
    pub allowlist: PathBuf,
    /// Write the rule files instead of printing them (this never runs nft or suricata).
    #[arg(long)]
    pub apply: bool,
    /// How long a source stays blocked.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub block_secs: u64,
    /// Where --apply writes the nftables script.
    #[arg(long, default_value = "fedids-block.nft", value_name = "FILE")]
    pub nft_out: PathBuf,
    /// Where --apply writes the Suricata rules.
    #[arg(long, default_value = "fedids-drop.rules", value_name = "FILE")]
    pub suricata_out: PathBuf,
}

/// A duration such as `90`, `90s`, `5m` or `1h` (plain numbers are seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("'{s}': {e} (expected e.g. 90, 90s, 5m)"))
}

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// PKI directory (from `fedids pki init` / `issue`): the CA, the coordinator's certificate,
    /// key and signing key, and each site's verifying key.
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// The coordinator's certificate name in the PKI directory.
    #[arg(long, default_value = "coordinator")]
    pub name: String,
    /// Address to serve gRPC on (port 0 picks a free port; see --ready-file).
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: std::net::SocketAddr,
    /// Directory of the round database (coordinator.redb) and the round reports.
    #[arg(long, value_name = "DIR", default_value = "coordinator-state")]
    pub state: PathBuf,
    #[command(flatten)]
    pub fed: FederationArgs,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Write the bound gRPC (and metrics) address to FILE once serving, as JSON.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Record every round (the sites' signed contributions and the aggregation, signed by the
    /// coordinator) on the ledger at these node URLs, comma-separated, before serving the
    /// global model. The coordinator must be an authority of the ledger's genesis.
    #[arg(long, value_delimiter = ',')]
    pub ledger_node: Vec<String>,
    /// Print the round records as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How rounds run: the coordinator's settings, shared by `fedids coordinator` and the
/// coordinator role of `fedids node`.
#[derive(Debug, Args, Clone)]
pub struct FederationArgs {
    /// Sites taking part, comma-separated (default: every site issued in the PKI directory).
    #[arg(long, value_delimiter = ',')]
    pub sites: Vec<String>,
    /// A round completes when at least this many sites upload and score (default: all).
    #[arg(long)]
    pub min_sites: Option<usize>,
    /// Merge strategy: all, top-per-site:N, top-global:K, cross-site:K, weighted:K or support,
    /// with optional :a|wa ranking and :sv|wv|soft voting.
    #[arg(long, default_value = "top-per-site:25:wa:wv")]
    pub strategy: String,
    /// Trees each site grows.
    #[arg(long, default_value_t = 50)]
    pub trees_per_site: u32,
    /// Share of each site's rows kept for local validation (tree scoring).
    #[arg(long, default_value_t = 0.2)]
    pub validation_fraction: f64,
    /// Rounds to run.
    #[arg(long, default_value_t = 1)]
    pub rounds: u64,
    /// How long sites have to join before the first round opens.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub join_timeout: std::time::Duration,
    /// How long sites have to upload once a round opens.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub upload_timeout: std::time::Duration,
    /// How long sites have to send scores once uploads close.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub scoring_timeout: std::time::Duration,
    /// How long sites have to fetch the last global model before the coordinator exits.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub fetch_grace: std::time::Duration,
    /// Largest model upload accepted, in bytes.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_model_bytes: u64,
    /// Seed of the merge (weighted:K sampling).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultName {
    /// Flip a byte of the model after signing it.
    TamperUpload,
    /// Exit right after the upload is accepted.
    ExitAfterUpload,
}

#[derive(Debug, Args)]
pub struct SiteArgs {
    /// PKI directory holding the CA certificate, this site's certificate, key and signing key,
    /// and the coordinator's verifying key.
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// This site's name (its certificate name).
    #[arg(long)]
    pub name: String,
    /// The coordinator's URL; or, comma-separated, the URLs of the ledger nodes that may hold
    /// the coordinator role (`fedids node --federation-listen`), tried in turn.
    #[arg(long, value_delimiter = ',', default_value = "https://127.0.0.1:7443")]
    pub coordinator: Vec<String>,
    /// The coordinator's certificate name; with several URLs, one name per URL in the same
    /// order (comma-separated). Global models signed by any of them are accepted.
    #[arg(long, value_delimiter = ',', default_value = "coordinator")]
    pub coordinator_name: Vec<String>,
    /// This site's labelled flows (they never leave the site).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// What to predict (every site and the coordinator's schema must agree).
    #[arg(long, value_enum, default_value = "binary")]
    pub task: TaskName,
    /// Labelled test flows to compare the local and global models on (default: the local
    /// validation rows).
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// Seed of the local split and forest.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Rounds to take part in.
    #[arg(long, default_value_t = 1)]
    pub rounds: u64,
    /// How long to keep retrying when the coordinator is unreachable or still waiting.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Largest model accepted from the coordinator, in bytes.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_model_bytes: u64,
    /// Directory where the verified global model is written (global.fedg).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Print the round reports as JSON.
    #[arg(long)]
    pub json: bool,
    /// Inject a fault (for testing the coordinator's defences).
    #[arg(long, value_enum, hide = true)]
    pub fault: Option<FaultName>,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// PKI directory holding the CA certificate and this node's certificate, key and signing key.
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// This node's identity name in the PKI directory.
    #[arg(long)]
    pub name: String,
    /// This node's Raft id (unique in the cluster, as in --peers).
    #[arg(long)]
    pub id: u64,
    /// Address to serve on.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// Every member, this node included: ID=https://HOST:PORT, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub peers: Vec<String>,
    /// Directory of the node's database (raft.redb).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Bootstrap the cluster's membership from --peers (on one node, once).
    #[arg(long)]
    pub init: bool,
    /// Raft heartbeat interval in milliseconds (elections time out after 4 to 8 heartbeats).
    #[arg(long, default_value_t = 150)]
    pub heartbeat_ms: u64,
    /// Take the federation coordinator's role while this node leads the cluster: serve the
    /// federation protocol on this address (port 0 picks one) and keep round state in the
    /// replicated log, so that a new leader completes a round its predecessor started. Every
    /// coordinating node must be an authority of the ledger (`ledger genesis --authorities`).
    #[arg(long, value_name = "ADDR")]
    pub federation_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub fed: FederationArgs,
}

/// Where a ledger is read: an export file, or one live node.
#[derive(Debug, Args, Clone)]
pub struct LedgerSource {
    /// The export file (`ledger export`), instead of a live node.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "LedgerClientArgs",
        conflicts_with = "LedgerClientArgs"
    )]
    pub file: Option<PathBuf>,
    /// A live node to read instead (the first `--node`).
    #[command(flatten)]
    pub client: Option<LedgerClientArgs>,
}

/// How a ledger client reaches the cluster and who it is.
#[derive(Debug, Args, Clone)]
pub struct LedgerClientArgs {
    /// PKI directory with the CA certificate and this identity's certificate, key and signing key.
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// The identity to connect (and sign) as.
    #[arg(long)]
    pub name: String,
    /// Ledger node URLs (https://HOST:PORT), comma-separated; writes follow the leader.
    #[arg(long, value_delimiter = ',', required = true)]
    pub node: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Write the genesis (this identity as the authority) and register the sites' and nodes' keys.
    Genesis {
        #[command(flatten)]
        client: LedgerClientArgs,
        /// The federation's name.
        #[arg(long, default_value = "fedids")]
        federation: String,
        /// Site identities to register, comma-separated.
        #[arg(long, value_delimiter = ',')]
        sites: Vec<String>,
        /// Node identities to register, comma-separated.
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        /// Further authorities to register, comma-separated: identities that may record
        /// aggregations, such as ledger nodes that take the coordinator's role
        /// (`fedids node --federation-listen`).
        #[arg(long, value_delimiter = ',')]
        authorities: Vec<String>,
    },
    /// Record a threat-intelligence publication: the hash of a bundle, signed by this identity.
    Publish {
        #[command(flatten)]
        client: LedgerClientArgs,
        /// The published bundle (a STIX bundle or any file).
        #[arg(long, value_name = "FILE")]
        bundle: PathBuf,
        /// Where it was published (e.g. a TAXII collection id).
        #[arg(long, default_value = "")]
        channel: String,
        /// Claim another author than the signing identity (for testing refusals).
        #[arg(long, hide = true)]
        author: Option<String>,
    },
    /// Read a node's ledger, check it through the ledger's rules, and write it as one file.
    Export {
        #[command(flatten)]
        client: LedgerClientArgs,
        /// The export file.
        #[arg(long, short, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check an exported ledger: format, hash chain, signatures, authors and roles, replays, and
    /// print its tree head and each site's contributions.
    Verify {
        /// The export file.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "state",
            conflicts_with = "state"
        )]
        file: Option<PathBuf>,
        /// A stopped node's state directory: check the entries it stored on disk.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Check that this global model file is exactly the recorded output of an aggregation.
        #[arg(long, value_name = "FILE")]
        model: Option<PathBuf>,
        /// Re-execute every recorded merge from the coordinator's state directory (round
        /// reports and model copies) and compare the output hashes.
        #[arg(long, value_name = "DIR")]
        replay: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Each site's contributions, from an export file or one live node, after checking the ledger
    /// through its rules: models contributed, rounds and trees accepted, training rows,
    /// evaluations, the validation gain its trees brought to the other sites and the one the
    /// global models brought to it.
    ///
    /// Give either an export file (`--file`) or a live node to read (`--pki`, `--name`, `--node`:
    /// the first node given is read).
    #[command(
        override_usage = "fedids ledger contributions --file <FILE> [--json]\n       \
                          fedids ledger contributions --pki <DIR> --name <NAME> --node <NODE> [--json]"
    )]
    Contributions {
        #[command(flatten)]
        source: LedgerSource,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// An RFC 9162 Merkle proof, from an export file or one live node, checked before it is
    /// printed: that record INDEX is in the ledger (`--inclusion`), or that the ledger of OLD
    /// records is a prefix of the current one (`--consistency`).
    #[command(
        override_usage = "fedids ledger proof (--inclusion <INDEX> | --consistency <OLD>) [--size <N>] --file <FILE> [--json]\n       \
                          fedids ledger proof (--inclusion <INDEX> | --consistency <OLD>) [--size <N>] --pki <DIR> --name <NAME> --node <NODE> [--json]"
    )]
    Proof {
        #[command(flatten)]
        source: LedgerSource,
        /// Prove that the record at this position is in the ledger.
        #[arg(
            long,
            value_name = "INDEX",
            required_unless_present = "consistency",
            conflicts_with = "consistency"
        )]
        inclusion: Option<u64>,
        /// Prove that the ledger of this many records is a prefix of the current one.
        #[arg(long, value_name = "OLD")]
        consistency: Option<u64>,
        /// The tree size the proof is for (default: every record).
        #[arg(long, value_name = "N")]
        size: Option<u64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare the tree heads of every node given: a node whose history differs is named.
    Heads {
        #[command(flatten)]
        client: LedgerClientArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Parses `--timing-warmup`: a finite number of seconds from 0 to 600.
fn warmup_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=600.0).contains(&v) => Ok(v),
        _ => Err(format!("expected seconds from 0 to 600, found '{text}'")),
    }
}
