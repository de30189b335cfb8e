//! Models named by Hub id, resolved through a Hugging Face cache laid out on disk by the test
//! (refs, snapshots linking into blobs), with the network off: no test here downloads anything.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{Models, edit_json, json_lines, one_line_stderr};
use assert_cmd::Command;
use genarm::engine::formats::hub::{HubEnv, HubId, resolve, resolve_model_in};
use genarm::synthetic::RandomModelSpec;
use serde_json::Value;

/// A Hugging Face cache in a temporary folder.
struct FakeCache {
    root: tempfile::TempDir,
}

impl FakeCache {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn hub(&self) -> PathBuf {
        self.root.path().join("hub")
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.hub()
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    /// Store the files of `model` as snapshot `hash` of `repo` the way huggingface_hub does
    /// (content in blobs/, the snapshot holding relative links), and point `refs` at it.
    fn add(&self, repo: &str, hash: &str, model: &Path, refs: &[&str]) -> PathBuf {
        let repo_dir = self.repo_dir(repo);
        let snapshot = repo_dir.join("snapshots").join(hash);
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo_dir.join("blobs")).unwrap();
        for entry in std::fs::read_dir(model).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let blob = format!("{hash}-{name}");
            std::fs::copy(entry.path(), repo_dir.join("blobs").join(&blob)).unwrap();
            link(
                &Path::new("../../blobs").join(&blob),
                &snapshot.join(&name),
                &repo_dir.join("blobs").join(&blob),
            );
        }
        for r in refs {
            let path = repo_dir.join("refs").join(r);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, hash).unwrap();
        }
        snapshot
    }

    fn env(&self) -> HubEnv {
        HubEnv::offline_at(&self.hub())
    }
}

#[cfg(unix)]
fn link(relative: &Path, at: &Path, _blob: &Path) {
    std::os::unix::fs::symlink(relative, at).unwrap();
}

#[cfg(not(unix))]
fn link(_relative: &Path, at: &Path, blob: &Path) {
    std::fs::copy(blob, at).unwrap();
}

const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HASH_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn spec(seed: u64) -> RandomModelSpec {
    RandomModelSpec {
        seed,
        ..Default::default()
    }
}

fn genarm(cache: &FakeCache, cwd: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("genarm")
        .unwrap()
        .current_dir(cwd)
        .env("HF_HUB_CACHE", cache.hub())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HOME")
        .env_remove("HF_TOKEN")
        .args(args)
        .output()
        .unwrap()
}

/// The token ids and guided log-probs of a greedy `generate --json` run (what the models are).
fn generated(out: &Output) -> Vec<(u64, String)> {
    json_lines(out)
        .into_iter()
        .filter(|v| v["type"] == "token")
        .map(|v| {
            (
                v["token_id"].as_u64().unwrap(),
                format!("{:.5}", v["guided_logprob"].as_f64().unwrap()),
            )
        })
        .collect()
}

fn generate_args<'a>(base: &'a str, arm: &'a str) -> Vec<&'a str> {
    vec![
        "generate",
        "--base",
        base,
        "--arm",
        arm,
        "--prompt",
        "w5 w6 w7",
        "--max-new-tokens",
        "6",
        "--json",
    ]
}

#[test]
fn hub_ids_load_from_the_cache_like_the_same_folders() {
    let models = Models::new();
    let base = models.with_spec("base", spec(1));
    let arm = models.with_spec("arm", spec(2));
    let other = models.with_spec("other", spec(3));
    let cache = FakeCache::new();
    cache.add("org/tiny-base", HASH_A, &base, &["main"]);
    cache.add("org/tiny-base", HASH_B, &other, &["v2"]);
    cache.add("org/tiny-arm", HASH_A, &arm, &["main"]);
    let cwd = models.dir.path();
    let arm_path = format!("arm={}", arm.display());

    let from_folders = generated(&genarm(
        &cache,
        cwd,
        &generate_args(base.to_str().unwrap(), &arm_path),
    ));
    let from_hub = generated(&genarm(
        &cache,
        cwd,
        &generate_args("org/tiny-base", "arm=org/tiny-arm"),
    ));
    assert_eq!(from_hub, from_folders);

    // A revision: a ref name, or the commit hash of a snapshot with no ref naming it.
    let other_path = other.to_str().unwrap();
    let other_folder = generated(&genarm(&cache, cwd, &generate_args(other_path, &arm_path)));
    assert_ne!(
        other_folder, from_folders,
        "the test needs two different models"
    );
    for revision in ["org/tiny-base@v2", &format!("org/tiny-base@{HASH_B}")] {
        let out = genarm(
            &cache,
            cwd,
            &generate_args(revision, "arm=org/tiny-arm@main"),
        );
        assert_eq!(generated(&out), other_folder, "{revision}");
    }
}

