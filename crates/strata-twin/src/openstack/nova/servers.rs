//! Servers as Nova shows them: the status mapping, the server view per microversion
//! (addresses, flavor and image views, faults, host status), listing with filters, sorting
//! and pagination, show, update and delete.

use super::*;

pub(crate) fn status_of(s: &Server) -> &'static str {
    let task = s.task_state.as_deref().unwrap_or("");
    match s.vm_state.as_str() {
        "building" => "BUILD",
        "active" => match task {
            "rebooting" | "reboot_pending" | "reboot_started" => "REBOOT",
            "rebooting_hard" | "reboot_pending_hard" | "reboot_started_hard" => "HARD_REBOOT",
            "rebuilding" | "rebuild_block_device_mapping" | "rebuild_spawning" => "REBUILD",
            "resize_prep" | "resize_migrating" | "resize_migrated" | "resize_finish" => "RESIZE",
            "resize_reverting" => "REVERT_RESIZE",
            "migrating" => "MIGRATING",
            "updating_password" => "PASSWORD",
            _ => "ACTIVE",
        },
        "stopped" => match task {
            "rebooting_hard" => "HARD_REBOOT",
            "rebuilding" => "REBUILD",
            "resize_prep" | "resize_migrating" | "resize_migrated" | "resize_finish" => "RESIZE",
            _ => "SHUTOFF",
        },
        "paused" => match task {
            "migrating" => "MIGRATING",
            _ => "PAUSED",
        },
        "suspended" => "SUSPENDED",
        "resized" => match task {
            "resize_reverting" => "REVERT_RESIZE",
            _ => "VERIFY_RESIZE",
        },
        "rescued" => "RESCUE",
        "error" => match task {
            "rebuilding" => "REBUILD",
            _ => "ERROR",
        },
        "deleted" => "DELETED",
        "soft-delete" => "SOFT_DELETED",
        "shelved" => "SHELVED",
        "shelved_offloaded" => "SHELVED_OFFLOADED",
        _ => "UNKNOWN",
    }
}

pub(super) fn host_id(project: &str, host: Option<&str>) -> String {
    use sha2::Digest;
    match host {
        Some(h) => {
            let d = sha2::Sha224::digest(format!("{project}{h}").as_bytes());
            d.iter().map(|b| format!("{b:02x}")).collect()
        }
        None => String::new(),
    }
}

pub(super) fn addresses(st: &State, s: &Server, full: bool) -> Value {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for pid in &s.ports {
        let Some(p) = st.ports.iter().find(|p| &p.id == pid) else {
            continue;
        };
        let net = st
            .networks
            .iter()
            .find(|n| n.id == p.network_id)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let entry = out.entry(net).or_default();
        for (_, ip) in &p.fixed_ips {
            let version = if ip.contains(':') { 6 } else { 4 };
            let mut a = json!({"addr": ip, "version": version});
            if full {
                a["OS-EXT-IPS:type"] = json!("fixed");
                a["OS-EXT-IPS-MAC:mac_addr"] = json!(p.mac_address);
            }
            entry.push(a);
        }
    }
    json!(out)
}

pub(super) fn flavor_view(os: &Os, s: &Server, mv: u32, admin: bool) -> Value {
    if mv >= 47 {
        let mut v = json!({
            "vcpus": s.flavor.vcpus,
            "ram": s.flavor.ram,
            "disk": s.flavor.disk,
            "ephemeral": s.flavor.ephemeral,
            "swap": s.flavor.swap,
            "original_name": s.flavor.name,
        });
        if admin {
            v["extra_specs"] = json!(s.flavor.extra_specs);
        }
        v
    } else {
        json!({"id": s.flavor.id, "links": bookmark(os, "flavors", &s.flavor.id)})
    }
}

