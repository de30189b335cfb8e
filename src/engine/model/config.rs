//! `config.json` parsing for every family the decoder runs: Llama, Qwen2, Mistral, Qwen3,
//! Gemma 2, Gemma 3 (text), Phi-3, OLMo 2 and SmolLM3.
//!
//! We parse configs ourselves rather than through candle-transformers' structs because the Hub
//! holds two styles: transformers-4 (top-level `rope_theta`, `rope_scaling`, integer
//! `sliding_window`) and transformers-5 (`rope_parameters: {rope_theta, rope_type, ..}`,
//! `sliding_window: null`, `dtype`). Reading the second style with the first's struct silently
//! falls back to the default rope_theta, which changes every logit.
//!
//! The families differ in a handful of switches (where the norms sit, q/k norms, soft-capping,
//! which layers rotate or slide); [`FAMILIES`] holds what transformers defaults per family and
//! `ModelConfig::from_json` turns a config into those switches, so one decoder runs them all.

use std::path::Path;

use serde_json::Value;

use crate::engine::error::EngineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
    Mistral,
    Qwen3,
    Gemma2,
    Gemma3,
    Phi3,
    Olmo2,
    SmolLm3,
}

/// What transformers assumes for a family when config.json leaves a field out.
struct Family {
    architecture: Architecture,
    class: &'static str,
    model_type: &'static str,
    context: usize,
    rms_norm_eps: f64,
    tie_word_embeddings: bool,
    /// `head_dim` when absent (else hidden_size / num_attention_heads).
    head_dim: Option<usize>,
}

const fn family(
    architecture: Architecture,
    class: &'static str,
    model_type: &'static str,
    context: usize,
    rms_norm_eps: f64,
    tie_word_embeddings: bool,
    head_dim: Option<usize>,
) -> Family {
    Family {
        architecture,
        class,
        model_type,
        context,
        rms_norm_eps,
        tie_word_embeddings,
        head_dim,
    }
}

/// The defaults of each family's configuration class in transformers 5.24.
const FAMILIES: &[Family] = &[
    family(
        Architecture::Llama,
        "LlamaForCausalLM",
        "llama",
        2048,
        1e-6,
        false,
        None,
    ),
    family(
        Architecture::Qwen2,
        "Qwen2ForCausalLM",
        "qwen2",
        32768,
        1e-6,
        false,
        None,
    ),
    family(
        Architecture::Mistral,
        "MistralForCausalLM",
        "mistral",
        131_072,
        1e-6,
        false,
        None,
    ),
    family(
        Architecture::Qwen3,
        "Qwen3ForCausalLM",
        "qwen3",
        32768,
        1e-6,
        false,
        Some(128),
    ),
    family(
        Architecture::Gemma2,
        "Gemma2ForCausalLM",
        "gemma2",
        8192,
        1e-6,
        true,
        Some(256),
    ),
    family(
        Architecture::Gemma3,
        "Gemma3ForCausalLM",
        "gemma3_text",
        131_072,
        1e-6,
        true,
        Some(256),
    ),
    family(
        Architecture::Phi3,
        "Phi3ForCausalLM",
        "phi3",
        4096,
        1e-5,
        false,
        None,
    ),
    family(
        Architecture::Olmo2,
        "Olmo2ForCausalLM",
        "olmo2",
        2048,
        1e-5,
        false,
        None,
    ),
    family(
        Architecture::SmolLm3,
        "SmolLM3ForCausalLM",
        "smollm3",
        32768,
        1e-6,
        true,
        None,
    ),
];

/// The architectures this engine runs, as named in `config.json`'s `architectures`.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "LlamaForCausalLM",
    "Qwen2ForCausalLM",
    "MistralForCausalLM",
    "Qwen3ForCausalLM",
    "Gemma2ForCausalLM",
    "Gemma3ForCausalLM",
    "Phi3ForCausalLM",
    "Olmo2ForCausalLM",
    "SmolLM3ForCausalLM",
];

/// How rotary frequencies are scaled for long contexts.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (HF "linear").
    Linear {
        factor: f32,
    },
    /// Llama 3.x frequency-dependent scaling (HF "llama3").
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: f32,
    },
    /// Phi-3's LongRoPE ("longrope", formerly "su"): per-frequency divisors, `short_factor`
    /// while the sequence fits `original_max_position_embeddings`, `long_factor` beyond; cos and
    /// sin scaled by `attention_factor`.
    LongRope {
        short_factor: Vec<f32>,
        long_factor: Vec<f32>,
        original_max_position_embeddings: usize,
        attention_factor: f32,
    },
}

/// One set of rotary parameters (Gemma 3 has two: global and local layers).
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    pub theta: f32,
    pub scaling: RopeScaling,
}

/// Which rotary parameters a layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerRope {
    Global,
    /// Gemma 3's sliding layers: `rope_local_base_freq` / `rope_parameters.sliding_attention`.
    Local,
    /// SmolLM3's NoPE layers.
    Off,
}

