//! Receipts: delivered and read watermarks per (conversation, member), stored, and fanned
//! out as `receipt` events to the conversation's members (the reader's own devices too, so
//! unread counts clear everywhere). One event per watermark move, never one per message:
//! delivered marks come from device cursors, which are saved and turned into marks once a
//! second.

use crate::bus::{Bus, UserEvent};
use crate::error::ApiResult;
use crate::metrics::Metrics;
use crate::store::{CursorMove, Store};
use confab_proto::{ConversationId, ReceiptKind, ServerFrame, UserId};
use std::sync::Arc;

/// The receipt service.
pub struct Receipts {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
}

impl Receipts {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            bus,
            metrics,
        }
    }

    /// `user` has read `conversation` up to `seq`: moves the read watermark (never back).
    pub async fn read(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: u64,
    ) -> ApiResult<()> {
        if let Some(seq) = self.store.mark_read(conversation, user, seq).await? {
            self.fan_out(conversation, user, ReceiptKind::Read, seq)
                .await;
        }
        Ok(())
    }

    /// Devices acknowledged inbox entries: moves each user's delivered watermark in every
    /// conversation those entries belong to.
    pub async fn delivered(&self, moves: &[CursorMove]) {
        let mut marks = Vec::new();
        for m in moves {
            match self.store.conversation_marks(m.user, m.from, m.to).await {
                Ok(found) => marks.extend(found.into_iter().map(|(conv, seq)| (conv, m.user, seq))),
                Err(e) => {
                    tracing::warn!(user = %m.user, error = %e, "could not read delivered marks")
                }
            }
        }
        if marks.is_empty() {
            return;
        }
        match self.store.mark_delivered(&marks).await {
            Ok(moved) => {
                for (conv, user, seq) in moved {
                    self.fan_out(conv, user, ReceiptKind::Delivered, seq).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, marks = marks.len(), "could not save delivered marks")
            }
        }
    }

    async fn fan_out(
        &self,
        conversation_id: ConversationId,
        user_id: UserId,
        kind: ReceiptKind,
        seq: u64,
    ) {
        let members = match self.store.members(conversation_id).await {
            Ok(members) => members,
            Err(e) => {
                return tracing::warn!(error = %e, "could not read members; receipt not fanned out");
            }
        };
        let frame: Arc<str> = ServerFrame::Receipt {
            conversation_id,
            user_id,
            kind,
            seq,
        }
        .to_json()
        .into();
        let active: Vec<UserId> = members
            .iter()
            .filter(|m| m.is_active())
            .map(|m| m.user_id)
            .collect();
        // A read receipt goes to those who send theirs, if the reader does (hiding yours
        // hides the others' from you); always to the reader's own devices.
        let tell: Vec<UserId> = match kind {
            ReceiptKind::Delivered => active,
            ReceiptKind::Read => {
                let privacy = match self.store.privacy(&active).await {
                    Ok(privacy) => privacy,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read privacy settings; the read receipt goes to the reader only");
                        Vec::new()
                    }
                };
                let sends = |u: UserId| {
                    active
                        .iter()
                        .zip(&privacy)
                        .any(|(m, p)| *m == u && p.read_receipts)
                };
                let reader_sends = sends(user_id);
                active
                    .iter()
                    .copied()
                    .filter(|&m| m == user_id || (reader_sends && sends(m)))
                    .collect()
            }
        };
        for member in tell {
            self.metrics.receipts.inc();
            self.bus.publish(member, UserEvent::Frame(frame.clone()));
        }
    }
}
