//! Flavors: listing with visibility and pagination, create/update/delete, flavor access for
//! private flavors (the 409 for a public flavor from 2.7), and extra specs (validated
//! from 2.86 by nova's validators, `extra_specs.rs`; PCI alias specs map to GPU
//! inventories).

use super::*;

pub(super) fn flavor_json(os: &Os, f: &Flavor, mv: u32, detail: bool) -> Value {
    let mut v = json!({"id": f.id, "name": f.name, "links": links(os, "flavors", &f.id)});
    if mv >= 55 {
        v["description"] = json!(f.description);
    }
    if !detail {
        return v;
    }
    v["ram"] = json!(f.ram);
    v["vcpus"] = json!(f.vcpus);
    v["disk"] = json!(f.disk);
    v["OS-FLV-EXT-DATA:ephemeral"] = json!(f.ephemeral);
    v["os-flavor-access:is_public"] = json!(f.is_public);
    v["swap"] = if f.swap == 0 && mv < 75 {
        json!("")
    } else {
        json!(f.swap)
    };
    if mv < 102 {
        v["OS-FLV-DISABLED:disabled"] = json!(f.disabled);
        v["rxtx_factor"] = json!(f.rxtx_factor);
    }
    if mv >= 61 {
        v["extra_specs"] = json!(f.extra_specs);
    }
    v
}

pub(super) fn find_flavor<'a>(st: &'a State, id: &str) -> Result<&'a Flavor, Response> {
    st.flavors
        .get(id)
        .ok_or_else(|| err(404, &format!("Flavor {id} could not be found.")))
}

fn find_flavor_mut<'a>(st: &'a mut State, id: &str) -> Result<&'a mut Flavor, Response> {
    st.flavors
        .get_mut(id)
        .ok_or_else(|| err(404, &format!("Flavor {id} could not be found.")))
}

pub(super) fn flavor_visible(f: &Flavor, cx: &Cx, is_public: Option<bool>) -> bool {
    match is_public {
        Some(p) => {
            f.is_public == p
                && (p || cx.admin() || f.access.iter().any(|a| a == cx.caller.project()))
        }
        None => f.is_public || cx.admin() || f.access.iter().any(|a| a == cx.caller.project()),
    }
}

pub(super) fn list_flavors(os: &Os, req: &Req, st: &State, cx: &Cx, detail: bool) -> R {
    let is_public = match req.q("is_public") {
        None => Some(true),
        Some(v) if v.eq_ignore_ascii_case("none") => None,
        Some(v) => {
            Some(parse_bool(v).ok_or_else(|| bad(&format!("Invalid is_public filter [{v}]")))?)
        }
    };
    let is_public = if is_public == Some(true) && !cx.admin() {
        None
    } else {
        is_public
    };
    let min_ram = match req.q("minRam") {
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| bad(&format!("Invalid minRam filter [{v}]")))?,
        ),
        None => None,
    };
    let min_disk = match req.q("minDisk") {
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| bad(&format!("Invalid minDisk filter [{v}]")))?,
        ),
        None => None,
    };
    let mut items: Vec<&Flavor> = st
        .flavors
        .iter()
        .filter(|f| flavor_visible(f, cx, is_public))
        .filter(|f| min_ram.is_none_or(|m| f.ram >= m) && min_disk.is_none_or(|m| f.disk >= m))
        .collect();
    let key = req.q("sort_key").unwrap_or("flavorid");
    let valid = [
        "created_at",
        "description",
        "disabled",
        "ephemeral_gb",
        "flavorid",
        "id",
        "is_public",
        "memory_mb",
        "name",
        "root_gb",
        "rxtx_factor",
        "swap",
        "updated_at",
        "vcpu_weight",
        "vcpus",
    ];
    if !valid.contains(&key) {
        return Err(bad(&format!(
            "Invalid input for query parameters sort_key. Value: {key}. '{key}' is not one of {valid:?}"
        )));
    }
    items.sort_by(|a, b| {
        let o = match key {
            "name" => a.name.cmp(&b.name),
            "memory_mb" => a.ram.cmp(&b.ram),
            "vcpus" => a.vcpus.cmp(&b.vcpus),
            "root_gb" => a.disk.cmp(&b.disk),
            "created_at" | "updated_at" => a.created_ms.cmp(&b.created_ms),
            _ => a.id.cmp(&b.id),
        };
        o.then_with(|| a.id.cmp(&b.id))
    });
    if req.q("sort_dir") == Some("desc") {
        items.reverse();
    }
    let path = if detail { "flavors/detail" } else { "flavors" };
    let (page, next) = paginate(
        os,
        req,
        items,
        |f| f.id.clone(),
        path,
        |m| bad(&format!("marker [{m}] not found")),
    )?;
    let mut body = json!({"flavors": page.iter().map(|f| flavor_json(os, f, cx.mv, detail)).collect::<Vec<_>>()});
    if let Some(n) = next {
        body["flavors_links"] = n;
    }
    Ok(json_resp(StatusCode::OK, body))
}

