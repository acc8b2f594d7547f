//! `POST /machines/?op=allocate`: constraint matching and the error texts MAAS writes when
//! nothing matches.

use super::*;

pub(super) fn describe_constraints(p: &Params) -> String {
    let mut keys: Vec<&str> = p.0.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| {
            !matches!(
                *k,
                "agent_name"
                    | "comment"
                    | "bridge_all"
                    | "bridge_stp"
                    | "bridge_fd"
                    | "bridge_type"
                    | "dry_run"
                    | "verbose"
            )
        })
        .map(|k| {
            let vals = p.all(k);
            let v = match k {
                "cpu_count" | "mem" => vals
                    .iter()
                    .map(|v| {
                        parse_num(v)
                            .map(|n| format!("{n:.1}"))
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                _ => vals.join(","),
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn python_repr_constraints(p: &Params) -> String {
    let mut keys: Vec<&str> = Vec::new();
    for (k, _) in &p.0 {
        if !keys.contains(&k.as_str()) {
            keys.push(k);
        }
    }
    let items: Vec<String> = keys
        .iter()
        .map(|k| {
            let vals: Vec<String> = p.all(k).iter().map(|v| format!("'{v}'")).collect();
            format!("('{k}', [{}])", vals.join(", "))
        })
        .collect();
    format!("[{}]", items.join(", "))
}

pub fn allocate(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &mut g.st;
    let p = &r.params;
    for key in ["dry_run", "verbose", "bridge_all", "bridge_stp"] {
        if let Err(v) = p.bool(key) {
            return invalid1(key, format!("'{v}' value must be either True or False."));
        }
    }
    let f = match parse_filter(st, p, true) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let dry_run = p.bool("dry_run").ok().flatten().unwrap_or(false);
    let mut candidates: Vec<&Machine> = st
        .machines
        .values()
        .filter(|m| m.status == S::READY && m.owner.is_none() && !m.locked)
        .filter(|m| filter_matches(st, &f, m))
        .collect();
    // Prefer the smallest machine that fits (MAAS orders candidates by cost).
    candidates.sort_by_key(|m| {
        let h = m.reported.as_ref();
        (
            h.map(|h| h.cpu_count).unwrap_or(0),
            h.map(|h| h.memory_mib).unwrap_or(0),
            h.map(|h| h.gpus.len()).unwrap_or(0),
            m.id,
        )
    });
    let Some(chosen) = candidates.first().map(|m| m.system_id.clone()) else {
        let constraints = describe_constraints(p);
        let msg = if constraints.is_empty() {
            "No machine available.".to_string()
        } else if let Some(sid) = p.get("system_id") {
            format!("No machine with system ID {sid} available.")
        } else {
            format!(
                "No available machine matches constraints: {} (resolved to \"{constraints}\")",
                python_repr_constraints(p)
            )
        };
        return conflict(&msg);
    };
    if !dry_run && let Some(m) = st.machine_mut(&chosen) {
        acquire(m, p.get("agent_name").unwrap_or(""), s.now_ms());
    }
    let Some(m) = st.machine(&chosen) else {
        return not_found("Machine");
    };
    let mut v = render::machine(st, &s.api, m);
    if let Some(o) = v.as_object_mut() {
        o.insert("constraints_by_type".into(), json!({}));
    }
    ok(v)
}
