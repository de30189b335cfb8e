//! One linear layer for every weight format: dense matrices (f32, f16, bf16; candle tensors or
//! read in place from their file, `mapped.rs`) through `gemv.rs` and `gemm.rs` (candle's
//! matmul where gradients are tracked), block-quantized ones (read from GGUF or quantized at
//! load) through `qgemv`'s packed tiles where this CPU has their kernels (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, Q4_K, Q5_K and Q6_K with AVX-512 VNNI or AVX2), else candle's `QMatMul` (the
//! other GGUF formats, or CPUs without those kernels); both multiply f32 activations with the
//! blocks directly. The decoder builds every projection from this type, so one model code runs
//! all formats.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::qgemv::{self, PackedFormat, PackedWeight, QuantizedRows};
use crate::engine::kernels::{gemm, gemv};
use crate::engine::model::dense_rows::DenseRows;
use crate::engine::model::mapped::MappedMatrix;

/// Which block format the projections and the output layer are quantized to at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantPlan {
    pub projections: GgmlDType,
    pub lm_head: GgmlDType,
}

/// The weight of a linear layer, (out, in) as Hugging Face stores it.
#[derive(Clone)]
pub enum LinearWeight {
    Dense(Tensor),
    /// Read in place from its file (`mapped.rs`).
    Mapped(MappedMatrix),
    Quantized(Arc<QTensor>),
}

/// The format a weight with rows of `in_dim` values gets when `format` is asked for: `format`
/// itself where the rows split into its blocks, else llama.cpp's fallback (its quantizer's
/// `llama_tensor_get_type`: a K-quant whose 256-value blocks do not fit becomes Q4_K -> Q5_0,
/// Q5_K -> Q5_1, Q6_K -> Q8_0), and f16 (None) where even that does not fit. llama.cpp refuses
/// the 32-value formats on rows that are not a multiple of 32; genarm keeps those in f16 too.
pub fn fitting_format(format: GgmlDType, in_dim: usize) -> Option<GgmlDType> {
    const FALLBACKS: &[(GgmlDType, GgmlDType)] = &[
        (GgmlDType::Q4K, GgmlDType::Q5_0),
        (GgmlDType::Q5K, GgmlDType::Q5_1),
        (GgmlDType::Q6K, GgmlDType::Q8_0),
    ];
    let fits = |f: GgmlDType| in_dim.is_multiple_of(f.block_size());
    if fits(format) {
        return Some(format);
    }
    FALLBACKS
        .iter()
        .find(|(from, _)| *from == format)
        .map(|&(_, to)| to)
        .filter(|&to| fits(to))
}

impl LinearWeight {
    /// Quantize a dense weight to `format`, or to llama.cpp's fallback where its rows do not
    /// split into whole blocks of that format (see `fitting_format`; f16 as the last resort).
    pub fn quantize(dense: &Tensor, format: GgmlDType) -> Result<Self> {
        let (_, in_dim) = dense.dims2()?;
        let Some(format) = fitting_format(format, in_dim) else {
            return Ok(Self::Dense(dense.to_dtype(DType::F16)?));
        };
        let (rows, cols) = dense.dims2()?;
        let q = quantize_parts(rows, cols, format, |first, count| {
            Ok(dense.narrow(0, first, count)?)
        })?;
        Ok(Self::Quantized(Arc::new(q)))
    }
}

/// A `rows` x `cols` matrix quantized to `format` (whose blocks split `cols`), its rows taken
/// [`QUANTIZE_ROWS`] at a time from `part(first, count)` (any float dtype): blocks never cross
/// rows, so quantizing row ranges and joining their bytes gives the blocks of the whole matrix.
pub fn quantize_parts(
    rows: usize,
    cols: usize,
    format: GgmlDType,
    part: impl Fn(usize, usize) -> Result<Tensor>,
) -> Result<QTensor> {
    let mut bytes = Vec::new();
    let mut device = Device::Cpu;
    for first in (0..rows).step_by(QUANTIZE_ROWS) {
        let count = QUANTIZE_ROWS.min(rows - first);
        let values = part(first, count)?.to_dtype(DType::F32)?;
        device = values.device().clone();
        let blocks = quantize_whole(&values, format)?;
        if rows <= QUANTIZE_ROWS {
            return Ok(blocks);
        }
        bytes.extend_from_slice(&blocks.data()?);
    }
    let storage = QStorage::from_data(Cow::Owned(bytes), &device, format)?;
    Ok(QTensor::new(storage, (rows, cols))?)
}

/// Rows quantized per call of candle's quantizer, which copies its whole input into a vector
/// first: a 49152-row embedding at once held a second f32 copy of itself (113 MiB for the
/// 135M shape) at the peak of the load.
const QUANTIZE_ROWS: usize = 2048;

/// `dense` (f32) quantized by candle in one call.
fn quantize_whole(dense: &Tensor, format: GgmlDType) -> Result<QTensor> {
    // candle quantizes the tensor's storage from its start, whatever the view's offset: a view
    // into a larger buffer (a row range, of Phi-3's fused qkv_proj or of `quantize`'s parts)
    // is copied first.
    let dense = if dense.layout().start_offset() == 0 && dense.is_contiguous() {
        dense.clone()
    } else {
        dense.force_contiguous()?
    };
    Ok(QTensor::quantize(&dense, format)?)
}

