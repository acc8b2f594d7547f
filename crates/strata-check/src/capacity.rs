//! Capacity and placement on the Proxmox clusters: every VM fits on at least one node
//! of its cluster, each cluster still holds its HA VMs with its largest node lost, and
//! an HA VM's disk is on storage another node can reach.

use strata_diagnostics::{Diagnostic, codes};
use strata_fleet::{Dc, Fleet, ProxmoxCluster, Vm};
use strata_spec::{Cpu, HardwareProfile, StorageKind};

/// What one node can give a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSize {
    /// Logical CPUs (sockets × cores × threads): the most vCPUs one VM may have.
    pub vcpus: u32,
    pub memory_mib: u64,
}

impl NodeSize {
    pub fn of(p: &HardwareProfile) -> Self {
        Self::from_parts(&p.cpu, p.memory_gib)
    }

    pub fn from_parts(cpu: &Cpu, memory_gib: u32) -> Self {
        NodeSize {
            vcpus: cpu
                .sockets
                .saturating_mul(cpu.cores_per_socket)
                .saturating_mul(cpu.threads_per_core.max(1)),
            memory_mib: u64::from(memory_gib) * 1024,
        }
    }

    pub fn holds(&self, vm: &Vm) -> bool {
        vm.cores <= self.vcpus && vm.memory_mib <= self.memory_mib
    }
}

/// Run every capacity rule.
pub fn check(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    for dc in &fleet.dcs {
        for c in &dc.proxmox {
            let nodes = node_sizes(fleet, dc, c);
            if nodes.is_empty() {
                continue; // conformance reports a cluster without nodes
            }
            let vms: Vec<&Vm> = dc.vms.iter().filter(|v| v.cluster == c.name).collect();
            ha_on_shared_storage(dc, c, &vms, out);
            vms_fit(dc, c, &nodes, &vms, out);
            // A VM that fits nowhere is reported once, not again as an HA shortfall.
            let placeable: Vec<&Vm> = vms
                .into_iter()
                .filter(|v| nodes.iter().any(|n| n.holds(v)))
                .collect();
            ha_survives_a_node_loss(dc, c, &nodes, &placeable, out);
        }
    }
}

/// Sizes of the cluster's nodes, from their hardware profiles.
fn node_sizes(fleet: &Fleet, dc: &Dc, c: &ProxmoxCluster) -> Vec<NodeSize> {
    c.nodes
        .iter()
        .filter_map(|n| dc.machines.iter().find(|m| m.hostname == n.hostname))
        .filter_map(|m| fleet.profile(&m.profile))
        .map(NodeSize::of)
        .collect()
}

/// S0406: a VM fits on at least one node of its cluster.
fn vms_fit(
    dc: &Dc,
    c: &ProxmoxCluster,
    nodes: &[NodeSize],
    vms: &[&Vm],
    out: &mut Vec<Diagnostic>,
) {
    let largest_cpu = nodes.iter().map(|n| n.vcpus).max().unwrap_or(0);
    let largest_mem = nodes.iter().map(|n| n.memory_mib).max().unwrap_or(0);
    for vm in vms {
        if nodes.iter().any(|n| n.holds(vm)) {
            continue;
        }
        out.push(
            Diagnostic::new(
                codes::S0406,
                format!(
                    "VM `{}` of `{}` needs {} vCPUs and {} MiB, but no node of cluster `{}` has that much (the largest have {largest_cpu} vCPUs, {largest_mem} MiB)",
                    vm.name, dc.name, vm.cores, vm.memory_mib, c.name
                ),
            )
            .at_opt(vm.span.or(c.span).or(dc.span))
            .expected(format!(
                "at most {largest_cpu} cores and {largest_mem} MiB, what one node of `{}` has",
                c.name
            ))
            .help("shrink the VM, or add a node with a larger hardware profile to the cluster"),
        );
    }
}

/// S0409: an HA-managed VM's disk is on storage every node reaches (Proxmox VE's HA
/// manager restarts a VM on another node, which must see its disk: pve-docs,
/// ha-manager "Requirements": shared storage, or ZFS with storage replication, which
/// the spec cannot declare yet).
fn ha_on_shared_storage(dc: &Dc, c: &ProxmoxCluster, vms: &[&Vm], out: &mut Vec<Diagnostic>) {
    let shared: Vec<&str> = c
        .storage
        .iter()
        .filter(|s| s.kind == StorageKind::Rbd)
        .map(|s| s.name.as_str())
        .collect();
    for vm in vms.iter().filter(|v| v.ha) {
        let Some(pool) = c.storage.iter().find(|s| s.name == vm.storage) else {
            continue; // an unknown pool is a reference error, reported by the compiler
        };
        if pool.kind == StorageKind::Rbd {
            continue;
        }
        let kind = match pool.kind {
            StorageKind::Zfspool => "a local ZFS pool",
            StorageKind::Lvmthin => "a local LVM-thin pool",
            StorageKind::Dir => "a local directory",
            StorageKind::Rbd => "Ceph RBD",
        };
        out.push(
            Diagnostic::new(
                codes::S0409,
                format!(
                    "VM `{}` of `{}` is HA-managed, but its disk is on `{}`, {kind}: when its node dies, no other node of cluster `{}` can start it",
                    vm.name, dc.name, pool.name, c.name
                ),
            )
            .at_opt(vm.storage_span.or(vm.span).or(c.span).or(dc.span))
            .expected(if shared.is_empty() {
                "shared storage (a `kind: rbd` pool) for HA-managed VMs".to_string()
            } else {
                format!(
                    "a shared pool: {}",
                    shared.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                )
            })
            .help("put the VM on shared storage, or make it not HA-managed (`ha: false`, and out of every HA rule)"),
        );
    }
}

/// S0407: losing the largest node leaves enough memory for every HA VM.
fn ha_survives_a_node_loss(
    dc: &Dc,
    c: &ProxmoxCluster,
    nodes: &[NodeSize],
    vms: &[&Vm],
    out: &mut Vec<Diagnostic>,
) {
    let ha: Vec<&&Vm> = vms.iter().filter(|v| v.ha).collect();
    let needed: u64 = ha.iter().map(|v| v.memory_mib).sum();
    let total: u64 = nodes.iter().map(|n| n.memory_mib).sum();
    let largest = nodes.iter().map(|n| n.memory_mib).max().unwrap_or(0);
    let left = total - largest;
    if ha.is_empty() || needed <= left {
        return;
    }
    let mut d = Diagnostic::new(
        codes::S0407,
        format!(
            "with its largest node lost, cluster `{}` of `{}` has {left} MiB left for {needed} MiB of HA VMs ({} VM(s))",
            c.name,
            dc.name,
            ha.len()
        ),
    )
    .at_opt(dc.span.or(c.span))
    .expected(format!("at least {needed} MiB on the surviving nodes"))
    .help("add a node to the cluster, or make fewer VMs HA-managed (`ha: false`, and out of every HA rule)");
    if let Some(s) = c.span {
        d = d.related(s, "the cluster");
    }
    out.push(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_size_counts_threads_and_gib() {
        let cpu = Cpu {
            model: "AMD EPYC 9354".into(),
            sockets: 2,
            cores_per_socket: 32,
            threads_per_core: 2,
        };
        let n = NodeSize::from_parts(&cpu, 768);
        assert_eq!(n.vcpus, 128);
        assert_eq!(n.memory_mib, 768 * 1024);
    }
}
