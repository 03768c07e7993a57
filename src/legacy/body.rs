//! Request input in Django REST Framework's terms: the body (JSON, urlencoded form or multipart
//! form, chosen by `Content-Type` as DRF's parsers are), its fields coerced as DRF's serializer
//! fields coerce them before validating (`"This field is required."`, `"Not a valid string."`, a
//! number taken as its text), and integer query parameters.
//!
//! This is transport work only: what a valid value is (length, blank, uniqueness, …) is decided
//! by the services behind the GraphQL operations.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request};
use axum::response::Response;

use super::errors;
use super::pyjson::{self, PyValue};
use super::shapes::ValidationErrors;

pub const REQUIRED: &str = "This field is required.";
pub const NULL: &str = "This field may not be null.";

/// How DRF's serializer field for a body field turns the raw value into text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `CharField`: strings, and numbers as their text; anything else is refused.
    Text,
    /// `EmailField`: as `Text`, refused with the email message.
    Email,
    /// `SlugRelatedField`: any value is looked up by its Python `str()`.
    Slug,
}

/// One body field an operation reads.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
}

/// The body's fields as text, with what the transport found wrong with them.
///
/// A field with a problem reads as `""`: every operation of the table refuses a blank required
/// field (API.md), so running it still reports the *other* fields' problems at once, as DRF does,
/// and the transport's message then replaces the operation's for that field.
#[derive(Debug, Default)]
pub struct Fields {
    values: Vec<(&'static str, String)>,
    pub problems: ValidationErrors,
}

impl Fields {
    pub fn text(&self, name: &str) -> &str {
        self.values.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }
}

/// Reads the body of a POST as DRF's default parsers would; `Err` is the response to send.
pub async fn read(parts: &Parts, body: Body, limit: usize) -> Result<PyValue, Response> {
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => return Err(errors::payload_too_large(limit)),
    };
    // DRF parses nothing when there is no body: the data is an empty dictionary.
    if bytes.is_empty() {
        return Ok(PyValue::Dict(Vec::new()));
    }
    let content_type = content_type(&parts.headers);
    match parser_for(&content_type) {
        Some(Parser::Json) => {
            let text = pyjson::decode_utf8(&bytes).map_err(|e| json_error(e.0))?;
            pyjson::parse(text).map_err(|e| json_error(e.0))
        }
        Some(Parser::Form) => {
            let mut entries = Vec::new();
            for (name, value) in url::form_urlencoded::parse(&bytes) {
                set_last(&mut entries, name.into_owned(), PyValue::Str(value.into_owned()));
            }
            Ok(PyValue::Dict(entries))
        }
        Some(Parser::Multipart) => multipart(&parts.headers, bytes).await,
        None => Err(errors::unsupported_media_type(&content_type)),
    }
}

fn json_error(message: String) -> Response {
    errors::parse_error(format!("JSON parse error - {message}"))
}

