//! The open-loop messaging engine behind `direct` and `group`: one WebSocket session per
//! user (a reader task and a writer task each), a scheduler that hands message `i` to its
//! sender's writer at `start + i / rate` whatever happened to earlier messages, then a
//! bounded drain, and the totals.

use super::tracker::{MAX_MESSAGES, Slot, Totals, Tracker};
use crate::cli::{Common, LoadArgs};
use crate::probe::{CpuWindow, Process};
use crate::report::{Report, per_sec};
use crate::setup::{Login, Setup};
use crate::ws::{self, Inbound, Profile, SourceIps, Target, Ws};
use anyhow::{Context, bail};
use confab_proto::ConversationId;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

/// One write (a batch of frames) that takes longer than this ends the session.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames written before one flush.
const WRITE_BATCH: usize = 256;
/// How long stopped sessions get to finish before they are abandoned.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the drain checks whether everything came back.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// Refusals (`overloaded`, `rate_limited`) after which a send is given up, as a client
/// would after a minute or so of trying.
const MAX_REFUSALS: u8 = 10;
/// The wait after a refusal that names none.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// The longest wait before a retry, backoff included.
const MAX_RETRY: Duration = Duration::from_secs(15);

/// A conversation of the run.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// The session index of each member position.
    pub members: Vec<usize>,
}

/// One user's session: its login, and its conversation and position there.
#[derive(Debug, Clone)]
pub struct Member {
    /// The device to connect as.
    pub login: Login,
    /// Index of its conversation.
    pub conv: u32,
    /// Its position among the conversation's members.
    pub pos: u8,
}

/// What to run: the conversations, the sessions, and who sends message `i`.
#[derive(Debug)]
pub struct Plan {
    /// The conversations.
    pub conversations: Vec<Conversation>,
    /// The sessions, one per user.
    pub members: Vec<Member>,
    /// Conversation and sender of every message, in order.
    pub schedule: Vec<Slot>,
}

/// Counters one session's reader keeps.
#[derive(Debug, Default, Clone)]
struct ReaderStats {
    echoes: u64,
    foreign: u64,
    gaps: u64,
    heartbeat_acks: u64,
    unmatched_frames: u64,
    closed: Option<u16>,
    broken: bool,
}

/// A connected session's tasks.
struct Live {
    tx: mpsc::UnboundedSender<String>,
    reader: JoinHandle<ReaderStats>,
    writer: JoinHandle<bool>,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// The message totals.
    pub totals: Totals,
    /// Sessions connected.
    pub sessions: usize,
    /// Messages scheduled.
    pub scheduled: u64,
    /// Seconds the schedule was meant to take.
    pub duration: f64,
    /// Seconds the scheduler actually took to hand out every message.
    pub send_secs: f64,
    /// Seconds spent waiting for stragglers after sending.
    pub drain_secs: f64,
    /// Whether everything came back before the drain time ran out.
    pub settled: bool,
    /// A session's own messages coming back to it (expected; not deliveries).
    pub echoes: u64,
    /// Messages not sent by this run (system messages such as "group created").
    pub foreign: u64,
    /// Jumps in a session's `inbox_seq` (the contract promises none).
    pub inbox_gaps: u64,
    /// `heartbeat_ack` frames.
    pub heartbeat_acks: u64,
    /// Frames that did not parse, and acks or errors that named no message of ours.
    pub unmatched_frames: u64,
    /// Sessions the server closed, with their close codes.
    pub closed: Vec<u16>,
    /// Sessions whose socket failed.
    pub broken: usize,
    /// Server CPU, percent of one core, while sending and draining.
    pub server_cpu_pct: Option<f64>,
    /// Load generator CPU, percent of one core, likewise.
    pub loadgen_cpu_pct: Option<f64>,
}

/// How many messages `load` schedules.
pub fn message_count(load: &LoadArgs) -> anyhow::Result<u64> {
    let total = (load.rate * load.duration).ceil();
    if total > MAX_MESSAGES as f64 {
        bail!(
            "--rate x --duration is {total} messages; at most {MAX_MESSAGES} per run (shorten --duration)"
        );
    }
    Ok(total as u64)
}

/// Fails early when the sessions cannot fit in this process's file limit.
pub fn check_fd_room(sessions: usize) -> anyhow::Result<()> {
    let limit = crate::limits::nofile_soft();
    if (sessions as u64) + crate::limits::FD_RESERVE > limit {
        bail!(
            "{sessions} sessions need more open files than this process may hold ({limit}); \
             this scenario runs in one process: use fewer sessions"
        );
    }
    Ok(())
}

