//! A model folder opened for training: every weight a `Var` (full fine-tuning) or frozen weights
//! plus LoRA `Var`s on the attention projections; saved back in the Hugging Face layout (and the
//! PEFT adapter layout for LoRA).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::engine::formats::tokenizer::ModelTokenizer;
use crate::engine::model::config::ModelConfig;
use crate::engine::model::transformer::Transformer;
use crate::engine::model::weights::Weights;
use crate::engine::{EngineError, Input, Result};

/// Files copied unchanged from the starting model into a trained one (named by the format, so
/// `synthetic` can copy them too without depending on training).
pub use crate::engine::formats::tokenizer::TOKENIZER_FILES;

#[derive(Debug, Clone)]
pub struct LoraSettings {
    pub rank: usize,
    pub alpha: f64,
    pub targets: Vec<String>,
}

impl LoraSettings {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

pub struct TrainableModel {
    pub config: ModelConfig,
    pub tokenizer: ModelTokenizer,
    pub net: Transformer,
    pub source: PathBuf,
    /// What training updates, by name: every weight, or PEFT-named LoRA matrices.
    pub vars: Vec<(String, Var)>,
    /// With LoRA: the frozen weights, to write the merged model.
    frozen: Option<HashMap<String, Tensor>>,
    pub lora: Option<LoraSettings>,
}

/// LoRA targets for a model whose q/k/v are one `qkv_proj`: q_proj, k_proj or v_proj become
/// qkv_proj (once), the rest stay.
fn fused_targets(targets: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in targets {
        let t = match t.as_str() {
            "q_proj" | "k_proj" | "v_proj" => "qkv_proj",
            other => other,
        };
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

impl TrainableModel {
    pub fn load(dir: &Path, lora: Option<LoraSettings>, seed: u64) -> Result<Self> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(EngineError::invalid(dir, "no config.json in this folder"));
        }
        let config = ModelConfig::from_file(&config_path)?;
        if let Some(settings) = &lora {
            // A rank past the smallest adapted dimension adds nothing a full update lacks, and
            // an absurd one would size its matrices before anything else fails.
            let smallest = [
                config.hidden_size,
                config.num_attention_heads * config.head_dim,
                config.num_key_value_heads * config.head_dim,
            ]
            .into_iter()
            .min()
            .unwrap_or(0);
            if settings.rank > smallest {
                return Err(Input::LoraRank.error(format!(
                    " {} exceeds {smallest}, the smallest dimension of the matrices it adapts",
                    settings.rank
                )));
            }
        }
        // A fused qkv_proj (Phi-3) is one module to PEFT: q/k/v targets name it.
        let lora = lora.map(|mut settings| {
            if config.fused_projections {
                settings.targets = fused_targets(&settings.targets);
            }
            settings
        });
        let tokenizer = ModelTokenizer::load(dir)?;
        let device = Device::Cpu;
        // Copied, not mapped: training multiplies through candle with gradients tracked.
        let weights = Weights::load(dir, DType::F32, &device)?.copied();
        let source = weights.source.clone();
        let (net, vars, frozen) = match &lora {
            None => {
                let mut vars: Vec<(String, Var)> = weights
                    .into_tensors()?
                    .into_iter()
                    .map(|(name, t)| Ok((name, Var::from_tensor(&t)?)))
                    .collect::<candle_core::Result<_>>()?;
                vars.sort_by(|a, b| a.0.cmp(&b.0));
                let map = vars
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
                    .collect();
                let net = Transformer::load(&config, &Weights::from_map(map, source), &device)?;
                (net, vars, None)
            }
            Some(settings) => {
                let mut net = Transformer::load(&config, &weights, &device)?;
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut vars = Vec::new();
                net.attach_lora(
                    &settings.targets,
                    settings.scale(),
                    |module, out_dim, in_dim| {
                        // PEFT's initialisation: A Kaiming-uniform, B zero, so training starts at
                        // exactly the base model.
                        let bound = 1.0 / (in_dim as f32).sqrt();
                        let a: Vec<f32> = (0..settings.rank * in_dim)
                            .map(|_| rng.random_range(-bound..bound))
                            .collect();
                        let a = Var::from_vec(a, (settings.rank, in_dim), &device)?;
                        let b = Var::zeros((out_dim, settings.rank), DType::F32, &device)?;
                        let (ta, tb) = (a.as_tensor().clone(), b.as_tensor().clone());
                        vars.push((format!("base_model.model.{module}.lora_A.weight"), a));
                        vars.push((format!("base_model.model.{module}.lora_B.weight"), b));
                        Ok((ta, tb))
                    },
                )?;
                (net, vars, Some(weights.into_tensors()?))
            }
        };
        Ok(Self {
            config,
            tokenizer,
            net,
            source: dir.to_path_buf(),
            vars,
            frozen,
            lora,
        })
    }

    /// The trainable tensors, for checkpoints.
    pub fn var_tensors(&self) -> HashMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect()
    }

    /// Restore trainable tensors from a checkpoint.
    pub fn set_vars(&self, saved: &HashMap<String, Tensor>, from: &Path) -> Result<()> {
        for (name, var) in &self.vars {
            let t = saved.get(name).ok_or_else(|| {
                EngineError::invalid(from, format!("checkpoint lacks tensor '{name}'"))
            })?;
            var.set(t)?;
        }
        Ok(())
    }

    /// The full weights as an inference model loads them (LoRA merged in).
    pub fn full_weights(&self) -> Result<HashMap<String, Tensor>> {
        match &self.frozen {
            None => Ok(self.var_tensors()),
            Some(frozen) => {
                let mut all = frozen.clone();
                for (name, merged) in self.net.merged_lora_weights()? {
                    all.insert(name, merged);
                }
                Ok(all)
            }
        }
    }

    /// Write a loadable model folder into `dir` (created if needed): config and tokenizer files
    /// from the starting model, `model.safetensors`, and with LoRA also `adapter_config.json` and
    /// `adapter_model.safetensors`. Each file goes to a temporary name first, then is renamed.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
        copy_atomically(&self.source.join("config.json"), &dir.join("config.json"))?;
        for name in TOKENIZER_FILES {
            let from = self.source.join(name);
            if from.is_file() {
                copy_atomically(&from, &dir.join(name))?;
            }
        }
        save_safetensors(&self.full_weights()?, &dir.join("model.safetensors"))?;
        if let Some(lora) = &self.lora {
            save_safetensors(&self.var_tensors(), &dir.join("adapter_model.safetensors"))?;
            let base = std::fs::canonicalize(&self.source).unwrap_or_else(|_| self.source.clone());
            let config = json!({
                "peft_type": "LORA",
                "task_type": "CAUSAL_LM",
                "base_model_name_or_path": base.display().to_string(),
                "r": lora.rank,
                "lora_alpha": lora.alpha,
                "target_modules": lora.targets,
                "lora_dropout": 0.0,
                "bias": "none",
                "use_rslora": false,
                "fan_in_fan_out": false,
                "inference_mode": true,
            });
            write_atomically(
                &dir.join("adapter_config.json"),
                serde_json::to_string_pretty(&config)
                    .unwrap_or_default()
                    .as_bytes(),
            )?;
        }
        Ok(())
    }
}

pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = temp_name(path);
    candle_core::safetensors::save(tensors, &tmp)
        .map_err(|e| EngineError::invalid(path, format!("cannot write weights: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| EngineError::io(path, e))
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::output::write_file(path, bytes).map_err(|e| EngineError::io(path, e))
}

fn copy_atomically(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).map_err(|e| EngineError::io(from, e))?;
    write_atomically(to, &bytes)
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}
