//! The asynchronous status machine: how long each phase takes, status changes with their
//! messages, per-machine faults taken at phase ends, script sets run and finished, and
//! `advance`, which moves a machine through the phases whose time has come.

use super::*;
use crate::{MaasTiming, Timing};

/// How a phase started now is timed: the twin's timing, the `slow_task` fault, and
/// the seed that fixes each machine's jitter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pace {
    pub slow: bool,
    pub timing: Timing,
    pub seed: u64,
}

/// How long a phase takes on a physical server, in milliseconds, before jitter.
///
/// - Commissioning: the BMC powers the machine on, it POSTs, PXE-boots the ephemeral
///   image and runs the commissioning scripts, then powers off (MAAS docs, "About
///   commissioning machines"; the scripts alone take about 60 s). A server's POST
///   takes minutes: crowbar waits 10 min for "enterprisy" servers that need more than
///   5–6 (crowbar/crowbar-core#1872); SUSE CaaSP waits 20 min, having seen 10–12
///   (SUSE/caasp-salt#171). 8 min.
/// - Testing: the default commissioning tests (`smartctl-validate` and the like) in
///   the same boot. 2 min, so commissioning with its tests takes about 10.
/// - Deploying: POST, PXE boot, curtin writes the image and the storage and network
///   configuration, reboot (a second POST) into the installed OS, cloud-init's first
///   boot (MAAS docs, "About deploying machines"). 13 min — under MAAS's
///   `node_timeout` of 30 min, which fails a deployment that takes longer.
/// - Releasing: a power-off through the BMC. 1 min.
/// - Disk erasing: a quick erase plus a boot into the ephemeral image. 10 min.
fn realistic_ms(p: Phase) -> u64 {
    const MIN: u64 = 60_000;
    match p {
        Phase::Commissioning => 8 * MIN,
        Phase::Testing => 2 * MIN,
        Phase::Deploying => 13 * MIN,
        Phase::Releasing => MIN,
        Phase::DiskErasing => 10 * MIN,
    }
}

/// How much a machine's phase differs from the typical duration: a factor in
/// [0.75, 1.25], fixed by the twin's seed, the machine (`key`: its serial, else its
/// system id) and the phase, so runs with one seed time every machine alike.
fn jitter(seed: u64, key: &str, p: Phase) -> f64 {
    // FNV-1a over the seed, the machine and the phase, then a SplitMix64 finaliser.
    let mut h: u64 = 0xcbf29ce484222325;
    let phase = p as u8;
    for b in seed
        .to_le_bytes()
        .iter()
        .chain(key.as_bytes())
        .chain(std::iter::once(&phase))
    {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d049bb133111eb);
    h ^= h >> 31;
    let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
    0.75 + 0.5 * unit
}

/// How long phase `p` of the machine identified by `key` takes, in twin-clock
/// milliseconds: the fast or realistic duration (x10 under the `slow_task` fault),
/// divided by the time scale.
pub fn phase_ms(p: Phase, key: &str, pace: Pace) -> u64 {
    let base = match pace.timing.maas {
        MaasTiming::Fast => match p {
            Phase::Commissioning => 300,
            Phase::Testing => 200,
            Phase::Deploying => 500,
            Phase::Releasing => 200,
            Phase::DiskErasing => 300,
        },
        MaasTiming::Realistic => (realistic_ms(p) as f64 * jitter(pace.seed, key, p)) as u64,
    };
    pace.timing
        .scaled_ms(if pace.slow { base * 10 } else { base })
}

pub(super) fn set_status(m: &mut Machine, st: u8, message: &str, now: u64) {
    if m.status != st {
        m.previous_status = m.status;
    }
    m.status = st;
    m.status_message = message.to_string();
    m.updated_ms = now;
    if st == S::NEW || st == S::READY {
        m.owner = None;
    }
}

pub(super) fn start(m: &mut Machine, phase: Phase, from_ms: u64, pace: Pace) {
    let key = if m.actual.serial.is_empty() {
        m.system_id.as_str()
    } else {
        m.actual.serial.as_str()
    };
    m.pending = Some(Pending {
        phase,
        due_ms: from_ms + phase_ms(phase, key, pace),
        slow: pace.slow,
    });
}

/// Whether a phase keeps the machine busy provisioning (booted into an installer or
/// the ephemeral image): what a limit on concurrent provisions bounds. Releasing is a
/// power-off.
pub fn is_active(p: Phase) -> bool {
    !matches!(p, Phase::Releasing)
}

