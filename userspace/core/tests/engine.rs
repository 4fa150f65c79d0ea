//! The engine in-process on generated traffic: determinism, RTP before its SDP, unmatched RTP,
//! calls without BYE, timeouts from packet time, bounded state under an INVITE flood, and
//! damaged frames. Each test steps packet time by hand; nothing reads a clock.

use std::time::Duration;

use voxtap_core::event::{EndReason, Event, StopReason, StreamReport};
use voxtap_core::vocab::Side;
use voxtap_core::wire::{self, Decoded, Transport};
use voxtap_core::{Engine, EngineConfig, LinkType, Timestamp};
use voxtap_gen::{Frame, GenConfig, Scenario, generate};

fn run(cfg: EngineConfig, frames: &[Frame]) -> (Vec<Event>, Engine) {
    drive(Engine::new(cfg), frames)
}

/// Feeds every frame, then finishes, collecting every event.
fn drive(mut engine: Engine, frames: &[Frame]) -> (Vec<Event>, Engine) {
    let mut events = Vec::new();
    for f in frames {
        engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
        while let Some(e) = engine.poll_event() {
            events.push(e);
        }
    }
    engine.finish();
    while let Some(e) = engine.poll_event() {
        events.push(e);
    }
    (events, engine)
}

/// The UDP or TCP payload of a generated frame, if it has one.
fn payload(f: &Frame) -> Option<&[u8]> {
    match wire::decode(LinkType::Ethernet, &f.data).ok()? {
        Decoded::Packet {
            transport: Transport::Udp { payload, .. } | Transport::Tcp { payload, .. },
            ..
        } => Some(payload),
        _ => None,
    }
}

fn is_sip(f: &Frame) -> bool {
    payload(f).is_some_and(voxtap_core::sip::looks_like_sip)
}

fn starts_with(f: &Frame, prefix: &str) -> bool {
    payload(f).is_some_and(|p| p.starts_with(prefix.as_bytes()))
}

fn call_ended(events: &[Event]) -> Vec<(EndReason, Timestamp)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CallEnded { reason, ts, .. } => Some((*reason, *ts)),
            _ => None,
        })
        .collect()
}

/// Every stream's report, in the order the streams ended.
fn stream_reports(events: &[Event]) -> Vec<&StreamReport> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StreamEnded(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn the_same_input_gives_the_same_events() {
    let (frames, _) = generate(&GenConfig::new(Scenario::Mix));
    let (a, _) = run(EngineConfig::default(), &frames);
    let (b, _) = run(EngineConfig::default(), &frames);
    assert!(a.len() > 100);
    assert_eq!(a, b);
}

#[test]
fn rtp_seen_before_its_sdp_is_claimed_not_lost() {
    let (mut frames, truth) = generate(&GenConfig::new(Scenario::Pcmu));
    // The signalling reaches the tap 1.5 s late (another SPAN path): the first RTP of both
    // directions arrives before any SDP names its endpoints.
    let first_rtp = frames.iter().find(|f| !is_sip(f)).unwrap().ts_ns;
    for f in frames
        .iter_mut()
        .filter(|f| is_sip(f) && f.ts_ns > first_rtp - 1_000_000_000)
    {
        f.ts_ns += 1_500_000_000;
    }
    frames.sort_by_key(|f| f.ts_ns);
    let (events, engine) = run(EngineConfig::default(), &frames);
    assert_eq!(engine.stats().rtp_unmatched, 0, "held RTP must be claimed");
    let reports = stream_reports(&events);
    let t = &truth.calls[0];
    let caller: u64 = reports
        .iter()
        .filter(|r| r.side == Side::Caller)
        .map(|r| r.packets)
        .sum();
    let callee: u64 = reports
        .iter()
        .filter(|r| r.side == Side::Callee)
        .map(|r| r.packets)
        .sum();
    assert_eq!(
        (caller, callee),
        (t.rtp_packets_caller, t.rtp_packets_callee)
    );
}

#[test]
fn held_rtp_over_the_buffer_budget_is_evicted_and_counted() {
    use voxtap_core::stats::Dropped;
    let (mut frames, truth) = generate(&GenConfig::new(Scenario::Pcmu));
    // As above, the SDP comes 1.5 s late: about 150 RTP packets (26 KB) wait for it.
    let first_rtp = frames.iter().find(|f| !is_sip(f)).unwrap().ts_ns;
    for f in frames
        .iter_mut()
        .filter(|f| is_sip(f) && f.ts_ns > first_rtp - 1_000_000_000)
    {
        f.ts_ns += 1_500_000_000;
    }
    frames.sort_by_key(|f| f.ts_ns);
    let budget = 8 * 1024;
    let mut engine = Engine::new(EngineConfig {
        buffer_budget_bytes: budget,
        ..EngineConfig::default()
    });
    let mut started = 0;
    for f in &frames {
        engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
        assert!(
            engine.buffered_bytes() <= budget,
            "{}",
            engine.buffered_bytes()
        );
        while let Some(e) = engine.poll_event() {
            started += u32::from(matches!(e, Event::RecordingStarted(_)));
        }
    }
    engine.finish();
    let s = engine.stats();
    let t = &truth.calls[0];
    let evicted = s.dropped[Dropped::HeldRtpEvicted as usize];
    assert!(evicted > 0, "{s:?}");
    // Evicted packets never matched; everything else was claimed. Each packet is counted once.
    assert_eq!(s.rtp_unmatched, evicted);
    assert_eq!(s.rtp_packets, t.rtp_packets_caller + t.rtp_packets_callee);
    assert_eq!(s.rtp_matched + s.rtp_unmatched, s.rtp_packets);
    assert_eq!(s.dropped[Dropped::OverBudget as usize], 0);
    assert!(s.buffered_peak_bytes <= budget as u64);
    assert_eq!(started, 1, "the call is still recorded");
}

#[test]
fn rtp_without_signalling_is_counted_as_unmatched() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::Pcma));
    let rtp_only: Vec<Frame> = frames.into_iter().filter(|f| !is_sip(f)).collect();
    let (events, engine) = run(EngineConfig::default(), &rtp_only);
    let t = &truth.calls[0];
    assert_eq!(
        engine.stats().rtp_unmatched,
        t.rtp_packets_caller + t.rtp_packets_callee
    );
    assert!(events.is_empty(), "no call, no event: {events:?}");
}

