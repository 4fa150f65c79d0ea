//! The hand-built snapshot the tui tests draw, and helpers to render and compare screens.
#![allow(dead_code)]

use std::path::PathBuf;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use voxtap_view::proto::*;
use voxtap_view::tui::App;

/// 2024-05-01 12:34:56 UTC.
pub const NOW: f64 = 1_714_566_896.0;

pub fn call(id: u64, start: f64, caller: &str, callee: &str) -> CallRow {
    CallRow {
        id,
        sip_call_id: format!("{id:x}f00d@pbx.example.com"),
        start,
        caller: caller.into(),
        callee: callee.into(),
        ..CallRow::default()
    }
}

/// Six calls in different states, oldest first.
pub fn calls() -> Vec<CallRow> {
    let t = NOW - 600.0;
    vec![
        CallRow {
            answered: Some(t + 5.0),
            end: Some(t + 125.0),
            direction: "inbound".into(),
            state: "ended: bye".into(),
            codec: "PCMA".into(),
            recording: "recorded".into(),
            loss: 0.003,
            jitter_ms: 3.2,
            mos: Some(4.3),
            conversation: Some(7),
            ..call(11, t, "alice@example.com", "bob@example.com")
        },
        CallRow {
            answered: Some(t + 5.0),
            end: Some(t + 125.5),
            direction: "outbound".into(),
            state: "ended: bye".into(),
            codec: "PCMA".into(),
            recording: "recorded".into(),
            loss: 0.0,
            jitter_ms: 1.1,
            mos: Some(4.4),
            conversation: Some(7),
            ..call(12, t + 0.2, "alice@example.com", "bob@10.0.0.3")
        },
        CallRow {
            direction: "inbound".into(),
            state: "ringing".into(),
            ..call(
                13,
                NOW - 4.0,
                "+4930123456789@very-long-carrier-domain.example.org",
                "sales@example.com",
            )
        },
        CallRow {
            answered: Some(NOW - 300.0),
            direction: "internal".into(),
            state: "on hold".into(),
            codec: "G722".into(),
            recording: "paused".into(),
            loss: 0.021,
            jitter_ms: 12.5,
            mos: Some(3.4),
            ..call(14, NOW - 310.0, "erin@example.com", "frank@example.com")
        },
        CallRow {
            answered: Some(NOW - 75.0),
            direction: "external-to-external".into(),
            state: "talking".into(),
            codec: "PCMU".into(),
            recording: "recording".into(),
            loss: 0.0,
            jitter_ms: 0.8,
            mos: Some(4.4),
            ..call(15, NOW - 80.0, "ivan@carrier.net", "judy@example.com")
        },
        CallRow {
            end: Some(NOW - 20.0),
            direction: "inbound".into(),
            state: "ended: cancel".into(),
            recording: "not recorded: rule 'no-internal' matched".into(),
            ..call(16, NOW - 30.0, "mallory@example.com", "oscar@example.com")
        },
    ]
}

const A: &str = "10.0.0.1:5060";
const P: &str = "10.0.0.2:5060";
const B: &str = "10.0.0.3:5060";

fn sip(ts: f64, leg: u64, src: &str, dst: &str, first: &str) -> SipMessage {
    let cseq = if first.contains("BYE") || first.starts_with("BYE") {
        "2 BYE"
    } else if first.starts_with("ACK") {
        "1 ACK"
    } else {
        "1 INVITE"
    };
    let text = format!(
        "{first}\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK{leg}{n}\r\nFrom: <sip:alice@example.com>;tag=a{leg}\r\nTo: <sip:bob@example.com>\r\nCall-ID: {leg:x}f00d@pbx.example.com\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n",
        n = (ts.fract() * 1000.0) as u64
    );
    SipMessage {
        ts,
        leg,
        src: src.into(),
        dst: dst.into(),
        transport: "udp".into(),
        first_line: first.into(),
        text,
    }
}

/// INVITE/100/180/200/ACK/BYE/200 for two legs across three addresses: alice's phone (A),
/// the PBX (P) and bob's phone (B).
pub fn messages() -> Vec<SipMessage> {
    let t = NOW - 600.0;
    vec![
        sip(t, 11, A, P, "INVITE sip:bob@example.com SIP/2.0"),
        sip(t + 0.010, 11, P, A, "SIP/2.0 100 Trying"),
        sip(t + 0.200, 12, P, B, "INVITE sip:bob@10.0.0.3 SIP/2.0"),
        sip(t + 0.210, 12, B, P, "SIP/2.0 100 Trying"),
        sip(t + 0.400, 12, B, P, "SIP/2.0 180 Ringing"),
        sip(t + 0.410, 11, P, A, "SIP/2.0 180 Ringing"),
        sip(t + 5.000, 12, B, P, "SIP/2.0 200 OK"),
        sip(t + 5.010, 11, P, A, "SIP/2.0 200 OK"),
        sip(t + 5.050, 11, A, P, "ACK sip:bob@example.com SIP/2.0"),
        sip(t + 5.060, 12, P, B, "ACK sip:bob@10.0.0.3 SIP/2.0"),
        sip(t + 125.000, 11, A, P, "BYE sip:bob@example.com SIP/2.0"),
        sip(t + 125.010, 11, P, A, "SIP/2.0 200 OK"),
        sip(t + 125.020, 12, P, B, "BYE sip:bob@10.0.0.3 SIP/2.0"),
        sip(t + 125.500, 12, B, P, "SIP/2.0 200 OK"),
    ]
}

