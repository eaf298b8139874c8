//! Conversations (direct pairs, groups, the list) and their members.

use super::messages::append_system;
use super::rows::{self, CONVERSATION_COLS, MEMBER_COLS, n, u};
use super::{PostgresStore, pg, pg_raced};
use crate::store::{
    Appended, ConversationRecord, Conversations, ListPage, ListPosition, MemberRecord, Members,
    Membership, NewGroup, Refusal, StoreError, StoreResult,
};
use async_trait::async_trait;
use confab_proto::limits::GROUP_MAX_MEMBERS;
use confab_proto::{ConversationId, ConversationKind, Timestamp, UserId};
use serde_json::json;
use tokio_postgres::Transaction;

/// Advisory lock keys for group creation, one per creator: this bit set, then the user id.
const GROUP_CREATION_LOCKS: i64 = 1 << 60;

#[async_trait]
impl Conversations for PostgresStore {
    async fn direct(&self, a: UserId, b: UserId) -> StoreResult<(ConversationRecord, bool)> {
        self.write(move |tx| {
            Box::pin(async move {
                let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                let existing = tx
                    .query_opt(
                        "SELECT conversation_id FROM direct_pairs WHERE user_lo = $1 AND user_hi = $2",
                        &[&lo.0, &hi.0],
                    )
                    .await
                    .map_err(pg)?;
                if let Some(row) = existing {
                    return Ok((conversation(tx, ConversationId(row.get(0))).await?, false));
                }
                require_users(tx, &[a, b]).await?;
                let id = insert_conversation(tx, "direct", None, a).await?;
                tx.execute(
                    "INSERT INTO direct_pairs (user_lo, user_hi, conversation_id) VALUES ($1, $2, $3)",
                    &[&lo.0, &hi.0, &id.0],
                )
                .await
                // Made by another node meanwhile: start over and find it.
                .map_err(pg_raced)?;
                insert_member(tx, id, a, "member", 1).await?;
                insert_member(tx, id, b, "member", 1).await?;
                super::blocks::mark_direct(tx, a, b).await?;
                Ok((conversation(tx, id).await?, true))
            })
        })
        .await
    }

