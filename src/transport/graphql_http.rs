//! GraphQL over HTTP (`/graphql`, GET and POST, multipart uploads) by the GraphQL-over-HTTP
//! specification, and the GraphiQL page (`/graphiql`).
//!
//! Every answer of `/graphql` is a GraphQL response in JSON with `extensions.code` on each error,
//! transport errors included (a body that is not JSON, a batch, a missing file: 400; too large:
//! 413; a body type other than JSON or multipart: 415, so that no form or `text/plain` request a
//! browser sends across sites without a preflight runs anything). The response type follows the
//! `Accept` header: `application/json` unless the client prefers
//! `application/graphql-response+json`, with which a request refused before execution (it does
//! not parse or validate, or its variables do not coerce) is a 400 without `data`.

use async_graphql::http::{GraphiQLSource, MultipartOptions};
use async_graphql::parser::types::OperationType;
use axum::extract::{Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::extract::Caller;
use crate::auth::Viewer;
use crate::client::ClientIp;
use crate::context::AppContext;
use crate::graphql;
use crate::graphql::error::BAD_USER_INPUT;

/// Most files one request may carry (`updateProfile.image` is the only upload).
pub const MAX_UPLOADS: usize = 1;
/// Room for the `operations` and `map` parts beside the largest accepted avatar, so that a
/// slightly oversized image still reaches the resolver and gets a field error.
pub const MULTIPART_SLACK: usize = 64 * 1024;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// The media type of the answer, from the request's `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseType {
    /// `application/json`: every GraphQL response is a 200.
    Json,
    /// `application/graphql-response+json`: a request refused before execution is a 400.
    GraphQLResponseJson,
}

impl ResponseType {
    /// `application/graphql-response+json` when the client prefers it (a higher `q`, or listed
    /// first at the same `q`) to `application/json` (which `*/*` and `application/*` also
    /// accept); `application/json` otherwise, no or an unsatisfiable `Accept` included.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let mut best: Option<(f32, ResponseType)> = None;
        for (media, q) in accepted(headers) {
            let kind = match media.as_str() {
                GRAPHQL_RESPONSE_JSON => ResponseType::GraphQLResponseJson,
                "application/json" | "application/*" | "*/*" => ResponseType::Json,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, kind));
            }
        }
        best.map_or(ResponseType::Json, |(_, kind)| kind)
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            ResponseType::Json => "application/json; charset=utf-8",
            ResponseType::GraphQLResponseJson => "application/graphql-response+json; charset=utf-8",
        })
    }

    /// A GraphQL response body in this media type.
    fn answer(self, status: StatusCode, body: &Value) -> Response {
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(CONTENT_TYPE, self.content_type());
        response
    }
}

/// The media ranges of the `Accept` header, in order, lower-cased, each with its `q` (1 when
/// it has none).
pub fn accepted(headers: &HeaderMap) -> impl Iterator<Item = (String, f32)> + '_ {
    let ranges = headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    ranges.map(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
            .next()
            .unwrap_or(1.0);
        (media, q)
    })
}

/// A request refused by the transport, before it became a GraphQL request.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("A GraphQL request is a JSON body (application/json) or a multipart upload (multipart/form-data).")]
    UnsupportedMediaType,
    #[error("The request body is too large.")]
    TooLarge,
    #[error("{0}")]
    BadRequest(String),
    #[error("Batched requests are not supported: send one operation per request.")]
    Batch,
    #[error("Too many files: at most {MAX_UPLOADS}.")]
    TooManyFiles,
    /// A mutation (or subscription) sent with GET: only queries may be, as GET requests can be
    /// triggered across sites and cached.
    #[error("Only queries may be sent with GET; use POST.")]
    NotAQuery,
}

