//! Group commit of sends. Concurrent `append`s wait in one queue; each of a few committers
//! takes everything queued (up to a bound) and stores it in one transaction of a fixed
//! number of statements, whatever the batch size: the reads pipelined in one round trip,
//! the rows computed here, the writes pipelined as `unnest` arrays in another. One commit,
//! one WAL flush, answers the whole batch.
//!
//! Locks are taken in the store's one order, the batch's conversations by id and then their
//! members' users rows by id, so batches of different committers and nodes never deadlock;
//! a batch PostgreSQL aborts anyway is run again from the start. A refused send (not a
//! member, over quota, ...) refuses only itself.

use super::rows::{self, MESSAGE_COLS, n, u};
use super::{ATTEMPTS, WRITE_DEADLINE, pg, pg_raced, push, search};
use crate::ids::Snowflake;
use crate::metrics::StoreMetrics;
use crate::store::{Appended, NewMessage, Refusal, StoreError, StoreResult};
use confab_proto::{Action, ConversationId, Message, MessageId, MessageKind, Timestamp, UserId};
use deadpool_postgres::{Pool, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_postgres::types::ToSql;

/// Sends waiting beyond this wait for room (backpressure to the callers), bounding memory.
const QUEUE: usize = 16_384;
/// A batch stops growing at this many bytes of text, bounding one statement's size.
const BATCH_BYTES: usize = 4 << 20;
/// Batches in flight at once (each committer's conversations are its own): while one waits
/// for its WAL flush the others go on.
const COMMITTERS: usize = 4;

struct Job {
    new: NewMessage,
    answer: oneshot::Sender<StoreResult<Appended>>,
}

/// The committers, each with its own queue. A conversation's sends always go to the same
/// one, so batches of different committers on this node touch different conversations and
/// do not wait for each other's locks (only for a user in conversations of both).
pub(super) struct Committer {
    queues: Vec<flume::Sender<Job>>,
}

impl Committer {
    /// Starts the committers on `pool`, each holding at most one connection at a time.
    pub fn start(pool: Pool, batch_max: usize, ids: Arc<Snowflake>, metrics: StoreMetrics) -> Self {
        let committers = COMMITTERS.min(pool.status().max_size.div_ceil(2)).max(1);
        let queues = (0..committers)
            .map(|_| {
                let (queue, jobs) = flume::bounded(QUEUE / committers);
                let (pool, ids, metrics) = (pool.clone(), ids.clone(), metrics.clone());
                let size = BatchSize::new(batch_max);
                tokio::spawn(async move {
                    while let Some(batch) = next_batch(&jobs, size.current()).await {
                        let (sends, started) = (batch.len(), Instant::now());
                        commit(&pool, &ids, &metrics, batch).await;
                        size.observe(sends, started.elapsed());
                    }
                });
                queue
            })
            .collect();
        Self { queues }
    }

    /// Stores `new` in the next batch; answers once that batch is committed, or with
    /// `Unavailable` when that takes longer than the write deadline, queueing included (a
    /// send given up before its batch starts is never stored; one given up later may be,
    /// and its retry finds it).
    pub async fn append(&self, new: NewMessage) -> StoreResult<Appended> {
        let stored = async {
            let (answer, answered) = oneshot::channel();
            let committer = new.conversation_id.0.unsigned_abs() as usize % self.queues.len();
            self.queues[committer]
                .send_async(Job { new, answer })
                .await
                .map_err(|_| StoreError::Closed)?;
            answered.await.map_err(|_| StoreError::Closed)?
        };
        tokio::time::timeout(WRITE_DEADLINE, stored)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "PostgreSQL did not store the send in time".into(),
                ))
            })
    }
}

/// A batch that takes longer than this to commit makes the next ones smaller.
const SLOW_BATCH: Duration = Duration::from_secs(1);

/// How many sends the next batch may take. A send costs one inbox row per member, so a
/// batch of sends to big groups holds a hundred times the rows of one of direct messages:
/// halved after a slow batch, grown back a quarter at a time after fast ones, a batch stays
/// one that commits well inside the write deadline.
struct BatchSize {
    max: usize,
    now: AtomicUsize,
}

impl BatchSize {
    fn new(max: usize) -> Self {
        Self {
            max,
            now: AtomicUsize::new(max),
        }
    }

    fn current(&self) -> usize {
        self.now.load(Ordering::Relaxed)
    }

