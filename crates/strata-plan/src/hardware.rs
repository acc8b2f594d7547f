//! Hardware validation: what commissioning must find on a machine (its hardware
//! profile, [`HardwareExpectation`]) against what it found ([`HardwareFacts`], read from
//! MAAS by the provider). Pure. A machine with any [`Deviation`] is quarantined, never
//! deployed: a GPU that trained its link at x8 or Gen4, a missing DIMM, a 10G NIC in a
//! 25G slot or an old BIOS gives a host that works, slowly or differently from its
//! peers — the snowflake strata exists to prevent.

use serde::{Deserialize, Serialize};

/// Memory may read this much below or above the profile (firmware reserves some; a
/// DIMM is far more).
pub const MEMORY_TOLERANCE: f64 = 0.03;
/// Disk sizes are sold in GB and read in bytes; this covers rounding, not a wrong model.
pub const DISK_TOLERANCE: f64 = 0.02;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardwareExpectation {
    pub profile: String,
    pub cpu_model: String,
    /// Logical CPUs: sockets × cores × threads.
    pub cpu_threads: u32,
    pub memory_mib: u64,
    pub numa_nodes: u32,
    pub disks: Vec<ExpectedDisk>,
    pub nics: Vec<ExpectedNic>,
    pub bios_vendor: String,
    pub bios_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<ExpectedGpus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedDisk {
    pub name: String,
    pub size_gb: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedNic {
    pub name: String,
    pub speed_mbps: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedGpus {
    pub model: String,
    pub count: u32,
    /// PCI ids, lower-case hex without `0x`.
    pub vendor_id: String,
    pub device_id: String,
    pub pcie_gen: u8,
    pub pcie_width: u8,
    /// The NUMA node of each GPU in PCI address order (empty: not checked).
    pub numa: Vec<u32>,
}

/// What commissioning found, as MAAS reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardwareFacts {
    pub cpu_model: String,
    pub cpu_threads: u32,
    pub memory_mib: u64,
    pub numa_nodes: u32,
    /// Physical disks: kernel name → size in bytes.
    pub disks: Vec<(String, u64)>,
    /// Physical NICs: name → negotiated (else maximum) speed in Mbit/s.
    pub nics: Vec<(String, u64)>,
    pub bios_vendor: String,
    pub bios_version: String,
    /// PCI devices with the expected GPU's vendor and device ids.
    pub gpus: Vec<FoundGpu>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundGpu {
    pub pci_address: String,
    pub vendor_id: String,
    pub device_id: String,
    pub numa_node: Option<u32>,
    /// The link's current generation and width (from the PCIe link commissioning
    /// script); `None` when it did not report.
    pub link_gen: Option<u8>,
    pub link_width: Option<u8>,
}

/// One way the machine differs from its profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deviation {
    /// What differs (`memory`, `gpu 0000:1b:00.0 link`, `nic ens1f0np0 speed`).
    pub what: String,
    pub expected: String,
    pub found: String,
}

impl std::fmt::Display for Deviation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: expected {}, found {}",
            self.what, self.expected, self.found
        )
    }
}

