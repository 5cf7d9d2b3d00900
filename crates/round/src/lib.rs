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
//! - [`replicated`]: the same state as signed entries of a replicated log, so that whichever
//!   node leads the log coordinates and a new leader resumes the round;
//! - [`coordinator`]: the round logic behind the gRPC service ([`fedids_net::server::Rounds`])
//!   and the driver that opens, closes and merges rounds;
//! - [`leader`]: the coordinator role of a ledger node, held while the node leads the log;
//! - [`site`]: a site's side of a round: train on its own flows, upload, score candidates, fetch
//!   and verify the signed global model, and swap it in;
//! - [`metrics`]: the coordinator's Prometheus metrics and `/metrics` endpoint.
//!
//! **Architecture invariant:** wire checks (TLS identity, chunking, signatures) belong to
//! `fedids-net` and merge rules to `fedids-federation`; this crate only sequences them. It knows
//! nothing about the command line, the ledger or threat intelligence.

#![deny(missing_docs)]

pub mod coordinator;
pub mod leader;
pub mod metrics;
pub mod replicated;
pub mod schema;
pub mod site;
pub mod state;
pub mod store;
