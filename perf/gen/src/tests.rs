//! Cross-module tests: decode the generated frames again and check them
//! against the protocol rules and the ground truth.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use crate::call::{CallSpec, generate_call, party_ips};
use crate::g711::tests::{alaw_to_linear, ulaw_to_linear};
use crate::net::{self, decode};
use crate::scenario::{MIX_ROUND, expected_calls};
use crate::sip::content_length_of;
use crate::{CallTruth, Codec, Frame, GenConfig, GroundTruth, Scenario, generate};

const ALL: [Scenario; 24] = [
    Scenario::Pcmu,
    Scenario::Pcma,
    Scenario::Dtmf,
    Scenario::HoldMove,
    Scenario::Nat,
    Scenario::LossReorder,
    Scenario::Vlan,
    Scenario::QinQ,
    Scenario::FragmentedInvite,
    Scenario::Tcp,
    Scenario::Ipv6,
    Scenario::CancelBeforeAnswer,
    Scenario::EarlyMedia,
    Scenario::Concurrent,
    Scenario::Mix,
    Scenario::InfoRecord,
    Scenario::MediaControl,
    Scenario::ModeHeader,
    Scenario::DtmfPause,
    Scenario::Matrix,
    Scenario::TransferExternal,
    Scenario::InbandDtmf,
    Scenario::Codecs,
    Scenario::Srtp,
];

pub(crate) fn small(s: Scenario) -> GenConfig {
    let mut c = GenConfig::new(s);
    c.talk_secs = 2.0;
    if s == Scenario::Concurrent {
        c.calls = 20;
    }
    c
}

#[derive(Debug, Clone)]
pub(crate) struct Udp {
    pub(crate) t: u64,
    pub(crate) src: IpAddr,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) payload: Vec<u8>,
    tags: Vec<net::VlanTag>,
}

#[derive(Debug, Clone)]
struct TcpSeg {
    src: IpAddr,
    sport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: Vec<u8>,
}

/// Decoded capture: UDP datagrams (fragments reassembled) and TCP segments.
pub(crate) struct Capture {
    pub(crate) udp: Vec<Udp>,
    tcp: Vec<TcpSeg>,
    /// Number of IPv4 fragments seen.
    fragments: usize,
}

pub(crate) fn decode_capture(frames: &[Frame]) -> Capture {
    let mut cap = Capture {
        udp: Vec::new(),
        tcp: Vec::new(),
        fragments: 0,
    };
    type FragKey = (IpAddr, IpAddr, u16);
    type FragPart = (usize, bool, Vec<u8>);
    let mut frag_buf: HashMap<FragKey, Vec<FragPart>> = HashMap::new();
    for f in frames {
        let ip = decode::ip(&f.data).expect("decodable frame");
        assert!(ip.header_ok, "bad IPv4 header checksum");
        let mut whole = None;
        if ip.more_fragments || ip.frag_offset > 0 {
            cap.fragments += 1;
            let key = (ip.src, ip.dst, ip.id);
            let parts = frag_buf.entry(key).or_default();
            parts.push((ip.frag_offset, ip.more_fragments, ip.payload.to_vec()));
            // complete when we have the last fragment and no holes
            parts.sort_by_key(|p| p.0);
            let mut next = 0;
            let mut done = false;
            for (off, mf, data) in parts.iter() {
                if *off != next {
                    break;
                }
                next += data.len();
                if !mf {
                    done = true;
                }
            }
            if done {
                let parts = frag_buf.remove(&key).unwrap();
                whole = Some(parts.into_iter().flat_map(|p| p.2).collect::<Vec<u8>>());
            }
        } else {
            whole = Some(ip.payload.to_vec());
        }
        let Some(seg) = whole else { continue };
        assert_eq!(
            net::l4_checksum(ip.src, ip.dst, ip.proto, &seg),
            0,
            "bad transport checksum"
        );
        match ip.proto {
            net::PROTO_UDP => {
                let (sport, dport, payload) = decode::udp(&seg);
                cap.udp.push(Udp {
                    t: f.ts_ns,
                    src: ip.src,
                    sport,
                    dport,
                    payload: payload.to_vec(),
                    tags: ip.tags.clone(),
                });
            }
            net::PROTO_TCP => {
                let t = decode::tcp(&seg);
                cap.tcp.push(TcpSeg {
                    src: ip.src,
                    sport: t.sport,
                    seq: t.seq,
                    ack: t.ack,
                    flags: t.flags,
                    payload: t.payload.to_vec(),
                });
            }
            p => panic!("unexpected protocol {p}"),
        }
    }
    assert!(frag_buf.is_empty(), "incomplete fragment sets");
    cap
}

/// Split a byte stream of SIP messages using Content-Length.
fn split_sip_stream(mut s: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let text = std::str::from_utf8(s).unwrap();
        let hdr_end = text.find("\r\n\r\n").expect("header end") + 4;
        let cl: usize = text[..hdr_end]
            .lines()
            .find_map(|l| {
                l.strip_prefix("Content-Length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .expect("Content-Length");
        out.push(s[..hdr_end + cl].to_vec());
        s = &s[hdr_end + cl..];
    }
    out
}

fn is_sip(u: &Udp) -> bool {
    u.sport == 5060 || u.dport == 5060
}

pub(crate) fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// All SIP messages of the capture as text (UDP + TCP streams).
pub(crate) fn sip_messages(cap: &Capture) -> Vec<String> {
    let mut msgs: Vec<String> = cap
        .udp
        .iter()
        .filter(|u| is_sip(u))
        .map(|u| String::from_utf8(u.payload.clone()).unwrap())
        .collect();
    let mut streams: BTreeMap<(IpAddr, u16), Vec<&TcpSeg>> = BTreeMap::new();
    for s in &cap.tcp {
        streams.entry((s.src, s.sport)).or_default().push(s);
    }
    for segs in streams.values() {
        let bytes: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
        msgs.extend(
            split_sip_stream(&bytes)
                .into_iter()
                .map(|m| String::from_utf8(m).unwrap()),
        );
    }
    msgs
}

pub(crate) fn rtp_of(cap: &Capture) -> Vec<&Udp> {
    cap.udp
        .iter()
        .filter(|u| !is_sip(u) && u.payload.len() >= 12 && u.payload[0] == 0x80)
        .collect()
}

fn is_caller_addr(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            // 198.51.100.x: an offnet caller of the Matrix scenario.
            (o[0] == 10 && o[1] == 1)
                || (o[0] == 203 && o[1] == 0 && o[2] == 113)
                || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        }
        IpAddr::V6(a) => a.segments()[1] == 1,
    }
}

