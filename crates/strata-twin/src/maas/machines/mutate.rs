//! Admin mutation behind the clients' back (`/_twin/` mutate requests aimed at machines).

use super::*;

pub fn mutate(s: &Maas, st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let sid = if st.machine(&req.id).is_some() {
        req.id.clone()
    } else {
        st.machines
            .values()
            .find(|m| m.hostname == req.id || m.actual.serial == req.id)
            .map(|m| m.system_id.clone())
            .ok_or_else(|| format!("no machine {}", req.id))?
    };
    if req.delete {
        st.remove_machine(&sid);
        return Ok(json!({"deleted": sid}));
    }
    let zones: Vec<(String, u64)> = st.zones.values().map(|z| (z.name.clone(), z.id)).collect();
    let pools: Vec<(String, u64)> = st.pools.values().map(|z| (z.name.clone(), z.id)).collect();
    let taken: Vec<String> = st
        .machines
        .values()
        .filter(|m| m.system_id != sid)
        .map(|m| m.hostname.clone())
        .collect();
    let m = st.machine_mut(&sid).ok_or("machine vanished")?;
    let as_str = |v: &Value| -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    };
    for (k, v) in &req.set {
        match k.as_str() {
            "hostname" => {
                let h = as_str(v);
                if taken.contains(&h) {
                    return Err(format!("hostname {h} is taken"));
                }
                m.hostname = h;
            }
            "description" => m.description = as_str(v),
            "status" | "status_name" => {
                let code = S::parse(&as_str(v)).ok_or_else(|| format!("unknown status {v}"))?;
                m.pending = None;
                let msg = S::name(code).to_string();
                if m.status != code {
                    m.previous_status = m.status;
                }
                m.status = code;
                m.status_message = msg;
                match code {
                    S::NEW | S::READY => m.owner = None,
                    S::ALLOCATED | S::DEPLOYED | S::DEPLOYING => {
                        m.owner.get_or_insert_with(|| API_USER.into());
                    }
                    _ => {}
                }
                if code == S::DEPLOYED {
                    m.power_on = true;
                    if m.osystem.is_empty() {
                        m.osystem = "ubuntu".into();
                        m.distro_series = "noble".into();
                    }
                }
                // A transition that takes time completes like one the API started.
                let phase = match code {
                    S::COMMISSIONING => Some(Phase::Commissioning),
                    S::TESTING => Some(Phase::Testing),
                    S::DEPLOYING => Some(Phase::Deploying),
                    S::RELEASING => Some(Phase::Releasing),
                    S::DISK_ERASING => Some(Phase::DiskErasing),
                    _ => None,
                };
                if let Some(p) = phase {
                    start(
                        m,
                        p,
                        s.now_ms(),
                        Pace {
                            slow: false,
                            ..s.pace()
                        },
                    );
                }
            }
            "status_message" => m.status_message = as_str(v),
            "error_description" => m.error_description = as_str(v),
            "power_state" => m.power_on = as_str(v) == "on",
            "power_type" => m.power_type = as_str(v),
            "power_parameters" => {
                let o = v.as_object().ok_or("power_parameters must be an object")?;
                m.power_parameters = o.iter().map(|(k, v)| (k.clone(), as_str(v))).collect();
            }
            "tag_names" | "tags" => {
                let a = v.as_array().ok_or("tag_names must be an array")?;
                m.tags = a.iter().map(as_str).collect();
            }
            "zone" => {
                let name = as_str(v);
                m.zone_id = zones
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, id)| *id)
                    .ok_or_else(|| format!("no zone {name}"))?;
            }
            "pool" => {
                let name = as_str(v);
                m.pool_id = pools
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, id)| *id)
                    .ok_or_else(|| format!("no pool {name}"))?;
            }
            "owner" => m.owner = v.as_str().map(str::to_string),
            "osystem" => m.osystem = as_str(v),
            "distro_series" => m.distro_series = as_str(v),
            "architecture" => m.architecture = as_str(v),
            "locked" => m.locked = v.as_bool().unwrap_or(false),
            "netboot" => m.netboot = v.as_bool().unwrap_or(true),
            "agent_name" => m.agent_name = as_str(v),
            "owner_data" => {
                let o = v.as_object().ok_or("owner_data must be an object")?;
                m.owner_data = o.iter().map(|(k, v)| (k.clone(), as_str(v))).collect();
            }
            "cpu_count" => {
                let n = v.as_u64().ok_or("cpu_count must be a number")? as u32;
                m.reported.get_or_insert_with(|| m.actual.clone()).cpu_count = n;
            }
            "memory" => {
                let n = v.as_u64().ok_or("memory must be a number of MiB")?;
                m.reported
                    .get_or_insert_with(|| m.actual.clone())
                    .memory_mib = n;
            }
            other => return Err(format!("field {other} cannot be set on a machine")),
        }
    }
    m.updated_ms = s.now_ms();
    if req.set.contains_key("hostname") {
        st.reindex();
    }
    let m = st.machine(&sid).ok_or("machine vanished")?;
    Ok(render::machine(st, &s.api, m))
}
