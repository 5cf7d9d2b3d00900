//! The coordinator's side of the protocol: a mutual-TLS gRPC server.
//!
//! [`CoordinatorService`] checks everything that arrives from the network before anything else
//! sees it: protocol version, the site's identity (the client certificate's common name, which
//! message fields must match), upload chunk order, size limits while streaming, model hash and
//! the site's Ed25519 signature. What a round *means* (who may upload when, what to score, which
//! model is global) is decided behind the [`Rounds`] trait, which the coordinator crate
//! implements; this crate knows nothing about forests. Bad input is a gRPC status, never a panic.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::client::{candidate_chunks, model_chunks};
use crate::proto::federation_server::{Federation, FederationServer};
use crate::proto::{
    AwaitRoundRequest, CandidateChunk, CandidatesRequest, EvaluationAck, EvaluationReport,
    FetchGlobalRequest, HealthReply, HealthRequest, JoinReply, JoinRequest, ModelChunk, RoundOpen,
    ScoreAck, ScoreReport, TreeRef, UploadReply,
};
use crate::signing::{hex, verify_model};
use crate::PROTOCOL_VERSION;

/// Largest gRPC message accepted (one chunk plus framing). Uploads larger than one message are
/// streamed in chunks of [`crate::client::CHUNK_BYTES`].
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Time a peer gets to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings the service checks every request against.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Largest model accepted, in bytes, checked while chunks arrive.
    pub max_model_bytes: u64,
}

/// A model upload that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedModel {
    /// Uploading site (authenticated by its certificate).
    pub site_id: String,
    /// Round the model belongs to.
    pub round_id: u64,
    /// Model file bytes.
    pub model: Vec<u8>,
    /// SHA-256 of `model`, verified.
    pub model_sha256: [u8; 32],
    /// The site's Ed25519 signature, verified.
    pub signature: Vec<u8>,
}

/// The trees a site must score in a round, and the model file holding those of other sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    /// The round.
    pub round_id: u64,
    /// The candidates, in the order scores must come back.
    pub candidates: Vec<TreeRef>,
    /// A model file holding every candidate tree of another site, in candidate order (empty when
    /// every candidate is the asking site's own tree).
    pub model: Vec<u8>,
}

/// A model with its hash and its signer's signature of (round id, nonce, hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedModel {
    /// The round.
    pub round_id: u64,
    /// Who signed: the coordinator's certificate name.
    pub signer: String,
    /// Model file bytes.
    pub model: Vec<u8>,
    /// SHA-256 of `model`.
    pub model_sha256: [u8; 32],
    /// Ed25519 signature.
    pub signature: Vec<u8>,
    /// A global model: the merged sites, in the order its tree sources number them.
    pub sources: Vec<String>,
}

/// The round logic behind the wire. Every `site` argument is the authenticated certificate name;
/// every message has passed the version check. Long polls (`await_*`, `fetch_global`) answer
/// `UNAVAILABLE` when nothing happened in time, and the site asks again.
#[tonic::async_trait]
pub trait Rounds: Send + Sync + 'static {
    /// A site joins with its verifying key and schema proposal.
    async fn join(&self, site: &str, request: JoinRequest) -> Result<JoinReply, Status>;
    /// The first round after `after_round` that is open.
    async fn await_round(&self, site: &str, after_round: u64) -> Result<RoundOpen, Status>;
    /// The open round an upload from `site` for `round_id` targets, and the key its signature
    /// must verify under. Refuses late, early and duplicate uploads before any byte is read.
    async fn upload_target(
        &self,
        site: &str,
        round_id: u64,
    ) -> Result<(RoundOpen, VerifyingKey), Status>;
    /// Records a checked upload (durably, before answering).
    async fn accept_upload(&self, upload: ReceivedModel) -> Result<UploadReply, Status>;
    /// The candidates `site` must score once uploads close.
    async fn await_candidates(&self, site: &str, round_id: u64) -> Result<Candidates, Status>;
    /// Records a site's scores and training statistics.
    async fn submit_scores(&self, site: &str, report: ScoreReport) -> Result<ScoreAck, Status>;
    /// The signed global model of `round_id`, once merged.
    async fn fetch_global(&self, site: &str, round_id: u64) -> Result<SignedModel, Status>;
    /// Records a site's signed evaluation of a round's global model.
    async fn submit_evaluation(
        &self,
        site: &str,
        report: EvaluationReport,
    ) -> Result<EvaluationAck, Status>;
}