pub(crate) fn goertzel_power(samples: &[f64], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

pub(crate) fn check_truth_consistency(cfg: &GenConfig, frames: &[Frame], truth: &GroundTruth) {
    assert_eq!(truth.scenario, cfg.scenario);
    assert_eq!(truth.frames, frames.len());
    assert_eq!(truth.calls.len(), expected_calls(cfg), "{:?}", cfg.scenario);
    let ids: HashSet<_> = truth.calls.iter().map(|c| &c.sip_call_id).collect();
    assert_eq!(ids.len(), truth.calls.len(), "Call-IDs unique");
    for c in &truth.calls {
        assert!(c.sip_call_id.ends_with("@gen.voxtap"));
        let codec = Codec::from_id(&c.codec_id).expect("codec id");
        assert_eq!(
            (
                c.codec.clone(),
                c.clock_rate,
                c.fmtp.as_str(),
                c.record_rate
            ),
            (
                codec.name(),
                codec.clock_rate(),
                codec.fmtp(),
                codec.record_rate()
            )
        );
        if cfg.codec.is_none() && cfg.scenario != Scenario::Codecs {
            assert!(c.codec == "PCMU" || c.codec == "PCMA");
        }
        let dtls = c.security == "dtls-srtp";
        assert_eq!(c.recording_state == "no-audio", dtls);
        assert_eq!(c.stream_status == "encrypted", dtls);
        assert_eq!(c.srtp_suite.is_some(), c.security == "sdes-srtp");
        for hz in [c.caller_tone_hz, c.callee_tone_hz] {
            assert!(
                (300.0..=3000.0).contains(&hz) && hz % 50.0 == 0.0,
                "tone {hz}"
            );
        }
        assert!((c.caller_tone_hz - c.callee_tone_hz).abs() >= 100.0);
        assert_eq!(c.recorded, c.answered);
        assert!(c.start_ns < c.end_ns);
        if c.answered {
            let a = c.answer_ns.unwrap();
            assert!(c.start_ns < a && a < c.end_ns);
            assert!((c.recorded_secs - (c.end_ns - a) as f64 / 1e9).abs() < 1e-9);
            assert_eq!(c.final_status, 200);
            assert_eq!(c.end_reason, "bye");
            assert!(c.rtp_packets_caller > 0 && c.rtp_packets_callee > 0);
        } else {
            assert_eq!(c.answer_ns, None);
            assert_eq!(c.recorded_secs, 0.0);
            assert_eq!(c.final_status, 487);
            assert_eq!(c.end_reason, "cancelled");
            assert_eq!(c.rtp_packets_caller + c.rtp_packets_callee, 0);
        }
        for s in &c.silent_spans {
            assert!(s.channel == "left" || s.channel == "right");
            assert!(0.0 <= s.from_secs && s.from_secs < s.to_secs && s.to_secs <= c.recorded_secs);
        }
        for d in &c.dtmf {
            assert!(d.side == "caller" || d.side == "callee");
            assert!(d.at_secs > 0.0 && d.at_secs < c.recorded_secs);
        }
    }
}

fn by_call_id<'a>(
    truth: &'a GroundTruth,
    msgs: &[String],
) -> HashMap<String, (&'a CallTruth, Vec<String>)> {
    let mut m: HashMap<String, (&CallTruth, Vec<String>)> = truth
        .calls
        .iter()
        .map(|c| (c.sip_call_id.clone(), (c, Vec::new())))
        .collect();
    for msg in msgs {
        let id = header(msg, "Call-ID").unwrap();
        // Out-of-dialog media-control MESSAGEs (and their 200s) belong to no call.
        if id.ends_with("@desk.gen.voxtap") {
            continue;
        }
        m.get_mut(id).expect("Call-ID in truth").1.push(msg.clone());
    }
    m
}

#[test]
fn every_scenario_is_consistent() {
    for s in ALL {
        let cfg = small(s);
        let (frames, truth) = generate(&cfg);
        assert!(
            frames.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
            "{s:?} frames sorted"
        );
        assert!(
            frames
                .iter()
                .all(|f| f.ts_ns % 1000 == 0 && f.data.len() >= 60),
            "whole µs, min frame size"
        );
        check_truth_consistency(&cfg, &frames, &truth);
        let cap = decode_capture(&frames);

        // SIP: Content-Length matches, every message belongs to a call, basic headers present.
        let msgs = sip_messages(&cap);
        for m in &msgs {
            let (cl, body) = content_length_of(m.as_bytes()).expect("Content-Length");
            assert_eq!(cl, body, "{s:?} Content-Length");
            for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                assert!(header(m, h).is_some(), "{h} missing in {m}");
            }
            assert!(header(m, "Via").unwrap().contains(";branch=z9hG4bK"));
            if m.starts_with("INVITE ") {
                assert!(header(m, "Max-Forwards").is_some() && header(m, "Contact").is_some());
                assert!(m.contains("a=ptime:20\r\n") && m.contains("telephone-event/"));
            }
        }
        let calls = by_call_id(&truth, &msgs);
        for (c, ms) in calls.values() {
            let first_lines: Vec<&str> = ms.iter().map(|m| m.lines().next().unwrap()).collect();
            assert!(first_lines[0].starts_with("INVITE "), "{first_lines:?}");
            if c.answered {
                assert!(first_lines.iter().any(|l| l.starts_with("BYE ")));
                assert!(
                    ms.iter()
                        .any(|m| m.starts_with("SIP/2.0 200 OK") && m.contains("application/sdp"))
                );
            } else {
                for want in ["CANCEL ", "SIP/2.0 487 ", "ACK "] {
                    assert!(
                        first_lines.iter().any(|l| l.starts_with(want)),
                        "{want} in {first_lines:?}"
                    );
                }
            }
            assert_eq!(c.transport == "tcp", ms[0].contains("SIP/2.0/TCP"));
        }

        // RTP: counts and loss per direction match the truth.
        let rtp = rtp_of(&cap);
        let mut per_ssrc: HashMap<(u32, u16), Vec<u16>> = HashMap::new(); // (ssrc, dst port) -> seqs in arrival order
        let (mut n_caller, mut n_callee) = (0u64, 0u64);
        for u in &rtp {
            let p = &u.payload;
            let ssrc = u32::from_be_bytes(p[8..12].try_into().unwrap());
            per_ssrc
                .entry((ssrc, u.dport))
                .or_default()
                .push(u16::from_be_bytes([p[2], p[3]]));
            if is_caller_addr(u.src) {
                n_caller += 1;
            } else {
                n_callee += 1;
            }
        }
        assert_eq!(
            n_caller,
            truth
                .calls
                .iter()
                .map(|c| c.rtp_packets_caller)
                .sum::<u64>(),
            "{s:?}"
        );
        assert_eq!(
            n_callee,
            truth
                .calls
                .iter()
                .map(|c| c.rtp_packets_callee)
                .sum::<u64>(),
            "{s:?}"
        );
        let lost: i64 = per_ssrc
            .values()
            .map(|seqs| {
                // extended seq relative to the first packet (tshark's method)
                let base = seqs[0];
                let max = seqs
                    .iter()
                    .map(|&q| q.wrapping_sub(base) as i64)
                    .max()
                    .unwrap();
                max + 1 - seqs.len() as i64
            })
            .sum();
        let want: u64 = truth
            .calls
            .iter()
            .map(|c| c.lost_caller + c.lost_callee)
            .sum();
        assert_eq!(lost, want as i64, "{s:?} loss");
        if s == Scenario::LossReorder {
            assert!(want > 0);
        }

        // Determinism.
        let (frames2, truth2) = generate(&cfg);
        assert_eq!(frames, frames2, "{s:?} deterministic");
        assert_eq!(
            serde_json::to_string(&truth).unwrap(),
            serde_json::to_string(&truth2).unwrap()
        );
    }
}

