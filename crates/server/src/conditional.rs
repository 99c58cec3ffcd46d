//! Conditional requests (RFC 9110 §13) on records (the paths read with `GET` and changed with
//! `PUT` or `DELETE`, `openapi::is_record`): a `GET` answers with a strong `ETag`, a digest of
//! its body, and `304` to an `If-None-Match` naming it; a `PUT` or `DELETE` with `If-Match` goes
//! ahead only while the record still has one of the tags it names (`412` otherwise). The record
//! is read again for that and the change made under the record's own lock, so two planners who
//! read the same version cannot both save their edit: the second is told to read it again (the
//! first gets the new version's tag with its answer). A
//! caller whose role may not make the change is told that (403) first, as everywhere, and learns
//! nothing of the record's version. Requests without `If-Match` are not held back.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::middleware::{Boxed, run, take_ready};

/// What the layer needs: the API's routes (to read a record again), the state (to know the
/// caller) and one lock per record being changed conditionally.
#[derive(Clone)]
pub(crate) struct Conditional {
    pub(crate) api: Router,
    pub(crate) state: AppState,
    pub(crate) locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Bodies of single records are small; a larger one gets no tag rather than a large buffer.
const MAX_TAGGED_BODY: usize = 4 << 20;

/// The layer (see the module docs), as a tower layer: a request that is not about a record goes
/// straight to the routes, with nothing boxed or cloned on the way (`axum::middleware::from_fn`
/// would, for every request of the API).
#[derive(Clone)]
pub(crate) struct ConditionalLayer(pub(crate) Arc<Conditional>);

impl<S> tower::Layer<S> for ConditionalLayer {
    type Service = ConditionalService<S>;

    fn layer(&self, inner: S) -> ConditionalService<S> {
        ConditionalService { inner, conditional: self.0.clone() }
    }
}

/// See [`ConditionalLayer`].
#[derive(Clone)]
pub(crate) struct ConditionalService<S> {
    inner: S,
    conditional: Arc<Conditional>,
}

impl<S> tower::Service<Request> for ConditionalService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Boxed>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .and_then(|p| p.as_str().strip_prefix("/api/v1"))
            .filter(|r| crate::openapi::is_record(r))
            .map(str::to_owned);
        let Some(route) = route else {
            return Either::Left(self.inner.call(request));
        };
        let ready = take_ready(&mut self.inner);
        let conditional = self.conditional.clone();
        Either::Right(Box::pin(async move { Ok(handle(&conditional, &route, request, Next(ready)).await) }))
    }
}

/// The routes below the layer, for one request.
struct Next<S>(S);

impl<S> Next<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    async fn run(self, request: Request) -> Response {
        run(self.0, request).await
    }
}

/// A request about the record at `route` (see the module docs).
async fn handle<S>(conditional: &Conditional, route: &str, request: Request, next: Next<S>) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    match *request.method() {
        Method::GET => {
            let wanted = request.headers().get(header::IF_NONE_MATCH).cloned();
            let response = next.run(request).await;
            let (response, tag) = tagged(response).await;
            match (tag, wanted) {
                (Some(tag), Some(wanted)) if names(&wanted, &tag, Comparison::Weak) => {
                    let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
                    not_modified.headers_mut().insert(header::ETAG, tag);
                    not_modified
                }
                _ => response,
            }
        }
        Method::PUT | Method::DELETE => {
            let Some(wanted) = request.headers().get(header::IF_MATCH).cloned() else {
                return next.run(request).await;
            };
            let (method, headers) = (request.method().clone(), request.headers().clone());
            if !may_change(&conditional.state, &method, headers, route).await {
                // The handler says why (401, 403).
                return next.run(request).await;
            }
            // The body is read before the record's lock is taken: a client sending it slowly
            // holds up nobody else's change of the record.
            let (parts, body) = request.into_parts();
            let config = &conditional.state.config;
            let within = std::time::Duration::from_secs(config.header_timeout_seconds);
            let bytes =
                match tokio::time::timeout(within, axum::body::to_bytes(body, config.body_limit_bytes)).await
                {
                    Err(_) => return ApiError::request_timeout(within).into_response(),
                    Ok(Err(_)) => {
                        return ApiError::payload_too_large(config.body_limit_bytes).into_response();
                    }
                    Ok(Ok(bytes)) => bytes,
                };
            let request = Request::from_parts(parts, Body::from(bytes));
            let path = request.uri().path().to_owned();
            let lock = record_lock(&conditional.locks, &path);
            let held = lock.lock().await;
            let get = read_again(&request);
            let current = match conditional.api.clone().oneshot(get).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let again = read_again(&request);
            let replaced = request.method() == Method::PUT;
            let response = if current.status() == StatusCode::NOT_FOUND {
                ApiError::precondition_failed("the record does not exist (any more)").into_response()
            } else if !current.status().is_success() {
                // Not to be read by this caller: the request answers for itself.
                next.run(request).await
            } else {
                match tagged(current).await.1 {
                    Some(tag) if names(&wanted, &tag, Comparison::Strong) => {
                        let mut response = next.run(request).await;
                        // The version the change made, still under the lock: the client's next
                        // conditional change needs no read first.
                        if replaced && response.status().is_success() {
                            let after = match conditional.api.clone().oneshot(again).await {
                                Ok(response) => response,
                                Err(never) => match never {},
                            };
                            if let Some(tag) = tagged(after).await.1 {
                                response.headers_mut().insert(header::ETAG, tag);
                            }
                        }
                        response
                    }
                    _ => ApiError::precondition_failed(
                        "the record changed since it was read (If-Match names an older version); read it again and redo the change",
                    )
                    .into_response(),
                }
            };
            drop(held);
            forget_if_unused(&conditional.locks, &path, lock);
            response
        }
        _ => next.run(request).await,
    }
}

