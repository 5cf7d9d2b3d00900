//! fedids-net: the federation's wire protocol and its trust plumbing.
//!
//! This crate owns:
//!
//! - the gRPC protocol (`proto/fedids.proto`, package `fedids.v1`, generated into [`proto`] by
//!   tonic and prost; protox compiles the schema, so no system `protoc` is needed), with a
//!   protocol version carried in every request ([`PROTOCOL_VERSION`]);
//! - the federation PKI ([`pki`]): a CA, site certificates (rcgen) and each site's Ed25519 model
//!   signing key, stored in a PKI directory;
//! - mutual TLS over rustls ([`tls`]): the coordinator accepts only client certificates signed by
//!   the federation CA and still valid, and logs why it refused the others;
//! - model signatures ([`signing`]) over (round id, nonce, model hash);
//! - a coordinator service ([`server`]) and site client ([`client`]) that check every network
//!   message before use: upload size limits, chunk order, hashes and signatures. Bad input is a
//!   gRPC status, never a panic.
//!
//! **Architecture invariant:** this crate knows nothing about openraft, redb or STIX, and nothing
//! about how forests are trained or merged. Models cross it as opaque bytes (a model file), so it
//! does not depend on `fedids-forest`.

#![deny(missing_docs)]

pub mod client;
pub mod pki;
pub mod server;
pub mod signing;
pub mod tls;

/// Types and service stubs generated from `proto/fedids.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("fedids.v1");
}

/// Version of the wire protocol spoken by this build. Peers with another version are refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Prefix of the `UNAVAILABLE` message a coordinator answers when a long poll times out: ask the
/// same coordinator again.
pub const STILL_WAITING: &str = "still waiting: ";

/// Prefix of the `UNAVAILABLE` message of a node that does not hold the coordinator role (it is
/// not the ledger cluster's leader): try another node.
pub const NOT_COORDINATOR: &str = "not the coordinator: ";
