//! The webhook hot path per provider without HTTP: `verify` (signature over the raw body) +
//! `normalise` (parse and map to events) of realistic signed bodies, the CPU work `receive` does
//! for every request before it queues the event. Throughput is events per second on one core.
//!
//! `cargo bench -p roomledger-web --bench hot_path`

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roomledger_web::providers::acrcloud::{Acrcloud, AcrcloudConfig};
use roomledger_web::providers::agora::{Agora, AgoraConfig};
use roomledger_web::providers::livekit::{Livekit, LivekitConfig};
use roomledger_web::providers::plugnmeet::{Plugnmeet, PlugnmeetConfig};
use roomledger_web::providers::twitch::{Twitch, TwitchConfig};
use roomledger_web::providers::{Adapter, Delivery, Secret, signing};

const AGORA_SECRET: &str = "bench-agora-secret";
const LIVEKIT_KEY: &str = "APIbench";
const LIVEKIT_SECRET: &str = "bench-livekit-secret";
const TWITCH_SECRET: &str = "bench-twitch-secret";
const ACRCLOUD_TOKEN: &str = "bench-acrcloud-token";
/// When the bodies were "sent"; deliveries arrive a second later.
const ISSUED_AT: i64 = 1_763_000_000;
/// `ISSUED_AT` as Twitch writes its message timestamps.
const ISSUED_AT_RFC3339: &str = "2025-11-13T02:13:20.000000000Z";

/// The repository's signed-fixture bodies of the other providers (the ones that become events).
const PLUGNMEET_BODIES: [&[u8]; 4] = [
    include_bytes!("../tests/fixtures/plugnmeet/room_created.json"),
    include_bytes!("../tests/fixtures/plugnmeet/participant_joined.json"),
    include_bytes!("../tests/fixtures/plugnmeet/participant_left.json"),
    include_bytes!("../tests/fixtures/plugnmeet/session_ended.json"),
];
const TWITCH_BODIES: [&[u8]; 2] = [
    include_bytes!("../tests/fixtures/twitch/stream_online.json"),
    include_bytes!("../tests/fixtures/twitch/stream_offline.json"),
];
const ACRCLOUD_BODIES: [&[u8]; 2] = [
    include_bytes!("../tests/fixtures/acrcloud/ready.json"),
    include_bytes!("../tests/fixtures/acrcloud/processing.json"),
];

/// A channel's life as NCS reports it: create, joins, a role change, leaves.
const AGORA_BODIES: [&str; 5] = [
    r#"{"noticeId":"42:1:101","productId":1,"eventType":101,"notifyMs":1763000000180,"sid":"0000002A000000000000000000000001","payload":{"channelName":"s42-r000001","ts":1763000000}}"#,
    r#"{"noticeId":"42:2:105","productId":1,"eventType":105,"notifyMs":1763000012672,"sid":"0000002A000000000000000000000001","payload":{"channelName":"s42-r000001","uid":4201000017,"platform":7,"clientSeq":17630000120000,"ts":1763000012,"account":"user-1-17"}}"#,
    r#"{"noticeId":"42:3:111","productId":1,"eventType":111,"notifyMs":1763000300412,"sid":"0000002A000000000000000000000001","payload":{"channelName":"s42-r000001","uid":4201000017,"platform":7,"clientSeq":17630003000001,"ts":1763000300,"account":"user-1-17"}}"#,
    r#"{"noticeId":"42:4:107","productId":1,"eventType":107,"notifyMs":1763000013101,"sid":"0000002A000000000000000000000001","payload":{"channelName":"s42-r000001","uid":4201000018,"platform":1,"clientSeq":17630000130000,"ts":1763000013,"account":"user-1-18"}}"#,
    r#"{"noticeId":"42:5:104","productId":1,"eventType":104,"notifyMs":1763000912801,"sid":"0000002A000000000000000000000001","payload":{"channelName":"s42-r000001","uid":4201000017,"platform":7,"clientSeq":17630009120002,"ts":1763000912,"account":"user-1-17","reason":1,"duration":900}}"#,
];

