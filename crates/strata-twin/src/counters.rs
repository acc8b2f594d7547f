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
    /// `(dc, service)` → (requests in flight now, most ever in flight).
    in_flight: Mutex<BTreeMap<(String, String), (u64, u64)>>,
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
            in_flight: Mutex::new(BTreeMap::new()),
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

    /// Forget the JSON counts and concurrency peaks (the Prometheus counters stay
    /// monotonic).
    pub fn reset(&self) {
        self.calls.lock().clear();
        for v in self.in_flight.lock().values_mut() {
            v.1 = v.0;
        }
    }

    /// A request to `(dc, service)` started; returns a guard that ends it.
    pub fn enter(&self, dc: &str, service: &str) -> InFlight<'_> {
        let key = (dc.to_string(), service.to_string());
        let mut m = self.in_flight.lock();
        let e = m.entry(key.clone()).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(e.0);
        InFlight {
            counters: self,
            key,
        }
    }

    /// The most requests ever in flight at once, per `(dc, service)`.
    pub fn max_in_flight(&self) -> Vec<(String, String, u64)> {
        self.in_flight
            .lock()
            .iter()
            .map(|((d, s), (_, max))| (d.clone(), s.clone(), *max))
            .collect()
    }

    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Ends an in-flight request when dropped.
pub struct InFlight<'a> {
    counters: &'a Counters,
    key: (String, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.counters.in_flight.lock().get_mut(&self.key) {
            e.0 = e.0.saturating_sub(1);
        }
    }
}