/// Where a block's RMSNorms sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockNorms {
    /// Before attention and before the MLP (Llama).
    Pre,
    /// Before and after each (Gemma 2/3).
    Sandwich,
    /// After each, on its output, before the residual add (OLMo 2).
    Post,
}

/// RMSNorm applied to queries and keys before the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkNorm {
    None,
    /// Over each head (Qwen3, Gemma 3): weights of head_dim.
    PerHead,
    /// Over the whole projection (OLMo 2): weights of heads * head_dim.
    Whole,
}

/// The MLP's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU with the tanh approximation (`gelu_pytorch_tanh`, Gemma).
    GeluTanh,
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f32,
    pub rope_scaling: RopeScaling,
    /// Rotary parameters of Gemma 3's local layers.
    pub local_rope: Option<Rope>,
    /// Per layer, which rotary parameters it uses; empty means every layer the global ones.
    pub layer_ropes: Vec<LayerRope>,
    /// Fraction of each head that rotates (Phi-3's `partial_rotary_factor`), the first dims.
    pub partial_rotary_factor: f32,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Tokens a query may look back, itself included (Mistral, Qwen2 with `use_sliding_window`).
    pub sliding_window: Option<usize>,
    /// Per layer, whether it uses the sliding window (Qwen2's `layer_types`, or derived from
    /// `max_window_layers`); empty means every layer does when a window is set.
    pub sliding_layers: Vec<bool>,
    pub attention_bias: bool,
    /// Whether o_proj has a bias too (Llama's `attention_bias` covers it, Qwen2's q/k/v only).
    pub o_proj_bias: bool,
    pub mlp_bias: bool,
    pub block_norms: BlockNorms,
    pub qk_norm: QkNorm,
    /// Gemma's RMSNorm multiplies by (1 + weight): 1.0 there, 0.0 elsewhere.
    pub norm_weight_offset: f32,
    /// Embeddings multiplied by sqrt(hidden_size) (Gemma).
    pub scale_embeddings: bool,
    pub activation: Activation,
    /// Multiplier of q·k: head_dim^-0.5, or Gemma's query_pre_attn_scalar^-0.5.
    pub attention_scale: f64,
    /// Attention scores become cap·tanh(score / cap) (Gemma 2).
    pub attn_logit_softcapping: Option<f32>,
    /// Output logits become cap·tanh(logit / cap) (Gemma 2).
    pub final_logit_softcapping: Option<f32>,
    /// q/k/v and gate/up stored as one matrix each (Phi-3's qkv_proj, gate_up_proj).
    pub fused_projections: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// The dtype the weights were saved in (`dtype` or `torch_dtype`), informational.
    pub stored_dtype: Option<String>,
}

