//! The coordinator's side of the protocol: a mutual-TLS gRPC server.
//!
//! This session's service answers `Health` and `Join`, and receives model uploads with every
//! check in place (size limit while streaming, chunk order, round and nonce, hash, signature,
//! site identity from the client certificate). Accepted models are handed to the owner through a
//! channel. Round orchestration (`AwaitRound`, `ScoreTrees`, `FetchGlobal`) is not implemented
//! yet and answers `UNIMPLEMENTED`.

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

use crate::proto::federation_server::{Federation, FederationServer};
use crate::proto::{
    AwaitRoundRequest, FetchGlobalRequest, HealthReply, HealthRequest, JoinReply, JoinRequest,
    ModelChunk, RoundOpen, ScoreReply, ScoreRequest, UploadReply,
};
use crate::signing::{hex, verify_model};
use crate::PROTOCOL_VERSION;

/// Largest gRPC message accepted (one chunk plus framing). Uploads larger than one message are
/// streamed in chunks of [`crate::client::CHUNK_BYTES`].
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Time a peer gets to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Coordinator settings that the service checks every request against.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Largest model accepted, in bytes, checked while chunks arrive.
    pub max_model_bytes: u64,
    /// Model verifying key of each known site, by site name (the certificate CN).
    pub site_keys: HashMap<String, VerifyingKey>,
    /// The round currently open, if any.
    pub round: Option<RoundOpen>,
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

/// The coordinator's gRPC service.
pub struct CoordinatorService {
    config: CoordinatorConfig,
    uploads: mpsc::Sender<ReceivedModel>,
}

impl CoordinatorService {
    /// A service that hands accepted uploads to `uploads`.
    pub fn new(config: CoordinatorConfig, uploads: mpsc::Sender<ReceivedModel>) -> Self {
        CoordinatorService { config, uploads }
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
        let msg = request.get_ref();
        check_version(msg.protocol_version)?;
        if !msg.site_id.is_empty() && msg.site_id != site {
            warn!(cert = %site, claimed = %msg.site_id, "join refused: site id does not match certificate");
            return Err(Status::permission_denied(format!(
                "site id '{}' does not match the client certificate ('{site}')",
                msg.site_id
            )));
        }
        let Some(known) = self.config.site_keys.get(&site) else {
            warn!(site = %site, "join refused: no model verifying key registered for this site");
            return Err(Status::permission_denied(format!(
                "site '{site}' is not registered"
            )));
        };
        if !msg.signing_public_key.is_empty() && msg.signing_public_key != known.as_bytes() {
            warn!(site = %site, "join refused: signing key differs from the registered one");
            return Err(Status::permission_denied(format!(
                "site '{site}': signing key differs from the registered one"
            )));
        }
        info!(site = %site, "site joined");
        Ok(Response::new(JoinReply {
            protocol_version: PROTOCOL_VERSION,
            site_id: site,
            current_round: self.config.round.as_ref().map_or(0, |r| r.round_id),
        }))
    }

    async fn await_round(
        &self,
        _request: Request<AwaitRoundRequest>,
    ) -> Result<Response<RoundOpen>, Status> {
        Err(Status::unimplemented("AwaitRound is not implemented yet"))
    }

    async fn upload_model(
        &self,
        request: Request<Streaming<ModelChunk>>,
    ) -> Result<Response<UploadReply>, Status> {
        let site = peer_site(&request)?;
        let result = receive_upload(&self.config, &site, request.into_inner()).await;
        let received = match result {
            Ok(received) => received,
            Err(status) => {
                warn!(site = %site, reason = %status.message(), "upload refused");
                return Err(status);
            }
        };
        info!(
            site = %site,
            round = received.round_id,
            n_bytes = received.model.len(),
            hash = %hex(&received.model_sha256),
            "model accepted"
        );
        let reply = UploadReply {
            round_id: received.round_id,
            n_bytes: received.model.len() as u64,
            model_sha256: received.model_sha256.to_vec(),
        };
        self.uploads
            .send(received)
            .await
            .map_err(|_| Status::unavailable("coordinator is shutting down"))?;
        Ok(Response::new(reply))
    }

    async fn score_trees(
        &self,
        _request: Request<ScoreRequest>,
    ) -> Result<Response<ScoreReply>, Status> {
        Err(Status::unimplemented("ScoreTrees is not implemented yet"))
    }

    type FetchGlobalStream = Pin<Box<dyn Stream<Item = Result<ModelChunk, Status>> + Send>>;

    async fn fetch_global(
        &self,
        _request: Request<FetchGlobalRequest>,
    ) -> Result<Response<Self::FetchGlobalStream>, Status> {
        Err(Status::unimplemented("FetchGlobal is not implemented yet"))
    }
}

/// Reads an upload stream, checking each chunk as it arrives.
async fn receive_upload(
    config: &CoordinatorConfig,
    site: &str,
    mut chunks: Streaming<ModelChunk>,
) -> Result<ReceivedModel, Status> {
    let round = config
        .round
        .as_ref()
        .ok_or_else(|| Status::failed_precondition("no round is open"))?;
    let key = config
        .site_keys
        .get(site)
        .ok_or_else(|| Status::permission_denied(format!("site '{site}' is not registered")))?;
    let mut model = Vec::new();
    let mut next_idx = 0u32;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        check_version(chunk.protocol_version)?;
        if chunk.round_id != round.round_id {
            return Err(Status::failed_precondition(format!(
                "upload for round {} refused: round {} is open",
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
            tokio::spawn(async move {
                if let Some(stream) = handshake(&acceptor, tcp, peer).await {
                    // The server has stopped when the receiver is gone; nothing to do then.
                    let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                }
            });
        }
    });
    let result = tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(service.into_server(), ReceiverStream::new(rx), shutdown)
        .await;
    accept_loop.abort();
    result
}

async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
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
