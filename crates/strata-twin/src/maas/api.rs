//! The handler catalogue: every resource the twin serves, with its actions. It is the
//! single source of the router, of the `describe` document python-libmaas builds its
//! client from, and of [`routes`] (checked against the vendor's OpenAPI document).

use std::collections::BTreeMap;

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::http::Req;
use super::{Maas, dns, machines as m, misc, network as n, reservedips as rip, scripts as sc};
use crate::core::{Route, RouteTable};

pub type ActionFn = fn(&Maas, &Req) -> Response;

pub struct Action {
    pub method: &'static str,
    /// `None` for the RESTful (CRUD) action of the method.
    pub op: Option<&'static str>,
    pub run: ActionFn,
    pub doc: &'static str,
}

pub struct Handler {
    /// Piston handler class name (python-libmaas derives its object names from it).
    pub name: &'static str,
    /// Path below `/api/2.0`, with `{param}` placeholders; ends with `/` as MAAS's
    /// URL patterns do (all but the partition's).
    pub path: &'static str,
    pub params: &'static [&'static str],
    /// Served without authentication.
    pub anon: bool,
    pub doc: &'static str,
    pub actions: &'static [Action],
}

/// What a MAAS route runs: the action, and whether its resource is served without
/// authentication.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub run: ActionFn,
    pub anon: bool,
}

/// Every operation the 2.0 API serves (method, path below `/api/2.0`, `op`), as the
/// twin's route table: what the router dispatches through.
pub fn routes() -> RouteTable<Endpoint> {
    HANDLERS
        .iter()
        .flat_map(|h| {
            h.actions.iter().map(|a| {
                let method = Method::from_bytes(a.method.as_bytes()).unwrap_or(Method::GET);
                let endpoint = Endpoint {
                    run: a.run,
                    anon: h.anon,
                };
                Route::new(method, h.path, endpoint).op(a.op)
            })
        })
        .collect()
}

const fn get(run: ActionFn, doc: &'static str) -> Action {
    Action {
        method: "GET",
        op: None,
        run,
        doc,
    }
}
const fn post(run: ActionFn, doc: &'static str) -> Action {
    Action {
        method: "POST",
        op: None,
        run,
        doc,
    }
}
const fn put(run: ActionFn, doc: &'static str) -> Action {
    Action {
        method: "PUT",
        op: None,
        run,
        doc,
    }
}
const fn delete(run: ActionFn, doc: &'static str) -> Action {
    Action {
        method: "DELETE",
        op: None,
        run,
        doc,
    }
}
const fn get_op(op: &'static str, run: ActionFn, doc: &'static str) -> Action {
    Action {
        method: "GET",
        op: Some(op),
        run,
        doc,
    }
}
const fn post_op(op: &'static str, run: ActionFn, doc: &'static str) -> Action {
    Action {
        method: "POST",
        op: Some(op),
        run,
        doc,
    }
}

