//! The twin's side doors: change objects behind the clients' back (`mutate`) and count
//! them (`summary`).

use serde_json::{Value, json};

use super::model::*;
use super::*;
use crate::MutateRequest;

fn find<T>(items: &[T], id: &str, key: fn(&T) -> (&str, &str)) -> Option<usize> {
    items
        .iter()
        .position(|x| key(x).0 == id)
        .or_else(|| items.iter().position(|x| key(x).1 == id))
}

fn int(k: &str, v: &Value) -> Result<i64, String> {
    as_int(v).ok_or_else(|| format!("`{k}` must be an integer, got {v}"))
}

fn boolean(k: &str, v: &Value) -> Result<bool, String> {
    as_bool(v).ok_or_else(|| format!("`{k}` must be a boolean, got {v}"))
}

fn string(k: &str, v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("`{k}` must be a string, got {v}"))
}

fn opt_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

pub(crate) fn mutate(os: &Os, req: &MutateRequest) -> Result<Value, String> {
    let mut st = os.st.lock();
    os.tick(&mut st);
    let st = &mut *st;
    match req.kind.as_str() {
        "flavor" => mutate_flavor(os, st, req),
        "network" => mutate_network(os, st, req),
        "server" => mutate_server(os, st, req),
        "quota" => mutate_quota(st, req),
        "project" => mutate_project(os, st, req),
        "image" => mutate_image(os, st, req),
        "hypervisor" | "host" => mutate_host(st, req),
        "kolla-config" => reconfigure(st, req),
        "endpoint" => mutate_endpoint(st, req),
        other => Err(format!(
            "unknown kind `{other}`; use flavor, network, server, quota, project, image, hypervisor, kolla-config or endpoint"
        )),
    }
}

/// A catalog endpoint, named `<service type>/<interface>` (`compute/public`): its `url`
/// (as an operator re-registers an endpoint behind another VIP).
fn mutate_endpoint(st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let (kind, interface) = req
        .id
        .split_once('/')
        .ok_or_else(|| format!("endpoint `{}` is not `<service type>/<interface>`", req.id))?;
    let e = st
        .services
        .iter_mut()
        .filter(|s| s.kind == kind)
        .flat_map(|s| s.endpoints.iter_mut())
        .find(|e| e.interface == interface)
        .ok_or_else(|| format!("no endpoint `{}`", req.id))?;
    if req.delete {
        return Err("catalog endpoints cannot be deleted here".into());
    }
    for (k, v) in &req.set {
        match k.as_str() {
            "url" => e.url = string(k, v)?,
            other => return Err(format!("unknown endpoint field `{other}`")),
        }
    }
    Ok(json!({"id": e.id, "interface": e.interface, "url": e.url}))
}

fn mutate_flavor(_os: &Os, st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let idx = find(&st.flavors, &req.id, |f| (f.id.as_str(), f.name.as_str()))
        .ok_or_else(|| format!("no flavor `{}`", req.id))?;
    let mut f = st.flavors[idx].clone();
    if req.delete {
        st.flavors.remove(&f.id);
        return Ok(json!({"deleted": true, "id": f.id}));
    }
    for (k, v) in &req.set {
        match k.as_str() {
            "name" => f.name = string(k, v)?,
            "ram" => f.ram = int(k, v)?,
            "vcpus" => f.vcpus = int(k, v)?,
            "disk" => f.disk = int(k, v)?,
            "swap" => {
                f.swap = if v.as_str() == Some("") {
                    0
                } else {
                    int(k, v)?
                }
            }
            "OS-FLV-EXT-DATA:ephemeral" | "ephemeral" => f.ephemeral = int(k, v)?,
            "rxtx_factor" => {
                f.rxtx_factor = v
                    .as_f64()
                    .ok_or_else(|| format!("`{k}` must be a number"))?
            }
            "os-flavor-access:is_public" | "is_public" => f.is_public = boolean(k, v)?,
            "OS-FLV-DISABLED:disabled" | "disabled" => f.disabled = boolean(k, v)?,
            "description" => f.description = opt_string(v),
            "extra_specs" => {
                let m = v.as_object().ok_or("`extra_specs` must be an object")?;
                f.extra_specs = m
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect();
            }
            other => return Err(format!("flavor has no settable field `{other}`")),
        }
    }
    st.flavors.insert(f.clone());
    Ok(serde_json::to_value(&f).unwrap_or(Value::Null))
}

