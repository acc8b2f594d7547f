//! Interconnects: the border leaves of two DCs wired together, with a routed link
//! and a BGP session (one entry per end) per pair of border leaves.

use std::net::IpAddr;

use ipnet::IpNet;
use strata_spec::Spec;

use super::global::{ic_link_count, p2p_len};
use super::resolve::Sites;
use super::{natural, nth};
use crate::alloc::{Allocation, Space};
use crate::model::*;

/// Wire every interconnect into `dcs` (interfaces and sessions) and return the
/// interconnects; then sort every switch's interfaces and every DC's sessions.
pub(crate) fn join_interconnects(
    spec: &Spec,
    inputs: &Sites<'_>,
    ic_alloc: &Allocation,
    ic_net: IpNet,
    underlay_mtu: u32,
    dcs: &mut [Dc],
) -> Vec<Interconnect> {
    let mut interconnects = Vec::new();
    for ic in &spec.interconnects {
        let n = ic_link_count(inputs, ic);
        let mut links = Vec::new();
        for i in 1..=n {
            let Some(slot) = ic_alloc.get(&format!("{}/{}", ic.name, i)) else {
                continue;
            };
            let subnet = Space::Blocks {
                net: ic_net,
                prefix_len: p2p_len(&ic_net),
            }
            .block(slot);
            let a_addr = subnet.network();
            let b_addr = nth(&subnet, 1);
            let (Some(ai), Some(bi)) = (
                dcs.iter().position(|d| d.name == ic.a.site.as_str()),
                dcs.iter().position(|d| d.name == ic.b.site.as_str()),
            ) else {
                continue;
            };
            let border_id = format!("border{i}");
            let (Some(a_sw), Some(b_sw)) = (
                dcs[ai]
                    .switches
                    .iter()
                    .find(|s| s.id == border_id)
                    .map(|s| (s.name.clone(), s.asn)),
                dcs[bi]
                    .switches
                    .iter()
                    .find(|s| s.id == border_id)
                    .map(|s| (s.name.clone(), s.asn)),
            ) else {
                continue;
            };
            let a_if = format!("dci-{}", ic.b.site);
            let b_if = format!("dci-{}", ic.a.site);
            let plen = subnet.prefix_len();
            add_iface(
                &mut dcs[ai],
                &a_sw.0,
                &a_if,
                a_addr,
                plen,
                &b_sw.0,
                &b_if,
                underlay_mtu,
            );
            add_iface(
                &mut dcs[bi],
                &b_sw.0,
                &b_if,
                b_addr,
                plen,
                &a_sw.0,
                &a_if,
                underlay_mtu,
            );
            dcs[ai].bgp.push(BgpSession {
                kind: SessionKind::Interconnect,
                local: a_sw.0.clone(),
                local_asn: a_sw.1,
                local_address: a_addr,
                peer: b_sw.0.clone(),
                peer_dc: ic.b.site.to_string(),
                peer_address: b_addr,
                remote_asn: ic.a.remote_asn.as_ref().map(|v| **v).unwrap_or(b_sw.1),
                remote_asn_span: ic
                    .a
                    .remote_asn
                    .as_ref()
                    .map(|v| v.span)
                    .or(Some(ic.name.span)),
            });
            dcs[bi].bgp.push(BgpSession {
                kind: SessionKind::Interconnect,
                local: b_sw.0.clone(),
                local_asn: b_sw.1,
                local_address: b_addr,
                peer: a_sw.0.clone(),
                peer_dc: ic.a.site.to_string(),
                peer_address: a_addr,
                remote_asn: ic.b.remote_asn.as_ref().map(|v| **v).unwrap_or(a_sw.1),
                remote_asn_span: ic
                    .b
                    .remote_asn
                    .as_ref()
                    .map(|v| v.span)
                    .or(Some(ic.name.span)),
            });
            links.push(InterconnectLink {
                subnet,
                a: LinkEnd {
                    device: a_sw.0,
                    interface: a_if,
                    address: a_addr,
                },
                a_dc: ic.a.site.to_string(),
                b: LinkEnd {
                    device: b_sw.0,
                    interface: b_if,
                    address: b_addr,
                },
                b_dc: ic.b.site.to_string(),
            });
        }
        interconnects.push(Interconnect {
            name: ic.name.to_string(),
            links,
        });
    }
    interconnects.sort_by(|a, b| a.name.cmp(&b.name));
    for dc in dcs.iter_mut() {
        for sw in &mut dc.switches {
            sw.interfaces.sort_by(|a, b| natural(&a.name, &b.name));
        }
        dc.bgp
            .sort_by(|a, b| (&a.local, a.peer_address).cmp(&(&b.local, b.peer_address)));
    }
    interconnects
}

#[allow(clippy::too_many_arguments)]
fn add_iface(
    dc: &mut Dc,
    switch: &str,
    name: &str,
    addr: IpAddr,
    plen: u8,
    peer: &str,
    peer_if: &str,
    mtu: u32,
) {
    if let Some(sw) = dc.switches.iter_mut().find(|s| s.name == switch) {
        sw.interfaces.push(SwitchInterface {
            name: name.to_string(),
            address: IpNet::new(addr, plen).unwrap_or_else(|_| IpNet::from(addr)),
            peer: peer.to_string(),
            peer_interface: peer_if.to_string(),
            mtu,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::compile::compile;
    use crate::compile::testing::{SMALL, spec};
    use crate::lock::Lock;

    #[test]
    fn border_leaves_of_two_dcs_peer_over_a_routed_link() {
        let two = SMALL.replace(
            "sites:\n",
            "sites:\n  - name: ams1\n    region: r\n    racks: [{ name: r01 }]\n",
        ) + "interconnects:\n  - { name: fra1-ams1, a: { site: fra1 }, b: { site: ams1 } }\n";
        let c = compile(&spec(&two), &Lock::new());
        assert!(c.diagnostics.is_empty(), "{:#?}", c.diagnostics);
        let f = c.fleet.expect("fleet");
        let link = &f.interconnects[0].links[0];
        assert_eq!(
            (link.a.interface.as_str(), link.b.interface.as_str()),
            ("dci-ams1", "dci-fra1")
        );
        assert_eq!(link.subnet.to_string(), "172.31.255.0/31");
        let fra1 = f.dc("fra1").expect("fra1");
        let border = fra1.switch("fra1-border1").expect("border");
        assert!(
            border
                .interfaces
                .iter()
                .any(|i| i.name == "dci-ams1" && i.peer == "ams1-border1")
        );
        let session = fra1
            .bgp
            .iter()
            .find(|s| s.peer_dc == "ams1")
            .expect("session");
        assert_eq!(session.peer_address, link.b.address);
        // Interfaces are in natural order (swp2 before swp10).
        let names: Vec<&str> = border.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["dci-ams1", "swp49", "swp50"]);
    }
}