/// The per-family switches, derived once from config.json.
struct Switches {
    attention_bias: bool,
    o_proj_bias: bool,
    mlp_bias: bool,
    block_norms: BlockNorms,
    qk_norm: QkNorm,
    norm_weight_offset: f32,
    scale_embeddings: bool,
    activation: Activation,
    attention_scale: f64,
    attn_logit_softcapping: Option<f32>,
    final_logit_softcapping: Option<f32>,
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::invalid(path, format!("not valid JSON: {e}")))?;
        Self::from_json(&value).map_err(|msg| EngineError::invalid(path, msg))
    }

    pub fn from_json(v: &Value) -> Result<Self, String> {
        let family = parse_architecture(v)?;
        let architecture = family.architecture;
        let hidden_size = req_usize(v, "hidden_size")?;
        let num_attention_heads = req_usize(v, "num_attention_heads")?;
        if num_attention_heads == 0 || hidden_size == 0 {
            return Err("hidden_size and num_attention_heads must be positive".into());
        }
        let num_key_value_heads =
            opt_usize(v, "num_key_value_heads")?.unwrap_or(num_attention_heads);
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(format!(
                "num_attention_heads ({num_attention_heads}) must be a multiple of num_key_value_heads ({num_key_value_heads})"
            ));
        }
        let head_dim = opt_usize(v, "head_dim")?
            .or(family.head_dim)
            .unwrap_or(hidden_size / num_attention_heads);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(format!(
                "head_dim must be a positive even number, got {head_dim}"
            ));
        }
        let num_hidden_layers = req_usize(v, "num_hidden_layers")?;
        if num_hidden_layers > MAX_LAYERS {
            return Err(format!(
                "num_hidden_layers is {num_hidden_layers}; genarm loads at most {} layers",
                MAX_LAYERS
            ));
        }
        let (rope, local_rope) = parse_ropes(v, architecture)?;
        let partial_rotary_factor = parse_partial_rotary(v, architecture, head_dim, &rope)?;
        let rope_on = parse_rope_layers(v, architecture, num_hidden_layers)?;
        let sliding_window = parse_sliding_window(v, architecture)?;
        let sliding_layers = parse_sliding_layers(v, architecture, num_hidden_layers, &rope_on)?;
        let layer_ropes = match architecture {
            Architecture::Gemma3 => sliding_layers
                .iter()
                .map(|&s| {
                    if s {
                        LayerRope::Local
                    } else {
                        LayerRope::Global
                    }
                })
                .collect(),
            _ => rope_on
                .iter()
                .map(|&on| {
                    if on {
                        LayerRope::Global
                    } else {
                        LayerRope::Off
                    }
                })
                .collect(),
        };
        let s = parse_switches(v, architecture, head_dim)?;
        let config = Self {
            architecture,
            vocab_size: req_usize(v, "vocab_size")?,
            hidden_size,
            intermediate_size: req_usize(v, "intermediate_size")?,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: opt_f64(v, "rms_norm_eps")?.unwrap_or(family.rms_norm_eps),
            rope_theta: rope.theta,
            rope_scaling: rope.scaling,
            local_rope,
            layer_ropes,
            partial_rotary_factor,
            max_position_embeddings: opt_usize(v, "max_position_embeddings")?
                .unwrap_or(family.context),
            tie_word_embeddings: opt_bool(v, "tie_word_embeddings")?
                .unwrap_or(family.tie_word_embeddings),
            sliding_window,
            sliding_layers,
            attention_bias: s.attention_bias,
            o_proj_bias: s.o_proj_bias,
            mlp_bias: s.mlp_bias,
            block_norms: s.block_norms,
            qk_norm: s.qk_norm,
            norm_weight_offset: s.norm_weight_offset,
            scale_embeddings: s.scale_embeddings,
            activation: s.activation,
            attention_scale: s.attention_scale,
            attn_logit_softcapping: s.attn_logit_softcapping,
            final_logit_softcapping: s.final_logit_softcapping,
            fused_projections: architecture == Architecture::Phi3,
            bos_token_id: token_ids(v.get("bos_token_id")).first().copied(),
            eos_token_ids: token_ids(v.get("eos_token_id")),
            stored_dtype: v
                .get("dtype")
                .or_else(|| v.get("torch_dtype"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        check_sizes(&config)?;
        check_numbers(&config)?;
        Ok(config)
    }

    /// The window of layer `index`, if it uses one.
    pub fn layer_window(&self, index: usize) -> Option<usize> {
        match self.sliding_layers.get(index) {
            Some(false) => None,
            _ => self.sliding_window,
        }
    }

    /// The rotary parameters of layer `index`: None for a layer without rotary embeddings.
    pub fn layer_rope(&self, index: usize) -> LayerRope {
        self.layer_ropes
            .get(index)
            .copied()
            .unwrap_or(LayerRope::Global)
    }

    /// Dimensions of each head that rotate (the first ones).
    pub fn rotary_dim(&self) -> usize {
        rotary_dim(self.head_dim, self.partial_rotary_factor)
    }
}

fn rotary_dim(head_dim: usize, factor: f32) -> usize {
    (head_dim as f64 * f64::from(factor)) as usize
}

fn parse_architecture(v: &Value) -> Result<&'static Family, String> {
    let names: Vec<&str> = match v.get("architectures") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let model_type = v.get("model_type").and_then(Value::as_str);
    for name in &names {
        if let Some(f) = FAMILIES.iter().find(|f| f.class == *name) {
            return Ok(f);
        }
    }
    if names.is_empty()
        && let Some(f) = FAMILIES.iter().find(|f| Some(f.model_type) == model_type)
    {
        return Ok(f);
    }
    let found = if names.is_empty() {
        model_type.unwrap_or("none given").to_string()
    } else {
        names.join(", ")
    };
    Err(format!(
        "unsupported architecture {found}; supported: {}",
        SUPPORTED_ARCHITECTURES.join(", ")
    ))
}

