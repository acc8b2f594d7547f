//! A machine's storage as MAAS 3.5 models it: block devices (the reported disks and
//! the virtual devices of RAIDs), GPT partition tables, partitions, RAIDs and
//! filesystems, with MAAS's sizes, `used_for` strings, storage layouts and the
//! validation its forms and models apply. Pure functions of a [`Machine`]; the HTTP
//! handlers (`machines/storage.rs`) check machine states and answer in MAAS's shapes.
//!
//! Vendor sources checked (canonical/maas, branch 3.5):
//! - `src/maasserver/models/partitiontable.py`: the table's overhead (4 MiB at the
//!   start, 1 MiB at the end, 8 MiB PReP on ppc64el; the bios_grub MiB only when
//!   not booting UEFI, and the twin's machines boot UEFI), available space rounded
//!   down to the 4 MiB alignment, partitions added with all the free space.
//! - `src/maasserver/models/partition.py`: 4 MiB alignment and minimum, partition
//!   numbering and renumbering, the "not enough free space" error, no deleting a
//!   RAID member, lookup by id or `<disk>-part<N>`.
//! - `src/maasserver/models/blockdevice.py`: used and available sizes, free devices
//!   (no partition table, no filesystem), `create_partition` (one partition of all
//!   the disk), lookup by id or name, names unique per machine.
//! - `src/maasserver/models/filesystemgroup.py`: RAID sizes (128 KiB superblock
//!   overhead per level) and the minimum devices per level (raid-0: 2 and no spares,
//!   raid-1: 2, raid-5: 3, raid-6: 4, raid-10: 3 as the code checks).
//! - `src/maasserver/models/filesystem.py`: no filesystem directly on the boot disk,
//!   one mount point per filesystem, swap mounts at `none`, ramfs/tmpfs must mount.
//! - `src/maasserver/models/node.py`: `get_boot_disk`, acquired filesystems made at
//!   allocation and dropped at release, `_clear_full_storage_configuration`,
//!   `storage_layout_issues` (refused deploys), `ALLOCATED_NODE_STATUSES`.
//! - `src/maasserver/utils/storage.py`: the effective filesystem and `used_for`.
//! - `src/maasserver/forms/__init__.py` (`FormatBlockDeviceForm`,
//!   `FormatPartitionForm`, `AddPartitionForm`, `CreateRaidForm`) and
//!   `src/maasserver/forms/filesystem.py` (`MountFilesystemForm`): fields, choices
//!   and form errors.
//! - `src/maasserver/storage_layouts.py`: the flat layout (a 512 MiB fat32 EFI
//!   partition at `/boot/efi` on UEFI, then ext4 `/` over the rest) and blank.

use super::model::{status as S, *};
use super::render::disk_id;
use super::seed::uuid_from;

const MIB: u64 = 1024 * 1024;
/// Partitions align down to 4 MiB blocks (partition.py `PARTITION_ALIGNMENT_SIZE`).
pub const PARTITION_ALIGNMENT: u64 = 4 * MIB;
/// The smallest partition (partition.py `MIN_PARTITION_SIZE`).
pub const MIN_PARTITION_SIZE: u64 = PARTITION_ALIGNMENT;
/// A GPT table's reserved space: the first 4 MiB and the last MiB
/// (partitiontable.py `PARTITION_TABLE_EXTRA_SPACE`).
const PARTITION_TABLE_EXTRA_SPACE: u64 = 5 * MIB;
/// ppc64el boots from a PReP partition (partitiontable.py `PREP_PARTITION_SIZE`).
const PREP_PARTITION_SIZE: u64 = 8 * MIB;
/// storage_layouts.py `EFI_PARTITION_SIZE`, `MIN_BOOT_PARTITION_SIZE`.
pub const EFI_PARTITION_SIZE: u64 = 512 * MIB;
const MIN_BOOT_PARTITION_SIZE: u64 = 512 * MIB;
/// mdadm's superblock (filesystemgroup.py `RAID_SUPERBLOCK_OVERHEAD`).
const RAID_SUPERBLOCK_OVERHEAD: u64 = 128 * 1024;
/// Virtual block devices take ids from here up, far above the physical disks'
/// (`disk_id`: machine id × 100 + index), so block device ids stay unique region-wide.
const FIRST_VIRTUAL_ID: u64 = 1_000_000_001;

/// `FILESYSTEM_GROUP_RAID_TYPE_CHOICES` (src/maasserver/enum.py).
pub const RAID_LEVELS: &[&str] = &["raid-0", "raid-1", "raid-5", "raid-6", "raid-10"];
/// `FILESYSTEM_FORMAT_TYPE_CHOICES`: what a device may be formatted with (and what
/// MAAS calls mountable).
pub const FORMAT_TYPES: &[&str] = &[
    "ext2", "ext4", "xfs", "fat32", "vfat", "swap", "ramfs", "tmpfs", "btrfs", "zfsroot",
];
/// The layouts the twin applies (MAAS also has lvm, bcache, vmfs6, vmfs7 and custom;
/// the twin refuses those as unknown choices).
pub const LAYOUTS: &[&str] = &["blank", "flat"];

