//! ACRCloud file-scanning callbacks, one record per accepted callback.
//!
//! Tree `files`: (provider, file id, journal seq) → [`FileCallback`]. The seq makes the key
//! deterministic, so a replayed journal entry overwrites its own record, and orders a file's
//! callbacks by arrival: the last one is the file's latest state.

use serde::{Deserialize, Serialize};
use sled::Tree;

use super::{Store, StoreResult, decode, encode, provider_byte, push_str};
use crate::model::{FileScan, Provider};

const FILES: &str = "files";

/// Most callbacks returned for one file; a file goes through a handful of states.
const MAX_CALLBACKS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCallback {
    pub seq: u64,
    pub received_ms: i64,
    pub app: String,
    pub scan: FileScan,
}

impl Store {
    fn files(&self) -> StoreResult<Tree> {
        Ok(self.db.open_tree(FILES)?)
    }

    pub(super) fn write_file_callback(
        &self,
        seq: u64,
        received_ms: i64,
        provider: Provider,
        app: &str,
        scan: &FileScan,
    ) -> StoreResult<()> {
        let mut key = file_prefix(provider, &scan.file_id);
        key.extend_from_slice(&seq.to_be_bytes());
        let record = FileCallback {
            seq,
            received_ms,
            app: app.to_owned(),
            scan: scan.clone(),
        };
        self.files()?.insert(key, encode(&record)?)?;
        Ok(())
    }

    /// A file's callbacks in the order they arrived (at most the latest 1000).
    pub fn file_callbacks(
        &self,
        provider: Provider,
        file_id: &str,
    ) -> StoreResult<Vec<FileCallback>> {
        let mut callbacks = Vec::new();
        for item in self
            .files()?
            .scan_prefix(file_prefix(provider, file_id))
            .rev()
            .take(MAX_CALLBACKS)
        {
            let (_, value) = item?;
            callbacks.push(decode(&value)?);
        }
        callbacks.reverse();
        Ok(callbacks)
    }
}

fn file_prefix(provider: Provider, file_id: &str) -> Vec<u8> {
    let mut key = vec![provider_byte(provider)];
    // Length-prefixed, so one file id is never a prefix of another's keys.
    push_str(&mut key, file_id);
    key
}
