//! Secrets never leave, and server text never drives the terminal. One process-wide redactor holds the secrets
//! of the run (`install`, before any load is sent); `text` masks them in everything the tool writes or prints,
//! in the forms a server may echo them: exact, case-changed (ASCII), escaped (`\u0073`, `\x73`, `\/`, `%73`,
//! `&#115;`, mixed with plain characters), truncated (any run of 8 or more characters of a secret; a secret
//! shorter than 8 only whole) and base64-encoded. `escape_control` makes control characters and escape
//! sequences visible text. A leaf module: it knows nothing of the rest of the crate.
//!
//! How a match is found: the text is read twice as a stream of (lowercased character, original byte span), once
//! as it is and once with escapes decoded; every window of 8 characters that is an 8-gram of a secret (or a
//! whole short secret) marks its original bytes, and each run of marked bytes becomes `***`. A run of windows
//! covers a truncated or extended echo maximally, so no 8 characters of a secret survive next to a mask.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{LazyLock, RwLock};

use base64::Engine;

/// What a secret is replaced with: valid inside a JSON string, a CSV field, HTML and Markdown.
pub const MASK: &str = "***";

/// Windows longer secrets are matched on.
const GRAM: usize = 8;
/// Shorter values are not secrets: masking them would mask ordinary words.
const MIN_SECRET: usize = 4;
/// A run holding more distinct secrets than this (a token captured per user) keeps the first ones.
const MAX_SECRETS: usize = 100_000;

type Gram = [char; GRAM];

/// FxHash: every window of every report file is looked up, and the table is built from the secrets alone (no
/// flooding risk), so a multiply-rotate hash beats SipHash here by several times.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Grams = HashSet<Gram, std::hash::BuildHasherDefault<Fx>>;

/// A set of secrets and the windows that reveal them.
#[derive(Default)]
pub struct Redactor {
    seen: HashSet<String>,
    /// Lowercase 8-grams of every secret of 8 characters or more (and of their base64 forms).
    grams: Grams,
    /// Whole secrets of 4 to 7 characters, lowercased and padded with `\0`, by length.
    short: [Grams; GRAM],
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut r = Redactor::default();
        for s in secrets {
            r.add(&s);
        }
        r
    }

    pub fn is_empty(&self) -> bool {
        self.grams.is_empty() && self.short.iter().all(Grams::is_empty)
    }

    /// Whether `secret` is already known (or would be ignored): lets a per-request caller skip the write lock.
    pub fn knows(&self, secret: &str) -> bool {
        self.seen.contains(secret) || self.seen.len() >= MAX_SECRETS || !is_secret(secret)
    }

    /// Adds a secret; values that cannot be credentials (shorter than 4 characters, numbers, durations, `true`)
    /// are ignored, since masking them would corrupt the report's own numbers and words.
    pub fn add(&mut self, secret: &str) {
        if self.knows(secret) {
            return;
        }
        self.seen.insert(secret.to_string());
        self.add_form(secret);
        // A server that echoes the `Authorization: Basic …` it got, or a token it base64-encodes: the
        // characters that depend on the secret alone, at each of the three alignments, in both alphabets.
        let bytes = secret.as_bytes();
        for pad in 0..3 {
            let mut padded = vec![0u8; pad];
            padded.extend_from_slice(bytes);
            let enc = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&padded);
            let from = (pad * 8).div_ceil(6);
            let to = ((pad + bytes.len()) * 8 / 6).min(enc.len());
            if let Some(mid) = enc.get(from..to).filter(|m| m.len() >= GRAM) {
                self.add_form(mid);
                if mid.contains(['+', '/']) {
                    self.add_form(&mid.replace('+', "-").replace('/', "_"));
                }
            }
        }
    }

    fn add_form(&mut self, form: &str) {
        let chars: Vec<char> = form.chars().map(|c| c.to_ascii_lowercase()).collect();
        if chars.len() >= GRAM {
            for w in chars.windows(GRAM) {
                let mut g = ['\0'; GRAM];
                g.copy_from_slice(w);
                self.grams.insert(g);
            }
        } else if chars.len() >= MIN_SECRET {
            let mut g = ['\0'; GRAM];
            g[..chars.len()].copy_from_slice(&chars);
            self.short[chars.len()].insert(g);
        }
    }

    /// `s` with every form of every secret replaced by `***`; borrowed when nothing matched.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if self.is_empty() || s.len() < MIN_SECRET {
            return Cow::Borrowed(s);
        }
        let mut spans = Vec::new();
        self.scan(s.char_indices().map(|(i, c)| (c.to_ascii_lowercase(), i, i + c.len_utf8())), &mut spans);
        if s.contains(['\\', '%', '&']) {
            self.scan(Decoded { s, pos: 0 }, &mut spans);
        }
        if spans.is_empty() {
            return Cow::Borrowed(s);
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        let mut spans = spans.into_iter().map(|(a, b)| whole_escapes(s, a, b)).peekable();
        while let Some((a, mut b)) = spans.next() {
            // Overlapping or touching spans become one mask.
            while let Some((_, next_b)) = spans.next_if(|&(next_a, _)| next_a <= b) {
                b = b.max(next_b);
            }
            out.push_str(&s[last..a]);
            out.push_str(MASK);
            last = b;
        }
        out.push_str(&s[last..]);
        Cow::Owned(out)
    }

    /// `text` for a JSON document: only string values are masked, never keys, numbers or structure, so the
    /// document keeps its keys even when a short secret is a word the schema uses (`user`, `load`).
    pub fn json<'a>(&self, doc: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(doc);
        }
        let b = doc.as_bytes();
        let mut out: Option<String> = None;
        let (mut last, mut i) = (0, 0);
        while i < b.len() {
            if b[i] != b'"' {
                i += 1;
                continue;
            }
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            // Both ends are ASCII (a quote) or the end of the text: always character boundaries.
            let end = j.min(b.len());
            let after = b[(end + 1).min(b.len())..].iter().find(|c| !c.is_ascii_whitespace());
            if after != Some(&b':') {
                if let Cow::Owned(masked) = self.text(&doc[start..end]) {
                    let o = out.get_or_insert_with(|| String::with_capacity(doc.len()));
                    o.push_str(&doc[last..start]);
                    o.push_str(&masked);
                    last = end;
                }
            }
            i = end + 1;
        }
        match out {
            None => Cow::Borrowed(doc),
            Some(mut o) => {
                o.push_str(&doc[last..]);
                Cow::Owned(o)
            }
        }
    }

    /// Marks the original span of every window that reveals a secret.
    fn scan(&self, chars: impl Iterator<Item = (char, usize, usize)>, spans: &mut Vec<(usize, usize)>) {
        // The last 8 characters, oldest first once full.
        let mut ring: [(char, usize, usize); GRAM] = [('\0', 0, 0); GRAM];
        let mut n = 0usize;
        for item in chars {
            ring[n % GRAM] = item;
            n += 1;
            let at = |back: usize| ring[(n - back) % GRAM];
            let mut mark = |len: usize, set: &Grams| {
                let mut g = ['\0'; GRAM];
                for (k, slot) in g.iter_mut().take(len).enumerate() {
                    *slot = at(len - k).0;
                }
                if set.contains(&g) {
                    spans.push((at(len).1, item.2));
                }
            };
            if n >= GRAM && !self.grams.is_empty() {
                mark(GRAM, &self.grams);
            }
            for len in (MIN_SECRET..GRAM.min(n + 1)).filter(|&l| !self.short[l].is_empty()) {
                mark(len, &self.short[len]);
            }
        }
    }
}

