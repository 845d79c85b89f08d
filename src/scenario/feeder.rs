//! Data feeders: per-iteration variables for request templates, read from a CSV/JSONL file or synthesized.
//!
//! Everything that can fail happens in [`Feeder::load`]: files are read and parsed once and every row is
//! prebuilt as a minijinja map, so [`Feeder::pick`] on the hot path is infallible and, for file feeders, a
//! reference-count bump.
//!
//! Synthetic prompts count one word as one token. The vocabulary is short, common, lowercase English words
//! joined by single spaces, which BPE tokenizers (GPT, Llama, Claude families) encode as about one token each
//! (the leading space is folded into the word's token), so `tokens` is a close estimate of the prompt size the
//! server sees. The salt marker adds roughly ten tokens on top and is not counted.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use minijinja::Value;
use rand::Rng;
use rand::rngs::SmallRng;
use rand_distr::StandardNormal;
use serde::Deserialize;

/// A feeder that does not load: which one, and what is wrong with it (one line, with the fix).
#[derive(Debug, thiserror::Error)]
#[error("feeder `{feeder}`: {problem}")]
pub struct FeederError {
    /// The feeder's name, control characters escaped.
    pub feeder: String,
    pub problem: FeederProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum FeederProblem {
    #[error("set either `file` or `synthetic`, not both; use two feeders if you need both")]
    BothSources,
    #[error("set `file = \"data.csv\"` (or a .jsonl file) or `synthetic = {{ mean_tokens = 200 }}`")]
    NoSource,
    #[error("`order` applies only to file feeders; remove it from this synthetic feeder")]
    OrderOnSynthetic,
    #[error(
        "`name` must be an identifier (ASCII letters, digits and _, not starting with a digit), e.g. `prompts`, \
         so templates can write {{{{ name.field }}}}"
    )]
    NotAnIdentifier,
    #[error("`{0}` is a built-in template variable; pick another feeder name")]
    BuiltinName(String),
    #[error("`{0}` is a template keyword; pick another feeder name")]
    TemplateKeyword(String),
    #[error("`mean_tokens` must be between 1 and {MAX_TOKENS_LIMIT}, got {0}")]
    MeanTokens(u32),
    #[error("`stddev_tokens` must be a finite number >= 0, got {0}")]
    StddevTokens(f64),
    #[error("`max_tokens` must be at most {MAX_TOKENS_LIMIT}, got {0}")]
    MaxTokens(u32),
    #[error("need min_tokens <= mean_tokens <= max_tokens, got {min} <= {mean} <= {max}; adjust the bounds")]
    TokenBounds { min: u32, mean: u32, max: u32 },
    #[error("`file` is empty; give the path of a .csv or .jsonl file")]
    EmptyPath,
    /// `file` is the path as written, control characters escaped (so is `resolved`).
    #[error("{file}: unknown file type; use .csv (header row = column names) or .jsonl (one JSON object per line)")]
    UnknownType { file: String },
    #[error("{file}: cannot read it ({error}; looked at {resolved}); paths are relative to the scenario file")]
    Unreadable { file: String, resolved: String, error: std::io::Error },
    #[error("{file}:{line}: not valid UTF-8; save the file as UTF-8")]
    NotUtf8 { file: String, line: usize },
    /// A row or line that does not parse; `line` (1-based) when one applies, `message` with the fix.
    #[error("{file}{}: {message}", .line.map_or(String::new(), |l| format!(":{l}")))]
    Parse { file: String, line: Option<u64>, message: String },
}

/// Template variables the engine always defines; a feeder with one of these names would shadow it.
/// Kept here rather than imported so this module stays free of crate-internal dependencies.
const BUILTIN_NAMES: &[&str] = &["user_id", "iteration", "random_id", "uuid", "timestamp_ms", "scenario"];

/// Words minijinja parses as keywords or literals (or binds inside loops): `{{ none.x }}` or `{{ loop.x }}`
/// would not reach the feeder, so such names are refused at load instead of rendering wrong at run time.
const TEMPLATE_WORDS: &[&str] =
    &["and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None", "loop", "self"];