/// Connects every session, runs the schedule, drains, and stops.
pub async fn run(
    common: &Common,
    load: &LoadArgs,
    setup: &Setup,
    plan: Plan,
) -> anyhow::Result<Outcome> {
    let mut targets = Vec::new();
    for url in common.urls() {
        targets.push(Target::resolve(url).await?);
    }
    let Some(first) = targets.first() else {
        bail!("--url names no server");
    };
    let sources = SourceIps::for_sessions(common.source_ips, plan.members.len(), first)?;
    let tag: Arc<str> = setup.tag().into();
    let scheduled = plan.schedule.len() as u64;
    let members_per_conv: Vec<usize> = plan.conversations.iter().map(|c| c.members.len()).collect();
    let tracker = Arc::new(Tracker::new(load.rate, plan.schedule, &members_per_conv)?);
    let stop = CancellationToken::new();

    let ctx = SessionCtx {
        body: ws::body(load.body_chars as usize).into(),
        conversations: plan.conversations.iter().map(|c| c.id.0).collect(),
        targets: Arc::new(targets),
        sources,
        tracker: tracker.clone(),
        tag: tag.clone(),
        heartbeat: Duration::from_millis(load.heartbeat_ms),
        connect_timeout: Duration::from_millis(common.connect_timeout_ms),
        stop: stop.clone(),
    };
    let sessions = match connect_all(
        &ctx,
        setup,
        &plan.members,
        usize::from(common.connect_concurrency),
    )
    .await
    {
        Ok(sessions) => sessions,
        Err(e) => {
            stop.cancel();
            return Err(e);
        }
    };
    // Let the sessions' backlogs (system messages such as "group created") go by first.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let server_cpu = CpuWindow::server(common.server_pid);
    let own_cpu = CpuWindow::start(Process::Current);
    let body = ctx.body.clone();
    let txs: Vec<_> = sessions.iter().map(|s| s.tx.clone()).collect();
    tracker.begin(Instant::now() + Duration::from_millis(20));
    let send_secs = schedule(&tracker, &plan.conversations, &txs, &tag, &body, &stop).await;
    let drain_started = Instant::now();
    let drain_deadline = drain_started + Duration::from_secs_f64(load.drain);
    let mut settled = tracker.settled();
    while !settled && Instant::now() < drain_deadline {
        tokio::time::sleep(DRAIN_POLL).await;
        settled = tracker.settled();
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let server_cpu_pct = server_cpu.and_then(|w| w.percent());
    let loadgen_cpu_pct = own_cpu.percent();

    let end = Instant::now();
    let grace = Duration::from_secs_f64(load.drain);
    stop.cancel();
    drop(txs);
    let mut outcome = Outcome {
        totals: tracker.totals(end, grace),
        sessions: sessions.len(),
        scheduled,
        duration: load.duration,
        send_secs,
        drain_secs,
        settled,
        echoes: 0,
        foreign: 0,
        inbox_gaps: 0,
        heartbeat_acks: 0,
        unmatched_frames: 0,
        closed: Vec::new(),
        broken: 0,
        server_cpu_pct,
        loadgen_cpu_pct,
    };
    let finish = async {
        for live in sessions {
            drop(live.tx);
            if let Ok(stats) = live.reader.await {
                outcome.echoes += stats.echoes;
                outcome.foreign += stats.foreign;
                outcome.inbox_gaps += stats.gaps;
                outcome.heartbeat_acks += stats.heartbeat_acks;
                outcome.unmatched_frames += stats.unmatched_frames;
                outcome.closed.extend(stats.closed);
                outcome.broken += usize::from(stats.broken);
            }
            let _ = live.writer.await;
        }
    };
    if tokio::time::timeout(STOP_TIMEOUT, finish).await.is_err() {
        eprintln!("some sessions did not stop within {STOP_TIMEOUT:?}; their counters are missing");
    }
    // Again, now that the readers stopped: repeats they saw are in.
    outcome.totals = tracker.totals(end, grace);
    Ok(outcome)
}

/// What every session task needs.
#[derive(Clone)]
struct SessionCtx {
    /// The body of every message (to write a refused send again).
    body: Arc<str>,
    /// The id of each conversation, by index.
    conversations: Arc<[i64]>,
    /// The nodes; session `i` goes to `targets[i % len]`.
    targets: Arc<Vec<Target>>,
    sources: SourceIps,
    tracker: Arc<Tracker>,
    tag: Arc<str>,
    heartbeat: Duration,
    connect_timeout: Duration,
    stop: CancellationToken,
}

/// Opens one session per member, `concurrency` handshakes at a time; any failure fails
/// the run (a messaging run needs every member online).
async fn connect_all(
    ctx: &SessionCtx,
    setup: &Setup,
    members: &[Member],
    concurrency: usize,
) -> anyhow::Result<Vec<Live>> {
    let bar = setup.progress("sessions", members.len() as u64);
    let started = Instant::now();
    let mut opened = futures_util::stream::iter(members.iter().enumerate())
        .map(|(i, member)| {
            let ctx = ctx.clone();
            async move {
                let (ws, _welcome) = ws::connect(
                    &ctx.targets[i % ctx.targets.len()],
                    ctx.sources.for_index(i),
                    &member.login.token,
                    None,
                    Profile::Busy,
                    ctx.connect_timeout,
                )
                .await?;
                Ok::<_, ws::ConnectError>((i, start_session(ws, member, &ctx)))
            }
        })
        .buffer_unordered(concurrency.max(1));
    let mut sessions: Vec<Option<Live>> = std::iter::repeat_with(|| None)
        .take(members.len())
        .collect();
    while let Some(result) = opened.next().await {
        match result {
            Ok((i, live)) => {
                if let Some(slot) = sessions.get_mut(i) {
                    *slot = Some(live);
                }
                bar.inc(1);
            }
            Err(e) => {
                bar.abandon();
                let hints = ws::hints([e.kind().as_str()]).join("; ");
                bail!(
                    "a session could not connect: {e}{}{hints}",
                    if hints.is_empty() { "" } else { ". " }
                );
            }
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "sessions: {} open in {:.1} s",
        members.len(),
        started.elapsed().as_secs_f64()
    );
    sessions
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .context("a session went missing while connecting")
}

/// Splits an open socket into its reader and writer tasks.
fn start_session(ws: Ws, member: &Member, ctx: &SessionCtx) -> Live {
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let last_seq = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn(read_loop(
        stream,
        Reader {
            tracker: ctx.tracker.clone(),
            tag: ctx.tag.clone(),
            user: member.login.user_id.to_string(),
            conv: member.conv,
            conversation_id: ctx
                .conversations
                .get(member.conv as usize)
                .copied()
                .unwrap_or(0),
            body: ctx.body.clone(),
            pos: member.pos,
            last_seq: last_seq.clone(),
            tx: tx.clone(),
        },
        ctx.stop.clone(),
    ));
    let writer = tokio::spawn(write_loop(
        sink,
        rx,
        ctx.heartbeat,
        last_seq,
        ctx.stop.clone(),
    ));
    Live { tx, reader, writer }
}

/// What a reader needs to file what it gets.
struct Reader {
    tracker: Arc<Tracker>,
    tag: Arc<str>,
    user: String,
    conv: u32,
    conversation_id: i64,
    body: Arc<str>,
    pos: u8,
    last_seq: Arc<AtomicU64>,
    /// This session's writer, for sends written again after a refusal.
    tx: mpsc::UnboundedSender<String>,
}

impl Reader {
    /// Message `index` was refused for now: write it again (the same `client_msg_id`)
    /// after the wait the server asked for, doubled for each refusal before, and up to
    /// half as much again, so refused senders do not all come back at once; give up after
    /// [`MAX_REFUSALS`].
    fn retry_later(
        &self,
        index: u64,
        code: &str,
        retry_after_ms: Option<u64>,
        stop: &CancellationToken,
    ) {
        let Some(refusals) = self.tracker.refused(index, code, MAX_REFUSALS) else {
            return;
        };
        // Exponential backoff on top of the server's hint: a refused client that came back
        // at the hint every time would keep the node busy refusing.
        let wait = retry_after_ms
            .map_or(DEFAULT_RETRY, Duration::from_millis)
            .mul_f64(f64::from(1u32 << (refusals - 1).min(6)))
            .min(MAX_RETRY)
            .mul_f64(1.0 + 0.5 * rand::random::<f64>());
        let frame = ws::send_frame(&self.tag, index, self.conversation_id, &self.body);
        let (tracker, tx, stop) = (self.tracker.clone(), self.tx.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(wait) => {
                    tracker.retried(index, Instant::now());
                    if tx.send(frame).is_err() {
                        tracker.failed(index, "write");
                    }
                }
            }
        });
    }
}

