//! IP address management over the API: the pools come from the applied fleet, the
//! allocations live in the store (`strata_store::ipam`, concurrency-safe per pool).
//!
//! Pools, per DC:
//! - `{dc}.{vlan}` (addresses): each infrastructure VLAN's subnet. Everything the
//!   compiled fleet uses there is reserved (gateway, every host's and VM's address,
//!   BMCs, VIPs) and so is MAAS's DHCP dynamic range at the top of the subnet. The
//!   API hands out the part between: from a quarter of the subnet (the compiler fills
//!   from the bottom; the quarter leaves it room) up to below the dynamic range.
//! - `{dc}.supernet` (prefixes): the DC's block, with every prefix the fleet already
//!   carved from it reserved (loopbacks, VTEPs, point-to-point links, VLAN and tenant
//!   subnets).
//!
//! The pools follow the fleet: the server re-syncs them when the applied commit
//! changes. A new fleet allocation that lands on an address the API handed out is a
//! conflict the sync reports (`ReservedConflict`), never a silent double use.
//!
//! Allocations belong to a team: members allocate and release; another team's
//! allocation is a 404 like a missing one. Every change is audited.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Value, json};
use strata_store::ipam::{IpamError, PoolDef};

use crate::Server;
use crate::api::ListQuery;
use crate::auth::{Principal, Role};
use crate::http::{Problem, RequestId, bad_query, json_body};

type S = State<Arc<Server>>;

pub(crate) fn routes(r: Router<Arc<Server>>) -> Router<Arc<Server>> {
    r.route("/ipam/pools", get(pools))
        .route("/ipam/pools/{pool}", get(pool))
        .route(
            "/ipam/pools/{pool}/allocations",
            post(allocate).get(pool_allocations),
        )
        .route("/ipam/allocations/{id}", get(allocation).delete(release))
}

/// The pools the applied fleet defines (pure: from the compiled fleet only).
pub fn pool_defs(fleet: &strata_fleet::Fleet) -> Vec<PoolDef> {
    let mut out = Vec::new();
    for dc in &fleet.dcs {
        for v in &dc.vlans {
            let role = serde_json::to_value(v.role)
                .ok()
                .and_then(|r| r.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut reserved: Vec<IpNet> = vec![host_net(v.gateway)];
            for (_, ifs) in dc.hosts() {
                for i in ifs.iter().filter(|i| i.vlan == v.role) {
                    reserved.push(host_net(i.address.addr()));
                }
            }
            for m in &dc.machines {
                if v.subnet.contains(&m.bmc.address) {
                    reserved.push(host_net(m.bmc.address));
                }
            }
            for vip in dc.vips.iter().filter(|x| x.vlan == v.role) {
                reserved.push(host_net(vip.address));
            }
            let size = offset(v.subnet.broadcast(), v.subnet.network());
            let mut last = match v.subnet {
                IpNet::V4(_) => size.saturating_sub(1),
                IpNet::V6(_) => size,
            };
            // The highest address the compiler handed out (it fills from the bottom).
            let highest = reserved
                .iter()
                .filter(|n| v.subnet.contains(&n.addr()))
                .map(|n| offset(n.addr(), v.subnet.network()))
                .max()
                .unwrap_or(0);
            if let Some(r) = strata_plan::desired::dynamic_range(dc, v)
                && let (Ok(start), Ok(end)) = (r.start.parse::<IpAddr>(), r.end.parse::<IpAddr>())
            {
                reserved.extend(range_nets(start, end));
                last = last.min(offset(start, v.subnet.network()).saturating_sub(1));
            }
            let first = (size / 4).max(highest + 1).max(1);
            if first > last {
                continue;
            }
            // Reserved entries must lie in the pool (a BMC pinned elsewhere is not).
            reserved.retain(|n| v.subnet.contains(&n.addr()));
            reserved.sort();
            reserved.dedup();
            out.push(
                PoolDef::addresses(format!("{}.{role}", dc.name), v.subnet)
                    .with_range(first..=last)
                    .with_reserved(reserved),
            );
        }
        let mut carved: Vec<IpNet> = vec![dc.loopback_block, dc.vtep_block, dc.p2p_block];
        carved.extend(dc.vlans.iter().map(|v| v.subnet));
        carved.extend(dc.tenant_subnets.iter().map(|t| t.subnet));
        carved.retain(|n| dc.supernet.contains(n));
        carved.sort();
        carved.dedup();
        let unit = match dc.supernet {
            IpNet::V4(_) => 29,
            IpNet::V6(_) => 64,
        };
        out.push(
            PoolDef::prefixes(format!("{}.supernet", dc.name), dc.supernet)
                .with_max_prefix_len(unit)
                .with_reserved(carved),
        );
    }
    out
}

fn host_net(a: IpAddr) -> IpNet {
    IpNet::from(a)
}

fn to_u(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(x) => u128::from(u32::from(x)),
        IpAddr::V6(x) => u128::from(x),
    }
}

