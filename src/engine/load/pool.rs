//! The open model's connections: a worker-local pool of transports, separate from the iterations in flight
//! (wrk2's `-c`, k6's preAllocatedVUs). Each user holds a [`Pooled`] handle, itself a [`Transport`], which
//! borrows a connection for one exchange and gives it back after, so 1,000 iterations in flight can share 50
//! connections. When every connection is lent, an exchange waits for one; that wait is time the request spent
//! in the generator after its arrival, so it counts in its latency and time to first byte (and so in the
//! corrected latency), and within its timeout. New connections are rate-limited per worker, so a target that
//! resets connections gets a trickle of reconnects, never a storm: the iterations wait (and arrivals are
//! dropped at `max_in_flight`) instead. A connection the server closed cleanly (`connection: close`, an idle
//! timeout) is reopened by its transport at once, as wrk2 does: never more connections than the pool's size
//! at a time, and every one counted in `open.connections.opened`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::client::{BodySink, Exchange, Failure, Reading, Request, Transport, TransportFactory};
use crate::metrics::ErrorKind;

/// Lowest refill of the connect budget, connections per second, whatever the pool's size.
const MIN_CONNECTS_PER_S: f64 = 10.0;

/// One worker's connections to the target.
pub struct Pool<F: TransportFactory> {
    factory: Rc<F>,
    idle: RefCell<Vec<F::Transport>>,
    /// One permit per connection: holding one is holding a connection (or the right to open one).
    permits: Semaphore,
    size: usize,
    /// Connections opened, and the most lent at once.
    opened: Cell<u64>,
    peak: Cell<usize>,
    budget: RefCell<Budget>,
}

/// A token bucket of new connections: the whole pool at once, then the pool's size per second.
struct Budget {
    tokens: f64,
    per_s: f64,
    at: Option<Instant>,
}

impl Budget {
    /// How long until a connection may be opened (zero: now, and the token is taken).
    fn take(&mut self, now: Instant, cap: f64) -> Duration {
        if let Some(at) = self.at {
            self.tokens = (self.tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_s).min(cap);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.per_s)
    }
}

impl<F: TransportFactory> Pool<F> {
    pub fn new(factory: Rc<F>, size: usize) -> Rc<Pool<F>> {
        let size = size.clamp(1, Semaphore::MAX_PERMITS);
        Rc::new(Pool {
            factory,
            idle: RefCell::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
            size,
            opened: Cell::new(0),
            peak: Cell::new(0),
            budget: RefCell::new(Budget {
                tokens: size as f64,
                per_s: (size as f64).max(MIN_CONNECTS_PER_S),
                at: None,
            }),
        })
    }

    /// A handle for one user.
    pub fn handle(self: &Rc<Self>) -> Pooled<F> {
        Pooled { pool: self.clone() }
    }

    /// Connections opened so far, and the most lent at once.
    pub fn stats(&self) -> (u64, u64) {
        (self.opened.get(), self.peak.get() as u64)
    }

    /// A connection for one exchange (an idle one, else a new one once the connect budget allows) and how
    /// long the budget made it wait; `None` when that wait would go beyond `limit`.
    async fn take(&self, limit: Duration) -> Option<(F::Transport, Duration, bool)> {
        if let Some(t) = self.idle.borrow_mut().pop() {
            return Some((t, Duration::ZERO, false));
        }
        let wait = self.budget.borrow_mut().take(Instant::now(), self.size as f64);
        if wait > limit {
            return None;
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
            // Its token came in while it slept; the refill counted it.
            self.budget.borrow_mut().tokens -= 1.0;
        }
        Some((self.factory.build(), wait, true))
    }

    /// Counts what one exchange opened: what the transport says it connected (a server that closes
    /// connections makes it reconnect by itself), else one for a transport built for it.
    fn count(&self, before: Option<u64>, after: Option<u64>, built: bool) {
        let opened = match (before, after) {
            (Some(b), Some(a)) => a.saturating_sub(b),
            _ => u64::from(built),
        };
        self.opened.set(self.opened.get() + opened);
    }
}

