//! Checks 3-5: one tenant network across racks (with DF at the tenant MTU),
//! isolation between tenants, and routing in the tenant VRF across racks.

use super::*;

pub(super) fn check_same_network(rt: &Runtime, scope: &Scope) -> CheckResult {
    let mut c = Check::new(3);
    let mut pairs: Vec<(&Host, &Host)> = Vec::new();
    for dc in scope.dcs {
        let racks = scope.racks(dc);
        let Some(first) = racks.first() else { continue };
        for t in &scope.lab.tenants {
            for n in &t.networks {
                let Some(src) = scope.tenant_host(dc, &t.name, &n.name, first) else {
                    continue;
                };
                for r in racks.iter().skip(1) {
                    if let Some(dst) = scope.tenant_host(dc, &t.name, &n.name, r) {
                        pairs.push((src, dst));
                    }
                }
            }
        }
    }
    if pairs.is_empty() {
        return c.done(
            Status::Skipped,
            "the lab has a single rack per DC: no pair of racks to test (build with --racks 2 or more)".into(),
        );
    }
    let mtu = scope.lab.mtu.overlay;
    let results = parallel_map(&pairs, |(src, dst)| {
        let plain = ping(rt, src, dst.ip(), 3, None);
        flush_route_cache(rt, src);
        let df = ping(rt, src, dst.ip(), 2, Some(mtu - 28));
        (plain, df)
    });
    let mut ok_plain = 0;
    let mut ok_df = 0;
    for ((src, dst), (plain, df)) in pairs.iter().zip(&results) {
        let label = match &src.role {
            HostRole::Tenant {
                tenant, network, ..
            } => format!("{tenant}/{network}"),
            _ => String::new(),
        };
        if plain.result.answered() {
            ok_plain += 1;
        } else {
            c.problems.push(format!(
                "{label}: {} cannot reach {} ({}) in another rack",
                src.name,
                dst.name,
                dst.ip()
            ));
        }
        if df.result.answered() {
            ok_df += 1;
        } else {
            c.problems.push(format!(
                "{label}: {}",
                df_problem(scope.lab, src, dst, &df.result)
            ));
        }
        if c.evidence.len() < 4 || !df.result.answered() {
            c.evidence(
                &src.name,
                plain.command.clone(),
                ping_excerpt(&plain.output),
            );
            c.evidence(&src.name, df.command.clone(), ping_excerpt(&df.output));
        }
    }
    let summary = format!(
        "{ok_plain}/{} tenant-network host pairs in different racks reach each other; {ok_df}/{} \
         with DF set at the tenant MTU {mtu} (payload {}, {} bytes on the underlay with VXLAN)",
        pairs.len(),
        pairs.len(),
        mtu - 28,
        mtu + scope.lab.mtu.vxlan_overhead
    );
    c.finish(summary)
}

pub(super) fn first_host_of_tenant<'a>(
    scope: &'a Scope,
    dc: &str,
    tenant: &str,
    rack: &str,
) -> Option<&'a Host> {
    scope.lab.hosts.iter().find(|h| {
        h.dc == dc
            && matches!(&h.role, HostRole::Tenant { tenant: t, rack: r, routed: true, .. } if t == tenant && r == rack)
    })
    .or_else(|| {
        scope.lab.hosts.iter().find(|h| {
            h.dc == dc && matches!(&h.role, HostRole::Tenant { tenant: t, rack: r, .. } if t == tenant && r == rack)
        })
    })
}

