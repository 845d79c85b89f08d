//! Waiting for an arrival more precisely than tokio's timer. tokio's timer wheel ticks in whole milliseconds
//! and rounds every deadline up to the next tick, so arrivals would be released in bursts once a millisecond:
//! a schedule-lag floor of ~0.65 ms at any rate, and bursts that overrun `max_in_flight`. On Linux the last
//! stretch of each wait is a `timerfd` (one per worker, re-armed per wait) awaited through tokio's reactor:
//! epoll wakes on the fd as soon as the kernel's high-resolution timer fires, whatever tokio's granularity.
//! Elsewhere tokio's timer is kept, and the report says so.

use std::time::Duration;

use tokio::time::Instant;

/// An arrival due within this much is started at once: a wait that short costs more (a re-arm, a wake-up)
/// than it gains. This is also the pacing resolution the report states for the precise timer.
pub const EARLY: Duration = Duration::from_micros(50);
/// Waits longer than this sleep on tokio's timer first (cheap, no syscall per arrival), until this much
/// before the arrival: tokio rounds a deadline up to its next millisecond tick, so a 2 ms margin always
/// leaves the precise timer the last stretch.
const COARSE_MARGIN: Duration = Duration::from_millis(2);

/// How arrivals are waited for, as the report states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// `timerfd` or `tokio`.
    pub mechanism: &'static str,
    /// How finely an arrival can be placed, µs.
    pub micros: u64,
}

/// One worker's arrival timer.
pub struct ArrivalTimer {
    #[cfg(target_os = "linux")]
    fd: Option<linux::TimerFd>,
}

impl ArrivalTimer {
    /// The precise timer where the platform has one (and the process may create it), else tokio's. Must be
    /// called on the worker's thread, inside its runtime: the timer slack it lowers is the thread's.
    pub fn for_this_thread() -> ArrivalTimer {
        #[cfg(target_os = "linux")]
        {
            linux::lower_timer_slack();
            ArrivalTimer { fd: linux::TimerFd::new() }
        }
        #[cfg(not(target_os = "linux"))]
        {
            ArrivalTimer {}
        }
    }

    pub fn resolution(&self) -> Resolution {
        #[cfg(target_os = "linux")]
        if self.fd.is_some() {
            return Resolution { mechanism: "timerfd", micros: EARLY.as_micros() as u64 };
        }
        Resolution { mechanism: "tokio", micros: 1000 }
    }

    /// Returns at `at` (or at once when it is due within [`EARLY`]).
    pub async fn wait_until(&mut self, at: Instant) {
        let left = at.saturating_duration_since(Instant::now());
        if left <= EARLY {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            if left > COARSE_MARGIN {
                tokio::time::sleep_until(at - COARSE_MARGIN).await;
            }
            let left = at.saturating_duration_since(Instant::now());
            if left > EARLY {
                // A timer that cannot be armed or read falls back to tokio's for this wait.
                if fd.sleep(left).await.is_ok() {
                    return;
                }
                tokio::time::sleep_until(at).await;
            }
            return;
        }
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Duration;

    use tokio::io::unix::AsyncFd;

    /// The calling thread's timer slack, to 1 ns: the kernel otherwise may defer its wake-ups by 50 µs to
    /// batch them, which is most of a 20 µs arrival spacing.
    pub fn lower_timer_slack() {
        // SAFETY: PR_SET_TIMERSLACK takes an unsigned long and touches nothing but the calling thread.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
    }

    pub struct TimerFd(AsyncFd<OwnedFd>);

    impl TimerFd {
        /// `None` when the kernel refuses a timerfd (a sandbox) or there is no reactor to register it with.
        pub fn new() -> Option<TimerFd> {
            // SAFETY: plain syscall; the result is checked before use.
            let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
            if fd < 0 {
                return None;
            }
            // SAFETY: `fd` was just created and is owned by nothing else.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: the AsyncFd owns `owned`, which stays open (and the same timerfd) until it is dropped.
            unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }.ok().map(TimerFd)
        }

        /// Sleeps `d` on the kernel's high-resolution timer. Re-arming resets the expiry count, so a readiness
        /// left from before the re-arm reads as "not yet" and is waited past.
        pub async fn sleep(&self, d: Duration) -> io::Result<()> {
            let spec = libc::itimerspec {
                it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
                it_value: libc::timespec {
                    tv_sec: d.as_secs().try_into().unwrap_or(libc::time_t::MAX),
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                },
            };
            let raw = self.0.get_ref().as_raw_fd();
            // SAFETY: `raw` is a live timerfd and `spec` a valid itimerspec; the old value is not asked for.
            if unsafe { libc::timerfd_settime(raw, 0, &spec, std::ptr::null_mut()) } < 0 {
                return Err(io::Error::last_os_error());
            }
            loop {
                let mut guard = self.0.readable().await?;
                let read = guard.try_io(|fd| {
                    let mut expirations = 0u64;
                    // SAFETY: reads 8 bytes into a u64, the size a timerfd read requires.
                    let n = unsafe {
                        libc::read(fd.get_ref().as_raw_fd(), (&raw mut expirations).cast::<libc::c_void>(), 8)
                    };
                    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
                });
                match read {
                    Ok(result) => {
                        // Read and not re-armed, the timer cannot be readable: without this the next wait would
                        // first read the stale readiness (a wasted syscall per wait) before going to epoll.
                        guard.clear_ready();
                        return result;
                    }
                    // Readiness left from before the re-arm: the timer has not fired yet.
                    Err(_would_block) => continue,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_ends_at_its_time_not_before() {
        let mut p = ArrivalTimer::for_this_thread();
        #[cfg(target_os = "linux")]
        assert_eq!(p.resolution().mechanism, "timerfd");
        for micros in [0u64, 5, 150, 700, 2_500] {
            let at = Instant::now() + Duration::from_micros(micros);
            p.wait_until(at).await;
            // Never early by more than the stated resolution; how late is the scheduler's business.
            assert!(Instant::now() + EARLY >= at, "{micros} µs");
        }
    }
}
