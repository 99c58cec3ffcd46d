//! One error type for every handler, rendered as RFC 9457 problem details. Client mistakes get a
//! precise body naming the field and are not logged as errors; internal failures get a generic
//! body and a server-side log line carrying the request id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::FieldError;
use serde::Serialize;
use store::StoreError;

use crate::middleware::RequestContext;

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error a handler returns; becomes a problem-details response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    /// Short stable slug naming the problem type, e.g. `validation`.
    kind: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    /// Seconds to wait before trying again, sent as `Retry-After`.
    retry_after: Option<u64>,
    /// The id of the record a conflict is with (an order number already in use): a client that
    /// sent the same order again learns which one it has.
    existing_id: Option<i64>,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    r#type: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    existing_id: Option<i64>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            kind,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            existing_id: None,
        }
    }

    /// Whether this is a conflict (409).
    pub(crate) fn is_conflict(&self) -> bool {
        self.status == StatusCode::CONFLICT
    }

    /// Names the record the conflict is with (`existing_id` in the body).
    pub(crate) fn with_existing(mut self, id: i64) -> ApiError {
        self.existing_id = Some(id);
        self
    }

    /// The input broke domain rules (422), one entry per offending field.
    pub fn validation(errors: Vec<FieldError>) -> ApiError {
        let detail = summarise(&errors);
        ApiError {
            errors,
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid input", detail)
        }
    }

    /// The request could not be read (400): bad JSON, wrong types, a malformed parameter.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        // Field names and messages may quote the input (an unknown field's name): cut them
        // short, so a huge name does not come back many times over.
        let errors = vec![FieldError::new(clip(field.into(), 100), clip(message.into(), 300))];
        let detail = summarise(&errors);
        ApiError {
            errors,
            ..ApiError::new(StatusCode::BAD_REQUEST, "bad-request", "Malformed request", detail)
        }
    }

    /// No valid credentials (401).
    pub fn unauthorized(detail: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required", detail)
    }

    /// Valid credentials, but not allowed: the role may not do this, a device not for another
    /// site, a cookie session not without the CSRF header (403).
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
    }

    /// Nothing at this address (404).
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// The request clashes with the stored state (409).
    pub fn conflict(field: Option<String>, detail: impl Into<String>) -> ApiError {
        let detail = detail.into();
        let errors = field.map(|f| vec![FieldError::new(f, detail.clone())]).unwrap_or_default();
        ApiError { errors, ..ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail) }
    }

    /// The record changed since the client read it (412): its `If-Match` names an older version.
    pub fn precondition_failed(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PRECONDITION_FAILED, "precondition-failed", "Precondition failed", detail)
    }

    /// The body is larger than allowed (413).
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
            format!("the request body must be at most {limit} bytes"),
        )
    }

    /// The body is compressed (`Content-Encoding`), which no endpoint takes (415).
    pub fn unsupported_encoding() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body uncompressed (without Content-Encoding)",
        )
    }

    /// The body is not in a format this endpoint takes (415).
    pub fn unsupported_media_type(expected: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("send the body as {expected}"),
        )
    }

    /// The method is not defined on this path (405).
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "see /api/v1/openapi.json",
        )
    }

    /// Something failed on our side (500). The cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        let request_id = RequestContext::current().map(|ctx| ctx.id);
        tracing::error!(request_id, error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed; see its log",
        )
    }

    /// The server cannot do this now (503), for the reason in `detail`; the client may retry.
    pub fn service_unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Unavailable", detail)
    }

    /// The request's body did not arrive within `within` (408).
    pub fn request_timeout(within: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request timeout",
            format!("the request's body did not arrive within {} s", within.as_secs()),
        )
    }

    /// Too many attempts (429): the client may try again after `wait`.
    pub fn too_many_requests(detail: impl Into<String>, wait: std::time::Duration) -> ApiError {
        ApiError {
            retry_after: Some(ceil_seconds(wait)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", "Too many requests", detail)
        }
    }

    /// The store was busy for longer than its timeout (503); the client may retry.
    fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Busy",
            "the store is busy; retry shortly",
        )
    }

    /// The HTTP status this error is sent with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Seconds to wait before trying again, for a 429.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }
}

/// Whole seconds, rounded up (a client that waits this long is not early), at least 1.
pub(crate) fn ceil_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// `text` cut to at most `max` characters, marked with "…" when cut.
fn clip(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max).collect();
    cut.push('…');
    cut
}

fn summarise(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound { entity, id } => {
                ApiError::not_found(format!("{entity} {id} does not exist"))
            }
            StoreError::Invalid(errors) => ApiError::validation(errors),
            StoreError::Conflict { field, message } => ApiError::conflict(field, message),
            StoreError::InRow { index, source } => {
                let mut inner = ApiError::from(*source);
                for error in &mut inner.errors {
                    error.field = format!("[{index}].{}", error.field);
                }
                inner.detail = format!("record {index}: {}", inner.detail);
                inner
            }
            error if error.is_retryable() => ApiError::unavailable(),
            // Nothing the client did wrong, and nothing to hide: the store cannot write now.
            error if error.is_storage_failure() => {
                log_storage_failure(&error);
                ApiError::service_unavailable(
                    "the store cannot write now (a full disk or a read-only file system); retry once an administrator has made room",
                )
            }
            error => ApiError::internal(error),
        }
    }
}

/// Logs that the store cannot write, at most once per 10 s with how many refusals went unlogged
/// since: a full disk refuses every write, and a line for each would fill what room the log has.
/// Shared by every path that answers a request with such a refusal.
pub(crate) fn log_storage_failure(error: &dyn std::fmt::Display) {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    static UNLOGGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let now = std::time::Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(10)) {
        UNLOGGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    *last = Some(now);
    let unlogged = UNLOGGED.swap(0, std::sync::atomic::Ordering::Relaxed);
    tracing::error!(%error, unlogged, "the store cannot write (logged at most every 10 s; `unlogged`: refusals since the last line)");
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        let context = RequestContext::current();
        let chinese = context.as_ref().is_some_and(|ctx| ctx.chinese);
        if chinese {
            self.in_chinese();
        }
        let body = ProblemBody {
            r#type: format!("urn:microfactory:problem:{}", self.kind),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            instance: context.as_ref().map(|ctx| ctx.path.clone()),
            field: self.errors.first().map(|e| e.field.as_str()),
            errors: &self.errors,
            request_id: context.map(|ctx| ctx.id),
            existing_id: self.existing_id,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if chinese {
            headers.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static("zh-HK"));
        }
        response
    }
}

impl ApiError {
    /// The detail and the field errors' messages in the dashboard's Chinese, where known.
    fn in_chinese(&mut self) {
        use crate::web::problems;
        let summarised = !self.errors.is_empty() && self.detail == summarise(&self.errors);
        // A conflict's detail is its one error's message; one that names its field ("number is
        // already in use") is said with the field's label.
        let named = self.status == StatusCode::CONFLICT
            && self.errors.first().is_some_and(|e| self.detail.starts_with(&format!("{} ", e.field)));
        self.detail = if summarised || named {
            let parts: Vec<String> =
                self.errors.iter().map(|e| problems::field_error(&e.field, &e.message)).collect();
            parts.join("；")
        } else {
            problems::message(&self.detail).unwrap_or_else(|| self.detail.clone())
        };
        for error in &mut self.errors {
            if let Some(message) = problems::message(&error.message) {
                error.message = message;
            }
        }
    }
}
