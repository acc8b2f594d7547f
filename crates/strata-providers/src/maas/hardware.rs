//! Hardware validation before deploy: read what commissioning found, compare it with
//! the machine's hardware profile (`strata_plan::hardware`, pure), and quarantine a
//! machine that differs — tag `strata-quarantine` and a description naming every
//! deviation — so it is never deployed until someone fixes it and it is commissioned
//! again.
//!
//! Where MAAS reports each fact (canonical/maas src/maasserver/api/machines.py
//! `DISPLAYED_MACHINE_FIELDS`, api/nodes.py, api/node_devices.py, api/results.py):
//! `cpu_count`, `memory` (MiB), `hardware_info.cpu_model` and
//! `hardware_info.mainboard_firmware_{vendor,version}` (from DMI), `numanode_set`,
//! `interface_set[].{interface_speed,link_speed,link_connected}` and the physical
//! entries of `blockdevice_set` on the machine; GPUs with their PCI address and NUMA
//! node under `nodes/{id}/devices/?hardware_type=gpu`. MAAS does not model a PCIe
//! link's generation and width: strata uploads a commissioning script
//! ([`PCIE_SCRIPT`]) that prints them from sysfs, and reads its output from the
//! machine's commissioning results.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;
use strata_plan::ResourceId;
use strata_plan::hardware::{Deviation, FoundGpu, HardwareExpectation, HardwareFacts};

use super::MaasProvider;
use super::client::form;
use crate::ProviderError;

/// The tag a machine that failed validation carries.
pub const QUARANTINE_TAG: &str = "strata-quarantine";
/// The commissioning script that reports each display controller's PCIe link.
pub const PCIE_SCRIPT_NAME: &str = "strata-pcie-links";

