//! Durations in configuration files, as text with a unit: `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`
//! (also `ns`, `us`/`µs`, `min`). One form for every config (breaker, retry, cache), used with
//! `#[serde(with = "crate::serde_duration")]` (or `crate::serde_duration::option`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*value))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).ok_or_else(|| invalid::<D::Error>(&text))
}

fn invalid<E: serde::de::Error>(text: &str) -> E {
    E::custom(format!(
        "invalid duration `{text}`: write a number with a unit, e.g. \"500ms\", \"1.5s\", \"2m\", \"1h\""
    ))
}

/// The shortest exact text for `value`.
pub(crate) fn format(value: Duration) -> String {
    if value.subsec_nanos() == 0 {
        format!("{}s", value.as_secs())
    } else if value.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", value.as_millis())
    } else {
        format!("{}ns", value.as_nanos())
    }
}

/// Parses a number followed by a unit; `None` for anything else (a bare number included: is
/// "30" seconds or milliseconds?).
pub(crate) fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(number * scale).ok()
}

/// The same for `Option<Duration>` (`null` for `None`).
pub(crate) mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // the signature serde's `with` requires
    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => s.serialize_some(&super::format(*duration)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| super::parse(&text).ok_or_else(|| super::invalid::<D::Error>(&text)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_exactly_and_parses_back() {
        for duration in [
            Duration::from_secs(90),
            Duration::from_millis(1500),
            Duration::from_nanos(1_000_001),
            Duration::ZERO,
        ] {
            assert_eq!(parse(&format(duration)), Some(duration), "{duration:?}");
        }
        assert_eq!(parse("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 1.5s "), Some(Duration::from_millis(1500)));
        assert_eq!(parse("250µs"), Some(Duration::from_micros(250)));
        for bad in ["30", "soon", "s", "1.2.3s", "-1s", "1 fortnight", ""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
