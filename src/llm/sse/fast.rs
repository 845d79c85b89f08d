//! A one-pass reader for the chunk shape nearly every stream sends: an object of strings, numbers and nulls
//! whose `choices` carry content deltas. serde_json's derived visitors cost about half a microsecond per
//! chunk (a key is matched, a string validated and a parsed choice moved through several `Option` layers),
//! which made a 16-token stream cost 1.7× a plain request. This reader gives up (`None`) at anything it does
//! not read itself: bytes that are not UTF-8, an escape or control character in a string, a tool-call delta,
//! a usage `cost`, an error, a duplicate known key, a value of an unexpected type, nesting deeper than
//! `MAX_DEPTH`, trailing bytes. serde_json then reads the payload exactly as before, so an unusual chunk costs
//! what every chunk used to and a malformed one gets serde_json's own error. It never accepts a payload
//! serde_json would reject or read differently: in test and fuzz builds every chunk it accepts is read again
//! by serde_json and compared.

use std::borrow::Cow;

use super::wire::{Choice, Choices, Chunk, Delta, Field, Text, Tokens, UsageDetails, UsageWire};

mod plain;
mod prefix;
pub(super) use plain::{Plain, repeat};
use plain::{plain_choices, utf8};
pub(super) use prefix::Prefix;
use prefix::{Kept, MAX_PREFIX, MIN_PREFIX};

/// Unknown values nested deeper than this are left to serde_json (its own limit is 128).
const MAX_DEPTH: u32 = 32;

/// The chunk in `data`, or `None` when serde_json must read it.
#[cfg(test)]
pub(super) fn chunk(data: &[u8]) -> Option<Chunk<'_>> {
    let mut c = Chunk::EMPTY;
    read_into(data, &mut c, &mut Prefix::default()).map(|()| c)
}

/// Reads the chunk in `data` into `c`, which starts as `Chunk::EMPTY`; `None` when serde_json must read it
/// (`c` then holds a partial read, to be overwritten). Filled in place: a chunk is about 340 bytes, and
/// returning it, its choice and its delta by value spent 5 % of a 16-token stream's CPU in memcpy. `prefix`
/// is the stream's remembered prefix: used when `data` starts with it, replaced by `data`'s own otherwise.
pub(super) fn read_into<'a>(data: &'a [u8], c: &mut Chunk<'a>, prefix: &mut Prefix) -> Option<()> {
    let mut seen = Seen::default();
    let mut lead = Lead::default();
    if let Some((len, id, model, new_id)) = prefix.repeated_in(data) {
        // The prefix ends with an ASCII comma, so the payload is valid UTF-8 exactly when the prefix and the
        // rest each are, and the rest is read on its own: in the common case only its strings are checked.
        let (head, rest) = data.split_at_checked(len)?;
        // SAFETY: `head` is `prefix.text` (a `String`) byte for byte but for the id's text, which
        // `repeated_in` checked as UTF-8 and which lies between two ASCII quotes, so `head` is valid UTF-8.
        // Checking it again was 7 % of a 16-token stream's instructions.
        let head = unsafe { std::str::from_utf8_unchecked(head) };
        if new_id {
            // A new response: its own id is what the rest of its chunks repeat.
            prefix.learn(head, id, model);
        }
        id.read(head, &mut seen.id, &mut c.id)?;
        model.read(head, &mut seen.model, &mut c.model)?;
        return after_prefix(rest, c, &mut seen, &mut lead);
    }
    // Validated once, whole: a string between two ASCII quotes of valid UTF-8 is valid UTF-8 itself, so keys,
    // kept strings and skipped ones need no check of their own. A payload that is not UTF-8 is serde_json's.
    let mut r = Reader { s: std::str::from_utf8(data).ok()?, b: data, i: 0 };
    r.expect(b'{')?;
    r.chunk(c, &mut seen, &mut lead)?;
    r.at_end()?;
    if lead.end >= MIN_PREFIX && lead.end <= MAX_PREFIX {
        prefix.learn(r.s.get(..lead.end)?, lead.kept.0, lead.kept.1);
    }
    Some(())
}

