use proptest::prelude::*;

use super::*;

const SECRET: &str = "sk-Canary0123456789abcdef";

fn r() -> Redactor {
    Redactor::new([SECRET.to_string()])
}

/// Every 8-character window of `secret`, lowercased.
fn grams(secret: &str) -> Vec<String> {
    let c: Vec<char> = secret.chars().map(|c| c.to_ascii_lowercase()).collect();
    c.windows(8).map(|w| w.iter().collect()).collect()
}

fn leaks(out: &str, secret: &str) -> Option<String> {
    let low = out.to_ascii_lowercase();
    grams(secret).into_iter().find(|g| low.contains(g.as_str()))
}

fn json_escaped(s: &str) -> String {
    s.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
}

#[test]
fn exact_case_changed_and_truncated_forms_are_masked() {
    let r = r();
    assert_eq!(r.text(&format!("key {SECRET} used")), "key *** used");
    assert_eq!(r.text(&format!("KEY {} USED", SECRET.to_uppercase())), "KEY *** USED");
    assert_eq!(r.text("invalid key: sk-Canary0…"), "invalid key: ***…");
    assert_eq!(r.text("…23456789ab."), "…***.");
    // Seven characters of a long secret are not enough to say it is one.
    assert_eq!(r.text("sk-Cana"), "sk-Cana");
}

#[test]
fn nothing_to_mask_borrows() {
    let r = r();
    assert!(matches!(r.text("a plain message about canaries"), Cow::Borrowed(_)));
    assert!(matches!(Redactor::default().text(SECRET), Cow::Borrowed(_)));
    assert!(matches!(escape_control("plain\nmulti-line\ttext"), Cow::Borrowed(_)));
}