#[test]
fn a_call_without_bye_ends_at_its_last_packet() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::Pcmu));
    let bye_at = frames.iter().position(|f| starts_with(f, "BYE ")).unwrap();
    let cut = &frames[..bye_at];
    let last = cut.last().unwrap().ts_ns;
    let (events, _) = run(EngineConfig::default(), cut);
    assert_eq!(
        call_ended(&events),
        vec![(EndReason::EndOfInput, Timestamp(last))]
    );
    let frames_written: u64 = events
        .iter()
        .filter_map(|e| match e {
            Event::RecordingStopped { frames, .. } => Some(*frames),
            _ => None,
        })
        .sum();
    let answered = truth.calls[0].answer_ns.unwrap();
    let want = (last - answered) * 8000 / 1_000_000_000;
    // The recording follows the media clock from where its first packets anchored it (their
    // arrival jitter), so it may differ from the capture's reckoning by a packet or so.
    assert!(
        frames_written.abs_diff(want) <= 160,
        "{frames_written} frames, want {want}: no trailing silence"
    );
}

#[test]
fn silence_after_answer_times_out_in_packet_time() {
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    let bye_at = frames.iter().position(|f| starts_with(f, "BYE ")).unwrap();
    let mut cut = frames[..bye_at].to_vec();
    let last = cut.last().unwrap().ts_ns;
    let mut cfg = EngineConfig::default();
    cfg.dialog.media_timeout = Duration::from_secs(30);
    // Unrelated traffic 31 s later moves packet time on.
    let mut later = cut[0].clone();
    later.ts_ns = last + 31_000_000_000;
    later.data.truncate(14); // an Ethernet header with nothing in it
    cut.push(later);
    let (events, engine) = run(cfg, &cut);
    assert_eq!(
        call_ended(&events),
        vec![(EndReason::MediaTimeout, Timestamp(last))]
    );
    assert_eq!(engine.active_calls(), 0);
}

