//! `config.json` parsing for the Llama family (Llama, Qwen2, Mistral).
//!
//! We parse configs ourselves rather than through candle-transformers' structs because the Hub
//! holds two styles: transformers-4 (top-level `rope_theta`, `rope_scaling`, integer
//! `sliding_window`) and transformers-5 (`rope_parameters: {rope_theta, rope_type, ..}`,
//! `sliding_window: null`, `dtype`). Reading the second style with the first's struct silently
//! falls back to the default rope_theta, which changes every logit.

use std::path::Path;

use serde_json::Value;

use crate::engine::error::EngineError;

/// The architectures this engine runs, as named in `config.json`'s `architectures`.
pub const SUPPORTED_ARCHITECTURES: &[&str] =
    &["LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
    Mistral,
}

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
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Tokens a query may look back, itself included (Mistral, Qwen2 with `use_sliding_window`).
    pub sliding_window: Option<usize>,
    /// Per layer, whether it uses the sliding window (Qwen2's `layer_types`, or derived from
    /// `max_window_layers`); empty means every layer does when a window is set.
    pub sliding_layers: Vec<bool>,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// The dtype the weights were saved in (`dtype` or `torch_dtype`), informational.
    pub stored_dtype: Option<String>,
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::invalid(path, format!("not valid JSON: {e}")))?;
        Self::from_json(&value).map_err(|msg| EngineError::invalid(path, msg))
    }

    pub fn from_json(v: &Value) -> Result<Self, String> {
        let architecture = parse_architecture(v)?;
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
        let head_dim = opt_usize(v, "head_dim")?.unwrap_or(hidden_size / num_attention_heads);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(format!(
                "head_dim must be a positive even number, got {head_dim}"
            ));
        }
        let (rope_theta, rope_scaling) = parse_rope(v)?;
        let sliding_window = parse_sliding_window(v, architecture)?;
        let num_hidden_layers = req_usize(v, "num_hidden_layers")?;
        if num_hidden_layers > MAX_LAYERS {
            return Err(format!(
                "num_hidden_layers is {num_hidden_layers}; genarm loads at most {} layers",
                MAX_LAYERS
            ));
        }
        let sliding_layers = parse_sliding_layers(v, architecture, num_hidden_layers)?;
        // transformers hard-codes the biases of Qwen2 (q/k/v only) and Mistral (none); only
        // Llama reads `attention_bias` / `mlp_bias`.
        let (attention_bias, mlp_bias) = match architecture {
            Architecture::Llama => (
                opt_bool(v, "attention_bias")?.unwrap_or(false),
                opt_bool(v, "mlp_bias")?.unwrap_or(false),
            ),
            Architecture::Qwen2 => (true, false),
            Architecture::Mistral => (false, false),
        };
        // transformers' per-architecture default context lengths.
        let default_context = match architecture {
            Architecture::Llama => 2048,
            Architecture::Qwen2 => 32768,
            Architecture::Mistral => 131_072,
        };
        let config = Self {
            architecture,
            vocab_size: req_usize(v, "vocab_size")?,
            hidden_size,
            intermediate_size: req_usize(v, "intermediate_size")?,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: opt_f64(v, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: opt_usize(v, "max_position_embeddings")?
                .unwrap_or(default_context),
            tie_word_embeddings: opt_bool(v, "tie_word_embeddings")?.unwrap_or(false),
            sliding_window,
            sliding_layers,
            attention_bias,
            mlp_bias,
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
}

fn parse_architecture(v: &Value) -> Result<Architecture, String> {
    let names: Vec<&str> = match v.get("architectures") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let model_type = v.get("model_type").and_then(Value::as_str);
    for name in &names {
        match *name {
            "LlamaForCausalLM" => return Ok(Architecture::Llama),
            "Qwen2ForCausalLM" => return Ok(Architecture::Qwen2),
            "MistralForCausalLM" => return Ok(Architecture::Mistral),
            _ => {}
        }
    }
    if names.is_empty() {
        match model_type {
            Some("llama") => return Ok(Architecture::Llama),
            Some("qwen2") => return Ok(Architecture::Qwen2),
            Some("mistral") => return Ok(Architecture::Mistral),
            _ => {}
        }
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

/// rope_theta and scaling, from either `rope_parameters` (transformers 5) or the top-level
/// `rope_theta` / `rope_scaling` keys (transformers 4).
fn parse_rope(v: &Value) -> Result<(f32, RopeScaling), String> {
    let params = v.get("rope_parameters").filter(|p| p.is_object());
    let theta = match params.and_then(|p| p.get("rope_theta")) {
        Some(t) => t
            .as_f64()
            .ok_or("rope_parameters.rope_theta must be a number")?,
        None => opt_f64(v, "rope_theta")?.unwrap_or(10_000.0),
    };
    let scaling = params.or_else(|| v.get("rope_scaling").filter(|s| s.is_object()));
    let scaling = match scaling {
        None => RopeScaling::None,
        Some(s) => {
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
            match kind {
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
                other => {
                    return Err(format!(
                        "unsupported rope scaling type '{other}' (supported: default, linear, llama3)"
                    ));
                }
            }
        }
    };
    Ok((theta as f32, scaling))
}

fn parse_sliding_window(v: &Value, arch: Architecture) -> Result<Option<usize>, String> {
    let window = opt_usize(v, "sliding_window")?;
    Ok(match arch {
        Architecture::Llama => None,
        // A Mistral config without the key gets transformers' default of 4096; `null` is off.
        Architecture::Mistral if v.get("sliding_window").is_none() => Some(4096),
        Architecture::Mistral => window,
        // Qwen2 configs carry a window they do not use unless `use_sliding_window` is set.
        Architecture::Qwen2 => {
            if opt_bool(v, "use_sliding_window")?.unwrap_or(false) {
                window
            } else {
                None
            }
        }
    })
}

/// Which layers use the window: Qwen2's explicit `layer_types` when present (transformers 5
/// writes it), otherwise layers from `max_window_layers` on (default 28), as transformers
/// derives them. Other architectures: every layer.
fn parse_sliding_layers(v: &Value, arch: Architecture, layers: usize) -> Result<Vec<bool>, String> {
    if let Some(Value::Array(types)) = v.get("layer_types") {
        if types.len() != layers {
            return Err(format!(
                "'layer_types' lists {} layers, num_hidden_layers is {layers}",
                types.len()
            ));
        }
        return Ok(types
            .iter()
            .map(|t| t.as_str() == Some("sliding_attention"))
            .collect());
    }
    Ok(match arch {
        Architecture::Qwen2 => {
            let first = opt_usize(v, "max_window_layers")?.unwrap_or(28);
            (0..layers).map(|i| i >= first).collect()
        }
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
}
