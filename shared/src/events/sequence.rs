//! The CloudEvents `sequence` of a task's events: its number as a fixed-width decimal
//! string, so that comparing two as text orders them as their numbers.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The position of an event among its task's events: 1, 2, ...
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sequence(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sequence must be {width} decimal digits, got {0:?}", width = Sequence::WIDTH)]
pub struct SequenceError(String);

impl Sequence {
    /// Digits of every sequence: enough for any `u64`, so no number needs more.
    pub const WIDTH: usize = 20;

    pub fn new(number: u64) -> Self {
        Sequence(number)
    }

    pub fn number(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.0, width = Sequence::WIDTH)
    }
}

impl FromStr for Sequence {
    type Err = SequenceError;

    /// Only the form `Display` writes: two spellings of one number would not compare
    /// as text the way their numbers do.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != Sequence::WIDTH || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SequenceError(text.to_owned()));
        }
        text.parse::<u64>()
            .map(Sequence)
            .map_err(|_| SequenceError(text.to_owned()))
    }
}

impl Serialize for Sequence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sequence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Sequence {
    fn schema_name() -> Cow<'static, str> {
        "Sequence".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The event's position among its task's events (1, 2, ...), as a zero-padded decimal of 20 digits: ordered as text as by number.",
            "type": "string",
            "pattern": "^[0-9]{20}$",
            "minLength": Sequence::WIDTH,
            "maxLength": Sequence::WIDTH,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn when_written_should_be_twenty_digits() {
        assert_eq!(Sequence::new(1).to_string(), "00000000000000000001");
        assert_eq!(Sequence::new(u64::MAX).to_string(), "18446744073709551615");
    }

    #[test]
    fn when_text_is_not_the_written_form_should_refuse_it() {
        for text in [
            "",
            "1",
            "0000000000000000001",
            "000000000000000000001",
            "+0000000000000000001",
            "0000000000000000000a",
            "18446744073709551616",
            "99999999999999999999",
            "٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠١",
        ] {
            assert!(text.parse::<Sequence>().is_err(), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn when_written_and_read_should_give_the_same_number(number: u64) {
            let text = Sequence::new(number).to_string();
            prop_assert_eq!(text.len(), Sequence::WIDTH);
            prop_assert_eq!(text.parse::<Sequence>(), Ok(Sequence::new(number)));
        }

        #[test]
        fn when_compared_as_text_should_order_as_the_numbers(a: u64, b: u64) {
            let (x, y) = (Sequence::new(a), Sequence::new(b));
            prop_assert_eq!(x.to_string().cmp(&y.to_string()), a.cmp(&b));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        }

        #[test]
        fn when_any_text_is_read_should_parse_or_refuse_cleanly(text in "\\PC{0,24}|[0-9]{18,22}") {
            if let Ok(sequence) = text.parse::<Sequence>() {
                prop_assert_eq!(sequence.to_string(), text);
            }
        }
    }
}
