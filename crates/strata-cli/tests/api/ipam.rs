//! Phase `ipam`: the pools the applied fleet defines, 64 concurrent allocators that
//! never get the same address (nor one the fleet uses), idempotent retries, prefixes
//! from a DC's block, per-team visibility and roles, release, audit.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::Demo;

pub fn run(d: &mut Demo) {
    let admin = d.admin.clone();
    let (member, _) = d.token(&admin, "ml-research", "member", None);
    let (viewer, _) = d.token(&admin, "ml-research", "viewer", None);
    let (other, _) = d.token(&admin, "platform", "member", None);

    let (code, pools) = d.call("GET", "/api/v1/ipam/pools?dc=fra1", Some(&member), None);
    assert_eq!(code, 200, "{pools}");
    let ids: Vec<&str> = pools["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(ids.contains(&"fra1.supernet"), "{ids:?}");
    let pool = pools["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["kind"] == "addresses")
        .max_by_key(|p| p["range_size"].as_u64().unwrap_or(0))
        .expect("an address pool")
        .clone();
    let pool_id = pool["id"].as_str().expect("id").to_string();
    assert!(pool["range_size"].as_u64().unwrap_or(0) >= 64, "{pool}");
    let reserved: HashSet<IpAddr> = pool["reserved"]
        .as_array()
        .expect("reserved")
        .iter()
        .filter_map(|r| r.as_str())
        .filter(|r| r.ends_with("/32") || !r.contains('/'))
        .filter_map(|r| r.split('/').next()?.parse().ok())
        .collect();
    assert!(
        !reserved.is_empty(),
        "the fleet's addresses are reserved: {pool}"
    );

    // 64 allocators at once.
    let base = d.base.clone();
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let (base, token, pool_id) = (base.clone(), member.clone(), pool_id.clone());
            std::thread::spawn(move || {
                let out = std::process::Command::new("curl")
                    .args([
                        "-s",
                        "-w",
                        "\n%{http_code}",
                        "-X",
                        "POST",
                        "-H",
                        "Content-Type: application/json",
                    ])
                    .arg("-H")
                    .arg(format!("Authorization: Bearer {token}"))
                    .arg("-H")
                    .arg(format!("Idempotency-Key: load-{i}"))
                    .arg("--data-binary")
                    .arg(
                        json!({"team": "ml-research", "description": format!("allocator {i}")})
                            .to_string(),
                    )
                    .arg(format!("{base}/api/v1/ipam/pools/{pool_id}/allocations"))
                    .output()
                    .expect("curl");
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
        })
        .collect();
    let mut got = Vec::new();
    for h in handles {
        let text = h.join().expect("thread");
        let (body, code) = text.rsplit_once('\n').expect("code");
        assert_eq!(code.trim(), "201", "{body}");
        let v: Value = serde_json::from_str(body).expect("json");
        got.push(v);
    }
    let addrs: HashSet<String> = got
        .iter()
        .map(|a| a["address"].as_str().expect("address").to_string())
        .collect();
    assert_eq!(
        addrs.len(),
        64,
        "64 allocators got {} distinct addresses",
        addrs.len()
    );
    for a in &addrs {
        let ip: IpAddr = a
            .split('/')
            .next()
            .and_then(|x| x.parse().ok())
            .expect("ip");
        assert!(!reserved.contains(&ip), "{ip} is used by the fleet");
    }
    // A retry with the same key is the same allocation.
    let (code, again) = d.call(
        "POST",
        &format!("/api/v1/ipam/pools/{pool_id}/allocations"),
        Some(&member),
        Some(json!({"team": "ml-research", "description": "allocator 0"})),
    );
    assert_eq!(code, 201, "{again}");
    assert!(
        !addrs.contains(again["address"].as_str().unwrap_or("")),
        "a new key is a new address"
    );
    let first = &got[0];
    let id = first["id"].as_str().expect("id");

    // Roles and teams.
    let (code, body) = d.call(
        "POST",
        &format!("/api/v1/ipam/pools/{pool_id}/allocations"),
        Some(&viewer),
        Some(json!({"team": "ml-research"})),
    );
    assert_eq!(code, 403, "{body}");
    let (code, body) = d.call(
        "POST",
        &format!("/api/v1/ipam/pools/{pool_id}/allocations"),
        Some(&member),
        Some(json!({"team": "platform"})),
    );
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        d.call(
            "GET",
            &format!("/api/v1/ipam/allocations/{id}"),
            Some(&other),
            None
        )
        .0,
        404
    );
    assert_eq!(
        d.call(
            "DELETE",
            &format!("/api/v1/ipam/allocations/{id}"),
            Some(&other),
            None
        )
        .0,
        404
    );
    let (code, theirs) = d.call(
        "GET",
        &format!("/api/v1/ipam/pools/{pool_id}/allocations"),
        Some(&other),
        None,
    );
    assert_eq!(
        (code, theirs["items"].clone()),
        (200, json!([])),
        "{theirs}"
    );
    let (code, mine) = d.call(
        "GET",
        &format!("/api/v1/ipam/pools/{pool_id}/allocations?limit=500"),
        Some(&viewer),
        None,
    );
    assert_eq!(code, 200, "{mine}");
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(65), "{mine}");

    // A prefix from the DC's block: aligned, clear of what the fleet carved.
    let (code, p) = d.call(
        "POST",
        "/api/v1/ipam/pools/fra1.supernet/allocations",
        Some(&member),
        Some(json!({"team": "ml-research", "prefix_len": 26, "description": "lab"})),
    );
    assert_eq!(code, 201, "{p}");
    let net: ipnet::IpNet = p["address"].as_str().expect("prefix").parse().expect("net");
    assert_eq!(net.prefix_len(), 26);
    assert_eq!(net.network(), net.addr(), "aligned: {net}");
    let (_, sp) = d.call(
        "GET",
        "/api/v1/ipam/pools/fra1.supernet",
        Some(&member),
        None,
    );
    for r in sp["reserved"].as_array().expect("reserved") {
        let r: ipnet::IpNet = r.as_str().expect("net").parse().expect("net");
        assert!(
            !r.contains(&net.network()) && !net.contains(&r.network()),
            "{net} overlaps {r}"
        );
    }
    let (code, body) = d.call(
        "POST",
        "/api/v1/ipam/pools/fra1.supernet/allocations",
        Some(&member),
        Some(json!({"team": "ml-research", "prefix_len": 8})),
    );
    assert_eq!(
        (code, body["code"].as_str()),
        (422, Some("bad-prefix-length")),
        "{body}"
    );
    let (code, body) = d.call(
        "POST",
        "/api/v1/ipam/pools/nowhere/allocations",
        Some(&member),
        Some(json!({"team": "ml-research"})),
    );
    assert_eq!(
        (code, body["code"].as_str()),
        (404, Some("pool-not-found")),
        "{body}"
    );

    // Release, audited.
    assert_eq!(
        d.call(
            "DELETE",
            &format!("/api/v1/ipam/allocations/{id}"),
            Some(&member),
            None
        )
        .0,
        204
    );
    assert_eq!(
        d.call(
            "GET",
            &format!("/api/v1/ipam/allocations/{id}"),
            Some(&member),
            None
        )
        .0,
        404
    );
    let (_, log) = d.call(
        "GET",
        "/api/v1/audit?team=ml-research&limit=500",
        Some(&admin),
        None,
    );
    let actions: Vec<&str> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.iter().filter(|a| **a == "ip.allocate").count() >= 66,
        "{actions:?}"
    );
    assert!(actions.contains(&"ip.release"), "{actions:?}");
}
