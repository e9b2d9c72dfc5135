//! Metrics in CloudWatch's embedded metric format (EMF): one JSON line on stdout per event, which
//! CloudWatch Logs turns into metrics. No API call on the hot path, nothing to batch or flush.
//! Namespace `Inventory`, dimension `Stack` (and `Path` where it says which way a hold lapsed);
//! the line also carries properties (product, hold) that make it searchable in Logs Insights.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "Inventory";

/// The counted events and measures; their names are what the template's alarms and dashboard use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    HoldsGranted,
    HoldsRefused,
    Commits,
    Releases,
    /// A lapsed hold put back on sale; `Path` says by the TTL stream or by the backstop.
    Expiries,
    /// Seconds from a hold's expiry to its units being back on sale.
    ReleaseLagSeconds,
    AlertsPublished,
    /// Alert states the backstop had to repair or alerts it had to send: the stream missed them.
    BackstopRepairs,
    /// Seconds from a stream record's creation to its processing.
    StreamLagSeconds,
    HistoryEntries,
    /// Items whose counters the reconciler set from their holds: they had drifted.
    CounterRepairs,
    /// Holds on a sharded item that took units from more than one shard (their own was short).
    HoldsSpilled,
    /// Units moved between two shards of an item by the rebalancer.
    ShardRebalances,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Self::HoldsGranted => "HoldsGranted",
            Self::HoldsRefused => "HoldsRefused",
            Self::Commits => "Commits",
            Self::Releases => "Releases",
            Self::Expiries => "Expiries",
            Self::ReleaseLagSeconds => "ReleaseLagSeconds",
            Self::AlertsPublished => "AlertsPublished",
            Self::BackstopRepairs => "BackstopRepairs",
            Self::StreamLagSeconds => "StreamLagSeconds",
            Self::HistoryEntries => "HistoryEntries",
            Self::CounterRepairs => "CounterRepairs",
            Self::HoldsSpilled => "HoldsSpilled",
            Self::ShardRebalances => "ShardRebalances",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::ReleaseLagSeconds | Self::StreamLagSeconds => "Seconds",
            _ => "Count",
        }
    }
}

/// The `Stack` dimension: the template sets STACK_NAME; without it (unit tests) the lines still parse.
fn stack() -> &'static str {
    static STACK: OnceLock<String> = OnceLock::new();
    STACK.get_or_init(|| std::env::var("STACK_NAME").unwrap_or_else(|_| "unknown".to_owned()))
}

/// The EMF document for some measures taken together, with an optional `Path` dimension.
pub fn document(
    measures: &[(Metric, f64)],
    path: Option<&str>,
    properties: &[(&str, &str)],
    timestamp_ms: i64,
) -> Value {
    let mut dimensions = vec!["Stack"];
    let mut line = Map::new();
    line.insert("Stack".into(), stack().into());
    if let Some(path) = path {
        dimensions.push("Path");
        line.insert("Path".into(), path.into());
    }
    for (name, value) in properties {
        line.insert((*name).into(), (*value).into());
    }
    for (metric, value) in measures {
        line.insert(metric.name().into(), json!(value));
    }
    let definitions: Vec<Value> =
        measures.iter().map(|(metric, _)| json!({"Name": metric.name(), "Unit": metric.unit()})).collect();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": definitions}],
        }),
    );
    Value::Object(line)
}

/// Writes the measures as one EMF line.
pub fn emit(measures: &[(Metric, f64)], path: Option<&str>, properties: &[(&str, &str)]) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    println!("{}", document(measures, path, properties, now_ms));
}

/// One occurrence of an event.
pub fn count(metric: Metric, properties: &[(&str, &str)]) {
    emit(&[(metric, 1.0)], None, properties);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let line = document(
            &[(Metric::Expiries, 1.0), (Metric::ReleaseLagSeconds, 2.5)],
            Some("ttl"),
            &[("reservation_id", "r-1")],
            1_700_000_000_000,
        );
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(directive["Namespace"], "Inventory");
        assert_eq!(directive["Dimensions"], json!([["Stack", "Path"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Expiries", "Unit": "Count"}, {"Name": "ReleaseLagSeconds", "Unit": "Seconds"}])
        );
        // Every dimension and metric named in the directive is a top-level member, as EMF requires.
        assert_eq!((line["Path"].as_str(), line["Expiries"].as_f64()), (Some("ttl"), Some(1.0)));
        assert_eq!(line["ReleaseLagSeconds"], 2.5);
        assert!(line["Stack"].is_string());
        assert_eq!(line["reservation_id"], "r-1");
    }
}
