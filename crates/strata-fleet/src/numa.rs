//! How a GPU compute host is laid out for pinned, huge-page instances, and how a GPU
//! flavor's NUMA topology fits it. The renderers (nova-compute's per-host override, the
//! kernel command line), the compiler (a flavor's `hw:numa_nodes`) and the checks (a
//! flavor no host cell can hold) all read it from here, so they agree.
//!
//! The layout follows what nova needs (nova `nova/virt/hardware.py`
//! `numa_fit_instance_to_host`): each instance NUMA node must fit one host NUMA cell,
//! with its vCPUs pinned to free CPUs of the host's `cpu_dedicated_set` in that cell
//! and its memory in free 1 GiB pages of that cell. Per host NUMA node, strata keeps
//! [`HOST_CORES_PER_NODE`] cores (both threads) for the host (`cpu_shared_set`) and
//! [`HOST_MEMORY_GIB_PER_NODE`] GiB out of huge pages; the rest is for instances.
//!
//! Invariant: pure functions of the hardware profile.

use serde::Serialize;
use strata_spec::HardwareProfile;

/// Cores per NUMA node (with their sibling threads) kept for the host's own work.
pub const HOST_CORES_PER_NODE: u32 = 2;
/// Memory per NUMA node kept out of huge pages, for the host.
pub const HOST_MEMORY_GIB_PER_NODE: u32 = 64;

/// A GPU host's layout for pinned, huge-page instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostLayout {
    /// One per NUMA node, in node order.
    pub nodes: Vec<NodeLayout>,
    /// `cpu_shared_set`: the host's cores and their siblings.
    pub shared: Vec<u32>,
    /// `cpu_dedicated_set`: everything else.
    pub dedicated: Vec<u32>,
    /// 1 GiB pages the kernel sets aside (`hugepages=` on its command line).
    pub hugepages_1g: u32,
    /// nova's `reserved_host_memory_mb`: the memory not in huge pages.
    pub reserved_host_memory_mb: u64,
    /// The kernel command line the host needs: IOMMU on in pass-through mode (for
    /// the GPUs) and the 1 GiB pages.
    pub kernel_opts: String,
}

/// One NUMA node of a [`HostLayout`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeLayout {
    pub node: u32,
    /// Dedicated (pinnable) CPUs in the node.
    pub dedicated_cpus: u32,
    /// 1 GiB pages in the node.
    pub hugepages_1g: u32,
    /// GPUs attached to the node (0 on every node when the profile does not say).
    pub gpus: u32,
}

/// The layout of a host with this profile; `None` when the profile has no NUMA node or
/// too few cores per node to keep any for instances.
///
/// CPUs are numbered as Linux numbers them on x86: every core's first thread, socket
/// by socket, then the second threads in the same order; a node holds a contiguous
/// block of cores.
/// The CPU ids of each NUMA node of a host with this profile, numbered as Linux
/// numbers them on x86: every core's first thread, socket by socket, then the second
/// threads in the same order; a node holds a contiguous block of cores. Empty when the
/// cores do not divide evenly over the nodes.
pub fn node_cpus(p: &HardwareProfile) -> Vec<Vec<u32>> {
    let nodes = p.numa_nodes;
    let cores = p.cpu.sockets * p.cpu.cores_per_socket;
    if nodes == 0 || !cores.is_multiple_of(nodes) {
        return Vec::new();
    }
    let per_node = cores / nodes;
    (0..nodes)
        .map(|n| {
            let mut cpus: Vec<u32> = (0..p.cpu.threads_per_core.max(1))
                .flat_map(|t| (0..per_node).map(move |c| t * cores + n * per_node + c))
                .collect();
            cpus.sort_unstable();
            cpus
        })
        .collect()
}

pub fn host_layout(p: &HardwareProfile) -> Option<HostLayout> {
    let nodes = p.numa_nodes;
    let cores = p.cpu.sockets * p.cpu.cores_per_socket;
    if nodes == 0 || !cores.is_multiple_of(nodes) {
        return None;
    }
    let per_node = cores / nodes;
    if per_node <= HOST_CORES_PER_NODE {
        return None;
    }
    let threads = p.cpu.threads_per_core.max(1);
    let mut shared = Vec::new();
    let mut dedicated = Vec::new();
    for t in 0..threads {
        for n in 0..nodes {
            for c in 0..per_node {
                let id = t * cores + n * per_node + c;
                if c < HOST_CORES_PER_NODE {
                    shared.push(id);
                } else {
                    dedicated.push(id);
                }
            }
        }
    }
    shared.sort_unstable();
    dedicated.sort_unstable();
    let memory_per_node = p.memory_gib / nodes;
    let pages_per_node = memory_per_node.saturating_sub(HOST_MEMORY_GIB_PER_NODE);
    let gpus_on = |n: u32| {
        p.gpu
            .as_ref()
            .map_or(0, |g| g.numa.iter().filter(|x| ***x == n).count() as u32)
    };
    let layout_nodes: Vec<NodeLayout> = (0..nodes)
        .map(|n| NodeLayout {
            node: n,
            dedicated_cpus: (per_node - HOST_CORES_PER_NODE) * threads,
            hugepages_1g: pages_per_node,
            gpus: gpus_on(n),
        })
        .collect();
    let hugepages_1g = pages_per_node * nodes;
    let iommu = if p.cpu.model.to_ascii_lowercase().contains("amd") {
        "amd_iommu=on"
    } else {
        "intel_iommu=on"
    };
    Some(HostLayout {
        nodes: layout_nodes,
        shared,
        dedicated,
        hugepages_1g,
        reserved_host_memory_mb: u64::from(p.memory_gib - hugepages_1g) * 1024,
        kernel_opts: format!(
            "{iommu} iommu=pt default_hugepagesz=1G hugepagesz=1G hugepages={hugepages_1g}"
        ),
    })
}

/// The fewest instance NUMA nodes (`hw:numa_nodes`) a pinned, huge-page flavor of
/// `vcpus`, `ram_mib` and `gpus` needs on this layout: its vCPUs, memory and GPUs split
/// evenly over that many distinct host nodes, each share fitting one node. `None` when
/// no split fits (nova would answer NoValidHost for every boot).
pub fn flavor_numa_nodes(layout: &HostLayout, vcpus: u32, ram_mib: u64, gpus: u32) -> Option<u32> {
    let count = layout.nodes.len() as u32;
    (1..=count).find(|&n| {
        if !vcpus.is_multiple_of(n)
            || !ram_mib.is_multiple_of(u64::from(n))
            || !gpus.is_multiple_of(n)
        {
            return false;
        }
        let (cpus, pages, per_gpus) = (vcpus / n, ram_mib / u64::from(n), gpus / n);
        let pages = pages.div_ceil(1024);
        // GPUs count only where the profile says which node each is on.
        let placed = layout.nodes.iter().any(|node| node.gpus > 0);
        // The n nodes with the most room: every node must hold one share.
        let fitting = layout
            .nodes
            .iter()
            .filter(|node| {
                node.dedicated_cpus >= cpus
                    && u64::from(node.hugepages_1g) >= pages
                    && (!placed || node.gpus >= per_gpus)
            })
            .count() as u32;
        fitting >= n
    })
}

/// A CPU list in nova's range syntax (`0-1,56-57`).
pub fn cpu_ranges(cpus: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ranges_collapse_runs() {
        assert_eq!(cpu_ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(cpu_ranges(&[]), "");
    }
}
