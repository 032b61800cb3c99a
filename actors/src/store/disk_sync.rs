//! What sled 0.34's flush leaves out on Linux, done after it so that a flushed write survives a
//! power loss, not only a crash of the process.
//!
//! sled ends a flush with `sync_file_range` on the log range it wrote. That writes the pages
//! out but persists no file metadata (the log file grows by appending, so its new size and
//! blocks are metadata) and does not flush the disk's write cache; and a message larger than a
//! quarter of a segment (128 KiB: a journal value of a large group commit, a tree node that
//! holds several) goes to a file under `blobs/` that sled never syncs at all (sled issues #1077
//! and #1452). So after sled's flush this `fdatasync`s every blob file that is new or has grown
//! since it last looked, the `blobs` directory when one was new (its entry), and the log file.
//!
//! It narrows what sled leaves open, it cannot close it: sled has already made the log durable
//! up to the flush, pointers to those blobs included, when this runs. A power loss in between
//! can only cost what was not yet acknowledged, unless sled reused a segment holding the
//! previous version of a node in that moment.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

pub(super) struct DiskSync {
    log: File,
    blobs: PathBuf,
    /// Blob file name → the length it had when it was last synced.
    synced: Mutex<HashMap<std::ffi::OsString, u64>>,
}

impl DiskSync {
    /// Over the sled database at `path`, after sled has opened it (it creates `db` and `blobs`).
    pub(super) fn open(path: &Path) -> io::Result<DiskSync> {
        Ok(DiskSync {
            log: File::open(path.join("db"))?,
            blobs: path.join("blobs"),
            synced: Mutex::new(HashMap::new()),
        })
    }

    /// Syncs what sled's flush did not; returns how many blob files it synced.
    pub(super) fn sync(&self) -> io::Result<usize> {
        // One sweep at a time: two would sync the same files and race on what was synced.
        let mut synced = self.synced.lock();
        let mut present = HashMap::with_capacity(synced.len());
        let mut count = 0;
        let mut new_entry = false;
        for entry in std::fs::read_dir(&self.blobs)? {
            let entry = entry?;
            let name = entry.file_name();
            // A blob sled removed since read_dir listed it needs no sync.
            let len = match entry.metadata() {
                Ok(metadata) => metadata.len(),
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            let known = synced.get(&name).copied();
            if known != Some(len) {
                match File::open(entry.path()) {
                    Ok(file) => file.sync_data()?,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error),
                }
                new_entry |= known.is_none();
                count += 1;
            }
            present.insert(name, len);
        }
        if new_entry {
            File::open(&self.blobs)?.sync_all()?;
        }
        self.log.sync_data()?;
        // Forget files sled has removed, so the map stays as small as the directory.
        *synced = present;
        Ok(count)
    }
}