/// How MAAS refuses a storage change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400 with a plain-text message (a model `ValidationError` raised outside
    /// `clean`, or `MAASAPIBadRequest`).
    Text(String),
    /// 400 with form or model-clean errors: `{"field": ["message"]}` (`__all__`
    /// for the form).
    Form(Vec<(&'static str, String)>),
    /// 404 `No <model> matches the given query.`
    NotFound(&'static str),
}

fn form(field: &'static str, msg: impl Into<String>) -> Refusal {
    Refusal::Form(vec![(field, msg.into())])
}

fn text(msg: impl Into<String>) -> Refusal {
    Refusal::Text(msg.into())
}

/// Region-wide ids and fresh UUIDs for new storage objects.
pub struct NewIds<'a> {
    st: &'a mut State,
    system_id: String,
}

impl<'a> NewIds<'a> {
    pub fn new(st: &'a mut State, system_id: &str) -> Self {
        NewIds {
            st,
            system_id: system_id.to_string(),
        }
    }
    fn partition(&mut self) -> u64 {
        self.st.next_id("partition", 1)
    }
    fn raid(&mut self) -> u64 {
        self.st.next_id("filesystemgroup", 1)
    }
    fn virtual_device(&mut self) -> u64 {
        self.st.next_id("virtualblockdevice", FIRST_VIRTUAL_ID)
    }
    /// A version-4-shaped UUID, unique in the region and reproducible.
    fn uuid(&mut self, what: &str) -> String {
        let n = self.st.next_id("storage_uuid", 1);
        uuid4_from(&format!("{}/{what}/{n}", self.system_id))
    }
}

/// A UUID derived from `seed`, with the version (4) and variant bits MAAS's
/// `uuid4()` values carry.
fn uuid4_from(seed: &str) -> String {
    let mut c: Vec<char> = uuid_from(seed).chars().collect();
    // xxxxxxxx-xxxx-4xxx-Nxxx-xxxxxxxxxxxx, N in 8..b
    c[14] = '4';
    c[19] = match c[19] {
        '0' | '4' | '8' | 'c' => '8',
        '1' | '5' | '9' | 'd' => '9',
        '2' | '6' | 'a' | 'e' => 'a',
        _ => 'b',
    };
    c.into_iter().collect()
}

/// A block device of the machine: a reported disk or a RAID's virtual device.
#[derive(Clone, Copy, Debug)]
pub struct BlockDev<'a> {
    pub id: u64,
    pub name: &'a str,
    pub size: u64,
    pub kind: BdKind<'a>,
}

#[derive(Clone, Copy, Debug)]
pub enum BdKind<'a> {
    Physical(&'a Disk),
    Virtual(&'a Raid),
}

impl BlockDev<'_> {
    pub fn is_physical(&self) -> bool {
        matches!(self.kind, BdKind::Physical(_))
    }
    pub fn type_name(&self) -> &'static str {
        if self.is_physical() {
            "physical"
        } else {
            "virtual"
        }
    }
}

/// Every block device, by id (the physical disks, then the RAIDs' devices), as
/// `blockdevice_set` lists them.
pub fn block_devices(m: &Machine) -> Vec<BlockDev<'_>> {
    let mut out: Vec<BlockDev> = m
        .reported
        .iter()
        .flat_map(|h| h.disks.iter().enumerate())
        .map(|(i, d)| BlockDev {
            id: disk_id(m.id, i),
            name: &d.name,
            size: d.size_bytes,
            kind: BdKind::Physical(d),
        })
        .collect();
    out.extend(m.storage.raids.iter().map(|r| BlockDev {
        id: r.device_id,
        name: &r.name,
        size: r.size,
        kind: BdKind::Virtual(r),
    }));
    out.sort_by_key(|b| b.id);
    out
}

pub fn block_device(m: &Machine, id: u64) -> Option<BlockDev<'_>> {
    block_devices(m).into_iter().find(|b| b.id == id)
}

/// A block device by id or name (blockdevice.py `get_block_device_or_404`).
pub fn find_block_device<'a>(m: &'a Machine, key: &str) -> Option<BlockDev<'a>> {
    match key.parse::<u64>() {
        Ok(id) => block_device(m, id),
        Err(_) => block_devices(m).into_iter().find(|b| b.name == key),
    }
}

/// A partition of the machine by id or `<disk>-part<N>` name
/// (partition.py `get_partition_by_id_or_name`).
pub fn find_partition<'a>(m: &'a Machine, key: &str) -> Option<&'a Partition> {
    if let Ok(id) = key.parse::<u64>() {
        return m.storage.partitions.iter().find(|p| p.id == id);
    }
    let (disk, index) = key.split_once("-part")?;
    let index = index.parse::<u32>().ok()?;
    let dev = block_devices(m).into_iter().find(|b| b.name == disk)?;
    m.storage
        .partitions
        .iter()
        .find(|p| p.device_id == dev.id && p.index == index)
}

pub fn raid(m: &Machine, id: u64) -> Option<&Raid> {
    m.storage.raids.iter().find(|r| r.id == id)
}

/// The boot disk (node.py `get_boot_disk`): the one set with `set_boot_disk`, else
/// the physical disk with the lowest id of at least 512 MiB.
pub fn boot_disk(m: &Machine) -> Option<BlockDev<'_>> {
    let physical = || block_devices(m).into_iter().filter(BlockDev::is_physical);
    if let Some(b) = m
        .storage
        .boot_disk
        .and_then(|id| physical().find(|b| b.id == id))
    {
        return Some(b);
    }
    physical().find(|b| b.size >= MIN_BOOT_PARTITION_SIZE)
}

/// Whether MAAS shows the machine's acquired filesystems (`ALLOCATED_NODE_STATUSES`,
/// src/maasserver/enum.py).
pub fn is_allocated(m: &Machine) -> bool {
    matches!(
        m.status,
        S::ALLOCATED
            | S::DEPLOYING
            | S::DEPLOYED
            | S::FAILED_DEPLOYMENT
            | S::RELEASING
            | S::FAILED_RELEASING
            | S::DISK_ERASING
            | S::FAILED_DISK_ERASING
            | S::RESCUE_MODE
            | S::ENTERING_RESCUE_MODE
            | S::FAILED_ENTERING_RESCUE_MODE
            | S::EXITING_RESCUE_MODE
            | S::FAILED_EXITING_RESCUE_MODE
            | S::TESTING
            | S::FAILED_TESTING
    )
}

fn mountable(fstype: &str) -> bool {
    FORMAT_TYPES.contains(&fstype)
}

/// The index of the filesystem MAAS shows on `h` (utils/storage.py
/// `get_effective_filesystem`): an allocated machine sees its acquired filesystem
/// (or a non-mountable one, such as a RAID membership), any other machine the
/// filesystem that is not acquired.
pub fn effective_fs_index(m: &Machine, h: Holder) -> Option<usize> {
    let on = || {
        m.storage
            .filesystems
            .iter()
            .enumerate()
            .filter(move |(_, f)| f.on == h)
    };
    if is_allocated(m) {
        on().find(|(_, f)| f.acquired)
            .or_else(|| on().find(|(_, f)| !mountable(&f.fstype)))
            .map(|(i, _)| i)
    } else {
        on().find(|(_, f)| !f.acquired).map(|(i, _)| i)
    }
}