/// The image properties nova knows (`objects.ImageMetaProps`' fields and their legacy
/// names, nova 34): the only ones a server's image view shows from 2.98
/// (views/servers.py `_get_image`).
const IMAGE_META_PROPS: &[&str] = &[
    "architecture",
    "auto_disk_config",
    "bdm_v2",
    "bittorrent",
    "block_device_mapping",
    "cache_in_nova",
    "hw_architecture",
    "hw_auto_disk_config",
    "hw_boot_menu",
    "hw_cdrom_bus",
    "hw_cpu_cores",
    "hw_cpu_max_cores",
    "hw_cpu_max_sockets",
    "hw_cpu_max_threads",
    "hw_cpu_policy",
    "hw_cpu_realtime_mask",
    "hw_cpu_sockets",
    "hw_cpu_thread_policy",
    "hw_cpu_threads",
    "hw_device_id",
    "hw_disk_bus",
    "hw_disk_type",
    "hw_emulation_architecture",
    "hw_ephemeral_encryption",
    "hw_ephemeral_encryption_format",
    "hw_ephemeral_encryption_secret_uuid",
    "hw_firmware_stateless",
    "hw_firmware_type",
    "hw_floppy_bus",
    "hw_input_bus",
    "hw_ipxe_boot",
    "hw_locked_memory",
    "hw_machine_type",
    "hw_maxphysaddr_bits",
    "hw_maxphysaddr_mode",
    "hw_mem_encryption",
    "hw_mem_encryption_model",
    "hw_mem_page_size",
    "hw_numa_cpus",
    "hw_numa_mem",
    "hw_numa_nodes",
    "hw_pci_numa_affinity_policy",
    "hw_pmu",
    "hw_pointer_model",
    "hw_qemu_guest_agent",
    "hw_redirected_usb_ports",
    "hw_rescue_bus",
    "hw_rescue_device",
    "hw_rng_model",
    "hw_scsi_model",
    "hw_serial_port_count",
    "hw_sound_model",
    "hw_time_hpet",
    "hw_tpm_model",
    "hw_tpm_version",
    "hw_usb_model",
    "hw_video_model",
    "hw_video_ram",
    "hw_vif_model",
    "hw_vif_multiqueue_enabled",
    "hw_viommu_model",
    "hw_virtio_packed_ring",
    "hw_vm_mode",
    "hw_watchdog_action",
    "hypervisor_type",
    "hypervisor_version_requires",
    "img_bdm_v2",
    "img_bittorrent",
    "img_block_device_mapping",
    "img_cache_in_nova",
    "img_compression_level",
    "img_config_drive",
    "img_hide_hypervisor_id",
    "img_hv_requested_version",
    "img_hv_type",
    "img_linked_clone",
    "img_mappings",
    "img_owner_id",
    "img_root_device_name",
    "img_signature",
    "img_signature_certificate_uuid",
    "img_signature_hash_method",
    "img_signature_key_type",
    "img_use_agent",
    "img_version",
    "ipxe_boot",
    "mappings",
    "os_admin_user",
    "os_command_line",
    "os_distro",
    "os_require_quiesce",
    "os_secure_boot",
    "os_skip_agent_inject_files_at_boot",
    "os_skip_agent_inject_ssh",
    "os_type",
    "owner_id",
    "root_device_name",
    "traits_required",
    "vm_mode",
    "vmware_disktype",
    "vmware_image_version",
    "vmware_linked_clone",
    "vmware_ostype",
    "xenapi_device_id",
    "xenapi_image_compression_level",
    "xenapi_skip_agent_inject_files_at_boot",
    "xenapi_skip_agent_inject_ssh",
    "xenapi_use_agent",
];

pub(super) fn image_view(os: &Os, st: &State, s: &Server, mv: u32) -> Value {
    if s.image_id.is_empty() {
        return json!("");
    }
    let mut v = json!({"id": s.image_id, "links": bookmark(os, "images", &s.image_id)});
    if mv >= 98 {
        let props: BTreeMap<String, Value> = st
            .images
            .get(&s.image_id)
            .map(|i| {
                i.properties
                    .iter()
                    .filter(|(k, _)| IMAGE_META_PROPS.contains(&k.as_str()))
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            json!(
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string())
                            ),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v["properties"] = json!(props);
    }
    v
}

pub(super) fn host_status(st: &State, s: &Server) -> &'static str {
    match s
        .host
        .as_deref()
        .and_then(|h| st.hosts.iter().find(|x| x.host == h))
    {
        None => "",
        Some(h) if h.state != "up" => "DOWN",
        Some(h) if h.status != "enabled" => "MAINTENANCE",
        Some(_) => "UP",
    }
}

