//! The live web page: `GET /` and `GET /assets/{file}`, served from files under `web/static/`
//! that are compiled into the binary, so there is no build step and nothing to deploy beside
//! the executable. The page loads nothing from anywhere else, and its Content-Security-Policy
//! says so to the browser.
//!
//! Caching: every asset URL in the page carries `?v=<version>`, a hash of all the assets, so a
//! versioned asset is cached for good and a new binary changes the URLs. The page itself and
//! unversioned asset URLs are revalidated each time against the same version as `ETag`.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: &str = include_str!("../static/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../static/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../static/icon.svg"),
    },
];

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// A short hash of the page and every asset: the cache-busting version and the `ETag`.
fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hash = Sha256::new();
        hash.update(INDEX.as_bytes());
        for asset in ASSETS {
            hash.update(asset.name.as_bytes());
            hash.update(asset.body);
        }
        hex::encode(&hash.finalize()[..8])
    })
}

fn etag() -> String {
    format!("\"{}\"", version())
}

fn index_html() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| INDEX.replace("{{version}}", version()))
}

/// True when the request's `If-None-Match` already names our current version.
fn not_modified(request: &HttpRequest, etag: &str) -> bool {
    request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

fn respond(
    request: &HttpRequest,
    content_type: &'static str,
    cache_control: &'static str,
    body: &'static [u8],
) -> HttpResponse {
    let etag = etag();
    let unchanged = not_modified(request, &etag);
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if unchanged {
        return response.finish();
    }
    response
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .body(body)
}

pub async fn index(request: HttpRequest) -> HttpResponse {
    let mut response = respond(
        &request,
        "text/html; charset=utf-8",
        "no-cache",
        index_html().as_bytes(),
    );
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

pub async fn asset(
    request: HttpRequest,
    file: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|asset| asset.name == file.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("no asset named {:?}", file.as_str())))?;
    let versioned = web::Query::<AssetQuery>::from_query(request.query_string())
        .ok()
        .and_then(|query| query.into_inner().v)
        .is_some_and(|v| v == version());
    // Only a URL naming this exact version may be cached for good: an old page asking for
    // `?v=<old>` gets today's file, which must not be pinned under the old name.
    let cache_control = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok(respond(
        &request,
        asset.content_type,
        cache_control,
        asset.body,
    ))
}

#[derive(serde::Deserialize)]
pub struct AssetQuery {
    v: Option<String>,
}