/// Whether a value can be a credential at all.
fn is_secret(s: &str) -> bool {
    let t = s.trim();
    t.chars().count() >= MIN_SECRET
        && t.parse::<f64>().is_err()
        && humantime::parse_duration(t).is_err()
        && !t.eq_ignore_ascii_case("true")
        && !t.eq_ignore_ascii_case("false")
}

/// Widens a span so it never cuts an escape sequence in two: a mask must leave the text as valid as it was.
fn whole_escapes(s: &str, mut a: usize, mut b: usize) -> (usize, usize) {
    let bytes = s.as_bytes();
    while a > 0 && bytes[a - 1] == b'\\' {
        a -= 1;
    }
    if b > a && bytes[b - 1] == b'\\' {
        while b < bytes.len() && bytes[b] == b'\\' {
            b += 1;
        }
        if let Some(c) = s[b..].chars().next() {
            b += c.len_utf8();
            let hex = match c {
                'u' => 4,
                'x' => 2,
                _ => 0,
            };
            let run = bytes[b..].iter().take(hex).take_while(|x| x.is_ascii_hexdigit()).count();
            b += run;
        }
    }
    (a, b)
}

/// The text with escapes decoded: `\uXXXX` (and surrogate pairs), `\u{X}`, `\xNN`, `\/` and other one-character
/// escapes (a run of backslashes counts as one, so doubly escaped JSON decodes too), `%NN`, and HTML character
/// references. Yields (lowercased character, start, end) in the original text.
struct Decoded<'a> {
    s: &'a str,
    pos: usize,
}

fn hex(s: &str, from: usize, len: usize) -> Option<u32> {
    let h = s.get(from..from + len)?;
    if h.bytes().all(|b| b.is_ascii_hexdigit()) { u32::from_str_radix(h, 16).ok() } else { None }
}

