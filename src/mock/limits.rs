//! Per-key token buckets for `rate_limit`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::MAX_ENTRIES;
use super::config::RateLimit;

/// What the limiter decided for one request.
pub(super) enum Verdict {
    Allowed,
    /// Retry after this long (the time until the bucket holds a whole token again).
    Limited(Duration),
    /// Too many distinct keys are being tracked.
    Full,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub(super) struct Limiter {
    limit: Option<RateLimit>,
    /// Keyed by a hash of the key, not the key: API keys can be long, and a 64-bit SipHash collision among
    /// a million keys (odds about 1 in 30 million) would only make two keys share a bucket.
    buckets: Mutex<HashMap<u64, Bucket>>,
}

impl Limiter {
    pub(super) fn new(limit: Option<RateLimit>) -> Self {
        Self { limit, buckets: Mutex::new(HashMap::new()) }
    }

    pub(super) fn check(&self, key: &[u8]) -> Verdict {
        let Some(limit) = self.limit else { return Verdict::Allowed };
        // Guard the arithmetic against a config built in code without `validate`.
        let rate = if limit.requests_per_second.is_finite() && limit.requests_per_second > 0.0 {
            limit.requests_per_second
        } else {
            f64::MIN_POSITIVE
        };
        let burst = f64::from(limit.burst.max(1));
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let key = hasher.finish();
        let now = Instant::now();

        // A poisoned lock only means another request panicked mid-update; the buckets stay usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= MAX_ENTRIES {
            // A bucket that has refilled is indistinguishable from a new one, so it can go.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_ENTRIES {
                return Verdict::Full;
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: burst, updated: now });
        let refilled = bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * rate;
        bucket.tokens = refilled.min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Verdict::Allowed
        } else {
            let wait = (1.0 - bucket.tokens) / rate;
            Verdict::Limited(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a paused clock: a busy machine's pause between two checks would otherwise refill the bucket a little.
    #[tokio::test(start_paused = true)]
    async fn buckets_hold_a_burst_refill_over_time_and_are_per_key() {
        let limiter = Limiter::new(Some(RateLimit { requests_per_second: 20.0, burst: 3 }));
        for _ in 0..3 {
            assert!(matches!(limiter.check(b"a"), Verdict::Allowed));
        }
        let Verdict::Limited(wait) = limiter.check(b"a") else { panic!("not limited") };
        assert_eq!(wait, Duration::from_millis(50), "a whole token at 20/s");
        assert!(matches!(limiter.check(b"b"), Verdict::Allowed));
        tokio::time::sleep(wait).await;
        assert!(matches!(limiter.check(b"a"), Verdict::Allowed));
        assert!(matches!(limiter.check(b"a"), Verdict::Limited(_)));
        assert!(matches!(Limiter::new(None).check(b"a"), Verdict::Allowed));
    }
}
