//! Automatic persisted queries, by Apollo's protocol: a client sends the SHA-256 of its document
//! in `extensions.persistedQuery.sha256Hash` and no `query`; when the server does not know the
//! hash it answers `PERSISTED_QUERY_NOT_FOUND`, and the client sends the document once with its
//! hash, which the server checks and keeps. Apollo Client's persisted-query link works unchanged
//! (GET too, for queries).
//!
//! The store is bounded: an in-process LRU of at most `AGORA_APQ_MAX_BYTES` of documents, and,
//! when Redis is configured, Redis keys that expire after `AGORA_APQ_TTL_SECONDS`, shared by every
//! process (the local LRU is then a cache in front of it). A Redis failure only costs a round
//! trip: the hash is reported unknown and the client sends its document.

use std::sync::{Arc, Mutex};

use async_graphql::{Request, ServerResult};
use sha2::{Digest, Sha256};

use super::error::{BAD_USER_INPUT, PERSISTED_QUERY_NOT_FOUND, coded};

/// Put on a request that came over GET: a persisted document it names must be a query.
pub struct QueriesOnly;

/// Where persisted documents are kept.
pub struct Store {
    local: Mutex<Local>,
    redis: Option<Redis>,
}

/// The in-process LRU, bounded by the bytes of its documents.
struct Local {
    documents: lru::LruCache<String, Arc<str>>,
    bytes: usize,
    max_bytes: usize,
}

struct Redis {
    client: redis::Client,
    connection: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    prefix: String,
    ttl_seconds: u64,
}

impl Store {
    /// A store of at most `max_bytes` of documents in this process, shared through Redis when
    /// `redis_url` is set (keys under `prefix`, kept `ttl_seconds`).
    pub fn new(max_bytes: usize, redis_url: Option<&str>, prefix: &str, ttl_seconds: u64) -> Self {
        let redis = redis_url.and_then(|url| match redis::Client::open(url) {
            Ok(client) => Some(Redis {
                client,
                connection: tokio::sync::OnceCell::new(),
                prefix: format!("{prefix}:apq:"),
                ttl_seconds: ttl_seconds.max(1),
            }),
            Err(err) => {
                tracing::warn!(%err, "persisted queries: invalid Redis URL, keeping them in this process only");
                None
            }
        });
        let local = Local { documents: lru::LruCache::unbounded(), bytes: 0, max_bytes };
        Store { local: Mutex::new(local), redis }
    }

    async fn get(&self, hash: &str) -> Option<Arc<str>> {
        if let Some(document) = self.local.lock().expect("apq lock").documents.get(hash) {
            return Some(document.clone());
        }
        let redis = self.redis.as_ref()?;
        let mut connection = redis.connection().await?;
        let found: Option<String> = redis::cmd("GET")
            .arg(format!("{}{hash}", redis.prefix))
            .query_async(&mut connection)
            .await
            .inspect_err(|err| tracing::warn!(%err, "persisted queries: Redis GET failed"))
            .ok()?;
        let document: Arc<str> = found?.into();
        self.keep_locally(hash, document.clone());
        Some(document)
    }

    async fn put(&self, hash: &str, document: &str) {
        self.keep_locally(hash, document.into());
        let Some(redis) = &self.redis else { return };
        let Some(mut connection) = redis.connection().await else { return };
        let key = format!("{}{hash}", redis.prefix);
        let set: Result<(), _> = redis::cmd("SET")
            .arg(key)
            .arg(document)
            .arg("EX")
            .arg(redis.ttl_seconds)
            .query_async(&mut connection)
            .await;
        if let Err(err) = set {
            tracing::warn!(%err, "persisted queries: Redis SET failed");
        }
    }

