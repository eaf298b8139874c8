//! What the writer thread keeps in memory between writes: each conversation's active
//! members, each user's inbox head, and who has push subscriptions. Both are only ever changed by the writer, so they
//! cannot go stale while it runs; a failed write or commit forgets everything, since the
//! rollback may have undone what was cached.

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Entries kept per map before it is emptied and refilled from disk: a bound on memory.
const MAX_ENTRIES: usize = 200_000;

/// The writer's cache; see the module docs.
#[derive(Default)]
pub struct Hot {
    members: RefCell<HashMap<i64, Rc<[i64]>>>,
    inbox_heads: RefCell<HashMap<i64, u64>>,
    push_users: RefCell<HashMap<i64, bool>>,
}

impl Hot {
    /// The active members of a conversation, from memory or disk.
    pub fn members(&self, conn: &Connection, conversation: i64) -> Result<Rc<[i64]>> {
        if let Some(found) = self.members.borrow().get(&conversation) {
            return Ok(found.clone());
        }
        let loaded: Rc<[i64]> = conn
            .prepare_cached(
                "SELECT user_id FROM members WHERE conversation_id = ?1 AND left_seq IS NULL",
            )?
            .query_map([conversation], |r| r.get(0))?
            .collect::<Result<Vec<i64>>>()?
            .into();
        let mut members = self.members.borrow_mut();
        if members.len() >= MAX_ENTRIES {
            members.clear();
        }
        members.insert(conversation, loaded.clone());
        Ok(loaded)
    }

    /// Called by every write that changes who is an active member.
    pub fn forget_members(&self, conversation: i64) {
        self.members.borrow_mut().remove(&conversation);
    }

    /// Takes the next inbox seq of `user` (the head is derived from the inbox table).
    pub fn next_inbox_seq(&self, conn: &Connection, user: i64) -> Result<u64> {
        let mut heads = self.inbox_heads.borrow_mut();
        let head = match heads.get(&user) {
            Some(&head) => head,
            None => {
                if heads.len() >= MAX_ENTRIES {
                    heads.clear();
                }
                inbox_head(conn, user)?
            }
        };
        heads.insert(user, head + 1);
        Ok(head + 1)
    }

    /// Does `user` have a push subscription (so their messages go to the push outbox)?
    pub fn has_push(&self, conn: &Connection, user: i64) -> Result<bool> {
        if let Some(&found) = self.push_users.borrow().get(&user) {
            return Ok(found);
        }
        let found = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM push_subscriptions WHERE user_id = ?1)")?
            .query_row([user], |r| r.get(0))?;
        let mut users = self.push_users.borrow_mut();
        if users.len() >= MAX_ENTRIES {
            users.clear();
        }
        users.insert(user, found);
        Ok(found)
    }

    /// Called by every write that adds or removes a user's push subscriptions.
    pub fn forget_push_user(&self, user: i64) {
        self.push_users.borrow_mut().remove(&user);
    }

    /// Drops everything: after a rolled-back write or a failed commit.
    pub fn forget_all(&self) {
        self.members.borrow_mut().clear();
        self.inbox_heads.borrow_mut().clear();
        self.push_users.borrow_mut().clear();
    }
}

/// A user's inbox head: the seq of their newest inbox entry, 0 for none.
pub fn inbox_head(conn: &Connection, user: i64) -> Result<u64> {
    Ok(conn
        .prepare_cached("SELECT max(inbox_seq) FROM inbox WHERE user_id = ?1")?
        .query_row([user], |r| r.get::<_, Option<u64>>(0))
        .optional()?
        .flatten()
        .unwrap_or(0))
}
