//! A Confab cluster on one machine, from real parts: a fresh database on a PostgreSQL
//! server (`database.rs`), NATS servers clustered (`nats.rs`) and `confab
//! serve` processes (`node.rs`), each on free loopback ports and cleaned up on drop.
//! `confab-cluster` (the binary, behind `scripts/cluster`) starts one for people to try;
//! the multi-process tests start theirs from the same pieces.

pub mod database;
pub mod nats;
pub mod node;

/// A free TCP port on loopback (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}