    fn observe(&self, sends: usize, took: Duration) {
        let now = self.current();
        if took > SLOW_BATCH {
            self.now.store((sends / 2).clamp(1, now), Ordering::Relaxed);
        } else if took < SLOW_BATCH / 4 && sends >= now {
            self.now
                .store((now + now / 4 + 1).min(self.max), Ordering::Relaxed);
        }
    }
}

/// Waits for one job, then takes what else is queued, up to the bounds; `None` once every
/// sender is gone. Jobs whose caller stopped waiting are dropped unstored: nobody would be
/// told, and a retry of theirs is a new send.
async fn next_batch(jobs: &flume::Receiver<Job>, batch_max: usize) -> Option<Vec<Job>> {
    let first = jobs.recv_async().await.ok()?;
    let mut bytes = first.new.action.body().len();
    let mut batch = vec![first];
    while batch.len() < batch_max && bytes < BATCH_BYTES {
        let Ok(job) = jobs.try_recv() else { break };
        bytes += job.new.action.body().len();
        batch.push(job);
    }
    batch.retain(|job| !job.answer.is_closed());
    Some(batch)
}

/// Stores `batch` and answers every job in it.
async fn commit(pool: &Pool, ids: &Snowflake, metrics: &StoreMetrics, batch: Vec<Job>) {
    if batch.is_empty() {
        return;
    }
    let started = Instant::now();
    let sends: Vec<&NewMessage> = batch.iter().map(|job| &job.new).collect();
    let outcome = tokio::time::timeout(WRITE_DEADLINE, with_retries(pool, ids, &sends))
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "PostgreSQL did not commit a batch of sends in time".into(),
            ))
        });
    metrics.commit_batch_size.observe(batch.len() as f64);
    metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    match outcome {
        Ok(results) => {
            for (job, result) in batch.into_iter().zip(results) {
                let _ = job.answer.send(result);
            }
        }
        // A fault (not the database being away) may be one send's doing, something this
        // store did not foresee: each is tried alone, so it fails only its own send.
        Err(StoreError::Backend(why)) if batch.len() > 1 => {
            tracing::warn!(%why, sends = batch.len(), "a batch of sends failed; storing each alone");
            for job in batch {
                let alone =
                    tokio::time::timeout(WRITE_DEADLINE, with_retries(pool, ids, &[&job.new]))
                        .await
                        .unwrap_or_else(|_| {
                            Err(StoreError::Unavailable(
                                "PostgreSQL did not commit a send in time".into(),
                            ))
                        })
                        .and_then(|mut results| results.pop().unwrap_or(Err(StoreError::NotFound)));
                let _ = job.answer.send(alone);
            }
        }
        Err(e) => {
            for job in batch {
                let _ = job.answer.send(Err(e.clone()));
            }
        }
    }
}

async fn with_retries(
    pool: &Pool,
    ids: &Snowflake,
    sends: &[&NewMessage],
) -> StoreResult<Vec<StoreResult<Appended>>> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}")))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let tx = client.transaction().await.map_err(pg)?;
            let results = append_batch(&tx, ids, sends).await?;
            tx.commit().await.map_err(pg)?;
            Ok(results)
        }
        .await;
        match result {
            Err(StoreError::Contended(why)) if attempt < ATTEMPTS => {
                tracing::debug!(attempt, %why, "a batch of sends conflicted; retrying");
            }
            Err(StoreError::Contended(why)) => {
                return Err(StoreError::Backend(format!(
                    "a batch of sends conflicted {ATTEMPTS} times in a row: {why}"
                )));
            }
            other => return other,
        }
    }
}

/// The batch's reads, pipelined: sent in the order their futures are first polled (so
/// `futures_util::try_join!`, which polls in order, not tokio's, which rotates). Each runs
/// after the one before it has its locks, and in its own snapshot (READ COMMITTED), so it
/// sees every commit those locks waited for.
///
/// Sends stored before come first, outside the locks: one another node stores after this
/// look makes the insert fail on its unique key, and the batch starts over.
static STORED_BEFORE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {MESSAGE_COLS} FROM messages x
         JOIN unnest($1::bigint[], $2::text[]) AS r(sender_id, client_msg_id)
           ON x.sender_id = r.sender_id AND x.client_msg_id = r.client_msg_id COLLATE \"C\""
    )
});
const LOCK_CONVERSATIONS: &str = "SELECT id, last_seq, message_count, blocked FROM conversations
     WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE";