pub fn effective_fs(m: &Machine, h: Holder) -> Option<&Filesystem> {
    effective_fs_index(m, h).map(|i| &m.storage.filesystems[i])
}

pub fn has_table(m: &Machine, device_id: u64) -> bool {
    m.storage.partition_tables.contains(&device_id)
}

/// The partitions of a block device, by id.
pub fn partitions_of(m: &Machine, device_id: u64) -> Vec<&Partition> {
    let mut out: Vec<&Partition> = m
        .storage
        .partitions
        .iter()
        .filter(|p| p.device_id == device_id)
        .collect();
    out.sort_by_key(|p| p.id);
    out
}

fn is_ppc64el(m: &Machine) -> bool {
    m.architecture.starts_with("ppc64el")
}

/// The space a partition table takes (partitiontable.py `get_overhead_size`).
fn table_overhead(m: &Machine) -> u64 {
    PARTITION_TABLE_EXTRA_SPACE
        + if is_ppc64el(m) {
            PREP_PARTITION_SIZE
        } else {
            0
        }
}

fn round_down(size: u64, block: u64) -> u64 {
    size / block * block
}

/// The partitions' sizes plus the table's overhead (`get_used_size`).
fn table_used(m: &Machine, device_id: u64) -> u64 {
    let parts: u64 = partitions_of(m, device_id).iter().map(|p| p.size).sum();
    parts + table_overhead(m)
}

/// Space left for new partitions, aligned down (`get_available_size`).
fn table_available(m: &Machine, dev: &BlockDev) -> u64 {
    round_down(
        dev.size.saturating_sub(table_used(m, dev.id)),
        PARTITION_ALIGNMENT,
    )
}

/// blockdevice.py `get_used_size`.
pub fn used_size(m: &Machine, dev: &BlockDev) -> u64 {
    if effective_fs(m, Holder::BlockDevice(dev.id)).is_some() {
        dev.size
    } else if has_table(m, dev.id) {
        table_used(m, dev.id)
    } else {
        0
    }
}

/// blockdevice.py `get_available_size` (a device without a table counts the
/// table it would need).
pub fn available_size(m: &Machine, dev: &BlockDev) -> u64 {
    if effective_fs(m, Holder::BlockDevice(dev.id)).is_some() {
        0
    } else {
        table_available(m, dev)
    }
}

fn fs_used_for(m: &Machine, fs: &Filesystem) -> String {
    if let Some(mp) = &fs.mount_point {
        return format!("{} formatted filesystem mounted at {mp}", fs.fstype);
    }
    let group = fs.raid.and_then(|id| raid(m, id));
    match (fs.fstype.as_str(), group) {
        ("raid", Some(r)) => format!("Active {} device for {}", r.level, r.name),
        ("raid-spare", Some(r)) => format!("Spare {} device for {}", r.level, r.name),
        (t, _) => format!("Unmounted {t} formatted filesystem"),
    }
}

/// What a block device is used for (utils/storage.py `used_for`).
pub fn device_used_for(m: &Machine, dev: &BlockDev) -> String {
    if let Some(fs) = effective_fs(m, Holder::BlockDevice(dev.id)) {
        return fs_used_for(m, fs);
    }
    if has_table(m, dev.id) {
        let n = partitions_of(m, dev.id).len();
        let noun = if n > 1 { "partitions" } else { "partition" };
        return format!("GPT partitioned with {n} {noun}");
    }
    "Unused".into()
}

pub fn partition_used_for(m: &Machine, p: &Partition) -> String {
    match effective_fs(m, Holder::Partition(p.id)) {
        Some(fs) => fs_used_for(m, fs),
        None => "Unused".into(),
    }
}

/// A RAID's active members (or its spares), in the order they were added.
pub fn raid_members(m: &Machine, raid_id: u64, spares: bool) -> Vec<Holder> {
    let want = if spares { "raid-spare" } else { "raid" };
    m.storage
        .filesystems
        .iter()
        .filter(|f| f.raid == Some(raid_id) && f.fstype == want)
        .map(|f| f.on)
        .collect()
}

fn holder_size(m: &Machine, h: Holder) -> u64 {
    match h {
        Holder::Partition(id) => m
            .storage
            .partitions
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.size)
            .unwrap_or(0),
        Holder::BlockDevice(id) => block_device(m, id).map(|b| b.size).unwrap_or(0),
    }
}

/// filesystemgroup.py `get_raid_size`: from the smallest member (spares included).
/// MAAS computes raid-10 as `min × n / 2` in floating point; the twin floors it to
/// whole bytes, as the virtual device's integer size field stores it.
fn raid_size(level: &str, active: &[u64], spares: &[u64]) -> u64 {
    let all: Vec<u64> = active.iter().chain(spares).copied().collect();
    let Some(&min) = all.iter().min() else {
        return 0;
    };
    if min == 0 {
        return 0;
    }
    let n = active.len() as u64;
    let gross = match level {
        "raid-0" => {
            return all
                .iter()
                .sum::<u64>()
                .saturating_sub(RAID_SUPERBLOCK_OVERHEAD * all.len() as u64);
        }
        "raid-1" => min,
        "raid-5" => min * n.saturating_sub(1),
        "raid-6" => min * n.saturating_sub(2),
        _ => min * n / 2,
    };
    gross.saturating_sub(RAID_SUPERBLOCK_OVERHEAD)
}