pub(super) fn flavors_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_flavors(os, req, st, cx, false)
}

pub(super) fn flavors_detail_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_flavors(os, req, st, cx, true)
}

pub(super) fn flavor_get_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    // nova/api/openstack/compute/flavors.py `show` reads the flavor with the caller's
    // context: a private flavor the project has no access to is not found.
    let id = req.param("id");
    let f = find_flavor(st, id)?;
    if !flavor_visible(f, cx, None) {
        return Err(err(404, &format!("Flavor {id} could not be found.")));
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"flavor": flavor_json(os, f, cx.mv, true)}),
    ))
}

pub(super) fn int_field(
    body: &Value,
    field: &str,
    min: i64,
    default: Option<i64>,
) -> Result<i64, Response> {
    match body.get(field) {
        None | Some(Value::Null) => default
            .ok_or_else(|| invalid("flavor", body, &format!("'{field}' is a required property"))),
        Some(v) => {
            let n = as_int(v).ok_or_else(|| {
                invalid(
                    field,
                    v,
                    &format!("{} is not of type 'integer', 'string'", py_repr(v)),
                )
            })?;
            if n < min {
                return Err(invalid(
                    field,
                    v,
                    &format!("{n} is less than the minimum of {min}"),
                ));
            }
            if n > 2_147_483_647 {
                return Err(invalid(
                    field,
                    v,
                    &format!("{n} is greater than the maximum of 2147483647"),
                ));
            }
            Ok(n)
        }
    }
}

