//! Tables and JSON for records and stats.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};
use steadfast::dead_letter::{DeadLetterRecord, DeadLetterStats};
use steadfast_http::replay::PreparedRequest;

pub(crate) fn age(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

fn millis(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn record_json(record: &DeadLetterRecord) -> Value {
    let request = match std::str::from_utf8(&record.request) {
        Ok(text) => json!({ "utf8": text }),
        Err(_) => json!({ "hex": hex(&record.request) }),
    };
    json!({
        "id": record.id.to_string(),
        "agent": record.agent,
        "time_unix_ms": millis(record.time),
        "age_seconds": record.age().as_secs(),
        "outcome": record.outcome.as_str(),
        "reason": record.reason,
        "error_chain": record.error_chain,
        "attempts": record.attempts,
        "trace_id": record.trace_id,
        "replay_count": record.replay_count,
        "request": request,
    })
}

pub(crate) fn stats_json(stats: &DeadLetterStats) -> Value {
    json!({
        "depth": stats.depth,
        "oldest_unix_ms": stats.oldest.map(millis),
        "oldest_age_seconds": stats.oldest.map(|_| stats.oldest_age().as_secs()),
        "appended_last_minute": stats.appended_last_minute,
        "by_agent": stats.by_agent,
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

pub(crate) fn stats_table(stats: &DeadLetterStats) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "depth                 {}", stats.depth);
    let oldest = if stats.depth == 0 {
        "-".to_string()
    } else {
        age(stats.oldest_age())
    };
    let _ = writeln!(out, "oldest                {oldest}");
    let _ = writeln!(out, "appended last minute  {}", stats.appended_last_minute);
    if !stats.by_agent.is_empty() {
        let _ = writeln!(out);
        let rows: Vec<[String; 2]> = stats
            .by_agent
            .iter()
            .map(|(agent, count)| [clip(agent, 40), count.to_string()])
            .collect();
        out.push_str(&table(&["AGENT", "COUNT"], &rows));
    }
    out
}

/// At most `max` characters on one line: control characters (a line break in an error
/// message) become spaces, so a cell never breaks the table.
pub(crate) fn clip(text: &str, max: usize) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.as_str();
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut clipped: String = text.chars().take(max.saturating_sub(1)).collect();
        clipped.push('…');
        clipped
    }
}

pub(crate) fn list_table(records: &[DeadLetterRecord]) -> String {
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                age(r.age()),
                clip(&r.agent, 24),
                r.outcome.as_str().to_string(),
                r.attempts.to_string(),
                r.replay_count.to_string(),
                clip(r.error_chain.first().map_or("", String::as_str), 60),
            ]
        })
        .collect();
    table(
        &[
            "ID", "AGE", "AGENT", "OUTCOME", "ATTEMPTS", "REPLAYS", "ERROR",
        ],
        &rows,
    )
}

/// Columns padded to their widest cell (counted in characters), two spaces apart; numbers
/// (columns named in `RIGHT_ALIGNED`) flush right; the last column is never padded.
pub(crate) fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    const RIGHT_ALIGNED: [&str; 7] = [
        "ATTEMPTS", "REPLAYS", "BYTES", "AGE", "COUNT", "DONE", "RUNNING",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = width.saturating_sub(cell.chars().count());
            if i + 1 == cells.len() {
                if RIGHT_ALIGNED.contains(&header[i]) {
                    text.push_str(&" ".repeat(pad));
                }
                text.push_str(cell);
            } else if RIGHT_ALIGNED.contains(&header[i]) {
                let _ = write!(text, "{}{cell}  ", " ".repeat(pad));
            } else {
                let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    for row in rows {
        line(row);
    }
    out
}

/// A dry run's plan: what each request would be, credentials by name only.
pub(crate) fn prepared_table(planned: &[(&DeadLetterRecord, PreparedRequest)]) -> String {
    let rows: Vec<[String; 6]> = planned
        .iter()
        .map(|(record, prepared)| {
            [
                record.id.to_string(),
                clip(&record.agent, 24),
                prepared.method.to_string(),
                clip(&prepared.url, 60),
                prepared.body_len.to_string(),
                prepared.headers.join(","),
            ]
        })
        .collect();
    table(&["ID", "AGENT", "METHOD", "URL", "BYTES", "HEADERS"], &rows)
}

pub(crate) fn prepared_json(record: &DeadLetterRecord, prepared: &PreparedRequest) -> Value {
    json!({
        "id": record.id.to_string(),
        "agent": record.agent,
        "age_seconds": record.age().as_secs(),
        "reason": record.reason,
        "method": prepared.method.as_str(),
        "url": prepared.url,
        "headers": prepared.headers,
        "body_bytes": prepared.body_len,
    })
}

pub(crate) fn show_text(record: &DeadLetterRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "id            {}", record.id);
    let _ = writeln!(out, "agent         {}", record.agent);
    let _ = writeln!(out, "age           {}", age(record.age()));
    let _ = writeln!(out, "time (unix ms) {}", millis(record.time));
    let _ = writeln!(
        out,
        "outcome       {}{}",
        record.outcome.as_str(),
        if record.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", record.reason)
        }
    );
    let _ = writeln!(out, "attempts      {}", record.attempts);
    let _ = writeln!(out, "replays       {}", record.replay_count);
    let _ = writeln!(
        out,
        "trace id      {}",
        record.trace_id.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "errors:");
    for (depth, line) in record.error_chain.iter().enumerate() {
        let _ = writeln!(out, "  {}{line}", "  ".repeat(depth));
    }
    let _ = writeln!(out, "request ({} bytes):", record.request.len());
    match std::str::from_utf8(&record.request) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&hex(&record.request)),
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_human_would_write_them() {
        assert_eq!(age(Duration::from_secs(5)), "5s");
        assert_eq!(age(Duration::from_secs(65)), "1m05s");
        assert_eq!(age(Duration::from_secs(7200 + 60)), "2h01m");
        assert_eq!(age(Duration::from_secs(2 * 86_400 + 3600)), "2d01h");
    }

    #[test]
    fn tables_align_every_column_whatever_the_cell_widths() {
        let rows = [
            [
                "01J".to_string(),
                "12".to_string(),
                "gpt-4o-ünïcode".to_string(),
            ],
            ["01JXYZ".to_string(), "3".to_string(), "x".to_string()],
        ];
        let text = table(&["ID", "ATTEMPTS", "ERROR"], &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID      ATTEMPTS  ERROR");
        assert_eq!(lines[1], "01J           12  gpt-4o-ünïcode");
        assert_eq!(lines[2], "01JXYZ         3  x");
        assert_eq!(clip("line one\nline two", 40), "line one line two");
    }
}
