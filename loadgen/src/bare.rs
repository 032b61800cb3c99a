//! What the two bare servers the generator is measured against (`ceiling` and
//! `journal-floor`) share: their HTTP side is the same code, so the floor is exactly the ceiling
//! plus a journal.

use actix_web::HttpResponse;
use serde_json::{Value, json};

/// The body limit roomledger applies by default (`[server] max_body_bytes`).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// HTTP worker threads for a `--workers` of `requested`: 0 means one per core, as roomledger's
/// default.
pub fn worker_count(requested: usize) -> usize {
    match requested {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
}

/// Names the calling thread `http-worker`, as roomledger names its HTTP workers; call it where
/// actix builds the app, once on each worker's thread.
pub fn name_http_worker() {
    roomledger_actors::name_current_thread("http-worker");
}

/// Parses the body as JSON and drops the result, the ceiling's only work: the 400 answer for a
/// body that is not JSON, `None` for one that is.
pub fn refuse_malformed(body: &[u8]) -> Option<HttpResponse> {
    serde_json::from_slice::<Value>(body).err().map(|error| {
        HttpResponse::BadRequest().json(json!({
            "error": "malformed",
            "message": error.to_string(),
        }))
    })
}

/// The answer to an accepted body, the size and shape of roomledger's.
pub fn accepted() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "event": "participant_joined",
        "duplicate": false,
    }))
}
