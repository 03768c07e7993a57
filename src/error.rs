//! The one error type of the business layer, and the field-error collection behind
//! `BAD_USER_INPUT`.
//!
//! Services return [`AppError`]; it is mapped once to GraphQL (`graphql::error`) and, through the
//! GraphQL error codes, once to Django REST Framework bodies (`legacy::errors`). Infrastructure
//! errors keep their cause and are logged once, where the answer is made (`graphql::error`),
//! never where they are converted; they never reach a client in detail.

use crate::auth::AuthError;
use crate::domain::messages;

/// Every problem with every invalid field of one input, in the order the fields were checked.
///
/// The one shape of a validation failure everywhere: a service's `BAD_USER_INPUT`, and DRF's
/// 400 body `{field: [messages]}` (it serialises as that map, in field order), which the legacy
/// layer builds from the GraphQL errors and from its own checks of a body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<(String, Vec<String>)>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one problem with `field`; problems of one field stay together, in order.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let message = message.into();
        match self.0.iter_mut().find(|(name, _)| name == field) {
            Some((_, messages)) => messages.push(message),
            None => self.0.push((field.to_owned(), vec![message])),
        }
    }

    /// Records several problems with `field`, after those it has.
    pub fn extend(&mut self, field: &str, messages: impl IntoIterator<Item = String>) {
        for message in messages {
            self.add(field, message);
        }
    }

    /// Puts `messages` in place of what `field` has (at its place), or adds them at the end.
    pub fn replace(&mut self, field: &str, messages: Vec<String>) {
        match self.0.iter_mut().find(|(name, _)| name == field) {
            Some((_, existing)) => *existing = messages,
            None => self.0.push((field.to_owned(), messages)),
        }
    }

    /// Orders the fields as `order` names them; the others keep their order after those.
    pub fn sort_by_order(&mut self, order: &[&str]) {
        self.0.sort_by_key(|(field, _)| order.iter().position(|f| f == field).unwrap_or(order.len()));
    }

    /// Records the outcome of validating one field, keeping the valid value.
    pub fn check<T>(&mut self, field: &str, result: Result<T, Vec<String>>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(messages) => {
                self.extend(field, messages);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(name, _)| name == field)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(f, m)| (f.as_str(), m.as_slice()))
    }

    /// `Ok(())` when nothing was recorded, else the whole collection as an error.
    pub fn into_result(self) -> Result<(), AppError> {
        if self.is_empty() { Ok(()) } else { Err(AppError::Invalid(self)) }
    }

    /// An error about one field.
    pub fn single(field: &str, message: impl Into<String>) -> AppError {
        let mut errors = Self::new();
        errors.add(field, message);
        AppError::Invalid(errors)
    }
}

impl serde::Serialize for FieldErrors {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (field, messages) in &self.0 {
            map.serialize_entry(field, messages)?;
        }
        map.end()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No, expired or malformed credentials.
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    /// Signed in, but not allowed.
    #[error("{}", messages::PERMISSION_DENIED)]
    Forbidden,
    /// The named thing does not exist, or is hidden from the caller.
    #[error("{}", messages::NOT_FOUND)]
    NotFound,
    /// Invalid input: every problem with every field.
    #[error("{}", messages::INVALID_INPUT)]
    Invalid(FieldErrors),
    /// Too many attempts; retry after this many seconds.
    #[error("{}", messages::throttled(*.0))]
    Throttled(u64),
    /// Anything else. The cause is logged with the answer, never shown.
    #[error("{}", messages::INTERNAL)]
    Internal(#[source] anyhow::Error),
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        AppError::Internal(err.into())
    }
}

impl From<sea_orm::TransactionError<AppError>> for AppError {
    fn from(err: sea_orm::TransactionError<AppError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(app) => app,
        }
    }
}

impl AppError {
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }
}

pub type AppResult<T> = Result<T, AppError>;
