//! The Prometheus text exposition (format 0.0.4) of a run: what `--metrics-addr` serves while the run goes on
//! and what `--pushgateway` receives at its end. Pure: no I/O here.
//!
//! prometheus-client does the encoding (names, escaping, `le` formatting, HELP/TYPE lines) through a custom
//! collector: its own `Histogram` can only `observe` values one at a time, while ours arrive as HdrHistogram
//! counts, converted exactly by `metrics::Buckets`.
//!
//! Every series carries `scenario` (the registry's constant label); per-step series add `user` (the user class)
//! and `step`:
//! - `run_load_test_requests_total{…,outcome}`: finished requests. `outcome` is `ok` or the error kind
//!   (`connect`, `protocol`, `timeout`, `status`, `rate_limited`, `check`, `stream`, `body`); `status` and `rate_limited`
//!   add `code`, the HTTP status. Requests cut off by a hard stop are in neither.
//! - `run_load_test_request_duration_seconds`: latency of successful requests (open model: from the intended
//!   start), so its `_count` equals `requests_total{outcome="ok"}`.
//! - `run_load_test_ttft_seconds`: time to first token of streamed responses; only for steps that streamed.
//! - `run_load_test_output_tokens_total`, `run_load_test_cost_usd_total`, `run_load_test_llm_fallbacks_total`,
//!   `run_load_test_gateway_retries_total`: zero for steps without LLM responses.
//! - `run_load_test_gateway_overhead_seconds`: the overhead the gateway reported; only for steps where it did.
//! - `run_load_test_users`, `run_load_test_in_flight`: the last second's running users and requests in flight.
//! - `run_load_test_hiccup_seconds` (no step labels): how late the workers' hiccup probes woke (see
//!   `result::Environment`); `run_load_test_host_disturbed`: 1 when the finished run's host was judged disturbed,
//!   0 when it was not, absent while the run goes on.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::metrics::{Buckets, ErrorKind, Recorder};

/// `text/plain; version=0.0.4`: what Prometheus scrapes and the Pushgateway accepts.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Totals since the run started, kept by adding each second's recorder: counters stay monotonic across the
/// levels of a sweep, whose engine runs each start from zero.
#[derive(Debug)]
pub struct LiveMetrics {
    steps: Vec<StepSeries>,
    users: u64,
    in_flight: u64,
    hiccup: Buckets,
    /// Judged once the run is over.
    disturbed: Option<bool>,
}

/// A per-step counter: its name, help, and where its value is.
type Counter = (&'static str, &'static str, fn(&StepSeries) -> u64);

#[derive(Debug)]
struct StepSeries {
    user: String,
    step: String,
    ok: u64,
    errors: BTreeMap<ErrorKind, u64>,
    latency: Buckets,
    ttft: Buckets,
    output_tokens: u64,
    cost: f64,
    fallbacks: u64,
    gateway_retries: u64,
    gateway_overhead: Buckets,
}

impl LiveMetrics {
    /// One series per step of the plan, as (user class, step name), in the plan's order.
    pub fn new<'a>(steps: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let steps = steps
            .into_iter()
            .map(|(user, step)| StepSeries {
                user: user.to_string(),
                step: step.to_string(),
                ok: 0,
                errors: BTreeMap::new(),
                latency: Buckets::durations(),
                ttft: Buckets::durations(),
                output_tokens: 0,
                cost: 0.0,
                fallbacks: 0,
                gateway_retries: 0,
                gateway_overhead: Buckets::durations(),
            })
            .collect();
        LiveMetrics { steps, users: 0, in_flight: 0, hiccup: Buckets::hiccups(), disturbed: None }
    }

    /// The finished run's host judgement (`result::Environment::disturbed`).
    pub fn set_disturbed(&mut self, disturbed: bool) {
        self.disturbed = Some(disturbed);
    }

    /// Adds one second's recorder (of the plan's shape) and sets the gauges to that second's values.
    pub fn absorb(&mut self, users: u64, in_flight: u64, interval: &Recorder) {
        self.users = users;
        self.in_flight = in_flight;
        self.hiccup.add(&interval.hiccup);
        for (s, i) in self.steps.iter_mut().zip(&interval.steps) {
            s.ok += i.requests - i.failures;
            for e in &i.errors {
                *s.errors.entry(e.kind).or_default() += e.count;
            }
            s.latency.add(&i.latency);
            if let Some(l) = &i.llm {
                s.ttft.add(&l.ttft);
                s.output_tokens += l.output_tokens;
                s.cost += l.cost;
                s.fallbacks += l.fallbacks;
                s.gateway_retries += l.gateway.retries;
                s.gateway_overhead.add(&l.gateway.overhead);
            }
        }
    }
}