pub(super) fn fault_json(s: &Server, admin: bool) -> Option<Value> {
    let f = s.fault.as_ref()?;
    let mut v = json!({"code": f.code, "created": iso(f.created_ms), "message": f.message});
    if admin || f.code != 500 {
        v["details"] = json!(f.details);
    }
    Some(v)
}

/// Which fields a view carries.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum View {
    /// `GET /servers/{id}` and `/servers/detail` (`show` adds server_groups from 2.71).
    Detail { show: bool },
    /// The reduced document of PUT and rebuild before 2.75.
    Reduced,
}

/// Whether a building server is still with the scheduler as a client sees it: the
/// twin places it at once, but until the conductor has picked a host nova shows no
/// host, no zone, no ports and the `scheduling` task.
pub(super) fn scheduling(os: &Os, s: &Server) -> bool {
    s.vm_state == "building"
        && (s.task_state.as_deref() == Some("scheduling")
            || os.now_ms() < s.created_ms + os.task_ms(SCHEDULE_MS))
}

pub(super) fn server_view(
    os: &Os,
    st: &State,
    s: &Server,
    mv: u32,
    admin: bool,
    view: View,
) -> Value {
    let status = status_of(s);
    let full = matches!(view, View::Detail { .. });
    let with_scheduler = scheduling(os, s);
    let shown_host = if with_scheduler {
        None
    } else {
        s.host.as_deref()
    };
    let mut v = json!({
        "id": s.id,
        "name": s.name,
        "status": status,
        "tenant_id": s.project_id,
        "user_id": s.user_id,
        "metadata": s.metadata,
        "hostId": host_id(&s.project_id, shown_host),
        "image": image_view(os, st, s, mv),
        "flavor": flavor_view(os, s, mv, admin),
        "created": iso(s.created_ms),
        "updated": iso(s.updated_ms),
        "addresses": if with_scheduler { json!({}) } else { addresses(st, s, full || mv >= 75) },
        "accessIPv4": s.access_ipv4,
        "accessIPv6": s.access_ipv6,
        "links": links(os, "servers", &s.id),
        "OS-DCF:diskConfig": s.disk_config,
    });
    if [
        "ACTIVE",
        "BUILD",
        "REBUILD",
        "RESIZE",
        "VERIFY_RESIZE",
        "MIGRATING",
    ]
    .contains(&status)
    {
        // `instance.progress`: only libvirt's live migration monitor moves it; builds,
        // rebuilds and cold moves leave it at 0 (the compute manager resets it).
        v["progress"] = json!(if status == "MIGRATING" { 100 } else { 0 });
    }
    if let Some(f) = fault_json(s, admin)
        && (status == "ERROR" || status == "DELETED")
    {
        v["fault"] = f;
    }
    if full || mv >= 75 {
        // The zone asked for at boot until the conductor sets the host's
        // (servers.py's view: `instance.availability_zone or ''`).
        v["OS-EXT-AZ:availability_zone"] = json!(if shown_host.is_some() {
            s.az.clone()
        } else {
            s.pinned_az.clone().unwrap_or_default()
        });
        v["config_drive"] = json!(s.config_drive);
        v["key_name"] = json!(s.key_name);
        v["OS-SRV-USG:launched_at"] = json!(s.launched_ms.map(iso_plain_us));
        v["OS-SRV-USG:terminated_at"] = json!(s.terminated_ms.map(iso_plain_us));
        // Security groups come from the server's ports (servers.py
        // `_add_security_grps`): none without ports. (Nova's ports come after the
        // scheduler; the twin's exist from the create, and so do these.)
        if !s.ports.is_empty() {
            v["security_groups"] = json!(
                s.security_groups
                    .iter()
                    .map(|n| json!({"name": n}))
                    .collect::<Vec<_>>()
            );
        }
        v["OS-EXT-STS:task_state"] = if with_scheduler {
            json!("scheduling")
        } else {
            json!(s.task_state)
        };
        v["OS-EXT-STS:vm_state"] = json!(s.vm_state);
        v["OS-EXT-STS:power_state"] = json!(s.power_state);
        v["os-extended-volumes:volumes_attached"] = json!(
            s.volumes
                .iter()
                .map(|id| if mv >= 3 {
                    json!({"id": id, "delete_on_termination": false})
                } else {
                    json!({"id": id})
                })
                .collect::<Vec<_>>()
        );
        if admin {
            v["OS-EXT-SRV-ATTR:host"] = json!(shown_host);
            // A server still with the scheduler has no cell record yet, so no name.
            v["OS-EXT-SRV-ATTR:instance_name"] = if with_scheduler {
                json!("")
            } else {
                json!(format!("instance-{:08x}", s.seq))
            };
            let hh = shown_host
                .and_then(|h| st.hosts.iter().find(|x| x.host == h))
                .map(|h| h.hypervisor_hostname.clone());
            v["OS-EXT-SRV-ATTR:hypervisor_hostname"] = json!(hh);
            if mv >= 3 {
                v["OS-EXT-SRV-ATTR:reservation_id"] = json!(s.reservation_id);
                v["OS-EXT-SRV-ATTR:launch_index"] = json!(s.launch_index);
                v["OS-EXT-SRV-ATTR:kernel_id"] = json!("");
                v["OS-EXT-SRV-ATTR:ramdisk_id"] = json!("");
                // The compute manager names the root disk as it builds the server.
                v["OS-EXT-SRV-ATTR:root_device_name"] = if s.launched_ms.is_none() {
                    Value::Null
                } else {
                    json!("/dev/vda")
                };
                v["OS-EXT-SRV-ATTR:user_data"] = json!(s.user_data);
            }
        }
        if (admin && mv >= 3) || mv >= 90 {
            v["OS-EXT-SRV-ATTR:hostname"] = json!(s.hostname);
        }
        if mv >= 16 && admin {
            v["host_status"] = json!(if with_scheduler {
                ""
            } else {
                host_status(st, s)
            });
        }
        if mv >= 96 {
            v["pinned_availability_zone"] = json!(s.pinned_az);
        }
        if mv >= 100 {
            v["scheduler_hints"] = json!(s.scheduler_hints);
        }
    }
    if mv >= 9 {
        v["locked"] = json!(s.locked);
    }
    if mv >= 19 {
        v["description"] = json!(s.description);
    }
    if mv >= 26 {
        v["tags"] = json!(sorted_tags(&s.tags));
    }
    if mv >= 63 {
        v["trusted_image_certificates"] = json!(s.trusted_image_certificates);
    }
    let with_groups = match view {
        View::Detail { show } => show,
        View::Reduced => true,
    };
    if mv >= 71 && with_groups {
        v["server_groups"] = json!(groups_of(st, &s.id));
    }
    if mv >= 73 {
        v["locked_reason"] = json!(s.locked_reason);
    }
    v
}

