//! Which rows does each site hold? Seeded partitioners over a pooled dataset.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use fedids_data::{FeatureKind, FeatureMatrix, Schema};
use serde::{Deserialize, Serialize};

use crate::error::FederationError;
use fedids_rng::{derive_seed, Rng};

/// How rows are dealt to sites. Parsed from `iid`, `dirichlet:ALPHA`, `by-class:K` and
/// `by-feature:COLUMN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PartitionSpec {
    /// Rows shuffled and dealt into `n_sites` equal shares.
    Iid,
    /// Label skew: each class's rows are split over the sites by proportions drawn from a
    /// symmetric Dirichlet(`alpha`) (small `alpha`, strong skew).
    Dirichlet {
        /// Concentration, `> 0`.
        alpha: f64,
    },
    /// Every site sees benign traffic (class 0, dealt iid) plus only `k` attack classes. Attack
    /// classes are assigned round-robin over a seeded shuffle, so together the sites cover every
    /// attack class; a class held by several sites is split evenly among them.
    ByClass {
        /// Attack classes per site, `>= 1`.
        k: usize,
    },
    /// One site per distinct value of the feature `column` (the published protocol). The column
    /// is removed from every site's inputs; `n_sites` is ignored.
    ByFeature {
        /// The feature name, as in the schema.
        column: String,
    },
}

impl fmt::Display for PartitionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionSpec::Iid => write!(f, "iid"),
            PartitionSpec::Dirichlet { alpha } => write!(f, "dirichlet:{alpha}"),
            PartitionSpec::ByClass { k } => write!(f, "by-class:{k}"),
            PartitionSpec::ByFeature { column } => write!(f, "by-feature:{column}"),
        }
    }
}

impl FromStr for PartitionSpec {
    type Err = FederationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |expected: &str| FederationError::Spec {
            what: "partition",
            found: s.to_string(),
            expected: expected.to_string(),
        };
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        match (name, arg) {
            ("iid", None) => Ok(PartitionSpec::Iid),
            ("dirichlet", Some(a)) => match a.parse::<f64>() {
                Ok(alpha) if alpha > 0.0 && alpha.is_finite() => {
                    Ok(PartitionSpec::Dirichlet { alpha })
                }
                _ => Err(bad("expected dirichlet:ALPHA with ALPHA a positive number")),
            },
            ("by-class", Some(a)) => match a.parse::<usize>() {
                Ok(k) if k > 0 => Ok(PartitionSpec::ByClass { k }),
                _ => Err(bad("expected by-class:K with K a positive integer")),
            },
            ("by-feature", Some(a)) if !a.trim().is_empty() => Ok(PartitionSpec::ByFeature {
                column: a.trim().to_string(),
            }),
            _ => Err(bad(
                "expected 'iid', 'dirichlet:ALPHA', 'by-class:K' or 'by-feature:COLUMN'",
            )),
        }
    }
}

/// The rows one site holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteShare {
    /// `site-0`, `site-1`, ... or, by feature, the feature value (`tcp`).
    pub name: String,
    /// Row indices into the partitioned dataset, ascending.
    pub rows: Vec<usize>,
}

/// The result of partitioning: sites, dropped sites, and the common site schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// The partition that was made.
    pub spec: PartitionSpec,
    /// Kept sites (at least `min_site_rows` rows each), in a deterministic order: by index, or by
    /// feature value.
    pub sites: Vec<SiteShare>,
    /// Sites dropped for having fewer than `min_site_rows` rows.
    pub dropped: Vec<SiteShare>,
    /// The schema every site trains with (the input schema minus the by-feature column).
    pub schema: Schema,
    /// By feature: the column's index in the input schema (removed from every site's inputs).
    pub removed_feature: Option<usize>,
}

impl Partition {
    /// `x` with the by-feature column removed, if any: what every site's model reads.
    pub fn project(&self, x: &FeatureMatrix) -> FeatureMatrix {
        match self.removed_feature {
            Some(f) => x.without_feature(f),
            None => x.clone(),
        }
    }

    /// Rows per site per class.
    pub fn summary(&self, y: &[u32]) -> PartitionSummary {
        let n_classes = self.schema.classes.len();
        let site = |s: &SiteShare| {
            let mut class_counts = vec![0u64; n_classes];
            for &r in &s.rows {
                if let Some(c) = y.get(r).and_then(|&c| class_counts.get_mut(c as usize)) {
                    *c += 1;
                }
            }
            SiteSummary {
                name: s.name.clone(),
                n_rows: s.rows.len() as u64,
                class_counts,
            }
        };
        PartitionSummary {
            spec: self.spec.to_string(),
            classes: self.schema.classes.clone(),
            removed_feature: self.removed_feature.map(|_| match &self.spec {
                PartitionSpec::ByFeature { column } => column.clone(),
                _ => String::new(),
            }),
            sites: self.sites.iter().map(site).collect(),
            dropped: self.dropped.iter().map(site).collect(),
        }
    }
}

