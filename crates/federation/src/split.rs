//! Row splits: a site's local train/validation split, and the published protocol's one random
//! train/test split of a single dataset with small classes dropped.

use fedids_data::{Dataset, LoadReport};
use serde::{Deserialize, Serialize};

use crate::error::FederationError;
use fedids_rng::{derive_seed, Rng};

/// A site's rows split into local training and validation rows. Validation rows never leave the
/// site: only tree scores computed on them do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSplit {
    /// Training rows, ascending.
    pub train: Vec<usize>,
    /// Validation rows, ascending.
    pub validation: Vec<usize>,
}

const STREAM_LOCAL_SPLIT: u64 = 2;
const STREAM_PROTOCOL_SPLIT: u64 = 3;

/// Splits `rows` (indices into `y`) into training and validation rows, stratified by class: of
/// each class's `n` rows, `round(validation_fraction * n)` go to validation, but at least one row
/// of a class stays in training. `validation_fraction` must be in `[0, 1)`.
pub fn local_split(
    y: &[u32],
    rows: &[usize],
    validation_fraction: f64,
    seed: u64,
) -> Result<LocalSplit, FederationError> {
    if !(0.0..1.0).contains(&validation_fraction) {
        return Err(FederationError::InvalidInput(format!(
            "validation fraction must be in [0, 1), found {validation_fraction}"
        )));
    }
    let (train, validation) = stratified_split(
        y,
        rows,
        validation_fraction,
        derive_seed(seed, STREAM_LOCAL_SPLIT, 0),
    )?;
    Ok(LocalSplit { train, validation })
}

/// Per class: shuffle, then the first `round(fraction * n)` rows (at most `n - 1`) go to the
/// second part. Both parts are returned sorted.
fn stratified_split(
    y: &[u32],
    rows: &[usize],
    fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), FederationError> {
    let n_classes = y.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for &r in rows {
        let Some(&c) = y.get(r) else {
            return Err(FederationError::InvalidInput(format!(
                "row {r} is out of range ({} labels)",
                y.len()
            )));
        };
        by_class[c as usize].push(r);
    }
    let mut rng = Rng::new(seed);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for mut class_rows in by_class {
        rng.shuffle(&mut class_rows);
        let n = class_rows.len();
        let k = ((fraction * n as f64).round() as usize).min(n.saturating_sub(1));
        second.extend_from_slice(&class_rows[..k]);
        first.extend_from_slice(&class_rows[k..]);
    }
    first.sort_unstable();
    second.sort_unstable();
    Ok((first, second))
}

/// What the published protocol's split kept and dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolSplitSummary {
    /// Classes kept (more than `min_class_rows` rows), in their new order.
    pub classes: Vec<String>,
    /// Classes dropped, with their row counts.
    pub dropped_classes: Vec<(String, u64)>,
    /// Rows in the training part (local training plus local validation rows).
    pub n_train_rows: u64,
    /// Rows in the test part.
    pub n_test_rows: u64,
}

