//! What a notification says: its title and text, the unread count, the optional preview,
//! and the JSON payload every provider carries (the web client's service worker shows it).

use crate::store::{PushJob, SeqWindow, Store, StoreResult};
use confab_proto::MessageKind;
use serde::Serialize;

/// Characters of message text in a preview.
const PREVIEW_CHARS: usize = 200;

/// The payload every provider carries.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    conversation_id: String,
    seq: u64,
    inbox_seq: u64,
    sender_id: String,
    sender_name: &'a str,
    /// The group's title; absent for a direct conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    group_title: Option<&'a str>,
    /// Unread messages in the conversation.
    count: u64,
    title: &'a str,
    body: &'a str,
    /// The start of the newest message, only with `push_preview` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<&'a str>,
}

/// A notification's parts, before they are serialised.
pub struct Notification {
    job: PushJob,
    sender_name: String,
    group_title: Option<String>,
    count: u64,
    /// The title providers show.
    pub title: String,
    /// The text providers show.
    pub body: String,
    preview: Option<String>,
}

impl Notification {
    /// The notification for `job`; `None` when its conversation or membership is gone.
    pub async fn build(
        store: &dyn Store,
        job: &PushJob,
        with_preview: bool,
    ) -> StoreResult<Option<Self>> {
        let Some(conversation) = store.conversation(job.conversation_id).await? else {
            return Ok(None);
        };
        let Some(member) = store.member(job.conversation_id, job.user_id).await? else {
            return Ok(None);
        };
        let sender = store.user(job.sender_id).await?;
        let sender_name = sender.map_or_else(|| "Someone".to_owned(), |u| u.display_name);
        let message = store
            .messages(
                job.conversation_id,
                SeqWindow {
                    after: job.seq - 1,
                    before: job.seq + 1,
                    limit: 1,
                    newest: false,
                },
                job.user_id,
            )
            .await?
            .into_iter()
            .next()
            .filter(|m| m.kind == MessageKind::Text && m.deleted_at.is_none());
        let count = store
            .unread(job.conversation_id, job.user_id, member.read_seq, job.seq)
            .await?
            .messages
            .max(1);
        let preview = message.map(|m| {
            m.body
                .as_str()
                .chars()
                .take(PREVIEW_CHARS)
                .collect::<String>()
        });
        let group_title = conversation.title.clone();
        let title = group_title.clone().unwrap_or_else(|| sender_name.clone());
        let body = match (&preview, with_preview) {
            (Some(text), true) if group_title.is_some() => format!("{sender_name}: {text}"),
            (Some(text), true) => text.clone(),
            _ if count == 1 => format!("New message from {sender_name}"),
            _ => format!("{count} new messages"),
        };
        Ok(Some(Self {
            job: *job,
            sender_name,
            group_title,
            count,
            title,
            body,
            preview: preview.filter(|_| with_preview),
        }))
    }

    /// The JSON payload.
    pub fn payload(&self) -> Vec<u8> {
        let payload = Payload {
            conversation_id: self.job.conversation_id.to_string(),
            seq: self.job.seq,
            inbox_seq: self.job.inbox_seq,
            sender_id: self.job.sender_id.to_string(),
            sender_name: &self.sender_name,
            group_title: self.group_title.as_deref(),
            count: self.count,
            title: &self.title,
            body: &self.body,
            preview: self.preview.as_deref(),
        };
        // Names and titles are short and the preview is capped, so this stays far under
        // the 4 KiB every provider takes.
        serde_json::to_vec(&payload).unwrap_or_default()
    }
}
