//! Opaque cursors of the Relay connections: base64 of `kind:key`, so clients cannot depend on
//! their content and a cursor of one list is refused by another.
//!
//! One type a kind: [`Cursor<K>`] over a [`Key`] (`Cursor<MessageKey>`, `Cursor<UserKey>`,
//! `Cursor<PostKey>`), async-graphql's [`CursorType`], so a connection's edges are written by
//! the type and an argument is read by [`Cursor::parse`]. A new kind is a key type and its
//! `impl Key` (`id_key!` for a kind keyed by one id).

use async_graphql::connection::CursorType;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::domain::messages;
use crate::error::{AppError, FieldErrors};

/// What a cursor of one kind holds, and how it is written after `kind:`.
pub trait Key: Sized {
    /// The kind's name: a cursor of another kind does not decode as this one.
    const KIND: &'static str;
    fn write(&self) -> String;
    fn read(text: &str) -> Option<Self>;
}

/// A cursor of the kind `K`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor<K>(pub K);

/// A string that is not a cursor of the expected kind.
#[derive(Debug, thiserror::Error)]
#[error("{}", messages::INVALID_CURSOR)]
pub struct InvalidCursor;

impl<K: Key> CursorType for Cursor<K> {
    type Error = InvalidCursor;

    fn decode_cursor(s: &str) -> Result<Self, InvalidCursor> {
        key_text(K::KIND, s).as_deref().and_then(K::read).map(Cursor).ok_or(InvalidCursor)
    }

    fn encode_cursor(&self) -> String {
        B64.encode(format!("{}:{}", K::KIND, self.0.write()))
    }
}

impl<K: Key> Cursor<K> {
    /// An optional cursor argument: its key, or `BAD_USER_INPUT` on `field`.
    pub fn parse(field: &str, value: Option<&str>) -> Result<Option<K>, AppError> {
        value
            .map(|text| {
                Self::decode_cursor(text).map(|c| c.0).map_err(|_| FieldErrors::single(field, messages::INVALID_CURSOR))
            })
            .transpose()
    }

    /// The cursor of `key`, as a string.
    pub fn of(key: K) -> String {
        Cursor(key).encode_cursor()
    }
}

/// The text after `kind:` of a cursor of that kind.
fn key_text(kind: &str, cursor: &str) -> Option<String> {
    let text = String::from_utf8(B64.decode(cursor).ok()?).ok()?;
    text.strip_prefix(kind)?.strip_prefix(':').map(str::to_owned)
}

/// A key that is one id: `kind:<id>`.
macro_rules! id_key {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name(pub i64);

        impl Key for $name {
            const KIND: &'static str = $kind;
            fn write(&self) -> String {
                self.0.to_string()
            }
            fn read(text: &str) -> Option<Self> {
                text.parse().ok().map($name)
            }
        }
    };
}

id_key!(
    /// A message, by id (`ChatRoom.messages`, the `after` of `messageAdded`, the legacy history's
    /// `?before=`).
    MessageKey,
    "message"
);

id_key!(
    /// A user, by id (`users`, `User.friends`).
    UserKey,
    "user"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_only_as_its_kind() {
        let message = Cursor::of(MessageKey(42));
        assert_eq!(Cursor::<MessageKey>::parse("after", Some(&message)).unwrap(), Some(MessageKey(42)));
        assert_eq!(Cursor::<MessageKey>::parse("after", None).unwrap(), None);
        for bad in [Cursor::of(UserKey(42)), B64.encode("message:x"), B64.encode("messages:1"), "%%%".to_owned()] {
            assert!(
                matches!(Cursor::<MessageKey>::parse("after", Some(&bad)), Err(AppError::Invalid(ref e)) if e.has("after")),
                "{bad}"
            );
        }
    }
}
