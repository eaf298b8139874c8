//! Members: joining, leaving and watermarks.

use super::SqliteStore;
use super::conversations::{conversation, insert_member, require_admin, require_users};
use super::messages::append_system;
use super::rows::{self, MEMBER_COLS};
use crate::store::{Appended, MemberRecord, Members, Refusal, StoreError, StoreResult};
use async_trait::async_trait;
use confab_proto::limits::GROUP_MAX_MEMBERS;
use confab_proto::{ConversationId, ConversationKind, UserId};
use deadpool_sqlite::rusqlite::{OptionalExtension, params};
use serde_json::json;

#[async_trait]
impl Members for SqliteStore {
    async fn add_member(
        &self,
        id: ConversationId,
        by: UserId,
        user: UserId,
    ) -> StoreResult<Option<Appended>> {
        self.writer
            .write(move |tx| {
                require_admin(tx, id, by)?;
                require_users(tx, &[user])?;
                let active = tx.hot.members(tx.conn, id.0)?;
                if active.contains(&user.0) {
                    return Ok(None);
                }
                if active.len() >= GROUP_MAX_MEMBERS {
                    return Err(Refusal::GroupFull.into());
                }
                // The new member sees history from the system message that adds them.
                let next_seq = conversation(tx.conn, id)?.last_seq + 1;
                insert_member(tx, id, user, "member", next_seq)?;
                let appended = append_system(
                    tx,
                    id,
                    by,
                    json!({"event": "member_added", "user_id": user.to_string()}),
                )?;
                Ok(Some(appended))
            })
            .await
    }

