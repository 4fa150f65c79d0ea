//! Who is who on a call, end to end: generated captures with the traffic as a PBX sends it
//! (a B2BUA between the phones and the carrier, transfers, forwards, pickups), seen from each
//! place a mirror port goes (phones ↔ PBX, PBX ↔ carrier, both), replayed by the real
//! `voxtap` with a `[rules]` config. Each leg's direction, each conversation's legs and the
//! evidence tying them, the decisions and the recordings (one per conversation, covering every
//! span the people talked, the right person on the right channel) are checked against the
//! generator's ground truth.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use voxtap_gen::{CallTruth, GenConfig, GroundTruth, Mirror, Scenario};
use voxtap_tests::{Replayed, catalog, read_wav, replay_generated, tone_power};

/// One tenant, its DDIs, every direction recorded; the PBX is not configured (voxtap learns
/// it), no extension is listed.
fn rules(extra_tenant: &str, ddi_option: &str) -> String {
    format!(
        r#"
[rules.networks]
onnet = ["10.0.0.0/8"]

[[rules.tenants]]
name = "acme"
ddis = [
  {{ number = "+34915550000", option = "{ddi_option}" }},
  {{ number = "+34915550001", option = "{ddi_option}" }},
  {{ number = "+34915550002", option = "{ddi_option}" }},
  {{ number = "+34915550003", option = "{ddi_option}" }},
]
{extra_tenant}
"#
    )
}

const RECORD_ALL: &str = r#"
[rules.tenants.settings]
inbound = { offnet = true, onnet = true }
outbound = { offnet = true, onnet = true }
"#;

fn mirror_name(m: Mirror) -> &'static str {
    match m {
        Mirror::Phones => "phones",
        Mirror::Carrier => "carrier",
        Mirror::Both => "both",
    }
}

fn run(scenario: Scenario, mirror: Mirror, config: &str, tag: &str) -> Replayed {
    let mut cfg = GenConfig::new(scenario);
    cfg.mirror = mirror;
    replay_generated(
        &cfg,
        &format!("conv-{tag}-{}", mirror_name(mirror)),
        Some(config),
    )
}

/// `2026-01-01T00:00:01.918Z` as Unix nanoseconds.
fn iso_ns(s: &str) -> u64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (hh, mm) = (n(11, 13), n(14, 16));
    let secs: f64 = s[17..s.len() - 1].parse().unwrap();
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hh * 3600 + mm * 60) as f64 * 1e9 + secs * 1e9).round() as u64
}

struct Leg {
    id: i64,
    direction: Option<String>,
    conversation: Option<i64>,
}

struct Rec {
    sip_call_id: String,
    path: String,
    start: u64,
    end: u64,
    repeats: Option<i64>,
}

struct Catalog {
    legs: BTreeMap<String, Leg>,
    /// (call's Call-ID, linked call's Call-ID, evidence).
    links: Vec<(String, String, String)>,
    recs: Vec<Rec>,
    /// Call-ID -> (record, covered_by, reason).
    decisions: BTreeMap<String, (bool, Option<i64>, String)>,
    people: BTreeMap<i64, [String; 2]>,
}

