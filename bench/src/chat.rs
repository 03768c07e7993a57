//! The chat scenarios: fan-out over sockets in an open loop, and idle sockets.
//!
//! **Fan-out.** Both members of every seeded room hold a socket to it; message `i` of a run is
//! due at `start + i / rate`, goes to room `i mod rooms` and is sent on one member's socket
//! whether or not earlier ones were answered (open loop: a slow server faces the same schedule,
//! as real users would give it). Every socket of the room must receive it: latency is counted
//! from the *scheduled* time, so queueing anywhere (client, server, database) shows. Each
//! socket checks what it receives for duplicates and for the order the server stored them in; at the end the tool counts what
//! was lost, what each room's history stored, the sockets the server dropped and the server's
//! CPU time per message. `legacy` speaks the Django chat socket (both servers); `graphql`
//! subscribes with `messageAdded` over graphql-transport-ws (Agora only) and sends with
//! `sendMessage` over HTTP `POST /graphql` from a keep-alive pool, as clients under load do
//! (`--send-over socket` pipelines it on the subscribing socket instead, where at most 20
//! operations may run at once).
//!
//! **Scale.** The seed's `--rooms N` makes N rooms of two members (2N sockets). **Scale-out.**
//! `--base A,B` spreads the sockets over both processes: the two members of a room sit on
//! different processes, and each send goes to its sender's process, so every message crosses
//! the bus (Redis) to reach the other member.
//!
//! **Idle.** `--idle N` sockets opened 64 at a time, each joined to a room (legacy) or holding
//! one `messageAdded` subscription (graphql, after `connection_init` with the member's token):
//! handshakes per second, and the server's resident memory per socket (the growth over the
//! run's idle size, divided by N). `--via legacy,graphql` measures both kinds.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

use crate::procfs;
use crate::report::{Run, Scenario};
use crate::seed::World;

/// Settings of the chat scenarios.
#[derive(Clone, Debug, clap::Args)]
pub struct ChatArgs {
    /// Messages per second over all rooms; each rate is one run, on fresh sockets.
    #[arg(long, value_delimiter = ',', default_value = "400,2000,4000")]
    pub rates: Vec<u64>,
    /// Seconds of sending per rate.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Socket kinds, comma-separated: legacy (both servers), graphql (Agora).
    #[arg(long, value_delimiter = ',', default_value = "legacy")]
    pub via: Vec<Via>,
    /// Idle sockets to hold for the memory and handshake scenario (0: none).
    #[arg(long, default_value_t = 1000)]
    pub idle: usize,
    /// Seconds to wait for late deliveries after the last send.
    #[arg(long, default_value_t = 5)]
    pub drain: u64,
    /// How the graphql variant sends: HTTP `POST /graphql`, or the subscribing socket.
    #[arg(long, value_enum, default_value = "http")]
    pub send_over: SendOver,
    /// Most HTTP sends in flight at once (more wait their turn, late: latency shows it).
    #[arg(long, default_value_t = 256)]
    pub in_flight: usize,
}

/// Where the graphql variant sends its `sendMessage` operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SendOver {
    /// `POST /graphql` with the sender's token, from a pool of keep-alive connections.
    Http,
    /// Pipelined on the sender's graphql-transport-ws socket.
    Socket,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    Legacy,
    Graphql,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Legacy => "legacy",
            Via::Graphql => "graphql",
        }
    }
}

/// Runs the idle scenario of every kind of socket, then every rate of every kind. `bases`: the
/// server's processes (one, or several sharing a database and a Redis bus).
pub async fn run(bases: &[String], pids: &[u32], args: &ChatArgs, world: &World, run: &mut Run) -> anyhow::Result<()> {
    let base = bases.first().context("no base URL")?.as_str();
    let rooms: Vec<Room> = world
        .room_of
        .iter()
        .enumerate()
        .step_by(2)
        .filter_map(|(a, room)| {
            let name = room.clone()?;
            Some(Room { name, members: [world.users[a].access.clone(), world.users[a + 1].access.clone()] })
        })
        .collect();
    anyhow::ensure!(!rooms.is_empty(), "the seed made no room");
    let mut kinds = Vec::new();
    for &via in &args.via {
        if via == Via::Graphql && !speaks_graphql(base).await {
            eprintln!("{base} does not serve GraphQL: no graphql scenario");
            continue;
        }
        kinds.push(via);
    }
    // Every kind's idle sockets before any chat: a chat run grows the database and with it
    // what the server keeps cached, which would be counted against the sockets measured after.
    for &via in &kinds {
        if args.idle > 0 {
            let scenario = with_peak_rss(pids, idle(base, pids, via, &rooms, args.idle)).await?;
            eprintln!("{}", scenario.line());
            run.scenarios.push(scenario);
        }
    }
    for &via in &kinds {
        for &rate in &args.rates {
            let scenario = with_peak_rss(pids, fan_out(bases, pids, via, &rooms, rate, args)).await?;
            eprintln!("{}", scenario.line());
            run.scenarios.push(scenario);
        }
    }
    Ok(())
}