/// A user's way to the pool: every exchange borrows a connection.
pub struct Pooled<F: TransportFactory> {
    pool: Rc<Pool<F>>,
}

fn timed_out(what: &str, timeout: Duration) -> Failure {
    Failure { kind: ErrorKind::Timeout, message: format!("{what} within {timeout:?}"), bytes: 0 }
}

impl<F: TransportFactory> Transport for Pooled<F> {
    async fn exchange<S: BodySink>(
        &mut self,
        req: &Request,
        timeout: Duration,
        reading: Reading<'_, S>,
    ) -> Result<Exchange, Failure> {
        let pool = &*self.pool;
        // The clock is read only when something has to wait: the common case costs one permit.
        let (permit, since) = match pool.permits.try_acquire() {
            Ok(p) => (p, None),
            Err(_) => {
                let t0 = Instant::now();
                match tokio::time::timeout(timeout, pool.permits.acquire()).await {
                    Ok(Ok(p)) => (p, Some(t0)),
                    // The semaphore is never closed; a closed one reads as no connection in time.
                    _ => return Err(timed_out("no connection of the pool free", timeout)),
                }
            }
        };
        let lent = pool.size - pool.permits.available_permits();
        if lent > pool.peak.get() {
            pool.peak.set(lent);
        }
        let queued = since.map_or(Duration::ZERO, |t| t.elapsed());
        let Some((mut conn, budget_wait, built)) = pool.take(timeout.saturating_sub(queued)).await else {
            return Err(timed_out("no new connection allowed by the connect budget", timeout));
        };
        let waited = queued + budget_wait;
        let before = conn.connects();
        let result = conn.exchange(req, timeout.saturating_sub(waited), reading).await;
        pool.count(before, conn.connects(), built);
        let result = match result {
            Ok(mut ex) => {
                ex.latency += waited;
                ex.ttfb += waited;
                pool.idle.borrow_mut().push(conn);
                Ok(ex)
            }
            // A broken exchange leaves the connection in an unknown state: its slot opens a new one, within
            // the connect budget.
            Err(f) => Err(f),
        };
        drop(permit);
        result
    }
}

/// A run's transports with the open model's connection limit (`[load] connections`) attached: what the
/// command hands the engine when the scenario or `--connections` sets one.
#[derive(Clone)]
pub struct WithConnections<F> {
    pub factory: F,
    pub connections: Option<u32>,
}

impl<F: TransportFactory> TransportFactory for WithConnections<F> {
    type Transport = F::Transport;

    fn build(&self) -> F::Transport {
        self.factory.build()
    }

    fn prefix(&self) -> &str {
        self.factory.prefix()
    }

    fn host_header(&self) -> &http::HeaderValue {
        self.factory.host_header()
    }

    fn connections(&self) -> Option<u32> {
        self.connections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_budget_allows_the_pool_at_once_then_its_size_per_second() {
        let t0 = Instant::now();
        let mut b = Budget { tokens: 4.0, per_s: 4.0, at: None };
        for _ in 0..4 {
            assert_eq!(b.take(t0, 4.0), Duration::ZERO);
        }
        let wait = b.take(t0, 4.0);
        assert!(wait > Duration::from_millis(240) && wait <= Duration::from_millis(250), "{wait:?}");
        // Half a second later two more may open, never more than the pool after a long pause.
        let later = t0 + Duration::from_millis(500);
        assert_eq!(b.take(later, 4.0), Duration::ZERO);
        assert_eq!(b.take(later, 4.0), Duration::ZERO);
        assert!(b.take(later, 4.0) > Duration::ZERO);
        let much_later = t0 + Duration::from_secs(60);
        assert_eq!((0..4).filter(|_| b.take(much_later, 4.0).is_zero()).count(), 4);
        assert!(b.take(much_later, 4.0) > Duration::ZERO);
    }
}
