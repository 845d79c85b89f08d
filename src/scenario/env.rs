//! `${env:NAME}` and `${env:NAME:-fallback}` references. Values are read when the run is planned and live only
//! in memory; reports keep the unexpanded text, and `secret_values` lets error samples be redacted.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable `{name}` is not set")]
pub struct EnvError {
    pub name: String,
}

/// One `${env:...}` occurrence: byte range in the text, variable name, optional fallback.
struct EnvRef<'a> {
    start: usize,
    end: usize,
    name: &'a str,
    fallback: Option<&'a str>,
}

fn refs(s: &str) -> impl Iterator<Item = EnvRef<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let start = pos + s.get(pos..)?.find("${env:")?;
        let body_start = start + "${env:".len();
        let close = body_start + s[body_start..].find('}')?;
        pos = close + 1;
        let body = &s[body_start..close];
        let (name, fallback) = match body.split_once(":-") {
            Some((n, f)) => (n, Some(f)),
            None => (body, None),
        };
        Some(EnvRef { start, end: close + 1, name: name.trim(), fallback })
    })
}

/// Expands every reference, failing on the first unset variable that has no fallback.
pub fn expand_env(s: &str) -> Result<Cow<'_, str>, EnvError> {
    expand_with(s, |name| std::env::var(name).ok())
}

fn expand_with(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Cow<'_, str>, EnvError> {
    if !s.contains("${env:") {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for r in refs(s) {
        out.push_str(&s[last..r.start]);
        match (lookup(r.name), r.fallback) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(f)) => out.push_str(f),
            (None, None) => return Err(EnvError { name: r.name.to_string() }),
        }
        last = r.end;
    }
    out.push_str(&s[last..]);
    Ok(Cow::Owned(out))
}

/// The values of every variable referenced in `texts` that is set and non-trivial: what must never appear in
/// any output.
pub fn secret_values<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> =
        texts.into_iter().flat_map(refs).filter_map(|r| std::env::var(r.name).ok()).filter(|v| v.len() >= 4).collect();
    out.sort();
    out.dedup();
    out
}

/// Every variable name `s` references, once each in order of first use, with whether every reference to it
/// has a fallback: what a renderer must wire from a secret store without ever reading a value.
pub fn referenced_names(s: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for r in refs(s).filter(|r| !r.name.is_empty()) {
        match out.iter_mut().find(|(n, _)| n == r.name) {
            Some((_, optional)) => *optional &= r.fallback.is_some(),
            None => out.push((r.name.to_string(), r.fallback.is_some())),
        }
    }
    out
}

/// Names referenced in `s`, for load-time checks.
pub(crate) fn missing_vars(s: &str) -> Vec<String> {
    refs(s).filter(|r| r.fallback.is_none() && std::env::var(r.name).is_err()).map(|r| r.name.to_string()).collect()
}

/// `s` with every unset `${env:NAME}` that has no fallback replaced by `stand_in`.
pub(crate) fn with_stand_in(s: &str, stand_in: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for r in refs(s).filter(|r| r.fallback.is_none() && std::env::var(r.name).is_err()) {
        out.push_str(&s[last..r.start]);
        out.push_str(stand_in);
        last = r.end;
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "KEY").then(|| "s3cret".to_string())
    }

    #[test]
    fn expands_set_and_fallback() {
        assert_eq!(expand_with("Bearer ${env:KEY}", lookup).unwrap(), "Bearer s3cret");
        assert_eq!(expand_with("${env:NOPE:-dflt}/x", lookup).unwrap(), "dflt/x");
        assert_eq!(expand_with("plain", lookup).unwrap(), "plain");
        assert_eq!(expand_with("${env:NOPE}", lookup).unwrap_err().name, "NOPE");
    }

    #[test]
    fn referenced_names_are_listed_once_and_optional_only_when_every_use_has_a_fallback() {
        let text = "${env:A} ${env:B:-x} ${env:A:-y} ${env:C:-z} ${env:C:-w} ${env:} ${env:D";
        let names = referenced_names(text);
        assert_eq!(names, [("A".to_string(), false), ("B".to_string(), true), ("C".to_string(), true)]);
    }

    #[test]
    fn unterminated_reference_is_left_alone() {
        assert_eq!(expand_with("a ${env:KEY", lookup).unwrap(), "a ${env:KEY");
    }
}
