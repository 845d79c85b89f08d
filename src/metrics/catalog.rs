//! The one list of metrics (k6's `metrics/builtin.go` is the model: every metric registered once). Each
//! [`Metric`] says its name (as written in thresholds and regression rules), unit, kind, direction, the statistics
//! it supports, how it is compared with a baseline, and where its numbers are: in a live step or flow recorder
//! ([`Metric::step_histogram`], [`Metric::flow_histogram`]) or in a stored result ([`StoredStepHistograms`],
//! [`Metric::stored_flow_histogram`]).
//! Thresholds, regression rules and renderers read this list; matches on [`Metric`] stay exhaustive so a new
//! metric cannot be forgotten by one of them.

use std::fmt;

use super::{FlowStats, FlowSummary, Hist, StepStats};

/// Declares [`Metric`] and [`Metric::ALL`] from one list, so a variant cannot be missing from `ALL`.
macro_rules! metrics {
    ($($variant:ident),* $(,)?) => {
        /// Every metric a threshold or a regression rule may name, in the order messages list them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Metric {
            $($variant),*
        }

        impl Metric {
            pub const ALL: &'static [Metric] = &[$(Metric::$variant),*];
        }
    };
}

metrics![
    Latency,
    Ttfb,
    Ttft,
    Ttfo,
    Icl,
    Tpot,
    Ntpot,
    StreamTail,
    GatewayOverhead,
    FlowLatency,
    StepsPerFlow,
    Errors,
    RateLimited,
    Dropped,
    FallbackRate,
    GatewayRetries,
    Requests,
    Rps,
    OutputTokensPerS,
    Cost,
];

/// The histograms a user class keeps, live and stored.
#[derive(Debug, Clone, Copy)]
enum FlowField {
    Latency,
    Steps,
}

/// What kind of value a metric holds, which decides the statistics it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A latency distribution, in milliseconds.
    Duration,
    /// A distribution of counts.
    Count,
    /// Events out of a total: `rate` (fraction, or per second for `requests`) and `count`.
    Ratio,
    /// One number for the run.
    Value,
}

/// The statistic a threshold or comparison applies, in k6's spelling (`p(95)`, `avg`, ...).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agg {
    Percentile(f64),
    Avg,
    Min,
    Max,
    Med,
    Rate,
    Count,
    Value,
}

impl fmt::Display for Agg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Agg::Percentile(p) => write!(f, "p({p})"),
            Agg::Avg => f.write_str("avg"),
            Agg::Min => f.write_str("min"),
            Agg::Max => f.write_str("max"),
            Agg::Med => f.write_str("med"),
            Agg::Rate => f.write_str("rate"),
            Agg::Count => f.write_str("count"),
            Agg::Value => f.write_str("value"),
        }
    }
}

/// Where a metric's numbers come from, which decides how thresholds and comparisons compute them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A histogram recorded per step ([`Metric::step_histogram`]) and stored per step.
    StepHistogram,
    /// A histogram recorded per user class ([`Metric::flow_histogram`]) and stored per flow.
    FlowHistogram,
    /// Failed requests out of all requests; `Some(kind)` counts only failures of that kind, `None` every failure
    /// (or the selector's `kind`).
    Failures(Option<&'static str>),
    /// Open model: arrivals dropped out of arrivals scheduled.
    Dropped,
    /// Requests: a count, or per second of the run.
    Requests,
    /// Requests per second of the run.
    Rps,
    /// LLM output tokens per second of the run.
    OutputTokensPerS,
    /// USD of LLM responses.
    Cost,
    /// LLM responses the gateway (or `[aliases]`) called a fallback, out of LLM responses.
    Fallbacks,
    /// Retries the gateway reported, per LLM response.
    GatewayRetries,
}

/// How a metric is compared with a baseline when a rule does not say: it has a meaning independent of the run's
/// length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparable {
    /// Worsening tolerated relative to the baseline (0.1 = 10 %).
    pub relative: f64,
    /// Worsening tolerated in the metric's unit.
    pub absolute: f64,
    /// The statistics compared.
    pub stats: &'static [&'static str],
}