/// A per-object fault on this machine (by system id, serial or hostname) among `names`,
/// consuming one use of it.
pub(super) fn take_fault(faults: &Faults, dc: &str, m: &Machine, names: &[&str]) -> Option<String> {
    for id in m.fault_ids() {
        if id.is_empty() {
            continue;
        }
        if let Some(f) = faults.peek_object(dc, "maas", id)
            && names.contains(&f.as_str())
        {
            faults.take_object(dc, "maas", id);
            return Some(f);
        }
    }
    None
}

pub(super) fn finish_set(set: &mut Option<ScriptSet>, now: u64, status: u8, failing: Option<&str>) {
    if let Some(s) = set {
        s.ended_ms = Some(now);
        for r in &mut s.results {
            if r.status == script_status::PENDING || r.status == script_status::RUNNING {
                let failed = failing.is_some_and(|f| f == r.name || f == "*");
                r.status = if failed {
                    script_status::FAILED
                } else {
                    status
                };
                r.exit_status = Some(if failed {
                    1
                } else if status == script_status::PASSED {
                    0
                } else {
                    -1
                });
                r.started_ms.get_or_insert(now);
                r.ended_ms = Some(now);
            }
        }
    }
}

pub(super) fn run_set(set: &mut Option<ScriptSet>, now: u64) {
    if let Some(s) = set {
        s.started_ms = Some(now);
        for r in &mut s.results {
            r.status = script_status::RUNNING;
            r.started_ms = Some(now);
        }
    }
}

/// What commissioning reports, given the faults set on the machine.
pub(super) fn commissioned_hardware(actual: &Hardware, faults: &[String]) -> Hardware {
    let mut hw = actual.clone();
    for f in faults {
        match f.as_str() {
            "gpu_degraded" => {
                if let Some(g) = hw.gpus.first_mut() {
                    g.link_width = if g.max_width > 8 {
                        8
                    } else {
                        (g.max_width / 2).max(1)
                    };
                    g.link_gen = g.max_gen.saturating_sub(1).max(1);
                }
            }
            "memory_missing" => {
                let missing = hw.memory_mib - hw.memory_mib * 3 / 4;
                hw.memory_mib -= missing;
                // The DIMMs gone are the last node's.
                if let Some(n) = hw.numa.last_mut() {
                    n.memory_mib = n.memory_mib.saturating_sub(missing);
                }
            }
            _ => {}
        }
    }
    hw
}

/// Record what commissioning found of the machine's NIC ports on its interfaces
/// (matched by MAC), as MAAS's commissioning hook does.
pub(super) fn apply_nics(m: &mut Machine, hw: &Hardware) {
    for i in m.interfaces.iter_mut().filter(|i| i.kind() == "physical") {
        if let Some(n) = hw.nics.iter().find(|n| n.mac_address == i.mac_address) {
            i.apply_nic(n);
        }
    }
}

/// Run the user scripts waiting in `set` on the machine with hardware `hw` (its
/// sysfs, and the machine-resources document of it), recording each outcome as MAAS
/// stores it, at twin time `at`. True when one failed (or timed out).
pub(super) fn run_user_scripts(
    m: &Machine,
    set: &mut Option<ScriptSet>,
    hw: &Hardware,
    at: u64,
) -> bool {
    let Some(set) = set else { return false };
    if !set.results.iter().any(|r| r.pending_script.is_some()) {
        return false;
    }
    let mut seen = m.clone();
    apply_nics(&mut seen, hw);
    let resources = super::super::bson::machine_resources(&seen, hw);
    let mut failed = false;
    for r in &mut set.results {
        let Some((text, timeout)) = r.pending_script.take() else {
            continue;
        };
        let o = super::super::sysfs::run(&text, timeout, hw, &resources);
        failed |= o.status != script_status::PASSED;
        r.status = o.status;
        r.exit_status = Some(o.exit_status);
        r.output = o.output;
        r.stdout = o.stdout;
        r.stderr = o.stderr;
        r.result = o.result;
        r.captured = true;
        r.started_ms = Some(at);
        r.ended_ms = Some(at);
    }
    failed
}

/// A failed commissioning: the tests that were to follow are aborted and the
/// machine is powered off (metadataserver/api.py `_process_commissioning`).
fn commissioning_failed(m: &mut Machine, at: u64, now: u64) {
    finish_set(&mut m.testing, at, script_status::ABORTED, None);
    m.power_on = false;
    set_status(m, S::FAILED_COMMISSIONING, "Failed commissioning", now);
}

