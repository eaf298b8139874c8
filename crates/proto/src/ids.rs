//! 64-bit ids, sent as decimal strings because JavaScript cannot hold them as numbers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

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
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
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
                let parse = |s: &str| s.parse().map(Self).map_err(|_| {
                    serde::de::Error::custom(concat!("expected a decimal ", stringify!($name)))
                });
                match Repr::deserialize(d)? {
                    Repr::Str(s) => parse(s),
                    Repr::Owned(s) => parse(&s),
                    Repr::Int(i) => Ok(Self(i)),
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
        assert!(serde_json::from_str::<UserId>("\"x\"").is_err());
    }
}
