//! Which trees form the global forest, and how do they vote? Merge strategies as pure functions
//! over site forests and the scores sites computed on their own validation rows.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use fedids_forest::{Forest, TreeScore};
use serde::{Deserialize, Serialize};

use crate::error::FederationError;
use crate::global::{GlobalModel, Voting};
use crate::partition::apportion;
use fedids_rng::{derive_seed, Rng};

/// A site's identifier. Stable whatever the order of the site list, so merges that break ties by
/// site do not depend on that order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct SiteId(pub u32);

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "site {}", self.0)
    }
}

/// What a site offers the federation: its forest and how many rows trained it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteModel {
    /// The site.
    pub site: SiteId,
    /// The site's local forest.
    pub forest: Forest,
    /// Rows the forest was trained on (for `weighted:K`).
    pub n_train_rows: u64,
}

/// One tree of one site's forest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TreeRef {
    /// The site whose forest holds the tree.
    pub site: SiteId,
    /// The tree's index in that forest.
    pub tree_idx: usize,
}

/// Tree scores computed by sites on their own validation rows: `(evaluator, owner)` maps to one
/// [`TreeScore`] per tree of the owner's forest. The published strategies need each site's scores
/// of its own trees (`evaluator == owner`); `cross-site` needs every site's scores of every tree.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScoreTable {
    scores: BTreeMap<(SiteId, SiteId), Vec<TreeScore>>,
}

impl ScoreTable {
    /// An empty table.
    pub fn new() -> Self {
        ScoreTable::default()
    }

    /// Records the scores `evaluator` computed for the trees of `owner` (one per tree, in tree
    /// order), replacing earlier ones.
    pub fn insert(&mut self, evaluator: SiteId, owner: SiteId, scores: Vec<TreeScore>) {
        self.scores.insert((evaluator, owner), scores);
    }

    /// The scores `evaluator` computed for the trees of `owner`.
    pub fn get(&self, evaluator: SiteId, owner: SiteId) -> Option<&[TreeScore]> {
        self.scores.get(&(evaluator, owner)).map(Vec::as_slice)
    }

    /// The sites that scored some tree, ascending.
    pub fn evaluators(&self) -> Vec<SiteId> {
        let mut e: Vec<SiteId> = self.scores.keys().map(|k| k.0).collect();
        e.dedup();
        e
    }
}

/// How a tree is ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// `a`: accuracy.
    Accuracy,
    /// `wa`: accuracy times the mean per-class accuracy (recall), over the classes present in the
    /// validation rows.
    WeightedAccuracy,
}

impl Metric {
    /// The metric's value for one score (`-inf` when nothing was scored).
    pub fn value(self, score: &TreeScore) -> f64 {
        if score.class_support.iter().all(|&s| s == 0) {
            return f64::NEG_INFINITY;
        }
        match self {
            Metric::Accuracy => score.accuracy,
            Metric::WeightedAccuracy => score.accuracy * mean_recall(score),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "a",
            Metric::WeightedAccuracy => "wa",
        }
    }
}

/// Mean recall over the classes with validation rows (0 if none).
pub(crate) fn mean_recall(score: &TreeScore) -> f64 {
    let present: Vec<f64> = score
        .class_recall
        .iter()
        .zip(&score.class_support)
        .filter(|(r, &s)| s > 0 && r.is_finite())
        .map(|(&r, _)| r)
        .collect();
    if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    }
}

/// The WV vote weights of one tree: a vote for class `c` weighs the tree's recall on `c` times its
/// mean recall. A class without validation rows takes the mean recall in place of its recall.
pub fn vote_weights(score: &TreeScore) -> Vec<f64> {
    let mean = mean_recall(score);
    score
        .class_recall
        .iter()
        .zip(&score.class_support)
        .map(|(&r, &s)| {
            if s > 0 && r.is_finite() {
                r * mean
            } else {
                mean * mean
            }
        })
        .collect()
}

