//! Execution segments, k6's arithmetic (`lib/execution_segment.go`): a shard owns the part `(from, to]` of the
//! whole run, the shards' segments chain into a sequence covering `(0, 1]`, and every countable thing of the run
//! (users, iterations, open-model arrivals, feeder rows) is split by global index into one stripe per segment.
//!
//! Exact by construction: fractions are integers (no floating point), the stripes partition the indices, so the
//! shares of any total add up to it, and any prefix of the indices is split in proportion to the segments within
//! one item. k6 picks each index for the first (largest) segment whose turn has come; we pick, among the
//! segments whose turn has come, the one whose next item is due soonest (earliest deadline first), which keeps
//! every prefix within one item of its share for any sequence (checked by the property tests below).

use std::fmt;
use std::sync::Arc;

/// Denominators and the sequence's common denominator stay at most this: the stripe pattern is computed over
/// one period of that many indices.
pub const MAX_DENOMINATOR: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SegmentError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, SegmentError> {
    Err(SegmentError(msg.into()))
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A fraction in [0, 1], reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frac {
    num: u64,
    den: u64,
}

impl Frac {
    pub const ZERO: Frac = Frac { num: 0, den: 1 };
    pub const ONE: Frac = Frac { num: 1, den: 1 };

    /// `num/den` reduced; `None` unless 0 ≤ num/den ≤ 1 with den ≤ `MAX_DENOMINATOR` once reduced.
    pub fn new(num: u64, den: u64) -> Option<Frac> {
        if den == 0 || num > den {
            return None;
        }
        let g = gcd(num, den).max(1);
        let f = Frac { num: num / g, den: den / g };
        (f.den <= MAX_DENOMINATOR).then_some(f)
    }

    /// `1/4`, `0.25`, `25%`, `0` or `1`.
    pub fn parse(s: &str) -> Option<Frac> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            return Frac::new(p.trim().parse().ok()?, 100);
        }
        if let Some((n, d)) = s.split_once('/') {
            return Frac::new(n.trim().parse().ok()?, d.trim().parse().ok()?);
        }
        let (int, dec) = s.split_once('.').unwrap_or((s, ""));
        if dec.len() > 6 || !dec.bytes().all(|b| b.is_ascii_digit()) || (int.is_empty() && dec.is_empty()) {
            return None;
        }
        let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let den = 10u64.pow(dec.len() as u32);
        let frac: u64 = if dec.is_empty() { 0 } else { dec.parse().ok()? };
        Frac::new(int.checked_mul(den)?.checked_add(frac)?, den)
    }

    fn lt(self, o: Frac) -> bool {
        u128::from(self.num) * u128::from(o.den) < u128::from(o.num) * u128::from(self.den)
    }

    /// round(v · self), halves up, as k6's `roundUp`.
    fn round_of(self, v: u64) -> u64 {
        let x = u128::from(v) * u128::from(self.num);
        let d = u128::from(self.den);
        let (q, r) = (x / d, x % d);
        (q + u128::from(2 * r >= d)) as u64
    }
}

impl fmt::Display for Frac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 { write!(f, "{}", self.num) } else { write!(f, "{}/{}", self.num, self.den) }
    }
}

/// The part `(from, to]` of the run one process does, 0 ≤ from < to ≤ 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub from: Frac,
    pub to: Frac,
}

impl Segment {
    pub const WHOLE: Segment = Segment { from: Frac::ZERO, to: Frac::ONE };

    pub fn new(from: Frac, to: Frac) -> Result<Segment, SegmentError> {
        if !from.lt(to) {
            return fail(format!("segment {from}:{to} is empty: its start must be below its end, e.g. 0:1/4"));
        }
        Ok(Segment { from, to })
    }

    /// `FROM:TO` (k6 `--execution-segment`), or `TO` alone for `0:TO`; each side `1/4`, `0.25` or `25%`.
    pub fn parse(s: &str) -> Result<Segment, SegmentError> {
        let (from, to) = s.split_once(':').unwrap_or(("0", s));
        let side = |x: &str| {
            Frac::parse(x).ok_or_else(|| {
                SegmentError(format!(
                    "`{x}` in segment `{s}` is not a fraction from 0 to 1: write 1/4, 0.25 or 25% (denominators up to {MAX_DENOMINATOR})"
                ))
            })
        };
        Segment::new(side(from)?, side(to)?)
    }

    /// k6's `ExecutionSegment.Scale`: round(v·to) − round(v·from). Summed over a sequence it telescopes to v;
    /// the engine uses the stripe count instead (`Stripe::scale`), which has the same sum and also grows with v.
    pub fn scale_rounded(&self, v: u64) -> u64 {
        self.to.round_of(v) - self.from.round_of(v)
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.from, self.to)
    }
}

/// Segments chained end to start from 0 to 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence(Vec<Segment>);

impl Sequence {
    /// `n` equal segments.
    pub fn even(n: u64) -> Result<Sequence, SegmentError> {
        if n == 0 || n > MAX_DENOMINATOR {
            return fail(format!("a shard count must be from 1 to {MAX_DENOMINATOR}, not {n}"));
        }
        let b = |i: u64| Frac::new(i, n).unwrap_or(Frac::ONE);
        Ok(Sequence((0..n).map(|i| Segment { from: b(i), to: b(i + 1) }).collect()))
    }

