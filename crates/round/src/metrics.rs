//! The coordinator's Prometheus metrics and the `/metrics` endpoint that serves them.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type PhaseLabels = Vec<(String, String)>;

/// Counters and gauges the coordinator updates as rounds run.
pub struct Metrics {
    registry: Registry,
    /// Rounds merged.
    pub rounds_completed: Counter,
    /// Rounds that failed (too few sites).
    pub rounds_failed: Counter,
    /// The round currently open or last closed.
    pub current_round: Gauge,
    /// Sites that have joined.
    pub sites_joined: Gauge,
    /// Uploads accepted.
    pub uploads_accepted: Counter,
    /// Uploads the round logic refused (late, duplicate, undecodable, wrong schema).
    pub uploads_refused: Counter,
    /// Model bytes received in accepted uploads.
    pub bytes_received: Counter,
    /// Global model bytes served.
    pub bytes_sent: Counter,
    /// Seconds spent per phase (`upload`, `scoring`, `merge`) and per round (`round`).
    pub phase_seconds: Family<PhaseLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered under the `fedids` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fedids");
        let m = Metrics {
            rounds_completed: Counter::default(),
            rounds_failed: Counter::default(),
            current_round: Gauge::default(),
            sites_joined: Gauge::default(),
            uploads_accepted: Counter::default(),
            uploads_refused: Counter::default(),
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            phase_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 16))
            }),
            registry: Registry::default(),
        };
        registry.register(
            "rounds_completed",
            "Rounds merged",
            m.rounds_completed.clone(),
        );
        registry.register(
            "rounds_failed",
            "Rounds that failed",
            m.rounds_failed.clone(),
        );
        registry.register(
            "current_round",
            "Round open or last closed",
            m.current_round.clone(),
        );
        registry.register(
            "sites_joined",
            "Sites that have joined",
            m.sites_joined.clone(),
        );
        registry.register(
            "uploads_accepted",
            "Model uploads accepted",
            m.uploads_accepted.clone(),
        );
        registry.register(
            "uploads_refused",
            "Model uploads refused by the round logic",
            m.uploads_refused.clone(),
        );
        registry.register(
            "received_bytes",
            "Model bytes received in accepted uploads",
            m.bytes_received.clone(),
        );
        registry.register(
            "sent_bytes",
            "Global model bytes served",
            m.bytes_sent.clone(),
        );
        registry.register(
            "phase_duration_seconds",
            "Seconds per round phase",
            m.phase_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records `seconds` spent in `phase`.
    pub fn observe_phase(&self, phase: &str, seconds: f64) {
        self.phase_seconds
            .get_or_create(&vec![("phase".to_string(), phase.to_string())])
            .observe(seconds);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` on `addr` until the process ends. Returns the bound address.
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::{http::header, routing::get, Router};
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric() {
        let m = Metrics::new();
        m.rounds_completed.inc();
        m.bytes_received.inc_by(1234);
        m.observe_phase("merge", 0.5);
        let text = m.render();
        assert!(text.contains("fedids_rounds_completed_total 1"), "{text}");
        assert!(text.contains("fedids_received_bytes_total 1234"), "{text}");
        assert!(
            text.contains("fedids_phase_duration_seconds_count{phase=\"merge\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