pub(super) fn find_server_idx(st: &State, id: &str, cx: &Cx) -> Result<usize, Response> {
    st.servers
        .iter()
        .position(|s| {
            s.id == id && !s.deleted && (cx.admin() || s.project_id == cx.caller.project())
        })
        .ok_or_else(|| err(404, &format!("Instance {id} could not be found.")))
}

pub(super) const LIST_PARAMS: &[&str] = &[
    "user_id",
    "project_id",
    "tenant_id",
    "launch_index",
    "image_ref",
    "image",
    "kernel_id",
    "ramdisk_id",
    "hostname",
    "key_name",
    "power_state",
    "vm_state",
    "task_state",
    "host",
    "node",
    "flavor",
    "reservation_id",
    "launched_at",
    "terminated_at",
    "availability_zone",
    "name",
    "display_name",
    "description",
    "display_description",
    "locked_by",
    "uuid",
    "root_device_name",
    "config_drive",
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "progress",
    "sort_key",
    "sort_dir",
    "all_tenants",
    "soft_deleted",
    "deleted",
    "status",
    "changes-since",
    "changes-before",
    "ip",
    "ip6",
    "created_at",
    "block_device_mapping",
    "services",
    "metadata",
    "system_metadata",
    "info_cache",
    "security_groups",
    "pci_devices",
    "limit",
    "marker",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
    "locked",
    "pinned_availability_zone",
];