/// `scenario`, with the servers' peak resident memory while it ran (`peak_rss_kib`): which
/// scenario makes the run's peak.
async fn with_peak_rss(
    pids: &[u32],
    scenario: impl Future<Output = anyhow::Result<Scenario>>,
) -> anyhow::Result<Scenario> {
    let peak = procfs::PeakRss::start(pids.to_vec());
    let mut scenario = scenario.await;
    let peak_kib = peak.finish().await;
    if let Ok(scenario) = &mut scenario {
        scenario.extra.insert("peak_rss_kib".into(), json!(peak_kib));
    }
    scenario
}

/// Whether the server answers a GraphQL query (the Django reference does not).
async fn speaks_graphql(base: &str) -> bool {
    let answer =
        reqwest::Client::new().post(format!("{base}/graphql")).json(&json!({"query": "{ __typename }"})).send().await;
    answer.is_ok_and(|a| a.status().is_success())
}

struct Room {
    name: String,
    /// Access tokens of the two members.
    members: [String; 2],
}

/// What one socket saw (`reordered`: messages with a lower server id than one before them).
#[derive(Default)]
struct Tally {
    received: u64,
    duplicates: u64,
    reordered: u64,
    errors: u64,
    latencies_ms: Vec<f64>,
    /// The server closed the socket (or it failed) before the run was over.
    dropped: bool,
}

/// The schedule every socket of a run shares: message `i` is due at `start + i / rate`.
#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    rate: u64,
}

impl Schedule {
    fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate as f64)
    }
}

/// One connected socket: frames to send go through `outbox`; `reader` ends with its tally.
struct Socket {
    outbox: mpsc::UnboundedSender<Message>,
    reader: tokio::task::JoinHandle<Tally>,
}

async fn connect(base: &str, via: Via, room: &str, token: &str) -> anyhow::Result<WsStream> {
    connect_from(base, via, room, token, None).await
}

