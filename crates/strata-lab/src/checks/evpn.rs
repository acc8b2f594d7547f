//! Check 2: EVPN type-3 routes from every VTEP, and type-2 routes after traffic.

use super::*;

/// Make every host talk, so that its leaf learns its MAC (and IP): routed hosts ping
/// their gateway, others a peer on their segment.
pub(super) fn warm_up(rt: &Runtime, scope: &Scope) {
    let hosts: Vec<&Host> = scope
        .lab
        .hosts
        .iter()
        .filter(|h| scope.dcs.contains(&h.dc))
        .collect();
    let targets: Vec<(&Host, IpAddr)> = hosts
        .iter()
        .filter_map(|h| {
            let peer = scope
                .lab
                .hosts
                .iter()
                .find(|o| o.dc == h.dc && o.vni == h.vni && o.name != h.name)
                .map(|o| o.ip());
            let target = match &h.role {
                HostRole::Tenant { routed: true, .. } => h.gateway.or(peer),
                _ => peer,
            };
            target.map(|t| (*h, t))
        })
        .collect();
    parallel_map(&targets, |(h, t)| ping(rt, h, *t, 1, None));
}

pub(super) fn check_evpn(rt: &Runtime, scope: &Scope, opts: &TestOptions) -> CheckResult {
    let mut c = Check::new(2);
    warm_up(rt, scope);
    let mut type3_total = 0;
    let mut type2_total = 0;
    for dc in scope.dcs {
        let leaves = scope.leaves(dc);
        // Expected type-3: (leaf, vni, remote vtep); type-2: (leaf, mac, remote vtep).
        let mut want3: BTreeSet<(String, u32, String)> = BTreeSet::new();
        let mut want2: BTreeMap<(String, String, String), String> = BTreeMap::new();
        for l in &leaves {
            let mine: BTreeSet<u32> = l.segments.iter().map(|s| s.vni).collect();
            for o in leaves.iter().filter(|o| o.name != l.name) {
                let Some(vtep) = o.vtep else { continue };
                for s in o.segments.iter().filter(|s| mine.contains(&s.vni)) {
                    want3.insert((l.name.clone(), s.vni, vtep.to_string()));
                }
            }
            for h in scope
                .lab
                .hosts
                .iter()
                .filter(|h| h.dc == *dc && h.leaf != l.name && mine.contains(&h.vni))
            {
                if let Some(vtep) = scope.vtep_of(&h.leaf) {
                    want2.insert(
                        (l.name.clone(), h.mac.clone(), vtep.to_string()),
                        h.name.clone(),
                    );
                }
            }
        }
        type3_total += want3.len();
        type2_total += want2.len();
        let mut missing3 = want3.clone();
        let mut missing2: BTreeMap<_, _> = want2.clone();
        let mut errors = Vec::new();
        wait_until(opts.converge.min(Duration::from_secs(45)), || {
            errors.clear();
            let tables = parallel_map(&leaves, |l| {
                (
                    l.name.clone(),
                    rt.vtysh_json(&l.name, "show bgp l2vpn evpn route type multicast json"),
                    rt.vtysh_json(&l.name, "show bgp l2vpn evpn route type macip json"),
                )
            });
            for (leaf, t3, t2) in tables {
                match t3 {
                    Ok(v) => {
                        for r in parse_evpn(&v) {
                            if let Some(ip) = &r.ip {
                                for vni in &r.rt_values {
                                    missing3.remove(&(leaf.clone(), *vni, ip.clone()));
                                }
                            }
                        }
                    }
                    Err(e) => errors.push(e),
                }
                match t2 {
                    Ok(v) => {
                        for r in parse_evpn(&v) {
                            if let (Some(mac), Some(nh)) = (&r.mac, &r.nexthop) {
                                missing2.remove(&(leaf.clone(), mac.clone(), nh.clone()));
                            }
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
            missing3.is_empty() && missing2.is_empty() && errors.is_empty()
        });
        c.problems.extend(errors);
        for (leaf, vni, vtep) in &missing3 {
            let from = leaves
                .iter()
                .find(|l| l.vtep.map(|v| v.to_string()).as_deref() == Some(vtep.as_str()))
                .map(|l| l.name.as_str())
                .unwrap_or("?");
            c.problems.push(format!(
                "{leaf}: no type-3 route for VNI {vni} from {from} (VTEP {vtep})"
            ));
        }
        for ((leaf, mac, vtep), host) in &missing2 {
            c.problems.push(format!(
                "{leaf}: no type-2 route for host {host} ({mac}) via VTEP {vtep}"
            ));
        }
        if let Some(l) = leaves.first() {
            let out = rt.vtysh(&l.name, "show evpn vni").unwrap_or_else(|e| e);
            c.evidence(&l.name, "vtysh -c 'show evpn vni'", excerpt(&out, 16));
            let out = rt
                .vtysh(&l.name, "show bgp l2vpn evpn route type multicast")
                .unwrap_or_else(|e| e);
            c.evidence(
                &l.name,
                "vtysh -c 'show bgp l2vpn evpn route type multicast'",
                lines_matching(&out, &["[3]:", "RT:"], 12),
            );
            if let Some(h) = scope.lab.hosts.iter().find(|h| {
                h.dc == *dc && h.leaf != l.name && matches!(h.role, HostRole::Tenant { .. })
            }) {
                let out = rt
                    .vtysh(&l.name, "show bgp l2vpn evpn route type macip")
                    .unwrap_or_else(|e| e);
                let lines: Vec<&str> = out.lines().collect();
                let mut keep = Vec::new();
                for (i, line) in lines.iter().enumerate() {
                    if line.contains(&h.mac) {
                        keep.extend(lines[i..(i + 3).min(lines.len())].iter().copied());
                    }
                }
                c.evidence(
                    &l.name,
                    format!(
                        "vtysh -c 'show bgp l2vpn evpn route type macip'  (host {} {} on {})",
                        h.name, h.mac, h.leaf
                    ),
                    excerpt(&keep.join("\n"), 8),
                );
            }
        }
    }
    c.notes.push(
        "border leaves carry only the L3 VNIs (no hosts), so they are not held to the type-3 expectation".into(),
    );
    let summary = format!(
        "{}/{} expected type-3 routes (leaf, VNI, remote VTEP) and {}/{} expected type-2 routes (leaf, remote host MAC, VTEP) present",
        type3_total - c.problems.iter().filter(|p| p.contains("type-3")).count(),
        type3_total,
        type2_total - c.problems.iter().filter(|p| p.contains("type-2")).count(),
        type2_total
    );
    c.finish(summary)
}
