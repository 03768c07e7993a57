//! Django REST Framework's error responses, built in one place: from the GraphQL errors of the
//! legacy layer's operations (`extensions.code`, `field`, `messages`, `reason`, `retryAfter`),
//! from authentication failures ([`AuthError`], shared with the legacy chat socket's handshake),
//! and from the transport's own checks (method, media type, malformed body).

use async_graphql::{ServerError as GqlError, Value as GqlValue};
use axum::http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::shapes::{AuthFailure, Detail, TokenMessage};
use crate::auth::{AuthError, TokenKind};
use crate::domain::messages;
use crate::error::FieldErrors;
use crate::graphql::error as codes;

/// What SimpleJWT's authentication class sends with every 401.
pub const WWW_AUTHENTICATE_VALUE: &str = r#"Bearer realm="api""#;

/// A compact JSON body (as DRF's `JSONRenderer`), `Content-Type: application/json`.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => raw_json(status, bytes),
        Err(err) => {
            tracing::error!(error = %err, "legacy body does not serialise");
            server_error()
        }
    }
}

fn raw_json(status: StatusCode, bytes: impl Into<axum::body::Body>) -> Response {
    let mut response = (status, bytes.into()).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn detail(status: StatusCode, detail: impl Into<String>) -> Response {
    json(status, &Detail { detail: detail.into() })
}

/// SimpleJWT's body for an authentication failure (also the legacy chat socket's refusal).
pub fn auth_error_body(err: &AuthError) -> AuthFailure {
    let messages = match err {
        AuthError::BadAccessToken(problem) => Some(vec![TokenMessage {
            token_class: TokenKind::Access.class_name(),
            token_type: TokenKind::Access.as_str(),
            message: problem.message(),
        }]),
        _ => None,
    };
    AuthFailure { detail: err.to_string(), code: err.code().map(str::to_owned), messages }
}

/// 401 with SimpleJWT's body and `WWW-Authenticate: Bearer realm="api"`.
pub fn unauthorized(body: &impl Serialize) -> Response {
    let mut response = json(StatusCode::UNAUTHORIZED, body);
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTHENTICATE_VALUE));
    response
}

/// The 401 of an authentication failure (a 500 when the user could not be looked up).
pub fn auth_error(err: &AuthError) -> Response {
    if *err == AuthError::Unavailable {
        return server_error();
    }
    unauthorized(&auth_error_body(err))
}

pub fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, messages::NOT_FOUND)
}

pub fn method_not_allowed(method: &Method) -> Response {
    let method = method.as_str().to_ascii_uppercase();
    detail(StatusCode::METHOD_NOT_ALLOWED, format!("Method \"{method}\" not allowed."))
}

pub fn not_acceptable() -> Response {
    detail(StatusCode::NOT_ACCEPTABLE, "Could not satisfy the request Accept header.")
}

pub fn unsupported_media_type(content_type: &str) -> Response {
    detail(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Unsupported media type \"{content_type}\" in request."))
}

/// DRF's `ParseError`: 400 with the parser's detail (`JSON parse error - …`).
pub fn parse_error(detail_text: String) -> Response {
    detail(StatusCode::BAD_REQUEST, detail_text)
}

pub fn payload_too_large(limit: usize) -> Response {
    detail(StatusCode::PAYLOAD_TOO_LARGE, format!("Request body is larger than {limit} bytes."))
}

/// 400 `{field: [messages]}`.
pub fn invalid(errors: &FieldErrors) -> Response {
    json(StatusCode::BAD_REQUEST, errors)
}

/// DRF's `bad_request` (the reference's `handler400`), byte for byte: Django's answer to a
/// `SuspiciousOperation` such as a form with too many fields.
pub fn bad_request() -> Response {
    raw_json(StatusCode::BAD_REQUEST, &br#"{"error": "Bad Request (400)"}"#[..])
}

/// Django's `server_error` body, byte for byte (`JsonResponse` keeps the space after the colon).
pub fn server_error() -> Response {
    raw_json(StatusCode::INTERNAL_SERVER_ERROR, &br#"{"error": "Server Error (500)"}"#[..])
}

/// DRF's `Throttled`: singular "second" for one, as DRF words it.
pub fn throttled(seconds: u64) -> Response {
    let mut response = detail(StatusCode::TOO_MANY_REQUESTS, messages::throttled(seconds));
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn extension<'a>(error: &'a GqlError, name: &str) -> Option<&'a GqlValue> {
    error.extensions.as_ref().and_then(|ext| ext.get(name))
}

fn extension_str<'a>(error: &'a GqlError, name: &str) -> Option<&'a str> {
    match extension(error, name) {
        Some(GqlValue::String(s)) => Some(s),
        _ => None,
    }
}

fn code(error: &GqlError) -> &str {
    codes::code_of(error).unwrap_or("")
}

/// The seconds of a `TOO_MANY_REQUESTS` error's `retryAfter` (1 when it has none).
pub fn retry_after(error: &GqlError) -> u64 {
    match extension(error, "retryAfter") {
        Some(GqlValue::Number(n)) => n.as_u64().unwrap_or(1),
        _ => 1,
    }
}