/// Pools the scores several sites computed for one tree into the score the tree would have on
/// the union of their validation rows (per-class hits and supports add up).
pub fn pool_scores<'a>(scores: impl IntoIterator<Item = &'a TreeScore>) -> Option<TreeScore> {
    let mut hits: Vec<f64> = Vec::new();
    let mut support: Vec<u64> = Vec::new();
    let mut any = false;
    for s in scores {
        if !any {
            hits = vec![0.0; s.class_support.len()];
            support = vec![0; s.class_support.len()];
            any = true;
        }
        for (c, (&r, &n)) in s.class_recall.iter().zip(&s.class_support).enumerate() {
            if let (Some(h), Some(t)) = (hits.get_mut(c), support.get_mut(c)) {
                if n > 0 && r.is_finite() {
                    *h += (r * n as f64).round();
                }
                *t += n;
            }
        }
    }
    if !any {
        return None;
    }
    let total: u64 = support.iter().sum();
    let correct: f64 = hits.iter().sum();
    Some(TreeScore {
        accuracy: if total == 0 {
            0.0
        } else {
            correct / total as f64
        },
        class_recall: hits
            .iter()
            .zip(&support)
            .map(|(&h, &n)| if n == 0 { f64::NAN } else { h / n as f64 })
            .collect(),
        class_support: support,
    })
}

/// A merge strategy. Text form (FromStr and Display): a name, then optional `:METRIC` (`a`, `wa`)
/// and `:VOTING` (`sv`, `wv`, `soft`) in either order:
///
/// * `all[:VOTING]`: every distinct tree (default `soft`);
/// * `top-per-site:N[:METRIC][:VOTING]`: each site's `N` best trees by its own score (default
///   `a`, `sv`, as published);
/// * `top-global:K[:METRIC][:VOTING]`: the `K` best trees of the pool, each ranked by its own
///   site's score (default `a`, `sv`, as published);
/// * `cross-site:K[:METRIC][:VOTING][:refit]`: every tree is scored by every site on its own
///   validation rows; the `K` trees with the best sample-weighted mean score are kept, and WV
///   weights come from the pooled per-class recalls (default `a`, `wv`). With `refit`, a round
///   comes first in which every site returns per-leaf class counts of its training rows for every
///   tree, and leaf probabilities are refit on the pooled counts ([`crate::refit_sites`]); the
///   caller runs that round (as [`crate::simulate`] does) and passes the refit forests and their
///   scores;
/// * `weighted:K[:VOTING]`: `K` trees sampled, seeded, from the sites in proportion to their
///   training rows (default `soft`);
/// * `experts`: every tree, as a mixture of site experts: each site's trees predict for the rows
///   that resemble its traffic, judged by where every site's training rows fall in every tree
///   ([`crate::merge_experts`]; needs the leaf-count round, soft voting).
///
/// Identical trees ([`fedids_forest::Tree::content_hash`]) are kept once. Ranking ties break by
/// score (descending), then site id, then tree index, so results do not depend on the order of
/// the site list. `K` (or `N`) larger than what is offered keeps everything offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MergeStrategy {
    /// Every distinct tree.
    All {
        /// How the trees vote.
        voting: Voting,
    },
    /// The `n` best trees of each site, by the site's own scores.
    TopPerSite {
        /// Trees per site.
        n: usize,
        /// Ranking metric.
        metric: Metric,
        /// How the trees vote.
        voting: Voting,
    },
    /// The `k` best trees of the pool, by their own sites' scores.
    TopGlobal {
        /// Global forest size.
        k: usize,
        /// Ranking metric.
        metric: Metric,
        /// How the trees vote.
        voting: Voting,
    },
    /// The `k` best trees of the pool by the sample-weighted mean of every site's score.
    CrossSite {
        /// Global forest size.
        k: usize,
        /// Ranking metric.
        metric: Metric,
        /// How the trees vote.
        voting: Voting,
        /// Whether the offered forests have leaves refit on every site's training rows.
        refit: bool,
    },
    /// A mixture of site experts gated by leaf site shares ([`crate::merge_experts`]; needs the
    /// leaf-count round).
    Experts,
    /// Every site's trees, each site's scoring only the rows whose categorical values its
    /// training rows contain ([`crate::merge_support`]; needs each site's category support).
    Support,
    /// `k` trees sampled in proportion to site size.
    Weighted {
        /// Global forest size.
        k: usize,
        /// How the trees vote.
        voting: Voting,
    },
}

