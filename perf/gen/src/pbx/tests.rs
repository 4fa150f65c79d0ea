//! PBX scenarios decoded again: every SIP message parses and every dialog is consistent, the
//! headers are where the truth says, the relayed audio is the bytes its source sent, the mirror
//! keeps the legs it should, and tshark sees the dialogs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use voxtap_core::sip::{Message, StartLine};

use super::{GROUP_PICKUP, NULL_UUID, PBX_AGENT, PBX_IP, SBC_IP, direction};
use crate::g711::tests::{alaw_to_linear, ulaw_to_linear};
use crate::tests::{
    Udp, check_truth_consistency, decode_capture, goertzel_power, rtp_of, skipped, small,
};
use crate::{CallTruth, Codec, ConversationTruth, GenConfig, GroundTruth, Mirror, Scenario};
use crate::{Frame, generate};

/// One SIP message on the wire.
struct Sip {
    t: u64,
    src: IpAddr,
    text: String,
}

impl Sip {
    fn msg(&self) -> Message<'_> {
        Message::parse(self.text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn is_request(&self, method: &str) -> bool {
        matches!(self.msg().start, StartLine::Request { method: m, .. } if m.as_str() == method)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.msg().header_named(name)
    }

    fn request_uri(&self) -> Option<&str> {
        match self.msg().start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }
}

fn sip_of(cap: &crate::tests::Capture) -> Vec<Sip> {
    cap.udp
        .iter()
        .filter(|u| u.sport == 5060 || u.dport == 5060)
        .map(|u| Sip {
            t: u.t,
            src: u.src,
            text: String::from_utf8(u.payload.clone()).expect("SIP is text"),
        })
        .collect()
}

fn by_call_id(msgs: &[Sip]) -> BTreeMap<String, Vec<&Sip>> {
    let mut m: BTreeMap<String, Vec<&Sip>> = BTreeMap::new();
    for s in msgs {
        let id = s.msg().call_id().expect("Call-ID").to_string();
        m.entry(id).or_default().push(s);
    }
    m
}

fn pbx() -> IpAddr {
    PBX_IP.into()
}

/// The user part of a name-addr or URI.
fn user_of(v: &str) -> &str {
    let v = v.split_once("sip:").map_or(v, |(_, r)| r);
    v.split(['@', ';', '>']).next().unwrap_or(v)
}

struct Gen {
    cfg: GenConfig,
    frames: Vec<Frame>,
    truth: GroundTruth,
    msgs: Vec<Sip>,
    rtp: Vec<Udp>,
}

fn gen_with(s: Scenario, f: impl FnOnce(&mut GenConfig)) -> Gen {
    let mut cfg = small(s);
    f(&mut cfg);
    let (frames, truth) = generate(&cfg);
    let cap = decode_capture(&frames);
    let msgs = sip_of(&cap);
    let rtp = rtp_of(&cap).into_iter().cloned().collect();
    Gen {
        cfg,
        frames,
        truth,
        msgs,
        rtp,
    }
}

fn capture(s: Scenario) -> Gen {
    gen_with(s, |_| {})
}

impl Gen {
    fn conv(&self, c: &CallTruth) -> &ConversationTruth {
        let id = c.conversation.expect("a PBX leg has a conversation");
        &self.truth.conversations[id]
    }

    fn leg(&self, id: &str) -> &CallTruth {
        self.truth
            .calls
            .iter()
            .find(|c| c.sip_call_id == id)
            .expect("leg in truth")
    }

    fn dialog(&self, c: &CallTruth) -> Vec<&Sip> {
        self.msgs
            .iter()
            .filter(|m| m.msg().call_id() == Some(c.sip_call_id.as_str()))
            .collect()
    }

    fn invite(&self, c: &CallTruth) -> &Sip {
        self.msgs
            .iter()
            .find(|m| m.msg().call_id() == Some(c.sip_call_id.as_str()) && m.is_request("INVITE"))
            .expect("INVITE")
    }

