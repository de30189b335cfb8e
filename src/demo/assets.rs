//! The demo models, embedded in the binary so the demo works with no download and after
//! `cargo install`. The engine loads model folders, so on first use the files are written to
//! the cache directory (`GENARM_CACHE`, else the platform cache dir), under a name derived from
//! their content, through a temporary folder renamed into place.

use std::path::{Path, PathBuf};

use crate::engine::{EngineError, Result};

macro_rules! model_files {
    ($model:literal) => {
        [
            (
                "config.json",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/assets/demo/",
                    $model,
                    "/config.json"
                ))
                .as_slice(),
            ),
            (
                "generation_config.json",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/assets/demo/",
                    $model,
                    "/generation_config.json"
                ))
                .as_slice(),
            ),
            (
                "tokenizer.json",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/assets/demo/",
                    $model,
                    "/tokenizer.json"
                ))
                .as_slice(),
            ),
            (
                "tokenizer_config.json",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/assets/demo/",
                    $model,
                    "/tokenizer_config.json"
                ))
                .as_slice(),
            ),
            (
                "special_tokens_map.json",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/assets/demo/",
                    $model,
                    "/special_tokens_map.json"
                ))
                .as_slice(),
            ),
            (
                "model.safetensors",
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/assets/demo/",
                    $model,
                    "/model.safetensors"
                ))
                .as_slice(),
            ),
        ]
    };
}

/// A model folder's files: (file name, bytes).
type ModelFiles = [(&'static str, &'static [u8]); 6];

/// (model folder, files) for the base and its two ARMs.
const MODELS: [(&str, ModelFiles); 3] = [
    ("base", model_files!("base")),
    ("helpful", model_files!("helpful")),
    ("harmless", model_files!("harmless")),
];

/// Paths of the extracted demo models.
#[derive(Debug, Clone)]
pub struct DemoModels {
    pub base: PathBuf,
    pub helpful: PathBuf,
    pub harmless: PathBuf,
}

/// The demo models as folders on disk, extracting them on first use.
pub fn demo_models() -> Result<DemoModels> {
    let name = format!("demo-{:016x}", content_hash());
    let mut root = cache_root().join(&name);
    if !root.join("complete").is_file() && extract(&root).is_err() {
        // An unwritable cache directory (a read-only home, say) should not stop the demo.
        root = std::env::temp_dir().join("genarm").join(&name);
        if !root.join("complete").is_file() {
            extract(&root)?;
        }
    }
    Ok(DemoModels {
        base: root.join("base"),
        helpful: root.join("helpful"),
        harmless: root.join("harmless"),
    })
}

fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("GENARM_CACHE") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("", "", "genarm")
        .map(|d| d.cache_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("genarm"))
}

/// FNV-1a over every embedded file: a new build of the demo gets a new folder.
fn content_hash() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (model, files) in &MODELS {
        for (name, bytes) in files {
            for b in model
                .bytes()
                .chain(name.bytes())
                .chain(bytes.iter().copied())
            {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    h
}

fn extract(root: &Path) -> Result<()> {
    let parent = root.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| EngineError::io(parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".demo-")
        .tempdir_in(parent)
        .map_err(|e| EngineError::io(parent, e))?;
    for (model, files) in &MODELS {
        let dir = staging.path().join(model);
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        for (name, bytes) in files {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| EngineError::io(&path, e))?;
        }
    }
    std::fs::write(staging.path().join("complete"), b"")
        .and_then(|()| crate::output::publish_tree(staging.path()))
        .map_err(|e| EngineError::io(root, e))?;
    let staged = staging.keep();
    match std::fs::rename(&staged, root) {
        Ok(()) => Ok(()),
        // Another process extracted the same content first: use theirs.
        Err(_) if root.join("complete").is_file() => {
            let _ = std::fs::remove_dir_all(&staged);
            Ok(())
        }
        Err(e) => Err(EngineError::io(root, e)),
    }
}