/// Upper bound on synthetic prompt length: a typo like `max_tokens = 80000000` would otherwise allocate
/// hundreds of megabytes per request and take the load generator down instead of the target.
const MAX_TOKENS_LIMIT: u32 = 1_000_000;

/// Hex digits of the salt marker: 48 bits keeps collisions negligible within a run (about 0.2% over a
/// million prompts, and a collision only lengthens a shared prefix by a few tokens) while costing few tokens.
const SALT_HEX_DIGITS: usize = 12;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeederSpec {
    pub name: String,
    pub file: Option<String>,
    pub order: Option<Order>,
    pub synthetic: Option<SyntheticSpec>,
}

/// How file rows are handed out. Defaults to `Sequential` when a file feeder leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// One cursor shared by all users, wrapping at the end: each row is used about equally often.
    Sequential,
    /// A uniformly random row per pick, drawn from the caller's per-user seeded rng (reproducible runs).
    Random,
    /// User N always gets row N mod rows: fixed credentials per virtual user.
    PerUser,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    /// Mean prompt length in tokens (words), at least 1.
    pub mean_tokens: u32,
    /// Standard deviation of the length; default 0 (every prompt is exactly `mean_tokens` long).
    pub stddev_tokens: Option<f64>,
    /// Lower clamp; default 1.
    pub min_tokens: Option<u32>,
    /// Upper clamp; default twice the mean (at most 1,000,000).
    pub max_tokens: Option<u32>,
    /// Start each prompt with a unique marker so server-side prompt caches cannot flatter latency; default true.
    pub salt: Option<bool>,
}

pub struct Feeder {
    name: String,
    source: Source,
}

enum Source {
    Rows {
        /// Column names in file order (CSV header order; JSONL keys in order of first appearance).
        fields: Vec<Arc<str>>,
        /// Never empty: `load` refuses files without rows, so indexing by `% len` is always meaningful.
        rows: Vec<Value>,
        order: Order,
        /// Shared by every user thread; Relaxed is enough because only the spread of indices matters,
        /// not their ordering relative to other memory.
        cursor: AtomicUsize,
        /// A shard's sequential picks: its k-th pick takes the whole run's pick `take(k)`, so shards never
        /// reuse each other's rows (until the file wraps around, as one process would).
        take: Option<Arc<dyn Fn(u64) -> u64 + Send + Sync>>,
    },
    Synthetic(Synthetic),
}

#[derive(Debug)]
struct Synthetic {
    mean: f64,
    stddev: f64,
    min: u32,
    max: u32,
    salt: bool,
    /// Drawn once per load and mixed into salt markers: per-user rngs are seeded reproducibly, so without it
    /// a second run with the same seed would resend the first run's prompts and hit a warm prompt cache.
    nonce: u64,
}

impl fmt::Debug for Feeder {
    // Hand-written so that a feeder inside a caller's Debug output shows a summary, not every row.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Feeder");
        d.field("name", &self.name);
        match &self.source {
            Source::Rows { fields, rows, order, .. } => {
                d.field("fields", fields).field("rows", &rows.len()).field("order", order)
            }
            Source::Synthetic(s) => d.field("synthetic", s),
        };
        d.finish()
    }
}

