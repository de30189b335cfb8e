//! Reading a model folder's weights into named tensors of the compute dtype.
//!
//! Supported on disk: `model.safetensors`, sharded safetensors with
//! `model.safetensors.index.json`, `pytorch_model.bin` and its sharded index — f32, f16 or bf16.
//! A matrix stored in the compute dtype is read in place from the file (`mapped.rs`); the rest
//! is converted to the compute dtype once, at load, one tensor at a time (see `Weights`). GGUF
//! files (see `gguf.rs`) add tensors that stay block-quantized.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::engine::error::{EngineError, Result};
use crate::engine::model::linear::{Linear, LinearWeight, fitting_format, quantize_parts};
use crate::engine::model::mapped::{FileMap, MappedMatrix};
use crate::engine::model::preflight;

/// A tensor as its file stores it, read when a layer asks for it.
pub enum Stored {
    /// f32, f16 or bf16, in the file's dtype.
    Dense(Tensor),
    /// Block-quantized (GGUF), used as it is by linear layers.
    Quantized(QTensor),
}

/// An embedding lookup table (see `Weights::tied_output`).
pub enum Table {
    Dense(Tensor),
    /// Read in place from the file (shared with a tied output layer).
    Mapped(MappedMatrix),
    Blocks(Arc<QTensor>),
}

/// Reads one tensor from its file.
pub type ReadTensor = Box<dyn Fn() -> Result<Stored>>;

/// Reads rows `first..first + count` of a dense matrix from its file, in its stored dtype.
pub type ReadRows = Box<dyn Fn(usize, usize) -> Result<Tensor>>;

/// A tensor not read yet: its shape, whether it is block-quantized, and how to read it.
pub struct LazyTensor {
    pub shape: Vec<usize>,
    pub quantized: bool,
    pub read: ReadTensor,
    /// A dense matrix whose file can give a range of rows (safetensors): quantizing it at
    /// load reads a part at a time, never the whole matrix in f32.
    pub rows: Option<ReadRows>,
    /// The matrix in place in its file, where its bytes can be read so (`mapped.rs`): used
    /// instead of a copy where the model computes in its stored dtype.
    pub map: Option<MappedMatrix>,
}

/// All tensors of one model, by their Hugging Face names.
///
/// Tensors in files are read one at a time, when the decoder's builder asks for them
/// (`Transformer::load_with`), and turned into their layer right away (converted, quantized,
/// packed): the source copy of one tensor is held at a time, never the whole model's next to
/// its converted copy, so loading peaks near the loaded model's size rather than twice it.
pub struct Weights {
    /// Tensors already in memory (pickles, training, merged adapters).
    tensors: HashMap<String, Tensor>,
    /// Tensors read from their file on request (safetensors and GGUF).
    lazy: HashMap<String, LazyTensor>,
    /// The compute dtype dense tensors have (quantized ones are dequantized to it on request).
    dtype: DType,
    /// Whether matrices stored in the compute dtype are read in place from their file
    /// (`LazyTensor::map`) rather than copied.
    map_dense: bool,
    /// What was read, for error messages ("model.safetensors", "3 shards", ...).
    pub source: PathBuf,
}

