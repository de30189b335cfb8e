//! Chat templates: the Jinja `chat_template` a model's tokenizer_config.json carries (or its
//! `chat_template.jinja`), rendered as transformers' `apply_chat_template` does — the same
//! whitespace rules (`trim_blocks`, `lstrip_blocks`), Python string methods, `raise_exception`,
//! `strftime_now`, a `tojson` that writes what Python's `json.dumps` writes, and the
//! `bos_token`/`eos_token` strings — with `add_generation_prompt` set, so the text ends where the
//! assistant's reply begins.

use std::path::{Path, PathBuf};

use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value as Json;

use crate::engine::error::{EngineError, Result};

/// A model's chat template as found on disk, not yet compiled: a model whose template is broken
/// still loads, and only `--chat` reports the problem.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    /// The file it came from, named in every error.
    pub path: PathBuf,
    /// `chat_template` as written: a string, or a list of `{name, template}`.
    raw: Json,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// The template of the tokenizer in `dir`: tokenizer_config.json's `chat_template`, else
    /// `chat_template.jinja` (where newer transformers save it); None when there is neither.
    pub fn find(dir: &Path, tokenizer_config: &Json) -> Result<Option<Self>> {
        let token = |key: &str| -> String {
            match tokenizer_config.get(key) {
                Some(Json::String(s)) => s.clone(),
                Some(Json::Object(o)) => o
                    .get("content")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                _ => String::new(),
            }
        };
        let (path, raw) = match tokenizer_config.get("chat_template") {
            Some(raw) if !raw.is_null() => (dir.join("tokenizer_config.json"), raw.clone()),
            _ => {
                let path = dir.join("chat_template.jinja");
                if !path.is_file() {
                    return Ok(None);
                }
                let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
                (path, Json::String(text))
            }
        };
        Ok(Some(Self {
            path,
            raw,
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
        }))
    }

    /// A template from its text alone (tests, tools).
    pub fn from_source(path: &Path, source: &str, bos_token: &str, eos_token: &str) -> Self {
        Self {
            path: path.to_path_buf(),
            raw: Json::String(source.to_string()),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        }
    }

    /// The template text: the string, or from the list form the one named "default".
    fn source(&self) -> Result<String> {
        let bad = |m: &str| EngineError::invalid(&self.path, format!("chat_template: {m}"));
        match &self.raw {
            Json::String(s) => Ok(s.clone()),
            Json::Array(items) => {
                let named =
                    |item: &Json, name: &str| item.get("name").and_then(Json::as_str) == Some(name);
                let default = items
                    .iter()
                    .find(|item| named(item, "default"))
                    .ok_or_else(|| {
                        let names: Vec<&str> = items
                            .iter()
                            .filter_map(|i| i.get("name").and_then(Json::as_str))
                            .collect();
                        bad(&format!(
                            "no template named 'default' among [{}]",
                            names.join(", ")
                        ))
                    })?;
                default
                    .get("template")
                    .and_then(Json::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| bad("the 'default' entry has no 'template' string"))
            }
            _ => Err(bad("expected a string or a list of named templates")),
        }
    }
}

/// A compiled chat template with the conversation's system message: turns a user's prompt into
/// the text the model was fine-tuned on.
pub struct ChatPrompt {
    env: Environment<'static>,
    path: PathBuf,
    system: Option<String>,
    bos_token: String,
    eos_token: String,
    /// Extra template variables (`--chat-kwarg`), laid over the defaults as transformers lays
    /// `apply_chat_template`'s keyword arguments over the special tokens.
    variables: serde_json::Map<String, Json>,
}

const TEMPLATE_NAME: &str = "chat_template";

/// Why `name` cannot be a template variable set by the user (`--chat-kwarg`, a profile's
/// `chat_kwargs`): not an identifier, or one of the names genarm renders the conversation
/// with. None when it can.
pub fn variable_name_problem(name: &str) -> Option<String> {
    let identifier = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        Some(format!("'{name}' is not a template variable name"))
    } else if matches!(name, "messages" | "add_generation_prompt") {
        Some(format!("'{name}' is set by genarm (--prompt, --system)"))
    } else {
        None
    }
}

impl ChatPrompt {
    /// Compile `template`; a syntax error names the file.
    pub fn new(template: &ChatTemplate, system: Option<String>) -> Result<Self> {
        let source = template.source()?;
        let mut env = environment();
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(|e| EngineError::invalid(&template.path, describe(&e)))?;
        Ok(Self {
            env,
            path: template.path.clone(),
            system,
            bos_token: template.bos_token.clone(),
            eos_token: template.eos_token.clone(),
            variables: serde_json::Map::new(),
        })
    }

