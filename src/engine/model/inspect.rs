//! What `genarm inspect` says about a model without loading it: config.json or the GGUF
//! metadata, the tensor list from the weight files' headers (no value is read), the tokenizer
//! (small: built as the loader builds it, so its errors are the loader's), and from the shapes
//! the parameter count and the memory each `--dtype` takes. Every check the loader would stop at
//! is run here through the loader's own code and collected, not returned: the report lists what
//! genarm would refuse and still shows everything else it could read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Content;
use candle_core::{DType, Device};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::engine::error::{EngineError, Result};
use crate::engine::formats::adapter::{is_adapter_folder, read_adapter_config};
use crate::engine::formats::chat::ChatTemplate;
use crate::engine::formats::hub::{HubEnv, HubId, missing_files, snapshot_dir};
use crate::engine::formats::tokenizer::ModelTokenizer;
use crate::engine::formats::{gguf, gguf_header, gguf_pretokenizers, gguf_tokenizer};
use crate::engine::model::causal_lm::ComputeDtype;
use crate::engine::model::config::{ModelConfig, RopeScaling};
use crate::engine::model::linear::{fitting_format, format_name_of, quant_kernel_name};
use crate::engine::model::mapped::can_read_in_place;
use crate::engine::model::preflight;
use crate::engine::model::weights::stored_tensors;

/// What a tensor is for, by its (Hugging Face) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Embeddings,
    AttnQ,
    AttnK,
    AttnV,
    AttnQkv,
    AttnO,
    MlpGate,
    MlpUp,
    MlpGateUp,
    MlpDown,
    Norms,
    Biases,
    LmHead,
    /// Tensors genarm does not use (not counted, not held).
    Other,
}

/// Name parts that mark each matrix kind, checked in order (`gate_up_proj` before `up_proj`).
const MATRIX_KINDS: &[(&str, Kind)] = &[
    (".qkv_proj.", Kind::AttnQkv),
    (".q_proj.", Kind::AttnQ),
    (".k_proj.", Kind::AttnK),
    (".v_proj.", Kind::AttnV),
    (".o_proj.", Kind::AttnO),
    (".gate_up_proj.", Kind::MlpGateUp),
    (".gate_proj.", Kind::MlpGate),
    (".up_proj.", Kind::MlpUp),
    (".down_proj.", Kind::MlpDown),
];

impl Kind {
    pub fn of(name: &str) -> Self {
        if name == "model.embed_tokens.weight" {
            return Self::Embeddings;
        }
        if name == "lm_head.weight" {
            return Self::LmHead;
        }
        if !name.starts_with("model.") {
            return Self::Other;
        }
        if let Some(&(_, kind)) = MATRIX_KINDS.iter().find(|(part, _)| name.contains(part)) {
            return if name.ends_with(".bias") {
                Self::Biases
            } else {
                kind
            };
        }
        if name.ends_with("norm.weight") {
            return Self::Norms;
        }
        Self::Other
    }

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Linear layers a matrix of this kind becomes: the loader splits Phi-3's fused q/k/v and
    /// gate/up matrices by rows (the same bytes, more layers).
    fn layers(self) -> usize {
        match self {
            Self::AttnQkv => 3,
            Self::MlpGateUp => 2,
            _ => 1,
        }
    }

    /// The matrices a linear layer multiplies with (quantized at load by a block `--dtype`).
    fn is_matrix(self) -> bool {
        MATRIX_KINDS.iter().any(|&(_, k)| k == self) || self == Self::LmHead
    }
}

/// One tensor as its file's header describes it, under its Hugging Face name.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub kind: Kind,
    /// (rows, row length) for a matrix, as Hugging Face writes it.
    pub shape: Vec<usize>,
    pub stored: Stored,
    /// A matrix the loader reads in place from its file (`mapped.rs`) where `--dtype` is its
    /// stored dtype and nothing is quantized: float, 2-D, aligned in the file, rows as the
    /// model reads them (not a Llama q/k of a GGUF), in a model loaded without an adapter.
    pub in_place: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Dense(DType),
    /// A GGUF block format.
    Blocks(GgmlDType),
    /// A dtype genarm does not compute with (i64 buffers, ...), by its name.
    Unusual(&'static str),
}

