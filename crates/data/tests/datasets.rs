//! Loads the real dataset files in `../shared/datasets/` and checks row and class counts against
//! the datasets README (class counts computed independently with awk).

use std::io::Write;
use std::path::PathBuf;

use fedids_data::{
    load_path, load_path_with_schema, BatchReader, Dataset, FeatureKind, FormatSpec, LoadOptions,
    Task, UnmappedLabelPolicy,
};

fn dataset_path(rel: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/datasets"
    ))
    .join(rel)
}

fn load(rel: &str, task: Task) -> Dataset {
    let ds = load_path(&dataset_path(rel), &LoadOptions::new(task)).unwrap();
    check_invariants(&ds);
    ds
}

fn check_invariants(ds: &Dataset) {
    assert_eq!(ds.x.n_rows(), ds.y.len());
    assert_eq!(ds.report.n_rows, ds.y.len());
    assert_eq!(ds.x.n_features(), ds.schema.n_features());
    assert!(ds.y.iter().all(|&c| (c as usize) < ds.schema.n_classes()));
    for (f, feature) in ds.schema.features.iter().enumerate() {
        let column = ds.x.column(f);
        assert!(column.iter().all(|v| v.is_finite()), "{}", feature.name);
        if let FeatureKind::Categorical { categories } = &feature.kind {
            assert!(
                categories.windows(2).all(|w| w[0] < w[1]),
                "{}",
                feature.name
            );
            assert!(column
                .iter()
                .all(|&v| v >= 0.0 && v <= categories.len() as f32));
        }
    }
}

fn class_counts(ds: &Dataset) -> Vec<(String, usize)> {
    let mut counts = vec![0; ds.schema.n_classes()];
    for &c in &ds.y {
        counts[c as usize] += 1;
    }
    ds.schema.classes.iter().cloned().zip(counts).collect()
}

fn counts(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
    pairs.iter().map(|&(c, n)| (c.to_string(), n)).collect()
}

#[test]
fn nsl_kdd_train() {
    let ds = load("nsl-kdd/KDDTrain+.txt", Task::Binary);
    assert_eq!(ds.schema.format, FormatSpec::NslKdd);
    assert_eq!(ds.report.source, "KDDTrain+.txt");
    assert_eq!(ds.x.n_rows(), 125_973);
    assert_eq!(ds.x.n_features(), 41);
    assert_eq!(
        class_counts(&ds),
        counts(&[("normal", 67_343), ("attack", 58_630)])
    );
    let n_values: Vec<usize> = ["protocol_type", "service", "flag"]
        .iter()
        .map(|name| {
            let feature = ds.schema.features.iter().find(|f| f.name == *name).unwrap();
            match &feature.kind {
                FeatureKind::Categorical { categories } => categories.len(),
                FeatureKind::Numeric => 0,
            }
        })
        .collect();
    assert_eq!(n_values, vec![3, 70, 11]);
    // First row: 0,tcp,ftp_data,SF,491,0,...
    assert_eq!(ds.x.get(0, 0), 0.0);
    assert_eq!(ds.x.get(0, 4), 491.0);

    let multi = load("nsl-kdd/KDDTrain+.txt", Task::Multiclass);
    assert_eq!(
        class_counts(&multi),
        counts(&[
            ("normal", 67_343),
            ("DoS", 45_927),
            ("Probe", 11_656),
            ("R2L", 995),
            ("U2R", 52)
        ])
    );
}

#[test]
fn nsl_kdd_test_sets_with_the_train_schema() {
    let train = load("nsl-kdd/KDDTrain+_20Percent.txt", Task::Multiclass);
    assert_eq!(train.x.n_rows(), 25_192);
    assert_eq!(
        class_counts(&train),
        counts(&[
            ("normal", 13_449),
            ("DoS", 9_234),
            ("Probe", 2_289),
            ("R2L", 209),
            ("U2R", 11)
        ])
    );
    let opts = LoadOptions::new(Task::Binary);
    let test =
        load_path_with_schema(&dataset_path("nsl-kdd/KDDTest+.txt"), &train.schema, &opts).unwrap();
    check_invariants(&test);
    assert_eq!(test.schema, train.schema);
    assert_eq!(
        class_counts(&test),
        counts(&[
            ("normal", 9_711),
            ("DoS", 7_458),
            ("Probe", 2_421),
            ("R2L", 2_887),
            ("U2R", 67)
        ])
    );
    let hard = load_path_with_schema(
        &dataset_path("nsl-kdd/KDDTest-21.txt"),
        &train.schema,
        &opts,
    )
    .unwrap();
    assert_eq!(hard.x.n_rows(), 11_850);
    assert_eq!(
        class_counts(&hard),
        counts(&[
            ("normal", 2_152),
            ("DoS", 4_342),
            ("Probe", 2_402),
            ("R2L", 2_887),
            ("U2R", 67)
        ])
    );

    // Eight KDDTrain+ rows use services the 20% subset never shows: they get the unknown code.
    let full = load_path_with_schema(&dataset_path("nsl-kdd/KDDTrain+.txt"), &train.schema, &opts)
        .unwrap();
    let service_idx = train
        .schema
        .features
        .iter()
        .position(|f| f.name == "service")
        .unwrap();
    let FeatureKind::Categorical { categories } = &train.schema.features[service_idx].kind else {
        panic!("service is categorical");
    };
    let unknown = categories.len() as f32;
    let n_unknown = full
        .x
        .column(service_idx)
        .iter()
        .filter(|&&v| v == unknown)
        .count();
    assert_eq!(n_unknown, 8);
}

