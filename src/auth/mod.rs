//! Who is calling: passwords, tokens, and the identity of a request.
//!
//! Every transport (GraphQL over HTTP or WebSocket, legacy REST, the legacy chat socket) turns
//! its credentials into a [`Viewer`] with [`authenticate`], so the rules of SimpleJWT's
//! `JWTAuthentication` are written once.

pub mod account_throttle;
pub mod password;
pub mod throttle;
pub mod tokens;

use sea_orm::{DatabaseConnection, EntityTrait};

pub use account_throttle::{AccountLimits, AccountThrottle};
pub use password::PasswordHasher;
pub use throttle::Throttle;
pub use tokens::{TokenKind, TokenProblem, TokenService};

/// Why a caller is not authenticated, with SimpleJWT's wording (`detail`, `code`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Authentication credentials were not provided.")]
    NoCredentials,
    #[error("Authorization header must contain two space-delimited values")]
    BadHeader,
    /// An access token that failed a check.
    #[error("Given token not valid for any token type")]
    BadAccessToken(TokenProblem),
    /// A refresh token that failed a check (refresh, revoke).
    #[error("{}", .0.message())]
    BadRefreshToken(TokenProblem),
    #[error("Token contained no recognizable user identification")]
    NoUserId,
    #[error("User not found")]
    UserNotFound,
    #[error("User is inactive")]
    UserInactive,
    /// Sign-in with a wrong username or password.
    #[error("No active account found with the given credentials")]
    BadCredentials,
    /// A valid refresh token whose user is gone or inactive.
    #[error("No active account found for the given token.")]
    NoAccountForToken,
    /// The user could not be looked up (the database is unreachable): not the caller's fault,
    /// so never answered as a 401 that would sign a legacy client out.
    #[error("{}", crate::domain::messages::INTERNAL)]
    Unavailable,
}

impl AuthError {
    /// SimpleJWT's `code`, where its body has one.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            AuthError::NoCredentials | AuthError::BadCredentials | AuthError::Unavailable => None,
            AuthError::BadHeader => Some("bad_authorization_header"),
            AuthError::BadAccessToken(_) | AuthError::BadRefreshToken(_) | AuthError::NoUserId => {
                Some("token_not_valid")
            }
            AuthError::UserNotFound => Some("user_not_found"),
            AuthError::UserInactive => Some("user_inactive"),
            AuthError::NoAccountForToken => Some("no_active_account"),
        }
    }
}

/// The identity of one request, resolved once by the transport.
#[derive(Debug, Clone)]
pub enum Viewer {
    Anonymous,
    User(entity::user::Model),
    /// Credentials were sent but refused: protected operations report this, open ones ignore it.
    Refused(AuthError),
}

impl Viewer {
    /// The signed-in user, or why there is none.
    pub fn require(&self) -> Result<&entity::user::Model, AuthError> {
        match self {
            Viewer::User(user) => Ok(user),
            Viewer::Anonymous => Err(AuthError::NoCredentials),
            Viewer::Refused(err) => Err(err.clone()),
        }
    }

    pub fn from_result(result: Result<Option<entity::user::Model>, AuthError>) -> Self {
        match result {
            Ok(Some(user)) => Viewer::User(user),
            Ok(None) => Viewer::Anonymous,
            Err(err) => Viewer::Refused(err),
        }
    }
}

/// The token of an `Authorization` header, as SimpleJWT reads it: another scheme (or none) is
/// "no credentials"; `Bearer` must be followed by exactly one value.
pub fn bearer_token(header: Option<&str>) -> Result<Option<&str>, AuthError> {
    let Some(header) = header else { return Ok(None) };
    let parts: Vec<&str> = header.split_whitespace().collect();
    match parts.as_slice() {
        [] => Ok(None),
        [scheme, ..] if *scheme != "Bearer" => Ok(None),
        [_, token] => Ok(Some(token)),
        _ => Err(AuthError::BadHeader),
    }
}

