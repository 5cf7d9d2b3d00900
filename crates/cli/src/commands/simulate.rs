//! `fedids simulate`: one federated configuration over several seeds, in one process.

use std::path::PathBuf;

use anyhow::{Context, Result};
use fedids_federation::{protocol_split, simulate, MergeStrategy, PartitionSpec, SimulationConfig};
use fedids_forest::ForestParams;

use crate::args::SimulateArgs;

pub fn run(a: SimulateArgs, quiet: bool) -> Result<()> {
    let partition: PartitionSpec = a.partition.parse()?;
    let strategies = a
        .strategy
        .iter()
        .map(|s| s.parse::<MergeStrategy>())
        .collect::<Result<Vec<_>, _>>()?;
    let seeds = super::report::parse_seeds(&a.seeds)?;
    let task = a.task.into();
    let (data, _) = super::load_training(&a.data, &a.input, task, quiet)?;
    let test = match &a.test {
        Some(path) => {
            let opts = fedids_data::LoadOptions {
                format: Some(data.schema.format.clone()),
                task,
                skip_invalid: a.input.skip_invalid,
                unmapped_label: a.input.unmapped_label.into(),
            };
            Some(fedids_data::load_path_with_schema(
                path,
                &data.schema,
                &opts,
            )?)
        }
        None => None,
    };
    let bar = crate::ui::bar(seeds.len() as u64, "seeds", quiet);
    let mut runs = Vec::new();
    for &seed in &seeds {
        let config = SimulationConfig {
            partition: partition.clone(),
            n_sites: a.sites,
            min_site_rows: a.min_site_rows,
            validation_fraction: a.validation_fraction,
            forest: ForestParams {
                n_trees: a.trees_per_site,
                ..ForestParams::default()
            },
            central_n_trees: a.central_trees,
            strategies: strategies.clone(),
            seed,
        };
        let report = match &test {
            Some(test) => simulate(&data, test, &config)?,
            None => {
                let (train, held_out, _) = protocol_split(&data, 0.2, 0, seed)?;
                simulate(&train, &held_out, &config)?
            }
        };
        runs.push(report);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let stem = a
        .data
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let dir = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("reports").join(format!(
            "simulate-{stem}-{}-{}",
            task.name(),
            a.partition.replace(':', "-")
        ))
    });
    let test_desc = match &a.test {
        Some(p) => format!("`{}`", p.display()),
        None => "a seeded, stratified 20% of the training file, held out per seed".into(),
    };
    let setup_md = format!(
        "- training data: `{}` ({} rows, format {}, task {})\n- test data: {test_desc}\n\
         - partition: `{}` over {} sites (sites under {} rows dropped); each site keeps {:.1}% of its rows for local validation\n\
         - local forests: {} trees each; centralized baseline: {} trees; default forest parameters otherwise\n",
        a.data.display(),
        data.x.n_rows(),
        data.schema.format.name(),
        task.name(),
        a.partition,
        a.sites,
        a.min_site_rows,
        100.0 * a.validation_fraction,
        a.trees_per_site,
        a.central_trees,
    );
    let config = serde_json::json!({
        "data": a.data.display().to_string(),
        "test": a.test.as_ref().map(|p| p.display().to_string()),
        "task": task.name(),
        "partition": a.partition,
        "sites": a.sites,
        "strategies": a.strategy,
        "seeds": seeds,
        "trees_per_site": a.trees_per_site,
        "central_trees": a.central_trees,
        "validation_fraction": a.validation_fraction,
        "min_site_rows": a.min_site_rows,
    });
    let spec = super::report::ReportSpec {
        title: format!("fedids simulate: {stem}, {}, {}", task.name(), a.partition),
        command: super::report::command_line(),
        setup_md,
        notes_md: String::new(),
        config,
        runs: &runs,
    };
    let summary = super::report::write(&dir, &spec)
        .with_context(|| format!("writing the report to {}", dir.display()))?;
    if a.json {
        crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&summary)?))?;
    } else {
        crate::ui::emit(&format!(
            "{}\n{}\nreport written to {}\n",
            fedids_report::partition_table(&runs[0].partition),
            fedids_report::markdown_table(&summary),
            dir.display()
        ))?;
    }
    Ok(())
}
