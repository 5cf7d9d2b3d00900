//! `fedids model inspect`

use std::collections::BTreeMap;
use std::path::Path;

use std::fmt::Write as _;

use anyhow::Result;
use fedids_data::FeatureKind;
use fedids_federation::{GlobalModel, GLOBAL_MODEL_FORMAT_VERSION};
use fedids_forest::{model, Provenance};
use serde::Serialize;

use super::model_file::{LoadedModel, ModelFile};

#[derive(Serialize)]
struct FeatureInfo {
    name: String,
    kind: &'static str,
    /// Number of known categories (categorical features only).
    categories: Option<usize>,
    importance: f64,
}

/// How many of a global model's trees one site contributed.
#[derive(Serialize)]
struct SiteTrees {
    site: u32,
    n_trees: usize,
}

#[derive(Serialize)]
struct Inspection<'a> {
    path: String,
    /// `forest` (a forest model file) or `global` (a global model file).
    model_kind: &'static str,
    /// The version of the file's own format (forest or global model file).
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
    /// Global models only: `sv`, `wv` or `soft`.
    #[serde(skip_serializing_if = "Option::is_none")]
    voting: Option<String>,
    /// Global models only: the number of sites that contributed trees.
    #[serde(skip_serializing_if = "Option::is_none")]
    n_sites: Option<usize>,
    /// Global models only: trees contributed per site, by site id.
    #[serde(skip_serializing_if = "Option::is_none")]
    trees_per_site: Option<Vec<SiteTrees>>,
    /// Global models only: `none`, `experts` or `support`.
    #[serde(skip_serializing_if = "Option::is_none")]
    gating: Option<&'static str>,
}

/// Trees per contributing site, by site id.
fn trees_per_site(g: &GlobalModel) -> Vec<SiteTrees> {
    let mut counts = BTreeMap::new();
    for r in g.sources() {
        *counts.entry(r.site.0).or_insert(0usize) += 1;
    }
    counts
        .into_iter()
        .map(|(site, n_trees)| SiteTrees { site, n_trees })
        .collect()
}

fn gating_kind(g: &GlobalModel) -> &'static str {
    match (g.gating(), g.support()) {
        (Some(_), _) => "experts",
        (None, Some(_)) => "support",
        (None, None) => "none",
    }
}

pub fn run(path: &Path, json: bool) -> Result<()> {
    let m = ModelFile::load(path)?;
    let f = m.model.forest();
    let global = match &m.model {
        LoadedModel::Forest(_) => None,
        LoadedModel::Global(g) => Some(g),
    };
    let per_site = global.map(trees_per_site);
    let depths: Vec<usize> = f.trees().iter().map(|t| t.depth()).collect();
    let importances = f.feature_importances();
    let schema = m.model.schema();
    let features: Vec<FeatureInfo> = schema
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
        model_kind: m.model.kind(),
        format_version: match global {
            None => model::FORMAT_VERSION,
            Some(_) => u32::from(GLOBAL_MODEL_FORMAT_VERSION),
        },
        model_bytes: m.n_bytes,
        model_hash: m.hash.clone(),
        input_format: schema.format.name(),
        task: schema.task.name(),
        classes: &schema.classes,
        n_trees: f.trees().len(),
        n_nodes: f.trees().iter().map(|t| t.nodes().len()).sum(),
        n_leaves: f.trees().iter().map(|t| t.n_leaves()).sum(),
        max_depth: depths.iter().copied().max().unwrap_or(0),
        mean_depth: depths.iter().sum::<usize>() as f64 / depths.len().max(1) as f64,
        features,
        provenance: f.provenance(),
        voting: global.map(|g| g.voting().to_string()),
        n_sites: per_site.as_ref().map(Vec::len),
        trees_per_site: per_site,
        gating: global.map(gating_kind),
    };
    if json {
        crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&info)?))?;
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(out, "model          {}", info.path);
    let _ = writeln!(
        out,
        "format         fedids {}model v{}, {}",
        if global.is_some() { "global " } else { "" },
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
    if let (Some(voting), Some(sites), Some(gating)) =
        (&info.voting, &info.trees_per_site, info.gating)
    {
        let _ = writeln!(out, "kind           global");
        let _ = writeln!(out, "voting         {voting}");
        let per_site: Vec<String> = sites
            .iter()
            .map(|s| format!("site {}: {}", s.site, s.n_trees))
            .collect();
        let _ = writeln!(
            out,
            "sites          {} (trees {})",
            sites.len(),
            per_site.join(", ")
        );
        let _ = writeln!(out, "gating         {gating}");
    }
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
