//! Redis-backed bus for scale-out: several processes share one Redis and an event published by
//! any of them reaches the subscribers of its topics on all of them.
//!
//! Design (see also pitfalls.md, "Redis pub/sub"):
//! - A channel per topic: `{prefix}:room:{id}` and `{prefix}:user:{id}`. An event is PUBLISHed
//!   (one pipeline) on the channel of its room and of each member, as JSON wrapped with this
//!   bus's random origin id, after it went to this process's own subscribers (which never
//!   depend on Redis).
//! - A process SUBSCRIBEs to a topic's channel while it has local subscribers of that topic (the
//!   first one waits for the confirmation, so it misses nothing sent through other processes
//!   after it subscribed) and UNSUBSCRIBEs when the last one leaves. So each process receives
//!   only what its own subscribers read.
//! - One background task per bus owns ONE dedicated pub/sub connection, applies the
//!   (un)subscriptions in the order the routing table changed, and delivers events of other
//!   origins to the local subscribers of the channel's topic (our own were delivered already).
//!   After a lost connection it reconnects with exponential backoff and subscribes to the
//!   channels of every topic with subscribers at that moment. (redis 1.8's `ConnectionManager`
//!   can carry RESP3 pub/sub and resubscribe after a reconnect, but it reconnects only on a
//!   closed or failed socket: a frozen server or a partition, which only the heartbeat notices,
//!   would need a fresh connection and the resubscription done here anyway.)
//! - Publishing goes through a `ConnectionManager` with short timeouts (and a fresh one after a
//!   timeout) so a Redis outage costs a caller at most about a second, never an error. Failures
//!   are logged once per outage.
//! - A heartbeat PING on the pub/sub connection notices a peer that went silent without closing
//!   the socket.
//! - Pub/sub is at-most-once: events published while a subscriber connection is down are lost
//!   for that process; feeds fill the gap from the database.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use ::redis::{Client, FromRedisValue, Msg, Pipeline, RedisError, RedisResult, Value};
use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, sleep, timeout};

use super::router::Router;
use super::{ChatEvent, EventBus, Subscription, Topic};

/// Per connection attempt and per command of the publishing connection.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Upper bound for one `publish` call, including one retry.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// `ready()` PING budget.
const READY_TIMEOUT: Duration = Duration::from_secs(1);
/// Connecting and subscribing the pub/sub connection, and each later (un)subscribe (redis-rs
/// applies no timeout of its own there).
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `connect` waits for the first subscribe attempt to finish, so `ready()` is right
/// from the start (a refused connection ends the wait at once).
const STARTUP_WAIT: Duration = Duration::from_secs(2);
/// Reconnect delays of the pub/sub connection.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A closed socket ends the message stream at once, but a silently dead peer (network
/// partition, frozen server) would not; periodic PINGs on the subscriber connection detect that.
const HEARTBEAT: Heartbeat = Heartbeat { every: Duration::from_secs(15), timeout: Duration::from_secs(3) };

#[derive(Clone, Copy, Debug)]
struct Heartbeat {
    every: Duration,
    timeout: Duration,
}

/// State of the subscriber connection, published by the background task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// First attempt still running.
    Connecting,
    Subscribed,
    /// Between attempts after a failure or a lost connection.
    Down,
}

/// What travels over Redis. `origin` lets a bus skip its own events.
#[derive(Serialize)]
struct OutgoingEnvelope<'a> {
    origin: &'a str,
    event: &'a ChatEvent,
}

#[derive(Deserialize)]
struct IncomingEnvelope {
    origin: String,
    event: ChatEvent,
}

/// The channel names of topics.
#[derive(Clone, Debug)]
struct Channels {
    prefix: String,
}

impl Channels {
    fn of(&self, topic: Topic) -> String {
        match topic {
            Topic::Room(id) => format!("{}:room:{id}", self.prefix),
            Topic::Member(id) => format!("{}:user:{id}", self.prefix),
        }
    }

    fn topic(&self, channel: &str) -> Option<Topic> {
        let rest = channel.strip_prefix(self.prefix.as_str())?.strip_prefix(':')?;
        if let Some(id) = rest.strip_prefix("room:") {
            return id.parse().ok().map(Topic::Room);
        }
        rest.strip_prefix("user:")?.parse().ok().map(Topic::Member)
    }
}

