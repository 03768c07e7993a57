//! Fuzz targets that run on stable Rust, as property tests (proptest): every parser a client's
//! bytes reach before any rule — the legacy body parsers (JSON as Python reads it, forms,
//! multipart), legacy chat socket frames (binary decoding, lenient JSON, the `message` field),
//! token parsing (JWT and the `Authorization` header), the GraphQL document pre-scan — must
//! answer every input without panicking, and the validators of `agora::domain` keep their
//! promises. cargo-fuzz needs a nightly compiler; these need nothing but `cargo test`.
//!
//! Each target runs `PROPTEST_CASES` inputs (256 by default, a few seconds in all, as CI runs
//! them). To fuzz longer: `PROPTEST_CASES=1000000 cargo test --release --test fuzz`; a failing
//! input is shrunk and saved under `proptest-regressions/` to be replayed first next time.

use agora::auth::{TokenKind, TokenService};
use agora::domain;
use agora::graphql::limits::{Limits, prescan};
use agora::legacy::body::{self, Field, Kind};
use agora::legacy::{chat_socket, pyjson};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, header};
use proptest::prelude::*;

/// JSON-ish text: mostly the characters JSON is made of, so inputs get deep into the parser.
fn jsonish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[\\[\\]{}\":,0-9eE.+\\-a-z \\\\ntu\u{0}\u{e9}\u{1F600}]{0,200}",
        any::<String>(),
        arbitrary_json::value().prop_map(|v| v.to_string()),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Arbitrary JSON values for the strategy above.
mod arbitrary_json {
    use proptest::prelude::*;
    use serde_json::Value;

    pub fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec(("[a-z]{0,6}", inner), 0..8)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }
}

proptest! {
    /// The legacy body parser, for each content type DRF parses and some it does not.
    #[test]
    fn legacy_bodies_never_panic(
        content_type in prop_oneof![
            Just("application/json".to_owned()),
            Just("application/x-www-form-urlencoded".to_owned()),
            Just("multipart/form-data; boundary=xx".to_owned()),
            Just("multipart/form-data".to_owned()),
            Just("text/plain".to_owned()),
            "[ -~]{0,40}",
        ],
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..400),
            jsonish().prop_map(String::into_bytes),
            prop::collection::vec(
                ("[a-z\u{0}\u{8}\u{c}\u{7f}\"]{0,6}", "[ -~]{0,10}", any::<bool>()),
                0..6,
            ).prop_map(|parts| {
                let mut body = String::new();
                for (name, value, file) in parts {
                    let file = if file { "; filename=\"a.txt\"" } else { "" };
                    body.push_str(&format!("--xx\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n{value}\r\n"));
                }
                body.push_str("--xx--\r\n");
                body.into_bytes()
            }),
        ],
    ) {
        let request = Request::builder().method("POST").header(header::CONTENT_TYPE, content_type).body(()).unwrap();
        let (parts, ()) = request.into_parts();
        let declared = [
            Field { name: "username", kind: Kind::Text },
            Field { name: "email", kind: Kind::Email },
            Field { name: "recipient", kind: Kind::Slug },
        ];
        let read = runtime().block_on(body::read(&parts, Body::from(bytes), 1024 * 1024));
        match read {
            Ok(value) => {
                let _ = body::fields(&value, &declared);
            }
            Err(response) => prop_assert!(response.status().is_client_error(), "{}", response.status()),
        }
    }

    /// Python-compatible JSON: never a panic; what serde_json writes, it reads.
    #[test]
    fn python_json_reads_what_json_writes(text in jsonish(), value in arbitrary_json::value()) {
        let _ = pyjson::parse(&text);
        let _ = pyjson::parse_lenient(&text);
        prop_assert!(pyjson::parse(&value.to_string()).is_ok(), "{}", value);
    }

    /// A legacy chat socket frame, text or binary, as the socket reads it.
    #[test]
    fn legacy_socket_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), text in jsonish()) {
        let message = [Field { name: "message", kind: Kind::Text }];
        for text in chat_socket::decode_binary(&bytes).into_iter().chain([text]) {
            if let Ok(frame) = pyjson::parse_lenient(&text) {
                let _ = body::fields(&frame, &message);
            }
        }
    }

    /// Tokens: nothing but a token this service signed verifies; nothing panics.
    #[test]
    fn only_signed_tokens_verify(
        noise in prop_oneof!["[A-Za-z0-9_\\-.=]{0,300}", any::<String>()],
        flip in any::<prop::sample::Index>(),
    ) {
        let tokens = TokenService::new(b"fuzzing-secret", 300, 86_400);
        for kind in [TokenKind::Access, TokenKind::Refresh] {
            prop_assert!(tokens.verify(&noise, kind).is_err());
        }
        let issued = tokens.issue(TokenKind::Access, 7).token;
        prop_assert!(tokens.verify(&issued, TokenKind::Access).is_ok());
        // Any one character changed (other than to itself) is refused.
        let mut bytes = issued.clone().into_bytes();
        let at = flip.index(bytes.len());
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        if changed != issued {
            // Base64url's last character can carry unused bits: a change there may decode the same.
            let tail = at + 1 == issued.len() || issued.as_bytes().get(at + 1) == Some(&b'.');
            prop_assert!(tail || tokens.verify(&changed, TokenKind::Access).is_err(), "{changed}");
        }
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&noise) {
            headers.insert(header::AUTHORIZATION, value);
            let _ = agora::auth::authorization_header(&headers);
        }
    }

    /// The GraphQL pre-scan: never a panic, and whatever it lets through the parser can parse
    /// without running out of stack.
    #[test]
    fn prescan_bounds_what_the_parser_sees(
        document in prop_oneof![
            "[{}\\[\\]()a-z:$@!.\" #\n,0-9]{0,400}",
            any::<String>(),
            (1usize..5_000, "[\\[{(]").prop_map(|(depth, open)| format!("{{ user(username: {}\"a\") {{ id }} }}", open.repeat(depth))),
        ],
    ) {
        let limits = Limits::default();
        if prescan(&document, &limits).is_ok() {
            let _ = async_graphql::parser::parse_query(&document);
        }
    }

    /// `clean_text` keeps DRF's promises: trimmed, bounded, never NUL; blank only when allowed.
    #[test]
    fn clean_text_keeps_its_promises(raw in any::<String>(), max in 1usize..50, allow_blank in any::<bool>()) {
        match domain::clean_text(&raw, max, allow_blank) {
            Ok(value) => {
                prop_assert_eq!(value.as_str(), raw.trim());
                prop_assert!(value.chars().count() <= max);
                prop_assert!(domain::storable(&value));
                prop_assert!(allow_blank || !value.is_empty());
            }
            Err(problems) => prop_assert!(!problems.is_empty()),
        }
    }

    /// Usernames: Django's characters only; a valid one can always be stored.
    #[test]
    fn usernames_hold_only_djangos_characters(name in any::<String>()) {
        if domain::is_valid_username(&name) {
            prop_assert!(!name.is_empty());
            prop_assert!(domain::storable(&name));
            prop_assert!(name.chars().all(|c| !c.is_whitespace() && !c.is_control()));
        }
    }

    /// Emails and passwords: the rules answer anything, and a valid email can be stored.
    #[test]
    fn email_and_password_rules_answer_anything(text in any::<String>(), other in "[a-z]{0,12}") {
        if domain::is_valid_email(&text) {
            prop_assert!(domain::storable(&text) && text.contains('@'));
        }
        let _ = domain::password_problems(&text, Some(&other), Some(&format!("{other}@example.com")));
    }
}