/// y = x·Wᵀ + b.
///
/// A quantized weight is cut into row shards, one per worker of rayon's pool, and a product
/// runs its shards in parallel there (each through `QMatMul` on one thread). candle would
/// otherwise split the product over its own worker pool, whose threads spin-wait at a barrier:
/// on a shared machine a descheduled worker keeps the caller spinning, and decoding fell to a
/// tenth of its speed (see docs/performance.md, "Where the time goes"). `main` turns
/// candle's pool off (`CANDLE_NUM_THREADS=1`) unless the user set it.
#[derive(Clone)]
pub struct Linear {
    kernel: Kernel,
    bias: Option<Tensor>,
    /// The format asked for at load (`--dtype`), where the weight was quantized at load: it
    /// differs from the one stored where the rows did not fit its blocks.
    asked: Option<GgmlDType>,
}

#[derive(Clone)]
enum Kernel {
    Dense(Tensor),
    /// A dense matrix read in place from its file; the same kernels as `Dense`.
    Mapped(MappedMatrix),
    Quantized {
        shards: Vec<QMatMul>,
        /// Rows of each shard.
        heights: Vec<usize>,
        dims: (usize, usize),
        format: GgmlDType,
        /// The whole weight, kept only where it is not sharded (one thread).
        whole: Option<Arc<QTensor>>,
    },
    /// A format `qgemv` packs, in its tiles, for every number of rows.
    Packed {
        weight: Arc<PackedWeight>,
        format: GgmlDType,
    },
}

/// Shard heights are multiples of this, so each shard keeps candle's packed layouts (rows are
/// packed in groups of 4 or 8).
const SHARD_ROW_MULTIPLE: usize = 32;

impl Linear {
    pub fn new(weight: LinearWeight, bias: Option<Tensor>) -> Result<Self> {
        // Activations are f32 whatever the weights' format (see `Transformer`).
        let bias = bias.map(|b| b.to_dtype(DType::F32)).transpose()?;
        let kernel = match weight {
            LinearWeight::Dense(t) => Kernel::Dense(t),
            LinearWeight::Mapped(m) => Kernel::Mapped(m),
            LinearWeight::Quantized(q) if packable(&q) => Kernel::Packed {
                weight: Arc::new(pack(&q)?),
                format: q.dtype(),
            },
            LinearWeight::Quantized(q) => {
                let dims = q.shape().dims2()?;
                let format = q.dtype();
                let parts = shard_rows(&q, rayon::current_num_threads())?;
                let whole = (parts.len() == 1).then(|| q.clone());
                let heights = parts
                    .iter()
                    .map(|p| Ok(p.shape().dims2()?.0))
                    .collect::<Result<_>>()?;
                let shards = parts
                    .into_iter()
                    .map(QMatMul::from_arc)
                    .collect::<candle_core::Result<_>>()?;
                Kernel::Quantized {
                    shards,
                    heights,
                    dims,
                    format,
                    whole,
                }
            }
        };
        Ok(Self {
            kernel,
            bias,
            asked: None,
        })
    }

    /// Record the format asked for at load (None: stored as read, or dense by choice).
    /// The weight in `qgemv`'s tiles, where it is packed (a tied embedding reads its rows).
    pub fn packed(&self) -> Option<Arc<PackedWeight>> {
        match &self.kernel {
            Kernel::Packed { weight, .. } => Some(weight.clone()),
            _ => None,
        }
    }

    pub fn asked_for(mut self, format: Option<GgmlDType>) -> Self {
        self.asked = format;
        self
    }

    /// (asked, stored) format names where the weight was quantized at load to another format
    /// than the one asked for (its rows did not split into the asked format's blocks).
    pub fn fallback(&self) -> Option<(String, String)> {
        let asked = format_name_of(self.asked?);
        let stored = self.format_name();
        (asked != stored).then_some((asked, stored))
    }

    /// (out, in).
    pub fn dims(&self) -> Result<(usize, usize)> {
        Ok(match &self.kernel {
            Kernel::Dense(t) => t.dims2()?,
            Kernel::Mapped(m) => m.dims(),
            Kernel::Quantized { dims, .. } => *dims,
            Kernel::Packed { weight, .. } => weight.dims(),
        })
    }

    /// The dense weight (a copy where it is mapped), or an error naming what needs one
    /// (quantized weights cannot be trained or merged with LoRA updates).
    pub fn dense(&self, purpose: &str) -> Result<Tensor> {
        match &self.kernel {
            Kernel::Dense(t) => Ok(t.clone()),
            Kernel::Mapped(m) => m.to_tensor(&Device::Cpu),
            Kernel::Quantized { format, .. } | Kernel::Packed { format, .. } => {
                Err(EngineError::usage(format!(
                    "{purpose} needs dense weights, but this model's are quantized ({format:?})"
                )))
            }
        }
    }

    /// The storage format, for reports, spelled as `--dtype` and llama.cpp spell them ("f32",
    /// "q8_0", "q4_k", ...).
    pub fn format_name(&self) -> String {
        match &self.kernel {
            Kernel::Dense(t) => format!("{:?}", t.dtype()).to_lowercase(),
            Kernel::Mapped(m) => format!("{:?}", m.dtype()).to_lowercase(),
            Kernel::Quantized { format, .. } | Kernel::Packed { format, .. } => {
                format_name_of(*format)
            }
        }
    }

    /// Whether the weight is read in place from its file (`mapped.rs`) rather than held in
    /// memory of its own.
    pub fn is_mapped(&self) -> bool {
        self.mapped().is_some()
    }

    /// The matrix read in place, where the weight is (`is_mapped`).
    pub fn mapped(&self) -> Option<&MappedMatrix> {
        match &self.kernel {
            Kernel::Mapped(m) => Some(m),
            _ => None,
        }
    }

