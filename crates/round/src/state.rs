//! A round's record and the pure rules that move it from phase to phase.
//!
//! No clock, network or disk here: the current time comes in as an argument, so every
//! transition (uploads closing on time or on the deadline, sites dropped, a round failing for
//! want of sites) is tested directly.

use std::collections::BTreeMap;

use fedids_federation::{MergeStrategy, Voting};
use fedids_forest::TreeScore;
use serde::{Deserialize, Serialize};

/// Where a round is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    /// Sites train and upload.
    Uploading,
    /// Uploads are closed; sites score candidate trees.
    Scoring,
    /// The global model is signed and served.
    Merged,
    /// The round cannot complete.
    Failed {
        /// Why, naming the missing sites.
        reason: String,
    },
}

/// An accepted upload (its bytes live in the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadMeta {
    /// Lowercase hex SHA-256 of the model file.
    pub hash: String,
    /// The site's Ed25519 signature (hex).
    pub signature: String,
    /// Model file size.
    pub n_bytes: u64,
    /// Trees in the forest.
    pub n_trees: u32,
}

/// What a site sent back from scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteScores {
    /// One score per candidate, in candidate order.
    #[serde(with = "nan_safe")]
    pub scores: Vec<TreeScore>,
    /// Rows the site trained on.
    pub n_train_rows: u64,
    /// The site's category support, JSON.
    pub support_json: String,
    /// The site's signed ledger entry for its contribution (empty when none was sent).
    #[serde(default)]
    pub ledger_entry: Vec<u8>,
}

/// Tree scores hold `NaN` recalls for classes without rows; JSON has no `NaN`, so they are stored
/// as `null` and read back as `NaN`.
mod nan_safe {
    use fedids_forest::TreeScore;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Stored {
        accuracy: f64,
        class_recall: Vec<Option<f64>>,
        class_support: Vec<u64>,
    }

    pub fn serialize<S: Serializer>(scores: &[TreeScore], s: S) -> Result<S::Ok, S::Error> {
        let stored: Vec<Stored> = scores
            .iter()
            .map(|t| Stored {
                accuracy: t.accuracy,
                class_recall: t
                    .class_recall
                    .iter()
                    .map(|&r| (!r.is_nan()).then_some(r))
                    .collect(),
                class_support: t.class_support.clone(),
            })
            .collect();
        stored.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TreeScore>, D::Error> {
        let stored = Vec::<Stored>::deserialize(d)?;
        Ok(stored
            .into_iter()
            .map(|t| TreeScore {
                accuracy: t.accuracy,
                class_recall: t
                    .class_recall
                    .into_iter()
                    .map(|r| r.unwrap_or(f64::NAN))
                    .collect(),
                class_support: t.class_support,
            })
            .collect())
    }
}

/// The signed global model (its bytes live in the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalMeta {
    /// Lowercase hex SHA-256 of the global model file.
    pub hash: String,
    /// The coordinator's signature (hex).
    pub signature: String,
    /// Who signed it: the coordinator's name (with replicated coordinators, the node that was
    /// leader when the round merged). Empty in records written before it was recorded.
    #[serde(default)]
    pub signer: String,
    /// File size.
    pub n_bytes: u64,
    /// Trees in the global model.
    pub n_trees: u32,
    /// The sites whose forests entered the merge.
    pub merged_sites: Vec<String>,
}

