//! Recording rules end to end: generated captures with on-demand requests and modes are
//! replayed by the real `voxtap` with a `[rules]` config, and the catalog (decisions,
//! pause/resume rows) and the audio (the paused spans are silent) are checked against the
//! generator's ground truth.

use std::path::Path;
use std::process::Command;

use voxtap_gen::{GenConfig, Scenario};
use voxtap_tests::{Replayed, catalog, energy, read_wav, replay_generated, voxtap};

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

type Run = Replayed;

fn run(scenario: Scenario, name: &str, rules: &str) -> Run {
    replay_generated(&GenConfig::new(scenario), name, Some(rules))
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
    let rows: Vec<(String, f64, String, String)> = voxtap_tests::rows(
        &db,
        "SELECT e.kind, e.offset_s, e.side, e.value FROM events e
             WHERE e.kind IN ('pause', 'resume') ORDER BY e.id",
    );
    assert_eq!(rows.len(), c.controls.len(), "{rows:?}");
    for (row, want) in rows.iter().zip(&c.controls) {
        assert_eq!(row.0, want.action);
        assert_eq!(row.2, "callee");
        // The offset is where the audio of that moment sits in the file: it follows the media
        // clock, anchored on the first packets' arrival, so their jitter may move it a little.
        assert!((row.1 - want.at_secs).abs() < 0.03, "{row:?} {want:?}");
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
    // Who asked, on each recording's timeline: agent0 (no device known) on the callee side.
    let db = catalog(&r.out);
    type Row = (String, String, Option<String>, Option<String>, String);
    let rows: Vec<Row> = voxtap_tests::rows(
        &db,
        "SELECT e.kind, e.side, e.user, e.device, r.path FROM events e
             JOIN recordings r ON r.id = e.recording_id
             WHERE e.kind LIKE 'record-%' ORDER BY e.id",
    );
    let agent = |kind: &str, path: &str| {
        (
            kind.to_string(),
            "callee".to_string(),
            Some("agent0".to_string()),
            None,
            path.to_string(),
        )
    };
    assert_eq!(
        rows,
        [
            agent("record-stop", &recs[0].0),
            agent("record-start", &recs[1].0)
        ]
    );
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

/// The policy's decision for a call: (record, reason, trace).
fn decision(out: &Path, sip_call_id: &str) -> (bool, String, String) {
    catalog(out)
        .query_row(
            "SELECT d.record, d.reason, d.trace FROM decisions d
             JOIN calls c ON c.id = d.call_id WHERE c.sip_call_id = ?1",
            [sip_call_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap_or_else(|e| panic!("no decision for {sip_call_id}: {e}"))
}

/// `voxtap explain` of one call, panicking unless it exits 0.
fn explain(out: &Path, sip_call_id: &str) -> String {
    let o = Command::new(voxtap())
        .arg("explain")
        .arg("--out")
        .arg(out)
        .arg(sip_call_id)
        .output()
        .expect("run voxtap explain");
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn rfc4733_codes_pause_resume_and_stop_name_who_asked_and_the_paused_span_is_silent() {
    let rules = format!(
        "{RULES}\n[[rules.tenants.devices]]\nid = \"agent0-desk\"\naddress = \"10.2.1.1\"\nuser = \"agent0\"\n"
    );
    let r = run(Scenario::DtmfPause, "rules-dtmf-pause", &rules);
    let c = &r.truth.calls[0];
    assert_eq!(c.controls.len(), 3);
    let recs = recordings(&r.out, &c.sip_call_id);
    assert_eq!(recs.len(), 1, "{recs:?}");

    let db = catalog(&r.out);
    type Row = (String, f64, String, String, Option<String>, Option<String>);
    let rows: Vec<Row> = voxtap_tests::rows(
        &db,
        "SELECT kind, offset_s, side, value, user, device FROM events
             WHERE kind IN ('pause', 'resume') ORDER BY id",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, want) in rows.iter().zip(&c.controls) {
        assert_eq!(row.0, want.action);
        assert_eq!(row.2, "callee");
        // The code counts from its last digit, reported within one event's length.
        assert!(
            row.1 >= want.at_secs - 0.01 && row.1 < want.at_secs + 0.25,
            "{row:?} {want:?}"
        );
        assert!(row.3.contains("rfc4733"), "{row:?}");
        assert_eq!(row.4.as_deref(), Some("agent0"), "who asked: {row:?}");
        assert_eq!(row.5.as_deref(), Some("agent0-desk"), "who asked: {row:?}");
    }
    // The toggle `*1` stops the running recording, and says who asked.
    let stop: Row = db
        .query_row(
            "SELECT kind, offset_s, side, value, user, device FROM events WHERE kind = 'record-stop'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert!(stop.3.contains("code *1 (rfc4733)"), "{stop:?}");
    assert_eq!(
        (stop.2.as_str(), stop.4.as_deref(), stop.5.as_deref()),
        ("callee", Some("agent0"), Some("agent0-desk"))
    );
    assert!(
        stop.1 >= c.controls[2].at_secs - 0.01 && stop.1 < c.controls[2].at_secs + 0.25,
        "{stop:?}"
    );
    assert_eq!(recs[0].3.as_deref(), Some("policy"));
    let secs = read_wav(&r.out.join(&recs[0].0)).secs();
    assert!((secs - stop.1).abs() < 0.01, "{secs} vs {stop:?}");
    let text = explain(&r.out, &c.sip_call_id);
    assert!(
        text.contains("user agent0") && text.contains("device agent0-desk"),
        "explain does not say who asked:\n{text}"
    );

    // Silent while paused, audio either side.
    let wav = read_wav(&r.out.join(&recs[0].0));
    let span = |ch: &[f64], a: f64, b: f64| {
        let at = |s: f64| ((s * wav.rate as f64) as usize).min(ch.len());
        energy(&ch[at(a)..at(b)])
    };
    let (p, q) = (rows[0].1, rows[1].1);
    assert!(q - p > 0.8, "{p}..{q}");
    for ch in [&wav.left, &wav.right] {
        assert_eq!(
            span(ch, p + 0.05, q - 0.05),
            0.0,
            "audio while paused {p}..{q}"
        );
        assert!(
            span(ch, q + 0.1, q + 0.5) > 0.0,
            "no audio after resume at {q}"
        );
    }
    assert!(
        span(&wav.left, p - 0.5, p - 0.05) > 0.0,
        "no audio before pause"
    );
}

/// The `Matrix` round: inbound, outbound, internal, external-to-external.
const CELLS: [&str; 4] = ["inbound", "outbound", "internal", "external-to-external"];

/// The tenant `gen` (domain gen.test) on the phones' network 10.0.0.0/8, with a user per
/// onnet party of one `Matrix` round (`u` + its extension); the carriers are offnet. `account`
/// goes into the tenant's settings table, `user` into every user's settings.
fn matrix_rules(account: &str, user: &str, allow_e2e: bool, devices: &str) -> String {
    let mut s = format!(
        "[rules.networks]\nonnet = [\"10.0.0.0/8\"]\n\n[[rules.tenants]]\nname = \"gen\"\n\
         domains = [\"gen.test\"]\nallow_external_to_external = {allow_e2e}\n\n\
         [rules.tenants.settings]\n{account}\n"
    );
    // Onnet parties of the round: the callee of call 0, the caller of 1, both of 2.
    for ext in ["20000", "10001", "10002", "20002"] {
        s += &format!(
            "\n[[rules.tenants.users]]\nname = \"u{ext}\"\nextensions = [\"{ext}\"]\nsettings = {{ {user} }}\n"
        );
    }
    s + devices
}

/// Replays one `Matrix` round and checks each call's decision: recorded as `want` says, and
/// the deciding reason names `scope` (None: the call is not recorded, for `why`).
fn check_matrix(name: &str, rules: &str, want: [(Option<&str>, &str); 4]) -> Run {
    let r = run(Scenario::Matrix, name, rules);
    assert_eq!(r.truth.calls.len(), 4);
    for ((c, cell), (scope, why)) in r.truth.calls.iter().zip(CELLS).zip(want) {
        let (record, reason, trace) = decision(&r.out, &c.sip_call_id);
        let recs = recordings(&r.out, &c.sip_call_id);
        let ctx = format!("{name}, {cell} call {}: {reason}\n{trace}", c.sip_call_id);
        assert!(
            trace.contains(&format!("direction: {cell}")),
            "wrong direction: {ctx}"
        );
        assert_eq!(record, scope.is_some(), "{ctx}");
        assert_eq!(recs.len(), usize::from(scope.is_some()), "{ctx} {recs:?}");
        match scope {
            Some(scope) => {
                assert!(reason.starts_with(scope), "decided by {scope}? {ctx}");
                assert!(reason.contains(why), "{ctx}");
                assert_eq!(recs[0].1, "complete", "{ctx}");
            }
            None => assert!(reason.contains(why), "{ctx}"),
        }
    }
    r
}

const NO_RULE: &str = "no rule of tenant gen records this call";

#[test]
fn account_settings_decide_every_cell_of_the_direction_matrix() {
    let yes = |cell: &'static str| (Some("account gen records"), cell);
    let no = (None, NO_RULE);
    check_matrix(
        "matrix-account-inbound-offnet",
        &matrix_rules("inbound = { offnet = true }", "", false, ""),
        [
            yes("inbound.offnet"),
            no,
            no,
            (
                None,
                "external-to-external call refused: tenant gen does not allow it",
            ),
        ],
    );
    check_matrix(
        "matrix-account-inbound-onnet",
        &matrix_rules("inbound = { onnet = true }", "", true, ""),
        [no, no, yes("inbound.onnet"), no],
    );
    check_matrix(
        "matrix-account-outbound-offnet",
        &matrix_rules("outbound = { offnet = true }", "", true, ""),
        [no, yes("outbound.offnet"), no, yes("outbound.offnet")],
    );
    check_matrix(
        "matrix-account-outbound-onnet",
        &matrix_rules("outbound = { onnet = true }", "", true, ""),
        [no, no, yes("outbound.onnet"), no],
    );
}

#[test]
fn endpoint_settings_decide_every_cell_of_the_direction_matrix() {
    let no = (None, NO_RULE);
    // External-to-external has no endpoint of ours: only the account could record it.
    check_matrix(
        "matrix-user-inbound-offnet",
        &matrix_rules("", "inbound = { offnet = true }", true, ""),
        [(Some("user u20000"), "records inbound.offnet"), no, no, no],
    );
    check_matrix(
        "matrix-user-inbound-onnet",
        &matrix_rules("", "inbound = { onnet = true }", true, ""),
        [no, no, (Some("user u20002"), "records inbound.onnet"), no],
    );
    check_matrix(
        "matrix-user-outbound-offnet",
        &matrix_rules("", "outbound = { offnet = true }", true, ""),
        [no, (Some("user u10001"), "records outbound.offnet"), no, no],
    );
    check_matrix(
        "matrix-user-outbound-onnet",
        &matrix_rules("", "outbound = { onnet = true }", true, ""),
        [no, no, (Some("user u10002"), "records outbound.onnet"), no],
    );
    // The account on its own: it records a user who disabled recording.
    check_matrix(
        "matrix-account-on-its-own",
        &matrix_rules(
            "inbound = { offnet = true }",
            "inbound = { offnet = false }",
            false,
            "",
        ),
        [
            (
                Some("account gen records inbound.offnet"),
                "(on its own: user u20000 disabled it)",
            ),
            no,
            no,
            (
                None,
                "external-to-external call refused: tenant gen does not allow it",
            ),
        ],
    );
}

#[test]
fn a_device_setting_wins_over_its_user_and_an_unset_one_inherits() {
    // Every user records every cell. Call 0's callee phone (10.2.1.1) says no to inbound
    // offnet; call 1's caller phone (10.1.1.2) says nothing, so its user's yes holds.
    let devices = r#"
[[rules.tenants.devices]]
id = "desk-20000"
address = "10.2.1.1"
user = "u20000"
settings = { inbound = { offnet = false } }

[[rules.tenants.devices]]
id = "desk-10001"
address = "10.1.1.2"
user = "u10001"
"#;
    let all =
        "inbound = { offnet = true, onnet = true }, outbound = { offnet = true, onnet = true }";
    let r = check_matrix(
        "matrix-device-over-user",
        &matrix_rules("", all, true, devices),
        [
            (None, NO_RULE),
            (
                Some("device desk-10001 of user u10001"),
                "records outbound.offnet",
            ),
            (Some("user u10002"), "records outbound.onnet"),
            (None, NO_RULE),
        ],
    );
    let (_, _, trace) = decision(&r.out, &r.truth.calls[0].sip_call_id);
    assert!(
        trace.contains("device desk-20000: inbound.offnet = false"),
        "{trace}"
    );
    let (_, _, trace) = decision(&r.out, &r.truth.calls[1].sip_call_id);
    for line in [
        "device desk-10001: outbound.offnet unset, inherits the user's",
        "user u10001: outbound.offnet = true",
    ] {
        assert!(trace.contains(line), "{line:?} not in\n{trace}");
    }
}

#[test]
fn a_transfer_to_an_external_number_stops_the_recording_and_says_why() {
    let rules = matrix_rules("inbound = { offnet = true }", "", false, "");
    let r = run(
        Scenario::TransferExternal,
        "rules-transfer-external",
        &rules,
    );
    let c = &r.truth.calls[0];
    let (record, reason, _) = decision(&r.out, &c.sip_call_id);
    assert!(record, "{reason}");
    let recs = recordings(&r.out, &c.sip_call_id);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(
        recs[0].3.as_deref(),
        Some("external-to-external"),
        "{recs:?}"
    );
    let at = c.controls[0].at_secs;
    let secs = read_wav(&r.out.join(&recs[0].0)).secs();
    assert!(
        (secs - at).abs() < 0.05,
        "recording {secs} s, transfer at {at} s"
    );
    assert!(
        c.recorded_secs > at + 1.0,
        "the call goes on after the transfer"
    );
    let text = explain(&r.out, &c.sip_call_id);
    assert!(text.contains("external-to-external"), "{text}");
    let (kind, value, offset): (String, String, f64) = catalog(&r.out)
        .query_row(
            "SELECT kind, value, offset_s FROM events WHERE kind LIKE 'record-%'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(kind, "record-stop");
    assert!(value.contains("two external parties"), "{value}");
    assert!((offset - secs).abs() < 0.01, "{offset} vs {secs}");

    // A tenant that allows external-to-external calls keeps recording.
    let rules = matrix_rules("inbound = { offnet = true }", "", true, "");
    let r = run(Scenario::TransferExternal, "rules-transfer-allowed", &rules);
    let recs = recordings(&r.out, &r.truth.calls[0].sip_call_id);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].3.as_deref(), Some("call-ended"), "{recs:?}");
}

#[test]
fn ddi_options_decide_before_the_settings() {
    // The inbound call dials 20000, the outbound one presents 10001; internal calls have no DDI.
    // A DDI is no user's extension: those two parties are ours by their DDI.
    let mut rules = matrix_rules("inbound = { offnet = false }", "", true, "");
    for ext in ["20000", "10001"] {
        let user = format!(
            "\n[[rules.tenants.users]]\nname = \"u{ext}\"\nextensions = [\"{ext}\"]\nsettings = {{  }}\n"
        );
        assert!(rules.contains(&user), "{rules}");
        rules = rules.replace(&user, "");
    }
    let rules = rules.replace(
        "domains = [\"gen.test\"]\n",
        "domains = [\"gen.test\"]\nddis = [\n  { number = \"20000\", option = \"incoming\" },\n  \
         { number = \"10001\", option = \"outgoing\" },\n]\n",
    );
    let r = check_matrix(
        "matrix-ddi",
        &rules,
        [
            (Some("DDI 20000"), "records incoming calls"),
            (Some("DDI 10001"), "records outgoing calls"),
            (None, NO_RULE),
            (None, NO_RULE),
        ],
    );
    let (_, _, trace) = decision(&r.out, &r.truth.calls[0].sip_call_id);
    assert!(
        trace.contains("DDI 20000 (option incoming): incoming call, records"),
        "{trace}"
    );
}

#[test]
fn a_role_rule_records_its_roles_in_its_direction_and_origin() {
    // u20000 (callee of the inbound call) and u10001 (caller of the outbound one) are sales.
    let mut rules = matrix_rules("", "", true, "");
    for ext in ["20000", "10001"] {
        let name = format!("name = \"u{ext}\"\n");
        rules = rules.replace(&name, &format!("{name}roles = [\"sales\"]\n"));
    }
    rules += "\n[[rules.role_rules]]\ndescription = \"sales inbound from customers\"\n\
              auto_roles = [\"sales\"]\ndirection = \"in\"\norigin = \"external\"\n";
    let r = check_matrix(
        "matrix-role-rule",
        &rules,
        [
            (
                Some("role rule \"sales inbound from customers\""),
                "records role sales",
            ),
            (None, NO_RULE),
            (None, NO_RULE),
            (None, NO_RULE),
        ],
    );
    let (_, _, trace) = decision(&r.out, &r.truth.calls[0].sip_call_id);
    assert!(trace.contains("user u20000 has role sales"), "{trace}");
}
