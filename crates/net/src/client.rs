//! The site's side of the protocol, and the chunking both sides share.
//!
//! Streams from the coordinator are checked like uploads are on the other side: chunk order,
//! a size limit while receiving, the hash, and for the global model the coordinator's signature.

use std::collections::HashMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::proto::federation_client::FederationClient;
use crate::proto::{
    AwaitRoundRequest, CandidateChunk, CandidatesRequest, ChunkTrailer, EvaluationAck,
    EvaluationReport, FetchGlobalRequest, HealthReply, HealthRequest, JoinReply, JoinRequest,
    ModelChunk, RoundOpen, ScoreAck, ScoreReport, UploadReply,
};
use crate::server::{Candidates, SignedModel};
use crate::signing::{model_hash, sign_model, verify_global};
use crate::PROTOCOL_VERSION;

/// Bytes of model data per upload chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// A site's connection to the coordinator (cheap to clone: clones share the connection).
#[derive(Clone)]
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

    /// Calls `Join`, announcing the site's model verifying key (and no schema proposal).
    pub async fn join(&mut self, key: &SigningKey) -> Result<JoinReply, Status> {
        self.join_with_schema(key, Vec::new()).await
    }

    /// Calls `Join` with the site's schema proposal (JSON).
    pub async fn join_with_schema(
        &mut self,
        key: &SigningKey,
        schema_json: Vec<u8>,
    ) -> Result<JoinReply, Status> {
        let request = JoinRequest {
            protocol_version: PROTOCOL_VERSION,
            site_id: self.site_id.clone(),
            signing_public_key: key.verifying_key().to_bytes().to_vec(),
            schema_json,
        };
        Ok(self.inner.join(request).await?.into_inner())
    }

    /// Calls `AwaitRound` once (a long poll: `UNAVAILABLE` means ask again).
    pub async fn await_round(&mut self, after_round: u64) -> Result<RoundOpen, Status> {
        let request = AwaitRoundRequest {
            protocol_version: PROTOCOL_VERSION,
            site_id: self.site_id.clone(),
            after_round,
        };
        Ok(self.inner.await_round(request).await?.into_inner())
    }

    /// Calls `AwaitCandidates` once and checks the stream: chunk order, at most `max_bytes` of
    /// model data, and its hash.
    pub async fn await_candidates(
        &mut self,
        round_id: u64,
        max_bytes: u64,
    ) -> Result<Candidates, Status> {
        let request = CandidatesRequest {
            protocol_version: PROTOCOL_VERSION,
            round_id,
        };
        let stream = self.inner.await_candidates(request).await?.into_inner();
        receive_candidates(stream, round_id, max_bytes).await
    }

    /// Calls `SubmitScores`.
    pub async fn submit_scores(&mut self, report: ScoreReport) -> Result<ScoreAck, Status> {
        Ok(self.inner.submit_scores(report).await?.into_inner())
    }

    /// Calls `SubmitEvaluation`.
    pub async fn submit_evaluation(
        &mut self,
        report: EvaluationReport,
    ) -> Result<EvaluationAck, Status> {
        Ok(self.inner.submit_evaluation(report).await?.into_inner())
    }

    /// Downloads the global model of `round` and verifies it: chunk order, at most `max_bytes`,
    /// its hash, and the signature over (round id, nonce, hash) of the coordinator that signed
    /// it, which must be one of `coordinator_keys` (by name).
    pub async fn fetch_global(
        &mut self,
        round: &RoundOpen,
        max_bytes: u64,
        coordinator_keys: &HashMap<String, VerifyingKey>,
    ) -> Result<SignedModel, Status> {
        let request = FetchGlobalRequest {
            protocol_version: PROTOCOL_VERSION,
            round_id: round.round_id,
        };
        let stream = self.inner.fetch_global(request).await?.into_inner();
        receive_global(stream, round, max_bytes, coordinator_keys).await
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
    model_chunks(round.round_id, site_id, model, hash, &signature, &[])
}

/// Splits a signed model into chunks of [`CHUNK_BYTES`]; the last one carries hash and signature.
pub fn model_chunks(
    round_id: u64,
    signer: &str,
    model: &[u8],
    hash: [u8; 32],
    signature: &[u8],
    sources: &[String],
) -> Vec<ModelChunk> {
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
            round_id,
            site_id: signer.to_string(),
            chunk_idx: u32::try_from(idx).unwrap_or(u32::MAX),
            data: data.to_vec(),
            trailer: (idx + 1 == n_pieces).then(|| ChunkTrailer {
                model_sha256: hash.to_vec(),
                signature: signature.to_vec(),
                sources: sources.to_vec(),
            }),
        })
        .collect()
}

