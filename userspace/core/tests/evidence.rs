//! Evidence ([`voxtap_core::evidence`]): each call's chunks hold exactly its frames, as they
//! were fed: SIP by its Call-ID, RTP and RTCP by its streams, IP fragments and TCP segments of
//! its SIP messages, and RTP that came before its SDP. No other call's frame is in them, the
//! memory budget hands buffers out early without losing a frame, workers share the calls out,
//! and off means no evidence at all.

use std::collections::{BTreeMap, HashMap};

use voxtap_core::event::Event;
use voxtap_core::evidence::EvidenceConfig;
use voxtap_core::vocab::{CallHandle, Shard};
use voxtap_core::wire::{self, Decoded, Transport};
use voxtap_core::{Engine, EngineConfig, LinkType, Timestamp};
use voxtap_gen::{Frame, GenConfig, Scenario, generate};

fn with_evidence(ev: EvidenceConfig) -> EngineConfig {
    EngineConfig {
        evidence: Some(ev),
        ..EngineConfig::default()
    }
}

/// What one run handed out: each call's Call-ID and its frames `(ts, bytes)` in chunk order.
#[derive(Default, Debug)]
struct Evidence {
    call_ids: HashMap<CallHandle, String>,
    frames: BTreeMap<CallHandle, Vec<(u64, Vec<u8>)>>,
    last_chunks: HashMap<CallHandle, usize>,
    chunks: usize,
    /// Chunk sizes in bytes.
    largest_chunk: usize,
    ended_before_last_chunk: usize,
}

