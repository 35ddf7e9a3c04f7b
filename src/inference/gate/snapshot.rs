//! What the gate shows: its counters and histograms at one moment, rendered for `/metrics`.

use serde::Serialize;

use crate::telemetry::histogram::HistogramSnapshot;
use crate::telemetry::prometheus::Exposition;

/// What the gate is doing now, and has done since start.
#[derive(Debug, Clone, Serialize)]
pub struct GateSnapshot {
    /// Model runs allowed at once.
    pub permits: usize,
    /// Permits held now.
    pub permits_in_use: usize,
    /// Model runs executing now.
    pub running: usize,
    /// Most model runs ever seen executing at once.
    pub max_running_observed: usize,
    /// Interactive requests waiting.
    pub waiting_interactive: usize,
    /// Background requests waiting.
    pub waiting_background: usize,
    /// Interactive requests admitted (decoding, waiting or running).
    pub admitted_interactive: usize,
    /// Background requests admitted (decoding, waiting or running).
    pub admitted_background: usize,
    /// Most photos per run.
    pub max_batch: usize,
    /// Estimated wait for a new interactive request, in seconds.
    pub estimated_wait_seconds: f64,
    /// Model runs completed.
    pub runs_total: u64,
    /// Photos embedded (each run of the model on a photo or a crop).
    pub images_total: u64,
    /// Photos the animal detector looked at (each a run of its own, under the same permits).
    pub detections_total: u64,
    /// Model runs that failed.
    pub failed_runs_total: u64,
    /// Requests rejected because too many waited.
    pub rejected_queue_full_total: u64,
    /// Requests rejected after waiting too long.
    pub rejected_wait_timeout_total: u64,
    /// Requests whose caller left before their run.
    pub cancelled_total: u64,
    /// Wait for a turn, interactive, seconds.
    pub wait_seconds_interactive: HistogramSnapshot,
    /// Wait for a turn, background, seconds.
    pub wait_seconds_background: HistogramSnapshot,
    /// Duration of model runs, seconds.
    pub run_seconds: HistogramSnapshot,
    /// Photos per run.
    pub batch_size: HistogramSnapshot,
}

impl GateSnapshot {
    /// Prometheus lines: permits, waiters, admissions, runs, rejections, and the wait, run and
    /// batch histograms.
    pub fn render(&self, out: &mut Exposition) {
        out.single(
            "lookalike_gate_permits",
            "gauge",
            "Model runs allowed at once.",
            self.permits as f64,
        );
        out.single(
            "lookalike_gate_permits_in_use",
            "gauge",
            "Gate permits held now.",
            self.permits_in_use as f64,
        );
        out.help(
            "lookalike_gate_waiting",
            "gauge",
            "Requests waiting for the model, by priority.",
        );
        out.sample(
            "lookalike_gate_waiting",
            &[("priority", "interactive")],
            self.waiting_interactive as f64,
        );
        out.sample(
            "lookalike_gate_waiting",
            &[("priority", "background")],
            self.waiting_background as f64,
        );
        out.help(
            "lookalike_gate_admitted",
            "gauge",
            "Requests admitted to the gate (decoding, waiting or running), by priority.",
        );
        out.sample(
            "lookalike_gate_admitted",
            &[("priority", "interactive")],
            self.admitted_interactive as f64,
        );
        out.sample(
            "lookalike_gate_admitted",
            &[("priority", "background")],
            self.admitted_background as f64,
        );
        out.single(
            "lookalike_gate_runs_total",
            "counter",
            "Model runs.",
            self.runs_total as f64,
        );
        out.single(
            "lookalike_gate_images_total",
            "counter",
            "Photos embedded.",
            self.images_total as f64,
        );
        out.single(
            "lookalike_gate_detections_total",
            "counter",
            "Photos the animal detector looked at.",
            self.detections_total as f64,
        );
        out.single(
            "lookalike_gate_failed_runs_total",
            "counter",
            "Model runs that failed.",
            self.failed_runs_total as f64,
        );
        out.single(
            "lookalike_gate_cancelled_total",
            "counter",
            "Requests whose caller left before their run.",
            self.cancelled_total as f64,
        );
        out.help(
            "lookalike_gate_rejections_total",
            "counter",
            "Requests the gate turned away, by reason.",
        );
        out.sample(
            "lookalike_gate_rejections_total",
            &[("reason", "queue_full")],
            self.rejected_queue_full_total as f64,
        );
        out.sample(
            "lookalike_gate_rejections_total",
            &[("reason", "wait_timeout")],
            self.rejected_wait_timeout_total as f64,
        );
        out.help(
            "lookalike_gate_wait_seconds",
            "histogram",
            "Wait for a model run, by priority.",
        );
        out.histogram(
            "lookalike_gate_wait_seconds",
            &[("priority", "interactive")],
            &self.wait_seconds_interactive,
        );
        out.histogram(
            "lookalike_gate_wait_seconds",
            &[("priority", "background")],
            &self.wait_seconds_background,
        );
        out.help(
            "lookalike_gate_run_seconds",
            "histogram",
            "Duration of model runs.",
        );
        out.histogram("lookalike_gate_run_seconds", &[], &self.run_seconds);
        out.help(
            "lookalike_gate_batch_size",
            "histogram",
            "Photos per model run.",
        );
        out.histogram("lookalike_gate_batch_size", &[], &self.batch_size);
    }
}
