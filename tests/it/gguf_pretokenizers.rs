//! Every `tokenizer.ggml.pre` split genarm knows, on one byte-level BPE vocabulary.
//!
//! Reference: `tests/data/gguf_pretokenizers/expected.json`, made by
//! `scripts/make_gguf_pretokenizer_fixtures.py`, which reads the name → split mapping from
//! llama.cpp's own source (`src/llama-vocab.cpp`) and records per family of names either the ids
//! transformers 5.24 gives reading the GGUF (names its GGUF reader knows) or those of a Hub-style
//! tokenizer.json pipeline built by the Python `tokenizers` package from llama.cpp's regexes (run
//! by its Oniguruma engine; genarm's table holds the Hub forms, run by fancy-regex).

use std::collections::{BTreeSet, HashMap};

use crate::common::{data, ids};
use candle_core::quantized::gguf_file::{Content, Value};
use genarm::engine::formats::{gguf_pretokenizers, gguf_tokenizer};
use serde_json::Value as Json;

fn expected() -> Json {
    let text = std::fs::read_to_string(data("gguf_pretokenizers/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn base_metadata() -> HashMap<String, Value> {
    let path = data("gguf_pretokenizers/base.gguf");
    let mut file = std::fs::File::open(&path).unwrap();
    Content::read(&mut file).unwrap().metadata
}

#[test]
fn every_family_gives_the_reference_ids() {
    let expected = expected();
    let families = expected["families"].as_array().unwrap();
    assert!(families.len() >= 25);
    let mut metadata = base_metadata();
    let path = data("gguf_pretokenizers/base.gguf");
    for family in families {
        for name in family["names"].as_array().unwrap() {
            let name = name.as_str().unwrap();
            metadata.insert("tokenizer.ggml.pre".into(), Value::String(name.to_string()));
            let tok = gguf_tokenizer::from_metadata(&path, &metadata)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            for case in family["cases"].as_array().unwrap() {
                let text = case["text"].as_str().unwrap();
                let want = ids(&case["ids"]);
                assert_eq!(tok.encode_prompt(text).unwrap(), want, "{name} {text:?}");
                assert_eq!(
                    tok.decode(&want).unwrap(),
                    case["decoded"].as_str().unwrap(),
                    "{name} {text:?}"
                );
            }
        }
    }
}

#[test]
fn the_table_groups_names_as_llama_cpp_does() {
    // Each llama.cpp family is one entry of genarm's table, with exactly its names (the table
    // also accepts "gpt2" beside "gpt-2") and llama.cpp's ignore_merges.
    let expected = expected();
    let mut covered = 0;
    for family in expected["families"].as_array().unwrap() {
        let names: BTreeSet<&str> = family["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        let first = names.iter().next().unwrap();
        let entry = gguf_pretokenizers::find(first).unwrap_or_else(|| panic!("{first}"));
        let ours: BTreeSet<&str> = entry
            .names
            .iter()
            .copied()
            .filter(|n| *n != "gpt2")
            .collect();
        assert_eq!(ours, names);
        assert_eq!(
            entry.ignore_merges,
            family["ignore_merges"].as_bool().unwrap(),
            "{first}"
        );
        assert_eq!(
            entry.splits.len(),
            family["splits"].as_array().unwrap().len(),
            "{first}"
        );
        covered += names.len();
    }
    assert_eq!(covered, 84);
}

#[test]
fn the_fixture_tells_most_families_apart() {
    // Guard: a test that passed with one split for another would be worthless, so the vocabulary
    // and texts give different ids for most families.
    let expected = expected();
    let distinct: BTreeSet<Vec<Vec<u32>>> = expected["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| ids(&c["ids"]))
                .collect()
        })
        .collect();
    assert!(distinct.len() >= 21, "{}", distinct.len());
}
