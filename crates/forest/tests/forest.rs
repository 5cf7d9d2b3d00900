//! Behavioural tests of the forest engine on small synthetic data.

use fedids_data::{Feature, FeatureKind, FeatureMatrix, FormatSpec, Schema, Task};
use fedids_forest::{
    model, ClassWeight, Criterion, Forest, ForestError, ForestParams, Kernel, MaxFeatures,
    Sampling, SplitSearch,
};
use proptest::prelude::*;

fn schema(n_features: usize, n_classes: usize) -> Schema {
    Schema {
        format: FormatSpec::NslKdd,
        task: if n_classes == 2 {
            Task::Binary
        } else {
            Task::Multiclass
        },
        features: (0..n_features)
            .map(|i| Feature {
                name: format!("f{i}"),
                kind: FeatureKind::Numeric,
            })
            .collect(),
        classes: (0..n_classes).map(|i| format!("c{i}")).collect(),
    }
}

/// A seeded synthetic dataset: class depends on a few features, with noise features.
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
        let row: Vec<f32> = (0..n_features).map(|_| (next() * 100.0).floor()).collect();
        let score = row[0] + 0.5 * row[1 % n_features];
        y.push(((score / 150.0 * n_classes as f32) as u32).min(n_classes - 1));
        rows.extend(row);
    }
    (FeatureMatrix::from_rows(n, n_features, &rows), y)
}

fn fit(x: &FeatureMatrix, y: &[u32], n_classes: usize, params: &ForestParams) -> Forest {
    Forest::fit(x, y, schema(x.n_features(), n_classes), params, &|| ()).unwrap()
}

/// [`fit`] with `n_trees` trees and default parameters otherwise.
fn fit_trees(x: &FeatureMatrix, y: &[u32], n_classes: usize, n_trees: usize) -> Forest {
    let params = ForestParams {
        n_trees,
        ..ForestParams::default()
    };
    fit(x, y, n_classes, &params)
}

#[test]
fn a_deep_tree_fits_separable_data_exactly() {
    let (x, y) = synthetic(2000, 5, 3, 1);
    for split in [SplitSearch::Histogram { max_bins: 256 }, SplitSearch::Exact] {
        let params = ForestParams {
            n_trees: 1,
            sampling: Sampling::All,
            max_features: MaxFeatures::All,
            split,
            ..ForestParams::default()
        };
        let forest = fit(&x, &y, 3, &params);
        assert_eq!(forest.predict(&x).unwrap(), y, "{split:?}");
    }
}

#[test]
fn histogram_and_exact_agree_when_values_fit_in_bins() {
    // At most 100 distinct values per feature: the bins are exact, so both searches see the same
    // candidate splits and grow the same trees.
    let (x, y) = synthetic(1500, 6, 2, 2);
    let base = ForestParams {
        n_trees: 8,
        ..ForestParams::default()
    };
    let hist = fit(&x, &y, 2, &base);
    let exact = fit(
        &x,
        &y,
        2,
        &ForestParams {
            split: SplitSearch::Exact,
            ..base
        },
    );
    // Thresholds may differ where bins between two occupied ones are empty (exact search takes the
    // node-local midpoint), but the structure, the leaves and the training partition are the same.
    for (h, e) in hist.trees().iter().zip(exact.trees()) {
        let shape = |t: &fedids_forest::Tree| -> Vec<(u32, u32)> {
            t.nodes().iter().map(|n| (n.feature, n.left)).collect()
        };
        assert!(shape(h) == shape(e), "tree structures differ");
    }
    assert_eq!(hist.predict(&x).unwrap(), exact.predict(&x).unwrap());
}

#[test]
fn probabilities_sum_to_one() {
    let (x, y) = synthetic(800, 4, 4, 3);
    let forest = fit_trees(&x, &y, 4, 10);
    let proba = forest.predict_proba(&x).unwrap();
    for row in proba.chunks_exact(4) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "{row:?}");
        assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)));
    }
}

