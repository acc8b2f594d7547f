//! Flavor extra spec validation from 2.86 (nova/api/validation/extra_specs/
//! `validators.validate`): a key one of nova's validators names is checked against its
//! value type (an integer within its bounds, a boolean-like string, an enum or a
//! pattern); an unknown key in a namespace nova knows (`hw:`, `resources:`, `trait:`,
//! `pci_passthrough:`, ...) is refused; any other key passes. The table is nova's
//! validators as registered by `accel`, `aggregate_instance_extra_specs`,
//! `capabilities`, `hw`, `hw_rng`, `hw_video`, `null`, `os`, `pci_passthrough`,
//! `quota` and `vmware` (named groups written as plain groups); `resources` and
//! `traits` are built from Placement's standard classes and traits as nova builds them
//! from `os_resource_classes` and `os_traits`.

use std::sync::OnceLock;

use super::super::regex::Regex;
use super::super::seed::{STANDARD_RESOURCE_CLASSES, STANDARD_TRAITS};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Any,
    Bool,
    /// `_validate_int`: inclusive bounds.
    Int(i64, i64),
    Enum(&'static [&'static str]),
    /// (the pattern as nova prints it, the pattern for [`Regex`]).
    Pattern(&'static str, &'static str),
}

/// (name regex, value) of every validator nova registers, in module order.
#[rustfmt::skip]
const VALIDATORS: &[(&str, Kind)] = &[
    (r#"accel:device_profile"#, Kind::Any),
    (r#"aggregate_instance_extra_specs:(.+)"#, Kind::Any),
    (r#"capabilities:id"#, Kind::Any),
    (r#"capabilities:uuid"#, Kind::Any),
    (r#"capabilities:service_id"#, Kind::Any),
    (r#"capabilities:host"#, Kind::Any),
    (r#"capabilities:vcpus"#, Kind::Any),
    (r#"capabilities:memory_mb"#, Kind::Any),
    (r#"capabilities:local_gb"#, Kind::Any),
    (r#"capabilities:vcpus_used"#, Kind::Any),
    (r#"capabilities:memory_mb_used"#, Kind::Any),
    (r#"capabilities:local_gb_used"#, Kind::Any),
    (r#"capabilities:hypervisor_type"#, Kind::Any),
    (r#"capabilities:hypervisor_version"#, Kind::Any),
    (r#"capabilities:hypervisor_hostname"#, Kind::Any),
    (r#"capabilities:free_ram_mb"#, Kind::Any),
    (r#"capabilities:free_disk_gb"#, Kind::Any),
    (r#"capabilities:current_workload"#, Kind::Any),
    (r#"capabilities:running_vms"#, Kind::Any),
    (r#"capabilities:disk_available_least"#, Kind::Any),
    (r#"capabilities:host_ip"#, Kind::Any),
    (r#"capabilities:mapped"#, Kind::Any),
    (r#"capabilities:cpu_allocation_ratio"#, Kind::Any),
    (r#"capabilities:ram_allocation_ratio"#, Kind::Any),
    (r#"capabilities:disk_allocation_ratio"#, Kind::Any),
    (r#"capabilities:total_usable_ram_mb"#, Kind::Any),
    (r#"capabilities:total_usable_disk_gb"#, Kind::Any),
    (r#"capabilities:disk_mb_used"#, Kind::Any),
    (r#"capabilities:free_disk_mb"#, Kind::Any),
    (r#"capabilities:vcpus_total"#, Kind::Any),
    (r#"capabilities:vcpus_used"#, Kind::Any),
    (r#"capabilities:num_instances"#, Kind::Any),
    (r#"capabilities:num_io_ops"#, Kind::Any),
    (r#"capabilities:failed_builds"#, Kind::Any),
    (r#"capabilities:aggregates"#, Kind::Any),
    (r#"capabilities:cell_uuid"#, Kind::Any),
    (r#"capabilities:updated"#, Kind::Any),
    (r#"capabilities:cpu_info((:\w+)*)"#, Kind::Any),
    (r#"capabilities:metrics((:\w+)*)"#, Kind::Any),
    (r#"capabilities:stats((:\w+)*)"#, Kind::Any),
    (r#"capabilities:numa_topology((:\w+)*)"#, Kind::Any),
    (r#"capabilities:supported_hv_specs((:\w+)*)"#, Kind::Any),
    (r#"capabilities:pci_device_pools((:\w+)*)"#, Kind::Any),
    (r#"capabilities:nodename((:\w+)*)"#, Kind::Any),
    (r#"capabilities:pci_stats((:\w+)*)"#, Kind::Any),
    (r#"capabilities:supported_instances((:\w+)*)"#, Kind::Any),
    (r#"capabilities:limits((:\w+)*)"#, Kind::Any),
    (r#"capabilities:instances((:\w+)*)"#, Kind::Any),
    (r#"hw:cpu_realtime"#, Kind::Bool),
    (r#"hw:cpu_realtime_mask"#, Kind::Pattern(r#"(\^)?\d+((-\d+)?(,\^?\d+(-\d+)?)?)*"#, r#"(\^)?\d+((-\d+)?(,\^?\d+(-\d+)?)?)*"#)),
    (r#"hw:hide_hypervisor_id"#, Kind::Bool),
    (r#"hw:cpu_policy"#, Kind::Enum(&["dedicated", "shared", "mixed"])),
    (r#"hw:cpu_thread_policy"#, Kind::Enum(&["prefer", "isolate", "require"])),
    (r#"hw:emulator_threads_policy"#, Kind::Enum(&["isolate", "share"])),
    (r#"hw:cpu_dedicated_mask"#, Kind::Pattern(r#"\^?\d+((-\d+)?(,\^?\d+(-\d+)?)?)*"#, r#"\^?\d+((-\d+)?(,\^?\d+(-\d+)?)?)*"#)),
    (r#"hw:mem_page_size"#, Kind::Pattern(r#"(large|small|any|\d+([kKMGT]i?)?(b|bit|B)?)"#, r#"(large|small|any|\d+([kKMGT]i?)?(b|bit|B)?)"#)),
    (r#"hw:locked_memory"#, Kind::Bool),
    (r#"hw:numa_nodes"#, Kind::Int(1, i64::MAX)),
    (r#"hw:numa_cpus.(\d+)"#, Kind::Pattern(r#"\^?\d+((-\d+)?(,\^?\d+(-\d+)?)?)*"#, r#"\^?\d+((-\d+)?(,\^?\d+(-\d+)?)?)*"#)),
    (r#"hw:numa_mem.(\d+)"#, Kind::Int(1, i64::MAX)),
    (r#"hw:pci_numa_affinity_policy"#, Kind::Enum(&["required", "preferred", "legacy", "socket"])),
    (r#"hw:cpu_sockets"#, Kind::Int(1, i64::MAX)),
    (r#"hw:cpu_cores"#, Kind::Int(1, i64::MAX)),
    (r#"hw:cpu_threads"#, Kind::Int(1, i64::MAX)),
    (r#"hw:cpu_max_sockets"#, Kind::Int(1, i64::MAX)),
    (r#"hw:cpu_max_cores"#, Kind::Int(1, i64::MAX)),
    (r#"hw:cpu_max_threads"#, Kind::Int(1, i64::MAX)),
    (r#"hw:boot_menu"#, Kind::Bool),
    (r#"hw:vif_multiqueue_enabled"#, Kind::Bool),
    (r#"hw:mem_encryption"#, Kind::Bool),
    (r#"hw:mem_encryption_model"#, Kind::Enum(&["amd-sev", "amd-sev-es", "amd-sev-snp"])),
    (r#"hw:pmem"#, Kind::Pattern(r#"([a-zA-Z0-9_]+(,)?)+"#, r#"([a-zA-Z0-9_]+(,)?)+"#)),
    (r#"hw:pmu"#, Kind::Bool),
    (r#"hw:serial_port_count"#, Kind::Int(0, i64::MAX)),
    (r#"hw:tpm_model"#, Kind::Enum(&["tpm-tis", "tpm-crb"])),
    (r#"hw:tpm_version"#, Kind::Enum(&["1.2", "2.0"])),
    (r#"hw:tpm_secret_security"#, Kind::Enum(&["user", "host", "deployment"])),
    (r#"hw:watchdog_action"#, Kind::Enum(&["none", "pause", "poweroff", "reset", "disabled"])),
    (r#"hw:viommu_model"#, Kind::Enum(&["intel", "smmuv3", "virtio", "auto"])),
    (r#"hw:virtio_packed_ring"#, Kind::Bool),
    (r#"hw:sound_model"#, Kind::Enum(&["sb16", "es1370", "pcspk", "ac97", "ich6", "ich9", "usb", "virtio"])),
    (r#"hw:usb_model"#, Kind::Enum(&["none", "nec-xhci", "qemu-xhci"])),
    (r#"hw:redirected_usb_ports"#, Kind::Int(0, 15)),
    (r#"hw:ephemeral_encryption"#, Kind::Bool),
    (r#"hw:ephemeral_encryption_format"#, Kind::Enum(&["plain", "luks", "luksv2"])),
    (r#"hw_rng:allowed"#, Kind::Bool),
    (r#"hw_rng:rate_bytes"#, Kind::Int(0, i64::MAX)),
    (r#"hw_rng:rate_period"#, Kind::Int(0, i64::MAX)),
    (r#"hw_video:ram_max_mb"#, Kind::Int(0, i64::MAX)),
    (r#"hide_hypervisor_id"#, Kind::Bool),
    (r#"group_policy"#, Kind::Enum(&["isolate", "none"])),
    (r#"os:secure_boot"#, Kind::Enum(&["disabled", "required"])),
    (r#"pci_passthrough:alias"#, Kind::Pattern(r#"[^:]+:\d+(?:\s*,\s*[^:]+:\d+)*"#, r#"[^:]+:\d+(\s*,\s*[^:]+:\d+)*"#)),
    (r#"quota:cpu_limit"#, Kind::Int(0, i64::MAX)),
    (r#"quota:cpu_reservation"#, Kind::Int(i64::MIN, i64::MAX)),
    (r#"quota:cpu_shares_level"#, Kind::Enum(&["custom", "high", "normal", "low"])),
    (r#"quota:cpu_shares_share"#, Kind::Int(0, i64::MAX)),
    (r#"quota:memory_limit"#, Kind::Int(0, i64::MAX)),
    (r#"quota:memory_reservation"#, Kind::Int(i64::MIN, i64::MAX)),
    (r#"quota:memory_shares_level"#, Kind::Enum(&["custom", "high", "normal", "low"])),
    (r#"quota:memory_shares_share"#, Kind::Int(0, i64::MAX)),
    (r#"quota:disk_io_limit"#, Kind::Int(0, i64::MAX)),
    (r#"quota:disk_io_reservation"#, Kind::Int(i64::MIN, i64::MAX)),
    (r#"quota:disk_io_shares_level"#, Kind::Enum(&["custom", "high", "normal", "low"])),
    (r#"quota:disk_io_shares_share"#, Kind::Int(0, i64::MAX)),
    (r#"quota:vif_limit"#, Kind::Int(0, i64::MAX)),
    (r#"quota:vif_reservation"#, Kind::Int(i64::MIN, i64::MAX)),
    (r#"quota:vif_shares_level"#, Kind::Enum(&["custom", "high", "normal", "low"])),
    (r#"quota:vif_shares_share"#, Kind::Int(0, i64::MAX)),
    (r#"quota:cpu_shares"#, Kind::Int(0, i64::MAX)),
    (r#"quota:cpu_period"#, Kind::Int(0, i64::MAX)),
    (r#"quota:cpu_quota"#, Kind::Int(i64::MIN, i64::MAX)),
    (r#"quota:disk_read_bytes_sec"#, Kind::Int(0, i64::MAX)),
    (r#"quota:disk_read_iops_sec"#, Kind::Int(0, i64::MAX)),
    (r#"quota:disk_write_bytes_sec"#, Kind::Int(0, i64::MAX)),
    (r#"quota:disk_write_iops_sec"#, Kind::Int(0, i64::MAX)),
    (r#"quota:disk_total_bytes_sec"#, Kind::Int(0, i64::MAX)),
    (r#"quota:disk_total_iops_sec"#, Kind::Int(0, i64::MAX)),
    (r#"quota:vif_inbound_average"#, Kind::Int(0, i64::MAX)),
    (r#"quota:vif_inbound_peak"#, Kind::Int(0, i64::MAX)),
    (r#"quota:vif_inbound_burst"#, Kind::Int(0, i64::MAX)),
    (r#"quota:vif_outbound_average"#, Kind::Int(0, i64::MAX)),
    (r#"quota:vif_outbound_peak"#, Kind::Int(0, i64::MAX)),
    (r#"quota:vif_outbound_burst"#, Kind::Int(0, i64::MAX)),
    (r#"vmware:hw_version"#, Kind::Any),
    (r#"vmware:storage_policy"#, Kind::Any),
];

/// The group suffix `resources` and `trait` keys may carry (`resources1:`, `trait_x:`).
const GROUP: &str = r"([a-zA-Z0-9_-]{1,64})?";

/// The namespaces nova recognises (the part before `:` of every validator's name
/// regex).
const NAMESPACES: &[&str] = &[
    "accel",
    "aggregate_instance_extra_specs",
    "capabilities",
    "hw",
    "hw_rng",
    "hw_video",
    "os",
    "pci_passthrough",
    "quota",
    "vmware",
];

struct Compiled {
    validators: Vec<(Regex, Kind)>,
    namespaces: Vec<Regex>,
}

fn full(pattern: &str) -> Regex {
    Regex::new(&format!("^({pattern})$")).expect("nova's validator regexes compile")
}

fn compiled() -> &'static Compiled {
    static C: OnceLock<Compiled> = OnceLock::new();
    C.get_or_init(|| {
        let mut validators: Vec<(Regex, Kind)> = VALIDATORS
            .iter()
            .map(|(name, kind)| (full(name), *kind))
            .collect();
        // nova/api/validation/extra_specs/resources.py: every standard class, then
        // `CUSTOM_*`, each an integer.
        for rc in STANDARD_RESOURCE_CLASSES {
            validators.push((
                full(&format!("resources{GROUP}:{rc}")),
                Kind::Int(i64::MIN, i64::MAX),
            ));
        }
        validators.push((
            full(&format!("resources{GROUP}:CUSTOM_[A-Z0-9_]+")),
            Kind::Int(i64::MIN, i64::MAX),
        ));
        // traits.py: every standard trait, then `CUSTOM_*`, required or forbidden.
        const TRAIT: Kind = Kind::Enum(&["required", "forbidden"]);
        for t in STANDARD_TRAITS {
            validators.push((full(&format!("trait{GROUP}:{t}")), TRAIT));
        }
        validators.push((full(&format!("trait{GROUP}:CUSTOM_[A-Z0-9_]+")), TRAIT));
        let mut namespaces: Vec<Regex> = NAMESPACES.iter().map(|n| full(n)).collect();
        namespaces.push(full(&format!("resources{GROUP}")));
        namespaces.push(full(&format!("trait{GROUP}")));
        Compiled {
            validators,
            namespaces,
        }
    })
}

/// oslo `strutils.bool_from_string(strict=True)`.
fn bool_like(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "t" | "true" | "on" | "y" | "yes" | "0" | "f" | "false" | "off" | "n" | "no"
    )
}

/// Python's `int()` of a string: optional sign, digits (underscores between them),
/// surrounding whitespace.
fn py_int(v: &str) -> Option<i64> {
    let t = v.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    t.replace('_', "").parse().ok()
}

/// validators.py `validate` and base.py `ExtraSpecValidator.validate`: `Err` carries
/// nova's message (a 400).
pub(super) fn validate(name: &str, value: &str) -> Result<(), String> {
    let c = compiled();
    if let Some((_, kind)) = c.validators.iter().find(|(re, _)| re.is_match(name)) {
        return match *kind {
            Kind::Any => Ok(()),
            Kind::Bool if bool_like(value) => Ok(()),
            Kind::Bool => Err(format!(
                "Validation failed; '{value}' is not a valid boolean-like value."
            )),
            Kind::Int(min, max) => {
                let n = py_int(value).ok_or_else(|| {
                    format!("Validation failed; '{value}' is not a valid integer value.")
                })?;
                if n > max {
                    return Err(format!(
                        "Validation failed; '{n}' is greater than the max value of '{max}'."
                    ));
                }
                if n < min {
                    return Err(format!(
                        "Validation failed; '{n}' is less than the min value of '{min}'."
                    ));
                }
                Ok(())
            }
            Kind::Enum(values) if values.contains(&value) => Ok(()),
            Kind::Enum(values) => Err(format!(
                "Validation failed; '{value}' is not one of: {}.",
                values.join(", ")
            )),
            Kind::Pattern(shown, re) => {
                if full(re).is_match(value) {
                    Ok(())
                } else {
                    Err(format!(
                        "Validation failed; '{value}' is not of the format '{shown}'."
                    ))
                }
            }
        };
    }
    let Some((ns, _)) = name.split_once(':') else {
        return Ok(());
    };
    if c.namespaces.iter().any(|re| re.is_match(ns)) {
        return Err(format!(
            "Validation failed; extra spec '{name}' does not appear to be a valid extra spec."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn nova_validators() {
        assert!(validate("hw:cpu_policy", "dedicated").is_ok());
        assert!(validate("hw:cpu_policy", "pinned").is_err());
        assert!(validate("hw:mem_page_size", "2MB").is_ok());
        assert!(validate("hw:mem_page_size", "1GiB").is_ok());
        assert!(validate("hw:mem_page_size", "huge").is_err());
        assert!(validate("hw:numa_nodes", "2").is_ok());
        assert!(validate("hw:numa_nodes", "0").is_err());
        assert!(validate("hw:numa_nodes", "two").is_err());
        assert!(validate("hw:numa_cpus.0", "0-3,^2").is_ok());
        assert!(validate("pci_passthrough:alias", "a100:2").is_ok());
        assert!(validate("pci_passthrough:alias", "a100:2, t4:1").is_ok());
        assert!(validate("pci_passthrough:alias", "a100").is_err());
        assert!(validate("resources:VCPU", "0").is_ok());
        assert!(validate("resources1:CUSTOM_GPU", "1").is_ok());
        assert!(validate("resources:VCPUS", "1").is_err());
        assert!(validate("resources:VCPU", "x").is_err());
        assert!(validate("trait:HW_CPU_X86_AVX2", "required").is_ok());
        assert!(validate("trait:CUSTOM_FOO", "forbidden").is_ok());
        assert!(validate("trait:HW_CPU_X86_AVX2", "yes").is_err());
        assert!(validate("hw:no_such_thing", "1").is_err());
        assert!(validate("hw:watchdog_action", "reset").is_ok());
        assert!(validate("hide_hypervisor_id", "true").is_ok());
        assert!(validate("mycompany:anything", "x").is_ok());
        assert!(validate("plainkey", "x").is_ok());
        assert!(validate("quota:disk_read_bytes_sec", "100").is_ok());
        assert!(validate("aggregate_instance_extra_specs:ssd", "true").is_ok());
    }
}
