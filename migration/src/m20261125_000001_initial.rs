//! The whole data model: accounts, profiles, posts, chat and revoked tokens, with an index for
//! every lookup the API makes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    Email,
    UsernameKey,
    EmailKey,
    PasswordHash,
    IsActive,
    DateJoined,
    LastLogin,
}

#[derive(DeriveIden)]
enum Profiles {
    Table,
    Id,
    UserId,
    Image,
    Bio,
}

#[derive(DeriveIden)]
enum Posts {
    Table,
    Id,
    AuthorId,
    Title,
    Content,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ChatRooms {
    Table,
    Id,
    Name,
    PairKey,
    CreatedAt,
    LastSeq,
    LastActivityAt,
}

#[derive(DeriveIden)]
enum RoomMembers {
    Table,
    RoomId,
    UserId,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    RoomId,
    RoomSeq,
    AuthorId,
    Content,
    Timestamp,
}

#[derive(DeriveIden)]
enum RevokedTokens {
    Table,
    Jti,
    UserId,
    ExpiresAt,
}

/// A foreign key that deletes the row with its parent.
fn cascade(from: (impl IntoIden, impl IntoIden), to: (impl IntoIden, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(big_pk_auto(Users::Id))
                    .col(string_len(Users::Username, 150))
                    .col(string_len(Users::Email, 254))
                    .col(text(Users::UsernameKey))
                    .col(text(Users::EmailKey))
                    .col(string(Users::PasswordHash))
                    .col(boolean(Users::IsActive).default(true))
                    .col(timestamp_with_time_zone(Users::DateJoined))
                    .col(timestamp_with_time_zone_null(Users::LastLogin))
                    .take(),
            )
            .await?;
        // Case-insensitive uniqueness is a unique index on the lower-cased keys (computed in Rust:
        // SQLite's lower() folds ASCII only), never a check-then-insert.
        for (name, column) in [("ux_users_username_key", Users::UsernameKey), ("ux_users_email_key", Users::EmailKey)] {
            manager.create_index(Index::create().name(name).table(Users::Table).col(column).unique().take()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Profiles::Table)
                    .col(big_pk_auto(Profiles::Id))
                    .col(big_integer(Profiles::UserId).unique_key())
                    .col(string(Profiles::Image))
                    .col(text(Profiles::Bio))
                    .foreign_key(&mut cascade((Profiles::Table, Profiles::UserId), (Users::Table, Users::Id)))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Posts::Table)
                    .col(big_pk_auto(Posts::Id))
                    .col(big_integer(Posts::AuthorId))
                    .col(string_len(Posts::Title, 255))
                    .col(text(Posts::Content))
                    .col(timestamp_with_time_zone(Posts::CreatedAt))
                    .foreign_key(&mut cascade((Posts::Table, Posts::AuthorId), (Users::Table, Users::Id)))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_posts_created")
                    .table(Posts::Table)
                    .col(Posts::CreatedAt)
                    .col(Posts::Id)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_posts_author_created")
                    .table(Posts::Table)
                    .col(Posts::AuthorId)
                    .col(Posts::CreatedAt)
                    .col(Posts::Id)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChatRooms::Table)
                    .col(big_pk_auto(ChatRooms::Id))
                    .col(string_len(ChatRooms::Name, 320).unique_key())
                    .col(string_len(ChatRooms::PairKey, 64).unique_key())
                    .col(timestamp_with_time_zone(ChatRooms::CreatedAt))
                    .col(big_integer(ChatRooms::LastSeq).default(0))
                    .col(timestamp_with_time_zone(ChatRooms::LastActivityAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_chat_rooms_activity")
                    .table(ChatRooms::Table)
                    .col(ChatRooms::LastActivityAt)
                    .col(ChatRooms::Id)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RoomMembers::Table)
                    .col(big_integer(RoomMembers::RoomId))
                    .col(big_integer(RoomMembers::UserId))
                    .primary_key(Index::create().col(RoomMembers::RoomId).col(RoomMembers::UserId))
                    .foreign_key(&mut cascade(
                        (RoomMembers::Table, RoomMembers::RoomId),
                        (ChatRooms::Table, ChatRooms::Id),
                    ))
                    .foreign_key(&mut cascade((RoomMembers::Table, RoomMembers::UserId), (Users::Table, Users::Id)))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_room_members_user")
                    .table(RoomMembers::Table)
                    .col(RoomMembers::UserId)
                    .col(RoomMembers::RoomId)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(big_pk_auto(Messages::Id))
                    .col(big_integer(Messages::RoomId))
                    .col(big_integer(Messages::RoomSeq))
                    .col(big_integer(Messages::AuthorId))
                    .col(text(Messages::Content))
                    .col(timestamp_with_time_zone(Messages::Timestamp))
                    .foreign_key(&mut cascade((Messages::Table, Messages::RoomId), (ChatRooms::Table, ChatRooms::Id)))
                    .foreign_key(&mut cascade((Messages::Table, Messages::AuthorId), (Users::Table, Users::Id)))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_messages_room_seq")
                    .table(Messages::Table)
                    .col(Messages::RoomId)
                    .col(Messages::RoomSeq)
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_messages_room_id")
                    .table(Messages::Table)
                    .col(Messages::RoomId)
                    .col(Messages::Id)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_messages_author").table(Messages::Table).col(Messages::AuthorId).take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RevokedTokens::Table)
                    .col(string_len(RevokedTokens::Jti, 64).primary_key())
                    .col(big_integer(RevokedTokens::UserId))
                    .col(timestamp_with_time_zone(RevokedTokens::ExpiresAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_revoked_tokens_expires")
                    .table(RevokedTokens::Table)
                    .col(RevokedTokens::ExpiresAt)
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RevokedTokens::Table.into_iden(),
            Messages::Table.into_iden(),
            RoomMembers::Table.into_iden(),
            ChatRooms::Table.into_iden(),
            Posts::Table.into_iden(),
            Profiles::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).take()).await?;
        }
        Ok(())
    }
}
