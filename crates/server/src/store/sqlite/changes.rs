//! Changes to earlier messages (edit, delete for everyone or for me, reactions): the rules,
//! checked in the writer's transaction, then the change appended to the log and applied to
//! the message's row, so history shows it as it stands.

use super::messages::{Entry, append, count_bytes, insert_mentions};
use super::rows;
use super::writer::Tx;
use crate::store::rules::{self, Target, Then};
use crate::store::{Appended, NewMessage, Refusal, StoreResult};
use confab_proto::{Action, ConversationId, MessageKind, Timestamp, UserId};
use deadpool_sqlite::rusqlite::{OptionalExtension, params};

/// Checks `new` (a change; its sender is an active member) and applies it.
pub(super) fn apply(tx: &Tx<'_>, new: &NewMessage) -> StoreResult<Appended> {
    let (conversation, actor) = (new.conversation_id, new.sender_id);
    let seq = new.action.target().ok_or(Refusal::NoSuchMessage)?;
    let target = target(tx, conversation, seq)?.ok_or(Refusal::NoSuchMessage)?;
    if !sees(tx, conversation, actor, seq)? {
        return Err(Refusal::NoSuchMessage.into());
    }
    match rules::check(&new.action, actor, target)? {
        Then::Apply => {}
        Then::IfGroupAdmin => {
            if !group_admin(tx, conversation, actor)? {
                return Err(Refusal::NotSender.into());
            }
        }
        Then::IfRoomForReaction => {
            let (mine, already): (usize, bool) = tx
                .conn
                .prepare_cached(
                    "SELECT count(*), coalesce(max(emoji = ?4), 0) FROM reactions
                     WHERE conversation_id = ?1 AND seq = ?2 AND user_id = ?3",
                )?
                .query_row(
                    params![conversation.0, seq, actor.0, new.action.body()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
            rules::room_for_reaction(mine, already)?;
        }
    }
    if let Action::Edit { body, .. } = &new.action {
        count_bytes(tx, actor, body.as_str().len(), new.quota_bytes)?;
    }
    let mentions: &[UserId] = match new.action {
        Action::Edit { .. } => &new.mentions,
        _ => &[],
    };
    let mut appended = append(
        tx,
        Entry {
            conversation_id: conversation,
            sender_id: actor,
            client_msg_id: &new.client_msg_id,
            kind: new.action.kind(),
            body: new.action.body(),
            target_seq: Some(seq),
            reply_to: None,
            mentions,
        },
    )?;
    let change = appended.message.seq;
    let now = appended.message.created_at;
    match &new.action {
        Action::Edit { body, .. } => {
            edit(tx, conversation, seq, body.as_str(), mentions, change, now)?;
            super::search::reindex(tx, conversation, seq, Some(body.as_str()))?;
        }
        Action::Delete { .. } => {
            delete(tx, conversation, seq, change, now)?;
            super::search::reindex(tx, conversation, seq, None)?;
        }
        Action::DeleteForMe { .. } => {
            tx.conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO hidden (user_id, conversation_id, seq) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![actor.0, conversation.0, seq])?;
        }
        Action::React { emoji, .. } => {
            tx.conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO reactions (conversation_id, seq, emoji, user_id, added_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![conversation.0, seq, emoji.as_str(), actor.0, change])?;
            changed(tx, conversation, seq, change)?;
        }
        Action::Unreact { emoji, .. } => {
            tx.conn
                .prepare_cached(
                    "DELETE FROM reactions
                     WHERE conversation_id = ?1 AND seq = ?2 AND emoji = ?3 AND user_id = ?4",
                )?
                .execute(params![conversation.0, seq, emoji.as_str(), actor.0])?;
            changed(tx, conversation, seq, change)?;
        }
        Action::Text { .. } => {}
    }
    if rules::updates_notifications(&new.action) {
        for &(user, inbox_seq) in &appended.recipients {
            appended.push_queued |=
                super::push::refresh(tx, user, conversation, inbox_seq, seq, actor)?;
        }
    }
    Ok(appended)
}

fn target(tx: &Tx<'_>, conversation: ConversationId, seq: u64) -> StoreResult<Option<Target>> {
    Ok(tx
        .conn
        .prepare_cached(
            "SELECT kind, sender_id, deleted_at IS NOT NULL FROM messages
             WHERE conversation_id = ?1 AND seq = ?2",
        )?
        .query_row(params![conversation.0, seq], |r| {
            Ok(Target {
                kind: MessageKind::named(r.get_ref(0)?.as_str()?).unwrap_or_default(),
                sender: UserId(r.get(1)?),
                deleted: r.get(2)?,
            })
        })
        .optional()?)
}

/// Whether `user` may see the message at `seq`: inside their membership now or an earlier one.
pub(super) fn sees(
    tx: &Tx<'_>,
    conversation: ConversationId,
    user: UserId,
    seq: u64,
) -> StoreResult<bool> {
    Ok(tx
        .conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = ?1 AND user_id = ?2
                              AND joined_seq <= ?3 AND (left_seq IS NULL OR left_seq >= ?3))
                 OR EXISTS (SELECT 1 FROM member_periods WHERE conversation_id = ?1 AND user_id = ?2
                              AND joined_seq <= ?3 AND left_seq >= ?3)",
        )?
        .query_row(params![conversation.0, user.0, seq], |r| r.get(0))?)
}