/// filesystemgroup.py `_validate_raid`.
fn check_raid_members(level: &str, active: usize, spares: usize) -> Result<(), Refusal> {
    let msg = match level {
        "raid-0" if active < 2 || spares != 0 => {
            "RAID level 0 must have at least 2 raid devices and no spares."
        }
        "raid-1" if active < 2 => {
            "RAID level 1 must have at least 2 raid devices and any number of spares."
        }
        "raid-5" if active < 3 => {
            "RAID level 5 must have at least 3 raid devices and any number of spares."
        }
        "raid-6" if active < 4 => {
            "RAID level 6 must have at least 4 raid devices and any number of spares."
        }
        "raid-10" if active < 3 => {
            "RAID level 10 must have at least 3 raid devices and any number of spares."
        }
        _ => return Ok(()),
    };
    Err(form("__all__", msg))
}

// ---------------------------------------------------------------------------------
// Changes

/// Adds a partition (partitiontable.py `add_partition`, partition.py `clean`):
/// `size` (all the free space when `None`) is aligned down to 4 MiB and must fit.
/// The device gets a GPT table if it has none.
pub fn add_partition(
    m: &mut Machine,
    ids: &mut NewIds,
    device_id: u64,
    size: Option<u64>,
    uuid: Option<String>,
    bootable: bool,
) -> Result<u64, Refusal> {
    let dev = block_device(m, device_id).ok_or(Refusal::NotFound("BlockDevice"))?;
    let available = table_available(m, &dev);
    let mut size = round_down(size.unwrap_or(available), PARTITION_ALIGNMENT);
    let mut errors = Vec::new();
    if size < MIN_PARTITION_SIZE {
        errors.push((
            "size",
            format!("Ensure this value is greater than or equal to {MIN_PARTITION_SIZE}."),
        ));
    }
    if available < size {
        // MAAS lets a partition one block too big through, one block smaller.
        let adjusted = size - 512;
        if available < adjusted {
            errors.push((
                "size",
                "Partition cannot be saved; not enough free space on the block device.".to_string(),
            ));
        } else {
            size = adjusted;
        }
    }
    if !errors.is_empty() {
        return Err(Refusal::Form(errors));
    }
    let max_index = partitions_of(m, device_id)
        .iter()
        .map(|p| p.index)
        .max()
        .unwrap_or(0);
    let mut index = max_index + 1;
    // ppc64el's PReP partition is number 1 on the boot disk (partition.py
    // `_get_partition_number`).
    if index == 1 && is_ppc64el(m) && boot_disk(m).is_some_and(|b| b.id == device_id) {
        index = 2;
    }
    let id = ids.partition();
    let uuid = match uuid {
        Some(u) => u,
        None => ids.uuid("partition"),
    };
    if !has_table(m, device_id) {
        m.storage.partition_tables.push(device_id);
    }
    m.storage.partitions.push(Partition {
        id,
        uuid,
        device_id,
        index,
        size,
        bootable,
        tags: vec![],
    });
    Ok(id)
}

/// Removes a partition and what sits on it, renumbering the ones after it
/// (partitiontable.py `delete_partition`, partition.py `delete`).
pub fn delete_partition(m: &mut Machine, id: u64) -> Result<(), Refusal> {
    if let Some(fs) = effective_fs(m, Holder::Partition(id))
        && fs.raid.is_some()
    {
        return Err(text("Cannot delete partition because its part of a RAID."));
    }
    let Some(pos) = m.storage.partitions.iter().position(|p| p.id == id) else {
        return Err(Refusal::NotFound("Partition"));
    };
    let gone = m.storage.partitions.remove(pos);
    m.storage
        .filesystems
        .retain(|f| f.on != Holder::Partition(id));
    for p in &mut m.storage.partitions {
        if p.device_id == gone.device_id && p.index > gone.index {
            p.index -= 1;
        }
    }
    Ok(())
}

/// Checks a new or changed filesystem as `Filesystem.clean` does: none directly on
/// the boot disk, ramfs/tmpfs only mounted, one filesystem per mount point (among
/// those acquired alike). `except` is the filesystem being replaced or changed.
fn check_filesystem(m: &Machine, fs: &Filesystem, except: Option<usize>) -> Result<(), Refusal> {
    if let Holder::BlockDevice(id) = fs.on
        && boot_disk(m).is_some_and(|b| b.id == id)
    {
        return Err(form(
            "__all__",
            "Cannot place filesystem directly on the boot disk. Create a partition on the boot disk first and then format the partition.",
        ));
    }
    if matches!(fs.fstype.as_str(), "ramfs" | "tmpfs") && fs.mount_point.is_none() {
        return Err(form("__all__", "Virtual filesystems must be mounted."));
    }
    if let Some(mp) = &fs.mount_point
        && fs.fstype != "swap"
    {
        let taken = m.storage.filesystems.iter().enumerate().any(|(i, f)| {
            Some(i) != except && f.acquired == fs.acquired && f.mount_point.as_ref() == Some(mp)
        });
        if taken {
            return Err(form(
                "__all__",
                format!("Another filesystem is already mounted at {mp}."),
            ));
        }
    }
    Ok(())
}

fn noun(h: Holder) -> &'static str {
    match h {
        Holder::BlockDevice(_) => "block device",
        Holder::Partition(_) => "partition",
    }
}

/// Formats a block device or partition (`FormatBlockDeviceForm`,
/// `FormatPartitionForm`): replaces the filesystem this machine's state edits (the
/// acquired one when allocated) unless it is not a formattable one (a RAID
/// membership). `fstype` is one of [`FORMAT_TYPES`], `uuid` a valid UUID.
pub fn format(
    m: &mut Machine,
    ids: &mut NewIds,
    h: Holder,
    fstype: &str,
    uuid: Option<String>,
    label: String,
) -> Result<(), Refusal> {
    if let Holder::BlockDevice(id) = h
        && has_table(m, id)
    {
        return Err(form(
            "__all__",
            "Cannot format block device with a partition table.",
        ));
    }
    let acquired = is_allocated(m);
    let existing = m
        .storage
        .filesystems
        .iter()
        .position(|f| f.on == h && f.acquired == acquired);
    if let Some(i) = existing {
        let t = &m.storage.filesystems[i].fstype;
        if !mountable(t) {
            return Err(text(format!(
                "Cannot format a {} that has a filesystem type of {t}.",
                noun(h)
            )));
        }
    }
    let fs = Filesystem {
        uuid: match uuid {
            Some(u) => u,
            None => ids.uuid("filesystem"),
        },
        fstype: fstype.to_string(),
        label: Some(label),
        mount_point: None,
        mount_options: None,
        on: h,
        raid: None,
        acquired,
    };
    check_filesystem(m, &fs, existing)?;
    if let Some(i) = existing {
        m.storage.filesystems.remove(i);
    }
    m.storage.filesystems.push(fs);
    Ok(())
}