/// Prints `ADDRESS GT/s WIDTH` for every PCI display controller (class 0x03xxxx), from
/// `current_link_speed` (`32.0 GT/s PCIe`) and `current_link_width`. It reads
/// `${SYSFS_ROOT:-/sys}` so that it can be tried against a copy of a machine's sysfs.
pub const PCIE_SCRIPT: &str = r#"#!/bin/sh
# --- Start MAAS 1.0 script metadata ---
# name: strata-pcie-links
# title: PCIe link of each GPU
# description: The negotiated PCIe generation and width of every display controller, for strata's hardware validation.
# script_type: commissioning
# --- End MAAS 1.0 script metadata ---
root="${SYSFS_ROOT:-/sys}"
for d in "$root"/bus/pci/devices/*; do
  [ -r "$d/class" ] || continue
  case "$(cat "$d/class")" in
    0x03*) ;;
    *) continue ;;
  esac
  speed=$(cut -d' ' -f1 "$d/current_link_speed" 2>/dev/null)
  width=$(cat "$d/current_link_width" 2>/dev/null)
  echo "$(basename "$d") ${speed:-unknown} ${width:-unknown}"
done
"#;

/// The PCIe generation of a link speed in GT/s.
fn pcie_gen(gts: &str) -> Option<u8> {
    match gts {
        "2.5" => Some(1),
        "5.0" | "5" => Some(2),
        "8.0" | "8" => Some(3),
        "16.0" | "16" => Some(4),
        "32.0" | "32" => Some(5),
        "64.0" | "64" => Some(6),
        _ => None,
    }
}

/// `address → (gen, width)` from the script's output.
fn parse_links(out: &str) -> Vec<(String, Option<u8>, Option<u8>)> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let addr = f.next()?.to_string();
            let gen_ = f.next().and_then(pcie_gen);
            let width = f.next().and_then(|w| w.parse().ok());
            Some((addr, gen_, width))
        })
        .collect()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().trim().to_string()
}

/// The facts in a machine's read, its GPU devices and its script output.
fn facts_of(machine: &Value, devices: &Value, links: &str) -> HardwareFacts {
    let hw = &machine["hardware_info"];
    let nics = machine["interface_set"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "physical")
        .map(|i| {
            let connected = i["link_connected"].as_bool().unwrap_or(true);
            let link = i["link_speed"].as_u64().unwrap_or(0);
            let port = i["interface_speed"].as_u64().unwrap_or(0);
            // What the link negotiated; a port without carrier runs at nothing.
            let speed = if !connected {
                0
            } else if link > 0 {
                link
            } else {
                port
            };
            (text(i, "name"), speed)
        })
        .collect();
    let disks = machine["blockdevice_set"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["type"] == "physical")
        .map(|d| (text(d, "name"), d["size"].as_u64().unwrap_or(0)))
        .collect();
    let links = parse_links(links);
    let gpus = devices
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let addr = text(d, "pci_address");
            let link = links.iter().find(|(a, _, _)| *a == addr);
            FoundGpu {
                vendor_id: text(d, "vendor_id").to_ascii_lowercase(),
                device_id: text(d, "product_id").to_ascii_lowercase(),
                numa_node: d["numa_node"]
                    .as_u64()
                    .or_else(|| d["numa_node"]["index"].as_u64())
                    .and_then(|n| u32::try_from(n).ok()),
                link_gen: link.and_then(|l| l.1),
                link_width: link.and_then(|l| l.2),
                pci_address: addr,
            }
        })
        .collect();
    HardwareFacts {
        cpu_model: text(hw, "cpu_model"),
        cpu_threads: machine["cpu_count"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        memory_mib: machine["memory"].as_u64().unwrap_or(0),
        numa_nodes: machine["numanode_set"]
            .as_array()
            .map_or(0, |n| n.len() as u32),
        disks,
        nics,
        bios_vendor: text(hw, "mainboard_firmware_vendor"),
        bios_version: text(hw, "mainboard_firmware_version"),
        gpus,
    }
}

/// The latest output of `name` among a machine's commissioning results.
fn script_output(results: &Value, name: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    results
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|set| set["results"].as_array().into_iter().flatten())
        .filter(|r| r["name"] == name)
        .filter_map(|r| {
            let enc = r["stdout"].as_str().or_else(|| r["output"].as_str())?;
            b64.decode(enc).ok()
        })
        .next_back()
        .map(|b: Vec<u8>| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

impl MaasProvider {
    /// Upload the PCIe link script once (before commissioning GPU machines).
    pub(super) async fn ensure_pcie_script(&self) -> Result<(), ProviderError> {
        let path = format!("scripts/{PCIE_SCRIPT_NAME}");
        match self.client.get::<Value>(&path, &[]).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => {}
            Err(e) => return Err(e.into()),
        }
        let body = form([
            ("name", PCIE_SCRIPT_NAME.to_string()),
            ("type", "commissioning".to_string()),
            ("script", PCIE_SCRIPT.to_string()),
        ]);
        match self
            .client
            .post::<Value>("scripts/", None, &body, false)
            .await
        {
            Ok(_) => Ok(()),
            // Uploaded by a concurrent step, or by this very request.
            Err(e) if e.ambiguous() || e.is_status(StatusCode::BAD_REQUEST) => {
                self.client.get::<Value>(&path, &[]).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What commissioning found on machine `sid` (3 reads).
    pub(super) async fn hardware_facts(
        &self,
        sid: &str,
        gpus: bool,
    ) -> Result<HardwareFacts, ProviderError> {
        let machine: Value = self.client.get(&format!("machines/{sid}/"), &[]).await?;
        let (devices, results) = if gpus {
            let devices: Value = self
                .client
                .get(
                    &format!("nodes/{sid}/devices/"),
                    &[("hardware_type", "gpu")],
                )
                .await?;
            let results: Value = self
                .client
                .get(
                    &format!("nodes/{sid}/results/"),
                    &[("type", "commissioning"), ("include_output", "1")],
                )
                .await?;
            (devices, script_output(&results, PCIE_SCRIPT_NAME))
        } else {
            (Value::Array(Vec::new()), String::new())
        };
        Ok(facts_of(&machine, &devices, &results))
    }

    /// Validate machine `sid` against `want`. A machine that differs is quarantined
    /// (tag and description) and refused; one that passes loses an old quarantine.
    /// Returns the facts on success (the step's evidence).
    pub(super) async fn validate_hardware(
        &self,
        id: &ResourceId,
        sid: &str,
        label: &str,
        tagged: bool,
        want: &HardwareExpectation,
    ) -> Result<HardwareFacts, ProviderError> {
        let facts = self.hardware_facts(sid, want.gpus.is_some()).await?;
        let deviations = strata_plan::hardware::validate(want, &facts);
        if deviations.is_empty() {
            if tagged {
                self.ensure_tag(QUARANTINE_TAG).await?;
                self.tag_nodes(QUARANTINE_TAG, "remove", sid).await?;
                self.client
                    .put::<Value>(
                        &format!("machines/{sid}/"),
                        &form([("description", String::new())]),
                    )
                    .await?;
            }
            return Ok(facts);
        }
        Err(self
            .quarantine(id, sid, label, &want.profile, &deviations)
            .await)
    }

    /// Tag `sid` as quarantined with why; the error to return.
    pub(super) async fn quarantine(
        &self,
        id: &ResourceId,
        sid: &str,
        label: &str,
        profile: &str,
        deviations: &[Deviation],
    ) -> ProviderError {
        let list: Vec<String> = deviations.iter().map(ToString::to_string).collect();
        let why = format!(
            "quarantined by strata: differs from hardware profile {profile}: {}",
            list.join("; ")
        );
        let marked = async {
            self.ensure_tag(QUARANTINE_TAG).await?;
            self.tag_nodes(QUARANTINE_TAG, "add", sid).await?;
            self.client
                .put::<Value>(
                    &format!("machines/{sid}/"),
                    &form([("description", why.clone())]),
                )
                .await?;
            Ok::<(), ProviderError>(())
        }
        .await;
        let note = match marked {
            Ok(()) => format!("tagged {QUARANTINE_TAG}"),
            Err(e) => format!("tagging it {QUARANTINE_TAG} failed too: {e}"),
        };
        ProviderError::Refused(format!(
            "{id}: machine {label} is quarantined, not deployed ({note}): {}; fix the hardware (or the profile), commission it again and apply",
            list.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn links_come_from_the_script_and_speeds_from_the_interfaces() {
        let machine = json!({
            "cpu_count": 64, "memory": 262144,
            "hardware_info": {"cpu_model": "AMD EPYC 9354", "mainboard_firmware_vendor": "Dell Inc.", "mainboard_firmware_version": "1.9.2"},
            "numanode_set": [{"index": 0}, {"index": 1}],
            "interface_set": [
                {"name": "ens1f0np0", "type": "physical", "interface_speed": 25000, "link_speed": 10000, "link_connected": true},
                {"name": "ens1f1np1", "type": "physical", "interface_speed": 25000, "link_speed": 0, "link_connected": false},
                {"name": "bond0", "type": "bond", "interface_speed": 0, "link_speed": 0}
            ],
            "blockdevice_set": [{"name": "sda", "type": "physical", "size": 480103981056u64}, {"name": "md0", "type": "virtual", "size": 1}]
        });
        let devices = json!([{"pci_address": "0000:1b:00.0", "vendor_id": "10DE", "product_id": "2330", "numa_node": 1}]);
        let f = facts_of(
            &machine,
            &devices,
            "0000:1b:00.0 16.0 8\n0000:00:02.0 unknown unknown\n",
        );
        assert_eq!(f.cpu_threads, 64);
        assert_eq!(f.numa_nodes, 2);
        assert_eq!(
            f.nics,
            [
                ("ens1f0np0".to_string(), 10_000),
                ("ens1f1np1".to_string(), 0)
            ]
        );
        assert_eq!(f.disks, [("sda".to_string(), 480_103_981_056)]);
        assert_eq!(f.bios_version, "1.9.2");
        assert_eq!(f.gpus[0].link_gen, Some(4));
        assert_eq!(f.gpus[0].link_width, Some(8));
        assert_eq!(f.gpus[0].numa_node, Some(1));
        assert_eq!(f.gpus[0].vendor_id, "10de");
    }

    #[test]
    fn the_script_output_is_the_latest_run() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let results = json!([
            {"results": [{"name": "other", "stdout": b64("x")}]},
            {"results": [{"name": PCIE_SCRIPT_NAME, "stdout": b64("old")}]},
            {"results": [{"name": PCIE_SCRIPT_NAME, "stdout": b64("new")}]}
        ]);
        assert_eq!(script_output(&results, PCIE_SCRIPT_NAME), "new");
        assert_eq!(script_output(&json!([]), PCIE_SCRIPT_NAME), "");
    }
}
