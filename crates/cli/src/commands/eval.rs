//! `fedids eval`

use std::time::Instant;

use std::fmt::Write as _;

use anyhow::Result;
use fedids_forest::{Forest, Metrics};
use serde::Serialize;

use super::model_file::{LoadedModel, ModelFile};
use crate::args::EvalArgs;

#[derive(Serialize)]
pub struct EvalReport {
    pub model_hash: String,
    /// `forest` (a forest model file) or `global` (a global model file).
    pub model_kind: &'static str,
    pub data: String,
    pub n_rows: usize,
    pub load_seconds: f64,
    /// The median over `predict_runs_seconds`.
    pub predict_seconds: f64,
    /// Each timed prediction of the whole data (`--timing-runs`), in order.
    pub predict_runs_seconds: Vec<f64>,
    /// Untimed predictions made first (`--timing-warmup`).
    pub warmup_runs: u32,
    pub rows_per_second: f64,
    pub metrics: Metrics,
    pub load_report: fedids_data::LoadReport,
}

/// Predicts `ds` with `forest` and measures the batch prediction time.
pub fn evaluate(forest: &Forest, ds: &fedids_data::Dataset) -> Result<(Metrics, f64)> {
    timed_metrics(ds, || Ok(forest.predict(&ds.x)?))
}

/// Metrics of the predictions `predict` makes for `ds`, and the seconds it took.
fn timed_metrics(
    ds: &fedids_data::Dataset,
    predict: impl FnOnce() -> Result<Vec<u32>>,
) -> Result<(Metrics, f64)> {
    let start = Instant::now();
    let pred = predict()?;
    let secs = start.elapsed().as_secs_f64();
    Ok((Metrics::compute(&ds.schema.classes, &ds.y, &pred), secs))
}

/// The median of non-empty `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

pub fn run(a: EvalArgs, quiet: bool) -> Result<()> {
    let m = ModelFile::load(&a.model)?;
    let (ds, load_seconds) = super::load_for_model(
        &a.data,
        m.model.forest(),
        a.skip_invalid,
        a.unmapped_label,
        quiet,
    )?;
    let mut warmup_runs = 0u32;
    if a.timing_warmup > 0.0 {
        let start = Instant::now();
        while warmup_runs == 0 || start.elapsed().as_secs_f64() < a.timing_warmup {
            m.model.predict(&ds.x)?;
            warmup_runs += 1;
        }
    }
    let mut runs = Vec::new();
    let mut pred: Option<Vec<u32>> = None;
    for _ in 0..a.timing_runs {
        let start = Instant::now();
        let again = m.model.predict(&ds.x)?;
        runs.push(start.elapsed().as_secs_f64());
        match &pred {
            None => pred = Some(again),
            Some(first) => anyhow::ensure!(
                again == *first,
                "predictions differ between timing runs (the model is deterministic: a bug)"
            ),
        }
    }
    let pred = pred.expect("--timing-runs is at least 1");
    let metrics = Metrics::compute(&ds.schema.classes, &ds.y, &pred);
    let predict_seconds = median(&runs);
    let (kind, voting) = match &m.model {
        LoadedModel::Forest(_) => ("model", String::new()),
        LoadedModel::Global(g) => ("global model", format!(" ({} voting)", g.voting())),
    };
    let report = EvalReport {
        model_hash: m.hash,
        model_kind: m.model.kind(),
        data: a.data.display().to_string(),
        n_rows: ds.x.n_rows(),
        load_seconds,
        predict_seconds,
        predict_runs_seconds: runs,
        warmup_runs,
        rows_per_second: ds.x.n_rows() as f64 / predict_seconds.max(1e-9),
        metrics,
        load_report: ds.report,
    };
    if a.json {
        crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{kind} {}{voting} on {}: {} rows predicted in {:.3} s{} ({} rows/s)\n",
            &report.model_hash[..16],
            report.data,
            super::thousands(report.n_rows as u64),
            predict_seconds,
            match (a.timing_runs, warmup_runs) {
                (1, 0) => String::new(),
                (1, w) => format!(" (after {w} untimed runs)"),
                (n, 0) => format!(" (median of {n} runs)"),
                (n, w) => format!(" (median of {n} runs, after {w} untimed)"),
            },
            super::thousands(report.rows_per_second as u64)
        );
        let _ = write!(out, "{}", report.metrics.render_table());
        crate::ui::emit(&out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