impl MergeStrategy {
    /// The strategy's family name (`top-global`).
    pub fn family(&self) -> &'static str {
        match self {
            MergeStrategy::All { .. } => "all",
            MergeStrategy::TopPerSite { .. } => "top-per-site",
            MergeStrategy::TopGlobal { .. } => "top-global",
            MergeStrategy::CrossSite { .. } => "cross-site",
            MergeStrategy::Weighted { .. } => "weighted",
            MergeStrategy::Experts => "experts",
            MergeStrategy::Support => "support",
        }
    }

    /// How the merged trees vote.
    pub fn voting(&self) -> Voting {
        match *self {
            MergeStrategy::All { voting }
            | MergeStrategy::TopPerSite { voting, .. }
            | MergeStrategy::TopGlobal { voting, .. }
            | MergeStrategy::CrossSite { voting, .. }
            | MergeStrategy::Weighted { voting, .. } => voting,
            MergeStrategy::Experts | MergeStrategy::Support => Voting::Soft,
        }
    }

    /// Whether the strategy needs every site's scores of every tree (not only their own).
    pub fn needs_cross_scores(&self) -> bool {
        matches!(self, MergeStrategy::CrossSite { .. })
    }

    /// Whether the strategy needs the leaf-refit round before scoring.
    pub fn needs_refit(&self) -> bool {
        matches!(
            self,
            MergeStrategy::CrossSite { refit: true, .. } | MergeStrategy::Experts
        )
    }

    fn defaults(family: &str) -> (Metric, Voting) {
        match family {
            "top-per-site" | "top-global" => (Metric::Accuracy, Voting::Simple),
            "cross-site" => (Metric::Accuracy, Voting::Weighted),
            _ => (Metric::Accuracy, Voting::Soft),
        }
    }
}

impl fmt::Display for MergeStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = self.family();
        let (default_metric, default_voting) = MergeStrategy::defaults(family);
        let (size, metric) = match *self {
            MergeStrategy::All { .. } | MergeStrategy::Experts | MergeStrategy::Support => {
                (None, None)
            }
            MergeStrategy::TopPerSite { n, metric, .. } => (Some(n), Some(metric)),
            MergeStrategy::TopGlobal { k, metric, .. }
            | MergeStrategy::CrossSite { k, metric, .. } => (Some(k), Some(metric)),
            MergeStrategy::Weighted { k, .. } => (Some(k), None),
        };
        write!(f, "{family}")?;
        if let Some(size) = size {
            write!(f, ":{size}")?;
        }
        if let Some(m) = metric.filter(|&m| m != default_metric) {
            write!(f, ":{}", m.name())?;
        }
        let voting = self.voting();
        if voting != default_voting {
            write!(f, ":{voting}")?;
        }
        if matches!(self, MergeStrategy::CrossSite { refit: true, .. }) {
            write!(f, ":refit")?;
        }
        Ok(())
    }
}

