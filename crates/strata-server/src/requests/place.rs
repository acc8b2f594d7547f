//! The arithmetic of requests, pure: quotas, which spare machines fit a hardware
//! profile, where instances go in a DC (free cores and memory of Proxmox nodes, free
//! GPUs of compute hosts, spare machines), which DC takes a request, and when it
//! expires. The I/O that observes the platforms is in the parent module.

use strata_providers::maas::allocate::MachineInfo;
use strata_providers::openstack::servers::GpuHost;
use strata_providers::proxmox::guests::NodeCapacity;
use strata_store::Usage;

/// Why a team cannot have what it asked for: the first resource over its quota, in
/// words that say what is left (`team ml-research has 4 of 16 GPUs left; the request
/// needs 8`). `None` when the request fits.
pub fn quota_problem(team: &str, quota: &Usage, used: &Usage, want: &Usage) -> Option<String> {
    let parts: [(&str, i64, i64, i64); 4] = [
        ("GPUs", quota.gpus, used.gpus, want.gpus),
        ("instances", quota.instances, used.instances, want.instances),
        ("cores", quota.cores, used.cores, want.cores),
        ("MiB of memory", quota.ram_mib, used.ram_mib, want.ram_mib),
    ];
    parts
        .iter()
        .find(|(_, q, u, w)| u + w > *q)
        .map(|(what, q, u, w)| {
            let left = (q - u).max(0);
            format!("team {team} has {left} of {q} {what} left; the request needs {w}")
        })
}

/// A node as placement sees it: what it has free (never overcommitted).
fn free_of(n: &NodeCapacity) -> (i64, i64) {
    let f = |total: u64, used: u64| {
        i64::try_from(total).unwrap_or(0) - i64::try_from(used).unwrap_or(0)
    };
    (
        f(n.cores, n.allocated_cores),
        f(n.memory_mib, n.allocated_memory_mib),
    )
}

/// The node of each of `count` VMs of `cores` and `memory_mib` (one VM per node with
/// `anti_affinity`): each goes to the online node with the most free memory that
/// still fits it. `Err` says why not.
pub fn place_vms(
    nodes: &[NodeCapacity],
    cores: i64,
    memory_mib: i64,
    count: u32,
    anti_affinity: bool,
) -> Result<Vec<String>, String> {
    let mut free: Vec<(String, i64, i64)> = nodes
        .iter()
        .filter(|n| n.online)
        .map(|n| {
            let (c, m) = free_of(n);
            (n.node.clone(), c, m)
        })
        .collect();
    if free.is_empty() {
        return Err("no Proxmox node is online".into());
    }
    let mut out: Vec<String> = Vec::new();
    for i in 0..count {
        let best = free
            .iter_mut()
            .filter(|(n, c, m)| {
                *c >= cores && *m >= memory_mib && !(anti_affinity && out.contains(n))
            })
            .max_by(|a, b| a.2.cmp(&b.2).then(a.1.cmp(&b.1)).then(b.0.cmp(&a.0)));
        match best {
            Some((n, c, m)) => {
                *c -= cores;
                *m -= memory_mib;
                out.push(n.clone());
            }
            None => {
                let most = free
                    .iter()
                    .map(|(_, c, m)| (*m, *c))
                    .max()
                    .unwrap_or((0, 0));
                return Err(if anti_affinity && i as usize >= free.len() {
                    format!(
                        "{count} VMs apart need {count} online nodes; the cluster has {}",
                        free.len()
                    )
                } else {
                    format!(
                        "room for {i} of {count} VMs of {cores} cores and {memory_mib} MiB{} (the freest node has {} cores and {} MiB free)",
                        if anti_affinity {
                            " on separate nodes"
                        } else {
                            ""
                        },
                        most.1,
                        most.0
                    )
                });
            }
        }
    }
    Ok(out)
}

/// The compute host each of `count` instances of `per` GPUs is expected on (one per
/// host with `anti_affinity`; Nova's scheduler makes the final choice).
pub fn place_gpus(
    hosts: &[GpuHost],
    per: i64,
    count: u32,
    anti_affinity: bool,
) -> Result<Vec<String>, String> {
    let mut free: Vec<(String, i64)> = hosts.iter().map(|h| (h.host.clone(), h.free)).collect();
    let mut out: Vec<String> = Vec::new();
    for i in 0..count {
        let best = free
            .iter_mut()
            .filter(|(h, f)| *f >= per && !(anti_affinity && out.contains(h)))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
        match best {
            Some((h, f)) => {
                *f -= per;
                out.push(h.clone());
            }
            None => {
                let total: i64 = hosts.iter().map(|h| h.free).sum();
                return Err(format!(
                    "room for {i} of {count} instances of {per} GPUs{}: {} hosts with {total} GPUs free",
                    if anti_affinity {
                        " on separate hosts"
                    } else {
                        ""
                    },
                    hosts.iter().filter(|h| h.free > 0).count()
                ));
            }
        }
    }
    Ok(out)
}

