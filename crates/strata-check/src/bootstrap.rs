//! The bootstrap order (S0420, S0421) and the image of each machine role (S0422).
//!
//! A DC comes up in stages: hypervisors installed by hand, MAAS as VMs on them, the
//! OpenStack control plane as VMs, then the hosts MAAS deploys. MAAS can deploy only
//! once it runs, and it cannot deploy the hosts its own VMs run on (deploying
//! commissions first, which power-cycles the host through its BMC). Proxmox VE 9
//! installs on Debian 13 (trixie); an Ubuntu image cannot carry it.

use std::collections::BTreeMap;

use strata_diagnostics::{Diagnostic, Span, codes};
use strata_fleet::bootstrap::{MAAS_VM_ROLES, is_ubuntu};
use strata_spec::{Blueprint, BootstrapStage, Install, MachineRole, Spec, VmRole};

pub(crate) fn check(spec: &Spec, out: &mut Vec<Diagnostic>) {
    let Some(bp) = &spec.blueprint else { return };
    if !bp.bootstrap.is_empty() {
        coverage(spec, bp, out);
        order(bp, out);
    }
    images(bp, out);
}

fn install(s: &BootstrapStage) -> Install {
    s.install.as_ref().map(|i| **i).unwrap_or_default()
}

/// Where a stage's install mode is written, else the stage's name.
fn install_span(s: &BootstrapStage) -> Span {
    s.install.as_ref().map(|i| i.span).unwrap_or(s.stage.span)
}

fn vm_roles() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = MAAS_VM_ROLES.to_vec();
    all.extend(
        [
            VmRole::OpenstackControl,
            VmRole::OpenstackNetwork,
            VmRole::Monitoring,
            VmRole::CiRunner,
            VmRole::Service,
        ]
        .iter()
        .map(|r| r.as_str()),
    );
    all
}

