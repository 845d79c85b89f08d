//! Faults in what a well-formed response carries: event streams broken in every way, bodies too big to hold,
//! echoed secrets, labels that never repeat and escape sequences meant for the terminal.

use super::server::{Hostile, Mode};
use super::*;

fn sse(mode: Mode, code: i32, kinds: &[&str]) -> Outcome {
    let server = Hostile::start(mode);
    // Only the modes that never finish a line or a stream need the short timeout to end their requests.
    let run = if matches!(mode, Mode::EndlessSse | Mode::HugeSseLine) { run_against } else { run_patient };
    let o = run(SSE, &server.url(), &["--quiet"]);
    expect(&o, code, kinds, SANE_RSS_KIB);
    o
}

/// A valid stream in an unusual shape must measure exactly like a plain one.
fn sse_ok(mode: Mode) {
    let o = sse(mode, 0, &[]);
    let r = o.report();
    assert!(u(&r["totals"]["llm"]["streamed"]) > 0, "{}", r["totals"]["llm"]);
    assert_eq!(
        u(&r["totals"]["llm"]["output_tokens"]),
        2 * u(&r["totals"]["llm"]["streamed"]),
        "{}",
        r["totals"]["llm"]
    );
}

#[test]
fn sse_lf_line_ends() {
    sse_ok(Mode::SseLineEnd("\n"));
}

#[test]
fn sse_crlf_line_ends() {
    sse_ok(Mode::SseLineEnd("\r\n"));
}

#[test]
fn sse_cr_line_ends() {
    sse_ok(Mode::SseLineEnd("\r"));
}

#[test]
fn sse_event_split_across_odd_writes() {
    sse_ok(Mode::SseOddSplits);
}

/// Data after `[DONE]` is ignored: the stream is over once the server said so (the second `[DONE]` and the token
/// after it are not counted).
#[test]
fn sse_done_twice_then_data() {
    sse_ok(Mode::SseDoneTwice);
}

#[test]
fn sse_without_data_prefix() {
    sse(Mode::SseNoDataPrefix, 3, &["stream"]);
}

#[test]
fn sse_invalid_json_chunk() {
    sse(Mode::SseInvalidJson, 3, &["stream"]);
}

#[test]
fn sse_missing_done() {
    sse(Mode::SseMissingDone, 3, &["stream"]);
}

/// One line of 16 MiB: refused by the line limit (or `max_body`), a `stream` failure, not 16 MiB per user held.
/// `timeout` (and `interrupted` at the stop) are allowed besides: on a busy machine the server may not get the
/// bytes out within the 1 s timeout.
#[test]
fn sse_sixteen_mib_line() {
    let o = sse(Mode::HugeSseLine, 3, &["stream", "timeout", "interrupted"]);
    assert!(o.kinds().contains_key("stream"), "the oversized line is a stream failure: {}", o.context());
}

/// A stream that never ends is cut by the request timeout (or, sent just before the end, by the stop); the run
/// still ends on time.
#[test]
fn sse_endless_stream() {
    let o = sse(Mode::EndlessSse, 3, &["timeout", "interrupted"]);
    assert!(o.kinds().contains_key("timeout"), "{}", o.context());
}

