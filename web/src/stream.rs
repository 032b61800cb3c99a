//! `GET /api/v1/stream`: server-sent events of live room changes. (Being written for the web
//! page issue.)

use actix_web::HttpResponse;

use crate::error::ApiError;

pub async fn stream() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(
        "the live stream is not available yet".into(),
    ))
}
