//! The Kolla-Ansible configuration a region was deployed with, read the way the
//! services read it after `kolla-ansible deploy` (or `reconfigure`).
//!
//! The twin takes the files of the deploy host's `/etc/kolla/` (paths relative to it:
//! `config/nova.conf`, `config/nova/<inventory hostname>/nova.conf`,
//! `config/neutron/ml2_conf.ini`, ...), from [`crate::DcSeed::kolla_config`] at first
//! start or from the admin API (`mutate` kind `kolla-config`) later, and sets from them
//! what nova-api, nova-compute and neutron-server would: the PCI aliases, each compute
//! host's device spec, pinning sets and reserved huge pages, and ML2's physnets and
//! VLAN ranges. Nothing here is pre-seeded: a region given no file has what Kolla's own
//! templates give (no alias, no VLAN physnet, flat networks on `physnet1`), so a
//! missing override shows up as the refusal the real region would answer.
//!
//! Kolla's `merge_configs` lays the files over each other in order, a later file
//! replacing an option of the same section; for nova-compute on host H the order is
//! `config/global.conf`, `config/nova.conf`, `config/nova/nova-compute.conf`,
//! `config/nova/H/nova.conf` (kolla-ansible `ansible/roles/nova-cell/tasks/config.yml`,
//! "Copying over nova.conf"), for neutron-server's ML2 `config/neutron/ml2_conf.ini`
//! over Kolla's template (`ansible/roles/neutron/templates/ml2_conf.ini.j2`, whose
//! `network_vlan_ranges` is empty and whose `flat_networks` is `physnet1`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::model::{ComputeHost, Inventory, Ml2Config, PciAlias, ResourceProvider, State};

/// One parsed INI file: section → option → values (an option repeated in one file,
/// such as `[pci] alias`, keeps every value, as oslo.config's MultiStrOpt does).
#[derive(Clone, Debug, Default)]
struct Ini(BTreeMap<String, BTreeMap<String, Vec<String>>>);

impl Ini {
    fn parse(path: &str, text: &str) -> Result<Ini, String> {
        let mut ini = Ini::default();
        let mut section: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                let name = name
                    .strip_suffix(']')
                    .ok_or_else(|| format!("{path}:{}: unterminated section header", n + 1))?;
                section = Some(name.trim().to_string());
                continue;
            }
            let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
                return Err(format!("{path}:{}: not `option = value`", n + 1));
            };
            let Some(section) = &section else {
                return Err(format!("{path}:{}: option outside any section", n + 1));
            };
            ini.0
                .entry(section.clone())
                .or_default()
                .entry(key.trim().to_string())
                .or_default()
                .push(value.trim().to_string());
        }
        Ok(ini)
    }

    /// Lay `over` on top: its options replace those of the same section.
    fn merge(&mut self, over: &Ini) {
        for (section, options) in &over.0 {
            let mine = self.0.entry(section.clone()).or_default();
            for (key, values) in options {
                mine.insert(key.clone(), values.clone());
            }
        }
    }

    fn all(&self, section: &str, key: &str) -> &[String] {
        self.0
            .get(section)
            .and_then(|o| o.get(key))
            .map_or(&[], Vec::as_slice)
    }

    fn last(&self, section: &str, key: &str) -> Option<&str> {
        self.all(section, key).last().map(String::as_str)
    }
}

fn layered(files: &BTreeMap<String, String>, paths: &[&str]) -> Result<Ini, String> {
    let mut out = Ini::default();
    for path in paths {
        if let Some(text) = files.get(*path) {
            out.merge(&Ini::parse(path, text)?);
        }
    }
    Ok(out)
}

/// The JSON objects of a `[pci] alias` / `device_spec` value: one object or a list.
fn json_objects(what: &str, value: &str) -> Result<Vec<serde_json::Map<String, Value>>, String> {
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(o)) => Ok(vec![o]),
        Ok(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::Object(o) => Ok(o),
                other => Err(format!("Invalid {what} {other}: not a JSON object")),
            })
            .collect(),
        _ => Err(format!("Invalid {what} `{value}`: not JSON")),
    }
}

