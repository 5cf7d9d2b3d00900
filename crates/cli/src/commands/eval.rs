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
    pub predict_seconds: f64,
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

pub fn run(a: EvalArgs, quiet: bool) -> Result<()> {
    let m = ModelFile::load(&a.model)?;
    let (ds, load_seconds) = super::load_for_model(
        &a.data,
        m.model.forest(),
        a.skip_invalid,
        a.unmapped_label,
        quiet,
    )?;
    let (metrics, predict_seconds) = timed_metrics(&ds, || m.model.predict(&ds.x))?;
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
            "{kind} {}{voting} on {}: {} rows predicted in {:.3} s ({} rows/s)\n",
            &report.model_hash[..16],
            report.data,
            super::thousands(report.n_rows as u64),
            predict_seconds,
            super::thousands(report.rows_per_second as u64)
        );
        let _ = write!(out, "{}", report.metrics.render_table());
        crate::ui::emit(&out)?;
    }
    Ok(())
}
