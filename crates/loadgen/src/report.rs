//! Results: HDR latency histograms (microseconds, mergeable across processes through their
//! V2 serialization), and the [`Report`] every scenario ends with: a table for people, then
//! one JSON object on the last line of stdout for scripts.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::time::Duration;

/// The largest latency a histogram holds (one hour, in microseconds); larger values are
/// recorded as this.
const LATENCY_MAX_US: u64 = 3_600_000_000;

/// The percentiles every latency is reported at, with their JSON suffixes.
const PERCENTILES: [(&str, &str, f64); 4] = [
    ("p50", "p50", 0.50),
    ("p90", "p90", 0.90),
    ("p99", "p99", 0.99),
    ("p99.9", "p999", 0.999),
];

/// A latency distribution in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Latency {
    /// An empty distribution.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            hist: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                .context("making a latency histogram")?,
        })
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one value in microseconds (at least 1, at most an hour).
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, LATENCY_MAX_US));
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0 to 1) in milliseconds; `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (self.count() > 0).then(|| self.hist.value_at_quantile(q) as f64 / 1000.0)
    }

    /// The largest value in milliseconds; `None` when empty.
    pub fn max_ms(&self) -> Option<f64> {
        (self.count() > 0).then(|| self.hist.max() as f64 / 1000.0)
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) -> anyhow::Result<()> {
        self.hist
            .add(&other.hist)
            .map_err(|e| anyhow::anyhow!("merging histograms: {e:?}"))
    }

    /// The V2 serialization, base64: how a worker process hands its histogram over.
    pub fn encode(&self) -> anyhow::Result<String> {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.hist, &mut bytes)
            .map_err(|e| anyhow::anyhow!("serializing a histogram: {e:?}"))?;
        Ok(BASE64.encode(bytes))
    }

    /// The inverse of [`Latency::encode`].
    pub fn decode(text: &str) -> anyhow::Result<Self> {
        let bytes = BASE64.decode(text).context("histogram is not base64")?;
        let hist: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| anyhow::anyhow!("deserializing a histogram: {e:?}"))?;
        let mut out = Self::new()?;
        out.hist
            .add(&hist)
            .map_err(|e| anyhow::anyhow!("merging histograms: {e:?}"))?;
        Ok(out)
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
enum Row {
    /// A heading.
    Section(String),
    /// A label and its shown value.
    Value(String, String),
}

/// A scenario's results: table rows and JSON fields, built together so they agree.
#[derive(Debug, Clone)]
pub struct Report {
    scenario: String,
    rows: Vec<Row>,
    json: Map<String, Value>,
    notes: Vec<String>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &str) -> Self {
        let mut json = Map::new();
        json.insert("scenario".into(), json!(scenario));
        Self {
            scenario: scenario.to_owned(),
            rows: Vec::new(),
            json,
            notes: Vec::new(),
        }
    }

    /// Starts a group of rows under `title`.
    pub fn section(&mut self, title: &str) {
        self.rows.push(Row::Section(title.to_owned()));
    }

    /// A JSON field with no row.
    pub fn set(&mut self, key: &str, value: Value) {
        self.json.insert(key.to_owned(), value);
    }

    /// A row and a JSON field with the same value, shown as `shown`.
    pub fn value(&mut self, key: &str, label: &str, value: Value, shown: String) {
        self.rows.push(Row::Value(label.to_owned(), shown));
        self.set(key, value);
    }

    /// A count.
    pub fn count(&mut self, key: &str, label: &str, v: u64) {
        self.value(key, label, json!(v), v.to_string());
    }

    /// A number with a unit, shown with `decimals` decimals; `None` is null and "-".
    pub fn number(&mut self, key: &str, label: &str, v: Option<f64>, unit: &str, decimals: usize) {
        let v = v.filter(|v| v.is_finite());
        let shown = match v {
            Some(v) if unit.is_empty() => format!("{v:.decimals$}"),
            Some(v) => format!("{v:.decimals$} {unit}"),
            None => "-".into(),
        };
        let value = v.map_or(Value::Null, |v| json!(round(v, decimals.max(3))));
        self.value(key, label, value, shown);
    }

    /// A rate per second.
    pub fn rate(&mut self, key: &str, label: &str, v: f64) {
        self.number(key, label, Some(v), "/s", 1);
    }

    /// Percentiles and the maximum of `latency`, as `{prefix}_p50_ms` ... `{prefix}_max_ms`
    /// (p99.9 is `p999`), plus `{prefix}_samples`.
    pub fn latency(&mut self, prefix: &str, label: &str, latency: &Latency) {
        for (shown, suffix, q) in PERCENTILES {
            self.number(
                &format!("{prefix}_{suffix}_ms"),
                &format!("{label} {shown}"),
                latency.quantile_ms(q),
                "ms",
                3,
            );
        }
        self.number(
            &format!("{prefix}_max_ms"),
            &format!("{label} max"),
            latency.max_ms(),
            "ms",
            3,
        );
        self.set(&format!("{prefix}_samples"), json!(latency.count()));
    }

    /// A remark under the table (a hint, a warning); also in the JSON's `notes`.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The table, for people.
    pub fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .filter_map(|r| match r {
                Row::Value(label, _) => Some(label.chars().count()),
                Row::Section(_) => None,
            })
            .max()
            .unwrap_or(0);
        let mut out = format!("confab-loadgen {}\n", self.scenario);
        for row in &self.rows {
            match row {
                Row::Section(title) => {
                    let _ = writeln!(out, "{title}");
                }
                Row::Value(label, value) => {
                    let _ = writeln!(out, "  {label:<width$}  {value}");
                }
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// The one-line JSON object.
    pub fn json_line(&self) -> String {
        let mut json = self.json.clone();
        json.insert("notes".into(), json!(self.notes));
        Value::Object(json).to_string()
    }

    /// Prints the table, then the JSON line last.
    pub fn print(&self) {
        print!("{}", self.table());
        println!("{}", self.json_line());
    }
}

fn round(v: f64, decimals: usize) -> f64 {
    let scale = 10f64.powi(i32::try_from(decimals).unwrap_or(3));
    (v * scale).round() / scale
}

/// `part / whole` in percent, `None` when `whole` is zero.
pub fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| 100.0 * part / whole)
}

/// `count / secs`, 0 when no time passed.
pub fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_encoding_and_merge() {
        let mut a = Latency::new().unwrap();
        let mut b = Latency::new().unwrap();
        for ms in 1..=100 {
            a.record(Duration::from_millis(ms));
        }
        b.record(Duration::from_secs(2));
        let mut merged = Latency::decode(&a.encode().unwrap()).unwrap();
        merged
            .merge(&Latency::decode(&b.encode().unwrap()).unwrap())
            .unwrap();
        assert_eq!(merged.count(), 101);
        let p50 = merged.quantile_ms(0.5).unwrap();
        assert!((50.0..=51.1).contains(&p50), "{p50}");
        assert!((merged.max_ms().unwrap() - 2000.0).abs() < 2.0);
        assert!(Latency::new().unwrap().quantile_ms(0.5).is_none());
    }

    #[test]
    fn the_json_line_is_last_and_complete() {
        let mut r = Report::new("direct");
        r.count("lost", "lost", 0);
        r.rate("acked_per_sec", "acked", 12.345);
        r.latency("ack", "ack", &Latency::new().unwrap());
        r.note("hello");
        let table = r.table();
        assert!(table.contains("lost"));
        assert!(table.contains("12.3 /s"));
        let v: Value = serde_json::from_str(&r.json_line()).unwrap();
        assert_eq!(v["scenario"], "direct");
        assert_eq!(v["lost"], 0);
        assert_eq!(v["acked_per_sec"], 12.345);
        assert!(v["ack_p999_ms"].is_null());
        assert_eq!(v["notes"][0], "hello");
    }
}
