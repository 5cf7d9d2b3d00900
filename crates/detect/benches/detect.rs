//! End-to-end detection throughput: flows scored per second from a file, with a 100-tree model
//! trained here on NSL-KDD (KDDTrain+, multiclass), against a reference in the same process: the
//! raw predictor on the same rows preloaded as one matrix, scoring as detection does (a row sure
//! to be benign stops walking trees; `Predictor::predict_settling`). It also prints the
//! predictor computing every probability of every row, against that reference.
//!
//! The file is KDDTrain+ repeated `N_COPIES` times (about 500,000 flows). End to end means:
//! read the file, parse and encode it in batches (`BatchReader`), score (`Predictor`), raise and
//! group alerts (`Detector`) and serialise them as EVE JSON lines (to a sink). Two variants:
//! sequential, and pipelined (the next batch is parsed while this one is scored and the previous
//! one has its alerts written, all as tasks of rayon's pool), which is what `fedids detect` does.
//!
//! Each line also gives the CPU time (user + system, all threads, from `/proc/self/stat`) per
//! flow of its fastest run. On a shared machine it moves less than wall time, because time the
//! host gives to others is not counted; idle rayon threads that spin before they sleep are.
//!
//! Run with `cargo bench -p fedids-detect --bench detect`; the thread count is rayon's
//! (`RAYON_NUM_THREADS`, default all cores).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::time::Instant;

use fedids_data::{load_path, BatchReader, LoadOptions, Task};
use fedids_detect::{DetectConfig, Detector, Timestamp};
use fedids_forest::{Forest, ForestParams};

const N_COPIES: usize = 4;
const BATCH_ROWS: usize = 8192;
const N_RUNS: usize = 3;

fn dataset(rel: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/datasets"
    ))
    .join(rel)
}

