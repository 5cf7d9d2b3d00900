//! The ledger gate and its audits on a small federation's history: every kind of entry, every
//! refusal, a byte changed anywhere in storage, forked histories, sites' evaluations of global
//! models, and contributions.

use ed25519_dalek::SigningKey;
use fedids_ledger::contrib::contributions;
use fedids_ledger::head::{HeadError, SignedTreeHead};
use fedids_ledger::merkle::leaf_hash;
use fedids_ledger::merkle::verify_inclusion;
use fedids_ledger::{
    Accepted, Aggregation, Body, Contribution, Evaluation, Ledger, Record, Refusal, Role,
};
use proptest::prelude::*;

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

/// The coordinator's genesis, then a registration of each `(name, key seed, role)`.
fn registered(keys: &[(&str, u8, Role)]) -> Ledger {
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
    for &(name, seed, role) in keys {
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
    l
}

/// genesis, 3 registrations, 2 contributions, an aggregation, a publication, a revocation.
fn history() -> Ledger {
    let mut l = registered(&[
        ("site-a", SITE_A, Role::Site),
        ("site-b", SITE_B, Role::Site),
        ("node-1", NODE, Role::Node),
    ]);
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
                },
                Accepted {
                    site: "site-b".into(),
                    n_trees: 25,
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
    for l in [history(), three_sites()] {
        damage_is_named(&l);
    }
}

fn damage_is_named(l: &Ledger) {
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
    assert_eq!(c[1].train_rows, 1000 + 0xb);
    // Nobody evaluated: no gain either way.
    for s in &c {
        assert_eq!(s.evaluations, 0);
        assert_eq!(s.gain_brought_ppm, None);
        assert_eq!(s.gain_received_ppm, None);
    }
}

const SITE_C: u8 = 5;

/// The recorded global model of `round` in [`three_sites`].
fn global(round: u64) -> [u8; 32] {
    [0x60 + round as u8; 32]
}

fn aggregation(round: u64, inputs: &[(&str, u8, u32)]) -> Body {
    Body::Aggregation(Aggregation {
        round,
        strategy: "top-per-site:10:wa:wv".into(),
        seed: 7,
        inputs: inputs
            .iter()
            .map(|&(site, hash, _)| (site.to_string(), [hash; 32]))
            .collect(),
        scores_sha256: [round as u8; 32],
        output_sha256: global(round),
        accepted: inputs
            .iter()
            .map(|&(site, _, n_trees)| Accepted {
                site: site.to_string(),
                n_trees,
            })
            .collect(),
    })
}

/// An evaluation of [`three_sites`]' global model of `round`.
fn evaluation(round: u64, local: u32, global_acc: u32, vote: u32, without: &[(&str, u32)]) -> Body {
    Body::Evaluation(Evaluation {
        round,
        global_sha256: global(round),
        n_rows: 500,
        local_accuracy_ppm: local,
        global_accuracy_ppm: global_acc,
        vote_accuracy_ppm: vote,
        without: without.iter().map(|&(s, a)| (s.to_string(), a)).collect(),
    })
}

/// Three sites and a node; round 1 merges site-a (10 trees kept), site-b (10) and site-c (0),
/// round 2 merges site-a (5) and site-b (15). No evaluation yet.
fn three_sites_rounds() -> Ledger {
    let mut l = registered(&[
        ("site-a", SITE_A, Role::Site),
        ("site-b", SITE_B, Role::Site),
        ("site-c", SITE_C, Role::Site),
        ("node-1", NODE, Role::Node),
    ]);
    add(&mut l, "site-a", SITE_A, contribution(1, 0xa1));
    add(&mut l, "site-b", SITE_B, contribution(1, 0xb1));
    add(&mut l, "site-c", SITE_C, contribution(1, 0xc1));
    add(
        &mut l,
        "coordinator",
        AUTH,
        aggregation(
            1,
            &[
                ("site-a", 0xa1, 10),
                ("site-b", 0xb1, 10),
                ("site-c", 0xc1, 0),
            ],
        ),
    );
    add(&mut l, "site-a", SITE_A, contribution(2, 0xa2));
    add(&mut l, "site-b", SITE_B, contribution(2, 0xb2));
    add(
        &mut l,
        "coordinator",
        AUTH,
        aggregation(2, &[("site-a", 0xa2, 5), ("site-b", 0xb2, 15)]),
    );
    l
}

/// [`three_sites_rounds`] with evaluations by site-a and site-c of both rounds (site-b never
/// evaluates). The contributions they give are worked out by hand in
/// `contributions_weigh_what_each_site_brought_and_received`.
fn three_sites() -> Ledger {
    let mut l = three_sites_rounds();
    let a_1 = evaluation(
        1,
        900_000,
        950_000,
        940_000,
        &[("site-a", 930_000), ("site-b", 920_000)],
    );
    let c_1 = evaluation(
        1,
        800_000,
        900_000,
        900_000,
        &[
            ("site-a", 895_001),
            ("site-b", 901_001),
            ("site-c", 900_000),
        ],
    );
    let a_2 = evaluation(
        2,
        900_000,
        880_000,
        880_000,
        &[("site-a", 870_000), ("site-b", 890_001)],
    );
    let c_2 = evaluation(
        2,
        850_000,
        910_000,
        905_000,
        &[("site-a", 900_000), ("site-b", 905_000)],
    );
    add(&mut l, "site-a", SITE_A, a_1);
    add(&mut l, "site-c", SITE_C, c_1);
    add(&mut l, "site-a", SITE_A, a_2);
    add(&mut l, "site-c", SITE_C, c_2);
    l
}

#[test]
fn a_site_records_its_evaluation_of_a_global_model() {
    let l = three_sites();
    assert_eq!(l.len(), 16);
    let evaluations = l.evaluations();
    assert_eq!(evaluations.len(), 4);
    let e = &evaluations[&(2, "site-c".to_string())];
    assert_eq!(e.global_sha256, global(2));
    assert_eq!(e.without.len(), 2);
    assert!(!evaluations.contains_key(&(1, "site-b".to_string())));
    // A verifier rebuilds the same state from the bytes.
    let bytes: Vec<Vec<u8>> = l.records().iter().map(Record::encode).collect();
    let again = Ledger::from_encoded(&bytes).unwrap();
    assert_eq!(again.evaluations(), l.evaluations());
    assert_eq!(again.merkle().root(), l.merkle().root());
    // `without` may leave sites out, or be empty.
    let mut more = l.clone();
    add(
        &mut more,
        "site-b",
        SITE_B,
        evaluation(1, 1_000_000, 0, 0, &[]),
    );
    assert_eq!(more.evaluations().len(), 5);
}

#[test]
fn every_evaluation_rule_refuses_with_its_reason() {
    let l = three_sites();
    let good = |round| evaluation(round, 900_000, 950_000, 940_000, &[("site-a", 930_000)]);
    // Only sites evaluate.
    assert_eq!(
        refused(&l, "node-1", NODE, good(1)),
        Refusal::NotAllowed {
            author: "node-1".into(),
            role: Role::Node,
            what: "evaluation"
        }
    );
    assert_eq!(
        refused(&l, "coordinator", AUTH, good(1)),
        Refusal::NotAllowed {
            author: "coordinator".into(),
            role: Role::Authority,
            what: "evaluation"
        }
    );
    // The round's aggregation must be recorded, and be the model measured.
    assert_eq!(
        refused(&l, "site-b", SITE_B, good(3)),
        Refusal::Invalid("evaluation of round 3, which has no recorded aggregation".into())
    );
    let Body::Evaluation(mut e) = good(1) else {
        unreachable!()
    };
    e.global_sha256 = global(2);
    assert_eq!(
        refused(&l, "site-b", SITE_B, Body::Evaluation(e)),
        Refusal::Invalid(
            "evaluation of round 1 measured a model that is not the round's recorded global \
             model (the aggregation's output)"
                .into()
        )
    );
    // One evaluation per round and site, even with other numbers.
    assert_eq!(
        refused(&l, "site-a", SITE_A, good(1)),
        Refusal::Invalid("'site-a' already evaluated round 1".into())
    );
    // Accuracies are at most 1,000,000 ppm, on at least one row.
    assert_eq!(
        refused(
            &l,
            "site-b",
            SITE_B,
            evaluation(1, 1_000_001, 950_000, 940_000, &[])
        ),
        Refusal::Invalid(
            "evaluation of round 1: local accuracy of 1000001 ppm is above 1,000,000".into()
        )
    );
    assert_eq!(
        refused(
            &l,
            "site-b",
            SITE_B,
            evaluation(1, 900_000, 2_000_000, 940_000, &[])
        ),
        Refusal::Invalid(
            "evaluation of round 1: global accuracy of 2000000 ppm is above 1,000,000".into()
        )
    );
    assert_eq!(
        refused(
            &l,
            "site-b",
            SITE_B,
            evaluation(1, 900_000, 950_000, u32::MAX, &[])
        ),
        Refusal::Invalid(format!(
            "evaluation of round 1: majority-vote accuracy of {} ppm is above 1,000,000",
            u32::MAX
        ))
    );
    assert_eq!(
        refused(
            &l,
            "site-b",
            SITE_B,
            evaluation(1, 900_000, 950_000, 940_000, &[("site-a", 1_000_001)])
        ),
        Refusal::Invalid(
            "evaluation of round 1: majority-vote accuracy without 'site-a' of 1000001 ppm is \
             above 1,000,000"
                .into()
        )
    );
    let Body::Evaluation(mut e) = good(1) else {
        unreachable!()
    };
    e.n_rows = 0;
    assert_eq!(
        refused(&l, "site-b", SITE_B, Body::Evaluation(e)),
        Refusal::Invalid("evaluation of round 1 measured no validation rows".into())
    );
    // `without` is sorted by site, without repeats, and names only the round's inputs.
    let unsorted = "evaluation of round 1: the accuracies without each site must be sorted by \
                    site, without repeats";
    for without in [
        &[("site-b", 1), ("site-a", 2)][..],
        &[("site-a", 1), ("site-a", 1)][..],
    ] {
        assert_eq!(
            refused(
                &l,
                "site-b",
                SITE_B,
                evaluation(1, 900_000, 950_000, 940_000, without)
            ),
            Refusal::Invalid(unsorted.into())
        );
    }
    assert_eq!(
        refused(
            &l,
            "site-b",
            SITE_B,
            evaluation(2, 900_000, 950_000, 940_000, &[("site-c", 1)])
        ),
        Refusal::Invalid(
            "evaluation of round 2 measures the global model without 'site-c', which is not \
             an input of the round's aggregation"
                .into()
        )
    );
    assert!(matches!(
        refused(
            &l,
            "site-b",
            SITE_B,
            evaluation(1, 900_000, 950_000, 940_000, &[("site-z", 1)])
        ),
        Refusal::Invalid(m) if m.contains("without 'site-z', which is not an input")
    ));
    // The generic rules hold too: a revoked site cannot evaluate any more.
    let mut revoked = l.clone();
    add(
        &mut revoked,
        "coordinator",
        AUTH,
        Body::KeyRevocation {
            name: "site-b".into(),
            key: pubkey(SITE_B),
            reason: "left the federation".into(),
        },
    );
    assert_eq!(
        refused(&revoked, "site-b", SITE_B, good(1)),
        Refusal::Revoked("site-b".into())
    );
    // What the refusals describe is accepted once it is right.
    let mut ok = l.clone();
    add(&mut ok, "site-b", SITE_B, good(1));
}

#[test]
fn contributions_weigh_what_each_site_brought_and_received() {
    let c = contributions(&three_sites());
    let sites: Vec<&str> = c.iter().map(|s| s.site.as_str()).collect();
    assert_eq!(sites, ["site-a", "site-b", "site-c"]);
    let (a, b, site_c) = (&c[0], &c[1], &c[2]);
    assert_eq!(
        (a.models_contributed, a.rounds_accepted, a.trees_accepted),
        (2, 2, 15)
    );
    assert_eq!(
        (b.models_contributed, b.rounds_accepted, b.trees_accepted),
        (2, 2, 25)
    );
    assert_eq!(
        (
            site_c.models_contributed,
            site_c.rounds_accepted,
            site_c.trees_accepted
        ),
        (1, 0, 0)
    );
    assert_eq!(a.train_rows, 1000 + 0xa1 + 1000 + 0xa2);
    assert_eq!(
        (a.evaluations, b.evaluations, site_c.evaluations),
        (2, 0, 2)
    );

    // Brought (by the others' measurements only; a site's measurement of itself is left out):
    // site-a, round 1: site-c measured 900,000 - 895,001 = 4,999      -> 4,999
    //         round 2: site-c measured 905,000 - 900,000 = 5,000      -> 5,000
    assert_eq!(a.gain_brought_ppm, Some(9_999));
    // site-b, round 1: site-a 940,000 - 920,000 = 20,000, site-c 900,000 - 901,001 = -1,001,
    //         mean 18,999 / 2 = 9,499 (toward zero)
    //         round 2: site-a 880,000 - 890,001 = -10,001, site-c 905,000 - 905,000 = 0,
    //         mean -10,001 / 2 = -5,000 (toward zero)
    assert_eq!(b.gain_brought_ppm, Some(4_499));
    // site-c: only site-c measured the vote without its trees.
    assert_eq!(site_c.gain_brought_ppm, None);

    // Received: global - local over the rounds it evaluated.
    // site-a: (950,000 - 900,000) + (880,000 - 900,000)
    assert_eq!(a.gain_received_ppm, Some(30_000));
    // site-b never evaluated.
    assert_eq!(b.gain_received_ppm, None);
    // site-c: (900,000 - 800,000) + (910,000 - 850,000)
    assert_eq!(site_c.gain_received_ppm, Some(160_000));

    // Before any evaluation, no gain either way.
    for s in contributions(&three_sites_rounds()) {
        assert_eq!(
            (s.evaluations, s.gain_brought_ppm, s.gain_received_ppm),
            (0, None, None),
            "{}",
            s.site
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any evaluation of round 1 is accepted exactly when it follows the rules, and what is
    /// accepted shows up in the contributions as documented.
    #[test]
    fn the_evaluation_gate_matches_its_rules(
        local in 0u32..1_100_000,
        global_acc in 0u32..1_100_000,
        vote in 0u32..1_100_000,
        n_rows in 0u64..3,
        right_model in any::<bool>(),
        without in proptest::collection::vec(
            (prop::sample::select(vec!["site-a", "site-b", "site-c", "site-z"]), 0u32..1_100_000),
            0..4,
        ),
    ) {
        let l = three_sites_rounds();
        let e = Evaluation {
            round: 1,
            global_sha256: if right_model { global(1) } else { global(2) },
            n_rows,
            local_accuracy_ppm: local,
            global_accuracy_ppm: global_acc,
            vote_accuracy_ppm: vote,
            without: without.iter().map(|&(s, a)| (s.to_string(), a)).collect(),
        };
        let valid = right_model
            && n_rows >= 1
            && [local, global_acc, vote].iter().all(|&p| p <= 1_000_000)
            && without.iter().all(|&(s, p)| p <= 1_000_000 && s != "site-z")
            && without.windows(2).all(|w| w[0].0 < w[1].0);
        let entry = Ledger::unsigned("site-b", 9, Body::Evaluation(e)).sign(&key(SITE_B));
        let mut after = l.clone();
        let result = after.append(entry);
        prop_assert_eq!(result.is_ok(), valid, "{:?}", result);
        let c = contributions(&after);
        let b = c.iter().find(|s| s.site == "site-b").unwrap();
        if valid {
            prop_assert_eq!(b.gain_received_ppm, Some(i64::from(global_acc) - i64::from(local)));
            for s in &c {
                let measured = without.iter().find(|(w, _)| *w == s.site && *w != "site-b");
                prop_assert_eq!(
                    s.gain_brought_ppm,
                    measured.map(|&(_, a)| i64::from(vote) - i64::from(a))
                );
            }
        } else {
            prop_assert_eq!(b.gain_received_ppm, None);
            prop_assert_eq!(after.len(), l.len());
        }
    }
}
