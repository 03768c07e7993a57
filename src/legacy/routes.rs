//! The legacy REST API as a table: each endpoint of API.md ("Legacy REST endpoints" 1–9) and,
//! per method, the GraphQL operation it runs, how the request becomes the operation's variables
//! and how the operation's `data` becomes the legacy body.
//!
//! Nothing here decides what is valid or allowed: the operations' resolvers and services do. The
//! table only knows what Django REST Framework's views knew about HTTP (which methods, which
//! need a token, which body fields, DRF's metadata for `OPTIONS`).

use axum::http::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use super::Document;
use super::body::{Field, Fields, Kind};
use super::query;
use super::shapes;
use crate::domain;
use crate::error::FieldErrors;
use crate::graphql::cursor::{Cursor, MessageKey};

/// The named schemas `/openapi.json` collects as it reads the table.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// One endpoint (a path, with or without its trailing slash).
pub struct Route {
    /// The path without its trailing slash, in axum's syntax.
    pub path: &'static str,
    /// DRF's view name and description, as `OPTIONS` reports them.
    pub name: &'static str,
    pub description: &'static str,
    /// Whether the `Authorization` header is read at all (SimpleJWT's token views ignore it).
    pub authenticates: bool,
    pub get: Option<Operation>,
    pub post: Option<Operation>,
    /// The fields DRF's `OPTIONS` lists under `actions.POST` (its serializer's fields).
    pub post_metadata: &'static [MetaField],
}

/// What one method of an endpoint does.
pub struct Operation {
    /// A line for `/openapi.json`.
    pub summary: &'static str,
    /// Callable without a token (all methods of a route that does not authenticate are).
    pub open: bool,
    /// The GraphQL document run with the caller's identity.
    pub document: &'static Document,
    /// The body fields read (POST).
    pub fields: &'static [Field],
    /// The query parameters read (GET), for `/openapi.json`.
    pub params: &'static [QueryParam],
    /// The operation's variables from the request; `Err` is a 400 of the transport's own.
    pub variables: fn(&Input) -> Result<Variables, FieldErrors>,
    /// Run (with the path parameters as variables) before answering such a 400, so that an
    /// error DRF raises first (a 404) still wins.
    pub guard: Option<&'static Document>,
    /// When the legacy list is a whole connection: the operation is repeated page by page.
    pub paging: Option<Paging>,
    /// How the result becomes the legacy body.
    pub shape: Shape,
    pub status: StatusCode,
    /// The response schema, for `/openapi.json`.
    pub response: fn(&mut Schemas) -> RefOr<Schema>,
    /// Other success statuses the shaper may choose (for `/openapi.json`).
    pub other_statuses: &'static [StatusCode],
}

impl Operation {
    /// An operation that needs a token, reads no input and answers 200: each entry of the
    /// table says what it does and, with struct update syntax, only how it differs from this.
    const fn new(
        summary: &'static str,
        document: &'static Document,
        shape: Shape,
        response: fn(&mut Schemas) -> RefOr<Schema>,
    ) -> Self {
        Operation {
            summary,
            open: false,
            document,
            fields: &[],
            params: &[],
            variables: no_variables,
            guard: None,
            paging: None,
            shape,
            status: StatusCode::OK,
            response,
            other_statuses: &[],
        }
    }
}

/// Everything a variables builder may read.
pub struct Input {
    /// Path parameters, percent-decoded (`room_name`).
    pub path: Vec<(String, String)>,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The declared body fields as text.
    pub body: Fields,
}

impl Input {
    fn path(&self, name: &str) -> &str {
        self.path.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }
}

pub struct Variables {
    pub variables: Value,
    /// For paged operations: at most this many items in all (`None`: every page).
    pub limit: Option<u64>,
}

impl Variables {
    fn all(variables: Value) -> Result<Self, FieldErrors> {
        Ok(Self { variables, limit: None })
    }
}

/// A connection read to its end, `PAGE` items per request.
#[derive(Clone, Copy)]
pub struct Paging {
    /// JSON pointer of the connection in `data`; its `nodes` replace it once all are read.
    pub connection: &'static str,
    pub direction: Direction,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `first`/`after` with `pageInfo { hasNextPage endCursor }`, appending.
    Forward,
    /// `last`/`before` with `pageInfo { hasPreviousPage startCursor }`, prepending.
    Backward,
}

