//! The live room index as room actors use it: every applied batch publishes the room's summary,
//! and every tick publishes it again unchanged. On an index of 100,000 live rooms of about 10
//! participants each (the memory target's state), each iteration publishes 10,000 summaries:
//! - `live_index/join_or_leave`: each room's count one up or one down, which moves the room in
//!   the index's order (what a join or a leave costs the room thread);
//! - `live_index/unchanged`: the same summary again (what a tick costs).
//!
//! `cargo bench -p roomledger-actors --bench live_index`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roomledger_actors::live::LiveRooms;
use roomledger_actors::model::{Provider, RoomKey};
use roomledger_actors::room::RoomSummary;

const ROOMS: usize = 100_000;
const PER_ITERATION: usize = 10_000;

fn summary(participants: u32) -> RoomSummary {
    RoomSummary {
        live: true,
        participants,
        started_ms: Some(1_764_000_000_000),
    }
}

fn bench(c: &mut Criterion) {
    let rooms: Vec<RoomKey> = (0..ROOMS)
        .map(|i| {
            let provider = if i % 2 == 0 {
                Provider::Livekit
            } else {
                Provider::Agora
            };
            RoomKey::new(provider, "bench-app-1", format!("room-{i:06}"))
        })
        .collect();
    // Each room's count as last published: 5 to 15 at first, then one off it.
    let mut counts: Vec<u32> = (0..ROOMS).map(|i| 5 + (i % 11) as u32).collect();
    let live = LiveRooms::new();
    for (room, &count) in rooms.iter().zip(&counts) {
        live.publish(room, summary(count));
    }
    // Rooms in a scattered order, as webhooks for many rooms arrive interleaved.
    let order: Vec<usize> = (0..ROOMS).map(|i| (i * 7_919) % ROOMS).collect();

    let mut group = c.benchmark_group("live_index");
    group.throughput(Throughput::Elements(PER_ITERATION as u64));
    let mut next = 0usize;
    group.bench_function("join_or_leave", |b| {
        b.iter(|| {
            for _ in 0..PER_ITERATION {
                let i = order[next];
                next = (next + 1) % ROOMS;
                // One up, and one down the next time round.
                counts[i] ^= 1;
                live.publish(&rooms[i], summary(counts[i]));
            }
        })
    });
    group.bench_function("unchanged", |b| {
        b.iter(|| {
            for _ in 0..PER_ITERATION {
                let i = order[next];
                next = (next + 1) % ROOMS;
                live.publish(&rooms[i], summary(counts[i]));
            }
        })
    });
    group.finish();
    // What was measured is what the names say: every room still live, at the count last
    // published for it, so `unchanged` published each room's summary as the index had it.
    assert_eq!(live.len(), ROOMS, "every room stays live");
    let stale = rooms
        .iter()
        .zip(&counts)
        .filter(|(room, count)| live.get(room).map(|r| r.participants) != Some(**count))
        .count();
    assert_eq!(stale, 0, "rooms whose index entry is not their last count");
}

criterion_group!(benches, bench);
criterion_main!(benches);
