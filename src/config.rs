//! Settings: environment variables (and a `.env` file), each overridable by a flag.
//!
//! Secrets (the signing key, the database and Redis URLs, which may hold passwords) can also
//! come from files (`AGORA_SECRET_KEY_FILE`, `DATABASE_URL_FILE`, `REDIS_URL_FILE`), as
//! container platforms hand them over, and never appear in `Debug` output.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Clone)]
pub struct Settings {
    /// Database: `sqlite://PATH?mode=rwc` or `postgres://USER@HOST:PORT/DB`.
    /// Default: an SQLite file in the data folder, created on first start.
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Redis for the chat event bus across processes; in-process when unset.
    #[arg(long, global = true, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of the Redis channel, so deployments sharing one Redis stay apart.
    #[arg(long, global = true, env = "AGORA_REDIS_CHANNEL", default_value = "agora")]
    pub redis_channel: String,

    /// HS256 signing key of the tokens. When unset, one is generated once and kept in the data
    /// folder (`secret_key`).
    #[arg(long, global = true, env = "AGORA_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// Address to listen on.
    #[arg(long, global = true, env = "AGORA_BIND", default_value = "127.0.0.1:8000")]
    pub bind: String,

    /// Folder of the default SQLite file and the generated secret key.
    #[arg(long, global = true, env = "AGORA_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Folder of uploaded files, served at `/media/`. Default: `media` in the data folder.
    #[arg(long, global = true, env = "AGORA_MEDIA_DIR")]
    pub media_dir: Option<PathBuf>,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, global = true, env = "AGORA_ACCESS_TOKEN_LIFETIME", default_value_t = 300)]
    pub access_token_lifetime: i64,

    /// Lifetime of refresh tokens, in seconds.
    #[arg(long, global = true, env = "AGORA_REFRESH_TOKEN_LIFETIME", default_value_t = 86_400)]
    pub refresh_token_lifetime: i64,

    /// Origins allowed by CORS, comma-separated, or `*`. None when unset.
    #[arg(long, global = true, env = "AGORA_CORS_ORIGINS")]
    pub cors_origins: Option<String>,

    /// Base URL of the GraphiQL page's scripts and styles (a local copy for offline use).
    #[arg(long, global = true, env = "AGORA_GRAPHIQL_CDN", default_value = "https://unpkg.com")]
    pub graphiql_cdn: String,

    /// Whether the schema can be introspected (codegen tools need it).
    #[arg(long, global = true, env = "AGORA_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,

    /// Sign-in and registration attempts allowed per client address per minute (0: no limit).
    #[arg(long, global = true, env = "AGORA_AUTH_RATE_PER_MINUTE", default_value_t = 30)]
    pub auth_rate_per_minute: u32,

    /// Behind a reverse proxy: take the caller's address from the last `X-Forwarded-For` entry
    /// (for throttling). Only when every request comes through a proxy that sets it.
    #[arg(long, global = true, env = "AGORA_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,

    /// Largest accepted request body, in bytes (uploads included).
    #[arg(long, global = true, env = "AGORA_MAX_BODY_BYTES", default_value_t = 6 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Password hashes computed at once (default: the number of cores).
    #[arg(long, global = true, env = "AGORA_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,

    /// Database connections in the pool.
    #[arg(long, global = true, env = "AGORA_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,

    /// Open WebSockets allowed per client address (IPv6: per /64); 0: no limit.
    #[arg(long, global = true, env = "AGORA_WS_MAX_PER_CLIENT", default_value_t = 64)]
    pub ws_max_per_client: usize,

    /// Seconds between pings to idle WebSocket connections.
    #[arg(long, global = true, env = "AGORA_WS_PING_SECONDS", default_value_t = 20)]
    pub ws_ping_seconds: u64,

    /// Seconds a GraphQL WebSocket may stay open without `connection_init` (then closed 4408).
    #[arg(long, global = true, env = "AGORA_WS_INIT_TIMEOUT_SECONDS", default_value_t = 3)]
    pub ws_init_timeout_seconds: u64,

    /// Seconds between checks that the users holding sockets are still active (deactivated or
    /// deleted ones lose every socket, whoever changed the database).
    #[arg(long, global = true, env = "AGORA_WS_USER_CHECK_SECONDS", default_value_t = 2)]
    pub ws_user_check_seconds: u64,

    /// Seconds a request's head may take to arrive, from its first byte.
    #[arg(long, global = true, env = "AGORA_HTTP_HEADER_TIMEOUT", default_value_t = 10)]
    pub http_header_timeout: u64,

    /// Seconds a request's body may take to arrive, from the end of its head (408 beyond).
    #[arg(long, global = true, env = "AGORA_HTTP_BODY_TIMEOUT", default_value_t = 60)]
    pub http_body_timeout: u64,

    /// Seconds an HTTP connection may wait for its next request (fresh or kept alive).
    #[arg(long, global = true, env = "AGORA_HTTP_IDLE_TIMEOUT", default_value_t = 75)]
    pub http_idle_timeout: u64,

    /// Seconds a response write may wait for the client to read (no progress at all) before the
    /// connection is closed.
    #[arg(long, global = true, env = "AGORA_HTTP_WRITE_TIMEOUT", default_value_t = 60)]
    pub http_write_timeout: u64,

    /// Open HTTP connections per client address (IPv6: per /64); 0: no cap. Not applied with
    /// `AGORA_TRUST_FORWARDED_FOR` (every connection then comes from the proxy).
    #[arg(long, global = true, env = "AGORA_HTTP_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    pub http_max_connections_per_client: usize,

    /// Failed sign-ins at one account before it waits (1 s, doubling); 0: no per-account limit.
    #[arg(long, global = true, env = "AGORA_SIGNIN_FREE_FAILURES", default_value_t = 5)]
    pub signin_free_failures: u32,

    /// Longest wait of an account after failed sign-ins, in seconds.
    #[arg(long, global = true, env = "AGORA_SIGNIN_MAX_BACKOFF", default_value_t = 60)]
    pub signin_max_backoff: u64,

    /// Chat messages one user may send per second, every channel together (0: no limit).
    #[arg(long, global = true, env = "AGORA_MESSAGES_PER_SECOND", default_value_t = 5)]
    pub messages_per_second: u32,

    /// Most stored chat events a resumed `chatEvents` subscription replays;
    /// a client further behind is told `TOO_FAR_BEHIND` and reads history instead.
    #[arg(long, global = true, env = "AGORA_LIVE_MAX_REPLAY", default_value_t = 1_000)]
    pub live_max_replay: i64,

    /// Milliseconds a `setTyping(typing: true)` lasts without renewal; subscribers then see
    /// `typing: false`.
    #[arg(long, global = true, env = "AGORA_TYPING_TTL_MS", default_value_t = 5_000)]
    pub typing_ttl_ms: u64,

    /// Seconds a process's presence entries live in Redis without its heartbeat (a process
    /// that dies leaves its users online at most this long); the heartbeat renews them every
    /// third of it.
    #[arg(long, global = true, env = "AGORA_PRESENCE_TTL_SECONDS", default_value_t = 60)]
    pub presence_ttl_seconds: u64,

    /// Largest GraphQL document, in bytes (checked before parsing).
    #[arg(long, global = true, env = "AGORA_GRAPHQL_MAX_BYTES", default_value_t = 65_536)]
    pub graphql_max_bytes: usize,

    /// Most lexical tokens in a GraphQL document (checked before parsing).
    #[arg(long, global = true, env = "AGORA_GRAPHQL_MAX_TOKENS", default_value_t = 10_000)]
    pub graphql_max_tokens: usize,

    /// Deepest nesting of braces, brackets and parentheses in a GraphQL document (checked
    /// before parsing: the parser recurses into values without bound).
    #[arg(long, global = true, env = "AGORA_GRAPHQL_MAX_NESTING", default_value_t = 32)]
    pub graphql_max_nesting: usize,

    /// Most aliased fields in a GraphQL document.
    #[arg(long, global = true, env = "AGORA_GRAPHQL_MAX_ALIASES", default_value_t = 100)]
    pub graphql_max_aliases: usize,

    /// Most root fields in one GraphQL mutation.
    #[arg(long, global = true, env = "AGORA_GRAPHQL_MAX_ROOT_MUTATION_FIELDS", default_value_t = 10)]
    pub graphql_max_root_mutation_fields: usize,

    /// Most selections a GraphQL operation stands for once its fragment spreads are expanded.
    #[arg(long, global = true, env = "AGORA_GRAPHQL_MAX_EXPANDED_SELECTIONS", default_value_t = 10_000)]
    pub graphql_max_expanded_selections: usize,

    /// Most directives on one field, fragment or operation of a GraphQL document.
    #[arg(long, global = true, env = "AGORA_GRAPHQL_MAX_DIRECTIVES", default_value_t = 10)]
    pub graphql_max_directives: usize,

    /// Most errors listed in one GraphQL response (then one error says how many more).
    #[arg(long, global = true, env = "AGORA_GRAPHQL_MAX_ERRORS", default_value_t = 100)]
    pub graphql_max_errors: usize,

    /// Bytes of automatic persisted query documents kept in each process (least recently used
    /// first out).
    #[arg(long, global = true, env = "AGORA_APQ_MAX_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub apq_max_bytes: usize,

    /// Seconds an automatic persisted query is kept in Redis (when `REDIS_URL` is set).
    #[arg(long, global = true, env = "AGORA_APQ_TTL_SECONDS", default_value_t = 86_400)]
    pub apq_ttl_seconds: u64,

    /// Trusted documents: a JSON manifest of the only GraphQL documents clients may run (a map
    /// of id to document, or Apollo's persisted query manifest). Unset: any document runs.
    #[arg(long, global = true, env = "AGORA_TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<PathBuf>,

    /// Read `AGORA_SECRET_KEY` from this file (its first line).
    #[arg(long, global = true, env = "AGORA_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,

    /// Read `DATABASE_URL` from this file (its first line).
    #[arg(long, global = true, env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,

    /// Read `REDIS_URL` from this file (its first line).
    #[arg(long, global = true, env = "REDIS_URL_FILE")]
    pub redis_url_file: Option<PathBuf>,

    /// Serve `/metrics` on this address only (e.g. `127.0.0.1:9100`, not facing the internet)
    /// instead of on the main listener.
    #[arg(long, global = true, env = "AGORA_METRICS_BIND")]
    pub metrics_bind: Option<String>,

    /// Log lines as human-readable text or one JSON object per line.
    #[arg(long, global = true, env = "AGORA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve without running pending migrations (for deployments that run `agora migrate` as
    /// a separate step).
    #[arg(long, global = true, env = "AGORA_NO_MIGRATE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub no_migrate: bool,
}

