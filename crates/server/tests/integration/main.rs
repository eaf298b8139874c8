//! Integration tests: the real server on a free port, spoken to over real HTTP and
//! WebSocket, through the SDK or, for malformed input, a plain WebSocket client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod blocks;
mod changes;
mod cluster;
mod connections;
mod conversations;
mod copy;
mod deletion;
mod export;
mod files;
mod gateway;
mod harness;
mod messages;
mod openapi;
mod outage;
mod overload;
// Shared with the store tests, which use all of it.
#[allow(dead_code)]
#[path = "../support/postgres.rs"]
mod pg;
mod presence;
mod privacy;
mod push;
mod push_changes;
mod push_reading;
mod receipts;
mod search;
mod settings;
mod sync;
