//! Regression rules: which metrics are compared with a baseline, on which statistics, and how much worsening
//! is tolerated (a relative share AND an absolute floor, both of which must be exceeded). Built-in rules cover
//! what every run has; the scenario's `[regression]` table overrides or extends them.

use super::error::RuleError;
use super::table::{Amount, RegressionEntry, RegressionTable};
use crate::metrics::catalog::{Comparable, Metric};
use crate::result::{Rule, RuleSet};
use crate::slo::{self, Agg, Kind, Selector};

/// One parsed `[regression]` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Confidence(f64),
    Defaults(bool),
    Rule(Rule),
    Off(String),
}

impl Rule {
    pub fn metric(&self) -> &str {
        self.key.split('{').next().unwrap_or(&self.key).trim()
    }

    pub fn selector(&self) -> Result<Selector, slo::ParseError> {
        slo::parse_key(&self.key).map(|(_, s)| s)
    }

    pub fn aggs(&self) -> Vec<Agg> {
        self.stats.iter().filter_map(|s| slo::parse_agg(s)).collect()
    }
}

/// Parses one `[regression]` entry; the message names the key and the fix.
pub fn parse_entry(key: &str, entry: &RegressionEntry) -> Result<Entry, RuleError> {
    match (key, entry) {
        ("confidence", RegressionEntry::Number(c)) if *c > 0.5 && *c < 1.0 => Ok(Entry::Confidence(*c)),
        ("confidence", _) => {
            Err(RuleError("[regression] `confidence` must be a number between 0.5 and 1, e.g. 0.99".into()))
        }
        ("defaults", RegressionEntry::Flag(b)) => Ok(Entry::Defaults(*b)),
        ("defaults", _) => Err(RuleError("[regression] `defaults` must be true or false".into())),
        (_, RegressionEntry::Flag(false)) => {
            check_metric(key)?;
            Ok(Entry::Off(key.to_string()))
        }
        (_, RegressionEntry::Flag(true)) => {
            let (_, c) = check_metric(key)?;
            Ok(Entry::Rule(Rule {
                key: key.trim().to_string(),
                stats: owned(c.stats),
                relative: c.relative,
                absolute: c.absolute,
            }))
        }
        (_, RegressionEntry::Number(_)) => Err(RuleError(format!(
            "[regression] `{key}` must be a rule such as {{ relative = \"10%\", absolute = \"5ms\" }}, or false"
        ))),
        (_, RegressionEntry::Rule(spec)) => {
            let (metric, c) = check_metric(key)?;
            let stats = match &spec.stats {
                Some(s) if s.is_empty() => return Err(RuleError(format!("[regression] `{key}`: `stats` is empty"))),
                Some(s) => s.iter().map(|x| x.trim().to_string()).collect(),
                None => owned(c.stats),
            };
            for s in &stats {
                check_stat(key, metric, s)?;
            }
            let kind = metric.kind();
            let absolute = match &spec.absolute {
                None => c.absolute,
                Some(Amount::Number(n)) if n.is_finite() && *n >= 0.0 => *n,
                Some(Amount::Text(t)) if kind == Kind::Duration => {
                    slo::parse_value(t.trim(), true).ok().filter(|v| *v >= 0.0).ok_or_else(|| {
                        RuleError(format!("[regression] `{key}`: absolute `{t}` is not a duration like \"5ms\""))
                    })?
                }
                Some(Amount::Text(t)) => {
                    return Err(RuleError(format!(
                        "[regression] `{key}`: absolute `{t}` must be a number of 0 or more (no unit)"
                    )));
                }
                Some(Amount::Number(n)) => {
                    return Err(RuleError(format!("[regression] `{key}`: absolute {n} must be a number of 0 or more")));
                }
            };
            Ok(Entry::Rule(Rule {
                key: key.trim().to_string(),
                stats,
                relative: spec.relative.map_or(c.relative, |p| p.0 / 100.0),
                absolute,
            }))
        }
    }
}

fn owned(stats: &[&str]) -> Vec<String> {
    stats.iter().map(|x| x.to_string()).collect()
}

/// The names of the metrics a rule may compare, for messages.
fn comparable_names() -> String {
    let names: Vec<&str> = Metric::ALL.iter().filter(|m| m.comparable().is_some()).map(|m| m.name()).collect();
    names.join(", ")
}

