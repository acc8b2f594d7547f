//! MAAS's side of [`crate::platform`]: after every request (and whenever a platform
//! asks once a deployment is due, after completing the transitions that are due) MAAS
//! compares each machine's OS with what it last published — up when the machine is
//! Deployed and powered on — publishing a deployment that completed, a deployed
//! machine powered on again, and one powered off, released or erased. What a
//! machine is comes from what it was deployed with ([`crate::platform::role_of`]:
//! its user-data, its image, its `role-*` tag) and what joins is described from the
//! hardware MAAS knows of it.

use std::sync::Arc;

use super::Maas;
use super::model::{Machine, Phase, State, status as S};
use crate::platform::{Host, HostGpu, HostNuma, hugepages_1g, role_of};

impl Maas {
    /// Connect this MAAS to its DC's platforms: how to bring it up to date, and what
    /// already runs (published as nothing: it joined before the twin started).
    pub(super) fn connect_platforms(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        self.ctx.platform.connect_maas(Box::new(move || {
            if let Some(maas) = weak.upgrade() {
                maas.settle();
            }
        }));
        let inner = self.inner.lock();
        self.publish(&inner.st, true);
    }

    /// Publish what the last request changed (it completed what was due itself).
    pub(super) fn publish_now(&self) {
        let inner = self.inner.lock();
        self.publish(&inner.st, false);
    }

    /// Complete the transitions that are due and publish what they changed (for a
    /// platform asking while a deployment is due).
    pub(super) fn settle(&self) {
        let mut inner = self.inner.lock();
        self.advance(&mut inner);
        self.publish(&inner.st, false);
    }

    /// Tell the platforms the OS state of every machine (see the module doc), and
    /// when the next deployment completes.
    pub(super) fn publish(&self, st: &State, quiet: bool) {
        let bus = &self.ctx.platform;
        let now = self.now_ms();
        let mut next_due = u64::MAX;
        for m in st.machines.values() {
            if let Some(p) = &m.pending
                && p.phase == Phase::Deploying
            {
                next_due = next_due.min(p.due_ms);
            }
            let up = m.status == S::DEPLOYED && m.power_on;
            let install = m.installation.as_ref().map(|s| s.id);
            bus.observe(&m.system_id, up, install, now, quiet, || host_of(st, m));
        }
        bus.set_next_due(next_due);
    }
}

/// A deployed machine as the platforms see it.
fn host_of(st: &State, m: &Machine) -> Host {
    let (role, role_from) = role_of(
        m.user_data.as_deref(),
        &m.osystem,
        &m.distro_series,
        &m.tags,
    )
    .unwrap_or_default();
    let hw = m.reported.as_ref().unwrap_or(&m.actual);
    let domain = st
        .domains
        .get(&m.domain_id)
        .map(|d| d.name.as_str())
        .unwrap_or("maas");
    let address = m
        .interfaces
        .iter()
        .flat_map(|i| i.links.iter())
        .find_map(|l| l.ip_address.clone());
    let gb = |bytes: u64| bytes / 1_000_000_000;
    Host {
        system_id: m.system_id.clone(),
        hostname: m.hostname.clone(),
        fqdn: format!("{}.{domain}", m.hostname),
        role,
        role_from: role_from.to_string(),
        address,
        cpu_count: hw.cpu_count,
        cpu_model: hw.cpu_model.clone(),
        memory_mib: hw.memory_mib,
        storage_gb: gb(hw.disks.iter().map(|d| d.size_bytes).sum()),
        boot_disk_gb: gb(hw.disks.first().map_or(0, |d| d.size_bytes)),
        numa: hw
            .numa_layout()
            .into_iter()
            .map(|n| HostNuma {
                index: n.index,
                cpus: n.cores,
                memory_mib: n.memory_mib,
            })
            .collect(),
        gpus: hw
            .gpus
            .iter()
            .map(|g| HostGpu {
                vendor_id: g.vendor_id.to_ascii_lowercase(),
                product_id: g.product_id.to_ascii_lowercase(),
                pci_address: g.pci_address.clone(),
                numa_node: g.numa_node,
            })
            .collect(),
        hugepages_1g: hugepages_1g(&m.deployed_kernel_opts),
    }
}
