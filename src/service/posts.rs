//! Posts: publishing one, and the lists of all posts and of one author's posts, newest first
//! (`created_at DESC, id DESC`, as the legacy service ordered them).
//!
//! Lists page by keyset: a page starts after a `(created_at, id)` pair, so a page stays stable
//! while new posts arrive (an offset would shift and repeat posts).

use chrono::{DateTime, SubsecRound, Utc};
use entity::{post, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::domain::{self, POST_CONTENT_MAX, POST_TITLE_MAX};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::service::page::{Page, Total, page_size};

/// Where a page of posts starts: just after this post in newest-first order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostKey {
    pub created_at: DateTime<Utc>,
    pub id: i64,
}

impl From<&post::Model> for PostKey {
    fn from(post: &post::Model) -> Self {
        PostKey { created_at: post.created_at, id: post.id }
    }
}

pub struct NewPost {
    pub title: String,
    pub content: String,
}

/// Publishes a post as `author`. Both fields are trimmed; every invalid field is reported.
pub async fn create(db: &impl ConnectionTrait, author: &user::Model, input: NewPost) -> AppResult<post::Model> {
    let mut errors = FieldErrors::new();
    let title = errors.check("title", domain::clean_text(&input.title, POST_TITLE_MAX, false));
    let content = errors.check("content", domain::clean_text(&input.content, POST_CONTENT_MAX, false));
    let (Some(title), Some(content)) = (title, content) else { return Err(AppError::Invalid(errors)) };
    let post = post::ActiveModel {
        author_id: Set(author.id),
        title: Set(title),
        content: Set(content),
        // Microseconds, as DRF shows them: what is stored is exactly what is shown.
        created_at: Set(Utc::now().trunc_subsecs(6)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(post)
}

pub async fn find(db: &impl ConnectionTrait, id: i64) -> AppResult<Option<post::Model>> {
    Ok(post::Entity::find_by_id(id).one(db).await?)
}

/// A page of posts, newest first: all of them, or those of `author`.
pub async fn list(
    db: &impl ConnectionTrait,
    author: Option<i64>,
    first: Option<i32>,
    after: Option<PostKey>,
    total: Total,
) -> AppResult<Page<post::Model>> {
    let limit = page_size("first", first)?;
    let mut filter = Condition::all();
    if let Some(author) = author {
        filter = filter.add(post::Column::AuthorId.eq(author));
    }
    let total = total.of(&post::Entity::find().filter(filter.clone()), db).await?;
    if let Some(key) = after {
        filter =
            filter.add(Condition::any().add(post::Column::CreatedAt.lt(key.created_at)).add(
                Condition::all().add(post::Column::CreatedAt.eq(key.created_at)).add(post::Column::Id.lt(key.id)),
            ));
    }
    let rows = post::Entity::find()
        .filter(filter)
        .order_by_desc(post::Column::CreatedAt)
        .order_by_desc(post::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    Ok(Page::from_overfetch(rows, limit, after.is_some(), total))
}