/// The `outcome` label of a failure, and its `code` where it has one.
fn outcome(kind: ErrorKind) -> (&'static str, Option<u16>) {
    match kind {
        ErrorKind::Connect => ("connect", None),
        ErrorKind::Protocol => ("protocol", None),
        ErrorKind::Timeout => ("timeout", None),
        ErrorKind::Status(c) => ("status", Some(c)),
        ErrorKind::RateLimited => ("rate_limited", Some(429)),
        ErrorKind::Check => ("check", None),
        ErrorKind::Stream => ("stream", None),
        ErrorKind::Body => ("body", None),
        ErrorKind::Interrupted => ("interrupted", None),
    }
}

/// A registry holding one collector that reads the shared `LiveMetrics` on every encoding.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    pub fn new(scenario: &str, live: Arc<Mutex<LiveMetrics>>) -> Self {
        let labels = [(Cow::Borrowed("scenario"), Cow::Owned(scenario.to_string()))];
        let mut registry = Registry::with_prefix_and_labels("run_load_test", labels.into_iter());
        registry.register_collector(Box::new(LiveCollector(live)));
        Exposition { registry }
    }

    /// The whole exposition as text, secrets masked (scraped and pushed alike). Holds the lock only while
    /// encoding (microseconds for a few steps).
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(super::reuse(out, crate::redact::text))
    }
}

#[derive(Debug)]
struct LiveCollector(Arc<Mutex<LiveMetrics>>);