    fn keep_locally(&self, hash: &str, document: Arc<str>) {
        let mut local = self.local.lock().expect("apq lock");
        if document.len() > local.max_bytes {
            return;
        }
        local.bytes += document.len();
        if let Some(old) = local.documents.put(hash.to_owned(), document) {
            local.bytes -= old.len();
        }
        while local.bytes > local.max_bytes {
            let Some((_, evicted)) = local.documents.pop_lru() else { break };
            local.bytes -= evicted.len();
        }
    }

    /// Documents and their bytes kept in this process.
    pub fn local_size(&self) -> (usize, usize) {
        let local = self.local.lock().expect("apq lock");
        (local.documents.len(), local.bytes)
    }
}

impl Redis {
    async fn connection(&self) -> Option<redis::aio::ConnectionManager> {
        let connection = self.connection.get_or_try_init(|| self.client.get_connection_manager()).await;
        connection.inspect_err(|err| tracing::warn!(%err, "persisted queries: Redis unreachable")).ok().cloned()
    }
}

/// The SHA-256 of a document, in lowercase hex (as Apollo Client sends it).
pub fn hash(document: &str) -> String {
    hex::encode(Sha256::digest(document.as_bytes()))
}

/// The `persistedQuery` extension of a request: `Ok(None)` when it has none.
pub fn requested_hash(request: &Request) -> ServerResult<Option<String>> {
    use async_graphql::Value;
    let Some(persisted) = request.extensions.get("persistedQuery") else { return Ok(None) };
    let Value::Object(persisted) = persisted else {
        return Err(coded("`extensions.persistedQuery` must be an object.", BAD_USER_INPUT));
    };
    if !matches!(persisted.get("version"), Some(Value::Number(n)) if n.as_u64() == Some(1)) {
        return Err(coded("Unsupported persisted query version: only version 1 is.", BAD_USER_INPUT));
    }
    match persisted.get("sha256Hash") {
        Some(Value::String(hash)) => Ok(Some(hash.to_ascii_lowercase())),
        _ => Err(coded("`extensions.persistedQuery.sha256Hash` must be a string.", BAD_USER_INPUT)),
    }
}

/// The request runs the stored `document` its hash named: `PERSISTED_QUERY_NOT_FOUND` when
/// there is none, and over GET only a query (the rule of both modes, this and trusted documents).
pub fn run_stored(mut request: Request, document: Option<&str>) -> ServerResult<Request> {
    let Some(document) = document else {
        return Err(coded("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND));
    };
    request.query = document.to_owned();
    let over_get = request.data.contains_key(&std::any::TypeId::of::<QueriesOnly>());
    if over_get && !super::selects_a_query(&mut request) {
        return Err(coded("Only queries may be sent with GET; use POST.", BAD_USER_INPUT));
    }
    Ok(request)
}

/// Automatic persisted queries, as a schema extension ([`super::pipeline::Gate`]; before the
/// document limits, so a stored document is checked as a sent one is).
impl super::pipeline::Gate for Store {
    async fn pass(&self, request: Request) -> ServerResult<Request> {
        let Some(wanted) = requested_hash(&request)? else { return Ok(request) };
        if request.query.is_empty() {
            run_stored(request, self.get(&wanted).await.as_deref())
        } else if hash(&request.query) != wanted {
            Err(coded("provided sha does not match query", BAD_USER_INPUT))
        } else {
            self.put(&wanted, &request.query).await;
            Ok(request)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_store_keeps_the_most_recent_documents_within_its_bytes() {
        let store = Store::new(10, None, "t", 60);
        store.put("a", "12345").await;
        store.put("b", "12345").await;
        assert_eq!(store.local_size(), (2, 10));
        assert!(store.get("a").await.is_some(), "a is now the most recent");
        store.put("c", "123").await;
        assert_eq!(store.local_size(), (2, 8));
        assert!(store.get("b").await.is_none(), "b was the least recent");
        store.put("d", "12345678901").await;
        assert!(store.get("d").await.is_none(), "larger than the whole store");
    }

    #[test]
    fn hashes_are_apollo_clients() {
        assert_eq!(hash("{ __typename }"), "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b");
    }
}