fn content_type(headers: &HeaderMap) -> String {
    headers.get(CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parser {
    Json,
    Form,
    Multipart,
}

/// The first of DRF's parsers whose media type matches (`*` in the request matches anything,
/// parameters of the request are ignored, names are case-insensitive).
fn parser_for(content_type: &str) -> Option<Parser> {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (main, sub) = essence.split_once('/').unwrap_or((essence.as_str(), ""));
    [
        (Parser::Json, "application", "json"),
        (Parser::Form, "application", "x-www-form-urlencoded"),
        (Parser::Multipart, "multipart", "form-data"),
    ]
    .into_iter()
    .find(|(_, m, s)| (main == "*" || main == *m) && (sub == "*" || sub == *s))
    .map(|(parser, _, _)| parser)
}

/// A multipart form: text parts as strings, file parts as files. Like Django's parser it keeps
/// what it could read from a truncated body; a missing boundary is a parse error.
async fn multipart(headers: &HeaderMap, bytes: bytes::Bytes) -> Result<PyValue, Response> {
    let mut request = Request::new(Body::from(bytes));
    *request.headers_mut() = headers.clone();
    let mut form = match Multipart::from_request(request, &()).await {
        Ok(form) => form,
        Err(_) => {
            return Err(errors::parse_error("Multipart form parse error - Invalid boundary in multipart: None".into()));
        }
    };
    let mut entries: Vec<(String, PyValue)> = Vec::new();
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        let value = match field.file_name().map(str::to_owned) {
            Some(file_name) => PyValue::File(file_name),
            None => match field.bytes().await {
                Ok(data) => PyValue::Str(String::from_utf8_lossy(&data).into_owned()),
                Err(_) => break,
            },
        };
        set_last(&mut entries, name, value);
    }
    Ok(PyValue::Dict(entries))
}

/// A repeated form name reads as its last value (Django's `QueryDict.get`).
fn set_last(entries: &mut Vec<(String, PyValue)>, name: String, value: PyValue) {
    match entries.iter_mut().find(|(n, _)| *n == name) {
        Some(entry) => entry.1 = value,
        None => entries.push((name, value)),
    }
}

/// The declared fields of a parsed body. `Err` is DRF's answer to a body that is not an object.
pub fn fields(data: &PyValue, declared: &[Field]) -> Result<Fields, ValidationErrors> {
    let entries = match data {
        PyValue::Dict(entries) => entries,
        PyValue::Null => return Err(non_field("No data provided")),
        other => {
            return Err(non_field(&format!("Invalid data. Expected a dictionary, but got {}.", other.type_name())));
        }
    };
    let mut fields = Fields::default();
    for field in declared {
        let raw = entries.iter().find(|(name, _)| name == field.name).map(|(_, v)| v);
        match coerce(raw, field.kind) {
            Ok(text) => fields.values.push((field.name, text)),
            Err(message) => {
                fields.values.push((field.name, String::new()));
                fields.problems.add(field.name, [message.to_owned()]);
            }
        }
    }
    Ok(fields)
}

fn non_field(message: &str) -> ValidationErrors {
    let mut errors = ValidationErrors::default();
    errors.add("non_field_errors", [message.to_owned()]);
    errors
}

/// DRF's `to_internal_value` of one field, before its validators.
fn coerce(raw: Option<&PyValue>, kind: Kind) -> Result<String, &'static str> {
    let value = raw.ok_or(REQUIRED)?;
    match (value, kind) {
        (PyValue::Null, _) => Err(NULL),
        (other, Kind::Slug) => Ok(other.py_str()),
        (PyValue::Str(s), _) => Ok(s.clone()),
        (number @ (PyValue::Int(_) | PyValue::Float(_)), _) => Ok(number.py_str()),
        (_, Kind::Email) => Err(crate::domain::EMAIL_INVALID),
        (_, _) => Err("Not a valid string."),
    }
}

/// An optional `IntegerField(min_value=…)` query parameter, as DRF reads it: the last value of
/// the name; empty means absent; Python's `int()` syntax after dropping a `.0` tail.
pub fn integer_param(query: &[(String, String)], name: &str, min: i64) -> Result<Option<i64>, String> {
    let Some(raw) = query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()) else { return Ok(None) };
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.chars().count() > 1000 {
        return Err("String value too large.".to_owned());
    }
    let value = python_int(strip_decimal_zeros(raw)).ok_or_else(|| "A valid integer is required.".to_owned())?;
    if value < min {
        return Err(format!("Ensure this value is greater than or equal to {min}."));
    }
    Ok(Some(value))
}

/// DRF's `re.sub(r'\.0*\s*$', '', value)`.
fn strip_decimal_zeros(raw: &str) -> &str {
    let trimmed = raw.trim_end();
    let without_zeros = trimmed.trim_end_matches('0');
    match without_zeros.strip_suffix('.') {
        Some(head) => head,
        None => raw,
    }
}

