//! Neutron v2.0: networks (with provider attributes and segment conflicts), subnets
//! (address pools, DHCP ports), ports (created for servers by Nova), security groups,
//! quotas, tags, extensions; filtering, sorting, `fields` and marker/limit pagination.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::model::*;
use super::net::{Cidr, parse_ip};
use super::*;
use crate::core::{ApiError, ErrorBody};

mod listing;
mod networks;
mod ports;
mod quotas;
mod rbac;
mod security_groups;
mod subnets;
mod tags;

use listing::*;
pub(crate) use networks::network_usable_by;
use networks::*;
use ports::*;
pub(crate) use ports::{activate_ports, bind_port, create_port, ensure_default_sg, release_ports};
use quotas::*;
use rbac::*;
use security_groups::*;
use subnets::*;
use tags::*;

pub(crate) fn routes(r: Routes) -> Routes {
    let mut r = r
        .add("/network", &[(GET, versions)])
        .add("/network/", &[(GET, versions)])
        .add("/network/v2.0", &[(GET, version)])
        .add("/network/v2.0/", &[(GET, version)])
        .add("/network/v2.0/extensions", &[(GET, extensions)])
        .add("/network/v2.0/extensions/{alias}", &[(GET, extension)])
        .add(
            "/network/v2.0/networks",
            &[(GET, networks_list), (POST, network_create)],
        )
        .add(
            "/network/v2.0/networks/{id}",
            &[
                (GET, network_get),
                (PUT, network_update),
                (DELETE, network_delete),
            ],
        )
        .add(
            "/network/v2.0/subnets",
            &[(GET, subnets_list), (POST, subnet_create)],
        )
        .add(
            "/network/v2.0/subnets/{id}",
            &[
                (GET, subnet_get),
                (PUT, subnet_update),
                (DELETE, subnet_delete),
            ],
        )
        .add(
            "/network/v2.0/ports",
            &[(GET, ports_list), (POST, port_create)],
        )
        .add(
            "/network/v2.0/ports/{id}",
            &[(GET, port_get), (PUT, port_update), (DELETE, port_delete)],
        )
        .add(
            "/network/v2.0/security-groups",
            &[(GET, sgs_list), (POST, sg_create)],
        )
        .add(
            "/network/v2.0/security-groups/{id}",
            &[(GET, sg_get), (DELETE, sg_delete)],
        )
        .add(
            "/network/v2.0/security-group-rules",
            &[(GET, sg_rules_list), (POST, sg_rule_create)],
        )
        .add(
            "/network/v2.0/security-group-rules/{id}",
            &[(GET, sg_rule_get), (DELETE, sg_rule_delete)],
        )
        .add(
            "/network/v2.0/rbac-policies",
            &[(GET, rbac_list), (POST, rbac_create)],
        )
        .add(
            "/network/v2.0/rbac-policies/{id}",
            &[(GET, rbac_get), (PUT, rbac_update), (DELETE, rbac_delete)],
        )
        .add("/network/v2.0/availability_zones", &[(GET, azs_list)])
        .add("/network/v2.0/quotas", &[(GET, quotas_list)])
        .add(
            "/network/v2.0/quotas/{id}",
            &[(GET, quota_get), (PUT, quota_put), (DELETE, quota_delete)],
        )
        .add("/network/v2.0/quotas/{id}/details", &[(GET, quota_details)])
        .add("/network/v2.0/quotas/{id}/default", &[(GET, quota_default)]);
    for coll in ["networks", "subnets", "ports"] {
        r = r
            .add(
                &format!("/network/v2.0/{coll}/{{id}}/tags"),
                &[(GET, tags_get), (PUT, tags_put), (DELETE, tags_clear)],
            )
            .add(
                &format!("/network/v2.0/{coll}/{{id}}/tags/{{tag}}"),
                &[(GET, tag_check), (PUT, tag_add), (DELETE, tag_delete)],
            );
    }
    r
}

// ---------------------------------------------------------------------------------------
// Errors and the request wrapper

