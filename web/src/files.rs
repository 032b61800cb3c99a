//! `GET /api/v1/files/acrcloud/{file_id}`: an ACRCloud file's latest scan state and every
//! callback that reported on it, in the order they arrived. Read from the records the store keeps (the
//! callbacks are journaled like any event, then written as records).

use actix_web::{HttpResponse, web};
use roomledger_actors::model::Provider;
use roomledger_actors::store::FileCallback;
use serde_json::{Value, json};

use crate::api::{name, provider, read_store, timestamp};
use crate::error::ApiError;
use crate::state::AppState;

fn callback_json(callback: &FileCallback) -> Value {
    let scan = &callback.scan;
    json!({
        "state": scan.state,
        "state_name": scan.state_name(),
        "matches": scan.matches,
        "container": scan.container,
        "name": scan.name,
        "received_at": timestamp(callback.received_ms),
        "seq": callback.seq,
    })
}

pub async fn file(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.0)?;
    if provider != Provider::Acrcloud {
        return Err(ApiError::NotFound(format!(
            "{provider} has no files; only acrcloud does"
        )));
    }
    let file_id = name("file id", &path.1)?.to_owned();
    let lookup = file_id.clone();
    let callbacks =
        read_store(&state, move |store| store.file_callbacks(provider, &lookup)).await?;
    // A late "processing" callback (deliveries are not ordered) does not undo a final state.
    let latest = callbacks
        .iter()
        .rev()
        .find(|c| c.scan.state != 0)
        .or(callbacks.last());
    let Some(latest) = latest else {
        return Err(ApiError::NotFound(format!(
            "no callback has reported on file {file_id:?}"
        )));
    };
    Ok(HttpResponse::Ok().json(json!({
        "provider": provider,
        "file_id": file_id,
        "name": latest.scan.name,
        "container": latest.scan.container,
        "state": latest.scan.state,
        "state_name": latest.scan.state_name(),
        "matches": latest.scan.matches,
        "updated_at": timestamp(latest.received_ms),
        "callbacks": callbacks.iter().map(callback_json).collect::<Vec<_>>(),
    })))
}