fn main() {
    let train_path = dataset("nsl-kdd/KDDTrain+.txt");
    let train = load_path(&train_path, &LoadOptions::new(Task::Multiclass)).expect("KDDTrain+");
    let params = ForestParams {
        n_trees: 100,
        ..ForestParams::default()
    };
    let t = Instant::now();
    let forest =
        Forest::fit(&train.x, &train.y, train.schema.clone(), &params, &|| ()).expect("fit");
    eprintln!("trained 100 trees in {:.1} s", t.elapsed().as_secs_f64());

    let bytes = std::fs::read(&train_path).expect("read");
    let path = std::env::temp_dir().join(format!("fedids-detect-bench-{}.txt", std::process::id()));
    {
        let mut f = File::create(&path).expect("create");
        for _ in 0..N_COPIES {
            f.write_all(&bytes).expect("write");
        }
    }
    let n_flows = train.x.n_rows() * N_COPIES;
    let threads = rayon::current_num_threads();
    let predictor = forest.predictor();
    println!(
        "{n_flows} flows, 100 trees, {threads} threads, batches of {BATCH_ROWS}, {:?} kernel",
        predictor.kernel()
    );

    // Reference: the predictor alone on the preloaded rows (same count of rows), scoring as
    // detection does (rows sure to be benign stop early; every other row gets its exact
    // probabilities); and all probabilities of every row, for comparison.
    let reference = best(|| {
        for _ in 0..N_COPIES {
            std::hint::black_box(predictor.predict_settling(&train.x, 0).expect("predict"));
        }
    });
    let all_proba = best(|| {
        for _ in 0..N_COPIES {
            std::hint::black_box(predictor.predict_proba(&train.x).expect("predict"));
        }
    });
    let config = DetectConfig {
        min_probability: 0.0,
        window_secs: 60,
        model_sha256: "bench".into(),
    };
    let sequential = best(|| {
        let reader = BatchReader::new(
            "bench",
            BufReader::with_capacity(1 << 20, File::open(&path).expect("open")),
            forest.schema(),
            BATCH_ROWS,
        )
        .expect("reader")
        .without_labels();
        let mut detector = Detector::new(&forest.schema().classes, config.clone());
        let mut sink = std::io::sink();
        let mut lines = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
            let (classes, proba) = predictor.predict_settling(&batch.x, 0).expect("predict");
            lines.clear();
            detector
                .write_classified(&batch, &classes, &proba, Timestamp(0), &mut lines)
                .expect("process");
            sink.write_all(&lines).expect("write");
        }
        assert_eq!(detector.n_flows() as usize, n_flows);
    });
    let mut n_alerts = 0;
    let mut n_incidents = 0;
    let pipelined = best(|| {
        let mut reader = BatchReader::new(
            "bench",
            BufReader::with_capacity(1 << 20, File::open(&path).expect("open")),
            forest.schema(),
            BATCH_ROWS,
        )
        .expect("reader")
        .without_labels();
        let mut detector = Detector::new(&forest.schema().classes, config.clone());
        let mut sink = std::io::sink();
        let mut lines = Vec::new();
        // As in `fedids detect`: the next batch is parsed while this one is scored and the one
        // before it has its alerts written, all as tasks of rayon's pool; alerts are written as
        // EVE lines without building records.
        type Scored = (fedids_data::Batch, Vec<u32>, Vec<f32>);
        let mut write = |scored: Option<Scored>, detector: &mut Detector| {
            if let Some((batch, classes, proba)) = scored {
                lines.clear();
                detector
                    .write_classified(&batch, &classes, &proba, Timestamp(0), &mut lines)
                    .expect("process");
                sink.write_all(&lines).expect("write");
            }
        };
        let mut scored: Option<Scored> = None;
        let mut current = reader.next();
        while let Some(batch) = current {
            let batch = batch.expect("batch");
            let (next, (now_scored, ())) = rayon::join(
                || reader.next(),
                || {
                    rayon::join(
                        || {
                            let (classes, proba) =
                                predictor.predict_settling(&batch.x, 0).expect("predict");
                            (batch, classes, proba)
                        },
                        || write(scored.take(), &mut detector),
                    )
                },
            );
            scored = Some(now_scored);
            current = next;
        }
        write(scored.take(), &mut detector);
        assert_eq!(detector.n_flows() as usize, n_flows);
        n_alerts = detector.n_alerts();
        n_incidents = detector.finish().len();
    });
    let _ = std::fs::remove_file(&path);
    let rate = |run: Run| n_flows as f64 / run.wall;
    let cpu = |run: Run| match run.cpu {
        Some(cpu) => format!("{:.2} us CPU/flow", cpu * 1e6 / n_flows as f64),
        None => "CPU time n/a".to_string(),
    };
    println!("alerts {n_alerts}, incidents {n_incidents}");
    println!(
        "predictor, every probability of every row  {:>12.0} flows/s  ({:.3} s, {})",
        rate(all_proba),
        all_proba.wall,
        cpu(all_proba)
    );
    println!(
        "reference: predictor on a preloaded matrix  {:>12.0} flows/s  ({:.3} s, {})  {:.2}x the line above",
        rate(reference),
        reference.wall,
        cpu(reference),
        all_proba.wall / reference.wall
    );
    println!(
        "end to end, sequential                     {:>12.0} flows/s  ({:.3} s, {})  {:.2}x the reference",
        rate(sequential),
        sequential.wall,
        cpu(sequential),
        reference.wall / sequential.wall
    );
    println!(
        "end to end, pipelined (fedids detect)      {:>12.0} flows/s  ({:.3} s, {})  {:.2}x the reference",
        rate(pipelined),
        pipelined.wall,
        cpu(pipelined),
        reference.wall / pipelined.wall
    );
    println!("target: 1,000,000 flows/s end to end");
}

/// Wall seconds of a run, and its CPU seconds (user + system, all threads) where the platform
/// reports them.
#[derive(Clone, Copy)]
struct Run {
    wall: f64,
    cpu: Option<f64>,
}

/// The fastest of `N_RUNS` runs.
fn best(mut run: impl FnMut()) -> Run {
    (0..N_RUNS)
        .map(|_| {
            let cpu = cpu_seconds();
            let t = Instant::now();
            run();
            let wall = t.elapsed().as_secs_f64();
            let cpu = cpu.zip(cpu_seconds()).map(|(before, after)| after - before);
            Run { wall, cpu }
        })
        .min_by(|a, b| a.wall.total_cmp(&b.wall))
        .expect("N_RUNS > 0")
}

/// This process's CPU seconds so far (user + system, all threads), from `/proc/self/stat`
/// (Linux; `None` elsewhere). Its fields 14 and 15 count clock ticks, 100 per second on Linux
/// (`USER_HZ`), so a run of half a second is measured to about 2%.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}
