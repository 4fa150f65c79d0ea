//! End to end on generated captures: every scenario of `voxtap-gen` is replayed by the real
//! `voxtap` binary, and the catalog and every recording are checked against the generator's
//! ground truth: the same calls, the right tone on the right channel, durations within 0.5 s,
//! DTMF digits, loss figures, and silence where a party was on hold.

use std::collections::HashMap;

use voxtap_gen::{CallTruth, GenConfig, GroundTruth, Scenario, generate, write_pcap};
use voxtap_tests::{Scratch, Stereo, catalog, energy, read_wav, replay_ok, tone_power};

struct Run {
    _scratch: Scratch,
    out: std::path::PathBuf,
    truth: GroundTruth,
    summary: String,
}

fn run(cfg: GenConfig, name: &str) -> Run {
    let scratch = Scratch::new(name);
    let (frames, truth) = generate(&cfg);
    let pcap = scratch.path().join(format!("{name}.pcap"));
    write_pcap(&pcap, &frames).expect("write pcap");
    let out = scratch.path().join("out");
    let summary = replay_ok(&out, &[&pcap]);
    Run {
        _scratch: scratch,
        out,
        truth,
        summary,
    }
}

#[derive(Debug)]
struct CallRow {
    id: i64,
    caller_user: String,
    callee_user: String,
    answered: bool,
    end_reason: Option<String>,
    final_status: Option<i64>,
    transport: String,
}

fn calls_by_call_id(run: &Run) -> HashMap<String, CallRow> {
    let db = catalog(&run.out);
    let mut stmt = db
        .prepare("SELECT id, sip_call_id, caller_user, callee_user, answer_time, end_reason, final_status, transport FROM calls")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                CallRow {
                    id: r.get(0)?,
                    caller_user: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    callee_user: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    answered: r.get::<_, Option<String>>(4)?.is_some(),
                    end_reason: r.get(5)?,
                    final_status: r.get(6)?,
                    transport: r.get(7)?,
                },
            ))
        })
        .unwrap();
    let mut map = HashMap::new();
    for row in rows {
        let (k, v) = row.unwrap();
        assert!(
            map.insert(k.clone(), v).is_none(),
            "Call-ID {k} appears twice in calls"
        );
    }
    map
}

