//! Parameter schemas of the simulated methods and their validation.
//!
//! Proxmox VE checks every call's parameters (path, query and body merged) against the
//! method's JSON schema before the handler runs; any failure is a 400 "Parameter
//! verification failed." with an `errors` object keyed by parameter. The rules mirrored
//! here: unknown parameters are rejected (`additionalProperties: 0`), required ones must
//! be present, booleans are `1`/`0` (or JSON booleans), integers are decimal strings or
//! JSON integers, then format, pattern, length, range and enumeration checks, in that
//! order. Values arrive as strings in forms and with their JSON types in JSON bodies.

use std::collections::BTreeMap;

use serde_json::Value;

pub type Errors = BTreeMap<String, String>;
pub type Params = BTreeMap<String, Value>;

#[derive(Clone, Copy, Debug)]
pub enum Ty {
    Str,
    Int(Option<i64>, Option<i64>),
    Bool,
    Num(Option<f64>, Option<f64>),
    Enum(&'static [&'static str]),
}

impl Ty {
    fn name(&self) -> &'static str {
        match self {
            Ty::Str | Ty::Enum(_) => "string",
            Ty::Int(..) => "integer",
            Ty::Bool => "boolean",
            Ty::Num(..) => "number",
        }
    }
}

/// Value formats (named formats, property strings and patterns of the vendor schema).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    Plain,
    Node,
    Vmid,
    VmidList,
    DnsName,
    Ip,
    StorageId,
    StorageIdList,
    PoolId,
    ConfigId,
    ConfigIdList,
    TagList,
    Urlencoded,
    HaSid,
    HaSidList,
    HaNodeList,
    ContentList,
    TaskStatusList,
    Net,
    Drive,
    Memory,
    /// `CIDR`: an address with a prefix length.
    Cidr,
    /// `storage-pair-list`: `SOURCE:TARGET` pairs, a single storage, or `1`.
    StoragePairList,
    // patterns
    Serial,
    Parallel,
    VmGenId,
    StartDate,
    BootDisk,
}

impl Fmt {
    fn is_list(self) -> bool {
        matches!(
            self,
            Fmt::VmidList
                | Fmt::StorageIdList
                | Fmt::ConfigIdList
                | Fmt::TagList
                | Fmt::ContentList
                | Fmt::TaskStatusList
                | Fmt::HaSidList
                | Fmt::HaNodeList
        )
    }
}

/// One parameter of a method.
#[derive(Clone, Copy, Debug)]
pub struct P {
    pub name: &'static str,
    pub ty: Ty,
    pub optional: bool,
    pub fmt: Fmt,
    pub max_len: Option<usize>,
}

impl P {
    pub const fn req(name: &'static str, ty: Ty) -> P {
        P {
            name,
            ty,
            optional: false,
            fmt: Fmt::Plain,
            max_len: None,
        }
    }
    pub const fn opt(name: &'static str, ty: Ty) -> P {
        P {
            name,
            ty,
            optional: true,
            fmt: Fmt::Plain,
            max_len: None,
        }
    }
    pub const fn fmt(self, fmt: Fmt) -> P {
        P { fmt, ..self }
    }
    pub const fn max(self, n: usize) -> P {
        P {
            max_len: Some(n),
            ..self
        }
    }
}

/// A method's parameters: a fixed list, plus (for qemu create/config) every VM
/// configuration key as an optional parameter.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub params: &'static [P],
    pub qemu: bool,
}

const S: Ty = Ty::Str;
const B: Ty = Ty::Bool;
pub const VMID_TY: Ty = Ty::Int(Some(100), Some(999_999_999));
const NONNEG: Ty = Ty::Int(Some(0), None);

pub const NODE: P = P::req("node", S).fmt(Fmt::Node);
pub const VMID: P = P::req("vmid", VMID_TY).fmt(Fmt::Vmid);

const NIC_MODELS: &[&str] = &[
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];

const KEYBOARDS: &[&str] = &[
    "de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is",
    "it", "ja", "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr",
];

const LOCKS: &[&str] = &[
    "backup",
    "clone",
    "create",
    "migrate",
    "rollback",
    "snapshot",
    "snapshot-delete",
    "suspending",
    "suspended",
];

const OSTYPES: &[&str] = &[
    "other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24",
    "l26", "solaris",
];

