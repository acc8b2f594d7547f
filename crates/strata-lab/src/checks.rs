//! `lab test`: the seven checks, each with the command output that proves it.
//!
//! The parsers and judges (`parse_*`, `judge_*`) are pure and unit-tested on canned
//! FRR and ping output; the `check_*` functions collect that output from the running
//! lab ([`Runtime`]) and hand it to them. A check is `pass` only on positive evidence;
//! what the lab cannot exercise is `skipped` (not asked for, or not in the design) or
//! `unsupported`, never `pass`.
//!
//! The checks:
//! 1. every BGP session of the built subset of the design is Established in both
//!    address families it activates, and no other session exists (`show bgp vrf all
//!    summary json` on every switch);
//! 2. every leaf holds an EVPN type-3 route from every other leaf's VTEP for every VNI
//!    both carry, and, after traffic, a type-2 route for every host on another leaf;
//! 3. per tenant network, hosts in different racks reach each other, including a ping
//!    with DF set at the tenant MTU (`ping -M do -s <mtu-28>`): the VXLAN devices set
//!    DF on the outer packet (`df set`), as a hardware VTEP never fragments, so this
//!    fails exactly when the underlay cannot carry the tenant MTU plus the overhead;
//! 4. hosts of different tenants cannot reach each other, and no tenant VRF holds a
//!    route to another tenant's subnet;
//! 5. a host reaches another routed subnet of its tenant in another rack through the
//!    VRF (symmetric IRB: a host route via the remote VTEP on the L3 VNI's SVI, and the
//!    remote leaf's type-5 route for the subnet), and a host of an unrouted network
//!    reaches nothing beyond its segment;
//! 6. killing the VIP's keepalived master (SIGKILL to its process group, and the
//!    member's link down, as a dead host) moves the VIP to the backup within 5 s, and
//!    a client in another rack is answered by the backup's MAC;
//! 7. with `--dci`: the interconnect sessions are up, each DC's leaves hold the other
//!    DC's routed tenant subnets as type-5 routes in the right VRF and none of its
//!    unrouted ones, no type-2/3 route crosses, hosts of a tenant reach each other
//!    across the DCs (with DF at the tenant MTU), and isolation still holds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::exec::{Runtime, excerpt, parallel_map, wait_until};
use crate::topology::{ExpectedSession, Host, HostRole, Lab, Role, Router, SessionKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not applicable: not asked for (`--dci`) or not in the design.
    Skipped,
    /// Cannot be exercised on this machine.
    Unsupported,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skipped => "SKIP",
            Status::Unsupported => "UNSUPPORTED",
        }
    }
}

/// A command and the part of its output that shows the point.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub node: String,
    pub command: String,
    pub output: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: u8,
    pub title: &'static str,
    pub status: Status,
    pub summary: String,
    /// What is wrong (empty when it passed).
    pub problems: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    pub lab: String,
    pub dcs: Vec<String>,
    /// Every check passed or was skipped as not applicable.
    pub ok: bool,
    pub checks: Vec<CheckResult>,
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// How to run the checks.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Only this DC's switches and hosts (default: every DC of the lab).
    pub dc: Option<String>,
    /// How long to wait for BGP and EVPN to converge.
    pub converge: Duration,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            dc: None,
            converge: Duration::from_secs(90),
        }
    }
}

const TITLES: [&str; 7] = [
    "BGP sessions match the design",
    "EVPN type-3 and type-2 routes",
    "same tenant network across racks, DF ping at the tenant MTU",
    "tenant isolation",
    "routing in the tenant VRF across racks (symmetric IRB / type-5)",
    "VIP failover",
    "data-centre interconnect",
];

struct Check {
    id: u8,
    start: Instant,
    problems: Vec<String>,
    evidence: Vec<Evidence>,
    notes: Vec<String>,
}

