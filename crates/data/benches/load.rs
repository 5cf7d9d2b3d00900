//! Load throughput on the KDD Cup 99 10% file (494,020 rows, 74 MB), against a naive reference in
//! the same process: a sequential `csv::Reader` pass that reads every record as a `StringRecord`
//! and parses every field with `str::parse::<f64>`.
//!
//! Run with `cargo bench -p fedids-data --bench load`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use fedids_data::{parse_bytes, LoadOptions, Task};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/datasets/kdd99/kddcup99_10_percent.csv"
);
const N_RUNS: usize = 5;

/// The fastest of `N_RUNS` runs.
fn best_of(mut run: impl FnMut()) -> Duration {
    (0..N_RUNS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn naive(bytes: &[u8]) -> usize {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let mut n_numbers = 0;
    for record in reader.records() {
        let Ok(record) = record else { continue };
        for field in record.iter() {
            if field.parse::<f64>().is_ok() {
                n_numbers += 1;
            }
        }
    }
    n_numbers
}

fn main() {
    let bytes = match std::fs::read(PATH) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("cannot read {PATH}: {e}");
            std::process::exit(1);
        }
    };
    let mb = bytes.len() as f64 / 1e6;
    let opts = LoadOptions::new(Task::Binary);
    let mut n_rows = 0;
    let ours = best_of(
        || match parse_bytes("kddcup99_10_percent.csv", black_box(&bytes), &opts) {
            Ok(ds) => n_rows = black_box(ds.x.n_rows()),
            Err(e) => panic!("{e}"),
        },
    );
    let reference = best_of(|| {
        black_box(naive(black_box(&bytes)));
    });
    let secs = ours.as_secs_f64();
    println!(
        "fedids-data load: {secs:.3} s ({:.0} MB/s, {n_rows} rows, {} threads); \
         naive csv+parse: {:.3} s; ratio {:.1}x (best of {N_RUNS})",
        mb / secs,
        rayon::current_num_threads(),
        reference.as_secs_f64(),
        reference.as_secs_f64() / secs,
    );
}