/// S0421: every machine and VM role the fleet has is in exactly one stage, and every
/// VM role a stage names exists.
fn coverage(spec: &Spec, bp: &Blueprint, out: &mut Vec<Diagnostic>) {
    let at = bp.bootstrap[0].stage.span;
    let known = vm_roles();
    let mut machine_roles: BTreeMap<MachineRole, usize> = BTreeMap::new();
    for m in &spec.machines {
        *machine_roles.entry(*m.role).or_default() += 1;
    }
    let mut vm_roles_used: BTreeMap<String, usize> = BTreeMap::new();
    if *bp.maas.region_controllers > 0 {
        vm_roles_used.insert("maas-region".into(), *bp.maas.region_controllers as usize);
    }
    if !bp.maas.rack_controllers.is_empty() {
        vm_roles_used.insert("maas-rack".into(), bp.maas.rack_controllers.len());
    }
    for v in &spec.vms {
        *vm_roles_used
            .entry(v.role.as_str().to_string())
            .or_default() += 1;
    }
    let mut seen_machines: BTreeMap<MachineRole, &str> = BTreeMap::new();
    let mut seen_vms: BTreeMap<String, &str> = BTreeMap::new();
    for s in &bp.bootstrap {
        for r in &s.machines {
            if let Some(first) = seen_machines.insert(**r, s.stage.as_str()) {
                out.push(
                    Diagnostic::new(
                        codes::S0421,
                        format!(
                            "machine role `{}` is in bootstrap stage `{first}` and again in `{}`",
                            r.as_str(),
                            s.stage.as_str()
                        ),
                    )
                    .at(r.span)
                    .expected("each machine role in one stage")
                    .help(format!(
                        "remove `{}` from one of the two stages",
                        r.as_str()
                    )),
                );
            }
        }
        for v in &s.vms {
            if !known.contains(&v.as_str()) {
                out.push(
                    Diagnostic::new(
                        codes::S0421,
                        format!("bootstrap stage `{}` names VM role `{}`, which does not exist", s.stage.as_str(), v.as_str()),
                    )
                    .at(v.span)
                    .expected(format!("one of {}", known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")))
                    .help("name the role of a declared VM, or `maas-region` / `maas-rack` for MAAS's controllers"),
                );
                continue;
            }
            if let Some(first) = seen_vms.insert(v.to_string(), s.stage.as_str()) {
                out.push(
                    Diagnostic::new(
                        codes::S0421,
                        format!(
                            "VM role `{}` is in bootstrap stage `{first}` and again in `{}`",
                            v.as_str(),
                            s.stage.as_str()
                        ),
                    )
                    .at(v.span)
                    .expected("each VM role in one stage")
                    .help(format!(
                        "remove `{}` from one of the two stages",
                        v.as_str()
                    )),
                );
            }
        }
    }
    for (role, n) in &machine_roles {
        if !seen_machines.contains_key(role) {
            out.push(
                Diagnostic::new(
                    codes::S0421,
                    format!(
                        "the inventory has {n} `{}` machine(s), but no bootstrap stage brings that role up",
                        role.as_str()
                    ),
                )
                .at(at)
                .expected(format!("`{}` in one stage's `machines`", role.as_str()))
                .help(format!(
                    "add `{}` to the `machines` of the stage that installs it (`install: preinstalled` if it runs before MAAS, else after the stage that starts MAAS)",
                    role.as_str()
                )),
            );
        }
    }
    for (role, n) in &vm_roles_used {
        if !seen_vms.contains_key(role) {
            out.push(
                Diagnostic::new(
                    codes::S0421,
                    format!("the fleet has {n} `{role}` VM(s), but no bootstrap stage starts that role"),
                )
                .at(at)
                .expected(format!("`{role}` in one stage's `vms`"))
                .help(format!(
                    "add `{role}` to the `vms` of a stage after the one that brings up the Proxmox nodes"
                )),
            );
        }
    }
}

/// S0420: MAAS deploys only after the stage that starts it, never the Proxmox nodes
/// its own VMs run on; VMs start only after the Proxmox nodes.
fn order(bp: &Blueprint, out: &mut Vec<Diagnostic>) {
    let stages = &bp.bootstrap;
    let maas_at = stages
        .iter()
        .position(|s| s.vms.iter().any(|v| MAAS_VM_ROLES.contains(&v.as_str())));
    let pve_at = stages
        .iter()
        .position(|s| s.machines.iter().any(|m| **m == MachineRole::Proxmox));
    for (i, s) in stages.iter().enumerate() {
        if install(s) == Install::Maas && !s.machines.is_empty() {
            let maas_stage = maas_at
                .map(|m| stages[m].stage.as_str())
                .unwrap_or("(none)");
            if s.machines.iter().any(|m| **m == MachineRole::Proxmox) {
                let mut d = Diagnostic::new(
                    codes::S0420,
                    format!(
                        "bootstrap stage `{}` has MAAS deploy the Proxmox nodes, but MAAS itself runs as VMs on them (stage `{maas_stage}`): MAAS cannot deploy the hosts it runs on, and commissioning would power-cycle them",
                        s.stage.as_str()
                    ),
                )
                .at(install_span(s))
                .expected("`install: preinstalled` for the Proxmox nodes")
                .help("install Proxmox VE on these nodes before MAAS exists and mark the stage `install: preinstalled`: strata registers them in MAAS as deployed and never power-cycles them");
                if let Some(m) = maas_at {
                    d = d.related(stages[m].stage.span, "MAAS starts here");
                }
                out.push(d);
            } else if maas_at.is_none_or(|m| i <= m) {
                let roles: Vec<&str> = s.machines.iter().map(|m| m.as_str()).collect();
                let mut d = Diagnostic::new(
                    codes::S0420,
                    format!(
                        "bootstrap stage `{}` has MAAS deploy {} before MAAS runs (MAAS starts in stage `{maas_stage}`)",
                        s.stage.as_str(),
                        roles.join(", ")
                    ),
                )
                .at(install_span(s))
                .expected(format!("a stage after `{maas_stage}`"))
                .help(format!(
                    "move stage `{}` after the stage whose `vms` start `maas-region`, or mark it `install: preinstalled` if these machines already run",
                    s.stage.as_str()
                ));
                if let Some(m) = maas_at {
                    d = d.related(stages[m].stage.span, "MAAS starts here");
                }
                out.push(d);
            }
        }
        if let (Some(first_vm), Some(p)) = (s.vms.first(), pve_at)
            && i <= p
        {
            out.push(
                Diagnostic::new(
                    codes::S0420,
                    format!(
                        "bootstrap stage `{}` starts VMs before the Proxmox nodes they run on (stage `{}`)",
                        s.stage.as_str(),
                        stages[p].stage.as_str()
                    ),
                )
                .at(first_vm.span)
                .expected(format!("a stage after `{}`", stages[p].stage.as_str()))
                .help("start VMs in a stage after the one that brings up the Proxmox nodes")
                .related(stages[p].stage.span, "the Proxmox nodes come up here"),
            );
        }
    }
}

/// S0422: images are MAAS image names, and Proxmox nodes never get Ubuntu.
fn images(bp: &Blueprint, out: &mut Vec<Diagnostic>) {
    let mut explicit_pve = false;
    for i in &bp.maas.images {
        let name = i.image.as_str();
        let well_formed = match name.split_once('/') {
            Some((os, rel)) => !os.is_empty() && !rel.is_empty() && !rel.contains('/'),
            None => !name.is_empty(),
        };
        if !well_formed {
            out.push(
                Diagnostic::new(
                    codes::S0422,
                    format!("`{name}` is not an image name MAAS understands"),
                )
                .at(i.image.span)
                .expected(
                    "`OS/RELEASE` (`ubuntu/noble`, `custom/debian-13-pve`) or a bare Ubuntu series",
                )
                .help("name the image as `maas boot-resources read` lists it"),
            );
            continue;
        }
        if *i.role == MachineRole::Proxmox {
            explicit_pve = true;
            if is_ubuntu(name) {
                out.push(
                    Diagnostic::new(
                        codes::S0422,
                        format!("role `proxmox` gets image `{name}`, but Proxmox VE 9 runs on Debian 13 (trixie), not Ubuntu"),
                    )
                    .at(i.image.span)
                    .expected("a Debian 13 image with Proxmox VE, uploaded to MAAS (e.g. `custom/debian-13-pve`)")
                    .help("upload a Debian 13 (trixie) image to MAAS as a custom image and name it here"),
                );
            }
        }
    }
    if explicit_pve {
        return;
    }
    // No image for Proxmox: MAAS would deploy the default Ubuntu series on any
    // Proxmox node it deploys.
    for s in &bp.bootstrap {
        if install(s) == Install::Maas
            && s.machines.iter().any(|m| **m == MachineRole::Proxmox)
            && is_ubuntu(&bp.maas.distro_series)
        {
            out.push(
                Diagnostic::new(
                    codes::S0422,
                    format!(
                        "bootstrap stage `{}` has MAAS deploy the Proxmox nodes with the default image `{}`, but Proxmox VE 9 runs on Debian 13 (trixie), not Ubuntu",
                        s.stage.as_str(),
                        bp.maas.distro_series
                    ),
                )
                .at(install_span(s))
                .expected("an image for role `proxmox` in `maas.images`")
                .help("add `{ role: proxmox, image: custom/debian-13-pve }` to `maas.images` (a Debian 13 image uploaded to MAAS)"),
            );
        }
    }
}
