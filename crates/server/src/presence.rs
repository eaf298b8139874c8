//! Presence: online while any device heartbeats. Each device holds a lease renewed by
//! every frame it sends (a `heartbeat`, a WebSocket ping, anything); a user is online while
//! any lease is live. A dropped connection keeps its lease until it lapses, so a reconnect
//! inside `presence_timeout_ms` flickers nothing for the watchers; a clean close (a close
//! frame, a logout) ends the lease at once.
//!
//! Across nodes: each node records in the store only its own transitions (a user's first
//! device up here, last device gone here), and the store says which of them are the
//! cluster's (no other live node holds the user): only those fan out to contacts through the
//! bus, so a device moving from node A to node B inside the timeout flickers nothing, and
//! `last_active_at` is written once, by the node whose transition took the user offline.
//! The users of a node that dies are taken offline by any other once its registry entry is
//! `presence_timeout_ms` old. The lease book is plain data driven by
//! `tokio::time::Instant`, so its tests run on a paused clock.

use crate::bus::{Bus, UserEvent};
use crate::metrics::Metrics;
use crate::registry::Liveness;
use crate::store::Store;
use confab_proto::{
    DeviceId, Presence as PresenceView, PresenceStatus, ServerFrame, Timestamp, UserId,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A user's status moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Whose.
    pub user: UserId,
    /// To what.
    pub status: PresenceStatus,
    /// When the user was last active.
    pub last_active_at: Timestamp,
}

#[derive(Debug)]
struct Lease {
    expires: Instant,
    sessions: u32,
}

#[derive(Debug)]
struct UserLeases {
    devices: HashMap<DeviceId, Lease>,
    last_active_at: Timestamp,
}

/// Who holds which lease; every method returns the status changes it caused.
#[derive(Debug)]
pub struct LeaseBook {
    timeout: Duration,
    users: HashMap<UserId, UserLeases>,
    /// Users with at least one lease, kept as it changes so reading it is O(1).
    online: usize,
}

impl LeaseBook {
    /// An empty book whose leases last `timeout` past the last sign of life.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            users: HashMap::new(),
            online: 0,
        }
    }

    /// A session of `device` opened.
    pub fn connect(&mut self, user: UserId, device: DeviceId, now: Instant) -> Option<Change> {
        let change = self.beat(user, device, now);
        if let Some(lease) = self
            .users
            .get_mut(&user)
            .and_then(|u| u.devices.get_mut(&device))
        {
            lease.sessions += 1;
        }
        change
    }

    /// `device` showed a sign of life: renews (or re-creates) its lease.
    pub fn beat(&mut self, user: UserId, device: DeviceId, now: Instant) -> Option<Change> {
        let expires = now + self.timeout;
        let leases = self.users.entry(user).or_insert_with(|| UserLeases {
            devices: HashMap::new(),
            last_active_at: Timestamp::now(),
        });
        let was_online = !leases.devices.is_empty();
        leases.last_active_at = Timestamp::now();
        leases
            .devices
            .entry(device)
            .or_insert(Lease {
                expires,
                sessions: 0,
            })
            .expires = expires;
        if !was_online {
            self.online += 1;
        }
        (!was_online).then_some(Change {
            user,
            status: PresenceStatus::Online,
            last_active_at: leases.last_active_at,
        })
    }

    /// A session of `device` closed. A clean close ends the lease now (when it was the
    /// device's last session); otherwise the lease runs out on its own.
    pub fn disconnect(&mut self, user: UserId, device: DeviceId, clean: bool) -> Option<Change> {
        let leases = self.users.get_mut(&user)?;
        let lease = leases.devices.get_mut(&device)?;
        lease.sessions = lease.sessions.saturating_sub(1);
        if clean && lease.sessions == 0 {
            leases.devices.remove(&device);
        }
        self.offline_if_empty(user)
    }

    /// Ends every lease that has lapsed by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Change> {
        let mut lapsed = Vec::new();
        for (user, leases) in &mut self.users {
            let before = leases.devices.len();
            leases.devices.retain(|_, lease| lease.expires > now);
            if before > 0 && leases.devices.is_empty() {
                lapsed.push(*user);
            }
        }
        lapsed
            .into_iter()
            .filter_map(|user| self.offline_if_empty(user))
            .collect()
    }

    /// Online status and last activity of `user`, if this node knows of them.
    pub fn get(&self, user: UserId) -> Option<(PresenceStatus, Timestamp)> {
        self.users.get(&user).map(|u| {
            let status = if u.devices.is_empty() {
                PresenceStatus::Offline
            } else {
                PresenceStatus::Online
            };
            (status, u.last_active_at)
        })
    }

    /// Users online now.
    pub fn online(&self) -> usize {
        self.online
    }

    /// The users online now, with their last activity.
    pub fn online_users(&self) -> Vec<(UserId, Timestamp)> {
        self.users
            .iter()
            .filter(|(_, u)| !u.devices.is_empty())
            .map(|(user, u)| (*user, u.last_active_at))
            .collect()
    }

    fn offline_if_empty(&mut self, user: UserId) -> Option<Change> {
        let leases = self.users.get(&user)?;
        if !leases.devices.is_empty() {
            return None;
        }
        let last_active_at = leases.last_active_at;
        // Forget the user; the store keeps their last activity from here on.
        self.users.remove(&user);
        self.online -= 1;
        Some(Change {
            user,
            status: PresenceStatus::Offline,
            last_active_at,
        })
    }
}