    /// Which kernels multiply with this weight: "genarm" (`qgemv`'s packed tiles), "candle"
    /// (candle's `QMatMul`) or "dense" (`gemv.rs` and candle's matmul).
    pub fn kernel_name(&self) -> &'static str {
        match &self.kernel {
            Kernel::Dense(_) | Kernel::Mapped(_) => "dense",
            Kernel::Quantized { .. } => "candle",
            Kernel::Packed { .. } => "genarm",
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.product(x)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// x·Wᵀ, without the bias.
    fn product(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match &self.kernel {
            Kernel::Dense(w) => match tensor_in_place(x, w)? {
                Some(y) => y,
                None => dense_matmul(x, w)?,
            },
            Kernel::Mapped(w) => match in_place_product(x, w.values(), w.dims())? {
                Some(y) => y,
                // Gradients tracked through x (a LoRA over a mapped base; `train-arm` copies its
                // weights, so no command does this today): candle's matmul, on a copy.
                None => dense_matmul(x, &w.to_tensor(x.device())?)?,
            },
            Kernel::Quantized { shards, whole, .. } => {
                // Quantized kernels take f32 activations; hand back the caller's dtype.
                let dtype = x.dtype();
                let x32 = x.to_dtype(DType::F32)?.contiguous()?;
                let y = match whole {
                    Some(q) => x32.apply_op1_no_bwd(q.as_ref())?,
                    None => {
                        use rayon::prelude::*;
                        let parts: Vec<Tensor> = shards
                            .par_iter()
                            .map(|s| s.forward(&x32))
                            .collect::<candle_core::Result<_>>()?;
                        Tensor::cat(&parts, x32.rank() - 1)?
                    }
                };
                y.to_dtype(dtype)?
            }
            Kernel::Packed { weight, .. } => {
                let (n, k) = weight.dims();
                let xs = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                let m = xs.len() / k.max(1);
                let y = Self::products_shared(&[self], &xs, m)?
                    .pop()
                    .unwrap_or_default();
                let mut dims = x.dims().to_vec();
                if let Some(d) = dims.last_mut() {
                    *d = n;
                }
                Tensor::from_vec(y, dims, x.device())?.to_dtype(x.dtype())?
            }
        })
    }
}

/// A block format spelled as `--dtype` and llama.cpp spell it: candle's "Q4K" is the K-quant
/// llama.cpp calls "q4_k".
pub fn format_name_of(format: GgmlDType) -> String {
    let name = format!("{format:?}").to_lowercase();
    match name.strip_suffix('k') {
        Some(stem) if !stem.contains('_') => format!("{stem}_k"),
        _ => name,
    }
}

/// Whether a quantized weight goes to `qgemv`: a format it packs, on the CPU, where this
/// CPU runs its fast kernels, unless `GENARM_QUANT_KERNEL` asks for candle's kernels: item
/// `candle` for every format, `candle:q4_0,q5_0` for those formats (items are joined with
/// '+', as in `avx2+candle:q5_0`; to compare the kernels, see docs/performance.md).
fn packable(q: &QTensor) -> bool {
    q.device().is_cpu() && packs_here(q.dtype())
}

/// Which kernels a CPU weight of block format `format` runs on in this process, as
/// `Linear::kernel_name` says it: "genarm" (`qgemv`'s packed tiles) or "candle" (`QMatMul`).
/// `genarm inspect` reports it without building the layer.
pub fn quant_kernel_name(format: GgmlDType) -> &'static str {
    if packs_here(format) {
        "genarm"
    } else {
        "candle"
    }
}

/// [`packable`] for a format: `qgemv` packs it, this CPU runs the fast kernels, and
/// `GENARM_QUANT_KERNEL` does not send it to candle.
fn packs_here(format: GgmlDType) -> bool {
    let asked = std::env::var("GENARM_QUANT_KERNEL").unwrap_or_default();
    let name = format_name_of(format);
    let to_candle = asked
        .split('+')
        .any(|item| match item.strip_prefix("candle") {
            Some("") => true,
            Some(list) => list.trim_start_matches(':').split(',').any(|f| f == name),
            None => false,
        });
    packed_format(format).is_some() && qgemv::Isa::detect().is_fast() && !to_candle
}

/// The formats `qgemv` packs, by candle's name.
const PACKED: &[(GgmlDType, PackedFormat)] = &[
    (GgmlDType::Q4_0, PackedFormat::Q4_0),
    (GgmlDType::Q4_1, PackedFormat::Q4_1),
    (GgmlDType::Q5_0, PackedFormat::Q5_0),
    (GgmlDType::Q5_1, PackedFormat::Q5_1),
    (GgmlDType::Q8_0, PackedFormat::Q8_0),
    (GgmlDType::Q4K, PackedFormat::Q4K),
    (GgmlDType::Q5K, PackedFormat::Q5K),
    (GgmlDType::Q6K, PackedFormat::Q6K),
];

fn packed_format(format: GgmlDType) -> Option<PackedFormat> {
    PACKED.iter().find(|(f, _)| *f == format).map(|&(_, p)| p)
}

fn pack(q: &QTensor) -> Result<PackedWeight> {
    let (rows, cols) = q.shape().dims2()?;
    let format = packed_format(q.dtype())
        .ok_or_else(|| EngineError::usage(format!("{:?} weights are not packed", q.dtype())))?;
    PackedWeight::from_gguf_blocks(format, &q.data()?, rows, cols)
}