#[test]
fn an_invite_flood_is_bounded_and_never_evicts_an_answered_call() {
    // One real call, and during it 300 INVITEs that are never answered.
    let (call, truth) = generate(&GenConfig::new(Scenario::Pcmu));
    let mut flood_cfg = GenConfig::new(Scenario::Concurrent);
    flood_cfg.calls = 300;
    let (flood, _) = generate(&flood_cfg);
    let t0 = call[0].ts_ns;
    let answer = truth.calls[0].answer_ns.unwrap();
    let mut frames: Vec<Frame> = flood
        .into_iter()
        .filter(|f| starts_with(f, "INVITE "))
        .enumerate()
        .map(|(i, mut f)| {
            f.ts_ns = answer + 10_000_000 * (i as u64 + 1);
            f
        })
        .collect();
    frames.extend(call);
    frames.sort_by_key(|f| f.ts_ns);
    let mut cfg = EngineConfig::default();
    cfg.dialog.max_calls = 50;
    let mut engine = Engine::new(cfg);
    let mut events = Vec::new();
    let mut peak = 0;
    for f in &frames {
        engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
        peak = peak.max(engine.active_calls());
        while let Some(e) = engine.poll_event() {
            events.push(e);
        }
    }
    engine.finish();
    while let Some(e) = engine.poll_event() {
        events.push(e);
    }
    assert!(peak <= 51, "tracked calls peaked at {peak}");
    let ended = call_ended(&events);
    assert_eq!(
        ended
            .iter()
            .filter(|(r, _)| *r == EndReason::Evicted)
            .count(),
        251
    );
    assert_eq!(engine.stats().evictions, 251);
    assert_eq!(
        ended.iter().filter(|(r, _)| *r == EndReason::Bye).count(),
        1,
        "the real call ends normally"
    );
    let recorded: u64 = events
        .iter()
        .filter_map(|e| match e {
            Event::RecordingStopped { frames, .. } => Some(*frames),
            _ => None,
        })
        .sum();
    let secs = recorded as f64 / 8000.0;
    assert!(
        (secs - truth.calls[0].recorded_secs).abs() < 0.1,
        "recorded {secs} s"
    );
    assert!(t0 < answer);
}

#[test]
fn damaged_frames_are_counted_and_never_panic() {
    let (frames, _) = generate(&GenConfig::new(Scenario::Mix));
    let mut engine = Engine::new(EngineConfig::default());
    for (i, f) in frames.iter().enumerate() {
        // Cut every frame somewhere inside its headers or payload.
        let cut = 1 + (i * 7919) % f.data.len().max(1);
        engine.handle(
            Timestamp(f.ts_ns),
            LinkType::Ethernet,
            &f.data[..cut.min(f.data.len())],
        );
        // And flip a byte of a copy.
        let mut bad = f.data.clone();
        let at = (i * 104_729) % bad.len();
        bad[at] ^= 0xa5;
        engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &bad);
        while engine.poll_event().is_some() {}
    }
    engine.finish();
    while engine.poll_event().is_some() {}
    let s = engine.stats();
    assert_eq!(s.frames, 2 * frames.len() as u64);
    assert!(s.malformed_total() > 0);
}

/// A toy on-demand policy: one digit per action.
struct Keys {
    pause: char,
    resume: char,
    stop: char,
    start: char,
}

impl voxtap_core::policy::RecordingPolicy for Keys {
    fn on_answer(
        &mut self,
        _: &voxtap_core::policy::CallFacts<'_>,
    ) -> voxtap_core::policy::Decision {
        voxtap_core::policy::Decision::new(true, "test")
    }

    fn on_trigger(
        &mut self,
        _: &voxtap_core::policy::CallFacts<'_>,
        trigger: &voxtap_core::policy::Trigger,
    ) -> Option<voxtap_core::policy::Command> {
        use voxtap_core::policy::{Command, Trigger};
        use voxtap_core::vocab::Action;
        let Trigger::Dtmf { digit, side, .. } = trigger else {
            return None;
        };
        let action = match *digit {
            d if d == self.pause => Action::Pause,
            d if d == self.resume => Action::Resume,
            d if d == self.stop => Action::Stop,
            d if d == self.start => Action::Start,
            _ => return None,
        };
        Some(Command {
            action,
            reason: format!("key {digit}"),
            requested_by: Some(*side),
            ..Command::default()
        })
    }
}

fn run_with(policy: Keys, frames: &[Frame]) -> Vec<Event> {
    drive(
        Engine::with_policy(EngineConfig::default(), Box::new(policy)),
        frames,
    )
    .0
}

#[test]
fn the_policy_pauses_and_resumes_and_the_paused_span_is_silent() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::Dtmf));
    let t = &truth.calls[0];
    // The caller presses 1 (pause) at 25% and # (resume) at 50%.
    let events = run_with(
        Keys {
            pause: '1',
            resume: '#',
            stop: 'x',
            start: 'x',
        },
        &frames,
    );
    let controls: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::RecordingControl(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(controls.len(), 2, "{controls:?}");
    assert_eq!(controls[0].action, voxtap_core::vocab::Action::Pause);
    assert_eq!(controls[1].action, voxtap_core::vocab::Action::Resume);
    assert_eq!(controls[0].requested_by, Some(Side::Caller));
    let answer = t.answer_ns.unwrap();
    let secs = |ts: Timestamp| (ts.as_nanos() - answer) as f64 / 1e9;
    let (p, r) = (secs(controls[0].ts), secs(controls[1].ts));
    let samples = left_right(&events);
    let frame = |s: f64| (s * 8000.0) as usize * 2;
    // Silent from just after the pause (the reorder window may hold a little audio) to the
    // resume, less the packet that arrives with it: its 20 ms were spoken just before.
    let paused = &samples[frame(p + 0.35)..frame(r - 0.025)];
    if let Some(i) = paused.iter().position(|&s| s != 0) {
        let n = paused.iter().filter(|&&s| s != 0).count();
        panic!(
            "audio while paused: first at {:.3} s, {n} samples, paused {p:.3}..{r:.3}, {} s in all",
            p + 0.35 + i as f64 / 16000.0,
            samples.len() as f64 / 16000.0
        );
    }
    let after = &samples[frame(r + 0.1)..frame(r + 0.5)];
    assert!(after.iter().any(|&s| s != 0), "no audio after resume");
    let before = &samples[frame(p - 0.5)..frame(p - 0.1)];
    assert!(before.iter().any(|&s| s != 0), "no audio before the pause");
}

