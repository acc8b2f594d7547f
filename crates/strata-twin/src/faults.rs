//! Fault injection: per request (5xx, 429, timeouts, dropped connections, slow tasks)
//! and per object (a named object misbehaves until the fault is cleared).
//!
//! Per-request faults are decided by [`Faults::roll`] from a seeded RNG, so a run with
//! a fixed `--seed` injects the same sequence of faults for the same sequence of
//! requests.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Probabilities of per-request faults, written `5xx=0.1,429=0.05,timeout=0.02,slow_task=0.1`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// A 5xx answer in the vendor's error format.
    #[serde(rename = "5xx", default)]
    pub http_5xx: f64,
    /// A 429 with `Retry-After`.
    #[serde(rename = "429", default)]
    pub http_429: f64,
    /// The request hangs for `timeout_ms`, then gets a 504.
    #[serde(default)]
    pub timeout: f64,
    /// The connection is dropped after the headers.
    #[serde(default)]
    pub drop: f64,
    /// An asynchronous task (Proxmox task, MAAS transition) takes 10x longer.
    #[serde(default)]
    pub slow_task: f64,
    /// How long a timed-out request hangs (default 10000 ms).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl FaultSpec {
    pub fn is_empty(&self) -> bool {
        self.http_5xx == 0.0
            && self.http_429 == 0.0
            && self.timeout == 0.0
            && self.drop == 0.0
            && self.slow_task == 0.0
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "5xx={},429={},timeout={},drop={},slow_task={}",
            self.http_5xx, self.http_429, self.timeout, self.drop, self.slow_task
        )
    }
}

impl FromStr for FaultSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = FaultSpec::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: write KIND=PROBABILITY, e.g. 5xx=0.1"))?;
            if k == "timeout_ms" {
                out.timeout_ms = Some(
                    v.parse()
                        .map_err(|_| format!("`{v}` is not a number of milliseconds"))?,
                );
                continue;
            }
            let p: f64 = v
                .parse()
                .map_err(|_| format!("`{v}` is not a probability"))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("`{part}`: probability must be between 0 and 1"));
            }
            match k {
                "5xx" => out.http_5xx = p,
                "429" => out.http_429 = p,
                "timeout" => out.timeout = p,
                "drop" => out.drop = p,
                "slow_task" => out.slow_task = p,
                other => {
                    return Err(format!(
                        "unknown fault `{other}`; use 5xx, 429, timeout, drop, slow_task or timeout_ms"
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// What to do to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    None,
    ServerError,
    TooManyRequests,
    Timeout,
    Drop,
}

/// Key of a per-object fault.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    pub dc: String,
    pub service: String,
    pub id: String,
}

/// A per-object fault: a name the service understands (e.g. `commission_fails`,
/// `task_fails`, `gpu_degraded`, `error_500`) and how many times it fires
/// (`None`: until cleared).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectFault {
    pub fault: String,
    #[serde(default)]
    pub times: Option<u32>,
}

pub struct Faults {
    spec: Mutex<FaultSpec>,
    rng: Mutex<StdRng>,
    objects: Mutex<BTreeMap<ObjectKey, ObjectFault>>,
}

impl Faults {
    pub fn new(spec: FaultSpec, seed: u64) -> Self {
        let rng = if seed == 0 {
            StdRng::from_os_rng()
        } else {
            StdRng::seed_from_u64(seed)
        };
        Faults {
            spec: Mutex::new(spec),
            rng: Mutex::new(rng),
            objects: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn spec(&self) -> FaultSpec {
        self.spec.lock().clone()
    }

    pub fn set_spec(&self, spec: FaultSpec) {
        *self.spec.lock() = spec;
    }

    pub fn timeout_ms(&self) -> u64 {
        self.spec.lock().timeout_ms.unwrap_or(10_000)
    }

    /// Decide the fate of one request.
    pub fn roll(&self) -> Injected {
        let spec = self.spec.lock().clone();
        if spec.is_empty() {
            return Injected::None;
        }
        let x: f64 = self.rng.lock().random();
        let mut edge = spec.http_5xx;
        if x < edge {
            return Injected::ServerError;
        }
        edge += spec.http_429;
        if x < edge {
            return Injected::TooManyRequests;
        }
        edge += spec.timeout;
        if x < edge {
            return Injected::Timeout;
        }
        edge += spec.drop;
        if x < edge {
            return Injected::Drop;
        }
        Injected::None
    }

    /// Should this asynchronous task run slowly?
    pub fn slow_task(&self) -> bool {
        let p = self.spec.lock().slow_task;
        p > 0.0 && self.rng.lock().random::<f64>() < p
    }

    /// A random number for services that need one (ids, jitter), from the seeded RNG.
    pub fn random_u64(&self) -> u64 {
        self.rng.lock().random()
    }

    pub fn set_object(&self, key: ObjectKey, fault: ObjectFault) {
        self.objects.lock().insert(key, fault);
    }

    pub fn clear_object(&self, key: &ObjectKey) -> bool {
        self.objects.lock().remove(key).is_some()
    }

    pub fn objects(&self) -> Vec<(ObjectKey, ObjectFault)> {
        self.objects
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The fault on an object, consuming one use of it.
    pub fn take_object(&self, dc: &str, service: &str, id: &str) -> Option<String> {
        let key = ObjectKey {
            dc: dc.into(),
            service: service.into(),
            id: id.into(),
        };
        let mut objects = self.objects.lock();
        let f = objects.get_mut(&key)?;
        let name = f.fault.clone();
        match &mut f.times {
            Some(0) => {
                objects.remove(&key);
                return None;
            }
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    objects.remove(&key);
                }
            }
            None => {}
        }
        Some(name)
    }

    /// The fault on an object, without consuming it.
    pub fn peek_object(&self, dc: &str, service: &str, id: &str) -> Option<String> {
        let key = ObjectKey {
            dc: dc.into(),
            service: service.into(),
            id: id.into(),
        };
        self.objects.lock().get(&key).map(|f| f.fault.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form() {
        let f: FaultSpec = "5xx=0.1,429=0.05,timeout=0.02,slow_task=0.1"
            .parse()
            .expect("spec");
        assert_eq!(f.http_5xx, 0.1);
        assert_eq!(f.http_429, 0.05);
        assert_eq!(f.timeout, 0.02);
        assert_eq!(f.slow_task, 0.1);
        assert!("5xx=2".parse::<FaultSpec>().is_err());
        assert!("boom=0.1".parse::<FaultSpec>().is_err());
        assert!("5xx".parse::<FaultSpec>().is_err());
    }

    #[test]
    fn rolls_follow_the_probabilities() {
        let f = Faults::new("5xx=0.5".parse().expect("spec"), 7);
        let n = (0..10_000)
            .filter(|_| f.roll() == Injected::ServerError)
            .count();
        assert!((4_500..5_500).contains(&n), "{n}");
        let none = Faults::new(FaultSpec::default(), 7);
        assert!((0..1000).all(|_| none.roll() == Injected::None));
    }

    #[test]
    fn object_faults_count_down() {
        let f = Faults::new(FaultSpec::default(), 1);
        let key = ObjectKey {
            dc: "a".into(),
            service: "maas".into(),
            id: "x".into(),
        };
        f.set_object(
            key,
            ObjectFault {
                fault: "boom".into(),
                times: Some(2),
            },
        );
        assert_eq!(f.take_object("a", "maas", "x").as_deref(), Some("boom"));
        assert_eq!(f.take_object("a", "maas", "x").as_deref(), Some("boom"));
        assert_eq!(f.take_object("a", "maas", "x"), None);
    }
}
