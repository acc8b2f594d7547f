//! A machine's storage in MAAS before deploy: the software RAID arrays that
//! [`MachineStorage`] describes (the hardware profile's `raid`), through MAAS's
//! storage API. Curtin partitions, assembles and formats the deployed machine's disks
//! from this model.
//!
//! MAAS changes partitions and RAIDs only on a Ready machine (`api/partitions.py`,
//! `api/raid.py`: 409 otherwise), so this runs before the machine is allocated.
//! After commissioning MAAS has applied its default layout (flat, on the boot disk),
//! which holds the disks an array needs: when what MAAS holds differs from the design,
//! the layout is cleared (`set_storage_layout` `blank`) and built again: the boot disk
//! is the first member of the array mounted at `/`, with a 512 MiB EFI system
//! partition (fat32, `/boot/efi`) first; each member disk gets one partition that
//! fills what is left, the array is made of those partitions, then formatted and
//! mounted. Level-triggered: a crash between calls leaves a layout that differs, and
//! the next call clears and rebuilds it; a layout that matches is left alone.

use serde_json::Value;
use strata_plan::{MachineRaid, MachineStorage, ResourceId};

use super::MaasProvider;
use super::client::Form;
use super::netconfig::differences;
use super::wire::{BlockRef, EFI_MOUNT, Machine};
use crate::ProviderError;

/// Passes over a machine's storage before its step gives up on MAAS's transient
/// failures.
const STORAGE_PASSES: u32 = 6;

/// The EFI system partition's size, as MAAS's flat layout makes it.
const ESP_BYTES: u64 = 512 * 1024 * 1024;

/// Whether MAAS's storage for `m` differs from `want`, as `path: old → new` lines.
pub(super) fn storage_differences(m: &Machine, want: &MachineStorage) -> Vec<String> {
    differences(&want.summary(), &m.storage_summary())
}

/// The physical disk `name` of machine `sid`; refused (naming what commissioning
/// found) when the machine has none: the hardware profile does not match the host.
fn find_disk<'a>(
    disks: &'a [BlockRef],
    step: &ResourceId,
    sid: &str,
    name: &str,
) -> Result<&'a BlockRef, ProviderError> {
    disks
        .iter()
        .find(|d| d.kind == "physical" && d.name.as_deref() == Some(name))
        .ok_or_else(|| {
            let found: Vec<&str> = disks
                .iter()
                .filter(|d| d.kind == "physical")
                .filter_map(|d| d.name.as_deref())
                .collect();
            ProviderError::Refused(format!(
                "{step}: machine {sid} has no disk {name} (commissioning found {}); fix the hardware profile's disk names",
                if found.is_empty() {
                    "none".to_string()
                } else {
                    found.join(", ")
                }
            ))
        })
}

impl MaasProvider {
    async fn block_devices(&self, sid: &str) -> Result<Vec<BlockRef>, ProviderError> {
        Ok(self
            .client
            .get(&format!("nodes/{sid}/blockdevices/"), &[])
            .await?)
    }

    /// Configure `want` on machine `m`, which must be Ready; returns what was done
    /// (nothing when MAAS already holds the design).
    ///
    /// A pass that meets a transient or ambiguous failure (timeout, 5xx, 429) runs
    /// again after a pause from a fresh read of the machine, which shows a partial
    /// layout as different and rebuilds it.
    pub(super) async fn configure_storage(
        &self,
        step: &ResourceId,
        m: &Machine,
        want: &MachineStorage,
    ) -> Result<Vec<String>, ProviderError> {
        let sid = m.system_id.as_str();
        let mut diff = storage_differences(m, want);
        let mut done = Vec::new();
        let mut attempt = 0u32;
        while !diff.is_empty() {
            attempt += 1;
            match self.build_storage(step, sid, want, &mut done).await {
                Ok(()) => {}
                Err(e)
                    if attempt < STORAGE_PASSES
                        && (e.is_ambiguous()
                            || e.status().is_some_and(|s| s == 429 || s >= 500)) =>
                {
                    tracing::warn!(%step, attempt, error = %e, "configuring the machine's storage failed; reading it again");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                        .await;
                }
                Err(e) => return Err(e),
            }
            let now: Machine = self.client.get(&format!("machines/{sid}/"), &[]).await?;
            diff = storage_differences(&now, want);
            if !diff.is_empty() && attempt >= STORAGE_PASSES {
                return Err(ProviderError::Api(format!(
                    "{step}: after {attempt} passes MAAS's storage for {sid} still differs from the design: {}",
                    diff.join(", ")
                )));
            }
        }
        Ok(done)
    }

