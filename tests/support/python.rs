//! A Python virtual environment with the OASIS STIX validator and the TAXII 2.1 client, created
//! once per build directory. Tests that need it fail (never skip) when it cannot be made.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The PyPI packages the tests use, pinned to their major versions.
pub const PACKAGES: [&str; 2] = ["stix2-validator>=3.2,<4", "taxii2-client>=2.3,<3"];

/// The venv's python, creating the venv on first use.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fedids-pyenv");
            let py = dir.join("bin").join("python");
            let marker = dir.join(".fedids-installed");
            if !marker.exists() {
                run(
                    Command::new("python3").args(["-m", "venv"]).arg(&dir),
                    "python3 -m venv",
                );
                run(
                    Command::new(&py)
                        .args([
                            "-m",
                            "pip",
                            "install",
                            "--quiet",
                            "--disable-pip-version-check",
                            "--timeout",
                            "60",
                        ])
                        .args(PACKAGES),
                    "pip install stix2-validator taxii2-client",
                );
                std::fs::write(&marker, PACKAGES.join("\n")).expect("write the venv marker");
            }
            py
        })
        .clone()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what} could not start ({e}): the STIX/TAXII tests need python3 with venv and pip, and access to PyPI")
    });
    assert!(
        out.status.success(),
        "{what} failed: the STIX/TAXII tests need python3 with venv and pip, and access to PyPI\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Validates a STIX 2.1 bundle file with `stix2-validator`; panics with its report on any error.
pub fn validate_stix(path: &Path) {
    let script = r#"
import sys
from stix2validator import validate_file, print_results, ValidationOptions
results = validate_file(sys.argv[1], ValidationOptions(version="2.1"))
print_results(results)
errors = [e for r in results.object_results for e in r.errors]
sys.exit(0 if results.is_valid and not errors else 1)
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("run the STIX validator");
    assert!(
        out.status.success(),
        "stix2-validator found errors in {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
