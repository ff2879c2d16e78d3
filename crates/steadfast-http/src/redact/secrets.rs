//! [`Secrets`]: the values a [`Redactor`](super::Redactor) took out, and scrubbing other text
//! of them (and of sensitive query values and userinfo in any URL it quotes).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, MatchKind};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_decode, percent_encode};

use super::{DEFAULT_MIN_SCRUB_LEN, REDACTED, Rules, query_key, trim_ascii};

/// At most this many secret values are kept for scrubbing ...
pub(super) const MAX_SECRET_VALUES: usize = 4096;
/// ... and at most this many bytes of them, so a hostile body (a redacted array of a million
/// strings) cannot make the scrubbing automaton huge.
const MAX_SECRET_BYTES: usize = 1 << 20;
/// A query parameter name longer than this in free text is not looked at: no sensitive name is
/// that long, and it keeps scanning text linear.
const MAX_NAME_LEN_IN_TEXT: usize = 256;

/// Percent-encodes everything but RFC 3986's unreserved characters (what `encodeURIComponent`
/// style encoders produce).
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes only what the WHATWG URL parser encodes in a query (the `url` crate, hence
/// reqwest): controls, space, `"`, `#`, `<`, `>`, `'` and non-ASCII bytes.
const MINIMAL: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\'');

/// The secret values a [`Redactor`](super::Redactor) took out of a request, to scrub other text of them.
///
/// `Debug` shows only counts, never a value. [`Secrets::new`] (or `default`) gives a collection
/// that scrubs only the values added to it; [`Redactor::secrets`](super::Redactor::secrets) one that also applies that
/// redactor's URL rules.
#[derive(Clone)]
pub struct Secrets {
    pub(super) values: BTreeSet<Vec<u8>>,
    pub(super) bytes: usize,
    pub(super) min_len: usize,
    pub(super) too_short: usize,
    pub(super) left_out: usize,
    pub(super) rules: Option<Arc<Rules>>,
    /// Built on first use, reset by every `add`.
    pub(super) matcher: OnceLock<Option<AhoCorasick>>,
}

impl Default for Secrets {
    fn default() -> Self {
        Secrets {
            values: BTreeSet::new(),
            bytes: 0,
            min_len: DEFAULT_MIN_SCRUB_LEN,
            too_short: 0,
            left_out: 0,
            rules: None,
            matcher: OnceLock::new(),
        }
    }
}

impl Secrets {
    /// An empty collection that scrubs only the values added to it.
    pub fn new() -> Self {
        Secrets::default()
    }

    /// Adds a secret value in the forms it may take elsewhere: as given, percent-decoded (also
    /// with `+` as a space) and percent-encoded. Values shorter than the minimum are counted,
    /// not kept (see the [module docs](super)).
    pub fn add(&mut self, value: impl AsRef<[u8]>) {
        let raw = trim_ascii(value.as_ref());
        if raw.is_empty() {
            return;
        }
        if raw.len() < self.min_len {
            self.too_short += 1;
            return;
        }
        self.insert(raw.to_vec());
        let decoded: Vec<u8> = percent_decode(raw).collect();
        let form: Vec<u8> = raw
            .iter()
            .map(|&byte| if byte == b'+' { b' ' } else { byte })
            .collect();
        let form_decoded: Vec<u8> = percent_decode(&form).collect();
        self.insert(percent_encode(&decoded, STRICT).to_string().into_bytes());
        self.insert(percent_encode(&decoded, MINIMAL).to_string().into_bytes());
        self.insert(
            percent_encode(&decoded, STRICT)
                .to_string()
                .replace("%20", "+")
                .into_bytes(),
        );
        self.insert(decoded);
        self.insert(form_decoded);
    }