#[test]
fn same_seed_same_bytes_whatever_the_thread_count() {
    let (x, y) = synthetic(1000, 6, 3, 4);
    let params = ForestParams {
        n_trees: 12,
        criterion: Criterion::Entropy,
        class_weight: ClassWeight::Balanced,
        ..ForestParams::default()
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| model::encode(&fit(&x, &y, 3, &params)))
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
    let other_seed = model::encode(&fit(
        &x,
        &y,
        3,
        &ForestParams {
            seed: 7,
            ..params.clone()
        },
    ));
    assert_ne!(one, other_seed);
}

#[test]
fn limits_are_respected() {
    let (x, y) = synthetic(1000, 5, 3, 5);
    let forest = fit(
        &x,
        &y,
        3,
        &ForestParams {
            n_trees: 5,
            max_depth: Some(3),
            ..ForestParams::default()
        },
    );
    assert!(forest.trees().iter().all(|t| t.depth() <= 3));
    // min_samples_leaf: every leaf of a single full-data tree holds >= 50 rows.
    let forest = fit(
        &x,
        &y,
        3,
        &ForestParams {
            n_trees: 1,
            sampling: Sampling::All,
            min_samples_leaf: 50,
            ..ForestParams::default()
        },
    );
    let rows = x.to_row_major();
    let tree = &forest.trees()[0];
    let mut per_leaf = vec![0; tree.n_leaves()];
    for r in rows.chunks_exact(5) {
        per_leaf[tree.leaf_of(r)] += 1;
    }
    assert!(per_leaf.iter().all(|&n| n >= 50), "{per_leaf:?}");
}