impl Decoded<'_> {
    /// After a run of backslashes at `p`: the character escaped and where the escape ends.
    fn escape(&self, p: usize) -> Option<(char, usize)> {
        let s = self.s;
        match s.as_bytes().get(p)? {
            b'u' if s.as_bytes().get(p + 1) == Some(&b'{') => {
                let close = p + 2 + s[p + 2..].bytes().take(7).position(|b| b == b'}')?;
                let v = hex(s, p + 2, close - p - 2)?;
                Some((char::from_u32(v).unwrap_or('\u{fffd}'), close + 1))
            }
            b'u' => {
                let v = hex(s, p + 1, 4)?;
                let end = p + 5;
                if (0xd800..0xdc00).contains(&v) {
                    // A surrogate pair: `\ud83d\ude00`.
                    let q = end + s[end..].bytes().take_while(|&b| b == b'\\').count();
                    if q > end && s.as_bytes().get(q) == Some(&b'u') {
                        if let Some(lo) = hex(s, q + 1, 4).filter(|lo| (0xdc00..0xe000).contains(lo)) {
                            let c = char::from_u32(0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00));
                            return Some((c.unwrap_or('\u{fffd}'), q + 5));
                        }
                    }
                }
                Some((char::from_u32(v).unwrap_or('\u{fffd}'), end))
            }
            b'x' => Some((char::from(hex(s, p + 1, 2)? as u8), p + 3)),
            &b => {
                let c = match b {
                    b'n' => '\n',
                    b't' => '\t',
                    b'r' => '\r',
                    // `\/`, `\"` and Markdown's `\|`, `\-`, `\*`…
                    b if b.is_ascii_punctuation() => char::from(b),
                    _ => return None,
                };
                Some((c, p + 1))
            }
        }
    }

    fn entity(&self, p: usize) -> Option<(char, usize)> {
        let s = self.s;
        let semi = p + s[p..].bytes().take(10).position(|b| b == b';')?;
        let name = &s[p + 1..semi];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let v = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    Some(h) => u32::from_str_radix(h, 16).ok()?,
                    None => name.strip_prefix('#')?.parse().ok()?,
                };
                char::from_u32(v)?
            }
        };
        Some((c, semi + 1))
    }
}

impl Iterator for Decoded<'_> {
    type Item = (char, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.pos;
        let c = self.s[start..].chars().next()?;
        let decoded = match c {
            '\\' => {
                let p = start + self.s[start..].bytes().take_while(|&b| b == b'\\').count();
                // An unknown escape: the run of backslashes reads as one.
                Some(self.escape(p).unwrap_or(('\\', p)))
            }
            '%' => hex(self.s, start + 1, 2).map(|v| (char::from(v as u8), start + 3)),
            '&' => self.entity(start),
            _ => None,
        };
        let (c, end) = decoded.unwrap_or((c, start + c.len_utf8()));
        self.pos = end;
        Some((c.to_ascii_lowercase(), start, end))
    }
}

/// Secrets are added in place under the write lock (a token captured per user must not copy the whole set
/// each time); readers hold the read lock while they scan.
static GLOBAL: LazyLock<RwLock<Redactor>> = LazyLock::new(|| RwLock::new(Redactor::default()));

fn global() -> std::sync::RwLockReadGuard<'static, Redactor> {
    GLOBAL.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Adds the run's secrets to the process-wide redactor; calling it again adds more.
pub fn install(secrets: Vec<String>) {
    if secrets.iter().all(|s| global().knows(s)) {
        return;
    }
    let mut g = GLOBAL.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    for s in &secrets {
        g.add(s);
    }
}

/// `s` with every installed secret masked; borrowed (and nearly free) when there is nothing to mask.
pub fn text(s: &str) -> Cow<'_, str> {
    global().text(s)
}

/// The secrets of a header: its value when the name says it carries credentials (authorization,
/// proxy-authorization, cookie, x-api-key, api-key, or any name containing key, token, secret or auth),
/// plus the credential after a `Bearer `/`Basic ` scheme, and the user:password inside a Basic one.
pub fn header_secrets(name: &str, value: &str) -> Vec<String> {
    if !is_sensitive_header(name) {
        return Vec::new();
    }
    let mut out = vec![value.to_string()];
    if let Some((scheme, cred)) = value.trim().split_once(' ') {
        let cred = cred.trim();
        out.push(cred.to_string());
        if scheme.eq_ignore_ascii_case("basic") {
            if let Some(plain) =
                base64::engine::general_purpose::STANDARD.decode(cred).ok().and_then(|b| String::from_utf8(b).ok())
            {
                out.extend(plain.split_once(':').map(|(_, p)| p.to_string()));
                out.push(plain);
            }
        }
    }
    out
}

