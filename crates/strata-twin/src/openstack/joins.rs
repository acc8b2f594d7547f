//! Compute hosts joining and leaving the region as their machines come and go
//! ([`crate::platform`]).
//!
//! - A machine MAAS deployed with an OpenStack compute role joins as its nova-compute
//!   does on first start: a `nova-compute` service (`/os-services`, enabled and up), a
//!   compute node (`/os-hypervisors`, named after the machine's FQDN, as libvirt
//!   reports it) with the machine's CPUs, memory, boot disk, NUMA cells (1 GiB pages
//!   from the kernel command line it booted with) and GPUs as PCI devices, and the
//!   node's Placement resource provider (same name and UUID) with VCPU, MEMORY_MB
//!   (512 reserved) and DISK_GB, and — as the region's Kolla files configure the host
//!   (`kolla::configure_new_host`: its device spec, pinning sets and the region's PCI
//!   aliases) — PCPU and one `CUSTOM_PCI_<VENDOR>_<PRODUCT>` (or the alias's
//!   `resource_class`) inventory counting the GPUs the device spec lets nova pass
//!   through, on the compute node's provider: the model the rest of the twin
//!   schedules GPU flavors with. A host whose nova-compute would refuse to start on
//!   that configuration does not join (`join-failed`). A host whose service record
//!   exists already (reinstalled without being deleted) reports up again.
//! - A host whose machine was powered off, released or erased stops sending
//!   heartbeats: its service (and hypervisor) is `down`, whatever `forced_down` says,
//!   its instances stay as they were, nothing is removed; powered on again, it is up.
//!
//! Every outcome is in the DC's event log.

use std::collections::BTreeMap;

use super::Os;
use super::model::{ComputeConf, ComputeHost, NumaCell, PciDevice, ResourceProvider, State};
use super::seed::{host_traits, inv};
use crate::platform::{Change, Event, Host, Platform};

impl Os {
    /// Apply what MAAS published about the DC's machines (asking MAAS first when a
    /// deployment is due).
    pub(crate) fn platform_events(&self, st: &mut State) {
        let bus = &self.ctx.platform;
        bus.pump(self.ctx.shared.clock.now_ms());
        for ev in bus.take(Platform::Openstack) {
            self.apply_machine(st, ev);
        }
    }

    fn apply_machine(&self, st: &mut State, ev: Event) {
        let h = &ev.host;
        let at = ev.at_ms as i64;
        let idx = st.hosts.iter().position(|c| c.host == h.hostname);
        let (what, detail) = match (ev.change, idx) {
            (Change::Deployed, None) => match self.join(st, h, at) {
                Ok(detail) => ("joined", detail),
                Err(e) => ("join-failed", format!("nova-compute does not start: {e}")),
            },
            (Change::Deployed | Change::PoweredOn, Some(i)) => {
                let c = &mut st.hosts[i];
                c.powered_off = false;
                c.started_ms = at;
                if !c.forced_down {
                    c.state = "up".into();
                }
                let what = if ev.change == Change::Deployed {
                    "rejoined"
                } else {
                    "up"
                };
                (
                    what,
                    format!(
                        "nova-compute on {} reports to its service record again ({})",
                        c.host, c.state
                    ),
                )
            }
            (Change::PoweredOff, Some(i)) => {
                let c = &mut st.hosts[i];
                c.powered_off = true;
                c.state = "down".into();
                (
                    "down",
                    format!(
                        "nova-compute on {} stopped reporting: service down, still registered",
                        c.host
                    ),
                )
            }
            (_, None) => (
                "ignored",
                format!("no nova-compute service on {}", h.hostname),
            ),
        };
        self.ctx
            .platform
            .record(ev.at_ms, Platform::Openstack, what, h, &detail);
    }

