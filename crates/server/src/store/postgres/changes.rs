//! Changes to earlier messages (edit, delete for everyone or for me, reactions): one
//! transaction each, outside group commit (they are rare next to sends). It takes the
//! conversation's lock first, as every write to a log does, checks the rules, appends the
//! change to the log and applies it to the message's row, so history shows it as it stands.

use super::conversations::lock_conversation;
use super::messages::{Entry, append_entry};
use super::pg;
use super::rows::{self, MESSAGE_COLS, n};
use crate::ids::Snowflake;
use crate::store::rules::{self, Target, Then};
use crate::store::{Appended, NewMessage, Refusal, StoreResult};
use confab_proto::{Action, ConversationId, MessageKind, UserId};
use std::sync::Arc;
use tokio_postgres::Transaction;

/// Checks `new` (a change) and applies it inside `tx`.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    ids: Arc<Snowflake>,
    new: NewMessage,
) -> StoreResult<Appended> {
    let (conversation, actor) = (new.conversation_id, new.sender_id);
    lock_conversation(tx, conversation).await?;
    if super::blocks::is_blocked(tx, conversation).await? {
        return Err(Refusal::Blocked.into());
    }
    if let Some(original) = tx
        .query_opt(
            &format!(
                "SELECT {MESSAGE_COLS} FROM messages x
                 WHERE x.sender_id = $1 AND x.client_msg_id = $2"
            ),
            &[&actor.0, &new.client_msg_id],
        )
        .await
        .map_err(pg)?
    {
        let message = rows::message_at(&original, 0);
        if message.conversation_id != conversation {
            return Err(Refusal::ClientMsgIdUsedElsewhere.into());
        }
        return Ok(Appended {
            message,
            recipients: Vec::new(),
            duplicate: true,
            push_queued: false,
        });
    }
    let left: Option<Option<i64>> = tx
        .query_opt(
            "SELECT left_seq FROM members WHERE conversation_id = $1 AND user_id = $2",
            &[&conversation.0, &actor.0],
        )
        .await
        .map_err(pg)?
        .map(|r| r.get(0));
    match left {
        None => return Err(Refusal::NotMember.into()),
        Some(Some(_)) => return Err(Refusal::NoLongerMember.into()),
        Some(None) => {}
    }
    let seq = new.action.target().ok_or(Refusal::NoSuchMessage)?;
    let target = tx
        .query_opt(
            "SELECT kind, sender_id, deleted_at IS NOT NULL FROM messages
             WHERE conversation_id = $1 AND seq = $2",
            &[&conversation.0, &n(seq)],
        )
        .await
        .map_err(pg)?
        .map(|r| Target {
            kind: MessageKind::named(r.get(0)).unwrap_or_default(),
            sender: UserId(r.get(1)),
            deleted: r.get(2),
        })
        .ok_or(Refusal::NoSuchMessage)?;
    if !sees(tx, conversation, actor, seq).await? {
        return Err(Refusal::NoSuchMessage.into());
    }
    match rules::check(&new.action, actor, target)? {
        Then::Apply => {}
        Then::IfGroupAdmin => {
            if !group_admin(tx, conversation, actor).await? {
                return Err(Refusal::NotSender.into());
            }
        }
        Then::IfRoomForReaction => {
            let row = tx
                .query_one(
                    "SELECT count(*), coalesce(bool_or(emoji = $4), false) FROM reactions
                     WHERE conversation_id = $1 AND seq = $2 AND user_id = $3",
                    &[&conversation.0, &n(seq), &actor.0, &new.action.body()],
                )
                .await
                .map_err(pg)?;
            let mine = usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX);
            rules::room_for_reaction(mine, row.get(1))?;
        }
    }
    let mentions: &[UserId] = match new.action {
        Action::Edit { .. } => &new.mentions,
        _ => &[],
    };
    // Appending locks the members' users rows (the actor's among them) in the store's order.
    let mut appended = append_entry(
        tx,
        &ids,
        Entry {
            conversation_id: conversation,
            sender_id: actor,
            client_msg_id: &new.client_msg_id,
            kind: new.action.kind(),
            body: new.action.body(),
            target_seq: Some(seq),
            mentions,
        },
    )
    .await?;
    let change = n(appended.message.seq);
    let now = appended.message.created_at.0;
    let (c, s) = (&conversation.0, &n(seq));
    match &new.action {
        Action::Edit { body, .. } => {
            let counted = tx
                .execute(
                    "UPDATE users SET stored_bytes = stored_bytes + $2
                     WHERE id = $1 AND stored_bytes + $2 <= $3",
                    &[&actor.0, &(body.as_str().len() as i64), &n(new.quota_bytes)],
                )
                .await
                .map_err(pg)?;
            if counted == 0 {
                return Err(Refusal::QuotaExceeded.into());
            }
            let ids: Option<Vec<i64>> =
                (!mentions.is_empty()).then(|| mentions.iter().map(|u| u.0).collect());
            tx.execute(
                "UPDATE messages SET body = $3, mentions = $4, edited_at = $5, changed_seq = $6
                 WHERE conversation_id = $1 AND seq = $2",
                &[c, s, &body.as_str(), &ids, &now, &change],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                "DELETE FROM mentions WHERE conversation_id = $1 AND seq = $2",
                &[c, s],
            )
            .await
            .map_err(pg)?;
            insert_mentions(tx, conversation, seq, mentions).await?;
            super::search::reindex(tx, conversation, seq, Some(body.as_str())).await?;
        }
        Action::Delete { .. } => {
            super::search::reindex(tx, conversation, seq, None).await?;
            // The text goes from the store: the message's, and that of its edits.
            tx.execute(
                "UPDATE messages SET body = '', mentions = NULL, edited_at = NULL,
                   deleted_at = coalesce(deleted_at, $3), changed_seq = $4
                 WHERE conversation_id = $1 AND seq = $2",
                &[c, s, &now, &change],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                "UPDATE messages SET body = '', mentions = NULL
                 WHERE conversation_id = $1 AND target_seq = $2 AND kind = 'edit'",
                &[c, s],
            )
            .await
            .map_err(pg)?;
            for table in ["reactions", "mentions"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE conversation_id = $1 AND seq = $2"),
                    &[c, s],
                )
                .await
                .map_err(pg)?;
            }
        }
        Action::DeleteForMe { .. } => {
            tx.execute(
                "INSERT INTO hidden (user_id, conversation_id, seq) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&actor.0, c, s],
            )
            .await
            .map_err(pg)?;
        }
        Action::React { emoji, .. } => {
            tx.execute(
                "INSERT INTO reactions (conversation_id, seq, emoji, user_id, added_seq)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[c, s, &emoji.as_str(), &actor.0, &change],
            )
            .await
            .map_err(pg)?;
            changed(tx, conversation, seq, change).await?;
        }
        Action::Unreact { emoji, .. } => {
            tx.execute(
                "DELETE FROM reactions
                 WHERE conversation_id = $1 AND seq = $2 AND emoji = $3 AND user_id = $4",
                &[c, s, &emoji.as_str(), &actor.0],
            )
            .await
            .map_err(pg)?;
            changed(tx, conversation, seq, change).await?;
        }
        Action::Text { .. } => {}
    }
    if rules::updates_notifications(&new.action) {
        appended.push_queued =
            super::push::refresh(tx, &appended.recipients, conversation, seq, actor).await?;
    }
    Ok(appended)
}

