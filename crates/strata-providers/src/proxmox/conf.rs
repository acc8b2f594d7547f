//! Pure helpers over Proxmox VE's textual formats: tag lists, drive and NIC property
//! strings, disk sizes, the boot disk of a guest configuration.

use std::collections::BTreeMap;

use serde_json::Value;

pub(crate) const MIB: u64 = 1 << 20;
pub(crate) const GIB: u64 = 1 << 30;

/// The tags of a `tags` value (`a;b`, `a,b` or `a b`), sorted and without duplicates.
pub(crate) fn split_tags(s: &str) -> Vec<String> {
    let mut tags: Vec<String> = s
        .split([';', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// A strata ownership tag of another fleet (`strata-*`, but not `owner`).
pub(crate) fn foreign_owner(tags: &[String], owner: &str) -> Option<String> {
    tags.iter()
        .find(|t| t.starts_with("strata-") && t.as_str() != owner)
        .cloned()
}

/// A JSON value as PVE text (strings as they are, numbers printed).
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A JSON number or numeric string as `u64` (PVE returns both, depending on version).
pub(crate) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Split a property string (`default,k=v,k2=v2`) into its parts; the first part may be
/// a bare value (the default key) or `model=MAC` for NICs.
fn parts(s: &str) -> Vec<(Option<String>, String)> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (Some(k.trim().to_string()), v.trim().to_string()),
            None => (None, p.to_string()),
        })
        .collect()
}

/// A drive (`scsi0`, `virtio1`, ...): its volume and options.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Drive {
    pub file: String,
    pub opts: BTreeMap<String, String>,
}

impl Drive {
    pub(crate) fn parse(s: &str) -> Option<Drive> {
        let mut file = None;
        let mut opts = BTreeMap::new();
        for (k, v) in parts(s) {
            match k.as_deref() {
                None if file.is_none() => file = Some(v),
                Some("file") => file = Some(v),
                Some(k) => {
                    opts.insert(k.to_string(), v);
                }
                None => return None,
            }
        }
        Some(Drive { file: file?, opts })
    }

    pub(crate) fn is_cdrom(&self) -> bool {
        self.file == "cdrom" || self.opts.get("media").is_some_and(|m| m == "cdrom")
    }

    /// The `size=` option in bytes (0 when absent).
    pub(crate) fn size_bytes(&self) -> u64 {
        self.opts
            .get("size")
            .and_then(|s| parse_size(s))
            .unwrap_or(0)
    }

    /// The storage the volume lives on (`ceph-vm` of `ceph-vm:vm-100-disk-0`).
    pub(crate) fn storage(&self) -> Option<&str> {
        if self.file.starts_with('/') {
            return None;
        }
        self.file.split_once(':').map(|(s, _)| s)
    }
}

/// A PVE disk size (`32G`, `512M`, `1.5T`, `4096` bytes).
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        (i, 'T' | 't') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    (n >= 0.0).then(|| (n * mult as f64).round() as u64)
}

const DISK_BUSES: [&str; 4] = ["scsi", "virtio", "sata", "ide"];

/// Whether a configuration key names a disk slot (not `unusedN`, `efidisk0`, ...).
pub(crate) fn is_disk_key(k: &str) -> bool {
    DISK_BUSES.iter().any(|bus| {
        k.strip_prefix(bus)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
    })
}

