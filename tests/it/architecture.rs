//! The shape of the house, checked: no two source files import each other, the top-level modules
//! form no cycle, and `src/engine` keeps its folders (issue "One room per feature").
//!
//! Imports are read from the text: `use` trees and inline paths that start with `crate::`,
//! `super::` or `self::`, resolved to the longest module path that is a file under `src/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModulePath = Vec<String>;

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs` and `main.rs` are the crate root.
fn module_of(src: &Path, file: &Path) -> ModulePath {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The text without comments (doc comments name paths that are not imports).
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path the text names from `crate`, `super` or `self`, with `use a::{b, c::d}` groups
/// expanded one level, as absolute module paths (not yet resolved to files).
fn named_paths(module: &ModulePath, text: &str) -> Vec<ModulePath> {
    let mut paths = Vec::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != ':';
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|h| starts_word && text_at(&bytes, i, h));
        let Some(head) = head else {
            i += 1;
            continue;
        };
        i += head.len();
        let mut base: ModulePath = match head {
            "crate::" => vec![],
            // In `a/b.rs` (module a::b), `self` is a::b and `super` is a; so in `a/mod.rs`.
            "self::" => module.clone(),
            _ => module[..module.len().saturating_sub(1)].to_vec(),
        };
        let mut segments = Vec::new();
        loop {
            let start = i;
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            if i > start {
                let seg: String = bytes[start..i].iter().collect();
                if seg == "super" && segments.is_empty() {
                    base.pop();
                } else {
                    segments.push(seg);
                }
            }
            if text_at(&bytes, i, "::") {
                i += 2;
                if i < bytes.len() && bytes[i] == '{' {
                    let close = (i..bytes.len()).find(|&j| bytes[j] == ';' || bytes[j] == '}');
                    let end = close.unwrap_or(bytes.len());
                    let group: String = bytes[i + 1..end].iter().collect();
                    for item in group.split(',') {
                        let item = item.trim().trim_start_matches('{');
                        let item: Vec<String> = item
                            .split("::")
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty() && s != "self" && s != "*")
                            .collect();
                        let mut p = base.clone();
                        p.extend(segments.iter().cloned());
                        p.extend(item);
                        paths.push(p);
                    }
                    i = end;
                    break;
                }
                continue;
            }
            break;
        }
        let mut p = base;
        p.extend(segments);
        paths.push(p);
    }
    paths
}

fn text_at(chars: &[char], i: usize, s: &str) -> bool {
    s.chars()
        .enumerate()
        .all(|(k, c)| chars.get(i + k) == Some(&c))
}

/// Which module files each module file imports.
fn import_graph() -> (
    BTreeMap<ModulePath, PathBuf>,
    BTreeMap<ModulePath, BTreeSet<ModulePath>>,
) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let modules: BTreeMap<ModulePath, PathBuf> = files
        .iter()
        .map(|f| (module_of(&src, f), f.clone()))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut targets = BTreeSet::new();
        for path in named_paths(module, &without_comments(&text)) {
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains_key(p));
            if let Some(target) = target
                && &target != module
            {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    (modules, graph)
}

#[test]
fn no_two_source_files_import_each_other() {
    let (modules, graph) = import_graph();
    let mut pairs = Vec::new();
    for (a, targets) in &graph {
        for b in targets {
            if a < b && graph.get(b).is_some_and(|t| t.contains(a)) {
                pairs.push(format!(
                    "{} <-> {}",
                    modules[a].display(),
                    modules[b].display()
                ));
            }
        }
    }
    assert!(
        pairs.is_empty(),
        "files that import each other:\n{}",
        pairs.join("\n")
    );
}

#[test]
fn top_level_modules_form_no_cycle() {
    let (_, graph) = import_graph();
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, targets) in &graph {
        let Some(from) = a.first() else { continue };
        for b in targets {
            if let Some(to) = b.first()
                && to != from
            {
                top.entry(from.clone()).or_default().insert(to.clone());
            }
        }
    }
    let reach = |start: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        while let Some(m) = stack.pop() {
            for next in top.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut cycles = Vec::new();
    for a in top.keys() {
        for b in reach(a) {
            if a < &b && reach(&b).contains(a) {
                cycles.push(format!("{a} and {b}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "top-level modules that depend on each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_engine_keeps_its_folders() {
    let engine = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let files = std::fs::read_dir(&engine)
        .expect("src/engine")
        .flatten()
        .filter(|e| e.path().is_file())
        .count();
    assert!(
        files <= 12,
        "{files} files directly in src/engine (at most 12: use its folders)"
    );
    let root = std::fs::read_to_string(engine.join("mod.rs")).expect("src/engine/mod.rs");
    assert!(
        root.contains("pub(crate) mod kernels;"),
        "the kernels stay crate-private (src/engine/mod.rs)"
    );
}
