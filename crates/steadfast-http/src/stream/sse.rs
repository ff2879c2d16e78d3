//! An incremental server-sent-events scanner that looks only for what resilience needs: event
//! boundaries (to count delivered events) and in-band error events.
//!
//! It never builds lines or events. At the start of each line it compares at most
//! [`PREFIX_LEN`] bytes against the few prefixes that matter (`event: error`, `data: {"error"`,
//! `data: {"type":"error"`, `data: {"object":"error"`); any other line is skipped with one
//! `memchr` for its newline. Only an error payload is copied (the error path allocates; the
//! success path never does). Line breaks are `\n` or `\r\n` (a lone `\r`, allowed by the SSE
//! grammar but sent by no LLM API, is not recognised as a break).

use http::{HeaderMap, StatusCode};
use steadfast::Outcome;

use crate::{llm, reason};

/// The starts of a data line's payload that mark an error object: OpenAI's (and vLLM's,
/// llama.cpp's) `{"error": ...}`, Anthropic's `{"type":"error", ...}`, vLLM's older
/// `{"object":"error", ...}`.
const ERRORS: [&[u8]; 3] = [
    br#"{"error""#,
    br#"{"type":"error""#,
    br#"{"object":"error""#,
];

/// The longest line start the scanner needs to decide a line: `data: {"object":"error"` is 23.
const PREFIX_LEN: usize = 32;

/// An error event found in the stream: what it means, and its payload (at most
/// [`llm::MAX_ERROR_BODY`] bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InBandError {
    pub(crate) outcome: Outcome,
    pub(crate) payload: Vec<u8>,
}

impl InBandError {
    fn of(payload: Vec<u8>) -> Self {
        // Providers send in-band errors on a 200 stream; the status only matters for OpenAI's
        // older `requests`/`tokens` types, which name 429s, never stream errors.
        let outcome = llm::classify_llm_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &HeaderMap::new(),
            Some(&payload),
        )
        .unwrap_or(Outcome::transient(reason::SERVER_ERROR));
        InBandError { outcome, payload }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// At the start of a line, `prefix_len` bytes of it seen (kept in `prefix`).
    Start,
    /// The line is of no interest: waiting for its end.
    Skip,
    /// Copying an error payload until the end of the line.
    Capture,
}

/// What the start of a line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// Not enough of the line yet.
    NeedMore,
    /// An empty line (ends an event); the next line starts `len` bytes later.
    Blank { len: usize },
    /// `event: error`, ending `len` bytes later.
    ErrorEvent { len: usize },
    /// A line to skip.
    Skip,
    /// A data line whose payload (from `from`) is an error.
    Capture { from: usize },
    /// A data line inside an `event: error`: its payload (from `from`) is the error.
    Data { from: usize },
}

/// The scanner's state between chunks. Small and allocation-free until an error is found.
#[derive(Debug)]
pub(crate) struct SseScanner {
    line: Line,
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    /// A field line was seen since the last blank line.
    in_event: bool,
    /// This event is `event: error`.
    error_event: bool,
    capture: Vec<u8>,
    events: u64,
}

impl Default for SseScanner {
    fn default() -> Self {
        SseScanner {
            line: Line::Start,
            prefix: [0; PREFIX_LEN],
            prefix_len: 0,
            in_event: false,
            error_event: false,
            capture: Vec::new(),
            events: 0,
        }
    }
}

impl SseScanner {
    /// Events completed (ended by a blank line) so far.
    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    /// A new stream follows (a resumption): forget the line in progress, keep the count.
    pub(crate) fn restart(&mut self) {
        *self = SseScanner {
            events: self.events,
            ..SseScanner::default()
        };
    }

