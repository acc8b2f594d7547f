//! Hardware profiles and the machine inventory: references inside a profile resolve
//! to what the profile has (RAID members to its disks, GPU NUMA nodes to its NUMA
//! layout), and hardware addresses are unique across the whole fleet, whichever
//! files they are written in.

use std::collections::HashMap;

use strata_diagnostics::{Diagnostic, Span, codes, did_you_mean};
use strata_spec::{HardwareProfile, Located, MacAddr, Spec};

/// Run every hardware rule.
pub fn check(spec: &Spec, out: &mut Vec<Diagnostic>) {
    for p in &spec.profiles {
        raid_members(p, out);
        gpu_numa(p, out);
    }
    duplicate_pxe_macs(spec, out);
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// S0208: every RAID member is one of the profile's disks.
fn raid_members(p: &HardwareProfile, out: &mut Vec<Diagnostic>) {
    let disks: Vec<&str> = p.disks.iter().map(|d| d.name.as_str()).collect();
    for array in &p.raid {
        for m in &array.members {
            if disks.contains(&m.as_str()) {
                continue;
            }
            let d = Diagnostic::new(
                codes::S0208,
                format!(
                    "RAID array `{}` of profile `{}` uses disk `{}`, which the profile does not have",
                    array.name, p.name, m.value
                ),
            )
            .at(m.span)
            .expected(format!("one of the profile's disks: {}", quoted(&disks)));
            out.push(match did_you_mean(m, disks.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help("fix the RAID member, or add the disk to `disks`"),
            });
        }
    }
}

/// S0208: every GPU's NUMA node is one the profile has (`0..numa_nodes`). One
/// diagnostic per profile, at the first GPU that is off, with the others related.
fn gpu_numa(p: &HardwareProfile, out: &mut Vec<Diagnostic>) {
    let Some(g) = &p.gpu else { return };
    let off: Vec<(usize, &Located<u32>)> = g
        .numa
        .iter()
        .enumerate()
        .filter(|(_, node)| ***node >= p.numa_nodes)
        .collect();
    let Some((_, node)) = off.first() else {
        return;
    };
    let gpus: Vec<String> = off
        .iter()
        .map(|(i, n)| format!("GPU {i} on node {}", n.value))
        .collect();
    let mut d = Diagnostic::new(
        codes::S0208,
        format!(
            "profile `{}` has {} NUMA node(s), but its GPU map puts {}",
            p.name,
            p.numa_nodes,
            gpus.join(", ")
        ),
    )
    .at(node.span)
    .expected(format!(
        "a NUMA node from 0 to {}",
        p.numa_nodes.saturating_sub(1)
    ))
    .help("NUMA nodes count from 0; fix the GPUs' nodes, or `numa_nodes` if the profile has more");
    for (i, n) in off.iter().skip(1) {
        d = d.related(n.span, format!("GPU {i} on NUMA node {}", n.value));
    }
    out.push(d);
}

/// S0210: no two machines share a PXE MAC, fleet-wide.
fn duplicate_pxe_macs(spec: &Spec, out: &mut Vec<Diagnostic>) {
    let mut first: HashMap<MacAddr, (Span, &str)> = HashMap::new();
    for m in &spec.machines {
        let Some(mac) = &m.pxe_mac else { continue };
        match first.get(&mac.value) {
            Some((at, serial)) => out.push(
                Diagnostic::new(
                    codes::S0210,
                    format!(
                        "machine `{}` has PXE MAC {}, which machine `{serial}` already has",
                        m.serial, mac.value
                    ),
                )
                .at(mac.span)
                .expected("a PXE MAC no other machine has")
                .related(*at, format!("`{serial}` has it"))
                .help("MAAS enlists machines by PXE MAC; copy this machine's MAC from its BMC or the vendor's inventory"),
            ),
            None => {
                first.insert(mac.value, (mac.span, m.serial.as_str()));
            }
        }
    }
}