    /// (media address) → (Call-ID, side) from every SDP, the INVITE's sender being side 0.
    fn media_map(&self) -> HashMap<(IpAddr, u16), (String, usize)> {
        let mut map = HashMap::new();
        for c in &self.truth.calls {
            let d = self.dialog(c);
            let caller = d[0].src;
            for m in &d {
                let msg = m.msg();
                let Some(sdp) = msg.sdp_body() else { continue };
                let sdp = std::str::from_utf8(sdp).unwrap();
                let ip: IpAddr = sdp
                    .lines()
                    .find_map(|l| l.strip_prefix("c=IN IP4 "))
                    .unwrap()
                    .parse()
                    .unwrap();
                let port: u16 = sdp
                    .lines()
                    .find_map(|l| l.strip_prefix("m=audio "))
                    .and_then(|l| l.split(' ').next())
                    .unwrap()
                    .parse()
                    .unwrap();
                let side = usize::from(m.src != caller);
                let old = map.insert((ip, port), (c.sip_call_id.clone(), side));
                assert!(
                    old.is_none_or(|o| o == (c.sip_call_id.clone(), side)),
                    "{ip}:{port} used by two legs"
                );
            }
        }
        map
    }
}

/// RFC 3261 rules of every dialog: tags, CSeq per side, responses match requests (branch and
/// CSeq), every request has a final response, every 2xx to an INVITE is ACKed.
fn check_dialogs(s: Scenario, msgs: &[Sip]) {
    for (id, ms) in by_call_id(msgs) {
        let first = ms[0].msg();
        assert!(ms[0].is_request("INVITE"), "{s:?} {id} starts with INVITE");
        assert_eq!(first.to().unwrap().tag, None);
        let caller_tag = first.from().unwrap().tag.unwrap().to_string();
        let caller_ip = ms[0].src;
        let mut callee_tag: Option<String> = None;
        let mut last: HashMap<bool, u32> = HashMap::new();
        let mut invite_cseq: HashMap<bool, u32> = HashMap::new();
        // (branch, cseq, method) → (by caller, got a final response)
        let mut open: HashMap<(String, u32, String), (bool, bool)> = HashMap::new();
        let mut ok_invites: Vec<(bool, u32)> = Vec::new();
        let mut acks: HashSet<(bool, u32)> = HashSet::new();
        for m in &ms {
            let msg = m.msg();
            let from = msg.from().unwrap().tag.map(str::to_string);
            let to = msg.to().unwrap().tag.map(str::to_string);
            let (n, cm) = msg.cseq().unwrap();
            let branch = msg.via_branch().unwrap().to_string();
            assert!(branch.starts_with("z9hG4bK"), "{branch}");
            match msg.start {
                StartLine::Request { method, .. } => {
                    let by_caller = m.src == caller_ip;
                    assert_eq!(cm, method, "{id}: CSeq method");
                    if by_caller {
                        assert_eq!(from.as_deref(), Some(caller_tag.as_str()), "{id}");
                        // RFC 3261 §9.1: a CANCEL's To is the INVITE's, without a tag.
                        let untagged = method.as_str() == "CANCEL"
                            || (method.as_str() == "INVITE" && !last.contains_key(&true));
                        if untagged {
                            assert_eq!(to, None, "{id}: {method} To tag");
                        } else {
                            assert_eq!(to, callee_tag, "{id}: {method} To tag");
                        }
                    } else {
                        assert_eq!(from, callee_tag, "{id}: callee's From tag");
                        assert_eq!(to.as_deref(), Some(caller_tag.as_str()), "{id}");
                    }
                    match method.as_str() {
                        "ACK" => {
                            assert_eq!(Some(&n), invite_cseq.get(&by_caller), "{id}: ACK CSeq");
                            acks.insert((by_caller, n));
                        }
                        "CANCEL" => {
                            assert_eq!(Some(&n), invite_cseq.get(&by_caller), "{id}: CANCEL");
                            open.insert((branch, n, "CANCEL".into()), (by_caller, false));
                        }
                        other => {
                            // RFC 3261 §12.2.1.1: each side's CSeq grows by request.
                            let prev = last.insert(by_caller, n);
                            assert!(prev.is_none_or(|p| n > p), "{id}: CSeq {prev:?} → {n}");
                            if other == "INVITE" {
                                invite_cseq.insert(by_caller, n);
                            }
                            open.insert((branch, n, other.into()), (by_caller, false));
                        }
                    }
                }
                StartLine::Response { code, .. } => {
                    let key = (branch, n, cm.as_str().to_string());
                    let (by_caller, done) = open
                        .get_mut(&key)
                        .unwrap_or_else(|| panic!("{id}: {code} answers no request {key:?}"));
                    assert_ne!(
                        *by_caller,
                        m.src == caller_ip,
                        "{id}: answered by its sender"
                    );
                    if *by_caller {
                        assert_eq!(from.as_deref(), Some(caller_tag.as_str()));
                        if code > 100 {
                            let t = to.clone().expect("To tag after 100");
                            assert!(callee_tag.as_ref().is_none_or(|c| *c == t), "{id}");
                            callee_tag = Some(t);
                        }
                    } else {
                        assert_eq!(from, callee_tag);
                        assert_eq!(to.as_deref(), Some(caller_tag.as_str()));
                    }
                    if code >= 200 {
                        assert!(!*done, "{id}: two final responses");
                        *done = true;
                        if cm.as_str() == "INVITE" && code < 300 {
                            ok_invites.push((*by_caller, n));
                        }
                    }
                }
            }
        }
        for (k, (_, done)) in &open {
            assert!(done, "{s:?} {id}: {k:?} has no final response");
        }
        for k in ok_invites {
            assert!(acks.contains(&k), "{s:?} {id}: 2xx of {k:?} not ACKed");
        }
    }
}

#[test]
fn every_pbx_scenario_is_well_formed_and_consistent() {
    for s in Scenario::PBX {
        let g = capture(s);
        let t = &g.truth;
        assert!(g.frames.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        check_truth_consistency(&g.cfg, &g.frames, t);
        assert_eq!(t.conversations.len(), g.cfg.calls, "{s:?}");
        for m in &g.msgs {
            let msg = m.msg();
            assert_eq!(
                msg.body.len(),
                m.text.split_once("\r\n\r\n").unwrap().1.len(),
                "Content-Length"
            );
            for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                assert!(msg.header_named(h).is_some(), "{h} missing: {}", m.text);
            }
            if msg.is_request() {
                assert_eq!(msg.header_named("Max-Forwards"), Some("70"));
            }
            if m.is_request("INVITE") {
                assert!(msg.contact().is_some() && msg.sdp_body().is_some());
            }
            // The PBX says what it is on everything it sends.
            let agent = msg
                .header_named("User-Agent")
                .or(msg.header_named("Server"));
            assert_eq!(agent == Some(PBX_AGENT), m.src == pbx(), "{}", m.text);
        }
        check_dialogs(s, &g.msgs);

        // The conversations list every Call-ID once, legs in INVITE order.
        let mut seen = HashSet::new();
        for conv in &t.conversations {
            let starts: Vec<u64> = conv.legs.iter().map(|id| g.leg(id).start_ns).collect();
            assert!(starts.windows(2).all(|w| w[0] < w[1]), "{s:?} leg order");
            for id in &conv.legs {
                assert!(seen.insert(id.clone()), "{id} in two conversations");
                assert_eq!(g.leg(id).conversation, Some(conv.id));
            }
            let total: f64 = conv
                .talk_spans_ns
                .iter()
                .map(|s| (s[1] - s[0]) as f64 / 1e9)
                .sum();
            assert!((total - conv.recorded_secs).abs() < 1e-9);
            assert!(
                conv.recorded_secs >= 2.0 - 1e-9,
                "{s:?}: {}",
                conv.recorded_secs
            );
        }
        assert_eq!(seen.len(), t.calls.len());

        for c in &t.calls {
            let conv = g.conv(c);
            assert_eq!(c.expected_direction, direction(c.parties_internal));
            // The signalling ends, as the addresses of the INVITE say.
            let inv = g.invite(c);
            let server = |ip: IpAddr| ip == pbx() || ip == IpAddr::from(SBC_IP);
            let callee_ip = g
                .dialog(c)
                .iter()
                .find(|m| m.src != inv.src)
                .map(|m| m.src)
                .unwrap();
            assert_eq!(c.via_server, [server(inv.src), server(callee_ip)], "{c:?}");
            assert!(
                inv.src == pbx() || callee_ip == pbx(),
                "every leg ends at the PBX"
            );
            assert_eq!(c.segment == "phones", !(c.via_server[0] && c.via_server[1]));
            assert_eq!(c.sees_both_parties, c.answered);
            assert_eq!(c.relays_ssrc, c.answered && conv.relays_ssrc);
            let first = conv.legs[0] == c.sip_call_id;
            assert_eq!(
                c.link_evidence.is_empty(),
                first,
                "{s:?} {:?}",
                c.link_evidence
            );
            if c.link_evidence.iter().any(|e| e == "numbers") {
                // A caller or dialled number of an earlier leg.
                let earlier: Vec<&CallTruth> = conv
                    .legs
                    .iter()
                    .map(|id| g.leg(id))
                    .take_while(|l| l.sip_call_id != c.sip_call_id)
                    .collect();
                assert!(
                    earlier.iter().any(|l| [&l.caller_user, &l.callee_user]
                        .iter()
                        .any(|u| **u == c.caller_user || **u == c.callee_user)),
                    "{s:?} numbers of {}",
                    c.sip_call_id
                );
            }
            if c.link_evidence.iter().any(|e| e == "timing") {
                let prev = g.leg(&conv.legs[0]);
                assert!(c.start_ns > prev.start_ns && c.start_ns < prev.end_ns);
            }
        }

        // Determinism.
        let again = capture(s);
        assert_eq!(g.frames, again.frames, "{s:?} deterministic");
        assert_eq!(
            serde_json::to_string(&g.truth).unwrap(),
            serde_json::to_string(&again.truth).unwrap()
        );
    }
}

#[test]
fn correlation_headers_are_where_the_truth_says() {
    for s in [Scenario::PbxOutbound, Scenario::PbxInbound] {
        let g = capture(s);
        let kinds: Vec<&str> = g
            .truth
            .conversations
            .iter()
            .map(|c| c.correlation.as_str())
            .collect();
        assert_eq!(kinds, ["x-cid", "session-id", "none", "none"], "{s:?}");
        let keep: Vec<bool> = g
            .truth
            .conversations
            .iter()
            .map(|c| c.relays_ssrc)
            .collect();
        assert_eq!(keep, [true, false, true, false]);
        for conv in &g.truth.conversations {
            let [a, b] = [g.leg(&conv.legs[0]), g.leg(&conv.legs[1])];
            let xcid = b.link_evidence.iter().any(|e| e == "header:X-CID");
            let sid = b.link_evidence.iter().any(|e| e == "header:Session-ID");
            assert_eq!(xcid, conv.correlation == "x-cid");
            assert_eq!(sid, conv.correlation == "session-id");
            // X-CID: on what the PBX sends on leg B, naming leg A (the Homer convention).
            for m in g.dialog(b) {
                let want = (xcid && m.src == pbx()).then_some(a.sip_call_id.as_str());
                assert_eq!(m.header("X-CID"), want, "{}", m.text);
            }
            assert!(g.dialog(a).iter().all(|m| m.header("X-CID").is_none()));
            // RFC 7989: both legs carry the same two UUIDs, each side's own first.
            let mut uuids = HashSet::new();
            for leg in [a, b] {
                let d = g.dialog(leg);
                let caller = d[0].src;
                for m in &d {
                    let Some(v) = m.header("Session-ID") else {
                        assert!(!sid, "Session-ID missing: {}", m.text);
                        continue;
                    };
                    assert!(sid);
                    let (local, remote) = v.split_once(";remote=").unwrap();
                    for u in [local, remote] {
                        assert!(u.len() == 32 && u.bytes().all(|b| b.is_ascii_hexdigit()));
                        assert_eq!(u, u.to_ascii_lowercase());
                        if u != NULL_UUID {
                            uuids.insert((u.to_string(), (m.src == caller) == (u == local)));
                        }
                    }
                }
            }
            if sid {
                // (UUID, is the calling side's): two UUIDs, never swapped between sides.
                assert_eq!(uuids.len(), 2, "{uuids:?}");
                assert_eq!(uuids.iter().filter(|u| u.1).count(), 1);
            }
            // The B leg starts 20-60 ms after the A leg.
            let gap = b.start_ns - a.start_ns;
            assert!((20_000_000..=60_000_000).contains(&gap), "{gap}");
        }
    }
}

#[test]
fn outbound_and_inbound_numbers() {
    let g = capture(Scenario::PbxOutbound);
    for conv in &g.truth.conversations {
        let [a, b] = [g.leg(&conv.legs[0]), g.leg(&conv.legs[1])];
        let (ia, ib) = (g.invite(a), g.invite(b));
        assert!(a.caller_user.starts_with('1') && a.caller_user.len() == 5);
        assert!(a.callee_user.starts_with("+4420"));
        assert_eq!(
            ia.request_uri(),
            Some(format!("sip:{}@{PBX_IP}", a.callee_user).as_str())
        );
        // RFC 3325 §9.1: leg B presents and asserts our DDI.
        assert!(b.caller_user.starts_with("+3491555"));
        assert_eq!(
            ib.header("P-Asserted-Identity").map(user_of),
            Some(b.caller_user.as_str())
        );
        assert_eq!(user_of(ib.request_uri().unwrap()), a.callee_user);
        assert_eq!(conv.people, [a.caller_user.clone(), a.callee_user.clone()]);
        assert_eq!((a.leg.as_str(), b.leg.as_str()), ("phone", "carrier"));
        // The carrier answers first, then the PBX answers the phone.
        assert!(b.answer_ns.unwrap() < a.answer_ns.unwrap());
    }
    let g = capture(Scenario::PbxInbound);
    for conv in &g.truth.conversations {
        let [a, b] = [g.leg(&conv.legs[0]), g.leg(&conv.legs[1])];
        let (ia, ib) = (g.invite(a), g.invite(b));
        assert!(a.callee_user.starts_with("+3491555") && a.caller_user.starts_with("+34912"));
        assert_eq!(user_of(ia.request_uri().unwrap()), a.callee_user);
        assert_eq!(conv.dialled, a.callee_user);
        assert!(b.callee_user.starts_with('2'));
        assert_eq!(user_of(ib.request_uri().unwrap()), b.callee_user);
        assert_eq!(b.caller_user, a.caller_user, "From is the external caller");
        assert!(ib.header("Diversion").is_none());
        assert_eq!(b.parties_internal, [false, true]);
        assert_eq!(b.expected_direction, "inbound");
    }
}

#[test]
fn transfers_carry_refer_notify_replaces_and_referred_by() {
    for s in [Scenario::BlindTransfer, Scenario::AttendedTransfer] {
        let g = capture(s);
        for conv in &g.truth.conversations {
            let legs: Vec<&CallTruth> = conv.legs.iter().map(|id| g.leg(id)).collect();
            let b_leg = legs[1];
            let target = legs.iter().find(|l| l.leg == "transfer-target").unwrap();
            let (b_ext, c_ext) = (&conv.people[1], &conv.final_people[1]);
            assert_ne!(b_ext, c_ext);
            assert_eq!(&target.callee_user, c_ext);
            assert_eq!(
                target.caller_user, conv.people[0],
                "the target sees the caller"
            );
            // RFC 3515: one REFER from B on its leg, 202 Accepted, NOTIFYs with sipfrag.
            let d = g.dialog(b_leg);
            let refers: Vec<&&Sip> = d.iter().filter(|m| m.is_request("REFER")).collect();
            assert_eq!(refers.len(), 1, "{s:?}");
            let refer = refers[0];
            assert_ne!(refer.src, pbx(), "B refers");
            let refer_to = refer.header("Refer-To").unwrap();
            assert_eq!(user_of(refer_to), c_ext.as_str());
            // RFC 3892: Referred-By names B, on the REFER and on the new leg's INVITE.
            assert_eq!(
                refer.header("Referred-By").map(user_of),
                Some(b_ext.as_str())
            );
            let inv = g.invite(target);
            assert_eq!(inv.header("Referred-By"), refer.header("Referred-By"));
            assert!(d.iter().any(|m| m.text.starts_with("SIP/2.0 202 Accepted")));
            let notifies: Vec<&&Sip> = d.iter().filter(|m| m.is_request("NOTIFY")).collect();
            assert_eq!(notifies.len(), 2);
            for (n, frag) in notifies
                .iter()
                .zip(["SIP/2.0 100 Trying", "SIP/2.0 200 OK"])
            {
                assert_eq!(n.header("Event"), Some("refer"));
                assert_eq!(n.msg().content_type(), Some("message/sipfrag"));
                assert_eq!(std::str::from_utf8(n.msg().body).unwrap().trim_end(), frag);
            }
            assert!(
                notifies[1]
                    .header("Subscription-State")
                    .unwrap()
                    .starts_with("terminated")
            );
            // The PBX ends B's leg after the target answered; the carrier leg goes on.
            let bye = d.iter().find(|m| m.is_request("BYE")).unwrap();
            assert_eq!(bye.src, pbx());
            assert!(bye.t > target.answer_ns.unwrap());
            let ext = legs[0];
            assert!(ext.end_ns > target.answer_ns.unwrap());
            assert_eq!(ext.leg, "carrier");
            // The carrier leg's right channel: B's tone, then C's.
            let hz: Vec<f64> = ext.tone_spans.iter().map(|t| t.hz).collect();
            assert_eq!(hz, [b_leg.callee_tone_hz, target.callee_tone_hz], "{s:?}");
            assert!(ext.tone_spans.iter().all(|t| t.channel == "right"));
            assert!(ext.silent_spans.iter().any(|t| t.channel == "right"));
            // The PBX asserts the new party to the carrier (RFC 3325 §9.1).
            let reinvite = g
                .dialog(ext)
                .into_iter()
                .filter(|m| m.is_request("INVITE"))
                .nth(1)
                .expect("re-INVITE of the carrier leg");
            assert_eq!(
                reinvite.header("P-Asserted-Identity").map(user_of),
                Some(c_ext.as_str())
            );
            assert_eq!(conv.final_people, [conv.people[0].clone(), c_ext.clone()]);
            if s == Scenario::BlindTransfer {
                assert!(!refer_to.contains("Replaces"));
                assert_eq!(legs.len(), 3);
                continue;
            }
            // Attended: the hold, the consultation legs and both Replaces.
            assert_eq!(legs.len(), 5);
            let holds = d
                .iter()
                .filter(|m| m.is_request("INVITE") && m.src != pbx())
                .collect::<Vec<_>>();
            assert_eq!(holds.len(), 1);
            assert!(holds[0].text.contains("a=sendonly\r\n"));
            let (cons_b, cons_c) = (legs[2], legs[3]);
            assert_eq!(
                (cons_b.leg.as_str(), cons_c.leg.as_str()),
                ("consultation", "consultation")
            );
            assert_eq!(cons_b.expected_direction, "internal");
            // RFC 3891 §6.1 in the Refer-To: B's consultation dialog, escaped (RFC 3261 §19.1.1).
            let cd = g.dialog(cons_b);
            let tags = |m: &Sip| {
                let msg = m.msg();
                (
                    msg.from().unwrap().tag.unwrap().to_string(),
                    msg.to().unwrap().tag.map(str::to_string),
                )
            };
            let b_tag = tags(cd[0]).0;
            let pbx_tag = cd.iter().find_map(|m| tags(m).1).unwrap();
            let want = format!(
                "?Replaces={}%3Bto-tag%3D{pbx_tag}%3Bfrom-tag%3D{b_tag}>",
                cons_b.sip_call_id.replace('@', "%40")
            );
            assert!(refer_to.ends_with(&want), "{refer_to} / {want}");
            // The new leg Replaces the PBX → C consultation dialog; C BYEs it (RFC 3891 §3).
            let cd = g.dialog(cons_c);
            let pbx_tag = tags(cd[0]).0;
            let c_tag = cd.iter().find_map(|m| tags(m).1).unwrap();
            assert_eq!(
                inv.header("Replaces").unwrap(),
                format!("{};to-tag={c_tag};from-tag={pbx_tag}", cons_c.sip_call_id)
            );
            let bye = cd.iter().find(|m| m.is_request("BYE")).unwrap();
            assert_ne!(bye.src, pbx(), "C ends the replaced dialog");
            assert!(target.link_evidence.iter().any(|e| e == "replaces"));
        }
    }
}

#[test]
fn forward_external_carries_diversion_and_history_info() {
    let g = capture(Scenario::ForwardExternal);
    for conv in &g.truth.conversations {
        let [a, b] = [g.leg(&conv.legs[0]), g.leg(&conv.legs[1])];
        assert_eq!(a.expected_direction, "inbound");
        assert_eq!(b.expected_direction, "external-to-external");
        assert_eq!(b.parties_internal, [false, false]);
        assert_eq!(conv.direction, "external-to-external");
        assert_eq!(
            (a.segment.as_str(), b.segment.as_str()),
            ("carrier", "carrier")
        );
        let inv = g.invite(b);
        assert_eq!(b.caller_user, a.caller_user, "From is the original caller");
        assert!(b.callee_user.starts_with("+447700900"));
        let ddi = &a.callee_user;
        // RFC 5806 §3 and RFC 7044 §4.
        assert_eq!(
            inv.header("Diversion").unwrap(),
            format!("<sip:{ddi}@{PBX_IP}>;reason=unconditional;counter=1")
        );
        let hi = inv.header("History-Info").unwrap();
        let entries: Vec<&str> = hi.split(',').collect();
        assert_eq!(entries.len(), 2, "{hi}");
        assert!(
            entries[0].starts_with(&format!("<sip:{ddi}@")) && entries[0].ends_with(";index=1")
        );
        assert!(entries[1].contains(&b.callee_user) && entries[1].contains(";index=1.1"));
        for e in ["header:Diversion", "header:History-Info"] {
            assert!(b.link_evidence.iter().any(|x| x == e));
        }
        assert!(g.dialog(a).iter().all(|m| m.header("Diversion").is_none()));
    }
}

#[test]
fn pickup_cancels_the_ringing_phone_and_answers_the_picker() {
    let g = capture(Scenario::Pickup);
    for conv in &g.truth.conversations {
        let legs: Vec<&CallTruth> = conv.legs.iter().map(|id| g.leg(id)).collect();
        let [ext, x, y] = [legs[0], legs[1], legs[2]];
        assert!(!x.answered && x.final_status == 487 && !x.sees_both_parties);
        assert_eq!(y.leg, "pickup");
        assert_eq!(
            y.parties_internal,
            [false, true],
            "the external caller called"
        );
        assert_eq!(y.expected_direction, "inbound");
        assert_eq!(conv.people[1], x.callee_user);
        assert_eq!(conv.final_people[1], y.caller_user);
        let xd = g.dialog(x);
        let firsts: Vec<&str> = xd.iter().map(|m| m.text.lines().next().unwrap()).collect();
        assert!(firsts.contains(&"SIP/2.0 180 Ringing"));
        let cancel = xd.iter().find(|m| m.is_request("CANCEL")).expect("CANCEL");
        assert_eq!(cancel.src, pbx());
        assert!(cancel.header("Reason").unwrap().contains("cause=200"));
        assert!(firsts.iter().any(|l| l.starts_with("SIP/2.0 487")));
        let inv = g.invite(y);
        let ok = g
            .dialog(y)
            .into_iter()
            .find(|m| m.text.starts_with("SIP/2.0 200") && m.msg().sdp_body().is_some())
            .unwrap();
        assert_eq!(
            ok.header("P-Asserted-Identity").map(user_of),
            Some(conv.people[0].as_str()),
            "the PBX names the caller Y picked up"
        );
        // The carrier leg is answered only once Y has the call.
        assert!(y.answer_ns.unwrap() < ext.answer_ns.unwrap());
        assert!(
            inv.t
                > xd.iter()
                    .find(|m| m.text.starts_with("SIP/2.0 180"))
                    .unwrap()
                    .t
        );
        if conv.id % 2 == 0 {
            assert_eq!(
                inv.request_uri(),
                Some(format!("sip:{GROUP_PICKUP}@{PBX_IP}").as_str())
            );
            assert!(inv.header("Replaces").is_none());
            assert!(y.link_evidence.iter().any(|e| e == "feature-code"));
        } else {
            // RFC 3891 §6.1: the early dialog PBX → X as the PBX sees it, early-only.
            let msg = xd[0].msg();
            let pbx_tag = msg.from().unwrap().tag.unwrap();
            let x_tag = xd.iter().find_map(|m| m.msg().to().unwrap().tag).unwrap();
            assert_eq!(
                inv.header("Replaces").unwrap(),
                format!(
                    "{};to-tag={pbx_tag};from-tag={x_tag};early-only",
                    x.sip_call_id
                )
            );
            assert_eq!(user_of(inv.request_uri().unwrap()), x.callee_user);
            assert!(y.link_evidence.iter().any(|e| e == "replaces"));
        }
    }
}

/// Linear samples of a G.711 payload.
fn pcm(pt: u8, payload: &[u8]) -> Vec<f64> {
    payload
        .iter()
        .map(|&b| {
            f64::from(if pt == 8 {
                alaw_to_linear(b)
            } else {
                ulaw_to_linear(b)
            })
        })
        .collect()
}

/// The PBX relays: every packet it sends has the payload bytes of a packet it received on the
/// bridged leg a moment before, with the same SSRC, sequence number and timestamp when the
/// truth says it relays SSRCs, else with its own SSRC; and every channel carries the tone the
/// truth gives it.
#[test]
fn the_relayed_audio_is_the_same_bytes_and_the_right_tone() {
    for s in Scenario::PBX {
        let g = capture(s);
        let map = g.media_map();
        let side_of = |u: &Udp| {
            map.get(&(u.src, u.sport))
                .cloned()
                .unwrap_or_else(|| panic!("{s:?}: RTP from {}:{} in no SDP", u.src, u.sport))
        };
        let mut origins: Vec<&Udp> = g.rtp.iter().filter(|u| u.src != pbx()).collect();
        origins.sort_by_key(|u| u.t);
        let mut relayed_from: HashMap<String, usize> = HashMap::new();
        let mut origin_ssrcs: HashMap<u32, String> = HashMap::new();
        for o in &origins {
            let ssrc = u32::from_be_bytes(o.payload[8..12].try_into().unwrap());
            origin_ssrcs.insert(ssrc, side_of(o).0);
        }
        for p in g.rtp.iter().filter(|u| u.src == pbx()) {
            let (leg_id, _) = side_of(p);
            let leg = g.leg(&leg_id);
            let conv = g.conv(leg);
            let lo = origins.partition_point(|o| o.t + 700_000 < p.t);
            let hi = origins.partition_point(|o| o.t + 100_000 <= p.t);
            let src = origins[lo..hi]
                .iter()
                .find(|o| {
                    o.payload[12..] == p.payload[12..]
                        && conv.legs.contains(&side_of(o).0)
                        && side_of(o).0 != leg_id
                })
                .unwrap_or_else(|| panic!("{s:?}: relayed packet with no source on {leg_id}"));
            *relayed_from.entry(side_of(src).0).or_default() += 1;
            let ssrc = u32::from_be_bytes(p.payload[8..12].try_into().unwrap());
            if conv.relays_ssrc {
                assert_eq!(p.payload[..12], src.payload[..12], "{s:?} header relayed");
            } else {
                assert!(!origin_ssrcs.contains_key(&ssrc), "{s:?} SSRC rewritten");
            }
            if leg.link_evidence.iter().any(|e| e == "media:ssrc") {
                let from = &origin_ssrcs[&ssrc];
                assert!(
                    conv.legs.iter().position(|l| l == from)
                        < conv.legs.iter().position(|l| *l == leg_id)
                );
            }
        }
        // Without a transfer, every packet a person sends reaches the other leg.
        if matches!(
            s,
            Scenario::PbxOutbound | Scenario::PbxInbound | Scenario::ForwardExternal
        ) {
            for o in &origins {
                let id = side_of(o).0;
                let conv = g.conv(g.leg(&id));
                let bridged = conv
                    .talk_spans_ns
                    .iter()
                    .any(|sp| o.t > sp[0] + 2_000_000 && o.t + 2_000_000 < sp[1]);
                assert!(!bridged || relayed_from.contains_key(&id));
            }
            let n_relayed: usize = relayed_from.values().sum();
            assert_eq!(n_relayed, g.rtp.len() - origins.len());
        }

        // Every hole in a channel (after the answer, to the BYE) is a silent span of the truth.
        let mut arrivals: HashMap<(String, usize), Vec<u64>> = HashMap::new();
        for u in &g.rtp {
            arrivals.entry(side_of(u)).or_default().push(u.t);
        }
        for ((id, side), mut ts) in arrivals {
            let c = g.leg(&id);
            let channel = if side == 0 { "left" } else { "right" };
            ts.sort_unstable();
            ts.push(c.end_ns);
            let a = c.answer_ns.unwrap();
            for w in ts.windows(2).filter(|w| w[1] - w[0] > 100_000_000) {
                let (from, to) = ((w[0] - a) as f64 / 1e9, (w[1] - a) as f64 / 1e9);
                assert!(
                    c.silent_spans.iter().any(|sp| sp.channel == channel
                        && sp.from_secs < from + 0.03
                        && sp.to_secs > to - 0.03),
                    "{s:?} {id} {channel}: no silent span for {from:.3}..{to:.3}"
                );
            }
        }

        // Tones: each channel, every fifth packet, against every other tone of its
        // conversation.
        let mut conv_tones: HashMap<usize, HashSet<u64>> = HashMap::new();
        for c in &g.truth.calls {
            let set = conv_tones.entry(c.conversation.unwrap()).or_default();
            set.extend([c.caller_tone_hz as u64, c.callee_tone_hz as u64]);
            set.extend(c.tone_spans.iter().map(|t| t.hz as u64));
        }
        for (k, u) in g.rtp.iter().enumerate().filter(|(k, _)| k % 5 == 0) {
            let _ = k;
            let (id, side) = side_of(u);
            let c = g.leg(&id);
            let rel = (u.t as f64 - c.answer_ns.unwrap() as f64) / 1e9;
            let channel = if side == 0 { "left" } else { "right" };
            let want = c
                .tone_spans
                .iter()
                .find(|t| {
                    t.channel == channel && rel >= t.from_secs - 0.01 && rel < t.to_secs + 0.01
                })
                .map(|t| t.hz)
                .unwrap_or(if side == 0 {
                    c.caller_tone_hz
                } else {
                    c.callee_tone_hz
                });
            assert!(
                !c.silent_spans.iter().any(|sp| sp.channel == channel
                    && rel > sp.from_secs + 0.01
                    && rel < sp.to_secs - 0.01),
                "{s:?}: audio in a silent span"
            );
            let x = pcm(u.payload[1] & 0x7F, &u.payload[12..]);
            let pw = goertzel_power(&x, want);
            for &o in &conv_tones[&c.conversation.unwrap()] {
                if o as f64 != want {
                    let po = goertzel_power(&x, o as f64);
                    assert!(pw > 50.0 * po, "{s:?} {id} {channel}: {want} Hz vs {o} Hz");
                }
            }
        }
    }
}

#[test]
fn pbx_scenario_names_serde_and_cli_agree() {
    use clap::ValueEnum;
    let names: Vec<String> = Scenario::PBX
        .iter()
        .map(|s| s.to_possible_value().unwrap().get_name().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "pbx-outbound",
            "pbx-inbound",
            "blind-transfer",
            "attended-transfer",
            "forward-external",
            "pickup"
        ]
    );
    for (s, cli) in Scenario::PBX.iter().zip(&names) {
        assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{cli}\""));
        assert!(s.is_pbx());
    }
    for m in [Mirror::Phones, Mirror::Carrier, Mirror::Both] {
        let cli = m.to_possible_value().unwrap().get_name().to_string();
        assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{cli}\""));
    }
    // A config written before the mirror existed still reads, mirrored everywhere.
    let mut old = serde_json::to_value(GenConfig::new(Scenario::Pickup)).unwrap();
    old.as_object_mut().unwrap().remove("mirror");
    let back: GenConfig = serde_json::from_value(old).unwrap();
    assert_eq!(back.mirror, Mirror::Both);
    assert!(!Scenario::Matrix.is_pbx());
}

