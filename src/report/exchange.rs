//! How a captured exchange reads, for `try` (printed) and `run --http-debug` (`http-debug.log`): the request
//! line, headers and body, the response status, headers and body, a stream's summary, the variables captured,
//! each check, and the outcome. Bounded whatever the server sent (bodies as captured, at most `MAX_HEADERS`
//! headers of at most `MAX_HEADER_CHARS` each), with secrets masked: credential headers keep only their scheme
//! (`Bearer ***`), every other text goes through the run's redactor.

use std::fmt::Write;
use std::time::Duration;

use super::format::fmt_ms;
use crate::engine::{Captured, ClassTrial};
use crate::redact;

/// Headers shown per message; a server may send hundreds.
const MAX_HEADERS: usize = 40;
/// Characters shown of a header value or a captured value.
const MAX_HEADER_CHARS: usize = 200;
/// The file `run --http-debug` writes in the report folder.
pub const HTTP_DEBUG_LOG: &str = "http-debug.log";

/// One exchange, several lines; `origin` (`http://host:port`) is put before the request's path.
pub fn render_exchange(c: &Captured, origin: &str) -> String {
    let mut out = String::new();
    let retry = if c.attempt > 1 { format!(" (retry {})", c.attempt - 1) } else { String::new() };
    let _ = writeln!(out, "── {} › {}{retry}", line(&c.user), line(&c.step));
    if c.method.is_empty() {
        // The request could not be built (a template failed): the failure below says why.
        let _ = writeln!(out, "> (no request sent)");
    } else {
        let _ = writeln!(out, "> {} {origin}{}", c.method, line(&c.uri));
    }
    for (name, value) in &c.request_headers {
        let _ = writeln!(out, "> {name}: {}", clip(&redact::shown_header(name, value)));
    }
    body(&mut out, ">", &c.request_body, c.request_len as u64);
    if c.response.responded {
        response(&mut out, c);
    } else if c.failure.is_some() {
        let _ = writeln!(out, "< (no response)");
    }
    if let Some(s) = &c.stream {
        let (tokens, source) = s.output_tokens();
        let source = match source {
            crate::llm::sse::TokenSource::Usage => "usage",
            crate::llm::sse::TokenSource::Chunks => "counted chunks",
        };
        let ttft = s.ttft.map_or("no token".to_string(), ms);
        let model = if s.model.is_empty() { "not named".to_string() } else { line(&s.model) };
        let done = if s.done { "[DONE] received" } else { "no [DONE]" };
        let _ = write!(
            out,
            "  stream: {} content chunks, {tokens} output tokens ({source}), TTFT {ttft}, model {model}, {done}",
            s.token_chunks
        );
        if let Some(u) = &s.usage {
            let _ = write!(out, ", usage {} in / {} out", u.prompt_tokens, u.completion_tokens);
        }
        if let Some(f) = s.finish_reason {
            let _ = write!(out, ", finish {}", f.as_str());
        }
        out.push('\n');
    }
    for (name, value) in &c.captures {
        let _ = writeln!(out, "  captured {name} = {}", clip(&line(value)));
    }
    for check in &c.checks {
        match (&check.why, check.passed) {
            (_, true) => {
                let _ = writeln!(out, "  check ok:     {}", line(&check.what));
            }
            (why, false) => {
                let why = why.as_deref().map(|w| format!(" ({})", line(w))).unwrap_or_default();
                let _ = writeln!(out, "  check FAILED: {}{why}", line(&check.what));
            }
        }
    }
    match &c.failure {
        None => out.push_str("  = passed\n"),
        Some((kind, message)) => {
            let _ = writeln!(out, "  = FAILED ({kind}): {}", line(message));
        }
    }
    out
}

fn response(out: &mut String, c: &Captured) {
    let status = c.status.map_or("?".to_string(), |s| {
        let reason = http::StatusCode::from_u16(s).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        format!("{s} {reason}").trim_end().to_string()
    });
    let timing = match (c.ttfb, c.latency) {
        (Some(t), Some(l)) => format!(" · headers after {} · complete after {}", ms(t), ms(l)),
        _ => String::new(),
    };
    let _ = writeln!(out, "< {status}{timing}");
    let headers = &c.response.headers;
    for (name, value) in headers.iter().take(MAX_HEADERS) {
        let value = String::from_utf8_lossy(value.as_bytes());
        let _ = writeln!(out, "< {name}: {}", clip(&redact::shown_header(name.as_str(), &value)));
    }
    if headers.len() > MAX_HEADERS {
        let _ = writeln!(out, "< … {} more headers", headers.len() - MAX_HEADERS);
    }
    let total = if c.status.is_some() { c.response_len } else { c.response.body.len() as u64 };
    body(out, "<", &c.response.body, total);
}

/// A body as captured (its first bytes), each line marked; `total` is its whole length.
fn body(out: &mut String, mark: &str, shown: &[u8], total: u64) {
    if total == 0 && shown.is_empty() {
        return;
    }
    let _ = writeln!(out, "{mark}");
    if shown.contains(&0) {
        let _ = writeln!(out, "{mark} ({total} bytes of binary data)");
        return;
    }
    let text = String::from_utf8_lossy(shown);
    let text = redact::printable(&text);
    for l in text.trim_end_matches(['\n', '\r']).lines() {
        let l = l.trim_end_matches('\r');
        let _ = if l.is_empty() { writeln!(out, "{mark}") } else { writeln!(out, "{mark} {l}") };
    }
    let more = total.saturating_sub(shown.len() as u64);
    if more > 0 {
        let _ = writeln!(out, "{mark} … {more} more bytes ({total} in all)");
    }
}