/// The VM configuration keys (those without an index).
static QEMU_KEYS: &[P] = &[
    P::opt("acpi", B),
    P::opt("affinity", S),
    P::opt("agent", S),
    P::opt("allow-ksm", B),
    P::opt("amd-sev", S),
    P::opt("arch", Ty::Enum(&["x86_64", "aarch64"])),
    P::opt("args", S),
    P::opt("audio0", S),
    P::opt("autostart", B),
    P::opt("balloon", NONNEG),
    P::opt("bios", Ty::Enum(&["seabios", "ovmf"])),
    P::opt("boot", S),
    P::opt("bootdisk", S).fmt(Fmt::BootDisk),
    P::opt("cdrom", S),
    P::opt("cicustom", S),
    P::opt("cipassword", S),
    P::opt(
        "citype",
        Ty::Enum(&["configdrive2", "nocloud", "opennebula"]),
    ),
    P::opt("ciupgrade", B),
    P::opt("ciuser", S),
    P::opt("cores", Ty::Int(Some(1), None)),
    P::opt("cpu", S),
    P::opt("cpulimit", Ty::Num(Some(0.0), Some(128.0))),
    P::opt("cpuunits", Ty::Int(Some(1), Some(262_144))),
    P::opt("description", S).max(8192),
    P::opt("efidisk0", S).fmt(Fmt::Drive),
    P::opt("freeze", B),
    P::opt("hookscript", S),
    P::opt("hotplug", S),
    P::opt("hugepages", Ty::Enum(&["any", "2", "1024"])),
    P::opt("intel-tdx", S),
    P::opt("ivshmem", S),
    P::opt("keephugepages", B),
    P::opt("keyboard", Ty::Enum(KEYBOARDS)),
    P::opt("kvm", B),
    P::opt("localtime", B),
    P::opt("lock", Ty::Enum(LOCKS)),
    P::opt("machine", S),
    P::opt("memory", S).fmt(Fmt::Memory),
    P::opt("migrate_downtime", Ty::Num(Some(0.0), None)),
    P::opt("migrate_speed", NONNEG),
    P::opt("name", S).fmt(Fmt::DnsName),
    P::opt("nameserver", S),
    P::opt("numa", B),
    P::opt("onboot", B),
    P::opt("ostype", Ty::Enum(OSTYPES)),
    P::opt("protection", B),
    P::opt("reboot", B),
    P::opt("rng0", S),
    P::opt(
        "scsihw",
        Ty::Enum(&[
            "lsi",
            "lsi53c810",
            "virtio-scsi-pci",
            "virtio-scsi-single",
            "megasas",
            "pvscsi",
        ]),
    ),
    P::opt("searchdomain", S),
    P::opt("shares", Ty::Int(Some(0), Some(50_000))),
    P::opt("smbios1", S).max(512),
    P::opt("smp", Ty::Int(Some(1), None)),
    P::opt("sockets", Ty::Int(Some(1), None)),
    P::opt("spice_enhancements", S),
    P::opt("sshkeys", S).fmt(Fmt::Urlencoded),
    P::opt("startdate", S).fmt(Fmt::StartDate),
    P::opt("startup", S),
    P::opt("tablet", B),
    P::opt("tags", S).fmt(Fmt::TagList),
    P::opt("tdf", B),
    P::opt("template", B),
    P::opt("tpmstate0", S).fmt(Fmt::Drive),
    P::opt("vcpus", Ty::Int(Some(1), None)),
    P::opt("vga", S),
    P::opt("vmgenid", S).fmt(Fmt::VmGenId),
    P::opt("vmstatestorage", S).fmt(Fmt::StorageId),
    P::opt("watchdog", S),
];

/// Indexed VM configuration keys: prefix, how many, type and format.
static QEMU_INDEXED: &[(&str, u32, Fmt)] = &[
    ("hostpci", 16, Fmt::Plain),
    ("ide", 4, Fmt::Drive),
    ("ipconfig", 32, Fmt::Plain),
    ("net", 32, Fmt::Net),
    ("numa", 8, Fmt::Plain),
    ("parallel", 3, Fmt::Parallel),
    ("sata", 6, Fmt::Drive),
    ("scsi", 31, Fmt::Drive),
    ("serial", 4, Fmt::Serial),
    ("unused", 256, Fmt::Drive),
    ("usb", 14, Fmt::Plain),
    ("virtio", 16, Fmt::Drive),
    ("virtiofs", 10, Fmt::Plain),
];

/// The schema of a VM configuration key, when `key` is one.
pub fn qemu_key(key: &str) -> Option<P> {
    if let Some(p) = QEMU_KEYS.iter().find(|p| p.name == key) {
        return Some(*p);
    }
    let digits = key.len() - key.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let (prefix, num) = key.split_at(key.len() - digits);
    if num.len() > 1 && num.starts_with('0') {
        return None;
    }
    let n: u32 = num.parse().ok()?;
    let (name, max, fmt) = QEMU_INDEXED.iter().find(|(p, _, _)| *p == prefix)?;
    (n < *max).then(|| P::opt(name, S).fmt(*fmt))
}

