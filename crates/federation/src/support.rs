//! Support gating (the `support` strategy): each site shares which values of each categorical
//! feature occur in its training rows, and a row is scored only by the trees of the sites whose
//! support covers every categorical value of the row.
//!
//! What crosses the site boundary is one flag per category per site: coarse metadata, already
//! implied by agreeing on a shared schema (whose dictionaries are the union of the sites' values).
//! No rows, scores of rows or per-leaf counts are shared.

use fedids_data::{FeatureKind, FeatureMatrix, Schema};
use fedids_forest::Forest;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::FederationError;
use crate::global::GlobalModel;
use crate::merge::{SiteId, SiteModel, TreeRef};

/// Which codes of each categorical feature occur in a site's training rows.
///
/// Invariant: `seen[f]` is empty for a numeric feature and holds `categories.len() + 1` flags
/// (the unknown code included) for a categorical one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategorySupport {
    seen: Vec<Vec<bool>>,
}

impl CategorySupport {
    /// Whether every categorical value of `row` occurs in the support. A code outside the
    /// dictionary is never covered.
    pub fn covers(&self, row: &[f32]) -> bool {
        self.seen.iter().zip(row).all(|(flags, &v)| {
            flags.is_empty() || (v >= 0.0 && flags.get(v as usize).copied().unwrap_or(false))
        })
    }

    /// Categories seen, per feature (0 for numeric features).
    pub fn n_seen(&self) -> Vec<usize> {
        self.seen
            .iter()
            .map(|f| f.iter().filter(|&&b| b).count())
            .collect()
    }

    /// Checks the invariant listed on the type against `schema`; the error says what is wrong.
    fn check(&self, schema: &Schema) -> Result<(), String> {
        if self.seen.len() != schema.features.len() {
            return Err(format!(
                "{} flag vectors for a schema of {} features",
                self.seen.len(),
                schema.features.len()
            ));
        }
        for (flags, feat) in self.seen.iter().zip(&schema.features) {
            let expected = match &feat.kind {
                FeatureKind::Numeric => 0,
                FeatureKind::Categorical { categories } => categories.len() + 1,
            };
            if flags.len() != expected {
                return Err(format!(
                    "{} flags for feature '{}', expected {expected}",
                    flags.len(),
                    feat.name
                ));
            }
        }
        Ok(())
    }
}

/// A site's support: computed where the rows are, from its own training rows.
pub fn category_support(
    schema: &Schema,
    x: &FeatureMatrix,
) -> Result<CategorySupport, FederationError> {
    if x.n_features() != schema.features.len() {
        return Err(FederationError::InvalidInput(format!(
            "{} columns for a schema of {} features",
            x.n_features(),
            schema.features.len()
        )));
    }
    let seen = schema
        .features
        .iter()
        .enumerate()
        .map(|(f, feat)| match &feat.kind {
            FeatureKind::Numeric => Vec::new(),
            FeatureKind::Categorical { categories } => {
                let mut flags = vec![false; categories.len() + 1];
                for &v in x.column(f) {
                    if let Some(flag) = flags.get_mut(v as usize) {
                        *flag = true;
                    }
                }
                flags
            }
        })
        .collect();
    Ok(CategorySupport { seen })
}

/// Per-site forests and the sites' supports, for [`GlobalModel::predict`].
///
/// Invariant, checked against the forest by every model that holds a gate: one expert (site) per
/// support, `expert_of_tree` names the expert of every tree of the forest and is
/// `< supports.len()`, every expert owns at least one tree, and every support is consistent with
/// the forest's schema (see [`CategorySupport`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupportGate {
    expert_of_tree: Vec<usize>,
    supports: Vec<CategorySupport>,
}

impl SupportGate {
    /// The number of experts (sites), one per support.
    pub fn n_experts(&self) -> usize {
        self.supports.len()
    }

    /// Checks the invariant listed on the type against `forest`.
    pub(crate) fn check(&self, forest: &Forest) -> Result<(), FederationError> {
        let bad = |m: String| Err(FederationError::InvalidInput(m));
        let n_trees = forest.trees().len();
        let e = self.supports.len();
        if self.expert_of_tree.len() != n_trees {
            return bad(format!(
                "support gate for {} trees, the forest has {n_trees}",
                self.expert_of_tree.len()
            ));
        }
        let mut owns = vec![false; e];
        for (t, &s) in self.expert_of_tree.iter().enumerate() {
            match owns.get_mut(s) {
                Some(o) => *o = true,
                None => return bad(format!("tree {t} belongs to expert {s} of {e}")),
            }
        }
        if let Some(s) = owns.iter().position(|o| !o) {
            return bad(format!("expert {s} of the support gate owns no tree"));
        }
        for (s, support) in self.supports.iter().enumerate() {
            if let Err(m) = support.check(forest.schema()) {
                return bad(format!("category support of expert {s}: {m}"));
            }
        }
        Ok(())
    }

