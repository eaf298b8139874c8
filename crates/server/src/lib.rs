//! Confab server.
