//! The `Store` seam: the truth about users, devices, conversations, members, messages and
//! inboxes. Callers see per-domain traits; backends live in their own folders
//! (`sqlite/` is the embedded default). Every backend passes the one conformance suite in
//! `tests/store_suite.rs`.
//!
//! Rules that must hold atomically with a write (membership, group size, admin rights,
//! dedupe of `client_msg_id`) are checked by the backend inside the write's transaction.

pub mod copy;
pub mod postgres;
mod refusal;
pub mod rules;
pub mod search;
pub mod sqlite;
mod types;

pub use refusal::Refusal;
pub use types::*;

use async_trait::async_trait;
use confab_proto::{
    ConversationId, DeviceId, Message, Privacy, PrivacyChange, PushSubscriptionId, SettingsChange,
    SyncEntry, Timestamp, User, UserId,
};

/// What a store call can fail with. Domain refusals carry enough to answer the client;
/// `Backend` is a fault to log, never shown to clients as is.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No such row, or not visible.
    #[error("not found")]
    NotFound,
    /// A domain rule refused the write (not a member, not an admin, group full, a name
    /// taken, ...).
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// The write lost a race with another writer (another node); backends retry it and
    /// never hand it out.
    #[error("conflict between writers: {0}")]
    Contended(String),
    /// The database cannot be reached (down, restarting, unreachable) or did not answer in
    /// time; nothing was acknowledged. Clients are told `overloaded` and retry (a retried
    /// send with the same client id is stored once).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The store is shutting down or its writer is gone.
    #[error("the store is closed")]
    Closed,
    /// The database failed.
    #[error("database error: {0}")]
    Backend(String),
}

/// Result of store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// User accounts.
#[async_trait]
pub trait Users: Send + Sync {
    /// Creates a user; `Conflict` when the username is taken.
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    /// A user by id.
    async fn user(&self, id: UserId) -> StoreResult<Option<User>>;
    /// A user by username, with the password hash, for login.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Changes the display name.
    async fn update_display_name(&self, id: UserId, display_name: &str) -> StoreResult<User>;
    /// Replaces the password hash.
    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> StoreResult<()>;
    /// Records when users were last active (presence persists it on going offline).
    async fn set_last_seen(&self, seen: &[(UserId, Timestamp)]) -> StoreResult<()>;
    /// When users were last active.
    async fn last_seen(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Option<Timestamp>)>>;
    /// What `ids` share (the defaults for unknown ids).
    async fn privacy(&self, ids: &[UserId]) -> StoreResult<Vec<Privacy>>;
    /// Changes what `id` shares; the fields given only.
    async fn change_privacy(&self, id: UserId, change: PrivacyChange) -> StoreResult<Privacy>;
    /// Deletes `id`'s account, in one transaction: the profile becomes "Deleted user" under
    /// a username no one can sign up with (the old one is free again), the password and
    /// every device, push subscription, block (either way), conversation setting and shown
    /// notification go, and its direct conversations are closed like a blocked pair's.
    /// Its messages and member rows stay, for the others' history. The devices deleted;
    /// `NotFound` when there is no such account (or it is deleted already).
    async fn delete_account(&self, id: UserId) -> StoreResult<Vec<DeviceId>>;
}

/// Logged-in devices and their tokens.
#[async_trait]
pub trait Devices: Send + Sync {
    /// Creates a device holding the hash of its token.
    async fn create_device(&self, new: NewDevice) -> StoreResult<DeviceRecord>;
    /// The device whose token has this hash.
    async fn device_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<DeviceRecord>>;
    /// A user's devices, oldest first.
    async fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>>;
    /// Moves device cursors forward (never back, never past the inbox head) and stamps
    /// `last_active_at`; returns the cursors that moved.
    async fn save_cursors(&self, cursors: &[(DeviceId, u64)]) -> StoreResult<Vec<CursorMove>>;
    /// Deletes a device of `user`, which revokes its token; false if there was none.
    async fn delete_device(&self, user: UserId, device: DeviceId) -> StoreResult<bool>;
    /// Deletes every device of `user` but `keep`; the ones deleted.
    async fn delete_other_devices(
        &self,
        user: UserId,
        keep: DeviceId,
    ) -> StoreResult<Vec<DeviceId>>;
    /// Deletes `user`'s devices beyond the `at_most` most recently active; the ones deleted.
    async fn evict_idle_devices(&self, user: UserId, at_most: usize) -> StoreResult<Vec<DeviceId>>;
}

