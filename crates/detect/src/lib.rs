//! Detection on a stream for fedids: from scored flows to alerts and incidents.
//!
//! This crate turns a model's class probabilities for a [`Batch`] of flows into
//! Suricata-style EVE alert records ([`EveAlert`]) and groups the alerts into [`Incident`]s (same
//! source, target and class within a time window), so that one flood is one incident. It also
//! owns the meaning of class names ([`ThreatKind`]: severity, category) and the [`Timestamp`]
//! forms flow files use.
//!
//! It does no I/O and reads no clock: the caller passes the time to use for flows whose file has
//! no timestamps. The principal type is [`Detector`]:
//!
//! ```
//! use fedids_data::{parse_bytes, BatchReader, LoadOptions, Task};
//! use fedids_detect::{DetectConfig, Detector, Timestamp};
//! let row = b"0,tcp,private,S0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,123,6,1.00,1.00,0.00,0.00,0.05,0.07,0.00,255,26,0.10,0.05,0.00,0.00,1.00,1.00,0.00,0.00,neptune,21\n";
//! let ds = parse_bytes("t.txt", row, &LoadOptions::new(Task::Multiclass)).unwrap();
//! let batch = BatchReader::new("live", &row[..], &ds.schema, 64).unwrap().next().unwrap().unwrap();
//! // Say the model gives DoS (class 1) a probability of 0.9.
//! let proba = [0.1, 0.9, 0.0, 0.0, 0.0];
//! let config = DetectConfig { min_probability: 0.5, window_secs: 60, model_sha256: "ab".into() };
//! let mut detector = Detector::new(&ds.schema.classes, config);
//! let alerts = detector.process(&batch, &proba, Timestamp::from_secs(0)).unwrap();
//! assert_eq!(alerts[0].alert.signature, "FEDIDS ML DoS (denial of service)");
//! assert_eq!(alerts[0].proto.as_deref(), Some("TCP"));
//! assert_eq!(detector.finish().len(), 1);
//! ```

#![deny(missing_docs)]

mod alert;
mod incident;
mod threat;
mod time;

pub use alert::{
    eve_alert, normalize_proto, EveAlert, EveAlertBody, EveFedids, Flow, SIGNATURE_ID_BASE,
};
pub use incident::{
    incident_event, incident_id, parse_incidents, Incident, IncidentGrouper, FEDIDS_NAMESPACE,
    INCIDENT_EVENT, MAX_LISTED_PORTS,
};
pub use threat::ThreatKind;
pub use time::Timestamp;

use fedids_data::Batch;

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The probabilities do not match the batch.
    #[error(
        "expected {expected} probabilities ({n_rows} rows x {n_classes} classes), found {found}"
    )]
    ProbaShape {
        /// Rows in the batch.
        n_rows: usize,
        /// Classes of the model.
        n_classes: usize,
        /// `n_rows * n_classes`.
        expected: usize,
        /// What was given.
        found: usize,
    },
    /// The classes do not match the batch.
    #[error("expected a class for each of {n_rows} rows, found {found}")]
    ClassesShape {
        /// Rows in the batch.
        n_rows: usize,
        /// Classes given.
        found: usize,
    },
    /// A row's class is not one of the model's.
    #[error("row {row}: class {class} is not one of the model's {n_classes} classes")]
    UnknownClass {
        /// 0-based row in the batch.
        row: usize,
        /// The class given.
        class: usize,
        /// Classes of the model.
        n_classes: usize,
    },
    /// An alert could not be written as JSON.
    #[error("cannot write an alert as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// An incidents file line does not hold an incident.
    #[error("{input}:{line}:{column}: expected an incident as JSON, {message}")]
    Incident {
        /// Source name.
        input: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the JSON parser said.
        message: String,
    },
}

/// How alerts are raised and grouped.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    /// A non-benign prediction raises an alert only if its probability is at least this.
    pub min_probability: f32,
    /// Alerts of one (source, target, class) further apart than this start a new incident.
    pub window_secs: u64,
    /// SHA-256 of the model file, carried by every alert and incident.
    pub model_sha256: String,
}

/// Turns scored batches into alerts and incidents. Class 0 is benign and never alerts.
#[derive(Debug)]
pub struct Detector {
    classes: Vec<String>,
    /// Per class, the parts of its EVE lines that do not vary: built by the first
    /// [`Detector::write_classified`].
    lines: Option<Vec<alert::ClassLine>>,
    config: DetectConfig,
    grouper: IncidentGrouper,
    n_flows: u64,
    n_alerts: u64,
}

impl Detector {
    /// A detector for a model with these class names (index 0 benign).
    pub fn new(classes: &[String], config: DetectConfig) -> Self {
        Detector {
            classes: classes.to_vec(),
            lines: None,
            grouper: IncidentGrouper::new(config.window_secs, &config.model_sha256),
            config,
            n_flows: 0,
            n_alerts: 0,
        }
    }

