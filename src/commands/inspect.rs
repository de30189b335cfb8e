//! `genarm inspect MODEL`: what a model is and what genarm would make of it, read from its
//! config and file headers alone (`engine::model::inspect`). Exits 0 when genarm would load the
//! model, 1 when it would refuse it (the reasons listed in the report) or there is no model to
//! inspect.

use std::io::Write;

use anyhow::Result;
use serde_json::json;

use crate::cli::InspectArgs;
use crate::cli_errors::{message, printable};
use crate::engine::formats::hub_cache::human_size;
use crate::engine::model::inspect::{Report, inspect};

pub fn run(args: &InspectArgs) -> Result<()> {
    let report = inspect(&args.model)?;
    let refusals: Vec<String> = report
        .refusals
        .iter()
        .map(|e| printable(&message(e)))
        .collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["refusals"] = json!(refusals);
        writeln!(out, "{value}")?;
    } else {
        write_text(&mut out, &report, &refusals)?;
    }
    out.flush()?;
    match refusals.len() {
        0 => Ok(()),
        n => anyhow::bail!(
            "genarm would refuse this model ({n} problem{} listed above)",
            if n == 1 { "" } else { "s" }
        ),
    }
}

/// Digits grouped in threes: 1,234,567.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn write_text(out: &mut impl Write, r: &Report, refusals: &[String]) -> Result<()> {
    let show = |s: &str| printable(s);
    let mut what = format!("{} ({})", show(&r.path.display().to_string()), r.format);
    if let Some(id) = &r.hub_id {
        what = format!("{id}: {what}");
    }
    writeln!(out, "model        {what}")?;
    if let Some(base) = &r.base_model {
        writeln!(out, "base model   {}", show(&base.display().to_string()))?;
    }
    for file in &r.weight_files {
        writeln!(out, "weights      {}", show(&file.display().to_string()))?;
    }
    let arch = r.architecture.as_deref().map_or("?".to_string(), show);
    match &r.family {
        Some(f) => writeln!(out, "architecture {arch}, run as {f}")?,
        None => writeln!(out, "architecture {arch}")?,
    }
    if !r.settings.is_empty() {
        let parts: Vec<String> = r
            .settings
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => format!("{k} {s}"),
                None => format!("{k} {v}"),
            })
            .collect();
        writeln!(out, "settings     {}", parts.join("; "))?;
    }
    if let Some(d) = &r.dimensions {
        writeln!(
            out,
            "shape        {} layers, hidden {}, intermediate {}, {} heads ({} KV, head_dim {}), \
             vocab {}, context {}, embeddings {}",
            d.layers,
            d.hidden,
            d.intermediate,
            d.heads,
            d.kv_heads,
            d.head_dim,
            d.vocab,
            d.context,
            if d.tied_embeddings { "tied" } else { "untied" }
        )?;
    }
    writeln!(out, "parameters   {}", grouped(r.parameters))?;
    write_tokenizer(out, r)?;
    write_tensors(out, r)?;
    write_memory(out, r)?;
    if refusals.is_empty() {
        writeln!(out, "\ngenarm would load this model.")?;
    } else {
        writeln!(out, "\ngenarm would refuse it:")?;
        for line in refusals {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

fn write_tokenizer(out: &mut impl Write, r: &Report) -> Result<()> {
    let t = &r.tokenizer;
    let mut line = t.source.clone();
    if let Some(model) = &t.gguf_model {
        line.push_str(&format!(", tokenizer.ggml.model '{}'", printable(model)));
    }
    if let Some(pre) = &t.gguf_pre {
        let known = if t.pre_known == Some(true) {
            "known to genarm"
        } else {
            "unknown to genarm"
        };
        line.push_str(&format!(
            ", tokenizer.ggml.pre '{}' ({known})",
            printable(pre)
        ));
    }
    if let Some(v) = t.vocab {
        line.push_str(&format!(", {v} ids"));
    }
    writeln!(out, "tokenizer    {line}")?;
    writeln!(
        out,
        "chat         {}",
        r.chat_template.as_deref().unwrap_or("no chat template")
    )?;
    Ok(())
}

fn write_tensors(out: &mut impl Write, r: &Report) -> Result<()> {
    if r.tensors.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{:<20} {:>7} {:>14}  stored (kernel)",
        "tensors", "count", "parameters"
    )?;
    for k in &r.tensors {
        let stored: Vec<String> = k
            .stored
            .iter()
            .map(|(format, n)| match k.kernels.get(format) {
                Some(kernel) => format!("{format}×{n} ({kernel})"),
                None => format!("{format}×{n}"),
            })
            .collect();
        let mut kind = k.kind.name();
        if kind == "other" {
            kind.push_str(" (not counted)");
        }
        writeln!(
            out,
            "{:<20} {:>7} {:>14}  {}",
            kind,
            k.tensors,
            grouped(k.parameters),
            stored.join(", ")
        )?;
    }
    Ok(())
}

fn write_memory(out: &mut impl Write, r: &Report) -> Result<()> {
    if r.memory.is_empty() || r.tensors.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{:<10} {:>10}  matrices (kernel)   [weights held after load; the KV cache comes on top]",
        "--dtype", "weights"
    )?;
    for row in &r.memory {
        let uses: Vec<String> = row
            .matrices
            .iter()
            .map(|(format, u)| format!("{format}×{} ({})", u.count, u.kernel))
            .collect();
        let fallbacks = match row.fallbacks {
            0 => String::new(),
            n => format!("; {n} fall back (rows not a multiple of the block)"),
        };
        let in_place = match row.in_place_bytes {
            0 => String::new(),
            n => format!("; {} read in place", human_size(n)),
        };
        writeln!(
            out,
            "{:<10} {:>10}  {}{fallbacks}{in_place}",
            row.dtype,
            human_size(row.bytes),
            uses.join(", ")
        )?;
    }
    if r.memory.iter().any(|row| row.in_place_bytes > 0) {
        writeln!(
            out,
            "read in place: mapped from the file, not copied; processes running the same file \
             share those pages"
        )?;
    }
    Ok(())
}