pub(super) fn flavor_create_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-manage:create")?;
    let body = req
        .json()
        .ok_or_else(|| bad("The request body is not valid JSON."))?;
    let f = body
        .get("flavor")
        .filter(|f| f.is_object())
        .ok_or_else(|| invalid("request body", &body, "'flavor' is a required property"))?;
    let allowed = [
        "name",
        "id",
        "ram",
        "vcpus",
        "disk",
        "OS-FLV-EXT-DATA:ephemeral",
        "swap",
        "rxtx_factor",
        "os-flavor-access:is_public",
        "description",
    ];
    for k in f
        .as_object()
        .map(|m| m.keys().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !allowed.contains(&k.as_str())
            || (k == "description" && cx.mv < 55)
            || (k == "rxtx_factor" && cx.mv >= 102)
        {
            return Err(invalid(
                "flavor",
                f,
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
    }
    let name = check_name(
        "name",
        f.get("name")
            .ok_or_else(|| invalid("flavor", f, "'name' is a required property"))?,
    )?
    .to_string();
    let id = match f.get("id") {
        None | Some(Value::Null) => os.uuid(),
        Some(Value::String(s)) if s == "auto" => os.uuid(),
        Some(Value::String(s)) => {
            if s.is_empty()
                || s.len() > 255
                || s.chars()
                    .any(|c| !(c.is_ascii_alphanumeric() || "-_. ".contains(c)))
            {
                return Err(invalid("id", &json!(s), "is not a valid flavor id"));
            }
            s.clone()
        }
        Some(Value::Number(n)) => n.to_string(),
        Some(v) => {
            return Err(invalid(
                "id",
                v,
                "is not valid under any of the given schemas",
            ));
        }
    };
    let ram = int_field(f, "ram", 1, None)?;
    let vcpus = int_field(f, "vcpus", 1, None)?;
    let disk = int_field(f, "disk", 0, None)?;
    let ephemeral = int_field(f, "OS-FLV-EXT-DATA:ephemeral", 0, Some(0))?;
    let swap = int_field(f, "swap", 0, Some(0))?;
    let rxtx = match f.get("rxtx_factor") {
        None => 1.0,
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|x| *x > 0.0)
            .ok_or_else(|| invalid("rxtx_factor", v, "is not valid"))?,
    };
    let is_public = match f.get("os-flavor-access:is_public") {
        None => true,
        Some(v) => as_bool(v).ok_or_else(|| {
            invalid(
                "os-flavor-access:is_public",
                v,
                &not_of_type(v, &["boolean"]),
            )
        })?,
    };
    let description = match f.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 65535 => Some(s.clone()),
        Some(v) => return Err(invalid("description", v, "is not valid")),
    };
    if st.flavors.iter().any(|x| x.name == name) {
        return Err(err(
            409,
            &format!("Flavor with name {name} already exists."),
        ));
    }
    if st.flavors.contains(&id) {
        return Err(err(409, &format!("Flavor with ID {id} already exists.")));
    }
    let flavor = Flavor {
        id,
        name,
        vcpus,
        ram,
        disk,
        ephemeral,
        swap,
        rxtx_factor: rxtx,
        is_public,
        disabled: false,
        description,
        extra_specs: BTreeMap::new(),
        created_ms: os.now_ms(),
        // A private flavor starts with an empty access list: Nova does not add the
        // creating project (nova/api/openstack/compute/flavors.py `create`, "For
        // backward compatibility, non public flavor access is not being added for
        // created tenant. Ref -bug/1209101").
        access: vec![],
    };
    let v = flavor_json(os, &flavor, cx.mv, true);
    let row = next_flavor_row(st);
    st.flavor_rows.insert(flavor.id.clone(), row);
    st.flavors.insert(flavor);
    Ok(json_resp(StatusCode::OK, json!({"flavor": v})))
}

pub(super) fn flavor_update_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-manage:update")?;
    let body = req.json().unwrap_or(Value::Null);
    let desc = body
        .pointer("/flavor/description")
        .ok_or_else(|| {
            invalid(
                "flavor",
                body.get("flavor").unwrap_or(&Value::Null),
                "'description' is a required property",
            )
        })?
        .clone();
    if body
        .get("flavor")
        .and_then(Value::as_object)
        .is_some_and(|m| m.len() > 1)
    {
        return Err(invalid(
            "flavor",
            &body["flavor"],
            "Additional properties are not allowed",
        ));
    }
    let id = req.param("id").to_string();
    let f = find_flavor_mut(st, &id)?;
    f.description = desc.as_str().map(str::to_string);
    Ok(json_resp(
        StatusCode::OK,
        json!({"flavor": flavor_json(os, f, cx.mv, true)}),
    ))
}

pub(super) fn flavor_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-manage:delete")?;
    let id = req.param("id");
    flavor_row(st, id);
    st.flavors
        .remove(id)
        .ok_or_else(|| err(404, &format!("Flavor {id} could not be found.")))?;
    st.flavor_rows.remove(id);
    Ok(empty(StatusCode::ACCEPTED))
}

pub(super) fn flavor_access_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-access")?;
    let f = find_flavor(st, req.param("id"))?;
    if f.is_public {
        return Err(err(404, "Access list not available for public flavors."));
    }
    let list: Vec<Value> = f
        .access
        .iter()
        .map(|p| json!({"flavor_id": f.id, "tenant_id": p}))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"flavor_access": list})))
}

