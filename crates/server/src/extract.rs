//! Request extractors that fail with problem details naming the offending field, where axum's own
//! rejections would only say "failed to deserialize".

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use store::PageRequest;

use crate::AppState;
use crate::error::ApiError;

/// A JSON body decoded into `T`; wrong syntax or types give a 400 naming the field.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<JsonBody<T>, ApiError> {
        if !declares_json(&request) {
            return Err(ApiError::unsupported_media_type("application/json"));
        }
        let bytes = read_body(request, state).await?;
        decode_json(&bytes).map(JsonBody)
    }
}

/// Whether the request says its body is JSON.
fn declares_json(request: &Request) -> bool {
    request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| {
        value.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// Like [`JsonBody`] for a request whose fields are all optional: no body at all (with or without
/// a content type) is the defaults. Only such requests take it; elsewhere an empty body is an
/// error, so a script whose body variable came out empty does not act on defaults (acknowledge
/// every cleared alarm, say).
pub struct JsonOrDefault<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for JsonOrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<JsonOrDefault<T>, ApiError> {
        let is_json = declares_json(&request);
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(JsonOrDefault(T::default()))
        } else if !is_json {
            Err(ApiError::unsupported_media_type("application/json"))
        } else {
            decode_json(&bytes).map(JsonOrDefault)
        }
    }
}

/// Reads the whole body, mapping an over-long one to 413, and one that does not arrive within
/// `http.header_timeout_seconds` to 408 (a client trickling a body must not hold a connection).
pub(crate) async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.config.body_limit_bytes;
    let within = std::time::Duration::from_secs(state.config.header_timeout_seconds);
    let read = tokio::time::timeout(within, Bytes::from_request(request, state))
        .await
        .map_err(|_| ApiError::request_timeout(within))?;
    read.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::bad_request("body", rejection.body_text())
        }
    })
}

/// Decodes JSON, naming the path of the first offending field on failure.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("body", "is empty; send a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(ObjectsOnly(&mut deserializer)).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = inner.to_string();
        // serde reports a missing field at its parent's path; name the field itself.
        let field = match message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
            Some(missing) if path == "." => missing.to_string(),
            Some(missing) => format!("{path}.{missing}"),
            // "?": a syntax error, where no field is known.
            None if path == "." || path == "?" => "body".to_string(),
            None => path,
        };
        let message = plain_message(&field, &strip_position(&message));
        ApiError::bad_request(field, message)
    })?;
    deserializer.end().map_err(|e| ApiError::bad_request("body", strip_position(&e.to_string())))?;
    Ok(value)
}

/// A body record is a JSON object: serde would also read a struct from an array of its fields in
/// order, which the API does not document and nobody should rely on.
struct ObjectsOnly<D>(D);

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for ObjectsOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

fn strip_position(message: &str) -> String {
    message.split(" at line ").next().unwrap_or(message).to_string()
}

/// What the person who sent a bad value of `field` needs to know, instead of a parser's inner
/// words.
fn plain_message(field: &str, message: &str) -> String {
    // The time crate's words for a malformed date or time ("the 'separator' component could not
    // be parsed" for a date where a time belongs). The API's dates are a calendar's holidays; every
    // other such field is an RFC 3339 time.
    const TIME: [&str; 4] = [
        "component could not be parsed",
        "component is out of range",
        "unexpected trailing characters",
        "a character literal was not valid",
    ];
    if TIME.iter().any(|words| message.contains(words)) {
        return if field.starts_with("holidays") {
            "must be a date, e.g. 2026-12-25".into()
        } else {
            "must be an RFC 3339 time with its UTC offset, e.g. 2026-12-01T18:00:00+08:00".into()
        };
    }
    if message == "invalid digit found in string" {
        return "must be a whole number (0 or more)".into();
    }
    message.to_string()
}

/// Query parameters decoded into `T`; unknown or malformed parameters give a 400 naming them.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<QueryParams<T>, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(QueryParams).map_err(|error| {
            let path = error.path().to_string();
            let message = error.into_inner().to_string();
            let field =
                if path == "." { message.split('`').nth(1).unwrap_or("query").to_string() } else { path };
            let message = plain_message(&field, &message);
            ApiError::bad_request(field, message)
        })
    }
}

/// A numeric id from the path; anything else is a 400 naming `id`.
pub struct Id(pub i64);

impl FromRequestParts<AppState> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Id, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("id", e.body_text()))?;
        match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Id(id)),
            _ => Err(ApiError::bad_request("id", "must be a positive integer")),
        }
    }
}

/// An optional RFC 3339 query parameter; a malformed one is a 400 naming `field`.
pub fn timestamp_param(field: &str, value: Option<&str>) -> Result<Option<model::Timestamp>, ApiError> {
    value
        .map(|text| {
            model::Timestamp::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
                ApiError::bad_request(field, "must be an RFC 3339 time, e.g. 2026-12-01T18:00:00+08:00")
            })
        })
        .transpose()
}

/// Default page length.
pub const DEFAULT_LIMIT: u32 = 50;
/// Longest page.
pub const MAX_LIMIT: u32 = 500;

/// Turns `limit` and `cursor` parameters into a store page request.
pub fn page_request(limit: Option<u32>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("limit", format!("must be from 1 to {MAX_LIMIT}")));
    }
    let after = match cursor {
        None | Some("") => None,
        Some(cursor) => Some(
            cursor
                .parse::<i64>()
                .ok()
                .filter(|id| *id >= 0)
                .ok_or_else(|| ApiError::bad_request("cursor", "not a cursor returned by this API"))?,
        ),
    };
    Ok(PageRequest { after, limit })
}

/// The cursor of a list ordered by a key before the id (a time in Unix ms): `"{key}.{id}"`, so
/// that the list goes on from (key, id) however the item at the cursor has changed since.
pub fn keyed_cursor(key: i64, id: i64) -> String {
    format!("{key}.{id}")
}

/// Splits a [`keyed_cursor`] into its id (as [`page_request`] reads it) and its key; `Err` when
/// it is not such a cursor.
pub fn split_keyed_cursor(cursor: &str) -> Result<(&str, i64), ()> {
    let (key, id) = cursor.split_once('.').ok_or(())?;
    // Both halves are numbers: an empty id would quietly start the list again.
    if id.parse::<u64>().is_err() {
        return Err(());
    }
    Ok((id, key.parse().map_err(|_| ())?))
}

/// A page of a list as sent to clients.
#[derive(Serialize)]
pub struct ListResponse<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> From<store::Page<T>> for ListResponse<T> {
    fn from(page: store::Page<T>) -> ListResponse<T> {
        ListResponse { items: page.items, next_cursor: page.next_cursor.map(|c| c.to_string()) }
    }
}