/// Every active member of the batch's conversations, and each sender's own row however
/// they stand.
const MEMBERS: &str = "SELECT conversation_id, user_id, left_seq FROM members
     WHERE conversation_id = ANY($1) AND (left_seq IS NULL OR user_id = ANY($2))";
/// The members' users rows, with what the batch moves: stored bytes and inbox heads. A row
/// lock waited for is returned as that writer committed it.
const LOCK_USERS: &str = "SELECT id, stored_bytes, inbox_head FROM users WHERE id IN (
       SELECT user_id FROM members WHERE conversation_id = ANY($1) AND left_seq IS NULL)
     ORDER BY id FOR NO KEY UPDATE";

/// The batch's writes.
const BUMP_CONVERSATIONS: &str = "UPDATE conversations c
     SET last_seq = r.last_seq, message_count = r.message_count, last_message_seq = r.last_seq,
       last_activity_at = $4
     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS r(id, last_seq, message_count)
     WHERE c.id = r.id";
const MOVE_USERS: &str =
    "UPDATE users u SET stored_bytes = r.stored_bytes, inbox_head = r.inbox_head
     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS r(id, stored_bytes, inbox_head)
     WHERE u.id = r.id";
/// Mentions go as comma-separated ids: arrays of arrays cannot be ragged.
const INSERT_MESSAGES: &str = "INSERT INTO messages (id, conversation_id, seq, sender_id,
       client_msg_id, kind, body, created_at, nth, reply_to, mentions)
     SELECT id, conversation_id, seq, sender_id, client_msg_id, 'text', body, $7, nth, reply_to,
       string_to_array(mentions, ',')::bigint[]
     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
                 $8::bigint[], $9::bigint[], $10::text[])
       AS r(id, conversation_id, seq, sender_id, client_msg_id, body, nth, reply_to, mentions)";
const INSERT_MENTIONS: &str = "INSERT INTO mentions (user_id, conversation_id, seq)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING";
const INSERT_INBOX: &str = "INSERT INTO inbox (user_id, inbox_seq, conversation_id, seq)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])";
/// One outbox row per (user, conversation) for users with a subscription; a row already
/// there takes the newer message.
const ENQUEUE_PUSHES: &str = "INSERT INTO push_outbox
       (user_id, conversation_id, inbox_seq, seq, sender_id, next_attempt_at)
     SELECT r.user_id, r.conversation_id, r.inbox_seq, r.seq, r.sender_id, $6
     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
       AS r(user_id, conversation_id, inbox_seq, seq, sender_id)
     WHERE EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.user_id = r.user_id)
     ON CONFLICT (user_id, conversation_id) DO UPDATE SET
       inbox_seq = excluded.inbox_seq, seq = excluded.seq, sender_id = excluded.sender_id
     RETURNING conversation_id";
/// Sending implies having read everything before.
const MARK_READ: &str = "UPDATE members m SET read_seq = r.seq
     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS r(conversation_id, user_id, seq)
     WHERE m.conversation_id = r.conversation_id AND m.user_id = r.user_id AND m.read_seq < r.seq";

/// Stores a batch inside `tx`: one result per send, in order.
async fn append_batch(
    tx: &Transaction<'_>,
    ids: &Snowflake,
    sends: &[&NewMessage],
) -> StoreResult<Vec<StoreResult<Appended>>> {
    let now = Timestamp::now();
    let mut conversations: Vec<i64> = sends.iter().map(|s| s.conversation_id.0).collect();
    conversations.sort_unstable();
    conversations.dedup();
    let senders: Vec<i64> = sends.iter().map(|s| s.sender_id.0).collect();
    let client_ids: Vec<&str> = sends.iter().map(|s| s.client_msg_id.as_str()).collect();

    let (stored, locked, members, users) = futures_util::try_join!(
        async { query(tx, &STORED_BEFORE, &[&senders, &client_ids]).await },
        async { query(tx, LOCK_CONVERSATIONS, &[&conversations]).await },
        async { query(tx, MEMBERS, &[&conversations, &senders]).await },
        async { query(tx, LOCK_USERS, &[&conversations]).await },
    )?;
    let mut state = State {
        last_seq: locked
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect(),
        stored: stored
            .iter()
            .map(|r| {
                let m = rows::message_at(r, 0);
                ((m.sender_id.0, m.client_msg_id.clone()), m)
            })
            .collect(),
        senders: HashMap::new(),
        active: BTreeMap::new(),
        users: HashMap::new(),
        blocked: locked
            .iter()
            .filter(|r| r.get::<_, bool>(3))
            .map(|r| r.get(0))
            .collect(),
    };
    for r in &members {
        let (conversation, user, left): (i64, i64, Option<i64>) = (r.get(0), r.get(1), r.get(2));
        state.senders.insert((conversation, user), left.is_none());
        if left.is_none() {
            state.active.entry(conversation).or_default().push(user);
        }
    }
    for users in state.active.values_mut() {
        users.sort_unstable();
    }
    for r in &users {
        state.users.insert(r.get(0), (r.get(1), r.get(2)));
    }

    let mut rows = Rows::default();
    let outcomes: Vec<Outcome> = sends
        .iter()
        .enumerate()
        .map(|(i, send)| state.decide(i, send, ids, now, &mut rows))
        .collect();
    if !rows.is_empty() {
        rows.write(tx, now).await?;
    }
    Ok(outcomes
        .iter()
        .map(|o| o.resolve(&outcomes, &rows.pushed))
        .collect())
}

