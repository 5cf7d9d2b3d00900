//! One federated run in one process: partition, local splits, local forests, scoring, every
//! merge strategy and both baselines, evaluated on a common test set.

use fedids_data::{Dataset, FeatureMatrix, FormatSpec};
use fedids_forest::{
    schema_difference, Criterion, Forest, ForestParams, MaxFeatures, Metrics, Sampling,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::FederationError;
use crate::merge::{merge, MergeStrategy, ScoreTable, SiteId, SiteModel};
use crate::partition::{partition, PartitionSpec, PartitionSummary};
use crate::refit::{leaf_counts, merge_experts, refit_sites, LeafCountTable};
use crate::split::{local_split, protocol_split, ProtocolSplitSummary};
use crate::support::{category_support, merge_support};
use fedids_rng::derive_seed;

/// Everything that determines a simulation run, together with the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulationConfig {
    /// How the training rows are dealt to sites.
    pub partition: PartitionSpec,
    /// Sites (ignored by `by-feature`).
    pub n_sites: usize,
    /// Sites with fewer rows are dropped (and listed in the report).
    pub min_site_rows: usize,
    /// Share of each site's rows kept for local validation, in `[0, 1)`.
    pub validation_fraction: f64,
    /// Local forest parameters; `n_trees` is the trees per site. The seed is not used: each site's
    /// forest seed is derived from [`SimulationConfig::seed`] and the site index.
    pub forest: ForestParams,
    /// Trees of the centralized baseline (same parameters otherwise).
    pub central_n_trees: usize,
    /// The strategies to run.
    pub strategies: Vec<MergeStrategy>,
    /// The run's seed: partition, local splits, forests and sampling all derive from it.
    pub seed: u64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            partition: PartitionSpec::Iid,
            n_sites: 3,
            min_site_rows: 10,
            validation_fraction: 0.125,
            forest: ForestParams {
                n_trees: 50,
                ..ForestParams::default()
            },
            central_n_trees: 100,
            strategies: Vec::new(),
            seed: 0,
        }
    }
}

/// Mean, minimum and maximum over sites.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Mean over sites.
    pub mean: f64,
    /// Lowest site.
    pub min: f64,
    /// Highest site.
    pub max: f64,
}

impl Spread {
    fn of(values: impl Iterator<Item = f64>) -> Spread {
        let v: Vec<f64> = values.collect();
        let n = v.len().max(1) as f64;
        Spread {
            mean: v.iter().sum::<f64>() / n,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// The local-only baseline: each site's own forest on the common test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalOnlySummary {
    /// Accuracy over sites.
    pub accuracy: Spread,
    /// Macro-F1 over sites.
    pub macro_f1: Spread,
    /// Weighted-F1 over sites.
    pub weighted_f1: Spread,
    /// Detection rate over sites.
    pub detection_rate: Spread,
    /// False-alarm rate over sites.
    pub false_alarm_rate: Spread,
}

/// One site of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteReport {
    /// The site's id (its index in the partition).
    pub site: SiteId,
    /// The site's name (`site-0`, or the feature value).
    pub name: String,
    /// Local training rows.
    pub n_train_rows: u64,
    /// Local validation rows (they never leave the site).
    pub n_validation_rows: u64,
    /// Trees of the local forest.
    pub n_trees: usize,
    /// The local forest on the common test set (the local-only baseline).
    pub test: Metrics,
}

/// One model on the common test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// `centralized`, or the strategy in its text form (`top-global:129:wa:wv`).
    pub name: String,
    /// Trees in the model.
    pub n_trees: usize,
    /// Trees taken from each site, in site order (empty for the centralized baseline).
    pub n_trees_per_site: Vec<usize>,
    /// Test-set metrics.
    pub metrics: Metrics,
}

/// Everything one simulation run measured. Serializable: the CLI writes it to results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulationReport {
    /// The run's seed.
    pub seed: u64,
    /// Rows per site per class (of the training data, before local splits).
    pub partition: PartitionSummary,
    /// Every kept site.
    pub sites: Vec<SiteReport>,
    /// Test rows evaluated.
    pub n_test_rows: u64,
    /// By feature: test rows whose value belongs to no kept site (not evaluated).
    pub n_test_rows_dropped: u64,
    /// One forest on the pooled local training rows of every site.
    pub centralized: ModelResult,
    /// Each site's own forest on the test set.
    pub local_only: LocalOnlySummary,
    /// One result per requested strategy, in the order requested.
    pub strategies: Vec<ModelResult>,
}