/// Conversations: direct pairs and groups.
#[async_trait]
pub trait Conversations: Send + Sync {
    /// The direct conversation of two users, made on first use; true when it was made now.
    async fn direct(&self, a: UserId, b: UserId) -> StoreResult<(ConversationRecord, bool)>;
    /// Makes a group with `creator` as admin, recording a `group_created` system message;
    /// `Refusal::GroupsPerDay` when the creator made `groups_per_day` in the last 24 hours.
    async fn create_group(&self, new: NewGroup) -> StoreResult<(ConversationRecord, Appended)>;
    /// A conversation by id.
    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRecord>>;
    /// A page of what `user` is or was a member of, most recent activity first.
    async fn conversations_of(&self, user: UserId, page: ListPage) -> StoreResult<Vec<Membership>>;
    /// The users who share a direct conversation with `user`, but for a blocked pair: whose
    /// presence they follow.
    async fn contacts_of(&self, user: UserId) -> StoreResult<Vec<UserId>>;
    /// A group's title as it was at `seq` (after the message with that seq): what a member
    /// who left there last saw. `None` for a direct conversation.
    async fn title_at(&self, id: ConversationId, seq: u64) -> StoreResult<Option<String>>;
    /// Renames a group (admins only), recording a `title_changed` system message.
    async fn rename_group(
        &self,
        id: ConversationId,
        by: UserId,
        title: &str,
    ) -> StoreResult<Appended>;
}

/// Who belongs to which conversation, and their watermarks.
#[async_trait]
pub trait Members: Send + Sync {
    /// Adds `user` to a group (admins only). `None` when already a member.
    async fn add_member(
        &self,
        id: ConversationId,
        by: UserId,
        user: UserId,
    ) -> StoreResult<Option<Appended>>;
    /// The members of a conversation, past ones included.
    async fn members(&self, id: ConversationId) -> StoreResult<Vec<MemberRecord>>;
    /// The members of a conversation at `seq`: those who joined at or before it and left
    /// after it (in any of their membership windows), oldest first.
    async fn members_at(&self, id: ConversationId, seq: u64) -> StoreResult<Vec<MemberRecord>>;
    /// Do `a` and `b` share a conversation, or did they ever (in any membership window)?
    async fn ever_shared(&self, a: UserId, b: UserId) -> StoreResult<bool>;
    /// Those of `users` who are members of a conversation `me` is a member of now (and `me`
    /// itself). Former members share nothing.
    async fn peers_among(&self, me: UserId, users: &[UserId]) -> StoreResult<Vec<UserId>>;
    /// Every window of seqs `user` may see in a conversation, oldest first: earlier
    /// memberships, then the current or last one. Empty for a non-member.
    async fn visible_ranges(
        &self,
        id: ConversationId,
        user: UserId,
    ) -> StoreResult<Vec<(u64, u64)>>;
    /// One member row.
    async fn member(&self, id: ConversationId, user: UserId) -> StoreResult<Option<MemberRecord>>;
    /// The active members of a conversation whose usernames are among `usernames` (whom a
    /// message's `@names` mention), in the order of `usernames`.
    async fn members_named(
        &self,
        id: ConversationId,
        usernames: &[String],
    ) -> StoreResult<Vec<UserId>>;
    /// Moves the read watermark forward; the new value when it moved.
    async fn mark_read(
        &self,
        id: ConversationId,
        user: UserId,
        seq: u64,
    ) -> StoreResult<Option<u64>>;
    /// Moves delivered watermarks forward; returns those that moved.
    async fn mark_delivered(
        &self,
        marks: &[(ConversationId, UserId, u64)],
    ) -> StoreResult<Vec<(ConversationId, UserId, u64)>>;
    /// Removes `user` (an admin removes anyone; anyone removes themself). The removed
    /// member receives the system message and nothing after it.
    async fn remove_member(
        &self,
        id: ConversationId,
        by: UserId,
        user: UserId,
    ) -> StoreResult<Appended>;
}

