//! Server create: request validation, the Placement-backed scheduler (flavor resources, PCI
//! aliases, server group filters and weighers, claims and their release), quota checks
//! (server group members included), network requests turned into Neutron
//! ports, and the pending BUILD transition.

use std::collections::BTreeSet;

use super::*;

pub(super) const CREATE_FIELDS: &[&str] = &[
    "name",
    "imageRef",
    "flavorRef",
    "networks",
    "availability_zone",
    "metadata",
    "key_name",
    "security_groups",
    "user_data",
    "config_drive",
    "accessIPv4",
    "accessIPv6",
    "OS-DCF:diskConfig",
    "adminPass",
    "description",
    "tags",
    "trusted_image_certificates",
    "host",
    "hypervisor_hostname",
    "hostname",
    "block_device_mapping_v2",
    "block_device_mapping",
    "min_count",
    "max_count",
    "return_reservation_id",
    "personality",
];

/// The resources a flavor asks of Placement, with its PCI aliases mapped to their classes.
pub(super) fn flavor_resources(
    st: &State,
    f: &FlavorSnap,
) -> Result<BTreeMap<String, i64>, String> {
    // Pinned instances ask Placement for PCPU, not VCPU (nova
    // `nova/scheduler/utils.py` `ResourceRequest._translate_pinning_policies`).
    let cpu_class = if f.extra_specs.get("hw:cpu_policy").map(String::as_str) == Some("dedicated") {
        "PCPU"
    } else {
        "VCPU"
    };
    let mut want = BTreeMap::from([
        (cpu_class.to_string(), f.vcpus),
        ("MEMORY_MB".to_string(), f.ram),
    ]);
    if f.disk + f.ephemeral + f.swap / 1024 > 0 {
        want.insert("DISK_GB".into(), f.disk + f.ephemeral + f.swap / 1024);
    }
    for (k, v) in &f.extra_specs {
        if k == "pci_passthrough:alias" {
            for (name, n) in parse_alias_spec(v)? {
                let alias = st
                    .pci_aliases
                    .iter()
                    .find(|a| a.name == name)
                    .ok_or_else(|| format!("PCI alias {name} is not defined"))?;
                *want.entry(alias.resource_class.clone()).or_insert(0) += n;
            }
        } else if let Some(rc) = k.strip_prefix("resources:")
            && let Ok(n) = v.parse::<i64>()
        {
            if n == 0 {
                want.remove(rc);
            } else {
                want.insert(rc.to_string(), n);
            }
        }
    }
    Ok(want)
}

/// Pick a compute host for these resources (filters, then weighers: PCI-less hosts for
/// PCI-less requests, then the most free RAM).
pub(super) fn schedule(
    st: &State,
    want: &BTreeMap<String, i64>,
    az: Option<&str>,
    host: Option<&str>,
    exclude: Option<&str>,
) -> Option<usize> {
    schedule_fitting(st, want, None, None, az, host, exclude).map(|(h, _)| h)
}

/// What a flavor asks of a host's NUMA cells (nova `nova/virt/hardware.py`
/// `numa_get_constraints`): an instance has a NUMA topology when its flavor pins CPUs
/// (`hw:cpu_policy=dedicated`), sets a page size (`hw:mem_page_size`) or a node count
/// (`hw:numa_nodes`, default 1), and its vCPUs and memory are split evenly over the
/// instance's nodes, each of which must fit one host cell.
#[derive(Clone, Debug)]
pub(super) struct NumaRequest {
    cells: u32,
    dedicated: bool,
    pages: PageSize,
    vcpus_per_cell: i64,
    ram_per_cell: i64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum PageSize {
    Small,
    Any,
    Large,
    /// An explicit size in KiB.
    Kib(i64),
}

/// The flavor's NUMA request, `None` for an instance without a NUMA topology, an error
/// (nova's 400 at boot) for extra specs nova rejects.
pub(super) fn numa_request(f: &FlavorSnap) -> Result<Option<NumaRequest>, String> {
    let spec = |k: &str| f.extra_specs.get(k).map(String::as_str);
    let dedicated = match spec("hw:cpu_policy") {
        None | Some("shared") | Some("mixed") => false,
        Some("dedicated") => true,
        Some(other) => return Err(format!("Invalid CPU allocation policy '{other}' specified")),
    };
    let pages = match spec("hw:mem_page_size")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => None,
        Some("small") => Some(PageSize::Small),
        Some("any") => Some(PageSize::Any),
        Some("large") => Some(PageSize::Large),
        Some("1gb") | Some("1g") | Some("1048576") | Some("1048576kb") => {
            Some(PageSize::Kib(1_048_576))
        }
        Some("2mb") | Some("2m") | Some("2048") | Some("2048kb") => Some(PageSize::Kib(2048)),
        Some(other) => {
            return Err(format!("Invalid memory page size '{other}'"));
        }
    };
    let cells = match spec("hw:numa_nodes") {
        None => None,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => return Err(format!("Invalid hw:numa_nodes '{v}'")),
        },
    };
    if !dedicated && pages.is_none() && cells.is_none() {
        return Ok(None);
    }
    let cells = cells.unwrap_or(1);
    let n = i64::from(cells);
    if f.vcpus % n != 0 || f.ram % n != 0 {
        // nova.exception.ImageNUMATopologyAsymmetric
        return Err("Instance CPUs and/or memory cannot be evenly distributed across instance NUMA nodes. Explicit assignment of CPUs and memory to nodes is required".into());
    }
    Ok(Some(NumaRequest {
        cells,
        dedicated,
        pages: pages.unwrap_or(PageSize::Small),
        vcpus_per_cell: f.vcpus / n,
        ram_per_cell: f.ram / n,
    }))
}

