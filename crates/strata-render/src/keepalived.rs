//! keepalived `keepalived.conf` for every VIP member host:
//! `<dc>/keepalived/<hostname>.conf`, one `vrrp_script` and one `vrrp_instance` per
//! VIP of the DC the host is a member of (keepalived 2.2 syntax).
//!
//! Invariant: a pure function of the compiled fleet (sorted iteration, no clock) that
//! never writes a secret: VRRP runs unicast between the members without
//! authentication (PASS authentication is deprecated and would be a password in the
//! file).
//!
//! Conventions:
//! * Every instance starts `state BACKUP` with `nopreempt` (keepalived ignores
//!   `nopreempt` unless the initial state is BACKUP) and the member's priority from the
//!   fleet; the first member, which has the highest priority, wins the first election.
//!   `virtual_router_id` is the VIP's VRID, `advert_int 1`, `unicast_src_ip` is the
//!   member's own address and `unicast_peer` lists the other members in fleet order.
//! * `interface`: the host's device on the VIP's VLAN, `HostInterface::device`, which
//!   the compiler names once for every renderer (VMs `eth<N>`, Proxmox nodes
//!   `vmbr0.<vid>`, other machines `<bond>.<vid>`).
//! * Health check (`vrrp_script`, in `track_script`): a TCP connect to the member's own
//!   address on the VIP's port with bash's `/dev/tcp` (`/bin/bash` exists on every
//!   Debian and Ubuntu host; curl or nc may not), at most 2 s, every 2 s, two failures
//!   to go down and two successes to come back. It checks the member's address, not
//!   127.0.0.1, because services behind a VIP (Keystone under Kolla, say) bind the
//!   host's API address. Scripts run as `nobody` under `enable_script_security`.
//!
//! A member that is not a host of its DC, or has no address on the VIP's VLAN, cannot
//! be rendered; rendering then fails with a [`RenderError`] that names the file and
//! says why, instead of a VIP silently missing.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;
use strata_fleet::{Dc, Fleet, Vip};

use crate::{FileKind, RenderError, RenderedFile, template};

const TEMPLATE: &str = "keepalived/keepalived.conf.j2";

static ENV: OnceLock<template::Templates> = OnceLock::new();

fn env() -> &'static template::Templates {
    ENV.get_or_init(|| {
        template::environment(&[(
            TEMPLATE,
            include_str!("../templates/keepalived/keepalived.conf.j2"),
        )])
    })
}

/// Render one `keepalived.conf` per VIP member host, sorted by path.
pub fn render(fleet: &Fleet) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = Vec::new();
    for dc in &fleet.dcs {
        // Member hostname -> the VIPs (sorted by name) it holds.
        let mut hosts: BTreeMap<&str, Vec<&Vip>> = BTreeMap::new();
        let mut vips: Vec<&Vip> = dc.vips.iter().collect();
        vips.sort_by(|a, b| a.name.cmp(&b.name));
        for vip in vips {
            for member in &vip.members {
                let held = hosts.entry(member.hostname.as_str()).or_default();
                if !held.iter().any(|v| std::ptr::eq(*v, vip)) {
                    held.push(vip);
                }
            }
        }
        for (hostname, vips) in hosts {
            files.push(crate::file(
                path(&dc.name, hostname),
                FileKind::Keepalived,
                render_host(dc, hostname, &vips),
            ));
        }
    }
    crate::collect(files)
}

/// `<dc>/keepalived/<hostname>.conf`
pub fn path(dc: &str, hostname: &str) -> String {
    format!("{dc}/keepalived/{hostname}.conf")
}

#[derive(Serialize)]
struct Ctx<'a> {
    hostname: &'a str,
    dc: &'a str,
    instances: Vec<Instance>,
}

#[derive(Serialize)]
struct Instance {
    vip: String,
    instance: String,
    script: String,
    vlan: &'static str,
    vid: u16,
    address: String,
    prefix_len: u8,
    port: u16,
    vrid: u8,
    priority: u8,
    interface: String,
    src: String,
    peers: Vec<String>,
}

/// The host's configuration, or why it cannot be rendered (a member the DC does not
/// have, no interface on the VIP's VLAN, a template bug).
fn render_host(dc: &Dc, hostname: &str, vips: &[&Vip]) -> Result<String, String> {
    let instances = vips
        .iter()
        .map(|vip| instance(dc, hostname, vip))
        .collect::<Result<Vec<Instance>, String>>()?;
    let ctx = Ctx {
        hostname,
        dc: &dc.name,
        instances,
    };
    template::render(env(), TEMPLATE, ctx)
}

fn instance(dc: &Dc, hostname: &str, vip: &Vip) -> Result<Instance, String> {
    let member = vip
        .members
        .iter()
        .find(|m| m.hostname == hostname)
        .ok_or_else(|| format!("{hostname} is not a member of VIP {}", vip.name))?;
    let vlan = dc
        .vlan(vip.vlan)
        .ok_or_else(|| format!("VIP {}: DC has no {} VLAN", vip.name, vip.vlan))?;
    let interface = interface_name(dc, hostname, vip)?;
    Ok(Instance {
        vip: vip.name.clone(),
        instance: format!("VI_{}", vip.name),
        script: format!("chk_{}", vip.name),
        vlan: vip.vlan.as_str(),
        vid: vlan.vid,
        address: vip.address.to_string(),
        prefix_len: vip.prefix_len,
        port: vip.port,
        vrid: vip.vrid,
        priority: member.priority,
        interface,
        src: member.address.to_string(),
        peers: vip
            .members
            .iter()
            .filter(|m| m.hostname != hostname)
            .map(|m| m.address.to_string())
            .collect(),
    })
}

/// The host's device on the VIP's VLAN (`HostInterface::device`: one naming
/// convention, decided by the compiler, for every renderer).
fn interface_name(dc: &Dc, hostname: &str, vip: &Vip) -> Result<String, String> {
    let interfaces = dc
        .machines
        .iter()
        .find(|m| m.hostname == hostname)
        .map(|m| &m.interfaces)
        .or_else(|| {
            dc.vms
                .iter()
                .find(|v| v.hostname == hostname)
                .map(|v| &v.interfaces)
        });
    if let Some(ifs) = interfaces {
        return ifs
            .iter()
            .find(|i| i.vlan == vip.vlan)
            .map(|i| i.device.clone())
            .ok_or_else(|| {
                format!(
                    "{hostname} has no interface on the {} VLAN of VIP {}",
                    vip.vlan, vip.name
                )
            });
    }
    Err(format!(
        "VIP {} member {hostname} is neither a machine nor a VM of the DC",
        vip.name
    ))
}
