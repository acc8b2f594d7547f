//! Tags on networks, subnets and ports: list, replace, clear, check, add and remove a
//! single tag.

use super::*;

pub(super) fn tag_owner<'a>(
    st: &'a mut State,
    req: &Req,
    c: &Caller,
) -> Result<&'a mut Vec<String>, Response> {
    let id = req.param("id").to_string();
    // The collection is the third path segment; work it out from which object has the id.
    if let Ok(i) = find_net(st, &id, c) {
        return Ok(&mut st.networks[i].tags);
    }
    if let Ok(i) = find_subnet(st, &id, c) {
        return Ok(&mut st.subnets[i].tags);
    }
    if let Ok(i) = find_port(st, &id, c) {
        return Ok(&mut st.ports[i].tags);
    }
    Err(nerr(
        404,
        "NotFound",
        &format!("Resource {id} could not be found."),
    ))
}

pub(super) fn tags_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let t = tag_owner(st, req, c)?;
    Ok(json_resp(StatusCode::OK, json!({"tags": t})))
}

pub(super) fn tags_put_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let b = req.json().unwrap_or(Value::Null);
    let tags = tags_field(&b)?.ok_or_else(|| bad("Invalid input for tags. Reason: required."))?;
    let t = tag_owner(st, req, c)?;
    *t = tags;
    Ok(json_resp(StatusCode::OK, json!({"tags": t})))
}

pub(super) fn tags_clear_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let t = tag_owner(st, req, c)?;
    t.clear();
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn tag_check_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let tag = req.param("tag").to_string();
    let t = tag_owner(st, req, c)?;
    if !t.contains(&tag) {
        return Err(nerr(
            404,
            "TagNotFound",
            &format!(
                "Tag {tag} could not be found for resource {}.",
                req.param("id")
            ),
        ));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn tag_add_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let tag = req.param("tag").to_string();
    if tag.is_empty() || tag.len() > 255 || tag.contains(',') {
        return Err(bad(&format!(
            "Invalid input for tags. Reason: '{tag}' is not a valid tag."
        )));
    }
    let t = tag_owner(st, req, c)?;
    if !t.contains(&tag) {
        t.push(tag);
    }
    Ok(empty(StatusCode::CREATED))
}

pub(super) fn tag_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let tag = req.param("tag").to_string();
    let t = tag_owner(st, req, c)?;
    let before = t.len();
    t.retain(|x| x != &tag);
    if before == t.len() {
        return Err(nerr(
            404,
            "TagNotFound",
            &format!(
                "Tag {tag} could not be found for resource {}.",
                req.param("id")
            ),
        ));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}