/// Rows per class of one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteSummary {
    /// The site's name.
    pub name: String,
    /// Rows the site holds.
    pub n_rows: u64,
    /// Rows per class, indexed like [`PartitionSummary::classes`].
    pub class_counts: Vec<u64>,
}

/// Rows per site per class: printed, and written to reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionSummary {
    /// The partition spec, as parsed (`by-feature:protocol_type`).
    pub spec: String,
    /// Class names.
    pub classes: Vec<String>,
    /// By feature: the column removed from the inputs.
    pub removed_feature: Option<String>,
    /// Kept sites.
    pub sites: Vec<SiteSummary>,
    /// Sites dropped for being smaller than the minimum site size.
    pub dropped: Vec<SiteSummary>,
}

const STREAM_PARTITION: u64 = 1;

/// Deals the rows of (`x`, `y`) to sites.
///
/// `n_sites` is ignored by [`PartitionSpec::ByFeature`]. Sites with fewer than `min_site_rows`
/// rows are dropped and listed in [`Partition::dropped`]; their rows belong to no site. Every row
/// belongs to at most one site. The result depends only on the inputs and `seed`.
pub fn partition(
    schema: &Schema,
    x: &FeatureMatrix,
    y: &[u32],
    spec: &PartitionSpec,
    n_sites: usize,
    min_site_rows: usize,
    seed: u64,
) -> Result<Partition, FederationError> {
    let fail = |message: String| FederationError::Partition {
        spec: spec.to_string(),
        message,
    };
    if x.n_rows() != y.len() {
        return Err(fail(format!(
            "{} rows of features and {} labels",
            x.n_rows(),
            y.len()
        )));
    }
    let n_classes = schema.classes.len();
    if let Some(&bad) = y.iter().find(|&&c| c as usize >= n_classes) {
        return Err(fail(format!(
            "label {bad} is not one of the schema's {n_classes} classes"
        )));
    }
    if !matches!(spec, PartitionSpec::ByFeature { .. }) && n_sites == 0 {
        return Err(fail("expected at least 1 site, found 0".to_string()));
    }
    let mut rng = Rng::new(derive_seed(seed, STREAM_PARTITION, 0));
    let rows_of_class = |c: u32| -> Vec<usize> {
        y.iter()
            .enumerate()
            .filter(|(_, &l)| l == c)
            .map(|(r, _)| r)
            .collect()
    };
    let named = |shares: Vec<Vec<usize>>| -> Vec<SiteShare> {
        shares
            .into_iter()
            .enumerate()
            .map(|(i, rows)| SiteShare {
                name: format!("site-{i}"),
                rows,
            })
            .collect()
    };
    let (mut shares, site_schema, removed_feature) = match spec {
        PartitionSpec::Iid => {
            let mut rows: Vec<usize> = (0..y.len()).collect();
            rng.shuffle(&mut rows);
            let mut shares = vec![Vec::new(); n_sites];
            deal_even(&rows, &mut shares, &(0..n_sites).collect::<Vec<_>>());
            (named(shares), schema.clone(), None)
        }
        PartitionSpec::Dirichlet { alpha } => {
            let mut shares = vec![Vec::new(); n_sites];
            for c in 0..n_classes as u32 {
                let mut rows = rows_of_class(c);
                rng.shuffle(&mut rows);
                let weights: Vec<f64> = (0..n_sites).map(|_| rng.gamma(*alpha)).collect();
                let counts = apportion(rows.len(), &weights);
                let mut start = 0;
                for (share, n) in shares.iter_mut().zip(counts) {
                    share.extend_from_slice(&rows[start..start + n]);
                    start += n;
                }
            }
            (named(shares), schema.clone(), None)
        }
        PartitionSpec::ByClass { k } => {
            let mut shares = vec![Vec::new(); n_sites];
            let all_sites: Vec<usize> = (0..n_sites).collect();
            let mut benign = rows_of_class(0);
            rng.shuffle(&mut benign);
            deal_even(&benign, &mut shares, &all_sites);
            let mut attacks: Vec<u32> = (1..n_classes as u32).filter(|&c| y.contains(&c)).collect();
            rng.shuffle(&mut attacks);
            let n_attacks = attacks.len();
            let k = (*k).min(n_attacks);
            if n_sites * k < n_attacks {
                return Err(fail(format!(
                    "{n_sites} sites with {k} attack classes each cover at most {} of the {n_attacks} attack classes",
                    n_sites * k
                )));
            }
            // Site s holds the attack classes at positions s*k .. s*k+k (mod n_attacks).
            let mut holders: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for s in 0..n_sites {
                for j in 0..k {
                    let class = attacks[(s * k + j) % n_attacks];
                    let h = holders.entry(class).or_default();
                    if !h.contains(&s) {
                        h.push(s);
                    }
                }
            }
            for (&class, sites) in &holders {
                let mut rows = rows_of_class(class);
                rng.shuffle(&mut rows);
                deal_even(&rows, &mut shares, sites);
            }
            (named(shares), schema.clone(), None)
        }
        PartitionSpec::ByFeature { column } => {
            let Some(f) = schema.features.iter().position(|feat| &feat.name == column) else {
                let names: Vec<&str> = schema.features.iter().map(|f| f.name.as_str()).collect();
                return Err(fail(format!(
                    "no feature named '{column}' (features: {})",
                    names.join(", ")
                )));
            };
            if schema.features.len() < 2 {
                return Err(fail(format!(
                    "'{column}' is the only feature; nothing would be left to learn from"
                )));
            }
            let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for (r, &v) in x.column(f).iter().enumerate() {
                groups.entry(order_key(v)).or_default().push(r);
            }
            let feature = &schema.features[f];
            let shares = groups
                .into_values()
                .map(|rows| {
                    let v = x.get(rows[0], f);
                    SiteShare {
                        name: value_name(&feature.kind, v),
                        rows,
                    }
                })
                .collect();
            let mut site_schema = schema.clone();
            site_schema.features.remove(f);
            (shares, site_schema, Some(f))
        }
    };
    for s in &mut shares {
        s.rows.sort_unstable();
    }
    let (sites, dropped): (Vec<SiteShare>, Vec<SiteShare>) = shares
        .into_iter()
        .partition(|s| s.rows.len() >= min_site_rows.max(1));
    if sites.is_empty() {
        return Err(fail(format!(
            "no site has at least {} rows",
            min_site_rows.max(1)
        )));
    }
    Ok(Partition {
        spec: spec.clone(),
        sites,
        dropped,
        schema: site_schema,
        removed_feature,
    })
}