impl Check {
    fn new(id: u8) -> Check {
        Check {
            id,
            start: Instant::now(),
            problems: Vec::new(),
            evidence: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn evidence(&mut self, node: &str, command: impl Into<String>, output: impl Into<String>) {
        self.evidence.push(Evidence {
            node: node.into(),
            command: command.into(),
            output: output.into(),
        });
    }

    fn finish(self, summary: String) -> CheckResult {
        let status = if self.problems.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        };
        self.done(status, summary)
    }

    fn done(self, status: Status, summary: String) -> CheckResult {
        let mut summary = summary;
        for n in &self.notes {
            summary.push_str("; ");
            summary.push_str(n);
        }
        CheckResult {
            id: self.id,
            title: TITLES[usize::from(self.id) - 1],
            status,
            summary,
            problems: self.problems,
            evidence: self.evidence,
            seconds: self.start.elapsed().as_secs_f64(),
        }
    }
}

/// Run every check against the lab.
pub fn run(rt: &mut Runtime, opts: &TestOptions) -> TestReport {
    let start = Instant::now();
    let lab = rt.lab().clone();
    let dcs: Vec<String> = lab
        .dcs
        .iter()
        .map(|d| d.name.clone())
        .filter(|d| opts.dc.as_ref().is_none_or(|w| w == d))
        .collect();
    let scope = Scope {
        lab: &lab,
        dcs: &dcs,
    };
    let mut checks = vec![
        check_sessions(rt, &scope, opts),
        check_evpn(rt, &scope, opts),
        check_same_network(rt, &scope),
        check_isolation(rt, &scope),
        check_routing(rt, &scope, opts),
        check_vip(rt, &scope),
        check_dci(rt, &scope, opts),
    ];
    checks.sort_by_key(|c| c.id);
    let ok = checks
        .iter()
        .all(|c| matches!(c.status, Status::Pass | Status::Skipped));
    TestReport {
        lab: lab.name.clone(),
        dcs,
        ok,
        checks,
        notes: lab.notes.clone(),
        seconds: start.elapsed().as_secs_f64(),
    }
}

struct Scope<'a> {
    lab: &'a Lab,
    dcs: &'a [String],
}

impl Scope<'_> {
    fn routers(&self) -> Vec<&Router> {
        self.lab
            .routers
            .iter()
            .filter(|r| self.dcs.contains(&r.dc))
            .collect()
    }

    fn leaves(&self, dc: &str) -> Vec<&Router> {
        self.lab
            .routers
            .iter()
            .filter(|r| r.dc == dc && r.role == Role::Leaf)
            .collect()
    }

    fn tenant_host(&self, dc: &str, tenant: &str, network: &str, rack: &str) -> Option<&Host> {
        self.lab.hosts.iter().find(|h| {
            h.dc == dc
                && matches!(&h.role, HostRole::Tenant { tenant: t, network: n, rack: r, .. }
                    if t == tenant && n == network && r == rack)
        })
    }

    fn racks(&self, dc: &str) -> Vec<String> {
        self.lab.dc(dc).map(|d| d.racks.clone()).unwrap_or_default()
    }

    fn vtep_of(&self, router: &str) -> Option<IpAddr> {
        self.lab.router(router).and_then(|r| r.vtep)
    }
}

// ---------------------------------------------------------------------------------
// Parsing (pure)

/// One BGP session as `show bgp vrf all summary json` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSession {
    pub vrf: String,
    pub afi: String,
    pub peer: String,
    pub remote_as: Option<u64>,
    pub state: String,
}

/// Every session of every VRF and address family in `show bgp vrf all summary json`.
pub fn parse_summary(v: &Value) -> Vec<SeenSession> {
    let mut out = Vec::new();
    let Some(vrfs) = v.as_object() else {
        return out;
    };
    for (vrf, afis) in vrfs {
        let Some(afis) = afis.as_object() else {
            continue;
        };
        for (afi, body) in afis {
            let Some(peers) = body.get("peers").and_then(Value::as_object) else {
                continue;
            };
            for (peer, p) in peers {
                out.push(SeenSession {
                    vrf: vrf.clone(),
                    afi: afi.clone(),
                    peer: peer.clone(),
                    remote_as: p.get("remoteAs").and_then(Value::as_u64),
                    state: p
                        .get("state")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                });
            }
        }
    }
    out
}

/// The address families every design session activates (`FABRIC` and `DCI` groups).
pub const SESSION_AFIS: [&str; 2] = ["ipv4Unicast", "l2VpnEvpn"];

