//! Preference data: JSONL in the three layouts users already have.
//!
//! - genarm: `{"prompt", "chosen", "rejected"}`
//! - HH-RLHF: `{"chosen", "rejected"}`, two full dialogues sharing everything up to the last
//!   `"\n\nAssistant:"`
//! - PKU-SafeRLHF: `{"prompt", "response_0", "response_1", "better_response_id",
//!   "safer_response_id"}`, the pair chosen by objective (helpful → better, harmless → safer)
//!
//! Bad lines are collected with their line numbers; the caller decides whether they are fatal.

use std::path::Path;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

/// Which preference of a PKU-SafeRLHF record to train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    Helpful,
    Harmless,
}

impl std::str::FromStr for Objective {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "helpful" => Ok(Self::Helpful),
            "harmless" => Ok(Self::Harmless),
            other => Err(format!(
                "unknown objective '{other}' (expected helpful or harmless)"
            )),
        }
    }
}

/// A line that could not be used, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    pub line: usize,
    pub reason: String,
}

pub struct Dataset {
    pub pairs: Vec<PreferencePair>,
    pub bad: Vec<BadLine>,
}

/// Read a preference JSONL file. Blank lines are skipped.
pub fn read_preferences(path: &Path, objective: Option<Objective>) -> std::io::Result<Dataset> {
    let bytes = std::fs::read(path)?;
    let mut pairs = Vec::new();
    let mut bad = Vec::new();
    // Line by line as bytes, so that one line that is not UTF-8 is a bad line like any other
    // rather than making the whole file unreadable.
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line,
            Err(e) => {
                bad.push(BadLine {
                    line: i + 1,
                    reason: format!("not UTF-8 text (byte {} of the line)", e.valid_up_to() + 1),
                });
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, objective) {
            Ok(pair) => pairs.push(pair),
            Err(reason) => bad.push(BadLine {
                line: i + 1,
                reason,
            }),
        }
    }
    Ok(Dataset { pairs, bad })
}

/// One JSONL record to a pair, recognising the layout by its keys.
pub fn parse_line(line: &str, objective: Option<Objective>) -> Result<PreferencePair, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    if !v.is_object() {
        return Err("expected a JSON object".into());
    }
    let text = |key: &str| -> Result<String, String> {
        match v.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("'{key}' must be a string")),
            None => Err(format!("missing '{key}'")),
        }
    };
    let pair = if v.get("response_0").is_some() {
        pku_pair(&v, &text, objective)?
    } else if v.get("prompt").is_some() {
        PreferencePair {
            prompt: text("prompt")?,
            chosen: text("chosen")?,
            rejected: text("rejected")?,
        }
    } else if v.get("chosen").is_some() {
        hh_pair(&text("chosen")?, &text("rejected")?)?
    } else {
        return Err(
            "unrecognised record: expected prompt/chosen/rejected, HH-RLHF chosen/rejected \
                    dialogues, or PKU-SafeRLHF response_0/response_1"
                .into(),
        );
    };
    if pair.chosen.is_empty() || pair.rejected.is_empty() {
        return Err("empty response".into());
    }
    if pair.chosen == pair.rejected {
        return Err("chosen and rejected responses are identical".into());
    }
    Ok(pair)
}

fn pku_pair(
    v: &Value,
    text: &dyn Fn(&str) -> Result<String, String>,
    objective: Option<Objective>,
) -> Result<PreferencePair, String> {
    let objective = objective
        .ok_or("PKU-SafeRLHF records need --objective helpful|harmless to pick a preference")?;
    let key = match objective {
        Objective::Helpful => "better_response_id",
        Objective::Harmless => "safer_response_id",
    };
    let id = v
        .get(key)
        .and_then(Value::as_u64)
        .filter(|&id| id <= 1)
        .ok_or_else(|| format!("'{key}' must be 0 or 1"))?;
    let (r0, r1) = (text("response_0")?, text("response_1")?);
    let (chosen, rejected) = if id == 0 { (r0, r1) } else { (r1, r0) };
    Ok(PreferencePair {
        prompt: text("prompt")?,
        chosen,
        rejected,
    })
}