    fn insert(&mut self, value: Vec<u8>) {
        if value.len() < self.min_len || self.values.contains(&value) {
            return;
        }
        // A value found inside the marker (`acte`) would make every `[REDACTED]` scrubbed
        // afterwards unreadable and undecodable; it is redacted where it stood all the same.
        if REDACTED
            .as_bytes()
            .windows(value.len())
            .any(|window| window.eq_ignore_ascii_case(&value))
        {
            self.too_short += 1;
            return;
        }
        if self.values.len() >= MAX_SECRET_VALUES || self.bytes + value.len() > MAX_SECRET_BYTES {
            self.left_out += 1;
            return;
        }
        self.bytes += value.len();
        self.values.insert(value);
        self.matcher = OnceLock::new();
    }

    /// How many distinct values (forms included) are scrubbed.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is scrubbed (the URL rules may still apply).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// How many values were too short to scrub from other text (or were part of the
    /// `[REDACTED]` marker itself).
    pub fn too_short(&self) -> usize {
        self.too_short
    }

    /// False if the collection bounds (4,096 values, 1 MiB) made it leave values out: those
    /// were redacted where they stood but are not scrubbed from other text.
    pub fn is_complete(&self) -> bool {
        self.left_out == 0
    }

    /// `text` with every occurrence of a collected value replaced by `[REDACTED]`, and (for a
    /// collection from a [`Redactor`](super::Redactor)) the query and userinfo rules applied to any URL in it.
    pub fn scrub(&self, text: &str) -> String {
        let scrubbed = self.scrub_inner(text.as_bytes(), true);
        // Matches are only replaced at character boundaries and the URL rules cut at ASCII
        // bytes, so this is UTF-8; the lossy fallback keeps the function total regardless.
        String::from_utf8(scrubbed)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
    }

    /// [`scrub`](Self::scrub) for bytes that need not be UTF-8.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        self.scrub_inner(bytes, false)
    }

    fn scrub_inner(&self, text: &[u8], keep_utf8: bool) -> Vec<u8> {
        let replaced = self.replace_values(text, keep_utf8);
        match &self.rules {
            Some(rules) => redact_urls_in_text(&replaced, rules),
            None => replaced,
        }
    }

    fn matcher(&self) -> Option<&AhoCorasick> {
        self.matcher
            .get_or_init(|| {
                if self.values.is_empty() {
                    return None;
                }
                // Leftmost-longest, so `sk-abc` and its prefix `sk-ab` leave no tail behind.
                match AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&self.values)
                {
                    Ok(matcher) => Some(matcher),
                    Err(error) => {
                        tracing::warn!(%error, "secret matcher not built; scrubbing value by value");
                        None
                    }
                }
            })
            .as_ref()
    }

    fn replace_values(&self, text: &[u8], keep_utf8: bool) -> Vec<u8> {
        if self.values.is_empty() {
            return text.to_vec();
        }
        let Some(matcher) = self.matcher() else {
            return replace_values_one_by_one(text, &self.values, keep_utf8);
        };
        let mut out = Vec::with_capacity(text.len());
        let mut last = 0;
        for found in matcher.find_iter(text) {
            if keep_utf8
                && !(is_char_boundary(text, found.start()) && is_char_boundary(text, found.end()))
            {
                continue;
            }
            out.extend_from_slice(text.get(last..found.start()).unwrap_or_default());
            out.extend_from_slice(REDACTED.as_bytes());
            last = found.end();
        }
        out.extend_from_slice(text.get(last..).unwrap_or_default());
        out
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("values", &self.values.len())
            .field("too_short", &self.too_short)
            .field("left_out", &self.left_out)
            .field("min_len", &self.min_len)
            .field("url_rules", &self.rules.is_some())
            .finish_non_exhaustive()
    }
}

