//! The journal floor binary, run for real on 127.0.0.1:0: it answers 200 only for a body that
//! is in its journal, so a `kill -9` right after the answer leaves the body there; it refuses
//! malformed JSON as the ceiling does. No timings are asserted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The floor's process, killed (SIGKILL) and reaped however the test ends.
struct Floor {
    child: Child,
    address: SocketAddr,
    /// Kept open: a floor printing into a closed pipe would fail on its next line.
    _stdout: BufReader<ChildStdout>,
}

impl Floor {
    fn start(data: &Path, durability: &str) -> Floor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_journal-floor"))
            .args([
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--durability",
                durability,
            ])
            .arg("--data")
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("journal-floor starts");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        stdout
            .read_line(&mut line)
            .expect("the floor says where it listens");
        let address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|address| address.parse().ok());
        // The line names the journal as the command line does, so it can be pasted back.
        let names_durability = line.trim_end().ends_with(&format!("journal {durability}"));
        match address.filter(|_| names_durability) {
            Some(address) => Floor {
                child,
                address,
                _stdout: stdout,
            },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no address, or not the journal {durability}, in {line:?}");
            }
        }
    }

    /// POSTs `body` and returns the response's status code.
    fn post(&self, body: &str) -> u16 {
        let mut stream = TcpStream::connect(self.address).expect("connect to the floor");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        write!(
            stream,
            "POST /webhooks/agora HTTP/1.1\r\nHost: floor\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the answer");
        response
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {response:?}"))
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bodies in a journal value or file: each a little-endian u32 length, then the bytes.
fn bodies(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some((length, rest)) = bytes.split_first_chunk::<4>() {
        let length = u32::from_le_bytes(*length) as usize;
        out.push(String::from_utf8(rest[..length].to_vec()).expect("a UTF-8 body"));
        bytes = &rest[length..];
    }
    out
}

const BODY: &str = r#"{"noticeId":"floor-1","eventType":103,"payload":{"channelName":"lobby"}}"#;

#[test]
fn a_body_answered_200_by_the_sled_floor_is_in_its_journal_after_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("journal");
    {
        let floor = Floor::start(&data, "sled-sync");
        assert_eq!(floor.post("{not json"), 400);
        assert_eq!(floor.post(BODY), 200);
    }
    let db = sled::open(&data).expect("the floor's sled opens again");
    let journal = db.open_tree("journal").expect("journal tree");
    let stored: Vec<String> = journal
        .iter()
        .values()
        .flat_map(|value| bodies(&value.expect("a journal value")))
        .collect();
    assert_eq!(stored, [BODY]);
}

#[test]
fn a_body_answered_200_by_the_file_floor_is_in_its_file_after_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let floor = Floor::start(dir.path(), "file-sync");
        assert_eq!(floor.post(BODY), 200);
        assert_eq!(floor.post("[1,"), 400);
    }
    let file = std::fs::read(dir.path().join("journal")).expect("the journal file");
    assert_eq!(bodies(&file), [BODY]);
}
