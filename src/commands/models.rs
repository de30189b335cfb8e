//! `genarm models`: the models in the Hugging Face cache, usable as `--base`/`--arm` by id.

use std::io::Write;

use anyhow::Result;

use std::collections::BTreeMap;

use crate::cli::ModelsArgs;
use crate::config::{self, Profile};
use crate::engine::formats::hub::HubEnv;
use crate::engine::formats::hub_cache::{CachedModel, human_size, list};

pub fn run(args: &ModelsArgs) -> Result<()> {
    let cache = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| HubEnv::from_env().cache);
    let models = list(&cache)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let profiles = configured_profiles();
    if args.json {
        for model in &models {
            writeln!(out, "{}", serde_json::to_string(model)?)?;
        }
        for (name, profile) in &profiles {
            let json = serde_json::json!({
                "profile": name, "base": profile.base, "arms": profile.arms,
                "weights": profile.weights, "chat": profile.chat,
            });
            writeln!(out, "{json}")?;
        }
        return Ok(());
    }
    write_cache_table(&mut out, &cache, &models)?;
    write_profiles(&mut out, &profiles)
}

/// The config file's `[profiles.NAME]`; a broken file is reported on stderr and lists none.
fn configured_profiles() -> BTreeMap<String, Profile> {
    let Some(path) = config::default_path() else {
        return BTreeMap::new();
    };
    match config::load(&path) {
        Ok(config) => config.profiles,
        Err(e) => {
            eprintln!("profiles not listed: {e}");
            BTreeMap::new()
        }
    }
}

fn write_profiles(out: &mut impl Write, profiles: &BTreeMap<String, Profile>) -> Result<()> {
    if profiles.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nProfiles (--profile NAME):")?;
    for (name, profile) in profiles {
        let arms: Vec<String> = profile
            .arms
            .iter()
            .map(|(arm, path)| match profile.weights.get(arm) {
                Some(w) => format!("{arm}={} ×{w}", path.display()),
                None => format!("{arm}={}", path.display()),
            })
            .collect();
        let chat = if profile.chat { "  (chat)" } else { "" };
        writeln!(
            out,
            "{name}: base {}{}{chat}",
            profile.base.display(),
            match arms.is_empty() {
                true => String::new(),
                false => format!(", ARMs {}", arms.join(", ")),
            }
        )?;
    }
    Ok(())
}

fn write_cache_table(
    out: &mut impl Write,
    cache: &std::path::Path,
    models: &[CachedModel],
) -> Result<()> {
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
