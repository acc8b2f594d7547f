//! Moving servers between compute hosts: the `migrate` and `os-migrateLive` server
//! actions (nova `nova/api/openstack/compute/migrate_server.py`, `compute/api.py`
//! `resize` and `live_migrate`, the conductor's `_cold_migrate`, `_live_migrate` and
//! `tasks/live_migrate.py`), confirming and reverting a cold migration, the migration
//! records (`os-migrations`, `servers/{id}/migrations`), and their completion when
//! their time comes.
//!
//! What the API checks refuses at once (400 for a host that is the server's own or
//! does not exist, 409 for a server in the wrong state or whose compute service is
//! down, 403 for non-admins); what the conductor finds out (no other enabled host that
//! fits: `NoValidHost`; a forced destination that is the source, down, or short of
//! memory) comes later, as on Nova since the API casts to the conductor: the server
//! goes back to its state with the migration `error` and the instance action's event
//! failed (before 2.34 a live migration's conductor call is synchronous, and those are
//! 400s). The scheduler never picks a disabled or down host: the same filters as a
//! boot, the source host excluded. While a migration runs the instance's source
//! allocation is held by the migration (its UUID as the Placement consumer) and the
//! instance's own allocation is on the destination; confirming a cold migration drops
//! the source's, reverting it gives the source back.

use super::*;

const IN_PROGRESS: &[&str] = &[
    "pre-migrating",
    "migrating",
    "post-migrating",
    "accepted",
    "queued",
    "preparing",
    "running",
];

/// A migration's row as `os-migrations` shows it.
fn migration_json(os: &Os, m: &Migration, mv: u32) -> Value {
    let flavor_id = m.flavor_id.parse::<i64>().unwrap_or(0);
    let mut v = json!({
        "created_at": iso_plain_us(m.created_ms),
        "dest_compute": m.dest_compute,
        "dest_host": m.dest_host,
        "dest_node": m.dest_node,
        "id": m.id,
        "instance_uuid": m.instance_uuid,
        "new_instance_type_id": flavor_id,
        "old_instance_type_id": flavor_id,
        "source_compute": m.source_compute,
        "source_node": m.source_node,
        "status": m.status,
        "updated_at": iso_plain_us(m.updated_ms),
    });
    if mv >= 23 {
        v["migration_type"] = json!(m.migration_type);
        if m.migration_type == "live-migration" && IN_PROGRESS.contains(&m.status.as_str()) {
            let path = format!("servers/{}/migrations/{}", m.instance_uuid, m.id);
            v["links"] = json!([
                {"href": format!("{}/v2.1/{path}", os.ctx.urls.compute), "rel": "self"},
                {"href": format!("{}/{path}", os.ctx.urls.compute), "rel": "bookmark"},
            ]);
        }
    }
    if mv >= 59 {
        v["uuid"] = json!(m.uuid);
    }
    if mv >= 80 {
        v["user_id"] = json!(m.user_id);
        v["project_id"] = json!(m.project_id);
    }
    v
}

/// The migration of a server that is under way (or waiting to be confirmed).
fn current(st: &State, server: &str, statuses: &[&str]) -> Option<usize> {
    st.migrations
        .iter()
        .rposition(|m| m.instance_uuid == server && statuses.contains(&m.status.as_str()))
}

fn host_idx(st: &State, host: &str) -> Option<usize> {
    st.hosts.iter().position(|h| h.host == host)
}

fn service_up(st: &State, host: &str) -> bool {
    host_idx(st, host).is_some_and(|i| st.hosts[i].state == "up" && !st.hosts[i].forced_down)
}

