//! Proxmox VE 9 HA rules of one DC's cluster: the blueprint's rules resolved to this
//! DC's VMs (by role and name) and nodes (by rack), and checked the way Proxmox VE
//! checks its rules file (`PVE::HA::Rules::{NodeAffinity, ResourceAffinity}`): a rule
//! Proxmox would mark as conflicting or ineffective is an error here, before apply.
//! Every VM a rule selects becomes HA-managed (Proxmox refuses rules over unmanaged
//! resources).

use std::collections::{BTreeMap, BTreeSet};

use strata_diagnostics::{Diagnostic, Span, codes};
use strata_spec::{HaAffinity, HaRule, HaRuleKind, HaVmRole, Located, ProxmoxCluster, VmRole};

use super::super::diag::unknown_ref;
use crate::model::{ProxmoxHaRule, Vm, VmKind};

/// A node of the cluster and the rack it sits in.
pub(crate) struct NodeInRack<'a> {
    pub hostname: &'a str,
    pub rack: &'a str,
}

/// What resolving a cluster's rules found: the rules, and whether a reference did
/// not resolve (which stops the compile: no fleet with a half-resolved rule).
pub(crate) struct HaRules {
    pub rules: Vec<ProxmoxHaRule>,
    pub unresolved: bool,
}

fn role_matches(role: HaVmRole, kind: VmKind) -> bool {
    matches!(
        (role, kind),
        (HaVmRole::MaasRegion, VmKind::MaasRegion)
            | (HaVmRole::MaasRack, VmKind::MaasRack)
            | (
                HaVmRole::OpenstackControl,
                VmKind::Declared(VmRole::OpenstackControl)
            )
            | (
                HaVmRole::OpenstackNetwork,
                VmKind::Declared(VmRole::OpenstackNetwork)
            )
            | (HaVmRole::Monitoring, VmKind::Declared(VmRole::Monitoring))
            | (HaVmRole::CiRunner, VmKind::Declared(VmRole::CiRunner))
            | (HaVmRole::Service, VmKind::Declared(VmRole::Service))
    )
}

fn rule_error(rule: &HaRule, at: Option<Span>, message: String) -> Diagnostic {
    Diagnostic::new(codes::S0408, message).at_opt(at.or(rule.name.span_opt()))
}

/// The options a rule's type does not have, and a missing `affinity`: the same for
/// every DC, reported once by `merge_same_cause`.
fn check_shape(rule: &HaRule, diags: &mut Vec<Diagnostic>) {
    let name = rule.name.as_str();
    match *rule.kind {
        HaRuleKind::ResourceAffinity => {
            if rule.affinity.is_none() {
                diags.push(
                    rule_error(rule, rule.kind.span_opt(), format!("HA rule `{name}` is a resource-affinity rule without `affinity`"))
                        .expected("`affinity: negative` (keep the VMs on different nodes) or `affinity: positive` (keep them on one node)")
                        .help("add `affinity: negative` to spread replicas of a service across nodes"),
                );
            }
            if let Some(r) = rule.racks.first() {
                diags.push(
                    rule_error(
                        rule,
                        r.span_opt(),
                        format!("HA rule `{name}` is a resource-affinity rule, which has no nodes"),
                    )
                    .expected("`racks` only on `type: node-affinity` rules")
                    .help("remove `racks`, or make a separate node-affinity rule for these VMs"),
                );
            }
            if let Some(s) = &rule.strict {
                diags.push(
                    rule_error(
                        rule,
                        s.span_opt(),
                        format!(
                            "HA rule `{name}` is a resource-affinity rule, which is always strict"
                        ),
                    )
                    .expected("`strict` only on `type: node-affinity` rules")
                    .help("remove `strict`"),
                );
            }
            if let Some(f) = &rule.failback {
                diags.push(
                    rule_error(
                        rule,
                        f.span_opt(),
                        format!(
                            "HA rule `{name}` is a resource-affinity rule, which has no preferred nodes to fail back to"
                        ),
                    )
                    .expected("`failback` only on `type: node-affinity` rules")
                    .help("remove `failback`, or set it on the node-affinity rule of these VMs"),
                );
            }
        }
        HaRuleKind::NodeAffinity => {
            if let Some(a) = &rule.affinity {
                diags.push(
                    rule_error(rule, a.span_opt(), format!("HA rule `{name}` is a node-affinity rule; `affinity` belongs to resource-affinity rules"))
                        .expected("no `affinity` on `type: node-affinity` rules")
                        .help("to keep VMs apart use `type: resource-affinity` with `affinity: negative`; to keep them on some nodes, list the racks"),
                );
            }
        }
    }
    if rule.roles.is_empty() && rule.vms.is_empty() {
        diags.push(
            rule_error(rule, None, format!("HA rule `{name}` selects no VM"))
                .expected("`roles:` or `vms:` (or both)")
                .help("list the VM roles (e.g. `roles: [openstack-control]`) or VM names the rule governs"),
        );
    }
}