#[test]
fn the_policy_stops_and_starts_a_new_recording() {
    let (frames, _) = generate(&GenConfig::new(Scenario::Dtmf));
    // The caller's # stops; the callee's 5 starts again.
    let events = run_with(
        Keys {
            pause: 'x',
            resume: 'x',
            stop: '#',
            start: '5',
        },
        &frames,
    );
    let starts = events
        .iter()
        .filter(|e| matches!(e, Event::RecordingStarted(_)))
        .count();
    let stops: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::RecordingStopped { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(starts, 2);
    use voxtap_core::event::StopReason;
    assert_eq!(stops, vec![StopReason::Policy, StopReason::CallEnded]);
}

#[test]
fn media_endpoints_are_announced_and_withdrawn_with_their_call() {
    let (frames, _) = generate(&GenConfig::new(Scenario::HoldMove));
    let (events, _) = run(EngineConfig::default(), &frames);
    let mut live = std::collections::BTreeSet::new();
    let mut added = 0;
    for e in &events {
        if let Event::MediaEndpoint {
            endpoint, active, ..
        } = e
        {
            if *active {
                assert!(live.insert(*endpoint), "{endpoint} announced twice");
                added += 1;
            } else {
                assert!(
                    live.remove(endpoint),
                    "{endpoint} withdrawn but never announced"
                );
            }
        }
    }
    // Caller and callee, plus the caller's new port after the media move.
    assert_eq!(added, 3);
    assert!(
        live.is_empty(),
        "every endpoint is withdrawn when its call is forgotten: {live:?}"
    );
}

/// A policy for the rules' engine-side work: records with `settings`, maps the SIP triggers
/// (INFO record key: start/stop; media control: pause/resume) and notes the facts it saw.
struct Scripted {
    settings: voxtap_core::policy::Settings,
    facts: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Scripted {
    fn new(
        settings: voxtap_core::policy::Settings,
    ) -> (Scripted, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let facts = std::sync::Arc::default();
        (
            Scripted {
                settings,
                facts: std::sync::Arc::clone(&facts),
            },
            facts,
        )
    }
}

impl voxtap_core::policy::RecordingPolicy for Scripted {
    fn on_answer(
        &mut self,
        f: &voxtap_core::policy::CallFacts<'_>,
    ) -> voxtap_core::policy::Decision {
        self.facts.lock().unwrap().push(format!(
            "{} {:?} {:?} {:?}",
            f.request_user, f.caller_contact, f.callee_contact, f.mode_header
        ));
        let mut d = voxtap_core::policy::Decision::new(f.mode_header != Some("deny"), "test");
        d.settings = self.settings.clone();
        d
    }

    fn on_trigger(
        &mut self,
        _: &voxtap_core::policy::CallFacts<'_>,
        trigger: &voxtap_core::policy::Trigger,
    ) -> Option<voxtap_core::policy::Command> {
        use voxtap_core::policy::{Command, Trigger};
        use voxtap_core::vocab::Action;
        let (action, side) = match *trigger {
            Trigger::SipInfoRecord { on, side } => {
                (if on { Action::Start } else { Action::Stop }, side)
            }
            Trigger::MediaControl { pause, side } => {
                (if pause { Action::Pause } else { Action::Resume }, side)
            }
            _ => return None,
        };
        Some(Command {
            action,
            reason: format!("{trigger:?}"),
            requested_by: Some(side),
            ..Command::default()
        })
    }
}

fn run_scripted(policy: Scripted, frames: &[Frame]) -> Vec<Event> {
    drive(
        Engine::with_policy(EngineConfig::default(), Box::new(policy)),
        frames,
    )
    .0
}

fn left_right(events: &[Event]) -> Vec<i16> {
    let mut out = Vec::new();
    for e in events {
        match e {
            Event::RecordingAudio { samples, .. } => out.extend_from_slice(samples),
            Event::RecordingSilence { frames, .. } => {
                out.resize(out.len() + *frames as usize * 2, 0)
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_policy_sees_the_number_dialled_the_contacts_and_the_mode() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::ModeHeader));
    let (policy, facts) = Scripted::new(Default::default());
    let events = run_scripted(policy, &frames);
    let mut facts = facts.lock().unwrap().clone();
    // In call order (the second call may be answered first).
    facts.sort();
    assert_eq!(facts.len(), 2);
    let c = &truth.calls[0];
    assert!(
        facts[0].starts_with(&format!("{} Some(\"sip:{}@", c.callee_user, c.caller_user)),
        "{facts:?}"
    );
    assert!(
        facts[0].contains(&format!("Some(\"sip:{}@", c.callee_user)),
        "{facts:?}"
    );
    assert!(facts[0].ends_with("Some(\"deny\")"), "{facts:?}");
    assert!(facts[1].ends_with("Some(\"force\")"), "{facts:?}");
    // deny: not recorded; force: recorded.
    let started = events
        .iter()
        .filter(|e| matches!(e, Event::RecordingStarted(_)))
        .count();
    assert_eq!(started, 1);
}

#[test]
fn the_sip_info_record_key_stops_and_starts_recordings() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::InfoRecord));
    let (policy, _) = Scripted::new(Default::default());
    let events = run_scripted(policy, &frames);
    let answer = truth.calls[0].answer_ns.unwrap();
    let rel = |ts: Timestamp| (ts.as_nanos() - answer) as f64 / 1e9;
    let recs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::RecordingStarted(r) => Some(("start", rel(r.ts))),
            Event::RecordingStopped { ts, reason, .. } => Some((
                if *reason == StopReason::Policy {
                    "stop"
                } else {
                    "end"
                },
                rel(*ts),
            )),
            _ => None,
        })
        .collect();
    let controls = &truth.calls[0].controls;
    assert_eq!(recs.len(), 4, "{recs:?}");
    assert_eq!(recs[0], ("start", 0.0));
    assert_eq!(recs[1].0, "stop");
    assert!(
        (recs[1].1 - controls[0].at_secs).abs() < 1e-6,
        "{recs:?} {controls:?}"
    );
    assert_eq!(recs[2].0, "start");
    assert!((recs[2].1 - controls[1].at_secs).abs() < 1e-6);
    assert_eq!(recs[3].0, "end");
}

