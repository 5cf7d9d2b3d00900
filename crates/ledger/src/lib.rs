//! fedids-ledger: the federation's tamper-evident ledger.
//!
//! This crate owns the ledger's data structures and their verification, written as pure
//! functions: no I/O, no clocks, no randomness.
//!
//! - [`entry`]: what is recorded (genesis, key registrations and revocations, model
//!   contributions, aggregations, intelligence publications, sites' evaluations of global
//!   models), signed by its author with Ed25519, with deterministic, versioned bytes;
//! - [`ledger`]: the append gate (position, hash chain, registered and unrevoked author, signature,
//!   role, consistency with what is recorded, replays) and the state it builds; the same gate
//!   validates stored ledgers and names the first bad entry;
//! - [`merkle`]: the Merkle tree over the entries' bytes in the style of RFC 9162 (Certificate
//!   Transparency), with inclusion and consistency proofs and their verification;
//! - [`head`]: signed tree heads and fork detection between nodes;
//! - [`contrib`]: each site's contribution (models, accepted trees, and the validation gains its
//!   trees brought to the others and the global models brought to it), derived from the ledger
//!   alone.
//!
//! **Architecture invariant:** this crate knows nothing about networking, openraft, redb or
//! forests. Replication and storage live elsewhere and call into it.

#![deny(missing_docs)]

pub mod contrib;
pub mod entry;
pub mod head;
pub mod ledger;
pub mod merkle;

pub use entry::{
    Accepted, Aggregation, Body, Contribution, Entry, Evaluation, Record, Role, UnsignedEntry,
};
pub use ledger::{Ledger, LedgerError, Refusal};

/// Prefix of the replicated log's entries that carry federation round state (written by the
/// coordinator on the Raft leader) rather than ledger entries. Ledger readers skip them; they
/// are not part of the hash chain, and what they say is checked by their own signatures.
pub const ROUND_STATE_MAGIC: &[u8; 8] = b"FEDIDSRS";

/// A ledger export: every record of a ledger, in order, as one file.
///
/// Layout: `FEDIDSLX`, then for each record its length (u32 little endian) and its bytes.
pub mod export {
    /// Magic prefix of an export file.
    pub const MAGIC: &[u8; 8] = b"FEDIDSLX";

    /// Writes records into an export.
    pub fn encode<B: AsRef<[u8]>>(records: &[B]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for r in records {
            let r = r.as_ref();
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(r);
        }
        out
    }

    /// Splits an export into record bytes; an error says where it is cut short.
    pub fn decode(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut rest = bytes
            .strip_prefix(MAGIC)
            .ok_or("not a ledger export (expected the magic FEDIDSLX)")?;
        let mut records = Vec::new();
        while !rest.is_empty() {
            let n = records.len();
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or(format!("record {n}: truncated length"))?;
            let len = u32::from_le_bytes(*len) as usize;
            if len > crate::entry::MAX_ENTRY_BYTES || len > tail.len() {
                return Err(format!(
                    "record {n}: length {len} runs past the end of the export ({} bytes left)",
                    tail.len()
                ));
            }
            records.push(tail[..len].to_vec());
            rest = &tail[len..];
        }
        Ok(records)
    }
}
