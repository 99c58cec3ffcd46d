//! The layer every request passes: a request id, a tracing span, and the HTTP metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    // A body left unread (a request refused before its handler read it: 401, 403, 415…) is in the
    // way of the next request on the connection, and the server may drop the connection for it.
    // Such an answer says `Connection: close`, so a client pooling connections does not send
    // its next request down one that is about to close.
    let read_to_end = Arc::new(AtomicBool::new(false));
    let has_body = !axum::body::HttpBody::is_end_stream(request.body());
    let request = if has_body {
        let read_to_end = read_to_end.clone();
        request.map(|inner| axum::body::Body::new(Watched { inner, read_to_end }))
    } else {
        request
    };
    let answer = async move {
        if encoded {
            return crate::error::ApiError::unsupported_encoding().into_response();
        }
        next.run(request).await
    };
    let mut response = CONTEXT.scope(context, answer).instrument(span).await;
    let headers = response.headers_mut();
    headers.insert("x-request-id", HeaderValue::from(id));
    if has_body && !read_to_end.load(Ordering::Relaxed) {
        headers.insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    // API answers are a user's own data (and some carry a new token): no cache keeps them.
    if api && !headers.contains_key(axum::http::header::CACHE_CONTROL) {
        headers.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    state.metrics.record_request(method.as_str(), &route, response.status().as_u16(), started.elapsed());
    response
}

/// A request body that notes when it has been read to its end.
struct Watched {
    inner: axum::body::Body,
    read_to_end: Arc<AtomicBool>,
}

impl axum::body::HttpBody for Watched {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read_to_end.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
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