/// The database row id of a flavor (`instance_types.id`), which nova's flavor-access
/// errors quote. The seeded flavors hold rows 1.. in table order; every flavor created
/// since takes the next row, and rows are not reused (MySQL's AUTO_INCREMENT).
fn flavor_row(st: &mut State, id: &str) -> u64 {
    if let Some(r) = st.flavor_rows.get(id) {
        return *r;
    }
    // Rows for flavors that predate the record (the seed's, older state files).
    let ids: Vec<String> = st.flavors.iter().map(|f| f.id.clone()).collect();
    for fid in ids {
        if !st.flavor_rows.contains_key(&fid) {
            let row = next_flavor_row(st);
            st.flavor_rows.insert(fid, row);
        }
    }
    st.flavor_rows.get(id).copied().unwrap_or(0)
}

fn next_flavor_row(st: &mut State) -> u64 {
    let top = st.flavor_rows.values().copied().max().unwrap_or(0);
    st.last_flavor_row = st.last_flavor_row.max(top) + 1;
    st.last_flavor_row
}

/// `flavor_access.py`'s two actions, each with its schema.
pub(super) fn flavor_action_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let (action, arg) = action_peek(req)?;
    let add = match action.as_str() {
        "addTenantAccess" => true,
        "removeTenantAccess" => false,
        other => return Err(bad(&format!("There is no such action: {other}"))),
    };
    if add {
        cx.require_admin("os_compute_api:os-flavor-access:add_tenant_access")?;
    } else {
        cx.require_admin("os_compute_api:os-flavor-access:remove_tenant_access")?;
    }
    check_object(&arg, &["tenant"], &["tenant"], Some(&action))?;
    let t = match &arg["tenant"] {
        Value::String(t) if t.is_empty() => {
            return Err(invalid("tenant", &arg["tenant"], "'' should be non-empty"));
        }
        Value::String(t) if t.chars().count() > 255 => {
            let v = &arg["tenant"];
            return Err(invalid("tenant", v, &format!("{} is too long", py_repr(v))));
        }
        Value::String(t) => t.clone(),
        other => return Err(invalid("tenant", other, &not_of_type(other, &["string"]))),
    };
    // nova/api/openstack/compute/flavor_access.py checks the project with Keystone
    // before it reads the flavor (nova/api/openstack/identity.py `verify_project_id`);
    // removing tolerates a project that is gone.
    if add && !st.projects.iter().any(|p| p.id == t) {
        return Err(bad(&format!("Project ID {t} is not a valid project.")));
    }
    let id = req.param("id").to_string();
    find_flavor_mut(st, &id)?;
    let row = flavor_row(st, &id);
    if add {
        let f = find_flavor_mut(st, &id)?;
        // The 409 is from 2.7 (flavor_access.py `_add_tenant_access`); before, the
        // project is added to a public flavor's (unused) access list.
        if f.is_public && cx.mv >= 7 {
            return Err(err(409, "Can not add access to a public flavor."));
        }
        if f.access.contains(&t) {
            return Err(err(
                409,
                &format!(
                    "Flavor access already exists for flavor {row} and project {t} combination."
                ),
            ));
        }
        f.access.push(t);
    } else {
        let f = find_flavor_mut(st, &id)?;
        let before = f.access.len();
        f.access.retain(|a| *a != t);
        if before == f.access.len() {
            return Err(err(
                404,
                &format!("Flavor access not found for {row} / {t} combination."),
            ));
        }
    }
    let f = find_flavor_mut(st, &id)?;
    let list: Vec<Value> = f
        .access
        .iter()
        .map(|p| json!({"flavor_id": f.id, "tenant_id": p}))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"flavor_access": list})))
}

/// The types an extra spec's value may have (flavors_extraspecs.py's schema).
const SPEC_TYPES: &[&str] = &["string", "number", "boolean"];

/// Check an extra spec once the schema passed ([`check_metadata`]): a number's text
/// at most 255 characters, and from 2.86 nova's validators ([`super::extra_specs`]).
pub(super) fn check_spec(key: &str, value: &str, mv: u32) -> Result<(), Response> {
    if value.chars().count() > 255 {
        return Err(bad(
            "Invalid input received: extra_specs value has more than 255 characters.",
        ));
    }
    let _ = key;
    // flavors_extraspecs.py `_check_extra_specs_value`: nova's validators from 2.86.
    if mv >= 86 {
        super::extra_specs::validate(key, value).map_err(|e| bad(&e))?;
    }
    Ok(())
}