impl Feeder {
    /// Validates the spec (exactly one of `file`/`synthetic`; `name` is an identifier and not a built-in
    /// variable; `order` only with `file`; `min_tokens <= mean_tokens <= max_tokens`, `stddev_tokens >= 0`,
    /// `mean_tokens >= 1`) and loads the file relative to `base_dir` (the scenario file's folder).
    ///
    /// Errors are one line naming the feeder and, for file problems, `file:line` and the fix, e.g.
    /// "feeder `prompts`: data/p.csv:7: row has 3 fields, the header has 2; ...". A file without rows is an
    /// error. Rows are parsed once here; nothing is re-read later.
    pub fn load(spec: &FeederSpec, base_dir: &Path) -> Result<Feeder, FeederError> {
        let fail = |problem| FeederError { feeder: one_line(&spec.name), problem };
        check_name(&spec.name).map_err(fail)?;
        let source = match (&spec.file, &spec.synthetic) {
            (Some(_), Some(_)) => Err(FeederProblem::BothSources),
            (None, None) => Err(FeederProblem::NoSource),
            (Some(file), None) => load_file(file, spec.order.unwrap_or(Order::Sequential), base_dir),
            (None, Some(_)) if spec.order.is_some() => Err(FeederProblem::OrderOnSynthetic),
            (None, Some(syn)) => Synthetic::new(syn).map(Source::Synthetic),
        }
        .map_err(fail)?;
        Ok(Feeder { name: spec.name.clone(), source })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A shard's part of a sequential file feeder: its k-th pick is the whole run's pick `take(k)`.
    pub fn take_sequential(&mut self, take: Arc<dyn Fn(u64) -> u64 + Send + Sync>) {
        if let Source::Rows { take: t, order: Order::Sequential, .. } = &mut self.source {
            *t = Some(take);
        }
    }

    /// Column names (file feeders) or `["prompt", "tokens"]` (synthetic), so the caller can check templates.
    pub fn fields(&self) -> Vec<String> {
        match &self.source {
            Source::Rows { fields, .. } => fields.iter().map(|f| f.to_string()).collect(),
            Source::Synthetic(_) => vec!["prompt".to_string(), "tokens".to_string()],
        }
    }

    /// Number of rows; 0 for synthetic feeders, which have no rows but never run dry.
    pub fn len(&self) -> usize {
        match &self.source {
            Source::Rows { rows, .. } => rows.len(),
            Source::Synthetic(_) => 0,
        }
    }

    /// True for synthetic feeders (no rows); file feeders always have at least one row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row for one iteration of one user, as a minijinja map.
    ///
    /// File rows are prebuilt, so this is a cheap clone (no allocation). Synthetic: draws N from
    /// Normal(mean, stddev) clamped to [min, max] using `rng`, and builds N words from a fixed vocabulary;
    /// the words and N are deterministic given `rng`. With `salt` (default) the prompt starts with a marker
    /// like "[run-load-test 9f3a1c2e04b7] " that is unique per pick and per load (see `Synthetic::nonce`).
    pub fn pick(&self, user_id: u64, rng: &mut SmallRng) -> Value {
        match &self.source {
            Source::Rows { rows, order, cursor, take, .. } => {
                let len = rows.len();
                if len == 0 {
                    // Unreachable through `load`; guards the `% len` and `random_range` below regardless.
                    return Value::UNDEFINED;
                }
                let index = match order {
                    Order::Sequential => {
                        let k = cursor.fetch_add(1, Ordering::Relaxed);
                        match take {
                            Some(take) => (take(k as u64) % len as u64) as usize,
                            None => k % len,
                        }
                    }
                    Order::Random => rng.random_range(0..len),
                    // Reduce in u64 first: on 32-bit targets casting user_id down before `%` would skew rows.
                    Order::PerUser => (user_id % len as u64) as usize,
                };
                rows.get(index).cloned().unwrap_or(Value::UNDEFINED)
            }
            Source::Synthetic(s) => s.pick(rng),
        }
    }
}

impl Synthetic {
    fn new(spec: &SyntheticSpec) -> Result<Synthetic, FeederProblem> {
        let mean = spec.mean_tokens;
        if !(1..=MAX_TOKENS_LIMIT).contains(&mean) {
            return Err(FeederProblem::MeanTokens(mean));
        }
        let stddev = spec.stddev_tokens.unwrap_or(0.0);
        if !stddev.is_finite() || stddev < 0.0 {
            return Err(FeederProblem::StddevTokens(stddev));
        }
        // Default 1 is always <= mean (checked above); an explicit bound is checked below.
        let min = spec.min_tokens.unwrap_or(1);
        let max = spec.max_tokens.unwrap_or_else(|| mean.saturating_mul(2).min(MAX_TOKENS_LIMIT));
        if max > MAX_TOKENS_LIMIT {
            return Err(FeederProblem::MaxTokens(max));
        }
        if !(min <= mean && mean <= max) {
            return Err(FeederProblem::TokenBounds { min, mean, max });
        }
        let salt = spec.salt.unwrap_or(true);
        Ok(Synthetic { mean: f64::from(mean), stddev, min, max, salt, nonce: rand::random() })
    }

