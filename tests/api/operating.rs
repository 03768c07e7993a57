//! Operating Agora: `/metrics`, request ids, logs (JSON, access lines, filters, no secrets),
//! OTLP trace export, and the `agora users` / `healthcheck` / `serve --no-migrate` commands.
//! The metrics and logs tests run the real binary, so each has a process of its own to measure.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::helpers::{GqlWs, PASSWORD, WsProtocol, spawn_app, unique};
use crate::legacy_ws::LegacyWs;
use crate::processes::{AgoraProcess, agora_command};

const REGISTER: &str = "mutation Join($u: String!, $e: String!, $p: String!) { register(input: {username: $u, email: $e, password: $p}) { id } }";
const SIGN_IN: &str = "mutation($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { access refresh } }";

/// The value of one series in a scrape (0 when absent): `name` exactly, with at least `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name && labels.iter().all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().expect("a number"))
        .sum()
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.expect("scrape");
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn register(server: &AgoraProcess, username: &str) {
    let email = format!("{username}@example.com");
    server.gql_ok(None, REGISTER, json!({"u": username, "e": email, "p": PASSWORD})).await;
}

/// The access token of a user, or the GraphQL errors of the sign-in.
async fn sign_in(server: &AgoraProcess, username: &str, password: &str) -> Result<String, Value> {
    let body: Value = reqwest::Client::new()
        .post(server.url("/graphql"))
        .json(&json!({"query": SIGN_IN, "variables": {"u": username, "p": password}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    match body["data"]["tokenAuth"]["access"].as_str() {
        Some(access) => Ok(access.to_owned()),
        None => Err(body),
    }
}

/// A POST of a GraphQL document with an operation name.
async fn post_operation(server: &AgoraProcess, query: &str, name: &str) {
    let body = json!({"query": query, "operationName": name});
    reqwest::Client::new().post(server.url("/graphql")).json(&body).send().await.unwrap();
}

/// Scrapes until `check` holds (gauges follow sockets closing in the background).
async fn scrape_until(url: &str, check: impl Fn(&str) -> bool) -> String {
    for _ in 0..200 {
        let text = scrape(url).await;
        if check(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the metrics never reached the expected state: {}", scrape(url).await);
}

#[tokio::test]
async fn metrics_count_a_workload_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = agora_command(dir.path());
    command
        .env("AGORA_METRICS_BIND", "127.0.0.1:0")
        .env("AGORA_DB_POOL", "3")
        .env("AGORA_AUTH_RATE_PER_MINUTE", "4")
        .arg("serve");
    let server = AgoraProcess::spawn(command).await;
    let metrics = format!("http://{}/metrics", server.metrics_addr().await);
    let (alice, bob) = (unique("alice"), unique("bob"));
    register(&server, &alice).await;
    register(&server, &bob).await;
    let alice_token = sign_in(&server, &alice, PASSWORD).await.unwrap();
    let bob_token = sign_in(&server, &bob, PASSWORD).await.unwrap();
    let room = server
        .gql_ok(
            Some(&alice_token),
            "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }",
            json!({"r": bob}),
        )
        .await["createChatRoom"]["chatRoom"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = scrape(&metrics).await;

    for _ in 0..3 {
        reqwest::get(server.url("/healthz")).await.unwrap();
    }
    let unknown = reqwest::get(server.url("/no/such/thing/4242")).await.unwrap();
    assert_eq!(unknown.status(), 404);
    post_operation(&server, "query Probe { __typename }", "Probe").await;
    post_operation(&server, "query Probe { __typename }", "Probe").await;
    post_operation(&server, "query Broken {", "Broken").await;
    // Two registrations and two failed sign-ins use the address's budget of four (successful
    // sign-ins cost nothing): the next attempt is refused.
    for _ in 0..2 {
        assert!(sign_in(&server, &alice, "not the password").await.is_err());
    }
    assert!(sign_in(&server, &alice, PASSWORD).await.is_err());

    // Bob follows the room from its first message (no race with the sends), Alice sends two.
    let from_start = agora::graphql::cursor::Cursor::of(agora::graphql::cursor::MessageKey(0));
    let mut ws = GqlWs::connect_url(&server.ws_url("/graphql/ws"), WsProtocol::TransportWs, &bob_token).await;
    ws.subscribe(
        "subscription Live($room: String!, $after: String) { messageAdded(roomName: $room, after: $after) { content } }",
        json!({"room": room, "after": from_start}),
    )
    .await;
    for content in ["one", "two"] {
        server
            .gql_ok(
                Some(&alice_token),
                "mutation Send($room: String!, $c: String!) { sendMessage(roomName: $room, content: $c) { id } }",
                json!({"room": room, "c": content}),
            )
            .await;
    }
    for content in ["one", "two"] {
        assert_eq!(ws.next_payload().await["data"]["messageAdded"]["content"], content);
    }
    let during = scrape(&metrics).await;
    assert_eq!(sample(&during, "agora_websocket_connections", &[("kind", "graphql")]), 1.0);
    assert_eq!(sample(&during, "agora_subscriptions", &[("kind", "graphql")]), 1.0);
    ws.close().await;
    // The legacy chat socket: its own kind of socket and subscription.
    let path = crate::legacy_ws::chat_path(&room);
    let legacy = LegacyWs::connect_url(&server.ws_url(&format!("{path}?token={bob_token}"))).await;
    let legacy_open = |text: &str, open: f64| {
        sample(text, "agora_websocket_connections", &[("kind", "legacy")]) == open
            && sample(text, "agora_subscriptions", &[("kind", "legacy")]) == open
    };
    scrape_until(&metrics, |text| legacy_open(text, 1.0)).await;
    legacy.close().await;
    let after = scrape_until(&metrics, |text| {
        sample(text, "agora_websocket_connections", &[("kind", "graphql")]) == 0.0
            && sample(text, "graphql_operations_total", &[("type", "subscription"), ("name", "Live")]) == 1.0
            && legacy_open(text, 0.0)
    })
    .await;

    let delta = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels) - sample(&before, name, labels);
    let healthz = [("method", "GET"), ("route", "/healthz")];
    assert_eq!(delta("http_server_requests_total", &[healthz[0], healthz[1], ("status", "200")]), 3.0);
    assert_eq!(delta("http_server_request_duration_seconds_count", &healthz), 3.0);
    assert_eq!(
        delta("http_server_requests_total", &[("method", "GET"), ("route", "unmatched"), ("status", "404")]),
        1.0
    );
    assert!(!after.contains("/no/such/thing"), "raw paths never become labels");
    let ok_probe = [("type", "query"), ("name", "Probe"), ("outcome", "ok")];
    assert_eq!(delta("graphql_operations_total", &ok_probe), 2.0);
    assert_eq!(delta("graphql_operation_duration_seconds_count", &[("type", "query"), ("name", "Probe")]), 2.0);
    assert_eq!(
        delta("graphql_operations_total", &[("type", "unknown"), ("name", "Broken"), ("outcome", "error")]),
        1.0
    );
    assert_eq!(delta("graphql_operations_total", &[("type", "mutation"), ("name", "Send"), ("outcome", "ok")]), 2.0);
    assert_eq!(
        delta("graphql_operations_total", &[("type", "subscription"), ("name", "Live"), ("outcome", "ok")]),
        1.0
    );
    assert_eq!(delta("agora_throttled_total", &[("what", "auth")]), 1.0);
    assert_eq!(delta("agora_chat_messages_stored_total", &[]), 2.0);
    assert_eq!(delta("agora_chat_deliveries_total", &[]), 2.0);
    assert_eq!(delta("agora_chat_delivery_lag_seconds_count", &[]), 2.0);
    assert!(delta("agora_db_statement_duration_seconds_count", &[]) > 0.0);
    assert_eq!(sample(&after, "agora_subscriptions", &[("kind", "graphql")]), 0.0);
    assert_eq!(sample(&after, "agora_db_pool_connections", &[("state", "max")]), 3.0);
    assert_eq!(sample(&after, "agora_bus_connected", &[]), 1.0);
    assert_eq!(sample(&after, "agora_password_hashes_in_flight", &[]), 0.0);
    assert!(sample(&after, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(sample(&after, "process_open_fds", &[]) > 3.0);
    assert!(sample(&after, "process_cpu_seconds_total", &[]) > 0.0);
    for name in ["agora_feed_lagged", "agora_feed_gap_fills", "agora_bus_publish_failures"] {
        assert!(after.contains(&format!("# TYPE {name} counter")), "{name} is exposed");
    }
    // With its own address, /metrics is not on the main listener.
    assert_eq!(reqwest::get(server.url("/metrics")).await.unwrap().status(), 404);
}

#[tokio::test]
async fn metrics_are_on_the_main_listener_by_default() {
    let app = spawn_app().await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    assert!(sample(&text, "http_server_requests_total", &[("route", "/healthz"), ("status", "200")]) >= 1.0);
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_returned() {
    let app = spawn_app().await;
    let kept = app.client.get(app.url("/healthz")).header("x-request-id", "caller-id-7").send().await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "caller-id-7");
    let made = app.client.post(app.url("/graphql")).json(&json!({"query": "{ __typename }"})).send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let other = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id, "one per request");
}

/// Waits until a log line satisfies `found`.
async fn wait_for_log(server: &AgoraProcess, found: impl Fn(&str) -> bool) -> String {
    for _ in 0..400 {
        if let Some(line) = server.logs.lock().unwrap().iter().find(|line| found(line)) {
            return line.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no such log line in {:#?}", server.logs.lock().unwrap());
}

#[tokio::test]
async fn json_logs_have_access_lines_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "file-held-signing-key-9f8e7d6c";
    std::fs::write(dir.path().join("key"), format!("{secret}\n")).unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("db.sqlite3").display());
    std::fs::write(dir.path().join("db_url"), &database).unwrap();
    let mut command = agora_command(dir.path());
    command
        .env_remove("AGORA_SECRET_KEY")
        .env("AGORA_SECRET_KEY_FILE", dir.path().join("key"))
        .env("DATABASE_URL_FILE", dir.path().join("db_url"))
        .env("AGORA_LOG_FORMAT", "json")
        .env("AGORA_LOG", "debug")
        .arg("serve");
    let server = AgoraProcess::spawn(command).await;
    let username = unique("dana");
    let password = "Unguessable-Pa55phrase-42";
    let email = format!("{username}@example.com");
    server.gql_ok(None, REGISTER, json!({"u": username, "e": email, "p": password})).await;
    let body: Value = reqwest::Client::new()
        .post(server.url("/graphql"))
        .json(&json!({"query": SIGN_IN, "variables": {"u": username, "p": password}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = body["data"]["tokenAuth"]["access"].as_str().unwrap().to_owned();
    let refresh = body["data"]["tokenAuth"]["refresh"].as_str().unwrap().to_owned();
    // The key of the file signs the tokens.
    let claims = jsonwebtoken::decode::<Value>(
        &access,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    );
    assert!(claims.is_ok(), "{claims:?}");
    server.gql_ok(Some(&access), "{ me { username } }", json!({})).await;
    let response =
        reqwest::Client::new().get(server.url("/healthz")).header("x-request-id", "find-me-123").send().await.unwrap();
    assert_eq!(response.status(), 200);

    let line = wait_for_log(&server, |line| line.contains("find-me-123") && line.contains("agora::access")).await;
    let access_line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(access_line["method"], "GET");
    assert_eq!(access_line["route"], "/healthz");
    assert_eq!(access_line["status"], 200);
    assert_eq!(access_line["request_id"], "find-me-123");
    assert!(access_line["duration_ms"].as_f64().is_some(), "{access_line}");
    let logs = server.logs.lock().unwrap().clone();
    assert!(logs.iter().any(|l| l.contains("tokenAuth") || l.contains("\"route\":\"/graphql\"")));
    for line in &logs {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not one JSON object: {line}"));
        assert!(parsed.is_object());
        for leaked in [password, secret, access.as_str(), refresh.as_str()] {
            assert!(!line.contains(leaked), "a secret in the log: {line}");
        }
    }
}

#[tokio::test]
async fn rust_log_is_honoured_when_agora_log_is_unset() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = agora_command(dir.path());
    command.env_remove("AGORA_LOG").env("RUST_LOG", "warn,agora::startup=info").arg("serve");
    let mut server = AgoraProcess::spawn(command).await;
    reqwest::Client::new().get(server.url("/healthz")).header("x-request-id", "quiet-1").send().await.unwrap();
    // The shutdown line is logged after every request's: once it is there, nothing is missing.
    assert!(server.terminate().await.success());
    wait_for_log(&server, |line| line.contains("shutting down")).await;
    assert!(!server.logs.lock().unwrap().iter().any(|line| line.contains("quiet-1")), "access lines are info");
}

/// Runs an `agora` command against `dir`'s database; returns (success, stdout, stderr).
async fn agora(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut command = agora_command(dir);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

#[tokio::test]
async fn users_commands_administer_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let server = AgoraProcess::spawn({
        let mut command = agora_command(dir.path());
        command.arg("serve");
        command
    })
    .await;
    let (carol, other) = (unique("carol"), unique("zed"));
    register(&server, &carol).await;
    register(&server, &other).await;

    let (ok, listed, _) = agora(dir.path(), &["users", "list", "--search", &carol.to_uppercase()], None).await;
    assert!(ok);
    assert_eq!(listed.lines().next(), Some("id\tusername\temail\tactive\tjoined"), "logs go to stderr: {listed}");
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{listed}");
    assert!(rows[0].contains(&format!("\t{carol}\t{carol}@example.com\ttrue\t")), "{listed}");
    let (_, everyone, _) = agora(dir.path(), &["users", "list"], None).await;
    assert!(everyone.contains(&carol) && everyone.contains(&other));

    assert!(agora(dir.path(), &["users", "deactivate", &carol], None).await.0);
    assert!(sign_in(&server, &carol, PASSWORD).await.is_err(), "a deactivated user cannot sign in");
    let (_, listed, _) = agora(dir.path(), &["users", "list", "--search", &carol], None).await;
    assert!(listed.contains("\tfalse\t"), "{listed}");
    assert!(agora(dir.path(), &["users", "activate", &carol], None).await.0);
    assert!(sign_in(&server, &carol, PASSWORD).await.is_ok());

    // Validated as at registration; nothing changes on a refusal.
    let (ok, _, stderr) = agora(dir.path(), &["users", "set-password", &carol], Some("12345\n")).await;
    assert!(!ok);
    assert!(stderr.contains("This password is too short") && stderr.contains("entirely numeric"), "{stderr}");
    assert!(sign_in(&server, &carol, PASSWORD).await.is_ok());
    let (ok, _, _) = agora(dir.path(), &["users", "set-password", &carol], Some("a brand new passphrase\n")).await;
    assert!(ok);
    assert!(sign_in(&server, &carol, PASSWORD).await.is_err());
    assert!(sign_in(&server, &carol, "a brand new passphrase").await.is_ok());

    assert!(agora(dir.path(), &["users", "delete", &carol], None).await.0);
    assert!(sign_in(&server, &carol, "a brand new passphrase").await.is_err());
    let (_, everyone, _) = agora(dir.path(), &["users", "list"], None).await;
    assert!(!everyone.contains(&carol) && everyone.contains(&other), "{everyone}");
    let (ok, _, stderr) = agora(dir.path(), &["users", "deactivate", &carol], None).await;
    assert!(!ok && stderr.contains("no user named"), "{stderr}");
}

#[tokio::test]
async fn healthcheck_succeeds_only_against_a_ready_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = AgoraProcess::spawn({
        let mut command = agora_command(dir.path());
        command.arg("serve");
        command
    })
    .await;
    let check = |bind: String| {
        let mut command = agora_command(dir.path());
        command.env("AGORA_BIND", bind).arg("healthcheck").stdout(Stdio::null()).stderr(Stdio::null());
        async move { command.status().await.unwrap().success() }
    };
    assert!(check(server.addr.clone()).await);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    assert!(!check(free.to_string()).await, "nothing listens there");
}

#[tokio::test]
async fn serve_no_migrate_leaves_the_database_alone() {
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().unwrap();
    let mut command = agora_command(dir.path());
    command.args(["serve", "--no-migrate"]);
    let server = AgoraProcess::spawn(command).await;
    server.wait_ready().await;
    let db =
        sea_orm::Database::connect(format!("sqlite://{}", dir.path().join("agora.sqlite3").display())).await.unwrap();
    let tables = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT name FROM sqlite_master WHERE type = 'table'",
        ))
        .await
        .unwrap();
    assert!(tables.is_empty(), "no migration ran");
}

/// Spans an in-process OTLP/HTTP collector received, by name.
type Received = Arc<Mutex<Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)>>>;

/// A tiny OTLP/HTTP (protobuf) collector: `POST /v1/traces`; returns its address.
async fn collector(received: Received) -> std::net::SocketAddr {
    use prost::Message;
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let received = received.clone();
            async move {
                let request =
                    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body).unwrap();
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .map(|kv| string(&kv.value))
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        received.lock().unwrap().extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
                    }
                }
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn string(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => s.clone(),
        Some(V::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(span: &opentelemetry_proto::tonic::trace::v1::Span) -> HashMap<String, String> {
    span.attributes.iter().map(|kv| (kv.key.clone(), string(&kv.value))).collect()
}

#[tokio::test]
async fn traces_are_exported_over_otlp() {
    let received: Received = Arc::default();
    let addr = collector(received.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = agora_command(dir.path());
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_SERVICE_NAME", "agora-under-test")
        .arg("serve");
    let server = AgoraProcess::spawn(command).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let username = unique("erin");
    let response = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("x-request-id", "otel-req-1")
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({
            "query": REGISTER,
            "operationName": "Join",
            "variables": {"u": username, "e": format!("{username}@example.com"), "p": PASSWORD},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let wanted = ["POST /graphql", "mutation Join", "password.hash"];
    let mut spans = Vec::new();
    for _ in 0..400 {
        spans = received.lock().unwrap().clone();
        let in_trace = |name: &str| spans.iter().any(|(_, s)| s.name == name && hex(&s.trace_id) == trace_id);
        if wanted.iter().all(|name| in_trace(name)) && spans.iter().any(|(_, s)| s.name.starts_with("sea_orm")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let find = |name: &str| {
        spans
            .iter()
            .find(|(_, s)| s.name == name && hex(&s.trace_id) == trace_id)
            .unwrap_or_else(|| {
                panic!("no {name} span in {:#?}", spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>())
            })
            .clone()
    };
    let (service, request) = find("POST /graphql");
    assert_eq!(service, "agora-under-test");
    assert_eq!(hex(&request.parent_span_id), caller_span, "the caller's trace goes on");
    let request_attributes = attributes(&request);
    assert_eq!(request_attributes["request_id"], "otel-req-1");
    assert_eq!(request_attributes["http.route"], "/graphql");
    assert_eq!(request_attributes["http.response.status_code"], "200");
    assert_eq!(request_attributes["graphql.operation.type"], "mutation");
    assert_eq!(request_attributes["graphql.operation.name"], "Join");
    let (_, operation) = find("mutation Join");
    assert_eq!(operation.parent_span_id, request.span_id);
    let (_, hash) = find("password.hash");
    assert_eq!(hash.parent_span_id, operation.span_id);
    let statements: Vec<_> =
        spans.iter().filter(|(_, s)| s.name.starts_with("sea_orm") && hex(&s.trace_id) == trace_id).collect();
    assert!(!statements.is_empty(), "database statements are spans of the request's trace");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn deactivating_from_the_command_line_closes_the_users_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let server = AgoraProcess::spawn({
        let mut command = agora_command(dir.path());
        command.arg("serve");
        command
    })
    .await;
    let (frank, grace) = (unique("frank"), unique("grace"));
    register(&server, &frank).await;
    register(&server, &grace).await;
    let frank_token = sign_in(&server, &frank, PASSWORD).await.unwrap();
    let grace_token = sign_in(&server, &grace, PASSWORD).await.unwrap();
    let room = server
        .gql_ok(
            Some(&grace_token),
            "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }",
            json!({"r": frank}),
        )
        .await["createChatRoom"]["chatRoom"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let from_start = agora::graphql::cursor::Cursor::of(agora::graphql::cursor::MessageKey(0));
    let added =
        "subscription($room: String!, $after: String) { messageAdded(roomName: $room, after: $after) { content } }";
    let ws_url = server.ws_url("/graphql/ws");
    let mut frank_ws = GqlWs::connect_url(&ws_url, WsProtocol::TransportWs, &frank_token).await;
    frank_ws.subscribe(added, json!({"room": room, "after": from_start})).await;
    let path = crate::legacy_ws::chat_path(&room);
    let mut frank_legacy = LegacyWs::connect_url(&server.ws_url(&format!("{path}?token={frank_token}"))).await;
    let mut grace_ws = GqlWs::connect_url(&ws_url, WsProtocol::TransportWs, &grace_token).await;
    grace_ws.subscribe(added, json!({"room": room, "after": from_start})).await;

    assert!(agora(dir.path(), &["users", "deactivate", &frank], None).await.0);
    let closed = frank_ws.recv().await.expect("a close frame");
    assert_eq!((closed["type"].as_str(), closed["code"].as_u64()), (Some("close"), Some(4403)), "{closed}");
    assert_eq!(frank_legacy.frame().await, crate::legacy_ws::Frame::Close(Some(4403)));
    // Grace's socket carries on: her next message reaches her.
    server
        .gql_ok(
            Some(&grace_token),
            "mutation($room: String!, $c: String!) { sendMessage(roomName: $room, content: $c) { id } }",
            json!({"room": room, "c": "still here"}),
        )
        .await;
    assert_eq!(grace_ws.next_payload().await["data"]["messageAdded"]["content"], "still here");
}