/// `[pci] alias` as nova reads it (nova `nova/pci/request.py` `_get_alias_from_config`
/// and `_ALIAS_SCHEMA`): a name, optional vendor/product ids, `device_type` one of
/// `type-PCI`/`type-PF`/`type-VF`, `numa_policy` one of `legacy`/`preferred`/`required`/
/// `socket`; a bad alias stops nova-api from starting. Its Placement resource class is
/// the alias's `resource_class`, else `CUSTOM_PCI_<VENDOR>_<PRODUCT>` (nova
/// `nova/compute/pci_placement_translator.py` `_get_rc_for_dev`).
fn aliases(nova: &Ini) -> Result<Vec<PciAlias>, String> {
    let mut out: Vec<PciAlias> = Vec::new();
    for value in nova.all("pci", "alias") {
        for o in json_objects("PCI alias definition", value)? {
            let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
            let name = text("name")
                .ok_or_else(|| format!("Invalid PCI alias definition {value}: no name"))?;
            if let Some(t) = text("device_type")
                && !["type-PCI", "type-PF", "type-VF"].contains(&t.as_str())
            {
                return Err(format!(
                    "Invalid PCI alias definition: device_type '{t}' is not one of type-PCI, type-PF, type-VF"
                ));
            }
            if let Some(p) = text("numa_policy")
                && !["legacy", "preferred", "required", "socket"].contains(&p.as_str())
            {
                return Err(format!(
                    "Invalid PCI alias definition: numa_policy '{p}' is not one of legacy, preferred, required, socket"
                ));
            }
            let vendor_id = text("vendor_id").unwrap_or_default().to_ascii_lowercase();
            let product_id = text("product_id").unwrap_or_default().to_ascii_lowercase();
            let resource_class = text("resource_class").unwrap_or_else(|| {
                format!(
                    "CUSTOM_PCI_{}_{}",
                    vendor_id.to_ascii_uppercase(),
                    product_id.to_ascii_uppercase()
                )
            });
            out.retain(|a| a.name != name);
            out.push(PciAlias {
                name,
                vendor_id,
                product_id,
                resource_class,
            });
        }
    }
    Ok(out)
}

/// A CPU list as nova parses it (`nova/virt/hardware.py` `parse_cpu_spec`): ids and
/// `a-b` ranges separated by commas, `^n` excluding.
fn cpu_spec(value: &str) -> Result<Vec<u32>, String> {
    let mut set = BTreeSet::new();
    let mut excluded = BTreeSet::new();
    let bad = || format!("Invalid range expression '{value}'");
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(n) = part.strip_prefix('^') {
            excluded.insert(n.trim().parse::<u32>().map_err(|_| bad())?);
        } else if let Some((a, b)) = part.split_once('-') {
            let a: u32 = a.trim().parse().map_err(|_| bad())?;
            let b: u32 = b.trim().parse().map_err(|_| bad())?;
            if a > b {
                return Err(bad());
            }
            set.extend(a..=b);
        } else {
            set.insert(part.parse::<u32>().map_err(|_| bad())?);
        }
    }
    Ok(set.difference(&excluded).copied().collect())
}

/// `[DEFAULT] reserved_huge_pages` entries (`node:0,size:1GB,count:4`), the 1 GiB ones.
fn reserved_pages(values: &[String]) -> Result<Vec<(u32, i64)>, String> {
    let mut out = Vec::new();
    for value in values {
        let mut node = None;
        let mut size = None;
        let mut count = None;
        for pair in value.split(',') {
            let (k, v) = pair
                .split_once(':')
                .ok_or_else(|| format!("Invalid reserved_huge_pages `{value}`"))?;
            match k.trim() {
                "node" => node = v.trim().parse::<u32>().ok(),
                "size" => size = Some(v.trim().to_ascii_uppercase()),
                "count" => count = v.trim().parse::<i64>().ok(),
                _ => return Err(format!("Invalid reserved_huge_pages `{value}`")),
            }
        }
        let (Some(node), Some(size), Some(count)) = (node, size, count) else {
            return Err(format!(
                "Invalid reserved_huge_pages `{value}`: node, size and count are required"
            ));
        };
        if ["1GB", "1G", "1048576", "1048576KB"].contains(&size.as_str()) {
            out.push((node, count));
        }
    }
    Ok(out)
}

/// (vendor_id, product_id) of one `[pci] device_spec` entry; `None` matches any.
type DeviceMatch = (Option<String>, Option<String>);

