//! The one place where errors become HTTP answers. Every error body is
//! `{"error": "<stable snake_case code>", "message": "<human text>"}`. 4xx only for the client's
//! fault (providers do not retry those); 503 for our own storage trouble (providers retry);
//! nothing internal leaks into a 5xx body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use roomledger_actors::ingest::IngestError;
use roomledger_actors::store::StoreError;
use serde::Serialize;

use crate::providers::{NormaliseError, VerifyError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Normalise(#[from] NormaliseError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the body could not be read: {0}")]
    BodyUnreadable(String),
    #[error("the body did not arrive within {limit_ms} ms")]
    BodyTimeout { limit_ms: u128 },
    #[error("content type {0:?} is not accepted here; send {1}")]
    UnsupportedMediaType(String, &'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("this API needs the token configured in [server] api_token")]
    Unauthorized,
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ApiError {
    /// The stable code in the body, also the `outcome` label for webhook metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Verify(VerifyError::Stale(_)) => "stale",
            ApiError::Verify(_) => "bad_signature",
            ApiError::Normalise(NormaliseError::Malformed(_)) => "malformed",
            ApiError::Ingest(IngestError::Overloaded) => "overloaded",
            ApiError::Ingest(_) => "unavailable",
            ApiError::Store(StoreError::InvalidCursor) => "bad_cursor",
            ApiError::Store(_) => "unavailable",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BodyUnreadable(_) => "malformed",
            ApiError::BodyTimeout { .. } => "request_timeout",
            ApiError::UnsupportedMediaType(..) => "unsupported_media_type",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Unavailable(_) => "unavailable",
        }
    }

    /// The `outcome` label of `roomledger_webhook_requests_total` for this rejection.
    pub fn outcome(&self) -> &'static str {
        match self.code() {
            "stale" => "stale",
            "bad_signature" => "bad_signature",
            "unsupported" | "unsupported_media_type" => "unsupported",
            "unavailable" | "overloaded" => "unavailable",
            _ => "malformed",
        }
    }

    fn message(&self) -> String {
        match self {
            // Storage details stay in the log; the client learns only that it should retry.
            ApiError::Ingest(IngestError::Unavailable(_))
            | ApiError::Store(StoreError::Sled(_)) => {
                "storage is temporarily unavailable; retry later".into()
            }
            ApiError::Store(StoreError::Corrupt(_))
            | ApiError::Store(StoreError::Unavailable(_)) => {
                "storage is temporarily unavailable; retry later".into()
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Verify(_) => StatusCode::UNAUTHORIZED,
            ApiError::Normalise(NormaliseError::Malformed(_)) => StatusCode::BAD_REQUEST,
            ApiError::Ingest(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(StoreError::InvalidCursor) => StatusCode::BAD_REQUEST,
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyUnreadable(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(..) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"roomledger\""),
            ));
        }
        response.json(ErrorBody {
            error: self.code(),
            message: self.message(),
        })
    }
}
