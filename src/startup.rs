//! Builds the application from settings (connect, migrate, wire the router) and runs it until
//! a shutdown signal: `main` and the integration tests both go through [`Application`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::{HeaderValue, Method, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::bus::{self, BusConfig};
use crate::config::Settings;
use crate::context::{AppContext, Lifecycle};
use crate::graphql;
use crate::state::AppState;
use crate::transport::http_server::{self, HttpLimits};
use crate::transport::{graphql_http, graphql_ws};

pub struct Application {
    listener: TcpListener,
    /// `/metrics` on its own address (`AGORA_METRICS_BIND`), else on `listener`.
    metrics_listener: Option<TcpListener>,
    context: AppContext,
    /// The sockets' presence transitions, until `run` starts applying them.
    transitions: Option<tokio::sync::mpsc::UnboundedReceiver<crate::service::presence::Transition>>,
}

impl Application {
    /// Connects to the database (running migrations) and the bus, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, |_| {}).await
    }

    /// [`build`](Self::build), with `adjust` applied to the database connection before anything
    /// uses it: tests install a statement counter (`db::count_statements`) this way, so that
    /// production statements pay for no counter only tests read.
    pub async fn build_with(
        settings: Settings,
        adjust: impl FnOnce(&mut sea_orm::DatabaseConnection),
    ) -> anyhow::Result<Self> {
        let secret = secret_key(&settings)?;
        let mut db = crate::db::connect(&settings.database_url(), settings.db_pool)
            .await
            .context("cannot connect to the database")?;
        adjust(&mut db);
        if settings.no_migrate {
            tracing::info!("not running migrations (--no-migrate)");
        } else {
            crate::db::migrate(&db).await.context("migrations failed")?;
        }
        let bus = bus::connect(&BusConfig {
            redis_url: settings.redis_url.clone(),
            channel_prefix: settings.redis_channel.clone(),
            capacity: 1024,
        })
        .await?;
        tokio::fs::create_dir_all(settings.media_dir()).await.context("cannot create the media folder")?;
        let listener =
            TcpListener::bind(&settings.bind).await.with_context(|| format!("cannot bind {}", settings.bind))?;
        let metrics_listener = match settings.metrics_bind.as_deref().filter(|b| !b.is_empty()) {
            Some(bind) => {
                Some(TcpListener::bind(bind).await.with_context(|| format!("cannot bind {bind} for metrics"))?)
            }
            None => None,
        };
        crate::media::MediaStore::new(settings.media_dir())
            .ensure_default()
            .await
            .context("cannot write the default avatar")?;
        if let Some(path) = settings.trusted_documents.as_deref() {
            let trusted = graphql::trusted::TrustedDocuments::load(path)?;
            tracing::info!(documents = trusted.len(), "trusted documents: only these run");
        }
        let state = Arc::new(AppState::new(settings, db, &secret, bus));
        let schema = graphql::build_schema(Some(state.clone()));
        let (presence, transitions) = tokio::sync::mpsc::unbounded_channel();
        Ok(Self {
            listener,
            metrics_listener,
            context: AppContext {
                state,
                schema,
                lifecycle: Lifecycle::default(),
                socket_owners: crate::service::sessions::SocketOwners::with_presence(presence),
            },
            transitions: Some(transitions),
        })
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener.as_ref().unwrap_or(&self.listener).local_addr().expect("bound listener")
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    pub fn context(&self) -> &AppContext {
        &self.context
    }

    /// Serves until `signal` completes, then stops accepting, closes WebSockets with 1001,
    /// finishes in-flight requests and returns.
    pub async fn run(mut self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let addr = self.local_addr();
        let lifecycle = self.context.lifecycle.clone();
        tracing::info!("GraphQL endpoint:     http://{addr}/graphql");
        tracing::info!("GraphiQL playground:  http://{addr}/graphiql");
        tracing::info!("Subscriptions:        ws://{addr}/graphql/ws");
        tracing::info!("Legacy REST base:     http://{addr}/accounts/api/ , /profiles/api/ , /messenger/api/");
        tracing::info!("Legacy chat socket:   ws://{addr}/messenger/ws/ws/chat/<room_name>/");
        tracing::info!("Legacy REST OpenAPI:  http://{addr}/openapi.json");
        tracing::info!("Chat event bus:       {}", self.context.state.bus.kind());
        let state = &self.context.state;
        if let Some(transitions) = self.transitions.take() {
            // Tracked: at shutdown it takes this process's users offline before the process ends.
            lifecycle.tasks.spawn(crate::service::presence::run(
                state.clone(),
                transitions,
                lifecycle.shutdown.clone(),
            ));
        }
        tokio::spawn(crate::service::sessions::watch_owners(
            state.db.clone(),
            self.context.socket_owners.clone(),
            Duration::from_secs(state.settings.ws_user_check_seconds.max(1)),
            lifecycle.shutdown.clone(),
        ));
        tracing::info!("Metrics:              http://{}/metrics", self.metrics_addr());
        if let Some(listener) = self.metrics_listener {
            let app = Router::new().route("/metrics", get(metrics)).with_state(self.context.clone());
            let stopping = lifecycle.shutdown.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, app).with_graceful_shutdown(stopping.cancelled_owned()).await;
                if let Err(err) = served {
                    tracing::error!(error = %err, "the metrics listener failed");
                }
            });
        }
        let limits = http_limits(&self.context.state.settings);
        let app = router(self.context);
        let stopping = lifecycle.shutdown.clone();
        http_server::serve(self.listener, app, limits, async move {
            tokio::select! {
                _ = signal => {}
                _ = stopping.cancelled() => {}
            }
            tracing::info!("shutting down: closing WebSockets, draining requests");
            stopping.cancel();
        })
        .await?;
        lifecycle.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), lifecycle.tasks.wait()).await;
        Ok(())
    }
}

