//! The store's protocol, run against both databases: SQLite in a temporary file and
//! the PostgreSQL that runs beside the tests (127.0.0.1:5432, trust auth, database
//! `test`; `STRATA_TEST_POSTGRES` overrides the URL), each test in a schema of its own.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use strata_store::{Failed, StepSpec, Store, now_ms};

mod common;
use common::{drop_schema, pg_base, postgres, sqlite};

fn steps(names: &[&str]) -> Vec<StepSpec> {
    names
        .iter()
        .map(|n| StepSpec {
            max_attempts: 3,
            timeout: Duration::from_secs(60),
            ..StepSpec::new(*n)
        })
        .collect()
}

/// Steps run in order, one claim at a time; a workflow is started once per key; the
/// last step completes the workflow; results record evidence and events.
async fn steps_run_in_order_and_complete_the_workflow(s: &Store) {
    let (id, created) = s
        .start(
            "onboard:SN1",
            "onboard",
            "SN1",
            &steps(&["enlist", "commission", "deploy"]),
        )
        .await
        .expect("start");
    assert!(created);
    let (again, created) = s
        .start("onboard:SN1", "onboard", "SN1", &steps(&["enlist"]))
        .await
        .expect("start again");
    assert_eq!((again.as_str(), created), (id.as_str(), false));
    let now = now_ms();
    let c = s
        .claim("w1", None, now)
        .await
        .expect("claim")
        .expect("a step");
    assert_eq!((c.name.as_str(), c.step, c.attempt), ("enlist", 0, 1));
    assert_eq!(c.key(), format!("{id}:0"));
    // The next step waits for this one.
    assert_eq!(s.claim("w2", None, now).await.expect("claim"), None);
    assert!(
        s.complete(&c, &json!({"system_id": "abc"}))
            .await
            .expect("complete")
    );
    for name in ["commission", "deploy"] {
        let c = s
            .claim("w2", None, now)
            .await
            .expect("claim")
            .expect("a step");
        assert_eq!(c.name, name);
        assert!(
            s.complete(&c, &json!({"ok": name}))
                .await
                .expect("complete")
        );
    }
    assert_eq!(s.claim("w1", None, now).await.expect("claim"), None);
    let w = s.workflow(&id).await.expect("read").expect("workflow");
    assert_eq!(w.state, "done");
    assert_eq!(w.steps[0].evidence, Some(json!({"system_id": "abc"})));
    let kinds: Vec<String> = s
        .events(&id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("started"));
    assert_eq!(kinds.last().map(String::as_str), Some("done"));
}

/// A step can stop its workflow: it is recorded done with its evidence, the steps
/// after it are skipped and never claimed, the workflow ends `stopped`; a stale
/// claim cannot halt.
async fn a_step_halts_its_workflow(s: &Store) {
    let (id, _) = s
        .start(
            "upgrade:dc1:9.1",
            "upgrade",
            "{}",
            &steps(&["gate:n1", "drain:n2", "upgrade:n2"]),
        )
        .await
        .expect("start");
    let c = s
        .claim("w1", None, now_ms())
        .await
        .expect("claim")
        .expect("a step");
    assert_eq!(c.workflow, id);
    let mut stale = c.clone();
    stale.attempt += 1;
    assert!(!s.halt(&stale, &json!({}), "no").await.expect("stale halt"));
    assert!(
        s.halt(&c, &json!({"gate": "failed"}), "n1 failed its gate")
            .await
            .expect("halt")
    );
    assert_eq!(s.claim("w2", None, now_ms()).await.expect("claim"), None);
    let w = s.workflow(&id).await.expect("read").expect("workflow");
    assert_eq!(w.state, "stopped");
    let states: Vec<&str> = w.steps.iter().map(|st| st.state.as_str()).collect();
    assert_eq!(states, ["done", "skipped", "skipped"]);
    assert_eq!(w.steps[0].evidence, Some(json!({"gate": "failed"})));
    let events = s.events(&id).await.expect("events");
    let last = events.last().expect("an event");
    assert_eq!(
        (last.kind.as_str(), last.detail.as_str()),
        ("stopped", "n1 failed its gate")
    );
}

