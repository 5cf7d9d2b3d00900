//! `fedids demo`: the embedded default job. No flags, no downloads, nothing to start by hand.
//!
//! By default it runs a real federation on 127.0.0.1: a throwaway PKI, one coordinator and three
//! site processes of this same binary, mutual TLS, one round over a non-IID split of the
//! embedded NSL-KDD sample, and each site's local accuracy next to the global model's on
//! KDDTest+. `--local` trains one forest on the whole sample instead.

use std::io::Read;

use std::fmt::Write as _;

use anyhow::{Context, Result};
use fedids_data::{parse_bytes, parse_bytes_with_schema, LoadOptions, Task};
use fedids_forest::{model, ForestParams, Metrics};
use serde::Serialize;

use crate::args::DemoArgs;

/// `KDDTrain+_20Percent.txt` and `KDDTest+.txt` from NSL-KDD, gzip-compressed (see
/// `crates/cli/data/README.md`).
pub const TRAIN_GZ: &[u8] = include_bytes!("../../data/KDDTrain+_20Percent.txt.gz");
pub const TEST_GZ: &[u8] = include_bytes!("../../data/KDDTest+.txt.gz");

pub fn gunzip(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .with_context(|| format!("embedded {name} does not decompress"))?;
    Ok(out)
}

#[derive(Serialize)]
struct TaskResult {
    task: &'static str,
    n_train: usize,
    n_test: usize,
    fit_seconds: f64,
    predict_seconds: f64,
    model_hash: String,
    metrics: Metrics,
}

pub fn run(a: DemoArgs, quiet: bool) -> Result<()> {
    if a.local {
        run_local(a, quiet)
    } else {
        super::demo_fed::run(a, quiet)
    }
}

fn run_local(a: DemoArgs, quiet: bool) -> Result<()> {
    let train = gunzip("KDDTrain+_20Percent.txt", TRAIN_GZ)?;
    let test = gunzip("KDDTest+.txt", TEST_GZ)?;
    let params = ForestParams {
        n_trees: a.trees,
        seed: a.seed,
        ..ForestParams::default()
    };
    let mut results = Vec::new();
    for task in [Task::Binary, Task::Multiclass] {
        let opts = LoadOptions::new(task);
        let tr = parse_bytes("KDDTrain+_20Percent.txt", &train, &opts)?;
        let te = parse_bytes_with_schema("KDDTest+.txt", &test, &tr.schema, &opts)?;
        let (forest, fit_seconds) = super::train::fit_with_progress(&tr, &params, quiet)?;
        let (metrics, predict_seconds) = super::eval::evaluate(&forest, &te)?;
        results.push(TaskResult {
            task: task.name(),
            n_train: tr.x.n_rows(),
            n_test: te.x.n_rows(),
            fit_seconds,
            predict_seconds,
            model_hash: model::model_hash(&model::encode(&forest)),
            metrics,
        });
    }
    if a.json {
        crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&results)?))?;
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(out,
        "fedids demo: a {}-tree Random Forest trained on NSL-KDD KDDTrain+_20Percent (embedded), evaluated on KDDTest+ (seed {})",
        a.trees, a.seed
    );
    for r in &results {
        let _ =
            writeln!(out,
            "\n== {} task: {} training rows, fit {:.2} s; {} test rows, predicted in {:.3} s ==\n",
            r.task,
            super::thousands(r.n_train as u64),
            r.fit_seconds,
            super::thousands(r.n_test as u64),
            r.predict_seconds
        );
        let _ = write!(out, "{}", r.metrics.render_table());
    }
    let _ = writeln!(out, "\nKDDTest+ holds attack types absent from training data, so it is much harder than a random split.");
    let _ = writeln!(
        out,
        "Next: `fedids train --data FILE`, `fedids eval`, `fedids predict`; see README.md."
    );
    crate::ui::emit(&out)?;
    Ok(())
}
