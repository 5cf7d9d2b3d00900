//! The merged model: a forest and how its trees vote.

use std::fmt;
use std::str::FromStr;

use fedids_data::FeatureMatrix;
use fedids_forest::{argmax_class, Forest};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::FederationError;
use crate::merge::TreeRef;
use crate::support::SupportGate;

/// How the trees of a global model combine into one prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Voting {
    /// `soft`: the class with the highest mean leaf probability (the forest default).
    Soft,
    /// `sv`: simple majority of the trees' hard votes.
    Simple,
    /// `wv`: each tree's hard vote for class `c` weighs the tree's accuracy on `c` times its mean
    /// per-class accuracy (the published WV).
    Weighted,
}

impl fmt::Display for Voting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Voting::Soft => "soft",
            Voting::Simple => "sv",
            Voting::Weighted => "wv",
        })
    }
}

impl FromStr for Voting {
    type Err = FederationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "soft" => Ok(Voting::Soft),
            "sv" => Ok(Voting::Simple),
            "wv" => Ok(Voting::Weighted),
            _ => Err(FederationError::Spec {
                what: "voting",
                found: s.to_string(),
                expected: "expected 'sv', 'wv' or 'soft'".to_string(),
            }),
        }
    }
}

/// A merged forest with its voting rule.
///
/// Invariant: under [`Voting::Weighted`], `class_weights` holds one row of `n_classes` finite,
/// non-negative weights per tree; otherwise it is empty. `sources` names each tree's origin.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalModel {
    forest: Forest,
    voting: Voting,
    class_weights: Vec<Vec<f64>>,
    sources: Vec<TreeRef>,
    gating: Option<Gating>,
    support: Option<SupportGate>,
}

/// A mixture of site experts: which site's traffic a row resembles, from where every site's
/// training rows fall in every tree.
///
/// For a row, each tree gives the share of each site among the training rows in the row's leaf;
/// the mean over trees is the gate `g(s | x)`. The prediction is `sum_s g(s | x) * P_s(c | x)`,
/// where `P_s` is the mean leaf probability of the trees of site `s`.
///
/// Invariant: `leaf_site_share[t]` holds `n_leaves(t) * n_experts` finite, non-negative values;
/// every `expert_of_tree` is `< n_experts` and every expert owns at least one tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gating {
    n_experts: usize,
    expert_of_tree: Vec<usize>,
    leaf_site_share: Vec<Vec<f32>>,
}

impl Gating {
    /// The parts, for rebuilding a model through [`GlobalModel::with_gating`]:
    /// `(n_experts, expert_of_tree, leaf_site_share)`.
    pub(crate) fn into_parts(self) -> (usize, Vec<usize>, Vec<Vec<f32>>) {
        (self.n_experts, self.expert_of_tree, self.leaf_site_share)
    }
}

impl GlobalModel {
    /// Checks and assembles a model. `class_weights` must be empty unless `voting` is
    /// [`Voting::Weighted`], and then hold one row of `n_classes` weights per tree.
    pub fn new(
        forest: Forest,
        voting: Voting,
        class_weights: Vec<Vec<f64>>,
        sources: Vec<TreeRef>,
    ) -> Result<GlobalModel, FederationError> {
        let n_trees = forest.trees().len();
        let n_classes = forest.n_classes();
        let bad = |m: String| Err(FederationError::InvalidInput(m));
        if sources.len() != n_trees {
            return bad(format!("{} sources for {n_trees} trees", sources.len()));
        }
        match voting {
            Voting::Weighted => {
                if class_weights.len() != n_trees {
                    return bad(format!(
                        "{} rows of vote weights for {n_trees} trees",
                        class_weights.len()
                    ));
                }
                if let Some((t, w)) = class_weights.iter().enumerate().find(|(_, w)| {
                    w.len() != n_classes || w.iter().any(|v| !v.is_finite() || *v < 0.0)
                }) {
                    return bad(format!(
                        "tree {t} has vote weights {w:?}, expected {n_classes} finite non-negative values"
                    ));
                }
            }
            _ => {
                if !class_weights.is_empty() {
                    return bad(format!("vote weights given for {voting} voting"));
                }
            }
        }
        Ok(GlobalModel {
            forest,
            voting,
            class_weights,
            sources,
            gating: None,
            support: None,
        })
    }