/// The conversation logs.
#[async_trait]
pub trait Messages: Send + Sync {
    /// Stores a message, or a change to one, with one inbox entry per active member (a
    /// delete for me: only the sender), or returns the original when `(sender,
    /// client_msg_id)` was stored before. Durable when this returns. Counts the text's bytes
    /// (a message's, an edit's) against the sender's `quota_bytes` (`Refusal::QuotaExceeded`
    /// past it). A change is checked against its target here: `NoSuchMessage` when the
    /// sender cannot see a message at `target_seq`; `SystemMessage`, `MessageDeleted`,
    /// `NotSender` (an edit of another's message; a delete, unless by a group's admin),
    /// `TooManyReactions`.
    async fn append(&self, new: NewMessage) -> StoreResult<Appended>;
    /// The messages (text, system; not changes) of a conversation inside `window`, as they
    /// stand now and as `viewer` sees them: without those they deleted for themselves, with
    /// reactions. Ascending by seq.
    async fn messages(
        &self,
        id: ConversationId,
        window: SeqWindow,
        viewer: UserId,
    ) -> StoreResult<Vec<Message>>;
    /// Of the messages with `after < seq <= upto`, how many there are and how many of them
    /// mention `user` (deleted ones not counted).
    async fn unread(
        &self,
        id: ConversationId,
        user: UserId,
        after: u64,
        upto: u64,
    ) -> StoreResult<Unread>;
    /// The unread messages of all `user`'s conversations: what the `unread` of each in
    /// their list sums to (the badge on their app's icon).
    async fn unread_total(&self, user: UserId) -> StoreResult<u64>;
}