/// The `Authorization` header as Django's `request.META` has it: each value decoded as Latin-1,
/// several headers joined with `,` (so two of them are a malformed header, never a choice).
pub fn authorization_header(headers: &axum::http::HeaderMap) -> Option<String> {
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let first = values.next()?;
    let latin1 = |bytes: &[u8]| bytes.iter().map(|&b| b as char).collect::<String>();
    Some(values.fold(latin1(first.as_bytes()), |joined, next| joined + "," + &latin1(next.as_bytes())))
}

/// The active user of an `Authorization` header (SimpleJWT's `JWTAuthentication`); no header or
/// another scheme: anonymous.
pub async fn authenticate_header(
    db: &DatabaseConnection,
    tokens: &TokenService,
    header: Option<&str>,
) -> Result<Option<entity::user::Model>, AuthError> {
    authenticate(db, tokens, bearer_token(header)?).await
}

/// The active user an access token names. `None` token: anonymous.
pub async fn authenticate(
    db: &DatabaseConnection,
    tokens: &TokenService,
    token: Option<&str>,
) -> Result<Option<entity::user::Model>, AuthError> {
    let Some(token) = token else { return Ok(None) };
    let user_id = access_user_id(tokens, token)?;
    let user = entity::user::Entity::find_by_id(user_id).one(db).await.map_err(|err| {
        tracing::error!(error = %err, "user lookup failed");
        AuthError::Unavailable
    })?;
    active(user).map(Some)
}

/// The id of the user an access token names (the token checked, the user not looked up).
pub fn access_user_id(tokens: &TokenService, token: &str) -> Result<i64, AuthError> {
    let verified = tokens.verify(token, TokenKind::Access).map_err(AuthError::BadAccessToken)?;
    verified.user_id.ok_or(AuthError::NoUserId)
}

/// The user an access token names, as read (`None`: no such user): refused unless active.
/// [`authenticate`] reads the user alone; a caller that reads it along with other rows (the
/// legacy chat socket's handshake) applies the same rule here.
pub fn active(user: Option<entity::user::Model>) -> Result<entity::user::Model, AuthError> {
    let user = user.ok_or(AuthError::UserNotFound)?;
    if !user.is_active {
        return Err(AuthError::UserInactive);
    }
    Ok(user)
}

/// Which of `ids` are users that exist and are active, in one statement (the socket watcher's
/// check: deactivated or deleted users lose their sockets).
pub async fn active_users(
    db: &DatabaseConnection,
    ids: &[i64],
) -> Result<std::collections::HashSet<i64>, sea_orm::DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
    let active: Vec<i64> = entity::user::Entity::find()
        .select_only()
        .column(entity::user::Column::Id)
        .filter(entity::user::Column::Id.is_in(ids.iter().copied()))
        .filter(entity::user::Column::IsActive.eq(true))
        .into_tuple()
        .all(db)
        .await?;
    Ok(active.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing_follows_simplejwt() {
        assert_eq!(bearer_token(None), Ok(None));
        assert_eq!(bearer_token(Some("Token abc")), Ok(None));
        assert_eq!(bearer_token(Some("bearer abc")), Ok(None));
        assert_eq!(bearer_token(Some("Bearer abc")), Ok(Some("abc")));
        assert_eq!(bearer_token(Some("Bearer")), Err(AuthError::BadHeader));
        assert_eq!(bearer_token(Some("Bearer a b")), Err(AuthError::BadHeader));
    }

    #[test]
    fn the_header_is_read_as_django_reads_it() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(authorization_header(&headers), None);
        headers.append("authorization", axum::http::HeaderValue::from_bytes(b"Bearer \xe9t\xe9").unwrap());
        assert_eq!(authorization_header(&headers).as_deref(), Some("Bearer \u{e9}t\u{e9}"));
        headers.append("authorization", "Bearer b".parse().unwrap());
        assert_eq!(authorization_header(&headers).as_deref(), Some("Bearer \u{e9}t\u{e9},Bearer b"));
        assert_eq!(bearer_token(authorization_header(&headers).as_deref()), Err(AuthError::BadHeader));
    }
}
