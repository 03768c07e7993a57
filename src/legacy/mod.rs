//! The legacy REST API of the Django REST Framework service over the GraphQL schema: every
//! endpoint of [`routes::ROUTES`] runs a GraphQL operation with the caller's identity and
//! reshapes its `data` into the legacy JSON, so no rule is decided twice. What this layer holds
//! is the other half of the old contract, what Django, DRF and Python did at the edges (parsing,
//! dispatch order, error wording, key order): the README's "What the legacy layer is".
//!
//! A request goes through the steps of DRF's `APIView.dispatch`, in DRF's order: content
//! negotiation (406), authentication (a bad token is a 401 even where none is needed), the
//! permission (no token on a protected method: 401, also before a 405), the method (405,
//! `OPTIONS` metadata, `HEAD` as `GET`), then the body (415, malformed: 400) and the operation.
//! Every response of an endpoint carries DRF's `Allow` header; unknown paths get DRF's 404 body.

pub mod body;
pub mod chat_socket;
pub mod errors;
pub mod openapi;
pub mod pyjson;
pub mod query;
pub mod routes;
pub mod shapes;

use std::net::IpAddr;
use std::sync::OnceLock;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request as GqlRequest, ServerError, Variables as GqlVariables};
use axum::Router;
use axum::extract::{RawPathParams, Request, State};
use axum::http::header::{ACCEPT, ALLOW, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use self::routes::{Direction, Input, Operation, PAGE, Reply, Route, Shape};
use crate::auth::{self, AuthError, Viewer};
use crate::client::ClientIp;
use crate::context::AppContext;
use crate::error::FieldErrors;

/// The legacy endpoints (each with and without its trailing slash), the legacy chat WebSocket,
/// `/openapi.json`, and DRF's 404 for every other path.
pub fn router() -> Router<AppContext> {
    let mut router = Router::new();
    for route in routes::ROUTES {
        let handler = move |State(ctx): State<AppContext>,
                            ClientIp(ip): ClientIp,
                            params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
                            request: Request| async move {
            // Django routes the decoded path with `[^/]+`: an empty parameter, one holding `/` (or
            // not UTF-8) matches no route.
            // A WebSocket handshake on a REST path: Channels' catch-all route answers 404.
            if chat_socket::is_websocket_upgrade(request.headers()) {
                return decorate(errors::not_found(), None);
            }
            let params: Vec<(String, String)> = match params {
                Ok(params) => params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
                Err(_) => return decorate(errors::not_found(), None),
            };
            if params.iter().any(|(_, v)| v.is_empty() || v.contains('/')) {
                return decorate(errors::not_found(), None);
            }
            decorate(handle(route, &ctx, ip, params, request).await, Some(route))
        };
        router = router.route(route.path, any(handler)).route(&format!("{}/", route.path), any(handler));
    }
    for path in chat_socket::PATHS {
        router = router.route(path, any(chat_socket::connect));
    }
    router.route("/openapi.json", get(openapi::serve)).fallback(|| async { decorate(errors::not_found(), None) })
}

/// The headers Django adds to every response, and DRF's `Allow` on an endpoint's responses.
fn decorate(mut response: Response, route: Option<&Route>) -> Response {
    let headers = response.headers_mut();
    if let Some(route) = route {
        headers.insert(ALLOW, HeaderValue::from_static(route.allow()));
    }
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    response
}

async fn handle(
    route: &'static Route,
    ctx: &AppContext,
    ip: IpAddr,
    path: Vec<(String, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let query = query::pairs(&parts.uri);
    if let Some(refusal) = negotiate(&parts, &query) {
        return refusal;
    }
    let user = if route.authenticates {
        match caller(ctx, &parts).await {
            Ok(user) => user,
            Err(err) => return errors::auth_error(&err),
        }
    } else {
        None
    };
    let operation = match parts.method {
        Method::GET | Method::HEAD => route.get.as_ref(),
        Method::POST => route.post.as_ref(),
        _ => None,
    };
    // DRF checks the permission before it looks for the method's handler.
    let open = operation.map_or(!route.authenticates, |op| op.open);
    if !open && user.is_none() {
        return errors::auth_error(&AuthError::NoCredentials);
    }
    if parts.method == Method::OPTIONS {
        return errors::json(StatusCode::OK, &route.metadata());
    }
    let Some(operation) = operation else { return errors::method_not_allowed(&parts.method) };

    let mut input = Input { path, query, body: Default::default() };
    if parts.method == Method::POST {
        let limit = ctx.state.settings.max_body_bytes.min(body::MAX_BODY_BYTES);
        let data = match body::read(&parts, body, limit).await {
            Ok(data) => data,
            Err(response) => return response,
        };
        input.body = match body::fields(&data, operation.fields) {
            Ok(fields) => fields,
            Err(errors) => return errors::invalid(&errors),
        };
    }
    let viewer = user.map_or(Viewer::Anonymous, Viewer::User);
    let call = Caller { ctx: ctx.clone(), viewer, ip };
    let variables = match (operation.variables)(&input) {
        Ok(variables) => variables,
        Err(invalid) => return call.refuse(operation, &input, &invalid).await,
    };
    let order: Vec<&str> = operation.fields.iter().map(|f| f.name).collect();
    let shaped = match call.run(operation, variables).await {
        Ok(shaped) if input.body.problems.is_empty() => shaped,
        Ok(_) => {
            // Unreachable while every operation refuses a blank required field (see `body`).
            tracing::error!(document = operation.document.text, "legacy operation accepted a blank required field");
            return errors::invalid(&input.body.problems);
        }
        Err(gql_errors) => return errors::from_graphql(&gql_errors, &input.body.problems, &order),
    };
    match shaped {
        Ok(reply) => {
            let mut response = (reply.status.unwrap_or(operation.status), reply.body).into_response();
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(err) => {
            tracing::error!(error = %err, document = operation.document.text, "legacy reply does not fit its shape");
            errors::server_error()
        }
    }
}

/// DRF's content negotiation (only JSON is rendered) and its `?format=` override.
fn negotiate(parts: &Parts, query: &[(String, String)]) -> Option<Response> {
    if let Some(format) = query::last(query, "format").filter(|f| !f.is_empty()) {
        return (format != "json").then(errors::not_found);
    }
    let accept = parts.headers.get(ACCEPT).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())?;
    let acceptable = accept.split(',').any(|range| {
        let essence = range.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(essence.as_str(), "*/*" | "application/*" | "application/json" | "*/json")
    });
    (!acceptable).then(errors::not_acceptable)
}

/// The caller as SimpleJWT's `JWTAuthentication` finds them (the same functions as GraphQL's).
async fn caller(ctx: &AppContext, parts: &Parts) -> Result<Option<entity::user::Model>, AuthError> {
    let header = auth::authorization_header(&parts.headers);
    auth::authenticate_header(&ctx.state.db, &ctx.state.tokens, header.as_deref()).await
}

/// A GraphQL document of the legacy layer, parsed once (on first use) and reused: a request
/// then skips parsing (async-graphql still validates each one against the schema).
pub struct Document {
    pub text: &'static str,
    parsed: OnceLock<Option<ExecutableDocument>>,
}

impl Document {
    pub const fn new(text: &'static str) -> Self {
        Self { text, parsed: OnceLock::new() }
    }

    /// A request of this document (already parsed, unless it does not parse: then the
    /// schema reports why).
    fn request(&self, variables: Value) -> GqlRequest {
        // The server's own document: it runs in the trusted-documents mode too.
        let mut request = GqlRequest::new(self.text)
            .variables(GqlVariables::from_json(variables))
            .data(crate::graphql::trusted::ServerDocument);
        if let Some(parsed) = self.parsed.get_or_init(|| async_graphql::parser::parse_query(self.text).ok()) {
            request.set_parsed_query(parsed.clone());
        }
        request
    }
}

/// The legacy body of an operation's result, or why its result does not fit the body.
type Shaped = Result<Reply, serde_json::Error>;

/// A result that does not fit its legacy shape (logged, answered 500).
fn unshapeable(why: &str) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(why)
}

/// Every GraphQL document the legacy layer sends: the table's operations and guards, and the
/// chat socket's (a test validates each against the schema).
pub fn documents() -> impl Iterator<Item = &'static Document> {
    let table = routes::ROUTES.iter().flat_map(|route| [&route.get, &route.post]).flatten();
    table.flat_map(|op| std::iter::once(op.document).chain(op.guard)).chain(chat_socket::DOCUMENTS)
}

