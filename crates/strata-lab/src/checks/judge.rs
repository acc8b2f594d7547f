//! Parsing and judging (pure): FRR JSON and `ping` output in, findings out;
//! unit-tested on recorded output.

use super::*;

/// One BGP session as `show bgp vrf all summary json` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSession {
    pub vrf: String,
    pub afi: String,
    pub peer: String,
    pub remote_as: Option<u64>,
    pub state: String,
}

/// Every session of every VRF and address family in `show bgp vrf all summary json`.
pub fn parse_summary(v: &Value) -> Vec<SeenSession> {
    let mut out = Vec::new();
    let Some(vrfs) = v.as_object() else {
        return out;
    };
    for (vrf, afis) in vrfs {
        let Some(afis) = afis.as_object() else {
            continue;
        };
        for (afi, body) in afis {
            let Some(peers) = body.get("peers").and_then(Value::as_object) else {
                continue;
            };
            for (peer, p) in peers {
                out.push(SeenSession {
                    vrf: vrf.clone(),
                    afi: afi.clone(),
                    peer: peer.clone(),
                    remote_as: p.get("remoteAs").and_then(Value::as_u64),
                    state: p
                        .get("state")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                });
            }
        }
    }
    out
}

/// The address families every design session activates (`FABRIC` and `DCI` groups).
pub const SESSION_AFIS: [&str; 2] = ["ipv4Unicast", "l2VpnEvpn"];

/// Compare one switch's sessions with the design's: (problems, established count).
pub fn judge_sessions(
    router: &str,
    expected: &[&ExpectedSession],
    seen: &[SeenSession],
) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut established = 0;
    for e in expected {
        let addr = e.peer_address.to_string();
        let mut ok = true;
        for afi in SESSION_AFIS {
            match seen
                .iter()
                .find(|s| s.vrf == "default" && s.afi == afi && s.peer == addr)
            {
                None => {
                    ok = false;
                    problems.push(format!(
                        "{router}: no {afi} session to {} ({addr}, AS {})",
                        e.peer, e.remote_asn
                    ));
                }
                Some(s) if s.state != "Established" => {
                    ok = false;
                    problems.push(format!(
                        "{router}: {afi} session to {} ({addr}) is {}",
                        e.peer, s.state
                    ));
                }
                Some(s) if s.remote_as != Some(u64::from(e.remote_asn)) => {
                    ok = false;
                    problems.push(format!(
                        "{router}: {afi} session to {} ({addr}) has remote AS {:?}, the design says {}",
                        e.peer, s.remote_as, e.remote_asn
                    ));
                }
                Some(_) => {}
            }
        }
        if ok {
            established += 1;
        }
    }
    let declared: BTreeSet<String> = expected
        .iter()
        .map(|e| e.peer_address.to_string())
        .collect();
    let mut undeclared: BTreeSet<(String, String)> = BTreeSet::new();
    for s in seen {
        if s.vrf != "default" || !declared.contains(&s.peer) {
            undeclared.insert((s.vrf.clone(), s.peer.clone()));
        }
    }
    for (vrf, peer) in undeclared {
        let states: Vec<String> = seen
            .iter()
            .filter(|s| s.vrf == vrf && s.peer == peer)
            .map(|s| format!("{} {}", s.afi, s.state))
            .collect();
        problems.push(format!(
            "{router}: session to {peer} in VRF {vrf} is not in the design ({})",
            states.join(", ")
        ));
    }
    (problems, established)
}

/// One EVPN route from `show bgp l2vpn evpn route [type X] json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvpnRoute {
    pub route_type: u8,
    pub rd: String,
    pub prefix: String,
    /// Type 2: the MAC; type 3: the originating router; type 5: the IP prefix.
    pub mac: Option<String>,
    pub ip: Option<String>,
    pub nexthop: Option<String>,
    /// The value part of every `RT:x:y` (the VNI, for FRR's auto-derived targets).
    pub rt_values: Vec<u32>,
    pub best: bool,
}

pub(super) fn bracket_fields(prefix: &str) -> Vec<String> {
    prefix
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split("]:[")
        .map(str::to_string)
        .collect()
}

