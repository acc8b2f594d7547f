//! The server's own metrics (`GET /metrics`, OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub kind: String,
    pub step: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub provider: String,
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub leader: Gauge,
    pub commits: Family<StateLabels, Counter>,
    pub steps: Family<StepLabels, Counter>,
    pub webhooks: Family<WebhookLabels, Counter>,
    pub drift_resources: Gauge,
    pub waiting_plans: Gauge,
    /// Seconds from seeing a commit to its plan being stored.
    pub commit_to_plan: Histogram,
    pub reconciles: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("strata_server");
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this instance holds the leader lease",
            leader.clone(),
        );
        let commits = Family::<StateLabels, Counter>::default();
        registry.register(
            "commits",
            "Commits processed, by the state they ended in",
            commits.clone(),
        );
        let steps = Family::<StepLabels, Counter>::default();
        registry.register(
            "workflow_steps",
            "Workflow step attempts, by workflow kind, step and outcome",
            steps.clone(),
        );
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhooks",
            "Webhook deliveries, by provider and outcome",
            webhooks.clone(),
        );
        let drift_resources = Gauge::default();
        registry.register(
            "drift_resources",
            "Resources the last periodic reconcile found differing from the spec",
            drift_resources.clone(),
        );
        let waiting_plans = Gauge::default();
        registry.register(
            "waiting_plans",
            "Plans waiting for an approval",
            waiting_plans.clone(),
        );
        let commit_to_plan = Histogram::new([0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]);
        registry.register(
            "commit_to_plan_seconds",
            "Time from seeing a commit to its plan being stored",
            commit_to_plan.clone(),
        );
        let reconciles = Counter::default();
        registry.register("reconciles", "Periodic reconciles run", reconciles.clone());
        Metrics {
            registry,
            leader,
            commits,
            steps,
            webhooks,
            drift_resources,
            waiting_plans,
            commit_to_plan,
            reconciles,
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The exposition in Prometheus's classic text format (0.0.4), for clients that do
    /// not ask for OpenMetrics: a counter family is named with its `_total` suffix in
    /// HELP and TYPE (as `promtool check metrics` expects), and `# UNIT`/`# EOF` go.
    pub fn encode_classic(&self) -> String {
        classic_text(&self.encode())
    }

    pub fn step(&self, kind: &str, step: &str, outcome: &str) {
        self.steps
            .get_or_create(&StepLabels {
                kind: kind.into(),
                step: step.into(),
                outcome: outcome.into(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// OpenMetrics text → Prometheus text 0.0.4.
fn classic_text(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    let mut help: Option<(&str, &str)> = None;
    for line in open.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let shown = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some((h, text)) = help.take()
                && h == name
            {
                out.push_str(&format!("# HELP {shown} {text}\n"));
            }
            out.push_str(&format!("# TYPE {shown} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_carry_total_in_the_classic_format() {
        let m = Metrics::new();
        m.step("commit", "plan", "done");
        m.leader.set(1);
        let text = m.encode_classic();
        assert!(
            text.contains("# HELP strata_server_workflow_steps_total Workflow step attempts"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE strata_server_workflow_steps_total counter"),
            "{text}"
        );
        assert!(text.contains("strata_server_workflow_steps_total{kind=\"commit\",step=\"plan\",outcome=\"done\"} 1"), "{text}");
        assert!(
            text.contains("# TYPE strata_server_leader gauge\nstrata_server_leader 1"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(m.encode().ends_with("# EOF\n"));
    }
}
