//! Conversations through a PBX: a B2BUA that terminates every leg, anchors the media on its own
//! ports and relays the audio between the legs it bridges.
//!
//! Addresses: the PBX is 10.0.0.1 (`User-Agent: Asterisk PBX 18.0.0`); phones are 10.1.x.x with
//! extensions 1NNNN and 2NNNN (a phone's address follows from its extension, see
//! [`phone_ip`]); the carrier's SBC signals from 192.0.2.1 and its media gateways send from
//! 198.51.100.x. Our tenant's DDIs are `+3491555NNNN`; outside parties have E.164 numbers
//! (`+34912...` callers, `+4420...` called numbers, `+447700900NNN` mobiles).
//!
//! Each conversation is planned as legs (one SIP dialog each, always with the PBX at one end),
//! the spans in which each leg's far device sends audio, and the spans in which the PBX bridges
//! two legs. Every person keeps their tone across the legs: the PBX relays the payload bytes
//! unchanged (no transcoding), with the SSRC, sequence number and timestamp kept on even
//! conversations and its own on odd ones. With SRTP every leg has its own SDES keys, so the
//! relayed payloads are the same plaintext under different keys.

use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;

use voxtap_core::media::srtp::SrtpContext;

use crate::call::{Emitter, KeyEpoch, MS, US};
use crate::codec::PayloadEncoder;
use crate::rng::Rng;
use crate::rtp::{self, Codec, PACKET_NS, RtpHeader};
use crate::scenario::{SDES_OFFER, talk_ns};
use crate::sip::{Direction, Msg, Sdp, Security};
use crate::{
    CallTruth, ConversationTruth, Frame, GenConfig, GenError, Mirror, Scenario, SilentSpan,
    ToneSpan,
};

/// The PBX (B2BUA): signalling on 5060, media on its own ports.
pub const PBX_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The carrier's SBC: the trunk's signalling, both ways.
pub const SBC_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const PBX_AGENT: &str = "Asterisk PBX 18.0.0";
pub const PHONE_AGENT: &str = "Yealink SIP-T46U 108.86.0.90";
pub const SBC_AGENT: &str = "voxtap-gen carrier SBC";
/// The PBX's group pickup feature code.
pub const GROUP_PICKUP: &str = "*8";
/// RFC 7989 §4.1: the UUID of a peer not yet known.
pub const NULL_UUID: &str = "00000000000000000000000000000000";

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO, UPDATE";

const UAC: usize = 0;
const UAS: usize = 1;

/// Legs per conversation of `scenario` that a capture mirrored at `mirror` holds.
pub fn legs_per_conversation(scenario: Scenario, mirror: Mirror) -> usize {
    // (phone ↔ PBX legs, PBX ↔ carrier legs)
    let (phones, carrier) = match scenario {
        Scenario::PbxOutbound | Scenario::PbxInbound => (1, 1),
        Scenario::BlindTransfer | Scenario::Pickup => (2, 1),
        Scenario::AttendedTransfer => (4, 1),
        Scenario::ForwardExternal => (0, 2),
        _ => (0, 0),
    };
    match mirror {
        Mirror::Phones => phones,
        Mirror::Carrier => carrier,
        Mirror::Both => phones + carrier,
    }
}

/// The address of the phone with extension `ext` (`1NNNN` → 10.1.1-40.x, `2NNNN` →
/// 10.1.101-140.x).
pub fn phone_ip(ext: &str) -> Ipv4Addr {
    let n: usize = ext.get(1..).and_then(|s| s.parse().ok()).unwrap_or(0);
    let base = if ext.starts_with('2') { 101 } else { 1 };
    Ipv4Addr::new(10, 1, (base + n / 250) as u8, (1 + n % 250) as u8)
}

/// The direction of a call between a calling and a called party, ours or not.
pub fn direction(internal: [bool; 2]) -> &'static str {
    match internal {
        [true, true] => "internal",
        [true, false] => "outbound",
        [false, true] => "inbound",
        [false, false] => "external-to-external",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    Phone,
    Pbx,
    Carrier,
}

/// One end of a leg's signalling.
#[derive(Clone, Copy, Debug)]
struct Node {
    ip: Ipv4Addr,
    net: Net,
}

impl Node {
    fn pbx() -> Node {
        Node {
            ip: PBX_IP,
            net: Net::Pbx,
        }
    }

    fn sbc() -> Node {
        Node {
            ip: SBC_IP,
            net: Net::Carrier,
        }
    }

    fn phone(ext: &str) -> Node {
        Node {
            ip: phone_ip(ext),
            net: Net::Phone,
        }
    }

    fn agent(self) -> &'static str {
        match self.net {
            Net::Phone => PHONE_AGENT,
            Net::Pbx => PBX_AGENT,
            Net::Carrier => SBC_AGENT,
        }
    }

    fn sig(self) -> SocketAddr {
        SocketAddr::new(self.ip.into(), 5060)
    }
}

/// A person: their number as they are known, their tone.
struct Person {
    number: String,
    tone_hz: f64,
}

/// A client transaction: what its responses echo.
#[derive(Clone)]
struct Txn {
    /// The side that sent the request.
    by: usize,
    branch: String,
    cseq: u32,
    method: &'static str,
}

/// One leg: a SIP dialog between the PBX and a phone or the carrier, its media and its facts.
struct Leg {
    label: &'static str,
    call_id: String,
    /// [From tag, To tag].
    tags: [String; 2],
    nodes: [Node; 2],
    ruri: String,
    from_display: Option<String>,
    /// [From URI, To URI].
    uris: [String; 2],
    /// [From user, To user], for the truth.
    users: [String; 2],
    contacts: [String; 2],
    /// The last CSeq number each side used (RFC 3261 §12.2.1.1: each side counts its own).
    cseq: [u32; 2],
    invite: Option<Txn>,
    /// `X-CID` on every message the PBX sends on this leg (the Homer correlation convention).
    x_cid: Option<String>,
    /// RFC 7989 UUIDs: [the calling side's, the called side's].
    session_id: Option<[String; 2]>,
    /// Whether the called side's UUID has been sent in this leg.
    called_uuid_sent: bool,
    /// Media addresses, [UAC, UAS].
    media: [SocketAddr; 2],
    /// SDP (session id, version) per side.
    sdp: [(u64, u64); 2],
    keys: Option<KeyEpoch>,
    em: Emitter,
    t_invite: u64,
    t_answer: Option<u64>,
    t_end: u64,
    status: u16,
    /// The person whose audio each side sends when the leg is set up ([UAC, UAS]).
    persons: [usize; 2],
    /// Whether the calling / called person is ours, in the order of the call.
    parties: [bool; 2],
    evidence: Vec<&'static str>,
    /// What the leg's RTP carried per side: (nominal send time, person).
    sent: [Vec<(u64, usize)>; 2],
}

impl Leg {
    /// The side that is not the PBX.
    fn far(&self) -> usize {
        if self.nodes[UAC].net == Net::Pbx {
            UAS
        } else {
            UAC
        }
    }

