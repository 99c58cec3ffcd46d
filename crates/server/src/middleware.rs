//! The layer every request passes: a request id, a tracing span, and the HTTP metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use axum::body::HttpBody as _;
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
    // way of the next request on the connection. It is read and dropped before the answer goes,
    // up to the body limit and for at most `DRAIN_WITHIN`; one longer or slower gets
    // `Connection: close`, so a client pooling connections does not send its next request down
    // one that is about to close.
    let read_to_end = Arc::new(AtomicBool::new(false));
    let has_body = !axum::body::HttpBody::is_end_stream(request.body());
    let (request, body) = if has_body {
        let (parts, inner) = request.into_parts();
        let inner = Arc::new(std::sync::Mutex::new(inner));
        let watched = Watched { inner: inner.clone(), read_to_end: read_to_end.clone() };
        (Request::from_parts(parts, axum::body::Body::new(watched)), Some(inner))
    } else {
        (request, None)
    };
    let answer = async move {
        if encoded {
            return crate::error::ApiError::unsupported_encoding().into_response();
        }
        next.run(request).await
    };
    let mut response = CONTEXT.scope(context, answer).instrument(span).await;
    if let Some(body) = body
        && !read_to_end.load(Ordering::Relaxed)
        && !drain(&body, state.config.body_limit_bytes).await
    {
        response.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let headers = response.headers_mut();
    headers.insert("x-request-id", HeaderValue::from(id));
    // API answers are a user's own data (and some carry a new token): no cache keeps them.
    if api && !headers.contains_key(axum::http::header::CACHE_CONTROL) {
        headers.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    state.metrics.record_request(method.as_str(), &route, response.status().as_u16(), started.elapsed());
    response
}

/// How long an unread request body may take to be read and dropped (see `track`).
const DRAIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads what is left of a request body and drops it; whether it ended within `limit` bytes and
/// [`DRAIN_WITHIN`].
async fn drain(body: &std::sync::Mutex<axum::body::Body>, limit: usize) -> bool {
    let mut body = match body.lock() {
        Ok(mut held) => std::mem::take(&mut *held),
        Err(_) => return false,
    };
    let mut read = 0usize;
    let reading = async {
        loop {
            let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
            match frame {
                None => return true,
                Some(Ok(frame)) => {
                    read += frame.data_ref().map_or(0, |data| data.len());
                    if read > limit {
                        return false;
                    }
                }
                Some(Err(_)) => return false,
            }
        }
    };
    tokio::time::timeout(DRAIN_WITHIN, reading).await.unwrap_or(false)
}

/// A request body that notes when it has been read to its end; the request's layer keeps a hold
/// of it, to drain what the handler left.
struct Watched {
    inner: Arc<std::sync::Mutex<axum::body::Body>>,
    read_to_end: Arc<AtomicBool>,
}

impl axum::body::HttpBody for Watched {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let Ok(mut inner) = self.inner.lock() else { return std::task::Poll::Ready(None) };
        let polled = std::pin::Pin::new(&mut *inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || inner.is_end_stream() {
            self.read_to_end.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.lock().map_or(true, |inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.lock().map(|inner| inner.size_hint()).unwrap_or_default()
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
