//! `strata twin`: run the simulated MAAS, Proxmox VE and OpenStack endpoints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use strata_fleet::Fleet;
use strata_spec::{DiskKind, MachineRole};
use strata_twin::{
    DcSeed, FaultSpec, SeedComputeHost, SeedController, SeedDisk, SeedGpu, SeedHardwareInfo,
    SeedMachine, SeedNic, SeedNicSpeed, SeedNumaNode, SeedStorage, TwinOptions,
};

use crate::output::outln;
use crate::pipeline::analyze;

#[derive(Debug, Args)]
pub struct TwinArgs {
    /// Number of simulated DCs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub dcs: u32,
    /// Address of the main listener (MAAS, OpenStack, admin API). Proxmox listens on
    /// the following ports (PORT+1, PORT+2, ...), with TLS; port 0 picks free ports.
    #[arg(long, default_value = "127.0.0.1:5240")]
    pub listen: SocketAddr,
    /// Seed each DC from this fleet spec: its machines are enlisted in MAAS (New),
    /// its Proxmox nodes and storages exist. The first --dcs DCs are simulated.
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// Generic enlisted machines per DC (without --fleet).
    #[arg(long, default_value_t = 8)]
    pub machines_per_dc: u32,
    /// Pre-existing VMs per DC that strata does not own (for scale tests).
    #[arg(long, default_value_t = 0)]
    pub vms_per_dc: u32,
    /// Per-request fault probabilities, e.g. "5xx=0.1,429=0.05,timeout=0.02,slow_task=0.1".
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Latency added to every request, in milliseconds (divided by --time-scale).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// How long MAAS's commissioning, testing, deploying, releasing and disk erasing
    /// take: fast (0.2–0.5 s, for tests and demos) or realistic (a physical server's
    /// minutes: commissioning with its tests about 10, deployment about 13, each
    /// machine off by up to ±25 %, fixed by --seed).
    #[arg(long, default_value = "fast", value_parser = ["fast", "realistic"])]
    pub maas_timing: String,
    /// Divide every MAAS phase duration and --latency-ms by N, so that hours of
    /// realistic MAAS work take minutes (a benchmark multiplies what it measures back).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub time_scale: u32,
    /// Load state from, and save it to, this file (on exit and on POST /_twin/save).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Write the endpoints file (and twin-ca.pem and clouds.yaml beside it).
    #[arg(long)]
    pub write_endpoints: Option<PathBuf>,
    /// Seed for fault injection (0 = random).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Make a fleet machine's hardware differ from its profile, as commissioning will
    /// report it: SERIAL=KIND with KIND one of gpu-x8 (a GPU trained at x8), gpu-gen4
    /// (a GPU at Gen4), missing-dimm (64 GiB less memory), nic-10g (the first NIC at
    /// 10G), old-bios, commissioning-fails. Repeatable. Needs --fleet.
    #[arg(long, value_name = "SERIAL=KIND")]
    pub hardware_fault: Vec<String>,
}

/// Hardware faults the twin can give a machine (see `--hardware-fault`).
pub const HARDWARE_FAULTS: &[&str] = &[
    "gpu-x8",
    "gpu-gen4",
    "missing-dimm",
    "nic-10g",
    "old-bios",
    "commissioning-fails",
];

/// Apply `SERIAL=KIND` faults to the seeds (an unknown serial or kind is an error).
pub fn apply_hardware_faults(seeds: &mut [DcSeed], faults: &[String]) -> Result<()> {
    for f in faults {
        let Some((serial, kind)) = f.split_once('=') else {
            bail!(
                "--hardware-fault {f}: write SERIAL=KIND (kinds: {})",
                HARDWARE_FAULTS.join(", ")
            );
        };
        let Some(m) = seeds
            .iter_mut()
            .flat_map(|d| d.machines.iter_mut())
            .find(|m| m.serial == serial)
        else {
            bail!("--hardware-fault {f}: no machine with serial {serial} in the simulated DCs");
        };
        match kind {
            "gpu-x8" | "gpu-gen4" => {
                let Some(g) = m.gpus.last_mut() else {
                    bail!("--hardware-fault {f}: machine {serial} has no GPU");
                };
                if kind == "gpu-x8" {
                    g.pcie_width = 8;
                } else {
                    g.pcie_gen = 4;
                }
            }
            "missing-dimm" => {
                m.memory_mib = m.memory_mib.saturating_sub(64 * 1024);
                let per_node = m.memory_mib / (m.numa_nodes.len() as u64).max(1);
                for n in &mut m.numa_nodes {
                    n.memory_mib = per_node;
                }
            }
            "nic-10g" => {
                let Some(n) = m.nic_speeds.first_mut() else {
                    bail!("--hardware-fault {f}: machine {serial} has no NIC");
                };
                n.speed_mbps = 10_000;
            }
            "old-bios" => m.hardware_info.mainboard_firmware_version = Some("0.9.0".into()),
            "commissioning-fails" => m.commissioning_fails = true,
            _ => bail!(
                "--hardware-fault {f}: unknown kind `{kind}` (kinds: {})",
                HARDWARE_FAULTS.join(", ")
            ),
        }
    }
    Ok(())
}