/// The largest page the GraphQL API serves.
pub const PAGE: u64 = crate::service::page::MAX_PAGE;

/// How an operation's result becomes the legacy body.
#[derive(Clone, Copy)]
pub enum Shape {
    /// The body (and a status other than the operation's, if any) from the operation's `data`.
    Data(fn(Value) -> Result<Reply, serde_json::Error>),
    /// The body is the paged connection's nodes as a list, each node written by this as soon as
    /// its page is read: a whole list (a room's history of thousands of messages) is never held
    /// as values, as shaped items and as bytes at once. Only for a paged operation.
    List(fn(&Value, &mut Vec<u8>) -> Result<(), serde_json::Error>),
}

/// One node of a list written as `T` ([`Shape::List`]).
fn item<T: DeserializeOwned + Serialize>(node: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, &T::deserialize(node)?)
}

/// A page of a [`Shape::List`]: its nodes written by `item`, comma-separated.
pub fn write_page(
    item: fn(&Value, &mut Vec<u8>) -> Result<(), serde_json::Error>,
    nodes: &[Value],
) -> Result<Vec<u8>, serde_json::Error> {
    let mut page = Vec::new();
    for node in nodes {
        if !page.is_empty() {
            page.push(b',');
        }
        item(node, &mut page)?;
    }
    Ok(page)
}

/// The body of a [`Shape::List`]: its written pages, in order, as one JSON list (the bytes
/// `serde_json` gives the whole list).
pub fn list_body(pages: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(2 + pages.iter().map(|page| page.len() + 1).sum::<usize>());
    body.push(b'[');
    for page in pages.iter().filter(|page| !page.is_empty()) {
        if body.len() > 1 {
            body.push(b',');
        }
        body.extend_from_slice(page);
    }
    body.push(b']');
    body
}

pub struct Reply {
    pub body: Vec<u8>,
    pub status: Option<StatusCode>,
}

pub struct QueryParam {
    pub name: &'static str,
    pub description: &'static str,
    /// Whether the value is text (required) rather than a positive integer (optional).
    pub text: bool,
}

/// A field of DRF's `OPTIONS` metadata.
pub struct MetaField {
    pub name: &'static str,
    pub kind: &'static str,
    pub required: bool,
    pub read_only: bool,
    pub label: &'static str,
    pub max_length: Option<usize>,
}

impl MetaField {
    pub fn to_json(&self) -> Value {
        let mut field = json!({
            "type": self.kind, "required": self.required, "read_only": self.read_only, "label": self.label,
        });
        if let Some(max) = self.max_length {
            field["max_length"] = json!(max);
        }
        field
    }
}

const fn meta(
    name: &'static str,
    kind: &'static str,
    required: bool,
    read_only: bool,
    label: &'static str,
    max_length: Option<usize>,
) -> MetaField {
    MetaField { name, kind, required, read_only, label, max_length }
}

const ID_META: MetaField = meta("id", "integer", false, true, "ID", None);

// ---- shaping helpers ---------------------------------------------------------------------------

/// The value at `pointer` of `data`, read as `T` and written as the legacy body.
fn shape_at<T: DeserializeOwned + Serialize>(data: &Value, pointer: &str) -> Result<Vec<u8>, serde_json::Error> {
    // Read in place (a whole-list endpoint's data can be long): no copy of the value.
    let part = data.pointer(pointer).unwrap_or(&Value::Null);
    serde_json::to_vec(&T::deserialize(part)?)
}

fn reply<T: DeserializeOwned + Serialize>(data: &Value, pointer: &str) -> Result<Reply, serde_json::Error> {
    Ok(Reply { body: shape_at::<T>(data, pointer)?, status: None })
}

/// A reference to `T`'s schema, registering it (and what it refers to) as a component.
pub fn one<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

/// An array of `T`.
fn many<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    let item = one::<T>(schemas);
    utoipa::openapi::schema::ArrayBuilder::new().items(item).build().into()
}

fn no_variables(_: &Input) -> Result<Variables, FieldErrors> {
    Variables::all(json!({}))
}

// ---- 1. users ----------------------------------------------------------------------------------

