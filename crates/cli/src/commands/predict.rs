//! `fedids predict`: streaming scoring in bounded memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use fedids_data::BatchReader;

use crate::args::{PredictArgs, PredictFormat};

fn open_input(path: &Path) -> Result<Box<dyn BufRead>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::new(flate2::read::GzDecoder::new(file))))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
    }
}

pub fn run(a: PredictArgs, quiet: bool) -> Result<()> {
    if a.batch_rows == 0 {
        bail!("--batch-rows must be at least 1");
    }
    let m = super::model_file::ModelFile::load(&a.model)?;
    let forest = m.model.forest();
    let classes = &forest.schema().classes;
    let source = a.input.display().to_string();
    let reader = BatchReader::new(
        &source,
        open_input(&a.input)?,
        forest.schema(),
        a.batch_rows,
    )?
    .without_labels();
    let out: Box<dyn Write> = match &a.output {
        Some(p) => {
            Box::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    if a.output_format == PredictFormat::Csv {
        write!(out, "row,predicted,probability")?;
        if a.proba {
            for c in classes {
                write!(out, ",p_{c}")?;
            }
        }
        writeln!(out)?;
    }
    let spin = crate::ui::spinner(&format!("scoring {source}"), quiet);
    let c = classes.len();
    let predictor = m.model.scorer();
    let mut row = 0u64;
    for batch in reader {
        let batch = batch?;
        let proba = predictor.predict_proba(&batch.x)?;
        for p in proba.chunks_exact(c) {
            let k = fedids_forest::argmax_class(p);
            match a.output_format {
                PredictFormat::Jsonl => {
                    write!(
                        out,
                        "{{\"row\":{row},\"predicted\":{},\"probability\":{}",
                        serde_json::to_string(&classes[k])?,
                        p[k]
                    )?;
                    if a.proba {
                        write!(out, ",\"proba\":{{")?;
                        for (i, (name, v)) in classes.iter().zip(p).enumerate() {
                            let sep = if i == 0 { "" } else { "," };
                            write!(out, "{sep}{}:{v}", serde_json::to_string(name)?)?;
                        }
                        write!(out, "}}")?;
                    }
                    writeln!(out, "}}")?;
                }
                PredictFormat::Csv => {
                    write!(out, "{row},{},{}", classes[k], p[k])?;
                    if a.proba {
                        for v in p {
                            write!(out, ",{v}")?;
                        }
                    }
                    writeln!(out)?;
                }
            }
            row += 1;
        }
        spin.set_message(format!("scoring {source}: {} rows", super::thousands(row)));
    }
    out.flush()?;
    spin.finish_and_clear();
    Ok(())
}