impl Weights {
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let files = weight_files(dir)?;
        let mut tensors = HashMap::new();
        let mut lazy = HashMap::new();
        match files.format {
            Format::Safetensors => {
                let maps = files
                    .paths
                    .iter()
                    .map(|file| map_safetensors(file).map(Arc::new))
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
                    let mut in_place = matrices_in_place(file);
                    for (name, view) in st.tensors() {
                        let read = safetensors_reader(file, st, &name, device);
                        let rows = safetensors_rows(file, st, &name, device);
                        let shape = view.shape().to_vec();
                        let quantized = false;
                        let map = in_place.remove(&name);
                        lazy.insert(
                            name,
                            LazyTensor {
                                shape,
                                quantized,
                                read,
                                rows,
                                map,
                            },
                        );
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
            lazy,
            dtype,
            map_dense: true,
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
            lazy: HashMap::new(),
            dtype,
            map_dense: false,
            source,
        }
    }

    /// Tensors read from one file on request (GGUF); dense ones become `dtype` when read.
    pub fn from_lazy(lazy: HashMap<String, LazyTensor>, dtype: DType, source: PathBuf) -> Self {
        Self {
            tensors: HashMap::new(),
            lazy,
            dtype,
            map_dense: true,
            source,
        }
    }

    /// Every matrix copied into memory, none read in place from its file: for training, whose
    /// products track gradients through their input, which candle's matmul does on a tensor
    /// (a mapped weight would be copied again for every product).
    pub fn copied(mut self) -> Self {
        self.map_dense = false;
        self
    }

    /// The matrix `name` read in place from its file (see `mapped.rs`), where it can be: it
    /// is stored in the compute dtype, in place (not reordered), and mapping is on; checked to
    /// have `shape` and to hold no NaN or infinity. None: copy it.
    fn mapped(&self, name: &str, shape: &[usize]) -> Result<Option<MappedMatrix>> {
        // A tensor in memory (a merged adapter's) wins over the file's, as in `get`.
        if !self.map_dense || self.tensors.contains_key(name) {
            return Ok(None);
        }
        let Some(lazy) = self.lazy.get(name) else {
            return Ok(None);
        };
        let Some(map) = lazy.map.as_ref().filter(|m| m.dtype() == self.dtype) else {
            return Ok(None);
        };
        self.check_shape(name, &lazy.shape, shape)?;
        // The map's own header reading must agree with the reader's (the file was opened
        // twice): where it does not, the tensor is copied through the checked reader.
        if [map.dims().0, map.dims().1] != shape {
            return Ok(None);
        }
        Ok(Some(map.clone().checked()?))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name) || self.lazy.contains_key(name)
    }

    /// Whether `name` is stored block-quantized (a GGUF tensor).
    pub fn is_quantized(&self, name: &str) -> bool {
        self.lazy.get(name).is_some_and(|l| l.quantized)
    }

