//! Quantile binning for the histogram split search.
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
/// `max_bins` quantile bins when the feature has more distinct values than that.
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
    // Greedy quantile fill: close a bin once it holds its share of the rows; a value is never
    // split across bins, so a heavy value (say, 0 in most rows) gets a bin of its own.
    let n = sorted.len();
    let mut cuts = Vec::with_capacity(max_bins - 1);
    let mut in_bin = 0usize;
    let mut seen = 0usize;
    for i in 0..distinct.len() - 1 {
        let (v, c) = distinct[i];
        in_bin += c;
        seen += c;
        let bins_left = max_bins - cuts.len();
        let share = (n - (seen - in_bin)) / bins_left.max(1);
        if in_bin >= share.max(1) && cuts.len() + 1 < max_bins {
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