    /// Scores one batch: `proba` is row-major, `n_rows * n_classes`, and each row's class is its
    /// most probable one. Flows without a timestamp take `now`. Returns the batch's alerts in row
    /// order.
    pub fn process(
        &mut self,
        batch: &Batch,
        proba: &[f32],
        now: Timestamp,
    ) -> Result<Vec<EveAlert>, DetectError> {
        let n_classes = self.classes.len().max(1);
        let classes: Vec<u32> = proba
            .chunks_exact(n_classes)
            .map(|p| argmax(p) as u32)
            .collect();
        self.process_classified(batch, &classes, proba, now)
    }

    /// [`Detector::process`] with each row's class given: a row of class 0 (benign) raises no
    /// alert and its probabilities are not read (a predictor may skip them); another row's alert
    /// carries `proba[row * n_classes + class]`.
    pub fn process_classified(
        &mut self,
        batch: &Batch,
        classes: &[u32],
        proba: &[f32],
        now: Timestamp,
    ) -> Result<Vec<EveAlert>, DetectError> {
        let mut alerts = Vec::new();
        let sha = self.config.model_sha256.clone();
        self.each_alert(
            batch,
            classes,
            proba,
            now,
            |flow, class, idx, probability, id| {
                alerts.push(eve_alert(flow, class, idx, probability, &sha, id));
                Ok(())
            },
        )?;
        Ok(alerts)
    }

    /// [`Detector::process_classified`], with each alert appended to `out` as one line of JSON
    /// instead of returned: the bytes `serde_json` writes for the [`EveAlert`] that
    /// `process_classified` returns, then `\n`. Returns how many alerts it wrote.
    ///
    /// This is how `fedids detect` writes alerts: it builds no record, so it allocates nothing
    /// per alert (the parts of a line that depend only on the class are written once, here).
    pub fn write_classified(
        &mut self,
        batch: &Batch,
        classes: &[u32],
        proba: &[f32],
        now: Timestamp,
        out: &mut Vec<u8>,
    ) -> Result<usize, DetectError> {
        let lines = match self.lines.take() {
            Some(lines) => lines,
            None => self
                .classes
                .iter()
                .enumerate()
                .map(|(idx, class)| {
                    alert::ClassLine::new(class, idx as u32, &self.config.model_sha256)
                })
                .collect::<Result<_, _>>()?,
        };
        let mut n = 0;
        let mut stamp = alert::StampCache::default();
        let result = self.each_alert(
            batch,
            classes,
            proba,
            now,
            |flow, _, idx, probability, id| {
                // In bounds: `each_alert` emits only classes below `self.classes.len()`, and there
                // is a line per class.
                lines[idx as usize].write(out, flow, probability, id, &mut stamp)?;
                n += 1;
                Ok(())
            },
        );
        self.lines = Some(lines);
        result.map(|()| n)
    }

    /// Checks the shapes, then calls `emit(flow, class, class index, probability, incident id)`
    /// for each alert of the batch, in row order, after adding it to its incident.
    fn each_alert(
        &mut self,
        batch: &Batch,
        classes: &[u32],
        proba: &[f32],
        now: Timestamp,
        mut emit: impl FnMut(&Flow, &str, u32, f32, &str) -> Result<(), DetectError>,
    ) -> Result<(), DetectError> {
        let n_rows = batch.x.n_rows();
        let n_classes = self.classes.len();
        if proba.len() != n_rows * n_classes || n_classes == 0 {
            return Err(DetectError::ProbaShape {
                n_rows,
                n_classes,
                expected: n_rows * n_classes,
                found: proba.len(),
            });
        }
        if classes.len() != n_rows {
            return Err(DetectError::ClassesShape {
                n_rows,
                found: classes.len(),
            });
        }
        self.n_flows += n_rows as u64;
        for (row_idx, (p, &class_idx)) in proba.chunks_exact(n_classes).zip(classes).enumerate() {
            let class_idx = class_idx as usize;
            if class_idx == 0 {
                continue;
            }
            let Some(&probability) = p.get(class_idx) else {
                return Err(DetectError::UnknownClass {
                    row: row_idx,
                    class: class_idx,
                    n_classes,
                });
            };
            if probability < self.config.min_probability {
                continue;
            }
            let line = batch.lines.get(row_idx).copied().unwrap_or(0);
            let flow = Flow::from_meta(&batch.meta.get(row_idx), now, line);
            let class = self.classes[class_idx].as_str();
            let id = self
                .grouper
                .add(&flow, class, class_idx as u32, probability);
            emit(&flow, class, class_idx as u32, probability, id)?;
            self.n_alerts += 1;
        }
        Ok(())
    }

    /// Flows scored so far.
    pub fn n_flows(&self) -> u64 {
        self.n_flows
    }

    /// Alerts raised so far.
    pub fn n_alerts(&self) -> u64 {
        self.n_alerts
    }

    /// Incidents so far.
    pub fn n_incidents(&self) -> usize {
        self.grouper.n_incidents()
    }

    /// Ends detection: every incident, sorted by first alert time.
    pub fn finish(self) -> Vec<Incident> {
        self.grouper.finish()
    }
}

/// The most probable class (lowest index on ties).
fn argmax(p: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p.get(best).copied().unwrap_or(f32::NEG_INFINITY) {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests;
