//! The command line: one subcommand per scenario, each with the options it needs plus the
//! [`Common`] ones, and the hidden `worker` subcommand the parent process runs in children.

use clap::{Args, Parser, Subcommand};

/// Shown by `--help`: what the server must be started with for a meaningful run.
const LONG_ABOUT: &str = "\
Load generator for Confab. Creates its own users and conversations through the HTTP API,
runs one scenario for a bounded time, stops by itself, and prints a table followed by one
JSON line (always the last line of stdout). Progress and hints go to stderr.

The server under test needs rate limits high enough for the offered load and cheap
password hashing, or setup is throttled and slow. For example:

  CONFAB_SEND_RATE_PER_SEC=1000000 CONFAB_SEND_BURST=1000000 \\
  CONFAB_AUTH_RATE_PER_MIN=1000000 \\
  CONFAB_PASSWORD_HASH_MEMORY_KIB=64 CONFAB_PASSWORD_HASH_ITERATIONS=1 \\
  confab serve --listen 127.0.0.1:8080 --data-dir /tmp/confab-bench

For many sessions also raise the server's `ulimit -n` (each session is one open file) and
CONFAB_MAX_SESSIONS (default 100000). The `connections` scenario reads the server's memory
from GET /metrics (process_resident_memory_bytes); pass --server-pid to also get its CPU.

In `direct` and `group`, a send answered `overloaded` or `rate_limited` is written again
with the same client_msg_id after the server's retry_after_ms, doubled for each refusal
in a row and spread by up to half as much again, at most 10 times, as a client would. The
ack latency is that of the attempt the server accepted; delivery latency counts from the
first attempt.";

/// `confab-loadgen <scenario> --url http://HOST:PORT [options]`.
#[derive(Debug, Parser)]
#[command(name = "confab-loadgen", version, about, long_about = LONG_ABOUT)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N authenticated WebSocket sessions that heartbeat and idle; reports connect rate,
    /// failures and the server's memory (and CPU) per session.
    Connections(ConnectionsArgs),
    /// P pairs of online users, R direct messages per second in total (open loop); reports
    /// ack and delivery latency, throughput, lost and duplicated messages.
    Direct(DirectArgs),
    /// G groups of M online members, R group messages per second in total from random
    /// members; reports deliveries per second and latency to the last member.
    Group(GroupArgs),
    /// One user gets N messages while offline, then connects from cursor 0; reports how
    /// long until the device has all N.
    Sync(SyncArgs),
    /// Internal: one slice of a scenario in a child process (spec on stdin).
    #[command(hide = true)]
    Worker,
}

impl Common {
    /// Every URL given.
    pub fn urls(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect()
    }

    /// The first URL given: where accounts are set up.
    pub fn first_url(&self) -> &str {
        self.urls().first().copied().unwrap_or(&self.url)
    }
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The server's base URL, like http://127.0.0.1:8080; for a cluster, its nodes'
    /// separated by commas: accounts are set up through the first, and the `direct` and
    /// `group` sessions are spread over all of them in turn (`connections` and `sync` use
    /// the first).
    #[arg(long, env = "CONFAB_LOADGEN_URL")]
    pub url: String,
    /// Source addresses for WebSocket connections: 127.0.0.1 to 127.0.0.N, round robin.
    /// One address gives about 28,000 connections to one server port; the default uses
    /// one address per 20,000 sessions. Only for a loopback server.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=250))]
    pub source_ips: Option<u8>,
    /// HTTP requests in flight during setup (signups, logins, conversations).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub setup_concurrency: u16,
    /// WebSocket handshakes in flight while sessions open.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=8192))]
    pub connect_concurrency: u16,
    /// Give up on one WebSocket connect (TCP, upgrade, hello, welcome) after this long.
    #[arg(long, default_value_t = 15_000)]
    pub connect_timeout_ms: u64,
    /// The server's process id: its CPU use is read from /proc/PID/stat (Linux, same host).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Hard limit on the whole run, setup included, in seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// `connections`.
#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// WebSocket sessions to open; each is its own login (device).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub sessions: u32,
    /// Users the sessions are spread over; default: one per 10 sessions. At least one per
    /// 32 sessions, the devices a user may have.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub users: Option<u32>,
    /// How often each session sends `{"type":"heartbeat"}`.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub heartbeat_ms: u64,
    /// How long to hold the sessions open once all are open, in seconds.
    #[arg(long, default_value_t = 10)]
    pub hold: u64,
    /// Pause between the last session opening and the second memory reading, in ms.
    #[arg(long, default_value_t = 2_000)]
    pub settle_ms: u64,
    /// Stop trying to connect after this many failures (the rest count as failed, cause
    /// `skipped`); default: 1% of the sessions, at least 100.
    #[arg(long)]
    pub max_failures: Option<u64>,
    /// Worker processes to split the sessions over (each process may hold fewer than
    /// 20,000 open files here); default: as few as the file limit allows.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
}

/// Options shared by the open-loop messaging scenarios.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Messages per second offered in total, on a fixed schedule (open loop).
    #[arg(long, value_parser = parse_rate)]
    pub rate: f64,
    /// How long to send, in seconds.
    #[arg(long, value_parser = parse_duration)]
    pub duration: f64,
    /// After sending, wait at most this long for outstanding acks and deliveries, in seconds.
    #[arg(long, default_value_t = 5.0, value_parser = parse_duration)]
    pub drain: f64,
    /// Characters per message body (ASCII).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=99_999))]
    pub body_chars: u32,
    /// How often each session heartbeats (and reports its delivered cursor).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub heartbeat_ms: u64,
    /// Seed for the choice of senders (group); the same seed gives the same schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `direct`.
#[derive(Debug, Clone, Args)]
pub struct DirectArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Pairs of users; each user has one online session and each pair one conversation.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub pairs: u32,
}

/// `group`.
#[derive(Debug, Clone, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Groups; their members are distinct users.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub groups: u32,
    /// Members per group, the creator included (2 to 100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub members: u32,
}

/// `sync`.
#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub common: Common,
    /// Messages the offline user receives before connecting.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub backlog: u32,
    /// Sends in flight while the backlog is written.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub window: u32,
    /// Characters per message body (ASCII).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=99_999))]
    pub body_chars: u32,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 && v <= 10_000_000.0 {
        Ok(v)
    } else {
        Err("must be more than 0 and at most 10000000".into())
    }
}

fn parse_duration(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && (0.0..=86_400.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be 0 to 86400 seconds".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn scenarios_parse() {
        let cli = Cli::try_parse_from([
            "confab-loadgen",
            "direct",
            "--url",
            "http://127.0.0.1:1",
            "--pairs",
            "5",
            "--rate",
            "200",
            "--duration",
            "2",
        ])
        .unwrap();
        let Scenario::Direct(args) = cli.scenario else {
            panic!("not direct")
        };
        assert_eq!(args.pairs, 5);
        assert_eq!(args.load.rate, 200.0);
        assert_eq!(args.load.drain, 5.0);
        assert!(
            Cli::try_parse_from([
                "confab-loadgen",
                "group",
                "--url",
                "http://x",
                "--groups",
                "1",
                "--members",
                "101",
                "--rate",
                "1",
                "--duration",
                "1"
            ])
            .is_err()
        );
    }
}