/// The published protocol's data split of one dataset: classes with `min_class_rows` rows or
/// fewer are dropped (the remaining classes keep their order and are re-indexed), then one seeded,
/// stratified random split puts `test_fraction` of the rows into the test set.
///
/// The 70/10/20 protocol is `test_fraction = 0.2` here, followed by each site keeping 1/8 of its
/// share for validation ([`local_split`] with `0.125`).
pub fn protocol_split(
    data: &Dataset,
    test_fraction: f64,
    min_class_rows: u64,
    seed: u64,
) -> Result<(Dataset, Dataset, ProtocolSplitSummary), FederationError> {
    if !(0.0..1.0).contains(&test_fraction) {
        return Err(FederationError::InvalidInput(format!(
            "test fraction must be in [0, 1), found {test_fraction}"
        )));
    }
    let n_classes = data.schema.classes.len();
    let mut counts = vec![0u64; n_classes];
    for &c in &data.y {
        if let Some(k) = counts.get_mut(c as usize) {
            *k += 1;
        }
    }
    let keep: Vec<bool> = counts.iter().map(|&k| k > min_class_rows).collect();
    let mut new_index = vec![u32::MAX; n_classes];
    let mut next = 0u32;
    for (c, &k) in keep.iter().enumerate() {
        if k {
            new_index[c] = next;
            next += 1;
        }
    }
    if next == 0 {
        return Err(FederationError::InvalidInput(format!(
            "no class has more than {min_class_rows} rows"
        )));
    }
    let kept_rows: Vec<usize> = (0..data.y.len())
        .filter(|&r| keep.get(data.y[r] as usize) == Some(&true))
        .collect();
    let mut schema = data.schema.clone();
    schema.classes = schema
        .classes
        .iter()
        .zip(&keep)
        .filter(|(_, &k)| k)
        .map(|(c, _)| c.clone())
        .collect();
    let dropped_classes = data
        .schema
        .classes
        .iter()
        .zip(&counts)
        .zip(&keep)
        .filter(|(_, &k)| !k)
        .map(|((c, &n), _)| (c.clone(), n))
        .collect();
    let (train_rows, test_rows) = stratified_split(
        &data.y,
        &kept_rows,
        test_fraction,
        derive_seed(seed, STREAM_PROTOCOL_SPLIT, 0),
    )?;
    let subset = |rows: &[usize], part: &str| Dataset {
        schema: schema.clone(),
        x: data.x.select_rows(rows),
        y: rows
            .iter()
            .map(|&r| new_index[data.y[r] as usize])
            .collect(),
        report: LoadReport {
            source: format!("{} ({part})", data.report.source),
            n_rows: rows.len(),
            ..LoadReport::default()
        },
    };
    let summary = ProtocolSplitSummary {
        classes: schema.classes.clone(),
        dropped_classes,
        n_train_rows: train_rows.len() as u64,
        n_test_rows: test_rows.len() as u64,
    };
    Ok((
        subset(&train_rows, "train"),
        subset(&test_rows, "test"),
        summary,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::{binary_schema, two_blobs};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn local_split_is_a_stratified_partition(
            n in 1usize..300,
            fraction in 0.0f64..0.9,
            seed in 0u64..1000,
        ) {
            let y: Vec<u32> = (0..n).map(|i| (i % 3 == 0) as u32).collect();
            let rows: Vec<usize> = (0..n).filter(|r| r % 5 != 4).collect();
            let s = local_split(&y, &rows, fraction, seed).unwrap();
            let mut all: Vec<usize> = s.train.iter().chain(&s.validation).copied().collect();
            all.sort_unstable();
            prop_assert_eq!(&all, &rows);
            for c in 0..2u32 {
                let n_c = rows.iter().filter(|&&r| y[r] == c).count();
                let v_c = s.validation.iter().filter(|&&r| y[r] == c).count();
                let want = ((fraction * n_c as f64).round() as usize).min(n_c.saturating_sub(1));
                prop_assert_eq!(v_c, want);
            }
            prop_assert_eq!(local_split(&y, &rows, fraction, seed).unwrap(), s);
        }
    }

    #[test]
    fn protocol_split_drops_small_classes() {
        let (x, mut y) = two_blobs(100, 2);
        for l in y.iter_mut().take(10) {
            *l = 2;
        }
        let mut schema = binary_schema(2);
        schema.classes.push("rare".into());
        let data = Dataset {
            schema,
            x,
            y,
            report: LoadReport::default(),
        };
        let (train, test, summary) = protocol_split(&data, 0.2, 10, 0).unwrap();
        assert_eq!(summary.classes, ["normal", "attack"]);
        assert_eq!(summary.dropped_classes, [("rare".to_string(), 10)]);
        assert_eq!(train.y.len() + test.y.len(), 90);
        assert_eq!(test.y.len(), 18);
        assert!(train.y.iter().chain(&test.y).all(|&c| c < 2));
        assert_eq!(train.schema.classes.len(), 2);
        let err = local_split(&[0], &[0], 1.0, 0).unwrap_err().to_string();
        assert_eq!(err, "validation fraction must be in [0, 1), found 1");
    }
}
