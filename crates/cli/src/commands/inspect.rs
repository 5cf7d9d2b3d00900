//! `fedids model inspect`

use std::path::Path;

use std::fmt::Write as _;

use anyhow::Result;
use fedids_data::FeatureKind;
use fedids_forest::{model, Provenance};
use serde::Serialize;

#[derive(Serialize)]
struct FeatureInfo {
    name: String,
    kind: &'static str,
    /// Number of known categories (categorical features only).
    categories: Option<usize>,
    importance: f64,
}

#[derive(Serialize)]
struct Inspection<'a> {
    path: String,
    format_version: u32,
    model_bytes: usize,
    model_hash: String,
    input_format: &'static str,
    task: &'static str,
    classes: &'a [String],
    n_trees: usize,
    n_nodes: usize,
    n_leaves: usize,
    max_depth: usize,
    mean_depth: f64,
    features: Vec<FeatureInfo>,
    provenance: &'a Provenance,
}

pub fn run(path: &Path, json: bool) -> Result<()> {
    let m = super::read_model(path)?;
    let f = &m.forest;
    let depths: Vec<usize> = f.trees().iter().map(|t| t.depth()).collect();
    let importances = f.feature_importances();
    let features: Vec<FeatureInfo> = f
        .schema()
        .features
        .iter()
        .zip(&importances)
        .map(|(feat, &importance)| FeatureInfo {
            name: feat.name.clone(),
            kind: match feat.kind {
                FeatureKind::Numeric => "numeric",
                FeatureKind::Categorical { .. } => "categorical",
            },
            categories: match &feat.kind {
                FeatureKind::Numeric => None,
                FeatureKind::Categorical { categories } => Some(categories.len()),
            },
            importance,
        })
        .collect();
    let info = Inspection {
        path: path.display().to_string(),
        format_version: model::FORMAT_VERSION,
        model_bytes: m.n_bytes,
        model_hash: m.hash.clone(),
        input_format: f.schema().format.name(),
        task: f.schema().task.name(),
        classes: &f.schema().classes,
        n_trees: f.trees().len(),
        n_nodes: f.trees().iter().map(|t| t.nodes().len()).sum(),
        n_leaves: f.trees().iter().map(|t| t.n_leaves()).sum(),
        max_depth: depths.iter().copied().max().unwrap_or(0),
        mean_depth: depths.iter().sum::<usize>() as f64 / depths.len().max(1) as f64,
        features,
        provenance: f.provenance(),
    };
    if json {
        crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&info)?))?;
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(out, "model          {}", info.path);
    let _ = writeln!(
        out,
        "format         fedids model v{}, {}",
        info.format_version,
        super::human_bytes(info.model_bytes)
    );
    let _ = writeln!(out, "sha256         {}", info.model_hash);
    let _ = writeln!(out, "input format   {}", info.input_format);
    let _ = writeln!(
        out,
        "task           {} ({})",
        info.task,
        info.classes.join(", ")
    );
    let _ = writeln!(
        out,
        "trees          {} ({} nodes, {} leaves, depth max {} mean {:.1})",
        info.n_trees, info.n_nodes, info.n_leaves, info.max_depth, info.mean_depth
    );
    match info.provenance {
        Provenance::Trained {
            params,
            n_rows,
            class_counts,
        } => {
            let _ = writeln!(
                out,
                "trained on     {} rows, per class {:?}",
                super::thousands(*n_rows),
                class_counts
            );
            let _ = writeln!(out, "parameters     {params:?}");
        }
        Provenance::Combined { sources } => {
            let _ = writeln!(out, "combined from  {}", sources.join("; "));
        }
    }
    let _ = writeln!(out, "features       {}", info.features.len());
    let mut ranked: Vec<&FeatureInfo> = info.features.iter().collect();
    ranked.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    let _ = writeln!(out, "top features by impurity importance:");
    for feat in ranked.iter().take(10) {
        let cats = feat
            .categories
            .map(|n| format!(", {n} categories"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<30} {:.4}  ({}{})",
            feat.name, feat.importance, feat.kind, cats
        );
    }
    crate::ui::emit(&out)?;
    Ok(())
}