/// Everything the coordinator knows about one round; persisted after every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Round id (1, 2, ...).
    pub id: u64,
    /// The round's random nonce, which upload signatures bind.
    pub nonce: Vec<u8>,
    /// Merge strategy, command-line spelling.
    pub strategy: String,
    /// Trees each site grows.
    pub trees_per_site: u32,
    /// Share of each site's rows kept for validation.
    pub validation_fraction: f64,
    /// The current phase.
    pub phase: Phase,
    /// When the round opened (unix ms).
    pub opened_ms: u64,
    /// When the current phase times out (unix ms).
    pub deadline_ms: u64,
    /// The sites expected to take part.
    pub expected: Vec<String>,
    /// Accepted uploads by site.
    pub uploads: BTreeMap<String, UploadMeta>,
    /// The sites whose uploads were in when uploads closed, sorted.
    pub survivors: Vec<String>,
    /// Scores by site.
    pub scores: BTreeMap<String, SiteScores>,
    /// Sites left out of the round, and why.
    pub missing: BTreeMap<String, String>,
    /// The global model, once merged.
    pub global: Option<GlobalMeta>,
    /// Milliseconds spent in each phase (`upload`, `scoring`, `merge`).
    pub phase_ms: BTreeMap<String, u64>,
    /// Model bytes received.
    pub bytes_received: u64,
    /// Each site's signed evaluation of the global model (ledger entry bytes), once merged.
    #[serde(default)]
    pub evaluations: BTreeMap<String, Vec<u8>>,
}

/// What the coordinator must do next with a round.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing yet.
    Wait,
    /// Close uploads and start scoring.
    CloseUploads,
    /// Every needed score is in (or time is up): merge.
    Merge,
    /// The round cannot complete.
    Fail(String),
}

/// Which candidate trees each site scores for a strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoring {
    /// No scores are needed (only training statistics come back).
    None,
    /// Each site scores its own trees.
    Own,
    /// Each site scores every tree of every site.
    Every,
}

impl Scoring {
    /// The scoring a strategy needs.
    pub fn of(strategy: &MergeStrategy) -> Scoring {
        match strategy {
            MergeStrategy::CrossSite { .. } => Scoring::Every,
            MergeStrategy::TopPerSite { .. } | MergeStrategy::TopGlobal { .. } => Scoring::Own,
            s if s.voting() == Voting::Weighted => Scoring::Own,
            _ => Scoring::None,
        }
    }
}

/// What opens a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    /// Round id.
    pub id: u64,
    /// The round's nonce.
    pub nonce: Vec<u8>,
    /// Merge strategy, command-line spelling.
    pub strategy: String,
    /// Trees each site grows.
    pub trees_per_site: u32,
    /// Share of each site's rows kept for validation.
    pub validation_fraction: f64,
    /// The sites expected.
    pub expected: Vec<String>,
}

impl RoundRecord {
    /// A round opened at `now_ms`, taking uploads until `deadline_ms`.
    pub fn open(o: Opening, now_ms: u64, deadline_ms: u64) -> RoundRecord {
        RoundRecord {
            id: o.id,
            nonce: o.nonce,
            strategy: o.strategy,
            trees_per_site: o.trees_per_site,
            validation_fraction: o.validation_fraction,
            phase: Phase::Uploading,
            opened_ms: now_ms,
            deadline_ms,
            expected: o.expected,
            uploads: BTreeMap::new(),
            survivors: Vec::new(),
            scores: BTreeMap::new(),
            missing: BTreeMap::new(),
            global: None,
            phase_ms: BTreeMap::new(),
            bytes_received: 0,
            evaluations: BTreeMap::new(),
        }
    }

    fn names(sites: impl IntoIterator<Item = impl AsRef<str>>) -> String {
        let v: Vec<String> = sites.into_iter().map(|s| s.as_ref().to_string()).collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    }

    /// The expected sites that have not uploaded.
    pub fn not_uploaded(&self) -> Vec<&str> {
        self.expected
            .iter()
            .filter(|s| !self.uploads.contains_key(*s))
            .map(String::as_str)
            .collect()
    }

    /// The survivors that have not sent scores.
    pub fn not_scored(&self) -> Vec<&str> {
        self.survivors
            .iter()
            .filter(|s| !self.scores.contains_key(*s))
            .map(String::as_str)
            .collect()
    }

