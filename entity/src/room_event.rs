//! A stored chat event of a room other than a message (an edit, a deletion, a reaction change,
//! a read marker move), at its place in the room's sequence: `seq` is taken from
//! `chat_rooms.last_seq` in the storing transaction, as `messages.room_seq` is, so the events
//! and messages of a room together are numbered 1, 2, 3, ... in commit order.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub room_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// `edited`, `deleted`, `reaction` or `read`.
    pub kind: String,
    /// The message concerned (for `read`: the new marker). Its content is read from the
    /// message itself, so a deleted message's content is nowhere.
    pub message_id: Option<i64>,
    /// Who reacted, or whose marker moved.
    pub user_id: Option<i64>,
    pub emoji: Option<String>,
    /// A reaction added (true) or taken back (false).
    pub added: Option<bool>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
