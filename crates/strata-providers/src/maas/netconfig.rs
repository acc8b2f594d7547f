//! A machine's network in MAAS before deploy: the bond, the VLAN interfaces, static
//! links and the default gateway that [`MachineNetwork`] describes (what the
//! machine's netplan file says), through MAAS's interface API. Curtin writes the
//! deployed OS's network from this model.
//!
//! Level-triggered and idempotent: each call reads the machine's interfaces and the
//! subnets, then does only what is missing or different: a bond with other members or
//! parameters is deleted and made again (allowed: the machine is not deployed yet); a
//! member on another VLAN is moved onto the PXE VLAN first (MAAS bonds only members
//! of one VLAN); a link with another address is removed before the static one is
//! made; the default gateway is set last. A crash between calls leaves a partial
//! model, which the next call completes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;
use strata_plan::{MachineLink, MachineNetwork, ResourceId};

use super::MaasProvider;
use super::client::Form;
use super::wire::{Iface, Machine, Subnet};
use crate::ProviderError;

/// Passes over a machine's network before its step gives up on MAAS's transient
/// failures.
const NETWORK_PASSES: u32 = 6;

/// Whether `ip` lies in `cidr` (IPv4 or IPv6).
pub(crate) fn cidr_contains(cidr: &str, ip: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(ip), Ok(len)) = (
        net.parse::<IpAddr>(),
        ip.parse::<IpAddr>(),
        len.parse::<u32>(),
    ) else {
        return false;
    };
    let (n, i, bits) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(u32::from(n)), u128::from(u32::from(i)), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    if len > bits {
        return false;
    }
    let shift = bits - len;
    len == 0 || (n >> shift) == (i >> shift)
}

fn ip_of(address: &str) -> &str {
    address.split('/').next().unwrap_or(address)
}

impl MaasProvider {
    async fn interfaces(&self, sid: &str) -> Result<Vec<Iface>, ProviderError> {
        Ok(self
            .client
            .get(&format!("nodes/{sid}/interfaces/"), &[])
            .await?)
    }

