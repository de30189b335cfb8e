//! `genarm models`: the models in the Hugging Face cache, usable as `--base`/`--arm` by id.

use std::io::Write;

use anyhow::Result;

use crate::cli::ModelsArgs;
use crate::engine::hub::HubEnv;
use crate::engine::hub_cache::{CachedModel, human_size, list};

pub fn run(args: &ModelsArgs) -> Result<()> {
    let cache = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| HubEnv::from_env().cache);
    let models = list(&cache)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        for model in &models {
            writeln!(out, "{}", serde_json::to_string(model)?)?;
        }
        return Ok(());
    }
    if models.is_empty() {
        writeln!(
            out,
            "no models in the Hugging Face cache {}",
            cache.display()
        )?;
        return Ok(());
    }
    writeln!(out, "Hugging Face cache: {}", cache.display())?;
    let rows: Vec<[String; 4]> = models.iter().map(row).collect();
    let headers = ["id", "revisions", "size", "kind"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([headers[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    let line = |cells: [&str; 4]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
    };
    writeln!(out, "{}", line(headers))?;
    for r in &rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3]]))?;
    }
    if models
        .iter()
        .flat_map(|m| &m.revisions)
        .any(|r| !r.complete)
    {
        writeln!(
            out,
            "* incomplete snapshot: files the loader needs are missing (fetched on first use)"
        )?;
    }
    Ok(())
}

/// id; revisions as `main→1a2b3c4` (refs) or a bare short hash, `*` marking incomplete ones;
/// size; architecture or "PEFT adapter of BASE".
fn row(model: &CachedModel) -> [String; 4] {
    let revisions: Vec<String> = model
        .revisions
        .iter()
        .map(|r| {
            let short: String = r.commit.chars().take(7).collect();
            let mark = if r.complete { "" } else { "*" };
            if r.refs.is_empty() {
                format!("{short}{mark}")
            } else {
                format!("{}→{short}{mark}", r.refs.join(","))
            }
        })
        .collect();
    let kind = match (&model.adapter_of, &model.architecture) {
        (Some(base), _) => format!("PEFT adapter of {base}"),
        (None, Some(arch)) => arch.clone(),
        (None, None) => "?".into(),
    };
    [
        model.id.clone(),
        revisions.join(" "),
        human_size(model.size_bytes),
        kind,
    ]
}