#[test]
fn loss_reorder_actually_reorders() {
    let mut cfg = GenConfig::new(Scenario::LossReorder);
    cfg.calls = 3;
    let (frames, truth) = generate(&cfg);
    let cap = decode_capture(&frames);
    let mut last: HashMap<u32, u16> = HashMap::new();
    let mut reordered = 0;
    for u in rtp_of(&cap) {
        let ssrc = u32::from_be_bytes(u.payload[8..12].try_into().unwrap());
        let seq = u16::from_be_bytes([u.payload[2], u.payload[3]]);
        if let Some(&prev) = last.get(&ssrc)
            && (seq.wrapping_sub(prev) as i16) < 0
        {
            reordered += 1;
        }
        last.insert(ssrc, seq);
    }
    assert!(reordered > 0);
    assert!(
        truth
            .calls
            .iter()
            .map(|c| c.lost_caller + c.lost_callee)
            .sum::<u64>()
            > 0
    );
}

#[test]
fn tones_are_on_the_right_side() {
    for s in [
        Scenario::Pcmu,
        Scenario::Pcma,
        Scenario::Nat,
        Scenario::Ipv6,
    ] {
        let (frames, truth) = generate(&small(s));
        let cap = decode_capture(&frames);
        let c = &truth.calls[0];
        for caller in [true, false] {
            let samples: Vec<f64> = rtp_of(&cap)
                .iter()
                .filter(|u| is_caller_addr(u.src) == caller && (u.payload[1] & 0x7F) < 100)
                .take(10)
                .flat_map(|u| u.payload[12..].to_vec())
                .map(|b| if c.codec == "PCMU" { ulaw_to_linear(b) } else { alaw_to_linear(b) } as f64)
                .collect();
            assert_eq!(samples.len(), 1600);
            let (want, other) = if caller {
                (c.caller_tone_hz, c.callee_tone_hz)
            } else {
                (c.callee_tone_hz, c.caller_tone_hz)
            };
            let pw = goertzel_power(&samples, want);
            let po = goertzel_power(&samples, other);
            assert!(pw > 1000.0 * po, "{s:?} caller={caller}: {pw} vs {po}");
            // about -6 dBFS: peak near 16384
            let peak = samples.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!((14000.0..19000.0).contains(&peak), "peak {peak}");
        }
        // payload type matches the codec
        let pt = rtp_of(&cap)[0].payload[1] & 0x7F;
        assert_eq!(pt, if c.codec == "PCMU" { 0 } else { 8 });
    }
}

#[test]
fn rtp_headers_increment_correctly() {
    let (frames, _) = generate(&small(Scenario::Pcmu));
    let cap = decode_capture(&frames);
    let mut streams: HashMap<u32, Vec<&Udp>> = HashMap::new();
    for u in rtp_of(&cap) {
        streams
            .entry(u32::from_be_bytes(u.payload[8..12].try_into().unwrap()))
            .or_default()
            .push(u);
    }
    assert_eq!(streams.len(), 2);
    for pkts in streams.values() {
        assert_eq!(pkts[0].payload[1] & 0x80, 0x80, "marker on first packet");
        assert_eq!(pkts[0].payload.len(), 12 + 160);
        for w in pkts.windows(2) {
            let (a, b) = (&w[0].payload, &w[1].payload);
            assert_eq!(b[1] & 0x80, 0, "no marker later");
            assert_eq!(
                u16::from_be_bytes([b[2], b[3]]),
                u16::from_be_bytes([a[2], a[3]]).wrapping_add(1)
            );
            let ta = u32::from_be_bytes(a[4..8].try_into().unwrap());
            let tb = u32::from_be_bytes(b[4..8].try_into().unwrap());
            assert_eq!(tb, ta.wrapping_add(160));
            let dt = w[1].t as i64 - w[0].t as i64;
            assert!(
                (18_000_000..=22_000_000).contains(&dt),
                "jitter within ±1 ms: {dt}"
            );
        }
    }
}

#[test]
fn dtmf_events_follow_rfc4733() {
    let (frames, truth) = generate(&small(Scenario::Dtmf));
    let cap = decode_capture(&frames);
    let c = &truth.calls[0];
    let digits: Vec<char> = c.dtmf.iter().map(|d| d.digit).collect();
    assert_eq!(digits, vec!['1', '#', '5']);
    assert_eq!(c.dtmf[2].side, "callee");
    let ev: Vec<&Udp> = rtp_of(&cap)
        .into_iter()
        .filter(|u| u.payload[1] & 0x7F == 101)
        .collect();
    assert_eq!(ev.len(), 3 * 8);
    for (k, group) in ev.chunks(8).enumerate() {
        let code = [1u8, 11, 5][k];
        let ts0 = &group[0].payload[4..8];
        for (j, u) in group.iter().enumerate() {
            let p = &u.payload;
            assert_eq!(p[1] & 0x80 != 0, j == 0, "marker only on first");
            assert_eq!(&p[4..8], ts0, "same timestamp for whole event");
            assert_eq!(p[12], code);
            assert_eq!(p[13] & 0x80 != 0, j >= 5, "E bit on last 3");
            assert_eq!(p[13] & 0x3F, 10, "volume");
            let dur = u16::from_be_bytes([p[14], p[15]]);
            assert_eq!(dur as usize, if j < 5 { (j + 1) * 160 } else { 960 });
        }
        let at = (group[0].t as i64 - c.answer_ns.unwrap() as i64) as f64 / 1e9;
        assert!((at - c.dtmf[k].at_secs).abs() < 0.0015);
    }
    // Audio of the same direction pauses during events: no audio packet
    // from the same source between first and last event packet.
    for group in ev.chunks(8) {
        let (t0, t1, src) = (group[0].t, group[7].t, group[0].src);
        assert!(
            !rtp_of(&cap)
                .iter()
                .any(|u| u.src == src && u.payload[1] & 0x7F != 101 && u.t > t0 && u.t < t1)
        );
    }
}