/// Resolve and check the cluster's rules for one DC; mark every VM a rule selects as
/// HA-managed.
pub(crate) fn resolve_ha_rules(
    site: &str,
    cluster: &ProxmoxCluster,
    nodes: &[NodeInRack<'_>],
    vms: &mut [Vm],
    diags: &mut Vec<Diagnostic>,
) -> HaRules {
    let mut unresolved = false;
    let mut rules = Vec::new();
    let mut seen: BTreeMap<&str, Option<Span>> = BTreeMap::new();
    let in_cluster: Vec<usize> = (0..vms.len())
        .filter(|&i| vms[i].cluster == cluster.name.as_str())
        .collect();
    // The selected VMs of each rule, with the rule, for the cross-rule checks.
    let mut selected: Vec<(&HaRule, BTreeSet<String>)> = Vec::new();
    for rule in &cluster.ha_rules {
        let name = rule.name.as_str();
        if let Some(first) = seen.insert(name, rule.name.span_opt()) {
            let mut d = Diagnostic::new(
                codes::S0204,
                format!(
                    "two HA rules of cluster `{}` are named `{name}`",
                    cluster.name.as_str()
                ),
            )
            .at_opt(rule.name.span_opt())
            .expected("a rule id unique in the cluster")
            .help("rename one of them");
            if let Some(f) = first {
                d = d.related(f, "first defined here");
            }
            diags.push(d);
            continue;
        }
        check_shape(rule, diags);
        let mut hosts: BTreeSet<String> = BTreeSet::new();
        for &i in &in_cluster {
            if rule.roles.iter().any(|r| role_matches(**r, vms[i].kind)) {
                hosts.insert(vms[i].hostname.clone());
            }
        }
        for v in &rule.vms {
            match in_cluster.iter().find(|&&i| vms[i].name == v.as_str()) {
                Some(&i) => {
                    hosts.insert(vms[i].hostname.clone());
                }
                None => {
                    let known: Vec<&str> =
                        in_cluster.iter().map(|&i| vms[i].name.as_str()).collect();
                    let mut d = unknown_ref(
                        "VM",
                        v.as_str(),
                        v.span_opt().unwrap_or(rule.name.span),
                        &known,
                    );
                    d.message = format!(
                        "HA rule `{name}` names VM `{}`, which `{site}` does not have on cluster `{}`",
                        v.as_str(),
                        cluster.name.as_str()
                    );
                    diags.push(d);
                    unresolved = true;
                }
            }
        }
        let mut rule_nodes: Vec<String> = Vec::new();
        if *rule.kind == HaRuleKind::NodeAffinity {
            if rule.racks.is_empty() {
                rule_nodes = nodes.iter().map(|n| n.hostname.to_string()).collect();
            } else {
                for r in &rule.racks {
                    let here: Vec<&NodeInRack<'_>> =
                        nodes.iter().filter(|n| n.rack == r.as_str()).collect();
                    if here.is_empty() {
                        let mut racks: Vec<&str> = nodes.iter().map(|n| n.rack).collect();
                        racks.sort_unstable();
                        racks.dedup();
                        diags.push(
                            Diagnostic::new(codes::S0408, format!("HA rule `{name}` names rack `{}`, which holds no node of cluster `{}` in `{site}`", r.as_str(), cluster.name.as_str()))
                                .at_opt(r.span_opt().or(rule.name.span_opt()))
                                .expected(format!("a rack with a Proxmox node: {}", racks.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")))
                                .help("name racks that hold nodes of this cluster in every DC (the rule is the blueprint's, the same everywhere)"),
                        );
                    }
                    rule_nodes.extend(here.iter().map(|n| n.hostname.to_string()));
                }
            }
            rule_nodes.sort();
            rule_nodes.dedup();
            if rule_nodes.is_empty() && rule.racks.is_empty() {
                diags.push(
                    rule_error(rule, None, format!("HA rule `{name}` has no node to run on: cluster `{}` has no nodes in `{site}`", cluster.name.as_str()))
                        .expected("a cluster with Proxmox nodes")
                        .help("give the cluster nodes, or remove the rule"),
                );
            }
        }
        let has_selector = !rule.roles.is_empty() || !rule.vms.is_empty();
        if *rule.kind == HaRuleKind::NodeAffinity && has_selector && hosts.is_empty() && !unresolved
        {
            diags.push(
                rule_error(rule, None, format!("HA rule `{name}` selects no VM in `{site}`"))
                    .expected("at least one VM of the selected roles or names in every DC")
                    .help("select roles every DC has, or remove the rule (Proxmox refuses a rule without resources)"),
            );
        }
        if *rule.kind == HaRuleKind::ResourceAffinity && has_selector && hosts.len() < 2 {
            diags.push(
                rule_error(rule, None, format!("HA rule `{name}` selects {} VM{} in `{site}`; a resource-affinity rule needs at least two", hosts.len(), if hosts.len() == 1 { "" } else { "s" }))
                    .expected("two or more VMs, which the rule keeps together or apart")
                    .help("select more VMs, or remove the rule (Proxmox marks it ineffective)"),
            );
        }
        if rule.affinity.as_ref().map(|a| **a) == Some(HaAffinity::Negative)
            && *rule.kind == HaRuleKind::ResourceAffinity
            && hosts.len() > nodes.len()
        {
            diags.push(
                rule_error(rule, rule.affinity.as_ref().and_then(Located::span_opt), format!("HA rule `{name}` keeps {} VMs on different nodes, but cluster `{}` has {} node{} in `{site}`", hosts.len(), cluster.name.as_str(), nodes.len(), if nodes.len() == 1 { "" } else { "s" }))
                    .expected(format!("at most {} VMs in a negative resource-affinity rule", nodes.len()))
                    .help("add nodes to the cluster, or select fewer VMs"),
            );
        }
        for h in &hosts {
            if let Some(v) = vms.iter_mut().find(|v| &v.hostname == h) {
                v.ha = true;
            }
        }
        rules.push(ProxmoxHaRule {
            name: name.to_string(),
            kind: *rule.kind,
            affinity: rule.affinity.as_ref().map(|a| **a),
            nodes: rule_nodes,
            strict: rule.strict.as_ref().is_some_and(|s| **s),
            failback: rule.failback.as_ref().is_none_or(|f| **f),
            vms: hosts.iter().cloned().collect(),
        });
        selected.push((rule, hosts));
    }
    cross_rule_checks(site, &selected, diags);
    rules.sort_by(|a, b| a.name.cmp(&b.name));
    HaRules { rules, unresolved }
}

/// A VM in two node-affinity rules; a positive and a negative resource-affinity rule
/// sharing two VMs.
fn cross_rule_checks(
    site: &str,
    selected: &[(&HaRule, BTreeSet<String>)],
    diags: &mut Vec<Diagnostic>,
) {
    let node_rules: Vec<&(&HaRule, BTreeSet<String>)> = selected
        .iter()
        .filter(|(r, _)| *r.kind == HaRuleKind::NodeAffinity)
        .collect();
    for (i, (later, vms)) in node_rules.iter().enumerate() {
        for (earlier, other) in &node_rules[..i] {
            let both: Vec<&String> = vms.intersection(other).collect();
            if let Some(vm) = both.first() {
                let mut d = rule_error(later, None, format!("VM `{vm}` in `{site}` is in two node-affinity rules, `{}` and `{}`", earlier.name.as_str(), later.name.as_str()))
                    .expected("each VM in at most one node-affinity rule (Proxmox VE ignores both rules otherwise)")
                    .help("narrow one rule's roles or VMs so they do not overlap");
                if let Some(s) = earlier.name.span_opt() {
                    d = d.related(s, "the other rule");
                }
                diags.push(d);
            }
        }
    }
    let by_affinity = |want: HaAffinity| {
        selected.iter().filter(move |(r, _)| {
            *r.kind == HaRuleKind::ResourceAffinity
                && r.affinity.as_ref().map(|a| **a) == Some(want)
        })
    };
    for (neg, nvms) in by_affinity(HaAffinity::Negative) {
        for (pos, pvms) in by_affinity(HaAffinity::Positive) {
            let shared = nvms.intersection(pvms).count();
            if shared >= 2 {
                let mut d = rule_error(neg, None, format!("HA rules `{}` (negative) and `{}` (positive) share {shared} VMs in `{site}`: they cannot be kept apart and together at once", neg.name.as_str(), pos.name.as_str()))
                    .expected("positive and negative resource-affinity rules sharing at most one VM")
                    .help("remove the shared VMs from one of the rules");
                if let Some(s) = pos.name.span_opt() {
                    d = d.related(s, "the positive rule");
                }
                diags.push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VmOrigin;
    use strata_spec::{Name, VmRole};

    fn vm(name: &str, kind: VmKind) -> Vm {
        Vm {
            name: name.into(),
            hostname: format!("fra1-{name}"),
            fqdn: String::new(),
            kind,
            origin: VmOrigin::Declared,
            cluster: "infra".into(),
            cores: 1,
            memory_mib: 1024,
            disk_gb: 10,
            storage: "local".into(),
            storage_span: None,
            ha: false,
            interfaces: vec![],
            tags: vec![],
            span: None,
        }
    }

    fn name(s: &str) -> Located<Name> {
        Located::synthetic(Name(s.to_string()))
    }

    fn rule(n: &str, kind: HaRuleKind) -> HaRule {
        HaRule {
            name: name(n),
            kind: Located::synthetic(kind),
            affinity: None,
            racks: vec![],
            strict: None,
            failback: None,
            roles: vec![],
            vms: vec![],
        }
    }

    fn cluster(rules: Vec<HaRule>) -> ProxmoxCluster {
        let mut c: ProxmoxCluster = serde_json::from_value(serde_json::json!({
            "name": "infra", "nodes": 3, "corosync_links": ["corosync"],
            "storage": [{"name": "local", "kind": "dir", "tier": "ssd"}]
        }))
        .expect("cluster");
        c.ha_rules = rules;
        c
    }

    const NODES: [NodeInRack<'static>; 3] = [
        NodeInRack {
            hostname: "pve1",
            rack: "r01",
        },
        NodeInRack {
            hostname: "pve2",
            rack: "r01",
        },
        NodeInRack {
            hostname: "pve3",
            rack: "r02",
        },
    ];

    fn ctl_vms() -> Vec<Vm> {
        vec![
            vm("os-ctl1", VmKind::Declared(VmRole::OpenstackControl)),
            vm("os-ctl2", VmKind::Declared(VmRole::OpenstackControl)),
            vm("os-ctl3", VmKind::Declared(VmRole::OpenstackControl)),
            vm("region1", VmKind::MaasRegion),
            vm("ci1", VmKind::Declared(VmRole::CiRunner)),
        ]
    }

    fn codes_of(d: &[Diagnostic]) -> Vec<&str> {
        d.iter().map(|d| d.code.as_str()).collect()
    }

    #[test]
    fn a_negative_rule_by_role_selects_the_role_and_makes_it_ha() {
        let mut r = rule("ctl-apart", HaRuleKind::ResourceAffinity);
        r.affinity = Some(Located::synthetic(HaAffinity::Negative));
        r.roles = vec![Located::synthetic(HaVmRole::OpenstackControl)];
        let mut vms = ctl_vms();
        let mut d = Vec::new();
        let got = resolve_ha_rules("fra1", &cluster(vec![r]), &NODES, &mut vms, &mut d);
        assert!(d.is_empty(), "{d:#?}");
        assert_eq!(
            got.rules[0].vms,
            ["fra1-os-ctl1", "fra1-os-ctl2", "fra1-os-ctl3"]
        );
        assert!(got.rules[0].nodes.is_empty());
        let ha: Vec<&str> = vms
            .iter()
            .filter(|v| v.ha)
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(ha, ["os-ctl1", "os-ctl2", "os-ctl3"]);
    }

    #[test]
    fn node_affinity_takes_the_nodes_of_its_racks_or_every_node() {
        let mut a = rule("region-r02", HaRuleKind::NodeAffinity);
        a.racks = vec![name("r02")];
        a.roles = vec![Located::synthetic(HaVmRole::MaasRegion)];
        let mut b = rule("ci-anywhere", HaRuleKind::NodeAffinity);
        b.vms = vec![name("ci1")];
        let mut d = Vec::new();
        let got = resolve_ha_rules("fra1", &cluster(vec![a, b]), &NODES, &mut ctl_vms(), &mut d);
        assert!(d.is_empty(), "{d:#?}");
        assert_eq!(got.rules[0].name, "ci-anywhere");
        assert_eq!(got.rules[0].nodes, ["pve1", "pve2", "pve3"]);
        assert_eq!(got.rules[1].nodes, ["pve3"]);
    }

    #[test]
    fn what_proxmox_would_flag_is_an_error_here() {
        // More VMs kept apart than nodes.
        let mut r = rule("apart", HaRuleKind::ResourceAffinity);
        r.affinity = Some(Located::synthetic(HaAffinity::Negative));
        r.roles = vec![
            Located::synthetic(HaVmRole::OpenstackControl),
            Located::synthetic(HaVmRole::MaasRegion),
        ];
        let mut d = Vec::new();
        resolve_ha_rules("fra1", &cluster(vec![r]), &NODES, &mut ctl_vms(), &mut d);
        assert_eq!(codes_of(&d), ["S0408"]);
        assert!(
            d[0].message.contains("4 VMs on different nodes"),
            "{}",
            d[0].message
        );

        // A resource-affinity rule over one VM, without affinity.
        let mut r = rule("lonely", HaRuleKind::ResourceAffinity);
        r.vms = vec![name("ci1")];
        let mut d = Vec::new();
        resolve_ha_rules("fra1", &cluster(vec![r]), &NODES, &mut ctl_vms(), &mut d);
        assert_eq!(codes_of(&d), ["S0408", "S0408"]);

        // One VM in two node-affinity rules; positive and negative sharing two VMs.
        let mut a = rule("a", HaRuleKind::NodeAffinity);
        a.roles = vec![Located::synthetic(HaVmRole::OpenstackControl)];
        let mut b = rule("b", HaRuleKind::NodeAffinity);
        b.vms = vec![name("os-ctl2")];
        let mut p = rule("together", HaRuleKind::ResourceAffinity);
        p.affinity = Some(Located::synthetic(HaAffinity::Positive));
        p.vms = vec![name("os-ctl1"), name("os-ctl2")];
        let mut n = rule("apart", HaRuleKind::ResourceAffinity);
        n.affinity = Some(Located::synthetic(HaAffinity::Negative));
        n.roles = vec![Located::synthetic(HaVmRole::OpenstackControl)];
        let mut d = Vec::new();
        resolve_ha_rules(
            "fra1",
            &cluster(vec![a, b, p, n]),
            &NODES,
            &mut ctl_vms(),
            &mut d,
        );
        assert_eq!(codes_of(&d), ["S0408", "S0408"], "{d:#?}");
        assert!(d[0].message.contains("two node-affinity rules"));
        assert!(d[1].message.contains("cannot be kept apart and together"));
    }

    #[test]
    fn a_rule_whose_roles_this_dc_lacks_is_an_error_here() {
        let mut r = rule("mon-pin", HaRuleKind::NodeAffinity);
        r.roles = vec![Located::synthetic(HaVmRole::Monitoring)];
        let mut d = Vec::new();
        resolve_ha_rules("fra1", &cluster(vec![r]), &NODES, &mut ctl_vms(), &mut d);
        assert_eq!(codes_of(&d), ["S0408"], "{d:#?}");
        assert!(d[0].message.contains("selects no VM in `fra1`"));
    }

    #[test]
    fn failback_belongs_to_node_affinity_rules_and_defaults_to_on() {
        let mut pin = rule("region-r02", HaRuleKind::NodeAffinity);
        pin.racks = vec![name("r02")];
        pin.roles = vec![Located::synthetic(HaVmRole::MaasRegion)];
        pin.failback = Some(Located::synthetic(false));
        let mut any = rule("ci-anywhere", HaRuleKind::NodeAffinity);
        any.vms = vec![name("ci1")];
        let mut d = Vec::new();
        let got = resolve_ha_rules(
            "fra1",
            &cluster(vec![pin, any]),
            &NODES,
            &mut ctl_vms(),
            &mut d,
        );
        assert!(d.is_empty(), "{d:#?}");
        let failback: Vec<(&str, bool)> = got
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.failback))
            .collect();
        assert_eq!(failback, [("ci-anywhere", true), ("region-r02", false)]);

        let mut apart = rule("apart", HaRuleKind::ResourceAffinity);
        apart.affinity = Some(Located::synthetic(HaAffinity::Negative));
        apart.roles = vec![Located::synthetic(HaVmRole::OpenstackControl)];
        apart.failback = Some(Located::synthetic(false));
        let mut d = Vec::new();
        resolve_ha_rules(
            "fra1",
            &cluster(vec![apart]),
            &NODES,
            &mut ctl_vms(),
            &mut d,
        );
        assert_eq!(codes_of(&d), ["S0408"], "{d:#?}");
        assert!(d[0].message.contains("no preferred nodes"), "{d:#?}");
    }

    #[test]
    fn options_of_the_other_type_and_unknown_names_are_reported() {
        let mut r = rule("odd", HaRuleKind::NodeAffinity);
        r.affinity = Some(Located::synthetic(HaAffinity::Negative));
        r.racks = vec![name("r09")];
        r.vms = vec![name("os-ctl9")];
        let mut d = Vec::new();
        let got = resolve_ha_rules("fra1", &cluster(vec![r]), &NODES, &mut ctl_vms(), &mut d);
        assert!(got.unresolved);
        assert_eq!(codes_of(&d), ["S0408", "S0208", "S0408"], "{d:#?}");
        assert_eq!(d[1].help.as_deref(), Some("did you mean `os-ctl1`?"));

        let mut d = Vec::new();
        resolve_ha_rules(
            "fra1",
            &cluster(vec![
                rule("empty", HaRuleKind::NodeAffinity),
                rule("empty", HaRuleKind::NodeAffinity),
            ]),
            &NODES,
            &mut ctl_vms(),
            &mut d,
        );
        assert_eq!(codes_of(&d), ["S0408", "S0204"], "{d:#?}");
    }
}