    /// One pass: clear the layout and build every array.
    async fn build_storage(
        &self,
        step: &ResourceId,
        sid: &str,
        want: &MachineStorage,
        done: &mut Vec<String>,
    ) -> Result<(), ProviderError> {
        let _: Value = self
            .client
            .post(
                &format!("machines/{sid}/"),
                Some("set_storage_layout"),
                &vec![("storage_layout".into(), "blank".into())],
                false,
            )
            .await?;
        done.push("cleared MAAS's default storage layout".into());
        let disks = self.block_devices(sid).await?;
        // Every member must exist before anything is built.
        for r in &want.raids {
            for name in &r.members {
                find_disk(&disks, step, sid, name)?;
            }
        }
        // The boot disk carries the bootloader and the EFI system partition (which
        // MAAS's default layout had and `blank` removed; MAAS adds none by itself):
        // the first member of the root array, its ESP before its member partition.
        if let Some(first) = want.boot_disk() {
            let d = find_disk(&disks, step, sid, first)?;
            self.client
                .post_ok(
                    &format!("nodes/{sid}/blockdevices/{}/", d.id),
                    "set_boot_disk",
                    &Vec::new(),
                    true,
                )
                .await?;
            let esp: BlockRef = self
                .client
                .post(
                    &format!("nodes/{sid}/blockdevices/{}/partitions/", d.id),
                    None,
                    &vec![
                        ("size".into(), ESP_BYTES.to_string()),
                        ("bootable".into(), "true".into()),
                    ],
                    false,
                )
                .await?;
            let part = format!("nodes/{sid}/blockdevices/{}/partition/{}", d.id, esp.id);
            let _: Value = self
                .client
                .post(
                    &part,
                    Some("format"),
                    &vec![
                        ("fstype".into(), "fat32".into()),
                        ("label".into(), "efi".into()),
                    ],
                    false,
                )
                .await?;
            let _: Value = self
                .client
                .post(
                    &part,
                    Some("mount"),
                    &vec![("mount_point".into(), EFI_MOUNT.into())],
                    false,
                )
                .await?;
            done.push(format!("boot disk {first} with an EFI system partition"));
        }
        for r in &want.raids {
            self.build_raid(step, sid, r, &disks, done).await?;
        }
        Ok(())
    }

    async fn build_raid(
        &self,
        step: &ResourceId,
        sid: &str,
        r: &MachineRaid,
        disks: &[BlockRef],
        done: &mut Vec<String>,
    ) -> Result<(), ProviderError> {
        let mut parts = Vec::new();
        for name in &r.members {
            let d = find_disk(disks, step, sid, name)?;
            // No size: the partition fills what MAAS leaves free on the disk.
            let part: BlockRef = self
                .client
                .post(
                    &format!("nodes/{sid}/blockdevices/{}/partitions/", d.id),
                    None,
                    &Vec::new(),
                    false,
                )
                .await?;
            parts.push(part.id);
        }
        let mut body: Form = vec![
            ("name".into(), r.name.clone()),
            ("level".into(), r.level.clone()),
        ];
        body.extend(
            parts
                .iter()
                .map(|p| ("partitions".to_string(), p.to_string())),
        );
        let made: Value = self
            .client
            .post(&format!("nodes/{sid}/raids/"), None, &body, false)
            .await?;
        done.push(format!("{} {} of {}", r.level, r.name, r.members.join("+")));
        let vid = match made["virtual_device"]["id"].as_u64() {
            Some(id) => id,
            None => self
                .block_devices(sid)
                .await?
                .into_iter()
                .find(|d| d.kind == "virtual" && d.name.as_deref() == Some(r.name.as_str()))
                .map(|d| d.id)
                .ok_or_else(|| {
                    ProviderError::Api(format!(
                        "{step}: MAAS made RAID {} on {sid} but lists no block device for it",
                        r.name
                    ))
                })?,
        };
        if let Some(fstype) = &r.fstype {
            let _: Value = self
                .client
                .post(
                    &format!("nodes/{sid}/blockdevices/{vid}/"),
                    Some("format"),
                    &vec![("fstype".into(), fstype.clone())],
                    false,
                )
                .await?;
            if let Some(mount) = &r.mount {
                let _: Value = self
                    .client
                    .post(
                        &format!("nodes/{sid}/blockdevices/{vid}/"),
                        Some("mount"),
                        &vec![("mount_point".into(), mount.clone())],
                        false,
                    )
                    .await?;
                done.push(format!("{} {fstype} on {mount}", r.name));
            } else {
                done.push(format!("{} {fstype}", r.name));
            }
        }
        Ok(())
    }
}