/// The slow path if the automaton cannot be built: longest values first, ASCII case ignored
/// (as the automaton does).
pub(super) fn replace_values_one_by_one(
    text: &[u8],
    values: &BTreeSet<Vec<u8>>,
    keep_utf8: bool,
) -> Vec<u8> {
    let mut by_length: Vec<&Vec<u8>> = values.iter().collect();
    by_length.sort_by_key(|value| std::cmp::Reverse(value.len()));
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    'text: while at < text.len() {
        if !keep_utf8 || is_char_boundary(text, at) {
            for value in &by_length {
                let end = at + value.len();
                if text
                    .get(at..end)
                    .is_some_and(|window| window.eq_ignore_ascii_case(value))
                    && (!keep_utf8 || is_char_boundary(text, end))
                {
                    out.extend_from_slice(REDACTED.as_bytes());
                    at = end;
                    continue 'text;
                }
            }
        }
        out.push(text[at]);
        at += 1;
    }
    out
}

fn is_char_boundary(text: &[u8], at: usize) -> bool {
    // A UTF-8 continuation byte is 0b10xx_xxxx.
    text.get(at).is_none_or(|byte| (*byte as i8) >= -0x40)
}

/// In free text (an error message): `scheme://userinfo@` loses its userinfo, and a sensitive
/// query parameter after `?`, `&` or `;` loses its value.
fn redact_urls_in_text(text: &[u8], rules: &Rules) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while let Some(&byte) = text.get(at) {
        if byte == b':' && text[at..].starts_with(b"://") {
            out.extend_from_slice(b"://");
            at += 3;
            let rest = &text[at..];
            let authority_len = rest
                .iter()
                .position(|&byte| ends_authority_in_text(byte))
                .unwrap_or(rest.len());
            if let Some(sign) = rest[..authority_len].iter().rposition(|&byte| byte == b'@')
                && sign > 0
            {
                // Already `[REDACTED]` (a collected value matched): keep it.
                if &rest[..sign] == REDACTED.as_bytes() {
                    out.extend_from_slice(&rest[..sign]);
                } else {
                    out.extend_from_slice(REDACTED.as_bytes());
                }
                at += sign;
            }
            continue;
        }
        out.push(byte);
        at += 1;
        if !matches!(byte, b'?' | b'&' | b';') || rules.query_params.is_empty() {
            continue;
        }
        let rest = &text[at..];
        let name_len = rest
            .iter()
            .take(MAX_NAME_LEN_IN_TEXT + 1)
            .position(|&byte| {
                byte == b'=' || ends_value_in_text(byte) || byte == b'?' || byte == b';'
            })
            .unwrap_or(usize::MAX);
        if name_len == 0 || name_len > MAX_NAME_LEN_IN_TEXT || rest.get(name_len) != Some(&b'=') {
            continue;
        }
        if !rules.query_params.contains(&query_key(&rest[..name_len])) {
            continue;
        }
        out.extend_from_slice(&rest[..=name_len]);
        at += name_len + 1;
        let value = &text[at..];
        let value_len = value
            .iter()
            .position(|&byte| ends_value_in_text(byte))
            .unwrap_or(value.len());
        if value_len > 0 {
            if &value[..value_len] == REDACTED.as_bytes() {
                out.extend_from_slice(&value[..value_len]);
            } else {
                out.extend_from_slice(REDACTED.as_bytes());
            }
            at += value_len;
        }
    }
    out
}

fn ends_authority_in_text(byte: u8) -> bool {
    byte.is_ascii_whitespace()
        || matches!(
            byte,
            b'/' | b'?'
                | b'#'
                | b'"'
                | b'\''
                | b'<'
                | b'>'
                | b'('
                | b')'
                | b'\\'
                | b'`'
                | b','
                | b'{'
                | b'}'
                | b'|'
        )
}

/// Where a query value quoted in prose ends. Not at `;` (see the module docs on `;`).
fn ends_value_in_text(byte: u8) -> bool {
    byte.is_ascii_whitespace()
        || matches!(
            byte,
            b'&' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'(' | b')' | b'\\' | b'`' | b','
        )
}

#[cfg(feature = "dead-letter")]
impl steadfast::dead_letter::Scrub for Secrets {
    fn scrub(&self, text: &str) -> String {
        Secrets::scrub(self, text)
    }
}
