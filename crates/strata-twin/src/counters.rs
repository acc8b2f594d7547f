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
    /// DC → (MAAS machines in an active phase now, most ever at once).
    maas_active: Mutex<BTreeMap<String, (u64, u64)>>,
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
            maas_active: Mutex::new(BTreeMap::new()),
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
        for v in self.maas_active.lock().values_mut() {
            v.1 = v.0;
        }
    }

    /// `dc`'s MAAS has `now` machines in an active phase (commissioning, testing,
    /// deploying, disk erasing): what a limit on concurrent provisions bounds.
    pub fn maas_active(&self, dc: &str, now: u64) {
        let mut m = self.maas_active.lock();
        let e = m.entry(dc.to_string()).or_insert((0, 0));
        e.0 = now;
        e.1 = e.1.max(now);
    }

    /// Per DC: MAAS machines in an active phase when last seen, and the most at once.
    pub fn max_maas_active(&self) -> Vec<(String, u64, u64)> {
        self.maas_active
            .lock()
            .iter()
            .map(|(d, (now, max))| (d.clone(), *now, *max))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_records_the_peak_per_dc_and_service() {
        let c = Counters::default();
        {
            let _a = c.enter("fra1", "maas");
            let _b = c.enter("fra1", "maas");
            let _p = c.enter("fra1", "proxmox");
            {
                let _c = c.enter("fra1", "maas");
            }
            let _d = c.enter("fra1", "maas");
        }
        let _e = c.enter("ams1", "maas");
        let peaks = c.max_in_flight();
        assert_eq!(
            peaks,
            vec![
                ("ams1".to_string(), "maas".to_string(), 1),
                ("fra1".to_string(), "maas".to_string(), 3),
                ("fra1".to_string(), "proxmox".to_string(), 1),
            ]
        );
        // A reset keeps what is in flight now as the new peak.
        c.reset();
        let peaks = c.max_in_flight();
        assert_eq!(peaks[0].2, 1, "ams1 still has one request in flight");
        assert_eq!(peaks[1].2, 0, "fra1 has none");
    }

    #[test]
    fn maas_active_records_the_peak_per_dc() {
        let c = Counters::default();
        for n in [1, 4, 7, 3, 0] {
            c.maas_active("fra1", n);
        }
        c.maas_active("ams1", 2);
        assert_eq!(
            c.max_maas_active(),
            vec![("ams1".to_string(), 2, 2), ("fra1".to_string(), 0, 7)]
        );
        c.reset();
        assert_eq!(
            c.max_maas_active(),
            vec![("ams1".to_string(), 2, 2), ("fra1".to_string(), 0, 0)]
        );
    }
}
