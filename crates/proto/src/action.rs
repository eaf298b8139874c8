//! What a client writes to a conversation's log: a message, or a change to an earlier one
//! (edit, delete for everyone, delete for me, reaction added or removed). Every one is an
//! entry of the log with its own `seq` and `client_msg_id`, so changes sync to every device
//! in order, exactly once, by the same cursor as messages, and a retried change applies once.

use crate::limits::{MENTIONS_MAX, SEQ_MAX, USERNAME_MAX, USERNAME_MIN};
use crate::{Body, BodyError, MessageKind};
use serde::{Deserialize, Serialize};

/// A write to a conversation's log, checked: the only way to build one is
/// [`Action::parse`], so each kind has exactly the fields it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A new message, perhaps answering an earlier one.
    Text {
        /// The text.
        body: Body,
        /// The seq of the message it answers.
        reply_to: Option<u64>,
    },
    /// New text for one of the sender's messages.
    Edit {
        /// The message's seq.
        target: u64,
        /// Its new text.
        body: Body,
    },
    /// The message's text purged for everyone; a tombstone keeps its seq.
    Delete {
        /// The message's seq.
        target: u64,
    },
    /// The message hidden from every device of the sender of this action, and no one else.
    DeleteForMe {
        /// The message's seq.
        target: u64,
    },
    /// A reaction added.
    React {
        /// The message's seq.
        target: u64,
        /// Which.
        emoji: Emoji,
    },
    /// A reaction taken back.
    Unreact {
        /// The message's seq.
        target: u64,
        /// Which.
        emoji: Emoji,
    },
}

