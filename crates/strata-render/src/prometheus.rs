//! Prometheus configuration: one `<dc>/prometheus/prometheus.yml` per DC and one
//! `global/prometheus/federation.yml` that federates them (Prometheus 2.42 syntax,
//! checked with `promtool check config`).
//!
//! Invariant: a pure function of the compiled fleet (sorted iteration, no clock, no
//! secrets); every target is derived from the fleet's hosts, switches and VIPs.
//!
//! A DC's Prometheus (on the DC's monitoring VMs, `external_labels: {dc, region}`)
//! scrapes, with static targets:
//! * `node`: node_exporter (`:9100`) on every machine and VM, by FQDN, grouped with the
//!   labels `role` (machine role, or the VM's kind) and `rack` (machines only);
//! * `frr`: frr_exporter (`:9342`) on every switch, by loopback address, one group per
//!   switch labelled `instance` (the hostname), `role` (`spine`, `leaf`, `border`) and
//!   `rack` where the switch sits in one;
//! * `maas-region` and `maas-rack`: the MAAS controllers' own exporters, `:5239/metrics`
//!   on region controllers and `:5249/metrics` on rack controllers;
//! * `maas-cluster`: MAAS's cluster statistics at `:5240/MAAS/metrics`, through the VIP
//!   held by the region controllers (one scrape, not one per region controller), or on
//!   every region controller when no such VIP exists. MAAS serves the statistics only
//!   once its `prometheus_enabled` setting is on.
//!
//! The global Prometheus has one `federate-<dc>` job per DC with monitoring VMs,
//! scraping `/federate` on `<monitoring VM FQDN>:9090` with `honor_labels: true` and
//! `match[]` = `{job=~".+"}` (every series of the DC), so each series keeps its DC's
//! labels.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;
use strata_fleet::{Dc, Fleet, SwitchRole, VmKind};

use crate::{FileKind, RenderError, RenderedFile, template};

const DC_TEMPLATE: &str = "prometheus/prometheus.yml.j2";
const FEDERATION_TEMPLATE: &str = "prometheus/federation.yml.j2";

/// Where the global federation config goes.
pub const FEDERATION_PATH: &str = "global/prometheus/federation.yml";

const NODE_EXPORTER_PORT: u16 = 9100;
const FRR_EXPORTER_PORT: u16 = 9342;
const MAAS_REGION_PORT: u16 = 5239;
const MAAS_RACK_PORT: u16 = 5249;
const MAAS_API_PORT: u16 = 5240;
const PROMETHEUS_PORT: u16 = 9090;

/// What the global Prometheus pulls from every DC.
const FEDERATE_MATCH: &[&str] = &[r#"{job=~".+"}"#];

static ENV: OnceLock<template::Templates> = OnceLock::new();

fn env() -> &'static template::Templates {
    ENV.get_or_init(|| {
        let mut env = template::environment(&[
            (
                DC_TEMPLATE,
                include_str!("../templates/prometheus/prometheus.yml.j2"),
            ),
            (
                FEDERATION_TEMPLATE,
                include_str!("../templates/prometheus/federation.yml.j2"),
            ),
        ]);
        // A YAML double-quoted scalar (JSON string syntax is valid YAML).
        env.add_filter("yaml_str", |value: String| {
            serde_json::to_string(&value).unwrap_or_default()
        });
        env
    })
}

/// Render every DC's `prometheus.yml` and the global federation config, sorted by path.
pub fn render(fleet: &Fleet) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files: Vec<_> = fleet
        .dcs
        .iter()
        .map(|dc| {
            crate::file(
                dc_path(&dc.name),
                FileKind::Prometheus,
                template::render(env(), DC_TEMPLATE, dc_context(fleet, dc)),
            )
        })
        .collect();
    files.push(crate::file(
        FEDERATION_PATH.to_string(),
        FileKind::Prometheus,
        template::render(env(), FEDERATION_TEMPLATE, federation_context(fleet)),
    ));
    crate::collect(files)
}

/// `<dc>/prometheus/prometheus.yml`
pub fn dc_path(dc: &str) -> String {
    format!("{dc}/prometheus/prometheus.yml")
}

#[derive(Serialize)]
struct DcCtx<'a> {
    dc: &'a str,
    region: &'a str,
    monitoring: Vec<String>,
    jobs: Vec<Job>,
}

#[derive(Serialize)]
struct Job {
    name: &'static str,
    comment: &'static str,
    metrics_path: Option<&'static str>,
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct Group {
    targets: Vec<String>,
    labels: Vec<Label>,
}

#[derive(Serialize)]
struct Label {
    name: &'static str,
    value: String,
}

/// The FQDN of a host of `dc` (the fleet's own when it is a machine or VM).
fn fqdn(fleet: &Fleet, dc: &Dc, hostname: &str) -> String {
    dc.vms
        .iter()
        .find(|v| v.hostname == hostname)
        .map(|v| v.fqdn.clone())
        .or_else(|| {
            dc.machines
                .iter()
                .find(|m| m.hostname == hostname)
                .map(|m| m.fqdn.clone())
        })
        .unwrap_or_else(|| format!("{hostname}.{}.{}", dc.name, fleet.organisation.domain))
}

fn vm_role(kind: VmKind) -> &'static str {
    match kind {
        VmKind::MaasRegion => "maas-region",
        VmKind::MaasRack => "maas-rack",
        VmKind::Declared(role) => role.as_str(),
    }
}

