//! ACRCloud file-scanning callback adapter: `POST /webhooks/acrcloud`. Wire format:
//! `/work/shared/providers.md` section E.
//!
//! ACRCloud signs nothing, so the callback URL configured on the file-scanning container carries
//! a secret of ours, `[acrcloud] token`, as `?token=…` (or, from a proxy or a hand-written
//! sender, `Authorization: Bearer …`). It is compared in constant time, over SHA-256 digests so
//! that not even its length leaks. Bodies are JSON or, possibly, form-encoded (ACRCloud's
//! broadcast-monitoring callbacks offer both); which one is told from the body itself.
//!
//! Each callback becomes one [`EventKind::FileScanned`] record with the event id
//! `file_id:state`, so a re-delivered state is a duplicate and each state of a file is kept once.

use roomledger_actors::model::{Event, EventKind, FileScan, Provider, RoomKey};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Adapter, Delivery, NormaliseError, Secret, Verified, VerifyError, header_text};

/// ACRCloud has no app of its own; the container is the closest thing to a room.
const APP: &str = "default";

/// Longest `file_id` accepted (ACRCloud's are UUIDs); it is also a path segment of the API.
const MAX_FILE_ID_BYTES: usize = 512;

/// The `[acrcloud]` config section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcrcloudConfig {
    /// The secret the callback URL carries. Empty means "not configured".
    pub token: Secret,
    /// Accept callbacks without a token, but only while `token` is empty.
    pub allow_unsigned: bool,
}

/// The ACRCloud adapter. Cheap to build; holds only its configuration.
pub struct Acrcloud {
    token: Secret,
    allow_unsigned: bool,
}

impl Acrcloud {
    pub fn new(config: &AcrcloudConfig) -> Acrcloud {
        Acrcloud {
            token: config.token.clone(),
            allow_unsigned: config.allow_unsigned,
        }
    }
}

impl Adapter for Acrcloud {
    const PROVIDER: Provider = Provider::Acrcloud;
    const CONTENT_TYPES: &'static [&'static str] =
        &["application/json", "application/x-www-form-urlencoded"];

    fn verify(&self, delivery: &Delivery<'_>) -> Result<Verified, VerifyError> {
        // Callbacks carry no time; their arrival is the best there is.
        let verified = Verified {
            app: APP.to_owned(),
            message_id: None,
            sent_ms: Some(delivery.received_ms),
        };
        if self.token.is_empty() {
            return if self.allow_unsigned {
                Ok(verified)
            } else {
                Err(VerifyError::NotConfigured("acrcloud"))
            };
        }
        let mut in_query = delivery
            .query
            .and_then(|query| {
                actix_web::web::Query::<Vec<(String, String)>>::from_query(query).ok()
            })
            .map(|query| query.into_inner())
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, _)| name == "token")
            .map(|(_, token)| token);
        let from_query = in_query.next().filter(|token| !token.is_empty());
        // Two tokens are ambiguous (which one was checked?): refused, whichever is right.
        if in_query.next().is_some() {
            return Err(VerifyError::BadToken(
                "the token is given more than once in the query".into(),
            ));
        }
        let from_header = header_text(delivery.headers, "Authorization")?
            .and_then(|value| {
                value
                    .get(..7)
                    .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                    .map(|_| value[7..].trim())
            })
            .filter(|token| !token.is_empty())
            .map(str::to_owned);
        let Some(given) = from_query.or(from_header) else {
            return Err(VerifyError::MissingHeader(
                "?token= query parameter or Authorization: Bearer",
            ));
        };
        let given = Sha256::digest(given.as_bytes());
        let expected = Sha256::digest(self.token.expose().as_bytes());
        if !bool::from(given.ct_eq(&expected)) {
            return Err(VerifyError::BadToken(
                "the token does not match [acrcloud] token".into(),
            ));
        }
        Ok(verified)
    }

    fn normalise(&self, verified: &Verified, body: &[u8]) -> Result<Vec<Event>, NormaliseError> {
        let callback = Callback::parse(body)?;
        let file_id = callback
            .text("file_id")?
            .ok_or_else(|| NormaliseError::Malformed("missing `file_id`".into()))?;
        if file_id.is_empty() || file_id.len() > MAX_FILE_ID_BYTES {
            return Err(NormaliseError::Malformed(format!(
                "`file_id` must be 1 to {MAX_FILE_ID_BYTES} bytes"
            )));
        }
        let state = callback
            .integer("state")?
            .ok_or_else(|| NormaliseError::Malformed("missing `state`".into()))?;
        let container = callback.integer("cid")?;
        let scan = FileScan {
            container,
            name: callback.text("name")?.filter(|name| !name.is_empty()),
            state,
            matches: callback.matches()?,
            file_id,
        };
        let at_ms = verified.sent_ms.ok_or_else(|| {
            NormaliseError::Malformed("no arrival time for an ACRCloud callback".into())
        })?;
        Ok(vec![Event {
            room: RoomKey::new(
                Provider::Acrcloud,
                verified.app.clone(),
                container.map(|cid| cid.to_string()).unwrap_or_default(),
            ),
            id: format!("{}:{}", scan.file_id, scan.state),
            at_ms,
            kind: EventKind::FileScanned(scan),
        }])
    }
}