/// The mirror keeps exactly its legs: frames, truth and conversations.
#[test]
fn the_mirror_keeps_exactly_its_legs() {
    for s in Scenario::PBX {
        let both = capture(s);
        let mut total = 0;
        for mirror in [Mirror::Phones, Mirror::Carrier] {
            let part = gen_with(s, |c| c.mirror = mirror);
            check_truth_consistency(&part.cfg, &part.frames, &part.truth);
            let segment = if mirror == Mirror::Phones {
                "phones"
            } else {
                "carrier"
            };
            let want: Vec<&CallTruth> = both
                .truth
                .calls
                .iter()
                .filter(|c| c.segment == segment)
                .collect();
            assert_eq!(
                serde_json::to_string(&want).unwrap(),
                serde_json::to_string(&part.truth.calls).unwrap(),
                "{s:?} {mirror:?}"
            );
            for (pc, bc) in part
                .truth
                .conversations
                .iter()
                .zip(&both.truth.conversations)
            {
                let legs: Vec<&String> = bc
                    .legs
                    .iter()
                    .filter(|id| want.iter().any(|c| c.sip_call_id == **id))
                    .collect();
                assert_eq!(pc.legs.iter().collect::<Vec<_>>(), legs);
                assert_eq!(
                    (&pc.people, pc.recorded_secs),
                    (&bc.people, bc.recorded_secs)
                );
            }
            // Frame for frame, the mirrored part of the whole.
            let mut rest = both.frames.iter();
            for f in &part.frames {
                assert!(
                    rest.any(|b| b == f),
                    "{s:?} {mirror:?}: a frame not in the whole"
                );
            }
            // Nothing from the other side of the PBX.
            let phone = |ip: IpAddr| matches!(ip, IpAddr::V4(a) if a.octets()[..2] == [10, 1]);
            let cap = decode_capture(&part.frames);
            for u in &cap.udp {
                let outside = u.src != pbx() && !phone(u.src);
                assert!(
                    if mirror == Mirror::Phones {
                        !outside
                    } else {
                        !phone(u.src)
                    },
                    "{s:?} {mirror:?}: a frame from {}",
                    u.src
                );
            }
            total += part.frames.len();
        }
        assert_eq!(total, both.frames.len(), "{s:?}: phones + carrier = both");
    }
}

