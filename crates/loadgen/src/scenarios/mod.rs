//! The scenarios, one module each, plus the open-loop messaging engine and its
//! bookkeeping that `direct` and `group` share.

pub mod connections;
pub mod direct;
pub mod group;
pub mod messaging;
pub mod sync;
pub mod tracker;
