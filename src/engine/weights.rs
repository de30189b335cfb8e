//! Reading a model folder's weights into named tensors of the compute dtype.
//!
//! Supported on disk: `model.safetensors`, sharded safetensors with
//! `model.safetensors.index.json`, `pytorch_model.bin` and its sharded index — f32, f16 or bf16.
//! Everything is converted to the compute dtype once, at load.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::error::{EngineError, Result};

/// All tensors of one model, by their Hugging Face names.
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    /// What was read, for error messages ("model.safetensors", "3 shards", ...).
    pub source: PathBuf,
}

impl Weights {
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let files = weight_files(dir)?;
        let mut tensors = HashMap::new();
        match files.format {
            Format::Safetensors => {
                for file in &files.paths {
                    // SAFETY: the file is mapped read-only for the duration of this loop; we copy
                    // every tensor out of the map before it is dropped.
                    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(file) }
                        .map_err(|e| weights_error(file, e))?;
                    for (name, _) in st.tensors() {
                        let t = st
                            .load(&name, device)
                            .and_then(|t| t.to_dtype(dtype))
                            .map_err(|e| weights_error(file, e))?;
                        tensors.insert(name, t);
                    }
                }
            }
            Format::PyTorch => {
                for file in &files.paths {
                    let all =
                        candle_core::pickle::read_all(file).map_err(|e| weights_error(file, e))?;
                    for (name, t) in all {
                        let t = t
                            .to_device(device)
                            .and_then(|t| t.to_dtype(dtype))
                            .map_err(|e| weights_error(file, e))?;
                        tensors.insert(name, t);
                    }
                }
            }
        }
        Ok(Self {
            tensors,
            source: files
                .paths
                .first()
                .cloned()
                .unwrap_or_else(|| dir.to_path_buf()),
        })
    }

    pub fn from_map(tensors: HashMap<String, Tensor>, source: PathBuf) -> Self {
        Self { tensors, source }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor `name`, checked to have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| {
            EngineError::invalid(&self.source, format!("missing tensor '{name}'"))
        })?;
        if t.dims() != shape {
            return Err(EngineError::invalid(
                &self.source,
                format!(
                    "tensor '{name}' has shape {:?}, config.json implies {:?}",
                    t.dims(),
                    shape
                ),
            ));
        }
        Ok(t.clone())
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    pub fn into_tensors(self) -> HashMap<String, Tensor> {
        self.tensors
    }
}

fn weights_error(file: &Path, e: candle_core::Error) -> EngineError {
    // candle's messages can span lines (backtraces, nested context); keep the first.
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("unreadable").trim();
    EngineError::invalid(file, format!("cannot read weights: {first}"))
}

enum Format {
    Safetensors,
    PyTorch,
}

struct WeightFiles {
    format: Format,
    paths: Vec<PathBuf>,
}

/// Find the weight files of a folder, preferring safetensors over PyTorch pickles.
fn weight_files(dir: &Path) -> Result<WeightFiles> {
    let candidates = [
        (
            "model.safetensors.index.json",
            "model.safetensors",
            Format::Safetensors,
        ),
        (
            "pytorch_model.bin.index.json",
            "pytorch_model.bin",
            Format::PyTorch,
        ),
    ];
    for (index, single, format) in candidates {
        let index_path = dir.join(index);
        if index_path.is_file() {
            return Ok(WeightFiles {
                format,
                paths: shards_from_index(dir, &index_path)?,
            });
        }
        let single_path = dir.join(single);
        if single_path.is_file() {
            return Ok(WeightFiles {
                format,
                paths: vec![single_path],
            });
        }
    }
    Err(EngineError::invalid(
        dir,
        "no weights found (expected model.safetensors, model.safetensors.index.json, \
         pytorch_model.bin or pytorch_model.bin.index.json)",
    ))
}

fn shards_from_index(dir: &Path, index_path: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index_path).map_err(|e| EngineError::io(index_path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| EngineError::invalid(index_path, format!("not valid JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| EngineError::invalid(index_path, "missing 'weight_map'"))?;
    let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    let mut paths = Vec::with_capacity(files.len());
    for file in files {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(EngineError::invalid(
                index_path,
                format!("lists shard '{file}', which is missing"),
            ));
        }
        paths.push(path);
    }
    if paths.is_empty() {
        return Err(EngineError::invalid(
            index_path,
            "'weight_map' lists no files",
        ));
    }
    Ok(paths)
}
