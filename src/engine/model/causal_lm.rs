//! A Hugging Face model folder loaded as a causal LM with its own KV cache.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};

use crate::engine::error::{EngineError, Result};
use crate::engine::formats::adapter::{is_adapter_folder, merge_adapter, read_adapter_config};
use crate::engine::formats::gguf;
use crate::engine::formats::gguf_tokenizer;
use crate::engine::formats::tokenizer::ModelTokenizer;
use crate::engine::model::config::{ModelConfig, RopeScaling, token_ids};
use crate::engine::model::linear::QuantPlan;
use crate::engine::model::transformer::Transformer;
use crate::engine::model::weights::{self, Weights};

/// Weight format and compute precision, chosen with `--dtype`: dense f32/f16/bf16 weights
/// computed in that precision, or weights quantized at load to one of llama.cpp's block
/// formats with f32 activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeDtype {
    F32,
    F16,
    Bf16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q4K,
    Q5K,
    Q6K,
}

/// One `--dtype`: the variant, its name, other spellings, quantization plan.
type DtypeRow = (
    ComputeDtype,
    &'static str,
    &'static [&'static str],
    Option<QuantPlan>,
);

/// Every `--dtype`: its name, the other spellings it accepts, and for the quantized ones the
/// formats of the projections and of the output layer. The output layer follows llama.cpp's
/// quantizer: Q6_K for every file type but Q8_0 (its errors reach the logits directly), and
/// like every matrix it falls back where its rows do not split into blocks (`fitting_format`).
const DTYPES: &[DtypeRow] = {
    const fn plan(projections: GgmlDType, lm_head: GgmlDType) -> Option<QuantPlan> {
        Some(QuantPlan {
            projections,
            lm_head,
        })
    }
    use ComputeDtype as C;
    use GgmlDType as G;
    &[
        (C::F32, "f32", &["float32"], None),
        (C::F16, "f16", &["float16", "half"], None),
        (C::Bf16, "bf16", &["bfloat16"], None),
        (C::Q8_0, "q8_0", &["q8"], plan(G::Q8_0, G::Q8_0)),
        (C::Q4_0, "q4_0", &[], plan(G::Q4_0, G::Q6K)),
        (C::Q4_1, "q4_1", &[], plan(G::Q4_1, G::Q6K)),
        (C::Q5_0, "q5_0", &[], plan(G::Q5_0, G::Q6K)),
        (C::Q5_1, "q5_1", &[], plan(G::Q5_1, G::Q6K)),
        (C::Q4K, "q4_k", &["q4k", "q4_k_m"], plan(G::Q4K, G::Q6K)),
        (C::Q5K, "q5_k", &["q5k", "q5_k_m"], plan(G::Q5K, G::Q6K)),
        (C::Q6K, "q6_k", &["q6k"], plan(G::Q6K, G::Q6K)),
    ]
};

impl ComputeDtype {
    fn row(self) -> &'static DtypeRow {
        DTYPES
            .iter()
            .find(|row| row.0 == self)
            .unwrap_or(&DTYPES[0])
    }

    /// The dtype of activations (and of dense weights).
    pub fn candle(self) -> DType {
        match self {
            Self::F16 => DType::F16,
            Self::Bf16 => DType::BF16,
            _ => DType::F32,
        }
    }

    /// How the weights are quantized at load, if they are.
    pub fn quantization(self) -> Option<QuantPlan> {
        self.row().3
    }

    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// Every `--dtype` name, for messages.
    pub fn names() -> Vec<&'static str> {
        DTYPES.iter().map(|row| row.1).collect()
    }
}

impl FromStr for ComputeDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let wanted = s.to_ascii_lowercase();
        DTYPES
            .iter()
            .find(|(_, name, others, _)| *name == wanted || others.contains(&wanted.as_str()))
            .map(|row| row.0)
            .ok_or_else(|| {
                format!(
                    "unknown dtype '{wanted}' (expected one of {})",
                    Self::names().join(", ")
                )
            })
    }
}

/// Tokens per forward call when feeding a long prompt.
const PREFILL_CHUNK: usize = 512;

pub struct CausalLm {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub tokenizer: ModelTokenizer,
    /// Every id that ends generation: generation_config.json, config.json, tokenizer_config.json.
    pub eos_ids: Vec<u32>,
    net: Transformer,
    device: Device,
    /// Time spent in forward passes since the last `take_forward_time`.
    forward_time: Duration,
}

