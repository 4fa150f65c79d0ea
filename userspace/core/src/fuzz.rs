//! Entry points for the `cargo fuzz` targets in `fuzz/`, and for the tests that replay their
//! corpus on stable Rust. Each one pushes arbitrary bytes through a parser and checks an
//! invariant, not just the absence of a panic.

use crate::engine::{Engine, EngineConfig};
use crate::event::Event;
use crate::time::Timestamp;
use crate::wire::{self, Decoded, LinkType, Transport};
use crate::{rtp, sdp, sip};

/// Every link type: what `decode` returns lies inside the input.
pub fn frame(data: &[u8]) {
    let range = data.as_ptr_range();
    let inside = |s: &[u8]| {
        s.is_empty() || (range.contains(&s.as_ptr()) && s.as_ptr_range().end <= range.end)
    };
    for link in [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Null,
        LinkType::Loop,
    ] {
        match wire::decode(link, data) {
            Ok(Decoded::Packet {
                transport: Transport::Udp { payload, .. },
                ..
            })
            | Ok(Decoded::Packet {
                transport: Transport::Tcp { payload, .. },
                ..
            }) => {
                assert!(inside(payload), "payload outside the frame");
            }
            Ok(Decoded::Fragment(f)) => assert!(inside(f.payload), "fragment outside the frame"),
            _ => {}
        }
    }
}

/// SIP: a parsed message's parts lie inside the input, and framing never claims more bytes
/// than there are.
pub fn sip(data: &[u8]) {
    if let Ok(msg) = sip::Message::parse(data) {
        assert!(msg.body.len() <= data.len());
        for h in msg.headers() {
            assert!(h.name.len() + h.value.len() <= data.len());
        }
        let _ = (
            msg.call_id(),
            msg.from(),
            msg.to(),
            msg.cseq(),
            msg.sdp_body(),
        );
    }
    match sip::frame(data) {
        sip::Frame::Complete(n) | sip::Frame::Skip(n) => {
            assert!(n <= data.len(), "frame past the end")
        }
        sip::Frame::TooLarge(n) => assert!(n > 0, "a too-large message of no bytes"),
        sip::Frame::Incomplete => {}
    }
    let _ = sip::looks_like_sip(data);
}

/// SDP: bounded output whatever the input.
pub fn sdp(data: &[u8]) {
    if let Ok(sd) = sdp::parse(data) {
        assert!(sd.media.len() <= 64, "unbounded media sections");
        for m in &sd.media {
            let _ = (sd.direction_of(m), sd.address_of(m), m.telephone_event_pt());
        }
    }
}

/// RTP: the payload is a slice of the packet, and stream statistics stay consistent.
pub fn rtp(data: &[u8]) {
    if let Ok(p) = rtp::Packet::new_checked(data) {
        assert!(p.payload().len() <= data.len().saturating_sub(12));
        let mut stats = rtp::StreamStats::default();
        for (i, chunk) in data.chunks(4).enumerate() {
            let seq = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            stats.on_packet(
                i as u64 * 20_000_000,
                seq,
                i as u32 * 160,
                p.payload_type(),
                false,
                8000,
            );
        }
        assert!(stats.mean_jitter_ms().is_finite() && stats.max_jitter_ms() >= 0.0);
    }
    let _ = rtp::TelephoneEvent::parse(data);
}

/// The whole engine on a sequence of frames cut from the input: every frame ends in exactly
/// one counted outcome and finishing closes every recording it opened.
pub fn engine(data: &[u8]) {
    // The in-band DTMF detector on, so its decode path is fuzzed too.
    let mut engine = Engine::new(EngineConfig {
        inband_dtmf: true,
        ..EngineConfig::default()
    });
    let mut ts = 1_000_000_000u64;
    let mut rest = data;
    while rest.len() > 2 {
        let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        ts += 20_000_000;
        engine.handle(Timestamp(ts), LinkType::Ethernet, &rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    engine.finish();
    let (mut started, mut stopped) = (0, 0);
    while let Some(ev) = engine.poll_event() {
        match ev {
            Event::RecordingStarted(_) => started += 1,
            Event::RecordingStopped { .. } => stopped += 1,
            _ => {}
        }
    }
    assert_eq!(started, stopped, "every recording is closed at the end");
}

/// Frames cut from fuzz input, each after a time step: five bytes (the kind of step, its
/// amount, the frame's length) then the frame. A step goes forward by milliseconds or by
/// days, backwards, or not at all.
fn timed_frames(data: &[u8]) -> impl Iterator<Item = (Timestamp, &[u8])> {
    let mut ts = 1_700_000_000_000_000_000u64;
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.len() <= 5 {
            return None;
        }
        let amount = u64::from(u16::from_be_bytes([rest[1], rest[2]]));
        ts = match rest[0] % 5 {
            0 => ts.saturating_add(amount * 1_000_000),
            1 => ts.saturating_sub(amount * 1_000_000),
            2 => ts,
            // Up to 45 days ahead: a BYE stamped days later, a stepped clock, a damaged pcap.
            3 => ts.saturating_add(amount * 60_000_000_000),
            _ => ts.saturating_add(20_000_000),
        };
        let len = (u16::from_be_bytes([rest[3], rest[4]]) as usize).min(rest.len() - 5);
        let frame = &rest[5..5 + len];
        rest = &rest[5 + len..];
        Some((Timestamp(ts), frame))
    })
}