fn device_spec(nova: &Ini) -> Result<Vec<DeviceMatch>, String> {
    let mut out = Vec::new();
    let values = nova
        .all("pci", "device_spec")
        .iter()
        .chain(nova.all("pci", "passthrough_whitelist"));
    for value in values {
        for o in json_objects("PCI device spec", value)? {
            let id = |k: &str| {
                o.get(k)
                    .and_then(Value::as_str)
                    .filter(|v| *v != "*")
                    .map(str::to_ascii_lowercase)
            };
            out.push((id("vendor_id"), id("product_id")));
        }
    }
    Ok(out)
}

/// The per-host override directory names that are this host: its inventory name is its
/// FQDN, whose first label is the service host name.
fn is_host(dir: &str, h: &ComputeHost) -> bool {
    dir == h.host || dir == h.hypervisor_hostname || dir.split('.').next() == Some(&h.host)
}

fn ml2(files: &BTreeMap<String, String>) -> Result<Ml2Config, String> {
    let ini = layered(
        files,
        &["config/neutron.conf", "config/neutron/ml2_conf.ini"],
    )?;
    let mut vlan_ranges: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    // neutron-lib `plugins/utils.py` `parse_network_vlan_ranges`: `physnet` or
    // `physnet:min:max`, a bad entry stops neutron-server.
    for entry in ini
        .last("ml2_type_vlan", "network_vlan_ranges")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let parts: Vec<&str> = entry.split(':').collect();
        let ranges = vlan_ranges.entry(parts[0].to_string()).or_default();
        match parts.as_slice() {
            [_] => {}
            [_, lo, hi] => {
                let bad = || format!("Invalid network VLAN range: '{entry}'");
                let lo: i64 = lo.parse().map_err(|_| bad())?;
                let hi: i64 = hi.parse().map_err(|_| bad())?;
                if !(1..=4094).contains(&lo) || !(1..=4094).contains(&hi) || lo > hi {
                    return Err(bad());
                }
                ranges.push((lo, hi));
            }
            _ => return Err(format!("Invalid network VLAN range: '{entry}'")),
        }
    }
    let flat_networks = ini
        .last("ml2_type_flat", "flat_networks")
        .unwrap_or("physnet1")
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Ml2Config {
        vlan_ranges,
        flat_networks,
    })
}

fn inventory(total: i64, ratio: f64) -> Inventory {
    Inventory {
        total,
        reserved: 0,
        min_unit: 1,
        max_unit: total,
        step_size: 1,
        allocation_ratio: ratio,
    }
}

/// Configure the region from its Kolla files (path under `/etc/kolla/` → text), as a
/// deploy or reconfigure would. An error is what would keep a service from starting.
/// The files are kept ([`State::kolla_files`]): a compute host that joins later is
/// configured from them.
pub fn apply(st: &mut State, files: &BTreeMap<String, String>) -> Result<(), String> {
    let dc_nova = layered(files, &["config/global.conf", "config/nova.conf"])?;
    let aliases = aliases(&dc_nova)?;
    let ml2 = ml2(files)?;
    let unified_limits = quota_driver(&dc_nova)?;

    let mut hosts = Vec::with_capacity(st.hosts.len());
    for h in &st.hosts {
        hosts.push(configure_host(&dc_nova, files, h)?);
    }

    // Placement: what each nova-compute reports.
    let old_classes: BTreeSet<String> = st
        .pci_aliases
        .iter()
        .map(|a| a.resource_class.clone())
        .collect();
    for h in &hosts {
        let Some(rp) = st.rps.iter_mut().find(|r| r.uuid == h.uuid) else {
            continue;
        };
        report_inventories(rp, h, &aliases, &old_classes);
        rp.generation += 1;
    }
    for alias in &aliases {
        if !st.custom_rcs.contains(&alias.resource_class) {
            st.custom_rcs.push(alias.resource_class.clone());
        }
    }
    st.hosts = hosts;
    st.pci_aliases = aliases;
    st.ml2 = ml2;
    st.nova_unified_limits = unified_limits;
    st.kolla_files = Some(files.clone());
    Ok(())
}