/// The members after a reused prefix, with the common single choice matched as a whole where it is one.
fn after_prefix<'a>(rest: &'a [u8], c: &mut Chunk<'a>, seen: &mut Seen, lead: &mut Lead) -> Option<()> {
    let Some((plain, text, end)) = plain_choices(rest) else {
        let mut r = Reader { s: std::str::from_utf8(rest).ok()?, b: rest, i: 0 };
        r.members(c, seen, lead)?;
        return r.at_end();
    };
    // The prefix holds no `choices`, so this is its only occurrence.
    let first = plain.choice(utf8(text)?);
    c.choices = Field { present: true, value: Some(Choices { first: Some(first), others: Tokens::default() }) };
    let tail = rest.get(end..)?;
    if tail == b"}" {
        return Some(()); // the chunk ends with the array, as nearly every one does
    }
    let mut r = Reader { s: std::str::from_utf8(tail).ok()?, b: tail, i: 0 };
    match r.next()? {
        b',' => r.members(c, seen, lead)?,
        b'}' => {}
        _ => return None,
    }
    r.at_end()
}

/// The chunk's known top-level keys already read (a second one is serde's "duplicate field").
#[derive(Default)]
struct Seen {
    id: bool,
    model: bool,
}

/// While a chunk is read in full: how far its leading run of prefix-safe members goes (`end`, just past the
/// comma after the last of them; 0 when none) and what the members before `end` kept.
#[derive(Default)]
struct Lead {
    end: usize,
    /// `id` and `model` as the members before `end` left them.
    kept: (Kept, Kept),
    /// What the run has kept so far, the member just read included (it is in the prefix once its comma is).
    reading: (Kept, Kept),
    /// Still in the run; false once another member was read (or when reading after a reused prefix).
    open: bool,
}

struct Reader<'a> {
    /// The payload, valid UTF-8, and its bytes.
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// Marks a known key as seen; `None` the second time.
fn once(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

/// Where a string's text stops in `s`: its closing quote, a backslash or a control character. Eight bytes
/// at a time (the has-zero-byte trick serde_json uses too); the lowest flagged byte is always a true one.
fn string_end(s: &[u8]) -> Option<usize> {
    const LO: u64 = u64::from_ne_bytes([1; 8]);
    const HI: u64 = LO << 7;
    let mut at = 0;
    while let Some(word) = s.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().ok()?);
        let quote = x ^ (LO * u64::from(b'"'));
        let backslash = x ^ (LO * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(LO) & !quote)
            | (backslash.wrapping_sub(LO) & !backslash)
            | (x.wrapping_sub(LO * 0x20) & !x);
        let hits = hits & HI;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = s.get(at..)?;
    tail.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|p| at + p)
}

/// A known member's value, once: a second occurrence is serde's "duplicate field" error, so leave it to serde.
fn member<T>(seen: &mut bool, slot: &mut T, value: Option<T>) -> Option<()> {
    once(seen)?;
    *slot = value?;
    Some(())
}

impl<'a> Reader<'a> {
    /// Only whitespace is left.
    fn at_end(&mut self) -> Option<()> {
        self.ws();
        (self.i == self.b.len()).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        self.ws();
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// The rest of a literal whose first byte was consumed.
    fn lit(&mut self, rest: &[u8]) -> Option<()> {
        let end = self.i.checked_add(rest.len())?;
        (self.b.get(self.i..end)? == rest).then(|| self.i = end)
    }

    /// The text of a string whose opening quote was consumed, when it has no escape and no control character.
    fn raw_str(&mut self) -> Option<&'a str> {
        let start = self.i;
        let end = start + string_end(self.b.get(start..)?)?;
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        // Both ends are ASCII (a quote), so always on a character boundary; `get` checks it all the same.
        self.s.get(start..end)
    }