    /// The tensor `name` as a dense tensor of the compute dtype, checked to have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = match (self.tensors.get(name), self.lazy.get(name)) {
            (Some(t), _) => t.clone(),
            (None, Some(lazy)) => {
                self.check_shape(name, &lazy.shape, shape)?;
                match (lazy.read)()? {
                    Stored::Dense(t) => t.to_dtype(self.dtype)?,
                    Stored::Quantized(q) => q.dequantize(&q.device())?.to_dtype(self.dtype)?,
                }
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

    /// The block-quantized tensor `name` as stored, read now; None where it is not quantized.
    fn stored_quantized(&self, name: &str, shape: &[usize]) -> Result<Option<Arc<QTensor>>> {
        let Some(lazy) = self.lazy.get(name).filter(|l| l.quantized) else {
            return Ok(None);
        };
        self.check_shape(name, &lazy.shape, shape)?;
        match (lazy.read)()? {
            Stored::Quantized(q) => Ok(Some(Arc::new(q))),
            Stored::Dense(_) => Ok(None),
        }
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
        let shape = [out_dim, in_dim];
        let (weight, asked) = match self.stored_quantized(&name, &shape)? {
            Some(q) => (LinearWeight::Quantized(q), None),
            None => match self.quantized_from_file(&name, &shape, quantize)? {
                Some(q) => (LinearWeight::Quantized(q), quantize),
                None => match self.mapped_unless(quantize, &name, &shape)? {
                    Some(m) => (LinearWeight::Mapped(m), None),
                    None => self.weight_from(&name, &self.get(&name, &shape)?, quantize)?,
                },
            },
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
        let weight = match self.stored_quantized(&name, &[total, in_dim])? {
            Some(q) => LinearWeight::Quantized(Arc::new(slice_rows(&q, start, rows)?)),
            None if let Some(m) = self
                .mapped_unless(quantize, &name, &[total, in_dim])?
                .and_then(|m| m.row_range(start, rows)) =>
            {
                LinearWeight::Mapped(m)
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

    /// The tied output layer over the embedding `{prefix}.weight` of `shape`, and the table
    /// the lookups read: the block-quantized matrix the layer was made from (stored so, or
    /// quantized at load), else the dense embedding.
    pub fn tied_output(
        &self,
        prefix: &str,
        shape: &[usize],
        quantize: Option<GgmlDType>,
    ) -> Result<(Linear, Table)> {
        let name = format!("{prefix}.weight");
        if let Some(q) = self.stored_quantized(&name, shape)? {
            let layer = Linear::new(LinearWeight::Quantized(q.clone()), None)?;
            return Ok((layer, Table::Blocks(q)));
        }
        if let Some(q) = self.quantized_from_file(&name, shape, quantize)? {
            let layer = Linear::new(LinearWeight::Quantized(q.clone()), None)?;
            return Ok((layer.asked_for(quantize), Table::Blocks(q)));
        }
        if let Some(m) = self.mapped_unless(quantize, &name, shape)? {
            // One map for both: the lookups and the output layer read the same pages.
            let layer = Linear::new(LinearWeight::Mapped(m.clone()), None)?;
            return Ok((layer, Table::Mapped(m)));
        }
        let dense = self.get(&name, shape)?;
        let (weight, asked) = self.weight_from(&name, &dense, quantize)?;
        let table = match &weight {
            LinearWeight::Quantized(q) => {
                // The dense embedding (f32 at a block --dtype: 113 MiB at vocabulary 49152 x
                // 576) goes before the layer packs its blocks, not after: a smaller load peak.
                drop(dense);
                Table::Blocks(q.clone())
            }
            LinearWeight::Dense(_) | LinearWeight::Mapped(_) => Table::Dense(dense),
        };
        Ok((Linear::new(weight, None)?.asked_for(asked), table))
    }

    /// The lookup table of the embedding `name`: its blocks where the file stores it
    /// quantized, else the dense tensor.
    pub fn lookup_table(&self, name: &str, shape: &[usize]) -> Result<Table> {
        if let Some(q) = self.stored_quantized(name, shape)? {
            return Ok(Table::Blocks(q));
        }
        Ok(match self.mapped(name, shape)? {
            Some(m) => Table::Mapped(m),
            None => Table::Dense(self.get(name, shape)?),
        })
    }

    /// `mapped`, where nothing is to be quantized at load.
    fn mapped_unless(
        &self,
        quantize: Option<GgmlDType>,
        name: &str,
        shape: &[usize],
    ) -> Result<Option<MappedMatrix>> {
        match quantize {
            Some(_) => Ok(None),
            None => self.mapped(name, shape),
        }
    }

    /// The dense matrix `name` quantized to `format` (`--dtype`) a part of rows at a time as
    /// its file gives them (safetensors), so the whole matrix is never held in f32: an
    /// embedding of 49152 x 576 would be 113 MiB at the load's peak. None where the file
    /// cannot give rows, nothing is to be quantized, or the rows fit no block format
    /// (`fitting_format`: those stay dense, read whole).
    fn quantized_from_file(
        &self,
        name: &str,
        shape: &[usize],
        quantize: Option<GgmlDType>,
    ) -> Result<Option<Arc<QTensor>>> {
        let (Some(format), Some(lazy)) = (quantize, self.lazy.get(name)) else {
            return Ok(None);
        };
        let (Some(read_rows), [rows, cols]) = (&lazy.rows, shape) else {
            return Ok(None);
        };
        self.check_shape(name, &lazy.shape, shape)?;
        let Some(format) = fitting_format(format, *cols) else {
            return Ok(None);
        };
        let q = quantize_parts(*rows, *cols, format, read_rows)?;
        Ok(Some(Arc::new(q)))
    }

    /// The compute dtype of dense tensors.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The weight, and the format it was asked to take at load if it was quantized at load.
    fn weight_from(
        &self,
        name: &str,
        dense: &Tensor,
        quantize: Option<GgmlDType>,
    ) -> Result<(LinearWeight, Option<GgmlDType>)> {
        let stored = match self.is_quantized(name) {
            true => self.stored_quantized(name, dense.dims())?,
            false => None,
        };
        Ok(match (stored, quantize) {
            (Some(q), _) => (LinearWeight::Quantized(q), None),
            (None, Some(format)) => (LinearWeight::quantize(dense, format)?, Some(format)),
            (None, None) => (LinearWeight::Dense(dense.clone()), None),
        })
    }

    /// The dense tensors' names.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        let dense = self.lazy.iter().filter(|(_, l)| !l.quantized);
        self.tensors.keys().chain(dense.map(|(name, _)| name))
    }

    /// Every tensor's name, dense and quantized.
    pub fn all_names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys().chain(self.lazy.keys())
    }

    /// Every dense tensor, in the compute dtype (all read now: training, adapters).
    pub fn into_tensors(self) -> Result<HashMap<String, Tensor>> {
        let mut tensors = self.tensors;
        for (name, lazy) in self.lazy {
            if let Stored::Dense(t) = (lazy.read)()? {
                tensors.insert(name, t.to_dtype(self.dtype)?);
            }
        }
        Ok(tensors)
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
    /// Where its values start in the file, in bytes (safetensors; None for a pickle, whose
    /// tensors are never read in place).
    pub offset: Option<u64>,
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
                                offset: None,
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
            // The values follow the 8-byte length and the header.
            offset: (8 + len).checked_add(info.data_offsets.0 as u64),
        })
        .collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensors)
}

/// A safetensors file mapped for reading.
fn map_safetensors(file: &Path) -> Result<MmapedSafetensors> {
    // SAFETY: a memory map is sound while no one changes the file under it. The map is
    // read-only and lives as long as the `Weights` (the model's load): every tensor is copied
    // out (`load` then `to_dtype`) when its layer is built, so only a writer racing the load
    // could break it, a risk every mmap-based loader accepts. A file truncated under the map
    // would fault (SIGBUS) on a read past its new end; the map is gone once the model is built.
    unsafe { MmapedSafetensors::new(file) }.map_err(|e| weights_error(file, e))
}

/// The 2-D f32, f16 and bf16 tensors of safetensors file `file` that can be read in place,
/// by name (see `MappedMatrix::new`: one whose start is misaligned is left out).
fn matrices_in_place(file: &Path) -> HashMap<String, MappedMatrix> {
    // Where the file cannot be mapped again (a 32-bit address space), its tensors are copied.
    let Ok(map) = FileMap::open(file) else {
        return HashMap::new();
    };
    // candle's reader accepted this header already; should this crate's version not, the
    // tensors are copied through candle's as before.
    let Ok((header_len, meta)) = safetensors::SafeTensors::read_metadata(map.bytes()) else {
        return HashMap::new();
    };
    // The data follows the 8-byte length and the header.
    let data_start = 8 + header_len;
    meta.tensors()
        .into_iter()
        .filter_map(|(name, info)| {
            let dtype = match info.dtype {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::F16 => DType::F16,
                safetensors::Dtype::BF16 => DType::BF16,
                _ => return None,
            };
            let [rows, cols] = *info.shape.as_slice() else {
                return None;
            };
            let offset = data_start.checked_add(info.data_offsets.0)?;
            let matrix = MappedMatrix::new(&map, &name, offset, rows, cols, dtype)?;
            Some((name, matrix))
        })
        .collect()
}

/// Reads tensor `name` of a mapped safetensors file: checked for NaN and infinity, copied out
/// in its stored dtype, and its pages of the map released (see `release_pages`).
fn safetensors_reader(
    file: &Path,
    st: &Arc<MmapedSafetensors>,
    name: &str,
    device: &Device,
) -> ReadTensor {
    let (file, st, name, device) = (
        file.to_path_buf(),
        st.clone(),
        name.to_string(),
        device.clone(),
    );
    Box::new(move || {
        let view = st.get(&name).map_err(|e| weights_error(&file, e))?;
        let stored = DType::try_from(view.dtype()).ok();
        if let Some(t) =
            copy_releasing(stored, view.shape(), view.data(), 0, &file, &name, &device)?
        {
            return Ok(Stored::Dense(t));
        }
        // Other dtypes (integers, f64): candle's reader, its pages released afterwards.
        if let Ok(stored) = DType::try_from(view.dtype())
            && let Some(i) = preflight::first_non_finite(view.data(), stored)
        {
            return Err(preflight::non_finite_error(&file, &name, i));
        }
        let t = st
            .load(&name, &device)
            .map_err(|e| weights_error(&file, e))?;
        release_pages(view.data());
        Ok(Stored::Dense(t))
    })
}

/// Rows of a 2-D f32, f16 or bf16 tensor of a mapped safetensors file, read on request as
/// `safetensors_reader` reads the whole (checked, pages released); None for other tensors.
fn safetensors_rows(
    file: &Path,
    st: &Arc<MmapedSafetensors>,
    name: &str,
    device: &Device,
) -> Option<ReadRows> {
    let view = st.get(name).ok()?;
    let stored = DType::try_from(view.dtype()).ok()?;
    let [_, cols] = *view.shape() else {
        return None;
    };
    if !matches!(stored, DType::F32 | DType::F16 | DType::BF16) {
        return None;
    }
    let (file, st, name, device) = (
        file.to_path_buf(),
        st.clone(),
        name.to_string(),
        device.clone(),
    );
    let row_bytes = cols * stored.size_in_bytes();
    Some(Box::new(move |first, count| {
        let view = st.get(&name).map_err(|e| weights_error(&file, e))?;
        let part = view
            .data()
            .get(first * row_bytes..(first + count) * row_bytes)
            .ok_or_else(|| {
                EngineError::invalid(&file, format!("tensor '{name}' has no rows {first}.."))
            })?;
        let values = Some(stored);
        copy_releasing(
            values,
            &[count, cols],
            part,
            first * cols,
            &file,
            &name,
            &device,
        )?
        .ok_or_else(|| EngineError::invalid(&file, format!("tensor '{name}' is not a float")))
    }))
}

/// Bytes copied out of a map per step of `copy_releasing` (a multiple of every dtype's width).
const COPY_CHUNK: usize = 4 << 20;

/// An f32, f16 or bf16 tensor copied out of its map in its stored dtype, a few MiB at a time,
/// each piece checked for NaN and infinity and its pages released right after it is copied:
/// the file's pages of a tensor as large as an embedding (113 MiB in f32 for the 135M shape)
/// never sit in memory next to the whole copy. None for other dtypes.
fn copy_releasing(
    stored: Option<DType>,
    shape: &[usize],
    data: &[u8],
    offset: usize,
    file: &Path,
    name: &str,
    device: &Device,
) -> Result<Option<Tensor>> {
    let t = match stored {
        Some(DType::F32) => {
            let read = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let values = copy_chunks(data, 4, DType::F32, read, offset, file, name)?;
            Tensor::from_vec(values, shape, device)?
        }
        Some(DType::F16) => {
            let read = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]);
            let values = copy_chunks(data, 2, DType::F16, read, offset, file, name)?;
            Tensor::from_vec(values, shape, device)?
        }
        Some(DType::BF16) => {
            let read = |b: &[u8]| half::bf16::from_le_bytes([b[0], b[1]]);
            let values = copy_chunks(data, 2, DType::BF16, read, offset, file, name)?;
            Tensor::from_vec(values, shape, device)?
        }
        _ => return Ok(None),
    };
    Ok(Some(t))
}

