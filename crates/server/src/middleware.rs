//! The layer every request passes: a request id, a tracing span, and the HTTP metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::AppState;

/// What a handler may want to know about the request it serves, without threading it through.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// Unique within the process, echoed in the `x-request-id` header and in problem details.
    pub id: u64,
    /// The request path, without the query.
    pub path: String,
    /// A call of the dashboard's script (it sends the CSRF header) from a page in Chinese: its
    /// problem details are in Chinese too (`web::problems`).
    pub(crate) chinese: bool,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

impl RequestContext {
    /// The context of the request this task serves, if any.
    pub fn current() -> Option<RequestContext> {
        CONTEXT.try_with(Clone::clone).ok()
    }
}

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// Wraps every request: assigns the id, records duration and status per route.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let chinese = request.headers().contains_key(crate::auth::CSRF_HEADER)
        && crate::web::lang_of(request.headers()) == crate::web::i18n::Lang::ZhHk;
    let context = RequestContext { id, path: request.uri().path().to_string(), chinese };
    let api = context.path.starts_with("/api/");
    let span = tracing::debug_span!("request", id, %method, route = %route);
    // Bodies are read as sent: a compressed one would be taken for garbage (a CSV "not UTF-8").
    let encoded = request
        .headers()
        .get(axum::http::header::CONTENT_ENCODING)
        .is_some_and(|value| !value.as_bytes().eq_ignore_ascii_case(b"identity"));
    let answer = async move {
        if encoded {
            return crate::error::ApiError::unsupported_encoding().into_response();
        }
        next.run(request).await
    };
    let mut response = CONTEXT.scope(context, answer).instrument(span).await;
    let headers = response.headers_mut();
    headers.insert("x-request-id", HeaderValue::from(id));
    // API answers are a user's own data (and some carry a new token): no cache keeps them.
    if api && !headers.contains_key(axum::http::header::CACHE_CONTROL) {
        headers.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    state.metrics.record_request(method.as_str(), &route, response.status().as_u16(), started.elapsed());
    response
}

/// The future of a tower layer's service for the requests it works on (the others go to the
/// routes below with their own future, unboxed).
pub(crate) type Boxed =
    std::pin::Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

/// The service below a layer, polled ready, to go with one request; a fresh clone stays behind
/// for the next.
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let fresh = inner.clone();
    std::mem::replace(inner, fresh)
}

/// Serves `request` with `service` (the routes below a layer, which never fail).
pub(crate) async fn run<S>(service: S, request: Request) -> Response
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    use tower::ServiceExt;
    match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