/// How log lines are written (`AGORA_LOG_FORMAT`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    /// Settings from the environment alone (as tests and embedders build them).
    pub fn from_env() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        let mut settings = <Only as clap::Parser>::parse_from(["agora"]).settings;
        settings.load_secret_files().expect("readable secret files");
        settings
    }

    /// Fills the secrets given as files (`*_FILE`). Setting both a value and its file is an
    /// error, as is an unreadable or empty file.
    pub fn load_secret_files(&mut self) -> anyhow::Result<()> {
        for (value, file, name) in [
            (&mut self.secret_key, &self.secret_key_file, "AGORA_SECRET_KEY"),
            (&mut self.database_url, &self.database_url_file, "DATABASE_URL"),
            (&mut self.redis_url, &self.redis_url_file, "REDIS_URL"),
        ] {
            let Some(path) = file else { continue };
            if value.as_deref().is_some_and(|v| !v.is_empty()) {
                anyhow::bail!("set {name} or {name}_FILE, not both");
            }
            let text = std::fs::read_to_string(path)
                .map_err(|err| anyhow::anyhow!("cannot read {name}_FILE {}: {err}", path.display()))?;
            let secret = text.lines().next().unwrap_or("").trim();
            if secret.is_empty() {
                anyhow::bail!("{name}_FILE {} is empty", path.display());
            }
            *value = Some(secret.to_owned());
        }
        Ok(())
    }

    pub fn media_dir(&self) -> PathBuf {
        self.media_dir.clone().unwrap_or_else(|| self.data_dir.join("media"))
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("agora.sqlite3").display()))
    }
}

