//! Times `Predictor::predict` on a model file and a flow file, in one process, and prints the
//! (row, tree) walks per row, the median and the fastest of the timed runs. For comparing builds
//! or kernels on a noisy host: the fastest of many short runs moves far less than the median.
//!
//! `cargo run --release -p fedids-forest --example predict_rate -- MODEL DATA [RUNS]`
//!
//! `ROWS=N` keeps the first `N` rows only (a block of up to 1,024 rows is scored by one task);
//! `RAYON_NUM_THREADS` sets the threads. Before the timed runs, untimed ones run for a second.

use std::path::Path;
use std::time::Instant;

use fedids_data::{load_path_with_schema, LoadOptions};
use fedids_forest::model;

fn main() {
    if let Err(e) = run() {
        eprintln!("predict_rate: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: predict_rate MODEL DATA [RUNS]";
    let model_path = args.next().ok_or(usage)?;
    let data_path = args.next().ok_or(usage)?;
    let runs: usize = match args.next() {
        Some(s) => s
            .parse()
            .map_err(|e| format!("RUNS {s:?}: expected a count ({e})"))?,
        None => 200,
    };
    if runs == 0 {
        return Err("RUNS must be at least 1".into());
    }
    let bytes = std::fs::read(&model_path).map_err(|e| format!("{model_path}: {e}"))?;
    let forest = model::decode(&bytes).map_err(|e| format!("{model_path}: {e}"))?;
    let schema = forest.schema();
    let opts = LoadOptions {
        format: Some(schema.format.clone()),
        task: schema.task,
        skip_invalid: false,
        unmapped_label: Default::default(),
    };
    let data = load_path_with_schema(Path::new(&data_path), schema, &opts)?;
    let x = match std::env::var("ROWS") {
        Ok(n) => {
            let n: usize = n
                .parse()
                .map_err(|e| format!("ROWS={n:?}: expected a count ({e})"))?;
            data.x
                .select_rows(&(0..n.min(data.x.n_rows())).collect::<Vec<_>>())
        }
        Err(_) => data.x,
    };
    let predictor = forest.predictor();
    let n = x.n_rows();
    let (_, walks) = predictor.predict_counting(&x)?;
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < 1.0 {
        std::hint::black_box(predictor.predict(&x)?);
    }
    let mut seconds = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(predictor.predict(&x)?);
        seconds.push(start.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let (median, best) = (seconds[runs / 2], seconds[0]);
    println!(
        "{n} rows, {} trees, {:?} kernel: {:.1} walks per row; median {:.3} ms ({:.0} rows/s), \
         fastest {:.3} ms ({:.0} rows/s) of {runs} runs",
        forest.trees().len(),
        predictor.kernel(),
        walks as f64 / n.max(1) as f64,
        median * 1e3,
        n as f64 / median,
        best * 1e3,
        n as f64 / best
    );
    Ok(())
}
