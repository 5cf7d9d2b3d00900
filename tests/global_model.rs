//! End-to-end tests of global model files (magic `FEDIDSGM`) in the CLI: global models are built
//! in process from two site forests trained on NSL-KDD, written with `encode_global`, and then
//! evaluated and inspected by the real `fedids` binary.

mod util;

use std::path::{Path, PathBuf};

use fedids_data::{Dataset, FormatSpec, LoadOptions, Task};
use fedids_federation::{
    category_support, encode_global, leaf_counts, merge, merge_experts, merge_support, GlobalModel,
    LeafCountTable, ScoreTable, SiteId, SiteModel,
};
use fedids_forest::{model, Forest, ForestParams, Metrics};
use serde_json::Value;
use util::{accuracy, datasets, s, Dir};

fn train_file() -> PathBuf {
    datasets().join("nsl-kdd/KDDTrain+_20Percent.txt")
}

fn test_file() -> PathBuf {
    datasets().join("nsl-kdd/KDDTest+.txt")
}

fn load(path: &Path) -> Dataset {
    let opts = LoadOptions {
        format: Some(FormatSpec::NslKdd),
        ..LoadOptions::new(Task::Binary)
    };
    fedids_data::load_path(path, &opts).expect("load NSL-KDD")
}

/// Two sites holding alternate rows of the 20% NSL-KDD training file (one schema, so their trees
/// can be merged), each with a small forest; returns the sites, each site's scores of its own
/// trees, and the leaf counts and category supports the gated strategies need.
fn two_sites() -> (
    Vec<SiteModel>,
    ScoreTable,
    LeafCountTable,
    Vec<(SiteId, fedids_federation::CategorySupport)>,
) {
    let ds = load(&train_file());
    let mut site_data = Vec::new();
    let mut sites = Vec::new();
    for i in 0..2u32 {
        let rows: Vec<usize> = (0..ds.x.n_rows()).filter(|r| r % 2 == i as usize).collect();
        let x = ds.x.select_rows(&rows);
        let y: Vec<u32> = rows.iter().map(|&r| ds.y[r]).collect();
        let params = ForestParams {
            n_trees: 8,
            max_depth: Some(10),
            seed: 11 + u64::from(i),
            ..ForestParams::default()
        };
        let forest = Forest::fit(&x, &y, ds.schema.clone(), &params, &|| ()).expect("fit");
        sites.push(SiteModel {
            site: SiteId(i),
            forest,
            n_train_rows: rows.len() as u64,
        });
        site_data.push((x, y));
    }
    let mut scores = ScoreTable::new();
    let mut counts = LeafCountTable::new();
    let mut supports = Vec::new();
    for (evaluator, (x, y)) in sites.iter().zip(&site_data) {
        scores.insert(
            evaluator.site,
            evaluator.site,
            evaluator.forest.score_trees(x, y).expect("scores"),
        );
        for owner in &sites {
            counts.insert(
                evaluator.site,
                owner.site,
                leaf_counts(&owner.forest, x, y).expect("leaf counts"),
            );
        }
        supports.push((
            evaluator.site,
            category_support(&ds.schema, x).expect("support"),
        ));
    }
    (sites, scores, counts, supports)
}