impl Stored {
    /// Whether a matrix stored so, its values starting at byte `start` of its file, can be
    /// mapped rather than copied (`mapped::can_read_in_place`); None: no known start.
    fn readable_in_place(self, start: Option<u64>) -> bool {
        matches!((self, start), (Self::Dense(d), Some(at)) if can_read_in_place(at, d))
    }

    fn name(self) -> String {
        match self {
            Self::Dense(d) => d.as_str().to_string(),
            Self::Blocks(f) => format_name_of(f),
            Self::Unusual(n) => n.to_string(),
        }
    }
}

impl Tensor {
    pub fn elements(&self) -> u64 {
        // Saturating: a hostile header's shape must not wrap around to a small count.
        self.shape
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d as u64))
    }

    /// Bytes in its file.
    fn stored_bytes(&self) -> u64 {
        match self.stored {
            Stored::Dense(d) => self.elements().saturating_mul(d.size_in_bytes() as u64),
            Stored::Blocks(f) => blocks_bytes(self.elements(), f),
            Stored::Unusual(_) => 0,
        }
    }

    fn row_length(&self) -> usize {
        self.shape.last().copied().unwrap_or(0)
    }
}

fn blocks_bytes(elements: u64, format: GgmlDType) -> u64 {
    (elements / format.block_size().max(1) as u64).saturating_mul(format.type_size() as u64)
}

#[derive(Debug, Clone, Serialize)]
pub struct Dimensions {
    pub layers: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub context: usize,
    pub tied_embeddings: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenizerReport {
    /// "tokenizer.json", "tokenizer.model (SentencePiece)", "GGUF metadata", or "none".
    pub source: String,
    pub file: Option<PathBuf>,
    /// GGUF `tokenizer.ggml.model` ("llama": SentencePiece-style BPE, "gpt2": byte-level BPE).
    pub gguf_model: Option<String>,
    /// GGUF `tokenizer.ggml.pre` and whether genarm knows that pre-tokenizer (byte-level BPE).
    pub gguf_pre: Option<String>,
    pub pre_known: Option<bool>,
    /// Ids the tokenizer knows, added tokens included (None where it cannot be built).
    pub vocab: Option<usize>,
}

/// Tensors of one kind: how many, their parameters, and how they are stored.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub kind: Kind,
    pub tensors: usize,
    pub parameters: u64,
    /// Stored format -> number of tensors.
    pub stored: BTreeMap<String, usize>,
    /// For matrices, the kernels each stored format runs on as loaded by default ("dense",
    /// "genarm" for qgemv's packed tiles, "candle" for candle's QMatMul).
    pub kernels: BTreeMap<String, String>,
}

/// The weights genarm holds at one `--dtype`.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    /// A `--dtype`, or "as stored" (the bytes of the tensors genarm uses, as the file holds them).
    pub dtype: String,
    pub bytes: u64,
    /// For the matrices: format -> (linear layers, kernel); Phi-3's fused matrices count as
    /// the layers the loader splits them into.
    pub matrices: BTreeMap<String, FormatUse>,
    /// Matrices that take llama.cpp's fallback format (rows not a multiple of the block).
    pub fallbacks: usize,
    /// Of `bytes`, those read in place from the file rather than copied: shared with every
    /// process that runs the same file, and dropped by the kernel under memory pressure
    /// rather than swapped.
    pub in_place_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FormatUse {
    pub count: usize,
    pub kernel: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// As given.
    pub model: String,
    pub path: PathBuf,
    /// "folder", "gguf" or "adapter" (a PEFT LoRA folder).
    pub format: &'static str,
    pub hub_id: Option<String>,
    /// An adapter's base model folder.
    pub base_model: Option<PathBuf>,
    pub weight_files: Vec<PathBuf>,
    /// config.json's `architectures[0]`, or the GGUF `general.architecture`.
    pub architecture: Option<String>,
    /// The family genarm runs it as.
    pub family: Option<String>,
    pub settings: Map<String, Value>,
    pub dimensions: Option<Dimensions>,
    pub parameters: u64,
    pub tokenizer: TokenizerReport,
    /// "tokenizer_config.json", "chat_template.jinja", "GGUF metadata" or None.
    pub chat_template: Option<String>,
    pub tensors: Vec<KindReport>,
    pub memory: Vec<MemoryRow>,
    /// What the loader would stop at, in the order met.
    #[serde(skip)]
    pub refusals: Vec<EngineError>,
    #[serde(skip)]
    all_tensors: Vec<Tensor>,
}

