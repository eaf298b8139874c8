//! Moving from the embedded store to PostgreSQL (`confab copy-store`): every row of a
//! stopped node's SQLite database copied into an empty PostgreSQL database, in one
//! PostgreSQL transaction (all or nothing) from one SQLite snapshot, with `COPY`. Ids,
//! password hashes, device tokens, cursors, push subscriptions and the VAPID key come
//! along, so clients carry on as if nothing had moved.

use super::postgres::schema;
use super::sqlite::SqliteStore;
use deadpool_sqlite::rusqlite::types::ValueRef;
use futures_util::SinkExt;
use std::fmt::Write as _;
use std::path::Path;
use tokio::sync::mpsc;
use tokio_postgres::NoTls;

/// The tables, parents before children, each with what to read of it (`*`: every
/// column as it is). Node leases stay behind: they belong to the nodes running on each
/// store.
const TABLES: &[(&str, &str)] = &[
    ("users", "*"),
    ("devices", "*"),
    ("conversations", "*"),
    ("direct_pairs", "*"),
    ("members", "*"),
    ("member_periods", "*"),
    // Mentions are ids separated by commas here, an array there.
    (
        "messages",
        "id, conversation_id, seq, sender_id, client_msg_id, kind, body, created_at, nth, \
         target_seq, reply_to, '{' || mentions || '}' AS mentions, edited_at, deleted_at, \
         changed_seq",
    ),
    ("inbox", "*"),
    ("reactions", "*"),
    ("hidden", "*"),
    ("mentions", "*"),
    ("push_subscriptions", "*"),
    ("push_outbox", "*"),
    ("push_shown", "*"),
    ("conversation_settings", "*"),
    ("blocks", "*"),
    ("shared_secrets", "*"),
];
/// Tables whose ids come from a sequence on PostgreSQL, moved past the copied ids.
const SEQUENCED: &[&str] = &["users", "devices", "conversations", "push_subscriptions"];
/// Bytes of `COPY` text handed over at a time; a few are in flight, bounding memory.
const CHUNK: usize = 1 << 20;

/// Rows copied, per table.
pub type Copied = Vec<(&'static str, u64)>;

/// Copies the embedded store under `data_dir` into the PostgreSQL database at `url`, which
/// must be empty (its schema is made or brought up to date first). Refused while a node runs
/// on `data_dir` (it holds the directory's lock).
pub async fn sqlite_to_postgres(data_dir: &Path, url: &str) -> Result<Copied, String> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    let connection = tokio::spawn(connection);
    schema::migrate(&mut client)
        .await
        .map_err(|e| format!("cannot prepare the PostgreSQL schema: {e}"))?;
    let tx = client.transaction().await.map_err(pg)?;
    let used: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM conversations)",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if used {
        return Err(
            "the PostgreSQL database already holds users or conversations; \
                    copy into an empty database (createdb a new one)"
                .into(),
        );
    }

    // A node that ran on the empty database made secrets of its own; the copied ones are
    // those every subscribed browser knows.
    tx.execute("DELETE FROM shared_secrets", &[])
        .await
        .map_err(pg)?;
    let (chunks, mut received) = mpsc::channel::<Chunk>(4);
    let dir = data_dir.to_owned();
    let reader = tokio::task::spawn_blocking(move || read_all(&dir, &chunks));
    let mut copied = Vec::new();
    for &(table, _) in TABLES {
        let Some(Chunk::Table { columns }) = received.recv().await else {
            break; // the reader failed; its error is below
        };
        let sink = tx
            .copy_in(&format!("COPY {table} ({columns}) FROM STDIN"))
            .await
            .map_err(pg)?;
        futures_util::pin_mut!(sink);
        let mut rows = 0;
        while let Some(chunk) = received.recv().await {
            match chunk {
                Chunk::Rows(text, n) => {
                    rows += n;
                    sink.send(std::io::Cursor::new(text)).await.map_err(pg)?;
                }
                Chunk::End => break,
                Chunk::Table { .. } => return Err("the reader skipped a table's end".into()),
            }
        }
        sink.finish().await.map_err(pg)?;
        copied.push((table, rows));
    }
    reader
        .await
        .map_err(|e| format!("the reader of the embedded store failed: {e}"))??;
    // The embedded store finds each inbox head in the inbox; PostgreSQL keeps it on the
    // users row.
    tx.execute(
        "UPDATE users u SET inbox_head = h.head
         FROM (SELECT user_id, max(inbox_seq) AS head FROM inbox GROUP BY user_id) h
         WHERE u.id = h.user_id",
        &[],
    )
    .await
    .map_err(pg)?;
    // The search index is made from the copied messages (SQLite's is an FTS5 table).
    super::postgres::search::backfill(&tx)
        .await
        .map_err(|e| format!("cannot index the copied messages for search: {e}"))?;
    for table in SEQUENCED {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                               coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            ),
            &[],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    drop(client);
    let _ = connection.await;
    Ok(copied)
}