    fn segment(&self) -> &'static str {
        if self.nodes.iter().any(|n| n.net == Net::Phone) {
            "phones"
        } else {
            "carrier"
        }
    }

    /// The From (side 0) or To (side 1) name-addr.
    fn name_addr(&self, side: usize, tagged: bool) -> String {
        let uri = &self.uris[side];
        let mut s = match (&self.from_display, side) {
            (Some(d), UAC) => format!("\"{d}\" <{uri}>"),
            _ => format!("<{uri}>"),
        };
        if tagged {
            s.push_str(";tag=");
            s.push_str(&self.tags[side]);
        }
        s
    }

    fn via(&self, side: usize, branch: &str) -> String {
        format!(
            "SIP/2.0/UDP {}:5060;branch={branch};rport",
            self.nodes[side].ip
        )
    }

    /// The headers every message of `side` carries after CSeq.
    fn decorate(&mut self, mut m: Msg, side: usize, request: bool, null_local: bool) -> Msg {
        m = m.header(
            if request { "User-Agent" } else { "Server" },
            self.nodes[side].agent(),
        );
        if self.nodes[side].net == Net::Pbx
            && let Some(id) = &self.x_cid
        {
            m = m.header("X-CID", id.clone());
        }
        if let Some([calling, called]) = &self.session_id {
            // RFC 7989 §6, §7: each side sends its own UUID first and the peer's as remote, the
            // null UUID while it is unknown; the PBX passes both through from leg to leg.
            let called_known = self.called_uuid_sent;
            let v = if side == UAC {
                let remote = if called_known { called } else { NULL_UUID };
                format!("{calling};remote={remote}")
            } else {
                let local = if null_local { NULL_UUID } else { called };
                format!("{local};remote={calling}")
            };
            if side == UAS && !null_local {
                self.called_uuid_sent = true;
            }
            m = m.header("Session-ID", v);
        }
        m
    }

    /// A request from `side`: the initial INVITE (to the Request-URI, no To tag) or one within
    /// the dialog (to the peer's Contact).
    fn request(&mut self, rng: &mut Rng, side: usize, method: &'static str) -> (Msg, Txn) {
        let initial = self.invite.is_none();
        let branch = branch(rng, self.nodes[side].net);
        self.cseq[side] += 1;
        let cseq = self.cseq[side];
        let uri = if initial {
            self.ruri.clone()
        } else {
            self.contacts[1 - side].clone()
        };
        let m = Msg::request(method, &uri)
            .header("Via", self.via(side, &branch))
            .header("Max-Forwards", "70")
            .header("From", self.name_addr(side, true))
            .header("To", self.name_addr(1 - side, !initial))
            .header("Call-ID", self.call_id.clone())
            .header("CSeq", format!("{cseq} {method}"));
        let m = self.decorate(m, side, true, false);
        let txn = Txn {
            by: side,
            branch,
            cseq,
            method,
        };
        (m, txn)
    }

    /// A response to `txn` from the other side.
    fn response(&mut self, txn: &Txn, code: u16, reason: &str, null_local: bool) -> Msg {
        let side = 1 - txn.by;
        let to_tagged = code > 100 || txn.by == UAS;
        let (from, to) = if txn.by == UAC {
            (self.name_addr(UAC, true), self.name_addr(UAS, to_tagged))
        } else {
            (self.name_addr(UAS, true), self.name_addr(UAC, true))
        };
        let m = Msg::response(code, reason)
            .header(
                "Via",
                format!(
                    "SIP/2.0/UDP {}:5060;branch={};rport=5060",
                    self.nodes[txn.by].ip, txn.branch
                ),
            )
            .header("From", from)
            .header("To", to)
            .header("Call-ID", self.call_id.clone())
            .header("CSeq", format!("{} {}", txn.cseq, txn.method));
        self.decorate(m, side, false, null_local)
    }

    fn send(&mut self, t: u64, side: usize, m: &Msg) {
        let data = m.render();
        let (from, to) = (self.nodes[side].sig(), self.nodes[1 - side].sig());
        self.em.udp(t, from, to, &data, false);
    }

    fn contact(&self, side: usize) -> String {
        format!("<{}>", self.contacts[side])
    }

    /// `side`'s SDP; `initial_offer`: the caller's first offer, which lists every SDES suite.
    fn sdp(&self, side: usize, dir: Direction, initial_offer: bool, codec: Codec) -> String {
        let security = match &self.keys {
            None => Security::Plain,
            Some(k) if side == UAC && initial_offer => {
                Security::Sdes(k.offer.iter().map(|a| a.to_string()).collect())
            }
            Some(k) if side == UAC => Security::Sdes(vec![k.chosen().to_string()]),
            Some(k) => Security::Sdes(vec![k.answer.to_string()]),
        };
        let user = match self.nodes[side].net {
            Net::Phone => self.users[side].clone(),
            Net::Pbx | Net::Carrier => "-".to_string(),
        };
        Sdp {
            user,
            session_id: self.sdp[side].0,
            version: self.sdp[side].1,
            addr: self.media[side].ip(),
            port: self.media[side].port(),
            codec,
            direction: dir,
            many_codecs: false,
            security,
        }
        .render()
    }

    /// The SRTP context `side` sends with (its own `a=crypto` line, RFC 4568 §6.1).
    fn srtp(&self, side: usize) -> Result<Option<SrtpContext>, GenError> {
        let Some(k) = &self.keys else {
            return Ok(None);
        };
        let attr = if side == UAC { k.chosen() } else { &k.answer };
        SrtpContext::new(attr)
            .map(Some)
            .map_err(|e| GenError::Srtp(e.to_string()))
    }
}

fn branch(rng: &mut Rng, net: Net) -> String {
    // Asterisk's PJSIP stack marks its branches "Pj" after the RFC 3261 magic cookie.
    let pj = if net == Net::Pbx { "Pj" } else { "" };
    format!("z9hG4bK{pj}{}", rng.hex(8))
}

/// A version-4 UUID as RFC 7989 §4.1 writes it: 32 lowercase hex digits.
fn uuid(rng: &mut Rng) -> String {
    let mut b: Vec<u8> = (0..16).map(|_| rng.next_u64() as u8).collect();
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a leg's setup needs to know.
struct LegPlan {
    label: &'static str,
    uac: Node,
    uas: Node,
    ruri: String,
    from_display: Option<String>,
    from: (String, String),
    to: (String, String),
    persons: [usize; 2],
    parties: [bool; 2],
}

/// How the legs of a conversation name each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Correlation {
    None,
    XCid,
    SessionId,
}

impl Correlation {
    fn name(self) -> &'static str {
        match self {
            Correlation::None => "none",
            Correlation::XCid => "x-cid",
            Correlation::SessionId => "session-id",
        }
    }
}

/// Capture-wide allocation: RTP ports, gateways, tones.
struct Ctx {
    codec: Option<Codec>,
    srtp: bool,
    seed: u64,
    pbx_port: u16,
    phone_port: u16,
    carrier_port: u16,
    gateway: u8,
    tone_rng: Rng,
    tones_used: [u32; 61],
    codec_rng: Rng,
    codec_tones_used: [u32; 61],
}

impl Ctx {
    fn port(next: &mut u16) -> u16 {
        let p = *next;
        *next = next.checked_add(2).expect("out of RTP ports");
        p
    }

    /// A tone for a new person of a conversation, apart from `others` (G.711: multiples of
    /// 50 Hz in 300-3000, 100 Hz apart; other codecs: 400-2000, 200 Hz apart and no harmonic of
    /// another), preferring tones used least so far in the capture.
    fn tone(&mut self, codec: Codec, others: &[f64]) -> f64 {
        let (rng, used, (lo, hi), apart) = if codec.is_g711() {
            (&mut self.tone_rng, &mut self.tones_used, (6, 60), 2)
        } else {
            (&mut self.codec_rng, &mut self.codec_tones_used, (8, 40), 4)
        };
        let clash = |a: u64| {
            others.iter().any(|&o| {
                let b = (o / 50.0) as u64;
                a.abs_diff(b) < apart || (apart > 2 && (a.is_multiple_of(b) || b.is_multiple_of(a)))
            })
        };
        let mut best: Option<(u32, u64)> = None;
        for _ in 0..400 {
            let a = rng.range(lo, hi);
            if clash(a) {
                continue;
            }
            let score = used[a as usize];
            if best.is_none_or(|(s, _)| score < s) {
                best = Some((score, a));
            }
            if score == 0 {
                break;
            }
        }
        let (_, a) = best.expect("a tone apart from the others");
        used[a as usize] += 1;
        (a * 50) as f64
    }
}

/// One RTP packet of a conversation, before protection.
struct Pkt {
    /// Capture time.
    t: u64,
    /// When the sender's clock meant to send it (the 20 ms slot).
    nominal: u64,
    hdr: RtpHeader,
    payload: Rc<[u8]>,
    /// SRTP rollover counter of its SSRC (RFC 3711 §3.3.1).
    roc: u32,
    person: usize,
}

/// The PBX's own RTP stream on one leg, when it rewrites what it relays.
struct Restamp {
    ssrc: u32,
    seq: u16,
    ts0: u32,
    roc: u32,
    epoch: Option<u64>,
    prev: Option<u64>,
}

impl Restamp {
    fn new(rng: &mut Rng) -> Restamp {
        Restamp {
            ssrc: rng.next_u32(),
            seq: rng.next_u16(),
            ts0: rng.next_u32(),
            roc: 0,
            epoch: None,
            prev: None,
        }
    }

