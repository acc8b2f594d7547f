//! The settings every phase relies on: hostname templates, pool shapes, fabric sizes.

use strata_diagnostics::{Diagnostic, Span, codes};
use strata_spec::Located;
use strata_spec::naming::{Template, Var};

/// The parsed hostname templates.
pub(crate) struct Names {
    pub spine: Template,
    pub leaf: Template,
    pub border: Template,
    pub machine: Template,
    /// Where the machine template was written (`None` for the default).
    pub machine_span: Option<Span>,
    pub vm: Template,
}

/// The hostname templates, each parsed and checked for the placeholders it needs.
pub(crate) fn naming_templates(
    org: &strata_spec::Organisation,
    diags: &mut Vec<Diagnostic>,
) -> Option<Names> {
    let n = &org.naming;
    let mut parse =
        |t: &Located<String>, allowed: &[Var], what: &str| match Template::parse(t, allowed) {
            Ok(t) => Some(t),
            Err(e) => {
                diags.push(
                    Diagnostic::new(codes::S0112, format!("invalid {what} naming template: {e}"))
                        .at_opt(t.span_opt())
                        .expected("a template of literal text and placeholders such as `{site}`")
                        .help("e.g. `{site}-{rack}-{role}{slot:02}`"),
                );
                None
            }
        };
    let spine = parse(&n.spine, &[Var::Site, Var::Index], "spine");
    let leaf = parse(&n.leaf, &[Var::Site, Var::Rack, Var::Index], "leaf");
    let border = parse(&n.border, &[Var::Site, Var::Index], "border");
    let machine = parse(
        &n.machine,
        &[Var::Site, Var::Rack, Var::Role, Var::Slot, Var::Index],
        "machine",
    );
    let vm = parse(&n.vm, &[Var::Site, Var::Name, Var::Role, Var::Index], "vm");
    let names = Names {
        spine: spine?,
        leaf: leaf?,
        border: border?,
        machine: machine?,
        machine_span: n.machine.span_opt(),
        vm: vm?,
    };
    // A machine template must tell machines of one rack and role apart.
    if !names.machine.uses(Var::Slot) && !names.machine.uses(Var::Index) {
        diags.push(
            Diagnostic::new(
                codes::S0112,
                "machine naming template has neither `{slot}` nor `{index}`",
            )
            .at_opt(n.machine.span_opt())
            .expected("`{slot}` or `{index}` in the template")
            .help("without it, two machines in one rack and role get the same name"),
        );
        return None;
    }
    if !names.vm.uses(Var::Name) {
        diags.push(
            Diagnostic::new(codes::S0112, "VM naming template has no `{name}`")
                .at_opt(n.vm.span_opt())
                .expected("`{name}` in the template")
                .help("VM hostnames are built from the VM's name, e.g. `{site}-{name}`"),
        );
        return None;
    }
    Some(names)
}

/// Prefix lengths that the pools can actually be carved into.
pub(crate) fn check_pool_shapes(p: &strata_spec::Pools, diags: &mut Vec<Diagnostic>) {
    let mut bad = |what: &str, len: &Located<u8>, lo: u8, hi: u8, why: &str| {
        if **len < lo || **len > hi {
            diags.push(
                Diagnostic::new(
                    codes::S0104,
                    format!("`{what}` is /{}, outside /{lo}-/{hi}", **len),
                )
                .at_opt(len.span_opt())
                .expected(format!("a prefix length from {lo} to {hi}"))
                .help(why.to_string()),
            );
        }
    };
    for (what, b, room) in [
        ("pools.site_supernets.prefix_len", &p.site_supernets, 2u8),
        ("pools.loopbacks.prefix_len", &p.loopbacks, 0),
        ("pools.vteps.prefix_len", &p.vteps, 0),
        ("pools.p2p.prefix_len", &p.p2p, 1),
        ("pools.tenant_subnets.prefix_len", &p.tenant_subnets, 2),
    ] {
        bad(
            what,
            &b.prefix_len,
            b.pool.prefix_len(),
            b.pool.max_prefix_len() - room,
            "each block is carved from the pool: it must be no larger than the pool, and hold at least one allocation",
        );
    }
    let site = &p.site_supernets;
    for (role, len) in p.vlan_subnets.iter() {
        bad(
            &format!("pools.vlan_subnets.{role}"),
            len,
            *site.prefix_len,
            site.pool.max_prefix_len() - 2,
            "a VLAN subnet lives inside its DC's block and needs room for a gateway and hosts",
        );
    }
    let ic = &p.interconnect;
    if ic.prefix_len() + 1 > ic.max_prefix_len() {
        diags.push(
            Diagnostic::new(
                codes::S0104,
                format!(
                    "`pools.interconnect` {} cannot hold a point-to-point link",
                    ic.value
                ),
            )
            .at(ic.span)
            .expected("a prefix of /31 or shorter (IPv6: /127)")
            .help("use a prefix such as 172.31.255.0/24"),
        );
    }
}

