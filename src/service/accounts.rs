//! Accounts: registration, sign-in, token refresh and revocation, user lookups.

use std::net::IpAddr;

use chrono::{SubsecRound, Utc};
use entity::{profile, revoked_token, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use unicode_normalization::UnicodeNormalization;

use crate::auth::{AuthError, PasswordHasher, TokenKind, TokenService};
use crate::domain;
use crate::domain::messages::{self, BLANK, EMAIL_TAKEN, NULL_CHARACTERS, USERNAME_TAKEN};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::service::page::{Page, Total, page_size};
use crate::state::AppState;

pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: String,
}

pub struct TokenPair {
    pub access: String,
    pub refresh: String,
}

/// The case-insensitive key of a username or email (the unique indexes are on these keys).
pub fn fold(value: &str) -> String {
    value.to_lowercase()
}

/// Whether a username (`key` = `UsernameKey`) or email (`EmailKey`) is taken, in any case.
async fn taken(db: &impl ConnectionTrait, key: user::Column, value: &str) -> AppResult<bool> {
    if !domain::storable(value) {
        return Ok(false);
    }
    Ok(user::Entity::find().filter(key.eq(fold(value))).count(db).await? > 0)
}

/// Creates a user and an empty profile in one transaction. Every invalid field is reported.
pub async fn register(state: &AppState, client: Option<IpAddr>, input: Registration) -> AppResult<user::Model> {
    state
        .auth_throttle
        .check(client)
        .inspect_err(|_| crate::metrics::throttled("auth"))
        .map_err(AppError::Throttled)?;
    let mut errors = FieldErrors::new();

    let username = domain::trim(&input.username);
    // Stored as Django's user manager stores it, NFKC-normalised; the rules apply to what is
    // typed and to what would be stored (NFKC can lengthen a name, or fold it onto another).
    let stored_username: String = username.nfkc().collect();
    if username.is_empty() {
        errors.add("username", BLANK);
    } else {
        if !domain::is_valid_username(username) {
            errors.add("username", messages::USERNAME_INVALID);
        }
        if taken(&state.db, user::Column::UsernameKey, username).await?
            || taken(&state.db, user::Column::UsernameKey, &stored_username).await?
        {
            errors.add("username", USERNAME_TAKEN);
        }
        if username.chars().count().max(stored_username.chars().count()) > domain::USERNAME_MAX {
            errors.add("username", messages::too_long(domain::USERNAME_MAX));
        }
        if !domain::storable(username) {
            errors.add("username", NULL_CHARACTERS);
        }
    }

    let email = domain::trim(&input.email);
    if email.is_empty() {
        errors.add("email", BLANK);
    } else {
        if taken(&state.db, user::Column::EmailKey, email).await? {
            errors.add("email", EMAIL_TAKEN);
        }
        if email.chars().count() > domain::EMAIL_MAX {
            errors.add("email", messages::too_long(domain::EMAIL_MAX));
        }
        if !domain::storable(email) {
            errors.add("email", NULL_CHARACTERS);
        }
        if !domain::is_valid_email(email) {
            errors.add("email", messages::EMAIL_INVALID);
        }
    }

    let password = domain::trim(&input.password);
    for problem in new_password_problems(password, &input.username, &input.email) {
        errors.add("password", problem);
    }
    errors.into_result()?;

    let hash = state.passwords.hash(password.to_owned()).await.map_err(AppError::internal)?;
    // The email is stored with its domain lower-cased, as Django's user manager does.
    let username = stored_username.as_str();
    let email = normalize_email(email);
    let email = email.as_str();
    let now = Utc::now().trunc_subsecs(6);
    let new_user = user::ActiveModel {
        username: Set(username.to_owned()),
        email: Set(email.to_owned()),
        username_key: Set(fold(username)),
        email_key: Set(fold(email)),
        password_hash: Set(hash),
        is_active: Set(true),
        date_joined: Set(now),
        last_login: Set(None),
        ..Default::default()
    };
    let created = crate::db::write(
        &state.db,
        Box::new(move |txn| {
            Box::pin(async move {
                let user = new_user.insert(txn).await?;
                profile::ActiveModel {
                    user_id: Set(user.id),
                    image: Set(profile::DEFAULT_IMAGE.to_owned()),
                    bio: Set(String::new()),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                Ok::<_, sea_orm::DbErr>(user)
            })
        }),
    )
    .await;
    match created {
        Ok(user) => Ok(user),
        // Lost a race against an identical sign-up: the unique index decides.
        Err(err) if crate::db::is_unique_violation(&err) => {
            let mut errors = FieldErrors::new();
            if taken(&state.db, user::Column::EmailKey, email).await? {
                errors.add("email", EMAIL_TAKEN);
            }
            if errors.is_empty() || taken(&state.db, user::Column::UsernameKey, username).await? {
                errors.add("username", USERNAME_TAKEN);
            }
            Err(AppError::Invalid(errors))
        }
        Err(err) => Err(err.into()),
    }
}

/// Django's `normalize_email`: the domain part lower-cased, the local part kept.
fn normalize_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => email.to_owned(),
    }
}