/// One metric's registration.
struct Info {
    name: &'static str,
    kind: Kind,
    source: Source,
    /// Unit of its values (of every statistic but `count`).
    unit: &'static str,
    /// Higher values are worse (all but throughput).
    higher_is_worse: bool,
    compare: Option<Comparable>,
}

const P50_P95: &[&str] = &["p(50)", "p(95)"];
const P50: &[&str] = &["p(50)"];
const RATE: &[&str] = &["rate"];
const VALUE: &[&str] = &["value"];

const fn compare(relative: f64, absolute: f64, stats: &'static [&'static str]) -> Option<Comparable> {
    Some(Comparable { relative, absolute, stats })
}

impl Metric {
    const fn info(self) -> Info {
        use Kind::{Count, Duration, Ratio, Value};
        let (name, kind, source, unit, higher_is_worse, compare) = match self {
            Metric::Latency => ("latency", Duration, Source::StepHistogram, "ms", true, compare(0.10, 2.0, P50_P95)),
            Metric::Ttfb => ("ttfb", Duration, Source::StepHistogram, "ms", true, compare(0.10, 2.0, P50_P95)),
            // The first token waits on scheduling on both sides of the wire: a few ms of jitter is not a regression.
            Metric::Ttft => ("ttft", Duration, Source::StepHistogram, "ms", true, compare(0.10, 5.0, P50_P95)),
            Metric::Ttfo => ("ttfo", Duration, Source::StepHistogram, "ms", true, compare(0.10, 5.0, P50_P95)),
            Metric::Icl => ("icl", Duration, Source::StepHistogram, "ms", true, compare(0.10, 0.5, P50)),
            Metric::Tpot => ("tpot", Duration, Source::StepHistogram, "ms", true, compare(0.10, 0.5, P50)),
            Metric::Ntpot => ("ntpot", Duration, Source::StepHistogram, "ms", true, compare(0.10, 0.5, P50)),
            Metric::StreamTail => {
                ("stream_tail", Duration, Source::StepHistogram, "ms", true, compare(0.10, 2.0, P50_P95))
            }
            // The gateway's own time is a few ms; its jitter is of the same order.
            Metric::GatewayOverhead => {
                ("gateway_overhead", Duration, Source::StepHistogram, "ms", true, compare(0.10, 2.0, P50_P95))
            }
            Metric::FlowLatency => {
                ("flow_latency", Duration, Source::FlowHistogram, "ms", true, compare(0.10, 5.0, P50_P95))
            }
            Metric::StepsPerFlow => {
                ("steps_per_flow", Count, Source::FlowHistogram, "", true, compare(0.10, 0.5, P50_P95))
            }
            Metric::Errors => ("errors", Ratio, Source::Failures(None), "", true, compare(0.50, 0.01, RATE)),
            Metric::RateLimited => {
                ("rate_limited", Ratio, Source::Failures(Some("rate_limited")), "", true, compare(0.50, 0.01, RATE))
            }
            Metric::Dropped => ("dropped", Ratio, Source::Dropped, "", true, compare(0.50, 0.01, RATE)),
            Metric::FallbackRate => ("fallback_rate", Ratio, Source::Fallbacks, "", true, compare(0.50, 0.01, RATE)),
            Metric::GatewayRetries => {
                ("gateway_retries", Ratio, Source::GatewayRetries, "", true, compare(0.50, 0.01, RATE))
            }
            // Both depend on the run's length: not comparable.
            Metric::Requests => ("requests", Ratio, Source::Requests, "/s", true, None),
            Metric::Cost => ("cost", Value, Source::Cost, "USD", true, None),
            Metric::Rps => ("rps", Value, Source::Rps, "/s", false, compare(0.10, 1.0, VALUE)),
            Metric::OutputTokensPerS => {
                ("output_tokens_per_s", Value, Source::OutputTokensPerS, "/s", false, compare(0.10, 1.0, VALUE))
            }
        };
        Info { name, kind, source, unit, higher_is_worse, compare }
    }