/// A LiveKit room's life as its webhooks report it.
const LIVEKIT_BODIES: [&str; 5] = [
    r#"{"event":"room_started","room":{"sid":"RM_42x1","name":"s42-r000001","emptyTimeout":300,"departureTimeout":20,"creationTime":"1763000000","turnPassword":"2Pvdj+/WV1xV4EkB8klJ9xkXDWY=","enabledCodecs":[{"mime":"audio/opus"},{"mime":"video/VP8"},{"mime":"video/H264"}]},"id":"EV_42_1","createdAt":"1763000000"}"#,
    r#"{"event":"participant_joined","room":{"sid":"RM_42x1","name":"s42-r000001","emptyTimeout":300,"departureTimeout":20,"creationTime":"1763000012"},"participant":{"sid":"PA_42x17","identity":"user-1-17","state":"ACTIVE","joinedAt":"1763000012","joinedAtMs":"1763000012456","name":"user 1 17","version":2,"permission":{"canSubscribe":true,"canPublish":true,"canPublishData":true},"region":"eu-central"},"id":"EV_42_2","createdAt":"1763000012"}"#,
    r#"{"event":"track_published","room":{"sid":"RM_42x1","name":"s42-r000001","emptyTimeout":300,"departureTimeout":20,"creationTime":"1763000015"},"participant":{"sid":"PA_42x17","identity":"user-1-17","state":"ACTIVE","joinedAt":"1763000012","joinedAtMs":"1763000012456","name":"user 1 17","version":2,"permission":{"canSubscribe":true,"canPublish":true,"canPublishData":true},"region":"eu-central"},"track":{"sid":"TR_00000011","type":"AUDIO","source":"MICROPHONE","mimeType":"audio/opus","mid":"1","stream":"microphone"},"id":"EV_42_3","createdAt":"1763000015"}"#,
    r#"{"event":"participant_left","room":{"sid":"RM_42x1","name":"s42-r000001","emptyTimeout":300,"departureTimeout":20,"creationTime":"1763000912"},"participant":{"sid":"PA_42x17","identity":"user-1-17","state":"DISCONNECTED","joinedAt":"1763000012","joinedAtMs":"1763000012456","name":"user 1 17","version":5,"permission":{"canSubscribe":true,"canPublish":true,"canPublishData":true},"region":"eu-central","isPublisher":true,"disconnectReason":"CLIENT_INITIATED"},"id":"EV_42_4","createdAt":"1763000912"}"#,
    r#"{"event":"room_finished","room":{"sid":"RM_42x1","name":"s42-r000001","emptyTimeout":300,"departureTimeout":20,"creationTime":"1763003600","turnPassword":"2Pvdj+/WV1xV4EkB8klJ9xkXDWY=","enabledCodecs":[{"mime":"audio/opus"},{"mime":"video/VP8"},{"mime":"video/H264"}]},"id":"EV_42_5","createdAt":"1763003600"}"#,
];

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("signatures are visible ASCII"),
        );
    }
    map
}

fn run<A: Adapter>(
    c: &mut Criterion,
    name: &str,
    adapter: &A,
    app: Option<&str>,
    requests: &[(HeaderMap, &[u8])],
) {
    let received_ms = (ISSUED_AT + 1) * 1000;
    // Every body must pass, or the benchmark would time the error path.
    for (headers, body) in requests {
        let delivery = Delivery {
            headers,
            body,
            path_app: app,
            query: None,
            received_ms,
        };
        let verified = adapter.verify(&delivery).expect("a signed body verifies");
        adapter
            .normalise(&verified, body)
            .expect("a realistic body normalises");
    }
    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function(format!("{name}/verify+normalise"), |b| {
        b.iter(|| {
            for (headers, body) in requests {
                let delivery = Delivery {
                    headers,
                    body,
                    path_app: app,
                    query: None,
                    received_ms,
                };
                let verified = adapter.verify(&delivery).expect("verifies");
                std::hint::black_box(adapter.normalise(&verified, body).expect("normalises"));
            }
        })
    });
    group.bench_function(format!("{name}/verify"), |b| {
        b.iter(|| {
            for (headers, body) in requests {
                let delivery = Delivery {
                    headers,
                    body,
                    path_app: app,
                    query: None,
                    received_ms,
                };
                std::hint::black_box(adapter.verify(&delivery).expect("verifies"));
            }
        })
    });
    group.finish();
}

