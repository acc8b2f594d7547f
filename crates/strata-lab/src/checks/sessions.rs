//! Check 1: every designed BGP session is Established, and no other exists.

use super::*;

pub(super) fn check_sessions(rt: &Runtime, scope: &Scope, opts: &TestOptions) -> CheckResult {
    let mut c = Check::new(1);
    let routers = scope.routers();
    let dead: Vec<String> = rt
        .dead_processes()
        .iter()
        .filter(|p| routers.iter().any(|r| r.name == p.node))
        .map(|p| format!("{} on {} (pid {}) is not running", p.daemon, p.node, p.pid))
        .collect();
    let mut last: Vec<(String, Result<Vec<SeenSession>, String>)> = Vec::new();
    let mut problems = Vec::new();
    let mut established = 0;
    let expected_total: usize = scope
        .lab
        .sessions
        .iter()
        .filter(|s| routers.iter().any(|r| r.name == s.router))
        .count();
    wait_until(opts.converge, || {
        last = parallel_map(&routers, |r| {
            (
                r.name.clone(),
                rt.vtysh_json(&r.name, "show bgp vrf all summary json")
                    .map(|v| parse_summary(&v)),
            )
        });
        problems.clear();
        established = 0;
        for (name, seen) in &last {
            let expected: Vec<&ExpectedSession> = scope
                .lab
                .sessions
                .iter()
                .filter(|s| &s.router == name)
                .collect();
            match seen {
                Ok(seen) => {
                    let (p, n) = judge_sessions(name, &expected, seen);
                    problems.extend(p);
                    established += n;
                }
                Err(e) => problems.push(e.clone()),
            }
        }
        problems.is_empty()
    });
    c.problems.extend(dead);
    c.problems.extend(problems);
    // Evidence: the human summary of a spine, a leaf and a border leaf.
    let mut shown = BTreeSet::new();
    for r in &routers {
        if shown.insert(r.role) {
            let out = rt.vtysh(&r.name, "show bgp summary").unwrap_or_else(|e| e);
            c.evidence(
                &r.name,
                "vtysh -c 'show bgp summary'",
                lines_matching(
                    &out,
                    &[
                        "Neighbor",
                        "Established",
                        "Idle",
                        "Active",
                        "Connect",
                        "(",
                        "Total",
                    ],
                    14,
                ),
            );
        }
    }
    let by_kind = |k: SessionKind| {
        scope
            .lab
            .sessions
            .iter()
            .filter(|s| s.kind == k && routers.iter().any(|r| r.name == s.router))
            .count()
    };
    let summary = format!(
        "{established}/{expected_total} declared session ends Established in ipv4-unicast and l2vpn-evpn \
         on {} switches ({} fabric, {} interconnect); {}",
        routers.len(),
        by_kind(SessionKind::Fabric),
        by_kind(SessionKind::Interconnect),
        if c.problems.iter().any(|p| p.contains("not in the design")) {
            "undeclared sessions exist"
        } else {
            "no undeclared session"
        }
    );
    c.finish(summary)
}
