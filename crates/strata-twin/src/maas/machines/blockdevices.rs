//! A machine's storage over the API: block devices (`format`, `unformat`, `mount`,
//! `unmount`, `set_boot_disk`), partitions, RAIDs and storage layouts. The model and
//! its validation are `maas/storage.rs`; here are the state rules and the form
//! fields, as MAAS 3.5's handlers have them (canonical/maas, branch 3.5):
//! - `src/maasserver/api/blockdevices.py`: format, unformat, mount and unmount need
//!   a Ready or Allocated machine; `set_boot_disk` a Ready machine and a physical
//!   device; the unformat/unmount refusals.
//! - `src/maasserver/api/partitions.py`: partitions are created and deleted on Ready
//!   machines only, formatted/mounted on Ready or Allocated ones.
//! - `src/maasserver/api/raid.py`: RAIDs are created and deleted on Ready machines.
//! - `src/maasserver/api/machines.py`: `set_storage_layout` (Ready only, the
//!   `StorageLayoutForm` choice) and `restore_storage_configuration`.
//! - `src/maasserver/forms/__init__.py`: `UUID4Field`, `BytesField`, Django's
//!   `BooleanField` and `ChoiceField` messages.

use super::*;
use crate::maas::storage::{self as store, NewIds, RaidRequest, Refusal};

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::Text(m) => bad_request(&m),
        Refusal::Form(errors) => invalid(&errors),
        Refusal::NotFound(what) => not_found(what),
    }
}

/// Runs `f` on a copy of machine `sid`, with region-wide ids for what it makes,
/// and keeps the copy when `f` succeeds.
fn change<T>(
    st: &mut State,
    sid: &str,
    f: impl FnOnce(&mut Machine, &mut NewIds) -> Result<T, Refusal>,
) -> Result<T, Response> {
    let mut m = st
        .machine(sid)
        .cloned()
        .ok_or_else(|| not_found("Machine"))?;
    let out = f(&mut m, &mut NewIds::new(st, sid)).map_err(refused)?;
    if let Some(slot) = st.machine_mut(sid) {
        *slot = m;
    }
    Ok(out)
}

/// The machine and the id of its block device `key` (an id or a name).
fn device<'a>(st: &'a State, sid: &str, key: &str) -> Result<(&'a Machine, u64), Response> {
    let m = st.machine(sid).ok_or_else(|| not_found("BlockDevice"))?;
    let id = store::find_block_device(m, key)
        .ok_or_else(|| not_found("BlockDevice"))?
        .id;
    Ok((m, id))
}

/// The machine, the block device (`{device_id}`) and the partition (`{id}`, an id or
/// `<disk>-part<N>` of the machine, as MAAS looks it up).
fn partition_of<'a>(st: &'a State, r: &Req) -> Result<(&'a Machine, u64, u64), Response> {
    let (m, dev) = device(st, r.path("system_id"), r.path("device_id"))?;
    let p = store::find_partition(m, r.path("id")).ok_or_else(|| not_found("Partition"))?;
    Ok((m, dev, p.id))
}

fn ready(m: &Machine, msg: &str) -> Result<(), Response> {
    if m.status == S::READY {
        Ok(())
    } else {
        Err(conflict(msg))
    }
}

/// `raise_error_for_invalid_state_on_allocated_operations` of blockdevices.py
/// (`machine`) and partitions.py (`node`).
fn ready_or_allocated(m: &Machine, what: &str, op: &str) -> Result<(), Response> {
    if matches!(m.status, S::READY | S::ALLOCATED) {
        return Ok(());
    }
    let node = if what == "partition" {
        "node"
    } else {
        "machine"
    };
    Err(conflict(&format!(
        "Cannot {op} {what} because the {node} is not Ready or Allocated."
    )))
}

fn render_device(s: &Maas, st: &State, sid: &str, id: u64) -> Response {
    match st
        .machine(sid)
        .and_then(|m| store::block_device(m, id).map(|b| (m, b)))
    {
        Some((m, b)) => ok(render::blockdevice(&s.api, m, &b)),
        None => not_found("BlockDevice"),
    }
}

