//! The transport seam is real: the engine runs users over a transport that is not HTTP/1.1 (canned answers, no
//! socket), records what they did, and never learns the difference.

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;

use super::load::{Arrival, ClosedLoad, LoadModel, OpenLoad};
use super::plan::{Endpoint, Plan, TagFilter, compile};
use super::session::Session;
use super::shared::{Local, Shared, Stop};
use super::{Control, EngineSpec, Observer, Progress, StopReason, run};
use crate::client::{BodySink, Exchange, Failure, Reading, Request, RetryAdvice, Transport, TransportFactory};
use crate::metrics::{ErrorKind, Recorder};

/// What the fake transport saw of one request: method, origin-form URI, `Host` and `x-token` headers.
type Sent = (String, String, Option<HeaderValue>, Option<HeaderValue>);

/// Answers every request with `status` and `body`, as a transport must: the body goes where `Reading` says.
struct Canned {
    status: u16,
    body: &'static [u8],
    sent: Arc<Mutex<Vec<Sent>>>,
    /// Blocks the worker thread this long per request: a generator that cannot keep up, whatever the machine.
    block: Duration,
}

impl Transport for Canned {
    async fn exchange<S: BodySink>(
        &mut self,
        req: &Request,
        _timeout: Duration,
        reading: Reading<'_, S>,
    ) -> Result<Exchange, Failure> {
        let h = req.headers();
        let seen = (req.method().to_string(), req.uri().to_string(), h.get("host").cloned(), h.get("x-token").cloned());
        self.sent.lock().expect("not poisoned").push(seen);
        std::thread::sleep(self.block);
        let expected = reading.expect.map_or((200..300).contains(&self.status), |c| c.contains(&self.status));
        if let Some(buf) = reading.buf.filter(|_| reading.keep || !expected) {
            buf.extend_from_slice(self.body);
        }
        if let Some(tap) = reading.tap {
            tap.head(&http::HeaderMap::new());
            tap.data(self.body);
        }
        let ms = Duration::from_millis;
        Ok(Exchange {
            status: self.status,
            ttfb: ms(1),
            latency: ms(2),
            bytes: self.body.len() as u64,
            retry_after: RetryAdvice::default(),
            captured: Default::default(),
        })
    }
}

#[derive(Clone)]
struct CannedFactory {
    status: u16,
    body: &'static [u8],
    host: HeaderValue,
    sent: Arc<Mutex<Vec<Sent>>>,
    block: Duration,
}

impl CannedFactory {
    fn new(status: u16, body: &'static [u8]) -> CannedFactory {
        let host = HeaderValue::from_static("api.test:8443");
        CannedFactory { status, body, host, sent: Arc::default(), block: Duration::ZERO }
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().expect("not poisoned").clone()
    }
}

impl TransportFactory for CannedFactory {
    type Transport = Canned;

    fn build(&self) -> Canned {
        Canned { status: self.status, body: self.body, sent: self.sent.clone(), block: self.block }
    }

    fn prefix(&self) -> &str {
        "/base"
    }

    fn host_header(&self) -> &HeaderValue {
        &self.host
    }
}

/// Login, then a call authenticated with the captured token: the capture only works if the body the
/// transport delivered reached the checks.
const SCENARIO: &str = r#"
name = "seam"

[[user]]
name = "U"

  [[user.step]]
  name = "login"
  post = "/login"
  json = { user = "{{ user_id }}" }
  capture = { token = "$.token" }

  [[user.step]]
  name = "me"
  get = "/me"
  headers = { x-token = "{{ token }}" }
"#;

fn plan(factory: &CannedFactory) -> Arc<Plan> {
    Arc::new(plan_owned(factory))
}

fn plan_owned(factory: &CannedFactory) -> Plan {
    let loaded = crate::scenario::parse("seam.toml".as_ref(), SCENARIO.to_string()).expect("a valid scenario");
    let endpoint = Endpoint::of(factory);
    compile(&loaded.scenario, &loaded.name, endpoint, Duration::from_secs(5), &TagFilter::default(), vec![])
        .expect("it compiles")
}

fn shared(plan: Arc<Plan>) -> Arc<Shared> {
    Arc::new(Shared {
        plan,
        stop: Stop::default(),
        iterations_left: None,
        seed: 1,
        start: tokio::time::Instant::now(),
        open: false,
        deadline: None,
        capture: None,
    })
}

/// One user iteration over the fake transport; returns the worker's recorder.
async fn one_iteration(factory: &CannedFactory) -> Recorder {
    let plan = plan(factory);
    let local = Rc::new(Local::new(plan.steps.len(), plan.classes.len()));
    let shared = shared(plan);
    let mut user = Session::new(&shared, &local, factory.build(), 0, 7);
    assert!(user.iterate(&shared, 0, 0, Duration::ZERO).await, "not stopped");
    local.rec.borrow().clone()
}