/// Inspect `spec`: a model folder, a `.gguf` file or a Hub id in the local cache. An error only
/// where there is nothing to inspect (no such path, a Hub id not in the cache, a URL).
pub fn inspect(spec: &Path) -> Result<Report> {
    let text = spec.to_string_lossy();
    if text.starts_with("http://") || text.starts_with("https://") {
        return Err(EngineError::usage(format!(
            "{text} is a served model: inspect reads model files; `genarm generate --base {text}` \
             drives it (the server describes its model at GET /v1/models or /props)"
        )));
    }
    let mut refusals = Vec::new();
    let (path, hub_id) = resolve(spec, &mut refusals)?;
    let mut report = Report {
        model: text.into_owned(),
        path: path.clone(),
        format: "folder",
        hub_id,
        base_model: None,
        weight_files: Vec::new(),
        architecture: None,
        family: None,
        settings: Map::new(),
        dimensions: None,
        parameters: 0,
        tokenizer: TokenizerReport::default(),
        chat_template: None,
        tensors: Vec::new(),
        memory: Vec::new(),
        refusals,
        all_tensors: Vec::new(),
    };
    let config = if gguf::is_gguf(&path) {
        if !path.is_file() {
            return Err(EngineError::invalid(&path, "no such GGUF file"));
        }
        report.format = "gguf";
        inspect_gguf(&path, &mut report)
    } else {
        if !path.is_dir() {
            return Err(EngineError::invalid(
                &path,
                "no such model folder (expected a Hugging Face model folder, a .gguf file or a Hub id)",
            ));
        }
        inspect_folder(&path, &mut report)
    };
    report.summarise(config.as_ref());
    Ok(report)
}

/// The path of `spec`, or the snapshot a Hub id names in the local cache (never downloaded:
/// an incomplete snapshot is inspected as it is, the missing files listed).
fn resolve(spec: &Path, refusals: &mut Vec<EngineError>) -> Result<(PathBuf, Option<String>)> {
    if spec.exists() {
        return Ok((spec.to_path_buf(), None));
    }
    let Some(id) = spec.to_str().and_then(HubId::parse) else {
        return Ok((spec.to_path_buf(), None));
    };
    // As it was written: `org/repo`, `org/repo@rev`.
    let name = match id.revision.as_str() {
        "main" => id.repo.clone(),
        rev => format!("{}@{rev}", id.repo),
    };
    let env = HubEnv::from_env();
    let Some(snapshot) = snapshot_dir(&env.cache.join(id.folder_name()), &id.revision) else {
        return Err(EngineError::usage(format!(
            "{name}: not in the Hugging Face cache {}; inspect reads the cache only \
             (`genarm generate --base {name}` downloads it)",
            env.cache.display()
        )));
    };
    let missing = missing_files(&snapshot)?;
    if !missing.is_empty() {
        refusals.push(EngineError::usage(format!(
            "{name}: incomplete in the Hugging Face cache {} (missing {}); \
             `genarm generate --base {name}` downloads them",
            env.cache.display(),
            missing.join(", ")
        )));
    }
    Ok((snapshot, Some(name)))
}