    /// The header for a packet meant for `nominal`: the timestamp follows the wall clock of
    /// the PBX's stream, the marker opens every talkspurt (RFC 3551 §4.1).
    fn next(&mut self, nominal: u64, payload_type: u8, ticks: u32) -> (RtpHeader, u32) {
        let epoch = *self.epoch.get_or_insert(nominal);
        let slots = (nominal - epoch + PACKET_NS / 2) / PACKET_NS;
        let marker = self
            .prev
            .is_none_or(|p| nominal.saturating_sub(p) > PACKET_NS + 5 * MS);
        self.prev = Some(nominal);
        let hdr = RtpHeader {
            marker,
            payload_type,
            seq: self.seq,
            timestamp: self.ts0.wrapping_add((slots as u32).wrapping_mul(ticks)),
            ssrc: self.ssrc,
        };
        let roc = self.roc;
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.roc = self.roc.wrapping_add(1);
        }
        (hdr, roc)
    }
}

/// One conversation under construction.
struct Conv<'a> {
    id: usize,
    kind: &'static str,
    ctx: &'a mut Ctx,
    rng: Rng,
    krng: Rng,
    codec: Codec,
    people: Vec<Person>,
    legs: Vec<Leg>,
    /// (leg, leg, from, to): the PBX relays between the two legs' media.
    bridges: Vec<(usize, usize, u64, u64)>,
    /// (leg, from, to): the leg's far device sends audio.
    talk: Vec<(usize, u64, u64)>,
    keep_ssrc: bool,
    correlation: Correlation,
    dialled: String,
    /// Index into `people` of the [caller, callee] and of the final [caller, callee].
    people_idx: [usize; 2],
    final_idx: [usize; 2],
}