static USERS: Document = Document::new(
    "query($first: Int!, $after: String) {
  users(first: $first, after: $after) { nodes { id username email } pageInfo { hasNextPage endCursor } }
}",
);

static REGISTER: Document = Document::new(
    "mutation($username: String!, $email: String!, $password: String!) {
  register(input: {username: $username, email: $email, password: $password}) { id username email }
}",
);

const REGISTER_FIELDS: &[Field] = &[
    Field { name: "username", kind: Kind::Text },
    Field { name: "email", kind: Kind::Email },
    Field { name: "password", kind: Kind::Text },
];

fn register_variables(input: &Input) -> Result<Variables, FieldErrors> {
    let b = &input.body;
    Variables::all(json!({"username": b.text("username"), "email": b.text("email"), "password": b.text("password")}))
}

// ---- 2, 3. tokens ------------------------------------------------------------------------------

static TOKEN: Document = Document::new(
    "mutation($username: String!, $password: String!) {
  tokenAuth(username: $username, password: $password) { refresh access }
}",
);

const TOKEN_FIELDS: &[Field] =
    &[Field { name: "username", kind: Kind::Text }, Field { name: "password", kind: Kind::Text }];

fn token_variables(input: &Input) -> Result<Variables, FieldErrors> {
    Variables::all(json!({"username": input.body.text("username"), "password": input.body.text("password")}))
}

static REFRESH: Document = Document::new("mutation($refresh: String!) { refreshToken(refresh: $refresh) { access } }");

const REFRESH_FIELDS: &[Field] = &[Field { name: "refresh", kind: Kind::Text }];

fn refresh_variables(input: &Input) -> Result<Variables, FieldErrors> {
    Variables::all(json!({"refresh": input.body.text("refresh")}))
}

// ---- 4, 5, 6. profile and posts ----------------------------------------------------------------

static PROFILE: Document = Document::new(
    "query($first: Int!, $after: String) {
  me {
    id username email
    profile { image bio }
    posts(first: $first, after: $after) {
      nodes { id title content created_at: createdAt }
      pageInfo { hasNextPage endCursor }
    }
  }
}",
);

static POSTS: Document = Document::new(
    "query($first: Int!, $after: String) {
  posts(first: $first, after: $after) {
    nodes { id title content created_at: createdAt }
    pageInfo { hasNextPage endCursor }
  }
}",
);

static CREATE_POST: Document = Document::new(
    "mutation($title: String!, $content: String!) {
  createPost(input: {title: $title, content: $content}) { id title content created_at: createdAt }
}",
);

const POST_FIELDS: &[Field] = &[Field { name: "title", kind: Kind::Text }, Field { name: "content", kind: Kind::Text }];

fn post_variables(input: &Input) -> Result<Variables, FieldErrors> {
    Variables::all(json!({"title": input.body.text("title"), "content": input.body.text("content")}))
}

// ---- 7, 9. chat rooms --------------------------------------------------------------------------

static MY_ROOMS: Document = Document::new("{ myChatRooms { id name members { id } display_name: displayName } }");
static MY_ROOMS_BY_CREATION: Document =
    Document::new("{ myChatRooms(order: CREATED) { id name members { id } display_name: displayName } }");

static CREATE_ROOM: Document = Document::new(
    "mutation($recipient: String!) {
  createChatRoom(recipient: $recipient) { created chatRoom { id name members { id } display_name: displayName } }
}",
);

const ROOM_FIELDS: &[Field] = &[Field { name: "recipient", kind: Kind::Slug }];

fn room_variables(input: &Input) -> Result<Variables, FieldErrors> {
    Variables::all(json!({"recipient": input.body.text("recipient")}))
}

/// 201 for a new room, 200 for the pair's existing one.
fn created_room(data: Value) -> Result<Reply, serde_json::Error> {
    let created = data.pointer("/createChatRoom/created").and_then(Value::as_bool).unwrap_or(true);
    let body = shape_at::<shapes::Room>(&data, "/createChatRoom/chatRoom")?;
    Ok(Reply { body, status: (!created).then_some(StatusCode::OK) })
}

// ---- 8. messages -------------------------------------------------------------------------------