/// The boot disk of a guest configuration: the first disk of `boot: order=...`, else
/// the legacy `bootdisk`, else the first disk by bus (scsi, virtio, sata, ide). This is
/// the disk `maxdisk` reports and the one strata resizes.
pub(crate) fn boot_disk(conf: &serde_json::Map<String, Value>) -> Option<(String, Drive)> {
    let disk = |key: &str| -> Option<(String, Drive)> {
        if !is_disk_key(key) {
            return None;
        }
        let d = Drive::parse(&text(conf.get(key)?))?;
        (!d.is_cdrom()).then(|| (key.to_string(), d))
    };
    if let Some(boot) = conf.get("boot").map(text) {
        for part in boot.split(',') {
            if let Some(order) = part.trim().strip_prefix("order=") {
                for key in order.split(';') {
                    if let Some(found) = disk(key.trim()) {
                        return Some(found);
                    }
                }
            }
        }
    }
    if let Some(found) = conf.get("bootdisk").map(text).and_then(|k| disk(&k)) {
        return Some(found);
    }
    for bus in DISK_BUSES {
        for i in 0..31 {
            if let Some(found) = disk(&format!("{bus}{i}")) {
                return Some(found);
            }
        }
    }
    None
}

/// A NIC property string split into model, MAC address and the other options.
#[derive(Clone, Debug, PartialEq)]
struct Nic {
    model: String,
    mac: Option<String>,
    opts: BTreeMap<String, String>,
}

const NIC_MODELS: [&str; 11] = [
    "virtio", "e1000", "e1000e", "rtl8139", "vmxnet3", "i82551", "i82557b", "i82559er", "ne2k_isa",
    "ne2k_pci", "pcnet",
];

impl Nic {
    fn parse(s: &str) -> Option<Nic> {
        let mut model = None;
        let mut mac = None;
        let mut opts = BTreeMap::new();
        for (k, v) in parts(s) {
            match k {
                None if model.is_none() => model = Some(v),
                Some(k) if k == "model" => model = Some(v),
                Some(k) if k == "macaddr" => mac = Some(v),
                Some(k) if model.is_none() && NIC_MODELS.contains(&k.as_str()) => {
                    model = Some(k);
                    mac = Some(v);
                }
                Some(k) => {
                    opts.insert(k, v);
                }
                None => return None,
            }
        }
        Some(Nic {
            model: model?,
            mac,
            opts,
        })
    }

    fn print(&self) -> String {
        let mut out = match &self.mac {
            Some(m) => format!("{}={m}", self.model),
            None => self.model.clone(),
        };
        for (k, v) in &self.opts {
            out.push_str(&format!(",{k}={v}"));
        }
        out
    }
}

/// A NIC as strata describes it: the model and options without the MAC address
/// (which Proxmox assigns), options sorted; an unparsable value as it is.
pub(crate) fn nic_without_mac(s: &str) -> String {
    match Nic::parse(s) {
        Some(mut nic) => {
            nic.mac = None;
            nic.print()
        }
        None => s.to_string(),
    }
}

/// The values of `<prefix>0`, `<prefix>1`, ... of a configuration, in index order.
pub(crate) fn indexed(conf: &serde_json::Map<String, Value>, prefix: &str) -> Vec<String> {
    let mut found: Vec<(usize, String)> = conf
        .iter()
        .filter_map(|(k, v)| {
            let i = k.strip_prefix(prefix)?.parse::<usize>().ok()?;
            Some((i, text(v)))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, v)| v).collect()
}

/// The value to write for a NIC: the desired settings, keeping the MAC address the
/// guest already has for that slot (same model) so a reconfiguration does not change
/// the guest's identity on the network.
pub(crate) fn net_value(current: Option<&str>, desired: &str) -> String {
    let Some(mut want) = Nic::parse(desired) else {
        return desired.to_string();
    };
    if want.mac.is_none()
        && let Some(have) = current.and_then(Nic::parse)
        && have.model == want.model
    {
        want.mac = have.mac;
    }
    want.print()
}

/// Whether the current NIC already has the desired settings (a MAC address in the
/// desired value must match; without one, any is fine).
pub(crate) fn net_matches(current: Option<&str>, desired: &str) -> bool {
    let (Some(have), Some(want)) = (current.and_then(Nic::parse), Nic::parse(desired)) else {
        return false;
    };
    have.model == want.model
        && have.opts == want.opts
        && want
            .mac
            .as_ref()
            .is_none_or(|m| have.mac.as_ref().is_some_and(|h| h.eq_ignore_ascii_case(m)))
}