fn mutate_network(os: &Os, st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let idx = find(&st.networks, &req.id, |n| (n.id.as_str(), n.name.as_str()))
        .ok_or_else(|| format!("no network `{}`", req.id))?;
    if req.delete {
        let id = st.networks[idx].id.clone();
        // Behind the back: ports go with it, even a server's.
        let devices: Vec<String> = st
            .ports
            .iter()
            .filter(|p| p.network_id == id)
            .map(|p| p.id.clone())
            .collect();
        for s in st.servers.iter_mut() {
            s.ports.retain(|p| !devices.contains(p));
        }
        st.ports.retain(|p| p.network_id != id);
        st.subnets.retain(|s| s.network_id != id);
        st.networks.remove(idx);
        return Ok(json!({"deleted": true, "id": id}));
    }
    let mut n = st.networks[idx].clone();
    for (k, v) in &req.set {
        match k.as_str() {
            "name" => n.name = string(k, v)?,
            "description" => n.description = string(k, v)?,
            "shared" => n.shared = boolean(k, v)?,
            "router:external" => n.external = boolean(k, v)?,
            "admin_state_up" => n.admin_state_up = boolean(k, v)?,
            "status" => n.status = string(k, v)?,
            "mtu" => n.mtu = int(k, v)?,
            "provider:network_type" => n.network_type = string(k, v)?,
            "provider:physical_network" => n.physical_network = opt_string(v),
            "provider:segmentation_id" => n.segmentation_id = as_int(v),
            "port_security_enabled" => n.port_security_enabled = boolean(k, v)?,
            "tags" => {
                n.tags = v
                    .as_array()
                    .ok_or("`tags` must be a list")?
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            }
            other => return Err(format!("network has no settable field `{other}`")),
        }
    }
    n.revision += 1;
    n.updated_ms = os.now_ms();
    st.networks[idx] = n.clone();
    Ok(serde_json::to_value(&n).unwrap_or(Value::Null))
}

fn vm_state_for(status: &str) -> Option<(&'static str, i64)> {
    Some(match status.to_ascii_uppercase().as_str() {
        "ACTIVE" => ("active", 1),
        "SHUTOFF" => ("stopped", 4),
        "ERROR" => ("error", 0),
        "PAUSED" => ("paused", 3),
        "SUSPENDED" => ("suspended", 7),
        "BUILD" => ("building", 0),
        "SHELVED_OFFLOADED" => ("shelved_offloaded", 4),
        "VERIFY_RESIZE" => ("resized", 1),
        "RESCUE" => ("rescued", 1),
        _ => return None,
    })
}

