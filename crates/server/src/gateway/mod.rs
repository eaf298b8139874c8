//! The gateway: WebSocket sessions and the node's registry of them that the bus delivers
//! into (`hub.rs`), and the batched persistence of device cursors (`cursors.rs`).
//!
//! A session is admitted (`upgrade.rs`), says hello (`handshake.rs`), then runs a reader
//! (`reader.rs`) and a writer (`writer.rs`, which keeps the inbox in order with `ahead.rs`);
//! `session.rs` ties them together and closes.

mod ahead;
mod cursors;
mod handshake;
mod hub;
mod reader;
mod session;
mod upgrade;
mod writer;

pub use cursors::CursorBook;
pub use hub::{Hub, Outbound};
pub use upgrade::upgrade;
