//! What the OS says about the host's health over a run, read at its start and end: CPU pressure
//! (`/proc/pressure/cpu`), steal (`/proc/stat`) and the load average (`/proc/loadavg`). A file the kernel does
//! not offer (macOS, a kernel without PSI, a container hiding it) is a figure left out, never an error. The
//! parsers take the files' text, so they are tested on fixtures.

use std::time::Instant;

use crate::metrics::Hist;
use crate::result::{Environment, HiccupSummary};

/// The counters at one instant; each `None` where the file is missing or unreadable.
#[derive(Debug, Clone, Copy)]
pub struct HostReading {
    at: Instant,
    /// `some total=` of `/proc/pressure/cpu`, µs.
    pressure_us: Option<u64>,
    /// (steal, all) jiffies of the `cpu` line of `/proc/stat`.
    jiffies: Option<(u64, u64)>,
}

impl HostReading {
    pub fn now() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        HostReading {
            at: Instant::now(),
            pressure_us: read("/proc/pressure/cpu").as_deref().and_then(parse_pressure_some_us),
            jiffies: read("/proc/stat").as_deref().and_then(parse_stat_steal),
        }
    }
}

/// The OS figures of the run between `start` and `end`: pressure and steal as deltas, load at the end.
fn os_figures(start: &HostReading, end: &HostReading, loadavg: Option<&str>, cores: u32) -> OsFigures {
    let wall_us = end.at.saturating_duration_since(start.at).as_micros() as f64;
    let cpu_pressure_pct = match (start.pressure_us, end.pressure_us) {
        (Some(a), Some(b)) if wall_us > 0.0 && b >= a => Some(((b - a) as f64 / wall_us * 100.0).min(100.0)),
        _ => None,
    };
    let steal_pct = match (start.jiffies, end.jiffies) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 && s1 >= s0 => Some((s1 - s0) as f64 / (t1 - t0) as f64 * 100.0),
        _ => None,
    };
    let load_per_core = loadavg.and_then(parse_loadavg_1m).map(|l| l / f64::from(cores.max(1)));
    OsFigures { cpu_pressure_pct, steal_pct, load_per_core }
}

struct OsFigures {
    cpu_pressure_pct: Option<f64>,
    steal_pct: Option<f64>,
    load_per_core: Option<f64>,
}

/// The run's `environment`: the generator's probe (`hiccup`, µs, with each second's worst in ms), the embedded
/// mock's probe if there was one, and the OS figures since `start`, judged by `result::Environment::judge`.
pub fn environment(start: &HostReading, hiccup: &Hist, per_second: &[f64], mock: Option<&Hist>) -> Environment {
    let end = HostReading::now();
    let cores = cores();
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok();
    let os = os_figures(start, &end, loadavg.as_deref(), cores);
    judged(hiccup, per_second, mock, &os, cores)
}

/// The `environment` of a run rebuilt from its journal: the probe's seconds only, since the OS counters of a
/// process that died cannot be read afterwards.
pub fn probe_only(hiccup: &Hist, per_second: &[f64]) -> Environment {
    let none = OsFigures { cpu_pressure_pct: None, steal_pct: None, load_per_core: None };
    judged(hiccup, per_second, None, &none, cores())
}

fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

fn judged(hiccup: &Hist, per_second: &[f64], mock: Option<&Hist>, os: &OsFigures, cores: u32) -> Environment {
    let interval_ms = crate::background::HICCUP_INTERVAL.as_secs_f64() * 1000.0;
    let mut env = Environment {
        hiccup: HiccupSummary::of(interval_ms, hiccup),
        hiccup_per_second: per_second.to_vec(),
        cpu_pressure_pct: os.cpu_pressure_pct,
        steal_pct: os.steal_pct,
        load_per_core: os.load_per_core,
        cores,
        mock_hiccup: mock.filter(|h| !h.is_empty()).map(|h| HiccupSummary::of(interval_ms, h)),
        ..Environment::default()
    };
    env.judge();
    env
}

/// `some ... total=N` of a PSI file, µs.
pub fn parse_pressure_some_us(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace().find_map(|f| f.strip_prefix("total="))?.parse().ok()
}

/// (steal, all) jiffies of the aggregate `cpu` line: user nice system idle iowait irq softirq steal (guest time
/// is already inside user and nice, so it is not added again).
pub fn parse_stat_steal(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let steal = *fields.get(7)?;
    Some((steal, fields.iter().sum()))
}

/// The one-minute load average.
pub fn parse_loadavg_1m(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok().filter(|l: &f64| l.is_finite() && *l >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PSI: &str =
        "some avg10=12.50 avg60=3.10 avg300=0.80 total=2500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    const STAT: &str = "cpu  100 5 50 800 10 1 2 32 7 0\ncpu0 50 2 25 400 5 0 1 16 3 0\nintr 1 2 3\n";

    #[test]
    fn the_readers_parse_the_kernels_text() {
        assert_eq!(parse_pressure_some_us(PSI), Some(2_500_000));
        assert_eq!(parse_stat_steal(STAT), Some((32, 1000)));
        assert_eq!(parse_loadavg_1m("3.42 2.10 1.00 5/321 9876\n"), Some(3.42));
        for bad in ["", "full total=3\n", "some avg10=1.0\n", "some total=x\n"] {
            assert_eq!(parse_pressure_some_us(bad), None, "{bad:?}");
        }
        for bad in ["", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu a b c d e f g h\n"] {
            assert_eq!(parse_stat_steal(bad), None, "{bad:?}");
        }
        for bad in ["", "nan 1 1", "-1 0 0", "x"] {
            assert_eq!(parse_loadavg_1m(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn figures_are_deltas_over_the_run_and_absent_files_are_none() {
        let t0 = Instant::now();
        let start = HostReading { at: t0, pressure_us: Some(1_000_000), jiffies: Some((10, 1000)) };
        let end =
            HostReading { at: t0 + Duration::from_secs(10), pressure_us: Some(3_500_000), jiffies: Some((60, 2000)) };
        let f = os_figures(&start, &end, Some("3.0 1 1 1/1 1"), 2);
        assert!((f.cpu_pressure_pct.unwrap() - 25.0).abs() < 1e-9);
        assert!((f.steal_pct.unwrap() - 5.0).abs() < 1e-9);
        assert!((f.load_per_core.unwrap() - 1.5).abs() < 1e-9);
        let none = HostReading { at: t0, pressure_us: None, jiffies: None };
        let f = os_figures(&none, &HostReading { at: t0 + Duration::from_secs(1), ..none }, None, 2);
        assert_eq!((f.cpu_pressure_pct, f.steal_pct, f.load_per_core), (None, None, None));
        // A counter that went backwards (a reset, a different namespace) is no figure, not a negative one.
        let f = os_figures(&end, &HostReading { at: t0 + Duration::from_secs(20), ..start }, None, 0);
        assert_eq!((f.cpu_pressure_pct, f.steal_pct), (None, None));
    }
}