enum Chunk {
    /// The next table begins; its columns, as `COPY` lists them.
    Table { columns: String },
    /// `COPY` text of some rows, and how many.
    Rows(Vec<u8>, u64),
    /// The table is done.
    End,
}

/// Reads every table of one snapshot of the embedded store, as `COPY` text.
fn read_all(dir: &Path, out: &mpsc::Sender<Chunk>) -> Result<(), String> {
    let (conn, _lock) = SqliteStore::open_existing(dir).map_err(|e| e.to_string())?;
    // A VAPID key still in the file an older version kept it in (a node adopts it into
    // the store at start; this copy does the same).
    if let Ok(pem) = std::fs::read_to_string(dir.join("vapid.pem")) {
        conn.execute(
            "INSERT INTO shared_secrets (name, value) VALUES ('vapid_private_key', ?1)
             ON CONFLICT (name) DO NOTHING",
            [pem],
        )
        .map_err(|e| e.to_string())?;
    }
    // One read transaction: every table from the same moment.
    conn.execute_batch("BEGIN").map_err(|e| e.to_string())?;
    for &(table, read) in TABLES {
        let mut statement = conn
            .prepare(&format!("SELECT {read} FROM {table}"))
            .map_err(|e| e.to_string())?;
        let columns = statement.column_names().join(", ");
        let width = statement.column_count();
        send(out, Chunk::Table { columns })?;
        let mut rows = statement.query([]).map_err(|e| e.to_string())?;
        let (mut text, mut n) = (Vec::with_capacity(CHUNK), 0);
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            for i in 0..width {
                if i > 0 {
                    text.push(b'\t');
                }
                let value = row.get_ref(i).map_err(|e| e.to_string())?;
                copy_text(value, &mut text);
            }
            text.push(b'\n');
            n += 1;
            if text.len() >= CHUNK {
                send(out, Chunk::Rows(std::mem::take(&mut text), n))?;
                n = 0;
            }
        }
        if n > 0 {
            send(out, Chunk::Rows(text, n))?;
        }
        send(out, Chunk::End)?;
    }
    conn.execute_batch("COMMIT").map_err(|e| e.to_string())
}

fn send(out: &mpsc::Sender<Chunk>, chunk: Chunk) -> Result<(), String> {
    out.blocking_send(chunk)
        .map_err(|_| "the copy into PostgreSQL stopped".to_owned())
}

/// One value in `COPY`'s text format: `\N` for NULL, backslash escapes, bytea as hex.
fn copy_text(value: ValueRef<'_>, out: &mut Vec<u8>) {
    match value {
        ValueRef::Null => out.extend_from_slice(b"\\N"),
        ValueRef::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        ValueRef::Real(f) => out.extend_from_slice(f.to_string().as_bytes()),
        ValueRef::Text(t) => {
            for &b in t {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    _ => out.push(b),
                }
            }
        }
        ValueRef::Blob(b) => {
            let mut hex = String::with_capacity(3 + 2 * b.len());
            hex.push_str("\\\\x");
            for byte in b {
                let _ = write!(hex, "{byte:02x}");
            }
            out.extend_from_slice(hex.as_bytes());
        }
    }
}

fn pg(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}: {}", db.code().code(), db.message()),
        None => format!("PostgreSQL: {e}"),
    }
}