/// Removes the filesystem of a block device or partition (the API's `unformat`).
pub fn unformat(m: &mut Machine, h: Holder) -> Result<(), Refusal> {
    let what = noun(h);
    let Some(i) = effective_fs_index(m, h) else {
        let kind = if what == "partition" {
            "Partition"
        } else {
            "Block device"
        };
        return Err(text(format!("{kind} is not formatted.")));
    };
    let fs = &m.storage.filesystems[i];
    if fs.mount_point.is_some() {
        return Err(text(format!(
            "Filesystem is mounted and cannot be unformatted. Unmount the filesystem before unformatting the {what}."
        )));
    }
    if fs.raid.is_some() {
        return Err(text(format!(
            "Filesystem is part of a RAID, and cannot be unformatted. Remove {what} from RAID before unformatting the {what}."
        )));
    }
    m.storage.filesystems.remove(i);
    Ok(())
}

/// Mounts the filesystem of a block device or partition (`MountFilesystemForm`):
/// `mount_point` must be an absolute path (swap mounts at `none` without one).
pub fn mount(
    m: &mut Machine,
    h: Holder,
    mount_point: Option<&str>,
    mount_options: Option<&str>,
) -> Result<(), Refusal> {
    let idx = effective_fs_index(m, h);
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    let mut point = None;
    match idx.map(|i| &m.storage.filesystems[i]) {
        None => errors.push((
            "__all__",
            "Cannot mount an unformatted partition or block device.".into(),
        )),
        Some(fs) => {
            if fs.fstype != "swap" {
                match mount_point.filter(|p| !p.is_empty()) {
                    None => errors.push(("mount_point", "This field is required.".into())),
                    Some(p) if !p.starts_with('/') || p.len() > 4095 => {
                        errors.push(("mount_point", "Enter a valid value.".into()))
                    }
                    Some(p) => point = Some(p.to_string()),
                }
            }
            if fs.raid.is_some() {
                errors.push((
                    "__all__",
                    "Filesystem is part of a filesystem group, and cannot be mounted.".into(),
                ));
            }
        }
    }
    let Some(i) = idx.filter(|_| errors.is_empty()) else {
        return Err(Refusal::Form(errors));
    };
    let mut fs = m.storage.filesystems[i].clone();
    fs.mount_point = Some(point.unwrap_or_else(|| "none".into()));
    fs.mount_options = Some(mount_options.unwrap_or("").to_string());
    check_filesystem(m, &fs, Some(i))?;
    m.storage.filesystems[i] = fs;
    Ok(())
}

/// Unmounts the filesystem of a block device or partition.
pub fn unmount(m: &mut Machine, h: Holder) -> Result<(), Refusal> {
    let Some(i) = effective_fs_index(m, h) else {
        let kind = if noun(h) == "partition" {
            "Partition"
        } else {
            "Block device"
        };
        return Err(text(format!("{kind} is not formatted.")));
    };
    let fs = &mut m.storage.filesystems[i];
    if fs.mount_point.is_none() {
        return Err(text("Filesystem is already unmounted."));
    }
    fs.mount_point = None;
    fs.mount_options = None;
    Ok(())
}

/// What `POST /nodes/{system_id}/raids/` was given (CreateRaidForm's fields).
#[derive(Clone, Debug, Default)]
pub struct RaidRequest {
    pub name: String,
    pub uuid: Option<String>,
    pub level: Option<String>,
    pub block_devices: Vec<String>,
    pub partitions: Vec<String>,
    pub spare_devices: Vec<String>,
    pub spare_partitions: Vec<String>,
}

/// Whether a block device is free for a RAID: no partition table and no
/// filesystem at all (`get_free_block_devices_for_node`).
fn device_is_free(m: &Machine, id: u64) -> bool {
    !has_table(m, id)
        && !m
            .storage
            .filesystems
            .iter()
            .any(|f| f.on == Holder::BlockDevice(id))
}

fn partition_is_free(m: &Machine, id: u64) -> bool {
    !m.storage
        .filesystems
        .iter()
        .any(|f| f.on == Holder::Partition(id))
}

/// The ids of `values` (ids or names) among the free block devices or partitions,
/// or the form error for the first one that is not (Django's `MultipleChoiceField`
/// with choices of ids and names).
fn choose(
    m: &Machine,
    field: &'static str,
    values: &[String],
    partitions: bool,
) -> Result<Vec<u64>, (&'static str, String)> {
    values
        .iter()
        .map(|v| {
            let id = if partitions {
                find_partition(m, v)
                    .filter(|p| partition_is_free(m, p.id))
                    .map(|p| p.id)
            } else {
                find_block_device(m, v)
                    .filter(|b| device_is_free(m, b.id))
                    .map(|b| b.id)
            };
            id.ok_or_else(|| {
                (
                    field,
                    format!("Select a valid choice. {v} is not one of the available choices."),
                )
            })
        })
        .collect()
}

/// A RAID's validated members: block device and partition ids, active and spare.
#[derive(Debug, Default)]
struct RaidMembers {
    level: String,
    devices: Vec<u64>,
    partitions: Vec<u64>,
    spare_devices: Vec<u64>,
    spare_partitions: Vec<u64>,
}