/// `gpu-h100:1,other:2` → [(name, count)].
pub(crate) fn parse_alias_spec(v: &str) -> Result<Vec<(String, i64)>, String> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, count) = part.split_once(':').unwrap_or((part, "1"));
        let n: i64 = count
            .trim()
            .parse()
            .map_err(|_| format!("'{v}' is not a valid PCI alias request"))?;
        if name.is_empty() || n < 1 {
            return Err(format!("'{v}' is not a valid PCI alias request"));
        }
        out.push((name.trim().to_string(), n));
    }
    if out.is_empty() {
        return Err(format!("'{v}' is not a valid PCI alias request"));
    }
    Ok(out)
}

pub(super) fn spec_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
        _ => None,
    }
}

pub(super) fn specs_list_(_os: &Os, req: &Req, st: &mut State, _cx: &Cx) -> R {
    let f = find_flavor(st, req.param("id"))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"extra_specs": f.extra_specs}),
    ))
}

pub(super) fn specs_create_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-extra-specs:create")?;
    let body = req.json().unwrap_or(Value::Null);
    let specs = body
        .get("extra_specs")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(
                "request body",
                &body,
                "'extra_specs' is a required property",
            )
        })?
        .clone();
    check_metadata("extra_specs", &body["extra_specs"], SPEC_TYPES)?;
    let mut parsed = BTreeMap::new();
    for (k, v) in &specs {
        let v = spec_value(v).unwrap_or_default();
        check_spec(k, &v, cx.mv)?;
        parsed.insert(k.clone(), v);
    }
    let id = req.param("id").to_string();
    let f = find_flavor_mut(st, &id)?;
    f.extra_specs.extend(parsed.clone());
    // nova answers with the request's body (flavors_extraspecs.py `create` returns it),
    // where a number stays a number; the twin answers the stored text (a known
    // difference: tests/openstack_samples.rs sends numbers where the published
    // samples have strings and expects strings back).
    Ok(json_resp(StatusCode::OK, json!({"extra_specs": parsed})))
}

pub(super) fn spec_get_(_os: &Os, req: &Req, st: &mut State, _cx: &Cx) -> R {
    let id = req.param("id");
    let key = req.param("key");
    let f = find_flavor(st, id)?;
    let v = f.extra_specs.get(key).ok_or_else(|| {
        err(
            404,
            &format!("Flavor {id} has no extra specs with key {key}."),
        )
    })?;
    Ok(json_resp(StatusCode::OK, json!({key: v})))
}

pub(super) fn spec_put_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-extra-specs:update")?;
    let body = req.json().unwrap_or(Value::Null);
    let id = req.param("id").to_string();
    let key = req.param("key").to_string();
    // flavors_extraspecs.py `update`: the schema (one metadata item), the values'
    // checks, then the key against the URI, then the flavor.
    check_metadata("request body", &body, SPEC_TYPES)?;
    let m = body.as_object().cloned().unwrap_or_default();
    if m.is_empty() {
        return Err(bad(&format!("{} should be non-empty", py_repr(&body))));
    }
    if m.len() > 1 {
        return Err(bad(&format!("{} has too many properties", py_repr(&body))));
    }
    for (k, v) in &m {
        check_spec(k, &spec_value(v).unwrap_or_default(), cx.mv)?;
    }
    let Some(v) = m.get(&key) else {
        return Err(bad("Request body and URI mismatch"));
    };
    let stored = spec_value(v).unwrap_or_default();
    let f = find_flavor_mut(st, &id)?;
    f.extra_specs.insert(key.clone(), stored.clone());
    // (nova echoes the body; the stored text here, as for `create`.)
    Ok(json_resp(StatusCode::OK, json!({ key: stored })))
}

pub(super) fn spec_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-extra-specs:delete")?;
    let id = req.param("id").to_string();
    let key = req.param("key");
    let f = find_flavor_mut(st, &id)?;
    if f.extra_specs.remove(key).is_none() {
        return Err(err(
            404,
            &format!("Flavor {id} has no extra specs with key {key}."),
        ));
    }
    Ok(empty(StatusCode::OK))
}
