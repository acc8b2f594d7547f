//! Create, read, update and delete of a single machine, with MAAS's validation of
//! hostnames, architectures and power parameters.

use super::*;

pub fn create(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let p = &r.params;
    let mut errors: Vec<(&str, String)> = Vec::new();
    let raw_macs = p.all("mac_addresses");
    let mut macs = Vec::new();
    if raw_macs.is_empty() {
        errors.push(("mac_addresses", "This field is required.".into()));
    }
    for raw in raw_macs {
        match normalize_mac(raw) {
            Some(m) => macs.push(m),
            None => errors.push((
                "mac_addresses",
                format!("'{raw}' is not a valid MAC address."),
            )),
        }
    }
    let in_use: Vec<String> = macs
        .iter()
        .filter_map(|m| {
            g.st.mac_owner(m)
                .map(|h| format!("MAC address {m} already in use on {h}."))
        })
        .collect();
    match in_use.len() {
        0 => {}
        1 if macs.len() == 1 => errors.push(("mac_addresses", in_use[0].clone())),
        _ => errors.push((
            "mac_addresses",
            format!(
                "One or more MAC addresses is invalid. ({})",
                in_use.join(" ")
            ),
        )),
    }
    let arch = match p.get_nonempty("architecture") {
        None => "amd64/generic".to_string(),
        Some(a) => match check_architecture(a) {
            Ok(a) => a,
            Err(e) => return e,
        },
    };
    if let Some(k) = p.get_nonempty("min_hwe_kernel")
        && !(k.starts_with("hwe-") || k.starts_with("ga-"))
    {
        errors.push((
            "min_hwe_kernel",
            "min_hwe_kernel must start with \"hwe-\" or \"ga-\"".into(),
        ));
    }
    let hostname = p
        .get_nonempty("hostname")
        .map(|h| h.split('.').next().unwrap_or(h).to_string());
    if let Some(h) = &hostname {
        if !valid_hostname(h) {
            errors.push(("hostname", format!("Invalid hostname: {h}")));
        } else if g.st.hostname_taken(h, None) {
            errors.push((
                "hostname",
                format!("Node with hostname \"{h}\" already exists"),
            ));
        }
    }
    let domain_id = match p.get_nonempty("domain") {
        None => g.st.default_domain_id(),
        Some(d) => match g.st.domain_by_key(d) {
            Some(d) => d.id,
            None => {
                errors.push((
                    "domain",
                    "Select a valid choice. That choice is not one of the available choices."
                        .into(),
                ));
                0
            }
        },
    };
    let power_type = p.get("power_type").unwrap_or("").to_string();
    if let Err(e) = check_power_type(&power_type) {
        return e;
    }
    let pparams = match power_params(p) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let commission = match p.bool("commission") {
        Ok(v) => v.unwrap_or(true),
        Err(v) => {
            errors.push(("commission", format!("'{v}' is not a valid boolean")));
            true
        }
    };
    // `deployed` (admins, new machines only): the machine already runs an OS. MAAS
    // registers it straight as Deployed, owned by the caller, and neither
    // commissions nor powers it (canonical/maas src/maasserver/forms/__init__.py,
    // `AdminMachineForm._setup_deployed_machine`; src/maasserver/api/machines.py,
    // `MachinesHandler.create` skips the `CommissionForm` when `deployed`). The
    // form validates it as a boolean.
    let deployed = match p.bool("deployed") {
        Ok(v) => v.unwrap_or(false),
        Err(v) => {
            errors.push(("deployed", format!("'{v}' is not a valid boolean")));
            false
        }
    };
    if !errors.is_empty() {
        return invalid(&errors);
    }
    let inner = &mut *g;
    let st = &mut inner.st;
    let now = s.now_ms();
    let id = st.next_id("node", 1);
    let system_id = inner.ids.system_id(st);
    let hostname = hostname.unwrap_or_else(|| inner.ids.hostname(st));
    // A machine whose MAC belongs to a seed machine is that hardware.
    let seed_hw = macs
        .iter()
        .find_map(|mac| s.seed_by_mac.get(mac))
        .and_then(|i| s.ctx.seed.machines.get(*i));
    let actual = match seed_hw {
        Some(sm) => seed::hardware_from_seed(sm),
        None => seed::generic_hardware(&format!("TWIN-{}", system_id.to_ascii_uppercase())),
    };
    let vlan = st.default_vlan_id();
    let interfaces: Vec<Interface> = macs
        .iter()
        .enumerate()
        .map(|(i, mac)| Interface {
            id: st.next_id("interface", 1),
            name: format!("eth{i}"),
            mac_address: mac.clone(),
            vlan_id: if i == 0 { vlan } else { None },
            enabled: true,
            vendor: None,
            product: None,
            pci_address: None,
            link_speed: 0,
            interface_speed: 0,
            mtu: None,
            tags: vec![],
            links: vec![],
            kind: String::new(),
            parents: Vec::new(),
            params: Default::default(),
            ..Interface::default()
        })
        .collect();
    let mut m = Machine {
        id,
        system_id: system_id.clone(),
        hostname,
        description: p.get("description").unwrap_or("").to_string(),
        domain_id,
        architecture: arch,
        min_hwe_kernel: p.get("min_hwe_kernel").unwrap_or("").to_string(),
        status: S::NEW,
        previous_status: S::NEW,
        status_message: "New".into(),
        zone_id: st.default_zone_id(),
        pool_id: st.default_pool_id(),
        power_type: power_type.clone(),
        power_parameters: pparams.into_iter().collect(),
        netboot: true,
        interfaces,
        hardware_uuid: seed::uuid_from(&actual.serial),
        actual,
        created_ms: now,
        updated_ms: now,
        commissioning_fails: seed_hw.is_some_and(|sm| sm.commissioning_fails),
        ..Machine::default()
    };
    if deployed {
        // No commissioning ran, so MAAS knows no hardware details, and it records no
        // operating system: it did not deploy one (osystem and distro_series stay
        // empty; the deploy form is what sets them).
        m.reported = None;
        m.owner = Some(API_USER.into());
        m.netboot = false;
        m.power_on = true;
        set_status(&mut m, S::DEPLOYED, "Deployed", now);
    } else if commission && !power_type.is_empty() {
        // Commissioning starts by powering the machine on through its BMC; when that
        // fails, MAAS aborts and reverts the machine to its previous status
        // (canonical/maas src/maasserver/models/node.py, `_start_bmc_unavailable`).
        match power_action(s, st, &mut m) {
            Ok(()) => {
                // Nothing named: every builtin and the scripts that run by default.
                let plan = plan_commissioning(st, &m, &[], &[]).unwrap_or_default();
                begin_commissioning(st, &mut m, now, s.pace(), plan)
            }
            Err(_) => m.power_error = true,
        }
    }
    st.insert_machine(m);
    render_one(s, st, &system_id)
}