pub(super) fn check_isolation(rt: &Runtime, scope: &Scope) -> CheckResult {
    let mut c = Check::new(4);
    if scope.lab.tenants.len() < 2 {
        return c.done(
            Status::Skipped,
            "the design has fewer than two tenants: nothing to isolate".into(),
        );
    }
    let mut pairs: Vec<(&Host, &Host)> = Vec::new();
    for dc in scope.dcs {
        let racks = scope.racks(dc);
        let (Some(first), Some(last)) = (racks.first(), racks.last()) else {
            continue;
        };
        for a in &scope.lab.tenants {
            for b in scope.lab.tenants.iter().filter(|b| b.name != a.name) {
                let Some(src) = first_host_of_tenant(scope, dc, &a.name, first) else {
                    continue;
                };
                for rack in [first, last] {
                    if let Some(dst) = first_host_of_tenant(scope, dc, &b.name, rack) {
                        pairs.push((src, dst));
                    }
                }
            }
        }
    }
    pairs.dedup_by(|x, y| x.0.name == y.0.name && x.1.name == y.1.name);
    let results = parallel_map(&pairs, |(src, dst)| ping(rt, src, dst.ip(), 1, None));
    for ((src, dst), p) in pairs.iter().zip(&results) {
        if p.result.answered() {
            c.problems.push(format!(
                "{} (tenant {}) reaches {} (tenant {}) at {}",
                src.name,
                src.tenant().unwrap_or("?"),
                dst.name,
                dst.tenant().unwrap_or("?"),
                dst.ip()
            ));
        }
        if c.evidence.len() < 2 {
            c.evidence(&src.name, p.command.clone(), ping_excerpt(&p.output));
        }
    }
    // Control plane: no VRF of a leaf holds another tenant's subnet.
    let mut tables = 0;
    for dc in scope.dcs {
        for l in scope.leaves(dc) {
            for v in &l.vrfs {
                let foreign: BTreeSet<String> = scope
                    .lab
                    .dcs
                    .iter()
                    .flat_map(|d| d.networks.iter())
                    .filter(|n| n.tenant.as_deref().is_some_and(|t| t != v.tenant))
                    .map(|n| n.subnet.trunc().to_string())
                    .collect();
                let cmd = format!("show ip route vrf {} json", v.vrf);
                match rt.vtysh_json(&l.name, &cmd) {
                    Ok(j) => {
                        tables += 1;
                        let have = route_prefixes(&j);
                        for p in have.intersection(&foreign) {
                            c.problems.push(format!(
                                "{}: VRF {} has a route to {p}, a subnet of another tenant",
                                l.name, v.vrf
                            ));
                        }
                        if c.evidence.len() < 4 {
                            let text = rt
                                .vtysh(&l.name, &format!("show ip route vrf {}", v.vrf))
                                .unwrap_or_else(|e| e);
                            c.evidence(
                                &l.name,
                                format!("vtysh -c 'show ip route vrf {}'", v.vrf),
                                lines_matching(&text, &["VRF", ">"], 12),
                            );
                        }
                    }
                    Err(e) => c.problems.push(e),
                }
            }
        }
    }
    let blocked = results.iter().filter(|p| !p.result.answered()).count();
    let summary = format!(
        "{blocked}/{} pings between hosts of different tenants (same and other rack) got no answer; \
         {tables} tenant VRF tables hold no other tenant's subnet",
        pairs.len()
    );
    c.finish(summary)
}

