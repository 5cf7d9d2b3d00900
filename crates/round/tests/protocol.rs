//! The coordinator's round logic over real gRPC with mutual TLS on 127.0.0.1, driven by a
//! hand-held site client so every refusal can be provoked: malformed joins, uploads for the wrong
//! round, replayed signatures, corrupt and foreign models, duplicates, late uploads, malformed
//! scores, and a global model checked against the wrong key. The coordinator must answer each one
//! with a status that says why, and finish the round with the sites that behaved.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fedids_data::{Feature, FeatureKind, FeatureMatrix, FormatSpec, Schema, Task};
use fedids_federation::decode_global;
use fedids_forest::{model, Forest, ForestParams};
use fedids_net::client::{signed_chunks, SiteClient};
use fedids_net::pki::{init_ca, issue_site, Ca, SiteIdentity, Validity};
use fedids_net::proto::{RoundOpen, ScoreReport, TreeScore};
use fedids_net::server::{serve, CoordinatorService, ServiceConfig};
use fedids_net::{tls, PROTOCOL_VERSION};
use fedids_round::coordinator::{Coordinator, CoordinatorConfig};
use fedids_round::metrics::Metrics;
use fedids_round::state::Phase;
use fedids_round::store::Store;
use tonic::Code;

fn schema(names: [&str; 2]) -> Schema {
    Schema {
        format: FormatSpec::NslKdd,
        task: Task::Binary,
        features: names
            .iter()
            .map(|n| Feature {
                name: n.to_string(),
                kind: FeatureKind::Numeric,
            })
            .collect(),
        classes: vec!["normal".into(), "attack".into()],
    }
}

fn forest(schema: Schema) -> Vec<u8> {
    let rows: Vec<f32> = (0..40).flat_map(|i| [i as f32, (i % 7) as f32]).collect();
    let x = FeatureMatrix::from_rows(40, 2, &rows);
    let y: Vec<u32> = (0..40).map(|i| u32::from(i >= 20)).collect();
    let params = ForestParams {
        n_trees: 4,
        seed: 1,
        ..ForestParams::default()
    };
    model::encode(&Forest::fit(&x, &y, schema, &params, &|| ()).unwrap())
}

fn client(addr: std::net::SocketAddr, ca: &Ca, site: &SiteIdentity) -> SiteClient {
    let channel = tls::client_channel(
        &format!("https://{addr}"),
        "coordinator",
        &ca.cert_pem,
        &site.cert_pem,
        &site.key_pem,
    )
    .unwrap();
    SiteClient::new(channel, &site.name)
}

/// Long polls answer UNAVAILABLE while waiting; ask again until there is an answer.
async fn poll<T, F, Fut>(mut f: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    loop {
        match f().await {
            Err(s) if s.code() == Code::Unavailable => {}
            other => return other,
        }
    }
}

fn expect(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, needle: &str) {
    let status = result.expect_err("must be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "'{}' lacks '{needle}'",
        status.message()
    );
}

fn scores(round_id: u64, site: &str, n: u32, accuracy: f64) -> ScoreReport {
    ScoreReport {
        protocol_version: PROTOCOL_VERSION,
        round_id,
        site_id: site.to_string(),
        scores: (0..n)
            .map(|t| TreeScore {
                tree: Some(fedids_net::proto::TreeRef {
                    site_id: site.to_string(),
                    tree_idx: t,
                }),
                accuracy,
                class_recall: vec![0.9, 0.8],
                class_support: vec![10, 10],
            })
            .collect(),
        n_train_rows: 40,
        support_json: Vec::new(),
        ledger_entry: Vec::new(),
    }
}

#[test]
fn every_bad_message_is_refused_with_a_reason_and_the_round_completes() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), scenario())
            .await
            .expect("finished in time");
    });
}

