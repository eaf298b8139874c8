//! Conversations: direct pairs and groups.

use super::SqliteStore;
use super::messages::append_system;
use super::rows::{self, CONVERSATION_COLS, MEMBER_COLS};
use super::writer::Tx;
use crate::store::{
    Appended, ConversationRecord, Conversations, ListPage, ListPosition, Membership, NewGroup,
    Refusal, StoreError, StoreResult,
};
use async_trait::async_trait;
use confab_proto::limits::GROUP_MAX_MEMBERS;
use confab_proto::{ConversationId, ConversationKind, Timestamp, UserId};
use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

#[async_trait]
impl Conversations for SqliteStore {
    async fn direct(&self, a: UserId, b: UserId) -> StoreResult<(ConversationRecord, bool)> {
        self.writer
            .write(move |tx| {
                let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                let existing: Option<i64> = tx
                    .conn
                    .prepare_cached(
                        "SELECT conversation_id FROM direct_pairs WHERE user_lo = ?1 AND user_hi = ?2",
                    )?
                    .query_row(params![lo.0, hi.0], |r| r.get(0))
                    .optional()?;
                if let Some(id) = existing {
                    return Ok((conversation(tx.conn, ConversationId(id))?, false));
                }
                require_users(tx, &[a, b])?;
                let id = insert_conversation(tx, ConversationKind::Direct, None, a)?;
                tx.conn
                    .prepare_cached(
                        "INSERT INTO direct_pairs (user_lo, user_hi, conversation_id) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![lo.0, hi.0, id.0])?;
                insert_member(tx, id, a, "member", 1)?;
                insert_member(tx, id, b, "member", 1)?;
                super::blocks::mark_direct(tx.conn, a, b)?;
                Ok((conversation(tx.conn, id)?, true))
            })
            .await
    }

    async fn create_group(&self, new: NewGroup) -> StoreResult<(ConversationRecord, Appended)> {
        self.writer
            .write(move |tx| {
                if new.members.len() + 1 > GROUP_MAX_MEMBERS {
                    return Err(Refusal::GroupFull.into());
                }
                // Counted in the write itself, so requests sent together cannot all pass.
                let day_ago = Timestamp::now().millis() - 24 * 60 * 60 * 1000;
                let made: u64 = tx
                    .conn
                    .prepare_cached(
                        "SELECT count(*) FROM conversations
                         WHERE created_by = ?1 AND kind = 'group' AND created_at >= ?2",
                    )?
                    .query_row(params![new.creator.0, day_ago], |r| r.get(0))?;
                if made >= u64::from(new.groups_per_day) {
                    return Err(Refusal::GroupsPerDay.into());
                }
                let mut everyone = vec![new.creator];
                everyone.extend(new.members.iter().copied().filter(|&m| m != new.creator));
                require_users(tx, &everyone)?;
                let id = insert_conversation(
                    tx,
                    ConversationKind::Group,
                    Some(&new.title),
                    new.creator,
                )?;
                insert_member(tx, id, new.creator, "admin", 1)?;
                for &member in &everyone[1..] {
                    insert_member(tx, id, member, "member", 1)?;
                }
                let appended = append_system(
                    tx,
                    id,
                    new.creator,
                    json!({"event": "group_created", "title": new.title}),
                )?;
                Ok((conversation(tx.conn, id)?, appended))
            })
            .await
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRecord>> {
        self.read(move |c| match conversation(c, id) {
            Ok(found) => Ok(Some(found)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn conversations_of(&self, user: UserId, page: ListPage) -> StoreResult<Vec<Membership>> {
        self.read(move |c| {
            let cols = CONVERSATION_COLS
                .split(", ")
                .map(|col| format!("c.{col}"))
                .collect::<Vec<_>>()
                .join(", ");
            let member_cols = MEMBER_COLS
                .split(", ")
                .map(|col| format!("m.{col}"))
                .collect::<Vec<_>>()
                .join(", ");
            let (activity, id) = page
                .after
                .map_or((i64::MAX, i64::MAX), |p| (p.activity.0, p.id.0));
            // A former member's list sorts a conversation by when they left it, so what
            // happens there afterwards does not move it (or show in a cursor).
            Ok(c.prepare_cached(&format!(
                "SELECT * FROM (
                   SELECT {cols}, {member_cols},
                     CASE WHEN m.left_seq IS NULL THEN c.last_activity_at
                          ELSE coalesce((SELECT created_at FROM messages
                                         WHERE conversation_id = c.id AND seq = m.left_seq),
                                        c.created_at)
                     END AS activity
                   FROM members m JOIN conversations c ON c.id = m.conversation_id
                   WHERE m.user_id = ?1)
                 WHERE (activity, id) < (?2, ?3)
                 ORDER BY activity DESC, id DESC LIMIT ?4"
            ))?
            .query_map(params![user.0, activity, id, page.limit], |r| {
                let conversation = rows::conversation(r)?;
                Ok(Membership {
                    position: ListPosition {
                        activity: Timestamp(r.get(13)?),
                        id: conversation.id,
                    },
                    conversation,
                    member: rows::member_at(r, 7)?,
                })
            })?
            .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn contacts_of(&self, user: UserId) -> StoreResult<Vec<UserId>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT d.user_hi FROM direct_pairs d JOIN conversations c ON c.id = d.conversation_id
                 WHERE d.user_lo = ?1 AND NOT c.blocked
                 UNION SELECT d.user_lo FROM direct_pairs d JOIN conversations c
                   ON c.id = d.conversation_id
                 WHERE d.user_hi = ?1 AND NOT c.blocked",
            )?
            .query_map([user.0], |r| Ok(UserId(r.get(0)?)))?
            .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn title_at(&self, id: ConversationId, seq: u64) -> StoreResult<Option<String>> {
        self.read(move |c| {
            // Walks the partial index of system messages back from `seq` to the newest title.
            Ok(c.prepare_cached(
                "SELECT json_extract(body, '$.title') FROM messages
                 WHERE conversation_id = ?1 AND seq <= ?2 AND kind = 'system'
                   AND json_extract(body, '$.event') IN ('group_created', 'title_changed')
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![id.0, seq], |r| r.get(0))
            .optional()?
            .flatten())
        })
        .await
    }

    async fn rename_group(
        &self,
        id: ConversationId,
        by: UserId,
        title: &str,
    ) -> StoreResult<Appended> {
        let title = title.to_owned();
        self.writer
            .write(move |tx| {
                require_admin(tx, id, by)?;
                tx.conn
                    .prepare_cached("UPDATE conversations SET title = ?2 WHERE id = ?1")?
                    .execute(params![id.0, title])?;
                append_system(
                    tx,
                    id,
                    by,
                    json!({"event": "title_changed", "title": title}),
                )
            })
            .await
    }
}

/// Reads one conversation; `NotFound` when there is none.
pub(super) fn conversation(c: &Connection, id: ConversationId) -> StoreResult<ConversationRecord> {
    Ok(c.prepare_cached(&format!(
        "SELECT {CONVERSATION_COLS} FROM conversations WHERE id = ?1"
    ))?
    .query_row([id.0], rows::conversation)?)
}

/// Fails with `Forbidden` unless `by` is an active admin of group `id`.
pub(super) fn require_admin(tx: &Tx<'_>, id: ConversationId, by: UserId) -> StoreResult<()> {
    let record = conversation(tx.conn, id)?;
    if record.kind != ConversationKind::Group {
        return Err(Refusal::DirectHasNoAdmin.into());
    }
    let role: Option<String> = tx
        .conn
        .prepare_cached(
            "SELECT role FROM members WHERE conversation_id = ?1 AND user_id = ?2 AND left_seq IS NULL",
        )?
        .query_row(params![id.0, by.0], |r| r.get(0))
        .optional()?;
    match role.as_deref() {
        Some("admin") => Ok(()),
        Some(_) => Err(Refusal::NotAdmin.into()),
        None => Err(Refusal::NotGroupMember.into()),
    }
}

/// Fails with `NotFound` unless every user exists and is not deleted.
pub(super) fn require_users(tx: &Tx<'_>, users: &[UserId]) -> StoreResult<()> {
    let mut exists = tx
        .conn
        .prepare_cached("SELECT 1 FROM users WHERE id = ?1 AND deleted_at IS NULL")?;
    for user in users {
        if exists.query_row([user.0], |_| Ok(())).optional()?.is_none() {
            return Err(StoreError::NotFound);
        }
    }
    Ok(())
}

fn insert_conversation(
    tx: &Tx<'_>,
    kind: ConversationKind,
    title: Option<&str>,
    by: UserId,
) -> StoreResult<ConversationId> {
    let now = Timestamp::now();
    let kind = match kind {
        ConversationKind::Direct => "direct",
        ConversationKind::Group => "group",
    };
    Ok(ConversationId(
        tx.conn
            .prepare_cached(
                "INSERT INTO conversations (kind, title, created_by, created_at, last_activity_at)
                 VALUES (?1, ?2, ?3, ?4, ?4) RETURNING id",
            )?
            .query_row(params![kind, title, by.0, now.0], |r| r.get(0))?,
    ))
}

/// Inserts or re-activates a member row; they see messages from `joined_seq` on. A former
/// member's earlier window is kept in `member_periods`, so they still see that history.
pub(super) fn insert_member(
    tx: &Tx<'_>,
    id: ConversationId,
    user: UserId,
    role: &str,
    joined_seq: u64,
) -> StoreResult<()> {
    tx.conn
        .prepare_cached(
            "INSERT OR IGNORE INTO member_periods (conversation_id, user_id, joined_seq, left_seq)
             SELECT conversation_id, user_id, joined_seq, left_seq FROM members
             WHERE conversation_id = ?1 AND user_id = ?2 AND left_seq IS NOT NULL",
        )?
        .execute(params![id.0, user.0])?;
    tx.conn
        .prepare_cached(
            "INSERT INTO members (conversation_id, user_id, role, joined_seq, read_seq, delivered_seq)
             VALUES (?1, ?2, ?3, ?4, ?4 - 1, ?4 - 1)
             ON CONFLICT (conversation_id, user_id) DO UPDATE SET
               role = excluded.role, joined_seq = excluded.joined_seq, left_seq = NULL,
               read_seq = excluded.read_seq, delivered_seq = excluded.delivered_seq",
        )?
        .execute(params![id.0, user.0, role, joined_seq])?;
    tx.hot.forget_members(id.0);
    Ok(())
}