/// Each DC's Kolla configuration as `strata render` writes it under `<dc>/kolla/`
/// (the deploy host's `/etc/kolla/`), keyed by the path below that directory.
fn kolla_files(fleet: &Fleet) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut files = strata_render::kolla::render(fleet)?;
    files.extend(strata_render::nova_pci::render(fleet)?);
    let mut by_dc: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in files {
        if let Some((dc, rest)) = f.path.split_once("/kolla/") {
            by_dc
                .entry(dc.to_string())
                .or_default()
                .insert(rest.to_string(), f.content);
        }
    }
    Ok(by_dc)
}

/// A profile's GPUs as the hardware reports them, each on its NUMA node.
fn seed_gpus(g: &strata_spec::Gpu) -> Vec<SeedGpu> {
    (0..g.count)
        .map(|i| SeedGpu {
            model: g.model.clone(),
            vendor_id: g.vendor_id.clone(),
            device_id: g.device_id.clone(),
            pcie_gen: g.pcie_gen,
            pcie_width: g.pcie_width,
            numa_node: g.numa.get(i as usize).map(|n| **n).unwrap_or(0),
            ..SeedGpu::default()
        })
        .collect()
}

/// A profile's DMI facts: its BIOS vendor and version.
fn seed_dmi(p: &strata_spec::HardwareProfile) -> SeedHardwareInfo {
    SeedHardwareInfo {
        system_vendor: Some(p.bios.vendor.clone()),
        mainboard_vendor: Some(p.bios.vendor.clone()),
        mainboard_firmware_vendor: Some(p.bios.vendor.clone()),
        mainboard_firmware_version: Some(p.bios.version.clone()),
        ..SeedHardwareInfo::default()
    }
}

/// A profile's NUMA nodes: its CPUs as Linux numbers them, memory split evenly.
fn seed_numa(p: &strata_spec::HardwareProfile) -> Vec<SeedNumaNode> {
    let nodes = strata_fleet::numa::node_cpus(p);
    let per_node = u64::from(p.memory_gib) * 1024 / (nodes.len() as u64).max(1);
    nodes
        .into_iter()
        .enumerate()
        .map(|(i, cores)| SeedNumaNode {
            index: i as u32,
            memory_mib: per_node,
            cores,
        })
        .collect()
}

/// The DC's OpenStack compute hosts as libvirt would show them: the profile's CPUs per
/// NUMA node, memory, GPUs, and the 1 GiB pages of the kernel command line strata
/// gives GPU hosts.
fn compute_hosts(fleet: &Fleet, dc: &strata_fleet::Dc) -> Vec<SeedComputeHost> {
    dc.openstack
        .compute
        .iter()
        .filter_map(|c| {
            let p = fleet.profile(&c.profile)?;
            Some(SeedComputeHost {
                name: c.hostname.clone(),
                numa_cpus: strata_fleet::numa::node_cpus(p),
                memory_mib: u64::from(p.memory_gib) * 1024,
                local_gb: p.disks.iter().map(|d| d.size_gb).sum(),
                cpu_model: p.cpu.model.clone(),
                gpus: p.gpu.as_deref().map(seed_gpus).unwrap_or_default(),
                hugepages_1g: c.layout.as_ref().map_or(0, |l| u64::from(l.hugepages_1g)),
            })
        })
        .collect()
}

