//! The memory budget of the buffers that wait for more input (issue 12, "Memory has an overall
//! cap"): a SIP message too large for a TCP flow is counted and skipped without costing the
//! other calls, and a flood of partial messages on 1,000 flows stays within the budget while
//! every generated call is still recorded.

use std::net::{IpAddr, Ipv4Addr};

use voxtap_core::engine::DEFAULT_BUFFER_BUDGET;
use voxtap_core::stats::{Dropped, Stats};
use voxtap_core::{Engine, EngineConfig, LinkType, Timestamp};
use voxtap_gen::net::{self, tcp_flags};
use voxtap_gen::{Frame, GenConfig, Scenario};
use voxtap_tests::{check_against_truth, replay_frames};

/// One direction of a TCP connection from a host of its own, built segment by segment.
struct Conn {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    seq: u32,
}

impl Conn {
    fn new(src: Ipv4Addr, sport: u16) -> Conn {
        Conn {
            src,
            dst: Ipv4Addr::new(10, 99, 0, 2),
            sport,
            seq: 1000,
        }
    }

    fn frame(&mut self, ts_ns: u64, flags: u8, payload: &[u8]) -> Frame {
        let (s, d) = (IpAddr::V4(self.src), IpAddr::V4(self.dst));
        let seg = net::tcp(
            s,
            d,
            self.sport,
            5060,
            self.seq,
            1,
            flags,
            65535,
            &[],
            payload,
        );
        self.seq = self
            .seq
            .wrapping_add(payload.len() as u32 + u32::from(flags & tcp_flags::SYN != 0));
        let ip = net::ipv4_packet(self.src, self.dst, 6, 0, true, 64, &seg);
        Frame {
            ts_ns,
            data: net::ethernet(net::mac_for(s), net::mac_for(d), &[], 0x0800, &ip),
        }
    }

    /// `data` in MSS-sized segments, `step_ns` apart from `ts_ns`.
    fn send(&mut self, ts_ns: u64, step_ns: u64, data: &[u8]) -> Vec<Frame> {
        data.chunks(1400)
            .enumerate()
            .map(|(i, c)| {
                self.frame(
                    ts_ns + i as u64 * step_ns,
                    tcp_flags::PSH | tcp_flags::ACK,
                    c,
                )
            })
            .collect()
    }
}

/// An INVITE whose SDP body is padded to `body_len` bytes.
fn invite(call_id: &str, body_len: usize, pad: &str) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.99.0.1\r\ns=-\r\nc=IN IP4 10.99.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\n";
    let mut body = sdp.as_bytes().to_vec();
    body.extend_from_slice(pad.as_bytes());
    while body.len() < body_len {
        let line = b"a=x-pad:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\r\n";
        body.extend_from_slice(&line[..line.len().min(body_len - body.len())]);
    }
    let mut msg = format!(
        "INVITE sip:big@10.99.0.2 SIP/2.0\r\n\
         Via: SIP/2.0/TCP 10.99.0.1:50000;branch=z9hG4bK-{call_id}\r\n\
         From: <sip:a@10.99.0.1>;tag=1\r\nTo: <sip:big@10.99.0.2>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:a@10.99.0.1:50000;transport=tcp>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(&body);
    msg
}

/// A whole SIP message to show the flow still frames after a skipped one.
const OPTIONS: &[u8] = b"OPTIONS sip:big@10.99.0.2 SIP/2.0\r\n\
    Via: SIP/2.0/TCP 10.99.0.1:50000;branch=z9hG4bK-opt\r\n\
    From: <sip:a@10.99.0.1>;tag=2\r\nTo: <sip:big@10.99.0.2>\r\n\
    Call-ID: options@10.99.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

/// The engine's counters over `frames` in order, checking after every frame that the buffers
/// hold no more than the budget; also the most recordings that started.
fn run_engine(frames: impl Iterator<Item = Frame>, budget: usize) -> (Stats, u64) {
    let mut engine = Engine::new(EngineConfig {
        buffer_budget_bytes: budget,
        ..EngineConfig::default()
    });
    let mut recordings = 0;
    for f in frames {
        engine.handle(Timestamp::from_nanos(f.ts_ns), LinkType::Ethernet, &f.data);
        assert!(
            engine.buffered_bytes() <= budget,
            "{} bytes buffered over the budget of {budget} at {} ns",
            engine.buffered_bytes(),
            f.ts_ns
        );
        while let Some(ev) = engine.poll_event() {
            recordings += u64::from(matches!(ev, voxtap_core::Event::RecordingStarted(_)));
        }
    }
    engine.finish();
    while let Some(ev) = engine.poll_event() {
        recordings += u64::from(matches!(ev, voxtap_core::Event::RecordingStarted(_)));
    }
    (engine.stats().clone(), recordings)
}

fn mix() -> (Vec<Frame>, voxtap_gen::GroundTruth) {
    voxtap_gen::generate(&GenConfig::new(Scenario::Mix))
}

/// A 1 MB SDP body over TCP, with a whole INVITE smuggled inside it, then an OPTIONS on the
/// same connection, among the 14 calls of the `mix` scenario.
fn with_big_invite(frames: &mut Vec<Frame>) {
    let start = frames[0].ts_ns + 1_000_000_000;
    let mut c = Conn::new(Ipv4Addr::new(10, 99, 0, 1), 50000);
    frames.push(c.frame(start, tcp_flags::SYN, &[]));
    let smuggled = String::from_utf8(invite("smuggled@10.99.0.1", 200, "")).unwrap();
    let big = invite("big-body@10.99.0.1", 1 << 20, &smuggled);
    frames.extend(c.send(start + 1_000_000, 100_000, &big));
    frames.extend(c.send(start + 500_000_000, 100_000, OPTIONS));
    frames.sort_by_key(|f| f.ts_ns);
}

