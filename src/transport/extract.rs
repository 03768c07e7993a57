//! Extractors shared by every HTTP handler (GraphQL and legacy): the caller's address
//! ([`ClientIp`]) and the caller ([`Caller`]), each read by one rule.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::auth::{self, Viewer};
use crate::client::{self, ClientIp};
use crate::context::AppContext;

impl FromRequestParts<AppContext> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppContext) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        let forwarded = ctx.state.settings.trust_forwarded_for.then(|| client::forwarded_for(&parts.headers)).flatten();
        Ok(ClientIp(forwarded.or(peer).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// The caller of a request, from its `Authorization` header(s) as Django reads them
/// ([`auth::authorization_header`]): anonymous, a user, or refused with the reason.
pub struct Caller(pub Viewer);

impl FromRequestParts<AppContext> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppContext) -> Result<Self, Infallible> {
        let header = auth::authorization_header(&parts.headers);
        let result = auth::authenticate_header(&ctx.state.db, &ctx.state.tokens, header.as_deref()).await;
        Ok(Caller(Viewer::from_result(result)))
    }
}