#[test]
fn media_control_messages_pause_and_resume_in_and_out_of_dialog() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::MediaControl));
    let (policy, _) = Scripted::new(Default::default());
    let events = run_scripted(policy, &frames);
    let controls: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::RecordingControl(c) => Some(c),
            _ => None,
        })
        .collect();
    let c = &truth.calls[0];
    let answer = c.answer_ns.unwrap();
    assert_eq!(controls.len(), c.controls.len(), "{controls:?}");
    for (got, want) in controls.iter().zip(&c.controls) {
        assert_eq!(got.action.as_str(), want.action);
        assert_eq!(got.requested_by, Some(Side::Callee));
        let at = (got.ts.as_nanos() - answer) as f64 / 1e9;
        assert!((at - want.at_secs).abs() < 1e-6, "{at} {want:?}");
    }
    let samples = left_right(&events);
    let frame = |s: f64| (s * 8000.0) as usize * 2;
    for pair in c.controls.chunks(2) {
        let (p, r) = (pair[0].at_secs, pair[1].at_secs);
        assert!(
            samples[frame(p + 0.35)..frame(r)].iter().all(|&s| s == 0),
            "audio while paused {p}..{r}"
        );
        assert!(
            samples[frame(r + 0.1)..frame(r + 0.3)]
                .iter()
                .any(|&s| s != 0)
        );
    }
}

#[test]
fn the_time_limit_stops_the_recording_at_answer_plus_the_limit() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::Pcmu));
    let settings = voxtap_core::policy::Settings {
        time_limit: Some(1),
        record_min_sec: Some(3),
        ..Default::default()
    };
    let (policy, _) = Scripted::new(settings);
    let events = run_scripted(policy, &frames);
    let answer = truth.calls[0].answer_ns.unwrap();
    let started: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::RecordingStarted(r) => Some(r.min_secs),
            _ => None,
        })
        .collect();
    assert_eq!(started, [Some(3)]);
    let stopped: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::RecordingStopped {
                ts, reason, frames, ..
            } => Some((*ts, *reason, *frames)),
            _ => None,
        })
        .collect();
    assert_eq!(
        stopped,
        [(
            Timestamp(answer + 1_000_000_000),
            StopReason::TimeLimit,
            8000
        )]
    );
    // The call itself goes on: it ends later, by BYE.
    assert!(
        matches!(call_ended(&events)[..], [(EndReason::Bye, t)] if t.as_nanos() > answer + 3_000_000_000)
    );
}