/// [`connect`] from the local address `from` (`None`: the system's choice).
async fn connect_from(
    base: &str,
    via: Via,
    room: &str,
    token: &str,
    from: Option<std::net::IpAddr>,
) -> anyhow::Result<WsStream> {
    let ws = base.replacen("http", "ws", 1);
    match via {
        Via::Legacy => {
            let url = format!("{ws}/messenger/ws/ws/chat/{room}/?token={token}");
            let (socket, _) =
                handshake(url.as_str().into_client_request()?, from).await.with_context(|| format!("connect {url}"))?;
            Ok(socket)
        }
        Via::Graphql => {
            let mut request = format!("{ws}/graphql/ws").into_client_request()?;
            request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
            let (mut socket, _) = handshake(request, from).await.context("connect /graphql/ws")?;
            let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
            socket.send(Message::text(init.to_string())).await?;
            loop {
                let frame = socket.next().await.context("closed before connection_ack")??;
                if let Message::Text(text) = frame {
                    let value: Value = serde_json::from_str(&text)?;
                    match value["type"].as_str() {
                        Some("connection_ack") => break,
                        Some("ping") => socket.send(Message::text(r#"{"type":"pong"}"#)).await?,
                        _ => bail!("expected connection_ack, got {text}"),
                    }
                }
            }
            let subscribe = json!({"id": "feed", "type": "subscribe", "payload": {
                "query": "subscription($room: String!) { messageAdded(roomName: $room) { id content } }",
                "variables": {"room": room},
            }});
            socket.send(Message::text(subscribe.to_string())).await?;
            Ok(socket)
        }
    }
}

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The WebSocket handshake of `request`, over a TCP connection from `from` if given.
async fn handshake(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    from: Option<std::net::IpAddr>,
) -> anyhow::Result<(WsStream, tokio_tungstenite::tungstenite::handshake::client::Response)> {
    let Some(from) = from else { return Ok(tokio_tungstenite::connect_async(request).await?) };
    let uri = request.uri();
    let host = uri.host().context("no host")?.trim_start_matches('[').trim_end_matches(']');
    let to = std::net::SocketAddr::new(host.parse()?, uri.port_u16().unwrap_or(80));
    let tcp = if from.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    tcp.bind(std::net::SocketAddr::new(from, 0))?;
    let stream = tcp.connect(to).await?;
    stream.set_nodelay(true)?;
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    Ok(tokio_tungstenite::client_async(request, stream).await?)
}

/// The frame that sends `content` to the socket's room (`id`: of the GraphQL operation).
fn send_frame(via: Via, room: &str, content: &str, id: &str) -> Message {
    let frame = match via {
        Via::Legacy => json!({"message": content}),
        Via::Graphql => json!({"id": id, "type": "subscribe", "payload": {
            "query": "mutation($room: String!, $content: String!) { sendMessage(roomName: $room, content: $content) { id } }",
            "variables": {"room": room, "content": content},
        }}),
    };
    Message::text(frame.to_string())
}

/// What a received frame means for the run: the index of a message of the run, an error, or
/// nothing of interest (warm-up messages, acknowledgements of sends, pings).
enum Frame {
    /// Message `index` of the run, stored by the server as `id`.
    Message {
        index: u64,
        id: u64,
    },
    Warm,
    Error,
    Other,
}

fn classify(via: Via, text: &str, tag: &str) -> Frame {
    let Ok(value) = serde_json::from_str::<Value>(text) else { return Frame::Error };
    let message = match via {
        Via::Legacy => {
            if value.get("error").is_some() {
                return Frame::Error;
            }
            &value
        }
        Via::Graphql => match (value["type"].as_str(), value["id"].as_str()) {
            (Some("next"), Some("feed")) => &value["payload"]["data"]["messageAdded"],
            (Some("next"), _) if value["payload"].get("errors").is_some() => return Frame::Error,
            (Some("error"), _) => return Frame::Error,
            _ => return Frame::Other,
        },
    };
    let Some(content) = message["content"].as_str() else { return Frame::Other };
    // The legacy frame's id is a number, GraphQL's ID a string of one.
    let id = message["id"].as_u64().or_else(|| message["id"].as_str()?.parse().ok());
    match (content.strip_prefix(tag), id) {
        (Some("warm"), _) => Frame::Warm,
        (Some(rest), Some(id)) => rest.parse().map_or(Frame::Other, |index| Frame::Message { index, id }),
        _ => Frame::Other,
    }
}

/// What the readers of one run share.
#[derive(Clone)]
struct Shared {
    /// Prefix of the contents of this run's messages.
    tag: Arc<str>,
    schedule: Arc<std::sync::OnceLock<Schedule>>,
    /// Distinct messages of the run received, over all sockets.
    delivered: Arc<AtomicU64>,
    done: CancellationToken,
}

/// Opens a socket whose reader tallies the messages of the run; `warm` is set when it has seen
/// a warm-up message of its room.
async fn open(
    base: &str,
    via: Via,
    room: &str,
    token: &str,
    shared: Shared,
    warm: Arc<AtomicBool>,
) -> anyhow::Result<Socket> {
    let Shared { tag, schedule, delivered, done } = shared;
    let socket = connect(base, via, room, token).await?;
    let (mut sink, mut frames) = socket.split();
    let (outbox, mut outgoing) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if sink.send(frame).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let pong = outbox.clone();
    let reader = tokio::spawn(async move {
        let mut tally = Tally::default();
        let mut seen = HashSet::new();
        let mut last = None;
        loop {
            let frame = tokio::select! {
                frame = frames.next() => frame,
                () = done.cancelled() => break,
            };
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    tally.dropped = !done.is_cancelled();
                    break;
                }
                Some(Ok(_)) => continue,
            };
            let arrived = Instant::now();
            match classify(via, &text, &tag) {
                Frame::Message { index: i, id } => {
                    if !seen.insert(i) {
                        tally.duplicates += 1;
                        continue;
                    }
                    // The promise is the order the server stored them in (its ids): sends
                    // that overlap may be stored in another order than they were sent.
                    if last.is_some_and(|l| id < l) {
                        tally.reordered += 1;
                    }
                    last = Some(last.map_or(id, |l: u64| l.max(id)));
                    tally.received += 1;
                    delivered.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = schedule.get() {
                        tally.latencies_ms.push(arrived.saturating_duration_since(s.due(i)).as_secs_f64() * 1e3);
                    }
                }
                Frame::Warm => warm.store(true, Ordering::Relaxed),
                Frame::Error => tally.errors += 1,
                Frame::Other => {
                    if via == Via::Graphql && text.contains(r#""type":"ping""#) {
                        let _ = pong.send(Message::text(r#"{"type":"pong"}"#));
                    }
                }
            }
        }
        tally
    });
    Ok(Socket { outbox, reader })
}

/// The mutation the graphql variant sends.
const SEND_MUTATION: &str =
    "mutation($room: String!, $content: String!) { sendMessage(roomName: $room, content: $content) { id } }";

/// Sends over HTTP `POST /graphql`: one client (a pool of keep-alive connections per process),
/// at most `in_flight` requests at once; a failed send counts in `errors`.
#[derive(Clone)]
struct HttpSender {
    client: reqwest::Client,
    permits: Arc<tokio::sync::Semaphore>,
    errors: Arc<AtomicU64>,
}

impl HttpSender {
    fn new(in_flight: usize) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().pool_max_idle_per_host(in_flight).build()?;
        let permits = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
        Ok(HttpSender { client, permits, errors: Arc::default() })
    }

    /// Sends without waiting for the answer (open loop).
    fn send(&self, base: &str, token: &str, room: &str, content: String) {
        let this = self.clone();
        let request = self
            .client
            .post(format!("{base}/graphql"))
            .bearer_auth(token)
            .json(&json!({"query": SEND_MUTATION, "variables": {"room": room, "content": content}}));
        tokio::spawn(async move {
            let Ok(_permit) = this.permits.acquire().await else { return };
            let ok = match request.send().await {
                Ok(answer) if answer.status().is_success() => {
                    answer.json::<Value>().await.is_ok_and(|body| body.get("errors").is_none())
                }
                _ => false,
            };
            if !ok {
                this.errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// One open-loop run at `rate` messages per second. With several `bases`, the members of room
/// `r` connect to processes `r` and `r + 1` (mod their number), and a send goes to its sender's.
async fn fan_out(
    bases: &[String],
    pids: &[u32],
    via: Via,
    rooms: &[Room],
    rate: u64,
    args: &ChatArgs,
) -> anyhow::Result<Scenario> {
    let tag: Arc<str> = format!("{}-{}-{rate}:", via.name(), std::process::id()).into();
    let shared = Shared {
        tag: tag.clone(),
        schedule: Arc::new(std::sync::OnceLock::new()),
        delivered: Arc::new(AtomicU64::new(0)),
        done: CancellationToken::new(),
    };
    let base_of = |r: usize, m: usize| bases[(r + m) % bases.len()].as_str();
    // The servers' peak from the sockets' opening to the end of the drain: the chat itself,
    // without the history read that counts what was stored.
    let chatting = procfs::PeakRss::start(pids.to_vec());
    // sockets[2r + m] is member m's socket to room r; warm[2r + m] says it is live.
    let warm: Vec<Arc<AtomicBool>> = (0..rooms.len() * 2).map(|_| Arc::default()).collect();
    let sockets: Vec<Socket> = stream::iter(0..rooms.len() * 2)
        .map(|k| {
            let (r, m) = (k / 2, k % 2);
            open(base_of(r, m), via, &rooms[r].name, &rooms[r].members[m], shared.clone(), warm[k].clone())
        })
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let over_http = via == Via::Graphql && args.send_over == SendOver::Http;
    let http = HttpSender::new(args.in_flight)?;
    let send = |r: usize, m: usize, content: String, id: &str| {
        if over_http {
            http.send(base_of(r, m), &rooms[r].members[m], &rooms[r].name, content);
        } else {
            let _ = sockets[2 * r + m].outbox.send(send_frame(via, &rooms[r].name, &content, id));
        }
    };
    // Warm-up: a message per room until both of its sockets have seen one (the feeds are live
    // then; graphql-transport-ws does not acknowledge a subscription), sent again every 2 s.
    let warm_up_since = Instant::now();
    for attempt in 0.. {
        let cold: Vec<usize> = (0..rooms.len())
            .filter(|r| !(warm[2 * r].load(Ordering::Relaxed) && warm[2 * r + 1].load(Ordering::Relaxed)))
            .collect();
        if cold.is_empty() {
            break;
        }
        anyhow::ensure!(warm_up_since.elapsed() < Duration::from_secs(60), "the warm-up messages did not arrive");
        for r in cold {
            send(r, 0, format!("{tag}warm"), &format!("warm{attempt}"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let warm_up_errors = http.errors.swap(0, Ordering::Relaxed);
    if warm_up_errors > 0 {
        eprintln!("{warm_up_errors} warm-up sends failed (sent again)");
    }

    let total = rate * args.seconds;
    let cpu_before = procfs::cpu(pids);
    let start = Instant::now() + Duration::from_millis(50);
    let _ = shared.schedule.set(Schedule { start, rate });
    let mut i = 0;
    while i < total {
        let now = Instant::now();
        let due = if now < start { 0 } else { (((now - start).as_secs_f64() * rate as f64) as u64 + 1).min(total) };
        while i < due {
            let r = (i % rooms.len() as u64) as usize;
            let member = ((i / rooms.len() as u64) % 2) as usize;
            send(r, member, format!("{tag}{i}"), &format!("m{i}"));
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let sent_in = start.elapsed();
    // Late deliveries: until every socket has every message or the drain time is over.
    let expected = total * 2;
    let drain_until = Instant::now() + Duration::from_secs(args.drain);
    while shared.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = procfs::cpu(pids).saturating_sub(cpu_before);
    let chat_peak_kib = chatting.finish().await;
    shared.done.cancel();
    let mut tallies = Vec::with_capacity(sockets.len());
    for socket in sockets {
        drop(socket.outbox);
        tallies.push(socket.reader.await.unwrap_or_default());
    }
    let stored = stored(&bases[0], rooms, &tag).await?;

    let received: u64 = tallies.iter().map(|t| t.received).sum();
    let mut latencies: Vec<f64> = tallies.iter().flat_map(|t| t.latencies_ms.iter().copied()).collect();
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        // Nothing delivered: an infinite latency (written as null).
        if latencies.is_empty() {
            f64::INFINITY
        } else {
            latencies[((latencies.len() - 1) as f64 * q).round() as usize]
        }
    };
    let send_errors = http.errors.load(Ordering::Relaxed);
    let mut extra = serde_json::Map::new();
    extra.insert("rate".into(), json!(rate));
    extra.insert("rooms".into(), json!(rooms.len()));
    extra.insert("processes".into(), json!(bases.len()));
    if via == Via::Graphql {
        extra.insert("send_over".into(), json!(if over_http { "http" } else { "socket" }));
    }
    extra.insert("delivered_pct".into(), json!(100.0 * received as f64 / expected as f64));
    extra.insert("stored_pct".into(), json!(100.0 * stored as f64 / total as f64));
    extra.insert("lost".into(), json!(expected.saturating_sub(received)));
    extra.insert("duplicates".into(), json!(tallies.iter().map(|t| t.duplicates).sum::<u64>()));
    extra.insert("reordered".into(), json!(tallies.iter().map(|t| t.reordered).sum::<u64>()));
    extra.insert("dropped_sockets".into(), json!(tallies.iter().filter(|t| t.dropped).count()));
    extra.insert("send_errors".into(), json!(send_errors));
    extra.insert("peak_rss_chatting_kib".into(), json!(chat_peak_kib));
    // The 20-room, one-process runs keep their names (the table pairs runs by name).
    let mut name = format!("chat-{}-{rate}", via.name());
    if rooms.len() != 20 {
        name += &format!("-{}rooms", rooms.len());
    }
    if bases.len() > 1 {
        name += &format!("-{}proc", bases.len());
    }
    Ok(Scenario {
        name,
        clients: tallies.len(),
        requests: total,
        errors: tallies.iter().map(|t| t.errors).sum::<u64>() + send_errors,
        rps: total as f64 / sent_in.as_secs_f64(),
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        cpu_ms_per_request: Some(cpu.as_secs_f64() * 1e3 / total as f64),
        side: None,
        extra,
    })
}

/// Messages of the run that the rooms' histories hold (the legacy REST history, oldest first).
async fn stored(base: &str, rooms: &[Room], tag: &str) -> anyhow::Result<u64> {
    let http = reqwest::Client::new();
    let counts = stream::iter(rooms)
        .map(|room| {
            let request = http
                .get(format!("{base}/messenger/api/chatrooms/{}/messages/", room.name))
                .bearer_auth(&room.members[0]);
            async move {
                let history: Vec<Value> = request.send().await?.error_for_status()?.json().await?;
                let ours = history
                    .iter()
                    .filter(|m| m["content"].as_str().and_then(|c| c.strip_prefix(tag)).is_some_and(|c| c != "warm"));
                anyhow::Ok(ours.count() as u64)
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    counts.into_iter().sum()
}

/// `n` idle sockets: handshakes per second and resident memory per socket. A GraphQL socket
/// counts as open once a `ping` sent after its `subscribe` is answered (the server reads a
/// socket's messages in order, so it has started the subscription by then).
///
/// Tens of thousands of sockets need as many descriptors here and in the server (see
/// [`raise_open_files`]; `tools/bench/compare.sh` raises the limit for both) and more local
/// ports than one address has: to a loopback server they come from several 127.0.0.x.
async fn idle(base: &str, pids: &[u32], via: Via, rooms: &[Room], n: usize) -> anyhow::Result<Scenario> {
    raise_open_files(n + 1024);
    let sources = loopback_sources(base);
    // The baseline once the seeding's memory has settled: tokio's blocking threads that ran its
    // sign-ins (each holding an Argon2 block) idle out after 10 s, and their exit during the
    // run would be counted against the sockets. A later kind keeps the first kind's baseline
    // (or a lower one): the allocator keeps what the first kind's sockets freed and the next
    // kind's sockets reuse it, so the resident size at that moment would hide their cost.
    static BASELINE_KIB: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let now_kib = procfs::rss_kib(pids);
    let idle_kib = now_kib.min(*BASELINE_KIB.get_or_init(|| now_kib));
    let started = Instant::now();
    let sockets: Vec<WsStream> = stream::iter(0..n)
        .map(|k| {
            let room = &rooms[k % rooms.len()];
            let from = sources.get(k % sources.len().max(1)).copied();
            async move {
                let mut socket = connect_from(base, via, &room.name, &room.members[k / rooms.len() % 2], from).await?;
                if via == Via::Graphql {
                    settled(&mut socket).await?;
                }
                anyhow::Ok(socket)
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let handshakes = n as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_kib = procfs::rss_kib(pids);
    drop(sockets);
    let mut extra = serde_json::Map::new();
    let per_socket = held_kib.saturating_sub(idle_kib) as f64 / n as f64;
    extra.insert("kib_per_socket".into(), json!(per_socket));
    extra.insert("rss_with_sockets_kib".into(), json!(held_kib));
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(Scenario {
        name: format!("idle-{}", via.name()),
        clients: n,
        requests: n as u64,
        errors: 0,
        rps: handshakes,
        p50_ms: 0.0,
        p99_ms: 0.0,
        cpu_ms_per_request: None,
        side: None,
        extra,
    })
}

/// graphql-transport-ws: a `ping`, and its `pong` (whatever came before it is dropped).
async fn settled(socket: &mut WsStream) -> anyhow::Result<()> {
    socket.send(Message::text(r#"{"type":"ping"}"#)).await?;
    loop {
        let frame = socket.next().await.context("closed before pong")??;
        if let Message::Text(text) = frame {
            if text.contains(r#""type":"pong""#) {
                return Ok(());
            }
            if text.contains(r#""type":"error""#) {
                bail!("the subscription failed: {text}");
            }
        }
    }
}

/// Local addresses to spread connections to a loopback server over (each has its own range of
/// ephemeral ports; Linux answers every 127.0.0.0/8 address on `lo`); none for another server.
fn loopback_sources(base: &str) -> Vec<std::net::IpAddr> {
    let host = reqwest::Url::parse(base).ok().and_then(|url| url.host_str().map(str::to_owned));
    match host.and_then(|h| h.parse::<std::net::Ipv4Addr>().ok()) {
        Some(ip) if ip.is_loopback() => (1..=8).map(|last| std::net::Ipv4Addr::new(127, 0, 0, last).into()).collect(),
        _ => Vec::new(),
    }
}

/// Raises this process's limit of open descriptors to `want` if it can (the hard limit, or
/// above it as root); says so when it cannot.
fn raise_open_files(want: usize) {
    let want = want as libc::rlim_t;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct passed, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= want {
            return;
        }
        let raised = libc::rlimit { rlim_cur: want, rlim_max: limit.rlim_max.max(want) };
        let capped = libc::rlimit { rlim_cur: want.min(limit.rlim_max), rlim_max: limit.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            libc::setrlimit(libc::RLIMIT_NOFILE, &capped);
            eprintln!("open files limited to {} here (wanted {want}): raise `ulimit -n`", capped.rlim_cur);
        }
    }
}