#[test]
fn hold_and_move() {
    let (frames, truth) = generate(&small(Scenario::HoldMove));
    let cap = decode_capture(&frames);
    let c = &truth.calls[0];
    assert_eq!(c.silent_spans.len(), 1);
    let span = &c.silent_spans[0];
    assert_eq!(span.channel, "right");
    let a = c.answer_ns.unwrap();
    let rel = |t: u64| (t as i64 - a as i64) as f64 / 1e9;
    let rtp = rtp_of(&cap);
    // callee silent within the span, caller keeps sending
    assert!(!rtp.iter().any(|u| !is_caller_addr(u.src)
        && rel(u.t) > span.from_secs + 0.002
        && rel(u.t) < span.to_secs - 0.002));
    assert!(
        rtp.iter()
            .any(|u| is_caller_addr(u.src) && rel(u.t) > span.from_secs && rel(u.t) < span.to_secs)
    );
    // two caller SSRCs on two ports; callee keeps one SSRC but moves destination port
    let caller_ssrcs: HashSet<(u32, u16)> = rtp
        .iter()
        .filter(|u| is_caller_addr(u.src))
        .map(|u| {
            (
                u32::from_be_bytes(u.payload[8..12].try_into().unwrap()),
                u.sport,
            )
        })
        .collect();
    assert_eq!(caller_ssrcs.len(), 2);
    assert_eq!(
        caller_ssrcs
            .iter()
            .map(|x| x.0)
            .collect::<HashSet<_>>()
            .len(),
        2
    );
    let callee_dports: HashSet<u16> = rtp
        .iter()
        .filter(|u| !is_caller_addr(u.src))
        .map(|u| u.dport)
        .collect();
    assert_eq!(callee_dports.len(), 2);
    let msgs = sip_messages(&cap);
    let cseqs: Vec<&str> = msgs.iter().filter_map(|m| header(m, "CSeq")).collect();
    for want in ["2 INVITE", "3 INVITE", "2 ACK", "3 ACK"] {
        assert!(cseqs.contains(&want), "{want} in {cseqs:?}");
    }
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("INVITE") && m.contains("a=sendonly"))
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("SIP/2.0 200") && m.contains("a=recvonly"))
    );
}

#[test]
fn fragments_reassemble_to_the_invite() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::FragmentedInvite));
    assert_eq!(truth.calls.len(), 2);
    // raw fragment order per IP id: first call ascending, second descending
    let mut orders: Vec<Vec<usize>> = Vec::new();
    let mut cur: Option<u16> = None;
    for f in &frames {
        let ip = decode::ip(&f.data).unwrap();
        if ip.more_fragments || ip.frag_offset > 0 {
            if cur != Some(ip.id) {
                orders.push(Vec::new());
                cur = Some(ip.id);
            }
            assert!(f.data.len() <= 14 + net::MTU);
            orders.last_mut().unwrap().push(ip.frag_offset);
        }
    }
    assert_eq!(orders.len(), 2);
    assert!(orders[0].len() >= 2 && orders[0].windows(2).all(|w| w[0] < w[1]));
    assert!(orders[1].windows(2).all(|w| w[0] > w[1]));
    let cap = decode_capture(&frames);
    assert!(cap.fragments >= 4);
    let invites: Vec<&Udp> = cap
        .udp
        .iter()
        .filter(|u| u.payload.starts_with(b"INVITE "))
        .collect();
    assert_eq!(invites.len(), 2);
    for (inv, c) in invites.iter().zip(&truth.calls) {
        assert!(inv.payload.len() > 1500);
        let text = std::str::from_utf8(&inv.payload).unwrap();
        assert_eq!(header(text, "Call-ID"), Some(c.sip_call_id.as_str()));
        let (cl, body) = content_length_of(&inv.payload).unwrap();
        assert_eq!(cl, body);
    }
}