/// A change of the subscriber connection's channels, in the order the routing table changed.
enum Command {
    /// With whom to tell once Redis confirmed it.
    Subscribe(String, Option<oneshot::Sender<()>>),
    Unsubscribe(String),
}

/// Fan-out through Redis pub/sub on a channel per topic.
///
/// Dropping the bus stops its background task and closes its connections; subscriptions then
/// see `RecvError::Closed`.
pub struct RedisBus {
    router: Arc<Router>,
    channels: Channels,
    publisher: Publisher,
    origin: String,
    commands: mpsc::UnboundedSender<Command>,
    /// Whether the background task currently holds a confirmed subscription.
    link: watch::Receiver<Link>,
    /// Consecutive failed publishes; only the first of an outage is a warning, so an outage
    /// does not flood the log.
    failed_publishes: AtomicU64,
    listener: JoinHandle<()>,
}

impl RedisBus {
    /// Validates `url` (fails fast when malformed), starts the subscriber task and waits (at
    /// most 2 s) for its first connection attempt. Succeeds when Redis is unreachable: the task
    /// logs a warning and keeps retrying.
    pub async fn connect(url: &str, channel_prefix: &str, capacity: usize) -> anyhow::Result<Self> {
        Self::connect_with(url, channel_prefix, capacity, HEARTBEAT).await
    }

    async fn connect_with(
        url: &str,
        channel_prefix: &str,
        capacity: usize,
        heartbeat: Heartbeat,
    ) -> anyhow::Result<Self> {
        // The URL is left out of errors and logs: it may carry a password.
        let client = Client::open(url).context("invalid Redis URL for the chat event bus")?;
        let publisher =
            Publisher::new(client.clone()).context("cannot set up the Redis connection for the chat event bus")?;

        let prefix = match channel_prefix.trim() {
            "" => "agora",
            prefix => prefix,
        };
        let channels = Channels { prefix: prefix.to_owned() };
        let origin = uuid::Uuid::new_v4().simple().to_string();
        let (commands, pending) = mpsc::unbounded_channel();
        let unsubscribe = {
            let (commands, channels) = (commands.clone(), channels.clone());
            move |topic| {
                let _ = commands.send(Command::Unsubscribe(channels.of(topic)));
            }
        };
        let router = Router::new(capacity, Some(Box::new(unsubscribe)));
        let (link_tx, link) = watch::channel(Link::Connecting);

        let listener = tokio::spawn(
            Listener {
                client,
                channels: channels.clone(),
                origin: origin.clone(),
                router: router.clone(),
                link: link_tx,
                heartbeat,
            }
            .run(pending),
        );

        let bus =
            Self { router, channels, publisher, origin, commands, link, failed_publishes: AtomicU64::new(0), listener };
        // Wait for the first attempt, so `ready()` is right at once; an unreachable Redis
        // (already logged by the task) does not delay startup further.
        let mut link = bus.link.clone();
        let _ = timeout(STARTUP_WAIT, link.wait_for(|l| *l != Link::Connecting)).await;
        Ok(bus)
    }

    /// The Redis channel events of `topic` travel on.
    pub fn channel(&self, topic: Topic) -> String {
        self.channels.of(topic)
    }

    /// Whether events of other processes are being received right now.
    pub fn is_subscribed(&self) -> bool {
        *self.link.borrow() == Link::Subscribed
    }

    /// Waits until the subscription is (re)established; false on timeout.
    pub async fn wait_subscribed(&self, limit: Duration) -> bool {
        let mut link = self.link.clone();
        let subscribed = link.wait_for(|l| *l == Link::Subscribed);
        matches!(timeout(limit, subscribed).await, Ok(Ok(_)))
    }
}

/// The shared connection for PUBLISH and PING.
///
/// A `ConnectionManager` reconnects by itself only when its connection is closed or fails with
/// an I/O error; a command that merely times out keeps the connection. A silently dead one
/// (Redis failed over to another address, network partition) would then time out every command
/// until TCP gives up many minutes later, so after a timeout the manager is replaced by a fresh
/// one.
struct Publisher {
    client: Client,
    /// Generation (to replace a dead manager only once) and manager.
    current: std::sync::Mutex<(u64, ConnectionManager)>,
}

impl Publisher {
    fn new(client: Client) -> RedisResult<Self> {
        let manager = Self::manager(&client)?;
        Ok(Self { client, current: std::sync::Mutex::new((0, manager)) })
    }