/// The values of `data` (`width` bytes each), read chunk by chunk (see `copy_releasing`);
/// `offset` is the index of its first value in the whole tensor, for messages.
fn copy_chunks<T>(
    data: &[u8],
    width: usize,
    dtype: DType,
    read: impl Fn(&[u8]) -> T,
    offset: usize,
    file: &Path,
    name: &str,
) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(data.len() / width);
    for (c, chunk) in data.chunks(COPY_CHUNK).enumerate() {
        if let Some(i) = preflight::first_non_finite(chunk, dtype) {
            return Err(preflight::non_finite_error(
                file,
                name,
                offset + c * COPY_CHUNK / width + i,
            ));
        }
        out.extend(chunk.chunks_exact(width).map(&read));
        release_pages(chunk);
    }
    Ok(out)
}

/// Drop this process's copies of the mapped file pages wholly inside `data` once a tensor was
/// copied out of them: touched pages of a map count as resident memory until unmapped, so
/// without this a model's whole file would sit next to its converted copy until the load ends.
/// The pages stay in the kernel's file cache; reading them again faults them back in.
fn release_pages(data: &[u8]) {
    // SAFETY: sysconf only reads a system constant.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let start = data.as_ptr() as usize;
    let first = start.next_multiple_of(page.max(1));
    let last = (start + data.len()) / page.max(1) * page.max(1);
    if last > first {
        // SAFETY: [first, last) lies inside `data`, part of a read-only map of a file
        // (`map_safetensors`). MADV_DONTNEED on a file map drops this process's page table
        // entries only: the next read faults the same bytes back in from the file, so no value
        // behind any reference changes. The result is advisory; a failure only keeps the pages.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_DONTNEED,
            );
        }
    }
}

