//! Opaque cursors of the Relay connections: base64 of `kind:key`, so clients cannot depend on
//! their content and a cursor of one list is refused by another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::domain::messages;
use crate::error::{AppError, FieldErrors};

pub fn encode(kind: &str, key: &str) -> String {
    B64.encode(format!("{kind}:{key}"))
}

/// The key of a cursor of `kind`; anything else is `BAD_USER_INPUT` on `field`.
pub fn decode(kind: &str, field: &str, cursor: &str) -> Result<String, AppError> {
    B64.decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(kind).and_then(|rest| rest.strip_prefix(':')).map(str::to_owned))
        .ok_or_else(|| FieldErrors::single(field, messages::INVALID_CURSOR))
}

pub fn encode_id(kind: &str, id: i64) -> String {
    encode(kind, &id.to_string())
}

pub fn decode_id(kind: &str, field: &str, cursor: &str) -> Result<i64, AppError> {
    decode(kind, field, cursor)?.parse().map_err(|_| FieldErrors::single(field, messages::INVALID_CURSOR))
}

/// Decodes an optional cursor.
pub fn decode_id_opt(kind: &str, field: &str, cursor: Option<&str>) -> Result<Option<i64>, AppError> {
    cursor.map(|c| decode_id(kind, field, c)).transpose()
}
