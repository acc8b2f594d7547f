//! Operations that start an asynchronous phase: commission, test, deploy (series and kernel
//! checks), release and release of many.

use super::*;

/// A pending result for a script picked for a run (a user script carries its text
/// and timeout, to run when the phase ends).
pub(super) fn script_result(st: &mut State, s: Selected) -> ScriptResult {
    ScriptResult {
        id: st.next_id("scriptresult", 1),
        name: s.name,
        hardware_type: s.hardware_type,
        script_id: Some(s.script_id),
        script_revision_id: Some(s.revision_id),
        pending_script: s.run,
        ..ScriptResult::default()
    }
}

/// The scripts a commissioning takes: every builtin and the user scripts
/// `commissioning_scripts` names (or all that run by default), then the tests
/// `testing_scripts` names (by default those tagged `commissioning`; `none`: none).
/// `for_hardware` scripts apply to the hardware MAAS knows. `Err`: MAAS's form
/// error for the field naming an unknown script.
pub(super) fn plan_commissioning(
    st: &State,
    m: &Machine,
    commissioning: &[String],
    testing: &[String],
) -> Result<(Vec<Selected>, Vec<Selected>), Response> {
    let hw = m.reported.as_ref();
    let c = scripts::select(st, 0, commissioning, hw)
        .map_err(|e| invalid1("commissioning_scripts", e))?;
    let t = scripts::select(st, 2, testing, hw).map_err(|e| invalid1("testing_scripts", e))?;
    Ok((c, t))
}

pub(super) fn begin_commissioning(
    st: &mut State,
    m: &mut Machine,
    now: u64,
    pace: Pace,
    (commissioning, testing): (Vec<Selected>, Vec<Selected>),
) {
    let cset = st.next_id("scriptset", 1);
    let results = commissioning
        .into_iter()
        .map(|s| script_result(st, s))
        .collect();
    m.commissioning = Some(ScriptSet {
        id: cset,
        result_type: 0,
        started_ms: Some(now),
        ended_ms: None,
        results,
    });
    let tset = st.next_id("scriptset", 1);
    let results = testing.into_iter().map(|s| script_result(st, s)).collect();
    m.testing = Some(ScriptSet {
        id: tset,
        result_type: 2,
        started_ms: None,
        ended_ms: None,
        results,
    });
    run_set(&mut m.commissioning, now);
    // Commissioning starts from a blank storage configuration unless told to skip
    // storage (node.py `start_commissioning`).
    if !m.skip_storage {
        storage::clear(m);
    }
    m.owner = Some(API_USER.into());
    m.power_on = true;
    set_status(m, S::COMMISSIONING, "Commissioning", now);
    m.owner = Some(API_USER.into());
    start(m, Phase::Commissioning, now, pace);
}

pub(super) fn default_series(st: &State) -> String {
    st.config
        .get("default_distro_series")
        .and_then(|v| v.as_str())
        .unwrap_or("noble")
        .to_string()
}

pub fn commission(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let m = match machine_or_404(st, &sid) {
        Ok(m) => m.clone(),
        Err(e) => return e,
    };
    for key in [
        "enable_ssh",
        "skip_bmc_config",
        "skip_networking",
        "skip_storage",
    ] {
        if let Err(v) = r.params.bool(key) {
            return invalid1(key, format!("'{v}' value must be either True or False."));
        }
    }
    if !S::COMMISSIONABLE.contains(&m.status) {
        return conflict(&format!(
            "Invalid transition: {} -> Commissioning.",
            S::name(m.status)
        ));
    }
    let plan = match plan_commissioning(
        st,
        &m,
        &r.params.list("commissioning_scripts"),
        &r.params.list("testing_scripts"),
    ) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if m.power_type.is_empty() {
        return unknown_power_type();
    }
    let mut m = m;
    if let Err(e) = power_action(s, st, &mut m) {
        return e;
    }
    let pace = s.pace();
    m.skip_storage = r
        .params
        .bool("skip_storage")
        .ok()
        .flatten()
        .unwrap_or(false);
    begin_commissioning(st, &mut m, s.now_ms(), pace, plan);
    if let Some(slot) = st.machine_mut(&sid) {
        *slot = m;
    }
    render_one(s, st, &sid)
}

