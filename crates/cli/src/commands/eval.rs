//! `fedids eval`

use std::time::Instant;

use std::fmt::Write as _;

use anyhow::Result;
use fedids_forest::{Forest, Metrics};
use serde::Serialize;

use crate::args::EvalArgs;

#[derive(Serialize)]
pub struct EvalReport {
    pub model_hash: String,
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
    let start = Instant::now();
    let pred = forest.predict(&ds.x)?;
    let secs = start.elapsed().as_secs_f64();
    Ok((Metrics::compute(&ds.schema.classes, &ds.y, &pred), secs))
}

pub fn run(a: EvalArgs, quiet: bool) -> Result<()> {
    let m = super::read_model(&a.model)?;
    let (ds, load_seconds) =
        super::load_for_model(&a.data, &m.forest, a.skip_invalid, a.unmapped_label, quiet)?;
    let (metrics, predict_seconds) = evaluate(&m.forest, &ds)?;
    let report = EvalReport {
        model_hash: m.hash,
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
            "model {} on {}: {} rows predicted in {:.3} s ({} rows/s)\n",
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