    /// A soft-voting model whose trees are gated by site (see [`Gating`]). `expert_of_tree[t]` is
    /// the expert (site position) owning tree `t`; `leaf_site_share[t][leaf * n_experts + s]` is
    /// the share of site `s` among the training rows in that leaf (finite and non-negative).
    pub fn with_gating(
        forest: Forest,
        sources: Vec<TreeRef>,
        n_experts: usize,
        expert_of_tree: Vec<usize>,
        leaf_site_share: Vec<Vec<f32>>,
    ) -> Result<GlobalModel, FederationError> {
        let mut model = GlobalModel::new(forest, Voting::Soft, Vec::new(), sources)?;
        let trees = model.forest.trees();
        let bad = |m: String| Err(FederationError::InvalidInput(m));
        if expert_of_tree.len() != trees.len() || leaf_site_share.len() != trees.len() {
            return bad(format!(
                "gating for {} and {} trees, the forest has {}",
                expert_of_tree.len(),
                leaf_site_share.len(),
                trees.len()
            ));
        }
        let mut owns = vec![false; n_experts];
        for (t, (&e, share)) in expert_of_tree.iter().zip(&leaf_site_share).enumerate() {
            match owns.get_mut(e) {
                Some(o) => *o = true,
                None => return bad(format!("tree {t} belongs to expert {e} of {n_experts}")),
            }
            if share.len() != trees[t].n_leaves() * n_experts
                || share.iter().any(|v| !v.is_finite() || *v < 0.0)
            {
                return bad(format!("tree {t}: gating table of {} values", share.len()));
            }
        }
        if owns.iter().any(|o| !o) {
            return bad("an expert owns no tree".to_string());
        }
        model.gating = Some(Gating {
            n_experts,
            expert_of_tree,
            leaf_site_share,
        });
        Ok(model)
    }

    /// A soft-voting model whose site forests score only the rows their sites' category supports
    /// cover (see [`crate::merge_support`]). The gate is checked against the forest (see
    /// [`SupportGate`]).
    pub(crate) fn with_support(
        forest: Forest,
        sources: Vec<TreeRef>,
        gate: SupportGate,
    ) -> Result<GlobalModel, FederationError> {
        let mut model = GlobalModel::new(forest, Voting::Soft, Vec::new(), sources)?;
        gate.check(&model.forest)?;
        model.support = Some(gate);
        Ok(model)
    }

    /// The site gating, for a mixture of site experts.
    pub fn gating(&self) -> Option<&Gating> {
        self.gating.as_ref()
    }

    /// The category-support gate, for the `support` strategy.
    pub fn support(&self) -> Option<&SupportGate> {
        self.support.as_ref()
    }

    /// The merged forest (its own [`Forest::predict`] is soft voting).
    pub fn forest(&self) -> &Forest {
        &self.forest
    }

    /// How the trees vote.
    pub fn voting(&self) -> Voting {
        self.voting
    }

    /// Per tree, per class vote weights (empty unless [`Voting::Weighted`]).
    pub fn class_weights(&self) -> &[Vec<f64>] {
        &self.class_weights
    }

    /// Where each tree came from, in forest order.
    pub fn sources(&self) -> &[TreeRef] {
        &self.sources
    }

    /// The number of trees.
    pub fn n_trees(&self) -> usize {
        self.forest.trees().len()
    }

