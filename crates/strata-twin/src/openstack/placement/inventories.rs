//! Inventories of a provider: parsing and validation, generation checks,
//! list/replace/add/delete and per-class get/put/delete, plus a provider's usages and
//! allocations views.

use super::*;

pub(super) fn inv_json(i: &Inventory) -> Value {
    json!({
        "total": i.total,
        "reserved": i.reserved,
        "min_unit": i.min_unit,
        "max_unit": i.max_unit,
        "step_size": i.step_size,
        "allocation_ratio": i.allocation_ratio,
    })
}

pub(super) fn invs_json(rp: &ResourceProvider) -> Value {
    let m: serde_json::Map<String, Value> = rp
        .inventories
        .iter()
        .map(|(k, v)| (k.clone(), inv_json(v)))
        .collect();
    json!({"resource_provider_generation": rp.generation, "inventories": m})
}

/// Validate one inventory record from a request.
pub(super) fn parse_inventory(
    mv: u32,
    rp: &str,
    rc: &str,
    v: &Value,
) -> Result<Inventory, Response> {
    let m = v
        .as_object()
        .ok_or_else(|| not_valid(mv, &format!("{v} is not of type 'object'")))?;
    for k in m.keys() {
        if ![
            "total",
            "reserved",
            "min_unit",
            "max_unit",
            "step_size",
            "allocation_ratio",
            "resource_provider_generation",
            "resource_class",
        ]
        .contains(&k.as_str())
        {
            return Err(not_valid(
                mv,
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
    }
    let int = |k: &str, default: i64, min: i64| -> Result<i64, Response> {
        match m.get(k) {
            None => Ok(default),
            Some(Value::Number(n)) if n.is_i64() => {
                let x = n.as_i64().unwrap_or(0);
                if x < min || x > MAX_INT {
                    Err(not_valid(
                        mv,
                        &format!("{x} is less than the minimum of {min}"),
                    ))
                } else {
                    Ok(x)
                }
            }
            Some(other) => Err(not_valid(mv, &format!("{other} is not of type 'integer'"))),
        }
    };
    if !m.contains_key("total") {
        return Err(not_valid(mv, "'total' is a required property"));
    }
    let inv = Inventory {
        total: int("total", 0, 1)?,
        reserved: int("reserved", 0, 0)?,
        min_unit: int("min_unit", 1, 1)?,
        max_unit: int("max_unit", MAX_INT, 1)?,
        step_size: int("step_size", 1, 1)?,
        allocation_ratio: match m.get("allocation_ratio") {
            None => 1.0,
            Some(Value::Number(n)) => n.as_f64().unwrap_or(1.0),
            Some(other) => return Err(not_valid(mv, &format!("{other} is not of type 'number'"))),
        },
    };
    let too_much = if mv >= 26 {
        inv.reserved > inv.total
    } else {
        inv.reserved >= inv.total && inv.reserved > 0
    };
    if too_much {
        return Err(bad(
            mv,
            &format!(
                "Unable to update inventory for resource provider {rp}: Invalid inventory for '{rc}' on resource provider '{rp}'. The reserved value is greater than total."
            ),
        ));
    }
    if inv.min_unit > inv.max_unit {
        return Err(bad(
            mv,
            &format!(
                "Unable to update inventory for resource provider {rp}: Invalid inventory for '{rc}'. min_unit is greater than max_unit."
            ),
        ));
    }
    Ok(inv)
}

pub(super) fn generation_of(mv: u32, b: &Value) -> Result<i64, Response> {
    match b.get("resource_provider_generation") {
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64().unwrap_or(0)),
        Some(other) => Err(not_valid(mv, &format!("{other} is not of type 'integer'"))),
        None => Err(not_valid(
            mv,
            "'resource_provider_generation' is a required property",
        )),
    }
}

pub(super) fn stale(mv: u32) -> Response {
    perr(
        mv,
        409,
        "resource provider generation conflict",
        Some("placement.concurrent_update"),
    )
}

pub(super) fn in_use(mv: u32, rp: &str, rc: &str, action: &str) -> Response {
    perr(
        mv,
        409,
        &format!(
            "Unable to {action} inventory of class {rc}: Inventory for '{rc}' on resource provider '{rp}' in use."
        ),
        Some(if action == "delete" {
            "placement.concurrent_update"
        } else {
            "placement.inventory.inuse"
        }),
    )
}

pub(super) fn inv_list_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    Ok(json_resp(StatusCode::OK, invs_json(rp)))
}

pub(super) fn inv_put_all_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let uuid = req.param("uuid").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    let generation = generation_of(mv, &b)?;
    let invs = b
        .get("inventories")
        .and_then(Value::as_object)
        .ok_or_else(|| not_valid(mv, "'inventories' is a required property"))?;
    let mut new = BTreeMap::new();
    for (rc, v) in invs {
        if !rc_exists(st, rc) {
            return Err(bad(
                mv,
                &format!(
                    "Unknown resource class in inventory for resource provider {uuid}: No such resource class {rc}."
                ),
            ));
        }
        new.insert(rc.clone(), parse_inventory(mv, &uuid, rc, v)?);
    }
    if generation != st.rps[idx].generation {
        return Err(stale(mv));
    }
    let used = used(st, &uuid);
    for (rc, n) in &used {
        if *n > 0 && !new.contains_key(rc) {
            return Err(in_use(mv, &uuid, rc, "delete"));
        }
    }
    let rp = &mut st.rps[idx];
    rp.inventories = new;
    rp.generation += 1;
    rp.updated_ms = os.now_ms();
    Ok(json_resp(StatusCode::OK, invs_json(rp)))
}