    /// The same template rendered with `variables` set (a later one of the same name wins).
    pub fn with_variables(mut self, variables: &[(String, Json)]) -> Self {
        for (name, value) in variables {
            self.variables.insert(name.clone(), value.clone());
        }
        self
    }

    /// The conversation `[system?, user]` rendered with `add_generation_prompt`.
    pub fn render(&self, user: &str) -> Result<String> {
        self.render_messages(&self.messages(user), true)
    }

    /// The conversation [`ChatPrompt::render`] renders: `[system?, user]`.
    pub fn messages(&self, user: &str) -> Vec<Json> {
        let mut messages = Vec::new();
        if let Some(system) = &self.system {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        messages.push(serde_json::json!({"role": "user", "content": user}));
        messages
    }

    /// The template variables set by the user (`--chat-kwarg`).
    pub fn variables(&self) -> &serde_json::Map<String, Json> {
        &self.variables
    }

    /// Where the template came from, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Any conversation (`{"role", "content"}` messages; the system message given to `new` is
    /// not added), as `apply_chat_template(messages, add_generation_prompt=...)` renders it.
    pub fn render_messages(
        &self,
        messages: &[Json],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let mut context = serde_json::json!({
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        });
        if let Json::Object(map) = &mut context {
            map.extend(self.variables.clone());
            map.insert("messages".into(), Json::from(messages.to_vec()));
            map.insert(
                "add_generation_prompt".into(),
                Json::Bool(add_generation_prompt),
            );
        }
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| EngineError::invalid(&self.path, describe(&e)))?;
        let text_bytes: usize = messages
            .iter()
            .map(|m| m["content"].as_str().map_or(0, str::len))
            .sum();
        let limit = output_limit(text_bytes);
        let mut out = CappedText::new(limit);
        let rendered = template.render_captured_to(Value::from(Serde(&context)), &mut out);
        if out.overflowed {
            return Err(EngineError::invalid(
                &self.path,
                format!(
                    "chat_template: the rendered prompt passes {} MB; a chat template makes a \
                     prompt from the conversation, not more",
                    limit >> 20
                ),
            ));
        }
        match rendered {
            Ok(_) => String::from_utf8(out.bytes).map_err(|_| {
                EngineError::invalid(&self.path, "chat_template: output is not UTF-8")
            }),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(EngineError::invalid(
                &self.path,
                format!(
                    "chat_template: rendering did not finish within {RENDER_FUEL} steps (a loop \
                     that does not end, or one that is far too long)"
                ),
            )),
            Err(e) => Err(EngineError::invalid(&self.path, describe(&e))),
        }
    }
}

/// Instructions a template may run for one prompt. Real templates (Llama 3, Qwen, Gemma, Phi,
/// SmolLM) take a few thousand for a two-message conversation; this bounds a runaway loop at
/// well under a second.
const RENDER_FUEL: u64 = 20_000_000;

/// The most a template may write for a conversation of `conversation_bytes`: every real
/// template writes each message once plus a few hundred bytes of markup; a budget of 8 copies
/// plus 1 MiB leaves room for templates that repeat the system text, and stops a template that
/// writes without end long before it takes the machine's memory.
fn output_limit(conversation_bytes: usize) -> usize {
    (1 << 20) + conversation_bytes.saturating_mul(8)
}

/// An in-memory writer that refuses to grow past `limit` bytes.
struct CappedText {
    bytes: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl CappedText {
    fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
            overflowed: false,
        }
    }
}