    /// The scores of rows `x`, row-major: for each row, the sum over the eligible sites of each
    /// site's mean leaf probabilities (their mean, once divided by the row sum); every site is
    /// eligible when none covers the row.
    pub(crate) fn scores(&self, model: &GlobalModel, x: &FeatureMatrix) -> Vec<f32> {
        let forest = model.forest();
        let nf = x.n_features();
        let c = forest.n_classes();
        let e = self.supports.len();
        let trees = forest.trees();
        let rows = x.to_row_major();
        let mut out = vec![0f32; x.n_rows() * c];
        out.par_chunks_mut(c.max(1))
            .zip(rows.par_chunks(nf.max(1)))
            .for_each(|(proba, row)| {
                let mut eligible: Vec<bool> = self.supports.iter().map(|s| s.covers(row)).collect();
                if !eligible.iter().any(|&b| b) {
                    eligible.iter_mut().for_each(|b| *b = true);
                }
                let mut per_site = vec![0f32; e * c];
                let mut n_trees = vec![0f32; e];
                for (tree, &s) in trees.iter().zip(&self.expert_of_tree) {
                    if eligible[s] {
                        for (a, p) in per_site[s * c..(s + 1) * c]
                            .iter_mut()
                            .zip(tree.predict_proba_row(row))
                        {
                            *a += p;
                        }
                        n_trees[s] += 1.0;
                    }
                }
                for s in (0..e).filter(|&s| eligible[s] && n_trees[s] > 0.0) {
                    for (p, v) in proba.iter_mut().zip(&per_site[s * c..(s + 1) * c]) {
                        *p += v / n_trees[s];
                    }
                }
            });
        out
    }
}