    /// Lazy: connecting now would fail while Redis is down.
    fn manager(client: &Client) -> RedisResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            // One attempt per reconnect: `query` retries once itself, and the
            // next command starts the next attempt.
            .set_number_of_retries(0);
        client.get_connection_manager_lazy(config)
    }

    fn get(&self) -> (u64, ConnectionManager) {
        self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn replace(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.0 != generation {
            return; // someone else replaced it already
        }
        match Self::manager(&self.client) {
            Ok(manager) => *current = (generation + 1, manager),
            Err(err) => tracing::debug!(error = %err, "cannot replace the Redis connection"),
        }
    }

    /// Runs `pipe`, retrying on connection trouble: after Redis restarted, the first command
    /// fails on the stale connection (or on the failed reconnect from the outage) and makes the
    /// manager reconnect, which takes a moment, so the retries back off briefly (25, 50, 100
    /// ms; the callers bound the whole with their own timeout). A timed-out connection is
    /// replaced. For PUBLISH a rare duplicate is possible; subscribers drop it through
    /// `room_seq`.
    async fn query<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        let mut attempt = 0;
        loop {
            let (generation, mut conn) = self.get();
            match pipe.query_async(&mut conn).await {
                Err(err) if attempt < 3 && (err.is_timeout() || err.is_io_error() || err.is_unrecoverable_error()) => {
                    if err.is_timeout() {
                        self.replace(generation);
                    }
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        // Also drops the pub/sub connection and the task's share of the routing table.
        self.listener.abort();
    }
}

#[async_trait::async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, event: ChatEvent) {
        let payload = serde_json::to_string(&OutgoingEnvelope { origin: &self.origin, event: &event });
        let event = Arc::new(event);
        // Local subscribers first: they must not wait for, or depend on, Redis.
        self.router.deliver(&event, event.topics());

        let payload = match payload {
            Ok(payload) => payload,
            Err(err) => {
                tracing::warn!(room_id = ?event.room_id(), error = %err, "cannot encode chat event for Redis");
                return;
            }
        };
        let mut publish = ::redis::pipe();
        for topic in event.topics() {
            publish.cmd("PUBLISH").arg(self.channels.of(topic)).arg(&payload).ignore();
        }
        let outcome = match timeout(PUBLISH_TIMEOUT, self.publisher.query::<()>(&publish)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".to_owned()),
        };
        match outcome {
            Ok(()) => {
                let missed = self.failed_publishes.swap(0, Ordering::Relaxed);
                if missed > 0 {
                    tracing::info!(missed, "publishing chat events to Redis works again");
                }
            }
            Err(error) => {
                crate::metrics::bus_publish_failed();
                let room_id = event.room_id();
                if self.failed_publishes.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        ?room_id,
                        %error,
                        "cannot publish chat event to Redis; other processes miss it \
                         (further failures are logged at debug level until it works again)"
                    );
                } else {
                    tracing::debug!(?room_id, %error, "cannot publish chat event to Redis");
                }
            }
        }
    }

    async fn subscribe(&self, topic: Topic) -> Subscription {
        let mut confirmed = None;
        let subscription = self.router.join(topic, |topic| {
            let (tell, told) = oneshot::channel();
            let _ = self.commands.send(Command::Subscribe(self.channels.of(topic), Some(tell)));
            confirmed = Some(told);
        });
        // While Redis is down there is nothing to wait for: the reconnect subscribes anew.
        if let Some(confirmed) = confirmed
            && self.is_subscribed()
        {
            let _ = timeout(SUBSCRIBE_TIMEOUT, confirmed).await;
        }
        subscription
    }

    /// PING answered and the subscriber connection is up: otherwise this process would not see
    /// messages sent through other processes.
    async fn ready(&self) -> bool {
        let mut ping = ::redis::pipe();
        ping.cmd("PING");
        let pong = timeout(READY_TIMEOUT, self.publisher.query::<Vec<Value>>(&ping)).await;
        matches!(pong, Ok(Ok(_))) && self.is_subscribed()
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// The background task: keeps one subscriber connection alive, subscribed to the channels of
/// the topics with local subscribers, and delivers foreign events to them.
struct Listener {
    client: Client,
    channels: Channels,
    origin: String,
    router: Arc<Router>,
    link: watch::Sender<Link>,
    heartbeat: Heartbeat,
}

impl Listener {
    async fn run(self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut backoff = BACKOFF_MIN;
        // Start of the current outage; the outage and the recovery are each
        // logged once, the attempts in between at debug level.
        let mut down_since: Option<Instant> = None;
        loop {
            match self.subscribe(&mut commands).await {
                Ok((sink, stream)) => {
                    match down_since.take() {
                        Some(since) => tracing::info!(
                            prefix = %self.channels.prefix,
                            down_for = ?since.elapsed(),
                            "Redis subscription for chat events restored"
                        ),
                        None => tracing::debug!(prefix = %self.channels.prefix, "subscribed to Redis"),
                    }
                    backoff = BACKOFF_MIN;
                    self.link.send_replace(Link::Subscribed);
                    let reason = self.relay(sink, stream, &mut commands).await;
                    self.link.send_replace(Link::Down);
                    tracing::warn!(
                        prefix = %self.channels.prefix,
                        %reason,
                        "Redis subscription for chat events lost; reconnecting \
                         (events from other processes are missed meanwhile)"
                    );
                    down_since = Some(Instant::now());
                }
                Err(err) => {
                    self.link.send_replace(Link::Down);
                    if down_since.is_none() {
                        tracing::warn!(
                            prefix = %self.channels.prefix,
                            error = %err,
                            "cannot subscribe to Redis for chat events; retrying in the \
                             background (only this process's events are delivered meanwhile)"
                        );
                        down_since = Some(Instant::now());
                    } else {
                        tracing::debug!(error = %err, ?backoff, "Redis subscribe attempt failed");
                    }
                }
            }
            sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// A fresh pub/sub connection subscribed to the channels of every topic with subscribers.
    async fn subscribe(
        &self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> RedisResult<(PubSubSink, PubSubStream)> {
        // Changes queued while down are in the table read next; later ones follow in order.
        while commands.try_recv().is_ok() {}
        let wanted: Vec<String> = self.router.topics().into_iter().map(|topic| self.channels.of(topic)).collect();
        let attempt = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            if !wanted.is_empty() {
                pubsub.subscribe(&wanted).await?;
            }
            Ok(pubsub.split())
        };
        match timeout(SUBSCRIBE_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => {
                Err(RedisError::from(io::Error::new(io::ErrorKind::TimedOut, "connecting and subscribing timed out")))
            }
        }
    }

    /// Delivers messages and applies channel changes until the connection is gone; returns why.
    async fn relay(
        &self,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> String {
        let Heartbeat { every, timeout: ping_timeout } = self.heartbeat;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => self.forward(&msg),
                    // The connection's driver ends the stream when the socket
                    // closes or errors.
                    None => return "connection closed".to_owned(),
                },
                command = commands.recv() => {
                    let Some(command) = command else { return "bus dropped".to_owned() };
                    let (outcome, tell) = match command {
                        Command::Subscribe(channel, tell) => {
                            (timeout(SUBSCRIBE_TIMEOUT, sink.subscribe(&channel)).await, tell)
                        }
                        Command::Unsubscribe(channel) => {
                            (timeout(SUBSCRIBE_TIMEOUT, sink.unsubscribe(&channel)).await, None)
                        }
                    };
                    match outcome {
                        Ok(Ok(())) => {
                            if let Some(tell) = tell {
                                let _ = tell.send(());
                            }
                        }
                        Ok(Err(err)) => return format!("(un)subscribe failed: {err}"),
                        Err(_) => return "(un)subscribe timed out".to_owned(),
                    }
                }
                _ = heartbeat.tick() => {
                    // Messages keep queueing in the stream meanwhile.
                    match timeout(ping_timeout, sink.ping::<Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return format!("heartbeat failed: {err}"),
                        Err(_) => return "heartbeat timed out".to_owned(),
                    }
                }
            }
        }
    }

    fn forward(&self, msg: &Msg) {
        let channel = msg.get_channel_name();
        let Some(topic) = self.channels.topic(channel) else {
            tracing::warn!(channel, "ignoring a message on an unexpected Redis channel");
            return;
        };
        match serde_json::from_slice::<IncomingEnvelope>(msg.get_payload_bytes()) {
            // Ours: delivered locally when it was published.
            Ok(envelope) if envelope.origin == self.origin => {}
            // Only to the channel's topic: the event's other topics have channels of their own.
            Ok(envelope) => self.router.deliver(&Arc::new(envelope.event), [topic]),
            Err(err) => tracing::warn!(channel, error = %err, "ignoring malformed chat event from Redis"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::RecvError;
    use crate::bus::test_support::event;
    use std::process::{Child, Command, Stdio};

    /// The room of `test_support::event`.
    const ROOM: Topic = Topic::Room(7);

    /// Shared Redis from the environment (set in CI).
    fn redis_url() -> String {
        std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL is set for the tests that need Redis")
    }

    /// Shows the bus's log lines with `--nocapture`.
    fn init_logs() {
        let _ = tracing_subscriber::fmt().with_ansi(false).with_test_writer().try_init();
    }

    /// A channel prefix no other test run uses.
    fn unique_prefix() -> String {
        format!("agora-test-{}", uuid::Uuid::new_v4().simple())
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    async fn recv_seq(rx: &mut Subscription) -> i64 {
        let event = timeout(Duration::from_secs(5), rx.recv()).await.expect("no event within 5 s");
        event.expect("receiver failed").room_seq().unwrap()
    }

    async fn assert_closed(rx: &mut Subscription) {
        let next = timeout(Duration::from_secs(2), rx.recv()).await;
        assert!(matches!(next, Ok(Err(RecvError::Closed))), "background task still alive after drop: {next:?}");
    }

    #[tokio::test]
    async fn works_locally_while_redis_is_down() {
        init_logs();
        // Nothing listens on this port.
        let url = format!("redis://127.0.0.1:{}", free_port());
        let bus = RedisBus::connect(&url, &unique_prefix(), 16).await.unwrap();
        // `connect` returned on the first attempt's outcome (refused), not at the end of its
        // startup wait, which would find the attempt still running.
        assert_eq!(*bus.link.borrow(), Link::Down);
        assert_eq!(bus.kind(), "redis");
        assert!(!bus.is_subscribed());
        assert!(!bus.ready().await);

        let mut rx = bus.subscribe(ROOM).await;
        bus.publish(event(1)).await;
        bus.publish(event(2)).await;
        // Each publish gave up on Redis (counted once each), and delivered locally all the same.
        assert_eq!(bus.failed_publishes.load(Ordering::Relaxed), 2);
        assert_eq!(recv_seq(&mut rx).await, 1);
        assert_eq!(recv_seq(&mut rx).await, 2);

        drop(bus);
        assert_closed(&mut rx).await;
    }

    #[tokio::test]
    #[ignore = "needs Redis (TEST_REDIS_URL)"]
    async fn delivers_across_buses_exactly_once_in_order() {
        let url = redis_url();
        init_logs();
        let prefix = unique_prefix();
        let a = RedisBus::connect(&url, &prefix, 256).await.unwrap();
        let b = RedisBus::connect(&url, &prefix, 256).await.unwrap();
        let other = RedisBus::connect(&url, &unique_prefix(), 256).await.unwrap();
        for bus in [&a, &b, &other] {
            assert!(bus.wait_subscribed(Duration::from_secs(5)).await);
            assert!(bus.ready().await);
        }
        let (mut rx_a, mut rx_b, mut rx_other) =
            (a.subscribe(ROOM).await, b.subscribe(ROOM).await, other.subscribe(ROOM).await);
        // A member's feed on B: the same events through the member's channel, once each.
        let mut member_b = b.subscribe(Topic::Member(2)).await;
        let mut stranger_b = b.subscribe(Topic::Member(9)).await;

        for seq in 1..=100 {
            a.publish(event(seq)).await;
        }
        for seq in 1..=100 {
            assert_eq!(recv_seq(&mut rx_b).await, seq);
            assert_eq!(recv_seq(&mut member_b).await, seq);
        }
        // B publishes only once A's events reached it: its own event is delivered to its own
        // receiver at once and would otherwise overtake those still travelling through Redis.
        b.publish(event(101)).await;
        assert_eq!(recv_seq(&mut rx_b).await, 101);
        assert_eq!(recv_seq(&mut member_b).await, 101);
        for seq in 1..=101 {
            assert_eq!(recv_seq(&mut rx_a).await, seq);
        }
        // Also checks the full payload survives the trip; and, as the next event each receives,
        // that no duplicate came before it.
        a.publish(event(102)).await;
        let got = timeout(Duration::from_secs(5), rx_b.recv()).await.unwrap().unwrap();
        let message = got.as_message().unwrap();
        assert_eq!((message.room_seq, message.content.as_str()), (102, "message 102"));
        assert_eq!(message.member_ids, vec![1, 2, 3]);
        assert_eq!(recv_seq(&mut rx_a).await, 102);
        assert_eq!(recv_seq(&mut member_b).await, 102);
        // Another prefix and another member saw nothing: their sentinel is the first they get.
        other.publish(event(1)).await;
        assert_eq!(recv_seq(&mut rx_other).await, 1);
        a.publish(crate::bus::test_support::event_of(70, 1, &[9])).await;
        assert_eq!(recv_seq(&mut stranger_b).await, 1);

        drop(a);
        assert_closed(&mut rx_a).await;
    }

    /// A private redis-server on a free port, killed when dropped.
    struct PrivateRedis {
        port: u16,
        child: Option<Child>,
    }

    impl PrivateRedis {
        fn available() -> bool {
            Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success())
        }

        async fn start() -> Self {
            let mut server = Self { port: free_port(), child: None };
            server.restart().await;
            server
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.port)
        }

        async fn restart(&mut self) {
            self.kill();
            let child = Command::new("redis-server")
                .args(["--port", &self.port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start redis-server");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(5);
            while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                sleep(Duration::from_millis(20)).await;
            }
        }

        /// Sends a signal, e.g. "-STOP" to freeze the server.
        fn signal(&self, signal: &str) {
            let pid = self.child.as_ref().expect("server not running").id();
            let status = Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
            assert!(status.success());
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        async fn subscriber_count(&self, channel: &str) -> i64 {
            let client = Client::open(self.url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let (_, count): (String, i64) =
                ::redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(&mut conn).await.unwrap();
            count
        }
    }

    impl Drop for PrivateRedis {
        fn drop(&mut self) {
            self.kill();
        }
    }

    async fn wait_subscriber_count(server: &PrivateRedis, channel: &str, count: i64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.subscriber_count(channel).await != count {
            assert!(Instant::now() < deadline, "{channel} never had {count} subscribers");
            sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    #[ignore = "needs Redis (redis-server)"]
    async fn a_process_listens_to_a_topic_only_while_it_has_subscribers_there() {
        assert!(PrivateRedis::available(), "redis-server is not installed");
        let server = PrivateRedis::start().await;
        let bus = RedisBus::connect(&server.url(), &unique_prefix(), 64).await.unwrap();
        let channel = bus.channel(ROOM);
        assert_eq!(server.subscriber_count(&channel).await, 0);
        let first = bus.subscribe(ROOM).await;
        // Confirmed before `subscribe` returned.
        assert_eq!(server.subscriber_count(&channel).await, 1);
        let second = bus.subscribe(ROOM).await;
        drop(first);
        assert_eq!(server.subscriber_count(&channel).await, 1, "one subscriber is still there");
        drop(second);
        wait_subscriber_count(&server, &channel, 0).await;
        let _again = bus.subscribe(ROOM).await;
        assert_eq!(server.subscriber_count(&channel).await, 1);
    }

    #[tokio::test]
    #[ignore = "needs Redis (redis-server)"]
    async fn resumes_delivery_after_redis_restart() {
        assert!(PrivateRedis::available(), "redis-server is not installed");
        init_logs();
        let mut server = PrivateRedis::start().await;
        let prefix = unique_prefix();
        let a = RedisBus::connect(&server.url(), &prefix, 64).await.unwrap();
        let b = RedisBus::connect(&server.url(), &prefix, 64).await.unwrap();
        let (mut rx_a, mut rx_b) = (a.subscribe(ROOM).await, b.subscribe(ROOM).await);
        assert!(a.is_subscribed() && b.is_subscribed());
        assert_eq!(server.subscriber_count(&a.channel(ROOM)).await, 2);

        a.publish(event(1)).await;
        assert_eq!(recv_seq(&mut rx_b).await, 1);

        server.kill();
        wait_unsubscribed([&a, &b]).await;
        assert!(!a.ready().await);
        // Several failed attempts, with growing backoff, before Redis is back.
        failed_attempts(&a, 3).await;

        // During the outage: local delivery only, each publish giving up (counted once each).
        a.publish(event(2)).await;
        a.publish(event(3)).await;
        assert_eq!(a.failed_publishes.load(Ordering::Relaxed), 2);

        server.restart().await;
        assert!(a.wait_subscribed(Duration::from_secs(10)).await);
        assert!(b.wait_subscribed(Duration::from_secs(10)).await);
        assert!(a.ready().await);

        a.publish(event(4)).await;
        // B missed 2 and 3 (at-most-once); it would catch up from the database.
        assert_eq!(recv_seq(&mut rx_b).await, 4);
        // Only now B publishes: its own event reaches its receiver at once, and must not
        // overtake 4, which is still on its way through Redis.
        b.publish(event(5)).await;
        for seq in [1, 2, 3, 4, 5] {
            assert_eq!(recv_seq(&mut rx_a).await, seq);
        }
        assert_eq!(recv_seq(&mut rx_b).await, 5);
        // No duplicate of 4 was still on its way: it would come before this sentinel.
        a.publish(event(6)).await;
        assert_eq!(recv_seq(&mut rx_b).await, 6);
        assert_eq!(recv_seq(&mut rx_a).await, 6);

        // Dropping the buses closes their subscriptions on the server too.
        let channel = a.channel(ROOM);
        drop(a);
        drop(b);
        assert_closed(&mut rx_a).await;
        assert_closed(&mut rx_b).await;
        wait_subscriber_count(&server, &channel, 0).await;
    }

    /// Waits until each bus noticed the outage (its subscriber connection is down).
    async fn wait_unsubscribed(buses: [&RedisBus; 2]) {
        for bus in buses {
            let mut link = bus.link.clone();
            let down = timeout(Duration::from_secs(10), link.wait_for(|l| *l == Link::Down)).await;
            assert!(matches!(down, Ok(Ok(_))), "outage not noticed");
        }
    }

    /// Waits for `count` more failed attempts of `bus` to subscribe (each one reports `Down`).
    async fn failed_attempts(bus: &RedisBus, count: usize) {
        let mut link = bus.link.clone();
        link.mark_unchanged();
        for _ in 0..count {
            let changed = timeout(Duration::from_secs(10), link.changed()).await;
            assert!(matches!(changed, Ok(Ok(()))), "no further attempt");
            assert_eq!(*link.borrow_and_update(), Link::Down, "reconnected while Redis is down");
        }
    }

    /// A frozen server keeps its sockets open: only the heartbeat notices
    /// (shortened here), and publish must still give up rather than wait for it.
    #[tokio::test]
    #[ignore = "needs Redis (redis-server)"]
    async fn recovers_from_a_frozen_server() {
        assert!(PrivateRedis::available(), "redis-server is not installed");
        init_logs();
        let server = PrivateRedis::start().await;
        let heartbeat = Heartbeat { every: Duration::from_millis(200), timeout: Duration::from_millis(300) };
        let prefix = unique_prefix();
        let url = server.url();
        let connect = || RedisBus::connect_with(&url, &prefix, 64, heartbeat);
        let (a, b) = (connect().await.unwrap(), connect().await.unwrap());
        let (mut rx_a, mut rx_b) = (a.subscribe(ROOM).await, b.subscribe(ROOM).await);
        a.publish(event(1)).await;
        assert_eq!(recv_seq(&mut rx_a).await, 1);
        assert_eq!(recv_seq(&mut rx_b).await, 1);

        server.signal("-STOP");
        wait_unsubscribed([&a, &b]).await;
        // The frozen server never answers: publish gives up (its failure counted) rather than wait.
        a.publish(event(2)).await;
        assert_eq!(a.failed_publishes.load(Ordering::Relaxed), 1);
        assert!(!a.ready().await);
        server.signal("-CONT");

        assert!(a.wait_subscribed(Duration::from_secs(10)).await);
        assert!(b.wait_subscribed(Duration::from_secs(10)).await);
        assert!(a.ready().await);
        a.publish(event(3)).await;
        assert_eq!(recv_seq(&mut rx_a).await, 2);
        assert_eq!(recv_seq(&mut rx_a).await, 3);
        // Event 2 may or may not reach B (the frozen server might still
        // process it, even twice after the retry); 3 arrives, in order.
        let mut seen = Vec::new();
        while seen.last() != Some(&3) {
            seen.push(recv_seq(&mut rx_b).await);
        }
        assert!(seen.is_sorted() && seen.iter().all(|seq| [2, 3].contains(seq)), "{seen:?}");
    }
}
