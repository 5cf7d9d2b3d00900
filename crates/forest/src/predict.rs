//! Batch inference with a layout compiled for speed.
//!
//! In the stored tree, a leaf ends traversal. In the compiled tree, a leaf points at itself with
//! threshold `+inf`, so `i = left + (x > threshold)` stays on it. A group of rows can then walk a
//! tree in lock-step for exactly `depth` steps with no data-dependent branch, and the CPU overlaps
//! the independent chains of the group's rows. The original leaf index is looked up at the end.

use fedids_data::FeatureMatrix;
use rayon::prelude::*;

use crate::error::ForestError;
use crate::tree::Tree;

/// Rows walked through a tree together.
const LANES: usize = 32;
/// Rows per parallel task: the row-major copy of a block stays in L1/L2 while every tree runs.
const BLOCK: usize = 256;

#[derive(Clone, Copy)]
struct CNode {
    feature: u32,
    threshold: f32,
    left: u32,
}

struct CompiledTree {
    nodes: Vec<CNode>,
    /// Leaf index of each node (only meaningful for leaves).
    leaf_of_node: Vec<u32>,
}

/// A forest's trees in inference layout. Build once, predict many batches.
pub struct Predictor<'a> {
    trees: Vec<CompiledTree>,
    sources: &'a [Tree],
    n_features: usize,
    n_classes: usize,
}

impl<'a> Predictor<'a> {
    pub(crate) fn new(trees: &'a [Tree], n_features: usize, n_classes: usize) -> Self {
        let compiled = trees
            .iter()
            .map(|t| {
                let nodes = t
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        if n.is_leaf() {
                            CNode {
                                feature: 0,
                                threshold: f32::INFINITY,
                                left: i as u32,
                            }
                        } else {
                            CNode {
                                feature: n.feature,
                                threshold: n.threshold,
                                left: n.left,
                            }
                        }
                    })
                    .collect();
                let leaf_of_node = t
                    .nodes
                    .iter()
                    .map(|n| if n.is_leaf() { n.left } else { 0 })
                    .collect();
                CompiledTree {
                    nodes,
                    leaf_of_node,
                }
            })
            .collect();
        Predictor {
            trees: compiled,
            sources: trees,
            n_features,
            n_classes,
        }
    }

    /// Mean class probabilities over the trees, row-major (`n_rows * n_classes`).
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Result<Vec<f32>, ForestError> {
        if x.n_features() != self.n_features {
            return Err(ForestError::FeatureCount {
                expected: self.n_features,
                found: x.n_features(),
            });
        }
        let c = self.n_classes;
        let nf = self.n_features;
        let mut out = vec![0.0f32; x.n_rows() * c];
        let scale = 1.0 / self.trees.len().max(1) as f32;
        out.par_chunks_mut(BLOCK * c)
            .enumerate()
            .for_each(|(block_idx, out_block)| {
                let start = block_idx * BLOCK;
                let rows = out_block.len() / c;
                let mut buf = vec![0.0f32; rows * nf];
                for f in 0..nf {
                    let col = &x.column(f)[start..start + rows];
                    for (r, &v) in col.iter().enumerate() {
                        buf[r * nf + f] = v;
                    }
                }
                let mut idx = [0u32; LANES];
                for (tree, source) in self.trees.iter().zip(self.sources) {
                    let nodes = &tree.nodes[..];
                    for (g, rows_g) in buf.chunks(LANES * nf).enumerate() {
                        let lanes = rows_g.len() / nf;
                        idx[..lanes].iter_mut().for_each(|i| *i = 0);
                        // Leaves point at themselves, so a lane that reached one stays there;
                        // stop once a step moves no lane. Validated trees only move forward, so
                        // this ends within depth + 1 steps.
                        loop {
                            let mut moved = 0u32;
                            for (k, i) in idx[..lanes].iter_mut().enumerate() {
                                let n = nodes[*i as usize];
                                let v = rows_g[k * nf + n.feature as usize];
                                let next = n.left + (v > n.threshold) as u32;
                                moved |= next ^ *i;
                                *i = next;
                            }
                            if moved == 0 {
                                break;
                            }
                        }
                        let out_g = &mut out_block[g * LANES * c..(g * LANES + lanes) * c];
                        for (k, acc) in out_g.chunks_exact_mut(c).enumerate() {
                            let leaf = tree.leaf_of_node[idx[k] as usize] as usize;
                            let p = &source.leaf_values[leaf * c..(leaf + 1) * c];
                            for (a, v) in acc.iter_mut().zip(p) {
                                *a += v;
                            }
                        }
                    }
                }
                out_block.iter_mut().for_each(|v| *v *= scale);
            });
        Ok(out)
    }
}