pub fn read(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    render_one(s, &g.st, r.path("system_id"))
}

pub fn update(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    if st.machine(&sid).is_none() {
        return not_found("Machine");
    }
    let p = &r.params;
    let mut errors: Vec<(&str, String)> = Vec::new();
    let hostname = p
        .get_nonempty("hostname")
        .map(|h| h.split('.').next().unwrap_or(h).to_string());
    if let Some(h) = &hostname {
        if !valid_hostname(h) {
            errors.push(("hostname", format!("Invalid hostname: {h}")));
        } else if st.hostname_taken(h, Some(&sid)) {
            errors.push((
                "hostname",
                format!("Node with hostname \"{h}\" already exists"),
            ));
        }
    }
    let arch = match p.get_nonempty("architecture") {
        None => None,
        Some(a) => match check_architecture(a) {
            Ok(a) => Some(a),
            Err(e) => return e,
        },
    };
    let zone = match p.get_nonempty("zone") {
        None => None,
        Some(z) => match st.zone_by_name(z) {
            Some(z) => Some(z.id),
            None => {
                errors.push((
                    "zone",
                    "Select a valid choice. That choice is not one of the available choices."
                        .into(),
                ));
                None
            }
        },
    };
    let pool = match p.get_nonempty("pool") {
        None => None,
        Some(z) => match st.pool_by_name(z) {
            Some(z) => Some(z.id),
            None => {
                errors.push((
                    "pool",
                    "Select a valid choice. That choice is not one of the available choices."
                        .into(),
                ));
                None
            }
        },
    };
    let domain = match p.get_nonempty("domain") {
        None => None,
        Some(d) => match st.domain_by_key(d) {
            Some(d) => Some(d.id),
            None => {
                errors.push((
                    "domain",
                    "Select a valid choice. That choice is not one of the available choices."
                        .into(),
                ));
                None
            }
        },
    };
    if let Some(t) = p.get("power_type")
        && let Err(e) = check_power_type(t)
    {
        return e;
    }
    let pparams = match power_params(p) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let memory = match p.get_nonempty("memory") {
        None => None,
        Some(v) => match parse_memory(v) {
            Some(x) => Some(x),
            None => {
                errors.push(("memory", "Invalid memory size.".into()));
                None
            }
        },
    };
    let cpu_count = match p.get_nonempty("cpu_count") {
        None => None,
        Some(v) => match v.trim().parse::<u32>() {
            Ok(x) => Some(x),
            Err(_) => {
                errors.push(("cpu_count", "Enter a whole number.".into()));
                None
            }
        },
    };
    let swap = match p.get_nonempty("swap_size") {
        None => None,
        Some(v) => match parse_memory(v) {
            Some(x) => Some(if v.trim().ends_with(|c: char| c.is_ascii_digit()) {
                x
            } else {
                x * 1024 * 1024
            }),
            None => {
                errors.push(("swap_size", "Invalid size for swap: {v}".replace("{v}", v)));
                None
            }
        },
    };
    if !errors.is_empty() {
        return invalid(&errors);
    }
    if let Some(h) = &hostname {
        st.rename_machine(&sid, h);
    }
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    if let Some(d) = p.get("description") {
        m.description = d.to_string();
    }
    if let Some(a) = arch {
        m.architecture = a;
    }
    if let Some(k) = p.get("min_hwe_kernel") {
        m.min_hwe_kernel = k.to_string();
    }
    if let Some(z) = zone {
        m.zone_id = z;
    }
    if let Some(x) = pool {
        m.pool_id = x;
    }
    if let Some(d) = domain {
        m.domain_id = d;
    }
    if let Some(t) = p.get("power_type") {
        if t != m.power_type {
            m.power_parameters.clear();
        }
        m.power_type = t.to_string();
    }
    for (k, v) in pparams {
        m.power_parameters.insert(k, v);
    }
    if let Some(x) = memory {
        m.reported
            .get_or_insert_with(|| m.actual.clone())
            .memory_mib = x;
    }
    if let Some(x) = cpu_count {
        m.reported.get_or_insert_with(|| m.actual.clone()).cpu_count = x;
    }
    if swap.is_some() {
        m.swap_size = swap;
    }
    m.updated_ms = s.now_ms();
    render_one(s, st, &sid)
}

pub fn delete(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let sid = r.path("system_id");
    match g.st.remove_machine(sid) {
        Some(_) => http::deleted(),
        None => not_found("Machine"),
    }
}
