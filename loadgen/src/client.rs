//! A keep-alive HTTP/1.1 client connection over loopback, deliberately minimal.
//!
//! Why not hyper or awc: on a 2-core machine the generator competes with the server for the same
//! cores, so every microsecond it spends per request is taken from the server it measures. The
//! requests here are rendered in full before the run (`traffic.rs`), so sending one is a single
//! `write` of ready bytes; a general client would rebuild and re-validate the request head, go
//! through a connection pool and a dispatcher task, and allocate per request. What remains, the
//! response parse, is done by `httparse` (the parser under hyper), so no hand-written HTTP parsing
//! decides a status code. The price is scope: `Content-Length` bodies only (what actix-web sends
//! for every answer roomledger and the ceiling give), no pipelining, no TLS, loopback only.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted (a page of sessions is well below it).
const MAX_RESPONSE: usize = 64 << 20;

pub struct Connection {
    address: SocketAddr,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

/// One answer: the status and the body, borrowed from the connection's buffer.
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
}

impl Connection {
    /// A connection that connects on its first request (and again after the server closed it).
    pub fn new(address: SocketAddr) -> Connection {
        Connection {
            address,
            stream: None,
            buffer: Vec::with_capacity(16 * 1024),
        }
    }

    pub async fn connect(&mut self) -> io::Result<()> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.address).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        Ok(())
    }

    /// Sends a complete request and reads its answer. On any error the connection is dropped
    /// and the next request reconnects.
    pub async fn request(&mut self, request: &[u8]) -> io::Result<Response<'_>> {
        match self.exchange(request).await {
            Ok((status, body_start, body_end, close)) => {
                if close {
                    self.stream = None;
                }
                Ok(Response {
                    status,
                    body: &self.buffer[body_start..body_end],
                })
            }
            Err(error) => {
                self.stream = None;
                Err(error)
            }
        }
    }

    /// A GET of `path` (with its query) on this connection's server.
    pub async fn get(&mut self, path: &str) -> io::Result<Response<'_>> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: roomledger-loadgen\r\nAccept: application/json\r\n\r\n",
            self.address
        );
        self.request(request.as_bytes()).await
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<(u16, usize, usize, bool)> {
        self.connect().await?;
        let stream = self
            .stream
            .as_mut()
            .expect("invariant: connect() leaves a stream");
        stream.write_all(request).await?;
        self.buffer.clear();
        loop {
            if self.buffer.capacity() - self.buffer.len() < 4096 {
                self.buffer.reserve(16 * 1024);
            }
            let read = stream.read_buf(&mut self.buffer).await?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection before answering",
                ));
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let head = match response.parse(&self.buffer) {
                Ok(httparse::Status::Complete(head)) => head,
                Ok(httparse::Status::Partial) => continue,
                Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidData, error)),
            };
            let status = response.code.unwrap_or(0);
            let mut length = None;
            let mut close = false;
            for header in response.headers.iter() {
                if header.name.eq_ignore_ascii_case("content-length") {
                    length = std::str::from_utf8(header.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok());
                } else if header.name.eq_ignore_ascii_case("connection") {
                    close = header.value.eq_ignore_ascii_case(b"close");
                }
            }
            let Some(length) = length else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the answer has no Content-Length",
                ));
            };
            if length > MAX_RESPONSE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the answer is too large",
                ));
            }
            let end = head + length;
            while self.buffer.len() < end {
                self.buffer.reserve(end - self.buffer.len());
                if stream.read_buf(&mut self.buffer).await? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection in the middle of an answer",
                    ));
                }
            }
            return Ok((status, head, end, close));
        }
    }
}