pub fn detail() -> CallDetail {
    let calls = calls();
    let t = NOW - 600.0;
    CallDetail {
        call: calls[0].clone(),
        legs: vec![calls[0].clone(), calls[1].clone()],
        messages: messages(),
        messages_dropped: 0,
        streams: vec![
            StreamRow {
                side: "caller".into(),
                src: "10.0.0.1:40000".into(),
                dst: "10.0.0.2:30000".into(),
                ssrc: 0x1234_5678,
                codec: "PCMA".into(),
                packets: 5988,
                lost: 12,
                expected: 6000,
                jitter_ms: 3.2,
                max_jitter_ms: 8.5,
                mos: Some(4.3),
                status: "decoded".into(),
                ended: true,
            },
            StreamRow {
                side: "callee".into(),
                src: "10.0.0.2:30000".into(),
                dst: "10.0.0.1:40000".into(),
                ssrc: 0x9abc_def0,
                codec: "PCMA".into(),
                packets: 6000,
                lost: 0,
                expected: 6000,
                jitter_ms: 1.0,
                max_jitter_ms: 2.5,
                mos: Some(4.4),
                status: "decoded".into(),
                ended: true,
            },
        ],
        timeline: vec![
            TimelineEntry {
                ts: t + 5.0,
                what: "recording started (policy)".into(),
            },
            TimelineEntry {
                ts: t + 40.25,
                what: "paused by caller *1".into(),
            },
            TimelineEntry {
                ts: t + 41.0,
                what: "DTMF 5 from caller".into(),
            },
            TimelineEntry {
                ts: t + 60.5,
                what: "resumed by caller *2".into(),
            },
            TimelineEntry {
                ts: t + 125.0,
                what: "recording stopped (bye)".into(),
            },
        ],
        decision: vec![
            "record: rule 'inbound-sales' (rules.toml line 12)".into(),
            "  rule 'no-internal': direction is inbound, not internal -> skip".into(),
            "  rule 'inbound-sales': callee bob@example.com matches 'bob*' -> record".into(),
            "  mode: both parties, mixed, wav".into(),
        ],
    }
}

pub fn snapshot() -> Snapshot {
    Snapshot {
        version: VERSION,
        source: "eth0 (AF_XDP, 2 queues, zero-copy)".into(),
        mode: "xdp".into(),
        now: NOW,
        uptime_s: 3723.0,
        progress: None,
        finished: false,
        rates: Rates {
            frames: 12_345.0,
            sip: 12.5,
            rtp: 12_000.0,
        },
        totals: Totals {
            frames: 45_000_000,
            bytes: 9_000_000_000,
            sip_messages: 52_000,
            rtp_packets: 44_000_000,
            rtcp_packets: 90_000,
            other: 1200,
            calls_seen: 420,
            calls_answered: 380,
            calls_picked_up: 2,
        },
        drops: Drops {
            kernel_ring_full: 3,
            late_audio: 17,
            network_rtp_lost: 12,
            ..Drops::default()
        },
        kernel_filter: Default::default(),
        workers: vec![
            WorkerLoad {
                rtp_pps: 6400.0,
                rtp_packets: 23_000_000,
                queue_fill: 0.12,
            },
            WorkerLoad {
                rtp_pps: 5600.0,
                rtp_packets: 21_000_000,
                queue_fill: 0.85,
            },
        ],
        active_calls: 4,
        active_recordings: 1,
        recordings: RecordingCounts {
            started: 300,
            written: 296,
            failed: 1,
            deleted: 20,
        },
        writer: WriterLoad {
            queued_events: 2,
            lag_s: 0.3,
            refused: 0,
        },
        calls_total: calls().len() as u64,
        calls: calls(),
        recent: vec![
            RecordingRow {
                call: 12,
                path: "/var/lib/voxtap/recordings/2024/05/01/12/call-12-alice-bob.wav".into(),
                format: "wav".into(),
                bytes: 1_925_120,
                state: "complete".into(),
                start: NOW - 599.8,
                duration_s: 120.5,
            },
            RecordingRow {
                call: 11,
                path: "/var/lib/voxtap/recordings/2024/05/01/12/call-11-alice-bob.wav".into(),
                format: "wav".into(),
                bytes: 1_920_000,
                state: "partial".into(),
                start: NOW - 600.0,
                duration_s: 120.0,
            },
            RecordingRow {
                call: 9,
                path: "/var/lib/voxtap/recordings/2024/05/01/11/call-9.opus".into(),
                format: "opus".into(),
                bytes: 512,
                state: "no-audio".into(),
                start: NOW - 3000.0,
                duration_s: 3.0,
            },
        ],
        detail: None,
    }
}

/// A viewer that has seen the snapshot a few times (so the sparklines have a history).
pub fn app() -> App {
    let mut app = App::new();
    for i in 0..12 {
        let mut s = snapshot();
        for (j, w) in s.workers.iter_mut().enumerate() {
            w.rtp_pps *= 0.3 + 0.7 * ((i + 3 * j) % 8) as f64 / 7.0;
        }
        app.set_snapshot(s);
    }
    app.set_snapshot(snapshot());
    app
}

/// The snapshot with the detail of call 11.
pub fn snapshot_with_detail() -> Snapshot {
    Snapshot {
        detail: Some(detail()),
        ..snapshot()
    }
}

pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

pub fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

pub fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

/// The screen as text: one line per row, trailing spaces dropped.
pub fn render(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| app.draw(f)).expect("draw");
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Compares `text` with `tests/snapshots/NAME.txt`. With `BLESS=1` in the environment the file
/// is written instead (then review it by eye: it is the spec of the screen).
pub fn check(name: &str, text: &str) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/snapshots/{name}.txt"));
    if std::env::var("BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, text).expect("write snapshot");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1 to write it)", path.display()));
    if want != text {
        panic!(
            "screen {name} differs from {}\n--- expected\n{want}\n--- drawn\n{text}",
            path.display()
        );
    }
}