    async fn create_group(&self, new: NewGroup) -> StoreResult<(ConversationRecord, Appended)> {
        let ids = self.ids.clone();
        self.write(move |tx| {
            let (new, ids) = (new.clone(), ids.clone());
            Box::pin(async move {
                if new.members.len() + 1 > GROUP_MAX_MEMBERS {
                    return Err(Refusal::GroupFull.into());
                }
                // One creation per creator at a time, so the daily count cannot be raced. (An
                // advisory lock, not the users row: row locks go conversations first.)
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1)",
                    &[&(GROUP_CREATION_LOCKS | new.creator.0)],
                )
                .await
                .map_err(pg)?;
                let day_ago = Timestamp::now().millis() - 24 * 60 * 60 * 1000;
                let made: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM conversations
                         WHERE created_by = $1 AND kind = 'group' AND created_at >= $2",
                        &[&new.creator.0, &day_ago],
                    )
                    .await
                    .map_err(pg)?
                    .get(0);
                if made >= i64::from(new.groups_per_day) {
                    return Err(Refusal::GroupsPerDay.into());
                }
                let mut everyone = vec![new.creator];
                everyone.extend(new.members.iter().copied().filter(|&m| m != new.creator));
                require_users(tx, &everyone).await?;
                let id = insert_conversation(tx, "group", Some(&new.title), new.creator).await?;
                insert_member(tx, id, new.creator, "admin", 1).await?;
                for &member in &everyone[1..] {
                    insert_member(tx, id, member, "member", 1).await?;
                }
                tx.query_one(
                    "SELECT 1 FROM conversations WHERE id = $1 FOR NO KEY UPDATE",
                    &[&id.0],
                )
                .await
                .map_err(pg)?;
                let appended = append_system(
                    tx,
                    &ids,
                    id,
                    new.creator,
                    json!({"event": "group_created", "title": new.title}),
                )
                .await?;
                Ok((conversation(tx, id).await?, appended))
            })
        })
        .await
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRecord>> {
        self.with_client(|client| async move {
            Ok(client
                .query_opt(
                    &format!("SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.id = $1"),
                    &[&id.0],
                )
                .await
                .map_err(pg)?
                .map(|r| rows::conversation(&r)))
        })
        .await
    }

    async fn conversations_of(&self, user: UserId, page: ListPage) -> StoreResult<Vec<Membership>> {
        let (activity, id) = page
            .after
            .map_or((i64::MAX, i64::MAX), |p| (p.activity.0, p.id.0));
        self.with_client(|client| async move {
            // A former member's list sorts a conversation by when they left it.
            let found = client
                .query(
                    &format!(
                        "SELECT * FROM (
                       SELECT {CONVERSATION_COLS}, {MEMBER_COLS},
                         CASE WHEN m.left_seq IS NULL THEN c.last_activity_at
                              ELSE coalesce((SELECT created_at FROM messages
                                             WHERE conversation_id = c.id AND seq = m.left_seq),
                                            c.created_at)
                         END AS activity
                       FROM members m JOIN conversations c ON c.id = m.conversation_id
                       WHERE m.user_id = $1) l
                     WHERE (l.activity, l.id) < ($2, $3)
                     ORDER BY l.activity DESC, l.id DESC LIMIT $4"
                    ),
                    &[&user.0, &activity, &id, &(page.limit as i64)],
                )
                .await
                .map_err(pg)?;
            Ok(found
                .iter()
                .map(|r| {
                    let conversation = rows::conversation(r);
                    Membership {
                        position: ListPosition {
                            activity: Timestamp(r.get(13)),
                            id: conversation.id,
                        },
                        conversation,
                        member: rows::member_at(r, 7),
                    }
                })
                .collect())
        })
        .await
    }

    async fn contacts_of(&self, user: UserId) -> StoreResult<Vec<UserId>> {
        self.with_client(|client| async move {
            Ok(client
                .query(
                    "SELECT d.user_hi FROM direct_pairs d
                       JOIN conversations c ON c.id = d.conversation_id
                     WHERE d.user_lo = $1 AND NOT c.blocked
                     UNION SELECT d.user_lo FROM direct_pairs d
                       JOIN conversations c ON c.id = d.conversation_id
                     WHERE d.user_hi = $1 AND NOT c.blocked",
                    &[&user.0],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| UserId(r.get(0)))
                .collect())
        })
        .await
    }

    async fn title_at(&self, id: ConversationId, seq: u64) -> StoreResult<Option<String>> {
        self.with_client(|client| async move {
            Ok(client
                .query_opt(
                    "SELECT body::jsonb ->> 'title' FROM messages
                 WHERE conversation_id = $1 AND seq <= $2 AND kind = 'system'
                   AND body::jsonb ->> 'event' IN ('group_created', 'title_changed')
                 ORDER BY seq DESC LIMIT 1",
                    &[&id.0, &n(seq)],
                )
                .await
                .map_err(pg)?
                .and_then(|r| r.get(0)))
        })
        .await
    }

    async fn rename_group(
        &self,
        id: ConversationId,
        by: UserId,
        title: &str,
    ) -> StoreResult<Appended> {
        let (ids, title) = (self.ids.clone(), title.to_owned());
        self.write(move |tx| {
            let (ids, title) = (ids.clone(), title.clone());
            Box::pin(async move {
                require_admin(tx, id, by).await?;
                tx.execute(
                    "UPDATE conversations SET title = $2 WHERE id = $1",
                    &[&id.0, &title],
                )
                .await
                .map_err(pg)?;
                append_system(
                    tx,
                    &ids,
                    id,
                    by,
                    json!({"event": "title_changed", "title": title}),
                )
                .await
            })
        })
        .await
    }
}

#[async_trait]
impl Members for PostgresStore {
    async fn add_member(
        &self,
        id: ConversationId,
        by: UserId,
        user: UserId,
    ) -> StoreResult<Option<Appended>> {
        let ids = self.ids.clone();
        self.write(move |tx| {
            let ids = ids.clone();
            Box::pin(async move {
                require_admin(tx, id, by).await?;
                require_users(tx, &[user]).await?;
                let active: Vec<i64> = tx
                    .query(
                        "SELECT user_id FROM members WHERE conversation_id = $1 AND left_seq IS NULL",
                        &[&id.0],
                    )
                    .await
                    .map_err(pg)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if active.contains(&user.0) {
                    return Ok(None);
                }
                if active.len() >= GROUP_MAX_MEMBERS {
                    return Err(Refusal::GroupFull.into());
                }
                // The new member sees history from the system message that adds them.
                let next_seq = conversation(tx, id).await?.last_seq + 1;
                insert_member(tx, id, user, "member", next_seq).await?;
                let appended = append_system(
                    tx,
                    &ids,
                    id,
                    by,
                    json!({"event": "member_added", "user_id": user.to_string()}),
                )
                .await?;
                Ok(Some(appended))
            })
        })
        .await
    }

