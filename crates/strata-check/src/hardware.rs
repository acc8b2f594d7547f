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
        raid_layout(p, out);
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

/// S0211: the RAID layout can be built as MAAS builds it: enough members for the
/// level (MAAS's minimums, `models/filesystemgroup.py`), each disk in one array only,
/// each mount point used once and absolute, swap not mounted, and one array mounted
/// at `/` (MAAS deploys only a machine whose root filesystem is mounted, and strata
/// replaces MAAS's default layout with the arrays).
fn raid_layout(p: &HardwareProfile, out: &mut Vec<Diagnostic>) {
    if let Some(first) = p.raid.first()
        && !p.raid.iter().any(|a| {
            a.mount.as_ref().is_some_and(|m| {
                m.value.trim_end_matches('/').is_empty() && m.value.starts_with('/')
            })
        })
    {
        out.push(
            Diagnostic::new(
                codes::S0211,
                format!(
                    "the RAID arrays of profile `{}` give its machines no root filesystem",
                    p.name
                ),
            )
            .at(first.members.first().map_or(p.name.span, |m| m.span))
            .expected("one array with `mount: /`")
            .help("strata replaces MAAS's default disk layout with the profile's arrays, and MAAS deploys only a machine whose `/` is mounted: add `mount: /` to the array that holds the OS"),
        );
    }
    let mut disk_owner: HashMap<&str, &str> = HashMap::new();
    let mut mounts: HashMap<&str, (&str, Span)> = HashMap::new();
    for array in &p.raid {
        let members: Vec<&str> = array.members.iter().map(|m| m.value.as_str()).collect();
        let min = array.level.min_members();
        if members.len() < min {
            let at = array.members.last().map(|m| m.span);
            let d = Diagnostic::new(
                codes::S0211,
                format!(
                    "RAID array `{}` of profile `{}` is {} with {} member(s); {} needs at least {min}",
                    array.name,
                    p.name,
                    array.level.maas_name(),
                    members.len(),
                    array.level.maas_name()
                ),
            )
            .expected(format!("at least {min} disks in `members`"))
            .help("add disks to the array, or choose a level that works with these disks (raid1 needs 2, raid5 and raid10 need 3, raid6 needs 4)");
            out.push(match at {
                Some(s) => d.at(s),
                None => d,
            });
        }
        for m in &array.members {
            match disk_owner.get(m.value.as_str()) {
                Some(other) if *other == array.name.as_str() => out.push(
                    Diagnostic::new(
                        codes::S0211,
                        format!(
                            "RAID array `{}` of profile `{}` lists disk `{}` twice",
                            array.name, p.name, m.value
                        ),
                    )
                    .at(m.span)
                    .expected("each member once")
                    .help("remove the repeated member"),
                ),
                Some(other) => out.push(
                    Diagnostic::new(
                        codes::S0211,
                        format!(
                            "disk `{}` of profile `{}` is in RAID arrays `{other}` and `{}`",
                            m.value, p.name, array.name
                        ),
                    )
                    .at(m.span)
                    .expected("a disk that no other array uses")
                    .help("a disk (or its one partition) can belong to one array only; give this array another disk"),
                ),
                None => {
                    disk_owner.insert(m.value.as_str(), array.name.as_str());
                }
            }
        }
        let Some(mount) = &array.mount else { continue };
        if array.filesystem() == Some(strata_spec::Filesystem::Swap) {
            out.push(
                Diagnostic::new(
                    codes::S0211,
                    format!(
                        "RAID array `{}` of profile `{}` is swap but has mount point `{}`",
                        array.name, p.name, mount.value
                    ),
                )
                .at(mount.span)
                .expected("no `mount` on a swap array")
                .help("remove `mount` (swap is not mounted), or choose another `format`"),
            );
            continue;
        }
        if !mount.value.starts_with('/') {
            out.push(
                Diagnostic::new(
                    codes::S0211,
                    format!(
                        "RAID array `{}` of profile `{}` has mount point `{}`, which is not an absolute path",
                        array.name, p.name, mount.value
                    ),
                )
                .at(mount.span)
                .expected("an absolute path such as `/` or `/var/lib/docker`")
                .help(format!("write `/{}`", mount.value.trim_start_matches("./"))),
            );
            continue;
        }
        let key = match mount.value.trim_end_matches('/') {
            "" => "/",
            k => k,
        };
        match mounts.get(key) {
            Some((other, at)) => out.push(
                Diagnostic::new(
                    codes::S0211,
                    format!(
                        "RAID arrays `{other}` and `{}` of profile `{}` are both mounted at `{key}`",
                        array.name, p.name
                    ),
                )
                .at(mount.span)
                .related(*at, format!("`{other}` is mounted here"))
                .expected("one filesystem per mount point")
                .help("mount one of them elsewhere"),
            ),
            None => {
                mounts.insert(key, (array.name.as_str(), mount.span));
            }
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
