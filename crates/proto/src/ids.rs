//! 64-bit ids, sent as decimal strings because JavaScript cannot hold them as numbers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Not an id: ids are decimal digits, 0 to 9223372036854775807.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an id is decimal digits, 0 to 9223372036854775807")]
pub struct IdError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            /// Decimal digits only: no sign, no spaces, at most `i64::MAX`.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IdError);
                }
                s.parse().map(Self).map_err(|_| IdError)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Accept the contract's decimal string, and a plain integer from lenient clients.
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Repr<'a> {
                    Str(&'a str),
                    Owned(String),
                    Int(i64),
                }
                let wrong = || {
                    serde::de::Error::custom(concat!("expected a decimal ", stringify!($name)))
                };
                match Repr::deserialize(d)? {
                    Repr::Str(s) => s.parse().map_err(|_| wrong()),
                    Repr::Owned(s) => s.parse().map_err(|_| wrong()),
                    Repr::Int(i) if i >= 0 => Ok(Self(i)),
                    Repr::Int(_) => Err(wrong()),
                }
            }
        }
    };
}

id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// One logged-in device of a user; each login makes one.
    DeviceId
);
id_type!(
    /// A direct conversation or a group.
    ConversationId
);
id_type!(
    /// A message's globally unique, time-sortable id (Snowflake layout).
    MessageId
);
id_type!(
    /// A push subscription of one device.
    PushSubscriptionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strings_on_the_wire() {
        let id = UserId(9_007_199_254_740_993);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"9007199254740993\"");
        assert_eq!(
            serde_json::from_str::<UserId>("\"42\"").unwrap(),
            UserId(42)
        );
        assert_eq!(serde_json::from_str::<UserId>("42").unwrap(), UserId(42));
        let wrong = [
            r#""x""#,
            r#""-5""#,
            r#""+5""#,
            r#"" 5""#,
            "-5",
            r#""""#,
            r#""9223372036854775808""#,
        ];
        for json in wrong {
            assert!(
                serde_json::from_str::<UserId>(json).is_err(),
                "{json} was taken"
            );
        }
        assert_eq!("09223372036854775807".parse(), Ok(UserId(i64::MAX)));
    }
}