#[test]
fn escaped_forms_are_masked_and_json_stays_valid() {
    let r = r();
    let cases = [
        json_escaped(SECRET),
        SECRET.replace('-', "\\/"),
        SECRET.replace('-', "\\-"),
        // Mixed: some characters escaped, some plain, some \x-escaped, then cut.
        format!("sk\\u002d\\u0043anary\\x30123{}", "4567"),
        "\\\\u0073\\\\u006b-canary0123".to_string(),
        SECRET.replace("Canary", "%43%61nary"),
        SECRET.replace("Canary", "&#67;&#x61;nary"),
        format!("{}\\ud83d\\ude00", &SECRET[..12]),
    ];
    for form in cases {
        let doc = format!("{{\"error\":\"bad key {form} (x)\",\"n\":1}}");
        let out = r.text(&doc);
        assert!(out.contains("***"), "{form} not masked: {out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(leaks(msg, SECRET).is_none(), "{form} leaked in {msg}");
        assert!(msg.starts_with("bad key ") && msg.ends_with(" (x)"), "{msg}");
    }
}

#[test]
fn json_documents_keep_their_keys() {
    let r = Redactor::new(["user".to_string(), SECRET.to_string()]);
    let doc = format!(
        "{{\"user\": \"USER\", \"users\" : [\"a user\", 3], \"e\": \"k=\\u0073k-canary0123\\\"\", \"x\": \"{SECRET}\"}}"
    );
    let out = r.json(&doc);
    assert_eq!(out, "{\"user\": \"***\", \"users\" : [\"a ***\", 3], \"e\": \"k=***\\\"\", \"x\": \"***\"}");
    serde_json::from_str::<serde_json::Value>(&out).unwrap();
    for broken in ["\"", "\"abc", "\"a\\", "{\"user\":", "\"user\"   ", "\"é\\é user\""] {
        let _ = r.json(broken);
    }
    assert!(matches!(r.json("{\"n\": 1}"), Cow::Borrowed(_)));
}

#[test]
fn base64_forms_are_masked() {
    let r = Redactor::new(["user:canarypass".to_string()]);
    for pad in ["", "a", "ab"] {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{pad}user:canarypass!"));
        let out = r.text(&enc);
        assert!(out.contains("***"), "{enc} -> {out}");
    }
}

#[test]
fn overlapping_and_adjacent_secrets_merge_into_one_mask() {
    let r = Redactor::new(["abcdefghijkl".to_string(), "ijklmnopqrst".to_string(), "wxyz".to_string()]);
    assert_eq!(r.text("<abcdefghijklmnopqrst>"), "<***>");
    assert_eq!(r.text("[WXYZ] wxyzwxyz"), "[***] ***");
    assert_eq!(r.text("wxy z"), "wxy z");
}

#[test]
fn values_that_cannot_be_credentials_are_ignored() {
    let r = Redactor::new(["1000".into(), "30s".into(), "2.5".into(), "true".into(), "abc".into(), "1m30s".into()]);
    assert!(r.is_empty());
    assert_eq!(r.text("1000 requests in 1m30s"), "1000 requests in 1m30s");
}

#[test]
fn utf8_never_splits_and_never_panics() {
    let r = Redactor::new(["ключ-секрет-42".to_string(), "日本語の秘密".to_string()]);
    assert_eq!(r.text("x ключ-секрет-42 y"), "x *** y");
    assert_eq!(r.text("日本語の秘密"), "***");
    for s in ["\\", "\\u", "\\ud83d", "%", "%e", "&#", "&#x;", "&#99999999;", "\\u{}", "\\u{110000}", "é\\", "\\\\\\"]
    {
        let _ = r.text(s);
        let _ = r.text(&format!("{s}ключ-секрет"));
    }
}

#[test]
fn header_and_url_secrets() {
    assert_eq!(header_secrets("content-type", "application/json"), Vec::<String>::new());
    assert_eq!(header_secrets("Authorization", "Bearer sk-1"), ["Bearer sk-1", "sk-1"]);
    assert_eq!(header_secrets("x-api-key", "k1"), ["k1"]);
    let basic = header_secrets("proxy-authorization", "Basic dXNlcjpwYXNzd29yZA==");
    assert!(basic.contains(&"password".to_string()) && basic.contains(&"user:password".to_string()), "{basic:?}");
    assert_eq!(url_secrets("http://user:p%40ss@127.0.0.1:1/x"), ["p%40ss", "p@ss"]);
    assert!(url_secrets("http://user@host/").is_empty());
    assert_eq!(url_secrets("https://h/v1?model=m&api_key=k%2Bey123#f"), ["k%2Bey123", "k+ey123"]);
    assert!(url_secrets("http://host/a:b@c").is_empty());
}

#[test]
fn control_characters_become_visible() {
    assert_eq!(escape_control("a\x1b[31mred\x1b[0m\x07"), "a\\x1b[31mred\\x1b[0m\\x07");
    assert_eq!(escape_control("c1 \u{9b}2J, del \x7f, bidi \u{202e}"), "c1 \\u{9b}2J, del \\x7f, bidi \\u{202e}");
    assert_eq!(escape_control("cr\r"), "cr\\x0d");
    assert_eq!(escape_control("keep\nlines\tand tabs"), "keep\nlines\tand tabs");
    assert_eq!(escape_line("one\nline\t\x1b"), "one\\nline\\t\\x1b");
    let json = serde_json::to_string(&serde_json::json!({ "m": "a\u{9b}b\u{202e}c\x7f\x1b" })).unwrap();
    let safe = escape_json_controls(&json);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap()["m"], "a\u{9b}b\u{202e}c\x7f\x1b");
    assert!(matches!(escape_control(&safe), Cow::Borrowed(_)), "{safe}");
}

#[test]
fn the_global_redactor_is_extendable_and_idempotent() {
    install(vec!["global-test-secret-value".into()]);
    install(vec!["global-test-secret-value".into()]);
    install(vec!["another-global-test-token".into()]);
    assert_eq!(text("a global-test-secret-value b"), "a *** b");
    assert_eq!(text("ANOTHER-GLOBAL-TEST-TOKEN"), "***");
    assert_eq!(server_text("\x1b[2Jglobal-test-secret"), "\\x1b[2J***");
}

/// An echo of `secret` the way a server might write it.
fn echo(secret: &str, form: u8, from: usize, len: usize) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let from = from % chars.len();
    let part: String = chars[from..(from + len).min(chars.len())].iter().collect();
    match form % 5 {
        0 => part,
        1 => part.to_uppercase(),
        2 => json_escaped(&part),
        3 => part
            .chars()
            .enumerate()
            .map(|(i, c)| if i % 2 == 0 { json_escaped(&c.to_string()) } else { c.to_string() })
            .collect(),
        _ => part.chars().map(|c| format!("%{:02X}", c as u32)).collect(),
    }
}

