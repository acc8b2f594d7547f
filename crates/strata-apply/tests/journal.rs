//! The apply journal's behaviours, run against both backends: a SQLite file in a
//! temporary directory and the PostgreSQL that runs beside the tests (127.0.0.1:5432,
//! trust auth, database `test`; `STRATA_TEST_POSTGRES` overrides the URL), each test in
//! a schema of its own (made here, used through the connections' search path, dropped
//! after).

use std::collections::BTreeSet;
use std::future::Future;

use serde_json::json;
use strata_apply::{Journal, JournalBackend, JournalLocation};
use strata_providers::IntentLog;

fn pg_base() -> String {
    std::env::var("STRATA_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

async fn pg_admin() -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(&pg_base())
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (or STRATA_TEST_POSTGRES)")
}

/// A fresh PostgreSQL schema, and the journal location that uses it.
async fn postgres() -> (JournalLocation, String) {
    let schema = format!("journal_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut pg_admin().await)
        .await
        .expect("schema");
    let base = pg_base();
    let sep = if base.contains('?') { '&' } else { '?' };
    let at = JournalLocation::Url(format!("{base}{sep}options=-c%20search_path%3D{schema}"));
    (at, schema)
}

async fn drop_schema(schema: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut pg_admin().await)
        .await
        .expect("drop schema");
}

/// Tables in `schema` whose name starts with `prefix`.
async fn pg_tables(schema: &str, prefix: &str) -> BTreeSet<String> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = $1 AND table_name LIKE $2",
    )
    .bind(schema)
    .bind(format!("{prefix}%"))
    .fetch_all(&mut pg_admin().await)
    .await
    .expect("tables");
    rows.into_iter().map(|(t,)| t).collect()
}

/// Run `behaviour` on a SQLite file, then on a fresh PostgreSQL schema.
async fn on_both<F, Fut>(behaviour: F)
where
    F: Fn(JournalLocation) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tmp");
    behaviour(JournalLocation::File(dir.path().join("fleet.journal"))).await;
    let (at, schema) = postgres().await;
    behaviour(at).await;
    drop_schema(&schema).await;
}

fn backend_of(at: &JournalLocation) -> JournalBackend {
    match at {
        JournalLocation::Url(u) if u.starts_with("postgres") => JournalBackend::Postgres,
        _ => JournalBackend::Sqlite,
    }
}

/// An intent recorded by an attempt that never finished is there after a reopen; the
/// step's `done` clears it and records the applied fields.
async fn intents_survive_a_reopen_and_are_cleared_when_done(at: JournalLocation) {
    {
        let j = Journal::open_at(&at).await.expect("open");
        assert_eq!(j.backend(), backend_of(&at));
        j.started("k1", "fra1/vm/a", "create")
            .await
            .expect("started");
        j.record("fra1/vm/a#create", &json!({"vmid": 123})).await;
        // Killed here: no done(), no close().
    }
    let j = Journal::open_at(&at).await.expect("reopen");
    assert_eq!(
        j.previous("fra1/vm/a#create").await,
        Some(json!({"vmid": 123}))
    );
    assert_eq!(
        j.steps_in("started").await.expect("steps"),
        vec![("fra1/vm/a".to_string(), "create".to_string())]
    );
    j.started("k1", "fra1/vm/a", "create")
        .await
        .expect("started");
    j.done(
        "k1",
        "fra1/vm/a",
        Some("123"),
        Some(&json!({"memory": 1})),
        "fra1/vm/a#create",
    )
    .await
    .expect("done");
    assert_eq!(j.previous("fra1/vm/a#create").await, None);
    assert_eq!(
        j.applied().await.expect("applied"),
        vec![("fra1/vm/a".to_string(), json!({"memory": 1}))]
    );
    assert_eq!(
        j.steps_in("done").await.expect("steps"),
        vec![("fra1/vm/a".to_string(), "create".to_string())]
    );
    j.finish("succeeded", 1).await.expect("finish");
    j.close().await;
}

#[tokio::test]
async fn intents_survive_a_reopen_and_are_cleared_when_done_on_both() {
    on_both(intents_survive_a_reopen_and_are_cleared_when_done).await;
}