/// The HTTP deadlines and connection cap of the settings.
fn http_limits(settings: &Settings) -> HttpLimits {
    HttpLimits {
        header: Duration::from_secs(settings.http_header_timeout.max(1)),
        body: Duration::from_secs(settings.http_body_timeout.max(1)),
        idle: Duration::from_secs(settings.http_idle_timeout.max(1)),
        write: Duration::from_secs(settings.http_write_timeout.max(1)),
        // Behind a proxy every connection is the proxy's: the proxy caps its clients.
        per_client: if settings.trust_forwarded_for { 0 } else { settings.http_max_connections_per_client },
    }
}

/// The key that signs tokens: configured, or generated once and kept in the data folder,
/// readable by its owner alone (a key others can read is refused: they could sign tokens).
fn secret_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(key) = settings.secret_key.as_ref().filter(|k| !k.is_empty()) {
        return Ok(key.as_bytes().to_vec());
    }
    let path = settings.data_dir.join("secret_key");
    if let Ok(key) = std::fs::read_to_string(&path)
        && !key.trim().is_empty()
    {
        private_to_owner(&path)?;
        return Ok(key.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let key = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    private_to_owner(&path)?;
    tracing::warn!(
        "AGORA_SECRET_KEY is not set: generated a signing key in {} (set AGORA_SECRET_KEY in production, \
         the same for every process)",
        path.display()
    );
    Ok(key.into_bytes())
}

/// Refuses a key file that its group or others may read or write.
fn private_to_owner(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{} can be read by other users (mode {:o}): anyone who reads it can sign tokens; \
                 `chmod 600` it (or set AGORA_SECRET_KEY)",
                path.display(),
                mode & 0o777
            );
        }
    }
    Ok(())
}

fn router(context: AppContext) -> Router {
    let media = crate::media::service(context.state.media.root());
    let body_limit = RequestBodyLimitLayer::new(context.state.settings.max_body_bytes);
    let app = Router::new()
        .route(
            "/graphql",
            get(graphql_http::graphql_http)
                .post(graphql_http::graphql_http)
                .layer(body_limit)
                .layer(axum::middleware::map_response(graphql_http::json_too_large)),
        )
        .route("/graphql/ws", get(graphql_ws::graphql_ws))
        .route("/graphiql", get(graphql_http::graphiql))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .nest_service("/media", media)
        .merge(crate::legacy::router());
    let app = if context.state.settings.metrics_bind.as_deref().is_none_or(str::is_empty) {
        app.route("/metrics", get(metrics))
    } else {
        app
    };
    let (set_request_id, propagate_request_id) = crate::telemetry::request_id_layers();
    // Open WebSockets per client: a transport concern, shared by both socket kinds.
    let sockets = crate::transport::socket::SocketLimiter::new(context.state.settings.ws_max_per_client);
    let app = app.with_state(context.clone()).layer(axum::Extension(sockets)).layer(
        tower::ServiceBuilder::new()
            .layer(set_request_id)
            .layer(propagate_request_id)
            .layer(axum::middleware::from_fn(crate::telemetry::observe_requests)),
    );
    with_cors(app, &context.state.settings)
}

/// CORS for browsers on other origins (`AGORA_CORS_ORIGINS`: comma-separated origins or `*`),
/// for every route; nothing when unset. Only real preflights (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`) are answered by the CORS layer: tower-http's would answer
/// every `OPTIONS`, and legacy clients get DRF's metadata from an `OPTIONS` request.
fn with_cors(app: Router, settings: &Settings) -> Router {
    let origins = settings.cors_origins.as_deref().map(str::trim).unwrap_or("");
    if origins.is_empty() {
        return app;
    }
    let allow_origin = if origins == "*" {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.split(',').map(str::trim).filter(|o| !o.is_empty()).filter_map(|origin| {
            let parsed = HeaderValue::from_str(origin);
            if parsed.is_err() {
                tracing::warn!(origin, "ignoring an invalid CORS origin");
            }
            parsed.ok()
        }))
    };
    let cors = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(86_400));
    let plain = app.clone();
    let cors_app = app.layer(cors);
    Router::new().fallback_service(tower::service_fn(move |request: axum::extract::Request| {
        let headers = request.headers();
        let preflight =
            headers.contains_key(header::ORIGIN) && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let service = if request.method() == Method::OPTIONS && !preflight { plain.clone() } else { cors_app.clone() };
        tower::ServiceExt::oneshot(service, request)
    }))
}

/// Ready when the database and (when configured) Redis answer.
async fn readyz(State(ctx): State<AppContext>) -> impl IntoResponse {
    let db = crate::db::ping(&ctx.state.db).await;
    let bus = ctx.state.bus.ready().await;
    let status = if db && bus { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(serde_json::json!({"database": db, "bus": bus})))
}

/// `/metrics`: Prometheus (OpenMetrics) text of this process.
async fn metrics(State(ctx): State<AppContext>) -> impl IntoResponse {
    let bus = ctx.state.bus.ready().await;
    let text = crate::metrics::scrape(&ctx.state.db, bus).await;
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text)
}