fn offset(a: IpAddr, base: IpAddr) -> u128 {
    to_u(a).saturating_sub(to_u(base))
}

/// The CIDR blocks that exactly cover `start..=end`.
fn range_nets(start: IpAddr, end: IpAddr) -> Vec<IpNet> {
    match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => ipnet::Ipv4Subnets::new(s, e, 0).map(IpNet::V4).collect(),
        (IpAddr::V6(s), IpAddr::V6(e)) => ipnet::Ipv6Subnets::new(s, e, 0).map(IpNet::V6).collect(),
        _ => Vec::new(),
    }
}

/// Bring the store's pools in line with the applied fleet (once per applied commit).
async fn synced(s: &Server) -> Result<(), Problem> {
    let Some((sha, fleet)) = crate::work::applied_fleet(s).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot read the applied commit");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "spec-unavailable",
            "cannot read the applied commit; try again",
        )
    })?
    else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-applied-commit",
            "no commit has been applied yet; the IP pools appear after the first apply",
        ));
    };
    if s.ipam_synced.lock().as_deref() == Some(sha.as_str()) {
        return Ok(());
    }
    let mut conflicts = 0;
    for def in pool_defs(&fleet) {
        match s.store.ensure_pool(&def).await {
            Ok(_) => {}
            Err(e @ (IpamError::ReservedConflict { .. } | IpamError::PoolInUse { .. })) => {
                conflicts += 1;
                tracing::error!(pool = %def.id, error = %e, "the fleet and an API allocation disagree");
            }
            Err(e) => return Err(ipam_problem(e)),
        }
    }
    if conflicts == 0 {
        *s.ipam_synced.lock() = Some(sha);
    }
    Ok(())
}

pub(crate) fn ipam_problem(e: IpamError) -> Problem {
    let (status, code) = match &e {
        IpamError::UnknownPool(_) => (StatusCode::NOT_FOUND, "pool-not-found"),
        IpamError::Exhausted { .. } => (StatusCode::CONFLICT, "pool-exhausted"),
        IpamError::BadPrefixLength { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "bad-prefix-length")
        }
        IpamError::KindMismatch { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "pool-kind-mismatch"),
        IpamError::BadCursor(_) => (StatusCode::BAD_REQUEST, "bad-cursor"),
        IpamError::PoolInUse { .. } | IpamError::ReservedConflict { .. } => {
            (StatusCode::CONFLICT, "pool-conflict")
        }
        IpamError::InvalidPool { .. } | IpamError::Corrupt(_) | IpamError::Store(_) => {
            tracing::warn!(error = %e, "IPAM store error");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "the database did not answer; try again",
            );
        }
    };
    Problem::new(status, code, e.to_string())
}

async fn pools(
    State(s): S,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    synced(&s).await?;
    let all = s.store.pools().await.map_err(ipam_problem)?;
    let items = all
        .into_iter()
        .filter(|p| {
            q.dc.as_ref()
                .is_none_or(|dc| p.id.split('.').next() == Some(dc.as_str()))
        })
        .map(|p| (p.id.clone(), serde_json::to_value(&p).unwrap_or_default()))
        .collect();
    let (items, next) = crate::api::page(items, q.cursor.as_deref(), limit);
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

async fn pool(
    State(s): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    synced(&s).await?;
    let p = s
        .store
        .ip_pool(&id)
        .await
        .map_err(ipam_problem)?
        .ok_or_else(|| ipam_problem(IpamError::UnknownPool(id.clone())))?;
    Ok(crate::api::with_etag(
        &headers,
        &serde_json::to_value(&p).unwrap_or_default(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocateRequest {
    team: String,
    #[serde(default)]
    description: String,
    /// For a prefixes pool: the length of the prefix wanted.
    #[serde(default)]
    prefix_len: Option<u8>,
}

/// `POST /ipam/pools/{pool}/allocations`: the next free address (or prefix of
/// `prefix_len`) for `team`. An `Idempotency-Key` header makes a retry return the
/// same allocation.
async fn allocate(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
    Path(pool): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let req: AllocateRequest = json_body(&body)?;
    if req.description.len() > 200 {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-description",
            "a description is at most 200 characters",
        ));
    }
    who.need(&req.team, Role::Member, "allocating an address")?;
    let key = headers
        .get("idempotency-key")
        .and_then(|h| h.to_str().ok())
        .map(|k| format!("{}:{k}", req.team));
    if key.as_ref().is_some_and(|k| k.len() > 300) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-idempotency-key",
            "an Idempotency-Key is at most 255 characters",
        ));
    }
    synced(&s).await?;
    let a = match req.prefix_len {
        None => {
            s.store
                .allocate_address(&pool, &req.team, &req.description, key.as_deref())
                .await
        }
        Some(len) => {
            s.store
                .allocate_prefix(&pool, len, &req.team, &req.description, key.as_deref())
                .await
        }
    }
    .map_err(ipam_problem)?;
    let after = serde_json::to_value(&a).unwrap_or_default();
    s.audit(
        &who,
        &rid,
        &a.team,
        "ip.allocate",
        &format!("ip/{}", a.id),
        &Value::Null,
        &after,
    )
    .await?;
    let mut r = (StatusCode::CREATED, Json(after)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/ipam/allocations/{}", a.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// A pool's allocations: a fleet principal sees all of them (or one team's with
/// `team`), anyone else one of their teams' (`team`, required when they have several).
async fn pool_allocations(
    State(s): S,
    Extension(who): Extension<Principal>,
    Path(pool): Path<String>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    let team = match (who.visible_teams(), &q.team) {
        (None, t) => t.clone(),
        (Some(mine), Some(t)) if mine.contains(t) => Some(t.clone()),
        (Some(mine), None) if mine.len() == 1 => mine.first().cloned(),
        (Some(_), Some(_)) => {
            return Ok(Json(json!({"items": [], "next_cursor": null})));
        }
        (Some(_), None) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "team-required",
                "name the team whose allocations to list (?team=NAME)",
            ));
        }
    };
    synced(&s).await?;
    let page = s
        .store
        .allocations(&pool, team.as_deref(), q.cursor.as_deref(), limit)
        .await
        .map_err(ipam_problem)?;
    Ok(Json(json!({"items": page.items, "next_cursor": page.next})))
}