/// The simplest [`Rounds`]: one fixed open round whose accepted uploads go to a channel; the
/// later phases answer `UNIMPLEMENTED`. For tools and tests of the transport.
pub struct FixedRound {
    /// Model verifying key of each known site, by site name (the certificate CN).
    pub site_keys: HashMap<String, VerifyingKey>,
    /// The round currently open, if any.
    pub round: Option<RoundOpen>,
    /// Where accepted uploads go.
    pub uploads: mpsc::Sender<ReceivedModel>,
}

#[tonic::async_trait]
impl Rounds for FixedRound {
    async fn join(&self, site: &str, request: JoinRequest) -> Result<JoinReply, Status> {
        check_join_key(&self.site_keys, site, &request)?;
        Ok(JoinReply {
            protocol_version: PROTOCOL_VERSION,
            site_id: site.to_string(),
            current_round: self.round.as_ref().map_or(0, |r| r.round_id),
        })
    }

    async fn await_round(&self, _site: &str, after_round: u64) -> Result<RoundOpen, Status> {
        match &self.round {
            Some(r) if r.round_id > after_round => Ok(r.clone()),
            _ => Err(Status::unavailable("no round is open")),
        }
    }

    async fn upload_target(
        &self,
        site: &str,
        round_id: u64,
    ) -> Result<(RoundOpen, VerifyingKey), Status> {
        let round = self
            .round
            .as_ref()
            .ok_or_else(|| Status::failed_precondition("no round is open"))?;
        if round_id != round.round_id {
            return Err(Status::failed_precondition(format!(
                "upload for round {round_id} refused: round {} is open",
                round.round_id
            )));
        }
        let key = self
            .site_keys
            .get(site)
            .ok_or_else(|| Status::permission_denied(format!("site '{site}' is not registered")))?;
        Ok((round.clone(), *key))
    }

    async fn accept_upload(&self, upload: ReceivedModel) -> Result<UploadReply, Status> {
        let reply = UploadReply {
            round_id: upload.round_id,
            n_bytes: upload.model.len() as u64,
            model_sha256: upload.model_sha256.to_vec(),
        };
        self.uploads
            .send(upload)
            .await
            .map_err(|_| Status::unavailable("coordinator is shutting down"))?;
        Ok(reply)
    }

    async fn await_candidates(&self, _site: &str, _round_id: u64) -> Result<Candidates, Status> {
        Err(Status::unimplemented("a fixed round has no scoring phase"))
    }

    async fn submit_scores(&self, _site: &str, _report: ScoreReport) -> Result<ScoreAck, Status> {
        Err(Status::unimplemented("a fixed round has no scoring phase"))
    }

    async fn fetch_global(&self, _site: &str, _round_id: u64) -> Result<SignedModel, Status> {
        Err(Status::unimplemented("a fixed round has no global model"))
    }

    async fn submit_evaluation(
        &self,
        _site: &str,
        _report: EvaluationReport,
    ) -> Result<EvaluationAck, Status> {
        Err(Status::unimplemented("a fixed round has no global model"))
    }
}

/// Checks a join against the registered keys: the site must be known, and the key it announces
/// (if any) must be the registered one.
pub fn check_join_key(
    site_keys: &HashMap<String, VerifyingKey>,
    site: &str,
    request: &JoinRequest,
) -> Result<(), Status> {
    let Some(known) = site_keys.get(site) else {
        warn!(site = %site, "join refused: no model verifying key registered for this site");
        return Err(Status::permission_denied(format!(
            "site '{site}' is not registered"
        )));
    };
    if !request.signing_public_key.is_empty() && request.signing_public_key != known.as_bytes() {
        warn!(site = %site, "join refused: signing key differs from the registered one");
        return Err(Status::permission_denied(format!(
            "site '{site}': signing key differs from the registered one"
        )));
    }
    Ok(())
}