const STREAM_SITE_SPLIT: u64 = 10;
const STREAM_SITE_FOREST: u64 = 11;
const STREAM_CENTRAL_FOREST: u64 = 12;
const STREAM_MERGE: u64 = 13;

/// Pseudo-rows of a tree's own leaf probabilities in a leaf refit.
pub const REFIT_PRIOR_WEIGHT: f64 = 1.0;

/// A site's data, inside the simulation only (it never reaches a merge).
struct SiteData {
    name: String,
    /// Row indices of the site's local training rows (for pooling the centralized baseline).
    train_rows: Vec<usize>,
    /// The site's local training rows, held by the site: fitting, leaf counts and category
    /// support all read them.
    train_x: FeatureMatrix,
    train_y: Vec<u32>,
    valid_x: FeatureMatrix,
    valid_y: Vec<u32>,
}

/// Runs one seed of a federated simulation. Pure and deterministic: the report depends only on
/// the data and the configuration, whatever the thread count.
///
/// `train` is partitioned over the sites; each site splits its share into local training and
/// validation rows. `test` must share `train`'s schema; under `by-feature`, its rows whose value
/// of the column belongs to no kept site are not evaluated (counted in the report).
pub fn simulate(
    train: &Dataset,
    test: &Dataset,
    config: &SimulationConfig,
) -> Result<SimulationReport, FederationError> {
    if let Some(diff) = schema_difference(&train.schema, &test.schema) {
        return Err(FederationError::InvalidInput(format!(
            "the test set's schema differs from the training set's: {diff}"
        )));
    }
    let part = partition(
        &train.schema,
        &train.x,
        &train.y,
        &config.partition,
        config.n_sites,
        config.min_site_rows,
        config.seed,
    )?;
    let train_x = part.project(&train.x);
    let mut sites: Vec<SiteData> = Vec::with_capacity(part.sites.len());
    for (i, share) in part.sites.iter().enumerate() {
        let split = local_split(
            &train.y,
            &share.rows,
            config.validation_fraction,
            derive_seed(config.seed, STREAM_SITE_SPLIT, i as u64),
        )?;
        sites.push(SiteData {
            name: share.name.clone(),
            valid_x: train_x.select_rows(&split.validation),
            valid_y: split.validation.iter().map(|&r| train.y[r]).collect(),
            train_x: train_x.select_rows(&split.train),
            train_y: split.train.iter().map(|&r| train.y[r]).collect(),
            train_rows: split.train,
        });
    }

    // Local forests (each fit is parallel over trees).
    let mut models: Vec<SiteModel> = Vec::with_capacity(sites.len());
    for (i, s) in sites.iter().enumerate() {
        let params = ForestParams {
            seed: derive_seed(config.seed, STREAM_SITE_FOREST, i as u64),
            ..config.forest.clone()
        };
        let forest =
            Forest::fit(&s.train_x, &s.train_y, part.schema.clone(), &params, &|| ()).map_err(
                FederationError::forest(format!("training site '{}'", s.name)),
            )?;
        models.push(SiteModel {
            site: SiteId(i as u32),
            forest,
            n_train_rows: s.train_rows.len() as u64,
        });
    }

    // Leaf refit round (only if a strategy asks for it): every site returns per-leaf class
    // counts of its own training rows for every tree.
    let mut leaf_table = None;
    let refit_models = if config.strategies.iter().any(MergeStrategy::needs_refit) {
        let mut table = LeafCountTable::new();
        for (e, s) in sites.iter().enumerate() {
            for m in &models {
                table.insert(
                    models[e].site,
                    m.site,
                    leaf_counts(&m.forest, &s.train_x, &s.train_y)?,
                );
            }
        }
        let refit = refit_sites(&models, &table, REFIT_PRIOR_WEIGHT)?;
        leaf_table = Some(table);
        Some(refit)
    } else {
        None
    };

    // Scores: each site scores trees on its own validation rows.
    let cross = config
        .strategies
        .iter()
        .any(MergeStrategy::needs_cross_scores);
    let pairs: Vec<(usize, usize)> = (0..sites.len())
        .flat_map(|e| (0..sites.len()).map(move |o| (e, o)))
        .filter(|&(e, o)| cross || e == o)
        .collect();
    let score_all = |models: &[SiteModel], pairs: &[(usize, usize)]| {
        let scored: Vec<_> = pairs
            .par_iter()
            .map(|&(e, o)| {
                models[o]
                    .forest
                    .score_trees(&sites[e].valid_x, &sites[e].valid_y)
                    .map(|s| (e, o, s))
                    .map_err(FederationError::forest(format!(
                        "scoring the trees of '{}' at '{}'",
                        sites[o].name, sites[e].name
                    )))
            })
            .collect::<Result<_, _>>()?;
        let mut scores = ScoreTable::new();
        for (e, o, s) in scored {
            scores.insert(models[e].site, models[o].site, s);
        }
        Ok::<_, FederationError>(scores)
    };
    let scores = score_all(&models, &pairs)?;
    let all_pairs: Vec<(usize, usize)> = (0..sites.len())
        .flat_map(|e| (0..sites.len()).map(move |o| (e, o)))
        .collect();
    let refit_scores = match &refit_models {
        Some(m) => Some(score_all(m, &all_pairs)?),
        None => None,
    };

    // The common test set, as the sites' models read it.
    let (test_x, test_y, n_dropped) = match part.removed_feature {
        Some(f) => {
            let kept: Vec<f32> = part
                .sites
                .iter()
                .filter_map(|s| s.rows.first().map(|&r| train.x.get(r, f)))
                .collect();
            let rows: Vec<usize> = (0..test.y.len())
                .filter(|&r| kept.contains(&test.x.get(r, f)))
                .collect();
            let n_dropped = (test.y.len() - rows.len()) as u64;
            let x = test.x.select_rows(&rows).without_feature(f);
            let y = rows.iter().map(|&r| test.y[r]).collect();
            (x, y, n_dropped)
        }
        None => (test.x.clone(), test.y.clone(), 0),
    };
    let classes = &part.schema.classes;
    let evaluate = |pred: &[u32]| Metrics::compute(classes, &test_y, pred);

    // Centralized baseline: the pooled local training rows.
    let mut pooled: Vec<usize> = sites.iter().flat_map(|s| s.train_rows.clone()).collect();
    pooled.sort_unstable();
    let central_params = ForestParams {
        n_trees: config.central_n_trees,
        seed: derive_seed(config.seed, STREAM_CENTRAL_FOREST, 0),
        ..config.forest.clone()
    };
    let central = Forest::fit(
        &train_x.select_rows(&pooled),
        &pooled.iter().map(|&r| train.y[r]).collect::<Vec<_>>(),
        part.schema.clone(),
        &central_params,
        &|| (),
    )
    .map_err(FederationError::forest("training the centralized baseline"))?;
    let central_pred = central
        .predict(&test_x)
        .map_err(FederationError::forest("testing the centralized baseline"))?;
    let centralized = ModelResult {
        name: "centralized".to_string(),
        n_trees: central.trees().len(),
        n_trees_per_site: Vec::new(),
        metrics: evaluate(&central_pred),
    };

    // Local-only baseline.
    let mut site_reports = Vec::with_capacity(sites.len());
    for (s, m) in sites.iter().zip(&models) {
        let pred = m
            .forest
            .predict(&test_x)
            .map_err(FederationError::forest(format!(
                "testing site '{}'",
                s.name
            )))?;
        site_reports.push(SiteReport {
            site: m.site,
            name: s.name.clone(),
            n_train_rows: s.train_rows.len() as u64,
            n_validation_rows: s.valid_y.len() as u64,
            n_trees: m.forest.trees().len(),
            test: evaluate(&pred),
        });
    }
    let spread = |f: fn(&Metrics) -> f64| Spread::of(site_reports.iter().map(|s| f(&s.test)));
    let local_only = LocalOnlySummary {
        accuracy: spread(|m| m.accuracy),
        macro_f1: spread(|m| m.macro_f1),
        weighted_f1: spread(|m| m.weighted_f1),
        detection_rate: spread(|m| m.detection_rate),
        false_alarm_rate: spread(|m| m.false_alarm_rate),
    };

    // Strategies.
    let mut results = Vec::with_capacity(config.strategies.len());
    for strategy in &config.strategies {
        let (offered, offered_scores) = match (&refit_models, &refit_scores) {
            (Some(m), Some(s)) if strategy.needs_refit() => (m, s),
            _ => (&models, &scores),
        };
        let model = match (strategy, &leaf_table) {
            (MergeStrategy::Experts, Some(table)) => merge_experts(&models, table)?,
            (MergeStrategy::Support, _) => {
                // Each site computes its category support on its own training rows.
                let supports = sites
                    .iter()
                    .zip(&models)
                    .map(|(s, m)| {
                        category_support(m.forest.schema(), &s.train_x).map(|sup| (m.site, sup))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                merge_support(&models, &supports)?
            }
            _ => merge(
                offered,
                offered_scores,
                strategy,
                derive_seed(config.seed, STREAM_MERGE, 0),
            )?,
        };
        let pred = model.predict(&test_x)?;
        let mut per_site = vec![0usize; models.len()];
        for src in model.sources() {
            if let Some(n) = per_site.get_mut(src.site.0 as usize) {
                *n += 1;
            }
        }
        results.push(ModelResult {
            name: strategy.to_string(),
            n_trees: model.n_trees(),
            n_trees_per_site: per_site,
            metrics: evaluate(&pred),
        });
    }

    Ok(SimulationReport {
        seed: config.seed,
        partition: part.summary(&train.y),
        sites: site_reports,
        n_test_rows: test_y.len() as u64,
        n_test_rows_dropped: n_dropped,
        centralized,
        local_only,
        strategies: results,
    })
}

/// The published protocol (Markovic et al., AIAI 2022 / Applied Intelligence 2024) for one
/// dataset: drop classes with `min_class_rows` rows or fewer, one seeded stratified random
/// 70/10/20 train/validation/test split, one site per value of `site_feature` (removed from the
/// inputs), local forests of unpruned trees each grown on a random 70% of the site's rows without
/// replacement with every feature considered at each split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolConfig {
    /// The feature that defines sites (`protocol_type`, `service`).
    pub site_feature: String,
    /// Classes with this many rows or fewer are dropped (800 in the paper).
    pub min_class_rows: u64,
    /// Sites with fewer rows (training plus validation) are dropped.
    pub min_site_rows: usize,
    /// Trees per site (65 in the paper's NSL-KDD setting).
    pub n_trees_per_site: usize,
    /// Trees of the centralized baseline.
    pub central_n_trees: usize,
    /// Split criterion of every forest.
    pub criterion: Criterion,
    /// The strategies to run.
    pub strategies: Vec<MergeStrategy>,
    /// The repetition's seed.
    pub seed: u64,
}

/// Test share of the protocol split (the 20 of 70/10/20).
pub const PROTOCOL_TEST_FRACTION: f64 = 0.2;
/// Validation share of each site's rows (the 10 of 70/10/20: 10/80).
pub const PROTOCOL_VALIDATION_FRACTION: f64 = 0.125;

impl ProtocolConfig {
    /// The paper's setting for a built-in format: NSL-KDD and KDD99 by `protocol_type`, UNSW-NB15
    /// by `service` (sites smaller than 1000 rows dropped, which keeps `-`, `dns`, `ftp`,
    /// `ftp-data`, `http` and `smtp`). 65 trees per site and the published strategies with
    /// `K = 129` (top-per-site `N = K / 3`). `None` for other formats.
    pub fn for_format(format: &FormatSpec, seed: u64) -> Option<ProtocolConfig> {
        let (site_feature, min_site_rows) = match format {
            FormatSpec::NslKdd | FormatSpec::Kdd99 => ("protocol_type", 100),
            FormatSpec::UnswNb15 => ("service", 1000),
            _ => return None,
        };
        Some(ProtocolConfig {
            site_feature: site_feature.to_string(),
            min_class_rows: 800,
            min_site_rows,
            n_trees_per_site: 65,
            central_n_trees: 100,
            criterion: Criterion::Gini,
            strategies: published_strategies(129, 3),
            seed,
        })
    }

    /// The simulation this protocol runs on the protocol's training part.
    pub fn simulation_config(&self) -> SimulationConfig {
        SimulationConfig {
            partition: PartitionSpec::ByFeature {
                column: self.site_feature.clone(),
            },
            n_sites: 0,
            min_site_rows: self.min_site_rows,
            validation_fraction: PROTOCOL_VALIDATION_FRACTION,
            forest: ForestParams {
                n_trees: self.n_trees_per_site,
                criterion: self.criterion,
                max_depth: None,
                min_samples_split: 2,
                min_samples_leaf: 1,
                max_features: MaxFeatures::All,
                sampling: Sampling::Subsample(0.7),
                ..ForestParams::default()
            },
            central_n_trees: self.central_n_trees,
            strategies: self.strategies.clone(),
            seed: self.seed,
        }
    }
}

/// The strategies of the published comparison plus `cross-site`: `all`, `top-per-site:K/n_sites`,
/// `top-global:K` by A and WA with SV and WV, and `cross-site:K` (WV and soft, without and with
/// leaf refit).
pub fn published_strategies(k: usize, n_sites: usize) -> Vec<MergeStrategy> {
    use crate::global::Voting::{Simple, Soft, Weighted};
    use crate::merge::Metric::{Accuracy, WeightedAccuracy};
    let n = (k / n_sites.max(1)).max(1);
    let mut out = vec![MergeStrategy::All { voting: Soft }];
    for voting in [Simple, Weighted] {
        out.push(MergeStrategy::TopPerSite {
            n,
            metric: Accuracy,
            voting,
        });
    }
    for metric in [Accuracy, WeightedAccuracy] {
        for voting in [Simple, Weighted] {
            out.push(MergeStrategy::TopGlobal { k, metric, voting });
        }
    }
    for refit in [false, true] {
        for voting in [Weighted, Soft] {
            out.push(MergeStrategy::CrossSite {
                k,
                metric: Accuracy,
                voting,
                refit,
            });
        }
    }
    out.push(MergeStrategy::Experts);
    out.push(MergeStrategy::Support);
    out
}

/// A protocol run: what the split dropped, and the simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolReport {
    /// Classes kept and dropped, rows per part.
    pub split: ProtocolSplitSummary,
    /// The simulation on the split.
    pub simulation: SimulationReport,
}

