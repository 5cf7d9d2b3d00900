//! Hand-written SVG: horizontal bar charts with error bars, and heat maps. No fonts or rendering
//! libraries are needed: text is left to the viewer, and the output is deterministic.

use std::fmt::Write;

use fedids_federation::PartitionSummary;

use crate::Summary;

const W: f64 = 760.0;
const LABEL_W: f64 = 250.0;
const ROW_H: f64 = 22.0;
const PALETTE: [&str; 6] = [
    "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(s: &mut String, h: f64, title: &str) {
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
}

/// Grouped horizontal bars: one group per row label, one bar per series; values in `[0, 1]`
/// with an optional error (std) drawn as a whisker.
fn bars(
    title: &str,
    labels: &[String],
    series: &[(&str, Vec<(f64, f64)>)],
    axis_min: f64,
) -> String {
    let n_series = series.len().max(1);
    let group_h = ROW_H * n_series as f64 + 8.0;
    let top = 50.0;
    let h = top + group_h * labels.len() as f64 + 50.0;
    let plot_w = W - LABEL_W - 60.0; // room for the value printed after a full-width bar
    let x_of = |v: f64| LABEL_W + plot_w * ((v - axis_min) / (1.0 - axis_min)).clamp(0.0, 1.0);
    let mut s = String::new();
    header(&mut s, h, title);
    // Legend.
    for (i, (name, _)) in series.iter().enumerate() {
        let x = LABEL_W + i as f64 * 140.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="30" width="12" height="12" fill="{}"/>"#,
            PALETTE[i % PALETTE.len()]
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="41">{}</text>"#,
            x + 16.0,
            escape(name)
        );
    }
    // Grid in tenths of the axis.
    for k in 0..=10 {
        let v = axis_min + (1.0 - axis_min) * k as f64 / 10.0;
        let x = x_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            h - 40.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{:.0}%</text>"#,
            h - 25.0,
            100.0 * v
        );
    }
    for (g, label) in labels.iter().enumerate() {
        let y0 = top + g as f64 * group_h;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y0 + group_h / 2.0 + 4.0,
            escape(label)
        );
        for (i, (_, values)) in series.iter().enumerate() {
            let Some(&(v, err)) = values.get(g) else {
                continue;
            };
            let y = y0 + 4.0 + i as f64 * ROW_H;
            let x1 = x_of(v);
            let _ = writeln!(
                s,
                r#"<rect x="{LABEL_W}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                (x1 - LABEL_W).max(0.0),
                ROW_H - 4.0,
                PALETTE[i % PALETTE.len()]
            );
            if err > 0.0 {
                let (a, b) = (x_of(v - err), x_of(v + err));
                let ym = y + (ROW_H - 4.0) / 2.0;
                let _ = writeln!(
                    s,
                    r#"<line x1="{a:.1}" y1="{ym:.1}" x2="{b:.1}" y2="{ym:.1}" stroke="black"/>"#
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{:.2}</text>"#,
                x1 + 4.0,
                y + ROW_H - 9.0,
                100.0 * v
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Accuracy and macro-F1 of every model (mean over seeds, whisker = std).
pub fn svg_scores(summary: &Summary, title: &str) -> String {
    let labels: Vec<String> = summary.models.iter().map(|m| m.name.clone()).collect();
    let lowest = summary
        .models
        .iter()
        .flat_map(|m| [m.accuracy.mean, m.macro_f1.mean])
        .fold(1.0f64, f64::min);
    let axis_min = ((lowest * 10.0).floor() / 10.0 - 0.1).clamp(0.0, 0.9);
    bars(
        title,
        &labels,
        &[
            (
                "accuracy",
                summary
                    .models
                    .iter()
                    .map(|m| (m.accuracy.mean, m.accuracy.std))
                    .collect(),
            ),
            (
                "macro-F1",
                summary
                    .models
                    .iter()
                    .map(|m| (m.macro_f1.mean, m.macro_f1.std))
                    .collect(),
            ),
        ],
        axis_min,
    )
}

/// Per-class F1 of the centralized baseline and the best federated strategy.
pub fn svg_class_f1(summary: &Summary, title: &str) -> String {
    let mut series = Vec::new();
    let picks = ["centralized".to_string()]
        .into_iter()
        .chain(summary.best_by_accuracy.clone());
    for name in picks {
        if let Some(m) = summary.models.iter().find(|m| m.name == name) {
            series.push((
                m.name.clone(),
                m.class_f1
                    .iter()
                    .map(|v| (v.mean, v.std))
                    .collect::<Vec<_>>(),
            ));
        }
    }
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    bars(title, &summary.classes, &series, 0.0)
}

/// Rows per site (rows) and class (columns), as a heat map with the counts written in.
pub fn svg_partition(p: &PartitionSummary, title: &str) -> String {
    let cell_w = ((W - 160.0) / p.classes.len().max(1) as f64).min(110.0);
    let cell_h = 26.0;
    let top = 60.0;
    let h = top + cell_h * p.sites.len() as f64 + 20.0;
    let max = p
        .sites
        .iter()
        .flat_map(|s| s.class_counts.iter())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut s = String::new();
    header(&mut s, h, title);
    for (c, class) in p.classes.iter().enumerate() {
        let x = 150.0 + c as f64 * cell_w + cell_w / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            top - 8.0,
            escape(class)
        );
    }
    for (r, site) in p.sites.iter().enumerate() {
        let y = top + r as f64 * cell_h;
        let _ = writeln!(
            s,
            r#"<text x="142" y="{:.1}" text-anchor="end">{}</text>"#,
            y + 17.0,
            escape(&site.name)
        );
        for (c, &n) in site.class_counts.iter().enumerate() {
            // Log scale: partitions span several orders of magnitude.
            let t = if n == 0 {
                0.0
            } else {
                (1.0 + n as f64).ln() / (1.0 + max).ln()
            };
            let shade = (255.0 - 200.0 * t).round() as u8;
            let x = 150.0 + c as f64 * cell_w;
            let _ = writeln!(
                s,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{cell_w:.1}" height="{cell_h}" fill="rgb({shade},{},255)" stroke="#fff"/>"##,
                shade
            );
            let color = if t > 0.6 { "white" } else { "black" };
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{color}">{n}</text>"#,
                x + cell_w / 2.0,
                y + 17.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
