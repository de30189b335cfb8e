//! Reading a model folder's weights into named tensors of the compute dtype.
//!
//! Supported on disk: `model.safetensors`, sharded safetensors with
//! `model.safetensors.index.json`, `pytorch_model.bin` and its sharded index — f32, f16 or bf16.
//! Everything is converted to the compute dtype once, at load. GGUF files (see `gguf.rs`) add
//! tensors that stay block-quantized.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::engine::error::{EngineError, Result};
use crate::engine::model::linear::{Linear, LinearWeight};
use crate::engine::model::preflight;

/// All tensors of one model, by their Hugging Face names.
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    /// Block-quantized tensors as stored (GGUF), used as they are by linear layers.
    quantized: HashMap<String, Arc<QTensor>>,
    /// The compute dtype dense tensors have (quantized ones are dequantized to it on request).
    dtype: DType,
    /// What was read, for error messages ("model.safetensors", "3 shards", ...).
    pub source: PathBuf,
}

impl Weights {
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let files = weight_files(dir)?;
        let mut tensors = HashMap::new();
        match files.format {
            Format::Safetensors => {
                let maps = files
                    .paths
                    .iter()
                    .map(|file| map_safetensors(file))
                    .collect::<Result<Vec<_>>>()?;
                let elements: u64 = maps
                    .iter()
                    .flat_map(|st| st.tensors())
                    .map(|(_, view)| view.shape().iter().product::<usize>() as u64)
                    .sum();
                preflight::check_memory(
                    dir,
                    elements.saturating_mul(dtype.size_in_bytes() as u64),
                    dtype.as_str(),
                )?;
                for (file, st) in files.paths.iter().zip(&maps) {
                    for (name, view) in st.tensors() {
                        if let Ok(stored) = DType::try_from(view.dtype())
                            && let Some(i) = preflight::first_non_finite(view.data(), stored)
                        {
                            return Err(preflight::non_finite_error(file, &name, i));
                        }
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
                        if let Some(i) = non_finite_in(&t).map_err(|e| weights_error(file, e))? {
                            return Err(preflight::non_finite_error(file, &name, i));
                        }
                        tensors.insert(name, t);
                    }
                }
            }
        }
        Ok(Self {
            tensors,
            quantized: HashMap::new(),
            dtype,
            source: files
                .paths
                .first()
                .cloned()
                .unwrap_or_else(|| dir.to_path_buf()),
        })
    }

    /// Dense f32 tensors built in memory (training).
    pub fn from_map(tensors: HashMap<String, Tensor>, source: PathBuf) -> Self {
        let dtype = tensors.values().next().map_or(DType::F32, Tensor::dtype);
        Self {
            tensors,
            quantized: HashMap::new(),
            dtype,
            source,
        }
    }

    /// Dense tensors (already in `dtype`) and quantized ones, read from one file.
    pub fn from_parts(
        tensors: HashMap<String, Tensor>,
        quantized: HashMap<String, Arc<QTensor>>,
        dtype: DType,
        source: PathBuf,
    ) -> Self {
        Self {
            tensors,
            quantized,
            dtype,
            source,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name) || self.quantized.contains_key(name)
    }

    /// The tensor `name` as a dense tensor of the compute dtype, checked to have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = match (self.tensors.get(name), self.quantized.get(name)) {
            (Some(t), _) => t.clone(),
            (None, Some(q)) => {
                self.check_shape(name, q.shape().dims(), shape)?;
                q.dequantize(&q.device())?.to_dtype(self.dtype)?
            }
            (None, None) => {
                return Err(EngineError::invalid(
                    &self.source,
                    format!("missing tensor '{name}'"),
                ));
            }
        };
        self.check_shape(name, t.dims(), shape)?;
        Ok(t)
    }

    fn check_shape(&self, name: &str, found: &[usize], expected: &[usize]) -> Result<()> {
        if found != expected {
            return Err(EngineError::invalid(
                &self.source,
                format!("tensor '{name}' has shape {found:?}, the config implies {expected:?}"),
            ));
        }
        Ok(())
    }

    /// The linear layer `{prefix}.weight` (+ `{prefix}.bias`): quantized as stored, else
    /// quantized to `quantize` when given, else dense.
    pub fn linear(
        &self,
        prefix: &str,
        out_dim: usize,
        in_dim: usize,
        bias: bool,
        quantize: Option<GgmlDType>,
    ) -> Result<Linear> {
        let name = format!("{prefix}.weight");
        let bias = if bias {
            Some(self.get(&format!("{prefix}.bias"), &[out_dim])?)
        } else {
            None
        };
        let (weight, asked) = match self.quantized.get(&name) {
            Some(q) => {
                self.check_shape(&name, q.shape().dims(), &[out_dim, in_dim])?;
                (LinearWeight::Quantized(q.clone()), None)
            }
            None => self.weight_from(&name, &self.get(&name, &[out_dim, in_dim])?, quantize)?,
        };
        Ok(Linear::new(weight, bias)?.asked_for(asked))
    }

    /// Rows `start..start + rows` of the fused, bias-free linear layer `{prefix}.weight` of
    /// `total` rows, as a layer of its own (Phi-3's qkv_proj and gate_up_proj are split at
    /// load so the decoder sees q/k/v and gate/up as every other family has them). Quantized
    /// matrices are cut along whole rows, which are whole blocks, so nothing is requantized.
    pub fn linear_part(
        &self,
        prefix: &str,
        start: usize,
        rows: usize,
        total: usize,
        in_dim: usize,
        quantize: Option<GgmlDType>,
    ) -> Result<Linear> {
        let name = format!("{prefix}.weight");
        let weight = match self.quantized.get(&name) {
            Some(q) => {
                self.check_shape(&name, q.shape().dims(), &[total, in_dim])?;
                LinearWeight::Quantized(Arc::new(slice_rows(q, start, rows)?))
            }
            None => {
                let dense = self
                    .get(&name, &[total, in_dim])?
                    .narrow(0, start, rows)?
                    .contiguous()?;
                match quantize {
                    Some(format) => LinearWeight::quantize(&dense, format)?,
                    None => LinearWeight::Dense(dense),
                }
            }
        };
        Linear::new(weight, None)
    }

    /// A bias-free linear layer over `dense`, the tensor `{prefix}.weight` (a tied output
    /// layer reuses the embedding): the stored quantized copy where the file has one.
    pub fn linear_from(
        &self,
        prefix: &str,
        dense: &Tensor,
        quantize: Option<GgmlDType>,
    ) -> Result<Linear> {
        let (weight, asked) = self.weight_from(&format!("{prefix}.weight"), dense, quantize)?;
        Ok(Linear::new(weight, None)?.asked_for(asked))
    }

    /// The weight, and the format it was asked to take at load if it was quantized at load.
    fn weight_from(
        &self,
        name: &str,
        dense: &Tensor,
        quantize: Option<GgmlDType>,
    ) -> Result<(LinearWeight, Option<GgmlDType>)> {
        Ok(match (self.quantized.get(name), quantize) {
            (Some(q), _) => (LinearWeight::Quantized(q.clone()), None),
            (None, Some(format)) => (LinearWeight::quantize(dense, format)?, Some(format)),
            (None, None) => (LinearWeight::Dense(dense.clone()), None),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    /// Every tensor's name, dense and quantized.
    pub fn all_names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys().chain(self.quantized.keys())
    }

    pub fn into_tensors(self) -> HashMap<String, Tensor> {
        self.tensors
    }
}

/// Rows `start..start + rows` of a block-quantized matrix: each row is whole blocks, so the
/// bytes are copied as they are.
fn slice_rows(q: &QTensor, start: usize, rows: usize) -> Result<QTensor> {
    let (total, cols) = q.shape().dims2()?;
    let data = q.data()?;
    let row_bytes = data.len() / total.max(1);
    let bytes = data[start * row_bytes..(start + rows) * row_bytes].to_vec();
    let storage = QStorage::from_data(std::borrow::Cow::Owned(bytes), &q.device(), q.dtype())?;
    Ok(QTensor::new(storage, (rows, cols))?)
}

/// A tensor as its weight file's header describes it; its values are not read.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTensor {
    pub name: String,
    /// As stored, spelled as `--dtype` spells it: "f32", "f16", "bf16" (or "i64", ...).
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// One weight file of a folder, read as far as its header.
#[derive(Debug)]
pub struct StoredFile {
    pub path: PathBuf,
    /// The tensors the header lists (empty where it cannot be read).
    pub tensors: Vec<StoredTensor>,
    /// The error `Weights::load` would stop at for this file, where it would.
    pub problem: Option<EngineError>,
}

/// The weight files `Weights::load` would read from `dir`, each with the tensors its header
/// describes, without reading a value (`genarm inspect`): a safetensors file whose data is
/// truncated still lists its tensors, with the loader's error beside them.
pub fn stored_tensors(dir: &Path) -> Result<Vec<StoredFile>> {
    let files = weight_files(dir)?;
    Ok(files
        .paths
        .into_iter()
        .map(|path| match files.format {
            Format::Safetensors => {
                // The loader's own check (mapping reads the header pages only), then the
                // header alone, which a file cut short in its data still has.
                let problem = map_safetensors(&path).err();
                match safetensors_header(&path) {
                    Ok(tensors) => StoredFile {
                        path,
                        tensors,
                        problem,
                    },
                    Err(e) => StoredFile {
                        path,
                        tensors: Vec::new(),
                        problem: Some(problem.unwrap_or(e)),
                    },
                }
            }
            Format::PyTorch => {
                match candle_core::pickle::read_pth_tensor_info(&path, false, None) {
                    Ok(infos) => StoredFile {
                        tensors: infos
                            .into_iter()
                            .map(|i| StoredTensor {
                                name: i.name,
                                dtype: i.dtype.as_str().to_string(),
                                shape: i.layout.shape().dims().to_vec(),
                            })
                            .collect(),
                        path,
                        problem: None,
                    },
                    Err(e) => StoredFile {
                        problem: Some(weights_error(&path, e)),
                        path,
                        tensors: Vec::new(),
                    },
                }
            }
        })
        .collect())
}

/// The tensors a safetensors header lists: an 8-byte little-endian length, then that many
/// bytes of JSON (the format's own layout); nothing after it is read.
fn safetensors_header(file: &Path) -> Result<Vec<StoredTensor>> {
    use std::io::Read;
    /// The safetensors crate's own limit on the header.
    const MAX_HEADER: u64 = 100_000_000;
    let bad = |msg: String| EngineError::invalid(file, format!("cannot read weights: {msg}"));
    let mut f = std::fs::File::open(file).map_err(|e| EngineError::io(file, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| bad("shorter than a safetensors header".into()))?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(bad(format!("header of {len} bytes claimed")));
    }
    let mut header = Vec::new();
    f.take(len)
        .read_to_end(&mut header)
        .map_err(|e| EngineError::io(file, e))?;
    if header.len() as u64 != len {
        return Err(bad("the header is cut short".into()));
    }
    let meta: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    let mut tensors: Vec<StoredTensor> = meta
        .tensors()
        .into_iter()
        .map(|(name, info)| StoredTensor {
            name,
            dtype: format!("{:?}", info.dtype).to_lowercase(),
            shape: info.shape.clone(),
        })
        .collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensors)
}

/// A safetensors file mapped for reading.
fn map_safetensors(file: &Path) -> Result<candle_core::safetensors::MmapedSafetensors> {
    // SAFETY: a memory map is sound while no one changes the file under it. The map is
    // read-only and lives for `Weights::load` only: every tensor is copied out (`load` then
    // `to_dtype`) before it is dropped, so only a writer racing the load could break it, a risk
    // every mmap-based loader accepts.
    unsafe { candle_core::safetensors::MmapedSafetensors::new(file) }
        .map_err(|e| weights_error(file, e))
}

/// Index of the first NaN or infinity in a float tensor (pickled weights, already in memory).
fn non_finite_in(t: &Tensor) -> candle_core::Result<Option<usize>> {
    if !t.dtype().is_float() {
        return Ok(None);
    }
    let values = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(values.iter().position(|v| !v.is_finite()))
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