/// Biases, norm placement, activation, attention scale and soft-capping of a family.
fn parse_switches(v: &Value, arch: Architecture, head_dim: usize) -> Result<Switches, String> {
    use Architecture as A;
    let gemma = matches!(arch, A::Gemma2 | A::Gemma3);
    if gemma && opt_bool(v, "use_bidirectional_attention")?.unwrap_or(false) {
        return Err("'use_bidirectional_attention' is true: not a causal language model".into());
    }
    let attention_bias = opt_bool(v, "attention_bias")?.unwrap_or(false);
    // transformers hard-codes the biases of Qwen2 (q/k/v only), Mistral and Phi-3 (none); the
    // others read `attention_bias` (all four projections), Llama and SmolLM3 `mlp_bias` too.
    let (attention_bias, o_proj_bias, mlp_bias) = match arch {
        A::Qwen2 => (true, false, false),
        A::Mistral | A::Phi3 => (false, false, false),
        A::Llama | A::SmolLm3 => (
            attention_bias,
            attention_bias,
            opt_bool(v, "mlp_bias")?.unwrap_or(false),
        ),
        A::Qwen3 | A::Gemma2 | A::Gemma3 | A::Olmo2 => (attention_bias, attention_bias, false),
    };
    let activation_key = if gemma && v.get("hidden_activation").is_some() {
        "hidden_activation"
    } else {
        "hidden_act"
    };
    let activation = match v.get(activation_key).and_then(Value::as_str) {
        None if gemma => Activation::GeluTanh,
        None | Some("silu" | "swish") => Activation::Silu,
        Some("gelu_pytorch_tanh" | "gelu_new") => Activation::GeluTanh,
        Some(other) => {
            return Err(format!(
                "'{activation_key}' is '{other}'; supported: silu, gelu_pytorch_tanh"
            ));
        }
    };
    let softcap = |key: &str, default: Option<f64>| -> Result<Option<f32>, String> {
        let value = match v.get(key) {
            None => default,
            Some(_) => opt_f64(v, key)?,
        };
        match value {
            Some(c) if c <= 0.0 => Err(format!("'{key}' must be positive, got {c}")),
            c => Ok(c.map(|c| c as f32)),
        }
    };
    let (attn_cap, final_cap) = match arch {
        A::Gemma2 => (
            softcap("attn_logit_softcapping", Some(50.0))?,
            softcap("final_logit_softcapping", Some(30.0))?,
        ),
        A::Gemma3 => (
            softcap("attn_logit_softcapping", None)?,
            softcap("final_logit_softcapping", None)?,
        ),
        _ => (None, None),
    };
    let scale_base = if gemma {
        opt_f64(v, "query_pre_attn_scalar")?.unwrap_or(256.0)
    } else {
        head_dim as f64
    };
    if scale_base <= 0.0 {
        return Err(format!(
            "'query_pre_attn_scalar' must be positive, got {scale_base}"
        ));
    }
    Ok(Switches {
        attention_bias,
        o_proj_bias,
        mlp_bias,
        block_norms: match arch {
            A::Gemma2 | A::Gemma3 => BlockNorms::Sandwich,
            A::Olmo2 => BlockNorms::Post,
            _ => BlockNorms::Pre,
        },
        qk_norm: match arch {
            A::Qwen3 | A::Gemma3 => QkNorm::PerHead,
            A::Olmo2 => QkNorm::Whole,
            _ => QkNorm::None,
        },
        norm_weight_offset: if gemma { 1.0 } else { 0.0 },
        scale_embeddings: gemma,
        activation,
        attention_scale: scale_base.powf(-0.5),
        attn_logit_softcapping: attn_cap,
        final_logit_softcapping: final_cap,
    })
}

/// The global rotary parameters, and Gemma 3's local ones.
fn parse_ropes(v: &Value, arch: Architecture) -> Result<(Rope, Option<Rope>), String> {
    if arch != Architecture::Gemma3 {
        return Ok((parse_rope(v, v.get("rope_parameters"), 10_000.0)?, None));
    }
    // transformers 5 writes {"full_attention": {..}, "sliding_attention": {..}}; transformers 4
    // `rope_theta` / `rope_scaling` for the global layers and `rope_local_base_freq`.
    let nested = v
        .get("rope_parameters")
        .filter(|p| p.get("full_attention").is_some() || p.get("sliding_attention").is_some());
    if let Some(p) = nested {
        let global = parse_rope(v, p.get("full_attention"), 1_000_000.0)?;
        let local = parse_rope(v, p.get("sliding_attention"), 10_000.0)?;
        return Ok((global, Some(local)));
    }
    let global = parse_rope(v, v.get("rope_parameters"), 1_000_000.0)?;
    let local = Rope {
        theta: opt_f64(v, "rope_local_base_freq")?.unwrap_or(10_000.0) as f32,
        scaling: RopeScaling::None,
    };
    Ok((global, Some(local)))
}

/// rope_theta and scaling, from a `rope_parameters` object (transformers 5) or the top-level
/// `rope_theta` / `rope_scaling` keys (transformers 4).
fn parse_rope(v: &Value, params: Option<&Value>, default_theta: f64) -> Result<Rope, String> {
    let params = params.filter(|p| p.is_object());
    let theta = match params.and_then(|p| p.get("rope_theta")) {
        Some(t) => t
            .as_f64()
            .ok_or("rope_parameters.rope_theta must be a number")?,
        None => opt_f64(v, "rope_theta")?.unwrap_or(default_theta),
    };
    let scaling = params.or_else(|| v.get("rope_scaling").filter(|s| s.is_object()));
    let scaling = match scaling {
        None => RopeScaling::None,
        Some(s) => parse_scaling(v, s)?,
    };
    Ok(Rope {
        theta: theta as f32,
        scaling,
    })
}

fn parse_scaling(v: &Value, s: &Value) -> Result<RopeScaling, String> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |key: &str| -> Result<f32, String> {
        s.get(key)
            .and_then(Value::as_f64)
            .map(|x| x as f32)
            .ok_or_else(|| format!("rope scaling '{kind}' needs a numeric '{key}'"))
    };
    Ok(match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: num("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")?,
        },
        "longrope" | "su" => parse_longrope(v, s, kind)?,
        other => {
            return Err(format!(
                "unsupported rope scaling type '{other}' (supported: default, linear, llama3, longrope)"
            ));
        }
    })
}

