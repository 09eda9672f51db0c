//! The text a `/metrics` endpoint answers: OpenMetrics (what `prometheus-client` encodes, and
//! what Prometheus asks for) or the Prometheus text format 0.0.4 (what `curl` gets, and what
//! `promtool check metrics` reads), chosen by the request's `Accept` ([`negotiate`]). Both the
//! publisher's and the viewer's `/metrics` answer so, and both encode their figures with
//! [`Encoder`].

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Encodes one metric at a time, for a `prometheus-client` `Collector`: a name ending in
/// `_bytes` is given the unit bytes, one ending in `_seconds` the unit seconds (the encoder puts
/// the suffix back), except in [`gauge_int`](Self::gauge_int).
pub struct Encoder<'a>(pub DescriptorEncoder<'a>);

/// A name's base and unit: `_bytes` and `_seconds` are units.
fn unit_of(name: &str) -> (&str, Option<Unit>) {
    if let Some(base) = name.strip_suffix("_bytes") {
        (base, Some(Unit::Bytes))
    } else if let Some(base) = name.strip_suffix("_seconds") {
        (base, Some(Unit::Seconds))
    } else {
        (name, None)
    }
}

impl Encoder<'_> {
    /// A counter.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let (name, unit) = unit_of(name);
        let metric = ConstCounter::new(value);
        metric.encode(
            self.0
                .encode_descriptor(name, help, unit.as_ref(), metric.metric_type())?,
        )
    }

    /// A counter of a fractional quantity (seconds).
    pub fn counter_f64(&mut self, name: &str, help: &str, value: f64) -> std::fmt::Result {
        let (name, unit) = unit_of(name);
        let metric = ConstCounter::new(value);
        metric.encode(
            self.0
                .encode_descriptor(name, help, unit.as_ref(), metric.metric_type())?,
        )
    }

    /// A gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> std::fmt::Result {
        let (name, unit) = unit_of(name);
        let metric = ConstGauge::new(value);
        metric.encode(
            self.0
                .encode_descriptor(name, help, unit.as_ref(), metric.metric_type())?,
        )
    }

    /// A gauge of a whole number (saturating at `i64::MAX`), without a unit.
    pub fn gauge_int(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
        metric.encode(
            self.0
                .encode_descriptor(name, help, None, metric.metric_type())?,
        )
    }
}

/// The `Content-Type` of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of [`prometheus_text`]'s text.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` values ask for OpenMetrics (as Prometheus' scrapes do).
pub fn wants_openmetrics<'a>(accept: impl IntoIterator<Item = &'a str>) -> bool {
    accept
        .into_iter()
        .any(|v| v.contains("application/openmetrics-text"))
}

/// The `Content-Type` and body answering a request with these `Accept` values, from the
/// OpenMetrics text `openmetrics`: itself when asked for, else [`prometheus_text`].
pub fn negotiate<'a>(
    accept: impl IntoIterator<Item = &'a str>,
    openmetrics: String,
) -> (&'static str, String) {
    if wants_openmetrics(accept) {
        (OPENMETRICS_CONTENT_TYPE, openmetrics)
    } else {
        (PROMETHEUS_CONTENT_TYPE, prometheus_text(&openmetrics))
    }
}

/// OpenMetrics text (as `prometheus-client` writes it) in the Prometheus text format 0.0.4, for
/// clients that do not ask for OpenMetrics: tools that read only the older format, such as
/// `promtool check metrics` (2.42 lints each OpenMetrics counter as a family `<name>_total`
/// without help, and exits 3). A counter family's `# HELP` and `# TYPE` name its `_total`
/// sample, `unknown` is `untyped`, and `# UNIT` and `# EOF` go. Other text is kept.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) {
                    format!("{name}_total")
                } else {
                    name.to_owned()
                };
                let tail = if prefix == "# TYPE " && tail == "unknown" {
                    "untyped"
                } else {
                    tail
                };
                out.push_str(prefix);
                out.push_str(&name);
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_untyped_and_other_lines_are_kept() {
        let om = "# HELP a A thing.\n# TYPE a unknown\na 1\n# HELP b_total_x B.\n\
                  # TYPE b_total_x gauge\nb_total_x{l=\"v\"} 2.5\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP a A thing.\n# TYPE a untyped\na 1\n# HELP b_total_x B.\n\
             # TYPE b_total_x gauge\nb_total_x{l=\"v\"} 2.5\n"
        );
    }

    #[test]
    fn counters_are_named_by_their_sample_and_the_accept_header_chooses() {
        let om = "# HELP x_bytes Bytes.\n# TYPE x_bytes counter\n# UNIT x_bytes bytes\n\
                  x_bytes_total 3\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP x_bytes_total Bytes.\n# TYPE x_bytes_total counter\nx_bytes_total 3\n"
        );
        let (ct, body) = negotiate(["application/openmetrics-text;version=1.0.0"], om.into());
        assert_eq!((ct, body.as_str()), (OPENMETRICS_CONTENT_TYPE, om));
        let (ct, body) = negotiate(["*/*"], om.into());
        assert_eq!(ct, PROMETHEUS_CONTENT_TYPE);
        assert!(!body.contains("# EOF"));
        let (ct, _) = negotiate([], om.into());
        assert_eq!(ct, PROMETHEUS_CONTENT_TYPE);
    }
}
