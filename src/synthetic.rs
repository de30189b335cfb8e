//! Randomly initialised models in the real Hugging Face layout (config.json, model.safetensors,
//! tokenizer.json, tokenizer_config.json, generation_config.json).
//!
//! Used by `genarm bench` (speed does not depend on trained weights), by `genarm random-model`
//! and by the tests (error handling on damaged folders). The tokenizer is a word-level
//! vocabulary `<unk> <s> </s> w3 w4 …` so any vocabulary size can be made exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct RandomModelSpec {
    /// An `--arch` name of `FAMILIES`: llama, qwen2, mistral, qwen3, gemma2, gemma3, phi3,
    /// olmo2, smollm3.
    pub arch: String,
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub context: usize,
    pub seed: u64,
    /// Initialise as transformers does for training from scratch (matrices N(0, 0.02), norms 1,
    /// biases 0) instead of the peaked distributions benchmarks and tests want.
    pub for_training: bool,
    pub tie_embeddings: bool,
    /// Use this folder's tokenizer files (vocab size, bos and eos follow them) instead of the
    /// generated word-level vocabulary.
    pub tokenizer_dir: Option<PathBuf>,
}

impl Default for RandomModelSpec {
    fn default() -> Self {
        Self {
            arch: "llama".into(),
            vocab: 300,
            hidden: 32,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            intermediate: 64,
            context: 256,
            seed: 0,
            for_training: false,
            tie_embeddings: false,
            tokenizer_dir: None,
        }
    }
}

/// How a family lays out its weights and config, as transformers saves it: one table rather than
/// a writer per family.
struct Family {
    /// `--arch` name and config.json `model_type`.
    arch: &'static str,
    model_type: &'static str,
    class: &'static str,
    /// q/k/v biases (Qwen2).
    qkv_bias: bool,
    /// q/k RMSNorm: per head (Qwen3, Gemma 3) or over the whole projection (OLMo 2).
    qk_norm: Option<QkNorm>,
    /// The norms of one layer, in the order they are drawn.
    layer_norms: &'static [&'static str],
    /// q/k/v and gate/up as one matrix each (Phi-3).
    fused: bool,
    /// Norm weights stored as w for a scale of 1 + w (Gemma), so drawn around 0.
    offset_norms: bool,
    /// config.json spells out `head_dim`: these families' defaults are their real sizes' (128
    /// for Qwen3, 256 for Gemma), not hidden / heads.
    head_dim: bool,
    /// config.json sets `query_pre_attn_scalar` to the head size (Gemma's default is 256).
    gemma: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum QkNorm {
    PerHead,
    Whole,
}

const PRE: &[&str] = &["input_layernorm", "post_attention_layernorm"];
const SANDWICH: &[&str] = &[
    "input_layernorm",
    "post_attention_layernorm",
    "pre_feedforward_layernorm",
    "post_feedforward_layernorm",
];
const POST: &[&str] = &["post_attention_layernorm", "post_feedforward_layernorm"];

const fn family(arch: &'static str, model_type: &'static str, class: &'static str) -> Family {
    Family {
        arch,
        model_type,
        class,
        qkv_bias: false,
        qk_norm: None,
        layer_norms: PRE,
        fused: false,
        offset_norms: false,
        head_dim: true,
        gemma: false,
    }
}

/// The families random-model has always written: no `head_dim` in their config.json.
const fn legacy(arch: &'static str, class: &'static str) -> Family {
    Family {
        head_dim: false,
        ..family(arch, arch, class)
    }
}

const FAMILIES: &[Family] = &[
    legacy("llama", "LlamaForCausalLM"),
    Family {
        qkv_bias: true,
        ..legacy("qwen2", "Qwen2ForCausalLM")
    },
    legacy("mistral", "MistralForCausalLM"),
    Family {
        qk_norm: Some(QkNorm::PerHead),
        ..family("qwen3", "qwen3", "Qwen3ForCausalLM")
    },
    Family {
        layer_norms: SANDWICH,
        offset_norms: true,
        gemma: true,
        ..family("gemma2", "gemma2", "Gemma2ForCausalLM")
    },
    Family {
        layer_norms: SANDWICH,
        offset_norms: true,
        gemma: true,
        qk_norm: Some(QkNorm::PerHead),
        ..family("gemma3", "gemma3_text", "Gemma3ForCausalLM")
    },
    Family {
        fused: true,
        ..family("phi3", "phi3", "Phi3ForCausalLM")
    },
    Family {
        layer_norms: POST,
        qk_norm: Some(QkNorm::Whole),
        ..family("olmo2", "olmo2", "Olmo2ForCausalLM")
    },
    family("smollm3", "smollm3", "SmolLM3ForCausalLM"),
];