/// Exchanges credentials for a token pair. A wrong username costs the same as a wrong password.
pub async fn sign_in(state: &AppState, client: Option<IpAddr>, username: &str, password: &str) -> AppResult<TokenPair> {
    let mut errors = FieldErrors::new();
    let username = domain::trim(username);
    let password = domain::trim(password);
    // SimpleJWT's fields are DRF `CharField`s: blank, or NUL.
    if username.is_empty() {
        errors.add("username", BLANK);
    } else if !domain::storable(username) {
        errors.add("username", NULL_CHARACTERS);
    }
    if password.is_empty() {
        errors.add("password", BLANK);
    } else if !domain::storable(password) {
        errors.add("password", NULL_CHARACTERS);
    }
    errors.into_result()?;
    // Failed sign-ins count, per address and per account; a success costs nothing.
    state.auth_throttle.peek(client).inspect_err(|_| crate::metrics::throttled("auth")).map_err(AppError::Throttled)?;
    let account = fold(username);
    state
        .account_throttle
        .check(&account, client)
        .await
        .inspect_err(|_| crate::metrics::throttled("auth"))
        .map_err(AppError::Throttled)?;

    let found = user::Entity::find().filter(user::Column::Username.eq(username)).one(&state.db).await?;
    let hash = found.as_ref().map(|u| u.password_hash.clone());
    let matches = state.passwords.verify(password.to_owned(), hash).await.map_err(AppError::internal)?;
    let user = match found {
        Some(user) if matches && user.is_active => user,
        _ => {
            state.auth_throttle.record(client);
            state.account_throttle.failed(&account, client).await;
            return Err(AuthError::BadCredentials.into());
        }
    };
    state.account_throttle.succeeded(&account, client).await;
    user::Entity::update_many()
        .col_expr(user::Column::LastLogin, Expr::value(Utc::now().trunc_subsecs(6)))
        .filter(user::Column::Id.eq(user.id))
        .exec(&state.db)
        .await?;
    Ok(TokenPair {
        access: state.tokens.issue(TokenKind::Access, user.id).token,
        refresh: state.tokens.issue(TokenKind::Refresh, user.id).token,
    })
}

/// A new access token for a valid, unrevoked refresh token of an active user.
pub async fn refresh(db: &impl ConnectionTrait, tokens: &TokenService, refresh: &str) -> AppResult<String> {
    let refresh = domain::trim(refresh);
    if refresh.is_empty() {
        return Err(FieldErrors::single("refresh", BLANK));
    }
    let token = tokens.verify(refresh, TokenKind::Refresh).map_err(AuthError::BadRefreshToken)?;
    if revoked_token::Entity::find_by_id(token.jti.clone()).one(db).await?.is_some() {
        return Err(AuthError::BadRefreshToken(crate::auth::TokenProblem::Revoked).into());
    }
    let user_id = token.user_id.ok_or(AuthError::NoUserId)?;
    match user::Entity::find_by_id(user_id).one(db).await? {
        Some(user) if user.is_active => Ok(tokens.issue(TokenKind::Access, user.id).token),
        _ => Err(AuthError::NoAccountForToken.into()),
    }
}

/// Revokes a refresh token (sign-out). False when the token was not valid to begin with.
pub async fn revoke(db: &impl ConnectionTrait, tokens: &TokenService, refresh: &str) -> AppResult<bool> {
    let Ok(token) = tokens.verify(domain::trim(refresh), TokenKind::Refresh) else { return Ok(false) };
    let Some(user_id) = token.user_id else { return Ok(false) };
    let expires_at = chrono::DateTime::from_timestamp(token.exp, 0).unwrap_or_else(Utc::now);
    let inserted = revoked_token::Entity::insert(revoked_token::ActiveModel {
        jti: Set(token.jti),
        user_id: Set(user_id),
        expires_at: Set(expires_at),
    })
    .on_conflict_do_nothing()
    .exec(db)
    .await?;
    // Rows of tokens that have expired anyway are no longer needed.
    revoked_token::Entity::delete_many().filter(revoked_token::Column::ExpiresAt.lt(Utc::now())).exec(db).await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(_)))
}

pub async fn find_by_username(db: &impl ConnectionTrait, username: &str) -> AppResult<Option<user::Model>> {
    if !domain::storable(username) {
        return Ok(None);
    }
    Ok(user::Entity::find().filter(user::Column::Username.eq(username)).one(db).await?)
}

