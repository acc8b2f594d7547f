//! cloud-init: the user-data MAAS hands to the bare-metal machines of each role.
//!
//! One file per (DC, machine role) present among the DC's non-Proxmox machines:
//! `<dc>/cloud-init/<role>.yaml` ([`FileKind::CloudInit`]), e.g.
//! `fra1/cloud-init/openstack-compute.yaml`. The roles are `openstack-control`,
//! `openstack-network`, `openstack-compute` and `openstack-storage`; a DC without
//! machines of a role gets no file for it.
//!
//! Proxmox nodes get no user-data: Proxmox VE is installed from its own installer
//! (ISO or automated installation), not deployed by MAAS from a cloud image. Turning
//! a Debian cloud image into a node through cloud-init would need the Proxmox release
//! key pinned in the file (the model has none, and fetching it unauthenticated at
//! boot is not acceptable), a kernel switch with a reboot between two install stages,
//! and an `/etc/hosts` mapping the hostname to the management address; none of that
//! belongs in a schema-valid but untested user-data file. Their network is rendered by
//! [`crate::proxmox`].
//!
//! Contents, all roles: `package_update: true` (no upgrade on first boot), the
//! packages of the role (sorted), NTP through chrony (`ntp: {enabled: true,
//! ntp_client: chrony}`; the model has no NTP servers, so the distribution's default
//! pools apply), a fact file `/etc/strata/role` (`role=`, `dc=`, `fleet_id=`), and a
//! `runcmd` that makes sure LLDP and the node exporter run. Every role gets `chrony`,
//! `ipmitool`, `lldpd`, `prometheus-node-exporter` and `python3` (Kolla-Ansible's
//! target hosts need Python; Docker is left to `kolla-ansible bootstrap-servers`, as
//! Kolla installs its own Docker packages and the distribution's would conflict).
//! Computes add `pciutils`; storage nodes `lvm2`, `nvme-cli` and `smartmontools`.
//! When GPU machines of the role exist in the DC, a comment records that no GPU
//! driver is installed, since the GPUs are passed through to instances.
//!
//! Invariant: pure and deterministic (DCs in fleet order, roles sorted), no secrets
//! (nothing about BMC credentials, no users or passwords), no deprecated keys: every
//! file passes `cloud-init schema` with no deprecations (checked by the tests).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;
use strata_fleet::{Dc, Fleet, Machine};
use strata_spec::MachineRole;

use crate::netplan::comment_text;
use crate::{FileKind, RenderError, RenderedFile, template};

const TEMPLATE: &str = include_str!("../templates/cloud-init/role.yaml.j2");

static ENV: OnceLock<template::Templates> = OnceLock::new();

fn env() -> &'static template::Templates {
    ENV.get_or_init(|| {
        // Registered without an extension, so that no auto-escaping applies.
        let mut env = template::environment(&[("cloud-init", TEMPLATE)]);
        env.add_filter("comment", |s: String| comment_text(&s));
        env
    })
}

/// Packages every role gets.
const COMMON_PACKAGES: [&str; 5] = [
    "chrony",
    "ipmitool",
    "lldpd",
    "prometheus-node-exporter",
    "python3",
];

/// The packages of a role, sorted.
pub fn packages(role: MachineRole) -> Vec<&'static str> {
    let extra: &[&'static str] = match role {
        MachineRole::OpenstackCompute => &["pciutils"],
        MachineRole::OpenstackStorage => &["lvm2", "nvme-cli", "smartmontools"],
        MachineRole::OpenstackControl | MachineRole::OpenstackNetwork | MachineRole::Proxmox => &[],
    };
    let mut all: Vec<&'static str> = COMMON_PACKAGES.iter().chain(extra).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Render the user-data of every (DC, role) with machines.
pub fn render(fleet: &Fleet) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = Vec::new();
    for dc in &fleet.dcs {
        let mut by_role: BTreeMap<MachineRole, Vec<&Machine>> = BTreeMap::new();
        for m in dc
            .machines
            .iter()
            .filter(|m| m.role != MachineRole::Proxmox)
        {
            by_role.entry(m.role).or_default().push(m);
        }
        for (role, machines) in by_role {
            files.push(crate::file(
                format!("{}/cloud-init/{}.yaml", dc.name, role.as_str()),
                FileKind::CloudInit,
                template::render(env(), "cloud-init", context(fleet, dc, role, &machines)),
            ));
        }
    }
    crate::collect(files)
}

#[derive(Serialize)]
struct Context<'a> {
    dc: &'a str,
    role: &'static str,
    fleet_id: &'a str,
    packages: Vec<&'static str>,
    gpu_profiles: Vec<GpuProfile<'a>>,
    /// The DC's NTP servers (its MAAS rack controllers).
    ntp_servers: Vec<String>,
}

/// GPU machines of the role in the DC, by hardware profile.
#[derive(Serialize)]
struct GpuProfile<'a> {
    profile: &'a str,
    model: &'a str,
    gpus: u32,
    machines: usize,
}

fn context<'a>(
    fleet: &'a Fleet,
    dc: &'a Dc,
    role: MachineRole,
    machines: &[&'a Machine],
) -> Context<'a> {
    let mut gpu: BTreeMap<&str, GpuProfile<'a>> = BTreeMap::new();
    for m in machines.iter().filter(|m| m.gpus > 0) {
        let model = fleet
            .profile(&m.profile)
            .and_then(|p| p.gpu.as_ref())
            .map_or("unknown model", |g| g.model.as_str());
        gpu.entry(m.profile.as_str())
            .or_insert(GpuProfile {
                profile: &m.profile,
                model,
                gpus: m.gpus,
                machines: 0,
            })
            .machines += 1;
    }
    Context {
        dc: &dc.name,
        role: role.as_str(),
        fleet_id: &fleet.organisation.fleet_id,
        packages: packages(role),
        gpu_profiles: gpu.into_values().collect(),
        ntp_servers: dc
            .host_services
            .ntp_servers
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}
