//! The read API (design §4): live rooms from the live index, one room from its actor, finished
//! sessions and room history from the store, health and metrics. JSON everywhere; timestamps as
//! RFC 3339 UTC strings with milliseconds; durations in seconds. Lists page by an opaque cursor.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use roomledger_actors::live::{RoomCursor, RoomFilter};
use roomledger_actors::model::{ParticipantSession, Provider, RoomKey, RoomSession};
use roomledger_actors::room::RoomView;
use roomledger_actors::store::{Page, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::ApiError;
use crate::state::AppState;

/// Longest room, app or participant name accepted in a path.
pub const MAX_NAME_BYTES: usize = 512;
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// Unix milliseconds as an RFC 3339 UTC timestamp, always with milliseconds.
pub fn timestamp(ms: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into())
}

/// Parses a query time: RFC 3339, or whole unix seconds.
pub(crate) fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<i64>()
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| ApiError::BadRequest(format!("`{name}` is out of range")));
    }
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "`{name}` must be an RFC 3339 time like 2026-01-31T12:00:00Z or unix seconds"
            ))
        })
}

pub(crate) fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

pub(crate) fn limit(value: Option<usize>) -> Result<usize, ApiError> {
    match value {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_LIMIT}, not {n}"
        ))),
    }
}

pub(crate) fn provider(name: &str) -> Result<Provider, ApiError> {
    Provider::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        ApiError::NotFound(format!(
            "unknown provider {name:?}; known: {}",
            known.join(", ")
        ))
    })
}

pub(crate) fn name<'a>(what: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() {
        return Err(ApiError::BadRequest(format!("the {what} is empty")));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(ApiError::BadRequest(format!(
            "the {what} is longer than {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(value)
}

fn room_key(path: &(String, String, String)) -> Result<RoomKey, ApiError> {
    Ok(RoomKey::new(
        provider(&path.0)?,
        name("app", &path.1)?,
        name("room name", &path.2)?,
    ))
}

pub(crate) fn encode_cursor(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<Vec<u8>, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| ApiError::Store(StoreError::InvalidCursor))
}

/// Runs a blocking store read off the async executor.
pub(crate) async fn read_store<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.engine.store.clone();
    web::block(move || read(&store))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(ApiError::Store)
}

// ----- live rooms -----------------------------------------------------------------------

#[derive(Deserialize)]
pub struct RoomsQuery {
    provider: Option<String>,
    app: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct RoomItem {
    provider: Provider,
    app: String,
    room: String,
    participants: u32,
    started_at: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireRoomCursor(u32, Provider, String, String);

pub async fn rooms(
    state: web::Data<AppState>,
    query: web::Query<RoomsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = RoomFilter {
        provider: match query.provider.as_deref() {
            None | Some("") => None,
            Some(p) => Some(
                Provider::parse(p)
                    .ok_or_else(|| ApiError::BadRequest(format!("unknown provider {p:?}")))?,
            ),
        },
        app: query.app.clone().filter(|a| !a.is_empty()),
        query: query.q.clone().filter(|q| !q.is_empty()),
    };
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => {
            let bytes = decode_cursor(text)?;
            let WireRoomCursor(participants, provider, app, room) = serde_json::from_slice(&bytes)
                .map_err(|_| ApiError::Store(StoreError::InvalidCursor))?;
            Some(RoomCursor {
                participants,
                room: RoomKey::new(provider, app, room),
            })
        }
    };
    let limit = limit(query.limit)?;
    let (rooms, next) = state.engine.live.page(&filter, limit, cursor.as_ref());
    let next_cursor = next.map(|c| {
        let wire = WireRoomCursor(c.participants, c.room.provider, c.room.app, c.room.room);
        encode_cursor(&serde_json::to_vec(&wire).expect("invariant: plain data serialises"))
    });
    let totals = state.engine.live.totals();
    let (total_rooms, total_participants) = totals
        .values()
        .fold((0, 0), |(r, p), t| (r + t.rooms, p + t.participants));
    let rooms: Vec<RoomItem> = rooms
        .into_iter()
        .map(|r| RoomItem {
            provider: r.room.provider,
            app: r.room.app,
            room: r.room.room,
            participants: r.participants,
            started_at: r.started_ms.map(timestamp),
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "rooms": rooms,
        "next_cursor": next_cursor,
        "totals": {"rooms": total_rooms, "participants": total_participants},
    })))
}

