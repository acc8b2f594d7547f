//! Unit tests of the pure parsers and judges, on recorded output.
use super::*;
use serde_json::json;

#[test]
fn ping_parse() {
    let ok = "PING 100.64.2.10 (100.64.2.10) 56(84) bytes of data.\n\
              64 bytes from 100.64.2.10: icmp_seq=1 ttl=62 time=0.266 ms\n\n\
              --- 100.64.2.10 ping statistics ---\n\
              3 packets transmitted, 3 received, 0% packet loss, time 646ms\n";
    let p = parse_ping(ok);
    assert_eq!(
        (p.transmitted, p.received, p.ttl, p.mtu),
        (3, 3, Some(62), None)
    );
    let frag = "PING 100.64.2.10 (100.64.2.10) 8972(9000) bytes of data.\n\
                From 100.64.2.10 icmp_seq=1 Frag needed and DF set (mtu = 8950)\n\n\
                2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1026ms\n";
    let p = parse_ping(frag);
    assert_eq!((p.transmitted, p.received, p.mtu), (2, 0, Some(8950)));
    assert!(!p.answered());
    let local = "ping: local error: message too long, mtu=8950\n\
                 2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1015ms\n";
    assert_eq!(parse_ping(local).mtu, Some(8950));
}

#[test]
fn summary_parse_and_judge() {
    let v = json!({
        "default": {
            "ipv4Unicast": {"peers": {
                "10.253.0.4": {"remoteAs": 4200000000u64, "state": "Established"},
                "10.253.0.99": {"remoteAs": 65000, "state": "Active"}
            }},
            "l2VpnEvpn": {"peers": {
                "10.253.0.4": {"remoteAs": 4200000000u64, "state": "Established"}
            }}
        },
        "prod": {}
    });
    let seen = parse_summary(&v);
    assert_eq!(seen.len(), 3);
    let e = ExpectedSession {
        router: "leaf1".into(),
        peer: "spine01".into(),
        peer_address: "10.253.0.4".parse().unwrap(),
        remote_asn: 4200000000,
        kind: SessionKind::Fabric,
    };
    let (problems, n) = judge_sessions("leaf1", &[&e], &seen);
    assert_eq!(n, 1);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("10.253.0.99") && problems[0].contains("not in the design"));

    let e2 = ExpectedSession {
        peer_address: "10.253.0.16".parse().unwrap(),
        ..e.clone()
    };
    let (problems, n) = judge_sessions("leaf1", &[&e, &e2], &seen);
    assert_eq!(n, 1);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("no ipv4Unicast session to spine01 (10.253.0.16"))
    );
}

#[test]
fn evpn_parse() {
    let v = json!({
        "10.255.0.5:3": {
            "rd": "10.255.0.5:3",
            "[3]:[0]:[32]:[10.254.0.5]": {"prefix": "[3]:[0]:[32]:[10.254.0.5]", "paths": [[{
                "bestpath": true, "ip": "10.254.0.5",
                "extendedCommunity": {"string": "RT:60908:10010 ET:8"},
                "nexthops": [{"ip": "10.254.0.5"}]
            }]]},
            "[2]:[0]:[48]:[86:67:db:cc:0b:cc]:[32]:[100.64.2.10]": {"paths": [[{
                "extendedCommunity": {"string": "RT:60908:10009 RT:60908:50001 ET:8 Rmac:da:2b:f9:de:fc:02"},
                "nexthops": [{"ip": "10.254.0.5"}]
            }]]},
            "[5]:[0]:[24]:[100.64.2.0]": {"paths": [[{
                "extendedCommunity": {"string": "RT:60908:50001 ET:8"},
                "nexthops": [{"ip": "10.254.0.5"}]
            }]]}
        },
        "numPrefix": 3
    });
    let r = parse_evpn(&v);
    assert_eq!(r.len(), 3);
    let t3 = r.iter().find(|r| r.route_type == 3).unwrap();
    assert_eq!(t3.ip.as_deref(), Some("10.254.0.5"));
    assert_eq!(t3.rt_values, vec![10010]);
    assert!(t3.best);
    let t2 = r.iter().find(|r| r.route_type == 2).unwrap();
    assert_eq!(t2.mac.as_deref(), Some("86:67:db:cc:0b:cc"));
    assert_eq!(t2.ip.as_deref(), Some("100.64.2.10"));
    assert_eq!(t2.rt_values, vec![10009, 50001]);
    let t5 = r.iter().find(|r| r.route_type == 5).unwrap();
    assert_eq!(t5.ip.as_deref(), Some("100.64.2.0/24"));
    assert_eq!(t5.nexthop.as_deref(), Some("10.254.0.5"));
}

#[test]
fn route_via_svi() {
    let v = json!({"100.64.2.10/32": [{
        "prefix": "100.64.2.10/32", "protocol": "bgp",
        "nexthops": [{"ip": "10.254.0.5", "interfaceName": "br50001", "onLink": true}]
    }]});
    assert!(routes_via(&v, "10.254.0.5", "br50001"));
    assert!(!routes_via(&v, "10.254.0.6", "br50001"));
    assert!(!routes_via(&v, "10.254.0.5", "br10009"));
}