/// Seeds for the twin from a compiled fleet: each DC's inventory, Proxmox nodes and
/// storages, its OpenStack compute hosts, and its rendered Kolla configuration (which
/// the twin's region is configured from, as the real one is after a Kolla deploy).
pub fn seeds_from_fleet(fleet: &Fleet, dcs: usize, extra_vms: usize) -> Result<Vec<DcSeed>> {
    let mut kolla = kolla_files(fleet)?;
    Ok(fleet
        .dcs
        .iter()
        .take(dcs)
        .map(|dc| {
            let machines = dc
                .machines
                .iter()
                .map(|m| {
                    let p = fleet.profile(&m.profile);
                    SeedMachine {
                        serial: m.serial.clone(),
                        pxe_mac: m.pxe_mac.clone().unwrap_or_else(|| mac_for(&m.serial)),
                        cpu_count: p
                            .map(|p| {
                                p.cpu.sockets * p.cpu.cores_per_socket * p.cpu.threads_per_core
                            })
                            .unwrap_or(8),
                        memory_mib: p.map(|p| u64::from(p.memory_gib) * 1024).unwrap_or(65536),
                        storage_gb: p
                            .map(|p| p.disks.iter().map(|d| d.size_gb).sum())
                            .unwrap_or(480),
                        nics: p
                            .map(|p| p.nics.iter().map(|n| n.name.clone()).collect())
                            .unwrap_or_default(),
                        disks: p
                            .map(|p| {
                                p.disks
                                    .iter()
                                    .map(|d| SeedDisk {
                                        name: d.name.clone(),
                                        size_gb: d.size_gb,
                                        kind: match d.kind {
                                            DiskKind::Nvme => "nvme",
                                            DiskKind::Ssd => "ssd",
                                            DiskKind::Hdd => "hdd",
                                        }
                                        .to_string(),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        gpus: p
                            .and_then(|p| p.gpu.as_deref())
                            .map(seed_gpus)
                            .unwrap_or_default(),
                        zone: m.az.clone(),
                        running: m.running,
                        // A BMC with a known MAC takes its address from MAAS's DHCP
                        // (strata reserves it); one without is modelled only when
                        // its address is pinned, i.e. configured on the BMC by hand.
                        bmc_mac: m.bmc.mac.clone().or_else(|| {
                            m.bmc.pinned.then(|| mac_for(&format!("bmc:{}", m.serial)))
                        }),
                        bmc_address: m.bmc.pinned.then(|| m.bmc.address.to_string()),
                        // What commissioning reports is the profile's hardware: the
                        // CPU model, BIOS, NUMA layout and NIC speeds strata validates.
                        cpu_model: p.map(|p| p.cpu.model.clone()).unwrap_or_default(),
                        hardware_info: p.map(seed_dmi).unwrap_or_default(),
                        numa_nodes: p.map(seed_numa).unwrap_or_default(),
                        nic_speeds: p
                            .map(|p| {
                                p.nics
                                    .iter()
                                    .map(|n| SeedNicSpeed {
                                        nic: n.name.clone(),
                                        speed_mbps: u64::from(n.speed_gbps) * 1000,
                                        ..SeedNicSpeed::default()
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        ..SeedMachine::default()
                    }
                })
                .collect();
            let mut nodes: Vec<String> = dc
                .machines
                .iter()
                .filter(|m| m.role == MachineRole::Proxmox)
                .map(|m| m.hostname.clone())
                .collect();
            nodes.sort();
            let storages = dc
                .proxmox
                .first()
                .map(|c| {
                    c.storage
                        .iter()
                        .map(|s| SeedStorage {
                            name: s.name.clone(),
                            kind: format!("{:?}", s.kind).to_lowercase(),
                            content: s.content.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            // The custom images the fleet's roles use: uploaded to MAAS by the
            // operator before strata runs.
            let mut boot_images: Vec<String> = dc
                .machines
                .iter()
                .filter(|m| m.image.starts_with("custom/"))
                .map(|m| m.image.clone())
                .collect();
            boot_images.sort();
            boot_images.dedup();
            DcSeed {
                name: dc.name.clone(),
                machines,
                proxmox_nodes: nodes,
                proxmox_storages: storages,
                extra_vms,
                kolla_config: kolla.remove(&dc.name).unwrap_or_default(),
                compute_hosts: compute_hosts(fleet, dc),
                boot_images,
                controllers: maas_controllers(dc),
                // The teams' members, as the identity backend would have them.
                keystone_users: fleet
                    .teams
                    .iter()
                    .flat_map(|t| t.members.iter().cloned())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            }
        })
        .collect())
}

/// The DC's MAAS controllers as they register with MAAS: the region VMs first, then
/// the rack VMs, each with the interfaces the compiled fleet gives it (one virtio NIC
/// per VLAN, `eth<N>` in order, untagged inside the guest) and the default route on
/// the routed VLAN only, as its cloud-init configures it.
fn maas_controllers(dc: &strata_fleet::Dc) -> Vec<SeedController> {
    use strata_fleet::VmKind;
    let mut out = Vec::new();
    for (kind, rack) in [(VmKind::MaasRegion, false), (VmKind::MaasRack, true)] {
        let mut vms: Vec<&strata_fleet::Vm> = dc.vms.iter().filter(|v| v.kind == kind).collect();
        vms.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        for vm in vms {
            out.push(SeedController {
                hostname: vm.hostname.clone(),
                rack,
                interfaces: vm
                    .interfaces
                    .iter()
                    .map(|i| SeedNic {
                        name: i.device.clone(),
                        address: i.address.to_string(),
                        gateway: (i.vlan == strata_fleet::ROUTED_VLAN)
                            .then(|| i.gateway.to_string()),
                        vlan: None,
                    })
                    .collect(),
            });
        }
    }
    out
}

/// Generic seeds: `machines` enlisted machines per DC, three Proxmox nodes.
pub fn generic_seeds(dcs: u32, machines: u32, extra_vms: usize) -> Vec<DcSeed> {
    (0..dcs)
        .map(|i| {
            let (name, _) = crate::scaffold::site(i);
            DcSeed {
                machines: (1..=machines)
                    .map(|n| {
                        let serial = format!("{}M{n:05}", name.to_ascii_uppercase());
                        SeedMachine {
                            pxe_mac: mac_for(&serial),
                            serial,
                            cpu_count: 64,
                            memory_mib: 512 * 1024,
                            storage_gb: 960,
                            nics: vec!["ens1f0np0".into(), "ens1f1np1".into()],
                            gpus: Vec::new(),
                            zone: None,
                            ..SeedMachine::default()
                        }
                    })
                    .collect(),
                proxmox_nodes: (1..=3).map(|n| format!("{name}-pve{n}")).collect(),
                proxmox_storages: vec![SeedStorage {
                    name: "ceph-vm".into(),
                    kind: "rbd".into(),
                    content: vec!["images".into(), "rootdir".into()],
                }],
                extra_vms,
                boot_images: Vec::new(),
                keystone_users: Vec::new(),
                name,
                kolla_config: BTreeMap::new(),
                compute_hosts: Vec::new(),
                controllers: Vec::new(),
            }
        })
        .collect()
}

/// A stable locally administered MAC for a serial.
fn mac_for(serial: &str) -> String {
    let mut h: u32 = 2166136261;
    for b in serial.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(16777619);
    }
    let b = h.to_be_bytes();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
}

pub fn run(a: TwinArgs) -> Result<ExitCode> {
    let faults: FaultSpec = a
        .faults
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--faults: {e}"))?;
    let seeds = match &a.fleet {
        Some(dir) => {
            let an = analyze(dir, false)?;
            let Some(fleet) = an.fleet.as_ref().filter(|_| !an.has_errors()) else {
                crate::output::print_diagnostics(
                    &crate::Global {
                        format: crate::Format::Human,
                        color: crate::ColorChoice::Auto,
                    },
                    &an.diagnostics,
                    an.sources(),
                );
                bail!(
                    "the fleet in {} has errors; fix them first (strata validate)",
                    dir.display()
                );
            };
            if (a.dcs as usize) > fleet.dcs.len() {
                bail!("--dcs {} but the fleet has {} DCs", a.dcs, fleet.dcs.len());
            }
            let mut seeds = seeds_from_fleet(fleet, a.dcs as usize, a.vms_per_dc as usize)?;
            apply_hardware_faults(&mut seeds, &a.hardware_fault)?;
            seeds
        }
        None => {
            if !a.hardware_fault.is_empty() {
                bail!("--hardware-fault needs --fleet (it names machines of the fleet)");
            }
            generic_seeds(a.dcs, a.machines_per_dc, a.vms_per_dc as usize)
        }
    };
    let opts = TwinOptions {
        dcs: seeds,
        listen: a.listen,
        faults,
        latency_ms: a.latency_ms,
        state_file: a.state.clone(),
        seed: a.seed,
        timing: strata_twin::Timing {
            maas: a
                .maas_timing
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--maas-timing {e}"))?,
            scale: a.time_scale,
        },
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let twin = strata_twin::start(opts).await?;
        if let Some(p) = &a.write_endpoints {
            twin.write_endpoints(p)?;
        }
        print_endpoints(&twin.endpoints(), a.write_endpoints.as_deref())?;
        wait_for_signal().await;
        eprintln!("strata twin: shutting down");
        twin.shutdown().await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn print_endpoints(doc: &serde_json::Value, file: Option<&Path>) -> anyhow::Result<()> {
    outln!(
        "strata twin: {} DCs",
        doc["dcs"].as_array().map(Vec::len).unwrap_or(0)
    )?;
    for d in doc["dcs"].as_array().into_iter().flatten() {
        outln!(
            "  {:<6} MAAS {}  Proxmox {}  Keystone {}",
            d["name"].as_str().unwrap_or(""),
            d["maas"]["url"].as_str().unwrap_or(""),
            d["proxmox"]["url"].as_str().unwrap_or(""),
            d["openstack"]["auth_url"].as_str().unwrap_or("")
        )?;
    }
    outln!(
        "  admin API {}",
        doc["twin"]["admin"].as_str().unwrap_or("")
    )?;
    if let Some(f) = file {
        outln!(
            "  endpoints written to {} (with twin-ca.pem and clouds.yaml beside it)",
            f.display()
        )?;
    }
    Ok(())
}

/// Wait for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