#[tokio::test]
async fn a_user_iterates_over_any_transport() {
    let factory = CannedFactory::new(200, br#"{"token":"t-1"}"#);
    let rec = one_iteration(&factory).await;
    let host = Some(HeaderValue::from_static("api.test:8443"));
    let token = Some(HeaderValue::from_static("t-1"));
    assert_eq!(
        factory.sent(),
        [("POST".into(), "/base/login".into(), host.clone(), None), ("GET".into(), "/base/me".into(), host, token),]
    );
    for step in &rec.steps {
        assert_eq!((step.requests, step.failures, step.bytes), (1, 0, 15));
        assert_eq!(step.latency.max(), 2000, "the transport's latency, in µs");
    }
    assert_eq!((rec.flows[0].completed, rec.flows[0].failed), (1, 0));
}

#[tokio::test]
async fn a_status_the_step_does_not_expect_fails_it_whatever_the_transport() {
    let factory = CannedFactory::new(503, b"busy");
    let rec = one_iteration(&factory).await;
    let login = &rec.steps[0];
    assert_eq!((login.requests, login.failures), (1, 1));
    assert_eq!(login.errors[0].kind, ErrorKind::Status(503));
    assert_eq!(login.errors[0].sample, "unexpected status 503: busy");
    assert_eq!((rec.flows[0].completed, rec.flows[0].failed), (0, 1));
}

struct Quiet;

impl Observer for Quiet {
    fn tick(&mut self, _: &Progress, _: &Recorder, _: &Recorder) -> Control {
        Control::Continue
    }
}

#[test]
fn the_engine_runs_a_load_over_any_transport() {
    let factory = CannedFactory::new(200, br#"{"token":"t-1"}"#);
    let load = ClosedLoad {
        users: 2,
        spawn_rate: None,
        duration: None,
        iterations: Some(3),
        stages: Vec::new(),
        iterations_per_user: None,
    };
    let spec = EngineSpec {
        plan: plan(&factory),
        load: LoadModel::Closed(load),
        seed: 1,
        workers: 2,
        graceful_stop: Duration::from_secs(1),
        client: factory.clone(),
        secrets: Vec::new(),
        capture: None,
        stripe: super::segment::Stripe::whole(),
    };
    let result = run(spec, &mut Quiet).expect("the run starts");
    assert_eq!(result.stop, StopReason::IterationsDone);
    let total = result.total.total();
    assert_eq!((total.requests, total.failures), (6, 0), "3 iterations of 2 steps");
    assert_eq!(factory.sent().len(), 6);
}

/// A generator that falls behind its open-model schedule (each request blocks its thread 2 ms, so one worker
/// starts at most ~250 two-step iterations a second against 2,000 scheduled) is stopped at the run's end with
/// most arrivals due but unstarted: they count as arrivals and as dropped, so the report shows the whole
/// schedule, and every arrival is either started or dropped. Before, they vanished: ~257 arrivals of 2,000.
#[test]
fn arrivals_a_stopped_generator_never_started_are_dropped_not_lost() {
    let mut factory = CannedFactory::new(200, br#"{"token":"t-1"}"#);
    factory.block = Duration::from_millis(2);
    let load = OpenLoad {
        rate: 2000.0,
        arrival: Arrival::Constant,
        max_in_flight: 100_000,
        duration: Some(Duration::from_secs(1)),
        iterations: None,
        stages: Vec::new(),
    };
    let spec = EngineSpec {
        plan: plan(&factory),
        load: LoadModel::Open(load),
        seed: 1,
        workers: 1,
        graceful_stop: Duration::from_secs(5),
        client: factory.clone(),
        secrets: Vec::new(),
        capture: None,
        stripe: super::segment::Stripe::whole(),
    };
    let result = run(spec, &mut Quiet).expect("the run starts");
    let t = &result.total;
    let started: u64 = t.flows.iter().map(|f| f.completed + f.failed).sum();
    // Constant spacing puts 2,000 arrivals in the second; the last may fall either side of its end.
    assert!((1999..=2001).contains(&t.arrivals), "the whole schedule is accounted for: {} arrivals", t.arrivals);
    assert!(t.dropped > 0 && started < 1000, "the generator fell behind: {started} started, {} dropped", t.dropped);
    // An iteration the stop cut between its steps ran requests but is no flow: at most one batch of arrivals
    // (the dispatcher yields every 64) can be in that state; every other arrival is a flow or dropped.
    // The worker's hiccup probe shares the blocked thread: it cannot wake on time while a request blocks it.
    assert!(!t.hiccup.is_empty(), "the probe ran");
    assert!(t.hiccup.max() >= 1_000, "a thread blocked 2 ms at a time woke its probe on time: {} µs", t.hiccup.max());
    assert_eq!(result.hiccup_max.len(), result.series.len(), "one worst hiccup per second of the series");
    let cut = t.arrivals.checked_sub(started + t.dropped).expect("no arrival counted twice");
    assert!(
        cut <= 64,
        "every arrival is started or dropped: {} arrivals, {started} flows, {} dropped",
        t.arrivals,
        t.dropped
    );
}

/// Every shipped scenario's chat model comes from `[vars]`; a request that needs nothing else per request is
/// still built once (fixed body, no render), and its model is known to the plan.
#[test]
fn shipped_chat_steps_fold_their_vars_into_fixed_requests() {
    let factory = CannedFactory::new(200, b"{}");
    for (file, model) in [("stress", "gpt-x"), ("smoke", "gpt-x"), ("switchover", "gpt-x")] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{file}.toml"));
        let mut loaded = crate::scenario::load(&path).expect("a shipped scenario loads");
        crate::scenario::resolve_vars(&mut loaded, &[("model".into(), model.into())], false).unwrap();
        loaded.stand_in_header_keys();
        let endpoint = Endpoint::of(&factory);
        let plan =
            compile(&loaded.scenario, &loaded.name, endpoint, Duration::from_secs(5), &TagFilter::default(), vec![])
                .expect("it compiles");
        let step = &plan.classes[0].steps[0];
        let http = step.http().expect("a request");
        assert!(!http.templated, "{file}: rendered per request");
        let crate::engine::plan::BodyPlan::Fixed(bytes) = &http.body else { panic!("{file}: body not fixed") };
        let body: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(body["model"], model, "{file}");
        assert_eq!(step.llm.model.as_deref(), Some(model), "{file}");
        // Nothing to render: the whole request is built once and sent as is.
        let fixed = http.fixed.as_ref().expect("a request built once");
        assert_eq!((fixed.method(), fixed.body()), (&http::Method::POST, bytes), "{file}");
        assert_eq!(fixed.headers(), &http.headers, "{file}");
        assert_eq!(fixed.headers().get("host"), Some(factory.host_header()), "{file}");
    }
    // A template anywhere (a JSON leaf, a header) and the request is built per request.
    let seam = plan(&factory);
    assert!(seam.classes[0].steps.iter().all(|s| s.http().is_some_and(|h| h.templated && h.fixed.is_none())));
}

#[test]
fn a_capture_keeps_the_first_exchanges_of_each_step_across_workers() {
    let factory = CannedFactory::new(200, br#"{"token":"t-1"}"#);
    let plan = plan(&factory);
    let log = Arc::new(super::ExchangeLog::new(plan.steps.len(), Some(2)));
    let load = ClosedLoad {
        users: 4,
        spawn_rate: None,
        duration: None,
        iterations: Some(20),
        stages: Vec::new(),
        iterations_per_user: None,
    };
    let spec = EngineSpec {
        plan,
        load: LoadModel::Closed(load),
        seed: 1,
        workers: 2,
        graceful_stop: Duration::from_secs(1),
        client: factory.clone(),
        secrets: Vec::new(),
        capture: Some(log.clone()),
        stripe: super::segment::Stripe::whole(),
    };
    run(spec, &mut Quiet).expect("the run starts");
    assert_eq!(factory.sent().len(), 40);
    let kept = log.take();
    let per_step = |name: &str| kept.iter().filter(|c| c.step == name).count();
    assert_eq!((kept.len(), per_step("login"), per_step("me")), (4, 2, 2));
    let me = kept.iter().find(|c| c.step == "me").expect("a `me` exchange");
    assert_eq!((me.method.as_str(), me.uri.as_str(), me.status), ("GET", "/base/me", Some(200)));
    assert!(me.request_headers.contains(&("x-token".into(), "t-1".into())), "{:?}", me.request_headers);
    assert_eq!(me.response.body, br#"{"token":"t-1"}"#);
    assert_eq!(me.failure, None);
    let login = kept.iter().find(|c| c.step == "login").expect("a `login` exchange");
    assert_eq!(login.captures, [("token".to_string(), "t-1".to_string())]);
    assert!(login.request_body.starts_with(br#"{"user":"#), "{:?}", String::from_utf8_lossy(&login.request_body));
    assert_eq!(login.request_len, login.request_body.len());
}

#[test]
fn a_trial_runs_each_class_once_and_records_every_check() {
    let factory = CannedFactory::new(503, b"busy");
    let plan = plan_owned(&factory);
    let log = Arc::new(super::ExchangeLog::new(plan.steps.len(), None));
    let spec = super::TrialSpec { plan, client: factory.clone(), seed: 1, secrets: vec![], log: log.clone() };
    let result = super::trial(spec).expect("it runs");
    assert_eq!(result.classes.len(), 1);
    let kept = log.take();
    assert_eq!(kept.len(), 1, "the failed login ends the iteration");
    let login = &kept[0];
    assert_eq!(login.failure, Some((ErrorKind::Status(503), "unexpected status 503: busy".to_string())));
    assert_eq!(login.checks.len(), 1);
    assert!(!login.checks[0].passed);
    assert_eq!(login.checks[0].why.as_deref(), Some("got 503"));
    assert_eq!(result.total.steps[0].failures, 1);
}