fn recordings_of(run: &Run, call_id: i64) -> Vec<(String, f64, i64, i64)> {
    let db = catalog(&run.out);
    let mut stmt = db
        .prepare(
            "SELECT path, duration_s, channels, sample_rate FROM recordings WHERE call_id = ?1",
        )
        .unwrap();
    stmt.query_map([call_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The seconds of a channel that are not inside one of its silent spans (with a margin).
fn talking(truth: &CallTruth, channel: &str, secs: f64) -> Vec<(f64, f64)> {
    let mut spans = vec![(0.3, secs - 0.3)];
    for s in truth.silent_spans.iter().filter(|s| s.channel == channel) {
        let mut next = Vec::new();
        for (a, b) in spans {
            let (sa, sb) = (s.from_secs - 0.3, s.to_secs + 0.3);
            if sb <= a || sa >= b {
                next.push((a, b));
            } else {
                if sa > a {
                    next.push((a, sa));
                }
                if sb < b {
                    next.push((sb, b));
                }
            }
        }
        spans = next;
    }
    spans.into_iter().filter(|(a, b)| b - a > 0.2).collect()
}

fn slice(x: &[f64], rate: u32, (a, b): (f64, f64)) -> &[f64] {
    let n = x.len();
    let i = ((a * rate as f64) as usize).min(n);
    let j = ((b * rate as f64) as usize).min(n);
    &x[i..j]
}

/// The expected tone dominates the channel where the party talks, and the other party's tone
/// is absent from it.
fn check_channel(w: &Stereo, truth: &CallTruth, channel: &str) {
    let (x, want, other) = match channel {
        "left" => (&w.left, truth.caller_tone_hz, truth.callee_tone_hz),
        _ => (&w.right, truth.callee_tone_hz, truth.caller_tone_hz),
    };
    let spans = talking(truth, channel, w.secs());
    assert!(
        !spans.is_empty(),
        "{}: no talking span on {channel}",
        truth.sip_call_id
    );
    for span in spans {
        let part = slice(x, w.rate, span);
        let p_want = tone_power(part, w.rate, want);
        let p_other = tone_power(part, w.rate, other);
        let e = energy(part);
        assert!(
            p_want > 0.02,
            "{} {channel} {span:?}: the {want} Hz tone is missing (power {p_want:.4}, energy {e:.4})",
            truth.sip_call_id
        );
        assert!(
            p_other < p_want / 50.0,
            "{} {channel} {span:?}: the other party's {other} Hz tone leaks in ({p_other:.4} vs {p_want:.4})",
            truth.sip_call_id
        );
        // Most of the energy is the tone: no clicks, no doubled or misplaced audio.
        assert!(
            p_want * 2.0 > e * 0.8,
            "{} {channel} {span:?}: tone is {p_want:.4} of energy {e:.4}",
            truth.sip_call_id
        );
    }
    for s in truth.silent_spans.iter().filter(|s| s.channel == channel) {
        let inner = (s.from_secs + 0.3, s.to_secs - 0.3);
        if inner.1 - inner.0 > 0.2 {
            let e = energy(slice(x, w.rate, inner));
            assert!(
                e < 1e-4,
                "{} {channel}: expected silence in {inner:?}, energy {e}",
                truth.sip_call_id
            );
        }
    }
}

fn check(run: &Run) {
    let calls = calls_by_call_id(run);
    assert_eq!(
        calls.len(),
        run.truth.calls.len(),
        "calls in the catalog vs generated:\n{}",
        run.summary
    );
    let db = catalog(&run.out);
    for t in &run.truth.calls {
        let row = calls
            .get(&t.sip_call_id)
            .unwrap_or_else(|| panic!("call {} is missing from the catalog", t.sip_call_id));
        assert_eq!(row.caller_user, t.caller_user, "{}", t.sip_call_id);
        assert_eq!(row.callee_user, t.callee_user, "{}", t.sip_call_id);
        assert_eq!(row.answered, t.answered, "{}: answered", t.sip_call_id);
        assert_eq!(
            row.end_reason.as_deref(),
            Some(t.end_reason.as_str()),
            "{}: end reason",
            t.sip_call_id
        );
        assert_eq!(
            row.final_status,
            Some(t.final_status as i64),
            "{}: final status",
            t.sip_call_id
        );
        assert_eq!(row.transport, t.transport, "{}: transport", t.sip_call_id);

        let recs = recordings_of(run, row.id);
        if !t.recorded {
            assert!(recs.is_empty(), "{}: must not be recorded", t.sip_call_id);
            continue;
        }
        assert_eq!(recs.len(), 1, "{}: one recording per call", t.sip_call_id);
        let (path, duration, channels, rate) = &recs[0];
        assert_eq!((*channels, *rate), (2, 8000), "{}", t.sip_call_id);
        let wav = read_wav(&run.out.join(path));
        assert!(
            (wav.secs() - t.recorded_secs).abs() <= 0.5,
            "{}: recording lasts {:.3} s, the call {:.3} s",
            t.sip_call_id,
            wav.secs(),
            t.recorded_secs
        );
        assert!(
            (duration - wav.secs()).abs() < 0.01,
            "{}: catalog duration {duration} vs file {}",
            t.sip_call_id,
            wav.secs()
        );
        check_channel(&wav, t, "left");
        check_channel(&wav, t, "right");

        // DTMF digits, in order, with the party that pressed them.
        let mut stmt = db.prepare("SELECT value, side, source FROM events WHERE call_id = ?1 AND kind = 'dtmf' ORDER BY time, id").unwrap();
        let got: Vec<(String, String, String)> = stmt
            .query_map([row.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let want: Vec<(String, String)> = t
            .dtmf
            .iter()
            .map(|d| (d.digit.to_string(), d.side.clone()))
            .collect();
        let got_pairs: Vec<(String, String)> =
            got.iter().map(|(v, s, _)| (v.clone(), s.clone())).collect();
        assert_eq!(got_pairs, want, "{}: DTMF", t.sip_call_id);
        assert!(got.iter().all(|(_, _, src)| src == "rfc4733"));

        // Loss per direction, as tshark counts it.
        for (side, lost) in [("caller", t.lost_caller), ("callee", t.lost_callee)] {
            let total: i64 = db
                .query_row(
                    "SELECT COALESCE(SUM(lost), 0) FROM streams WHERE call_id = ?1 AND side = ?2",
                    (row.id, side),
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(total, lost as i64, "{}: {side} loss", t.sip_call_id);
        }
    }
}

#[test]
fn pcmu_call() {
    check(&run(GenConfig::new(Scenario::Pcmu), "pcmu"));
}

#[test]
fn pcma_call() {
    check(&run(GenConfig::new(Scenario::Pcma), "pcma"));
}

#[test]
fn rfc4733_dtmf() {
    let r = run(GenConfig::new(Scenario::Dtmf), "dtmf");
    assert!(
        r.truth.calls.iter().any(|c| !c.dtmf.is_empty()),
        "the scenario must press digits"
    );
    check(&r);
}

#[test]
fn hold_by_reinvite_with_media_move() {
    let r = run(GenConfig::new(Scenario::HoldMove), "holdmove");
    assert!(
        r.truth.calls.iter().any(|c| !c.silent_spans.is_empty()),
        "the scenario must hold"
    );
    check(&r);
}

#[test]
fn nat_with_private_sdp_address() {
    check(&run(GenConfig::new(Scenario::Nat), "nat"));
}

#[test]
fn loss_and_reordering() {
    let r = run(GenConfig::new(Scenario::LossReorder), "lossreorder");
    assert!(
        r.truth
            .calls
            .iter()
            .any(|c| c.lost_caller + c.lost_callee > 0),
        "the scenario must lose packets"
    );
    check(&r);
}

#[test]
fn vlan_tagged() {
    check(&run(GenConfig::new(Scenario::Vlan), "vlan"));
}

#[test]
fn qinq_tagged() {
    check(&run(GenConfig::new(Scenario::QinQ), "qinq"));
}

#[test]
fn fragmented_invite() {
    check(&run(GenConfig::new(Scenario::FragmentedInvite), "frag"));
}

#[test]
fn sip_over_tcp_split_and_coalesced() {
    let r = run(GenConfig::new(Scenario::Tcp), "tcp");
    assert!(r.truth.calls.iter().all(|c| c.transport == "tcp"));
    check(&r);
}

#[test]
fn ipv6() {
    check(&run(GenConfig::new(Scenario::Ipv6), "ipv6"));
}

#[test]
fn cancel_before_answer_is_not_recorded() {
    let r = run(GenConfig::new(Scenario::CancelBeforeAnswer), "cancel");
    assert!(r.truth.calls.iter().all(|c| !c.answered));
    check(&r);
}

#[test]
fn early_media() {
    check(&run(GenConfig::new(Scenario::EarlyMedia), "early"));
}

#[test]
fn two_hundred_concurrent_calls() {
    let r = run(GenConfig::new(Scenario::Concurrent), "concurrent");
    assert!(r.truth.calls.len() >= 200);
    check(&r);
}

#[test]
fn everything_in_one_capture() {
    check(&run(GenConfig::new(Scenario::Mix), "mix"));
}
