//! Nova PCI passthrough of GPUs, as Kolla-Ansible configuration overrides
//! ([`FileKind::NovaPci`]), per DC:
//!
//! * `<dc>/kolla/config/nova.conf`: merged by Kolla into `nova.conf` of every nova
//!   service. It defines one `[pci] alias` per GPU alias in the DC (those of the
//!   GPU compute hosts and those the DC's flavors request through
//!   `pci_passthrough:alias`), which nova-api needs to read flavors and nova-compute
//!   needs for move operations, and enables the scheduler's `PciPassthroughFilter`.
//! * `<dc>/kolla/config/nova/<inventory hostname>/nova.conf` for each compute host
//!   with GPUs: its `[pci] device_spec`, and the layout pinned, huge-page GPU
//!   flavors need (`[compute] cpu_shared_set`/`cpu_dedicated_set`, `[DEFAULT]
//!   reserved_host_memory_mb`, from [`strata_fleet::numa`]). Kolla looks the directory up by
//!   `inventory_hostname`, which is the host's FQDN (see [`crate::kolla`]).
//!
//! Kolla merges the per-host file after the DC-wide one, key by key, so the per-host
//! files set only `device_spec` and keep the DC-wide `alias` lines.
//!
//! Team quotas: from Kolla 2026.2 on ([`strata_fleet::quota`]) the DC-wide file also
//! switches Nova to unified limits (`[quota] driver`, `[oslo_limit]`: the limits of
//! the region's `compute` service in Keystone, which the plan sets per team), turns on
//! `[filter_scheduler] pci_in_placement` and, per GPU host, `[pci]
//! report_in_placement`, so the GPUs are Placement inventory of nova's default class
//! `CUSTOM_PCI_<VENDOR>_<PRODUCT>` and count against the team's `class:` limit.
//!
//! Invariant: a pure function of the compiled fleet; DCs, aliases and hosts are
//! emitted sorted, so equal fleets give byte-identical files. A DC without any GPU
//! alias and on the legacy quota driver gets no file (a `[pci]` section with nothing
//! in it would mean nothing).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use strata_fleet::{ComputeNode, Dc, Fleet, GpuInfo};

use crate::kolla::{has_openstack, inventory_name};
use crate::{FileKind, RenderError, RenderedFile};

/// Every alias uses this NUMA policy: it matches the GPU flavors'
/// `hw:pci_numa_affinity_policy` (which takes precedence at scheduling time), and an
/// 8-GPU instance spans both NUMA nodes of a GPU host, which `required` would forbid.
const NUMA_POLICY: &str = "preferred";

/// Whole GPUs are passed through as plain PCI devices.
const DEVICE_TYPE: &str = "type-PCI";

/// nova's default `[filter_scheduler] enabled_filters` (2025.1); the rendered list
/// adds `NUMATopologyFilter` (when a flavor asks for pinned CPUs, huge pages or a
/// NUMA layout) and `PciPassthroughFilter`.
const DEFAULT_FILTERS: [&str; 5] = [
    "ComputeFilter",
    "ComputeCapabilitiesFilter",
    "ImagePropertiesFilter",
    "ServerGroupAntiAffinityFilter",
    "ServerGroupAffinityFilter",
];

/// Flavor extra specs that give an instance a NUMA topology.
const NUMA_EXTRA_SPECS: [&str; 3] = ["hw:cpu_policy", "hw:mem_page_size", "hw:numa_nodes"];

