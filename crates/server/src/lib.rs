//! The Confab server.
//!
//! Layout, one responsibility per module:
//! - `config`: settings; `state`: the node's parts; `server`: `router` and `run`.
//! - `api`: HTTP handlers; `gateway`: WebSocket sessions and the node-local hub.
//! - `accounts`, `blocks`, `conversations`, `export`, `messaging`, `search`, `settings`: the
//!   services behind both transports.
//! - `store`: the storage seam and its backends; `bus`: the event seam and its backends.
//! - `web`: the embedded web client, served at `/`.
//! - `ids`, `metrics`, `ratelimit`, `error`, `names`: shared pieces (`names` and
//!   `push::check_endpoint` are public for the fuzz targets in `fuzz/`).

mod accounts;
mod addresses;
mod admission;
mod api;
mod blocks;
pub mod bus;
pub mod config;
mod connections;
mod conversations;
pub mod error;
mod export;
mod files;
pub mod gateway;
pub mod ids;
mod messaging;
pub mod metrics;
pub mod names;
pub mod nodes;
pub mod presence;
pub mod push;
mod ratelimit;
mod receipts;
pub mod registry;
mod search;
mod server;
mod settings;
mod state;
pub mod store;
mod typing;
mod web;

pub use config::Config;
pub use server::{router, run};
pub use state::{App, AppState, StartError};