fn render_partition(s: &Maas, st: &State, sid: &str, id: u64) -> Response {
    match st.machine(sid).and_then(|m| {
        m.storage
            .partitions
            .iter()
            .find(|p| p.id == id)
            .map(|p| (m, p))
    }) {
        Some((m, p)) => ok(render::partition(&s.api, m, p)),
        None => not_found("Partition"),
    }
}

// ---------------------------------------------------------------------------------
// Form fields

/// Django's `UUID4Field` (a `RegexField` of 32 to 36 characters whose pattern must
/// occur in the value); `None` when not given.
fn uuid_field(v: Option<&str>) -> Result<Option<String>, Vec<String>> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let n = v.chars().count();
    let mut errors = Vec::new();
    if n < 32 {
        errors.push(format!(
            "Ensure this value has at least 32 characters (it has {n})."
        ));
    }
    if n > 36 {
        errors.push(format!(
            "Ensure this value has at most 36 characters (it has {n})."
        ));
    }
    if !contains_uuid4(v) {
        errors.push("Enter a valid value.".into());
    }
    if errors.is_empty() {
        Ok(Some(v.to_string()))
    } else {
        Err(errors)
    }
}

/// Whether `v` contains `8-4-4xxx-[89ab]xxx-12` hex digits, hyphens optional
/// (`UUID4Field`'s pattern, searched as Django's `RegexValidator` does).
fn contains_uuid4(v: &str) -> bool {
    let b = v.as_bytes();
    // (hex digits, what the first must be, a hyphen may follow)
    let groups: [(usize, &[u8], bool); 5] = [
        (8, b"", true),
        (4, b"", true),
        (4, b"4", true),
        (4, b"89abAB", true),
        (12, b"", false),
    ];
    let matches_at = |mut i: usize| -> bool {
        for (len, first, hyphen) in groups {
            for k in 0..len {
                let Some(&c) = b.get(i) else { return false };
                if !c.is_ascii_hexdigit() || (k == 0 && !first.is_empty() && !first.contains(&c)) {
                    return false;
                }
                i += 1;
            }
            if hyphen && b.get(i) == Some(&b'-') {
                i += 1;
            }
        }
        true
    };
    (0..b.len()).any(matches_at)
}

/// `fstype`: a required choice among MAAS's formattable filesystems.
fn fstype_field(v: Option<&str>) -> Result<String, String> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Err("This field is required.".into()),
        Some(t) if store::FORMAT_TYPES.contains(&t) => Ok(t.to_string()),
        Some(t) => Err(format!(
            "Select a valid choice. {t} is not one of the available choices."
        )),
    }
}

/// MAAS's `BytesField` (digits with an optional SI suffix) between `min` and `max`.
fn bytes_field(v: &str, min: u64, max: u64) -> Result<u64, String> {
    let v = v.trim();
    let (digits, mult) = match v.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&v[..v.len() - 1], 1_000u64),
        Some('M') => (&v[..v.len() - 1], 1_000_000),
        Some('G') => (&v[..v.len() - 1], 1_000_000_000),
        Some('T') => (&v[..v.len() - 1], 1_000_000_000_000),
        Some('P') => (&v[..v.len() - 1], 1_000_000_000_000_000),
        Some('E') => (&v[..v.len() - 1], 1_000_000_000_000_000_000),
        _ => (v, 1),
    };
    let body = digits.strip_prefix('-').unwrap_or(digits);
    if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
        return Err("Enter a valid value.".into());
    }
    let n: i128 = digits.parse::<i128>().map_err(|_| "Enter a valid value.")? * mult as i128;
    if n < min as i128 {
        return Err(format!(
            "Ensure this value is greater than or equal to {min}."
        ));
    }
    if n > max as i128 {
        return Err(format!("Ensure this value is less than or equal to {max}."));
    }
    Ok(n as u64)
}

