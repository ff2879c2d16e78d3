//! The JSON part of [`Redactor`](super::Redactor): finds the values of sensitive keys.
//!
//! A strict (RFC 8259) one-pass scanner rather than serde_json: serde_json's `Value` would lose
//! the body's formatting and key order (its order-preserving feature would change every other
//! user of serde_json in the workspace), stops at 128 levels by recursing, and gives no byte
//! positions. This one keeps an explicit stack (no recursion, so depth costs heap, not stack),
//! reports the byte span of each value to replace, and never builds a tree. Its results are
//! checked against serde_json in the tests. One deliberate difference: a `\u` escape of a lone
//! surrogate, which serde_json refuses, is accepted here (decoded as U+FFFD), so such a body is
//! redacted rather than left alone.

use std::collections::BTreeSet;

use super::json_key;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum JsonError {
    /// Not JSON: left alone.
    Invalid,
    /// Nests deeper than the bound: replaced by a marker.
    TooDeep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leaf {
    /// The bytes between the quotes, escapes as written.
    String {
        start: usize,
        end: usize,
    },
    Number {
        start: usize,
        end: usize,
    },
}

#[derive(Debug, Default)]
pub(super) struct JsonFound {
    /// Values to replace by `"[REDACTED]"`, in order, not overlapping.
    pub(super) spans: Vec<(usize, usize)>,
    /// The strings and numbers inside those values: the secrets to scrub elsewhere.
    pub(super) leaves: Vec<Leaf>,
}

struct Open {
    object: bool,
    start: usize,
    /// This container is the value of a sensitive key.
    redacted: bool,
}

struct JsonScanner<'a> {
    input: &'a [u8],
    at: usize,
    keys: &'a BTreeSet<Vec<u8>>,
    max_depth: usize,
    found: JsonFound,
}

pub(super) fn scan_json(
    input: &[u8],
    keys: &BTreeSet<Vec<u8>>,
    max_depth: usize,
) -> Result<JsonFound, JsonError> {
    if std::str::from_utf8(input).is_err() {
        return Err(JsonError::Invalid);
    }
    let mut scanner = JsonScanner {
        input,
        at: 0,
        keys,
        max_depth,
        found: JsonFound::default(),
    };
    if input.starts_with(b"\xEF\xBB\xBF") {
        scanner.at = 3;
    }
    scanner.skip_top_level_space();
    if scanner.at >= input.len() {
        return Err(JsonError::Invalid);
    }
    // One value, or a sequence of them (NDJSON, RFC 7464 record separators). As in serde_json's
    // stream reader, a number or literal must be followed by a delimiter: `01` is not `0, 1`.
    while scanner.at < input.len() {
        let delimited = matches!(scanner.peek(), Some(b'{' | b'[' | b'"'));
        scanner.value()?;
        if !delimited
            && !matches!(
                scanner.peek(),
                None | Some(
                    b' ' | b'\n'
                        | b'\t'
                        | b'\r'
                        | b'"'
                        | b'['
                        | b']'
                        | b'{'
                        | b'}'
                        | b','
                        | b':'
                        | 0x1E
                )
            )
        {
            return Err(JsonError::Invalid);
        }
        scanner.skip_top_level_space();
    }
    Ok(scanner.found)
}

pub(super) fn is_json_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