/// A key that orders finite `f32` values numerically when compared as `u32` (`-0.0` is `0.0`).
fn order_key(v: f32) -> u32 {
    let v = if v == 0.0 { 0.0 } else { v };
    let bits = v.to_bits();
    if v.is_sign_negative() {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The site name of a feature value: the category, or the number.
fn value_name(kind: &FeatureKind, v: f32) -> String {
    match kind {
        FeatureKind::Categorical { categories } => categories
            .get(v as usize)
            .cloned()
            .unwrap_or_else(|| "<unknown>".to_string()),
        FeatureKind::Numeric => format!("{v}"),
    }
}

/// Deals `rows` (already shuffled) round-robin to the sites `to`.
fn deal_even(rows: &[usize], shares: &mut [Vec<usize>], to: &[usize]) {
    if to.is_empty() {
        return;
    }
    for (i, &r) in rows.iter().enumerate() {
        shares[to[i % to.len()]].push(r);
    }
}

/// Splits `n` items in proportion to `weights` (largest remainder; ties to the lower index).
pub(crate) fn apportion(n: usize, weights: &[f64]) -> Vec<usize> {
    let total: f64 = weights.iter().filter(|w| w.is_finite()).sum();
    if weights.is_empty() {
        return Vec::new();
    }
    if total.is_nan() || total <= 0.0 {
        let mut out = vec![n / weights.len(); weights.len()];
        for o in out.iter_mut().take(n % weights.len()) {
            *o += 1;
        }
        return out;
    }
    let exact: Vec<f64> = weights
        .iter()
        .map(|w| {
            if w.is_finite() {
                w / total * n as f64
            } else {
                0.0
            }
        })
        .collect();
    let mut out: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = n - out.iter().sum::<usize>().min(n);
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::schema;
    use fedids_data::Feature;
    use proptest::prelude::*;

    /// Rows with a categorical first feature (`proto`, 3 values) and 4 classes.
    fn data(n: usize, seed: u64) -> (Schema, FeatureMatrix, Vec<u32>) {
        let mut rng = fedids_rng::Rng::new(seed);
        let mut s = schema(2, &["normal", "a", "b", "c"]);
        s.features[0] = Feature {
            name: "proto".into(),
            kind: FeatureKind::Categorical {
                categories: vec!["icmp".into(), "tcp".into(), "udp".into()],
            },
        };
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            rows.push(rng.below(3) as f32);
            rows.push(rng.unit() as f32);
            y.push(rng.below(4) as u32);
        }
        (s, FeatureMatrix::from_rows(n, 2, &rows), y)
    }

    fn specs() -> impl Strategy<Value = PartitionSpec> {
        prop_oneof![
            Just("iid"),
            Just("dirichlet:0.5"),
            Just("dirichlet:5"),
            Just("by-class:1"),
            Just("by-class:2"),
            Just("by-feature:proto"),
        ]
        .prop_map(|s| s.parse().unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn partitions_cover_rows_at_most_once(
            spec in specs(),
            n in 20usize..200,
            n_sites in 1usize..6,
            min_rows in 0usize..15,
            seed in 0u64..1000,
        ) {
            let (schema, x, y) = data(n, seed);
            let part = match partition(&schema, &x, &y, &spec, n_sites, min_rows, seed) {
                Ok(p) => p,
                // Only an impossible class cover or an all-small partition may fail.
                Err(e) => {
                    let m = e.to_string();
                    prop_assert!(m.contains("cover at most") || m.contains("no site has"), "{m}");
                    return Ok(());
                }
            };
            let mut seen = vec![false; n];
            for s in part.sites.iter().chain(&part.dropped) {
                for &r in &s.rows {
                    prop_assert!(!seen[r], "row {r} dealt twice");
                    seen[r] = true;
                }
            }
            for s in &part.sites {
                prop_assert!(s.rows.len() >= min_rows.max(1));
            }
            match &spec {
                PartitionSpec::ByFeature { .. } => {
                    prop_assert!(seen.iter().all(|&s| s), "by-feature deals every row");
                    prop_assert_eq!(part.schema.features.len(), 1);
                    prop_assert_eq!(part.removed_feature, Some(0));
                    for s in part.sites.iter() {
                        let v = x.get(s.rows[0], 0);
                        prop_assert!(s.rows.iter().all(|&r| x.get(r, 0) == v));
                        prop_assert_eq!(&s.name, &value_name(&schema.features[0].kind, v));
                    }
                }
                PartitionSpec::ByClass { k } => {
                    prop_assert_eq!(&part.schema, &schema);
                    for s in &part.sites {
                        let attacks: std::collections::BTreeSet<u32> =
                            s.rows.iter().map(|&r| y[r]).filter(|&c| c != 0).collect();
                        prop_assert!(attacks.len() <= *k);
                    }
                }
                _ => prop_assert_eq!(&part.schema, &schema),
            }
            let again = partition(&schema, &x, &y, &spec, n_sites, min_rows, seed).unwrap();
            prop_assert_eq!(again, part);
        }
    }

    #[test]
    fn specs_parse_and_print() {
        for text in [
            "iid",
            "dirichlet:0.5",
            "by-class:2",
            "by-feature:protocol_type",
        ] {
            assert_eq!(text.parse::<PartitionSpec>().unwrap().to_string(), text);
        }
        let err = "dirichlet:-1"
            .parse::<PartitionSpec>()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid partition 'dirichlet:-1': expected dirichlet:ALPHA with ALPHA a positive number"
        );
        assert!("by-class".parse::<PartitionSpec>().is_err());
        assert!("iid:3".parse::<PartitionSpec>().is_err());
    }

    #[test]
    fn by_feature_summary_and_errors() {
        let (schema, x, y) = data(60, 1);
        let spec: PartitionSpec = "by-feature:proto".parse().unwrap();
        let part = partition(&schema, &x, &y, &spec, 0, 1, 0).unwrap();
        let names: Vec<&str> = part.sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["icmp", "tcp", "udp"]);
        let summary = part.summary(&y);
        assert_eq!(summary.removed_feature.as_deref(), Some("proto"));
        let total: u64 = summary.sites.iter().flat_map(|s| &s.class_counts).sum();
        assert_eq!(total, 60);
        let big = part.sites.iter().map(|s| s.rows.len()).max().unwrap();
        let part = partition(&schema, &x, &y, &spec, 0, big, 0).unwrap();
        assert_eq!(part.sites.len(), 1);
        assert_eq!(part.dropped.len(), 2);
        let err = partition(
            &schema,
            &x,
            &y,
            &"by-feature:port".parse().unwrap(),
            0,
            1,
            0,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "partition by-feature:port: no feature named 'port' (features: proto, f1)"
        );
        let err = partition(&schema, &x, &y, &"by-class:1".parse().unwrap(), 2, 1, 0)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "partition by-class:1: 2 sites with 1 attack classes each cover at most 2 of the 3 attack classes"
        );
    }

    #[test]
    fn apportion_is_exact() {
        assert_eq!(apportion(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
        assert_eq!(apportion(5, &[0.0, 0.0]), vec![3, 2]);
        assert_eq!(apportion(7, &[3.0, 1.0]), vec![5, 2]);
        assert_eq!(apportion(0, &[1.0]), vec![0]);
    }
}
