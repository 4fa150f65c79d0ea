//! Recording rules end to end: generated captures with on-demand requests and modes are
//! replayed by the real `voxtap` with a `[rules]` config, and the catalog (decisions,
//! pause/resume rows) and the audio (the paused spans are silent) are checked against the
//! generator's ground truth.

use std::path::{Path, PathBuf};
use std::process::Command;

use voxtap_gen::{GenConfig, GroundTruth, Scenario, generate, write_pcap};
use voxtap_tests::{Scratch, catalog, energy, read_wav, voxtap};

/// The generated callees (20000, 20001) are the tenant's agents on 10.2.0.0/16; the callers
/// (10.1.x.x) are external. Inbound calls are recorded and agents may control them.
const RULES: &str = r#"
[rules.networks]
onnet = ["10.2.0.0/16"]

[[rules.tenants]]
name = "gen"

[rules.tenants.settings]
inbound = { offnet = true }

[rules.tenants.on_demand]
enabled = true

[[rules.tenants.users]]
name = "agent0"
extensions = ["20000"]

[[rules.tenants.users]]
name = "agent1"
extensions = ["20001"]
"#;

struct Run {
    _scratch: Scratch,
    out: PathBuf,
    truth: GroundTruth,
}

fn run(scenario: Scenario, name: &str, rules: &str) -> Run {
    let scratch = Scratch::new(name);
    let (frames, truth) = generate(&GenConfig::new(scenario));
    let pcap = scratch.path().join(format!("{name}.pcap"));
    write_pcap(&pcap, &frames).expect("write pcap");
    let config = scratch.path().join("voxtap.toml");
    std::fs::write(&config, rules).expect("write config");
    let out = scratch.path().join("out");
    let o = Command::new(voxtap())
        .arg("replay")
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .arg(&pcap)
        .output()
        .expect("run voxtap replay");
    assert!(
        o.status.success(),
        "voxtap replay failed: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Run {
        _scratch: scratch,
        out,
        truth,
    }
}

/// (path, state, reason, stop_reason) of each recording of the call, in order.
fn recordings(out: &Path, sip_call_id: &str) -> Vec<(String, String, String, Option<String>)> {
    let db = catalog(out);
    let mut s = db
        .prepare(
            "SELECT r.path, r.state, r.reason, r.stop_reason FROM recordings r
             JOIN calls c ON c.id = r.call_id WHERE c.sip_call_id = ?1 ORDER BY r.id",
        )
        .unwrap();
    s.query_map([sip_call_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn media_control_messages_pause_and_resume_and_the_paused_spans_are_silent() {
    let r = run(Scenario::MediaControl, "rules-media-control", RULES);
    let c = &r.truth.calls[0];
    let recs = recordings(&r.out, &c.sip_call_id);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].1, "complete");

    let db = catalog(&r.out);
    let mut s = db
        .prepare(
            "SELECT e.kind, e.offset_s, e.side, e.value FROM events e
             WHERE e.kind IN ('pause', 'resume') ORDER BY e.id",
        )
        .unwrap();
    let rows: Vec<(String, f64, String, String)> = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), c.controls.len(), "{rows:?}");
    for (row, want) in rows.iter().zip(&c.controls) {
        assert_eq!(row.0, want.action);
        assert_eq!(row.2, "callee");
        assert!((row.1 - want.at_secs).abs() < 0.01, "{row:?} {want:?}");
        assert!(row.3.contains("media control"), "{row:?}");
    }

    // The audio: silent while paused, the tones either side.
    let wav = read_wav(&r.out.join(&recs[0].0));
    let span = |ch: &[f64], a: f64, b: f64| {
        let at = |s: f64| ((s * wav.rate as f64) as usize).min(ch.len());
        energy(&ch[at(a)..at(b)])
    };
    for pair in c.controls.chunks(2) {
        let (p, q) = (pair[0].at_secs, pair[1].at_secs);
        for ch in [&wav.left, &wav.right] {
            assert_eq!(span(ch, p + 0.35, q), 0.0, "audio while paused {p}..{q}");
            assert!(
                span(ch, q + 0.1, q + 0.3) > 0.0,
                "audio after resume at {q}"
            );
            assert!(
                span(ch, p - 0.4, p - 0.1) > 0.0,
                "audio before pause at {p}"
            );
        }
    }
}

#[test]
fn the_sip_info_record_key_stops_then_starts_a_new_recording() {
    let r = run(Scenario::InfoRecord, "rules-info-record", RULES);
    let c = &r.truth.calls[0];
    let recs = recordings(&r.out, &c.sip_call_id);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0].3.as_deref(), Some("policy"));
    assert!(recs[1].2.contains("SIP INFO record on"), "{recs:?}");
    assert_eq!(recs[1].3.as_deref(), Some("call-ended"));
    let (off, on) = (c.controls[0].at_secs, c.controls[1].at_secs);
    let first = read_wav(&r.out.join(&recs[0].0)).secs();
    let second = read_wav(&r.out.join(&recs[1].0)).secs();
    assert!((first - off).abs() < 0.05, "{first} vs {off}");
    assert!((second - (c.recorded_secs - on)).abs() < 0.1, "{second}");
}

#[test]
fn the_mode_header_denies_and_forces() {
    // The account records nothing: only `force` records.
    let rules = RULES.replace(
        "inbound = { offnet = true }",
        "inbound = { offnet = false }",
    );
    let r = run(Scenario::ModeHeader, "rules-mode-header", &rules);
    for c in &r.truth.calls {
        let recs = recordings(&r.out, &c.sip_call_id);
        match c.record_mode.as_deref() {
            Some("deny") => assert!(recs.is_empty(), "{recs:?}"),
            Some("force") => {
                assert_eq!(recs.len(), 1, "{recs:?}");
                assert!(recs[0].2.contains("force"), "{recs:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    // With a renamed header the INVITEs' X-Record-Mode is not read: nothing is recorded.
    let renamed = format!("[rules]\nmode_header = \"X-Other\"\n{rules}");
    let r = run(Scenario::ModeHeader, "rules-mode-header-renamed", &renamed);
    for c in &r.truth.calls {
        assert!(recordings(&r.out, &c.sip_call_id).is_empty());
    }
}

#[test]
fn record_min_sec_deletes_short_recordings_and_time_limit_cuts_long_ones() {
    let rules = RULES.replace(
        "inbound = { offnet = true }",
        "inbound = { offnet = true }\nrecord_min_sec = 10",
    );
    let r = run(Scenario::Pcmu, "rules-min-sec", &rules);
    let c = &r.truth.calls[0];
    let recs = recordings(&r.out, &c.sip_call_id);
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0].1.as_str(), recs[0].3.as_deref()),
        ("deleted", Some("shorter-than-min"))
    );
    assert!(!r.out.join(&recs[0].0).exists());

    let rules = RULES.replace(
        "inbound = { offnet = true }",
        "inbound = { offnet = true }\ntime_limit = 2",
    );
    let r = run(Scenario::Pcmu, "rules-time-limit", &rules);
    let c = &r.truth.calls[0];
    assert!(c.recorded_secs > 3.0);
    let recs = recordings(&r.out, &c.sip_call_id);
    assert_eq!(recs[0].3.as_deref(), Some("time-limit"));
    let secs = read_wav(&r.out.join(&recs[0].0)).secs();
    assert!((secs - 2.0).abs() < 1e-3, "{secs}");
}
