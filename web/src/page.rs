//! The live web page, embedded in the binary. (Being written for the web page issue.)

use actix_web::HttpResponse;

pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>roomledger</title><p>roomledger is running.")
}