fn run(cfg: EngineConfig, frames: &[Frame]) -> (Evidence, Engine) {
    let mut engine = Engine::new(cfg);
    let mut out = Evidence::default();
    let mut ended = Vec::new();
    let mut take = |engine: &mut Engine, out: &mut Evidence| {
        while let Some(e) = engine.poll_event() {
            match e {
                Event::CallStarted(c) => {
                    out.call_ids.insert(c.call, c.sip_call_id);
                }
                Event::CallEnded { call, .. } => ended.push(call),
                Event::Evidence(chunk) => {
                    out.chunks += 1;
                    out.largest_chunk = out.largest_chunk.max(chunk.data.len());
                    if ended.contains(&chunk.call) {
                        out.ended_before_last_chunk += 1;
                    }
                    let n = chunk.frames().count();
                    assert_eq!(n, chunk.frames as usize, "frame count of a chunk");
                    let list = out.frames.entry(chunk.call).or_default();
                    for f in chunk.frames() {
                        assert_eq!(f.linktype, 1, "generated frames are Ethernet");
                        list.push((f.ts.0, f.data.to_vec()));
                    }
                    if chunk.last {
                        *out.last_chunks.entry(chunk.call).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
    };
    for f in frames {
        engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
        take(&mut engine, &mut out);
    }
    engine.finish();
    take(&mut engine, &mut out);
    (out, engine)
}

fn payload(data: &[u8]) -> Option<&[u8]> {
    match wire::decode(LinkType::Ethernet, data).ok()? {
        Decoded::Packet {
            transport: Transport::Udp { payload, .. } | Transport::Tcp { payload, .. },
            ..
        } => Some(payload),
        _ => None,
    }
}

fn call_id(data: &[u8]) -> Option<String> {
    let p = payload(data)?;
    let msg = voxtap_core::sip::Message::parse(p).ok()?;
    Some(msg.call_id()?.to_string())
}

/// Frames that carry something: TCP segments without payload (handshake, ACKs) are no
/// message's, so no call's evidence.
fn carries_data(data: &[u8]) -> bool {
    !matches!(payload(data), Some([]))
}

/// Every frame fed (that carries data) is in exactly one call's evidence, each call's SIP
/// frames are those with its Call-ID, every call got exactly one last chunk, and that chunk
/// came before its CallEnded. Frames are in the order they were fed, except RTP that waited
/// for its SDP, which comes when the SDP claims it (`ordered` false).
fn check_partition_as(frames: &[Frame], ev: &Evidence, ordered: bool) {
    let mut fed: Vec<(u64, Vec<u8>)> = frames
        .iter()
        .filter(|f| carries_data(&f.data))
        .map(|f| (f.ts_ns, f.data.clone()))
        .collect();
    let mut kept: Vec<(u64, Vec<u8>)> = ev.frames.values().flatten().cloned().collect();
    fed.sort();
    kept.sort();
    assert_eq!(
        kept.len(),
        fed.len(),
        "frames in evidence vs frames fed (with data)"
    );
    assert!(kept == fed, "evidence is not the frames fed");
    for (call, list) in &ev.frames {
        let id = &ev.call_ids[call];
        for (_, data) in list {
            if let Some(other) = call_id(data) {
                assert_eq!(&other, id, "a SIP message of {other} in {id}'s evidence");
            }
        }
        if ordered {
            assert!(
                list.windows(2).all(|w| w[0].0 <= w[1].0),
                "{id}: out of order"
            );
        }
    }
    for call in ev.call_ids.keys() {
        assert_eq!(
            ev.last_chunks.get(call),
            Some(&1),
            "one last chunk per call"
        );
    }
    assert_eq!(ev.ended_before_last_chunk, 0, "last chunk after CallEnded");
}

fn check_partition(frames: &[Frame], ev: &Evidence) {
    check_partition_as(frames, ev, true)
}

#[test]
fn each_call_gets_its_frames_and_no_others() {
    let (frames, truth) = generate(&GenConfig {
        calls: 12,
        ..GenConfig::new(Scenario::Concurrent)
    });
    let (ev, engine) = run(with_evidence(EvidenceConfig::default()), &frames);
    assert_eq!(ev.call_ids.len(), truth.calls.len());
    check_partition(&frames, &ev);
    let s = engine.stats();
    assert_eq!(s.evidence_frames, frames.len() as u64);
    assert_eq!(s.evidence_unclaimed, 0);
    assert_eq!(engine.evidence_bytes(), (0, 0), "all handed out at the end");
}

#[test]
fn fragments_of_a_sip_datagram_are_its_calls() {
    let (frames, _) = generate(&GenConfig {
        calls: 4,
        ..GenConfig::new(Scenario::FragmentedInvite)
    });
    let fragments = frames
        .iter()
        .filter(|f| {
            matches!(
                wire::decode(LinkType::Ethernet, &f.data),
                Ok(Decoded::Fragment(_))
            )
        })
        .count();
    assert!(fragments >= 8, "the scenario has fragments ({fragments})");
    let (ev, engine) = run(with_evidence(EvidenceConfig::default()), &frames);
    check_partition(&frames, &ev);
    assert_eq!(engine.stats().evidence_unclaimed, 0);
}

#[test]
fn tcp_segments_of_a_sip_message_are_its_calls() {
    let (frames, _) = generate(&GenConfig {
        calls: 3,
        ..GenConfig::new(Scenario::Tcp)
    });
    let (ev, _) = run(with_evidence(EvidenceConfig::default()), &frames);
    check_partition(&frames, &ev);
}

#[test]
fn rtp_before_its_sdp_is_evidence_once_claimed() {
    let (mut frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    // As in engine.rs: the signalling reaches the tap 1.5 s late, RTP waits for its SDP.
    let is_sip = |f: &Frame| payload(&f.data).is_some_and(voxtap_core::sip::looks_like_sip);
    let first_rtp = frames.iter().find(|f| !is_sip(f)).unwrap().ts_ns;
    for f in frames
        .iter_mut()
        .filter(|f| is_sip(f) && f.ts_ns > first_rtp - 1_000_000_000)
    {
        f.ts_ns += 1_500_000_000;
    }
    frames.sort_by_key(|f| f.ts_ns);
    let (ev, engine) = run(with_evidence(EvidenceConfig::default()), &frames);
    assert_eq!(engine.stats().rtp_unmatched, 0);
    check_partition_as(&frames, &ev, false);
}

#[test]
fn rtcp_goes_with_its_rtp_stream() {
    let (mut frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    // An RTCP receiver report one port above each RTP packet's ports, every 50th packet.
    let rtp: Vec<Frame> = frames
        .iter()
        .filter(|f| {
            payload(&f.data).is_some_and(|p| p.len() > 12 && p[0] >> 6 == 2 && p[1] & 0x7f == 0)
        })
        .step_by(50)
        .cloned()
        .collect();
    assert!(rtp.len() > 4);
    for f in rtp {
        frames.push(rtcp_beside(&f));
    }
    frames.sort_by_key(|f| f.ts_ns);
    let (ev, engine) = run(with_evidence(EvidenceConfig::default()), &frames);
    assert!(engine.stats().rtcp_packets > 4);
    check_partition(&frames, &ev);
}

/// An RTCP RR (RFC 3550 §6.4.2, no report blocks) from and to the ports above `rtp`'s,
/// 1 µs after it (IPv4 over Ethernet, UDP checksum 0).
fn rtcp_beside(rtp: &Frame) -> Frame {
    let mut d = rtp.data[..14 + 20 + 8].to_vec();
    let rr = [0x80u8, 201, 0, 1, 0x11, 0x22, 0x33, 0x44];
    d.extend_from_slice(&rr);
    let ip_len = (20 + 8 + rr.len()) as u16;
    d[16..18].copy_from_slice(&ip_len.to_be_bytes());
    d[24..26].copy_from_slice(&[0, 0]);
    let sum = {
        let mut s = 0u32;
        for c in d[14..34].chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    };
    d[24..26].copy_from_slice(&sum.to_be_bytes());
    let sport = u16::from_be_bytes([d[34], d[35]]) + 1;
    let dport = u16::from_be_bytes([d[36], d[37]]) + 1;
    d[34..36].copy_from_slice(&sport.to_be_bytes());
    d[36..38].copy_from_slice(&dport.to_be_bytes());
    d[38..40].copy_from_slice(&((8 + rr.len()) as u16).to_be_bytes());
    d[40..42].copy_from_slice(&[0, 0]);
    Frame {
        ts_ns: rtp.ts_ns + 1000,
        data: d,
    }
}

#[test]
fn the_budget_hands_the_biggest_out_early_and_loses_nothing() {
    let (frames, _) = generate(&GenConfig {
        calls: 30,
        ..GenConfig::new(Scenario::Concurrent)
    });
    let small = EvidenceConfig {
        chunk_bytes: 64 * 1024,
        budget_bytes: 256 * 1024,
        ..EvidenceConfig::default()
    };
    let (ev, engine) = run(with_evidence(small), &frames);
    check_partition(&frames, &ev);
    let s = engine.stats();
    assert!(
        s.evidence_spills > 0,
        "30 calls over a 256 KiB budget spill"
    );
    assert!(ev.largest_chunk <= 64 * 1024, "a chunk over chunk_bytes");
    let (whole, _) = run(with_evidence(EvidenceConfig::default()), &frames);
    assert!(ev.chunks > whole.chunks);
    assert_eq!(
        ev.frames, whole.frames,
        "the same frames per call, in order"
    );
}

#[test]
fn workers_share_the_calls_out() {
    let (frames, _) = generate(&GenConfig {
        calls: 10,
        ..GenConfig::new(Scenario::Concurrent)
    });
    let (one, _) = run(with_evidence(EvidenceConfig::default()), &frames);
    let mut joined: BTreeMap<CallHandle, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    for index in 0..3 {
        let cfg = EngineConfig {
            shard: Shard { index, count: 3 },
            ..with_evidence(EvidenceConfig::default())
        };
        let (ev, _) = run(cfg, &frames);
        for (call, list) in ev.frames {
            assert!(cfg_owns(index, call), "worker {index} handed out {call:?}");
            assert!(joined.insert(call, list).is_none());
        }
    }
    assert_eq!(joined, one.frames);
}

fn cfg_owns(index: u32, call: CallHandle) -> bool {
    Shard { index, count: 3 }.owns(call)
}

#[test]
fn off_keeps_nothing() {
    let (frames, _) = generate(&GenConfig::new(Scenario::Mix));
    let (ev, engine) = run(EngineConfig::default(), &frames);
    assert_eq!(ev.chunks, 0);
    assert_eq!(engine.stats().evidence_frames, 0);
    assert_eq!(engine.evidence_bytes(), (0, 0));
}
