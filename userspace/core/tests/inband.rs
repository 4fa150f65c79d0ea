//! In-band DTMF in the engine on generated traffic: off by default, heard in calls that are
//! not recorded, offered to the policy as `DtmfSource::InBand`, and never heard in calls that
//! carry only tones or RFC 4733 digits.

use std::sync::{Arc, Mutex};

use voxtap_core::event::Event;
use voxtap_core::policy::{CallFacts, Command, Decision, RecordingPolicy, Trigger};
use voxtap_core::vocab::{DtmfSource, Side};
use voxtap_core::wire::{self, Decoded, Transport};
use voxtap_core::{Engine, EngineConfig, LinkType, Timestamp};
use voxtap_gen::{Frame, GenConfig, Scenario, generate};

/// Records nothing and remembers every trigger it is offered.
struct Listener(Arc<Mutex<Vec<Trigger>>>);

impl RecordingPolicy for Listener {
    fn on_answer(&mut self, _: &CallFacts<'_>) -> Decision {
        Decision::new(false, "test: record nothing")
    }

    fn on_trigger(&mut self, _: &CallFacts<'_>, t: &Trigger) -> Option<Command> {
        self.0.lock().expect("not poisoned").push(t.clone());
        None
    }
}

/// (digit, source, side) of every DTMF event, and the triggers the policy saw.
fn run(scenario: Scenario, inband: bool) -> (Vec<(char, DtmfSource, Side)>, Vec<Trigger>) {
    let (frames, _) = generate(&GenConfig::new(scenario));
    run_frames(&frames, inband)
}

fn run_frames(frames: &[Frame], inband: bool) -> (Vec<(char, DtmfSource, Side)>, Vec<Trigger>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cfg = EngineConfig {
        inband_dtmf: inband,
        ..EngineConfig::default()
    };
    let mut engine = Engine::with_policy(cfg, Box::new(Listener(seen.clone())));
    let mut digits = Vec::new();
    let mut take = |engine: &mut Engine| {
        while let Some(e) = engine.poll_event() {
            assert!(
                !matches!(e, Event::RecordingStarted(_)),
                "nothing is recorded"
            );
            if let Event::Dtmf(d) = e {
                digits.push((d.digit, d.source, d.side));
            }
        }
    };
    for f in frames {
        engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
        take(&mut engine);
    }
    engine.finish();
    take(&mut engine);
    let triggers = seen.lock().expect("not poisoned").clone();
    (digits, triggers)
}

#[test]
fn tones_are_heard_in_an_unrecorded_call_and_offered_to_the_policy() {
    let (digits, triggers) = run(Scenario::InbandDtmf, true);
    let code: String = digits.iter().map(|d| d.0).collect();
    assert_eq!(code, "*48*49");
    assert!(
        digits
            .iter()
            .all(|d| d.1 == DtmfSource::InBand && d.2 == Side::Caller),
        "{digits:?}"
    );
    assert_eq!(triggers.len(), 6, "{triggers:?}");
    assert!(triggers.iter().all(|t| matches!(
        t,
        Trigger::Dtmf {
            source: DtmfSource::InBand,
            side: Side::Caller,
            ..
        }
    )));
}

#[test]
fn tones_are_heard_through_pcmu_and_pcma() {
    let mut cfg = GenConfig::new(Scenario::InbandDtmf);
    cfg.calls = 2;
    let (frames, truth) = generate(&cfg);
    let codecs: Vec<_> = truth.calls.iter().map(|c| c.codec.as_str()).collect();
    assert_eq!(codecs, ["PCMU", "PCMA"]);
    let (digits, _) = run_frames(&frames, true);
    let mut code: Vec<char> = digits.iter().map(|d| d.0).collect();
    code.sort();
    let mut want: Vec<char> = "*48*49*48*49".chars().collect();
    want.sort();
    assert_eq!(code, want, "{digits:?}");
}

#[test]
fn the_detector_is_off_by_default() {
    let (digits, triggers) = run(Scenario::InbandDtmf, false);
    assert!(digits.is_empty() && triggers.is_empty(), "{digits:?}");
}

#[test]
fn tones_and_rfc4733_calls_give_no_in_band_digits() {
    let (digits, _) = run(Scenario::Mix, true);
    assert!(!digits.is_empty(), "the Mix has RFC 4733 digits");
    assert!(
        digits.iter().all(|d| d.1 == DtmfSource::Rfc4733),
        "{digits:?}"
    );
    let (digits, _) = run(Scenario::Concurrent, true);
    assert!(digits.is_empty(), "{digits:?}");
}

/// The UDP payload of a frame sent from `src`, if it is RTP with payload type 0 (PCMU).
fn pcmu_from(f: &mut Frame, src: std::net::IpAddr) -> Option<&mut [u8]> {
    let (ip, port, len) = match wire::decode(LinkType::Ethernet, &f.data).ok()? {
        Decoded::Packet {
            src: ip,
            transport: Transport::Udp {
                src_port, payload, ..
            },
            ..
        } => (ip, src_port, payload.len()),
        _ => return None,
    };
    let at = f.data.len() - len;
    let rtp = &mut f.data[at..];
    (ip == src && port != 5060 && rtp.len() > 12 && rtp[0] == 0x80 && rtp[1] & 0x7f == 0)
        .then_some(rtp)
}

#[test]
fn a_stream_that_sends_rfc4733_events_is_not_heard_in_band() {
    let (mut frames, truth) = generate(&GenConfig::new(Scenario::InbandDtmf));
    let answer = truth.calls[0].answer_ns.expect("answered");
    let caller = frames
        .iter()
        .find_map(|f| match wire::decode(LinkType::Ethernet, &f.data) {
            Ok(Decoded::Packet {
                src,
                transport: Transport::Udp { payload, .. },
                ..
            }) if payload.starts_with(b"INVITE") => Some(src),
            _ => None,
        })
        .expect("an INVITE");
    // The caller's first audio packet after the answer becomes a telephone-event (PT 101,
    // event 0, not the end): the phone signals digits out of band.
    let rtp = frames
        .iter_mut()
        .filter(|f| f.ts_ns > answer)
        .find_map(|f| pcmu_from(f, caller))
        .expect("caller audio");
    rtp[1] = 101;
    rtp[12..16].copy_from_slice(&[0, 0x0a, 0, 160]);
    let (digits, triggers) = run_frames(&frames, true);
    assert!(digits.is_empty() && triggers.is_empty(), "{digits:?}");
}
