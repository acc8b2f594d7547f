//! Per-endpoint call counters: `(dc, service, method, route)` → calls, as JSON for
//! tests and in Prometheus text format on `/_twin/metrics`.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet, Serialize)]
pub struct CallLabels {
    pub dc: String,
    pub service: String,
    pub method: String,
    /// The route template, e.g. `/api2/json/nodes/{node}/qemu/{vmid}/config`.
    pub route: String,
    /// The status class of the answer (`2xx`, `4xx`, `5xx`).
    pub status: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Call {
    #[serde(flatten)]
    pub labels: CallLabels,
    pub count: u64,
}

pub struct Counters {
    calls: Mutex<BTreeMap<CallLabels, u64>>,
    family: Family<CallLabels, Counter>,
    registry: Registry,
}

impl Default for Counters {
    fn default() -> Self {
        let family = Family::<CallLabels, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "strata_twin_api_calls",
            "API calls served by the twin, per DC, service, method, route and status class",
            family.clone(),
        );
        Counters {
            calls: Mutex::new(BTreeMap::new()),
            family,
            registry,
        }
    }
}

impl Counters {
    pub fn record(&self, labels: CallLabels) {
        self.family.get_or_create(&labels).inc();
        *self.calls.lock().entry(labels).or_default() += 1;
    }

    /// Every counter, sorted.
    pub fn snapshot(&self) -> Vec<Call> {
        self.calls
            .lock()
            .iter()
            .map(|(l, c)| Call {
                labels: l.clone(),
                count: *c,
            })
            .collect()
    }

    /// Forget the JSON counts (the Prometheus counters stay monotonic).
    pub fn reset(&self) {
        self.calls.lock().clear();
    }

    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
