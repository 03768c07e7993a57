//! An account. Username and email are unique case-insensitively: each has a key column holding
//! its Unicode lower-case form, under a unique index, so SQLite (whose `lower()` only folds
//! ASCII) and PostgreSQL decide alike.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub username: String,
    pub email: String,
    /// `username` in Unicode lower case; unique.
    pub username_key: String,
    /// `email` in Unicode lower case; unique.
    pub email_key: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub is_active: bool,
    pub date_joined: DateTimeUtc,
    pub last_login: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_one = "super::profile::Entity")]
    Profile,
    #[sea_orm(has_many = "super::post::Entity")]
    Post,
}

impl Related<super::profile::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Profile.def()
    }
}

impl Related<super::post::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Post.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