/// A new migration record.
fn record_migration(
    os: &Os,
    st: &mut State,
    idx: usize,
    migration_type: &str,
    status: &str,
    dest: Option<usize>,
    doomed: Option<String>,
) -> usize {
    st.next_migration += 1;
    let now = os.now_ms();
    let s = &st.servers[idx];
    let source = s.host.clone().unwrap_or_default();
    let source_node = host_idx(st, &source)
        .map(|i| st.hosts[i].hypervisor_hostname.clone())
        .unwrap_or_default();
    let m = Migration {
        id: st.next_migration,
        uuid: os.uuid(),
        instance_uuid: s.id.clone(),
        migration_type: migration_type.into(),
        status: status.into(),
        source_compute: source,
        source_node,
        dest_compute: dest.map(|h| st.hosts[h].host.clone()),
        dest_node: dest.map(|h| st.hosts[h].hypervisor_hostname.clone()),
        dest_host: dest.map(|h| st.hosts[h].host_ip.clone()),
        flavor_id: s.flavor.id.clone(),
        user_id: s.user_id.clone(),
        project_id: s.project_id.clone(),
        created_ms: now,
        updated_ms: now,
        doomed,
        source_pci: s.pci.clone(),
        source_numa: s.numa.clone(),
    };
    st.migrations.push(m);
    st.migrations.len() - 1
}

/// The instance's allocation moves to the migration (`replace_allocation_with_migration`),
/// then the destination is claimed for the instance.
fn claim_destination(
    st: &mut State,
    idx: usize,
    mi: usize,
    h: usize,
    want: &BTreeMap<String, i64>,
    cells: Vec<CellClaim>,
    now: i64,
) {
    let server = st.servers[idx].clone();
    let held = st
        .consumers
        .get(&server.id)
        .map(|c| c.allocations.clone())
        .unwrap_or_default();
    let mig = st.migrations[mi].uuid.clone();
    placement::set_allocations(
        st,
        &mig,
        &server.project_id,
        &server.user_id,
        Some("MIGRATION"),
        held,
        now,
    );
    let pci = claim(st, h, &server, want, now);
    let s = &mut st.servers[idx];
    s.pci = pci;
    s.numa = cells;
}

/// Undo [`claim_destination`]: the destination's devices and allocation go, the
/// instance gets the source's back.
fn release_destination(st: &mut State, idx: usize, mi: usize, now: i64) {
    let m = st.migrations[mi].clone();
    let server = st.servers[idx].clone();
    let Some(held) = st.consumers.get(&m.uuid).map(|c| c.allocations.clone()) else {
        return;
    };
    if let Some(dest) = m.dest_compute.as_deref().and_then(|d| host_idx(st, d)) {
        for d in st.hosts[dest].pci.iter_mut() {
            if d.server.as_deref() == Some(server.id.as_str()) {
                d.server = None;
            }
        }
    }
    placement::release(st, &m.uuid);
    placement::set_allocations(
        st,
        &server.id,
        &server.project_id,
        &server.user_id,
        Some("INSTANCE"),
        held,
        now,
    );
    if let Some(src) = host_idx(st, &m.source_compute) {
        for d in st.hosts[src].pci.iter_mut() {
            if m.source_pci.contains(&d.address) {
                d.server = Some(server.id.clone());
            }
        }
    }
    let s = &mut st.servers[idx];
    s.pci = m.source_pci.clone();
    s.numa = m.source_numa.clone();
}

/// The server's ports are bound to its new host.
fn rebind(st: &mut State, idx: usize, host: &str, now: i64) {
    let (id, ports) = (st.servers[idx].id.clone(), st.servers[idx].ports.clone());
    for p in ports {
        neutron::bind_port(st, &p, &id, host, now);
    }
}