/// `CreateRaidForm.is_valid`: a level among [`RAID_LEVELS`], members among the free
/// block devices and partitions (by id or name), at least one member.
fn clean_raid_form(m: &Machine, req: &RaidRequest) -> Result<RaidMembers, Refusal> {
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    let level = match req.level.as_deref().filter(|l| !l.is_empty()) {
        None => {
            errors.push(("level", "This field is required.".into()));
            None
        }
        Some(l) if !RAID_LEVELS.contains(&l) => {
            errors.push((
                "level",
                format!("Select a valid choice. {l} is not one of the available choices."),
            ));
            None
        }
        Some(l) => Some(l.to_string()),
    };
    let mut pick = |field, values: &[String], partitions| {
        choose(m, field, values, partitions)
            .map_err(|e| errors.push(e))
            .ok()
    };
    let devices = pick("block_devices", &req.block_devices, false);
    let partitions = pick("partitions", &req.partitions, true);
    let spare_devices = pick("spare_devices", &req.spare_devices, false);
    let spare_partitions = pick("spare_partitions", &req.spare_partitions, true);
    if let (Some(d), Some(p)) = (&devices, &partitions)
        && d.is_empty()
        && p.is_empty()
    {
        errors.push((
            "__all__",
            "At least one block device or partition must be added to the array.".into(),
        ));
    }
    match (level, devices, partitions, spare_devices, spare_partitions) {
        (
            Some(level),
            Some(devices),
            Some(partitions),
            Some(spare_devices),
            Some(spare_partitions),
        ) if errors.is_empty() => Ok(RaidMembers {
            level,
            devices,
            partitions,
            spare_devices,
            spare_partitions,
        }),
        _ => Err(Refusal::Form(errors)),
    }
}

/// What the RAID's models refuse as they are saved (a blank name, a member twice,
/// too few members for the level, a device name the machine already has).
fn check_raid_model(m: &Machine, name: &str, x: &RaidMembers) -> Result<(), Refusal> {
    if name.is_empty() {
        return Err(form("name", "This field cannot be blank."));
    }
    let twice = |a: &[u64], b: &[u64]| {
        let mut seen = std::collections::BTreeSet::new();
        a.iter().chain(b).any(|d| !seen.insert(*d))
    };
    if twice(&x.devices, &x.spare_devices) {
        return Err(form(
            "__all__",
            "Filesystem with this Block device and Acquired already exists.",
        ));
    }
    if twice(&x.partitions, &x.spare_partitions) {
        return Err(form(
            "__all__",
            "Filesystem with this Partition and Acquired already exists.",
        ));
    }
    check_raid_members(
        &x.level,
        x.devices.len() + x.partitions.len(),
        x.spare_devices.len() + x.spare_partitions.len(),
    )?;
    if block_devices(m).iter().any(|b| b.name == name) {
        return Err(form(
            "__all__",
            "Block device with this Node config and Name already exists.",
        ));
    }
    Ok(())
}

/// Builds a RAID (`CreateRaidForm`, `RAIDManager.create_raid`): members must be free
/// block devices or partitions, given by id or name; a boot disk among the whole
/// disks makes MAAS partition every whole disk and use the partitions. `uuid` must
/// already be a valid UUID.
pub fn create_raid(m: &mut Machine, ids: &mut NewIds, req: &RaidRequest) -> Result<u64, Refusal> {
    let mut x = clean_raid_form(m, req)?;
    check_raid_model(m, &req.name, &x)?;
    let mut work = m.clone();
    let boot = boot_disk(m).map(|b| b.id);
    if boot.is_some_and(|b| x.devices.contains(&b) || x.spare_devices.contains(&b)) {
        // A bootable RAID is built over partitions (forms `_get_partitions_for_devices`).
        for d in x.devices.drain(..) {
            x.partitions
                .push(add_partition(&mut work, ids, d, None, None, false)?);
        }
        for d in x.spare_devices.drain(..) {
            x.spare_partitions
                .push(add_partition(&mut work, ids, d, None, None, false)?);
        }
    }
    let holders = |devices: &[u64], partitions: &[u64]| -> Vec<Holder> {
        devices
            .iter()
            .map(|d| Holder::BlockDevice(*d))
            .chain(partitions.iter().map(|p| Holder::Partition(*p)))
            .collect()
    };
    let active = holders(&x.devices, &x.partitions);
    let spares = holders(&x.spare_devices, &x.spare_partitions);
    let sizes = |hs: &[Holder]| -> Vec<u64> { hs.iter().map(|h| holder_size(&work, *h)).collect() };
    let size = raid_size(&x.level, &sizes(&active), &sizes(&spares));
    let id = ids.raid();
    let uuid = match &req.uuid {
        Some(u) => u.clone(),
        None => ids.uuid("raid"),
    };
    let device_id = ids.virtual_device();
    let device_uuid = ids.uuid("virtualblockdevice");
    for (hs, fstype) in [(&active, "raid"), (&spares, "raid-spare")] {
        for h in hs {
            let fs_uuid = ids.uuid("filesystem");
            work.storage.filesystems.push(Filesystem {
                uuid: fs_uuid,
                fstype: fstype.into(),
                label: None,
                mount_point: None,
                mount_options: None,
                on: *h,
                raid: Some(id),
                acquired: false,
            });
        }
    }
    work.storage.raids.push(Raid {
        id,
        uuid,
        name: req.name.clone(),
        level: x.level,
        device_id,
        device_uuid,
        size,
    });
    *m = work;
    Ok(id)
}

/// Deletes a RAID: its members are free again, and what was on its virtual device
/// (partition table, partitions, filesystems) goes with it.
pub fn delete_raid(m: &mut Machine, id: u64) -> Result<(), Refusal> {
    let Some(pos) = m.storage.raids.iter().position(|r| r.id == id) else {
        return Err(Refusal::NotFound("RAID"));
    };
    let r = m.storage.raids.remove(pos);
    remove_device_contents(m, r.device_id);
    m.storage.filesystems.retain(|f| f.raid != Some(id));
    Ok(())
}

/// Drops a block device's partition table, partitions and filesystems.
fn remove_device_contents(m: &mut Machine, device_id: u64) {
    let parts: Vec<u64> = partitions_of(m, device_id).iter().map(|p| p.id).collect();
    let s = &mut m.storage;
    s.partition_tables.retain(|d| *d != device_id);
    s.partitions.retain(|p| p.device_id != device_id);
    s.filesystems.retain(|f| match f.on {
        Holder::BlockDevice(d) => d != device_id,
        Holder::Partition(p) => !parts.contains(&p),
    });
}