#[test]
fn an_existing_folder_wins_over_a_hub_id_of_the_same_shape() {
    let models = Models::new();
    let cache = FakeCache::new();
    let cached = models.with_spec("cached", spec(1));
    cache.add("org/tiny", HASH_A, &cached, &["main"]);
    // ./org/tiny exists relative to the working directory and holds another model.
    let local = models.with_spec("org/tiny", spec(5));
    let arm = models.with_spec("arm", spec(2));
    let arm_arg = format!("arm={}", arm.display());
    let cwd = models.dir.path();
    let by_name = generated(&genarm(&cache, cwd, &generate_args("org/tiny", &arm_arg)));
    let by_path = generated(&genarm(
        &cache,
        cwd,
        &generate_args(local.to_str().unwrap(), &arm_arg),
    ));
    let by_cache = generated(&genarm(
        &cache,
        cwd,
        &generate_args("org/tiny@main", &arm_arg),
    ));
    assert_eq!(by_name, by_path);
    assert_ne!(by_name, by_cache);
}

#[test]
fn missing_models_and_files_are_named_offline() {
    let models = Models::new();
    let cache = FakeCache::new();
    let base = models.with_spec("base", spec(1));
    let snapshot = cache.add("org/partial", HASH_A, &base, &["main"]);
    std::fs::remove_file(snapshot.join("tokenizer.json")).unwrap();
    let hub = cache.hub().display().to_string();
    let cwd = models.dir.path();

    let out = genarm(
        &cache,
        cwd,
        &["generate", "--base", "org/partial", "--prompt", "w5"],
    );
    let err = one_line_stderr(&out);
    for needle in [
        "--base",
        "org/partial",
        "revision main",
        "tokenizer.json",
        hub.as_str(),
        "HF_HUB_OFFLINE",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }

    let out = genarm(
        &cache,
        cwd,
        &["generate", "--base", "org/absent", "--prompt", "w5"],
    );
    let err = one_line_stderr(&out);
    for needle in [
        "org/absent",
        "revision main",
        "not in the Hugging Face cache",
        hub.as_str(),
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }

    let out = genarm(
        &cache,
        cwd,
        &["generate", "--base", "org/partial@v9", "--prompt", "w5"],
    );
    let err = one_line_stderr(&out);
    assert!(
        err.contains("revision v9") && err.contains("no snapshot of this revision"),
        "{err}"
    );

    // A sharded checkpoint with a shard missing names the shard.
    let sharded = cache.add("org/sharded", HASH_B, &base, &["main"]);
    std::fs::remove_file(sharded.join("model.safetensors")).unwrap();
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        r#"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    std::fs::write(sharded.join("model-00001-of-00002.safetensors"), b"x").unwrap();
    let id = HubId::parse("org/sharded").unwrap();
    let err = resolve(&id, &cache.env()).unwrap_err().to_string();
    assert!(
        err.contains("model-00002-of-00002.safetensors") && !err.contains("00001"),
        "{err}"
    );
}

#[test]
fn a_repository_without_a_tokenizer_config_is_complete_once_recorded_absent() {
    let models = Models::new();
    let cache = FakeCache::new();
    let base = models.with_spec("base", spec(1));
    let snapshot = cache.add("org/noconf", HASH_A, &base, &["main"]);
    std::fs::remove_file(snapshot.join("tokenizer_config.json")).unwrap();
    let id = HubId::parse("org/noconf").unwrap();
    let err = resolve(&id, &cache.env()).unwrap_err().to_string();
    assert!(err.contains("tokenizer_config.json"), "{err}");
    // huggingface_hub's record that the commit has no such file.
    let marker = cache
        .repo_dir("org/noconf")
        .join(".no_exist")
        .join(HASH_A)
        .join("tokenizer_config.json");
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(&marker, b"").unwrap();
    assert_eq!(resolve(&id, &cache.env()).unwrap(), snapshot);
}

#[test]
fn paths_and_other_values_pass_through_unchanged() {
    let cache = FakeCache::new();
    let env = cache.env();
    for spec in ["/no/such/model", "gpt2", "./org/repo"] {
        assert_eq!(
            resolve_model_in(Path::new(spec), &env).unwrap(),
            PathBuf::from(spec)
        );
    }
}

