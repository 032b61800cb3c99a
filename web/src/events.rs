//! `GET /api/v1/events?provider=&app=&room=&outcome=&limit=&cursor=`: the webhook log, newest
//! first. One entry per request that reached a webhook route, with its outcome; accepted ones
//! carry the journal seq their event is stored under. Entries are written in the background by
//! the engine's log writer, so the newest may show up a moment after their answer was sent.

use actix_web::{HttpResponse, web};
use roomledger_actors::metrics::OUTCOMES;
use roomledger_actors::store::{WebhookLogEntry, WebhookLogFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{decode_cursor, encode_cursor, limit, name, read_store, timestamp};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct EventsQuery {
    provider: Option<String>,
    app: Option<String>,
    room: Option<String>,
    outcome: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn entry_json(id: u64, entry: &WebhookLogEntry) -> Value {
    json!({
        "id": id,
        "at": timestamp(entry.at_ms),
        "provider": entry.provider,
        "app": entry.app,
        "event": entry.event,
        "event_id": entry.event_id,
        "room": entry.room,
        "outcome": entry.outcome,
        "status": entry.status,
        "source": entry.source,
        "body_bytes": entry.body_bytes,
        "seq": entry.seq,
    })
}

pub async fn events(
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let nonempty = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    let provider = match nonempty(&query.provider) {
        None => None,
        Some(p) => Some(
            roomledger_actors::model::Provider::parse(&p)
                .ok_or_else(|| ApiError::BadRequest(format!("unknown provider {p:?}")))?,
        ),
    };
    let outcome = nonempty(&query.outcome);
    if let Some(outcome) = &outcome
        && !OUTCOMES.contains(&outcome.as_str())
    {
        return Err(ApiError::BadRequest(format!(
            "`outcome` must be one of {}, not {outcome:?}",
            OUTCOMES.join(", ")
        )));
    }
    let room = nonempty(&query.room);
    if let Some(room) = &room {
        name("room name", room)?;
    }
    let filter = WebhookLogFilter {
        provider,
        app: nonempty(&query.app),
        room,
        outcome,
    };
    let limit = limit(query.limit)?;
    let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let page = read_store(&state, move |store| {
        store.webhook_log(&filter, limit, cursor.as_deref())
    })
    .await?;
    let events: Vec<Value> = page
        .items
        .iter()
        .map(|(id, entry)| entry_json(*id, entry))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "events": events,
        "next_cursor": page.next_cursor.as_deref().map(encode_cursor),
    })))
}
