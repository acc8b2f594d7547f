//! The API's own description: an OpenAPI 3.1 document of all of `/api/v1`
//! (`GET /api/v1/openapi.json`) and a page to browse it (`GET /api/v1/docs`).
//!
//! The handlers (in `http.rs`, `api.rs` and the feature modules: `requests`, `ipam`,
//! `outbound`, `usage`) build their JSON with `json!`, so the document is written here, in one place, rather than
//! derived from them: each route has a small documentation function in `paths`
//! carrying `#[utoipa::path]`, and each body is a `ToSchema` struct in [`schemas`]
//! that mirrors, key for key, the JSON its handler builds (response objects forbid
//! other keys, so a handler that grows a field the document lacks fails the schema
//! test). What every route shares is added once by `Shared`: the bearer security
//! scheme, required everywhere, and the answers of the bearer middleware and the store
//! (401, 403 for a read-only token's writes, 429 with `Retry-After`, 503). Every 4xx
//! and 5xx body is `application/problem+json` ([`schemas::Problem`]).
//!
//! The page is Swagger UI 5.36.0 (`assets/apidoc/`, Apache-2.0, vendored unmodified from
//! the npm registry and compiled into the binary): nothing is fetched from elsewhere,
//! and the page's Content-Security-Policy allows only this origin.
//!
//! `scripts/clients/schemathesis_check.py` tests a running server against this
//! document (the `schema` phase of `crates/strata-cli/tests/api.rs` runs it on the
//! demo); the unit tests below check that it names every route the API's router
//! registers, and no other.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder, Type,
};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The document's text, built once.
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the document: {e}\"}}"))
    })
}

/// The document as a typed value (tests, tools).
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi_json() -> Response {
    let mut r = document_json().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Only this origin: the page, its scripts and style sheet, the document it fetches and
/// the API it tries requests against. No inline script or style, no frames, no plugins.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page: Swagger UI over `openapi.json`. Relative URLs, so it works behind a proxy
/// that moves `/api/v1`.
const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>strata API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<script src="docs/swagger-ui-bundle.js" defer></script>
<script src="docs/strata-docs.js" defer></script>
</head>
<body>
<div id="swagger-ui"></div>
<noscript>The API page needs JavaScript; the document itself is
<a href="openapi.json">openapi.json</a>.</noscript>
</body>
</html>
"#;

/// What the page loads, by name (`assets/apidoc/`, see its README): Swagger UI 5.36.0
/// as published, and the script that starts it.
const DOCS_ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/apidoc/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/apidoc/swagger-ui.css"),
    ),
    (
        "strata-docs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/apidoc/strata-docs.js"),
    ),
];

fn with_headers(mut r: Response, kind: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    r
}

/// `GET /api/v1/docs`.
pub async fn docs() -> Response {
    with_headers(DOCS_HTML.into_response(), "text/html; charset=utf-8")
}

/// `GET /api/v1/docs/{asset}`.
pub async fn docs_asset(Path(name): Path<String>) -> Response {
    let Some((_, kind, bytes)) = DOCS_ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return crate::http::Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("the API page has no asset {name:?}"),
        )
        .into_response();
    };
    let mut r = with_headers(bytes.into_response(), kind);
    // The same bytes for the life of the binary: let the browser keep them a while.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    r
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "strata API",
        description = "The API of `strata serve`: tokens and teams, the audit log, the fleet's inventory as the last applied commit compiled it, the GitOps loop (commits, plans, approvals), workflows and day-2 operations.\n\nEvery route needs `Authorization: Bearer <token>`: an API token (`strata_<id>_<secret>`, made with `POST /api/v1/tokens`; the first admin token is written to `--admin-token-file` on first start) or, where OIDC is configured, a JWT from the identity provider. Another team's object answers 404 like a missing one. Lists are bounded (`limit`) and paged. Errors are `application/problem+json` with a stable `code`. Every response carries `X-Request-Id`.",
        license(name = "Apache-2.0 OR MIT"),
    ),
    paths(
        paths::whoami,
        paths::list_tokens,
        paths::create_token,
        paths::revoke_token,
        paths::list_teams,
        paths::get_team,
        paths::list_audit,
        paths::verify_audit,
        paths::list_dcs,
        paths::get_dc,
        paths::list_racks,
        paths::list_machines,
        paths::get_machine,
        paths::list_vms,
        paths::list_prefixes,
        paths::list_commits,
        paths::get_commit,
        paths::get_commit_summary,
        paths::list_plans,
        paths::get_plan,
        paths::approve_plan,
        paths::list_workflows,
        paths::get_workflow,
        paths::cancel_workflow,
        paths::upgrade_proxmox,
        paths::decommission_machine,
        paths::sync,
        paths::list_requests,
        paths::create_request,
        paths::get_request_policy,
        paths::put_request_policy,
        paths::get_request,
        paths::release_request,
        paths::approve_request,
        paths::list_webhooks,
        paths::create_webhook,
        paths::get_webhook,
        paths::delete_webhook,
        paths::list_deliveries,
        paths::get_usage,
        paths::list_pools,
        paths::get_pool,
        paths::list_allocations,
        paths::allocate,
        paths::get_allocation,
        paths::release_allocation,
        paths::openapi_document,
        paths::docs_page,
        paths::docs_asset,
    ),
    components(schemas(schemas::Problem)),
    tags(
        (name = "access", description = "Who is calling, API tokens, teams and the audit log."),
        (name = "inventory", description = "The fleet as the last applied commit compiled it: DCs, racks, machines, VMs and IP prefixes. Any authenticated caller reads them."),
        (name = "gitops", description = "Commits the server processed, the plans it made and their approvals (fleet grants only)."),
        (name = "workflows", description = "Durable workflows and the day-2 operations that start them."),
        (name = "requests", description = "Self-service: a team asks for VMs, bare-metal machines or GPU instances within its quota, and releases them."),
        (name = "webhooks", description = "Outbound webhooks: the audit log's records pushed, signed and in order, to other systems."),
        (name = "usage", description = "What each team held, for billing."),
        (name = "ipam", description = "IP address management: pools from the applied fleet, addresses and prefixes handed out to teams."),
        (name = "meta", description = "This document and the page that shows it."),
    ),
    security(("bearer" = [])),
    modifiers(&Shared),
)]
struct ApiDoc;

/// What every operation shares: the security scheme and the answers that the bearer
/// middleware and the store give on any route.
struct Shared;

impl utoipa::Modify for Shared {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("strata_<id>_<secret>, or an OIDC JWT")
                    .description(Some(
                        "An API token or, where OIDC is configured, an ID token of the identity provider.",
                    ))
                    .build(),
            ),
        );
        for item in doc.paths.paths.values_mut() {
            let ops = [
                (&mut item.get, true),
                (&mut item.post, false),
                (&mut item.put, false),
                (&mut item.patch, false),
                (&mut item.delete, false),
            ];
            for (op, reads) in ops {
                let Some(op) = op.as_mut() else { continue };
                let r = &mut op.responses.responses;
                r.entry("401".into()).or_insert_with(|| {
                    problem(
                        "`unauthenticated`: no bearer token, or one that is malformed, unknown, expired or revoked.",
                    )
                });
                if !reads {
                    r.entry("403".into()).or_insert_with(|| {
                        problem(
                            "`insufficient-scope`: the token has the read scope only; `forbidden`: the caller's role does not allow this.",
                        )
                    });
                }
                r.entry("429".into())
                    .or_insert_with(|| rate_limited().into());
                r.entry("503".into()).or_insert_with(|| {
                    problem("`store-unavailable`: the database did not answer; try again.")
                });
            }
        }
    }
}

/// A problem response (referencing [`schemas::Problem`]).
fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

fn rate_limited() -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description("`rate-limited`: too many requests from this caller; retry after `Retry-After` seconds.")
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                ))
                .description(Some("Seconds to wait."))
                .build(),
        )
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// The bodies, as the handlers build them.
pub mod schemas {
    #![allow(dead_code)]

