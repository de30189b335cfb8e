//! Models named by Hugging Face Hub id (`org/repo`, `org/repo@revision`), resolved to a snapshot
//! folder of the standard Hub cache, so the folder loader ([`crate::engine::model::causal_lm::CausalLm::load`])
//! takes them unchanged.
//!
//! Offline first: a snapshot that already holds the files a model needs is used without any
//! network request. Otherwise the files are downloaded into the cache (with a progress bar)
//! unless `HF_HUB_OFFLINE` is set, in which case the error names the id, the revision and the
//! cache folder searched. The cache layout is the one `huggingface_hub` writes and reads:
//!
//! ```text
//! $HF_HUB_CACHE/models--org--repo/refs/main               commit hash of the revision
//!                                 snapshots/<hash>/…      the files (links into blobs/)
//!                                 blobs/<etag>
//!                                 .no_exist/<hash>/<file> a file the repo does not have
//! ```

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::engine::error::{EngineError, Result};

/// Files fetched when the repository has them, besides the weights.
const MODEL_FILES: [&str; 7] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];
/// Files of a model that must be present for the folder to load (a SentencePiece
/// `tokenizer.model` stands in for tokenizer.json).
const REQUIRED_MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "tokenizer_config.json"];
/// A PEFT LoRA adapter: the adapter itself, and tokenizer files when it ships its own.
const ADAPTER_FILES: [&str; 2] = ["adapter_config.json", "adapter_model.safetensors"];
/// Weight layouts in the order the loader prefers them: a single file, or an index + shards.
const WEIGHT_LAYOUTS: [(&str, &str); 2] = [
    ("model.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin.index.json"),
];

/// `org/repo` at a revision (a branch, a tag or a commit hash; default `main`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    pub repo: String,
    pub revision: String,
}

impl HubId {
    /// `org/repo` or `org/repo@revision`; None for anything else (a path, a bare name).
    pub fn parse(spec: &str) -> Option<Self> {
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, revision)) => (repo, revision),
            None => (spec, "main"),
        };
        let (org, name) = repo.split_once('/')?;
        let valid_revision = !revision.is_empty()
            && !revision.starts_with('/')
            && !revision.contains("..")
            && !revision.chars().any(char::is_whitespace);
        (is_name_part(org) && is_name_part(name) && valid_revision).then(|| Self {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The repository's folder in the cache: `models--org--repo`.
    pub fn folder_name(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (revision {})", self.repo, self.revision)
    }
}

/// One part of a Hub id: letters, digits, `-`, `_`, `.`; not starting with `-` or `.`, and no
/// `--` or `..` (the Hub's own rules, which also keep `models--a--b` unambiguous).
fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with(['-', '.'])
        && !s.contains("--")
        && !s.contains("..")
}

/// Where the cache is and whether the network may be used; read from the environment once, so
/// tests can build one without touching process-wide variables.
#[derive(Debug, Clone)]
pub struct HubEnv {
    pub cache: PathBuf,
    pub offline: bool,
    pub token: Option<String>,
    /// `HF_ENDPOINT`, for mirrors; None is huggingface.co.
    pub endpoint: Option<String>,
}

impl HubEnv {
    /// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`; `HF_HUB_OFFLINE`;
    /// `HF_TOKEN`, else the token file `huggingface-cli login` writes.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            directories::BaseDirs::new()
                .map(|d| d.home_dir().join(".cache").join("huggingface"))
                .unwrap_or_else(|| PathBuf::from(".cache/huggingface"))
        });
        let cache = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| is_truthy(&v));
        let token = var("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| hf_home.join("token"));
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        Self {
            cache,
            offline,
            token,
            endpoint: var("HF_ENDPOINT"),
        }
    }

    /// A cache folder with the network off (tests, `genarm models`).
    pub fn offline_at(cache: &Path) -> Self {
        Self {
            cache: cache.to_path_buf(),
            offline: true,
            token: None,
            endpoint: None,
        }
    }
}

/// `1`, `true`, `yes`, `on` in any case, as huggingface_hub reads its boolean variables.
fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

