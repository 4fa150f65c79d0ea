//! `MetricsServer` over real sockets: scraped with curl, checked by promtool (when they are
//! installed), and held up by clients that misbehave.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use voxtap_view::metrics::{CONTENT_TYPE, MetricsServer, render};
use voxtap_view::proto::{
    Drops, RecordingCounts, Snapshot, Totals, VERSION, WorkerLoad, WriterLoad,
};

fn snapshot() -> Snapshot {
    Snapshot {
        version: VERSION,
        source: "eth0 (AF_XDP \"native\", zero-copy)\\q".into(),
        mode: "xdp".into(),
        now: 1_700_000_000.5,
        uptime_s: 61.25,
        totals: Totals {
            frames: 1001,
            bytes: 1002,
            sip_messages: 1003,
            rtp_packets: 1004,
            rtcp_packets: 1005,
            other: 1006,
            calls_seen: 1007,
            calls_answered: 1008,
            calls_picked_up: 1009,
        },
        drops: Drops {
            kernel_ring_full: 2001,
            kernel_fill_ring_empty: 2002,
            kernel_dropped: 2003,
            kernel_redirect_failed: 2012,
            queue_full: 2004,
            malformed: 2005,
            bounds: 2006,
            late_audio: 2007,
            decrypt_failures: 2008,
            undecodable_streams: 2009,
            encrypted_streams: 2010,
            network_rtp_lost: 2011,
        },
        kernel_filter: Default::default(),
        workers: vec![
            WorkerLoad {
                rtp_pps: 10.0,
                rtp_packets: 3001,
                queue_fill: 0.25,
            },
            WorkerLoad {
                rtp_pps: 11.0,
                rtp_packets: 3002,
                queue_fill: 0.75,
            },
        ],
        active_calls: 4001,
        active_recordings: 4002,
        recordings: RecordingCounts {
            started: 5001,
            written: 5002,
            failed: 5003,
            deleted: 5004,
        },
        writer: WriterLoad {
            queued_events: 6001,
            lag_s: 0.5,
            refused: 6002,
        },
        ..Snapshot::default()
    }
}

type Latest = Arc<dyn Fn() -> Option<Arc<Snapshot>> + Send + Sync>;

fn fixed(s: Option<Snapshot>) -> Latest {
    let s = s.map(Arc::new);
    Arc::new(move || s.clone())
}

fn start(latest: Latest) -> MetricsServer {
    MetricsServer::start("127.0.0.1:0".parse().unwrap(), latest).expect("start")
}

