//! `journal-floor`: the ceiling plus the one thing the durability contract makes unavoidable.
//! Each request's body is parsed as the ceiling parses it, then appended to a sled journal by
//! group commit (one thread takes every waiting body, stores the group as one value, flushes
//! sled and `fdatasync`s its log, as roomledger does with `[storage] sync_to_disk`), and only
//! then answered 200; `--durability` swaps the journal for the comparisons the README gives.
//! No signature check, no dedupe, no rooms, no sessions: any server that keeps "a 2xx means
//! the event is in the sled journal and flushed" does at least this much, so at the same load
//! its throughput is an upper bound for roomledger's on this machine (README "Performance").

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use roomledger_loadgen::bare;
use serde_json::json;
use tokio::sync::oneshot;

#[derive(Parser, Debug)]
#[command(about = "A bare actix-web JSON endpoint that answers only after a durable journal write")]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:8092")]
    bind: SocketAddr,
    /// HTTP worker threads; 0 means one per core, as roomledger's default.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// The journal's directory (created; its contents are the caller's to remove).
    #[arg(long)]
    data: PathBuf,
    /// Where a group goes, and how far, before it is answered.
    #[arg(long, value_enum, default_value_t = Durability::SledSync)]
    durability: Durability,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// sled insert, flush, and `fdatasync` of sled's log: roomledger's default.
    SledSync,
    /// sled insert and flush only: roomledger with `[storage] sync_to_disk = false`.
    SledFlush,
    /// An append to a plain file and its `fdatasync`: a journal outside sled, the least a
    /// power-loss-safe journal can do.
    FileSync,
    /// Nothing written: the committer answers the group at once. What the hand-off to a
    /// committer thread and back costs by itself.
    None,
}

/// The journal the committer writes each group to, as one value.
enum Journal {
    Sled {
        db: sled::Db,
        tree: sled::Tree,
        /// sled's log file, synced after each flush when asked to.
        log: Option<File>,
    },
    File(File),
    Nothing,
}

impl Journal {
    fn open(durability: Durability, dir: &Path) -> std::io::Result<Journal> {
        let open_sled = |sync: bool| -> std::io::Result<Journal> {
            // As roomledger opens its store (`Store::open`, the default `cache_mb`).
            let db = sled::Config::new()
                .path(dir)
                .cache_capacity(64 * 1024 * 1024)
                .flush_every_ms(Some(1000))
                .open()
                .map_err(std::io::Error::other)?;
            let tree = db.open_tree("journal").map_err(std::io::Error::other)?;
            let log = if sync {
                Some(File::open(dir.join("db"))?)
            } else {
                None
            };
            Ok(Journal::Sled { db, tree, log })
        };
        match durability {
            Durability::SledSync => open_sled(true),
            Durability::SledFlush => open_sled(false),
            Durability::FileSync => {
                std::fs::create_dir_all(dir)?;
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("journal"))?;
                // The file's entry in its directory, once: `fdatasync` of the file covers the rest.
                File::open(dir)?.sync_all()?;
                Ok(Journal::File(file))
            }
            Durability::None => Ok(Journal::Nothing),
        }
    }

    fn append(&mut self, sequence: u64, value: &[u8]) -> std::io::Result<()> {
        match self {
            Journal::Sled { db, tree, log } => {
                tree.insert(sequence.to_be_bytes(), value)
                    .and_then(|_| db.flush())
                    .map_err(std::io::Error::other)?;
                match log {
                    Some(log) => log.sync_data(),
                    None => Ok(()),
                }
            }
            Journal::File(file) => {
                file.write_all(value)?;
                file.sync_data()
            }
            Journal::Nothing => Ok(()),
        }
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Requests waiting for the committer, as roomledger's `[journal] queue`.
const QUEUE: usize = 8192;

type Submission = (web::Bytes, oneshot::Sender<bool>);

async fn accept(body: web::Bytes, journal: web::Data<SyncSender<Submission>>) -> HttpResponse {
    if let Some(malformed) = bare::refuse_malformed(&body) {
        return malformed;
    }
    let (reply, answer) = oneshot::channel();
    let durable = match journal.try_send((body, reply)) {
        Ok(()) => answer.await.unwrap_or(false),
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
    };
    if durable {
        bare::accepted()
    } else {
        HttpResponse::ServiceUnavailable().json(json!({
            "error": "unavailable",
            "message": "the journal could not be written",
        }))
    }
}

/// Group commit: everything waiting goes into one value, one write, then the answers.
fn commit_groups(mut journal: Journal, submissions: Receiver<Submission>) {
    let mut sequence: u64 = 0;
    let mut group = Vec::new();
    let mut value = Vec::new();
    while let Ok(first) = submissions.recv() {
        group.push(first);
        while group.len() < QUEUE {
            match submissions.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        value.clear();
        for (body, _) in &group {
            value.extend_from_slice(&(body.len() as u32).to_le_bytes());
            value.extend_from_slice(body);
        }
        sequence += 1;
        let durable = journal.append(sequence, &value).is_ok();
        for (_, reply) in group.drain(..) {
            let _ = reply.send(durable);
        }
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let workers = bare::worker_count(cli.workers);
    let store = Journal::open(cli.durability, &cli.data)?;
    let (journal, submissions) = sync_channel::<Submission>(QUEUE);
    std::thread::Builder::new()
        .name("journal-committer".into())
        .spawn(move || commit_groups(store, submissions))?;
    let journal = web::Data::new(journal);
    let server = HttpServer::new(move || {
        bare::name_http_worker();
        App::new()
            .app_data(web::PayloadConfig::new(bare::MAX_BODY_BYTES))
            .app_data(journal.clone())
            .route("/health", web::get().to(HttpResponse::Ok))
            .default_service(web::to(accept))
    })
    .workers(workers)
    .bind(cli.bind)?;
    // Named as on the command line (`sled-sync`), so the line can be pasted back.
    let durability = clap::ValueEnum::to_possible_value(&cli.durability)
        .map(|value| value.get_name().to_owned())
        .unwrap_or_default();
    for address in server.addrs() {
        println!(
            "journal-floor listening on http://{address} with {workers} workers, journal {durability}"
        );
    }
    server.run().await
}
