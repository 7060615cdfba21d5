//! Listing cursors: where a user's listing resumes (the last task of the previous page),
//! bound to that user, opaque to clients. Every store encodes them by these rules.

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Task, MAX_USER_ID_CHARS};
use crate::ports::StoreError;
use crate::time;

/// The longest cursor issued: hex of JSON in which a user id character takes at most six
/// bytes (a control character escaped as `\u001f`), plus the other fields.
pub const MAX_CURSOR_CHARS: usize = 2 * (6 * MAX_USER_ID_CHARS + 256);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub id: String,
    pub user_id: String,
    pub created_at: String,
}

impl Cursor {
    /// The cursor of a page that ended with `task`.
    pub fn after(task: &Task) -> Self {
        Cursor {
            id: task.id.to_string(),
            user_id: task.user_id.clone(),
            created_at: time::format(&task.created_at),
        }
    }

    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a cursor always serialises");
        json.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The cursor `text` encodes, if this service issued it to `user_id`.
    pub fn decode(text: &str, user_id: &str) -> Result<Self, StoreError> {
        if !text.len().is_multiple_of(2) || text.len() > MAX_CURSOR_CHARS {
            return Err(StoreError::InvalidCursor);
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| StoreError::InvalidCursor)?;
        let cursor: Cursor =
            serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)?;
        // Another user's cursor would start this user's listing at an arbitrary place.
        if cursor.user_id != user_id
            || Uuid::parse_str(&cursor.id).is_err()
            || DateTime::parse_from_rfc3339(&cursor.created_at).is_err()
        {
            return Err(StoreError::InvalidCursor);
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cursor(user: &str) -> Cursor {
        Cursor {
            id: "0b9d8f0e-6a3e-4c43-9d43-7d3cfa0b2a11".into(),
            user_id: user.into(),
            created_at: "2026-11-27T10:00:00.000Z".into(),
        }
    }

    #[test]
    fn when_cursor_round_trips_should_give_the_same_position_for_the_caller() {
        let cursor = cursor("caller");
        assert_eq!(Cursor::decode(&cursor.encode(), "caller").unwrap(), cursor);
    }

    #[test]
    fn when_the_longest_user_ids_list_should_accept_their_own_cursors() {
        let longest = [
            "\u{1F600}".repeat(MAX_USER_ID_CHARS),
            "\u{1F}".repeat(MAX_USER_ID_CHARS),
        ];
        for user in longest {
            let cursor = cursor(&user);
            assert_eq!(Cursor::decode(&cursor.encode(), &user).unwrap(), cursor);
        }
    }

    #[test]
    fn when_another_user_presents_a_cursor_should_refuse_it() {
        let text = cursor("alice").encode();
        assert!(matches!(
            Cursor::decode(&text, "mallory"),
            Err(StoreError::InvalidCursor)
        ));
    }

    #[test]
    fn when_cursor_is_forged_should_be_refused() {
        let too_long = "00".repeat(MAX_CURSOR_CHARS);
        for text in ["", "abc", "zz", "7b7d", &too_long] {
            assert!(
                matches!(Cursor::decode(text, "u"), Err(StoreError::InvalidCursor)),
                "{text:?}"
            );
        }
    }

    fn any_cursor() -> impl Strategy<Value = Cursor> {
        (
            any::<u128>(),
            "\\PC{1,40}|[\\x00-\\x1f\"\\\\]{1,8}",
            0i64..=253_402_300_799_999,
        )
            .prop_map(|(id, user_id, millis)| Cursor {
                id: Uuid::from_u128(id).to_string(),
                user_id,
                created_at: time::format(&DateTime::from_timestamp_millis(millis).unwrap()),
            })
    }

    proptest! {
        #[test]
        fn when_any_cursor_round_trips_should_decode_to_itself(cursor in any_cursor()) {
            let text = cursor.encode();
            prop_assert!(text.len() <= MAX_CURSOR_CHARS);
            prop_assert_eq!(Cursor::decode(&text, &cursor.user_id).ok(), Some(cursor));
        }

        #[test]
        fn when_any_text_is_presented_should_decode_or_refuse_cleanly(
            text in "\\PC{0,64}|[0-9a-fA-F]{0,200}",
            user in "\\PC{0,8}",
        ) {
            match Cursor::decode(&text, &user) {
                Ok(cursor) => prop_assert_eq!(cursor.user_id, user),
                Err(err) => prop_assert!(matches!(err, StoreError::InvalidCursor)),
            }
        }

        #[test]
        fn when_an_issued_cursor_is_altered_should_never_panic(
            cursor in any_cursor(),
            at in any::<prop::sample::Index>(),
            replacement in "[0-9a-fA-Fz ]{0,2}",
        ) {
            let mut text = cursor.encode();
            let at = at.index(text.len());
            text.replace_range(at..(at + 2).min(text.len()), &replacement);
            if let Ok(decoded) = Cursor::decode(&text, &cursor.user_id) {
                prop_assert_eq!(decoded.user_id, cursor.user_id);
            }
        }
    }
}
