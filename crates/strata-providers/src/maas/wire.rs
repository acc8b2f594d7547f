//! The parts of MAAS's JSON objects the provider reads (everything else is ignored),
//! MAAS's node status codes and a few normalisations.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Fabric {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Embedded by MAAS in fabric listings; fetched separately when absent.
    #[serde(default)]
    pub vlans: Option<Vec<Vlan>>,
}

impl Fabric {
    pub fn description(&self) -> &str {
        self.description.as_deref().unwrap_or("")
    }
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Vlan {
    pub id: u64,
    pub vid: u16,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub dhcp_on: bool,
    #[serde(default)]
    pub primary_rack: Option<String>,
    #[serde(default)]
    pub secondary_rack: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl Vlan {
    /// The VLAN's name as MAAS shows it (`untagged` for VID 0, the VID when unnamed).
    pub fn display_name(&self) -> String {
        match self.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ if self.vid == 0 => "untagged".into(),
            _ => self.vid.to_string(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Subnet {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    pub cidr: String,
    #[serde(default)]
    pub vlan: Option<Vlan>,
    #[serde(default)]
    pub gateway_ip: Option<String>,
    #[serde(default = "yes")]
    pub managed: bool,
    #[serde(default)]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct IdOnly {
    pub id: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct IpRange {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub subnet: Option<IdOnly>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Unreserved {
    pub start: String,
    pub end: String,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Controller {
    pub system_id: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub fqdn: Option<String>,
    #[serde(default)]
    pub interface_set: Vec<Iface>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Named {
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Iface {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mac_address: Option<String>,
    /// `physical`, `bond`, `vlan`, `bridge`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Parent interfaces by name.
    #[serde(default)]
    pub parents: Vec<String>,
    #[serde(default)]
    pub vlan: Option<Vlan>,
    #[serde(default)]
    pub effective_mtu: Option<u32>,
    #[serde(default)]
    pub params: Option<serde_json::Value>,
    #[serde(default)]
    pub links: Vec<IfaceLink>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct IfaceLink {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub subnet: Option<Subnet>,
}

impl Iface {
    fn param(&self, key: &str) -> Option<String> {
        self.params
            .as_ref()
            .and_then(|p| p.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// Static addresses with their subnet's prefix length (`10.0.0.5/22`).
    pub fn addresses(&self) -> Vec<String> {
        self.links
            .iter()
            .filter_map(|l| {
                let ip = l.ip_address.as_deref()?;
                let prefix = l.subnet.as_ref()?.cidr.split_once('/')?.1;
                Some(format!("{ip}/{prefix}"))
            })
            .collect()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct GatewayRef {
    #[serde(default)]
    pub gateway_ip: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct DefaultGateways {
    #[serde(default)]
    pub ipv4: Option<GatewayRef>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct HardwareInfo {
    #[serde(default)]
    pub system_serial: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Machine {
    pub system_id: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tag_names: Vec<String>,
    #[serde(default)]
    pub status: Option<i64>,
    #[serde(default)]
    pub status_name: Option<String>,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub power_type: Option<String>,
    #[serde(default)]
    pub distro_series: Option<String>,
    #[serde(default)]
    pub zone: Option<Named>,
    #[serde(default)]
    pub boot_interface: Option<Iface>,
    #[serde(default)]
    pub interface_set: Vec<Iface>,
    #[serde(default)]
    pub hardware_info: Option<HardwareInfo>,
    #[serde(default)]
    pub default_gateways: Option<DefaultGateways>,
    /// The machine's block devices, physical (with their partitions) and virtual (a
    /// RAID's `md0`), read leniently: one odd entry must not make the whole machine
    /// list unreadable. (The listing's `raids` holds references only; what a RAID is
    /// made of shows in its members' `used_for`.)
    #[serde(default)]
    pub blockdevice_set: Option<serde_json::Value>,
    #[serde(default)]
    pub boot_disk: Option<serde_json::Value>,
}

/// Where the EFI system partition is mounted.
pub(crate) const EFI_MOUNT: &str = "/boot/efi";

/// A block device or a partition.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct BlockRef {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    /// `physical`, `virtual`, `partition`.
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub filesystem: Option<Filesystem>,
    /// MAAS's description of its use (`Active raid-1 device for md0`).
    #[serde(default)]
    pub used_for: Option<String>,
    /// A block device's partitions.
    #[serde(default)]
    pub partitions: Vec<BlockRef>,
}

/// `(level, array)` of a RAID member's `used_for` (`Active raid-1 device for md0`;
/// MAAS's `utils/storage.py`). Spares are not members.
fn raid_membership(used_for: &str) -> Option<(&str, &str)> {
    let rest = used_for.strip_prefix("Active ")?;
    let (level, array) = rest.split_once(" device for ")?;
    level.starts_with("raid-").then_some((level, array.trim()))
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Filesystem {
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub mount_point: Option<String>,
}

impl Machine {
    pub fn code(&self) -> Option<i64> {
        self.status
            .or_else(|| self.status_name.as_deref().and_then(status::parse))
    }

    /// The status name as MAAS writes it (`status_name`, else from the code).
    pub fn status_name(&self) -> String {
        match self.status_name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => self
                .status
                .map(|c| status::name(c).to_string())
                .unwrap_or_else(|| "Unknown".into()),
        }
    }

    pub fn has_tag(&self, t: &str) -> bool {
        self.tag_names.iter().any(|x| x == t)
    }

    /// The serial the hardware reported, when it reported a real one.
    pub fn serial(&self) -> Option<String> {
        known_serial(self.hardware_info.as_ref()?.system_serial.as_deref()?)
    }

    /// The boot interface's MAC, else the first interface's.
    /// The machine's network in MAAS in the keys of
    /// [`strata_plan::MachineNetwork::summary`]: bonds (members, mode, and for 802.3ad
    /// the LACP rate and hash policy) and their MTU, every interface's static
    /// addresses, a VLAN interface's MTU, the default gateway. A NIC that only serves
    /// as a bond member, or has no address, adds nothing but its bond's keys.
    pub fn network_summary(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let carries_vlans = |name: &str| {
            self.interface_set
                .iter()
                .any(|i| i.kind == "vlan" && i.parents.iter().any(|p| p == name))
        };
        for i in &self.interface_set {
            let addresses = i.addresses();
            match i.kind.as_str() {
                "bond" => {
                    let mut members = i.parents.clone();
                    members.sort();
                    out.insert(format!("{}.members", i.name), members.join(","));
                    let mode = i.param("bond_mode").unwrap_or_default();
                    if mode == "802.3ad" {
                        for k in ["lacp_rate", "xmit_hash_policy"] {
                            if let Some(v) = i.param(&format!("bond_{k}")) {
                                out.insert(format!("{}.{k}", i.name), v);
                            }
                        }
                    }
                    out.insert(format!("{}.mode", i.name), mode);
                    if let Some(m) = i.effective_mtu {
                        out.insert(format!("{}.mtu", i.name), m.to_string());
                    }
                }
                "vlan" => {
                    if let Some(m) = i.effective_mtu {
                        out.insert(format!("{}.mtu", i.name), m.to_string());
                    }
                }
                "bridge" => {
                    out.insert(format!("{}.parent", i.name), i.parents.join(","));
                    if let Some(m) = i.effective_mtu {
                        out.insert(format!("{}.mtu", i.name), m.to_string());
                    }
                }
                _ => {
                    // A NIC that is the uplink itself (no bond: it carries the native
                    // address or the VLANs): its MTU counts. A bond member has
                    // neither.
                    if (carries_vlans(&i.name) || !addresses.is_empty())
                        && let Some(m) = i.effective_mtu
                    {
                        out.insert(format!("{}.mtu", i.name), m.to_string());
                    }
                }
            }
            if !addresses.is_empty() {
                out.insert(format!("{}.address", i.name), addresses.join(","));
            }
        }
        if let Some(g) = self
            .default_gateways
            .as_ref()
            .and_then(|d| d.ipv4.as_ref())
            .and_then(|g| g.gateway_ip.clone())
        {
            out.insert("gateway".into(), g);
        }
        out
    }

    /// The machine's block devices (physical and virtual) as MAAS lists them.
    pub fn block_devices(&self) -> Vec<BlockRef> {
        let Some(serde_json::Value::Array(items)) = &self.blockdevice_set else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|r| BlockRef::deserialize(r).ok())
            .collect()
    }

    /// The machine's storage in MAAS in the keys of
    /// [`strata_plan::MachineStorage::summary`], from one machine listing: per RAID
    /// (the array its active members name) its level and member disks (a partition
    /// counts as its disk) and the filesystem on its virtual device; the boot disk,
    /// and the EFI system partition mounted on it.
    pub fn storage_summary(&self) -> std::collections::BTreeMap<String, String> {
        use std::collections::BTreeMap;
        let disks = self.block_devices();
        let mut out = BTreeMap::new();
        let mut arrays: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for d in disks.iter().filter(|d| d.kind == "physical") {
            let name = d.name.clone().unwrap_or_else(|| format!("#{}", d.id));
            let uses = std::iter::once(d).chain(d.partitions.iter());
            for (level, array) in uses.filter_map(|u| raid_membership(u.used_for.as_deref()?)) {
                arrays
                    .entry(array.to_string())
                    .or_insert_with(|| (level.to_string(), Vec::new()))
                    .1
                    .push(name.clone());
            }
        }
        for (array, (level, mut members)) in arrays {
            members.sort();
            out.insert(format!("{array}.level"), level);
            out.insert(format!("{array}.members"), members.join(","));
            let fs = disks
                .iter()
                .find(|d| d.kind == "virtual" && d.name.as_deref() == Some(array.as_str()))
                .and_then(|d| d.filesystem.clone())
                .unwrap_or_default();
            if let Some(f) = fs.fstype.filter(|f| !f.is_empty()) {
                out.insert(format!("{array}.fstype"), f);
            }
            if let Some(m) = fs.mount_point.filter(|m| !m.is_empty()) {
                out.insert(format!("{array}.mount"), m);
            }
        }
        let boot = self
            .boot_disk
            .as_ref()
            .and_then(|b| b.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string);
        if let Some(boot) = boot {
            let efi = disks
                .iter()
                .filter(|d| d.kind == "physical" && d.name.as_deref() == Some(boot.as_str()))
                .flat_map(|d| d.partitions.iter())
                .filter_map(|p| p.filesystem.as_ref())
                .find_map(|f| f.mount_point.clone().filter(|m| m == EFI_MOUNT));
            out.insert("boot.disk".into(), boot);
            if let Some(e) = efi {
                out.insert("boot.efi".into(), e);
            }
        }
        out
    }

    pub fn boot_mac(&self) -> Option<String> {
        self.boot_interface
            .as_ref()
            .and_then(|i| i.mac_address.as_deref())
            .or_else(|| {
                self.interface_set
                    .iter()
                    .find_map(|i| i.mac_address.as_deref())
            })
            .and_then(normalize_mac)
    }

    pub fn macs(&self) -> Vec<String> {
        self.interface_set
            .iter()
            .filter_map(|i| i.mac_address.as_deref())
            .filter_map(normalize_mac)
            .collect()
    }

    pub fn zone_name(&self) -> String {
        self.zone
            .as_ref()
            .map(|z| z.name.clone())
            .unwrap_or_default()
    }

    pub fn description(&self) -> &str {
        self.description.as_deref().unwrap_or("")
    }

    /// The serial strata recorded on a machine it created (see [`serial_marker`]).
    pub fn marked_serial(&self) -> Option<String> {
        marked_serial(self.description())
    }

    /// MAAS's words for the machine's failure: status message and error description.
    pub fn failure(&self) -> String {
        let mut parts = vec![self.status_name()];
        for m in [&self.status_message, &self.error_description]
            .into_iter()
            .flatten()
        {
            let m = m.trim();
            if !m.is_empty() && !parts.iter().any(|p| p == m) {
                parts.push(m.to_string());
            }
        }
        parts.join(": ")
    }
}

/// The marker strata writes into the description of a machine whose hardware serial
/// is not (yet) the serial it was created for.
pub(crate) const SERIAL_MARKER: &str = "strata-serial=";

pub(crate) fn serial_marker(serial: &str) -> String {
    format!("{SERIAL_MARKER}{serial}")
}

pub(crate) fn marked_serial(description: &str) -> Option<String> {
    description
        .split_whitespace()
        .find_map(|w| w.strip_prefix(SERIAL_MARKER))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Placeholder serials firmware reports when it has none.
pub(crate) fn known_serial(s: &str) -> Option<String> {
    let t = s.trim();
    let placeholder = t.is_empty()
        || [
            "unknown",
            "none",
            "n/a",
            "not specified",
            "not applicable",
            "to be filled by o.e.m.",
            "default string",
            "system serial number",
            "0",
            "0123456789",
        ]
        .iter()
        .any(|p| t.eq_ignore_ascii_case(p));
    (!placeholder).then(|| t.to_string())
}

/// `aa:bb:cc:dd:ee:ff` from any usual spelling of a MAC.
pub(crate) fn normalize_mac(s: &str) -> Option<String> {
    let hex: Vec<char> = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let seps_ok = s
        .chars()
        .filter(|c| !c.is_ascii_hexdigit())
        .all(|c| matches!(c, ':' | '-' | '.'));
    if hex.len() != 12 || !seps_ok {
        return None;
    }
    let lower: String = hex.iter().collect::<String>().to_ascii_lowercase();
    Some(
        (0..6)
            .map(|i| &lower[i * 2..i * 2 + 2])
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// MAAS node status codes (`maasserver.enum.NODE_STATUS`) and their display names.
pub(crate) mod status {
    pub const NEW: i64 = 0;
    pub const COMMISSIONING: i64 = 1;
    pub const FAILED_COMMISSIONING: i64 = 2;
    pub const READY: i64 = 4;
    pub const RESERVED: i64 = 5;
    pub const DEPLOYED: i64 = 6;
    pub const BROKEN: i64 = 8;
    pub const DEPLOYING: i64 = 9;
    pub const ALLOCATED: i64 = 10;
    pub const FAILED_DEPLOYMENT: i64 = 11;
    pub const RELEASING: i64 = 12;
    pub const FAILED_RELEASING: i64 = 13;
    pub const DISK_ERASING: i64 = 14;
    pub const FAILED_DISK_ERASING: i64 = 15;
    pub const TESTING: i64 = 21;
    pub const FAILED_TESTING: i64 = 22;

    const NAMES: &[(i64, &str)] = &[
        (0, "New"),
        (1, "Commissioning"),
        (2, "Failed commissioning"),
        (3, "Missing"),
        (4, "Ready"),
        (5, "Reserved"),
        (6, "Deployed"),
        (7, "Retired"),
        (8, "Broken"),
        (9, "Deploying"),
        (10, "Allocated"),
        (11, "Failed deployment"),
        (12, "Releasing"),
        (13, "Releasing failed"),
        (14, "Disk erasing"),
        (15, "Failed disk erasing"),
        (16, "Rescue mode"),
        (17, "Entering rescue mode"),
        (18, "Failed to enter rescue mode"),
        (19, "Exiting rescue mode"),
        (20, "Failed to exit rescue mode"),
        (21, "Testing"),
        (22, "Failed testing"),
    ];

    pub fn name(code: i64) -> &'static str {
        NAMES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, n)| *n)
            .unwrap_or("Unknown")
    }

    pub fn parse(name: &str) -> Option<i64> {
        NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
            .map(|(c, _)| *c)
    }

    /// Statuses MAAS releases from.
    pub const RELEASABLE: &[i64] = &[
        ALLOCATED,
        RESERVED,
        BROKEN,
        DEPLOYING,
        DEPLOYED,
        FAILED_DEPLOYMENT,
        FAILED_DISK_ERASING,
        FAILED_RELEASING,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine as MAAS lists it (MAAS 3.5 `api/machines.py`: `raids` holds
    /// references only): RAID-1 md0 of a partition on sda (after the ESP) and the whole
    /// of sdb, formatted and mounted; the summary's keys are the plan's.
    #[test]
    fn storage_summary_reads_arrays_from_their_members_used_for() {
        let m: Machine = serde_json::from_value(serde_json::json!({
            "system_id": "abc123",
            "raids": [{"system_id": "abc123", "id": 1, "__incomplete__": true}],
            "boot_disk": {"id": 11, "name": "sda"},
            "blockdevice_set": [
                {"id": 11, "name": "sda", "type": "physical", "filesystem": null,
                 "used_for": "GPT partitioned with 2 partitions",
                 "partitions": [
                    {"id": 1, "type": "partition", "device_id": 11,
                     "used_for": "fat32 formatted filesystem mounted at /boot/efi",
                     "filesystem": {"fstype": "fat32", "mount_point": "/boot/efi"}},
                    {"id": 2, "type": "partition", "device_id": 11,
                     "used_for": "Active raid-1 device for md0",
                     "filesystem": {"fstype": "raid", "mount_point": null}}
                 ]},
                {"id": 12, "name": "sdb", "type": "physical",
                 "used_for": "Active raid-1 device for md0", "partitions": []},
                {"id": 13, "name": "nvme0n1", "type": "physical", "used_for": "Unused"},
                {"id": 14, "name": "nvme1n1", "type": "physical",
                 "used_for": "Spare raid-1 device for md0"},
                {"id": 20, "name": "md0", "type": "virtual",
                 "filesystem": {"fstype": "ext4", "mount_point": "/", "label": null}},
                "not an object"
            ]
        }))
        .expect("parses");
        let want = strata_plan::MachineStorage {
            raids: vec![strata_plan::MachineRaid {
                name: "md0".into(),
                level: "raid-1".into(),
                members: vec!["sdb".into(), "sda".into()],
                fstype: Some("ext4".into()),
                mount: Some("/".into()),
            }],
        };
        // The boot disk is the root array's first member in the design: sdb there,
        // sda in MAAS.
        let mut got = m.storage_summary();
        assert_eq!(got.remove("boot.disk").as_deref(), Some("sda"));
        let mut expected = want.summary();
        assert_eq!(expected.remove("boot.disk").as_deref(), Some("sdb"));
        assert_eq!(got, expected);
        // MAAS's flat layout: no arrays, the ESP on the boot disk only.
        let flat: Machine = serde_json::from_value(serde_json::json!({
            "system_id": "x",
            "boot_disk": {"name": "sda"},
            "blockdevice_set": [{"id": 1, "name": "sda", "type": "physical", "partitions": [
                {"id": 1, "type": "partition", "filesystem": {"fstype": "fat32", "mount_point": "/boot/efi"}},
                {"id": 2, "type": "partition", "filesystem": {"fstype": "ext4", "mount_point": "/"}}
            ]}]
        }))
        .expect("parses");
        let s = flat.storage_summary();
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s["boot.efi"], "/boot/efi");
        // A machine MAAS registered as deployed: no disks, nothing.
        let bare: Machine =
            serde_json::from_value(serde_json::json!({"system_id": "x", "boot_disk": null}))
                .expect("parses");
        assert!(bare.storage_summary().is_empty());
    }

    #[test]
    fn status_names_are_maas_names() {
        assert_eq!(
            status::name(status::FAILED_COMMISSIONING),
            "Failed commissioning"
        );
        assert_eq!(status::name(status::FAILED_RELEASING), "Releasing failed");
        assert_eq!(status::parse("deployed"), Some(status::DEPLOYED));
        let m: Machine = serde_json::from_value(serde_json::json!({
            "system_id": "abc", "status": 6, "status_name": null,
            "hardware_info": {"system_serial": "Unknown"}
        }))
        .expect("machine");
        assert_eq!(m.status_name(), "Deployed");
        assert_eq!(m.serial(), None);
    }

    #[test]
    fn macs_serials_and_markers() {
        assert_eq!(
            normalize_mac("52-54-00-AA-bb-0C").as_deref(),
            Some("52:54:00:aa:bb:0c")
        );
        assert_eq!(
            normalize_mac("5254.00aa.bb0c").as_deref(),
            Some("52:54:00:aa:bb:0c")
        );
        assert!(normalize_mac("52:54:00:aa:bb").is_none());
        assert_eq!(known_serial(" SN1 ").as_deref(), Some("SN1"));
        assert!(known_serial("To Be Filled By O.E.M.").is_none());
        assert_eq!(
            marked_serial("built by hand strata-serial=SN9 ok").as_deref(),
            Some("SN9")
        );
        assert!(marked_serial("nothing").is_none());
    }
}
