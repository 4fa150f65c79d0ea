//! The real public captures in ../shared/captures, checked against tshark as the oracle:
//! every INVITE dialog tshark finds is in the catalog with the same Call-ID, the G.711 calls
//! produce audio, and the RTP loss and jitter agree with `tshark -z rtp,streams`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use voxtap_tests::{Scratch, catalog, have_tshark, read_wav, replay_ok, shared_captures};

/// Captures whose SIP voxtap cannot read yet, and why. Each is reported loudly, never hidden.
const KNOWN_GAPS: &[(&str, &str)] = &[
    ("extra/sip-sctp.pcap", "SIP over SCTP is not decoded"),
    (
        "extra/sip-tls13-rtcp.pcap",
        "SIP over TLS cannot be read passively",
    ),
];

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("extra")] {
        let Ok(rd) = std::fs::read_dir(&sub) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            ) {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

fn rel(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap().to_string_lossy().into_owned()
}

/// The shared captures' directory, when they and tshark, the oracle, are both there (each
/// missing one says SKIPPED for `test`).
fn captures_and_tshark(test: &str) -> Option<PathBuf> {
    let dir = shared_captures(test)?;
    have_tshark(test).then_some(dir)
}

/// A capture replayed into a scratch directory of its own.
struct Replayed {
    name: String,
    capture: PathBuf,
    out: PathBuf,
    _scratch: Scratch,
}

/// Every capture, each replayed (`tag` names the scratch directories).
fn replay_each(dir: &Path, tag: &str) -> Vec<Replayed> {
    captures(dir)
        .into_iter()
        .map(|capture| {
            let name = rel(dir, &capture);
            let scratch = Scratch::new(&format!("{tag}-{}", name.replace('/', "-")));
            let out = scratch.path().join("out");
            replay_ok(&out, &[&capture]);
            Replayed {
                name,
                capture,
                out,
                _scratch: scratch,
            }
        })
        .collect()
}

fn tshark_invite_call_ids(capture: &Path) -> BTreeSet<String> {
    voxtap_tests::tshark_fields(capture, "sip.Method==\"INVITE\"", &["sip.Call-ID"], &[])
        .iter()
        .flat_map(|l| l.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn catalog_call_ids(out: &Path) -> BTreeSet<String> {
    let db = catalog(out);
    let mut stmt = db.prepare("SELECT sip_call_id FROM calls").unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn every_invite_dialog_tshark_sees_is_in_the_catalog() {
    let Some(dir) = captures_and_tshark("every_invite_dialog_tshark_sees_is_in_the_catalog") else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for Replayed {
        name, capture, out, ..
    } in replay_each(&dir, "real")
    {
        let want = tshark_invite_call_ids(&capture);
        let got = catalog_call_ids(&out);
        let missing: Vec<_> = want.difference(&got).cloned().collect();
        if let Some((_, why)) = KNOWN_GAPS.iter().find(|(n, _)| *n == name) {
            eprintln!(
                "*** KNOWN GAP {name}: {why}; tshark sees {} INVITE dialogs, voxtap {} ***",
                want.len(),
                got.len()
            );
            continue;
        }
        checked += 1;
        if !missing.is_empty() {
            failures.push(format!(
                "{name}: missing {missing:?} (tshark {}, voxtap {})",
                want.len(),
                got.len()
            ));
        }
    }
    assert!(checked >= 20, "only {checked} captures were checked");
    assert!(
        failures.is_empty(),
        "INVITE dialogs missing from the catalog:\n{}",
        failures.join("\n")
    );
}

/// Captures with answered G.711 calls whose media is in the capture.
const G711: &[&str] = &[
    "sip-call-rtp-g711.pcap",
    "sip-rtp-g711-pcma-pcmu.pcap",
    "sip-dtmf-rfc2833.pcap",
    "asterisk-zfone-zrtp.pcap",
    "sip-tcp-call-rtp-rtcp.pcap",
];

#[test]
fn g711_calls_produce_audio() {
    let Some(dir) = shared_captures("g711_calls_produce_audio") else {
        return;
    };
    for name in G711 {
        let cap = dir.join(name);
        let scratch = Scratch::new(&format!("g711-{name}"));
        let out = scratch.path().join("out");
        replay_ok(&out, &[&cap]);
        let db = catalog(&out);
        let mut stmt = db
            .prepare("SELECT path, duration_s FROM recordings")
            .unwrap();
        let recs: Vec<(String, f64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!recs.is_empty(), "{name}: no recording");
        let mut audible = 0;
        for (path, dur) in &recs {
            let w = read_wav(&out.join(path));
            assert!(
                (w.secs() - dur).abs() < 0.01,
                "{name}: {path} lasts {} s, catalog says {dur}",
                w.secs()
            );
            let peak = w
                .left
                .iter()
                .chain(&w.right)
                .fold(0.0f64, |m, v| m.max(v.abs()));
            if peak > 0.01 {
                audible += 1;
            }
        }
        assert!(audible > 0, "{name}: recordings are silent");
    }
}

/// The RFC 3551 static audio payload types' names.
fn static_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        5 | 6 | 16 | 17 => "DVI4",
        7 => "LPC",
        8 => "PCMA",
        9 => "G722",
        10 | 11 => "L16",
        12 => "QCELP",
        13 => "CN",
        14 => "MPA",
        15 => "G728",
        18 => "G729",
        _ => return None,
    })
}

/// Call-ID → the codec of the first 200 OK to an INVITE with SDP, as tshark reads it: the
/// first payload type of its first audio m= line that is not telephone-event or comfort
/// noise, named by its rtpmap, else the static table.
fn tshark_answer_codecs(capture: &Path) -> HashMap<String, String> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(capture)
        .args([
            "-Y",
            "sip.Status-Code == 200 && sdp && sip.CSeq.method == \"INVITE\"",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=|",
            "-E",
            "separator=/t",
            "-e",
            "sip.Call-ID",
            "-e",
            "sdp.media",
            "-e",
            "sdp.media_attr",
        ])
        .output()
        .expect("run tshark");
    let mut codecs = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut cols = line.split('\t');
        let (Some(id), Some(media), attrs) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        let Some(audio) = media.split('|').find(|m| m.starts_with("audio ")) else {
            continue;
        };
        let rtpmap = |pt: u8| {
            attrs.unwrap_or("").split('|').find_map(|a| {
                let (n, enc) = a.strip_prefix("rtpmap:")?.split_once(' ')?;
                (n.parse::<u8>().ok()? == pt)
                    .then(|| enc.split('/').next().unwrap_or("").to_string())
            })
        };
        let first = audio
            .split_whitespace()
            .skip(3)
            .filter_map(|f| f.parse::<u8>().ok())
            .find_map(|pt| {
                let name = rtpmap(pt).or_else(|| static_name(pt).map(str::to_string))?;
                let other =
                    name.eq_ignore_ascii_case("telephone-event") || name.eq_ignore_ascii_case("CN");
                (!other).then_some(name)
            });
        if let Some(name) = first {
            codecs.entry(id.trim().to_string()).or_insert(name);
        }
    }
    codecs
}

