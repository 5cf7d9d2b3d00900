//! One module per subcommand, plus the input and model plumbing they share.

mod coordinator;
mod demo;
mod demo_fed;
mod detect;
mod eval;
mod experiment;
mod inspect;
mod intel;
mod ledger;
mod model_file;
mod node;
mod node_role;
mod pki;
mod predict;
mod report;
mod respond;
mod simulate;
mod site;
mod taxii;
mod train;

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fedids_data::{CsvSchema, Dataset, FormatSpec, LoadOptions, Task, UnmappedLabelPolicy};
use fedids_forest::{model, Forest};

use crate::args::{Cli, Command, FormatName, InputArgs, ModelCommand, UnmappedLabel};

pub fn run(cli: Cli) -> Result<()> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Train(a) => train::run(a, quiet),
        Command::Eval(a) => eval::run(a, quiet),
        Command::Predict(a) => predict::run(a, quiet),
        Command::Detect(a) => detect::run(a, quiet),
        Command::Intel { command } => intel::run(command),
        Command::Taxii { command } => taxii::run(command, quiet),
        Command::Respond(a) => respond::run(a),
        Command::Model {
            command: ModelCommand::Inspect { model, json },
        } => inspect::run(&model, json),
        Command::Demo(a) => demo::run(a, quiet),
        Command::Simulate(a) => simulate::run(a, quiet),
        Command::Experiment(a) => experiment::run(a, quiet),
        Command::Coordinator(a) => coordinator::run(a),
        Command::Site(a) => site::run(a, quiet),
        Command::Node(a) => node::run(a),
        Command::Ledger { command } => ledger::run(command),
        Command::Pki { command } => pki::run(command),
    }
}

impl From<UnmappedLabel> for UnmappedLabelPolicy {
    fn from(u: UnmappedLabel) -> Self {
        match u {
            UnmappedLabel::Error => UnmappedLabelPolicy::Error,
            UnmappedLabel::Skip => UnmappedLabelPolicy::Skip,
        }
    }
}

/// Turns `--format` and `--schema` into a format (`None`: auto-detect).
fn format_spec(input: &InputArgs) -> Result<Option<FormatSpec>> {
    let csv_schema = match &input.schema {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read schema file {}", path.display()))?;
            Some(CsvSchema::from_toml_str(
                &path.display().to_string(),
                &text,
            )?)
        }
        None => None,
    };
    Ok(match (input.format, csv_schema) {
        (Some(FormatName::Csv) | None, Some(s)) => Some(FormatSpec::Csv(s)),
        (Some(FormatName::ZeekConn), None) => Some(FormatSpec::ZeekConn),
        (Some(FormatName::Cicflowmeter), None) => Some(FormatSpec::Csv(CsvSchema::cicflowmeter())),
        (Some(FormatName::Csv), None) => {
            bail!("--format csv needs --schema FILE (a TOML file naming the label column and benign values)")
        }
        (Some(other), Some(_)) => {
            bail!(
                "--schema only applies to --format csv, not --format {}",
                format_name(other)
            )
        }
        (Some(FormatName::NslKdd), None) => Some(FormatSpec::NslKdd),
        (Some(FormatName::Kdd99), None) => Some(FormatSpec::Kdd99),
        (Some(FormatName::UnswNb15), None) => Some(FormatSpec::UnswNb15),
        (None, None) => None,
    })
}

fn format_name(f: FormatName) -> &'static str {
    match f {
        FormatName::NslKdd => "nsl-kdd",
        FormatName::Kdd99 => "kdd99",
        FormatName::UnswNb15 => "unsw-nb15",
        FormatName::Csv => "csv",
        FormatName::ZeekConn => "zeek-conn",
        FormatName::Cicflowmeter => "cicflowmeter",
    }
}

/// Loads a training file, learning its schema. Returns the dataset and the seconds it took.
fn load_training(
    path: &Path,
    input: &InputArgs,
    task: Task,
    quiet: bool,
) -> Result<(Dataset, f64)> {
    let opts = LoadOptions {
        format: format_spec(input)?,
        task,
        skip_invalid: input.skip_invalid,
        unmapped_label: input.unmapped_label.into(),
    };
    let spin = crate::ui::spinner(&format!("reading {}", path.display()), quiet);
    let start = Instant::now();
    let ds = fedids_data::load_path(path, &opts)?;
    let secs = start.elapsed().as_secs_f64();
    spin.finish_and_clear();
    report_skips(&ds);
    Ok((ds, secs))
}

/// Loads a labelled file with a model's schema.
fn load_for_model(
    path: &Path,
    forest: &Forest,
    skip_invalid: bool,
    unmapped: UnmappedLabel,
    quiet: bool,
) -> Result<(Dataset, f64)> {
    let schema = forest.schema();
    let opts = LoadOptions {
        format: Some(schema.format.clone()),
        task: schema.task,
        skip_invalid,
        unmapped_label: unmapped.into(),
    };
    let spin = crate::ui::spinner(&format!("reading {}", path.display()), quiet);
    let start = Instant::now();
    let ds = fedids_data::load_path_with_schema(path, schema, &opts)?;
    let secs = start.elapsed().as_secs_f64();
    spin.finish_and_clear();
    report_skips(&ds);
    Ok((ds, secs))
}

/// Skipped rows are never silent: their count and first reasons go to stderr.
fn report_skips(ds: &Dataset) {
    let r = &ds.report;
    if r.n_skipped_invalid > 0 || r.n_skipped_unmapped_label > 0 {
        eprintln!(
            "warning: {}: skipped {} malformed row(s) and {} row(s) with unmapped labels; kept {}",
            r.source, r.n_skipped_invalid, r.n_skipped_unmapped_label, r.n_rows
        );
        for s in &r.first_skips {
            eprintln!("  {s}");
        }
    }
}

/// A model read from disk, with its identity.
struct LoadedModel {
    forest: Forest,
    hash: String,
    n_bytes: usize,
}

fn read_model(path: &Path) -> Result<LoadedModel> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read model file {}", path.display()))?;
    let forest = model::decode(&bytes).with_context(|| format!("{}", path.display()))?;
    Ok(LoadedModel {
        forest,
        hash: model::model_hash(&bytes),
        n_bytes: bytes.len(),
    })
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn human_bytes(n: usize) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else if n >= 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(494020), "494,020");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