async fn read_loop(
    mut stream: SplitStream<Ws>,
    reader: Reader,
    stop: CancellationToken,
) -> ReaderStats {
    let mut stats = ReaderStats::default();
    let mut last = 0u64;
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            next = stream.next() => next,
        };
        let now = Instant::now();
        let text = match next {
            None => {
                stats.broken = true;
                break;
            }
            Some(Err(_)) => {
                stats.broken = true;
                break;
            }
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(WsMessage::Close(frame))) => {
                stats.closed = Some(ws::close_code(frame.as_ref()));
                break;
            }
            Some(Ok(_)) => continue,
        };
        let Ok(frame) = Inbound::parse(&text) else {
            stats.unmatched_frames += 1;
            continue;
        };
        match frame.kind.as_ref() {
            "message" => {
                let seq = frame.inbox_seq.unwrap_or(0);
                if seq <= last {
                    reader.tracker.repeated();
                    continue;
                }
                if seq != last + 1 {
                    stats.gaps += 1;
                }
                last = seq;
                reader.last_seq.store(seq, Ordering::Relaxed);
                let Some(message) = frame.message() else {
                    continue;
                };
                match ws::message_index(&reader.tag, &message.client_msg_id) {
                    Some(_) if message.sender_id == reader.user => stats.echoes += 1,
                    Some(index) => reader
                        .tracker
                        .delivered(index, reader.conv, reader.pos, now),
                    None => stats.foreign += 1,
                }
            }
            "ack" => match frame.req.as_deref().and_then(|r| r.parse().ok()) {
                Some(index) => reader.tracker.ack(index, now),
                None => stats.unmatched_frames += 1,
            },
            "error" => match frame.req.as_deref().and_then(|r| r.parse().ok()) {
                Some(index) => match frame.code.as_deref().unwrap_or("unknown") {
                    code @ ("overloaded" | "rate_limited") => {
                        reader.retry_later(index, code, frame.retry_after_ms, &stop);
                    }
                    code => reader.tracker.failed(index, code),
                },
                None => stats.unmatched_frames += 1,
            },
            "heartbeat_ack" => stats.heartbeat_acks += 1,
            _ => {}
        }
    }
    stats
}