/// `{"migrate": null | {"host": ...}}` (`schemas/migrate_server.py` `migrate`, from 2.56;
/// before it the body is not validated and a host cannot be asked for).
pub(super) fn migrate(os: &Os, st: &mut State, idx: usize, body: &Value, cx: &Cx) -> R {
    let mut host: Option<String> = None;
    if cx.mv >= 56 {
        check_object(body, &["migrate"], &["migrate"], None)?;
        let arg = &body["migrate"];
        match arg {
            Value::Null => {}
            Value::Object(m) => {
                check_object(arg, &["host"], &[], Some("migrate"))?;
                match m.get("host") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(h)) => host = Some(check_fqdn(h, &m["host"])?),
                    Some(other) => {
                        return Err(invalid_py(
                            "host",
                            other,
                            &format!("{} is not of type 'string', 'null'", py_repr(other)),
                        ));
                    }
                }
            }
            other => {
                return Err(invalid_py(
                    "migrate",
                    other,
                    &format!("{} is not of type 'object', 'null'", py_repr(other)),
                ));
            }
        }
    }
    cx.require_admin(if host.is_some() {
        "os_compute_api:os-migrate-server:migrate:host"
    } else {
        "os_compute_api:os-migrate-server:migrate"
    })?;
    require(&st.servers[idx], "migrate", &["active", "stopped"])?;
    let s = &st.servers[idx];
    // `check_instance_host(check_is_up=True)`.
    let Some(source) = s.host.clone() else {
        return Err(err(409, &format!("Instance {} is not ready", s.id)));
    };
    if !service_up(st, &source) {
        return Err(err(409, "Service is unavailable at this time."));
    }
    // `_validate_host_for_cold_migrate`.
    if let Some(h) = &host {
        if *h == source {
            return Err(bad("Cannot migrate to the host where the server exists."));
        }
        if host_idx(st, h).is_none() {
            return Err(bad(&format!("Compute host {h} could not be found.")));
        }
    }
    let flavor = s.flavor.clone();
    let want = flavor_resources(st, &flavor).map_err(|e| bad(&e))?;
    let numa = numa_request(&flavor).map_err(|e| bad(&e))?;
    let now = os.now_ms();
    // The conductor's scheduling: another enabled, up host that fits (libvirt does
    // not report COMPUTE_SAME_HOST_COLD_MIGRATE, so never the source).
    let group = group_placement(st, &st.servers[idx].id);
    match schedule_fitting(
        st,
        &want,
        numa.as_ref(),
        group.as_ref(),
        None,
        host.as_deref(),
        Some(&source),
    ) {
        Some((h, cells)) => {
            let mi = record_migration(os, st, idx, "migration", "pre-migrating", Some(h), None);
            claim_destination(st, idx, mi, h, &want, cells, now);
        }
        None => {
            record_migration(
                os,
                st,
                idx,
                "migration",
                "pre-migrating",
                None,
                Some("No valid host was found. No valid host found for cold migrate".into()),
            );
        }
    }
    let s = &mut st.servers[idx];
    let power = s.power_state;
    begin(os, s, "resize_prep", "migrate", "resized", power);
    Ok(empty(StatusCode::ACCEPTED))
}

/// A resize once the API accepted it (compute/api.py `resize` casts to the conductor,
/// whose `_cold_migrate` asks the scheduler with the server's request spec): a
/// migration of type `resize` to another host — `allow_resize_to_same_host` is off by
/// default and the libvirt driver does not offer a same-host cold move — that fits the
/// new flavor and keeps the server's group policy. No such host is the conductor's
/// NoValidHost: the answer is still 202, the migration ends in `error` and the server
/// keeps its flavor and host.
pub(super) fn begin_resize(
    os: &Os,
    st: &mut State,
    idx: usize,
    new: FlavorSnap,
    want: &BTreeMap<String, i64>,
    numa: Option<&NumaRequest>,
) -> R {
    let s = &st.servers[idx];
    let Some(source) = s.host.clone() else {
        return Err(err(409, &format!("Instance {} is not ready", s.id)));
    };
    if !service_up(st, &source) {
        return Err(err(409, "Service is unavailable at this time."));
    }
    let now = os.now_ms();
    let group = group_placement(st, &st.servers[idx].id);
    match schedule_fitting(st, want, numa, group.as_ref(), None, None, Some(&source)) {
        Some((h, cells)) => {
            let mi = record_migration(os, st, idx, "resize", "pre-migrating", Some(h), None);
            claim_destination(st, idx, mi, h, want, cells, now);
            let s = &mut st.servers[idx];
            s.old_flavor = Some(std::mem::replace(&mut s.flavor, new));
        }
        None => {
            record_migration(
                os,
                st,
                idx,
                "resize",
                "pre-migrating",
                None,
                Some("No valid host was found. No valid host found for resize".into()),
            );
        }
    }
    let s = &mut st.servers[idx];
    let power = s.power_state;
    begin(os, s, "resize_prep", "migrate", "resized", power);
    Ok(empty(StatusCode::ACCEPTED))
}

