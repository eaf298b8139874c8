//! The in-process bus of a single node: publishing is handing the event to the local hub.

use super::{Bus, UserEvent};
use crate::gateway::Hub;
use confab_proto::UserId;
use std::sync::Arc;

/// A bus that reaches only this process.
pub struct LocalBus {
    hub: Arc<Hub>,
}

impl LocalBus {
    /// A bus delivering to `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Bus for LocalBus {
    fn publish(&self, user: UserId, event: UserEvent) {
        self.hub.deliver(user, &event);
    }
}
