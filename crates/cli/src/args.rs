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
    /// Work with model files.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// The embedded default job: train on a bundled NSL-KDD sample and evaluate on KDDTest+.
    Demo(DemoArgs),
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskName {
    Binary,
    Multiclass,
}

impl From<TaskName> for Task {
    fn from(t: TaskName) -> Task {
        match t {
            TaskName::Binary => Task::Binary,
            TaskName::Multiclass => Task::Multiclass,
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
    /// Quantile-binned histograms (fast).
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
    /// Split search: hist (quantile bins) or exact.
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
    /// Number of trees.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}
