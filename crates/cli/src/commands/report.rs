//! Writing a report folder: report.md, results.json and SVG plots.

use std::path::Path;

use anyhow::{Context, Result};
use fedids_federation::SimulationReport;
use fedids_report::{
    markdown_table, partition_table, summarize, svg_class_f1, svg_partition, svg_scores, Summary,
};
use serde::Serialize;

/// What a report folder describes.
pub struct ReportSpec<'a> {
    pub title: String,
    /// The exact command that regenerates the folder.
    pub command: String,
    /// Markdown describing the data and configuration.
    pub setup_md: String,
    /// Extra markdown placed after the results (targets, notes).
    pub notes_md: String,
    /// The configuration, as written to results.json.
    pub config: serde_json::Value,
    pub runs: &'a [SimulationReport],
}

#[derive(Serialize)]
struct Results<'a> {
    title: &'a str,
    command: &'a str,
    fedids_version: &'static str,
    config: &'a serde_json::Value,
    summary: &'a Summary,
    runs: &'a [SimulationReport],
}

/// Writes the folder and returns the summary.
pub fn write(dir: &Path, spec: &ReportSpec<'_>) -> Result<Summary> {
    let summary = summarize(spec.runs).context("no runs to report")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, text: &str| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))
    };
    let results = Results {
        title: &spec.title,
        command: &spec.command,
        fedids_version: env!("CARGO_PKG_VERSION"),
        config: &spec.config,
        summary: &summary,
        runs: spec.runs,
    };
    write(
        "results.json",
        &(serde_json::to_string_pretty(&results)? + "\n"),
    )?;
    write(
        "scores.svg",
        &svg_scores(&summary, &format!("{}: accuracy and macro-F1", spec.title)),
    )?;
    write(
        "class_f1.svg",
        &svg_class_f1(&summary, &format!("{}: F1 per class", spec.title)),
    )?;
    let first = &spec.runs[0];
    write(
        "partition.svg",
        &svg_partition(
            &first.partition,
            &format!(
                "{}: training rows per site and class (seed {})",
                spec.title, first.seed
            ),
        ),
    )?;
    let seeds: Vec<String> = summary.seeds.iter().map(|s| s.to_string()).collect();
    let md = format!(
        "# {title}\n\nRegenerate with:\n\n```sh\n{command}\n```\n\n{setup}\n\n## Results\n\n\
         Test-set figures in percent, mean ± standard deviation over seeds {seeds}.\n\n{table}\n\
         Best federated strategy by accuracy: {best_acc}; by macro-F1: {best_f1}.\n\n\
         ![scores](scores.svg)\n\n![per-class F1](class_f1.svg)\n\n## Partition (seed {seed0})\n\n{partition}\n\
         ![partition](partition.svg)\n\n{notes}\n",
        title = spec.title,
        command = spec.command,
        setup = spec.setup_md,
        seeds = seeds.join(", "),
        table = markdown_table(&summary),
        best_acc = summary.best_by_accuracy.as_deref().unwrap_or("none"),
        best_f1 = summary.best_by_macro_f1.as_deref().unwrap_or("none"),
        seed0 = first.seed,
        partition = partition_table(&first.partition),
        notes = spec.notes_md,
    );
    write("report.md", &md)?;
    Ok(summary)
}

/// The command line that was run, for "regenerate with".
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("fedids {}", args.join(" "))
}

/// Parses `--seeds`: a list (`0,1,2`) or a count (`5` = `0..5`).
pub fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    if s.contains(',') {
        s.split(',')
            .map(|p| {
                p.trim()
                    .parse::<u64>()
                    .with_context(|| format!("--seeds: '{p}' is not a seed"))
            })
            .collect()
    } else {
        let n: u64 = s
            .trim()
            .parse()
            .with_context(|| format!("--seeds: '{s}' is neither a count nor a list"))?;
        anyhow::ensure!(n > 0, "--seeds: at least one seed");
        Ok((0..n).collect())
    }
}
