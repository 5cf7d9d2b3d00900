//! Forest engine benchmark on seeded synthetic data (no files needed).
//!
//! Prints, in one process: histogram fit time against exact fit time (the reference), and batched
//! prediction throughput against a naive row-at-a-time loop over trees (the reference), the
//! default kernel and block copy against the portable ones without CPU-specific code (the
//! reference), the AVX-512 kernel where the CPU has it against the default (the reference),
//! classes found with early exits against all probabilities (the reference), and classes from
//! row sets where the CPU has AVX2 against the portable walk's (the reference).
//! Run: `cargo bench -p fedids-forest --bench forest`

use std::time::Instant;

use fedids_data::{Feature, FeatureKind, FeatureMatrix, FormatSpec, Schema, Task};
use fedids_forest::{Forest, ForestParams, SplitSearch};

fn synthetic(n: usize, n_features: usize, n_classes: u32, seed: u64) -> (FeatureMatrix, Vec<u32>) {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as f32 / (1u64 << 31) as f32
    };
    let mut rows = Vec::with_capacity(n * n_features);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        // A mix of continuous, low-cardinality and mostly-zero features, like flow records.
        let row: Vec<f32> = (0..n_features)
            .map(|f| match f % 3 {
                0 => next() * 1000.0,
                1 => (next() * 10.0).floor(),
                _ => {
                    if next() < 0.9 {
                        0.0
                    } else {
                        next() * 100.0
                    }
                }
            })
            .collect();
        let score = row[0] / 1000.0 + row[1] / 10.0 + row[2] / 100.0 + 0.3 * next();
        y.push(((score / 2.3 * n_classes as f32) as u32).min(n_classes - 1));
        rows.extend(row);
    }
    (FeatureMatrix::from_rows(n, n_features, &rows), y)
}

fn schema(n_features: usize, n_classes: usize) -> Schema {
    Schema {
        format: FormatSpec::NslKdd,
        task: Task::Multiclass,
        features: (0..n_features)
            .map(|i| Feature {
                name: format!("f{i}"),
                kind: FeatureKind::Numeric,
            })
            .collect(),
        classes: (0..n_classes).map(|i| format!("c{i}")).collect(),
    }
}

fn main() {
    let (n, nf, nc, n_trees) = (100_000, 40, 5, 20);
    let (x, y) = synthetic(n, nf, nc as u32, 1);
    let fit = |split| {
        let params = ForestParams {
            n_trees,
            split,
            ..ForestParams::default()
        };
        let t = Instant::now();
        let f = Forest::fit(&x, &y, schema(nf, nc), &params, &|| ()).unwrap();
        (f, t.elapsed().as_secs_f64())
    };
    let (hist, hist_s) = fit(SplitSearch::Histogram { max_bins: 256 });
    let (_, exact_s) = fit(SplitSearch::Exact);
    println!(
        "fit {n} rows x {nf} features, {n_trees} trees: histogram {hist_s:.2} s, exact {exact_s:.2} s, ratio {:.1}x",
        exact_s / hist_s
    );

    let reps = 3;
    let rate = |p: &fedids_forest::Predictor| {
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(p.predict_proba(&x).unwrap());
        }
        (reps * n) as f64 / t.elapsed().as_secs_f64()
    };
    let fast = hist.predictor();
    let batched = rate(&fast);
    let portable = rate(&hist.predictor().portable());
    println!(
        "predict {n_trees} trees: {:?} kernel, {} block copy {batched:.0} rows/s, portable kernel and copy {portable:.0} rows/s, ratio {:.2}x",
        fast.kernel(),
        if fast.tiled() { "AVX2 tiled" } else { "portable" },
        batched / portable
    );
    match hist.predictor_with(fedids_forest::Kernel::Avx512) {
        Ok(avx512) => {
            let gathers = rate(&avx512);
            println!(
                "predict {n_trees} trees: AVX-512 kernel {gathers:.0} rows/s, {:?} kernel (the default) {batched:.0} rows/s, ratio {:.2}x",
                fast.kernel(),
                gathers / batched
            );
        }
        Err(e) => println!("predict {n_trees} trees: no AVX-512 comparison ({e})"),
    }
    let classes = |p: &fedids_forest::Predictor| {
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(p.predict(&x).unwrap());
        }
        (reps * n) as f64 / t.elapsed().as_secs_f64()
    };
    match hist.predictor_with(fedids_forest::Kernel::Sets) {
        Ok(sets) => {
            let walk = classes(&hist.predictor().portable());
            let sets = classes(&sets);
            println!(
                "predict {n_trees} trees, classes: row sets {sets:.0} rows/s, portable walk with early exits {walk:.0} rows/s, ratio {:.2}x (the default here: {:?} kernel)",
                sets / walk,
                hist.predictor().kernel()
            );
        }
        Err(e) => println!("predict {n_trees} trees: no row-sets comparison ({e})"),
    }
    // The walk's early exits (row sets evaluate every tree).
    let walker = hist.predictor().portable();
    let all_proba = rate(&walker);
    let t = Instant::now();
    let mut walks = 0;
    for _ in 0..reps {
        walks = std::hint::black_box(walker.predict_counting(&x).unwrap()).1;
    }
    let labels = (reps * n) as f64 / t.elapsed().as_secs_f64();
    println!(
        "predict {n_trees} trees, portable walk: classes with early exits {labels:.0} rows/s ({:.0}% of the walks), \
         all probabilities {all_proba:.0} rows/s, ratio {:.2}x",
        100.0 * walks as f64 / (n * n_trees) as f64,
        labels / all_proba
    );
    let t = Instant::now();
    let mut row = vec![0.0f32; nf];
    let mut acc = vec![0.0f32; nc];
    let mut sink = 0u64;
    for r in 0..n {
        x.row_into(r, &mut row);
        acc.iter_mut().for_each(|a| *a = 0.0);
        for tree in hist.trees() {
            for (a, p) in acc.iter_mut().zip(tree.predict_proba_row(&row)) {
                *a += p;
            }
        }
        sink += fedids_forest::argmax_class(&acc) as u64;
    }
    std::hint::black_box(sink);
    let naive = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "predict {n_trees} trees: batched {:.0} rows/s, naive row-at-a-time {:.0} rows/s, ratio {:.1}x",
        batched,
        naive,
        batched / naive
    );
}