    /// nova-compute's first start on a machine: its service, compute node and
    /// resource provider.
    fn join(&self, st: &mut State, h: &Host, at: i64) -> Result<String, String> {
        let uuid = self.uuid();
        let n = st.hosts.len();
        let octet = 20 + (self.ctx.index % 200);
        let vcpus = i64::from(if h.cpu_count == 0 { 64 } else { h.cpu_count });
        let memory_mb = i64::try_from(h.memory_mib).unwrap_or(i64::MAX);
        let local_gb = i64::try_from(if h.boot_disk_gb == 0 {
            h.storage_gb
        } else {
            h.boot_disk_gb
        })
        .unwrap_or(i64::MAX);
        let cells = h.numa.len().max(1) as u64;
        let numa_cells: Vec<NumaCell> = if h.numa.is_empty() {
            super::seed::numa_cells(vcpus, memory_mb, 1)
        } else {
            h.numa
                .iter()
                .map(|c| NumaCell {
                    id: c.index,
                    cpus: c.cpus.clone(),
                    memory_mb: i64::try_from(c.memory_mib).unwrap_or(i64::MAX),
                    pages_1g: i64::try_from(h.hugepages_1g / cells).unwrap_or(0),
                })
                .collect()
        };
        let pci: Vec<PciDevice> = h
            .gpus
            .iter()
            .enumerate()
            .map(|(i, g)| PciDevice {
                address: if g.pci_address.is_empty() {
                    format!("0000:{:02x}:00.0", 0x18 + 0x10 * i)
                } else {
                    g.pci_address.clone()
                },
                vendor_id: g.vendor_id.clone(),
                product_id: g.product_id.clone(),
                numa_node: g.numa_node,
                server: None,
            })
            .collect();
        let host = ComputeHost {
            id: st.hosts.iter().map(|c| c.id).max().unwrap_or(0) + 1,
            // 1 and 2 are the controller's scheduler and conductor.
            service_id: st
                .hosts
                .iter()
                .map(|c| c.service_id)
                .max()
                .unwrap_or(2)
                .max(2)
                + 1,
            uuid: uuid.clone(),
            service_uuid: self.uuid(),
            host: h.hostname.clone(),
            hypervisor_hostname: h.fqdn.clone(),
            host_ip: h
                .address
                .clone()
                .unwrap_or_else(|| format!("10.{octet}.0.{}", 11 + n)),
            vcpus,
            memory_mb,
            local_gb,
            cpu_model: h.cpu_model.clone(),
            az: "nova".into(),
            status: "enabled".into(),
            state: "up".into(),
            disabled_reason: None,
            forced_down: false,
            powered_off: false,
            pci,
            started_ms: at,
            numa_cells,
            conf: ComputeConf::default(),
        };
        let mut inventories = BTreeMap::new();
        inventories.insert("VCPU".to_string(), inv(vcpus, 0, 4.0, vcpus));
        inventories.insert("MEMORY_MB".to_string(), inv(memory_mb, 512, 1.0, memory_mb));
        inventories.insert("DISK_GB".to_string(), inv(local_gb, 0, 1.0, local_gb));
        let mut rp = ResourceProvider {
            uuid: uuid.clone(),
            name: h.fqdn.clone(),
            generation: 1,
            parent: None,
            root: uuid.clone(),
            inventories,
            traits: host_traits(!host.pci.is_empty()),
            aggregates: vec![],
            updated_ms: at,
        };
        let files = st
            .kolla_files
            .clone()
            .unwrap_or_else(|| self.ctx.seed.kolla_config.clone());
        let host = super::kolla::configure_new_host(st, &files, &host, &mut rp)?;
        let classes: Vec<String> = rp
            .inventories
            .iter()
            .map(|(rc, i)| format!("{rc}={}", i.total))
            .collect();
        let detail = format!(
            "nova-compute on {} registered its service, compute node {} and resource provider {} ({})",
            host.host,
            host.hypervisor_hostname,
            uuid,
            classes.join(", ")
        );
        st.hosts.push(host);
        st.rps.push(rp);
        Ok(detail)
    }
}
