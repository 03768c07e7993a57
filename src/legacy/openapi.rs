//! `/openapi.json`: the legacy REST API described from the route table (paths, methods, which
//! need a token, body fields, query parameters, statuses) and from the shape types that
//! serialize the responses, so the document says what the code does.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AnyOfBuilder, ComponentsBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, RefOr, Required, ResponseBuilder, Schema,
};
use utoipa::{PartialSchema, ToSchema};

use super::body::{Field, Kind};
use super::routes::{self, Operation, ROUTES, Route, Schemas, one};
use super::shapes::{AuthFailure, Detail, ServerError, ValidationErrors};

const BEARER: &str = "bearerAuth";
const JSON: &str = "application/json";
const MULTIPART: &str = "multipart/form-data";

/// What `str.strip()` removes, as DRF's `CharField` trims (Rust's `char::is_whitespace` plus
/// U+001C–U+001F, which Python counts as whitespace), in a regular expression class.
const TRIMMED: &str = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// A text that DRF's `CharField` accepts: surrounding whitespace ([`TRIMMED`]) is dropped, what is
/// left is 1 to `max` characters, each of `class` when given (a class without whitespace or NUL),
/// and no NUL anywhere (`ProhibitNullCharactersValidator`).
fn text_pattern(max: Option<usize>, class: Option<&str>) -> String {
    let spaces = format!("[{TRIMMED}]*");
    let count = |n: Option<usize>| n.map_or(String::new(), |n| n.to_string());
    match class {
        Some(class) => format!("^{spaces}{class}{{1,{}}}{spaces}$", count(max)),
        // Any text: it starts and ends with a character that is not trimmed, with no NUL between.
        None => {
            let edge = format!(r"[^\x00{TRIMMED}]");
            let middle = count(max.map(|max| max.saturating_sub(2)));
            format!(r"^{spaces}(?:{edge}|{edge}[^\x00]{{0,{middle}}}{edge}){spaces}$")
        }
    }
}

/// The schema of one body field: what DRF's serializer field accepts, so that a property-based
/// tester builds valid bodies (and knows the invalid ones). Text fields take JSON numbers too
/// (DRF's `CharField` reads them as their text); booleans, lists and objects are refused.
fn field_schema(route: &Route, field: &Field) -> ObjectBuilder {
    let max = route.post_metadata.iter().find(|meta| meta.name == field.name).and_then(|meta| meta.max_length);
    let text_or_number = utoipa::openapi::schema::SchemaType::Array(vec![Type::String, Type::Number]);
    match (field.kind, field.name) {
        (Kind::Email, _) => ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Email)))
            .max_length(max)
            .description(Some("An email address as Django's `EmailValidator` accepts it (no NUL).")),
        // Django's `UnicodeUsernameValidator` (`\w` as Python's `re` reads it) on a new username.
        (Kind::Text, "username") if max.is_some() => ObjectBuilder::new()
            .schema_type(text_or_number)
            .pattern(Some(text_pattern(max, Some(r"[\w.@+\-]"))))
            .description(Some(
                "Letters, digits and @/./+/-/_ only, at most 150 characters (surrounding whitespace is trimmed).",
            )),
        (Kind::Text, "password") if max.is_some() => {
            ObjectBuilder::new().schema_type(text_or_number).pattern(Some(text_pattern(max, None))).description(Some(
                "At most 128 characters. Django's password validators also apply (a 400 on `password`): at \
                 least 8 characters, not entirely numeric, not a common password, not too similar to the \
                 username or email.",
            ))
        }
        (Kind::Text | Kind::Slug, _) => ObjectBuilder::new()
            .schema_type(text_or_number)
            .pattern(Some(text_pattern(max, None)))
            .description(Some(match max {
                Some(max) => format!(
                    "Text (or a number, read as its text), not blank, no NUL, at most {max} characters once trimmed."
                ),
                None => "Text (or a number, read as its text), not blank, no NUL.".to_owned(),
            })),
    }
}

/// A request body: every declared field required, others ignored (as DRF does). A multipart part
/// whose name holds a control character (other than tab) cannot be read: DRF's `Multipart form parse
/// error` 400.
fn body_schema(route: &Route, fields: &[Field], multipart: bool) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new().schema_type(Type::Object);
    for field in fields {
        object = object.property(field.name, field_schema(route, field)).required(field.name);
    }
    if multipart {
        let name = ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^[^\x00-\x08\x0a-\x1f\x7f]*$"));
        object = object.property_names(Some(name));
    }
    object.build().into()
}

/// The document, built once.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(build);
    &DOCUMENT
}

