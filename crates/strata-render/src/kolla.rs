//! Kolla-Ansible inputs for each DC's OpenStack region (one region per DC):
//! `<dc>/kolla/globals.yml` ([`FileKind::KollaGlobals`]), the `<dc>/kolla/multinode`
//! INI inventory ([`FileKind::KollaInventory`]) and the ML2 override
//! `<dc>/kolla/config/neutron/ml2_conf.ini` ([`FileKind::NeutronMl2`]). The `<dc>/kolla/` directory maps to
//! `/etc/kolla/` on the deploy host; the PCI passthrough overrides under
//! `<dc>/kolla/config/nova/` come from [`crate::nova_pci`].
//!
//! Invariant: a pure function of the compiled fleet. DCs and hosts are emitted in
//! sorted order, so equal fleets give byte-identical files, and nothing secret is
//! ever written: Kolla's `passwords.yml` is generated on the deploy host by
//! `kolla-genpwd` and is outside strata. A DC with no host in any OpenStack role gets
//! no Kolla files.
//!
//! Conventions (shared with [`crate::nova_pci`], which must name hosts the same way):
//! * Hosts are named by FQDN in the inventory (Kolla's `inventory_hostname`), with
//!   `ansible_host` set to the management VLAN address.
//! * Interface names are per-host inventory variables and never appear in
//!   `globals.yml`: kolla-ansible loads `globals.yml` as extra vars, which take
//!   precedence over inventory variables, and VMs and machines name their NICs
//!   differently. `network_interface` and `api_interface` are the management VLAN
//!   interface (so `tunnel_interface` and `migration_interface`, which default to
//!   them, are too).
//! * Machines carry their VLANs as `<bond>.<vid>` subinterfaces (as the netplan
//!   renderer names them); a machine without a bond uses its profile's first NIC in
//!   place of the bond. Network and compute machines get
//!   `neutron_external_interface=<bond>`: the bond itself, which carries no address
//!   and trunks the provider VLANs.
//! * VMs (Proxmox guests) have one virtio NIC per attached VLAN, in the order of the
//!   VM's interfaces (`net0`, `net1`, ... in Proxmox), which the guest names
//!   `eth0`, `eth1`, ... (`HostInterface::device`, named by the compiler).
//! * HAProxy runs on the control hosts (`loadbalancer` group), where strata's own
//!   keepalived holds the API VIP; Kolla's keepalived is disabled.
//! * Neutron uses OVN: the network hosts are the gateway chassis.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;

use serde::Serialize;
use strata_fleet::{Dc, Fleet, HostInterface, Machine};
use strata_spec::InfraVlan;

use crate::{FileKind, RenderError, RenderedFile, template};

static ENV: OnceLock<template::Templates> = OnceLock::new();

fn env() -> &'static template::Templates {
    ENV.get_or_init(|| {
        template::environment(&[(
            "kolla/globals.yml",
            include_str!("../templates/kolla/globals.yml.j2"),
        )])
    })
}

/// Render the Kolla-Ansible globals and inventory of every DC that runs OpenStack.
pub fn render(fleet: &Fleet) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = Vec::new();
    for dc in fleet.dcs.iter().filter(|dc| has_openstack(dc)) {
        files.push(crate::file(
            format!("{}/kolla/globals.yml", dc.name),
            FileKind::KollaGlobals,
            globals(fleet, dc),
        ));
        files.push(crate::file(
            format!("{}/kolla/multinode", dc.name),
            FileKind::KollaInventory,
            Ok(inventory(dc)),
        ));
        files.push(crate::file(
            format!("{}/kolla/config/neutron/ml2_conf.ini", dc.name),
            FileKind::NeutronMl2,
            Ok(ml2_conf(dc)),
        ));
    }
    crate::collect(files)
}

/// Whether the DC has any host in an OpenStack role.
pub(crate) fn has_openstack(dc: &Dc) -> bool {
    let os = &dc.openstack;
    !(os.control.is_empty()
        && os.network.is_empty()
        && os.compute.is_empty()
        && os.storage.is_empty()
        && os.monitoring.is_empty())
}

/// The name a host has in the Kolla inventory (its FQDN), which is also the directory
/// name of its per-host overrides (`config/<service>/<inventory_hostname>/`).
pub(crate) fn inventory_name(dc: &Dc, hostname: &str) -> String {
    dc.machines
        .iter()
        .find(|m| m.hostname == hostname)
        .map(|m| m.fqdn.clone())
        .or_else(|| {
            dc.vms
                .iter()
                .find(|v| v.hostname == hostname)
                .map(|v| v.fqdn.clone())
        })
        .unwrap_or_else(|| hostname.to_string())
}

