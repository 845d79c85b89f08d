//! Faults of the connection and of HTTP itself: refused, closed or reset at each phase, stalled, dripped, invalid.
//! Every run here measures nothing valid, so each exits 3 with the kind the contract gives the fault.

use std::sync::atomic::Ordering;

use super::server::{Hostile, Mode, closed_port};
use super::*;

/// Runs the plain GET scenario against `mode` and checks the shared contract.
fn against(mode: Mode, code: i32, kinds: &[&str]) -> BTreeMap<String, u64> {
    let server = Hostile::start(mode);
    // The hung modes need the short timeout to end their requests; every other one is answered at once.
    let run =
        if matches!(mode, Mode::StallHeaders | Mode::StallBody | Mode::Slowloris) { run_against } else { run_patient };
    let o = run(HTTP, &server.url(), &["--quiet"]);
    expect(&o, code, kinds, SANE_RSS_KIB)
}

#[test]
fn refused() {
    let o = run_patient(HTTP, &format!("http://127.0.0.1:{}", closed_port()), &["--quiet"]);
    expect(&o, 3, &["connect"], SANE_RSS_KIB);
}

#[test]
fn closed_right_after_accept() {
    against(Mode::CloseOnAccept, 3, &["connect"]);
}

#[test]
fn closed_after_reading_the_request() {
    against(Mode::CloseAfterRequest, 3, &["connect"]);
}

#[test]
fn closed_mid_status_line() {
    against(Mode::CloseMidStatus, 3, &["connect"]);
}

#[test]
fn closed_mid_headers() {
    against(Mode::CloseMidHeaders, 3, &["connect"]);
}

#[test]
fn closed_mid_body() {
    against(Mode::CloseMidBody, 3, &["body"]);
}

#[test]
fn reset_after_accept() {
    against(Mode::ResetOnAccept, 3, &["connect"]);
}

#[test]
fn reset_mid_body() {
    against(Mode::ResetMidBody, 3, &["body"]);
}

/// A hung target is counted as timeouts, never "0 failures". `interrupted` is allowed besides: a request sent
/// just before the end may still be waiting for its timeout when the graceful stop (as long as the timeout) ends.
const HUNG: &[&str] = &["timeout", "interrupted"];

#[test]
fn stall_before_headers() {
    let k = against(Mode::StallHeaders, 3, HUNG);
    assert!(k.get("timeout").copied().unwrap_or(0) >= 4, "each of the 4 users timed out at least once: {k:?}");
}

#[test]
fn stall_mid_body() {
    let k = against(Mode::StallBody, 3, HUNG);
    assert!(k.contains_key("timeout"), "{k:?}");
}

#[test]
fn slowloris_drip() {
    let k = against(Mode::Slowloris, 3, HUNG);
    assert!(k.contains_key("timeout"), "{k:?}");
}

#[test]
fn five_hundred_storm() {
    let k = against(Mode::Storm5xx, 3, &["status:500", "status:502", "status:503"]);
    assert_eq!(k.len(), 3, "all three statuses are counted apart: {k:?}");
}

#[test]
fn unauthorized_everywhere() {
    against(Mode::Unauthorized, 3, &["status:401"]);
}

#[test]
fn unknown_model() {
    let server = Hostile::start(Mode::UnknownModel);
    let o = run_patient(CHAT, &server.url(), &["--quiet"]);
    expect(&o, 3, &["status:400"], SANE_RSS_KIB);
    let r = o.report();
    assert!(
        r["errors"][0]["message"].as_str().unwrap().contains("does not exist"),
        "the body is kept: {}",
        r["errors"]
    );
}

#[test]
fn garbage_status_line() {
    against(Mode::GarbageStatus, 3, &["protocol"]);
}

#[test]
fn invalid_header_line() {
    against(Mode::InvalidHeader, 3, &["protocol"]);
}

#[test]
fn bad_chunk_size() {
    against(Mode::BadChunkSize, 3, &["protocol"]);
}

#[test]
fn huge_header_section() {
    against(Mode::HugeHeaders, 3, &["protocol"]);
}

#[test]
fn absurd_content_length() {
    against(Mode::AbsurdContentLength, 3, &["protocol"]);
}

/// A 3xx is not followed, so a loop cannot trap a user; under the default expectation (a 2xx) it is a failure.
#[test]
fn redirect_loop_is_not_followed() {
    let server = Hostile::start(Mode::RedirectLoop);
    let o = run_patient(HTTP, &server.url(), &["--quiet"]);
    // Without `expect.status` only a 2xx succeeds: a redirect is not the resource asked for, and a loop of them
    // must not pass as a fast success.
    expect(&o, 3, &["status:302"], SANE_RSS_KIB);
    assert!(server.stats.requests.load(Ordering::SeqCst) > 0);
    assert_eq!(server.stats.followed.load(Ordering::SeqCst), 0, "the redirect was followed");
}

/// A step that means to test the redirect lists it: then the 302 is a success, and still never followed.
#[test]
fn redirect_loop_against_an_expectation() {
    let server = Hostile::start(Mode::RedirectLoop);
    let o = run_patient(&format!("{HTTP}expect = {{ status = [302] }}\n"), &server.url(), &["--quiet"]);
    expect(&o, 0, &[], SANE_RSS_KIB);
    assert_eq!(server.stats.followed.load(Ordering::SeqCst), 0, "the redirect was followed");
}

/// A gzip body the client never asked for is just bytes: not decoded (no bomb can grow), not an error.
#[test]
fn gzip_body_without_checks() {
    against(Mode::Gzip, 0, &[]);
}

/// Absurd, negative, date and garbage retry advice: never a panic, never a wait beyond `max_wait` (the wall time
/// proves it), each 429 counted as `rate_limited`.
fn retry_advice(mode: Mode) {
    let scenario = format!("{HTTP}retry = {{ max = 2, max_wait = \"200ms\", backoff = \"50ms\" }}\n");
    let server = Hostile::start(mode);
    let o = run_against(&scenario, &server.url(), &["--quiet"]);
    let k = expect(&o, 3, &["rate_limited"], SANE_RSS_KIB);
    assert!(k["rate_limited"] >= 4, "{k:?}");
}

#[test]
fn retry_after_beyond_u64() {
    retry_advice(Mode::RetryAfter("18446744073709551616"));
}

#[test]
fn retry_after_ms_1e300() {
    retry_advice(Mode::RetryAfterMs("1e300"));
}

#[test]
fn retry_after_negative() {
    retry_advice(Mode::RetryAfter("-5"));
}

#[test]
fn retry_after_ms_negative() {
    retry_advice(Mode::RetryAfterMs("-1e300"));
}

#[test]
fn retry_after_http_date() {
    retry_advice(Mode::RetryAfter("Fri, 31 Dec 9999 23:59:59 GMT"));
}

#[test]
fn retry_after_garbage() {
    retry_advice(Mode::RetryAfter("soon, maybe"));
}
