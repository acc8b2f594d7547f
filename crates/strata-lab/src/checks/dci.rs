//! Check 7: two DCs joined through their border leaves.

use super::*;

pub(super) fn check_dci(rt: &Runtime, scope: &Scope, opts: &TestOptions) -> CheckResult {
    let mut c = Check::new(7);
    let Some(ic) = scope.lab.interconnect.clone() else {
        return c.done(
            Status::Skipped,
            "the lab was built without --dci (one DC)".into(),
        );
    };
    if scope.lab.dcs.len() != 2 {
        return c.done(Status::Skipped, "the lab has no second DC".into());
    }
    let a = scope.lab.dcs[0].clone();
    let b = scope.lab.dcs[1].clone();

    // (a) Interconnect sessions.
    let dci: Vec<&ExpectedSession> = scope
        .lab
        .sessions
        .iter()
        .filter(|s| s.kind == SessionKind::Interconnect)
        .collect();
    let mut up = 0;
    for s in &dci {
        match rt.vtysh_json(&s.router, "show bgp vrf all summary json") {
            Ok(v) => {
                let seen = parse_summary(&v);
                let (p, n) = judge_sessions(&s.router, &[*s], &seen);
                if n == 1 {
                    up += 1;
                }
                c.problems
                    .extend(p.into_iter().filter(|p| !p.contains("not in the design")));
            }
            Err(e) => c.problems.push(e),
        }
    }
    if let Some(s) = dci.first() {
        let out = rt
            .vtysh(&s.router, "show bgp summary")
            .unwrap_or_else(|e| e);
        c.evidence(
            &s.router,
            "vtysh -c 'show bgp summary'",
            lines_matching(&out, &["Neighbor", s.peer.as_str(), "Total"], 8),
        );
    }

    // (b) Routes: each DC's first leaf against the other DC's tenant subnets.
    let mut crossing = 0;
    for (here, there) in [(&a, &b), (&b, &a)] {
        let Some(leaf) = scope.leaves(&here.name).first().copied() else {
            continue;
        };
        let remote_vteps: BTreeSet<String> = scope
            .lab
            .routers
            .iter()
            .filter(|r| r.dc == there.name)
            .filter_map(|r| r.vtep.map(|v| v.to_string()))
            .collect();
        // (tenant, subnet, l3vni, routed)
        let wanted: Vec<(String, String, u32, bool)> = there
            .networks
            .iter()
            .filter_map(|n| {
                let t = scope.lab.tenant(n.tenant.as_deref()?)?;
                Some((
                    t.name.clone(),
                    n.subnet.trunc().to_string(),
                    t.l3_vni,
                    n.routed,
                ))
            })
            .collect();
        let mut problems = Vec::new();
        let mut last5 = Vec::new();
        wait_until(opts.converge.min(Duration::from_secs(45)), || {
            problems.clear();
            let t5 = rt
                .vtysh_json(&leaf.name, "show bgp l2vpn evpn route type prefix json")
                .map(|v| parse_evpn(&v));
            let t5 = match t5 {
                Ok(t) => t,
                Err(e) => {
                    problems.push(e);
                    return false;
                }
            };
            for (tenant, subnet, l3, routed) in &wanted {
                let present = t5.iter().any(|r| {
                    r.ip.as_deref() == Some(subnet.as_str())
                        && r.nexthop.as_ref().is_some_and(|n| remote_vteps.contains(n))
                        && r.rt_values.contains(l3)
                });
                if *routed && !present {
                    problems.push(format!(
                        "{}: no type-5 route for {}'s {subnet} (tenant {tenant}, L3 VNI {l3})",
                        leaf.name, there.name
                    ));
                }
                if !*routed && present {
                    problems.push(format!(
                        "{}: {}'s unrouted {subnet} (tenant {tenant}) arrived as a type-5 route",
                        leaf.name, there.name
                    ));
                }
            }
            last5 = t5;
            problems.is_empty()
        });
        crossing += last5
            .iter()
            .filter(|r| r.nexthop.as_ref().is_some_and(|n| remote_vteps.contains(n)))
            .map(|r| (&r.prefix, &r.rd))
            .collect::<BTreeSet<_>>()
            .len();
        c.problems.append(&mut problems);
        for (cmd, kind) in [
            ("show bgp l2vpn evpn route type macip json", "type-2"),
            ("show bgp l2vpn evpn route type multicast json", "type-3"),
        ] {
            if let Ok(v) = rt.vtysh_json(&leaf.name, cmd) {
                let leaked: Vec<String> = parse_evpn(&v)
                    .into_iter()
                    .filter(|r| {
                        r.nexthop.as_ref().is_some_and(|n| remote_vteps.contains(n))
                            || r.ip.as_ref().is_some_and(|n| remote_vteps.contains(n))
                    })
                    .map(|r| r.prefix)
                    .collect();
                if !leaked.is_empty() {
                    c.problems.push(format!(
                        "{}: {} {kind} route(s) from {} crossed the interconnect (e.g. {})",
                        leaf.name,
                        leaked.len(),
                        there.name,
                        leaked[0]
                    ));
                }
            }
        }
        // VRF tables: the other DC's routed subnets of the tenant, nothing of others.
        for v in &leaf.vrfs {
            let cmd = format!("show ip route vrf {}", v.vrf);
            let text = rt.vtysh(&leaf.name, &cmd).unwrap_or_else(|e| e);
            let theirs: Vec<&String> = wanted
                .iter()
                .filter(|(t, _, _, routed)| *t == v.tenant && *routed)
                .map(|(_, s, _, _)| s)
                .collect();
            if c.evidence.len() < 6 {
                c.evidence(
                    &leaf.name,
                    format!("vtysh -c '{cmd}'"),
                    lines_matching(
                        &text,
                        &theirs.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                        6,
                    ),
                );
            }
        }
    }

    // (c) and (d): data plane.
    let ra = scope.racks(&a.name);
    let rb = scope.racks(&b.name);
    let (Some(ra0), Some(rb0)) = (ra.first(), rb.first()) else {
        return c.finish("no racks".into());
    };
    let mut reach: Vec<(&Host, &Host, bool)> = Vec::new();
    for t in &scope.lab.tenants {
        if let Some(n) = t.networks.iter().find(|n| n.routed)
            && let (Some(src), Some(dst)) = (
                scope.tenant_host(&a.name, &t.name, &n.name, ra0),
                scope.tenant_host(&b.name, &t.name, &n.name, rb0),
            )
        {
            reach.push((src, dst, true));
        }
        for u in t.networks.iter().filter(|n| !n.routed) {
            if let (Some(src), Some(dst)) = (
                scope.tenant_host(&a.name, &t.name, &u.name, ra0),
                scope.tenant_host(&b.name, &t.name, &u.name, rb0),
            ) {
                reach.push((src, dst, false));
            }
        }
        for o in scope.lab.tenants.iter().filter(|o| o.name != t.name) {
            if let (Some(src), Some(dst)) = (
                first_host_of_tenant(scope, &a.name, &t.name, ra0),
                first_host_of_tenant(scope, &b.name, &o.name, rb0),
            ) {
                reach.push((src, dst, false));
            }
        }
    }
    let mtu = scope.lab.mtu.overlay;
    let results = parallel_map(&reach, |(src, dst, must)| {
        let mut p = ping(rt, src, dst.ip(), if *must { 3 } else { 1 }, None);
        if *must && !p.result.answered() {
            // Right after the type-5 route arrives the kernel may still lack what
            // zebra installs separately (the remote VTEP's router MAC on the L3 VNI's
            // SVI), so the first packets of a pair that must reach are retried within
            // the convergence window; only a reply counts, and a pair that must stay
            // unreachable is never retried.
            wait_until(opts.converge.min(Duration::from_secs(10)), || {
                p = ping(rt, src, dst.ip(), 3, None);
                p.result.answered()
            });
        }
        let df = must.then(|| {
            flush_route_cache(rt, src);
            ping(rt, src, dst.ip(), 2, Some(mtu - 28))
        });
        (p, df)
    });
    let mut reached = 0;
    let mut isolated = 0;
    for ((src, dst, must), (p, df)) in reach.iter().zip(&results) {
        if *must {
            c.evidence(&src.name, p.command.clone(), ping_excerpt(&p.output));
            if p.result.answered() {
                reached += 1;
            } else {
                c.problems.push(format!(
                    "{} cannot reach {} ({}) in {} (same tenant, routed)",
                    src.name,
                    dst.name,
                    dst.ip(),
                    b.name
                ));
            }
            if let Some(df) = df {
                c.evidence(&src.name, df.command.clone(), ping_excerpt(&df.output));
                if !df.result.answered() {
                    c.problems.push(df_problem(scope.lab, src, dst, &df.result));
                }
            }
        } else if p.result.answered() {
            c.problems.push(format!(
                "{} reaches {} ({}) in {}, which the design does not route",
                src.name,
                dst.name,
                dst.ip(),
                b.name
            ));
        } else {
            isolated += 1;
        }
    }
    let summary = format!(
        "interconnect {ic}: {up}/{} DCI session ends Established; {crossing} type-5 routes (RD, prefix) of \
         the other DC on the first leaves, none of its unrouted subnets and no type-2/3 across; \
         {reached}/{} same-tenant host pairs reach across the DCs (with DF at MTU {mtu}); \
         {isolated}/{} pairs the design does not route stay unreachable",
        dci.len(),
        reach.iter().filter(|r| r.2).count(),
        reach.iter().filter(|r| !r.2).count(),
    );
    c.finish(summary)
}