/// Fit the instance's cells to distinct host cells, as nova's `numa_fit_instance_to_host`
/// (`nova/virt/hardware.py`, run by the scheduler's `NUMATopologyFilter` and again by
/// the compute host's claim) does: pinned vCPUs need as many free CPUs of the host's
/// `cpu_dedicated_set` in the cell, huge-page memory as many free pages of the cell
/// (less `reserved_huge_pages`), small-page memory the cell's remaining memory.
pub(super) fn numa_fit(
    st: &State,
    h: &ComputeHost,
    req: &NumaRequest,
    exclude_server: Option<&str>,
) -> Option<Vec<CellClaim>> {
    let claims: Vec<&CellClaim> = st
        .servers
        .iter()
        .filter(|s| !s.deleted && s.host.as_deref() == Some(h.host.as_str()))
        .filter(|s| Some(s.id.as_str()) != exclude_server)
        .flat_map(|s| s.numa.iter())
        .collect();
    let fit_cell = |cell: &NumaCell| -> Option<CellClaim> {
        let mine = || claims.iter().filter(|c| c.host_cell == cell.id);
        let mut claim = CellClaim {
            host_cell: cell.id,
            ..CellClaim::default()
        };
        if req.dedicated {
            let pinned: BTreeSet<u32> = mine().flat_map(|c| c.pinned.iter().copied()).collect();
            let free: Vec<u32> = h
                .conf
                .cpu_dedicated_set
                .iter()
                .flatten()
                .filter(|c| cell.cpus.contains(c) && !pinned.contains(c))
                .copied()
                .collect();
            if (free.len() as i64) < req.vcpus_per_cell {
                return None;
            }
            claim.pinned = free[..req.vcpus_per_cell as usize].to_vec();
        } else {
            let usable = match &h.conf.cpu_shared_set {
                Some(set) => set.iter().filter(|c| cell.cpus.contains(c)).count() as i64,
                None => cell.cpus.len() as i64,
            };
            if usable < req.vcpus_per_cell {
                return None;
            }
            claim.vcpus = req.vcpus_per_cell;
        }
        let reserved: i64 = h
            .conf
            .reserved_pages_1g
            .iter()
            .filter(|(node, _)| *node == cell.id)
            .map(|(_, n)| n)
            .sum();
        let free_pages = cell.pages_1g - reserved - mine().map(|c| c.pages_1g).sum::<i64>();
        let pages_needed = (req.ram_per_cell + 1023) / 1024;
        let small_free =
            cell.memory_mb - cell.pages_1g * 1024 - mine().map(|c| c.memory_mb).sum::<i64>();
        let huge = match req.pages {
            PageSize::Large | PageSize::Kib(1_048_576) => true,
            PageSize::Kib(_) => return None, // the twin's hosts have only 1 GiB pages
            PageSize::Any => free_pages >= pages_needed,
            PageSize::Small => false,
        };
        if huge {
            if free_pages < pages_needed {
                return None;
            }
            claim.pages_1g = pages_needed;
        } else {
            if small_free < req.ram_per_cell {
                return None;
            }
            claim.memory_mb = req.ram_per_cell;
        }
        Some(claim)
    };
    // Choose `cells` distinct host cells, in order, first fit.
    fn pick(
        cells: &[NumaCell],
        from: usize,
        left: u32,
        fit: &dyn Fn(&NumaCell) -> Option<CellClaim>,
        out: &mut Vec<CellClaim>,
    ) -> bool {
        if left == 0 {
            return true;
        }
        for i in from..cells.len() {
            if let Some(c) = fit(&cells[i]) {
                out.push(c);
                if pick(cells, i + 1, left - 1, fit, out) {
                    return true;
                }
                out.pop();
            }
        }
        false
    }
    let mut out = Vec::new();
    pick(&h.numa_cells, 0, req.cells, &fit_cell, &mut out).then_some(out)
}