/// Split two HH-RLHF dialogues at the last assistant turn they share.
fn hh_pair(chosen: &str, rejected: &str) -> Result<PreferencePair, String> {
    const MARKER: &str = "\n\nAssistant:";
    let cut = chosen
        .rfind(MARKER)
        .map(|i| i + MARKER.len())
        .ok_or("HH-RLHF dialogue without an '\\n\\nAssistant:' turn")?;
    let prompt = &chosen[..cut];
    let rejected_response = rejected
        .strip_prefix(prompt)
        .ok_or("HH-RLHF chosen and rejected dialogues do not share the prompt")?;
    Ok(PreferencePair {
        prompt: prompt.to_string(),
        chosen: chosen[cut..].to_string(),
        rejected: rejected_response.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genarm_layout() {
        let p = parse_line(r#"{"prompt":"Q","chosen":" yes","rejected":" no"}"#, None).unwrap();
        assert_eq!(p.prompt, "Q");
        assert_eq!((p.chosen.as_str(), p.rejected.as_str()), (" yes", " no"));
    }

    #[test]
    fn hh_rlhf_layout_splits_at_the_last_assistant_turn() {
        let line = r#"{"chosen":"\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bake?\n\nAssistant: Mix flour.","rejected":"\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bake?\n\nAssistant: No."}"#;
        let p = parse_line(line, None).unwrap();
        assert!(p.prompt.ends_with("bake?\n\nAssistant:"), "{:?}", p.prompt);
        assert_eq!(p.chosen, " Mix flour.");
        assert_eq!(p.rejected, " No.");
    }

    #[test]
    fn pku_layout_follows_the_objective() {
        let line = r#"{"prompt":"Q","response_0":"A","response_1":"B","better_response_id":0,"safer_response_id":1}"#;
        let helpful = parse_line(line, Some(Objective::Helpful)).unwrap();
        assert_eq!(
            (helpful.chosen.as_str(), helpful.rejected.as_str()),
            ("A", "B")
        );
        let harmless = parse_line(line, Some(Objective::Harmless)).unwrap();
        assert_eq!(
            (harmless.chosen.as_str(), harmless.rejected.as_str()),
            ("B", "A")
        );
        assert!(parse_line(line, None).unwrap_err().contains("--objective"));
    }

    #[test]
    fn bad_lines_are_reported_with_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let text = [
            r#"{"prompt":"Q","chosen":"a","rejected":"b"}"#,
            "not json",
            "",
            r#"{"prompt":"Q","chosen":"a"}"#,
            r#"{"prompt":"Q","chosen":"same","rejected":"same"}"#,
            r#"[1,2]"#,
        ]
        .join("\n");
        std::fs::write(&path, text).unwrap();
        let d = read_preferences(&path, None).unwrap();
        assert_eq!(d.pairs.len(), 1);
        let lines: Vec<usize> = d.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![2, 4, 5, 6]);
        assert!(d.bad[1].reason.contains("rejected"));
    }

    #[test]
    fn a_line_that_is_not_utf8_is_one_bad_line_and_crlf_lines_still_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let mut bytes = br#"{"prompt":"Q","chosen":"a","rejected":"b"}"#.to_vec();
        bytes.extend_from_slice(b"\r\n{\"prompt\":\"\xff\xfe\"}\n");
        bytes.extend_from_slice(br#"{"prompt":"R","chosen":"c","rejected":"d"}"#);
        std::fs::write(&path, bytes).unwrap();
        let d = read_preferences(&path, None).unwrap();
        assert_eq!(d.pairs.len(), 2);
        assert_eq!(d.pairs[0].rejected, "b");
        assert_eq!(d.bad.len(), 1);
        assert_eq!(d.bad[0].line, 2);
        // {"prompt":" is 11 bytes; the 12th is the first that is not UTF-8.
        assert!(d.bad[0].reason.contains("byte 12"), "{}", d.bad[0].reason);
    }
}