// ----- one room ----------------------------------------------------------------------------

pub async fn room(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let key = room_key(&path)?;
    let now = roomledger_actors::now_ms();
    if let Some(view) = state.engine.room(key.clone()).await {
        let participants: Vec<_> = view
            .participants
            .iter()
            .map(|p| {
                json!({
                    "id": p.participant.id,
                    "identity": p.participant.identity,
                    "name": p.participant.name.as_deref().unwrap_or(&p.participant.identity),
                    "role": p.participant.role.as_str(),
                    "platform": p.participant.platform,
                    "joined_at": timestamp(p.joined_ms),
                    "seconds": seconds((now - p.joined_ms).max(0)),
                })
            })
            .collect();
        let mut room = json!({
            "provider": key.provider,
            "app": key.app,
            "room": key.room,
            "live": view.live,
            "instance": view.instance,
            "started_at": view.started_ms.map(timestamp),
            "participants": participants,
        });
        add_provider_parts(&state, &key, Some(&view), now, &mut room).await?;
        return Ok(HttpResponse::Ok().json(room));
    }
    let seen_key = key.clone();
    if read_store(&state, move |store| store.room_seen(&seen_key)).await? {
        let mut room = json!({
            "provider": key.provider,
            "app": key.app,
            "room": key.room,
            "live": false,
            "instance": null,
            "started_at": null,
            "participants": [],
        });
        add_provider_parts(&state, &key, None, now, &mut room).await?;
        return Ok(HttpResponse::Ok().json(room));
    }
    Err(ApiError::NotFound(format!(
        "room {key} has never been seen"
    )))
}

/// What only some providers' rooms have: the outputs (recording, RTMP) a plugNmeet meeting is
/// running, a Twitch broadcaster's stream (live, or offline within its grace period) and the
/// state of their EventSub subscription if Twitch revoked it.
async fn add_provider_parts(
    state: &AppState,
    key: &RoomKey,
    view: Option<&RoomView>,
    now: i64,
    room: &mut serde_json::Value,
) -> Result<(), ApiError> {
    match key.provider {
        Provider::Plugnmeet => {
            let outputs: Vec<&str> = view
                .map(|v| v.outputs.iter().map(|o| o.as_str()).collect())
                .unwrap_or_default();
            room["outputs"] = json!(outputs);
        }
        Provider::Twitch => {
            let stream = view.and_then(|v| v.stream.as_ref());
            room["stream"] = match stream {
                Some(stream) => json!({
                    "id": stream.id,
                    "status": if stream.offline_ms.is_some() { "offline" } else { "live" },
                    "started_at": timestamp(stream.started_ms),
                    "offline_at": stream.offline_ms.map(timestamp),
                    "seconds": seconds((stream.offline_ms.unwrap_or(now) - stream.started_ms).max(0)),
                    "broadcaster": {
                        "id": stream.broadcaster.id,
                        "login": stream.broadcaster.identity,
                        "name": stream.broadcaster.name,
                    },
                }),
                None => serde_json::Value::Null,
            };
            // Twitch names the broadcaster by id in a revocation; the room knows the id from its
            // stream, or from the broadcaster's latest finished session.
            let broadcaster = stream.map(|s| s.broadcaster.id.clone());
            let key = key.clone();
            let subscription = read_store(state, move |store| {
                let id = match broadcaster {
                    Some(id) => Some(id),
                    None => store
                        .room_sessions(&key, None, None, 1, None)?
                        .items
                        .into_iter()
                        .next()
                        .map(|session| session.participant_id),
                };
                match id {
                    Some(id) => store.subscription(key.provider, &key.app, &id),
                    None => Ok(None),
                }
            })
            .await?;
            room["subscription"] = match subscription {
                Some(s) => json!({
                    "status": s.status,
                    "type": s.subscription_type,
                    "id": s.subscription_id,
                    "at": timestamp(s.at_ms),
                }),
                None => serde_json::Value::Null,
            };
        }
        _ => {}
    }
    Ok(())
}

