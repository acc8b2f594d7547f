//! Resource providers: lookup, the provider view with its links, listing with filters,
//! create (with parents and trees), update and delete.

use super::*;

pub(super) fn find_rp<'a>(
    st: &'a State,
    uuid: &str,
    mv: u32,
) -> Result<&'a ResourceProvider, Response> {
    st.rps.iter().find(|r| r.uuid == uuid).ok_or_else(|| {
        perr(
            mv,
            404,
            &format!("No resource provider with uuid {uuid} found"),
            None,
        )
    })
}

pub(super) fn rp_index(st: &State, uuid: &str, mv: u32) -> Result<usize, Response> {
    st.rps.iter().position(|r| r.uuid == uuid).ok_or_else(|| {
        perr(
            mv,
            404,
            &format!("No resource provider with uuid {uuid} found"),
            None,
        )
    })
}

pub(super) fn rp_json(os: &Os, rp: &ResourceProvider, mv: u32) -> Value {
    let base = format!("{}/resource_providers/{}", os.placement_path, rp.uuid);
    let mut links = vec![
        json!({"rel": "self", "href": base}),
        json!({"rel": "inventories", "href": format!("{base}/inventories")}),
        json!({"rel": "usages", "href": format!("{base}/usages")}),
    ];
    if mv >= 1 {
        links.push(json!({"rel": "aggregates", "href": format!("{base}/aggregates")}));
    }
    if mv >= 6 {
        links.push(json!({"rel": "traits", "href": format!("{base}/traits")}));
    }
    if mv >= 11 {
        links.push(json!({"rel": "allocations", "href": format!("{base}/allocations")}));
    }
    let mut v =
        json!({"uuid": rp.uuid, "name": rp.name, "generation": rp.generation, "links": links});
    if mv >= 14 {
        v["parent_provider_uuid"] = json!(rp.parent);
        v["root_provider_uuid"] = json!(rp.root);
    }
    v
}

pub(super) fn rp_list_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let mut allowed = vec!["name", "uuid"];
    if mv >= 3 {
        allowed.push("member_of");
    }
    if mv >= 4 {
        allowed.push("resources");
    }
    if mv >= 14 {
        allowed.push("in_tree");
    }
    if mv >= 18 {
        allowed.push("required");
    }
    check_query(req, mv, &allowed)?;
    let resources = match req.q("resources") {
        Some(r) => Some(parse_resources(st, mv, r)?),
        None => None,
    };
    let required = match req.q_all("required") {
        v if v.is_empty() => None,
        v => Some(parse_required(st, mv, &v)?),
    };
    let member_of = parse_member_of(mv, &req.q_all("member_of"))?;
    let in_tree_root = match req.q("in_tree") {
        Some(t) => Some(
            st.rps
                .iter()
                .find(|r| r.uuid == t)
                .map(|r| r.root.clone())
                .ok_or_else(|| bad(mv, &format!("Invalid uuid value: {t}")))?,
        ),
        None => None,
    };
    let list: Vec<Value> = st
        .rps
        .iter()
        .filter(|rp| {
            req.q("name").is_none_or(|n| n == rp.name)
                && req.q("uuid").is_none_or(|u| u == rp.uuid)
                && in_tree_root.as_ref().is_none_or(|root| &rp.root == root)
                && resources.as_ref().is_none_or(|want| fits(st, rp, want))
                && required.as_ref().is_none_or(|t| traits_ok(rp, t))
                && member_ok(rp, &member_of, &[])
        })
        .map(|rp| rp_json(os, rp, mv))
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        json!({"resource_providers": list}),
    ))
}