/// Hand the heap memory freed while a model was built back to the system. The load frees many
/// converted-from copies of a few MiB each; glibc keeps such freed blocks for reuse (after the
/// first large free it serves blocks up to 32 MiB from its heap rather than from fresh maps),
/// and they stayed resident: ~40 MiB per 135M model, measured with `bench`'s memory line.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas; it touches
    // no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// While a model loads, blocks of 1 MiB and more come from fresh maps of their own, so that
/// freeing one returns it to the system at once. glibc's default serves such blocks from its
/// heap after the first large free, and the load's short-lived copies (a layer's f32 weight,
/// a quantizer's part, 1-5 MiB each) then sit below long-lived packed weights: the heap could
/// not shrink, and `malloc_trim` gave little back. Measured on the 135M shape, base + 2 ARMs
/// quantized to q8_0 at load: resident after the load 618 -> 453 MiB, load peak 749 -> 587.
/// Dropping the guard sets 32 MiB, the most glibc's own adjustment would reach, so decoding's
/// allocations (a batch's logits) keep coming from the heap as before; setting a threshold
/// turns glibc's adjustment off for good, which at that value changes nothing measurable.
pub struct LoadAllocations(());

impl LoadAllocations {
    pub fn begin() -> Self {
        set_mmap_threshold(1 << 20);
        Self(())
    }
}