#[test]
fn tcp_stream_yields_sip_messages() {
    let (frames, truth) = generate(&small(Scenario::Tcp));
    let cap = decode_capture(&frames);
    let segs = &cap.tcp;
    assert_eq!(segs[0].flags, net::tcp_flags::SYN);
    assert_eq!(segs[1].flags, net::tcp_flags::SYN | net::tcp_flags::ACK);
    assert_eq!(segs[1].ack, segs[0].seq.wrapping_add(1));
    assert!(
        segs.iter()
            .rev()
            .take(3)
            .any(|s| s.flags & net::tcp_flags::FIN != 0)
    );
    // seq continuity per direction and ACKs acknowledge what the other side sent
    let client = (segs[0].src, segs[0].sport);
    let (mut c_next, mut s_next) = (segs[0].seq, segs[1].seq);
    for s in segs {
        let from_client = (s.src, s.sport) == client;
        let next = if from_client {
            &mut c_next
        } else {
            &mut s_next
        };
        assert_eq!(s.seq, *next, "contiguous sequence numbers");
        *next = next.wrapping_add(
            s.payload.len() as u32
                + (s.flags & (net::tcp_flags::SYN | net::tcp_flags::FIN) != 0) as u32,
        );
        if s.flags & net::tcp_flags::ACK != 0 {
            assert_eq!(s.ack, if from_client { s_next } else { c_next });
        }
    }
    let client_bytes: Vec<u8> = segs
        .iter()
        .filter(|s| (s.src, s.sport) == client)
        .flat_map(|s| s.payload.clone())
        .collect();
    let server_bytes: Vec<u8> = segs
        .iter()
        .filter(|s| (s.src, s.sport) != client)
        .flat_map(|s| s.payload.clone())
        .collect();
    let cm = split_sip_stream(&client_bytes);
    let sm = split_sip_stream(&server_bytes);
    let first = |m: &Vec<u8>| {
        String::from_utf8_lossy(m)
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    assert!(
        first(&cm[0]).starts_with("INVITE ")
            && first(&cm[1]).starts_with("ACK ")
            && first(&cm[2]).starts_with("BYE ")
    );
    assert_eq!(
        sm.iter().map(first).collect::<Vec<_>>(),
        vec![
            "SIP/2.0 100 Trying",
            "SIP/2.0 180 Ringing",
            "SIP/2.0 200 OK",
            "SIP/2.0 200 OK"
        ]
    );
    // INVITE split over two segments; 100 + 180 coalesced into one
    let data: Vec<&TcpSeg> = segs.iter().filter(|s| !s.payload.is_empty()).collect();
    assert!(!data[0].payload.ends_with(b"\r\n\r\n") || !data[0].payload.starts_with(b"INVITE"));
    assert_eq!(data[0].payload.len() + data[1].payload.len(), cm[0].len());
    assert_eq!(data[2].payload.len(), sm[0].len() + sm[1].len());
    assert!(String::from_utf8_lossy(&cm[0]).contains("Via: SIP/2.0/TCP "));
    assert_eq!(truth.calls[0].transport, "tcp");
}

#[test]
fn vlan_tags_on_every_frame() {
    for (s, want) in [
        (Scenario::Vlan, vec![(0x8100u16, 100u16)]),
        (Scenario::QinQ, vec![(0x88a8, 200), (0x8100, 100)]),
    ] {
        let (frames, _) = generate(&small(s));
        for f in &frames {
            assert_eq!(decode::ip(&f.data).unwrap().tags, want);
        }
    }
}

#[test]
fn nat_addresses() {
    let (frames, _) = generate(&small(Scenario::Nat));
    let cap = decode_capture(&frames);
    let msgs = sip_messages(&cap);
    let invite = msgs.iter().find(|m| m.starts_with("INVITE")).unwrap();
    assert!(invite.contains("c=IN IP4 192.168.1."));
    let resp = msgs.iter().find(|m| m.starts_with("SIP/2.0 100")).unwrap();
    assert!(
        header(resp, "Via")
            .unwrap()
            .contains(";received=203.0.113.")
    );
    let rtp = rtp_of(&cap);
    let from_caller: Vec<&&Udp> = rtp.iter().filter(|u| is_caller_addr(u.src)).collect();
    assert!(
        from_caller
            .iter()
            .all(|u| u.src.to_string().starts_with("203.0.113."))
    );
    let sdp_port: u16 = invite
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(from_caller.iter().all(|u| u.sport != sdp_port));
}

#[test]
fn ipv6_everywhere() {
    let (frames, _) = generate(&small(Scenario::Ipv6));
    let cap = decode_capture(&frames);
    assert!(cap.udp.iter().all(|u| u.src.is_ipv6()));
    assert!(
        sip_messages(&cap)
            .iter()
            .filter(|m| m.contains("application/sdp"))
            .all(|m| m.contains("c=IN IP6 fd00:"))
    );
}

#[test]
fn early_media_before_answer() {
    let (frames, truth) = generate(&small(Scenario::EarlyMedia));
    let cap = decode_capture(&frames);
    let c = &truth.calls[0];
    let a = c.answer_ns.unwrap();
    let rtp = rtp_of(&cap);
    let early: Vec<&&Udp> = rtp.iter().filter(|u| u.t < a).collect();
    assert!(early.len() >= 40 && early.iter().all(|u| !is_caller_addr(u.src)));
    assert!(
        sip_messages(&cap)
            .iter()
            .any(|m| m.starts_with("SIP/2.0 183") && m.contains("application/sdp"))
    );
    assert!((c.recorded_secs - 2.0).abs() < 1e-9);
}

#[test]
fn concurrent_calls_overlap() {
    let (_, truth) = generate(&GenConfig::new(Scenario::Concurrent));
    assert_eq!(truth.calls.len(), 200);
    let last_answer = truth
        .calls
        .iter()
        .map(|c| c.answer_ns.unwrap())
        .max()
        .unwrap();
    let first_end = truth.calls.iter().map(|c| c.end_ns).min().unwrap();
    assert!(first_end > last_answer, "all calls up at once");
    assert!(
        truth.calls.iter().any(|c| c.codec == "PCMA")
            && truth.calls.iter().any(|c| c.codec == "PCMU")
    );
    let tones: HashSet<u64> = truth
        .calls
        .iter()
        .map(|c| c.caller_tone_hz as u64)
        .collect();
    assert!(tones.len() > 20);
}

/// More calls than the RTP ports give two parties each (12,287): the port numbers start
/// again, the media endpoints never repeat, and the RTP on the wire comes from the endpoints
/// planned.
#[test]
fn fifty_thousand_concurrent_calls_have_distinct_media_endpoints() {
    let mut cfg = GenConfig::new(Scenario::Concurrent);
    cfg.calls = 50_000;
    let specs = crate::scenario::plan(&cfg);
    assert_eq!(specs.len(), 50_000);
    let endpoints = |s: &CallSpec| {
        let (caller, callee) = party_ips(s);
        [(caller, s.caller_rtp_port), (callee, s.callee_rtp_port)]
    };
    let mut seen = HashSet::new();
    let mut ports = HashSet::new();
    for s in &specs {
        for e in endpoints(s) {
            assert!(seen.insert(e), "call {}: {e:?} again", s.idx);
            ports.insert(e.1);
        }
    }
    assert_eq!(seen.len(), 100_000);
    assert!(ports.len() <= 24_575, "the ports repeat");
    // Two calls on the same two ports, generated (a second of talk is enough): each one's
    // RTP comes from its own phones.
    let short = |s: &CallSpec| CallSpec {
        talk_ns: 1_000_000_000,
        ..s.clone()
    };
    let (a, b) = (&short(&specs[7]), &short(&specs[7 + 24_575]));
    assert_eq!(
        (a.caller_rtp_port, a.callee_rtp_port),
        (b.caller_rtp_port, b.callee_rtp_port)
    );
    let wire = |s: &CallSpec| -> HashSet<(IpAddr, u16)> {
        let (frames, _) = generate_call(s).unwrap();
        rtp_of(&decode_capture(&frames))
            .iter()
            .map(|u| (u.src, u.sport))
            .collect()
    };
    let (wa, wb) = (wire(a), wire(b));
    assert_eq!(wa, HashSet::from(endpoints(a)));
    assert_eq!(wb, HashSet::from(endpoints(b)));
    assert!(wa.is_disjoint(&wb));
}

/// `ramp_ms`: the calls start within about the ramp and hang up over as long, all of them
/// up at once; the same calls as at the default pace, only sooner.
#[test]
fn a_short_ramp_overlaps_every_call() {
    let mut cfg = GenConfig::new(Scenario::Concurrent);
    cfg.calls = 1_000;
    cfg.talk_secs = 1.0;
    cfg.ramp_ms = Some(500.0);
    let (frames, truth) = generate(&cfg);
    check_truth_consistency(&cfg, &frames, &truth);
    let ms = |a: u64, b: u64| (b - a) as f64 / 1e6;
    let starts: Vec<u64> = truth.calls.iter().map(|c| c.start_ns).collect();
    let ramp = ms(*starts.iter().min().unwrap(), *starts.iter().max().unwrap());
    assert!((450.0..=550.0).contains(&ramp), "INVITEs over {ramp} ms");
    let last_answer = truth.calls.iter().map(|c| c.answer_ns.unwrap()).max();
    let ends: Vec<u64> = truth.calls.iter().map(|c| c.end_ns).collect();
    let (first_end, last_end) = (*ends.iter().min().unwrap(), *ends.iter().max().unwrap());
    assert!(Some(first_end) > last_answer, "all calls up at once");
    assert!((first_end - last_answer.unwrap()) as f64 / 1e9 >= 1.0);
    let hang_up = ms(first_end, last_end);
    assert!((450.0..=550.0).contains(&hang_up), "BYEs over {hang_up} ms");
    for c in &truth.calls {
        assert!(c.start_ns % 1_000 == 0 && c.end_ns % 1_000 == 0);
    }
    // The default pace: a call every 20-50 ms; the same calls apart from their times.
    cfg.ramp_ms = None;
    let paced = crate::scenario::plan(&cfg);
    let last = paced.last().unwrap().start_ns - paced[0].start_ns;
    assert!(last > 30_000_000_000, "{last} ns");
    let key = |s: &CallSpec| {
        (
            s.codec,
            s.caller_tone_hz as u64,
            s.callee_tone_hz as u64,
            s.caller_rtp_port,
            s.callee_rtp_port,
            s.ring_ns,
        )
    };
    cfg.ramp_ms = Some(500.0);
    let ramped = crate::scenario::plan(&cfg);
    assert!(paced.iter().map(key).eq(ramped.iter().map(key)));
}

#[test]
fn mix_contains_every_feature() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::Mix));
    assert_eq!(truth.calls.len(), MIX_ROUND.len());
    let c = &truth.calls;
    let tones: HashSet<u64> = c
        .iter()
        .flat_map(|c| [c.caller_tone_hz as u64, c.callee_tone_hz as u64])
        .collect();
    assert_eq!(
        tones.len(),
        2 * c.len(),
        "distinct tones per call in a small capture"
    );
    assert!(c.iter().any(|c| c.transport == "tcp"));
    assert!(c.iter().any(|c| !c.answered));
    assert!(c.iter().any(|c| !c.dtmf.is_empty()));
    assert!(c.iter().any(|c| !c.silent_spans.is_empty()));
    assert!(c.iter().any(|c| c.lost_caller + c.lost_callee > 0));
    assert!(c.iter().any(|c| c.codec == "PCMA"));
    let cap = decode_capture(&frames);
    assert!(cap.fragments > 0);
    assert!(cap.udp.iter().any(|u| u.src.is_ipv6()));
    assert!(cap.udp.iter().any(|u| u.tags.len() == 2) && cap.udp.iter().any(|u| u.tags.len() == 1));
}

