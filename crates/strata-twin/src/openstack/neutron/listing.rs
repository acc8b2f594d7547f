//! Listing as Neutron does it over rendered objects: attribute filters, sorting, `fields`
//! selection and marker/limit pagination with next/previous links.

use super::*;
use crate::core::Direction;

pub(super) const RESERVED: &[&str] = &[
    "fields",
    "limit",
    "marker",
    "page_reverse",
    "sort_key",
    "sort_dir",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
];

pub(super) fn value_matches(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => parse_bool(want) == Some(*b),
        Value::Number(n) => n.to_string() == want,
        Value::Null => {
            want.is_empty()
                || want.eq_ignore_ascii_case("none")
                || want.eq_ignore_ascii_case("null")
        }
        Value::Array(a) => a.iter().any(|x| value_matches(x, want)),
        Value::Object(_) => false,
    }
}

/// Filter, sort, page and trim rendered objects the way Neutron's API layer does.
pub(super) fn list_response(os: &Os, req: &Req, coll: &str, items: Vec<Value>) -> R {
    let mut items = items;
    // Attribute filters (repeated keys OR together).
    let mut filters: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in &req.query {
        if !RESERVED.contains(&k.as_str()) {
            filters.entry(k.as_str()).or_default().push(v.as_str());
        }
    }
    if let Some(first) = items.first() {
        for k in filters.keys() {
            let known = first.get(*k).is_some()
                || *k == "fixed_ips"
                || *k == "tenant_id"
                || *k == "project_id";
            if !known {
                return Err(bad(&format!("[{k}] is invalid attribute for filtering")));
            }
        }
    }
    items.retain(|o| {
        filters.iter().all(|(k, wants)| {
            if *k == "fixed_ips" {
                let ips = o
                    .get("fixed_ips")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                return wants.iter().any(|w| {
                    let (fk, fv) = w.split_once('=').unwrap_or(("ip_address", w));
                    ips.iter()
                        .any(|ip| ip.get(fk).and_then(Value::as_str) == Some(fv))
                });
            }
            o.get(*k)
                .is_some_and(|v| wants.iter().any(|w| value_matches(v, w)))
        })
    });
    let tagset = |k: &str| -> Vec<String> {
        req.q(k)
            .map(|t| t.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (tags, tags_any, not_tags, not_tags_any) = (
        tagset("tags"),
        tagset("tags-any"),
        tagset("not-tags"),
        tagset("not-tags-any"),
    );
    items.retain(|o| {
        let have: Vec<&str> = o
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        tags.iter().all(|t| have.contains(&t.as_str()))
            && (tags_any.is_empty() || tags_any.iter().any(|t| have.contains(&t.as_str())))
            && (not_tags.is_empty() || !not_tags.iter().all(|t| have.contains(&t.as_str())))
            && not_tags_any.iter().all(|t| !have.contains(&t.as_str()))
    });
    // Sorting.
    let keys = req.q_all("sort_key");
    let dirs = req.q_all("sort_dir");
    if !keys.is_empty() {
        if let Some(first) = items.first() {
            for k in &keys {
                if first.get(*k).is_none() {
                    return Err(bad(&format!("{k} is an invalid attribute for sort_keys")));
                }
            }
        }
        items.sort_by(|a, b| {
            for (i, k) in keys.iter().enumerate() {
                let o = cmp_json(&a[*k], &b[*k]);
                let o = if dirs.get(i).copied() == Some("desc") {
                    o.reverse()
                } else {
                    o
                };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    // Pagination.
    let limit = match req.q("limit") {
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            bad(&format!(
                "Bad limit request: Limit must be an integer 0 or greater and not '{l}'."
            ))
        })?),
        None => None,
    }
    .filter(|l| *l > 0);
    let reverse = req.q("page_reverse").and_then(parse_bool).unwrap_or(false);
    let marker = req.q("marker");
    let id_of = |o: &Value| -> String {
        o.get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let direction = if reverse {
        Direction::Backward
    } else {
        Direction::Forward
    };
    let page = crate::core::page(items, id_of, marker, limit, direction)
        .map_err(|e| not_found(coll.trim_end_matches('s'), &e.0))?;
    let mut items = page.items;
    let mut links = Vec::new();
    if let Some(l) = limit {
        let more = page.more;
        let base = format!("{}/v2.0/{coll}", os.ctx.urls.network);
        if let (true, Some(last)) = (more, items.last()) {
            let q = query_with(
                &req.query,
                &[("limit", l.to_string()), ("marker", id_of(last))],
            );
            links.push(json!({"href": format!("{base}?{q}"), "rel": "next"}));
        }
        if let (true, Some(first)) = (marker.is_some(), items.first()) {
            let q = query_with(
                &req.query,
                &[
                    ("limit", l.to_string()),
                    ("marker", id_of(first)),
                    ("page_reverse", "True".to_string()),
                ],
            );
            links.push(json!({"href": format!("{base}?{q}"), "rel": "previous"}));
        }
    }
    let fields = req.q_all("fields");
    if !fields.is_empty() {
        for o in items.iter_mut() {
            if let Some(m) = o.as_object_mut() {
                m.retain(|k, _| fields.contains(&k.as_str()));
            }
        }
    }
    let mut body = json!({coll: items});
    if !links.is_empty() {
        body[format!("{coll}_links")] = json!(links);
    }
    Ok(json_resp(StatusCode::OK, body))
}

pub(super) fn cmp_json(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

pub(super) fn show_fields(req: &Req, mut v: Value) -> Value {
    let fields = req.q_all("fields");
    if !fields.is_empty()
        && let Some(m) = v.as_object_mut()
    {
        m.retain(|k, _| fields.contains(&k.as_str()));
    }
    v
}