/// Tile ranges for one product's parallel tasks: one per thread for the few rows of a decoding
/// step (more shards only add meetings; measured best), a few per thread for prompts, whose
/// tasks are long enough to balance.
fn tile_shards(tiles: usize, m: usize) -> Vec<std::ops::Range<usize>> {
    let threads = rayon::current_num_threads().max(1);
    let shards = if m <= MAX_GEMV_ROWS {
        threads
    } else {
        threads * 4
    };
    let per_shard = tiles.div_ceil(shards).max(1);
    (0..tiles)
        .step_by(per_shard)
        .map(|first| first..(first + per_shard).min(tiles))
        .collect()
}

/// Copy `part`, m rows of some output columns from `first` on, into `out`, m rows of `n`.
fn scatter_columns(out: &mut [f32], n: usize, first: usize, part: &[f32], m: usize) {
    let width = part.len() / m.max(1);
    for (r, values) in part.chunks_exact(width.max(1)).enumerate() {
        out[r * n + first..][..width].copy_from_slice(values);
    }
}

impl Linear {
    /// y = x·Wᵀ + b on plain slices: `x` holds `m` rows of the input width, the result `m` rows
    /// of the output width. The decoding step of few rows (`transformer/decode.rs`) works on
    /// slices to skip candle's per-op cost; the products are the same kernels as `forward`'s.
    pub fn forward_rows(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        let mut outs = Self::forward_rows_shared(&[self], x, m)?;
        Ok(outs.pop().unwrap_or_default())
    }

    /// `forward_rows` of several layers on the same input (q, k and v; gate and up) as one
    /// parallel job: the row blocks of every layer are scheduled together, so the threads
    /// meet once rather than once per layer. One output per layer, in order.
    pub fn forward_rows_shared(layers: &[&Linear], x: &[f32], m: usize) -> Result<Vec<Vec<f32>>> {
        let mut outs = Self::products_shared(layers, x, m)?;
        for (layer, out) in layers.iter().zip(&mut outs) {
            if let Some(b) = &layer.bias {
                let b = b.to_vec1::<f32>()?;
                for row in out.chunks_exact_mut(b.len().max(1)) {
                    row.iter_mut().zip(&b).for_each(|(y, b)| *y += b);
                }
            }
        }
        Ok(outs)
    }