/// `try`'s last lines: what ran and how it went, and the exit code's meaning.
pub fn render_try_summary(classes: &[ClassTrial], exchanges: &[Captured]) -> String {
    let failed = exchanges.iter().filter(|c| c.failure.is_some()).count();
    let mut out = String::new();
    for c in classes.iter().filter(|c| !c.started) {
        let _ = writeln!(out, "user class {}: on_start failed, so its iteration did not run", line(&c.name));
    }
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let _ = writeln!(
        out,
        "try: {}, {}: {} passed, {failed} failed",
        plural(classes.len(), "user class", "user classes"),
        plural(exchanges.len(), "exchange", "exchanges"),
        exchanges.len() - failed
    );
    out
}

/// `http-debug.log`: the captured exchanges grouped by step, in the order each step's were recorded.
pub fn render_http_debug(mut exchanges: Vec<Captured>, origin: &str, per_step: u32) -> String {
    exchanges.sort_by_key(|c| (c.step_id, c.seq));
    let mut out = format!(
        "# run-load-test --http-debug: the first {per_step} exchanges of every step, secrets masked ({} in all)\n\n",
        exchanges.len()
    );
    for c in &exchanges {
        out.push_str(&render_exchange(c, origin));
        out.push('\n');
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{} ms", fmt_ms(d.as_secs_f64() * 1000.0))
}

/// Server text on one line, secrets masked and controls escaped.
fn line(s: &str) -> String {
    redact::escape_line(&redact::text(s)).into_owned()
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_HEADER_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::CheckLine;
    use crate::metrics::ErrorKind;

    fn captured() -> Captured {
        let mut c = Captured {
            user: "U".into(),
            step: "chat".into(),
            attempt: 1,
            method: "POST".into(),
            uri: "/v1/chat/completions".into(),
            request_headers: vec![
                ("authorization".into(), "Bearer sk-live-abcdefgh12345678".into()),
                ("x-api-key".into(), "".into()),
                ("content-type".into(), "application/json".into()),
            ],
            request_body: br#"{"model":"m"}"#.to_vec(),
            request_len: 13,
            status: Some(400),
            ttfb: Some(Duration::from_millis(3)),
            latency: Some(Duration::from_millis(4)),
            response_len: 5000,
            checks: vec![
                CheckLine { what: "status 200".into(), passed: false, why: Some("got 400".into()) },
                CheckLine { what: "body contains `ok`".into(), passed: true, why: None },
            ],
            captures: vec![("token".into(), "x".repeat(500))],
            failure: Some((ErrorKind::Status(400), "unexpected status 400: bad model".into())),
            ..Default::default()
        };
        c.response.responded = true;
        c.response.headers.insert("content-type", "application/json".parse().unwrap());
        c.response.headers.insert("x-evil", "a\u{1b}[31mb".parse().unwrap_or(http::HeaderValue::from_static("x")));
        c.response.body = b"{\"error\":\"bad model\"}\n\x1b[2J".to_vec();
        c
    }

    #[test]
    fn an_exchange_shows_both_sides_with_credentials_masked() {
        let text = render_exchange(&captured(), "http://127.0.0.1:9");
        assert!(text.contains("> POST http://127.0.0.1:9/v1/chat/completions"), "{text}");
        assert!(text.contains("> authorization: Bearer ***"), "{text}");
        assert!(!text.contains("abcdefgh12345678"), "{text}");
        assert!(text.contains("> x-api-key: (empty)"), "a forgotten key shows as empty: {text}");
        assert!(text.contains("> {\"model\":\"m\"}"), "{text}");
        assert!(text.contains("< 400 Bad Request · headers after 3.00 ms"), "{text}");
        assert!(text.contains("< {\"error\":\"bad model\"}"), "{text}");
        assert!(text.contains("… 4974 more bytes (5000 in all)"), "{text}");
        assert!(!text.contains('\u{1b}'), "server escapes are shown as text: {text}");
        assert!(text.contains("  check FAILED: status 200 (got 400)"), "{text}");
        assert!(text.contains("  check ok:     body contains `ok`"), "{text}");
        assert!(text.contains(&format!("  captured token = {}…", "x".repeat(200))), "{text}");
        assert!(text.contains("  = FAILED (status:400): unexpected status 400: bad model"), "{text}");
    }

    #[test]
    fn a_request_without_an_answer_says_so() {
        let c = Captured {
            method: "GET".into(),
            uri: "/".into(),
            failure: Some((ErrorKind::Connect, "connect: refused".into())),
            ..Default::default()
        };
        let text = render_exchange(&c, "http://h");
        assert!(text.contains("> GET http://h/\n< (no response)"), "{text}");
        let unbuilt =
            Captured { failure: Some((ErrorKind::Check, "template: undefined".into())), ..Default::default() };
        assert!(render_exchange(&unbuilt, "http://h").contains("> (no request sent)\n< (no response)"));
        assert!(text.contains("= FAILED (connect): connect: refused"), "{text}");
    }

    #[test]
    fn the_debug_log_groups_exchanges_by_step() {
        let mk =
            |step_id: usize, seq: u64| Captured { step: format!("s{step_id}"), step_id, seq, ..Default::default() };
        let text = render_http_debug(vec![mk(1, 0), mk(0, 2), mk(0, 1)], "http://h", 3);
        let order: Vec<usize> = ["› s0\n", "› s1\n"].iter().map(|s| text.find(s).unwrap()).collect();
        assert!(order[0] < order[1], "{text}");
        assert_eq!(text.matches("── ").count(), 3);
    }
}
