//! Federated leaf refit: a tree grown at one site gets leaf probabilities from every site's
//! training rows. Sites return only per-leaf class counts of their own rows for each candidate
//! tree; no row leaves a site.

use std::collections::BTreeMap;

use fedids_data::FeatureMatrix;
use fedids_forest::{model, Forest};
use rayon::prelude::*;
use serde_json::Value;

use crate::error::FederationError;
use crate::global::GlobalModel;
use crate::merge::{SiteId, SiteModel, TreeRef};

/// Per tree, the class counts of a site's rows in each leaf: `counts[tree][leaf * n_classes +
/// class]`.
pub type LeafCounts = Vec<Vec<u64>>;

/// Per-leaf class counts that sites computed for other sites' forests: `(evaluator, owner)` maps
/// to the evaluator's [`LeafCounts`] for the owner's forest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeafCountTable {
    counts: BTreeMap<(SiteId, SiteId), LeafCounts>,
}

impl LeafCountTable {
    /// An empty table.
    pub fn new() -> Self {
        LeafCountTable::default()
    }

    /// Records the counts `evaluator` computed for the forest of `owner`.
    pub fn insert(&mut self, evaluator: SiteId, owner: SiteId, counts: LeafCounts) {
        self.counts.insert((evaluator, owner), counts);
    }
}

/// The class counts of the rows (`x`, `y`) in every leaf of every tree of `forest`.
pub fn leaf_counts(
    forest: &Forest,
    x: &FeatureMatrix,
    y: &[u32],
) -> Result<LeafCounts, FederationError> {
    let nf = forest.schema().features.len();
    let c = forest.n_classes();
    if x.n_features() != nf || x.n_rows() != y.len() {
        return Err(FederationError::InvalidInput(format!(
            "leaf counts need {nf} features and one label per row, found {} features, {} rows, {} labels",
            x.n_features(),
            x.n_rows(),
            y.len()
        )));
    }
    if let Some(&bad) = y.iter().find(|&&l| l as usize >= c) {
        return Err(FederationError::InvalidInput(format!(
            "label {bad} is not one of the model's {c} classes"
        )));
    }
    let rows = x.to_row_major();
    Ok(forest
        .trees()
        .par_iter()
        .map(|t| {
            let mut counts = vec![0u64; t.n_leaves() * c];
            for (row, &label) in rows.chunks_exact(nf.max(1)).zip(y) {
                counts[t.leaf_of(row) * c + label as usize] += 1;
            }
            counts
        })
        .collect())
}

/// Every site's forest with leaf probabilities refit on the pooled counts of every site that
/// reported counts for it: `p = (counts + prior_weight * p_own) / (n + prior_weight)`, so a leaf
/// no reported row reaches keeps its own probabilities. Tree structure is unchanged.
pub fn refit_sites(
    sites: &[SiteModel],
    counts: &LeafCountTable,
    prior_weight: f64,
) -> Result<Vec<SiteModel>, FederationError> {
    if !(prior_weight.is_finite() && prior_weight >= 0.0) {
        return Err(FederationError::InvalidInput(format!(
            "the leaf prior weight must be finite and non-negative, found {prior_weight}"
        )));
    }
    sites
        .iter()
        .map(|s| {
            let reports: Vec<&LeafCounts> = counts
                .counts
                .iter()
                .filter(|((_, owner), _)| *owner == s.site)
                .map(|(_, c)| c)
                .collect();
            let forest = refit_forest(&s.forest, &reports, prior_weight)?;
            Ok(SiteModel {
                site: s.site,
                forest,
                n_train_rows: s.n_train_rows,
            })
        })
        .collect()
}

fn layout_error(what: &str) -> FederationError {
    FederationError::InvalidInput(format!(
        "cannot refit leaves: the forest's serialized layout lacks {what}"
    ))
}

