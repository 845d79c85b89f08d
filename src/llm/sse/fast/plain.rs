//! The chunk nearly every one of a stream is: the remembered prefix byte for byte, then one of the few
//! `choices` spellings servers send for a content delta or a finish reason, matched whole.

use std::borrow::Cow;

#[cfg(any(test, fuzzing))]
use super::assert_serde_agrees;
use super::{MIN_PREFIX, Prefix, string_end};
use crate::llm::sse::wire::{Choice, Delta, Text};
#[cfg(any(test, fuzzing))]
use crate::llm::sse::wire::{Choices, Chunk, Field};

/// A chunk at the start of `data` that is the prefix byte for byte, then one of the plain choices and its
/// closing brace: nearly every chunk of a stream. Which choice, its text, and the chunk's length (`data` may
/// go on past it). Its id and model are the prefix's (`Prefix::id`, `Prefix::model`) and it has nothing else,
/// so no `Chunk` is built for it: filling, moving and dropping one was a third of the cost of such a chunk.
/// `None` for any other payload, which `read_into` then reads. Past the prefix the chunk holds no line break:
/// not in the choices matched, nor in a text `string_end` accepts.
pub(in crate::llm::sse) fn repeat<'a>(data: &'a [u8], prefix: &Prefix) -> Option<(Plain, &'a str, usize)> {
    let head = prefix.text.as_bytes();
    let rest = data.strip_prefix(head).filter(|_| head.len() >= MIN_PREFIX)?;
    let (plain, text, end) = plain_choices(rest)?;
    if rest.get(end) != Some(&b'}') {
        return None;
    }
    let text = utf8(text)?;
    let len = head.len() + end + 1;
    #[cfg(any(test, fuzzing))]
    assert_serde_agrees(
        data.get(..len)?,
        &Chunk {
            id: prefix.id().map(|t| Text(Cow::Borrowed(t))),
            model: prefix.model().map(|t| Text(Cow::Borrowed(t))),
            choices: Field {
                present: true,
                value: Some(Choices { first: Some(plain.choice(text)), ..Choices::default() }),
            },
            ..Chunk::EMPTY
        },
    );
    Some((plain, text, len))
}

/// `text` as a `str`. A delta's text is a few ASCII bytes; `from_utf8` spent 80 instructions on each.
pub(super) fn utf8(text: &[u8]) -> Option<&str> {
    if text.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(text) });
    }
    std::str::from_utf8(text).ok()
}

/// Which of the two common choices `plain_choices` matched.
#[derive(Clone, Copy)]
pub(in crate::llm::sse) enum Plain {
    /// `{"index":0,"delta":{"content":"…"},"finish_reason":null}` (the first with `"role":"assistant"` before the
    /// content): the text is the content.
    Content,
    /// `{"index":0,"delta":{},"finish_reason":"…"}`: the text is the finish reason.
    Finish,
}

impl Plain {
    /// What `members` reads from the same bytes: choice 0 with index 0 and either a content delta and a null
    /// finish reason or an empty delta and a finish reason.
    pub(in crate::llm::sse) fn choice(self, text: &str) -> Choice<'_> {
        let text = Some(Text(Cow::Borrowed(text)));
        match self {
            Plain::Content => {
                Choice { index: Some(0), delta: Some(Delta { content: text, ..Delta::EMPTY }), finish_reason: None }
            }
            Plain::Finish => Choice { index: Some(0), delta: Some(Delta::EMPTY), finish_reason: text },
        }
    }
}

/// `rest` opens with a `choices` array of one of the two choices nearly every chunk of a stream carries (a
/// content delta, or the last chunk's finish reason), in one of the spellings servers send (the same bytes in
/// every chunk of a stream but the text): which one, its text (not yet checked as UTF-8), and where the array
/// ends. Matched whole rather than read member by member, a 16-token stream costs the generator 30 % fewer
/// instructions.
pub(super) fn plain_choices(rest: &[u8]) -> Option<(Plain, &[u8], usize)> {
    let (plain, start) = if let Some(n) = opens(rest, br#""choices":[{"index":0,"delta":{"content":""#) {
        (Plain::Content, n)
    } else if let Some(n) = opens(rest, br#""choices":[{"index":0,"delta":{"role":"assistant","content":""#) {
        // A stream's first chunk: the role is read as serde reads it, not at all.
        (Plain::Content, n)
    } else if let Some(n) = opens(rest, br#""choices":[{"index":0,"delta":{},"finish_reason":""#) {
        (Plain::Finish, n)
    } else {
        (Plain::Finish, opens(rest, br#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":""#)?)
    };
    let end = start + string_end(rest.get(start..)?)?;
    let after = rest.get(end..)?;
    // After the text: each begins with the closing quote, so a text that stops at an escape or a control
    // character matches none of them.
    let tail = match plain {
        Plain::Content => opens(after, br#""},"finish_reason":null}]"#)
            .or_else(|| opens(after, br#""},"logprobs":null,"finish_reason":null}]"#))
            .or_else(|| opens(after, br#""}}]"#))?,
        Plain::Finish => opens(after, br#""}]"#)?,
    };
    Some((plain, rest.get(start..end)?, end + tail))
}

/// `N` when `s` opens with `with`, compared 16 bytes at a time (the last word overlapping the one before):
/// a few loads and compares once inlined, where comparing slices called `memcmp` for each spelling tried,
/// a third of `plain_choices`' instructions.
fn opens<const N: usize>(s: &[u8], with: &[u8; N]) -> Option<usize> {
    let s = s.first_chunk::<N>()?;
    if N < 16 {
        return (s == with).then_some(N);
    }
    let word = |b: &[u8; N], at: usize| b.get(at..at + 16).and_then(|w| <[u8; 16]>::try_from(w).ok());
    let mut at = 0;
    while at < N {
        let from = at.min(N - 16);
        if word(s, from)? != word(with, from)? {
            return None;
        }
        at += 16;
    }
    Some(N)
}
