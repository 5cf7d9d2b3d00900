//! Signed tree heads between ledger nodes: how a node exposes a peer presenting a forked history.
//!
//! Every ledger node started with a [`HeadSigner`] answers the Raft `Status` RPC with its current
//! [`SignedTreeHead`] as the log's opaque application status ([`fedids_raft::AppStatus`]). The
//! bytes are the head's JSON encoding ([`encode_head`]: `{"head":{"size","root","timestamp_ms"},
//! "signer","signature"}`, hashes and signatures as arrays of bytes); only the signed fields
//! matter, so the encoding needs no canonical form.
//!
//! A node polls its peers ([`crate::LedgerNode::check_peers`]) and checks each head against its
//! own ledger with [`check_peer_head`], a pure function: the signer must hold an unrevoked
//! `Node` key registered on our ledger and the signature must verify; a head that covers no more
//! entries than we hold must have our root at its size, otherwise the peer holds another history
//! (a fork). A head that covers more entries than we hold cannot be judged yet: we may simply
//! lag behind, and Raft will bring us the missing entries.

use ed25519_dalek::SigningKey;
use fedids_ledger::head::{HeadError, SignedTreeHead};
use fedids_ledger::{Ledger, Role};

/// The identity a node signs its tree heads with: its registered name and Ed25519 key.
#[derive(Clone)]
pub struct HeadSigner {
    /// The name the node's key is registered under on the ledger (role `Node`).
    pub name: String,
    /// The node's Ed25519 signing key.
    pub key: SigningKey,
}

impl std::fmt::Debug for HeadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A peer's head that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadVerdict {
    /// The head is our ledger's head at its size: the peer holds our history (or a prefix).
    Consistent {
        /// Entries the head covers.
        size: u64,
    },
    /// The head covers more entries than we hold: not judged until we catch up.
    Ahead {
        /// Entries the head covers.
        size: u64,
        /// Entries we hold.
        ours: u64,
    },
}

/// A peer's head that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerHeadError {
    /// The peer answered no head (it runs without a signer).
    #[error("the node reports no signed tree head")]
    NoHead,
    /// The peer's status bytes are not a signed tree head.
    #[error("the node's status is not a signed tree head: {0}")]
    Undecodable(String),
    /// The signer has no key on our ledger.
    #[error("tree head signed by '{0}', which has no registered key")]
    UnknownSigner(String),
    /// The signer's key may not sign tree heads.
    #[error("tree head signed by '{signer}', a {role:?} key, not a node's or an authority's")]
    NotANode {
        /// The signer.
        signer: String,
        /// Its role.
        role: Role,
    },
    /// The signer's key was revoked.
    #[error("tree head signed by '{0}' with a revoked key")]
    Revoked(String),
    /// The signature does not verify under the signer's registered key.
    #[error("tree head of '{0}': bad signature")]
    BadSignature(String),
    /// The peer holds another history than ours.
    #[error("'{signer}' signed a ledger of {size} entries whose root differs from ours")]
    Fork {
        /// The signer.
        signer: String,
        /// The size at which the histories differ.
        size: u64,
    },
}

impl PeerHeadError {
    /// Whether the peer demonstrably holds another history (a validly signed, different head).
    pub fn is_fork(&self) -> bool {
        matches!(self, PeerHeadError::Fork { .. })
    }
}

/// The bytes a node answers as its application status: the head's JSON encoding.
pub fn encode_head(head: &SignedTreeHead) -> Vec<u8> {
    serde_json::to_vec(head).unwrap_or_default()
}

/// A peer's signed tree head from its application status bytes.
pub fn decode_head(bytes: &[u8]) -> Result<SignedTreeHead, PeerHeadError> {
    if bytes.is_empty() {
        return Err(PeerHeadError::NoHead);
    }
    serde_json::from_slice(bytes).map_err(|e| PeerHeadError::Undecodable(e.to_string()))
}

/// Checks a peer's signed tree head against our ledger (pure).
///
/// - A head covering more entries than we hold is [`HeadVerdict::Ahead`]: we cannot judge it
///   yet. That includes a signer we do not know yet, whose registration we may still lack.
/// - Otherwise the signer must hold an unrevoked `Node` key on our ledger, the signature must
///   verify under it, and our root at the head's size must be the head's root, or the peer
///   presents a forked history ([`PeerHeadError::Fork`]).
pub fn check_peer_head(ours: &Ledger, peer: &SignedTreeHead) -> Result<HeadVerdict, PeerHeadError> {
    let signer = &peer.signer;
    let size = peer.head.size;
    let Some(rec) = ours.keys().get(signer) else {
        if size > ours.len() {
            return Ok(HeadVerdict::Ahead {
                size,
                ours: ours.len(),
            });
        }
        return Err(PeerHeadError::UnknownSigner(signer.clone()));
    };
    // A node that also takes the federation coordinator's role is registered as an authority.
    if !matches!(rec.role, Role::Node | Role::Authority) {
        return Err(PeerHeadError::NotANode {
            signer: signer.clone(),
            role: rec.role,
        });
    }
    if rec.revoked_at.is_some() {
        return Err(PeerHeadError::Revoked(signer.clone()));
    }
    match peer.check_against(ours, &rec.key) {
        Ok(()) => Ok(HeadVerdict::Consistent { size }),
        Err(HeadError::Beyond { size, len, .. }) => Ok(HeadVerdict::Ahead { size, ours: len }),
        Err(HeadError::BadSignature(s)) => Err(PeerHeadError::BadSignature(s)),
        Err(HeadError::Fork { signer, size }) => Err(PeerHeadError::Fork { signer, size }),
        // `check_against` reports no other error; should it, the histories cannot be matched.
        Err(HeadError::Inconsistent { signer, .. }) => Err(PeerHeadError::Fork { signer, size }),
    }
}

