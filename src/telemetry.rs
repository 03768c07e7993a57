//! Logs and traces: the process's `tracing` subscriber, and the span, metrics and access log
//! line of every HTTP request.
//!
//! * Filter: `AGORA_LOG`, else `RUST_LOG`, else `info` (with SQL quiet).
//! * Format: human-readable text, or one JSON object per line (`AGORA_LOG_FORMAT=json`).
//! * Traces: exported over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, with the other standard `OTEL_*` variables
//!   honoured by the OpenTelemetry SDK (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//!   `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, `OTEL_SDK_DISABLED`); off otherwise. Spans of
//!   database statements (sea-orm's `tracing-spans`) and password hashes go to the exporter
//!   under the request that caused them; the log filter does not apply to the export.
//! * Requests ([`observe_requests`]): one span per request with its request id (the caller's
//!   `X-Request-Id`, or a new UUID, echoed in the response), route template and status; a W3C
//!   `traceparent` header continues the caller's trace; an access log line (target
//!   `agora::access`) and the HTTP metrics when it is answered.
//!
//! Nothing secret is logged: request bodies and headers other than the request id never are.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// What the log filter shows when neither `AGORA_LOG` nor `RUST_LOG` says otherwise.
const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn";
/// What is exported as traces: every info span, the database's included.
const TRACE_FILTER: &str = "info";

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes the spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered (at most a few seconds) and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            tracing::warn!(error = %err, "could not flush the last traces");
        }
    }
}

/// The log filter: `AGORA_LOG`, else `RUST_LOG`, else [`DEFAULT_FILTER`].
fn log_filter() -> EnvFilter {
    ["AGORA_LOG", "RUST_LOG"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .find_map(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER))
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Whether traces are exported: an OTLP endpoint is configured and the SDK not disabled.
fn export_wanted() -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    !disabled && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The tracer provider exporting over OTLP/HTTP from the tokio runtime (needs one running).
fn tracer_provider() -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig as _;
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default();
    if !protocol.is_empty() && protocol != "http/protobuf" {
        anyhow::bail!("OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: Agora exports http/protobuf");
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("agora");
    }
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    Ok(SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource.build()).build())
}

/// Where log lines go: standard output for the server, standard error for commands whose
/// output is their result (`agora users list | …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTo {
    Stdout,
    Stderr,
}

/// Installs the process's subscriber (call once, inside the tokio runtime).
pub fn init(format: LogFormat, to: LogTo) -> anyhow::Result<Telemetry> {
    let ansi = match to {
        LogTo::Stdout => std::io::IsTerminal::is_terminal(&std::io::stdout()),
        LogTo::Stderr => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let writer = move || -> Box<dyn std::io::Write> {
        match to {
            LogTo::Stdout => Box::new(std::io::stdout()),
            LogTo::Stderr => Box::new(std::io::stderr()),
        }
    };
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
    .with_filter(log_filter());
    let provider = if export_wanted() { Some(tracer_provider()?) } else { None };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer("agora")).with_filter(EnvFilter::new(TRACE_FILTER))
    });
    tracing_subscriber::registry().with(logs).with(traces).try_init()?;
    if provider.is_some() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Ok(Telemetry { provider })
}

/// The route label of a request: its route template, or `unmatched` (unknown paths, whatever
/// they are, make one label).
fn route(request: &Request) -> String {
    request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

/// The span, metrics and access log line of one request (after [`request_id_layers`]).
pub async fn observe_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = route(&request);
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        request_id = %request_id,
        http.response.status_code = tracing::field::Empty,
        graphql.operation.type = tracing::field::Empty,
        graphql.operation.name = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(request.headers()))
    });
    let _ = span.set_parent(parent);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.record("http.response.status_code", status);
    crate::metrics::http_request(method.as_str(), &route, status, elapsed);
    span.in_scope(|| {
        tracing::info!(
            target: "agora::access",
            method = %method,
            route = %route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = %request_id,
            "request"
        );
    });
    response
}

/// `X-Request-Id`: kept when the caller sends one, a new UUID otherwise; echoed in the
/// response. Apply outside [`observe_requests`].
pub fn request_id_layers() -> (SetRequestIdLayer<MakeRequestUuid>, PropagateRequestIdLayer) {
    (SetRequestIdLayer::x_request_id(MakeRequestUuid), PropagateRequestIdLayer::x_request_id())
}
