//! How long an HTTP agent asked its caller to wait: `retry-after-ms`, `Retry-After`
//! (delta-seconds or HTTP-date) and the `x-ratelimit-reset-*` headers of LLM APIs.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{HeaderName, RETRY_AFTER};

/// `retry-after-ms`: milliseconds, possibly fractional (OpenAI, Anthropic).
pub const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
/// `x-ratelimit-reset-requests`: time until the request limit resets, e.g. `"1s"`, `"6m0s"`.
pub const X_RATELIMIT_RESET_REQUESTS: HeaderName =
    HeaderName::from_static("x-ratelimit-reset-requests");
/// `x-ratelimit-reset-tokens`: time until the token limit resets, e.g. `"20ms"`.
pub const X_RATELIMIT_RESET_TOKENS: HeaderName =
    HeaderName::from_static("x-ratelimit-reset-tokens");

/// The wait an agent asked for, from the first of these headers that parses:
///
/// 1. `retry-after-ms`: milliseconds (`"1500"`, `"20.5"`);
/// 2. `Retry-After`: delta-seconds (`"2"`, also `"1.5"`) or an HTTP-date
///    (`"Wed, 21 Oct 2015 07:28:00 GMT"`; a date in the past is a wait of zero);
/// 3. `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens`: Go-style durations
///    (`"1s"`, `"6m0s"`, `"20ms"`, `"1h2m3.5s"`); when both are present, the longer one.
///
/// A malformed value is skipped with a `debug` log, never a panic; `None` when nothing parses.
///
/// ```
/// use std::time::Duration;
/// use http::HeaderMap;
/// use steadfast_http::parse_retry_after;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "2".parse().unwrap());
/// assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(2)));
///
/// headers.insert("retry-after-ms", "250".parse().unwrap()); // more precise: preferred
/// assert_eq!(parse_retry_after(&headers), Some(Duration::from_millis(250)));
///
/// let mut openai = HeaderMap::new();
/// openai.insert("x-ratelimit-reset-requests", "6m0s".parse().unwrap());
/// openai.insert("x-ratelimit-reset-tokens", "20ms".parse().unwrap());
/// assert_eq!(parse_retry_after(&openai), Some(Duration::from_secs(360)));
/// ```
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after_at(headers, SystemTime::now())
}

/// [`parse_retry_after`] with an explicit "now" for HTTP-dates (for tests and replays).
pub fn parse_retry_after_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(text) = header_text(headers, &RETRY_AFTER_MS) {
        if let Some(wait) = parse_millis(text) {
            return Some(wait);
        }
        tracing::debug!(value = text, "ignoring malformed retry-after-ms");
    }
    if let Some(text) = header_text(headers, &RETRY_AFTER) {
        if let Some(wait) = parse_retry_after_value(text, now) {
            return Some(wait);
        }
        tracing::debug!(value = text, "ignoring malformed Retry-After");
    }
    let mut longest: Option<Duration> = None;
    for name in [&X_RATELIMIT_RESET_REQUESTS, &X_RATELIMIT_RESET_TOKENS] {
        if let Some(text) = header_text(headers, name) {
            match parse_go_duration(text) {
                Some(wait) => longest = Some(longest.map_or(wait, |other| other.max(wait))),
                None => {
                    tracing::debug!(header = %name, value = text, "ignoring malformed rate-limit reset");
                }
            }
        }
    }
    longest
}

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let value = headers.get(name)?;
    if let Ok(text) = value.to_str() {
        Some(text.trim())
    } else {
        tracing::debug!(header = %name, "ignoring a non-ASCII value");
        None
    }
}