/// Why a write is not a valid [`Action`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The text is empty, too long, or holds U+0000.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A field the kind needs is missing, or one it does not take is there.
    #[error("{0}")]
    Shape(&'static str),
    /// Not one emoji.
    #[error(transparent)]
    Emoji(#[from] EmojiError),
}

impl Action {
    /// Checks a write as it comes from a client: `body` is the text (edits too), the emoji
    /// (reactions) or empty (deletes).
    pub fn parse(
        kind: MessageKind,
        body: String,
        target_seq: Option<u64>,
        reply_to: Option<u64>,
    ) -> Result<Self, ActionError> {
        let target = || match target_seq {
            Some(seq) if (1..=SEQ_MAX).contains(&seq) => Ok(seq),
            Some(_) => Err(ActionError::Shape("target_seq is a seq, 1 to 2^63 - 1")),
            None => Err(ActionError::Shape(
                "target_seq (the seq of the message to change) is required for this kind",
            )),
        };
        if reply_to.is_some() && kind != MessageKind::Text {
            return Err(ActionError::Shape("only a text message can be a reply"));
        }
        let no_body = |action: Action| {
            if body.is_empty() {
                Ok(action)
            } else {
                Err(ActionError::Shape("a delete has no body"))
            }
        };
        Ok(match kind {
            MessageKind::Text => {
                if target_seq.is_some() {
                    return Err(ActionError::Shape(
                        "a text message has no target_seq (reply_to names the message it answers)",
                    ));
                }
                if reply_to.is_some_and(|seq| !(1..=SEQ_MAX).contains(&seq)) {
                    return Err(ActionError::Shape("reply_to is a seq, 1 to 2^63 - 1"));
                }
                Action::Text {
                    body: Body::new(body)?,
                    reply_to,
                }
            }
            MessageKind::Edit => Action::Edit {
                target: target()?,
                body: Body::new(body)?,
            },
            MessageKind::Delete => no_body(Action::Delete { target: target()? })?,
            MessageKind::DeleteForMe => no_body(Action::DeleteForMe { target: target()? })?,
            MessageKind::React => Action::React {
                target: target()?,
                emoji: Emoji::new(body)?,
            },
            MessageKind::Unreact => Action::Unreact {
                target: target()?,
                emoji: Emoji::new(body)?,
            },
            MessageKind::System => {
                return Err(ActionError::Shape(
                    "system messages are written by the server",
                ));
            }
        })
    }

    /// The kind of log entry it becomes.
    pub fn kind(&self) -> MessageKind {
        match self {
            Action::Text { .. } => MessageKind::Text,
            Action::Edit { .. } => MessageKind::Edit,
            Action::Delete { .. } => MessageKind::Delete,
            Action::DeleteForMe { .. } => MessageKind::DeleteForMe,
            Action::React { .. } => MessageKind::React,
            Action::Unreact { .. } => MessageKind::Unreact,
        }
    }

    /// The message it changes; `None` for a new message.
    pub fn target(&self) -> Option<u64> {
        match self {
            Action::Text { .. } => None,
            Action::Edit { target, .. }
            | Action::Delete { target }
            | Action::DeleteForMe { target }
            | Action::React { target, .. }
            | Action::Unreact { target, .. } => Some(*target),
        }
    }

    /// The message a text answers.
    pub fn reply_to(&self) -> Option<u64> {
        match self {
            Action::Text { reply_to, .. } => *reply_to,
            _ => None,
        }
    }

    /// The entry's body: the text, the emoji, or nothing.
    pub fn body(&self) -> &str {
        match self {
            Action::Text { body, .. } | Action::Edit { body, .. } => body.as_str(),
            Action::React { emoji, .. } | Action::Unreact { emoji, .. } => emoji.as_str(),
            Action::Delete { .. } | Action::DeleteForMe { .. } => "",
        }
    }
}

/// One emoji: a single entry of Unicode's emoji list (the `emojis` crate's, Unicode 17),
/// skin tones and other sequences (flags, families) included, kept in the list's form: one
/// typed without the emoji presentation selector (`❤`) is the same reaction as with it
/// (`❤️`). Not text, not two emoji, not a bare skin-tone modifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Emoji(String);

/// Why a string is not an [`Emoji`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a reaction is one emoji (like 👍 or 👍🏽), nothing else")]
pub struct EmojiError;

impl Emoji {
    /// Checks that `text` is exactly one emoji, and spells it as the list does.
    pub fn new(text: String) -> Result<Self, EmojiError> {
        // The longest emoji sequences (families with skin tones) are under 40 bytes.
        if text.len() > 64 {
            return Err(EmojiError);
        }
        // The list knows each emoji's other spellings too (without U+FE0F, as many keyboards
        // type `❤`), and gives back its own.
        emojis::get(&text)
            .map(|known| Self(known.as_str().to_owned()))
            .ok_or(EmojiError)
    }

    /// The emoji.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Emoji {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Emoji::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The usernames a text mentions: `@name` where `name` has a username's characters
/// (`a-z 0-9 _ . -`, matched without regard to case) and the `@` does not follow one of them
/// (so an e-mail address is no mention). A `.` or `-` ending the name is punctuation, not
/// part of it ("thanks @ada."). Each name once, in order, at most [`MENTIONS_MAX`]; the
/// server keeps those that name a member of the conversation.
pub fn mentioned_usernames(text: &str) -> Vec<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut names: Vec<String> = Vec::new();
    let mut previous: Option<char> = None;
    for (at, c) in text.char_indices() {
        let starts = c == '@' && !previous.is_some_and(is_name);
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &text[at + 1..];
        let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
        let name = rest[..end]
            .trim_end_matches(['.', '-'])
            .to_ascii_lowercase();
        if (USERNAME_MIN..=USERNAME_MAX).contains(&name.len()) && !names.contains(&name) {
            names.push(name);
            if names.len() == MENTIONS_MAX {
                break;
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: MessageKind, body: &str, target: Option<u64>) -> Result<Action, ActionError> {
        Action::parse(kind, body.into(), target, None)
    }

    #[test]
    fn each_kind_takes_exactly_its_fields() {
        assert!(parse(MessageKind::Text, "hi", None).is_ok());
        assert!(parse(MessageKind::Text, "hi", Some(3)).is_err());
        assert!(Action::parse(MessageKind::Text, "hi".into(), None, Some(2)).is_ok());
        assert!(Action::parse(MessageKind::Text, "hi".into(), None, Some(0)).is_err());
        assert!(Action::parse(MessageKind::Text, "hi".into(), None, Some(u64::MAX)).is_err());
        assert!(parse(MessageKind::React, "👍", Some(1 << 63)).is_err());
        assert!(Action::parse(MessageKind::Edit, "hi".into(), Some(1), Some(2)).is_err());
        assert_eq!(
            parse(MessageKind::Edit, "new", Some(4)),
            Ok(Action::Edit {
                target: 4,
                body: Body::new("new".into()).unwrap()
            })
        );
        assert!(parse(MessageKind::Edit, "", Some(4)).is_err());
        assert!(parse(MessageKind::Edit, "new", None).is_err());
        assert!(parse(MessageKind::Delete, "", Some(0)).is_err());
        assert_eq!(
            parse(MessageKind::Delete, "", Some(4)),
            Ok(Action::Delete { target: 4 })
        );
        assert!(parse(MessageKind::Delete, "why", Some(4)).is_err());
        assert!(parse(MessageKind::DeleteForMe, "", Some(4)).is_ok());
        assert!(parse(MessageKind::React, "👍", Some(4)).is_ok());
        assert!(parse(MessageKind::Unreact, "👍", Some(4)).is_ok());
        assert!(parse(MessageKind::System, "{}", None).is_err());
    }

    #[test]
    fn a_reaction_is_one_emoji() {
        for ok in ["👍", "👍🏽", "❤️", "❤", "🇫🇷", "👨‍👩‍👧", "🏳️‍🌈", "😀"]
        {
            assert!(Emoji::new(ok.into()).is_ok(), "{ok} is an emoji");
        }
        assert_eq!(
            Emoji::new("❤".into()),
            Emoji::new("❤️".into()),
            "one reaction"
        );
        for bad in ["", "a", "👍👍", "👍 ", "🏽", "ok", "1", "#", ":+1:"] {
            assert!(Emoji::new(bad.into()).is_err(), "{bad:?} is not one emoji");
        }
        assert!(Emoji::new("👍".repeat(40)).is_err());
    }

    #[test]
    fn mentions_are_at_names_not_addresses() {
        assert_eq!(
            mentioned_usernames("@ada and @Bob_1: see ada@example.com, thanks @ada."),
            ["ada", "bob_1"]
        );
        assert_eq!(
            mentioned_usernames("@a.b-c. @x @toolong"),
            ["a.b-c", "toolong"]
        );
        assert_eq!(mentioned_usernames("(@ada) email@ada"), ["ada"]);
        assert!(mentioned_usernames("no one @ all").is_empty());
        let many: String = (0..200).map(|i| format!("@user{i} ")).collect();
        assert_eq!(mentioned_usernames(&many).len(), MENTIONS_MAX);
    }
}
