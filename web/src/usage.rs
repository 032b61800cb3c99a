//! `GET /api/v1/usage`: participant minutes and session counts per day, room or participant.
//! (Being written for the metrics issue.)

use actix_web::HttpResponse;

use crate::error::ApiError;

pub async fn usage() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(
        "usage reports are not available yet".into(),
    ))
}