/// Django's `BooleanField`: only `false` and `0` (and nothing) are false.
fn django_bool(v: Option<&str>) -> bool {
    v.is_some_and(|v| !v.is_empty() && !matches!(v.to_ascii_lowercase().as_str(), "false" | "0"))
}

/// `FormatBlockDeviceForm`/`FormatPartitionForm` fields: fstype, uuid, label.
fn format_fields(p: &Params) -> Result<(String, Option<String>, String), Response> {
    let fstype = fstype_field(p.get("fstype"));
    let uuid = uuid_field(p.get("uuid"));
    match (fstype, uuid) {
        (Ok(t), Ok(u)) => Ok((t, u, p.get("label").unwrap_or("").trim().to_string())),
        (t, u) => {
            let mut errors: Vec<(&str, String)> = Vec::new();
            if let Err(e) = t {
                errors.push(("fstype", e));
            }
            if let Err(es) = u {
                errors.extend(es.into_iter().map(|e| ("uuid", e)));
            }
            Err(invalid(&errors))
        }
    }
}

// ---------------------------------------------------------------------------------
// Block devices

pub fn blockdevices(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let Some(m) = g.st.machine(r.path("system_id")) else {
        return not_found("Machine");
    };
    ok(Value::Array(
        store::block_devices(m)
            .iter()
            .map(|b| render::blockdevice(&s.api, m, b))
            .collect(),
    ))
}

pub fn blockdevice(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id");
    match device(&g.st, sid, r.path("id")) {
        Ok((_, id)) => render_device(s, &g.st, sid, id),
        Err(e) => e,
    }
}

/// A block device operation (`op` for the state message) on a Ready or Allocated
/// machine; answers the device.
fn device_op(
    s: &Maas,
    r: &Req,
    op: &str,
    f: impl FnOnce(&mut Machine, &mut NewIds, Holder) -> Result<(), Refusal>,
) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let id = match device(st, &sid, r.path("id")).and_then(|(m, id)| {
        ready_or_allocated(m, "block device", op)?;
        Ok(id)
    }) {
        Ok(id) => id,
        Err(e) => return e,
    };
    match change(st, &sid, |m, ids| f(m, ids, Holder::BlockDevice(id))) {
        Ok(()) => render_device(s, st, &sid, id),
        Err(e) => e,
    }
}

pub fn format_blockdevice(s: &Maas, r: &Req) -> Response {
    let (fstype, uuid, label) = match format_fields(&r.params) {
        Ok(x) => x,
        Err(e) => return e,
    };
    device_op(s, r, "format", |m, ids, h| {
        store::format(m, ids, h, &fstype, uuid, label)
    })
}

pub fn unformat_blockdevice(s: &Maas, r: &Req) -> Response {
    device_op(s, r, "unformat", |m, _, h| store::unformat(m, h))
}

pub fn mount_blockdevice(s: &Maas, r: &Req) -> Response {
    let p = &r.params;
    device_op(s, r, "mount", |m, _, h| {
        store::mount(m, h, p.get("mount_point"), p.get("mount_options"))
    })
}

pub fn unmount_blockdevice(s: &Maas, r: &Req) -> Response {
    device_op(s, r, "unmount", |m, _, h| store::unmount(m, h))
}

/// `set_boot_disk`: a physical device of a Ready machine; answers `OK`.
pub fn set_boot_disk(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let (m, id) = match device(st, &sid, r.path("id")) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if let Err(e) = ready(
        m,
        "Cannot set as boot disk because the machine is not Ready.",
    ) {
        return e;
    }
    if let Some(b) = store::block_device(m, id)
        && !b.is_physical()
    {
        return bad_request(&format!(
            "Cannot set a {} block device as the boot disk.",
            b.type_name()
        ));
    }
    if let Some(m) = st.machine_mut(&sid) {
        m.storage.boot_disk = Some(id);
    }
    http::text(StatusCode::OK, "OK")
}