/// Per-user inboxes: the gap-free sequence that devices sync from.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// The user's newest inbox_seq (0 when empty).
    async fn inbox_head(&self, user: UserId) -> StoreResult<u64>;
    /// The highest seq per conversation among the user's entries in `(after, upto]`, counting
    /// only messages others sent (what a delivered receipt is about).
    async fn conversation_marks(
        &self,
        user: UserId,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<(ConversationId, u64)>>;
    /// Entries after `after`, ascending, at most `limit`.
    async fn inbox_after(
        &self,
        user: UserId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<SyncEntry>>;
}

/// Push subscriptions and the push outbox. The outbox row of a message is written in the
/// message's own transaction (for members, not the sender, who have a subscription), so a
/// crash between the commit and the push still pushes after a restart.
#[async_trait]
pub trait Push: Send + Sync {
    /// Saves a subscription of a device. The same endpoint or token registered again (a new
    /// login in the same browser) moves to the new device, with the new keys. A device keeps
    /// its newest `PUSH_SUBSCRIPTIONS_PER_DEVICE`; older ones are deleted.
    async fn add_subscription(&self, new: NewSubscription) -> StoreResult<SubscriptionRecord>;
    /// Deletes a subscription of `user`; false if there was none.
    async fn delete_subscription(&self, user: UserId, id: PushSubscriptionId) -> StoreResult<bool>;
    /// Deletes a subscription the provider said is gone.
    async fn drop_subscription(&self, id: PushSubscriptionId) -> StoreResult<()>;
    /// A user's subscriptions.
    async fn subscriptions(&self, user: UserId) -> StoreResult<Vec<SubscriptionRecord>>;
    /// Claims up to `limit` outbox rows due at `now`, the longest waiting first, leaving out
    /// the rows of users in `skip` (being pushed to already). A claimed row is not due again
    /// before `lease_until`, so no other worker (on any node) takes it meanwhile;
    /// `push_done`, `push_retry` or `push_forget` ends the claim, and the claims of a worker
    /// that died pass to the others when their lease runs out.
    async fn claim_pushes(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
        skip: &[UserId],
    ) -> StoreResult<Vec<PushJob>>;
    /// Marks `job` pushed (or not needing a push) up to its inbox_seq, and holds the row
    /// until `hold_until`: what comes meanwhile is pushed once then, as one notification.
    /// `shown` records what the user's devices now show, for later edits and deletes.
    async fn push_done(
        &self,
        job: &PushJob,
        hold_until: Timestamp,
        shown: Shown,
    ) -> StoreResult<()>;
    /// Schedules the next attempt of a job that failed, recording what the subscriptions
    /// that did get it now show.
    async fn push_retry(&self, job: &PushJob, at: Timestamp, shown: Shown) -> StoreResult<()>;
    /// Deletes the row of `job` unless a newer message updated it meanwhile.
    async fn push_forget(&self, job: &PushJob) -> StoreResult<()>;
}

/// Each member's own settings for a conversation.
#[async_trait]
pub trait MemberSettings: Send + Sync {
    /// `user`'s settings for `conversation`: the defaults until they change one.
    async fn settings(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> StoreResult<SettingsRecord>;
    /// Applies `change` in one write (two devices changing different settings at once
    /// both land): a level replaces the level and its end; archiving records the
    /// conversation's newest message seq.
    async fn change_settings(
        &self,
        conversation: ConversationId,
        user: UserId,
        change: SettingsChange,
    ) -> StoreResult<SettingsRecord>;
}

/// Who blocked whom. A block between the two people of a direct conversation marks it
/// (`blocked`), so the send path refuses writes there without a lookup of its own.
#[async_trait]
pub trait Blocks: Send + Sync {
    /// `blocker` blocks `blocked` from `at`; false if they already had.
    async fn block(&self, blocker: UserId, blocked: UserId, at: Timestamp) -> StoreResult<bool>;
    /// `blocker` lifts their block of `blocked`; false if there was none. Their direct
    /// conversation takes writes again unless `blocked` blocks `blocker` too.
    async fn unblock(&self, blocker: UserId, blocked: UserId) -> StoreResult<bool>;
    /// Whom `user` blocked, and since when, newest first.
    async fn blocked_by(&self, user: UserId) -> StoreResult<Vec<(UserId, Timestamp)>>;
    /// Has `blocker` blocked `blocked`?
    async fn has_blocked(&self, blocker: UserId, blocked: UserId) -> StoreResult<bool>;
    /// Of `users`, those with a block either way between them and `user`: they see no
    /// presence or typing of each other.
    async fn blocked_among(&self, user: UserId, users: &[UserId]) -> StoreResult<Vec<UserId>>;
}

/// Full-text search over the messages a user may see.
#[async_trait]
pub trait Search: Send + Sync {
    /// The text messages `request.user` may see that match the query: inside their
    /// membership windows, not deleted for everyone, not deleted for them, by their text
    /// as it stands now.
    async fn search(&self, request: SearchRequest) -> StoreResult<Vec<Message>>;
    /// Indexes the next text messages waiting for the index, oldest first, taking at most
    /// `max` (embedded store: reading at most `max` entries of the log). A message waits
    /// from its commit until then; an edit or delete for everyone updates the index in its
    /// own transaction, and the indexer passes over the messages they changed.
    async fn index_next(&self, max: usize) -> StoreResult<Indexed>;
}

/// What the nodes sharing a store must agree on: secrets, and which node has which
/// Snowflake node id.
#[async_trait]
pub trait Nodes: Send + Sync {
    /// The secret stored under `name`. If there is none yet, `candidate` becomes it: every
    /// node gets the same value, whichever asked first.
    async fn shared_secret(&self, name: &str, candidate: &str) -> StoreResult<String>;
    /// Claims a node id for `holder` until `until`: `wanted` if given, else the lowest one
    /// (0 to 1023) whose lease has run out by `now`. `None`: `wanted` is held by another
    /// live holder, or every id is.
    async fn claim_node_id(
        &self,
        holder: &str,
        wanted: Option<u16>,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Option<u16>>;
    /// Extends `holder`'s lease on `id` to `until`; false when `holder` no longer has it
    /// (its lease ran out and another node claimed the id).
    async fn renew_node_id(&self, id: u16, holder: &str, until: Timestamp) -> StoreResult<bool>;
    /// Gives up `holder`'s lease on `id` (a clean stop), so a restart can take it at once.
    async fn release_node_id(&self, id: u16, holder: &str) -> StoreResult<()>;
    /// Puts `node`'s registry entry (by holder), and forgets entries not renewed since
    /// `forget_before`.
    async fn put_node(&self, node: &NodeRecord, forget_before: Timestamp) -> StoreResult<()>;
    /// The registry entries renewed after `after`.
    async fn nodes(&self, after: Timestamp) -> StoreResult<Vec<NodeRecord>>;
}

/// Which processes hold which users online: presence across nodes. A process records
/// only its own transitions (a user's first device up here, last device gone here); a user
/// is online while any live process (its registry entry renewed after `live_after`) holds
/// them. Transitions of one user are applied one at a time across the cluster.
#[async_trait]
pub trait Online: Send + Sync {
    /// `holder` now holds `up` and no longer holds `down`. Returns the users of `up` no
    /// other live process held (online for the cluster now) and those of `down` no live
    /// process holds any more (offline for the cluster now).
    async fn set_online(
        &self,
        holder: &str,
        up: &[UserId],
        down: &[UserId],
        live_after: Timestamp,
    ) -> StoreResult<(Vec<UserId>, Vec<UserId>)>;
    /// Those of `users` some live process holds.
    async fn online_among(
        &self,
        users: &[UserId],
        live_after: Timestamp,
    ) -> StoreResult<Vec<UserId>>;
    /// Forgets what processes not renewed since `live_after` held (they died), up to a few
    /// hundred rows a call; the users no live process holds any more, each with when their
    /// dead holder was last renewed (or `live_after`, if its entry is gone).
    async fn reap_online(&self, live_after: Timestamp) -> StoreResult<Vec<(UserId, Timestamp)>>;
}

/// Wrong passwords per username, shared by every node (the policy is in
/// `accounts/guesses.rs`).
#[async_trait]
pub trait Logins: Send + Sync {
    /// Failures in a row for `username`, and when the next attempt may begin.
    async fn login_failures(&self, username: &str) -> StoreResult<Option<(u32, Timestamp)>>;
    /// Holds `username`'s next attempt until `hold` (one attempt at a time once waits have
    /// begun), if no attempt is held or waited for at `now`; false otherwise.
    async fn hold_login(
        &self,
        username: &str,
        now: Timestamp,
        hold: Timestamp,
    ) -> StoreResult<bool>;
    /// One more failure in a row for `username` (forgetting, on the way, failures whose
    /// waits ended before `forget_before`); the count now.
    async fn login_failed(&self, username: &str, forget_before: Timestamp) -> StoreResult<u32>;
    /// No attempt for `username` before `until`.
    async fn login_wait(&self, username: &str, until: Timestamp) -> StoreResult<()>;
    /// A right password: the count starts over.
    async fn login_succeeded(&self, username: &str) -> StoreResult<()>;
}

/// The whole store, as the rest of the server sees it.
#[async_trait]
pub trait Store:
    Users
    + Devices
    + Conversations
    + Members
    + Messages
    + MemberSettings
    + Blocks
    + Search
    + Inbox
    + Push
    + Nodes
    + Online
    + Logins
{
    /// Finishes the writes in flight and stops accepting new ones.
    async fn close(&self);
}
