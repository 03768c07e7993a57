//! SeaORM entities of Agora: one module per table, shared by the server and the migrations' tests.
//!
//! Ids are `i64` everywhere (BIGINT on PostgreSQL, the rowid on SQLite); times are UTC.

pub mod block;
pub mod chat_room;
pub mod friendship;
pub mod message;
pub mod post;
pub mod profile;
pub mod reaction;
pub mod read_marker;
pub mod revoked_token;
pub mod room_event;
pub mod room_member;
pub mod user;
pub mod user_presence;

pub mod prelude {
    pub use super::block::Entity as Block;
    pub use super::chat_room::Entity as ChatRoom;
    pub use super::friendship::Entity as Friendship;
    pub use super::message::Entity as Message;
    pub use super::post::Entity as Post;
    pub use super::profile::Entity as Profile;
    pub use super::reaction::Entity as Reaction;
    pub use super::read_marker::Entity as ReadMarker;
    pub use super::revoked_token::Entity as RevokedToken;
    pub use super::room_event::Entity as RoomEvent;
    pub use super::room_member::Entity as RoomMember;
    pub use super::user::Entity as User;
    pub use super::user_presence::Entity as UserPresence;
}
