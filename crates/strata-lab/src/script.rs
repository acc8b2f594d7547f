//! The lab as `ip -batch` scripts: pure, so the exact commands are unit-tested.
//!
//! A [`Script`] is a list of phases; the batches of one phase touch disjoint
//! namespaces and may run in any order (or at once), a phase starts when the previous
//! one has finished. The order matters in three places:
//! * namespaces exist before the veths that join them;
//! * a VRF's VXLAN devices are created in the switch namespace, where their UDP socket
//!   and `local` VTEP address live (the underlay), and only then moved into the VRF
//!   namespace, whose bridges are built in the next phase;
//! * a host's default route comes after its address.

use crate::topology::{Lab, NsRole, VXLAN_PORT};

/// One `ip [-n NS] -batch -` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `None`: the root namespace (where `ip netns add` and the veths are run).
    pub ns: Option<String>,
    pub lines: Vec<String>,
}

/// A sysctl written in a namespace (`/proc/sys/<key with / for .>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub ns: String,
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Run right after the namespaces exist, before any interface is created.
    pub early_sysctls: Vec<Sysctl>,
    pub phases: Vec<Vec<Batch>>,
    pub sysctls: Vec<Sysctl>,
}

fn sysctl(ns: &str, key: &str, value: &str) -> Sysctl {
    Sysctl {
        ns: ns.into(),
        key: key.into(),
        value: value.into(),
    }
}