/// node.py `_clear_full_storage_configuration`: every partition table, filesystem
/// and RAID goes; the disks and the chosen boot disk stay.
pub fn clear(m: &mut Machine) {
    let boot_disk = m.storage.boot_disk;
    m.storage = Storage {
        boot_disk,
        ..Storage::default()
    };
}

/// Why a layout cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// No physical disk, or none big enough to boot from.
    MissingBootDisk,
    /// The layout's partitions or filesystems were refused.
    Refused(Refusal),
}

/// Applies a storage layout ([`LAYOUTS`]) as `StorageLayoutBase.configure` does:
/// everything is cleared, then `flat` puts a GPT table on the boot disk with (on
/// UEFI, every architecture but ppc64el) a 512 MiB bootable fat32 partition labelled
/// `efi` at `/boot/efi` and an ext4 partition labelled `root` at `/` over the rest.
pub fn apply_layout(m: &mut Machine, ids: &mut NewIds, layout: &str) -> Result<(), LayoutError> {
    let Some(boot) = boot_disk(m).map(|b| b.id) else {
        return Err(LayoutError::MissingBootDisk);
    };
    let mut work = m.clone();
    clear(&mut work);
    if layout == "flat" {
        let refused = LayoutError::Refused;
        if !is_ppc64el(&work) {
            let efi = add_partition(&mut work, ids, boot, Some(EFI_PARTITION_SIZE), None, true)
                .map_err(refused)?;
            layout_fs(&mut work, ids, efi, ("fat32", "efi", "/boot/efi"));
        }
        let root = add_partition(&mut work, ids, boot, None, None, false).map_err(refused)?;
        layout_fs(&mut work, ids, root, ("ext4", "root", "/"));
    }
    *m = work;
    Ok(())
}

/// A layout's filesystem (fstype, label, mount point) on a partition.
fn layout_fs(
    m: &mut Machine,
    ids: &mut NewIds,
    partition: u64,
    (fstype, label, mp): (&str, &str, &str),
) {
    let uuid = ids.uuid("filesystem");
    m.storage.filesystems.push(Filesystem {
        uuid,
        fstype: fstype.into(),
        label: Some(label.into()),
        mount_point: Some(mp.into()),
        mount_options: None,
        on: Holder::Partition(partition),
        raid: None,
        acquired: false,
    });
}

/// The layout MAAS applies when commissioning ends (`set_default_storage_layout`,
/// the `default_storage_layout` setting): `blank` or, for anything else (the twin
/// models no other layout), `flat`. A machine without a usable disk keeps none, as
/// MAAS only logs that.
pub fn apply_default_layout(m: &mut Machine, ids: &mut NewIds, default_layout: &str) {
    let layout = if default_layout == "blank" {
        "blank"
    } else {
        "flat"
    };
    let _ = apply_layout(m, ids, layout);
}

/// At allocation MAAS copies every mountable filesystem into an acquired one
/// (node.py `_create_acquired_filesystems`); changes while allocated touch those.
pub fn acquire(m: &mut Machine) {
    release(m);
    let copies: Vec<Filesystem> = m
        .storage
        .filesystems
        .iter()
        .filter(|f| !f.acquired && mountable(&f.fstype))
        .map(|f| Filesystem {
            acquired: true,
            ..f.clone()
        })
        .collect();
    m.storage.filesystems.extend(copies);
}

/// Releasing drops the acquired filesystems (node.py `_clear_acquired_filesystems`).
pub fn release(m: &mut Machine) {
    m.storage.filesystems.retain(|f| !f.acquired);
}

/// Why MAAS would refuse to deploy this machine with `osystem`
/// (node.py `storage_layout_issues`, MAAS 3.5): no disks, no boot disk, and for
/// Ubuntu, CentOS and RHEL no filesystem mounted at `/`.
pub fn deploy_issues(m: &Machine, osystem: &str) -> Vec<String> {
    let devices = block_devices(m);
    if devices.is_empty() {
        return vec![
            "There are currently no storage devices.  Please add a storage device to be able to deploy this node."
                .into(),
        ];
    }
    let mut issues = Vec::new();
    if boot_disk(m).is_none() {
        issues.push("Specify a storage device to be able to deploy this node.".into());
    }
    if !["ubuntu", "centos", "rhel"].contains(&osystem) {
        return issues;
    }
    let at_root = |h| effective_fs(m, h).is_some_and(|f| f.mount_point.as_deref() == Some("/"));
    let root_mounted = devices.iter().any(|d| {
        if has_table(m, d.id) {
            partitions_of(m, d.id)
                .iter()
                .any(|p| at_root(Holder::Partition(p.id)))
        } else {
            at_root(Holder::BlockDevice(d.id))
        }
    });
    if !root_mounted {
        issues.push("Mount the root '/' filesystem to be able to deploy this node.".into());
    }
    issues
}