pub fn test(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine(&sid) else {
        return not_found("Machine");
    };
    let allowed = [
        S::NEW,
        S::READY,
        S::ALLOCATED,
        S::DEPLOYED,
        S::BROKEN,
        S::FAILED_COMMISSIONING,
        S::FAILED_DEPLOYMENT,
        S::FAILED_TESTING,
        S::FAILED_RELEASING,
        S::FAILED_DISK_ERASING,
        S::MISSING,
        S::RETIRED,
        S::RESERVED,
    ];
    if !allowed.contains(&m.status) {
        return conflict(&format!(
            "Invalid transition: {} -> Testing.",
            S::name(m.status)
        ));
    }
    if m.power_type.is_empty() {
        return unknown_power_type();
    }
    let tests = match scripts::select(
        st,
        2,
        &r.params.list("testing_scripts"),
        m.reported.as_ref(),
    ) {
        Ok(t) => t,
        Err(e) => return invalid1("testing_scripts", e),
    };
    let mut probe = m.clone();
    if let Err(e) = power_action(s, st, &mut probe) {
        return e;
    }
    let tset = st.next_id("scriptset", 1);
    let results: Vec<ScriptResult> = tests.into_iter().map(|t| script_result(st, t)).collect();
    let now = s.now_ms();
    let pace = s.pace();
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    m.power_actions = probe.power_actions;
    m.testing = Some(ScriptSet {
        id: tset,
        result_type: 2,
        started_ms: Some(now),
        ended_ms: None,
        results,
    });
    run_set(&mut m.testing, now);
    m.power_on = true;
    set_status(m, S::TESTING, "Testing", now);
    start(m, Phase::Testing, now, pace);
    render_one(s, st, &sid)
}

/// The operating system and release a deploy's `distro_series` names, among the
/// usable images: synced Ubuntu releases (by name or version, with or without
/// `ubuntu/`) and uploaded custom images (`custom/NAME` or `NAME`). MAAS flattens
/// `distro_series` the same way (canonical/maas src/maasserver/forms/__init__.py,
/// `MachineForm.set_distro_series` and
/// `find_osystem_and_release_from_release_name_or_alias`; the usable set comes from
/// the boot resources, `src/maasserver/utils/osystems.py`
/// `list_all_usable_osystems`), and an image MAAS does not have fails the form's
/// choice validation with this message.
pub(super) fn check_series(st: &State, series: &str) -> Result<(String, String), Response> {
    let (os, release) = match series.split_once('/') {
        Some((os, release)) => (Some(os), release),
        None => (None, series),
    };
    if os.is_none() || os == Some("ubuntu") {
        for (name, version) in RELEASES {
            if release == *name || release == *version {
                let synced = st
                    .boot_resources
                    .iter()
                    .any(|b| b.name == format!("ubuntu/{name}"));
                if synced {
                    return Ok(("ubuntu".into(), name.to_string()));
                }
            }
        }
    }
    if os.is_none() || os == Some("custom") {
        let uploaded = st
            .boot_resources
            .iter()
            .any(|b| b.kind == "Uploaded" && b.name == release);
        if uploaded {
            return Ok(("custom".into(), release.to_string()));
        }
    }
    let mut choices = vec!["''".to_string()];
    choices.extend(RELEASES.iter().map(|(n, _)| format!("'ubuntu/{n}'")));
    choices.extend(
        st.boot_resources
            .iter()
            .filter(|b| b.kind == "Uploaded")
            .map(|b| format!("'custom/{}'", b.name)),
    );
    Err(invalid1(
        "distro_series",
        format!(
            "'{series}' is not a valid distro_series.  It should be one of: {}.",
            choices.join(", ")
        ),
    ))
}

pub(super) fn check_kernel(series: &str, k: &str) -> Result<(), Response> {
    let version = RELEASES
        .iter()
        .find(|(n, _)| *n == series)
        .map(|(_, v)| *v)
        .unwrap_or("24.04");
    let ok_k = [
        format!("ga-{version}"),
        format!("hwe-{version}"),
        format!("hwe-{version}-edge"),
        "generic".into(),
    ];
    if k.is_empty() || ok_k.iter().any(|x| x == k) {
        Ok(())
    } else {
        Err(invalid1(
            "hwe_kernel",
            format!("{k} is not available for ubuntu/{series} on amd64/generic."),
        ))
    }
}