pub(super) fn check_routing(rt: &Runtime, scope: &Scope, opts: &TestOptions) -> CheckResult {
    let mut c = Check::new(5);
    // (src, dst, must answer)
    let mut cases: Vec<(&Host, &Host, bool)> = Vec::new();
    let mut single: Vec<String> = Vec::new();
    for dc in scope.dcs {
        let racks = scope.racks(dc);
        let (Some(first), Some(last)) = (racks.first(), racks.last()) else {
            continue;
        };
        for t in &scope.lab.tenants {
            let routed: Vec<&str> = t
                .networks
                .iter()
                .filter(|n| n.routed)
                .map(|n| n.name.as_str())
                .collect();
            if routed.len() >= 2 {
                if let (Some(src), Some(dst)) = (
                    scope.tenant_host(dc, &t.name, routed[0], first),
                    scope.tenant_host(dc, &t.name, routed[1], last),
                ) {
                    cases.push((src, dst, true));
                }
            } else if routed.len() == 1 {
                single.push(t.name.clone());
            }
            for u in t.networks.iter().filter(|n| !n.routed) {
                if let (Some(src), Some(r)) = (
                    scope.tenant_host(dc, &t.name, &u.name, first),
                    routed.first(),
                ) && let Some(dst) = scope.tenant_host(dc, &t.name, r, last)
                {
                    cases.push((src, dst, false));
                }
            }
        }
    }
    single.sort();
    single.dedup();
    if !cases.iter().any(|c| c.2) {
        return c.done(
            Status::Skipped,
            "the design declares no two routed networks in one tenant: nothing to route between \
             within a DC"
                .into(),
        );
    }
    let mtu = scope.lab.mtu.overlay;
    let results = parallel_map(&cases, |(src, dst, must)| {
        let p = ping(rt, src, dst.ip(), 3, None);
        let df = if *must {
            flush_route_cache(rt, src);
            Some(ping(rt, src, dst.ip(), 2, Some(mtu - 28)))
        } else {
            None
        };
        (p, df)
    });
    let mut routed_ok = 0;
    let mut ttls = BTreeSet::new();
    for ((src, dst, must), (p, df)) in cases.iter().zip(&results) {
        let tenant = src.tenant().unwrap_or("?").to_string();
        c.evidence(&src.name, p.command.clone(), ping_excerpt(&p.output));
        if !*must {
            if p.result.answered() {
                c.problems.push(format!(
                    "{} is on an unrouted network of tenant {tenant} but reaches {} ({}) in another subnet",
                    src.name,
                    dst.name,
                    dst.ip()
                ));
            }
            continue;
        }
        if !p.result.answered() {
            c.problems.push(format!(
                "tenant {tenant}: {} cannot reach {} ({}) in another routed subnet and rack",
                src.name,
                dst.name,
                dst.ip()
            ));
            continue;
        }
        if let Some(t) = p.result.ttl {
            ttls.insert(t);
        }
        if let Some(df) = df {
            c.evidence(&src.name, df.command.clone(), ping_excerpt(&df.output));
            if !df.result.answered() {
                c.problems.push(format!(
                    "tenant {tenant}: {}",
                    df_problem(scope.lab, src, dst, &df.result)
                ));
            }
        }
        // The control plane behind it, on the source's leaf.
        let (Some(leaf), Some(dst_leaf)) =
            (scope.lab.router(&src.leaf), scope.lab.router(&dst.leaf))
        else {
            continue;
        };
        let Some(vrf) = leaf.vrfs.iter().find(|v| v.tenant == tenant) else {
            continue;
        };
        let Some(dst_vtep) = dst_leaf.vtep.map(|v| v.to_string()) else {
            continue;
        };
        if leaf.name == dst_leaf.name {
            routed_ok += 1;
            continue;
        }
        let cmd = format!("show ip route vrf {} {} json", vrf.vrf, dst.ip());
        let mut route_ok = false;
        wait_until(opts.converge.min(Duration::from_secs(10)), || {
            route_ok = rt
                .vtysh_json(&leaf.name, &cmd)
                .is_ok_and(|v| routes_via(&v, &dst_vtep, &vrf.bridge));
            route_ok
        });
        let text = rt
            .vtysh(
                &leaf.name,
                &format!("show ip route vrf {} {}", vrf.vrf, dst.ip()),
            )
            .unwrap_or_else(|e| e);
        c.evidence(
            &leaf.name,
            format!("vtysh -c 'show ip route vrf {} {}'", vrf.vrf, dst.ip()),
            excerpt(&text, 8),
        );
        if !route_ok {
            c.problems.push(format!(
                "{}: VRF {} does not route {} via {} (VTEP of {}) on the L3 VNI's SVI {}",
                leaf.name,
                vrf.vrf,
                dst.ip(),
                dst_vtep,
                dst_leaf.name,
                vrf.bridge
            ));
        }
        // The remote leaf's type-5 route for the destination subnet.
        let subnet = dst.address.trunc().to_string();
        let t5 = rt
            .vtysh_json(&leaf.name, "show bgp l2vpn evpn route type prefix json")
            .map(|v| parse_evpn(&v))
            .unwrap_or_default();
        let l3 = vrf.l3_vni;
        let has_t5 = t5.iter().any(|r| {
            r.ip.as_deref() == Some(subnet.as_str())
                && r.nexthop.as_deref() == Some(dst_vtep.as_str())
                && r.rt_values.contains(&l3)
        });
        let t5_text = rt
            .vtysh(&leaf.name, "show bgp l2vpn evpn route type prefix")
            .unwrap_or_else(|e| e);
        let lines: Vec<&str> = t5_text.lines().collect();
        let mut keep = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.contains(&format!("[{}]", dst.address.trunc().addr())) {
                keep.extend(lines[i..(i + 3).min(lines.len())].iter().copied());
            }
        }
        c.evidence(
            &leaf.name,
            "vtysh -c 'show bgp l2vpn evpn route type prefix'",
            excerpt(&keep.join("\n"), 9),
        );
        if !has_t5 {
            c.problems.push(format!(
                "{}: no type-5 route for {subnet} from {} (VTEP {dst_vtep}) with the L3 VNI {l3}",
                leaf.name, dst_leaf.name
            ));
        }
        if route_ok && has_t5 && df.as_ref().is_some_and(|d| d.result.answered()) {
            routed_ok += 1;
        }
    }
    let positive = cases.iter().filter(|c| c.2).count();
    let negative = cases.len() - positive;
    let mut summary = format!(
        "{routed_ok}/{positive} routed pairs (tenant subnet to another routed subnet, other rack) \
         answer, also with DF at MTU {mtu}, through a host route via the remote VTEP on the L3 VNI's \
         SVI and the remote leaf's type-5 route; reply TTL {} (routed by both leaves)",
        ttls.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join("/")
    );
    if negative > 0 {
        summary.push_str(&format!(
            "; {negative} host(s) of unrouted networks reach no other subnet"
        ));
    }
    if !single.is_empty() {
        summary.push_str(&format!(
            "; tenant(s) {} have one routed network, routed only between DCs (check 7)",
            single.join(", ")
        ));
    }
    c.finish(summary)
}
