//! The two GraphQL-over-WebSocket wire protocols of `/graphql/ws`, as messages: what a client may
//! send (read strictly) and what the server answers. [`Protocol`] is named after the
//! `Sec-WebSocket-Protocol` value (async-graphql's enum has the two names swapped):
//!
//! - `graphql-transport-ws`: the graphql-ws library's PROTOCOL.md. A message the server cannot
//!   read closes the socket with 4400 (with a reason of at most 123 bytes).
//! - `graphql-ws`: the older subscriptions-transport-ws. A message that is not JSON gets
//!   `connection_error`, an unknown type an `error`; the socket stays open.

use async_graphql::{Request, Response, ServerError};
use axum::extract::ws::Message;
use axum::http::HeaderMap;
use axum::http::header::SEC_WEBSOCKET_PROTOCOL;
use serde_json::{Map, Value, json};

/// Close codes of `graphql-transport-ws` (the connection handler uses them for both protocols).
pub mod close_code {
    /// A message the server cannot read.
    pub const BAD_REQUEST: u16 = 4400;
    /// `subscribe` before `connection_ack`, or the access token the connection opened with expired.
    pub const UNAUTHORIZED: u16 = 4401;
    /// `connection_init` refused, or the user is no longer active.
    pub const FORBIDDEN: u16 = 4403;
    /// No `connection_init` in time.
    pub const INIT_TIMEOUT: u16 = 4408;
    /// `subscribe` with the id of an operation that is still running.
    pub const SUBSCRIBER_EXISTS: u16 = 4409;
    /// A second `connection_init`.
    pub const TOO_MANY_INITS: u16 = 4429;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws` (graphql-ws): `subscribe` → `next`… `complete`.
    TransportWs,
    /// `graphql-ws` (subscriptions-transport-ws): `start` → `data`… `complete`.
    LegacyWs,
}

/// A message from the client, of either protocol.
#[derive(Debug, PartialEq)]
pub enum ClientMessage {
    /// `connection_init`, with its payload (an object, or `Null` when there is none).
    Init(Value),
    /// `subscribe` / `start`: an operation with its id and `{query, variables, …}`.
    Subscribe { id: String, payload: Map<String, Value> },
    /// `complete` / `stop`: the client stops an operation.
    Stop { id: String },
    /// `ping` (graphql-transport-ws), with its optional payload.
    Ping(Option<Value>),
    /// `pong` (graphql-transport-ws).
    Pong,
    /// `connection_terminate` (graphql-ws).
    Terminate,
}

/// Why a client message cannot be read: a short text for a close reason or an error message.
#[derive(Debug, PartialEq)]
pub struct Invalid {
    pub reason: String,
    /// Whether the message was a JSON object (graphql-ws answers those with an `error` for
    /// their `id`, anything else with `connection_error`).
    pub json: bool,
    pub id: Option<String>,
}

impl Invalid {
    /// A problem with a message that is not a JSON object.
    pub fn unreadable(reason: &str) -> Self {
        Invalid { reason: reason.to_owned(), json: false, id: None }
    }
}

impl Protocol {
    /// The `Sec-WebSocket-Protocol` value.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::LegacyWs => "graphql-ws",
        }
    }

    /// The first protocol the client lists that the server speaks.
    pub fn negotiate(headers: &HeaderMap) -> Option<Protocol> {
        headers.get_all(SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|value| value.to_str().ok()).find_map(|list| {
            list.split(',').find_map(|name| {
                [Protocol::TransportWs, Protocol::LegacyWs].into_iter().find(|p| p.name() == name.trim())
            })
        })
    }

    /// Reads one client message.
    pub fn parse(self, text: &str) -> Result<ClientMessage, Invalid> {
        let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(text) else {
            return Err(Invalid::unreadable("Invalid message: not a JSON object"));
        };
        let given_id = message.get("id").and_then(Value::as_str).map(str::to_owned);
        let invalid = |reason: String| Invalid { reason, json: true, id: given_id.clone() };
        let Some(Value::String(kind)) = message.remove("type") else {
            return Err(invalid("Invalid message: no \"type\"".into()));
        };
        let payload = message.remove("payload");
        let id = || match message.get("id") {
            Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
            _ => Err(invalid(format!("Invalid message: \"{kind}\" needs an \"id\""))),
        };
        let object_payload = |payload: Option<Value>| match payload {
            Some(Value::Object(object)) => Ok(object),
            _ => Err(invalid(format!("Invalid message: \"{kind}\" needs an object \"payload\""))),
        };
        let optional_object = |payload: Option<Value>| match payload {
            None | Some(Value::Null) => Ok(Value::Null),
            Some(object @ Value::Object(_)) => Ok(object),
            Some(_) => Err(invalid(format!("Invalid message: the \"payload\" of \"{kind}\" must be an object"))),
        };
        match (self, kind.as_str()) {
            (_, "connection_init") => optional_object(payload).map(ClientMessage::Init),
            (Protocol::TransportWs, "subscribe") | (Protocol::LegacyWs, "start") => {
                Ok(ClientMessage::Subscribe { id: id()?, payload: object_payload(payload)? })
            }
            (Protocol::TransportWs, "complete") | (Protocol::LegacyWs, "stop") => Ok(ClientMessage::Stop { id: id()? }),
            (Protocol::TransportWs, "ping") => {
                optional_object(payload).map(|p| ClientMessage::Ping(Some(p).filter(|p| !p.is_null())))
            }
            (Protocol::TransportWs, "pong") => optional_object(payload).map(|_| ClientMessage::Pong),
            (Protocol::LegacyWs, "connection_terminate") => Ok(ClientMessage::Terminate),
            _ => Err(invalid(format!("Invalid message: unknown type \"{kind}\""))),
        }
    }

    pub fn ack(self) -> Message {
        text(json!({"type": "connection_ack"}))
    }

    /// One result of operation `id` (`next` / `data`).
    pub fn result(self, id: &str, response: &Response) -> Message {
        let kind = match self {
            Protocol::TransportWs => "next",
            Protocol::LegacyWs => "data",
        };
        text(json!({"type": kind, "id": id, "payload": response}))
    }

    /// Operation `id` failed before it ran: graphql-transport-ws carries the list of errors,
    /// graphql-ws one error object.
    pub fn error(self, id: &str, errors: &[ServerError]) -> Message {
        let payload = match self {
            Protocol::TransportWs => json!(errors),
            Protocol::LegacyWs => errors.first().map_or_else(|| json!({"message": "Unknown error."}), |e| json!(e)),
        };
        text(json!({"type": "error", "id": id, "payload": payload}))
    }

    /// Operation `id` is over.
    pub fn complete(self, id: &str) -> Message {
        text(json!({"type": "complete", "id": id}))
    }
}

/// graphql-transport-ws: the answer to a `ping`, echoing its payload.
pub fn pong(payload: Option<Value>) -> Message {
    match payload {
        Some(payload) => text(json!({"type": "pong", "payload": payload})),
        None => text(json!({"type": "pong"})),
    }
}

/// graphql-ws: the keep-alive message, after `connection_ack` and then periodically.
pub fn keep_alive() -> Message {
    text(json!({"type": "ka"}))
}

/// graphql-ws: a problem with the connection itself (`connection_init` refused, unreadable message).
pub fn connection_error(message: &str) -> Message {
    text(json!({"type": "connection_error", "payload": {"message": message}}))
}

/// The GraphQL request of a `subscribe` / `start` payload (`query` is required, `variables`,
/// `operationName` and `extensions` are optional).
pub fn request_of(payload: Map<String, Value>) -> Result<Request, Invalid> {
    if !matches!(payload.get("query"), Some(Value::String(_))) {
        return Err(Invalid::unreadable("Invalid message: the payload needs a \"query\" string"));
    }
    let fits = |key: &str, kind: fn(&Value) -> bool| payload.get(key).is_none_or(|v| v.is_null() || kind(v));
    if !fits("variables", Value::is_object)
        || !fits("extensions", Value::is_object)
        || !fits("operationName", Value::is_string)
    {
        return Err(Invalid::unreadable(
            "Invalid message: malformed \"variables\", \"operationName\" or \"extensions\"",
        ));
    }
    let payload: Map<String, Value> = payload.into_iter().filter(|(_, value)| !value.is_null()).collect();
    serde_json::from_value(Value::Object(payload))
        .map_err(|_| Invalid::unreadable("Invalid message: malformed payload"))
}

fn text(message: Value) -> Message {
    Message::Text(message.to_string().into())
}

/// Whether the first response of an operation is a request error (the document does not parse
/// or validate, a variable does not coerce, a limit is exceeded): no data, and no error is
/// located in a field (resolver errors always carry their field's path). Such an operation gets
/// `error` and nothing after it.
pub fn is_request_error(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SEC_WEBSOCKET_PROTOCOL, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_protocol_is_the_first_known_one_the_client_lists() {
        assert_eq!(Protocol::negotiate(&headers("graphql-ws")), Some(Protocol::LegacyWs));
        assert_eq!(Protocol::negotiate(&headers("graphql-transport-ws")), Some(Protocol::TransportWs));
        assert_eq!(Protocol::negotiate(&headers("x, graphql-ws, graphql-transport-ws")), Some(Protocol::LegacyWs));
        assert_eq!(Protocol::negotiate(&headers("graphql-sse")), None);
        assert_eq!(Protocol::negotiate(&HeaderMap::new()), None);
    }

    #[test]
    fn client_messages_are_read_strictly() {
        use Protocol::*;
        let query = json!({"query": "{ me { id } }"});
        let parse = |p: Protocol, v: Value| p.parse(&v.to_string());
        assert_eq!(parse(TransportWs, json!({"type": "connection_init"})), Ok(ClientMessage::Init(Value::Null)));
        assert_eq!(
            parse(TransportWs, json!({"type": "connection_init", "payload": {"token": "t"}})),
            Ok(ClientMessage::Init(json!({"token": "t"})))
        );
        assert!(parse(TransportWs, json!({"type": "connection_init", "payload": "t"})).is_err());
        assert_eq!(
            parse(TransportWs, json!({"type": "subscribe", "id": "1", "payload": query})),
            Ok(ClientMessage::Subscribe { id: "1".into(), payload: query.as_object().unwrap().clone() })
        );
        assert!(parse(TransportWs, json!({"type": "subscribe", "id": "1"})).is_err(), "no payload");
        assert!(parse(TransportWs, json!({"type": "subscribe", "id": "", "payload": query})).is_err(), "empty id");
        assert!(parse(TransportWs, json!({"type": "start", "id": "1", "payload": query})).is_err(), "other protocol");
        assert!(parse(LegacyWs, json!({"type": "start", "id": "1", "payload": query})).is_ok());
        assert_eq!(parse(LegacyWs, json!({"type": "stop", "id": "1"})), Ok(ClientMessage::Stop { id: "1".into() }));
        assert_eq!(
            parse(TransportWs, json!({"type": "ping", "payload": {"a": 1}})),
            Ok(ClientMessage::Ping(Some(json!({"a": 1}))))
        );
        assert_eq!(parse(TransportWs, json!({"type": "pong"})), Ok(ClientMessage::Pong));
        assert_eq!(parse(LegacyWs, json!({"type": "connection_terminate"})), Ok(ClientMessage::Terminate));
        assert!(parse(TransportWs, json!({"type": "next", "id": "1", "payload": {}})).is_err());
        assert!(TransportWs.parse("not json").is_err());
        assert!(TransportWs.parse("[1]").is_err());
        let long = TransportWs.parse(&json!({"type": "x".repeat(500)}).to_string()).unwrap_err();
        assert!(long.reason.starts_with("Invalid message: unknown type"));
        assert!(long.json);
    }

    #[test]
    fn a_payload_becomes_a_request() {
        let payload = |v: Value| v.as_object().unwrap().clone();
        let request =
            request_of(payload(json!({"query": "{ a }", "variables": null, "operationName": null, "extensions": {}})))
                .unwrap();
        assert_eq!(request.query, "{ a }");
        let request =
            request_of(payload(json!({"query": "query Q { a }", "variables": {"x": 1}, "operationName": "Q"})))
                .unwrap();
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert!(request_of(payload(json!({"variables": {}}))).is_err());
        assert!(request_of(payload(json!({"query": "{ a }", "variables": [1]}))).is_err());
    }

    #[test]
    fn request_errors_are_told_from_field_errors() {
        let unlocated = Response::from_errors(vec![ServerError::new("Unknown field", None)]);
        assert!(is_request_error(&unlocated));
        let mut located = ServerError::new("Not found.", None);
        located.path = vec![async_graphql::PathSegment::Field("messageAdded".into())];
        assert!(!is_request_error(&Response::from_errors(vec![located])));
    }
}