pub static HANDLERS: &[Handler] = &[
    Handler {
        name: "VersionHandler",
        path: "/version/",
        params: &[],
        anon: true,
        doc: "Information about this MAAS instance.",
        actions: &[get(super::version, "MAAS version information.")],
    },
    Handler {
        name: "MachinesHandler",
        path: "/machines/",
        params: &[],
        anon: false,
        doc: "Manage the collection of all the machines in the MAAS.",
        actions: &[
            get(
                m::list,
                "List machines, filtered by hostname, id, mac_address, zone, pool, status, tags, ...",
            ),
            post(m::create, "Create (enlist) a new machine."),
            post_op(
                "allocate",
                m::allocate,
                "Allocate an available machine matching constraints.",
            ),
            get_op(
                "list_allocated",
                m::list_allocated,
                "List machines allocated to the user.",
            ),
            get_op(
                "is_registered",
                m::is_registered,
                "Whether a MAC address is registered.",
            ),
            get_op(
                "power_parameters",
                m::power_parameters_many,
                "Power parameters of machines.",
            ),
            post_op("accept_all", m::accept_all, "Accept all declared machines."),
            post_op(
                "release",
                m::release_many,
                "Release several machines (machines=...).",
            ),
            post_op("set_zone", m::set_zone, "Move nodes (nodes=...) to a zone."),
        ],
    },
    Handler {
        name: "MachineHandler",
        path: "/machines/{system_id}/",
        params: &["system_id"],
        anon: false,
        doc: "Manage an individual machine.\n\nA machine is identified by its system_id.",
        actions: &[
            get(m::read, "Read a machine."),
            put(m::update, "Update a machine."),
            delete(m::delete, "Delete a machine."),
            post_op("commission", m::commission, "Begin commissioning."),
            post_op("deploy", m::deploy, "Deploy an operating system."),
            post_op("release", m::release, "Release the machine."),
            post_op("power_on", m::power_on, "Turn the machine on."),
            post_op("power_off", m::power_off, "Power the machine off."),
            get_op(
                "query_power_state",
                m::query_power_state,
                "Query the BMC for the power state.",
            ),
            post_op("mark_broken", m::mark_broken, "Mark the machine broken."),
            post_op("mark_fixed", m::mark_fixed, "Mark a broken machine fixed."),
            post_op("abort", m::abort, "Abort the current operation."),
            post_op("test", m::test, "Begin testing."),
            get_op(
                "details",
                m::details,
                "Probed details (BSON: lshw and lldp XML).",
            ),
            get_op(
                "power_parameters",
                m::power_parameters,
                "The machine's power parameters.",
            ),
            post_op(
                "set_owner_data",
                m::set_owner_data,
                "Set key=value owner data.",
            ),
            post_op(
                "set_workload_annotations",
                m::set_owner_data,
                "Set key=value workload annotations.",
            ),
            post_op("lock", m::lock, "Lock the machine."),
            post_op("unlock", m::unlock, "Unlock the machine."),
            post_op(
                "set_storage_layout",
                m::set_storage_layout,
                "Replace the storage configuration with a layout (storage_layout=blank|flat).",
            ),
            post_op(
                "restore_storage_configuration",
                m::restore_storage_configuration,
                "Apply the default storage layout again.",
            ),
        ],
    },
    Handler {
        name: "NodesHandler",
        path: "/nodes/",
        params: &[],
        anon: false,
        doc: "Manage the collection of all the nodes in the MAAS.",
        actions: &[get(m::list_nodes, "List nodes (machines and controllers).")],
    },
    Handler {
        name: "NodeDevicesHandler",
        path: "/nodes/{system_id}/devices/",
        params: &["system_id"],
        anon: false,
        doc: "View NodeDevices from a Node.",
        actions: &[get(
            m::devices,
            "Return node devices (PCIe/USB) found by commissioning.",
        )],
    },
    Handler {
        name: "NodeDeviceHandler",
        path: "/nodes/{system_id}/devices/{id}/",
        params: &["system_id", "id"],
        anon: false,
        doc: "View a specific NodeDevice from a Node.",
        actions: &[get(m::device, "Return a specific node device.")],
    },
    Handler {
        name: "NodeScriptResultsHandler",
        path: "/nodes/{system_id}/results/",
        params: &["system_id"],
        anon: false,
        doc: "Manage node script results.",
        actions: &[get(m::results, "Return script results.")],
    },
    Handler {
        name: "NodeScriptResultHandler",
        path: "/nodes/{system_id}/results/{id}/",
        params: &["system_id", "id"],
        anon: false,
        doc: "Manage node script results.",
        actions: &[
            get(
                m::result,
                "Get a script result set (id, current-commissioning, current-testing, current-installation).",
            ),
            get_op("download", m::download, "Download script output."),
        ],
    },
    Handler {
        name: "NodeScriptsHandler",
        path: "/scripts/",
        params: &[],
        anon: false,
        doc: "Manage custom scripts.\n\nThis functionality is only available to administrators.",
        actions: &[
            get(
                sc::list,
                "List stored scripts (type, hardware_type, filters, include_script).",
            ),
            post(
                sc::create,
                "Create a new script (name, script, type, hardware_type, timeout, ...).",
            ),
        ],
    },
    Handler {
        name: "NodeScriptHandler",
        // No trailing slash: MAAS's script route has none.
        path: "/scripts/{name}",
        params: &["name"],
        anon: false,
        doc: "Manage or view a custom script.",
        actions: &[
            get(sc::read, "Return script metadata (by name or id)."),
            put(sc::update, "Update a script."),
            delete(sc::delete, "Delete a script."),
            get_op("download", sc::download, "Download a script's text."),
            post_op(
                "revert",
                sc::revert,
                "Revert a script to an earlier revision.",
            ),
            post_op("add_tag", sc::add_tag, "Add a tag to a script."),
            post_op("remove_tag", sc::remove_tag, "Remove a tag from a script."),
        ],
    },
    Handler {
        name: "InterfacesHandler",
        path: "/nodes/{system_id}/interfaces/",
        params: &["system_id"],
        anon: false,
        doc: "Manage interfaces on a node.",
        actions: &[
            get(m::interfaces, "List interfaces."),
            post_op("create_bond", m::create_bond, "Create a bond interface."),
            post_op("create_vlan", m::create_vlan, "Create a VLAN interface."),
            post_op(
                "create_bridge",
                m::create_bridge,
                "Create a bridge interface.",
            ),
        ],
    },
    Handler {
        name: "InterfaceHandler",
        path: "/nodes/{system_id}/interfaces/{id}/",
        params: &["system_id", "id"],
        anon: false,
        doc: "Manage a node's or device's interface.",
        actions: &[
            get(m::interface, "Read an interface."),
            put(
                m::update_interface,
                "Update an interface (name, vlan, mtu, tags).",
            ),
            post_op(
                "link_subnet",
                m::link_subnet,
                "Link an interface to a subnet.",
            ),
            post_op(
                "unlink_subnet",
                m::unlink_subnet,
                "Unlink an interface from a subnet.",
            ),
            post_op("disconnect", m::disconnect, "Disconnect an interface."),
            post_op(
                "set_default_gateway",
                m::set_default_gateway,
                "Set the node's default gateway to a link of this interface.",
            ),
            delete(m::delete_interface, "Delete a bond or VLAN interface."),
        ],
    },
    Handler {
        name: "BlockDevicesHandler",
        path: "/nodes/{system_id}/blockdevices/",
        params: &["system_id"],
        anon: false,
        doc: "Manage block devices on a machine.",
        actions: &[get(
            m::blockdevices,
            "List block devices (physical disks and RAIDs' virtual devices).",
        )],
    },
    Handler {
        name: "BlockDeviceHandler",
        path: "/nodes/{system_id}/blockdevices/{id}/",
        params: &["system_id", "id"],
        anon: false,
        doc: "Manage a block device on a machine.",
        actions: &[
            get(m::blockdevice, "Read a block device (by id or name)."),
            post_op(
                "format",
                m::format_blockdevice,
                "Format a block device (fstype, uuid, label).",
            ),
            post_op(
                "unformat",
                m::unformat_blockdevice,
                "Remove a block device's filesystem.",
            ),
            post_op(
                "mount",
                m::mount_blockdevice,
                "Mount a block device's filesystem (mount_point, mount_options).",
            ),
            post_op(
                "unmount",
                m::unmount_blockdevice,
                "Unmount a block device's filesystem.",
            ),
            post_op(
                "set_boot_disk",
                m::set_boot_disk,
                "Make a physical block device the boot disk.",
            ),
        ],
    },
    Handler {
        name: "PartitionsHandler",
        path: "/nodes/{system_id}/blockdevices/{device_id}/partitions/",
        params: &["system_id", "device_id"],
        anon: false,
        doc: "Manage partitions on a block device.",
        actions: &[
            get(m::partitions, "List the partitions of a block device."),
            post(
                m::create_partition,
                "Create a partition (size, uuid, bootable).",
            ),
        ],
    },
    Handler {
        name: "PartitionHandler",
        // No trailing slash: MAAS's partition route has none.
        path: "/nodes/{system_id}/blockdevices/{device_id}/partition/{id}",
        params: &["system_id", "device_id", "id"],
        anon: false,
        doc: "Manage a partition on a block device.",
        actions: &[
            get(m::partition, "Read a partition (by id or name)."),
            delete(m::delete_partition, "Delete a partition."),
            post_op(
                "format",
                m::format_partition,
                "Format a partition (fstype, uuid, label).",
            ),
            post_op(
                "unformat",
                m::unformat_partition,
                "Remove a partition's filesystem.",
            ),
            post_op(
                "mount",
                m::mount_partition,
                "Mount a partition's filesystem (mount_point, mount_options).",
            ),
            post_op(
                "unmount",
                m::unmount_partition,
                "Unmount a partition's filesystem.",
            ),
        ],
    },
    Handler {
        name: "RaidsHandler",
        path: "/nodes/{system_id}/raids/",
        params: &["system_id"],
        anon: false,
        doc: "Manage all RAIDs (Redundant Array of Independent Disks) on a machine.",
        actions: &[
            get(m::raids, "List the machine's RAIDs."),
            post(
                m::create_raid,
                "Set up a RAID (name, uuid, level, block_devices, partitions, spare_devices, spare_partitions).",
            ),
        ],
    },
    Handler {
        name: "RaidHandler",
        path: "/nodes/{system_id}/raid/{id}/",
        params: &["system_id", "id"],
        anon: false,
        doc: "Manage a specific RAID (Redundant Array of Independent Disks) on a machine.",
        actions: &[
            get(m::raid, "Read a RAID."),
            delete(m::delete_raid, "Delete a RAID."),
        ],
    },
    Handler {
        name: "RackControllersHandler",
        path: "/rackcontrollers/",
        params: &[],
        anon: false,
        doc: "Manage the collection of all rack controllers in MAAS.",
        actions: &[
            get(misc::racks, "List rack controllers."),
            get_op(
                "describe_power_types",
                misc::describe_power_types,
                "Power types the racks support.",
            ),
        ],
    },
    Handler {
        name: "RackControllerHandler",
        path: "/rackcontrollers/{system_id}/",
        params: &["system_id"],
        anon: false,
        doc: "Manage an individual rack controller.",
        actions: &[
            get(misc::rack, "Read a rack controller."),
            get_op(
                "list_boot_images",
                misc::list_boot_images,
                "Boot images on the rack.",
            ),
        ],
    },
    Handler {
        name: "RegionControllersHandler",
        path: "/regioncontrollers/",
        params: &[],
        anon: false,
        doc: "Manage the collection of all region controllers in MAAS.",
        actions: &[get(misc::regions, "List region controllers.")],
    },
    Handler {
        name: "RegionControllerHandler",
        path: "/regioncontrollers/{system_id}/",
        params: &["system_id"],
        anon: false,
        doc: "Manage an individual region controller.",
        actions: &[get(misc::region, "Read a region controller.")],
    },
    Handler {
        name: "FabricsHandler",
        path: "/fabrics/",
        params: &[],
        anon: false,
        doc: "Manage fabrics.",
        actions: &[
            get(n::fabrics, "List fabrics."),
            post(n::create_fabric, "Create a fabric."),
        ],
    },
    Handler {
        name: "FabricHandler",
        path: "/fabrics/{id}/",
        params: &["id"],
        anon: false,
        doc: "Manage fabric.",
        actions: &[
            get(n::fabric, "Read a fabric."),
            put(n::update_fabric, "Update a fabric."),
            delete(n::delete_fabric, "Delete a fabric."),
        ],
    },
    Handler {
        name: "VlansHandler",
        path: "/fabrics/{fabric_id}/vlans/",
        params: &["fabric_id"],
        anon: false,
        doc: "Manage VLANs on a fabric.",
        actions: &[
            get(n::vlans, "List VLANs of a fabric."),
            post(n::create_vlan, "Create a VLAN."),
        ],
    },
    Handler {
        name: "VlanHandler",
        path: "/fabrics/{fabric_id}/vlans/{vid}/",
        params: &["fabric_id", "vid"],
        anon: false,
        doc: "Manage a VLAN on a fabric (identified by its VID).",
        actions: &[
            get(n::vlan, "Read a VLAN."),
            put(
                n::update_vlan,
                "Update a VLAN (name, mtu, dhcp_on, primary_rack, secondary_rack, space, ...).",
            ),
            delete(n::delete_vlan, "Delete a VLAN."),
        ],
    },
    Handler {
        name: "SubnetsHandler",
        path: "/subnets/",
        params: &[],
        anon: false,
        doc: "Manage subnets.",
        actions: &[
            get(n::subnets, "List subnets."),
            post(n::create_subnet, "Create a subnet."),
        ],
    },
    Handler {
        name: "SubnetHandler",
        path: "/subnets/{id}/",
        params: &["id"],
        anon: false,
        doc: "Manage a subnet.",
        actions: &[
            get(n::subnet, "Read a subnet."),
            put(n::update_subnet, "Update a subnet."),
            delete(n::delete_subnet, "Delete a subnet."),
            get_op(
                "reserved_ip_ranges",
                n::reserved_ip_ranges,
                "Reserved IP ranges of the subnet.",
            ),
            get_op(
                "unreserved_ip_ranges",
                n::unreserved_ip_ranges,
                "Unreserved IP ranges of the subnet.",
            ),
            get_op(
                "statistics",
                n::statistics,
                "Usage statistics of the subnet.",
            ),
        ],
    },
    Handler {
        name: "IPRangesHandler",
        path: "/ipranges/",
        params: &[],
        anon: false,
        doc: "Manage IP ranges.",
        actions: &[
            get(n::ipranges, "List IP ranges."),
            post(n::create_iprange, "Create an IP range."),
        ],
    },
    Handler {
        name: "IPRangeHandler",
        path: "/ipranges/{id}/",
        params: &["id"],
        anon: false,
        doc: "Manage IP range.",
        actions: &[
            get(n::iprange, "Read an IP range."),
            put(n::update_iprange, "Update an IP range."),
            delete(n::delete_iprange, "Delete an IP range."),
        ],
    },
    Handler {
        name: "ReservedIpsHandler",
        path: "/reservedips/",
        params: &[],
        anon: false,
        doc: "Manage Reserved IPs.",
        actions: &[
            get(rip::list, "List all available Reserved IPs."),
            post(rip::create, "Create a Reserved IP."),
        ],
    },
    Handler {
        name: "ReservedIpHandler",
        path: "/reservedips/{id}/",
        params: &["id"],
        anon: false,
        doc: "Manage Reserved IP.",
        actions: &[
            get(rip::read, "Read a Reserved IP."),
            put(rip::update, "Update a reserved IP."),
            delete(rip::delete, "Delete a reserved IP."),
        ],
    },
    Handler {
        name: "SpacesHandler",
        path: "/spaces/",
        params: &[],
        anon: false,
        doc: "Manage spaces.",
        actions: &[
            get(n::spaces, "List spaces."),
            post(n::create_space, "Create a space."),
        ],
    },
    Handler {
        name: "SpaceHandler",
        path: "/spaces/{id}/",
        params: &["id"],
        anon: false,
        doc: "Manage space.",
        actions: &[
            get(n::space, "Read a space."),
            put(n::update_space, "Update a space."),
            delete(n::delete_space, "Delete a space."),
        ],
    },
    Handler {
        name: "ZonesHandler",
        path: "/zones/",
        params: &[],
        anon: false,
        doc: "Manage physical zones.",
        actions: &[
            get(misc::zones, "List zones."),
            post(misc::create_zone, "Create a zone."),
        ],
    },
    Handler {
        name: "ZoneHandler",
        path: "/zones/{name}/",
        params: &["name"],
        anon: false,
        doc: "Manage a physical zone.",
        actions: &[
            get(misc::zone, "Read a zone."),
            put(misc::update_zone, "Update a zone."),
            delete(misc::delete_zone, "Delete a zone."),
        ],
    },
    Handler {
        name: "ResourcePoolsHandler",
        path: "/resourcepools/",
        params: &[],
        anon: false,
        doc: "Manage resource pools.",
        actions: &[
            get(misc::pools, "List resource pools."),
            post(misc::create_pool, "Create a resource pool."),
        ],
    },
    Handler {
        name: "ResourcePoolHandler",
        path: "/resourcepool/{id}/",
        params: &["id"],
        anon: false,
        doc: "Manage a resource pool.",
        actions: &[
            get(misc::pool, "Read a resource pool."),
            put(misc::update_pool, "Update a resource pool."),
            delete(misc::delete_pool, "Delete a resource pool."),
        ],
    },
    Handler {
        name: "TagsHandler",
        path: "/tags/",
        params: &[],
        anon: false,
        doc: "Manage all tags known to MAAS.",
        actions: &[
            get(misc::tags, "List tags."),
            post(misc::create_tag, "Create a tag."),
        ],
    },
    Handler {
        name: "TagHandler",
        path: "/tags/{name}/",
        params: &["name"],
        anon: false,
        doc: "Tags are properties that can be associated with a Node and serve as criteria for selecting and allocating nodes.",
        actions: &[
            get(misc::tag, "Read a tag."),
            put(misc::update_tag, "Update a tag."),
            delete(misc::delete_tag, "Delete a tag."),
            post_op(
                "update_nodes",
                misc::update_nodes,
                "Add or remove nodes (add=, remove= system ids).",
            ),
            get_op("machines", misc::tag_machines, "Machines with this tag."),
            get_op("nodes", misc::tag_nodes, "Nodes with this tag."),
        ],
    },
    Handler {
        name: "BootResourcesHandler",
        path: "/boot-resources/",
        params: &[],
        anon: false,
        doc: "Manage the boot resources.",
        actions: &[
            get(misc::boot_resources, "List boot resources."),
            get_op(
                "is_importing",
                misc::is_importing,
                "Whether boot resources are importing.",
            ),
            post_op(
                "import",
                misc::import_boot_resources,
                "Import boot resources.",
            ),
            post_op(
                "stop_import",
                misc::import_boot_resources,
                "Stop importing boot resources.",
            ),
        ],
    },
    Handler {
        name: "BootResourceHandler",
        path: "/boot-resources/{id}/",
        params: &["id"],
        anon: false,
        doc: "Manage a boot resource.",
        actions: &[get(misc::boot_resource, "Read a boot resource.")],
    },
    Handler {
        name: "MaasHandler",
        path: "/maas/",
        params: &[],
        anon: false,
        doc: "Manage the MAAS server.",
        actions: &[
            get_op("get_config", misc::get_config, "Get a configuration value."),
            post_op("set_config", misc::set_config, "Set a configuration value."),
        ],
    },
    Handler {
        name: "DomainsHandler",
        path: "/domains/",
        params: &[],
        anon: false,
        doc: "Manage domains.",
        actions: &[
            get(misc::domains, "List domains."),
            post(misc::create_domain, "Create a domain."),
        ],
    },
    Handler {
        name: "DomainHandler",
        path: "/domains/{id}/",
        params: &["id"],
        anon: false,
        doc: "Manage domain.",
        actions: &[
            get(misc::domain, "Read a domain."),
            put(dns::update_domain, "Update a domain."),
        ],
    },
    Handler {
        name: "DNSResourcesHandler",
        path: "/dnsresources/",
        params: &[],
        anon: false,
        doc: "Manage dnsresources.",
        actions: &[
            get(dns::dnsresources, "List resources."),
            post(dns::create_dnsresource, "Create a DNS resource."),
        ],
    },
    Handler {
        name: "DNSResourceHandler",
        path: "/dnsresources/{id}/",
        params: &["id"],
        anon: false,
        doc: "Manage dnsresource.",
        actions: &[
            get(dns::dnsresource, "Read a DNS resource."),
            put(dns::update_dnsresource, "Update a DNS resource."),
            delete(dns::delete_dnsresource, "Delete a DNS resource."),
        ],
    },
    Handler {
        name: "UsersHandler",
        path: "/users/",
        params: &[],
        anon: false,
        doc: "Manage the user accounts of this MAAS.",
        actions: &[
            get(misc::users, "List users."),
            get_op("whoami", misc::whoami, "The logged-in user."),
        ],
    },
    Handler {
        name: "UserHandler",
        path: "/users/{username}/",
        params: &["username"],
        anon: false,
        doc: "Manage a user account.",
        actions: &[get(misc::user, "Read a user.")],
    },
];