/// Compare one switch's sessions with the design's: (problems, established count).
pub fn judge_sessions(
    router: &str,
    expected: &[&ExpectedSession],
    seen: &[SeenSession],
) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut established = 0;
    for e in expected {
        let addr = e.peer_address.to_string();
        let mut ok = true;
        for afi in SESSION_AFIS {
            match seen
                .iter()
                .find(|s| s.vrf == "default" && s.afi == afi && s.peer == addr)
            {
                None => {
                    ok = false;
                    problems.push(format!(
                        "{router}: no {afi} session to {} ({addr}, AS {})",
                        e.peer, e.remote_asn
                    ));
                }
                Some(s) if s.state != "Established" => {
                    ok = false;
                    problems.push(format!(
                        "{router}: {afi} session to {} ({addr}) is {}",
                        e.peer, s.state
                    ));
                }
                Some(s) if s.remote_as != Some(u64::from(e.remote_asn)) => {
                    ok = false;
                    problems.push(format!(
                        "{router}: {afi} session to {} ({addr}) has remote AS {:?}, the design says {}",
                        e.peer, s.remote_as, e.remote_asn
                    ));
                }
                Some(_) => {}
            }
        }
        if ok {
            established += 1;
        }
    }
    let declared: BTreeSet<String> = expected
        .iter()
        .map(|e| e.peer_address.to_string())
        .collect();
    let mut undeclared: BTreeSet<(String, String)> = BTreeSet::new();
    for s in seen {
        if s.vrf != "default" || !declared.contains(&s.peer) {
            undeclared.insert((s.vrf.clone(), s.peer.clone()));
        }
    }
    for (vrf, peer) in undeclared {
        let states: Vec<String> = seen
            .iter()
            .filter(|s| s.vrf == vrf && s.peer == peer)
            .map(|s| format!("{} {}", s.afi, s.state))
            .collect();
        problems.push(format!(
            "{router}: session to {peer} in VRF {vrf} is not in the design ({})",
            states.join(", ")
        ));
    }
    (problems, established)
}

/// One EVPN route from `show bgp l2vpn evpn route [type X] json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvpnRoute {
    pub route_type: u8,
    pub rd: String,
    pub prefix: String,
    /// Type 2: the MAC; type 3: the originating router; type 5: the IP prefix.
    pub mac: Option<String>,
    pub ip: Option<String>,
    pub nexthop: Option<String>,
    /// The value part of every `RT:x:y` (the VNI, for FRR's auto-derived targets).
    pub rt_values: Vec<u32>,
    pub best: bool,
}

fn bracket_fields(prefix: &str) -> Vec<String> {
    prefix
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split("]:[")
        .map(str::to_string)
        .collect()
}

