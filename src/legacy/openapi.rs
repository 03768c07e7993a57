//! `/openapi.json`: the legacy REST API described from the route table (paths, methods, which
//! need a token, body fields, query parameters, statuses) and from the shape types that
//! serialize the responses, so the document says what the code does.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, RefOr, Required, ResponseBuilder, Schema,
};
use utoipa::{PartialSchema, ToSchema};

use super::routes::{self, Operation, ROUTES, Route, Schemas, one};
use super::shapes::{AuthFailure, Detail, ServerError, ValidationErrors};

const BEARER: &str = "bearerAuth";
const JSON: &str = "application/json";

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
    for param in op.params {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(param.name)
                .parameter_in(ParameterIn::Query)
                .required(if param.text { Required::True } else { Required::False })
                .description(Some(param.description))
                .schema(Some(if param.text {
                    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).pattern(Some(r"\S")).build()
                } else {
                    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build()
                })),
        );
    }
    if !op.fields.is_empty() {
        let mut object = ObjectBuilder::new().schema_type(Type::Object);
        // Every body field is a required text that may not be blank (trimmed first).
        let text = || ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).pattern(Some(r"\S"));
        for field in op.fields {
            object = object.property(field.name, text()).required(field.name);
        }
        let object: RefOr<Schema> = object.build().into();
        let mut body = RequestBodyBuilder::new().required(Some(Required::True));
        for media in routes::parses() {
            body = body.content(*media, ContentBuilder::new().schema(Some(object.clone())).build());
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
    if op.open && !op.fields.is_empty() {
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