impl Drop for LoadAllocations {
    fn drop(&mut self) {
        set_mmap_threshold(32 << 20);
        // Twice the map threshold, as glibc's own adjustment sets it. Setting a threshold
        // leaves the trim threshold at its 128 KiB start, and then every prompt's freed
        // buffers at the top of a thread's heap went back to the system and were faulted in
        // again by the next product: page faults were 8% of a 64-token prefill.
        set_allocator_option(M_TRIM_THRESHOLD, 64 << 20);
    }
}

fn set_mmap_threshold(bytes: i32) {
    set_allocator_option(M_MMAP_THRESHOLD, bytes);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
use libc::{M_MMAP_THRESHOLD, M_TRIM_THRESHOLD};
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const M_MMAP_THRESHOLD: i32 = 0;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const M_TRIM_THRESHOLD: i32 = 0;

fn set_allocator_option(_option: i32, _value: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tuning parameter of the allocator, under its own lock;
    // live allocations are untouched.
    unsafe {
        libc::mallopt(_option, _value);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder with one model.safetensors holding `tensors`.
    fn folder(tensors: &[(&str, Tensor)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let map: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        candle_core::safetensors::save(&map, dir.path().join("model.safetensors")).unwrap();
        dir
    }

    /// Matrices stored in the compute dtype are read in place, shared by a tied output layer
    /// and its lookups; another dtype, a quantizing --dtype or training copies them; the
    /// products are the same either way.
    #[test]
    fn matrices_in_the_compute_dtype_are_read_in_place_and_others_copied() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (40, 32), &dev).unwrap();
        let embed = Tensor::randn(0f32, 1.0, (50, 32), &dev).unwrap();
        let norm = Tensor::ones(32, DType::F32, &dev).unwrap();
        let dir = folder(&[
            ("w.weight", w.clone()),
            ("e.weight", embed.clone()),
            ("n", norm),
        ]);
        let x = Tensor::randn(0f32, 1.0, (3, 32), &dev).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap();
        let close = |got: &Tensor| {
            let diff = (got - &want).unwrap().abs().unwrap().max_all().unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
        };

        let weights = Weights::load(dir.path(), DType::F32, &dev).unwrap();
        let layer = weights.linear("w", 40, 32, false, None).unwrap();
        assert!(layer.is_mapped());
        close(&layer.forward(&x).unwrap());
        let (head, table) = weights.tied_output("e", &[50, 32], None).unwrap();
        assert!(head.is_mapped() && matches!(table, Table::Mapped(_)));
        let Table::Mapped(table) = table else {
            unreachable!()
        };
        assert_eq!(
            table.to_tensor(&dev).unwrap().to_vec2::<f32>().unwrap(),
            embed.to_vec2::<f32>().unwrap()
        );
        assert!(matches!(
            weights.lookup_table("e.weight", &[50, 32]).unwrap(),
            Table::Mapped(_)
        ));
        // A part of the rows of a fused matrix is read in place too.
        let part = weights.linear_part("w", 8, 16, 40, 32, None).unwrap();
        assert!(part.is_mapped());
        assert_eq!(part.dims().unwrap(), (16, 32));
        // Shapes are still checked.
        assert!(weights.linear("w", 41, 32, false, None).is_err());

        let quantized = weights
            .linear("w", 40, 32, false, Some(GgmlDType::Q8_0))
            .unwrap();
        assert!(!quantized.is_mapped());
        let half = Weights::load(dir.path(), DType::F16, &dev).unwrap();
        let layer = half.linear("w", 40, 32, false, None).unwrap();
        assert!(!layer.is_mapped());
        assert_eq!(layer.format_name(), "f16");
        let training = Weights::load(dir.path(), DType::F32, &dev)
            .unwrap()
            .copied();
        let layer = training.linear("w", 40, 32, false, None).unwrap();
        assert!(!layer.is_mapped());
        close(&layer.forward(&x).unwrap());
    }

    /// Half-precision files at their own dtype are read in place with their values, and a
    /// NaN in one is the loader's error naming the file and tensor.
    #[test]
    fn half_precision_matrices_are_read_in_place_at_their_dtype() {
        let dev = Device::Cpu;
        for dtype in [DType::F16, DType::BF16] {
            let w = Tensor::randn(0f32, 1.0, (40, 32), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let dir = folder(&[("w.weight", w.clone())]);
            let weights = Weights::load(dir.path(), dtype, &dev).unwrap();
            let layer = weights.linear("w", 40, 32, false, None).unwrap();
            assert!(layer.is_mapped(), "{dtype:?}");
            let as_f32 = |t: Tensor| t.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(as_f32(layer.dense("test").unwrap()), as_f32(w.clone()));
            // Another dtype converts: a copy.
            let wide = Weights::load(dir.path(), DType::F32, &dev).unwrap();
            assert!(!wide.linear("w", 40, 32, false, None).unwrap().is_mapped());

            let mut values = w.flatten_all().unwrap().to_dtype(DType::F32).unwrap();
            values = values
                .to_vec1::<f32>()
                .map(|mut v| {
                    v[77] = f32::NAN;
                    Tensor::from_vec(v, (40, 32), &dev).unwrap()
                })
                .unwrap();
            let bad = folder(&[("w.weight", values.to_dtype(dtype).unwrap())]);
            let weights = Weights::load(bad.path(), dtype, &dev).unwrap();
            let err = weights
                .linear("w", 40, 32, false, None)
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains("model.safetensors")
                    && err.contains("'w.weight'")
                    && err.contains("element 77"),
                "{err}"
            );
        }
    }

    /// safetensors does not promise aligned data: a header whose length puts an f32 tensor at
    /// an odd address loads by copying, with the same values.
    #[test]
    fn a_misaligned_matrix_is_copied_not_mapped() {
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let mut header =
            r#"{"w.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]}}"#.to_string();
        // 8 + header length = 2 (mod 4): every f32 starts two bytes off its alignment.
        while (8 + header.len()) % 4 != 2 {
            header.push(' ');
        }
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
        let weights = Weights::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
        let layer = weights.linear("w", 3, 4, false, None).unwrap();
        assert!(!layer.is_mapped());
        let x = Tensor::eye(4, DType::F32, &Device::Cpu).unwrap();
        let got = layer.forward(&x).unwrap().t().unwrap();
        let flat = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat, values);
    }

    #[test]
    fn a_matrix_quantized_part_by_part_from_its_file_equals_it_quantized_whole() {
        // 5000 rows cross QUANTIZE_ROWS twice; f16 storage is widened part by part.
        let device = Device::Cpu;
        let values: Vec<f32> = (0..5000 * 64)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 37.0)
            .collect();
        let dense = Tensor::from_vec(values, (5000, 64), &device).unwrap();
        for stored in [DType::F32, DType::F16] {
            let dir = folder(&[("w", dense.to_dtype(stored).unwrap())]);
            let weights = Weights::load(dir.path(), DType::F32, &device).unwrap();
            for format in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
                let streamed = weights
                    .quantized_from_file("w", &[5000, 64], Some(format))
                    .unwrap()
                    .unwrap();
                let whole =
                    match LinearWeight::quantize(&weights.get("w", &[5000, 64]).unwrap(), format)
                        .unwrap()
                    {
                        LinearWeight::Quantized(q) => q,
                        _ => panic!("64 columns fit {format:?}"),
                    };
                assert_eq!(
                    streamed.data().unwrap(),
                    whole.data().unwrap(),
                    "{stored:?} {format:?}"
                );
                assert_eq!(streamed.shape().dims(), &[5000, 64]);
            }
            // Rows that fit no block format (and no --dtype) are not streamed.
            assert!(
                weights
                    .quantized_from_file("w", &[5000, 64], None)
                    .unwrap()
                    .is_none()
            );
        }
    }

    #[test]
    fn a_non_finite_value_in_a_later_part_is_named_at_its_place_in_the_tensor() {
        let device = Device::Cpu;
        let mut values = vec![0.5f32; 3000 * 32];
        values[2500 * 32 + 3] = f32::NAN;
        let dense = Tensor::from_vec(values, (3000, 32), &device).unwrap();
        let dir = folder(&[("w", dense)]);
        let weights = Weights::load(dir.path(), DType::F32, &device).unwrap();
        let err = weights
            .quantized_from_file("w", &[3000, 32], Some(GgmlDType::Q8_0))
            .unwrap_err()
            .to_string();
        let whole = weights.get("w", &[3000, 32]).unwrap_err().to_string();
        assert_eq!(
            err, whole,
            "the streamed read names the same value as the whole read"
        );
        assert!(err.contains(&(2500 * 32 + 3).to_string()), "{err}");
    }
}