async fn query(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<tokio_postgres::Row>> {
    let statement = tx.prepare_cached(sql).await.map_err(pg)?;
    tx.query(&statement, params).await.map_err(pg)
}

async fn execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = tx.prepare_cached(sql).await.map_err(pg)?;
    tx.execute(&statement, params).await.map_err(pg_raced)
}

/// What the batch read, updated as each send takes its seq and inbox entries.
struct State {
    /// conversation -> (last seq, messages so far).
    last_seq: HashMap<i64, (i64, i64)>,
    /// Messages already stored under a batch's (sender, client_msg_id).
    stored: HashMap<(i64, String), Message>,
    /// (conversation, user) -> is an active member; absent: never was.
    senders: HashMap<(i64, i64), bool>,
    /// Active members of each conversation, by id.
    active: BTreeMap<i64, Vec<i64>>,
    /// user -> (stored bytes, inbox head).
    users: HashMap<i64, (i64, i64)>,
    /// Direct conversations between a blocked pair: they take no writes.
    blocked: HashSet<i64>,
}

// One per send of a batch, in one Vec: boxing the large variant would cost an allocation
// per send for nothing.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Done(StoreResult<Appended>),
    /// A second send of the same (sender, client_msg_id) in this batch: the first's answer.
    SameAs(usize),
}

impl State {
    fn decide(
        &mut self,
        index: usize,
        send: &NewMessage,
        ids: &Snowflake,
        now: Timestamp,
        rows: &mut Rows,
    ) -> Outcome {
        let key = (send.sender_id.0, send.client_msg_id.clone());
        if let Some(&(first, conversation)) = rows.firsts.get(&key) {
            if conversation != send.conversation_id {
                return Outcome::Done(Err(Refusal::ClientMsgIdUsedElsewhere.into()));
            }
            return Outcome::SameAs(first);
        }
        rows.firsts
            .insert(key.clone(), (index, send.conversation_id));
        Outcome::Done(self.try_append(send, &key, ids, now, rows))
    }

    fn try_append(
        &mut self,
        send: &NewMessage,
        key: &(i64, String),
        ids: &Snowflake,
        now: Timestamp,
        rows: &mut Rows,
    ) -> StoreResult<Appended> {
        let conversation = send.conversation_id.0;
        if let Some(original) = self.stored.get(key) {
            if original.conversation_id != send.conversation_id {
                return Err(Refusal::ClientMsgIdUsedElsewhere.into());
            }
            return Ok(Appended {
                message: original.clone(),
                recipients: Vec::new(),
                duplicate: true,
                push_queued: false,
            });
        }
        let Some((last_seq, count)) = self.last_seq.get_mut(&conversation) else {
            return Err(StoreError::NotFound);
        };
        match self.senders.get(&(conversation, send.sender_id.0)) {
            None => return Err(Refusal::NotMember.into()),
            Some(false) => return Err(Refusal::NoLongerMember.into()),
            Some(true) => {}
        }
        if self.blocked.contains(&conversation) {
            return Err(Refusal::Blocked.into());
        }
        let Action::Text { body, reply_to } = &send.action else {
            return Err(StoreError::Backend(
                "a change reached group commit; changes are applied one at a time".into(),
            ));
        };
        let bytes = body.as_str().len() as i64;
        let (used, _) = self.users.entry(send.sender_id.0).or_default();
        if *used + bytes > n(send.quota_bytes) {
            return Err(Refusal::QuotaExceeded.into());
        }
        *used += bytes;
        rows.users
            .insert(send.sender_id.0, self.users[&send.sender_id.0]);
        *last_seq += 1;
        *count += 1;
        let (seq, nth) = (*last_seq, *count);
        let mut message = Message::new(
            MessageId(ids.next()),
            send.conversation_id,
            u(seq),
            send.sender_id,
            send.client_msg_id.clone(),
            MessageKind::Text,
            body.as_str().to_owned(),
            now,
        );
        message.reply_to = *reply_to;
        message.mentions = send.mentions.clone();
        let mut recipients = Vec::new();
        for &user in self.active.get(&conversation).into_iter().flatten() {
            let moved = self.users.entry(user).or_default();
            moved.1 += 1;
            rows.users.insert(user, *moved);
            recipients.push((UserId(user), u(moved.1)));
        }
        rows.add(&message, nth, &recipients);
        Ok(Appended {
            message,
            recipients,
            duplicate: false,
            push_queued: false,
        })
    }
}