// ----- finished sessions ----------------------------------------------------------------

#[derive(Deserialize)]
pub struct SessionsQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn session_json(session: &ParticipantSession, with_room: bool) -> serde_json::Value {
    let mut value = json!({
        "participant": session.identity,
        "participant_id": session.participant_id,
        "name": session.name.as_deref().unwrap_or(&session.identity),
        "role": session.role.as_str(),
        "platform": session.platform,
        "joined_at": timestamp(session.joined_ms),
        "left_at": timestamp(session.left_ms),
        "duration_seconds": seconds(session.duration_ms()),
        "reason": session.reason,
        "closure": roomledger_actors::room::closure_name(session.closure),
        "instance": session.instance,
    });
    if with_room {
        value["provider"] = json!(session.room.provider);
        value["app"] = json!(session.room.app);
        value["room"] = json!(session.room.room);
    }
    value
}

fn sessions_page(page: Page<ParticipantSession>, with_room: bool) -> serde_json::Value {
    let sessions: Vec<_> = page
        .items
        .iter()
        .map(|s| session_json(s, with_room))
        .collect();
    json!({
        "sessions": sessions,
        "next_cursor": page.next_cursor.as_deref().map(encode_cursor),
    })
}

pub async fn room_sessions(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    query: web::Query<SessionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = room_key(&path)?;
    let from = query
        .from
        .as_deref()
        .map(|v| parse_time("from", v))
        .transpose()?;
    let to = query
        .to
        .as_deref()
        .map(|v| parse_time("to", v))
        .transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::BadRequest("`from` is after `to`".into()));
    }
    let limit = limit(query.limit)?;
    let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let live = state.engine.live.get(&key).is_some();
    let loaded_key = key.clone();
    let (seen, page) = read_store(&state, move |store| {
        let page = store.room_sessions(&key, from, to, limit, cursor.as_deref())?;
        let seen = live || !page.items.is_empty() || store.room_seen(&key)?;
        Ok((seen, page))
    })
    .await?;
    // A loaded room that is neither live nor in the store yet (a Twitch stream offline within
    // its grace period) has been seen all the same.
    let seen = seen || state.engine.room(loaded_key).await.is_some();
    if !seen {
        return Err(ApiError::NotFound(format!(
            "room {}/{}/{} has never been seen",
            path.0, path.1, path.2
        )));
    }
    Ok(HttpResponse::Ok().json(sessions_page(page, false)))
}

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