/// Whether `user` may see the message at `seq`: inside their membership now or an earlier one.
async fn sees(
    tx: &Transaction<'_>,
    conversation: ConversationId,
    user: UserId,
    seq: u64,
) -> StoreResult<bool> {
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2
                              AND joined_seq <= $3 AND (left_seq IS NULL OR left_seq >= $3))
                 OR EXISTS (SELECT 1 FROM member_periods WHERE conversation_id = $1 AND user_id = $2
                              AND joined_seq <= $3 AND left_seq >= $3)",
            &[&conversation.0, &user.0, &n(seq)],
        )
        .await
        .map_err(pg)?
        .get(0))
}

async fn group_admin(
    tx: &Transaction<'_>,
    conversation: ConversationId,
    user: UserId,
) -> StoreResult<bool> {
    Ok(tx
        .query_opt(
            "SELECT c.kind = 'group' AND m.role = 'admin' FROM conversations c
             JOIN members m ON m.conversation_id = c.id AND m.user_id = $2
             WHERE c.id = $1",
            &[&conversation.0, &user.0],
        )
        .await
        .map_err(pg)?
        .is_some_and(|r| r.get(0)))
}

/// Records that the message at `seq` mentions `users`, for their unread mention counts.
pub(super) async fn insert_mentions(
    tx: &Transaction<'_>,
    conversation: ConversationId,
    seq: u64,
    users: &[UserId],
) -> StoreResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    let users: Vec<i64> = users.iter().map(|u| u.0).collect();
    tx.execute(
        "INSERT INTO mentions (user_id, conversation_id, seq)
         SELECT u, $2, $3 FROM unnest($1::bigint[]) AS u ON CONFLICT DO NOTHING",
        &[&users, &conversation.0, &n(seq)],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Notes the newest change the message at `seq` includes.
async fn changed(
    tx: &Transaction<'_>,
    conversation: ConversationId,
    seq: u64,
    change: i64,
) -> StoreResult<()> {
    tx.execute(
        "UPDATE messages SET changed_seq = $3 WHERE conversation_id = $1 AND seq = $2",
        &[&conversation.0, &n(seq), &change],
    )
    .await
    .map_err(pg)?;
    Ok(())
}
