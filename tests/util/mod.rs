//! The end-to-end test harness: a temporary directory in which to run the real `fedids` binary,
//! plus helpers shared by the test files. Not every test file uses every helper.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets")
}

/// A temporary working directory in which to run `fedids`.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).expect("write fixture");
        p
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_fedids"))
            .args(args)
            .current_dir(self.tmp.path())
            .output()
            .expect("run fedids")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fedids {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs and expects failure with exit code 1; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(1),
            "fedids {args:?}: expected exit 1, stderr:\n{stderr}"
        );
        assert!(
            !stderr.contains("panicked"),
            "fedids {args:?} panicked:\n{stderr}"
        );
        stderr
    }

    /// `fedids train --data DATA --out OUT EXTRA... --json --quiet`; returns the summary.
    pub fn train(&self, data: &Path, out: &Path, extra: &[&str]) -> Value {
        let mut args = vec!["train", "--data", s(data), "--out", s(out)];
        args.extend_from_slice(extra);
        args.extend(["--json", "--quiet"]);
        self.json(&args)
    }

    /// `fedids eval --model MODEL --data DATA --json --quiet`; returns the report.
    pub fn eval(&self, model: &Path, data: &Path) -> Value {
        self.json(&[
            "eval",
            "--model",
            s(model),
            "--data",
            s(data),
            "--json",
            "--quiet",
        ])
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("fedids {args:?}: bad JSON ({e}):\n{out}"))
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub fn accuracy(eval: &Value) -> f64 {
    eval["metrics"]["accuracy"].as_f64().expect("accuracy")
}

/// Writes every 5th data row of `src` to `test` and the others to `train`, keeping a header line
/// when `header` is set: a deterministic 80/20 split both tools can read.
pub fn split_file(dir: &Dir, src: &Path, header: bool, name: &str) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(src).expect("read dataset");
    let mut lines = text.lines();
    let mut train = String::new();
    let mut test = String::new();
    if header {
        let h = lines.next().expect("header");
        train.push_str(h);
        train.push('\n');
        test.push_str(h);
        test.push('\n');
    }
    for (i, line) in lines.enumerate() {
        let out = if i % 5 == 4 { &mut test } else { &mut train };
        out.push_str(line);
        out.push('\n');
    }
    (
        dir.write(&format!("{name}-train.csv"), train.as_bytes()),
        dir.write(&format!("{name}-test.csv"), test.as_bytes()),
    )
}

/// Deals the first `rows_per_site` x `sites.len()` rows of NSL-KDD's KDDTrain+_20Percent
/// round-robin to `SITE.csv`, one file per site.
pub fn deal_nsl_kdd(dir: &Dir, sites: &[&str], rows_per_site: usize) {
    let text = std::fs::read_to_string(datasets().join("nsl-kdd/KDDTrain+_20Percent.txt"))
        .expect("read dataset");
    let lines: Vec<&str> = text.lines().take(rows_per_site * sites.len()).collect();
    for (i, site) in sites.iter().enumerate() {
        let rows: String = lines
            .iter()
            .skip(i)
            .step_by(sites.len())
            .map(|l| format!("{l}\n"))
            .collect();
        dir.write(&format!("{site}.csv"), rows.as_bytes());
    }
}

/// Upper bound for any one process in the tests that start long-running processes.
pub const LIMIT: Duration = Duration::from_secs(120);