pub(crate) fn nerr(status: u16, kind: &str, message: &str) -> Response {
    let mut e = ApiError::new(status, kind.to_string(), message);
    if StatusCode::from_u16(status).is_err() {
        e.status = StatusCode::BAD_REQUEST;
    }
    NeutronErrors.render(&e)
}

/// Neutron's error body: `{"NeutronError": {"type": CODE, "message": ..., "detail": ""}}`.
pub(crate) struct NeutronErrors;

impl ErrorBody for NeutronErrors {
    fn render(&self, e: &ApiError) -> Response {
        json_resp(
            e.status,
            json!({"NeutronError": {"type": e.code, "message": e.message, "detail": ""}}),
        )
    }
}

fn bad(message: &str) -> Response {
    nerr(400, "HTTPBadRequest", message)
}

fn invalid_input(message: &str) -> Response {
    nerr(
        400,
        "InvalidInput",
        // neutron-lib `exceptions.InvalidInput`: "Invalid input for operation: %(error_message)s."
        &format!("Invalid input for operation: {message}."),
    )
}

fn not_found(kind: &str, id: &str) -> Response {
    let t = match kind {
        "network" => "NetworkNotFound",
        "subnet" => "SubnetNotFound",
        "port" => "PortNotFound",
        "security_group" => "SecurityGroupNotFound",
        _ => "HTTPNotFound",
    };
    let what = match kind {
        "security_group" => "Security group".to_string(),
        k => {
            let mut c = k.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    };
    nerr(404, t, &format!("{what} {id} could not be found."))
}

fn forbidden(rule: &str) -> Response {
    nerr(
        403,
        "HTTPForbidden",
        &format!("(rule:{rule}) is disallowed by policy"),
    )
}

type Inner = fn(&Os, &Req, &mut State, &Caller) -> R;

fn handle(os: &Os, req: &Req, f: Inner) -> R {
    let mut st = os.st.lock();
    let c = os.caller(&st, req)?;
    if c.project_id.is_none() {
        return Err(forbidden("context_is_project_scoped"));
    }
    os.tick(&mut st);
    f(os, req, &mut st, &c)
}

macro_rules! handlers {
    ($($name:ident => $inner:ident;)*) => {
        $(fn $name(os: &Os, req: &Req) -> R { handle(os, req, $inner) })*
    };
}

handlers! {
    extensions => extensions_;
    extension => extension_;
    networks_list => networks_list_;
    network_create => network_create_;
    network_get => network_get_;
    network_update => network_update_;
    network_delete => network_delete_;
    subnets_list => subnets_list_;
    subnet_create => subnet_create_;
    subnet_get => subnet_get_;
    subnet_update => subnet_update_;
    subnet_delete => subnet_delete_;
    ports_list => ports_list_;
    port_create => port_create_;
    port_get => port_get_;
    port_update => port_update_;
    port_delete => port_delete_;
    sgs_list => sgs_list_;
    sg_create => sg_create_;
    sg_get => sg_get_;
    sg_delete => sg_delete_;
    sg_rules_list => sg_rules_list_;
    sg_rule_create => sg_rule_create_;
    sg_rule_get => sg_rule_get_;
    sg_rule_delete => sg_rule_delete_;
    azs_list => azs_list_;
    rbac_list => rbac_list_;
    rbac_create => rbac_create_;
    rbac_get => rbac_get_;
    rbac_update => rbac_update_;
    rbac_delete => rbac_delete_;
    quotas_list => quotas_list_;
    quota_get => quota_get_;
    quota_put => quota_put_;
    quota_delete => quota_delete_;
    quota_details => quota_details_;
    quota_default => quota_default_;
    tags_get => tags_get_;
    tags_put => tags_put_;
    tags_clear => tags_clear_;
    tag_check => tag_check_;
    tag_add => tag_add_;
    tag_delete => tag_delete_;
}

fn body_of(req: &Req, key: &str) -> Result<Value, Response> {
    let b = req.json().ok_or_else(|| bad("Malformed request body"))?;
    b.get(key)
        .filter(|v| v.is_object())
        .cloned()
        .ok_or_else(|| bad(&format!("Resource body required: '{key}'")))
}

// ---------------------------------------------------------------------------------------
// Versions, extensions

fn versions(os: &Os, _req: &Req) -> R {
    Ok(json_resp(
        StatusCode::OK,
        json!({"versions": [{"status": "CURRENT", "id": "v2.0", "links": [{"href": format!("{}/v2.0/", os.ctx.urls.network), "rel": "self"}]}]}),
    ))
}

fn version(os: &Os, _req: &Req) -> R {
    let res: Vec<Value> = [("subnet", "subnets"), ("network", "networks"), ("port", "ports"), ("security_group", "security-groups"), ("quota", "quotas")]
        .iter()
        .map(|(n, c)| json!({"links": [{"href": format!("{}/v2.0/{c}", os.ctx.urls.network), "rel": "self"}], "name": n, "collection": c}))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"resources": res})))
}

