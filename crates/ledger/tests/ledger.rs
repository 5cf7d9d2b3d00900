//! The ledger gate and its audits on a small federation's history: every kind of entry, every
//! refusal, a byte changed anywhere in storage, forked histories, and contributions.

use ed25519_dalek::SigningKey;
use fedids_ledger::contrib::contributions;
use fedids_ledger::head::{HeadError, SignedTreeHead};
use fedids_ledger::merkle::leaf_hash;
use fedids_ledger::merkle::verify_inclusion;
use fedids_ledger::{Accepted, Aggregation, Body, Contribution, Ledger, Record, Refusal, Role};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn pubkey(seed: u8) -> [u8; 32] {
    key(seed).verifying_key().to_bytes()
}

const AUTH: u8 = 1;
const SITE_A: u8 = 2;
const SITE_B: u8 = 3;
const NODE: u8 = 4;

fn add(l: &mut Ledger, author: &str, seed: u8, body: Body) -> u64 {
    let e = Ledger::unsigned(author, 1_000 + l.len(), body).sign(&key(seed));
    l.append(e).unwrap_or_else(|e| panic!("{e}"))
}

fn contribution(round: u64, hash: u8) -> Body {
    Body::ModelContribution(Contribution {
        round,
        model_sha256: [hash; 32],
        n_trees: 50,
        n_train_rows: 1000 + u64::from(hash),
        validation_accuracy_ppm: 990_000,
    })
}

/// genesis, 3 registrations, 2 contributions, an aggregation, a publication, a revocation.
fn history() -> Ledger {
    let mut l = Ledger::new();
    add(
        &mut l,
        "coordinator",
        AUTH,
        Body::Genesis {
            federation: "plants".into(),
            authorities: vec![("coordinator".into(), pubkey(AUTH))],
        },
    );
    for (name, seed, role) in [
        ("site-a", SITE_A, Role::Site),
        ("site-b", SITE_B, Role::Site),
        ("node-1", NODE, Role::Node),
    ] {
        add(
            &mut l,
            "coordinator",
            AUTH,
            Body::RegisterKey {
                name: name.into(),
                key: pubkey(seed),
                role,
            },
        );
    }
    add(&mut l, "site-a", SITE_A, contribution(1, 0xa));
    add(&mut l, "site-b", SITE_B, contribution(1, 0xb));
    add(
        &mut l,
        "coordinator",
        AUTH,
        Body::Aggregation(Aggregation {
            round: 1,
            strategy: "top-per-site:25:wa:wv".into(),
            seed: 42,
            inputs: vec![("site-a".into(), [0xa; 32]), ("site-b".into(), [0xb; 32])],
            scores_sha256: [5; 32],
            output_sha256: [6; 32],
            accepted: vec![
                Accepted {
                    site: "site-a".into(),
                    n_trees: 25,
                    validation_gain_ppm: Some(4_000),
                },
                Accepted {
                    site: "site-b".into(),
                    n_trees: 25,
                    validation_gain_ppm: Some(-1_000),
                },
            ],
        }),
    );
    add(
        &mut l,
        "site-a",
        SITE_A,
        Body::IntelPublication {
            bundle_sha256: [7; 32],
            n_objects: 12,
            channel: "collection-1".into(),
        },
    );
    add(
        &mut l,
        "coordinator",
        AUTH,
        Body::KeyRevocation {
            name: "site-b".into(),
            key: pubkey(SITE_B),
            reason: "laptop stolen".into(),
        },
    );
    l
}

fn refused(l: &Ledger, author: &str, seed: u8, body: Body) -> Refusal {
    let e = Ledger::unsigned(author, 5_000, body).sign(&key(seed));
    let err = l.check(&e).expect_err("must be refused");
    assert_eq!(err.index, l.len());
    err.refusal
}

#[test]
fn a_valid_history_round_trips_through_its_bytes() {
    let l = history();
    assert_eq!(l.len(), 9);
    let bytes: Vec<Vec<u8>> = l.records().iter().map(Record::encode).collect();
    let again = Ledger::from_encoded(&bytes).unwrap();
    assert_eq!(again.merkle().root(), l.merkle().root());
    assert_eq!(again.federation(), "plants");
    assert!(again.keys()["site-b"].revoked_at.is_some());
    // Every entry is provably in the tree.
    for (i, b) in bytes.iter().enumerate() {
        let proof = l.merkle().inclusion_proof(i as u64, l.len()).unwrap();
        verify_inclusion(&leaf_hash(b), i as u64, l.len(), &proof, &l.merkle().root()).unwrap();
    }
}

#[test]
fn one_changed_byte_anywhere_is_named_by_entry() {
    let l = history();
    let bytes: Vec<Vec<u8>> = l.records().iter().map(Record::encode).collect();
    for i in 0..bytes.len() {
        for pos in [8, 9, bytes[i].len() / 2, bytes[i].len() - 1] {
            let mut damaged = bytes.clone();
            damaged[i][pos] ^= 0x20;
            let err = Ledger::from_encoded(&damaged).expect_err("damage must be found");
            assert_eq!(err.index, i as u64, "byte {pos} of entry {i}: {err}");
        }
    }
}

