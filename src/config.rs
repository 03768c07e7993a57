//! Settings: environment variables (and a `.env` file), each overridable by a flag.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Clone, Debug)]
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
}

impl Settings {
    /// Settings from the environment alone (as tests and embedders build them).
    pub fn from_env() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        <Only as clap::Parser>::parse_from(["agora"]).settings
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
