//! PEFT LoRA adapter folders (`adapter_config.json` + `adapter_model.safetensors`) as models:
//! the adapter is merged into its base model's weights at load, `W += scale · B · A`, so the
//! decoding path is the plain one. GenARM's own ARMs are LoRA fine-tunes published this way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use crate::engine::error::{EngineError, Result};
use crate::engine::formats::hub::{self, HubEnv, HubId};
use crate::engine::model::weights::Weights;

pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// What adapter_config.json says.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    pub base_model: PathBuf,
    pub rank: usize,
    pub scale: f64,
}

/// A folder is an adapter when it has adapter_config.json and no config.json of its own (a
/// train-arm LoRA output has both and loads as the merged model it also contains).
pub fn is_adapter_folder(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file() && !dir.join("config.json").is_file()
}

pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| EngineError::invalid(&path, format!("not valid JSON: {e}")))?;
    let bad = |m: String| EngineError::invalid(&path, m);
    match v.get("peft_type").and_then(Value::as_str) {
        Some("LORA") | None => {}
        Some(other) => {
            return Err(bad(format!(
                "peft_type '{other}' is not supported (only LORA)"
            )));
        }
    }
    if v.get("fan_in_fan_out").and_then(Value::as_bool) == Some(true) {
        return Err(bad(
            "fan_in_fan_out adapters (GPT-2 style) are not supported".into(),
        ));
    }
    let rank = v
        .get("r")
        .and_then(Value::as_u64)
        .filter(|&r| r > 0)
        .ok_or_else(|| bad("'r' must be a positive integer".into()))? as usize;
    let alpha = v
        .get("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| bad("missing numeric 'lora_alpha'".into()))?;
    let rslora = v
        .get("use_rslora")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let scale = if rslora {
        alpha / (rank as f64).sqrt()
    } else {
        alpha / rank as f64
    };
    let base = v
        .get("base_model_name_or_path")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing 'base_model_name_or_path'".into()))?;
    // A relative path is taken relative to the adapter folder; what is not a folder there but
    // has the shape of a Hub id (`org/repo`) comes from the Hugging Face cache.
    let local = if Path::new(base).is_absolute() {
        PathBuf::from(base)
    } else {
        dir.join(base)
    };
    let base_model = match HubId::parse(base) {
        Some(id) if !local.exists() => {
            hub::resolve(&id, &HubEnv::from_env()).map_err(|e| bad(format!("base model {e}")))?
        }
        _ => local,
    };
    if !base_model.join("config.json").is_file() {
        return Err(bad(format!(
            "base model '{base}' is neither a model folder on this machine nor a Hub id"
        )));
    }
    Ok(AdapterConfig {
        base_model,
        rank,
        scale,
    })
}

/// Merge the adapter in `dir` into `weights` (the base model's).
pub fn merge_adapter(
    dir: &Path,
    config: &AdapterConfig,
    weights: Weights,
    dtype: DType,
) -> Result<Weights> {
    let path = dir.join("adapter_model.safetensors");
    if !path.is_file() {
        return Err(EngineError::invalid(
            dir,
            "adapter folder without adapter_model.safetensors",
        ));
    }
    let adapter = candle_core::safetensors::load(&path, &Device::Cpu)
        .map_err(|e| EngineError::invalid(&path, format!("cannot read adapter weights: {e}")))?;
    let source = weights.source.clone();
    let mut tensors = weights.into_tensors()?;
    let mut merged = 0;
    for (key, a) in &adapter {
        let Some(module) = key.strip_suffix(".lora_A.weight") else {
            continue;
        };
        let b_key = format!("{module}.lora_B.weight");
        let b = adapter.get(&b_key).ok_or_else(|| {
            EngineError::invalid(&path, format!("'{key}' has no matching '{b_key}'"))
        })?;
        // PEFT prefixes module paths with "base_model.model."; the base's names lack it.
        let name = format!(
            "{}.weight",
            module.strip_prefix("base_model.model.").unwrap_or(module)
        );
        let w = tensors.get(&name).ok_or_else(|| {
            EngineError::invalid(
                &path,
                format!("adapts '{name}', which the base model does not have"),
            )
        })?;
        let (out_dim, in_dim) = w.dims2()?;
        if a.dims() != [config.rank, in_dim] || b.dims() != [out_dim, config.rank] {
            return Err(EngineError::invalid(
                &path,
                format!(
                    "'{module}' has lora_A {:?} and lora_B {:?}, but the base weight is {:?} with r = {} \
                     (wrong base model?)",
                    a.dims(),
                    b.dims(),
                    w.dims(),
                    config.rank
                ),
            ));
        }
        let delta = (b.to_dtype(DType::F32)?.matmul(&a.to_dtype(DType::F32)?)? * config.scale)?;
        let updated = (w.to_dtype(DType::F32)? + delta)?.to_dtype(dtype)?;
        tensors.insert(name, updated);
        merged += 1;
    }
    if merged == 0 {
        return Err(EngineError::invalid(
            &path,
            "no lora_A/lora_B tensors found",
        ));
    }
    let tensors: HashMap<String, Tensor> = tensors;
    Ok(Weights::from_map(tensors, source))
}
