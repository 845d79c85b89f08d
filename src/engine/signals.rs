//! SIGINT, SIGTERM and SIGHUP all stop a run the same way (Kubernetes, CI runners and `timeout` send SIGTERM,
//! a closed terminal SIGHUP): the first stops gracefully, the second at once, both keep the report. A third
//! exits on the spot without a report, the way out if something is stuck where no stop reaches it.
//!
//! The handlers only count, in atomics (async-signal-safe), so a signal that arrives during setup, between the
//! levels of a sweep or while the report is written is never lost: the engine reads the count when it runs.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use super::error::EngineError;

static FIRST: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicU32 = AtomicU32::new(0);

/// A signal that stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
    Hup,
}

impl Signal {
    pub fn number(self) -> i32 {
        match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
            Signal::Hup => libc::SIGHUP,
        }
    }

    /// The report's `stop_reason`; Ctrl-C keeps the name it always had.
    pub fn stop_reason(self) -> &'static str {
        match self {
            Signal::Int => "interrupted",
            Signal::Term => "sigterm",
            Signal::Hup => "sighup",
        }
    }

    /// As `kill -l` names it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
        }
    }

    fn from_number(n: i32) -> Option<Signal> {
        [Signal::Int, Signal::Term, Signal::Hup].into_iter().find(|s| s.number() == n)
    }
}

/// Replaces the default action (die at once, no report) of the three signals; idempotent.
/// A failure is kept, so every call reports it, not only the first.
pub fn install() -> Result<(), EngineError> {
    static INSTALLED: OnceLock<Result<(), EngineError>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let mut result = Ok(());
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                // SAFETY: the action only touches atomics and may call `_exit`, all async-signal-safe.
                if let Err(e) = unsafe { signal_hook_registry::register(sig, move || on_signal(sig)) } {
                    result = Err(EngineError::Signals(format!("cannot handle signal {sig}: {e}")));
                }
            }
            result
        })
        .clone()
}

fn on_signal(sig: i32) {
    let _ = FIRST.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    if COUNT.fetch_add(1, Ordering::SeqCst) >= 2 {
        // SAFETY: `_exit` is async-signal-safe; nothing is left to clean up that the kernel does not.
        unsafe { libc::_exit(128 + sig) }
    }
}

/// The first stop signal received (if any) and how many arrived so far.
pub fn received() -> (Option<Signal>, u32) {
    let n = COUNT.load(Ordering::SeqCst);
    (Signal::from_number(FIRST.load(Ordering::SeqCst)), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_match() {
        for s in [Signal::Int, Signal::Term, Signal::Hup] {
            assert_eq!(Signal::from_number(s.number()), Some(s));
        }
        assert_eq!(Signal::Term.number() + 128, 143);
        assert_eq!(Signal::Hup.number() + 128, 129);
        assert_eq!(Signal::Int.stop_reason(), "interrupted");
        assert_eq!(Signal::from_number(libc::SIGKILL), None);
    }
}
