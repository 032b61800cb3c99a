//! The dedupe cache as the ingest path uses it: for every new event, the handler and the
//! committer ask for its key (a miss) and the committer inserts it; a re-delivery asks again a
//! little later. Each iteration does that for 10,000 new keys, with a re-delivery of the key
//! committed 5,000 keys before, on a cache that is already full: of 20,000 keys, and of
//! 200,000 (the default `dedupe_cache_entries`).
//! - `dedupe_cache/roomledger/N`: the server's cache (`ingest::recent_keys_cache`: LRU,
//!   foldhash).
//! - `dedupe_cache/lru_siphash/N`: the same with the standard library's hasher, for what
//!   foldhash saves.
//! - `dedupe_cache/moka_defaults/N`: the cache it replaced (moka's defaults: TinyLFU admission,
//!   SipHash), which turned new keys away once full. Each prints once how many re-deliveries it
//!   found in a first pass.
//!
//! `cargo bench -p roomledger-actors --bench dedupe_cache`

use std::hash::BuildHasher;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use roomledger_actors::ingest::recent_keys_cache;

const CAPACITIES: [u64; 2] = [20_000, 200_000];
const PER_ITERATION: usize = 10_000;
const REDELIVERED_AFTER: usize = 5_000;
const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Dedupe keys shaped like the server's: provider byte, app, event id.
fn key(n: usize) -> Vec<u8> {
    let mut key = vec![2u8, 11];
    key.extend_from_slice(b"bench-app-1");
    key.extend_from_slice(format!("EV_{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).as_bytes());
    key
}

/// One iteration's traffic from key `first` on; returns the re-deliveries found.
fn traffic<S: BuildHasher + Clone + Send + Sync + 'static>(
    cache: &Cache<Vec<u8>, (), S>,
    keys: &[Vec<u8>],
    first: usize,
) -> usize {
    let mut found = 0;
    for n in first..first + PER_ITERATION {
        let new = &keys[n % keys.len()];
        // The handler's look and the committer's: both miss.
        let _ = cache.contains_key(new);
        let _ = cache.contains_key(new);
        cache.insert(new.clone(), ());
        let redelivered = &keys[(n + keys.len() - REDELIVERED_AFTER) % keys.len()];
        found += usize::from(cache.contains_key(redelivered));
    }
    found
}

fn run<S: BuildHasher + Clone + Send + Sync + 'static>(
    c: &mut Criterion,
    name: &str,
    capacity: u64,
    cache: Cache<Vec<u8>, (), S>,
) {
    // Enough distinct keys that no key comes back while it could still be cached.
    let keys: Vec<Vec<u8>> = (0..(capacity as usize) * 20).map(key).collect();
    let mut next = 0;
    // Fill it first: the difference is in what a full cache does.
    while next < 2 * capacity as usize {
        traffic(&cache, &keys, next);
        next += PER_ITERATION;
    }
    let found = traffic(&cache, &keys, next);
    next += PER_ITERATION;
    println!("{name}/{capacity}: found {found} of {PER_ITERATION} re-deliveries once full");
    let mut group = c.benchmark_group("dedupe_cache");
    group.throughput(Throughput::Elements(PER_ITERATION as u64));
    group.bench_function(format!("{name}/{capacity}"), |b| {
        b.iter(|| {
            traffic(&cache, &keys, next);
            next += PER_ITERATION;
        })
    });
    group.finish();
}

fn dedupe_cache(c: &mut Criterion) {
    for capacity in CAPACITIES {
        run(
            c,
            "roomledger",
            capacity,
            recent_keys_cache(capacity, WINDOW),
        );
        run(
            c,
            "lru_siphash",
            capacity,
            Cache::builder()
                .max_capacity(capacity)
                .time_to_live(WINDOW)
                .eviction_policy(EvictionPolicy::lru())
                .build(),
        );
        run(
            c,
            "moka_defaults",
            capacity,
            Cache::builder()
                .max_capacity(capacity)
                .time_to_live(WINDOW)
                .build(),
        );
    }
}

criterion_group!(benches, dedupe_cache);
criterion_main!(benches);
