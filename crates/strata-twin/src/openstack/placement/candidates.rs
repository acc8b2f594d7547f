//! Allocation candidates: request groups (granular, with suffixes), tree-aware candidate
//! search and the allocation requests and provider summaries it returns.

use super::*;

pub(super) struct Group {
    pub(super) suffix: String,
    pub(super) resources: BTreeMap<String, i64>,
    pub(super) required: TraitReq,
    pub(super) member_of: Vec<Vec<String>>,
    pub(super) in_tree: Option<String>,
}

/// One way to satisfy every group: provider → class → amount, and which provider
/// served each group.
pub(super) struct Candidate {
    pub(super) allocs: BTreeMap<String, BTreeMap<String, i64>>,
    pub(super) mappings: BTreeMap<String, Vec<String>>,
}

pub(super) fn parse_groups(st: &State, req: &Req, mv: u32) -> Result<Vec<Group>, Response> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut seen_any = false;
    for (k, v) in &req.query {
        let (base, suffix) = ["resources", "required", "member_of", "in_tree"]
            .iter()
            .find_map(|b| k.strip_prefix(b).map(|s| (*b, s.to_string())))
            .unwrap_or(("", String::new()));
        let allowed_other = ["limit", "group_policy", "root_required", "same_subtree"];
        if base.is_empty() {
            if !allowed_other.contains(&k.as_str())
                || (mv < 25 && k == "group_policy")
                || (mv < 35 && k == "root_required")
                || (mv < 36 && k == "same_subtree")
            {
                return Err(bad(
                    mv,
                    &format!(
                        "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                    ),
                ));
            }
            continue;
        }
        if !suffix.is_empty()
            && (mv < 25 || (mv < 33 && !suffix.chars().all(|c| c.is_ascii_digit())))
        {
            return Err(bad(
                mv,
                &format!(
                    "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                ),
            ));
        }
        if (base == "in_tree" && mv < 31)
            || (base == "member_of" && mv < 21)
            || (base == "required" && mv < 17)
        {
            return Err(bad(
                mv,
                &format!(
                    "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                ),
            ));
        }
        let g = groups.entry(suffix.clone()).or_insert_with(|| Group {
            suffix: suffix.clone(),
            resources: BTreeMap::new(),
            required: TraitReq {
                all: vec![],
                none: vec![],
                any: vec![],
            },
            member_of: vec![],
            in_tree: None,
        });
        match base {
            "resources" => {
                seen_any = true;
                g.resources = parse_resources(st, mv, v)?;
            }
            "required" => {
                let t = parse_required(st, mv, &[v.as_str()])?;
                g.required.all.extend(t.all);
                g.required.none.extend(t.none);
                g.required.any.extend(t.any);
            }
            "member_of" => g.member_of.extend(parse_member_of(mv, &[v.as_str()])?),
            _ => {
                if !st.rps.iter().any(|r| &r.uuid == v) {
                    return Err(bad(mv, &format!("Invalid uuid value: {v}")));
                }
                g.in_tree = Some(v.clone());
            }
        }
    }
    if !seen_any {
        return Err(if mv >= 25 {
            perr(
                mv,
                400,
                "There must be at least one resources or resources[$S] parameter.",
                Some("placement.query.missing_value"),
            )
        } else {
            bad(
                mv,
                "Invalid query string parameters: 'resources' is a required property",
            )
        });
    }
    for g in groups.values() {
        if g.resources.is_empty() && !g.suffix.is_empty() && mv < 35 {
            return Err(bad(
                mv,
                &format!(
                    "Resources query string parameter resources{} is required when required{0} or member_of{0} is given.",
                    g.suffix
                ),
            ));
        }
    }
    let suffixed = groups.keys().filter(|k| !k.is_empty()).count();
    if suffixed > 1 && req.q("group_policy").is_none() && mv < 33 {
        return Err(bad(
            mv,
            "The \"group_policy\" parameter is required when specifying more than one \"resources{N}\" parameter.",
        ));
    }
    Ok(groups
        .into_values()
        .filter(|g| !g.resources.is_empty())
        .collect())
}

/// Every way each group can be served inside one provider tree.
pub(super) fn tree_candidates(
    st: &State,
    tree: &[&ResourceProvider],
    groups: &[Group],
    isolate: bool,
    out: &mut Vec<Candidate>,
    limit: usize,
) {
    // Options per group: the unsuffixed group may spread its classes over the tree,
    // a suffixed group takes all its resources from one provider.
    let root_aggs: Vec<String> = tree
        .iter()
        .find(|r| r.parent.is_none())
        .map(|r| r.aggregates.clone())
        .unwrap_or_default();
    let mut options: Vec<Vec<Vec<(String, String, i64)>>> = Vec::new();
    for g in groups {
        let eligible: Vec<&&ResourceProvider> = tree
            .iter()
            .filter(|rp| traits_ok(rp, &g.required) && member_ok(rp, &g.member_of, &root_aggs))
            .filter(|_| {
                g.in_tree
                    .as_ref()
                    .is_none_or(|t| tree.iter().any(|x| &x.uuid == t))
            })
            .collect();
        let mut opts: Vec<Vec<(String, String, i64)>> = Vec::new();
        if g.suffix.is_empty() {
            // Cartesian product over classes.
            let mut partial: Vec<Vec<(String, String, i64)>> = vec![vec![]];
            for (rc, n) in &g.resources {
                let hosts: Vec<&&&ResourceProvider> = eligible
                    .iter()
                    .filter(|rp| fits(st, rp, &BTreeMap::from([(rc.clone(), *n)])))
                    .collect();
                let mut next = Vec::new();
                for p in &partial {
                    for h in &hosts {
                        let mut q = p.clone();
                        q.push((h.uuid.clone(), rc.clone(), *n));
                        next.push(q);
                    }
                }
                partial = next;
                if partial.len() > 1000 {
                    partial.truncate(1000);
                }
            }
            opts = partial;
        } else {
            for rp in &eligible {
                if fits(st, rp, &g.resources) {
                    opts.push(
                        g.resources
                            .iter()
                            .map(|(rc, n)| (rp.uuid.clone(), rc.clone(), *n))
                            .collect(),
                    );
                }
            }
        }
        if opts.is_empty() {
            return;
        }
        options.push(opts);
    }
    // Combine the groups.
    let mut combos: Vec<Vec<usize>> = vec![vec![]];
    for opts in &options {
        let mut next = Vec::new();
        for c in &combos {
            for i in 0..opts.len() {
                let mut d = c.clone();
                d.push(i);
                next.push(d);
            }
        }
        combos = next;
        if combos.len() > 4096 {
            combos.truncate(4096);
        }
    }
    for combo in combos {
        if out.len() >= limit {
            return;
        }
        let mut allocs: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        let mut mappings: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut ok = true;
        for (gi, oi) in combo.iter().enumerate() {
            let g = &groups[gi];
            for (rp, rc, n) in &options[gi][*oi] {
                *allocs
                    .entry(rp.clone())
                    .or_default()
                    .entry(rc.clone())
                    .or_insert(0) += n;
                let m = mappings.entry(g.suffix.clone()).or_default();
                if !m.contains(rp) {
                    m.push(rp.clone());
                }
            }
        }
        if isolate {
            let suffixed: Vec<&Vec<String>> = mappings
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(_, v)| v)
                .collect();
            for (i, a) in suffixed.iter().enumerate() {
                for b in &suffixed[i + 1..] {
                    if a.iter().any(|x| b.contains(x)) {
                        ok = false;
                    }
                }
            }
        }
        // Combined amounts must still fit.
        if ok {
            ok = allocs.iter().all(|(rp, want)| {
                tree.iter()
                    .find(|r| &r.uuid == rp)
                    .is_some_and(|r| fits(st, r, want))
            });
        }
        let dup = out.iter().any(|c| c.allocs == allocs);
        if ok && !dup {
            out.push(Candidate { allocs, mappings });
        }
    }
}

pub(super) fn candidates_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let groups = parse_groups(st, req, mv)?;
    let limit = match req.q("limit") {
        Some(l) if mv >= 16 => l.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            bad(
                mv,
                &format!("Invalid query string parameters: '{l}' does not match '^[1-9][0-9]*$'"),
            )
        })?,
        Some(_) => {
            return Err(bad(
                mv,
                "Invalid query string parameters: Additional properties are not allowed ('limit' was unexpected)",
            ));
        }
        None => usize::MAX,
    };
    let isolate = req.q("group_policy") == Some("isolate");
    let root_required = match req.q("root_required") {
        Some(v) => Some(parse_required(st, mv, &[v])?),
        None => None,
    };
    let mut out = Vec::new();
    let roots: Vec<&ResourceProvider> = st.rps.iter().filter(|r| r.parent.is_none()).collect();
    for root in &roots {
        if root_required.as_ref().is_some_and(|t| !traits_ok(root, t)) {
            continue;
        }
        let tree: Vec<&ResourceProvider> = st.rps.iter().filter(|r| r.root == root.uuid).collect();
        tree_candidates(st, &tree, &groups, isolate, &mut out, limit);
        if out.len() >= limit {
            break;
        }
    }
    // Provider summaries.
    let requested: BTreeSet<&String> = groups.iter().flat_map(|g| g.resources.keys()).collect();
    let mut involved: Vec<String> = Vec::new();
    for c in &out {
        for rp in c.allocs.keys() {
            let root = st
                .rps
                .iter()
                .find(|r| &r.uuid == rp)
                .map(|r| r.root.clone())
                .unwrap_or_default();
            let members: Vec<String> = if mv >= 29 {
                st.rps
                    .iter()
                    .filter(|r| r.root == root)
                    .map(|r| r.uuid.clone())
                    .collect()
            } else {
                vec![rp.clone()]
            };
            for m in members {
                if !involved.contains(&m) {
                    involved.push(m);
                }
            }
        }
    }
    let mut summaries = serde_json::Map::new();
    for uuid in &involved {
        let Some(rp) = st.rps.iter().find(|r| &r.uuid == uuid) else {
            continue;
        };
        let used = used(st, uuid);
        let mut res = serde_json::Map::new();
        for (rc, inv) in &rp.inventories {
            if mv >= 27 || requested.contains(rc) {
                res.insert(
                    rc.clone(),
                    json!({"capacity": capacity(inv), "used": used.get(rc).copied().unwrap_or(0)}),
                );
            }
        }
        let mut s = json!({"resources": res});
        if mv >= 17 {
            s["traits"] = json!(rp.traits);
        }
        if mv >= 29 {
            s["parent_provider_uuid"] = json!(rp.parent);
            s["root_provider_uuid"] = json!(rp.root);
        }
        summaries.insert(uuid.clone(), s);
    }
    let requests: Vec<Value> = out
        .iter()
        .map(|c| {
            let mut v = if mv >= 12 {
                let m: serde_json::Map<String, Value> = c
                    .allocs
                    .iter()
                    .map(|(rp, res)| (rp.clone(), json!({"resources": res})))
                    .collect();
                json!({"allocations": m})
            } else {
                json!({"allocations": c.allocs.iter().map(|(rp, res)| json!({"resource_provider": {"uuid": rp}, "resources": res})).collect::<Vec<_>>()})
            };
            if mv >= 34 {
                v["mappings"] = json!(c.mappings);
            }
            v
        })
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        json!({"allocation_requests": requests, "provider_summaries": summaries}),
    ))
}