#[test]
fn cancel_before_answer_truth() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::CancelBeforeAnswer));
    let c = &truth.calls[0];
    assert!(!c.answered && !c.recorded);
    let cap = decode_capture(&frames);
    let lines: Vec<String> = sip_messages(&cap)
        .iter()
        .map(|m| m.lines().next().unwrap().to_string())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        kinds,
        vec![
            "INVITE", "SIP/2.0", "SIP/2.0", "CANCEL", "SIP/2.0", "SIP/2.0", "ACK"
        ]
    );
    assert!(lines[5].starts_with("SIP/2.0 487"));
}

#[test]
fn pcap_roundtrip() {
    let (frames, _) = generate(&small(Scenario::Pcmu));
    let dir = std::env::temp_dir().join(format!("voxtap-gen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.pcap");
    crate::write_pcap(&path, &frames).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(r.header().datalink, pcap_file::DataLink::ETHERNET);
    let mut n = 0;
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        assert_eq!(p.data.as_ref(), frames[n].data.as_slice());
        assert_eq!(p.timestamp.as_nanos() as u64, frames[n].ts_ns);
        n += 1;
    }
    assert_eq!(n, frames.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scenario_names_serde_and_cli_agree() {
    use clap::ValueEnum;
    for s in ALL {
        let cli = s.to_possible_value().unwrap().get_name().to_string();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{cli}\""));
        assert_eq!(Scenario::from_str(&cli, false).unwrap(), s);
    }
}

#[test]
fn on_demand_requests_and_modes_are_on_the_wire() {
    let (frames, truth) = generate(&small(Scenario::MediaControl));
    let msgs = sip_messages(&decode_capture(&frames));
    let c = &truth.calls[0];
    let invite = msgs.iter().find(|m| m.starts_with("INVITE ")).unwrap();
    let session = header(invite, "X-Session-Id").expect("X-Session-Id");
    let json: Vec<_> = msgs
        .iter()
        .filter(|m| m.contains("application/x-media-control+json"))
        .collect();
    assert_eq!(json.len(), 2);
    assert!(json[0].contains("pause-audio-recording") && json[0].contains(session));
    assert!(json[1].contains("resume-audio-recording"));
    let in_dialog = msgs
        .iter()
        .filter(|m| {
            m.starts_with("MESSAGE ") && header(m, "Call-ID") == Some(c.sip_call_id.as_str())
        })
        .count();
    assert_eq!(in_dialog, 2);
    let actions: Vec<_> = c
        .controls
        .iter()
        .map(|k| (k.action.as_str(), k.via.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("pause", "message"),
            ("resume", "message"),
            ("pause", "message-json"),
            ("resume", "message-json")
        ]
    );

    let (frames, truth) = generate(&small(Scenario::InfoRecord));
    let msgs = sip_messages(&decode_capture(&frames));
    let records: Vec<_> = msgs
        .iter()
        .filter(|m| m.starts_with("INFO "))
        .map(|m| header(m, "Record").unwrap().to_string())
        .collect();
    assert_eq!(records, ["off", "on"]);
    assert_eq!(truth.calls[0].controls.len(), 2);

    let (frames, truth) = generate(&small(Scenario::ModeHeader));
    let msgs = sip_messages(&decode_capture(&frames));
    let modes: Vec<_> = msgs
        .iter()
        .filter(|m| m.starts_with("INVITE "))
        .map(|m| header(m, "X-Record-Mode").unwrap().to_string())
        .collect();
    assert_eq!(modes, ["deny", "force"]);
    let truth_modes: Vec<_> = truth
        .calls
        .iter()
        .map(|c| c.record_mode.clone().unwrap())
        .collect();
    assert_eq!(truth_modes, ["deny", "force"]);
}

