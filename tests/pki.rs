//! `fedids pki init` and `fedids pki issue` with the real binary: files, permissions, refusals,
//! and a certificate issued by the CLI working over mutual TLS.

mod util;

use std::collections::HashMap;
use std::time::Duration;

use fedids_net::pki::PkiDir;
use fedids_net::server::{serve, CoordinatorService, FixedRound, ServiceConfig};
use fedids_net::{client::SiteClient, tls};
use util::{s, Dir};

#[test]
fn pki_init_and_issue_write_the_layout() {
    let dir = Dir::new();
    let root = dir.path("pki");
    let out = dir.ok(&["pki", "init", "--dir", s(&root), "--name", "test-fed"]);
    assert!(out.contains("created federation CA 'test-fed'"), "{out}");
    let out = dir.ok(&["pki", "issue", "site-a", "--dir", s(&root), "--days", "30"]);
    assert!(out.contains("issued 'site-a' for 30 day(s)"), "{out}");
    for file in [
        "ca.pem",
        "ca.key",
        "sites/site-a.pem",
        "sites/site-a.key",
        "sites/site-a.sign.key",
        "sites/site-a.sign.pub",
    ] {
        assert!(root.join(file).is_file(), "{file} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["ca.key", "sites/site-a.key", "sites/site-a.sign.key"] {
            let mode = std::fs::metadata(root.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    let pki = PkiDir::new(&root);
    pki.read_site("site-a").unwrap();
    pki.read_site_verifying_key("site-a").unwrap();
}

#[test]
fn pki_refuses_to_overwrite_without_force() {
    let dir = Dir::new();
    let root = dir.path("pki");
    dir.ok(&["pki", "init", "--dir", s(&root)]);
    let ca = std::fs::read_to_string(root.join("ca.pem")).unwrap();
    let err = dir.fails(&["pki", "init", "--dir", s(&root)]);
    assert!(
        err.contains("ca.pem: already exists (use --force to overwrite)"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(root.join("ca.pem")).unwrap(), ca);

    dir.ok(&["pki", "issue", "site-a", "--dir", s(&root)]);
    let cert = std::fs::read_to_string(root.join("sites/site-a.pem")).unwrap();
    let err = dir.fails(&["pki", "issue", "site-a", "--dir", s(&root)]);
    assert!(err.contains("site-a.pem: already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(root.join("sites/site-a.pem")).unwrap(),
        cert
    );

    dir.ok(&["pki", "issue", "site-a", "--dir", s(&root), "--force"]);
    assert_ne!(
        std::fs::read_to_string(root.join("sites/site-a.pem")).unwrap(),
        cert
    );
    dir.ok(&["pki", "init", "--dir", s(&root), "--force"]);
    assert_ne!(std::fs::read_to_string(root.join("ca.pem")).unwrap(), ca);
}

#[test]
fn pki_issue_errors_are_clear() {
    let dir = Dir::new();
    let root = dir.path("empty");
    let err = dir.fails(&["pki", "issue", "site-a", "--dir", s(&root)]);
    assert!(
        err.contains("no federation CA here (run `fedids pki init` first)"),
        "{err}"
    );
    dir.ok(&["pki", "init", "--dir", s(&root)]);
    let err = dir.fails(&["pki", "issue", "../evil", "--dir", s(&root)]);
    assert!(err.contains("invalid site name '../evil'"), "{err}");
    let err = dir.fails(&["pki", "issue", "site-a", "--dir", s(&root), "--days", "0"]);
    assert!(err.contains("--days must be at least 1"), "{err}");
}

#[test]
fn pki_issued_by_the_cli_works_over_mutual_tls() {
    let dir = Dir::new();
    let root = dir.path("pki");
    dir.ok(&["pki", "init", "--dir", s(&root)]);
    dir.ok(&["pki", "issue", "coordinator", "--dir", s(&root)]);
    dir.ok(&["pki", "issue", "site-a", "--dir", s(&root)]);
    let pki = PkiDir::new(&root);
    let ca = pki.read_ca().unwrap();
    let coordinator = pki.read_site("coordinator").unwrap();
    let site = pki.read_site("site-a").unwrap();
    let site_keys = HashMap::from([(
        "site-a".to_string(),
        pki.read_site_verifying_key("site-a").unwrap(),
    )]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let tls_config =
                tls::server_config(&ca.cert_pem, &coordinator.cert_pem, &coordinator.key_pem)
                    .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (uploads, _received) = tokio::sync::mpsc::channel(1);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(
                listener,
                tls_config,
                CoordinatorService::new(
                    ServiceConfig {
                        max_model_bytes: 1 << 20,
                    },
                    std::sync::Arc::new(FixedRound {
                        site_keys,
                        round: None,
                        uploads,
                    }),
                ),
                async {
                    let _ = stopped.await;
                },
            ));
            let channel = tls::client_channel(
                &format!("https://{addr}"),
                "coordinator",
                &ca.cert_pem,
                &site.cert_pem,
                &site.key_pem,
            )
            .unwrap();
            let mut client = SiteClient::new(channel, "site-a");
            let joined = client.join(&site.signing_key).await.unwrap();
            assert_eq!(joined.site_id, "site-a");
            assert_eq!(joined.current_round, 0);
            let _ = stop.send(());
            server.await.unwrap().unwrap();
        })
        .await
        .expect("finished in time");
    });
}