pub(super) fn begin_deploy(st: &mut State, m: &mut Machine, now: u64, pace: Pace) {
    let set = st.next_id("scriptset", 1);
    let results = vec![ScriptResult {
        id: st.next_id("scriptresult", 1),
        name: "/var/log/curtin.log".into(),
        ..ScriptResult::default()
    }];
    m.installation = Some(ScriptSet {
        id: set,
        result_type: 1,
        started_ms: Some(now),
        ended_ms: None,
        results,
    });
    run_set(&mut m.installation, now);
    m.deployed_kernel_opts = effective_kernel_opts(st, m);
    m.power_on = true;
    set_status(m, S::DEPLOYING, "Deploying", now);
    start(m, Phase::Deploying, now, pace);
}

/// The kernel options MAAS boots a machine with: those of its first tag, by name, whose
/// `kernel_opts` is not empty, else the global `kernel_opts` setting (canonical/maas
/// `src/maasserver/models/node.py`, `Node.get_effective_kernel_options`).
fn effective_kernel_opts(st: &State, m: &Machine) -> String {
    let mut tags: Vec<&String> = m.tags.iter().collect();
    tags.sort();
    tags.iter()
        .filter_map(|t| st.tags.get(t.as_str()))
        .map(|t| t.kernel_opts.as_str())
        .find(|k| !k.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            st.config
                .get("kernel_opts")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        })
}

pub(super) fn acquire(m: &mut Machine, agent_name: &str, now: u64) {
    m.owner = Some(API_USER.into());
    m.agent_name = agent_name.to_string();
    set_status(m, S::ALLOCATED, "Allocated", now);
    storage::acquire(m);
}

/// MAAS refuses to start a deployment whose storage cannot boot
/// (node.py `_start_deployment`: `{"storage": [issues]}`); an ephemeral deployment
/// has no storage to check.
pub(super) fn check_deploy_storage(
    m: &Machine,
    osystem: &str,
    ephemeral: bool,
) -> Result<(), Response> {
    if ephemeral {
        return Ok(());
    }
    let issues = storage::deploy_issues(m, osystem);
    if issues.is_empty() {
        Ok(())
    } else {
        let errors: Vec<(&str, String)> = issues.into_iter().map(|i| ("storage", i)).collect();
        Err(invalid(&errors))
    }
}

pub fn deploy(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(cur) = st.machine(&sid).cloned() else {
        return not_found("Machine");
    };
    let p = &r.params;
    for key in [
        "bridge_all",
        "bridge_stp",
        "install_kvm",
        "install_rackd",
        "ephemeral_deploy",
        "enable_hw_sync",
        "register_vmhost",
    ] {
        if let Err(v) = p.bool(key) {
            return invalid1(key, format!("'{v}' value must be either True or False."));
        }
    }
    let mut m = cur;
    if m.status == S::READY {
        if m.owner.as_deref().is_some_and(|o| o != API_USER) {
            return conflict("Can't allocate a machine belonging to another user.");
        }
        acquire(&mut m, p.get("agent_name").unwrap_or(""), s.now_ms());
    }
    if m.status != S::ALLOCATED {
        return conflict(&format!(
            "Can't deploy a machine that is in the '{}' state",
            S::name(m.status)
        ));
    }
    let (osystem, series) = match p.get_nonempty("distro_series") {
        Some(sr) => match check_series(st, sr) {
            Ok(x) => x,
            Err(e) => return e,
        },
        None => ("ubuntu".to_string(), default_series(st)),
    };
    let kernel = p.get("hwe_kernel").unwrap_or("").to_string();
    if osystem == "ubuntu"
        && let Err(e) = check_kernel(&series, &kernel)
    {
        return e;
    }
    // The storage check runs on the OS being deployed, before the power action.
    let ephemeral = p.bool("ephemeral_deploy").ok().flatten().unwrap_or(false);
    if let Err(e) = check_deploy_storage(&m, &osystem, ephemeral) {
        return e;
    }
    if m.power_type.is_empty() {
        return unknown_power_type();
    }
    if let Err(e) = power_action(s, st, &mut m) {
        return e;
    }
    m.osystem = osystem.clone();
    m.distro_series = series;
    m.hwe_kernel = if osystem != "ubuntu" {
        None
    } else {
        Some(if kernel.is_empty() {
            "ga-".to_string()
                + RELEASES
                    .iter()
                    .find(|(n, _)| *n == m.distro_series)
                    .map(|(_, v)| *v)
                    .unwrap_or("24.04")
        } else {
            kernel
        })
    };
    m.user_data = p.get("user_data").map(str::to_string);
    let pace = s.pace();
    begin_deploy(st, &mut m, s.now_ms(), pace);
    if let Some(slot) = st.machine_mut(&sid) {
        *slot = m;
    }
    render_one(s, st, &sid)
}

