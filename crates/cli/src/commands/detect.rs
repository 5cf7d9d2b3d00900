//! `fedids detect`: stream flows through a model and write EVE alerts and incidents.
//!
//! The next batch is read and parsed while the current one is scored and the previous one has its
//! alerts written, all as tasks of the one rayon pool.
//! With `--follow`, the input is a file being appended to: [`Follow`] hands out whole lines as
//! they arrive and tells the batch reader to hand out a short batch when nothing new comes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fedids_data::BatchReader;
use fedids_detect::{incident_event, DetectConfig, Detector, Timestamp};

use crate::args::DetectArgs;

/// How long `--follow` waits before looking at the file again.
const POLL: Duration = Duration::from_millis(100);

/// Reads a growing file: hands out only complete lines; at the end of the file it waits
/// [`POLL`] and reports `WouldBlock`; it ends (EOF) on Ctrl-C, or when the file is removed,
/// replaced or truncated, recording why in `stopped`.
struct Follow {
    file: File,
    path: PathBuf,
    pos: u64,
    /// Bytes read after the last complete line.
    partial: Vec<u8>,
    /// Complete lines not yet handed out, from `ready_at`.
    ready: Vec<u8>,
    ready_at: usize,
    interrupted: Arc<AtomicBool>,
    stopped: Arc<OnceLock<String>>,
    #[cfg(unix)]
    inode: u64,
}

impl Follow {
    fn open(
        path: &Path,
        interrupted: Arc<AtomicBool>,
        stopped: Arc<OnceLock<String>>,
    ) -> Result<Follow> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            file.metadata()?.ino()
        };
        Ok(Follow {
            file,
            path: path.to_path_buf(),
            pos: 0,
            partial: Vec::new(),
            ready: Vec::new(),
            ready_at: 0,
            interrupted,
            stopped,
            #[cfg(unix)]
            inode,
        })
    }

    fn stop(&mut self, why: String) -> io::Result<usize> {
        let dropped = if self.partial.is_empty() {
            String::new()
        } else {
            format!(
                " ({} bytes of an unfinished last line were not scored)",
                self.partial.len()
            )
        };
        let _ = self.stopped.set(format!("{why}{dropped}"));
        Ok(0)
    }

    /// Why to stop following, if the file is gone, replaced or shorter than what was read.
    fn gone(&self) -> Option<String> {
        let shown = self.path.display();
        match std::fs::metadata(&self.path) {
            Err(_) => Some(format!("stopped following {shown}: the file was removed")),
            Ok(m) if m.len() < self.pos => Some(format!(
                "stopped following {shown}: the file was truncated ({} bytes, {} already read)",
                m.len(),
                self.pos
            )),
            #[cfg(unix)]
            Ok(m) if std::os::unix::fs::MetadataExt::ino(&m) != self.inode => {
                Some(format!("stopped following {shown}: the file was replaced"))
            }
            Ok(_) => None,
        }
    }
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.ready_at < self.ready.len() {
                let avail = &self.ready[self.ready_at..];
                let n = avail.len().min(buf.len());
                buf[..n].copy_from_slice(&avail[..n]);
                self.ready_at += n;
                return Ok(n);
            }
            if self.interrupted.load(Ordering::Relaxed) {
                return self.stop(format!(
                    "stopped following {}: interrupted",
                    self.path.display()
                ));
            }
            let mut chunk = vec![0u8; 1 << 16];
            let n = self.file.read(&mut chunk)?;
            if n > 0 {
                self.pos += n as u64;
                self.partial.extend_from_slice(&chunk[..n]);
                if let Some(last_nl) = self.partial.iter().rposition(|&b| b == b'\n') {
                    let rest = self.partial.split_off(last_nl + 1);
                    self.ready = std::mem::replace(&mut self.partial, rest);
                    self.ready_at = 0;
                }
                continue;
            }
            if let Some(why) = self.gone() {
                return self.stop(why);
            }
            std::thread::sleep(POLL);
            return Err(io::ErrorKind::WouldBlock.into());
        }
    }
}

fn open_input(
    a: &DetectArgs,
    interrupted: &Arc<AtomicBool>,
    stopped: &Arc<OnceLock<String>>,
) -> Result<Box<dyn BufRead + Send>> {
    let path = &a.input;
    if a.follow {
        if path == Path::new("-") {
            bail!("--follow needs a file, not stdin (stdin is read to its end anyway)");
        }
        let follow = Follow::open(path, interrupted.clone(), stopped.clone())?;
        return Ok(Box::new(BufReader::with_capacity(1 << 16, follow)));
    }
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            file,
        ))))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
    }
}

/// Refuses an input whose detected format differs from the model's, naming the model columns
/// the input lacks (a headerless input has no named columns).
fn check_input_format(
    source: &str,
    input: &mut Box<dyn BufRead + Send>,
    schema: &fedids_data::Schema,
) -> Result<()> {
    let head = input.fill_buf()?;
    let Ok(detected) = fedids_data::detect_format(head) else {
        return Ok(());
    };
    let generic = matches!(schema.format, fedids_data::FormatSpec::Csv(_));
    if generic || detected.name() == schema.format.name() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(head);
    let header: Vec<String> = text
        .lines()
        .find(|l| l.starts_with("#fields") || (!l.starts_with('#') && !l.trim().is_empty()))
        .map(|l| {
            let sep = if l.starts_with("#fields") { '\t' } else { ',' };
            l.split(sep).map(|c| c.trim().to_string()).collect()
        })
        .unwrap_or_default();
    let missing: Vec<&str> = schema
        .features
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| !header.iter().any(|h| h == n))
        .collect();
    let shown: Vec<String> = missing.iter().take(12).map(|n| format!("'{n}'")).collect();
    let more = if missing.len() > 12 {
        format!(" and {} more", missing.len() - 12)
    } else {
        String::new()
    };
    bail!(
        "{source} looks like {} but the model reads {}: the input lacks the model's columns {}{more}",
        detected.name(),
        schema.format.name(),
        shown.join(", ")
    )
}

