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