/// Splits a candidate set into chunks: the first names the candidates, the data is the candidate
/// model file, the last carries its hash.
pub fn candidate_chunks(c: &Candidates) -> Vec<CandidateChunk> {
    let mut pieces: Vec<&[u8]> = c.model.chunks(CHUNK_BYTES).collect();
    if pieces.is_empty() {
        pieces.push(&[]);
    }
    let n_pieces = pieces.len();
    let hash = model_hash(&c.model);
    pieces
        .into_iter()
        .enumerate()
        .map(|(idx, data)| CandidateChunk {
            protocol_version: PROTOCOL_VERSION,
            round_id: c.round_id,
            chunk_idx: u32::try_from(idx).unwrap_or(u32::MAX),
            candidates: if idx == 0 {
                c.candidates.clone()
            } else {
                Vec::new()
            },
            data: data.to_vec(),
            data_sha256: if idx + 1 == n_pieces {
                hash.to_vec()
            } else {
                Vec::new()
            },
            last: idx + 1 == n_pieces,
        })
        .collect()
}

/// Checks one chunk of a stream from the coordinator: protocol version, round, and order
/// (`next` is the expected index, advanced on success). `what` names the stream in errors.
fn check_chunk(
    what: &str,
    version: u32,
    round_id: u64,
    chunk_idx: u32,
    expected_round: u64,
    next: &mut u32,
) -> Result<(), Status> {
    if version != PROTOCOL_VERSION || round_id != expected_round {
        return Err(Status::invalid_argument(format!(
            "{what} chunk for protocol {version} round {round_id}, expected protocol {PROTOCOL_VERSION} round {expected_round}"
        )));
    }
    if chunk_idx != *next {
        return Err(Status::invalid_argument(format!(
            "{what} chunk {chunk_idx} out of order: expected {next}"
        )));
    }
    *next = next.saturating_add(1);
    Ok(())
}

fn grow(buf: &mut Vec<u8>, data: &[u8], max_bytes: u64) -> Result<(), Status> {
    let total = buf.len() as u64 + data.len() as u64;
    if total > max_bytes {
        return Err(Status::resource_exhausted(format!(
            "coordinator sent more than {max_bytes} bytes ({total} so far)"
        )));
    }
    buf.extend_from_slice(data);
    Ok(())
}

async fn receive_candidates(
    mut stream: Streaming<CandidateChunk>,
    round_id: u64,
    max_bytes: u64,
) -> Result<Candidates, Status> {
    let mut out = Candidates {
        round_id,
        candidates: Vec::new(),
        model: Vec::new(),
    };
    let mut next = 0u32;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        check_chunk(
            "candidate",
            chunk.protocol_version,
            chunk.round_id,
            chunk.chunk_idx,
            round_id,
            &mut next,
        )?;
        out.candidates.extend(chunk.candidates);
        grow(&mut out.model, &chunk.data, max_bytes)?;
        if chunk.last {
            if stream.next().await.is_some() {
                return Err(Status::invalid_argument(
                    "candidate chunk after the last one",
                ));
            }
            if chunk.data_sha256 != model_hash(&out.model) {
                return Err(Status::data_loss("candidate model hash mismatch"));
            }
            return Ok(out);
        }
    }
    Err(Status::data_loss(
        "candidate stream ended before its last chunk",
    ))
}

async fn receive_global(
    mut stream: Streaming<ModelChunk>,
    round: &RoundOpen,
    max_bytes: u64,
    keys: &HashMap<String, VerifyingKey>,
) -> Result<SignedModel, Status> {
    let mut model = Vec::new();
    let mut next = 0u32;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        check_chunk(
            "global model",
            chunk.protocol_version,
            chunk.round_id,
            chunk.chunk_idx,
            round.round_id,
            &mut next,
        )?;
        grow(&mut model, &chunk.data, max_bytes)?;
        if let Some(trailer) = chunk.trailer {
            if stream.next().await.is_some() {
                return Err(Status::invalid_argument(
                    "global model chunk after the final chunk",
                ));
            }
            let key = keys.get(&chunk.site_id).ok_or_else(|| {
                Status::data_loss(format!(
                    "global model refused: signed by '{}', which is not a coordinator this site trusts",
                    chunk.site_id
                ))
            })?;
            let hash = verify_global(
                key,
                round.round_id,
                &round.nonce,
                &model,
                &trailer.model_sha256,
                &trailer.signature,
            )
            .map_err(|e| Status::data_loss(format!("global model refused: {e}")))?;
            return Ok(SignedModel {
                round_id: round.round_id,
                signer: chunk.site_id,
                model,
                model_sha256: hash,
                signature: trailer.signature,
                sources: trailer.sources,
            });
        }
    }
    Err(Status::data_loss(
        "global model stream ended without its final chunk",
    ))
}