/// Python's `int(text)`: surrounding whitespace, a sign, digits with single `_` between them.
/// Values beyond `i64` saturate (they only ever bound a query).
fn python_int(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let mut value: i64 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let digit = c.to_digit(10)? as i64;
        value = value.saturating_mul(10).saturating_add(digit);
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: [Field; 3] = [
        Field { name: "username", kind: Kind::Text },
        Field { name: "email", kind: Kind::Email },
        Field { name: "password", kind: Kind::Text },
    ];

    #[test]
    fn fields_are_coerced_as_drf_does() {
        let data = pyjson::parse(r#"{"username":["x"],"email":{"a":1},"password":true}"#).unwrap();
        let read = fields(&data, &REGISTER).unwrap();
        assert_eq!(
            serde_json::to_string(&read.problems).unwrap(),
            r#"{"username":["Not a valid string."],"email":["Enter a valid email address."],"password":["Not a valid string."]}"#
        );
        assert_eq!(read.text("username"), "");

        let data = pyjson::parse(r#"{"username":1.5,"email":null,"password":12345678.0}"#).unwrap();
        let read = fields(&data, &REGISTER).unwrap();
        assert_eq!((read.text("username"), read.text("password")), ("1.5", "12345678.0"));
        assert_eq!(serde_json::to_string(&read.problems).unwrap(), r#"{"email":["This field may not be null."]}"#);

        let slug = [Field { name: "recipient", kind: Kind::Slug }];
        let data = pyjson::parse(r#"{"recipient":{"a":[true]}}"#).unwrap();
        assert_eq!(super::fields(&data, &slug).unwrap().text("recipient"), "{'a': [True]}");
        let missing = super::fields(&PyValue::Dict(vec![]), &slug).unwrap();
        assert_eq!(serde_json::to_string(&missing.problems).unwrap(), r#"{"recipient":["This field is required."]}"#);
    }

    #[test]
    fn non_objects_are_refused_with_drf_wording() {
        let text =
            |v: &str| serde_json::to_string(&fields(&pyjson::parse(v).unwrap(), &REGISTER).unwrap_err()).unwrap();
        assert_eq!(text("[1,2]"), r#"{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}"#);
        assert_eq!(text("\"s\""), r#"{"non_field_errors":["Invalid data. Expected a dictionary, but got str."]}"#);
        assert_eq!(text("5"), r#"{"non_field_errors":["Invalid data. Expected a dictionary, but got int."]}"#);
        assert_eq!(text("null"), r#"{"non_field_errors":["No data provided"]}"#);
    }

    #[test]
    fn parsers_are_chosen_as_drf_does() {
        assert_eq!(parser_for("application/json"), Some(Parser::Json));
        assert_eq!(parser_for("APPLICATION/JSON; charset=utf-8"), Some(Parser::Json));
        assert_eq!(parser_for("*/*"), Some(Parser::Json));
        assert_eq!(parser_for("application/x-www-form-urlencoded"), Some(Parser::Form));
        assert_eq!(parser_for("multipart/form-data; boundary=x"), Some(Parser::Multipart));
        assert_eq!(parser_for("multipart/*"), Some(Parser::Multipart));
        assert_eq!(parser_for("text/plain"), None);
        assert_eq!(parser_for(""), None);
    }

    #[test]
    fn integer_params_follow_drf() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        assert_eq!(integer_param(&q(&[]), "limit", 1), Ok(None));
        assert_eq!(integer_param(&q(&[("limit", "")]), "limit", 1), Ok(None));
        assert_eq!(integer_param(&q(&[("limit", "5")]), "limit", 1), Ok(Some(5)));
        assert_eq!(integer_param(&q(&[("limit", "1"), ("limit", "7")]), "limit", 1), Ok(Some(7)));
        assert_eq!(integer_param(&q(&[("limit", " +1_000.00 ")]), "limit", 1), Ok(Some(1000)));
        assert_eq!(integer_param(&q(&[("limit", "abc")]), "limit", 1), Err("A valid integer is required.".into()));
        assert_eq!(integer_param(&q(&[("limit", "1.5")]), "limit", 1), Err("A valid integer is required.".into()));
        assert_eq!(integer_param(&q(&[("limit", "1__0")]), "limit", 1), Err("A valid integer is required.".into()));
        assert_eq!(
            integer_param(&q(&[("before", "0")]), "before", 1),
            Err("Ensure this value is greater than or equal to 1.".into())
        );
    }
}