/// A model folder (or a PEFT adapter folder and its base): config.json, the weight files'
/// headers, the tokenizer, the chat template.
fn inspect_folder(dir: &Path, report: &mut Report) -> Option<ModelConfig> {
    let mut model_dir = Some(dir.to_path_buf());
    if is_adapter_folder(dir) {
        report.format = "adapter";
        match read_adapter_config(dir) {
            Ok(adapter) => {
                report.base_model = Some(adapter.base_model.clone());
                model_dir = Some(adapter.base_model);
            }
            Err(e) => {
                report.refusals.push(e);
                model_dir = None;
            }
        }
    }
    let has_tokenizer =
        |d: &Path| d.join("tokenizer.json").is_file() || d.join("tokenizer.model").is_file();
    let tokenizer_dir = match &model_dir {
        Some(m) if !has_tokenizer(dir) => m.clone(),
        _ => dir.to_path_buf(),
    };
    let config = model_dir
        .as_deref()
        .and_then(|m| folder_model(dir, m, report));
    folder_tokenizer(&tokenizer_dir, report);
    config
}

/// config.json and the weight headers of the model folder `model_dir` (`dir` as given).
fn folder_model(dir: &Path, model_dir: &Path, report: &mut Report) -> Option<ModelConfig> {
    let config_path = model_dir.join("config.json");
    let config = if config_path.is_file() {
        if let Some(raw) = std::fs::read_to_string(&config_path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            report.architecture = raw["architectures"][0]
                .as_str()
                .or(raw["model_type"].as_str())
                .map(str::to_string);
        }
        ModelConfig::from_file(&config_path)
            .map_err(|e| report.refusals.push(e))
            .ok()
    } else {
        report
            .refusals
            .push(EngineError::invalid(dir, "no config.json in this folder"));
        None
    };
    // A base loaded with an adapter is merged with it in memory: nothing is read in place.
    let with_adapter = report.format == "adapter";
    match stored_tensors(model_dir) {
        Ok(files) => {
            for file in files {
                report.weight_files.push(file.path);
                report.refusals.extend(file.problem);
                report.all_tensors.extend(file.tensors.into_iter().map(|t| {
                    let stored = dense_dtype(&t.dtype);
                    Tensor {
                        kind: Kind::of(&t.name),
                        in_place: !with_adapter
                            && t.shape.len() == 2
                            && stored.readable_in_place(t.offset),
                        stored,
                        name: t.name,
                        shape: t.shape,
                    }
                }));
            }
        }
        Err(e) => report.refusals.push(e),
    }
    config
}

/// A stored dtype name ("f32", "bf16", ...) as genarm reads it.
fn dense_dtype(name: &str) -> Stored {
    const UNUSUAL: &[&str] = &["bool", "u8", "i8", "i16", "i32", "i64", "u16", "u32", "u64"];
    match name.parse::<DType>() {
        Ok(d) if d.is_float() => Stored::Dense(d),
        _ => Stored::Unusual(
            UNUSUAL
                .iter()
                .find(|u| **u == name)
                .copied()
                .unwrap_or("other"),
        ),
    }
}

/// The folder's tokenizer, built as the loader builds it, and where its chat template is.
fn folder_tokenizer(dir: &Path, report: &mut Report) {
    let json = dir.join("tokenizer.json");
    let model = dir.join("tokenizer.model");
    let (source, file) = if json.is_file() {
        ("tokenizer.json", Some(json))
    } else if model.is_file() {
        (
            "tokenizer.model (SentencePiece, converted as transformers does)",
            Some(model),
        )
    } else {
        ("none", None)
    };
    report.tokenizer.source = source.to_string();
    report.tokenizer.file = file;
    match ModelTokenizer::load(dir) {
        Ok(t) => report.tokenizer.vocab = Some(t.len),
        Err(e) => report.refusals.push(e),
    }
    let config = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .unwrap_or(Value::Null);
    if let Ok(Some(template)) = ChatTemplate::find(dir, &config) {
        report.chat_template = template
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
    }
}

