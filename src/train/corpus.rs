//! Text corpora for tokenizer and language-model training: JSONL with a `"text"` field per line,
//! or plain text where blank lines separate documents.

use std::path::Path;

use serde_json::Value;

use crate::engine::{EngineError, Result};

/// The documents of a corpus file. Malformed JSONL lines are an error naming the line.
pub fn read_documents(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
    let is_jsonl = path
        .extension()
        .is_some_and(|e| e == "jsonl" || e == "json");
    let docs: Vec<String> = if is_jsonl {
        let mut docs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| {
                EngineError::invalid(path, format!("line {}: not valid JSON: {e}", i + 1))
            })?;
            let doc = v.get("text").and_then(Value::as_str).ok_or_else(|| {
                EngineError::invalid(
                    path,
                    format!("line {}: expected an object with a \"text\" string", i + 1),
                )
            })?;
            docs.push(doc.to_string());
        }
        docs
    } else {
        text.split("\n\n")
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect()
    };
    if docs.is_empty() {
        return Err(EngineError::invalid(path, "the corpus has no documents"));
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_and_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("c.jsonl");
        std::fs::write(&jsonl, "{\"text\":\"a b\"}\n\n{\"text\":\"c\"}\n").unwrap();
        assert_eq!(read_documents(&jsonl).unwrap(), vec!["a b", "c"]);
        let txt = dir.path().join("c.txt");
        std::fs::write(&txt, "one\ntwo\n\n\nthree\n").unwrap();
        assert_eq!(read_documents(&txt).unwrap(), vec!["one\ntwo", "three"]);
        std::fs::write(&jsonl, "{\"text\":\"a\"}\n{\"body\":1}\n").unwrap();
        let err = read_documents(&jsonl).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