fn group_admin(tx: &Tx<'_>, conversation: ConversationId, user: UserId) -> StoreResult<bool> {
    Ok(tx
        .conn
        .prepare_cached(
            "SELECT c.kind = 'group' AND m.role = 'admin' FROM conversations c
             JOIN members m ON m.conversation_id = c.id AND m.user_id = ?2
             WHERE c.id = ?1",
        )?
        .query_row(params![conversation.0, user.0], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// The message at `seq` takes `text` and the mentions in it.
fn edit(
    tx: &Tx<'_>,
    conversation: ConversationId,
    seq: u64,
    text: &str,
    mentions: &[UserId],
    change: u64,
    now: Timestamp,
) -> StoreResult<()> {
    tx.conn
        .prepare_cached(
            "UPDATE messages SET body = ?3, mentions = ?4, edited_at = ?5, changed_seq = ?6
             WHERE conversation_id = ?1 AND seq = ?2",
        )?
        .execute(params![
            conversation.0,
            seq,
            text,
            rows::mentions_column(mentions),
            now.0,
            change
        ])?;
    tx.conn
        .prepare_cached("DELETE FROM mentions WHERE conversation_id = ?1 AND seq = ?2")?
        .execute(params![conversation.0, seq])?;
    insert_mentions(tx, conversation, seq, mentions)
}

/// The message at `seq` becomes a tombstone: its text, and the text of its edits, purged
/// from the store; its reactions and mentions gone.
fn delete(
    tx: &Tx<'_>,
    conversation: ConversationId,
    seq: u64,
    change: u64,
    now: Timestamp,
) -> StoreResult<()> {
    tx.conn
        .prepare_cached(
            "UPDATE messages SET body = '', mentions = NULL, edited_at = NULL,
               deleted_at = coalesce(deleted_at, ?3), changed_seq = ?4
             WHERE conversation_id = ?1 AND seq = ?2",
        )?
        .execute(params![conversation.0, seq, now.0, change])?;
    tx.conn
        .prepare_cached(
            "UPDATE messages SET body = '', mentions = NULL
             WHERE conversation_id = ?1 AND target_seq = ?2 AND kind = 'edit'",
        )?
        .execute(params![conversation.0, seq])?;
    for table in ["reactions", "mentions"] {
        tx.conn
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE conversation_id = ?1 AND seq = ?2"
            ))?
            .execute(params![conversation.0, seq])?;
    }
    Ok(())
}

/// Notes the newest change the message at `seq` includes.
fn changed(tx: &Tx<'_>, conversation: ConversationId, seq: u64, change: u64) -> StoreResult<()> {
    tx.conn
        .prepare_cached(
            "UPDATE messages SET changed_seq = ?3 WHERE conversation_id = ?1 AND seq = ?2",
        )?
        .execute(params![conversation.0, seq, change])?;
    Ok(())
}
