//! Each site's contribution to the federation, derived from the ledger alone: the basis for
//! incentives between partners.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ledger::Ledger;

/// What one site brought.
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
    /// Sum over the rounds that measured it of the validation gain the global model brought the
    /// site, in parts per million of accuracy (`None`: no round measured it).
    pub validation_gain_ppm: Option<i64>,
}

/// Every site's contribution, sorted by site.
pub fn contributions(ledger: &Ledger) -> Vec<SiteContribution> {
    let mut by_site: BTreeMap<String, SiteContribution> = BTreeMap::new();
    let entry = |m: &mut BTreeMap<String, SiteContribution>, site: &str| {
        m.entry(site.to_string())
            .or_insert_with(|| SiteContribution {
                site: site.to_string(),
                models_contributed: 0,
                rounds_accepted: 0,
                trees_accepted: 0,
                train_rows: 0,
                validation_gain_ppm: None,
            })
            .clone()
    };
    for ((_, site), c) in ledger.contributions() {
        let mut s = entry(&mut by_site, site);
        s.models_contributed += 1;
        s.train_rows += c.n_train_rows;
        by_site.insert(site.clone(), s);
    }
    for a in ledger.aggregations().values() {
        for acc in &a.accepted {
            let mut s = entry(&mut by_site, &acc.site);
            if acc.n_trees > 0 {
                s.rounds_accepted += 1;
            }
            s.trees_accepted += u64::from(acc.n_trees);
            if let Some(g) = acc.validation_gain_ppm {
                s.validation_gain_ppm = Some(s.validation_gain_ppm.unwrap_or(0) + g);
            }
            by_site.insert(acc.site.clone(), s);
        }
    }
    by_site.into_values().collect()
}