/// `--codec` and `--srtp` change the media only; with SRTP every leg has its own keys and the
/// relayed packets decrypt to the payload their source sent.
#[test]
fn codec_and_srtp_change_only_the_media() {
    use voxtap_core::media::srtp::{CryptoAttr, SrtpContext};
    let times = |g: &Gen| g.frames.iter().map(|f| f.ts_ns).collect::<Vec<_>>();
    let ids = |g: &Gen| {
        g.truth
            .calls
            .iter()
            .map(|c| (c.sip_call_id.clone(), c.link_evidence.clone()))
            .collect::<Vec<_>>()
    };
    for s in [Scenario::PbxOutbound, Scenario::AttendedTransfer] {
        let plain = capture(s);
        if Codec::G722.encoder_available().is_ok() {
            let g722 = gen_with(s, |c| c.codec = Some(Codec::G722));
            assert_eq!(times(&plain), times(&g722), "{s:?}");
            assert_eq!(ids(&plain), ids(&g722));
            assert!(
                g722.truth
                    .calls
                    .iter()
                    .all(|c| c.codec == "G722" && c.record_rate == 16000)
            );
        } else {
            skipped("no G.722 encoder in this build");
        }
        let srtp = gen_with(s, |c| c.srtp = true);
        assert_eq!(times(&plain), times(&srtp), "{s:?}");
        assert_eq!(ids(&plain), ids(&srtp));
        check_dialogs(s, &srtp.msgs);
        // Each side's key from its SDP: the offer's line the answer picked, the answer's.
        let mut ctx: HashMap<(IpAddr, u16), SrtpContext> = HashMap::new();
        let mut keys = HashSet::new();
        for c in &srtp.truth.calls {
            assert_eq!(c.security, "sdes-srtp");
            let d = srtp.dialog(c);
            let answer_line = d
                .iter()
                .find(|m| m.text.starts_with("SIP/2.0 200") && m.msg().sdp_body().is_some())
                .map(|m| crate::tests::sdp_lines(&m.text, "a=crypto:")[0].to_string())
                .unwrap();
            let answer = CryptoAttr::parse(&answer_line).unwrap();
            let offer = crate::tests::sdp_lines(&d[0].text, "a=crypto:")
                .into_iter()
                .map(|l| CryptoAttr::parse(l).unwrap())
                .find(|a| a.tag == answer.tag)
                .unwrap();
            for (attr, m) in [
                (&offer, d[0]),
                (
                    &answer,
                    *d.iter()
                        .find(|m| m.text.starts_with("SIP/2.0 200"))
                        .unwrap(),
                ),
            ] {
                assert!(keys.insert(attr.keys[0].key.clone()), "a key used twice");
                let sdp = std::str::from_utf8(m.msg().sdp_body().unwrap())
                    .unwrap()
                    .to_string();
                let ip: IpAddr = sdp
                    .lines()
                    .find_map(|l| l.strip_prefix("c=IN IP4 "))
                    .unwrap()
                    .parse()
                    .unwrap();
                let port: u16 = sdp
                    .lines()
                    .find_map(|l| l.strip_prefix("m=audio "))
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                ctx.insert((ip, port), SrtpContext::new(attr).unwrap());
            }
        }
        let mut plain_of: Vec<(u64, IpAddr, Vec<u8>)> = Vec::new();
        let mut out = Vec::new();
        for u in &srtp.rtp {
            let c = ctx
                .get_mut(&(u.src, u.sport))
                .expect("a key for every sender");
            c.unprotect_rtp(&u.payload, &mut out)
                .expect("authenticates");
            plain_of.push((u.t, u.src, out[12..].to_vec()));
        }
        // The plaintext the PBX relays is what the other leg's device sent.
        let unrelayed = plain_of
            .iter()
            .filter(|p| p.1 == pbx())
            .filter(|p| {
                !plain_of
                    .iter()
                    .any(|o| o.1 != pbx() && o.0 < p.0 && p.0 - o.0 < 700_000 && o.2 == p.2)
            })
            .count();
        assert_eq!(unrelayed, 0, "{s:?}");
    }
}