    fn pick(&self, rng: &mut SmallRng) -> Value {
        let z: f64 = rng.sample(StandardNormal);
        // `max`/`min` rather than `clamp`: they cannot panic and map a NaN to the lower bound.
        let n = (self.mean + self.stddev * z).round().max(f64::from(self.min)).min(f64::from(self.max)) as u32;
        let mut prompt = if self.salt {
            let marker = (rng.random::<u64>() ^ self.nonce) & ((1u64 << (SALT_HEX_DIGITS * 4)) - 1);
            format!("[run-load-test {marker:0width$x}] ", width = SALT_HEX_DIGITS)
        } else {
            String::new()
        };
        // Average word is under 6 bytes plus a space; reserving once avoids regrowth on long prompts.
        prompt.reserve(n as usize * 7);
        for i in 0..n {
            if i > 0 {
                prompt.push(' ');
            }
            prompt.push_str(VOCABULARY[rng.random_range(0..VOCABULARY.len())]);
        }
        Value::from(BTreeMap::from([("prompt", Value::from(prompt)), ("tokens", Value::from(n))]))
    }
}

/// A parse error: the 1-based line it concerns (when one applies) and the message with its fix.
type ParseError = (Option<u64>, String);
/// Column names and prebuilt rows, as both file parsers return them.
type Parsed = Result<(Vec<Arc<str>>, Vec<Value>), ParseError>;

fn load_file(file: &str, order: Order, base_dir: &Path) -> Result<Source, FeederProblem> {
    if file.trim().is_empty() {
        return Err(FeederProblem::EmptyPath);
    }
    let shown = one_line(file);
    let path = base_dir.join(file);
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let parse: fn(&str) -> Parsed = match extension.as_deref() {
        Some("csv") => parse_csv,
        Some("jsonl" | "ndjson") => parse_jsonl,
        _ => return Err(FeederProblem::UnknownType { file: shown }),
    };
    let bytes = std::fs::read(&path).map_err(|error| FeederProblem::Unreadable {
        file: shown.clone(),
        resolved: one_line(&path.display().to_string()),
        error,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| FeederProblem::NotUtf8 {
        file: shown.clone(),
        line: line_of(e.as_bytes(), e.utf8_error().valid_up_to()),
    })?;
    // Spreadsheet exports often start with a byte-order mark, which would otherwise join the first column's name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let (fields, rows) =
        parse(text).map_err(|(line, message)| FeederProblem::Parse { file: shown.clone(), line, message })?;
    Ok(Source::Rows { fields, rows, order, cursor: AtomicUsize::new(0), take: None })
}

fn parse_csv(text: &str) -> Parsed {
    // `flexible` so that a ragged row reaches our own check, which words the error with both counts and a fix.
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let header = reader.headers().map_err(csv_error)?.clone();
    if header.is_empty() {
        return Err((None, "file is empty; the first row must name the columns, e.g. `id,question`".to_string()));
    }
    let header_line = header.position().map(|p| p.line());
    let mut fields: Vec<Arc<str>> = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        if name.trim().is_empty() {
            let msg = format!("header column {} has no name; name every column (or drop a trailing comma)", i + 1);
            return Err((header_line, msg));
        }
        if fields.iter().any(|f| &**f == name) {
            let msg = format!("column `{}` appears twice in the header; column names must be unique", one_line(name));
            return Err((header_line, msg));
        }
        fields.push(Arc::from(name));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        if record.len() != fields.len() {
            let line = record.position().map(|p| p.line());
            let msg = format!(
                "row has {} fields, the header has {}; quote values that contain commas (\"a, b\")",
                record.len(),
                fields.len()
            );
            return Err((line, msg));
        }
        // Cloning the Arc keys shares one allocation per column name across all rows.
        let row: BTreeMap<Arc<str>, Value> = fields.iter().cloned().zip(record.iter().map(Value::from)).collect();
        rows.push(Value::from(row));
    }
    if rows.is_empty() {
        return Err((None, "has a header row but no data rows; add at least one row".to_string()));
    }
    Ok((fields, rows))
}

fn csv_error(e: csv::Error) -> ParseError {
    let line = e.position().map(|p| p.line());
    let msg = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8; save the file as UTF-8".to_string(),
        _ => one_line(&e.to_string()),
    };
    (line, msg)
}