impl Outcome {
    fn resolve(&self, all: &[Outcome], pushed: &[i64]) -> StoreResult<Appended> {
        match self {
            Outcome::Done(Ok(appended)) => {
                let mut appended = appended.clone();
                appended.push_queued = !appended.duplicate
                    && pushed
                        .binary_search(&appended.message.conversation_id.0)
                        .is_ok();
                Ok(appended)
            }
            Outcome::Done(Err(e)) => Err(e.clone()),
            Outcome::SameAs(first) => match &all[*first] {
                Outcome::Done(Ok(original)) => Ok(Appended {
                    message: original.message.clone(),
                    recipients: Vec::new(),
                    duplicate: true,
                    push_queued: false,
                }),
                other => other.resolve(all, pushed),
            },
        }
    }
}

/// The rows a batch writes, as the columns of its `unnest` statements.
#[derive(Default)]
struct Rows {
    /// (sender, client_msg_id) -> the send that first used it in this batch, and where.
    firsts: HashMap<(i64, String), (usize, ConversationId)>,
    /// conversation -> (last seq, messages so far).
    conversations: BTreeMap<i64, (i64, i64)>,
    /// user -> (stored bytes, inbox head) as the batch leaves them.
    users: BTreeMap<i64, (i64, i64)>,
    messages: MessageColumns,
    inbox: [Vec<i64>; 4],
    /// (user, conversation, seq) of each mention.
    mentions: [Vec<i64>; 3],
    /// (user, conversation) -> (inbox_seq, seq, sender): the newest message of each.
    outbox: BTreeMap<(i64, i64), (i64, i64, i64)>,
    /// (conversation, sender) -> the sender's newest seq there.
    read: BTreeMap<(i64, i64), i64>,
    /// Conversations where an outbox row was written.
    pushed: Vec<i64>,
}

#[derive(Default)]
struct MessageColumns {
    ids: Vec<i64>,
    conversations: Vec<i64>,
    seqs: Vec<i64>,
    senders: Vec<i64>,
    client_ids: Vec<String>,
    bodies: Vec<String>,
    nths: Vec<i64>,
    reply_tos: Vec<Option<i64>>,
    mentions: Vec<Option<String>>,
}

impl Rows {
    fn is_empty(&self) -> bool {
        self.messages.ids.is_empty()
    }

    fn add(&mut self, message: &Message, nth: i64, recipients: &[(UserId, u64)]) {
        let (conversation, sender, seq) = (
            message.conversation_id.0,
            message.sender_id.0,
            n(message.seq),
        );
        self.conversations.insert(conversation, (seq, nth));
        let m = &mut self.messages;
        m.ids.push(message.id.0);
        m.conversations.push(conversation);
        m.seqs.push(seq);
        m.senders.push(sender);
        m.client_ids.push(message.client_msg_id.clone());
        m.bodies.push(message.body.clone());
        m.nths.push(nth);
        m.reply_tos.push(message.reply_to.map(n));
        m.mentions.push((!message.mentions.is_empty()).then(|| {
            let ids: Vec<String> = message.mentions.iter().map(|u| u.0.to_string()).collect();
            ids.join(",")
        }));
        for user in &message.mentions {
            self.mentions[0].push(user.0);
            self.mentions[1].push(conversation);
            self.mentions[2].push(seq);
        }
        for &(user, inbox_seq) in recipients {
            let inbox_seq = n(inbox_seq);
            self.inbox[0].push(user.0);
            self.inbox[1].push(inbox_seq);
            self.inbox[2].push(conversation);
            self.inbox[3].push(seq);
            if user.0 != sender {
                self.outbox
                    .insert((user.0, conversation), (inbox_seq, seq, sender));
            }
        }
        self.read.insert((conversation, sender), seq);
    }