/// The Neutron physical network the tenant VLANs ride on: Kolla's default name for
/// its first external bridge (`neutron_physical_networks`), bridged to
/// `neutron_external_interface`, the bond that trunks the provider VLANs.
pub const PHYSNET: &str = "physnet1";

/// Kolla's bridge for [`PHYSNET`] (`neutron_bridge_name`).
const BRIDGE: &str = "br-ex";

// ---------------------------------------------------------------------------
// ml2_conf.ini

/// The ML2 override: Kolla's own `ml2_conf.ini` (kolla-ansible
/// `ansible/roles/neutron/templates/ml2_conf.ini.j2`) leaves `network_vlan_ranges`
/// empty, so without this no VLAN network exists on any physnet (neutron
/// `type_vlan.py`: "physical_network 'physnet1' unknown for VLAN provider network").
fn ml2_conf(dc: &Dc) -> String {
    let tenant = *dc.blueprint.vlans.tenant;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# ml2_conf.ini override for neutron-server of OpenStack region {} (DC {}).",
        dc.openstack.region, dc.name
    );
    let _ = write!(
        out,
        "\
# Generated by strata from the compiled fleet: do not edit; change the fleet spec.
# Kolla-Ansible merges it over its own ml2_conf.ini, whose network_vlan_ranges is
# empty. {PHYSNET} is bridged to {BRIDGE} (neutron_physical_networks and
# neutron_bridge_name in globals.yml), which holds neutron_external_interface, the
# bond that trunks the tenant VLANs.

[ml2_type_vlan]
# The tenant VLAN range (blueprint vlans.tenant): each tenant network is a VLAN
# provider network on {PHYSNET} with its VLAN from this range.
network_vlan_ranges = {PHYSNET}:{}:{}

[ml2_type_flat]
flat_networks = {PHYSNET}
",
        tenant.first, tenant.last
    );
    out
}

// ---------------------------------------------------------------------------
// globals.yml

#[derive(Serialize)]
struct GlobalsCtx<'a> {
    dc: &'a str,
    region: &'a str,
    region_yaml: String,
    release_yaml: String,
    physnet_yaml: String,
    bridge_yaml: String,
    vip: Option<VipCtx>,
    azs: Vec<AzCtx<'a>>,
}

#[derive(Serialize)]
struct VipCtx {
    name: String,
    address_yaml: String,
    fqdn_yaml: String,
    vlan: &'static str,
}

#[derive(Serialize)]
struct AzCtx<'a> {
    name: &'a str,
    hosts: Vec<&'a str>,
}

/// A YAML double-quoted scalar (a JSON string literal is one), so that values such as
/// `2025.1` stay strings.
fn yaml_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The name Kolla's API endpoints use in a DC (`kolla_internal_fqdn`, and
/// `kolla_external_fqdn`, which Kolla derives from it while the external VIP is the
/// internal one) and the VIP it must resolve to: `<vip>.<dc>.<organisation.domain>`.
/// `None` when the DC has no OpenStack VIP. strata publishes the name in MAAS DNS
/// (`strata_plan::desired`).
pub fn api_endpoint(fleet: &Fleet, dc: &Dc) -> Option<(String, std::net::IpAddr)> {
    let address = dc.openstack.internal_vip?;
    let named = dc.vips.iter().find(|v| v.address == address);
    let name = named.map_or("openstack-api", |v| v.name.as_str());
    Some((
        format!("{name}.{}.{}", dc.name, fleet.organisation.domain),
        address,
    ))
}

fn globals(fleet: &Fleet, dc: &Dc) -> Result<String, String> {
    let os = &dc.openstack;
    let vip = api_endpoint(fleet, dc).map(|(fqdn, address)| {
        let named = dc.vips.iter().find(|v| v.address == address);
        let name = named.map_or("openstack-api", |v| v.name.as_str());
        VipCtx {
            name: name.to_string(),
            address_yaml: yaml_str(&address.to_string()),
            fqdn_yaml: yaml_str(&fqdn),
            vlan: named.map_or(InfraVlan::Management, |v| v.vlan).as_str(),
        }
    });
    let mut azs: Vec<AzCtx> = os
        .availability_zones
        .iter()
        .map(|az| {
            let mut hosts: Vec<&str> = az.compute.iter().map(String::as_str).collect();
            hosts.sort_unstable();
            AzCtx {
                name: &az.name,
                hosts,
            }
        })
        .collect();
    azs.sort_by(|a, b| a.name.cmp(b.name));
    let ctx = GlobalsCtx {
        dc: &dc.name,
        region: &os.region,
        region_yaml: yaml_str(&os.region),
        release_yaml: yaml_str(&os.kolla_release),
        physnet_yaml: yaml_str(PHYSNET),
        bridge_yaml: yaml_str(BRIDGE),
        vip,
        azs,
    };
    template::render(env(), "kolla/globals.yml", ctx)
}

