//! The live half of issue 13: the log of a room's stored events other than messages (edits,
//! deletions, reaction changes, read markers), numbered in the room's sequence with its
//! messages, and each user's last-seen time.
//!
//! One change per statement (SQLite cannot alter several things at once).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ChatRooms {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum RoomEvents {
    Table,
    RoomId,
    Seq,
    Kind,
    MessageId,
    UserId,
    Emoji,
    Added,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserPresence {
    Table,
    UserId,
    LastSeen,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `seq` shares the room's sequence with `messages.room_seq` (`chat_rooms.last_seq`):
        // the key is the event's place in its room. Message ids are kept without a foreign
        // key: the message of an event may be deleted, its event stays.
        manager
            .create_table(
                Table::create()
                    .table(RoomEvents::Table)
                    .col(big_integer(RoomEvents::RoomId))
                    .col(big_integer(RoomEvents::Seq))
                    .col(string_len(RoomEvents::Kind, 16))
                    .col(big_integer_null(RoomEvents::MessageId))
                    .col(big_integer_null(RoomEvents::UserId))
                    .col(string_len_null(RoomEvents::Emoji, 64))
                    .col(boolean_null(RoomEvents::Added))
                    .col(timestamp_with_time_zone(RoomEvents::CreatedAt))
                    .primary_key(Index::create().col(RoomEvents::RoomId).col(RoomEvents::Seq))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RoomEvents::Table, RoomEvents::RoomId)
                            .to(ChatRooms::Table, ChatRooms::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserPresence::Table)
                    .col(big_integer(UserPresence::UserId).primary_key())
                    .col(timestamp_with_time_zone(UserPresence::LastSeen))
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserPresence::Table, UserPresence::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UserPresence::Table).take()).await?;
        manager.drop_table(Table::drop().table(RoomEvents::Table).take()).await?;
        Ok(())
    }
}