/// Every command that builds `lab`'s namespaces, links and devices.
pub fn build(lab: &Lab) -> Script {
    let mut phases = Vec::new();

    // Phase 0: namespaces.
    phases.push(vec![Batch {
        ns: None,
        lines: lab
            .namespaces
            .iter()
            .map(|n| format!("netns add {}", n.name))
            .collect(),
    }]);

    // IPv6 is off everywhere: the design's underlay and tenant networks are IPv4, and
    // link-local addresses on anycast gateways would only add duplicate-address noise.
    let mut early_sysctls = Vec::new();
    for n in &lab.namespaces {
        for key in [
            "net.ipv6.conf.all.disable_ipv6",
            "net.ipv6.conf.default.disable_ipv6",
        ] {
            early_sysctls.push(sysctl(&n.name, key, "1"));
        }
    }

    // Phase 1: every veth pair, each end created directly in its namespace.
    phases.push(vec![Batch {
        ns: None,
        lines: lab
            .links
            .iter()
            .map(|l| {
                let end = |e: &crate::topology::VethEnd| {
                    let mut s = format!("name {}", e.ifname);
                    if let Some(m) = &e.mac {
                        s.push_str(&format!(" address {m}"));
                    }
                    s.push_str(&format!(" mtu {} netns {}", e.mtu, e.ns));
                    s
                };
                format!("link add {} type veth peer {}", end(&l.a), end(&l.b))
            })
            .collect(),
    }]);

    // Phase 2: switch namespaces.
    let mut switch_batches = Vec::new();
    let mut vrf_batches = Vec::new();
    for r in &lab.routers {
        let mut lines = vec!["link set lo up".to_string()];
        for l in &lab.links {
            for e in [&l.a, &l.b] {
                if e.ns == r.ns && e.bridge.is_none() {
                    lines.push(format!("link set {} up", e.ifname));
                }
            }
        }
        let vxlan = |name: &str, vni: u32| {
            format!(
                "link add {name} mtu {} type vxlan id {vni} local {} dstport {VXLAN_PORT} nolearning df set",
                lab.mtu.overlay,
                r.vtep.expect("segments only on VTEPs")
            )
        };
        let suppress = lab.dc(&r.dc).map(|d| d.arp_suppression).unwrap_or(true);
        let mut per_vrf: Vec<(String, Vec<String>)> = r
            .vrfs
            .iter()
            .map(|v| (v.ns.clone(), vec!["link set lo up".to_string()]))
            .collect();
        for v in &r.vrfs {
            lines.push(vxlan(&v.vxlan, v.l3_vni));
            lines.push(format!("link set {} netns {}", v.vxlan, v.ns));
            let vl = &mut per_vrf
                .iter_mut()
                .find(|(ns, _)| *ns == v.ns)
                .expect("vrf batch")
                .1;
            vl.push(format!(
                "link add {} address {} mtu {} type bridge",
                v.bridge,
                r.rmac.as_deref().expect("VTEPs have an RMAC"),
                lab.mtu.overlay
            ));
            vl.push(format!("link set {} master {}", v.vxlan, v.bridge));
            vl.push(format!(
                "link set {} type bridge_slave learning off",
                v.vxlan
            ));
            vl.push(format!("link set {} up", v.vxlan));
            vl.push(format!("link set {} up", v.bridge));
        }
        for s in &r.segments {
            lines.push(vxlan(&s.vxlan, s.vni));
            let target: &mut Vec<String> = if s.ns == r.ns {
                &mut lines
            } else {
                lines.push(format!("link set {} netns {}", s.vxlan, s.ns));
                &mut per_vrf
                    .iter_mut()
                    .find(|(ns, _)| *ns == s.ns)
                    .expect("segment in a VRF of this switch")
                    .1
            };
            let mac = s
                .gateway_mac
                .as_ref()
                .map(|m| format!(" address {m}"))
                .unwrap_or_default();
            target.push(format!(
                "link add {}{mac} mtu {} type bridge",
                s.bridge, lab.mtu.overlay
            ));
            target.push(format!("link set {} master {}", s.vxlan, s.bridge));
            target.push(format!(
                "link set {} type bridge_slave learning off neigh_suppress {}",
                s.vxlan,
                if suppress { "on" } else { "off" }
            ));
            if let Some(gw) = &s.gateway {
                target.push(format!("addr add {gw} dev {}", s.bridge));
            }
            target.push(format!("link set {} up", s.vxlan));
            target.push(format!("link set {} up", s.bridge));
        }
        // Host ports: into their segment's bridge.
        for l in &lab.links {
            for e in [&l.a, &l.b] {
                if let Some(br) = &e.bridge {
                    let target = if e.ns == r.ns {
                        &mut lines
                    } else if let Some((_, vl)) = per_vrf.iter_mut().find(|(ns, _)| *ns == e.ns) {
                        vl
                    } else {
                        continue;
                    };
                    target.push(format!("link set {} master {br}", e.ifname));
                    target.push(format!("link set {} up", e.ifname));
                }
            }
        }
        switch_batches.push(Batch {
            ns: Some(r.ns.clone()),
            lines,
        });
        for (ns, lines) in per_vrf {
            vrf_batches.push(Batch {
                ns: Some(ns),
                lines,
            });
        }
    }
    phases.push(switch_batches);
    // Phase 3: VRF namespaces (their VXLAN devices arrived in phase 2).
    phases.push(vrf_batches);

    // Phase 4: hosts.
    phases.push(
        lab.hosts
            .iter()
            .map(|h| {
                let mut lines = vec![
                    "link set lo up".to_string(),
                    format!("addr add {} dev {}", h.address, h.ifname),
                    format!("link set {} up", h.ifname),
                ];
                if let Some(gw) = h.gateway {
                    lines.push(format!("route add default via {gw}"));
                }
                Batch {
                    ns: Some(h.ns.clone()),
                    lines,
                }
            })
            .collect(),
    );

    // Routing in the tenant VRFs: `ip forwarding` in frr.conf makes zebra turn it on in
    // the switch namespace only; a VRF namespace is a namespace of its own.
    let sysctls = lab
        .namespaces
        .iter()
        .filter(|n| n.role == NsRole::Vrf)
        .map(|n| sysctl(&n.name, "net.ipv4.ip_forward", "1"))
        .collect();

    Script {
        early_sysctls,
        phases,
        sysctls,
    }
}