#[test]
fn record_on_bridge_waits_for_rtp_in_both_directions() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::Pcmu));
    let settings = voxtap_core::policy::Settings {
        record_on: Some(voxtap_core::policy::RecordOn::Bridge),
        ..Default::default()
    };
    let (policy, _) = Scripted::new(settings);
    let events = run_scripted(policy, &frames);
    let answer = truth.calls[0].answer_ns.unwrap();
    // The first RTP each way after the answer (the generator starts both 5 ms after it).
    let (callee_first, caller_first) = {
        let mut first = [None, None];
        for f in &frames {
            if f.ts_ns < answer || is_sip(f) {
                continue;
            }
            if let Ok(Decoded::Packet { src, .. }) = wire::decode(LinkType::Ethernet, &f.data) {
                let i = usize::from(src.to_string().starts_with("10.2."));
                first[i].get_or_insert(f.ts_ns);
            }
        }
        (first[1].unwrap(), first[0].unwrap())
    };
    let started: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::RecordingStarted(r) => Some(r.ts.as_nanos()),
            _ => None,
        })
        .collect();
    assert_eq!(started, [callee_first.max(caller_first)]);
    assert!(started[0] > answer);
}

#[test]
fn record_on_bridge_records_nothing_when_only_one_direction_flows() {
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    // Drop the callee's RTP: the call is never bridged.
    let one_way: Vec<Frame> = frames
        .into_iter()
        .filter(|f| {
            is_sip(f)
                || !matches!(
                    wire::decode(LinkType::Ethernet, &f.data),
                    Ok(Decoded::Packet { src, .. }) if src.to_string().starts_with("10.2.")
                )
        })
        .collect();
    let settings = voxtap_core::policy::Settings {
        record_on: Some(voxtap_core::policy::RecordOn::Bridge),
        ..Default::default()
    };
    let (policy, _) = Scripted::new(settings);
    let events = run_scripted(policy, &one_way);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::RecordingStarted(_)))
    );
    assert_eq!(call_ended(&events).len(), 1);
}

#[test]
fn without_rules_on_demand_messages_change_nothing() {
    for scenario in [Scenario::MediaControl, Scenario::InfoRecord] {
        let (frames, _) = generate(&GenConfig::new(scenario));
        let (events, _) = run(EngineConfig::default(), &frames);
        let recs: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::RecordingStarted(r) => Some(r.min_secs),
                Event::RecordingStopped { reason, .. } => {
                    assert_eq!(*reason, StopReason::CallEnded);
                    None
                }
                Event::RecordingControl(c) => panic!("{c:?}"),
                _ => None,
            })
            .collect();
        assert_eq!(recs, [None], "{scenario:?}");
    }
}

/// Records every call at a sample rate of its choosing.
struct AtRate(u32);

impl voxtap_core::policy::RecordingPolicy for AtRate {
    fn on_answer(
        &mut self,
        _: &voxtap_core::policy::CallFacts<'_>,
    ) -> voxtap_core::policy::Decision {
        let mut d = voxtap_core::policy::Decision::new(true, "test rate");
        d.settings.sample_rate = Some(self.0);
        d
    }
}

#[test]
fn a_policy_sample_rate_gives_a_recording_at_that_rate_of_the_same_length() {
    let (frames, truth) = generate(&GenConfig::new(Scenario::Pcmu));
    let t = &truth.calls[0];
    let (events, _) = drive(
        Engine::with_policy(EngineConfig::default(), Box::new(AtRate(16_000))),
        &frames,
    );
    let rate = events
        .iter()
        .find_map(|e| match e {
            Event::RecordingStarted(r) => Some(r.sample_rate),
            _ => None,
        })
        .unwrap();
    assert_eq!(rate, 16_000);
    let frames_written: u64 = events
        .iter()
        .filter_map(|e| match e {
            Event::RecordingStopped { frames, .. } => Some(*frames),
            _ => None,
        })
        .sum();
    let secs = frames_written as f64 / 16_000.0;
    assert!(
        (secs - t.recorded_secs).abs() < 0.05,
        "{secs} s at 16 kHz vs {} s",
        t.recorded_secs
    );
    // The caller's tone is still where it was: every audio sample is non-silent mid-call.
    let left: Vec<i16> = left_right(&events).into_iter().step_by(2).collect();
    // No gap anywhere mid-call: the longest run of zeros is a zero crossing, not a lost packet.
    let mid = &left[16_000..32_000];
    let longest_zero_run = mid.split(|&s| s != 0).map(<[i16]>::len).max().unwrap_or(0);
    assert!(
        longest_zero_run < 8,
        "a run of {longest_zero_run} silent samples mid-call"
    );
}