/// A recording names the codec the call settled on: the answer's first audio payload type in
/// its m= line's order, which real equipment does not always repeat in its rtpmap lines.
#[test]
fn each_recording_names_the_answers_first_payload_type() {
    let Some(dir) = captures_and_tshark("each_recording_names_the_answers_first_payload_type")
    else {
        return;
    };
    let mut compared = 0;
    for Replayed {
        name, capture, out, ..
    } in replay_each(&dir, "codec-name")
    {
        if KNOWN_GAPS.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let want = tshark_answer_codecs(&capture);
        let db = catalog(&out);
        let mut stmt = db
            .prepare(
                "SELECT c.sip_call_id, r.codec FROM recordings r JOIN calls c ON c.id = r.call_id",
            )
            .unwrap();
        let got: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (id, codec) in got {
            let Some(w) = want.get(&id) else {
                continue;
            };
            assert!(
                codec.eq_ignore_ascii_case(w),
                "{name}: call {id} recorded as {codec:?}, its answer's first payload type is {w:?}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 10, "only {compared} recordings compared");
}

/// A stream's status says what became of its audio: `no-audio` only when it carried none
/// (telephone events and comfort noise only), `not-recorded` when it carried audio that no
/// recording took. The second leg of a call through the PBX in the SRTP capture is one: its
/// conversation is recorded once, on the other leg.
#[test]
fn stream_statuses_say_what_became_of_the_audio() {
    let Some(dir) = shared_captures("stream_statuses_say_what_became_of_the_audio") else {
        return;
    };
    let mut unrecorded = Vec::new();
    for Replayed { name, out, .. } in replay_each(&dir, "stream-status") {
        let db = catalog(&out);
        let rows: Vec<(String, String, i64, i64, i64, i64, i64)> = voxtap_tests::rows(
            &db,
            "SELECT c.sip_call_id, s.status, s.packets - s.duplicates, s.telephone_events,
                        s.comfort_noise, s.decoded_packets,
                        (SELECT count(*) FROM recordings r WHERE r.call_id = s.call_id
                          AND r.state IN ('complete', 'partial'))
                 FROM streams s JOIN calls c ON c.id = s.call_id",
        );
        for (id, status, packets, te, cn, decoded, recorded) in rows {
            match status.as_str() {
                "no-audio" => assert!(
                    packets <= te + cn,
                    "{name}: call {id}'s stream of {packets} packets ({te} events, {cn} comfort \
                     noise) says no-audio"
                ),
                "not-recorded" => {
                    assert!(
                        decoded == 0 && packets > te + cn && recorded == 0,
                        "{name}: call {id}: not-recorded with {decoded} decoded, {packets} \
                         packets, {recorded} recordings"
                    );
                    unrecorded.push((name.clone(), id));
                }
                _ => {}
            }
        }
    }
    let srtp: Vec<_> = unrecorded
        .iter()
        .filter(|(n, _)| n == "voipshark-srtp-call.pcap")
        .collect();
    assert_eq!(
        srtp.len(),
        2,
        "the SRTP capture's unrecorded leg has two streams: {unrecorded:?}"
    );
}

#[derive(Debug)]
struct TsharkStream {
    packets: i64,
    lost: i64,
    max_jitter: f64,
    mean_jitter: f64,
}

/// Parses `tshark -q -z rtp,streams` rows keyed by (src, sport, dst, dport, ssrc).
fn tshark_streams(capture: &Path) -> HashMap<(String, u16, String, u16, u32), TsharkStream> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(capture)
        .args(["-q", "-o", "rtp.heuristic_rtp:TRUE", "-z", "rtp,streams"])
        .output()
        .expect("run tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(ssrc_at) = f.iter().position(|s| s.starts_with("0x")) else {
            continue;
        };
        if ssrc_at != 6 {
            continue;
        }
        let Ok(ssrc) = u32::from_str_radix(&f[6][2..], 16) else {
            continue;
        };
        // After the payload name(s): packets, lost, (pct), min/mean/max delta, min/mean/max jitter.
        let Some(lost_pct) = f
            .iter()
            .position(|s| s.starts_with('(') && s.ends_with("%)"))
        else {
            continue;
        };
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok());
        let (Some(packets), Some(lost)) = (num(lost_pct - 2), num(lost_pct - 1)) else {
            continue;
        };
        let (Some(mean_jitter), Some(max_jitter)) = (num(lost_pct + 5), num(lost_pct + 6)) else {
            continue;
        };
        map.insert(
            (
                f[2].to_string(),
                f[3].parse().unwrap_or(0),
                f[4].to_string(),
                f[5].parse().unwrap_or(0),
                ssrc,
            ),
            TsharkStream {
                packets: packets as i64,
                lost: lost as i64,
                max_jitter,
                mean_jitter,
            },
        );
    }
    map
}

