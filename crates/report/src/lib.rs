//! Reports for fedids experiments.
//!
//! This crate turns the [`SimulationReport`]s of several seeds into a [`Summary`] (mean and
//! standard deviation per model and metric). It renders a summary as markdown
//! ([`markdown_table`]) and as SVG plots: a score per model ([`svg_scores`]), per-class F1
//! ([`svg_class_f1`]) and the site-by-class partition ([`svg_partition`]).
//!
//! Everything returns strings: the crate opens no file, so reports are testable byte for byte.
//! The binary decides where they are written. It must not know about the network, the ledger or
//! how simulations run.

#![deny(missing_docs)]

mod svg;

use fedids_federation::{PartitionSummary, SimulationReport};
use serde::{Deserialize, Serialize};

pub use svg::{svg_class_f1, svg_partition, svg_scores};

/// Mean and sample standard deviation of a figure over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean over seeds.
    pub mean: f64,
    /// Sample standard deviation over seeds (0 for a single seed).
    pub std: f64,
}

impl MeanStd {
    /// Mean and sample standard deviation of `values` (zeros when empty).
    pub fn of(values: &[f64]) -> MeanStd {
        let n = values.len();
        if n == 0 {
            return MeanStd {
                mean: 0.0,
                std: 0.0,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        MeanStd { mean, std }
    }
}

/// How one model did over all seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// `centralized`, `local-only (mean of sites)`, or the strategy (`cross-site:129`).
    pub name: String,
    /// Whether the model is a baseline rather than a federated strategy.
    pub baseline: bool,
    /// Mean number of trees.
    pub n_trees: f64,
    /// Accuracy on the test set.
    pub accuracy: MeanStd,
    /// Macro-F1 on the test set.
    pub macro_f1: MeanStd,
    /// Weighted-F1 on the test set.
    pub weighted_f1: MeanStd,
    /// Attack rows flagged as attacks.
    pub detection_rate: MeanStd,
    /// Benign rows flagged as attacks.
    pub false_alarm_rate: MeanStd,
    /// F1 of each class (empty for the local-only baseline, which reports means over sites).
    pub class_f1: Vec<MeanStd>,
}

/// Every model of a set of runs, baselines first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The seeds summarised.
    pub seeds: Vec<u64>,
    /// Class names.
    pub classes: Vec<String>,
    /// Centralized, local-only (mean, worst and best site), then each strategy in request order.
    pub models: Vec<ModelSummary>,
    /// The best federated strategy by mean accuracy (ties: the first requested).
    pub best_by_accuracy: Option<String>,
    /// The best federated strategy by mean macro-F1.
    pub best_by_macro_f1: Option<String>,
}

