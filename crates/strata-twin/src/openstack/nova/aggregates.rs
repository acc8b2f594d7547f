//! Host aggregates: create, update, delete, add and remove hosts, set metadata (whose
//! availability_zone key defines zones), and image cache requests.

use super::*;

pub(super) fn agg_json(a: &Aggregate, mv: u32, full: bool) -> Value {
    let mut v = json!({
        "availability_zone": a.metadata.get("availability_zone"),
        "created_at": iso_plain_us(a.created_ms),
        "deleted": false,
        "deleted_at": null,
        "id": a.id,
        "name": a.name,
        "updated_at": a.updated_ms.map(iso_plain_us),
    });
    if full {
        v["hosts"] = json!(a.hosts);
        v["metadata"] = json!(a.metadata);
    }
    if mv >= 41 {
        v["uuid"] = json!(a.uuid);
    }
    v
}

/// Hosts take the AZ of the aggregate that names one, `nova` otherwise.
pub(super) fn recompute_azs(st: &mut State) {
    for h in st.hosts.iter_mut() {
        h.az = st
            .aggregates
            .iter()
            .find(|a| a.hosts.contains(&h.host) && a.metadata.contains_key("availability_zone"))
            .and_then(|a| a.metadata.get("availability_zone").cloned())
            .unwrap_or_else(|| "nova".into());
    }
}

pub(super) fn agg_index(st: &State, id: &str) -> Result<usize, Response> {
    st.aggregates
        .iter()
        .position(|a| a.id.to_string() == id)
        .ok_or_else(|| err(404, &format!("Aggregate {id} could not be found.")))
}

pub(super) fn aggs_list_(_os: &Os, _req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:index")?;
    let list: Vec<Value> = st
        .aggregates
        .iter()
        .map(|a| agg_json(a, cx.mv, true))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"aggregates": list})))
}

pub(super) fn agg_create_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:create")?;
    let body = req.json().unwrap_or(Value::Null);
    let b = body
        .get("aggregate")
        .filter(|a| a.is_object())
        .ok_or_else(|| invalid("request body", &body, "'aggregate' is a required property"))?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty() && n.len() <= 255)
        .ok_or_else(|| invalid("aggregate", b, "'name' is a required property"))?
        .to_string();
    if st.aggregates.iter().any(|a| a.name == name) {
        return Err(err(409, &format!("Aggregate {name} already exists.")));
    }
    let mut metadata = BTreeMap::new();
    if let Some(az) = b.get("availability_zone").and_then(Value::as_str) {
        metadata.insert("availability_zone".to_string(), az.to_string());
    }
    st.next_aggregate += 1;
    let a = Aggregate {
        id: st.next_aggregate,
        uuid: os.uuid(),
        name,
        hosts: vec![],
        metadata,
        created_ms: os.now_ms(),
        updated_ms: None,
    };
    let v = agg_json(&a, cx.mv, false);
    st.aggregates.push(a);
    Ok(json_resp(StatusCode::OK, json!({"aggregate": v})))
}

pub(super) fn agg_get_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:show")?;
    let i = agg_index(st, req.param("id"))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"aggregate": agg_json(&st.aggregates[i], cx.mv, true)}),
    ))
}

pub(super) fn agg_update_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:update")?;
    let body = req.json().unwrap_or(Value::Null);
    let b = body
        .get("aggregate")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("request body", &body, "'aggregate' is a required property"))?
        .clone();
    let i = agg_index(st, req.param("id"))?;
    if let Some(n) = b.get("name").and_then(Value::as_str) {
        if st
            .aggregates
            .iter()
            .enumerate()
            .any(|(j, a)| j != i && a.name == n)
        {
            return Err(err(409, &format!("Aggregate {n} already exists.")));
        }
        st.aggregates[i].name = n.to_string();
    }
    match b.get("availability_zone") {
        Some(Value::String(az)) => {
            st.aggregates[i]
                .metadata
                .insert("availability_zone".into(), az.clone());
        }
        Some(Value::Null) => {
            st.aggregates[i].metadata.remove("availability_zone");
        }
        _ => {}
    }
    st.aggregates[i].updated_ms = Some(os.now_ms());
    recompute_azs(st);
    Ok(json_resp(
        StatusCode::OK,
        json!({"aggregate": agg_json(&st.aggregates[i], cx.mv, true)}),
    ))
}

pub(super) fn agg_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:delete")?;
    let i = agg_index(st, req.param("id"))?;
    if !st.aggregates[i].hosts.is_empty() {
        return Err(bad(&format!(
            "Cannot delete aggregate {}. Reason: Host aggregate is not empty.",
            st.aggregates[i].id
        )));
    }
    st.aggregates.remove(i);
    Ok(empty(StatusCode::OK))
}

pub(super) fn agg_action_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:add_host")?;
    let body = req.json().unwrap_or(Value::Null);
    let i = agg_index(st, req.param("id"))?;
    let id = st.aggregates[i].id;
    if let Some(h) = body.pointer("/add_host/host").and_then(Value::as_str) {
        if !st.hosts.iter().any(|x| x.host == h) {
            return Err(err(404, &format!("Compute host {h} could not be found.")));
        }
        if st.aggregates[i].hosts.iter().any(|x| x == h) {
            return Err(err(409, &format!("Aggregate {id} already has host {h}.")));
        }
        if let Some(az) = st.aggregates[i].metadata.get("availability_zone") {
            let other = st
                .aggregates
                .iter()
                .filter(|a| a.id != id && a.hosts.iter().any(|x| x == h))
                .filter_map(|a| a.metadata.get("availability_zone"))
                .find(|z| *z != az);
            if let Some(z) = other {
                return Err(err(
                    409,
                    &format!(
                        "Cannot add host to aggregate {id}. Reason: One or more hosts already in availability zone(s) ['{z}']."
                    ),
                ));
            }
        }
        st.aggregates[i].hosts.push(h.to_string());
    } else if let Some(h) = body.pointer("/remove_host/host").and_then(Value::as_str) {
        let before = st.aggregates[i].hosts.len();
        st.aggregates[i].hosts.retain(|x| x != h);
        if before == st.aggregates[i].hosts.len() {
            return Err(err(
                404,
                &format!("Cannot remove host {h} in aggregate {id}"),
            ));
        }
    } else if let Some(m) = body
        .pointer("/set_metadata/metadata")
        .and_then(Value::as_object)
    {
        for (k, v) in m {
            match v {
                Value::Null => {
                    st.aggregates[i].metadata.remove(k);
                }
                v => {
                    let s = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    st.aggregates[i].metadata.insert(k.clone(), s);
                }
            }
        }
        st.aggregates[i].updated_ms = Some(os.now_ms());
    } else {
        return Err(invalid(
            "request body",
            &body,
            "is not valid under any of the given schemas",
        ));
    }
    recompute_azs(st);
    Ok(json_resp(
        StatusCode::OK,
        json!({"aggregate": agg_json(&st.aggregates[i], cx.mv, true)}),
    ))
}

pub(super) fn agg_images_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("compute:aggregates:images")?;
    agg_index(st, req.param("id"))?;
    let body = req.json().unwrap_or(Value::Null);
    let list = body
        .get("cache")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("request body", &body, "'cache' is a required property"))?;
    for i in list {
        let id = i.get("id").and_then(Value::as_str).unwrap_or("");
        if !st.images.contains(id) {
            return Err(bad(&format!("Image {id} not found")));
        }
    }
    Ok(empty(StatusCode::ACCEPTED))
}
