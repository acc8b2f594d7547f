//! Machines: listing and filters, enlistment, allocation with constraints, the status
//! machine (commission → test → ready → allocate → deploy → release), power, node
//! devices, script results and interfaces.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::http::{self, Params, Req, bad_request, conflict, invalid, invalid1, not_found, ok};
use super::model::{status as S, *};
use super::scripts::{self, Selected};
use super::{Maas, render, seed, storage};
use crate::MutateRequest;
use crate::faults::Faults;

mod allocation;
mod blockdevices;
mod crud;
mod hardware;
mod interfaces;
mod lifecycle;
mod listing;
mod mutate;
mod netconfig;
mod operations;
mod transitions;

pub use allocation::*;
pub use blockdevices::*;
pub use crud::*;
pub use hardware::*;
pub use interfaces::*;
pub use lifecycle::*;
pub use listing::*;
pub use mutate::*;
pub use netconfig::*;
pub use operations::*;
pub use transitions::*;

// ---------------------------------------------------------------------------------
// Helpers

fn machine_or_404<'a>(st: &'a State, sid: &str) -> Result<&'a Machine, Response> {
    st.machine(sid).ok_or_else(|| not_found("Machine"))
}

fn render_one(s: &Maas, st: &State, sid: &str) -> Response {
    match st.machine(sid) {
        Some(m) => ok(render::machine(st, &s.api, m)),
        None => not_found("Machine"),
    }
}

fn parse_num(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Memory in MiB from `4096`, `4G`, `512M`, ...
fn parse_memory(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.chars().last()? {
        'K' | 'k' => (&v[..v.len() - 1], 1.0 / 1024.0),
        'M' | 'm' => (&v[..v.len() - 1], 1.0),
        'G' | 'g' => (&v[..v.len() - 1], 1024.0),
        'T' | 't' => (&v[..v.len() - 1], 1024.0 * 1024.0),
        _ => (v, 1.0),
    };
    parse_num(num).map(|n| (n * mult) as u64)
}

fn fix_architecture(a: &str) -> String {
    if a.contains('/') {
        a.to_string()
    } else {
        format!("{a}/generic")
    }
}

fn check_architecture(a: &str) -> Result<String, Response> {
    let fixed = fix_architecture(a);
    if ARCHITECTURES.contains(&fixed.as_str()) {
        Ok(fixed)
    } else {
        Err(invalid1(
            "architecture",
            format!(
                "'{a}' is not a valid architecture.  It should be one of: {}.",
                ARCHITECTURES
                    .iter()
                    .map(|x| format!("'{x}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !h.starts_with('-')
        && !h.ends_with('-')
}

/// Power parameters from `power_parameters_<name>` fields and/or a JSON
/// `power_parameters` object (python-libmaas sends the latter on create).
fn power_params(p: &Params) -> Result<Vec<(String, String)>, Response> {
    let mut out: Vec<(String, String)> = p
        .keys_with_prefix("power_parameters_")
        .into_iter()
        .filter(|(k, _)| k != "skip_check")
        .collect();
    if let Some(j) = p.get_nonempty("power_parameters") {
        match serde_json::from_str::<Value>(j) {
            Ok(Value::Object(o)) => {
                for (k, v) in o {
                    let s = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.push((k, s));
                }
            }
            _ => return Err(invalid1("power_parameters", "Enter a valid JSON object.")),
        }
    }
    Ok(out)
}

fn check_power_type(t: &str) -> Result<(), Response> {
    if t.is_empty() || POWER_TYPES.contains(&t) {
        Ok(())
    } else {
        Err(invalid1(
            "power_type",
            format!("Select a valid choice. {t} is not one of the available choices."),
        ))
    }
}

fn unknown_power_type() -> Response {
    http::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unconfigured power type. Please configure the power type and try again.",
    )
}

fn power_fault(s: &Maas, m: &Machine) -> Option<Response> {
    s.fault(&m.fault_ids(), &["power_fails"]).map(|_| {
        http::text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "Power action failed for {}: the BMC did not answer (injected by the twin).",
                m.hostname
            ),
        )
    })
}

/// Where the BMC behind `m` answers, when the twin models it (a seed machine with a
/// BMC MAC): at the address MAAS's DHCP reserved for that MAC, else at the address
/// set on the BMC by hand, else nowhere. `None` when the BMC is not modelled (any
/// address reaches it).
fn bmc_answers_at(s: &Maas, st: &State, m: &Machine) -> Option<Option<String>> {
    let seed = m
        .interfaces
        .iter()
        .find_map(|i| s.seed_by_mac.get(&i.mac_address))
        .and_then(|i| s.ctx.seed.machines.get(*i))?;
    let bmc_mac = seed.bmc_mac.as_deref().and_then(normalize_mac)?;
    let reserved = st
        .reserved_ips
        .values()
        .find(|r| normalize_mac(&r.mac_address).as_deref() == Some(bmc_mac.as_str()))
        .map(|r| r.ip.clone());
    Some(reserved.or_else(|| seed.bmc_address.clone()))
}

/// Can MAAS reach this machine's BMC at its `power_address`? The power drivers
/// (canonical/maas src/provisioningserver/drivers/power/) talk to that address only,
/// and a BMC answers only at the address it holds; otherwise MAAS reports a power
/// error (503, as the twin's other power failures).
fn bmc_reachable(s: &Maas, st: &State, m: &Machine) -> Result<(), Response> {
    let Some(at) = bmc_answers_at(s, st, m) else {
        return Ok(());
    };
    let address = m
        .power_parameters
        .get("power_address")
        .map(|a| a.trim().to_string())
        .unwrap_or_default();
    if at.as_deref() == Some(address.as_str()) && !address.is_empty() {
        return Ok(());
    }
    Err(http::text(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!(
            "Power action failed for {}: no BMC answers at power_address '{address}' ({}): connection timed out.",
            m.hostname, m.power_type
        ),
    ))
}

/// One power action (on, off, cycle) through the machine's BMC: refused as MAAS
/// reports a failed power action (an injected fault, or no BMC at `power_address`);
/// counted on the machine when it goes through.
fn power_action(s: &Maas, st: &State, m: &mut Machine) -> Result<(), Response> {
    if let Some(e) = power_fault(s, m) {
        return Err(e);
    }
    bmc_reachable(s, st, m)?;
    m.power_actions += 1;
    m.power_error = false;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_suffixes() {
        assert_eq!(parse_memory("4096"), Some(4096));
        assert_eq!(parse_memory("4G"), Some(4096));
        assert_eq!(parse_memory("1T"), Some(1024 * 1024));
        assert_eq!(parse_memory("x"), None);
    }

    #[test]
    fn degraded_hardware() {
        let hw = Hardware {
            memory_mib: 1024,
            gpus: vec![Gpu {
                link_gen: 5,
                link_width: 16,
                max_gen: 5,
                max_width: 16,
                ..Gpu::default()
            }],
            ..Hardware::default()
        };
        let d = commissioned_hardware(&hw, &["gpu_degraded".into(), "memory_missing".into()]);
        assert_eq!((d.gpus[0].link_gen, d.gpus[0].link_width), (4, 8));
        assert_eq!(d.memory_mib, 768);
    }
}