fn no_allocation(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "allocation-not-found",
        format!("no allocation {id}"),
    )
}

async fn allocation(
    State(s): S,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let a = s
        .store
        .allocation(&id)
        .await
        .map_err(ipam_problem)?
        .ok_or_else(|| no_allocation(&id))?;
    who.see(&a.team, || no_allocation(&id))?;
    Ok(crate::api::with_etag(
        &headers,
        &serde_json::to_value(&a).unwrap_or_default(),
    ))
}

async fn release(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let a = s
        .store
        .allocation(&id)
        .await
        .map_err(ipam_problem)?
        .ok_or_else(|| no_allocation(&id))?;
    who.see(&a.team, || no_allocation(&id))?;
    who.need(&a.team, Role::Member, "releasing an address")?;
    let Some(gone) = s.store.release(&id).await.map_err(ipam_problem)? else {
        return Err(no_allocation(&id));
    };
    s.audit(
        &who,
        &rid,
        &gone.team,
        "ip.release",
        &format!("ip/{id}"),
        &serde_json::to_value(&gone).unwrap_or_default(),
        &Value::Null,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_exact_blocks() {
        let n = range_nets(
            "10.0.0.130".parse().expect("ip"),
            "10.0.0.254".parse().expect("ip"),
        );
        let total: u128 = n.iter().map(|x| 1u128 << (32 - x.prefix_len())).sum();
        assert_eq!(total, 125);
        assert_eq!(n[0].to_string(), "10.0.0.130/31");
    }

    #[test]
    fn the_example_fleet_pools_avoid_everything_compiled() {
        let fleet = strata_testkit_fleet();
        let defs = pool_defs(&fleet);
        assert!(defs.iter().any(|d| d.id.ends_with(".supernet")));
        // Every VLAN of every DC gets a pool with room in it.
        let vlans: usize = fleet.dcs.iter().map(|d| d.vlans.len()).sum();
        assert_eq!(defs.len(), vlans + fleet.dcs.len());
        for d in defs
            .iter()
            .filter(|d| d.kind == strata_store::ipam::PoolKind::Addresses)
        {
            let range = d.range.clone().expect("range");
            let net = d.cidr.network();
            for r in &d.reserved {
                // No single compiled address falls in the API's range.
                if r.prefix_len() == r.max_prefix_len() {
                    assert!(
                        !range.contains(&offset(r.addr(), net)),
                        "{}: {r} in range",
                        d.id
                    );
                }
            }
        }
    }

    fn strata_testkit_fleet() -> strata_fleet::Fleet {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet");
        let mut sources = Vec::new();
        for e in walk(&root) {
            if e.extension().is_some_and(|x| x == "yaml") {
                let text = std::fs::read_to_string(&e).expect("read");
                sources.push((e.display().to_string(), text));
            }
        }
        let lock_text = std::fs::read_to_string(root.join("fleet.lock")).expect("lock");
        let lock = strata_fleet::Lock::parse(&lock_text).expect("lock");
        let mut map = strata_diagnostics::SourceMap::new();
        for (p, t) in &sources {
            map.add(p.as_str(), t.as_str());
        }
        let an = strata_check::analyze(&map, Vec::new(), &lock, Some(&lock_text), false);
        an.fleet.expect("the example compiles")
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