/// Extract a template's `{param}`s from a concrete path (`/api/2.0/...`).
pub fn match_path(template: &str, path: &str) -> BTreeMap<String, String> {
    let path = path.strip_prefix("/api/2.0").unwrap_or(path);
    let mut out = BTreeMap::new();
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    for (ts, ps) in t.iter().zip(p.iter()) {
        if let Some(name) = ts.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let v = url::form_urlencoded::parse(format!("v={}", ps.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            out.insert(name.to_string(), v);
        }
    }
    out
}

fn crud_name(method: &str) -> &'static str {
    match method {
        "GET" => "read",
        "POST" => "create",
        "PUT" => "update",
        "DELETE" => "delete",
        _ => "unknown",
    }
}

fn describe_handler(h: &Handler, api: &str, origin: &str) -> Value {
    let path = format!("{}{}", api.trim_end_matches('/'), h.path);
    let mut actions: Vec<Value> = h
        .actions
        .iter()
        .map(|a| {
            json!({
                "method": a.method,
                "name": a.op.unwrap_or(crud_name(a.method)),
                "doc": a.doc,
                "op": a.op,
                "restful": a.op.is_none(),
            })
        })
        .collect();
    actions.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({
        "name": h.name,
        "doc": h.doc,
        "params": h.params,
        "path": path,
        "uri": format!("{origin}{path}"),
        "actions": actions,
    })
}

