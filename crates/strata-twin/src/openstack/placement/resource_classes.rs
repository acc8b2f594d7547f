//! Resource classes: the standard ones plus custom `CUSTOM_*` classes, list, create, show,
//! put and delete.

use super::*;

pub(super) fn rc_link(os: &Os, name: &str) -> Value {
    json!([{"rel": "self", "href": format!("{}/resource_classes/{name}", os.placement_path)}])
}

pub(super) fn all_rcs(st: &State) -> Vec<String> {
    STANDARD_RESOURCE_CLASSES
        .iter()
        .map(|s| s.to_string())
        .chain(st.custom_rcs.iter().cloned())
        .collect()
}

pub(super) fn custom_name_ok(name: &str) -> bool {
    name.len() <= 255
        && name.strip_prefix("CUSTOM_").is_some_and(|r| {
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
}

pub(super) fn pattern_error(mv: u32, name: &str) -> Response {
    not_valid(
        mv,
        &format!("'{name}' does not match '^CUSTOM_[A-Z0-9_]+$'"),
    )
}

pub(super) fn rc_list_(os: &Os, _req: &Req, st: &mut State, _mv: u32) -> R {
    let list: Vec<Value> = all_rcs(st)
        .iter()
        .map(|n| json!({"name": n, "links": rc_link(os, n)}))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"resource_classes": list})))
}

pub(super) fn rc_create_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| not_valid(mv, "'name' is a required property"))?
        .to_string();
    if !custom_name_ok(&name) {
        return Err(pattern_error(mv, &name));
    }
    if rc_exists(st, &name) {
        return Err(perr(
            mv,
            409,
            &format!("Conflicting resource class already exists: {name}"),
            None,
        ));
    }
    st.custom_rcs.push(name.clone());
    Ok(with_header(
        empty(StatusCode::CREATED),
        "location",
        &format!("{}/resource_classes/{name}", os.ctx.urls.placement),
    ))
}

pub(super) fn rc_get_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name");
    if !rc_exists(st, name) {
        return Err(perr(
            mv,
            404,
            &format!("No such resource class {name}."),
            None,
        ));
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"name": name, "links": rc_link(os, name)}),
    ))
}

pub(super) fn rc_put_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name").to_string();
    let location = format!("{}/resource_classes/{name}", os.ctx.urls.placement);
    if mv >= 7 {
        if !custom_name_ok(&name) {
            return Err(pattern_error(mv, &name));
        }
        if rc_exists(st, &name) {
            return Ok(with_header(
                empty(StatusCode::NO_CONTENT),
                "location",
                &location,
            ));
        }
        st.custom_rcs.push(name);
        return Ok(with_header(
            empty(StatusCode::CREATED),
            "location",
            &location,
        ));
    }
    // Before 1.7: rename a custom class.
    let b = body(req, mv)?;
    let new = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| not_valid(mv, "'name' is a required property"))?
        .to_string();
    if STANDARD_RESOURCE_CLASSES.contains(&name.as_str()) {
        return Err(bad(
            mv,
            &format!("Cannot update standard resource class {name}"),
        ));
    }
    if !custom_name_ok(&new) {
        return Err(pattern_error(mv, &new));
    }
    let idx = st
        .custom_rcs
        .iter()
        .position(|c| c == &name)
        .ok_or_else(|| perr(mv, 404, &format!("No such resource class {name}."), None))?;
    if rc_exists(st, &new) {
        return Err(perr(
            mv,
            409,
            &format!("Resource class already exists: {new}"),
            None,
        ));
    }
    st.custom_rcs[idx] = new.clone();
    Ok(json_resp(
        StatusCode::OK,
        json!({"name": new, "links": rc_link(os, &new)}),
    ))
}

pub(super) fn rc_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name").to_string();
    if STANDARD_RESOURCE_CLASSES.contains(&name.as_str()) {
        return Err(bad(
            mv,
            &format!(
                "Cannot delete standard resource class {name}: Cannot delete standard resource class."
            ),
        ));
    }
    let idx = st
        .custom_rcs
        .iter()
        .position(|c| c == &name)
        .ok_or_else(|| perr(mv, 404, &format!("No such resource class {name}."), None))?;
    if st.rps.iter().any(|r| r.inventories.contains_key(&name)) {
        return Err(perr(
            mv,
            409,
            &format!("Unable to delete resource class {name}. Class is in use in inventory."),
            None,
        ));
    }
    st.custom_rcs.remove(idx);
    st.pci_aliases.retain(|a| a.resource_class != name);
    Ok(empty(StatusCode::NO_CONTENT))
}