/// Summarises runs of the same configuration over several seeds. The runs must request the same
/// strategies in the same order; `None` if `runs` is empty.
pub fn summarize(runs: &[SimulationReport]) -> Option<Summary> {
    let first = runs.first()?;
    let classes = first.partition.classes.clone();
    let collect = |f: &dyn Fn(&SimulationReport) -> f64| -> MeanStd {
        MeanStd::of(&runs.iter().map(f).collect::<Vec<_>>())
    };
    let class_f1 = |pick: &dyn Fn(&SimulationReport) -> &fedids_forest::Metrics| -> Vec<MeanStd> {
        (0..classes.len())
            .map(|c| {
                MeanStd::of(
                    &runs
                        .iter()
                        .map(|r| pick(r).per_class.get(c).map_or(0.0, |m| m.f1))
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    };
    let mut models = vec![ModelSummary {
        name: "centralized".into(),
        baseline: true,
        n_trees: collect(&|r| r.centralized.n_trees as f64).mean,
        accuracy: collect(&|r| r.centralized.metrics.accuracy),
        macro_f1: collect(&|r| r.centralized.metrics.macro_f1),
        weighted_f1: collect(&|r| r.centralized.metrics.weighted_f1),
        detection_rate: collect(&|r| r.centralized.metrics.detection_rate),
        false_alarm_rate: collect(&|r| r.centralized.metrics.false_alarm_rate),
        class_f1: class_f1(&|r| &r.centralized.metrics),
    }];
    type Pick = fn(&fedids_federation::Spread) -> f64;
    for (label, pick) in [
        ("local-only (mean of sites)", (|s| s.mean) as Pick),
        ("local-only (worst site)", (|s| s.min) as Pick),
        ("local-only (best site)", (|s| s.max) as Pick),
    ] {
        models.push(ModelSummary {
            name: label.into(),
            baseline: true,
            n_trees: collect(&|r| {
                r.sites.iter().map(|s| s.n_trees as f64).sum::<f64>() / r.sites.len().max(1) as f64
            })
            .mean,
            accuracy: collect(&|r| pick(&r.local_only.accuracy)),
            macro_f1: collect(&|r| pick(&r.local_only.macro_f1)),
            weighted_f1: collect(&|r| pick(&r.local_only.weighted_f1)),
            detection_rate: collect(&|r| pick(&r.local_only.detection_rate)),
            false_alarm_rate: collect(&|r| pick(&r.local_only.false_alarm_rate)),
            class_f1: Vec::new(),
        });
    }
    for (i, s) in first.strategies.iter().enumerate() {
        fn nth(r: &SimulationReport, i: usize) -> &fedids_forest::Metrics {
            &r.strategies.get(i).unwrap_or(&r.centralized).metrics
        }
        models.push(ModelSummary {
            name: s.name.clone(),
            baseline: false,
            n_trees: collect(&|r| r.strategies.get(i).map_or(0.0, |x| x.n_trees as f64)).mean,
            accuracy: collect(&|r| nth(r, i).accuracy),
            macro_f1: collect(&|r| nth(r, i).macro_f1),
            weighted_f1: collect(&|r| nth(r, i).weighted_f1),
            detection_rate: collect(&|r| nth(r, i).detection_rate),
            false_alarm_rate: collect(&|r| nth(r, i).false_alarm_rate),
            class_f1: class_f1(&|r| nth(r, i)),
        });
    }
    let best = |key: fn(&ModelSummary) -> f64| {
        models
            .iter()
            .filter(|m| !m.baseline)
            .fold(None::<&ModelSummary>, |best, m| match best {
                Some(b) if key(b) >= key(m) => Some(b),
                _ => Some(m),
            })
            .map(|m| m.name.clone())
    };
    Some(Summary {
        seeds: runs.iter().map(|r| r.seed).collect(),
        best_by_accuracy: best(|m| m.accuracy.mean),
        best_by_macro_f1: best(|m| m.macro_f1.mean),
        classes,
        models,
    })
}

fn pct(m: MeanStd, with_std: bool) -> String {
    if with_std {
        format!("{:.2} ± {:.2}", 100.0 * m.mean, 100.0 * m.std)
    } else {
        format!("{:.2}", 100.0 * m.mean)
    }
}

/// The summary as a markdown table (figures in percent, mean ± std over seeds).
pub fn markdown_table(summary: &Summary) -> String {
    let with_std = summary.seeds.len() > 1;
    let mut s = String::from(
        "| model | trees | accuracy | macro-F1 | weighted-F1 | detection rate | false-alarm rate |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for m in &summary.models {
        let name = if Some(&m.name) == summary.best_by_accuracy.as_ref() {
            format!("**{}** (best accuracy)", m.name)
        } else {
            m.name.clone()
        };
        s.push_str(&format!(
            "| {name} | {:.0} | {} | {} | {} | {} | {} |\n",
            m.n_trees,
            pct(m.accuracy, with_std),
            pct(m.macro_f1, with_std),
            pct(m.weighted_f1, with_std),
            pct(m.detection_rate, with_std),
            pct(m.false_alarm_rate, with_std),
        ));
    }
    s
}

/// Rows per site per class, as a markdown table.
pub fn partition_table(p: &PartitionSummary) -> String {
    let mut s = format!("| site | rows | {} |\n", p.classes.join(" | "));
    s.push_str(&format!(
        "| --- | ---: |{}\n",
        " ---: |".repeat(p.classes.len())
    ));
    for site in &p.sites {
        let counts: Vec<String> = site.class_counts.iter().map(|c| c.to_string()).collect();
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            site.name,
            site.n_rows,
            counts.join(" | ")
        ));
    }
    for site in &p.dropped {
        let counts: Vec<String> = site.class_counts.iter().map(|c| c.to_string()).collect();
        s.push_str(&format!(
            "| {} (dropped: too small) | {} | {} |\n",
            site.name,
            site.n_rows,
            counts.join(" | ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedids_data::{
        Dataset, Feature, FeatureKind, FeatureMatrix, FormatSpec, LoadReport, Schema, Task,
    };
    use fedids_federation::{simulate, SimulationConfig};
    use fedids_forest::ForestParams;

    fn dataset(n: usize, seed: u64) -> Dataset {
        let mut s = seed;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as f32 / (1u64 << 31) as f32
        };
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let (a, b) = (next(), next());
            rows.extend([a, b]);
            y.push(u32::from(a + 0.3 * b > 0.6) + u32::from(a > 0.9));
        }
        Dataset {
            schema: Schema {
                format: FormatSpec::NslKdd,
                task: Task::Multiclass,
                features: ["a", "b"]
                    .iter()
                    .map(|n| Feature {
                        name: n.to_string(),
                        kind: FeatureKind::Numeric,
                    })
                    .collect(),
                classes: vec!["normal".into(), "<dos>".into(), "probe".into()],
            },
            x: FeatureMatrix::from_rows(n, 2, &rows),
            y,
            report: LoadReport::default(),
        }
    }

    fn runs(seeds: &[u64]) -> Vec<SimulationReport> {
        let (train, test) = (dataset(600, 1), dataset(200, 2));
        seeds
            .iter()
            .map(|&seed| {
                let cfg = SimulationConfig {
                    n_sites: 2,
                    forest: ForestParams {
                        n_trees: 4,
                        ..ForestParams::default()
                    },
                    central_n_trees: 4,
                    strategies: vec!["all".parse().unwrap(), "top-global:4".parse().unwrap()],
                    seed,
                    ..SimulationConfig::default()
                };
                simulate(&train, &test, &cfg).unwrap()
            })
            .collect()
    }

    #[test]
    fn mean_and_sample_std() {
        let m = MeanStd::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.mean, 2.5);
        assert!((m.std - 1.2909944487358056).abs() < 1e-12);
        assert_eq!(
            MeanStd::of(&[0.7]),
            MeanStd {
                mean: 0.7,
                std: 0.0
            }
        );
        assert_eq!(
            MeanStd::of(&[]),
            MeanStd {
                mean: 0.0,
                std: 0.0
            }
        );
    }

    #[test]
    fn summary_averages_the_runs() {
        let runs = runs(&[0, 1, 2]);
        let s = summarize(&runs).unwrap();
        assert_eq!(s.seeds, vec![0, 1, 2]);
        let names: Vec<&str> = s.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "centralized",
                "local-only (mean of sites)",
                "local-only (worst site)",
                "local-only (best site)",
                "all",
                "top-global:4"
            ]
        );
        let accs: Vec<f64> = runs
            .iter()
            .map(|r| r.strategies[1].metrics.accuracy)
            .collect();
        assert_eq!(s.models[5].accuracy, MeanStd::of(&accs));
        let worst: Vec<f64> = runs.iter().map(|r| r.local_only.accuracy.min).collect();
        assert_eq!(s.models[2].accuracy, MeanStd::of(&worst));
        assert_eq!(s.models[0].class_f1.len(), 3);
        assert!(s.best_by_accuracy.is_some());
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn markdown_and_svg_are_complete_and_escaped() {
        let runs = runs(&[0]);
        let s = summarize(&runs).unwrap();
        let table = markdown_table(&s);
        assert_eq!(table.lines().count(), 2 + s.models.len());
        assert!(!table.contains('±'), "no std column for a single seed");
        let two = summarize(&self::runs(&[0, 1])).unwrap();
        assert!(markdown_table(&two).contains('±'));
        let p = partition_table(&runs[0].partition);
        assert!(p.starts_with("| site | rows | normal | <dos> | probe |"));
        for svg in [
            svg_scores(&s, "a & b"),
            svg_class_f1(&s, "t"),
            svg_partition(&runs[0].partition, "t"),
        ] {
            assert!(
                svg.starts_with("<svg ") && svg.ends_with("</svg>\n"),
                "{svg}"
            );
            assert!(!svg.contains("<dos>"), "labels are escaped");
        }
        assert!(svg_scores(&s, "a & b").contains("a &amp; b"));
        assert!(svg_class_f1(&s, "t").contains("&lt;dos&gt;"));
    }
}
