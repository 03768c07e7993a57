//! WebSocket plumbing shared by GraphQL subscriptions and the legacy chat socket: bounded
//! buffers, pings to idle connections, dropping dead ones, and close code 1001 on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use futures_channel::mpsc;
use futures_util::{SinkExt, Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::context::Lifecycle;

/// Largest frame a client may send; chat messages are at most 4,000 characters.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Per-connection read buffer, held for the connection's life: tungstenite allocates it up
/// front and zero-fills it on each read, so its size is resident in every idle socket (axum's
/// default of 128 KiB would cost ~1.3 GB per 10,000 sockets; 8 KiB was most of a socket's cost).
/// It is also the most one read takes: a chat frame (about 100 bytes) fits, a frame larger than
/// it grows the buffer to its size and is read in several reads.
const READ_BUFFER_BYTES: usize = 1024;
/// Frames queued for one connection before its writer pushes back.
const OUTGOING_QUEUE: usize = 64;

/// Close code of a socket (of either kind) whose user was deactivated or deleted
/// (graphql-transport-ws's "Forbidden").
pub const CLOSE_USER_INACTIVE: u16 = 4403;

/// Open WebSockets per client (address, or IPv6 /64): each costs buffers and live feeds, so
/// one client cannot open them without end.
pub struct SocketLimiter {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One open socket of a client; dropping it (the connection ended) frees the place.
pub struct SocketPermit {
    limiter: Arc<SocketLimiter>,
    key: std::net::IpAddr,
}

impl SocketLimiter {
    /// At most `max` sockets per client; 0: no limit.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max, open: Default::default() })
    }

    /// A place for one more socket of `ip`, or `None` when it has `max` open already.
    pub fn acquire(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<SocketPermit> {
        let key = crate::client::network(ip);
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(key).or_insert(0);
        if self.max > 0 && *count >= self.max {
            crate::metrics::throttled("websocket");
            return None;
        }
        *count += 1;
        Some(SocketPermit { limiter: self.clone(), key })
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Bounds what one connection may cost.
pub fn configure(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade.read_buffer_size(READ_BUFFER_BYTES).max_message_size(MAX_MESSAGE_BYTES).max_frame_size(MAX_MESSAGE_BYTES)
}

/// Splits a socket into a sender of frames and a stream of received frames, with a writer
/// task that pings every `every`, closes a connection silent for two periods, and closes with
/// 1001 (going away) when `shutdown` fires. Dropping the sender closes the socket normally.
///
/// A client that does not take a frame within `every` (it stopped reading: the socket's send
/// buffer is full) is dropped, so a full outgoing queue is never waited on for longer than that.
/// Once the writer has given up, for any reason, the stream of received frames ends too: the
/// connection's handler stops rather than waiting for a peer that may never speak again.
pub fn keepalive(
    socket: WebSocket,
    every: Duration,
    lifecycle: &Lifecycle,
) -> (mpsc::Sender<Message>, impl Stream<Item = Result<Message, axum::Error>> + Send + 'static) {
    let (mut sink, stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(OUTGOING_QUEUE);
    let started = Instant::now();
    let last_seen = Arc::new(AtomicU64::new(0));
    let seen = last_seen.clone();
    let writer_done = CancellationToken::new();
    let stream = stream
        .inspect(move |_| seen.store(started.elapsed().as_millis() as u64, Ordering::Relaxed))
        .take_until(writer_done.clone().cancelled_owned());

    let shutdown = lifecycle.shutdown.clone();
    lifecycle.tasks.spawn(async move {
        let _done = writer_done.drop_guard();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                outgoing = rx.next() => match outgoing {
                    Some(frame) => {
                        let closing = matches!(frame, Message::Close(_));
                        match tokio::time::timeout(every, sink.send(frame)).await {
                            Ok(Ok(())) if !closing => {}
                            Ok(_) => break,
                            Err(_) => {
                                tracing::debug!("dropping a WebSocket client that stopped reading");
                                break;
                            }
                        }
                    }
                    None => {
                        let _ = tokio::time::timeout(every, sink.send(close(close_code::NORMAL, ""))).await;
                        break;
                    }
                },
                _ = ticker.tick() => {
                    let silent = (started.elapsed().as_millis() as u64).saturating_sub(last_seen.load(Ordering::Relaxed));
                    if silent > 2 * every.as_millis() as u64 {
                        tracing::debug!("closing a WebSocket that stopped answering pings");
                        let _ = tokio::time::timeout(every, sink.send(close(close_code::AWAY, "ping timeout"))).await;
                        break;
                    }
                    if !matches!(tokio::time::timeout(every, sink.send(Message::Ping(Default::default()))).await, Ok(Ok(()))) {
                        break;
                    }
                }
                _ = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(every, sink.send(close(close_code::AWAY, "server shutting down"))).await;
                    break;
                }
            }
        }
        let _ = tokio::time::timeout(every, sink.close()).await;
    });
    (tx, stream)
}

/// A close frame; the reason is cut to the 123 bytes a close frame may carry (RFC 6455, 5.5).
pub fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: close_reason(reason).into() }))
}

/// The longest prefix of `text` (on a character boundary) that fits a close frame's reason.
pub fn close_reason(text: &str) -> &str {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        assert!(close_reason(&long).len() <= 123);
        assert!(long.starts_with(close_reason(&long)));
    }
}
