//! openraft's network: Raft RPCs to peers over mutual-TLS gRPC, openraft types as JSON bytes.

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::{url_host, RaftClient};
use crate::proto::RaftBytes;
use crate::{TlsIdentity, TypeConfig};

/// Makes one [`PeerClient`] per replication target.
#[derive(Clone)]
pub(crate) struct Network {
    pub(crate) tls: TlsIdentity,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let name = self
            .tls
            .server_names
            .get(&target)
            .cloned()
            .unwrap_or_else(|| url_host(&node.addr));
        let client = fedids_net::tls::client_channel(
            &node.addr,
            &name,
            &self.tls.ca_pem,
            &self.tls.cert_pem,
            &self.tls.key_pem,
        )
        .map(RaftClient::from_channel)
        .map_err(|e| e.to_string());
        PeerClient { target, client }
    }
}

/// The connection to one peer (lazy; errors building it are reported on every RPC).
pub(crate) struct PeerClient {
    target: u64,
    client: Result<RaftClient, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: &'static str,
        req: &Req,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &self.client {
            Ok(c) => c.grpc(),
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&Msg(e.clone())))),
        };
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut c = client;
        let req = RaftBytes { data };
        let reply = match rpc {
            "append_entries" => c.append_entries(req).await,
            "vote" => c.vote(req).await,
            _ => c.install_snapshot(req).await,
        };
        let reply = match reply {
            Ok(r) => r.into_inner(),
            Err(s) => {
                let m = Msg(format!("{rpc} to node {}: {s}", self.target));
                return Err(match s.code() {
                    tonic::Code::Unavailable | tonic::Code::Unknown => {
                        RPCError::Unreachable(Unreachable::new(&m))
                    }
                    _ => RPCError::Network(NetworkError::new(&m)),
                });
            }
        };
        let result: Result<Resp, RaftError<u64, E>> = serde_json::from_slice(&reply.data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call("append_entries", &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call("install_snapshot", &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call("vote", &rpc).await
    }
}
