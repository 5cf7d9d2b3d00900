//! The coordinator role of a ledger node: held while the node leads the replicated log.
//!
//! Every node of the ledger cluster serves the federation protocol. [`RoleSwitch`] answers each
//! call with the node's [`Coordinator`] while the node holds the role, and otherwise with
//! `UNAVAILABLE` and a message starting with [`NOT_COORDINATOR`] (naming the leader when it is
//! known), which tells a site to try another node. The binary installs a coordinator when its
//! node becomes leader, built over the replicated round state (so it resumes the round a
//! previous leader left), and removes it when leadership is lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use ed25519_dalek::VerifyingKey;
use fedids_net::proto::{
    EvaluationAck, EvaluationReport, JoinReply, JoinRequest, RoundOpen, ScoreAck, ScoreReport,
    UploadReply,
};
use fedids_net::server::{Candidates, ReceivedModel, Rounds, SignedModel};
use fedids_net::NOT_COORDINATOR;
use tonic::Status;
use tracing::warn;

use crate::coordinator::Coordinator;

/// The federation service of a node that may or may not hold the coordinator role.
#[derive(Default)]
pub struct RoleSwitch {
    current: RwLock<Option<Arc<Coordinator>>>,
    standby: RwLock<String>,
    /// Every join this node accepted, replayed into each coordinator it installs: a site that
    /// joined this node does not join it again when its coordinator is rebuilt.
    joins: Mutex<BTreeMap<String, JoinRequest>>,
}

impl RoleSwitch {
    /// A switch without a coordinator.
    pub fn new() -> RoleSwitch {
        RoleSwitch::default()
    }

    /// Takes the role with `coordinator`, after replaying into it the joins this node accepted
    /// before (a join that no longer fits is dropped, with a warning).
    pub async fn install(&self, coordinator: Arc<Coordinator>) {
        let joins: Vec<(String, JoinRequest)> = self
            .joins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(s, j)| (s.clone(), j.clone()))
            .collect();
        for (site, join) in joins {
            if let Err(e) = coordinator.join(&site, join).await {
                warn!(site = %site, reason = %e.message(), "an earlier join was not replayed");
            }
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(coordinator);
    }

    /// Gives the role up; calls are answered with [`NOT_COORDINATOR`] and `why` (for instance
    /// "the leader is node 2").
    pub fn stand_by(&self, why: &str) {
        *self.standby.write().unwrap_or_else(|p| p.into_inner()) = why.to_string();
        self.current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// The coordinator installed, if any.
    pub fn coordinator(&self) -> Option<Arc<Coordinator>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the node holds the role.
    pub fn active(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn get(&self) -> Result<Arc<Coordinator>, Status> {
        if let Some(c) = &*self.current.read().unwrap_or_else(|p| p.into_inner()) {
            return Ok(c.clone());
        }
        let why = self.standby.read().unwrap_or_else(|p| p.into_inner());
        let why = if why.is_empty() {
            "this node does not lead the ledger cluster"
        } else {
            why.as_str()
        };
        Err(Status::unavailable(format!("{NOT_COORDINATOR}{why}")))
    }
}

#[tonic::async_trait]
impl Rounds for RoleSwitch {
    async fn join(&self, site: &str, request: JoinRequest) -> Result<JoinReply, Status> {
        let reply = self.get()?.join(site, request.clone()).await?;
        self.joins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(site.to_string(), request);
        Ok(reply)
    }

    async fn await_round(&self, site: &str, after_round: u64) -> Result<RoundOpen, Status> {
        self.get()?.await_round(site, after_round).await
    }

    async fn upload_target(
        &self,
        site: &str,
        round_id: u64,
    ) -> Result<(RoundOpen, VerifyingKey), Status> {
        self.get()?.upload_target(site, round_id).await
    }

    async fn accept_upload(&self, upload: ReceivedModel) -> Result<UploadReply, Status> {
        self.get()?.accept_upload(upload).await
    }

    async fn await_candidates(&self, site: &str, round_id: u64) -> Result<Candidates, Status> {
        self.get()?.await_candidates(site, round_id).await
    }

    async fn submit_scores(&self, site: &str, report: ScoreReport) -> Result<ScoreAck, Status> {
        self.get()?.submit_scores(site, report).await
    }

    async fn fetch_global(&self, site: &str, round_id: u64) -> Result<SignedModel, Status> {
        self.get()?.fetch_global(site, round_id).await
    }

    async fn submit_evaluation(
        &self,
        site: &str,
        report: EvaluationReport,
    ) -> Result<EvaluationAck, Status> {
        self.get()?.submit_evaluation(site, report).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_node_without_the_role_sends_sites_elsewhere() {
        let switch = RoleSwitch::new();
        assert!(!switch.active());
        let err = switch.await_round("site-a", 0).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(err.message().starts_with(NOT_COORDINATOR), "{err:?}");
        switch.stand_by("node 2 leads the ledger cluster; the leader is node 1");
        let err = switch.fetch_global("site-a", 1).await.unwrap_err();
        assert!(err.message().starts_with(NOT_COORDINATOR), "{err:?}");
        assert!(err.message().ends_with("the leader is node 1"), "{err:?}");
    }
}