// ---------------------------------------------------------------------------
// multinode inventory

/// Kolla-Ansible's service groups as `(group, children)`, following the layout of its
/// `ansible/inventory/multinode` for 2025.1, trimmed to the services this deployment
/// can run (core services, Cinder, Heat, Horizon, OVN). One deliberate difference:
/// `loadbalancer` maps to `control`, not `network`, because the API VIP lives on the
/// control hosts.
const CHILD_GROUPS: &[(&str, &[&str])] = &[
    (
        "baremetal",
        &["control", "network", "compute", "storage", "monitoring"],
    ),
    ("tls-backend", &["control", "network"]),
    (
        "common",
        &["control", "network", "compute", "storage", "monitoring"],
    ),
    ("cron", &["common"]),
    ("fluentd", &["common"]),
    ("kolla-logs", &["common"]),
    ("kolla-toolbox", &["common"]),
    ("loadbalancer", &["control"]),
    ("letsencrypt", &["loadbalancer"]),
    ("letsencrypt-webserver", &["letsencrypt"]),
    ("letsencrypt-lego", &["letsencrypt"]),
    ("mariadb", &["control"]),
    ("rabbitmq", &["control"]),
    ("memcached", &["control"]),
    ("etcd", &["control"]),
    ("valkey", &["control"]),
    ("keystone", &["control"]),
    ("horizon", &["control"]),
    ("glance", &["control"]),
    ("glance-api", &["glance"]),
    ("placement", &["control"]),
    ("placement-api", &["placement"]),
    ("nova", &["control"]),
    ("nova-api", &["nova"]),
    ("nova-conductor", &["nova"]),
    ("nova-metadata", &["nova"]),
    ("nova-super-conductor", &["nova"]),
    ("nova-novncproxy", &["nova"]),
    ("nova-scheduler", &["nova"]),
    ("nova-spicehtml5proxy", &["nova"]),
    ("nova-compute-ironic", &["nova"]),
    ("nova-serialproxy", &["nova"]),
    ("neutron", &["network"]),
    ("neutron-server", &["control"]),
    ("neutron-dhcp-agent", &["neutron"]),
    ("neutron-l3-agent", &["neutron"]),
    ("neutron-metadata-agent", &["neutron"]),
    ("neutron-bgp-dragent", &["neutron"]),
    ("neutron-infoblox-ipam-agent", &["neutron"]),
    ("neutron-metering-agent", &["neutron"]),
    ("ironic-neutron-agent", &["neutron"]),
    ("neutron-ovn-metadata-agent", &["compute", "network"]),
    ("neutron-ovn-agent", &["compute", "network"]),
    ("openvswitch", &["network", "compute"]),
    (
        "ovn-controller",
        &["ovn-controller-compute", "ovn-controller-network"],
    ),
    ("ovn-controller-compute", &["compute"]),
    ("ovn-controller-network", &["network"]),
    ("ovn-database", &["control"]),
    ("ovn-northd", &["ovn-database"]),
    ("ovn-nb-db", &["ovn-database"]),
    ("ovn-sb-db", &["ovn-database"]),
    ("ovn-sb-db-relay", &["ovn-database"]),
    ("cinder", &["control"]),
    ("cinder-api", &["cinder"]),
    ("cinder-scheduler", &["cinder"]),
    ("cinder-volume", &["storage"]),
    ("cinder-backup", &["storage"]),
    ("iscsid", &["compute", "storage"]),
    ("tgtd", &["storage"]),
    ("multipathd", &["compute", "storage"]),
    ("heat", &["control"]),
    ("heat-api", &["heat"]),
    ("heat-api-cfn", &["heat"]),
    ("heat-engine", &["heat"]),
    ("bifrost", &["deployment"]),
];

/// One inventory host line.
struct HostLine {
    name: String,
    address: Option<IpAddr>,
    /// The management VLAN interface (`network_interface`, `api_interface`).
    interface: Option<String>,
    external_interface: Option<String>,
    /// Why variables are missing, written as a comment above the host.
    note: Option<String>,
}

fn management(interfaces: &[HostInterface]) -> Option<(usize, &HostInterface)> {
    interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.vlan == InfraVlan::Management)
}

/// The interface a machine's VLANs ride on: its bond, else its profile's first NIC.
fn machine_parent(m: &Machine) -> Option<String> {
    m.uplink.clone()
}

