//! `lab test`: the seven checks, each with the command output that proves it.
//!
//! The parsers and judges (`parse_*`, `judge_*`, in `judge`) are pure and unit-tested
//! on canned FRR and ping output (`tests`); the collectors, one module per check
//! (`sessions`, `evpn`, `tenant`, `vip`, `dci`, with `probe` for pings), gather that
//! output from the running lab ([`Runtime`]) and hand it to them. A check is `pass` only on positive evidence;
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

mod dci;
mod evpn;
mod judge;
mod probe;
mod sessions;
mod tenant;
mod vip;

#[cfg(test)]
mod tests;

use dci::*;
use evpn::*;
pub use judge::*;
use probe::*;
use sessions::*;
use tenant::*;
use vip::*;

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