fn read(out: &Path) -> Catalog {
    let db = catalog(out);
    let mut legs = BTreeMap::new();
    let mut s = db
        .prepare("SELECT sip_call_id, id, direction, conversation_id FROM calls")
        .unwrap();
    for row in s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
    {
        let (cid, id, direction, conversation): (String, i64, _, _) = row.unwrap();
        legs.insert(
            cid,
            Leg {
                id,
                direction,
                conversation,
            },
        );
    }
    let name: BTreeMap<i64, String> = legs.iter().map(|(k, l)| (l.id, k.clone())).collect();
    let links = db
        .prepare("SELECT call_id, linked_call_id, evidence FROM conversation_links ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?, r.get(2)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .map(|(a, b, e)| {
            (
                name[&a].clone(),
                b.map(|b| name[&b].clone()).unwrap_or_default(),
                e,
            )
        })
        .collect();
    let recs = db
        .prepare(
            "SELECT c.sip_call_id, r.path, r.start_time, r.end_time, r.repeats_recording_id
             FROM recordings r JOIN calls c ON c.id = r.call_id
             WHERE r.state IN ('complete', 'partial') ORDER BY r.id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(Rec {
                sip_call_id: r.get(0)?,
                path: r.get(1)?,
                start: iso_ns(&r.get::<_, String>(2)?),
                end: iso_ns(&r.get::<_, String>(3)?),
                repeats: r.get(4)?,
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let decisions = db
        .prepare("SELECT call_id, record, covered_by_call_id, reason FROM decisions")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .map(|(c, rec, cov, why)| (name[&c].clone(), (rec, cov, why)))
        .collect();
    let people = db
        .prepare("SELECT id, caller_user, callee_user FROM conversations WHERE merged_into IS NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, [r.get(1)?, r.get(2)?])))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    Catalog {
        legs,
        links,
        recs,
        decisions,
        people,
    }
}

/// The evidence voxtap names, in the generator's words.
fn truth_word(evidence: &str) -> &str {
    match evidence {
        "pickup" => "feature-code",
        e => e,
    }
}

/// Whether a channel of a leg is silent at `t` (ns): its person is on hold, or consulting.
fn silent_at(leg: &CallTruth, channel: &str, t: u64) -> bool {
    let after = (t.saturating_sub(leg.answer_ns.unwrap_or(leg.start_ns))) as f64 / 1e9;
    leg.silent_spans
        .iter()
        .any(|s| s.channel == channel && s.from_secs <= after && after < s.to_secs)
}

/// The tone a channel of a leg carries at `t` (ns).
fn tone_at(leg: &CallTruth, channel: &str, t: u64) -> f64 {
    let after = (t.saturating_sub(leg.answer_ns.unwrap_or(leg.start_ns))) as f64 / 1e9;
    if let Some(s) = leg
        .tone_spans
        .iter()
        .find(|s| s.channel == channel && s.from_secs <= after && after < s.to_secs)
    {
        return s.hz;
    }
    if channel == "left" {
        leg.caller_tone_hz
    } else {
        leg.callee_tone_hz
    }
}

/// Everything the truth says of a capture, checked against the catalog and the audio.
/// `recorded(conversation)` says whether the rules record it.
fn check(r: &Replayed, what: &str, recorded: &dyn Fn(&voxtap_gen::ConversationTruth) -> bool) {
    let t: &GroundTruth = &r.truth;
    let cat = read(&r.out);
    let legs: BTreeMap<&str, &CallTruth> = t
        .calls
        .iter()
        .map(|c| (c.sip_call_id.as_str(), c))
        .collect();
    // Direction of every answered leg, and its conversation.
    let mut conv_rows: BTreeMap<usize, BTreeSet<Option<i64>>> = BTreeMap::new();
    for c in &t.calls {
        let Some(row) = cat.legs.get(&c.sip_call_id) else {
            panic!(
                "{what}: leg {} ({}) is not in the catalog",
                c.sip_call_id, c.leg
            );
        };
        if c.answered {
            assert_eq!(
                row.direction.as_deref(),
                Some(c.expected_direction.as_str()),
                "{what}: direction of the {} leg {}",
                c.leg,
                c.sip_call_id
            );
        }
        conv_rows
            .entry(c.conversation.expect("a PBX leg has a conversation"))
            .or_default()
            .insert(row.conversation);
    }
    let mut seen = BTreeSet::new();
    for (conv, rows) in &conv_rows {
        assert_eq!(
            rows.len(),
            1,
            "{what}: conversation {conv} split over {rows:?}"
        );
        let row = rows
            .iter()
            .next()
            .unwrap()
            .expect("every leg has a conversation");
        assert!(
            seen.insert(row),
            "{what}: two conversations share row {row}"
        );
        let truth = t.conversations.iter().find(|x| x.id == *conv).unwrap();
        // From the carrier's side the phones are behind the PBX: only numbers are seen.
        let phones_seen = t
            .calls
            .iter()
            .any(|c| c.conversation == Some(*conv) && c.segment == "phones");
        if !phones_seen {
            continue;
        }
        assert_eq!(
            cat.people.get(&row),
            Some(&truth.final_people),
            "{what}: the people of conversation {conv}"
        );
    }
    // Every link is evidence the generator put there (on either leg).
    for (a, b, evidence) in &cat.links {
        let on = |cid: &str| {
            legs.get(cid)
                .map(|c| c.link_evidence.clone())
                .unwrap_or_default()
        };
        let mut allowed = on(a);
        allowed.extend(on(b));
        assert!(
            allowed.iter().any(|e| e == truth_word(evidence)),
            "{what}: {a} tied to {b} by {evidence}, which the truth does not list ({allowed:?})"
        );
    }
    // Recordings: one per conversation at a time (a consultation is its own talk), every span
    // the people talked covered, the right person on each channel.
    for conv in &t.conversations {
        let mine: Vec<&Rec> = cat
            .recs
            .iter()
            .filter(|x| conv.legs.contains(&x.sip_call_id) && x.repeats.is_none())
            .collect();
        let consult = |cid: &str| legs.get(cid).is_some_and(|c| c.leg == "consultation");
        for (i, a) in mine.iter().enumerate() {
            for b in &mine[i + 1..] {
                let overlap = a.end.min(b.end) as i64 - a.start.max(b.start) as i64;
                assert!(
                    overlap < 100_000_000 || consult(&a.sip_call_id) || consult(&b.sip_call_id),
                    "{what}: conversation {} recorded twice at once ({} and {})",
                    conv.id,
                    a.sip_call_id,
                    b.sip_call_id
                );
            }
        }
        for &[from, to] in &conv.talk_spans_ns {
            let covered: u64 = mine
                .iter()
                .map(|x| x.end.min(to).saturating_sub(x.start.max(from)))
                .sum();
            if recorded(conv) {
                assert!(
                    covered + 300_000_000 >= to - from,
                    "{what}: conversation {} talked {:.2} s from {from}, recorded {:.2} s of it",
                    conv.id,
                    (to - from) as f64 / 1e9,
                    covered as f64 / 1e9
                );
            } else {
                assert!(
                    covered < 300_000_000,
                    "{what}: conversation {} must not be recorded, {:.2} s are",
                    conv.id,
                    covered as f64 / 1e9
                );
            }
            // The people in the middle of the span, each on its channel, in a recording that
            // covers it (a held leg's recording is silent while its people consult).
            let mid = from + (to - from) / 2;
            let covering: Vec<&&Rec> = mine
                .iter()
                .filter(|x| x.start + 200_000_000 <= mid && mid + 200_000_000 <= x.end)
                .collect();
            if covering.is_empty() {
                continue;
            }
            let mut heard = Vec::new();
            for rec in covering {
                let leg = legs[rec.sip_call_id.as_str()];
                // Its people are not both talking on this leg now (a hold for a consultation
                // the mirror may not show).
                if silent_at(leg, "left", mid) || silent_at(leg, "right", mid) {
                    continue;
                }
                let w = read_wav(&r.out.join(&rec.path));
                let at = ((mid - rec.start) as f64 / 1e9 * f64::from(w.rate)) as usize;
                let n = (0.3 * f64::from(w.rate)) as usize;
                let mut ok = true;
                for (channel, x) in [("left", &w.left), ("right", &w.right)] {
                    let part = &x[at.saturating_sub(n / 2).min(x.len())..(at + n / 2).min(x.len())];
                    let want = tone_at(leg, channel, mid);
                    let other = tone_at(leg, if channel == "left" { "right" } else { "left" }, mid);
                    let (pw, po) = (
                        tone_power(part, w.rate, want),
                        tone_power(part, w.rate, other),
                    );
                    ok &= pw > 0.02 && po < pw / 50.0;
                    heard.push(format!(
                        "{} {channel}: {want} Hz {pw:.4}, {other} Hz {po:.4}",
                        rec.path
                    ));
                }
                if ok {
                    heard.clear();
                    break;
                }
            }
            assert!(
                heard.is_empty(),
                "{what}: conversation {} at {mid}: no recording carries each person on their channel: {heard:#?}",
                conv.id
            );
        }
    }
}

fn not_external(c: &voxtap_gen::ConversationTruth) -> bool {
    c.direction != "external-to-external"
}

fn mirrors(s: Scenario) -> Vec<Mirror> {
    match s {
        // Its legs are all on the carrier side.
        Scenario::ForwardExternal => vec![Mirror::Carrier, Mirror::Both],
        _ => vec![Mirror::Phones, Mirror::Carrier, Mirror::Both],
    }
}

fn each_pbx_scenario(tag: &str) {
    let s = match tag {
        "outbound" => Scenario::PbxOutbound,
        "inbound" => Scenario::PbxInbound,
        "blind" => Scenario::BlindTransfer,
        "attended" => Scenario::AttendedTransfer,
        "forward" => Scenario::ForwardExternal,
        "pickup" => Scenario::Pickup,
        _ => unreachable!(),
    };
    let config = rules(RECORD_ALL, "off");
    for m in mirrors(s) {
        let r = run(s, m, &config, tag);
        check(
            &r,
            &format!("{tag} on the {} mirror", mirror_name(m)),
            &not_external,
        );
    }
}

#[test]
fn outbound_through_the_pbx() {
    each_pbx_scenario("outbound");
}

#[test]
fn inbound_through_the_pbx() {
    each_pbx_scenario("inbound");
}

#[test]
fn blind_transfer() {
    each_pbx_scenario("blind");
}

#[test]
fn attended_transfer() {
    each_pbx_scenario("attended");
}

#[test]
fn pickup() {
    each_pbx_scenario("pickup");
}

/// A forward to an external number leaves two external parties: refused on the new leg and
/// on the leg it came in on, unless the tenant allows it.
#[test]
fn forward_to_an_external_number_is_refused_unless_allowed() {
    let config = rules(RECORD_ALL, "off");
    for m in mirrors(Scenario::ForwardExternal) {
        let r = run(Scenario::ForwardExternal, m, &config, "forward");
        let what = format!("forward on the {} mirror", mirror_name(m));
        check(&r, &what, &not_external);
        let cat = read(&r.out);
        for c in r.truth.calls.iter().filter(|c| c.leg == "forward") {
            let (record, _, reason) = &cat.decisions[&c.sip_call_id];
            assert!(!record, "{what}: {reason}");
            assert!(
                reason.starts_with("external-to-external"),
                "{what}: {reason}"
            );
        }
    }
    let allowed = rules(
        &format!("allow_external_to_external = true\n{RECORD_ALL}"),
        "off",
    );
    let r = run(
        Scenario::ForwardExternal,
        Mirror::Both,
        &allowed,
        "forward-allowed",
    );
    check(&r, "forward, allowed", &|_| true);
}

/// Every leg recorded when asked: one recording of the conversation, the others saying whose
/// audio they repeat.
#[test]
fn record_each_leg_marks_the_repeats() {
    let config = format!(
        "[conversations]\nrecord_each_leg = true\n{}",
        rules(RECORD_ALL, "off")
    );
    let r = run(Scenario::PbxOutbound, Mirror::Both, &config, "each-leg");
    check(&r, "record_each_leg", &|_| true);
    let cat = read(&r.out);
    for conv in &r.truth.conversations {
        let recs: Vec<&Rec> = cat
            .recs
            .iter()
            .filter(|x| conv.legs.contains(&x.sip_call_id))
            .collect();
        assert_eq!(
            recs.len(),
            2,
            "conversation {}: one recording per leg",
            conv.id
        );
        assert_eq!(
            recs.iter().filter(|x| x.repeats.is_some()).count(),
            1,
            "conversation {}: the second says it repeats the first",
            conv.id
        );
    }
    // By default the covered leg's decision says where it is recorded.
    let r = run(
        Scenario::PbxOutbound,
        Mirror::Both,
        &rules(RECORD_ALL, "off"),
        "covered",
    );
    let cat = read(&r.out);
    let covered = cat.decisions.values().filter(|d| d.1.is_some()).count();
    assert_eq!(
        covered,
        r.truth.conversations.len(),
        "one covered leg per conversation"
    );
}

/// Each DDI option in both directions on both mirrors. Behind the PBX the DDI is not on the
/// phone's leg: the user's `ddi` says which is theirs.
#[test]
fn ddi_options_in_both_directions_on_both_sides_of_the_pbx() {
    let users: String = (0..4)
        .flat_map(|i| {
            [
                format!("[[rules.tenants.users]]\nname = \"out{i}\"\nextensions = [\"1000{i}\"]\nddi = \"+3491555000{i}\"\n"),
                format!("[[rules.tenants.users]]\nname = \"in{i}\"\nextensions = [\"2000{i}\"]\nddi = \"+3491555000{i}\"\n"),
            ]
        })
        .collect();
    for option in ["off", "incoming", "outgoing", "all"] {
        let config = rules(&users, option);
        for (s, dir) in [
            (Scenario::PbxInbound, "incoming"),
            (Scenario::PbxOutbound, "outgoing"),
        ] {
            let records = option == "all" || option == dir;
            for m in [Mirror::Phones, Mirror::Carrier] {
                let tag = format!("ddi-{option}-{dir}");
                let r = run(s, m, &config, &tag);
                let what = format!("DDI option {option}, {dir} call, {} mirror", mirror_name(m));
                check(&r, &what, &|_| records);
                let cat = read(&r.out);
                for c in &r.truth.calls {
                    let (record, _, reason) = &cat.decisions[&c.sip_call_id];
                    assert_eq!(*record, records, "{what}: {reason}");
                    if records {
                        assert!(reason.starts_with("DDI +3491555000"), "{what}: {reason}");
                    }
                }
            }
        }
    }
}

/// The Kazoo matrix, one cell at a time: an outbound call through the PBX is outbound.offnet,
/// an inbound one inbound.offnet, the consultation between two phones of an attended
/// transfer outbound.onnet for the caller's side and inbound.onnet for the callee's, on
/// every mirror that shows the leg.
#[test]
fn kazoo_matrix_through_the_pbx() {
    let cells = [
        ("inbound", "offnet"),
        ("inbound", "onnet"),
        ("outbound", "offnet"),
        ("outbound", "onnet"),
    ];
    for (dir, net) in cells {
        let config = rules(
            &format!("[rules.tenants.settings]\n{dir} = {{ {net} = true }}\n"),
            "off",
        );
        let cell = format!("{dir}.{net}");
        for (s, tag) in [
            (Scenario::PbxOutbound, "outbound"),
            (Scenario::PbxInbound, "inbound"),
            (Scenario::AttendedTransfer, "attended"),
        ] {
            for m in [Mirror::Phones, Mirror::Carrier] {
                let r = run(s, m, &config, &format!("matrix-{dir}-{net}-{tag}"));
                let what = format!("cell {cell}, {tag}, {} mirror", mirror_name(m));
                let cat = read(&r.out);
                for c in r.truth.calls.iter().filter(|c| c.answered) {
                    // A transfer's new leg inherits the conversation's recording.
                    if c.leg == "transfer-target" {
                        continue;
                    }
                    let want = match c.expected_direction.as_str() {
                        "outbound" => cell == "outbound.offnet",
                        "inbound" => cell == "inbound.offnet",
                        "internal" => net == "onnet",
                        _ => false,
                    };
                    let (record, _, reason) = &cat.decisions[&c.sip_call_id];
                    assert_eq!(
                        *record, want,
                        "{what}: {} leg {}: {reason}",
                        c.leg, c.sip_call_id
                    );
                    if want {
                        assert!(reason.contains(&cell), "{what}: {reason}");
                    }
                }
            }
        }
    }
}

/// IvozProvider keeps the recording while the external caller is on, whoever of ours takes
/// the call; PortSIP decides the new leg by its new user.
#[test]
fn transfers_inherit_or_decide_per_tenant() {
    // Only B's extension records: the transfer target (C, 25000) does not.
    let b_only = |transfers: &str| {
        rules(
            &format!(
                "transfers = \"{transfers}\"\n[[rules.tenants.users]]\nname = \"b\"\nextensions = [\"20000\"]\nsettings = {{ inbound = {{ offnet = true }} }}\n[[rules.tenants.users]]\nname = \"c\"\nextensions = [\"25000\"]\n"
            ),
            "off",
        )
    };
    for (transfers, target_recorded) in [("inherit", true), ("decide", false)] {
        let mut cfg = GenConfig::new(Scenario::BlindTransfer);
        cfg.mirror = Mirror::Phones;
        cfg.calls = 1;
        let r = replay_generated(
            &cfg,
            &format!("conv-transfers-{transfers}"),
            Some(&b_only(transfers)),
        );
        let cat = read(&r.out);
        let what = format!("transfers = {transfers}");
        for c in &r.truth.calls {
            let (record, _, reason) = &cat.decisions[&c.sip_call_id];
            match c.leg.as_str() {
                "phone" => assert!(record, "{what}: B's leg: {reason}"),
                "transfer-target" => {
                    assert_eq!(*record, target_recorded, "{what}: C's leg: {reason}");
                    if target_recorded {
                        assert!(
                            reason.starts_with("inherits the recording of leg"),
                            "{what}: {reason}"
                        );
                    }
                }
                _ => {}
            }
        }
        let target = r
            .truth
            .calls
            .iter()
            .find(|c| c.leg == "transfer-target")
            .unwrap();
        let recorded = cat.recs.iter().any(|x| x.sip_call_id == target.sip_call_id);
        assert_eq!(recorded, target_recorded, "{what}: C's leg recorded");
    }
}

/// The real captures that show a B2BUA, a REFER or a relay are linked as their SIP says:
/// `erspan-refer-hold` is a call to 20008909 and, 13 s later, a consultation call from
/// 20008909 to 20008910 through the OmniPCX (two dialogs 9 ms apart, each seen on both faces
/// of an SBC that keeps the Call-ID), with an attended-transfer REFER the PBX refuses (407,
/// then 488): two conversations, and a failed transfer. `sip-call-rtp-g711` (a relay passing
/// SSRCs through for one call, a second call 24 s later) and `sip-dtmf-rfc2833` (a rejected
/// call and a call 16 s later) have no ties.
#[test]
fn real_captures_are_linked_as_their_sip_says() {
    let Some(dir) = voxtap_tests::shared_captures("real_captures_are_linked_as_their_sip_says")
    else {
        return;
    };
    let group = |name: &str| {
        let scratch = voxtap_tests::Scratch::new(&format!("conv-real-{name}"));
        let out = scratch.path().join("out");
        voxtap_tests::replay_ok(&out, &[&dir.join(name)]);
        let db = catalog(&out);
        let mut by_conv: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        let mut s = db
            .prepare("SELECT conversation_id, sip_call_id FROM calls")
            .unwrap();
        for row in s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap() {
            let (c, id): (i64, String) = row.unwrap();
            by_conv.entry(c).or_default().insert(id);
        }
        let links: Vec<String> = db
            .prepare("SELECT evidence FROM conversation_links ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let transfers: Vec<(String, String, String)> = db
            .prepare(
                "SELECT kind, value, source FROM events WHERE kind LIKE 'transfer%' ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let groups: BTreeSet<Vec<String>> = by_conv
            .into_values()
            .map(|ids| ids.into_iter().map(|i| i[..8].to_string()).collect())
            .collect();
        (groups, links, transfers, scratch)
    };
    let set = |v: &[&[&str]]| -> BTreeSet<Vec<String>> {
        v.iter()
            .map(|g| g.iter().map(|s| s.to_string()).collect())
            .collect()
    };

    let (groups, links, transfers, _s) = group("erspan-refer-hold.pcapng");
    assert_eq!(groups, set(&[&["ddd141f1"], &["bf3880-0", "cdfef7c7"]]));
    assert!(links.iter().any(|e| e == "timing"), "{links:?}");
    assert!(
        !links.iter().any(|e| e == "replaces"),
        "a refused REFER ties nothing: {links:?}"
    );
    assert!(!transfers.is_empty());
    for (kind, target, source) in &transfers {
        assert_eq!(
            (kind.as_str(), target.as_str()),
            ("transfer-failed", "20008910")
        );
        assert!(
            source == "refer-replaces/407" || source == "refer-replaces/488",
            "{source}"
        );
    }

    let (groups, links, transfers, _s) = group("sip-call-rtp-g711.pcap");
    assert_eq!(groups, set(&[&["12013223"], &["12015624"]]));
    assert!(
        links.is_empty() && transfers.is_empty(),
        "{links:?} {transfers:?}"
    );

    let (groups, links, transfers, _s) = group("sip-dtmf-rfc2833.pcap");
    assert_eq!(groups, set(&[&["5514@192"], &["25672@19"]]));
    assert!(
        links.is_empty() && transfers.is_empty(),
        "{links:?} {transfers:?}"
    );
}