/// One request over a fresh connection; the whole response (until the server closes).
fn request(addr: SocketAddr, raw: &[u8]) -> std::io::Result<String> {
    let mut c = TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.write_all(raw)?;
    let mut out = Vec::new();
    c.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn get(addr: SocketAddr, path: &str) -> String {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .expect("request")
}

/// (status line, headers in lower case, body).
fn split(resp: &str) -> (&str, Vec<(String, String)>, &str) {
    let (head, body) = resp.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header");
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    (status, headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn have(tool: &str, arg: &str) -> bool {
    match Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("{tool}: {e}"),
    }
}

fn curl(addr: SocketAddr, path: &str) -> Option<String> {
    if !have("curl", "--version") {
        eprintln!(
            "\n!!!!!!!! SKIPPED: curl not installed (the scrape with curl was not run) !!!!!!!!\n"
        );
        return None;
    }
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {path}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8"))
}

/// `promtool check metrics` on `text`; `None` when promtool is not installed.
fn promtool(text: &str) -> Option<(bool, String)> {
    if !have("promtool", "--version") {
        eprintln!(
            "\n!!!!!!!! SKIPPED: promtool not installed (apt-get install prometheus) !!!!!!!!\n"
        );
        return None;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

#[test]
fn curl_scrapes_the_figures_and_promtool_finds_nothing_to_lint() {
    let server = start(fixed(Some(snapshot())));
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let version = env!("CARGO_PKG_VERSION");
    let want = [
        format!("voxtap_build_info{{version=\"{version}\"}} 1"),
        "voxtap_snapshot_available 1".into(),
        r#"voxtap_capture_info{mode="xdp",source="eth0 (AF_XDP \"native\", zero-copy)\\q"} 1"#
            .into(),
        "voxtap_uptime_seconds 61.25".into(),
        "voxtap_last_frame_timestamp_seconds 1700000000.5".into(),
        "voxtap_frames_total 1001".into(),
        "voxtap_frames_bytes_total 1002".into(),
        "voxtap_sip_messages_total 1003".into(),
        "voxtap_rtp_packets_total 1004".into(),
        "voxtap_rtcp_packets_total 1005".into(),
        "voxtap_other_frames_total 1006".into(),
        "voxtap_calls_seen_total 1007".into(),
        "voxtap_calls_picked_up_total 1009".into(),
        "voxtap_calls_answered_total 1008".into(),
        r#"voxtap_dropped_total{place="kernel",reason="ring_full"} 2001"#.into(),
        r#"voxtap_xdp_frames_total{verdict="sip"} 0"#.into(),
        r#"voxtap_xdp_frames_total{verdict="rtp"} 0"#.into(),
        r#"voxtap_xdp_frames_total{verdict="fragment"} 0"#.into(),
        r#"voxtap_xdp_frames_total{verdict="rtp_guess"} 0"#.into(),
        r#"voxtap_xdp_frames_total{verdict="dropped"} 0"#.into(),
        r#"voxtap_xdp_frames_total{verdict="parse_failed"} 0"#.into(),
        "voxtap_xdp_decapsulated_total 0".into(),
        "voxtap_kernel_fill_ring_empty_total 2002".into(),
        r#"voxtap_dropped_total{place="kernel",reason="afpacket"} 2003"#.into(),
        r#"voxtap_dropped_total{place="kernel",reason="no_socket"} 2012"#.into(),
        r#"voxtap_dropped_total{place="voxtap",reason="queue_full"} 2004"#.into(),
        r#"voxtap_dropped_total{place="voxtap",reason="malformed"} 2005"#.into(),
        r#"voxtap_dropped_total{place="voxtap",reason="bounds"} 2006"#.into(),
        r#"voxtap_dropped_total{place="audio",reason="late"} 2007"#.into(),
        r#"voxtap_dropped_total{place="audio",reason="decrypt_failed"} 2008"#.into(),
        r#"voxtap_undecoded_streams_total{reason="undecodable"} 2009"#.into(),
        r#"voxtap_undecoded_streams_total{reason="encrypted"} 2010"#.into(),
        r#"voxtap_dropped_total{place="network",reason="rtp_lost"} 2011"#.into(),
        r#"voxtap_worker_rtp_packets_total{worker="0"} 3001"#.into(),
        r#"voxtap_worker_rtp_packets_total{worker="1"} 3002"#.into(),
        r#"voxtap_worker_queue_fill_ratio{worker="0"} 0.25"#.into(),
        r#"voxtap_worker_queue_fill_ratio{worker="1"} 0.75"#.into(),
        "voxtap_active_calls 4001".into(),
        "voxtap_active_recordings 4002".into(),
        "voxtap_recordings_started_total 5001".into(),
        r#"voxtap_recordings_finished_total{result="written"} 5002"#.into(),
        r#"voxtap_recordings_finished_total{result="failed"} 5003"#.into(),
        "voxtap_recordings_deleted_total 5004".into(),
        "voxtap_catalog_writer_queued_events 6001".into(),
        "voxtap_catalog_writer_lag_seconds 0.5".into(),
        "voxtap_recordings_write_refused 6002".into(),
        "voxtap_input_finished 0".into(),
    ];

    // The same bytes over a raw socket, with the headers.
    let resp = get(addr, "/metrics");
    let (status, headers, body) = split(&resp);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "content-type"), Some(CONTENT_TYPE));
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(header(&headers, "connection"), Some("close"));
    let mut direct = String::new();
    render(&snapshot(), &mut direct);
    assert_eq!(body, direct);
    let samples: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
    for w in &want {
        assert!(samples.contains(&w.as_str()), "missing {w}\n{body}");
    }
    assert_eq!(samples.len(), want.len(), "{body}");

    // promtool on what curl scraped, or (without curl) on what the socket gave.
    let scraped = match curl(addr, "/metrics") {
        Some(scraped) => {
            assert_eq!(scraped, direct);
            // A query string is ignored.
            assert_eq!(curl(addr, "/metrics?x=1").unwrap(), direct);
            assert!(curl(addr, "/").unwrap().contains("href=\"/metrics\""));
            scraped
        }
        None => body.to_string(),
    };
    if let Some((ok, said)) = promtool(&scraped) {
        assert!(ok, "promtool check metrics failed:\n{said}\n{scraped}");
        assert!(said.trim().is_empty(), "promtool said:\n{said}");
    }
}

#[test]
fn promtool_would_catch_a_bad_family() {
    // The oracle itself: promtool does flag a counter without _total, so its silence above
    // means something.
    let bad = "# HELP voxtap_frames counted\n# TYPE voxtap_frames counter\nvoxtap_frames 1\n";
    if let Some((ok, said)) = promtool(bad) {
        assert!(!ok && said.contains("_total"), "{ok} {said}");
    }
}

#[test]
fn promtool_accepts_the_edge_cases() {
    // No workers (families without samples), no snapshot yet, a default snapshot, odd floats.
    let mut odd = snapshot();
    odd.workers.clear();
    odd.writer.lag_s = f64::NAN;
    odd.progress = Some(f64::INFINITY);
    odd.source = "two\nlines".into();
    let mut texts = Vec::new();
    for s in [Some(odd), None, Some(Snapshot::default())] {
        let server = start(fixed(s));
        let resp = get(server.local_addr(), "/metrics");
        texts.push(split(&resp).2.to_string());
    }
    assert!(texts[0].contains("voxtap_catalog_writer_lag_seconds NaN\n"));
    assert!(texts[0].contains("voxtap_replay_progress_ratio +Inf\n"));
    assert!(texts[0].contains(r#"source="two\nlines""#));
    for t in &texts {
        if let Some((ok, said)) = promtool(t) {
            assert!(ok && said.trim().is_empty(), "promtool:\n{said}\n{t}");
        }
    }
}

#[test]
fn before_the_first_snapshot_build_information_only() {
    let server = start(fixed(None));
    let resp = get(server.local_addr(), "/metrics");
    let (status, _, body) = split(&resp);
    assert_eq!(status, "HTTP/1.1 200 OK");
    let samples: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        samples,
        [
            format!(
                "voxtap_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )
            .as_str(),
            "voxtap_snapshot_available 0"
        ]
    );
}

#[test]
fn each_scrape_renders_the_newest_snapshot() {
    let cell: Arc<Mutex<Option<Arc<Snapshot>>>> = Arc::new(Mutex::new(None));
    let c = Arc::clone(&cell);
    let server = start(Arc::new(move || c.lock().unwrap().clone()));
    let addr = server.local_addr();
    assert!(get(addr, "/metrics").contains("\nvoxtap_snapshot_available 0\n"));
    for frames in [7, 8] {
        let mut s = snapshot();
        s.totals.frames = frames;
        *cell.lock().unwrap() = Some(Arc::new(s));
        let body = get(addr, "/metrics");
        assert!(body.contains(&format!("\nvoxtap_frames_total {frames}\n")));
        assert!(body.contains("\nvoxtap_snapshot_available 1\n"));
    }
}

#[test]
fn other_paths_and_methods() {
    let server = start(fixed(Some(snapshot())));
    let addr = server.local_addr();

    let resp = get(addr, "/nope");
    let (status, headers, body) = split(&resp);
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
    assert!(get(addr, "/metricsx").starts_with("HTTP/1.1 404 "));
    assert!(get(addr, "/metrics/").starts_with("HTTP/1.1 404 "));

    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let resp = request(
            addr,
            format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
                .as_bytes(),
        )
        .unwrap();
        let (status, headers, _) = split(&resp);
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed", "{method}");
        assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));
    }

    // HEAD: the headers of a GET, no body.
    let resp = request(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, headers, body) = split(&resp);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.is_empty());
    let mut direct = String::new();
    render(&snapshot(), &mut direct);
    assert_eq!(
        header(&headers, "content-length"),
        Some(direct.len().to_string().as_str())
    );

    // Garbage and HTTP/2 prior knowledge.
    assert!(
        request(addr, b"hello\r\n\r\n")
            .unwrap()
            .starts_with("HTTP/1.1 400 ")
    );
    assert!(
        request(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .unwrap()
            .starts_with("HTTP/1.1 505 ")
    );
    // HTTP/1.0 and bare line feeds are served.
    assert!(
        request(addr, b"GET /metrics HTTP/1.0\n\n")
            .unwrap()
            .starts_with("HTTP/1.1 200 OK\r\n")
    );
}

#[test]
fn a_silent_client_does_not_delay_a_scrape() {
    let server = start(fixed(Some(snapshot())));
    let addr = server.local_addr();
    let silent = TcpStream::connect(addr).unwrap();
    let half = TcpStream::connect(addr).unwrap();
    (&half).write_all(b"GET /metr").unwrap();
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let resp = get(addr, "/metrics");
    assert!(resp.starts_with("HTTP/1.1 200 OK"));
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "a scrape took {:?} beside a silent client",
        t.elapsed()
    );
    // And the server gives up on the silent ones after its head timeout (2 s).
    for mut c in [silent, half] {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        let mut b = Vec::new();
        let _ = c.read_to_end(&mut b);
        assert!(b.is_empty(), "{}", String::from_utf8_lossy(&b));
        assert!(
            t.elapsed() < Duration::from_millis(2600),
            "closed after {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn a_trickling_client_gets_two_seconds_in_all() {
    // One byte every 300 ms: each read comes within any per-read timeout, but the head is
    // never done; the server closes after 2 s in all, not 2 s per byte.
    let server = start(fixed(Some(snapshot())));
    let mut c = TcpStream::connect(server.local_addr()).unwrap();
    let t = Instant::now();
    let mut closed = None;
    for b in b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa".iter() {
        if c.write_all(&[*b]).is_err() {
            closed = Some(t.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(300));
        if t.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if closed.is_none() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = Vec::new();
        let _ = c.read_to_end(&mut b);
        assert!(b.is_empty());
        closed = Some(t.elapsed());
    }
    let closed = closed.unwrap();
    assert!(
        closed < Duration::from_millis(4500),
        "closed after {closed:?}"
    );
}

#[test]
fn a_huge_request_head_is_refused() {
    let server = start(fixed(Some(snapshot())));
    let addr = server.local_addr();
    let mut raw = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    raw.resize(100 * 1024, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    // The server stops reading at 8 KiB: the write may fail part way (reset), which is fine.
    let _ = c.write_all(&raw);
    let mut b = Vec::new();
    let _ = c.read_to_end(&mut b);
    let resp = String::from_utf8_lossy(&b);
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 431 "),
        "{resp}"
    );
    assert!(!resp.contains("voxtap_"), "served a huge head");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A head just past 8 KiB, sent whole, gets a 431 it can read.
    let mut raw = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    raw.resize(9 * 1024, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    let resp = request(addr, &raw).unwrap_or_default();
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 431 "),
        "{resp}"
    );
    // A head just under it is served.
    let mut raw = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    raw.resize(7 * 1024, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    assert!(request(addr, &raw).unwrap().starts_with("HTTP/1.1 200 OK"));
    // And the server still serves.
    assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn connections_past_the_cap_are_closed_at_once() {
    let server = start(fixed(Some(snapshot())));
    let addr = server.local_addr();
    let mut idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
    thread::sleep(Duration::from_millis(200));
    // The ninth: refused at once (a 503, or closed), well before the idle ones time out.
    for _ in 0..3 {
        let t = Instant::now();
        let resp = request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").unwrap_or_default();
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 503 "),
            "served past the cap: {resp}"
        );
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    // Two idle clients leave: two slots come free.
    for c in idle.drain(..2) {
        c.shutdown(Shutdown::Both).unwrap();
    }
    let t = Instant::now();
    loop {
        let resp = request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").unwrap_or_default();
        if resp.starts_with("HTTP/1.1 200 OK") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "no slot came free: {resp}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    drop(idle);
}

#[test]
fn drop_returns_promptly_with_clients_attached() {
    let server = start(fixed(Some(snapshot())));
    let addr = server.local_addr();
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    drop(server);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "drop took {:?}",
        t.elapsed()
    );
    // Their connections were closed, and nothing listens any more.
    for c in [&mut silent, &mut half] {
        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut b = Vec::new();
        let _ = c.read_to_end(&mut b);
        assert!(b.is_empty());
    }
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn a_taken_address_is_named_in_the_error() {
    let first = start(fixed(None));
    let addr = first.local_addr();
    let err = match MetricsServer::start(addr, fixed(None)) {
        Ok(_) => panic!("bound {addr} twice"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot listen for metrics on {addr}: ")),
        "{msg}"
    );
}