#[test]
fn rtp_loss_and_jitter_agree_with_tshark() {
    let Some(dir) = captures_and_tshark("rtp_loss_and_jitter_agree_with_tshark") else {
        return;
    };
    let mut compared = 0;
    for name in G711 {
        let cap = dir.join(name);
        let want = tshark_streams(&cap);
        let scratch = Scratch::new(&format!("jitter-{name}"));
        let out = scratch.path().join("out");
        replay_ok(&out, &[&cap]);
        let db = catalog(&out);
        type Row = (String, u16, String, u16, i64, i64, i64, f64, f64);
        let rows: Vec<Row> = voxtap_tests::rows(
            &db,
            "SELECT src_addr, src_port, dst_addr, dst_port, ssrc, packets, lost, max_jitter_ms, mean_jitter_ms FROM streams",
        );
        for (src, sport, dst, dport, ssrc, packets, lost, max_j, mean_j) in rows {
            let key = (src.clone(), sport, dst.clone(), dport, ssrc as u32);
            let Some(t) = want.get(&key) else {
                panic!(
                    "{name}: stream {key:?} is not in tshark's list {:?}",
                    want.keys().collect::<Vec<_>>()
                )
            };
            assert_eq!(packets, t.packets, "{name} {key:?}: packets");
            assert_eq!(lost, t.lost, "{name} {key:?}: lost");
            assert!(
                (max_j - t.max_jitter).abs() < 0.01,
                "{name} {key:?}: max jitter {max_j} vs tshark {}",
                t.max_jitter
            );
            assert!(
                (mean_j - t.mean_jitter).abs() < 0.01,
                "{name} {key:?}: mean jitter {mean_j} vs tshark {}",
                t.mean_jitter
            );
            compared += 1;
        }
    }
    assert!(compared >= 8, "only {compared} streams compared");
}