/// Fabric sizes the renderers and the switches can carry.
pub(crate) fn check_fabric_ranges(
    f: &strata_spec::Fabric,
    site: Span,
    diags: &mut Vec<Diagnostic>,
) {
    let checks: [(&str, &Located<u32>, u32, u32); 4] = [
        ("fabric.spines", &f.spines, 1, 64),
        ("fabric.leaves_per_rack", &f.leaves_per_rack, 1, 4),
        ("fabric.border_leaves", &f.border_leaves, 0, 16),
        ("fabric.underlay.max_paths", &f.underlay.max_paths, 1, 256),
    ];
    for (path, v, lo, hi) in checks {
        if **v < lo || **v > hi {
            diags.push(
                Diagnostic::new(
                    codes::S0104,
                    format!("`{path}` is {}, outside {lo}-{hi}", **v),
                )
                .at(v.span_opt().unwrap_or(site))
                .expected(format!("a value from {lo} to {hi}"))
                .help(format!("set `{path}` between {lo} and {hi}")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::testing::{SMALL, small_with, spec};

    fn codes_of(diags: &[Diagnostic]) -> Vec<&str> {
        diags.iter().map(|d| d.code.as_str()).collect()
    }

    #[test]
    fn templates_parse_and_must_tell_hosts_apart() {
        let s = spec(SMALL);
        let mut diags = Vec::new();
        let names = naming_templates(s.organisation.as_ref().expect("org"), &mut diags);
        assert!(names.is_some() && diags.is_empty());

        let s = small_with(
            "domain: x.net }",
            "domain: x.net, naming: { machine: \"{site}-{rack}\" } }",
        );
        let mut diags = Vec::new();
        assert!(naming_templates(s.organisation.as_ref().expect("org"), &mut diags).is_none());
        assert_eq!(codes_of(&diags), ["S0112"]);
    }

    #[test]
    fn pools_must_be_carvable() {
        let s = small_with(
            "loopbacks: { pool: 10.255.0.0/16, prefix_len: 24 }",
            "loopbacks: { pool: 10.255.0.0/16, prefix_len: 8 }",
        );
        let mut diags = Vec::new();
        check_pool_shapes(s.pools.as_ref().expect("pools"), &mut diags);
        assert_eq!(codes_of(&diags), ["S0104"]);
        assert!(diags[0].message.contains("pools.loopbacks.prefix_len"));
    }

    #[test]
    fn fabric_sizes_are_bounded() {
        let s = small_with("fabric: { spines: 2,", "fabric: { spines: 65,");
        let mut diags = Vec::new();
        let bp = s.blueprint.as_ref().expect("blueprint");
        check_fabric_ranges(&bp.fabric, bp.span, &mut diags);
        assert_eq!(codes_of(&diags), ["S0104"]);
        assert!(diags[0].message.contains("`fabric.spines` is 65"));
    }
}