fn target(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn label(name: &'static str, value: impl Into<String>) -> Label {
    Label {
        name,
        value: value.into(),
    }
}

fn dc_context<'a>(fleet: &'a Fleet, dc: &'a Dc) -> DcCtx<'a> {
    let mut jobs = Vec::new();

    // node_exporter: grouped by (role, rack).
    let mut node: BTreeMap<(&str, Option<&str>), Vec<String>> = BTreeMap::new();
    for m in &dc.machines {
        node.entry((m.role.as_str(), Some(m.rack.as_str())))
            .or_default()
            .push(target(&m.fqdn, NODE_EXPORTER_PORT));
    }
    for v in &dc.vms {
        node.entry((vm_role(v.kind), None))
            .or_default()
            .push(target(&v.fqdn, NODE_EXPORTER_PORT));
    }
    jobs.push(Job {
        name: "node",
        comment: "node_exporter on every machine and VM.",
        metrics_path: None,
        groups: node
            .into_iter()
            .map(|((role, rack), mut targets)| {
                targets.sort();
                let mut labels = vec![label("role", role)];
                labels.extend(rack.map(|r| label("rack", r)));
                Group { targets, labels }
            })
            .collect(),
    });

    // frr_exporter: one group per switch, named by hostname.
    let mut switches: Vec<_> = dc.switches.iter().collect();
    switches.sort_by(|a, b| a.name.cmp(&b.name));
    jobs.push(Job {
        name: "frr",
        comment: "frr_exporter on every switch, by loopback; `instance` is the hostname.",
        metrics_path: None,
        groups: switches
            .into_iter()
            .map(|sw| {
                let mut labels = vec![
                    label("instance", sw.name.as_str()),
                    label(
                        "role",
                        match sw.role {
                            SwitchRole::Spine => "spine",
                            SwitchRole::Leaf => "leaf",
                            SwitchRole::Border => "border",
                        },
                    ),
                ];
                labels.extend(sw.rack.as_deref().map(|r| label("rack", r)));
                Group {
                    targets: vec![target(&sw.loopback.to_string(), FRR_EXPORTER_PORT)],
                    labels,
                }
            })
            .collect(),
    });

    // MAAS controllers' own exporters.
    let mut regions: Vec<String> = dc
        .maas
        .region_controllers
        .iter()
        .map(|h| target(&fqdn(fleet, dc, h), MAAS_REGION_PORT))
        .collect();
    regions.sort();
    if !regions.is_empty() {
        jobs.push(Job {
            name: "maas-region",
            comment: "MAAS region controllers (regiond's exporter).",
            metrics_path: None,
            groups: vec![Group {
                targets: regions,
                labels: vec![label("role", "maas-region")],
            }],
        });
    }
    let mut racks: Vec<String> = dc
        .maas
        .rack_controllers
        .iter()
        .map(|r| target(&fqdn(fleet, dc, &r.hostname), MAAS_RACK_PORT))
        .collect();
    racks.sort();
    if !racks.is_empty() {
        jobs.push(Job {
            name: "maas-rack",
            comment: "MAAS rack controllers (rackd's exporter).",
            metrics_path: None,
            groups: vec![Group {
                targets: racks,
                labels: vec![label("role", "maas-rack")],
            }],
        });
    }

    // MAAS cluster statistics, once, through the region controllers' VIP.
    let mut region_hosts: Vec<&str> = dc
        .maas
        .region_controllers
        .iter()
        .map(String::as_str)
        .collect();
    region_hosts.sort();
    let region_vip = dc.vips.iter().find(|vip| {
        let mut members: Vec<&str> = vip.members.iter().map(|m| m.hostname.as_str()).collect();
        members.sort();
        !members.is_empty() && members == region_hosts
    });
    let cluster_targets: Vec<String> = match region_vip {
        Some(vip) => vec![target(&vip.address.to_string(), MAAS_API_PORT)],
        None => region_hosts
            .iter()
            .map(|h| target(&fqdn(fleet, dc, h), MAAS_API_PORT))
            .collect(),
    };
    if !cluster_targets.is_empty() {
        jobs.push(Job {
            name: "maas-cluster",
            comment: "MAAS cluster statistics (needs MAAS's prometheus_enabled setting).",
            metrics_path: Some("/MAAS/metrics"),
            groups: vec![Group {
                targets: cluster_targets,
                labels: vec![label("role", "maas-region")],
            }],
        });
    }

    let mut monitoring = dc.openstack.monitoring.clone();
    monitoring.sort();
    DcCtx {
        dc: &dc.name,
        region: &dc.region,
        monitoring,
        jobs,
    }
}

#[derive(Serialize)]
struct FederationCtx<'a> {
    fleet_id: &'a str,
    dcs: Vec<FederatedDc<'a>>,
    selectors: &'static [&'static str],
}

#[derive(Serialize)]
struct FederatedDc<'a> {
    name: &'a str,
    region: &'a str,
    targets: Vec<String>,
}

fn federation_context(fleet: &Fleet) -> FederationCtx<'_> {
    let mut dcs: Vec<FederatedDc<'_>> = fleet
        .dcs
        .iter()
        .map(|dc| {
            let mut targets: Vec<String> = dc
                .openstack
                .monitoring
                .iter()
                .map(|h| target(&fqdn(fleet, dc, h), PROMETHEUS_PORT))
                .collect();
            targets.sort();
            FederatedDc {
                name: &dc.name,
                region: &dc.region,
                targets,
            }
        })
        .filter(|dc| !dc.targets.is_empty())
        .collect();
    dcs.sort_by(|a, b| a.name.cmp(b.name));
    FederationCtx {
        fleet_id: &fleet.organisation.fleet_id,
        dcs,
        selectors: FEDERATE_MATCH,
    }
}