/// The coordinator's gRPC service.
pub struct CoordinatorService {
    config: ServiceConfig,
    rounds: Arc<dyn Rounds>,
}

impl CoordinatorService {
    /// A service that checks requests against `config` and hands them to `rounds`.
    pub fn new(config: ServiceConfig, rounds: Arc<dyn Rounds>) -> Self {
        CoordinatorService { config, rounds }
    }

    /// The tonic server wrapping this service, with message size limits set.
    pub fn into_server(self) -> FederationServer<Self> {
        FederationServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn check_version(version: u32) -> Result<(), Status> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Status::failed_precondition(format!(
            "protocol version mismatch: coordinator speaks {PROTOCOL_VERSION}, peer sent {version}"
        )))
    }
}

/// The site name (certificate common name) of the authenticated peer.
fn peer_site<T>(request: &Request<T>) -> Result<String, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    common_name(leaf)
        .ok_or_else(|| Status::unauthenticated("client certificate has no common name"))
}

/// The first common name of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

fn check_site_field(field: &str, site: &str) -> Result<(), Status> {
    if !field.is_empty() && field != site {
        return Err(Status::permission_denied(format!(
            "site id '{field}' does not match the client certificate ('{site}')"
        )));
    }
    Ok(())
}

type ChunkStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn log_refusal<T>(what: &str, site: &str, result: Result<T, Status>) -> Result<T, Status> {
    if let Err(status) = &result {
        if status.code() != tonic::Code::Unavailable {
            warn!(site = %site, reason = %status.message(), "{what} refused");
        }
    }
    result
}

#[tonic::async_trait]
impl Federation for CoordinatorService {
    async fn health(
        &self,
        request: Request<HealthRequest>,
    ) -> Result<Response<HealthReply>, Status> {
        check_version(request.get_ref().protocol_version)?;
        Ok(Response::new(HealthReply {
            protocol_version: PROTOCOL_VERSION,
            status: "serving".to_string(),
        }))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let site = peer_site(&request)?;
        let msg = request.into_inner();
        check_version(msg.protocol_version)?;
        if let Err(e) = check_site_field(&msg.site_id, &site) {
            warn!(cert = %site, claimed = %msg.site_id, "join refused: site id does not match certificate");
            return Err(e);
        }
        let reply = log_refusal("join", &site, self.rounds.join(&site, msg).await)?;
        info!(site = %site, "site joined");
        Ok(Response::new(reply))
    }

    async fn await_round(
        &self,
        request: Request<AwaitRoundRequest>,
    ) -> Result<Response<RoundOpen>, Status> {
        let site = peer_site(&request)?;
        let msg = request.into_inner();
        check_version(msg.protocol_version)?;
        check_site_field(&msg.site_id, &site)?;
        let open = self.rounds.await_round(&site, msg.after_round).await?;
        Ok(Response::new(open))
    }

    async fn upload_model(
        &self,
        request: Request<Streaming<ModelChunk>>,
    ) -> Result<Response<UploadReply>, Status> {
        let site = peer_site(&request)?;
        let result = receive_upload(
            &self.config,
            self.rounds.as_ref(),
            &site,
            request.into_inner(),
        )
        .await;
        let received = log_refusal("upload", &site, result)?;
        let (round, n_bytes, hash) = (
            received.round_id,
            received.model.len(),
            hex(&received.model_sha256),
        );
        let reply = log_refusal("upload", &site, self.rounds.accept_upload(received).await)?;
        info!(site = %site, round, n_bytes, hash = %hash, "model accepted");
        Ok(Response::new(reply))
    }

    type AwaitCandidatesStream = ChunkStream<CandidateChunk>;