impl FromStr for MergeStrategy {
    type Err = FederationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |expected: String| FederationError::Spec {
            what: "strategy",
            found: s.to_string(),
            expected,
        };
        let mut parts = s.split(':');
        let family = parts.next().unwrap_or_default();
        if family == "experts" || family == "support" {
            return match parts.next() {
                None if family == "experts" => Ok(MergeStrategy::Experts),
                None => Ok(MergeStrategy::Support),
                Some(p) => Err(bad(format!("unexpected ':{p}', {family} takes no options"))),
            };
        }
        let sized = matches!(
            family,
            "top-per-site" | "top-global" | "cross-site" | "weighted"
        );
        if !sized && family != "all" {
            return Err(bad(
                "expected all, top-per-site:N, top-global:K, cross-site:K, weighted:K, experts or support, \
                 optionally followed by :a or :wa and :sv, :wv or :soft"
                    .to_string(),
            ));
        }
        let size = if sized {
            match parts.next().map(str::parse::<usize>) {
                Some(Ok(k)) if k > 0 => k,
                _ => {
                    return Err(bad(format!(
                        "expected {family}:N with N a positive integer"
                    )))
                }
            }
        } else {
            0
        };
        let ranked = matches!(family, "top-per-site" | "top-global" | "cross-site");
        let (mut metric, mut voting) = MergeStrategy::defaults(family);
        let (mut metric_seen, mut voting_seen, mut refit) = (false, false, false);
        for part in parts {
            match part {
                "refit" if family == "cross-site" && !refit => refit = true,
                "a" | "wa" if ranked && !metric_seen => {
                    metric = if part == "a" {
                        Metric::Accuracy
                    } else {
                        Metric::WeightedAccuracy
                    };
                    metric_seen = true;
                }
                _ if !voting_seen && part.parse::<Voting>().is_ok() => {
                    voting = part.parse::<Voting>()?;
                    voting_seen = true;
                }
                _ => {
                    let metric_hint = if ranked { "a or wa, " } else { "" };
                    let refit_hint = if family == "cross-site" {
                        ", refit"
                    } else {
                        ""
                    };
                    return Err(bad(format!(
                        "unexpected ':{part}', expected at most one of each: {metric_hint}sv, wv or soft{refit_hint}"
                    )));
                }
            }
        }
        Ok(match family {
            "all" => MergeStrategy::All { voting },
            "top-per-site" => MergeStrategy::TopPerSite {
                n: size,
                metric,
                voting,
            },
            "top-global" => MergeStrategy::TopGlobal {
                k: size,
                metric,
                voting,
            },
            "cross-site" => MergeStrategy::CrossSite {
                k: size,
                metric,
                voting,
                refit,
            },
            _ => MergeStrategy::Weighted { k: size, voting },
        })
    }
}

/// A candidate tree with what ranking needs.
struct Candidate {
    /// Position of the site in the id-sorted site list.
    site_pos: usize,
    tree: TreeRef,
    hash: [u8; 32],
    /// The score that ranks the tree and gives its WV weights.
    score: Option<TreeScore>,
    rank: f64,
}

const STREAM_WEIGHTED: u64 = 4;

/// The sites in id order; an error if there are none or a site offers two forests.
pub(crate) fn sites_by_id(sites: &[SiteModel]) -> Result<Vec<&SiteModel>, FederationError> {
    let mut sorted: Vec<&SiteModel> = sites.iter().collect();
    sorted.sort_by_key(|s| s.site);
    if sorted.is_empty() {
        return Err(FederationError::InvalidInput(
            "no site forests to merge".to_string(),
        ));
    }
    if let Some(w) = sorted.windows(2).find(|w| w[0].site == w[1].site) {
        return Err(FederationError::InvalidInput(format!(
            "{} offers more than one forest",
            w[0].site
        )));
    }
    Ok(sorted)
}