/// [`schedule`], with the NUMA topology filter when the flavor has a NUMA request and
/// the server group filters and weighers when the server is in a group: the host and
/// where the instance's cells go on it.
pub(super) fn schedule_fitting(
    st: &State,
    want: &BTreeMap<String, i64>,
    numa: Option<&NumaRequest>,
    group: Option<&GroupPlacement>,
    az: Option<&str>,
    host: Option<&str>,
    exclude: Option<&str>,
) -> Option<(usize, Vec<CellClaim>)> {
    let wants_pci = st
        .pci_aliases
        .iter()
        .any(|a| want.contains_key(&a.resource_class));
    // (PCI match, group weight, free RAM): higher is better.
    type Score = (bool, i64, i64);
    let mut best: Option<(usize, Score, Vec<CellClaim>)> = None;
    for (i, h) in st.hosts.iter().enumerate() {
        if h.status != "enabled" || h.state != "up" {
            continue;
        }
        if az.is_some_and(|a| a != h.az)
            || host.is_some_and(|x| x != h.host && x != h.hypervisor_hostname)
        {
            continue;
        }
        if exclude == Some(h.host.as_str()) {
            continue;
        }
        if group.is_some_and(|g| !g.passes(&h.host)) {
            continue;
        }
        let Some(rp) = st.rps.iter().find(|r| r.uuid == h.uuid) else {
            continue;
        };
        if !placement::fits(st, rp, want) {
            continue;
        }
        let cells = match numa {
            Some(req) => match numa_fit(st, h, req, None) {
                Some(c) => c,
                None => continue,
            },
            None => Vec::new(),
        };
        let has_pci = !h.pci.is_empty();
        let free_ram = rp
            .inventories
            .get("MEMORY_MB")
            .map(placement::capacity)
            .unwrap_or(0)
            - placement::used(st, &rp.uuid)
                .get("MEMORY_MB")
                .copied()
                .unwrap_or(0);
        let score = (
            wants_pci == has_pci,
            group.map_or(0, |g| g.weight(&h.host)),
            free_ram,
        );
        if best.as_ref().is_none_or(|(_, b, _)| score > *b) {
            best = Some((i, score, cells));
        }
    }
    best.map(|(i, _, cells)| (i, cells))
}

/// Claim resources on a host: Placement allocations and PCI devices.
pub(super) fn claim(
    st: &mut State,
    host_idx: usize,
    server: &Server,
    want: &BTreeMap<String, i64>,
    now: i64,
) -> Vec<String> {
    let rp = st.hosts[host_idx].uuid.clone();
    placement::set_allocations(
        st,
        &server.id,
        &server.project_id,
        &server.user_id,
        Some("INSTANCE"),
        BTreeMap::from([(rp, want.clone())]),
        now,
    );
    let mut pci = Vec::new();
    for alias in st.pci_aliases.clone() {
        let n = want.get(&alias.resource_class).copied().unwrap_or(0);
        for d in st.hosts[host_idx].pci.iter_mut() {
            if pci.len() as i64 >= n {
                break;
            }
            if d.server.is_none()
                && d.vendor_id == alias.vendor_id
                && d.product_id == alias.product_id
            {
                d.server = Some(server.id.clone());
                pci.push(d.address.clone());
            }
        }
    }
    pci
}

pub(super) fn unclaim(st: &mut State, server_id: &str) {
    placement::release(st, server_id);
    for s in st.servers.iter_mut().filter(|s| s.id == server_id) {
        s.numa.clear();
    }
    for h in st.hosts.iter_mut() {
        for d in h.pci.iter_mut() {
            if d.server.as_deref() == Some(server_id) {
                d.server = None;
            }
        }
    }
}

