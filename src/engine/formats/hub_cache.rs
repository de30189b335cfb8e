//! What the Hugging Face cache holds (`genarm models`): each model repository with its
//! revisions, its size on disk, its architecture and whether it is a PEFT adapter.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::engine::error::{EngineError, Result};
use crate::engine::formats::hub::missing_files;

/// One `models--org--repo` folder of the cache.
#[derive(Debug, Clone, Serialize)]
pub struct CachedModel {
    pub id: String,
    /// Every snapshot, with the refs (branches, tags) that point to it.
    pub revisions: Vec<CachedRevision>,
    /// Bytes of the files stored (blobs, and snapshot files that are not links; refs and
    /// markers are not counted, as `huggingface-cli scan-cache` does not).
    pub size_bytes: u64,
    /// `architectures[0]` of config.json (the newest snapshot that has one).
    pub architecture: Option<String>,
    /// For a PEFT adapter, its `base_model_name_or_path`.
    pub adapter_of: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CachedRevision {
    pub commit: String,
    pub refs: Vec<String>,
    /// Whether the snapshot holds every file the loader needs.
    pub complete: bool,
}

/// Every model repository in `cache`, sorted by id; an absent cache is empty.
pub fn list(cache: &Path) -> Result<Vec<CachedModel>> {
    let entries = match std::fs::read_dir(cache) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::io(cache, e)),
    };
    let mut models = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("models--") else {
            continue;
        };
        let Some((org, repo)) = rest.split_once("--") else {
            continue;
        };
        models.push(describe(&entry.path(), format!("{org}/{repo}")));
    }
    models.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(models)
}

fn describe(repo_dir: &Path, id: String) -> CachedModel {
    let refs = read_refs(&repo_dir.join("refs"), "");
    let mut snapshots: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(repo_dir.join("snapshots"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| {
                        let modified = e
                            .metadata()
                            .and_then(|m| m.modified())
                            .unwrap_or(std::time::UNIX_EPOCH);
                        (modified, e.path())
                    })
                    .collect()
            })
            .unwrap_or_default();
    // Newest first, so the architecture comes from the latest download.
    snapshots.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut revisions = Vec::new();
    let mut architecture = None;
    let mut adapter_of = None;
    for (_, dir) in &snapshots {
        let commit = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if architecture.is_none() {
            architecture = read_json(&dir.join("config.json"))
                .and_then(|c| c.get("architectures")?.get(0)?.as_str().map(str::to_string));
        }
        if adapter_of.is_none() && !dir.join("config.json").is_file() {
            adapter_of = read_json(&dir.join("adapter_config.json")).and_then(|c| {
                c.get("base_model_name_or_path")?
                    .as_str()
                    .map(str::to_string)
            });
        }
        revisions.push(CachedRevision {
            refs: refs
                .iter()
                .filter(|(_, hash)| *hash == commit)
                .map(|(name, _)| name.clone())
                .collect(),
            complete: missing_files(dir).is_ok_and(|m| m.is_empty()),
            commit,
        });
    }
    CachedModel {
        id,
        revisions,
        size_bytes: stored_bytes(&repo_dir.join("blobs"))
            + stored_bytes(&repo_dir.join("snapshots")),
        architecture,
        adapter_of,
    }
}

/// `(name, commit)` for every file under `refs/` (names may contain `/`, as `refs/pr/1`).
fn read_refs(dir: &Path, prefix: &str) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        if path.is_dir() {
            refs.extend(read_refs(&path, &format!("{name}/")));
        } else if let Ok(hash) = std::fs::read_to_string(&path) {
            refs.push((name, hash.trim().to_string()));
        }
    }
    refs.sort();
    refs
}

/// Bytes of the regular files under `dir`; links (snapshot entries pointing into blobs/) are
/// not followed, so nothing is counted twice.
fn stored_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            total += stored_bytes(&entry.path());
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    total
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// `1.2 GB`, `340 MB`, `12 kB`: decimal units, as the Hub shows sizes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_decimal_units() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_500), "1.5 kB");
        assert_eq!(human_size(988_000_000), "988.0 MB");
        assert_eq!(human_size(2_340_000_000), "2.3 GB");
    }
}