#[test]
fn importances_find_the_informative_features() {
    let (x, y) = synthetic(3000, 6, 2, 6);
    let forest = fit_trees(&x, &y, 2, 20);
    let imp = forest.feature_importances();
    assert!((imp.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    let noise_max = imp[2..].iter().cloned().fold(0.0, f64::max);
    assert!(imp[0] > noise_max && imp[1] > noise_max, "{imp:?}");
}

#[test]
fn subsampling_and_bad_params() {
    let (x, y) = synthetic(500, 4, 2, 7);
    let f = fit(
        &x,
        &y,
        2,
        &ForestParams {
            n_trees: 3,
            sampling: Sampling::Subsample(0.7),
            ..ForestParams::default()
        },
    );
    assert_eq!(f.trees().len(), 3);
    let err = Forest::fit(
        &x,
        &y,
        schema(4, 2),
        &ForestParams {
            n_trees: 0,
            ..ForestParams::default()
        },
        &|| (),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid training parameter: n_trees must be at least 1"
    );
    let err =
        Forest::fit(&x, &y[..10], schema(4, 2), &ForestParams::default(), &|| ()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid training data: 500 rows of features and 10 labels"
    );
    let bad_y = vec![5; 500];
    assert!(matches!(
        Forest::fit(&x, &bad_y, schema(4, 2), &ForestParams::default(), &|| ()),
        Err(ForestError::InvalidData(_))
    ));
}

#[test]
fn combining_trees_checks_schemas() {
    let (x, y) = synthetic(500, 4, 2, 8);
    let a = fit_trees(&x, &y, 2, 4);
    let b = fit(
        &x,
        &y,
        2,
        &ForestParams {
            n_trees: 4,
            seed: 9,
            ..ForestParams::default()
        },
    );
    let merged = Forest::from_trees(&[(&a, &[0, 2]), (&b, &[3])]).unwrap();
    assert_eq!(merged.trees().len(), 3);
    assert_eq!(merged.trees()[2], b.trees()[3]);
    assert!(Forest::from_trees(&[(&a, &[7])]).is_err());

    let (x3, y3) = synthetic(500, 4, 3, 8);
    let c = fit_trees(&x3, &y3, 3, 2);
    let err = Forest::from_trees(&[(&a, &[0]), (&c, &[0])]).unwrap_err();
    assert!(err.to_string().starts_with("trees do not share a feature schema: source 1 differs from source 0: task binary vs multiclass"), "{err}");
}

#[test]
fn tree_scores_match_tree_predictions() {
    let (x, y) = synthetic(600, 4, 3, 10);
    let f = fit_trees(&x, &y, 3, 4);
    let scores = f.score_trees(&x, &y).unwrap();
    let preds = f.tree_predictions(&x).unwrap();
    for (s, p) in scores.iter().zip(&preds) {
        let acc = p.iter().zip(&y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64;
        assert_eq!(s.accuracy, acc);
        assert_eq!(s.class_support.iter().sum::<u64>(), 600);
    }
}

#[test]
fn model_file_round_trip_and_rejections() {
    let (x, y) = synthetic(400, 4, 2, 11);
    let forest = fit_trees(&x, &y, 2, 3);
    let bytes = model::encode(&forest);
    assert_eq!(model::decode(&bytes).unwrap(), forest);
    assert_eq!(model::encode(&model::decode(&bytes).unwrap()), bytes);

    let msg = |b: &[u8]| model::decode(b).unwrap_err().to_string();
    assert_eq!(
        msg(b"PK\x03\x04zipfile"),
        "not a fedids model file: missing the FEDIDSMF magic bytes at the start"
    );
    assert!(msg(&bytes[..bytes.len() - 1]).starts_with("model file is truncated"));
    let mut v2 = bytes.clone();
    v2[8] = 2;
    assert_eq!(
        msg(&v2),
        "unsupported model format version 2 (this build reads version 1)"
    );
    let mut flipped = bytes.clone();
    flipped[40] ^= 0x10;
    assert_eq!(
        msg(&flipped),
        "model file is corrupted: payload checksum mismatch"
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(msg(&longer).starts_with("model file is corrupted"));
}

#[test]
fn hostile_structure_with_a_valid_checksum_is_rejected() {
    // Re-encode a forest whose tree points a child back at its parent: the checksum is valid,
    // so only structural validation can catch it.
    let (x, y) = synthetic(300, 3, 2, 12);
    let forest = fit_trees(&x, &y, 2, 1);
    let bytes = model::encode(&forest);
    let mut json: serde_json::Value = serde_json::to_value(&forest).unwrap();
    json["trees"][0]["nodes"][0]["left"] = serde_json::json!(0);
    let hostile: Forest = serde_json::from_value(json).unwrap();
    let hostile_bytes = model::encode(&hostile);
    assert_ne!(bytes, hostile_bytes);
    let err = model::decode(&hostile_bytes).unwrap_err().to_string();
    assert_eq!(
        err,
        "model is invalid: tree 0: node 0: child index 0 out of order or range"
    );
}

fn small_model_bytes() -> Vec<u8> {
    let (x, y) = synthetic(200, 3, 3, 13);
    model::encode(&fit_trees(&x, &y, 3, 2))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_truncation_is_an_error(cut in 0usize..10_000) {
        let bytes = small_model_bytes();
        let cut = cut % bytes.len();
        prop_assert!(model::decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn any_byte_flip_is_an_error(pos in 0usize..10_000, mask in 1u8..=255) {
        let mut bytes = small_model_bytes();
        let pos = pos % bytes.len();
        bytes[pos] ^= mask;
        prop_assert!(model::decode(&bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..512), with_magic in any::<bool>()) {
        if with_magic && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(model::MAGIC);
        }
        let _ = model::decode(&bytes);
    }

    #[test]
    fn predictions_stay_in_the_label_set(seed in 0u64..1000, n_classes in 2u32..6) {
        let (x, y) = synthetic(150, 3, n_classes, seed);
        let forest = fit(&x, &y, n_classes as usize, &ForestParams { n_trees: 3, seed, ..ForestParams::default() });
        let pred = forest.predict(&x).unwrap();
        prop_assert!(pred.iter().all(|&p| p < n_classes));
    }
}

/// Every kernel this CPU runs for `forest`: the default predictor (row sets where the CPU has
/// AVX2 and the forest suits them, unless `FEDIDS_KERNEL` says otherwise), the portable kernel
/// without CPU-specific copies, row sets where the CPU has AVX2 and the leaves are pure enough,
/// and the AVX-512 kernel where the CPU has AVX-512F; said aloud when a CPU feature is missing,
/// because the kernel comparisons below then check fewer kernels against the row-at-a-time
/// reference.
fn every_kernel(forest: &Forest) -> Vec<fedids_forest::Predictor> {
    let mut all = vec![forest.predictor(), forest.predictor().portable()];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        match forest.predictor_with(Kernel::Sets) {
            Ok(p) => {
                assert_eq!(p.kernel(), Kernel::Sets);
                all.push(p);
            }
            // Trees cut short (a depth limit, say) end on mixed leaves, which row sets refuse.
            Err(e) => assert!(e.to_string().contains("leaves are mixed"), "{e}"),
        }
    } else {
        eprintln!("NOTE: no AVX2 on this CPU: row sets are not checked");
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        let p = forest
            .predictor_with(Kernel::Avx512)
            .expect("AVX-512F is available");
        assert_eq!(p.kernel(), Kernel::Avx512);
        all.push(p);
        return all;
    }
    eprintln!("NOTE: no AVX-512F on this CPU: only the portable kernel is checked");
    assert!(forest.predictor_with(Kernel::Avx512).is_err());
    all
}

/// Row-at-a-time reference: each tree's leaf probabilities summed in tree order, then scaled.
fn naive_proba(forest: &Forest, x: &FeatureMatrix) -> Vec<f32> {
    let c = forest.n_classes();
    let scale = 1.0 / forest.trees().len() as f32;
    let mut row = vec![0.0f32; x.n_features()];
    let mut out = Vec::with_capacity(x.n_rows() * c);
    for r in 0..x.n_rows() {
        x.row_into(r, &mut row);
        let mut acc = vec![0.0f32; c];
        for tree in forest.trees() {
            for (a, p) in acc.iter_mut().zip(tree.predict_proba_row(&row)) {
                *a += p;
            }
        }
        out.extend(acc.iter().map(|a| a * scale));
    }
    out
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn avx512_refuses_many_features() {
    // The AVX-512 kernel packs a feature index in 8 bits: asked for, it is refused clearly.
    let (x, y) = synthetic(300, 300, 2, 5);
    let forest = fit_trees(&x, &y, 2, 3);
    assert_ne!(forest.predictor().kernel(), Kernel::Avx512);
    let err = forest
        .predictor_with(Kernel::Avx512)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("AVX-512"), "{err}");
    assert!(same_bits(
        &forest.predict_proba(&x).unwrap(),
        &naive_proba(&forest, &x)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Both kernels and the row-at-a-time reference agree bit for bit, on any number of rows
    /// (blocks, lane groups and their tails) and trees, with NaN, infinities and values equal to
    /// thresholds among the inputs; so do the predicted classes.
    #[test]
    fn kernels_agree_with_the_reference_bit_for_bit(
        seed in 0u64..10_000,
        n_features in 1usize..12,
        n_classes in 2u32..6,
        max_depth in proptest::option::of(1u32..12),
        n_trees in 1usize..24,
        n_rows in 0usize..2_600,
        specials in proptest::collection::vec((0usize..100_000, 0usize..4), 0..64),
    ) {
        let (train_x, train_y) = synthetic(300, n_features, n_classes, seed);
        let forest = fit(&train_x, &train_y, n_classes as usize, &ForestParams {
            n_trees,
            max_depth,
            seed,
            ..ForestParams::default()
        });
        let (x, _) = synthetic(n_rows, n_features, n_classes, seed ^ 0x5eed);
        let mut rows: Vec<f32> = (0..n_rows).flat_map(|r| {
            let mut row = vec![0.0; n_features];
            x.row_into(r, &mut row);
            row
        }).collect();
        if !rows.is_empty() {
            for (at, kind) in specials {
                let at = at % rows.len();
                rows[at] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0][kind];
            }
        }
        let x = FeatureMatrix::from_rows(n_rows, n_features, &rows);
        let reference = naive_proba(&forest, &x);
        // Labels, found with early exits, are exactly the argmax of the reference's means.
        let labels: Vec<u32> = reference
            .chunks_exact(n_classes as usize)
            .map(|p| fedids_forest::argmax_class(p) as u32)
            .collect();
        for p in every_kernel(&forest) {
            prop_assert!(same_bits(&p.predict_proba(&x).unwrap(), &reference), "{:?}", p.kernel());
            prop_assert_eq!(&p.predict(&x).unwrap(), &labels);
        }
        prop_assert_eq!(&forest.predict(&x).unwrap(), &labels);
    }
}
