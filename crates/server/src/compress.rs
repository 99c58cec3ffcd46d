//! Gzip for large answers. A page, JSON document, script, style sheet or CSV file of 1 KiB or
//! more goes gzip-compressed to a client that accepts gzip: a plan's page of 10,000 orders is
//! megabytes of HTML, and tablets and head offices reach the platform over Wi-Fi and WAN links.
//! Streams (server-sent events, anything without a known length) pass as they are, and so do
//! answers with an `ETag` (a strong tag names one encoding's bytes; records are small anyway) and
//! answers already encoded (a plan's stored problem).

use std::convert::Infallible;
use std::io::Write;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;

use crate::middleware::{Boxed, run, take_ready};

use crate::error::ApiError;

/// Smaller answers go as they are: the gzip frame and a second round trip of work cost more.
const MIN_BYTES: u64 = 1024;
/// Larger answers go as they are (none is this large; the bound keeps memory bounded).
const MAX_BYTES: u64 = 64 << 20;
/// Answers from this size on are compressed on the blocking pool, off the request threads.
const BLOCKING_FROM: usize = 64 << 10;

/// The layer (see the module docs), as a tower layer: a request from a client that does not take
/// gzip goes straight to the routes, with nothing boxed or cloned on the way
/// (`axum::middleware::from_fn` would, for every request).
#[derive(Clone, Copy)]
pub(crate) struct GzipLayer;

impl<S> tower::Layer<S> for GzipLayer {
    type Service = GzipService<S>;

    fn layer(&self, inner: S) -> GzipService<S> {
        GzipService { inner }
    }
}

/// See [`GzipLayer`].
#[derive(Clone)]
pub(crate) struct GzipService<S> {
    inner: S,
}

impl<S> tower::Service<Request> for GzipService<S>
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
        if !accepts_gzip(request.headers()) {
            return Either::Left(self.inner.call(request));
        }
        let ready = take_ready(&mut self.inner);
        Either::Right(Box::pin(async move { Ok(gzip(run(ready, request).await).await) }))
    }
}

/// `response` gzipped when it is worth it (see the module docs), for a client that takes gzip.
async fn gzip(mut response: Response) -> Response {
    if !compressible(&response) {
        return response;
    }
    response.headers_mut().append(header::VARY, HeaderValue::from_static("accept-encoding"));
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BYTES as usize).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return ApiError::internal(format!("reading an answer to compress it: {error}")).into_response();
        }
    };
    let compressed = if bytes.len() >= BLOCKING_FROM {
        let bytes = bytes.clone();
        tokio::task::spawn_blocking(move || encode(&bytes)).await.unwrap_or_default()
    } else {
        encode(&bytes)
    };
    if compressed.is_empty() || compressed.len() >= bytes.len() {
        return Response::from_parts(parts, Body::from(bytes));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    Response::from_parts(parts, Body::from(compressed))
}

/// Whether an answer is worth compressing: a text type, a known length from 1 KiB, not encoded
/// yet and without a tag.
fn compressible(response: &Response) -> bool {
    let headers = response.headers();
    if headers.contains_key(header::CONTENT_ENCODING) || headers.contains_key(header::ETAG) {
        return false;
    }
    let Some(length) = response.body().size_hint().exact() else { return false };
    if !(MIN_BYTES..=MAX_BYTES).contains(&length) {
        return false;
    }
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let kind = kind.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    (kind.starts_with("text/") && kind != "text/event-stream")
        || matches!(
            kind.as_str(),
            "application/json" | "application/problem+json" | "application/javascript" | "image/svg+xml"
        )
}

/// Whether `Accept-Encoding` takes gzip (RFC 9110 §12.5.3): named with a weight above 0, or
/// `*` with one and gzip not named.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut fields = item.split(';');
            let coding = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = fields
                .filter_map(|f| f.trim().strip_prefix("q=").or_else(|| f.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => return weight > 0.0,
                "*" => star = weight > 0.0,
                _ => {}
            }
        }
    }
    star
}

/// `bytes` gzip-compressed at the fastest level (HTML and JSON still shrink five- to tenfold);
/// empty if that failed, which writing to memory does not.
fn encode(bytes: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
    encoder.write_all(bytes).and_then(|()| encoder.finish()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn gzip_is_taken_when_named_with_a_weight_or_covered_by_a_star() {
        assert!(accepts_gzip(&with("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("*, gzip;q=0")));
        assert!(!accepts_gzip(&with("identity")));
        assert!(!accepts_gzip(&with("deflate, br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
