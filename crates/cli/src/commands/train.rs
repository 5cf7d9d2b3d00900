//! `fedids train`

use std::time::Instant;

use std::fmt::Write as _;

use anyhow::{Context, Result};
use fedids_forest::{model, ClassWeight, Forest, ForestParams, SplitSearch};
use serde::Serialize;

use crate::args::{ClassWeightName, ForestArgs, SplitName, TrainArgs};

pub fn forest_params(a: &ForestArgs) -> ForestParams {
    ForestParams {
        n_trees: a.trees,
        criterion: a.criterion,
        max_depth: a.max_depth,
        min_samples_split: a.min_samples_split,
        min_samples_leaf: a.min_samples_leaf,
        max_features: a.max_features,
        sampling: a.sample,
        class_weight: match a.class_weight {
            ClassWeightName::None => ClassWeight::Uniform,
            ClassWeightName::Balanced => ClassWeight::Balanced,
        },
        split: match a.split {
            SplitName::Hist => SplitSearch::Histogram {
                max_bins: a.max_bins,
            },
            SplitName::Exact => SplitSearch::Exact,
        },
        seed: a.seed,
    }
}

/// Fits a forest with a progress bar over trees; returns it and the fit seconds.
pub fn fit_with_progress(
    ds: &fedids_data::Dataset,
    params: &ForestParams,
    quiet: bool,
) -> Result<(Forest, f64)> {
    let bar = crate::ui::bar(params.n_trees as u64, "trees", quiet);
    let start = Instant::now();
    let forest = Forest::fit(&ds.x, &ds.y, ds.schema.clone(), params, &|| bar.inc(1))?;
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok((forest, secs))
}

#[derive(Serialize)]
struct TrainSummary {
    data: String,
    format: &'static str,
    task: &'static str,
    n_rows: usize,
    n_features: usize,
    classes: Vec<String>,
    n_trees: usize,
    load_seconds: f64,
    fit_seconds: f64,
    out: String,
    model_bytes: usize,
    model_hash: String,
    load_report: fedids_data::LoadReport,
}

pub fn run(a: TrainArgs, quiet: bool) -> Result<()> {
    let params = forest_params(&a.forest);
    let (ds, load_seconds) = super::load_training(&a.data, &a.input, a.task.into(), quiet)?;
    let (forest, fit_seconds) = fit_with_progress(&ds, &params, quiet)?;
    let bytes = model::encode(&forest);
    std::fs::write(&a.out, &bytes)
        .with_context(|| format!("cannot write model file {}", a.out.display()))?;
    let summary = TrainSummary {
        data: a.data.display().to_string(),
        format: ds.schema.format.name(),
        task: ds.schema.task.name(),
        n_rows: ds.x.n_rows(),
        n_features: ds.x.n_features(),
        classes: ds.schema.classes.clone(),
        n_trees: forest.trees().len(),
        load_seconds,
        fit_seconds,
        out: a.out.display().to_string(),
        model_bytes: bytes.len(),
        model_hash: model::model_hash(&bytes),
        load_report: ds.report.clone(),
    };
    if a.json {
        crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&summary)?))?;
    } else {
        let mut out = String::new();
        let _ = writeln!(out,
            "trained {} trees on {} rows of {} ({}, {} features, {} task: {}) in {:.2} s (reading took {:.2} s)",
            summary.n_trees,
            super::thousands(summary.n_rows as u64),
            summary.data,
            summary.format,
            summary.n_features,
            summary.task,
            summary.classes.join(", "),
            fit_seconds,
            load_seconds
        );
        let _ = writeln!(
            out,
            "wrote {} ({}, sha256 {})",
            summary.out,
            super::human_bytes(summary.model_bytes),
            summary.model_hash
        );
        crate::ui::emit(&out)?;
    }
    Ok(())
}
