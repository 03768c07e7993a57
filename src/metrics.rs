//! Prometheus metrics of the process, served at `/metrics` (OpenMetrics text).
//!
//! Every instrumentation point in the code base is a one-line call into this module
//! ([`chat_message_stored`], [`feed_lagged`], `let _open = websocket_opened("graphql")`, …), so
//! the rest of the code never touches the Prometheus types. The registry is process-wide, as
//! Prometheus scrapes processes; gauges of state owned elsewhere (the database pool, the bus
//! connection) and the process's own resources are read when scraped ([`scrape`]).
//!
//! Label values are bounded: routes are templates (`/profiles/api/users/{id}/`), methods
//! outside the standard set are `other`, and the GraphQL operation names that clients choose
//! are sanitised and capped at [`MAX_OPERATION_NAMES`] distinct names (then `other`).

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sea_orm::{DatabaseConnection, DbBackend};

/// Distinct GraphQL operation names kept as label values; later new names count as `other`.
pub const MAX_OPERATION_NAMES: usize = 200;
/// Longest operation name kept as a label value (longer ones are cut).
const MAX_NAME_LEN: usize = 64;

/// The content type of [`scrape`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    r#type: &'static str,
    name: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationKind {
    r#type: &'static str,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhatLabels {
    what: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    graphql_operations: Family<OperationLabels, Counter>,
    graphql_duration: Histograms<OperationKind>,
    websockets: Family<KindLabels, Gauge>,
    subscriptions: Family<KindLabels, Gauge>,
    messages_stored: Counter,
    deliveries: Counter,
    delivery_lag: Histogram,
    feed_lagged: Counter,
    gap_fills: Counter,
    bus_publish_failures: Counter,
    bus_connected: Gauge,
    db_pool: Family<StateLabels, Gauge>,
    db_statement: Histogram,
    hashes_in_flight: Gauge,
    throttled: Family<WhatLabels, Counter>,
    resident_memory: Gauge,
    cpu_seconds: FloatGauge,
    open_fds: Gauge,
    operation_names: Mutex<HashSet<String>>,
}

/// Latency buckets (seconds) from 1 ms to 10 s.
fn latency() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

/// Database statement buckets (seconds) from 0.1 ms to 1 s.
fn statement() -> Histogram {
    Histogram::new([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0])
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let m = Metrics {
        http_requests: Family::default(),
        http_duration: Family::new_with_constructor(latency),
        graphql_operations: Family::default(),
        graphql_duration: Family::new_with_constructor(latency),
        websockets: Family::default(),
        subscriptions: Family::default(),
        messages_stored: Counter::default(),
        deliveries: Counter::default(),
        delivery_lag: latency(),
        feed_lagged: Counter::default(),
        gap_fills: Counter::default(),
        bus_publish_failures: Counter::default(),
        bus_connected: Gauge::default(),
        db_pool: Family::default(),
        db_statement: statement(),
        hashes_in_flight: Gauge::default(),
        throttled: Family::default(),
        resident_memory: Gauge::default(),
        cpu_seconds: FloatGauge::default(),
        open_fds: Gauge::default(),
        operation_names: Mutex::default(),
        registry: Registry::default(),
    };
    let r = &mut registry;
    r.register("http_server_requests", "HTTP requests answered", m.http_requests.clone());
    r.register("http_server_request_duration_seconds", "Time to answer an HTTP request", m.http_duration.clone());
    r.register("graphql_operations", "GraphQL operations executed (HTTP and WebSocket)", m.graphql_operations.clone());
    r.register("graphql_operation_duration_seconds", "Time to execute a GraphQL operation", m.graphql_duration.clone());
    r.register("agora_websocket_connections", "Open WebSocket connections", m.websockets.clone());
    r.register("agora_subscriptions", "Running subscriptions (live feeds)", m.subscriptions.clone());
    r.register("agora_chat_messages_stored", "Chat messages stored", m.messages_stored.clone());
    r.register("agora_chat_deliveries", "Chat messages handed to a subscriber", m.deliveries.clone());
    r.register(
        "agora_chat_delivery_lag_seconds",
        "From a message's commit to its hand-over to a subscriber's socket",
        m.delivery_lag.clone(),
    );
    r.register("agora_feed_lagged", "Live feeds ended because they fell behind the bus", m.feed_lagged.clone());
    r.register("agora_feed_gap_fills", "Gaps in a live feed filled from the database", m.gap_fills.clone());
    r.register("agora_bus_publish_failures", "Chat events the bus failed to publish", m.bus_publish_failures.clone());
    r.register("agora_bus_connected", "1 when the bus backend answers (always 1 in-process)", m.bus_connected.clone());
    r.register("agora_db_pool_connections", "Database pool connections by state", m.db_pool.clone());
    r.register("agora_db_statement_duration_seconds", "Time of a database statement", m.db_statement.clone());
    r.register("agora_password_hashes_in_flight", "Argon2 hashes running or waiting", m.hashes_in_flight.clone());
    r.register("agora_throttled", "Requests refused by a rate or connection limit", m.throttled.clone());
    r.register("process_resident_memory_bytes", "Resident memory size", m.resident_memory.clone());
    r.register("process_cpu_seconds_total", "User and system CPU time spent", m.cpu_seconds.clone());
    r.register("process_open_fds", "Open file descriptors", m.open_fds.clone());
    Metrics { registry, ..m }
});

/// Holds a gauge up by one while it lives (an open socket, a running subscription, a hash).
#[must_use = "the gauge goes down again when this guard is dropped"]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn hold(gauge: Gauge) -> InFlight {
    gauge.inc();
    InFlight(gauge)
}

/// A standard method's name, or `other` (clients can send any token as a method).
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|known| *known == method).unwrap_or("other")
}

