//! The legacy JSON shapes, exactly as Django REST Framework's serializers wrote them: the keys,
//! their order (serde writes fields in declaration order) and nothing else.
//!
//! Each shape deserializes from the `data` of the legacy layer's own GraphQL operations (whose
//! aliases already use the legacy key names) and serializes to the legacy body; the same types
//! describe the responses in `/openapi.json`, so the document cannot drift from the bytes.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};

use crate::domain::messages;
use crate::error::FieldErrors;

/// GraphQL IDs are strings (`"12"`); the legacy API's ids are JSON numbers.
fn gql_id<'de, D: Deserializer<'de>>(de: D) -> Result<i64, D::Error> {
    let id = String::deserialize(de)?;
    id.parse().map_err(|_| serde::de::Error::custom(format!("not a numeric ID: {id:?}")))
}

/// `members { id }` as ids ascending, as DRF's `PrimaryKeyRelatedField(many=True)` lists them.
fn member_ids<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Member {
        #[serde(deserialize_with = "gql_id")]
        id: i64,
    }
    let mut ids: Vec<i64> = Vec::<Member>::deserialize(de)?.into_iter().map(|m| m.id).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// `author { username }` as the bare username.
fn username_of<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    struct Author {
        username: String,
    }
    Ok(Author::deserialize(de)?.username)
}

/// A user as endpoint 1 lists and creates them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    #[serde(deserialize_with = "gql_id")]
    pub id: i64,
    pub username: String,
    pub email: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Post {
    #[serde(deserialize_with = "gql_id")]
    pub id: i64,
    pub title: String,
    pub content: String,
    /// UTC, six digits of microseconds and `Z`, e.g. `2026-11-24T18:42:09.605799Z`.
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    /// URL path of the avatar under `/media/`.
    pub image: String,
    pub bio: String,
}

/// The caller with their profile and their own posts, newest first (endpoint 4).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserProfile {
    #[serde(deserialize_with = "gql_id")]
    pub id: i64,
    pub username: String,
    pub email: String,
    pub profile: Profile,
    pub posts: Vec<Post>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Room {
    #[serde(deserialize_with = "gql_id")]
    pub id: i64,
    pub name: String,
    /// The two members' ids, ascending.
    #[serde(deserialize_with = "member_ids")]
    pub members: Vec<i64>,
    /// The other member's username.
    pub display_name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Message {
    #[serde(deserialize_with = "gql_id")]
    pub id: i64,
    /// The author's username.
    #[serde(deserialize_with = "username_of")]
    pub user: String,
    pub content: String,
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// `friendIds` as ids ascending (the original's `friends` many-to-many of the profile).
fn gql_ids<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<i64>, D::Error> {
    Vec::<String>::deserialize(de)?
        .into_iter()
        .map(|id| id.parse().map_err(|_| serde::de::Error::custom(format!("not a numeric ID: {id:?}"))))
        .collect()
}

/// A profile with the ids of the users its owner added to their friends.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProfileWithFriends {
    /// URL path of the avatar under `/media/`.
    pub image: String,
    pub bio: String,
    #[serde(deserialize_with = "gql_ids")]
    pub friends: Vec<i64>,
}

/// A user found by username (search-user): profile with friends, and posts newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FoundUser {
    #[serde(deserialize_with = "gql_id")]
    pub id: i64,
    pub username: String,
    pub email: String,
    pub profile: ProfileWithFriends,
    pub posts: Vec<Post>,
}

/// The answer of add-friend and remove-friend, in the original's words.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FriendMessage {
    pub message: String,
}

/// SimpleJWT's pair: `refresh` first, as it writes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    pub refresh: String,
    pub access: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessToken {
    pub access: String,
}

/// DRF's error body: 401 (no credentials, wrong credentials), 403, 404, 405, 406, 415, 429,
/// and malformed bodies (400).
#[derive(Debug, Serialize, ToSchema)]
pub struct Detail {
    pub detail: String,
}

/// One refused token class of SimpleJWT's `token_not_valid` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenMessage {
    pub token_class: &'static str,
    pub token_type: &'static str,
    pub message: &'static str,
}

/// SimpleJWT's authentication failures (401): `code` and `messages` only where it sends them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthFailure {
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<TokenMessage>>,
}

/// DRF's validation failure (400) is [`FieldErrors`]; `ValidationErrors` is its name in the
/// OpenAPI document.
pub use crate::error::FieldErrors as ValidationErrors;

impl utoipa::PartialSchema for FieldErrors {
    #[allow(deprecated)] // `example`, as the derived schemas of the other shapes write it
    fn schema() -> RefOr<Schema> {
        let messages = ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String));
        ObjectBuilder::new()
            .description(Some(
                "Validation failures (400): every invalid field with all its messages, in field order\n\
                 (`non_field_errors` for a body that is not an object).",
            ))
            .additional_properties(Some(messages))
            .property_names(Some(ObjectBuilder::new().schema_type(Type::String)))
            .example(Some(serde_json::json!({"username": [messages::REQUIRED]})))
            .into()
    }
}

impl ToSchema for FieldErrors {
    fn name() -> std::borrow::Cow<'static, str> {
        "ValidationErrors".into()
    }
}

/// Django's unhandled-error body (500).
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerError {
    pub error: String,
}