    async fn await_candidates(
        &self,
        request: Request<CandidatesRequest>,
    ) -> Result<Response<Self::AwaitCandidatesStream>, Status> {
        let site = peer_site(&request)?;
        let msg = request.into_inner();
        check_version(msg.protocol_version)?;
        let candidates = log_refusal(
            "candidates",
            &site,
            self.rounds.await_candidates(&site, msg.round_id).await,
        )?;
        let chunks = candidate_chunks(&candidates);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            chunks.into_iter().map(Ok),
        ))))
    }

    async fn submit_scores(
        &self,
        request: Request<ScoreReport>,
    ) -> Result<Response<ScoreAck>, Status> {
        let site = peer_site(&request)?;
        let msg = request.into_inner();
        check_version(msg.protocol_version)?;
        check_site_field(&msg.site_id, &site)?;
        let ack = log_refusal("scores", &site, self.rounds.submit_scores(&site, msg).await)?;
        info!(site = %site, round = ack.round_id, n_scores = ack.n_scores, "scores accepted");
        Ok(Response::new(ack))
    }

    async fn submit_evaluation(
        &self,
        request: Request<EvaluationReport>,
    ) -> Result<Response<EvaluationAck>, Status> {
        let site = peer_site(&request)?;
        let msg = request.into_inner();
        check_version(msg.protocol_version)?;
        check_site_field(&msg.site_id, &site)?;
        let ack = log_refusal(
            "evaluation",
            &site,
            self.rounds.submit_evaluation(&site, msg).await,
        )?;
        info!(site = %site, round = ack.round_id, "evaluation accepted");
        Ok(Response::new(ack))
    }

    type FetchGlobalStream = ChunkStream<ModelChunk>;

    async fn fetch_global(
        &self,
        request: Request<FetchGlobalRequest>,
    ) -> Result<Response<Self::FetchGlobalStream>, Status> {
        let site = peer_site(&request)?;
        let msg = request.into_inner();
        check_version(msg.protocol_version)?;
        let global = log_refusal(
            "global model download",
            &site,
            self.rounds.fetch_global(&site, msg.round_id).await,
        )?;
        let chunks = model_chunks(
            global.round_id,
            &global.signer,
            &global.model,
            global.model_sha256,
            &global.signature,
            &global.sources,
        );
        Ok(Response::new(Box::pin(tokio_stream::iter(
            chunks.into_iter().map(Ok),
        ))))
    }
}

/// Reads an upload stream, checking each chunk as it arrives.
async fn receive_upload(
    config: &ServiceConfig,
    rounds: &dyn Rounds,
    site: &str,
    mut chunks: Streaming<ModelChunk>,
) -> Result<ReceivedModel, Status> {
    let mut model = Vec::new();
    let mut next_idx = 0u32;
    let mut target: Option<(RoundOpen, VerifyingKey)> = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        check_version(chunk.protocol_version)?;
        let (round, key) = match &target {
            Some(t) => t,
            None => target.insert(rounds.upload_target(site, chunk.round_id).await?),
        };
        if chunk.round_id != round.round_id {
            return Err(Status::invalid_argument(format!(
                "chunk for round {} inside an upload for round {}",
                chunk.round_id, round.round_id
            )));
        }
        if chunk.site_id != site {
            return Err(Status::permission_denied(format!(
                "chunk site id '{}' does not match the client certificate ('{site}')",
                chunk.site_id
            )));
        }
        if chunk.chunk_idx != next_idx {
            return Err(Status::invalid_argument(format!(
                "chunk {} out of order: expected chunk {next_idx}",
                chunk.chunk_idx
            )));
        }
        let total = model.len() as u64 + chunk.data.len() as u64;
        if total > config.max_model_bytes {
            return Err(Status::resource_exhausted(format!(
                "model too large: more than {} bytes received, the limit is {} bytes",
                model.len() as u64 + chunk.data.len() as u64,
                config.max_model_bytes
            )));
        }
        model.extend_from_slice(&chunk.data);
        debug!(
            site,
            chunk = next_idx,
            n_bytes = model.len(),
            "chunk received"
        );
        next_idx = next_idx.saturating_add(1);
        if let Some(trailer) = chunk.trailer {
            if let Some(extra) = chunks.next().await {
                extra?;
                return Err(Status::invalid_argument("chunk after the final chunk"));
            }
            let hash = verify_model(
                key,
                round.round_id,
                &round.nonce,
                &model,
                &trailer.model_sha256,
                &trailer.signature,
            )
            .map_err(|e| Status::invalid_argument(format!("model refused: {e}")))?;
            return Ok(ReceivedModel {
                site_id: site.to_string(),
                round_id: round.round_id,
                model,
                model_sha256: hash,
                signature: trailer.signature,
            });
        }
    }
    Err(Status::invalid_argument(
        "upload ended without a final chunk (hash and signature)",
    ))
}

