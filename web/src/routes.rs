//! The routing table, shared by `main` and every test: `App::new().configure(configure(state))`.

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::state::AppState;
use crate::{api, events, files, page, stream, usage, webhooks};

/// Registers every route of design §4, with JSON errors for malformed paths and queries and
/// for unknown routes and methods.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                ApiError::BadRequest(format!("bad query string: {error}")).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|error, _| {
                ApiError::BadRequest(format!("bad path: {error}")).into()
            }))
            // Static paths first: resources are tried in order, and each pattern with a `{…}`
            // segment costs a regex match.
            .service(webhook("/webhooks/livekit", webhooks::livekit))
            .service(webhook("/v1/webhooks/livekit", webhooks::livekit))
            .service(webhook("/webhooks/plugnmeet", webhooks::plugnmeet))
            .service(webhook("/webhooks/twitch", webhooks::twitch))
            .service(webhook("/webhooks/acrcloud", webhooks::acrcloud))
            .service(webhook("/webhooks/agora/{app_id}", webhooks::agora))
            .service(webhook("/webhooks/twitch/{app}", webhooks::twitch_app))
            .service(webhook("/{app_id}/webhooks", webhooks::agora))
            .service(
                web::scope("/api/v1")
                    .wrap(from_fn(api::require_token))
                    .wrap(from_fn(api::refuse_undecodable))
                    .route("/rooms", web::get().to(api::rooms))
                    .route("/rooms/{provider}/{app}/{room}", web::get().to(api::room))
                    .route(
                        "/rooms/{provider}/{app}/{room}/sessions",
                        web::get().to(api::room_sessions),
                    )
                    .route(
                        "/rooms/{provider}/{app}/{room}/history",
                        web::get().to(api::room_history),
                    )
                    .route(
                        "/participants/{provider}/{app}/{participant}/sessions",
                        web::get().to(api::participant_sessions),
                    )
                    .route("/usage", web::get().to(usage::usage))
                    .route("/events", web::get().to(events::events))
                    .route("/files/{provider}/{file_id}", web::get().to(files::file))
                    .route("/stream", web::get().to(stream::stream))
                    .default_service(web::to(not_found)),
            )
            .service(
                web::resource("/")
                    .route(get_or_head().to(page::index))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/assets/{file}")
                    .route(get_or_head().to(page::asset))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/health")
                    .route(get_or_head().to(api::health))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/metrics")
                    .route(get_or_head().to(api::metrics))
                    .default_service(web::to(method_not_allowed)),
            )
            .default_service(web::to(not_found));
    }
}

/// GET, and HEAD for uptime checkers and proxies that probe with it (actix sends the headers
/// of the GET answer without its body).
fn get_or_head() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

fn webhook<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(web::to(method_not_allowed))
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.path()
    )))
}

async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed(format!(
        "{} {}",
        request.method(),
        request.path()
    )))
}