/// The `describe` document (`GET /api/2.0/describe/`), as MAAS renders it: resources
/// with their anonymous and authenticated handlers, plus the legacy `handlers` list.
pub fn describe(api: &str, origin: &str) -> Value {
    let mut resources: Vec<Value> = HANDLERS
        .iter()
        .map(|h| {
            let d = describe_handler(h, api, origin);
            if h.anon {
                json!({"name": h.name, "anon": d, "auth": null})
            } else {
                json!({"name": h.name, "anon": null, "auth": d})
            }
        })
        .collect();
    resources.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut handlers: Vec<Value> = resources
        .iter()
        .filter(|r| !r["anon"].is_null())
        .map(|r| r["anon"].clone())
        .collect();
    handlers.extend(
        resources
            .iter()
            .filter(|r| !r["auth"].is_null())
            .map(|r| r["auth"].clone()),
    );
    let hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&resources).unwrap_or_default(),
    ));
    json!({"doc": "MAAS API", "hash": hash, "resources": resources, "handlers": handlers})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match() {
        let p = match_path(
            "/fabrics/{fabric_id}/vlans/{vid}/",
            "/api/2.0/fabrics/3/vlans/100/",
        );
        assert_eq!(p.get("fabric_id").map(String::as_str), Some("3"));
        assert_eq!(p.get("vid").map(String::as_str), Some("100"));
        let p = match_path("/zones/{name}/", "/api/2.0/zones/rack%20a");
        assert_eq!(p.get("name").map(String::as_str), Some("rack a"));
    }

    #[test]
    fn describe_has_libmaas_shape() {
        let d = describe("/fra1/MAAS/api/2.0/", "http://127.0.0.1:5240");
        let machine = d["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["name"] == "MachineHandler")
            .expect("machine");
        assert_eq!(
            machine["auth"]["uri"],
            "http://127.0.0.1:5240/fra1/MAAS/api/2.0/machines/{system_id}/"
        );
        assert_eq!(machine["auth"]["params"][0], "system_id");
        let deploy = machine["auth"]["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .find(|a| a["name"] == "deploy")
            .expect("deploy");
        assert_eq!(deploy["op"], "deploy");
        assert_eq!(deploy["restful"], false);
        assert!(
            d["handlers"]
                .as_array()
                .is_some_and(|h| h.len() == HANDLERS.len())
        );
    }
}