/// LongRoPE as transformers computes it: `factor` defaults to max_position_embeddings /
/// original_max_position_embeddings, `attention_factor` to sqrt(1 + ln(factor) / ln(original)).
fn parse_longrope(v: &Value, s: &Value, kind: &str) -> Result<RopeScaling, String> {
    let factors = |key: &str| -> Result<Vec<f32>, String> {
        let items = s
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("rope scaling '{kind}' needs a list '{key}'"))?;
        items
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| format!("rope scaling '{key}' must hold numbers only"))
    };
    let original = match s.get("original_max_position_embeddings") {
        Some(x) => x.as_u64().map(|n| n as usize).ok_or_else(|| {
            format!("'original_max_position_embeddings' must be a positive integer, got {x}")
        })?,
        None => req_usize(v, "original_max_position_embeddings")?,
    };
    if original < 2 {
        return Err("'original_max_position_embeddings' must be at least 2".into());
    }
    let factor = match s.get("factor").and_then(Value::as_f64) {
        Some(f) => f,
        None => opt_usize(v, "max_position_embeddings")?.unwrap_or(4096) as f64 / original as f64,
    };
    let attention_factor = match s.get("attention_factor").and_then(Value::as_f64) {
        Some(a) => a,
        None if factor <= 1.0 => 1.0,
        None => (1.0 + factor.ln() / (original as f64).ln()).sqrt(),
    };
    Ok(RopeScaling::LongRope {
        short_factor: factors("short_factor")?,
        long_factor: factors("long_factor")?,
        original_max_position_embeddings: original,
        attention_factor: attention_factor as f32,
    })
}

/// Phi-3's `partial_rotary_factor` (in `rope_parameters`, or top-level in transformers 4
/// configs), checked against head_dim and the LongRoPE factor lists. Other families rotate
/// whole heads.
fn parse_partial_rotary(
    v: &Value,
    arch: Architecture,
    head_dim: usize,
    rope: &Rope,
) -> Result<f32, String> {
    let factor = match arch {
        Architecture::Phi3 => {
            let nested = v
                .get("rope_parameters")
                .and_then(|p| p.get("partial_rotary_factor"));
            match nested {
                Some(x) => x
                    .as_f64()
                    .ok_or("rope_parameters.partial_rotary_factor must be a number")?,
                None => opt_f64(v, "partial_rotary_factor")?.unwrap_or(1.0),
            }
        }
        _ => 1.0,
    };
    let dim = rotary_dim(head_dim, factor as f32);
    if !(factor > 0.0 && factor <= 1.0) || dim == 0 || !dim.is_multiple_of(2) {
        return Err(format!(
            "'partial_rotary_factor' {factor} gives {dim} rotary dimensions of head_dim {head_dim}; it must be a positive even number"
        ));
    }
    if let RopeScaling::LongRope {
        short_factor,
        long_factor,
        ..
    } = &rope.scaling
    {
        for (key, list) in [("short_factor", short_factor), ("long_factor", long_factor)] {
            if list.len() != dim / 2 {
                return Err(format!(
                    "rope scaling '{key}' has {} entries; {dim} rotary dimensions need {}",
                    list.len(),
                    dim / 2
                ));
            }
        }
    }
    Ok(factor as f32)
}

/// Per layer, whether it applies rotary embeddings: SmolLM3's `no_rope_layers` (1 = rotate),
/// else every `no_rope_layer_interval`-th layer (default 4) without. Empty for other families.
fn parse_rope_layers(v: &Value, arch: Architecture, layers: usize) -> Result<Vec<bool>, String> {
    if arch != Architecture::SmolLm3 {
        return Ok(Vec::new());
    }
    if let Some(list) = v.get("no_rope_layers").filter(|l| !l.is_null()) {
        let items = list
            .as_array()
            .ok_or("'no_rope_layers' must be a list of 0 and 1")?;
        if items.len() != layers {
            return Err(format!(
                "'no_rope_layers' lists {} layers, num_hidden_layers is {layers}",
                items.len()
            ));
        }
        return items
            .iter()
            .map(|x| match x.as_u64() {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(format!("'no_rope_layers' must hold 0 or 1, got {x}")),
            })
            .collect();
    }
    let interval = opt_usize(v, "no_rope_layer_interval")?.unwrap_or(4);
    if interval == 0 {
        return Err("'no_rope_layer_interval' must be positive".into());
    }
    Ok((0..layers).map(|i| (i + 1) % interval != 0).collect())
}

fn parse_sliding_window(v: &Value, arch: Architecture) -> Result<Option<usize>, String> {
    use Architecture as A;
    let window = opt_usize(v, "sliding_window")?;
    if window == Some(0) {
        return Err("'sliding_window' must be positive".into());
    }
    Ok(match arch {
        A::Llama | A::Olmo2 => None,
        // A config without the key gets transformers' default; `null` is off.
        A::Mistral if v.get("sliding_window").is_none() => Some(4096),
        A::Gemma2 | A::Gemma3 if v.get("sliding_window").is_none() => Some(4096),
        A::Mistral | A::Gemma2 | A::Gemma3 | A::Phi3 => window,
        // These carry a window they do not use unless `use_sliding_window` is set.
        A::Qwen2 | A::Qwen3 | A::SmolLm3 => {
            if opt_bool(v, "use_sliding_window")?.unwrap_or(false) {
                window
            } else {
                None
            }
        }
    })
}