/// A GGUF file: its header (the loader's check; a file whose data alone is cut short is still
/// described), the config from its metadata, its tokenizer.
fn inspect_gguf(path: &Path, report: &mut Report) -> Option<ModelConfig> {
    report.weight_files.push(path.to_path_buf());
    let (content, mut reader) = match gguf_header::read(path) {
        Ok((content, _, reader)) => (content, reader),
        Err(e) => {
            report.refusals.push(e);
            // A header whose structure holds (only its data is cut short or overlaps) is safe
            // for candle to read; any other is not described further.
            let mut reader = BufReader::new(File::open(path).ok()?);
            gguf_header::check_structure(&mut reader).ok()?;
            reader.seek(SeekFrom::Start(0)).ok()?;
            (Content::read(&mut reader).ok()?, reader)
        }
    };
    let arch = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    report.architecture = Some(arch.clone()).filter(|a| !a.is_empty());
    let config = gguf::read_config(path, &content, &mut reader, &Device::Cpu)
        .map_err(|e| report.refusals.push(e))
        .ok()
        .map(|(_, c)| c);
    for (name, info) in &content.tensor_infos {
        let hf = gguf::hf_name(&arch, name);
        let stored = match info.ggml_dtype {
            GgmlDType::F32 => Stored::Dense(DType::F32),
            GgmlDType::F16 => Stored::Dense(DType::F16),
            GgmlDType::BF16 => Stored::Dense(DType::BF16),
            f => Stored::Blocks(f),
        };
        let start = content.tensor_data_offset.checked_add(info.offset);
        let in_place = info.shape.rank() == 2
            && !hf
                .as_deref()
                .is_some_and(|n| gguf::rows_reordered(&arch, n))
            && stored.readable_in_place(start);
        report.all_tensors.push(Tensor {
            kind: hf.as_deref().map_or(Kind::Other, Kind::of),
            name: hf.unwrap_or_else(|| name.clone()),
            shape: info.shape.dims().to_vec(),
            stored,
            in_place,
        });
    }
    report.all_tensors.sort_by(|a, b| a.name.cmp(&b.name));
    gguf_tokenizer_report(path, &content, report);
    config
}

/// The tokenizer a GGUF file runs with: a tokenizer.json beside it, else its metadata's.
fn gguf_tokenizer_report(path: &Path, content: &Content, report: &mut Report) {
    let meta = |key: &str| {
        content
            .metadata
            .get(key)
            .and_then(|v| v.to_string().ok())
            .cloned()
    };
    let model = meta("tokenizer.ggml.model");
    if model.as_deref() == Some("gpt2") {
        let pre = meta("tokenizer.ggml.pre").unwrap_or_else(|| "default".into());
        report.tokenizer.pre_known = Some(gguf_pretokenizers::find(&pre).is_some());
        report.tokenizer.gguf_pre = Some(pre);
    }
    report.tokenizer.gguf_model = model;
    let beside = path.with_file_name("tokenizer.json");
    let built = if beside.is_file() {
        report.tokenizer.source = "tokenizer.json beside the file".into();
        report.tokenizer.file = Some(beside.clone());
        ModelTokenizer::load_file(&beside)
    } else {
        report.tokenizer.source = "GGUF metadata".into();
        gguf_tokenizer::from_metadata(path, &content.metadata)
    };
    match built {
        Ok(t) => {
            report.tokenizer.vocab = Some(t.len);
            report.chat_template = t.chat_template.map(|c| {
                if c.path == path {
                    "GGUF metadata".to_string()
                } else {
                    c.path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                }
            });
        }
        Err(e) => {
            report.refusals.push(e);
            if meta("tokenizer.chat_template").is_some() {
                report.chat_template = Some("GGUF metadata".into());
            }
        }
    }
}

