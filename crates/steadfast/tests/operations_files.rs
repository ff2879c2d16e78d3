//! The operator's files agree with the library: docs/operations.md lists exactly the metrics
//! steadfast describes, and the shipped Prometheus alert rules are well-formed, name only
//! those metrics, and pass `promtool` when it is installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use metrics::Unit;
use steadfast::telemetry::{self, METRICS, MetricKind};
use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative))
        .unwrap_or_else(|error| panic!("cannot read {relative}: {error}"))
}

fn kind_name(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram => "histogram",
    }
}

#[test]
fn the_operations_table_lists_every_described_metric_with_its_type_and_unit() {
    let docs = read("docs/operations.md");
    let section = docs
        .split("\n## Metrics\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/operations.md has a `## Metrics` section");
    let mut listed = BTreeSet::new();
    for row in section
        .lines()
        .filter(|line| line.starts_with("| `steadfast_"))
    {
        let cells: Vec<&str> = row
            .split(" | ")
            .map(|cell| cell.trim_matches('|').trim())
            .collect();
        let name = cells[0].trim_matches('`');
        let metric = telemetry::metric(name).unwrap_or_else(|| {
            panic!("docs/operations.md lists `{name}`, which steadfast does not describe")
        });
        assert_eq!(cells[1], kind_name(metric.kind), "the type of {name}");
        let unit = match metric.unit {
            None => "-",
            Some(Unit::Seconds) => "seconds",
            Some(Unit::Count) => "count",
            Some(other) => panic!("{name}: document the unit {other:?}"),
        };
        assert_eq!(cells[2], unit, "the unit of {name}");
        for label in metric.labels {
            assert!(
                cells[3].contains(&format!("`{label}`")),
                "{name}: label `{label}` not documented"
            );
        }
        assert!(listed.insert(name), "{name} is listed twice");
    }
    let described: BTreeSet<&str> = METRICS.iter().map(|metric| metric.name).collect();
    assert_eq!(
        listed, described,
        "docs/operations.md vs steadfast::telemetry::METRICS"
    );
}

/// The metric names in a PromQL expression: `steadfast_` identifiers, with a histogram's
/// `_bucket`, `_sum` and `_count` series mapped to the histogram.
fn metrics_named_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("steadfast_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                let metric = telemetry::metric(base)?;
                (metric.kind == MetricKind::Histogram).then_some(base)
            })
            .unwrap_or(name);
        names.push(base.to_owned());
        rest = &tail[end..];
    }
    names
}

fn is_duration(text: &str) -> bool {
    let units = ["ms", "s", "m", "h", "d", "w", "y"];
    !text.is_empty()
        && units.iter().any(|unit| {
            text.strip_suffix(unit).is_some_and(|number| {
                !number.is_empty() && number.chars().all(|c| c.is_ascii_digit())
            })
        })
}

#[test]
fn the_alert_rules_are_complete_and_name_only_described_metrics() {
    let text = read("deploy/prometheus/steadfast-alerts.yml");
    let docs = YamlLoader::load_from_str(&text).expect("the alert rules are YAML");
    assert_eq!(docs.len(), 1, "one YAML document");
    let groups = docs[0]["groups"].as_vec().expect("a `groups` list");
    assert!(!groups.is_empty());
    let mut alerts = BTreeSet::new();
    let mut used = BTreeSet::new();
    for group in groups {
        let group_name = group["name"].as_str().expect("every group has a name");
        let rules = group["rules"].as_vec().expect("every group has rules");
        assert!(!rules.is_empty(), "group {group_name} has no rule");
        for rule in rules {
            let alert = rule["alert"]
                .as_str()
                .unwrap_or_else(|| panic!("a rule of {group_name} has no `alert`: {rule:?}"));
            assert!(alerts.insert(alert.to_owned()), "{alert} is defined twice");
            let expr = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{alert}: no `expr`"));
            let for_ = rule["for"]
                .as_str()
                .unwrap_or_else(|| panic!("{alert}: no `for`"));
            assert!(
                is_duration(for_),
                "{alert}: `for: {for_}` is not a duration"
            );
            let severity = rule["labels"]["severity"]
                .as_str()
                .unwrap_or_else(|| panic!("{alert}: no `labels.severity`"));
            assert!(
                ["page", "ticket"].contains(&severity),
                "{alert}: severity `{severity}` is neither page nor ticket"
            );
            let annotations = rule["annotations"]
                .as_hash()
                .unwrap_or_else(|| panic!("{alert}: no `annotations`"));
            let summary = annotations
                .get(&Yaml::String("summary".into()))
                .and_then(Yaml::as_str)
                .unwrap_or_else(|| panic!("{alert}: no `annotations.summary`"));
            assert!(!summary.is_empty());
            let names = metrics_named_in(expr);
            assert!(!names.is_empty(), "{alert}: names no steadfast metric");
            for name in names {
                assert!(
                    telemetry::metric(&name).is_some(),
                    "{alert}: `{name}` is not a metric steadfast describes"
                );
                used.insert(name);
            }
        }
    }
    // The alerts watch the new series too, not only the old counters.
    for name in [
        "steadfast_breaker_state",
        "steadfast_call_duration_seconds",
        "steadfast_call_attempts",
        "steadfast_breaker_state_seconds_total",
    ] {
        assert!(used.contains(name), "no alert uses {name}");
    }
}

#[test]
fn the_expression_scanner_maps_histogram_series_and_keeps_unknown_names() {
    assert_eq!(
        metrics_named_in(
            "histogram_quantile(0.9, rate(steadfast_call_duration_seconds_bucket[5m])) / steadfast_calls_total"
        ),
        ["steadfast_call_duration_seconds", "steadfast_calls_total"]
    );
    // A counter's (made-up) `_count` is not a histogram series: kept as written, so the rule
    // check above rejects it.
    assert_eq!(
        metrics_named_in("steadfast_calls_total_count"),
        ["steadfast_calls_total_count"]
    );
    assert!(is_duration("0m") && is_duration("15m") && !is_duration("m") && !is_duration("5 m"));
}

/// `promtool`, from `STEADFAST_PROMTOOL` or the `PATH`.
fn promtool() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STEADFAST_PROMTOOL") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    })
}

/// With `promtool` installed (Debian's `prometheus` package; CI installs it and sets
/// `STEADFAST_REQUIRE_PROMTOOL=1`), Prometheus itself checks the rules and runs their unit
/// tests. Without it, the schema test above is the check.
#[test]
fn promtool_accepts_the_alert_rules_and_their_unit_tests() {
    let Some(promtool) = promtool() else {
        assert!(
            std::env::var_os("STEADFAST_REQUIRE_PROMTOOL").is_none(),
            "STEADFAST_REQUIRE_PROMTOOL is set but promtool is not installed: \
             install Debian's `prometheus` package or set STEADFAST_PROMTOOL"
        );
        eprintln!("promtool not found: the alert rules were checked by the schema test only");
        return;
    };
    let dir = repo_file("deploy/prometheus");
    for args in [
        ["check", "rules", "steadfast-alerts.yml"],
        ["test", "rules", "steadfast-alerts.test.yml"],
    ] {
        let output = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", promtool.display()));
        assert!(
            output.status.success(),
            "promtool {}:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
