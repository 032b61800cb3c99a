//! `ceiling`: roomledger's HTTP stack with nothing behind it. An actix-web server with the same
//! worker count and the same body handling whose only handler reads the body, parses it as
//! JSON and answers 200 with a small JSON body. The load generator's throughput against it is
//! what the HTTP stack itself allows on this machine, so roomledger's throughput can be stated
//! as a share of it (README "Performance").

use std::net::SocketAddr;

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use roomledger_loadgen::bare;

#[derive(Parser, Debug)]
#[command(about = "A bare actix-web JSON endpoint: the ceiling roomledger is compared with")]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// HTTP worker threads; 0 means one per core, as roomledger's default.
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

// The same allocator as roomledger's binary, so that the ratio compares like with like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn accept(body: web::Bytes) -> HttpResponse {
    bare::refuse_malformed(&body).unwrap_or_else(bare::accepted)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let workers = bare::worker_count(cli.workers);
    let server = HttpServer::new(|| {
        bare::name_http_worker();
        App::new()
            .app_data(web::PayloadConfig::new(bare::MAX_BODY_BYTES))
            // For scripts that wait until the server is up, as they do for roomledger.
            .route("/health", web::get().to(HttpResponse::Ok))
            .default_service(web::to(accept))
    })
    .workers(workers)
    .bind(cli.bind)?;
    for address in server.addrs() {
        println!("ceiling listening on http://{address} with {workers} workers");
    }
    server.run().await
}