impl std::io::Write for CappedText {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Err(std::io::Error::other("chat template output budget spent"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One line for a template error: what failed and where (`line N`); the template's own
/// `raise_exception` message is given as it is.
fn describe(e: &Error) -> String {
    let place = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
    let text = match (e.kind(), e.detail()) {
        (ErrorKind::InvalidOperation, Some(detail)) if detail.starts_with(RAISED) => {
            format!(
                "chat_template raised an exception: {}",
                &detail[RAISED.len()..]
            )
        }
        (ErrorKind::SyntaxError, detail) => {
            format!(
                "chat_template: syntax error: {}",
                detail.unwrap_or_default()
            )
        }
        _ => format!("chat_template: {e}"),
    };
    format!("{text}{place}").replace('\n', " ")
}

/// Marks the errors `raise_exception` makes, to tell them from the engine's own.
const RAISED: &str = "raise_exception: ";

/// The environment transformers renders chat templates in (`ImmutableSandboxedEnvironment` with
/// `trim_blocks`, `lstrip_blocks`, loop controls and its own globals and filter).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(RENDER_FUEL));
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build();
    if let Ok(syntax) = syntax {
        env.set_syntax(syntax);
    }
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |message: String| -> Result<Value, Error> {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{RAISED}{message}"),
            ))
        },
    );
    env.add_function("strftime_now", |format: String| {
        strftime(&format, std::time::SystemTime::now())
    });
    env.add_filter("tojson", tojson);
    env
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=indent,
/// sort_keys=sort_keys)` — no HTML escaping, Python's separators (`", "` and `": "`).
fn tojson(value: Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => Some(usize::try_from(v)?),
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value).map_err(|e| {
        Error::new(ErrorKind::InvalidOperation, "cannot serialize to JSON").with_source(e)
    })?;
    let mut out = String::new();
    PyJson {
        indent,
        sort_keys,
        ensure_ascii,
    }
    .write(&json, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

/// Python's `json.dumps` layout.
struct PyJson {
    indent: Option<usize>,
    sort_keys: bool,
    ensure_ascii: bool,
}

impl PyJson {
    fn write(&self, value: &Json, level: usize, out: &mut String) {
        match value {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::String(s) => self.string(s, out),
            Json::Array(items) => {
                let items: Vec<&Json> = items.iter().collect();
                self.container(('[', ']'), items.len(), level, out, |i, out| {
                    self.write(items[i], level + 1, out)
                });
            }
            Json::Object(map) => {
                let mut entries: Vec<(&String, &Json)> = map.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                self.container(('{', '}'), entries.len(), level, out, |i, out| {
                    self.string(entries[i].0, out);
                    out.push_str(": ");
                    self.write(entries[i].1, level + 1, out);
                });
            }
        }
    }

    /// `[a, b]` on one line, or with `indent` one item per line (`,` ending each but the last).
    fn container(
        &self,
        (open, close): (char, char),
        len: usize,
        level: usize,
        out: &mut String,
        mut item: impl FnMut(usize, &mut String),
    ) {
        out.push(open);
        if len > 0 {
            for i in 0..len {
                match self.indent {
                    Some(n) => {
                        out.push_str(if i == 0 { "\n" } else { ",\n" });
                        out.push_str(&" ".repeat(n * (level + 1)));
                    }
                    None if i > 0 => out.push_str(", "),
                    None => {}
                }
                item(i, out);
            }
            if let Some(n) = self.indent {
                out.push('\n');
                out.push_str(&" ".repeat(n * level));
            }
        }
        out.push(close);
    }

    fn string(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && !c.is_ascii()) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Python's `strftime` for the directives chat templates use (`%d %b %Y` and the like), in UTC.
fn strftime(format: &str, now: std::time::SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('B') => out.push_str(month_name),
            Some('b') => out.push_str(&month_name[..3]),
            Some('A') => out.push_str(weekday),
            Some('a') => out.push_str(&weekday[..3]),
            Some('H') => out.push_str(&format!("{:02}", of_day / 3600)),
            Some('M') => out.push_str(&format!("{:02}", of_day / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", of_day % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// (year, month, day) of a day count since 1970-01-01 (the proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str) -> String {
        let template = ChatTemplate::from_source(Path::new("t.json"), source, "<s>", "</s>");
        ChatPrompt::new(&template, None)
            .unwrap()
            .render("hi")
            .unwrap()
    }

    #[test]
    fn tojson_writes_what_python_json_dumps_writes() {
        // json.dumps({"a": "<b>&'", "n": [1, 2.5, None, True]}, ensure_ascii=False)
        assert_eq!(
            render(r#"{{ {"a": "<b>&'", "n": [1, 2.5, none, true]} | tojson }}"#),
            r#"{"a": "<b>&'", "n": [1, 2.5, null, true]}"#
        );
        // json.dumps({"k": [1, {}]}, indent=2)
        assert_eq!(
            render(r#"{{ {"k": [1, {}]} | tojson(indent=2) }}"#),
            "{\n  \"k\": [\n    1,\n    {}\n  ]\n}"
        );
        // json.dumps({"b": 1, "a": "é\n"}, sort_keys=True) and with ensure_ascii=True
        assert_eq!(
            render(r#"{{ {"b": 1, "a": "é\n"} | tojson(sort_keys=true) }}"#),
            "{\"a\": \"é\\n\", \"b\": 1}"
        );
        assert_eq!(
            render(r#"{{ "é😀" | tojson(ensure_ascii=true) }}"#),
            r#""\u00e9\ud83d\ude00""#
        );
    }

    #[test]
    fn python_string_methods_work() {
        assert_eq!(
            render(
                "{{ '  x  '.strip() }}|{% if 'abc'.startswith('ab') %}yes{% endif %}|{{ 'a b'.split(' ')[1] }}"
            ),
            "x|yes|b"
        );
    }

    #[test]
    fn strftime_formats_a_known_instant() {
        // 2024-07-26 13:05:09 UTC (a Friday) is 1721999109 seconds after the epoch
        // (Python: datetime.fromtimestamp(1721999109, timezone.utc)).
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_721_999_109);
        assert_eq!(
            strftime("%d %b %Y %H:%M:%S %A %B %y %m %%", t),
            "26 Jul 2024 13:05:09 Friday July 24 07 %"
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn the_list_form_picks_default() {
        let raw = serde_json::json!([
            {"name": "tool_use", "template": "T"},
            {"name": "default", "template": "D{{ messages[0].content }}"}
        ]);
        let config = serde_json::json!({"chat_template": raw, "bos_token": {"content": "<s>"}});
        let dir = tempfile::tempdir().unwrap();
        let template = ChatTemplate::find(dir.path(), &config).unwrap().unwrap();
        assert_eq!(template.bos_token, "<s>");
        let prompt = ChatPrompt::new(&template, None).unwrap();
        assert_eq!(prompt.render("x").unwrap(), "Dx");

        let config = serde_json::json!({"chat_template": [{"name": "tool_use", "template": "T"}]});
        let template = ChatTemplate::find(dir.path(), &config).unwrap().unwrap();
        let err = ChatPrompt::new(&template, None).err().unwrap().to_string();
        assert!(
            err.contains("tokenizer_config.json") && err.contains("default"),
            "{err}"
        );
    }

    #[test]
    fn a_model_without_a_template_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"bos_token": "<s>", "chat_template": null});
        assert!(ChatTemplate::find(dir.path(), &config).unwrap().is_none());
        std::fs::write(dir.path().join("chat_template.jinja"), "J{{ bos_token }}").unwrap();
        let template = ChatTemplate::find(dir.path(), &config).unwrap().unwrap();
        assert!(template.path.ends_with("chat_template.jinja"));
        assert_eq!(
            ChatPrompt::new(&template, None)
                .unwrap()
                .render("x")
                .unwrap(),
            "J<s>"
        );
    }

    fn render_error(source: &str) -> String {
        let template = ChatTemplate::from_source(Path::new("t.json"), source, "<s>", "</s>");
        let started = std::time::Instant::now();
        let err = ChatPrompt::new(&template, None)
            .unwrap()
            .render("hi")
            .expect_err("the template must be refused")
            .to_string();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
        assert!(err.contains("t.json") && !err.contains('\n'), "{err}");
        err
    }

    #[test]
    fn a_template_that_loops_without_end_runs_out_of_fuel() {
        // 10^12 iterations: would run for hours.
        let err = render_error(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100) %}\
             {% endfor %}{% endfor %}{% endfor %}",
        );
        assert!(err.contains("did not finish"), "{err}");
    }

    #[test]
    fn a_template_that_writes_without_end_is_stopped_at_its_budget() {
        // 100 MB of output in 1 KB pieces; the budget for "hi" is 1 MiB + 16 bytes.
        let err = render_error(
            "{% set kb = 'x' * 1000 %}{% for i in range(100000) %}{{ kb }}{% endfor %}",
        );
        assert!(err.contains("passes 1 MB"), "{err}");
        // Just under the budget renders.
        let text =
            render("{% set kb = 'x' * 1000 %}{% for i in range(1000) %}{{ kb }}{% endfor %}");
        assert_eq!(text.len(), 1_000_000);
    }

    #[test]
    fn chat_kwargs_are_template_variables() {
        // Qwen3's switch, written as its template tests it; what it must render is read off
        // the template: the empty think block only when enable_thinking is false.
        let source = "{{ messages[0].content }}{% if enable_thinking is defined and \
                      enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}|{{ bos_token }}";
        let template = ChatTemplate::from_source(Path::new("t.json"), source, "<s>", "</s>");
        let plain = ChatPrompt::new(&template, None).unwrap();
        assert_eq!(plain.render("hi").unwrap(), "hi|<s>");
        let off = ChatPrompt::new(&template, None)
            .unwrap()
            .with_variables(&[("enable_thinking".into(), Json::Bool(false))]);
        assert_eq!(off.render("hi").unwrap(), "hi<think>\n\n</think>\n\n|<s>");
        // A variable may replace a special token's text, as transformers' kwargs do.
        let bos = ChatPrompt::new(&template, None)
            .unwrap()
            .with_variables(&[("bos_token".into(), Json::from("<B>"))]);
        assert_eq!(bos.render("hi").unwrap(), "hi|<B>");
    }
}