/// A header value as debug output (`try`, `--http-debug`) shows it: a credential header's value masked whole but
/// for its scheme (`Bearer ***`), or said to be empty, which is what a forgotten key looks like; any other value
/// with the run's secrets masked and control characters escaped.
pub fn shown_header(name: &str, value: &str) -> String {
    if !is_sensitive_header(name) {
        return escape_line(&text(value)).into_owned();
    }
    let v = value.trim();
    // `Bearer ` with nothing after it arrives trimmed: a scheme alone is a forgotten credential.
    let lone = ["bearer", "basic", "token"].iter().any(|s| v.eq_ignore_ascii_case(s));
    match v.split_once(' ') {
        _ if v.is_empty() => "(empty)".to_string(),
        _ if lone => format!("{v} (empty)"),
        Some((scheme, _)) if scheme.chars().all(|c| c.is_ascii_alphabetic()) => format!("{scheme} {MASK}"),
        _ => MASK.to_string(),
    }
}

/// `text` for a JSON document (a report file, an NDJSON line): string values only, keys kept.
pub fn json(doc: &str) -> Cow<'_, str> {
    global().json(doc)
}

/// Whether a header's name says its value is a credential: a word of the name (split at `-` and `_`) is or ends
/// with one of the telltale words, or starts with `auth`. Whole words, so a gateway's routing headers
/// (`x-portkey-config`, `x-portkey-provider`) stay readable while `x-portkey-api-key` is masked.
fn is_sensitive_header(name: &str) -> bool {
    const WORDS: [&str; 6] = ["token", "secret", "cookie", "password", "session", "apikey"];
    name.split(['-', '_']).any(|part| {
        let p = part.to_ascii_lowercase();
        p == "key" || p.starts_with("auth") || WORDS.iter().any(|w| p.ends_with(w))
    })
}

/// A templated header once rendered, per request: cheap (no allocation, no write lock) once its value is known.
pub fn remember_header(name: &str, value: &str) {
    if is_sensitive_header(name) && !global().knows(value) {
        install(header_secrets(name, value));
    }
}

/// The password of a URL (`http://user:pass@host`) and the values of its credential-named query parameters
/// (`?api_key=…`, `&token=…`), percent-decoded as well as raw.
pub fn url_secrets(url: &str) -> Vec<String> {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else { return Vec::new() };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let pass = authority.rsplit_once('@').and_then(|(userinfo, _)| userinfo.split_once(':')).map(|(_, p)| p);
    let query = rest.split_once('?').map_or("", |(_, q)| q.split('#').next().unwrap_or(""));
    let params = query.split('&').filter_map(|kv| kv.split_once('=')).filter(|(k, _)| is_sensitive_header(k));
    let raw = pass.into_iter().chain(params.map(|(_, v)| v));
    raw.flat_map(|v| [v.to_string(), Decoded { s: v, pos: 0 }.map(|(c, _, _)| c).collect()]).collect()
}

/// Whether a character must not reach a terminal or a file raw: C0 controls (but `\n` and `\t`), DEL, C1
/// controls (8-bit CSI and friends) and the bidirectional overrides that reorder what a reader sees.
fn is_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with each character `is_control` names written by `write` instead; borrowed when there is none.
fn replace_controls(s: &str, write: impl Fn(&mut String, u32)) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_control(c) {
            write(&mut out, c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Control characters as visible text (`\x1b`, `\u{9b}`), so an escape sequence from a server prints as
/// characters instead of moving the cursor or recoloring the terminal; `\n` and `\t` stay.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    use std::fmt::Write;
    replace_controls(s, |out, c| {
        let _ = if c < 0x80 { write!(out, "\\x{c:02x}") } else { write!(out, "\\u{{{c:x}}}") };
    })
}

/// For JSON text (serde leaves DEL, C1 and bidi controls raw inside strings): those as `\uXXXX` escapes, so
/// the text stays the same JSON and `escape_control` finds nothing left to change in it.
pub fn escape_json_controls(json: &str) -> Cow<'_, str> {
    use std::fmt::Write;
    replace_controls(json, |out, c| {
        let _ = write!(out, "\\u{c:04x}");
    })
}

/// `escape_control` for one-line fields: `\n`, `\r` and `\t` are escaped too.
pub fn escape_line(s: &str) -> Cow<'_, str> {
    match escape_control(s) {
        Cow::Borrowed(b) if !b.contains(['\n', '\t']) => Cow::Borrowed(s),
        c => Cow::Owned(c.replace('\n', "\\n").replace('\t', "\\t")),
    }
}

/// Text for a person or a file: secrets masked, then controls escaped; borrowed when neither changed anything.
pub fn printable(s: &str) -> Cow<'_, str> {
    match text(s) {
        Cow::Borrowed(t) => escape_control(t),
        Cow::Owned(t) => Cow::Owned(escape_control(&t).into_owned()),
    }
}

/// For server text recorded as data (error messages, labels): secrets masked, controls escaped.
pub fn server_text(s: &str) -> String {
    printable(s).into_owned()
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