/// Which layers use the window: the explicit `layer_types` when present (transformers 5
/// writes it), otherwise as each family's config class derives them. Empty: every layer.
fn parse_sliding_layers(
    v: &Value,
    arch: Architecture,
    layers: usize,
    rope_on: &[bool],
) -> Result<Vec<bool>, String> {
    if let Some(Value::Array(types)) = v.get("layer_types") {
        if types.len() != layers {
            return Err(format!(
                "'layer_types' lists {} layers, num_hidden_layers is {layers}",
                types.len()
            ));
        }
        return types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(format!(
                    "'layer_types' entries must be \"sliding_attention\" or \"full_attention\", got {t}"
                )),
            })
            .collect();
    }
    Ok(match arch {
        Architecture::Qwen2 | Architecture::Qwen3 => {
            let first = opt_usize(v, "max_window_layers")?.unwrap_or(28);
            (0..layers).map(|i| i >= first).collect()
        }
        Architecture::Gemma2 => (0..layers).map(|i| (i + 1) % 2 != 0).collect(),
        Architecture::Gemma3 => {
            let pattern = opt_usize(v, "sliding_window_pattern")?.unwrap_or(6);
            if pattern == 0 {
                return Err("'sliding_window_pattern' must be positive".into());
            }
            (0..layers).map(|i| (i + 1) % pattern != 0).collect()
        }
        // SmolLM3 slides on its NoPE layers only.
        Architecture::SmolLm3 => rope_on.iter().map(|on| !on).collect(),
        _ => Vec::new(),
    })
}

/// More layers than any published model has by two orders of magnitude; a config claiming more
/// is refused before anything is sized by it.
pub const MAX_LAYERS: usize = 1 << 14;

/// Larger than any dimension of a published model by two orders of magnitude (vocabularies
/// reach 262k, hidden sizes 16k): a config claiming more is refused before any size is
/// computed from it, so no product of two dimensions can overflow.
pub const MAX_DIMENSION: usize = 1 << 24;

fn check_sizes(cfg: &ModelConfig) -> Result<(), String> {
    for (name, value) in [
        ("vocab_size", cfg.vocab_size),
        ("hidden_size", cfg.hidden_size),
        ("intermediate_size", cfg.intermediate_size),
        ("num_attention_heads", cfg.num_attention_heads),
        ("num_key_value_heads", cfg.num_key_value_heads),
        ("head_dim", cfg.head_dim),
    ] {
        if value > MAX_DIMENSION {
            return Err(format!(
                "{name} is {value}; genarm loads dimensions up to {MAX_DIMENSION}"
            ));
        }
    }
    Ok(())
}

/// Values of config.json that make every logit NaN or infinite however good the weights are.
pub fn check_numbers(cfg: &ModelConfig) -> std::result::Result<(), String> {
    let positive = |name: &str, value: f64| {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(format!(
                "{name} must be a positive finite number, got {value}"
            ))
        }
    };
    if !(cfg.rms_norm_eps.is_finite() && cfg.rms_norm_eps >= 0.0) {
        return Err(format!(
            "rms_norm_eps must be a finite number >= 0, got {}",
            cfg.rms_norm_eps
        ));
    }
    positive("rope_theta", f64::from(cfg.rope_theta))?;
    match &cfg.rope_scaling {
        RopeScaling::Linear { factor } => positive("rope scaling factor", f64::from(*factor))?,
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            positive("rope scaling factor", f64::from(*factor))?;
            positive("rope scaling low_freq_factor", f64::from(*low_freq_factor))?;
            positive(
                "rope scaling high_freq_factor",
                f64::from(*high_freq_factor),
            )?;
            positive(
                "rope scaling original_max_position_embeddings",
                f64::from(*original_max_position_embeddings),
            )?;
            // transformers divides by their difference.
            if high_freq_factor <= low_freq_factor {
                return Err(format!(
                    "rope scaling high_freq_factor ({high_freq_factor}) must exceed \
                     low_freq_factor ({low_freq_factor})"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Token ids given as an integer or a list of integers (eos_token_id often is a list).
pub fn token_ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_u64)
            .map(|x| x as u32)
            .collect(),
        _ => Vec::new(),
    }
}

fn req_usize(v: &Value, key: &str) -> Result<usize, String> {
    opt_usize(v, key)?.ok_or_else(|| format!("missing '{key}'"))
}

fn opt_usize(v: &Value, key: &str) -> Result<Option<usize>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("'{key}' must be a non-negative integer, got {x}")),
    }
}

fn opt_f64(v: &Value, key: &str) -> Result<Option<f64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("'{key}' must be a number, got {x}")),
    }
}