fn mutate_server(os: &Os, st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let idx = st
        .servers
        .iter()
        .position(|s| !s.deleted && s.id == req.id)
        .or_else(|| {
            st.servers
                .iter()
                .position(|s| !s.deleted && s.name == req.id)
        })
        .ok_or_else(|| format!("no server `{}`", req.id))?;
    if req.delete {
        nova::destroy_server(st, idx, os.now_ms());
        return Ok(json!({"deleted": true, "id": st.servers[idx].id}));
    }
    for (k, v) in &req.set {
        match k.as_str() {
            "status" => {
                let s = string(k, v)?;
                let (vm, power) =
                    vm_state_for(&s).ok_or_else(|| format!("unknown server status `{s}`"))?;
                let srv = &mut st.servers[idx];
                srv.vm_state = vm.into();
                srv.power_state = power;
                srv.task_state = None;
                srv.pending = None;
                if vm == "error" && srv.fault.is_none() {
                    srv.fault = Some(Fault {
                        code: 500,
                        message: "Set to ERROR by the twin".into(),
                        details: "mutate".into(),
                        created_ms: os.now_ms(),
                    });
                }
            }
            "OS-EXT-STS:vm_state" | "vm_state" => st.servers[idx].vm_state = string(k, v)?,
            "OS-EXT-STS:task_state" | "task_state" => st.servers[idx].task_state = opt_string(v),
            "OS-EXT-STS:power_state" | "power_state" => st.servers[idx].power_state = int(k, v)?,
            "name" => st.servers[idx].name = string(k, v)?,
            "description" => st.servers[idx].description = opt_string(v),
            "locked" => st.servers[idx].locked = boolean(k, v)?,
            "metadata" => {
                st.servers[idx].metadata = v
                    .as_object()
                    .ok_or("`metadata` must be an object")?
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            }
            "tags" => {
                st.servers[idx].tags = v
                    .as_array()
                    .ok_or("`tags` must be a list")?
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            }
            "fault" => {
                st.servers[idx].fault = if v.is_null() {
                    None
                } else {
                    Some(Fault {
                        code: v.get("code").and_then(as_int).unwrap_or(500) as u16,
                        message: v
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        details: v
                            .get("details")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        created_ms: os.now_ms(),
                    })
                }
            }
            "OS-EXT-SRV-ATTR:host" | "host" => {
                let h = string(k, v)?;
                if !st.hosts.iter().any(|x| x.host == h) {
                    return Err(format!("no compute host `{h}`"));
                }
                st.servers[idx].host = Some(h);
            }
            other => return Err(format!("server has no settable field `{other}`")),
        }
    }
    st.servers[idx].updated_ms = os.now_ms();
    Ok(
        json!({"id": st.servers[idx].id, "status": nova::status_of(&st.servers[idx]), "name": st.servers[idx].name}),
    )
}

fn mutate_quota(st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let project = st
        .projects
        .iter()
        .find(|p| p.id == req.id || p.name == req.id)
        .map(|p| p.id.clone())
        .unwrap_or_else(|| req.id.clone());
    if req.delete {
        st.nova_quotas.remove(&project);
        st.net_quotas.remove(&project);
        return Ok(json!({"deleted": true, "id": project}));
    }
    let nova_keys = super::seed::nova_default_quotas();
    let net_keys = super::seed::neutron_default_quotas();
    for (k, v) in &req.set {
        let n = int(k, v)?;
        if nova_keys.contains_key(k) {
            st.nova_quotas
                .entry(project.clone())
                .or_default()
                .insert(k.clone(), n);
        } else if net_keys.contains_key(k) {
            st.net_quotas
                .entry(project.clone())
                .or_default()
                .insert(k.clone(), n);
        } else {
            return Err(format!("unknown quota `{k}`"));
        }
    }
    let mut out = nova::quota_limits(st, &project);
    for k in net_keys.keys() {
        let v = st
            .net_quotas
            .get(&project)
            .and_then(|q| q.get(k))
            .copied()
            .unwrap_or(net_keys[k]);
        out.insert(k.clone(), v);
    }
    Ok(json!({"id": project, "quota": out}))
}

fn mutate_project(os: &Os, st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let idx = find(&st.projects, &req.id, |p| (p.id.as_str(), p.name.as_str()))
        .ok_or_else(|| format!("no project `{}`", req.id))?;
    if req.delete {
        let id = st.projects[idx].id.clone();
        keystone::remove_project(st, &id).map_err(|_| "project vanished".to_string())?;
        return Ok(json!({"deleted": true, "id": id}));
    }
    let mut p = st.projects[idx].clone();
    for (k, v) in &req.set {
        match k.as_str() {
            "name" => p.name = string(k, v)?,
            "description" => p.description = string(k, v)?,
            "enabled" => p.enabled = boolean(k, v)?,
            "tags" => {
                p.tags = v
                    .as_array()
                    .ok_or("`tags` must be a list")?
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            }
            other => {
                p.extra.insert(other.to_string(), v.clone());
            }
        }
    }
    st.projects[idx] = p.clone();
    Ok(keystone::project_json(os, &p))
}

