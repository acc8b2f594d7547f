//! The bootstrap order of a DC: the blueprint's stages, or the default order when it
//! names none. Pure; shared by the compiler (which machines already run, which image
//! each role gets) and the design checks (is the order possible at all).

use strata_spec::{Blueprint, Install, MachineRole};

/// The VM roles of MAAS's own controllers.
pub const MAAS_VM_ROLES: [&str; 2] = ["maas-region", "maas-rack"];

/// One stage, as the rest of the pipeline reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    pub machines: Vec<MachineRole>,
    pub vms: Vec<String>,
    pub install: Install,
}

/// The stages in order: the blueprint's, or (none written) Proxmox preinstalled, then
/// MAAS, then the declared VMs, then every other role through MAAS.
pub fn stages(bp: &Blueprint) -> Vec<Stage> {
    if !bp.bootstrap.is_empty() {
        return bp
            .bootstrap
            .iter()
            .map(|s| Stage {
                name: s.stage.to_string(),
                machines: s.machines.iter().map(|m| **m).collect(),
                vms: s.vms.iter().map(|v| v.to_string()).collect(),
                install: s.install.as_ref().map(|i| **i).unwrap_or_default(),
            })
            .collect();
    }
    vec![
        Stage {
            name: "hypervisors".into(),
            machines: vec![MachineRole::Proxmox],
            vms: Vec::new(),
            install: Install::Preinstalled,
        },
        Stage {
            name: "maas".into(),
            machines: Vec::new(),
            vms: MAAS_VM_ROLES.iter().map(|r| r.to_string()).collect(),
            install: Install::Maas,
        },
        Stage {
            name: "vms".into(),
            machines: Vec::new(),
            vms: [
                "openstack-control",
                "openstack-network",
                "monitoring",
                "ci-runner",
                "service",
            ]
            .iter()
            .map(|r| r.to_string())
            .collect(),
            install: Install::Maas,
        },
        Stage {
            name: "hosts".into(),
            machines: vec![
                MachineRole::OpenstackControl,
                MachineRole::OpenstackNetwork,
                MachineRole::OpenstackCompute,
                MachineRole::OpenstackStorage,
            ],
            vms: Vec::new(),
            install: Install::Maas,
        },
    ]
}

/// How machines of `role` get their OS: from the first stage listing the role; a
/// role no stage lists is deployed by MAAS (the design check reports it).
pub fn install_of(bp: &Blueprint, role: MachineRole) -> Install {
    stages(bp)
        .into_iter()
        .find(|s| s.machines.contains(&role))
        .map(|s| s.install)
        .unwrap_or_default()
}

/// The image MAAS deploys on machines of `role`: the role's image, else the
/// blueprint's default series.
pub fn image_of(bp: &Blueprint, role: MachineRole) -> String {
    bp.maas
        .images
        .iter()
        .find(|i| *i.role == role)
        .map(|i| i.image.to_string())
        .unwrap_or_else(|| bp.maas.distro_series.clone())
}

/// Is `image` an Ubuntu image (`ubuntu/...` or a bare Ubuntu series)?
pub fn is_ubuntu(image: &str) -> bool {
    match image.split_once('/') {
        Some((os, _)) => os == "ubuntu",
        None => true,
    }
}
