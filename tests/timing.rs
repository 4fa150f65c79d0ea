//! End to end: what clocks and networks do to timing. A capture clock that drifts against the
//! senders, a replay four times faster than real time, a stall followed by a burst, and calls
//! one after another on the same RTP ports: in every case every sample received is in the
//! recording, on the right channel, for the media's length, and the catalog says nothing was
//! late, shifted or concealed.

use voxtap_gen::{GenConfig, Scenario, generate, timing};
use voxtap_tests::{Replayed, catalog, check_against_truth, replay_frames};

/// Per recording: state, duration, caller and callee seconds heard, slipped and shifted.
type RecRow = (String, f64, f64, f64, f64, f64);

fn recordings(r: &Replayed) -> Vec<RecRow> {
    let db = catalog(&r.out);
    voxtap_tests::rows(
        &db,
        "SELECT state, duration_s, caller_audio_s, callee_audio_s, slipped_s, shifted_s
             FROM recordings ORDER BY id",
    )
}

/// Every received sample decoded and kept: each stream's decoded seconds are its packets'
/// worth (20 ms each), nothing late, duplicated or concealed.
fn every_sample_kept(r: &Replayed) {
    let db = catalog(&r.out);
    let rows: Vec<(String, i64, i64, i64, f64, f64, String)> = voxtap_tests::rows(
        &db,
        "SELECT side, packets, late, duplicates, decoded_s, concealed_s, status FROM streams",
    );
    assert!(!rows.is_empty());
    for (side, packets, late, dups, decoded, concealed, status) in rows {
        assert_eq!(status, "decoded", "{side}");
        assert_eq!((late, dups), (0, 0), "{side}: late and duplicate packets");
        assert!(
            (decoded - packets as f64 * 0.02).abs() < 1e-6,
            "{side}: {decoded} s decoded of {packets} packets"
        );
        assert_eq!(
            concealed, 0.0,
            "{side}: nothing was lost, nothing concealed"
        );
    }
    let late: i64 = db
        .query_row(
            "SELECT late_packets FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(late, 0, "the run counts no late audio");
}

fn one_long_call(talk_secs: f64) -> (Vec<voxtap_gen::Frame>, voxtap_gen::GroundTruth) {
    let mut cfg = GenConfig::new(Scenario::Pcmu);
    cfg.talk_secs = talk_secs;
    generate(&cfg)
}

fn check_all(r: &Replayed, media_secs: f64) {
    check_against_truth(&r.out, &r.truth, &r.summary);
    every_sample_kept(r);
    for (state, dur, caller, callee, slipped, shifted) in recordings(r) {
        assert_eq!(state, "complete");
        assert!(
            (dur - media_secs).abs() < 0.05,
            "recording {dur} s, media {media_secs} s"
        );
        assert!((caller - media_secs).abs() < 1e-6 && (callee - media_secs).abs() < 1e-6);
        assert_eq!((slipped, shifted), (0.0, 0.0), "both senders share a clock");
    }
}

/// A 30-minute call whose capture clock runs 1000 ppm fast, then one 1000 ppm slow: 1.8 s
/// apart from the senders by the end. The recording follows the RTP clocks and keeps it all.
#[test]
fn thirty_minutes_at_plus_and_minus_1000_ppm() {
    for ppm in [1000.0, -1000.0] {
        let (mut frames, mut truth) = one_long_call(1800.0);
        timing::drift(&mut frames, &mut truth, ppm);
        let r = replay_frames(frames, truth, &format!("drift{ppm}"), None);
        check_all(&r, 1800.0);
    }
}

/// A 10-minute call replayed four times faster than real time: a 10-minute recording.
#[test]
fn ten_minutes_replayed_at_four_times_real_time() {
    let (mut frames, mut truth) = one_long_call(600.0);
    timing::scale_time(&mut frames, &mut truth, 0.25);
    let r = replay_frames(frames, truth, "speed4", None);
    check_all(&r, 600.0);
}

/// The callee's RTP stalls for 2 s and then comes in a burst: placed where its timestamps
/// say, nothing late, the tone whole across the stall.
#[test]
fn a_two_second_stall_then_a_burst() {
    let mut cfg = GenConfig::new(Scenario::Pcmu);
    cfg.talk_secs = 10.0;
    let (mut frames, truth) = generate(&cfg);
    let spec = voxtap_gen::scenario::plan(&cfg)[0].clone();
    let from = truth.calls[0].answer_ns.expect("answered") + 3_000_000_000;
    let held = timing::stall(&mut frames, spec.callee_rtp_port, from, 2_000_000_000);
    assert!(held > 90, "{held} packets held");
    let r = replay_frames(frames, truth, "stall", None);
    check_all(&r, 10.0);
}

/// Five calls between the same phones on the same RTP ports, each a second after the last
/// one's BYE, with new SSRCs: every call has its own audio from its first packet.
#[test]
fn back_to_back_calls_on_the_same_ports_keep_their_openings() {
    let mut cfg = GenConfig::new(Scenario::BackToBack);
    cfg.calls = 5;
    let (frames, truth) = generate(&cfg);
    let r = replay_frames(frames, truth, "backtoback", None);
    check_against_truth(&r.out, &r.truth, &r.summary);
    every_sample_kept(&r);
    let db = catalog(&r.out);
    let unmatched: i64 = db
        .query_row("SELECT rtp_unmatched FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(unmatched, 0);
    let recs = recordings(&r);
    assert_eq!(recs.len(), 5);
    for (state, dur, caller, callee, ..) in recs {
        assert_eq!(state, "complete");
        assert!(
            (caller - 4.0).abs() < 1e-6 && (callee - 4.0).abs() < 1e-6,
            "{caller} {callee}"
        );
        assert!((dur - 4.0).abs() < 0.05, "{dur}");
    }
}

/// Packet time that jumps: a BYE stamped three days after the answer, and a capture clock
/// stepped forward an hour mid-call. Timers fire in order across the jump (the call ends by
/// media timeout at its last packet), nothing is allocated for the gap, the run completes and
/// the recording holds the call's audio, not days of silence.
#[test]
fn a_jump_in_packet_time_is_bounded() {
    for (name, jump_at_bye) in [("bye-days-later", true), ("clock-step", false)] {
        let mut cfg = GenConfig::new(Scenario::Pcmu);
        cfg.talk_secs = 10.0;
        let (mut frames, truth) = generate(&cfg);
        let answer = truth.calls[0].answer_ns.expect("answered");
        let bye = truth.calls[0].end_ns;
        let (from, by) = if jump_at_bye {
            (bye, 3 * 86_400 * 1_000_000_000u64)
        } else {
            (answer + 5_000_000_000, 3_600 * 1_000_000_000u64)
        };
        for f in frames.iter_mut().filter(|f| f.ts_ns >= from) {
            f.ts_ns += by;
        }
        let r = replay_frames(frames, truth, name, None);
        let db = catalog(&r.out);
        let (state,): (String,) = db
            .query_row("SELECT state FROM runs", [], |r| Ok((r.get(0)?,)))
            .unwrap();
        assert_eq!(state, "complete", "{name}");
        let recs = recordings(&r);
        let total: f64 = recs.iter().map(|r| r.1).sum();
        let want = if jump_at_bye { 10.0 } else { 5.0 };
        assert!(
            (total - want).abs() < 0.6,
            "{name}: {total} s recorded, the audio before the jump is {want} s"
        );
        let reason: String = db
            .query_row("SELECT end_reason FROM calls", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            reason, "media-timeout",
            "{name}: the timeout fired across the jump"
        );
    }
}