/// The takeover: the leader that started a create recorded its intent and stopped
/// (crashed, its handle still open as far as the database knows); another handle on
/// the same journal — another server — finds that intent, sees the resource as
/// resuming, finishes the step, and the first handle sees that too.
async fn a_step_taken_over_finds_the_intent_the_first_handle_recorded(at: JournalLocation) {
    let leader = Journal::open_at(&at).await.expect("leader");
    leader
        .started("fra1/vm/web-1#create", "fra1/vm/web-1", "create")
        .await
        .expect("started");
    leader
        .record("fra1/vm/web-1#create", &json!({"vmid": 4242}))
        .await;

    let resuming = strata_apply::reconcile::resuming(&at)
        .await
        .expect("resuming");
    assert_eq!(
        resuming.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["fra1/vm/web-1".to_string()]
    );

    let next = Journal::open_at(&at).await.expect("next leader");
    assert_ne!(next.run_id(), leader.run_id());
    assert_eq!(
        next.previous("fra1/vm/web-1#create").await,
        Some(json!({"vmid": 4242}))
    );
    next.started("fra1/vm/web-1#create", "fra1/vm/web-1", "create")
        .await
        .expect("started again");
    next.done(
        "fra1/vm/web-1#create",
        "fra1/vm/web-1",
        Some("4242"),
        Some(&json!({"cores": 2})),
        "fra1/vm/web-1#create",
    )
    .await
    .expect("done");

    assert_eq!(leader.previous("fra1/vm/web-1#create").await, None);
    assert_eq!(
        leader.applied().await.expect("applied"),
        vec![("fra1/vm/web-1".to_string(), json!({"cores": 2}))]
    );
    assert!(
        strata_apply::reconcile::resuming(&at)
            .await
            .expect("resuming")
            .is_empty()
    );
    next.close().await;
    leader.close().await;
}

#[tokio::test]
async fn a_step_taken_over_finds_the_intent_the_first_handle_recorded_on_both() {
    on_both(a_step_taken_over_finds_the_intent_the_first_handle_recorded).await;
}

/// Deletes clear the baseline; failures are recorded with their error and a retry
/// starts the step again.
async fn the_baseline_follows_done_and_failed_steps(at: JournalLocation) {
    let j = Journal::open_at(&at).await.expect("open");
    for (key, res) in [("k-b", "fra1/vm/b"), ("k-a", "fra1/vm/a")] {
        j.started(key, res, "create").await.expect("started");
        j.done(key, res, None, Some(&json!({"name": res})), "none")
            .await
            .expect("done");
    }
    assert_eq!(
        j.applied()
            .await
            .expect("applied")
            .into_iter()
            .map(|(r, _)| r)
            .collect::<Vec<_>>(),
        vec!["fra1/vm/a".to_string(), "fra1/vm/b".to_string()]
    );
    j.started("k-a-del", "fra1/vm/a", "delete")
        .await
        .expect("started");
    j.done("k-a-del", "fra1/vm/a", None, None, "fra1/vm/a#delete")
        .await
        .expect("done");
    assert_eq!(
        j.applied().await.expect("applied"),
        vec![("fra1/vm/b".to_string(), json!({"name": "fra1/vm/b"}))]
    );

    j.started("k-c", "fra1/vm/c", "create")
        .await
        .expect("started");
    j.failed("k-c", "quota exceeded").await.expect("failed");
    assert_eq!(
        j.steps_in("failed").await.expect("failed"),
        vec![("fra1/vm/c".to_string(), "create".to_string())]
    );
    j.started("k-c", "fra1/vm/c", "create")
        .await
        .expect("retry");
    assert!(j.steps_in("failed").await.expect("failed").is_empty());
    assert_eq!(
        j.steps_in("started").await.expect("started"),
        vec![("fra1/vm/c".to_string(), "create".to_string())]
    );
    j.finish("failed", 4).await.expect("finish");
    j.close().await;

    // Reading does not start a run.
    let r = Journal::inspect_at(&at).await.expect("inspect");
    assert_eq!(r.run_id(), 0);
    assert_eq!(r.applied().await.expect("applied").len(), 1);
    r.close().await;
}

#[tokio::test]
async fn the_baseline_follows_done_and_failed_steps_on_both() {
    on_both(the_baseline_follows_done_and_failed_steps).await;
}

/// Journals opened at once (servers starting together, a server's workers) all open,
/// each with its own run.
async fn journals_opened_at_once_all_open(at: JournalLocation) {
    let opened = futures::future::join_all((0..8).map(|_| Journal::open_at(&at))).await;
    let journals: Vec<Journal> = opened
        .into_iter()
        .map(|r| r.expect("open"))
        .collect::<Vec<_>>();
    let runs: BTreeSet<i64> = journals.iter().map(Journal::run_id).collect();
    assert_eq!(runs.len(), journals.len());
    for j in journals {
        j.close().await;
    }
}