/// Writes what the scheduler hands over, in batches, plus a heartbeat (and the delivered
/// cursor, when it moved) every `heartbeat`. False when the socket failed.
async fn write_loop(
    mut sink: SplitSink<Ws, WsMessage>,
    mut rx: mpsc::UnboundedReceiver<String>,
    heartbeat: Duration,
    last_seq: Arc<AtomicU64>,
    stop: CancellationToken,
) -> bool {
    let offset = heartbeat.mul_f64(rand::random::<f64>());
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0u64;
    let ok = loop {
        let batch = tokio::select! {
            biased;
            _ = stop.cancelled() => break true,
            item = rx.recv() => match item {
                None => break true,
                Some(first) => {
                    let mut batch = vec![first];
                    while batch.len() < WRITE_BATCH {
                        match rx.try_recv() {
                            Ok(item) => batch.push(item),
                            Err(_) => break,
                        }
                    }
                    batch
                }
            },
            _ = ticks.tick() => {
                let mut batch = vec![ws::HEARTBEAT.to_owned()];
                let seq = last_seq.load(Ordering::Relaxed);
                if seq > reported {
                    batch.push(ws::delivered_frame(seq));
                    reported = seq;
                }
                batch
            }
        };
        let write = async {
            for text in batch {
                sink.feed(WsMessage::text(text)).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            _ => break false,
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    ok
}

/// Hands message `i` to its sender's writer at its due time, for every message; the
/// seconds it took. Never waits for the server: the writers' queues are unbounded (the
/// schedule bounds them).
async fn schedule(
    tracker: &Tracker,
    conversations: &[Conversation],
    txs: &[mpsc::UnboundedSender<String>],
    tag: &str,
    body: &str,
    stop: &CancellationToken,
) -> f64 {
    let started = Instant::now();
    for (index, slot) in (0u64..).zip(tracker.schedule()) {
        let due = tracker.due(index);
        if due > Instant::now() {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(due.into()) => {}
            }
        }
        let Some(conv) = conversations.get(slot.conv as usize) else {
            continue;
        };
        let Some(tx) = conv
            .members
            .get(usize::from(slot.sender))
            .and_then(|&s| txs.get(s))
        else {
            continue;
        };
        let frame = ws::send_frame(tag, index, conv.id.0, body);
        tracker.dispatched(index, Instant::now());
        if tx.send(frame).is_err() {
            tracker.failed(index, "write");
        }
    }
    started.elapsed().as_secs_f64()
}

/// The rows and fields `direct` and `group` share.
pub fn report(report: &mut Report, load: &LoadArgs, outcome: &Outcome) {
    let t = &outcome.totals;
    let span = |last: f64| last.max(outcome.duration);
    report.section("load");
    report.count("sessions", "sessions", outcome.sessions as u64);
    report.rate("offered_per_sec", "offered", load.rate);
    report.number("duration_secs", "duration", Some(outcome.duration), "s", 1);
    report.count("scheduled", "scheduled", outcome.scheduled);
    report.count("sent", "sent", t.dispatched);
    report.rate(
        "sent_per_sec",
        "sent",
        per_sec(t.dispatched, outcome.send_secs.max(outcome.duration)),
    );
    report.latency("send_lag", "scheduler lag", &t.send_lag);
    report.section("throughput");
    report.count("acked", "acked", t.acked);
    report.rate(
        "acked_per_sec",
        "acked",
        per_sec(t.acked, span(t.last_ack_secs)),
    );
    report.count("delivered", "delivered (every recipient)", t.complete);
    report.rate(
        "delivered_per_sec",
        "delivered",
        per_sec(t.complete, span(t.last_complete_secs)),
    );
    report.count("deliveries", "deliveries (per recipient)", t.deliveries);
    report.rate(
        "deliveries_per_sec",
        "deliveries",
        per_sec(t.deliveries, span(t.last_delivery_secs)),
    );
    // Answers, not messages: a send refused twice and then stored is three answers.
    let answers = t.acked + t.failed + t.overloaded;
    report.count("overloaded", "answered overloaded", t.overloaded);
    report.number(
        "overloaded_share",
        "share of answers that were overloaded",
        (answers > 0).then(|| t.overloaded as f64 / answers as f64),
        "",
        3,
    );
    report.count("retries", "sends written again after a refusal", t.retries);
    report.section("latency (from hand-over to the session)");
    report.latency("ack", "send->ack (of the attempt accepted)", &t.ack);
}

/// The correctness rows, always shown: lost and duplicated even when zero.
pub fn report_errors(report: &mut Report, load: &LoadArgs, outcome: &Outcome) {
    let t = &outcome.totals;
    report.section("correctness");
    report.count("lost", "lost", t.lost);
    report.count("duplicated", "duplicated", t.duplicated);
    report.count("pending", "in flight at the end", t.pending);
    report.count("unacked", "unacked", t.unacked);
    report.count("send_errors", "send errors", t.failed);
    report.set("send_error_codes", serde_json::json!(t.errors));
    report.count("misdelivered", "misdelivered", t.misdelivered);
    report.count("inbox_gaps", "inbox gaps", outcome.inbox_gaps);
    report.count(
        "sessions_closed",
        "sessions closed by server",
        outcome.closed.len() as u64,
    );
    report.count("sessions_broken", "sessions broken", outcome.broken as u64);
    report.set("close_codes", serde_json::json!(outcome.closed));
    report.set("echoes", serde_json::json!(outcome.echoes));
    report.set("other_messages", serde_json::json!(outcome.foreign));
    report.set(
        "unmatched_frames",
        serde_json::json!(outcome.unmatched_frames),
    );
    report.set("repeated_acks", serde_json::json!(t.repeated_acks));
    report.set("heartbeat_acks", serde_json::json!(outcome.heartbeat_acks));
    report.number("drain_secs", "drain", Some(outcome.drain_secs), "s", 2);
    report.section("cpu (% of one core, while sending)");
    report.number("server_cpu_pct", "server", outcome.server_cpu_pct, "%", 1);
    report.number(
        "loadgen_cpu_pct",
        "load generator",
        outcome.loadgen_cpu_pct,
        "%",
        1,
    );
    if !outcome.settled {
        report.note(format!(
            "the drain time ran out before every ack and delivery arrived (--drain {}): \
             {} sends unacked, {} deliveries of recently acked messages still in flight \
             (counted as lost only when acked more than the drain time before the end)",
            load.drain, t.unacked, t.pending
        ));
    }
    if t.unacked > 0 && outcome.settled {
        report.note(format!("{} sends were never answered", t.unacked));
    }
    if t.errors.contains_key("rate_limited") {
        report.note(
            "sends were rate limited: start the server with CONFAB_SEND_RATE_PER_SEC=1000000 CONFAB_SEND_BURST=1000000",
        );
    }
    if outcome
        .closed
        .contains(&confab_proto::limits::close::TOO_SLOW)
    {
        report.note("the server closed sessions with 4008 (too slow): the load generator could not keep up; their messages count as lost");
    }
    if t.send_lag.max_ms().is_some_and(|lag| lag > 100.0) {
        report.note("the scheduler fell behind by more than 100 ms: the load generator is saturated, so latencies include its own queueing");
    }
}
