//! Live progress on stderr: an indicatif line on a terminal, a plain line every few seconds otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::format::fmt_ms;
use crate::engine::Progress;

pub struct ProgressDisplay {
    bar: Option<ProgressBar>,
    last_plain: Option<Instant>,
    plain_every: Duration,
}

impl ProgressDisplay {
    pub fn new(planned: Option<Duration>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let len = planned.map_or(0, |d| d.as_secs().max(1));
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(4));
            let template = if planned.is_some() {
                "{spinner} [{elapsed_precise}] {bar:24} {pos}/{len}s {msg}"
            } else {
                "{spinner} [{elapsed_precise}] {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        ProgressDisplay { bar, last_plain: None, plain_every: Duration::from_secs(5) }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn line(p: &Progress, gate: Option<(usize, usize)>) -> String {
    let gate = match gate {
        Some((0, n)) => format!(" · thresholds {n}/{n} ok"),
        Some((failing, n)) => format!(" · thresholds {failing}/{n} FAILING"),
        None => String::new(),
    };
    format!(
        "users {} · {:.1} req/s · p95 {} ms · {} requests · {} errors{gate}",
        p.users,
        p.rps,
        p.p95_ms.map_or("-".to_string(), fmt_ms),
        p.requests,
        p.failures
    )
}

impl ProgressDisplay {
    /// One second of the run; `gate` is (failing, total) thresholds so far when the run has any.
    pub fn update(&mut self, p: &Progress, gate: Option<(usize, usize)>) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(p.elapsed.as_secs());
                bar.set_message(line(p, gate));
            }
            None => {
                if self.last_plain.is_none_or(|t| t.elapsed() >= self.plain_every) {
                    self.last_plain = Some(Instant::now());
                    let total = p.planned.map_or(String::new(), |d| format!("/{}s", d.as_secs()));
                    super::print_note(&format!("[{:>4}s{total}] {}", p.elapsed.as_secs(), line(p, gate)));
                }
            }
        }
    }
}