/// Each body with the headers `sign` gives it (from its index and bytes).
fn signed<'a>(
    bodies: impl IntoIterator<Item = &'a [u8]>,
    sign: impl Fn(usize, &[u8]) -> Vec<(&'static str, String)>,
) -> Vec<(HeaderMap, &'a [u8])> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(index, body)| (headers(&sign(index, body)), body))
        .collect()
}

fn agora(c: &mut Criterion) {
    let adapter = Agora::new(&AgoraConfig {
        secret: Secret::new(AGORA_SECRET),
        allow_unsigned: false,
    });
    // NCS sends both signatures; the adapter checks V2.
    let requests = signed(AGORA_BODIES.map(str::as_bytes), |_, body| {
        vec![
            (
                "agora-signature",
                signing::agora_signature_v1(AGORA_SECRET, body),
            ),
            (
                "agora-signature-v2",
                signing::agora_signature_v2(AGORA_SECRET, body),
            ),
            ("content-type", "application/json".into()),
        ]
    });
    run(c, "agora", &adapter, Some("bench-app"), &requests);
}

fn livekit_token(body: &[u8]) -> String {
    signing::livekit_token(LIVEKIT_KEY, LIVEKIT_SECRET, body, ISSUED_AT, 300)
}

fn livekit(c: &mut Criterion) {
    let adapter = Livekit::new(&LivekitConfig {
        keys: [(LIVEKIT_KEY.to_owned(), Secret::new(LIVEKIT_SECRET))].into(),
        allow_unsigned: false,
    });
    let requests = signed(LIVEKIT_BODIES.map(str::as_bytes), |_, body| {
        vec![
            ("authorization", livekit_token(body)),
            ("content-type", "application/webhook+json".into()),
        ]
    });
    run(c, "livekit", &adapter, None, &requests);
}

fn plugnmeet(c: &mut Criterion) {
    let adapter = Plugnmeet::new(&PlugnmeetConfig {
        keys: [(LIVEKIT_KEY.to_owned(), Secret::new(LIVEKIT_SECRET))].into(),
        allow_unsigned: false,
    });
    let requests = signed(PLUGNMEET_BODIES, |_, body| {
        vec![
            ("authorization", livekit_token(body)),
            ("content-type", "application/json".into()),
        ]
    });
    run(c, "plugnmeet", &adapter, None, &requests);
}

fn twitch(c: &mut Criterion) {
    let adapter = Twitch::new(&TwitchConfig {
        secret: Secret::new(TWITCH_SECRET),
        ..TwitchConfig::default()
    });
    let requests = signed(TWITCH_BODIES, |index, body| {
        let id = format!("bench-message-{index}");
        let signature = signing::twitch_signature(TWITCH_SECRET, &id, ISSUED_AT_RFC3339, body);
        vec![
            ("twitch-eventsub-message-id", id),
            (
                "twitch-eventsub-message-timestamp",
                ISSUED_AT_RFC3339.into(),
            ),
            ("twitch-eventsub-message-signature", signature),
            ("twitch-eventsub-message-type", "notification".into()),
            ("content-type", "application/json".into()),
        ]
    });
    run(c, "twitch", &adapter, None, &requests);
}

fn acrcloud(c: &mut Criterion) {
    let adapter = Acrcloud::new(&AcrcloudConfig {
        token: Secret::new(ACRCLOUD_TOKEN),
        allow_unsigned: false,
    });
    let requests = signed(ACRCLOUD_BODIES, |_, _| {
        vec![
            ("authorization", format!("Bearer {ACRCLOUD_TOKEN}")),
            ("content-type", "application/json".into()),
        ]
    });
    run(c, "acrcloud", &adapter, None, &requests);
}

criterion_group!(benches, agora, livekit, plugnmeet, twitch, acrcloud);
criterion_main!(benches);
