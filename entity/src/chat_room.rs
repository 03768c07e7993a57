//! A one-to-one chat room.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_rooms")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Stable name used in URLs (`alice_bob`, `a_b_c_2`); unique.
    #[sea_orm(unique)]
    pub name: String,
    /// `"<lower user id>:<higher user id>"`; its unique index makes one room per pair,
    /// even when both users create it at the same moment.
    #[sea_orm(unique)]
    pub pair_key: String,
    pub created_at: DateTimeUtc,
    /// Sequence number of the room's newest message (0 when empty). Incremented in the
    /// storing transaction, which also serialises concurrent sends to one room.
    pub last_seq: i64,
    /// Time of the newest message, or of creation: "most recent activity".
    pub last_activity_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::room_member::Entity")]
    RoomMember,
    #[sea_orm(has_many = "super::message::Entity")]
    Message,
}

impl Related<super::room_member::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RoomMember.def()
    }
}

impl Related<super::message::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Message.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
