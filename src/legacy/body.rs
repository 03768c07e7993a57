//! Request input in Django REST Framework's terms: the body (JSON, urlencoded form or multipart
//! form, chosen by `Content-Type` as DRF's parsers are), its fields coerced as DRF's serializer
//! fields coerce them before validating (`"This field is required."`, `"Not a valid string."`, a
//! number taken as its text).
//!
//! This is transport work only: what a valid value is (length, blank, uniqueness, …) is decided
//! by the services behind the GraphQL operations.
//!
//! Bounded before any work that grows with the body: at most [`MAX_BODY_BYTES`] are read, and a
//! form with more than [`MAX_FIELDS`] fields or [`MAX_FILES`] files is refused as Django refuses
//! it (`TooManyFieldsSent`, `TooManyFilesSent`: its `handler400`, DRF's `bad_request`).

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request};
use axum::response::Response;

use super::errors;
use super::pyjson::{self, DictBuilder, PyValue};
use crate::domain::messages;
use crate::error::FieldErrors;

/// The largest body a legacy endpoint reads (the server's `max_body_bytes` when smaller). Every
/// legacy body is a few short text fields (the longest, a post, is under 130 KB even with every
/// character `\u`-escaped) and file parts are discarded: nothing legitimate comes near 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Django's `DATA_UPLOAD_MAX_NUMBER_FIELDS` (default): the fields of a urlencoded or multipart
/// body, counted as Django counts them.
pub const MAX_FIELDS: usize = 1000;
/// Django's `DATA_UPLOAD_MAX_NUMBER_FILES` (default): the file parts of a multipart body.
pub const MAX_FILES: usize = 100;

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
    pub problems: FieldErrors,
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
            // Python's `parse_qsl(max_num_fields=…)`: one field more than there are `&`, empty
            // ones included, counted before anything is decoded.
            if bytes.iter().filter(|&&b| b == b'&').count() + 1 > MAX_FIELDS {
                return Err(errors::bad_request());
            }
            let mut dict = DictBuilder::default();
            for (name, value) in url::form_urlencoded::parse(&bytes) {
                dict.set_last(name.into_owned(), PyValue::Str(value.into_owned()));
            }
            Ok(dict.finish())
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
    let mut dict = DictBuilder::default();
    let (mut fields, mut files) = (0, 0);
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            // Headers of a part that cannot be read (a control character in its name): refused,
            // never taken for the end of the form, which would drop the fields after it.
            Err(err) if is_malformed_part(&err) => {
                return Err(errors::parse_error("Multipart form parse error - Invalid header in a part.".into()));
            }
            // A truncated body: Django keeps what it read.
            Err(_) => break,
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        // Django counts each part as it comes, and stops at the first one over a limit.
        let (count, limit) = if file_name.is_some() { (&mut files, MAX_FILES) } else { (&mut fields, MAX_FIELDS) };
        *count += 1;
        if *count > limit {
            return Err(errors::bad_request());
        }
        let value = match file_name {
            Some(file_name) => PyValue::File(file_name),
            None => match field.bytes().await {
                Ok(data) => PyValue::Str(String::from_utf8_lossy(&data).into_owned()),
                Err(_) => break,
            },
        };
        // A repeated name reads as its last value (Django's `QueryDict.get`).
        dict.set_last(name, value);
    }
    Ok(dict.finish())
}

/// Whether a multipart error is a part whose headers are malformed (rather than a body that
/// ends early).
fn is_malformed_part(err: &axum::extract::multipart::MultipartError) -> bool {
    matches!(
        std::error::Error::source(err).and_then(|source| source.downcast_ref::<multer::Error>()),
        Some(
            multer::Error::ReadHeaderFailed(_)
                | multer::Error::DecodeHeaderName { .. }
                | multer::Error::DecodeHeaderValue { .. }
                | multer::Error::DecodeContentType(_)
        )
    )
}

