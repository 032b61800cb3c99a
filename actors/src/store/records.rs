//! Records: journaled events that are not room state (a revoked Twitch subscription, an
//! ACRCloud file callback). The directory hands them to the `StoreActor`, and recovery replays
//! them from the journal, so every write here is idempotent: writing the same journal entry twice
//! leaves the same bytes behind.
//!
//! Tree `subscriptions`: (provider, app, broadcaster id) → the latest [`Subscription`] change.
//! Files: see `files.rs`.

use serde::{Deserialize, Serialize};
use sled::Tree;

use super::{JournalEntry, Store, StoreResult, decode, encode, provider_byte, push_str};
use crate::model::{EventKind, Provider};

const SUBSCRIPTIONS: &str = "subscriptions";

/// The latest known state of a broadcaster's event subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub broadcaster_id: String,
    pub subscription_id: String,
    pub subscription_type: String,
    /// Twitch's subscription status, e.g. `authorization_revoked`.
    pub status: String,
    /// The provider's time of the change.
    pub at_ms: i64,
    /// The journal entry that recorded it.
    pub seq: u64,
}

impl Store {
    fn subscriptions(&self) -> StoreResult<Tree> {
        Ok(self.db.open_tree(SUBSCRIPTIONS)?)
    }

    /// Writes the records among `entries` (journal seq, entry); other events are skipped. The
    /// same entries written again change nothing, so replay may repeat what was written.
    pub fn write_records(&self, entries: &[(u64, &JournalEntry)]) -> StoreResult<()> {
        for (seq, entry) in entries {
            let event = &entry.event;
            match &event.kind {
                EventKind::SubscriptionRevoked(revocation) => {
                    let key = subscription_key(
                        event.room.provider,
                        &event.room.app,
                        &revocation.broadcaster_id,
                    );
                    let record = Subscription {
                        broadcaster_id: revocation.broadcaster_id.clone(),
                        subscription_id: revocation.subscription_id.clone(),
                        subscription_type: revocation.subscription_type.clone(),
                        status: revocation.status.clone(),
                        at_ms: event.at_ms,
                        seq: *seq,
                    };
                    let tree = self.subscriptions()?;
                    // The latest change wins, whatever order the writes come in.
                    let newer = match tree.get(&key)? {
                        Some(bytes) => {
                            let old: Subscription = decode(&bytes)?;
                            (record.at_ms, record.seq) >= (old.at_ms, old.seq)
                        }
                        None => true,
                    };
                    if newer {
                        tree.insert(key, encode(&record)?)?;
                    }
                }
                EventKind::FileScanned(scan) => {
                    self.write_file_callback(
                        *seq,
                        entry.received_ms,
                        event.room.provider,
                        &event.room.app,
                        scan,
                    )?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The latest subscription change recorded for a broadcaster, if any.
    pub fn subscription(
        &self,
        provider: Provider,
        app: &str,
        broadcaster_id: &str,
    ) -> StoreResult<Option<Subscription>> {
        match self
            .subscriptions()?
            .get(subscription_key(provider, app, broadcaster_id))?
        {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }
}

fn subscription_key(provider: Provider, app: &str, broadcaster_id: &str) -> Vec<u8> {
    let mut key = vec![provider_byte(provider)];
    push_str(&mut key, app);
    key.extend_from_slice(broadcaster_id.as_bytes());
    key
}