impl Report {
    /// The figures drawn from the config and the tensor list.
    fn summarise(&mut self, config: Option<&ModelConfig>) {
        if let Some(cfg) = config {
            self.family = Some(format!("{:?}", cfg.architecture).to_lowercase());
            self.settings = settings(cfg);
            self.dimensions = Some(Dimensions {
                layers: cfg.num_hidden_layers,
                hidden: cfg.hidden_size,
                intermediate: cfg.intermediate_size,
                heads: cfg.num_attention_heads,
                kv_heads: cfg.num_key_value_heads,
                head_dim: cfg.head_dim,
                vocab: cfg.vocab_size,
                context: cfg.max_position_embeddings,
                tied_embeddings: cfg.tie_word_embeddings,
            });
            if !self.all_tensors.is_empty() {
                let source = self.weight_files.first().cloned().unwrap_or_default();
                let names: Vec<String> = self.all_tensors.iter().map(|t| t.name.clone()).collect();
                if let Err(e) = preflight::check_layers(cfg, names.iter(), &source) {
                    self.refusals.push(e);
                }
            }
        }
        let tied = config.is_some_and(|c| c.tie_word_embeddings);
        // A tied output layer is the embedding: counted once, as transformers counts it.
        let counted = |t: &&Tensor| t.kind != Kind::Other && !(tied && t.kind == Kind::LmHead);
        self.parameters = self
            .all_tensors
            .iter()
            .filter(counted)
            .map(Tensor::elements)
            .fold(0u64, u64::saturating_add);
        self.tensors = kind_reports(&self.all_tensors);
        self.memory = memory_rows(&self.all_tensors, tied, self.format == "gguf");
    }
}

/// The family switches genarm runs the model with, where they matter.
fn settings(cfg: &ModelConfig) -> Map<String, Value> {
    let mut s = Map::new();
    let rope = match &cfg.rope_scaling {
        RopeScaling::None => "default".to_string(),
        RopeScaling::Linear { factor } => format!("linear, factor {factor}"),
        RopeScaling::Llama3 { factor, .. } => format!("llama3, factor {factor}"),
        RopeScaling::LongRope {
            original_max_position_embeddings,
            ..
        } => format!("longrope, original context {original_max_position_embeddings}"),
    };
    s.insert(
        "rope".into(),
        json!(format!("{rope}, theta {}", cfg.rope_theta)),
    );
    if let Some(local) = &cfg.local_rope {
        s.insert("local_rope_theta".into(), json!(local.theta));
    }
    if cfg.partial_rotary_factor < 1.0 {
        s.insert("rotary_dims".into(), json!(cfg.rotary_dim()));
    }
    let nope = cfg
        .layer_ropes
        .iter()
        .filter(|r| **r == crate::engine::model::config::LayerRope::Off)
        .count();
    if nope > 0 {
        s.insert("layers_without_rope".into(), json!(nope));
    }
    if let Some(window) = cfg.sliding_window {
        let sliding = (0..cfg.num_hidden_layers)
            .filter(|&i| cfg.layer_window(i).is_some())
            .count();
        s.insert("sliding_window".into(), json!(window));
        s.insert("sliding_layers".into(), json!(sliding));
    }
    if let Some(cap) = cfg.attn_logit_softcapping {
        s.insert("attn_logit_softcap".into(), json!(cap));
    }
    if let Some(cap) = cfg.final_logit_softcapping {
        s.insert("final_logit_softcap".into(), json!(cap));
    }
    s.insert(
        "norms".into(),
        json!(format!("{:?}", cfg.block_norms).to_lowercase()),
    );
    if cfg.qk_norm != crate::engine::model::config::QkNorm::None {
        s.insert(
            "qk_norm".into(),
            json!(format!("{:?}", cfg.qk_norm).to_lowercase()),
        );
    }
    s.insert(
        "activation".into(),
        json!(format!("{:?}", cfg.activation).to_lowercase()),
    );
    if cfg.scale_embeddings {
        s.insert("embeddings_scaled".into(), json!(true));
    }
    if (cfg.attention_scale - (cfg.head_dim as f64).powf(-0.5)).abs() > 1e-12 {
        s.insert("attention_scale".into(), json!(cfg.attention_scale));
    }
    if cfg.fused_projections {
        s.insert("fused_projections".into(), json!(true));
    }
    s
}

