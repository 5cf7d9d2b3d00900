//! The federated demo: a coordinator and three sites as separate processes on 127.0.0.1.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fedids_net::pki::{init_ca, issue_site, PkiDir, Validity};
use serde_json::Value;

use super::demo::{gunzip, TEST_GZ, TRAIN_GZ};
use crate::args::DemoArgs;

/// The sites and which NSL-KDD `protocol_type` each one sees: three networks whose traffic
/// differs (a non-IID split by feature, as in the published federated-forest protocol).
const SITES: [(&str, &str); 3] = [("site-1", "tcp"), ("site-2", "udp"), ("site-3", "icmp")];

/// How long the whole demo may take before it gives up.
const LIMIT: Duration = Duration::from_secs(600);

/// Child processes, killed if the demo stops early.
struct Children(Vec<(String, Child, PathBuf)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(children: &mut Children, dir: &Path, name: &str, args: &[String]) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the fedids binary")?;
    let err_path = dir.join(format!("{name}.log"));
    let out_path = dir.join(format!("{name}.json"));
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .env("NO_COLOR", "1")
        .spawn()
        .with_context(|| format!("cannot start the {name} process"))?;
    children.0.push((name.to_string(), child, err_path));
    Ok(())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Waits for every child; the first failure is an error carrying its log's tail.
fn wait_all(children: &mut Children, pb: &indicatif::ProgressBar) -> Result<()> {
    let deadline = Instant::now() + LIMIT;
    let mut done = vec![false; children.0.len()];
    while done.iter().any(|d| !d) {
        for (i, (name, child, log)) in children.0.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("the {name} process failed ({status}):\n{}", tail(log));
                }
                done[i] = true;
                pb.set_message(format!(
                    "federation running: {} of {} processes done",
                    done.iter().filter(|d| **d).count(),
                    done.len()
                ));
            }
        }
        if Instant::now() >= deadline {
            bail!("the federation did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

pub fn run(a: DemoArgs, quiet: bool) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("fedids-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let dir = tmp.path();

    // A throwaway PKI: a CA, the coordinator and three sites.
    let pki = PkiDir::new(&dir.join("pki"));
    let ca = init_ca("fedids demo federation")?;
    pki.write_ca(&ca, false)?;
    for name in std::iter::once("coordinator").chain(SITES.iter().map(|s| s.0)) {
        pki.write_site(&issue_site(&ca, name, Validity::days_from_now(1))?, false)?;
    }

    // Each site's own flows: the embedded sample's rows of its protocol.
    let train = gunzip("KDDTrain+_20Percent.txt", TRAIN_GZ)?;
    let text = std::str::from_utf8(&train).context("embedded sample is not UTF-8")?;
    let mut files = vec![String::new(); SITES.len()];
    let mut rows = vec![0usize; SITES.len()];
    for line in text.lines() {
        let protocol = line.split(',').nth(1).unwrap_or("");
        if let Some(i) = SITES.iter().position(|s| s.1 == protocol) {
            files[i].push_str(line);
            files[i].push('\n');
            rows[i] += 1;
        }
    }
    for ((name, _), f) in SITES.iter().zip(&files) {
        std::fs::write(dir.join(format!("{name}.txt")), f)?;
    }
    let test_path = dir.join("KDDTest+.txt");
    std::fs::write(&test_path, gunzip("KDDTest+.txt", TEST_GZ)?)?;

    let pb = crate::ui::spinner("starting the coordinator", quiet);
    let mut children = Children(Vec::new());
    let ready = dir.join("ready.json");
    let d = |p: &str| dir.join(p).display().to_string();
    let strategy = a
        .strategy
        .clone()
        .unwrap_or_else(|| format!("top-per-site:{}:wa:wv", a.trees.div_ceil(SITES.len())));
    spawn(
        &mut children,
        dir,
        "coordinator",
        &[
            "coordinator".into(),
            "--pki".into(),
            d("pki"),
            "--state".into(),
            d("coordinator-state"),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--ready-file".into(),
            ready.display().to_string(),
            "--strategy".into(),
            strategy.clone(),
            "--trees-per-site".into(),
            a.trees.to_string(),
            "--seed".into(),
            a.seed.to_string(),
            "--join-timeout".into(),
            "60s".into(),
            "--json".into(),
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            let v: Value = serde_json::from_str(&text)?;
            break v["grpc"].as_str().unwrap_or_default().to_string();
        }
        if let Some(status) = children.0[0].1.try_wait()? {
            bail!(
                "the coordinator exited ({status}):\n{}",
                tail(&children.0[0].2)
            );
        }
        if Instant::now() >= deadline {
            bail!("the coordinator did not start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    pb.set_message(format!("federation running on {addr}"));
    for (name, _) in SITES {
        spawn(
            &mut children,
            dir,
            name,
            &[
                "site".into(),
                "--pki".into(),
                d("pki"),
                "--name".into(),
                name.into(),
                "--coordinator".into(),
                format!("https://{addr}"),
                "--data".into(),
                d(&format!("{name}.txt")),
                "--test".into(),
                test_path.display().to_string(),
                "--state".into(),
                d(&format!("{name}-state")),
                "--seed".into(),
                a.seed.to_string(),
                "--timeout".into(),
                "120s".into(),
                "--json".into(),
            ],
        )?;
    }
    let started = Instant::now();
    wait_all(&mut children, &pb)?;
    let seconds = started.elapsed().as_secs_f64();
    pb.finish_and_clear();

    let read = |name: &str| -> Result<Value> {
        let path = dir.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path)?;
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
    };
    let coordinator = read("coordinator")?;
    let round = coordinator["rounds"][0].clone();
    let mut sites = Vec::new();
    for (name, _) in SITES {
        sites.push(read(name)?[0].clone());
    }
    if a.json {
        let v = serde_json::json!({ "round": round, "sites": sites, "seconds": seconds });
        crate::ui::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fedids demo: one federation round on 127.0.0.1 in {seconds:.1} s: a coordinator and 3 site processes, gRPC over mutual TLS, throwaway PKI"
    );
    let _ = writeln!(
        out,
        "Each site trains {} trees on its own NSL-KDD flows (KDDTrain+_20Percent, embedded): site-1 sees TCP, site-2 UDP, site-3 ICMP.",
        a.trees
    );
    let _ = writeln!(
        out,
        "Only signed models and tree scores cross the network; the coordinator merges with {strategy} and signs the result.\n"
    );
    let _ = writeln!(
        out,
        "{:<8} {:>10} {:>10} {:>10} {:>11} {:>10}",
        "site", "train rows", "local acc", "local F1", "global acc", "global F1"
    );
    for s in &sites {
        let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "{:<8} {:>10} {:>10.4} {:>10.4} {:>11.4} {:>10.4}",
            s["site"].as_str().unwrap_or("?"),
            super::thousands(s["n_train_rows"].as_u64().unwrap_or(0)),
            f(&s["local"]["accuracy"]),
            f(&s["local"]["macro_f1"]),
            f(&s["global"]["accuracy"]),
            f(&s["global"]["macro_f1"]),
        );
    }
    let n_test = sites
        .first()
        .and_then(|s| s["n_eval_rows"].as_u64())
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "\nAccuracy on KDDTest+ ({} rows, binary: normal vs attack), the same for every site.",
        super::thousands(n_test)
    );
    let _ = writeln!(
        out,
        "Global model: {} trees, sha256 {}, verified by every site against the coordinator's signature.",
        round["global"]["n_trees"],
        round["global"]["hash"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "Next: `fedids demo --local` (one forest, no network); `fedids pki`, `fedids coordinator`, `fedids site` to run your own; see README.md."
    );
    crate::ui::emit(&out)?;
    Ok(())
}