fn host_line(dc: &Dc, hostname: &str, wants_external: bool) -> HostLine {
    if let Some(m) = dc.machines.iter().find(|m| m.hostname == hostname) {
        let parent = machine_parent(m);
        let mgmt = management(&m.interfaces);
        let note = match (&parent, mgmt) {
            (None, _) => Some(format!(
                "{hostname}: no bond and no NIC in profile `{}`: interfaces unknown",
                m.profile
            )),
            (Some(_), None) => Some(format!("{hostname}: no management VLAN interface")),
            _ => None,
        };
        return HostLine {
            name: m.fqdn.clone(),
            address: mgmt.map(|(_, i)| i.address.addr()),
            interface: mgmt.map(|(_, i)| i.device.clone()),
            external_interface: parent.filter(|_| wants_external),
            note,
        };
    }
    if let Some(vm) = dc.vms.iter().find(|v| v.hostname == hostname) {
        let mgmt = management(&vm.interfaces);
        let mut notes = Vec::new();
        if mgmt.is_none() {
            notes.push(format!("{hostname}: no management VLAN interface"));
        }
        if wants_external {
            notes.push(format!(
                "{hostname}: a VM has no provider trunk NIC; set neutron_external_interface"
            ));
        }
        return HostLine {
            name: vm.fqdn.clone(),
            address: mgmt.map(|(_, i)| i.address.addr()),
            interface: mgmt.map(|(_, i)| i.device.clone()),
            external_interface: None,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        };
    }
    HostLine {
        name: hostname.to_string(),
        address: None,
        interface: None,
        external_interface: None,
        note: Some(format!("{hostname}: not a machine or VM of {}", dc.name)),
    }
}

fn write_host(out: &mut String, host: &HostLine) {
    if let Some(note) = &host.note {
        let _ = writeln!(out, "# strata: {note}");
    }
    out.push_str(&host.name);
    if let Some(address) = host.address {
        let _ = write!(out, " ansible_host={address}");
    }
    if let Some(interface) = &host.interface {
        let _ = write!(
            out,
            " network_interface={interface} api_interface={interface}"
        );
    }
    if let Some(external) = &host.external_interface {
        let _ = write!(out, " neutron_external_interface={external}");
    }
    out.push('\n');
}

fn inventory(dc: &Dc) -> String {
    let os = &dc.openstack;
    let sorted = |hosts: &mut Vec<&str>| {
        hosts.sort_unstable();
        hosts.dedup();
    };
    let mut control: Vec<&str> = os.control.iter().map(String::as_str).collect();
    let mut network: Vec<&str> = os.network.iter().map(String::as_str).collect();
    let mut compute: Vec<&str> = os.compute.iter().map(|c| c.hostname.as_str()).collect();
    let mut storage: Vec<&str> = os.storage.iter().map(String::as_str).collect();
    let mut monitoring: Vec<&str> = os.monitoring.iter().map(String::as_str).collect();
    for hosts in [
        &mut control,
        &mut network,
        &mut compute,
        &mut storage,
        &mut monitoring,
    ] {
        sorted(hosts);
    }
    let external: BTreeSet<&str> = network.iter().chain(&compute).copied().collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Kolla-Ansible multinode inventory for OpenStack region {} (DC {}).",
        os.region, dc.name
    );
    out.push_str(INVENTORY_HEADER);
    let top: [(&str, &[&str]); 5] = [
        ("control", &control),
        ("network", &network),
        ("compute", &compute),
        ("monitoring", &monitoring),
        ("storage", &storage),
    ];
    for (group, hosts) in top {
        let _ = writeln!(out, "\n[{group}]");
        for host in hosts {
            write_host(&mut out, &host_line(dc, host, external.contains(host)));
        }
    }
    out.push_str("\n[deployment]\nlocalhost ansible_connection=local\n");
    for (group, children) in CHILD_GROUPS {
        let _ = writeln!(out, "\n[{group}:children]");
        for child in *children {
            let _ = writeln!(out, "{child}");
        }
    }
    out
}

const INVENTORY_HEADER: &str = "\
# Generated by strata from the compiled fleet: do not edit; change the fleet spec.
#
# Hosts are named by FQDN (per-host overrides live in config/<service>/<FQDN>/);
# ansible_host is the management VLAN address. Interfaces are set per host here and
# not in globals.yml, whose extra vars would override them:
#   machines: <bond>.<vid> VLAN subinterfaces; network and compute machines also
#     get neutron_external_interface=<bond> (the bond trunks the provider VLANs);
#   VMs: one virtio NIC per attached VLAN, in order, named eth0, eth1, ...
# loadbalancer maps to control (Kolla's sample maps it to network): the API VIP is
# held on the control hosts by strata's keepalived, and HAProxy must run there.
";
