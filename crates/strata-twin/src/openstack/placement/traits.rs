//! Traits and aggregates: the trait registry (list, show, put, delete) and the traits and
//! aggregates associated with a provider.

use super::*;

pub(super) fn rp_traits_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"traits": rp.traits, "resource_provider_generation": rp.generation}),
    ))
}

pub(super) fn rp_traits_put_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let idx = rp_index(st, req.param("uuid"), mv)?;
    let generation = generation_of(mv, &b)?;
    let traits: Vec<String> = b
        .get("traits")
        .and_then(Value::as_array)
        .ok_or_else(|| not_valid(mv, "'traits' is a required property"))?
        .iter()
        .map(|t| {
            t.as_str()
                .map(str::to_string)
                .ok_or_else(|| not_valid(mv, &format!("{t} is not of type 'string'")))
        })
        .collect::<Result<_, _>>()?;
    let unknown: Vec<&String> = traits.iter().filter(|t| !trait_exists(st, t)).collect();
    if !unknown.is_empty() {
        return Err(bad(
            mv,
            &format!(
                "No such trait(s): {}.",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if generation != st.rps[idx].generation {
        return Err(stale(mv));
    }
    let rp = &mut st.rps[idx];
    rp.traits = traits.into_iter().collect();
    rp.generation += 1;
    Ok(json_resp(
        StatusCode::OK,
        json!({"traits": rp.traits, "resource_provider_generation": rp.generation}),
    ))
}

pub(super) fn rp_traits_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let idx = rp_index(st, req.param("uuid"), mv)?;
    let rp = &mut st.rps[idx];
    rp.traits.clear();
    rp.generation += 1;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn aggs_json(rp: &ResourceProvider, mv: u32) -> Value {
    if mv >= 19 {
        json!({"aggregates": rp.aggregates, "resource_provider_generation": rp.generation})
    } else {
        json!({"aggregates": rp.aggregates})
    }
}

pub(super) fn rp_aggs_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    Ok(json_resp(StatusCode::OK, aggs_json(rp, mv)))
}

pub(super) fn rp_aggs_put_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let idx = rp_index(st, req.param("uuid"), mv)?;
    let list = if mv >= 19 {
        let generation = generation_of(mv, &b)?;
        if generation != st.rps[idx].generation {
            return Err(stale(mv));
        }
        b.get("aggregates")
            .cloned()
            .ok_or_else(|| not_valid(mv, "'aggregates' is a required property"))?
    } else {
        b
    };
    let aggs: Vec<String> = list
        .as_array()
        .ok_or_else(|| not_valid(mv, &format!("{list} is not of type 'array'")))?
        .iter()
        .map(|a| {
            a.as_str()
                .filter(|s| is_uuid(s))
                .map(str::to_string)
                .ok_or_else(|| not_valid(mv, &format!("{a} is not a 'uuid'")))
        })
        .collect::<Result<_, _>>()?;
    let rp = &mut st.rps[idx];
    rp.aggregates = aggs;
    if mv >= 19 {
        rp.generation += 1;
    }
    Ok(json_resp(StatusCode::OK, aggs_json(rp, mv)))
}

pub(super) fn trait_list_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    check_query(req, mv, &["name", "associated"])?;
    let mut all: Vec<String> = STANDARD_TRAITS
        .iter()
        .map(|s| s.to_string())
        .chain(st.custom_traits.iter().cloned())
        .collect();
    if let Some(n) = req.q("name") {
        if let Some(p) = n.strip_prefix("startswith:") {
            all.retain(|t| t.starts_with(p));
        } else if let Some(list) = n.strip_prefix("in:") {
            let want: Vec<&str> = list.split(',').collect();
            all.retain(|t| want.contains(&t.as_str()));
        } else {
            return Err(bad(
                mv,
                &format!(
                    "Badly formed name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"{n}\""
                ),
            ));
        }
    }
    if let Some(a) = req.q("associated").and_then(parse_bool) {
        let used: BTreeSet<&String> = st.rps.iter().flat_map(|r| r.traits.iter()).collect();
        all.retain(|t| used.contains(t) == a);
    }
    Ok(json_resp(StatusCode::OK, json!({"traits": all})))
}

pub(super) fn trait_get_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name");
    if !trait_exists(st, name) {
        return Err(perr(mv, 404, &format!("No such trait(s): {name}."), None));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn trait_put_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name").to_string();
    let location = format!("{}/traits/{name}", os.ctx.urls.placement);
    if !custom_name_ok(&name) {
        return Err(bad(
            mv,
            "The trait is invalid. A valid trait must be no longer than 255 characters, start with the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", \"0\"-\"9\" and \"_\"",
        ));
    }
    if trait_exists(st, &name) {
        return Ok(with_header(
            empty(StatusCode::NO_CONTENT),
            "location",
            &location,
        ));
    }
    st.custom_traits.push(name);
    Ok(with_header(
        empty(StatusCode::CREATED),
        "location",
        &location,
    ))
}

pub(super) fn trait_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name").to_string();
    if STANDARD_TRAITS.contains(&name.as_str()) {
        return Err(bad(mv, &format!("Cannot delete standard trait {name}.")));
    }
    let idx = st
        .custom_traits
        .iter()
        .position(|c| c == &name)
        .ok_or_else(|| perr(mv, 404, &format!("No such trait(s): {name}."), None))?;
    if st.rps.iter().any(|r| r.traits.contains(&name)) {
        return Err(perr(
            mv,
            409,
            &format!("The trait {name} is in use by a resource provider."),
            None,
        ));
    }
    st.custom_traits.remove(idx);
    Ok(empty(StatusCode::NO_CONTENT))
}