#[test]
fn unsw_nb15() {
    let ds = load("unsw-nb15/UNSW_NB15_training-set.csv", Task::Binary);
    assert_eq!(ds.schema.format, FormatSpec::UnswNb15);
    assert_eq!(ds.x.n_rows(), 82_332);
    assert_eq!(ds.x.n_features(), 42);
    assert_eq!(ds.schema.features[0].name, "dur");
    assert_eq!(
        class_counts(&ds),
        counts(&[("normal", 37_000), ("attack", 45_332)])
    );
    // First row: 1,0.000011,udp,-,INT,...
    assert_eq!(ds.x.get(0, 0), 0.000011);

    let multi = load("unsw-nb15/UNSW_NB15_training-set.csv", Task::Multiclass);
    assert_eq!(
        class_counts(&multi),
        counts(&[
            ("Normal", 37_000),
            ("Analysis", 677),
            ("Backdoor", 583),
            ("DoS", 4_089),
            ("Exploits", 11_132),
            ("Fuzzers", 6_062),
            ("Generic", 18_871),
            ("Reconnaissance", 3_496),
            ("Shellcode", 378),
            ("Worms", 44),
        ])
    );
    let n_values: Vec<usize> = multi
        .schema
        .features
        .iter()
        .filter_map(|f| match &f.kind {
            FeatureKind::Categorical { categories } => Some(categories.len()),
            FeatureKind::Numeric => None,
        })
        .collect();
    assert_eq!(n_values, vec![131, 13, 7]);
}

#[test]
fn kdd99_ten_percent() {
    let ds = load("kdd99/kddcup99_10_percent.csv", Task::Multiclass);
    assert_eq!(ds.schema.format, FormatSpec::Kdd99);
    assert_eq!(ds.x.n_rows(), 494_020);
    assert_eq!(ds.schema.features[12].name, "num_compromised");
    assert_eq!(
        class_counts(&ds),
        counts(&[
            ("normal", 97_277),
            ("DoS", 391_458),
            ("Probe", 4_107),
            ("R2L", 1_126),
            ("U2R", 52)
        ])
    );
}

#[test]
fn streaming_the_test_set_matches_the_whole_file_parse() {
    let train = load("nsl-kdd/KDDTrain+_20Percent.txt", Task::Binary);
    let path = dataset_path("nsl-kdd/KDDTest+.txt");
    let whole =
        load_path_with_schema(&path, &train.schema, &LoadOptions::new(Task::Binary)).unwrap();
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let reader = BatchReader::new("KDDTest+.txt", file, &train.schema, 5_000).unwrap();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    let mut next_line = 1;
    for batch in reader {
        let batch = batch.unwrap();
        assert_eq!(batch.first_line, next_line);
        next_line += batch.x.n_rows();
        rows.extend(batch.x.to_row_major());
        labels.extend(batch.labels.unwrap());
    }
    assert_eq!(rows, whole.x.to_row_major());
    assert_eq!(labels, whole.y);
}

#[test]
fn gzip_files_are_decompressed() {
    let plain = std::fs::read(dataset_path("nsl-kdd/KDDTest-21.txt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gz_path = dir.path().join("KDDTest-21.txt.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_path).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(&plain).unwrap();
    encoder.finish().unwrap();
    let opts = LoadOptions {
        unmapped_label: UnmappedLabelPolicy::Error,
        ..LoadOptions::new(Task::Binary)
    };
    let gz = load_path(&gz_path, &opts).unwrap();
    let txt = load_path(&dataset_path("nsl-kdd/KDDTest-21.txt"), &opts).unwrap();
    assert_eq!(gz.x, txt.x);
    assert_eq!(gz.y, txt.y);
    assert_eq!(gz.report.source, "KDDTest-21.txt.gz");

    let broken = dir.path().join("broken.txt.gz");
    std::fs::write(&broken, b"not gzip").unwrap();
    let err = load_path(&broken, &opts).unwrap_err();
    assert_eq!(err.to_string(), format!("cannot read {}", broken.display()));
    let missing = dir.path().join("missing.txt");
    let err = load_path(&missing, &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot read {}", missing.display())
    );
    assert!(std::error::Error::source(&err).is_some());
}
