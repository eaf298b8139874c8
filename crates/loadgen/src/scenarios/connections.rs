//! `connections`: N authenticated WebSocket sessions that heartbeat and idle. The sessions
//! are opened by one or more slices (in this process, or in worker processes when one
//! process may not hold them all); the server's resident memory is read before and after,
//! and its CPU (given its pid) during the hold.

use crate::cli::ConnectionsArgs;
use crate::probe::{self, CpuWindow, Process};
use crate::report::{Latency, Report, per_sec};
use crate::setup::Setup;
use crate::workers::Slice;
use crate::ws::{self, Inbound, Profile, SourceIps, Target, Ws};
use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

/// A heartbeat write that takes longer than this drops the session.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long stopped sessions get to close before they are abandoned.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// The exact `heartbeat_ack` frame the server sends (anything else is parsed).
const HEARTBEAT_ACK: &str = r#"{"type":"heartbeat_ack"}"#;

/// One process's share of the sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SliceSpec {
    /// The server's base URL.
    pub url: String,
    /// One token per session.
    pub tokens: Vec<String>,
    /// The global index of the first session (for source addresses).
    pub first_index: usize,
    /// Source addresses in use, run-wide.
    pub source_ips: u8,
    /// Heartbeat period.
    pub heartbeat_ms: u64,
    /// Handshakes in flight.
    pub connect_concurrency: usize,
    /// Limit on one connect.
    pub connect_timeout_ms: u64,
    /// Hard limit on the slice, opening and holding together.
    pub max_secs: u64,
    /// After this many failed connects, the rest are not tried.
    pub max_failures: u64,
    /// Show a progress bar (only the slice that runs in the parent does).
    pub progress: bool,
}

/// A slice's opening phase, reported as soon as every session is open or failed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Opened {
    /// Sessions that got `welcome`.
    pub connected: u64,
    /// Sessions that did not.
    pub failed: u64,
    /// Seconds from the first connect to the last answer.
    pub open_secs: f64,
    /// Seconds from the first connect to the last successful one.
    pub last_success_secs: f64,
    /// Failures by kind (see `ws::ConnectError::kind`).
    pub failures: BTreeMap<String, u64>,
    /// The first failure, in words.
    pub first_error: Option<String>,
}

/// A slice's results once stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SliceResult {
    /// The opening phase.
    pub opened: Opened,
    /// Heartbeats written while holding (after every session of the slice was open).
    pub heartbeats_sent: u64,
    /// `heartbeat_ack` frames read while holding.
    pub heartbeat_acks: u64,
    /// Sessions that ended before the stop, by cause.
    pub dropped: BTreeMap<String, u64>,
    /// Connect latency (TCP to `welcome`), V2-serialized and base64.
    pub connect_latency: String,
    /// CPU seconds this slice's process used while holding.
    pub hold_cpu_secs: Option<f64>,
    /// Wall seconds of the hold, from the slice's sessions being open to the stop (the
    /// parent's settle pause included).
    pub hold_secs: f64,
}

/// Counters the session tasks share.
#[derive(Debug, Default)]
struct Counters {
    heartbeats_sent: AtomicU64,
    heartbeat_acks: AtomicU64,
    dropped: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn dropped(&self, cause: String) {
        let mut dropped = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
        *dropped.entry(cause).or_default() += 1;
    }
}

