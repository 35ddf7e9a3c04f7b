//! Prometheus text exposition (format 0.0.4) of the service's own counters, and the per-route
//! HTTP request metrics. Written by hand: a few dozen series do not need a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use super::histogram::{self, Histogram, HistogramSnapshot};

/// Requests by (route, method, status), with their latency.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    // Keys are bounded: routes are the router's patterns (or "unmatched"), methods a fixed set,
    // statuses the codes the service answers.
    routes: Mutex<BTreeMap<(String, &'static str, u16), Histogram>>,
}

impl HttpMetrics {
    /// Records one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let method = match method {
            "GET" => "GET",
            "POST" => "POST",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "PUT" => "PUT",
            "HEAD" => "HEAD",
            _ => "other",
        };
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes
            .entry((route.to_owned(), method, status))
            .or_insert_with(|| Histogram::new(histogram::SECONDS_BUCKETS))
            .observe(seconds);
    }

    /// Writes `http_requests_total` and `http_request_duration_seconds`.
    pub fn render(&self, out: &mut Exposition) {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        out.help(
            "http_requests_total",
            "counter",
            "HTTP requests answered, by route, method and status.",
        );
        for ((route, method, status), h) in routes.iter() {
            let labels = [
                ("route", route.as_str()),
                ("method", method),
                ("status", &status.to_string()),
            ];
            out.sample("http_requests_total", &labels, h.snapshot().count as f64);
        }
        out.help(
            "http_request_duration_seconds",
            "histogram",
            "Time to answer HTTP requests.",
        );
        for ((route, method, status), h) in routes.iter() {
            let labels = [
                ("route", route.as_str()),
                ("method", method),
                ("status", &status.to_string()),
            ];
            out.histogram("http_request_duration_seconds", &labels, &h.snapshot());
        }
    }
}

/// A Prometheus text document being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` lines of a metric.
    pub fn help(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// A metric with its help and one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.help(name, kind, help);
        self.sample(name, &[], value);
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let escaped = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{escaped}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    /// The `_bucket`, `_sum` and `_count` samples of a histogram.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for (bound, count) in &h.buckets {
            let le = if bound.is_infinite() {
                "+Inf".to_owned()
            } else {
                format_value(*bound)
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, *count as f64);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }

    /// The document.
    pub fn finish(self) -> String {
        self.text
    }
}

fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}