/// Render the DC-wide alias file and the per-host device specs of every DC.
pub fn render(fleet: &Fleet) -> Result<Vec<RenderedFile>, RenderError> {
    let mut dcs: Vec<&Dc> = fleet.dcs.iter().filter(|dc| has_openstack(dc)).collect();
    dcs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut files = Vec::new();
    for dc in dcs {
        let aliases = aliases(fleet, dc);
        if !aliases.is_empty() || dc.openstack.unified_limits() {
            files.push(RenderedFile {
                path: format!("{}/kolla/config/nova.conf", dc.name),
                kind: FileKind::NovaPci,
                content: dc_conf(dc, &aliases),
            });
        }
        let mut gpu_hosts: Vec<(&ComputeNode, &GpuInfo)> = dc
            .openstack
            .compute
            .iter()
            .filter_map(|c| c.gpu.as_ref().map(|g| (c, g)))
            .collect();
        gpu_hosts.sort_by(|a, b| a.0.hostname.cmp(&b.0.hostname));
        for (node, gpu) in gpu_hosts {
            files.push(RenderedFile {
                path: format!(
                    "{}/kolla/config/nova/{}/nova.conf",
                    dc.name,
                    inventory_name(dc, &node.hostname)
                ),
                kind: FileKind::NovaPci,
                content: host_conf(fleet, dc, node, gpu),
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// One PCI alias of a DC.
struct Alias {
    vendor_id: String,
    product_id: String,
    model: String,
    /// Flavors requesting it, sorted.
    flavors: Vec<String>,
}

/// Alias names a flavor requests: `pci_passthrough:alias` is `name:count[,name:count]`.
fn requested_aliases(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|part| part.split(':').next().unwrap_or("").trim())
        .filter(|name| !name.is_empty())
}

/// The DC's aliases by name: from its GPU compute hosts, and from its flavors (the
/// alias name is a hardware profile name, whose GPU gives the ids). A flavor alias
/// with no matching GPU profile is skipped: there are no ids to write.
fn aliases(fleet: &Fleet, dc: &Dc) -> BTreeMap<String, Alias> {
    let mut aliases: BTreeMap<String, Alias> = BTreeMap::new();
    for gpu in dc.openstack.compute.iter().filter_map(|c| c.gpu.as_ref()) {
        aliases.entry(gpu.alias.clone()).or_insert_with(|| Alias {
            vendor_id: gpu.vendor_id.to_ascii_lowercase(),
            product_id: gpu.device_id.to_ascii_lowercase(),
            model: gpu.model.clone(),
            flavors: Vec::new(),
        });
    }
    for flavor in &dc.openstack.flavors {
        let specs = flavor
            .extra_specs
            .iter()
            .filter(|(key, _)| key == "pci_passthrough:alias")
            .map(|(_, value)| value.as_str())
            .chain(flavor.pci_alias.as_deref());
        let names: std::collections::BTreeSet<&str> = specs.flat_map(requested_aliases).collect();
        for name in names {
            if !aliases.contains_key(name) {
                let Some(gpu) = fleet.profile(name).and_then(|p| p.gpu.as_ref()) else {
                    continue;
                };
                aliases.insert(
                    name.to_string(),
                    Alias {
                        vendor_id: gpu.vendor_id.to_ascii_lowercase(),
                        product_id: gpu.device_id.to_ascii_lowercase(),
                        model: gpu.model.clone(),
                        flavors: Vec::new(),
                    },
                );
            }
            if let Some(alias) = aliases.get_mut(name) {
                alias.flavors.push(flavor.name.clone());
            }
        }
    }
    for alias in aliases.values_mut() {
        alias.flavors.sort();
        alias.flavors.dedup();
    }
    aliases
}

/// A JSON string literal.
fn json(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A JSON object with the keys in the given order (nova does not care; people do).
fn json_object(pairs: &[(&str, &str)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {}", json(k), json(v)))
        .collect();
    format!("{{{}}}", body.join(", "))
}

fn dc_conf(dc: &Dc, aliases: &BTreeMap<String, Alias>) -> String {
    let os = &dc.openstack;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# nova.conf override for every nova service of OpenStack region {} (DC {}).",
        os.region, dc.name
    );
    out.push_str(
        "\
# Generated by strata from the compiled fleet: do not edit; change the fleet spec.
# Kolla-Ansible merges it into nova.conf of every nova container.
",
    );
    if !aliases.is_empty() {
        out.push_str(
            "\
# Per-host files in nova/<FQDN>/nova.conf add each GPU host's PCI device_spec on top
# of it. enabled_filters replaces nova's default list (and any list Kolla would set,
# e.g. for Blazar).
",
        );
    }
    let numa = os.flavors.iter().any(|f| {
        f.extra_specs
            .iter()
            .any(|(key, _)| NUMA_EXTRA_SPECS.contains(&key.as_str()))
    });
    let mut filters: Vec<&str> = DEFAULT_FILTERS.to_vec();
    if numa {
        filters.push("NUMATopologyFilter");
    }
    filters.push("PciPassthroughFilter");
    let unified = os.unified_limits();
    if !aliases.is_empty() {
        out.push_str("\n[filter_scheduler]\n");
        out.push_str("available_filters = nova.scheduler.filters.all_filters\n");
        let _ = writeln!(out, "enabled_filters = {}", filters.join(","));
        if unified {
            out.push_str(
                "# GPU requests go through Placement, so unified limits count them.\n\
                 pci_in_placement = true\n",
            );
        }
    }
    if unified {
        let _ = write!(
            out,
            "\
\n[quota]
# Team quotas are Keystone unified limits (strata sets a registered default and one
# limit per team project for servers, class:VCPU, class:PCPU, class:MEMORY_MB and each
# GPU class); usage is counted from Placement. A resource without a registered
# limit is unlimited, except servers (nova's default require list).
driver = {driver}

[oslo_limit]
# How nova reads the limits: the nova service user, through Keystone's internal
# endpoint, with the system-scoped reader role (strata grants it with the limits).
auth_url = {{{{ keystone_internal_url }}}}
auth_type = password
user_domain_id = {{{{ default_user_domain_id }}}}
username = {{{{ nova_keystone_user }}}}
password = {{{{ nova_keystone_password }}}}
system_scope = all
endpoint_service_type = {service}
endpoint_region_name = {region}
endpoint_interface = internal
",
            driver = strata_fleet::quota::UNIFIED_LIMITS_DRIVER,
            service = strata_fleet::quota::LIMITS_SERVICE_TYPE,
            region = os.region,
        );
    }
    if aliases.is_empty() {
        return out;
    }

    out.push_str("\n[pci]\n");
    for (name, alias) in aliases {
        let used_by = if alias.flavors.is_empty() {
            "no flavor".to_string()
        } else {
            alias.flavors.join(", ")
        };
        let _ = writeln!(
            out,
            "# {name}: {} ({}:{}); requested by {used_by}",
            alias.model, alias.vendor_id, alias.product_id
        );
        let _ = writeln!(
            out,
            "alias = {}",
            json_object(&[
                ("name", name),
                ("vendor_id", &alias.vendor_id),
                ("product_id", &alias.product_id),
                ("device_type", DEVICE_TYPE),
                ("numa_policy", NUMA_POLICY),
            ])
        );
    }
    out
}

fn host_conf(fleet: &Fleet, dc: &Dc, node: &ComputeNode, gpu: &GpuInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# nova.conf override for the nova services on {} (profile {}).",
        node.hostname, node.profile
    );
    out.push_str(
        "\
# Generated by strata from the compiled fleet: do not edit; change the fleet spec.
# Kolla-Ansible merges it after config/nova.conf, which defines the alias.
",
    );
    let _ = writeln!(
        out,
        "# {} x {} ({}:{}), alias {}.",
        gpu.count, gpu.model, gpu.vendor_id, gpu.device_id, gpu.alias
    );
    let numa = fleet
        .profile(&node.profile)
        .and_then(|p| p.gpu.as_ref())
        .map(|g| g.numa.iter().map(|n| **n).collect::<Vec<u32>>())
        .unwrap_or_default();
    if !numa.is_empty() {
        let mut per_node: BTreeMap<u32, u32> = BTreeMap::new();
        for n in &numa {
            *per_node.entry(*n).or_default() += 1;
        }
        let layout: Vec<String> = per_node
            .iter()
            .map(|(node, count)| format!("{count} on NUMA node {node}"))
            .collect();
        let _ = writeln!(out, "# GPU NUMA layout: {}.", layout.join(", "));
    }
    if let Some(layout) = &node.layout {
        let _ = write!(
            out,
            "\
# Pinned, huge-page instances (the GPU flavors): per NUMA node, {cores} cores and
# their sibling threads stay with the host (cpu_shared_set) and the rest are pinned
# (cpu_dedicated_set); {host_gib} GiB per node stay outside 1 GiB pages. The kernel
# command line of this host (a MAAS tag's kernel_opts) must carry:
#   {kernel_opts}

[DEFAULT]
reserved_host_memory_mb = {reserved}

[compute]
cpu_shared_set = {shared}
cpu_dedicated_set = {dedicated}
",
            cores = strata_fleet::numa::HOST_CORES_PER_NODE,
            host_gib = strata_fleet::numa::HOST_MEMORY_GIB_PER_NODE,
            kernel_opts = layout.kernel_opts,
            reserved = layout.reserved_host_memory_mb,
            shared = strata_fleet::numa::cpu_ranges(&layout.shared),
            dedicated = strata_fleet::numa::cpu_ranges(&layout.dedicated),
        );
    }
    out.push_str("\n[pci]\n");
    if dc.openstack.unified_limits() {
        let _ = writeln!(
            out,
            "# The GPUs are Placement inventory of class {} (nova's default name), which the\n\
             # team GPU quotas (unified limits) count.\n\
             report_in_placement = true",
            strata_fleet::quota::pci_resource_class(&gpu.vendor_id, &gpu.device_id)
        );
    }
    let _ = writeln!(
        out,
        "device_spec = {}",
        json_object(&[
            ("vendor_id", &gpu.vendor_id.to_ascii_lowercase()),
            ("product_id", &gpu.device_id.to_ascii_lowercase()),
        ])
    );
    out
}
