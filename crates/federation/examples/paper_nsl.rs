//! The published protocol on NSL-KDD KDDTrain+ (binary, 3 sites by protocol_type, 65 trees per
//! site, K = 129, seed 0): prints the accuracy of every baseline and strategy.
//!
//! `cargo run --release -p fedids-federation --example paper_nsl [-- SEED [TASK]]`

use std::path::Path;
use std::time::Instant;

use fedids_data::{load_path, FormatSpec, LoadOptions, Task};
use fedids_federation::{run_protocol, ProtocolConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().map_or(Ok(0), |s| s.parse())?;
    let task: Task = args.next().map_or(Ok(Task::Binary), |s| s.parse())?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets/nsl-kdd/KDDTrain+.txt");
    let start = Instant::now();
    let data = load_path(&path, &LoadOptions::new(task))?;
    let loaded = start.elapsed();
    let mut config = ProtocolConfig::for_format(&FormatSpec::NslKdd, seed).ok_or("no protocol")?;
    if let Ok(extra) = std::env::var("STRATEGIES") {
        config.strategies = extra.split(',').map(str::parse).collect::<Result<_, _>>()?;
    }
    let report = run_protocol(&data, &config)?;
    let sim = &report.simulation;
    println!(
        "NSL-KDD KDDTrain+ {}, seed {seed}: {} train+validation rows, {} test rows, classes {:?}",
        task.name(),
        report.split.n_train_rows,
        sim.n_test_rows,
        report.split.classes
    );
    for s in &sim.sites {
        println!(
            "  site {:<6} train {:>6} validation {:>5} local-only accuracy {:.4}",
            s.name, s.n_train_rows, s.n_validation_rows, s.test.accuracy
        );
    }
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "model", "trees", "accuracy", "macro-F1", "DR", "FAR"
    );
    let row = |name: &str, n: usize, m: &fedids_forest::Metrics| {
        println!(
            "{name:<28} {n:>6} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
            m.accuracy, m.macro_f1, m.detection_rate, m.false_alarm_rate
        )
    };
    row(
        "centralized",
        sim.centralized.n_trees,
        &sim.centralized.metrics,
    );
    let l = &sim.local_only.accuracy;
    println!(
        "{:<28} {:>6} {:>9.4} (min {:.4}, max {:.4})",
        "local-only (mean)", "", l.mean, l.min, l.max
    );
    for r in &sim.strategies {
        row(&r.name, r.n_trees, &r.metrics);
    }
    println!(
        "load {:.1}s, protocol {:.1}s",
        loaded.as_secs_f64(),
        (start.elapsed() - loaded).as_secs_f64()
    );
    Ok(())
}