static MESSAGES: Document = Document::new(
    "query($name: String!, $last: Int!, $before: String) {
  chatRoom(name: $name) {
    messages(last: $last, before: $before, includeDeleted: false) {
      nodes { id user: author { username } content timestamp }
      pageInfo { hasPreviousPage startCursor }
    }
  }
}",
);

/// Whether the room exists for the caller: its 404 comes before a 400 on the query, as in DRF.
static ROOM_GUARD: Document = Document::new("query($room_name: String!) { chatRoom(name: $room_name) { id } }");

static SEND_MESSAGE: Document = Document::new(
    "mutation($name: String!, $content: String!) {
  sendMessage(roomName: $name, content: $content) { id user: author { username } content timestamp }
}",
);

const MESSAGE_FIELDS: &[Field] = &[Field { name: "content", kind: Kind::Text }];

/// The whole history, or with `?limit=N&before=<message id>` the newest N older than that
/// message: both are read backwards from the newest (or from `before`), oldest first.
fn history_variables(input: &Input) -> Result<Variables, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut param = |name: &str| {
        query::integer_param(&input.query, name, 1).unwrap_or_else(|message| {
            errors.add(name, message);
            None
        })
    };
    let limit = param("limit");
    let before = param("before");
    if !errors.is_empty() {
        return Err(errors);
    }
    let before = before.map(|id| Cursor::of(MessageKey(id)));
    Ok(Variables {
        variables: json!({"name": input.path("room_name"), "before": before}),
        limit: limit.map(|l| l as u64),
    })
}

fn send_variables(input: &Input) -> Result<Variables, FieldErrors> {
    Variables::all(json!({"name": input.path("room_name"), "content": input.body.text("content")}))
}

// ---- friends (the original's later version) -----------------------------------------------------

static SEARCH_USER: Document = Document::new(
    "query($username: String!, $first: Int!, $after: String) {
  user(username: $username, ignoreCase: true) {
    id username email
    profile { image bio friends: friendIds }
    posts(first: $first, after: $after) {
      nodes { id title content created_at: createdAt }
      pageInfo { hasNextPage endCursor }
    }
  }
}",
);

/// `?username=` is required and may not be blank (DRF's `CharField` trims it first).
fn search_user_variables(input: &Input) -> Result<Variables, FieldErrors> {
    let username = input.query.iter().rev().find(|(k, _)| k == "username").map(|(_, v)| v.trim());
    let problem = match username {
        None => domain::messages::REQUIRED,
        Some("") => domain::messages::BLANK,
        Some(username) => return Variables::all(json!({"username": username})),
    };
    let mut errors = FieldErrors::default();
    errors.add("username", problem);
    Err(errors)
}

/// The user, or DRF's 404 when nobody has that name.
fn found_user(data: Value) -> Result<Reply, serde_json::Error> {
    if data.get("user").is_none_or(Value::is_null) {
        let body = serde_json::to_vec(&shapes::Detail { detail: domain::messages::NOT_FOUND.to_owned() })?;
        return Ok(Reply { body, status: Some(StatusCode::NOT_FOUND) });
    }
    reply::<shapes::FoundUser>(&data, "/user")
}

static ADD_FRIEND: Document =
    Document::new("mutation($username: String!) { addFriend(username: $username) { username } }");
static REMOVE_FRIEND: Document =
    Document::new("mutation($username: String!) { removeFriend(username: $username) { username } }");

const FRIEND_FIELDS: &[Field] = &[Field { name: "username", kind: Kind::Text }];

fn friend_variables(input: &Input) -> Result<Variables, FieldErrors> {
    Variables::all(json!({"username": input.body.text("username")}))
}

/// `{"message": "<username><text>"}`, the original's confirmation.
fn friend_message(data: &Value, pointer: &str, text: &str) -> Result<Reply, serde_json::Error> {
    let username = data.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let body = serde_json::to_vec(&shapes::FriendMessage { message: format!("{username}{text}") })?;
    Ok(Reply { body, status: None })
}

// ---- the table ---------------------------------------------------------------------------------

const PARSES: [&str; 3] = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"];

/// The media types DRF's parsers accept (`OPTIONS`' `parses`).
pub fn parses() -> &'static [&'static str] {
    &PARSES
}