fn dtmf_digits(out: &Path, source: &str) -> String {
    let db = catalog(out);
    let mut stmt = db
        .prepare("SELECT value FROM events WHERE kind = 'dtmf' AND source = ?1 ORDER BY time, id")
        .unwrap();
    stmt.query_map([source], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn dtmf_digits_from_rfc4733_and_sip_info() {
    let Some(dir) = shared_captures("dtmf_digits_from_rfc4733_and_sip_info") else {
        return;
    };
    let scratch = Scratch::new("dtmf-real");
    let out = scratch.path().join("rfc2833");
    replay_ok(&out, &[&dir.join("sip-dtmf-rfc2833.pcap")]);
    assert_eq!(dtmf_digits(&out, "rfc4733"), "6789123");
    let out = scratch.path().join("info");
    replay_ok(&out, &[&dir.join("sip-info-dtmf.pcap")]);
    assert_eq!(dtmf_digits(&out, "sip-info"), "1342");
}

#[test]
fn a_challenged_invite_stays_one_call() {
    let Some(dir) = shared_captures("a_challenged_invite_stays_one_call") else {
        return;
    };
    let scratch = Scratch::new("auth");
    let out = scratch.path().join("out");
    replay_ok(&out, &[&dir.join("aaa-sip-auth-cancel.pcap")]);
    let db = catalog(&out);
    // 11 INVITEs in 4 dialogs: re-sent INVITEs after 401/407 continue their call.
    let (calls, distinct): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT sip_call_id || '/' || from_tag) FROM calls",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((calls, distinct), (4, 4));
    let answered: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM calls WHERE answer_time IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(answered, 0, "no call in this capture is answered");
    let recordings: i64 = db
        .query_row("SELECT COUNT(*) FROM recordings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recordings, 0);
}

#[test]
fn corrupt_real_input_never_panics() {
    let Some(dir) = shared_captures("corrupt_real_input_never_panics") else {
        return;
    };
    // The lone first fragment of an INVITE cannot be reassembled: counted, not fatal.
    let scratch = Scratch::new("frag-broken");
    let out = scratch.path().join("out");
    let summary = replay_ok(&out, &[&dir.join("sip-ipv4-frag-invite.pcap")]);
    assert!(summary.contains("malformed"), "{summary}");
    // The rest of the call is there: it is picked up from its 200 OK, and says so.
    let db = catalog(&out);
    let (calls, answered, picked): (i64, i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COUNT(answer_time),
                    (SELECT COUNT(*) FROM events WHERE kind = 'picked-up') FROM calls",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((calls, answered, picked), (1, 1, 1));
}
