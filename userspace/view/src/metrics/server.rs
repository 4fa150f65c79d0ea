//! A small HTTP/1.1 server for `GET /metrics`, on std's `TcpListener`.
//!
//! One thread accepts (a nonblocking accept polled every [`ACCEPT_POLL`], so that stopping
//! never waits on a client); each connection is served on a thread of its own, at most
//! [`MAX_CONNECTIONS`] at once (past that a connection is closed at once). A connection has
//! [`HEAD_TIMEOUT`] in all to send its request head, at most [`MAX_HEAD`] bytes, and is
//! closed after one response. A client that sends nothing therefore holds one slot for at
//! most [`HEAD_TIMEOUT`] and never delays another scrape. Dropping the server shuts every
//! open connection down, so it returns within about [`ACCEPT_POLL`].

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::proto::Snapshot;

/// How often the accept thread looks for a connection, and for the order to stop.
pub const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// The time a client has to send its whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// The time a client has to take the whole response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest request head read; a longer one is refused (431).
pub const MAX_HEAD: usize = 8 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// After the response, what a client sent beyond its head (a body) is read and thrown away
/// for up to this long, so that closing does not reset the connection under the response.
const DRAIN_TIME: Duration = Duration::from_millis(100);
const DRAIN_BYTES: usize = 64 * 1024;

type Latest = Arc<dyn Fn() -> Option<Arc<Snapshot>> + Send + Sync>;

/// Serves `GET /metrics` from background threads until dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    latest: Latest,
    /// The connections being served, by number: a second handle on each, to shut it down
    /// when the server stops.
    open: Mutex<HashMap<u64, TcpStream>>,
}

impl Shared {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        // A handler that panicked while holding the lock leaves the map usable.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MetricsServer {
    /// Binds `addr` (the config's `metrics.listen`, e.g. 127.0.0.1:9477) and serves GET /metrics from a background thread; `latest` gives the newest snapshot (None before the first: then serve only the build-info/up metrics, not an error).
    pub fn start(
        addr: SocketAddr,
        latest: Arc<dyn Fn() -> Option<Arc<Snapshot>> + Send + Sync>,
    ) -> io::Result<MetricsServer> {
        let named = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("cannot listen for metrics on {addr}: {e}"),
            )
        };
        let listener = TcpListener::bind(addr).map_err(named)?;
        listener.set_nonblocking(true).map_err(named)?;
        let local = listener.local_addr().map_err(named)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            latest,
            open: Mutex::new(HashMap::new()),
        });
        let s = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("metrics-accept".into())
            .spawn(move || accept_loop(listener, s))
            .map_err(named)?;
        Ok(MetricsServer {
            addr: local,
            shared,
            accept: Some(accept),
        })
    }

    /// The address it listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                handlers.retain(|h| !h.is_finished());
                admit(stream, &shared, &mut handlers, &mut next_id);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock: nobody is waiting. Anything else (out of descriptors, a connection
            // reset before it was accepted) passes too: wait, and try again.
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
    drop(listener);
    for s in shared.open().values() {
        let _ = s.shutdown(Shutdown::Both);
    }
    for h in handlers {
        let _ = h.join();
    }
}

