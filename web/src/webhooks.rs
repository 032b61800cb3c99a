//! Webhook routes: the raw body (size-capped) → the provider adapter's `verify` → `normalise`
//! → `Ingest::submit` (dedupe, journal, group commit) → 2xx. Every provider goes through
//! [`receive`], so the order of these steps, the error mapping, the metrics and the webhook log
//! entry are the same for all of them. A 2xx is only ever sent once `submit` said the event is
//! durable, except for a verified challenge (Twitch), which asks for nothing to be kept.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use roomledger_actors::ingest::Outcome;
use roomledger_actors::store::WebhookLogEntry;
use serde::Serialize;

use crate::error::ApiError;
use crate::providers::{Adapter, Delivery};
use crate::state::AppState;

#[derive(Serialize)]
struct Acknowledged<'a> {
    status: &'static str,
    event: &'a str,
    duplicate: bool,
}

pub async fn agora(
    state: web::Data<AppState>,
    app_id: web::Path<String>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    receive(&state, &state.agora, Some(&app_id), &request, body).await
}

pub async fn livekit(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    receive(&state, &state.livekit, None, &request, body).await
}

pub async fn plugnmeet(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    receive(&state, &state.plugnmeet, None, &request, body).await
}

pub async fn twitch(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    receive(&state, &state.twitch, None, &request, body).await
}

pub async fn twitch_app(
    state: web::Data<AppState>,
    app: web::Path<String>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    receive(&state, &state.twitch, Some(&app), &request, body).await
}

pub async fn acrcloud(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    receive(&state, &state.acrcloud, None, &request, body).await
}

/// What became of a request that got past verification.
enum Handled {
    /// A challenge, answered with this text and not journaled.
    Challenge(String),
    /// Events submitted to the journal.
    Events {
        times: Vec<i64>,
        outcomes: Vec<Outcome>,
    },
}

/// What the webhook log learns about a request as it goes through the pipeline.
#[derive(Default)]
struct Seen {
    app: Option<String>,
    event: Option<String>,
    event_id: Option<String>,
    room: Option<String>,
    body_bytes: u64,
}