// ---------------------------------------------------------------------------------
// Partitions

pub fn partitions(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let (m, id) = match device(&g.st, r.path("system_id"), r.path("device_id")) {
        Ok(x) => x,
        Err(e) => return e,
    };
    ok(Value::Array(
        store::partitions_of(m, id)
            .into_iter()
            .map(|p| render::partition(&s.api, m, p))
            .collect(),
    ))
}

/// `AddPartitionForm`: `size` (bytes, SI suffixes allowed; all the free space when
/// absent), `uuid`, `bootable`. Ready machines only.
pub fn create_partition(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let (m, dev) = match device(st, &sid, r.path("device_id")) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if let Err(e) = ready(m, "Cannot create partition because the node is not Ready.") {
        return e;
    }
    let p = &r.params;
    let dev_size = store::block_device(m, dev).map(|b| b.size).unwrap_or(0);
    let mut errors: Vec<(&str, String)> = Vec::new();
    let size = match p.get("size").map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match bytes_field(v, store::MIN_PARTITION_SIZE, dev_size) {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(("size", e));
                None
            }
        },
    };
    let uuid = match uuid_field(p.get("uuid")) {
        Ok(u) => u,
        Err(es) => {
            errors.extend(es.into_iter().map(|e| ("uuid", e)));
            None
        }
    };
    if !errors.is_empty() {
        return invalid(&errors);
    }
    let bootable = django_bool(p.get("bootable"));
    match change(st, &sid, |m, ids| {
        store::add_partition(m, ids, dev, size, uuid, bootable)
    }) {
        Ok(id) => render_partition(s, st, &sid, id),
        Err(e) => e,
    }
}

pub fn partition(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    match partition_of(&g.st, r) {
        Ok((_, _, id)) => render_partition(s, &g.st, r.path("system_id"), id),
        Err(e) => e,
    }
}

/// Deletes a partition of a Ready machine (not a RAID member).
pub fn delete_partition(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let (m, dev) = match device(st, &sid, r.path("device_id")) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if !store::has_table(m, dev) {
        return not_found("PartitionTable");
    }
    // (sic: MAAS words this one "block device")
    if let Err(e) = ready(
        m,
        "Cannot delete block device because the node is not Ready.",
    ) {
        return e;
    }
    let Some(id) = store::find_partition(m, r.path("id")).map(|p| p.id) else {
        return not_found("Partition");
    };
    match change(st, &sid, |m, _| store::delete_partition(m, id)) {
        Ok(()) => http::deleted(),
        Err(e) => e,
    }
}

/// A partition operation on a Ready or Allocated machine; answers the partition.
fn partition_op(
    s: &Maas,
    r: &Req,
    op: &str,
    f: impl FnOnce(&mut Machine, &mut NewIds, Holder) -> Result<(), Refusal>,
) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let id = match partition_of(st, r).and_then(|(m, _, id)| {
        ready_or_allocated(m, "partition", op)?;
        Ok(id)
    }) {
        Ok(id) => id,
        Err(e) => return e,
    };
    match change(st, &sid, |m, ids| f(m, ids, Holder::Partition(id))) {
        Ok(()) => render_partition(s, st, &sid, id),
        Err(e) => e,
    }
}

pub fn format_partition(s: &Maas, r: &Req) -> Response {
    let (fstype, uuid, label) = match format_fields(&r.params) {
        Ok(x) => x,
        Err(e) => return e,
    };
    partition_op(s, r, "format", |m, ids, h| {
        store::format(m, ids, h, &fstype, uuid, label)
    })
}

pub fn unformat_partition(s: &Maas, r: &Req) -> Response {
    partition_op(s, r, "unformat", |m, _, h| store::unformat(m, h))
}

pub fn mount_partition(s: &Maas, r: &Req) -> Response {
    let p = &r.params;
    partition_op(s, r, "mount", |m, _, h| {
        store::mount(m, h, p.get("mount_point"), p.get("mount_options"))
    })
}