fn mutate_image(os: &Os, st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let idx = find(&st.images, &req.id, |i| (i.id.as_str(), i.name.as_str()))
        .ok_or_else(|| format!("no image `{}`", req.id))?;
    let id = st.images[idx].id.clone();
    if req.delete {
        st.images.remove(&id);
        return Ok(json!({"deleted": true, "id": id}));
    }
    let img = st
        .images
        .get_mut(&id)
        .ok_or_else(|| format!("no image `{id}`"))?;
    for (k, v) in &req.set {
        match k.as_str() {
            "name" => img.name = string(k, v)?,
            "status" => img.status = string(k, v)?,
            "visibility" => img.visibility = string(k, v)?,
            "min_ram" => img.min_ram = int(k, v)?,
            "min_disk" => img.min_disk = int(k, v)?,
            "protected" => img.protected = boolean(k, v)?,
            other => {
                img.properties.insert(other.to_string(), v.clone());
            }
        }
    }
    img.updated_ms = os.now_ms();
    Ok(json!({"id": img.id, "name": img.name, "status": img.status}))
}

/// `kolla-ansible reconfigure` with these files (`set`: path under `/etc/kolla/` →
/// text, the whole configuration): the services restart with what the files set.
fn reconfigure(st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let files: std::collections::BTreeMap<String, String> = req
        .set
        .iter()
        .map(|(k, v)| string(k, v).map(|text| (k.clone(), text)))
        .collect::<Result<_, _>>()?;
    let mut next = st.clone();
    kolla::apply(&mut next, &files)?;
    *st = next;
    Ok(json!({
        "pci_aliases": st.pci_aliases.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
        "vlan_physnets": st.ml2.vlan_ranges.keys().cloned().collect::<Vec<_>>(),
        "flat_networks": st.ml2.flat_networks,
    }))
}

fn mutate_host(st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let idx = st
        .hosts
        .iter()
        .position(|h| {
            h.host == req.id
                || h.hypervisor_hostname == req.id
                || h.uuid == req.id
                || h.id.to_string() == req.id
        })
        .ok_or_else(|| format!("no hypervisor `{}`", req.id))?;
    if req.delete {
        return Err("compute hosts cannot be deleted; set `state` to `down` instead".into());
    }
    let h = &mut st.hosts[idx];
    for (k, v) in &req.set {
        match k.as_str() {
            "status" => h.status = string(k, v)?,
            "state" => h.state = string(k, v)?,
            "disabled_reason" => h.disabled_reason = opt_string(v),
            // The host rebooted with `hugepagesz=1G hugepages=N` on its kernel command
            // line: N pages, spread evenly over its NUMA cells.
            "hugepages_1g" => {
                let total = int(k, v)?;
                let cells = h.numa_cells.len().max(1) as i64;
                for c in h.numa_cells.iter_mut() {
                    c.pages_1g = total / cells;
                }
            }
            other => return Err(format!("hypervisor has no settable field `{other}`")),
        }
    }
    Ok(json!({"id": h.uuid, "host": h.host, "status": h.status, "state": h.state}))
}

pub(crate) fn summary(os: &Os) -> Value {
    let mut st = os.st.lock();
    os.tick(&mut st);
    let live: Vec<&Server> = st.servers.iter().filter(|s| !s.deleted).collect();
    let mut by_status = std::collections::BTreeMap::new();
    for s in &live {
        *by_status
            .entry(nova::status_of(s).to_string())
            .or_insert(0usize) += 1;
    }
    let mut v = counts(&[
        ("projects", st.projects.len()),
        ("users", st.users.len()),
        ("roles", st.roles.len()),
        ("tokens", st.tokens.len()),
        ("services", st.services.len()),
        ("flavors", st.flavors.len()),
        ("keypairs", st.keypairs.len()),
        ("servers", live.len()),
        ("hypervisors", st.hosts.len()),
        ("networks", st.networks.len()),
        ("subnets", st.subnets.len()),
        ("ports", st.ports.len()),
        ("security_groups", st.security_groups.len()),
        ("images", st.images.len()),
        ("resource_providers", st.rps.len()),
        (
            "resource_classes",
            super::seed::STANDARD_RESOURCE_CLASSES.len() + st.custom_rcs.len(),
        ),
        ("custom_resource_classes", st.custom_rcs.len()),
        ("allocations", st.consumers.len()),
    ]);
    v["servers_by_status"] = json!(by_status);
    v
}