/// 1 GiB announced and sent to a non-streamed completion (a body the client parses): read only up to
/// `max_body`, a `body` failure, and 4 users stay under 64 MiB.
#[test]
fn gigabyte_body() {
    let server = Hostile::start(Mode::GigabyteBody);
    let o = run_patient(CHAT, &server.url(), &["--quiet"]);
    let k = expect(&o, 3, &["body"], TIGHT_RSS_KIB);
    let r = o.report();
    let msg = r["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("max_body"), "the message names the limit: {msg} ({k:?})");
}

/// The same body behind a JSON path check, which also needs the body.
#[test]
fn gigabyte_body_under_a_json_check() {
    let server = Hostile::start(Mode::GigabyteBody);
    let scenario = format!("{HTTP}expect = {{ json_path = [\"$.pad\"] }}\n");
    let o = run_patient(&scenario, &server.url(), &["--quiet"]);
    expect(&o, 3, &["body"], TIGHT_RSS_KIB);
}

/// A 1 GiB error body: the excerpt reads what it keeps, not the gigabyte.
#[test]
fn gigabyte_error_body() {
    let server = Hostile::start(Mode::GigabyteErrorBody);
    let o = run_patient(HTTP, &server.url(), &["--quiet"]);
    expect(&o, 3, &["status:500"], TIGHT_RSS_KIB);
}

/// A new served model per response: labels stop at 64 distinct values (then `other`), memory stays flat and the
/// run ends on time.
#[test]
fn new_model_name_per_response() {
    let server = Hostile::start(Mode::NewModelEachResponse);
    let o = run_patient(CHAT, &server.url(), &["--quiet"]);
    expect(&o, 0, &[], TIGHT_RSS_KIB);
    let r = o.report();
    let models = r["totals"]["llm"]["models"].as_array().expect("served models");
    let names: Vec<&str> = models.iter().map(|m| m["model"].as_str().unwrap()).collect();
    assert!(u(&r["totals"]["requests"]) > 64, "enough responses to pass the cap");
    assert!(names.len() <= 65, "{} labels", names.len());
    assert!(names.contains(&"other"), "labels beyond the cap are `other`: {:?}", &names[..names.len().min(5)]);
    assert!(names.iter().all(|n| n.len() <= 256), "served-model names have a sane length");
}

/// The server echoes the bearer token everywhere it can: as the served model, upper-cased, JSON-escaped and cut
/// at the excerpt limit. No 8-character piece of it reaches any output file, stdout or stderr, in any case or
/// JSON-escaped.
#[test]
fn echoed_secrets_never_leave() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let canary = format!("Kq{:020x}Zw{:06x}", nanos & ((1 << 80) - 1), std::process::id() & 0xff_ffff);
    let server = Hostile::start(Mode::EchoSecrets);
    let scenario =
        format!("[defaults]\nheaders = {{ authorization = \"Bearer ${{env:RLT_HOSTILE_CANARY}}\" }}\n{CHAT}");
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.json");
    let extra = ["--format", "json,csv,md,junit", "--save-baseline", baseline.to_str().unwrap()];
    let o = run_with_env(&scenario, &server.url(), &extra, &[("RLT_HOSTILE_CANARY", &canary)]);
    expect(&o, 0, &["status:500"], SANE_RSS_KIB);
    let mut outputs: Vec<(String, String)> =
        vec![("stdout".into(), o.stdout.clone()), ("stderr".into(), o.stderr.clone())];
    for f in files(&o.out).into_iter().chain([baseline]) {
        let body = std::fs::read(&f).unwrap_or_default();
        outputs.push((f.display().to_string(), text(&body)));
    }
    assert!(outputs.len() > 4, "report files written: {outputs:?}");
    let c: Vec<char> = canary.to_lowercase().chars().collect();
    for w in c.windows(8) {
        let plain: String = w.iter().collect();
        let escaped: String = w.iter().map(|ch| format!("\\u{:04x}", *ch as u32)).collect();
        for (name, body) in &outputs {
            let body = body.to_lowercase();
            assert!(!body.contains(&plain), "`{plain}` of the canary in {name}");
            assert!(!body.contains(&escaped), "JSON-escaped `{plain}` of the canary in {name}");
        }
    }
}

/// Escape sequences in error bodies and served-model names never reach the terminal or a report file raw.
#[test]
fn ansi_escapes_are_escaped() {
    let server = Hostile::start(Mode::Ansi);
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("summary.md");
    let junit = dir.path().join("junit.xml");
    let extra =
        ["--format", "json,csv,md,junit", "--summary-md", md.to_str().unwrap(), "--junit", junit.to_str().unwrap()];
    let o = run_patient(CHAT, &server.url(), &extra);
    let k = expect(&o, 0, &["status:500"], SANE_RSS_KIB);
    assert!(k["status:500"] > 0);
    let mut outputs =
        vec![("stdout".to_string(), o.stdout.as_bytes().to_vec()), ("stderr".into(), o.stderr.as_bytes().to_vec())];
    for f in files(&o.out).into_iter().chain([md, junit]) {
        outputs.push((f.display().to_string(), std::fs::read(&f).unwrap_or_default()));
    }
    assert!(outputs.iter().any(|(n, _)| n.ends_with("failures.csv")), "failures.csv written");
    for (name, body) in &outputs {
        assert!(!body.contains(&0x1b), "a raw ESC in {name}");
        assert!(!body.contains(&0x07), "a raw BEL in {name}");
    }
}