/// A `Retry-After` value: delta-seconds (integer or decimal) or an HTTP-date.
pub fn parse_retry_after_value(text: &str, now: SystemTime) -> Option<Duration> {
    let text = text.trim();
    if text.starts_with(|c: char| c.is_ascii_digit()) {
        return parse_seconds(text);
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_seconds(text: &str) -> Option<Duration> {
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let seconds: f64 = text.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

fn parse_millis(text: &str) -> Option<Duration> {
    parse_seconds(text).map(|as_seconds| as_seconds / 1000)
}

/// A Go-style duration as the `x-ratelimit-reset-*` headers use: one or more `<number><unit>`
/// with units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns` (`"6m0s"`, `"1.5s"`, `"20ms"`); a bare number
/// is seconds.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Some(seconds) = parse_seconds(text) {
        return Some(seconds);
    }
    let mut rest = text;
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn delta_seconds_as_sent_by_real_servers() {
        for (value, expected) in [("0", 0), ("2", 2), ("120", 120), (" 30 ", 30)] {
            assert_eq!(
                parse_retry_after(&headers(&[("retry-after", value)])),
                Some(Duration::from_secs(expected)),
                "{value}"
            );
        }
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "1.5")])),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn http_dates_count_from_now_and_past_dates_are_zero() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let map = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]);
        assert_eq!(
            parse_retry_after_at(&map, now),
            Some(Duration::from_secs(30))
        );
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:27:00 GMT")]);
        assert_eq!(parse_retry_after_at(&past, now), Some(Duration::ZERO));
        // The obsolete RFC 850 and asctime forms are accepted too.
        let rfc850 = headers(&[("retry-after", "Wednesday, 21-Oct-15 07:28:10 GMT")]);
        assert_eq!(
            parse_retry_after_at(&rfc850, now),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn retry_after_ms_is_preferred_and_may_be_fractional() {
        let map = headers(&[("retry-after", "3"), ("retry-after-ms", "1500")]);
        assert_eq!(parse_retry_after(&map), Some(Duration::from_millis(1500)));
        let fractional = headers(&[("retry-after-ms", "20.5")]);
        assert_eq!(
            parse_retry_after(&fractional),
            Some(Duration::from_micros(20_500))
        );
    }

    #[test]
    fn openai_rate_limit_resets_take_the_longer_wait() {
        let map = headers(&[
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(parse_retry_after(&map), Some(Duration::from_secs(360)));
        for (value, expected_ms) in [
            ("20ms", 20),
            ("1s", 1000),
            ("0.5s", 500),
            ("1m30s", 90_000),
            ("1h2m3.5s", 3_723_500),
            ("17", 17_000),
        ] {
            assert_eq!(
                parse_go_duration(value),
                Some(Duration::from_millis(expected_ms)),
                "{value}"
            );
        }
    }

    #[test]
    fn malformed_values_are_ignored_and_the_next_header_is_used() {
        let map = headers(&[
            ("retry-after-ms", "soon"),
            ("retry-after", "-5"),
            ("x-ratelimit-reset-tokens", "2s"),
        ]);
        assert_eq!(parse_retry_after(&map), Some(Duration::from_secs(2)));
        for bad in ["", "1x", "s", "1..2s", "m1", "1e400", "Mon, 99 Foo 2015"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
            assert_eq!(
                parse_retry_after(&headers(&[("retry-after", bad)])),
                None,
                "{bad}"
            );
        }
        assert_eq!(parse_retry_after(&HeaderMap::new()), None);
    }

    proptest! {
        #[test]
        fn arbitrary_header_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            which in 0usize..4,
        ) {
            let name = ["retry-after", "retry-after-ms", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"][which];
            if let Ok(value) = http::HeaderValue::from_bytes(&bytes) {
                let mut map = HeaderMap::new();
                map.insert(name, value);
                let _ = parse_retry_after(&map);
            }
        }

        #[test]
        fn delta_seconds_round_trip(seconds in 0u64..10_000_000) {
            let mut map = HeaderMap::new();
            map.insert("retry-after", seconds.to_string().parse().unwrap());
            prop_assert_eq!(parse_retry_after(&map), Some(Duration::from_secs(seconds)));
        }
    }
}