pub static ROUTES: &[Route] = &[
    Route {
        path: "/accounts/api/users",
        name: "User List Create",
        description: "GET lists users (authenticated); POST registers one (open).",
        authenticates: true,
        get: Some(Operation {
            paging: Some(Paging { connection: "/users", direction: Direction::Forward }),
            ..Operation::new(
                "All users, ordered by id",
                &USERS,
                Shape::List(item::<shapes::User>),
                many::<shapes::User>,
            )
        }),
        post: Some(Operation {
            open: true,
            fields: REGISTER_FIELDS,
            variables: register_variables,
            status: StatusCode::CREATED,
            ..Operation::new(
                "Register a user (open); the user gets an empty profile",
                &REGISTER,
                Shape::Data(|data| reply::<shapes::User>(&data, "/register")),
                one::<shapes::User>,
            )
        }),
        post_metadata: &[
            ID_META,
            meta("username", "string", true, false, "Username", Some(domain::USERNAME_MAX)),
            meta("email", "email", true, false, "Email", Some(domain::EMAIL_MAX)),
            meta("password", "string", true, false, "Password", Some(domain::PASSWORD_MAX)),
        ],
    },
    Route {
        path: "/accounts/api/token",
        name: "Token Obtain Pair",
        description: "Takes a set of user credentials and returns an access and refresh JSON web\n\
                      token pair to prove the authentication of those credentials.",
        authenticates: false,
        get: None,
        post: Some(Operation {
            open: true,
            fields: TOKEN_FIELDS,
            variables: token_variables,
            ..Operation::new(
                "Exchange credentials for a refresh and an access token (open)",
                &TOKEN,
                Shape::Data(|data| reply::<shapes::TokenPair>(&data, "/tokenAuth")),
                one::<shapes::TokenPair>,
            )
        }),
        post_metadata: &[
            meta("username", "string", true, false, "Username", None),
            meta("password", "string", true, false, "Password", None),
        ],
    },
    Route {
        path: "/accounts/api/token/refresh",
        name: "Token Refresh",
        description: "Takes a refresh type JSON web token and returns an access type JSON web\n\
                      token if the refresh token is valid.",
        authenticates: false,
        get: None,
        post: Some(Operation {
            open: true,
            fields: REFRESH_FIELDS,
            variables: refresh_variables,
            ..Operation::new(
                "A new access token for a refresh token (open)",
                &REFRESH,
                Shape::Data(|data| reply::<shapes::AccessToken>(&data, "/refreshToken")),
                one::<shapes::AccessToken>,
            )
        }),
        post_metadata: &[
            meta("refresh", "string", true, false, "Refresh", None),
            meta("access", "string", false, true, "Access", None),
        ],
    },
    Route {
        path: "/profiles/api/profile",
        name: "Profile",
        description: "The caller, with their profile and their own posts, newest first.",
        authenticates: true,
        get: Some(Operation {
            paging: Some(Paging { connection: "/me/posts", direction: Direction::Forward }),
            ..Operation::new(
                "The caller with their profile and their own posts, newest first",
                &PROFILE,
                Shape::Data(|data| reply::<shapes::UserProfile>(&data, "/me")),
                one::<shapes::UserProfile>,
            )
        }),
        post: None,
        post_metadata: &[],
    },
    Route {
        path: "/profiles/api/posts",
        name: "Post List Create",
        description: "Every post, newest first; POST publishes one as the caller.",
        authenticates: true,
        get: Some(Operation {
            paging: Some(Paging { connection: "/posts", direction: Direction::Forward }),
            ..Operation::new("All posts, newest first", &POSTS, Shape::List(item::<shapes::Post>), many::<shapes::Post>)
        }),
        post: Some(Operation {
            fields: POST_FIELDS,
            variables: post_variables,
            status: StatusCode::CREATED,
            ..Operation::new(
                "Publish a post as the caller",
                &CREATE_POST,
                Shape::Data(|data| reply::<shapes::Post>(&data, "/createPost")),
                one::<shapes::Post>,
            )
        }),
        post_metadata: &[
            ID_META,
            meta("title", "string", true, false, "Title", Some(domain::POST_TITLE_MAX)),
            meta("content", "string", true, false, "Content", Some(domain::POST_CONTENT_MAX)),
            meta("created_at", "datetime", false, true, "Created at", None),
        ],
    },
    Route {
        path: "/messenger/api/chatrooms",
        name: "Room List Create",
        description: "The caller's rooms; POST {\"recipient\"} opens (or returns) the room with that user.",
        authenticates: true,
        get: Some(Operation::new(
            "The caller's rooms, by id",
            &MY_ROOMS_BY_CREATION,
            Shape::Data(|data| reply::<Vec<shapes::Room>>(&data, "/myChatRooms")),
            many::<shapes::Room>,
        )),
        post: Some(Operation {
            fields: ROOM_FIELDS,
            variables: room_variables,
            status: StatusCode::CREATED,
            other_statuses: &[StatusCode::OK],
            ..Operation::new(
                "Open the room with `recipient` (201), or return the existing one (200)",
                &CREATE_ROOM,
                Shape::Data(created_room),
                one::<shapes::Room>,
            )
        }),
        // DRF describes the list's serializer here (the reference's `RoomSerializer`).
        post_metadata: &[
            ID_META,
            meta("name", "string", true, false, "Name", Some(320)),
            meta("members", "field", true, false, "Members", None),
            meta("display_name", "field", false, true, "Display name", None),
        ],
    },
    Route {
        path: "/messenger/api/chatrooms/{room_name}/messages",
        name: "Message List Create",
        description: "A room's history, oldest first; POST stores a message and pushes it to the room.",
        authenticates: true,
        get: Some(Operation {
            params: &[
                QueryParam {
                    name: "limit",
                    description: "At most this many messages (the newest), >= 1.",
                    text: false,
                },
                QueryParam {
                    name: "before",
                    description: "Only messages older than the message with this id, >= 1.",
                    text: false,
                },
            ],
            variables: history_variables,
            guard: Some(&ROOM_GUARD),
            paging: Some(Paging { connection: "/chatRoom/messages", direction: Direction::Backward }),
            ..Operation::new(
                "The room's history, oldest first (optionally the newest `limit` older than `before`)",
                &MESSAGES,
                Shape::List(item::<shapes::Message>),
                many::<shapes::Message>,
            )
        }),
        post: Some(Operation {
            fields: MESSAGE_FIELDS,
            variables: send_variables,
            status: StatusCode::CREATED,
            ..Operation::new(
                "Send a message to the room (also pushed to its live subscribers)",
                &SEND_MESSAGE,
                Shape::Data(|data| reply::<shapes::Message>(&data, "/sendMessage")),
                one::<shapes::Message>,
            )
        }),
        post_metadata: &[
            ID_META,
            meta("user", "string", false, true, "User", None),
            meta("content", "string", true, false, "Content", Some(domain::MESSAGE_MAX)),
            meta("timestamp", "datetime", false, true, "Timestamp", None),
        ],
    },
    Route {
        path: "/messenger/api/user/chatrooms",
        name: "User Room List",
        description: "The caller's rooms, most recent activity (last message, else creation) first.",
        authenticates: true,
        get: Some(Operation::new(
            "The caller's rooms, most recent activity first",
            &MY_ROOMS,
            Shape::Data(|data| reply::<Vec<shapes::Room>>(&data, "/myChatRooms")),
            many::<shapes::Room>,
        )),
        post: None,
        post_metadata: &[],
    },
    Route {
        path: "/profiles/api/search-user",
        name: "Search User",
        description: "The user with this username (in any case), with their profile, friends and posts.",
        authenticates: true,
        get: Some(Operation {
            summary: "The user named `username` (case-insensitive), with profile, friend ids and posts newest first",
            open: false,
            document: &SEARCH_USER,
            fields: &[],
            params: &[QueryParam { name: "username", description: "The exact username, in any case.", text: true }],
            variables: search_user_variables,
            guard: None,
            paging: Some(Paging { connection: "/user/posts", direction: Direction::Forward }),
            shape: Shape::Data(found_user),
            status: StatusCode::OK,
            response: one::<shapes::FoundUser>,
            other_statuses: &[],
        }),
        post: None,
        post_metadata: &[],
    },
    Route {
        path: "/profiles/api/add-friend",
        name: "Add Friend",
        description: "Adds the user named `username` to the caller's friends (one-directional).",
        authenticates: true,
        get: None,
        post: Some(Operation {
            summary: "Add `username` to the caller's friends (again: no change, still 200)",
            open: false,
            document: &ADD_FRIEND,
            fields: FRIEND_FIELDS,
            params: &[],
            variables: friend_variables,
            guard: None,
            paging: None,
            shape: Shape::Data(|data| friend_message(&data, "/addFriend/username", " добавлен в друзья.")),
            status: StatusCode::OK,
            response: one::<shapes::FriendMessage>,
            other_statuses: &[],
        }),
        post_metadata: &[],
    },
    Route {
        path: "/profiles/api/remove-friend",
        name: "Remove Friend",
        description: "Removes the user named `username` from the caller's friends.",
        authenticates: true,
        get: None,
        post: Some(Operation {
            summary: "Remove `username` from the caller's friends (not there: no change, still 200)",
            open: false,
            document: &REMOVE_FRIEND,
            fields: FRIEND_FIELDS,
            params: &[],
            variables: friend_variables,
            guard: None,
            paging: None,
            shape: Shape::Data(|data| friend_message(&data, "/removeFriend/username", " удален из друзей.")),
            status: StatusCode::OK,
            response: one::<shapes::FriendMessage>,
            other_statuses: &[],
        }),
        post_metadata: &[],
    },
];

