//! End-to-end tests of the mutual-TLS gRPC server and client on 127.0.0.1.
//!
//! Each test runs on a current-thread runtime (so the captured log sees every task), binds port 0,
//! bounds its own time and shuts the server down.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedids_net::client::{signed_chunks, SiteClient};
use fedids_net::pki::{init_ca, issue_site, Ca, SiteIdentity, Validity};
use fedids_net::proto::RoundOpen;
use fedids_net::server::{serve, CoordinatorService, FixedRound, ReceivedModel, ServiceConfig};
use fedids_net::{tls, PROTOCOL_VERSION};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Federation {
    ca: Ca,
    site: SiteIdentity,
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    uploads: mpsc::Receiver<ReceivedModel>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

fn round() -> RoundOpen {
    RoundOpen {
        protocol_version: PROTOCOL_VERSION,
        round_id: 3,
        strategy: "top-global:50:wa:sv".to_string(),
        trees_per_site: 50,
        ranking_metric: "wa".to_string(),
        nonce: vec![42; 32],
        ..RoundOpen::default()
    }
}

fn federation() -> Federation {
    let ca = init_ca("test federation").unwrap();
    let site = issue_site(&ca, "site-a", Validity::days_from_now(1)).unwrap();
    Federation { ca, site }
}

async fn start(fed: &Federation, max_model_bytes: u64) -> Running {
    let coordinator = issue_site(&fed.ca, "coordinator", Validity::days_from_now(1)).unwrap();
    let (tx, uploads) = mpsc::channel(4);
    let rounds = FixedRound {
        site_keys: HashMap::from([("site-a".to_string(), fed.site.signing_key.verifying_key())]),
        round: Some(round()),
        uploads: tx,
    };
    let tls = tls::server_config(
        &fed.ca.cert_pem,
        &coordinator.cert_pem,
        &coordinator.key_pem,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        tls,
        CoordinatorService::new(ServiceConfig { max_model_bytes }, Arc::new(rounds)),
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        stop: Some(stop),
        server,
        uploads,
    }
}

fn client(addr: SocketAddr, ca: &Ca, site: &SiteIdentity) -> SiteClient {
    let channel = tls::client_channel(
        &format!("https://{addr}"),
        "coordinator",
        &ca.cert_pem,
        &site.cert_pem,
        &site.key_pem,
    )
    .unwrap();
    SiteClient::new(channel, &site.name)
}

/// Runs `test` with a captured log on the current thread, bounded by [`LIMIT`].
fn run<F: std::future::Future<Output = ()>>(test: impl FnOnce(Log) -> F) -> String {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(LIMIT, test(log.clone()))
            .await
            .expect("test finished in time");
    });
    log.text()
}

#[test]
fn mtls_health_and_join() {
    run(|_| async {
        let fed = federation();
        let server = start(&fed, 1 << 20).await;
        let mut site = client(server.addr, &fed.ca, &fed.site);
        let health = site.health().await.unwrap();
        assert_eq!(health.protocol_version, PROTOCOL_VERSION);
        assert_eq!(health.status, "serving");
        let joined = site.join(&fed.site.signing_key).await.unwrap();
        assert_eq!(joined.site_id, "site-a");
        assert_eq!(joined.current_round, 3);
        server.stop().await;
    });
}

#[test]
fn client_signed_by_another_ca_is_refused() {
    let log = run(|_| async {
        let fed = federation();
        let server = start(&fed, 1 << 20).await;
        let other_ca = init_ca("other federation").unwrap();
        let intruder = issue_site(&other_ca, "site-a", Validity::days_from_now(1)).unwrap();
        // The intruder trusts the real CA (it knows the coordinator), but its own cert is foreign.
        let mut site = client(server.addr, &fed.ca, &intruder);
        assert!(site.health().await.is_err());
        server.stop().await;
    });
    assert!(log.contains("tls handshake refused"), "{log}");
    assert!(
        log.to_lowercase().contains("unknownissuer") || log.contains("unknown issuer"),
        "{log}"
    );
}

#[test]
fn expired_client_cert_is_refused() {
    let log = run(|_| async {
        let fed = federation();
        let server = start(&fed, 1 << 20).await;
        let now = OffsetDateTime::now_utc();
        let past = Validity {
            not_before: now - time::Duration::days(10),
            not_after: now - time::Duration::days(1),
        };
        let expired = issue_site(&fed.ca, "site-a", past).unwrap();
        let mut site = client(server.addr, &fed.ca, &expired);
        assert!(site.health().await.is_err());
        server.stop().await;
    });
    assert!(log.contains("tls handshake refused"), "{log}");
    assert!(log.to_lowercase().contains("expired"), "{log}");
}