/// What a machine must be to be handed out for `profile`.
pub struct ProfileFit<'a> {
    pub profile: &'a str,
    /// Logical CPUs (sockets × cores × threads) and memory the profile has.
    pub cpu_count: u64,
    pub memory_mib: u64,
    /// Serials the fleet's inventory declares (those machines are the fleet's).
    pub fleet_serials: &'a [String],
    /// The fleet's ownership tag (its machines carry it).
    pub owner_tag: &'a str,
}

/// Tags that keep a machine out of the spare pool.
const NOT_SPARE: [&str; 3] = ["strata-retired", "strata-rma", "strata-quarantine"];

/// Whether `m` is a spare of the profile: allocatable, not the fleet's (its serial
/// is not in the inventory, it carries neither the fleet's tag nor a role), not
/// retired or quarantined, and either tagged with the profile's name (how a DC team
/// marks its spares) or reporting the profile's CPUs and at least 95 % of its memory
/// (what MAAS commissioning found).
pub fn spare_fits(m: &MachineInfo, fit: &ProfileFit<'_>) -> bool {
    if !m.allocatable() || !m.owner_data.is_empty() {
        return false;
    }
    let fleets = m
        .tags
        .iter()
        .any(|t| t == fit.owner_tag || t.starts_with("role-") || NOT_SPARE.contains(&t.as_str()));
    if fleets || (!m.serial.is_empty() && fit.fleet_serials.contains(&m.serial)) {
        return false;
    }
    let tagged = m.tags.iter().any(|t| t == fit.profile);
    let hardware = fit.cpu_count > 0
        && m.cpu_count == fit.cpu_count
        && m.memory_mib * 100 >= fit.memory_mib * 95;
    tagged || hardware
}

/// `count` of the spares (by system id; in separate zones with `anti_affinity`).
pub fn place_metal(
    spares: &[MachineInfo],
    count: u32,
    anti_affinity: bool,
) -> Result<Vec<String>, String> {
    let mut sorted: Vec<&MachineInfo> = spares.iter().collect();
    sorted.sort_by(|a, b| {
        a.hostname
            .cmp(&b.hostname)
            .then(a.system_id.cmp(&b.system_id))
    });
    let mut out: Vec<String> = Vec::new();
    let mut zones: Vec<&str> = Vec::new();
    for m in sorted {
        if out.len() == count as usize {
            break;
        }
        if anti_affinity && zones.contains(&m.zone.as_str()) {
            continue;
        }
        zones.push(&m.zone);
        out.push(m.system_id.clone());
    }
    if out.len() < count as usize {
        return Err(if anti_affinity {
            format!(
                "{} spare machine(s) of the profile in {} zone(s); {count} apart need {count} zones",
                spares.len(),
                out.len()
            )
        } else {
            format!(
                "{} spare machine(s) of the profile; {count} wanted",
                spares.len()
            )
        });
    }
    Ok(out)
}

/// One DC's answer: how well it fits (higher is better) and its placement, or why not.
pub type Fit<P> = Result<(i64, P), String>;

/// The DC that takes the request: the best score, ties to the first name. `Err` lists
/// why each DC could not.
pub fn choose_dc<P>(options: Vec<(String, Fit<P>)>) -> Result<(String, P), Vec<String>> {
    let mut best: Option<(String, i64, P)> = None;
    let mut why = Vec::new();
    let mut sorted = options;
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (dc, o) in sorted {
        match o {
            Ok((score, p)) => {
                if best.as_ref().is_none_or(|(_, s, _)| score > *s) {
                    best = Some((dc, score, p));
                }
            }
            Err(e) => why.push(format!("{dc}: {e}")),
        }
    }
    best.map(|(dc, _, p)| (dc, p)).ok_or(why)
}