    /// The metric named `name` in a threshold or rule key.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.iter().copied().find(|m| m.name() == name)
    }

    pub const fn name(self) -> &'static str {
        self.info().name
    }

    pub const fn kind(self) -> Kind {
        self.info().kind
    }

    pub const fn source(self) -> Source {
        self.info().source
    }

    /// Unit of its values: `ms`, `/s`, `USD`, or empty for fractions and counts.
    pub const fn unit(self) -> &'static str {
        self.info().unit
    }

    /// Unit of one statistic of it: a `count` is a plain number whatever the metric.
    pub fn unit_of(self, agg: Agg) -> &'static str {
        if agg == Agg::Count { "" } else { self.unit() }
    }

    /// Higher values are worse for every metric except throughput.
    pub const fn higher_is_worse(self) -> bool {
        self.info().higher_is_worse
    }

    /// How it is compared with a baseline; `None` when it depends on the run's length.
    pub const fn comparable(self) -> Option<Comparable> {
        self.info().compare
    }

    /// Whether a threshold may apply `agg` to it.
    pub fn threshold_allows(self, agg: Agg) -> bool {
        match self.kind() {
            Kind::Duration | Kind::Count => {
                matches!(agg, Agg::Percentile(_) | Agg::Avg | Agg::Min | Agg::Max | Agg::Med | Agg::Count)
            }
            Kind::Ratio => matches!(agg, Agg::Rate | Agg::Count),
            Kind::Value => matches!(agg, Agg::Value | Agg::Avg),
        }
    }

    /// The statistics a threshold may apply, as the fix of a message.
    pub fn threshold_stats_hint(self) -> &'static str {
        match self.kind() {
            Kind::Duration | Kind::Count => "use p(N), avg, min, max, med or count",
            Kind::Ratio => "use rate or count",
            Kind::Value => "use value",
        }
    }

    /// Whether a comparison with a baseline may apply `agg` to it (counts depend on the run's length).
    pub fn compare_allows(self, agg: Agg) -> bool {
        match self.kind() {
            Kind::Duration | Kind::Count => {
                matches!(agg, Agg::Percentile(_) | Agg::Med | Agg::Avg | Agg::Min | Agg::Max)
            }
            Kind::Ratio => matches!(agg, Agg::Rate),
            Kind::Value => matches!(agg, Agg::Value | Agg::Avg),
        }
    }

    /// The statistics a comparison may apply, as the fix of a message.
    pub fn compare_stats_hint(self) -> &'static str {
        match self.kind() {
            Kind::Duration | Kind::Count => "use p(N), med, avg, min or max",
            Kind::Ratio => "use rate",
            Kind::Value => "use value",
        }
    }

    /// Histograms hold microseconds; durations are shown in milliseconds.
    pub fn display_scale(self) -> f64 {
        if self.kind() == Kind::Duration { 1000.0 } else { 1.0 }
    }

    /// A step's live histogram of this metric; `model` narrows `latency` to one served model. `None` when the
    /// step did not measure it or it is not a per-step histogram.
    pub fn step_histogram<'a>(self, s: &'a StepStats, model: Option<&str>) -> Option<&'a Hist> {
        let llm = s.llm.as_deref();
        match self {
            Metric::Latency => match model {
                None => Some(&s.latency),
                Some(x) => llm?.models.iter().find(|m| m.model == x).map(|m| &m.latency),
            },
            Metric::Ttfb => Some(&s.ttfb),
            Metric::Ttft => llm.map(|l| &l.ttft),
            Metric::Ttfo => llm.map(|l| &l.ttfo),
            Metric::Icl => llm.map(|l| &l.icl),
            Metric::Tpot => llm.map(|l| &l.tpot),
            Metric::Ntpot => llm.map(|l| &l.ntpot),
            Metric::StreamTail => llm.map(|l| &l.stream_tail),
            Metric::GatewayOverhead => llm.map(|l| &l.gateway.overhead),
            Metric::FlowLatency
            | Metric::StepsPerFlow
            | Metric::Errors
            | Metric::RateLimited
            | Metric::Dropped
            | Metric::FallbackRate
            | Metric::GatewayRetries
            | Metric::Requests
            | Metric::Rps
            | Metric::OutputTokensPerS
            | Metric::Cost => None,
        }
    }

    /// Which histogram of a user class holds this metric, if any: the one list both accessors below read.
    fn flow_field(self) -> Option<FlowField> {
        match self {
            Metric::FlowLatency => Some(FlowField::Latency),
            Metric::StepsPerFlow => Some(FlowField::Steps),
            Metric::Latency
            | Metric::Ttfb
            | Metric::Ttft
            | Metric::Ttfo
            | Metric::Icl
            | Metric::Tpot
            | Metric::Ntpot
            | Metric::StreamTail
            | Metric::GatewayOverhead
            | Metric::Errors
            | Metric::RateLimited
            | Metric::Dropped
            | Metric::FallbackRate
            | Metric::GatewayRetries
            | Metric::Requests
            | Metric::Rps
            | Metric::OutputTokensPerS
            | Metric::Cost => None,
        }
    }

    /// A user class's live histogram of this metric; `None` when it is not a per-flow histogram.
    pub fn flow_histogram(self, f: &FlowStats) -> Option<&Hist> {
        self.flow_field().map(|field| match field {
            FlowField::Latency => &f.latency,
            FlowField::Steps => &f.steps,
        })
    }

    /// A stored user class's encoded histogram of this metric (`""` when none completed); `None` when it is not a
    /// per-flow histogram.
    pub fn stored_flow_histogram(self, f: &FlowSummary) -> Option<&str> {
        self.flow_field().map(|field| match field {
            FlowField::Latency => f.latency_histogram.as_str(),
            FlowField::Steps => f.steps_histogram.as_str(),
        })
    }

    /// The per-step histogram metrics, in catalog order: what a stored step keeps serialized.
    pub fn step_histograms() -> impl Iterator<Item = Metric> {
        Metric::ALL.iter().copied().filter(|m| m.source() == Source::StepHistogram)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stored step's serialized histograms (`steps[].histograms` of a result), by metric. Implemented by the
/// result type, which this layer may not import.
pub trait StoredStepHistograms {
    /// The encoded histogram of `m` (`""` when nothing was measured); `None` when `m` is not stored per step.
    fn encoded(&self, m: Metric) -> Option<&str>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_read_back() {
        for &m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
        assert_eq!(Metric::from_name("latncy"), None);
    }

    #[test]
    fn per_step_and_per_flow_histograms_have_live_accessors() {
        let s = StepStats { llm: Some(Box::default()), ..StepStats::default() };
        let f = FlowStats::default();
        let stored = FlowSummary {
            user: "U".into(),
            completed: 0,
            failed: 0,
            flows_per_s: 0.0,
            latency: None,
            steps_mean: 0.0,
            steps_max: 0,
            cost_per_flow_usd: 0.0,
            latency_histogram: String::new(),
            steps_histogram: String::new(),
        };
        for &m in Metric::ALL {
            assert_eq!(m.step_histogram(&s, None).is_some(), m.source() == Source::StepHistogram, "{m}");
            assert_eq!(m.flow_histogram(&f).is_some(), m.source() == Source::FlowHistogram, "{m}");
            assert_eq!(m.stored_flow_histogram(&stored).is_some(), m.source() == Source::FlowHistogram, "{m}");
        }
    }

    #[test]
    fn default_comparison_statistics_are_valid_for_comparisons() {
        for &m in Metric::ALL {
            for s in m.comparable().map_or(&[][..], |c| c.stats) {
                let ok = match *s {
                    "p(50)" | "p(95)" => m.compare_allows(Agg::Percentile(50.0)),
                    "rate" => m.compare_allows(Agg::Rate),
                    "value" => m.compare_allows(Agg::Value),
                    other => panic!("{m}: unexpected default statistic {other}"),
                };
                assert!(ok, "{m}: {s}");
            }
        }
    }

    /// The backticked metric names of a docs table cell or sentence, selectors dropped.
    fn names(text: &str) -> Vec<&str> {
        let mut out: Vec<&str> = text.split('`').skip(1).step_by(2).map(|x| x.split('{').next().unwrap_or(x)).collect();
        out.dedup();
        out
    }

    fn row<'a>(doc: &'a str, first_cell: &str) -> Vec<&'a str> {
        let line = doc
            .lines()
            .find(|l| l.starts_with(&format!("| {first_cell} |")))
            .unwrap_or_else(|| panic!("docs/ci.md has no table row `| {first_cell} |`"));
        line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect()
    }

    const CI_DOC: &str = include_str!("../../docs/ci.md");

    #[test]
    fn the_docs_threshold_table_lists_every_metric_under_its_kind() {
        for (cell, kind) in [
            ("latencies (ms)", Kind::Duration),
            ("counts", Kind::Count),
            ("events of a total", Kind::Ratio),
            ("one number", Kind::Value),
        ] {
            let documented = names(row(CI_DOC, cell)[1]);
            let catalog: Vec<&str> = Metric::ALL.iter().filter(|m| m.kind() == kind).map(|m| m.name()).collect();
            assert_eq!(documented, catalog, "docs/ci.md threshold table, row `{cell}`");
        }
    }

    #[test]
    fn the_docs_tolerance_table_matches_the_catalog() {
        let start = CI_DOC.find("| metric | relative | absolute |").expect("docs/ci.md tolerance table");
        let rows = CI_DOC[start..].lines().skip(2).take_while(|l| l.starts_with('|'));
        let mut seen = Vec::new();
        for line in rows {
            let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
            let relative: f64 = cells[1].trim_end_matches('%').parse::<f64>().unwrap() / 100.0;
            let absolute: f64 = cells[2].split_whitespace().next().unwrap().parse().unwrap();
            for name in names(cells[0]) {
                let m = Metric::from_name(name).unwrap_or_else(|| panic!("docs/ci.md: unknown metric `{name}`"));
                let c = m.comparable().unwrap_or_else(|| panic!("docs/ci.md: `{name}` is not comparable"));
                assert!((c.relative - relative).abs() < 1e-9 && c.absolute == absolute, "docs/ci.md: `{name}`: {line}");
                seen.push(m);
            }
        }
        let comparable: Vec<Metric> = Metric::ALL.iter().copied().filter(|m| m.comparable().is_some()).collect();
        seen.sort_by_key(|m| comparable.iter().position(|x| x == m));
        assert_eq!(seen, comparable, "docs/ci.md tolerance table: every comparable metric once");
    }

    #[test]
    fn the_docs_default_statistics_match_the_catalog() {
        let start = CI_DOC.find("and these default statistics:").expect("docs/ci.md default statistics");
        let text = &CI_DOC[start..CI_DOC[start..].find(" otherwise.").unwrap() + start];
        let mut listed = Vec::new();
        for part in text.split(';') {
            let (stats, metrics) = part.split_once(" for ").unwrap_or((part, ""));
            let stats: Vec<&str> = stats.split('`').skip(1).step_by(2).collect();
            for name in names(metrics) {
                let m = Metric::from_name(name).unwrap();
                assert_eq!(m.comparable().unwrap().stats, stats, "docs/ci.md default statistics of `{name}`");
                listed.push(m);
            }
            if metrics.is_empty() {
                for m in Metric::ALL.iter().filter(|m| m.comparable().is_some() && !listed.contains(m)) {
                    assert_eq!(m.comparable().unwrap().stats, stats, "docs/ci.md default statistics of `{m}`");
                }
            }
        }
    }

    #[test]
    fn the_docs_and_readme_lists_name_every_metric_of_their_kind() {
        let after = |doc: &'static str, heading: &str| -> Vec<&'static str> {
            let start = doc.find(heading).unwrap_or_else(|| panic!("no `{heading}`")) + heading.len();
            let end = start + doc[start..].find('.').unwrap();
            names(&doc[start..end])
        };
        let comparable: Vec<&str> = Metric::ALL.iter().filter(|m| m.comparable().is_some()).map(|m| m.name()).collect();
        assert_eq!(after(CI_DOC, "### Comparable metrics"), comparable, "docs/ci.md comparable metrics");
        const README: &str = include_str!("../../README.md");
        let start = README.find("(latency metrics: `").expect("README latency metrics") + "(latency metrics: `".len();
        let listed: Vec<&str> = README[start..start + README[start..].find('`').unwrap()].split(' ').collect();
        let durations: Vec<&str> =
            Metric::ALL.iter().filter(|m| m.kind() == Kind::Duration).map(|m| m.name()).collect();
        assert_eq!(listed, durations, "README.md latency metrics");
    }
}