    /// The predicted class of each row: the most probable class of [`GlobalModel::predict_proba`]
    /// (lowest class index on ties).
    pub fn predict(&self, x: &FeatureMatrix) -> Result<Vec<u32>, FederationError> {
        if self.support.is_none() && self.gating.is_none() && self.voting == Voting::Soft {
            // The same argmax, with the forest's early exits.
            return self
                .forest
                .predict(x)
                .map_err(FederationError::forest("predicting with the global model"));
        }
        let scores = self.scores(x)?;
        Ok(scores
            .chunks_exact(self.forest.n_classes().max(1))
            .map(|row| argmax_class(row) as u32)
            .collect())
    }

    /// Class probabilities of each row, row-major: `n_rows * n_classes` values, row `r` at
    /// `[r * n_classes..(r + 1) * n_classes]`, each row summing to 1 (up to rounding).
    ///
    /// * [`Voting::Soft`]: the forest's mean leaf probabilities;
    /// * [`Voting::Simple`] / [`Voting::Weighted`]: each class's share of the (weighted) votes;
    /// * gated ([`Gating`]) or support-gated ([`SupportGate`]) models: the mixture of the site
    ///   experts' probabilities.
    ///
    /// Each is the score [`GlobalModel::predict`] takes the argmax of, divided by its row sum,
    /// and the argmax of every row is exactly the class `predict` returns: where rounding makes
    /// the predicted class tie with a lower one, its probability is raised by one ulp. A row whose
    /// scores are all zero is uniform; a row whose sum overflows is one-hot on the predicted
    /// class.
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Result<Vec<f32>, FederationError> {
        let mut scores = self.scores(x)?;
        let c = self.forest.n_classes().max(1);
        scores.par_chunks_mut(c).for_each(normalize_row);
        Ok(scores)
    }

    /// The unnormalized class scores of each row, row-major: what [`GlobalModel::predict`] takes
    /// the argmax of and [`GlobalModel::predict_proba`] normalizes.
    fn scores(&self, x: &FeatureMatrix) -> Result<Vec<f32>, FederationError> {
        let context = "predicting with the global model";
        if let Some(gate) = &self.support {
            self.check_features(x)?;
            return Ok(gate.scores(self, x));
        }
        if let Some(g) = &self.gating {
            return self.gated_scores(g, x);
        }
        match self.voting {
            Voting::Soft => self
                .forest
                .predict_proba(x)
                .map_err(FederationError::forest(context)),
            Voting::Simple | Voting::Weighted => {
                let votes = self
                    .forest
                    .tree_predictions(x)
                    .map_err(FederationError::forest(context))?;
                Ok(self.tally(&votes, x.n_rows()))
            }
        }
    }

    /// Gated predictions walk trees row by row, so they check the feature count themselves.
    fn check_features(&self, x: &FeatureMatrix) -> Result<(), FederationError> {
        let nf = self.forest.schema().features.len();
        if x.n_features() != nf {
            return Err(FederationError::InvalidInput(format!(
                "input has {} features but the model expects {nf}",
                x.n_features()
            )));
        }
        Ok(())
    }

    /// The gated mixture `sum_s g(s | x) * P_s(c | x)` of each row, row-major (the gate
    /// unnormalized: summed, not averaged, over trees).
    fn gated_scores(&self, g: &Gating, x: &FeatureMatrix) -> Result<Vec<f32>, FederationError> {
        self.check_features(x)?;
        let nf = x.n_features();
        let c = self.forest.n_classes();
        let e = g.n_experts;
        let trees = self.forest.trees();
        let mut n_trees_of = vec![0f32; e];
        for &o in &g.expert_of_tree {
            n_trees_of[o] += 1.0;
        }
        let rows = x.to_row_major();
        let mut out = vec![0f32; x.n_rows() * c];
        out.par_chunks_mut(c.max(1))
            .zip(rows.par_chunks(nf.max(1)))
            .for_each(|(proba, row)| {
                let mut gate = vec![0f32; e];
                let mut expert = vec![0f32; e * c];
                for (t, tree) in trees.iter().enumerate() {
                    let leaf = tree.leaf_of(row);
                    let share = &g.leaf_site_share[t][leaf * e..(leaf + 1) * e];
                    for (a, &v) in gate.iter_mut().zip(share) {
                        *a += v;
                    }
                    let o = g.expert_of_tree[t];
                    for (a, &p) in expert[o * c..(o + 1) * c]
                        .iter_mut()
                        .zip(tree.predict_proba_row(row))
                    {
                        *a += p;
                    }
                }
                for s in 0..e {
                    let w = gate[s] / n_trees_of[s];
                    for (p, &v) in proba.iter_mut().zip(&expert[s * c..(s + 1) * c]) {
                        *p += w * v;
                    }
                }
            });
        Ok(out)
    }

