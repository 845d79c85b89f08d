//! SLO thresholds in k6's grammar on our metric names: `"latency{step:ask}" = ["p(95) < 2s", "avg < 500ms"]`,
//! parsed strictly and evaluated against a run's measurements into verdicts. Pure: no I/O, no printing.

mod eval;

use std::time::Duration;

pub use eval::{Measurements, evaluate};

pub use crate::metrics::catalog::{Agg, Kind, Metric};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => (a - b).abs() < 1e-9,
            Op::Ne => (a - b).abs() >= 1e-9,
        }
    }
}

/// `metric{key:value,...}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector {
    pub step: Option<String>,
    pub user: Option<String>,
    pub model: Option<String>,
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    pub selector: Selector,
    pub agg: Agg,
    pub op: Op,
    /// Milliseconds for durations, else the plain number.
    pub value: f64,
    /// The source text, `metric{...}: expression`, for tables and JUnit.
    pub text: String,
    /// Stop the run as soon as this threshold fails, once `delay_abort_eval` of it has passed.
    pub abort_on_fail: bool,
    pub delay_abort_eval: Duration,
}

/// A threshold, selector or value that does not parse; the message says what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

// The selector and value parsers build their messages as text; `?` turns them into the error.
impl From<String> for ParseError {
    fn from(m: String) -> Self {
        ParseError(m)
    }
}

impl From<&str> for ParseError {
    fn from(m: &str) -> Self {
        ParseError(m.to_string())
    }
}

/// Parses `metric{selector}` and one expression such as `p(95) < 2s`.
pub fn parse(key: &str, expr: &str) -> Result<Threshold, ParseError> {
    let err = |m: String| ParseError(format!("threshold `{key}`: `{expr}`: {m}"));
    let (metric, selector) = parse_key(key).map_err(|m| ParseError(format!("threshold `{key}`: {m}")))?;
    let metric = Metric::from_name(metric).ok_or_else(|| {
        let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        ParseError(format!("threshold `{key}`: unknown metric `{metric}`; known: {}", known.join(", ")))
    })?;
    let e = expr.trim();
    let op_at = e.find(['<', '>', '=', '!']).ok_or_else(|| err("needs an operator: < <= > >= == !=".into()))?;
    let (lhs, rest) = e.split_at(op_at);
    let (op, rhs) = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)]
        .iter()
        .find_map(|(t, o)| rest.strip_prefix(t).map(|r| (*o, r)))
        .ok_or_else(|| err("needs an operator: < <= > >= == !=".into()))?;
    let agg = parse_agg(lhs.trim()).ok_or_else(|| {
        err(format!("unknown aggregation `{}`; use p(N), avg, min, max, med, rate, count or value", lhs.trim()))
    })?;
    if !metric.threshold_allows(agg) {
        return Err(err(format!("`{metric}` has no `{}`; {}", lhs.trim(), metric.threshold_stats_hint())));
    }
    let value = parse_value(rhs.trim(), metric.kind() == Kind::Duration && agg != Agg::Count).map_err(|m| err(m.0))?;
    Ok(Threshold {
        metric,
        selector,
        agg,
        op,
        value,
        text: format!("{key}: {e}"),
        abort_on_fail: false,
        delay_abort_eval: Duration::ZERO,
    })
}

pub(crate) fn parse_key(key: &str) -> Result<(&str, Selector), ParseError> {
    let (metric, sel) = match key.split_once('{') {
        Some((m, rest)) => (m.trim(), rest.strip_suffix('}').ok_or("the selector must end with `}`")?),
        None => (key.trim(), ""),
    };
    let mut s = Selector::default();
    for part in sel.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once(':').ok_or_else(|| format!("selector `{part}` must be `key:value`"))?;
        let v = Some(v.trim().to_string());
        match k.trim() {
            "step" => s.step = v,
            "user" => s.user = v,
            "model" => s.model = v,
            "kind" => s.kind = v,
            other => return Err(format!("unknown selector key `{other}`; use step, user, model or kind").into()),
        }
    }
    Ok((metric, s))
}

pub(crate) fn parse_agg(s: &str) -> Option<Agg> {
    Some(match s {
        "avg" => Agg::Avg,
        "min" => Agg::Min,
        "max" => Agg::Max,
        "med" => Agg::Med,
        "rate" => Agg::Rate,
        "count" => Agg::Count,
        "value" => Agg::Value,
        _ => {
            let n: f64 = s.strip_prefix("p(")?.strip_suffix(')')?.trim().parse().ok()?;
            if !(0.0..=100.0).contains(&n) {
                return None;
            }
            Agg::Percentile(n)
        }
    })
}

/// A number, or for durations a number with a unit (bare numbers are milliseconds, as in k6).
pub(crate) fn parse_value(s: &str, duration: bool) -> Result<f64, ParseError> {
    let bad =
        || ParseError(format!("`{s}` is not a number{}", if duration { " or a duration like 500ms, 2s" } else { "" }));
    if let Ok(v) = s.parse::<f64>() {
        return if v.is_finite() { Ok(v) } else { Err(bad()) };
    }
    if !duration {
        return Err(bad());
    }
    let split = s.find(|c: char| c.is_ascii_alphabetic() || c == 'µ').ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "us" | "µs" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return Err(bad()),
    };
    Ok(n * scale)
}

#[cfg(test)]
mod tests;
