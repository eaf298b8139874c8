//! The store conformance suite on the embedded SQLite store, plus what only it has:
//! durability across reopening.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store {
    pub mod suite;
}

use confab_server::ids::Snowflake;
use confab_server::metrics::Metrics;
use confab_server::store::Store;
use confab_server::store::sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;

async fn open(dir: &Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(
            dir,
            2,
            256,
            Arc::new(Snowflake::new(1)),
            Metrics::new().store.clone(),
        )
        .await
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_store_suite() {
    let dirs = std::sync::Mutex::new(Vec::new());
    store::suite::run_all(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        dirs.lock().unwrap().push(dir);
        async move { open(&path).await }
    })
    .await;
}

/// Users ada and bob, and their direct conversation.
async fn ada_and_bob(
    store: &dyn Store,
) -> (
    [confab_proto::UserId; 2],
    confab_server::store::ConversationRecord,
) {
    let mut ids = [confab_proto::UserId(0); 2];
    for (id, name) in ids.iter_mut().zip(["ada", "bob"]) {
        let new = confab_server::store::NewUser {
            username: name.into(),
            display_name: name.into(),
            password_hash: "h".into(),
        };
        *id = store.create_user(new).await.unwrap().id;
    }
    let (conv, _) = store.direct(ids[0], ids[1]).await.unwrap();
    (ids, conv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_writes_survive_reopening() {
    use confab_proto::{Action, Body};
    use confab_server::store::NewMessage;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let (ids, conv) = ada_and_bob(&*store).await;
    let msg = NewMessage {
        conversation_id: conv.id,
        sender_id: ids[0],
        client_msg_id: "c1".into(),
        action: Action::Text {
            body: Body::new("kept".into()).unwrap(),
            reply_to: None,
        },
        mentions: Vec::new(),
        quota_bytes: u64::MAX,
    };
    store.append(msg).await.unwrap();
    store.close().await;
    drop(store);
    let store = open(dir.path()).await;
    let entries = store.inbox_after(ids[1], 0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].message.body, "kept");
}

/// Deleted for everyone means gone from the disk: not in the database file, not in the
/// WAL, not in free space, for a short text, a long one (overflow pages) and their edits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_deleted_for_everyone_leaves_the_database_files() {
    use confab_proto::{Action, Body, MessageKind};
    use confab_server::store::NewMessage;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let (ids, conv) = ada_and_bob(&*store).await;
    let write = |id: &str, action: Action| NewMessage {
        conversation_id: conv.id,
        sender_id: ids[0],
        client_msg_id: id.into(),
        action,
        mentions: Vec::new(),
        quota_bytes: u64::MAX,
    };
    let text = |body: String| Action::Text {
        body: Body::new(body).unwrap(),
        reply_to: None,
    };
    // `zqxjvgone` is also one word of the search index, which must lose it too.
    let short = "a-secret-marker-short zqxjvgone";
    let long = "a-secret-marker-long ".repeat(2000); // 42 KB: overflow pages
    store.append(write("m1", text(short.into()))).await.unwrap();
    store.append(write("m2", text(long.clone()))).await.unwrap();
    store
        .append(write("kept", text("kept text".into())))
        .await
        .unwrap();
    store.index_next(100).await.unwrap();
    let edit = Action::parse(MessageKind::Edit, format!("{short} edited"), Some(1), None).unwrap();
    store.append(write("e1", edit)).await.unwrap();
    for (id, seq) in [("d1", 1), ("d2", 2)] {
        let delete = Action::parse(MessageKind::Delete, String::new(), Some(seq), None).unwrap();
        store.append(write(id, delete)).await.unwrap();
    }
    store.close().await;
    drop(store);
    // Reader connections close on threads of their own after `close`; the last one
    // checkpoints the WAL into the database file and removes it. Scan after that.
    let wal = dir.path().join("confab.db-wal");
    for _ in 0..500 {
        if !wal.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        match std::fs::read(&path) {
            Ok(bytes) => seen.extend(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // the WAL, just removed
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        }
    }
    let holds = |needle: &[u8]| seen.windows(needle.len()).any(|w| w == needle);
    assert!(holds(b"kept text"), "the scan reads the files");
    assert!(!holds(b"a-secret-marker"), "deleted text is still on disk");
    assert!(
        !holds(b"zqxjvgone"),
        "a deleted word is still in the search index"
    );
}

/// Committed pages reach the database file while the writer only commits: the checkpointer
/// copies the WAL beside it (the writer itself would only past 64 MiB, or after 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_copied_into_the_database_beside_the_writer() {
    use confab_proto::{Action, Body};
    use confab_server::store::NewMessage;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let (ids, conv) = ada_and_bob(&*store).await;
    let db = dir.path().join("confab.db");
    let size = || std::fs::metadata(&db).unwrap().len();
    let before = size();
    for i in 0..300 {
        let message = NewMessage {
            conversation_id: conv.id,
            sender_id: ids[0],
            client_msg_id: format!("m{i}"),
            action: Action::Text {
                body: Body::new(format!("{i} {}", "x".repeat(1_000))).unwrap(),
                reply_to: None,
            },
            mentions: Vec::new(),
            quota_bytes: u64::MAX,
        };
        store.append(message).await.unwrap();
    }
    for _ in 0..50 {
        if size() > before + 300_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        size() > before + 300_000,
        "300 KB committed, but the database file grew by {} bytes",
        size() - before
    );
}

/// The first start on a store from before search indexes the history already there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_from_before_search_is_indexed_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let bob = store::suite::history_to_search(&*store).await;
    store.close().await;
    drop(store);
    // Back to the schema before search (step 13), as an older confab left it: what every
    // later step made goes too.
    let db = deadpool_sqlite::rusqlite::Connection::open(dir.path().join("confab.db")).unwrap();
    db.execute_batch(
        "DROP TABLE message_search; DROP TABLE search_progress; DROP TABLE conversation_settings;
         DROP TABLE blocks; ALTER TABLE conversations DROP COLUMN blocked;
         ALTER TABLE users DROP COLUMN share_last_seen;
         ALTER TABLE users DROP COLUMN share_read_receipts;
         ALTER TABLE users DROP COLUMN deleted_at;
         PRAGMA user_version = 13;",
    )
    .unwrap();
    drop(db);
    store::suite::history_is_found(&*open(dir.path()).await, bob).await;
}

/// The first start on a store whose indexer still had a queue indexes what was queued, and
/// only that: the indexer then carries on after the newest message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_for_the_index_are_indexed_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let bob = store::suite::history_to_search(&*store).await;
    // The first message was indexed before the upgrade; the other two still queued.
    assert_eq!(store.index_next(1).await.unwrap().messages, 1);
    store.close().await;
    drop(store);
    let db = deadpool_sqlite::rusqlite::Connection::open(dir.path().join("confab.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE search_queue (id INTEGER PRIMARY KEY);
         INSERT INTO search_queue SELECT id FROM messages WHERE kind = 'text'
           AND id > (SELECT after_id FROM search_progress);
         DROP TABLE search_progress;
         PRAGMA user_version = 19;",
    )
    .unwrap();
    drop(db);
    let store = open(dir.path()).await;
    store::suite::history_is_found(&*store, bob).await;
    assert_eq!(
        store.index_next(100).await.unwrap(),
        confab_server::store::Indexed::default(),
        "nothing left to index"
    );
    store::suite::history_is_found(&*store, bob).await;
}