/// A failed attempt is retried after its backoff; the last failure fails the
/// workflow; a worker whose lease ran out cannot record over its successor; a
/// crashed worker's step is taken over when its lease runs out (resume).
async fn failures_retry_stale_claims_are_refused_and_crashes_resume(s: &Store) {
    let (id, _) = s
        .start(
            "upgrade:pve1",
            "upgrade",
            "pve1",
            &steps(&["drain", "upgrade"]),
        )
        .await
        .expect("start");
    let t0 = now_ms();
    let c1 = s.claim("a", None, t0).await.expect("claim").expect("step");
    let Failed::Retrying { retry_at_ms } = s.fail(&c1, "API 503", t0).await.expect("fail") else {
        panic!("expected a retry");
    };
    assert!(retry_at_ms >= t0 + 1000);
    assert_eq!(
        s.claim("a", None, t0).await.expect("claim"),
        None,
        "backoff"
    );
    // The retry is claimed after the backoff; that worker then "crashes".
    let c2 = s
        .claim("b", None, retry_at_ms)
        .await
        .expect("claim")
        .expect("retry");
    assert_eq!((c2.step, c2.attempt), (0, 2));
    // After the lease (60 s) runs out another worker resumes the step.
    let late = retry_at_ms + 61_000;
    let c3 = s
        .claim("c", None, late)
        .await
        .expect("claim")
        .expect("resume");
    assert_eq!((c3.step, c3.attempt, c3.worker.as_str()), (0, 3, "c"));
    // The crashed worker comes back: its result is refused.
    assert!(!s.complete(&c2, &json!({})).await.expect("complete"));
    assert_eq!(
        s.fail(&c2, "late", late).await.expect("fail"),
        Failed::Stale
    );
    // The third attempt was the last: its failure fails the workflow.
    assert_eq!(
        s.fail(&c3, "still down", late).await.expect("fail"),
        Failed::Exhausted
    );
    let w = s.workflow(&id).await.expect("read").expect("workflow");
    assert_eq!(w.state, "failed");
    assert_eq!(w.steps[0].error.as_deref(), Some("still down"));
    assert_eq!(w.steps[1].state, "pending");
    assert_eq!(
        s.claim("d", None, late + 10_000_000).await.expect("claim"),
        None
    );

    // Cancelled: nothing more is claimed and a step in flight cannot record.
    let (id, _) = s
        .start(
            "decommission:SN9",
            "decommission",
            "SN9",
            &steps(&["drain"]),
        )
        .await
        .expect("start");
    let c = s
        .claim("a", None, late)
        .await
        .expect("claim")
        .expect("step");
    assert!(s.cancel(&id).await.expect("cancel"));
    assert!(!s.complete(&c, &json!({})).await.expect("complete"));
    assert!(!s.cancel(&id).await.expect("cancel twice"));
    let w = s.workflow(&id).await.expect("read").expect("workflow");
    assert_eq!(
        (w.state.as_str(), w.steps[0].state.as_str()),
        ("cancelled", "cancelled")
    );
}

/// The leader lease: one holder at a time; renewal keeps the fencing counter, a
/// takeover after expiry raises it, and the old holder's counter no longer fences.
async fn the_lease_has_one_holder_and_fences_the_old_one(s: &Store) {
    let ttl = Duration::from_secs(10);
    let t = now_ms();
    let a = s
        .acquire_lease("leader", "a", ttl, t)
        .await
        .expect("a")
        .expect("a leads");
    assert_eq!(
        s.acquire_lease("leader", "b", ttl, t + 1).await.expect("b"),
        None
    );
    assert_eq!(
        s.acquire_lease("leader", "a", ttl, t + 5_000)
            .await
            .expect("renew"),
        Some(a)
    );
    assert!(s.fence("leader", a).await.expect("fence"));
    // a pauses past its lease; b takes over with a higher counter.
    let b = s
        .acquire_lease("leader", "b", ttl, t + 16_000)
        .await
        .expect("b")
        .expect("b leads");
    assert!(b > a);
    assert!(!s.fence("leader", a).await.expect("fence"));
    assert!(s.fence("leader", b).await.expect("fence"));
    assert_eq!(
        s.acquire_lease("leader", "a", ttl, t + 17_000)
            .await
            .expect("a"),
        None
    );
}

