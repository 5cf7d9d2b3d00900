//! Binning for the histogram split search.
//!
//! Each feature gets at most `max_bins` bins separated by cut points in raw feature units. A value
//! `x` falls in bin `#{cuts c : c < x}`, so `bin(x) <= k` exactly when `x <= cuts[k]`: a split
//! chosen on bins is stored as the raw threshold `cuts[k]` and means the same thing on raw data.
//! That is what keeps trees from different sites, binned on different data, interchangeable.

use fedids_data::FeatureMatrix;
use rayon::prelude::*;

/// The midpoint of two adjacent distinct values, guaranteed to satisfy `lo <= mid < hi`.
pub(crate) fn midpoint(lo: f32, hi: f32) -> f32 {
    let mid = lo / 2.0 + hi / 2.0;
    if mid >= hi || mid < lo || !mid.is_finite() {
        lo
    } else {
        mid
    }
}

/// Cut points of one feature: midpoints between consecutive distinct values, merged into at most
/// `max_bins` bins when the feature has more distinct values than that.
///
/// Bins are filled by a weight that counts rows and distinct values equally: a value seen in `c`
/// of the `n` rows, among `d` distinct values, weighs `c / n + 1 / d`. Pure row quantiles would
/// give a sparse range of values (a long tail of byte counts, where rare attacks sit) a handful of
/// wide bins, and splits inside them could not be found. Half the weight follows the rows, so
/// dense ranges still get fine bins. docs/performance.md has what this changed on KDD Cup 99.
pub(crate) fn feature_cuts(column: &[f32], max_bins: usize) -> Vec<f32> {
    let mut sorted: Vec<f32> = column.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    // Distinct values with their counts.
    let mut distinct: Vec<(f32, usize)> = Vec::new();
    for &v in &sorted {
        match distinct.last_mut() {
            Some((last, n)) if *last == v => *n += 1,
            _ => distinct.push((v, 1)),
        }
    }
    if distinct.len() <= 1 {
        return Vec::new();
    }
    if distinct.len() <= max_bins {
        return distinct
            .windows(2)
            .map(|w| midpoint(w[0].0, w[1].0))
            .collect();
    }
    // Greedy fill: close a bin once it holds its share of the weight still to place; a value is
    // never split across bins, so a heavy value (say, 0 in most rows) gets a bin of its own.
    // Weights are scaled by `n * d` to stay integers: `c * d + n` per value, `2 * n * d` in all.
    let n = sorted.len() as u128;
    let d = distinct.len() as u128;
    let total = 2 * n * d;
    let mut cuts = Vec::with_capacity(max_bins - 1);
    let mut in_bin = 0u128;
    let mut seen = 0u128;
    for i in 0..distinct.len() - 1 {
        let (v, c) = distinct[i];
        let w = c as u128 * d + n;
        in_bin += w;
        seen += w;
        let bins_left = (max_bins - cuts.len()) as u128;
        let share = (total - (seen - in_bin)) / bins_left;
        if in_bin >= share && cuts.len() + 1 < max_bins {
            cuts.push(midpoint(v, distinct[i + 1].0));
            in_bin = 0;
        }
    }
    cuts
}

/// The bin of `x` given a feature's cut points.
#[inline]
pub(crate) fn bin_of(cuts: &[f32], x: f32) -> u8 {
    cuts.partition_point(|&c| c < x) as u8
}

/// Training data reduced to bin codes, column-major like [`FeatureMatrix`].
pub(crate) struct BinnedMatrix {
    pub n_rows: usize,
    /// `cuts[f]`: at most 255 cut points of feature `f`.
    pub cuts: Vec<Vec<f32>>,
    /// `codes[f * n_rows + r]`
    pub codes: Vec<u8>,
}

impl BinnedMatrix {
    /// Bins `x`, with cut points computed on `cut_source` (the full training data, when `x`
    /// holds only its distinct rows, so that the bins do not depend on deduplication).
    pub fn new(cut_source: &FeatureMatrix, x: &FeatureMatrix, max_bins: usize) -> BinnedMatrix {
        let n_rows = x.n_rows();
        let per_feature: Vec<(Vec<f32>, Vec<u8>)> = (0..x.n_features())
            .into_par_iter()
            .map(|f| {
                let cuts = feature_cuts(cut_source.column(f), max_bins);
                let codes = x.column(f).iter().map(|&v| bin_of(&cuts, v)).collect();
                (cuts, codes)
            })
            .collect();
        let mut cuts = Vec::with_capacity(per_feature.len());
        let mut codes = Vec::with_capacity(n_rows * per_feature.len());
        for (c, k) in per_feature {
            cuts.push(c);
            codes.extend_from_slice(&k);
        }
        BinnedMatrix {
            n_rows,
            cuts,
            codes,
        }
    }

