//! Check 6: the VIP moves to the backup when its master dies.

use super::*;

pub(super) fn holds(rt: &Runtime, h: &Host, vip: IpAddr) -> bool {
    let (_, ok, out) = rt.ip(&h.ns, &["-4", "-o", "addr", "show", "dev", &h.ifname]);
    ok && out.contains(&format!(" {vip}/"))
}

pub(super) fn check_vip(rt: &mut Runtime, scope: &Scope) -> CheckResult {
    let mut c = Check::new(6);
    let vips: Vec<_> = scope
        .lab
        .vips
        .iter()
        .filter(|v| scope.dcs.contains(&v.dc))
        .cloned()
        .collect();
    if vips.is_empty() {
        return c.done(
            Status::Skipped,
            "the design declares no VIP with two members in the lab's DCs".into(),
        );
    }
    let mut moved = Vec::new();
    for vip in &vips {
        let members: Vec<Host> = vip
            .members
            .iter()
            .filter_map(|m| scope.lab.host(m).cloned())
            .collect();
        let Some(client) = scope.lab.host(&vip.client).cloned() else {
            c.problems.push(format!("VIP {}: no client host", vip.name));
            continue;
        };
        let mut master = None;
        wait_until(Duration::from_secs(10), || {
            let holding: Vec<&Host> = members
                .iter()
                .filter(|m| holds(rt, m, vip.address))
                .collect();
            if holding.len() == 1 {
                master = Some(holding[0].clone());
            }
            master.is_some()
        });
        let Some(master) = master else {
            c.problems.push(format!(
                "VIP {} ({}) is held by no member, or by more than one",
                vip.name, vip.address
            ));
            continue;
        };
        let Some(backup) = members.iter().find(|m| m.name != master.name).cloned() else {
            continue;
        };
        let before = ping(rt, &client, vip.address, 1, None);
        c.evidence(
            &client.name,
            before.command.clone(),
            ping_excerpt(&before.output),
        );
        let Some(pid) = rt.keepalived_pid(&master.name) else {
            c.problems.push(format!(
                "VIP {}: keepalived of the master {} is not running",
                vip.name, master.name
            ));
            continue;
        };
        // The master dies: keepalived gets SIGKILL (no goodbye advert), and the host's
        // link goes down (a dead host answers for nothing, not even its stale VIP).
        rt.kill_group(pid, "KILL");
        let _ = rt.ip(&master.ns, &["link", "set", &master.ifname, "down"]);
        let t0 = Instant::now();
        let mut took = None;
        wait_until(Duration::from_secs(10), || {
            if holds(rt, &backup, vip.address) {
                took = Some(t0.elapsed());
                true
            } else {
                false
            }
        });
        c.evidence(
            &master.name,
            format!(
                "kill -KILL -- -{pid}; ip -n {} link set {} down",
                master.ns, master.ifname
            ),
            format!("keepalived of {} (master) killed, link down", master.name),
        );
        let (cmd, _, out) = rt.ip(
            &backup.ns,
            &["-4", "-br", "addr", "show", "dev", &backup.ifname],
        );
        c.evidence(&backup.name, cmd, out);
        match took {
            Some(t) if t <= Duration::from_secs(5) => {
                moved.push(format!("{:.1} s", t.as_secs_f64()));
            }
            Some(t) => c.problems.push(format!(
                "VIP {} moved to {} only after {:.1} s (more than 5 s)",
                vip.name,
                backup.name,
                t.as_secs_f64()
            )),
            None => c.problems.push(format!(
                "VIP {} did not move to {} within 10 s of killing {}",
                vip.name, backup.name, master.name
            )),
        }
        // Does it answer there?
        let mut answer = ping(rt, &client, vip.address, 1, None);
        let mut flushed = false;
        let vip_s = vip.address.to_string();
        if !answer.result.answered() {
            // With ARP suppression the VTEPs do not flood gratuitous ARPs (the kernel
            // bridge keeps them off neigh_suppress ports), so the client still has the
            // dead master's MAC; make it resolve again.
            let _ = rt.ip(&client.ns, &["neigh", "del", &vip_s, "dev", &client.ifname]);
            flushed = true;
            answer = ping(rt, &client, vip.address, 2, None);
        }
        c.evidence(
            &client.name,
            answer.command.clone(),
            ping_excerpt(&answer.output),
        );
        let (ncmd, _, neigh) = rt.ip(&client.ns, &["neigh", "show", &vip_s]);
        c.evidence(&client.name, ncmd, neigh.clone());
        let by_backup = neigh.contains(&backup.mac);
        if !answer.result.answered() {
            c.problems.push(format!(
                "VIP {} ({}) does not answer the client {} after the failover",
                vip.name, vip.address, client.name
            ));
        } else if !by_backup {
            c.problems.push(format!(
                "VIP {} answers, but not from {} ({}): {}",
                vip.name, backup.name, backup.mac, neigh
            ));
        }
        if flushed {
            c.notes.push(format!(
                "the client {} kept the old master's MAC for the VIP (gratuitous ARPs are not \
                 flooded to ARP-suppressing VXLAN ports) and had to re-resolve it",
                client.name
            ));
        }
        // Bring the dead member back as a backup, for the next `lab test`.
        let _ = rt.ip(
            &master.ns,
            &[
                "addr",
                "del",
                &format!("{}/{}", vip.address, vip.prefix_len),
                "dev",
                &master.ifname,
            ],
        );
        let _ = rt.ip(&master.ns, &["link", "set", &master.ifname, "up"]);
        if let Err(e) = rt.restart_keepalived(&master.name) {
            c.problems
                .push(format!("restarting keepalived on {}: {e}", master.name));
        }
    }
    let summary = format!(
        "{} of {} VIP(s) moved to the backup after SIGKILL of the master's keepalived and its \
         link going down ({}), and the backup's MAC answers the client",
        moved.len(),
        vips.len(),
        if moved.is_empty() {
            "-".to_string()
        } else {
            moved.join(", ")
        }
    );
    c.finish(summary)
}