/// What polling one peer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOutcome {
    /// The peer's head is ours at its size (the peer holds our history, or a prefix of it).
    Consistent(SignedTreeHead),
    /// The peer's head covers more entries than we hold: we lag, and cannot judge it yet.
    Ahead(SignedTreeHead),
    /// The peer signed a head of another history.
    Fork {
        /// The head.
        head: SignedTreeHead,
        /// Why it is a fork.
        reason: PeerHeadError,
    },
    /// The peer answered no head we can check (none, undecodable, unknown or wrong signer, bad
    /// signature): not proof of a fork, but not a head we can trust either.
    Invalid {
        /// The head, when one was decoded.
        head: Option<SignedTreeHead>,
        /// Why it was refused.
        reason: PeerHeadError,
    },
    /// The peer did not answer.
    Unreachable(String),
}

/// A peer and what polling it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReport {
    /// The peer's node id.
    pub id: u64,
    /// The peer's URL.
    pub url: String,
    /// What its head says.
    pub outcome: PeerOutcome,
}

/// The outcome of a peer's application status bytes checked against our ledger (pure).
pub fn judge(ours: &Ledger, app_status: &[u8]) -> PeerOutcome {
    let head = match decode_head(app_status) {
        Ok(head) => head,
        Err(reason) => return PeerOutcome::Invalid { head: None, reason },
    };
    match check_peer_head(ours, &head) {
        Ok(HeadVerdict::Consistent { .. }) => PeerOutcome::Consistent(head),
        Ok(HeadVerdict::Ahead { .. }) => PeerOutcome::Ahead(head),
        Err(reason) if reason.is_fork() => PeerOutcome::Fork { head, reason },
        Err(reason) => PeerOutcome::Invalid {
            head: Some(head),
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedids_ledger::{Body, Entry};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn signed(author: &str, k: &SigningKey, t: u64, body: Body) -> Entry {
        Ledger::unsigned(author, t, body).sign(k)
    }

    /// Genesis by "auth", "node-1" and "node-2" as nodes, "site-a" as a site, then `extra`
    /// publications by site-a.
    fn entries(extra: &[&str]) -> Vec<Entry> {
        let auth = key(1);
        let mut out = vec![signed(
            "auth",
            &auth,
            1,
            Body::Genesis {
                federation: "f".into(),
                authorities: vec![("auth".into(), auth.verifying_key().to_bytes())],
            },
        )];
        for (name, seed, role) in [
            ("node-1", 11, Role::Node),
            ("node-2", 12, Role::Node),
            ("site-a", 21, Role::Site),
        ] {
            out.push(signed(
                "auth",
                &auth,
                2,
                Body::RegisterKey {
                    name: name.into(),
                    key: key(seed).verifying_key().to_bytes(),
                    role,
                },
            ));
        }
        for (i, channel) in extra.iter().enumerate() {
            out.push(signed(
                "site-a",
                &key(21),
                10 + i as u64,
                Body::IntelPublication {
                    bundle_sha256: [i as u8; 32],
                    n_objects: 1,
                    channel: channel.to_string(),
                },
            ));
        }
        out
    }

    fn ledger(entries: &[Entry]) -> Ledger {
        let mut l = Ledger::new();
        for e in entries {
            l.append(e.clone()).unwrap();
        }
        l
    }

    fn head_of(l: &Ledger, name: &str, seed: u8) -> SignedTreeHead {
        SignedTreeHead::sign(l, name, &key(seed), 1234)
    }

    #[test]
    fn an_equal_or_shorter_head_of_our_history_is_consistent() {
        let all = entries(&["a", "b"]);
        let ours = ledger(&all);
        let same = head_of(&ours, "node-2", 12);
        assert_eq!(
            check_peer_head(&ours, &same),
            Ok(HeadVerdict::Consistent { size: 6 })
        );
        let shorter = head_of(&ledger(&all[..5]), "node-2", 12);
        assert_eq!(
            check_peer_head(&ours, &shorter),
            Ok(HeadVerdict::Consistent { size: 5 })
        );
        assert_eq!(
            judge(&ours, &encode_head(&shorter)),
            PeerOutcome::Consistent(shorter)
        );
    }

    #[test]
    fn a_longer_head_cannot_be_judged_yet() {
        let all = entries(&["a", "b"]);
        let ours = ledger(&all[..5]);
        let longer = head_of(&ledger(&all), "node-2", 12);
        assert_eq!(
            check_peer_head(&ours, &longer),
            Ok(HeadVerdict::Ahead { size: 6, ours: 5 })
        );
        // Even by a signer whose registration we do not hold yet.
        let early = ledger(&all[..2]);
        assert_eq!(
            check_peer_head(&early, &longer),
            Ok(HeadVerdict::Ahead { size: 6, ours: 2 })
        );
        assert_eq!(
            judge(&ours, &encode_head(&longer)),
            PeerOutcome::Ahead(longer)
        );
    }

    #[test]
    fn another_history_is_a_fork() {
        let ours = ledger(&entries(&["a", "b", "c"]));
        // The peer lost "a": its entries 4 and 5 are our 5 and 6, at other positions.
        let mut theirs = entries(&["a", "b", "c"]);
        theirs.remove(4);
        let fork = head_of(&ledger(&theirs), "node-2", 12);
        assert_eq!(fork.head.size, 6);
        let err = check_peer_head(&ours, &fork).unwrap_err();
        assert_eq!(
            err,
            PeerHeadError::Fork {
                signer: "node-2".into(),
                size: 6
            }
        );
        assert!(err.to_string().contains("root differs from ours"), "{err}");
        assert!(matches!(
            judge(&ours, &encode_head(&fork)),
            PeerOutcome::Fork { reason, .. } if reason.is_fork()
        ));
        // Same size, other content.
        let other = head_of(&ledger(&entries(&["a", "b", "x"])), "node-2", 12);
        assert!(check_peer_head(&ours, &other).unwrap_err().is_fork());
    }

    #[test]
    fn a_bad_signature_is_refused_not_called_a_fork() {
        let ours = ledger(&entries(&["a"]));
        // node-2's name, node-1's key.
        let forged = head_of(&ours, "node-2", 11);
        assert_eq!(
            check_peer_head(&ours, &forged),
            Err(PeerHeadError::BadSignature("node-2".into()))
        );
        // A valid head whose size was changed afterwards.
        let mut altered = head_of(&ours, "node-2", 12);
        altered.head.size -= 1;
        assert_eq!(
            check_peer_head(&ours, &altered),
            Err(PeerHeadError::BadSignature("node-2".into()))
        );
        assert!(matches!(
            judge(&ours, &encode_head(&altered)),
            PeerOutcome::Invalid {
                reason: PeerHeadError::BadSignature(_),
                ..
            }
        ));
    }

    #[test]
    fn unknown_and_non_node_signers_are_refused() {
        let ours = ledger(&entries(&["a"]));
        let stranger = head_of(&ours, "node-9", 19);
        assert_eq!(
            check_peer_head(&ours, &stranger),
            Err(PeerHeadError::UnknownSigner("node-9".into()))
        );
        let site = head_of(&ours, "site-a", 21);
        assert_eq!(
            check_peer_head(&ours, &site),
            Err(PeerHeadError::NotANode {
                signer: "site-a".into(),
                role: Role::Site
            })
        );
        // Nodes that coordinate are authorities; their heads count.
        let authority = head_of(&ours, "auth", 1);
        assert!(matches!(
            check_peer_head(&ours, &authority),
            Ok(HeadVerdict::Consistent { .. })
        ));
    }

    #[test]
    fn a_revoked_node_key_is_refused() {
        let mut all = entries(&[]);
        all.push(signed(
            "auth",
            &key(1),
            3,
            Body::KeyRevocation {
                name: "node-2".into(),
                key: key(12).verifying_key().to_bytes(),
                reason: "decommissioned".into(),
            },
        ));
        let ours = ledger(&all);
        assert_eq!(
            check_peer_head(&ours, &head_of(&ours, "node-2", 12)),
            Err(PeerHeadError::Revoked("node-2".into()))
        );
    }

    #[test]
    fn status_bytes_round_trip_and_garbage_is_refused() {
        let ours = ledger(&entries(&["a"]));
        let head = head_of(&ours, "node-1", 11);
        assert_eq!(decode_head(&encode_head(&head)), Ok(head));
        assert_eq!(decode_head(b""), Err(PeerHeadError::NoHead));
        assert!(matches!(
            decode_head(b"{\"head\":1}"),
            Err(PeerHeadError::Undecodable(_))
        ));
        assert!(matches!(
            judge(&ours, b""),
            PeerOutcome::Invalid {
                head: None,
                reason: PeerHeadError::NoHead
            }
        ));
    }
}
