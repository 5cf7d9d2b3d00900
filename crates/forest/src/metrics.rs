//! Classification metrics for intrusion detection: accuracy, per-class precision/recall/F1, macro
//! and weighted F1, detection rate and false-alarm rate, and the confusion matrix.

use serde::{Deserialize, Serialize};

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// True rows of this class.
    pub support: u64,
}

/// Evaluation of predictions against true labels. Class 0 is benign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n_rows: u64,
    pub accuracy: f64,
    /// Unweighted mean F1 over the classes that have true rows or predictions.
    pub macro_f1: f64,
    /// Support-weighted mean F1.
    pub weighted_f1: f64,
    /// Attack rows predicted as any attack class, over all attack rows.
    pub detection_rate: f64,
    /// Benign rows predicted as any attack class, over all benign rows.
    pub false_alarm_rate: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]`
    pub confusion: Vec<Vec<u64>>,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Metrics {
    /// Computes the metrics; `y_true` and `y_pred` hold class indices `< classes.len()`.
    ///
    /// Panics if the slices differ in length or hold an index out of range (caller bug).
    pub fn compute(classes: &[String], y_true: &[u32], y_pred: &[u32]) -> Metrics {
        assert_eq!(y_true.len(), y_pred.len(), "one prediction per row");
        let c = classes.len();
        let mut confusion = vec![vec![0u64; c]; c];
        for (&t, &p) in y_true.iter().zip(y_pred) {
            confusion[t as usize][p as usize] += 1;
        }
        let n = y_true.len() as u64;
        let correct: u64 = (0..c).map(|i| confusion[i][i]).sum();
        let mut per_class = Vec::with_capacity(c);
        let (mut f1_sum, mut n_scored, mut weighted) = (0.0, 0usize, 0.0);
        for (i, name) in classes.iter().enumerate() {
            let tp = confusion[i][i];
            let support: u64 = confusion[i].iter().sum();
            let predicted: u64 = (0..c).map(|t| confusion[t][i]).sum();
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            if support > 0 || predicted > 0 {
                f1_sum += f1;
                n_scored += 1;
            }
            weighted += f1 * support as f64;
            per_class.push(ClassMetrics {
                class: name.clone(),
                precision,
                recall,
                f1,
                support,
            });
        }
        let benign_total: u64 = confusion.first().map_or(0, |r| r.iter().sum());
        let benign_flagged: u64 = confusion.first().map_or(0, |r| r.iter().skip(1).sum());
        let attack_total = n - benign_total;
        let attack_detected: u64 = confusion
            .iter()
            .skip(1)
            .map(|r| r.iter().skip(1).sum::<u64>())
            .sum();
        Metrics {
            n_rows: n,
            accuracy: ratio(correct, n),
            macro_f1: if n_scored == 0 {
                0.0
            } else {
                f1_sum / n_scored as f64
            },
            weighted_f1: if n == 0 { 0.0 } else { weighted / n as f64 },
            detection_rate: ratio(attack_detected, attack_total),
            false_alarm_rate: ratio(benign_flagged, benign_total),
            per_class,
            confusion,
        }
    }

    /// A human-readable report: headline figures, per-class table and confusion matrix.
    pub fn render_table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "rows              {}", self.n_rows);
        let _ = writeln!(s, "accuracy          {:.4}", self.accuracy);
        let _ = writeln!(s, "macro F1          {:.4}", self.macro_f1);
        let _ = writeln!(s, "weighted F1       {:.4}", self.weighted_f1);
        let _ = writeln!(s, "detection rate    {:.4}", self.detection_rate);
        let _ = writeln!(s, "false-alarm rate  {:.4}", self.false_alarm_rate);
        let w = self
            .per_class
            .iter()
            .map(|c| c.class.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<w$}  {:>9}  {:>9}  {:>9}  {:>9}",
            "class", "precision", "recall", "f1", "support"
        );
        for c in &self.per_class {
            let _ = writeln!(
                s,
                "{:<w$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>9}",
                c.class, c.precision, c.recall, c.f1, c.support
            );
        }
        let _ = writeln!(s);
        let w = w.max("true \\ predicted".len());
        let _ = write!(s, "{:<w$}", "true \\ predicted");
        let cw = self
            .confusion
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(1)
            .max(
                self.per_class
                    .iter()
                    .map(|c| c.class.len().min(10))
                    .max()
                    .unwrap_or(1),
            );
        for c in &self.per_class {
            let name: String = c.class.chars().take(cw).collect();
            let _ = write!(s, "  {name:>cw$}");
        }
        let _ = writeln!(s);
        for (c, row) in self.per_class.iter().zip(&self.confusion) {
            let _ = write!(s, "{:<w$}", c.class);
            for v in row {
                let _ = write!(s, "  {v:>cw$}");
            }
            let _ = writeln!(s);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn classes() -> Vec<String> {
        vec!["normal".into(), "DoS".into(), "Probe".into()]
    }

    #[test]
    fn headline_figures() {
        // 4 normal (1 flagged as DoS), 3 DoS (1 missed as normal), 1 Probe predicted DoS.
        let t = [0, 0, 0, 0, 1, 1, 1, 2];
        let p = [0, 0, 0, 1, 1, 1, 0, 1];
        let m = Metrics::compute(&classes(), &t, &p);
        assert_eq!(m.accuracy, 5.0 / 8.0);
        assert_eq!(m.false_alarm_rate, 0.25);
        assert_eq!(m.detection_rate, 3.0 / 4.0);
        assert_eq!(
            m.confusion,
            vec![vec![3, 1, 0], vec![1, 2, 0], vec![0, 1, 0]]
        );
        assert_eq!(m.per_class[1].precision, 0.5);
        assert_eq!(m.per_class[2].f1, 0.0);
        let macro_f1 = (0.75 + 4.0 / 7.0 + 0.0) / 3.0;
        assert!((m.macro_f1 - macro_f1).abs() < 1e-12);
    }

    #[test]
    fn table_rendering() {
        let m = Metrics::compute(&classes(), &[0, 1, 2, 2], &[0, 1, 2, 0]);
        expect![[r#"
            rows              4
            accuracy          0.7500
            macro F1          0.7778
            weighted F1       0.7500
            detection rate    0.6667
            false-alarm rate  0.0000

            class   precision     recall         f1    support
            normal     0.5000     1.0000     0.6667          1
            DoS        1.0000     1.0000     1.0000          1
            Probe      1.0000     0.5000     0.6667          2

            true \ predicted  normal     DoS   Probe
            normal                 1       0       0
            DoS                    0       1       0
            Probe                  1       0       1
        "#]]
        .assert_eq(&m.render_table());
    }

    #[test]
    fn empty_input_is_all_zero() {
        let m = Metrics::compute(&classes(), &[], &[]);
        assert_eq!(m.accuracy, 0.0);
        assert_eq!(m.macro_f1, 0.0);
    }
}