thread_local! {
    /// Set while [`without_progress`] runs: downloads on this thread draw no progress bar.
    static NO_PROGRESS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with download progress bars off on this thread (the playground loads models while it
/// owns the terminal, where a bar on stderr would scribble over the screen).
pub fn without_progress<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_PROGRESS.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(NO_PROGRESS.with(|p| p.replace(true)));
    f()
}

/// Whether a download may draw a progress bar: stderr is a terminal nobody else is drawing on.
#[cfg_attr(not(feature = "download"), allow(dead_code))]
fn show_progress() -> bool {
    !NO_PROGRESS.with(|p| p.get()) && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// Turn a `--base`/`--arm` value into a model folder: an existing path is always a path; an
/// `org/repo[@rev]` that is not one is a Hub id; anything else is returned as it is, for the
/// loader to report.
pub fn resolve_model(spec: &Path) -> Result<PathBuf> {
    resolve_model_in(spec, &HubEnv::from_env())
}

/// [`resolve_model`] with an explicit cache and network setting.
pub fn resolve_model_in(spec: &Path, env: &HubEnv) -> Result<PathBuf> {
    if spec.exists() {
        return Ok(spec.to_path_buf());
    }
    match spec.to_str().and_then(HubId::parse) {
        Some(id) => resolve(&id, env),
        None => Ok(spec.to_path_buf()),
    }
}

/// The snapshot folder holding `id`, downloading what is missing where allowed.
pub fn resolve(id: &HubId, env: &HubEnv) -> Result<PathBuf> {
    let repo_dir = env.cache.join(id.folder_name());
    let missing = match snapshot_dir(&repo_dir, &id.revision) {
        Some(snapshot) => {
            let missing = missing_files(&snapshot)?;
            if missing.is_empty() {
                return Ok(snapshot);
            }
            format!("incomplete (missing {})", missing.join(", "))
        }
        None if repo_dir.is_dir() => "no snapshot of this revision".to_string(),
        None => "not".to_string(),
    };
    if env.offline {
        return Err(EngineError::usage(format!(
            "{}: {missing} in the Hugging Face cache {}, and HF_HUB_OFFLINE forbids downloading it",
            id,
            env.cache.display()
        )));
    }
    download::fetch(id, env).map_err(|e| {
        EngineError::usage(format!(
            "{}: {missing} in the Hugging Face cache {}, and downloading it failed: {e}",
            id,
            env.cache.display()
        ))
    })
}

/// The snapshot a revision points to: `refs/<revision>` names a commit; a commit hash may also
/// name its snapshot folder directly.
pub fn snapshot_dir(repo_dir: &Path, revision: &str) -> Option<PathBuf> {
    let snapshots = repo_dir.join("snapshots");
    if let Ok(hash) = std::fs::read_to_string(repo_dir.join("refs").join(revision)) {
        let dir = snapshots.join(hash.trim());
        if dir.is_dir() {
            return Some(dir);
        }
    }
    let dir = snapshots.join(revision);
    (!revision.contains('/') && dir.is_dir()).then_some(dir)
}

/// Files a snapshot still needs before the loader can use it (empty: complete).
pub fn missing_files(snapshot: &Path) -> Result<Vec<String>> {
    let has = |name: &str| snapshot.join(name).is_file();
    let known_absent = |name: &str| no_exist_marker(snapshot, name).is_some_and(|p| p.exists());
    if has("adapter_config.json") && !has("config.json") {
        return Ok(ADAPTER_FILES
            .iter()
            .filter(|f| !has(f))
            .map(|f| f.to_string())
            .collect());
    }
    let mut missing: Vec<String> = REQUIRED_MODEL_FILES
        .iter()
        .filter(|f| !has(f) && !known_absent(f))
        .filter(|f| !(**f == "tokenizer.json" && has("tokenizer.model")))
        .map(|f| f.to_string())
        .collect();
    match weight_files(snapshot)? {
        Some(files) => missing.extend(files.into_iter().filter(|f| !has(f))),
        None => missing.push("weights (model.safetensors or pytorch_model.bin)".into()),
    }
    Ok(missing)
}

/// The weight files a snapshot's layout calls for (the shards its index lists), or None when it
/// has neither a weight file nor an index.
fn weight_files(snapshot: &Path) -> Result<Option<Vec<String>>> {
    for (single, index) in WEIGHT_LAYOUTS {
        if snapshot.join(single).is_file() {
            return Ok(Some(vec![single.to_string()]));
        }
        let index_path = snapshot.join(index);
        if index_path.is_file() {
            let mut files = shards_of_index(&index_path)?;
            files.push(index.to_string());
            return Ok(Some(files));
        }
    }
    Ok(None)
}

/// The distinct shard files named by a `*.index.json` weight map.
fn shards_of_index(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| EngineError::invalid(path, format!("not valid JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| EngineError::invalid(path, "no 'weight_map' object"))?;
    let mut shards: Vec<String> = Vec::new();
    for file in map.values().filter_map(Value::as_str) {
        // A shard name is a file in the same folder; anything else would escape the snapshot.
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            return Err(EngineError::invalid(
                path,
                format!("shard '{file}' is not a file name"),
            ));
        }
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_string());
        }
    }
    Ok(shards)
}

/// `models--x/.no_exist/<hash>/<file>`: huggingface_hub's record that a commit has no such file.
fn no_exist_marker(snapshot: &Path, file: &str) -> Option<PathBuf> {
    let hash = snapshot.file_name()?;
    let repo_dir = snapshot.parent()?.parent()?;
    Some(repo_dir.join(".no_exist").join(hash).join(file))
}

/// `org/repo` for a folder inside the cache (`…/models--org--repo/snapshots/<hash>`), for
/// messages that name a model.
pub fn repo_id_of_snapshot(dir: &Path) -> Option<String> {
    let snapshots = dir.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let folder = snapshots.parent()?.file_name()?.to_str()?;
    let rest = folder.strip_prefix("models--")?;
    let (org, name) = rest.split_once("--")?;
    Some(format!("{org}/{name}"))
}

/// Which files of a repository listing to fetch: the model's (or adapter's) files and one weight
/// layout. `index_shards` reads a downloaded index to list its shards.
pub fn files_to_fetch(
    listing: &[String],
    mut index_shards: impl FnMut(&str) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let listed = |name: &str| listing.iter().any(|f| f == name);
    let is_adapter = listed("adapter_config.json") && !listed("config.json");
    let mut files: Vec<String> = MODEL_FILES
        .iter()
        .filter(|f| listed(f))
        .map(|f| f.to_string())
        .collect();
    if is_adapter {
        files.extend(ADAPTER_FILES.iter().map(|f| f.to_string()));
        return Ok(files);
    }
    for (single, index) in WEIGHT_LAYOUTS {
        if listed(single) {
            files.push(single.to_string());
            return Ok(files);
        }
        if listed(index) {
            files.push(index.to_string());
            files.extend(index_shards(index)?);
            return Ok(files);
        }
    }
    Ok(files)
}

#[cfg(feature = "download")]
mod download {
    //! The network half: hf-hub's blocking client (ureq) fills the same cache layout.

    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    use super::{HubEnv, HubId, files_to_fetch, missing_files, shards_of_index};

    pub fn fetch(id: &HubId, env: &HubEnv) -> Result<std::path::PathBuf, String> {
        let mut builder = ApiBuilder::from_cache(Cache::new(env.cache.clone()))
            .with_token(env.token.clone())
            .with_progress(super::show_progress());
        if let Some(endpoint) = &env.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let api = builder.build().map_err(|e| one_line(&e))?;
        let repo = api.repo(Repo::with_revision(
            id.repo.clone(),
            RepoType::Model,
            id.revision.clone(),
        ));
        let info = repo.info().map_err(|e| one_line(&e))?;
        let listing: Vec<String> = info.siblings.iter().map(|s| s.rfilename.clone()).collect();
        let snapshot = env
            .cache
            .join(id.folder_name())
            .join("snapshots")
            .join(&info.sha);
        // Only what this revision's own snapshot lacks is fetched (an older snapshot of the same
        // branch may hold some of the files, but the loader reads this one).
        let fetch = |file: &str| -> Result<std::path::PathBuf, String> {
            let path = snapshot.join(file);
            if path.is_file() {
                return Ok(path);
            }
            repo.download(file)
                .map_err(|e| format!("{file}: {}", one_line(&e)))
        };
        let files = files_to_fetch(&listing, |index| {
            let path = fetch(index).map_err(super::EngineError::usage)?;
            shards_of_index(&path)
        })
        .map_err(|e| e.to_string())?;
        for file in &files {
            fetch(file)?;
        }
        // Files the repository lacks are recorded as huggingface_hub does, so the next run
        // does not go looking for them again.
        for file in super::REQUIRED_MODEL_FILES {
            if !listing.iter().any(|f| f == file)
                && let Some(marker) = super::no_exist_marker(&snapshot, file)
            {
                if let Some(parent) = marker.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = std::fs::write(marker, b"");
            }
        }
        let missing = missing_files(&snapshot).map_err(|e| e.to_string())?;
        if !missing.is_empty() {
            return Err(format!(
                "the repository has no usable model files (missing {})",
                missing.join(", ")
            ));
        }
        Ok(snapshot)
    }

    fn one_line(e: &dyn std::fmt::Display) -> String {
        e.to_string().replace('\n', " ")
    }
}

#[cfg(not(feature = "download"))]
mod download {
    use super::{HubEnv, HubId};

    pub fn fetch(_id: &HubId, _env: &HubEnv) -> Result<std::path::PathBuf, String> {
        Err("this genarm was built without the `download` feature".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_org_slash_repo_with_an_optional_revision() {
        let id = HubId::parse("Qwen/Qwen2.5-0.5B-Instruct").unwrap();
        assert_eq!(id.repo, "Qwen/Qwen2.5-0.5B-Instruct");
        assert_eq!(id.revision, "main");
        let id = HubId::parse("org/repo@0123abcd").unwrap();
        assert_eq!(
            (id.repo.as_str(), id.revision.as_str()),
            ("org/repo", "0123abcd")
        );
        assert_eq!(
            HubId::parse("org/repo@refs/pr/1").unwrap().revision,
            "refs/pr/1"
        );
        for not_an_id in [
            "gpt2",
            "./org/repo",
            "/abs/path",
            "a/b/c",
            "org/",
            "/repo",
            "org/re po",
            "org/repo@",
            "org/..",
            "org/a--b",
            "~/models",
            "org/repo@../x",
        ] {
            assert_eq!(HubId::parse(not_an_id), None, "{not_an_id}");
        }
        assert_eq!(
            HubId::parse("meta-llama/Llama-2-7b-chat-hf")
                .unwrap()
                .folder_name(),
            "models--meta-llama--Llama-2-7b-chat-hf"
        );
    }

    #[test]
    fn truthy_values_follow_huggingface_hub() {
        for yes in ["1", "true", "TRUE", "yes", "On"] {
            assert!(is_truthy(yes), "{yes}");
        }
        for no in ["0", "false", "no", "off", ""] {
            assert!(!is_truthy(no), "{no}");
        }
    }

    #[test]
    fn the_snapshot_names_its_repository() {
        let dir = Path::new("/c/hub/models--org--my-model/snapshots/abc");
        assert_eq!(repo_id_of_snapshot(dir).as_deref(), Some("org/my-model"));
        assert_eq!(repo_id_of_snapshot(Path::new("/models/org/abc")), None);
    }

    #[test]
    fn a_listing_picks_one_weight_layout() {
        let listing: Vec<String> = [
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "README.md",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "pytorch_model.bin",
            "onnx/model.onnx",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let files = files_to_fetch(&listing, |index| {
            assert_eq!(index, "model.safetensors.index.json");
            Ok(vec![
                "model-00001-of-00002.safetensors".into(),
                "model-00002-of-00002.safetensors".into(),
            ])
        })
        .unwrap();
        assert_eq!(
            files,
            [
                "config.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "model.safetensors.index.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ]
        );
        let adapter: Vec<String> = [
            "adapter_config.json",
            "adapter_model.safetensors",
            "README.md",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            files_to_fetch(&adapter, |_| unreachable!()).unwrap(),
            ["adapter_config.json", "adapter_model.safetensors"]
        );
    }

    #[test]
    fn a_sentencepiece_tokenizer_model_stands_in_for_tokenizer_json() {
        let tmp = tempfile::tempdir().unwrap();
        let snapshot = tmp.path();
        for f in [
            "config.json",
            "tokenizer_config.json",
            "tokenizer.model",
            "model.safetensors",
        ] {
            std::fs::write(snapshot.join(f), b"").unwrap();
        }
        assert!(missing_files(snapshot).unwrap().is_empty());
        std::fs::remove_file(snapshot.join("tokenizer.model")).unwrap();
        assert_eq!(missing_files(snapshot).unwrap(), ["tokenizer.json"]);
    }
}