/// Merges site forests into a global model.
///
/// Pure: the result depends only on the sites (as a set: their order does not matter), the
/// scores, the strategy and `seed` (used by `weighted:K` only).
pub fn merge(
    sites: &[SiteModel],
    scores: &ScoreTable,
    strategy: &MergeStrategy,
    seed: u64,
) -> Result<GlobalModel, FederationError> {
    let sorted = sites_by_id(sites)?;
    if *strategy == MergeStrategy::Experts {
        return Err(FederationError::InvalidInput(
            "experts needs every site's leaf counts: use merge_experts".to_string(),
        ));
    }
    if *strategy == MergeStrategy::Support {
        return Err(FederationError::InvalidInput(
            "support needs every site's category support: use merge_support".to_string(),
        ));
    }
    let needs_scores = match strategy {
        MergeStrategy::TopPerSite { .. } | MergeStrategy::TopGlobal { .. } => true,
        MergeStrategy::CrossSite { .. } => true,
        _ => strategy.voting() == Voting::Weighted,
    };
    let evaluators = scores.evaluators();
    let mut candidates: Vec<Candidate> = Vec::new();
    for (site_pos, s) in sorted.iter().enumerate() {
        let n_trees = s.forest.trees().len();
        let own = scores.get(s.site, s.site);
        if let Some(own) = own {
            if own.len() != n_trees {
                return Err(FederationError::InvalidInput(format!(
                    "{} scored {} trees of its own forest of {n_trees}",
                    s.site,
                    own.len()
                )));
            }
        }
        let mut cross: Vec<&[TreeScore]> = Vec::new();
        if strategy.needs_cross_scores() {
            for &e in &evaluators {
                if let Some(t) = scores.get(e, s.site) {
                    if t.len() != n_trees {
                        return Err(FederationError::InvalidInput(format!(
                            "{e} scored {} trees of the forest of {} ({n_trees} trees)",
                            t.len(),
                            s.site
                        )));
                    }
                    cross.push(t);
                }
            }
        }
        for (tree_idx, tree) in s.forest.trees().iter().enumerate() {
            let (score, rank) = match strategy {
                MergeStrategy::CrossSite { metric, .. } => {
                    let pooled = pool_scores(cross.iter().map(|t| &t[tree_idx]));
                    let rank = cross_rank(*metric, cross.iter().map(|t| &t[tree_idx]));
                    (pooled, rank)
                }
                MergeStrategy::TopPerSite { metric, .. }
                | MergeStrategy::TopGlobal { metric, .. } => {
                    let own = own.map(|o| o[tree_idx].clone());
                    let rank = own.as_ref().map_or(f64::NEG_INFINITY, |o| metric.value(o));
                    (own, rank)
                }
                _ => (own.map(|o| o[tree_idx].clone()), 0.0),
            };
            if needs_scores && score.is_none() {
                return Err(FederationError::InvalidInput(format!(
                    "strategy {strategy} needs scores of the trees of {}, found none",
                    s.site
                )));
            }
            candidates.push(Candidate {
                site_pos,
                tree: TreeRef {
                    site: s.site,
                    tree_idx,
                },
                hash: tree.content_hash(),
                score,
                rank: if rank.is_nan() {
                    f64::NEG_INFINITY
                } else {
                    rank
                },
            });
        }
    }
    // Ranking order: score descending, then site id, then tree index.
    let by_rank = |a: &&Candidate, b: &&Candidate| {
        b.rank
            .total_cmp(&a.rank)
            .then(a.tree.site.cmp(&b.tree.site))
            .then(a.tree.tree_idx.cmp(&b.tree.tree_idx))
    };
    let mut taken: HashSet<[u8; 32]> = HashSet::new();
    let mut chosen: Vec<&Candidate> = Vec::new();
    match *strategy {
        MergeStrategy::Experts | MergeStrategy::Support => {}
        MergeStrategy::All { .. } => {
            for c in &candidates {
                if taken.insert(c.hash) {
                    chosen.push(c);
                }
            }
        }
        MergeStrategy::TopPerSite { n, .. } => {
            for site_pos in 0..sorted.len() {
                let mut mine: Vec<&Candidate> = candidates
                    .iter()
                    .filter(|c| c.site_pos == site_pos)
                    .collect();
                mine.sort_by(by_rank);
                let mut n_taken = 0;
                for c in mine {
                    if n_taken == n {
                        break;
                    }
                    if taken.insert(c.hash) {
                        chosen.push(c);
                        n_taken += 1;
                    }
                }
            }
        }
        MergeStrategy::TopGlobal { k, .. } | MergeStrategy::CrossSite { k, .. } => {
            let mut all: Vec<&Candidate> = candidates.iter().collect();
            all.sort_by(by_rank);
            for c in all {
                if chosen.len() == k {
                    break;
                }
                if taken.insert(c.hash) {
                    chosen.push(c);
                }
            }
        }
        MergeStrategy::Weighted { k, .. } => {
            // Distinct trees per site, in a seeded order that depends on the site id only.
            let mut pools: Vec<Vec<&Candidate>> = Vec::new();
            for (site_pos, s) in sorted.iter().enumerate() {
                let mut mine: Vec<&Candidate> = candidates
                    .iter()
                    .filter(|c| c.site_pos == site_pos)
                    .collect();
                let mut rng = Rng::new(derive_seed(seed, STREAM_WEIGHTED, s.site.0 as u64));
                rng.shuffle(&mut mine);
                let mut pool = Vec::new();
                for c in mine {
                    if taken.insert(c.hash) {
                        pool.push(c);
                    }
                }
                pools.push(pool);
            }
            let weights: Vec<f64> = sorted.iter().map(|s| s.n_train_rows as f64).collect();
            let mut quota = apportion(k, &weights);
            // Quota a site cannot fill goes to the next sites with spare trees, in id order.
            let mut spare = 0;
            for (q, p) in quota.iter_mut().zip(&pools) {
                if *q > p.len() {
                    spare += *q - p.len();
                    *q = p.len();
                }
            }
            for (q, p) in quota.iter_mut().zip(&pools) {
                let extra = spare.min(p.len() - *q);
                *q += extra;
                spare -= extra;
            }
            for (q, p) in quota.iter().zip(&pools) {
                chosen.extend(p.iter().take(*q));
            }
        }
    }
    if chosen.is_empty() {
        return Err(FederationError::InvalidInput(format!(
            "strategy {strategy} selected no trees"
        )));
    }
    // The global forest holds the chosen trees by site id, then tree index.
    chosen.sort_by_key(|c| c.tree);
    let mut picks: Vec<(usize, Vec<usize>)> = Vec::new();
    for c in &chosen {
        match picks.last_mut() {
            Some((pos, idxs)) if *pos == c.site_pos => idxs.push(c.tree.tree_idx),
            _ => picks.push((c.site_pos, vec![c.tree.tree_idx])),
        }
    }
    let pick_refs: Vec<(&Forest, &[usize])> = picks
        .iter()
        .map(|(pos, idxs)| (&sorted[*pos].forest, idxs.as_slice()))
        .collect();
    let forest = Forest::from_trees(&pick_refs)
        .map_err(FederationError::forest(format!("merging with {strategy}")))?;
    let class_weights = if strategy.voting() == Voting::Weighted {
        chosen
            .iter()
            .map(|c| c.score.as_ref().map(vote_weights).unwrap_or_default())
            .collect()
    } else {
        Vec::new()
    };
    GlobalModel::new(
        forest,
        strategy.voting(),
        class_weights,
        chosen.iter().map(|c| c.tree).collect(),
    )
}

