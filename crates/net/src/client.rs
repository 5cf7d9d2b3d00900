//! The site's side of the protocol.

use ed25519_dalek::SigningKey;
use tonic::transport::Channel;
use tonic::Status;

use crate::proto::federation_client::FederationClient;
use crate::proto::{
    ChunkTrailer, HealthReply, HealthRequest, JoinReply, JoinRequest, ModelChunk, RoundOpen,
    UploadReply,
};
use crate::signing::{model_hash, sign_model};
use crate::PROTOCOL_VERSION;

/// Bytes of model data per upload chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// A site's connection to the coordinator.
pub struct SiteClient {
    inner: FederationClient<Channel>,
    site_id: String,
}

impl SiteClient {
    /// A client for `site_id` over `channel` (see [`crate::tls::client_channel`]).
    pub fn new(channel: Channel, site_id: &str) -> Self {
        SiteClient {
            inner: FederationClient::new(channel)
                .max_decoding_message_size(crate::server::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(crate::server::MAX_MESSAGE_BYTES),
            site_id: site_id.to_string(),
        }
    }

    /// The generated client, for RPCs without a helper.
    pub fn raw(&mut self) -> &mut FederationClient<Channel> {
        &mut self.inner
    }

    /// Calls `Health`.
    pub async fn health(&mut self) -> Result<HealthReply, Status> {
        let request = HealthRequest {
            protocol_version: PROTOCOL_VERSION,
        };
        Ok(self.inner.health(request).await?.into_inner())
    }

    /// Calls `Join`, announcing the site's model verifying key.
    pub async fn join(&mut self, key: &SigningKey) -> Result<JoinReply, Status> {
        let request = JoinRequest {
            protocol_version: PROTOCOL_VERSION,
            site_id: self.site_id.clone(),
            signing_public_key: key.verifying_key().to_bytes().to_vec(),
        };
        Ok(self.inner.join(request).await?.into_inner())
    }

    /// Signs and uploads `model` for `round`, in chunks.
    pub async fn upload_model(
        &mut self,
        round: &RoundOpen,
        model: &[u8],
        key: &SigningKey,
    ) -> Result<UploadReply, Status> {
        let chunks = signed_chunks(round, &self.site_id, model, key);
        self.upload_chunks(chunks).await
    }

    /// Uploads prepared chunks as they are.
    pub async fn upload_chunks(&mut self, chunks: Vec<ModelChunk>) -> Result<UploadReply, Status> {
        let stream = tokio_stream::iter(chunks);
        Ok(self.inner.upload_model(stream).await?.into_inner())
    }
}

/// Splits `model` into upload chunks for `round`; the last one carries the hash and the
/// signature over (round id, nonce, hash).
pub fn signed_chunks(
    round: &RoundOpen,
    site_id: &str,
    model: &[u8],
    key: &SigningKey,
) -> Vec<ModelChunk> {
    let hash = model_hash(model);
    let signature = sign_model(key, round.round_id, &round.nonce, &hash);
    let mut pieces: Vec<&[u8]> = model.chunks(CHUNK_BYTES).collect();
    if pieces.is_empty() {
        pieces.push(&[]);
    }
    let n_pieces = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(idx, data)| ModelChunk {
            protocol_version: PROTOCOL_VERSION,
            round_id: round.round_id,
            site_id: site_id.to_string(),
            chunk_idx: u32::try_from(idx).unwrap_or(u32::MAX),
            data: data.to_vec(),
            trailer: (idx + 1 == n_pieces).then(|| ChunkTrailer {
                model_sha256: hash.to_vec(),
                signature: signature.to_vec(),
            }),
        })
        .collect()
}
