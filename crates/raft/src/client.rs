//! A mutual-TLS gRPC client of one Raft node: write, read and status.

use std::collections::BTreeMap;

use tonic::transport::Channel;

use crate::proto::raft_service_client::RaftServiceClient;
use crate::proto::{ReadRequest, StatusRequest, WriteRequest};
use crate::{Error, TlsIdentity, MAX_MESSAGE_BYTES};

/// Metadata key naming the leader's node id in a FAILED_PRECONDITION answer to `Write`.
pub const LEADER_ID_HEADER: &str = "x-raft-leader-id";
/// Metadata key naming the leader's address in a FAILED_PRECONDITION answer to `Write`.
pub const LEADER_ADDR_HEADER: &str = "x-raft-leader-addr";

/// A node's view of the cluster, as answered by `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's id.
    pub id: u64,
    /// The leader the node knows of.
    pub leader: Option<u64>,
    /// The node's current term.
    pub term: u64,
    /// Raft log index of the last applied log entry of any kind.
    pub last_applied: Option<u64>,
    /// Members of the current membership: id -> (address, voter).
    pub membership: BTreeMap<u64, (String, bool)>,
    /// Leader, Follower, Candidate, Learner or Shutdown.
    pub state: String,
    /// Number of application entries applied on the node.
    pub applied_entries: u64,
    /// Opaque bytes from the node's application ([`crate::AppStatus`]); empty when it supplies
    /// none. This crate never interprets them.
    pub app_status: Vec<u8>,
}

/// Host part of an `https://host:port` URL (without IPv6 brackets), the default TLS server name.
pub(crate) fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_string();
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_string()
}

/// A client of one Raft node, presenting `tls`'s certificate.
#[derive(Clone)]
pub struct RaftClient {
    inner: RaftServiceClient<Channel>,
}

impl RaftClient {
    /// A lazily connecting client of the node at `url` (`https://host:port`), expecting a server
    /// certificate for `server_name` (the URL's host when `None`) signed by `tls`'s CA.
    pub fn connect(
        url: &str,
        server_name: Option<&str>,
        tls: &TlsIdentity,
    ) -> Result<RaftClient, Error> {
        let host = url_host(url);
        let name = server_name.unwrap_or(&host);
        let channel =
            fedids_net::tls::client_channel(url, name, &tls.ca_pem, &tls.cert_pem, &tls.key_pem)?;
        Ok(RaftClient::from_channel(channel))
    }

    pub(crate) fn from_channel(channel: Channel) -> RaftClient {
        RaftClient {
            inner: RaftServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        }
    }

    pub(crate) fn grpc(&self) -> RaftServiceClient<Channel> {
        self.inner.clone()
    }

    /// Appends `entry` through this node; it must be the leader, otherwise
    /// [`Error::NotLeader`] names the leader it knows of.
    pub async fn write(&self, entry: Vec<u8>) -> Result<u64, Error> {
        let mut c = self.inner.clone();
        match c.write(WriteRequest { entry }).await {
            Ok(r) => Ok(r.into_inner().position),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                let md = s.metadata();
                let leader = md
                    .get(LEADER_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let addr = md
                    .get(LEADER_ADDR_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                Err(Error::NotLeader { leader, addr })
            }
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                Err(Error::Refused(s.message().to_string()))
            }
            Err(s) => Err(Error::from_status(&s)),
        }
    }

    /// Applied entries from position `from`, at most `limit` (0: the server's default page).
    pub async fn read(&self, from: u64, limit: u32) -> Result<Vec<Vec<u8>>, Error> {
        let mut c = self.inner.clone();
        let r = c
            .read(ReadRequest { from, limit })
            .await
            .map_err(|s| Error::from_status(&s))?;
        Ok(r.into_inner().entries)
    }

    /// The node's view of the cluster.
    pub async fn status(&self) -> Result<NodeStatus, Error> {
        let mut c = self.inner.clone();
        let r = c
            .status(StatusRequest {})
            .await
            .map_err(|s| Error::from_status(&s))?
            .into_inner();
        Ok(NodeStatus {
            id: r.id,
            leader: r.leader,
            term: r.term,
            last_applied: r.last_applied,
            membership: r
                .membership
                .into_iter()
                .map(|m| (m.id, (m.addr, m.voter)))
                .collect(),
            state: r.state,
            applied_entries: r.applied_entries,
            app_status: r.app_status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn hosts() {
        assert_eq!(url_host("https://127.0.0.1:7000"), "127.0.0.1");
        assert_eq!(url_host("https://node-a:7000/x"), "node-a");
        assert_eq!(url_host("https://[::1]:7000"), "::1");
        assert_eq!(url_host("localhost"), "localhost");
    }
}