#[test]
fn a_failed_download_is_one_line_naming_the_id() {
    // Network allowed, but the endpoint is a closed local port: the download fails at once.
    let models = Models::new();
    let cache = FakeCache::new();
    let out = Command::cargo_bin("genarm")
        .unwrap()
        .current_dir(models.dir.path())
        .env("HF_HUB_CACHE", cache.hub())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HOME")
        .args(["generate", "--base", "org/remote", "--prompt", "w5"])
        .output()
        .unwrap();
    let err = one_line_stderr(&out);
    assert!(
        err.contains("org/remote") && err.contains("revision main"),
        "{err}"
    );
    assert!(err.contains("download"), "{err}");
}

#[test]
fn a_peft_adapter_finds_its_hub_base_in_the_cache() {
    use candle_core::{Device, Tensor};
    let models = Models::new();
    let cache = FakeCache::new();
    let base = models.with_spec("base", spec(1));
    cache.add("org/tiny-base", HASH_A, &base, &["main"]);
    // A LoRA on layer 0's q_proj (hidden 32, r 2), written once with the base as a path and
    // once with it as a Hub id.
    let a: Vec<f32> = (0..2 * 32)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
        .collect();
    let b: Vec<f32> = (0..32 * 2)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) / 10.0)
        .collect();
    let p = "base_model.model.model.layers.0.self_attn.q_proj";
    let tensors = std::collections::HashMap::from([
        (
            format!("{p}.lora_A.weight"),
            Tensor::from_vec(a, (2, 32), &Device::Cpu).unwrap(),
        ),
        (
            format!("{p}.lora_B.weight"),
            Tensor::from_vec(b, (32, 2), &Device::Cpu).unwrap(),
        ),
    ]);
    let mut outputs = Vec::new();
    for (name, base_ref) in [
        ("by_path", base.display().to_string()),
        ("by_id", "org/tiny-base".to_string()),
    ] {
        let dir = models.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        candle_core::safetensors::save(&tensors, dir.join("adapter_model.safetensors")).unwrap();
        let config = serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
            "target_modules": ["q_proj"], "base_model_name_or_path": base_ref});
        std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
        let arm = format!("lora={}", dir.display());
        outputs.push(generated(&genarm(
            &cache,
            models.dir.path(),
            &generate_args(base.to_str().unwrap(), &arm),
        )));
    }
    assert_eq!(outputs[0], outputs[1]);

    // A Hub base that is not cached is named with the adapter's config file.
    let dir = models.path("by_id");
    edit_json(&dir.join("adapter_config.json"), |c| {
        c["base_model_name_or_path"] = "org/elsewhere".into()
    });
    let arm = format!("lora={}", dir.display());
    let out = genarm(
        &cache,
        models.dir.path(),
        &generate_args(base.to_str().unwrap(), &arm),
    );
    let err = one_line_stderr(&out);
    assert!(
        err.contains("adapter_config.json") && err.contains("org/elsewhere"),
        "{err}"
    );
}

#[test]
fn genarm_models_lists_the_cache() {
    let models = Models::new();
    let cache = FakeCache::new();
    let base = models.with_spec("base", spec(1));
    let qwen = models.with_spec(
        "qwen",
        RandomModelSpec {
            arch: "qwen2".into(),
            ..spec(2)
        },
    );
    cache.add("org/tiny", HASH_A, &base, &["main"]);
    cache.add("org/tiny", HASH_B, &qwen, &["v2", "refs/pr/1"]);
    let partial = cache.add("other/partial", HASH_A, &base, &["main"]);
    std::fs::remove_file(partial.join("config.json")).unwrap();
    let adapter = models.path("adapter");
    std::fs::create_dir_all(&adapter).unwrap();
    std::fs::write(
        adapter.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "base_model_name_or_path": "org/tiny"}"#,
    )
    .unwrap();
    std::fs::write(adapter.join("adapter_model.safetensors"), b"stub").unwrap();
    cache.add("org/lora", HASH_A, &adapter, &["main"]);

    let folder_bytes = |dir: &Path| -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    let out = genarm(&cache, models.dir.path(), &["models", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = listed.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["org/lora", "org/tiny", "other/partial"]);

    let lora = &listed[0];
    assert_eq!(lora["adapter_of"], "org/tiny");
    assert_eq!(lora["revisions"][0]["complete"], true);

    let tiny = &listed[1];
    assert_eq!(
        tiny["size_bytes"].as_u64().unwrap(),
        folder_bytes(&base) + folder_bytes(&qwen)
    );
    let mut revisions: Vec<(String, Vec<String>)> = tiny["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["commit"].as_str().unwrap().to_string(),
                serde_json::from_value(r["refs"].clone()).unwrap(),
            )
        })
        .collect();
    revisions.sort();
    assert_eq!(
        revisions,
        [
            (HASH_A.to_string(), vec!["main".to_string()]),
            (
                HASH_B.to_string(),
                vec!["refs/pr/1".to_string(), "v2".to_string()]
            )
        ]
    );
    let arch = tiny["architecture"].as_str().unwrap();
    assert!(
        arch == "LlamaForCausalLM" || arch == "Qwen2ForCausalLM",
        "{arch}"
    );
    assert!(tiny["adapter_of"].is_null());

    assert_eq!(listed[2]["revisions"][0]["complete"], false);

    // The table names the same models, and marks the incomplete snapshot.
    let out = genarm(&cache, models.dir.path(), &["models"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("PEFT adapter of org/tiny"), "{table}");
    assert!(table.contains("main→aaaaaaa*"), "{table}");
    assert!(table.contains("incomplete"), "{table}");
}

