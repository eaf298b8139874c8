//! Schema migrations, tracked in `PRAGMA user_version`. Append new steps; never edit one
//! that has shipped.

use crate::store::StoreResult;
use deadpool_sqlite::rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: the v1 data model (docs/architecture.md, section 3).
    "CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        display_name  TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        last_seen_at  INTEGER,
        inbox_head    INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE devices (
        id             INTEGER PRIMARY KEY,
        user_id        INTEGER NOT NULL REFERENCES users(id),
        name           TEXT NOT NULL,
        token_hash     BLOB NOT NULL UNIQUE,
        created_at     INTEGER NOT NULL,
        last_active_at INTEGER NOT NULL,
        cursor         INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX devices_by_user ON devices(user_id);
    CREATE TABLE conversations (
        id               INTEGER PRIMARY KEY,
        kind             TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
        title            TEXT,
        created_by       INTEGER NOT NULL REFERENCES users(id),
        created_at       INTEGER NOT NULL,
        last_seq         INTEGER NOT NULL DEFAULT 0,
        last_activity_at INTEGER NOT NULL
    );
    CREATE TABLE direct_pairs (
        user_lo         INTEGER NOT NULL,
        user_hi         INTEGER NOT NULL,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        PRIMARY KEY (user_lo, user_hi)
    ) WITHOUT ROWID;
    CREATE TABLE members (
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        user_id         INTEGER NOT NULL REFERENCES users(id),
        role            TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        joined_seq      INTEGER NOT NULL,
        left_seq        INTEGER,
        read_seq        INTEGER NOT NULL DEFAULT 0,
        delivered_seq   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (conversation_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX members_by_user ON members(user_id);
    -- The message id (Snowflake, time-ordered) is the rowid, so inserts append.
    CREATE TABLE messages (
        id              INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        seq             INTEGER NOT NULL,
        sender_id       INTEGER NOT NULL REFERENCES users(id),
        client_msg_id   TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('text', 'system')),
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX messages_by_seq ON messages(conversation_id, seq);
    CREATE UNIQUE INDEX messages_dedupe ON messages(sender_id, client_msg_id);
    -- Fan-out on write: one small pointer row per member and message.
    CREATE TABLE inbox (
        user_id         INTEGER NOT NULL,
        inbox_seq       INTEGER NOT NULL,
        conversation_id INTEGER NOT NULL,
        seq             INTEGER NOT NULL,
        PRIMARY KEY (user_id, inbox_seq)
    ) WITHOUT ROWID;",
    // 2: contacts are looked up from either side of a direct pair.
    "CREATE INDEX direct_pairs_by_hi ON direct_pairs(user_hi, user_lo);",
    // 3: earlier membership windows of members who left and came back.
    "CREATE TABLE member_periods (
        conversation_id INTEGER NOT NULL,
        user_id         INTEGER NOT NULL,
        joined_seq      INTEGER NOT NULL,
        left_seq        INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, user_id, joined_seq)
    ) WITHOUT ROWID;",
    // 4: a user's inbox head is the newest seq in their inbox, which the writer keeps in
    // memory; a counter column cost one UPDATE per recipient of every message.
    "ALTER TABLE users DROP COLUMN inbox_head;",
    // 5: push subscriptions (gone with their device) and the push outbox, one row per user
    // and conversation with something to push.
    "CREATE TABLE push_subscriptions (
        id         INTEGER PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(id),
        device_id  INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        kind       TEXT NOT NULL CHECK (kind IN ('webpush', 'fcm', 'apns')),
        address    TEXT NOT NULL,
        p256dh     BLOB,
        auth       BLOB,
        created_at INTEGER NOT NULL,
        UNIQUE (kind, address)
    );
    CREATE INDEX push_subscriptions_by_user ON push_subscriptions(user_id);
    CREATE INDEX push_subscriptions_by_device ON push_subscriptions(device_id);
    CREATE TABLE push_outbox (
        user_id          INTEGER NOT NULL,
        conversation_id  INTEGER NOT NULL,
        inbox_seq        INTEGER NOT NULL,
        seq              INTEGER NOT NULL,
        sender_id        INTEGER NOT NULL,
        pushed_inbox_seq INTEGER NOT NULL DEFAULT 0,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER NOT NULL,
        PRIMARY KEY (user_id, conversation_id)
    ) WITHOUT ROWID;
    CREATE INDEX push_outbox_due ON push_outbox(next_attempt_at);",
    // 6: a group's title at a given seq, for members who left, is found among its system
    // messages only.
    "CREATE INDEX messages_system ON messages(conversation_id, seq) WHERE kind = 'system';",
    // 7: bytes of message text each user has stored, against their quota.
    "ALTER TABLE users ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET stored_bytes = (
        SELECT coalesce(sum(length(CAST(body AS BLOB))), 0) FROM messages
        WHERE sender_id = users.id AND kind = 'text');",
    // 8: groups a user made lately, for the daily limit.
    "CREATE INDEX conversations_groups_by_creator ON conversations(created_by, created_at)
        WHERE kind = 'group';",
    // 9: secrets every node shares (the VAPID key), and node id leases (store/mod.rs, Nodes).
    "CREATE TABLE shared_secrets (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE node_leases (
        node_id    INTEGER PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    // 10: the node registry discovery reads, and which processes hold a user online (one
    // process here; the same tables as on PostgreSQL, where several share them).
    "CREATE TABLE nodes (
        holder     TEXT PRIMARY KEY,
        node_id    INTEGER NOT NULL,
        url        TEXT NOT NULL,
        region     TEXT NOT NULL,
        load       INTEGER NOT NULL,
        draining   INTEGER NOT NULL,
        renewed_at INTEGER NOT NULL
    );
    CREATE TABLE presence (
        user_id INTEGER NOT NULL,
        holder  TEXT NOT NULL,
        PRIMARY KEY (user_id, holder)
    );
    CREATE INDEX presence_by_holder ON presence (holder);",
    // 11: wrong passwords per username.
    "CREATE TABLE login_failures (
        username TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        until    INTEGER NOT NULL
    );
    CREATE INDEX login_failures_by_until ON login_failures (until);",
    // 12: messages that change. The log also holds changes to earlier messages (edits,
    // deletes, reactions) as entries of their own kinds, and a message's row keeps its
    // present state. `nth` counts the messages (text, system) up to each entry, so unread
    // counts are a difference of two, whatever changes lie between. SQLite cannot change a
    // CHECK in place, so the table is rebuilt (existing rows are all messages: nth = seq).
    "CREATE TABLE messages_new (
        id              INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        seq             INTEGER NOT NULL,
        sender_id       INTEGER NOT NULL REFERENCES users(id),
        client_msg_id   TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN
                          ('text', 'system', 'edit', 'delete', 'delete_for_me', 'react', 'unreact')),
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        nth             INTEGER NOT NULL,
        target_seq      INTEGER,
        reply_to        INTEGER,
        mentions        TEXT,
        edited_at       INTEGER,
        deleted_at      INTEGER,
        changed_seq     INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO messages_new (id, conversation_id, seq, sender_id, client_msg_id, kind, body, created_at, nth)
        SELECT id, conversation_id, seq, sender_id, client_msg_id, kind, body, created_at, seq FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_new RENAME TO messages;
    CREATE UNIQUE INDEX messages_by_seq ON messages(conversation_id, seq);
    CREATE UNIQUE INDEX messages_dedupe ON messages(sender_id, client_msg_id);
    CREATE INDEX messages_system ON messages(conversation_id, seq) WHERE kind = 'system';
    -- The edits of a message, whose text a delete for everyone purges too.
    CREATE INDEX messages_edits ON messages(conversation_id, target_seq) WHERE kind = 'edit';
    ALTER TABLE conversations ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversations ADD COLUMN last_message_seq INTEGER NOT NULL DEFAULT 0;
    UPDATE conversations SET message_count = last_seq, last_message_seq = last_seq;
    CREATE TABLE reactions (
        conversation_id INTEGER NOT NULL,
        seq             INTEGER NOT NULL,
        emoji           TEXT NOT NULL,
        user_id         INTEGER NOT NULL,
        added_seq       INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, seq, emoji, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE hidden (
        user_id         INTEGER NOT NULL,
        conversation_id INTEGER NOT NULL,
        seq             INTEGER NOT NULL,
        PRIMARY KEY (user_id, conversation_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE mentions (
        user_id         INTEGER NOT NULL,
        conversation_id INTEGER NOT NULL,
        seq             INTEGER NOT NULL,
        PRIMARY KEY (user_id, conversation_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX mentions_by_message ON mentions(conversation_id, seq);",
    // 13: notifications that follow changes. `push_shown` is what the last push left on a
    // user's devices for a conversation; an edit or delete of a message it covers sets the
    // outbox row's `refresh`, and the push replaces or closes that notification.
    "ALTER TABLE push_outbox ADD COLUMN refresh INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE push_shown (
        user_id         INTEGER NOT NULL,
        conversation_id INTEGER NOT NULL,
        after_seq       INTEGER NOT NULL,
        upto_seq        INTEGER NOT NULL,
        PRIMARY KEY (user_id, conversation_id)
    ) WITHOUT ROWID;",
    // 14: full-text search (sqlite/search.rs): the words of each text message as
    // store/search.rs cuts them, the conversation as a token of its own column, keyed by
    // the message id. Filled from history by `search::backfill` in the same transaction.
    "CREATE VIRTUAL TABLE message_search USING fts5(
        conversation, words, tokenize = 'unicode61 remove_diacritics 0');
    INSERT INTO message_search (message_search, rank) VALUES ('secure-delete', 1);",
    // 15: the index follows the messages rather than joining their transaction: a text
    // message's id waits here until the indexer (sqlite/search.rs) takes a batch.
    "CREATE TABLE search_queue (id INTEGER PRIMARY KEY);",
    // 16: each member's own settings for a conversation (sqlite/settings.rs); a row only
    // once they change one.
    "CREATE TABLE conversation_settings (
        user_id         INTEGER NOT NULL,
        conversation_id INTEGER NOT NULL,
        notify          TEXT NOT NULL DEFAULT 'all' CHECK (notify IN ('all', 'mentions', 'none')),
        notify_until    INTEGER,
        notify_since    INTEGER NOT NULL DEFAULT 0,
        archived_upto   INTEGER,
        pinned          INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, conversation_id)
    ) WITHOUT ROWID;",
    // 17: blocks (sqlite/blocks.rs). A direct conversation between a blocked pair (either
    // way) is marked `blocked`: the send path reads the flag on the row it updates anyway.
    "CREATE TABLE blocks (
        blocker_id INTEGER NOT NULL,
        blocked_id INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (blocker_id, blocked_id)
    ) WITHOUT ROWID;
    CREATE INDEX blocks_by_blocked ON blocks(blocked_id, blocker_id);
    ALTER TABLE conversations ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;",
    // 18: what each user shares: last seen, read receipts (sqlite/users.rs).
    "ALTER TABLE users ADD COLUMN share_last_seen INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE users ADD COLUMN share_read_receipts INTEGER NOT NULL DEFAULT 1;",
    // 19: deleted accounts (sqlite/users.rs): the row stays for the messages' sake.
    "ALTER TABLE users ADD COLUMN deleted_at INTEGER;",
    // 20: the indexer follows the messages by id (sqlite/search.rs) instead of a queue row
    // per message, which dirtied a page of its own in every commit of the send path. What
    // was queued is indexed by `search::follow` in the same transaction.
    "CREATE TABLE search_progress (after_id INTEGER NOT NULL);",
];

/// The step that adds search: history is indexed right after it.
const SEARCH_STEP: usize = 14;
/// The step after which the indexer follows the messages: the queue is indexed right after it.
const FOLLOW_STEP: usize = 20;

/// Brings the database to the newest schema, one transaction per step.
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        match i + 1 {
            SEARCH_STEP => super::search::backfill(&tx)?,
            FOLLOW_STEP => super::search::follow(&tx)?,
            _ => {}
        }
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