    async fn members(&self, id: ConversationId) -> StoreResult<Vec<MemberRecord>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {MEMBER_COLS} FROM members WHERE conversation_id = ?1 ORDER BY joined_seq, user_id"
            ))?
            .query_map([id.0], rows::member)?
            .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn members_at(&self, id: ConversationId, seq: u64) -> StoreResult<Vec<MemberRecord>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {MEMBER_COLS} FROM (
                   SELECT {MEMBER_COLS} FROM members
                   WHERE conversation_id = ?1 AND joined_seq <= ?2 AND (left_seq IS NULL OR left_seq > ?2)
                   UNION ALL
                   SELECT m.user_id, m.role, p.joined_seq, p.left_seq, m.read_seq, m.delivered_seq
                   FROM member_periods p JOIN members m
                     ON m.conversation_id = p.conversation_id AND m.user_id = p.user_id
                   WHERE p.conversation_id = ?1 AND p.joined_seq <= ?2 AND p.left_seq > ?2)
                 ORDER BY joined_seq, user_id"
            ))?
            .query_map(params![id.0, seq], rows::member)?
            .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn ever_shared(&self, a: UserId, b: UserId) -> StoreResult<bool> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT 1 FROM members x JOIN members y ON x.conversation_id = y.conversation_id
                 WHERE x.user_id = ?1 AND y.user_id = ?2 LIMIT 1",
            )?
            .query_row(params![a.0, b.0], |_| Ok(()))
            .optional()?
            .is_some())
        })
        .await
    }

    async fn peers_among(&self, me: UserId, users: &[UserId]) -> StoreResult<Vec<UserId>> {
        let users = users.to_vec();
        self.read(move |c| {
            let mut shares = c.prepare_cached(
                "SELECT 1 FROM members a JOIN members b ON a.conversation_id = b.conversation_id
                 WHERE a.user_id = ?1 AND b.user_id = ?2
                   AND a.left_seq IS NULL AND b.left_seq IS NULL LIMIT 1",
            )?;
            let mut out = Vec::with_capacity(users.len());
            for user in users {
                if user == me
                    || shares
                        .query_row(params![me.0, user.0], |_| Ok(()))
                        .optional()?
                        .is_some()
                {
                    out.push(user);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn visible_ranges(
        &self,
        id: ConversationId,
        user: UserId,
    ) -> StoreResult<Vec<(u64, u64)>> {
        self.read(move |c| {
            let mut ranges: Vec<(u64, u64)> = c
                .prepare_cached(
                    "SELECT joined_seq, left_seq FROM member_periods
                     WHERE conversation_id = ?1 AND user_id = ?2 ORDER BY joined_seq",
                )?
                .query_map(params![id.0, user.0], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let current = c
                .prepare_cached(
                    "SELECT joined_seq, left_seq FROM members WHERE conversation_id = ?1 AND user_id = ?2",
                )?
                .query_row(params![id.0, user.0], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, Option<u64>>(1)?)))
                .optional()?;
            if let Some((joined, left)) = current {
                ranges.push((joined, left.unwrap_or(u64::MAX)));
            }
            Ok(ranges)
        })
        .await
    }

    async fn members_named(
        &self,
        id: ConversationId,
        usernames: &[String],
    ) -> StoreResult<Vec<UserId>> {
        let usernames = usernames.to_vec();
        self.read(move |c| {
            let mut found = Vec::new();
            let mut statement = c.prepare_cached(
                "SELECT u.id FROM users u JOIN members m ON m.user_id = u.id
                 WHERE m.conversation_id = ?1 AND m.left_seq IS NULL AND u.username = ?2",
            )?;
            for name in &usernames {
                if let Some(user) = statement
                    .query_row(params![id.0, name], |r| r.get(0))
                    .optional()?
                {
                    found.push(UserId(user));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn member(&self, id: ConversationId, user: UserId) -> StoreResult<Option<MemberRecord>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {MEMBER_COLS} FROM members WHERE conversation_id = ?1 AND user_id = ?2"
            ))?
            .query_row(params![id.0, user.0], rows::member)
            .optional()?)
        })
        .await
    }

    async fn mark_read(
        &self,
        id: ConversationId,
        user: UserId,
        seq: u64,
    ) -> StoreResult<Option<u64>> {
        self.writer
            .write(move |tx| {
                let member = tx
                    .conn
                    .prepare_cached(&format!(
                        "SELECT {MEMBER_COLS} FROM members WHERE conversation_id = ?1 AND user_id = ?2"
                    ))?
                    .query_row(params![id.0, user.0], rows::member)
                    .optional()?;
                let last = conversation(tx.conn, id)?.last_seq;
                let member = member.ok_or(StoreError::from(Refusal::NotMember))?;
                let visible = member.left_seq.map_or(last, |left| left.min(last));
                let seq = seq.min(visible);
                if seq <= member.read_seq {
                    return Ok(None);
                }
                tx.conn
                    .prepare_cached(
                        "UPDATE members SET read_seq = ?3 WHERE conversation_id = ?1 AND user_id = ?2",
                    )?
                    .execute(params![id.0, user.0, seq])?;
                super::push::refresh_on_read(tx, user, id, seq)?;
                Ok(Some(seq))
            })
            .await
    }

    async fn mark_delivered(
        &self,
        marks: &[(ConversationId, UserId, u64)],
    ) -> StoreResult<Vec<(ConversationId, UserId, u64)>> {
        let marks = marks.to_vec();
        self.writer
            .write(move |tx| {
                let mut update = tx.conn.prepare_cached(
                    "UPDATE members SET delivered_seq = ?3
                     WHERE conversation_id = ?1 AND user_id = ?2 AND delivered_seq < ?3",
                )?;
                let mut moved = Vec::new();
                for (id, user, seq) in marks {
                    if update.execute(params![id.0, user.0, seq])? > 0 {
                        moved.push((id, user, seq));
                    }
                }
                Ok(moved)
            })
            .await
    }

    async fn remove_member(
        &self,
        id: ConversationId,
        by: UserId,
        user: UserId,
    ) -> StoreResult<Appended> {
        self.writer
            .write(move |tx| {
                let record = conversation(tx.conn, id)?;
                if record.kind != ConversationKind::Group {
                    return Err(Refusal::CannotLeaveDirect.into());
                }
                if by != user {
                    require_admin(tx, id, by)?;
                }
                let role: Option<String> = tx
                    .conn
                    .prepare_cached(
                        "SELECT role FROM members WHERE conversation_id = ?1 AND user_id = ?2 AND left_seq IS NULL",
                    )?
                    .query_row(params![id.0, user.0], |r| r.get(0))
                    .optional()?;
                let Some(role) = role else {
                    return Err(if by == user {
                        Refusal::NotGroupMember.into()
                    } else {
                        StoreError::NotFound
                    });
                };
                let event = if by == user { "member_left" } else { "member_removed" };
                // The removed member still gets this message, and nothing after it.
                let appended =
                    append_system(tx, id, by, json!({"event": event, "user_id": user.to_string()}))?;
                tx.conn
                    .prepare_cached(
                        "UPDATE members SET left_seq = ?3, role = 'member' WHERE conversation_id = ?1 AND user_id = ?2",
                    )?
                    .execute(params![id.0, user.0, appended.message.seq])?;
                tx.hot.forget_members(id.0);
                if role == "admin" {
                    promote_if_no_admin(tx, id)?;
                }
                Ok(appended)
            })
            .await
    }
}

/// A group whose last admin left gets its longest-standing member as admin, so it stays
/// manageable.
fn promote_if_no_admin(tx: &super::writer::Tx<'_>, id: ConversationId) -> StoreResult<()> {
    tx.conn
        .prepare_cached(
            "UPDATE members SET role = 'admin'
             WHERE conversation_id = ?1 AND user_id = (
               SELECT user_id FROM members WHERE conversation_id = ?1 AND left_seq IS NULL
               ORDER BY joined_seq, user_id LIMIT 1)
             AND NOT EXISTS (
               SELECT 1 FROM members WHERE conversation_id = ?1 AND left_seq IS NULL AND role = 'admin')",
        )?
        .execute([id.0])?;
    Ok(())
}