impl<'a> Conv<'a> {
    fn new(id: usize, kind: &'static str, ctx: &'a mut Ctx) -> Conv<'a> {
        let rng = Rng::derive(ctx.seed, 0xB2B0_0000 + id as u64);
        let krng = Rng::derive(ctx.seed, 0x5EC2_0000 + id as u64);
        let codec = ctx.codec.unwrap_or(if id % 2 == 1 {
            Codec::Pcma
        } else {
            Codec::Pcmu
        });
        Conv {
            id,
            kind,
            ctx,
            rng,
            krng,
            codec,
            people: Vec::new(),
            legs: Vec::new(),
            bridges: Vec::new(),
            talk: Vec::new(),
            keep_ssrc: id.is_multiple_of(2),
            correlation: Correlation::None,
            dialled: String::new(),
            people_idx: [0, 1],
            final_idx: [0, 1],
        }
    }

    fn person(&mut self, number: String) -> usize {
        let others: Vec<f64> = self.people.iter().map(|p| p.tone_hz).collect();
        let tone_hz = self.ctx.tone(self.codec, &others);
        self.people.push(Person { number, tone_hz });
        self.people.len() - 1
    }

    fn ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.range(lo * 1000, hi * 1000) * US
    }

    fn leg(&mut self, p: LegPlan) -> usize {
        let rng = &mut self.rng;
        let call_id = format!("{}@gen.voxtap", rng.hex(12));
        let tags = [rng.hex(4), rng.hex(4)];
        let cseq = [rng.range(1, 8999) as u32, rng.range(1, 8999) as u32];
        let sdp = [
            (rng.range(1_000_000, 9_999_999), 1),
            (rng.range(1_000_000, 9_999_999), 1),
        ];
        let ip_id = rng.next_u16();
        let ctx = &mut *self.ctx;
        let mut media_of = |n: Node| -> SocketAddr {
            match n.net {
                Net::Pbx => SocketAddr::new(PBX_IP.into(), Ctx::port(&mut ctx.pbx_port)),
                Net::Phone => SocketAddr::new(n.ip.into(), Ctx::port(&mut ctx.phone_port)),
                Net::Carrier => {
                    // The carrier's media gateways, one per leg, behind its SBC.
                    let gw = Ipv4Addr::new(198, 51, 100, 10 + ctx.gateway % 240);
                    ctx.gateway = ctx.gateway.wrapping_add(1);
                    SocketAddr::new(gw.into(), Ctx::port(&mut ctx.carrier_port))
                }
            }
        };
        let media = [media_of(p.uac), media_of(p.uas)];
        let keys = if self.ctx.srtp {
            KeyEpoch::new(&SDES_OFFER, 0, &mut self.krng).ok()
        } else {
            None
        };
        let contact = |n: Node, user: &str| format!("sip:{user}@{}:5060", n.ip);
        self.legs.push(Leg {
            label: p.label,
            call_id,
            tags,
            nodes: [p.uac, p.uas],
            ruri: p.ruri,
            from_display: p.from_display,
            uris: [
                format!("sip:{}@{}", p.from.0, p.from.1),
                format!("sip:{}@{}", p.to.0, p.to.1),
            ],
            contacts: [contact(p.uac, &p.from.0), contact(p.uas, &p.to.0)],
            users: [p.from.0, p.to.0],
            cseq: [cseq[0] - 1, cseq[1] - 1],
            invite: None,
            x_cid: None,
            session_id: None,
            called_uuid_sent: false,
            media,
            sdp,
            keys,
            em: Emitter {
                frames: Vec::new(),
                tags: Vec::new(),
                ip_id,
            },
            t_invite: 0,
            t_answer: None,
            t_end: 0,
            status: 0,
            persons: p.persons,
            parties: p.parties,
            evidence: Vec::new(),
            sent: [Vec::new(), Vec::new()],
        });
        self.legs.len() - 1
    }

    // ---- SIP transactions ----------------------------------------------------------------

    fn invite(&mut self, l: usize, t: u64, extra: &[(&str, String)]) {
        let codec = self.codec;
        let leg = &mut self.legs[l];
        let (mut m, txn) = leg.request(&mut self.rng, UAC, "INVITE");
        m = m
            .header("Contact", leg.contact(UAC))
            .header("Allow", ALLOW)
            .header("Supported", "replaces, timer");
        for (n, v) in extra {
            m = m.header(n, v.clone());
        }
        let m = m.sdp(leg.sdp(UAC, Direction::SendRecv, true, codec));
        leg.send(t, UAC, &m);
        leg.invite = Some(txn);
        leg.t_invite = t;
    }

    fn invite_txn(&self, l: usize) -> Txn {
        self.legs[l].invite.clone().expect("INVITE sent")
    }

    fn trying(&mut self, l: usize, t: u64) {
        let txn = self.invite_txn(l);
        let leg = &mut self.legs[l];
        // The PBX answers 100 before the far end is reached: it knows no called UUID yet.
        let null_local = leg.nodes[UAS].net == Net::Pbx;
        let m = leg.response(&txn, 100, "Trying", null_local);
        leg.send(t, UAS, &m);
    }

    fn ringing(&mut self, l: usize, t: u64) {
        let txn = self.invite_txn(l);
        let leg = &mut self.legs[l];
        let m = leg
            .response(&txn, 180, "Ringing", false)
            .header("Contact", leg.contact(UAS));
        leg.send(t, UAS, &m);
    }

    fn answer(&mut self, l: usize, t: u64) {
        self.answer_with(l, t, &[]);
    }

    fn answer_with(&mut self, l: usize, t: u64, extra: &[(&str, String)]) {
        let txn = self.invite_txn(l);
        let codec = self.codec;
        let leg = &mut self.legs[l];
        let mut m = leg
            .response(&txn, 200, "OK", false)
            .header("Contact", leg.contact(UAS))
            .header("Allow", ALLOW)
            .header("Supported", "replaces, timer");
        for (n, v) in extra {
            m = m.header(n, v.clone());
        }
        let m = m.sdp(leg.sdp(UAS, Direction::SendRecv, false, codec));
        leg.send(t, UAS, &m);
        leg.t_answer = Some(t);
        leg.status = 200;
    }

    /// RFC 3261 §13.2.2.4: the ACK of a 2xx is its own transaction to the peer's Contact.
    fn ack(&mut self, l: usize, t: u64, txn: &Txn) {
        let leg = &mut self.legs[l];
        let b = branch(&mut self.rng, leg.nodes[txn.by].net);
        let m = Msg::request("ACK", &leg.contacts[1 - txn.by])
            .header("Via", leg.via(txn.by, &b))
            .header("Max-Forwards", "70")
            .header("From", leg.name_addr(txn.by, true))
            .header("To", leg.name_addr(1 - txn.by, true))
            .header("Call-ID", leg.call_id.clone())
            .header("CSeq", format!("{} ACK", txn.cseq));
        let m = leg.decorate(m, txn.by, true, false);
        leg.send(t, txn.by, &m);
    }

    fn ack_invite(&mut self, l: usize, t: u64) {
        let txn = self.invite_txn(l);
        self.ack(l, t, &txn);
    }

    /// The far end of `far` rings and answers after `ring`; the PBX relays the ringing and
    /// answers `near` once `far` is up. Returns (near's answer, far's answer).
    fn connect(&mut self, near: usize, far: usize, t_far: u64, ring: u64) -> (u64, u64) {
        let t100 = t_far + self.ms(2, 15);
        self.trying(far, t100);
        let t180 = t_far + self.ms(40, 120);
        self.ringing(far, t180);
        self.ringing(near, t180 + MS);
        let a_far = t180 + ring;
        self.answer(far, a_far);
        self.ack_invite(far, a_far + 2 * MS);
        let a_near = a_far + 3 * MS;
        self.answer(near, a_near);
        self.ack_invite(near, a_near + 3 * MS);
        (a_near, a_far)
    }

    /// A request within the dialog and its final response.
    #[allow(clippy::too_many_arguments)]
    fn in_dialog(
        &mut self,
        l: usize,
        side: usize,
        t: u64,
        method: &'static str,
        extra: &[(&str, String)],
        body: Option<(&str, String)>,
        reply: (u16, &str),
        reply_after: u64,
    ) -> Txn {
        let leg = &mut self.legs[l];
        let (mut m, txn) = leg.request(&mut self.rng, side, method);
        if matches!(method, "INVITE" | "REFER" | "NOTIFY" | "UPDATE") {
            m = m.header("Contact", leg.contact(side));
        }
        for (n, v) in extra {
            m = m.header(n, v.clone());
        }
        if let Some((ct, b)) = body {
            m = m.body(ct, b);
        }
        leg.send(t, side, &m);
        let mut r = leg.response(&txn, reply.0, reply.1, false);
        if method == "REFER" {
            r = r.header("Contact", leg.contact(1 - side));
        }
        leg.send(t + reply_after, 1 - side, &r);
        txn
    }

    fn bye(&mut self, l: usize, side: usize, t: u64) {
        let after = self.ms(2, 15);
        self.in_dialog(l, side, t, "BYE", &[], None, (200, "OK"), after);
        self.legs[l].t_end = t;
    }

    /// The device on `first` hangs up at `t`; the PBX BYEs `others` just after.
    fn hangup(&mut self, first: usize, others: &[usize], t: u64) {
        let far = self.legs[first].far();
        self.bye(first, far, t);
        for (k, &o) in others.iter().enumerate() {
            let pbx = 1 - self.legs[o].far();
            self.bye(o, pbx, t + (2 + k as u64) * MS);
        }
    }

    /// A re-INVITE from `side` with `dir` (the answer mirrors it), then the ACK.
    fn reinvite(
        &mut self,
        l: usize,
        side: usize,
        t: u64,
        dir: Direction,
        extra: &[(&str, String)],
    ) {
        let codec = self.codec;
        let t_ok = t + self.ms(10, 30);
        let answer_dir = match dir {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::SendRecv => Direction::SendRecv,
        };
        let leg = &mut self.legs[l];
        leg.sdp[side].1 += 1;
        leg.sdp[1 - side].1 += 1;
        let (mut m, txn) = leg.request(&mut self.rng, side, "INVITE");
        m = m.header("Contact", leg.contact(side));
        for (n, v) in extra {
            m = m.header(n, v.clone());
        }
        let m = m.sdp(leg.sdp(side, dir, false, codec));
        leg.send(t, side, &m);
        let ok = leg
            .response(&txn, 200, "OK", false)
            .header("Contact", leg.contact(1 - side));
        let ok = ok.sdp(leg.sdp(1 - side, answer_dir, false, codec));
        leg.send(t_ok, 1 - side, &ok);
        self.ack(l, t_ok + 2 * MS, &txn);
    }

    /// RFC 3515 §2.4.4: the PBX reports the referred call's progress in a NOTIFY with a
    /// message/sipfrag body; the last one ends the implicit subscription.
    fn notify(&mut self, l: usize, t: u64, frag: &str, last: bool) {
        let pbx = 1 - self.legs[l].far();
        let state = if last {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        let after = self.ms(2, 6);
        self.in_dialog(
            l,
            pbx,
            t,
            "NOTIFY",
            &[
                ("Event", "refer".into()),
                ("Subscription-State", state.into()),
            ],
            Some(("message/sipfrag;version=2.0", format!("{frag}\r\n"))),
            (200, "OK"),
            after,
        );
    }

    /// The phone on `l` REFERs its dialog (RFC 3515 §2.4.1) to `refer_to`, saying who refers
    /// (RFC 3892 §3); the PBX accepts (202) and NOTIFYs 100 Trying.
    fn refer(&mut self, l: usize, t: u64, refer_to: String, referred_by: String) {
        let far = self.legs[l].far();
        self.in_dialog(
            l,
            far,
            t,
            "REFER",
            &[("Refer-To", refer_to), ("Referred-By", referred_by)],
            None,
            (202, "Accepted"),
            3 * MS,
        );
        self.notify(l, t + 6 * MS, "SIP/2.0 100 Trying", false);
    }

    fn bridge(&mut self, a: usize, b: usize, from: u64, to: u64) {
        self.bridges.push((a, b, from, to));
    }

    /// Leg `l`'s far device sends audio in [from, to).
    fn speak(&mut self, l: usize, from: u64, to: u64) {
        self.talk.push((l, from, to));
    }

    fn pbx_uri(user: &str) -> String {
        format!("<sip:{user}@{PBX_IP}>")
    }

    // ---- the scenarios ---------------------------------------------------------------------

    /// A phone dials out: leg A phone → PBX, leg B PBX → carrier with our DDI as caller ID.
    fn outbound(&mut self, t0: u64, talk: u64) {
        let n = self.id;
        let ext = format!("1{n:04}");
        let dest = format!("+4420{}", self.rng.range(10_000_000, 99_999_999));
        let ddi = format!("+3491555{n:04}");
        let caller = self.person(ext.clone());
        let callee = self.person(dest.clone());
        self.dialled = dest.clone();
        let display = DISPLAY_NAMES[n % DISPLAY_NAMES.len()].to_string();
        let a = self.leg(LegPlan {
            label: "phone",
            uac: Node::phone(&ext),
            uas: Node::pbx(),
            ruri: format!("sip:{dest}@{PBX_IP}"),
            from_display: Some(display),
            from: (ext.clone(), PBX_IP.to_string()),
            to: (dest.clone(), PBX_IP.to_string()),
            persons: [caller, callee],
            parties: [true, false],
        });
        let b = self.leg(LegPlan {
            label: "carrier",
            uac: Node::pbx(),
            uas: Node::sbc(),
            ruri: format!("sip:{dest}@{SBC_IP}:5060"),
            from_display: None,
            from: (ddi.clone(), PBX_IP.to_string()),
            to: (dest.clone(), SBC_IP.to_string()),
            persons: [caller, callee],
            parties: [true, false],
        });
        // RFC 3325 §9.1: the PBX asserts the DDI it presents as caller ID.
        let pai = [("P-Asserted-Identity", Self::pbx_uri(&ddi))];
        self.b2bua(a, b, t0, talk, &pai, true);
    }

    /// The carrier calls our DDI: leg 1 carrier → PBX, leg 2 PBX → the phone behind the DDI.
    fn inbound(&mut self, t0: u64, talk: u64) {
        let (l1, l2) = self.inbound_legs("carrier");
        self.b2bua(l1, l2, t0, talk, &[], true);
    }

    /// The carrier's leg to a DDI and the PBX's leg to the phone 2NNNN behind it (From the
    /// external caller, no Diversion): people 0 (caller) and 1 (the phone).
    fn inbound_legs(&mut self, first_label: &'static str) -> (usize, usize) {
        let n = self.id;
        let caller_no = format!("+34912{}", self.rng.range(100_000, 999_999));
        let ddi = format!("+3491555{n:04}");
        let ext = format!("2{n:04}");
        let caller = self.person(caller_no.clone());
        let callee = self.person(ext.clone());
        self.dialled = ddi.clone();
        let l1 = self.leg(LegPlan {
            label: first_label,
            uac: Node::sbc(),
            uas: Node::pbx(),
            ruri: format!("sip:{ddi}@{PBX_IP}:5060"),
            from_display: None,
            from: (caller_no.clone(), SBC_IP.to_string()),
            to: (ddi, PBX_IP.to_string()),
            persons: [caller, callee],
            parties: [false, true],
        });
        let l2 = self.leg(LegPlan {
            label: "phone",
            uac: Node::pbx(),
            uas: Node::phone(&ext),
            ruri: format!("sip:{ext}@{}:5060", phone_ip(&ext)),
            from_display: None,
            from: (caller_no, PBX_IP.to_string()),
            to: (ext, PBX_IP.to_string()),
            persons: [caller, callee],
            parties: [false, true],
        });
        self.legs[l2].evidence = vec!["numbers", "timing"];
        (l1, l2)
    }

    /// The carrier's INVITE of leg 1 (the carrier asserts its caller, RFC 3325 §9.1).
    fn carrier_invite(&mut self, l1: usize, t0: u64) {
        let from = self.legs[l1].users[UAC].clone();
        self.invite(
            l1,
            t0,
            &[("P-Asserted-Identity", format!("<sip:{from}@{SBC_IP}>"))],
        );
        self.trying(l1, t0 + 2 * MS);
    }

    /// `near`'s caller reaches `far`'s callee through the PBX, they talk for `talk`, one of
    /// them hangs up (the far one on odd conversations). `far_extra`: headers of far's INVITE;
    /// `correlate`: the legs carry this conversation's correlation headers.
    fn b2bua(
        &mut self,
        near: usize,
        far: usize,
        t0: u64,
        talk: u64,
        far_extra: &[(&str, String)],
        correlate: bool,
    ) {
        if self.legs[far].evidence.is_empty() {
            self.legs[far].evidence = vec!["numbers", "timing"];
        }
        if correlate {
            self.correlation = CORRELATION_CYCLE[self.id % CORRELATION_CYCLE.len()];
        }
        match self.correlation {
            Correlation::XCid => {
                // The Homer/HEP convention: the B leg names the A leg's Call-ID.
                let id = self.legs[near].call_id.clone();
                self.legs[far].x_cid = Some(id);
                self.legs[far].evidence.insert(0, "header:X-CID");
            }
            Correlation::SessionId => {
                let ids = [uuid(&mut self.rng), uuid(&mut self.rng)];
                self.legs[near].session_id = Some(ids.clone());
                self.legs[far].session_id = Some(ids);
                self.legs[far].evidence.insert(0, "header:Session-ID");
            }
            Correlation::None => {}
        }
        if self.legs[near].nodes[UAC].net == Net::Carrier {
            self.carrier_invite(near, t0);
        } else {
            self.invite(near, t0, &[]);
            self.trying(near, t0 + 2 * MS);
        }
        let t_far = t0 + self.ms(20, 60);
        self.invite(far, t_far, far_extra);
        let ring = self.ms(800, 2500);
        let (a_near, a_far) = self.connect(near, far, t_far, ring);
        let t_bye = a_near + talk;
        self.speak(near, a_near + 5 * MS, t_bye - 10 * MS);
        self.speak(far, a_far + 5 * MS, t_bye - 10 * MS);
        self.bridge_then_hang_up(near, far, a_near, t_bye);
    }

    /// Carrier → PBX → B; B REFERs to C; the PBX calls C with Referred-By, bridges the carrier
    /// leg to C and BYEs B.
    fn blind(&mut self, t0: u64, talk: u64) {
        let (l1, l2) = self.inbound_legs("carrier");
        let b_ext = self.legs[l2].users[UAS].clone();
        let c_ext = format!("2{:04}", self.id + 5000);
        let c = self.person(c_ext.clone());
        let caller_no = self.legs[l1].users[UAC].clone();
        self.final_idx = [0, c];
        self.carrier_invite(l1, t0);
        let t2 = t0 + self.ms(20, 60);
        self.invite(l2, t2, &[]);
        let ring = self.ms(800, 2500);
        let (a1, a2) = self.connect(l1, l2, t2, ring);
        let t_refer = a1 + talk * 2 / 5;
        self.speak(l1, a1 + 5 * MS, u64::MAX);
        self.speak(l2, a2 + 5 * MS, t_refer);
        self.bridge(l1, l2, a1, t_refer);
        self.refer(l2, t_refer, Self::pbx_uri(&c_ext), Self::pbx_uri(&b_ext));

        // RFC 3892 §3: the new leg says who referred it; B2BUA style, the PBX places it.
        let l3 = self.leg(LegPlan {
            label: "transfer-target",
            uac: Node::pbx(),
            uas: Node::phone(&c_ext),
            ruri: format!("sip:{c_ext}@{}:5060", phone_ip(&c_ext)),
            from_display: None,
            from: (caller_no, PBX_IP.to_string()),
            to: (c_ext.clone(), PBX_IP.to_string()),
            persons: [0, c],
            parties: [false, true],
        });
        self.legs[l3].evidence = vec!["referred-by", "numbers", "timing"];
        let t3 = t_refer + self.ms(20, 60);
        self.invite(l3, t3, &[("Referred-By", Self::pbx_uri(&b_ext))]);
        let t100 = t3 + self.ms(2, 8);
        self.trying(l3, t100);
        let t180 = t3 + self.ms(40, 120);
        self.ringing(l3, t180);
        let a3 = t180 + self.ms(800, 2000);
        self.answer(l3, a3);
        self.ack_invite(l3, a3 + 2 * MS);
        self.notify(l2, a3 + 5 * MS, "SIP/2.0 200 OK", true);
        self.bye(l2, UAC, a3 + 12 * MS);
        // The connected party changed: the PBX asserts C to the carrier (RFC 3325 §9.1).
        self.reinvite(
            l1,
            UAS,
            a3 + 20 * MS,
            Direction::SendRecv,
            &[("P-Asserted-Identity", Self::pbx_uri(&c_ext))],
        );
        let t_end = a3 + talk * 3 / 5;
        self.speak(l3, a3 + 5 * MS, t_end - 10 * MS);
        self.end_talk(l1, t_end - 10 * MS);
        self.bridge_then_hang_up(l1, l3, a3, t_end);
    }

    /// Bridges legs `a` and `b` from `from` to `to`, then one of them hangs up (which one
    /// alternates with the conversation's id).
    fn bridge_then_hang_up(&mut self, a: usize, b: usize, from: u64, to: u64) {
        self.bridge(a, b, from, to);
        if self.id.is_multiple_of(2) {
            self.hangup(a, &[b], to);
        } else {
            self.hangup(b, &[a], to);
        }
    }

    /// Ends leg `l`'s open talk span (`to == u64::MAX`) at `to`.
    fn end_talk(&mut self, l: usize, to: u64) {
        for s in self.talk.iter_mut().filter(|s| s.0 == l && s.2 == u64::MAX) {
            s.2 = to;
        }
    }

    /// Carrier → PBX → B; B holds and consults C through the PBX, then REFERs with Replaces;
    /// the PBX calls C on a new leg that Replaces the PBX → C consultation dialog.
    fn attended(&mut self, t0: u64, talk: u64) {
        let (l1, l2) = self.inbound_legs("carrier");
        let b_ext = self.legs[l2].users[UAS].clone();
        let b = 1;
        let c_ext = format!("2{:04}", self.id + 5000);
        let c = self.person(c_ext.clone());
        let caller_no = self.legs[l1].users[UAC].clone();
        self.final_idx = [0, c];
        self.carrier_invite(l1, t0);
        let t2 = t0 + self.ms(20, 60);
        self.invite(l2, t2, &[]);
        let ring = self.ms(800, 2500);
        let (a1, a2) = self.connect(l1, l2, t2, ring);
        let t_hold = a1 + talk * 3 / 10;
        self.speak(l1, a1 + 5 * MS, u64::MAX);
        self.speak(l2, a2 + 5 * MS, t_hold);
        self.bridge(l1, l2, a1, t_hold);
        // RFC 3264 §8.4: B holds the external caller with a sendonly offer.
        self.reinvite(l2, UAS, t_hold, Direction::SendOnly, &[]);

        // The consultation: B → PBX → C, two new legs.
        let l3 = self.leg(LegPlan {
            label: "consultation",
            uac: Node::phone(&b_ext),
            uas: Node::pbx(),
            ruri: format!("sip:{c_ext}@{PBX_IP}"),
            from_display: None,
            from: (b_ext.clone(), PBX_IP.to_string()),
            to: (c_ext.clone(), PBX_IP.to_string()),
            persons: [b, c],
            parties: [true, true],
        });
        self.legs[l3].evidence = vec!["replaces", "numbers", "timing"];
        let l4 = self.leg(LegPlan {
            label: "consultation",
            uac: Node::pbx(),
            uas: Node::phone(&c_ext),
            ruri: format!("sip:{c_ext}@{}:5060", phone_ip(&c_ext)),
            from_display: None,
            from: (b_ext.clone(), PBX_IP.to_string()),
            to: (c_ext.clone(), PBX_IP.to_string()),
            persons: [b, c],
            parties: [true, true],
        });
        self.legs[l4].evidence = vec!["numbers", "timing"];
        let t3 = t_hold + self.ms(300, 600);
        self.invite(l3, t3, &[]);
        self.trying(l3, t3 + 2 * MS);
        let t4 = t3 + self.ms(20, 60);
        self.invite(l4, t4, &[]);
        let ring = self.ms(800, 2000);
        let (a3, a4) = self.connect(l3, l4, t4, ring);
        let t_refer = a3 + talk * 3 / 10;
        self.speak(l3, a3 + 5 * MS, t_refer);
        self.speak(l4, a4 + 5 * MS, u64::MAX);
        self.bridge(l3, l4, a3, t_refer);

        // RFC 3891 §6.1 in a Refer-To (RFC 3515 §2.1): the dialog B has with the PBX for its
        // consultation, tags as the PBX (the recipient) sees them, escaped as a URI header.
        let (cons_id, cons_local, cons_remote) = {
            let l = &self.legs[l3];
            (
                l.call_id.replace('@', "%40"),
                l.tags[UAS].clone(),
                l.tags[UAC].clone(),
            )
        };
        let refer_to = format!(
            "<sip:{c_ext}@{PBX_IP}?Replaces={cons_id}%3Bto-tag%3D{cons_local}%3Bfrom-tag%3D{cons_remote}>"
        );
        self.refer(l2, t_refer, refer_to, Self::pbx_uri(&b_ext));

        // The new leg to C Replaces the PBX → C consultation dialog (RFC 3891 §3: C answers at
        // once and ends the replaced dialog with a BYE).
        let l5 = self.leg(LegPlan {
            label: "transfer-target",
            uac: Node::pbx(),
            uas: Node::phone(&c_ext),
            ruri: format!("sip:{c_ext}@{}:5060", phone_ip(&c_ext)),
            from_display: None,
            from: (caller_no, PBX_IP.to_string()),
            to: (c_ext.clone(), PBX_IP.to_string()),
            persons: [0, c],
            parties: [false, true],
        });
        self.legs[l5].evidence = vec!["referred-by", "replaces", "numbers", "timing"];
        let replaces = {
            let l = &self.legs[l4];
            format!(
                "{};to-tag={};from-tag={}",
                l.call_id, l.tags[UAS], l.tags[UAC]
            )
        };
        let t5 = t_refer + self.ms(20, 60);
        self.invite(
            l5,
            t5,
            &[
                ("Replaces", replaces),
                ("Referred-By", Self::pbx_uri(&b_ext)),
            ],
        );
        let t100 = t5 + self.ms(2, 8);
        self.trying(l5, t100);
        let a5 = t5 + self.ms(20, 40);
        self.answer(l5, a5);
        self.ack_invite(l5, a5 + 2 * MS);
        self.end_talk(l4, a5);
        self.bye(l4, UAS, a5 + 5 * MS);
        self.notify(l2, a5 + 8 * MS, "SIP/2.0 200 OK", true);
        self.bye(l3, UAS, a5 + 12 * MS);
        self.bye(l2, UAC, a5 + 14 * MS);
        self.reinvite(
            l1,
            UAS,
            a5 + 20 * MS,
            Direction::SendRecv,
            &[("P-Asserted-Identity", Self::pbx_uri(&c_ext))],
        );
        let t_end = a5 + talk * 2 / 5;
        self.speak(l5, a5 + 5 * MS, t_end - 10 * MS);
        self.end_talk(l1, t_end - 10 * MS);
        self.bridge_then_hang_up(l1, l5, a5, t_end);
    }

    /// Carrier → PBX to a DDI forwarded unconditionally to an outside mobile: PBX → carrier
    /// with the original caller in From, Diversion and History-Info.
    fn forward(&mut self, t0: u64, talk: u64) {
        let n = self.id;
        let caller_no = format!("+34912{}", self.rng.range(100_000, 999_999));
        let ddi = format!("+3491555{n:04}");
        let mobile = format!("+447700900{:03}", n % 1000);
        let caller = self.person(caller_no.clone());
        let callee = self.person(mobile.clone());
        self.dialled = ddi.clone();
        let l1 = self.leg(LegPlan {
            label: "carrier",
            uac: Node::sbc(),
            uas: Node::pbx(),
            ruri: format!("sip:{ddi}@{PBX_IP}:5060"),
            from_display: None,
            from: (caller_no.clone(), SBC_IP.to_string()),
            to: (ddi.clone(), PBX_IP.to_string()),
            persons: [caller, callee],
            parties: [false, true],
        });
        let l2 = self.leg(LegPlan {
            label: "forward",
            uac: Node::pbx(),
            uas: Node::sbc(),
            ruri: format!("sip:{mobile}@{SBC_IP}:5060"),
            from_display: None,
            from: (caller_no.clone(), PBX_IP.to_string()),
            to: (mobile.clone(), SBC_IP.to_string()),
            persons: [caller, callee],
            parties: [false, false],
        });
        self.legs[l2].evidence = vec![
            "header:Diversion",
            "header:History-Info",
            "numbers",
            "timing",
        ];
        self.b2bua(
            l1,
            l2,
            t0,
            talk,
            &[
                ("P-Asserted-Identity", Self::pbx_uri(&caller_no)),
                // RFC 5806 §3: the DDI the call was diverted from, why, and how many times.
                (
                    "Diversion",
                    format!("<sip:{ddi}@{PBX_IP}>;reason=unconditional;counter=1"),
                ),
                // RFC 7044 §4: the DDI's entry gives the Reason, the target's says it was
                // mapped (mp) from entry 1 by unconditional forwarding (cause=302, RFC 4458).
                (
                    "History-Info",
                    format!(
                        "<sip:{ddi}@{PBX_IP}?Reason=SIP%3Bcause%3D302>;index=1,\
                         <sip:{mobile}@{SBC_IP};cause=302>;index=1.1;mp=1"
                    ),
                ),
            ],
            false,
        );
    }

    /// Carrier → PBX → X rings; Y picks up (group `*8` on even conversations, directed with
    /// Replaces on odd ones); the PBX CANCELs X and bridges the carrier leg to Y.
    fn pickup(&mut self, t0: u64, talk: u64) {
        let (l1, l2) = self.inbound_legs("carrier");
        let x_ext = self.legs[l2].users[UAS].clone();
        let y_ext = format!("2{:04}", self.id + 5000);
        let y = self.person(y_ext.clone());
        self.final_idx = [0, y];
        self.carrier_invite(l1, t0);
        let t2 = t0 + self.ms(20, 60);
        self.invite(l2, t2, &[]);
        let t100 = t2 + self.ms(2, 8);
        self.trying(l2, t100);
        let t180 = t2 + self.ms(40, 120);
        self.ringing(l2, t180);
        self.ringing(l1, t180 + MS);

        let directed = self.id % 2 == 1;
        let target = if directed {
            x_ext.clone()
        } else {
            GROUP_PICKUP.to_string()
        };
        let l3 = self.leg(LegPlan {
            label: "pickup",
            uac: Node::phone(&y_ext),
            uas: Node::pbx(),
            ruri: format!("sip:{target}@{PBX_IP}"),
            from_display: None,
            from: (y_ext.clone(), PBX_IP.to_string()),
            to: (target, PBX_IP.to_string()),
            persons: [y, 0],
            parties: [false, true],
        });
        let t3 = t180 + self.ms(1000, 2500);
        if directed {
            // RFC 3891 §6.1: the early dialog PBX → X, tags as the PBX (the recipient) sees
            // them; early-only: never a confirmed call.
            let replaces = {
                let l = &self.legs[l2];
                format!(
                    "{};to-tag={};from-tag={};early-only",
                    l.call_id, l.tags[UAC], l.tags[UAS]
                )
            };
            self.legs[l3].evidence = vec!["replaces", "timing"];
            self.invite(l3, t3, &[("Replaces", replaces)]);
        } else {
            self.legs[l3].evidence = vec!["feature-code", "timing"];
            self.invite(l3, t3, &[]);
        }
        self.trying(l3, t3 + 2 * MS);
        // RFC 3261 §9.1 with RFC 3326 §2: the PBX cancels X's ringing, saying why.
        let tc = t3 + self.ms(5, 20);
        self.cancel(l2, tc);
        let a3 = tc + self.ms(10, 20);
        // RFC 3325 §9.1: the PBX tells Y whom it picked up.
        let caller_no = self.legs[l1].users[UAC].clone();
        self.answer_with(
            l3,
            a3,
            &[("P-Asserted-Identity", Self::pbx_uri(&caller_no))],
        );
        self.ack_invite(l3, a3 + 3 * MS);
        let a1 = a3 + 2 * MS;
        self.answer(l1, a1);
        let t_ack = a1 + self.ms(8, 20);
        self.ack_invite(l1, t_ack);
        let t_end = a1 + talk;
        self.speak(l1, a1 + 5 * MS, t_end - 10 * MS);
        self.speak(l3, a3 + 5 * MS, t_end - 10 * MS);
        self.bridge_then_hang_up(l1, l3, a1, t_end);
    }

    /// CANCEL of `l`'s INVITE, its 200, the 487 and the ACK (same branch, RFC 3261 §17.1.1.3).
    fn cancel(&mut self, l: usize, t: u64) {
        let txn = self.invite_txn(l);
        let leg = &mut self.legs[l];
        let cancel = Msg::request("CANCEL", &leg.ruri)
            .header("Via", leg.via(UAC, &txn.branch))
            .header("Max-Forwards", "70")
            .header("From", leg.name_addr(UAC, true))
            .header("To", leg.name_addr(UAS, false))
            .header("Call-ID", leg.call_id.clone())
            .header("CSeq", format!("{} CANCEL", txn.cseq));
        let cancel = leg
            .decorate(cancel, UAC, true, false)
            .header("Reason", "SIP;cause=200;text=\"Call completed elsewhere\"");
        leg.send(t, UAC, &cancel);
        let c_txn = Txn {
            method: "CANCEL",
            ..txn.clone()
        };
        let ok = leg.response(&c_txn, 200, "OK", false);
        leg.send(t + 3 * MS, UAS, &ok);
        let t487 = t + 5 * MS;
        let term = leg.response(&txn, 487, "Request Terminated", false);
        leg.send(t487, UAS, &term);
        let ack = Msg::request("ACK", &leg.ruri)
            .header("Via", leg.via(UAC, &txn.branch))
            .header("Max-Forwards", "70")
            .header("From", leg.name_addr(UAC, true))
            .header("To", leg.name_addr(UAS, true))
            .header("Call-ID", leg.call_id.clone())
            .header("CSeq", format!("{} ACK", txn.cseq));
        let ack = leg.decorate(ack, UAC, true, false);
        leg.send(t487 + 2 * MS, UAC, &ack);
        leg.t_end = t487;
        leg.status = 487;
    }

    // ---- media -------------------------------------------------------------------------

    /// The packets leg `l`'s far device sends in its talk spans, from its own stream.
    fn origin(&mut self, l: usize) -> Result<Vec<Pkt>, GenError> {
        let mut spans: Vec<(u64, u64)> = self
            .talk
            .iter()
            .filter(|s| s.0 == l)
            .map(|s| (s.1, s.2))
            .collect();
        spans.sort_unstable();
        let Some(&(media0, _)) = spans.first() else {
            return Ok(Vec::new());
        };
        let end = spans.iter().map(|s| s.1).max().unwrap_or(media0);
        let codec = self.codec;
        let person = self.legs[l].persons[self.legs[l].far()];
        let tone = self.people[person].tone_hz;
        let codec_err = |why: String| GenError::Codec { codec, why };
        let mut enc = PayloadEncoder::new(codec).map_err(codec_err)?;
        let rng = &mut self.rng;
        let (ssrc, mut seq, ts0) = (rng.next_u32(), rng.next_u16(), rng.next_u32());
        let mut roc = 0u32;
        let (n, rate, ticks) = (
            codec.samples_per_packet(),
            codec.pcm_rate(),
            codec.ticks_per_packet(),
        );
        let mut out = Vec::new();
        let mut gap = true;
        let mut k = 0u64;
        loop {
            let nominal = media0 + k * PACKET_NS;
            if nominal >= end {
                break;
            }
            let slot = k;
            k += 1;
            if !spans.iter().any(|&(a, b)| nominal >= a && nominal < b) {
                gap = true;
                continue;
            }
            let pcm = rtp::tone_pcm(tone, rate, slot * u64::from(n), n);
            let payload: Rc<[u8]> = enc.encode(&pcm).map_err(codec_err)?.into();
            let hdr = RtpHeader {
                marker: gap,
                payload_type: codec.payload_type(),
                seq,
                timestamp: ts0.wrapping_add((slot as u32).wrapping_mul(ticks)),
                ssrc,
            };
            gap = false;
            // ±1 ms arrival jitter, whole microseconds
            let jitter = rng.range(0, 2000) as i64 - 1000;
            out.push(Pkt {
                t: (nominal as i64 + jitter * US as i64) as u64,
                nominal,
                hdr,
                payload,
                roc,
                person,
            });
            seq = seq.wrapping_add(1);
            if seq == 0 {
                roc = roc.wrapping_add(1);
            }
        }
        Ok(out)
    }

    /// Every leg's RTP: each far device's own packets, and what the PBX relays into the leg
    /// from the legs bridged to it (the same payload, a few hundred µs later).
    fn media(&mut self) -> Result<(), GenError> {
        let n = self.legs.len();
        let mut origins = Vec::with_capacity(n);
        for l in 0..n {
            origins.push(self.origin(l)?);
        }
        let ticks = self.codec.ticks_per_packet();
        let mut relays: Vec<Vec<Pkt>> = Vec::with_capacity(n);
        for m in 0..n {
            let mut from_bridges: Vec<&Pkt> = Vec::new();
            for &(a, b, from, to) in &self.bridges {
                let src = match (a == m, b == m) {
                    (true, _) => b,
                    (_, true) => a,
                    _ => continue,
                };
                from_bridges.extend(
                    origins[src]
                        .iter()
                        .filter(|p| p.nominal >= from && p.nominal < to),
                );
            }
            from_bridges.sort_by_key(|p| p.t);
            let mut own = Restamp::new(&mut self.rng);
            let mut out = Vec::with_capacity(from_bridges.len());
            for p in from_bridges {
                let delay = self.rng.range(150, 600) * US;
                let (hdr, roc) = if self.keep_ssrc {
                    (p.hdr, p.roc)
                } else {
                    own.next(p.nominal, p.hdr.payload_type, ticks)
                };
                out.push(Pkt {
                    t: p.t + delay,
                    nominal: p.nominal,
                    hdr,
                    payload: p.payload.clone(),
                    roc,
                    person: p.person,
                });
            }
            relays.push(out);
        }
        for (l, (orig, relay)) in origins.into_iter().zip(relays).enumerate() {
            let leg = &mut self.legs[l];
            let far = leg.far();
            let mut ctx = [leg.srtp(UAC)?, leg.srtp(UAS)?];
            for (side, pkts) in [(far, orig), (1 - far, relay)] {
                for p in pkts {
                    let plain = rtp::rtp_packet(&p.hdr, &p.payload);
                    let data = match &mut ctx[side] {
                        None => plain,
                        Some(c) => {
                            let mut out = Vec::with_capacity(plain.len() + 16);
                            c.protect_rtp_with_roc(&plain, p.roc, &mut out)
                                .map_err(|e| GenError::Srtp(e.to_string()))?;
                            out
                        }
                    };
                    let (src, dst) = (leg.media[side], leg.media[1 - side]);
                    leg.em.udp(p.t, src, dst, &data, false);
                    leg.sent[side].push((p.nominal, p.person));
                }
            }
        }
        Ok(())
    }

    // ---- truth -----------------------------------------------------------------------------

    fn leg_truth(&self, l: usize) -> CallTruth {
        let leg = &self.legs[l];
        let codec = self.codec;
        let answered = leg.t_answer.is_some();
        let answer = leg.t_answer.unwrap_or(leg.t_end);
        let rel = |t: u64| (t as i64 - answer as i64) as f64 / 1e9;
        let mut silent_spans = Vec::new();
        let mut tone_spans = Vec::new();
        let mut tones = [0.0; 2];
        for side in [UAC, UAS] {
            let channel = if side == UAC { "left" } else { "right" };
            let sent = &leg.sent[side];
            tones[side] = sent
                .first()
                .map_or(self.people[leg.persons[side]].tone_hz, |s| {
                    self.people[s.1].tone_hz
                });
            // Silence: a gap of more than a packet, or no audio for the last 60 ms and more.
            for w in sent.windows(2) {
                if w[1].0 - w[0].0 > PACKET_NS + 5 * MS {
                    silent_spans.push(SilentSpan {
                        channel: channel.into(),
                        from_secs: rel(w[0].0 + PACKET_NS),
                        to_secs: rel(w[1].0),
                    });
                }
            }
            if let Some(&(last, _)) = sent.last()
                && leg.t_end > last + PACKET_NS + 40 * MS
            {
                silent_spans.push(SilentSpan {
                    channel: channel.into(),
                    from_secs: rel(last + PACKET_NS),
                    to_secs: rel(leg.t_end),
                });
            }
            // One span per person in a row, when the channel carries more than one.
            let mut runs: Vec<(u64, u64, usize)> = Vec::new();
            for &(t, p) in sent {
                match runs.last_mut() {
                    Some(r) if r.2 == p => r.1 = t + PACKET_NS,
                    _ => runs.push((t, t + PACKET_NS, p)),
                }
            }
            if runs.len() > 1 {
                tone_spans.extend(runs.iter().map(|&(a, b, p)| ToneSpan {
                    channel: channel.into(),
                    from_secs: rel(a).max(0.0),
                    to_secs: rel(b.min(leg.t_end)),
                    hz: self.people[p].tone_hz,
                }));
            }
        }
        let bridged_earlier = self
            .bridges
            .iter()
            .any(|&(a, b, _, _)| (a == l && b < l) || (b == l && a < l));
        let mut evidence: Vec<String> = leg.evidence.iter().map(|s| s.to_string()).collect();
        if self.keep_ssrc && bridged_earlier && answered {
            let at = evidence
                .iter()
                .position(|e| e == "numbers" || e == "timing")
                .unwrap_or(evidence.len());
            evidence.insert(at, "media:ssrc".into());
        }
        CallTruth {
            sip_call_id: leg.call_id.clone(),
            caller_user: leg.users[UAC].clone(),
            caller_display: leg.from_display.clone(),
            callee_user: leg.users[UAS].clone(),
            answered,
            recorded: answered,
            codec: codec.name(),
            codec_id: codec.id().to_string(),
            clock_rate: codec.clock_rate(),
            fmtp: codec.fmtp().to_string(),
            record_rate: codec.record_rate(),
            security: if leg.keys.is_some() {
                "sdes-srtp"
            } else {
                "rtp"
            }
            .into(),
            srtp_suite: leg.keys.as_ref().map(|k| k.answer.suite.name().to_string()),
            srtp_tag: leg.keys.as_ref().map(|k| k.answer.tag),
            rekeys_at_secs: Vec::new(),
            recording_state: "complete".into(),
            stream_status: "decoded".into(),
            caller_tone_hz: tones[UAC],
            callee_tone_hz: tones[UAS],
            start_ns: leg.t_invite,
            answer_ns: leg.t_answer,
            end_ns: leg.t_end,
            recorded_secs: if answered { rel(leg.t_end) } else { 0.0 },
            final_status: leg.status,
            end_reason: if answered { "bye" } else { "cancelled" }.into(),
            transport: "udp".into(),
            dtmf: Vec::new(),
            silent_spans,
            rtp_packets_caller: leg.sent[UAC].len() as u64,
            rtp_packets_callee: leg.sent[UAS].len() as u64,
            lost_caller: 0,
            lost_callee: 0,
            controls: Vec::new(),
            record_mode: None,
            conversation: Some(self.id),
            leg: leg.label.into(),
            segment: leg.segment().into(),
            via_server: leg.nodes.map(|n| n.net != Net::Phone),
            parties_internal: leg.parties,
            expected_direction: direction(leg.parties).into(),
            link_evidence: evidence,
            relays_ssrc: self.keep_ssrc && answered,
            sees_both_parties: answered && leg.sent.iter().all(|s| !s.is_empty()),
            tone_spans,
        }
    }

    /// The legs the mirror sees (truth and frames) and the conversation's truth.
    fn finish(self, mirror: Mirror) -> (Vec<Frame>, Vec<CallTruth>, ConversationTruth) {
        let keep = |leg: &Leg| match mirror {
            Mirror::Both => true,
            Mirror::Phones => leg.segment() == "phones",
            Mirror::Carrier => leg.segment() == "carrier",
        };
        let calls: Vec<CallTruth> = (0..self.legs.len())
            .filter(|&l| keep(&self.legs[l]))
            .map(|l| self.leg_truth(l))
            .collect();
        let spans: Vec<[u64; 2]> = self.bridges.iter().map(|b| [b.2, b.3]).collect();
        let number = |i: usize| self.people[i].number.clone();
        let conv = ConversationTruth {
            id: self.id,
            kind: self.kind.into(),
            legs: calls.iter().map(|c| c.sip_call_id.clone()).collect(),
            people: self.people_idx.map(number),
            final_people: self.final_idx.map(number),
            dialled: self.dialled.clone(),
            direction: direction(if self.kind == "outbound" {
                [true, false]
            } else if self.kind == "forward-external" {
                [false, false]
            } else {
                [false, true]
            })
            .into(),
            correlation: self.correlation.name().into(),
            relays_ssrc: self.keep_ssrc,
            recorded_secs: spans.iter().map(|s| (s[1] - s[0]) as f64 / 1e9).sum(),
            talk_spans_ns: spans,
        };
        let frames = self
            .legs
            .into_iter()
            .filter(|l| keep(l))
            .flat_map(|l| l.em.frames)
            .collect();
        (frames, calls, conv)
    }
}