    /// x·Wᵀ of each layer, without the biases, as one parallel job (see `forward_rows_shared`).
    fn products_shared(layers: &[&Linear], x: &[f32], m: usize) -> Result<Vec<Vec<f32>>> {
        use rayon::prelude::*;
        let dims = layers
            .iter()
            .map(|l| l.dims())
            .collect::<Result<Vec<_>>>()?;
        for &(_, k) in &dims {
            if x.len() != m * k {
                return Err(EngineError::usage(format!(
                    "linear layer of width {k} given {} values for {m} rows",
                    x.len()
                )));
            }
        }
        // Dense weights are read in place: hold their storage for the whole job.
        let storages: Vec<_> = layers
            .iter()
            .map(|l| match &l.kernel {
                Kernel::Dense(w) => Some(w.storage_and_layout()),
                Kernel::Mapped(_) | Kernel::Quantized { .. } | Kernel::Packed { .. } => None,
            })
            .collect();
        let mut tasks = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let (n, k) = dims[i];
            let dense = match (&layer.kernel, &storages[i]) {
                (Kernel::Mapped(m), _) => Some(m.values()),
                (_, Some((storage, layout))) => DenseRows::of(storage, layout),
                _ => None,
            };
            match (&layer.kernel, dense) {
                (_, Some(rows)) => {
                    let height = gemv::block_height(n, k);
                    for first in (0..n).step_by(height) {
                        let count = height.min(n - first);
                        let block = rows.slice(first * k, count * k);
                        tasks.push((i, first, count, Task::Dense(block)));
                    }
                }
                (
                    Kernel::Quantized {
                        shards, heights, ..
                    },
                    None,
                ) => {
                    let mut first = 0;
                    for (shard, &count) in shards.iter().zip(heights) {
                        tasks.push((i, first, count, Task::Shard(shard)));
                        first += count;
                    }
                }
                (Kernel::Packed { weight, .. }, None) => {
                    for tiles in tile_shards(weight.tile_count(), m) {
                        let first = tiles.start * qgemv::TILE_ROWS;
                        let count = (tiles.end * qgemv::TILE_ROWS).min(n) - first;
                        tasks.push((i, first, count, Task::Packed(weight, tiles)));
                    }
                }
                (Kernel::Dense(_) | Kernel::Mapped(_), None) => {
                    tasks.push((i, 0, n, Task::Whole(layer)))
                }
            }
        }
        // The packed layers' activations, quantized once for all of them.
        let formats: Vec<PackedFormat> = layers
            .iter()
            .filter_map(|l| match &l.kernel {
                Kernel::Packed { weight, .. } => Some(weight.format()),
                _ => None,
            })
            .collect();
        let acts = if formats.is_empty() {
            None
        } else {
            let k = dims.first().map_or(0, |d| d.1);
            Some(QuantizedRows::new(x, m, k, &formats)?)
        };
        // candle's kernels take a tensor; the dense ones read the slice, so most decoding steps
        // never build it.
        let needs_tensor = |t: &Task| matches!(t, Task::Shard(_) | Task::Whole(_));
        let x_tensor = if tasks.iter().any(|(.., t)| needs_tensor(t)) {
            let k = dims.first().map_or(0, |d| d.1);
            Some(Tensor::from_slice(x, (m, k), &Device::Cpu)?)
        } else {
            None
        };
        let parts = tasks
            .par_iter()
            .map(|(i, _, count, task)| {
                let inputs = Inputs {
                    x,
                    tensor: x_tensor.as_ref(),
                    quantized: acts.as_ref(),
                };
                task.run(&inputs, m, *count, dims[*i].1)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut outs: Vec<Vec<f32>> = dims.iter().map(|&(n, _)| vec![0f32; m * n]).collect();
        for ((i, first, _, _), part) in tasks.iter().zip(parts) {
            scatter_columns(&mut outs[*i], dims[*i].0, *first, &part, m);
        }
        Ok(outs)
    }
}

/// One piece of a `forward_rows_shared` job; `run` gives its (m, rows) outputs, row-major.
enum Task<'a> {
    Dense(DenseRows<'a>),
    /// Tiles of a packed quantized weight.
    Packed(&'a PackedWeight, std::ops::Range<usize>),
    Shard(&'a QMatMul),
    /// A weight `gemv.rs` cannot read (not on the CPU): the whole product through candle.
    Whole(&'a Linear),
}

/// A job's input in the forms its tasks read: the rows, and where some task needs them, the
/// same rows as a candle tensor and quantized for packed weights.
struct Inputs<'a> {
    x: &'a [f32],
    tensor: Option<&'a Tensor>,
    quantized: Option<&'a QuantizedRows>,
}

impl Task<'_> {
    fn run(&self, inputs: &Inputs, m: usize, rows: usize, k: usize) -> Result<Vec<f32>> {
        let tensor = || {
            inputs
                .tensor
                .ok_or_else(|| EngineError::usage("a candle kernel was given no input tensor"))
        };
        Ok(match self {
            Task::Dense(w) => w.product(inputs.x, m, rows, k),
            Task::Packed(w, tiles) => {
                let acts = inputs.quantized.ok_or_else(|| {
                    EngineError::usage("a packed quantized weight was given no quantized input")
                })?;
                w.product(qgemv::Isa::detect(), acts, tiles.clone())?
            }
            Task::Shard(shard) => shard.forward(tensor()?)?.flatten_all()?.to_vec1::<f32>()?,
            Task::Whole(layer) => layer.product(tensor()?)?.flatten_all()?.to_vec1::<f32>()?,
        })
    }
}

/// Cut a quantized matrix into at most `n` row blocks of whole rows (bytes copied once).
fn shard_rows(q: &Arc<QTensor>, n: usize) -> Result<Vec<Arc<QTensor>>> {
    let (rows, cols) = q.shape().dims2()?;
    let height = rows.div_ceil(n.max(1)).next_multiple_of(SHARD_ROW_MULTIPLE);
    if height >= rows {
        return Ok(vec![q.clone()]);
    }
    let data = q.data()?;
    let row_bytes = data.len() / rows;
    let mut shards = Vec::new();
    for start in (0..rows).step_by(height) {
        let end = (start + height).min(rows);
        let bytes = data[start * row_bytes..end * row_bytes].to_vec();
        let storage = QStorage::from_data(Cow::Owned(bytes), &q.device(), q.dtype())?;
        shards.push(Arc::new(QTensor::new(storage, (end - start, cols))?));
    }
    Ok(shards)
}

/// Up to this many activation rows (one per sequence of a decoding step) go through
/// `gemv::matmul_rows`; more (prompts, sweeps of many settings) through `blocked_product`,
/// which reuses each weight tile across rows.
const MAX_GEMV_ROWS: usize = 8;

/// x (.., in) · wᵀ for a dense tensor weight read in place (`in_place_product`) where it is a
/// contiguous f32/f16/bf16 CPU matrix and tracks no gradient; None: candle's matmul must do
/// it (training).
fn tensor_in_place(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    if w.track_op() {
        return Ok(None);
    }
    let dims = w.dims2()?;
    let (storage, layout) = w.storage_and_layout();
    let Some(rows) = DenseRows::of(&storage, layout) else {
        return Ok(None);
    };
    in_place_product(x, rows, dims)
}

/// x (.., in) · wᵀ, w (n, k) read in place: few rows of x through the row-blocked kernels of
/// `gemv.rs`, more through `blocked_product`. The kernels are outside candle's autograd, so
/// None where x tracks a gradient (training keeps candle's matmul) or is not on the CPU. The
/// result is x's dtype; the products are f32.
fn in_place_product(x: &Tensor, w: DenseRows, (n, k): (usize, usize)) -> Result<Option<Tensor>> {
    let Some(&last) = x.dims().last() else {
        return Ok(None);
    };
    let m = x.elem_count() / k.max(1);
    if last != k || m == 0 || n == 0 || x.track_op() || !x.device().is_cpu() {
        return Ok(None);
    }
    let xs = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let y = if m <= MAX_GEMV_ROWS {
        w.rows_product(&xs, m, n, k)
    } else {
        blocked_product(w, &xs, m, n, k)?
    };
    let mut dims = x.dims().to_vec();
    if let Some(d) = dims.last_mut() {
        *d = n;
    }
    Ok(Some(
        Tensor::from_vec(y, dims, x.device())?.to_dtype(x.dtype())?,
    ))
}

/// Rows of the weight per task of `blocked_product`: a widened f16 block of 256 rows of 1536
/// values is 1.5 MiB, so the scratch stays small next to the weights.
const PRODUCT_BLOCK_ROWS: usize = 256;

/// x (m, k) · wᵀ, (m, n), through `gemm.rs`'s kernels of `width`: x packed once, w's blocks
/// of `height` rows one rayon task each.
fn tiled_product(
    w: DenseRows,
    x: &[f32],
    m: usize,
    n: usize,
    k: usize,
    height: usize,
    width: gemm::Width,
) -> Vec<f32> {
    use rayon::prelude::*;
    let packed = gemm::PackedRows::with_width(x, m, k, width);
    let firsts: Vec<usize> = (0..n).step_by(height.max(1)).collect();
    let parts: Vec<(usize, Vec<f32>)> = firsts
        .par_iter()
        .map(|&first| {
            let count = height.min(n - first);
            let part = w.slice(first * k, count * k);
            (first, part.transposed_product(&packed, count))
        })
        .collect();
    let mut y = vec![0f32; m * n];
    for (first, part) in parts {
        place_transposed(&mut y, n, first, &part, m);
    }
    y
}

/// Write `part`, the (count, m) transposed product of a block of rows from `first` on, into
/// the (m, n) result `y`. Sixteen of the block's rows at a time: each step reads sixteen
/// sequential streams and writes sixteen neighbouring values, where one row at a time wrote
/// with a stride of n and cost as much as the products on 1024-token prompts.
fn place_transposed(y: &mut [f32], n: usize, first: usize, part: &[f32], m: usize) {
    const BAND: usize = 16;
    let count = part.len() / m.max(1);
    for top in (0..count).step_by(BAND) {
        let rows = BAND.min(count - top);
        for i in 0..m {
            let out = &mut y[i * n + first + top..][..rows];
            for (r, value) in out.iter_mut().enumerate() {
                *value = part[(top + r) * m + i];
            }
        }
    }
}

/// x (m, k) · wᵀ, (m, n), for many rows of x (prompts): w is cut into blocks of rows, one
/// rayon task each. Where `gemm.rs` has kernels (AVX-512 or AVX2), every block goes through
/// them, x packed once for all blocks. Elsewhere through candle's f32 gemm, each block widened
/// to f32 first (`DenseRows::widened`): candle's own f16/bf16 gemm converts inside its inner
/// loop and ran prompts at half the speed of f32 weights; widening a block costs one
/// conversion per weight, shared by all rows of x. The tasks are the parallelism: `main` runs
/// candle's gemm on one thread (see `Linear`).
fn blocked_product(w: DenseRows, x: &[f32], m: usize, n: usize, k: usize) -> Result<Vec<f32>> {
    use rayon::prelude::*;
    let per_thread = n.div_ceil(rayon::current_num_threads().max(1));
    let height = per_thread.next_multiple_of(16).clamp(1, PRODUCT_BLOCK_ROWS);
    if let Some(width) = gemm::Width::detect() {
        return Ok(tiled_product(w, x, m, n, k, height, width));
    }
    let x2 = Tensor::from_slice(x, (m, k), &Device::Cpu)?;
    let firsts: Vec<usize> = (0..n).step_by(height).collect();
    let parts: Vec<Tensor> = firsts
        .par_iter()
        .map(|&first| {
            let count = height.min(n - first);
            let block = w.slice(first * k, count * k).widened();
            x2.matmul(&Tensor::from_vec(block, (count, k), &Device::Cpu)?.t()?)
        })
        .collect::<candle_core::Result<_>>()?;
    Ok(Tensor::cat(&parts, 1)?.flatten_all()?.to_vec1::<f32>()?)
}

/// x (.., in) · wᵀ, as candle-nn's Linear does it: a batch of row vectors is flattened into
/// one matrix so the product is a single gemm, in the weight's dtype; the result comes back in
/// x's dtype.
fn dense_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dtype() != w.dtype() {
        let y = dense_matmul(&x.to_dtype(w.dtype())?, w)?;
        return Ok(y.to_dtype(x.dtype())?);
    }
    Ok(match *x.dims() {
        [b1, b2, m, k] if x.is_contiguous() => x
            .reshape((b1 * b2 * m, k))?
            .matmul(&w.t()?)?
            .reshape((b1, b2, m, ()))?,
        [b, m, k] if x.is_contiguous() => {
            x.reshape((b * m, k))?
                .matmul(&w.t()?)?
                .reshape((b, m, ()))?
        }
        _ => x.broadcast_matmul(&w.t()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The largest magnitude in a tensor.
    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn few_row_products_match_candles_matmul_in_every_dense_format() {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            few_row_product_matches_candle(dtype);
        }
    }

    fn few_row_product_matches_candle(dtype: DType) {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (300, 96), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let as_f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        for shape in [(1, 1, 96), (2, 3, 96)] {
            let x = Tensor::randn(0f32, 1.0, shape, &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let fast = tensor_in_place(&x, &w).unwrap().expect("few rows");
            let slow = dense_matmul(&x, &w).unwrap();
            assert_eq!(fast.dims(), slow.dims());
            assert_eq!(fast.dtype(), dtype);
            let diff = max_abs(&(as_f32(&fast) - as_f32(&slow)).unwrap());
            // Half formats round the result (a bf16's last place is 1/128 of the value), and
            // candle may round partial sums too; f32 differs only in summation order.
            let relative = if dtype == DType::F32 { 1e-5 } else { 2e-2 };
            let tolerance = relative * max_abs(&as_f32(&slow));
            assert!(diff < tolerance, "{dtype:?} {shape:?}: {diff}");
        }
    }

    /// Prompt-sized products (blocks of rows, half formats widened to f32) against the
    /// weight widened to f32 whole and candle's f32 matmul: the same sums, so only the
    /// summation order differs, in every dense format, with a block boundary inside `n`.
    #[test]
    fn blocked_products_match_the_widened_matmul_in_every_dense_format() {
        let dev = Device::Cpu;
        let n = PRODUCT_BLOCK_ROWS + 44;
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let w = Tensor::randn(0f32, 1.0, (n, 96), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let x = Tensor::randn(0f32, 1.0, (2, 20, 96), &dev).unwrap();
            let fast = tensor_in_place(&x, &w).unwrap().expect("dense CPU weight");
            let wide = w.to_dtype(DType::F32).unwrap();
            let slow = x.broadcast_matmul(&wide.t().unwrap()).unwrap();
            assert_eq!(fast.dims(), &[2, 20, n]);
            let diff = max_abs(&(&fast - &slow).unwrap());
            assert!(diff < 1e-4 * max_abs(&slow), "{dtype:?}: {diff}");
        }
        let var = candle_core::Var::from_tensor(&Tensor::ones((4, 96), DType::F32, &dev).unwrap())
            .unwrap();
        let x = Tensor::ones((1, 20, 96), DType::F32, &dev).unwrap();
        assert!(tensor_in_place(&x, var.as_tensor()).unwrap().is_none());
    }

    #[test]
    fn tracked_gradients_stay_with_candle() {
        let dev = Device::Cpu;
        let w32 = Tensor::randn(0f32, 1.0, (16, 8), &dev).unwrap();
        let var = candle_core::Var::from_tensor(&w32).unwrap();
        for rows in [1, MAX_GEMV_ROWS + 1] {
            let x = Tensor::randn(0f32, 1.0, (1, rows, 8), &dev).unwrap();
            assert!(tensor_in_place(&x, var.as_tensor()).unwrap().is_none());
            assert!(tensor_in_place(&x, &w32).unwrap().is_some());
            let tracked = candle_core::Var::from_tensor(&x).unwrap();
            assert!(
                tensor_in_place(tracked.as_tensor(), &w32)
                    .unwrap()
                    .is_none()
            );
        }
    }

    /// A weight mapped from its file gives the products of the same weight in memory, for
    /// decoding's few rows, prompts, a shared job and a gradient tracked through x (the
    /// copy candle multiplies), in every dense format; a part of its rows is the same part of
    /// the layer.
    #[test]
    fn mapped_weights_give_the_products_of_the_same_weight_in_memory() {
        use crate::engine::model::mapped::FileMap;
        use std::io::Write;
        let dev = Device::Cpu;
        let (n, k) = (PRODUCT_BLOCK_ROWS + 20, 96);
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let bytes: Vec<u8> = match dtype {
                DType::F32 => {
                    bytemuck::cast_slice(&w.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                        .to_vec()
                }
                DType::F16 => {
                    bytemuck::cast_slice(&w.flatten_all().unwrap().to_vec1::<half::f16>().unwrap())
                        .to_vec()
                }
                _ => {
                    bytemuck::cast_slice(&w.flatten_all().unwrap().to_vec1::<half::bf16>().unwrap())
                        .to_vec()
                }
            };
            let mut file = tempfile::NamedTempFile::new().unwrap();
            file.write_all(&[0u8; 64]).unwrap();
            file.write_all(&bytes).unwrap();
            file.flush().unwrap();
            let map = FileMap::open(file.path()).unwrap();
            let mapped = MappedMatrix::new(&map, "w", 64, n, k, dtype).unwrap();
            let in_memory = Linear::new(LinearWeight::Dense(w.clone()), None).unwrap();
            let read_in_place = Linear::new(LinearWeight::Mapped(mapped.clone()), None).unwrap();
            assert_eq!(read_in_place.dims().unwrap(), (n, k));
            assert_eq!(read_in_place.format_name(), in_memory.format_name());
            for rows in [1, 3, 40] {
                let x = Tensor::randn(0f32, 1.0, (1, rows, k), &dev).unwrap();
                let want = in_memory.forward(&x).unwrap();
                let got = read_in_place.forward(&x).unwrap();
                assert_eq!(max_abs(&(&got - &want).unwrap()), 0.0, "{dtype:?} {rows}");
                let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let shared = Linear::forward_rows_shared(&[&read_in_place], &xs, rows).unwrap();
                let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let diff = shared[0]
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(diff < 1e-3, "{dtype:?} {rows} shared: {diff}");
                let tracked = candle_core::Var::from_tensor(&x).unwrap();
                let y = read_in_place.forward(tracked.as_tensor()).unwrap();
                let candle = dense_matmul(&x, &w).unwrap();
                let diff = max_abs(&(&y - &candle).unwrap());
                assert!(
                    diff < 1e-2 * max_abs(&candle),
                    "{dtype:?} {rows} tracked: {diff}"
                );
                assert!(y.backward().is_ok());
            }
            let part =
                Linear::new(LinearWeight::Mapped(mapped.row_range(5, 7).unwrap()), None).unwrap();
            let x = Tensor::randn(0f32, 1.0, (2, k), &dev).unwrap();
            let want = Linear::new(LinearWeight::Dense(w.narrow(0, 5, 7).unwrap()), None).unwrap();
            let diff = max_abs(&(part.forward(&x).unwrap() - want.forward(&x).unwrap()).unwrap());
            assert_eq!(diff, 0.0, "{dtype:?} part");
            assert_eq!(
                read_in_place
                    .dense("merging")
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap(),
                w.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap()
            );
        }
    }

    /// Layers of every format (dense f32/bf16, quantized Q8_0 cut into shards, with and
    /// without bias) run as one shared job give each layer's own `forward`.
    #[test]
    fn shared_row_products_equal_each_layers_forward() {
        let dev = Device::Cpu;
        let k = 64;
        let w = |n: usize| Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, 100, &dev).unwrap();
        let q8 = LinearWeight::quantize(&w(300), GgmlDType::Q8_0).unwrap();
        let layers = [
            Linear::new(LinearWeight::Dense(w(100)), Some(bias)).unwrap(),
            Linear::new(q8, None).unwrap(),
            Linear::new(
                LinearWeight::Dense(w(2500).to_dtype(DType::BF16).unwrap()),
                None,
            )
            .unwrap(),
        ];
        for m in [1, 3] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let refs: Vec<&Linear> = layers.iter().collect();
            let shared = Linear::forward_rows_shared(&refs, &xs, m).unwrap();
            for (layer, got) in layers.iter().zip(shared) {
                let want = layer.forward(&x).unwrap().flatten_all().unwrap();
                let want = want.to_vec1::<f32>().unwrap();
                assert_eq!(got.len(), want.len());
                let diff = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(diff < 1e-3, "{} rows, {}: {diff}", m, layer.format_name());
            }
        }
        assert!(Linear::forward_rows_shared(&[&layers[0]], &[0.0; 3], 1).is_err());
    }

    /// Quantized layers (packed where this CPU runs `qgemv`, else candle's) against their
    /// own dequantized weights, for a decoding step's few rows and a prompt's many (several
    /// passes of 4 rows, more shards), with a bias and a row count that leaves the last tile
    /// part empty.
    #[test]
    fn quantized_layers_match_their_dequantized_weights_for_any_row_count() {
        use rand::{Rng, SeedableRng};
        let dev = Device::Cpu;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut normal = |shape: &[usize], scale: f32| {
            let len = shape.iter().product();
            // Sums of uniforms: roughly normal, without a distributions crate.
            let values: Vec<f32> = (0..len)
                .map(|_| scale * (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>())
                .collect();
            Tensor::from_vec(values, shape, &dev).unwrap()
        };
        let (n, k) = (40, 512);
        let w = normal(&[n, k], 1.0);
        // A large bias, so one left out would show above the activations' rounding.
        let bias = normal(&[n], 20.0);
        for &(format, _) in PACKED {
            let q = Arc::new(QTensor::quantize(&w, format).unwrap());
            let dense = q.dequantize(&dev).unwrap();
            let layer = Linear::new(LinearWeight::Quantized(q), Some(bias.clone())).unwrap();
            for m in [1, 3, 21] {
                let x = normal(&[1, m, k], 1.0);
                let got = layer.forward(&x).unwrap();
                let want = x
                    .matmul(&dense.t().unwrap().unsqueeze(0).unwrap())
                    .unwrap()
                    .broadcast_add(&bias)
                    .unwrap();
                assert_eq!(got.dims(), &[1, m, n]);
                let diff = max_abs(&(got - &want).unwrap());
                // Each activation is rounded to 8 bits of its block's largest magnitude (at
                // most the row's), so off by at most max|x|/254; an output by that times the
                // sum of its row's |weights| (plus f32 rounding).
                let step = max_abs(&x) / 254.0;
                let bound = step * max_abs(&dense.abs().unwrap().sum(1).unwrap()) + 1e-3;
                assert!(diff <= bound, "{format:?}, {m} rows: {diff} > {bound}");
            }
        }
    }

    /// llama.cpp's quantizer (`llama_tensor_get_type` in llama-quant.cpp): a K-quant on rows
    /// that are not a multiple of 256 falls back to Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
    /// and to F16 where the fallback's 32-value blocks do not fit either.
    #[test]
    fn rows_that_do_not_fit_get_llama_cpps_fallback_formats() {
        let cases = [
            (GgmlDType::Q4K, 512, Some(GgmlDType::Q4K)),
            (GgmlDType::Q4K, 576, Some(GgmlDType::Q5_0)),
            (GgmlDType::Q5K, 576, Some(GgmlDType::Q5_1)),
            (GgmlDType::Q6K, 576, Some(GgmlDType::Q8_0)),
            (GgmlDType::Q4K, 1536, Some(GgmlDType::Q4K)),
            (GgmlDType::Q4K, 80, None),
            (GgmlDType::Q6K, 80, None),
            (GgmlDType::Q4_0, 96, Some(GgmlDType::Q4_0)),
            (GgmlDType::Q5_0, 80, None),
        ];
        for (asked, cols, want) in cases {
            assert_eq!(
                fitting_format(asked, cols),
                want,
                "{asked:?} on rows of {cols}"
            );
        }
        // The fallback is what gets stored, and recorded as one.
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (8, 96), &dev).unwrap();
        let layer = Linear::new(LinearWeight::quantize(&w, GgmlDType::Q4K).unwrap(), None)
            .unwrap()
            .asked_for(Some(GgmlDType::Q4K));
        assert_eq!(layer.format_name(), "q5_0");
        assert_eq!(layer.fallback(), Some(("q4_k".into(), "q5_0".into())));
        let w = Tensor::randn(0f32, 1.0, (8, 80), &dev).unwrap();
        let layer = Linear::new(LinearWeight::quantize(&w, GgmlDType::Q4K).unwrap(), None)
            .unwrap()
            .asked_for(Some(GgmlDType::Q4K));
        assert_eq!(layer.format_name(), "f16");
    }

    #[test]
    fn row_shards_give_the_same_product_as_the_whole_matrix() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (200, 64), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 1, 64), &dev).unwrap();
        let q = Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap());
        let whole = QMatMul::from_arc(q.clone()).unwrap().forward(&x).unwrap();
        let shards = shard_rows(&q, 3).unwrap();
        // 200 rows in 3 shards of a multiple of 32 rows: 96, 96, 8.
        let heights: Vec<usize> = shards.iter().map(|s| s.shape().dims()[0]).collect();
        assert_eq!(heights, vec![96, 96, 8]);
        let parts: Vec<Tensor> = shards
            .into_iter()
            .map(|s| QMatMul::from_arc(s).unwrap().forward(&x).unwrap())
            .collect();
        let joined = Tensor::cat(&parts, 2).unwrap();
        let diff = (whole - joined)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0);
    }
}