/// Complete the machine's pending phases that are due at `now`. True when
/// commissioning ended with its results processed: the caller then applies MAAS's
/// default storage layout (metadataserver/builtin_scripts/hooks.py calls
/// `set_default_storage_layout` once the block devices are known).
pub fn advance(m: &mut Machine, faults: &Faults, dc: &str, now: u64, pace: Pace) -> bool {
    let mut commissioned = false;
    while let Some(p) = m.pending.clone() {
        if p.due_ms > now {
            return commissioned;
        }
        let at = p.due_ms;
        m.pending = None;
        match p.phase {
            Phase::Commissioning => {
                let fails = take_fault(faults, dc, m, &["commission_fails"]).is_some()
                    || m.commissioning_fails;
                // One object carries one fault at a time; it fires once per commissioning.
                let hw_faults: Vec<String> = if fails {
                    vec![]
                } else {
                    take_fault(faults, dc, m, &["gpu_degraded", "memory_missing"])
                        .into_iter()
                        .collect()
                };
                let hw = commissioned_hardware(&m.actual, &hw_faults);
                // Every script runs, whichever fails (maas_run_remote_scripts.py).
                let mut set = m.commissioning.take();
                let user_failed = run_user_scripts(m, &mut set, &hw, at);
                m.commissioning = set;
                if fails {
                    // The builtin that gathers the commissioning data fails: MAAS
                    // processes no hardware from it.
                    let failing = "50-maas-01-commissioning";
                    finish_set(
                        &mut m.commissioning,
                        at,
                        script_status::PASSED,
                        Some(failing),
                    );
                    if let Some(r) = m
                        .commissioning
                        .iter_mut()
                        .flat_map(|s| s.results.iter_mut())
                        .find(|r| r.name == failing)
                    {
                        let msg = "Failed to read the machine resources: commissioning failed on this machine (twin)\n";
                        r.output = msg.into();
                        r.stderr = msg.into();
                        r.captured = true;
                    }
                    commissioning_failed(m, at, now);
                    continue;
                }
                m.reported = Some(hw.clone());
                apply_nics(m, &hw);
                commissioned = true;
                finish_set(&mut m.commissioning, at, script_status::PASSED, None);
                if user_failed {
                    commissioning_failed(m, at, now);
                    continue;
                }
                let has_tests = m.testing.as_ref().is_some_and(|t| !t.results.is_empty());
                if has_tests {
                    run_set(&mut m.testing, at);
                    let prev = m.previous_status;
                    set_status(m, S::TESTING, "Testing", now);
                    m.previous_status = prev;
                    start(
                        m,
                        Phase::Testing,
                        at,
                        Pace {
                            slow: p.slow,
                            ..pace
                        },
                    );
                } else {
                    m.power_on = false;
                    set_status(m, S::READY, "Ready", now);
                }
            }
            Phase::Testing => {
                let hw = m.reported.clone().unwrap_or_else(|| m.actual.clone());
                let mut set = m.testing.take();
                let user_failed = run_user_scripts(m, &mut set, &hw, at);
                m.testing = set;
                if take_fault(faults, dc, m, &["testing_fails"]).is_some() {
                    finish_set(&mut m.testing, at, script_status::PASSED, Some("*"));
                    m.power_on = false;
                    set_status(m, S::FAILED_TESTING, "Failed testing", now);
                    continue;
                }
                finish_set(&mut m.testing, at, script_status::PASSED, None);
                if user_failed {
                    m.power_on = false;
                    set_status(m, S::FAILED_TESTING, "Failed testing", now);
                    continue;
                }
                // Testing returns a machine to Ready from commissioning and failure
                // states, otherwise to where it was (MAAS's testing reset rules).
                let back = match m.previous_status {
                    S::ALLOCATED | S::DEPLOYED | S::RESERVED => m.previous_status,
                    _ => S::READY,
                };
                if back != S::DEPLOYED {
                    m.power_on = false;
                }
                set_status(m, back, status_message_for(back), now);
            }
            Phase::Deploying => {
                if take_fault(faults, dc, m, &["deploy_fails"]).is_some() {
                    finish_set(&mut m.installation, at, script_status::PASSED, Some("*"));
                    set_status(
                        m,
                        S::FAILED_DEPLOYMENT,
                        "Installation failed (refer to the installation log for more information).",
                        now,
                    );
                    continue;
                }
                finish_set(&mut m.installation, at, script_status::PASSED, None);
                m.netboot = false;
                m.power_on = true;
                set_status(m, S::DEPLOYED, "Deployed", now);
            }
            Phase::Releasing | Phase::DiskErasing => {
                let (fault, failed) = if p.phase == Phase::Releasing {
                    ("release_fails", S::FAILED_RELEASING)
                } else {
                    ("erase_fails", S::FAILED_DISK_ERASING)
                };
                if take_fault(faults, dc, m, &[fault]).is_some() {
                    m.erasing = None;
                    set_status(
                        m,
                        failed,
                        if failed == S::FAILED_RELEASING {
                            "Releasing failed"
                        } else {
                            "Failed to erase disks"
                        },
                        now,
                    );
                    continue;
                }
                if let Some(mode) = m.erasing.take()
                    && p.phase == Phase::DiskErasing
                {
                    m.disk_erasures.push(mode);
                }
                released(m, now);
            }
        }
    }
    commissioned
}