/// Bytes that crossed the coordinator's TCP connections (TLS, HTTP/2 and gRPC framing
/// included), for measuring protocol overhead.
#[derive(Debug, Default)]
pub struct WireBytes {
    read: std::sync::atomic::AtomicU64,
    written: std::sync::atomic::AtomicU64,
}

/// A snapshot of [`WireBytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WireTotals {
    /// Bytes received from peers.
    pub received: u64,
    /// Bytes sent to peers.
    pub sent: u64,
}

impl WireBytes {
    /// The totals so far.
    pub fn snapshot(&self) -> WireTotals {
        use std::sync::atomic::Ordering::Relaxed;
        WireTotals {
            received: self.read.load(Relaxed),
            sent: self.written.load(Relaxed),
        }
    }
}

/// A TCP stream that counts the bytes through it.
pub struct CountedTcp {
    inner: tokio::net::TcpStream,
    wire: Arc<WireBytes>,
}

impl tokio::io::AsyncRead for CountedTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.wire
            .read
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        poll
    }
}

impl tokio::io::AsyncWrite for CountedTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &poll {
            self.wire
                .written
                .fetch_add(*n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for CountedTcp {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Serves `service` on `listener` over mutual TLS until `shutdown` completes.
///
/// Each connection's TLS handshake runs in its own task, so a slow or hostile peer cannot stall
/// others. A refused handshake (unknown CA, expired certificate, no certificate) is logged with
/// the peer address and rustls' reason.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: CoordinatorService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_counted(listener, tls, service, Arc::default(), shutdown).await
}

/// [`serve`], counting the bytes of every connection in `wire`.
pub async fn serve_counted(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: CoordinatorService,
    wire: Arc<WireBytes>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = TlsIncoming::start(listener, tls, wire);
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(service.into_server(), incoming.into_stream(), shutdown)
        .await
}

/// A TLS stream over a counted TCP connection, as [`TlsIncoming`] yields them.
pub type TlsConnection = tokio_rustls::server::TlsStream<CountedTcp>;

/// Mutual-TLS connections accepted on a listener, for any tonic server: each TCP connection's
/// handshake runs in its own task (bounded by a timeout, so a slow or hostile peer stalls no
/// one), refusals are logged with the peer and rustls' reason, and the bytes are counted in a
/// [`WireBytes`]. The accept loop stops, freeing the port, when the stream is dropped.
pub struct TlsIncoming {
    rx: mpsc::Receiver<Result<TlsConnection, std::io::Error>>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl TlsIncoming {
    /// Starts accepting on `listener`.
    pub fn start(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        wire: Arc<WireBytes>,
    ) -> TlsIncoming {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let (tx, rx) = mpsc::channel(16);
        let accept_loop = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let tcp = CountedTcp {
                    inner: tcp,
                    wire: wire.clone(),
                };
                tokio::spawn(async move {
                    if let Some(stream) = handshake(&acceptor, tcp, peer).await {
                        // The server has stopped when the receiver is gone; nothing to do then.
                        let _ = tx.send(Ok(stream)).await;
                    }
                });
            }
        });
        TlsIncoming { rx, accept_loop }
    }

    /// The connections, for `serve_with_incoming*`.
    pub fn into_stream(
        self,
    ) -> impl Stream<Item = Result<TlsConnection, std::io::Error>> + Send + 'static {
        let TlsIncoming { rx, accept_loop } = self;
        let guard = AbortOnDrop(accept_loop);
        ReceiverStream::new(rx).map(move |c| {
            let _keep = &guard;
            c
        })
    }
}

/// Aborts the accept loop however the server ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: CountedTcp,
    peer: SocketAddr,
) -> Option<TlsConnection> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let site = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| common_name(c));
            debug!(%peer, site = site.as_deref().unwrap_or("?"), "tls handshake accepted");
            Some(stream)
        }
        Ok(Err(e)) => {
            warn!(%peer, reason = %e, "tls handshake refused");
            None
        }
        Err(_) => {
            warn!(%peer, "tls handshake refused: timed out");
            None
        }
    }
}
