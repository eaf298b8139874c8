//! `confab`: the one binary. `confab serve` runs every role of a node in one process;
//! `confab config` prints a config file with every setting at its default; `confab
//! copy-store` moves an embedded store into PostgreSQL.

use anyhow::Context;
use clap::{Parser, Subcommand};
use confab_server::config::{Config, LogFormat};
use confab_server::{App, run};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Confab: a chat server. One binary on a laptop; the same code scaled out.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: the HTTP API and the WebSocket gateway, on the embedded store or
    /// PostgreSQL.
    Serve {
        /// TOML config file; settings there are overridden by CONFAB_* variables and flags.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// HTTP and WebSocket address [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Where the embedded store keeps its files [default: ./confab-data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The store: `sqlite` (the embedded one, the default) or a PostgreSQL URL,
        /// `postgres://user[:password]@host[:port]/database`.
        #[arg(long)]
        store: Option<String>,
        /// The cluster bus: NATS URLs separated by commas, `nats://a:4222,nats://b:4222`
        /// (with a PostgreSQL store the nodes share) [default: none, one node].
        #[arg(long)]
        bus: Option<String>,
    },
    /// Print a config file with every setting at its default.
    Config,
    /// Copy a stopped node's embedded store into an empty PostgreSQL database, to run on
    /// PostgreSQL from then on (`--store URL`). Everything moves: accounts, devices and
    /// their tokens, conversations, history, push subscriptions, the VAPID key.
    CopyStore {
        /// The embedded store's directory [default: ./confab-data].
        #[arg(long, default_value = "./confab-data")]
        data_dir: PathBuf,
        /// The PostgreSQL database, `postgres://user[:password]@host[:port]/database`;
        /// it must hold no users or conversations yet.
        #[arg(long)]
        to: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Config => {
            print!("{}", Config::example_toml());
            Ok(())
        }
        Command::CopyStore { data_dir, to } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(copy_store(&data_dir, &to)),
        Command::Serve {
            config,
            listen,
            data_dir,
            store,
            bus,
        } => {
            let mut overrides = Vec::new();
            if let Some(listen) = listen {
                overrides.push(("listen", listen.to_string()));
            }
            if let Some(dir) = data_dir {
                overrides.push(("data_dir", dir.display().to_string()));
            }
            if let Some(store) = store {
                overrides.push(("store", store));
            }
            if let Some(bus) = bus {
                overrides.push(("bus", bus));
            }
            let mut config = Config::load(config.as_deref(), &overrides)?;
            init_logs(config.log_format, &config.log);
            for name in Config::stray_env() {
                tracing::warn!(variable = %name, "this CONFAB_ variable names no setting and is ignored; `confab config` lists the settings");
            }
            fit_sessions_to_open_files(&mut config);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(serve(config))
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}; is another server using it? Set --listen")
        })?;
    let app = App::open(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            shutdown.cancel();
        }
    });
    run(listener, app, shutdown)
        .await
        .context("the server failed")
}

async fn copy_store(data_dir: &std::path::Path, to: &str) -> anyhow::Result<()> {
    let copied = confab_server::store::copy::sqlite_to_postgres(data_dir, to)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("nothing was copied")?;
    for (table, rows) in copied {
        println!("{table:>20}  {rows} rows");
    }
    println!("done: start the nodes with --store pointing at that database");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Each session holds one open file. Raises the soft limit to the hard one, and keeps
/// `max_sessions` under it, so a full node answers new clients with 503 instead of failing
/// to accept their connections.
fn fit_sessions_to_open_files(config: &mut Config) {
    /// Files kept for the store, HTTP requests and logs.
    const RESERVED: u64 = 256;
    let Ok(limit) = rlimit::increase_nofile_limit(u64::MAX) else {
        return;
    };
    let fits = usize::try_from(limit.saturating_sub(RESERVED))
        .unwrap_or(usize::MAX)
        .max(1);
    if config.max_sessions > fits {
        tracing::warn!(
            open_files = limit,
            max_sessions = fits,
            "max_sessions lowered to fit the open-file limit; raise `ulimit -n` for more"
        );
        config.max_sessions = fits;
    }
}

fn init_logs(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
}