pub fn release(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let pace = s.pace();
    let st = &mut g.st;
    let config = |key: &str| st.config.get(key).and_then(Value::as_bool).unwrap_or(false);
    let erase_config = (
        config("enable_disk_erasing_on_release"),
        config("disk_erase_with_secure_erase"),
        config("disk_erase_with_quick_erase"),
    );
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    let p = &r.params;
    for key in ["erase", "secure_erase", "quick_erase", "force"] {
        if let Err(v) = p.bool(key) {
            return invalid1(key, format!("'{v}' value must be either True or False."));
        }
    }
    if m.status == S::READY || m.status == S::RELEASING {
        // Already released or on the way: the postcondition holds.
    } else if S::RELEASABLE.contains(&m.status) {
        // node.py `release_or_erase`: erase when asked to or when MAAS is configured
        // to erase on every release; `secure_erase`/`quick_erase` only choose how
        // (`start_disk_erasing`: unset, the configuration's defaults), they do not
        // erase by themselves.
        let (on_release, secure_default, quick_default) = erase_config;
        let erase = p.bool("erase").ok().flatten().unwrap_or(false) || on_release;
        let secure = p
            .bool("secure_erase")
            .ok()
            .flatten()
            .unwrap_or(secure_default);
        let quick = p
            .bool("quick_erase")
            .ok()
            .flatten()
            .unwrap_or(quick_default);
        let now = s.now_ms();
        // Releasing powers the machine off through its BMC, and drops the
        // filesystems made while it was allocated.
        m.power_actions += 1;
        storage::release(m);
        if erase {
            m.erasing = Some(
                match (secure, quick) {
                    (true, true) => "secure+quick",
                    (true, false) => "secure",
                    (false, true) => "quick",
                    (false, false) => "full",
                }
                .to_string(),
            );
            set_status(m, S::DISK_ERASING, "Erasing disks", now);
            start(m, Phase::DiskErasing, now, pace);
        } else {
            set_status(m, S::RELEASING, "Releasing", now);
            start(m, Phase::Releasing, now, pace);
        }
    } else {
        return conflict(&format!(
            "Machine cannot be released in its current state ('{}').",
            S::name(m.status)
        ));
    }
    render_one(s, st, &sid)
}

/// `POST /machines/?op=release` with repeated `machines`: all or nothing (MAAS rolls the
/// transaction back when one machine can't be released).
pub fn release_many(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let pace = s.pace();
    let st = &mut g.st;
    let mut ids: Vec<String> = r
        .params
        .all("machines")
        .into_iter()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    let unknown: Vec<&str> = ids
        .iter()
        .filter(|i| st.machine(i).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return bad_request(&format!("Unknown machine(s): {}.", unknown.join(", ")));
    }
    let failed: Vec<String> = ids
        .iter()
        .filter_map(|i| st.machine(i))
        .filter(|m| m.status != S::READY && !S::RELEASABLE.contains(&m.status))
        .map(|m| format!("{} ('{}')", m.system_id, S::name(m.status)))
        .collect();
    if !failed.is_empty() {
        return conflict(&format!(
            "Machine(s) cannot be released in their current state: {}.",
            failed.join(", ")
        ));
    }
    let now = s.now_ms();
    let mut released = Vec::new();
    for i in &ids {
        if let Some(m) = st.machine_mut(i)
            && S::RELEASABLE.contains(&m.status)
        {
            m.power_actions += 1;
            storage::release(m);
            set_status(m, S::RELEASING, "Releasing", now);
            start(m, Phase::Releasing, now, pace);
            released.push(m.system_id.clone());
        }
    }
    ok(json!(released))
}
