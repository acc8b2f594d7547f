//! Collecting evidence from the running lab: pings and route-cache flushes in
//! the host namespaces.

use super::*;

pub(super) struct Ping {
    pub(super) command: String,
    pub(super) output: String,
    pub(super) result: PingResult,
}

pub(super) fn ping(
    rt: &Runtime,
    src: &Host,
    dst: IpAddr,
    count: u32,
    df_payload: Option<u32>,
) -> Ping {
    let count_s = count.to_string();
    let dst_s = dst.to_string();
    let mut args: Vec<String> = vec![
        "ping".into(),
        "-n".into(),
        "-c".into(),
        count_s,
        "-i".into(),
        "0.2".into(),
        "-W".into(),
        "1".into(),
    ];
    if let Some(size) = df_payload {
        args.extend(["-M".into(), "do".into(), "-s".into(), size.to_string()]);
    }
    args.push(dst_s);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (command, _ok, output) = rt.in_ns(&src.ns, &argv);
    let result = parse_ping(&output);
    Ping {
        command,
        output,
        result,
    }
}

/// Forget cached path MTUs in a host (a DF ping must probe the path as it is now).
pub(super) fn flush_route_cache(rt: &Runtime, host: &Host) {
    let _ = rt.ip(&host.ns, &["route", "flush", "cache"]);
}
