//! Shared helpers for the integration tests: random models in the Hugging Face layout, the
//! shipped fixtures, and running the `genarm` binary.

use std::path::{Path, PathBuf};
use std::process::Output;

use genarm::synthetic::{RandomModelSpec, write_random_model};
use serde_json::Value;

pub mod gguf;
pub mod logprobs;

/// Run the `genarm` binary with `args` and collect its output.
pub fn genarm(args: &[&str]) -> Output {
    assert_cmd::Command::cargo_bin("genarm")
        .unwrap()
        .args(args)
        .output()
        .unwrap()
}

/// Run the `genarm` binary with the config file `config` (`GENARM_CONFIG`, set for the child
/// only: the tests share one process).
pub fn genarm_with_config(config: &Path, args: &[&str]) -> Output {
    assert_cmd::Command::cargo_bin("genarm")
        .unwrap()
        .env("GENARM_CONFIG", config)
        .args(args)
        .output()
        .unwrap()
}

/// A path as an argument (the tests' paths are temp folders and this checkout: UTF-8).
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A fixture shipped with the tests: `tests/data/<rel>`.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// A JSON array of token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The records of a successful `--json` run, one JSON value a line of stdout.
pub fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A failed run: non-zero exit, exactly one line on stderr, no panic. Returns stderr.
pub fn one_line_stderr(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected a failure: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// A failed run: non-zero exit, exactly one line on stderr containing every `needles`, no
/// panic, nothing on stdout. Returns stderr.
pub fn assert_one_line_error(out: &Output, needles: &[&str]) -> String {
    let stderr = one_line_stderr(out);
    for n in needles {
        assert!(stderr.contains(n), "missing {n:?} in {stderr:?}");
    }
    assert!(out.stdout.is_empty(), "stdout should be empty on error");
    stderr
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

    /// A random llama model `name` (written from `seed` under `source`) whose tokenizer spells
    /// token `id` as `to` instead of `from`: the same vocabulary size, a different tokenizer.
    pub fn llama_with_renamed_token(
        &self,
        name: &str,
        source: &str,
        seed: u64,
        (from, to, id): (&str, &str, u32),
    ) -> PathBuf {
        let path = self.path(name);
        copy_model(&self.llama(source, seed), &path);
        edit_json(&path.join("tokenizer.json"), |t| {
            let vocab = t["model"]["vocab"].as_object_mut().unwrap();
            vocab.remove(from);
            vocab.insert(to.into(), serde_json::json!(id));
        });
        path
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
