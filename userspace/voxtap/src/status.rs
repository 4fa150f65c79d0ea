//! The status socket: `voxtap run` publishes its live state ([`crate::board`]) to viewers
//! (`voxtap tui`) in the status protocol ([`voxtap_view::proto`], docs/tui.md), and the
//! viewer's side of it ([`Viewer`]).
//!
//! Each viewer has a thread of its own that builds a snapshot every [`INTERVAL`] (holding the
//! board's lock only to copy it out) and writes it without blocking: a viewer that reads
//! slowly keeps its one unfinished line and misses the snapshots in between, and one that
//! takes nothing for [`STALLED`] is dropped. The capture and worker threads never wait for a
//! viewer. At most [`MAX_VIEWERS`] attach at once; the socket is mode 0660, so only the
//! service's user and group may.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use voxtap_view::proto::{Request, Snapshot, VERSION};
use voxtap_view::tui::{Feed, FeedEvent};

use crate::board::Board;
use crate::control::{bind_local, with_short_path};

/// How often a viewer gets a snapshot.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// A viewer that takes nothing for this long is dropped.
pub const STALLED: Duration = Duration::from_secs(10);
pub const MAX_VIEWERS: usize = 8;
/// The longest request line a viewer may send.
const REQUEST_MAX: usize = 1024;

pub type SharedBoard = Arc<Mutex<Board>>;

/// Viewers served, refused for the limit, and dropped for not reading.
#[derive(Default)]
pub struct StatusFigures {
    pub attached: AtomicU64,
    pub refused: AtomicU64,
    pub stalled: AtomicU64,
    pub open: AtomicUsize,
}

pub struct StatusSocket {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    pub figures: Arc<StatusFigures>,
}