    /// The batch's writes, pipelined; then `pushed` holds where outbox rows were written.
    async fn write(&mut self, tx: &Transaction<'_>, now: Timestamp) -> StoreResult<()> {
        let mut conversations: [Vec<i64>; 3] = Default::default();
        for (&conversation, &(last_seq, count)) in &self.conversations {
            conversations[0].push(conversation);
            conversations[1].push(last_seq);
            conversations[2].push(count);
        }
        let mut users: [Vec<i64>; 3] = Default::default();
        for (&user, &(stored_bytes, inbox_head)) in &self.users {
            users[0].push(user);
            users[1].push(stored_bytes);
            users[2].push(inbox_head);
        }
        let mut outbox: [Vec<i64>; 5] = Default::default();
        for (&(user, conversation), &(inbox_seq, seq, sender)) in &self.outbox {
            for (column, value) in
                outbox
                    .iter_mut()
                    .zip([user, conversation, inbox_seq, seq, sender])
            {
                column.push(value);
            }
        }
        let mut read: [Vec<i64>; 3] = Default::default();
        for (&(conversation, user), &seq) in &self.read {
            read[0].push(conversation);
            read[1].push(user);
            read[2].push(seq);
        }
        let m = &self.messages;
        let i = &self.inbox;
        let o = &outbox;
        let c = &conversations;
        let mentioned = &self.mentions;
        let (_, _, _, _, pushed, _, _, _, _) = futures_util::try_join!(
            async { execute(tx, BUMP_CONVERSATIONS, &[&c[0], &c[1], &c[2], &now.0]).await },
            async { execute(tx, MOVE_USERS, &[&users[0], &users[1], &users[2]]).await },
            // A unique key taken meanwhile (another node stored this client_msg_id): the
            // batch starts over and then finds it stored.
            async {
                let columns: [&(dyn ToSql + Sync); 10] = [
                    &m.ids,
                    &m.conversations,
                    &m.seqs,
                    &m.senders,
                    &m.client_ids,
                    &m.bodies,
                    &now.0,
                    &m.nths,
                    &m.reply_tos,
                    &m.mentions,
                ];
                execute(tx, INSERT_MESSAGES, &columns).await
            },
            async { execute(tx, INSERT_INBOX, &[&i[0], &i[1], &i[2], &i[3]]).await },
            async {
                let columns: [&(dyn ToSql + Sync); 6] = [&o[0], &o[1], &o[2], &o[3], &o[4], &now.0];
                query(tx, ENQUEUE_PUSHES, &columns).await
            },
            async { execute(tx, MARK_READ, &[&read[0], &read[1], &read[2]]).await },
            async {
                let columns: [&(dyn ToSql + Sync); 4] = [&read[0], &read[1], &read[2], &now.0];
                execute(tx, push::REFRESH_ON_READ, &columns).await
            },
            async {
                if mentioned[0].is_empty() {
                    return Ok(0);
                }
                let columns: [&(dyn ToSql + Sync); 3] =
                    [&mentioned[0], &mentioned[1], &mentioned[2]];
                execute(tx, INSERT_MENTIONS, &columns).await
            },
            async {
                let columns: [&(dyn ToSql + Sync); 3] = [&m.ids, &m.conversations, &m.seqs];
                execute(tx, search::QUEUE, &columns).await
            },
        )?;
        self.pushed = pushed.iter().map(|r| r.get(0)).collect();
        self.pushed.sort_unstable();
        self.pushed.dedup();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_batches_shrink_the_next_and_fast_full_ones_grow_it_back() {
        let size = BatchSize::new(1024);
        size.observe(1024, Duration::from_secs(2));
        assert_eq!(size.current(), 512);
        size.observe(512, Duration::from_secs(2));
        assert_eq!(size.current(), 256);
        // A fast batch that was not full says nothing about a bigger one.
        size.observe(10, Duration::from_millis(10));
        assert_eq!(size.current(), 256);
        size.observe(256, Duration::from_millis(10));
        assert_eq!(size.current(), 321);
        for _ in 0..20 {
            let n = size.current();
            size.observe(n, Duration::from_millis(10));
        }
        assert_eq!(size.current(), 1024, "never past the configured most");
        for _ in 0..20 {
            size.observe(1, Duration::from_secs(2));
        }
        assert_eq!(size.current(), 1, "never below one");
    }
}