    /// `null` or a string, as serde reads an `Option<Text>`.
    fn opt_text(&mut self) -> Option<Option<Text<'a>>> {
        match self.next()? {
            b'"' => Some(Some(Text(Cow::Borrowed(self.raw_str()?)))),
            b'n' => self.lit(b"ull").map(|()| None),
            _ => None,
        }
    }

    /// `null` or a plain unsigned integer, as serde reads an `Option<u64>`.
    fn opt_u64(&mut self) -> Option<Option<u64>> {
        match self.next()? {
            b'n' => self.lit(b"ull").map(|()| None),
            c @ b'0'..=b'9' => {
                let mut v = u64::from(c - b'0');
                if c != b'0' {
                    while let Some(d @ b'0'..=b'9') = self.peek() {
                        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                        self.i += 1;
                    }
                }
                // A fraction or exponent makes it a float, which serde refuses for a u64: let it say so.
                match self.peek() {
                    Some(b'.' | b'e' | b'E') => None,
                    _ => Some(Some(v)),
                }
            }
            _ => None,
        }
    }

    /// `null`, or an object read into `slot` (as `empty`, then filled by `read` after its `{`), as serde reads
    /// an `Option` of a struct. `slot` is `None` on entry.
    fn opt_object<T>(
        &mut self,
        slot: &mut Option<T>,
        empty: T,
        read: impl FnOnce(&mut Self, &mut T) -> Option<()>,
    ) -> Option<()> {
        match self.next()? {
            b'n' => self.lit(b"ull"),
            b'{' => read(self, slot.insert(empty)),
            _ => None,
        }
    }

    /// Each member of an object whose `{` was consumed: `member` reads the value after the key and colon.
    fn object(&mut self, mut on_member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            self.expect(b'"')?;
            let key = self.raw_str()?;
            self.expect(b':')?;
            on_member(self, key)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Each element of an array whose `[` was consumed.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn skip(&mut self, depth: u32) -> Option<()> {
        match self.next()? {
            b'"' => self.raw_str().map(|_| ()),
            b'n' => self.lit(b"ull"),
            b't' => self.lit(b"rue"),
            b'f' => self.lit(b"alse"),
            b'{' if depth < MAX_DEPTH => self.object(|r, _| r.skip(depth + 1)),
            b'[' if depth < MAX_DEPTH => self.array(|r| r.skip(depth + 1)),
            c @ (b'-' | b'0'..=b'9') => self.number(c),
            _ => None,
        }
    }

    /// The rest of a JSON number whose first byte was consumed (RFC 8259 §6).
    fn number(&mut self, first: u8) -> Option<()> {
        let lead = if first == b'-' {
            let c = self.peek()?;
            self.i += 1;
            c
        } else {
            first
        };
        match lead {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digits1()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digits1()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn digits1(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }

    /// The members of the chunk object, whose `{` was consumed.
    fn chunk(&mut self, c: &mut Chunk<'a>, seen: &mut Seen, lead: &mut Lead) -> Option<()> {
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(());
        }
        lead.open = true;
        self.members(c, seen, lead)
    }

    /// Chunk members from the next key on, to the closing `}`, noting the leading run in `lead`.
    fn members(&mut self, c: &mut Chunk<'a>, seen: &mut Seen, lead: &mut Lead) -> Option<()> {
        loop {
            self.expect(b'"')?;
            let key = self.raw_str()?;
            self.expect(b':')?;
            match key {
                "id" => {
                    member(&mut seen.id, &mut c.id, self.opt_text())?;
                    if lead.open {
                        lead.reading.0 = self.kept(c.id.as_ref());
                    }
                }
                "model" => {
                    member(&mut seen.model, &mut c.model, self.opt_text())?;
                    if lead.open {
                        lead.reading.1 = self.kept(c.model.as_ref());
                    }
                }
                "choices" => {
                    lead.open = false;
                    once(&mut c.choices.present)?;
                    self.choices(&mut c.choices.value)?;
                }
                "usage" => {
                    lead.open = false;
                    once(&mut c.usage.present)?;
                    self.opt_object(&mut c.usage.value, UsageWire::EMPTY, Self::usage)?;
                }
                "error" => return None,
                _ => self.skip(0)?,
            }
            match self.next()? {
                b',' if lead.open => (lead.end, lead.kept) = (self.i, lead.reading),
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Where the string just read (the text in `slot`, which ends at the quote before `self.i`) lies.
    fn kept(&self, slot: Option<&Text<'a>>) -> Kept {
        match slot {
            None => Kept::Null,
            Some(t) => {
                let end = self.i - 1;
                Kept::At(end - t.0.len(), end)
            }
        }
    }

    /// `choices`: null, or an array of choice objects and nulls folded as `Choices` folds them.
    fn choices(&mut self, slot: &mut Option<Choices<'a>>) -> Option<()> {
        match self.next()? {
            b'n' => self.lit(b"ull"),
            b'[' => {
                let out = slot.insert(Choices::default());
                self.array(|r| match r.next()? {
                    b'n' => r.lit(b"ull"),
                    b'{' if out.first.is_none() => {
                        // Read where it is kept; a choice that turns out not to be choice 0 gives its flags.
                        let first = out.first.insert(Choice::EMPTY);
                        r.choice(first)?;
                        if first.index.unwrap_or(0) != 0 {
                            out.others.merge(first.tokens());
                            out.first = None;
                        }
                        Some(())
                    }
                    b'{' => {
                        let mut other = Choice::EMPTY;
                        r.choice(&mut other)?;
                        out.others.merge(other.tokens());
                        Some(())
                    }
                    _ => None,
                })
            }
            _ => None,
        }
    }

    /// The members of a choice object.
    fn choice(&mut self, c: &mut Choice<'a>) -> Option<()> {
        let (mut index, mut delta, mut finish) = (false, false, false);
        self.object(|r, key| match key {
            "index" => member(&mut index, &mut c.index, r.opt_u64()),
            "delta" => {
                once(&mut delta)?;
                r.opt_object(&mut c.delta, Delta::EMPTY, Self::delta)
            }
            "finish_reason" => member(&mut finish, &mut c.finish_reason, r.opt_text()),
            _ => r.skip(0),
        })
    }

    /// The members of a usage object without a `cost` (a JSON number kept as a `Value`: serde's).
    fn usage(&mut self, u: &mut UsageWire) -> Option<()> {
        let (mut prompt, mut completion, mut details) = (false, false, false);
        self.object(|r, key| match key {
            "prompt_tokens" => member(&mut prompt, &mut u.prompt_tokens, r.opt_u64()),
            "completion_tokens" => member(&mut completion, &mut u.completion_tokens, r.opt_u64()),
            "completion_tokens_details" => {
                once(&mut details)?;
                let empty = UsageDetails { reasoning_tokens: None };
                r.opt_object(&mut u.completion_tokens_details, empty, Self::usage_details)
            }
            "cost" => None,
            _ => r.skip(0),
        })
    }

    fn usage_details(&mut self, d: &mut UsageDetails) -> Option<()> {
        let mut seen = false;
        self.object(|r, key| match key {
            "reasoning_tokens" => member(&mut seen, &mut d.reasoning_tokens, r.opt_u64()),
            _ => r.skip(0),
        })
    }

    /// The members of a delta object without tool calls.
    fn delta(&mut self, d: &mut Delta<'a>) -> Option<()> {
        let (mut content, mut reasoning_content, mut reasoning, mut tools) = (false, false, false, false);
        self.object(|r, key| match key {
            "content" => member(&mut content, &mut d.content, r.opt_text()),
            "reasoning_content" => member(&mut reasoning_content, &mut d.reasoning_content, r.opt_text()),
            "reasoning" => member(&mut reasoning, &mut d.reasoning, r.opt_text()),
            // Tool-call deltas are serde's; a null one is read as none, as serde reads it.
            "tool_calls" => {
                once(&mut tools)?;
                match r.next()? {
                    b'n' => r.lit(b"ull"),
                    _ => None,
                }
            }
            _ => r.skip(0),
        })
    }
}

/// Test and fuzz builds: what this reader accepted, serde_json reads the same.
#[cfg(any(test, fuzzing))]
pub(super) fn assert_serde_agrees(data: &[u8], fast: &Chunk<'_>) {
    match serde_json::from_slice::<Chunk<'_>>(data) {
        Ok(slow) => assert!(*fast == slow, "fast {fast:?} != serde {slow:?} for {}", String::from_utf8_lossy(data)),
        Err(e) => panic!("the fast reader accepted what serde_json refuses ({e}): {}", String::from_utf8_lossy(data)),
    }
}

#[cfg(test)]
mod tests;