/// The node a task runs on, from its UPID (`UPID:node:pid:pstart:starttime:type:id:user:`).
pub(crate) fn upid_node(upid: &str) -> Option<&str> {
    let mut it = upid.split(':');
    (it.next()? == "UPID").then_some(())?;
    it.next().filter(|n| !n.is_empty())
}

/// Percent-encode one path segment (UPIDs contain `:`, `@` and `!`, which are fine;
/// anything outside the unreserved and sub-delimiter sets is escaped).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_split_on_every_separator_and_sort() {
        assert_eq!(
            split_tags("strata-x;role-ci,b a;;"),
            vec!["a", "b", "role-ci", "strata-x"]
        );
        assert!(split_tags("").is_empty());
        let t = split_tags("strata-other;strata-mine");
        assert_eq!(
            foreign_owner(&t, "strata-mine").as_deref(),
            Some("strata-other")
        );
        assert_eq!(
            foreign_owner(&split_tags("strata-mine;x"), "strata-mine"),
            None
        );
    }

    #[test]
    fn sizes_and_drives() {
        assert_eq!(parse_size("3G"), Some(3 * GIB));
        assert_eq!(parse_size("512M"), Some(512 * MIB));
        assert_eq!(parse_size("1.5T"), Some(3 * (1u64 << 39)));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        let d = Drive::parse("ceph-vm:vm-100-disk-0,discard=on,size=32G").expect("drive");
        assert_eq!(d.storage(), Some("ceph-vm"));
        assert_eq!(d.size_bytes(), 32 * GIB);
        assert!(!d.is_cdrom());
        assert!(
            Drive::parse("local:iso/x.iso,media=cdrom")
                .expect("cd")
                .is_cdrom()
        );
    }

    #[test]
    fn the_boot_disk_follows_the_boot_order() {
        let conf = json!({
            "boot": "order=ide2;virtio1;net0",
            "ide2": "local:cloudinit,media=cdrom",
            "scsi0": "s:vm-1-disk-0,size=8G",
            "virtio1": "s:vm-1-disk-1,size=20G",
        });
        let conf = conf.as_object().expect("object");
        let (k, d) = boot_disk(conf).expect("disk");
        assert_eq!((k.as_str(), d.size_bytes()), ("virtio1", 20 * GIB));
        let mut plain = conf.clone();
        plain.remove("boot");
        assert_eq!(boot_disk(&plain).expect("disk").0, "scsi0");
        assert!(!is_disk_key("unused0") && !is_disk_key("scsihw") && is_disk_key("sata5"));
    }

    #[test]
    fn nics_keep_their_mac() {
        let cur = "virtio=BC:24:11:00:00:01,bridge=vmbr0";
        assert_eq!(
            net_value(Some(cur), "virtio,bridge=vmbr0,tag=10"),
            "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=10"
        );
        assert_eq!(
            net_value(Some(cur), "e1000,bridge=vmbr1"),
            "e1000,bridge=vmbr1"
        );
        assert_eq!(
            net_value(None, "virtio,bridge=vmbr0"),
            "virtio,bridge=vmbr0"
        );
        assert!(net_matches(
            Some("virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=10"),
            "virtio,tag=10,bridge=vmbr0"
        ));
        assert!(!net_matches(Some(cur), "virtio,bridge=vmbr0,tag=10"));
        assert!(!net_matches(None, "virtio,bridge=vmbr0"));
    }

    #[test]
    fn upids_rules_and_segments() {
        let upid = "UPID:pve2:0000A1B2:01234567:65000000:qmclone:9000:strata@pve!twin:";
        assert_eq!(upid_node(upid), Some("pve2"));
        assert_eq!(upid_node("nope"), None);
        assert_eq!(segment(upid), upid);
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(as_u64(&json!("101")), Some(101));
        assert_eq!(as_u64(&json!(101)), Some(101));
    }
}