pub async fn participant_sessions(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.0)?;
    let app = name("app", &path.1)?.to_owned();
    let identity = name("participant", &path.2)?.to_owned();
    let limit = limit(query.limit)?;
    let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let page = read_store(&state, move |store| {
        store.participant_sessions(provider, &app, &identity, limit, cursor.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(sessions_page(page, true)))
}

fn history_json(instance: &RoomSession) -> serde_json::Value {
    let mut value = json!({
        "instance": instance.instance,
        "started_at": timestamp(instance.started_ms),
        "ended_at": timestamp(instance.ended_ms),
        "duration_seconds": seconds((instance.ended_ms - instance.started_ms).max(0)),
        "peak_participants": instance.peak_participants,
        "participant_seconds": seconds(instance.participant_ms),
        "sessions": instance.sessions,
        "reason": instance.reason,
    });
    // Output time exists where a provider reports outputs (plugNmeet).
    if instance.room.provider == Provider::Plugnmeet
        || instance.recording_ms > 0
        || instance.rtmp_ms > 0
    {
        value["recording_seconds"] = json!(seconds(instance.recording_ms));
        value["rtmp_seconds"] = json!(seconds(instance.rtmp_ms));
    }
    value
}

pub async fn room_history(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = room_key(&path)?;
    let limit = limit(query.limit)?;
    let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let live = state.engine.live.get(&key).is_some();
    let loaded_key = key.clone();
    let (seen, page) = read_store(&state, move |store| {
        let page = store.room_history(&key, limit, cursor.as_deref())?;
        let seen = live || !page.items.is_empty() || store.room_seen(&key)?;
        Ok((seen, page))
    })
    .await?;
    // A loaded room that is neither live nor in the store yet (a Twitch stream offline within
    // its grace period) has been seen all the same.
    let seen = seen || state.engine.room(loaded_key).await.is_some();
    if !seen {
        return Err(ApiError::NotFound(format!(
            "room {}/{}/{} has never been seen",
            path.0, path.1, path.2
        )));
    }
    let history: Vec<_> = page.items.iter().map(history_json).collect();
    Ok(HttpResponse::Ok().json(json!({
        "history": history,
        "next_cursor": page.next_cursor.as_deref().map(encode_cursor),
    })))
}

// ----- operations -----------------------------------------------------------------------

pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.engine.healthy().await.map_err(|reason| {
        tracing::warn!(%reason, "health check failed");
        ApiError::Unavailable("storage does not answer writes and reads".into())
    })?;
    Ok(HttpResponse::Ok().json(json!({"status": "ok"})))
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let text = state.engine.metrics.render(&state.engine.live);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// Guards the read API (which is all the page shows) when `[server] api_token` is set; the
/// page's own files are not secret. The token comes as
/// `Authorization: Bearer <token>` or, for `EventSource` and links, as `?token=`.
pub async fn require_token(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let expected = request
        .app_data::<web::Data<AppState>>()
        .map(|state| state.api_token.clone())
        .unwrap_or_default();
    if !expected.is_empty() {
        let mut headers = request
            .headers()
            .get_all(actix_web::http::header::AUTHORIZATION);
        let from_header = headers
            .next()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .map(str::to_owned);
        // Two Authorization headers are ambiguous: refused, whichever of them is right.
        if headers.next().is_some() {
            return Err(ApiError::Unauthorized.into());
        }
        let from_query = web::Query::<TokenQuery>::from_query(request.query_string())
            .ok()
            .and_then(|q| q.into_inner().token);
        let given = from_header.or(from_query).unwrap_or_default();
        // Digests of equal length, so the comparison does not even reveal the token's length
        // (comparing the slices directly returns early when the lengths differ).
        let given = Sha256::digest(given.as_bytes());
        let wanted = Sha256::digest(expected.expose().as_bytes());
        if !bool::from(given.ct_eq(&wanted)) {
            return Err(ApiError::Unauthorized.into());
        }
    }
    next.call(request).await
}

/// Refuses a request whose path or query holds a percent-escape that does not decode to UTF-8
/// (`%FF`). actix decodes such escapes lossily, to U+FFFD, so without this check the request
/// would silently name something other than what was sent.
pub async fn refuse_undecodable(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    decodable_target(request.uri())?;
    next.call(request).await
}

/// Whether the path and the query of `uri` percent-decode to UTF-8; 400 if not.
pub(crate) fn decodable_target(uri: &actix_web::http::Uri) -> Result<(), ApiError> {
    let decodes = |text: &str| {
        let bytes = text.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escaped = (bytes[i] == b'%')
                .then(|| bytes.get(i + 1..i + 3))
                .flatten()
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            match escaped {
                Some(byte) => {
                    decoded.push(byte);
                    i += 3;
                }
                None => {
                    decoded.push(bytes[i]);
                    i += 1;
                }
            }
        }
        std::str::from_utf8(&decoded).is_ok()
    };
    if !decodes(uri.path()) {
        return Err(ApiError::BadRequest(
            "the path holds a percent-escape that is not UTF-8".into(),
        ));
    }
    if !uri.query().is_none_or(decodes) {
        return Err(ApiError::BadRequest(
            "the query string holds a percent-escape that is not UTF-8".into(),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}
