//! `sync`: one user gets N messages while offline (sent pipelined over another user's
//! session, every ack awaited), then connects from cursor 0. Reports the time until the
//! device has all N, the rate, and checks the backlog: strictly increasing `inbox_seq`
//! with no gaps, none lost, none repeated.

use crate::cli::SyncArgs;
use crate::probe::{CpuWindow, Process};
use crate::report::{Report, per_sec};
use crate::setup::Setup;
use crate::ws::{self, Inbound, Profile, Target, Ws};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// With no frame for this long, a phase gives up.
const STALL: Duration = Duration::from_secs(15);

/// What writing the backlog measured.
struct Fill {
    acked: u64,
    errors: BTreeMap<String, u64>,
    secs: f64,
}

/// What reading the backlog measured.
#[derive(Debug, Default)]
struct Drain {
    connect_secs: f64,
    first_secs: Option<f64>,
    all_secs: Option<f64>,
    received: u64,
    distinct: u64,
    duplicated: u64,
    out_of_order: u64,
    gaps: u64,
    foreign: u64,
    inbox_first: Option<u64>,
    inbox_last: Option<u64>,
    welcome_head: u64,
    stalled: bool,
}

/// Runs the scenario.
pub async fn run(args: &SyncArgs) -> anyhow::Result<Report> {
    let n = u64::from(args.backlog);
    let target = Target::resolve(args.common.first_url()).await?;
    let setup = Setup::for_run(&args.common).await?;
    let users = setup.users(2).await?;
    let (sender, receiver) = match users.as_slice() {
        [s, r] => (s.clone(), r.clone()),
        _ => bail!("setup made {} users, not 2", users.len()),
    };
    let conv = setup
        .directs(vec![(sender.clone(), receiver.user_id)])
        .await?
        .first()
        .copied()
        .context("no conversation was made")?;
    let timeout = Duration::from_millis(args.common.connect_timeout_ms);

    let (mut ws, _) = ws::connect(&target, None, &sender.token, None, Profile::Busy, timeout)
        .await
        .map_err(|e| anyhow::anyhow!("the sender could not connect: {e}"))?;
    let body = ws::body(args.body_chars as usize);
    let fill = fill(
        &mut ws,
        setup.tag(),
        conv.0,
        &body,
        n,
        u64::from(args.window),
        setup.progress("backlog", n),
    )
    .await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;

    let server_cpu = CpuWindow::server(args.common.server_pid);
    let own_cpu = CpuWindow::start(Process::Current);
    let drain = drain(&target, &receiver.token, setup.tag(), n, timeout).await?;
    let server_cpu_pct = server_cpu.and_then(|w| w.percent());
    let loadgen_cpu_pct = own_cpu.percent();

    let lost = n.saturating_sub(drain.distinct);
    let failed: u64 = fill.errors.values().sum();
    let order_ok = drain.out_of_order == 0
        && drain.gaps == 0
        && drain.duplicated == 0
        && (drain.received == 0 || drain.inbox_first == Some(1));
    let mut report = Report::new("sync");
    report.section("backlog");
    report.count("backlog", "backlog", n);
    report.count("backlog_acked", "acked while offline", fill.acked);
    report.number("fill_seconds", "written in", Some(fill.secs), "s", 3);
    report.rate("fill_per_sec", "written", per_sec(fill.acked, fill.secs));
    report.section("sync from cursor 0");
    report.number(
        "connect_ms",
        "connect (to welcome)",
        Some(drain.connect_secs * 1000.0),
        "ms",
        3,
    );
    report.number(
        "first_message_ms",
        "first message",
        drain.first_secs.map(|s| s * 1000.0),
        "ms",
        3,
    );
    let seconds = drain.all_secs;
    report.number("seconds", "all messages", seconds, "s", 4);
    report.rate(
        "per_sec",
        "rate",
        seconds.map_or(0.0, |s| per_sec(drain.distinct, s)),
    );
    report.count("received", "received", drain.distinct);
    report.section("correctness");
    report.count("lost", "lost", lost);
    report.count("duplicated", "duplicated", drain.duplicated);
    report.value(
        "order_ok",
        "order (inbox_seq 1, 2, ...)",
        serde_json::json!(order_ok),
        if order_ok {
            "ok".into()
        } else {
            "VIOLATED".into()
        },
    );
    report.count("out_of_order", "out of order", drain.out_of_order);
    report.count("inbox_gaps", "inbox gaps", drain.gaps);
    report.count("send_errors", "send errors", failed);
    report.set("send_error_codes", serde_json::json!(fill.errors));
    report.set("inbox_first", serde_json::json!(drain.inbox_first));
    report.set("inbox_last", serde_json::json!(drain.inbox_last));
    report.set("welcome_inbox_seq", serde_json::json!(drain.welcome_head));
    report.set("foreign", serde_json::json!(drain.foreign));
    report.section("cpu (% of one core, while syncing)");
    report.number("server_cpu_pct", "server", server_cpu_pct, "%", 1);
    report.number("loadgen_cpu_pct", "load generator", loadgen_cpu_pct, "%", 1);
    if drain.stalled {
        report.note(format!(
            "no frame for {} s: the sync stopped short",
            STALL.as_secs()
        ));
    }
    if failed > 0 {
        report.note("some backlog sends failed (see send_error_codes); rate_limited means: start the server with CONFAB_SEND_RATE_PER_SEC=1000000 CONFAB_SEND_BURST=1000000");
    }
    Ok(report)
}