/// Every path of every route in an EVPN table dump.
pub fn parse_evpn(v: &Value) -> Vec<EvpnRoute> {
    let mut out = Vec::new();
    let Some(rds) = v.as_object() else {
        return out;
    };
    for (rd, body) in rds {
        let Some(routes) = body.as_object() else {
            continue;
        };
        for (prefix, route) in routes {
            if !prefix.starts_with('[') {
                continue;
            }
            let f = bracket_fields(prefix);
            let Some(route_type) = f.first().and_then(|t| t.parse::<u8>().ok()) else {
                continue;
            };
            let (mac, ip) = match route_type {
                // [2]:[eth tag]:[48]:[mac](:[len]:[ip])
                2 => (f.get(3).cloned(), f.get(5).cloned()),
                // [3]:[eth tag]:[len]:[orig ip]
                3 => (None, f.get(3).cloned()),
                // [5]:[eth tag]:[len]:[ip]
                5 => (
                    None,
                    f.get(3)
                        .zip(f.get(2))
                        .map(|(ip, len)| format!("{ip}/{len}")),
                ),
                _ => (None, None),
            };
            let paths: Vec<&Value> = route
                .get("paths")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .flat_map(|p| match p.as_array() {
                            Some(inner) => inner.iter().collect::<Vec<_>>(),
                            None => vec![p],
                        })
                        .collect()
                })
                .unwrap_or_default();
            for p in paths {
                let nexthop = p
                    .get("nexthops")
                    .and_then(Value::as_array)
                    .and_then(|n| n.first())
                    .and_then(|n| n.get("ip"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let ec = p
                    .get("extendedCommunity")
                    .and_then(|e| e.get("string"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let rt_values = ec
                    .split_whitespace()
                    .filter_map(|c| c.strip_prefix("RT:"))
                    .filter_map(|c| c.rsplit(':').next())
                    .filter_map(|n| n.parse::<u32>().ok())
                    .collect();
                out.push(EvpnRoute {
                    route_type,
                    rd: rd.clone(),
                    prefix: prefix.clone(),
                    mac: mac.clone(),
                    ip: ip.clone(),
                    nexthop,
                    rt_values,
                    best: p.get("bestpath").and_then(Value::as_bool).unwrap_or(false),
                });
            }
        }
    }
    out
}

/// What a ping printed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PingResult {
    pub transmitted: u32,
    pub received: u32,
    /// TTL of the first reply.
    pub ttl: Option<u32>,
    /// The path MTU an ICMP "fragmentation needed" or a local "message too long" named.
    pub mtu: Option<u32>,
}

impl PingResult {
    pub fn answered(&self) -> bool {
        self.received > 0
    }
}

pub fn parse_ping(text: &str) -> PingResult {
    let mut r = PingResult::default();
    for line in text.lines() {
        if let Some(i) = line.find(" packets transmitted, ") {
            r.transmitted = line[..i]
                .split_whitespace()
                .last()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            r.received = line[i + " packets transmitted, ".len()..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        if r.ttl.is_none()
            && let Some(i) = line.find(" ttl=")
        {
            r.ttl = line[i + 5..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok());
        }
        if r.mtu.is_none() {
            for marker in ["(mtu = ", "mtu="] {
                if let Some(i) = line.find(marker) {
                    let digits: String = line[i + marker.len()..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let Ok(n) = digits.parse() {
                        r.mtu = Some(n);
                        break;
                    }
                }
            }
        }
    }
    r
}

/// A ping's output without blank lines and the statistics banner.
fn ping_excerpt(text: &str) -> String {
    let keep: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("---"))
        .collect();
    excerpt(&keep.join("\n"), 8)
}

// ---------------------------------------------------------------------------------
// I/O helpers

struct Ping {
    command: String,
    output: String,
    result: PingResult,
}

fn ping(rt: &Runtime, src: &Host, dst: IpAddr, count: u32, df_payload: Option<u32>) -> Ping {
    let count_s = count.to_string();
    let dst_s = dst.to_string();
    let mut args: Vec<String> = vec![
        "ping".into(),
        "-n".into(),
        "-c".into(),
        count_s,
        "-i".into(),
        "0.2".into(),
        "-W".into(),
        "1".into(),
    ];
    if let Some(size) = df_payload {
        args.extend(["-M".into(), "do".into(), "-s".into(), size.to_string()]);
    }
    args.push(dst_s);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (command, _ok, output) = rt.in_ns(&src.ns, &argv);
    let result = parse_ping(&output);
    Ping {
        command,
        output,
        result,
    }
}

/// Forget cached path MTUs in a host (a DF ping must probe the path as it is now).
fn flush_route_cache(rt: &Runtime, host: &Host) {
    let _ = rt.ip(&host.ns, &["route", "flush", "cache"]);
}

fn lines_matching(text: &str, needles: &[&str], max: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .collect();
    excerpt(&lines.join("\n"), max)
}

// ---------------------------------------------------------------------------------
// 1. BGP sessions

fn check_sessions(rt: &Runtime, scope: &Scope, opts: &TestOptions) -> CheckResult {
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

// ---------------------------------------------------------------------------------
// 2. EVPN routes

/// Make every host talk, so that its leaf learns its MAC (and IP): routed hosts ping
/// their gateway, others a peer on their segment.
fn warm_up(rt: &Runtime, scope: &Scope) {
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

fn check_evpn(rt: &Runtime, scope: &Scope, opts: &TestOptions) -> CheckResult {
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

// ---------------------------------------------------------------------------------
// 3. Same tenant network across racks, DF at the tenant MTU

fn df_problem(lab: &Lab, src: &Host, dst: &Host, p: &PingResult) -> String {
    let mtu = lab.mtu.overlay;
    let need = mtu + lab.mtu.vxlan_overhead;
    let underlay_min = lab
        .links
        .iter()
        .filter(|l| l.kind != crate::topology::LinkKind::Host)
        .map(|l| l.a.mtu.min(l.b.mtu))
        .min()
        .unwrap_or(lab.mtu.underlay);
    let mut s = format!(
        "DF ping of {mtu}-byte packets (payload {}, the tenant MTU) from {} to {} ({}) got no reply",
        mtu - 28,
        src.name,
        dst.name,
        dst.ip()
    );
    if let Some(pm) = p.mtu {
        s.push_str(&format!(": the path reports an MTU of {pm}"));
    }
    if underlay_min < need {
        s.push_str(&format!(
            ": the underlay links have MTU {underlay_min}, which cannot carry the tenant MTU {mtu} \
             plus {} bytes of VXLAN encapsulation ({need} needed)",
            lab.mtu.vxlan_overhead
        ));
    }
    s
}

fn check_same_network(rt: &Runtime, scope: &Scope) -> CheckResult {
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

// ---------------------------------------------------------------------------------
// 4. Tenant isolation

/// Prefixes in `show ip route vrf X json`.
pub fn route_prefixes(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn first_host_of_tenant<'a>(
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

fn check_isolation(rt: &Runtime, scope: &Scope) -> CheckResult {
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

// ---------------------------------------------------------------------------------
// 5. Routing in the tenant VRF across racks

/// Does `show ip route vrf V <ip> json` route via `vtep` on `svi` (a symmetric IRB
/// host route)?
pub fn routes_via(v: &Value, vtep: &str, svi: &str) -> bool {
    v.as_object().is_some_and(|m| {
        m.values().filter_map(Value::as_array).flatten().any(|r| {
            r.get("nexthops")
                .and_then(Value::as_array)
                .is_some_and(|nhs| {
                    nhs.iter().any(|nh| {
                        nh.get("ip").and_then(Value::as_str) == Some(vtep)
                            && nh.get("interfaceName").and_then(Value::as_str) == Some(svi)
                    })
                })
        })
    })
}

fn check_routing(rt: &Runtime, scope: &Scope, opts: &TestOptions) -> CheckResult {
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

// ---------------------------------------------------------------------------------
// 6. VIP failover

fn holds(rt: &Runtime, h: &Host, vip: IpAddr) -> bool {
    let (_, ok, out) = rt.ip(&h.ns, &["-4", "-o", "addr", "show", "dev", &h.ifname]);
    ok && out.contains(&format!(" {vip}/"))
}

fn check_vip(rt: &mut Runtime, scope: &Scope) -> CheckResult {
    let mut c = Check::new(6);
    let vips: Vec<_> = scope
        .lab
        .vips
        .iter()
        .filter(|v| scope.dcs.contains(&v.dc))
        .cloned()
        .collect();
    if vips.is_empty() {
        return c.done(
            Status::Skipped,
            "the design declares no VIP with two members in the lab's DCs".into(),
        );
    }
    let mut moved = Vec::new();
    for vip in &vips {
        let members: Vec<Host> = vip
            .members
            .iter()
            .filter_map(|m| scope.lab.host(m).cloned())
            .collect();
        let Some(client) = scope.lab.host(&vip.client).cloned() else {
            c.problems.push(format!("VIP {}: no client host", vip.name));
            continue;
        };
        let mut master = None;
        wait_until(Duration::from_secs(10), || {
            let holding: Vec<&Host> = members
                .iter()
                .filter(|m| holds(rt, m, vip.address))
                .collect();
            if holding.len() == 1 {
                master = Some(holding[0].clone());
            }
            master.is_some()
        });
        let Some(master) = master else {
            c.problems.push(format!(
                "VIP {} ({}) is held by no member, or by more than one",
                vip.name, vip.address
            ));
            continue;
        };
        let Some(backup) = members.iter().find(|m| m.name != master.name).cloned() else {
            continue;
        };
        let before = ping(rt, &client, vip.address, 1, None);
        c.evidence(
            &client.name,
            before.command.clone(),
            ping_excerpt(&before.output),
        );
        let Some(pid) = rt.keepalived_pid(&master.name) else {
            c.problems.push(format!(
                "VIP {}: keepalived of the master {} is not running",
                vip.name, master.name
            ));
            continue;
        };
        // The master dies: keepalived gets SIGKILL (no goodbye advert), and the host's
        // link goes down (a dead host answers for nothing, not even its stale VIP).
        rt.kill_group(pid, "KILL");
        let _ = rt.ip(&master.ns, &["link", "set", &master.ifname, "down"]);
        let t0 = Instant::now();
        let mut took = None;
        wait_until(Duration::from_secs(10), || {
            if holds(rt, &backup, vip.address) {
                took = Some(t0.elapsed());
                true
            } else {
                false
            }
        });
        c.evidence(
            &master.name,
            format!(
                "kill -KILL -- -{pid}; ip -n {} link set {} down",
                master.ns, master.ifname
            ),
            format!("keepalived of {} (master) killed, link down", master.name),
        );
        let (cmd, _, out) = rt.ip(
            &backup.ns,
            &["-4", "-br", "addr", "show", "dev", &backup.ifname],
        );
        c.evidence(&backup.name, cmd, out);
        match took {
            Some(t) if t <= Duration::from_secs(5) => {
                moved.push(format!("{:.1} s", t.as_secs_f64()));
            }
            Some(t) => c.problems.push(format!(
                "VIP {} moved to {} only after {:.1} s (more than 5 s)",
                vip.name,
                backup.name,
                t.as_secs_f64()
            )),
            None => c.problems.push(format!(
                "VIP {} did not move to {} within 10 s of killing {}",
                vip.name, backup.name, master.name
            )),
        }
        // Does it answer there?
        let mut answer = ping(rt, &client, vip.address, 1, None);
        let mut flushed = false;
        let vip_s = vip.address.to_string();
        if !answer.result.answered() {
            // With ARP suppression the VTEPs do not flood gratuitous ARPs (the kernel
            // bridge keeps them off neigh_suppress ports), so the client still has the
            // dead master's MAC; make it resolve again.
            let _ = rt.ip(&client.ns, &["neigh", "del", &vip_s, "dev", &client.ifname]);
            flushed = true;
            answer = ping(rt, &client, vip.address, 2, None);
        }
        c.evidence(
            &client.name,
            answer.command.clone(),
            ping_excerpt(&answer.output),
        );
        let (ncmd, _, neigh) = rt.ip(&client.ns, &["neigh", "show", &vip_s]);
        c.evidence(&client.name, ncmd, neigh.clone());
        let by_backup = neigh.contains(&backup.mac);
        if !answer.result.answered() {
            c.problems.push(format!(
                "VIP {} ({}) does not answer the client {} after the failover",
                vip.name, vip.address, client.name
            ));
        } else if !by_backup {
            c.problems.push(format!(
                "VIP {} answers, but not from {} ({}): {}",
                vip.name, backup.name, backup.mac, neigh
            ));
        }
        if flushed {
            c.notes.push(format!(
                "the client {} kept the old master's MAC for the VIP (gratuitous ARPs are not \
                 flooded to ARP-suppressing VXLAN ports) and had to re-resolve it",
                client.name
            ));
        }
        // Bring the dead member back as a backup, for the next `lab test`.
        let _ = rt.ip(
            &master.ns,
            &[
                "addr",
                "del",
                &format!("{}/{}", vip.address, vip.prefix_len),
                "dev",
                &master.ifname,
            ],
        );
        let _ = rt.ip(&master.ns, &["link", "set", &master.ifname, "up"]);
        if let Err(e) = rt.restart_keepalived(&master.name) {
            c.problems
                .push(format!("restarting keepalived on {}: {e}", master.name));
        }
    }
    let summary = format!(
        "{} of {} VIP(s) moved to the backup after SIGKILL of the master's keepalived and its \
         link going down ({}), and the backup's MAC answers the client",
        moved.len(),
        vips.len(),
        if moved.is_empty() {
            "-".to_string()
        } else {
            moved.join(", ")
        }
    );
    c.finish(summary)
}

// ---------------------------------------------------------------------------------
// 7. Interconnect

fn check_dci(rt: &Runtime, scope: &Scope, opts: &TestOptions) -> CheckResult {
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
        let p = ping(rt, src, dst.ip(), if *must { 3 } else { 1 }, None);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ping_parse() {
        let ok = "PING 100.64.2.10 (100.64.2.10) 56(84) bytes of data.\n\
                  64 bytes from 100.64.2.10: icmp_seq=1 ttl=62 time=0.266 ms\n\n\
                  --- 100.64.2.10 ping statistics ---\n\
                  3 packets transmitted, 3 received, 0% packet loss, time 646ms\n";
        let p = parse_ping(ok);
        assert_eq!(
            (p.transmitted, p.received, p.ttl, p.mtu),
            (3, 3, Some(62), None)
        );
        let frag = "PING 100.64.2.10 (100.64.2.10) 8972(9000) bytes of data.\n\
                    From 100.64.2.10 icmp_seq=1 Frag needed and DF set (mtu = 8950)\n\n\
                    2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1026ms\n";
        let p = parse_ping(frag);
        assert_eq!((p.transmitted, p.received, p.mtu), (2, 0, Some(8950)));
        assert!(!p.answered());
        let local = "ping: local error: message too long, mtu=8950\n\
                     2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1015ms\n";
        assert_eq!(parse_ping(local).mtu, Some(8950));
    }

    #[test]
    fn summary_parse_and_judge() {
        let v = json!({
            "default": {
                "ipv4Unicast": {"peers": {
                    "10.253.0.4": {"remoteAs": 4200000000u64, "state": "Established"},
                    "10.253.0.99": {"remoteAs": 65000, "state": "Active"}
                }},
                "l2VpnEvpn": {"peers": {
                    "10.253.0.4": {"remoteAs": 4200000000u64, "state": "Established"}
                }}
            },
            "prod": {}
        });
        let seen = parse_summary(&v);
        assert_eq!(seen.len(), 3);
        let e = ExpectedSession {
            router: "leaf1".into(),
            peer: "spine01".into(),
            peer_address: "10.253.0.4".parse().unwrap(),
            remote_asn: 4200000000,
            kind: SessionKind::Fabric,
        };
        let (problems, n) = judge_sessions("leaf1", &[&e], &seen);
        assert_eq!(n, 1);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("10.253.0.99") && problems[0].contains("not in the design"));

        let e2 = ExpectedSession {
            peer_address: "10.253.0.16".parse().unwrap(),
            ..e.clone()
        };
        let (problems, n) = judge_sessions("leaf1", &[&e, &e2], &seen);
        assert_eq!(n, 1);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("no ipv4Unicast session to spine01 (10.253.0.16"))
        );
    }

    #[test]
    fn evpn_parse() {
        let v = json!({
            "10.255.0.5:3": {
                "rd": "10.255.0.5:3",
                "[3]:[0]:[32]:[10.254.0.5]": {"prefix": "[3]:[0]:[32]:[10.254.0.5]", "paths": [[{
                    "bestpath": true, "ip": "10.254.0.5",
                    "extendedCommunity": {"string": "RT:60908:10010 ET:8"},
                    "nexthops": [{"ip": "10.254.0.5"}]
                }]]},
                "[2]:[0]:[48]:[86:67:db:cc:0b:cc]:[32]:[100.64.2.10]": {"paths": [[{
                    "extendedCommunity": {"string": "RT:60908:10009 RT:60908:50001 ET:8 Rmac:da:2b:f9:de:fc:02"},
                    "nexthops": [{"ip": "10.254.0.5"}]
                }]]},
                "[5]:[0]:[24]:[100.64.2.0]": {"paths": [[{
                    "extendedCommunity": {"string": "RT:60908:50001 ET:8"},
                    "nexthops": [{"ip": "10.254.0.5"}]
                }]]}
            },
            "numPrefix": 3
        });
        let r = parse_evpn(&v);
        assert_eq!(r.len(), 3);
        let t3 = r.iter().find(|r| r.route_type == 3).unwrap();
        assert_eq!(t3.ip.as_deref(), Some("10.254.0.5"));
        assert_eq!(t3.rt_values, vec![10010]);
        assert!(t3.best);
        let t2 = r.iter().find(|r| r.route_type == 2).unwrap();
        assert_eq!(t2.mac.as_deref(), Some("86:67:db:cc:0b:cc"));
        assert_eq!(t2.ip.as_deref(), Some("100.64.2.10"));
        assert_eq!(t2.rt_values, vec![10009, 50001]);
        let t5 = r.iter().find(|r| r.route_type == 5).unwrap();
        assert_eq!(t5.ip.as_deref(), Some("100.64.2.0/24"));
        assert_eq!(t5.nexthop.as_deref(), Some("10.254.0.5"));
    }

    #[test]
    fn route_via_svi() {
        let v = json!({"100.64.2.10/32": [{
            "prefix": "100.64.2.10/32", "protocol": "bgp",
            "nexthops": [{"ip": "10.254.0.5", "interfaceName": "br50001", "onLink": true}]
        }]});
        assert!(routes_via(&v, "10.254.0.5", "br50001"));
        assert!(!routes_via(&v, "10.254.0.6", "br50001"));
        assert!(!routes_via(&v, "10.254.0.5", "br10009"));
    }
}