/// Runs the published protocol on one dataset (one repetition, `config.seed`).
pub fn run_protocol(
    data: &Dataset,
    config: &ProtocolConfig,
) -> Result<ProtocolReport, FederationError> {
    let (train, test, split) = protocol_split(
        data,
        PROTOCOL_TEST_FRACTION,
        config.min_class_rows,
        config.seed,
    )?;
    let simulation = simulate(&train, &test, &config.simulation_config())?;
    Ok(ProtocolReport { split, simulation })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::{binary_schema, two_blobs};
    use fedids_data::LoadReport;

    fn dataset(n: usize) -> Dataset {
        let (x, y) = two_blobs(n, 3);
        Dataset {
            schema: binary_schema(3),
            x,
            y,
            report: LoadReport::default(),
        }
    }

    #[test]
    fn simulate_runs_every_strategy_deterministically() {
        let (train, test) = (dataset(300), dataset(101));
        let mut strategies = published_strategies(6, 3);
        strategies.push("weighted:5".parse().unwrap());
        let config = SimulationConfig {
            partition: "dirichlet:1".parse().unwrap(),
            n_sites: 3,
            forest: ForestParams {
                n_trees: 4,
                max_depth: Some(4),
                ..ForestParams::default()
            },
            central_n_trees: 8,
            strategies,
            seed: 5,
            ..SimulationConfig::default()
        };
        let report = simulate(&train, &test, &config).unwrap();
        assert_eq!(report.strategies.len(), config.strategies.len());
        assert_eq!(report.n_test_rows, 101);
        assert!(report.centralized.metrics.accuracy > 0.8);
        for r in &report.strategies {
            assert_eq!(
                r.n_trees_per_site.iter().sum::<usize>(),
                r.n_trees,
                "{}",
                r.name
            );
        }
        let experts = report
            .strategies
            .iter()
            .find(|r| r.name == "experts")
            .unwrap();
        assert_eq!(experts.n_trees, 4 * report.sites.len());
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"centralized\""));
        assert_eq!(simulate(&train, &test, &config).unwrap(), report);
    }

    #[test]
    fn protocol_config_matches_the_paper() {
        let c = ProtocolConfig::for_format(&FormatSpec::NslKdd, 0).unwrap();
        let s = c.simulation_config();
        assert_eq!(s.partition.to_string(), "by-feature:protocol_type");
        assert_eq!(s.forest.n_trees, 65);
        assert_eq!(s.forest.max_features, MaxFeatures::All);
        assert_eq!(s.forest.sampling, Sampling::Subsample(0.7));
        assert_eq!(s.forest.max_depth, None);
        let names: Vec<String> = c.strategies.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "all",
                "top-per-site:43",
                "top-per-site:43:wv",
                "top-global:129",
                "top-global:129:wv",
                "top-global:129:wa",
                "top-global:129:wa:wv",
                "cross-site:129",
                "cross-site:129:soft",
                "cross-site:129:refit",
                "cross-site:129:soft:refit",
                "experts",
                "support",
            ]
        );
        assert!(ProtocolConfig::for_format(
            &FormatSpec::Csv(fedids_data::CsvSchema {
                label: "l".into(),
                benign: vec!["b".into()],
                categorical: vec![],
                ignore: vec![],
                non_finite: Default::default(),
            }),
            0
        )
        .is_none());
    }
}
