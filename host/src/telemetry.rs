//! The server's Prometheus series (contract §8). Each server owns its
//! recorder rather than installing a process-global one, so several servers
//! in one process (tests) never mix their counts. No series has a tenant
//! label: tenants must not learn about each other from `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::policy_set::{PolicySet, Status};

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Histogram buckets for durations, in seconds: policy runs take
/// microseconds, their deadlines reach 10 s.
const DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Approval holds moved to `expired`, by the sweeper or on touch.
const APPROVALS_EXPIRED: &str = "wcp_approvals_expired_total";

/// What the series need from one policy run, in plain values.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRunSample<'a> {
    /// The policy's id.
    pub policy_id: &'a str,
    /// Its fault kind, when it faulted.
    pub fault: Option<&'a str>,
    /// Log bytes dropped past its budget.
    pub dropped_log_bytes: u64,
    /// How long it ran; `None` when it never ran (not loaded).
    pub took: Option<Duration>,
}

/// This server's recorder and its renderer.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A recorder with the series described and duration buckets set.
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let describe = [
            (
                "wcp_http_requests_total",
                "HTTP requests by route template, method and status",
            ),
            (
                "wcp_policy_errors_total",
                "Policy runs that produced no verdict, by kind",
            ),
            (
                "wcp_gate_requests_total",
                "Answered gates by decision and source (fresh or cached)",
            ),
            (
                "wcp_policy_log_dropped_bytes_total",
                "Bytes of policy output kept out of the server log, by policy",
            ),
            (
                "wcp_policy_reloads_total",
                "Policy loads by result (loaded, failed, removed)",
            ),
            (
                "wcp_approvals_expired_total",
                "Approval holds that timed out",
            ),
        ];
        for (name, help) in describe {
            recorder.describe_counter(name.into(), None, help.into());
        }
        // Registered up front so the series reads 0, not absent, before
        // the first expiry: a rate over a missing series shows nothing.
        recorder
            .register_counter(&Key::from_name(APPROVALS_EXPIRED), &METADATA)
            .increment(0);
        for (name, help) in [
            ("wcp_policies", "Policies by load status"),
            ("wcp_workflows", "Workflows by status, counted when scraped"),
        ] {
            recorder.describe_gauge(name.into(), None, help.into());
        }
        for (name, help) in [
            (
                "wcp_policy_evaluation_duration_seconds",
                "Time of one policy evaluation (instantiation plus call)",
            ),
            (
                "wcp_gate_duration_seconds",
                "Time of an answered gate, from the request to the committed answer",
            ),
        ] {
            recorder.describe_histogram(name.into(), Some(Unit::Seconds), help.into());
        }
        let metrics = Metrics {
            recorder: Arc::new(recorder),
            handle,
        };
        // Counters that may stay at zero for a long time still show up, so
        // a dashboard's rate() has a series from the first scrape.
        for result in ["loaded", "failed", "removed"] {
            metrics.policy_reloads(result, 0);
        }
        metrics
    }

    fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(key, value)| Label::new(*key, value.clone()))
            .collect();
        Key::from_parts(name, labels)
    }

    /// Counts one answered HTTP request.
    pub fn http_request(&self, route: &str, method: &str, status: u16) {
        let key = Self::key(
            "wcp_http_requests_total",
            &[
                ("route", route.to_owned()),
                ("method", method.to_owned()),
                ("status", status.to_string()),
            ],
        );
        self.recorder.register_counter(&key, &METADATA).increment(1);
    }

    /// Counts approval holds that timed out.
    pub fn approvals_expired(&self, count: u64) {
        self.recorder
            .register_counter(&Key::from_name(APPROVALS_EXPIRED), &METADATA)
            .increment(count);
    }

    /// Records one policy run: its error kind if it faulted, the log bytes
    /// it lost past its budget, and how long it ran when it was loaded
    /// (`None`: it never ran, so there is no duration to record).
    pub fn policy_run(&self, run: PolicyRunSample<'_>) {
        let policy = ("policy", run.policy_id.to_owned());
        if let Some(kind) = run.fault {
            let key = Self::key(
                "wcp_policy_errors_total",
                &[policy.clone(), ("kind", kind.to_owned())],
            );
            self.recorder.register_counter(&key, &METADATA).increment(1);
        }
        if run.dropped_log_bytes > 0 {
            let key = Self::key(
                "wcp_policy_log_dropped_bytes_total",
                std::slice::from_ref(&policy),
            );
            self.recorder
                .register_counter(&key, &METADATA)
                .increment(run.dropped_log_bytes);
        }
        if let Some(took) = run.took {
            let key = Self::key("wcp_policy_evaluation_duration_seconds", &[policy]);
            self.recorder
                .register_histogram(&key, &METADATA)
                .record(took.as_secs_f64());
        }
    }

    /// Counts one answered gate: its decision, whether it was `fresh` or
    /// `cached`, and how long it took.
    pub fn gate(&self, decision: &str, source: &str, took: Duration) {
        let key = Self::key(
            "wcp_gate_requests_total",
            &[
                ("decision", decision.to_owned()),
                ("source", source.to_owned()),
            ],
        );
        self.recorder.register_counter(&key, &METADATA).increment(1);
        let key = Self::key("wcp_gate_duration_seconds", &[]);
        self.recorder
            .register_histogram(&key, &METADATA)
            .record(took.as_secs_f64());
    }

    /// Adds `count` policy loads with `result` (`loaded`, `failed`,
    /// `removed`).
    pub fn policy_reloads(&self, result: &str, count: u64) {
        let key = Self::key("wcp_policy_reloads_total", &[("result", result.to_owned())]);
        self.recorder
            .register_counter(&key, &METADATA)
            .increment(count);
    }

    /// Sets the workflow gauges from a count per status; statuses absent
    /// from `counts` are set to zero.
    pub fn workflows(&self, counts: &[(String, u64)]) {
        for status in ["in_progress", "completed", "failed", "aborted"] {
            let count = counts
                .iter()
                .find(|(name, _)| name == status)
                .map_or(0, |(_, count)| *count);
            let key = Self::key("wcp_workflows", &[("status", status.to_owned())]);
            self.recorder
                .register_gauge(&key, &METADATA)
                .set(count as f64);
        }
    }

    /// Sets the policy gauges from a published set.
    pub fn policies(&self, set: &PolicySet) {
        let failed = set
            .entries()
            .iter()
            .filter(|entry| entry.status == Status::Failed)
            .count();
        let loaded = set.entries().len() - failed;
        for (status, count) in [("loaded", loaded), ("failed", failed)] {
            let key = Self::key("wcp_policies", &[("status", status.to_owned())]);
            self.recorder
                .register_gauge(&key, &METADATA)
                .set(count as f64);
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_run_records_its_duration_and_its_fault_kind() {
        let metrics = Metrics::new();
        metrics.policy_run(PolicyRunSample {
            policy_id: "global/panic",
            fault: Some("trap"),
            dropped_log_bytes: 0,
            took: Some(Duration::from_micros(1500)),
        });
        let text = metrics.render();
        assert!(
            text.contains(r#"wcp_policy_errors_total{policy="global/panic",kind="trap"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"wcp_policy_evaluation_duration_seconds_count{policy="global/panic"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn expired_approvals_count_from_zero() {
        let metrics = Metrics::new();
        assert!(
            metrics.render().contains("wcp_approvals_expired_total 0"),
            "{}",
            metrics.render()
        );
        metrics.approvals_expired(2);
        metrics.approvals_expired(1);
        let text = metrics.render();
        assert!(text.contains("wcp_approvals_expired_total 3"), "{text}");
    }
}