    pub fn column(&self, f: usize) -> &[u8] {
        &self.codes[f * self.n_rows..(f + 1) * self.n_rows]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn few_distinct_values_get_exact_cuts() {
        let cuts = feature_cuts(&[3.0, 1.0, 2.0, 1.0], 256);
        assert_eq!(cuts, vec![1.5, 2.5]);
        assert_eq!(bin_of(&cuts, 1.0), 0);
        assert_eq!(bin_of(&cuts, 1.5), 0);
        assert_eq!(bin_of(&cuts, 2.0), 1);
        assert_eq!(bin_of(&cuts, 9.0), 2);
    }

    #[test]
    fn many_distinct_values_are_capped() {
        let col: Vec<f32> = (0..10_000).map(|i| (i % 1000) as f32 * 0.5).collect();
        let cuts = feature_cuts(&col, 16);
        assert!(cuts.len() <= 15 && cuts.len() >= 10, "{}", cuts.len());
        assert!(cuts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn heavy_value_gets_its_own_bin() {
        let mut col = vec![0.0f32; 900];
        col.extend((1..=100).map(|i| i as f32));
        let cuts = feature_cuts(&col, 8);
        assert_eq!(cuts[0], 0.5);
    }

    #[test]
    fn sparse_tail_keeps_bins_of_its_own() {
        // 9,000 rows on 50 dense values, then a tail of 1,000 values seen once each: by rows the
        // tail is a tenth of the data, by distinct values it is nearly all of it.
        let mut col: Vec<f32> = (0..9_000).map(|i| (i % 50) as f32).collect();
        col.extend((0..1_000).map(|i| 100.0 + i as f32));
        let cuts = feature_cuts(&col, 16);
        assert!(cuts.len() <= 15);
        assert!(cuts.windows(2).all(|w| w[0] < w[1]));
        let in_tail = cuts.iter().filter(|&&c| c > 100.0).count();
        // Row quantiles alone would give the tail one or two bins.
        assert!(in_tail >= 6, "{cuts:?}");
        // The dense values still get bins of their own range.
        assert!(cuts.len() - in_tail >= 5, "{cuts:?}");
    }

    proptest! {
        /// Whatever the column: at most `max_bins - 1` cuts, strictly increasing, each between
        /// two adjacent distinct values (so no bin is empty), one per gap when the distinct values
        /// fit, and at least one whenever the column varies.
        #[test]
        fn cuts_separate_distinct_values(
            // Few distinct values repeated (heavy values), or many (sparse tails).
            col in proptest::collection::vec(
                prop_oneof![
                    (0i32..8).prop_map(|v| v as f32),
                    (-1_000_000i32..1_000_000).prop_map(|v| v as f32 * 0.25),
                ],
                0..600,
            ),
            max_bins in 2usize..=64,
        ) {
            let cuts = feature_cuts(&col, max_bins);
            let mut distinct: Vec<f32> = col.clone();
            distinct.sort_unstable_by(f32::total_cmp);
            distinct.dedup();
            prop_assert!(cuts.len() < max_bins);
            prop_assert!(cuts.windows(2).all(|w| w[0] < w[1]), "{:?}", cuts);
            for &c in &cuts {
                let k = distinct.partition_point(|&v| v <= c);
                prop_assert!(k > 0 && k < distinct.len(), "cut {} outside the values", c);
                prop_assert!(distinct[k - 1] <= c && c < distinct[k]);
            }
            if distinct.len() <= max_bins {
                prop_assert_eq!(cuts.len(), distinct.len().saturating_sub(1));
            }
            if distinct.len() >= 2 {
                prop_assert!(!cuts.is_empty());
            }
        }
    }

    #[test]
    fn constant_column_has_no_cuts() {
        assert!(feature_cuts(&[4.0; 10], 256).is_empty());
    }

    #[test]
    fn midpoint_of_adjacent_floats_stays_below_upper() {
        let lo = 1.0f32;
        let hi = f32::from_bits(lo.to_bits() + 1);
        let m = midpoint(lo, hi);
        assert!(lo <= m && m < hi);
        assert!(midpoint(f32::MAX / 2.0, f32::MAX) < f32::MAX);
    }
}
