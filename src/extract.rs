//! Body extractors that answer bad input with our JSON errors instead of axum's plain text.
//!
//! - broken JSON: 400; a field of the wrong type or a bad value: 422 naming the field;
//! - a content type other than JSON (or form, where accepted): 415;
//! - a body over the limit: 413.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::header,
};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::{Deserialize, de::DeserializeOwned};

use crate::{error::ApiError, limits::BODY_LIMIT};

/// A body given as JSON or as an HTML form (`application/x-www-form-urlencoded`) with the same
/// field names, as the billing service of the indication program posts forms. An empty body
/// with no content type counts as an empty form, so that a field check answers instead of a
/// content-type error.
pub struct JsonOrForm<T>(pub T);

enum BodyKind {
    Json,
    Form,
    Empty,
    Other,
}

fn body_kind(req: &Request) -> BodyKind {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some("application/json") => BodyKind::Json,
        Some(ct) if ct.starts_with("application/") && ct.ends_with("+json") => BodyKind::Json,
        Some("application/x-www-form-urlencoded") => BodyKind::Form,
        None | Some("") => BodyKind::Empty,
        Some(_) => BodyKind::Other,
    }
}

async fn read_bytes(req: Request) -> Result<Bytes, ApiError> {
    read_body(req.into_body()).await
}

/// Reads a whole body. Past [`BODY_LIMIT`] the rest is read and dropped (up to the outer
/// [`crate::limits::DRAIN_LIMIT`] guard) before answering 413: a server that answers before the
/// client has finished sending resets the connection, and the client never sees the 413. A body
/// that breaks off (not for its size) is 400.
pub async fn read_body(body: axum::body::Body) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut body = BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(_) if total > BODY_LIMIT => return Err(ApiError::PayloadTooLarge),
            Err(err) if is_length_limit(&err) => return Err(ApiError::PayloadTooLarge),
            Err(err) => {
                return Err(ApiError::BadRequest(format!(
                    "Could not read the request body: {err}"
                )));
            }
        };
        total = total.saturating_add(chunk.len());
        if total <= BODY_LIMIT {
            body.extend_from_slice(&chunk);
        }
    }
    if total > BODY_LIMIT {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(body.freeze())
}

/// Whether a body error comes from the outer size guard.
fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

/// Parses JSON; syntax errors are 400, type and value errors 422 with the field's path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::Unprocessable(field_message(&path, &inner))
            }
            _ => malformed(&inner),
        }
    })?;
    de.end().map_err(|err| malformed(&err))?;
    Ok(value)
}

fn malformed(err: &serde_json::Error) -> ApiError {
    ApiError::BadRequest(format!("Malformed JSON body: {err}"))
}

fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        ApiError::Unprocessable(field_message(&path, err.inner()))
    })
}

fn field_message(path: &str, inner: &dyn std::fmt::Display) -> String {
    // serde_json appends " at line 1 column 30"; the field name says more to an API client.
    let detail = inner.to_string();
    let detail = detail
        .split(" at line ")
        .next()
        .unwrap_or(&detail)
        .to_owned();
    if path.is_empty() || path == "." {
        format!("Invalid request body: {detail}")
    } else {
        format!("Invalid field `{path}`: {detail}")
    }
}

impl<T, S> FromRequest<S> for JsonOrForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let kind = body_kind(&req);
        let bytes = read_bytes(req).await?;
        match kind {
            BodyKind::Json => parse_json(&bytes).map(Self),
            BodyKind::Form => parse_form(&bytes).map(Self),
            BodyKind::Empty if bytes.is_empty() => parse_form(&bytes).map(Self),
            BodyKind::Empty | BodyKind::Other => Err(ApiError::UnsupportedMediaType(
                "Content-Type must be application/json or application/x-www-form-urlencoded"
                    .to_owned(),
            )),
        }
    }
}

/// A JSON body that should be an object, for routes that answer a bad body with a sentence of
/// their own: `None` when the body is broken JSON or not an object. An empty body with no
/// content type is an empty object; another content type is 415.
pub struct JsonObject(pub Option<serde_json::Map<String, serde_json::Value>>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let kind = body_kind(&req);
        let bytes = read_bytes(req).await?;
        match kind {
            BodyKind::Json => Ok(Self(match serde_json::from_slice(&bytes) {
                Ok(serde_json::Value::Object(map)) => Some(map),
                _ => None,
            })),
            BodyKind::Empty if bytes.is_empty() => Ok(Self(Some(serde_json::Map::new()))),
            _ => Err(ApiError::UnsupportedMediaType(
                "Content-Type must be application/json".to_owned(),
            )),
        }
    }
}

/// The fields of a JSON object body as typed input `T`, whose fields are [`Sent`] values that
/// the handler then judges one by one with its own sentences. Fails only for what `T` refuses
/// outright (an unknown key, with `deny_unknown_fields`).
pub fn fields<T: DeserializeOwned>(
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::Value::Object(body))
}

/// What a client sent under one key of a JSON object: `None` when the key is absent, else the
/// value as it is (`null` included). Fields of this type take
/// `#[serde(default, deserialize_with = "crate::extract::sent")]`.
pub type Sent = Option<serde_json::Value>;

pub fn sent<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Sent, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// A string field of a JSON object.
#[derive(Debug, PartialEq, Eq)]
pub enum Field {
    /// Absent, null, or blank.
    Missing,
    Text(String),
    /// Present with another type (object, array, number, boolean).
    WrongType,
}

impl Field {
    pub fn of(map: &serde_json::Map<String, serde_json::Value>, key: &str) -> Self {
        Self::from_sent(map.get(key))
    }

    pub fn from_sent(value: Option<&serde_json::Value>) -> Self {
        match value {
            None | Some(serde_json::Value::Null) => Self::Missing,
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => Self::Missing,
            Some(serde_json::Value::String(s)) => Self::Text(s.trim().to_owned()),
            Some(_) => Self::WrongType,
        }
    }
}

/// A query parameter that cannot be used: 422 naming it.
pub fn bad_query(parameter: &str) -> ApiError {
    ApiError::unprocessable(format!("Query parameter `{parameter}` is not valid"))
}

/// Query parameters parsed into `T`, the type the API description documents
/// (`utoipa::IntoParams`): a parameter that does not parse is 422 naming it; unknown ones are
/// ignored.
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|err| bad_query(&err.path().to_string()))
    }
}

/// A page size of 1 to `MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit<const MAX: usize>(usize);

impl<const MAX: usize> Limit<MAX> {
    pub fn get(self) -> usize {
        self.0
    }

    /// The size asked for, or `default`.
    pub fn or(limit: Option<Self>, default: usize) -> usize {
        limit.map_or(default, Self::get)
    }
}

impl<'de, const MAX: usize> serde::Deserialize<'de> for Limit<MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = usize::deserialize(deserializer)?;
        if (1..=MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(serde::de::Error::custom(format!("must be 1 to {MAX}")))
        }
    }
}