const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("agent", "agent", "The agent management extension."),
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs",
    ),
    (
        "availability_zone",
        "Availability Zone",
        "The availability zone extension.",
    ),
    (
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application",
    ),
    (
        "default-subnetpools",
        "Default Subnetpools",
        "Provides ability to mark and use a subnetpool as the default.",
    ),
    (
        "dhcp_agent_scheduler",
        "DHCP Agent Scheduler",
        "Schedule networks among dhcp agents",
    ),
    (
        "external-net",
        "Neutron external network",
        "Adds external network attribute to network resource.",
    ),
    (
        "extra_dhcp_opt",
        "Neutron Extra DHCP options",
        "Extra options configuration for DHCP.",
    ),
    (
        "filter-validation",
        "Filter parameters validation",
        "Provides validation on filter parameters.",
    ),
    (
        "multi-provider",
        "Multi Provider Network",
        "Expose mapping of virtual networks to multiple physical networks",
    ),
    (
        "net-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
    ),
    (
        "network_availability_zone",
        "Network Availability Zone",
        "Availability zone support for network.",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
    ),
    ("port-security", "Port Security", "Provides port security"),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
    ),
    (
        "provider",
        "Provider Network",
        "Expose mapping of virtual networks to physical networks",
    ),
    (
        "quotas",
        "Quota management support",
        "Expose functions for quotas management per project",
    ),
    (
        "rbac-policies",
        "RBAC Policies",
        "Allows creation and modification of policies that control tenant access to resources.",
    ),
    (
        "quota_details",
        "Quota details management support",
        "Expose functions for quotas usage statistics per project",
    ),
    (
        "security-group",
        "security-group",
        "The security groups extension.",
    ),
    (
        "sorting",
        "Sorting support",
        "Extension that indicates that sorting is enabled.",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip",
        "Enables to set tag on resources with standard attribute.",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.",
    ),
    (
        "subnet_allocation",
        "Subnet Allocation",
        "Enables allocation of subnets from a subnet pool",
    ),
    (
        "vlan-transparent",
        "Vlan Transparent",
        "Provides Vlan Transparent Networks",
    ),
];

fn extension_json(e: &(&str, &str, &str)) -> Value {
    json!({"alias": e.0, "name": e.1, "description": e.2, "updated": "2013-01-01T10:00:00-00:00", "links": []})
}

fn extensions_(_os: &Os, _req: &Req, _st: &mut State, _c: &Caller) -> R {
    Ok(json_resp(
        StatusCode::OK,
        json!({"extensions": EXTENSIONS.iter().map(extension_json).collect::<Vec<_>>()}),
    ))
}

fn extension_(_os: &Os, req: &Req, _st: &mut State, _c: &Caller) -> R {
    let alias = req.param("alias");
    let e = EXTENSIONS.iter().find(|e| e.0 == alias).ok_or_else(|| {
        nerr(
            404,
            "HTTPNotFound",
            &format!("Extension with alias {alias} does not exist"),
        )
    })?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"extension": extension_json(e)}),
    ))
}

fn azs_list_(os: &Os, req: &Req, _st: &mut State, _c: &Caller) -> R {
    let items = vec![
        json!({"name": "nova", "resource": "network", "state": "available"}),
        json!({"name": "nova", "resource": "router", "state": "available"}),
    ];
    list_response(os, req, "availability_zones", items)
}
