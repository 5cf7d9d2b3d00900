//! fedids-round: federation rounds over the network.
//!
//! This crate owns what a round *is* when sites are separate processes:
//!
//! - [`schema`]: the sites agree on one feature schema (the union of their proposals), so their
//!   trees are interchangeable;
//! - [`state`]: a round's record and the pure rules that move it through its phases (uploading,
//!   scoring, merged, failed), with `--min-sites` and deadlines;
//! - [`store`]: the coordinator's redb database, written before every acknowledgement, from
//!   which a killed coordinator resumes;
//! - [`coordinator`]: the round logic behind the gRPC service ([`fedids_net::server::Rounds`])
//!   and the driver that opens, closes and merges rounds;
//! - [`site`]: a site's side of a round: train on its own flows, upload, score candidates, fetch
//!   and verify the signed global model, and swap it in;
//! - [`metrics`]: the coordinator's Prometheus metrics and `/metrics` endpoint.
//!
//! **Architecture invariant:** wire checks (TLS identity, chunking, signatures) belong to
//! `fedids-net` and merge rules to `fedids-federation`; this crate only sequences them. It knows
//! nothing about the command line, the ledger or threat intelligence.

#![deny(missing_docs)]

pub mod coordinator;
pub mod metrics;
pub mod schema;
pub mod site;
pub mod state;
pub mod store;