fn opt_bool(v: &Value, key: &str) -> Result<Option<bool>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("'{key}' must be true or false, got {x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "architectures": ["LlamaForCausalLM"], "vocab_size": 100, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        })
    }

    #[test]
    fn transformers4_and_5_styles_read_the_same_rope_theta() {
        let mut v4 = base();
        v4["rope_theta"] = json!(500000.0);
        v4["rope_scaling"] = Value::Null;
        let mut v5 = base();
        v5["rope_parameters"] = json!({"rope_theta": 500000.0, "rope_type": "default"});
        v5["sliding_window"] = Value::Null;
        let c4 = ModelConfig::from_json(&v4).unwrap();
        let c5 = ModelConfig::from_json(&v5).unwrap();
        assert_eq!(c4.rope_theta, 500000.0);
        assert_eq!(c5.rope_theta, 500000.0);
        assert_eq!(c5.rope_scaling, RopeScaling::None);
    }

    #[test]
    fn llama3_scaling_in_both_styles() {
        let scaling = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
        let mut v4 = base();
        v4["rope_scaling"] = scaling.clone();
        let mut v5 = base();
        let mut params = scaling;
        params["rope_theta"] = json!(500000.0);
        v5["rope_parameters"] = params;
        let c4 = ModelConfig::from_json(&v4).unwrap();
        let c5 = ModelConfig::from_json(&v5).unwrap();
        assert_eq!(c4.rope_scaling, c5.rope_scaling);
        assert_eq!(c4.rope_theta, 10000.0);
        assert_eq!(c5.rope_theta, 500000.0);
    }

    #[test]
    fn explicit_head_dim_and_defaults() {
        let mut v = base();
        v["head_dim"] = json!(32);
        v["num_key_value_heads"] = json!(2);
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.head_dim, 32);
        assert_eq!(c.num_key_value_heads, 2);
        let c = ModelConfig::from_json(&base()).unwrap();
        assert_eq!(c.head_dim, 16);
        assert_eq!(c.num_key_value_heads, 4);
    }

    #[test]
    fn unknown_architecture_lists_supported_ones() {
        let mut v = base();
        v["architectures"] = json!(["GPT2LMHeadModel"]);
        let err = ModelConfig::from_json(&v).unwrap_err();
        assert!(err.contains("GPT2LMHeadModel"), "{err}");
        assert!(err.contains("Qwen2ForCausalLM"), "{err}");
    }

    #[test]
    fn unsupported_rope_type_is_refused() {
        let mut v = base();
        v["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0});
        assert!(ModelConfig::from_json(&v).unwrap_err().contains("yarn"));
    }

    #[test]
    fn architecture_defaults_follow_transformers() {
        let mut v = base();
        v["architectures"] = json!(["MistralForCausalLM"]);
        v["attention_bias"] = json!(true);
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.sliding_window, Some(4096));
        assert_eq!(c.max_position_embeddings, 131_072);
        assert!(!c.attention_bias, "Mistral has no attention biases");
        v["sliding_window"] = Value::Null;
        assert_eq!(ModelConfig::from_json(&v).unwrap().sliding_window, None);
        v["architectures"] = json!(["Qwen2ForCausalLM"]);
        let c = ModelConfig::from_json(&v).unwrap();
        assert!(c.attention_bias);
        assert_eq!(c.max_position_embeddings, 32768);
    }

    #[test]
    fn eos_as_list_or_integer() {
        let mut v = base();
        v["eos_token_id"] = json!([2, 7]);
        assert_eq!(
            ModelConfig::from_json(&v).unwrap().eos_token_ids,
            vec![2, 7]
        );
        v["eos_token_id"] = json!(3);
        assert_eq!(ModelConfig::from_json(&v).unwrap().eos_token_ids, vec![3]);
    }

    #[test]
    fn qwen2_window_only_when_enabled() {
        let mut v = base();
        v["architectures"] = json!(["Qwen2ForCausalLM"]);
        v["sliding_window"] = json!(4096);
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.sliding_window, None);
        assert!(c.attention_bias);
        v["use_sliding_window"] = json!(true);
        v["max_window_layers"] = json!(1);
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.layer_window(0), None);
        assert_eq!(c.layer_window(1), Some(4096));
        // Without max_window_layers, transformers' default of 28 leaves both layers full.
        v.as_object_mut().unwrap().remove("max_window_layers");
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.layer_window(1), None);
        // An explicit layer_types wins.
        v["layer_types"] = json!(["sliding_attention", "full_attention"]);
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.layer_window(0), Some(4096));
        assert_eq!(c.layer_window(1), None);
    }

    /// transformers-4 style configs as the Hub holds them: the derivations transformers' config
    /// classes make (read in their sources: Gemma2Config, Gemma3TextConfig, Phi3Config,
    /// SmolLM3Config, Qwen3Config) give the same switches as the transformers-5 keys.
    #[test]
    fn family_defaults_in_transformers4_style() {
        let mut v = base();
        v["architectures"] = json!(["Gemma2ForCausalLM"]);
        v["sliding_window"] = json!(4);
        v["num_hidden_layers"] = json!(3);
        let c = ModelConfig::from_json(&v).unwrap();
        // Even layers slide; soft-caps 50 and 30; head_dim 256; query_pre_attn_scalar 256.
        assert_eq!(
            (0..3).map(|i| c.layer_window(i)).collect::<Vec<_>>(),
            [Some(4), None, Some(4)]
        );
        assert_eq!(c.attn_logit_softcapping, Some(50.0));
        assert_eq!(c.final_logit_softcapping, Some(30.0));
        assert_eq!((c.head_dim, c.attention_scale), (256, 1.0 / 16.0));
        assert!(c.tie_word_embeddings && c.scale_embeddings);
        assert_eq!(c.norm_weight_offset, 1.0);
        assert_eq!(c.activation, Activation::GeluTanh);

        v["architectures"] = json!(["Gemma3ForCausalLM"]);
        v["num_hidden_layers"] = json!(7);
        v["rope_theta"] = json!(1_000_000.0);
        v["rope_local_base_freq"] = json!(10_000.0);
        v["rope_scaling"] = json!({"rope_type": "linear", "factor": 8.0});
        let c = ModelConfig::from_json(&v).unwrap();
        // Pattern 6: layer 5 is global, the rest local with their own rope base.
        let ropes: Vec<LayerRope> = (0..7).map(|i| c.layer_rope(i)).collect();
        assert_eq!(ropes[5], LayerRope::Global);
        assert_eq!(ropes[4], LayerRope::Local);
        assert_eq!(c.layer_window(5), None);
        assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 8.0 });
        let local = c.local_rope.clone().unwrap();
        assert_eq!((local.theta, local.scaling), (10_000.0, RopeScaling::None));
        assert_eq!(c.attn_logit_softcapping, None);
        assert_eq!(c.qk_norm, QkNorm::PerHead);

        let mut v = base();
        v["architectures"] = json!(["Phi3ForCausalLM"]);
        v["original_max_position_embeddings"] = json!(4096);
        v["max_position_embeddings"] = json!(131_072);
        v["rope_scaling"] = json!({"type": "su", "short_factor": vec![1.0; 8],
            "long_factor": vec![2.0; 8]});
        let c = ModelConfig::from_json(&v).unwrap();
        let RopeScaling::LongRope {
            attention_factor,
            original_max_position_embeddings,
            ..
        } = c.rope_scaling
        else {
            panic!("expected LongRoPE, got {:?}", c.rope_scaling);
        };
        // sqrt(1 + ln(32) / ln(4096)), as Phi-3-mini-128k's scaling.
        let expected = (1.0 + 32f64.ln() / 4096f64.ln()).sqrt() as f32;
        assert_eq!(
            (attention_factor, original_max_position_embeddings),
            (expected, 4096)
        );
        assert!(c.fused_projections);

        let mut v = base();
        v["architectures"] = json!(["SmolLM3ForCausalLM"]);
        v["num_hidden_layers"] = json!(8);
        let c = ModelConfig::from_json(&v).unwrap();
        let off: Vec<usize> = (0..8)
            .filter(|&i| c.layer_rope(i) == LayerRope::Off)
            .collect();
        assert_eq!(off, [3, 7]);

        let mut v = base();
        v["architectures"] = json!(["Qwen3ForCausalLM"]);
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(
            c.head_dim, 128,
            "Qwen3's default head_dim is not hidden / heads"
        );
        v["architectures"] = json!(["Olmo2ForCausalLM"]);
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(
            (c.block_norms, c.qk_norm),
            (BlockNorms::Post, QkNorm::Whole)
        );
    }

    #[test]
    fn family_values_that_cannot_work_are_refused_by_name() {
        let mut v = base();
        v["architectures"] = json!(["Gemma3ForCausalLM"]);
        v["use_bidirectional_attention"] = json!(true);
        assert!(
            ModelConfig::from_json(&v)
                .unwrap_err()
                .contains("use_bidirectional_attention")
        );
        let mut v = base();
        v["architectures"] = json!(["Gemma2ForCausalLM"]);
        v["hidden_activation"] = json!("relu");
        assert!(
            ModelConfig::from_json(&v)
                .unwrap_err()
                .contains("hidden_activation")
        );
        v["hidden_activation"] = json!("gelu_pytorch_tanh");
        v["attn_logit_softcapping"] = json!(0.0);
        assert!(
            ModelConfig::from_json(&v)
                .unwrap_err()
                .contains("attn_logit_softcapping")
        );
        let mut v = base();
        v["architectures"] = json!(["Phi3ForCausalLM"]);
        v["partial_rotary_factor"] = json!(0.1); // 1 rotary dimension of 16
        assert!(
            ModelConfig::from_json(&v)
                .unwrap_err()
                .contains("partial_rotary_factor")
        );
        v["partial_rotary_factor"] = json!(1.0);
        v["rope_scaling"] =
            json!({"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]});
        let err = ModelConfig::from_json(&v).unwrap_err();
        assert!(err.contains("original_max_position_embeddings"), "{err}");
        let mut v = base();
        v["architectures"] = json!(["SmolLM3ForCausalLM"]);
        v["no_rope_layer_interval"] = json!(0);
        assert!(
            ModelConfig::from_json(&v)
                .unwrap_err()
                .contains("no_rope_layer_interval")
        );
    }
}