fn kind_reports(tensors: &[Tensor]) -> Vec<KindReport> {
    let mut by_kind: BTreeMap<Kind, KindReport> = BTreeMap::new();
    for t in tensors {
        let row = by_kind.entry(t.kind).or_insert_with(|| KindReport {
            kind: t.kind,
            tensors: 0,
            parameters: 0,
            stored: BTreeMap::new(),
            kernels: BTreeMap::new(),
        });
        row.tensors += 1;
        row.parameters = row.parameters.saturating_add(t.elements());
        *row.stored.entry(t.stored.name()).or_default() += 1;
        if t.kind.is_matrix() {
            let kernel = match t.stored {
                Stored::Blocks(f) => quant_kernel_name(f),
                _ => "dense",
            };
            row.kernels.insert(t.stored.name(), kernel.to_string());
        }
    }
    by_kind.into_values().collect()
}

/// One tensor as genarm holds it at a `--dtype`: (format, bytes, kernel, fell back), or None
/// for a tensor not held.
type Held = Option<(String, u64, &'static str, bool)>;

/// The memory rows: "as stored" for a GGUF file, then every `--dtype`.
fn memory_rows(tensors: &[Tensor], tied: bool, gguf: bool) -> Vec<MemoryRow> {
    let mut rows = Vec::new();
    if gguf {
        let mut row = MemoryRow {
            dtype: "as stored".into(),
            bytes: 0,
            matrices: BTreeMap::new(),
            fallbacks: 0,
            in_place_bytes: 0,
        };
        for t in tensors.iter().filter(|t| t.kind != Kind::Other) {
            row.bytes = row.bytes.saturating_add(t.stored_bytes());
            if t.kind.is_matrix() || (tied && t.kind == Kind::Embeddings) {
                let kernel = match t.stored {
                    Stored::Blocks(f) => quant_kernel_name(f),
                    _ => "dense",
                };
                add_use(&mut row, &t.stored.name(), kernel, t.kind.layers());
            }
        }
        rows.push(row);
    }
    for name in ComputeDtype::names() {
        let Ok(dtype) = name.parse::<ComputeDtype>() else {
            continue;
        };
        let mut row = MemoryRow {
            dtype: name.to_string(),
            bytes: 0,
            matrices: BTreeMap::new(),
            fallbacks: 0,
            in_place_bytes: 0,
        };
        for t in tensors {
            for held in held_at(t, dtype, tied).into_iter().flatten() {
                let (format, bytes, kernel, fell_back) = held;
                row.bytes = row.bytes.saturating_add(bytes);
                if read_in_place(t, dtype, &format, kernel) {
                    row.in_place_bytes = row.in_place_bytes.saturating_add(bytes);
                }
                if kernel != "lookup" && kernel != "-" {
                    let layers = t.kind.layers();
                    add_use(&mut row, &format, kernel, layers);
                    row.fallbacks += usize::from(fell_back) * layers;
                }
            }
        }
        rows.push(row);
    }
    rows
}

/// Whether tensor `t`, held at `dtype` as `format` on `kernel` (`held_at`), is read in place:
/// dense in the dtype it is stored in, which is the compute dtype, with nothing quantized at
/// load (`Weights::mapped`; an untied embedding's lookup table is read so at a block
/// `--dtype` too, as its dense rows are kept).
fn read_in_place(t: &Tensor, dtype: ComputeDtype, format: &str, kernel: &str) -> bool {
    let Stored::Dense(stored) = t.stored else {
        return false;
    };
    let dense = kernel == "lookup" || (kernel == "dense" && dtype.quantization().is_none());
    t.in_place && dense && stored == dtype.candle() && format == stored.as_str()
}

/// Count `layers` linear layers of `format` on `kernel` in `row`.
fn add_use(row: &mut MemoryRow, format: &str, kernel: &'static str, layers: usize) {
    row.matrices
        .entry(format.to_string())
        .or_insert(FormatUse { count: 0, kernel })
        .count += layers;
}

/// What genarm keeps of tensor `t` at `dtype` (see `Transformer::load_with`): the embedding
/// table dense in the compute dtype (a tied output layer adds a quantized copy where the
/// weights are quantized), matrices stored quantized as they are, else quantized to the
/// `--dtype`'s format or llama.cpp's fallback, else dense; norms and biases in f32.
fn held_at(t: &Tensor, dtype: ComputeDtype, tied: bool) -> [Held; 2] {
    let compute = dtype.candle();
    let plan = dtype.quantization();
    let dense = |d: DType, kernel| {
        Some((
            d.as_str().to_string(),
            t.elements().saturating_mul(d.size_in_bytes() as u64),
            kernel,
            false,
        ))
    };
    match t.kind {
        Kind::Other => [None, None],
        Kind::Norms | Kind::Biases => [dense(DType::F32, "-"), None],
        Kind::Embeddings => {
            let output = match (t.stored, plan) {
                (_, _) if !tied => None,
                (Stored::Blocks(_), _) | (_, Some(_)) => {
                    matrix(t, plan.map(|p| p.lm_head), compute)
                }
                // The dense output layer shares the embedding's storage.
                _ => Some((compute.as_str().to_string(), 0, "dense", false)),
            };
            // The lookup (transformer/lookup.rs) of a tied model reads the rows of its output
            // layer's tiles where genarm packs them (nothing more held); else it reads blocks
            // where there are some (the file's, or those of the tied output layer), else
            // dense rows.
            let lookup = match (t.stored, &output) {
                (_, Some((format, _, "genarm", fallback))) => {
                    Some((format.clone(), 0, "lookup", *fallback))
                }
                (Stored::Blocks(f), _) => {
                    Some((format_name_of(f), t.stored_bytes(), "lookup", false))
                }
                (_, Some((format, bytes, kernel, fallback))) if *kernel != "dense" => {
                    Some((format.clone(), *bytes, "lookup", *fallback))
                }
                _ => dense(compute, "lookup"),
            };
            [lookup, output]
        }
        // A tied model's stored output layer, if any, is not used.
        Kind::LmHead if tied => [None, None],
        Kind::LmHead => [matrix(t, plan.map(|p| p.lm_head), compute), None],
        _ => [matrix(t, plan.map(|p| p.projections), compute), None],
    }
}

/// A matrix: as stored where quantized, else in `asked`'s format or its fallback (f16 where
/// none fits), else dense in `compute`.
fn matrix(t: &Tensor, asked: Option<GgmlDType>, compute: DType) -> Held {
    if let Stored::Blocks(f) = t.stored {
        return Some((
            format_name_of(f),
            t.stored_bytes(),
            quant_kernel_name(f),
            false,
        ));
    }
    let Some(asked) = asked else {
        return Some((
            compute.as_str().to_string(),
            t.elements().saturating_mul(compute.size_in_bytes() as u64),
            "dense",
            false,
        ));
    };
    Some(match fitting_format(asked, t.row_length()) {
        Some(f) => (
            format_name_of(f),
            blocks_bytes(t.elements(), f),
            quant_kernel_name(f),
            f != asked,
        ),
        None => (
            DType::F16.as_str().to_string(),
            t.elements().saturating_mul(2),
            "dense",
            true,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_map_to_their_kinds() {
        let cases = [
            ("model.embed_tokens.weight", Kind::Embeddings),
            ("lm_head.weight", Kind::LmHead),
            ("model.layers.3.self_attn.q_proj.weight", Kind::AttnQ),
            ("model.layers.3.self_attn.q_proj.bias", Kind::Biases),
            ("model.layers.0.self_attn.qkv_proj.weight", Kind::AttnQkv),
            ("model.layers.0.mlp.gate_up_proj.weight", Kind::MlpGateUp),
            ("model.layers.0.mlp.up_proj.weight", Kind::MlpUp),
            ("model.layers.0.mlp.down_proj.weight", Kind::MlpDown),
            ("model.layers.0.self_attn.k_norm.weight", Kind::Norms),
            (
                "model.layers.0.post_feedforward_layernorm.weight",
                Kind::Norms,
            ),
            ("model.norm.weight", Kind::Norms),
            ("model.layers.0.self_attn.rotary_emb.inv_freq", Kind::Other),
            ("rope_factors_long.weight", Kind::Other),
        ];
        for (name, kind) in cases {
            assert_eq!(Kind::of(name), kind, "{name}");
        }
        assert_eq!(Kind::MlpGateUp.name(), "mlp_gate_up");
    }
}