/// A host name as `parameter_types.fqdn` takes it (1 to 255 characters).
fn check_fqdn(h: &str, v: &Value) -> Result<String, Response> {
    if h.is_empty() {
        return Err(invalid_py("host", v, "'' should be non-empty"));
    }
    if h.len() > 255 {
        return Err(invalid_py(
            "host",
            v,
            &format!("{} is too long", py_repr(v)),
        ));
    }
    Ok(h.to_string())
}

/// `{"os-migrateLive": {"block_migration": ..., "host": ..., ...}}` with the schema of
/// the request's microversion (`migrate_live`, `_v2_25`, `_v2_30`, `_v2_68`).
pub(super) fn live_migrate(os: &Os, st: &mut State, idx: usize, body: &Value, cx: &Cx) -> R {
    let arg = &body["os-migrateLive"];
    let mv = cx.mv;
    let (allowed, required): (&[&str], &[&str]) = if mv < 25 {
        (
            &["block_migration", "disk_over_commit", "host"],
            &["block_migration", "disk_over_commit", "host"],
        )
    } else if (30..68).contains(&mv) {
        (
            &["block_migration", "host", "force"],
            &["block_migration", "host"],
        )
    } else {
        (&["block_migration", "host"], &["block_migration", "host"])
    };
    check_object(arg, allowed, required, Some("os-migrateLive"))?;
    let bm = &arg["block_migration"];
    if schema_bool(bm).is_none() && !(mv >= 25 && bm == "auto") {
        let choices = if mv >= 25 {
            BOOL_ENUM.replacen(']', ", 'auto']", 1)
        } else {
            BOOL_ENUM.to_string()
        };
        return Err(invalid_py(
            "block_migration",
            bm,
            &format!("{} is not one of {choices}", py_repr(bm)),
        ));
    }
    if mv < 25 {
        let d = &arg["disk_over_commit"];
        if schema_bool(d).is_none() {
            return Err(invalid_py(
                "disk_over_commit",
                d,
                &format!("{} is not one of {BOOL_ENUM}", py_repr(d)),
            ));
        }
    }
    let host = match &arg["host"] {
        Value::Null => None,
        Value::String(h) => Some(check_fqdn(h, &arg["host"])?),
        other => {
            return Err(invalid_py(
                "host",
                other,
                &format!("{} is not of type 'string', 'null'", py_repr(other)),
            ));
        }
    };
    let force = match arg.get("force") {
        None => false,
        Some(f) => schema_bool(f).ok_or_else(|| {
            invalid_py(
                "force",
                f,
                &format!("{} is not one of {BOOL_ENUM}", py_repr(f)),
            )
        })?,
    };
    cx.require_admin(if host.is_some() {
        "os_compute_api:os-migrate-server:migrate_live:host"
    } else {
        "os_compute_api:os-migrate-server:migrate_live"
    })?;
    if force && host.is_none() {
        return Err(bad("Can't force to a non-provided destination"));
    }
    require(&st.servers[idx], "os-migrateLive", &["active", "paused"])?;
    if let Some(h) = &host
        && host_idx(st, h).is_none()
    {
        return Err(bad(&format!("Compute host {h} could not be found.")));
    }
    let s = st.servers[idx].clone();
    let source = s.host.clone().unwrap_or_default();
    let want = flavor_resources(st, &s.flavor).map_err(|e| bad(&e))?;
    let numa = numa_request(&s.flavor).map_err(|e| bad(&e))?;
    // The conductor's `LiveMigrationTask`.
    let outcome: Result<(usize, Vec<CellClaim>), String> = if !service_up(st, &source) {
        Err(format!(
            "Compute service of {source} is unavailable at this time."
        ))
    } else if let (true, Some(dest)) = (force, host.as_deref()) {
        // Forced: the scheduler is bypassed, a few checks remain.
        let h = host_idx(st, dest).unwrap_or(0);
        if dest == source {
            Err(format!(
                "Unable to migrate instance ({}) to current host ({source}).",
                s.id
            ))
        } else if !service_up(st, dest) {
            Err(format!(
                "Compute service of {dest} is unavailable at this time."
            ))
        } else if !s.pci.is_empty() {
            Err("Migration pre-check error: This request does not explicitly request live-migratable devices.".into())
        } else {
            let rp = st.rps.iter().find(|r| r.uuid == st.hosts[h].uuid);
            let free = rp
                .and_then(|r| r.inventories.get("MEMORY_MB"))
                .map(placement::capacity)
                .unwrap_or(0)
                - placement::used(st, &st.hosts[h].uuid)
                    .get("MEMORY_MB")
                    .copied()
                    .unwrap_or(0);
            if free <= s.flavor.ram {
                Err(format!(
                    "Migration pre-check error: Unable to migrate {} to {dest}: Lack of memory(host:{free} <= instance:{})",
                    s.id, s.flavor.ram
                ))
            } else {
                Ok((h, Vec::new()))
            }
        }
    } else {
        // The scheduler, the source excluded; a flavor's PCI devices fail every
        // destination's pre-check (`_check_can_migrate_pci`), so no host is left.
        schedule_fitting(
            st,
            &want,
            numa.as_ref(),
            group_placement(st, &s.id).as_ref(),
            None,
            host.as_deref(),
            Some(&source),
        )
        .filter(|_| s.pci.is_empty())
        .ok_or_else(|| "No valid host was found. There are not enough hosts available.".into())
    };
    let now = os.now_ms();
    match outcome {
        Ok((h, cells)) => {
            let mi = record_migration(os, st, idx, "live-migration", "running", Some(h), None);
            claim_destination(st, idx, mi, h, &want, cells, now);
        }
        Err(why) if mv < 34 => {
            // Before 2.34 the API waits for the conductor's checks.
            let mi = record_migration(os, st, idx, "live-migration", "error", None, None);
            st.migrations[mi].updated_ms = now;
            return Err(bad(&why));
        }
        Err(why) => {
            record_migration(os, st, idx, "live-migration", "accepted", None, Some(why));
        }
    }
    let srv = &mut st.servers[idx];
    let (vm_state, power) = (srv.vm_state.clone(), srv.power_state);
    begin(os, srv, "migrating", "live-migrate", &vm_state, power);
    Ok(empty(StatusCode::ACCEPTED))
}