    /// Scans the next chunk; an error event ends the scan with its classification.
    pub(crate) fn scan(&mut self, chunk: &[u8]) -> Result<(), InBandError> {
        let mut pos = 0;
        while pos < chunk.len() {
            match self.line {
                Line::Skip => match memchr::memchr(b'\n', &chunk[pos..]) {
                    Some(at) => {
                        pos += at + 1;
                        self.line = Line::Start;
                        // The usual end of an event, right behind its last line: decided here
                        // without another look.
                        let blank = match chunk.get(pos..pos + 2) {
                            Some([b'\n', _]) => 1,
                            Some(b"\r\n") => 2,
                            None if chunk.get(pos) == Some(&b'\n') => 1,
                            _ => 0,
                        };
                        if blank > 0 {
                            pos += blank;
                            self.end_event()?;
                        }
                    }
                    None => return Ok(()),
                },
                Line::Capture => {
                    let rest = &chunk[pos..];
                    let (part, end) = match memchr::memchr(b'\n', rest) {
                        Some(at) => (&rest[..at], true),
                        None => (rest, false),
                    };
                    let room = llm::MAX_ERROR_BODY.saturating_sub(self.capture.len());
                    self.capture
                        .extend_from_slice(&part[..part.len().min(room)]);
                    if !end {
                        return Ok(());
                    }
                    if self.capture.last() == Some(&b'\r') {
                        self.capture.pop();
                    }
                    return Err(InBandError::of(std::mem::take(&mut self.capture)));
                }
                Line::Start => {
                    let before = self.prefix_len;
                    let rest = &chunk[pos..];
                    if before == 0 && !self.error_event && plain_data_line(rest) {
                        // The common line: `data: {"id":...` (OpenAI) or
                        // `data: {"type":"content_block_delta"...` (Anthropic).
                        self.in_event = true;
                        self.line = Line::Skip;
                        continue;
                    }
                    let decision = if before == 0 && rest.len() >= PREFIX_LEN {
                        // The common case: the whole line start is in this chunk; no copy.
                        decide(&rest[..PREFIX_LEN], self.error_event)
                    } else {
                        let take = rest.len().min(PREFIX_LEN - before);
                        self.prefix[before..before + take].copy_from_slice(&rest[..take]);
                        self.prefix_len = before + take;
                        let decision = decide(&self.prefix[..self.prefix_len], self.error_event);
                        if decision == Decision::NeedMore {
                            // Only possible when this chunk ran out.
                            return Ok(());
                        }
                        decision
                    };
                    self.prefix_len = 0;
                    match decision {
                        Decision::NeedMore => {
                            // A 32-byte window always decides; defensive.
                            self.line = Line::Skip;
                        }
                        Decision::Blank { len } => {
                            pos += len - before;
                            self.end_event()?;
                        }
                        Decision::ErrorEvent { len } => {
                            pos += len - before;
                            self.in_event = true;
                            self.error_event = true;
                        }
                        Decision::Skip => {
                            self.in_event = true;
                            self.line = Line::Skip;
                            // Skip searches from this chunk's part of the line: earlier parts
                            // held no newline.
                        }
                        Decision::Capture { from } | Decision::Data { from } => {
                            self.in_event = true;
                            self.line = Line::Capture;
                            self.capture.clear();
                            if from < before {
                                self.capture.extend_from_slice(&self.prefix[from..before]);
                            }
                            pos += from.saturating_sub(before);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether `line` is surely an ordinary data line: `data: {"` followed by a key no error
/// pattern starts with. Eight-byte compare, no search; anything else goes to [`decide`].
#[inline]
fn plain_data_line(line: &[u8]) -> bool {
    match line.get(..9) {
        Some([b'd', b'a', b't', b'a', b':', b' ', b'{', b'"', key]) => match key {
            b'e' | b'o' => false,
            // `{"type":"error"` must still be told from `{"type":"content_block_delta"`.
            b't' => {
                let tail = &line[9..];
                if tail.starts_with(b"ype\":\"") {
                    tail.get(6).is_some_and(|first| *first != b'e')
                } else {
                    tail.len() >= 4 && !tail.starts_with(b"ype\"")
                }
            }
            _ => true,
        },
        _ => false,
    }
}

impl SseScanner {
    /// A blank line: the event ends.
    #[inline]
    fn end_event(&mut self) -> Result<(), InBandError> {
        if self.in_event {
            self.events += 1;
        }
        self.in_event = false;
        if std::mem::take(&mut self.error_event) {
            // `event: error` without a data line.
            return Err(InBandError::of(Vec::new()));
        }
        Ok(())
    }
}

/// Decides a line from its first bytes (`window`, at most [`PREFIX_LEN`], possibly holding the
/// line's end).
fn decide(window: &[u8], error_event: bool) -> Decision {
    let newline = memchr::memchr(b'\n', window);
    let line = match newline {
        Some(at) => &window[..at],
        None => window,
    };
    let complete = newline.is_some();
    let content = line
        .strip_suffix(b"\r")
        .filter(|_| complete)
        .unwrap_or(line);
    if complete && content.is_empty() {
        return Decision::Blank {
            len: line.len() + 1,
        };
    }
    if content.is_empty() {
        // Only a `\r` (or nothing) so far.
        return Decision::NeedMore;
    }
    if let Some(value) = field(content, b"event") {
        let value = match value {
            Field::Value(value) => value,
            Field::Partial if !complete => return Decision::NeedMore,
            Field::Partial | Field::Other => return Decision::Skip,
        };
        if !complete {
            return if value.len() <= b"error".len() && b"error".starts_with(value) {
                Decision::NeedMore
            } else {
                Decision::Skip
            };
        }
        return if value == b"error" {
            Decision::ErrorEvent {
                len: line.len() + 1,
            }
        } else {
            Decision::Skip
        };
    }
    if let Some(value) = field(content, b"data") {
        let value = match value {
            Field::Value(value) => value,
            Field::Partial if !complete => return Decision::NeedMore,
            Field::Partial | Field::Other => return Decision::Skip,
        };
        let from = content.len() - value.len();
        if error_event {
            return Decision::Data { from };
        }
        let mut undecided = false;
        for pattern in ERRORS {
            if value.starts_with(pattern) {
                return Decision::Capture { from };
            }
            if !complete && pattern.starts_with(value) {
                undecided = true;
            }
        }
        return if undecided {
            Decision::NeedMore
        } else {
            Decision::Skip
        };
    }
    Decision::Skip
}

enum Field<'a> {
    /// The field's value (after `name:` and one optional space).
    Value(&'a [u8]),
    /// The line may still turn out to be this field.
    Partial,
    /// Another field (or a comment).
    Other,
}

/// Whether `content` is the field `name`, and its value.
fn field<'a>(content: &'a [u8], name: &[u8]) -> Option<Field<'a>> {
    if content.len() <= name.len() {
        return name.starts_with(content).then_some(Field::Partial);
    }
    if !content.starts_with(name) {
        return None;
    }
    match content[name.len()] {
        // `name:` and nothing yet: the optional space may follow.
        b':' if content.len() == name.len() + 1 => Some(Field::Partial),
        b':' => {
            let value = &content[name.len() + 1..];
            Some(Field::Value(value.strip_prefix(b" ").unwrap_or(value)))
        }
        _ => Some(Field::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use steadfast::OutcomeKind;

    const OPENAI: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
        "data: [DONE]\n\n",
    );

    const ANTHROPIC_OVERLOADED: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[]}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: error\n",
        "data: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
    );

    const OPENAI_ERROR: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        "data: {\"error\":{\"message\":\"The server had an error while processing your request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
    );

    fn scan_in_pieces(text: &str, piece: usize) -> (Result<(), InBandError>, u64) {
        let mut scanner = SseScanner::default();
        for chunk in text.as_bytes().chunks(piece.max(1)) {
            if let Err(error) = scanner.scan(chunk) {
                return (Err(error), scanner.events());
            }
        }
        (Ok(()), scanner.events())
    }

    #[test]
    fn counts_the_events_of_an_openai_stream_and_finds_no_error() {
        for piece in [1, 2, 3, 7, 31, 32, 33, 1000] {
            assert_eq!(scan_in_pieces(OPENAI, piece), (Ok(()), 3), "piece {piece}");
        }
    }

    #[test]
    fn finds_anthropic_overloaded_error_event_in_any_split() {
        for piece in [1, 2, 5, 13, 32, 64, 1000] {
            let (result, events) = scan_in_pieces(ANTHROPIC_OVERLOADED, piece);
            let error = result.unwrap_err();
            assert_eq!(
                error.outcome.kind(),
                OutcomeKind::Transient,
                "piece {piece}"
            );
            assert_eq!(error.outcome.reason(), Some(reason::OVERLOADED));
            assert!(error.payload.starts_with(b"{\"type\": \"error\""));
            assert_eq!(events, 2, "two events before the error");
        }
    }

    #[test]
    fn finds_an_openai_error_object_in_a_data_line() {
        for piece in [1, 3, 32, 1000] {
            let (result, events) = scan_in_pieces(OPENAI_ERROR, piece);
            let error = result.unwrap_err();
            assert_eq!(
                error.outcome.reason(),
                Some(reason::SERVER_ERROR),
                "piece {piece}"
            );
            assert_eq!(events, 1);
        }
    }

    #[test]
    fn crlf_lines_and_rate_limit_errors() {
        let text = "event: error\r\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\r\n\r\n";
        for piece in [1, 4, 1000] {
            let error = scan_in_pieces(text, piece).0.unwrap_err();
            assert_eq!(
                error.outcome.kind(),
                OutcomeKind::RateLimited,
                "piece {piece}"
            );
            assert!(error.payload.ends_with(b"}}"), "no \\r kept");
        }
    }

    #[test]
    fn error_objects_in_data_lines_are_found_whatever_their_envelope() {
        for (text, reason) in [
            (
                "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
                reason::OVERLOADED,
            ),
            (
                "data: {\"object\":\"error\",\"message\":\"boom\",\"type\":\"InternalServerError\",\"code\":500}\n\n",
                reason::SERVER_ERROR,
            ),
            (
                "data: {\"error\":{\"message\":\"x\",\"type\":\"server_error\"}}\n\n",
                reason::SERVER_ERROR,
            ),
        ] {
            for piece in [1, 9, 16, 1000] {
                let error = scan_in_pieces(text, piece).0.unwrap_err();
                assert_eq!(
                    error.outcome.reason(),
                    Some(reason),
                    "{text} in pieces of {piece}"
                );
            }
        }
        let ordinary = "data: {\"type\":\"content_block_delta\",\"delta\":{}}\n\ndata: {\"text\":1}\n\ndata: {\"typo\":1}\n\n";
        assert_eq!(scan_in_pieces(ordinary, 1000), (Ok(()), 3));
    }

    #[test]
    fn an_error_event_without_data_is_a_server_error() {
        let error = scan_in_pieces("event: error\n\n", 1000).0.unwrap_err();
        assert_eq!(error.outcome, Outcome::transient(reason::SERVER_ERROR));
    }

    #[test]
    fn lookalikes_are_not_errors() {
        let text = concat!(
            "event: errors\ndata: {}\n\n",
            ": error\n\n",
            "data: {\"errors\":[]}\n\n",
            "data: {\"type\":\"errorless\"}\n\n",
            "data: \"{\\\"error\\\"\"\n\n",
            "eventual: error\n\n",
            "id: error\n\n",
        );
        for piece in [1, 2, 1000] {
            let (result, events) = scan_in_pieces(text, piece);
            assert!(result.is_ok(), "piece {piece}: {result:?}");
            assert_eq!(events, 7);
        }
    }

    proptest! {
        /// However a stream is cut into chunks, the scanner sees the same events and errors.
        #[test]
        fn any_split_gives_the_same_answer(cuts in proptest::collection::vec(1usize..64, 1..40), which in 0usize..3) {
            let text = [OPENAI, ANTHROPIC_OVERLOADED, OPENAI_ERROR][which];
            let whole = scan_in_pieces(text, text.len());
            let mut scanner = SseScanner::default();
            let mut rest = text.as_bytes();
            let mut cuts = cuts.into_iter().cycle();
            let mut result = Ok(());
            while !rest.is_empty() {
                let at = cuts.next().unwrap_or(1).min(rest.len());
                let (chunk, tail) = rest.split_at(at);
                rest = tail;
                if let Err(error) = scanner.scan(chunk) {
                    result = Err(error);
                    break;
                }
            }
            prop_assert_eq!((result, scanner.events()), whole);
        }

        /// Arbitrary bytes never panic the scanner.
        #[test]
        fn hostile_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..20)) {
            let mut scanner = SseScanner::default();
            for chunk in &chunks {
                if scanner.scan(chunk).is_err() {
                    break;
                }
            }
        }
    }
}
