//! Fitting a rendered `frr.conf` to the switches a lab builds.
//!
//! A scaled-down lab builds only some of a DC's switches, but every rendered file
//! names all of its switch's neighbours. The lab does not re-render: it takes the file
//! `strata render` writes and cuts out exactly two kinds of statement, each only for a
//! peer the lab does not build:
//!
//! * every `neighbor <address> ...` line of such a peer (the peer-group, policy and
//!   address-family lines are kept: they name groups, not peers), and
//! * the whole `interface <name>` block (through its `exit`, plus the `!` after it) of
//!   an interface towards such a peer, since the lab creates no such interface.
//!
//! Everything else, byte for byte, is the rendered file; a comment at the top lists
//! what was cut. So a lab tests the renderer's output, and check 1 compares the
//! sessions against the sessions of the built subset.

use std::collections::BTreeSet;

/// The file after pruning, and one line per removed peer or interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub text: String,
    pub removed: Vec<String>,
}

/// Remove the `neighbor` lines of `neighbors` (addresses, as written in the file) and
/// the `interface` blocks of `interfaces` (names).
pub fn prune(conf: &str, neighbors: &BTreeSet<String>, interfaces: &BTreeSet<String>) -> Pruned {
    let mut kept: Vec<&str> = Vec::new();
    let mut removed_neighbors: BTreeSet<&str> = BTreeSet::new();
    let mut removed_interfaces: BTreeSet<&str> = BTreeSet::new();
    let mut lines = conf.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("interface ")
            && !line.starts_with(' ')
            && interfaces.contains(name.trim())
        {
            removed_interfaces.insert(name.trim());
            for inner in lines.by_ref() {
                if inner.trim() == "exit" {
                    break;
                }
            }
            if lines.peek().is_some_and(|l| l.trim() == "!") {
                lines.next();
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("neighbor ") {
            let peer = rest.split_whitespace().next().unwrap_or("");
            if neighbors.contains(peer) {
                removed_neighbors.insert(peer);
                continue;
            }
        }
        kept.push(line);
    }
    let mut removed: Vec<String> = removed_neighbors
        .iter()
        .map(|n| format!("neighbor {n}"))
        .collect();
    removed.extend(removed_interfaces.iter().map(|i| format!("interface {i}")));
    let mut text = String::new();
    if !removed.is_empty() {
        text.push_str(
            "! strata lab: this is the rendered file minus what refers to switches the lab does not build:\n",
        );
        for r in &removed {
            text.push_str(&format!("!   {r}\n"));
        }
    }
    for line in kept {
        text.push_str(line);
        text.push('\n');
    }
    Pruned { text, removed }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "\
frr version 8.4
interface lo
 ip address 10.255.0.3/32
exit
!
interface swp49
 ip address 10.253.0.5/31
exit
!
interface swp50
 ip address 10.253.0.17/31
exit
!
router bgp 65001
 neighbor FABRIC peer-group
 neighbor 10.253.0.4 remote-as 65000
 neighbor 10.253.0.4 peer-group FABRIC
 neighbor 10.253.0.16 remote-as 65000
 neighbor 10.253.0.16 peer-group FABRIC
 neighbor 10.253.0.16 description spine02
 address-family ipv4 unicast
  neighbor FABRIC activate
 exit-address-family
exit
!
end
";

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prunes_only_the_named_peer_and_interface() {
        let p = prune(CONF, &set(&["10.253.0.16"]), &set(&["swp50"]));
        assert!(p.text.starts_with("! strata lab: "), "{}", p.text);
        let body: String = p
            .text
            .lines()
            .filter(|l| !l.starts_with("! strata lab") && !l.starts_with("!   "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(!body.contains("10.253.0.16"), "{body}");
        assert!(!body.contains("interface swp50"), "{body}");
        assert!(!body.contains("10.253.0.17/31"), "{body}");
        assert!(
            p.text
                .contains("interface swp49\n ip address 10.253.0.5/31\nexit\n!\n")
        );
        assert!(p.text.contains(" neighbor 10.253.0.4 remote-as 65000\n"));
        assert!(p.text.contains(" neighbor FABRIC peer-group\n"));
        assert!(p.text.contains("  neighbor FABRIC activate\n"));
        assert_eq!(
            p.removed,
            vec!["neighbor 10.253.0.16".to_string(), "interface swp50".into()]
        );
        // Every kept line is a line of the original, in order.
        let original: Vec<&str> = CONF.lines().collect();
        let mut at = 0;
        for line in p.text.lines().filter(|l| !l.starts_with("! strata lab")) {
            if line.starts_with("!   ") {
                continue;
            }
            let found = original[at..].iter().position(|o| *o == line);
            let found = found.unwrap_or_else(|| panic!("`{line}` is not from the original"));
            at += found + 1;
        }
    }

    #[test]
    fn nothing_to_prune_is_the_identical_file() {
        let p = prune(CONF, &BTreeSet::new(), &BTreeSet::new());
        assert_eq!(p.text, CONF);
        assert!(p.removed.is_empty());
    }

    #[test]
    fn a_prefix_of_an_address_is_not_a_match() {
        let p = prune(CONF, &set(&["10.253.0.1"]), &BTreeSet::new());
        assert!(p.text.contains("10.253.0.16 remote-as"));
        assert!(p.removed.is_empty());
    }
}