/// A migration's time has come (from [`advance`]): it lands, or fails back to where
/// it was (`injected`: an `action_fails` fault on the server).
pub(super) fn complete(
    st: &mut State,
    idx: usize,
    p: &Pending,
    injected: Option<String>,
    now: i64,
) {
    let id = st.servers[idx].id.clone();
    let Some(mi) = current(st, &id, IN_PROGRESS) else {
        let s = &mut st.servers[idx];
        s.task_state = None;
        s.updated_ms = p.at_ms;
        finish_event(s, p.at_ms, false);
        return;
    };
    let doomed = st.migrations[mi].doomed.clone().or(injected);
    if let Some(why) = doomed {
        release_destination(st, idx, mi, now);
        let m = &mut st.migrations[mi];
        m.status = "error".into();
        m.updated_ms = p.at_ms;
        let s = &mut st.servers[idx];
        s.task_state = None;
        s.updated_ms = p.at_ms;
        s.fault = Some(Fault {
            code: 500,
            message: why.clone(),
            details: format!("nova.exception: {why}"),
            created_ms: p.at_ms,
        });
        finish_event(s, p.at_ms, false);
        return;
    }
    let dest = st.migrations[mi].dest_compute.clone().unwrap_or_default();
    let az = host_idx(st, &dest)
        .map(|h| st.hosts[h].az.clone())
        .unwrap_or_default();
    let live = p.kind == "live-migrate";
    if live {
        // `post_live_migration`: the source's allocation (held by the migration) goes.
        let mig = st.migrations[mi].uuid.clone();
        placement::release(st, &mig);
        st.migrations[mi].status = "completed".into();
    } else {
        st.migrations[mi].status = "finished".into();
    }
    st.migrations[mi].updated_ms = p.at_ms;
    rebind(st, idx, &dest, now);
    let s = &mut st.servers[idx];
    s.host = Some(dest);
    s.az = az;
    s.vm_state = p.vm_state.clone();
    s.task_state = None;
    s.power_state = p.power_state;
    s.updated_ms = p.at_ms;
    finish_event(s, p.at_ms, true);
}

