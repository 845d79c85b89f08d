//! The leading members a stream's chunks repeat, remembered so that each is read once.

use std::borrow::Cow;

use super::string_end;
use crate::llm::sse::wire::Text;

/// The leading members of the last chunk read in full, which every chunk of a stream usually repeats byte for
/// byte (`{"id":"…","object":"chat.completion.chunk","created":…,"model":"…",`): up to the comma after the
/// last of its first members that this reader only skips or keeps as a string (`id`, `model`, any unknown
/// key). A chunk that starts with the same bytes is read from there on: the prefix parsed once, it parses the
/// same every time, and it was 60 % of a 16-token stream's reading. Kept from one response to the next, with
/// the id's text let free: a stream's first chunk then reads as cheaply as the rest (a 1-token response is
/// four chunks).
#[derive(Debug, Default)]
pub(in crate::llm::sse) struct Prefix {
    /// A `String` because the payload it came from was checked as UTF-8: a chunk that repeats it needs no
    /// second check of those bytes.
    pub(super) text: String,
    pub(super) id: Kept,
    pub(super) model: Kept,
    /// `text` has no line break (it has one when a pretty-printed chunk came as several `data:` lines).
    one_line: bool,
}

impl Prefix {
    /// Whether `data` opens with the prefix: byte for byte, but for the text of a kept `id`, which differs
    /// from one response to the next (and is checked as UTF-8 here). Then the prefix's length in `data`, where
    /// the id and the model lie in it, and whether the id is not the prefix's.
    pub(super) fn repeated_in(&self, data: &[u8]) -> Option<(usize, Kept, Kept, bool)> {
        let text = self.text.as_bytes();
        if text.len() < MIN_PREFIX {
            return None;
        }
        if data.starts_with(text) {
            return Some((text.len(), self.id, self.model, false));
        }
        // `end` is the id's closing quote, so `after` opens with it and a new id must stop at a quote too: an
        // escape or a control character in it stops `string_end` short of one.
        let Kept::At(start, end) = self.id else { return None };
        let (before, after) = (text.get(..start)?, text.get(end..)?);
        if !data.starts_with(before) {
            return None;
        }
        let new_end = start + string_end(data.get(start..)?)?;
        // The prefix takes the new id (`learn`), so it is held to the same bound as one read in full.
        if new_end + after.len() > MAX_PREFIX || !data.get(new_end..)?.starts_with(after) {
            return None;
        }
        std::str::from_utf8(data.get(start..new_end)?).ok()?;
        let model = match self.model {
            Kept::At(s, e) if s >= end => Kept::At(s - end + new_end, e - end + new_end),
            kept => kept,
        };
        Some((new_end + after.len(), Kept::At(start, new_end), model, true))
    }

    /// Whether a chunk that repeats the prefix is known to be one SSE line when the rest of it has no line break.
    pub(in crate::llm::sse) fn one_line(&self) -> bool {
        self.one_line
    }

    /// The text of the `id` the prefix holds: that of every chunk `fast::repeat` reads.
    pub(in crate::llm::sse) fn id(&self) -> Option<&str> {
        self.id.text(&self.text)
    }

    /// The same for `model`.
    pub(in crate::llm::sse) fn model(&self) -> Option<&str> {
        self.model.text(&self.text)
    }

    /// Remembers `head`, the opening of a payload checked as UTF-8, with its kept members where they lie.
    pub(super) fn learn(&mut self, head: &str, id: Kept, model: Kept) {
        self.one_line = memchr::memchr2(b'\n', b'\r', head.as_bytes()).is_none();
        self.text.clear();
        self.text.push_str(head);
        (self.id, self.model) = (id, model);
    }
}

/// A remembered prefix shorter than this saves less than the comparison costs.
pub(super) const MIN_PREFIX: usize = 16;
/// Nor is one longer than this remembered: what a user's parser keeps stays small, whatever the server sends.
pub(super) const MAX_PREFIX: usize = 512;

/// What the prefix holds of a kept member: absent, `null`, or a string at this byte range of the payload.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) enum Kept {
    #[default]
    Absent,
    Null,
    At(usize, usize),
}

impl Kept {
    fn text(self, lead: &str) -> Option<&str> {
        match self {
            Kept::At(start, end) => lead.get(start..end),
            Kept::Absent | Kept::Null => None,
        }
    }

    /// The member as `read_into` would have read it from `lead`, the prefix's bytes in the payload.
    pub(super) fn read<'a>(self, lead: &'a str, seen: &mut bool, slot: &mut Option<Text<'a>>) -> Option<()> {
        if self != Kept::Absent {
            *seen = true;
        }
        if let Kept::At(..) = self {
            *slot = Some(Text(Cow::Borrowed(self.text(lead)?)));
        }
        Some(())
    }
}
