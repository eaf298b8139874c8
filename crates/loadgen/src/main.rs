//! `confab-loadgen`: the load generator of Confab. See `--help`, and `cli.rs` for the
//! options. Layout: `cli` (command line), `setup` (users and conversations over HTTP),
//! `ws` (a lean WebSocket session), `scenarios` (one module each), `workers` (splitting a
//! run over processes), `report` (histograms, table, JSON), `probe` (server memory and
//! CPU), `limits` (open files).

// The workspace warns on unwrap/expect outside tests; tests may use them.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod limits;
mod probe;
mod report;
mod scenarios;
mod setup;
mod workers;
mod ws;

use clap::Parser;
use cli::{Cli, Common, Scenario};
use report::Report;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    limits::raise_nofile();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Sessions still open (a timed-out run) are not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(Some(report)) => {
            report.print();
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen scenario within its time limit; `None` for the worker subcommand,
/// which reports on its own.
async fn run(cli: Cli) -> anyhow::Result<Option<Report>> {
    let (common, run): (&Common, _) = match &cli.scenario {
        Scenario::Worker => return workers::worker_main().await.map(|()| None),
        Scenario::Connections(args) => (&args.common, boxed(scenarios::connections::run(args))),
        Scenario::Direct(args) => (&args.common, boxed(scenarios::direct::run(args))),
        Scenario::Group(args) => (&args.common, boxed(scenarios::group::run(args))),
        Scenario::Sync(args) => (&args.common, boxed(scenarios::sync::run(args))),
    };
    let limit = Duration::from_secs(common.timeout_secs);
    match tokio::time::timeout(limit, run).await {
        Ok(report) => report.map(Some),
        Err(_) => anyhow::bail!(
            "the run took longer than --timeout-secs {} and was stopped",
            common.timeout_secs
        ),
    }
}

type BoxedRun<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Report>> + 'a>>;

fn boxed<'a>(f: impl std::future::Future<Output = anyhow::Result<Report>> + 'a) -> BoxedRun<'a> {
    Box::pin(f)
}