/// Concurrent workers never claim one step twice.
async fn concurrent_workers_claim_each_step_once(s: Arc<Store>) {
    for i in 0..40 {
        s.start(
            &format!("bulk:{i}"),
            "onboard",
            &format!("M{i}"),
            &steps(&["only"]),
        )
        .await
        .expect("start");
    }
    let now = now_ms();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(c) = s.claim(&format!("w{w}"), None, now).await.expect("claim") {
                assert!(s.complete(&c, &json!({})).await.expect("complete"));
                got.push(c.key());
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a step was claimed twice");
    assert!(all.len() >= 40, "{}", all.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = sqlite(&dir).await;
    steps_run_in_order_and_complete_the_workflow(&s).await;
    a_step_halts_its_workflow(&s).await;
    failures_retry_stale_claims_are_refused_and_crashes_resume(&s).await;
    the_lease_has_one_holder_and_fences_the_old_one(&s).await;
    commits_plans_and_approvals(&s).await;
    concurrent_workers_claim_each_step_once(Arc::new(s)).await;
    // Everything survives reopening the file.
    let s = sqlite(&dir).await;
    assert!(s.claim("x", None, now_ms()).await.expect("claim").is_none());
}

/// Commits, plans, approvals and named values: recorded once, moved between states
/// only from the state the caller expects (an approval is acted on once), listed
/// newest first; heartbeats keep a long step's claim, evidence reads back.
async fn commits_plans_and_approvals(s: &Store) {
    assert!(s.record_commit("aaa", "main").await.expect("record"));
    assert!(
        !s.record_commit("aaa", "main").await.expect("again"),
        "recorded once"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(s.record_commit("bbb", "main").await.expect("record"));
    s.set_commit("aaa", "applied", Some(&json!({"counts": {"create": 3}})))
        .await
        .expect("set");
    let a = s.commit("aaa").await.expect("read").expect("exists");
    assert_eq!(a.state, "applied");
    assert_eq!(a.result, Some(json!({"counts": {"create": 3}})));
    s.set_commit("aaa", "superseded", None)
        .await
        .expect("state only");
    let a = s.commit("aaa").await.expect("read").expect("exists");
    assert_eq!((a.state.as_str(), a.result.is_some()), ("superseded", true));
    let list = s.commits(10, None).await.expect("list");
    let shas: Vec<&str> = list.iter().map(|c| c.sha.as_str()).collect();
    assert_eq!(shas, ["bbb", "aaa"], "newest first");
    let older = s.commits(10, Some(list[0].seen_ms)).await.expect("page");
    assert_eq!(
        older.iter().map(|c| c.sha.as_str()).collect::<Vec<_>>(),
        ["aaa"]
    );
    assert!(s.commit("ccc").await.expect("read").is_none());

    let reasons = vec!["1 delete(s)".to_string()];
    s.save_plan("h1", "aaa", "commit", "waiting", &reasons, "{}")
        .await
        .expect("save");
    s.save_plan("h1", "aaa", "commit", "applied", &[], "{}")
        .await
        .expect("save twice keeps the first");
    s.save_plan("h2", "bbb", "commit", "waiting", &reasons, "{}")
        .await
        .expect("save");
    let p = s.plan("h1").await.expect("read").expect("exists");
    assert_eq!(
        (p.state.as_str(), p.reasons.clone()),
        ("waiting", reasons.clone())
    );
    assert_eq!(s.supersede_waiting("h2").await.expect("supersede"), 1);
    assert_eq!(s.plans(Some("waiting"), 10).await.expect("list").len(), 1);
    assert!(
        s.move_plan("h2", "waiting", "approved")
            .await
            .expect("move")
    );
    assert!(
        !s.move_plan("h2", "waiting", "approved")
            .await
            .expect("move"),
        "a second approval finds it approved"
    );
    s.record_approval("h2", "alice", "accepted", "")
        .await
        .expect("record");
    s.record_approval("h2", "bob", "refused", "plan is approved")
        .await
        .expect("record");
    let who: Vec<String> = s
        .approvals("h2")
        .await
        .expect("list")
        .into_iter()
        .map(|a| format!("{}:{}", a.approver, a.outcome))
        .collect();
    assert_eq!(who, ["alice:accepted", "bob:refused"]);

    assert_eq!(s.get_value("lock").await.expect("get"), None);
    s.put_value("lock", "one").await.expect("put");
    s.put_value("lock", "two").await.expect("replace");
    assert_eq!(
        s.get_value("lock").await.expect("get").as_deref(),
        Some("two")
    );

    let (id, _) = s
        .start("long:1", "long", "x", &steps(&["work"]))
        .await
        .expect("start");
    let c = s
        .claim("w1", None, now_ms())
        .await
        .expect("claim")
        .expect("claimed");
    assert!(s.heartbeat(&c, now_ms() + 600_000).await.expect("beat"));
    // Past the original timeout, the renewed lease still holds the step.
    assert!(
        s.claim("w2", None, now_ms() + 120_000)
            .await
            .expect("claim")
            .is_none()
    );
    assert!(
        s.complete(&c, &json!({"did": "it"}))
            .await
            .expect("complete")
    );
    assert!(
        !s.heartbeat(&c, now_ms() + 600_000).await.expect("beat"),
        "done: nothing to renew"
    );
    assert_eq!(
        s.evidence(&id, 0).await.expect("evidence"),
        Some(json!({"did": "it"}))
    );
    let kinds: Vec<String> = s
        .workflows(Some("long"), 10)
        .await
        .expect("list")
        .into_iter()
        .map(|(_, kind, _, state)| format!("{kind}:{state}"))
        .collect();
    assert_eq!(kinds, ["long:done"]);
    assert!(s.lease_holder("leader").await.expect("read").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store() {
    let (s, schema) = postgres().await;
    steps_run_in_order_and_complete_the_workflow(&s).await;
    a_step_halts_its_workflow(&s).await;
    failures_retry_stale_claims_are_refused_and_crashes_resume(&s).await;
    the_lease_has_one_holder_and_fences_the_old_one(&s).await;
    commits_plans_and_approvals(&s).await;
    let s = Arc::new(s);
    concurrent_workers_claim_each_step_once(s.clone()).await;
    // A second server on the same database migrates nothing twice.
    let base = pg_base();
    let sep = if base.contains('?') { '&' } else { '?' };
    let again = Store::connect(&format!("{base}{sep}options=-c%20search_path%3D{schema}"))
        .await
        .expect("second server");
    assert!(
        again
            .claim("x", None, now_ms())
            .await
            .expect("claim")
            .is_none()
    );
    drop(again);
    drop(s);
    drop_schema(&schema).await;
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error() {
    let e = Store::connect("mysql://x").await.err().expect("refused");
    assert!(e.to_string().contains("sqlite:PATH or postgres://"), "{e}");
}