/// Every path of every route in an EVPN table dump.
pub fn parse_evpn(v: &Value) -> Vec<EvpnRoute> {
    let mut out = Vec::new();
    let Some(rds) = v.as_object() else {
        return out;
    };
    for (rd, body) in rds {
        let Some(routes) = body.as_object() else {
            continue;
        };
        for (prefix, route) in routes {
            if !prefix.starts_with('[') {
                continue;
            }
            let f = bracket_fields(prefix);
            let Some(route_type) = f.first().and_then(|t| t.parse::<u8>().ok()) else {
                continue;
            };
            let (mac, ip) = match route_type {
                // [2]:[eth tag]:[48]:[mac](:[len]:[ip])
                2 => (f.get(3).cloned(), f.get(5).cloned()),
                // [3]:[eth tag]:[len]:[orig ip]
                3 => (None, f.get(3).cloned()),
                // [5]:[eth tag]:[len]:[ip]
                5 => (
                    None,
                    f.get(3)
                        .zip(f.get(2))
                        .map(|(ip, len)| format!("{ip}/{len}")),
                ),
                _ => (None, None),
            };
            let paths: Vec<&Value> = route
                .get("paths")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .flat_map(|p| match p.as_array() {
                            Some(inner) => inner.iter().collect::<Vec<_>>(),
                            None => vec![p],
                        })
                        .collect()
                })
                .unwrap_or_default();
            for p in paths {
                let nexthop = p
                    .get("nexthops")
                    .and_then(Value::as_array)
                    .and_then(|n| n.first())
                    .and_then(|n| n.get("ip"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let ec = p
                    .get("extendedCommunity")
                    .and_then(|e| e.get("string"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let rt_values = ec
                    .split_whitespace()
                    .filter_map(|c| c.strip_prefix("RT:"))
                    .filter_map(|c| c.rsplit(':').next())
                    .filter_map(|n| n.parse::<u32>().ok())
                    .collect();
                out.push(EvpnRoute {
                    route_type,
                    rd: rd.clone(),
                    prefix: prefix.clone(),
                    mac: mac.clone(),
                    ip: ip.clone(),
                    nexthop,
                    rt_values,
                    best: p.get("bestpath").and_then(Value::as_bool).unwrap_or(false),
                });
            }
        }
    }
    out
}

/// What a ping printed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PingResult {
    pub transmitted: u32,
    pub received: u32,
    /// TTL of the first reply.
    pub ttl: Option<u32>,
    /// The path MTU an ICMP "fragmentation needed" or a local "message too long" named.
    pub mtu: Option<u32>,
}

impl PingResult {
    pub fn answered(&self) -> bool {
        self.received > 0
    }
}

pub fn parse_ping(text: &str) -> PingResult {
    let mut r = PingResult::default();
    for line in text.lines() {
        if let Some(i) = line.find(" packets transmitted, ") {
            r.transmitted = line[..i]
                .split_whitespace()
                .last()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            r.received = line[i + " packets transmitted, ".len()..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        if r.ttl.is_none()
            && let Some(i) = line.find(" ttl=")
        {
            r.ttl = line[i + 5..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok());
        }
        if r.mtu.is_none() {
            for marker in ["(mtu = ", "mtu="] {
                if let Some(i) = line.find(marker) {
                    let digits: String = line[i + marker.len()..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let Ok(n) = digits.parse() {
                        r.mtu = Some(n);
                        break;
                    }
                }
            }
        }
    }
    r
}

/// A ping's output without blank lines and the statistics banner.
pub(super) fn ping_excerpt(text: &str) -> String {
    let keep: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("---"))
        .collect();
    excerpt(&keep.join("\n"), 8)
}

/// Prefixes in `show ip route vrf X json`.
pub fn route_prefixes(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Does `show ip route vrf V <ip> json` route via `vtep` on `svi` (a symmetric IRB
/// host route)?
pub fn routes_via(v: &Value, vtep: &str, svi: &str) -> bool {
    v.as_object().is_some_and(|m| {
        m.values().filter_map(Value::as_array).flatten().any(|r| {
            r.get("nexthops")
                .and_then(Value::as_array)
                .is_some_and(|nhs| {
                    nhs.iter().any(|nh| {
                        nh.get("ip").and_then(Value::as_str) == Some(vtep)
                            && nh.get("interfaceName").and_then(Value::as_str) == Some(svi)
                    })
                })
        })
    })
}

pub(super) fn df_problem(lab: &Lab, src: &Host, dst: &Host, p: &PingResult) -> String {
    let mtu = lab.mtu.overlay;
    let need = mtu + lab.mtu.vxlan_overhead;
    let underlay_min = lab
        .links
        .iter()
        .filter(|l| l.kind != crate::topology::LinkKind::Host)
        .map(|l| l.a.mtu.min(l.b.mtu))
        .min()
        .unwrap_or(lab.mtu.underlay);
    let mut s = format!(
        "DF ping of {mtu}-byte packets (payload {}, the tenant MTU) from {} to {} ({}) got no reply",
        mtu - 28,
        src.name,
        dst.name,
        dst.ip()
    );
    if let Some(pm) = p.mtu {
        s.push_str(&format!(": the path reports an MTU of {pm}"));
    }
    if underlay_min < need {
        s.push_str(&format!(
            ": the underlay links have MTU {underlay_min}, which cannot carry the tenant MTU {mtu} \
             plus {} bytes of VXLAN encapsulation ({need} needed)",
            lab.mtu.vxlan_overhead
        ));
    }
    s
}

pub(super) fn lines_matching(text: &str, needles: &[&str], max: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .collect();
    excerpt(&lines.join("\n"), max)
}