#[test]
fn a_1mb_sip_body_over_tcp_is_counted_and_the_other_calls_are_recorded() {
    let (base_frames, truth) = mix();
    let (base, base_recordings) = run_engine(base_frames.clone().into_iter(), usize::MAX);
    assert_eq!(base.dropped, [0; Dropped::ALL.len()]);

    let mut frames = base_frames;
    with_big_invite(&mut frames);
    let (s, recordings) = run_engine(frames.clone().into_iter(), DEFAULT_BUFFER_BUDGET);
    assert_eq!(s.dropped[Dropped::SipTooLarge as usize], 1, "{s:?}");
    assert_eq!(
        s.dropped_total(),
        1,
        "nothing else dropped: {:?}",
        s.dropped
    );
    // The INVITE inside the body is never framed; the OPTIONS after the body is.
    assert_eq!(s.sip_messages, base.sip_messages + 1);
    assert_eq!(s.calls_seen, base.calls_seen);
    assert_eq!(s.malformed_total(), base.malformed_total());
    assert_eq!(
        (s.calls_answered, recordings),
        (base.calls_answered, base_recordings)
    );
    assert!(base_recordings > 0);
    // The body went as it came: the flow never held more than a segment or two.
    assert!(
        s.buffered_peak_bytes < 64 * 1024,
        "{} bytes buffered for a skipped message",
        s.buffered_peak_bytes
    );
    eprintln!(
        "1 MB body: sip-too-large {}, peak buffered {} bytes",
        s.dropped[Dropped::SipTooLarge as usize],
        s.buffered_peak_bytes
    );

    // End to end: the catalog and the recordings of every generated call are as the truth
    // says, and the summary names the reason.
    let r = replay_frames(frames, truth, "memory-budget-big-body", None);
    check_against_truth(&r.out, &r.truth, &r.summary);
    let line = r
        .summary
        .lines()
        .find(|l| l.trim_start().starts_with("dropped"))
        .unwrap_or_else(|| panic!("no dropped line:\n{}", r.summary));
    assert!(line.contains("sip-too-large 1"), "{line}");
    assert!(line.contains("of 64 MiB"), "{line}");
    // And the run's row keeps it.
    let (too_large, peak): (i64, i64) = voxtap_tests::catalog(&r.out)
        .query_row(
            "SELECT sip_too_large, buffered_peak_bytes FROM runs",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(too_large, 1);
    assert!(peak > 0 && peak <= 64 << 20, "{peak}");
}

/// 1,000 TCP flows, each sending a 250 KB message it never finishes, in turn, 1,400 bytes at a
/// time, over the first eight seconds of the `mix` calls.
fn flood() -> impl Iterator<Item = Frame> {
    const FLOWS: usize = 1000;
    const MESSAGE: usize = 250_000;
    let mut sent = invite("partial@10.99.0.1", MESSAGE - 400, "");
    sent.truncate(sent.len() - 1000);
    let mut conns: Vec<Conn> = (0..FLOWS)
        .map(|i| Conn::new(Ipv4Addr::new(10, 98, (i >> 8) as u8, i as u8), 50000))
        .collect();
    let segments = sent.len().div_ceil(1400);
    let start = mix().0[0].ts_ns;
    let step = 8_000_000_000 / (segments * FLOWS) as u64;
    (0..segments).flat_map(move |k| {
        let chunk = sent[k * 1400..sent.len().min((k + 1) * 1400)].to_vec();
        (0..FLOWS)
            .map(|i| {
                let ts = start + (k * FLOWS + i) as u64 * step;
                conns[i].frame(ts, tcp_flags::PSH | tcp_flags::ACK, &chunk)
            })
            .collect::<Vec<_>>()
    })
}

/// Two time-ordered streams as one.
fn merge(a: Vec<Frame>, b: impl Iterator<Item = Frame>) -> impl Iterator<Item = Frame> {
    let mut a = a.into_iter().peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.ts_ns < x.ts_ns => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

#[test]
fn a_thousand_partial_250kb_messages_stay_within_the_budget() {
    let (frames, _) = mix();
    let (base, base_recordings) = run_engine(frames.clone().into_iter(), usize::MAX);

    let budget = DEFAULT_BUFFER_BUDGET;
    let (s, recordings) = run_engine(merge(frames.clone(), flood()), budget);
    assert!(s.buffered_peak_bytes <= budget as u64);
    // The budget, not the per-flow limits, is what held them.
    assert!(s.buffered_peak_bytes > budget as u64 / 2, "{s:?}");
    assert!(s.dropped[Dropped::TcpEvicted as usize] > 0);
    // The calls' own TCP flow is never the idlest: every call is recorded as without the flood.
    assert_eq!(s.sip_messages, base.sip_messages);
    assert_eq!(
        (s.calls_answered, recordings),
        (base.calls_answered, base_recordings)
    );
    assert_eq!(s.dropped[Dropped::SipTooLarge as usize], 0);

    let (free, _) = run_engine(merge(frames, flood()), usize::MAX);
    assert!(free.buffered_peak_bytes > 3 * budget as u64, "{free:?}");
    eprintln!(
        "1,000 flows x 250 KB partial: peak {} bytes without a budget, {} with {budget} ({} flows evicted for memory)",
        free.buffered_peak_bytes,
        s.buffered_peak_bytes,
        s.dropped[Dropped::TcpEvicted as usize]
    );
}