/// One answered HTTP request; `route` is the route template (never the raw path).
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let method = method_label(method);
    let m = &*METRICS;
    m.http_requests.get_or_create(&HttpLabels { method, route: route.to_owned(), status }).inc();
    m.http_duration.get_or_create(&RouteLabels { method, route: route.to_owned() }).observe(elapsed.as_secs_f64());
}

/// A GraphQL operation name as a label value: letters, digits and `_` only (what GraphQL
/// names consist of), at most [`MAX_NAME_LEN`] characters, `anonymous` when absent, and
/// `other` once [`MAX_OPERATION_NAMES`] distinct names have been seen.
pub fn operation_label(name: Option<&str>) -> String {
    let Some(name) = name.filter(|n| !n.is_empty()) else { return "anonymous".into() };
    let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(MAX_NAME_LEN).collect();
    if clean.is_empty() {
        return "other".into();
    }
    let mut seen = METRICS.operation_names.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if seen.contains(&clean) || seen.len() < MAX_OPERATION_NAMES && seen.insert(clean.clone()) {
        clean
    } else {
        "other".into()
    }
}

/// One finished GraphQL operation (`kind`: query, mutation, subscription, or unknown when it
/// did not parse; `name` from [`operation_label`]), timed unless `elapsed` is `None`.
pub fn graphql_operation(kind: &'static str, name: &str, ok: bool, elapsed: Option<Duration>) {
    let m = &*METRICS;
    let outcome = if ok { "ok" } else { "error" };
    m.graphql_operations.get_or_create(&OperationLabels { r#type: kind, name: name.to_owned(), outcome }).inc();
    if let Some(elapsed) = elapsed {
        let labels = OperationKind { r#type: kind, name: name.to_owned() };
        m.graphql_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }
}

/// An open WebSocket of `kind` (`graphql`, `legacy`), counted while the guard lives.
pub fn websocket_opened(kind: &'static str) -> InFlight {
    hold(METRICS.websockets.get_or_create(&KindLabels { kind }).clone())
}

/// A running subscription of `kind` (`graphql`, `legacy`), counted while the guard lives.
pub fn subscription_started(kind: &'static str) -> InFlight {
    hold(METRICS.subscriptions.get_or_create(&KindLabels { kind }).clone())
}

/// A chat message was stored (its transaction committed).
pub fn chat_message_stored() {
    METRICS.messages_stored.inc();
}

/// A chat message committed at `committed` is handed to a subscriber's socket now.
pub fn chat_delivered(committed: chrono::DateTime<chrono::Utc>) {
    let lag = (chrono::Utc::now() - committed).num_microseconds().unwrap_or(i64::MAX).max(0);
    METRICS.deliveries.inc();
    METRICS.delivery_lag.observe(lag as f64 / 1e6);
}

/// A live feed fell too far behind the bus and ended.
pub fn feed_lagged() {
    METRICS.feed_lagged.inc();
}

/// A live feed noticed a gap and fills it from the database.
pub fn feed_gap_filled() {
    METRICS.gap_fills.inc();
}

/// The bus could not publish an event (other processes miss it live).
pub fn bus_publish_failed() {
    METRICS.bus_publish_failures.inc();
}

/// One database statement took `elapsed`.
pub fn db_statement(elapsed: Duration) {
    METRICS.db_statement.observe(elapsed.as_secs_f64());
}

/// A password hash waiting for or holding a hashing slot, counted while the guard lives.
pub fn password_hash() -> InFlight {
    hold(METRICS.hashes_in_flight.clone())
}

/// A request refused by a limit (`what`: `auth` for sign-in/registration, `websocket`).
pub fn throttled(what: &'static str) {
    METRICS.throttled.get_or_create(&WhatLabels { what }).inc();
}

/// Everything, as OpenMetrics text: reads the pool, the bus and the process first.
pub async fn scrape(db: &DatabaseConnection, bus_connected: bool) -> String {
    let m = &*METRICS;
    let (size, idle, max) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        }
        _ => (0, 0, 0),
    };
    m.db_pool.get_or_create(&StateLabels { state: "idle" }).set(idle as i64);
    m.db_pool.get_or_create(&StateLabels { state: "in_use" }).set(i64::from(size).saturating_sub(idle as i64));
    m.db_pool.get_or_create(&StateLabels { state: "max" }).set(i64::from(max));
    m.bus_connected.set(i64::from(bus_connected));
    read_process(m);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &m.registry).expect("writing to a String cannot fail");
    text
}

/// Resident memory, CPU time and open descriptors from `/proc/self` (Linux; elsewhere they
/// stay 0).
fn read_process(m: &Metrics) {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(kb) = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
    {
        m.resident_memory.set(kb * 1024);
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some((_, after_name)) = stat.rsplit_once(')')
    {
        // Fields after the name start at field 3 (state); utime and stime are fields 14 and 15.
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        m.cpu_seconds.set((ticks(14) + ticks(15)) / clock_ticks_per_second());
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        m.open_fds.set(entries.count() as i64);
    }
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux that Agora targets (the kernel's USER_HZ).
fn clock_ticks_per_second() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_sanitised_and_capped() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("")), "anonymous");
        assert_eq!(operation_label(Some("Feed")), "Feed");
        assert_eq!(operation_label(Some("a\"b}c\n")), "abc");
        assert_eq!(operation_label(Some("!!!")), "other");
        assert_eq!(operation_label(Some(&"x".repeat(500))).len(), MAX_NAME_LEN);
        for i in 0..MAX_OPERATION_NAMES {
            operation_label(Some(&format!("cap_test_{i}")));
        }
        assert_eq!(operation_label(Some("never_seen_before_the_cap")), "other");
        assert_eq!(operation_label(Some("Feed")), "Feed", "names seen before the cap stay");
    }

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
    }
}
