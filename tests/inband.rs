//! In-band DTMF end to end: the caller dials `*48` and `*49` as tones in its audio; `voxtap
//! replay` with a tenant that listens for tones pauses and resumes the recording, and one that
//! does not leaves it alone. RFC 4733 calls and ordinary calls (pure tones) give no in-band
//! digits.

use voxtap_gen::{GenConfig, Scenario};
use voxtap_tests::{Replayed, catalog, energy, read_wav, replay_generated};

/// The generated callers (10000, ... on 10.1.0.0/16) are the tenant's agents; the callees
/// are external. Outbound calls are recorded and agents may control them, by tones too.
const RULES: &str = r#"
[rules.networks]
onnet = ["10.1.0.0/16"]

[[rules.tenants]]
name = "gen"

[rules.tenants.settings]
outbound = { offnet = true }

[rules.tenants.on_demand]
enabled = true
inband = true

[[rules.tenants.users]]
name = "agent0"
extensions = ["10000"]
"#;

type Run = Replayed;

fn run(scenario: Scenario, name: &str, rules: &str) -> Run {
    replay_generated(&GenConfig::new(scenario), name, Some(rules))
}

/// (kind, offset_s, side, value, source) of every event row, in order.
fn events(r: &Run) -> Vec<(String, f64, String, String, Option<String>)> {
    let db = catalog(&r.out);
    let mut s = db
        .prepare("SELECT kind, offset_s, side, value, source FROM events ORDER BY time, id")
        .unwrap();
    s.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN),
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Paths of the call's recordings, in order.
fn recordings(r: &Run) -> Vec<String> {
    let db = catalog(&r.out);
    let mut s = db
        .prepare("SELECT path FROM recordings ORDER BY id")
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn tones_dialled_by_the_caller_pause_and_resume_and_the_paused_span_is_silent() {
    let r = run(Scenario::InbandDtmf, "inband-on", RULES);
    let c = &r.truth.calls[0];
    let rows = events(&r);
    let digits: Vec<_> = rows.iter().filter(|e| e.0 == "dtmf").collect();
    assert_eq!(digits.len(), c.dtmf.len(), "{rows:?}");
    for (got, want) in digits.iter().zip(&c.dtmf) {
        assert_eq!(got.3, want.digit.to_string(), "{got:?}");
        assert_eq!(got.2, "caller");
        assert_eq!(got.4.as_deref(), Some("inband"));
        // Reported at release: after the 100 ms tone and three silent blocks.
        let late = got.1 - want.at_secs;
        assert!((0.1..0.2).contains(&late), "{got:?} vs {want:?}");
    }

    let controls: Vec<_> = rows
        .iter()
        .filter(|e| e.0 == "pause" || e.0 == "resume")
        .collect();
    assert_eq!(controls.len(), c.controls.len(), "{rows:?}");
    for (got, want) in controls.iter().zip(&c.controls) {
        assert_eq!(got.0, want.action);
        assert_eq!(got.2, "caller");
        assert!(got.3.contains("(inband)"), "{got:?}");
        let late = got.1 - want.at_secs;
        assert!((0.0..0.1).contains(&late), "{got:?} vs {want:?}");
    }

    let recs = recordings(&r);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let wav = read_wav(&r.out.join(&recs[0]));
    let span = |ch: &[f64], a: f64, b: f64| {
        let at = |s: f64| ((s * wav.rate as f64) as usize).min(ch.len());
        energy(&ch[at(a)..at(b)])
    };
    let (p, q) = (controls[0].1, controls[1].1);
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

#[test]
fn a_tenant_that_does_not_listen_for_tones_is_not_paused() {
    let rules = RULES.replace("inband = true", "inband = false");
    let r = run(Scenario::InbandDtmf, "inband-off", &rules);
    let rows = events(&r);
    // The detector does not run at all: no digit rows, no pause.
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(recordings(&r).len(), 1);
    let wav = read_wav(&r.out.join(&recordings(&r)[0]));
    let c = &r.truth.calls[0];
    let mid = (c.controls[0].at_secs + c.controls[1].at_secs) / 2.0;
    let at = |s: f64| (s * wav.rate as f64) as usize;
    assert!(energy(&wav.right[at(mid)..at(mid + 0.2)]) > 0.0);
}

#[test]
fn rfc4733_digits_are_not_heard_again_in_band() {
    let r = run(Scenario::Dtmf, "inband-rfc4733", RULES);
    let c = &r.truth.calls[0];
    let rows = events(&r);
    let got: Vec<_> = rows
        .iter()
        .filter(|e| e.0 == "dtmf")
        .map(|e| (e.3.clone(), e.4.clone()))
        .collect();
    let want: Vec<_> = c
        .dtmf
        .iter()
        .map(|d| (d.digit.to_string(), Some("rfc4733".to_string())))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn ordinary_calls_give_no_in_band_digits() {
    let r = run(Scenario::Mix, "inband-mix", RULES);
    let rows = events(&r);
    let inband: Vec<_> = rows
        .iter()
        .filter(|e| e.4.as_deref() == Some("inband"))
        .collect();
    assert!(inband.is_empty(), "{inband:?}");
    assert!(
        rows.iter().any(|e| e.4.as_deref() == Some("rfc4733")),
        "the Mix has RFC 4733 digits: {rows:?}"
    );
}