impl CausalLm {
    pub fn load(dir: &Path, dtype: ComputeDtype) -> Result<Self> {
        Self::load_with(dir, dtype, None)
    }

    /// A model folder or a `.gguf` file. `tokenizer` (a tokenizer.json or SentencePiece
    /// tokenizer.model, or a folder holding one) replaces the model's own; without it a folder's
    /// tokenizer.json (else its tokenizer.model) is used, and for a
    /// GGUF file a tokenizer.json beside the file, else the tokenizer its metadata describes.
    pub fn load_with(path: &Path, dtype: ComputeDtype, tokenizer: Option<&Path>) -> Result<Self> {
        let _mapped = weights::LoadAllocations::begin();
        if gguf::is_gguf(path) {
            return Self::load_gguf(path, dtype, tokenizer);
        }
        let dir = path;
        if !dir.exists() {
            return Err(EngineError::invalid(dir, "no such model folder"));
        }
        if !dir.is_dir() {
            return Err(EngineError::invalid(
                dir,
                "not a folder (expected a Hugging Face model folder)",
            ));
        }
        // A PEFT adapter folder takes its config and weights from its base model.
        let adapter = if is_adapter_folder(dir) {
            Some(read_adapter_config(dir)?)
        } else {
            None
        };
        let model_dir = adapter.as_ref().map_or(dir, |a| a.base_model.as_path());
        let config_path = model_dir.join("config.json");
        if !config_path.is_file() {
            return Err(EngineError::invalid(dir, "no config.json in this folder"));
        }
        let config = ModelConfig::from_file(&config_path)?;
        let has_tokenizer =
            |d: &Path| d.join("tokenizer.json").is_file() || d.join("tokenizer.model").is_file();
        let tokenizer_dir = if has_tokenizer(dir) { dir } else { model_dir };
        // `--tokenizer` replaces the folder's own tokenizer, as it does for a GGUF file.
        let tokenizer = match tokenizer {
            Some(t) if t.is_dir() => ModelTokenizer::load(t)?,
            Some(t) => ModelTokenizer::load_file(t)?,
            None => ModelTokenizer::load(tokenizer_dir)?,
        };
        let mut eos_ids = generation_config_eos(model_dir)?;
        for id in config.eos_token_ids.iter().chain(&tokenizer.eos_ids) {
            if !eos_ids.contains(id) {
                eos_ids.push(*id);
            }
        }
        let device = Device::Cpu;
        let mut weights = Weights::load(model_dir, dtype.candle(), &device)?;
        if let Some(adapter) = &adapter {
            weights = merge_adapter(dir, adapter, weights, dtype.candle())?;
        }
        let net = Transformer::load_with(&config, &weights, &device, dtype.quantization())?;
        drop(weights);
        weights::return_freed_memory();
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            tokenizer,
            eos_ids,
            net,
            device,
            forward_time: Duration::ZERO,
        })
    }

    fn load_gguf(path: &Path, dtype: ComputeDtype, tokenizer: Option<&Path>) -> Result<Self> {
        if !path.is_file() {
            return Err(EngineError::invalid(path, "no such GGUF file"));
        }
        // A tokenizer.json beside the file or named with --tokenizer wins over the metadata.
        let beside = path.with_file_name("tokenizer.json");
        let tokenizer = match tokenizer {
            Some(t) if t.is_dir() => ModelTokenizer::load(t)?,
            Some(t) => ModelTokenizer::load_file(t)?,
            None if beside.is_file() => ModelTokenizer::load_file(&beside)?,
            None => gguf_tokenizer::load(path)?,
        };
        let device = Device::Cpu;
        let model = gguf::load(path, dtype.candle(), &device)?;
        let mut eos_ids = tokenizer.eos_ids.clone();
        for id in model.config.eos_token_ids.iter().chain(&model.eos_id) {
            if !eos_ids.contains(id) {
                eos_ids.push(*id);
            }
        }
        let net =
            Transformer::load_with(&model.config, &model.weights, &device, dtype.quantization())?;
        drop(model.weights);
        weights::return_freed_memory();
        Ok(Self {
            dir: path.to_path_buf(),
            config: model.config,
            tokenizer,
            eos_ids,
            net,
            device,
            forward_time: Duration::ZERO,
        })
    }

    /// Positions currently held in the KV cache.
    pub fn position(&self) -> usize {
        self.net.position()
    }

    /// Rewind the KV cache to `position` tokens.
    pub fn truncate(&mut self, position: usize) {
        self.net.truncate(position);
    }

    /// Feed `ids` after what the cache holds; return the next-token logits.
    pub fn feed(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        let start = Instant::now();
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let logits = self
            .net
            .forward_last(&input)?
            .squeeze(0)?
            .to_vec1::<f32>()?;
        self.forward_time += start.elapsed();
        self.check_finite(&logits, self.position() - 1)?;
        Ok(logits)
    }

    /// An error naming this model when `logits` (at `position`) hold a NaN or an infinity: a
    /// model whose weights or config overflow must stop the run, not emit tokens chosen from
    /// NaNs or records whose log-probabilities JSON cannot hold.
    fn check_finite(&self, logits: &[f32], position: usize) -> Result<()> {
        if logits.iter().all(|v| v.is_finite()) {
            return Ok(());
        }
        Err(EngineError::invalid(
            &self.dir,
            format!(
                "the logits at position {position} are not finite (NaN or infinity): the \
                 model's weights or config overflow there"
            ),
        ))
    }

    /// Copy the cached prompt into `rows` rows; see [`CausalLm::feed_rows`].
    pub fn fork(&mut self, rows: usize) -> Result<()> {
        self.net.fork(rows)
    }

    /// Feed one token per row of a forked cache; next-token logits per row.
    pub fn feed_rows(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let start = Instant::now();
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(1)?;
        let logits = self.net.forward_last(&input)?.to_vec2::<f32>()?;
        self.forward_time += start.elapsed();
        for row in &logits {
            self.check_finite(row, self.position() - 1)?;
        }
        Ok(logits)
    }

    /// Logits at every position of `ids`, run from an empty cache (teacher forcing). Row `i`
    /// predicts token `i + 1`.
    pub fn score_all(&mut self, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
        let start = Instant::now();
        self.net.truncate(0);
        let mut logits = Vec::with_capacity(ids.len());
        // LongRoPE picks its factors from the length a forward call reaches, so a sequence
        // past the original context must go in whole, as transformers runs it, or its first
        // chunks would rotate with the short factors.
        let chunk = match self.config.rope_scaling {
            RopeScaling::LongRope { .. } => ids.len().max(1),
            _ => PREFILL_CHUNK,
        };
        for chunk in ids.chunks(chunk) {
            let input = Tensor::new(chunk, &self.device)?.unsqueeze(0)?;
            logits.extend(self.net.forward_all(&input)?.squeeze(0)?.to_vec2::<f32>()?);
        }
        self.net.truncate(0);
        self.forward_time += start.elapsed();
        for (position, row) in logits.iter().enumerate() {
            self.check_finite(row, position)?;
        }
        Ok(logits)
    }

    /// Forward time accumulated since the last call.
    pub fn take_forward_time(&mut self) -> Duration {
        std::mem::take(&mut self.forward_time)
    }

    /// The storage formats of the weight matrices, e.g. "q4_k+q6_k" (see
    /// `Transformer::weight_formats`).
    pub fn weight_formats(&self) -> String {
        self.net.weight_formats()
    }

    /// (name, storage format, kernel) of every matrix (`Transformer::matrix_kernels`).
    pub fn matrix_kernels(&self) -> Vec<(String, String, &'static str)> {
        self.net.matrix_kernels()
    }

    /// The matrices read in place from their file rather than copied
    /// (`Transformer::mapped_matrices`).
    pub fn mapped_matrices(&self) -> Vec<String> {
        self.net.mapped_matrices()
    }

    /// Bytes of weights read in place from their files (`Transformer::bytes_in_place`).
    pub fn bytes_in_place(&self) -> usize {
        self.net.bytes_in_place()
    }

    /// The matrices that took llama.cpp's fallback format at load (`Transformer::fallbacks`).
    pub fn fallbacks(&self) -> String {
        self.net.fallbacks()
    }

    /// A short name for messages: the Hub id of a cached snapshot, else the folder's last
    /// component.
    pub fn display_name(&self) -> String {
        if let Some(id) = crate::engine::formats::hub::repo_id_of_snapshot(&self.dir) {
            return id;
        }
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.dir.display().to_string())
    }
}

fn generation_config_eos(dir: &Path) -> Result<Vec<u32>> {
    let path = dir.join("generation_config.json");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| EngineError::invalid(&path, format!("not valid JSON: {e}")))?;
    Ok(token_ids(value.get("eos_token_id")))
}