/// Changes waiting to be published. A burst (online, offline, online) inside one flush
/// interval nets out to what changed since the last publish: often nothing.
#[derive(Debug, Default)]
pub struct Outbox {
    pending: HashMap<UserId, Change>,
    /// Users last published as online; absent means offline.
    published_online: std::collections::HashSet<UserId>,
}

impl Outbox {
    /// Queues a change, replacing any earlier one of the same user.
    pub fn record(&mut self, change: Change) {
        self.pending.insert(change.user, change);
    }

    /// The net changes since the last call.
    pub fn take(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        for (user, change) in self.pending.drain() {
            let was_online = self.published_online.contains(&user);
            match change.status {
                PresenceStatus::Online if !was_online => {
                    self.published_online.insert(user);
                    out.push(change);
                }
                PresenceStatus::Offline if was_online => {
                    self.published_online.remove(&user);
                    out.push(change);
                }
                _ => {}
            }
        }
        out
    }
}

/// Rounds of reaping per expiry pass (each a few hundred rows).
const REAP_ROUNDS: usize = 20;

/// Users per store transaction of presence changes (each takes a lock per user).
const PRESENCE_BATCH: usize = 500;

/// How often queued presence changes are published.
const COALESCE: Duration = Duration::from_millis(50);

/// The presence service of a node.
pub struct Presence {
    book: Mutex<LeaseBook>,
    outbox: Mutex<Outbox>,
    /// Last activity of users gone offline whose time is not in the store yet.
    unsaved: Mutex<HashMap<UserId, Timestamp>>,
    /// Local transitions the store has not taken yet (it failed): tried again first.
    unrecorded: Mutex<Vec<Change>>,
    /// This process in the store's presence rows.
    holder: String,
    /// How current this node's registry entry is.
    liveness: Arc<Liveness>,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl Presence {
    /// Builds the service; `timeout` is `presence_timeout_ms`, `holder` this process's
    /// name in the registry.
    pub fn new(
        timeout: Duration,
        (holder, liveness): (String, Arc<Liveness>),
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            book: Mutex::new(LeaseBook::new(timeout)),
            outbox: Mutex::new(Outbox::default()),
            unsaved: Mutex::new(HashMap::new()),
            unrecorded: Mutex::new(Vec::new()),
            holder,
            liveness,
            store,
            bus,
            metrics,
            timeout,
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, LeaseBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session opened.
    pub fn connect(&self, user: UserId, device: DeviceId) {
        let mut book = self.book();
        let change = book.connect(user, device, Instant::now());
        // Recorded under the book's lock, so changes of one user queue in the order
        // they happened. (Lock order everywhere: book, unsaved, outbox.)
        self.record(change);
        drop(book);
    }

    /// A frame or ping arrived: cheap, called for every one.
    pub fn beat(&self, user: UserId, device: DeviceId) {
        let mut book = self.book();
        let change = book.beat(user, device, Instant::now());
        self.record(change);
        drop(book);
    }

    /// A session closed; `clean` when the client said goodbye (close frame, logout).
    pub fn disconnect(&self, user: UserId, device: DeviceId, clean: bool) {
        let mut book = self.book();
        let change = book.disconnect(user, device, clean);
        self.record(change);
        drop(book);
    }

    /// Queues a change to publish; the caller holds the book's lock.
    fn record(&self, change: Option<Change>) {
        let Some(change) = change else { return };
        let mut unsaved = self.unsaved.lock().unwrap_or_else(|p| p.into_inner());
        match change.status {
            PresenceStatus::Offline => unsaved.insert(change.user, change.last_active_at),
            PresenceStatus::Online => unsaved.remove(&change.user),
        };
        drop(unsaved);
        self.outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(change);
    }

    /// Registry entries renewed after this are live nodes.
    fn live_after(&self) -> Timestamp {
        Timestamp(Timestamp::now().0 - i64::try_from(self.timeout.as_millis()).unwrap_or(0))
    }

    /// Does `user` have a device online on any node now?
    pub async fn is_online(&self, user: UserId) -> crate::store::StoreResult<bool> {
        if self.is_online_here(user) {
            return Ok(true);
        }
        Ok(!self
            .store
            .online_among(&[user], self.live_after())
            .await?
            .is_empty())
    }

    fn is_online_here(&self, user: UserId) -> bool {
        self.book()
            .get(user)
            .is_some_and(|(status, _)| status == PresenceStatus::Online)
    }

    /// `users` as presence views: online on any node (with their last activity here, or
    /// now when elsewhere), or offline with their last activity as stored.
    async fn views(
        &self,
        users: &[UserId],
    ) -> crate::store::StoreResult<Vec<(UserId, PresenceStatus, Option<Timestamp>)>> {
        let online: HashSet<UserId> = self
            .store
            .online_among(users, self.live_after())
            .await?
            .into_iter()
            .collect();
        let offline: Vec<UserId> = users
            .iter()
            .copied()
            .filter(|u| !online.contains(u) && !self.is_online_here(*u))
            .collect();
        let stored: HashMap<UserId, Option<Timestamp>> = if offline.is_empty() {
            HashMap::new()
        } else {
            self.store.last_seen(&offline).await?.into_iter().collect()
        };
        // Lock order everywhere: book, then unsaved.
        let book = self.book();
        let unsaved = self.unsaved.lock().unwrap_or_else(|p| p.into_inner());
        Ok(users
            .iter()
            .map(|&user| match book.get(user) {
                Some((PresenceStatus::Online, at)) => (user, PresenceStatus::Online, Some(at)),
                _ if online.contains(&user) => {
                    (user, PresenceStatus::Online, Some(Timestamp::now()))
                }
                _ => {
                    let stored = stored.get(&user).copied().flatten();
                    // A time not yet in the store is newer than the one there.
                    let at = unsaved.get(&user).copied().or(stored);
                    (user, PresenceStatus::Offline, at)
                }
            })
            .collect())
    }

    /// Presence of users as the API answers it to `viewer`, for the whole cluster.
    pub async fn lookup(
        &self,
        viewer: UserId,
        users: &[UserId],
    ) -> crate::store::StoreResult<Vec<PresenceView>> {
        let views = self.views(users).await?;
        let seen = self.last_seen_shown(viewer, users).await;
        Ok(views
            .into_iter()
            .map(|(user_id, status, last_active_at)| PresenceView {
                user_id,
                status,
                last_active_at: last_active_at.filter(|_| seen.contains(&user_id)),
            })
            .collect())
    }

    /// Of `subjects`, those whose last seen `viewer` may see: both share theirs (hiding
    /// yours hides the others' from you). None when the store cannot say.
    async fn last_seen_shown(&self, viewer: UserId, subjects: &[UserId]) -> HashSet<UserId> {
        let mut ids = vec![viewer];
        ids.extend_from_slice(subjects);
        let privacy = match self.store.privacy(&ids).await {
            Ok(privacy) => privacy,
            Err(e) => {
                tracing::warn!(error = %e, "could not read privacy settings; last seen hidden");
                return HashSet::new();
            }
        };
        if !privacy.first().is_some_and(|p| p.last_seen) {
            return HashSet::new();
        }
        subjects
            .iter()
            .zip(&privacy[1..])
            .filter(|(_, p)| p.last_seen)
            .map(|(u, _)| *u)
            .collect()
    }

    /// At shutdown, once the drain is over: this node holds nobody any more. Users who
    /// moved to another node in time stay online; the others go offline now (not a timeout
    /// later, which would also hold back their pushes), with their last activity stored.
    pub async fn leave_all(&self) {
        let mut changes: Vec<Change> = self
            .book()
            .online_users()
            .into_iter()
            .map(|(user, last_active_at)| Change {
                user,
                status: PresenceStatus::Offline,
                last_active_at,
            })
            .collect();
        // And those who went offline since the last flush.
        changes.extend(
            self.outbox
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .into_iter()
                .filter(|c| c.status == PresenceStatus::Offline),
        );
        self.publish(changes).await;
    }

    /// `presence` frames for the contacts of `user` who are online now, on any node: what
    /// a new session needs to draw its green dots without waiting for the next change.
    pub async fn snapshot(&self, user: UserId) -> Vec<Arc<str>> {
        let contacts = self.store.contacts_of(user).await.unwrap_or_default();
        if contacts.is_empty() {
            return Vec::new();
        }
        let views = self.views(&contacts).await.unwrap_or_default();
        let seen = self.last_seen_shown(user, &contacts).await;
        views
            .into_iter()
            .filter(|(_, status, _)| *status == PresenceStatus::Online)
            .map(|(user_id, status, last_active_at)| {
                ServerFrame::Presence(PresenceView {
                    user_id,
                    status,
                    last_active_at: last_active_at.filter(|_| seen.contains(&user_id)),
                })
                .to_json()
                .into()
            })
            .collect()
    }

    /// `a` and `b` just became contacts: each one's sessions get the other's current status
    /// if online (later changes follow as usual).
    pub async fn introduce(&self, a: UserId, b: UserId) {
        let Ok(views) = self.views(&[a, b]).await else {
            return;
        };
        let seen = self.last_seen_shown(a, &[b]).await;
        for (to, about) in [(a, b), (b, a)] {
            if let Some((_, status @ PresenceStatus::Online, at)) =
                views.iter().find(|(u, _, _)| *u == about)
            {
                let frame = ServerFrame::Presence(PresenceView {
                    user_id: about,
                    status: *status,
                    last_active_at: at.filter(|_| !seen.is_empty()),
                })
                .to_json();
                self.metrics.presence_events.inc();
                self.bus.publish(to, UserEvent::Frame(frame.into()));
            }
        }
    }

    /// Until `shutdown`: expires lapsed leases and takes dead nodes' users offline (four
    /// times per timeout), and publishes the net changes every 50 ms.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(COALESCE);
        let expire_every = (self.timeout / 4).max(COALESCE);
        let mut next_expiry = Instant::now() + expire_every;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if Instant::now() >= next_expiry {
                next_expiry = Instant::now() + expire_every;
                {
                    let mut book = self.book();
                    for change in book.expire(Instant::now()) {
                        self.record(Some(change));
                    }
                }
                if self.liveness.take_lapsed() {
                    self.rejoin().await;
                }
                // Only a node whose own entry is current may judge others dead: if it is the
                // one cut off from the store, they are not.
                if self.liveness.fresh(self.timeout / 2) {
                    self.reap().await;
                }
            }
            let changes = self.outbox.lock().unwrap_or_else(|p| p.into_inner()).take();
            self.publish(changes).await;
        }
    }