impl TransportError {
    fn status(&self) -> StatusCode {
        match self {
            TransportError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TransportError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            TransportError::NotAQuery => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The GraphQL response of this error.
    pub fn into_response(self, response_type: ResponseType) -> Response {
        let body = json!({"errors": [{"message": self.to_string(), "extensions": {"code": BAD_USER_INPUT}}]});
        let mut response = response_type.answer(self.status(), &body);
        if matches!(self, TransportError::NotAQuery) {
            response.headers_mut().insert(axum::http::header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        response
    }
}

impl From<async_graphql::ParseRequestError> for TransportError {
    fn from(err: async_graphql::ParseRequestError) -> Self {
        use async_graphql::ParseRequestError as E;
        match err {
            E::PayloadTooLarge => TransportError::TooLarge,
            E::UnsupportedBatch => TransportError::Batch,
            E::Io(err) if is_too_large(&err) => TransportError::TooLarge,
            E::InvalidRequest(err) => TransportError::BadRequest(format!("The request is not valid: {err}")),
            E::InvalidFilesMap(err) => TransportError::BadRequest(format!("The multipart `map` is not valid: {err}")),
            E::MissingOperatorsPart => {
                TransportError::BadRequest("The multipart request has no `operations` part.".into())
            }
            E::MissingMapPart => TransportError::BadRequest("The multipart request has no `map` part.".into()),
            E::NotUpload => {
                TransportError::BadRequest("A multipart `map` names a variable that is not an Upload.".into())
            }
            E::MissingFiles => TransportError::BadRequest("A file the multipart `map` names is missing.".into()),
            E::InvalidMultipart(err) => TransportError::BadRequest(format!("The multipart body is not valid: {err}")),
            other => TransportError::BadRequest(format!("The request is not valid: {other}")),
        }
    }
}

/// Whether a body read failed because the body passed the size limit.
fn is_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The parameters of a GraphQL request, by the GraphQL-over-HTTP specification's names: a JSON
/// body, or a GET query string (where `variables` and `extensions` are JSON text).
#[derive(serde::Deserialize)]
struct Params<V> {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<V>,
    extensions: Option<V>,
}

type JsonObject = serde_json::Map<String, Value>;

impl Params<JsonObject> {
    fn into_request(self) -> Result<async_graphql::Request, TransportError> {
        // Without a document, the hash of a persisted one (Apollo's automatic persisted queries).
        let persisted = self.extensions.as_ref().is_some_and(|e| e.contains_key("persistedQuery"));
        let Some(query) = self.query.or_else(|| persisted.then(String::new)) else {
            return Err(TransportError::BadRequest("The request has no `query`.".into()));
        };
        let mut request = async_graphql::Request::new(query);
        request.operation_name = self.operation_name;
        if let Some(variables) = self.variables {
            request.variables = async_graphql::Variables::from_json(Value::Object(variables));
        }
        for (key, value) in self.extensions.unwrap_or_default() {
            let value =
                async_graphql::Value::from_json(value).map_err(|err| TransportError::BadRequest(err.to_string()))?;
            request.extensions.insert(key, value);
        }
        Ok(request)
    }
}

/// Reads a GET request's query string.
fn read_get(query: &str) -> Result<async_graphql::Request, TransportError> {
    let params: Params<String> = serde_urlencoded::from_str(query)
        .map_err(|err| TransportError::BadRequest(format!("The query string is not valid: {err}")))?;
    let json = |text: Option<String>, name: &str| -> Result<Option<JsonObject>, TransportError> {
        match text.as_deref().map(str::trim) {
            None | Some("") | Some("null") => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|err| TransportError::BadRequest(format!("`{name}` is not a JSON object: {err}"))),
        }
    };
    let variables = json(params.variables, "variables")?;
    let extensions = json(params.extensions, "extensions")?;
    Params { query: params.query, operation_name: params.operation_name, variables, extensions }.into_request()
}

/// Reads a JSON body: one request (a batch, a JSON array, is refused).
fn read_json(body: &[u8]) -> Result<async_graphql::Request, TransportError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| TransportError::BadRequest(format!("The body is not valid JSON: {err}")))?;
    match value {
        Value::Array(_) => Err(TransportError::Batch),
        Value::Object(_) => serde_json::from_value::<Params<JsonObject>>(value)
            .map_err(|err| TransportError::BadRequest(format!("The request is not valid: {err}")))?
            .into_request(),
        _ => Err(TransportError::BadRequest("The body is not a JSON object.".into())),
    }
}

/// The essence of a `Content-Type` (`application/json; charset=utf-8` → `application/json`).
fn essence(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// What a GET request may run (GET requests can be triggered across sites and cached, so never
/// a mutation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetRuns {
    Queries,
    /// Over an event stream, whose `EventSource` can only GET (subscriptions change nothing).
    QueriesAndSubscriptions,
}

/// Reads a GraphQL request from GET's query string or a POST body (JSON or multipart, the
/// multipart stream capped: no part and no whole stream larger than an avatar plus
/// [`MULTIPART_SLACK`], at most [`MAX_UPLOADS`] files).
async fn read_request(
    ctx: &AppContext,
    request: axum::extract::Request,
    get_runs: GetRuns,
) -> Result<async_graphql::Request, TransportError> {
    if request.method() == Method::GET {
        let mut request = read_get(request.uri().query().unwrap_or(""))?;
        if request.query.is_empty() && request.extensions.contains_key("persistedQuery") {
            // The document is known once the schema looks its hash up: checked there.
            return Ok(request.data(graphql::persisted::QueriesOnly));
        }
        let limits = graphql::limits::Limits::from_settings(&ctx.state.settings);
        let runs = is_query(&mut request, &limits)
            || (get_runs == GetRuns::QueriesAndSubscriptions
                && graphql::selected_operation(&mut request) == Some(OperationType::Subscription));
        if !runs {
            return Err(TransportError::NotAQuery);
        }
        return Ok(request);
    }
    let content_type = essence(request.headers());
    match content_type.as_deref() {
        Some("application/json") => {
            let body = axum::body::to_bytes(request.into_body(), usize::MAX).await.map_err(|err| {
                if is_too_large(&err) { TransportError::TooLarge } else { TransportError::BadRequest(err.to_string()) }
            })?;
            read_json(&body)
        }
        Some("multipart/form-data") => read_multipart(request).await,
        _ => Err(TransportError::UnsupportedMediaType),
    }
}

/// Reads a GraphQL request ([`read_request`]) and attaches what every resolver may need
/// ([`graphql::prepare`]); a request the transport refuses is answered in `response_type`.
pub async fn read_prepared(
    ctx: &AppContext,
    request: axum::extract::Request,
    get_runs: GetRuns,
    response_type: ResponseType,
    viewer: Viewer,
    client: ClientIp,
) -> Result<async_graphql::Request, Response> {
    match read_request(ctx, request, get_runs).await {
        Ok(request) => Ok(graphql::prepare(request, &ctx.state, viewer, client)),
        Err(err) => Err(err.into_response(response_type)),
    }
}

/// A multipart request. When it is refused (a malformed `map`, say) the rest of the body is
/// still read, so that a client that is still sending it sees the answer rather than a broken
/// pipe.
async fn read_multipart(request: axum::extract::Request) -> Result<async_graphql::Request, TransportError> {
    let content_type = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = std::sync::Arc::new(std::sync::Mutex::new(request.into_body().into_data_stream()));
    let shared = {
        let body = body.clone();
        futures_util::stream::poll_fn(move |cx| body.lock().expect("body lock").poll_next_unpin(cx))
    };
    let reader = tokio_util::io::StreamReader::new(shared.map_err(std::io::Error::other)).compat();
    let options = MultipartOptions::default()
        .max_file_size(crate::media::MAX_IMAGE_BYTES + MULTIPART_SLACK)
        .max_num_files(MAX_UPLOADS);
    let read = async_graphql::http::receive_batch_body(content_type, reader, options).await;
    let result = read.and_then(|batch| batch.into_single()).map_err(TransportError::from).and_then(|request| {
        if request.uploads.len() > MAX_UPLOADS { Err(TransportError::TooManyFiles) } else { Ok(request) }
    });
    if result.is_err() {
        let mut rest = futures_util::stream::poll_fn(move |cx| body.lock().expect("body lock").poll_next_unpin(cx));
        while let Some(Ok(_)) = rest.next().await {}
    }
    result
}

/// Whether the operation a request selects is a query (a document that exceeds the limits, does
/// not parse, or names no operation, counts as one: execution reports the error). The document
/// is parsed here, so it is checked against the limits first, as the schema would.
fn is_query(request: &mut async_graphql::Request, limits: &graphql::limits::Limits) -> bool {
    graphql::limits::prescan(&request.query, limits).is_err() || graphql::selects_a_query(request)
}

/// Whether a response is a request refused before execution (it did not parse or validate, or
/// its variables did not coerce).
fn refused(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null && graphql::error::is_request_error(&response.errors)
}

/// The JSON body of a GraphQL response: without `data` when the request was refused before
/// execution.
pub fn body(response: &async_graphql::Response) -> Value {
    let mut body = serde_json::to_value(response).unwrap_or_else(|_| json!({}));
    if refused(response)
        && let Some(body) = body.as_object_mut()
    {
        body.remove("data");
    }
    body
}

/// The HTTP answer of a GraphQL response: a request refused before execution has no `data`
/// (and is a 400 in `application/graphql-response+json`).
pub fn respond(response_type: ResponseType, response: async_graphql::Response) -> Response {
    let refused = refused(&response);
    let cache_control = if response.errors.is_empty() { response.cache_control.value() } else { None };
    let headers = response.http_headers.clone();
    let body = body(&response);
    // An unknown persisted query is a 200 as Apollo Server answers it (its client reads it so).
    let invalid = refused
        && response
            .errors
            .iter()
            .all(|e| graphql::error::code_of(e) != Some(graphql::error::PERSISTED_QUERY_NOT_FOUND));
    let status = if invalid && response_type == ResponseType::GraphQLResponseJson {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut answer = response_type.answer(status, &body);
    answer.headers_mut().extend(headers);
    if let Some(value) = cache_control.and_then(|v| HeaderValue::from_str(&v).ok()) {
        answer.headers_mut().insert(axum::http::header::CACHE_CONTROL, value);
    }
    answer
}

/// `/graphql`: read the request, run it, answer in the negotiated media type (an event stream
/// when the client asks for one: [`graphql_sse`](super::graphql_sse)).
pub async fn graphql_http(
    State(ctx): State<AppContext>,
    client: ClientIp,
    Caller(viewer): Caller,
    request: axum::extract::Request,
) -> Response {
    if super::graphql_sse::wanted(request.headers()) {
        return super::graphql_sse::serve(ctx, client, viewer, request).await;
    }
    let response_type = ResponseType::negotiate(request.headers());
    match read_prepared(&ctx, request, GetRuns::Queries, response_type, viewer, client).await {
        Ok(request) => respond(response_type, ctx.schema.execute(request).await),
        Err(refused) => refused,
    }
}

/// Gives the body-size layer's bare 413 (a `Content-Length` over the limit, refused before the
/// handler runs) the GraphQL response body every answer of `/graphql` has.
pub async fn json_too_large(request_headers: HeaderMap, response: Response) -> Response {
    let json = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
        let mut answer = TransportError::TooLarge.into_response(ResponseType::negotiate(&request_headers));
        answer.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
        return answer;
    }
    response
}

/// Query of the playground page: `/graphiql?token=<access>` signs its queries and
/// subscriptions in (GraphiQL sends its headers pane over HTTP only, never in
/// `connection_init`).
#[derive(serde::Deserialize)]
pub struct PlaygroundQuery {
    token: Option<String>,
}

pub async fn graphiql(State(ctx): State<AppContext>, Query(query): Query<PlaygroundQuery>) -> Html<String> {
    // Only a JWT's alphabet is put into the page's script.
    let token = query.token.filter(|t| {
        !t.is_empty() && t.len() < 4096 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    });
    let bearer = token.as_ref().map(|t| format!("Bearer {t}"));
    let mut page =
        GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql/ws").title("Agora GraphiQL");
    if let (Some(token), Some(bearer)) = (token.as_deref(), bearer.as_deref()) {
        page = page.header("Authorization", bearer).ws_connection_param("token", token);
    }
    let base = ctx.state.settings.graphiql_cdn.trim_end_matches('/');
    Html(page.finish().replace("https://unpkg.com", base))
}