fn admit(
    stream: TcpStream,
    shared: &Arc<Shared>,
    handlers: &mut Vec<JoinHandle<()>>,
    next_id: &mut u64,
) {
    // An accepted socket does not inherit the listener's O_NONBLOCK on Linux, but say so.
    let ready = stream.set_nonblocking(false).is_ok()
        && stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_ok()
        && stream.set_read_timeout(Some(HEAD_TIMEOUT)).is_ok();
    let Ok(second) = stream.try_clone() else {
        return;
    };
    let id = *next_id;
    *next_id += 1;
    {
        let mut open = shared.open();
        if !ready || open.len() >= MAX_CONNECTIONS {
            drop(open);
            refuse_busy(stream);
            return;
        }
        open.insert(id, second);
    }
    let s = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("metrics-conn".into())
        .spawn(move || {
            let _registered = Registered { shared: &s, id };
            serve(stream, &s.latest);
        });
    match spawned {
        Ok(h) => handlers.push(h),
        // The closure (and the stream in it) is gone; forget its second handle.
        Err(_) => {
            if let Some(s) = shared.open().remove(&id) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Takes a connection off the open list when its handler ends, even by a panic.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.open().remove(&self.id);
    }
}

/// Past the connection cap: a 503 if the socket takes it at once, and close.
fn refuse_busy(mut stream: TcpStream) {
    if stream.set_nonblocking(true).is_ok() {
        let _ = stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}

enum Head {
    Complete(Vec<u8>),
    TooLarge,
    /// Timed out, closed, or failed before a whole head came.
    Gone,
}

/// Reads up to the blank line that ends the request head, within [`HEAD_TIMEOUT`] in all.
fn read_head(stream: &mut TcpStream) -> Head {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Head::Gone;
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Head::Gone,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Head::Gone,
        };
        // Look for the end from a little before the new bytes (it may straddle two reads).
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_end(&buf[from..]) {
            let end = from + end;
            if end > MAX_HEAD {
                return Head::TooLarge;
            }
            buf.truncate(end);
            return Head::Complete(buf);
        }
        if buf.len() > MAX_HEAD {
            return Head::TooLarge;
        }
    }
}

/// Where the head ends (after its blank line): `\r\n\r\n`, or a bare `\n\n`.
fn find_end(b: &[u8]) -> Option<usize> {
    (0..b.len()).find_map(|i| {
        if b[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if b[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    extra: &'static str,
    body: String,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            extra: "",
            body: format!("{body}\n"),
        }
    }
}

fn serve(mut stream: TcpStream, latest: &Latest) {
    let (response, head_only) = match read_head(&mut stream) {
        Head::Gone => return,
        Head::TooLarge => (
            Response::text(
                "431 Request Header Fields Too Large",
                "request head too large",
            ),
            false,
        ),
        Head::Complete(head) => route(&head, latest),
    };
    let mut out = String::with_capacity(160 + response.body.len());
    out.push_str("HTTP/1.1 ");
    out.push_str(response.status);
    out.push_str("\r\nContent-Type: ");
    out.push_str(response.content_type);
    out.push_str("\r\nContent-Length: ");
    out.push_str(&response.body.len().to_string());
    out.push_str("\r\nConnection: close\r\n");
    out.push_str(response.extra);
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&response.body);
    }
    if write_within(&mut stream, out.as_bytes(), WRITE_TIMEOUT).is_err() {
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    drain(&mut stream);
}

/// The response to a request head, and whether it goes without its body (HEAD).
fn route(head: &[u8], latest: &Latest) -> (Response, bool) {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return (Response::text("400 Bad Request", "bad request line"), false);
    };
    if !version.starts_with("HTTP/1.") {
        return (
            Response::text("505 HTTP Version Not Supported", "HTTP/1.x only"),
            false,
        );
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut r = Response::text("405 Method Not Allowed", "only GET and HEAD");
            r.extra = "Allow: GET, HEAD\r\n";
            return (r, false);
        }
    };
    let path = target.split(['?', '#']).next().unwrap_or("");
    let r = match path {
        "/metrics" => {
            let mut body = String::with_capacity(8 * 1024);
            match latest() {
                Some(s) => super::render(&s, &mut body),
                None => super::render_unavailable(&mut body),
            }
            Response {
                status: "200 OK",
                content_type: super::CONTENT_TYPE,
                extra: "",
                body,
            }
        }
        "/" => Response {
            status: "200 OK",
            content_type: "text/html; charset=utf-8",
            extra: "",
            body: "<!DOCTYPE html>\n<html><head><title>voxtap</title></head><body>\
                   <h1>voxtap</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n"
                .to_string(),
        },
        _ => Response::text("404 Not Found", "not found; the metrics are at /metrics"),
    };
    (r, head_only)
}

/// Writes all of `b` within `limit` in all, however slowly the client reads.
fn write_within(stream: &mut TcpStream, mut b: &[u8], limit: Duration) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    while !b.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(b) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what is left of the request until the client closes, briefly and boundedly.
fn drain(stream: &mut TcpStream) {
    let deadline = Instant::now() + DRAIN_TIME;
    let mut chunk = [0u8; 4096];
    let mut total = 0;
    while total < DRAIN_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