    /// Configure `want` on machine `m` (Ready or Allocated); returns what was done.
    ///
    /// Its creates are not idempotent POSTs: when one fails in a way that leaves open
    /// whether MAAS made it (a timeout, a 502/504) or MAAS is briefly unable (5xx,
    /// 429), the whole pass runs again after a pause, from a fresh read, so it finds
    /// what the failed call did and does only what is still missing.
    pub(super) async fn configure_network(
        &self,
        step: &ResourceId,
        m: &Machine,
        want: &MachineNetwork,
    ) -> Result<Vec<String>, ProviderError> {
        let mut done = Vec::new();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.configure_network_pass(step, m, want, &mut done).await {
                Ok(()) => return Ok(done),
                Err(e)
                    if attempt < NETWORK_PASSES
                        && (e.is_ambiguous()
                            || e.status().is_some_and(|s| s == 429 || s >= 500)) =>
                {
                    tracing::warn!(%step, attempt, error = %e, "configuring the machine's network failed; reading it again");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn configure_network_pass(
        &self,
        step: &ResourceId,
        m: &Machine,
        want: &MachineNetwork,
        done: &mut Vec<String>,
    ) -> Result<(), ProviderError> {
        let sid = m.system_id.as_str();
        let subnets: Vec<Subnet> = self.client.get("subnets/", &[]).await?;
        let subnet_of = |l: &MachineLink| -> Result<&Subnet, ProviderError> {
            subnets
                .iter()
                .find(|s| {
                    cidr_contains(&s.cidr, ip_of(&l.address))
                        && s.cidr
                            .ends_with(&format!("/{}", l.address.split('/').nth(1).unwrap_or("")))
                })
                .ok_or_else(|| {
                    ProviderError::Api(format!(
                        "{step}: MAAS has no subnet for {} of {}; the subnet steps must run first",
                        l.address, l.device
                    ))
                })
        };
        let mut ifaces = self.interfaces(sid).await?;
        let by_name =
            |ifaces: &[Iface], name: &str| ifaces.iter().find(|i| i.name == name).cloned();
        let native_vlan = m
            .boot_interface
            .as_ref()
            .and_then(|b| by_name(&ifaces, &b.name))
            .and_then(|i| i.vlan.map(|v| v.id));

        // 1. The bond (or the NIC that carries the VLANs).
        if let Some(b) = &want.bond {
            let existing = by_name(&ifaces, &b.name);
            let fits = existing.as_ref().is_some_and(|i| {
                let mut have = i.parents.clone();
                have.sort();
                let mut wanted = b.members.clone();
                wanted.sort();
                let param = |k: &str| {
                    i.params
                        .as_ref()
                        .and_then(|p| p.get(k))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                i.kind == "bond"
                    && have == wanted
                    && param("bond_mode").as_deref() == Some(b.mode.as_str())
                    && (b.lacp_rate.is_none() || param("bond_lacp_rate") == b.lacp_rate)
                    && (b.xmit_hash_policy.is_none()
                        || param("bond_xmit_hash_policy") == b.xmit_hash_policy)
            });
            if let (Some(i), false) = (&existing, fits) {
                self.client
                    .delete(&format!("nodes/{sid}/interfaces/{}/", i.id))
                    .await?;
                done.push(format!("removed {} (other members or parameters)", i.name));
                ifaces = self.interfaces(sid).await?;
            }
            if !fits {
                let mut parents = Vec::new();
                for name in &b.members {
                    let Some(nic) = by_name(&ifaces, name) else {
                        let found: Vec<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
                        return Err(ProviderError::Refused(format!(
                            "{step}: machine {sid} has no NIC {name} for {} (commissioning found {}); fix the hardware profile's NIC names",
                            b.name,
                            found.join(", ")
                        )));
                    };
                    // MAAS bonds only members on one VLAN: the PXE VLAN.
                    if let Some(v) = native_vlan
                        && nic.vlan.as_ref().map(|x| x.id) != Some(v)
                    {
                        let _: Value = self
                            .client
                            .put(
                                &format!("nodes/{sid}/interfaces/{}/", nic.id),
                                &vec![("vlan".into(), v.to_string())],
                            )
                            .await?;
                    }
                    parents.push(nic.id);
                }
                let mut body: Form = vec![
                    ("name".into(), b.name.clone()),
                    ("bond_mode".into(), b.mode.clone()),
                    ("mtu".into(), want.mtu.to_string()),
                ];
                body.extend(
                    parents
                        .iter()
                        .map(|p| ("parents".to_string(), p.to_string())),
                );
                if let Some(v) = native_vlan {
                    body.push(("vlan".into(), v.to_string()));
                }
                if let Some(r) = &b.lacp_rate {
                    body.push(("bond_lacp_rate".into(), r.clone()));
                }
                if let Some(h) = &b.xmit_hash_policy {
                    body.push(("bond_xmit_hash_policy".into(), h.clone()));
                }
                let _: Value = self
                    .client
                    .post(
                        &format!("nodes/{sid}/interfaces/"),
                        Some("create_bond"),
                        &body,
                        false,
                    )
                    .await?;
                done.push(format!(
                    "bonded {} as {} ({})",
                    b.members.join("+"),
                    b.name,
                    b.mode
                ));
                ifaces = self.interfaces(sid).await?;
            }
        }
        // 1b. A bridge on it (a Proxmox node's vmbr0), which then carries the rest.
        if let Some(br) = &want.bridge {
            let Some(port) = by_name(&ifaces, &br.parent) else {
                return Err(ProviderError::Refused(format!(
                    "{step}: machine {sid} has no interface {} for bridge {}",
                    br.parent, br.name
                )));
            };
            let existing = by_name(&ifaces, &br.name);
            let fits = existing
                .as_ref()
                .is_some_and(|i| i.kind == "bridge" && i.parents == [br.parent.clone()]);
            if let (Some(i), false) = (&existing, fits) {
                self.client
                    .delete(&format!("nodes/{sid}/interfaces/{}/", i.id))
                    .await?;
                done.push(format!("removed {} (on another port)", i.name));
                ifaces = self.interfaces(sid).await?;
            }
            if !fits {
                // A port's VLAN interfaces would leave their address off the
                // bridge: they are made again on the bridge below.
                for child in ifaces
                    .iter()
                    .filter(|i| i.kind == "vlan" && i.parents == [br.parent.clone()])
                {
                    self.client
                        .delete(&format!("nodes/{sid}/interfaces/{}/", child.id))
                        .await?;
                }
                let mut body: Form = vec![
                    ("name".into(), br.name.clone()),
                    ("parents".into(), port.id.to_string()),
                    ("bridge_type".into(), "standard".into()),
                    ("bridge_stp".into(), "false".into()),
                    ("bridge_fd".into(), "0".into()),
                    ("mtu".into(), want.mtu.to_string()),
                ];
                if let Some(v) = native_vlan {
                    body.push(("vlan".into(), v.to_string()));
                }
                let _: Value = self
                    .client
                    .post(
                        &format!("nodes/{sid}/interfaces/"),
                        Some("create_bridge"),
                        &body,
                        false,
                    )
                    .await?;
                done.push(format!("bridge {} on {}", br.name, br.parent));
                ifaces = self.interfaces(sid).await?;
            }
            if want.bond.is_some()
                && let Some(port) = by_name(&ifaces, &br.parent)
                && port.effective_mtu != Some(want.mtu)
            {
                let _: Value = self
                    .client
                    .put(
                        &format!("nodes/{sid}/interfaces/{}/", port.id),
                        &vec![("mtu".into(), want.mtu.to_string())],
                    )
                    .await?;
                done.push(format!("{} mtu {}", br.parent, want.mtu));
            }
        }
        let Some(uplink) = by_name(&ifaces, &want.uplink) else {
            return Err(ProviderError::Refused(format!(
                "{step}: machine {sid} has no interface {}",
                want.uplink
            )));
        };
        if uplink.effective_mtu != Some(want.mtu) {
            let _: Value = self
                .client
                .put(
                    &format!("nodes/{sid}/interfaces/{}/", uplink.id),
                    &vec![("mtu".into(), want.mtu.to_string())],
                )
                .await?;
            done.push(format!("{} mtu {}", want.uplink, want.mtu));
        }

        // 2. VLAN interfaces and static links.
        let mut gateway_link: Option<(u64, u64, String)> = None;
        for l in &want.links {
            let subnet = subnet_of(l)?;
            let iface = if l.native {
                uplink.clone()
            } else {
                match by_name(&ifaces, &l.device) {
                    Some(i) => {
                        if i.effective_mtu != Some(l.mtu) {
                            let _: Value = self
                                .client
                                .put(
                                    &format!("nodes/{sid}/interfaces/{}/", i.id),
                                    &vec![("mtu".into(), l.mtu.to_string())],
                                )
                                .await?;
                            done.push(format!("{} mtu {}", l.device, l.mtu));
                        }
                        i
                    }
                    None => {
                        let vlan = subnet.vlan.as_ref().ok_or_else(|| {
                            ProviderError::Api(format!(
                                "{step}: subnet {} has no VLAN",
                                subnet.cidr
                            ))
                        })?;
                        let body: Form = vec![
                            ("parent".into(), uplink.id.to_string()),
                            ("vlan".into(), vlan.id.to_string()),
                            ("mtu".into(), l.mtu.to_string()),
                        ];
                        let made: Iface = self
                            .client
                            .post(
                                &format!("nodes/{sid}/interfaces/"),
                                Some("create_vlan"),
                                &body,
                                false,
                            )
                            .await?;
                        done.push(format!("VLAN {} on {}", l.vid, want.uplink));
                        made
                    }
                }
            };
            let ip = ip_of(&l.address);
            let have = iface
                .links
                .iter()
                .find(|k| k.ip_address.as_deref() == Some(ip) && k.mode == "static");
            let link_id = match have {
                Some(k) => k.id,
                None => {
                    for k in &iface.links {
                        let _: Value = self
                            .client
                            .post(
                                &format!("nodes/{sid}/interfaces/{}/", iface.id),
                                Some("unlink_subnet"),
                                &vec![("id".into(), k.id.to_string())],
                                false,
                            )
                            .await?;
                    }
                    let body: Form = vec![
                        ("mode".into(), "STATIC".into()),
                        ("subnet".into(), subnet.id.to_string()),
                        ("ip_address".into(), ip.to_string()),
                    ];
                    let linked: Iface = self
                        .client
                        .post(
                            &format!("nodes/{sid}/interfaces/{}/", iface.id),
                            Some("link_subnet"),
                            &body,
                            false,
                        )
                        .await?;
                    done.push(format!("{} {}", l.device, l.address));
                    linked
                        .links
                        .iter()
                        .find(|k| k.ip_address.as_deref() == Some(ip))
                        .map(|k| k.id)
                        .ok_or_else(|| {
                            ProviderError::Api(format!(
                                "{step}: MAAS answered the link of {ip} on {} without it",
                                l.device
                            ))
                        })?
                }
            };
            if let Some(g) = &l.gateway {
                gateway_link = Some((iface.id, link_id, g.clone()));
            }
        }

        // 3. The default gateway.
        if let Some((iface, link, gw)) = gateway_link {
            let current: Machine = self.client.get(&format!("machines/{sid}/"), &[]).await?;
            let have = current
                .default_gateways
                .as_ref()
                .and_then(|d| d.ipv4.as_ref())
                .and_then(|g| g.gateway_ip.clone());
            if have.as_deref() != Some(gw.as_str()) {
                let _: Value = self
                    .client
                    .post(
                        &format!("nodes/{sid}/interfaces/{iface}/"),
                        Some("set_default_gateway"),
                        &vec![("link_id".into(), link.to_string())],
                        false,
                    )
                    .await?;
                done.push(format!("default gateway {gw}"));
            }
        }
        Ok(())
    }
}

/// `device.property: old → new` for every key that differs (for refusals and notes).
pub(crate) fn differences(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, w) in want {
        match have.get(k) {
            Some(h) if h == w => {}
            Some(h) => out.push(format!("{k}: {h} → {w}")),
            None => out.push(format!("{k}: (none) → {w}")),
        }
    }
    for (k, h) in have {
        if !want.contains_key(k) {
            out.push(format!("{k}: {h} → (none)"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_contain_their_addresses_only() {
        assert!(cidr_contains("10.20.4.0/22", "10.20.7.255"));
        assert!(!cidr_contains("10.20.4.0/22", "10.20.8.1"));
        assert!(cidr_contains("0.0.0.0/0", "192.0.2.1"));
        assert!(cidr_contains("2001:db8::/64", "2001:db8::5"));
        assert!(!cidr_contains("2001:db8::/64", "10.0.0.1"));
        assert!(!cidr_contains("10.0.0.0/33", "10.0.0.1"));
        assert!(!cidr_contains("garbage", "10.0.0.1"));
    }

    #[test]
    fn differences_name_each_path() {
        let want = BTreeMap::from([("bond0.mtu".to_string(), "9000".to_string())]);
        let have = BTreeMap::from([
            ("bond0.mtu".to_string(), "1500".to_string()),
            ("eno1.address".to_string(), "10.0.0.5/24".to_string()),
        ]);
        assert_eq!(
            differences(&want, &have),
            [
                "bond0.mtu: 1500 → 9000",
                "eno1.address: 10.0.0.5/24 → (none)"
            ]
        );
    }
}

#[cfg(test)]
mod summary_tests {
    use strata_plan::{MachineBond, MachineLink, MachineNetwork};

    use super::super::wire::Machine;

    fn machine(interfaces: serde_json::Value) -> Machine {
        serde_json::from_value(serde_json::json!({
            "system_id": "abc123",
            "interface_set": interfaces,
            "default_gateways": {"ipv4": {"gateway_ip": "10.12.0.1", "link_id": 9}},
        }))
        .expect("machine")
    }

    fn link(ip: &str, cidr: &str) -> serde_json::Value {
        serde_json::json!({"id": 9, "mode": "static", "ip_address": ip, "subnet": {"id": 1, "cidr": cidr}})
    }

    /// What observe reads from MAAS and what the plan wants compare equal when MAAS
    /// holds the design: with a bond, and with a single NIC as the uplink.
    #[test]
    fn observed_and_desired_summaries_agree() {
        let bonded = machine(serde_json::json!([
            {"id": 1, "name": "eno1", "type": "physical", "effective_mtu": 9216, "links": []},
            {"id": 2, "name": "eno2", "type": "physical", "effective_mtu": 9216, "links": []},
            {"id": 3, "name": "bond0", "type": "bond", "parents": ["eno2", "eno1"], "effective_mtu": 9216,
             "params": {"bond_mode": "802.3ad", "bond_lacp_rate": "fast", "bond_xmit_hash_policy": "layer3+4"},
             "links": [link("10.10.0.5", "10.10.0.0/22")]},
            {"id": 4, "name": "bond0.12", "type": "vlan", "parents": ["bond0"], "effective_mtu": 1500,
             "links": [link("10.12.0.5", "10.12.0.0/24")]},
        ]));
        let want = MachineNetwork {
            bond: Some(MachineBond {
                name: "bond0".into(),
                members: vec!["eno1".into(), "eno2".into()],
                mode: "802.3ad".into(),
                lacp_rate: Some("fast".into()),
                xmit_hash_policy: Some("layer3+4".into()),
            }),
            bridge: None,
            uplink: "bond0".into(),
            mtu: 9216,
            links: vec![
                MachineLink {
                    device: "bond0".into(),
                    vid: 10,
                    native: true,
                    address: "10.10.0.5/22".into(),
                    mtu: 9216,
                    gateway: None,
                },
                MachineLink {
                    device: "bond0.12".into(),
                    vid: 12,
                    native: false,
                    address: "10.12.0.5/24".into(),
                    mtu: 1500,
                    gateway: Some("10.12.0.1".into()),
                },
            ],
        };
        assert_eq!(bonded.network_summary(), want.summary());

        let single = machine(serde_json::json!([
            {"id": 1, "name": "eno1", "type": "physical", "effective_mtu": 9216,
             "links": [link("10.10.0.5", "10.10.0.0/22")]},
            {"id": 2, "name": "eno2", "type": "physical", "effective_mtu": 1500, "links": []},
        ]));
        let want = MachineNetwork {
            bond: None,
            bridge: None,
            uplink: "eno1".into(),
            mtu: 9216,
            links: vec![MachineLink {
                device: "eno1".into(),
                vid: 10,
                native: true,
                address: "10.10.0.5/22".into(),
                mtu: 9216,
                gateway: Some("10.12.0.1".into()),
            }],
        };
        assert_eq!(single.network_summary(), want.summary());

        // A Proxmox node: the bond is the bridge's port, the bridge carries the rest.
        let bridged = machine(serde_json::json!([
            {"id": 1, "name": "eno1", "type": "physical", "effective_mtu": 9216, "links": []},
            {"id": 2, "name": "eno2", "type": "physical", "effective_mtu": 9216, "links": []},
            {"id": 3, "name": "bond0", "type": "bond", "parents": ["eno1", "eno2"], "effective_mtu": 9216,
             "params": {"bond_mode": "active-backup"}, "links": []},
            {"id": 5, "name": "vmbr0", "type": "bridge", "parents": ["bond0"], "effective_mtu": 9216,
             "params": {"bridge_type": "standard", "bridge_stp": false, "bridge_fd": 0},
             "links": [link("10.10.0.5", "10.10.0.0/22")]},
            {"id": 4, "name": "vmbr0.12", "type": "vlan", "parents": ["vmbr0"], "effective_mtu": 1500,
             "links": [link("10.12.0.5", "10.12.0.0/24")]},
        ]));
        let want = MachineNetwork {
            bond: Some(MachineBond {
                name: "bond0".into(),
                members: vec!["eno1".into(), "eno2".into()],
                mode: "active-backup".into(),
                lacp_rate: None,
                xmit_hash_policy: None,
            }),
            bridge: Some(strata_plan::MachineBridge {
                name: "vmbr0".into(),
                parent: "bond0".into(),
            }),
            uplink: "vmbr0".into(),
            mtu: 9216,
            links: vec![
                MachineLink {
                    device: "vmbr0".into(),
                    vid: 10,
                    native: true,
                    address: "10.10.0.5/22".into(),
                    mtu: 9216,
                    gateway: None,
                },
                MachineLink {
                    device: "vmbr0.12".into(),
                    vid: 12,
                    native: false,
                    address: "10.12.0.5/24".into(),
                    mtu: 1500,
                    gateway: Some("10.12.0.1".into()),
                },
            ],
        };
        assert_eq!(bridged.network_summary(), want.summary());
    }
}
