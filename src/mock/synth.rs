//! Deterministic synthesis of everything a response varies by: ids, fault decisions and token text.
//!
//! Everything is a pure function of `(seed, request index)` so that two runs with the same seed see the
//! same failures and the same text, whatever the interleaving of concurrent requests.

/// Domain separators, so that the id, the fault draw and the token stream of one request are unrelated.
const ID_DOMAIN: u64 = 0x6964_5f64_6f6d_6169;
const FAULT_DOMAIN: u64 = 0x6661_756c_745f_646f;
const TEXT_DOMAIN: u64 = 0x7465_7874_5f64_6f6d;
pub(crate) const REASONING_DOMAIN: u64 = 0x7265_6173_6f6e_696e;
pub(crate) const TIER_DOMAIN: u64 = 0x7469_6572_5f64_6f6d;
pub(crate) const FAULT_KIND_DOMAIN: u64 = 0x6b69_6e64_5f64_6f6d;
pub(crate) const CALL_DOMAIN: u64 = 0x6361_6c6c_5f64_6f6d;
pub(crate) const ARGS_DOMAIN: u64 = 0x6172_6773_5f64_6f6d;
pub(crate) const TOOL_DOMAIN: u64 = 0x746f_6f6c_5f64_6f6d;
pub(crate) const USER_DOMAIN: u64 = 0x7573_6572_5f64_6f6d;
pub(crate) const TOKEN_DOMAIN: u64 = 0x746f_6b65_6e5f_646f;
pub(crate) const TOKEN_TAIL_DOMAIN: u64 = 0x7461_696c_5f64_6f6d;

/// Opening words carry no leading space, like the first token a real tokenizer emits.
const OPENERS: &[&str] = &["The", "A", "This", "Each", "Our", "Every"];

/// Later words carry their leading space, as BPE tokens do; none needs JSON escaping, which the
/// streaming path relies on to splice them into chunks unescaped.
const WORDS: &[&str] = &[
    " gateway",
    " routed",
    " the",
    " request",
    " to",
    " a",
    " model",
    " that",
    " answered",
    " quickly",
    " and",
    " streamed",
    " tokens",
    " back",
    " through",
    " proxy",
    " with",
    " low",
    " latency",
    " under",
    " load",
    " while",
    " metrics",
    " stayed",
    " stable",
    ".",
    ",",
    " server",
    " cache",
    " replied",
    " again",
    " today",
];

/// The splitmix64 finalizer: a bijection on `u64` with good avalanche, so distinct inputs never collide.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Keyed per-request draw. For a fixed seed and domain it is a bijection of `index` (xor with a constant,
/// then `mix64`), which is what makes response ids unique.
pub(crate) fn draw(seed: u64, domain: u64, index: u64) -> u64 {
    mix64(index ^ mix64(seed ^ domain))
}

/// The response id shared by all chunks of one response: `chatcmpl-` and 16 hex digits.
pub(crate) fn response_id(seed: u64, index: u64) -> String {
    // By hand: `format!` was a twentieth of a zero-delay answer's instructions.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let draw = draw(seed, ID_DOMAIN, index);
    let mut id = String::with_capacity(25);
    id.push_str("chatcmpl-");
    (0..16).rev().for_each(|i| id.push(char::from(HEX[((draw >> (i * 4)) & 0xf) as usize])));
    id
}

/// Whether request `index` is one of the injected failures.
pub(crate) fn should_fail(seed: u64, index: u64, error_rate: f64) -> bool {
    error_rate > 0.0 && unit(seed, FAULT_DOMAIN, index) < error_rate
}

/// A uniform draw in [0, 1): the top 53 bits give an f64 with every value exactly representable.
pub(crate) fn unit(seed: u64, domain: u64, index: u64) -> f64 {
    (draw(seed, domain, index) >> 11) as f64 / (1u64 << 53) as f64
}

/// The token stream of one response: a splitmix64 generator seeded from `(seed, index)`.
pub(crate) struct Tokens {
    state: u64,
    emitted: u32,
    remaining: u32,
}

impl Tokens {
    pub(crate) fn new(seed: u64, index: u64, count: u32) -> Self {
        Self::in_domain(seed, TEXT_DOMAIN, index, count)
    }

    /// A text unrelated to the answer's (reasoning, tool arguments, tool results) for the same request.
    pub(crate) fn in_domain(seed: u64, domain: u64, index: u64, count: u32) -> Self {
        Self { state: draw(seed, domain, index), emitted: 0, remaining: count }
    }
}

impl Iterator for Tokens {
    type Item = &'static str;

    fn next(&mut self) -> Option<&'static str> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let r = mix64(self.state);
        let vocab = if self.emitted == 0 { OPENERS } else { WORDS };
        self.emitted += 1;
        // Lemire's multiply-shift keeps the pick unbiased enough for text and avoids a division.
        let pick = ((u128::from(r as u32) * vocab.len() as u128) >> 32) as usize;
        vocab.get(pick).copied()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Tokens {}

/// Upper bound on the bytes of one token, for sizing buffers.
pub(crate) const MAX_TOKEN_LEN: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_needs_no_json_escaping_and_fits_the_buffer_bound() {
        for w in OPENERS.iter().chain(WORDS) {
            assert!(w.len() <= MAX_TOKEN_LEN, "{w:?}");
            assert!(!w.contains(['"', '\\']) && w.chars().all(|c| !c.is_control()));
        }
    }

    #[test]
    fn ids_are_unique_and_text_is_reproducible() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|i| response_id(3, i)).collect();
        assert_eq!(ids.len(), 10_000);
        let a: Vec<_> = Tokens::new(3, 5, 20).collect();
        let b: Vec<_> = Tokens::new(3, 5, 20).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 20);
        assert!(OPENERS.contains(&a[0]));
    }

    #[test]
    fn ids_are_the_draw_in_sixteen_hex_digits() {
        for (seed, index) in [(0, 0), (3, 1), (u64::MAX, u64::MAX), (7, 1 << 40)] {
            assert_eq!(response_id(seed, index), format!("chatcmpl-{:016x}", draw(seed, ID_DOMAIN, index)));
        }
    }

    #[test]
    fn fault_rate_is_roughly_honoured() {
        let fails = (0..10_000).filter(|&i| should_fail(1, i, 0.25)).count();
        assert!((2_000..3_000).contains(&fails), "{fails}");
        assert!(!(0..1000).any(|i| should_fail(1, i, 0.0)));
        assert!((0..1000).all(|i| should_fail(1, i, 1.0)));
    }
}
