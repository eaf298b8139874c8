//! A message body that is known to be within the contract's length limits.

use crate::limits::{BODY_MAX_CHARS, BODY_MIN_CHARS};
use serde::{Deserialize, Serialize};

/// Text of 1 to 99,999 Unicode scalar values, none of them U+0000. The only way to build
/// one is [`Body::new`], so a `Body` in hand has passed these checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Body(String);

/// Why a string is not a valid [`Body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// No characters at all.
    #[error("the message body is empty")]
    Empty,
    /// More than [`BODY_MAX_CHARS`] characters.
    #[error("the message body has more than 99999 characters")]
    TooLong,
    /// U+0000, which no store keeps in text (PostgreSQL refuses it).
    #[error("the message body contains U+0000 (NUL)")]
    Nul,
}

impl Body {
    /// Checks the length in characters (not bytes) and wraps the text.
    pub fn new(text: String) -> Result<Self, BodyError> {
        // A char is at most 4 bytes and at least 1, so the byte length bounds the count
        // and the exact count is needed only in between.
        if text.len() < BODY_MIN_CHARS {
            return Err(BodyError::Empty);
        }
        if text.len() > BODY_MAX_CHARS && text.chars().count() > BODY_MAX_CHARS {
            return Err(BodyError::TooLong);
        }
        if text.contains('\0') {
            return Err(BodyError::Nul);
        }
        Ok(Self(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Body::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_characters_not_bytes() {
        assert_eq!(Body::new(String::new()), Err(BodyError::Empty));
        assert!(Body::new("x".repeat(99_999)).is_ok());
        assert_eq!(Body::new("x".repeat(100_000)), Err(BodyError::TooLong));
        // 4-byte characters: 99,999 of them are 399,996 bytes and still fine.
        assert!(Body::new("😀".repeat(99_999)).is_ok());
        assert_eq!(Body::new("😀".repeat(100_000)), Err(BodyError::TooLong));
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(Body::new("a\0b".into()), Err(BodyError::Nul));
        assert!(
            Body::new("a\u{1}b".into()).is_ok(),
            "other controls are text"
        );
    }
}