/// Every VM configuration key in the vendor schema's notation (`net[n]` for indexed ones).
pub fn qemu_key_names() -> Vec<String> {
    let mut v: Vec<String> = QEMU_KEYS.iter().map(|p| p.name.to_string()).collect();
    v.extend(QEMU_INDEXED.iter().map(|(p, _, _)| format!("{p}[n]")));
    v
}

/// Is `key` a disk-like configuration key (a volume lives in it)?
pub fn is_drive_key(key: &str) -> bool {
    qemu_key(key).is_some_and(|p| p.fmt == Fmt::Drive)
}

fn lookup(spec: &Spec, key: &str) -> Option<P> {
    if let Some(p) = spec.params.iter().find(|p| p.name == key) {
        return Some(*p);
    }
    if spec.qemu { qemu_key(key) } else { None }
}

pub const NOT_IN_SCHEMA: &str =
    "property is not defined in schema and the schema does not allow additional properties";
pub const MISSING: &str = "property is missing and it is not optional";

/// Check and normalise the merged parameters of a call.
pub fn validate(spec: &Spec, raw: &BTreeMap<String, Value>) -> Result<Params, Errors> {
    let mut errors = Errors::new();
    let mut out = Params::new();
    for (k, v) in raw {
        if v.is_null() {
            continue;
        }
        let Some(p) = lookup(spec, k) else {
            errors.insert(k.clone(), NOT_IN_SCHEMA.into());
            continue;
        };
        match check_value(&p, k, v) {
            Ok(v) => {
                out.insert(k.clone(), v);
            }
            Err(e) => {
                errors.insert(k.clone(), e);
            }
        }
    }
    for p in spec.params {
        if !p.optional && !out.contains_key(p.name) && !errors.contains_key(p.name) {
            errors.insert(p.name.into(), MISSING.into());
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

pub fn is_integer(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

pub fn is_number(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    if let Some(e) = exp {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    let (int, frac) = match mant.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (mant, None),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    match frac {
        None => !int.is_empty() && digits(int),
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
    }
}

/// Check one parameter value; the normalised value, or the error text.
pub fn check_value(p: &P, key: &str, v: &Value) -> Result<Value, String> {
    let tyname = p.ty.name();
    let s = match v {
        Value::Array(items) if matches!(p.ty, Ty::Str) && p.fmt.is_list() => {
            let mut parts = Vec::new();
            for it in items {
                match it {
                    Value::String(s) => parts.push(s.clone()),
                    Value::Number(n) => parts.push(n.to_string()),
                    _ => return Err(format!("type check ('{tyname}') failed")),
                }
            }
            parts.join(",")
        }
        Value::Array(_) => return Err(format!("type check ('{tyname}') failed - got ARRAY")),
        Value::Object(_) => return Err(format!("type check ('{tyname}') failed - got HASH")),
        Value::Bool(b) => {
            if matches!(p.ty, Ty::Bool) {
                return Ok(Value::Bool(*b));
            }
            return Err(format!(
                "type check ('{tyname}') failed - got JSON::PP::Boolean"
            ));
        }
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => return Err(MISSING.into()),
    };
    match p.ty {
        Ty::Int(..) if !is_integer(&s) => {
            return Err(format!("type check ('integer') failed - got '{s}'"));
        }
        Ty::Bool if s != "1" && s != "0" => {
            return Err(format!("type check ('boolean') failed - got '{s}'"));
        }
        Ty::Num(..) if !is_number(&s) => {
            return Err(format!("type check ('number') failed - got '{s}'"));
        }
        _ => {}
    }
    if let Err(e) = check_format(p.fmt, key, &s) {
        return Err(format!("invalid format - {e}"));
    }
    if !check_pattern(p.fmt, &s) {
        return Err("value does not match the regex pattern".into());
    }
    if let Some(max) = p.max_len
        && s.chars().count() > max
    {
        return Err(format!("value may only be {max} characters long"));
    }
    if is_number(&s) {
        let x: f64 = s.parse().unwrap_or(0.0);
        let (min, max) = match p.ty {
            Ty::Int(min, max) => (min.map(|m| m as f64), max.map(|m| m as f64)),
            Ty::Num(min, max) => (min, max),
            _ => (None, None),
        };
        if let Some(max) = max
            && x > max
        {
            return Err(format!(
                "value must have a maximum value of {}",
                fmt_num(max)
            ));
        }
        if let Some(min) = min
            && x < min
        {
            return Err(format!(
                "value must have a minimum value of {}",
                fmt_num(min)
            ));
        }
    }
    if let Ty::Enum(values) = p.ty
        && !values.contains(&s.as_str())
    {
        return Err(format!(
            "value '{s}' does not have a value in the enumeration '{}'",
            values.join(", ")
        ));
    }
    Ok(match p.ty {
        Ty::Int(..) => match s.trim_start_matches('+').parse::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => return Err(format!("type check ('integer') failed - got '{s}'")),
        },
        Ty::Bool => Value::Bool(s == "1"),
        Ty::Num(..) => serde_json::Number::from_f64(s.parse().unwrap_or(0.0))
            .map(Value::Number)
            .unwrap_or(Value::String(s)),
        Ty::Str | Ty::Enum(_) => Value::String(s),
    })
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Perl's `split_list`: items separated by blanks, commas, semicolons or NULs.
pub fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '\0')
        .filter(|x| !x.is_empty())
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`
pub fn is_hostname_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_alnum(b[0])
        && is_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum(c) || c == b'-')
}

pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_hostname_label)
}

pub fn check_storage_id(id: &str) -> Result<(), String> {
    if id.len() < 2 {
        return Err(format!(
            "storage ID '{id}' cannot be shorter than 2 characters\n"
        ));
    }
    let b = id.as_bytes();
    let ok = b[0].is_ascii_alphabetic()
        && is_alnum(b[b.len() - 1])
        && b.iter()
            .all(|&c| is_alnum(c) || c == b'-' || c == b'_' || c == b'.');
    if !ok {
        return Err(format!("storage ID '{id}' contains illegal characters\n"));
    }
    Ok(())
}

fn is_configid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|&c| is_alnum(c) || c == b'_' || c == b'-')
}

fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (is_alnum(b[0]) || b[0] == b'_')
        && b.iter()
            .all(|&c| is_alnum(c) || matches!(c, b'_' | b'-' | b'+' | b'.'))
}

fn is_vmid_text(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=9).contains(&b.len()) && b[0] != b'0' && b.iter().all(|c| c.is_ascii_digit())
}

/// `vm:100`, `ct:101` or a bare VMID.
pub fn is_ha_sid(s: &str) -> bool {
    if let Some((t, name)) = s.split_once(':') {
        !t.is_empty()
            && t.bytes().all(|c| c.is_ascii_lowercase())
            && !name.is_empty()
            && !name.contains(char::is_whitespace)
    } else {
        !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
    }
}

fn check_format(fmt: Fmt, key: &str, s: &str) -> Result<(), String> {
    match fmt {
        Fmt::Plain
        | Fmt::Serial
        | Fmt::Parallel
        | Fmt::VmGenId
        | Fmt::StartDate
        | Fmt::BootDisk => Ok(()),
        Fmt::Node => {
            if is_hostname_label(s) {
                Ok(())
            } else {
                Err("value does not look like a valid node name\n".into())
            }
        }
        Fmt::Vmid => {
            if is_vmid_text(s) {
                Ok(())
            } else {
                Err("value does not look like a valid VM ID\n".into())
            }
        }
        Fmt::VmidList => {
            for v in split_list(s) {
                if !is_vmid_text(v) {
                    return Err("value does not look like a valid VM ID\n".into());
                }
            }
            Ok(())
        }
        Fmt::DnsName => {
            if is_dns_name(s) {
                Ok(())
            } else {
                Err("value does not look like a valid DNS name\n".into())
            }
        }
        Fmt::Ip => {
            if s.parse::<std::net::IpAddr>().is_ok() {
                Ok(())
            } else {
                Err("value does not look like a valid IP address\n".into())
            }
        }
        Fmt::StorageId => check_storage_id(s),
        Fmt::StorageIdList => split_list(s).try_for_each(check_storage_id),
        Fmt::PoolId => {
            let parts: Vec<&str> = s.split('/').collect();
            if parts.len() > 3 {
                return Err(format!(
                    "pool name '{s}' nested too deeply (max levels = 3)\n"
                ));
            }
            let ok = parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|c| is_alnum(c) || matches!(c, b'.' | b'-' | b'_'))
            });
            if ok {
                Ok(())
            } else {
                Err(format!("pool name '{s}' contains invalid characters\n"))
            }
        }
        Fmt::ConfigId => {
            if is_configid(s) {
                Ok(())
            } else {
                Err(format!("invalid configuration ID '{s}'\n"))
            }
        }
        Fmt::ConfigIdList => {
            for v in split_list(s) {
                if !is_configid(v) {
                    return Err(format!("invalid configuration ID '{v}'\n"));
                }
            }
            Ok(())
        }
        Fmt::TagList => {
            if split_list(s).all(is_tag) {
                Ok(())
            } else {
                Err("invalid characters in tag\n".into())
            }
        }
        Fmt::Urlencoded => {
            let ok = s.bytes().all(|c| {
                is_alnum(c)
                    || matches!(
                        c,
                        b'-' | b'%' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
                    )
            });
            if ok {
                Ok(())
            } else {
                Err(format!("invalid urlencoded string: {s}\n"))
            }
        }
        Fmt::HaSid => {
            if is_ha_sid(s) {
                Ok(())
            } else {
                Err("value does not look like a valid ha resource id\n".into())
            }
        }
        Fmt::HaSidList => {
            if split_list(s).all(is_ha_sid) {
                Ok(())
            } else {
                Err("value does not look like a valid ha resource id\n".into())
            }
        }
        Fmt::HaNodeList => {
            let ok = split_list(s).all(|n| match n.split_once(':') {
                Some((node, prio)) => {
                    is_hostname_label(node)
                        && !prio.is_empty()
                        && prio.bytes().all(|c| c.is_ascii_digit())
                }
                None => is_hostname_label(n),
            });
            if ok {
                Ok(())
            } else {
                Err("value does not look like a valid ha node\n".into())
            }
        }
        Fmt::ContentList => {
            const CONTENT: &[&str] = &[
                "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
            ];
            for v in split_list(s) {
                if !CONTENT.contains(&v) {
                    return Err(format!("invalid content type '{v}'\n"));
                }
            }
            Ok(())
        }
        Fmt::TaskStatusList => {
            for v in split_list(s) {
                if !["ok", "warning", "error", "unknown"].contains(&v.to_ascii_lowercase().as_str())
                {
                    return Err(format!("invalid status type '{v}'\n"));
                }
            }
            Ok(())
        }
        Fmt::Cidr => {
            let ok = s.split_once('/').is_some_and(|(ip, len)| {
                let max = match ip.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(_)) => 32,
                    Ok(std::net::IpAddr::V6(_)) => 128,
                    Err(_) => return false,
                };
                len.parse::<u8>().is_ok_and(|l| l <= max)
            });
            if ok {
                Ok(())
            } else {
                Err("value does not look like a valid CIDR network\n".into())
            }
        }
        Fmt::StoragePairList => {
            // pve-common `PVE/JSONSchema.pm` `parse_idmap`: `1`, one ID, or pairs.
            if s == "1" {
                return Ok(());
            }
            for item in split_list(s) {
                let ok = match item.split_once(':') {
                    Some((a, b)) => check_storage_id(a).is_ok() && check_storage_id(b).is_ok(),
                    None => check_storage_id(item).is_ok(),
                };
                if !ok {
                    return Err(format!("invalid format - storage ID pair '{item}'\n"));
                }
            }
            Ok(())
        }
        Fmt::Net => parse_net(key, s).map(|_| ()),
        Fmt::Drive => parse_drive(key, s).map(|_| ()),
        Fmt::Memory => parse_memory(key, s).map(|_| ()),
    }
}

fn check_pattern(fmt: Fmt, s: &str) -> bool {
    match fmt {
        Fmt::Serial => s == "socket" || (s.starts_with("/dev/") && s.len() > 5),
        Fmt::Parallel => {
            let num = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
            s.strip_prefix("/dev/parport").is_some_and(num)
                || s.strip_prefix("/dev/usb/lp").is_some_and(num)
        }
        Fmt::VmGenId => {
            if s == "0" || s == "1" {
                return true;
            }
            let parts: Vec<&str> = s.split('-').collect();
            parts.len() == 5
                && parts
                    .iter()
                    .zip([8, 4, 4, 4, 12])
                    .all(|(p, n)| p.len() == n && p.bytes().all(|c| c.is_ascii_hexdigit()))
        }
        Fmt::StartDate => {
            if s == "now" {
                return true;
            }
            let (date, time) = match s.split_once('T') {
                Some((d, t)) => (d, Some(t)),
                None => (s, None),
            };
            let nums = |x: &str, lens: &[std::ops::RangeInclusive<usize>], sep: char| {
                let parts: Vec<&str> = x.split(sep).collect();
                parts.len() == lens.len()
                    && parts
                        .iter()
                        .zip(lens)
                        .all(|(p, l)| l.contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()))
            };
            nums(date, &[4..=4, 1..=2, 1..=2], '-')
                && time.is_none_or(|t| nums(t, &[1..=2, 1..=2, 1..=2], ':'))
        }
        Fmt::BootDisk => ["ide", "sata", "scsi", "virtio"].iter().any(|p| {
            s.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
        }),
        _ => true,
    }
}

/// Booleans inside property strings (`1|0|on|off|yes|no|true|false`).
pub fn parse_boolean(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// A property string's keys: name, type, optional.
struct PsKey {
    name: &'static str,
    ty: Ty,
    optional: bool,
}

const fn k(name: &'static str, ty: Ty) -> PsKey {
    PsKey {
        name,
        ty,
        optional: true,
    }
}

/// Split a property string (`default,key=value,...`) into its keys; syntax errors as
/// PVE words them. `alias` maps alias keys (`virtio=MAC`) to (key, value-key).
fn split_property_string(
    s: &str,
    default_key: &str,
    alias: &dyn Fn(&str) -> Option<&'static str>,
) -> Result<BTreeMap<String, String>, String> {
    let mut res: BTreeMap<String, String> = BTreeMap::new();
    let mut have_default = false;
    for part in s.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        if let Some((key, v)) = part.split_once('=') {
            if key.is_empty() || v.is_empty() {
                return Err("missing key in comma-separated list property\n".into());
            }
            if res.contains_key(key) {
                return Err(format!(
                    "duplicate key in comma-separated list property: {key}\n"
                ));
            }
            if let Some(target) = alias(key) {
                if res.contains_key(default_key) {
                    return Err(format!("key alias '{default_key}' is already defined\n"));
                }
                res.insert(default_key.into(), key.into());
                if res.contains_key(target) {
                    return Err(format!("key '{target}' is already defined (via alias)\n"));
                }
                res.insert(target.into(), v.into());
            } else {
                res.insert(key.into(), v.into());
            }
        } else {
            if have_default || res.contains_key(default_key) {
                return Err(format!(
                    "duplicate key in comma-separated list property: {default_key}\n"
                ));
            }
            have_default = true;
            res.insert(default_key.into(), part.into());
        }
    }
    Ok(res)
}

fn check_property_values(
    path: &str,
    keys: &[PsKey],
    values: &BTreeMap<String, String>,
    required: &[&str],
) -> Result<(), String> {
    let mut errs: Vec<String> = Vec::new();
    for (name, v) in values {
        let Some(key) = keys.iter().find(|x| x.name == name) else {
            return Err(format!(
                "invalid key in comma-separated list property: {name}\n"
            ));
        };
        let p = P {
            name: key.name,
            ty: key.ty,
            optional: key.optional,
            fmt: Fmt::Plain,
            max_len: None,
        };
        let v = match key.ty {
            Ty::Bool => parse_boolean(v)
                .map(|b| if b { "1" } else { "0" }.to_string())
                .unwrap_or(v.clone()),
            _ => v.clone(),
        };
        if let Err(e) = check_value(&p, name, &Value::String(v)) {
            errs.push(format!("{path}.{name}: {e}"));
        }
    }
    for r in required {
        if !values.contains_key(*r) {
            errs.push(format!("{path}.{r}: {MISSING}"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("format error\n{}\n", errs.join("\n")))
    }
}

/// Booleans in property strings are stored as `1`/`0`.
fn normalize_booleans(keys: &[PsKey], values: &mut BTreeMap<String, String>) {
    for (name, v) in values.iter_mut() {
        if keys
            .iter()
            .any(|k| k.name == name && matches!(k.ty, Ty::Bool))
            && let Some(b) = parse_boolean(v)
        {
            *v = if b { "1" } else { "0" }.into();
        }
    }
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// A network device (`virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=12`), parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Net {
    pub model: String,
    pub macaddr: Option<String>,
    pub bridge: Option<String>,
    pub tag: Option<u32>,
    /// Every other option, as given.
    pub rest: BTreeMap<String, String>,
}

impl Net {
    /// Print it as PVE does: `model=MAC` first, then the other keys in order.
    pub fn print(&self) -> String {
        let mut out = match &self.macaddr {
            Some(m) => format!("{}={m}", self.model),
            None => self.model.clone(),
        };
        let mut rest = self.rest.clone();
        if let Some(b) = &self.bridge {
            rest.insert("bridge".into(), b.clone());
        }
        if let Some(t) = self.tag {
            rest.insert("tag".into(), t.to_string());
        }
        for (k, v) in rest {
            out.push_str(&format!(",{k}={v}"));
        }
        out
    }
}

static NET_KEYS: &[PsKey] = &[
    PsKey {
        name: "model",
        ty: Ty::Enum(NIC_MODELS),
        optional: false,
    },
    k("macaddr", S),
    k("bridge", S),
    k("queues", Ty::Int(Some(0), Some(64))),
    k("rate", Ty::Num(Some(0.0), None)),
    k("tag", Ty::Int(Some(1), Some(4094))),
    k("trunks", S),
    k("firewall", B),
    k("link_down", B),
    k("mtu", Ty::Int(Some(1), Some(65520))),
    k("host-tunnel", B),
];

pub fn parse_net(path: &str, s: &str) -> Result<Net, String> {
    let alias = |key: &str| NIC_MODELS.contains(&key).then_some("macaddr");
    let values = split_property_string(s, "model", &alias)?;
    check_property_values(path, NET_KEYS, &values, &["model"])?;
    let mut errs = Vec::new();
    if let Some(m) = values.get("macaddr")
        && !is_mac(m)
    {
        errs.push(format!(
            "{path}.macaddr: value does not match the regex pattern"
        ));
    }
    if let Some(b) = values.get("bridge")
        && !b
            .bytes()
            .all(|c| is_alnum(c) || matches!(c, b'-' | b'_' | b'.'))
    {
        errs.push(format!(
            "{path}.bridge: invalid format - invalid bridge ID '{b}'\n"
        ));
    }
    if let Some(t) = values.get("trunks") {
        let ok = t.split(';').all(|r| {
            let mut it = r.splitn(2, '-');
            it.all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
        });
        if !ok {
            errs.push(format!(
                "{path}.trunks: value does not match the regex pattern"
            ));
        }
    }
    if !errs.is_empty() {
        return Err(format!("format error\n{}\n", errs.join("\n")));
    }
    let mut rest = values.clone();
    let model = rest.remove("model").unwrap_or_default();
    let macaddr = rest.remove("macaddr").map(|m| m.to_ascii_uppercase());
    let bridge = rest.remove("bridge");
    let tag = rest.remove("tag").and_then(|t| t.parse().ok());
    normalize_booleans(NET_KEYS, &mut rest);
    Ok(Net {
        model,
        macaddr,
        bridge,
        tag,
        rest,
    })
}

static DRIVE_KEYS: &[PsKey] = &[
    PsKey {
        name: "file",
        ty: S,
        optional: false,
    },
    k("aio", Ty::Enum(&["native", "threads", "io_uring"])),
    k("backup", B),
    k("bps", S),
    k("bps_max_length", S),
    k("bps_rd", S),
    k("bps_rd_max_length", S),
    k("bps_wr", S),
    k("bps_wr_max_length", S),
    k(
        "cache",
        Ty::Enum(&["none", "writethrough", "writeback", "unsafe", "directsync"]),
    ),
    k("detect_zeroes", B),
    k("discard", Ty::Enum(&["ignore", "on"])),
    k("efitype", Ty::Enum(&["2m", "4m"])),
    k(
        "format",
        Ty::Enum(&["raw", "cow", "qcow", "qed", "qcow2", "vmdk", "cloop"]),
    ),
    k("import-from", S),
    k("iops", S),
    k("iops_max", S),
    k("iops_max_length", S),
    k("iops_rd", S),
    k("iops_rd_max", S),
    k("iops_rd_max_length", S),
    k("iops_wr", S),
    k("iops_wr_max", S),
    k("iops_wr_max_length", S),
    k("iothread", B),
    k("mbps", S),
    k("mbps_max", S),
    k("mbps_rd", S),
    k("mbps_rd_max", S),
    k("mbps_wr", S),
    k("mbps_wr_max", S),
    k("media", Ty::Enum(&["cdrom", "disk"])),
    k("model", S),
    k("ms-cert", S),
    k("pre-enrolled-keys", B),
    k("product", S),
    k("queues", Ty::Int(Some(2), None)),
    k("replicate", B),
    k("rerror", Ty::Enum(&["ignore", "report", "stop"])),
    k("ro", B),
    k("scsiblock", B),
    k("serial", S),
    k("shared", B),
    k("size", S),
    k("snapshot", B),
    k("ssd", B),
    k("vendor", S),
    k("version", Ty::Enum(&["v1.2", "v2.0"])),
    k("werror", Ty::Enum(&["enospc", "ignore", "report", "stop"])),
    k("wwn", S),
];

/// A drive (`ceph-vm:vm-100-disk-0,discard=on,size=32G`), parsed: the volume (`file`)
/// and the other options in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Drive {
    pub file: String,
    pub opts: BTreeMap<String, String>,
}

impl Drive {
    pub fn print(&self) -> String {
        let mut out = self.file.clone();
        for (k, v) in &self.opts {
            out.push_str(&format!(",{k}={v}"));
        }
        out
    }
    pub fn is_cdrom(&self) -> bool {
        self.opts.get("media").is_some_and(|m| m == "cdrom") || self.file == "cdrom"
    }
    /// `(storage, volume name)` when the file is a storage volume.
    pub fn volume(&self) -> Option<(&str, &str)> {
        if self.file.starts_with('/') {
            return None;
        }
        self.file.split_once(':')
    }
    pub fn size_bytes(&self) -> u64 {
        self.opts
            .get("size")
            .and_then(|s| parse_size(s))
            .unwrap_or(0)
    }
}

/// `32G`, `512M`, `100` (bytes), `1.5T`.
pub fn parse_size(s: &str) -> Option<u64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let x: f64 = num.parse().ok()?;
    let mul: f64 = match unit {
        "" => 1.0,
        "K" | "KiB" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((x * mul) as u64)
}

/// Print a size as PVE does (the largest unit that divides it).
pub fn format_size(bytes: u64) -> String {
    let units = [
        ("T", 1u64 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ];
    for (u, m) in units {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{u}", bytes / m);
        }
    }
    bytes.to_string()
}

pub fn parse_drive(path: &str, s: &str) -> Result<Drive, String> {
    let values = split_property_string(s, "file", &|_| None)?;
    check_property_values(path, DRIVE_KEYS, &values, &["file"])?;
    if let Some(sz) = values.get("size")
        && parse_size(sz).is_none()
    {
        return Err(format!(
            "format error\n{path}.size: unable to parse size '{sz}'\n"
        ));
    }
    let mut opts = values;
    let file = opts.remove("file").unwrap_or_default();
    normalize_booleans(DRIVE_KEYS, &mut opts);
    Ok(Drive { file, opts })
}

/// `memory`: `[current=]<MiB>` (at least 16).
pub fn parse_memory(path: &str, s: &str) -> Result<u64, String> {
    let values = split_property_string(s, "current", &|_| None)?;
    static MEM_KEYS: &[PsKey] = &[PsKey {
        name: "current",
        ty: Ty::Int(Some(16), None),
        optional: false,
    }];
    check_property_values(path, MEM_KEYS, &values, &["current"])?;
    Ok(values
        .get("current")
        .and_then(|v| v.parse().ok())
        .unwrap_or(512))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> BTreeMap<String, Value> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    static CLONE: &[P] = &[
        NODE,
        VMID,
        P::req("newid", VMID_TY).fmt(Fmt::Vmid),
        P::opt("full", B),
        P::opt("name", S).fmt(Fmt::DnsName),
    ];

    #[test]
    fn validation_follows_pve_rules() {
        let spec = Spec {
            params: CLONE,
            qemu: false,
        };
        let ok = validate(
            &spec,
            &raw(json!({"node": "pve1", "vmid": "9000", "newid": 101, "full": "1"})),
        )
        .unwrap();
        assert_eq!(ok["vmid"], json!(9000));
        assert_eq!(ok["full"], json!(true));
        let e = validate(
            &spec,
            &raw(
                json!({"node": "pve1", "vmid": "9000", "full": "true", "bogus": 1, "name": "a_b"}),
            ),
        )
        .unwrap_err();
        assert_eq!(e["newid"], MISSING);
        assert_eq!(e["bogus"], NOT_IN_SCHEMA);
        assert_eq!(e["full"], "type check ('boolean') failed - got 'true'");
        assert_eq!(
            e["name"],
            "invalid format - value does not look like a valid DNS name\n"
        );
        let e = validate(
            &spec,
            &raw(json!({"node": "pve1", "vmid": "99", "newid": "abc", "full": true})),
        )
        .unwrap_err();
        assert_eq!(
            e["vmid"],
            "invalid format - value does not look like a valid VM ID\n"
        );
        assert_eq!(e["newid"], "type check ('integer') failed - got 'abc'");
        assert!(!e.contains_key("full"));
    }

    #[test]
    fn qemu_keys_and_property_strings() {
        assert!(qemu_key("net0").is_some());
        assert!(qemu_key("net31").is_some());
        assert!(qemu_key("net32").is_none());
        assert!(qemu_key("net01").is_none());
        assert!(qemu_key("numa").is_some_and(|p| matches!(p.ty, Ty::Bool)));
        let n = parse_net("net0", "virtio,bridge=vmbr0,tag=12,firewall=1").unwrap();
        assert_eq!(
            (n.model.as_str(), n.bridge.as_deref(), n.tag),
            ("virtio", Some("vmbr0"), Some(12))
        );
        let n = parse_net("net0", "virtio=bc:24:11:00:00:01,bridge=vmbr0").unwrap();
        assert_eq!(n.print(), "virtio=BC:24:11:00:00:01,bridge=vmbr0");
        let e = parse_net("net0", "virtio,tag=5000").unwrap_err();
        assert!(
            e.contains("net0.tag: value must have a maximum value of 4094"),
            "{e}"
        );
        assert!(
            parse_net("net0", "bridge=vmbr0")
                .unwrap_err()
                .contains("net0.model")
        );
        assert!(
            parse_net("net0", "virtio,foo=1")
                .unwrap_err()
                .contains("invalid key")
        );
        let d = parse_drive("scsi0", "ceph-vm:32,discard=on,ssd=1").unwrap();
        assert_eq!(d.file, "ceph-vm:32");
        assert_eq!(d.print(), "ceph-vm:32,discard=on,ssd=1");
        assert_eq!(parse_memory("memory", "current=4096").unwrap(), 4096);
        assert_eq!(parse_memory("memory", "2048").unwrap(), 2048);
        assert!(parse_memory("memory", "8").is_err());
        assert_eq!(format_size(32 << 30), "32G");
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
    }
}
