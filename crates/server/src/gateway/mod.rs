//! The gateway: WebSocket sessions (`session.rs`), the node's registry of them that the
//! bus delivers into (`hub.rs`), and the batched persistence of device cursors
//! (`cursors.rs`).

mod ahead;
mod cursors;
mod hub;
mod session;

pub use cursors::CursorBook;
pub use hub::{Hub, Outbound};
pub use session::{frame_json, upgrade};
