//! How numbers read, in every renderer (terminal, HTML, Markdown, JUnit, progress): milliseconds, rates, costs,
//! fractions as percentages, values in their unit, deltas and tolerances, plot ticks. A renderer never formats a
//! measured number itself, so one metric reads the same in every output.

use crate::metrics::LatencySummary;
use crate::result::Delta;
use crate::result::Verdict;

/// Milliseconds with precision that matches their size: 0.42, 9.87, 93.2, 1180.
pub fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// One statistic of an optional latency summary in milliseconds, `-` when nothing was measured.
pub fn opt_ms(l: Option<&LatencySummary>, get: fn(&LatencySummary) -> f64) -> String {
    l.map_or("-".to_string(), |l| fmt_ms(get(l)))
}

/// A per-second rate as a table cell: 9.87, 1180.0.
pub fn fmt_rate(v: f64) -> String {
    if v < 100.0 { format!("{v:.2}") } else { format!("{v:.1}") }
}

/// A cost in USD as a table cell: `-` for nothing, more digits for fractions of a cent.
/// A cost that may leave out responses nothing priced: `unpriced` rather than a `-` that reads as $0.
pub fn fmt_priced(usd: f64, unpriced: u64) -> String {
    match (unpriced, usd == 0.0) {
        (0, _) => fmt_cost(usd),
        (n, true) => format!("unpriced ({n})"),
        (n, false) => format!("{} + {n} unpriced", fmt_cost(usd)),
    }
}

/// ` (N responses unpriced)` after a total cost that leaves them out; empty when none.
pub fn unpriced_note(unpriced: u64) -> String {
    if unpriced == 0 {
        String::new()
    } else {
        format!(" ({unpriced} responses unpriced: no gateway cost, no [pricing])")
    }
}

pub fn fmt_cost(usd: f64) -> String {
    if usd == 0.0 {
        "-".to_string()
    } else if usd < 0.01 {
        format!("{usd:.6}")
    } else {
        format!("{usd:.4}")
    }
}

/// A mean of small counts (steps per flow, tokens per second) to one decimal.
pub fn fmt_tenths(v: f64) -> String {
    format!("{v:.1}")
}

/// A run's length in seconds: `12.3s`.
pub fn fmt_secs(s: f64) -> String {
    format!("{s:.1}s")
}

/// A large mean (tokens per second on a card) without decimals.
pub fn fmt_whole(v: f64) -> String {
    format!("{v:.0}")
}

/// A fraction as a share of a whole: `12.5%`.
pub fn fmt_share(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// A count with its share: `3 (1.5%)`.
pub fn fmt_count_share(n: u64, fraction: f64) -> String {
    format!("{n} ({})", fmt_share(fraction))
}

/// A number in its unit, with the precision its size deserves; fractions (error rates) as percentages.
pub fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "ms" if v.abs() < 10.0 => format!("{v:.2} ms"),
        "ms" if v.abs() < 1000.0 => format!("{v:.1} ms"),
        "ms" => format!("{v:.0} ms"),
        "/s" => format!("{v:.1}/s"),
        "%" => format!("{:.2}%", v * 100.0),
        "USD" => format!("${v:.4}"),
        _ if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    }
}

/// What a threshold observed, in the threshold's unit; a bare rate as the plain fraction the user wrote.
pub fn fmt_observed(v: &Verdict) -> String {
    match v.observed {
        Some(o) if v.unit.is_empty() && v.threshold.contains("rate") && o <= 1.0 => {
            let plain = format!("{o:.4}");
            plain.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        Some(o) => fmt_value(o, &v.unit),
        None => "no data".into(),
    }
}

/// Error rates and other fractions are shown as percentages.
pub fn delta_unit(d: &Delta) -> &str {
    if d.stat == "rate" { "%" } else { &d.unit }
}

/// One side of a comparison (baseline or current) in the delta's unit, `-` when absent.
pub fn fmt_side(d: &Delta, v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| fmt_value(v, delta_unit(d)))
}

/// `+12.3 ms (+11.6%)`.
pub fn fmt_delta(d: &Delta) -> String {
    let u = delta_unit(d);
    match d.delta {
        Some(x) => {
            // A change too small to show is no change: never "-0.00 ms".
            let shown = fmt_value(x.abs(), u);
            let zero = shown.trim_start_matches(['0', '.']).chars().next().is_none_or(|c| !c.is_ascii_digit());
            let sign = if zero || x >= 0.0 { "+" } else { "-" };
            let pct = d.delta_pct.map_or(String::new(), |p| format!(" ({p:+.1}%)"));
            format!("{sign}{shown}{pct}")
        }
        None => "-".into(),
    }
}

/// The tolerance and the noise band: `±10.6 ms · noise ±0.4 ms`.
pub fn fmt_allowed(d: &Delta) -> String {
    let u = delta_unit(d);
    let noise = d.noise.map_or(String::new(), |n| format!(" · noise ±{}", fmt_value(n, u)));
    format!("{}{noise}", fmt_value(d.allowed, u))
}

/// A plot's tick label with the precision its size deserves: 0.25, 2.5, 25, 250.
pub fn fmt_tick(v: f64) -> String {
    let s = if v == 0.0 {
        return "0".into();
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}