pub(super) fn list_servers(os: &Os, req: &Req, st: &State, cx: &Cx, detail: bool) -> R {
    if cx.mv >= 75 {
        for (k, _) in &req.query {
            if !LIST_PARAMS.contains(&k.as_str()) {
                return Err(bad(&format!(
                    "Invalid input for query parameters {k}. Value: {}. Additional properties are not allowed ('{k}' was unexpected)",
                    req.q(k).unwrap_or("")
                )));
            }
        }
    }
    let all_tenants = req
        .q("all_tenants")
        .is_some_and(|v| v.is_empty() || parse_bool(v) != Some(false));
    if all_tenants {
        cx.require_admin("os_compute_api:servers:index:get_all_tenants")?;
    }
    let project = req.q("project_id").or(req.q("tenant_id"));
    let changes_since = match req.q("changes-since") {
        Some(v) => Some(parse_iso(v).ok_or_else(|| bad(&format!("Invalid input for query parameters changes-since. Value: {v}. '{v}' is not a 'date-time'")))?),
        None => None,
    };
    let changes_before = match req.q("changes-before") {
        Some(v) if cx.mv >= 66 => Some(parse_iso(v).ok_or_else(|| bad(&format!("Invalid input for query parameters changes-before. Value: {v}. '{v}' is not a 'date-time'")))?),
        _ => None,
    };
    if let (Some(a), Some(b)) = (changes_since, changes_before)
        && a > b
    {
        return Err(bad(
            "The value of changes-since must be less than or equal to changes-before.",
        ));
    }
    let include_deleted = changes_since.is_some()
        || changes_before.is_some()
        || req.q("deleted").and_then(parse_bool) == Some(true);
    let name_re = match req.q("name").or(req.q("display_name")) {
        Some(n) => Some(
            super::regex::Regex::new(n)
                .map_err(|e| bad(&format!("Invalid regular expression for name: {e}")))?,
        ),
        None => None,
    };
    let ip_re = match req.q("ip") {
        Some(n) => Some(
            super::regex::Regex::new(n)
                .map_err(|e| bad(&format!("Invalid regular expression for ip: {e}")))?,
        ),
        None => None,
    };
    let statuses: Vec<String> = req
        .q_all("status")
        .iter()
        .map(|s| s.to_ascii_uppercase())
        .collect();
    let valid_status = [
        "ACTIVE",
        "BUILD",
        "DELETED",
        "ERROR",
        "HARD_REBOOT",
        "MIGRATING",
        "PASSWORD",
        "PAUSED",
        "REBOOT",
        "REBUILD",
        "RESCUE",
        "RESIZE",
        "REVERT_RESIZE",
        "SHELVED",
        "SHELVED_OFFLOADED",
        "SHUTOFF",
        "SOFT_DELETED",
        "SUSPENDED",
        "UNKNOWN",
        "VERIFY_RESIZE",
    ];
    // servers.py `_get_servers`: only when no status given maps to a state is the
    // filter refused (from 2.38; before, nothing matches).
    if !statuses.is_empty() && !statuses.iter().any(|s| valid_status.contains(&s.as_str())) {
        if cx.mv >= 38 {
            return Err(bad("Invalid status value"));
        }
        return Ok(json_resp(StatusCode::OK, json!({"servers": []})));
    }
    let split = |k: &str| -> Vec<String> {
        req.q(k)
            .map(|t| t.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (tags, tags_any, not_tags, not_tags_any) = (
        split("tags"),
        split("tags-any"),
        split("not-tags"),
        split("not-tags-any"),
    );
    let ips = |s: &Server| -> Vec<String> {
        s.ports
            .iter()
            .filter_map(|p| st.ports.iter().find(|x| &x.id == p))
            .flat_map(|p| p.fixed_ips.iter().map(|(_, ip)| ip.clone()))
            .collect()
    };
    let mut items: Vec<&Server> = st
        .servers
        .iter()
        .filter(|s| include_deleted || !s.deleted)
        .filter(|s| {
            if let Some(p) = project {
                if !cx.admin() && p != cx.caller.project() {
                    return s.project_id == cx.caller.project();
                }
                return s.project_id == p;
            }
            all_tenants || s.project_id == cx.caller.project()
        })
        .filter(|s| name_re.as_ref().is_none_or(|r| r.is_match(&s.name)))
        .filter(|s| {
            ip_re
                .as_ref()
                .is_none_or(|r| ips(s).iter().any(|ip| r.is_match(ip)))
        })
        .filter(|s| statuses.is_empty() || statuses.iter().any(|x| x == status_of(s)))
        .filter(|s| req.q("flavor").is_none_or(|f| f == s.flavor.id))
        .filter(|s| {
            req.q("image")
                .or(req.q("image_ref"))
                .is_none_or(|i| i == s.image_id)
        })
        .filter(|s| req.q("host").is_none_or(|h| Some(h) == s.host.as_deref()))
        .filter(|s| req.q("availability_zone").is_none_or(|a| a == s.az))
        .filter(|s| {
            req.q("key_name")
                .is_none_or(|k| Some(k) == s.key_name.as_deref())
        })
        .filter(|s| req.q("user_id").is_none_or(|u| u == s.user_id))
        .filter(|s| {
            req.q("reservation_id")
                .is_none_or(|r| r == s.reservation_id)
        })
        .filter(|s| req.q("vm_state").is_none_or(|v| v == s.vm_state))
        .filter(|s| req.q("uuid").is_none_or(|v| v == s.id))
        .filter(|s| {
            req.q("locked")
                .and_then(parse_bool)
                .is_none_or(|l| l == s.locked)
        })
        .filter(|s| changes_since.is_none_or(|t| s.updated_ms >= t))
        .filter(|s| changes_before.is_none_or(|t| s.updated_ms <= t))
        .filter(|s| tags.iter().all(|t| s.tags.contains(t)))
        .filter(|s| tags_any.is_empty() || tags_any.iter().any(|t| s.tags.contains(t)))
        .filter(|s| not_tags.is_empty() || !not_tags.iter().all(|t| s.tags.contains(t)))
        .filter(|s| not_tags_any.iter().all(|t| !s.tags.contains(t)))
        .collect();
    let key = req.q("sort_key").unwrap_or("created_at");
    let desc = req.q("sort_dir").unwrap_or("desc") != "asc";
    items.sort_by(|a, b| {
        let o = match key {
            "display_name" | "name" => a.name.cmp(&b.name),
            "updated_at" => a.updated_ms.cmp(&b.updated_ms),
            "uuid" => a.id.cmp(&b.id),
            "vm_state" => a.vm_state.cmp(&b.vm_state),
            "hostname" => a.hostname.cmp(&b.hostname),
            "launched_at" => a.launched_ms.cmp(&b.launched_ms),
            "host" => a.host.cmp(&b.host),
            _ => a.created_ms.cmp(&b.created_ms).then(a.seq.cmp(&b.seq)),
        };
        let o = o.then_with(|| a.id.cmp(&b.id));
        if desc { o.reverse() } else { o }
    });
    let path = if detail { "servers/detail" } else { "servers" };
    let (page, next) = paginate(
        os,
        req,
        items,
        |s| s.id.clone(),
        path,
        |m| bad(&format!("marker [{m}] not found")),
    )?;
    let servers: Vec<Value> = page
        .iter()
        .map(|s| {
            if detail {
                server_view(os, st, s, cx.mv, cx.admin(), View::Detail { show: false })
            } else {
                json!({"id": s.id, "name": s.name, "links": links(os, "servers", &s.id)})
            }
        })
        .collect();
    let mut body = json!({"servers": servers});
    if let Some(n) = next {
        body["servers_links"] = n;
    }
    Ok(json_resp(StatusCode::OK, body))
}

pub(super) fn servers_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_servers(os, req, st, cx, false)
}

pub(super) fn servers_detail_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_servers(os, req, st, cx, true)
}

