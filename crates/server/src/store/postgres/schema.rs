//! The PostgreSQL schema, as migrations embedded in the binary. Every node applies what is
//! missing at start, inside one transaction holding a transaction-level advisory lock, so
//! nodes starting together apply each step once and the others wait and see it done. A node
//! refuses a database whose schema is newer than it knows. Append new steps; never edit one
//! that has shipped.

use crate::store::{StoreError, StoreResult};
use tokio_postgres::Client;

/// The advisory lock key migrations hold: "confab" in ASCII.
const MIGRATION_LOCK: i64 = 0x636f_6e66_6162;

const MIGRATIONS: &[&str] = &[
    // 1: the data model of the embedded store at its schema 8 (docs/architecture.md,
    // section 3), in PostgreSQL's types.
    "CREATE TABLE users (
        id            BIGSERIAL PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        display_name  TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at    BIGINT NOT NULL,
        last_seen_at  BIGINT,
        stored_bytes  BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE devices (
        id             BIGSERIAL PRIMARY KEY,
        user_id        BIGINT NOT NULL REFERENCES users(id),
        name           TEXT NOT NULL,
        token_hash     BYTEA NOT NULL UNIQUE,
        created_at     BIGINT NOT NULL,
        last_active_at BIGINT NOT NULL,
        cursor         BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX devices_by_user ON devices(user_id);
    CREATE TABLE conversations (
        id               BIGSERIAL PRIMARY KEY,
        kind             TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
        title            TEXT,
        created_by       BIGINT NOT NULL REFERENCES users(id),
        created_at       BIGINT NOT NULL,
        last_seq         BIGINT NOT NULL DEFAULT 0,
        last_activity_at BIGINT NOT NULL
    );
    CREATE INDEX conversations_groups_by_creator ON conversations(created_by, created_at)
        WHERE kind = 'group';
    CREATE TABLE direct_pairs (
        user_lo         BIGINT NOT NULL,
        user_hi         BIGINT NOT NULL,
        conversation_id BIGINT NOT NULL REFERENCES conversations(id),
        PRIMARY KEY (user_lo, user_hi)
    );
    CREATE INDEX direct_pairs_by_hi ON direct_pairs(user_hi, user_lo);
    CREATE TABLE members (
        conversation_id BIGINT NOT NULL REFERENCES conversations(id),
        user_id         BIGINT NOT NULL REFERENCES users(id),
        role            TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        joined_seq      BIGINT NOT NULL,
        left_seq        BIGINT,
        read_seq        BIGINT NOT NULL DEFAULT 0,
        delivered_seq   BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (conversation_id, user_id)
    );
    CREATE INDEX members_by_user ON members(user_id);
    CREATE TABLE member_periods (
        conversation_id BIGINT NOT NULL,
        user_id         BIGINT NOT NULL,
        joined_seq      BIGINT NOT NULL,
        left_seq        BIGINT NOT NULL,
        PRIMARY KEY (conversation_id, user_id, joined_seq)
    );
    -- The message id is the Snowflake (time-ordered), assigned by the node.
    CREATE TABLE messages (
        id              BIGINT PRIMARY KEY,
        conversation_id BIGINT NOT NULL REFERENCES conversations(id),
        seq             BIGINT NOT NULL,
        sender_id       BIGINT NOT NULL REFERENCES users(id),
        client_msg_id   TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('text', 'system')),
        body            TEXT NOT NULL,
        created_at      BIGINT NOT NULL,
        UNIQUE (conversation_id, seq),
        UNIQUE (sender_id, client_msg_id)
    );
    CREATE INDEX messages_system ON messages(conversation_id, seq) WHERE kind = 'system';
    -- Fan-out on write: one small pointer row per member and message. The head of a
    -- user's inbox is locked through their users row while it grows.
    CREATE TABLE inbox (
        user_id         BIGINT NOT NULL,
        inbox_seq       BIGINT NOT NULL,
        conversation_id BIGINT NOT NULL,
        seq             BIGINT NOT NULL,
        PRIMARY KEY (user_id, inbox_seq)
    );
    CREATE TABLE push_subscriptions (
        id         BIGSERIAL PRIMARY KEY,
        user_id    BIGINT NOT NULL REFERENCES users(id),
        device_id  BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        kind       TEXT NOT NULL CHECK (kind IN ('webpush', 'fcm', 'apns')),
        address    TEXT NOT NULL,
        p256dh     BYTEA,
        auth       BYTEA,
        created_at BIGINT NOT NULL,
        UNIQUE (kind, address)
    );
    CREATE INDEX push_subscriptions_by_user ON push_subscriptions(user_id);
    CREATE INDEX push_subscriptions_by_device ON push_subscriptions(device_id);
    CREATE TABLE push_outbox (
        user_id          BIGINT NOT NULL,
        conversation_id  BIGINT NOT NULL,
        inbox_seq        BIGINT NOT NULL,
        seq              BIGINT NOT NULL,
        sender_id        BIGINT NOT NULL,
        pushed_inbox_seq BIGINT NOT NULL DEFAULT 0,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  BIGINT NOT NULL,
        PRIMARY KEY (user_id, conversation_id)
    );
    CREATE INDEX push_outbox_due ON push_outbox(next_attempt_at);",
    // 2: what group commit (commit.rs) showed costs the most per send.
    // - A foreign-key check per message row repeated what the batch already holds (the locks
    //   of its conversations and senders); neither row is ever deleted.
    // - client_msg_id is compared byte for byte: the database's collation only slowed its
    //   unique index down.
    // - Each user's inbox head is a column of the users row the batch locks anyway, read by
    //   that lock and written with the stored bytes: no max() over the inbox per recipient.
    // - Room on each page of the rows every batch updates (conversations, users, members),
    //   so those updates stay on their page and leave the indexes alone (HOT updates).
    "ALTER TABLE users ADD COLUMN inbox_head BIGINT NOT NULL DEFAULT 0;
     UPDATE users u SET inbox_head = h.head
       FROM (SELECT user_id, max(inbox_seq) AS head FROM inbox GROUP BY user_id) h
       WHERE u.id = h.user_id;
     ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey,
                          DROP CONSTRAINT messages_sender_id_fkey,
                          ALTER COLUMN client_msg_id TYPE TEXT COLLATE \"C\";
     ALTER TABLE conversations SET (fillfactor = 70);
     ALTER TABLE users SET (fillfactor = 70);
     ALTER TABLE members SET (fillfactor = 70);",
    // 3: secrets every node shares (the VAPID key), and node id leases (store/mod.rs, Nodes).
    "CREATE TABLE shared_secrets (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE node_leases (
        node_id    INTEGER PRIMARY KEY CHECK (node_id BETWEEN 0 AND 1023),
        holder     TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );",
    // 4: messages are found by (conversation_id, seq), never by id, so that unique index
    // is the key and the index on id (one more insert per message) goes. Ids stay unique
    // by construction: each node's are distinct (Snowflake, leased node ids).
    "ALTER TABLE messages DROP CONSTRAINT messages_pkey;
     ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_seq_key,
       ADD PRIMARY KEY (conversation_id, seq);",
    // 5: the node registry discovery reads (a row per running process, renewed every few
    // seconds), and which processes hold a user online (presence across nodes).
    "CREATE TABLE nodes (
        holder     TEXT PRIMARY KEY,
        node_id    INTEGER NOT NULL,
        url        TEXT NOT NULL,
        region     TEXT NOT NULL,
        load       INTEGER NOT NULL,
        draining   BOOLEAN NOT NULL,
        renewed_at BIGINT NOT NULL
    );
    CREATE TABLE presence (
        user_id BIGINT NOT NULL,
        holder  TEXT NOT NULL,
        PRIMARY KEY (user_id, holder)
    );
    CREATE INDEX presence_by_holder ON presence (holder);",
    // 6: wrong passwords per username, counted for the whole cluster.
    "CREATE TABLE login_failures (
        username TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        until    BIGINT NOT NULL
    );
    CREATE INDEX login_failures_by_until ON login_failures (until);",
    // 7: messages that change. The log also holds changes to earlier messages (edits,
    // deletes, reactions) as entries of their own kinds, and a message's row keeps its
    // present state. `nth` counts the messages (text, system) up to each entry, so unread
    // counts are a difference of two whatever changes lie between; NULL (no rewrite of the
    // table) in entries from before, all messages, where it equals `seq`.
    "ALTER TABLE messages DROP CONSTRAINT messages_kind_check,
       ADD CONSTRAINT messages_kind_check CHECK (kind IN
         ('text', 'system', 'edit', 'delete', 'delete_for_me', 'react', 'unreact')) NOT VALID,
       ADD COLUMN nth BIGINT,
       ADD COLUMN target_seq BIGINT,
       ADD COLUMN reply_to BIGINT,
       ADD COLUMN mentions BIGINT[],
       ADD COLUMN edited_at BIGINT,
       ADD COLUMN deleted_at BIGINT,
       ADD COLUMN changed_seq BIGINT NOT NULL DEFAULT 0;
     -- The edits of a message, whose text a delete for everyone purges too.
     CREATE INDEX messages_edits ON messages (conversation_id, target_seq) WHERE kind = 'edit';
     ALTER TABLE conversations ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0,
       ADD COLUMN last_message_seq BIGINT NOT NULL DEFAULT 0;
     UPDATE conversations SET message_count = last_seq, last_message_seq = last_seq;
     CREATE TABLE reactions (
         conversation_id BIGINT NOT NULL,
         seq             BIGINT NOT NULL,
         emoji           TEXT NOT NULL,
         user_id         BIGINT NOT NULL,
         added_seq       BIGINT NOT NULL,
         PRIMARY KEY (conversation_id, seq, emoji, user_id)
     );
     CREATE TABLE hidden (
         user_id         BIGINT NOT NULL,
         conversation_id BIGINT NOT NULL,
         seq             BIGINT NOT NULL,
         PRIMARY KEY (user_id, conversation_id, seq)
     );
     CREATE TABLE mentions (
         user_id         BIGINT NOT NULL,
         conversation_id BIGINT NOT NULL,
         seq             BIGINT NOT NULL,
         PRIMARY KEY (user_id, conversation_id, seq)
     );
     CREATE INDEX mentions_by_message ON mentions (conversation_id, seq);",
    // 8: notifications that follow changes. `push_shown` is what the last push left on a
    // user's devices for a conversation; an edit or delete of a message it covers sets the
    // outbox row's `refresh`, and the push replaces or closes that notification.
    "ALTER TABLE push_outbox ADD COLUMN refresh BOOLEAN NOT NULL DEFAULT false;
     CREATE TABLE push_shown (
         user_id         BIGINT NOT NULL,
         conversation_id BIGINT NOT NULL,
         after_seq       BIGINT NOT NULL,
         upto_seq        BIGINT NOT NULL,
         PRIMARY KEY (user_id, conversation_id)
     );",
    // 9: full-text search (postgres/search.rs): a tsvector of each text message, made from
    // the words store/search.rs cuts, with its conversation as the lexeme '#<id>'. History
    // is indexed by `search::backfill` in the migration's transaction.
    "CREATE TABLE message_search (
         conversation_id BIGINT NOT NULL,
         seq             BIGINT NOT NULL,
         id              BIGINT NOT NULL,
         doc             TSVECTOR NOT NULL,
         PRIMARY KEY (conversation_id, seq)
     );
     CREATE INDEX message_search_doc ON message_search USING GIN (doc);",
    // 10: the index follows the messages rather than joining their transaction: a text
    // message waits here until an indexer (postgres/search.rs) takes a batch. Rows come and
    // go all the time: vacuumed by dead rows, not by a fraction of a small table.
    "CREATE TABLE search_queue (
         id              BIGINT PRIMARY KEY,
         conversation_id BIGINT NOT NULL,
         seq             BIGINT NOT NULL
     ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);",
    // 11: each member's own settings for a conversation (postgres/settings.rs); a row only
    // once they change one.
    "CREATE TABLE conversation_settings (
         user_id         BIGINT NOT NULL,
         conversation_id BIGINT NOT NULL,
         notify          TEXT NOT NULL DEFAULT 'all' CHECK (notify IN ('all', 'mentions', 'none')),
         notify_until    BIGINT,
         notify_since    BIGINT NOT NULL DEFAULT 0,
         archived_upto   BIGINT,
         pinned          BOOLEAN NOT NULL DEFAULT FALSE,
         PRIMARY KEY (user_id, conversation_id)
     );",
    // 12: blocks (postgres/blocks.rs). A direct conversation between a blocked pair (either
    // way) is marked `blocked`: group commit reads the flag on the row it locks anyway.
    "CREATE TABLE blocks (
         blocker_id BIGINT NOT NULL,
         blocked_id BIGINT NOT NULL,
         created_at BIGINT NOT NULL,
         PRIMARY KEY (blocker_id, blocked_id)
     );
     CREATE INDEX blocks_by_blocked ON blocks(blocked_id, blocker_id);
     ALTER TABLE conversations ADD COLUMN blocked BOOLEAN NOT NULL DEFAULT FALSE;",
    // 13: what each user shares: last seen, read receipts (postgres/accounts.rs).
    "ALTER TABLE users ADD COLUMN share_last_seen BOOLEAN NOT NULL DEFAULT TRUE,
       ADD COLUMN share_read_receipts BOOLEAN NOT NULL DEFAULT TRUE;",
    // 14: deleted accounts (postgres/accounts.rs): the row stays for the messages' sake.
    "ALTER TABLE users ADD COLUMN deleted_at BIGINT;",
];

