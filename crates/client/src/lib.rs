//! Confab client SDK.
