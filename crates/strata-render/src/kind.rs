use serde::Serialize;

/// What a generated file is, and so which real tool validates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// FRR `frr.conf` of a spine, leaf or border leaf (checked with `vtysh -C -f`).
    FrrConf,
    /// A netplan YAML file (checked with `netplan generate --root-dir`).
    Netplan,
    /// cloud-init user-data (`#cloud-config`; checked with `cloud-init schema`).
    CloudInit,
    /// Proxmox VE `/etc/network/interfaces` (checked with ifupdown2's `ifup -s -a -i`).
    ProxmoxInterfaces,
    /// `keepalived.conf` (checked with `keepalived --config-test -f`).
    Keepalived,
    /// Kolla-Ansible multinode inventory, INI (checked with `ansible-inventory --list`).
    KollaInventory,
    /// Kolla-Ansible `globals.yml` (checked by loading it as Ansible extra vars).
    KollaGlobals,
    /// nova.conf fragment with `[pci] device_spec`/`alias` (checked as INI + JSON values).
    NovaPci,
    /// Neutron `ml2_conf.ini` override (checked as INI with python's configparser, and
    /// its VLAN ranges and flat networks as neutron parses them).
    NeutronMl2,
    /// Prometheus configuration (checked with `promtool check config`).
    Prometheus,
    /// Anything else (documentation, summaries); not verified.
    Other,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::FrrConf => "frr-conf",
            FileKind::Netplan => "netplan",
            FileKind::CloudInit => "cloud-init",
            FileKind::ProxmoxInterfaces => "proxmox-interfaces",
            FileKind::Keepalived => "keepalived",
            FileKind::KollaInventory => "kolla-inventory",
            FileKind::KollaGlobals => "kolla-globals",
            FileKind::NovaPci => "nova-pci",
            FileKind::NeutronMl2 => "neutron-ml2",
            FileKind::Prometheus => "prometheus",
            FileKind::Other => "other",
        }
    }

    pub const VERIFIED: [FileKind; 10] = [
        FileKind::FrrConf,
        FileKind::Netplan,
        FileKind::CloudInit,
        FileKind::ProxmoxInterfaces,
        FileKind::Keepalived,
        FileKind::KollaInventory,
        FileKind::KollaGlobals,
        FileKind::NovaPci,
        FileKind::NeutronMl2,
        FileKind::Prometheus,
    ];
}