    /// The next step at time `now_ms`, with at least `min_sites` sites needed.
    pub fn next_step(&self, now_ms: u64, min_sites: usize) -> Step {
        match self.phase {
            Phase::Uploading => {
                let missing = self.not_uploaded();
                if missing.is_empty() {
                    Step::CloseUploads
                } else if now_ms >= self.deadline_ms {
                    if self.uploads.len() >= min_sites {
                        Step::CloseUploads
                    } else {
                        Step::Fail(format!(
                            "round {}: {} of {} sites uploaded before the deadline, --min-sites is {min_sites}; missing: {}",
                            self.id,
                            self.uploads.len(),
                            self.expected.len(),
                            Self::names(missing)
                        ))
                    }
                } else {
                    Step::Wait
                }
            }
            Phase::Scoring => {
                let missing = self.not_scored();
                if missing.is_empty() {
                    Step::Merge
                } else if now_ms >= self.deadline_ms {
                    let scored = self.survivors.len() - missing.len();
                    if scored >= min_sites {
                        Step::Merge
                    } else {
                        Step::Fail(format!(
                            "round {}: {scored} of {} sites sent scores before the deadline, --min-sites is {min_sites}; missing: {}",
                            self.id,
                            self.survivors.len(),
                            Self::names(missing)
                        ))
                    }
                } else {
                    Step::Wait
                }
            }
            Phase::Merged | Phase::Failed { .. } => Step::Wait,
        }
    }

    /// Closes uploads at `now_ms`: the uploaders become the survivors, the others are missing,
    /// and scoring runs until `now_ms + scoring_ms`.
    pub fn close_uploads(&mut self, now_ms: u64, scoring_ms: u64) {
        self.survivors = self.uploads.keys().cloned().collect();
        let late: Vec<String> = self.not_uploaded().into_iter().map(String::from).collect();
        for site in late {
            self.missing
                .insert(site, "no upload before the deadline".to_string());
        }
        self.missing.retain(|s, _| !self.uploads.contains_key(s));
        self.phase_ms
            .insert("upload".into(), now_ms.saturating_sub(self.opened_ms));
        self.phase = Phase::Scoring;
        self.deadline_ms = now_ms.saturating_add(scoring_ms);
    }

    /// The sites whose forests enter the merge: survivors with scores. The others are recorded
    /// as missing.
    pub fn merge_sites(&mut self) -> Vec<String> {
        let (scored, unscored): (Vec<String>, Vec<String>) = self
            .survivors
            .iter()
            .cloned()
            .partition(|s| self.scores.contains_key(s));
        for site in unscored {
            self.missing.insert(
                site,
                "uploaded, but sent no scores before the deadline".into(),
            );
        }
        scored
    }

