//! `confab-cluster`: starts a local Confab cluster to try (`scripts/cluster` builds and runs
//! it): a fresh database on the local PostgreSQL, a NATS cluster and `confab serve` nodes,
//! and prints where they are. Ctrl-C stops everything and drops the database.

use anyhow::Context;
use clap::Parser;
use confab_cluster::database::Database;
use confab_cluster::nats::NatsCluster;
use confab_cluster::node::{Node, NodeConfig};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "A local Confab cluster: PostgreSQL, NATS and confab nodes")]
struct Args {
    /// Confab nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// NATS servers.
    #[arg(long, default_value_t = 3)]
    nats: usize,
    /// The `confab` binary [default: next to this one].
    #[arg(long)]
    confab: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match args.confab {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("no directory of this binary")?
            .join("confab"),
    };
    let database = Database::create("confab_cluster").await?;
    let nats = NatsCluster::start(args.nats).await?;
    let store = database.url();
    let bus = nats.urls();
    let mut nodes = Vec::new();
    for _ in 0..args.nodes {
        let node = Node::start(&NodeConfig {
            binary: &binary,
            store: &store,
            bus: &bus,
            env: &[],
        })
        .await?;
        nodes.push(node);
    }
    println!("database: {store}");
    println!("NATS:     {bus}   (logs in {})", nats.log_dir().display());
    for (i, node) in nodes.iter().enumerate() {
        println!("node {}:   {}   (open it in a browser)", i + 1, node.url);
    }
    println!("Ctrl-C stops the cluster and drops the database.");
    tokio::signal::ctrl_c().await?;
    for node in &mut nodes {
        node.begin_terminate();
    }
    for node in &mut nodes {
        node.wait();
    }
    Ok(())
}
