//! Each site's contribution to the federation, derived from the ledger alone: the basis for
//! incentives between partners.
//!
//! What the numbers mean, for one site:
//!
//! - `models_contributed`, `train_rows`: the models it signed ([`Body::ModelContribution`]) and
//!   the rows they were trained on, over all rounds;
//! - `rounds_accepted`, `trees_accepted`: the rounds whose recorded aggregation kept at least one
//!   of its trees, and how many trees were kept, over all rounds;
//! - `evaluations`: the rounds whose global model it measured on its own validation rows
//!   ([`Body::Evaluation`]);
//! - `gain_brought_ppm`, **the validation gain its trees brought to the others**: in each round,
//!   every *other* site that evaluated the global model and measured the majority vote without
//!   this site's trees gives `vote_accuracy_ppm - accuracy without it` (positive: its trees made
//!   the vote better there). The per-round value is the mean over those sites (integer division,
//!   rounded toward zero), and the rounds are summed. `None` when no other site ever measured it.
//!   A site's measurement of itself is left out: it is not what it brought to the others.
//! - `gain_received_ppm`, **the validation gain the federation brought to it**: the sum over the
//!   rounds it evaluated of `global_accuracy_ppm - local_accuracy_ppm` (the global model against
//!   its own forest, on its own rows). `None` when it never evaluated.
//!
//! Gains are in parts per million of accuracy (10,000 ppm is one percentage point). They are what
//! the sites signed: the ledger checks their form (ranges, the round's recorded model, the sites
//! named), not the measurements themselves, which need the sites' private rows.
//!
//! [`Body::ModelContribution`]: crate::Body::ModelContribution
//! [`Body::Evaluation`]: crate::Body::Evaluation

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ledger::Ledger;

/// What one site brought, and what it received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteContribution {
    /// The site.
    pub site: String,
    /// Rounds in which it contributed a model.
    pub models_contributed: u64,
    /// Rounds whose global model kept at least one of its trees.
    pub rounds_accepted: u64,
    /// Its trees kept in global models, over all rounds.
    pub trees_accepted: u64,
    /// Rows its contributed forests were trained on, over all rounds.
    pub train_rows: u64,
    /// Rounds whose global model it evaluated.
    pub evaluations: u64,
    /// The validation gain its trees brought to the other sites, in ppm of accuracy: per round
    /// the mean (rounded toward zero) over the other sites' evaluations of the majority vote's
    /// accuracy minus its accuracy without this site's trees, summed over rounds (`None`: no
    /// other site measured it).
    pub gain_brought_ppm: Option<i64>,
    /// The validation gain the global models brought to this site, in ppm of accuracy: the sum
    /// over the rounds it evaluated of the global model's accuracy minus its own forest's
    /// (`None`: it never evaluated).
    pub gain_received_ppm: Option<i64>,
}

impl SiteContribution {
    fn new(site: &str) -> SiteContribution {
        SiteContribution {
            site: site.to_string(),
            models_contributed: 0,
            rounds_accepted: 0,
            trees_accepted: 0,
            train_rows: 0,
            evaluations: 0,
            gain_brought_ppm: None,
            gain_received_ppm: None,
        }
    }
}

fn slot<'a>(
    by_site: &'a mut BTreeMap<String, SiteContribution>,
    site: &str,
) -> &'a mut SiteContribution {
    by_site
        .entry(site.to_string())
        .or_insert_with(|| SiteContribution::new(site))
}

fn add(total: &mut Option<i64>, value: i64) {
    *total = Some(total.unwrap_or(0) + value);
}

/// Every site's contribution, sorted by site: every site that contributed, had trees accepted,
/// evaluated a global model or was measured by another site.
pub fn contributions(ledger: &Ledger) -> Vec<SiteContribution> {
    let mut by_site: BTreeMap<String, SiteContribution> = BTreeMap::new();
    for ((_, site), c) in ledger.contributions() {
        let s = slot(&mut by_site, site);
        s.models_contributed += 1;
        s.train_rows += c.n_train_rows;
    }
    for a in ledger.aggregations().values() {
        for acc in &a.accepted {
            let s = slot(&mut by_site, &acc.site);
            if acc.n_trees > 0 {
                s.rounds_accepted += 1;
            }
            s.trees_accepted += u64::from(acc.n_trees);
        }
    }
    // (round, measured site) -> the other sites' measurements of what its trees brought.
    let mut brought: BTreeMap<(u64, &str), Vec<i64>> = BTreeMap::new();
    for ((round, evaluator), e) in ledger.evaluations() {
        let s = slot(&mut by_site, evaluator);
        s.evaluations += 1;
        add(
            &mut s.gain_received_ppm,
            i64::from(e.global_accuracy_ppm) - i64::from(e.local_accuracy_ppm),
        );
        for (site, without) in &e.without {
            if site != evaluator {
                brought
                    .entry((*round, site.as_str()))
                    .or_default()
                    .push(i64::from(e.vote_accuracy_ppm) - i64::from(*without));
            }
        }
    }
    for ((_, site), gains) in brought {
        // Never empty; i64 division rounds toward zero.
        let mean = gains.iter().sum::<i64>() / gains.len() as i64;
        add(&mut slot(&mut by_site, site).gain_brought_ppm, mean);
    }
    by_site.into_values().collect()
}
