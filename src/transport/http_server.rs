//! The HTTP server: an accept loop over hyper's HTTP/1 connections, because `axum::serve` has no
//! timeouts and no per-client cap, so a client that trickles a header, stops mid-body or just
//! holds connections open could keep them (and their memory) forever.
//!
//! Each connection goes through phases, and each phase has its own deadline:
//! - idle (just accepted, or between keep-alive requests): the next request must start within
//!   [`HttpLimits::idle`];
//! - head (its first byte arrived): the whole head must arrive within [`HttpLimits::header`];
//! - busy (the handler runs): the body must arrive within [`HttpLimits::body`] of the head
//!   (a later read fails, and the answer is a 408 that closes the connection); no deadline
//!   on the handler itself;
//! - upgraded (a `101 Switching Protocols` went out): no HTTP deadline any more, the WebSocket
//!   has its own pings.
//!
//! Writing has a deadline of its own, in every phase but upgraded: a write that cannot make
//! progress (the client stopped reading and the socket buffers are full) for
//! [`HttpLimits::write`] fails, and the connection is closed with what it held (a large response
//! waiting to be read, its handler's memory).
//!
//! A client address (IPv6: its /64) holds at most [`HttpLimits::per_client`] connections; one
//! more is answered 429 and closed before anything is read. Graceful shutdown: stop accepting,
//! let in-flight requests finish, close idle keep-alive connections.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::transport::socket::SocketLimiter;

/// The deadlines and the per-client cap of HTTP connections.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// From a request's first byte to the end of its head.
    pub header: Duration,
    /// From the end of the head to the end of the body.
    pub body: Duration,
    /// A connection without a request in progress (fresh, or kept alive after one).
    pub idle: Duration,
    /// A write that makes no progress (the client does not read).
    pub write: Duration,
    /// Open connections per client address; 0: no cap.
    pub per_client: usize,
}