impl Collector for LiveCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        // A panic elsewhere while holding the lock leaves numbers that are still worth showing.
        let live = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let help = "Finished requests by outcome: ok, or the error kind (code: the HTTP status).";
            let mut m = enc.encode_descriptor("requests", help, None, MetricType::Counter)?;
            for s in &live.steps {
                let labels = [("user", s.user.as_str()), ("step", s.step.as_str()), ("outcome", "ok")];
                m.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&s.ok, None)?;
                for (&kind, n) in &s.errors {
                    let (name, code) = outcome(kind);
                    let code = code.map(|c| if c == 0 { "other".to_string() } else { c.to_string() });
                    let mut labels = vec![("user", s.user.as_str()), ("step", s.step.as_str()), ("outcome", name)];
                    if let Some(c) = &code {
                        labels.push(("code", c.as_str()));
                    }
                    m.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(n, None)?;
                }
            }
        }
        let help = "Latency of successful requests, send to last byte (open model: from the intended start).";
        encode_histograms(&mut enc, "request_duration", help, live.steps.iter().map(|s| (s, &s.latency)))?;
        let help = "Time to first token of streamed LLM responses.";
        let streamed = live.steps.iter().filter(|s| s.ttft.count() > 0).map(|s| (s, &s.ttft));
        encode_histograms(&mut enc, crate::metrics::catalog::Metric::Ttft.name(), help, streamed)?;
        {
            let help = "Output (completion) tokens of LLM responses.";
            let mut m = enc.encode_descriptor("output_tokens", help, None, MetricType::Counter)?;
            for s in &live.steps {
                let labels = [("user", s.user.as_str()), ("step", s.step.as_str())];
                m.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&s.output_tokens, None)?;
            }
        }
        {
            let help = "Cost of LLM responses in US dollars: the gateway's figure, else the scenario's price table.";
            let mut m = enc.encode_descriptor("cost_usd", help, None, MetricType::Counter)?;
            for s in &live.steps {
                let labels = [("user", s.user.as_str()), ("step", s.step.as_str())];
                m.encode_family(&labels)?.encode_counter::<NoLabelSet, _, f64>(&s.cost, None)?;
            }
        }
        let counters: [Counter; 2] = [
            ("llm_fallbacks", "LLM responses the gateway (or [aliases]) reported as a fallback.", |s| s.fallbacks),
            ("gateway_retries", "Retries the gateway reported making for LLM responses.", |s| s.gateway_retries),
        ];
        for (name, help, get) in counters {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for s in &live.steps {
                let labels = [("user", s.user.as_str()), ("step", s.step.as_str())];
                m.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&get(s), None)?;
            }
        }
        let help = "The overhead the gateway reported for each LLM response.";
        let reported = live.steps.iter().filter(|s| s.gateway_overhead.count() > 0).map(|s| (s, &s.gateway_overhead));
        encode_histograms(&mut enc, crate::metrics::catalog::Metric::GatewayOverhead.name(), help, reported)?;
        let help = "Virtual users running (open model: iterations running) in the last second.";
        enc.encode_descriptor("users", help, None, MetricType::Gauge)?.encode_gauge(&live.users)?;
        let help = "Requests in flight at the end of the last second.";
        enc.encode_descriptor("in_flight", help, None, MetricType::Gauge)?.encode_gauge(&live.in_flight)?;
        if live.hiccup.count() > 0 {
            let help = "How late the workers' hiccup probes woke from a 1 ms sleep: stalls of the generating host.";
            let mut m = enc.encode_descriptor("hiccup", help, Some(&Unit::Seconds), MetricType::Histogram)?;
            let b = &live.hiccup;
            let buckets: Vec<(f64, u64)> =
                b.bounds().iter().zip(b.counts()).map(|(&us, &n)| (us as f64 / 1e6, n)).collect();
            m.encode_histogram::<NoLabelSet>(b.sum_us() / 1e6, b.count(), &buckets, None)?;
        }
        if let Some(d) = live.disturbed {
            let help = "1 when the run's host was disturbed beyond the bounds a timing comparison trusts.";
            let d = i64::from(d);
            enc.encode_descriptor("host_disturbed", help, None, MetricType::Gauge)?.encode_gauge(&d)?;
        }
        Ok(())
    }
}

