//! The end-to-end test harness: a temporary directory in which to run the real `fedids` binary,
//! plus helpers shared by the test files. Not every test file uses every helper.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
