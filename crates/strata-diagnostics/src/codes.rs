//! Every diagnostic code strata emits. Codes are stable: once published, a code keeps
//! its meaning forever (scripts and CI gates match on them). New findings get new codes.
//!
//! Ranges: `S01xx` reading the spec, `S02xx` references between spec objects,
//! `S03xx` network design, `S04xx` platform design (MAAS, Proxmox, OpenStack),
//! `S05xx` conformance, `S06xx` the lock file.

use std::fmt;

use serde::Serialize;

use crate::Severity;

/// A stable diagnostic code such as `S0102`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(&'static str);

impl Code {
    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// The registry entry for this code.
    pub fn info(&self) -> &'static CodeInfo {
        ALL.iter()
            .find(|c| c.code.0 == self.0)
            .unwrap_or(&UNKNOWN_INFO)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

/// What a code means: its default severity, a short name and an explanation.
#[derive(Debug, Serialize)]
pub struct CodeInfo {
    pub code: Code,
    pub severity: Severity,
    pub name: &'static str,
    pub explanation: &'static str,
}

const UNKNOWN_INFO: CodeInfo = CodeInfo {
    code: Code("S0000"),
    severity: Severity::Error,
    name: "unknown",
    explanation: "Unknown code.",
};

macro_rules! codes {
    ($($id:ident $sev:ident $name:literal $expl:literal;)*) => {
        $(
            #[doc = $expl]
            pub const $id: Code = Code(stringify!($id));
        )*
        /// The registry, in code order.
        pub const ALL: &[CodeInfo] = &[
            $(CodeInfo { code: $id, severity: Severity::$sev, name: $name, explanation: $expl },)*
        ];
    };
}

codes! {
    S0101 Error "yaml-syntax" "The file is not well-formed YAML.";
    S0102 Error "unknown-field" "A mapping has a key the spec does not define. Keys are checked strictly so that a typo never silently becomes a default.";
    S0103 Error "duplicate-key" "A mapping has the same key twice. YAML forbids it and strata refuses it rather than guessing which one wins.";
    S0104 Error "invalid-value" "A value has the wrong type or is out of range (for example a string where a number belongs, or an invalid IP prefix).";
    S0105 Error "missing-field" "A required key is absent.";
    S0106 Error "file-too-large" "A spec file is larger than the configured limit; strata refuses it before parsing.";
    S0107 Error "resource-budget" "Parsing was stopped because the document exceeded a resource budget (alias expansion, nesting depth, node count). This protects against alias-expansion bombs.";
    S0108 Error "inline-secret" "A secret was written inline. Secrets must be referenced: `{env: VAR}` or `{file: PATH}`.";
    S0109 Error "duplicate-section" "A singleton section (organisation, pools, mtu, blueprint) appears in more than one file.";
    S0110 Error "missing-section" "A required section is missing from the whole spec directory.";
    S0111 Error "unreadable-file" "A spec file could not be read or is not UTF-8.";
    S0112 Error "invalid-name" "A name is not a valid DNS label, or a naming template uses an unknown placeholder.";
    S0113 Error "unknown-variant" "A value is not one of the allowed choices.";
    S0201 Error "unknown-profile" "A machine or GPU flavor names a hardware profile that does not exist.";
    S0202 Error "unknown-site" "An object names a site that does not exist.";
    S0203 Error "unknown-rack" "A machine names a rack that its site does not have.";
    S0204 Error "duplicate-name" "Two objects of the same kind share a name (or serial) in one scope.";
    S0205 Error "rack-without-room" "A machine does not fit in its rack: its slot is outside the rack, or it overlaps another machine.";
    S0206 Error "invalid-override-path" "A site override names a blueprint path that does not exist.";
    S0207 Error "invalid-override-value" "A site override's value does not fit the blueprint field it replaces.";
    S0208 Error "unknown-reference" "An object refers to something that does not exist (cluster, storage pool, availability zone, tenant network).";
    S0209 Error "role-not-allowed" "A role is used where it cannot run (for example a hypervisor role on a VM).";
    S0210 Error "duplicate-hardware-address" "Two machines share a hardware address that must be unique across the whole fleet, in whichever files they are written: a PXE MAC (MAAS would enlist them as one machine).";
    S0211 Error "unbuildable-storage-layout" "A hardware profile's RAID layout cannot be built: too few members for the level, a disk in two arrays, two filesystems on one mount point, a mount point that is not an absolute path, or a mount point on swap.";
    S0301 Error "overlapping-prefixes" "Two prefixes in one routing domain overlap.";
    S0302 Error "pool-exhausted" "A pool does not have enough room for what the fleet needs.";
    S0303 Error "vxlan-mtu" "The underlay MTU cannot carry the overlay MTU plus VXLAN encapsulation (50 bytes over IPv4, 70 over IPv6).";
    S0304 Error "inconsistent-jumbo" "VLAN roles that carry jumbo frames disagree on their MTU, or exceed what the host bonds carry.";
    S0305 Error "duplicate-vni" "Two networks share a VXLAN network identifier.";
    S0306 Error "duplicate-vlan" "Two networks share a VLAN id in one scope.";
    S0307 Error "duplicate-router-id" "Two routers share a BGP router-id.";
    S0308 Error "bgp-asn-mismatch" "The two ends of a BGP session disagree on an AS number.";
    S0309 Error "bgp-address-mismatch" "The two ends of a BGP session disagree on addresses.";
    S0310 Error "address-outside-subnet" "A pinned address is not inside the subnet it must belong to, or collides with another.";
    S0311 Error "vni-out-of-range" "A VXLAN network identifier (pinned, or a bound of a VNI pool) does not fit in VXLAN's 24 bits: VNIs are 1-16777215.";
    S0312 Error "invalid-mac" "A MAC address that must name one interface (the anycast gateway MAC, a PXE NIC) is a group address (multicast or broadcast: the lowest bit of the first octet is set) or all zeros.";
    S0313 Error "asn-pool-overlap" "ASN pools of different roles overlap, so a spine and a leaf could get the same AS and drop each other's routes as loops; or a pool holds a reserved AS number (0, 23456, 65535, 4294967295).";
    S0401 Error "provisioning-without-dhcp" "The provisioning VLAN has no MAAS rack controller serving DHCP; machines cannot PXE boot.";
    S0402 Warning "single-dhcp-rack-controller" "A DHCP VLAN is served by one rack controller only; losing it stops provisioning (no HA).";
    S0403 Error "proxmox-even-nodes" "A Proxmox cluster has an even number of nodes and no QDevice: a split in half loses quorum on both sides.";
    S0404 Error "az-below-minimum" "An availability zone has fewer compute nodes than its declared minimum.";
    S0405 Error "gpu-flavor-profile" "A GPU flavor references a hardware profile that has no such GPU (or not that many).";
    S0406 Error "vm-does-not-fit" "A VM needs more vCPUs or memory than any node of its Proxmox cluster has, so it could never start.";
    S0407 Warning "ha-capacity" "With its largest node lost, a Proxmox cluster has less memory than its HA VMs need: HA could not restart them all. Only memory is compared; CPU is overcommitted by design.";
    S0408 Error "ha-rule-invalid" "A Proxmox VE HA rule that Proxmox would refuse or mark as conflicting: an option its type does not have (or a missing `affinity`), a resource-affinity rule with fewer than two VMs, a negative one with more VMs than the cluster has nodes, a VM in two node-affinity rules, a positive and a negative rule sharing two VMs, or a rule that selects no VM or no node in a DC.";
    S0409 Error "ha-on-local-storage" "An HA-managed VM has its disk on storage only one node can reach (ZFS, LVM-thin, a local directory): when that node dies, no other node can start it. HA needs shared storage (Ceph RBD), or ZFS with storage replication.";
    S0412 Error "gpu-flavor-numa-unfit" "A pinned, huge-page GPU flavor fits no NUMA layout of its hosts: split evenly over any number of the host's NUMA nodes, a share needs more dedicated CPUs, 1 GiB pages or GPUs than one node has, so nova would answer NoValidHost for every boot.";
    S0420 Error "bootstrap-order" "A DC's bootstrap order cannot happen: a stage needs what only a later stage brings up (MAAS deploying machines before MAAS runs, MAAS deploying the Proxmox nodes its own VMs run on, VMs starting before the Proxmox nodes they run on).";
    S0421 Error "bootstrap-coverage" "A machine or VM role of the fleet is in no bootstrap stage or in two, or a stage names a VM role that does not exist: the order in which the DC comes up is not fully stated.";
    S0422 Error "role-image" "A machine role's image cannot carry what the role runs, or is not an image name MAAS understands: Proxmox VE 9 runs on Debian 13 (a custom image such as `custom/debian-13-pve`), not Ubuntu; images are `OS/RELEASE` or a bare Ubuntu series.";
    S0430 Warning "gpu-quota-unenforced" "A team has a GPU quota, but the Kolla release's Nova cannot enforce it: before 2026.2, Nova's unified limits never count GPUs passed through by PCI alias, and the legacy quota driver has no per-device quota. The quota would be silently dropped.";
    S0501 Error "undeclared-snowflake" "A DC differs from the blueprint without a declared reason.";
    S0502 Warning "stale-override" "A declared override does not change anything: the DC already matches the blueprint.";
    S0601 Error "lock-unreadable" "fleet.lock could not be parsed.";
    S0602 Error "lock-outdated" "fleet.lock would change, but --locked was given.";
    S0603 Error "lock-conflict" "An allocation recorded in fleet.lock no longer fits its pool. strata never moves an allocation silently.";
    S0604 Error "pin-collides-with-lock" "A value pinned in the spec is recorded in fleet.lock for another object. The recorded object keeps its value (allocations never move); change or remove the pin.";
}

/// Look a code up by its text (for `strata explain`).
pub fn lookup(code: &str) -> Option<&'static CodeInfo> {
    ALL.iter().find(|c| c.code.0.eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_sorted() {
        for pair in ALL.windows(2) {
            assert!(pair[0].code.0 < pair[1].code.0, "{:?}", pair[1].code);
        }
        assert_eq!(S0303.info().name, "vxlan-mtu");
        assert_eq!(lookup("s0402").map(|c| c.severity), Some(Severity::Warning));
    }
}
