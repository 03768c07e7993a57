//! Typing: `setTyping` tells the other members of a room that the caller is typing (or no
//! longer). Live only: nothing is stored. A `typing: true` lasts `typing_ttl_ms` unless renewed;
//! the receiving feeds end it themselves (`service::live`), so a typist who just goes away
//! needs no timer anywhere and it works across processes. Never sent to the typist, nor to
//! those the typist blocked.

use entity::user;

use crate::bus::{ChatEvent, TypingEvent};
use crate::error::AppResult;
use crate::service::chat::{member_ids, room_of_member};
use crate::state::AppState;

/// Publishes that `me` is typing (or stopped) in `room_name`.
pub async fn set_typing(state: &AppState, me: &user::Model, room_name: &str, typing: bool) -> AppResult<()> {
    let room = room_of_member(&state.db, me.id, room_name).await?;
    let members = member_ids(&state.db, room.id).await?;
    let blocked = crate::service::blocks::blocked_of(&state.db, me.id).await?;
    let recipients = members.into_iter().filter(|id| *id != me.id && !blocked.contains(id)).collect();
    let event = TypingEvent {
        room_id: room.id,
        room_name: room.name,
        user_id: me.id,
        username: me.username.clone(),
        typing,
        ttl_ms: state.settings.typing_ttl_ms.max(1),
        recipients,
    };
    state.bus.publish(ChatEvent::Typing(event)).await;
    Ok(())
}
