//! Allocations and usages: a consumer's allocations (get, put, delete), the bulk POST with
//! consumer generations, capacity checks, and per-project usages.

use super::*;

pub(super) fn alloc_get_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let id = req.param("consumer");
    let Some(c) = st.consumers.get(id) else {
        return Ok(json_resp(StatusCode::OK, json!({"allocations": {}})));
    };
    let mut allocs = serde_json::Map::new();
    for (rp, res) in &c.allocations {
        let generation = st
            .rps
            .iter()
            .find(|r| &r.uuid == rp)
            .map(|r| r.generation)
            .unwrap_or(0);
        allocs.insert(
            rp.clone(),
            json!({"resources": res, "generation": generation}),
        );
    }
    let mut v = json!({"allocations": allocs});
    if mv >= 12 {
        v["project_id"] = json!(c.project_id);
        v["user_id"] = json!(c.user_id);
    }
    if mv >= 28 {
        v["consumer_generation"] = json!(c.generation);
    }
    if mv >= 38 {
        v["consumer_type"] = json!(c.consumer_type.clone().unwrap_or_else(|| "unknown".into()));
    }
    Ok(json_resp(StatusCode::OK, v))
}

/// Parse and check one consumer's allocations from a request body.
pub(super) fn parse_allocs(
    st: &State,
    mv: u32,
    b: &Value,
) -> Result<BTreeMap<String, BTreeMap<String, i64>>, Response> {
    let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let raw = b
        .get("allocations")
        .ok_or_else(|| not_valid(mv, "'allocations' is a required property"))?;
    let entries: Vec<(String, Value)> = if mv >= 12 {
        raw.as_object()
            .ok_or_else(|| not_valid(mv, &format!("{raw} is not of type 'object'")))?
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.get("resources").cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    } else {
        raw.as_array()
            .ok_or_else(|| not_valid(mv, &format!("{raw} is not of type 'array'")))?
            .iter()
            .map(|a| {
                (
                    a.pointer("/resource_provider/uuid")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    a.get("resources").cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    };
    if entries.is_empty() && mv < 28 {
        return Err(not_valid(mv, "[] is too short"));
    }
    for (rp, res) in entries {
        let res = res
            .as_object()
            .ok_or_else(|| not_valid(mv, "'resources' is a required property"))?;
        let provider = st.rps.iter().find(|r| r.uuid == rp).ok_or_else(|| {
            bad(
                mv,
                &format!("Allocation for resource provider '{rp}' that does not exist."),
            )
        })?;
        for (rc, n) in res {
            let n = n
                .as_i64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| not_valid(mv, &format!("{n} is less than the minimum of 1")))?;
            if !rc_exists(st, rc) {
                return Err(bad(
                    mv,
                    &format!("Unable to allocate inventory: No such resource class {rc}."),
                ));
            }
            if !provider.inventories.contains_key(rc) {
                return Err(bad(
                    mv,
                    &format!(
                        "Unable to allocate inventory: Inventory for '{rc}' on resource provider '{rp}' invalid."
                    ),
                ));
            }
            out.entry(rp.clone()).or_default().insert(rc.clone(), n);
        }
    }
    Ok(out)
}

/// Check capacity for a consumer's new allocations (its old ones do not count).
pub(super) fn check_capacity(
    st: &State,
    mv: u32,
    consumer: &str,
    allocs: &BTreeMap<String, BTreeMap<String, i64>>,
) -> Result<(), Response> {
    let mut tmp = st.clone();
    tmp.consumers.remove(consumer);
    for (rp, want) in allocs {
        let provider = tmp.rps.iter().find(|r| &r.uuid == rp).cloned();
        if let Some(p) = provider
            && !fits(&tmp, &p, want)
        {
            let rc = want
                .iter()
                .find(|(rc, n)| !fits(&tmp, &p, &BTreeMap::from([((*rc).clone(), **n)])))
                .map(|(rc, _)| rc.clone())
                .unwrap_or_default();
            return Err(perr(
                mv,
                409,
                &format!(
                    "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would exceed the capacity."
                ),
                None,
            ));
        }
    }
    Ok(())
}

pub(super) fn check_consumer_generation(
    st: &State,
    mv: u32,
    consumer: &str,
    b: &Value,
) -> Result<(), Response> {
    if mv < 28 {
        return Ok(());
    }
    let given = b
        .get("consumer_generation")
        .ok_or_else(|| not_valid(mv, "'consumer_generation' is a required property"))?;
    let have = st.consumers.get(consumer).map(|c| c.generation);
    let ok = match (given.as_i64(), have) {
        (None, None) => given.is_null(),
        (Some(g), Some(h)) => g == h,
        _ => false,
    };
    if !ok {
        let exp = have.map(|h| h.to_string()).unwrap_or_else(|| "None".into());
        let got = given
            .as_i64()
            .map(|g| g.to_string())
            .unwrap_or_else(|| "None".into());
        return Err(perr(
            mv,
            409,
            &format!("consumer generation conflict - expected {got} but got {exp}"),
            Some("placement.concurrent_update"),
        ));
    }
    Ok(())
}

pub(super) fn consumer_type(mv: u32, b: &Value) -> Result<Option<String>, Response> {
    if mv < 38 {
        return Ok(None);
    }
    match b.get("consumer_type") {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        _ => Err(not_valid(mv, "'consumer_type' is a required property")),
    }
}

pub(super) fn alloc_put_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let consumer = req.param("consumer").to_string();
    if !is_uuid(&consumer) {
        return Err(bad(mv, &format!("Malformed consumer_uuid: {consumer}")));
    }
    let allocs = parse_allocs(st, mv, &b)?;
    let (project, user) = if mv >= 8 {
        (
            b.get("project_id")
                .and_then(Value::as_str)
                .ok_or_else(|| not_valid(mv, "'project_id' is a required property"))?
                .to_string(),
            b.get("user_id")
                .and_then(Value::as_str)
                .ok_or_else(|| not_valid(mv, "'user_id' is a required property"))?
                .to_string(),
        )
    } else {
        (
            b.get("project_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            b.get("user_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    };
    let ctype = consumer_type(mv, &b)?;
    check_consumer_generation(st, mv, &consumer, &b)?;
    check_capacity(st, mv, &consumer, &allocs)?;
    set_allocations(
        st,
        &consumer,
        &project,
        &user,
        ctype.as_deref(),
        allocs,
        os.now_ms(),
    );
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn alloc_post_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let m = b
        .as_object()
        .ok_or_else(|| not_valid(mv, &format!("{b} is not of type 'object'")))?;
    let mut work = Vec::new();
    for (consumer, v) in m {
        if !is_uuid(consumer) {
            return Err(not_valid(
                mv,
                &format!("'{consumer}' does not match any of the regexes"),
            ));
        }
        let allocs = parse_allocs(st, 12.max(mv), v)?;
        let project = v
            .get("project_id")
            .and_then(Value::as_str)
            .ok_or_else(|| not_valid(mv, "'project_id' is a required property"))?
            .to_string();
        let user = v
            .get("user_id")
            .and_then(Value::as_str)
            .ok_or_else(|| not_valid(mv, "'user_id' is a required property"))?
            .to_string();
        let ctype = consumer_type(mv, v)?;
        check_consumer_generation(st, mv, consumer, v)?;
        work.push((consumer.clone(), project, user, ctype, allocs));
    }
    let mut tmp = st.clone();
    for (consumer, _, _, _, _) in &work {
        tmp.consumers.remove(consumer);
    }
    for (consumer, _, _, _, allocs) in &work {
        check_capacity(&tmp, mv, consumer, allocs)?;
    }
    for (consumer, project, user, ctype, allocs) in work {
        set_allocations(
            st,
            &consumer,
            &project,
            &user,
            ctype.as_deref(),
            allocs,
            os.now_ms(),
        );
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn alloc_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let consumer = req.param("consumer");
    if !st.consumers.contains_key(consumer) {
        return Err(perr(
            mv,
            404,
            &format!("No allocations for consumer '{consumer}'"),
            None,
        ));
    }
    release(st, consumer);
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn usages_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let mut allowed = vec!["project_id", "user_id"];
    if mv >= 38 {
        allowed.push("consumer_type");
    }
    check_query(req, mv, &allowed)?;
    let project = req.q("project_id").ok_or_else(|| {
        bad(
            mv,
            "Invalid query string parameters: 'project_id' is a required property",
        )
    })?;
    let consumers = st.consumers.values().filter(|c| {
        c.project_id == project
            && req.q("user_id").is_none_or(|u| u == c.user_id)
            && req
                .q("consumer_type")
                .is_none_or(|t| t == "all" || t == c.consumer_type.as_deref().unwrap_or("unknown"))
    });
    if mv >= 38 {
        let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for c in consumers {
            let e = out
                .entry(c.consumer_type.clone().unwrap_or_else(|| "unknown".into()))
                .or_default();
            *e.entry("consumer_count".into()).or_insert(0) += 1;
            for res in c.allocations.values() {
                for (rc, n) in res {
                    *e.entry(rc.clone()).or_insert(0) += n;
                }
            }
        }
        return Ok(json_resp(StatusCode::OK, json!({"usages": out})));
    }
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for c in consumers {
        for res in c.allocations.values() {
            for (rc, n) in res {
                *out.entry(rc.clone()).or_insert(0) += n;
            }
        }
    }
    Ok(json_resp(StatusCode::OK, json!({"usages": out})))
}
