//! What a notification says: its title and text, the unread count, the optional preview,
//! and the JSON payload every provider carries (the web client's service worker shows it).
//! It is built from the conversation as it stands when it is sent, so an edit shows its
//! new text and a message deleted for everyone (or for the user) is never in it, and by
//! the member's notification level as it stands then (`settings.rs`).

use crate::store::{PushJob, SeqWindow, Shown, Store, StoreResult};
use confab_proto::{MessageKind, NotifyLevel, Timestamp};
use serde::Serialize;

/// Characters of message text in a preview.
const PREVIEW_CHARS: usize = 200;
/// The newest unread messages looked through for one to show. When all of them are
/// deleted (or system messages), nothing is shown: a bound on the work, not a rule.
const LOOKBACK: usize = 50;

/// What the user's devices should do with the conversation's notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Show it, and alert: there is a message the user was not told about.
    New,
    /// Replace the one shown without alerting again: a message in it was edited or deleted.
    Update,
    /// Close the one shown: nothing in it is left to show.
    Close,
}

/// The payload every provider carries.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    kind: Kind,
    conversation_id: String,
    inbox_seq: u64,
    badge: u64,
    #[serde(flatten)]
    shown: Option<&'a Content>,
}

/// What a shown notification says.
#[derive(Debug, Serialize)]
pub struct Content {
    /// The newest message it shows.
    seq: u64,
    sender_id: String,
    sender_name: String,
    /// The group's title; absent for a direct conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    group_title: Option<String>,
    /// Unread messages in the conversation (unread mentions, at the `mentions` level).
    count: u64,
    /// The title providers show.
    pub title: String,
    /// The text providers show.
    pub body: String,
    /// The start of the newest message, only with `push_preview` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<String>,
    /// The user's read watermark: the notification covers what comes after, up to the job.
    #[serde(skip)]
    after_seq: u64,
}

/// A notification, ready to send.
pub struct Notification {
    job: PushJob,
    /// New, update or close.
    pub kind: Kind,
    /// What it shows; `None` for a close.
    pub content: Option<Content>,
    /// The user's unread messages in all conversations, as their list sums them.
    pub badge: u64,
}

impl Notification {
    /// The notification for `job`: new when it shows a message the user was not told about
    /// (and no device of theirs is online, `quiet`), an update of the one shown when the
    /// job refreshes it, a close when nothing is left to show but something is shown.
    /// `None` when there is nothing to send: the conversation or membership is gone, or
    /// nothing to show and nothing shown.
    pub async fn build(
        store: &dyn Store,
        job: &PushJob,
        quiet: bool,
        with_preview: bool,
    ) -> StoreResult<Option<Self>> {
        let badge = store.unread_total(job.user_id).await?;
        let close = job.shown_upto.is_some().then_some(Self {
            job: *job,
            kind: Kind::Close,
            content: None,
            badge,
        });
        // Gone from the conversation: what it showed is no longer theirs to see.
        let Some(conversation) = store.conversation(job.conversation_id).await? else {
            return Ok(close);
        };
        let Some(member) = store.member(job.conversation_id, job.user_id).await? else {
            return Ok(close);
        };
        // The member's level: at `none` nothing is shown; at `mentions` only mentions.
        let settings = store.settings(job.conversation_id, job.user_id).await?;
        let level = settings.level_at(Timestamp::now());
        if level == NotifyLevel::None {
            return Ok(close);
        }
        let mentions_only = level == NotifyLevel::Mentions;
        // Mentions from before the level was set were for the level before.
        let mentions_after = settings.notify_since;
        let unread = store
            .messages(
                job.conversation_id,
                SeqWindow {
                    after: member.read_seq,
                    before: job.seq + 1,
                    limit: LOOKBACK,
                    newest: true,
                },
                job.user_id,
            )
            .await?;
        // History leaves out what the user deleted for themselves; a tombstone has no text.
        let Some(newest) = unread.into_iter().rev().find(|m| {
            m.kind == MessageKind::Text
                && m.deleted_at.is_none()
                && m.sender_id != job.user_id
                && (!mentions_only || (m.seq > mentions_after && m.mentions.contains(&job.user_id)))
        }) else {
            return Ok(close);
        };
        let told = job.shown_upto.is_some_and(|upto| newest.seq <= upto);
        if told && !job.refreshes_shown() {
            // What came is nothing to show at this level (or gone already): the one shown
            // stays as it is, without alerting again.
            return Ok(None);
        }
        let kind = if job.refreshes_shown() && (quiet || told) {
            Kind::Update
        } else {
            Kind::New
        };
        let sender_name = store
            .user(newest.sender_id)
            .await?
            .map_or_else(|| "Someone".to_owned(), |u| u.display_name);
        let unread = store
            .unread(job.conversation_id, job.user_id, member.read_seq, job.seq)
            .await?;
        let count = match mentions_only {
            true => unread.mentions,
            false => unread.messages,
        }
        .max(1);
        let preview: String = newest.body.as_str().chars().take(PREVIEW_CHARS).collect();
        let group_title = conversation.title.clone();
        let title = group_title.clone().unwrap_or_else(|| sender_name.clone());
        let body = match with_preview {
            true if group_title.is_some() => format!("{sender_name}: {preview}"),
            true => preview.clone(),
            false if mentions_only && count == 1 => format!("{sender_name} mentioned you"),
            false if mentions_only => format!("{count} new mentions"),
            false if count == 1 => format!("New message from {sender_name}"),
            false => format!("{count} new messages"),
        };
        Ok(Some(Self {
            job: *job,
            kind,
            badge,
            content: Some(Content {
                seq: newest.seq,
                sender_id: newest.sender_id.to_string(),
                sender_name,
                group_title,
                count,
                title,
                body,
                preview: with_preview.then_some(preview),
                after_seq: member.read_seq,
            }),
        }))
    }

    /// The JSON payload.
    pub fn payload(&self) -> Vec<u8> {
        let payload = Payload {
            kind: self.kind,
            conversation_id: self.job.conversation_id.to_string(),
            inbox_seq: self.job.inbox_seq,
            badge: self.badge,
            shown: self.content.as_ref(),
        };
        // Names and titles are short and the preview is capped, so this stays far under
        // the 4 KiB every provider takes.
        serde_json::to_vec(&payload).unwrap_or_default()
    }

    /// What the user's devices show once it is delivered.
    pub fn shown(&self) -> Shown {
        match &self.content {
            Some(content) => Shown::Notification {
                after_seq: content.after_seq,
                upto_seq: self.job.seq,
            },
            None => Shown::Closed,
        }
    }
}