pub(super) fn inv_post_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let uuid = req.param("uuid").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    let generation = generation_of(mv, &b)?;
    let rc = b
        .get("resource_class")
        .and_then(Value::as_str)
        .ok_or_else(|| not_valid(mv, "'resource_class' is a required property"))?
        .to_string();
    if !rc_exists(st, &rc) {
        return Err(bad(mv, &format!("No such resource class {rc}.")));
    }
    let inv = parse_inventory(mv, &uuid, &rc, &b)?;
    if generation != st.rps[idx].generation {
        return Err(stale(mv));
    }
    if st.rps[idx].inventories.contains_key(&rc) {
        return Err(perr(
            mv,
            409,
            &format!(
                "Update conflict: Inventory for {rc} on resource provider {uuid} already exists."
            ),
            None,
        ));
    }
    let rp = &mut st.rps[idx];
    rp.inventories.insert(rc.clone(), inv.clone());
    rp.generation += 1;
    let mut v = inv_json(&inv);
    v["resource_provider_generation"] = json!(rp.generation);
    let r = json_resp(StatusCode::CREATED, v);
    Ok(with_header(
        r,
        "location",
        &format!(
            "{}/resource_providers/{uuid}/inventories/{rc}",
            os.ctx.urls.placement
        ),
    ))
}

pub(super) fn inv_delete_all_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let uuid = req.param("uuid").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    if let Some((rc, _)) = used(st, &uuid).into_iter().find(|(_, n)| *n > 0) {
        return Err(in_use(mv, &uuid, &rc, "delete"));
    }
    let rp = &mut st.rps[idx];
    rp.inventories.clear();
    rp.generation += 1;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn inv_get_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let uuid = req.param("uuid");
    let rc = req.param("rc");
    let rp = find_rp(st, uuid, mv)?;
    let inv = rp.inventories.get(rc).ok_or_else(|| {
        perr(
            mv,
            404,
            &format!("No inventory of class {rc} for {uuid}"),
            None,
        )
    })?;
    let mut v = inv_json(inv);
    v["resource_provider_generation"] = json!(rp.generation);
    Ok(json_resp(StatusCode::OK, v))
}

pub(super) fn inv_put_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let uuid = req.param("uuid").to_string();
    let rc = req.param("rc").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    let generation = generation_of(mv, &b)?;
    if !rc_exists(st, &rc) {
        return Err(bad(mv, &format!("No such resource class {rc}.")));
    }
    let inv = parse_inventory(mv, &uuid, &rc, &b)?;
    if generation != st.rps[idx].generation {
        return Err(stale(mv));
    }
    if !st.rps[idx].inventories.contains_key(&rc) {
        return Err(bad(
            mv,
            &format!("No inventory record with resource class for resource provider {uuid}"),
        ));
    }
    let rp = &mut st.rps[idx];
    rp.inventories.insert(rc, inv.clone());
    rp.generation += 1;
    rp.updated_ms = os.now_ms();
    let mut v = inv_json(&inv);
    v["resource_provider_generation"] = json!(rp.generation);
    Ok(json_resp(StatusCode::OK, v))
}

pub(super) fn inv_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let uuid = req.param("uuid").to_string();
    let rc = req.param("rc").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    if !st.rps[idx].inventories.contains_key(&rc) {
        return Err(perr(
            mv,
            404,
            &format!("No inventory of class {rc} found for delete"),
            None,
        ));
    }
    if used(st, &uuid).get(&rc).copied().unwrap_or(0) > 0 {
        return Err(in_use(mv, &uuid, &rc, "delete"));
    }
    let rp = &mut st.rps[idx];
    rp.inventories.remove(&rc);
    rp.generation += 1;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn rp_usages_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    let used = used(st, &rp.uuid);
    let usages: serde_json::Map<String, Value> = rp
        .inventories
        .keys()
        .map(|rc| (rc.clone(), json!(used.get(rc).copied().unwrap_or(0))))
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        json!({"resource_provider_generation": rp.generation, "usages": usages}),
    ))
}

pub(super) fn rp_allocations_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    let mut allocs = serde_json::Map::new();
    for (id, c) in &st.consumers {
        if let Some(a) = c.allocations.get(&rp.uuid) {
            let mut v = json!({"resources": a});
            if mv >= 28 {
                v["consumer_generation"] = json!(c.generation);
            }
            allocs.insert(id.clone(), v);
        }
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"allocations": allocs, "resource_provider_generation": rp.generation}),
    ))
}