fn dev(what: impl Into<String>, expected: impl ToString, found: impl ToString) -> Deviation {
    Deviation {
        what: what.into(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

fn within(found: f64, expected: f64, tolerance: f64) -> bool {
    (found - expected).abs() <= expected * tolerance
}

fn speed(mbps: u64) -> String {
    if mbps == 0 {
        "no link".to_string()
    } else if mbps >= 1000 && mbps.is_multiple_of(1000) {
        format!("{}G", mbps / 1000)
    } else {
        format!("{mbps}M")
    }
}

impl HardwareExpectation {
    /// What a machine bought to `profile` must report.
    pub fn of(profile: &strata_spec::HardwareProfile) -> HardwareExpectation {
        HardwareExpectation {
            profile: profile.name.to_string(),
            cpu_model: profile.cpu.model.clone(),
            cpu_threads: profile.cpu.sockets
                * profile.cpu.cores_per_socket
                * profile.cpu.threads_per_core,
            memory_mib: u64::from(profile.memory_gib) * 1024,
            numa_nodes: profile.numa_nodes,
            disks: profile
                .disks
                .iter()
                .map(|d| ExpectedDisk {
                    name: d.name.clone(),
                    size_gb: d.size_gb,
                })
                .collect(),
            nics: profile
                .nics
                .iter()
                .map(|n| ExpectedNic {
                    name: n.name.clone(),
                    speed_mbps: u64::from(n.speed_gbps) * 1000,
                })
                .collect(),
            bios_vendor: profile.bios.vendor.clone(),
            bios_version: profile.bios.version.clone(),
            gpus: profile.gpu.as_ref().map(|g| ExpectedGpus {
                model: g.model.clone(),
                count: g.count,
                vendor_id: g.vendor_id.to_ascii_lowercase(),
                device_id: g.device_id.to_ascii_lowercase(),
                pcie_gen: g.pcie_gen,
                pcie_width: g.pcie_width,
                numa: g.numa.iter().map(|n| n.value).collect(),
            }),
        }
    }
}

/// Every way `facts` differ from `want`, in a stable order.
pub fn validate(want: &HardwareExpectation, facts: &HardwareFacts) -> Vec<Deviation> {
    let mut out = Vec::new();
    if !facts.cpu_model.contains(&want.cpu_model) {
        out.push(dev("cpu model", &want.cpu_model, &facts.cpu_model));
    }
    if facts.cpu_threads != want.cpu_threads {
        out.push(dev(
            "cpu count",
            format!("{} logical CPUs", want.cpu_threads),
            format!("{} logical CPUs", facts.cpu_threads),
        ));
    }
    if !within(
        facts.memory_mib as f64,
        want.memory_mib as f64,
        MEMORY_TOLERANCE,
    ) {
        out.push(dev(
            "memory",
            format!("{} MiB (±3%)", want.memory_mib),
            format!("{} MiB", facts.memory_mib),
        ));
    }
    if facts.numa_nodes != want.numa_nodes {
        out.push(dev("numa nodes", want.numa_nodes, facts.numa_nodes));
    }
    for d in &want.disks {
        match facts.disks.iter().find(|(n, _)| *n == d.name) {
            None => out.push(dev(
                format!("disk {}", d.name),
                format!("{} GB", d.size_gb),
                "missing",
            )),
            Some((_, bytes)) => {
                let gb = *bytes as f64 / 1e9;
                if !within(gb, d.size_gb as f64, DISK_TOLERANCE) {
                    out.push(dev(
                        format!("disk {}", d.name),
                        format!("{} GB", d.size_gb),
                        format!("{gb:.0} GB"),
                    ));
                }
            }
        }
    }
    for n in &want.nics {
        match facts.nics.iter().find(|(name, _)| *name == n.name) {
            None => out.push(dev(
                format!("nic {}", n.name),
                speed(n.speed_mbps),
                "missing",
            )),
            Some((_, s)) if *s != n.speed_mbps => out.push(dev(
                format!("nic {} speed", n.name),
                speed(n.speed_mbps),
                speed(*s),
            )),
            Some(_) => {}
        }
    }
    if facts.bios_version != want.bios_version {
        out.push(dev(
            "bios version",
            format!("{} {}", want.bios_vendor, want.bios_version),
            format!("{} {}", facts.bios_vendor, facts.bios_version),
        ));
    }
    match &want.gpus {
        None => {}
        Some(g) => {
            let mut found: Vec<&FoundGpu> = facts
                .gpus
                .iter()
                .filter(|f| {
                    f.vendor_id.eq_ignore_ascii_case(&g.vendor_id)
                        && f.device_id.eq_ignore_ascii_case(&g.device_id)
                })
                .collect();
            found.sort_by(|a, b| a.pci_address.cmp(&b.pci_address));
            if found.len() != g.count as usize {
                out.push(dev(
                    "gpu count",
                    format!(
                        "{} × {} ({}:{})",
                        g.count, g.model, g.vendor_id, g.device_id
                    ),
                    found.len(),
                ));
            }
            for (i, f) in found.iter().enumerate() {
                let at = format!("gpu {}", f.pci_address);
                match (f.link_gen, f.link_width) {
                    (Some(gen_), Some(width)) => {
                        if gen_ != g.pcie_gen || width != g.pcie_width {
                            out.push(dev(
                                format!("{at} link"),
                                format!("PCIe Gen{} x{}", g.pcie_gen, g.pcie_width),
                                format!("PCIe Gen{gen_} x{width}"),
                            ));
                        }
                    }
                    _ => out.push(dev(
                        format!("{at} link"),
                        format!("PCIe Gen{} x{}", g.pcie_gen, g.pcie_width),
                        "not reported (did the PCIe link commissioning script run?)",
                    )),
                }
                if let Some(want_node) = g.numa.get(i)
                    && f.numa_node != Some(*want_node)
                {
                    out.push(dev(
                        format!("{at} numa node"),
                        want_node,
                        f.numa_node.map_or("unknown".to_string(), |n| n.to_string()),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want() -> HardwareExpectation {
        HardwareExpectation {
            profile: "gpu-h100".into(),
            cpu_model: "Intel Xeon Platinum 8480+".into(),
            cpu_threads: 224,
            memory_mib: 2048 * 1024,
            numa_nodes: 2,
            disks: vec![ExpectedDisk {
                name: "nvme0n1".into(),
                size_gb: 3840,
            }],
            nics: vec![ExpectedNic {
                name: "ens1f0np0".into(),
                speed_mbps: 100_000,
            }],
            bios_vendor: "Supermicro".into(),
            bios_version: "2.1a".into(),
            gpus: Some(ExpectedGpus {
                model: "NVIDIA H100".into(),
                count: 2,
                vendor_id: "10de".into(),
                device_id: "2330".into(),
                pcie_gen: 5,
                pcie_width: 16,
                numa: vec![0, 1],
            }),
        }
    }

    fn facts() -> HardwareFacts {
        HardwareFacts {
            cpu_model: "Intel(R) Xeon(R) Intel Xeon Platinum 8480+".into(),
            cpu_threads: 224,
            memory_mib: 2048 * 1024 - 20_000,
            numa_nodes: 2,
            disks: vec![("nvme0n1".into(), 3_840_000_000_000)],
            nics: vec![("ens1f0np0".into(), 100_000)],
            bios_vendor: "Supermicro".into(),
            bios_version: "2.1a".into(),
            gpus: ["0000:1b:00.0", "0000:9b:00.0"]
                .iter()
                .enumerate()
                .map(|(i, a)| FoundGpu {
                    pci_address: (*a).into(),
                    vendor_id: "10DE".into(),
                    device_id: "2330".into(),
                    numa_node: Some(i as u32),
                    link_gen: Some(5),
                    link_width: Some(16),
                })
                .collect(),
        }
    }

    #[test]
    fn a_machine_built_to_its_profile_passes() {
        assert_eq!(validate(&want(), &facts()), vec![]);
    }

    #[test]
    fn each_deviation_is_named_with_what_was_expected_and_found() {
        let mut f = facts();
        f.memory_mib -= 64 * 1024; // a missing DIMM
        f.nics[0].1 = 10_000; // a 10G link
        f.bios_version = "1.4".into();
        f.gpus[1].link_width = Some(8); // trained at x8
        f.gpus[0].link_gen = Some(4);
        let d: Vec<String> = validate(&want(), &f)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            d,
            [
                "memory: expected 2097152 MiB (±3%), found 2011616 MiB",
                "nic ens1f0np0 speed: expected 100G, found 10G",
                "bios version: expected Supermicro 2.1a, found Supermicro 1.4",
                "gpu 0000:1b:00.0 link: expected PCIe Gen5 x16, found PCIe Gen4 x16",
                "gpu 0000:9b:00.0 link: expected PCIe Gen5 x16, found PCIe Gen5 x8",
            ]
        );
    }

    #[test]
    fn missing_parts_and_a_gpu_on_the_wrong_node_are_deviations() {
        let mut f = facts();
        f.gpus.pop();
        f.disks.clear();
        f.gpus[0].numa_node = Some(1);
        f.gpus[0].link_gen = None;
        let d: Vec<String> = validate(&want(), &f)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(
            d[0].starts_with("disk nvme0n1: expected 3840 GB, found missing"),
            "{d:?}"
        );
        assert!(
            d[1].starts_with("gpu count: expected 2 × NVIDIA H100"),
            "{d:?}"
        );
        assert!(d[2].contains("not reported"), "{d:?}");
        assert_eq!(d[3], "gpu 0000:1b:00.0 numa node: expected 0, found 1");
    }
}