#[test]
fn signed_upload_is_accepted() {
    run(|_| async {
        let fed = federation();
        let mut server = start(&fed, 1 << 20).await;
        let mut site = client(server.addr, &fed.ca, &fed.site);
        // Larger than one chunk, so the model crosses the wire in several messages.
        let model: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let reply = site
            .upload_model(&round(), &model, &fed.site.signing_key)
            .await
            .unwrap();
        assert_eq!(reply.n_bytes, model.len() as u64);
        let received = server.uploads.recv().await.unwrap();
        assert_eq!(received.site_id, "site-a");
        assert_eq!(received.round_id, 3);
        assert_eq!(received.model, model);
        server.stop().await;
    });
}

#[test]
fn tampered_upload_is_refused() {
    let log = run(|_| async {
        let fed = federation();
        let server = start(&fed, 1 << 20).await;
        let mut site = client(server.addr, &fed.ca, &fed.site);
        let model = vec![7u8; 1000];
        let mut chunks = signed_chunks(&round(), "site-a", &model, &fed.site.signing_key);
        chunks[0].data[500] ^= 1;
        let status = site.upload_chunks(chunks).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("model hash mismatch"),
            "{}",
            status.message()
        );
        server.stop().await;
    });
    assert!(log.contains("upload refused"), "{log}");
}

#[test]
fn oversized_upload_is_refused() {
    run(|_| async {
        let fed = federation();
        let server = start(&fed, 1000).await;
        let mut site = client(server.addr, &fed.ca, &fed.site);
        let status = site
            .upload_model(&round(), &[1u8; 5000], &fed.site.signing_key)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("model too large"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("limit is 1000 bytes"),
            "{}",
            status.message()
        );
        server.stop().await;
    });
}

#[test]
fn malformed_uploads_get_a_status() {
    run(|_| async {
        let fed = federation();
        let server = start(&fed, 1 << 20).await;
        let mut site = client(server.addr, &fed.ca, &fed.site);
        let key = &fed.site.signing_key;
        let model = vec![9u8; 600_000];
        let check = |chunks, code: Code, needle: &'static str| {
            let mut site = client(server.addr, &fed.ca, &fed.site);
            async move {
                let status = site.upload_chunks(chunks).await.unwrap_err();
                assert_eq!(status.code(), code, "{}", status.message());
                assert!(status.message().contains(needle), "{}", status.message());
            }
        };
        // Chunks out of order.
        let mut chunks = signed_chunks(&round(), "site-a", &model, key);
        chunks.swap(0, 1);
        check(chunks, Code::InvalidArgument, "out of order").await;
        // No final chunk.
        let mut chunks = signed_chunks(&round(), "site-a", &model, key);
        chunks.pop();
        check(chunks, Code::InvalidArgument, "without a final chunk").await;
        // Another round (a replay from round 2).
        let mut old = round();
        old.round_id = 2;
        check(
            signed_chunks(&old, "site-a", &model, key),
            Code::FailedPrecondition,
            "round 3 is open",
        )
        .await;
        // Right round, wrong nonce: the signature does not verify.
        let mut replay = round();
        replay.nonce = vec![1; 32];
        check(
            signed_chunks(&replay, "site-a", &model, key),
            Code::InvalidArgument,
            "bad signature",
        )
        .await;
        // Claiming to be another site.
        check(
            signed_chunks(&round(), "site-b", &model, key),
            Code::PermissionDenied,
            "does not match",
        )
        .await;
        // Another protocol version.
        let mut chunks = signed_chunks(&round(), "site-a", &model, key);
        chunks[0].protocol_version = 99;
        check(
            chunks,
            Code::FailedPrecondition,
            "protocol version mismatch",
        )
        .await;
        // Malformed trailer.
        let mut chunks = signed_chunks(&round(), "site-a", &[1, 2, 3], key);
        chunks[0].trailer.as_mut().unwrap().signature.truncate(5);
        check(chunks, Code::InvalidArgument, "malformed signature").await;
        // The server is still serving.
        assert_eq!(site.health().await.unwrap().status, "serving");
        server.stop().await;
    });
}

#[test]
fn client_without_certificate_is_refused() {
    let log = run(|_| async {
        let fed = federation();
        let server = start(&fed, 1 << 20).await;
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&fed.ca.cert_pem))
            .domain_name("coordinator");
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", server.addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_lazy();
        let mut anonymous = SiteClient::new(channel, "site-a");
        assert!(anonymous.health().await.is_err());
        server.stop().await;
    });
    assert!(log.contains("tls handshake refused"), "{log}");
    assert!(
        log.contains("NoCertificatesPresented") || log.contains("no certificate"),
        "{log}"
    );
}

#[test]
fn other_protocol_version_is_refused() {
    run(|_| async {
        let fed = federation();
        let server = start(&fed, 1 << 20).await;
        let mut site = client(server.addr, &fed.ca, &fed.site);
        let request = fedids_net::proto::HealthRequest {
            protocol_version: PROTOCOL_VERSION + 1,
        };
        let status = site.raw().health(request).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            status.message().contains("protocol version mismatch"),
            "{}",
            status.message()
        );
        server.stop().await;
    });
}
