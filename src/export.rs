//! Saved transcripts: a session as JSON lines in the record contract of `genarm generate --json`
//! (a start record, one record per token, an end record), written into the data directory.
//!
//! Building the text is pure (the playground's `update` does it); writing is the only I/O, and it
//! never leaves a half-written file: the text goes to a temporary file in the same folder, which
//! is then renamed to a name that did not exist before.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::engine::{SamplingParams, TokenRecord};

/// Everything a transcript holds.
#[derive(Debug, Clone)]
pub struct Transcript<'a> {
    pub prompt: &'a str,
    pub prompt_token_ids: &'a [u32],
    pub base: &'a str,
    pub arms: &'a [String],
    /// The ARM weights when the run began (each token record carries the weights it was made
    /// with, so later slider moves are in the records).
    pub weights: &'a [f32],
    pub sampling: SamplingParams,
    pub records: &'a [TokenRecord],
    /// `end.reason`: eos, max_tokens, context_limit, stop, error.
    pub reason: &'a str,
    pub tokens_per_second: f64,
}

impl Transcript<'_> {
    /// One JSON object per line, each line ending in a newline.
    pub fn to_jsonl(&self) -> String {
        let weights: serde_json::Map<String, serde_json::Value> = self
            .arms
            .iter()
            .zip(self.weights)
            .map(|(name, w)| (name.clone(), json!(w)))
            .collect();
        let start = json!({
            "type": "start", "prompt": self.prompt, "prompt_token_ids": self.prompt_token_ids,
            "base": self.base, "arms": self.arms, "weights": weights,
            "temperature": self.sampling.temperature, "top_k": self.sampling.top_k,
            "top_p": self.sampling.top_p, "seed": self.sampling.seed,
        });
        let text: String = self.records.iter().map(|r| r.text.as_str()).collect();
        let end = json!({
            "type": "end", "reason": self.reason, "text": text,
            "generated_tokens": self.records.len(), "tokens_per_second": self.tokens_per_second,
        });
        let mut out = format!("{start}\n");
        for record in self.records {
            // A record is plain numbers and strings: serialising it cannot fail.
            out.push_str(&serde_json::to_string(record).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(&format!("{end}\n"));
        out
    }
}

/// Where exports go: `GENARM_DATA` if set, else the platform data directory.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GENARM_DATA") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("", "", "genarm")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("genarm"))
}

/// Write `contents` as `<stem>.jsonl` in `dir` (or `<stem>-2.jsonl`, … when taken), atomically.
/// Returns the path written.
pub fn write_new(dir: &Path, stem: &str, contents: &str) -> std::io::Result<PathBuf> {
    let context = |what: &str, path: &Path, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| context("creating", dir, e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".export-")
        .tempfile_in(dir)
        .map_err(|e| context("writing into", dir, e))?;
    temp.write_all(contents.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .and_then(|()| crate::output::set_new_file_mode(temp.as_file()))
        .map_err(|e| context("writing into", dir, e))?;
    for n in 1.. {
        let name = if n == 1 {
            format!("{stem}.jsonl")
        } else {
            format!("{stem}-{n}.jsonl")
        };
        let path = dir.join(name);
        // persist_noclobber refuses an existing name, so two exports never overwrite each other.
        match temp.persist_noclobber(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => temp = e.file,
            Err(e) => return Err(context("renaming to", &path, e.error)),
        }
    }
    unreachable!("the name loop only ends by returning")
}

/// A file stem that sorts by time: `session-<unix seconds>`.
pub fn session_stem(unix_seconds: u64) -> String {
    format!("session-{unix_seconds}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::decode::record::ArmTerm;

    fn record(index: usize, text: &str) -> TokenRecord {
        TokenRecord {
            index,
            token_id: 7 + index as u32,
            text: text.into(),
            base_logprob: -1.5,
            arms: vec![ArmTerm {
                name: "helpful".into(),
                logprob: -2.0,
                weight: 0.5,
                contribution: -1.0,
            }],
            guided_logprob: -0.25,
            top: vec![],
            base_rank: 0,
            guided_rank: 0,
            candidates: None,
        }
    }

    #[test]
    fn transcript_is_start_tokens_end_in_the_contract() {
        let records = [record(0, "Hi"), record(1, " there")];
        let arms = ["helpful".to_string()];
        let t = Transcript {
            prompt: "Say hi",
            prompt_token_ids: &[1, 2],
            base: "base",
            arms: &arms,
            weights: &[0.5],
            sampling: SamplingParams::default(),
            records: &records,
            reason: "max_tokens",
            tokens_per_second: 12.5,
        };
        let text = t.to_jsonl();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["type"], "start");
        assert_eq!(lines[0]["prompt_token_ids"], json!([1, 2]));
        assert_eq!(lines[0]["weights"]["helpful"], 0.5);
        assert_eq!(lines[0]["temperature"], 0.0);
        assert_eq!(lines[2]["type"], "token");
        assert_eq!(lines[2]["arms"]["helpful"]["contribution"], -1.0);
        assert_eq!(lines[3]["type"], "end");
        assert_eq!(lines[3]["text"], "Hi there");
        assert_eq!(lines[3]["generated_tokens"], 2);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn writes_never_overwrite_and_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let first = write_new(&nested, "session-5", "one\n").unwrap();
        let second = write_new(&nested, "session-5", "two\n").unwrap();
        assert_eq!(first, nested.join("session-5.jsonl"));
        assert_eq!(second, nested.join("session-5-2.jsonl"));
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "one\n");
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "two\n");
        let names = std::fs::read_dir(&nested).unwrap().count();
        assert_eq!(names, 2, "no temporary file is left behind");
        // The mode of any new file here (not the private 0600 of a temporary file).
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        assert_eq!(mode(&first), mode(&plain));
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let err = write_new(&file.join("sub"), "s", "x").unwrap_err();
        assert!(err.to_string().contains("plain-file"), "{err}");
    }
}