/// tshark sees every dialog of one capture of each scenario, with its methods.
#[test]
fn tshark_sees_the_dialogs() {
    if std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .is_err()
    {
        skipped("tshark is not installed: the PBX captures were not checked with it");
        return;
    }
    let dir = std::env::temp_dir().join(format!("voxtap-gen-pbx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for s in Scenario::PBX {
        let g = capture(s);
        let path = dir.join("pbx.pcap");
        crate::write_pcap(&path, &g.frames).unwrap();
        let out = std::process::Command::new("tshark")
            .args(["-r"])
            .arg(&path)
            .args([
                "-Y",
                "sip",
                "-T",
                "fields",
                "-e",
                "sip.Call-ID",
                "-e",
                "sip.Method",
            ])
            .output()
            .expect("run tshark");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut methods: HashMap<String, HashSet<String>> = HashMap::new();
        let mut lines = 0;
        for l in text.lines() {
            let mut f = l.split('\t');
            let id = f.next().unwrap_or("").to_string();
            let m = f.next().unwrap_or("").to_string();
            methods.entry(id).or_default().insert(m);
            lines += 1;
        }
        assert_eq!(lines, g.msgs.len(), "{s:?}: tshark sees every SIP message");
        let ids: HashSet<&String> = methods.keys().collect();
        let want: HashSet<&String> = g.truth.calls.iter().map(|c| &c.sip_call_id).collect();
        assert_eq!(ids, want, "{s:?}");
        for c in &g.truth.calls {
            let m = &methods[&c.sip_call_id];
            assert!(m.contains("INVITE"), "{s:?}");
            assert_eq!(m.contains("BYE"), c.answered);
            assert_eq!(m.contains("CANCEL"), !c.answered);
        }
        let all: HashSet<&String> = methods.values().flatten().collect();
        let transfer = matches!(s, Scenario::BlindTransfer | Scenario::AttendedTransfer);
        for m in ["REFER", "NOTIFY"] {
            assert_eq!(all.contains(&m.to_string()), transfer, "{s:?} {m}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