/// A caller of the schema for the legacy transports: an identity and an address.
struct Caller {
    ctx: AppContext,
    viewer: Viewer,
    ip: IpAddr,
}

impl Caller {
    /// A request of `document` as this caller (for `execute`, or a subscription's stream).
    fn request(&self, document: &Document, variables: Value) -> GqlRequest {
        crate::graphql::prepare(document.request(variables), &self.ctx.state, self.viewer.clone(), ClientIp(self.ip))
    }

    /// Runs a query or mutation: its `data`, or its errors.
    async fn execute(&self, document: &Document, variables: Value) -> Result<Value, Vec<ServerError>> {
        let response = self.ctx.schema.execute(self.request(document, variables)).await;
        if !response.errors.is_empty() {
            return Err(response.errors);
        }
        response.data.into_json().map_err(|err| vec![ServerError::new(format!("data is not JSON: {err}"), None)])
    }

    /// Runs an operation and shapes its result. A paged one is repeated until its connection is
    /// read (or `limit` items are): a [`Shape::List`] writes each page's nodes as it comes; a
    /// [`Shape::Data`] gets the first page's `data` with every node in place of the connection.
    async fn run(&self, operation: &Operation, variables: routes::Variables) -> Result<Shaped, Vec<ServerError>> {
        let routes::Variables { variables: mut vars, limit } = variables;
        let Some(paging) = operation.paging else {
            let data = self.execute(operation.document, vars).await?;
            return Ok(match operation.shape {
                Shape::Data(shape) => shape(data),
                Shape::List(_) => Err(unshapeable("a list shape without paging")),
            });
        };
        let (size_var, cursor_var) = match paging.direction {
            Direction::Forward => ("first", "after"),
            Direction::Backward => ("last", "before"),
        };
        let mut first_data: Option<Value> = None;
        // Pages in the order they were read (a backward read reads the newest first): nodes for
        // a `Shape::Data`, written nodes for a `Shape::List`.
        let mut pages: Vec<Vec<Value>> = Vec::new();
        let mut written: Vec<Vec<u8>> = Vec::new();
        let mut remaining = limit;
        loop {
            let size = remaining.map_or(PAGE, |r| r.min(PAGE));
            vars[size_var] = json!(size);
            let mut data = self.execute(operation.document, vars.clone()).await?;
            // Missing (its parent is null, e.g. no such user): a `Shape::Data` decides what
            // that means; a list has nothing to write.
            let connection = data.pointer_mut(paging.connection).map(Value::take);
            if connection.is_none() && matches!(operation.shape, Shape::List(_)) {
                return Ok(Err(unshapeable("the paged connection is missing")));
            }
            let mut connection = connection.unwrap_or_default();
            let nodes = match connection.get_mut("nodes").map(Value::take) {
                Some(Value::Array(nodes)) => nodes,
                _ => Vec::new(),
            };
            let info = &connection["pageInfo"];
            let (more, cursor) = match paging.direction {
                Direction::Forward => (info["hasNextPage"].as_bool(), &info["endCursor"]),
                Direction::Backward => (info["hasPreviousPage"].as_bool(), &info["startCursor"]),
            };
            let count = nodes.len() as u64;
            match operation.shape {
                Shape::List(item) => match routes::write_page(item, &nodes) {
                    Ok(page) => written.push(page),
                    Err(err) => return Ok(Err(err)),
                },
                Shape::Data(_) => pages.push(nodes),
            }
            remaining = remaining.map(|r| r.saturating_sub(count));
            first_data.get_or_insert(data);
            let done = more != Some(true) || count == 0 || cursor.is_null() || remaining == Some(0);
            if done {
                break;
            }
            vars[cursor_var] = cursor.clone();
        }
        if paging.direction == Direction::Backward {
            pages.reverse();
            written.reverse();
        }
        match operation.shape {
            Shape::List(_) => Ok(Ok(Reply { body: routes::list_body(&written), status: None })),
            Shape::Data(shape) => {
                let mut data = first_data.unwrap_or_default();
                if let Some(slot) = data.pointer_mut(paging.connection) {
                    *slot = Value::Array(pages.into_iter().flatten().collect());
                }
                Ok(shape(data))
            }
        }
    }

    /// The transport's own 400, unless the operation's guard (run with the path parameters)
    /// fails first: DRF looks the room up before it reads the query.
    async fn refuse(&self, operation: &Operation, input: &Input, invalid: &FieldErrors) -> Response {
        if let Some(guard) = operation.guard {
            let params: serde_json::Map<String, Value> =
                input.path.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            if let Err(gql_errors) = self.execute(guard, Value::Object(params)).await {
                return errors::from_graphql(&gql_errors, &FieldErrors::default(), &[]);
            }
        }
        errors::invalid(invalid)
    }
}