#[tokio::test]
async fn journals_opened_at_once_create_the_schema_once() {
    // A new file each time: the first opens race to create it and switch it to WAL.
    let dir = tempfile::tempdir().expect("tmp");
    for i in 0..10 {
        let path = dir.path().join(format!("fleet-{i}.journal"));
        journals_opened_at_once_all_open(JournalLocation::File(path)).await;
    }

    let (at, schema) = postgres().await;
    journals_opened_at_once_all_open(at).await;
    assert_eq!(
        pg_tables(&schema, "journal_").await,
        [
            "journal_applied",
            "journal_intents",
            "journal_runs",
            "journal_steps"
        ]
        .map(String::from)
        .into_iter()
        .collect()
    );
    drop_schema(&schema).await;
}

/// On PostgreSQL the journal shares the database (and schema) with `strata-store`:
/// its tables are prefixed, so a store's `steps`, `runs`… are neither used nor touched.
#[tokio::test]
async fn on_postgres_the_journal_keeps_clear_of_the_stores_tables() {
    let (at, schema) = postgres().await;
    let mut admin = pg_admin().await;
    for t in ["steps", "runs", "intents", "applied"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {schema}.{t} (workflow_id TEXT PRIMARY KEY)"
        )))
        .execute(&mut admin)
        .await
        .expect("a store-like table");
    }
    intents_survive_a_reopen_and_are_cleared_when_done(at).await;
    for t in ["steps", "runs", "intents", "applied"] {
        let (rows,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.{t}"
        )))
        .fetch_one(&mut admin)
        .await
        .expect("count");
        assert_eq!(rows, 0, "{t} was written");
    }
    drop_schema(&schema).await;

    // And no store migration names a journal table.
    let migrations =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../strata-store/migrations");
    for entry in std::fs::read_dir(&migrations).expect("strata-store migrations") {
        let path = entry.expect("entry").path();
        let sql = std::fs::read_to_string(&path)
            .expect("migration")
            .to_lowercase();
        assert!(
            !sql.contains(" journal_"),
            "{} names a journal_ table",
            path.display()
        );
    }
}

/// Planning never creates a journal file; a `sqlite:` URL is the same file.
#[tokio::test]
async fn a_missing_journal_file_resumes_nothing_and_is_not_created() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("fleet.journal");
    assert!(
        strata_apply::reconcile::resuming(&path)
            .await
            .expect("resuming")
            .is_empty()
    );
    assert!(!path.exists());

    let j = Journal::open(&path).await.expect("open");
    j.record("fra1/vm/a#create", &json!({"vmid": 1})).await;
    j.close().await;
    let url = JournalLocation::Url(format!("sqlite:{}", path.display()));
    let j = Journal::open_at(&url).await.expect("open by URL");
    assert_eq!(
        j.previous("fra1/vm/a#create").await,
        Some(json!({"vmid": 1}))
    );
    j.close().await;
}

/// A journal file written before the PostgreSQL backend existed (the same tables,
/// unprefixed) keeps its intents and baseline.
#[tokio::test]
async fn an_existing_journal_file_is_read_as_before() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("fleet.journal");
    let old = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .expect("old file");
    for stmt in [
        "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
            finished_at TEXT, status TEXT NOT NULL DEFAULT 'running',
            steps INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE steps (idempotency_key TEXT PRIMARY KEY, resource TEXT NOT NULL,
            action TEXT NOT NULL, state TEXT NOT NULL, run_id INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, external_id TEXT, error TEXT,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))",
        "CREATE TABLE intents (key TEXT PRIMARY KEY, intent TEXT NOT NULL,
            run_id INTEGER NOT NULL,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))",
        "CREATE TABLE applied (resource TEXT PRIMARY KEY, fields TEXT NOT NULL,
            external_id TEXT,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))",
        "INSERT INTO runs (status) VALUES ('running')",
        "INSERT INTO intents (key, intent, run_id) VALUES ('fra1/vm/a#create', '{\"vmid\":7}', 1)",
        "INSERT INTO applied (resource, fields) VALUES ('fra1/vm/b', '{\"cores\":4}')",
    ] {
        sqlx::query(stmt).execute(&old).await.expect("old schema");
    }
    old.close().await;

    let j = Journal::open(&path).await.expect("open");
    assert_eq!(j.run_id(), 2);
    assert_eq!(
        j.previous("fra1/vm/a#create").await,
        Some(json!({"vmid": 7}))
    );
    assert_eq!(
        j.applied().await.expect("applied"),
        vec![("fra1/vm/b".to_string(), json!({"cores": 4}))]
    );
    j.started("k", "fra1/vm/a", "create")
        .await
        .expect("started");
    j.started("k", "fra1/vm/a", "create")
        .await
        .expect("started again");
    j.close().await;
}