/// Runs the scenario.
pub async fn run(args: &ConnectionsArgs) -> anyhow::Result<Report> {
    let common = &args.common;
    let n = args.sessions as usize;
    // Each session is a device, and a user keeps at most DEVICES_PER_USER of them.
    let fewest_users = n.div_ceil(confab_proto::limits::DEVICES_PER_USER);
    let users = (args.users.map_or(n.div_ceil(10), |u| u as usize)).clamp(fewest_users, n);
    let target = Target::resolve(common.first_url()).await?;
    let sources = SourceIps::for_sessions(common.source_ips, n, &target)?;
    let max_failures = args.max_failures.unwrap_or((n as u64 / 100).max(100));
    let per_process = crate::limits::sessions_per_process();
    let workers = args
        .workers
        .map_or_else(|| (n as u64).div_ceil(per_process), u64::from)
        .clamp(1, n as u64) as usize;
    if (n as u64).div_ceil(workers as u64) > per_process {
        eprintln!(
            "warning: {} sessions per process is more than this process may hold ({per_process}); expect emfile failures, or use more --workers",
            n.div_ceil(workers)
        );
    }

    let setup = Setup::new(
        common.first_url(),
        usize::from(common.setup_concurrency),
        common.quiet,
    )?;
    setup.check_server().await?;
    let first = setup.users(users).await?;
    let extra = setup
        .logins((users..n).map(|j| first[j % users].clone()).collect())
        .await?;
    let tokens: Vec<String> = first
        .into_iter()
        .chain(extra)
        .map(|login| login.token)
        .collect();

    let mut report = Report::new("connections");
    let rss_before = match probe::server_rss(setup.http(), &target.base).await {
        Ok(rss) => Some(rss),
        Err(e) => {
            report.note(format!("no server memory reading: {e:#}"));
            None
        }
    };

    // Slices: contiguous runs of sessions, one per process.
    let chunk = n.div_ceil(workers);
    let mut slices = Vec::with_capacity(workers);
    for (w, part) in tokens.chunks(chunk).enumerate() {
        let spec = SliceSpec {
            url: common.first_url().to_owned(),
            tokens: part.to_vec(),
            first_index: w * chunk,
            source_ips: sources.count(),
            heartbeat_ms: args.heartbeat_ms,
            connect_concurrency: usize::from(common.connect_concurrency).div_ceil(workers),
            connect_timeout_ms: common.connect_timeout_ms,
            max_secs: common.timeout_secs,
            max_failures: max_failures.div_ceil(workers as u64),
            progress: workers == 1 && !common.quiet,
        };
        slices.push(if workers == 1 {
            Slice::local(spec)
        } else {
            Slice::process(spec).await?
        });
    }
    // A small run may fill fewer slices than asked for.
    let workers = slices.len();
    let open_started = Instant::now();
    for slice in &mut slices {
        slice.opened().await?;
    }
    let open_wall = open_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    let rss_after = match probe::server_rss(setup.http(), &target.base).await {
        Ok(rss) => Some(rss),
        Err(e) => {
            report.note(format!("no server memory reading after opening: {e:#}"));
            None
        }
    };

    let server_cpu = CpuWindow::server(common.server_pid);
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let server_cpu_pct = server_cpu.and_then(|w| w.percent());

    let mut results = Vec::with_capacity(slices.len());
    for slice in slices {
        results.push(slice.finish().await?);
    }

    // Merge.
    let mut connect = Latency::new()?;
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
    let (mut connected, mut failed, mut beats, mut acks) = (0u64, 0u64, 0u64, 0u64);
    let mut open_secs: f64 = 0.0;
    let mut success_secs: f64 = 0.0;
    let mut hold_cpu = Some(0.0);
    let mut hold_secs: f64 = 0.0;
    let mut first_error = None;
    for r in &results {
        connected += r.opened.connected;
        failed += r.opened.failed;
        open_secs = open_secs.max(r.opened.open_secs);
        success_secs = success_secs.max(r.opened.last_success_secs);
        for (k, v) in &r.opened.failures {
            *failures.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &r.dropped {
            *dropped.entry(k.clone()).or_default() += v;
        }
        first_error = first_error.or_else(|| r.opened.first_error.clone());
        beats += r.heartbeats_sent;
        acks += r.heartbeat_acks;
        connect.merge(&Latency::decode(&r.connect_latency)?)?;
        hold_cpu = hold_cpu.zip(r.hold_cpu_secs).map(|(a, b)| a + b);
        hold_secs = hold_secs.max(r.hold_secs);
    }

    report.section("sessions");
    report.count("sessions", "sessions", n as u64);
    report.count("users", "users", users as u64);
    report.count("workers", "worker processes", workers as u64);
    report.count("source_ips", "source addresses", u64::from(sources.count()));
    report.count("connected", "connected", connected);
    report.count("failed", "failed", failed);
    report.set("failures", serde_json::json!(failures));
    for (kind, count) in &failures {
        report.count(
            &format!("failed_{kind}"),
            &format!("  failed: {kind}"),
            *count,
        );
    }
    report.number("connect_secs", "opening took", Some(open_secs), "s", 2);
    report.set("connect_wall_secs", serde_json::json!(open_wall));
    report.rate(
        "connect_per_sec",
        "connect rate",
        per_sec(connected, open_secs),
    );
    report.latency("connect", "connect (to welcome)", &connect);
    report.section("server memory");
    let delta = rss_before
        .zip(rss_after)
        .map(|(before, after)| after as f64 - before as f64);
    let per_session = delta
        .filter(|_| connected > 0)
        .map(|d| d / connected as f64);
    report.number(
        "server_rss_before_bytes",
        "before",
        rss_before.map(|v| v as f64),
        "bytes",
        0,
    );
    report.number(
        "server_rss_after_bytes",
        "after",
        rss_after.map(|v| v as f64),
        "bytes",
        0,
    );
    report.number(
        "server_rss_per_session_bytes",
        "per session",
        per_session,
        "bytes",
        0,
    );
    report.number(
        "server_rss_per_session_kib",
        "per session",
        per_session.map(|b| b / 1024.0),
        "KiB",
        2,
    );
    report.section("hold");
    report.number(
        "hold_secs",
        "held (settle included)",
        Some(hold_secs),
        "s",
        1,
    );
    report.count("heartbeat_ms", "heartbeat every (ms)", args.heartbeat_ms);
    report.count("heartbeats_sent", "heartbeats sent", beats);
    report.count("heartbeat_acks", "heartbeat acks", acks);
    report.rate(
        "heartbeats_per_sec",
        "heartbeats",
        per_sec(beats, hold_secs),
    );
    report.count(
        "dropped",
        "sessions dropped while holding",
        dropped.values().sum(),
    );
    report.set("drop_causes", serde_json::json!(dropped));
    report.number(
        "server_cpu_pct",
        "server cpu (% of a core)",
        server_cpu_pct,
        "%",
        2,
    );
    report.number(
        "loadgen_cpu_pct",
        "load generator cpu",
        hold_cpu.and_then(|cpu| crate::report::percent(cpu, hold_secs)),
        "%",
        2,
    );
    if let Some(e) = first_error {
        report.note(format!("first failure: {e}"));
    }
    for hint in ws::hints(failures.keys().map(String::as_str)) {
        report.note(hint);
    }
    if delta == Some(0.0) && connected >= 100 {
        report.note(
            "the server's memory reading did not move: it may be stale (a server out of file \
             descriptors cannot read /proc/self/statm and keeps its last value)",
        );
    }
    if delta.is_some_and(|d| d < 0.0) {
        report.note("the server's memory shrank while sessions opened: the per-session figure is meaningless here (use more sessions)");
    }
    Ok(report)
}

/// Opens the slice's sessions, reports them on `opened_tx`, holds them (heartbeating)
/// until `stop` or the slice's time limit, then closes them.
pub async fn run_slice(
    spec: SliceSpec,
    opened_tx: oneshot::Sender<Opened>,
    stop: CancellationToken,
) -> anyhow::Result<SliceResult> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(spec.max_secs);
    let target = Target::resolve(&spec.url).await?;
    let sources = SourceIps::new(spec.source_ips, &target)?;
    let heartbeat = Duration::from_millis(spec.heartbeat_ms);
    let connect_timeout = Duration::from_millis(spec.connect_timeout_ms);
    let counters = Arc::new(Counters::default());
    let gate = Arc::new(Semaphore::new(spec.connect_concurrency.max(1)));
    let failures = Arc::new(AtomicU64::new(0));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let bar = if spec.progress {
        indicatif::ProgressBar::with_draw_target(
            Some(spec.tokens.len() as u64),
            indicatif::ProgressDrawTarget::stderr(),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_message("sessions");

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let total = spec.tokens.len();
    for (i, token) in spec.tokens.into_iter().enumerate() {
        let (target, gate, counters, stop, done_tx, failures) = (
            target.clone(),
            gate.clone(),
            counters.clone(),
            stop.clone(),
            done_tx.clone(),
            failures.clone(),
        );
        let source = sources.for_index(spec.first_index + i);
        let max_failures = spec.max_failures;
        tasks.spawn(async move {
            let opened = {
                let Ok(_permit) = gate.acquire().await else {
                    return;
                };
                if failures.load(Ordering::Relaxed) >= max_failures {
                    let _ = done_tx.send(Err((
                        "skipped".to_owned(),
                        format!("not tried after {max_failures} failures (--max-failures)"),
                    )));
                    return;
                }
                let t0 = Instant::now();
                ws::connect(
                    &target,
                    source,
                    &token,
                    None,
                    Profile::Idle,
                    connect_timeout,
                )
                .await
                .map(|(ws, _)| (ws, t0.elapsed()))
            };
            drop(token);
            match opened {
                Ok((ws, took)) => {
                    let _ = done_tx.send(Ok(took));
                    drop(done_tx);
                    hold(ws, heartbeat, stop, &counters).await;
                }
                Err(e) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    let _ = done_tx.send(Err((e.kind(), e.to_string())));
                }
            }
        });
    }
    drop(done_tx);

    let mut opened = Opened::default();
    let mut connect = Latency::new()?;
    let mut answers = 0usize;
    while answers < total {
        let answer = tokio::select! {
            answer = done_rx.recv() => answer,
            _ = tokio::time::sleep_until(deadline) => None,
        };
        let Some(answer) = answer else { break };
        answers += 1;
        bar.inc(1);
        match answer {
            Ok(took) => {
                opened.connected += 1;
                opened.last_success_secs = started.elapsed().as_secs_f64();
                connect.record(took);
            }
            Err((kind, message)) => {
                opened.failed += 1;
                *opened.failures.entry(kind).or_default() += 1;
                opened.first_error.get_or_insert(message);
            }
        }
    }
    bar.finish_and_clear();
    opened.failed += (total - answers) as u64;
    opened.open_secs = started.elapsed().as_secs_f64();
    if spec.progress {
        eprintln!(
            "sessions: {} open, {} failed, in {:.1} s",
            opened.connected, opened.failed, opened.open_secs
        );
    }
    let _ = opened_tx.send(opened.clone());

    // The hold counts from here: heartbeats sent while others were still connecting are
    // left out.
    let beats_before = counters.heartbeats_sent.load(Ordering::Relaxed);
    let acks_before = counters.heartbeat_acks.load(Ordering::Relaxed);
    let cpu = CpuWindow::start(Process::Current);
    let hold_started = Instant::now();
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep_until(deadline) => stop.cancel(),
    }
    let hold_cpu_secs = cpu.finish().map(|(cpu, _)| cpu);
    let hold_secs = hold_started.elapsed().as_secs_f64();
    stop.cancel();
    if tokio::time::timeout(STOP_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tasks.abort_all();
    }
    let dropped = counters
        .dropped
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(SliceResult {
        opened,
        heartbeats_sent: counters.heartbeats_sent.load(Ordering::Relaxed) - beats_before,
        heartbeat_acks: counters.heartbeat_acks.load(Ordering::Relaxed) - acks_before,
        dropped,
        connect_latency: connect.encode().context("encoding the connect latency")?,
        hold_cpu_secs,
        hold_secs,
    })
}

/// Heartbeats every `heartbeat` (from a random phase, so sessions do not beat in step) and
/// reads what comes, until `stop`; counts a session the server ends as dropped.
async fn hold(mut ws: Ws, heartbeat: Duration, stop: CancellationToken, counters: &Counters) {
    let offset = heartbeat.mul_f64(rand::random::<f64>());
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return;
            }
            _ = ticks.tick() => {
                match tokio::time::timeout(WRITE_TIMEOUT, ws.send(WsMessage::text(ws::HEARTBEAT))).await {
                    Ok(Ok(())) => {
                        counters.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return counters.dropped("write".into()),
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    let is_ack = text.as_str() == HEARTBEAT_ACK
                        || Inbound::parse(&text).is_ok_and(|f| f.kind == "heartbeat_ack");
                    if is_ack {
                        counters.heartbeat_acks.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    return counters.dropped(format!("closed_{}", ws::close_code(frame.as_ref())));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => return counters.dropped("error".into()),
                None => return counters.dropped("eof".into()),
            },
        }
    }
}