/// The cross-site rank of a tree: the mean of each evaluator's metric, weighted by the
/// evaluator's validation rows.
fn cross_rank<'a>(metric: Metric, scores: impl Iterator<Item = &'a TreeScore>) -> f64 {
    let (mut sum, mut n) = (0.0, 0.0);
    for s in scores {
        let rows: u64 = s.class_support.iter().sum();
        if rows > 0 {
            sum += rows as f64 * metric.value(s);
            n += rows as f64;
        }
    }
    if n > 0.0 {
        sum / n
    } else {
        f64::NEG_INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::{binary_schema, two_blobs};
    use fedids_forest::ForestParams;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// `n_sites` sites with `n_trees` trees each, grown on different slices of one dataset, and
    /// every site's scores of every tree on its own slice.
    fn sites(n_sites: usize, n_trees: usize, seed: u64) -> (Vec<SiteModel>, ScoreTable) {
        let (x, y) = two_blobs(30 * n_sites, 2);
        let mut models = Vec::new();
        let mut data = Vec::new();
        for s in 0..n_sites {
            let rows: Vec<usize> = (s * 30..(s + 1) * 30).collect();
            let (sx, sy) = (
                x.select_rows(&rows),
                rows.iter().map(|&r| y[r]).collect::<Vec<_>>(),
            );
            let params = ForestParams {
                n_trees,
                max_depth: Some(3),
                seed: seed.wrapping_add(s as u64),
                ..ForestParams::default()
            };
            let forest = Forest::fit(&sx, &sy, binary_schema(2), &params, &|| ()).unwrap();
            models.push(SiteModel {
                site: SiteId(s as u32),
                forest,
                n_train_rows: 30 + 10 * s as u64,
            });
            data.push((sx, sy));
        }
        let mut scores = ScoreTable::new();
        for (e, (sx, sy)) in data.iter().enumerate() {
            for m in &models {
                scores.insert(
                    SiteId(e as u32),
                    m.site,
                    m.forest.score_trees(sx, sy).unwrap(),
                );
            }
        }
        (models, scores)
    }

    fn strategies() -> impl Strategy<Value = MergeStrategy> {
        prop_oneof![
            Just("all"),
            Just("all:sv"),
            Just("top-per-site:2"),
            Just("top-per-site:1:wa:wv"),
            Just("top-global:3"),
            Just("top-global:5:wa:wv"),
            Just("cross-site:3"),
            Just("cross-site:4:wa:soft"),
            Just("weighted:4"),
            Just("weighted:2:wv"),
        ]
        .prop_map(|s| s.parse().unwrap())
    }

    #[test]
    fn gated_strategies_round_trip_and_refuse_plain_merge() {
        let (models, scores) = sites(2, 2, 1);
        for text in ["experts", "support"] {
            let strategy: MergeStrategy = text.parse().unwrap();
            assert_eq!(strategy.to_string(), text);
            let err = merge(&models, &scores, &strategy, 0)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("use merge_{text}")), "{err}");
        }
    }

    fn hashes(sites: &[SiteModel]) -> HashMap<[u8; 32], ()> {
        sites
            .iter()
            .flat_map(|s| s.forest.trees().iter().map(|t| (t.content_hash(), ())))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn merges_hold_only_offered_trees_and_ignore_site_order(
            n_sites in 1usize..4,
            n_trees in 1usize..5,
            seed in 0u64..1000,
            strategy in strategies(),
            rotate in 0usize..4,
        ) {
            let (models, scores) = sites(n_sites, n_trees, seed);
            let global = merge(&models, &scores, &strategy, seed).unwrap();
            let offered = hashes(&models);
            for (tree, src) in global.forest().trees().iter().zip(global.sources()) {
                prop_assert!(offered.contains_key(&tree.content_hash()));
                let owner = models.iter().find(|m| m.site == src.site).unwrap();
                prop_assert_eq!(&owner.forest.trees()[src.tree_idx], tree);
            }
            let distinct: HashMap<[u8; 32], ()> = global
                .forest()
                .trees()
                .iter()
                .map(|t| (t.content_hash(), ()))
                .collect();
            prop_assert_eq!(distinct.len(), global.n_trees(), "duplicates kept");
            match strategy {
                MergeStrategy::All { .. } => prop_assert_eq!(global.n_trees(), offered.len()),
                MergeStrategy::TopPerSite { n, .. } => {
                    for m in &models {
                        let taken = global.sources().iter().filter(|s| s.site == m.site).count();
                        prop_assert!(taken <= n);
                    }
                }
                MergeStrategy::TopGlobal { k, .. }
                | MergeStrategy::CrossSite { k, .. }
                | MergeStrategy::Weighted { k, .. } => {
                    prop_assert_eq!(global.n_trees(), k.min(offered.len()));
                }
                MergeStrategy::Experts | MergeStrategy::Support => unreachable!(),
            }
            // Same inputs, same model; rotated site list, same model.
            prop_assert_eq!(&merge(&models, &scores, &strategy, seed).unwrap(), &global);
            let mut permuted = models.clone();
            permuted.rotate_left(rotate % n_sites);
            permuted.reverse();
            let again = merge(&permuted, &scores, &strategy, seed).unwrap();
            prop_assert_eq!(again.sources(), global.sources());
            let (x, _) = two_blobs(50, 2);
            prop_assert_eq!(again.predict(&x).unwrap(), global.predict(&x).unwrap());
        }

        #[test]
        fn all_of_one_site_is_the_identity(n_trees in 1usize..6, seed in 0u64..1000) {
            let (models, scores) = sites(1, n_trees, seed);
            let global = merge(&models, &scores, &"all".parse().unwrap(), 0).unwrap();
            let site = &models[0].forest;
            if hashes(&models).len() == n_trees {
                prop_assert_eq!(global.forest().trees(), site.trees());
                let (x, _) = two_blobs(50, 2);
                prop_assert_eq!(global.predict(&x).unwrap(), site.predict(&x).unwrap());
            } else {
                prop_assert_eq!(global.n_trees(), hashes(&models).len());
            }
        }

        #[test]
        fn strategy_text_round_trips(strategy in strategies()) {
            let text = strategy.to_string();
            prop_assert_eq!(text.parse::<MergeStrategy>().unwrap(), strategy);
        }
    }

    #[test]
    fn strategy_names() {
        let check = |text: &str, want: &str| {
            let got = text
                .parse::<MergeStrategy>()
                .map_or_else(|e| e.to_string(), |s| s.to_string());
            assert_eq!(got, want, "{text}");
        };
        check("top-global:129", "top-global:129");
        check("top-global:129:sv:a", "top-global:129");
        check("top-global:129:wv:wa", "top-global:129:wa:wv");
        check("top-per-site:43:wa", "top-per-site:43:wa");
        check("cross-site:129:soft:refit", "cross-site:129:soft:refit");
        check("cross-site:129:wv", "cross-site:129");
        check("all", "all");
        check("weighted:10:sv", "weighted:10:sv");
        check("experts", "experts");
        check(
            "top-global:0",
            "invalid strategy 'top-global:0': expected top-global:N with N a positive integer",
        );
        check(
            "all:wa",
            "invalid strategy 'all:wa': unexpected ':wa', expected at most one of each: sv, wv or soft",
        );
        check(
            "fedavg",
            "invalid strategy 'fedavg': expected all, top-per-site:N, top-global:K, cross-site:K, \
             weighted:K, experts or support, optionally followed by :a or :wa and :sv, :wv or :soft",
        );
        check(
            "top-global:5:a:wa",
            "invalid strategy 'top-global:5:a:wa': unexpected ':wa', expected at most one of each: a or wa, sv, wv or soft",
        );
    }

    #[test]
    fn ranking_ties_break_by_site_then_tree() {
        // Two sites offering perfect trees: top-global:1 takes site 0's first tree.
        let (models, scores) = sites(2, 3, 7);
        let mut flat = ScoreTable::new();
        for m in &models {
            let s = scores.get(m.site, m.site).unwrap();
            let perfect: Vec<TreeScore> = s
                .iter()
                .map(|t| TreeScore {
                    accuracy: 1.0,
                    class_recall: vec![1.0; 2],
                    class_support: t.class_support.clone(),
                })
                .collect();
            flat.insert(m.site, m.site, perfect);
        }
        let global = merge(&models, &flat, &"top-global:1".parse().unwrap(), 0).unwrap();
        assert_eq!(
            global.sources(),
            &[TreeRef {
                site: SiteId(0),
                tree_idx: 0
            }]
        );
    }

    #[test]
    fn wa_and_vote_weights() {
        let score = TreeScore {
            accuracy: 0.9,
            class_recall: vec![1.0, 0.5, f64::NAN],
            class_support: vec![8, 2, 0],
        };
        assert!((Metric::WeightedAccuracy.value(&score) - 0.9 * 0.75).abs() < 1e-12);
        assert_eq!(Metric::Accuracy.value(&score), 0.9);
        assert_eq!(vote_weights(&score), vec![0.75, 0.375, 0.5625]);
        let pooled = pool_scores([&score, &score]).unwrap();
        assert_eq!(pooled.class_support, vec![16, 4, 0]);
        assert!((pooled.accuracy - 0.9).abs() < 1e-12);
    }

    #[test]
    fn missing_scores_and_duplicate_sites_are_errors() {
        let (models, _) = sites(2, 2, 1);
        let err = merge(
            &models,
            &ScoreTable::new(),
            &"top-global:2".parse().unwrap(),
            0,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "strategy top-global:2 needs scores of the trees of site 0, found none"
        );
        let twice = vec![models[0].clone(), models[0].clone()];
        let err = merge(&twice, &ScoreTable::new(), &"all".parse().unwrap(), 0)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "site 0 offers more than one forest");
    }
}
