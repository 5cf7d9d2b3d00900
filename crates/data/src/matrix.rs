//! Dense, column-major feature storage.

/// A dense `n_rows x n_features` matrix of `f32`, stored column by column.
///
/// Column-major because the forest's split search scans one feature over many rows; a column is
/// one contiguous slice. Values are always finite: parsers resolve `NaN` and infinities by their
/// documented policy before a value reaches the matrix.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureMatrix {
    n_rows: usize,
    n_features: usize,
    /// `values[feature_idx * n_rows + row_idx]`
    values: Vec<f32>,
}

impl FeatureMatrix {
    /// Builds a matrix from column-major values.
    ///
    /// Panics if `values.len() != n_rows * n_features` (a caller bug, not an input error).
    pub fn from_columns(n_rows: usize, n_features: usize, values: Vec<f32>) -> Self {
        assert_eq!(
            values.len(),
            n_rows * n_features,
            "FeatureMatrix::from_columns: {} values for {n_rows} rows x {n_features} features",
            values.len()
        );
        FeatureMatrix {
            n_rows,
            n_features,
            values,
        }
    }

    /// Builds a matrix from row-major values (one row after another).
    ///
    /// Panics if `values.len() != n_rows * n_features`.
    pub fn from_rows(n_rows: usize, n_features: usize, values: &[f32]) -> Self {
        assert_eq!(values.len(), n_rows * n_features);
        let mut cols = vec![0.0f32; values.len()];
        for (r, row) in values.chunks_exact(n_features.max(1)).enumerate() {
            for (f, &v) in row.iter().enumerate() {
                cols[f * n_rows + r] = v;
            }
        }
        Self::from_columns(n_rows, n_features, cols)
    }

    /// Number of rows (records).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of features (columns).
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// All values of one feature, one per row.
    pub fn column(&self, feature_idx: usize) -> &[f32] {
        &self.values[feature_idx * self.n_rows..(feature_idx + 1) * self.n_rows]
    }

    /// The value of one cell.
    pub fn get(&self, row_idx: usize, feature_idx: usize) -> f32 {
        self.values[feature_idx * self.n_rows + row_idx]
    }

    /// Copies one row into `out` (which must hold `n_features` values).
    pub fn row_into(&self, row_idx: usize, out: &mut [f32]) {
        for (f, o) in out.iter_mut().enumerate().take(self.n_features) {
            *o = self.values[f * self.n_rows + row_idx];
        }
    }

    /// The rows `rows` (in that order) as a new matrix.
    pub fn select_rows(&self, rows: &[usize]) -> FeatureMatrix {
        let mut values = Vec::with_capacity(rows.len() * self.n_features);
        for f in 0..self.n_features {
            let col = self.column(f);
            values.extend(rows.iter().map(|&r| col[r]));
        }
        FeatureMatrix::from_columns(rows.len(), self.n_features, values)
    }

    /// The matrix without the feature `feature_idx`.
    pub fn without_feature(&self, feature_idx: usize) -> FeatureMatrix {
        let mut values = Vec::with_capacity(self.n_rows * (self.n_features - 1));
        for f in (0..self.n_features).filter(|&f| f != feature_idx) {
            values.extend_from_slice(self.column(f));
        }
        FeatureMatrix::from_columns(self.n_rows, self.n_features - 1, values)
    }

    /// Row-major copy of the values, for row-at-a-time consumers such as tree traversal.
    pub fn to_row_major(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.values.len()];
        for f in 0..self.n_features {
            for (r, &v) in self.column(f).iter().enumerate() {
                out[r * self.n_features + f] = v;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_columns_agree() {
        let m = FeatureMatrix::from_rows(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(m.column(0), &[1.0, 4.0]);
        assert_eq!(m.column(2), &[3.0, 6.0]);
        assert_eq!(m.get(1, 1), 5.0);
        assert_eq!(m.to_row_major(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let s = m.select_rows(&[1]);
        assert_eq!(s.to_row_major(), vec![4.0, 5.0, 6.0]);
        let w = m.without_feature(1);
        assert_eq!(w.to_row_major(), vec![1.0, 3.0, 4.0, 6.0]);
    }
}
