// 2026-12-06 (later session): how often a walk's step splits on the same feature as the step
// before it (so that a node with several thresholds on one feature could take both at once).
// Run as an example of fedids-forest: copy to crates/forest/examples/zz_stats.rs, then
// cargo run --release -p fedids-forest --example zz_stats -- MODEL DATA
use fedids_data::{load_path_with_schema, LoadOptions};
use fedids_forest::model;
use std::path::Path;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&a[1]).unwrap();
    let forest = model::decode(&bytes).unwrap();
    let schema = forest.schema();
    let opts = LoadOptions {
        format: Some(schema.format.clone()),
        task: schema.task,
        skip_invalid: false,
        unmapped_label: Default::default(),
    };
    let data = load_path_with_schema(Path::new(&a[2]), schema, &opts).unwrap();
    let x = data.x;
    let nf = x.n_features();
    let (mut steps, mut same, mut walks) = (0u64, 0u64, 0u64);
    let mut same2 = 0u64; // the third or later step in a row on one feature
    let mut row = vec![0f32; nf];
    for r in 0..x.n_rows() {
        for f in 0..nf {
            row[f] = x.column(f)[r];
        }
        for t in forest.trees() {
            let nodes = t.nodes();
            let (mut i, mut prevf, mut run) = (0usize, u32::MAX, 0u32);
            walks += 1;
            loop {
                let n = nodes[i];
                if n.is_leaf() {
                    break;
                }
                steps += 1;
                if n.feature == prevf {
                    same += 1;
                    run += 1;
                    if run >= 2 {
                        same2 += 1;
                    }
                } else {
                    run = 0;
                }
                prevf = n.feature;
                i = n.left as usize + (row[n.feature as usize] > n.threshold) as usize;
            }
        }
    }
    println!(
        "walks {walks} steps/walk {:.2} same-feature-as-parent {:.3} (run>=3 {:.3})",
        steps as f64 / walks as f64,
        same as f64 / steps as f64,
        same2 as f64 / steps as f64
    );
}
// Output (every tree, every row):
// /tmp/nslb.model (NSL-KDD binary, 100 trees, seed 42) on KDDTest+.txt:
//   walks 2254400 steps/walk 10.39 same-feature-as-parent 0.020 (run>=3 0.000)
// /tmp/k99_binary.model (KDD Cup 99 binary, bench/split_kdd99.py seed 7) on kdd99_test.csv:
//   walks 9880400 steps/walk 7.81 same-feature-as-parent 0.029 (run>=3 0.001)