fn parse_jsonl(text: &str) -> Parsed {
    let mut fields: Vec<Arc<str>> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut objects = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index as u64 + 1;
        // Blank lines (often a trailing one) carry no row; skipping them beats an error nobody can see.
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            // serde_json appends "at line 1 column N" relative to this one line; we report the file line.
            let full = e.to_string();
            let reason = full.split(" at line ").next().unwrap_or(&full);
            let msg = format!(
                "invalid JSON at column {}: {}; each line must be one complete JSON object",
                e.column(),
                one_line(reason)
            );
            (Some(number), msg)
        })?;
        let serde_json::Value::Object(object) = value else {
            let msg = "line is not a JSON object; write one object per line, like {\"question\": \"...\"}";
            return Err((Some(number), msg.to_string()));
        };
        for key in object.keys() {
            if seen.insert(key.clone()) {
                fields.push(Arc::from(key.as_str()));
            }
        }
        objects.push(object);
    }
    if objects.is_empty() {
        return Err((None, "file is empty; write one JSON object per line".to_string()));
    }
    if fields.is_empty() {
        return Err((None, "no line has any key; write objects like {\"question\": \"...\"}".to_string()));
    }
    let rows = objects
        .into_iter()
        .map(|mut object| {
            // Every row gets every field so templates never meet an undefined value mid-run: a key missing
            // from a line reads as the empty string (keys are optional, as is usual in JSONL data sets).
            let row: BTreeMap<Arc<str>, Value> = fields
                .iter()
                .map(|key| (key.clone(), object.remove(&**key).map_or_else(|| Value::from(""), json_to_text)))
                .collect();
            Value::from(row)
        })
        .collect();
    Ok((fields, rows))
}

/// Strings stay as they are; anything else is rendered as JSON text, so `{{ row.meta }}` inserts the
/// literal JSON (handy for request bodies) instead of minijinja's own formatting of maps and lists.
fn json_to_text(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::String(s) => Value::from(s),
        other => Value::from(other.to_string()),
    }
}

fn check_name(name: &str) -> Result<(), FeederProblem> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(FeederProblem::NotAnIdentifier);
    }
    if BUILTIN_NAMES.contains(&name) {
        return Err(FeederProblem::BuiltinName(name.to_string()));
    }
    if TEMPLATE_WORDS.contains(&name) {
        return Err(FeederProblem::TemplateKeyword(name.to_string()));
    }
    Ok(())
}

/// Errors must stay on one line; user-supplied text (names, paths, header cells) could carry newlines.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// 1-based line number of byte offset `at`.
fn line_of(bytes: &[u8], at: usize) -> usize {
    bytes.iter().take(at).filter(|&&b| b == b'\n').count() + 1
}

/// Fixed vocabulary for synthetic prompts: short, frequent English words that tokenizers keep whole, so
/// one word is about one token. Fixed (not configurable) so that the same seed always yields the same text.
const VOCABULARY: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he",
    "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were", "their",
    "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no",
    "she", "other", "its", "may", "these", "what", "them", "than", "some", "him", "time", "into", "only", "do",
    "could", "new", "about", "two", "first", "then", "also", "any", "like", "our", "over", "such", "after", "most",
    "years", "should", "made", "world", "many", "people", "where", "used", "much", "each", "well", "work", "before",
    "between", "must", "through", "water", "long", "three", "make", "same", "way", "day", "state", "under", "back",
    "great", "good", "own", "part", "while", "high", "life", "system", "place", "small", "does", "here", "house",
    "find", "number", "still", "point", "every", "very", "just", "know", "take", "year", "come", "hand", "group",
    "early", "large", "light", "city", "order", "form", "line", "case", "book", "road", "name", "power", "change",
    "field", "table", "word", "open", "result", "model", "value", "answer", "story", "river", "music", "color",
    "paper", "plant", "market", "report", "simple", "question", "reason", "always", "never", "often", "below", "above",
    "green", "black", "white", "north", "south", "east", "west", "stone", "tree", "garden", "window", "door",
    "morning", "night", "summer", "winter", "friend", "family", "school", "train", "ship", "bridge", "mountain",
    "island", "village", "street", "letter", "picture",
];

#[cfg(test)]
#[path = "feeder_tests.rs"]
mod tests;