pub(super) fn quota_usage(st: &State, project: &str) -> BTreeMap<&'static str, i64> {
    let live = st
        .servers
        .iter()
        .filter(|s| !s.deleted && s.project_id == project);
    let (mut n, mut cores, mut ram) = (0, 0, 0);
    for s in live {
        n += 1;
        cores += s.flavor.vcpus;
        ram += s.flavor.ram;
    }
    BTreeMap::from([("instances", n), ("cores", cores), ("ram", ram)])
}

pub(super) fn check_quota(
    st: &State,
    project: &str,
    count: i64,
    f: &FlavorSnap,
) -> Result<(), Response> {
    if let Some(service_type) = &st.nova_unified_limits {
        return super::quotas::unified_check(st, service_type, project, count, f);
    }
    let limits = quota_limits(st, project);
    let used = quota_usage(st, project);
    for (k, req) in [
        ("instances", count),
        ("cores", f.vcpus * count),
        ("ram", f.ram * count),
    ] {
        let limit = limits.get(k).copied().unwrap_or(-1);
        let have = used.get(k).copied().unwrap_or(0);
        if limit >= 0 && have + req > limit {
            return Err(err(
                403,
                &format!(
                    "Quota exceeded for {k}: Requested {req}, but already used {have} of {limit} {k}"
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn snap(f: &Flavor) -> FlavorSnap {
    FlavorSnap {
        id: f.id.clone(),
        name: f.name.clone(),
        vcpus: f.vcpus,
        ram: f.ram,
        disk: f.disk,
        ephemeral: f.ephemeral,
        swap: f.swap,
        extra_specs: f.extra_specs.clone(),
    }
}

pub(super) fn ref_id(v: &str) -> String {
    v.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(v)
        .to_string()
}

pub(super) enum NetReq {
    Network(String, Option<String>),
    Port(String),
}

pub(super) fn parse_networks(
    st: &State,
    cx: &Cx,
    project: &str,
    v: Option<&Value>,
) -> Result<Vec<NetReq>, Response> {
    let auto = |st: &State| -> Result<Vec<NetReq>, Response> {
        let candidates: Vec<&Network> = st
            .networks
            .iter()
            .filter(|n| !n.external && neutron::network_usable_by(st, n, project))
            .collect();
        match candidates.as_slice() {
            [one] => Ok(vec![NetReq::Network(one.id.clone(), None)]),
            [] => Ok(vec![]),
            _ => Err(err(
                409,
                "Multiple possible networks found, use a Network ID to be more specific.",
            )),
        }
    };
    match v {
        None => {
            if cx.mv >= 37 {
                return Err(invalid(
                    "server",
                    &json!({}),
                    "'networks' is a required property",
                ));
            }
            auto(st)
        }
        Some(Value::String(s)) if cx.mv >= 37 && s == "none" => Ok(vec![]),
        Some(Value::String(s)) if cx.mv >= 37 && s == "auto" => {
            let nets = auto(st)?;
            if nets.is_empty() {
                return Err(bad(&format!(
                    "Unable to automatically allocate a network for project {project}"
                )));
            }
            Ok(nets)
        }
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for n in list {
                if let Some(port) = n.get("port").and_then(Value::as_str) {
                    let p =
                        st.ports.iter().find(|p| p.id == port).ok_or_else(|| {
                            err(400, &format!("Port id {port} could not be found."))
                        })?;
                    if !p.device_id.is_empty() {
                        return Err(err(409, &format!("Port {port} is still in use.")));
                    }
                    out.push(NetReq::Port(port.to_string()));
                } else if let Some(uuid) = n.get("uuid").and_then(Value::as_str) {
                    if !is_uuid(uuid) {
                        return Err(bad(&format!(
                            "Bad networks format: network uuid is not in proper format ({uuid})"
                        )));
                    }
                    // Nova asks Neutron for the networks with the caller's token, so a
                    // network the project may not use (another project's, not shared
                    // with it by an RBAC policy) is not found (nova/network/neutron.py
                    // `validate_networks` → `NetworkNotFound`, a 400 from servers.py).
                    let net = st
                        .networks
                        .iter()
                        .find(|x| {
                            x.id == uuid
                                && (cx.admin() || neutron::network_usable_by(st, x, project))
                        })
                        .ok_or_else(|| bad(&format!("Network {uuid} could not be found.")))?;
                    out.push(NetReq::Network(
                        net.id.clone(),
                        n.get("fixed_ip")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    ));
                } else {
                    return Err(invalid(
                        "networks",
                        n,
                        "is not valid under any of the given schemas",
                    ));
                }
            }
            Ok(out)
        }
        Some(other) => Err(invalid(
            "networks",
            other,
            "is not valid under any of the given schemas",
        )),
    }
}

pub(super) fn server_create_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req
        .json()
        .ok_or_else(|| bad("The request body is not valid JSON."))?;
    // schemas/servers.py `create`, checked in jsonschema's order (nova raises the
    // first error): the properties in the schema's order (here the name and the
    // metadata), then `required`, then `additionalProperties`.
    let b = body
        .get("server")
        .ok_or_else(|| invalid("request body", &body, "'server' is a required property"))?
        .clone();
    if !b.is_object() {
        return Err(invalid("server", &b, &not_of_type(&b, &["object"])));
    }
    if let Some(v) = b.get("name") {
        check_name("name", v)?;
    }
    if let Some(m) = b.get("metadata") {
        check_metadata("metadata", m, &["string"])?;
    }
    let required: &[&str] = if cx.mv >= 37 {
        &["name", "flavorRef", "networks"]
    } else {
        &["name", "flavorRef"]
    };
    if let Some(r) = required.iter().find(|r| b.get(**r).is_none()) {
        return Err(invalid(
            "server",
            &b,
            &format!("'{r}' is a required property"),
        ));
    }
    for k in b
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !CREATE_FIELDS.contains(&k.as_str()) || (k == "personality" && cx.mv >= 57) {
            return Err(invalid(
                "server",
                &b,
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
    }
    let name = check_name("name", &b["name"])?.to_string();
    let flavor_ref = b
        .get("flavorRef")
        .and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        })
        .ok_or_else(|| invalid("server", &b, "'flavorRef' is a required property"))?;
    let fid = ref_id(&flavor_ref);
    // A private flavor exists only for admins and the projects on its access list
    // (nova/objects/flavor.py `_flavor_get_query_from_db` filters non-admin contexts
    // to public flavors and those whose `projects` include the caller's), so booting
    // one without access is FlavorNotFound, a 400 from servers.py `create`.
    let flavor = st
        .flavors
        .get(&fid)
        .filter(|f| flavor_visible(f, cx, None))
        .ok_or_else(|| bad(&format!("Flavor {fid} could not be found.")))?;
    if flavor.disabled {
        return Err(bad("Flavor is disabled."));
    }
    let flavor = snap(flavor);
    let bdm = b
        .get("block_device_mapping_v2")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let image_id = match b.get("imageRef").and_then(Value::as_str) {
        Some(r) if !r.is_empty() => {
            let id = ref_id(r);
            let img = st
                .images
                .get(&id)
                // compute/api.py `_get_image` turns ImageNotFound into this text.
                .ok_or_else(|| bad("Can not find requested image"))?;
            if img.status != "active" {
                return Err(bad(&format!("Image {id} is not active.")));
            }
            if flavor.disk > 0 && img.min_disk > flavor.disk {
                return Err(bad("Flavor's disk is too small for requested image."));
            }
            if img.min_ram > flavor.ram {
                return Err(bad("Flavor's memory is too small for requested image."));
            }
            id
        }
        _ => {
            let boot_from_image = bdm.iter().find_map(|d| {
                (d.get("boot_index").and_then(as_int) == Some(0)
                    && d.get("source_type").and_then(Value::as_str) == Some("image"))
                .then(|| {
                    d.get("uuid")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                })
            });
            if bdm.is_empty() {
                return Err(bad("Missing imageRef attribute"));
            }
            boot_from_image.unwrap_or_default()
        }
    };
    let volumes: Vec<String> = bdm
        .iter()
        .filter(|d| d.get("destination_type").and_then(Value::as_str) == Some("volume"))
        .map(|d| {
            d.get("uuid")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| os.uuid())
        })
        .collect();
    let project = cx.caller.project().to_string();
    let nets = parse_networks(st, cx, &project, b.get("networks"))?;
    let key_name = match b.get("key_name") {
        Some(Value::String(k)) => {
            if !st
                .keypairs
                .iter()
                .any(|x| &x.name == k && x.user_id == cx.caller.user_id)
            {
                return Err(bad("Invalid key_name provided."));
            }
            Some(k.clone())
        }
        Some(Value::Null) | None => None,
        Some(v) => return Err(invalid("key_name", v, &not_of_type(v, &["string"]))),
    };
    let metadata: BTreeMap<String, String> = match b.get("metadata") {
        None => BTreeMap::new(),
        Some(m) => {
            check_metadata("metadata", m, &["string"])?;
            m.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default()
        }
    };
    if metadata.len() as i64
        > quota_limits(st, &project)
            .get("metadata_items")
            .copied()
            .unwrap_or(128)
    {
        return Err(err(
            403,
            "Quota exceeded for metadata_items: Requested too many metadata items",
        ));
    }
    // Availability zone, optionally `az:host[:node]` (admin).
    let mut forced_host = None;
    let az = match b.get("availability_zone").and_then(Value::as_str) {
        Some(raw) => {
            let mut parts = raw.splitn(3, ':');
            let zone = parts.next().unwrap_or("").to_string();
            if let Some(h) = parts.next().filter(|h| !h.is_empty()) {
                cx.require_admin("os_compute_api:servers:create:forced_host")?;
                forced_host = Some(h.to_string());
            }
            if !zone.is_empty() && !st.hosts.iter().any(|h| h.az == zone) {
                return Err(bad("The requested availability zone is not available"));
            }
            (!zone.is_empty()).then_some(zone)
        }
        None => None,
    };
    if cx.mv >= 74
        && let Some(h) = b
            .get("host")
            .or(b.get("hypervisor_hostname"))
            .and_then(Value::as_str)
    {
        cx.require_admin("compute:servers:create:requested_destination")?;
        if !st
            .hosts
            .iter()
            .any(|x| x.host == h || x.hypervisor_hostname == h)
        {
            return Err(bad(&format!("Compute host {h} could not be found.")));
        }
        forced_host = Some(h.to_string());
    }
    let want = flavor_resources(st, &flavor).map_err(|e| bad(&e))?;
    let numa = numa_request(&flavor).map_err(|e| bad(&e))?;
    let min_count = b.get("min_count").and_then(as_int).unwrap_or(1).max(1);
    let max_count = b
        .get("max_count")
        .and_then(as_int)
        .unwrap_or(min_count)
        .max(min_count);
    check_quota(st, &project, min_count, &flavor)?;
    let count = (min_count..=max_count)
        .rev()
        .find(|n| check_quota(st, &project, *n, &flavor).is_ok())
        .unwrap_or(min_count);
    let description = match b.get("description") {
        Some(Value::String(s)) if cx.mv >= 19 => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(invalid(
                "server",
                &b,
                "Additional properties are not allowed ('description' was unexpected)",
            ));
        }
        _ => None,
    };
    let tags: Vec<String> = match b.get("tags") {
        Some(Value::Array(t)) if cx.mv >= 52 => t
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![],
    };
    let security_groups: Vec<String> = b
        .get("security_groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .filter(|v: &Vec<String>| !v.is_empty())
        .unwrap_or_else(|| vec!["default".to_string()]);
    let now = os.now_ms();
    let reservation_id = format!("r-{}", &os.hex_id()[..8]);
    let hints: BTreeMap<String, Value> = body
        .get("OS-SCH-HNT:scheduler_hints")
        .or(body.get("os:scheduler_hints"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), if v.is_array() { v.clone() } else { json!([v]) }))
                .collect()
        })
        .unwrap_or_default();
    // The `group` hint: the group must exist and have room for every new member
    // (compute/api.py `_get_requested_instance_group`, `_provision_instances`).
    let group = requested_group(st, &hints)?;
    if let Some(g) = group {
        check_members_quota(st, g, &cx.caller.user_id, &project, count)?;
    }
    let admin_pass = b
        .get("adminPass")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let s = os.hex_id();
            s[..12].to_string()
        });
    let mut first_id = None;
    let mut created = Vec::new();
    for i in 0..count {
        let id = os.uuid();
        let sname = if count > 1 {
            format!("{name}-{}", i + 1)
        } else {
            name.clone()
        };
        let seq = st.next_instance;
        st.next_instance += 1;
        let hostname = b
            .get("hostname")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| sanitize_hostname(&sname));
        let mut server = Server {
            id: id.clone(),
            name: sname,
            project_id: project.clone(),
            user_id: cx.caller.user_id.clone(),
            flavor: flavor.clone(),
            old_flavor: None,
            image_id: image_id.clone(),
            key_name: key_name.clone(),
            metadata: metadata.clone(),
            az: az.clone().unwrap_or_else(|| "nova".into()),
            host: None,
            vm_state: "building".into(),
            task_state: Some("scheduling".into()),
            power_state: 0,
            created_ms: now,
            updated_ms: now,
            launched_ms: None,
            terminated_ms: None,
            deleted: false,
            fault: None,
            locked: false,
            locked_reason: None,
            tags: tags.clone(),
            description: description.clone(),
            access_ipv4: b
                .get("accessIPv4")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            access_ipv6: b
                .get("accessIPv6")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            disk_config: b
                .get("OS-DCF:diskConfig")
                .and_then(Value::as_str)
                .unwrap_or("MANUAL")
                .to_string(),
            config_drive: match b.get("config_drive") {
                Some(v) if as_bool(v) == Some(true) => "True".into(),
                _ => "".into(),
            },
            user_data: b
                .get("user_data")
                .and_then(Value::as_str)
                .map(str::to_string),
            seq,
            launch_index: i as u64,
            reservation_id: reservation_id.clone(),
            hostname,
            ports: vec![],
            pending: None,
            pci: vec![],
            security_groups: security_groups.clone(),
            trusted_image_certificates: b
                .get("trusted_image_certificates")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                }),
            scheduler_hints: hints.clone(),
            pinned_az: az.clone(),
            no_valid_host: false,
            numa: vec![],
            volumes: volumes.clone(),
            actions: vec![],
        };
        record(
            &mut server,
            "create",
            "compute__do_build_and_run_instance",
            &cx.caller,
            false,
            now,
        );
        // The new member joins before it is scheduled, so the filters see the
        // members placed by this request so far.
        if let Some(g) = group {
            st.server_groups[g].members.push(id.clone());
        }
        let placement = group.and_then(|_| group_placement(st, &id));
        match schedule_fitting(
            st,
            &want,
            numa.as_ref(),
            placement.as_ref(),
            az.as_deref(),
            forced_host.as_deref(),
            None,
        ) {
            Some((h, cells)) => {
                server.numa = cells;
                server.host = Some(st.hosts[h].host.clone());
                // The server is in the AZ of the host it landed on.
                server.az = st.hosts[h].az.clone();
                server.pci = claim(st, h, &server, &want, now);
                server.task_state = Some("spawning".into());
                // Ports are allocated while the server builds.
                for n in &nets {
                    let port = match n {
                        NetReq::Network(net, ip) => {
                            neutron::create_port(os, st, net, &project, ip.as_deref())
                                .map_err(|e| err(400, &e))?
                        }
                        NetReq::Port(p) => p.clone(),
                    };
                    neutron::bind_port(st, &port, &id, &st.hosts[h].host.clone(), now);
                    server.ports.push(port);
                }
            }
            None => server.no_valid_host = true,
        }
        server.pending = Some(Pending {
            at_ms: now + os.task_ms(BUILD_MS),
            vm_state: "active".into(),
            task_state: None,
            power_state: 1,
            kind: "build".into(),
        });
        first_id.get_or_insert(id.clone());
        created.push(id);
        st.servers.push(server);
    }
    if b.get("return_reservation_id").and_then(as_bool) == Some(true) {
        return Ok(json_resp(
            StatusCode::ACCEPTED,
            json!({"reservation_id": reservation_id}),
        ));
    }
    let id = first_id.unwrap_or_default();
    let v = json!({
        "id": id,
        "links": links(os, "servers", &id),
        "OS-DCF:diskConfig": b.get("OS-DCF:diskConfig").and_then(Value::as_str).unwrap_or("MANUAL"),
        "security_groups": security_groups.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
        "adminPass": admin_pass,
    });
    let r = json_resp(StatusCode::ACCEPTED, json!({"server": v}));
    Ok(with_header(
        r,
        "location",
        &format!("{}/v2.1/servers/{id}", os.ctx.urls.compute),
    ))
}

pub(super) fn sanitize_hostname(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else if c == ' ' || c == '_' || c == '.' {
                '-'
            } else {
                '\0'
            }
        })
        .filter(|c| *c != '\0')
        .collect();
    out = out.trim_matches('-').to_string();
    out.truncate(63);
    if out.is_empty() { "server".into() } else { out }
}
