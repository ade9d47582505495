//! The one error type of the HTTP layer and its mapping to statuses and `{"error": "…"}` bodies.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::sentences::AUTH_ERROR;
use crate::{
    sentences::{
        INTERNAL_ERROR, OVERLOADED, PAYLOAD_TOO_LARGE, STORAGE_UNAVAILABLE, TOO_MANY_REQUESTS,
    },
    storage::StoreError,
};

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A sentence describing the problem.
    #[schema(example = "ID not found")]
    pub error: String,
}

/// What `Retry-After` tells a client when the store does not answer.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{AUTH_ERROR}")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{PAYLOAD_TOO_LARGE}")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{TOO_MANY_REQUESTS}")]
    TooManyRequests { retry_after_secs: u64 },
    /// The store did not answer: the client may retry shortly.
    #[error("{STORAGE_UNAVAILABLE}")]
    Unavailable,
    /// `MAX_CONCURRENT_REQUESTS` requests are in flight: the client may retry shortly.
    #[error("{OVERLOADED}")]
    Overloaded,
    /// The store failed: 503 when it did not answer (the client may retry shortly), else 500.
    /// The response carries the error as an extension, for the layer that counts and logs it.
    #[error("{}", store_sentence(.0))]
    Store(StoreError),
    /// An unexpected failure: the detail goes to the log, the client sees a generic sentence.
    #[error("{INTERNAL_ERROR}")]
    Internal(String),
}

fn store_sentence(err: &StoreError) -> &'static str {
    match err {
        StoreError::Unavailable(_) => STORAGE_UNAVAILABLE,
        _ => INTERNAL_ERROR,
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn not_found(sentence: &str) -> Self {
        Self::NotFound(sentence.to_owned())
    }

    pub fn unprocessable(sentence: impl Into<String>) -> Self {
        Self::Unprocessable(sentence.into())
    }
}

/// A pure conversion: the failure is counted and logged once, by the metrics layer, from the
/// response's [`StoreFailure`] extension.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// Set on the response of a request that a store failure ended.
#[derive(Clone, Debug)]
pub struct StoreFailure(pub StoreError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let status = self.status();
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            Self::Unavailable | Self::Overloaded | Self::Store(StoreError::Unavailable(_)) => {
                Some(UNAVAILABLE_RETRY_AFTER_SECS)
            }
            _ => None,
        };
        if let Self::Store(err) = self {
            response.extensions_mut().insert(StoreFailure(err));
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Gives every error response that a layer or axum itself produced (405, 408, 413 from the body
/// limit, a caught panic) the same JSON body as ours, so clients parse one error format.
pub async fn json_error_bodies<B>(response: Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response.map(axum::body::Body::new);
    }
    let sentence = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge.to_string(),
        StatusCode::INTERNAL_SERVER_ERROR => ApiError::Internal(String::new()).to_string(),
        other => other.canonical_reason().unwrap_or("Error").to_owned(),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&ErrorBody { error: sentence }).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}
