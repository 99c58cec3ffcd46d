//! Conditional requests (RFC 9110 §13) on single records: a `GET` of one record answers with a
//! strong `ETag`, a digest of its body, and `304` to an `If-None-Match` naming it; a `PUT` or
//! `DELETE` with `If-Match` goes ahead only while the record still has one of the tags it names
//! (`412` otherwise). The record is read again for that and the change made under one lock, so
//! two planners who read the same version cannot both save their edit: the second is told to
//! read it again. Requests without `If-Match` are not held back.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::error::ApiError;

/// What the layer needs: the API's routes (to read a record again) and the lock.
#[derive(Clone)]
pub(crate) struct Conditional {
    pub(crate) api: Router,
    pub(crate) lock: Arc<tokio::sync::Mutex<()>>,
}

/// Bodies of single records are small; a larger one gets no tag rather than a large buffer.
const MAX_TAGGED_BODY: usize = 4 << 20;

/// The layer (see the module docs).
pub(crate) async fn layer(State(conditional): State<Conditional>, request: Request, next: Next) -> Response {
    let one_record = request.extensions().get::<MatchedPath>().is_some_and(|p| p.as_str().ends_with('}'));
    if !one_record {
        return next.run(request).await;
    }
    match *request.method() {
        Method::GET => {
            let wanted = request.headers().get(header::IF_NONE_MATCH).cloned();
            let response = next.run(request).await;
            let (response, tag) = tagged(response).await;
            match (tag, wanted) {
                (Some(tag), Some(wanted)) if names(&wanted, &tag) => {
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
            let _held = conditional.lock.lock().await;
            let get = read_again(&request);
            let current = match conditional.api.clone().oneshot(get).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if !current.status().is_success() {
                // Not there, or not to be read by this caller: the request answers for itself.
                return match current.status() {
                    StatusCode::NOT_FOUND => {
                        ApiError::precondition_failed("the record does not exist (any more)").into_response()
                    }
                    _ => next.run(request).await,
                };
            }
            let (_, tag) = tagged(current).await;
            match tag {
                Some(tag) if names(&wanted, &tag) => next.run(request).await,
                _ => ApiError::precondition_failed(
                    "the record changed since it was read (If-Match names an older version); read it again and redo the change",
                )
                .into_response(),
            }
        }
        _ => next.run(request).await,
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
    let digest = Sha256::digest(&bytes);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let tag = HeaderValue::from_str(&format!("\"{hex}\"")).ok();
    if let Some(tag) = &tag {
        parts.headers.insert(header::ETAG, tag.clone());
    }
    (Response::from_parts(parts, Body::from(bytes)), tag)
}

/// Whether an `If-Match` or `If-None-Match` value names `tag`: `*`, or a list of tags (a weak
/// `W/` one compares by its opaque part, as `If-None-Match` does).
fn names(wanted: &HeaderValue, tag: &HeaderValue) -> bool {
    let (Ok(wanted), Ok(tag)) = (wanted.to_str(), tag.to_str()) else { return false };
    wanted.split(',').map(str::trim).any(|one| one == "*" || one.trim_start_matches("W/") == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_matched_in_lists_and_by_star() {
        let tag = HeaderValue::from_static("\"abc\"");
        for (wanted, matches) in [
            ("\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("W/\"abc\"", true),
            ("\"abd\"", false),
            ("abc", false),
        ] {
            assert_eq!(names(&HeaderValue::from_static(wanted), &tag), matches, "{wanted}");
        }
    }
}