    use serde_json::Value;
    use utoipa::ToSchema;
    use utoipa::openapi::extensions::Extensions;
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};

    /// An error (RFC 9457 problem details), `application/problem+json`.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Problem {
        /// `https://strata.invalid/problems/<code>`.
        #[serde(rename = "type")]
        pub kind: String,
        /// The status's reason phrase.
        pub title: String,
        #[schema(minimum = 400, maximum = 599)]
        pub status: u16,
        /// Stable, machine-readable: `not-found`, `bad-limit`, `forbidden`, ...
        pub code: String,
        /// What happened, for a person.
        pub detail: String,
    }

    /// A role in a team (or in the fleet, team `*`), weakest first.
    #[derive(ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum Role {
        Viewer,
        Member,
        Operator,
        Admin,
    }

    #[derive(ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum Scope {
        Read,
        Write,
    }

    /// A role in one team; team `*` is the whole fleet.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Grant {
        pub team: String,
        pub role: Role,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Scopes {
        pub read: bool,
        pub write: bool,
    }

    /// The caller.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Whoami {
        /// `token:<id>` or `oidc:<subject>`.
        pub actor: String,
        pub grants: Vec<Grant>,
        pub scopes: Scopes,
    }

    /// An API token (never its secret).
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Token {
        pub id: String,
        pub name: String,
        pub team: String,
        pub role: Role,
        pub scopes: Vec<Scope>,
        /// `token:<id>`, `oidc:<subject>` or `strata serve` (the first admin token).
        pub created_by: String,
        /// Milliseconds since the Unix epoch, as every `_ms` field.
        pub created_ms: i64,
        /// 0: never expires.
        pub expires_ms: i64,
        /// 0: not revoked.
        pub revoked_ms: i64,
        /// 0: never used.
        pub last_used_ms: i64,
    }

    /// A new token, with the whole bearer token: it is shown this once.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct IssuedToken {
        /// `strata_<id>_<secret>`: send it as `Authorization: Bearer <token>`.
        pub token: String,
        pub id: String,
        pub name: String,
        pub team: String,
        pub role: Role,
        pub scopes: Vec<Scope>,
        pub created_by: String,
        pub created_ms: i64,
        pub expires_ms: i64,
        pub revoked_ms: i64,
        pub last_used_ms: i64,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct TokenPage {
        pub items: Vec<Token>,
        /// Pass as `cursor` for the next page; null on the last.
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    /// What to make. A caller makes tokens only for teams it administers, never with a
    /// stronger role than its own; fleet tokens (team `*`) and tokens that never
    /// expire need a fleet admin.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(examples(json!({"name": "ci", "team": "ml-research", "role": "member", "scopes": ["read"], "expires_in_s": 86400})))]
    pub struct TokenRequest {
        /// 1 to 100 characters, not all of them white space.
        #[schema(
            min_length = 1,
            max_length = 100,
            pattern = r"[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
        )]
        pub name: String,
        /// A DNS label (lowercase letters, digits, `-`), or `*` for the fleet.
        #[schema(pattern = r"^(\*|[a-z0-9-]{1,63})$")]
        pub team: String,
        pub role: Role,
        /// `read`, or `read` and `write` (the default). A write token also reads.
        #[schema(schema_with = scopes_request)]
        pub scopes: Option<Vec<Scope>>,
        /// Lifetime in seconds, at most ten years; 0: never expires (fleet admins
        /// only); null or absent: 90 days.
        #[schema(maximum = 315_360_000)]
        pub expires_in_s: Option<u64>,
    }

    /// `scopes` of a token request: null, or an array of `read`/`write` that
    /// holds `read`. JSON Schema's `contains` has no field in utoipa's builder, so it
    /// goes in through the (flattened) extensions map, built directly because its
    /// builder would prefix the key with `x-`.
    fn scopes_request() -> utoipa::openapi::schema::Array {
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["read", "write"])),
            )
            .min_items(Some(1))
            .description(Some(
                "`[\"read\"]`, or `[\"read\", \"write\"]` (the default): a write token also needs `read`.",
            ))
            .extensions(Some(Extensions::from_iter([(
                "contains",
                serde_json::json!({"const": "read"}),
            )])))
            .build()
    }

    /// A team's resource quota.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Quota {
        pub instances: u32,
        pub cores: u32,
        pub ram_mib: u64,
        pub gpus: u32,
    }

    /// A team of the applied fleet.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Team {
        pub name: String,
        /// Keystone user names, sorted.
        pub members: Vec<String>,
        /// Tenants whose networks the team's project uses.
        pub tenants: Vec<String>,
        /// GPU flavors the team's project may boot.
        pub gpu_flavors: Vec<String>,
        pub quota: Quota,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct TeamPage {
        pub items: Vec<Team>,
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    /// One record of the hash-chained audit log.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct AuditEntry {
        pub seq: i64,
        pub at_ms: i64,
        pub actor: String,
        pub team: String,
        /// `token.create`, `plan.approve`, `workflow.cancel`, ...
        pub action: String,
        /// `token/<id>`, `plan/<hash>`, ...
        pub object: String,
        /// The object before the change (any JSON; null when it did not exist).
        pub before: Value,
        /// The object after the change (any JSON).
        pub after: Value,
        /// The `X-Request-Id` of the request that made the change.
        pub request_id: String,
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct AuditPage {
        pub items: Vec<AuditEntry>,
        /// Pass as `before` for the next page; null on the last.
        #[schema(required = true)]
        pub next_before: Option<i64>,
    }

    /// The audit chain, walked: intact.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct AuditChain {
        pub entries: i64,
        /// The last record's hash (compare it with a copy kept elsewhere).
        pub head: String,
        /// Null: every record's hash and link hold.
        #[schema(required = true)]
        pub broken_at: Option<i64>,
        #[schema(required = true)]
        pub reason: Option<String>,
    }

    /// The audit chain is broken: a problem (`audit-chain-broken`) that also carries
    /// the chain's fields.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct BrokenAuditChain {
        #[serde(rename = "type")]
        pub kind: String,
        pub title: String,
        #[schema(minimum = 409, maximum = 409)]
        pub status: u16,
        pub code: String,
        pub detail: String,
        pub entries: i64,
        pub head: String,
        /// The first record whose hash or link does not hold.
        pub broken_at: i64,
        pub reason: String,
    }

    /// A DC of the applied fleet, with counts.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct DcSummary {
        pub name: String,
        pub region: String,
        /// The DC's supernet (CIDR).
        pub supernet: String,
        pub racks: u64,
        pub machines: u64,
        pub vms: u64,
        pub switches: u64,
        /// GPUs in the DC's machines.
        pub gpus: u64,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct DcPage {
        /// The applied commit the inventory comes from.
        pub commit: String,
        pub items: Vec<DcSummary>,
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    /// An infrastructure VLAN's role.
    #[derive(ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum InfraVlan {
        Provisioning,
        Bmc,
        Management,
        Storage,
        CephPublic,
        CephCluster,
        Corosync,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Vlan {
        pub role: InfraVlan,
        pub vid: u16,
        pub vni: u32,
        /// CIDR.
        pub subnet: String,
        /// The leaves' anycast gateway address.
        pub gateway: String,
        pub mtu: u32,
    }

    /// A DC with its VLANs.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Dc {
        pub name: String,
        pub region: String,
        pub supernet: String,
        pub racks: u64,
        pub machines: u64,
        pub vms: u64,
        pub switches: u64,
        pub gpus: u64,
        pub vlans: Vec<Vlan>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Rack {
        pub dc: String,
        pub name: String,
        pub units: u32,
        /// The availability zone, if the rack is in one.
        #[schema(required = true)]
        pub az: Option<String>,
        /// The rack's leaf switches.
        pub leaves: Vec<String>,
        /// Machines in the rack.
        pub machines: u64,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RackPage {
        pub items: Vec<Rack>,
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(rename_all = "kebab-case")]
    pub enum MachineRole {
        Proxmox,
        OpenstackControl,
        OpenstackNetwork,
        OpenstackCompute,
        OpenstackStorage,
    }

    #[derive(ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum BmcDriver {
        Ipmi,
        Redfish,
    }

    /// The machine's BMC (its credentials are never shown).
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Bmc {
        pub address: String,
        pub driver: BmcDriver,
    }

    /// The GPUs of the machine's hardware profile.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Gpu {
        pub model: String,
        pub count: u32,
        /// PCI vendor id (hex).
        pub vendor_id: String,
        /// PCI device id (hex).
        pub device_id: String,
    }

    /// A machine of the applied fleet.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Machine {
        pub dc: String,
        pub hostname: String,
        pub fqdn: String,
        pub serial: String,
        pub rack: String,
        pub slot: u32,
        /// The hardware profile's name.
        pub profile: String,
        pub role: MachineRole,
        #[schema(required = true)]
        pub az: Option<String>,
        /// The Proxmox cluster (role `proxmox`).
        #[schema(required = true)]
        pub cluster: Option<String>,
        pub bmc: Bmc,
        /// Null when the profile is unknown.
        #[schema(required = true)]
        pub cpu_cores: Option<u32>,
        #[schema(required = true)]
        pub memory_gib: Option<u32>,
        pub gpu_count: u32,
        /// At most one entry (a profile has one GPU model).
        pub gpus: Vec<Gpu>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct MachinePage {
        pub items: Vec<Machine>,
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    /// One step of a workflow, with its evidence.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Step {
        pub idx: u32,
        pub name: String,
        /// `pending`, `running`, `done`, `failed`, ...
        pub state: String,
        pub attempts: u32,
        /// What the step found and did (any JSON; null before it ran).
        pub evidence: Value,
        #[schema(required = true)]
        pub error: Option<String>,
    }

    /// The machine's latest onboarding: commissioning facts and validation.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Onboarding {
        pub workflow: String,
        pub state: String,
        pub steps: Vec<Step>,
    }

    /// A machine with the evidence of its latest onboarding.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct MachineDetail {
        pub dc: String,
        pub hostname: String,
        pub fqdn: String,
        pub serial: String,
        pub rack: String,
        pub slot: u32,
        pub profile: String,
        pub role: MachineRole,
        #[schema(required = true)]
        pub az: Option<String>,
        #[schema(required = true)]
        pub cluster: Option<String>,
        pub bmc: Bmc,
        #[schema(required = true)]
        pub cpu_cores: Option<u32>,
        #[schema(required = true)]
        pub memory_gib: Option<u32>,
        pub gpu_count: u32,
        pub gpus: Vec<Gpu>,
        /// Null: never onboarded by this server.
        #[schema(required = true)]
        pub onboarding: Option<Onboarding>,
    }

    /// A VM of the applied fleet.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Vm {
        pub dc: String,
        pub name: String,
        pub hostname: String,
        /// The Proxmox cluster it runs on.
        pub cluster: String,
        pub cores: u32,
        pub memory_mib: u64,
        pub disk_gb: u64,
        /// The storage pool of its disk.
        pub storage: String,
        /// HA-managed.
        pub ha: bool,
        pub tags: Vec<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct VmPage {
        pub items: Vec<Vm>,
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    pub enum VlanKind {
        #[serde(rename = "vlan")]
        Vlan,
    }

    #[derive(ToSchema)]
    pub enum TenantKind {
        #[serde(rename = "tenant")]
        Tenant,
    }

    /// An infrastructure VLAN's subnet.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct VlanPrefix {
        pub dc: String,
        pub kind: VlanKind,
        /// The VLAN's role.
        pub name: String,
        /// CIDR.
        pub prefix: String,
        pub gateway: String,
        /// The VLAN id.
        pub vlan: u16,
    }

    /// A tenant network's subnet in a DC.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct TenantPrefix {
        pub dc: String,
        pub kind: TenantKind,
        pub tenant: String,
        pub network: String,
        /// CIDR.
        pub subnet: String,
        pub gateway: String,
    }

    /// An IP prefix of the fleet: a VLAN's subnet or a tenant subnet.
    #[derive(ToSchema)]
    #[serde(untagged)]
    pub enum Prefix {
        Vlan(VlanPrefix),
        Tenant(TenantPrefix),
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PrefixPage {
        pub items: Vec<Prefix>,
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    /// How many resources a plan creates, adopts, updates and deletes.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Counts {
        pub create: u64,
        pub adopt: u64,
        pub update: u64,
        pub delete: u64,
    }

    /// A commit the server processed (without its result's bulk).
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CommitItem {
        pub sha: String,
        pub branch: String,
        /// `planning`, `waiting`, `applying`, `applied`, `invalid`, `failed`, `superseded`, ...
        pub state: String,
        pub seen_ms: i64,
        pub updated_ms: i64,
        /// The hash of the plan made for it; null before (or without) one.
        #[schema(required = true)]
        pub plan_hash: Option<String>,
        #[schema(required = true)]
        pub counts: Option<Counts>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CommitPage {
        pub items: Vec<CommitItem>,
        /// Pass as `before_ms` for the next page; null on the last.
        #[schema(required = true)]
        pub next_before_ms: Option<i64>,
    }

    /// A commit the server processed, with its whole result.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Commit {
        pub sha: String,
        pub branch: String,
        pub seen_ms: i64,
        pub updated_ms: i64,
        pub state: String,
        /// The decision, plan hash, counts, summary, diagnostics and outcome (any JSON;
        /// null until planned).
        pub result: Value,
    }

    /// A plan the server made and saved.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Plan {
        /// SHA-256 of the saved plan: what an approval binds to.
        pub hash: String,
        pub commit_sha: String,
        /// `commit` or `reconcile`.
        pub origin: String,
        pub created_ms: i64,
        /// `waiting`, `approved`, `applied`, `superseded`, `blocked`, ...
        pub state: String,
        /// Why the policy did not let it apply on its own.
        pub reasons: Vec<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PlanPage {
        pub items: Vec<Plan>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Approval {
        pub id: String,
        pub plan_hash: String,
        pub approver: String,
        pub at_ms: i64,
        pub outcome: String,
        pub detail: String,
    }

    /// A plan with its steps, conflicts and approvals.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PlanDetail {
        pub plan: Plan,
        /// The saved plan's steps (format `strata-plan/1`; any JSON).
        pub steps: Value,
        /// What the plan could not reconcile (any JSON).
        pub conflicts: Value,
        pub approvals: Vec<Approval>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Approved {
        pub approved: bool,
        pub plan_hash: String,
        /// The apply workflow the approval started.
        pub workflow: String,
    }

    /// A workflow, in a list.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct WorkflowItem {
        pub id: String,
        /// `commit`, `reconcile`, `onboard`, `upgrade`, `decommission`, `request`, ...
        pub kind: String,
        pub subject: String,
        /// `running`, `done`, `failed`, `cancelled`, `stopped`, ...
        pub state: String,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct WorkflowPage {
        pub items: Vec<WorkflowItem>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Workflow {
        pub id: String,
        /// The idempotency key it was started with.
        pub key: String,
        pub kind: String,
        pub subject: String,
        pub state: String,
        pub steps: Vec<Step>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Event {
        pub at_ms: i64,
        pub kind: String,
        pub detail: String,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct WorkflowDetail {
        pub workflow: Workflow,
        pub events: Vec<Event>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Cancelled {
        pub cancelled: bool,
        pub workflow: String,
    }

    /// A workflow was started.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Started {
        /// Follow it at `GET /api/v1/workflows/{id}`.
        pub workflow: String,
    }

    /// Start a rolling upgrade of the DC's Proxmox cluster.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(examples(json!({"version": "9.1.2", "gate_timeout_s": 600})))]
    pub struct UpgradeRequest {
        /// The `pve-manager` version every node must run afterwards (letters,
        /// digits, `. - _ + ~`).
        #[schema(pattern = r"^[A-Za-z0-9._+~-]{1,64}$")]
        pub version: String,
        /// How long a node may take to come back healthy after its upgrade, in
        /// seconds (default 600; held within 1 to 7200).
        #[serde(default)]
        pub gate_timeout_s: u64,
    }

    /// Decommission a machine.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(examples(json!({"reason": "failed DIMMs, replaced by fra1-r02-cmp21", "rma": true})))]
    pub struct DecommissionRequest {
        /// Why (goes into MAAS's description of the machine and the evidence): 1 to
        /// 500 characters, not all of them white space.
        #[schema(
            min_length = 1,
            max_length = 500,
            pattern = r"[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
        )]
        pub reason: String,
        /// Send it back to the vendor (tag `strata-rma`, marked broken) rather than
        /// retire it (default false).
        #[serde(default)]
        pub rma: bool,
        /// Overwrite the disks (MAAS `secure_erase`) instead of a quick erase
        /// (default false).
        #[serde(default)]
        pub secure_erase: bool,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Polling {
        pub polling: bool,
    }

    // --- Self-service requests

    #[derive(ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum RequestKind {
        Vm,
        Metal,
        Gpu,
    }

    /// What a team asks for. Which fields apply depends on `kind`: `vm` takes
    /// `cores`, `memory_mib` and `disk_gb`; `metal` a hardware `profile`; `gpu` a
    /// `flavor`, or `gpu_model` and `gpus`, and an `image`. Every request counts
    /// against the team's quota with the team's live requests.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(examples(json!({"kind": "gpu", "team": "ml-research", "name": "train-1", "gpu_model": "NVIDIA H100 SXM5 80GB", "gpus": 1, "count": 2, "anti_affinity": true, "expires_in_s": 86400})))]
    pub struct NewRequest {
        pub kind: RequestKind,
        /// The team (`member` role needed).
        #[schema(pattern = r"^[a-z0-9-]{1,63}$")]
        pub team: String,
        /// A label for people (a DNS label of at most 40 characters); objects are
        /// named after the request's id.
        #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")]
        pub name: String,
        /// Only this DC (default: wherever it fits best).
        pub dc: Option<String>,
        /// `vm`: 1 to 256.
        pub cores: Option<u32>,
        /// `vm`: 256 to 4194304.
        pub memory_mib: Option<u64>,
        /// `vm`: 1 to 65536 (default 32).
        pub disk_gb: Option<u64>,
        /// `metal`: a hardware profile of the fleet.
        pub profile: Option<String>,
        /// `gpu`: a GPU flavor the team may boot.
        pub flavor: Option<String>,
        /// `gpu`: with `gpus` (per instance), instead of `flavor`.
        pub gpu_model: Option<String>,
        pub gpus: Option<u32>,
        /// `gpu`: a Glance image (default: the newest Ubuntu).
        pub image: Option<String>,
        /// Instances, 1 to 32 (default 1).
        pub count: Option<u32>,
        /// Each instance on another node, zone or host.
        pub anti_affinity: Option<bool>,
        /// When to release it (RFC 3339, in the future); or `expires_in_s`.
        pub expires_at: Option<String>,
        /// Seconds from now, 1 to ten years.
        pub expires_in_s: Option<u64>,
        /// Tenant networks (`{tenant}-{network}`) of the team's tenants (default:
        /// the first routed one).
        pub networks: Option<Vec<String>>,
    }

    /// What a request counts against its team's quota.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Usage {
        pub instances: i64,
        pub cores: i64,
        pub ram_mib: i64,
        pub gpus: i64,
    }

    /// A request was accepted.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RequestAccepted {
        /// `req-` and 12 hexadecimal digits.
        pub id: String,
        /// Its workflow (kind `request`).
        pub workflow: String,
        /// `approval` (waiting for an operator) or `provisioning`.
        pub state: String,
        pub approval_required: bool,
        pub usage: Usage,
        #[schema(required = true)]
        pub expires_at: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RequestApproval {
        /// It asks for more GPUs than the policy's threshold.
        pub required: bool,
        #[schema(required = true)]
        pub approved_by: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RequestStep {
        pub name: String,
        pub state: String,
        pub attempts: u32,
        #[schema(required = true)]
        pub error: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RequestWorkflow {
        pub id: String,
        pub state: String,
        pub steps: Vec<RequestStep>,
    }

    /// A request and what became of it.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Request {
        pub id: String,
        pub team: String,
        pub name: String,
        pub kind: RequestKind,
        /// `approval`, `provisioning`, `ready`, `failed`, `releasing`,
        /// `release-failed` or `released`.
        pub state: String,
        /// Why it is in that state (empty when there is nothing to say).
        pub detail: String,
        /// Instances asked for.
        pub count: Value,
        /// Where it was placed; null until placed.
        #[schema(required = true)]
        pub dc: Option<String>,
        /// The request as accepted, resolved against the fleet (any JSON object).
        pub spec: Value,
        pub usage: Usage,
        /// Where each instance goes (any JSON; null until placed).
        pub placement: Value,
        /// What was made: VMs, machines or servers (any JSON; null until made).
        pub resources: Value,
        pub approval: RequestApproval,
        #[schema(required = true)]
        pub workflow: Option<RequestWorkflow>,
        /// Null until a release started.
        #[schema(required = true)]
        pub release_workflow: Option<RequestWorkflow>,
        pub created_by: String,
        /// RFC 3339.
        pub created_at: String,
        pub updated_at: String,
        /// Null: never expires.
        #[schema(required = true)]
        pub expires_at: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RequestPage {
        pub items: Vec<Request>,
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RequestReleasing {
        pub id: String,
        /// `releasing`.
        pub state: String,
        pub release_workflow: String,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RequestApproved {
        pub id: String,
        pub approved: bool,
        pub workflow: String,
    }

    /// The requests policy.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(examples(json!({"approval_gpus": 8})))]
    pub struct RequestPolicy {
        /// Requests asking for more GPUs than this wait for an operator's approval
        /// (0 to 100000; default 8).
        pub approval_gpus: i64,
    }

    // --- Outbound webhooks

    /// Subscribe to the audit log's records: each matching record is `POST`ed to
    /// `url`, signed (`X-Strata-Signature-256: sha256=<HMAC-SHA256 of the body>`), in
    /// order, retried until delivered.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(examples(json!({"url": "https://cmdb.example.net/strata", "secret": "a long shared secret", "events": ["ip.*", "machine.decommission"], "team": "ml-research"})))]
    pub struct NewWebhook {
        /// `http://` or `https://`, without credentials or a fragment; at most 2000
        /// characters.
        #[schema(max_length = 2000)]
        pub url: String,
        /// The signing secret: 16 to 256 characters, without surrounding white space.
        /// Never shown again.
        #[schema(min_length = 16, max_length = 256)]
        pub secret: String,
        /// 1 to 32 action patterns: `*`, `prefix.*` or an action (`ip.allocate`).
        #[schema(min_items = 1, max_items = 32)]
        pub events: Vec<String>,
        /// Only this team's records (its admins); absent or null: every team's (fleet
        /// admins).
        pub team: Option<String>,
    }

    /// A webhook subscription (never its secret).
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Webhook {
        /// `wh_` and 16 hexadecimal digits.
        pub id: String,
        pub url: String,
        pub events: Vec<String>,
        /// Null: every team's records.
        #[schema(required = true)]
        pub team: Option<String>,
        pub created_by: String,
        /// RFC 3339.
        pub created_at: String,
        /// The last audit record (`seq`) it is done with.
        pub cursor_seq: i64,
        /// Records delivered so far.
        pub delivered: i64,
        /// The record after the cursor has failed at least once.
        pub failing: bool,
        /// Failed attempts at that record.
        pub attempts: i64,
        #[schema(required = true)]
        pub next_attempt_at: Option<String>,
        #[schema(required = true)]
        pub last_error: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct WebhookPage {
        pub items: Vec<Webhook>,
    }

    /// One delivery attempt.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Delivery {
        pub id: String,
        /// `X-Strata-Delivery`: the same on every retry of one record.
        pub delivery: String,
        pub seq: i64,
        pub action: String,
        pub attempt: i64,
        /// RFC 3339.
        pub at: String,
        pub duration_ms: i64,
        /// `delivered` or `failed`.
        pub outcome: String,
        /// The receiver's HTTP status; null when it did not answer.
        #[schema(required = true)]
        pub http_status: Option<i64>,
        #[schema(required = true)]
        pub error: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct DeliveryPage {
        pub subscription: Webhook,
        /// Newest first.
        pub items: Vec<Delivery>,
    }

    // --- Usage

    /// What one team held of one kind of resource during the window.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct UsageLine {
        pub team: String,
        /// `vm`, `metal`, `gpu`, `ip` or `prefix`.
        pub kind: String,
        /// GPU-hours are split by GPU model; null when none or unknown.
        #[schema(required = true)]
        pub gpu_model: Option<String>,
        /// How many requests or allocations it sums.
        pub count: u64,
        pub core_hours: f64,
        pub gpu_hours: f64,
        pub ram_gib_hours: f64,
        pub storage_gb_hours: f64,
        pub address_days: f64,
    }

    /// Usage for billing.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct UsageReport {
        /// Null: every team.
        #[schema(required = true)]
        pub team: Option<String>,
        /// The window (RFC 3339).
        pub from: String,
        pub to: String,
        pub generated_at: String,
        /// Lines per kind.
        pub kinds: std::collections::HashMap<String, u64>,
        pub items: Vec<UsageLine>,
    }

    // --- IP address management

    #[derive(ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum PoolKind {
        /// Single addresses (a VLAN's subnet).
        Addresses,
        /// Aligned prefixes (a DC's supernet).
        Prefixes,
    }

    /// An IP pool: `{dc}.{vlan}` (addresses) or `{dc}.supernet` (prefixes), from the
    /// applied fleet, with what the fleet uses reserved.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Pool {
        pub id: String,
        /// CIDR.
        pub cidr: String,
        pub kind: PoolKind,
        /// The first and last address API allocations use.
        pub range_first: String,
        pub range_last: String,
        /// How many units the range holds: addresses, or blocks of `max_prefix_len`.
        pub range_size: u64,
        /// The longest prefix handed out (32 or 128 for an `addresses` pool).
        pub max_prefix_len: u8,
        /// What the compiled fleet uses (CIDRs), never handed out.
        pub reserved: Vec<String>,
        /// How many allocations the pool has.
        pub allocations: u64,
        pub created_ms: i64,
        pub updated_ms: i64,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PoolPage {
        pub items: Vec<Pool>,
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    /// An address (or prefix) the API handed out.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Allocation {
        pub id: String,
        pub pool: String,
        /// An address with its pool's prefix length (`10.1.16.130/22`), or the
        /// allocated prefix (`10.64.3.0/24`).
        pub address: String,
        pub team: String,
        pub description: String,
        pub created_ms: i64,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct AllocationPage {
        pub items: Vec<Allocation>,
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    /// What to allocate.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(examples(json!({"team": "ml-research", "description": "inference VIP"})))]
    pub struct AllocateRequest {
        /// The team it belongs to (`member` role needed).
        pub team: String,
        /// At most 200 characters.
        #[serde(default)]
        #[schema(max_length = 200)]
        pub description: String,
        /// A `prefixes` pool: the prefix length wanted; absent for an `addresses` pool.
        pub prefix_len: Option<u8>,
    }
}

/// One documentation function per route; the handlers are in `http.rs`, `api.rs`,
/// `requests.rs`, `ipam.rs`, `outbound.rs` and `usage.rs`.
mod paths {
    #![allow(dead_code)]

    use super::PROBLEM_JSON;
    use super::schemas::*;

    /// Who the caller is
    ///
    /// The actor, its grants and its scopes.
    #[utoipa::path(get, path = "/api/v1/whoami", tag = "access",
        responses((status = 200, description = "The caller.", body = Whoami)))]
    fn whoami() {}

    /// List API tokens
    ///
    /// A team admin sees its teams' tokens; everyone sees their own.
    #[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
            ("team" = Option<String>, Query, description = "Only this team's tokens."),
        ),
        responses(
            (status = 200, description = "A page of tokens.", body = TokenPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_tokens() {}

    /// Make an API token
    ///
    /// The answer holds the whole token, shown this once.
    #[utoipa::path(post, path = "/api/v1/tokens", tag = "access",
        request_body = TokenRequest,
        responses(
            (status = 201, description = "Made.", body = IssuedToken,
                headers(("Location" = String, description = "`/api/v1/tokens/{id}`"))),
            (status = 400, description = "`bad-body`: not JSON of this shape.", body = Problem, content_type = PROBLEM_JSON),
            (status = 403, description = "`forbidden`: not an admin of the team, a stronger role than the caller's, or a never-expiring token by other than a fleet admin; `insufficient-scope`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 422, description = "`bad-token-name`, `bad-team`, `bad-scopes`, `bad-expiry`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 500, description = "`internal`: the token could not be hashed.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn create_token() {}

    /// Revoke an API token
    ///
    /// Its owner or an admin of its team. Takes effect at once.
    #[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access",
        params(("id" = String, Path, description = "The token's id (16 hexadecimal digits).")),
        responses(
            (status = 204, description = "Revoked."),
            (status = 404, description = "`token-not-found` (also another team's token).", body = Problem, content_type = PROBLEM_JSON),
            (status = 409, description = "`token-revoked`: revoked already.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn revoke_token() {}

    /// List teams
    ///
    /// The teams of the applied fleet that the caller has a grant in.
    #[utoipa::path(get, path = "/api/v1/teams", tag = "access",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ),
        responses(
            (status = 200, description = "A page of teams.", body = TeamPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_teams() {}

    /// Get a team
    #[utoipa::path(get, path = "/api/v1/teams/{team}", tag = "access",
        params(
            ("team" = String, Path, pattern = r"^[a-z0-9][a-z0-9-]*$", example = "ml-research", description = "The team's name."),
            ("If-None-Match" = Option<String>, Header, description = "An `ETag` this route gave: 304 while it still holds."),
        ),
        responses(
            (status = 200, description = "The team.", body = Team,
                headers(("ETag" = String, description = "Strong validator of the body."))),
            (status = 304, description = "Not modified.", headers(("ETag" = String))),
            (status = 404, description = "`team-not-found` (also a team the caller has no grant in).", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_team() {}

    /// Read the audit log
    ///
    /// Newest first. Fleet viewers read all of it; a team's admins their team's records.
    #[utoipa::path(get, path = "/api/v1/audit", tag = "access",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("team" = Option<String>, Query, description = "Only this team's records (required without a fleet grant)."),
            ("before" = Option<i64>, Query, description = "Records older than this `seq` (`next_before` of the previous page); 0 or absent: from the newest."),
        ),
        responses(
            (status = 200, description = "A page of records.", body = AuditPage),
            (status = 400, description = "`bad-query`, `bad-limit`, `team-required`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 403, description = "`forbidden`: the team's records need its admin role.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_audit() {}

    /// Verify the audit chain
    ///
    /// Walks every record now, recomputing each hash (fleet admins).
    #[utoipa::path(post, path = "/api/v1/audit/verify", tag = "access",
        responses(
            (status = 200, description = "The chain holds.", body = AuditChain),
            (status = 403, description = "`forbidden`: needs the fleet admin role.", body = Problem, content_type = PROBLEM_JSON),
            (status = 409, description = "`audit-chain-broken`: a record's hash or link does not hold.", body = BrokenAuditChain, content_type = PROBLEM_JSON),
        ))]
    fn verify_audit() {}

    /// List DCs
    #[utoipa::path(get, path = "/api/v1/dcs", tag = "inventory",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ),
        responses(
            (status = 200, description = "A page of DCs.", body = DcPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_dcs() {}

    /// Get a DC
    #[utoipa::path(get, path = "/api/v1/dcs/{dc}", tag = "inventory",
        params(
            ("dc" = String, Path, pattern = r"^[a-z0-9][a-z0-9-]*$", example = "fra1", description = "The DC's name."),
            ("If-None-Match" = Option<String>, Header, description = "An `ETag` this route gave: 304 while it still holds."),
        ),
        responses(
            (status = 200, description = "The DC and its VLANs.", body = Dc,
                headers(("ETag" = String, description = "Strong validator of the body."))),
            (status = 304, description = "Not modified.", headers(("ETag" = String))),
            (status = 404, description = "`dc-not-found`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_dc() {}

    /// List a DC's racks
    #[utoipa::path(get, path = "/api/v1/dcs/{dc}/racks", tag = "inventory",
        params(
            ("dc" = String, Path, pattern = r"^[a-z0-9][a-z0-9-]*$", example = "fra1", description = "The DC's name."),
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ),
        responses(
            (status = 200, description = "A page of racks.", body = RackPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 404, description = "`dc-not-found`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_racks() {}

    /// List machines
    #[utoipa::path(get, path = "/api/v1/machines", tag = "inventory",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
            ("dc" = Option<String>, Query, description = "Only this DC's."),
            ("rack" = Option<String>, Query, description = "Only this rack's."),
            ("role" = Option<String>, Query, description = "Only this role's (`proxmox`, `openstack-compute`, ...)."),
        ),
        responses(
            (status = 200, description = "A page of machines, by DC and hostname.", body = MachinePage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_machines() {}

    /// Get a machine
    ///
    /// With the commissioning facts and validation of its latest onboarding.
    #[utoipa::path(get, path = "/api/v1/machines/{dc}/{hostname}", tag = "inventory",
        params(
            ("dc" = String, Path, pattern = r"^[a-z0-9][a-z0-9-]*$", example = "fra1", description = "The DC's name."),
            ("hostname" = String, Path, pattern = r"^[A-Za-z0-9][A-Za-z0-9-]*$", example = "fra1-r02-cmp20", description = "The machine's hostname."),
            ("If-None-Match" = Option<String>, Header, description = "An `ETag` this route gave: 304 while it still holds."),
        ),
        responses(
            (status = 200, description = "The machine.", body = MachineDetail,
                headers(("ETag" = String, description = "Strong validator of the body."))),
            (status = 304, description = "Not modified.", headers(("ETag" = String))),
            (status = 404, description = "`dc-not-found`, `machine-not-found`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_machine() {}

    /// List VMs
    #[utoipa::path(get, path = "/api/v1/vms", tag = "inventory",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
            ("dc" = Option<String>, Query, description = "Only this DC's."),
        ),
        responses(
            (status = 200, description = "A page of VMs, by DC and name.", body = VmPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_vms() {}

    /// List IP prefixes
    ///
    /// Every DC's VLAN subnets and tenant subnets.
    #[utoipa::path(get, path = "/api/v1/prefixes", tag = "inventory",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
            ("dc" = Option<String>, Query, description = "Only this DC's."),
        ),
        responses(
            (status = 200, description = "A page of prefixes.", body = PrefixPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_prefixes() {}

    /// List commits
    ///
    /// The commits the server processed, newest first (fleet grants).
    #[utoipa::path(get, path = "/api/v1/commits", tag = "gitops",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)."),
            ("before_ms" = Option<i64>, Query, description = "Commits first seen before this time (`next_before_ms` of the previous page)."),
        ),
        responses(
            (status = 200, description = "A page of commits.", body = CommitPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 403, description = "`forbidden`: needs a fleet grant.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_commits() {}

    /// Get a commit
    #[utoipa::path(get, path = "/api/v1/commits/{sha}", tag = "gitops",
        params(("sha" = String, Path, pattern = r"^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$", description = "The commit id.")),
        responses(
            (status = 200, description = "The commit and its result.", body = Commit),
            (status = 400, description = "`bad-commit-id`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 403, description = "`forbidden`: needs a fleet grant.", body = Problem, content_type = PROBLEM_JSON),
            (status = 404, description = "`commit-not-found`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_commit() {}

    /// Get a commit's summary
    ///
    /// The Markdown the server posts as a commit status or merge-request note.
    #[utoipa::path(get, path = "/api/v1/commits/{sha}/summary", tag = "gitops",
        params(("sha" = String, Path, pattern = r"^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$", description = "The commit id.")),
        responses(
            (status = 200, description = "Markdown.", body = String, content_type = "text/markdown; charset=utf-8"),
            (status = 400, description = "`bad-commit-id`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 403, description = "`forbidden`: needs a fleet grant.", body = Problem, content_type = PROBLEM_JSON),
            (status = 404, description = "`commit-not-found`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_commit_summary() {}

    /// List plans
    ///
    /// Saved plans, newest first (fleet grants).
    #[utoipa::path(get, path = "/api/v1/plans", tag = "gitops",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "How many (default 50)."),
            ("state" = Option<String>, Query, description = "Only plans in this state (`waiting`, `approved`, ...)."),
        ),
        responses(
            (status = 200, description = "Plans.", body = PlanPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 403, description = "`forbidden`: needs a fleet grant.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_plans() {}

    /// Get a plan
    #[utoipa::path(get, path = "/api/v1/plans/{hash}", tag = "gitops",
        params(("hash" = String, Path, pattern = r"^[0-9a-fA-F]{64}$", description = "The plan's hash (SHA-256).")),
        responses(
            (status = 200, description = "The plan, its steps, conflicts and approvals.", body = PlanDetail),
            (status = 400, description = "`bad-plan-hash`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 403, description = "`forbidden`: needs a fleet grant.", body = Problem, content_type = PROBLEM_JSON),
            (status = 404, description = "`plan-not-found`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_plan() {}

    /// Approve a plan
    ///
    /// Binds to the plan's hash; refused when the platforms changed since it was made.
    /// Starts its apply (fleet operators).
    #[utoipa::path(post, path = "/api/v1/plans/{hash}/approve", tag = "gitops",
        params(("hash" = String, Path, pattern = r"^[0-9a-fA-F]{64}$", description = "The plan's hash (SHA-256).")),
        responses(
            (status = 202, description = "Approved; the apply started.", body = Approved),
            (status = 400, description = "`bad-plan-hash`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 404, description = "`plan-not-found`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 409, description = "`plan-not-waiting`, `plan-stale`: the platforms changed; review the next plan.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`platforms-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn approve_plan() {}

    /// List workflows
    ///
    /// The workflows of the teams the caller has a grant in (the fleet's need a fleet grant).
    #[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "How many (default 50)."),
            ("kind" = Option<String>, Query, description = "Only this kind (`commit`, `onboard`, `upgrade`, ...)."),
        ),
        responses(
            (status = 200, description = "Workflows.", body = WorkflowPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_workflows() {}

    /// Get a workflow
    ///
    /// Its steps with their evidence, and its events.
    #[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows",
        params(("id" = String, Path, description = "The workflow's id.")),
        responses(
            (status = 200, description = "The workflow.", body = WorkflowDetail),
            (status = 404, description = "`workflow-not-found` (also another team's).", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_workflow() {}

    /// Cancel a workflow
    ///
    /// Only a running one (operators of its team).
    #[utoipa::path(post, path = "/api/v1/workflows/{id}/cancel", tag = "workflows",
        params(("id" = String, Path, description = "The workflow's id.")),
        responses(
            (status = 202, description = "Cancelled.", body = Cancelled),
            (status = 404, description = "`workflow-not-found`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 409, description = "`workflow-not-running`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn cancel_workflow() {}

    /// Upgrade a DC's Proxmox cluster
    ///
    /// A rolling upgrade, node by node: drain, upgrade, gate (a node that fails its
    /// gate is rolled back and the workflow stops). Fleet operators.
    #[utoipa::path(post, path = "/api/v1/dcs/{dc}/proxmox/upgrade", tag = "workflows",
        params(("dc" = String, Path, pattern = r"^[A-Za-z0-9._+~-]{1,64}$", example = "fra1", description = "The DC's name.")),
        request_body = UpgradeRequest,
        responses(
            (status = 202, description = "Started.", body = Started),
            (status = 400, description = "`bad-body`, `bad-request` (no such DC in the targets file, no Proxmox endpoint, no nodes).", body = Problem, content_type = PROBLEM_JSON),
            (status = 409, description = "`workflow-running`: an upgrade of this DC is running.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`platforms-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn upgrade_proxmox() {}

    /// Decommission a machine
    ///
    /// Drain, remove from its platform, release with a disk erase, retire (or RMA).
    /// Fleet operators.
    #[utoipa::path(post, path = "/api/v1/machines/{dc}/{hostname}/decommission", tag = "workflows",
        params(
            ("dc" = String, Path, pattern = r"^[A-Za-z0-9._+~-]{1,64}$", example = "fra1", description = "The DC's name."),
            ("hostname" = String, Path, pattern = r"^[A-Za-z0-9._+~-]{1,64}$", example = "fra1-r02-cmp20", description = "The machine's hostname."),
        ),
        request_body = DecommissionRequest,
        responses(
            (status = 202, description = "Started.", body = Started),
            (status = 400, description = "`bad-body`, `bad-request` (no reason, no such DC or machine).", body = Problem, content_type = PROBLEM_JSON),
            (status = 409, description = "`workflow-running`: it is being decommissioned.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`platforms-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn decommission_machine() {}

    /// Poll the spec repository now
    ///
    /// Fleet operators.
    #[utoipa::path(post, path = "/api/v1/sync", tag = "gitops",
        responses((status = 202, description = "The poller was woken.", body = Polling)))]
    fn sync() {}

    /// List requests
    ///
    /// The requests of the teams the caller has a grant in, by id.
    #[utoipa::path(get, path = "/api/v1/requests", tag = "requests",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
            ("team" = Option<String>, Query, description = "Only this team's."),
            ("state" = Option<String>, Query, description = "Only those in this state."),
            ("kind" = Option<String>, Query, description = "Only this kind (`vm`, `metal`, `gpu`)."),
        ),
        responses(
            (status = 200, description = "A page of requests.", body = RequestPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_requests() {}

    /// Ask for VMs, machines or GPU instances
    ///
    /// Checked against the applied fleet and the team's quota, then placed, made and
    /// watched until ready by a workflow; a request for more GPUs than the policy's
    /// threshold waits for an operator's approval first.
    #[utoipa::path(post, path = "/api/v1/requests", tag = "requests",
        request_body = NewRequest,
        responses(
            (status = 202, description = "Accepted.", body = RequestAccepted,
                headers(("Location" = String, description = "`/api/v1/requests/{id}`"))),
            (status = 400, description = "`bad-body`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 403, description = "`forbidden`: needs the member role in the team; `insufficient-scope`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 422, description = "`invalid-request` (says which field and why), `quota-exceeded` (says what is left).", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn create_request() {}

    /// Get the requests policy
    #[utoipa::path(get, path = "/api/v1/requests/policy", tag = "requests",
        responses((status = 200, description = "The policy.", body = RequestPolicy)))]
    fn get_request_policy() {}

    /// Change the requests policy
    ///
    /// Fleet admins.
    #[utoipa::path(put, path = "/api/v1/requests/policy", tag = "requests",
        request_body = RequestPolicy,
        responses(
            (status = 200, description = "The new policy.", body = RequestPolicy),
            (status = 400, description = "`bad-body`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 422, description = "`invalid-request`: `approval_gpus` is 0 to 100000.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn put_request_policy() {}

    /// Get a request
    #[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests",
        params(("id" = String, Path, pattern = r"^req-[0-9a-fA-F]{12}$", description = "The request's id.")),
        responses(
            (status = 200, description = "The request.", body = Request),
            (status = 404, description = "`request-not-found` (also another team's).", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_request() {}

    /// Release a request
    ///
    /// Deletes what it made (machines are released with a disk erase). Members of its team.
    #[utoipa::path(delete, path = "/api/v1/requests/{id}", tag = "requests",
        params(("id" = String, Path, pattern = r"^req-[0-9a-fA-F]{12}$", description = "The request's id.")),
        responses(
            (status = 202, description = "Releasing.", body = RequestReleasing),
            (status = 404, description = "`request-not-found`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 409, description = "`request-released`: released, or being released, already.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn release_request() {}

    /// Approve a request
    ///
    /// One waiting for an approval (operators of its team).
    #[utoipa::path(post, path = "/api/v1/requests/{id}/approve", tag = "requests",
        params(("id" = String, Path, pattern = r"^req-[0-9a-fA-F]{12}$", description = "The request's id.")),
        responses(
            (status = 202, description = "Approved; it proceeds.", body = RequestApproved),
            (status = 404, description = "`request-not-found`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 409, description = "`request-not-waiting`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn approve_request() {}

    /// List webhook subscriptions
    ///
    /// Those the caller manages: its teams' (admins), every one (fleet admins).
    #[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
        responses((status = 200, description = "Subscriptions.", body = WebhookPage)))]
    fn list_webhooks() {}

    /// Subscribe to the audit log
    ///
    /// Every matching record from now on is delivered, in order, at least once.
    #[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
        request_body = NewWebhook,
        responses(
            (status = 201, description = "Subscribed.", body = Webhook,
                headers(("Location" = String, description = "`/api/v1/webhooks/{id}`"))),
            (status = 400, description = "`bad-body`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 409, description = "`too-many-webhooks`: 25 per team.", body = Problem, content_type = PROBLEM_JSON),
            (status = 422, description = "`bad-team`, `bad-url`, `bad-events`, `bad-secret`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn create_webhook() {}

    /// Get a webhook subscription
    #[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
        params(("id" = String, Path, pattern = r"^wh_[0-9a-f]{16}$", description = "The subscription's id.")),
        responses(
            (status = 200, description = "The subscription.", body = Webhook),
            (status = 404, description = "`webhook-not-found` (also one the caller does not manage).", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_webhook() {}

    /// Delete a webhook subscription
    #[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
        params(("id" = String, Path, pattern = r"^wh_[0-9a-f]{16}$", description = "The subscription's id.")),
        responses(
            (status = 204, description = "Deleted."),
            (status = 404, description = "`webhook-not-found`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn delete_webhook() {}

    /// List a subscription's delivery attempts
    ///
    /// Newest first.
    #[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
        params(
            ("id" = String, Path, pattern = r"^wh_[0-9a-f]{16}$", description = "The subscription's id."),
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "How many (default 50)."),
        ),
        responses(
            (status = 200, description = "The subscription and its last attempts.", body = DeliveryPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 404, description = "`webhook-not-found`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_deliveries() {}

    /// Export usage for billing
    ///
    /// What each team held during the window: core-, GPU- (by model), RAM- and
    /// storage-hours of its requests, address-days of its IP allocations. A team's
    /// admins see its usage; a fleet grant every team's.
    #[utoipa::path(get, path = "/api/v1/usage", tag = "usage",
        params(
            ("team" = Option<String>, Query, description = "Only this team (required without a fleet grant)."),
            ("from" = Option<String>, Query, format = DateTime, description = "The window's start, RFC 3339 (default: 30 days before `to`); before `to`."),
            ("to" = Option<String>, Query, format = DateTime, description = "The window's end, RFC 3339 (default: now)."),
            ("format" = Option<String>, Query, pattern = "^(json|csv)$", description = "`json` (the default) or `csv` (a header row, then one line per team, kind and GPU model)."),
        ),
        responses(
            (status = 200, description = "The usage.", content(
                (UsageReport = "application/json"),
                (String = "text/csv; charset=utf-8"),
            )),
            (status = 400, description = "`bad-query`, `bad-format`, `bad-time`, `bad-window` (`from` is not before `to`), `team-required`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 403, description = "`forbidden`: the team's usage needs its admin role.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_usage() {}

    /// List IP pools
    #[utoipa::path(get, path = "/api/v1/ipam/pools", tag = "ipam",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
            ("dc" = Option<String>, Query, description = "Only this DC's."),
        ),
        responses(
            (status = 200, description = "A page of pools.", body = PoolPage),
            (status = 400, description = "`bad-query`, `bad-limit`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_pools() {}

    /// Get an IP pool
    #[utoipa::path(get, path = "/api/v1/ipam/pools/{pool}", tag = "ipam",
        params(
            ("pool" = String, Path, example = "fra1.provisioning", description = "The pool's id."),
            ("If-None-Match" = Option<String>, Header, description = "An `ETag` this route gave: 304 while it still holds."),
        ),
        responses(
            (status = 200, description = "The pool.", body = Pool,
                headers(("ETag" = String, description = "Strong validator of the body."))),
            (status = 304, description = "Not modified.", headers(("ETag" = String))),
            (status = 404, description = "`pool-not-found`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_pool() {}

    /// List a pool's allocations
    ///
    /// In address order. A fleet grant sees all of them; anyone else one of their
    /// teams' (`team`, required when they have several).
    #[utoipa::path(get, path = "/api/v1/ipam/pools/{pool}/allocations", tag = "ipam",
        params(
            ("pool" = String, Path, example = "fra1.provisioning", description = "The pool's id."),
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)."),
            ("cursor" = Option<String>, Query, pattern = r"^[0-9a-fA-F]{16}$", description = "`next_cursor` of the previous page."),
            ("team" = Option<String>, Query, description = "Only this team's."),
        ),
        responses(
            (status = 200, description = "A page of allocations.", body = AllocationPage),
            (status = 400, description = "`bad-query`, `bad-limit`, `bad-cursor`, `team-required`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 404, description = "`pool-not-found`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn list_allocations() {}

    /// Allocate an address or a prefix
    ///
    /// The next free one for the team (members). Send `Idempotency-Key` to make a
    /// retry return the same allocation.
    #[utoipa::path(post, path = "/api/v1/ipam/pools/{pool}/allocations", tag = "ipam",
        params(
            ("pool" = String, Path, example = "fra1.provisioning", description = "The pool's id."),
            ("Idempotency-Key" = Option<String>, Header, description = "At most 255 characters; the same key (per team) returns the same allocation."),
        ),
        request_body = AllocateRequest,
        responses(
            (status = 201, description = "Allocated.", body = Allocation,
                headers(("Location" = String, description = "`/api/v1/ipam/allocations/{id}`"))),
            (status = 400, description = "`bad-body`, `bad-idempotency-key`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 404, description = "`pool-not-found`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 409, description = "`pool-exhausted`, `pool-conflict`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 422, description = "`bad-description`, `bad-prefix-length`, `pool-kind-mismatch`.", body = Problem, content_type = PROBLEM_JSON),
            (status = 503, description = "`no-applied-commit`, `spec-unavailable`, `store-unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn allocate() {}

    /// Get an allocation
    #[utoipa::path(get, path = "/api/v1/ipam/allocations/{id}", tag = "ipam",
        params(
            ("id" = String, Path, description = "The allocation's id."),
            ("If-None-Match" = Option<String>, Header, description = "An `ETag` this route gave: 304 while it still holds."),
        ),
        responses(
            (status = 200, description = "The allocation.", body = Allocation,
                headers(("ETag" = String, description = "Strong validator of the body."))),
            (status = 304, description = "Not modified.", headers(("ETag" = String))),
            (status = 404, description = "`allocation-not-found` (also another team's).", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn get_allocation() {}

    /// Release an allocation
    ///
    /// Members of its team.
    #[utoipa::path(delete, path = "/api/v1/ipam/allocations/{id}", tag = "ipam",
        params(("id" = String, Path, description = "The allocation's id.")),
        responses(
            (status = 204, description = "Released."),
            (status = 404, description = "`allocation-not-found`.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn release_allocation() {}

    /// This document
    #[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
        responses((status = 200, description = "OpenAPI 3.1.", body = Object)))]
    fn openapi_document() {}

    /// The API page
    ///
    /// A browsable view of this document (Swagger UI, served from the binary).
    #[utoipa::path(get, path = "/api/v1/docs", tag = "meta",
        responses((status = 200, description = "HTML.", body = String, content_type = "text/html; charset=utf-8")))]
    fn docs_page() {}

    /// The API page's scripts and style sheet
    ///
    /// Swagger UI 5.36.0 (Apache-2.0) and the script that starts it.
    #[utoipa::path(get, path = "/api/v1/docs/{asset}", tag = "meta",
        params(("asset" = String, Path, pattern = r"^(swagger-ui-bundle\.js|swagger-ui\.css|strata-docs\.js)$", example = "strata-docs.js", description = "`swagger-ui-bundle.js`, `swagger-ui.css` or `strata-docs.js`.")),
        responses(
            (status = 200, description = "The file.", content(
                (String = "text/javascript; charset=utf-8"),
                (String = "text/css; charset=utf-8"),
            )),
            (status = 404, description = "`not-found`: no such asset.", body = Problem, content_type = PROBLEM_JSON),
        ))]
    fn docs_asset() {}
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::from_str(document_json()).expect("the document is JSON")
    }

    /// `(METHOD, /api/v1/...)` of every route registered in the API's router, read
    /// from the router's source: `api.rs`, the API part of `http.rs` (the statement
    /// `let api = ...;`), and every other module but the UI's and the OIDC login's
    /// (which are outside `/api/v1`).
    fn router_routes() -> BTreeSet<(String, String)> {
        let mut files = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src") {
                let path = entry.expect("entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                // Outside /api/v1: the UI and the OIDC login. This file only documents.
                if matches!(name, "ui" | "ui.rs" | "oidc.rs" | "openapi.rs") {
                    continue;
                }
                if path.is_dir() {
                    dirs.push(path);
                } else if name.ends_with(".rs") {
                    files.push(path);
                }
            }
        }
        let mut out = BTreeSet::new();
        for path in files {
            let text = std::fs::read_to_string(&path).expect("read");
            let api = if path.ends_with("http.rs") {
                let start = text.find("let api =").expect("http.rs builds `api`");
                let end = start + text[start..].find(';').expect("`let api = ...;`");
                text[start..end].to_string()
            } else {
                text
            };
            out.extend(route_calls(&api));
        }
        out
    }

    /// `.route("PATH", get(a).post(b))` → `(GET, /api/v1PATH)`, `(POST, ...)`.
    fn route_calls(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find(".route(") {
            rest = rest[i + 7..].trim_start();
            let Some(after) = rest.strip_prefix('"') else {
                continue;
            };
            rest = after;
            let Some(end) = rest.find('"') else { break };
            let path = &rest[..end];
            // The method router: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let mut stop = rest.len();
            for (j, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            stop = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let expr = &rest[end + 1..stop];
            for m in ["get", "post", "put", "patch", "delete"] {
                let found = expr.match_indices(&format!("{m}(")).any(|(k, _)| {
                    !expr[..k]
                        .chars()
                        .next_back()
                        .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == ':')
                });
                if found {
                    out.push((m.to_uppercase(), format!("/api/v1{path}")));
                }
            }
            rest = &rest[stop..];
        }
        out
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc = doc();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for m in ["get", "post", "put", "patch", "delete"] {
                if item.get(m).is_some() {
                    out.insert((m.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"],
            serde_json::json!({"type": "http", "scheme": "bearer", "bearerFormat": "strata_<id>_<secret>, or an OIDC JWT", "description": "An API token or, where OIDC is configured, an ID token of the identity provider."})
        );
        assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    }

    #[test]
    fn every_route_of_the_router_is_documented_and_no_other() {
        let routes = router_routes();
        assert!(
            routes.contains(&("GET".into(), "/api/v1/whoami".into())),
            "{routes:?}"
        );
        assert!(
            routes.contains(&("POST".into(), "/api/v1/sync".into())),
            "{routes:?}"
        );
        let documented = documented();
        let missing: Vec<_> = routes.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routes).collect();
        assert!(missing.is_empty(), "routes the document lacks: {missing:?}");
        assert!(
            extra.is_empty(),
            "documented routes the router lacks: {extra:?}"
        );
    }

    #[test]
    fn every_error_is_a_problem_and_every_operation_is_authenticated() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                let responses = op["responses"].as_object().expect("responses");
                for code in ["401", "429", "503"] {
                    assert!(responses.contains_key(code), "{method} {path} lacks {code}");
                }
                for (code, r) in responses {
                    if code.starts_with('4') || code.starts_with('5') {
                        let content = r["content"].as_object().expect("content");
                        assert_eq!(
                            content.keys().collect::<Vec<_>>(),
                            [PROBLEM_JSON],
                            "{method} {path} {code}"
                        );
                    }
                }
            }
        }
    }

    /// What the document promises of request bodies, the handlers' parsing keeps: an
    /// integer may be written `600.0` (JSON Schema's integer), lengths are characters.
    #[test]
    fn bodies_parse_as_documented() {
        let token = |v: Value| serde_json::from_value::<crate::auth::TokenRequest>(v);
        let t = token(
            serde_json::json!({"name": "ci", "team": "ml", "role": "viewer", "expires_in_s": 600.0}),
        );
        assert_eq!(t.expect("600.0").expires_in_s, Some(600));
        let t = token(
            serde_json::json!({"name": "ci", "team": "ml", "role": "viewer", "expires_in_s": null}),
        );
        assert_eq!(t.expect("null").expires_in_s, None);
        for bad in [
            serde_json::json!(2.5),
            serde_json::json!(-1),
            serde_json::json!("60"),
        ] {
            let t = token(
                serde_json::json!({"name": "ci", "team": "ml", "role": "viewer", "expires_in_s": bad}),
            );
            assert!(t.is_err(), "{bad}");
        }
        let up = serde_json::from_value::<crate::lifecycle::UpgradeRequest>(
            serde_json::json!({"version": "9.1.2", "gate_timeout_s": 30.0}),
        );
        assert_eq!(up.expect("30.0").gate_timeout_s, 30);
        let up = serde_json::from_value::<crate::lifecycle::UpgradeRequest>(
            serde_json::json!({"version": "9.1.2"}),
        );
        assert_eq!(up.expect("default").gate_timeout_s, 600);
        // 100 characters of three bytes each are a valid name.
        let t = token(serde_json::json!({"name": "é".repeat(50) + &"語".repeat(50), "team": "ml", "role": "viewer"}))
            .expect("parse");
        assert!(crate::auth::issue_token(None, &t).is_ok());
        let t = token(serde_json::json!({"name": "x".repeat(101), "team": "ml", "role": "viewer"}))
            .expect("parse");
        assert!(crate::auth::issue_token(None, &t).is_err());
    }

    #[test]
    fn response_objects_are_closed_and_nullable_keys_required() {
        let doc = doc();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for name in [
            "Problem",
            "Token",
            "Machine",
            "MachineDetail",
            "CommitItem",
            "Rack",
        ] {
            assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
        }
        let az = &schemas["Rack"]["properties"]["az"]["type"];
        assert_eq!(az, &serde_json::json!(["string", "null"]));
        let required = schemas["Rack"]["required"].as_array().expect("required");
        assert!(required.contains(&Value::from("az")), "{required:?}");
        let scopes = &schemas["TokenRequest"]["properties"]["scopes"];
        assert_eq!(
            scopes["contains"],
            serde_json::json!({"const": "read"}),
            "{scopes}"
        );
    }
}