/// A URL with its password (if any) replaced, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// Every setting but the secrets: the key is only said to be set, URLs lose their password.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(redact_url);
        f.debug_struct("Settings")
            .field("database_url", &url(&self.database_url))
            .field("redis_url", &url(&self.redis_url))
            .field("redis_channel", &self.redis_channel)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "REDACTED"))
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("media_dir", &self.media_dir)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("refresh_token_lifetime", &self.refresh_token_lifetime)
            .field("cors_origins", &self.cors_origins)
            .field("graphiql_cdn", &self.graphiql_cdn)
            .field("introspection", &self.introspection)
            .field("auth_rate_per_minute", &self.auth_rate_per_minute)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("hash_concurrency", &self.hash_concurrency)
            .field("db_pool", &self.db_pool)
            .field("ws_max_per_client", &self.ws_max_per_client)
            .field("ws_ping_seconds", &self.ws_ping_seconds)
            .field("graphql_max_bytes", &self.graphql_max_bytes)
            .field("graphql_max_tokens", &self.graphql_max_tokens)
            .field("graphql_max_nesting", &self.graphql_max_nesting)
            .field("graphql_max_aliases", &self.graphql_max_aliases)
            .field("graphql_max_root_mutation_fields", &self.graphql_max_root_mutation_fields)
            .field("trusted_documents", &self.trusted_documents)
            .field("secret_key_file", &self.secret_key_file)
            .field("database_url_file", &self.database_url_file)
            .field("redis_url_file", &self.redis_url_file)
            .field("metrics_bind", &self.metrics_bind)
            .field("log_format", &self.log_format)
            .field("no_migrate", &self.no_migrate)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_has_no_secret() {
        let mut settings = Settings::from_env();
        settings.secret_key = Some("signing-key-s3cr3t".into());
        settings.database_url = Some("postgres://agora:db-pa55word@db:5432/agora".into());
        settings.redis_url = Some("redis://:redis-pa55word@cache:6379/0".into());
        let debug = format!("{settings:?} {settings:#?}");
        for secret in ["signing-key-s3cr3t", "db-pa55word", "redis-pa55word"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains("postgres://agora:REDACTED@db:5432/agora"), "{debug}");
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "from-a-file\n").unwrap();
        let mut settings = Settings::from_env();
        settings.secret_key = None;
        settings.secret_key_file = Some(key.clone());
        settings.load_secret_files().unwrap();
        assert_eq!(settings.secret_key.as_deref(), Some("from-a-file"));
        // Both a value and a file: refused.
        assert!(settings.load_secret_files().unwrap_err().to_string().contains("not both"));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        settings.secret_key = None;
        settings.secret_key_file = Some(empty);
        assert!(settings.load_secret_files().is_err());
        settings.secret_key_file = Some(dir.path().join("missing"));
        assert!(settings.load_secret_files().is_err());
    }
}