/// Usernames (their lower-cased keys) starting with `prefix`, as a range the unique index on
/// the key answers without a scan: `prefix <= key < successor`, where the successor is the
/// prefix with its last character replaced by the next one (code point order, which is how
/// the key column compares on both databases; see the migration).
pub fn username_prefix(prefix: &str) -> Condition {
    let mut condition = Condition::all().add(user::Column::UsernameKey.gte(prefix));
    if let Some(upper) = successor(prefix) {
        condition = condition.add(user::Column::UsernameKey.lt(upper));
    }
    condition
}

/// The least string greater than every string starting with `prefix` (`None`: there is none).
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value: surrogates are not characters.
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Users by id; `search` keeps usernames starting with it, case-insensitively.
pub async fn list(
    db: &impl ConnectionTrait,
    search: Option<&str>,
    first: Option<i32>,
    after_id: Option<i64>,
    total: Total,
) -> AppResult<Page<user::Model>> {
    let limit = page_size("first", first)?;
    let mut filter = Condition::all();
    if let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) {
        filter = if domain::storable(search) {
            filter.add(username_prefix(&fold(search)))
        } else {
            // No username holds NUL: nothing starts with it.
            filter.add(Expr::value(false))
        };
    }
    let total = total.of(&user::Entity::find().filter(filter.clone()), db).await?;
    let mut query = user::Entity::find().filter(filter).order_by_asc(user::Column::Id);
    if let Some(after) = after_id {
        query = query.filter(user::Column::Id.gt(after));
    }
    let rows = query.limit(limit + 1).all(db).await?;
    Ok(Page::from_overfetch(rows, limit, after_id.is_some(), total))
}

/// What is wrong with a new password (already trimmed) of the user `username`/`email`, as
/// registration reports it: blank, too long or holding NUL, else Django's validators.
fn new_password_problems(password: &str, username: &str, email: &str) -> Vec<String> {
    if password.is_empty() {
        return vec![BLANK.to_owned()];
    }
    // DRF runs the field's own validators (length, NUL) first, and the password rules only on a
    // value that passed them.
    let mut problems = Vec::new();
    if password.chars().count() > domain::PASSWORD_MAX {
        problems.push(messages::too_long(domain::PASSWORD_MAX));
    }
    if !domain::storable(password) {
        problems.push(NULL_CHARACTERS.to_owned());
    }
    if problems.is_empty() {
        problems = domain::password_problems(password, Some(username), Some(email));
    }
    problems
}

/// The user named exactly `username`, or `NotFound`.
async fn existing(db: &impl ConnectionTrait, username: &str) -> AppResult<user::Model> {
    find_by_username(db, username).await?.ok_or(AppError::NotFound)
}

/// Lets a user sign in again (`true`) or stops them (`false`): an inactive user's tokens are
/// refused from the next request on, and their open sockets are closed (see `transport`).
pub async fn set_active(db: &impl ConnectionTrait, username: &str, active: bool) -> AppResult<user::Model> {
    let user = existing(db, username).await?;
    let mut model: user::ActiveModel = user.into();
    model.is_active = Set(active);
    Ok(model.update(db).await?)
}

/// Replaces a user's password, validated as at registration (`password` field errors).
pub async fn set_password(
    db: &impl ConnectionTrait,
    passwords: &PasswordHasher,
    username: &str,
    password: &str,
) -> AppResult<()> {
    let user = existing(db, username).await?;
    let password = domain::trim(password);
    let mut errors = FieldErrors::new();
    for problem in new_password_problems(password, &user.username, &user.email) {
        errors.add("password", problem);
    }
    errors.into_result()?;
    let hash = passwords.hash(password.to_owned()).await.map_err(AppError::internal)?;
    let mut model: user::ActiveModel = user.into();
    model.password_hash = Set(hash);
    model.update(db).await?;
    Ok(())
}

/// Deletes a user with everything that is theirs (profile, posts, messages, memberships: the
/// foreign keys cascade).
pub async fn delete(db: &impl ConnectionTrait, username: &str) -> AppResult<()> {
    let user = existing(db, username).await?;
    user::Entity::delete_by_id(user.id).exec(db).await?;
    Ok(())
}

/// The user whose username is `username` in any case (through the unique key index).
pub async fn find_by_username_ci(db: &impl ConnectionTrait, username: &str) -> AppResult<Option<user::Model>> {
    if !domain::storable(username) {
        return Ok(None);
    }
    Ok(user::Entity::find().filter(user::Column::UsernameKey.eq(fold(username))).one(db).await?)
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn the_successor_bounds_every_extension_of_a_prefix() {
        assert_eq!(successor("ab").as_deref(), Some("ac"));
        assert_eq!(successor("a\u{d7ff}").as_deref(), Some("a\u{e000}"), "surrogates are skipped");
        assert_eq!(successor("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10ffff}"), None);
        for name in ["ab", "ab_", "abzzz", "ab\u{10ffff}"] {
            assert!(("ab".."ac").contains(&name), "{name}");
        }
    }
}