fn check_metric(key: &str) -> Result<(Metric, Comparable), RuleError> {
    let (name, sel) = slo::parse_key(key).map_err(|e| RuleError(format!("[regression] `{key}`: {e}")))?;
    let metric = Metric::from_name(name).ok_or_else(|| {
        RuleError(format!("[regression] `{key}`: unknown metric `{name}`; compare one of: {}", comparable_names()))
    })?;
    let Some(c) = metric.comparable() else {
        return Err(RuleError(format!(
            "[regression] `{key}`: `{name}` depends on the run's length and cannot be compared; compare one of: {}",
            comparable_names()
        )));
    };
    if sel.model.is_some() {
        return Err(RuleError(format!(
            "[regression] `{key}`: the `model` selector is not stored in baselines; use step or user"
        )));
    }
    if sel.kind.is_some() && metric != Metric::Errors {
        return Err(RuleError(format!("[regression] `{key}`: the `kind` selector applies to `errors` only")));
    }
    Ok((metric, c))
}

fn check_stat(key: &str, metric: Metric, stat: &str) -> Result<(), RuleError> {
    if slo::parse_agg(stat).is_some_and(|a| metric.compare_allows(a)) {
        return Ok(());
    }
    Err(RuleError(format!("[regression] `{key}`: cannot compare `{stat}`; {}", metric.compare_stats_hint())))
}

/// The scenario's `[regression]` table as a rule set.
pub fn rule_set(table: &RegressionTable) -> Result<RuleSet, RuleError> {
    let mut set = RuleSet::default();
    for (key, entry) in table {
        match parse_entry(key, entry)? {
            Entry::Confidence(c) => set.confidence = c,
            Entry::Defaults(d) => set.defaults = d,
            Entry::Rule(r) => set.rules.push(r),
            Entry::Off(k) => set.off.push(k),
        }
    }
    Ok(set)
}

/// One metric to compare: a rule bound to a concrete selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub key: String,
    pub metric: Metric,
    pub selector: Selector,
    pub aggs: Vec<Agg>,
    pub relative: f64,
    pub absolute: f64,
}

/// What the runs have that the built-in rules look at.
pub struct Shape<'a> {
    /// (user class, step) of each request step.
    pub steps: Vec<(&'a str, &'a str)>,
    /// User classes whose flows have more than one step.
    pub multi_step_classes: Vec<&'a str>,
}

/// The comparisons to make: built-in rules (unless switched off or overridden), then the scenario's rules.
pub fn targets(set: &RuleSet, shape: &Shape<'_>) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    if set.defaults {
        for (key, stats, tol) in builtin(shape) {
            let Ok((name, selector)) = slo::parse_key(&key) else { continue };
            let Some(metric) = Metric::from_name(name) else { continue };
            if set.off.iter().any(|o| o == name || o == &key) {
                continue;
            }
            let (relative, absolute) = match (tol, metric.comparable()) {
                (Some(t), _) => t,
                (None, Some(c)) => (c.relative, c.absolute),
                (None, None) => continue,
            };
            // A rule on the bare metric sets how every built-in row of that metric is compared.
            let over = set.rules.iter().find(|r| r.key == name && selector != Selector::default());
            let (aggs, relative, absolute) = match over {
                Some(r) => (r.aggs(), r.relative, r.absolute),
                None => (stats.iter().filter_map(|s| slo::parse_agg(s)).collect(), relative, absolute),
            };
            out.push(Target { key, metric, selector, aggs, relative, absolute });
        }
    }
    for r in &set.rules {
        let Ok(selector) = r.selector() else { continue };
        let Some(metric) = Metric::from_name(r.metric()) else { continue };
        let t =
            Target { key: r.key.clone(), metric, selector, aggs: r.aggs(), relative: r.relative, absolute: r.absolute };
        // A rule replaces every built-in row with the same metric and selector (the built-in p(99) row too).
        out.retain(|o| !(o.metric == t.metric && o.selector == t.selector));
        out.push(t);
    }
    out
}

type Builtin = (String, Vec<&'static str>, Option<(f64, f64)>);

fn builtin(shape: &Shape<'_>) -> Vec<Builtin> {
    let mut b: Vec<Builtin> = vec![
        ("latency".into(), vec!["p(50)", "p(95)"], None),
        // The tail is noisier run to run: more slack before it counts.
        ("latency".into(), vec!["p(99)"], Some((0.20, 5.0))),
    ];
    if shape.steps.len() > 1 {
        for (user, step) in &shape.steps {
            let shared = shape.steps.iter().filter(|(_, s)| s == step).count() > 1;
            let key =
                if shared { format!("latency{{user:{user},step:{step}}}") } else { format!("latency{{step:{step}}}") };
            b.push((key, vec!["p(50)", "p(95)"], None));
        }
    }
    b.push(("ttft".into(), vec!["p(50)", "p(95)"], None));
    b.push(("tpot".into(), vec!["p(50)"], None));
    for user in &shape.multi_step_classes {
        b.push((format!("flow_latency{{user:{user}}}"), vec!["p(50)", "p(95)"], None));
    }
    b.push(("errors".into(), vec!["rate"], None));
    b.push(("rps".into(), vec!["value"], None));
    b.push(("dropped".into(), vec!["rate"], None));
    b
}