/// `confirmResize` of a cold migration: the source's allocation and devices go.
pub(super) fn confirm(st: &mut State, idx: usize, now: i64) {
    let id = st.servers[idx].id.clone();
    let Some(mi) = current(st, &id, &["finished"]) else {
        return;
    };
    let m = st.migrations[mi].clone();
    placement::release(st, &m.uuid);
    if let Some(src) = host_idx(st, &m.source_compute) {
        for d in st.hosts[src].pci.iter_mut() {
            if d.server.as_deref() == Some(id.as_str()) {
                d.server = None;
            }
        }
    }
    st.migrations[mi].status = "confirmed".into();
    st.migrations[mi].updated_ms = now;
}

/// `revertResize` of a cold migration starts: the migration is `reverting`.
pub(super) fn reverting(st: &mut State, idx: usize, now: i64) -> bool {
    let id = st.servers[idx].id.clone();
    let Some(mi) = current(st, &id, &["finished"]) else {
        return false;
    };
    st.migrations[mi].status = "reverting".into();
    st.migrations[mi].updated_ms = now;
    true
}

/// The revert ends: back on the source, with its allocation and devices.
pub(super) fn reverted(st: &mut State, idx: usize, now: i64) -> bool {
    let id = st.servers[idx].id.clone();
    let Some(mi) = current(st, &id, &["reverting"]) else {
        return false;
    };
    release_destination(st, idx, mi, now);
    let source = st.migrations[mi].source_compute.clone();
    let az = host_idx(st, &source)
        .map(|h| st.hosts[h].az.clone())
        .unwrap_or_default();
    rebind(st, idx, &source, now);
    let s = &mut st.servers[idx];
    s.host = Some(source);
    s.az = az;
    st.migrations[mi].status = "reverted".into();
    st.migrations[mi].updated_ms = now;
    true
}

/// A deleted server's migrations give back what they held.
pub(super) fn forget(st: &mut State, server: &str) {
    let held: Vec<String> = st
        .migrations
        .iter()
        .filter(|m| m.instance_uuid == server)
        .map(|m| m.uuid.clone())
        .collect();
    for m in held {
        placement::release(st, &m);
    }
}