/// The Call-ID of a generated SIP frame.
fn call_id_of(f: &Frame) -> Option<String> {
    let msg = voxtap_core::sip::Message::parse(payload(f)?).ok()?;
    Some(msg.call_id()?.to_string())
}

#[test]
fn a_monitor_sees_each_sip_message_of_a_call_and_its_progress() {
    let cfg = GenConfig::new(Scenario::Concurrent);
    let (frames, _) = generate(&GenConfig { calls: 20, ..cfg });
    let monitor = EngineConfig {
        monitor: true,
        ..EngineConfig::default()
    };
    let (events, _) = run(monitor.clone(), &frames);

    // Every SIP message of a call, in order, byte for byte.
    let calls: std::collections::HashMap<_, _> = events
        .iter()
        .filter_map(|e| match e {
            Event::CallStarted(c) => Some((c.sip_call_id.clone(), c.call)),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 20);
    let wanted: Vec<(voxtap_core::vocab::CallHandle, Vec<u8>)> = frames
        .iter()
        .filter(|f| is_sip(f))
        .filter_map(|f| Some((*calls.get(&call_id_of(f)?)?, payload(f)?.to_vec())))
        .collect();
    let seen: Vec<(voxtap_core::vocab::CallHandle, Vec<u8>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Sip(m) => Some((m.call, m.message.to_vec())),
            _ => None,
        })
        .collect();
    assert!(wanted.len() >= 20 * 5, "{} SIP messages", wanted.len());
    assert_eq!(seen, wanted);

    // Each answered call reports its streams about once a second of packet time while it
    // lasts, with counts that only grow, and nothing after it ended.
    for &call in calls.values() {
        let mut packets = Vec::new();
        let mut ended = false;
        for e in &events {
            match e {
                Event::CallProgress {
                    call: c, streams, ..
                } if *c == call => {
                    assert!(!ended, "progress after the end of {call:?}");
                    packets.push(streams.iter().map(|s| s.packets).sum::<u64>());
                }
                Event::CallEnded { call: c, .. } if *c == call => ended = true,
                _ => {}
            }
        }
        assert!(
            packets.len() >= 3,
            "{call:?}: {} progress reports",
            packets.len()
        );
        assert!(packets.windows(2).all(|w| w[0] <= w[1]), "{packets:?}");
        assert!(packets.last().is_some_and(|&n| n > 100), "{packets:?}");
    }

    // Without a monitor, neither is reported; with workers, each call's by its owner alone.
    let (plain, _) = run(EngineConfig::default(), &frames);
    assert!(
        !plain
            .iter()
            .any(|e| matches!(e, Event::Sip(_) | Event::CallProgress { .. }))
    );
    let monitored = |e: &&Event| matches!(e, Event::Sip(_) | Event::CallProgress { .. });
    let mut shards: Vec<Event> = (0..2)
        .flat_map(|index| {
            let cfg = EngineConfig {
                shard: voxtap_core::vocab::Shard { index, count: 2 },
                ..monitor.clone()
            };
            run(cfg, &frames).0.into_iter().filter(|e| monitored(&e))
        })
        .collect();
    let mut one: Vec<Event> = events.iter().filter(monitored).cloned().collect();
    let key = |e: &Event| format!("{e:?}");
    shards.sort_by_key(key);
    one.sort_by_key(key);
    assert_eq!(shards.len(), one.len());
    assert!(shards == one);
}