impl JsonScanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_json_space) {
            self.at += 1;
        }
    }

    fn skip_top_level_space(&mut self) {
        while self
            .peek()
            .is_some_and(|byte| is_json_space(byte) || byte == 0x1E)
        {
            self.at += 1;
        }
    }

    /// One complete value, containers included, without recursion.
    fn value(&mut self) -> Result<(), JsonError> {
        let mut stack: Vec<Open> = Vec::new();
        // Inside a redacted container every string and number is a secret leaf, and no new
        // span starts (it would nest in the container's).
        let mut inside_redacted = false;
        // The value about to be read belongs to a sensitive key.
        let mut sensitive = false;
        loop {
            self.skip_space();
            let start = self.at;
            let redacted_root = sensitive && !inside_redacted;
            let is_leaf = sensitive || inside_redacted;
            sensitive = false;
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    if stack.len() >= self.max_depth {
                        return Err(JsonError::TooDeep);
                    }
                    self.at += 1;
                    let object = open == b'{';
                    stack.push(Open {
                        object,
                        start,
                        redacted: redacted_root,
                    });
                    inside_redacted |= redacted_root;
                    self.skip_space();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() != Some(close) {
                        if object {
                            sensitive = self.member_key()?;
                        }
                        continue;
                    }
                    // Empty: closed by the loop below.
                }
                Some(b'"') => {
                    let (content_start, content_end) = self.string()?;
                    if is_leaf {
                        self.found.leaves.push(Leaf::String {
                            start: content_start,
                            end: content_end,
                        });
                    }
                    if redacted_root {
                        self.found.spans.push((start, self.at));
                    }
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                    if is_leaf {
                        self.found.leaves.push(Leaf::Number {
                            start,
                            end: self.at,
                        });
                    }
                    if redacted_root {
                        self.found.spans.push((start, self.at));
                    }
                }
                Some(b't') => self.literal(b"true", redacted_root)?,
                Some(b'f') => self.literal(b"false", redacted_root)?,
                Some(b'n') => self.literal(b"null", redacted_root)?,
                _ => return Err(JsonError::Invalid),
            }
            // A value ended: close what ends here, then find where the next value starts.
            loop {
                let Some(top) = stack.last() else {
                    return Ok(());
                };
                let object = top.object;
                self.skip_space();
                match self.bump() {
                    Some(b',') => {
                        if object {
                            self.skip_space();
                            sensitive = self.member_key()?;
                        }
                        break;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    _ => return Err(JsonError::Invalid),
                }
                if let Some(closed) = stack.pop()
                    && closed.redacted
                {
                    self.found.spans.push((closed.start, self.at));
                    inside_redacted = false;
                }
            }
        }
    }

    /// Reads `"key" :` and says whether the key is sensitive.
    fn member_key(&mut self) -> Result<bool, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(JsonError::Invalid);
        }
        let (start, end) = self.string()?;
        let raw = self.input.get(start..end).unwrap_or_default();
        let sensitive = self.keys.contains(&json_key(&decode_json_string(raw)));
        self.skip_space();
        if self.bump() != Some(b':') {
            return Err(JsonError::Invalid);
        }
        Ok(sensitive)
    }

    /// Reads a string; returns where its content (between the quotes) starts and ends.
    fn string(&mut self) -> Result<(usize, usize), JsonError> {
        self.at += 1;
        let start = self.at;
        loop {
            match self.bump() {
                Some(b'"') => return Ok((start, self.at - 1)),
                Some(b'\\') => match self.bump() {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                    Some(b'u') => {
                        for _ in 0..4 {
                            if !self.bump().is_some_and(|byte| byte.is_ascii_hexdigit()) {
                                return Err(JsonError::Invalid);
                            }
                        }
                    }
                    _ => return Err(JsonError::Invalid),
                },
                Some(0x00..=0x1F) | None => return Err(JsonError::Invalid),
                Some(_) => {}
            }
        }
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.bump() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(JsonError::Invalid),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.one_or_more_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.one_or_more_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn one_or_more_digits(&mut self) -> Result<(), JsonError> {
        if !self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            return Err(JsonError::Invalid);
        }
        self.digits();
        Ok(())
    }

    fn literal(&mut self, word: &[u8], redacted_root: bool) -> Result<(), JsonError> {
        let start = self.at;
        if !self
            .input
            .get(start..)
            .is_some_and(|rest| rest.starts_with(word))
        {
            return Err(JsonError::Invalid);
        }
        self.at += word.len();
        // `"password": null` is redacted in place, but `null` is not a secret to scrub.
        if redacted_root {
            self.found.spans.push((start, self.at));
        }
        Ok(())
    }
}

/// The bytes a JSON string's content stands for. Lone surrogates become U+FFFD; never panics,
/// even on content the scanner did not validate.
pub(super) fn decode_json_string(raw: &[u8]) -> Vec<u8> {
    fn hex4(bytes: Option<&[u8]>) -> Option<u32> {
        let text = std::str::from_utf8(bytes?).ok()?;
        u32::from_str_radix(text, 16).ok()
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    while let Some(&byte) = raw.get(at) {
        if byte != b'\\' {
            out.push(byte);
            at += 1;
            continue;
        }
        let escaped = raw.get(at + 1).copied();
        at += 2;
        let simple = match escaped {
            Some(b'b') => Some(b'\x08'),
            Some(b'f') => Some(b'\x0C'),
            Some(b'n') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b't') => Some(b'\t'),
            Some(b'u') => None,
            Some(other) => Some(other),
            None => break,
        };
        if let Some(simple) = simple {
            out.push(simple);
            continue;
        }
        let Some(unit) = hex4(raw.get(at..at + 4)) else {
            break;
        };
        at += 4;
        let mut code = unit;
        if (0xD800..0xDC00).contains(&unit)
            && raw.get(at..at + 2) == Some(b"\\u")
            && let Some(low) = hex4(raw.get(at + 2..at + 6))
            && (0xDC00..0xE000).contains(&low)
        {
            code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            at += 6;
        }
        let decoded = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut buffer = [0; 4];
        out.extend_from_slice(decoded.encode_utf8(&mut buffer).as_bytes());
    }
    out
}
