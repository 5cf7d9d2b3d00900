//! fedids-ledger: the federation's tamper-evident ledger.
//!
//! This crate owns the ledger's data structures and their verification, written as pure
//! functions: no I/O, no clocks, no randomness. Entries are appended to a log covered by a Merkle
//! tree in the style of RFC 9162 (Certificate Transparency), see [`merkle`]; auditors check
//! inclusion and consistency proofs with the free functions there.
//!
//! **Architecture invariant:** this crate knows nothing about networking, openraft, redb or
//! forests. Replication and storage live elsewhere and call into it.

#![deny(missing_docs)]

pub mod merkle;