#[test]
fn every_rule_refuses_with_its_reason() {
    let l = history();
    let publication = |n: u32| Body::IntelPublication {
        bundle_sha256: [8; 32],
        n_objects: n,
        channel: "c".into(),
    };
    assert_eq!(
        refused(&l, "mallory", 9, publication(1)),
        Refusal::UnknownAuthor("mallory".into())
    );
    assert_eq!(
        refused(&l, "site-a", SITE_B, publication(1)),
        Refusal::BadSignature("site-a".into())
    );
    assert_eq!(
        refused(&l, "site-b", SITE_B, publication(1)),
        Refusal::Revoked("site-b".into())
    );
    assert!(matches!(
        refused(&l, "node-1", NODE, publication(1)),
        Refusal::NotAllowed {
            what: "intel publication",
            ..
        }
    ));
    assert!(matches!(
        refused(
            &l,
            "site-a",
            SITE_A,
            Body::RegisterKey {
                name: "site-c".into(),
                key: pubkey(9),
                role: Role::Authority
            }
        ),
        Refusal::NotAllowed {
            role: Role::Site,
            ..
        }
    ));
    assert_eq!(
        refused(&l, "site-a", SITE_A, contribution(1, 0xc)),
        Refusal::Invalid("'site-a' already contributed a model to round 1".into())
    );
    assert_eq!(
        refused(
            &l,
            "site-a",
            SITE_A,
            Body::IntelPublication {
                bundle_sha256: [7; 32],
                n_objects: 12,
                channel: "collection-1".into(),
            }
        ),
        Refusal::Replay("site-a".into())
    );
    let bad_input = Body::Aggregation(Aggregation {
        round: 2,
        strategy: "all".into(),
        seed: 0,
        inputs: vec![("site-a".into(), [0xa; 32])],
        scores_sha256: [0; 32],
        output_sha256: [0; 32],
        accepted: vec![],
    });
    assert_eq!(
        refused(&l, "coordinator", AUTH, bad_input),
        Refusal::Invalid("'site-a' contributed no model to round 2".into())
    );
    assert!(matches!(
        refused(
            &l,
            "coordinator",
            AUTH,
            Body::Genesis {
                federation: "again".into(),
                authorities: vec![("coordinator".into(), pubkey(AUTH))]
            }
        ),
        Refusal::Invalid(m) if m.contains("genesis")
    ));
    // Out of place and off the chain.
    let entry = Ledger::unsigned("site-a", 1, publication(2)).sign(&key(SITE_A));
    let mut r = l.next_record(entry.clone());
    r.index += 1;
    let err = l.clone().append_record(r).unwrap_err();
    assert_eq!(
        err.refusal,
        Refusal::Position {
            expected: 9,
            found: 10
        }
    );
    let mut r = l.next_record(entry);
    r.prev_hash[0] ^= 1;
    assert_eq!(
        l.clone().append_record(r).unwrap_err().refusal,
        Refusal::Chain
    );
    // An empty ledger accepts only a genesis, signed by an authority it names.
    let empty = Ledger::new();
    assert!(matches!(
        refused(&empty, "site-a", SITE_A, publication(1)),
        Refusal::Invalid(m) if m.contains("first entry must be the genesis")
    ));
    assert_eq!(
        refused(
            &empty,
            "mallory",
            9,
            Body::Genesis {
                federation: "f".into(),
                authorities: vec![("coordinator".into(), pubkey(AUTH))]
            }
        ),
        Refusal::UnknownAuthor("mallory".into())
    );
}

#[test]
fn tree_heads_expose_forks() {
    let l = history();
    let head = SignedTreeHead::sign(&l, "node-1", &key(NODE), 99);
    head.check_against(&l, &pubkey(NODE)).unwrap();
    assert_eq!(
        head.check_against(&l, &pubkey(SITE_A)),
        Err(HeadError::BadSignature("node-1".into()))
    );
    // A node that rewrote entry 7 (the publication) signs a head of another history.
    let mut forked = Ledger::new();
    for r in &l.records()[..7] {
        forked.append_record(r.clone()).unwrap();
    }
    add(
        &mut forked,
        "site-a",
        SITE_A,
        Body::IntelPublication {
            bundle_sha256: [0xee; 32],
            n_objects: 1,
            channel: "other".into(),
        },
    );
    let theirs = SignedTreeHead::sign(&forked, "node-1", &key(NODE), 100);
    assert_eq!(
        theirs.check_against(&l, &pubkey(NODE)),
        Err(HeadError::Fork {
            signer: "node-1".into(),
            size: 8
        })
    );
    // An honest longer ledger proves it extends ours; the forked one, even with a proof its own
    // tree produces, cannot.
    let mut ours = Ledger::new();
    for r in &l.records()[..8] {
        ours.append_record(r.clone()).unwrap();
    }
    let proof = l.merkle().consistency_proof(8, 9).unwrap();
    head.check_extends(&ours, &pubkey(NODE), &proof).unwrap();
    let mut grown = forked.clone();
    add(
        &mut grown,
        "site-a",
        SITE_A,
        Body::IntelPublication {
            bundle_sha256: [0xef; 32],
            n_objects: 1,
            channel: "other".into(),
        },
    );
    let grown_head = SignedTreeHead::sign(&grown, "node-1", &key(NODE), 101);
    let their_proof = grown.merkle().consistency_proof(8, 9).unwrap();
    assert!(matches!(
        grown_head.check_extends(&ours, &pubkey(NODE), &their_proof),
        Err(HeadError::Inconsistent {
            our_size: 8,
            their_size: 9,
            ..
        })
    ));
}

#[test]
fn contributions_come_from_the_ledger_alone() {
    let c = contributions(&history());
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].site, "site-a");
    assert_eq!(c[0].models_contributed, 1);
    assert_eq!(c[0].trees_accepted, 25);
    assert_eq!(c[0].validation_gain_ppm, Some(4_000));
    assert_eq!(c[1].train_rows, 1000 + 0xb);
    assert_eq!(c[1].validation_gain_ppm, Some(-1_000));
}
