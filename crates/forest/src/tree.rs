//! One decision tree as flat arrays.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `feature` value that marks a leaf.
pub const LEAF: u32 = u32::MAX;

/// One node. Children of an internal node are adjacent: `left` and `left + 1`, so the next node is
/// `left + (x > threshold)`, a branch-free step.
///
/// For a leaf (`feature == LEAF`), `left` is the leaf's index into [`Tree::leaf_values`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub feature: u32,
    /// Raw feature units: rows with `x <= threshold` go left.
    pub threshold: f32,
    pub left: u32,
}

impl Node {
    pub fn is_leaf(&self) -> bool {
        self.feature == LEAF
    }
}

/// A trained CART classification tree.
///
/// Invariants (checked by [`Tree::validate`] for trees read from outside): `nodes` is non-empty
/// and `nodes[0]` is the root; an internal node at index `i` has `i < left` and
/// `left + 1 < nodes.len()` (so traversal always ends), `feature < n_features` and a finite
/// threshold; a leaf's `left < n_leaves`; `leaf_values` holds `n_leaves * n_classes` finite,
/// non-negative class probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub(crate) n_features: u32,
    pub(crate) n_classes: u32,
    pub(crate) nodes: Vec<Node>,
    pub(crate) leaf_values: Vec<f32>,
    /// Total weighted impurity decrease per feature (unnormalised).
    pub(crate) importances: Vec<f64>,
}

impl Tree {
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn n_classes(&self) -> usize {
        self.n_classes as usize
    }

    pub fn n_features(&self) -> usize {
        self.n_features as usize
    }

    /// Class probabilities of every leaf, `n_classes` per leaf, in leaf order.
    pub fn leaf_values(&self) -> &[f32] {
        &self.leaf_values
    }

    pub fn n_leaves(&self) -> usize {
        self.leaf_values.len() / self.n_classes.max(1) as usize
    }

    /// The depth of the deepest leaf (a lone root has depth 0).
    pub fn depth(&self) -> usize {
        let mut depth = vec![0u32; self.nodes.len()];
        let mut max = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.is_leaf() {
                let d = depth[i] + 1;
                depth[n.left as usize] = d;
                depth[n.left as usize + 1] = d;
                max = max.max(d);
            }
        }
        max as usize
    }

    /// The leaf index reached by `row` (which holds at least `n_features` values).
    #[inline]
    pub fn leaf_of(&self, row: &[f32]) -> usize {
        let nodes = &self.nodes[..];
        let mut i = 0usize;
        loop {
            let n = nodes[i];
            if n.feature == LEAF {
                return n.left as usize;
            }
            i = n.left as usize + (row[n.feature as usize] > n.threshold) as usize;
        }
    }

    /// Class probabilities of the leaf reached by `row`.
    #[inline]
    pub fn predict_proba_row(&self, row: &[f32]) -> &[f32] {
        let c = self.n_classes as usize;
        let leaf = self.leaf_of(row);
        &self.leaf_values[leaf * c..(leaf + 1) * c]
    }

    /// The most probable class for `row` (lowest index on ties).
    pub fn predict_row(&self, row: &[f32]) -> u32 {
        argmax(self.predict_proba_row(row))
    }

    /// SHA-256 of the tree's canonical encoding: equal trees have equal hashes. Used to
    /// deduplicate trees when forests are merged.
    pub fn content_hash(&self) -> [u8; 32] {
        let bytes = postcard::to_stdvec(self).expect("encoding a tree into memory cannot fail");
        Sha256::digest(bytes).into()
    }

    /// Checks the structural invariants listed on the type.
    pub fn validate(&self, n_features: usize, n_classes: usize) -> Result<(), String> {
        if self.n_features as usize != n_features {
            return Err(format!(
                "tree has {} features, model has {n_features}",
                self.n_features
            ));
        }
        if self.n_classes as usize != n_classes || n_classes == 0 {
            return Err(format!(
                "tree has {} classes, model has {n_classes}",
                self.n_classes
            ));
        }
        if self.nodes.is_empty() {
            return Err("tree has no nodes".into());
        }
        if !self.leaf_values.len().is_multiple_of(n_classes) {
            return Err("leaf value table is not a whole number of leaves".into());
        }
        if self.importances.len() != n_features {
            return Err("feature importance vector has the wrong length".into());
        }
        let n_leaves = self.leaf_values.len() / n_classes;
        let n_nodes = self.nodes.len();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.is_leaf() {
                if n.left as usize >= n_leaves {
                    return Err(format!("node {i}: leaf index {} out of range", n.left));
                }
            } else {
                if n.feature as usize >= n_features {
                    return Err(format!("node {i}: feature {} out of range", n.feature));
                }
                if !n.threshold.is_finite() {
                    return Err(format!("node {i}: threshold is not finite"));
                }
                let left = n.left as usize;
                if left <= i || left + 1 >= n_nodes {
                    return Err(format!(
                        "node {i}: child index {left} out of order or range"
                    ));
                }
            }
        }
        if self.leaf_values.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err("leaf probabilities must be finite and non-negative".into());
        }
        if self.importances.iter().any(|v| !v.is_finite()) {
            return Err("feature importances must be finite".into());
        }
        Ok(())
    }
}

/// Index of the largest value; the lowest index wins ties.
#[inline]
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}
