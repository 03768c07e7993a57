//! GraphQL over HTTP (`/graphql`, GET and POST, multipart uploads) and the GraphiQL page
//! (`/graphiql`).

use async_graphql::ParseRequestError;
use async_graphql::http::{GraphiQLSource, MultipartOptions};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{FromRequest, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use futures_util::TryStreamExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::extract::Caller;
use crate::client::ClientIp;
use crate::context::AppContext;
use crate::graphql;

/// Most files one request may carry (`updateProfile.image` is the only upload).
pub const MAX_UPLOADS: usize = 1;
/// Room for the `operations` and `map` parts beside the largest accepted avatar, so that a
/// slightly oversized image still reaches the resolver and gets a field error.
pub const MULTIPART_SLACK: usize = 64 * 1024;

/// A GraphQL request (GET, JSON or multipart) with the multipart stream capped: no part and no
/// whole stream larger than an avatar plus [`MULTIPART_SLACK`] (413), at most [`MAX_UPLOADS`]
/// files (400). async-graphql-axum's own extractor has no limits at all.
pub struct LimitedRequest(pub async_graphql::Request);

pub enum LimitedRejection {
    Parse(GraphQLRejection),
    TooManyFiles,
    /// A mutation (or subscription) sent with GET: only queries may be, as GET requests can be
    /// triggered across sites and cached.
    NotAQuery,
}

impl IntoResponse for LimitedRejection {
    fn into_response(self) -> Response {
        match self {
            LimitedRejection::Parse(rejection) => rejection.into_response(),
            LimitedRejection::TooManyFiles => {
                (StatusCode::BAD_REQUEST, format!("Too many files: at most {MAX_UPLOADS}.")).into_response()
            }
            LimitedRejection::NotAQuery => {
                let body = serde_json::json!({"errors": [{
                    "message": "Only queries may be sent with GET; use POST.",
                    "extensions": {"code": graphql::error::BAD_USER_INPUT},
                }]});
                (StatusCode::METHOD_NOT_ALLOWED, [(axum::http::header::ALLOW, "GET, POST")], axum::Json(body))
                    .into_response()
            }
        }
    }
}

impl From<ParseRequestError> for LimitedRejection {
    fn from(err: ParseRequestError) -> Self {
        LimitedRejection::Parse(GraphQLRejection(err))
    }
}

impl FromRequest<AppContext> for LimitedRequest {
    type Rejection = LimitedRejection;

    async fn from_request(req: axum::extract::Request, ctx: &AppContext) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET {
            let request = GraphQLRequest::<GraphQLRejection>::from_request(req, ctx).await;
            let mut request = request.map(|r| r.into_inner()).map_err(LimitedRejection::Parse)?;
            let limits = graphql::limits::Limits::from_settings(&ctx.state.settings);
            if !is_query(&mut request, &limits) {
                return Err(LimitedRejection::NotAQuery);
            }
            return Ok(LimitedRequest(request));
        }
        let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = req.into_body().into_data_stream().map_err(std::io::Error::other);
        let reader = tokio_util::io::StreamReader::new(body).compat();
        let options = MultipartOptions::default()
            .max_file_size(crate::media::MAX_IMAGE_BYTES + MULTIPART_SLACK)
            .max_num_files(MAX_UPLOADS);
        let request = async_graphql::http::receive_batch_body(content_type, reader, options).await?.into_single()?;
        if request.uploads.len() > MAX_UPLOADS {
            return Err(LimitedRejection::TooManyFiles);
        }
        Ok(LimitedRequest(request))
    }
}

/// Whether the operation a request selects is a query (a document that exceeds the limits, does
/// not parse, or names no operation, counts as one: execution reports the error). The document
/// is parsed here, so it is checked against the limits first, as the schema would.
fn is_query(request: &mut async_graphql::Request, limits: &graphql::limits::Limits) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    if graphql::limits::prescan(&request.query, limits).is_err() {
        return true;
    }
    let name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else { return true };
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name.as_str()),
        (DocumentOperations::Multiple(operations), None) => {
            operations.values().next().filter(|_| operations.len() == 1)
        }
    };
    operation.is_none_or(|operation| operation.node.ty == OperationType::Query)
}

pub async fn graphql_http(
    State(ctx): State<AppContext>,
    client: ClientIp,
    Caller(viewer): Caller,
    LimitedRequest(request): LimitedRequest,
) -> GraphQLResponse {
    let request = graphql::prepare(request, &ctx.state, viewer, client);
    ctx.schema.execute(request).await.into()
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