#[cfg(feature = "download")]
/// A local HTTP server answering as the Hub does for one repository at `main`: the file listing
/// (`/api/models/…/revision/main`) and each file (`/…/resolve/main/FILE`, with the commit, etag
/// and content-range headers hf-hub reads). Returns its address and every request path seen,
/// with its authorization header.
fn serve_repo(
    repo: &str,
    sha: &str,
    files: Vec<(String, Vec<u8>)>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let (repo, sha) = (repo.to_string(), sha.to_string());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                headers.push(line.trim_end().to_ascii_lowercase());
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let auth: Vec<&String> = headers
                .iter()
                .filter(|h| h.starts_with("authorization"))
                .collect();
            log.lock().unwrap().push(format!("{path} {auth:?}"));
            let range = headers
                .iter()
                .find_map(|h| h.strip_prefix("range: bytes=").map(str::to_string));
            let (status, extra, body) = if path == format!("/api/models/{repo}/revision/main") {
                let siblings: Vec<Value> = files
                    .iter()
                    .map(|(n, _)| serde_json::json!({"rfilename": n}))
                    .collect();
                let info = serde_json::json!({"sha": sha, "siblings": siblings});
                ("200 OK", String::new(), info.to_string().into_bytes())
            } else if let Some((name, data)) = path
                .strip_prefix(&format!("/{repo}/resolve/main/"))
                .and_then(|name| files.iter().find(|(n, _)| n == name))
            {
                let mut bounds = range.as_deref().unwrap_or("0-").split('-');
                let start: usize = bounds.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let end = bounds
                    .next()
                    .and_then(|s| s.parse::<usize>().ok())
                    .map_or(data.len(), |e| (e + 1).min(data.len()));
                let extra = format!(
                    "x-repo-commit: {sha}\r\netag: \"etag-{name}\"\r\ncontent-range: bytes {start}-{}/{}\r\n",
                    end.saturating_sub(1),
                    data.len()
                );
                ("206 Partial Content", extra, data[start..end].to_vec())
            } else {
                ("404 Not Found", String::new(), Vec::new())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (address, seen)
}

#[test]
#[cfg(feature = "download")]
fn missing_models_are_downloaded_into_the_cache_layout() {
    let models = Models::new();
    let cache = FakeCache::new();
    let base = models.with_spec("base", spec(1));
    let arm = models.with_spec("arm", spec(2));
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.push(("README.md".into(), b"not needed".to_vec()));
    let (endpoint, seen) = serve_repo("org/remote", HASH_A, files);
    let arm_arg = format!("arm={}", arm.display());
    let out = Command::cargo_bin("genarm")
        .unwrap()
        .current_dir(models.dir.path())
        .env("HF_HUB_CACHE", cache.hub())
        .env("HF_ENDPOINT", &endpoint)
        .env("HF_TOKEN", "secret-token")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HOME")
        .args(generate_args("org/remote", &arm_arg))
        .output()
        .unwrap();
    let downloaded = generated(&out);
    let local = generated(&genarm(
        &cache,
        models.dir.path(),
        &generate_args(base.to_str().unwrap(), &arm_arg),
    ));
    assert_eq!(downloaded, local);

    // The files landed in the standard layout: offline resolution now finds the snapshot.
    let id = HubId::parse("org/remote").unwrap();
    assert_eq!(
        resolve(&id, &cache.env()).unwrap(),
        cache.repo_dir("org/remote").join("snapshots").join(HASH_A)
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().all(|r| r.contains("bearer secret-token")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|r| r.contains("README.md")), "{seen:?}");
}