/// `GET /os-migrations` (`os_compute_api:os-migrations:index`), with the filters
/// nova's DB query takes; newest first from 2.59, with `limit` and `marker`.
pub(super) fn migrations_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-migrations:index")?;
    let mut items: Vec<&Migration> = st
        .migrations
        .iter()
        .filter(|m| req.q("status").is_none_or(|s| m.status == s))
        .filter(|m| {
            req.q("host")
                .is_none_or(|h| m.source_compute == h || m.dest_compute.as_deref() == Some(h))
        })
        .filter(|m| {
            req.q("source_compute")
                .is_none_or(|h| m.source_compute == h)
        })
        .filter(|m| req.q("instance_uuid").is_none_or(|u| m.instance_uuid == u))
        .filter(|m| {
            req.q("migration_type")
                .is_none_or(|t| m.migration_type == t)
        })
        .filter(|m| cx.mv < 80 || req.q("user_id").is_none_or(|u| m.user_id == u))
        .filter(|m| cx.mv < 80 || req.q("project_id").is_none_or(|p| m.project_id == p))
        .collect();
    if cx.mv < 59 {
        let list: Vec<Value> = items.iter().map(|m| migration_json(os, m, cx.mv)).collect();
        return Ok(json_resp(StatusCode::OK, json!({"migrations": list})));
    }
    items.reverse();
    if let Some(since) = req.q("changes-since").and_then(parse_iso) {
        items.retain(|m| m.updated_ms >= since);
    }
    let (page, next) = paginate(
        os,
        req,
        items,
        |m| m.uuid.clone(),
        "os-migrations",
        |m| err(400, &format!("Marker {m} could not be found.")),
    )?;
    let mut body = json!({"migrations": page.iter().map(|m| migration_json(os, m, cx.mv)).collect::<Vec<_>>()});
    if let Some(n) = next {
        body["migrations_links"] = n;
    }
    Ok(json_resp(StatusCode::OK, body))
}

/// A live migration as `servers/{id}/migrations` shows it.
fn server_migration_json(m: &Migration, mv: u32, ram_mb: i64) -> Value {
    let total = ram_mb * 1024 * 1024;
    let mut v = json!({
        "created_at": iso_plain_us(m.created_ms),
        "dest_compute": m.dest_compute,
        "dest_host": m.dest_host,
        "dest_node": m.dest_node,
        "disk_processed_bytes": 0,
        "disk_remaining_bytes": 0,
        "disk_total_bytes": 0,
        "id": m.id,
        "memory_processed_bytes": total / 2,
        "memory_remaining_bytes": total - total / 2,
        "memory_total_bytes": total,
        "server_uuid": m.instance_uuid,
        "source_compute": m.source_compute,
        "source_node": m.source_node,
        "status": m.status,
        "updated_at": iso_plain_us(m.updated_ms),
    });
    if mv >= 59 {
        v["uuid"] = json!(m.uuid);
    }
    if mv >= 80 {
        v["user_id"] = json!(m.user_id);
        v["project_id"] = json!(m.project_id);
    }
    v
}

/// A live migration under way (`server_migrations.py`'s in-progress list).
fn live_in_progress(m: &Migration, server: &str) -> bool {
    m.instance_uuid == server
        && m.migration_type == "live-migration"
        && ["queued", "preparing", "running", "post-migrating"].contains(&m.status.as_str())
}

/// `GET /servers/{id}/migrations` (2.23): the server's live migrations in progress.
pub(super) fn server_migrations_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:servers:migrations:index")?;
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let s = &st.servers[idx];
    let list: Vec<Value> = st
        .migrations
        .iter()
        .filter(|m| live_in_progress(m, &s.id))
        .map(|m| server_migration_json(m, cx.mv, s.flavor.ram))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"migrations": list})))
}

/// `GET /servers/{id}/migrations/{mid}` (2.23).
pub(super) fn server_migration_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:servers:migrations:show")?;
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let s = &st.servers[idx];
    let mid = req.param("mid");
    let m = st
        .migrations
        .iter()
        .find(|m| m.id.to_string() == mid && m.instance_uuid == s.id)
        .ok_or_else(|| {
            err(
                404,
                &format!(
                    "In-progress live migration {mid} is not found for server {}.",
                    s.id
                ),
            )
        })?;
    if m.migration_type != "live-migration" {
        return Err(err(
            404,
            &format!("Migration {mid} for server {} is not live-migration.", s.id),
        ));
    }
    if !live_in_progress(m, &s.id) {
        return Err(err(
            404,
            &format!(
                "Live migration {mid} for server {} is not in progress.",
                s.id
            ),
        ));
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"migration": server_migration_json(m, cx.mv, s.flavor.ram)}),
    ))
}
