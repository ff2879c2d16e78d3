//! Finding a field in the text it was read from, so that every error can name a line.
//!
//! Parse errors carry their own position (toml's spans, serde_json's line and column). The
//! checks made once the file parsed (a setting a layer's config refuses, an unknown agent in a
//! fallback chain, an agent the application cannot build) only know the field's path, so the
//! path is looked up again here: in the spanned tree toml keeps, or by a small scan of the
//! JSON text (which serde_json already accepted, so the scan meets only well-formed JSON).

use std::fmt;

use toml::de::{DeTable, DeValue};

/// One step of a field's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// A field's path, from the top of the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(pub(crate) Vec<Segment>);

impl FieldPath {
    pub(crate) fn key(&self, key: &str) -> FieldPath {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    pub(crate) fn index(&self, index: usize) -> FieldPath {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    pub(crate) fn from_serde(path: &serde_path_to_error::Path) -> FieldPath {
        use serde_path_to_error::Segment as S;
        FieldPath(
            path.iter()
                .filter_map(|segment| match segment {
                    S::Seq { index } => Some(Segment::Index(*index)),
                    S::Map { key } => Some(Segment::Key(key.clone())),
                    S::Enum { variant } => Some(Segment::Key(variant.clone())),
                    S::Unknown => None,
                })
                .collect(),
        )
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The format a stack was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TOML (the default for files not ending in `.json`).
    Toml,
    /// JSON.
    Json,
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The line and column of `path` in `text`: of the key for a table field, of the element for
/// an array item. When the path goes deeper than the text (a default filled in), the deepest
/// part found.
pub(crate) fn locate(text: &str, format: Format, path: &FieldPath) -> Option<(usize, usize)> {
    let offset = match format {
        Format::Toml => locate_toml(text, path),
        Format::Json => locate_json(text, path),
    }?;
    Some(line_column(text, offset))
}

fn locate_toml(text: &str, path: &FieldPath) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let mut found = None;
    let mut table = Some(root.get_ref());
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for segment in &path.0 {
        let value = match segment {
            Segment::Key(key) => {
                let Some((k, value)) =
                    table.and_then(|table| table.iter().find(|(k, _)| k.get_ref().as_ref() == key))
                else {
                    return found;
                };
                found = Some(k.span().start);
                value
            }
            Segment::Index(index) => {
                let Some(value) = array.and_then(|items| items.get(*index)) else {
                    return found;
                };
                found = Some(value.span().start);
                value
            }
        };
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(inner) => table = Some(inner),
            DeValue::Array(items) => array = Some(items),
            _ => {}
        }
    }
    found
}

fn locate_json(text: &str, path: &FieldPath) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut pos = skip_ws(bytes, 0);
    let mut found = None;
    for segment in &path.0 {
        match segment {
            Segment::Key(wanted) => {
                if bytes.get(pos) != Some(&b'{') {
                    return found;
                }
                pos += 1;
                loop {
                    pos = skip_ws(bytes, pos);
                    if bytes.get(pos) != Some(&b'"') {
                        return found;
                    }
                    let key_start = pos;
                    let key_end = string_end(bytes, pos)?;
                    let key: String = serde_json::from_str(text.get(key_start..key_end)?).ok()?;
                    pos = skip_ws(bytes, key_end);
                    if bytes.get(pos) != Some(&b':') {
                        return found;
                    }
                    pos = skip_ws(bytes, pos + 1);
                    if key == *wanted {
                        found = Some(key_start);
                        break;
                    }
                    pos = skip_ws(bytes, value_end(bytes, pos)?);
                    if bytes.get(pos) == Some(&b',') {
                        pos += 1;
                    } else {
                        return found;
                    }
                }
            }
            Segment::Index(wanted) => {
                if bytes.get(pos) != Some(&b'[') {
                    return found;
                }
                pos = skip_ws(bytes, pos + 1);
                for _ in 0..*wanted {
                    pos = skip_ws(bytes, value_end(bytes, pos)?);
                    if bytes.get(pos) != Some(&b',') {
                        return found;
                    }
                    pos = skip_ws(bytes, pos + 1);
                }
                if matches!(bytes.get(pos), None | Some(b']')) {
                    return found;
                }
                found = Some(pos);
            }
        }
    }
    found
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
        pos += 1;
    }
    pos
}

/// The offset just past the string starting at `pos` (a `"`).
fn string_end(bytes: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The offset just past the value starting at `pos`.
fn value_end(bytes: &[u8], pos: usize) -> Option<usize> {
    match bytes.get(pos)? {
        b'"' => string_end(bytes, pos),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = pos;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = pos;
            while bytes
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segments: &[&str]) -> FieldPath {
        FieldPath(
            segments
                .iter()
                .map(|s| match s.parse::<usize>() {
                    Ok(index) => Segment::Index(index),
                    Err(_) => Segment::Key((*s).to_owned()),
                })
                .collect(),
        )
    }

    #[test]
    fn finds_keys_and_items_in_toml() {
        let text = "[agents.a]\ntimeout = \"1s\"\nfallback = [\"b\",\n  \"c\"]\n\n[agents.a.retry]\nbase = \"5ms\"\n";
        assert_eq!(
            locate(text, Format::Toml, &path(&["agents", "a", "timeout"])),
            Some((2, 1))
        );
        assert_eq!(
            locate(text, Format::Toml, &path(&["agents", "a", "fallback", "1"])),
            Some((4, 3))
        );
        assert_eq!(
            locate(text, Format::Toml, &path(&["agents", "a", "retry", "base"])),
            Some((7, 1))
        );
        // Deeper than the text: the deepest part found.
        assert_eq!(
            locate(
                text,
                Format::Toml,
                &path(&["agents", "a", "retry", "max_retries"])
            ),
            Some((6, 11))
        );
    }

    #[test]
    fn finds_keys_and_items_in_json() {
        let text = "{\n  \"agents\": {\n    \"x\": {\"s\": \"a,}]\\\"\", \"n\": [1, {\"k\": []}]},\n    \"a\": {\n      \"fallback\": [\"b\", \"c\"]\n    }\n  }\n}";
        assert_eq!(
            locate(text, Format::Json, &path(&["agents", "a", "fallback"])),
            Some((5, 7))
        );
        assert_eq!(
            locate(text, Format::Json, &path(&["agents", "a", "fallback", "1"])),
            Some((5, 25))
        );
        assert_eq!(
            locate(text, Format::Json, &path(&["agents", "x", "n", "1", "k"])),
            Some((3, 36))
        );
        assert_eq!(
            locate(text, Format::Json, &path(&["agents", "a", "nothing"])),
            Some((4, 5))
        );
    }

    #[test]
    fn lines_and_columns_count_from_one_in_characters() {
        assert_eq!(line_column("ab\ncé d", 7), (2, 4));
        assert_eq!(line_column("", 10), (1, 1));
    }
}