/// The SDP bodies' lines starting with `prefix`, per message, in capture order.
pub(crate) fn sdp_lines<'a>(msg: &'a str, prefix: &str) -> Vec<&'a str> {
    msg.split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .collect()
}

/// Mean power share of `freq` in `x` (1.0 for a pure sine at `freq`).
fn tone_share(x: &[f64], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = x.len() as f64;
    let ms = x.iter().map(|v| v * v).sum::<f64>() / n;
    2.0 * p / (n * n) / ms.max(1e-12)
}

/// One direction's RTP packets (audio payload type only), in sequence order.
fn audio_of(cap: &Capture, caller: bool) -> Vec<Vec<u8>> {
    let mut pkts: Vec<&Udp> = rtp_of(cap)
        .into_iter()
        .filter(|u| is_caller_addr(u.src) == caller && u.payload[1] & 0x7F != 101)
        .collect();
    pkts.sort_by_key(|u| u16::from_be_bytes([u.payload[2], u.payload[3]]));
    pkts.into_iter().map(|u| u.payload.clone()).collect()
}

/// A loud line straight to stderr, past the test harness' capture.
pub(crate) fn skipped(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {msg} ***\n");
}

/// Every codec: the payloads decode (by voxtap-codec's decoders, an independent
/// implementation for most) to the direction's tone at about its level, timestamps advance by
/// the codec's clock, and the SDPs name the codec.
#[test]
fn every_codec_carries_its_tone() {
    let missing: Vec<_> = Codec::CATALOG
        .iter()
        .filter_map(|c| c.encoder_available().err().map(|e| format!("{c}: {e}")))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("VOXTAP_REQUIRE_CODECS").as_deref() != Ok("1"),
            "encoders missing: {missing:?}"
        );
        skipped(&format!("encoders missing: {missing:?}"));
    }
    for codec in Codec::catalog_available() {
        let mut cfg = small(Scenario::Pcmu);
        cfg.codec = Some(codec);
        let (frames, truth) = generate(&cfg);
        let cap = decode_capture(&frames);
        let c = &truth.calls[0];
        let msgs = sip_messages(&cap);
        let pt = codec.payload_type();
        for m in msgs.iter().filter(|m| m.contains("application/sdp")) {
            assert_eq!(
                sdp_lines(m, "a=rtpmap:"),
                [
                    format!("{pt} {}", codec.rtpmap()),
                    format!("101 telephone-event/{}", codec.clock_rate())
                ],
                "{codec}"
            );
            let fmtp = sdp_lines(m, &format!("a=fmtp:{pt} "));
            assert_eq!(fmtp.first().copied().unwrap_or(""), codec.fmtp(), "{codec}");
        }
        let spec = codec.spec();
        let Ok(mut dec) = voxtap_codec::decoder_for(&spec, codec.record_rate()) else {
            skipped(&format!("no {codec} decoder in this build"));
            continue;
        };
        for caller in [true, false] {
            let pkts = audio_of(&cap, caller);
            assert!(pkts.len() > 50, "{codec}");
            for w in pkts.windows(2) {
                let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                assert_eq!(
                    ts(&w[1]).wrapping_sub(ts(&w[0])),
                    codec.ticks_per_packet(),
                    "{codec}"
                );
                assert_eq!(w[0][1] & 0x7F, pt);
            }
            if let Codec::Opus { stereo } = codec {
                // RFC 6716 §3.1: the TOC byte's s bit says stereo.
                assert!(
                    pkts.iter().all(|p| (p[12] & 0x04 != 0) == stereo),
                    "{codec}"
                );
            }
            let mut out = Vec::new();
            for p in &pkts {
                dec.decode(&p[12..], &mut out)
                    .unwrap_or_else(|e| panic!("{codec}: {e}"));
            }
            let rate = dec.sample_rate();
            assert_eq!(
                out.len() as u64,
                pkts.len() as u64 * u64::from(rate) / 50,
                "{codec}"
            );
            let x: Vec<f64> = out[rate as usize / 5..]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let (want, other) = if caller {
                (c.caller_tone_hz, c.callee_tone_hz)
            } else {
                (c.callee_tone_hz, c.caller_tone_hz)
            };
            let share = tone_share(&x, rate, want);
            let leak = tone_share(&x, rate, other);
            let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt();
            let db = 20.0 * (rms / (crate::rtp::TONE_AMPLITUDE / 2f64.sqrt())).log10();
            eprintln!("{codec:>14} {want:>6} Hz: share {share:.3}, leak {leak:.5}, {db:+.1} dB");
            assert!(share > 0.8, "{codec} {want} Hz: tone share {share:.3}");
            assert!(leak < share / 50.0, "{codec}: {other} Hz leaks {leak:.4}");
            assert!(db.abs() < 6.0, "{codec}: level {db:+.1} dB");
        }
    }
}

