//! `fedids taxii serve`: the TAXII 2.1 server of `fedids-intel` on a tokio runtime.

use anyhow::{Context, Result};
use fedids_intel::taxii::{self, Credentials};

use crate::args::{TaxiiCommand, TaxiiServeArgs};

pub fn run(command: TaxiiCommand, quiet: bool) -> Result<()> {
    match command {
        TaxiiCommand::Serve(a) => serve(a, quiet),
    }
}

fn serve(a: TaxiiServeArgs, quiet: bool) -> Result<()> {
    if a.user.is_empty() || a.password.is_empty() {
        anyhow::bail!("--user and --password must not be empty");
    }
    let hook: Option<std::sync::Arc<dyn taxii::PublishHook>> = if a.ledger_node.is_empty() {
        None
    } else {
        let (Some(pki), Some(name)) = (&a.ledger_pki, &a.ledger_name) else {
            anyhow::bail!("--ledger-node needs --ledger-pki and --ledger-name");
        };
        let client = super::ledger::Client::new(&crate::args::LedgerClientArgs {
            pki: pki.clone(),
            name: name.clone(),
            node: a.ledger_node.clone(),
        })?;
        Some(std::sync::Arc::new(super::ledger::LedgerHook(client)))
    };
    let router = taxii::router_with_hook(
        &a.store,
        Credentials {
            user: a.user.clone(),
            password: a.password.clone(),
        },
        &a.title,
        hook,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let addr = listener.local_addr()?;
        // Always printed (even with --quiet): scripts read the port from it.
        eprintln!(
            "taxii: listening on http://{addr}/taxii2/ (store {})",
            a.store.display()
        );
        let _ = quiet;
        taxii::serve(listener, router, async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("taxii: shutting down");
        })
        .await
        .context("the TAXII server stopped")
    })
}