    async fn members(&self, id: ConversationId) -> StoreResult<Vec<MemberRecord>> {
        self.with_client(|client| async move {
            Ok(client
                .query(
                    &format!(
                        "SELECT {MEMBER_COLS} FROM members m WHERE m.conversation_id = $1
                     ORDER BY m.joined_seq, m.user_id"
                    ),
                    &[&id.0],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| rows::member_at(r, 0))
                .collect())
        })
        .await
    }

    async fn members_at(&self, id: ConversationId, seq: u64) -> StoreResult<Vec<MemberRecord>> {
        self.with_client(|client| async move {
        Ok(client
            .query(
                &format!(
                    "SELECT * FROM (
                       SELECT {MEMBER_COLS} FROM members m
                       WHERE m.conversation_id = $1 AND m.joined_seq <= $2
                         AND (m.left_seq IS NULL OR m.left_seq > $2)
                       UNION ALL
                       SELECT m.user_id, m.role, p.joined_seq, p.left_seq, m.read_seq, m.delivered_seq
                       FROM member_periods p JOIN members m
                         ON m.conversation_id = p.conversation_id AND m.user_id = p.user_id
                       WHERE p.conversation_id = $1 AND p.joined_seq <= $2 AND p.left_seq > $2) w
                     ORDER BY w.joined_seq, w.user_id"
                ),
                &[&id.0, &n(seq)],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| rows::member_at(r, 0))
            .collect())
        })
        .await
    }

    async fn ever_shared(&self, a: UserId, b: UserId) -> StoreResult<bool> {
        self.with_client(|client| async move {
            Ok(client
            .query_opt(
                "SELECT 1 FROM members x JOIN members y ON x.conversation_id = y.conversation_id
                 WHERE x.user_id = $1 AND y.user_id = $2 LIMIT 1",
                &[&a.0, &b.0],
            )
            .await
            .map_err(pg)?
            .is_some())
        })
        .await
    }

    async fn peers_among(&self, me: UserId, users: &[UserId]) -> StoreResult<Vec<UserId>> {
        let wanted: Vec<i64> = users.iter().map(|u| u.0).collect();
        self.with_client(|client| async move {
            let shared: Vec<i64> = client
                .query(
                    "SELECT DISTINCT b.user_id FROM members a JOIN members b
                   ON a.conversation_id = b.conversation_id
                 WHERE a.user_id = $1 AND b.user_id = ANY($2)
                   AND a.left_seq IS NULL AND b.left_seq IS NULL",
                    &[&me.0, &wanted],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            Ok(users
                .iter()
                .copied()
                .filter(|u| *u == me || shared.contains(&u.0))
                .collect())
        })
        .await
    }

    async fn visible_ranges(
        &self,
        id: ConversationId,
        user: UserId,
    ) -> StoreResult<Vec<(u64, u64)>> {
        self.with_client(|client| async move {
        let mut ranges: Vec<(u64, u64)> = client
            .query(
                "SELECT joined_seq, left_seq FROM member_periods
                 WHERE conversation_id = $1 AND user_id = $2 ORDER BY joined_seq",
                &[&id.0, &user.0],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| (u(r.get(0)), u(r.get(1))))
            .collect();
        if let Some(r) = client
            .query_opt(
                "SELECT joined_seq, left_seq FROM members WHERE conversation_id = $1 AND user_id = $2",
                &[&id.0, &user.0],
            )
            .await
            .map_err(pg)?
        {
            let left: Option<i64> = r.get(1);
            ranges.push((u(r.get(0)), left.map_or(u64::MAX, u)));
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
        self.with_client(|client| async move {
            Ok(client
                .query(
                    "SELECT u.id FROM unnest($2::text[]) WITH ORDINALITY AS n(name, at)
                     JOIN users u ON u.username = n.name
                     JOIN members m ON m.user_id = u.id AND m.conversation_id = $1
                       AND m.left_seq IS NULL
                     ORDER BY n.at",
                    &[&id.0, &usernames],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| UserId(r.get(0)))
                .collect())
        })
        .await
    }

    async fn member(&self, id: ConversationId, user: UserId) -> StoreResult<Option<MemberRecord>> {
        self.with_client(|client| async move {
        Ok(client
            .query_opt(
                &format!(
                    "SELECT {MEMBER_COLS} FROM members m WHERE m.conversation_id = $1 AND m.user_id = $2"
                ),
                &[&id.0, &user.0],
            )
            .await
            .map_err(pg)?
            .map(|r| rows::member_at(&r, 0)))
        })
        .await
    }

    async fn mark_read(
        &self,
        id: ConversationId,
        user: UserId,
        seq: u64,
    ) -> StoreResult<Option<u64>> {
        self.with_client(|client| async move {
        let member = client
            .query_opt(
                &format!(
                    "SELECT {MEMBER_COLS}, c.last_seq FROM members m
                     JOIN conversations c ON c.id = m.conversation_id
                     WHERE m.conversation_id = $1 AND m.user_id = $2"
                ),
                &[&id.0, &user.0],
            )
            .await
            .map_err(pg)?;
        let Some(row) = member else {
            return match client
                .query_opt("SELECT 1 FROM conversations WHERE id = $1", &[&id.0])
                .await
                .map_err(pg)?
            {
                Some(_) => Err(Refusal::NotMember.into()),
                None => Err(StoreError::NotFound),
            };
        };
        let member = rows::member_at(&row, 0);
        let last = u(row.get(6));
        let visible = member.left_seq.map_or(last, |left| left.min(last));
        let seq = seq.min(visible);
        if seq <= member.read_seq {
            return Ok(None);
        }
        // Never back, also against a concurrent mark from another device or node.
        let moved = client
            .execute(
                "UPDATE members SET read_seq = $3 WHERE conversation_id = $1 AND user_id = $2 AND read_seq < $3",
                &[&id.0, &user.0, &n(seq)],
            )
            .await
            .map_err(pg)?;
        if moved > 0 {
            // Best effort after the move: lost in a crash between the two, a notification
            // stays shown until the next push of the conversation replaces it.
            client
                .execute(
                    super::push::REFRESH_ON_READ,
                    &[&vec![id.0], &vec![user.0], &vec![n(seq)], &Timestamp::now().0],
                )
                .await
                .map_err(pg)?;
        }
        Ok((moved > 0).then_some(seq))
        })
        .await
    }

    async fn mark_delivered(
        &self,
        marks: &[(ConversationId, UserId, u64)],
    ) -> StoreResult<Vec<(ConversationId, UserId, u64)>> {
        let mut conversations = Vec::with_capacity(marks.len());
        let mut users = Vec::with_capacity(marks.len());
        let mut seqs = Vec::with_capacity(marks.len());
        for &(id, user, seq) in marks {
            conversations.push(id.0);
            users.push(user.0);
            seqs.push(n(seq));
        }
        // One statement: the watermarks it moves and the receipts they mean stay together,
        // whatever the deadline does. Never back.
        self.with_client(|client| async move {
            Ok(client
                .query(
                    "UPDATE members m SET delivered_seq = r.seq
                     FROM (SELECT conversation_id, user_id, max(seq) AS seq
                           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
                             AS r(conversation_id, user_id, seq)
                           GROUP BY conversation_id, user_id) r
                     WHERE m.conversation_id = r.conversation_id AND m.user_id = r.user_id
                       AND m.delivered_seq < r.seq
                     RETURNING m.conversation_id, m.user_id, m.delivered_seq",
                    &[&conversations, &users, &seqs],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| (ConversationId(r.get(0)), UserId(r.get(1)), u(r.get(2))))
                .collect())
        })
        .await
    }

    async fn remove_member(
        &self,
        id: ConversationId,
        by: UserId,
        user: UserId,
    ) -> StoreResult<Appended> {
        let ids = self.ids.clone();
        self.write(move |tx| {
            let ids = ids.clone();
            Box::pin(async move {
                let record = lock_conversation(tx, id).await?;
                if record.kind != ConversationKind::Group {
                    return Err(Refusal::CannotLeaveDirect.into());
                }
                if by != user {
                    require_admin(tx, id, by).await?;
                }
                let role: Option<String> = tx
                    .query_opt(
                        "SELECT role FROM members WHERE conversation_id = $1 AND user_id = $2 AND left_seq IS NULL",
                        &[&id.0, &user.0],
                    )
                    .await
                    .map_err(pg)?
                    .map(|r| r.get(0));
                let Some(role) = role else {
                    return Err(if by == user {
                        Refusal::NotGroupMember.into()
                    } else {
                        StoreError::NotFound
                    });
                };
                let event = if by == user { "member_left" } else { "member_removed" };
                // The removed member still gets this message, and nothing after it.
                let appended = append_system(
                    tx,
                    &ids,
                    id,
                    by,
                    json!({"event": event, "user_id": user.to_string()}),
                )
                .await?;
                tx.execute(
                    "UPDATE members SET left_seq = $3, role = 'member' WHERE conversation_id = $1 AND user_id = $2",
                    &[&id.0, &user.0, &n(appended.message.seq)],
                )
                .await
                .map_err(pg)?;
                if role == "admin" {
                    // A group whose last admin left gets its longest-standing member as admin.
                    tx.execute(
                        "UPDATE members SET role = 'admin'
                         WHERE conversation_id = $1 AND user_id = (
                           SELECT user_id FROM members WHERE conversation_id = $1 AND left_seq IS NULL
                           ORDER BY joined_seq, user_id LIMIT 1)
                         AND NOT EXISTS (
                           SELECT 1 FROM members WHERE conversation_id = $1 AND left_seq IS NULL AND role = 'admin')",
                        &[&id.0],
                    )
                    .await
                    .map_err(pg)?;
                }
                Ok(appended)
            })
        })
        .await
    }
}

async fn conversation(tx: &Transaction<'_>, id: ConversationId) -> StoreResult<ConversationRecord> {
    tx.query_opt(
        &format!("SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.id = $1"),
        &[&id.0],
    )
    .await
    .map_err(pg)?
    .map(|r| rows::conversation(&r))
    .ok_or(StoreError::NotFound)
}

/// Takes the conversation's lock (the first lock of every write to its log).
pub(super) async fn lock_conversation(
    tx: &Transaction<'_>,
    id: ConversationId,
) -> StoreResult<ConversationRecord> {
    tx.query_opt(
        &format!(
            "SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.id = $1 FOR NO KEY UPDATE"
        ),
        &[&id.0],
    )
    .await
    .map_err(pg)?
    .map(|r| rows::conversation(&r))
    .ok_or(StoreError::NotFound)
}

/// Locks the conversation, then fails unless `by` is an active admin of group `id`.
async fn require_admin(tx: &Transaction<'_>, id: ConversationId, by: UserId) -> StoreResult<()> {
    let record = lock_conversation(tx, id).await?;
    if record.kind != ConversationKind::Group {
        return Err(Refusal::DirectHasNoAdmin.into());
    }
    let role: Option<String> = tx
        .query_opt(
            "SELECT role FROM members WHERE conversation_id = $1 AND user_id = $2 AND left_seq IS NULL",
            &[&id.0, &by.0],
        )
        .await
        .map_err(pg)?
        .map(|r| r.get(0));
    match role.as_deref() {
        Some("admin") => Ok(()),
        Some(_) => Err(Refusal::NotAdmin.into()),
        None => Err(Refusal::NotGroupMember.into()),
    }
}

/// Fails with `NotFound` unless every user exists and is not deleted.
async fn require_users(tx: &Transaction<'_>, users: &[UserId]) -> StoreResult<()> {
    let wanted: Vec<i64> = users.iter().map(|u| u.0).collect();
    let found: i64 = tx
        .query_one(
            "SELECT count(DISTINCT id) FROM users WHERE id = ANY($1) AND deleted_at IS NULL",
            &[&wanted],
        )
        .await
        .map_err(pg)?
        .get(0);
    let mut distinct = wanted.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if found as usize != distinct.len() {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

async fn insert_conversation(
    tx: &Transaction<'_>,
    kind: &str,
    title: Option<&str>,
    by: UserId,
) -> StoreResult<ConversationId> {
    let now = Timestamp::now().0;
    Ok(ConversationId(
        tx.query_one(
            "INSERT INTO conversations (kind, title, created_by, created_at, last_activity_at)
             VALUES ($1, $2, $3, $4::bigint, $4::bigint) RETURNING id",
            &[&kind, &title, &by.0, &now],
        )
        .await
        .map_err(pg)?
        .get(0),
    ))
}

/// Inserts or re-activates a member row; a former member's earlier window is kept in
/// `member_periods`, so they still see that history.
async fn insert_member(
    tx: &Transaction<'_>,
    id: ConversationId,
    user: UserId,
    role: &str,
    joined_seq: u64,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO member_periods (conversation_id, user_id, joined_seq, left_seq)
         SELECT conversation_id, user_id, joined_seq, left_seq FROM members
         WHERE conversation_id = $1 AND user_id = $2 AND left_seq IS NOT NULL
         ON CONFLICT DO NOTHING",
        &[&id.0, &user.0],
    )
    .await
    .map_err(pg)?;
    let joined = n(joined_seq);
    tx.execute(
        "INSERT INTO members (conversation_id, user_id, role, joined_seq, read_seq, delivered_seq)
         VALUES ($1, $2, $3, $4::bigint, $4::bigint - 1, $4::bigint - 1)
         ON CONFLICT (conversation_id, user_id) DO UPDATE SET
           role = excluded.role, joined_seq = excluded.joined_seq, left_seq = NULL,
           read_seq = excluded.read_seq, delivered_seq = excluded.delivered_seq",
        &[&id.0, &user.0, &role, &joined],
    )
    .await
    .map_err(pg)?;
    Ok(())
}