/// The `support` strategy: every tree of every site, each site's trees scoring only the rows its
/// support covers. `supports` must hold one support per site, computed on that site's training
/// rows with the sites' shared schema.
pub fn merge_support(
    sites: &[SiteModel],
    supports: &[(SiteId, CategorySupport)],
) -> Result<GlobalModel, FederationError> {
    let sorted = crate::merge::sites_by_id(sites)?;
    let mut picks = Vec::with_capacity(sorted.len());
    let mut expert_of_tree = Vec::new();
    let mut sources = Vec::new();
    let mut gate_supports = Vec::with_capacity(sorted.len());
    let all: Vec<Vec<usize>> = sorted
        .iter()
        .map(|s| (0..s.forest.trees().len()).collect())
        .collect();
    for (e, site) in sorted.iter().enumerate() {
        let support = supports
            .iter()
            .find(|(id, _)| *id == site.site)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| {
                FederationError::InvalidInput(format!("no category support from {}", site.site))
            })?;
        if support.seen.len() != site.forest.schema().features.len() {
            return Err(FederationError::InvalidInput(format!(
                "the category support of {} does not match the schema",
                site.site
            )));
        }
        gate_supports.push(support);
        picks.push((&site.forest, &all[e][..]));
        for t in 0..site.forest.trees().len() {
            expert_of_tree.push(e);
            sources.push(TreeRef {
                site: site.site,
                tree_idx: t,
            });
        }
    }
    let forest = fedids_forest::Forest::from_trees(&picks).map_err(FederationError::forest(
        "combining site forests for support gating",
    ))?;
    GlobalModel::with_support(
        forest,
        sources,
        SupportGate {
            expert_of_tree,
            supports: gate_supports,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedids_data::{Feature, FeatureKind, Task};
    use fedids_forest::{Forest, ForestParams, Sampling};

    fn schema() -> Schema {
        Schema {
            format: fedids_data::FormatSpec::NslKdd,
            task: Task::Binary,
            features: vec![
                Feature {
                    name: "service".into(),
                    kind: FeatureKind::Categorical {
                        categories: vec!["a".into(), "b".into(), "c".into(), "d".into()],
                    },
                },
                Feature {
                    name: "bytes".into(),
                    kind: FeatureKind::Numeric,
                },
            ],
            classes: vec!["normal".into(), "attack".into()],
        }
    }

    /// Rows whose service is one of `codes`, labelled attack when `bytes > 0.5` (or the opposite
    /// when `flip`): two sites with opposite rules on disjoint services.
    fn rows(codes: &[u32], flip: bool, n: usize) -> (FeatureMatrix, Vec<u32>) {
        let mut v = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let code = codes[i % codes.len()];
            let bytes = ((i * 37) % 100) as f32 / 100.0;
            v.extend([code as f32, bytes]);
            y.push(u32::from((bytes > 0.5) != flip));
        }
        (FeatureMatrix::from_rows(n, 2, &v), y)
    }

    fn site(id: u32, codes: &[u32], flip: bool) -> (SiteModel, CategorySupport) {
        let (x, y) = rows(codes, flip, 200);
        let params = ForestParams {
            n_trees: 5,
            sampling: Sampling::All,
            seed: id as u64,
            ..ForestParams::default()
        };
        let forest = Forest::fit(&x, &y, schema(), &params, &|| ()).unwrap();
        let support = category_support(&schema(), &x).unwrap();
        (
            SiteModel {
                site: SiteId(id),
                forest,
                n_train_rows: 200,
            },
            support,
        )
    }

    #[test]
    fn support_flags_the_codes_a_site_saw() {
        let (x, _) = rows(&[0, 2], false, 10);
        let s = category_support(&schema(), &x).unwrap();
        assert_eq!(s.n_seen(), vec![2, 0]);
        assert!(s.covers(&[0.0, 9.0]));
        assert!(!s.covers(&[1.0, 9.0]));
        assert!(!s.covers(&[4.0, 0.0]), "the unknown code was never seen");
        assert!(
            !s.covers(&[77.0, 0.0]),
            "codes outside the dictionary are not covered"
        );
        let wrong = FeatureMatrix::from_rows(1, 1, &[0.0]);
        assert!(category_support(&schema(), &wrong).is_err());
    }

    #[test]
    fn rows_are_scored_by_the_sites_that_know_their_values() {
        let (a, sa) = site(0, &[0, 1], false);
        let (b, sb) = site(1, &[2, 3], true);
        let gated = merge_support(
            &[a.clone(), b.clone()],
            &[(SiteId(0), sa.clone()), (SiteId(1), sb.clone())],
        )
        .unwrap();
        assert_eq!(gated.n_trees(), 10);
        let (xa, ya) = rows(&[0, 1], false, 100);
        let (xb, yb) = rows(&[2, 3], true, 100);
        assert_eq!(gated.predict(&xa).unwrap(), ya);
        assert_eq!(gated.predict(&xb).unwrap(), yb);
        // Without the gate the two sites' opposite rules cancel out.
        let scores = crate::ScoreTable::new();
        let ungated =
            crate::merge(&[a.clone(), b.clone()], &scores, &"all".parse().unwrap(), 0).unwrap();
        let wrong = ungated
            .predict(&xa)
            .unwrap()
            .iter()
            .zip(&ya)
            .filter(|(p, t)| p != t)
            .count();
        assert!(wrong > 20, "{wrong}");
        // Site order does not matter.
        let swapped = merge_support(&[b, a], &[(SiteId(1), sb), (SiteId(0), sa)]).unwrap();
        assert_eq!(swapped.predict(&xa).unwrap(), ya);
        assert_eq!(swapped, gated);
    }

    #[test]
    fn a_row_no_site_covers_is_scored_by_every_site() {
        let (a, sa) = site(0, &[0], false);
        let (b, sb) = site(1, &[1], false);
        let gated = merge_support(&[a, b], &[(SiteId(0), sa), (SiteId(1), sb)]).unwrap();
        let (x, y) = rows(&[3], false, 50);
        assert_eq!(
            gated.predict(&x).unwrap(),
            y,
            "both sites agree, so the fallback is right"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 16, ..Default::default() })]

        #[test]
        fn support_keeps_every_offered_tree_and_ignores_site_order(
            assignment in proptest::collection::vec(0u32..4, 1..4),
            flips in proptest::collection::vec(proptest::prelude::any::<bool>(), 4),
            rotate in 0usize..4,
        ) {
            // Site i sees the services {i, assignment[i]}.
            let built: Vec<(SiteModel, CategorySupport)> = assignment
                .iter()
                .enumerate()
                .map(|(i, &extra)| site(i as u32, &[i as u32 % 4, extra], flips[i % 4]))
                .collect();
            let models: Vec<SiteModel> = built.iter().map(|(m, _)| m.clone()).collect();
            let supports: Vec<(SiteId, CategorySupport)> =
                built.iter().map(|(m, s)| (m.site, s.clone())).collect();
            let global = merge_support(&models, &supports).unwrap();
            let offered: usize = models.iter().map(|m| m.forest.trees().len()).sum();
            proptest::prop_assert_eq!(global.n_trees(), offered);
            for (tree, src) in global.forest().trees().iter().zip(global.sources()) {
                let owner = models.iter().find(|m| m.site == src.site).unwrap();
                proptest::prop_assert_eq!(&owner.forest.trees()[src.tree_idx], tree);
            }
            let mut permuted = models.clone();
            permuted.rotate_left(rotate % models.len());
            permuted.reverse();
            let again = merge_support(&permuted, &supports).unwrap();
            proptest::prop_assert_eq!(&again, &global);
            let (x, _) = rows(&[0, 1, 2, 3], false, 40);
            proptest::prop_assert_eq!(again.predict(&x).unwrap(), global.predict(&x).unwrap());
            proptest::prop_assert_eq!(merge_support(&models, &supports).unwrap(), global);
        }
    }

    #[test]
    fn missing_or_mismatched_supports_are_errors() {
        let (a, sa) = site(0, &[0], false);
        let (b, _) = site(1, &[1], false);
        let err = merge_support(&[a.clone(), b], &[(SiteId(0), sa)]).unwrap_err();
        assert!(
            err.to_string().contains("no category support from"),
            "{err}"
        );
        let bad = CategorySupport {
            seen: vec![Vec::new()],
        };
        assert!(merge_support(&[a], &[(SiteId(0), bad)]).is_err());
    }
}