/// When a request expires (Unix ms; 0: never) from `expires_at` (RFC 3339) or
/// `expires_in_s` (seconds from `now`), not both.
pub fn expiry_ms(
    now: i64,
    expires_at: Option<&str>,
    expires_in_s: Option<u64>,
) -> Result<i64, String> {
    match (expires_at, expires_in_s) {
        (Some(_), Some(_)) => Err("give expires_at or expires_in_s, not both".into()),
        (None, None) => Ok(0),
        (None, Some(0)) => Err("expires_in_s must be at least 1".into()),
        (None, Some(s)) => {
            if s > 10 * 365 * 24 * 3600 {
                return Err("expires_in_s is at most ten years".into());
            }
            Ok(now + i64::try_from(s).unwrap_or(0) * 1000)
        }
        (Some(t), None) => {
            let at = strata_providers::openstack::parse_time(t).ok_or_else(|| {
                format!("expires_at {t:?} is not an RFC 3339 time (2026-05-01T18:00:00Z)")
            })?;
            let ms = at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            if ms <= now {
                return Err(format!("expires_at {t} is in the past"));
            }
            Ok(ms)
        }
    }
}

/// Unix ms as RFC 3339 (UTC, seconds).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (proleptic Gregorian), after Howard Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cores: u64, mem: u64, used_c: u64, used_m: u64) -> NodeCapacity {
        NodeCapacity {
            node: name.into(),
            online: true,
            cores,
            memory_mib: mem,
            allocated_cores: used_c,
            allocated_memory_mib: used_m,
            guests: 0,
        }
    }

    fn usage(i: i64, c: i64, r: i64, g: i64) -> Usage {
        Usage {
            instances: i,
            cores: c,
            ram_mib: r,
            gpus: g,
        }
    }

    #[test]
    fn quota_says_what_is_left() {
        let q = usage(20, 800, 4_194_304, 16);
        assert_eq!(
            quota_problem("ml", &q, &usage(2, 48, 0, 12), &usage(1, 24, 0, 4)),
            None
        );
        assert_eq!(
            quota_problem(
                "ml-research",
                &q,
                &usage(2, 48, 0, 12),
                &usage(1, 192, 0, 8)
            )
            .as_deref(),
            Some("team ml-research has 4 of 16 GPUs left; the request needs 8")
        );
        assert_eq!(
            quota_problem("ml", &q, &usage(20, 48, 0, 0), &usage(1, 2, 0, 0)).as_deref(),
            Some("team ml has 0 of 20 instances left; the request needs 1")
        );
        assert!(
            quota_problem("p", &q, &usage(0, 790, 0, 0), &usage(1, 16, 0, 0))
                .is_some_and(|m| m.contains("10 of 800 cores"))
        );
        // Over already (a quota lowered since): nothing left, never negative.
        assert!(
            quota_problem(
                "p",
                &usage(1, 1, 1, 0),
                &usage(3, 0, 0, 0),
                &usage(1, 0, 0, 0)
            )
            .is_some_and(|m| m.contains("has 0 of 1 instances"))
        );
    }

    #[test]
    fn vms_go_where_memory_is_free_and_apart_when_asked() {
        let nodes = [
            node("pve1", 64, 65536, 60, 1024),
            node("pve2", 64, 65536, 8, 16384),
            node("pve3", 64, 65536, 8, 8192),
        ];
        // Most free memory first; pve1 lacks cores.
        assert_eq!(
            place_vms(&nodes, 8, 16384, 1, false),
            Ok(vec!["pve3".to_string()])
        );
        // Without anti-affinity they pile where memory stays freest.
        assert_eq!(
            place_vms(&nodes, 8, 20000, 3, false),
            Ok(vec![
                "pve3".to_string(),
                "pve2".to_string(),
                "pve3".to_string()
            ])
        );
        assert_eq!(
            place_vms(&nodes, 8, 8192, 2, true),
            Ok(vec!["pve3".to_string(), "pve2".to_string()])
        );
        let e = place_vms(&nodes, 8, 8192, 3, true).expect_err("pve1 has no cores");
        assert!(e.contains("room for 2 of 3"), "{e}");
        let e = place_vms(&nodes[1..], 1, 1, 3, true).expect_err("two nodes");
        assert!(e.contains("need 3 online nodes; the cluster has 2"), "{e}");
        let mut off = nodes.clone();
        for n in &mut off {
            n.online = false;
        }
        assert!(place_vms(&off, 1, 1, 1, false).is_err());
    }

    #[test]
    fn gpus_fit_per_host() {
        let hosts = [
            GpuHost {
                host: "gpu1".into(),
                total: 8,
                free: 3,
            },
            GpuHost {
                host: "gpu2".into(),
                total: 8,
                free: 8,
            },
        ];
        assert_eq!(
            place_gpus(&hosts, 8, 1, false),
            Ok(vec!["gpu2".to_string()])
        );
        assert!(
            place_gpus(&hosts, 8, 2, false).is_err(),
            "3 + 8 free, but not 8 twice"
        );
        assert_eq!(
            place_gpus(&hosts, 1, 4, false),
            Ok(vec![
                "gpu2".into(),
                "gpu2".into(),
                "gpu2".into(),
                "gpu2".into()
            ])
        );
        assert_eq!(
            place_gpus(&hosts, 2, 2, true),
            Ok(vec!["gpu2".into(), "gpu1".into()])
        );
        let e = place_gpus(&hosts, 1, 3, true).expect_err("two hosts");
        assert!(
            e.contains("room for 2 of 3") && e.contains("separate hosts"),
            "{e}"
        );
    }

    fn spare(sid: &str, zone: &str, tags: &[&str]) -> MachineInfo {
        MachineInfo {
            system_id: sid.into(),
            hostname: format!("h-{sid}"),
            status: "Ready".into(),
            status_code: 4,
            cpu_count: 4,
            memory_mib: 8192,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            zone: zone.into(),
            ..MachineInfo::default()
        }
    }

    #[test]
    fn spares_match_by_tag_or_hardware_and_never_take_the_fleets() {
        let serials = vec!["FLEET1".to_string()];
        let fit = ProfileFit {
            profile: "hv-std",
            cpu_count: 128,
            memory_mib: 786_432,
            fleet_serials: &serials,
            owner_tag: "strata-example",
        };
        assert!(spare_fits(&spare("a", "az1", &["hv-std"]), &fit));
        assert!(
            !spare_fits(&spare("b", "az1", &[]), &fit),
            "small, untagged"
        );
        let mut big = spare("c", "az1", &[]);
        big.cpu_count = 128;
        big.memory_mib = 780_000;
        assert!(spare_fits(&big, &fit), "reports the profile's hardware");
        for bad in [
            "strata-example",
            "role-proxmox",
            "strata-retired",
            "strata-quarantine",
        ] {
            assert!(
                !spare_fits(&spare("d", "az1", &["hv-std", bad]), &fit),
                "{bad}"
            );
        }
        let mut fleet = spare("e", "az1", &["hv-std"]);
        fleet.serial = "FLEET1".into();
        assert!(!spare_fits(&fleet, &fit), "in the inventory");
        let mut taken = spare("f", "az1", &["hv-std"]);
        taken.owner = Some("admin".into());
        assert!(!spare_fits(&taken, &fit));
        let mut marked = spare("g", "az1", &["hv-std"]);
        marked
            .owner_data
            .insert("strata-request".into(), "req-x".into());
        assert!(!spare_fits(&marked, &fit));
    }

    #[test]
    fn metal_spreads_over_zones_when_asked() {
        let s = [
            spare("a", "az1", &[]),
            spare("b", "az1", &[]),
            spare("c", "az2", &[]),
        ];
        assert_eq!(
            place_metal(&s, 2, false),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            place_metal(&s, 2, true),
            Ok(vec!["a".to_string(), "c".to_string()])
        );
        assert!(place_metal(&s, 3, true).is_err_and(|e| e.contains("2 zone(s)")));
        assert!(place_metal(&s, 4, false).is_err_and(|e| e.contains("3 spare")));
    }

    #[test]
    fn the_fittest_dc_wins_and_every_refusal_is_explained() {
        let got = choose_dc(vec![
            ("waw1".to_string(), Ok((5, "w"))),
            ("ams1".to_string(), Err("no room".to_string())),
            ("fra1".to_string(), Ok((5, "f"))),
        ]);
        assert_eq!(got, Ok(("fra1".to_string(), "f")));
        let none: Result<(String, ()), Vec<String>> = choose_dc(vec![
            ("b".to_string(), Err("x".into())),
            ("a".to_string(), Err("y".into())),
        ]);
        assert_eq!(none, Err(vec!["a: y".to_string(), "b: x".to_string()]));
    }

    #[test]
    fn expiry_and_times() {
        let now = 1_700_000_000_000;
        assert_eq!(expiry_ms(now, None, None), Ok(0));
        assert_eq!(expiry_ms(now, None, Some(60)), Ok(now + 60_000));
        assert!(expiry_ms(now, Some("2020-01-01T00:00:00Z"), None).is_err());
        assert!(expiry_ms(now, Some("x"), None).is_err());
        assert!(expiry_ms(now, Some("2030-01-01T00:00:00Z"), Some(5)).is_err());
        let t = expiry_ms(now, Some("2030-01-01T00:00:00Z"), None).expect("future");
        assert_eq!(rfc3339(t), "2030-01-01T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