/// `--codec` changes the media only: every frame keeps its time, the calls their ids.
#[test]
fn a_codec_changes_only_the_media() {
    for s in [Scenario::HoldMove, Scenario::Dtmf, Scenario::Tcp] {
        let (plain, t0) = generate(&small(s));
        let mut cfg = small(s);
        cfg.codec = Some(Codec::G722);
        let (g722, t1) = generate(&cfg);
        let times = |f: &[Frame]| f.iter().map(|f| f.ts_ns).collect::<Vec<_>>();
        assert_eq!(times(&plain), times(&g722), "{s:?}");
        let ids = |t: &GroundTruth| {
            t.calls
                .iter()
                .map(|c| {
                    (
                        c.sip_call_id.clone(),
                        c.silent_spans.clone(),
                        c.dtmf.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&t0), ids(&t1));
        assert_eq!(t1.calls[0].record_rate, 16000);
    }
    // The big INVITE still lists every other codec once.
    let mut cfg = small(Scenario::FragmentedInvite);
    cfg.codec = Some(Codec::Opus { stereo: false });
    let (frames, _) = generate(&cfg);
    let msgs = sip_messages(&decode_capture(&frames));
    let invite = msgs.iter().find(|m| m.starts_with("INVITE ")).unwrap();
    let m = sdp_lines(invite, "m=audio ")[0];
    let pts: Vec<&str> = m.split(' ').skip(2).collect();
    let unique: HashSet<_> = pts.iter().collect();
    assert_eq!(pts.len(), unique.len(), "{m}");
    assert_eq!(pts[0], "96");
    assert_eq!(sdp_lines(invite, "a=rtpmap:96 "), ["opus/48000/2"]);
}

/// SRTP: every SDES packet authenticates with the key its sender's SDP gave (the re-keyed
/// call's with the new key only after the re-INVITE), never with the other side's; the DTLS
/// call's with no key at all.
#[test]
fn srtp_follows_the_sdp_keys() {
    use voxtap_core::media::srtp::{CryptoAttr, SrtpContext};
    let mut cfg = small(Scenario::Srtp);
    cfg.calls = 5;
    let (frames, truth) = generate(&cfg);
    let cap = decode_capture(&frames);
    let msgs = sip_messages(&cap);
    let calls = by_call_id(&truth, &msgs);
    let rtp = rtp_of(&cap);
    let mut suites = Vec::new();
    for (c, ms) in calls.values() {
        let sdps: Vec<&String> = ms
            .iter()
            .filter(|m| m.contains("application/sdp"))
            .collect();
        if c.security == "dtls-srtp" {
            for m in &sdps {
                assert!(sdp_lines(m, "m=audio ")[0].contains(" UDP/TLS/RTP/SAVPF "));
                assert_eq!(sdp_lines(m, "a=fingerprint:sha-256 ").len(), 1);
                assert!(sdp_lines(m, "a=crypto:").is_empty());
            }
            continue;
        }
        assert_eq!(c.security, "sdes-srtp");
        // Offer and answer per epoch: (INVITE, 200 OK) pairs.
        let mut epochs = Vec::new();
        for pair in sdps.chunks(2) {
            let (offer, answer) = (
                sdp_lines(pair[0], "a=crypto:"),
                sdp_lines(pair[1], "a=crypto:"),
            );
            assert_eq!(offer.len(), 2, "the offer lists two suites");
            assert_eq!(answer.len(), 1, "the answer picks one");
            let answer = CryptoAttr::parse(answer[0]).unwrap();
            let chosen = offer
                .iter()
                .map(|l| CryptoAttr::parse(l).unwrap())
                .find(|a| a.tag == answer.tag)
                .expect("the answer's tag is offered");
            assert_eq!(chosen.suite, answer.suite);
            assert_ne!(
                chosen.keys[0].key, answer.keys[0].key,
                "each side has its own key"
            );
            epochs.push((chosen, answer));
        }
        assert_eq!(epochs.len(), 1 + c.rekeys_at_secs.len());
        assert_eq!(c.srtp_suite.as_deref(), Some(epochs[0].1.suite.name()));
        assert_eq!(c.srtp_tag, Some(epochs[0].1.tag));
        suites.push((epochs[0].1.suite.name(), epochs[0].1.tag));
        let answer = c.answer_ns.unwrap();
        let switch = c.rekeys_at_secs.first().map(|s| answer + (s * 1e9) as u64);
        let port = |m: &str| -> u16 {
            sdp_lines(m, "m=audio ")[0]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let ports = [port(sdps[0]), port(sdps[1])];
        for caller in [true, false] {
            let src_port = ports[usize::from(!caller)];
            let mut ctx: Vec<SrtpContext> = epochs
                .iter()
                .map(|(o, a)| SrtpContext::new(if caller { o } else { a }).unwrap())
                .collect();
            let mut other: Vec<SrtpContext> = epochs
                .iter()
                .map(|(o, a)| SrtpContext::new(if caller { a } else { o }).unwrap())
                .collect();
            let mut n = [0usize; 2];
            let mut out = Vec::new();
            for u in rtp
                .iter()
                .filter(|u| is_caller_addr(u.src) == caller && u.sport == src_port)
            {
                // Jitter is at most 1 ms: the epoch is clear 1 ms either side of the switch.
                let epoch = usize::from(switch.is_some_and(|t| u.t > t + 1_000_000));
                assert!(switch.is_none_or(|t| u.t.abs_diff(t) > 1_000_000));
                ctx[epoch]
                    .unprotect_rtp(&u.payload, &mut out)
                    .unwrap_or_else(|e| panic!("{} epoch {epoch}: {e}", c.sip_call_id));
                assert_eq!(
                    out[12..].len(),
                    if u.payload[1] & 0x7F == 0 { 160 } else { 4 }
                );
                for (k, x) in ctx.iter_mut().enumerate().filter(|(k, _)| *k != epoch) {
                    assert!(x.unprotect_rtp(&u.payload, &mut out).is_err(), "epoch {k}");
                }
                for x in &mut other {
                    assert!(x.unprotect_rtp(&u.payload, &mut out).is_err());
                }
                n[epoch] += 1;
            }
            assert!(n[0] > 40, "{n:?}");
            assert_eq!(n[1] > 40, switch.is_some(), "{n:?}");
        }
    }
    suites.sort();
    assert_eq!(
        suites,
        [
            ("AEAD_AES_128_GCM", 1),
            ("AES_256_CM_HMAC_SHA1_80", 2),
            ("AES_CM_128_HMAC_SHA1_80", 1),
            ("AES_CM_128_HMAC_SHA1_80", 1)
        ]
    );
}

/// `srtp: true` protects every call of another scenario (hold and move included) with the
/// keys of its SDPs, and changes nothing else.
#[test]
fn srtp_option_protects_any_scenario() {
    use voxtap_core::media::srtp::{CryptoAttr, SrtpContext};
    let mut cfg = small(Scenario::HoldMove);
    cfg.srtp = true;
    let (frames, truth) = generate(&cfg);
    let (plain, _) = generate(&small(Scenario::HoldMove));
    assert_eq!(
        frames.iter().map(|f| f.ts_ns).collect::<Vec<_>>(),
        plain.iter().map(|f| f.ts_ns).collect::<Vec<_>>()
    );
    let cap = decode_capture(&frames);
    let msgs = sip_messages(&cap);
    let invite = msgs.iter().find(|m| m.starts_with("INVITE ")).unwrap();
    let ok = msgs
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("application/sdp"))
        .unwrap();
    let answer = CryptoAttr::parse(sdp_lines(ok, "a=crypto:")[0]).unwrap();
    let offer = sdp_lines(invite, "a=crypto:")
        .into_iter()
        .map(|l| CryptoAttr::parse(l).unwrap())
        .find(|a| a.tag == answer.tag)
        .unwrap();
    let mut out = Vec::new();
    for caller in [true, false] {
        let mut ctx = SrtpContext::new(if caller { &offer } else { &answer }).unwrap();
        let pkts: Vec<_> = rtp_of(&cap)
            .into_iter()
            .filter(|u| is_caller_addr(u.src) == caller)
            .collect();
        assert!(pkts.len() > 50);
        for u in pkts {
            ctx.unprotect_rtp(&u.payload, &mut out).unwrap();
        }
    }
    assert_eq!(truth.calls[0].security, "sdes-srtp");
}
