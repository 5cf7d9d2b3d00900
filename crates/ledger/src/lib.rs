//! fedids-ledger: the federation's tamper-evident ledger.
//!
//! This crate owns the ledger's data structures and their verification, written as pure
//! functions: no I/O, no clocks, no randomness.
//!
//! - [`entry`]: what is recorded (genesis, key registrations and revocations, model
//!   contributions, aggregations, intelligence publications), signed by its author with Ed25519,
//!   with deterministic, versioned bytes;
//! - [`ledger`]: the append gate (position, hash chain, registered and unrevoked author, signature,
//!   role, replays) and the state it builds; the same gate validates stored ledgers and names the
//!   first bad entry;
//! - [`merkle`]: the Merkle tree over the entries' bytes in the style of RFC 9162 (Certificate
//!   Transparency), with inclusion and consistency proofs and their verification;
//! - [`head`]: signed tree heads and fork detection between nodes;
//! - [`contrib`]: each site's contribution, derived from the ledger alone.
//!
//! **Architecture invariant:** this crate knows nothing about networking, openraft, redb or
//! forests. Replication and storage live elsewhere and call into it.

#![deny(missing_docs)]

pub mod contrib;
pub mod entry;
pub mod head;
pub mod ledger;
pub mod merkle;

pub use entry::{Accepted, Aggregation, Body, Contribution, Entry, Record, Role, UnsignedEntry};
pub use ledger::{Ledger, LedgerError, Refusal};