async fn scenario() {
    let ca = init_ca("test federation").unwrap();
    let coord_id = issue_site(&ca, "coordinator", Validity::days_from_now(1)).unwrap();
    let a = issue_site(&ca, "site-a", Validity::days_from_now(1)).unwrap();
    let b = issue_site(&ca, "site-b", Validity::days_from_now(1)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let cfg = CoordinatorConfig {
        name: "coordinator".into(),
        site_keys: HashMap::from([
            ("site-a".to_string(), a.signing_key.verifying_key()),
            ("site-b".to_string(), b.signing_key.verifying_key()),
        ]),
        signing_key: coord_id.signing_key.clone(),
        min_sites: 1,
        strategy: "top-global:3".parse().unwrap(),
        trees_per_site: 4,
        validation_fraction: 0.2,
        rounds: 1,
        join_timeout: Duration::from_secs(30),
        // Every refused upload below must land before this deadline, even on a loaded machine.
        upload_timeout: Duration::from_secs(5),
        scoring_timeout: Duration::from_secs(30),
        fetch_grace: Duration::from_secs(30),
        seed: 0,
    };
    let metrics = Arc::new(Metrics::new());
    let coordinator = Arc::new(
        Coordinator::new(cfg, Store::open(state.path()).unwrap(), metrics.clone()).unwrap(),
    );
    let tls_config =
        tls::server_config(&ca.cert_pem, &coord_id.cert_pem, &coord_id.key_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = CoordinatorService::new(
        ServiceConfig {
            max_model_bytes: 1 << 20,
        },
        coordinator.clone(),
    );
    let server = tokio::spawn(serve(listener, tls_config, service, async {
        let _ = stopped.await;
    }));
    let driver = tokio::spawn(coordinator.clone().run());

    let good = schema(["f0", "f1"]);
    let json = serde_json::to_vec(&good).unwrap();
    let mut ca_client = client(addr, &ca, &a);
    let mut cb = client(addr, &ca, &b);

    // Joins: a schema proposal that is not JSON, one that cannot be merged, then good ones.
    expect(
        ca_client
            .join_with_schema(&a.signing_key, b"{not json".to_vec())
            .await,
        Code::InvalidArgument,
        "schema proposal does not parse",
    );
    expect(
        ca_client.join(&b.signing_key).await,
        Code::PermissionDenied,
        "signing key differs",
    );
    ca_client
        .join_with_schema(&a.signing_key, json.clone())
        .await
        .unwrap();
    cb.join_with_schema(&b.signing_key, json.clone())
        .await
        .unwrap();
    let round: RoundOpen = poll(|| {
        let mut c = ca_client.clone();
        async move { c.await_round(0).await }
    })
    .await
    .unwrap();
    assert_eq!(round.round_id, 1);
    assert_eq!(
        serde_json::from_slice::<Schema>(&round.schema_json).unwrap(),
        good
    );

    // Uploads that must be refused, each with its reason.
    let mut wrong_round = round.clone();
    wrong_round.round_id = 2;
    let model_b = forest(good.clone());
    expect(
        cb.upload_model(&wrong_round, &model_b, &b.signing_key)
            .await,
        Code::FailedPrecondition,
        "round 1 is the current round",
    );
    expect(
        ca_client
            .upload_model(&round, b"FEDIDSMF not really a model", &a.signing_key)
            .await,
        Code::InvalidArgument,
        "not a valid forest model file",
    );
    expect(
        ca_client
            .upload_model(&round, &forest(schema(["x", "y"])), &a.signing_key)
            .await,
        Code::InvalidArgument,
        "not the federation schema",
    );
    let model_a = forest(good.clone());
    let mut replayed = round.clone();
    replayed.nonce = vec![7; 32];
    let old_chunks = signed_chunks(&replayed, "site-a", &model_a, &a.signing_key);
    expect(
        ca_client.upload_chunks(old_chunks).await,
        Code::InvalidArgument,
        "bad signature",
    );
    let forged = signed_chunks(&round, "site-a", &model_a, &b.signing_key);
    expect(
        ca_client.upload_chunks(forged).await,
        Code::InvalidArgument,
        "bad signature",
    );

    // The real upload, then the same one again.
    let reply = ca_client
        .upload_model(&round, &model_a, &a.signing_key)
        .await
        .unwrap();
    assert_eq!(reply.n_bytes, model_a.len() as u64);
    expect(
        ca_client
            .upload_model(&round, &model_a, &a.signing_key)
            .await,
        Code::AlreadyExists,
        "already uploaded a model for round 1",
    );

    // site-b misses the deadline: uploads close with site-a alone (min-sites 1).
    let candidates = poll(|| {
        let mut c = ca_client.clone();
        async move { c.await_candidates(1, 1 << 20).await }
    })
    .await
    .unwrap();
    assert_eq!(candidates.candidates.len(), 4);
    assert!(
        candidates.model.is_empty(),
        "own trees only: no model sent back"
    );
    expect(
        cb.upload_model(&round, &model_b, &b.signing_key).await,
        Code::FailedPrecondition,
        "uploads are closed",
    );
    expect(
        cb.await_candidates(1, 1 << 20).await,
        Code::FailedPrecondition,
        "was not in when uploads closed",
    );

    // Scores: wrong count, impossible values, then right, then again.
    expect(
        ca_client.submit_scores(scores(1, "site-a", 3, 0.9)).await,
        Code::InvalidArgument,
        "3 scores for 4 candidate trees",
    );
    expect(
        ca_client.submit_scores(scores(1, "site-a", 4, 2.0)).await,
        Code::InvalidArgument,
        "must be in [0, 1]",
    );
    expect(
        ca_client
            .submit_scores(scores(1, "site-a", 4, f64::NAN))
            .await,
        Code::InvalidArgument,
        "must be in [0, 1]",
    );
    expect(
        ca_client.submit_scores(scores(1, "site-b", 4, 0.9)).await,
        Code::PermissionDenied,
        "does not match the client certificate",
    );
    ca_client
        .submit_scores(scores(1, "site-a", 4, 0.9))
        .await
        .unwrap();
    expect(
        ca_client.submit_scores(scores(1, "site-a", 4, 0.9)).await,
        Code::AlreadyExists,
        "already sent scores",
    );

    // The global model: refused under the wrong key or from an unknown signer, accepted under
    // the coordinator's.
    let wrong_key: std::collections::HashMap<_, _> =
        [("coordinator".to_string(), a.signing_key.verifying_key())].into();
    let stranger: std::collections::HashMap<_, _> =
        [("other".to_string(), coord_id.signing_key.verifying_key())].into();
    expect(
        poll(|| {
            let mut c = ca_client.clone();
            let round = round.clone();
            let keys = stranger.clone();
            async move { c.fetch_global(&round, 1 << 20, &keys).await }
        })
        .await,
        Code::DataLoss,
        "signed by 'coordinator', which is not a coordinator this site trusts",
    );
    expect(
        poll(|| {
            let mut c = ca_client.clone();
            let round = round.clone();
            let keys = wrong_key.clone();
            async move { c.fetch_global(&round, 1 << 20, &keys).await }
        })
        .await,
        Code::DataLoss,
        "global model refused: bad signature",
    );
    let key: std::collections::HashMap<_, _> = [(
        "coordinator".to_string(),
        coord_id.signing_key.verifying_key(),
    )]
    .into();
    let global = poll(|| {
        let mut c = ca_client.clone();
        let round = round.clone();
        let keys = key.clone();
        async move { c.fetch_global(&round, 1 << 20, &keys).await }
    })
    .await
    .unwrap();
    let model = decode_global(&global.model).unwrap();
    assert_eq!(model.n_trees(), 3);
    // Scores sent again once the round has merged (a retry after a lost acknowledgement) still
    // hear that they were recorded, not that the round moved on.
    expect(
        ca_client.submit_scores(scores(1, "site-a", 4, 0.9)).await,
        Code::AlreadyExists,
        "already sent scores",
    );
    expect(
        cb.fetch_global(&round, 64, &key).await,
        Code::ResourceExhausted,
        "more than 64 bytes",
    );

    // Evaluations of the global model: refused from a site outside the merge, for another model,
    // under another key; accepted once from site-a (which lets the coordinator finish).
    let evaluation = |hash: [u8; 32], key: &ed25519_dalek::SigningKey, site: &str| {
        let e = fedids_ledger::Evaluation {
            round: 1,
            global_sha256: hash,
            n_rows: 10,
            local_accuracy_ppm: 900_000,
            global_accuracy_ppm: 950_000,
            vote_accuracy_ppm: 950_000,
            without: vec![("site-a".to_string(), 500_000)],
        };
        fedids_net::proto::EvaluationReport {
            protocol_version: fedids_net::PROTOCOL_VERSION,
            round_id: 1,
            site_id: site.to_string(),
            ledger_entry: fedids_ledger::Ledger::unsigned(
                site,
                0,
                fedids_ledger::Body::Evaluation(e),
            )
            .sign(key)
            .encode(),
        }
    };
    let good = global.model_sha256;
    expect(
        cb.submit_evaluation(evaluation(good, &b.signing_key, "site-b"))
            .await,
        Code::FailedPrecondition,
        "not among round 1's merged sites",
    );
    expect(
        ca_client
            .submit_evaluation(evaluation([7; 32], &a.signing_key, "site-a"))
            .await,
        Code::InvalidArgument,
        "evaluation refused: it names round 1 and model 0707",
    );
    expect(
        ca_client
            .submit_evaluation(evaluation(good, &b.signing_key, "site-a"))
            .await,
        Code::InvalidArgument,
        "evaluation refused: bad signature",
    );
    ca_client
        .submit_evaluation(evaluation(good, &a.signing_key, "site-a"))
        .await
        .unwrap();
    expect(
        ca_client
            .submit_evaluation(evaluation(good, &a.signing_key, "site-a"))
            .await,
        Code::AlreadyExists,
        "already evaluated round 1",
    );

    let records = driver.await.unwrap().unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert!(r.evaluations.contains_key("site-a"), "{:?}", r.evaluations);
    assert_eq!(r.phase, Phase::Merged);
    assert_eq!(r.survivors, ["site-a"]);
    assert_eq!(r.missing["site-b"], "no upload before the deadline");
    let text = metrics.render();
    assert!(text.contains("fedids_uploads_accepted_total 1"), "{text}");
    // Refused by the round logic: wrong round, corrupt, foreign schema, duplicate, late.
    assert!(text.contains("fedids_uploads_refused_total 5"), "{text}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