/// The `{field: [messages]}` of every `BAD_USER_INPUT` error that names a field, in the order
/// GraphQL lists them.
pub fn field_errors(errors: &[GqlError]) -> FieldErrors {
    let mut fields = FieldErrors::default();
    for error in errors.iter().filter(|e| code(e) == codes::BAD_USER_INPUT) {
        let Some(field) = extension_str(error, "field") else { continue };
        let messages = match extension(error, "messages") {
            Some(GqlValue::List(list)) => list
                .iter()
                .filter_map(|m| match m {
                    GqlValue::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => vec![error.message.clone()],
        };
        fields.extend(field, messages);
    }
    fields
}

/// The DRF response for the errors of one legacy operation.
///
/// `transport` holds what the transport itself found wrong with the body (a required field
/// missing, `null`, not a string): DRF validates the body before anything else, so when there is
/// any, the answer is a 400 listing them together with the operation's other field errors, in
/// the body's field order (`order`), the transport's messages replacing the operation's for the
/// same field. Otherwise the first error decides: `BAD_USER_INPUT` lists every invalid field.
pub fn from_graphql(errors: &[GqlError], transport: &FieldErrors, order: &[&str]) -> Response {
    if !transport.is_empty() {
        let mut merged = field_errors(errors);
        for (field, messages) in transport.iter() {
            merged.replace(field, messages.to_vec());
        }
        merged.sort_by_order(order);
        return invalid(&merged);
    }
    let Some(first) = errors.first() else {
        tracing::error!("legacy operation failed without errors");
        return server_error();
    };
    match code(first) {
        // Without `field`, the request itself was refused (it does not parse or validate, is too
        // complex): the legacy layer wrote it, so that is a fault of the server, not the client's.
        codes::BAD_USER_INPUT if extension_str(first, "field").is_some() => invalid(&field_errors(errors)),
        codes::UNAUTHENTICATED => unauthorized(&AuthFailure {
            detail: first.message.clone(),
            code: extension_str(first, "reason").map(str::to_owned),
            messages: None,
        }),
        codes::NOT_FOUND => not_found(),
        codes::FORBIDDEN => detail(StatusCode::FORBIDDEN, first.message.clone()),
        codes::TOO_MANY_REQUESTS => throttled(retry_after(first)),
        // Logged with its cause where GraphQL answered it.
        codes::INTERNAL_SERVER_ERROR => server_error(),
        other => {
            tracing::error!(code = other, message = %first.message, "legacy operation failed");
            server_error()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenProblem;

    fn body(response: Response) -> (StatusCode, String) {
        let status = response.status();
        let bytes = futures_util::FutureExt::now_or_never(axum::body::to_bytes(response.into_body(), usize::MAX))
            .expect("ready")
            .expect("body");
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[test]
    fn auth_errors_have_simplejwt_bodies() {
        let cases = [
            (AuthError::NoCredentials, r#"{"detail":"Authentication credentials were not provided."}"#),
            (
                AuthError::BadHeader,
                r#"{"detail":"Authorization header must contain two space-delimited values","code":"bad_authorization_header"}"#,
            ),
            (
                AuthError::BadAccessToken(TokenProblem::Expired),
                r#"{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{"token_class":"AccessToken","token_type":"access","message":"Token is expired"}]}"#,
            ),
            (AuthError::UserNotFound, r#"{"detail":"User not found","code":"user_not_found"}"#),
            (
                AuthError::NoUserId,
                r#"{"detail":"Token contained no recognizable user identification","code":"token_not_valid"}"#,
            ),
        ];
        for (err, expected) in cases {
            let response = auth_error(&err);
            assert_eq!(response.headers()[WWW_AUTHENTICATE], WWW_AUTHENTICATE_VALUE);
            assert_eq!(body(response), (StatusCode::UNAUTHORIZED, expected.to_owned()));
        }
    }

    #[test]
    fn throttling_and_server_errors() {
        let response = throttled(1);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(body(response).1, r#"{"detail":"Request was throttled. Expected available in 1 second."}"#);
        assert_eq!(body(throttled(42)).1, r#"{"detail":"Request was throttled. Expected available in 42 seconds."}"#);
        assert_eq!(
            body(server_error()),
            (StatusCode::INTERNAL_SERVER_ERROR, r#"{"error": "Server Error (500)"}"#.into())
        );
        assert_eq!(body(method_not_allowed(&Method::PUT)).1, r#"{"detail":"Method \"PUT\" not allowed."}"#);
    }

    #[test]
    fn transport_errors_merge_in_field_order() {
        let gql = |field: &str, message: &str| {
            let mut error = GqlError::new(message, None);
            let mut ext = async_graphql::ErrorExtensionValues::default();
            ext.set("code", codes::BAD_USER_INPUT);
            ext.set("field", field);
            ext.set("messages", vec![message.to_owned()]);
            error.extensions = Some(ext);
            error
        };
        let errors = [gql("username", "This field may not be blank."), gql("email", "Enter a valid email address.")];
        let mut transport = FieldErrors::default();
        transport.add("password", "Not a valid string.");
        transport.add("username", "This field is required.");
        let (status, text) = body(from_graphql(&errors, &transport, &["username", "email", "password"]));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            text,
            r#"{"username":["This field is required."],"email":["Enter a valid email address."],"password":["Not a valid string."]}"#
        );
        let (_, text) = body(from_graphql(&errors, &FieldErrors::default(), &[]));
        assert_eq!(text, r#"{"username":["This field may not be blank."],"email":["Enter a valid email address."]}"#);

        // A refused document (no `field`) is the server's fault.
        let mut refused = GqlError::new("Unknown field \"nope\"", None);
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", codes::BAD_USER_INPUT);
        refused.extensions = Some(ext);
        assert_eq!(body(from_graphql(&[refused], &FieldErrors::default(), &[])).0, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