/// A batch with its classes and probabilities, waiting to have its alerts written.
type Scored = (fedids_data::Batch, Vec<u32>, Vec<f32>);

/// Writes the alerts of `scored` (if any, taking it) to `out`, through `lines`.
fn write_scored(
    scored: &mut Option<Scored>,
    detector: &mut Detector,
    lines: &mut Vec<u8>,
    out: &mut impl Write,
    flush: bool,
) -> Result<()> {
    if let Some((batch, classes, proba)) = scored.take() {
        lines.clear();
        detector.write_classified(&batch, &classes, &proba, now(), lines)?;
        out.write_all(lines)?;
        if flush {
            out.flush()?;
        }
    }
    Ok(())
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_micros().min(i64::MAX as u128) as i64)
}

pub fn run(a: DetectArgs, quiet: bool) -> Result<()> {
    if a.batch_rows == 0 {
        bail!("--batch-rows must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.min_probability) {
        bail!(
            "--min-probability must be between 0 and 1, found {}",
            a.min_probability
        );
    }
    let m = super::model_file::ModelFile::load(&a.model)?;
    let forest = m.model.forest();
    let schema = forest.schema().clone();
    let interrupted = Arc::new(AtomicBool::new(false));
    let stopped: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    if a.follow {
        let flag = interrupted.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
            .context("cannot install the Ctrl-C handler")?;
    }
    let source = a.input.display().to_string();
    let mut input = open_input(&a, &interrupted, &stopped)?;
    if !a.follow {
        check_input_format(&source, &mut input, &schema)?;
    }
    let reader = BatchReader::new(&source, input, &schema, a.batch_rows)
        .with_context(|| {
            format!(
                "the model {} reads {} ({} features)",
                a.model.display(),
                schema.format.name(),
                schema.n_features()
            )
        })?
        .without_labels();

    let mut out: Box<dyn Write + Send> = match &a.output {
        Some(p) => Box::new(BufWriter::with_capacity(
            1 << 16,
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout())),
    };
    let config = DetectConfig {
        min_probability: a.min_probability,
        window_secs: a.window,
        model_sha256: m.hash.clone(),
    };
    let mut detector = Detector::new(&schema.classes, config);
    let predictor = m.model.scorer();
    let spin = crate::ui::spinner(&format!("scoring {source}"), quiet);
    let start = Instant::now();

    // The next batch is parsed while this one is scored, both as tasks of the one thread pool:
    // a parser thread of its own would compete with the pool's threads for the cores, and a
    // scoring task it preempts holds up the whole batch.
    let mut reader = reader;
    let mut result = Ok(());
    let mut lines = Vec::new();
    // A batch scored in one step has its alerts written in the next, beside the scoring of the
    // batch after it and the parsing of the one after that: writing is sequential, and while it
    // ran alone at the end of a step the other core had nothing left to do. `--follow` writes a
    // batch's alerts as soon as it is scored: the next step may wait long for new lines.
    let mut scored: Option<Scored> = None;
    let mut current = reader.next();
    while let Some(batch) = current {
        let (next, (step, written)) = rayon::join(
            || reader.next(),
            || {
                rayon::join(
                    || -> Result<Scored> {
                        let batch = batch?;
                        let (classes, proba) = predictor.classify_for_detection(&batch.x)?;
                        Ok((batch, classes, proba))
                    },
                    || write_scored(&mut scored, &mut detector, &mut lines, &mut out, a.follow),
                )
            },
        );
        let step = written.and(step);
        match step {
            Ok(s) => scored = Some(s),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        if a.follow {
            if let Err(e) = write_scored(&mut scored, &mut detector, &mut lines, &mut out, true) {
                result = Err(e);
                break;
            }
        }
        current = next;
        spin.set_message(format!(
            "scoring {source}: {} flows, {} alerts",
            super::thousands(detector.n_flows()),
            super::thousands(detector.n_alerts())
        ));
    }
    // The last batch scored has no step after it to write its alerts. (After an error there is
    // none: the step that failed wrote the batch before it.)
    if let Err(e) = write_scored(&mut scored, &mut detector, &mut lines, &mut out, a.follow) {
        result = result.and(Err(e));
    }
    spin.finish_and_clear();
    if let Some(why) = stopped.get() {
        eprintln!("{why}");
    }
    // Incidents are written even when scoring stopped on an error, so that no alert is left
    // without its incident.
    let (n_flows, n_alerts) = (detector.n_flows(), detector.n_alerts());
    let incidents = detector.finish();
    match &a.incidents {
        Some(p) => {
            let mut f = BufWriter::new(
                File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
            );
            for inc in &incidents {
                serde_json::to_writer(&mut f, inc)?;
                f.write_all(b"\n")?;
            }
            f.flush()?;
        }
        None => {
            for inc in &incidents {
                serde_json::to_writer(&mut out, &incident_event(inc))?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    result?;
    let secs = start.elapsed().as_secs_f64();
    if !quiet {
        eprintln!(
            "scored {} flows in {secs:.2} s ({:.0} flows/s): {} alerts, {} incidents",
            super::thousands(n_flows),
            n_flows as f64 / secs.max(1e-9),
            super::thousands(n_alerts),
            incidents.len()
        );
    }
    Ok(())
}