/// The step that adds search: history is indexed right after it.
const SEARCH_STEP: usize = 9;

/// The schema version this build knows.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`VERSION`], or refuses one that is newer.
pub async fn migrate(client: &mut Client) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(backend)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS confab_schema (
            one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
            version BIGINT NOT NULL
        );
        INSERT INTO confab_schema (version) VALUES (0) ON CONFLICT DO NOTHING;",
    )
    .await
    .map_err(backend)?;
    let current: i64 = tx
        .query_one("SELECT version FROM confab_schema", &[])
        .await
        .map_err(backend)?
        .get(0);
    if current > VERSION {
        return Err(StoreError::Backend(format!(
            "the database's schema is version {current}, newer than this confab knows \
             ({VERSION}): a newer confab migrated it; run that version (or newer) here too"
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(step)
            .await
            .map_err(|e| StoreError::Backend(format!("schema step {} failed: {e}", i + 1)))?;
        if i + 1 == SEARCH_STEP {
            super::search::backfill(&tx).await?;
        }
    }
    tx.execute("UPDATE confab_schema SET version = $1", &[&VERSION])
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

/// The schema version of the database `client` is connected to, 0 for an empty one.
pub async fn version(client: &Client) -> StoreResult<i64> {
    let exists: bool = client
        .query_one("SELECT to_regclass('confab_schema') IS NOT NULL", &[])
        .await
        .map_err(backend)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one("SELECT version FROM confab_schema", &[])
        .await
        .map_err(backend)?
        .get(0))
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}