/// The accuracy `model` reaches in process on the test file read with its schema.
fn in_process_accuracy(model: &GlobalModel) -> f64 {
    let schema = model.forest().schema();
    let opts = LoadOptions {
        format: Some(schema.format.clone()),
        ..LoadOptions::new(schema.task)
    };
    let ds = fedids_data::load_path_with_schema(&test_file(), schema, &opts).expect("test data");
    let pred = model.predict(&ds.x).expect("predict");
    Metrics::compute(&ds.schema.classes, &ds.y, &pred).accuracy
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn eval_and_inspect_accept_global_model_files() {
    let dir = Dir::new();
    let (sites, scores, counts, supports) = two_sites();
    let wv = merge(&sites, &scores, &"top-global:10:a:wv".parse().unwrap(), 0).expect("merge");
    let experts = merge_experts(&sites, &counts).expect("experts");
    let support = merge_support(&sites, &supports).expect("support");

    for (name, global, voting, gating) in [
        ("wv", &wv, "wv", "none"),
        ("experts", &experts, "soft", "experts"),
        ("support", &support, "soft", "support"),
    ] {
        let bytes = encode_global(global);
        let path = dir.write(&format!("{name}.fedg"), &bytes);

        let e = dir.eval(&path, &test_file());
        assert_eq!(e["model_kind"], "global", "{name}");
        assert_eq!(e["model_hash"], sha256_hex(&bytes), "{name}");
        assert_eq!(e["n_rows"], 22544, "{name}");
        assert_eq!(
            accuracy(&e),
            in_process_accuracy(global),
            "{name}: the CLI must predict exactly as GlobalModel::predict"
        );
        assert!(accuracy(&e) > 0.6, "{name}: {}", accuracy(&e));

        let v = dir.json(&["model", "inspect", s(&path), "--json"]);
        assert_eq!(v["model_kind"], "global", "{name}");
        assert_eq!(v["voting"], voting, "{name}");
        assert_eq!(v["gating"], gating, "{name}");
        assert_eq!(v["n_trees"], global.n_trees(), "{name}");
        assert_eq!(v["model_hash"], sha256_hex(&bytes), "{name}");
        assert_eq!(v["model_bytes"], bytes.len(), "{name}");
        assert_eq!(v["input_format"], "nsl-kdd", "{name}");
        assert_eq!(v["task"], "binary", "{name}");
        assert_eq!(v["features"].as_array().unwrap().len(), 41, "{name}");
        let per_site = v["trees_per_site"].as_array().expect("trees_per_site");
        assert_eq!(v["n_sites"], per_site.len(), "{name}");
        let total: u64 = per_site
            .iter()
            .map(|t| t["n_trees"].as_u64().unwrap())
            .sum();
        assert_eq!(total, global.n_trees() as u64, "{name}");
        for site in per_site {
            let id = site["site"].as_u64().unwrap() as u32;
            let expected = global
                .sources()
                .iter()
                .filter(|r| r.site == SiteId(id))
                .count();
            assert_eq!(site["n_trees"], expected, "{name}");
        }

        let text = dir.ok(&["model", "inspect", s(&path)]);
        for needle in [
            "fedids global model v1",
            "kind           global",
            &format!("voting         {voting}"),
            &format!("gating         {gating}"),
            "top features by impurity importance",
        ] {
            assert!(text.contains(needle), "{name}: no '{needle}' in\n{text}");
        }
        let text = dir.ok(&["eval", "--model", s(&path), "--data", s(&test_file())]);
        let hash = &sha256_hex(&bytes)[..16];
        assert!(
            text.contains(&format!("global model {hash} ({voting} voting) on ")),
            "{text}"
        );
    }
    // The gated models take trees from both sites; so does the wv merge here.
    assert_eq!(experts.n_trees(), 16);

    // A forest model file still works and says so.
    let forest_bytes = model::encode(&sites[0].forest);
    let forest_path = dir.write("site0.fedids", &forest_bytes);
    let e = dir.eval(&forest_path, &test_file());
    assert_eq!(e["model_kind"], "forest");
    assert_eq!(e["model_hash"], sha256_hex(&forest_bytes));
    let v: Value = dir.json(&["model", "inspect", s(&forest_path), "--json"]);
    assert_eq!(v["model_kind"], "forest");
    assert_eq!(v["n_trees"], 8);
    assert!(
        v.get("voting").is_none() && v.get("gating").is_none(),
        "{v}"
    );
}

#[test]
fn corrupted_global_model_files_are_refused_clearly() {
    let dir = Dir::new();
    let (sites, scores, _, _) = two_sites();
    let global = merge(&sites, &scores, &"top-global:4:a:sv".parse().unwrap(), 0).expect("merge");
    let bytes = encode_global(&global);
    let test = test_file();

    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let flipped = dir.write("flipped.fedg", &flipped);
    let err = dir.fails(&["eval", "--model", s(&flipped), "--data", s(&test)]);
    assert!(
        err.contains("flipped.fedg: invalid global model file: checksum mismatch"),
        "{err}"
    );
    let err = dir.fails(&["model", "inspect", s(&flipped)]);
    assert!(
        err.contains("flipped.fedg") && err.contains("global model"),
        "{err}"
    );

    let cut = dir.write("cut.fedg", &bytes[..bytes.len() / 3]);
    let err = dir.fails(&["model", "inspect", s(&cut), "--json"]);
    assert!(
        err.contains("cut.fedg: invalid global model file: truncated"),
        "{err}"
    );

    // Neither kind: the forest decoder's error, naming the file.
    let foreign = dir.write("foreign.fedg", b"FEDIDSXX not a model at all");
    let err = dir.fails(&["eval", "--model", s(&foreign), "--data", s(&test)]);
    assert!(
        err.contains("foreign.fedg") && err.contains("not a fedids model file"),
        "{err}"
    );
}

#[test]
fn predict_and_detect_accept_global_model_files() {
    let dir = Dir::new();
    let (sites, scores, _, supports) = two_sites();
    let wv = merge(&sites, &scores, &"top-global:10:a:wv".parse().unwrap(), 0).expect("merge");
    let support = merge_support(&sites, &supports).expect("support");
    // The first 2,000 flows of KDDTest+.
    let text = std::fs::read_to_string(test_file()).unwrap();
    let head: String = text.lines().take(2000).map(|l| format!("{l}\n")).collect();
    let input = dir.write("head.txt", head.as_bytes());
    for (name, global) in [("wv", &wv), ("support", &support)] {
        let path = dir.write(&format!("{name}.fedg"), &encode_global(global));
        let schema = global.forest().schema();
        let opts = LoadOptions {
            format: Some(schema.format.clone()),
            ..LoadOptions::new(schema.task)
        };
        let ds = fedids_data::load_path_with_schema(&input, schema, &opts).unwrap();
        let expected = global.predict(&ds.x).unwrap();
        let out = dir.ok(&[
            "predict",
            "--model",
            s(&path),
            "--input",
            s(&input),
            "--quiet",
        ]);
        let predicted: Vec<String> = out
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["predicted"].as_str().unwrap().to_string()
            })
            .collect();
        let want: Vec<String> = expected
            .iter()
            .map(|&c| schema.classes[c as usize].clone())
            .collect();
        assert_eq!(
            predicted, want,
            "{name}: predict must follow the global model's rule"
        );
        let alerts = dir.ok(&[
            "detect",
            "--model",
            s(&path),
            "--input",
            s(&input),
            "--quiet",
        ]);
        let n_alerts = alerts
            .lines()
            .filter(|l| l.contains("\"event_type\":\"alert\""))
            .count();
        let n_attacks = expected.iter().filter(|&&c| c != 0).count();
        assert!(
            n_alerts > 0 && n_alerts <= n_attacks,
            "{name}: {n_alerts} alerts for {n_attacks} predicted attacks"
        );
    }
}