/// A running `fedids` process whose stdout and stderr go to files; killed on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    pub fn start(dir: &Dir, name: &str, args: &[&str]) -> Proc {
        let stdout = dir.path(&format!("{name}.out"));
        let stderr = dir.path(&format!("{name}.err"));
        let child = Command::new(env!("CARGO_BIN_EXE_fedids"))
            .args(args)
            .current_dir(dir.path(""))
            .env("FEDIDS_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn fedids");
        Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Waits for the process to exit, at most `limit`; kills it and fails the test otherwise.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} still running after {limit:?}\nstderr:\n{}",
                    self.name,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for success and returns stdout parsed as JSON.
    pub fn json(&mut self) -> Value {
        let status = self.wait(LIMIT);
        assert!(
            status.success(),
            "{} failed with {status}\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.stdout(),
            self.stderr()
        );
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| {
            panic!(
                "{}: stdout is not JSON ({e}):\n{}",
                self.name,
                self.stdout()
            )
        })
    }

    /// Waits for exit code 1 and returns stderr, which must not show a panic.
    pub fn fails(&mut self) -> String {
        let status = self.wait(LIMIT);
        let err = self.stderr();
        assert_eq!(status.code(), Some(1), "{}: {status}\n{err}", self.name);
        assert!(!err.contains("panicked"), "{}:\n{err}", self.name);
        err
    }

    /// Polls stderr until `needle` occurs `times` times.
    pub fn await_log(&mut self, needle: &str, times: usize) {
        let deadline = Instant::now() + LIMIT;
        while self.stderr().matches(needle).count() < times {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before logging '{needle}' {times} times:\n{}",
                    self.name,
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: no '{needle}' x{times} in time:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `fedids site` for `site` with the PKI directory `pki`, its flows in `SITE.csv` and its
/// state in `SITE-state`, against the coordinator at `url`; `--timeout 60s` unless `extra` sets it.
pub fn start_site(dir: &Dir, pki: &str, site: &str, url: &str, extra: &[&str]) -> Proc {
    let data = format!("{site}.csv");
    let state = format!("{site}-state");
    let mut args = vec![
        "site",
        "--pki",
        pki,
        "--name",
        site,
        "--coordinator",
        url,
        "--data",
        &data,
        "--state",
        &state,
        "--json",
    ];
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout", "60s"]);
    }
    args.extend_from_slice(extra);
    Proc::start(dir, site, &args)
}

/// Waits (at most 30 s) until `proc` writes its ready file, and returns it parsed.
pub fn wait_ready(proc: &mut Proc, ready: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(ready) {
            return serde_json::from_str(&text).unwrap();
        }
        if let Some(status) = proc.child.try_wait().unwrap() {
            panic!("{} exited ({status}):\n{}", proc.name, proc.stderr());
        }
        assert!(Instant::now() < deadline, "{} not ready", proc.name);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `fedids pki init` in `pki/`, then a certificate for each of `names`.
pub fn pki(dir: &Dir, names: &[&str]) {
    dir.ok(&["pki", "init", "--dir", "pki"]);
    for n in names {
        dir.ok(&["pki", "issue", n, "--dir", "pki"]);
    }
}

/// Three `fedids node` processes on 127.0.0.1 (Raft over mutual TLS, redb), named `node-1` to
/// `node-3` with ids 1 to 3, node 1 bootstrapping the cluster. The PKI in `pki/` must hold their
/// certificates. A node is killed (SIGKILL) when its [`Proc`] is dropped.
pub struct Nodes {
    pub dir: Dir,
    /// The Raft port of node i at `ports[i - 1]`.
    pub ports: Vec<u16>,
    /// Node i's process at `nodes[i - 1]`; `None` once killed.
    pub nodes: Vec<Option<Proc>>,
    starts: usize,
    /// Arguments of node i after the common ones.
    extra: Box<dyn Fn(usize) -> Vec<String>>,
}

impl Nodes {
    /// Starts the three nodes, each with the common arguments and `extra(i)`, and waits until
    /// node 1 has initialized the cluster.
    pub fn start(dir: Dir, extra: impl Fn(usize) -> Vec<String> + 'static) -> Nodes {
        let mut n = Nodes {
            dir,
            ports: (0..3).map(|_| free_port()).collect(),
            nodes: vec![None, None, None],
            starts: 0,
            extra: Box::new(extra),
        };
        for i in 1..=3 {
            n.start_node(i, i == 1);
        }
        n.nodes[0]
            .as_mut()
            .unwrap()
            .await_log("cluster initialized", 1);
        n
    }

    pub fn url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.ports[i - 1])
    }

    /// The URLs of nodes `ids`, comma-separated.
    pub fn urls(&self, ids: &[usize]) -> String {
        ids.iter()
            .map(|&i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// (Re)starts node i; a restarted node logs to new files.
    pub fn start_node(&mut self, i: usize, init: bool) {
        let peers = (1..=3)
            .map(|j| format!("{j}={}", self.url(j)))
            .collect::<Vec<_>>()
            .join(",");
        let mut args: Vec<String> = [
            "node",
            "--pki",
            "pki",
            "--name",
            &format!("node-{i}"),
            "--id",
            &i.to_string(),
            "--listen",
            &format!("127.0.0.1:{}", self.ports[i - 1]),
            "--peers",
            &peers,
            "--state",
            &format!("state-{i}"),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend((self.extra)(i));
        if init {
            args.push("--init".to_string());
        }
        self.starts += 1;
        let log = format!("node-{i}-{}", self.starts);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.nodes[i - 1] = Some(Proc::start(&self.dir, &log, &args));
    }
}
