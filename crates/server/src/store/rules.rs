//! The rules of changes to messages, the same for every backend: what the change's target
//! must be, and what the backend must still look up (inside its transaction) to decide.

use super::Refusal;
use confab_proto::limits::REACTIONS_PER_USER_MAX;
use confab_proto::{Action, MessageKind, UserId};

/// The message a change is about, as it stands.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its kind; a change is no target.
    pub kind: MessageKind,
    /// Who sent it.
    pub sender: UserId,
    /// Whether it is a tombstone.
    pub deleted: bool,
}

/// What a change still needs once its target passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Nothing: apply it.
    Apply,
    /// A delete of another's message: allowed to a group's admin only (`NotSender` else).
    IfGroupAdmin,
    /// A reaction: allowed while the actor's reactions on the message are fewer than
    /// [`REACTIONS_PER_USER_MAX`], or this one is among them ([`room_for_reaction`]).
    IfRoomForReaction,
}

/// Checks `action` by `actor` against its target, which the actor can see.
pub fn check(action: &Action, actor: UserId, target: Target) -> Result<Then, Refusal> {
    if target.kind.is_change() {
        return Err(Refusal::NoSuchMessage);
    }
    let on_text = |deleted_ok: bool| {
        if target.kind == MessageKind::System {
            Err(Refusal::SystemMessage)
        } else if target.deleted && !deleted_ok {
            Err(Refusal::MessageDeleted)
        } else {
            Ok(())
        }
    };
    match action {
        Action::Text { .. } => Err(Refusal::NoSuchMessage),
        Action::Edit { .. } => {
            on_text(false)?;
            if target.sender == actor {
                Ok(Then::Apply)
            } else {
                Err(Refusal::NotSender)
            }
        }
        Action::Delete { .. } => {
            on_text(true)?;
            Ok(if target.sender == actor {
                Then::Apply
            } else {
                Then::IfGroupAdmin
            })
        }
        Action::DeleteForMe { .. } => Ok(Then::Apply),
        Action::React { .. } => {
            on_text(false)?;
            Ok(Then::IfRoomForReaction)
        }
        Action::Unreact { .. } => {
            on_text(true)?;
            Ok(Then::Apply)
        }
    }
}

/// Whether a user with `mine` reactions on a message may add one more (`already`: this
/// emoji is among them, so nothing is added).
pub fn room_for_reaction(mine: usize, already: bool) -> Result<(), Refusal> {
    if already || mine < REACTIONS_PER_USER_MAX {
        Ok(())
    } else {
        Err(Refusal::TooManyReactions)
    }
}

/// Whether `action` changes what a notification of its target shows (its text, or whether
/// it is there at all), so a notification already shown must be replaced or closed.
/// Reactions do not: they are not pushed and leave the text as it was.
pub fn updates_notifications(action: &Action) -> bool {
    matches!(
        action,
        Action::Edit { .. } | Action::Delete { .. } | Action::DeleteForMe { .. }
    )
}
