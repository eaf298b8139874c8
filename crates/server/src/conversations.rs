//! Conversations as their members see them, and group management. Every membership or
//! title change is a system message in the conversation's log, fanned out like any message.

use crate::error::{ApiError, ApiResult};
use crate::messaging::Messaging;
use crate::names::Name;
use crate::store::{
    ConversationRecord, ListPage, ListPosition, MemberRecord, NewGroup, Refusal, SeqWindow, Store,
    StoreError,
};
use confab_proto::limits::GROUP_MAX_MEMBERS;
use confab_proto::{
    Conversation, ConversationId, ConversationKind, ErrorCode, Member, Message, UserId,
};

use std::sync::Arc;

/// The conversation service.
pub struct Conversations {
    store: Arc<dyn Store>,
    messaging: Arc<Messaging>,
    groups_per_day: u32,
}

impl Conversations {
    /// Builds the service; a user may make `groups_per_day` groups in any 24 hours.
    pub fn new(store: Arc<dyn Store>, messaging: Arc<Messaging>, groups_per_day: u32) -> Self {
        Self {
            store,
            messaging,
            groups_per_day,
        }
    }

    /// The direct conversation of `me` and `other`; true when it was made now.
    pub async fn direct(&self, me: UserId, other: UserId) -> ApiResult<(Conversation, bool)> {
        if me == other {
            // A well-formed request the rules refuse: 403, as for other things one may not do.
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "a direct conversation needs another user",
            ));
        }
        if self.store.has_blocked(other, me).await? {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "you cannot start a conversation with this user",
            ));
        }
        let (record, created) = self
            .store
            .direct(me, other)
            .await
            .map_err(|e| not_found_as(e, "user"))?;
        Ok((self.view(me, record).await?, created))
    }

    /// Makes a group with `me` as admin.
    pub async fn create_group(
        &self,
        me: UserId,
        title: &str,
        member_ids: &[UserId],
    ) -> ApiResult<Conversation> {
        let title = Name::Title.check(title)?;
        let mut members: Vec<UserId> = Vec::with_capacity(member_ids.len());
        for &id in member_ids {
            if id != me && !members.contains(&id) {
                members.push(id);
            }
        }
        if members.len() + 1 > GROUP_MAX_MEMBERS {
            return Err(StoreError::from(Refusal::GroupFull).into());
        }
        self.not_blocked_by(&members, me).await?;
        // Each group puts rows in its members' inboxes without asking them: bounded per day
        // (in the store's write), not only per second.
        self.messaging.admit(me)?;
        let (record, appended) = self
            .store
            .create_group(NewGroup {
                creator: me,
                title,
                members,
                groups_per_day: self.groups_per_day,
            })
            .await
            .map_err(|e| not_found_as(e, "user"))?;
        self.messaging.fan_out(&appended);
        self.view(me, record).await
    }

    /// Renames a group (admins only).
    pub async fn rename(
        &self,
        me: UserId,
        id: ConversationId,
        title: &str,
    ) -> ApiResult<Conversation> {
        let title = Name::Title.check(title)?;
        self.messaging.admit(me)?;
        let appended = self
            .store
            .rename_group(id, me, &title)
            .await
            .map_err(|e| not_found_as(e, "group"))?;
        self.messaging.fan_out(&appended);
        self.get(me, id).await
    }

    /// Adds a member (admins only); adding a current member changes nothing.
    pub async fn add_member(
        &self,
        me: UserId,
        id: ConversationId,
        user: UserId,
    ) -> ApiResult<Conversation> {
        self.messaging.admit(me)?;
        self.not_blocked_by(&[user], me).await?;
        if let Some(appended) = self.store.add_member(id, me, user).await? {
            self.messaging.fan_out(&appended);
        }
        self.get(me, id).await
    }

    /// Removes a member: an admin removes anyone, anyone removes themself (leaves).
    pub async fn remove_member(
        &self,
        me: UserId,
        id: ConversationId,
        user: UserId,
    ) -> ApiResult<()> {
        self.messaging.admit(me)?;
        let appended = self.store.remove_member(id, me, user).await?;
        self.messaging.fan_out(&appended);
        Ok(())
    }

    /// `me` leaves every group they are in, each with the usual `member_left` message (the
    /// first step of deleting an account).
    pub async fn leave_all(&self, me: UserId) -> ApiResult<()> {
        // Gathered first: leaving moves a group up the list being paged.
        let mut groups = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .conversations_of(me, ListPage { after, limit: 200 })
                .await?;
            groups.extend(
                page.iter()
                    .filter(|m| {
                        m.conversation.kind == ConversationKind::Group
                            && m.member.left_seq.is_none()
                    })
                    .map(|m| m.conversation.id),
            );
            match page.last() {
                Some(last) if page.len() == 200 => after = Some(last.position),
                _ => break,
            }
        }
        for id in groups {
            let appended = self.store.remove_member(id, me, me).await?;
            self.messaging.fan_out(&appended);
        }
        Ok(())
    }

    /// A page of `me`'s conversations, most recent activity first, and where the next page
    /// starts (`None` on the last one).
    pub async fn list(
        &self,
        me: UserId,
        after: Option<ListPosition>,
        limit: usize,
    ) -> ApiResult<(Vec<Conversation>, Option<ListPosition>)> {
        // One more than asked, to know whether there is a next page.
        let mut memberships = self
            .store
            .conversations_of(
                me,
                ListPage {
                    after,
                    limit: limit + 1,
                },
            )
            .await?;
        let next = (memberships.len() > limit).then(|| memberships[limit - 1].position);
        memberships.truncate(limit);
        let mut out = Vec::with_capacity(memberships.len());
        for m in memberships {
            out.push(self.view_as(m.conversation, m.member).await?);
        }
        Ok((out, next))
    }

    /// One conversation, if `me` is or was a member.
    pub async fn get(&self, me: UserId, id: ConversationId) -> ApiResult<Conversation> {
        let record = self
            .store
            .conversation(id)
            .await?
            .ok_or_else(|| ApiError::not_found("conversation"))?;
        self.view(me, record).await
    }

    /// A page of the history `me` may see, ascending: the `limit` newest before `before`, or
    /// (given `after`) the `limit` oldest after it. A member sees each window of their
    /// membership, from the message that added them to the one that removed them.
    pub async fn history(
        &self,
        me: UserId,
        id: ConversationId,
        after: Option<u64>,
        before: Option<u64>,
        limit: usize,
    ) -> ApiResult<Vec<Message>> {
        self.membership(me, id).await?;
        let newest = after.is_none();
        let (after, before) = (after.unwrap_or(0), before.unwrap_or(u64::MAX));
        let mut ranges = self.store.visible_ranges(id, me).await?;
        if newest {
            ranges.reverse();
        }
        let mut page = Vec::new();
        for (first, last) in ranges {
            let window = SeqWindow {
                after: after.max(first.saturating_sub(1)),
                before: before.min(last.saturating_add(1)),
                limit: limit - page.len(),
                newest,
            };
            if window.after + 1 < window.before {
                page.extend(self.store.messages(id, window, me).await?);
            }
            if page.len() >= limit {
                break;
            }
        }
        page.sort_by_key(|m| m.seq);
        Ok(page)
    }

    /// Refuses when one of `users` blocked `me`: a blocked user cannot put the blocker in
    /// a group (worded so as not to say why).
    async fn not_blocked_by(&self, users: &[UserId], me: UserId) -> ApiResult<()> {
        for user in self.store.blocked_among(me, users).await? {
            if self.store.has_blocked(user, me).await? {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "you cannot add this user to a group",
                ));
            }
        }
        Ok(())
    }

    /// The caller's member row, or `forbidden` / `not_found`.
    pub async fn membership(&self, me: UserId, id: ConversationId) -> ApiResult<MemberRecord> {
        if let Some(member) = self.store.member(id, me).await? {
            return Ok(member);
        }
        match self.store.conversation(id).await? {
            Some(_) => Err(ApiError::new(
                ErrorCode::Forbidden,
                "you are not a member of this conversation",
            )),
            None => Err(ApiError::not_found("conversation")),
        }
    }

    async fn view(&self, me: UserId, record: ConversationRecord) -> ApiResult<Conversation> {
        let member = self.membership(me, record.id).await?;
        self.view_as(record, member).await
    }

    /// The conversation as `me` may see it: as it is now for a member, as it was when they
    /// left for a former one (title, members and watermarks at their last seq).
    async fn view_as(
        &self,
        record: ConversationRecord,
        me: MemberRecord,
    ) -> ApiResult<Conversation> {
        let settings = self.store.settings(record.id, me.user_id).await?;
        let settings = crate::settings::view(&*self.store, &record, &me, settings).await?;
        let (title, members) = match me.left_seq {
            None => (
                record.title,
                self.store
                    .members(record.id)
                    .await?
                    .into_iter()
                    .filter(MemberRecord::is_active)
                    .collect::<Vec<_>>(),
            ),
            Some(left) => (
                self.store.title_at(record.id, left).await?,
                self.store.members_at(record.id, left).await?,
            ),
        };
        let last_seq = me
            .left_seq
            .map_or(record.last_seq, |left| left.min(record.last_seq));
        // Read watermarks of those who send no read receipts are not shown, nor anyone's to
        // someone who sends none.
        let ids: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
        let privacy = self.store.privacy(&ids).await?;
        let mine = self.store.privacy(&[me.user_id]).await?;
        let i_send = mine.first().is_none_or(|p| p.read_receipts);
        let members = members
            .into_iter()
            .zip(privacy)
            .map(|(m, p)| Member {
                user_id: m.user_id,
                role: m.role,
                delivered_seq: m.delivered_seq.min(last_seq),
                read_seq: if m.user_id == me.user_id || (i_send && p.read_receipts) {
                    m.read_seq.min(last_seq)
                } else {
                    0
                },
            })
            .collect();
        // The newest message (not a change), as it stands; from the newest back past those
        // the caller deleted for themself.
        let newest = me.left_seq.map_or(record.last_message_seq, |left| {
            left.min(record.last_message_seq)
        });
        let last_message = if newest >= me.joined_seq && newest > 0 {
            let window = SeqWindow {
                after: me.joined_seq.saturating_sub(1),
                before: newest + 1,
                limit: 1,
                newest: true,
            };
            self.store
                .messages(record.id, window, me.user_id)
                .await?
                .pop()
        } else {
            None
        };
        let read_seq = me.read_seq.max(me.joined_seq.saturating_sub(1));
        let unread = self
            .store
            .unread(record.id, me.user_id, read_seq, last_seq)
            .await?;
        Ok(Conversation {
            id: record.id,
            kind: record.kind,
            title,
            members,
            last_seq,
            read_seq: me.read_seq,
            unread: unread.messages,
            unread_mentions: unread.mentions,
            last_message,
            active: me.is_active(),
            settings,
        })
    }
}

/// A store `NotFound` names what was missing.
fn not_found_as(e: StoreError, what: &str) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found(what),
        e => e.into(),
    }
}