/// The control API says when a call is already in the state asked for, and does nothing then:
/// `pause` on a paused call, `resume` on a running one, `start` on a recording one, `stop` (and
/// `pause`) on a stopped one; each of them was answered as done.
#[test]
fn control_requests_say_when_the_call_is_already_in_that_state() {
    use voxtap_core::engine::ControlOutcome;
    use voxtap_core::policy::{Command, RecordAnswered};
    use voxtap_core::vocab::Action;
    let mut cfg = GenConfig::new(Scenario::Pcmu);
    cfg.talk_secs = 4.0;
    let (frames, truth) = generate(&cfg);
    let t = &truth.calls[0];
    let answer = t.answer_ns.unwrap();
    let mut engine = Engine::with_policy(EngineConfig::default(), Box::new(RecordAnswered));
    let cmd = |action| Command {
        action,
        reason: "control API".into(),
        ..Command::default()
    };
    let mut outcomes = Vec::new();
    let mut asked = false;
    let mut controls = 0;
    for f in &frames {
        engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
        if !asked && f.ts_ns > answer + 1_000_000_000 {
            asked = true;
            let ts = Timestamp(f.ts_ns);
            let id = t.sip_call_id.as_str();
            for action in [
                Action::Start,
                Action::Resume,
                Action::Pause,
                Action::Pause,
                Action::Resume,
                Action::Stop,
                Action::Stop,
                Action::Pause,
                Action::Resume,
            ] {
                outcomes.push((action, engine.control(id, ts, cmd(action))));
            }
            assert_eq!(
                engine.control("nobody@nowhere", ts, cmd(Action::Pause)),
                ControlOutcome::NoCall
            );
        }
        while let Some(e) = engine.poll_event() {
            controls += usize::from(matches!(e, Event::RecordingControl(_)));
        }
    }
    use ControlOutcome::*;
    let want = [
        (Action::Start, AlreadyRecording),
        (Action::Resume, NotPaused),
        (Action::Pause, Done),
        (Action::Pause, AlreadyPaused),
        (Action::Resume, Done),
        (Action::Stop, Done),
        (Action::Stop, NotRecording),
        (Action::Pause, NotRecording),
        (Action::Resume, NotRecording),
    ];
    assert_eq!(outcomes, want);
    // Only the pause and the resume that were done reached the catalog.
    assert_eq!(controls, 2);
    assert_eq!(
        AlreadyPaused.refusal("c@h").as_deref(),
        Some("call c@h is already paused")
    );
    assert_eq!(Done.refusal("c@h"), None);
}

/// A Call-ID with a NUL in it (RFC 3261 §25.1 forbids control characters) makes the message
/// malformed and counted; no call is stored under it.
#[test]
fn a_call_id_holding_a_nul_is_malformed_not_a_call() {
    let (mut frames, truth) = generate(&GenConfig::new(Scenario::Pcmu));
    let id = truth.calls[0].sip_call_id.as_bytes().to_vec();
    let mut changed = 0u64;
    for f in frames.iter_mut().filter(|f| is_sip(f)) {
        // Same length, so every header stays where it was (UDP checksums are not checked).
        if let Some(at) = f.data.windows(id.len()).position(|w| w == id.as_slice()) {
            f.data[at + 1] = 0;
            changed += 1;
        }
    }
    assert!(
        changed >= 4,
        "the INVITE, 200, ACK and BYE carry the Call-ID"
    );
    let (events, engine) = run(EngineConfig::default(), &frames);
    assert!(
        !events.iter().any(|e| matches!(e, Event::CallStarted(_))),
        "a call was started under a Call-ID with a NUL"
    );
    let sip = engine.stats().malformed[voxtap_core::stats::Malformed::Sip as usize];
    assert_eq!(sip, changed);
}

/// Calls that start while others talk name endpoints no flow uses: no flow checks its route
/// again (before, every new SDP made every known flow check its route at its next packet,
/// which with calls coming and going all the time is every packet).
#[test]
fn calls_coming_and_going_leave_the_other_flows_routes_alone() {
    let mut cfg = GenConfig::new(Scenario::Concurrent);
    cfg.calls = 30;
    cfg.talk_secs = 3.0;
    cfg.ramp_ms = Some(2_000.0);
    let (frames, truth) = generate(&cfg);
    let (events, engine) = run(EngineConfig::default(), &frames);
    assert_eq!(engine.route_rechecks(), 0);
    let stats = engine.stats();
    assert!(stats.rtp_packets > 10_000, "{}", stats.rtp_packets);
    assert_eq!(stats.rtp_matched, stats.rtp_packets);
    assert_eq!(stats.rtp_unmatched, 0);
    // Every call's two streams reached it, with every packet sent.
    let streams = stream_reports(&events);
    assert_eq!(streams.len(), 2 * truth.calls.len());
    assert!(streams.iter().all(|r| r.packets > 100 && r.lost == 0));
}

/// A desk phone's fixed RTP port: the next call's SDP names endpoints the last call's flows
/// still use, so those flows are checked again and follow the endpoint to the new call.
#[test]
fn an_endpoint_a_flow_uses_changing_hands_moves_the_flow() {
    let cfg = GenConfig::new(Scenario::BackToBack);
    let (frames, truth) = generate(&cfg);
    let (events, engine) = run(EngineConfig::default(), &frames);
    assert!(engine.route_rechecks() > 0);
    assert_eq!(engine.stats().rtp_unmatched, 0);
    // Each call has its own two streams, on the same ports as the others.
    let mut per_call = std::collections::BTreeMap::new();
    for r in stream_reports(&events) {
        assert!(r.packets > 0);
        *per_call.entry(r.call).or_insert(0) += 1;
    }
    assert_eq!(per_call.len(), truth.calls.len());
    assert!(per_call.values().all(|&n| n == 2), "{per_call:?}");
}