proptest! {
    #[test]
    fn text_never_panics_and_never_leaks(
        secret in "[a-zA-Z0-9_.:/+=-]{8,40}",
        noise in proptest::collection::vec("\\PC{0,12}", 1..6),
        echoes in proptest::collection::vec((any::<u8>(), any::<usize>(), 8usize..48), 1..4),
    ) {
        let r = Redactor::new([secret.clone()]);
        let mut text = String::new();
        for (i, n) in noise.iter().enumerate() {
            text.push_str(n);
            if let Some(&(form, from, len)) = echoes.get(i) {
                text.push_str(&echo(&secret, form, from, len));
            }
        }
        let out = r.text(&text);
        prop_assert!(leaks(&out, &secret).is_none(), "{} leaked from {} as {}", secret, text, out);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC*", secret in "\\PC{4,20}") {
        let r = Redactor::new([secret]);
        let _ = r.text(&s);
        let _ = escape_control(&s);
    }
}

#[test]
fn a_templated_credential_header_is_remembered_once_rendered() {
    assert!(is_sensitive_header("X-Api-Key") && is_sensitive_header("proxy-authorization"));
    assert!(is_sensitive_header("x-session-token") && !is_sensitive_header("content-type"));
    // Whole words: a gateway's routing headers stay readable, its key header does not.
    assert!(!is_sensitive_header("x-portkey-config") && !is_sensitive_header("x-portkey-custom-host"));
    assert!(
        is_sensitive_header("x-portkey-api-key") && is_sensitive_header("apikey") && is_sensitive_header("api_key")
    );
    assert!(is_sensitive_header("Ocp-Apim-Subscription-Key") && is_sensitive_header("private-token"));
    remember_header("content-type", "application/json-templated-test");
    assert_eq!(text("application/json-templated-test"), "application/json-templated-test");
    remember_header("authorization", "Bearer captured-token-per-user-42");
    // The space belongs to the header value ("Bearer captured…"), so it is masked too.
    assert_eq!(text("echo: CAPTURED-TOKEN-PER-USER-42"), "echo:***");
}

#[test]
fn a_large_text_is_scanned_in_linear_time() {
    let r = r();
    let page = "<td>latency p95 &amp; 1.2 ms \\u00e9 %20</td>\n".repeat(50_000);
    let start = std::time::Instant::now();
    assert!(matches!(r.text(&page), Cow::Borrowed(_)));
    // A generous bound for a debug build on a busy machine; in release it takes a few milliseconds.
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
}

proptest! {
    #[test]
    fn a_json_document_stays_the_same_document_without_the_secret(
        secret in "[a-zA-Z0-9_.:/+=-]{8,30}",
        values in proptest::collection::vec(("\\PC{0,10}", any::<u8>(), any::<usize>(), 8usize..40), 1..6),
    ) {
        let r = Redactor::new([secret.clone()]);
        let mut doc = serde_json::Map::new();
        for (i, (noise, form, from, len)) in values.iter().enumerate() {
            let v = format!("{noise}{}{noise}", echo(&secret, *form, *from, *len));
            doc.insert(format!("k{i}"), serde_json::Value::String(v));
        }
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let out = r.json(&text);
        let back: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&out).unwrap();
        prop_assert_eq!(back.keys().collect::<Vec<_>>(), doc.keys().collect::<Vec<_>>());
        prop_assert!(leaks(&out, &secret).is_none(), "{} leaked in {}", secret, out);
        for v in back.values() {
            let v = v.as_str().unwrap_or_default();
            prop_assert!(leaks(v, &secret).is_none(), "{} leaked in the value {}", secret, v);
        }
    }
}

#[test]
fn debug_output_shows_a_credential_header_by_its_scheme_only() {
    assert_eq!(shown_header("authorization", "Bearer sk-live-0123456789"), "Bearer ***");
    assert_eq!(shown_header("Authorization", "Basic dXNlcjpwYXNz"), "Basic ***");
    assert_eq!(shown_header("authorization", "Bearer "), "Bearer (empty)");
    assert_eq!(shown_header("x-api-key", ""), "(empty)");
    assert_eq!(shown_header("x-api-key", "sk-0123456789"), "***");
    assert_eq!(shown_header("cookie", "session=abc; theme=dark"), "***");
    assert_eq!(shown_header("content-type", "application/json"), "application/json");
    assert_eq!(shown_header("x-note", "a\nb\u{1b}"), "a\\nb\\x1b");
}