/// The declared fields of a parsed body. `Err` is DRF's answer to a body that is not an object.
pub fn fields(data: &PyValue, declared: &[Field]) -> Result<Fields, FieldErrors> {
    let entries = match data {
        PyValue::Dict(entries) => entries,
        PyValue::Null => return Err(non_field(messages::NO_DATA)),
        other => {
            return Err(non_field(&messages::not_a_dictionary(other.type_name())));
        }
    };
    let mut fields = Fields::default();
    for field in declared {
        let raw = entries.iter().find(|(name, _)| name == field.name).map(|(_, v)| v);
        match coerce(raw, field.kind) {
            Ok(text) => fields.values.push((field.name, text)),
            Err(message) => {
                fields.values.push((field.name, String::new()));
                fields.problems.add(field.name, message);
            }
        }
    }
    Ok(fields)
}

fn non_field(message: &str) -> FieldErrors {
    let mut errors = FieldErrors::default();
    errors.add("non_field_errors", message);
    errors
}

/// DRF's `to_internal_value` of one field, before its validators.
fn coerce(raw: Option<&PyValue>, kind: Kind) -> Result<String, &'static str> {
    let value = raw.ok_or(messages::REQUIRED)?;
    match (value, kind) {
        (PyValue::Null, _) => Err(messages::NULL),
        (other, Kind::Slug) => Ok(other.py_str()),
        (PyValue::Str(s), _) => Ok(s.clone()),
        (number @ (PyValue::Int(_) | PyValue::Float(_)), _) => Ok(number.py_str()),
        (_, Kind::Email) => Err(messages::EMAIL_INVALID),
        (_, _) => Err(messages::NOT_A_STRING),
    }
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

    /// What `read` makes of `body` sent as `content_type`: the parsed value, or the refusal's
    /// status and body.
    async fn read_as(content_type: &str, body: Vec<u8>) -> Result<PyValue, (u16, String)> {
        let (parts, ()) = Request::builder().header(CONTENT_TYPE, content_type).body(()).unwrap().into_parts();
        match read(&parts, Body::from(body), MAX_BODY_BYTES).await {
            Ok(value) => Ok(value),
            Err(response) => {
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
                Err((status, String::from_utf8(bytes.to_vec()).unwrap()))
            }
        }
    }

    const FORM: &str = "application/x-www-form-urlencoded";
    const MULTIPART: &str = "multipart/form-data; boundary=xx";
    const BAD_REQUEST: (u16, &str) = (400, r#"{"error": "Bad Request (400)"}"#);

    fn form(fields: usize) -> Vec<u8> {
        (0..fields).map(|n| format!("k{n}=")).collect::<Vec<_>>().join("&").into_bytes()
    }

    /// `count` distinct names of at most three characters, so that many fit under the limit.
    fn short_names(count: usize) -> Vec<String> {
        const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let name = |mut n: usize| {
            let mut name = vec![DIGITS[n % 62]];
            while n >= 62 {
                n = n / 62 - 1;
                name.push(DIGITS[n % 62]);
            }
            String::from_utf8(name).unwrap()
        };
        assert!(count <= 62 + 62 * 62 + 62 * 62 * 62);
        (0..count).map(name).collect()
    }

    /// `texts` text parts and `files` file parts.
    fn multipart_body(texts: usize, files: usize) -> Vec<u8> {
        let mut body = String::new();
        for n in 0..texts {
            body.push_str(&format!("--xx\r\nContent-Disposition: form-data; name=\"k{n}\"\r\n\r\nv\r\n"));
        }
        for n in 0..files {
            body.push_str(&format!(
                "--xx\r\nContent-Disposition: form-data; name=\"f{n}\"; filename=\"a.txt\"\r\n\r\nv\r\n"
            ));
        }
        body.push_str("--xx--\r\n");
        body.into_bytes()
    }

    fn entry_count(value: &PyValue) -> usize {
        match value {
            PyValue::Dict(entries) => entries.len(),
            other => panic!("not a dict: {other:?}"),
        }
    }

    #[tokio::test]
    async fn repeated_form_names_keep_their_first_place_and_take_the_last_value() {
        let value = read_as(FORM, b"k=1&j=2&k=3&&i&j=4".to_vec()).await.unwrap();
        assert_eq!(value.py_repr(), "{'k': '3', 'j': '4', 'i': ''}");
        let body = "--xx\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n1\r\n\
                    --xx\r\nContent-Disposition: form-data; name=\"j\"\r\n\r\n2\r\n\
                    --xx\r\nContent-Disposition: form-data; name=\"k\"; filename=\"a.txt\"\r\n\r\nv\r\n--xx--\r\n";
        let value = read_as(MULTIPART, body.as_bytes().to_vec()).await.unwrap();
        assert_eq!(value.py_repr(), "{'k': <InMemoryUploadedFile: a.txt>, 'j': '2'}");
    }

    /// Django's limits, at the edge (checked against the reference: 1,000 fields are read, 1,001
    /// get its `bad_request`; the same for multipart, and 101 files).
    #[tokio::test]
    async fn forms_with_too_many_fields_or_files_are_refused_as_django_does() {
        assert_eq!(entry_count(&read_as(FORM, form(MAX_FIELDS)).await.unwrap()), MAX_FIELDS);
        let refused = read_as(FORM, form(MAX_FIELDS + 1)).await.unwrap_err();
        assert_eq!((refused.0, refused.1.as_str()), BAD_REQUEST);
        // Python counts the separators, empty fields included.
        let empty_fields = vec![b'&'; MAX_FIELDS];
        assert_eq!(read_as(FORM, empty_fields).await.unwrap_err().0, 400);
        assert_eq!(entry_count(&read_as(FORM, vec![b'&'; MAX_FIELDS - 1]).await.unwrap()), 0);

        assert_eq!(entry_count(&read_as(MULTIPART, multipart_body(MAX_FIELDS, MAX_FILES)).await.unwrap()), 1100);
        for body in [multipart_body(MAX_FIELDS + 1, 0), multipart_body(0, MAX_FILES + 1)] {
            let refused = read_as(MULTIPART, body).await.unwrap_err();
            assert_eq!((refused.0, refused.1.as_str()), BAD_REQUEST);
        }
    }

    /// 200,000 distinct names: a scan of the earlier names per name took minutes; now the count
    /// refuses the form before anything is decoded, multipart stops at the first part over the
    /// limit, and a JSON object of many keys costs one index look-up per key (work counted).
    #[tokio::test]
    async fn many_fields_are_cheap() {
        use pyjson::work;
        let names = short_names(200_000);
        assert_eq!(names.iter().collect::<std::collections::HashSet<_>>().len(), names.len(), "distinct");
        let form = names.join("&");
        assert!(form.len() < MAX_BODY_BYTES);
        work::take();
        assert_eq!(read_as(FORM, form.into_bytes()).await.unwrap_err(), (400, BAD_REQUEST.1.to_owned()));
        assert_eq!(work::take().0, 0, "nothing decoded");
        assert_eq!(read_as(MULTIPART, multipart_body(5_000, 0)).await.unwrap_err().0, 400);
        assert_eq!(work::take().0, MAX_FIELDS, "parts read up to the limit");
        let json =
            format!("{{{}}}", names[..120_000].iter().map(|n| format!(r#""{n}":0"#)).collect::<Vec<_>>().join(","));
        assert!(json.len() < MAX_BODY_BYTES);
        let read = read_as("application/json", json.into_bytes()).await.unwrap();
        let (set, compared) = work::take();
        assert_eq!((entry_count(&read), set), (120_000, 120_000));
        assert!(compared < 30_000, "{compared} key comparisons (a scan: 7 billion)");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_before_parsing() {
        let refused = read_as("application/json", vec![b'['; MAX_BODY_BYTES + 1]).await.unwrap_err();
        assert_eq!(refused, (413, r#"{"detail":"Request body is larger than 1048576 bytes."}"#.to_owned()));
        let deep = read_as("application/json", vec![b'['; MAX_BODY_BYTES]).await.unwrap_err();
        assert_eq!(
            deep,
            (
                400,
                r#"{"detail":"JSON parse error - maximum recursion depth exceeded while decoding a JSON array from a unicode string"}"#
                    .to_owned()
            )
        );
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
}