/// Whether the caller's role may make this change, as the operation's documentation names them
/// (a test holds the documentation to what the handlers do).
async fn may_change(state: &AppState, method: &Method, headers: HeaderMap, route: &str) -> bool {
    let Some(roles) = crate::openapi::admitted_roles(method, route) else { return true };
    let mut parts = Request::new(()).into_parts().0;
    parts.headers = headers;
    match Principal::authenticate(&parts, state).await {
        Ok(principal) => roles.contains(&principal.user.role),
        Err(_) => false,
    }
}

/// The lock of the record at `path`, made when first needed.
fn record_lock(
    locks: &Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    path: &str,
) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    locks.entry(path.to_owned()).or_default().clone()
}

/// Forgets the lock of the record at `path` once nobody holds or waits for it (`ours` was the
/// last caller's), so the map stays as small as the changes in flight. Locks are only handed out
/// under the map's mutex, so none can be taken meanwhile.
fn forget_if_unused(
    locks: &Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    path: &str,
    ours: Arc<tokio::sync::Mutex<()>>,
) {
    let mut locks = locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    drop(ours);
    if locks.get(path).is_some_and(|kept| Arc::strong_count(kept) == 1) {
        locks.remove(path);
    }
}

/// A `GET` of the record `request` is about to change, by the same caller.
fn read_again(request: &Request) -> Request {
    let mut get = Request::new(Body::empty());
    *get.uri_mut() = request.uri().path().parse().unwrap_or_default();
    copy(request.headers(), get.headers_mut(), &[header::AUTHORIZATION, header::COOKIE]);
    get
}

fn copy(from: &HeaderMap, to: &mut HeaderMap, names: &[header::HeaderName]) {
    for name in names {
        if let Some(value) = from.get(name) {
            to.insert(name.clone(), value.clone());
        }
    }
}

/// A successful response with its strong tag added (and returned); others as they are.
async fn tagged(response: Response) -> (Response, Option<HeaderValue>) {
    if response.status() != StatusCode::OK {
        return (response, None);
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_TAGGED_BODY).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), None);
    };
    let tag = HeaderValue::from_str(&tag_of(&bytes)).ok();
    if let Some(tag) = &tag {
        parts.headers.insert(header::ETAG, tag.clone());
    }
    (Response::from_parts(parts, Body::from(bytes)), tag)
}

/// The strong tag of a record whose `GET` body is `body`: a page that shows a record and offers
/// to change it sends this as `If-Match`, so a change made since the page was drawn is not
/// overwritten unseen.
pub(crate) fn tag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// How tags compare (RFC 9110 §8.8.3.2): `If-Match` strongly (a weak `W/` tag never matches),
/// `If-None-Match` weakly (by the opaque part).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// Whether an `If-Match` or `If-None-Match` value names `tag`: `*`, or a list of tags.
fn names(wanted: &HeaderValue, tag: &HeaderValue, comparison: Comparison) -> bool {
    let (Ok(wanted), Ok(tag)) = (wanted.to_str(), tag.to_str()) else { return false };
    wanted.split(',').map(str::trim).any(|one| match (one.strip_prefix("W/"), comparison) {
        _ if one == "*" => true,
        (Some(_), Comparison::Strong) => false,
        (Some(opaque), Comparison::Weak) => opaque == tag,
        (None, _) => one == tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_matched_in_lists_and_by_star_weak_ones_only_for_reading() {
        let tag = HeaderValue::from_static("\"abc\"");
        for (wanted, strong, weak) in [
            ("\"abc\"", true, true),
            ("\"x\", \"abc\"", true, true),
            ("*", true, true),
            ("W/\"abc\"", false, true),
            ("\"abd\"", false, false),
            ("abc", false, false),
        ] {
            let wanted = HeaderValue::from_static(wanted);
            assert_eq!(names(&wanted, &tag, Comparison::Strong), strong, "{wanted:?}");
            assert_eq!(names(&wanted, &tag, Comparison::Weak), weak, "{wanted:?}");
        }
    }
}
