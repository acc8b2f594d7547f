//! The asynchronous status machine: how long each phase takes, status changes with their
//! messages, per-machine faults taken at phase ends, script sets run and finished, and
//! `advance`, which moves a machine through the phases whose time has come.

use super::*;

/// How long each asynchronous phase takes (x10 under the `slow_task` fault).
pub(super) fn phase_ms(p: Phase, slow: bool) -> u64 {
    let base = match p {
        Phase::Commissioning => 300,
        Phase::Testing => 200,
        Phase::Deploying => 500,
        Phase::Releasing => 200,
        Phase::DiskErasing => 300,
    };
    if slow { base * 10 } else { base }
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

pub(super) fn start(m: &mut Machine, phase: Phase, from_ms: u64, slow: bool) {
    m.pending = Some(Pending {
        phase,
        due_ms: from_ms + phase_ms(phase, slow),
        slow,
    });
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
pub fn advance(m: &mut Machine, faults: &Faults, dc: &str, now: u64) -> bool {
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
                    start(m, Phase::Testing, at, p.slow);
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