    /// This node's transitions go to the store; the cluster's are published.
    async fn publish(&self, mut changes: Vec<Change>) {
        let retry = std::mem::take(&mut *self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()));
        if !retry.is_empty() {
            // Older first: a newer change of the same user wins.
            let newer: HashSet<UserId> = changes.iter().map(|c| c.user).collect();
            let mut merged: Vec<Change> = retry
                .into_iter()
                .filter(|c| !newer.contains(&c.user))
                .collect();
            merged.append(&mut changes);
            changes = merged;
        }
        if changes.is_empty() {
            return;
        }
        self.metrics.online_users.set(self.book().online() as i64);
        // In batches: each takes a lock per user in the store, and its lock table is small.
        let mut batches = changes.chunks(PRESENCE_BATCH);
        while let Some(batch) = batches.next() {
            if let Err(e) = self.publish_batch(batch).await {
                tracing::warn!(changes = changes.len(), error = %e, "could not record presence changes; will retry");
                let mut unrecorded = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
                unrecorded.extend_from_slice(batch);
                unrecorded.extend(batches.flatten().copied());
                return;
            }
        }
    }

    async fn publish_batch(&self, changes: &[Change]) -> crate::store::StoreResult<()> {
        let up: Vec<UserId> = changes
            .iter()
            .filter(|c| c.status == PresenceStatus::Online)
            .map(|c| c.user)
            .collect();
        let down: Vec<UserId> = changes
            .iter()
            .filter(|c| c.status == PresenceStatus::Offline)
            .map(|c| c.user)
            .collect();
        let (online, offline) = self
            .store
            .set_online(&self.holder, &up, &down, self.live_after())
            .await?;
        let (online, offline): (HashSet<UserId>, HashSet<UserId>) =
            (online.into_iter().collect(), offline.into_iter().collect());
        let seen: Vec<(UserId, Timestamp)> = changes
            .iter()
            .filter(|c| offline.contains(&c.user))
            .map(|c| (c.user, c.last_active_at))
            .collect();
        self.save_last_seen(&seen).await;
        for change in changes
            .iter()
            .filter(|c| online.contains(&c.user) || offline.contains(&c.user))
        {
            self.fan_out(change.user, change.status, change.last_active_at)
                .await;
        }
        Ok(())
    }

    /// Records again every user online here: other nodes may have taken this one for dead
    /// (its registry entry went stale) and its users offline. Those now online again for
    /// the cluster are published.
    async fn rejoin(&self) {
        let users = self.book().online_users();
        for chunk in users.chunks(PRESENCE_BATCH) {
            let up: Vec<UserId> = chunk.iter().map(|(u, _)| *u).collect();
            match self
                .store
                .set_online(&self.holder, &up, &[], self.live_after())
                .await
            {
                Ok((online, _)) => {
                    for (user, at) in chunk.iter().filter(|(u, _)| online.contains(u)) {
                        self.fan_out(*user, PresenceStatus::Online, *at).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not record this node's users again; will retry");
                    self.liveness.set_lapsed();
                    return;
                }
            }
        }
    }

    /// The users of nodes that stopped renewing go offline, as last seen when their node
    /// last renewed.
    async fn reap(&self) {
        // A few hundred rows a round; a large dead node takes several.
        for _ in 0..REAP_ROUNDS {
            let gone = match self.store.reap_online(self.live_after()).await {
                Ok(gone) => gone,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for the users of dead nodes; will retry");
                    return;
                }
            };
            if gone.is_empty() {
                return;
            }
            // A user whose device came back here meanwhile is not gone.
            let gone: Vec<(UserId, Timestamp)> = gone
                .into_iter()
                .filter(|(u, _)| !self.is_online_here(*u))
                .collect();
            self.save_last_seen(&gone).await;
            for (user, seen) in gone {
                self.fan_out(user, PresenceStatus::Offline, seen).await;
            }
        }
    }

    async fn save_last_seen(&self, seen: &[(UserId, Timestamp)]) {
        if seen.is_empty() {
            return;
        }
        match self.store.set_last_seen(seen).await {
            Ok(()) => {
                let mut unsaved = self.unsaved.lock().unwrap_or_else(|p| p.into_inner());
                for (user, at) in seen {
                    if unsaved.get(user) == Some(at) {
                        unsaved.remove(user);
                    }
                }
            }
            Err(e) => tracing::warn!(users = seen.len(), error = %e, "could not save last_seen"),
        }
    }

    /// Tells `user`'s contacts, on every node, that `user` is now `status`.
    async fn fan_out(&self, user: UserId, status: PresenceStatus, last_active_at: Timestamp) {
        let contacts = match self.store.contacts_of(user).await {
            Ok(contacts) => contacts,
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "could not read contacts; presence not fanned out");
                return;
            }
        };
        // The user may have come back on another node since this offline was decided, and
        // that node's `online` may already be out: a late `offline` would then stick.
        // (A narrow window remains between this look and the publish below.)
        if status == PresenceStatus::Offline
            && self
                .store
                .online_among(&[user], self.live_after())
                .await
                .is_ok_and(|online| !online.is_empty())
        {
            return;
        }
        let frame = |last_active_at| -> Arc<str> {
            ServerFrame::Presence(PresenceView {
                user_id: user,
                status,
                last_active_at,
            })
            .to_json()
            .into()
        };
        let (shown, hidden) = (frame(Some(last_active_at)), frame(None));
        // Who may see this user's last seen: those who share theirs, if this user does.
        let seers = self.last_seen_shown(user, &contacts).await;
        for contact in contacts {
            self.metrics.presence_events.inc();
            let frame = if seers.contains(&contact) {
                &shown
            } else {
                &hidden
            };
            self.bus.publish(contact, UserEvent::Frame(frame.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);
    const ADA: UserId = UserId(1);
    const PHONE: DeviceId = DeviceId(10);
    const LAPTOP: DeviceId = DeviceId(11);

    fn statuses(changes: Vec<Change>) -> Vec<(UserId, PresenceStatus)> {
        changes.into_iter().map(|c| (c.user, c.status)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_connection_lapses_after_the_timeout_not_before() {
        let mut book = LeaseBook::new(TIMEOUT);
        let online = book.connect(ADA, PHONE, Instant::now()).unwrap();
        assert_eq!(online.status, PresenceStatus::Online);
        assert_eq!(
            book.disconnect(ADA, PHONE, false),
            None,
            "no offline at the first disconnect"
        );
        tokio::time::advance(TIMEOUT - Duration::from_secs(1)).await;
        assert!(book.expire(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            statuses(book.expire(Instant::now())),
            vec![(ADA, PresenceStatus::Offline)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconnect_inside_the_timeout_does_not_flicker() {
        let mut book = LeaseBook::new(TIMEOUT);
        book.connect(ADA, PHONE, Instant::now());
        book.disconnect(ADA, PHONE, false);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            book.connect(ADA, PHONE, Instant::now()),
            None,
            "still online: no new online event"
        );
        tokio::time::advance(Duration::from_secs(25)).await;
        assert!(
            book.expire(Instant::now()).is_empty(),
            "the reconnect renewed the lease"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_keep_a_device_online_past_many_timeouts() {
        let mut book = LeaseBook::new(TIMEOUT);
        book.connect(ADA, PHONE, Instant::now());
        for _ in 0..20 {
            tokio::time::advance(Duration::from_secs(5)).await;
            assert_eq!(book.beat(ADA, PHONE, Instant::now()), None);
            assert!(book.expire(Instant::now()).is_empty());
        }
        assert_eq!(book.get(ADA).unwrap().0, PresenceStatus::Online);
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_is_online_while_any_device_is() {
        let mut book = LeaseBook::new(TIMEOUT);
        book.connect(ADA, PHONE, Instant::now());
        assert_eq!(book.connect(ADA, LAPTOP, Instant::now()), None);
        assert_eq!(
            book.disconnect(ADA, LAPTOP, true),
            None,
            "the phone is still there"
        );
        assert_eq!(book.get(ADA).unwrap().0, PresenceStatus::Online);
        let offline = book.disconnect(ADA, PHONE, true).unwrap();
        assert_eq!(
            offline.status,
            PresenceStatus::Offline,
            "a clean close of the last device: offline at once"
        );
        assert_eq!(book.online(), 0);
        book.connect(ADA, PHONE, Instant::now());
        book.connect(UserId(2), PHONE, Instant::now());
        assert_eq!(book.online(), 2);
    }

    fn change(status: PresenceStatus) -> Change {
        Change {
            user: ADA,
            status,
            last_active_at: Timestamp(0),
        }
    }

    #[test]
    fn bursts_net_out_before_they_are_published() {
        let mut outbox = Outbox::default();
        outbox.record(change(PresenceStatus::Online));
        assert_eq!(statuses(outbox.take()), vec![(ADA, PresenceStatus::Online)]);
        outbox.record(change(PresenceStatus::Offline));
        outbox.record(change(PresenceStatus::Online));
        assert!(
            outbox.take().is_empty(),
            "offline then online again: watchers see nothing"
        );
        outbox.record(change(PresenceStatus::Offline));
        assert_eq!(
            statuses(outbox.take()),
            vec![(ADA, PresenceStatus::Offline)]
        );
        outbox.record(change(PresenceStatus::Offline));
        assert!(outbox.take().is_empty(), "never offline twice");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_open_session_lapses_and_comes_back_with_its_next_frame() {
        let mut book = LeaseBook::new(TIMEOUT);
        book.connect(ADA, PHONE, Instant::now());
        tokio::time::advance(TIMEOUT + Duration::from_secs(1)).await;
        assert_eq!(
            statuses(book.expire(Instant::now())),
            vec![(ADA, PresenceStatus::Offline)]
        );
        let back = book.beat(ADA, PHONE, Instant::now()).unwrap();
        assert_eq!(back.status, PresenceStatus::Online);
    }
}
