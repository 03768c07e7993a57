//! The chat features of issue 13: edited and deleted messages, read markers, reactions, friends
//! and blocks, and a username-prefix index that PostgreSQL can use for `users(search:)`.
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
enum Messages {
    Table,
    Id,
    EditedAt,
    Deleted,
}

#[derive(DeriveIden)]
enum ReadMarkers {
    Table,
    RoomId,
    UserId,
    MessageId,
}

#[derive(DeriveIden)]
enum Reactions {
    Table,
    MessageId,
    UserId,
    Emoji,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Friendships {
    Table,
    UserId,
    FriendId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Blocks {
    Table,
    BlockerId,
    BlockedId,
    CreatedAt,
}

/// A foreign key that deletes the row with its parent.
fn cascade(from: (impl IntoIden, impl IntoIden), to: (impl IntoIden, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(timestamp_with_time_zone_null(Messages::EditedAt))
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Messages::Table).add_column(boolean(Messages::Deleted).default(false)).take(),
            )
            .await?;

        // The newest message each member has read in each room; it only moves forward.
        manager
            .create_table(
                Table::create()
                    .table(ReadMarkers::Table)
                    .col(big_integer(ReadMarkers::RoomId))
                    .col(big_integer(ReadMarkers::UserId))
                    .col(big_integer(ReadMarkers::MessageId))
                    .primary_key(Index::create().col(ReadMarkers::RoomId).col(ReadMarkers::UserId))
                    .foreign_key(&mut cascade(
                        (ReadMarkers::Table, ReadMarkers::RoomId),
                        (ChatRooms::Table, ChatRooms::Id),
                    ))
                    .foreign_key(&mut cascade((ReadMarkers::Table, ReadMarkers::UserId), (Users::Table, Users::Id)))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_read_markers_user")
                    .table(ReadMarkers::Table)
                    .col(ReadMarkers::UserId)
                    .col(ReadMarkers::RoomId)
                    .take(),
            )
            .await?;

        // One row per user per emoji per message: the primary key makes a second one impossible.
        manager
            .create_table(
                Table::create()
                    .table(Reactions::Table)
                    .col(big_integer(Reactions::MessageId))
                    .col(big_integer(Reactions::UserId))
                    .col(string_len(Reactions::Emoji, 64))
                    .col(timestamp_with_time_zone(Reactions::CreatedAt))
                    .primary_key(Index::create().col(Reactions::MessageId).col(Reactions::Emoji).col(Reactions::UserId))
                    .foreign_key(&mut cascade(
                        (Reactions::Table, Reactions::MessageId),
                        (Messages::Table, Messages::Id),
                    ))
                    .foreign_key(&mut cascade((Reactions::Table, Reactions::UserId), (Users::Table, Users::Id)))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_reactions_user").table(Reactions::Table).col(Reactions::UserId).take(),
            )
            .await?;

        // One-directional, as the original stored it: `user_id` added `friend_id`.
        manager
            .create_table(
                Table::create()
                    .table(Friendships::Table)
                    .col(big_integer(Friendships::UserId))
                    .col(big_integer(Friendships::FriendId))
                    .col(timestamp_with_time_zone(Friendships::CreatedAt))
                    .primary_key(Index::create().col(Friendships::UserId).col(Friendships::FriendId))
                    .foreign_key(&mut cascade((Friendships::Table, Friendships::UserId), (Users::Table, Users::Id)))
                    .foreign_key(&mut cascade((Friendships::Table, Friendships::FriendId), (Users::Table, Users::Id)))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_friendships_friend")
                    .table(Friendships::Table)
                    .col(Friendships::FriendId)
                    .col(Friendships::UserId)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Blocks::Table)
                    .col(big_integer(Blocks::BlockerId))
                    .col(big_integer(Blocks::BlockedId))
                    .col(timestamp_with_time_zone(Blocks::CreatedAt))
                    .primary_key(Index::create().col(Blocks::BlockerId).col(Blocks::BlockedId))
                    .foreign_key(&mut cascade((Blocks::Table, Blocks::BlockerId), (Users::Table, Users::Id)))
                    .foreign_key(&mut cascade((Blocks::Table, Blocks::BlockedId), (Users::Table, Users::Id)))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_blocks_blocked")
                    .table(Blocks::Table)
                    .col(Blocks::BlockedId)
                    .col(Blocks::BlockerId)
                    .take(),
            )
            .await?;

        // `users(search:)` is a range over the lower-cased usernames (`key >= prefix AND key <
        // successor`), which the unique index on `username_key` answers when the column
        // compares by code point: SQLite's BINARY does; PostgreSQL's database collation (say
        // en_US) may not, so the column compares in "C" there (equality, hence uniqueness,
        // is unchanged: deterministic collations compare equal only identical strings).
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(r#"ALTER TABLE "users" ALTER COLUMN "username_key" TYPE text COLLATE "C""#)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Blocks::Table.into_iden(),
            Friendships::Table.into_iden(),
            Reactions::Table.into_iden(),
            ReadMarkers::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).take()).await?;
        }
        manager.alter_table(Table::alter().table(Messages::Table).drop_column(Messages::Deleted).take()).await?;
        manager.alter_table(Table::alter().table(Messages::Table).drop_column(Messages::EditedAt).take()).await?;
        Ok(())
    }
}