/// A callback's fields, from a JSON object or a form. Form values are text; JSON ones may be
/// text or numbers (integrations quote ids inconsistently), and both are accepted where a number
/// is meant.
struct Callback {
    fields: Map<String, Value>,
}

impl Callback {
    fn parse(body: &[u8]) -> Result<Callback, NormaliseError> {
        if body.is_empty() {
            return Err(NormaliseError::Malformed("the body is empty".into()));
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| NormaliseError::Malformed(format!("the body is not UTF-8: {e}")))?;
        if text.trim_start().starts_with('{') {
            // serde_json stops at 128 levels of nesting, so hostile bodies cannot exhaust the stack.
            let fields = serde_json::from_str::<Map<String, Value>>(text).map_err(|e| {
                NormaliseError::Malformed(format!("the body is not an ACRCloud callback: {e}"))
            })?;
            return Ok(Callback { fields });
        }
        let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(text)
            .map_err(|e| NormaliseError::Malformed(format!("the form body is unreadable: {e}")))?
            .into_inner();
        let mut fields = Map::new();
        for (name, value) in pairs {
            // `results` of a form is JSON in a field; everything else is plain text.
            let value = if name == "results" {
                serde_json::from_str(&value)
                    .map_err(|e| NormaliseError::Malformed(format!("`results` is not JSON: {e}")))?
            } else {
                Value::String(value)
            };
            fields.insert(name, value);
        }
        Ok(Callback { fields })
    }

