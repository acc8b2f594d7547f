//! How a team's quota is enforced in an OpenStack region: which Nova quota system the
//! region's release runs, and the Keystone unified-limit resource names a quota maps
//! to.
//!
//! Nova's legacy quota driver (Kolla-Ansible's default: kolla-ansible
//! `ansible/roles/nova/templates/nova.conf.j2` sets no `[quota] driver`) has no
//! per-resource-class quota, so a team's `gpus` cannot be expressed. Unified limits
//! (`[quota] driver = nova.quota.UnifiedLimitsDriver`, limits in Keystone, usage from
//! Placement) can, but before Nova 2026.2 the boot-time check built its deltas from the
//! flavor alone and never counted PCI devices requested through `pci_passthrough:alias`
//! (launchpad bug 2140631; fixed by openstack/nova change If8964128, "Fix unified limits
//! to include all resource types", merged to master on 2026-06-02, first released in
//! 2026.2: `nova/limit/placement.py` `_get_deltas` and `nova/scheduler/utils.py`
//! `request_spec_for_limits`). So strata enforces team GPU quotas from 2026.2 on, and
//! says so (diagnostic S0430) for an older release.
//!
//! Invariant: pure functions of strings; no I/O.

/// The first Kolla/OpenStack release whose Nova counts passthrough GPUs against
/// unified limits.
pub const UNIFIED_LIMITS_SINCE: (u32, u32) = (2026, 2);

/// Nova's unified-limits quota driver (`nova/limit/utils.py` `UNIFIED_LIMITS_DRIVER`).
pub const UNIFIED_LIMITS_DRIVER: &str = "nova.quota.UnifiedLimitsDriver";

/// The Keystone service type whose limits Nova reads (`[oslo_limit]
/// endpoint_service_type`).
pub const LIMITS_SERVICE_TYPE: &str = "compute";

/// A release such as `2025.1` as `(2025, 1)`; `None` for anything else (a branch name, a
/// code name): strata then assumes the legacy quota driver.
pub fn release(kolla_release: &str) -> Option<(u32, u32)> {
    let (year, n) = kolla_release.trim().split_once('.')?;
    Some((year.parse().ok()?, n.parse().ok()?))
}

/// Whether a region of this release gets Nova's unified limits (and with them GPU
/// quotas).
pub fn unified_limits(kolla_release: &str) -> bool {
    release(kolla_release).is_some_and(|r| r >= UNIFIED_LIMITS_SINCE)
}

/// The Placement resource class Nova gives a passthrough device it reports to
/// Placement when the device spec names none (`nova/compute/pci_placement_translator.py`
/// `get_resource_class`): `CUSTOM_PCI_<VENDOR>_<PRODUCT>`, upper case.
pub fn pci_resource_class(vendor_id: &str, product_id: &str) -> String {
    format!("CUSTOM_PCI_{vendor_id}_{product_id}").to_ascii_uppercase()
}

/// One unified limit a team quota sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitName {
    /// Keystone's `resource_name`, e.g. `servers`, `class:VCPU`.
    pub resource: String,
    /// Which quota field gives its value.
    pub from: QuotaField,
}

/// A field of a team quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaField {
    Instances,
    Cores,
    Ram,
    Gpus,
}

/// The unified limits a quota sets in a region whose GPUs have these resource classes
/// (sorted, deduplicated by the caller or not: duplicates are dropped here).
///
/// `cores` limits both `class:VCPU` and `class:PCPU`: a pinned flavor asks Placement for
/// PCPU instead of VCPU (`ResourceRequest._translate_pinning_policies`), and a PCPU
/// without a limit would be unlimited. `gpus` limits each GPU model's class on its own.
pub fn limit_names(gpu_classes: &[String]) -> Vec<LimitName> {
    let mut out = vec![
        LimitName {
            resource: "servers".into(),
            from: QuotaField::Instances,
        },
        LimitName {
            resource: "class:VCPU".into(),
            from: QuotaField::Cores,
        },
        LimitName {
            resource: "class:PCPU".into(),
            from: QuotaField::Cores,
        },
        LimitName {
            resource: "class:MEMORY_MB".into(),
            from: QuotaField::Ram,
        },
    ];
    let mut classes: Vec<&String> = gpu_classes.iter().collect();
    classes.sort();
    classes.dedup();
    for rc in classes {
        out.push(LimitName {
            resource: format!("class:{rc}"),
            from: QuotaField::Gpus,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_from_2026_2_on_get_unified_limits() {
        assert!(!unified_limits("2025.1"));
        assert!(!unified_limits("2026.1"));
        assert!(unified_limits("2026.2"));
        assert!(unified_limits("2027.1"));
        assert!(!unified_limits("master"));
        assert!(!unified_limits("2026"));
        assert!(!unified_limits(""));
        assert_eq!(release(" 2025.2 "), Some((2025, 2)));
    }

    #[test]
    fn pci_classes_are_nova_s_default_names() {
        assert_eq!(pci_resource_class("10de", "2330"), "CUSTOM_PCI_10DE_2330");
    }

    #[test]
    fn limits_cover_servers_both_cpu_classes_memory_and_each_gpu_class() {
        let names = limit_names(&["CUSTOM_PCI_10DE_2330".into(), "CUSTOM_PCI_10DE_2330".into()]);
        let resources: Vec<&str> = names.iter().map(|n| n.resource.as_str()).collect();
        assert_eq!(
            resources,
            [
                "servers",
                "class:VCPU",
                "class:PCPU",
                "class:MEMORY_MB",
                "class:CUSTOM_PCI_10DE_2330"
            ]
        );
        assert_eq!(names[4].from, QuotaField::Gpus);
    }
}
