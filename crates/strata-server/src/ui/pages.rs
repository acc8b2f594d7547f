//! The pages behind the login: each reads what the matching API route reads, checks
//! the caller the same way, and renders it. Lists are bounded (a page of at most
//! [`MAX_PAGE`] rows) and paged with the API's cursors.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_store::WorkflowView;

use super::{Nav, UiError, Viewer, problem_page, respond};
use crate::Server;
use crate::auth::{FLEET, Role};
use crate::http::Problem;

type S = State<Arc<Server>>;
type Q<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;
type Page = Result<Response, UiError>;

/// The most rows a list page shows.
const MAX_PAGE: u32 = 200;
/// The most plan steps one plan page shows.
const MAX_STEPS: usize = 500;
/// The longest value shown in a diff cell or an evidence block.
const MAX_VALUE: usize = 400;
const MAX_EVIDENCE: usize = 20_000;

fn bad_query(e: axum::extract::rejection::QueryRejection) -> UiError {
    UiError(Problem::new(
        StatusCode::BAD_REQUEST,
        "bad-query",
        e.body_text(),
    ))
}

fn limit(asked: Option<u32>, default: u32) -> Result<u32, UiError> {
    match asked {
        None => Ok(default),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(UiError(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-limit",
            format!("limit {n} is out of range: 1 to {MAX_PAGE}"),
        ))),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for milliseconds since the epoch (`—` for 0).
pub(crate) fn fmt_ms(ms: i64) -> String {
    if ms <= 0 {
        return "—".into();
    }
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_date(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
fn civil_date(days: i64) -> (i64, u32, u32) {
    // Count from 0000-03-01 so that the leap day ends each 400-year era's years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// `s` cut to at most `max` bytes (on a character boundary), with `…` when cut.
pub(crate) fn clip(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = s[..cut].to_string();
    out.push('…');
    out
}

/// A JSON value as one short line (strings without their quotes).
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => clip(s.clone(), MAX_VALUE),
        other => clip(other.to_string(), MAX_VALUE),
    }
}

fn pretty(v: &Value) -> String {
    clip(
        serde_json::to_string_pretty(v).unwrap_or_default(),
        MAX_EVIDENCE,
    )
}

/// The serde name of a unit enum value (`openstack-compute`).
fn label<T: Serialize>(v: T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// How a state reads at a glance.
fn tone(state: &str) -> &'static str {
    match state {
        "done" | "applied" | "up-to-date" | "validated" | "in service" | "approved"
        | "conformant" | "succeeded" => "good",
        "failed" | "cancelled" | "blocked" | "quarantined" | "stopped" | "invalid"
        | "superseded" | "refused" => "bad",
        "running" | "pending" | "waiting" | "applying" | "queued" => "warn",
        _ => "",
    }
}

fn badge(state: &str) -> Markup {
    let class = format!("state {}", tone(state));
    html! { span class=(class.trim_end()) { (state) } }
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

// ---------------------------------------------------------------- overview

pub(super) async fn overview(State(s): S, Extension(v): Extension<Viewer>) -> Page {
    let applied = crate::work::applied_fleet(&s).await;
    let (commits, waiting) = if v.fleet_reader() {
        (
            s.store.commits(5, None).await?,
            s.store.plans(Some("waiting"), 500).await?.len(),
        )
    } else {
        (Vec::new(), 0)
    };
    if let Err(e) = &applied {
        tracing::warn!(error = %e, "UI: cannot read the applied commit");
    }
    let body = html! {
        h1 { "Fleet overview" }
        @match &applied {
            Err(_) => {
                p.notice.bad { "Cannot read the applied commit from the spec repository; try again." }
            }
            Ok(None) => { p.notice { "No commit has been applied yet: the inventory appears after the first apply." } }
            Ok(Some((sha, f))) => {
                @let report = strata_check::conform(f);
                p { "Applied commit " code id="applied-commit" { (sha) } " · fleet " code { (f.organisation.fleet_id) } }
                table id="dcs" {
                    thead { tr {
                        th { "DC" } th { "Region" } th.num { "Racks" } th.num { "Machines" }
                        th.num { "VMs" } th.num { "GPUs" } th.num { "Switches" }
                        th { "Conformance" } th { "Applied commit" }
                    } }
                    tbody {
                        @for d in &f.dcs {
                            @let conf = report.dcs.iter().find(|c| c.dc == d.name);
                            tr {
                                td { a href=(format!("/ui/machines{}", query(&[("dc", &d.name)]))) { (d.name) } }
                                td { (d.region) }
                                td.num { (d.racks.len()) }
                                td.num { (d.machines.len()) }
                                td.num { (d.vms.len()) }
                                td.num { (d.machines.iter().map(|m| u64::from(m.gpus)).sum::<u64>()) }
                                td.num { (d.switches.len()) }
                                td {
                                    @match conf {
                                        Some(c) if c.conformant && c.differences.is_empty() => { (badge("conformant")) }
                                        Some(c) => {
                                            @let undeclared = c.differences.iter().filter(|x| !x.declared).count();
                                            span class=(format!("state {}", if undeclared > 0 { "bad" } else { "warn" })) {
                                                (c.differences.len()) " difference(s), " (undeclared) " undeclared"
                                            }
                                        }
                                        None => { span.muted { "—" } }
                                    }
                                }
                                td { code { (short(sha)) } }
                            }
                        }
                    }
                }
            }
        }
        @if v.fleet_reader() {
            h2 { "Plans" }
            p {
                @if waiting == 0 { "No plan is waiting for an approval." }
                @else { a href="/ui/plans" { (waiting) " plan(s) waiting for an approval" } }
            }
            h2 { "Recent commits" }
            @if commits.is_empty() {
                p.muted { "The server has not seen a commit yet." }
            } @else {
                table id="commits" {
                    thead { tr { th { "Commit" } th { "State" } th { "Seen" } th { "Plan" } } }
                    tbody {
                        @for c in &commits {
                            @let plan = c.result.as_ref().and_then(|r| r.get("plan_hash")).and_then(Value::as_str);
                            tr {
                                td { code { (short(&c.sha)) } }
                                td { (badge(&c.state)) }
                                td.when { (fmt_ms(c.seen_ms)) }
                                td { @if let Some(h) = plan { a href=(format!("/ui/plans/{}", seg(h))) { code { (short(h)) } } } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(respond(&v, Nav::Overview, "Overview", body))
}

// ---------------------------------------------------------------- machines

#[derive(Deserialize, Default)]
pub(super) struct MachinesQuery {
    dc: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// A machine's onboarding as two short words: the workflow, and the hardware
/// validation (the `commission` step, which validates before it lays out disks).
fn onboarding_states(w: Option<&WorkflowView>) -> (String, String) {
    let Some(w) = w else {
        return ("none".into(), "—".into());
    };
    let at = w.steps.iter().find(|st| st.state != "done");
    let flow = match (w.state.as_str(), at) {
        ("running", Some(st)) => format!("running: {}", st.name),
        (state, _) => state.to_string(),
    };
    let hw = match w.steps.iter().find(|st| st.name == "commission") {
        None => "—".to_string(),
        Some(st)
            if st
                .evidence
                .as_ref()
                .is_some_and(|e| e.get("quarantined").is_some()) =>
        {
            "quarantined".into()
        }
        Some(st) if st.state == "done" => "validated".into(),
        Some(st) => st.state.clone(),
    };
    (flow, hw)
}

fn onboarding_badge(state: &str) -> Markup {
    let key = state.split(':').next().unwrap_or(state);
    let class = format!("state {}", tone(key));
    html! { span class=(class.trim_end()) { (state) } }
}

pub(super) async fn machines(
    State(s): S,
    Extension(v): Extension<Viewer>,
    q: Q<MachinesQuery>,
) -> Page {
    let Query(q) = q.map_err(bad_query)?;
    let limit = limit(q.limit, 25)?;
    let Some((_, f)) = applied(&s).await? else {
        return Ok(respond(
            &v,
            Nav::Machines,
            "Machines",
            html! { h1 { "Machines" } p.notice { "No commit has been applied yet." } },
        ));
    };
    let dc = q.dc.clone().unwrap_or_default();
    let mut all: Vec<(String, (&strata_fleet::Dc, &strata_fleet::Machine))> = f
        .dcs
        .iter()
        .filter(|d| dc.is_empty() || d.name == dc)
        .flat_map(|d| {
            d.machines
                .iter()
                .map(move |m| (format!("{}/{}", d.name, m.hostname), (d, m)))
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let total = all.len();
    let (rows, next) = crate::api::page(all, q.cursor.as_deref(), limit);
    let mut onboarding = Vec::with_capacity(rows.len());
    for (d, m) in &rows {
        let w = s
            .store
            .latest_workflow("onboard", &format!(" {}/machine/{}", d.name, m.serial))
            .await?;
        onboarding.push(w);
    }
    let limit_text = limit.to_string();
    let body = html! {
        h1 { "Machines" }
        form.filters method="get" action="/ui/machines" {
            div {
                label for="dc" { "DC" }
                select id="dc" name="dc" {
                    option value="" selected[dc.is_empty()] { "all" }
                    @for d in &f.dcs {
                        option value=(d.name) selected[d.name == dc] { (d.name) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        p.muted { (total) " machine(s)" @if !dc.is_empty() { " in " (dc) } "; " (rows.len()) " on this page." }
        table id="machines" {
            thead { tr {
                th { "DC" } th { "Hostname" } th { "Rack" } th { "Role" } th { "Profile" }
                th.num { "GPUs" } th { "Onboarding" } th { "Hardware validation" }
            } }
            tbody {
                @for ((d, m), w) in rows.iter().zip(&onboarding) {
                    @let (flow, hw) = onboarding_states(w.as_ref());
                    tr {
                        td { (d.name) }
                        td { a href=(format!("/ui/machines/{}/{}", seg(&d.name), seg(&m.hostname))) { (m.hostname) } }
                        td { (m.rack) }
                        td { (label(m.role)) }
                        td { (m.profile) }
                        td.num { (m.gpus) }
                        td { (onboarding_badge(&flow)) }
                        td { (onboarding_badge(&hw)) }
                    }
                }
            }
        }
        div.pager {
            @if q.cursor.is_some() {
                a href=(format!("/ui/machines{}", query(&[("dc", &dc), ("limit", &limit_text)]))) { "← First page" }
            }
            @if let Some(c) = &next {
                a id="next" href=(format!("/ui/machines{}", query(&[("dc", &dc), ("limit", &limit_text), ("cursor", c)]))) { "Next page →" }
            }
        }
    };
    Ok(respond(&v, Nav::Machines, "Machines", body))
}

/// The applied fleet, `None` before the first apply.
async fn applied(s: &Server) -> Result<Option<(String, Arc<strata_fleet::Fleet>)>, UiError> {
    crate::work::applied_fleet(s).await.map_err(|e| {
        tracing::warn!(error = %e, "UI: cannot read the applied commit");
        UiError(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "spec-unavailable",
            "cannot read the applied commit from the spec repository; try again",
        ))
    })
}

fn steps_table(w: &WorkflowView) -> Markup {
    html! {
        table.steps {
            thead { tr { th.num { "#" } th { "Step" } th { "State" } th.num { "Attempts" } th { "Evidence / error" } } }
            tbody {
                @for st in &w.steps {
                    tr {
                        td.num { (st.idx) }
                        td { (st.name) }
                        td { (badge(&st.state)) }
                        td.num { (st.attempts) }
                        td {
                            @if let Some(e) = &st.error { p.notice.bad { (clip(e.clone(), MAX_EVIDENCE)) } }
                            @if let Some(ev) = &st.evidence { pre { (pretty(ev)) } }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn machine(
    State(s): S,
    Extension(v): Extension<Viewer>,
    Path((dc, host)): Path<(String, String)>,
) -> Page {
    let missing = || {
        UiError(Problem::new(
            StatusCode::NOT_FOUND,
            "machine-not-found",
            format!("no machine {host} in {dc}"),
        ))
    };
    let Some((_, f)) = applied(&s).await? else {
        return Err(missing());
    };
    let d = f.dc(&dc).ok_or_else(missing)?;
    let m = d
        .machines
        .iter()
        .find(|m| m.hostname == host)
        .ok_or_else(missing)?;
    let profile = f.profile(&m.profile);
    let w = s
        .store
        .latest_workflow("onboard", &format!(" {}/machine/{}", d.name, m.serial))
        .await?;
    let (flow, hw) = onboarding_states(w.as_ref());
    let body = html! {
        h1 { "Machine " (m.hostname) }
        section.panel {
            dl.facts {
                dt { "DC" } dd { (d.name) }
                dt { "FQDN" } dd { (m.fqdn) }
                dt { "Serial" } dd { code { (m.serial) } }
                dt { "Rack / slot" } dd { (m.rack) " / " (m.slot) }
                dt { "Role" } dd { (label(m.role)) }
                dt { "Profile" } dd { (m.profile) }
                dt { "AZ" } dd { (m.az.as_deref().unwrap_or("—")) }
                dt { "Cluster" } dd { (m.cluster.as_deref().unwrap_or("—")) }
                dt { "BMC" } dd { code { (m.bmc.address) } " (" (label(m.bmc.driver)) ")" }
                @if let Some(p) = profile {
                    dt { "CPU cores" } dd { (p.cpu.cores_per_socket * p.cpu.sockets) }
                    dt { "Memory" } dd { (p.memory_gib) " GiB" }
                }
                dt { "GPUs" } dd { (m.gpus) }
                dt { "Image" } dd { (m.image) }
                dt { "Onboarding" } dd id="onboarding" { (onboarding_badge(&flow)) }
                dt { "Hardware validation" } dd id="hardware" { (onboarding_badge(&hw)) }
            }
        }
        @match &w {
            Some(w) => {
                h2 { "Onboarding workflow " a href=(format!("/ui/workflows/{}", seg(&w.id))) { code { (w.id) } } }
                (steps_table(w))
            }
            None => { p.muted { "No onboarding workflow: the machine already ran when the server first applied it, or it has not been onboarded yet." } }
        }
    };
    Ok(respond(&v, Nav::Machines, &m.hostname, body))
}

// ---------------------------------------------------------------- plans

const PLAN_STATES: [&str; 8] = [
    "waiting",
    "approved",
    "applying",
    "applied",
    "failed",
    "blocked",
    "superseded",
    "all",
];

#[derive(Deserialize, Default)]
pub(super) struct PlansQuery {
    state: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn plans(State(s): S, Extension(v): Extension<Viewer>, q: Q<PlansQuery>) -> Page {
    v.who.see_fleet()?;
    let Query(q) = q.map_err(bad_query)?;
    let limit = limit(q.limit, 50)?;
    let state = q.state.clone().unwrap_or_else(|| "waiting".into());
    if !PLAN_STATES.contains(&state.as_str()) {
        return Err(UiError(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-state",
            format!("state is one of {}", PLAN_STATES.join(", ")),
        )));
    }
    let list = s
        .store
        .plans((state != "all").then_some(state.as_str()), limit)
        .await?;
    let body = html! {
        h1 { "Plans" }
        form.filters method="get" action="/ui/plans" {
            div {
                label for="state" { "State" }
                select id="state" name="state" {
                    @for st in PLAN_STATES {
                        option value=(st) selected[st == state] { (st) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @if list.is_empty() {
            p.muted id="no-plans" { "No plan is " (if state == "all" { "saved" } else { state.as_str() }) "." }
        } @else {
            table id="plans" {
                thead { tr { th { "Plan" } th { "Commit" } th { "Origin" } th { "Made" } th { "State" } th { "Why it waits" } } }
                tbody {
                    @for p in &list {
                        tr {
                            td { a href=(format!("/ui/plans/{}", seg(&p.hash))) { code { (short(&p.hash)) } } }
                            td { code { (short(&p.commit_sha)) } }
                            td { (p.origin) }
                            td.when { (fmt_ms(p.created_ms)) }
                            td { (badge(&p.state)) }
                            td { @for r in &p.reasons { div { (r) } } }
                        }
                    }
                }
            }
            @if list.len() == limit as usize { p.muted { "Showing the newest " (limit) "." } }
        }
    };
    Ok(respond(&v, Nav::Plans, "Plans", body))
}

fn valid_hash(hash: &str) -> Result<(), UiError> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(UiError(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-plan-hash",
            "a plan hash is 64 hexadecimal digits (SHA-256)",
        )))
    }
}

#[derive(Deserialize, Default)]
pub(super) struct PlanQuery {
    approved: Option<String>,
}

/// One step's resource as `DC/KIND/NAME`.
fn step_id(step: &Value) -> String {
    let id = &step["id"];
    format!(
        "{}/{}/{}",
        id["dc"].as_str().unwrap_or("?"),
        id["kind"].as_str().unwrap_or("?"),
        id["name"].as_str().unwrap_or("?")
    )
}

fn action_symbol(action: &str) -> &'static str {
    match action {
        "create" => "+",
        "adopt" => "@",
        "update" => "~",
        "delete" => "-",
        _ => "?",
    }
}

fn change_value(v: &Value, sensitive: bool) -> Markup {
    html! {
        @if v.is_null() { span.muted { "—" } }
        @else if sensitive { span.muted { "(sensitive, changed)" } }
        @else { code { (value_text(v)) } }
    }
}

fn diff(steps: &[Value]) -> Markup {
    html! {
        @for (i, st) in steps.iter().take(MAX_STEPS).enumerate() {
            @let action = st["action"].as_str().unwrap_or("?");
            @let changes = st["changes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            section.panel.step id=(format!("step-{i}")) {
                h3 {
                    code { (action_symbol(action)) " " (step_id(st)) }
                    " " (badge(action))
                    @if st.get("reboot").is_some_and(|r| !r.is_null()) { " " span.state.warn { "reboot" } }
                }
                @if changes.is_empty() {
                    p.muted { "No field changes." }
                } @else {
                    table.diff {
                        thead { tr { th { "Field" } th { "Now" } th { "After" } } }
                        tbody {
                            @for c in changes {
                                @let sensitive = c["sensitive"].as_bool().unwrap_or(false);
                                tr {
                                    td { code { (c["field"].as_str().unwrap_or("?")) } }
                                    td.old { (change_value(&c["old"], sensitive)) }
                                    td.new { (change_value(&c["new"], sensitive)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if steps.len() > MAX_STEPS {
            p.notice { (steps.len() - MAX_STEPS) " more step(s) are not shown; " code { "GET /api/v1/plans/{hash}" } " has them all." }
        }
    }
}

pub(super) async fn plan(
    State(s): S,
    Extension(v): Extension<Viewer>,
    Path(hash): Path<String>,
    q: Q<PlanQuery>,
) -> Page {
    v.who.see_fleet()?;
    valid_hash(&hash)?;
    let Query(q) = q.map_err(bad_query)?;
    let Some(view) = s.store.plan(&hash).await? else {
        return Err(UiError(Problem::new(
            StatusCode::NOT_FOUND,
            "plan-not-found",
            format!("no plan {hash}"),
        )));
    };
    let saved: Value = serde_json::from_str(&view.saved).unwrap_or(Value::Null);
    let steps = saved["plan"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let conflicts = saved["plan"]["conflicts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let approvals = s.store.approvals(&hash).await?;
    let may_approve = view.state == "waiting"
        && v.who
            .need(FLEET, Role::Operator, "approving a plan")
            .is_ok();
    let count = |a: &str| steps.iter().filter(|st| st["action"] == a).count();
    let body = html! {
        h1 { "Plan " code { (short(&hash)) } }
        @if q.approved.is_some() {
            p.notice.good id="approved" role="status" { "Approved: the server applies this plan now." }
        }
        section.panel {
            dl.facts {
                dt { "Hash" } dd { code id="plan-hash" { (view.hash) } }
                dt { "Commit" } dd { code { (view.commit_sha) } }
                dt { "Origin" } dd { (view.origin) }
                dt { "Made" } dd { (fmt_ms(view.created_ms)) }
                dt { "State" } dd id="plan-state" { (badge(&view.state)) }
                dt { "Steps" } dd {
                    (count("create")) " to create, " (count("adopt")) " to adopt, "
                    (count("update")) " to update, " (count("delete")) " to delete"
                }
                @if !view.reasons.is_empty() {
                    dt { "Why it waits" } dd { @for r in &view.reasons { div { (r) } } }
                }
            }
            @if may_approve {
                form id="approve-form" method="post" action=(format!("/ui/plans/{}/approve", seg(&hash))) {
                    input type="hidden" name="csrf" value=(v.csrf());
                    p.muted { "Approving binds to this plan's hash: if the platforms changed since it was made, the approval is refused." }
                    button.approve id="approve" type="submit" { "Approve" }
                }
            }
        }
        @if !conflicts.is_empty() {
            h2 { "Conflicts" }
            section.panel { @for c in &conflicts { pre { (pretty(c)) } } }
        }
        h2 { "Changes" }
        @if steps.is_empty() { p.muted { "The plan has no steps." } }
        (diff(&steps))
        h2 { "Approvals" }
        @if approvals.is_empty() {
            p.muted { "None yet." }
        } @else {
            table id="approvals" {
                thead { tr { th { "When" } th { "Who" } th { "Outcome" } th { "Detail" } } }
                tbody {
                    @for a in &approvals {
                        tr { td.when { (fmt_ms(a.at_ms)) } td { (a.approver) } td { (badge(&a.outcome)) } td { (a.detail) } }
                    }
                }
            }
        }
    };
    Ok(respond(&v, Nav::Plans, "Plan", body))
}

/// The Approve button: the API's approval path, then back to the plan.
pub(super) async fn approve(
    State(s): S,
    Extension(v): Extension<Viewer>,
    Path(hash): Path<String>,
) -> Response {
    match crate::http::approve_plan(&s, &v.who, &v.rid, &hash).await {
        Ok(_) => Redirect::to(&format!("/ui/plans/{}?approved=1", seg(&hash))).into_response(),
        Err(p) => problem_page(Some(&v), p),
    }
}

// ---------------------------------------------------------------- workflows

#[derive(Deserialize, Default)]
pub(super) struct WorkflowsQuery {
    kind: Option<String>,
    limit: Option<u32>,
}

const WORKFLOW_KINDS: [&str; 7] = [
    "commit",
    "approved",
    "reconcile",
    "onboard",
    "upgrade",
    "decommission",
    "request",
];

pub(super) async fn workflows(
    State(s): S,
    Extension(v): Extension<Viewer>,
    q: Q<WorkflowsQuery>,
) -> Page {
    let Query(q) = q.map_err(bad_query)?;
    let limit = limit(q.limit, 50)?;
    let kind = q.kind.clone().unwrap_or_default();
    if !kind.is_empty()
        && (kind.len() > 40 || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
    {
        return Err(UiError(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-kind",
            "a workflow kind is lowercase letters and '-'",
        )));
    }
    let list: Vec<_> = s
        .store
        .workflows((!kind.is_empty()).then_some(kind.as_str()), limit)
        .await?
        .into_iter()
        .filter(|(_, k, subject, _)| {
            v.who
                .role_in(crate::http::workflow_team(k, subject))
                .is_some()
        })
        .collect();
    let body = html! {
        h1 { "Workflows" }
        form.filters method="get" action="/ui/workflows" {
            div {
                label for="kind" { "Kind" }
                select id="kind" name="kind" {
                    option value="" selected[kind.is_empty()] { "all" }
                    @for k in WORKFLOW_KINDS {
                        option value=(k) selected[k == kind] { (k) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @if list.is_empty() {
            p.muted { "No workflow to show." }
        } @else {
            table id="workflows" {
                thead { tr { th { "Workflow" } th { "Kind" } th { "Subject" } th { "State" } } }
                tbody {
                    @for (id, k, subject, state) in &list {
                        tr {
                            td { a href=(format!("/ui/workflows/{}", seg(id))) { code { (short(id)) "…" } } }
                            td { (k) }
                            td { code { (clip(subject.clone(), 120)) } }
                            td { (badge(state)) }
                        }
                    }
                }
            }
            p.muted { "The newest " (limit) " of the server's workflows, those you may see." }
        }
    };
    Ok(respond(&v, Nav::Workflows, "Workflows", body))
}

pub(super) async fn workflow(
    State(s): S,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
) -> Page {
    let missing = || {
        UiError(Problem::new(
            StatusCode::NOT_FOUND,
            "workflow-not-found",
            format!("no workflow {id}"),
        ))
    };
    let Some(w) = s.store.workflow(&id).await? else {
        return Err(missing());
    };
    if v.who
        .role_in(crate::http::workflow_team(&w.kind, &w.subject))
        .is_none()
    {
        return Err(missing());
    }
    let events = s.store.events(&id).await?;
    let shown = events.len().saturating_sub(200);
    let body = html! {
        h1 { "Workflow " code { (short(&w.id)) } }
        section.panel {
            dl.facts {
                dt { "Id" } dd { code { (w.id) } }
                dt { "Kind" } dd { (w.kind) }
                dt { "Subject" } dd { code { (w.subject) } }
                dt { "State" } dd id="workflow-state" { (badge(&w.state)) }
            }
        }
        h2 { "Steps" }
        (steps_table(&w))
        h2 { "Events" }
        @if events.is_empty() {
            p.muted { "No events." }
        } @else {
            @if shown > 0 { p.muted { "The last 200 of " (events.len()) " events." } }
            table id="events" {
                thead { tr { th { "When" } th { "Event" } th { "Detail" } } }
                tbody {
                    @for e in &events[shown..] {
                        tr { td.when { (fmt_ms(e.at_ms)) } td { (e.kind) } td { (clip(e.detail.clone(), MAX_VALUE * 4)) } }
                    }
                }
            }
        }
    };
    Ok(respond(&v, Nav::Workflows, "Workflow", body))
}

// ---------------------------------------------------------------- audit

#[derive(Deserialize, Default)]
pub(super) struct AuditQuery {
    team: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

pub(super) async fn audit(State(s): S, Extension(v): Extension<Viewer>, q: Q<AuditQuery>) -> Page {
    let Query(q) = q.map_err(bad_query)?;
    let limit = limit(q.limit, 50)?;
    let forbidden = |what: String| UiError(Problem::new(StatusCode::FORBIDDEN, "forbidden", what));
    let team = match (
        q.team.as_deref().filter(|t| !t.is_empty()),
        v.fleet_reader(),
    ) {
        (Some(t), true) => Some(t.to_string()),
        (Some(t), false) => {
            if v.who.role_in(t).is_none_or(|r| r < Role::Admin) {
                return Err(forbidden(format!(
                    "team {t}'s audit records need the admin role in it"
                )));
            }
            Some(t.to_string())
        }
        (None, true) => None,
        (None, false) => match v.who.grants.iter().find(|g| g.role >= Role::Admin) {
            Some(g) => Some(g.team.clone()),
            None => {
                return Err(forbidden(
                    "the audit log needs a fleet grant, or the admin role in a team".into(),
                ));
            }
        },
    };
    let rows = s
        .store
        .audit_entries(team.as_deref(), q.before.unwrap_or(0).max(0), limit)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let team_text = team.clone().unwrap_or_default();
    let limit_text = limit.to_string();
    let body = html! {
        h1 { "Audit log" }
        p.muted {
            @if let Some(t) = &team { "Records of team " code { (t) } ", newest first." }
            @else { "Every record, newest first." }
            " Each record is chained to the one before it (" code { "strata audit verify" } ")."
        }
        table id="audit" {
            thead { tr { th.num { "#" } th { "When" } th { "Who" } th { "Team" } th { "Action" } th { "Object" } th { "Change" } } }
            tbody {
                @for r in &rows {
                    tr {
                        td.num { (r.seq) }
                        td.when { (fmt_ms(r.at_ms)) }
                        td { code { (r.actor) } }
                        td { (if r.team == FLEET { "fleet" } else { r.team.as_str() }) }
                        td { code { (r.action) } }
                        td { code { (clip(r.object.clone(), 120)) } }
                        td {
                            @if !r.before.is_null() { div { span.old { (value_text(&r.before)) } } }
                            @if !r.after.is_null() { div { span.new { (value_text(&r.after)) } } }
                        }
                    }
                }
            }
        }
        div.pager {
            @if q.before.is_some() {
                a href=(format!("/ui/audit{}", query(&[("team", &team_text), ("limit", &limit_text)]))) { "← Newest" }
            }
            @if let Some(n) = next {
                a id="next" href=(format!("/ui/audit{}", query(&[("team", &team_text), ("limit", &limit_text), ("before", &n.to_string())]))) { "Older →" }
            }
        }
    };
    Ok(respond(&v, Nav::Audit, "Audit", body))
}

// ---------------------------------------------------------------- requests

/// The self-service form. It posts to `/api/v1/requests` itself (htmx, the
/// `strata-json` extension of `ui.js`, the session's CSRF token in `X-CSRF-Token`)
/// and shows what the API answered.
pub(super) async fn requests(State(s): S, Extension(v): Extension<Viewer>) -> Page {
    let fleet_teams: Vec<String> = if v.fleet_reader() {
        match crate::work::applied_fleet(&s).await {
            Ok(Some((_, f))) => f.teams.iter().map(|t| t.name.clone()).collect(),
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let mut teams: Vec<String> = v
        .who
        .grants
        .iter()
        .filter(|g| g.team != FLEET && g.role >= Role::Member)
        .map(|g| g.team.clone())
        .chain(
            fleet_teams
                .into_iter()
                .filter(|t| v.who.role_in(t).is_some_and(|r| r >= Role::Member)),
        )
        .collect();
    teams.sort();
    teams.dedup();
    let body = html! {
        h1 { "Request infrastructure" }
        @if teams.is_empty() || !v.who.write {
            p.notice id="no-teams" { "Requests are made for a team, by its members: this login has no member role in a team (or only the read scope)." }
        } @else {
            form.panel id="request-form" hx-post="/api/v1/requests" hx-ext="strata-json"
                hx-target="#request-result" hx-swap="innerHTML" {
                div.grid {
                    div.field {
                        label for="kind" { "Kind" }
                        select id="kind" name="kind" { option value="vm" selected { "VM (Proxmox)" } }
                    }
                    div.field {
                        label for="team" { "Team" }
                        select id="team" name="team" required {
                            @for t in &teams { option value=(t) { (t) } }
                        }
                    }
                    div.field {
                        label for="name" { "Name" }
                        input id="name" name="name" required maxlength="63"
                            pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?" placeholder="build-cache";
                    }
                    div.field {
                        label for="cores" { "Cores" }
                        input id="cores" name="cores" type="number" min="1" max="256" value="2" required;
                    }
                    div.field {
                        label for="memory_mib" { "Memory (MiB)" }
                        input id="memory_mib" name="memory_mib" type="number" min="256" step="256" value="4096" required;
                    }
                    div.field {
                        label for="disk_gb" { "Disk (GB)" }
                        input id="disk_gb" name="disk_gb" type="number" min="1" value="20" required;
                    }
                }
                button id="request-submit" type="submit" { "Request" }
            }
            div id="request-result" aria-live="polite" {}
            p.muted {
                "strata places the request by capacity, quota and policy and runs it as a "
                a href="/ui/workflows?kind=request" { "request workflow" } "."
            }
        }
    };
    Ok(respond(&v, Nav::Requests, "Requests", body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_are_utc() {
        assert_eq!(fmt_ms(0), "—");
        assert_eq!(fmt_ms(1), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_ms(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(fmt_ms(1_798_761_599_000), "2026-12-31 23:59:59 UTC");
        assert_eq!(fmt_ms(4_107_542_400_000), "2100-03-01 00:00:00 UTC");
    }

    #[test]
    fn values_are_clipped_on_character_boundaries() {
        assert_eq!(clip("abc".into(), 5), "abc");
        assert_eq!(clip("abcdef".into(), 3), "abc…");
        assert_eq!(clip("ééé".into(), 3), "é…");
        assert_eq!(value_text(&json!("x")), "x");
        assert_eq!(value_text(&json!(["a", 1])), "[\"a\",1]");
    }

    #[test]
    fn paths_and_queries_are_encoded() {
        assert_eq!(seg("fra1"), "fra1");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
        assert_eq!(
            query(&[("dc", ""), ("cursor", "fra1/m 1")]),
            "?cursor=fra1%2Fm+1"
        );
        assert_eq!(query(&[("dc", "")]), "");
    }

    #[test]
    fn onboarding_reads_the_commission_step() {
        let step = |name: &str, state: &str, evidence: Option<Value>| strata_store::StepView {
            idx: 0,
            name: name.into(),
            state: state.into(),
            attempts: 1,
            evidence,
            error: None,
        };
        let w = |state: &str, steps| WorkflowView {
            id: "w".into(),
            key: "k".into(),
            kind: "onboard".into(),
            subject: "s".into(),
            state: state.into(),
            steps,
        };
        assert_eq!(onboarding_states(None), ("none".into(), "—".into()));
        let running = w(
            "running",
            vec![
                step("commission", "done", Some(json!({}))),
                step("deploy", "running", None),
            ],
        );
        assert_eq!(
            onboarding_states(Some(&running)),
            ("running: deploy".into(), "validated".into())
        );
        let q = w(
            "done",
            vec![step(
                "commission",
                "done",
                Some(json!({"quarantined": "nic missing"})),
            )],
        );
        assert_eq!(onboarding_states(Some(&q)).1, "quarantined");
        let pending = w("running", vec![step("commission", "pending", None)]);
        assert_eq!(
            onboarding_states(Some(&pending)),
            ("running: commission".into(), "pending".into())
        );
    }

    #[test]
    fn the_diff_shows_old_and_new_per_field_and_hides_sensitive_values() {
        let steps = vec![json!({
            "id": {"dc": "fra1", "kind": "vm", "name": "ci-runner1"},
            "action": "update",
            "changes": [
                {"field": "tags", "old": ["ci"], "new": ["ci", "<b>x</b>"]},
                {"field": "password", "old": "sha256:aa", "new": "sha256:bb", "sensitive": true},
                {"field": "cores", "old": null, "new": 4}
            ]
        })];
        let html = diff(&steps).into_string();
        assert!(html.contains("~ fra1/vm/ci-runner1"), "{html}");
        assert!(
            html.contains("[&quot;ci&quot;]") && html.contains("&lt;b&gt;x&lt;/b&gt;"),
            "{html}"
        );
        assert!(
            !html.contains("sha256:bb") && html.contains("(sensitive, changed)"),
            "{html}"
        );
        assert!(html.contains("<td class=\"new\"><code>4</code>"), "{html}");
        let many: Vec<Value> = (0..MAX_STEPS + 3).map(|_| steps[0].clone()).collect();
        assert!(diff(&many).into_string().contains("3 more step(s)"));
    }
}