/// Sends `n` messages with at most `window` unacknowledged, until every one is acked or
/// refused.
async fn fill(
    ws: &mut Ws,
    tag: &str,
    conversation_id: i64,
    body: &str,
    n: u64,
    window: u64,
    bar: indicatif::ProgressBar,
) -> anyhow::Result<Fill> {
    let started = Instant::now();
    let mut next = 0u64;
    let mut acked = 0u64;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut answered = 0u64;
    while answered < n {
        if next < n && next - answered < window {
            while next < n && next - answered < window {
                ws.feed(WsMessage::text(ws::send_frame(
                    tag,
                    next,
                    conversation_id,
                    body,
                )))
                .await
                .context("writing the backlog")?;
                next += 1;
            }
            ws.flush().await.context("writing the backlog")?;
        }
        let frame = match tokio::time::timeout(STALL, ws.next()).await {
            Err(_) => bail!(
                "no answer for {} s after {answered} of {n} sends",
                STALL.as_secs()
            ),
            Ok(None) => bail!("the sender's session ended after {answered} of {n} sends"),
            Ok(Some(frame)) => frame.context("reading the sender's session")?,
        };
        let WsMessage::Text(text) = frame else {
            if let WsMessage::Close(close) = frame {
                bail!(
                    "the server closed the sender's session ({})",
                    ws::close_code(close.as_ref())
                );
            }
            continue;
        };
        let Ok(frame) = Inbound::parse(&text) else {
            continue;
        };
        match frame.kind.as_ref() {
            "ack" => {
                acked += 1;
                answered += 1;
                bar.inc(1);
            }
            "error" if frame.req.is_some() => {
                *errors
                    .entry(frame.code.as_deref().unwrap_or("unknown").to_owned())
                    .or_default() += 1;
                answered += 1;
                bar.inc(1);
            }
            _ => {}
        }
    }
    bar.finish_and_clear();
    Ok(Fill {
        acked,
        errors,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// Connects the receiver from cursor 0 and reads until all `n` messages of this run came,
/// or nothing comes for [`STALL`].
async fn drain(
    target: &Target,
    token: &str,
    tag: &str,
    n: u64,
    timeout: Duration,
) -> anyhow::Result<Drain> {
    let mut out = Drain::default();
    let mut seen = vec![false; usize::try_from(n).unwrap_or(usize::MAX)];
    let started = Instant::now();
    let (mut ws, welcome) = ws::connect(target, None, token, Some(0), Profile::Busy, timeout)
        .await
        .map_err(|e| anyhow::anyhow!("the receiver could not connect: {e}"))?;
    out.connect_secs = started.elapsed().as_secs_f64();
    out.welcome_head = welcome.inbox_seq;
    let mut last = 0u64;
    let mut seqs = HashSet::new();
    while out.distinct < n {
        let frame = match tokio::time::timeout(STALL, ws.next()).await {
            Err(_) => {
                out.stalled = true;
                break;
            }
            Ok(None) => break,
            Ok(Some(frame)) => frame.context("reading the receiver's session")?,
        };
        let now = started.elapsed().as_secs_f64();
        let text = match frame {
            WsMessage::Text(text) => text,
            WsMessage::Close(_) => break,
            _ => continue,
        };
        let Ok(frame) = Inbound::parse(&text) else {
            continue;
        };
        if frame.kind != "message" {
            continue;
        }
        let seq = frame.inbox_seq.unwrap_or(0);
        out.received += 1;
        out.first_secs.get_or_insert(now);
        out.inbox_first.get_or_insert(seq);
        out.inbox_last = Some(seq);
        let index = frame
            .message()
            .and_then(|m| ws::message_index(tag, &m.client_msg_id))
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < seen.len());
        // A repeat of an inbox_seq or of a message is a duplicate; anything else that goes
        // backwards is out of order.
        if !seqs.insert(seq) || index.is_some_and(|i| seen[i]) {
            out.duplicated += 1;
            continue;
        }
        if seq < last {
            out.out_of_order += 1;
        } else {
            if seq != last + 1 {
                out.gaps += 1;
            }
            last = seq;
        }
        match index {
            Some(i) => {
                seen[i] = true;
                out.distinct += 1;
                if out.distinct == n {
                    out.all_secs = Some(now);
                }
            }
            None => out.foreign += 1,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    Ok(out)
}