fn encode_histograms<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (&'a StepSeries, &'a Buckets)>,
) -> fmt::Result {
    // A family without samples is left out: a HELP/TYPE pair alone is noise to a reader and to a Pushgateway.
    let mut series = series.peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (s, b) in series {
        // Per-bucket counts: the encoder accumulates them and adds `+Inf` as the total count.
        let buckets: Vec<(f64, u64)> =
            b.bounds().iter().zip(b.counts()).map(|(&us, &n)| (us as f64 / 1e6, n)).collect();
        let labels = [("user", s.user.as_str()), ("step", s.step.as_str())];
        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(b.sum_us() / 1e6, b.count(), &buckets, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_parse::{Scrape, Value};

    use super::*;
    use crate::metrics::LlmSample;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn parse(text: &str) -> Scrape {
        Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the exposition parses")
    }

    fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        s.samples.iter().find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))).map(
            |x| match &x.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                other => panic!("{metric} is not a single value: {other:?}"),
            },
        )
    }

    /// Two seconds of a chat step (streamed, some failures) and a health step (plain HTTP).
    fn two_seconds() -> (LiveMetrics, Vec<Duration>) {
        let mut live = LiveMetrics::new([("Agent", "chat"), ("Agent", "health")]);
        let latencies = [ms(3), ms(5), ms(6), ms(9), ms(40), ms(1500), ms(70_000)];
        let mut first = Recorder::new(2, 1);
        for d in &latencies[..4] {
            first.steps[0].record_ok(*d, ms(1), 100);
            first.steps[0].record_llm(&LlmSample {
                latency: *d,
                ttft: Some(ms(2)),
                output_tokens: 7,
                cost: 0.001,
                ..Default::default()
            });
        }
        first.steps[0].record_err(ErrorKind::Status(503), 0, String::new);
        first.steps[1].record_ok(ms(1), ms(1), 2);
        for late in [Duration::from_micros(300), Duration::from_micros(300), Duration::ZERO, ms(12)] {
            first.record_hiccup(late);
        }
        live.absorb(4, 2, &first);
        let mut second = Recorder::new(2, 1);
        for d in &latencies[4..] {
            second.steps[0].record_ok(*d, ms(1), 100);
        }
        second.steps[0].record_err(ErrorKind::Status(503), 0, String::new);
        second.steps[0].record_err(ErrorKind::Connect, 0, String::new);
        second.steps[0].record_err(ErrorKind::RateLimited, 0, String::new);
        second.steps[1].record_err(ErrorKind::Protocol, 0, String::new);
        second.steps[1].record_err(ErrorKind::STATUS_OTHER, 0, String::new);
        live.absorb(3, 1, &second);
        (live, latencies.to_vec())
    }

    fn render(live: LiveMetrics) -> String {
        Exposition::new("react", Arc::new(Mutex::new(live))).render().unwrap()
    }

    /// The whole exposition of two seconds, so a renamed metric, label or bucket shows up as a diff.
    #[test]
    fn exposition_snapshot() {
        let (live, _) = two_seconds();
        insta::assert_snapshot!(render(live));
    }

    #[test]
    fn names_labels_and_counts_follow_the_conventions() {
        let (live, _) = two_seconds();
        let text = render(live);
        for t in [
            "# TYPE run_load_test_requests_total counter",
            "# TYPE run_load_test_request_duration_seconds histogram",
            "# TYPE run_load_test_ttft_seconds histogram",
            "# TYPE run_load_test_output_tokens_total counter",
            "# TYPE run_load_test_cost_usd_total counter",
            "# TYPE run_load_test_users gauge",
            "# TYPE run_load_test_in_flight gauge",
        ] {
            assert!(text.contains(t), "missing `{t}` in\n{text}");
        }
        let s = parse(&text);
        let req = "run_load_test_requests_total";
        let chat = [("scenario", "react"), ("user", "Agent"), ("step", "chat")];
        let with = |extra: &[(&'static str, &'static str)]| [&chat[..], extra].concat();
        assert_eq!(value(&s, req, &with(&[("outcome", "ok")])), Some(7.0));
        assert_eq!(value(&s, req, &with(&[("outcome", "status"), ("code", "503")])), Some(2.0));
        assert_eq!(value(&s, req, &with(&[("outcome", "connect")])), Some(1.0));
        assert_eq!(value(&s, req, &with(&[("outcome", "rate_limited"), ("code", "429")])), Some(1.0));
        let connect = s.samples.iter().find(|x| x.metric == req && x.labels.get("outcome") == Some("connect"));
        assert_eq!(connect.unwrap().labels.get("code"), None, "no code where there is no HTTP status");
        assert_eq!(value(&s, req, &[("step", "health"), ("outcome", "ok")]), Some(1.0));
        assert_eq!(value(&s, req, &[("step", "health"), ("outcome", "protocol")]), Some(1.0));
        assert_eq!(value(&s, req, &[("step", "health"), ("outcome", "status"), ("code", "other")]), Some(1.0));
        assert_eq!(value(&s, "run_load_test_output_tokens_total", &chat), Some(28.0));
        assert_eq!(value(&s, "run_load_test_output_tokens_total", &[("step", "health")]), Some(0.0));
        assert!((value(&s, "run_load_test_cost_usd_total", &chat).unwrap() - 0.004).abs() < 1e-12);
        assert_eq!(value(&s, "run_load_test_users", &[("scenario", "react")]), Some(3.0), "the last second's");
        assert_eq!(value(&s, "run_load_test_in_flight", &[]), Some(1.0));
        let ttft: Vec<_> = s.samples.iter().filter(|x| x.metric == "run_load_test_ttft_seconds").collect();
        assert_eq!(ttft.len(), 1, "ttft only for the step that streamed");
        assert_eq!(value(&s, "run_load_test_ttft_seconds_count", &chat), Some(4.0));
    }

    #[test]
    fn buckets_are_cumulative_exact_and_count_the_successes() {
        let (live, latencies) = two_seconds();
        let s = parse(&render(live));
        let chat = [("step", "chat")];
        let h = s
            .samples
            .iter()
            .find(|x| x.metric == "run_load_test_request_duration_seconds" && x.labels.get("step") == Some("chat"))
            .expect("the chat step's latency histogram");
        let Value::Histogram(buckets) = &h.value else { panic!("not a histogram: {:?}", h.value) };
        assert_eq!(buckets.len(), crate::metrics::DURATION_BOUNDS_US.len() + 1, "every bound and +Inf");
        assert!(buckets.windows(2).all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count));
        for b in buckets {
            let expected = latencies.iter().filter(|d| d.as_secs_f64() < b.less_than).count() as f64;
            assert_eq!(b.count, expected, "bucket le={}", b.less_than);
        }
        let last = buckets.last().unwrap();
        assert!(last.less_than.is_infinite() && last.count == 7.0);
        let count = value(&s, "run_load_test_request_duration_seconds_count", &chat);
        assert_eq!(count, value(&s, "run_load_test_requests_total", &[("step", "chat"), ("outcome", "ok")]));
        let sum = value(&s, "run_load_test_request_duration_seconds_sum", &chat).unwrap();
        let true_sum: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
        assert!((sum - true_sum).abs() / true_sum < 0.001, "sum {sum} vs {true_sum}");
    }

    #[test]
    fn hiccups_are_one_histogram_and_the_host_judgement_comes_at_the_end() {
        let (mut live, _) = two_seconds();
        let s = parse(&render_ref(&live));
        assert_eq!(value(&s, "run_load_test_hiccup_seconds_count", &[]), Some(4.0));
        let h = s.samples.iter().find(|x| x.metric == "run_load_test_hiccup_seconds").expect("hiccup histogram");
        let Value::Histogram(buckets) = &h.value else { panic!("not a histogram: {:?}", h.value) };
        let below = |le: f64| buckets.iter().find(|b| (b.less_than - le).abs() < 1e-9).map(|b| b.count);
        assert_eq!((below(0.0005), below(0.01), below(0.02)), (Some(3.0), Some(3.0), Some(4.0)));
        assert_eq!(value(&s, "run_load_test_host_disturbed", &[]), None, "not judged while the run goes on");
        live.set_disturbed(true);
        assert_eq!(value(&parse(&render_ref(&live)), "run_load_test_host_disturbed", &[]), Some(1.0));
        live.set_disturbed(false);
        assert_eq!(value(&parse(&render(live)), "run_load_test_host_disturbed", &[]), Some(0.0));
    }

    fn render_ref(live: &LiveMetrics) -> String {
        let copy = LiveMetrics {
            steps: Vec::new(),
            users: live.users,
            in_flight: live.in_flight,
            hiccup: live.hiccup.clone(),
            disturbed: live.disturbed,
        };
        render(copy)
    }

    #[test]
    fn an_idle_step_starts_at_zero_and_labels_are_escaped() {
        let live = LiveMetrics::new([("U \"quoted\"", "a\\b")]);
        let text = render(live);
        assert!(text.contains(r#"user="U \"quoted\"",step="a\\b",outcome="ok"} 0"#), "{text}");
        assert!(text.contains(r#"run_load_test_request_duration_seconds_bucket{scenario="react",user="U \"quoted\"",step="a\\b",le="+Inf"} 0"#), "{text}");
        assert!(!text.contains("ttft"), "no TTFT series before a stream: {text}");
    }

    #[test]
    fn the_exposition_masks_secrets() {
        crate::redact::install(vec!["prom-test-secret-4471".into()]);
        let text = render(LiveMetrics::new([("U", "call PROM-TEST-SECRET-4471")]));
        assert!(text.contains(r#"step="call ***""#), "{text}");
        assert!(prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).is_ok());
    }
}