/// The one webhook pipeline. Records the outcome and the ack latency of every request, and
/// gives the webhook log exactly one entry per request, here, where the outcome is decided.
pub async fn receive<A: Adapter>(
    state: &AppState,
    adapter: &A,
    path_app: Option<&str>,
    request: &HttpRequest,
    mut payload: web::Payload,
) -> HttpResponse {
    let started = Instant::now();
    let received_ms = roomledger_actors::now_ms();
    let provider = A::PROVIDER.as_str();
    let metrics = &state.engine.metrics;
    let mut seen = Seen {
        app: path_app.map(str::to_owned),
        // What the request announced, until the body is read.
        body_bytes: request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        ..Seen::default()
    };
    let result = async {
        crate::api::decodable_target(request.uri())?;
        check_content_type::<A>(request)?;
        let body = read_body(
            request,
            &mut payload,
            state.max_body_bytes,
            state.body_timeout,
        )
        .await?;
        seen.body_bytes = body.len() as u64;
        let query = request.query_string();
        let delivery = Delivery {
            headers: request.headers(),
            body: &body,
            path_app,
            query: (!query.is_empty()).then_some(query),
            received_ms,
        };
        let verified = adapter.verify(&delivery)?;
        seen.app = Some(verified.app.clone());
        if let Some(challenge) = adapter.challenge(&verified, &body) {
            seen.event = Some("webhook_callback_verification".into());
            return Ok(Handled::Challenge(challenge));
        }
        let events = adapter.normalise(&verified, &body)?;
        if let Some(first) = events.first() {
            seen.event = Some(first.kind.name().to_owned());
            seen.event_id = Some(first.id.clone());
            seen.room = Some(first.room.room.clone()).filter(|room| !room.is_empty());
        }
        let times: Vec<i64> = events.iter().map(|e| e.at_ms).collect();
        let outcomes = state.engine.ingest.submit(events, received_ms).await?;
        Ok::<_, ApiError>(Handled::Events { times, outcomes })
    }
    .await;
    let (response, outcome, seq) = match result {
        Ok(Handled::Challenge(challenge)) => {
            tracing::info!(provider, app = ?seen.app, "subscription verification answered");
            let response = HttpResponse::Ok()
                .content_type("text/plain")
                .body(challenge);
            (response, "challenge", None)
        }
        Ok(Handled::Events { times, outcomes }) => {
            let duplicate = outcomes.iter().all(|o| *o == Outcome::Duplicate);
            let outcome = if duplicate { "duplicate" } else { "accepted" };
            let seq = outcomes.iter().find_map(|o| match o {
                Outcome::Accepted { seq } => Some(*seq),
                Outcome::Duplicate => None,
            });
            if !duplicate {
                observe_events(state, provider, &times, received_ms);
            }
            let event = seen.event.as_deref().unwrap_or("none");
            tracing::debug!(provider, event, duplicate, "webhook accepted");
            let response = HttpResponse::Ok().json(Acknowledged {
                status: "ok",
                event,
                duplicate,
            });
            (response, outcome, seq)
        }
        Err(error) => {
            let peer = request
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            match &error {
                ApiError::Ingest(_) | ApiError::Store(_) => {
                    tracing::error!(provider, %peer, %error, "webhook not acknowledged")
                }
                _ => {
                    tracing::warn!(provider, %peer, code = error.code(), %error, "webhook rejected")
                }
            }
            let mut response = actix_web::ResponseError::error_response(&error);
            if matches!(error, ApiError::BodyTimeout { .. }) {
                response = close_after(response, payload);
            }
            (response, error.outcome(), None)
        }
    };
    metrics
        .webhook_requests
        .with_label_values(&[provider, outcome])
        .inc();
    state.engine.webhook_log.record(WebhookLogEntry {
        at_ms: received_ms,
        provider: A::PROVIDER,
        app: seen.app,
        event: seen.event,
        event_id: seen.event_id,
        room: seen.room,
        outcome: outcome.to_owned(),
        status: response.status().as_u16(),
        source: request.peer_addr().map(|a| a.ip().to_string()),
        body_bytes: seen.body_bytes,
        seq,
    });
    metrics
        .webhook_duration
        .with_label_values(&[provider])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Delivery lag and the time of the last event, for the ingestion-health panels.
fn observe_events(state: &AppState, provider: &str, event_times: &[i64], received_ms: i64) {
    let metrics = &state.engine.metrics;
    for &at_ms in event_times.iter().filter(|&&at| at > 0) {
        let lag = (received_ms - at_ms).max(0) as f64 / 1000.0;
        metrics
            .delivery_lag
            .with_label_values(&[provider])
            .observe(lag);
    }
    metrics
        .last_event_timestamp
        .with_label_values(&[provider])
        .set(received_ms / 1000);
}

fn check_content_type<A: Adapter>(request: &HttpRequest) -> Result<(), ApiError> {
    let mut values = request.headers().get_all(header::CONTENT_TYPE);
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "Content-Type is sent more than once".into(),
        ));
    }
    let text = value.to_str().unwrap_or_default();
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if A::CONTENT_TYPES.contains(&essence.as_str()) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            text.to_owned(),
            A::CONTENT_TYPES
                .first()
                .copied()
                .unwrap_or("application/json"),
        ))
    }
}

/// Reads the whole body, refusing more than `limit` bytes before reading them where the
/// length is announced, and as soon as the limit is passed where it is not. The whole body must
/// arrive within `deadline`, however it is sent: a client that trickles it (or announces more
/// than it sends) gets 408 instead of holding the request open.
async fn read_body(
    request: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
    deadline: Duration,
) -> Result<web::Bytes, ApiError> {
    tokio::time::timeout(deadline, read_body_within(request, payload, limit))
        .await
        .unwrap_or(Err(ApiError::BodyTimeout {
            limit_ms: deadline.as_millis(),
        }))
}

async fn read_body_within(
    request: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    if let Some(length) = request.headers().get(header::CONTENT_LENGTH) {
        let length: usize = length
            .to_str()
            .ok()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| ApiError::BadRequest("Content-Length is not a number".into()))?;
        if length > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BodyUnreadable(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `response`, made to close its connection once sent. actix reads the rest of a chunked body
/// that a handler dropped unread, to reuse the connection; after a body timeout that would let
/// the slow client keep the connection for as long as it trickles. While the payload is still
/// held when the answer goes out, actix closes the connection instead, so the answer's body
/// keeps it until then.
fn close_after(response: HttpResponse, payload: web::Payload) -> HttpResponse {
    response.map_body(|_, body| {
        BoxBody::new(HoldingPayload {
            body,
            _payload: payload,
        })
    })
}

struct HoldingPayload {
    body: BoxBody,
    _payload: web::Payload,
}

impl MessageBody for HoldingPayload {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
