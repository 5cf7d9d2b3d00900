//! The gRPC service of one node and its mutual-TLS accept loop.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use redb::Database;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::client::{LEADER_ADDR_HEADER, LEADER_ID_HEADER};
use crate::proto::raft_service_server::{RaftService, RaftServiceServer};
use crate::proto::{
    Member, RaftBytes, ReadReply, ReadRequest, StatusReply, StatusRequest, WriteReply, WriteRequest,
};
use crate::{store, TypeConfig, MAX_MESSAGE_BYTES};

/// Default and largest page of `Read`.
const READ_PAGE: usize = 1024;

/// The node's database while the node runs; emptied at shutdown so the file can be reopened
/// even while old connections drain.
#[derive(Default)]
pub(crate) struct DbSlot(RwLock<Option<Arc<Database>>>);

impl DbSlot {
    pub(crate) fn new(db: Arc<Database>) -> DbSlot {
        DbSlot(RwLock::new(Some(db)))
    }

    pub(crate) fn get(&self) -> Option<Arc<Database>> {
        self.0.read().map(|g| g.clone()).unwrap_or_default()
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut g) = self.0.write() {
            *g = None;
        }
    }
}

pub(crate) struct Service {
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) db: Arc<DbSlot>,
    pub(crate) write_timeout: Duration,
    pub(crate) admission: Option<crate::Admission>,
    pub(crate) app_status: Option<crate::AppStatus>,
}

fn decode<T: serde::de::DeserializeOwned>(req: Request<RaftBytes>) -> Result<T, Status> {
    serde_json::from_slice(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Response<RaftBytes>, Status> {
    serde_json::to_vec(value)
        .map(|data| Response::new(RaftBytes { data }))
        .map_err(|e| Status::internal(format!("unencodable raft message: {e}")))
}

fn db_gone() -> Status {
    Status::unavailable("node is shutting down")
}

#[tonic::async_trait]
impl RaftService for Service {
    async fn append_entries(
        &self,
        request: Request<RaftBytes>,
    ) -> Result<Response<RaftBytes>, Status> {
        let req = decode(request)?;
        encode(&self.raft.append_entries(req).await)
    }

    async fn vote(&self, request: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let req = decode(request)?;
        encode(&self.raft.vote(req).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftBytes>,
    ) -> Result<Response<RaftBytes>, Status> {
        let req = decode(request)?;
        encode(&self.raft.install_snapshot(req).await)
    }

    async fn write(&self, request: Request<WriteRequest>) -> Result<Response<WriteReply>, Status> {
        let entry = request.into_inner().entry;
        if let Some(admit) = &self.admission {
            let m = self.raft.metrics().borrow().clone();
            if m.current_leader == Some(m.id) {
                (admit.0)(&entry).map_err(Status::invalid_argument)?;
            }
        }
        let result = tokio::time::timeout(
            self.write_timeout,
            self.raft.client_write(crate::Payload(entry)),
        )
        .await;
        match result {
            Err(_) => Err(Status::deadline_exceeded(format!(
                "entry not committed within {:?}",
                self.write_timeout
            ))),
            Ok(Ok(r)) => Ok(Response::new(WriteReply { position: r.data })),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                let mut status = Status::failed_precondition(match f.leader_id {
                    Some(id) => format!("not the leader; the leader is node {id}"),
                    None => "not the leader; no leader is known".to_string(),
                });
                if let Some(id) = f.leader_id {
                    if let Ok(v) = MetadataValue::try_from(id.to_string()) {
                        status.metadata_mut().insert(LEADER_ID_HEADER, v);
                    }
                }
                if let Some(node) = f.leader_node {
                    if let Ok(v) = MetadataValue::try_from(node.addr) {
                        status.metadata_mut().insert(LEADER_ADDR_HEADER, v);
                    }
                }
                Err(status)
            }
            Ok(Err(e)) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<ReadReply>, Status> {
        let req = request.into_inner();
        let limit = match req.limit as usize {
            0 => READ_PAGE,
            n => n.min(READ_PAGE),
        };
        let db = self.db.get().ok_or_else(db_gone)?;
        let entries = store::applied_entries(&db, req.from, limit)
            .map_err(|e| Status::internal(e.to_string()))?;
        let applied_entries =
            store::applied_count(&db).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ReadReply {
            entries,
            applied_entries,
        }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let m = self.raft.metrics().borrow().clone();
        let db = self.db.get().ok_or_else(db_gone)?;
        let applied_entries =
            store::applied_count(&db).map_err(|e| Status::internal(e.to_string()))?;
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        Ok(Response::new(StatusReply {
            id: m.id,
            leader: m.current_leader,
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index),
            membership: membership
                .nodes()
                .map(|(id, node)| Member {
                    id: *id,
                    addr: node.addr.clone(),
                    voter: voters.contains(id),
                })
                .collect(),
            state: format!("{:?}", m.state),
            applied_entries,
            app_status: self
                .app_status
                .as_ref()
                .map(|f| (f.0)())
                .unwrap_or_default(),
        }))
    }
}

/// Binds `addr` with SO_REUSEADDR so a restarted node can take its old port back at once.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

/// Serves `service` on `listener` over mutual TLS until `shutdown` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: Service,
    shutdown: oneshot::Receiver<()>,
) -> Result<(), tonic::transport::Error> {
    let incoming = fedids_net::server::TlsIncoming::start(listener, tls, Arc::default());
    let server = RaftServiceServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(server, incoming.into_stream(), async {
            let _ = shutdown.await;
        })
        .await
}