/// The correlation of conversation n of `pbx-outbound` and `pbx-inbound` (with SSRCs kept on
/// even ones: X-CID kept, Session-ID rewritten, none kept, none rewritten).
const CORRELATION_CYCLE: [Correlation; 4] = [
    Correlation::XCid,
    Correlation::SessionId,
    Correlation::None,
    Correlation::None,
];

const DISPLAY_NAMES: [&str; 4] = ["Alice Example", "Bob Builder", "Carol Jones", "Dave O'Neil"];

/// A PBX capture: the mirrored legs' frames (sorted by time), their truth, the conversations'.
pub type PbxCapture = (Vec<Frame>, Vec<CallTruth>, Vec<ConversationTruth>);

/// Every conversation of a PBX scenario.
pub fn generate(cfg: &GenConfig) -> Result<PbxCapture, GenError> {
    let seed = cfg.seed ^ (cfg.scenario as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut ctx = Ctx {
        codec: cfg.codec,
        srtp: cfg.srtp,
        seed,
        pbx_port: 10_000,
        phone_port: 16_384,
        carrier_port: 30_000,
        gateway: 0,
        tone_rng: Rng::derive(cfg.seed, 0x70_4E5),
        tones_used: [0; 61],
        codec_rng: Rng::derive(cfg.seed, 0xC0DEC),
        codec_tones_used: [0; 61],
    };
    let mut plan_rng = Rng::derive(seed, 0x91A4);
    let talk = talk_ns(cfg);
    let mut start = cfg.start_unix_secs * 1_000_000_000 + 100 * MS;
    let (mut frames, mut calls, mut convs) = (Vec::new(), Vec::new(), Vec::new());
    for id in 0..cfg.calls {
        let kind = match cfg.scenario {
            Scenario::PbxOutbound => "outbound",
            Scenario::PbxInbound => "inbound",
            Scenario::BlindTransfer => "blind-transfer",
            Scenario::AttendedTransfer => "attended-transfer",
            Scenario::ForwardExternal => "forward-external",
            _ => "pickup",
        };
        let mut conv = Conv::new(id, kind, &mut ctx);
        match cfg.scenario {
            Scenario::PbxOutbound => conv.outbound(start, talk),
            Scenario::PbxInbound => conv.inbound(start, talk),
            Scenario::BlindTransfer => conv.blind(start, talk),
            Scenario::AttendedTransfer => conv.attended(start, talk),
            Scenario::ForwardExternal => conv.forward(start, talk),
            _ => conv.pickup(start, talk),
        }
        conv.media()?;
        let (f, c, t) = conv.finish(cfg.mirror);
        frames.extend(f);
        calls.extend(c);
        convs.push(t);
        start += plan_rng.range(250_000, 400_000) * US;
    }
    frames.sort_by_key(|f| f.ts_ns); // stable: keeps each leg's order for equal stamps
    Ok((frames, calls, convs))
}

#[cfg(test)]
mod tests;