pub(super) fn rp_create_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| not_valid(mv, "'name' is a required property"))?
        .to_string();
    if name.is_empty() || name.len() > 200 {
        return Err(not_valid(mv, &format!("'{name}' is not a valid name")));
    }
    let uuid = match b.get("uuid") {
        Some(Value::String(u)) if is_uuid(u) => uuid::Uuid::parse_str(u)
            .map(|u| u.to_string())
            .unwrap_or_default(),
        Some(v) if !v.is_null() => return Err(not_valid(mv, &format!("{v} is not a 'uuid'"))),
        _ => os.uuid(),
    };
    if st.rps.iter().any(|r| r.name == name) {
        return Err(perr(
            mv,
            409,
            &format!("Conflicting resource provider name: {name} already exists."),
            Some("placement.duplicate_name"),
        ));
    }
    if st.rps.iter().any(|r| r.uuid == uuid) {
        return Err(perr(
            mv,
            409,
            &format!("Conflicting resource provider uuid: {uuid} already exists."),
            None,
        ));
    }
    let parent = match b.get("parent_provider_uuid") {
        Some(Value::String(p)) if mv >= 14 => {
            let p = st
                .rps
                .iter()
                .find(|r| &r.uuid == p)
                .ok_or_else(|| bad(mv, &format!("parent provider UUID does not exist: {p}")))?;
            Some((p.uuid.clone(), p.root.clone()))
        }
        Some(v) if mv < 14 && !v.is_null() => {
            return Err(not_valid(
                mv,
                "Additional properties are not allowed ('parent_provider_uuid' was unexpected)",
            ));
        }
        _ => None,
    };
    let rp = ResourceProvider {
        uuid: uuid.clone(),
        name,
        generation: 0,
        root: parent
            .as_ref()
            .map(|p| p.1.clone())
            .unwrap_or_else(|| uuid.clone()),
        parent: parent.map(|p| p.0),
        inventories: BTreeMap::new(),
        traits: BTreeSet::new(),
        aggregates: vec![],
        updated_ms: os.now_ms(),
    };
    let location = format!("{}/resource_providers/{uuid}", os.ctx.urls.placement);
    let r = if mv >= 20 {
        json_resp(StatusCode::OK, rp_json(os, &rp, mv))
    } else {
        empty(StatusCode::CREATED)
    };
    st.rps.push(rp);
    Ok(with_header(r, "location", &location))
}

pub(super) fn rp_get_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    Ok(json_resp(StatusCode::OK, rp_json(os, rp, mv)))
}

pub(super) fn rp_update_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let uuid = req.param("uuid");
    let idx = rp_index(st, uuid, mv)?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| not_valid(mv, "'name' is a required property"))?
        .to_string();
    if st.rps.iter().any(|r| r.name == name && r.uuid != uuid) {
        return Err(perr(
            mv,
            409,
            &format!("Conflicting resource provider name: {name} already exists."),
            Some("placement.duplicate_name"),
        ));
    }
    if mv >= 14
        && let Some(p) = b.get("parent_provider_uuid")
    {
        let new_parent = p.as_str().map(str::to_string);
        if new_parent != st.rps[idx].parent {
            if st.rps[idx].parent.is_some() && mv < 37 {
                return Err(bad(
                    mv,
                    "Unable to unset parent provider. Updating the parent of a resource provider is not supported before microversion 1.37.",
                ));
            }
            match &new_parent {
                Some(np) => {
                    let parent = st.rps.iter().find(|r| &r.uuid == np).ok_or_else(|| {
                        bad(mv, &format!("parent provider UUID does not exist: {np}"))
                    })?;
                    if parent.root == st.rps[idx].root && parent.uuid != st.rps[idx].root && mv < 37
                    {
                        return Err(bad(
                            mv,
                            "creating loop in the provider tree is not allowed.",
                        ));
                    }
                    let root = parent.root.clone();
                    st.rps[idx].parent = Some(np.clone());
                    st.rps[idx].root = root;
                }
                None => {
                    st.rps[idx].parent = None;
                    st.rps[idx].root = uuid.to_string();
                }
            }
        }
    }
    st.rps[idx].name = name;
    st.rps[idx].updated_ms = os.now_ms();
    Ok(json_resp(StatusCode::OK, rp_json(os, &st.rps[idx], mv)))
}

pub(super) fn rp_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let uuid = req.param("uuid").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    if st
        .consumers
        .values()
        .any(|c| c.allocations.contains_key(&uuid))
    {
        return Err(perr(
            mv,
            409,
            &format!(
                "Unable to delete resource provider {uuid}: Resource provider has allocations."
            ),
            Some("placement.resource_provider.inuse"),
        ));
    }
    if st
        .rps
        .iter()
        .any(|r| r.parent.as_deref() == Some(uuid.as_str()))
    {
        return Err(perr(
            mv,
            409,
            &format!(
                "Unable to delete parent resource provider {uuid}: It has child resource providers."
            ),
            Some("placement.resource_provider.cannot_delete_parent"),
        ));
    }
    st.rps.remove(idx);
    Ok(empty(StatusCode::NO_CONTENT))
}
