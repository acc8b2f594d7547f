//! Request parsing shared by the handlers: JSON bodies, allowed query parameters,
//! `resources=` strings, required and forbidden traits, `member_of` aggregate filters.

use super::*;

pub(super) fn body(req: &Req, mv: u32) -> Result<Value, Response> {
    if req.body_is_empty() {
        return Err(bad(
            mv,
            "Malformed JSON: Expecting value: line 1 column 1 (char 0)",
        ));
    }
    serde_json::from_slice(&req.body).map_err(|e| bad(mv, &format!("Malformed JSON: {e}")))
}

pub(super) fn not_valid(mv: u32, what: &str) -> Response {
    bad(mv, &format!("JSON does not validate: {what}"))
}

pub(super) fn check_query(req: &Req, mv: u32, allowed: &[&str]) -> Result<(), Response> {
    for (k, _) in &req.query {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(
                mv,
                &format!(
                    "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                ),
            ));
        }
    }
    Ok(())
}

/// Parse `VCPU:2,MEMORY_MB:1024`.
pub(super) fn parse_resources(
    st: &State,
    mv: u32,
    s: &str,
) -> Result<BTreeMap<String, i64>, Response> {
    let mut out = BTreeMap::new();
    for part in s.split(',') {
        let Some((rc, n)) = part.split_once(':') else {
            return Err(bad(
                mv,
                &format!(
                    "Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: {s}."
                ),
            ));
        };
        let n: i64 = n.trim().parse().map_err(|_| {
            bad(
                mv,
                &format!("Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: {s}."),
            )
        })?;
        if n < 1 {
            return Err(bad(
                mv,
                &format!("Requested resource {rc} requires amount >= 1. Got: {n}."),
            ));
        }
        if !rc_exists(st, rc) {
            return Err(bad(
                mv,
                &format!(
                    "Invalid resource class in resources parameter: No such resource class {rc}."
                ),
            ));
        }
        if out.insert(rc.to_string(), n).is_some() {
            return Err(bad(
                mv,
                &format!(
                    "Badly formed resources parameter. Resource class {rc} was specified more than once."
                ),
            ));
        }
    }
    Ok(out)
}

/// Parse a `required` value: traits that must (or, with `!`, must not) be present, and
/// `in:A,B` any-of groups (1.39).
pub(super) struct TraitReq {
    pub(super) all: Vec<String>,
    pub(super) none: Vec<String>,
    pub(super) any: Vec<Vec<String>>,
}

pub(super) fn parse_required(st: &State, mv: u32, values: &[&str]) -> Result<TraitReq, Response> {
    let mut r = TraitReq {
        all: vec![],
        none: vec![],
        any: vec![],
    };
    let mut unknown = Vec::new();
    for v in values {
        if let Some(list) = v.strip_prefix("in:") {
            if mv < 39 {
                return Err(bad(
                    mv,
                    &format!(
                        "Invalid query string parameters: The format 'in:' is not supported until 1.39. Got: {v}"
                    ),
                ));
            }
            let group: Vec<String> = list.split(',').map(str::to_string).collect();
            unknown.extend(group.iter().filter(|t| !trait_exists(st, t)).cloned());
            r.any.push(group);
            continue;
        }
        for t in v.split(',') {
            if let Some(f) = t.strip_prefix('!') {
                if mv < 22 {
                    return Err(bad(
                        mv,
                        &format!(
                            "Invalid query string parameters: Expected 'required' parameter value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: {v}"
                        ),
                    ));
                }
                if !trait_exists(st, f) {
                    unknown.push(f.to_string());
                }
                r.none.push(f.to_string());
            } else {
                if !trait_exists(st, t) {
                    unknown.push(t.to_string());
                }
                r.all.push(t.to_string());
            }
        }
    }
    if !unknown.is_empty() {
        return Err(bad(
            mv,
            &format!("No such trait(s): {}.", unknown.join(", ")),
        ));
    }
    Ok(r)
}

pub(super) fn traits_ok(rp: &ResourceProvider, t: &TraitReq) -> bool {
    t.all.iter().all(|x| rp.traits.contains(x))
        && t.none.iter().all(|x| !rp.traits.contains(x))
        && t.any
            .iter()
            .all(|g| g.iter().any(|x| rp.traits.contains(x)))
}

pub(super) fn member_ok(
    rp: &ResourceProvider,
    member_of: &[Vec<String>],
    root_aggs: &[String],
) -> bool {
    member_of.iter().all(|group| {
        let (neg, list) = match group.first().map(|s| s.starts_with('!')) {
            Some(true) => (
                true,
                group
                    .iter()
                    .map(|s| s.trim_start_matches('!').to_string())
                    .collect::<Vec<_>>(),
            ),
            _ => (false, group.clone()),
        };
        let hit = list
            .iter()
            .any(|a| rp.aggregates.contains(a) || root_aggs.contains(a));
        hit != neg
    })
}

pub(super) fn parse_member_of(mv: u32, values: &[&str]) -> Result<Vec<Vec<String>>, Response> {
    let mut out = Vec::new();
    for v in values {
        let (neg, v) = match v.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, *v),
        };
        let list = v.strip_prefix("in:").unwrap_or(v);
        let ids: Vec<String> = list.split(',').map(str::to_string).collect();
        if ids.iter().any(|i| !is_uuid(i)) {
            return Err(bad(
                mv,
                &format!(
                    "Invalid query string parameters: Expected 'member_of' parameter to contain valid UUID(s). Got: {v}"
                ),
            ));
        }
        out.push(if neg {
            ids.into_iter().map(|i| format!("!{i}")).collect()
        } else {
            ids
        });
    }
    Ok(out)
}