    /// The candidate trees `site` scores, as (owner site, tree index), for `scoring`.
    pub fn candidates_for(&self, site: &str, scoring: Scoring) -> Vec<(String, u32)> {
        let trees = |owner: &String| {
            let n = self.uploads.get(owner).map_or(0, |u| u.n_trees);
            let owner = owner.clone();
            (0..n).map(move |t| (owner.clone(), t))
        };
        match scoring {
            Scoring::None => Vec::new(),
            Scoring::Own => self
                .survivors
                .iter()
                .filter(|s| s.as_str() == site)
                .flat_map(trees)
                .collect(),
            Scoring::Every => self.survivors.iter().flat_map(trees).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expected: &[&str]) -> RoundRecord {
        let opening = Opening {
            id: 1,
            nonce: vec![0; 32],
            strategy: "top-global:10".into(),
            trees_per_site: 5,
            validation_fraction: 0.2,
            expected: expected.iter().map(|s| s.to_string()).collect(),
        };
        RoundRecord::open(opening, 1_000, 2_000)
    }

    fn upload(r: &mut RoundRecord, site: &str, n_trees: u32) {
        r.uploads.insert(
            site.into(),
            UploadMeta {
                hash: "h".into(),
                signature: "s".into(),
                n_bytes: 10,
                n_trees,
            },
        );
    }

    fn scores(r: &mut RoundRecord, site: &str) {
        r.scores.insert(
            site.into(),
            SiteScores {
                scores: Vec::new(),
                n_train_rows: 1,
                support_json: String::new(),
                ledger_entry: Vec::new(),
            },
        );
    }

    #[test]
    fn uploads_close_when_everyone_is_in() {
        let mut r = record(&["a", "b"]);
        upload(&mut r, "a", 2);
        assert_eq!(r.next_step(1_500, 1), Step::Wait);
        upload(&mut r, "b", 3);
        assert_eq!(r.next_step(1_500, 2), Step::CloseUploads);
        r.close_uploads(1_500, 1_000);
        assert_eq!(r.phase, Phase::Scoring);
        assert_eq!(r.deadline_ms, 2_500);
        assert_eq!(r.phase_ms["upload"], 500);
        assert!(r.missing.is_empty());
    }

    #[test]
    fn deadline_closes_with_min_sites_and_names_the_missing() {
        let mut r = record(&["a", "b", "c"]);
        upload(&mut r, "a", 2);
        upload(&mut r, "c", 2);
        assert_eq!(r.next_step(1_999, 2), Step::Wait);
        assert_eq!(r.next_step(2_000, 2), Step::CloseUploads);
        assert_eq!(
            r.next_step(2_000, 3),
            Step::Fail(
                "round 1: 2 of 3 sites uploaded before the deadline, --min-sites is 3; missing: b"
                    .into()
            )
        );
        r.close_uploads(2_000, 100);
        assert_eq!(r.survivors, ["a", "c"]);
        assert_eq!(r.missing["b"], "no upload before the deadline");
    }

    #[test]
    fn scoring_waits_for_survivors_then_drops_the_silent() {
        let mut r = record(&["a", "b", "c"]);
        for s in ["a", "b", "c"] {
            upload(&mut r, s, 1);
        }
        r.close_uploads(1_100, 100);
        scores(&mut r, "a");
        scores(&mut r, "b");
        assert_eq!(r.next_step(1_150, 2), Step::Wait);
        assert_eq!(r.next_step(1_200, 2), Step::Merge);
        assert!(matches!(r.next_step(1_200, 3), Step::Fail(m) if m.ends_with("missing: c")));
        assert_eq!(r.merge_sites(), ["a", "b"]);
        assert!(r.missing["c"].contains("no scores"));
        scores(&mut r, "c");
        assert_eq!(r.next_step(1_150, 3), Step::Merge);
    }

    #[test]
    fn records_with_nan_recalls_survive_json() {
        let mut r = record(&["a"]);
        r.scores.insert(
            "a".into(),
            SiteScores {
                scores: vec![TreeScore {
                    accuracy: 0.5,
                    class_recall: vec![0.25, f64::NAN],
                    class_support: vec![4, 0],
                }],
                n_train_rows: 9,
                support_json: "{}".into(),
                ledger_entry: vec![1, 2],
            },
        );
        let json = serde_json::to_string(&r).unwrap();
        let back: RoundRecord = serde_json::from_str(&json).unwrap();
        let t = &back.scores["a"].scores[0];
        assert_eq!(t.class_recall[0], 0.25);
        assert!(t.class_recall[1].is_nan());
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn candidates_follow_the_strategy() {
        let mut r = record(&["a", "b"]);
        upload(&mut r, "a", 2);
        upload(&mut r, "b", 1);
        r.close_uploads(1_100, 100);
        assert!(r.candidates_for("a", Scoring::None).is_empty());
        assert_eq!(r.candidates_for("b", Scoring::Own), [("b".to_string(), 0)]);
        assert_eq!(r.candidates_for("a", Scoring::Every).len(), 3);
        for (spec, want) in [
            ("top-global:5", Scoring::Own),
            ("top-per-site:2", Scoring::Own),
            ("cross-site:5", Scoring::Every),
            ("all", Scoring::None),
            ("all:wv", Scoring::Own),
            ("support", Scoring::None),
        ] {
            let s: MergeStrategy = spec.parse().unwrap();
            assert_eq!(Scoring::of(&s), want, "{spec}");
        }
    }
}