/// The engine under arbitrary packet time: each frame comes with a time step that may go
/// forward by milliseconds or by days, backwards, or not at all. Whatever the clock does, no
/// gap is allocated (no audio event is larger than the buffered bound), every recording
/// holds exactly the frames its stop reports, none runs past its maximum length, and every
/// recording started is stopped.
pub fn engine_timed(data: &[u8]) {
    use std::collections::HashMap;
    use std::time::Duration;

    let cfg = EngineConfig {
        inband_dtmf: true,
        max_recording: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    let bound_secs = (cfg.max_buffered + Duration::from_secs(10)).as_secs();
    let max_secs = cfg.max_recording.as_secs();
    let mut engine = Engine::new(cfg);
    // Per recording: its rate and the frames handed out so far.
    let mut recs: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut stopped = 0usize;
    let mut check = |engine: &mut Engine, recs: &mut HashMap<u64, (u64, u64)>| {
        while let Some(ev) = engine.poll_event() {
            match ev {
                Event::RecordingStarted(r) => {
                    recs.insert(r.rec.0, (u64::from(r.sample_rate), 0));
                }
                Event::RecordingAudio { rec, samples } => {
                    let r = recs.get_mut(&rec.0).expect("audio of a started recording");
                    assert!(
                        (samples.len() as u64) <= 2 * r.0 * bound_secs,
                        "{} samples in one audio event",
                        samples.len()
                    );
                    r.1 += samples.len() as u64 / 2;
                }
                Event::RecordingSilence { rec, frames } => {
                    recs.get_mut(&rec.0)
                        .expect("silence of a started recording")
                        .1 += frames;
                }
                Event::RecordingStopped { rec, frames, .. } => {
                    let (rate, got) = recs.remove(&rec.0).expect("stop of a started recording");
                    assert_eq!(got, frames, "the stop counts what was handed out");
                    assert!(
                        frames <= rate * max_secs,
                        "{frames} frames past the maximum length"
                    );
                    stopped += 1;
                }
                _ => {}
            }
        }
    };
    for (ts, frame) in timed_frames(data) {
        engine.handle(ts, LinkType::Ethernet, frame);
        check(&mut engine, &mut recs);
    }
    engine.finish();
    check(&mut engine, &mut recs);
    assert!(recs.is_empty(), "every recording is closed at the end");
    let _ = stopped;
}

/// The engine as workers (`voxtap --workers`, [`crate::vocab::Shard`]) under the input and the
/// clock of [`engine_timed`]: one engine and two shards of it, fed the same frames, say the
/// same. Each call's events (audio aside) in the same order, each recording's audio sample for
/// sample, the same run figures, and each call's RTP decoded by one worker only.
pub fn engine_workers(data: &[u8]) {
    use crate::stats::Stats;
    use crate::vocab::Shard;
    use std::collections::BTreeMap;

    #[derive(Default, PartialEq, Debug)]
    struct Said {
        calls: BTreeMap<u64, Vec<String>>,
        audio: BTreeMap<u64, (Vec<i16>, u64)>,
    }
    fn note(said: &mut Said, ev: Event) {
        match ev {
            Event::RecordingAudio { rec, samples } => said
                .audio
                .entry(rec.0)
                .or_default()
                .0
                .extend_from_slice(&samples),
            Event::RecordingSilence { rec, frames } => {
                said.audio.entry(rec.0).or_default().1 += frames
            }
            ev => {
                let call = ev.call().map_or(u64::MAX, |c| c.0);
                said.calls.entry(call).or_default().push(format!("{ev:?}"));
            }
        }
    }
    let engines = |count: u32| -> Vec<Engine> {
        (0..count)
            .map(|index| {
                Engine::new(EngineConfig {
                    shard: Shard { index, count },
                    ..EngineConfig::default()
                })
            })
            .collect()
    };
    let mut one = engines(1);
    let mut two = engines(2);
    let (mut said_one, mut said_two) = (Said::default(), Said::default());
    for (ts, frame) in timed_frames(data) {
        for (engines, said) in [(&mut one, &mut said_one), (&mut two, &mut said_two)] {
            for e in engines.iter_mut() {
                e.handle(ts, LinkType::Ethernet, frame);
                while let Some(ev) = e.poll_event() {
                    note(said, ev);
                }
            }
        }
    }
    for (engines, said) in [(&mut one, &mut said_one), (&mut two, &mut said_two)] {
        for e in engines.iter_mut() {
            e.finish();
            while let Some(ev) = e.poll_event() {
                note(said, ev);
            }
        }
    }
    assert_eq!(
        said_one.calls, said_two.calls,
        "each call's events with two workers"
    );
    assert!(
        said_one.audio == said_two.audio,
        "the recordings' audio with two workers"
    );
    let stats = |e: &[Engine]| {
        Stats::merge_shards(&e.iter().map(|e| e.stats().clone()).collect::<Vec<_>>())
    };
    assert_eq!(stats(&one), stats(&two), "the run figures with two workers");
    assert_eq!(
        one[0].owned_rtp_packets(),
        two.iter().map(Engine::owned_rtp_packets).sum::<u64>(),
        "each RTP packet of a call is one worker's"
    );
}