impl StatusSocket {
    /// Binds `path` (replacing a stale socket left by a killed run, never another kind of
    /// file) and serves `board` on it.
    pub fn bind(path: &Path, board: SharedBoard) -> Result<StatusSocket> {
        let listener = bind_local(path, "status")?;
        let stop = Arc::new(AtomicBool::new(false));
        let figures = Arc::new(StatusFigures::default());
        let acceptor = std::thread::Builder::new()
            .name("status".into())
            .spawn({
                let (stop, figures) = (Arc::clone(&stop), Arc::clone(&figures));
                move || accept_loop(&listener, &stop, &board, &figures)
            })
            .context("cannot start the status socket's thread")?;
        Ok(StatusSocket {
            path: path.to_path_buf(),
            stop,
            acceptor: Some(acceptor),
            figures,
        })
    }
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(
    listener: &UnixListener,
    stop: &Arc<AtomicBool>,
    board: &SharedBoard,
    figures: &Arc<StatusFigures>,
) {
    let mut viewers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                viewers.retain(|v| !v.is_finished());
                if figures.open.load(Ordering::Relaxed) >= MAX_VIEWERS {
                    figures.refused.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nonblocking(true);
                    let _ = (&stream).write_all(
                        format!("{{\"error\":\"busy: {MAX_VIEWERS} viewers attached\"}}\n")
                            .as_bytes(),
                    );
                    continue;
                }
                figures.open.fetch_add(1, Ordering::Relaxed);
                figures.attached.fetch_add(1, Ordering::Relaxed);
                let (stop, board, f) = (Arc::clone(stop), Arc::clone(board), Arc::clone(figures));
                let spawned = std::thread::Builder::new()
                    .name("status-viewer".into())
                    .spawn(move || {
                        serve(stream, &stop, &board, &f);
                        f.open.fetch_sub(1, Ordering::Relaxed);
                    });
                match spawned {
                    Ok(t) => viewers.push(t),
                    Err(_) => {
                        figures.open.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    for v in viewers {
        let _ = v.join();
    }
}

/// One viewer: a snapshot every [`INTERVAL`], its requests read in between.
fn serve(stream: UnixStream, stop: &AtomicBool, board: &SharedBoard, figures: &StatusFigures) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut detail: Option<u64> = None;
    let mut inbox: Vec<u8> = Vec::new();
    // The part of the current line the viewer has not taken yet.
    let mut out: Vec<u8> = Vec::new();
    let mut sent = 0usize;
    let mut last_progress = Instant::now();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Requests: lines of JSON.
        let mut buf = [0u8; 512];
        loop {
            match (&stream).read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    inbox.extend_from_slice(&buf[..n]);
                    while let Some(end) = inbox.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = inbox.drain(..=end).collect();
                        if let Ok(r) = serde_json::from_slice::<Request>(&line) {
                            detail = r.detail;
                            // The viewer sees its choice at once.
                            next = Instant::now();
                        }
                    }
                    if inbox.len() > REQUEST_MAX {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        if sent == out.len() && Instant::now() >= next {
            let snap = match board.lock() {
                Ok(b) => b.snapshot(detail),
                Err(_) => return,
            };
            out.clear();
            sent = 0;
            if serde_json::to_writer(&mut out, &snap).is_err() {
                return;
            }
            out.push(b'\n');
            next = Instant::now() + INTERVAL;
        }
        while sent < out.len() {
            match (&stream).write(&out[sent..]) {
                Ok(0) => return,
                Ok(n) => {
                    sent += n;
                    last_progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        if sent < out.len() && last_progress.elapsed() > STALLED {
            figures.stalled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The status socket a run on `out` publishes, as `voxtap control` finds the control socket.
pub fn default_socket(out: &Path) -> PathBuf {
    out.join("status.sock")
}

/// `voxtap tui`'s side: reads snapshots from a running voxtap, and when it goes away, says
/// so and attaches again every second.
pub struct Viewer {
    path: PathBuf,
    conn: Option<Conn>,
    follow: Option<u64>,
    retry_at: Instant,
    /// Why the last attempt failed, shown until one succeeds.
    down: Option<String>,
    announced: bool,
}

struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// A line longer than this from the daemon is not a snapshot we can use.
const SNAPSHOT_MAX: usize = 256 << 20;

impl Viewer {
    pub fn new(path: PathBuf) -> Viewer {
        Viewer {
            path,
            conn: None,
            follow: None,
            retry_at: Instant::now(),
            down: None,
            announced: false,
        }
    }

    fn connect(&mut self) -> Result<(), String> {
        let stream = with_short_path(&self.path, |p| UnixStream::connect(p))
            .map_err(|e| format!("cannot attach to {}: {e}", self.path.display()))?;
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
        };
        if self.follow.is_some() {
            send_follow(&mut conn, self.follow).map_err(|e| e.to_string())?;
        }
        self.conn = Some(conn);
        Ok(())
    }

    fn lost(&mut self, why: String) -> FeedEvent {
        self.conn = None;
        self.retry_at = Instant::now() + Duration::from_secs(1);
        // The retrying first: a narrow screen cuts the end of the banner.
        let status = format!("retrying every second: {why}");
        self.down = Some(status.clone());
        self.announced = true;
        FeedEvent::Status(Some(status))
    }

    /// Reads until a whole snapshot arrives or `timeout` passes.
    fn read(&mut self, timeout: Duration) -> FeedEvent {
        let until = Instant::now() + timeout;
        let Some(conn) = self.conn.as_mut() else {
            return FeedEvent::Nothing;
        };
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some(end) = conn.buf.iter().rposition(|&b| b == b'\n') {
                // Only the newest of the lines that are in: a viewer behind skips ahead.
                let start = conn.buf[..end]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let parsed = parse_line(&conn.buf[start..end]);
                conn.buf.drain(..=end);
                return match parsed {
                    Ok(s) => FeedEvent::Snapshot(s),
                    Err(why) => self.lost(why),
                };
            }
            if conn.buf.len() > SNAPSHOT_MAX {
                return self.lost("the daemon sent a line too long to be a snapshot".into());
            }
            if Instant::now() >= until {
                return FeedEvent::Nothing;
            }
            match conn.stream.read(&mut buf) {
                Ok(0) => return self.lost("the daemon went away".into()),
                Ok(n) => conn.buf.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.lost(format!("the daemon went away ({e})")),
            }
        }
    }
}

fn send_follow(conn: &mut Conn, call: Option<u64>) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&Request { detail: call })?;
    line.push(b'\n');
    conn.stream.write_all(&line)
}

/// One line from the daemon: a snapshot of our version, or why not.
fn parse_line(line: &[u8]) -> Result<Snapshot, String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        version: Option<u32>,
        error: Option<String>,
    }
    let probe: Probe = serde_json::from_slice(line)
        .map_err(|e| format!("the daemon sent something that is not a snapshot ({e})"))?;
    if let Some(e) = probe.error {
        return Err(format!("the daemon refused: {e}"));
    }
    match probe.version {
        Some(VERSION) => serde_json::from_slice(line)
            .map_err(|e| format!("the daemon sent a snapshot this viewer cannot read ({e})")),
        Some(v) => Err(format!(
            "the daemon speaks status protocol version {v}; this viewer speaks {VERSION}"
        )),
        None => Err("the daemon sent a line without a protocol version".into()),
    }
}

impl Feed for Viewer {
    fn poll(&mut self, timeout: Duration) -> FeedEvent {
        if self.conn.is_none() {
            if Instant::now() < self.retry_at {
                std::thread::sleep(timeout.min(self.retry_at - Instant::now()));
                return FeedEvent::Nothing;
            }
            if let Err(why) = self.connect() {
                return self.lost(why);
            }
            if self.down.take().is_some() || !self.announced {
                self.announced = true;
                return FeedEvent::Status(None);
            }
        }
        self.read(timeout)
    }

    fn follow(&mut self, call: Option<u64>) {
        self.follow = call;
        if let Some(conn) = self.conn.as_mut()
            && let Err(e) = send_follow(conn, call)
        {
            let _ = self.lost(format!("the daemon went away ({e})"));
        }
    }
}

/// `replay --tui`'s feed: the board in this process.
pub struct LocalFeed {
    pub board: SharedBoard,
    pub follow: Option<u64>,
    next: Instant,
}

impl LocalFeed {
    pub fn new(board: SharedBoard) -> LocalFeed {
        LocalFeed {
            board,
            follow: None,
            next: Instant::now(),
        }
    }
}

impl Feed for LocalFeed {
    fn poll(&mut self, timeout: Duration) -> FeedEvent {
        let now = Instant::now();
        if now < self.next {
            std::thread::sleep(timeout.min(self.next - now));
            return FeedEvent::Nothing;
        }
        self.next = now + INTERVAL;
        match self.board.lock() {
            Ok(b) => FeedEvent::Snapshot(b.snapshot(self.follow)),
            Err(_) => FeedEvent::Status(Some("the replay stopped (a thread panicked)".into())),
        }
    }

    fn follow(&mut self, call: Option<u64>) {
        self.follow = call;
        self.next = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn board() -> SharedBoard {
        let mut b = Board::default();
        b.head_mut().source = "test".into();
        Arc::new(Mutex::new(b))
    }

    fn next_snapshot(v: &mut Viewer) -> Snapshot {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let FeedEvent::Snapshot(s) = v.poll(Duration::from_millis(100)) {
                return s;
            }
        }
        panic!("no snapshot within 5 s");
    }

    #[test]
    fn viewers_get_snapshots_and_a_viewer_that_reads_nothing_holds_nobody_up() {
        let dir = std::env::temp_dir().join(format!("voxtap-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("status.sock");
        let b = board();
        let socket = StatusSocket::bind(&path, Arc::clone(&b)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);

        // One that never reads, with a board so big its lines fill the socket's buffer.
        {
            let mut g = b.lock().unwrap();
            g.head_mut().source = "x".repeat(1 << 20);
        }
        let _stuck = UnixStream::connect(&path).unwrap();
        let mut a = Viewer::new(path.clone());
        let mut c = Viewer::new(path.clone());
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(next_snapshot(&mut a).source.len(), 1 << 20);
            assert_eq!(next_snapshot(&mut c).version, VERSION);
        }
        assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
        // The board is never held by a stuck viewer.
        let t = Instant::now();
        drop(b.lock().unwrap());
        assert!(t.elapsed() < Duration::from_millis(100));
        assert_eq!(socket.figures.open.load(Ordering::Relaxed), 3);
        drop(socket);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_viewer_says_when_the_daemon_is_gone_and_attaches_again() {
        let dir = std::env::temp_dir().join(format!("voxtap-status-r-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("status.sock");
        let mut v = Viewer::new(path.clone());
        match v.poll(Duration::from_millis(10)) {
            FeedEvent::Status(Some(s)) => assert!(s.contains("cannot attach"), "{s}"),
            other => panic!("{other:?}"),
        }
        let socket = StatusSocket::bind(&path, board()).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        let mut cleared = false;
        while Instant::now() < until && !cleared {
            cleared = matches!(v.poll(Duration::from_millis(100)), FeedEvent::Status(None));
        }
        assert!(cleared, "the banner never went");
        assert_eq!(next_snapshot(&mut v).source, "test");
        drop(socket);
        let until = Instant::now() + Duration::from_secs(5);
        let mut lost = None;
        while Instant::now() < until && lost.is_none() {
            if let FeedEvent::Status(Some(s)) = v.poll(Duration::from_millis(100)) {
                lost = Some(s);
            }
        }
        assert!(lost.is_some_and(|s| s.contains("went away")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn past_the_viewer_limit_one_is_told_busy_and_the_others_keep_their_snapshots() {
        let dir = std::env::temp_dir().join(format!("voxtap-status-n-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("status.sock");
        let socket = StatusSocket::bind(&path, board()).unwrap();
        let mut viewers: Vec<Viewer> = (0..MAX_VIEWERS)
            .map(|_| Viewer::new(path.clone()))
            .collect();
        for v in &mut viewers {
            assert_eq!(next_snapshot(v).version, VERSION);
        }
        let mut late = Viewer::new(path.clone());
        let until = Instant::now() + Duration::from_secs(5);
        let mut refused = None;
        while Instant::now() < until && refused.is_none() {
            if let FeedEvent::Status(Some(s)) = late.poll(Duration::from_millis(100)) {
                refused = Some(s);
            }
        }
        let why = refused.expect("the ninth viewer is refused");
        assert!(why.contains("busy"), "{why}");
        assert_eq!(socket.figures.refused.load(Ordering::Relaxed), 1);
        for v in &mut viewers {
            assert_eq!(next_snapshot(v).version, VERSION);
        }
        // One leaves: there is room again.
        viewers.pop();
        let until = Instant::now() + Duration::from_secs(5);
        while socket.figures.open.load(Ordering::Relaxed) >= MAX_VIEWERS && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(next_snapshot(&mut late).version, VERSION);
        drop(socket);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_regular_file_is_never_replaced_by_the_socket() {
        let dir = std::env::temp_dir().join(format!("voxtap-status-f-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("catalog.sqlite");
        std::fs::write(&path, b"precious").unwrap();
        let e = StatusSocket::bind(&path, board()).err().unwrap();
        assert!(format!("{e:#}").contains("not a socket"), "{e:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lines_of_another_version_or_errors_are_refused_with_a_reason() {
        assert!(
            parse_line(br#"{"version":2}"#)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(
            parse_line(br#"{"error":"busy"}"#)
                .unwrap_err()
                .contains("busy")
        );
        assert!(parse_line(b"garbage").is_err());
        let ok = serde_json::to_vec(&Snapshot {
            version: VERSION,
            ..Snapshot::default()
        })
        .unwrap();
        assert_eq!(parse_line(&ok).unwrap().version, VERSION);
    }
}