    /// k6's format: the boundaries, comma-separated, e.g. `0,1/4,1/2,1`; a missing leading 0 or trailing 1 is
    /// added.
    pub fn parse(s: &str) -> Result<Sequence, SegmentError> {
        let mut bounds = s
            .split(',')
            .map(|x| {
                Frac::parse(x).ok_or_else(|| {
                    SegmentError(format!("`{x}` in segment sequence `{s}` is not a fraction from 0 to 1: e.g. 0,1/4,1"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if bounds.first() != Some(&Frac::ZERO) {
            bounds.insert(0, Frac::ZERO);
        }
        if bounds.last() != Some(&Frac::ONE) {
            bounds.push(Frac::ONE);
        }
        let segments =
            bounds.windows(2).map(|w| Segment::new(w[0], w[1])).collect::<Result<Vec<_>, _>>().map_err(|_| {
                SegmentError(format!("segment sequence `{s}` must rise strictly from 0 to 1, e.g. 0,1/3,1"))
            })?;
        Sequence::of(segments)
    }

    /// The segment and the pieces around it that make the sequence whole (k6's
    /// `GetFilledExecutionSegmentSequence`).
    pub fn around(segment: Segment) -> Sequence {
        let mut v = Vec::new();
        if segment.from != Frac::ZERO {
            v.push(Segment { from: Frac::ZERO, to: segment.from });
        }
        v.push(segment);
        if segment.to != Frac::ONE {
            v.push(Segment { from: segment.to, to: Frac::ONE });
        }
        Sequence(v)
    }

    fn of(segments: Vec<Segment>) -> Result<Sequence, SegmentError> {
        let chained = segments.windows(2).all(|w| w[0].to == w[1].from);
        let whole = segments.first().is_some_and(|s| s.from == Frac::ZERO)
            && segments.last().is_some_and(|s| s.to == Frac::ONE);
        if !chained || !whole {
            return fail("a segment sequence must cover 0 to 1 without gaps");
        }
        Ok(Sequence(segments))
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn position(&self, segment: &Segment) -> Option<usize> {
        self.0.iter().position(|s| s == segment)
    }

    /// The least common denominator of the segments' lengths: the period of the stripes.
    fn lcd(&self) -> Option<u64> {
        self.0.iter().try_fold(1u64, |acc, s| {
            let den = len(s).1;
            let l = acc / gcd(acc, den) * den;
            (l <= MAX_DENOMINATOR).then_some(l)
        })
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bounds = vec![Frac::ZERO.to_string()];
        bounds.extend(self.0.iter().map(|s| s.to.to_string()));
        f.write_str(&bounds.join(","))
    }
}

/// A segment's length `(num, den)`, reduced.
fn len(s: &Segment) -> (u64, u64) {
    let den = s.from.den / gcd(s.from.den, s.to.den) * s.to.den;
    let num = s.to.num * (den / s.to.den) - s.from.num * (den / s.from.den);
    let g = gcd(num, den).max(1);
    (num / g, den / g)
}

/// The global indices one segment of a sequence owns (k6's `ExecutionTuple` with its striped offsets): a pattern
/// of `owned.len()` positions that repeats every `period` indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripe {
    period: u64,
    owned: Arc<[u64]>,
}

impl Stripe {
    /// Every index (one process, no sharding).
    pub fn whole() -> Stripe {
        Stripe { period: 1, owned: Arc::from([0u64]) }
    }

    /// Segment `index` of `seq`.
    pub fn new(seq: &Sequence, index: usize) -> Result<Stripe, SegmentError> {
        let Some(period) = seq.lcd() else {
            return fail(format!(
                "segment sequence `{seq}` is too fine: its lengths' common denominator exceeds {MAX_DENOMINATOR}; use simpler fractions"
            ));
        };
        if index >= seq.0.len() {
            return fail(format!("segment {index} is not in the sequence `{seq}`"));
        }
        // Each segment's items per period: its length over the common denominator.
        let weights: Vec<u64> = seq.0.iter().map(len).map(|(n, d)| n * (period / d)).collect();
        let mut counts = vec![0u64; weights.len()];
        let mut owned = Vec::with_capacity(weights[index] as usize);
        for i in 0..period {
            let mut best: Option<usize> = None;
            for (s, (&c, &w)) in counts.iter().zip(&weights).enumerate() {
                // Its turn has come: it has no more than its share of the indices before i.
                if u128::from(c) * u128::from(period) > u128::from(i) * u128::from(w) {
                    continue;
                }
                // Earliest deadline (c+1)/w first; ties to the larger segment, then the earlier one.
                let better = best.is_none_or(|b| {
                    let (lhs, rhs) =
                        (u128::from(c + 1) * u128::from(weights[b]), u128::from(counts[b] + 1) * u128::from(w));
                    lhs < rhs || (lhs == rhs && w > weights[b])
                });
                if better {
                    best = Some(s);
                }
            }
            // Some segment's turn has always come (their shares add up to 1); index 0 is a harmless fallback.
            let s = best.unwrap_or(0);
            counts[s] += 1;
            if s == index {
                owned.push(i);
            }
        }
        Ok(Stripe { period, owned: owned.into() })
    }

    /// Whether global index `i` belongs to this stripe.
    pub fn contains(&self, i: u64) -> bool {
        self.owned.binary_search(&(i % self.period)).is_ok()
    }

    /// How many of the indices `0..v` belong to this stripe: the segment's share of a total `v`. Over a
    /// sequence the shares add up to `v` exactly.
    pub fn scale(&self, v: u64) -> u64 {
        let per = self.owned.len() as u64;
        (v / self.period) * per + self.owned.partition_point(|&p| p < v % self.period) as u64
    }

    /// The global index of this stripe's `k`-th item (0-based).
    pub fn nth(&self, k: u64) -> u64 {
        let per = self.owned.len() as u64;
        match self.owned.get(k.checked_rem(per).unwrap_or(0) as usize) {
            Some(&p) => (k / per).saturating_mul(self.period).saturating_add(p),
            None => u64::MAX,
        }
    }

    /// The items per period and the period: the stripe's exact share `per / period`.
    pub fn share(&self) -> (u64, u64) {
        (self.owned.len() as u64, self.period)
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