/// MAAS's human-readable size (`human_readable_bytes`, SI units).
pub fn human_size(bytes: u64) -> String {
    let mut n = bytes as f64;
    for unit in ["bytes", "kB", "MB", "GB", "TB", "PB", "EB", "ZB"] {
        if n.abs() < 1000.0 {
            return if unit == "bytes" {
                format!("{n:.0} {unit}")
            } else {
                format!("{n:.1} {unit}")
            };
        }
        n /= 1000.0;
    }
    format!("{n:.1} YB")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    fn machine(disks: &[u64]) -> Machine {
        Machine {
            id: 1,
            system_id: "abc123".into(),
            architecture: "amd64/generic".into(),
            status: S::READY,
            reported: Some(Hardware {
                disks: disks
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Disk {
                        name: format!("sd{}", (b'a' + i as u8) as char),
                        size_bytes: *s,
                        ..Disk::default()
                    })
                    .collect(),
                ..Hardware::default()
            }),
            ..Machine::default()
        }
    }

    #[test]
    fn flat_layout_on_the_boot_disk() {
        let mut st = State::default();
        let mut m = machine(&[480 * GB, 480 * GB]);
        apply_layout(&mut m, &mut NewIds::new(&mut st, "abc123"), "flat").expect("flat");
        let parts = partitions_of(&m, 101);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].index, parts[0].size, parts[0].bootable),
            (1, EFI_PARTITION_SIZE, true)
        );
        let expected_root =
            round_down(480 * GB - EFI_PARTITION_SIZE - 5 * MIB, PARTITION_ALIGNMENT);
        assert_eq!(parts[1].size, expected_root);
        let root = effective_fs(&m, Holder::Partition(parts[1].id)).expect("root fs");
        assert_eq!(
            (root.fstype.as_str(), root.mount_point.as_deref()),
            ("ext4", Some("/"))
        );
        let sda = block_device(&m, 101).expect("sda");
        assert_eq!(
            device_used_for(&m, &sda),
            "GPT partitioned with 2 partitions"
        );
        assert_eq!(available_size(&m, &sda), 0);
        assert!(deploy_issues(&m, "ubuntu").is_empty());
        apply_layout(&mut m, &mut NewIds::new(&mut st, "abc123"), "blank").expect("blank");
        assert_eq!(m.storage, Storage::default());
        assert_eq!(
            deploy_issues(&m, "ubuntu"),
            vec!["Mount the root '/' filesystem to be able to deploy this node.".to_string()]
        );
        assert_eq!(deploy_issues(&m, "custom"), Vec::<String>::new());
    }

    #[test]
    fn raid_sizes_follow_filesystemgroup() {
        let o = RAID_SUPERBLOCK_OVERHEAD;
        assert_eq!(raid_size("raid-0", &[10 * o, 20 * o], &[]), 28 * o);
        assert_eq!(raid_size("raid-1", &[1000 * o, 2000 * o], &[]), 999 * o);
        assert_eq!(raid_size("raid-5", &[10 * o, 10 * o, 10 * o], &[]), 19 * o);
        assert_eq!(raid_size("raid-6", &[10 * o; 4], &[]), 19 * o);
        assert_eq!(raid_size("raid-10", &[10 * o; 3], &[]), 14 * o);
        assert_eq!(raid_size("raid-1", &[10 * o, 10 * o], &[5 * o]), 4 * o);
        assert!(check_raid_members("raid-5", 2, 0).is_err());
        assert!(check_raid_members("raid-0", 2, 1).is_err());
        assert!(check_raid_members("raid-10", 3, 0).is_ok());
    }

    #[test]
    fn raid_over_partitions_and_its_refusals() {
        let mut st = State::default();
        let mut m = machine(&[100 * GB, 100 * GB, 100 * GB]);
        let mut ids = NewIds::new(&mut st, "abc123");
        let p1 = add_partition(&mut m, &mut ids, 101, Some(50 * GB), None, false).expect("p1");
        let p2 = add_partition(&mut m, &mut ids, 102, Some(50 * GB), None, false).expect("p2");
        let too_big = add_partition(&mut m, &mut ids, 103, Some(100 * GB), None, false);
        assert!(
            matches!(too_big, Err(Refusal::Form(ref e)) if e[0].0 == "size"),
            "{too_big:?}"
        );
        let req = RaidRequest {
            name: "md0".into(),
            level: Some("raid-1".into()),
            partitions: vec![p1.to_string(), "sdb-part1".into()],
            ..RaidRequest::default()
        };
        let id = create_raid(&mut m, &mut ids, &req).expect("raid");
        let r = raid(&m, id).expect("raid").clone();
        assert_eq!(
            r.size,
            round_down(50 * GB, PARTITION_ALIGNMENT) - RAID_SUPERBLOCK_OVERHEAD
        );
        assert_eq!(
            raid_members(&m, id, false),
            vec![Holder::Partition(p1), Holder::Partition(p2)]
        );
        let p = m
            .storage
            .partitions
            .iter()
            .find(|p| p.id == p1)
            .expect("p1")
            .clone();
        assert_eq!(partition_used_for(&m, &p), "Active raid-1 device for md0");
        // Members are taken now.
        let again = create_raid(
            &mut m,
            &mut ids,
            &RaidRequest {
                name: "md1".into(),
                ..req.clone()
            },
        );
        assert!(
            matches!(again, Err(Refusal::Form(ref e)) if e[0].0 == "partitions"),
            "{again:?}"
        );
        assert!(delete_partition(&mut m, p1).is_err());
        format(
            &mut m,
            &mut ids,
            Holder::BlockDevice(r.device_id),
            "ext4",
            None,
            String::new(),
        )
        .expect("format md0");
        mount(&mut m, Holder::BlockDevice(r.device_id), Some("/"), None).expect("mount");
        assert!(deploy_issues(&m, "ubuntu").is_empty());
        let md0 = block_device(&m, r.device_id).expect("md0");
        assert_eq!(
            device_used_for(&m, &md0),
            "ext4 formatted filesystem mounted at /"
        );
        delete_raid(&mut m, id).expect("delete");
        assert_eq!(partition_used_for(&m, &p), "Unused");
        assert!(m.storage.filesystems.is_empty());
    }

    #[test]
    fn allocation_edits_acquired_copies() {
        let mut st = State::default();
        let mut m = machine(&[100 * GB]);
        apply_layout(&mut m, &mut NewIds::new(&mut st, "abc123"), "flat").expect("flat");
        m.status = S::ALLOCATED;
        acquire(&mut m);
        let root = partitions_of(&m, 101)[1].id;
        unmount(&mut m, Holder::Partition(root)).expect("unmount acquired");
        assert!(deploy_issues(&m, "ubuntu").len() == 1);
        release(&mut m);
        m.status = S::READY;
        assert!(deploy_issues(&m, "ubuntu").is_empty());
    }

    #[test]
    fn uuids_look_like_uuid4() {
        let u = uuid4_from("x");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!("89ab".contains(&u[19..20]), "{u}");
        assert_eq!(human_size(1_000_000_000), "1.0 GB");
        assert_eq!(human_size(999), "999 bytes");
    }
}