/// Serves `app` on `listener` until `signal` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let clients = SocketLimiter::new(limits.per_client);
    let draining = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own header timer starts while idle; ours tells idle and head apart.
    builder.header_read_timeout(None);
    tokio::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let Some(permit) = clients.acquire(peer.ip()) else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let phase = Arc::new(SharedPhase::default());
        let io = TokioIo::new(Guarded::new(stream, phase.clone(), limits.clone()));
        let service = ConnectionService { app: app.clone(), peer, phase, limits: limits.clone() };
        let connection = builder.serve_connection(io, service).with_upgrades();
        let draining = draining.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            // Errors here are the client's (reset, timed out, malformed): nothing to report.
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = draining.cancelled() => {
                    // Finish the request in flight, then close; an idle connection closes now.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    draining.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Answers a client over its connection cap, without reading its request.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"detail":"Too many open connections from this address."}"#;
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;
const UPGRADED: u8 = 3;

/// The phase of one connection, shared by its reader (which sees bytes arrive) and its service
/// (which sees requests start and end). `changes` counts transitions so the reader restarts
/// its clock even when the phase comes back to the same value; `reader` is woken on each, since
/// a read pending without a deadline must start the new phase's clock.
#[derive(Default)]
struct SharedPhase {
    phase: AtomicU8,
    changes: AtomicU64,
    reader: AtomicWaker,
}

impl SharedPhase {
    fn set(&self, phase: u8) {
        if self.phase.load(Ordering::SeqCst) != UPGRADED {
            self.phase.store(phase, Ordering::SeqCst);
            self.changes.fetch_add(1, Ordering::SeqCst);
            self.reader.wake();
        }
    }
}

/// A TCP stream whose reads fail with `TimedOut` when the phase's deadline passes, and whose
/// writes fail with `TimedOut` when they made no progress for [`HttpLimits::write`].
struct Guarded {
    stream: TcpStream,
    shared: Arc<SharedPhase>,
    limits: Arc<HttpLimits>,
    seen_changes: u64,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Armed by a write the socket could not take, disarmed by one it took.
    write_stall: Pin<Box<Sleep>>,
    write_stalled: bool,
}

impl Guarded {
    fn new(stream: TcpStream, shared: Arc<SharedPhase>, limits: Arc<HttpLimits>) -> Self {
        let deadline = Some(Box::pin(tokio::time::sleep(limits.idle)));
        let write_stall = Box::pin(tokio::time::sleep(limits.write));
        Self { stream, shared, limits, seen_changes: 0, deadline, write_stall, write_stalled: false }
    }

    /// Runs one write operation; fails it once writes have been pending for the write deadline.
    fn guard_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match write(Pin::new(&mut self.stream), cx) {
            Poll::Pending if self.shared.phase.load(Ordering::SeqCst) != UPGRADED => {
                if !self.write_stalled {
                    self.write_stalled = true;
                    self.write_stall.as_mut().reset(Instant::now() + self.limits.write);
                }
                match self.write_stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "HTTP write timeout"))),
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Pending => Poll::Pending,
            ready => {
                self.write_stalled = false;
                ready
            }
        }
    }

    /// Restarts the clock of the current phase when it changed since the last read.
    fn follow_phase(&mut self) {
        let changes = self.shared.changes.load(Ordering::SeqCst);
        if changes == self.seen_changes {
            return;
        }
        self.seen_changes = changes;
        let limit = match self.shared.phase.load(Ordering::SeqCst) {
            IDLE => Some(self.limits.idle),
            HEAD => Some(self.limits.header),
            _ => None,
        };
        self.deadline = limit.map(|limit| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.follow_phase();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.shared.phase.load(Ordering::SeqCst) == IDLE {
                    // A request starts: its head has `header` from now.
                    this.shared.set(HEAD);
                    this.follow_phase();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                this.shared.reader.register(cx.waker());
                if this.shared.changes.load(Ordering::SeqCst) != this.seen_changes {
                    // The phase changed meanwhile: read again under its deadline.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                match this.deadline.as_mut().map(|deadline| deadline.as_mut().poll(cx)) {
                    Some(Poll::Ready(())) => {
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "HTTP read timeout")))
                    }
                    _ => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard_write(cx, |stream, cx| stream.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard_write(cx, |stream, cx| stream.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |stream, cx| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The router for one connection: adds the peer address, times the body, follows the phase.
#[derive(Clone)]
struct ConnectionService {
    app: Router,
    peer: SocketAddr,
    phase: Arc<SharedPhase>,
    limits: Arc<HttpLimits>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.phase.set(BUSY);
        let expired = Arc::new(AtomicBool::new(false));
        let mut request = request.map(|incoming| {
            Body::new(DeadlineBody {
                inner: incoming,
                deadline: Box::pin(tokio::time::sleep(self.limits.body)),
                expired: expired.clone(),
            })
        });
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let app = self.app.clone();
        let phase = self.phase.clone();
        Box::pin(async move {
            let Ok(response) = tower::ServiceExt::oneshot(app, request).await;
            if expired.load(Ordering::SeqCst) {
                phase.set(IDLE);
                return Ok(body_timeout());
            }
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                phase.set(UPGRADED);
                return Ok(response);
            }
            Ok(response.map(|body| Body::new(EndsRequest { inner: body, phase: Some(phase) })))
        })
    }
}

/// 408 for a body that did not arrive in time; the connection closes after it.
fn body_timeout() -> Response<Body> {
    let mut response = Response::new(Body::from(r#"{"detail":"The request body did not arrive in time."}"#));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => {
                this.expired.store(true, Ordering::SeqCst);
                Poll::Ready(Some(Err("the request body did not arrive in time".into())))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(frame.map(|frame| frame.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that puts its connection back to idle once it is sent (or dropped).
struct EndsRequest {
    inner: Body,
    phase: Option<Arc<SharedPhase>>,
}

impl http_body::Body for EndsRequest {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled
            && let Some(phase) = self.phase.take()
        {
            phase.set(IDLE);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for EndsRequest {
    fn drop(&mut self) {
        if let Some(phase) = self.phase.take() {
            phase.set(IDLE);
        }
    }
}