    fn text(&self, name: &str) -> Result<Option<String>, NormaliseError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(Value::Number(number)) => Ok(Some(number.to_string())),
            Some(_) => Err(NormaliseError::Malformed(format!(
                "`{name}`: expected a string"
            ))),
        }
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, NormaliseError> {
        let bad = || NormaliseError::Malformed(format!("`{name}`: expected an integer"));
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number.as_i64().map(Some).ok_or_else(bad),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => text.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// Every item of every list in `results` (music, cover songs, custom files, ...).
    fn matches(&self) -> Result<u32, NormaliseError> {
        match self.fields.get("results") {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Object(results)) => Ok(results
                .values()
                .filter_map(Value::as_array)
                .map(Vec::len)
                .sum::<usize>()
                .try_into()
                .unwrap_or(u32::MAX)),
            Some(Value::Array(list)) => Ok(u32::try_from(list.len()).unwrap_or(u32::MAX)),
            Some(_) => Err(NormaliseError::Malformed(
                "`results`: expected an object of lists".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    const TOKEN: &str = "Tq8-acr-callback-7f3e";
    const READY: &[u8] = include_bytes!("../../tests/fixtures/acrcloud/ready.json");
    const PROCESSING: &[u8] = include_bytes!("../../tests/fixtures/acrcloud/processing.json");
    const NO_RESULT: &[u8] = include_bytes!("../../tests/fixtures/acrcloud/no_result.form");
    const RECEIVED_MS: i64 = 1_760_000_000_000;
    const FILE: &str = "158f0c48-6c73-41f7-bd6f-b7a8b71da2a1";

    fn acrcloud(token: &str, allow_unsigned: bool) -> Acrcloud {
        Acrcloud::new(&AcrcloudConfig {
            token: Secret::new(token),
            allow_unsigned,
        })
    }

    fn bearer(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static("authorization"),
            HeaderValue::from_str(value).unwrap(),
        );
        map
    }

    fn verify(
        adapter: &Acrcloud,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Verified, VerifyError> {
        adapter.verify(&Delivery {
            headers,
            body: READY,
            path_app: None,
            query,
            received_ms: RECEIVED_MS,
        })
    }

    #[test]
    fn the_token_comes_as_a_query_parameter_or_a_bearer_token() {
        let adapter = acrcloud(TOKEN, false);
        let none = HeaderMap::new();
        let ok = |result: Result<Verified, VerifyError>| {
            assert_eq!(
                result.unwrap(),
                Verified {
                    app: "default".into(),
                    message_id: None,
                    sent_ms: Some(RECEIVED_MS)
                }
            )
        };
        ok(verify(&adapter, &none, Some(&format!("token={TOKEN}"))));
        ok(verify(
            &adapter,
            &none,
            Some(&format!("x=1&token={TOKEN}&y")),
        ));
        // Percent-encoded as any URL may be.
        ok(verify(
            &adapter,
            &none,
            Some("token=Tq8%2Dacr%2Dcallback%2D7f3e"),
        ));
        ok(verify(&adapter, &bearer(&format!("Bearer {TOKEN}")), None));
        ok(verify(
            &adapter,
            &bearer(&format!("bearer   {TOKEN}")),
            Some(""),
        ));
    }

    #[test]
    fn a_missing_token_is_reported() {
        let adapter = acrcloud(TOKEN, false);
        for (headers, query) in [
            (HeaderMap::new(), None),
            (HeaderMap::new(), Some("")),
            (HeaderMap::new(), Some("token=")),
            (HeaderMap::new(), Some("tokens=abc")),
            (bearer(TOKEN), None),
            (bearer("Bearer "), None),
            (bearer(&format!("Basic {TOKEN}")), None),
        ] {
            assert!(
                matches!(
                    verify(&adapter, &headers, query),
                    Err(VerifyError::MissingHeader(_))
                ),
                "{headers:?} {query:?}"
            );
        }
    }

    #[test]
    fn a_wrong_token_is_refused() {
        let adapter = acrcloud(TOKEN, false);
        let prefix = format!("token={}", &TOKEN[..TOKEN.len() - 1]);
        let longer = format!("token={TOKEN}x");
        for (headers, query) in [
            (HeaderMap::new(), Some("token=guess")),
            (HeaderMap::new(), Some(longer.as_str())),
            (HeaderMap::new(), Some(prefix.as_str())),
            (bearer("Bearer guess"), None),
        ] {
            assert!(
                matches!(
                    verify(&adapter, &headers, query),
                    Err(VerifyError::BadToken(_))
                ),
                "{query:?}"
            );
        }
        // The query wins over the header: a right header does not rescue a wrong query.
        assert!(matches!(
            verify(
                &adapter,
                &bearer(&format!("Bearer {TOKEN}")),
                Some("token=guess")
            ),
            Err(VerifyError::BadToken(_))
        ));
    }

    #[test]
    fn unsigned_needs_allow_unsigned() {
        let none = HeaderMap::new();
        assert!(matches!(
            verify(&acrcloud("", false), &none, None),
            Err(VerifyError::NotConfigured("acrcloud"))
        ));
        assert!(verify(&acrcloud("", true), &none, None).is_ok());
        assert!(matches!(
            verify(&acrcloud(TOKEN, true), &none, None),
            Err(VerifyError::MissingHeader(_))
        ));
    }

    fn normalise(body: &[u8]) -> Result<Vec<Event>, NormaliseError> {
        let verified = Verified {
            app: "default".into(),
            message_id: None,
            sent_ms: Some(RECEIVED_MS),
        };
        acrcloud(TOKEN, false).normalise(&verified, body)
    }

    fn single(body: &[u8]) -> Event {
        let mut events = normalise(body).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn a_ready_file_with_its_matches() {
        assert_eq!(
            single(READY),
            Event {
                room: RoomKey::new(Provider::Acrcloud, "default", "26685"),
                id: format!("{FILE}:1"),
                at_ms: RECEIVED_MS,
                kind: EventKind::FileScanned(FileScan {
                    file_id: FILE.into(),
                    container: Some(26685),
                    name: Some("Found_Love.mp3".into()),
                    state: 1,
                    // One music result and two cover songs.
                    matches: 3,
                }),
            }
        );
    }

    #[test]
    fn states_have_names_and_unknown_ones_keep_their_number() {
        let names: Vec<String> = [0, 1, -1, -2, -3, 7]
            .into_iter()
            .map(|state| {
                FileScan {
                    file_id: "f".into(),
                    container: None,
                    name: None,
                    state,
                    matches: 0,
                }
                .state_name()
            })
            .collect();
        assert_eq!(
            names,
            [
                "processing",
                "ready",
                "no_result",
                "error",
                "error",
                "state_7"
            ]
        );
        let event = single(PROCESSING);
        assert_eq!(event.id, format!("{FILE}:0"));
        assert!(event.kind.is_record());
    }

    #[test]
    fn a_form_body_is_read_like_json() {
        match single(NO_RESULT).kind {
            EventKind::FileScanned(scan) => assert_eq!(
                scan,
                FileScan {
                    file_id: "2b7e6f1a-93c4-4d8e-a1f0-5c6d7e8f9a0b".into(),
                    container: Some(26685),
                    name: Some("Silence 30s.wav".into()),
                    state: -1,
                    matches: 0,
                }
            ),
            other => panic!("{other:?}"),
        }
        let form = b"file_id=abc&state=-2&cid=&results=%7B%22music%22%3A%5B%7B%7D%5D%7D";
        match single(form).kind {
            EventKind::FileScanned(scan) => {
                assert_eq!((scan.state, scan.container, scan.matches), (-2, None, 1))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quoted_numbers_are_numbers() {
        let body = br#"{"file_id":"f-1","state":"-3","cid":"12"}"#;
        match single(body).kind {
            EventKind::FileScanned(scan) => {
                assert_eq!((scan.state, scan.container), (-3, Some(12)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_bodies() {
        let long_id = format!(r#"{{"file_id":"{}","state":1}}"#, "x".repeat(513));
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"{", "not an ACRCloud callback"),
            (b"\xff", "not UTF-8"),
            (br#"{"state":1}"#, "missing `file_id`"),
            (br#"{"file_id":"","state":1}"#, "`file_id` must be"),
            (long_id.as_bytes(), "`file_id` must be"),
            (br#"{"file_id":"f"}"#, "missing `state`"),
            (
                br#"{"file_id":"f","state":"ready"}"#,
                "`state`: expected an integer",
            ),
            (
                br#"{"file_id":"f","state":1.5}"#,
                "`state`: expected an integer",
            ),
            (
                br#"{"file_id":["f"],"state":1}"#,
                "`file_id`: expected a string",
            ),
            (
                br#"{"file_id":"f","state":1,"results":"none"}"#,
                "`results`",
            ),
            (b"file_id=f&state=1&results=%7B", "`results` is not JSON"),
            (b"state=1", "missing `file_id`"),
        ];
        for (body, expected) in cases {
            match normalise(body) {
                Err(NormaliseError::Malformed(message)) => assert!(
                    message.contains(expected),
                    "{:?}: {message:?} does not mention {expected:?}",
                    String::from_utf8_lossy(body)
                ),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }
}