pub(super) fn status_message_for(s: u8) -> &'static str {
    match s {
        S::READY => "Ready",
        S::DEPLOYED => "Deployed",
        S::ALLOCATED => "Allocated",
        _ => S::name(s),
    }
}

pub(super) fn released(m: &mut Machine, now: u64) {
    m.power_on = false;
    m.osystem.clear();
    m.distro_series.clear();
    m.hwe_kernel = None;
    m.agent_name.clear();
    m.owner_data.clear();
    m.user_data = None;
    m.netboot = true;
    m.installation = None;
    for i in &mut m.interfaces {
        for l in &mut i.links {
            if l.mode == "auto" {
                l.ip_address = None;
            }
        }
    }
    set_status(m, S::READY, "Released", now);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(maas: MaasTiming, scale: u32, seed: u64) -> Pace {
        Pace {
            slow: false,
            timing: Timing { maas, scale },
            seed,
        }
    }

    #[test]
    fn fast_timing_is_unchanged_and_slow_is_ten_times_longer() {
        let fast = pace(MaasTiming::Fast, 1, 1);
        assert_eq!(phase_ms(Phase::Commissioning, "SN1", fast), 300);
        assert_eq!(phase_ms(Phase::Testing, "SN1", fast), 200);
        assert_eq!(phase_ms(Phase::Deploying, "SN2", fast), 500);
        let slow = Pace { slow: true, ..fast };
        assert_eq!(phase_ms(Phase::Deploying, "SN2", slow), 5000);
    }

    #[test]
    fn realistic_timing_is_jittered_per_machine_fixed_by_the_seed_and_scaled() {
        let p = pace(MaasTiming::Realistic, 1, 42);
        let keys: Vec<String> = (0..200).map(|i| format!("SN{i:05}")).collect();
        for (phase, typical) in [
            (Phase::Commissioning, 8 * 60_000),
            (Phase::Testing, 2 * 60_000),
            (Phase::Deploying, 13 * 60_000),
        ] {
            let ms: Vec<u64> = keys.iter().map(|k| phase_ms(phase, k, p)).collect();
            for &d in &ms {
                assert!(
                    d >= typical * 3 / 4 && d <= typical * 5 / 4,
                    "{phase:?} {d} ms"
                );
            }
            // Spread over the range, not one value.
            let (lo, hi) = (ms.iter().min().unwrap(), ms.iter().max().unwrap());
            assert!(hi - lo > typical / 3, "{phase:?} {lo}..{hi}");
            let mean = ms.iter().sum::<u64>() / ms.len() as u64;
            assert!(
                mean.abs_diff(typical) < typical / 20,
                "{phase:?} mean {mean}"
            );
            // The same seed gives the same durations; another seed others.
            let again: Vec<u64> = keys.iter().map(|k| phase_ms(phase, k, p)).collect();
            assert_eq!(ms, again);
            let other: Vec<u64> = keys
                .iter()
                .map(|k| phase_ms(phase, k, pace(MaasTiming::Realistic, 1, 43)))
                .collect();
            assert_ne!(ms, other);
        }
        // The time scale divides every duration.
        let scaled = pace(MaasTiming::Realistic, 60, 42);
        for k in &keys {
            assert_eq!(
                phase_ms(Phase::Deploying, k, scaled),
                phase_ms(Phase::Deploying, k, p) / 60
            );
        }
    }
}