pub fn unmount_partition(s: &Maas, r: &Req) -> Response {
    partition_op(s, r, "unmount", |m, _, h| store::unmount(m, h))
}

// ---------------------------------------------------------------------------------
// RAIDs

pub fn raids(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let Some(m) = g.st.machine(r.path("system_id")) else {
        return not_found("Machine");
    };
    let mut all: Vec<&Raid> = m.storage.raids.iter().collect();
    all.sort_by_key(|r| r.id);
    ok(Value::Array(
        all.into_iter()
            .map(|x| render::raid(&s.api, m, x))
            .collect(),
    ))
}

/// `CreateRaidForm`: `name`, `uuid`, `level`, and repeated `block_devices`,
/// `partitions`, `spare_devices`, `spare_partitions` (ids or names). Ready only.
pub fn create_raid(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine(&sid) else {
        return not_found("Machine");
    };
    if let Err(e) = ready(m, "Cannot create RAID because the machine is not Ready.") {
        return e;
    }
    let p = &r.params;
    let uuid = match uuid_field(p.get("uuid")) {
        Ok(u) => u,
        Err(es) => {
            let errors: Vec<(&str, String)> = es.into_iter().map(|e| ("uuid", e)).collect();
            return invalid(&errors);
        }
    };
    let list = |k: &str| -> Vec<String> {
        p.all(k)
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    };
    let req = RaidRequest {
        name: p.get("name").unwrap_or("").trim().to_string(),
        uuid,
        level: p.get("level").map(|l| l.trim().to_string()),
        block_devices: list("block_devices"),
        partitions: list("partitions"),
        spare_devices: list("spare_devices"),
        spare_partitions: list("spare_partitions"),
    };
    match change(st, &sid, |m, ids| store::create_raid(m, ids, &req)) {
        Ok(id) => render_raid(s, st, &sid, id),
        Err(e) => e,
    }
}

fn render_raid(s: &Maas, st: &State, sid: &str, id: u64) -> Response {
    match st
        .machine(sid)
        .and_then(|m| store::raid(m, id).map(|x| (m, x)))
    {
        Some((m, x)) => ok(render::raid(&s.api, m, x)),
        None => not_found("RAID"),
    }
}

/// The RAID `{id}` (an id or a name) of the machine (filesystemgroup.py
/// `get_object_or_404`).
fn raid_id(st: &State, r: &Req) -> Result<u64, Response> {
    let key = r.path("id");
    st.machine(r.path("system_id"))
        .and_then(|m| {
            m.storage.raids.iter().find(|x| match key.parse::<u64>() {
                Ok(id) => x.id == id,
                Err(_) => x.name == key,
            })
        })
        .map(|x| x.id)
        .ok_or_else(|| not_found("RAID"))
}

pub fn raid(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    match raid_id(&g.st, r) {
        Ok(id) => render_raid(s, &g.st, r.path("system_id"), id),
        Err(e) => e,
    }
}