/// The endpoints that look a user up by `username`: 404 when nobody has it.
const FINDS_BY_USERNAME: &[&str] =
    &["/profiles/api/search-user", "/profiles/api/add-friend", "/profiles/api/remove-friend"];

impl Operation {
    /// Whether the operation can answer 403 (for `/openapi.json`): a block refuses opening a
    /// room with, or writing to, a blocker.
    pub fn may_be_forbidden(&self) -> bool {
        [&CREATE_ROOM, &SEND_MESSAGE].into_iter().any(|blockable| std::ptr::eq(blockable, self.document))
    }
}

impl Route {
    /// Whether the endpoint can answer 404: it names a room in its path, or a user in its input.
    pub fn may_be_missing(&self) -> bool {
        self.path.contains('{') || FINDS_BY_USERNAME.contains(&self.path)
    }

    /// DRF's `Allow` header: the view's methods in `http_method_names` order.
    pub fn allow(&self) -> &'static str {
        match (self.get.is_some(), self.post.is_some()) {
            (true, true) => "GET, POST, HEAD, OPTIONS",
            (true, false) => "GET, HEAD, OPTIONS",
            (false, true) => "POST, OPTIONS",
            (false, false) => "OPTIONS",
        }
    }

    /// DRF's `OPTIONS` body (`SimpleMetadata`).
    pub fn metadata(&self) -> Value {
        let mut body = json!({
            "name": self.name,
            "description": self.description,
            "renders": ["application/json"],
            "parses": PARSES,
        });
        if self.post.is_some() && !self.post_metadata.is_empty() {
            let fields: serde_json::Map<String, Value> =
                self.post_metadata.iter().map(|f| (f.name.to_owned(), f.to_json())).collect();
            body["actions"] = json!({ "POST": fields });
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_shape_is_paged_and_writes_what_a_whole_list_would() {
        for route in ROUTES {
            for operation in [&route.get, &route.post].into_iter().flatten() {
                if matches!(operation.shape, Shape::List(_)) {
                    assert!(operation.paging.is_some(), "{} writes a list without paging", route.path);
                }
            }
        }
        // Page by page, an empty page among them: the bytes of the whole list serialised at once.
        let nodes = [
            json!({"id": "1", "username": "ann", "email": "ann@example.com", "extra": true}),
            json!({"id": "2", "username": "bob", "email": ""}),
            json!({"id": "3", "username": "cy", "email": "cy@example.com"}),
        ];
        let item = item::<shapes::User>;
        let pages = [nodes[..2].to_vec(), Vec::new(), nodes[2..].to_vec()];
        let written: Vec<Vec<u8>> = pages.iter().map(|page| write_page(item, page).unwrap()).collect();
        let whole = serde_json::to_vec(&serde_json::from_value::<Vec<shapes::User>>(json!(nodes)).unwrap()).unwrap();
        assert_eq!(String::from_utf8(list_body(&written)).unwrap(), String::from_utf8(whole).unwrap());
        assert_eq!(list_body(&[]), b"[]");
    }
}