pub(super) fn server_get_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let v = server_view(
        os,
        st,
        &st.servers[idx],
        cx.mv,
        cx.admin(),
        View::Detail { show: true },
    );
    Ok(json_resp(StatusCode::OK, json!({"server": v})))
}

pub(super) fn server_update_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let b = body
        .get("server")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("request body", &body, "'server' is a required property"))?
        .clone();
    let idx = find_server_idx(st, req.param("id"), cx)?;
    for (k, v) in &b {
        match k.as_str() {
            "name" => {
                let n = v
                    .as_str()
                    .filter(|n| !n.is_empty() && n.len() <= 255)
                    .ok_or_else(|| invalid("name", v, "is not a valid server name"))?;
                st.servers[idx].name = n.to_string();
            }
            "description" if cx.mv >= 19 => {
                st.servers[idx].description = v.as_str().map(str::to_string)
            }
            "accessIPv4" => st.servers[idx].access_ipv4 = v.as_str().unwrap_or("").to_string(),
            "accessIPv6" => st.servers[idx].access_ipv6 = v.as_str().unwrap_or("").to_string(),
            "OS-DCF:diskConfig" => {
                st.servers[idx].disk_config = v.as_str().unwrap_or("MANUAL").to_string()
            }
            "hostname" if cx.mv >= 90 => {
                st.servers[idx].hostname = v.as_str().unwrap_or("").to_string()
            }
            "pinned_availability_zone" if cx.mv >= 104 => {
                st.servers[idx].pinned_az = v.as_str().map(str::to_string)
            }
            _ => {
                return Err(invalid(
                    "server",
                    &json!(b),
                    &format!("Additional properties are not allowed ('{k}' was unexpected)"),
                ));
            }
        }
    }
    st.servers[idx].updated_ms = os.now_ms();
    let view = if cx.mv >= 75 {
        View::Detail { show: true }
    } else {
        View::Reduced
    };
    let v = server_view(os, st, &st.servers[idx], cx.mv, cx.admin(), view);
    Ok(json_resp(StatusCode::OK, json!({"server": v})))
}

/// Remove a server now: ports, allocations, PCI devices.
pub(crate) fn destroy_server(st: &mut State, idx: usize, now: i64) {
    let id = st.servers[idx].id.clone();
    unclaim(st, &id);
    super::migrations::forget(st, &id);
    neutron::release_ports(st, &id);
    super::server_groups::forget_member(st, &id);
    let s = &mut st.servers[idx];
    s.deleted = true;
    s.vm_state = "deleted".into();
    s.task_state = None;
    s.power_state = 0;
    s.terminated_ms = Some(now);
    s.updated_ms = now;
    s.pending = None;
    s.ports.clear();
}

pub(super) fn server_delete_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    if st.servers[idx].locked && !cx.admin() {
        return Err(err(
            409,
            &format!("Instance {} is locked", st.servers[idx].id),
        ));
    }
    record(
        &mut st.servers[idx],
        "delete",
        "compute_terminate_instance",
        &cx.caller,
        true,
        os.now_ms(),
    );
    destroy_server(st, idx, os.now_ms());
    Ok(empty(StatusCode::NO_CONTENT))
}
