//! Shared helpers for the integration tests: random models in the Hugging Face layout.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use genarm::synthetic::{RandomModelSpec, write_random_model};

pub mod gguf;

/// Run the `genarm` binary with `args` and collect its output.
pub fn genarm(args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("genarm")
        .unwrap()
        .args(args)
        .output()
        .unwrap()
}

/// A failed run: non-zero exit, exactly one line on stderr containing every `needles`, no
/// panic, nothing on stdout.
pub fn assert_one_line_error(out: &std::process::Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "missing {n:?} in {stderr:?}");
    }
    assert!(out.stdout.is_empty(), "stdout should be empty on error");
}

/// A temporary folder holding random models, removed when dropped.
pub struct Models {
    pub dir: tempfile::TempDir,
}

impl Models {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Write a small random llama model named `name` with `seed`; return its path.
    pub fn llama(&self, name: &str, seed: u64) -> PathBuf {
        self.with_spec(
            name,
            RandomModelSpec {
                seed,
                ..Default::default()
            },
        )
    }

    pub fn with_spec(&self, name: &str, spec: RandomModelSpec) -> PathBuf {
        let path = self.dir.path().join(name);
        write_random_model(&path, &spec).expect("write random model");
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Copy a model folder (flat) to `to`.
pub fn copy_model(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Edit a JSON file in place.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}