/// Configure a compute host that joins the region (`kolla-ansible deploy --limit` on
/// it): its nova-compute's merged `nova.conf` from the region's files, and what it
/// reports to Placement on its provider `rp` with the region's PCI aliases. An error
/// is what keeps its nova-compute from starting.
pub fn configure_new_host(
    st: &State,
    files: &BTreeMap<String, String>,
    h: &ComputeHost,
    rp: &mut ResourceProvider,
) -> Result<ComputeHost, String> {
    let dc_nova = layered(files, &["config/global.conf", "config/nova.conf"])?;
    let h = configure_host(&dc_nova, files, h)?;
    report_inventories(rp, &h, &st.pci_aliases, &BTreeSet::new());
    Ok(h)
}

/// One host's nova-compute configuration: the region's `nova.conf` layered with
/// `nova-compute.conf` and the host's own directory.
fn configure_host(
    dc_nova: &Ini,
    files: &BTreeMap<String, String>,
    h: &ComputeHost,
) -> Result<ComputeHost, String> {
    let mut nova = dc_nova.clone();
    if let Some(text) = files.get("config/nova/nova-compute.conf") {
        nova.merge(&Ini::parse("config/nova/nova-compute.conf", text)?);
    }
    for (path, text) in files {
        let dir = path
            .strip_prefix("config/nova/")
            .and_then(|p| p.strip_suffix("/nova.conf"));
        if dir.is_some_and(|d| is_host(d, h)) {
            nova.merge(&Ini::parse(path, text)?);
        }
    }
    let mut h = h.clone();
    h.conf.cpu_dedicated_set = nova
        .last("compute", "cpu_dedicated_set")
        .map(cpu_spec)
        .transpose()?;
    h.conf.cpu_shared_set = nova
        .last("compute", "cpu_shared_set")
        .map(cpu_spec)
        .transpose()?;
    h.conf.reserved_pages_1g = reserved_pages(nova.all("DEFAULT", "reserved_huge_pages"))?;
    h.conf.device_spec = device_spec(&nova)?;
    let host_cpus: BTreeSet<u32> = h.numa_cells.iter().flat_map(|c| c.cpus.clone()).collect();
    for (option, set) in [
        ("cpu_dedicated_set", &h.conf.cpu_dedicated_set),
        ("cpu_shared_set", &h.conf.cpu_shared_set),
    ] {
        // nova-compute refuses to start on CPUs the host does not have
        // (`nova/virt/libvirt/driver.py` `_get_pcpu_available`).
        if let Some(missing) = set
            .iter()
            .flatten()
            .find(|c| !host_cpus.is_empty() && !host_cpus.contains(c))
        {
            return Err(format!(
                "{}: {option} includes CPU {missing}, which the host does not have",
                h.host
            ));
        }
    }
    Ok(h)
}

/// What a nova-compute reports on its provider (`nova/virt/libvirt/driver.py`
/// `update_provider_tree`): PCPU for the dedicated set, VCPU for the shared set (all
/// host CPUs when neither is set), and the passthrough devices as their aliases'
/// classes (those of `old_classes`, the previous aliases', are replaced).
fn report_inventories(
    rp: &mut ResourceProvider,
    h: &ComputeHost,
    aliases: &[PciAlias],
    old_classes: &BTreeSet<String>,
) {
    rp.inventories.retain(|rc, _| !old_classes.contains(rc));
    for alias in aliases {
        let n = h
            .pci
            .iter()
            .filter(|d| d.vendor_id == alias.vendor_id && d.product_id == alias.product_id)
            .filter(|d| {
                h.conf.device_spec.iter().any(|(v, p)| {
                    v.as_ref().is_none_or(|v| *v == d.vendor_id)
                        && p.as_ref().is_none_or(|p| *p == d.product_id)
                })
            })
            .count() as i64;
        if n > 0 {
            rp.inventories
                .insert(alias.resource_class.clone(), inventory(n, 1.0));
        }
    }
    match (&h.conf.cpu_dedicated_set, &h.conf.cpu_shared_set) {
        (None, None) => {
            rp.inventories
                .entry("VCPU".into())
                .or_insert_with(|| inventory(h.vcpus, 4.0));
            rp.inventories.remove("PCPU");
        }
        (dedicated, shared) => {
            match dedicated {
                Some(d) if !d.is_empty() => {
                    rp.inventories
                        .insert("PCPU".into(), inventory(d.len() as i64, 1.0));
                }
                _ => {
                    rp.inventories.remove("PCPU");
                }
            }
            match shared {
                Some(s) if !s.is_empty() => {
                    rp.inventories
                        .insert("VCPU".into(), inventory(s.len() as i64, 4.0));
                }
                _ => {
                    rp.inventories.remove("VCPU");
                }
            }
        }
    }
}