/// `forest` with refit leaves. Goes through the forest's serde form (the forest crate has no
/// leaf-value setter yet) and validates the result like a decoded model file.
fn refit_forest(
    forest: &Forest,
    reports: &[&LeafCounts],
    prior_weight: f64,
) -> Result<Forest, FederationError> {
    let c = forest.n_classes();
    let n_trees = forest.trees().len();
    for r in reports {
        if r.len() != n_trees {
            return Err(FederationError::InvalidInput(format!(
                "leaf counts for {} trees, the forest has {n_trees}",
                r.len()
            )));
        }
    }
    let mut value = serde_json::to_value(forest).map_err(|_| layout_error("a json form"))?;
    let trees = value
        .get_mut("trees")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| layout_error("'trees'"))?;
    for (t, tree) in trees.iter_mut().enumerate() {
        let leaves = tree
            .get_mut("leaf_values")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| layout_error("'leaf_values'"))?;
        let own: Vec<f64> = leaves.iter().filter_map(Value::as_f64).collect();
        if own.len() != leaves.len() {
            return Err(layout_error("numeric leaf values"));
        }
        let mut pooled = vec![0u64; own.len()];
        for r in reports {
            if r[t].len() != own.len() {
                return Err(FederationError::InvalidInput(format!(
                    "tree {t}: leaf counts for {} leaf-class cells, the tree has {}",
                    r[t].len(),
                    own.len()
                )));
            }
            for (p, &k) in pooled.iter_mut().zip(&r[t]) {
                *p += k;
            }
        }
        let mut refit = Vec::with_capacity(own.len());
        for (own_leaf, counts) in own.chunks(c.max(1)).zip(pooled.chunks(c.max(1))) {
            let n: u64 = counts.iter().sum();
            let denom = n as f64 + prior_weight;
            for (&p, &k) in own_leaf.iter().zip(counts) {
                let v = if denom > 0.0 {
                    (k as f64 + prior_weight * p) / denom
                } else {
                    p
                };
                refit.push(Value::from(v as f32));
            }
        }
        *leaves = refit;
    }
    let refit: Forest = serde_json::from_value(value).map_err(|_| layout_error("a json form"))?;
    model::validate(&refit).map_err(FederationError::forest("refitting leaves"))?;
    Ok(refit)
}