/// Deletes a RAID of a Ready machine, freeing its members.
pub fn delete_raid(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let id = match raid_id(st, r) {
        Ok(id) => id,
        Err(e) => return e,
    };
    if let Some(m) = st.machine(&sid)
        && let Err(e) = ready(m, "Cannot delete RAID because the machine is not Ready.")
    {
        return e;
    }
    match change(st, &sid, |m, _| store::delete_raid(m, id)) {
        Ok(()) => http::deleted(),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------
// Layouts

/// `op=set_storage_layout` with `storage_layout=blank|flat` on a Ready machine.
/// MAAS also knows `bcache`, `custom`, `lvm`, `vmfs6` and `vmfs7`; the twin models
/// only blank and flat, so it refuses the others with MAAS's invalid-choice error
/// (listing the two it has), and it refuses the layout size options (`boot_size`,
/// `root_size`, `root_device`) rather than ignore them.
pub fn set_storage_layout(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let m = match machine_or_404(st, &sid) {
        Ok(m) => m,
        Err(e) => return e,
    };
    if let Err(e) = ready(
        m,
        "Cannot change the storage layout on a machine that is not Ready.",
    ) {
        return e;
    }
    let p = &r.params;
    let layout = match p
        .get("storage_layout")
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        None => return invalid1("storage_layout", "This field is required."),
        Some(l) if store::LAYOUTS.contains(&l) => l.to_string(),
        Some(l) => {
            let choices: Vec<String> = store::LAYOUTS.iter().map(|c| format!("'{c}'")).collect();
            return invalid1(
                "storage_layout",
                format!(
                    "'{l}' is not a valid storage_layout.  It should be one of: {}.",
                    choices.join(", ")
                ),
            );
        }
    };
    for key in ["boot_size", "root_size", "root_device"] {
        if p.get_nonempty(key).is_some() {
            return invalid1(
                key,
                "The twin applies layouts with MAAS's default sizes on the boot disk; this option is not modelled.",
            );
        }
    }
    let applied = change(st, &sid, |m, ids| {
        store::apply_layout(m, ids, &layout).map_err(|e| match e {
            store::LayoutError::MissingBootDisk => Refusal::Text(
                "Machine is missing a boot disk; no storage layout can be applied.".into(),
            ),
            store::LayoutError::Refused(r) => r,
        })
    });
    match applied {
        Ok(()) => render_one(s, st, &sid),
        Err(e) => e,
    }
}

/// `op=restore_storage_configuration`: the default layout again, on a Ready or
/// Failed testing machine (a machine without a usable disk keeps none).
pub fn restore_storage_configuration(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let m = match machine_or_404(st, &sid) {
        Ok(m) => m,
        Err(e) => return e,
    };
    if !matches!(m.status, S::READY | S::FAILED_TESTING) {
        return conflict(
            "Machine must be in a ready or failed testing state to restore storage configuration.",
        );
    }
    let id = m.id;
    apply_default_layout(st, id);
    render_one(s, st, &sid)
}

/// MAAS's default storage layout (the `default_storage_layout` setting) on machine
/// `id`, as commissioning ends; none on a machine last commissioned with
/// `skip_storage` (node.py `set_default_storage_layout` returns early for those).
pub fn apply_default_layout(st: &mut State, id: u64) {
    let layout = st
        .config
        .get("default_storage_layout")
        .and_then(|v| v.as_str())
        .unwrap_or("flat")
        .to_string();
    let Some(mut m) = st.machines.get(&id).filter(|m| !m.skip_storage).cloned() else {
        return;
    };
    let sid = m.system_id.clone();
    store::apply_default_layout(&mut m, &mut NewIds::new(st, &sid), &layout);
    st.machines.insert(id, m);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_as_django_reads_them() {
        assert!(contains_uuid4("6f1b9c2e-3d4a-4b5c-8d6e-7f8091a2b3c4"));
        assert!(contains_uuid4("6f1b9c2e3d4a4b5c8d6e7f8091a2b3c4"));
        assert!(!contains_uuid4("6f1b9c2e-3d4a-1b5c-8d6e-7f8091a2b3c4"));
        assert_eq!(
            uuid_field(Some("abc")),
            Err(vec![
                "Ensure this value has at least 32 characters (it has 3).".to_string(),
                "Enter a valid value.".to_string()
            ])
        );
        assert_eq!(bytes_field("8M", 4194304, 10_000_000_000), Ok(8_000_000));
        assert!(bytes_field("1M", 4194304, 10_000_000_000).is_err());
        assert_eq!(
            bytes_field("20G", 4194304, 10_000_000_000),
            Err("Ensure this value is less than or equal to 10000000000.".into())
        );
        assert_eq!(bytes_field("x1", 0, 10), Err("Enter a valid value.".into()));
        assert!(django_bool(Some("yes")) && !django_bool(Some("False")) && !django_bool(None));
    }
}
