//! What the store's integration tests share: a PostgreSQL store in a schema of its own
//! (the PostgreSQL beside the tests, 127.0.0.1:5432, trust auth, database `test`;
//! `STRATA_TEST_POSTGRES` overrides the URL) and a SQLite store in a temporary file.
#![allow(dead_code)]

use strata_store::Store;

pub fn pg_base() -> String {
    std::env::var("STRATA_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A PostgreSQL store in a fresh schema, and the schema's name.
pub async fn postgres() -> (Store, String) {
    let schema = format!("strata_test_{}", uuid::Uuid::new_v4().simple());
    // A schema of its own, made through a plain connection, then used by the store's
    // connections through their search path.
    let base = pg_base();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (or STRATA_TEST_POSTGRES)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let store = Store::connect(&format!("{base}{sep}options=-c%20search_path%3D{schema}"))
        .await
        .expect("store");
    (store, schema)
}

pub async fn drop_schema(schema: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&pg_base())
        .await
        .expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await
        .expect("drop schema");
}

pub async fn sqlite(dir: &tempfile::TempDir) -> Store {
    Store::connect(&format!(
        "sqlite:{}",
        dir.path().join("strata.db").display()
    ))
    .await
    .expect("sqlite")
}
