//! The store conformance suite on PostgreSQL (a fresh database per case, on a real server;
//! see `support/postgres.rs`), plus what only it has: schema migrations shared by nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store {
    pub mod suite;
}
mod support {
    pub mod postgres;
}

use confab_server::ids::Snowflake;
use confab_server::metrics::Metrics;
use confab_server::store::Store;
use confab_server::store::postgres::{PostgresStore, schema};
use std::sync::Arc;
use support::postgres::TestDatabase;

async fn connect(
    url: &str,
    connections: usize,
) -> confab_server::store::StoreResult<PostgresStore> {
    PostgresStore::connect(
        url,
        connections,
        1024,
        Arc::new(Snowflake::new(1)),
        Metrics::new().store,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_store_suite() {
    let databases = std::sync::Mutex::new(Vec::new());
    store::suite::run_all(|| async {
        let db = TestDatabase::new().await;
        let store: Arc<dyn Store> = Arc::new(connect(&db.url(), 4).await.unwrap());
        databases.lock().unwrap().push(db);
        store
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let db = TestDatabase::new().await;
    let url = db.url();
    // Three nodes at once on an empty database: one applies the schema, the others wait for
    // its lock and find it done.
    let starts = (0..3).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { connect(&url, 2).await })
    });
    for start in starts {
        let store = start.await.unwrap().expect("every node starts");
        assert_eq!(store.schema_version().await.unwrap(), schema::VERSION);
    }
    let client = db.client().await;
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables
             WHERE table_schema = 'public' AND table_name IN
               ('users', 'devices', 'conversations', 'direct_pairs', 'members',
                'member_periods', 'messages', 'inbox', 'push_subscriptions', 'push_outbox',
                'push_shown', 'message_search', 'search_queue', 'conversation_settings', 'blocks')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 15);
    // Starting again changes nothing.
    connect(&url, 1).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_schema_newer_than_it_knows() {
    let db = TestDatabase::new().await;
    connect(&db.url(), 1).await.unwrap();
    db.client()
        .await
        .execute(
            "UPDATE confab_schema SET version = $1",
            &[&(schema::VERSION + 1)],
        )
        .await
        .unwrap();
    let Err(refused) = connect(&db.url(), 1).await else {
        panic!("a node started on a schema from the future");
    };
    let message = refused.to_string();
    assert!(
        message.contains("newer") && message.contains(&(schema::VERSION + 1).to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let Err(e) = connect("postgres://postgres@127.0.0.1:1/none", 1).await else {
        panic!("connected to nothing");
    };
    assert!(e.to_string().contains("cannot reach PostgreSQL"), "{e}");
    let Err(e) = connect("mysql://nope", 1).await else {
        panic!("took a MySQL URL");
    };
    assert!(e.to_string().contains("not a PostgreSQL URL"), "{e}");
}

/// The first start on a database from before search indexes the history already there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_from_before_search_is_indexed_on_upgrade() {
    let db = TestDatabase::new().await;
    let store: Arc<dyn Store> = Arc::new(connect(&db.url(), 2).await.unwrap());
    let bob = store::suite::history_to_search(&*store).await;
    store.close().await;
    drop(store);
    // Back to the schema before search (step 8), as an older confab left it: what every
    // later step made goes too.
    db.client()
        .await
        .batch_execute(
            "DROP TABLE message_search, search_queue, conversation_settings, blocks;
             ALTER TABLE conversations DROP COLUMN blocked;
             ALTER TABLE users DROP COLUMN share_last_seen, DROP COLUMN share_read_receipts,
               DROP COLUMN deleted_at;
             UPDATE confab_schema SET version = 8;",
        )
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(connect(&db.url(), 2).await.unwrap());
    store::suite::history_is_found(&*store, bob).await;
}