pub async fn serve() -> Response {
    let body = document().to_json().unwrap_or_else(|_| "{}".to_owned());
    let mut response = body.into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

fn build() -> OpenApi {
    let mut schemas: Schemas = Vec::new();
    for error in [one::<Detail>, one::<AuthFailure>, one::<ValidationErrors>, one::<ServerError>] {
        error(&mut schemas);
    }
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let mut item: Option<PathItem> = None;
        for (method, operation) in [(HttpMethod::Get, &route.get), (HttpMethod::Post, &route.post)] {
            let Some(operation) = operation else { continue };
            let built = self::operation(route, method.clone(), operation, &mut schemas);
            match item.as_mut() {
                Some(item) => item.merge_operations(PathItem::new(method, built)),
                None => item = Some(PathItem::new(method, built)),
            }
        }
        if let Some(item) = item {
            paths = paths.path(format!("{}/", route.path), item);
        }
    }
    let mut components = ComponentsBuilder::new().security_scheme(
        BEARER,
        SecurityScheme::Http(
            utoipa::openapi::security::HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
        ),
    );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Agora legacy REST API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The Django REST Framework API of the service Agora replaces: same URLs (with or without \
                     the trailing slash), bodies, status codes and SimpleJWT tokens. Request bodies may be JSON, \
                     urlencoded or multipart forms. New clients should use GraphQL at /graphql.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

fn json_response(description: &str, schema: RefOr<Schema>) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(JSON, ContentBuilder::new().schema(Some(schema)).build())
        .build()
}

fn operation(
    route: &Route,
    method: HttpMethod,
    op: &Operation,
    schemas: &mut Schemas,
) -> utoipa::openapi::path::Operation {
    let tag = route.path.trim_start_matches('/').split('/').next().unwrap_or("legacy");
    let id = format!("{}_{}", if method == HttpMethod::Get { "get" } else { "post" }, slug(route.path));
    let mut builder = OperationBuilder::new().summary(Some(op.summary)).operation_id(Some(id)).tag(tag);

    for name in route.path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(String::schema())),
        );
    }
    // Django's `QueryDict.get`: a repeated name's last value counts.
    for param in op.params {
        let (description, schema): (String, RefOr<Schema>) = if param.text {
            let text = ObjectBuilder::new().schema_type(Type::String).pattern(Some(text_pattern(None, None)));
            (format!("{} Not blank; when repeated, the last value counts.", param.description), text.build().into())
        } else {
            let number = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1));
            let empty = ObjectBuilder::new().schema_type(Type::String).max_length(Some(0));
            let description = format!(
                "{} An empty value is ignored; Python's `int()` syntax (surrounding whitespace, `+`, `_` between \
                 digits, a `.0` tail); when repeated, the last value counts.",
                param.description
            );
            (description, RefOr::T(Schema::AnyOf(AnyOfBuilder::new().item(number).item(empty).build())))
        };
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(param.name)
                .parameter_in(ParameterIn::Query)
                .required(if param.text { Required::True } else { Required::False })
                .description(Some(description))
                .schema(Some(schema)),
        );
    }
    if !op.fields.is_empty() {
        let mut body = RequestBodyBuilder::new().required(Some(Required::True));
        for media in routes::parses() {
            let object = body_schema(route, op.fields, *media == MULTIPART);
            body = body.content(*media, ContentBuilder::new().schema(Some(object)).build());
        }
        builder = builder.request_body(Some(body.build()));
    }
    if !op.open {
        builder = builder.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
    }

    let success = (op.response)(schemas);
    builder = builder.response(op.status.as_str(), json_response(reason(op.status), success.clone()));
    for status in op.other_statuses {
        builder = builder.response(status.as_str(), json_response(reason(*status), success.clone()));
    }
    let detail = || RefOr::Ref(utoipa::openapi::Ref::from_schema_name(Detail::name()));
    if !op.fields.is_empty() || !op.params.is_empty() {
        let fields = RefOr::Ref(utoipa::openapi::Ref::from_schema_name(ValidationErrors::name()));
        let invalid = OneOfBuilder::new().item(fields).item(detail()).into();
        builder = builder.response("400", json_response("Invalid fields, or a malformed body ({\"detail\"})", invalid));
    }
    let auth = RefOr::Ref(utoipa::openapi::Ref::from_schema_name(AuthFailure::name()));
    // Every operation can answer 401: no or a bad token, wrong credentials, a bad refresh token.
    builder = builder.response("401", json_response("Not authenticated (SimpleJWT's body)", auth));
    if op.may_be_forbidden() {
        builder = builder.response("403", json_response("Refused: the other member has blocked the caller", detail()));
    }
    if route.may_be_missing() {
        builder = builder.response("404", json_response("Not found, or not a member", detail()));
    }
    builder = builder
        .response("405", json_response("Method not allowed", detail()))
        .response("406", json_response("The Accept header excludes JSON", detail()));
    if !op.fields.is_empty() {
        builder = builder.response("415", json_response("Unsupported body media type", detail()));
    }
    // Sign-up and sign-in are throttled per address and per account; chat messages per user.
    if (op.open && !op.fields.is_empty()) || op.document.text.contains("sendMessage(") {
        builder = builder.response("429", json_response("Throttled (see Retry-After)", detail()));
    }
    let server = RefOr::Ref(utoipa::openapi::Ref::from_schema_name(ServerError::name()));
    builder.response("500", json_response("Server error", server)).build()
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("")
}

fn slug(path: &str) -> String {
    path.trim_matches('/').replace(['/', '{', '}'], "_").replace("__", "_").trim_end_matches('_').to_owned()
}