/// `[quota] driver`: `Some(service type)` for the unified-limits driver, whose
/// `[oslo_limit]` must say whose limits to read; nova-api cannot enforce without it
/// (oslo.limit needs `endpoint_id`, or `endpoint_service_type` to look it up).
fn quota_driver(nova: &Ini) -> Result<Option<String>, String> {
    match nova.last("quota", "driver") {
        None | Some("nova.quota.DbQuotaDriver") | Some("nova.quota.NoopQuotaDriver") => Ok(None),
        Some("nova.quota.UnifiedLimitsDriver") => {
            let service_type = nova.last("oslo_limit", "endpoint_service_type");
            match (service_type, nova.last("oslo_limit", "endpoint_id")) {
                (Some(t), _) => Ok(Some(t.to_string())),
                (None, Some(_)) => Ok(Some("compute".to_string())),
                (None, None) => Err(
                    "nova.conf [quota] driver = nova.quota.UnifiedLimitsDriver needs [oslo_limit] endpoint_id or endpoint_service_type".into(),
                ),
            }
        }
        Some(other) => Err(format!(
            "nova.conf [quota] driver = {other}: nova knows DbQuotaDriver, NoopQuotaDriver and UnifiedLimitsDriver"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_specs_parse_like_nova() {
        assert_eq!(cpu_spec("0-3,8,^2").expect("spec"), vec![0, 1, 3, 8]);
        assert!(cpu_spec("4-2").is_err());
        assert!(cpu_spec("a").is_err());
    }

    #[test]
    fn repeated_options_are_kept_and_later_files_replace() {
        let a = Ini::parse(
            "a",
            "[pci]\nalias = {\"name\": \"x\"}\nalias = {\"name\": \"y\"}\n",
        )
        .expect("ini");
        assert_eq!(a.all("pci", "alias").len(), 2);
        let mut m = a.clone();
        m.merge(&Ini::parse("b", "[pci]\nalias = {\"name\": \"z\"}\n").expect("ini"));
        assert_eq!(m.all("pci", "alias"), ["{\"name\": \"z\"}"]);
        assert!(Ini::parse("c", "alias = 1\n").is_err());
    }

    #[test]
    fn ml2_defaults_are_kollas_and_ranges_parse() {
        let none = ml2(&BTreeMap::new()).expect("ml2");
        assert!(none.vlan_ranges.is_empty());
        assert_eq!(none.flat_networks, ["physnet1"]);
        let files = BTreeMap::from([(
            "config/neutron/ml2_conf.ini".to_string(),
            "[ml2_type_vlan]\nnetwork_vlan_ranges = physnet1:1000:1999,physnet2\n".to_string(),
        )]);
        let got = ml2(&files).expect("ml2");
        assert_eq!(got.vlan_ranges["physnet1"], [(1000, 1999)]);
        assert!(got.vlan_ranges["physnet2"].is_empty());
        let bad = BTreeMap::from([(
            "config/neutron/ml2_conf.ini".to_string(),
            "[ml2_type_vlan]\nnetwork_vlan_ranges = physnet1:2000:1000\n".to_string(),
        )]);
        assert!(ml2(&bad).is_err());
    }

    #[test]
    fn an_alias_without_resource_class_gets_novas_class() {
        let ini = Ini::parse(
            "nova.conf",
            "[pci]\nalias = {\"name\": \"gpu\", \"vendor_id\": \"10DE\", \"product_id\": \"2330\", \"device_type\": \"type-PCI\"}\n",
        )
        .expect("ini");
        let a = aliases(&ini).expect("aliases");
        assert_eq!(a[0].resource_class, "CUSTOM_PCI_10DE_2330");
        let bad = Ini::parse(
            "nova.conf",
            "[pci]\nalias = {\"name\": \"gpu\", \"device_type\": \"gpu\"}\n",
        )
        .expect("ini");
        assert!(aliases(&bad).is_err());
    }
}