/// Write the model folder `out` (refusing to overwrite a non-empty folder). Files are written
/// into a temporary sibling folder that is renamed into place, so an interrupted run leaves
/// nothing half-written.
pub fn write_random_model(out: &Path, spec: &RandomModelSpec) -> Result<()> {
    let Some(architecture) = FAMILIES.iter().find(|f| f.arch == spec.arch) else {
        let known: Vec<&str> = FAMILIES.iter().map(|f| f.arch).collect();
        bail!(
            "--arch: unknown architecture '{}' (expected {})",
            spec.arch,
            known.join(", ")
        );
    };
    if spec.vocab < 4 || spec.hidden == 0 || spec.heads == 0 || spec.kv_heads == 0 {
        bail!("--vocab must be at least 4, and --hidden, --heads, --kv-heads positive");
    }
    if !spec.hidden.is_multiple_of(spec.heads) || !spec.heads.is_multiple_of(spec.kv_heads) {
        bail!("--hidden must be a multiple of --heads, and --heads a multiple of --kv-heads");
    }
    if !(spec.hidden / spec.heads).is_multiple_of(2) {
        bail!("--hidden / --heads (the head size) must be even");
    }
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("--out {}: folder exists and is not empty", out.display());
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("--out {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".genarm-model-")
        .tempdir_in(&parent)
        .with_context(|| {
            format!(
                "--out {}: cannot create a temporary folder",
                parent.display()
            )
        })?;
    write_files(staging.path(), spec, architecture)?;
    crate::output::publish_tree(staging.path())
        .with_context(|| format!("--out {}", out.display()))?;
    if out.exists() {
        std::fs::remove_dir(out).with_context(|| format!("--out {}", out.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, out).with_context(|| format!("--out {}", out.display()))?;
    Ok(())
}

fn write_files(dir: &Path, spec: &RandomModelSpec, family: &Family) -> Result<()> {
    write_config(dir, spec, family)?;
    write_weights(dir, spec, family)
}

/// The tokenizer files (copied or generated), config.json and generation_config.json.
fn write_config(dir: &Path, spec: &RandomModelSpec, family: &Family) -> Result<()> {
    let (bos, eos) = match &spec.tokenizer_dir {
        Some(from) => copy_tokenizer(from, dir, spec.vocab)?,
        None => {
            write_json(
                &dir.join("tokenizer.json"),
                &word_level_tokenizer(spec.vocab),
            )?;
            write_json(
                &dir.join("tokenizer_config.json"),
                &json!({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                        "add_bos_token": true, "add_eos_token": false}),
            )?;
            (1, 2)
        }
    };
    let mut config = json!({
        "architectures": [family.class],
        "model_type": family.model_type,
        "vocab_size": spec.vocab,
        "hidden_size": spec.hidden,
        "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "max_position_embeddings": spec.context,
        "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "tie_word_embeddings": spec.tie_embeddings,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "dtype": "float32",
    });
    let head_dim = spec.hidden / spec.heads;
    if family.head_dim {
        config["head_dim"] = json!(head_dim);
    }
    if family.gemma {
        config["query_pre_attn_scalar"] = json!(head_dim);
    }
    write_json(&dir.join("config.json"), &config)?;
    write_json(
        &dir.join("generation_config.json"),
        &json!({"bos_token_id": bos, "eos_token_id": eos}),
    )
}

/// model.safetensors: every weight drawn from one seeded generator, in a fixed order.
fn write_weights(dir: &Path, spec: &RandomModelSpec, family: &Family) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut add = |name: String, shape: &[usize], init: Init| -> Result<()> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| match (init, spec.for_training) {
                (Init::Normal(_), true) => normal(&mut rng) * 0.02,
                (Init::AroundOne, true) => 1.0,
                (Init::Normal(std), false) => normal(&mut rng) * std,
                (Init::AroundOne, false) => 1.0 + 0.1 * normal(&mut rng),
                (Init::AroundZero, true) => 0.0,
                (Init::AroundZero, false) => 0.1 * normal(&mut rng),
            })
            .collect();
        tensors.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
        Ok(())
    };
    let (h, v) = (spec.hidden, spec.vocab);
    let norm = if family.offset_norms {
        Init::AroundZero
    } else {
        Init::AroundOne
    };
    add(
        "model.embed_tokens.weight".into(),
        &[v, h],
        Init::Normal(1.0),
    )?;
    for i in 0..spec.layers {
        add_layer(&mut add, spec, family, &format!("model.layers.{i}"), norm)?;
    }
    add("model.norm.weight".into(), &[h], norm)?;
    if !spec.tie_embeddings {
        add(
            "lm_head.weight".into(),
            &[v, h],
            Init::Normal(2.0 / (h as f32).sqrt()),
        )?;
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}

/// Draws one named weight of a shape with an initialisation.
type AddWeight<'a> = dyn FnMut(String, &[usize], Init) -> Result<()> + 'a;

/// One decoder layer's weights under prefix `p`, drawn through `add` in a fixed order (for
/// Llama, Qwen2 and Mistral the order the files have always had).
fn add_layer(
    add: &mut AddWeight<'_>,
    spec: &RandomModelSpec,
    family: &Family,
    p: &str,
    norm: Init,
) -> Result<()> {
    let (h, f) = (spec.hidden, spec.intermediate);
    let head_dim = spec.hidden / spec.heads;
    let kv = spec.kv_heads * head_dim;
    let std = 0.5 / (h as f32).sqrt();
    let attn = format!("{p}.self_attn");
    if family.fused {
        add(
            format!("{attn}.qkv_proj.weight"),
            &[h + 2 * kv, h],
            Init::Normal(std),
        )?;
    } else {
        add(format!("{attn}.q_proj.weight"), &[h, h], Init::Normal(std))?;
        add(format!("{attn}.k_proj.weight"), &[kv, h], Init::Normal(std))?;
        add(format!("{attn}.v_proj.weight"), &[kv, h], Init::Normal(std))?;
    }
    add(format!("{attn}.o_proj.weight"), &[h, h], Init::Normal(std))?;
    if family.qkv_bias {
        add(format!("{attn}.q_proj.bias"), &[h], Init::Normal(0.1))?;
        add(format!("{attn}.k_proj.bias"), &[kv], Init::Normal(0.1))?;
        add(format!("{attn}.v_proj.bias"), &[kv], Init::Normal(0.1))?;
    }
    match family.qk_norm {
        None => {}
        Some(QkNorm::PerHead) => {
            add(format!("{attn}.q_norm.weight"), &[head_dim], norm)?;
            add(format!("{attn}.k_norm.weight"), &[head_dim], norm)?;
        }
        Some(QkNorm::Whole) => {
            add(format!("{attn}.q_norm.weight"), &[h], norm)?;
            add(format!("{attn}.k_norm.weight"), &[kv], norm)?;
        }
    }
    if family.fused {
        add(
            format!("{p}.mlp.gate_up_proj.weight"),
            &[2 * f, h],
            Init::Normal(std),
        )?;
    } else {
        add(
            format!("{p}.mlp.gate_proj.weight"),
            &[f, h],
            Init::Normal(std),
        )?;
        add(
            format!("{p}.mlp.up_proj.weight"),
            &[f, h],
            Init::Normal(std),
        )?;
    }
    add(
        format!("{p}.mlp.down_proj.weight"),
        &[h, f],
        Init::Normal(std),
    )?;
    for name in family.layer_norms {
        add(format!("{p}.{name}.weight"), &[h], norm)?;
    }
    Ok(())
}

/// Copy tokenizer files from `from`; return (bos, eos) ids, checking the vocabulary fits.
fn copy_tokenizer(from: &Path, to: &Path, vocab: usize) -> Result<(u32, u32)> {
    let tokenizer = crate::engine::formats::tokenizer::ModelTokenizer::load(from)?;
    if tokenizer.len > vocab {
        bail!(
            "the tokenizer in {} has {} tokens, more than the model's {vocab}",
            from.display(),
            tokenizer.len
        );
    }
    let bos = tokenizer
        .bos_id
        .with_context(|| format!("{}: the tokenizer names no bos_token", from.display()))?;
    let eos = *tokenizer
        .eos_ids
        .first()
        .with_context(|| format!("{}: the tokenizer names no eos_token", from.display()))?;
    for name in crate::engine::formats::tokenizer::TOKENIZER_FILES {
        let file = from.join(name);
        if file.is_file() && *name != "generation_config.json" {
            std::fs::copy(&file, to.join(name))
                .with_context(|| format!("cannot copy {}", file.display()))?;
        }
    }
    Ok((bos, eos))
}

#[derive(Clone, Copy)]
enum Init {
    Normal(f32),
    AroundOne,
    /// Norm weights a family adds 1 to (Gemma).
    AroundZero,
}

/// A standard normal draw (Box–Muller), from a portable seeded generator.
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// A word-level tokenizer.json with exactly `vocab` entries: `<unk>`, `<s>`, `</s>`, `w3`, ….
pub fn word_level_tokenizer(vocab: usize) -> serde_json::Value {
    let mut words = serde_json::Map::new();
    for (i, special) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
        words.insert((*special).into(), json!(i));
    }
    for i in 3..vocab {
        words.insert(format!("w{i}"), json!(i));
    }
    let added: Vec<_> = ["<unk>", "<s>", "</s>"]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": words, "unk_token": "<unk>"}
    })
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