/// A mixture of site experts (the `experts` strategy): every tree of every site, each site's
/// trees forming that site's expert, gated per row by the share of each site's training rows in
/// the row's leaves (see [`Gating`]). `counts` must hold, for every pair of sites, the evaluator's
/// per-leaf class counts of its training rows for the owner's forest. Identical trees are not
/// deduplicated here: the same tree at two sites speaks for two experts.
pub fn merge_experts(
    sites: &[SiteModel],
    counts: &LeafCountTable,
) -> Result<GlobalModel, FederationError> {
    let sorted = crate::merge::sites_by_id(sites)?;
    let e = sorted.len();
    let mut expert_of_tree = Vec::new();
    let mut shares = Vec::new();
    let mut sources = Vec::new();
    for (pos, owner) in sorted.iter().enumerate() {
        let c = owner.forest.n_classes().max(1);
        let reports: Vec<&LeafCounts> = sorted
            .iter()
            .map(|ev| {
                counts.counts.get(&(ev.site, owner.site)).ok_or_else(|| {
                    FederationError::InvalidInput(format!(
                        "experts needs the leaf counts of {} for the forest of {}, found none",
                        ev.site, owner.site
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        for (t, tree) in owner.forest.trees().iter().enumerate() {
            let n_leaves = tree.n_leaves();
            let mut share = vec![0f32; n_leaves * e];
            for leaf in 0..n_leaves {
                let mut n = vec![0u64; e];
                for (s, r) in reports.iter().enumerate() {
                    let cells = r
                        .get(t)
                        .and_then(|v| v.get(leaf * c..(leaf + 1) * c))
                        .ok_or_else(|| {
                            FederationError::InvalidInput(format!(
                                "leaf counts of {} for tree {t} of {} are too short",
                                sorted[s].site, owner.site
                            ))
                        })?;
                    n[s] = cells.iter().sum();
                }
                let total: u64 = n.iter().sum();
                for (s, &k) in n.iter().enumerate() {
                    share[leaf * e + s] = if total == 0 {
                        1.0 / e as f32
                    } else {
                        k as f32 / total as f32
                    };
                }
            }
            expert_of_tree.push(pos);
            shares.push(share);
            sources.push(TreeRef {
                site: owner.site,
                tree_idx: t,
            });
        }
    }
    let all: Vec<Vec<usize>> = sorted
        .iter()
        .map(|s| (0..s.forest.trees().len()).collect())
        .collect();
    let picks: Vec<(&Forest, &[usize])> = sorted
        .iter()
        .zip(&all)
        .map(|(s, idxs)| (&s.forest, idxs.as_slice()))
        .collect();
    let forest =
        Forest::from_trees(&picks).map_err(FederationError::forest("merging site experts"))?;
    GlobalModel::with_gating(forest, sources, e, expert_of_tree, shares)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::{binary_schema, two_blobs};
    use fedids_forest::ForestParams;

    #[test]
    fn refit_with_no_counts_is_the_identity_and_counts_move_leaves() {
        let (x, y) = two_blobs(40, 3);
        let params = ForestParams {
            n_trees: 3,
            ..ForestParams::default()
        };
        let forest = Forest::fit(&x, &y, binary_schema(3), &params, &|| ()).unwrap();
        let same = refit_forest(&forest, &[], 1.0).unwrap();
        assert_eq!(same, forest);
        // Every row relabelled to the other class: refit leaves now predict the flipped labels.
        let flipped: Vec<u32> = y.iter().map(|&l| 1 - l).collect();
        let counts = leaf_counts(&forest, &x, &flipped).unwrap();
        assert_eq!(counts[0].iter().sum::<u64>(), x.n_rows() as u64);
        let moved = refit_forest(&forest, &[&counts], 0.0).unwrap();
        let pred = moved.predict(&x).unwrap();
        let agree = pred.iter().zip(&flipped).filter(|(a, b)| a == b).count();
        assert!(
            agree * 10 >= flipped.len() * 9,
            "{agree} of {}",
            flipped.len()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..Default::default() })]

        #[test]
        fn experts_keep_every_offered_tree_and_ignore_site_order(
            n_sites in 1usize..4,
            seed in 0u64..1000,
            rotate in 0usize..4,
        ) {
            let (x, y) = two_blobs(30 * n_sites, 2);
            let mut models = Vec::new();
            let mut data = Vec::new();
            for s in 0..n_sites {
                let rows: Vec<usize> = (s * 30..(s + 1) * 30).collect();
                let sx = x.select_rows(&rows);
                let sy: Vec<u32> = rows.iter().map(|&r| y[r]).collect();
                let params = ForestParams { n_trees: 3, max_depth: Some(3), seed: seed + s as u64, ..ForestParams::default() };
                let forest = Forest::fit(&sx, &sy, binary_schema(2), &params, &|| ()).unwrap();
                models.push(SiteModel { site: crate::SiteId(s as u32), forest, n_train_rows: 30 });
                data.push((sx, sy));
            }
            let mut table = LeafCountTable::new();
            for (e, (sx, sy)) in data.iter().enumerate() {
                for m in &models {
                    table.insert(models[e].site, m.site, leaf_counts(&m.forest, sx, sy).unwrap());
                }
            }
            let global = merge_experts(&models, &table).unwrap();
            proptest::prop_assert_eq!(global.n_trees(), 3 * n_sites);
            for (tree, src) in global.forest().trees().iter().zip(global.sources()) {
                let owner = models.iter().find(|m| m.site == src.site).unwrap();
                proptest::prop_assert_eq!(&owner.forest.trees()[src.tree_idx], tree);
            }
            let mut permuted = models.clone();
            permuted.rotate_left(rotate % n_sites);
            permuted.reverse();
            let again = merge_experts(&permuted, &table).unwrap();
            proptest::prop_assert_eq!(&again, &global);
            let (tx, _) = two_blobs(50, 2);
            proptest::prop_assert_eq!(again.predict(&tx).unwrap(), global.predict(&tx).unwrap());
        }
    }
}
