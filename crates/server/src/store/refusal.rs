//! Why a store refuses a write that is well formed: the one vocabulary every backend uses,
//! with the words clients see and the code they match on, here and nowhere else.

use confab_proto::ErrorCode;

/// A domain rule the write broke, checked by the backend inside the write's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The caller was never a member of the conversation.
    #[error("you are not a member of this conversation")]
    NotMember,
    /// The caller left the conversation or was removed.
    #[error("you are no longer a member of this conversation")]
    NoLongerMember,
    /// The caller is not a member of the group they manage or leave.
    #[error("you are not a member of this group")]
    NotGroupMember,
    /// Only admins rename groups and add or remove others.
    #[error("only a group admin may do this")]
    NotAdmin,
    /// Direct conversations have no admin to rename or change them.
    #[error("direct conversations have no admin")]
    DirectHasNoAdmin,
    /// Nobody leaves a direct conversation.
    #[error("nobody can leave a direct conversation")]
    CannotLeaveDirect,
    /// The group has `GROUP_MAX_MEMBERS` members.
    #[error("a group holds at most 100 members, its creator included")]
    GroupFull,
    /// The username belongs to someone else.
    #[error("that username is taken")]
    UsernameTaken,
    /// The sender used this `client_msg_id` for a message in another conversation.
    #[error("this client_msg_id was already used for a message in another conversation")]
    ClientMsgIdUsedElsewhere,
    /// The creator made as many groups in the last 24 hours as they may.
    #[error("you made as many groups in the last 24 hours as anyone may; try again later")]
    GroupsPerDay,
    /// The sender's stored message text would pass their quota.
    #[error("your messages fill your storage quota; nothing more can be stored for you")]
    QuotaExceeded,
    /// A change's `target_seq` (or a reply's `reply_to`) names no message the caller can see
    /// here: none with that seq, a change rather than a message, or outside their membership.
    #[error("there is no message with that seq in this conversation that you can see")]
    NoSuchMessage,
    /// Only a message's sender edits it (and deletes it, but for a group's admins).
    #[error("only its sender may edit this message; in a group an admin may also delete it")]
    NotSender,
    /// System messages record what happened; they do not change.
    #[error("system messages cannot be edited, deleted for everyone or reacted to")]
    SystemMessage,
    /// A tombstone has no text to edit or react to.
    #[error("the message was deleted; it can no longer be edited or reacted to")]
    MessageDeleted,
    /// A block stands between the two people of a direct conversation (either way): it
    /// takes no writes. Worded so as not to say who blocked whom.
    #[error("messages cannot be sent in this conversation")]
    Blocked,
    /// The user has `REACTIONS_PER_USER_MAX` different reactions on the message.
    #[error("you have 20 reactions on this message, the most there may be; take one back first")]
    TooManyReactions,
}

impl Refusal {
    /// The contract's code for it.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::NotMember
            | Self::NoLongerMember
            | Self::NotGroupMember
            | Self::NotAdmin
            | Self::DirectHasNoAdmin
            | Self::CannotLeaveDirect
            | Self::NotSender
            | Self::SystemMessage
            | Self::MessageDeleted
            | Self::Blocked => ErrorCode::Forbidden,
            Self::NoSuchMessage => ErrorCode::NotFound,
            Self::TooManyReactions => ErrorCode::InvalidRequest,
            Self::GroupFull => ErrorCode::GroupFull,
            Self::UsernameTaken | Self::ClientMsgIdUsedElsewhere => ErrorCode::Conflict,
            Self::QuotaExceeded => ErrorCode::QuotaExceeded,
            Self::GroupsPerDay => ErrorCode::RateLimited,
        }
    }

    /// For a refusal that passes with time, roughly how long until it does.
    pub fn retry_after_ms(self) -> Option<u64> {
        match self {
            Self::GroupsPerDay => Some(60 * 60 * 1000),
            _ => None,
        }
    }
}