    /// Hard votes `[tree][row]` tallied into (weighted) vote counts per row, row-major.
    fn tally(&self, votes: &[Vec<u32>], n_rows: usize) -> Vec<f32> {
        let c = self.forest.n_classes();
        let mut out = vec![0f32; n_rows * c];
        out.par_chunks_mut(c.max(1))
            .enumerate()
            .for_each(|(r, acc)| {
                for (t, tree_votes) in votes.iter().enumerate() {
                    let class = tree_votes[r] as usize;
                    let w = match self.voting {
                        Voting::Weighted => self.class_weights[t][class] as f32,
                        _ => 1.0,
                    };
                    acc[class] += w;
                }
            });
        out
    }
}

/// Turns one row of non-negative scores into probabilities whose argmax is the argmax of the
/// scores (see [`GlobalModel::predict_proba`]).
fn normalize_row(row: &mut [f32]) {
    if row.is_empty() {
        return;
    }
    let best = argmax_class(row);
    let sum: f32 = row.iter().sum();
    if sum == 0.0 {
        let u = 1.0 / row.len() as f32;
        row.iter_mut().for_each(|v| *v = u);
    } else if !(sum.is_finite() && sum > 0.0) {
        row.iter_mut().for_each(|v| *v = 0.0);
        row[best] = 1.0;
    } else {
        row.iter_mut().for_each(|v| *v /= sum);
        // Division is monotone but may round two nearly equal scores to the same value, which
        // would hand a tie to a lower class: lift the predicted class by one ulp.
        if argmax_class(row) != best {
            row[best] = f32::from_bits(row[best].to_bits() + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_rows_sum_to_one_and_keep_the_argmax() {
        let mut row = [1.0, 3.0, 0.0];
        normalize_row(&mut row);
        assert_eq!(row, [0.25, 0.75, 0.0]);
        let mut zero = [0.0f32; 4];
        normalize_row(&mut zero);
        assert_eq!(zero, [0.25; 4]);
        let mut overflow = [f32::MAX, f32::MAX, 1.0];
        normalize_row(&mut overflow);
        assert_eq!(overflow, [1.0, 0.0, 0.0]);
        let mut nan = [1.0, f32::NAN];
        normalize_row(&mut nan);
        assert_eq!(nan, [1.0, 0.0]);
        normalize_row(&mut []);
    }

    #[test]
    fn rounding_never_hands_the_predicted_class_to_a_lower_one() {
        // Adjacent floats b < a just below 2, the largest scores of a row summing to just below
        // 8, whose quotients by the sum round to the same value (just above 0.25, where the ulp
        // is relatively coarse).
        let mut found = 0;
        for bits in 2.0f32.to_bits() - 200..2.0f32.to_bits() - 1 {
            let (b, a) = (f32::from_bits(bits), f32::from_bits(bits + 1));
            let mut row = [b, a, 1.3, 1.3, 1.3];
            let sum: f32 = row.iter().sum();
            if b / sum != a / sum {
                continue;
            }
            found += 1;
            normalize_row(&mut row);
            assert_eq!(argmax_class(&row), 1, "{b} {a} -> {row:?}");
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!(found > 0, "no rounding collision in the searched range");
    }
}
