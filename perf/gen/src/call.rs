//! Generation of one call: SIP dialog, transport (UDP/TCP/fragments), RTP
//! media for both directions (encoded by the call's codec, SRTP-protected when
//! asked), and its ground truth.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use voxtap_core::media::srtp::{CryptoAttr, InlineKey, SessionParams, SrtpContext, SrtpSuite};

use crate::codec::PayloadEncoder;
use crate::net::{self, VlanTag, tcp_flags};
use crate::rng::Rng;
use crate::rtp::{self, Codec, PACKET_NS, PT_TELEPHONE_EVENT, RtpHeader};
use crate::sip::{Direction, Msg, Sdp, Security, host, hostport};
use crate::{CallTruth, ControlTruth, DtmfTruth, Frame, GenError, SilentSpan};

pub const US: u64 = 1_000;
pub const MS: u64 = 1_000_000;

/// Everything that distinguishes one call; produced by [`crate::scenario::plan`].
#[derive(Clone, Debug)]
pub struct CallSpec {
    /// Index of the call in the file (drives addressing).
    pub idx: usize,
    pub seed: u64,
    pub codec: Codec,
    /// INVITE time (absolute ns). For TCP the handshake precedes it by 1 ms.
    pub start_ns: u64,
    /// INVITE → 200 OK (or → CANCEL).
    pub ring_ns: u64,
    /// 200 OK → BYE.
    pub talk_ns: u64,
    pub bye_by_callee: bool,
    pub dtmf: bool,
    /// The caller dials `*48` then `*49` as tones in its audio.
    pub inband_dtmf: bool,
    pub hold_move: bool,
    pub nat: bool,
    pub loss_reorder: bool,
    pub tags: Vec<VlanTag>,
    pub big_invite: bool,
    pub frag_reverse: bool,
    pub tcp: bool,
    pub ipv6: bool,
    pub cancel: bool,
    pub early_media: bool,
    /// On-demand recording requests the callee sends during the call.
    pub on_demand: OnDemandPlan,
    /// `X-Record-Mode` in the INVITE.
    pub record_mode: Option<&'static str>,
    /// Whether (caller, callee) is offnet: an address outside 10.0.0.0/8 and an E.164 number.
    pub offnet: [bool; 2],
    /// The domain named in From and To, instead of the callee's address.
    pub domain: Option<&'static str>,
    /// Halfway through, the callee side re-INVITEs asserting an external number (a transfer).
    pub transfer_external: bool,
    pub caller_display: Option<String>,
    pub caller_tone_hz: f64,
    pub callee_tone_hz: f64,
    pub caller_rtp_port: u16,
    /// Port the caller moves to after hold (HoldMove only).
    pub caller_rtp_port2: u16,
    pub callee_rtp_port: u16,
    /// How the media is protected.
    pub srtp: SrtpPlan,
}

/// How a call's media is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SrtpPlan {
    /// Plain RTP (`RTP/AVP`).
    None,
    /// SDES (RFC 4568): the offer lists `offer` as tags 1, 2..., the answer picks
    /// `offer[pick]`; with `rekey` both sides send new keys by a re-INVITE at half time.
    Sdes {
        offer: Vec<SrtpSuite>,
        pick: usize,
        rekey: bool,
    },
    /// DTLS-SRTP (RFC 5764): keys never in the SDP, so nothing an observer can decrypt; the
    /// payloads are random bytes.
    Dtls,
}

/// Which on-demand recording requests a call carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDemandPlan {
    None,
    /// SIP INFO `Record: off`, then `Record: on` (the Yealink Record key).
    InfoRecord,
    /// MESSAGE media-control pause/resume, in dialog then out of dialog (JSON).
    MediaControl,
    /// RFC 4733 codes `*48` (pause), `*49` (resume), then the `*1` toggle (stop).
    DtmfPause,
}

/// Collects one call's frames.
pub(crate) struct Emitter {
    pub(crate) frames: Vec<Frame>,
    pub(crate) tags: Vec<VlanTag>,
    pub(crate) ip_id: u16,
}

impl Emitter {
    fn push_ip(
        &mut self,
        t: u64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        l4: &[u8],
        reverse_frags: bool,
    ) {
        let (smac, dmac) = (net::mac_for(src), net::mac_for(dst));
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.ip_id = self.ip_id.wrapping_add(1);
                let df = proto == net::PROTO_TCP;
                if 20 + l4.len() > net::MTU {
                    let mut frags = net::ipv4_fragments(s, d, proto, self.ip_id, 64, l4, net::MTU);
                    if reverse_frags {
                        frags.reverse();
                    }
                    for (i, f) in frags.iter().enumerate() {
                        let data = net::ethernet(smac, dmac, &self.tags, net::ETHERTYPE_IPV4, f);
                        self.frames.push(Frame {
                            ts_ns: t + i as u64 * 20 * US,
                            data,
                        });
                    }
                } else {
                    let p = net::ipv4_packet(s, d, proto, self.ip_id, df, 64, l4);
                    self.frames.push(Frame {
                        ts_ns: t,
                        data: net::ethernet(smac, dmac, &self.tags, net::ETHERTYPE_IPV4, &p),
                    });
                }
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                assert!(40 + l4.len() <= net::MTU, "IPv6 packet exceeds the MTU");
                let p = net::ipv6_packet(s, d, proto, 64, l4);
                self.frames.push(Frame {
                    ts_ns: t,
                    data: net::ethernet(smac, dmac, &self.tags, net::ETHERTYPE_IPV6, &p),
                });
            }
            _ => panic!("mixed address families"),
        }
    }

    pub(crate) fn udp(
        &mut self,
        t: u64,
        from: SocketAddr,
        to: SocketAddr,
        payload: &[u8],
        reverse_frags: bool,
    ) {
        let d = net::udp(from.ip(), to.ip(), from.port(), to.port(), payload);
        self.push_ip(t, from.ip(), to.ip(), net::PROTO_UDP, &d, reverse_frags);
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        t: u64,
        from: SocketAddr,
        to: SocketAddr,
        seq: u32,
        ack: u32,
        flags: u8,
        opts: &[u8],
        payload: &[u8],
    ) {
        let s = net::tcp(
            from.ip(),
            to.ip(),
            from.port(),
            to.port(),
            seq,
            ack,
            flags,
            64240,
            opts,
            payload,
        );
        self.push_ip(t, from.ip(), to.ip(), net::PROTO_TCP, &s, false);
    }
}

/// Signalling path between caller and callee: UDP datagrams or one TCP connection.
struct SigPath {
    /// Caller's on-wire address (after NAT; the ephemeral port for TCP).
    caller: SocketAddr,
    callee: SocketAddr,
    tcp: Option<TcpState>,
    frag_reverse: bool,
}

struct TcpState {
    /// Next sequence number the caller (client) / callee (server) will send.
    c_next: u32,
    s_next: u32,
}

const MSS_OPT: [u8; 4] = [2, 4, 0x05, 0xB4]; // MSS 1460

impl SigPath {
    fn ends(&self, from_caller: bool) -> (SocketAddr, SocketAddr) {
        if from_caller {
            (self.caller, self.callee)
        } else {
            (self.callee, self.caller)
        }
    }

    /// Three-way handshake at `t` (caller is the client). Returns the time after it.
    fn open(&mut self, em: &mut Emitter, t: u64, rng: &mut Rng) -> u64 {
        let (c_isn, s_isn) = (rng.next_u32(), rng.next_u32());
        let (c, s) = (self.caller, self.callee);
        em.tcp(t, c, s, c_isn, 0, tcp_flags::SYN, &MSS_OPT, &[]);
        em.tcp(
            t + 300 * US,
            s,
            c,
            s_isn,
            c_isn.wrapping_add(1),
            tcp_flags::SYN | tcp_flags::ACK,
            &MSS_OPT,
            &[],
        );
        em.tcp(
            t + 500 * US,
            c,
            s,
            c_isn.wrapping_add(1),
            s_isn.wrapping_add(1),
            tcp_flags::ACK,
            &[],
            &[],
        );
        self.tcp = Some(TcpState {
            c_next: c_isn.wrapping_add(1),
            s_next: s_isn.wrapping_add(1),
        });
        t + 500 * US
    }

    /// Send one SIP message (or several coalesced). For TCP, `split_at`
    /// splits the bytes over two segments; the peer ACKs afterwards.
    fn send(
        &mut self,
        em: &mut Emitter,
        t: u64,
        from_caller: bool,
        data: &[u8],
        split_at: Option<usize>,
    ) {
        let (from, to) = self.ends(from_caller);
        match &mut self.tcp {
            None => em.udp(t, from, to, data, self.frag_reverse),
            Some(st) => {
                let pieces: Vec<&[u8]> = match split_at {
                    Some(k) if k > 0 && k < data.len() => vec![&data[..k], &data[k..]],
                    _ => vec![data],
                };
                let mut tt = t;
                for p in &pieces {
                    let (seq, ack) = if from_caller {
                        (st.c_next, st.s_next)
                    } else {
                        (st.s_next, st.c_next)
                    };
                    em.tcp(
                        tt,
                        from,
                        to,
                        seq,
                        ack,
                        tcp_flags::PSH | tcp_flags::ACK,
                        &[],
                        p,
                    );
                    if from_caller {
                        st.c_next = st.c_next.wrapping_add(p.len() as u32);
                    } else {
                        st.s_next = st.s_next.wrapping_add(p.len() as u32);
                    }
                    tt += 40 * US;
                }
                let (seq, ack) = if from_caller {
                    (st.s_next, st.c_next)
                } else {
                    (st.c_next, st.s_next)
                };
                em.tcp(tt + 160 * US, to, from, seq, ack, tcp_flags::ACK, &[], &[]);
            }
        }
    }

    /// Orderly close, initiated by `from_caller`'s side.
    fn close(&mut self, em: &mut Emitter, t: u64, from_caller: bool) {
        let (a, b) = self.ends(from_caller);
        if let Some(st) = &mut self.tcp {
            let (a_next, b_next) = if from_caller {
                (&mut st.c_next, &mut st.s_next)
            } else {
                (&mut st.s_next, &mut st.c_next)
            };
            em.tcp(
                t,
                a,
                b,
                *a_next,
                *b_next,
                tcp_flags::FIN | tcp_flags::ACK,
                &[],
                &[],
            );
            *a_next = a_next.wrapping_add(1);
            em.tcp(
                t + 300 * US,
                b,
                a,
                *b_next,
                *a_next,
                tcp_flags::FIN | tcp_flags::ACK,
                &[],
                &[],
            );
            *b_next = b_next.wrapping_add(1);
            em.tcp(
                t + 500 * US,
                a,
                b,
                *a_next,
                *b_next,
                tcp_flags::ACK,
                &[],
                &[],
            );
        }
    }
}

/// SIP dialog identity and header helpers.
struct Dialog {
    call_id: String,
    from_tag: String,
    to_tag: String,
    caller_user: String,
    caller_display: Option<String>,
    callee_user: String,
    /// Host of the From and To URIs.
    domain: String,
    /// Address the caller believes it has (private when behind NAT).
    caller_adv: IpAddr,
    callee_ip: IpAddr,
    /// Caller's on-wire signalling source, for received=/rport=.
    caller_wire: SocketAddr,
    nat: bool,
    tcp: bool,
}

impl Dialog {
    fn transport(&self) -> &'static str {
        if self.tcp { "TCP" } else { "UDP" }
    }
    fn uri_param(&self) -> &'static str {
        if self.tcp { ";transport=tcp" } else { "" }
    }
    fn request_uri(&self) -> String {
        format!(
            "sip:{}@{}{}",
            self.callee_user,
            hostport(self.callee_ip, 5060),
            self.uri_param()
        )
    }
    fn caller_contact_uri(&self) -> String {
        format!(
            "sip:{}@{}{}",
            self.caller_user,
            hostport(self.caller_adv, 5060),
            self.uri_param()
        )
    }
    fn callee_contact(&self) -> String {
        format!("<{}>", self.request_uri())
    }
    fn from(&self) -> String {
        let uri = format!(
            "<sip:{}@{}>;tag={}",
            self.caller_user, self.domain, self.from_tag
        );
        match &self.caller_display {
            Some(d) => format!("\"{d}\" {uri}"),
            None => uri,
        }
    }
    fn to(&self, tagged: bool) -> String {
        let mut s = format!("<sip:{}@{}>", self.callee_user, self.domain);
        if tagged {
            s.push_str(";tag=");
            s.push_str(&self.to_tag);
        }
        s
    }
    fn caller_via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport(),
            hostport(self.caller_adv, 5060)
        )
    }
    fn callee_via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch}",
            self.transport(),
            hostport(self.callee_ip, 5060)
        )
    }
    /// The caller's Via as echoed by the callee (RFC 3581 received/rport).
    fn echoed_caller_via(&self, branch: &str) -> String {
        let received = if self.nat {
            format!(";received={}", self.caller_wire.ip())
        } else {
            String::new()
        };
        format!(
            "SIP/2.0/{} {};branch={branch}{received};rport={}",
            self.transport(),
            hostport(self.caller_adv, 5060),
            self.caller_wire.port()
        )
    }

    /// Request from the caller within (or creating) the dialog.
    fn caller_request(
        &self,
        method: &str,
        uri: &str,
        branch: &str,
        cseq: u32,
        to_tagged: bool,
    ) -> Msg {
        Msg::request(method, uri)
            .header("Via", self.caller_via(branch))
            .header("Max-Forwards", "70")
            .header("From", self.from())
            .header("To", self.to(to_tagged))
            .header("Call-ID", self.call_id.clone())
            .header("CSeq", format!("{cseq} {method}"))
    }

    /// Response from the callee to a caller request.
    fn callee_response(
        &self,
        code: u16,
        reason: &str,
        branch: &str,
        cseq: u32,
        method: &str,
        to_tagged: bool,
    ) -> Msg {
        Msg::response(code, reason)
            .header("Via", self.echoed_caller_via(branch))
            .header("From", self.from())
            .header("To", self.to(to_tagged))
            .header("Call-ID", self.call_id.clone())
            .header("CSeq", format!("{cseq} {method}"))
            .header("Server", "voxtap-gen PBX")
    }
}

/// The CSeq number of a message under construction.
fn req_cseq(m: &Msg) -> u32 {
    m.header_value("CSeq")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// One RTP source (SSRC) state.
struct RtpState {
    ssrc: u32,
    seq: u16,
    /// SRTP rollover counter: sequence number wraps so far (RFC 3711 §3.3.1).
    roc: u32,
    ts0: u32,
    last_slot: Option<u64>,
    /// The stream's encoder, made at its first audio packet.
    enc: Option<PayloadEncoder>,
}

impl RtpState {
    fn new(rng: &mut Rng) -> Self {
        RtpState {
            ssrc: rng.next_u32(),
            seq: rng.next_u16(),
            roc: 0,
            ts0: rng.next_u32(),
            last_slot: None,
            enc: None,
        }
    }
}

/// How one direction's packets are protected on the wire.
enum Protect {
    None,
    /// SRTP with the sender's key in force from each time on (a re-key adds one).
    Srtp(Vec<(u64, SrtpContext)>),
    /// Encrypted with keys nobody observing has (DTLS-SRTP): random payload and tag.
    Opaque(Rng),
}

/// Tag bytes of SRTP's default HMAC-SHA1-80 (RFC 3711 §4.2), for the opaque payloads.
const OPAQUE_TAG_LEN: usize = 10;

/// One round of SDES keys: the offer's lines (tags 1, 2...) and the answer's line.
pub(crate) struct KeyEpoch {
    pub(crate) offer: Vec<CryptoAttr>,
    pub(crate) answer: CryptoAttr,
}

fn sdes_attr(tag: u32, suite: SrtpSuite, rng: &mut Rng) -> Result<CryptoAttr, GenError> {
    let key_salt: Vec<u8> = (0..suite.key_salt_len())
        .map(|_| rng.next_u64() as u8)
        .collect();
    let key = InlineKey::new(suite, &key_salt).map_err(|e| GenError::Srtp(e.to_string()))?;
    Ok(CryptoAttr {
        tag,
        suite,
        keys: vec![key],
        params: SessionParams::default(),
    })
}

impl KeyEpoch {
    /// RFC 4568 §5.1.2: the answer takes one of the offered tags with its own key.
    pub(crate) fn new(
        offer: &[SrtpSuite],
        pick: usize,
        rng: &mut Rng,
    ) -> Result<KeyEpoch, GenError> {
        let offer = offer
            .iter()
            .zip(1u32..)
            .map(|(&suite, tag)| sdes_attr(tag, suite, rng))
            .collect::<Result<Vec<_>, _>>()?;
        let chosen = offer
            .get(pick)
            .or(offer.first())
            .ok_or_else(|| GenError::Srtp("an SDES offer needs a suite".into()))?;
        let answer = sdes_attr(chosen.tag, chosen.suite, rng)?;
        Ok(KeyEpoch { offer, answer })
    }

    pub(crate) fn chosen(&self) -> &CryptoAttr {
        self.offer
            .iter()
            .find(|a| a.tag == self.answer.tag)
            .unwrap_or(&self.answer)
    }
}

/// `n` random bytes as an SDP fingerprint, `AB:CD:...` (RFC 8122 §5).
fn fingerprint(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| format!("{:02X}", rng.next_u64() as u8))
        .collect::<Vec<_>>()
        .join(":")
}

/// A DTLS 1.2 handshake record (RFC 6347 §4.1) of `len` random bytes: what a DTLS-SRTP
/// endpoint sends on its media port before any SRTP (RFC 5764 §5.1.2 tells them apart).
fn dtls_record(rng: &mut Rng, handshake_type: u8, len: usize) -> Vec<u8> {
    let mut r = vec![22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0];
    r.extend_from_slice(&(len as u16 + 1).to_be_bytes());
    r.push(handshake_type);
    r.extend((0..len).map(|_| rng.next_u64() as u8));
    r
}

/// From `from_ns` on, send with `state` from `src` to `dst`.
struct Leg {
    from_ns: u64,
    state: usize,
    src: SocketAddr,
    dst: SocketAddr,
}

/// Media plan of one direction.
struct SidePlan {
    legs: Vec<Leg>,
    states: Vec<RtpState>,
    /// Spans [from, to) in which this side sends nothing.
    pauses: Vec<(u64, u64)>,
    /// Requested DTMF digits (time, digit).
    dtmf: Vec<(u64, char)>,
    /// In-band digits: packets sent in [from, to) carry the digit's tones instead of the tone.
    inband: Vec<(u64, u64, char)>,
    tone_hz: f64,
    codec: Codec,
    protect: Protect,
}

struct PlannedPkt {
    t: u64,
    src: SocketAddr,
    dst: SocketAddr,
    data: Vec<u8>,
    state: usize,
}

struct SideResult {
    pkts: Vec<PlannedPkt>,
    dtmf_at: Vec<(u64, char)>,
    /// (first skipped slot time, first resumed slot time) per pause.
    silent: Vec<(u64, u64)>,
}

/// Number of 20 ms slots a DTMF event occupies (5 updates, end + 2 retransmissions).
const DTMF_SLOTS: u64 = 8;

fn plan_side(
    side: &mut SidePlan,
    media0: u64,
    last_ns: u64,
    rng: &mut Rng,
) -> Result<SideResult, GenError> {
    let codec = side.codec;
    let ticks = codec.ticks_per_packet();
    let codec_err = |why: String| GenError::Codec { codec, why };
    let mut res = SideResult {
        pkts: Vec::new(),
        dtmf_at: Vec::new(),
        silent: Vec::new(),
    };
    let mut pending_dtmf: std::collections::VecDeque<(u64, char)> =
        side.dtmf.iter().copied().collect();
    // (event start slot, code) for the event in progress
    let mut event: Option<(u64, u8)> = None;
    let mut silent_from: Option<u64> = None;
    let mut k = 0u64;
    loop {
        let tk = media0 + k * PACKET_NS;
        if tk > last_ns {
            break;
        }
        let slot = k;
        k += 1;
        let Some(leg) = side.legs.iter().rev().find(|l| l.from_ns <= tk) else {
            continue;
        };
        if side.pauses.iter().any(|&(a, b)| tk >= a && tk < b) {
            silent_from.get_or_insert(tk);
            continue;
        }
        if let Some(from) = silent_from.take() {
            res.silent.push((from, tk));
        }
        let st = &mut side.states[leg.state];
        let marker_gap = st.last_slot.is_none_or(|l| l + 1 != slot);
        let ts_slot = st.ts0.wrapping_add((slot as u32).wrapping_mul(ticks));
        if event.is_none()
            && pending_dtmf.front().is_some_and(|&(t, _)| tk >= t)
            && tk + DTMF_SLOTS * PACKET_NS <= last_ns
            && let Some((_, d)) = pending_dtmf.pop_front()
            && let Some(code) = rtp::dtmf_event_code(d)
        {
            event = Some((slot, code));
            res.dtmf_at.push((tk, d));
        }
        let (hdr, payload) = match event {
            Some((start, code)) => {
                let j = slot - start;
                let ev_ts = st.ts0.wrapping_add((start as u32).wrapping_mul(ticks));
                // RFC 4733 §2.5.1.3: the duration counts the event's clock ticks so far.
                let (end, dur) = if j < 5 {
                    (false, (j + 1) * u64::from(ticks))
                } else {
                    (true, 6 * u64::from(ticks))
                };
                if j + 1 >= DTMF_SLOTS {
                    event = None;
                }
                let h = RtpHeader {
                    marker: j == 0,
                    payload_type: PT_TELEPHONE_EVENT,
                    seq: st.seq,
                    timestamp: ev_ts,
                    ssrc: st.ssrc,
                };
                (h, rtp::telephone_event(code, end, 10, dur as u16).to_vec())
            }
            None => {
                let h = RtpHeader {
                    marker: marker_gap,
                    payload_type: side.codec.payload_type(),
                    seq: st.seq,
                    timestamp: ts_slot,
                    ssrc: st.ssrc,
                };
                let n = codec.samples_per_packet();
                let first = slot * u64::from(n);
                let rate = codec.pcm_rate();
                let pcm = match side.inband.iter().find(|&&(a, b, _)| tk >= a && tk < b) {
                    Some(&(_, _, d)) => rtp::dtmf_pcm(d, rate, first, n),
                    None => rtp::tone_pcm(side.tone_hz, rate, first, n),
                };
                let enc = match &mut st.enc {
                    Some(e) => e,
                    None => st
                        .enc
                        .insert(PayloadEncoder::new(codec).map_err(codec_err)?),
                };
                (h, enc.encode(&pcm).map_err(codec_err)?)
            }
        };
        let plain = rtp::rtp_packet(&hdr, &payload);
        let data = match &mut side.protect {
            Protect::None => plain,
            Protect::Srtp(keys) => {
                // The key in force when the packet is sent; the ROC of its SSRC.
                let Some((_, ctx)) = keys.iter_mut().rev().find(|(from, _)| *from <= tk) else {
                    return Err(GenError::Srtp("no key in force".into()));
                };
                let mut out = Vec::with_capacity(plain.len() + 16);
                ctx.protect_rtp_with_roc(&plain, st.roc, &mut out)
                    .map_err(|e| GenError::Srtp(e.to_string()))?;
                out
            }
            Protect::Opaque(krng) => {
                // The RTP header stays in the clear (RFC 3711 §3.1); the rest is noise.
                let mut out: Vec<u8> = plain.iter().take(12).copied().collect();
                out.extend((12..plain.len() + OPAQUE_TAG_LEN).map(|_| krng.next_u64() as u8));
                out
            }
        };
        st.seq = st.seq.wrapping_add(1);
        if st.seq == 0 {
            st.roc = st.roc.wrapping_add(1);
        }
        st.last_slot = Some(slot);
        // ±1 ms arrival jitter, whole microseconds
        let jitter = rng.range(0, 2000) as i64 - 1000;
        let t = (tk as i64 + jitter * US as i64) as u64;
        res.pkts.push(PlannedPkt {
            t,
            src: leg.src,
            dst: leg.dst,
            data,
            state: leg.state,
        });
    }
    if let Some(from) = silent_from {
        res.silent.push((from, last_ns));
    }
    Ok(res)
}

/// Drop 2% of the packets and swap 2% of adjacent pairs (exact counts,
/// at least one each, seeded random positions). The first 3 and the last
/// packet of an SSRC are never touched, so tshark's expected count
/// (highest seq − first seq + 1) equals sent packets. Returns the lost count.
fn impair(pkts: &mut Vec<PlannedPkt>, rng: &mut Rng) -> u64 {
    let protected = |i: usize, pkts: &[PlannedPkt]| {
        let s = pkts[i].state;
        let before = pkts[..i].iter().filter(|p| p.state == s).count();
        let after = pkts[i + 1..].iter().filter(|p| p.state == s).count();
        before < 3 || after == 0
    };
    let n = pkts.len();
    let target = ((n as f64 * 0.02).round() as usize).max(1);
    let eligible: Vec<usize> = (0..n).filter(|&i| !protected(i, pkts)).collect();
    let mut drop = vec![false; n];
    let mut lost = 0usize;
    let mut tries = 0;
    while lost < target.min(eligible.len()) && tries < 10_000 {
        tries += 1;
        let i = eligible[rng.range(0, eligible.len() as u64 - 1) as usize];
        if !drop[i] {
            drop[i] = true;
            lost += 1;
        }
    }
    let mut kept: Vec<PlannedPkt> = pkts
        .drain(..)
        .zip(drop)
        .filter_map(|(p, d)| (!d).then_some(p))
        .collect();
    let m = kept.len();
    let mut swapped = vec![false; m];
    let (mut swaps, mut tries) = (0, 0);
    while m >= 3 && swaps < target && tries < 10_000 {
        tries += 1;
        let i = rng.range(0, m as u64 - 2) as usize;
        let busy = swapped[i]
            || swapped[i + 1]
            || (i > 0 && swapped[i - 1])
            || (i + 2 < m && swapped[i + 2]);
        if busy
            || kept[i].state != kept[i + 1].state
            || protected(i, &kept)
            || protected(i + 1, &kept)
        {
            continue;
        }
        let (a, b) = (kept[i].t, kept[i + 1].t);
        kept[i].t = b;
        kept[i + 1].t = a;
        swapped[i] = true;
        swapped[i + 1] = true;
        swaps += 1;
    }
    *pkts = kept;
    lost as u64
}

fn us_floor(ns: u64) -> u64 {
    ns / US * US
}

/// The caller's and the callee's own addresses in call `spec` (what their signalling comes
/// from and, without NAT, their media). Onnet parties of every call have addresses of their
/// own: 10.1.0.0/16 (callers) and 10.2.0.0/16 (callees), 255 × 250 of each; IPv6 ones
/// fd00:1::n and fd00:2::n. Offnet parties (198.51.100.x calling, 192.0.2.x called) take
/// the same 250 addresses in turn.
///
/// # Panics
///
/// From the 63,751st call on (`spec.idx` ≥ 63,750): there are no more addresses.
pub fn party_ips(spec: &CallSpec) -> (IpAddr, IpAddr) {
    let i = spec.idx;
    assert!(
        i < 255 * 250,
        "at most 63,750 calls have addresses of their own"
    );
    let (hi, lo) = ((1 + i / 250) as u8, (1 + i % 250) as u8);
    if spec.ipv6 {
        return (
            Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, (i + 1) as u16).into(),
            Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, (i + 1) as u16).into(),
        );
    }
    let [caller_off, callee_off] = spec.offnet;
    (
        if caller_off {
            Ipv4Addr::new(198, 51, 100, lo).into()
        } else {
            Ipv4Addr::new(10, 1, hi, lo).into()
        },
        if callee_off {
            Ipv4Addr::new(192, 0, 2, lo).into()
        } else {
            Ipv4Addr::new(10, 2, hi, lo).into()
        },
    )
}

/// Generate one call's frames and truth.
pub fn generate_call(spec: &CallSpec) -> Result<(Vec<Frame>, CallTruth), GenError> {
    let mut rng = Rng::derive(spec.seed, 0x1000 + spec.idx as u64);
    let i = spec.idx;
    let lo = (1 + i % 250) as u8;
    let (caller_ip, callee_ip) = party_ips(spec);
    let (caller_adv, caller_wire_ip): (IpAddr, IpAddr) = if spec.nat {
        (
            Ipv4Addr::new(192, 168, 1, 10 + (i % 200) as u8).into(),
            Ipv4Addr::new(203, 0, 113, lo).into(),
        )
    } else {
        (caller_ip, caller_ip)
    };
    let sip_wire_port = if spec.tcp {
        rng.range(49152, 65000) as u16
    } else if spec.nat {
        rng.range(20000, 29999) as u16
    } else {
        5060
    };
    let nat_port = |p: u16, rng: &mut Rng| {
        if spec.nat {
            rng.range(30000, 59999) as u16
        } else {
            p
        }
    };
    let caller_rtp_wire = nat_port(spec.caller_rtp_port, &mut rng);
    let caller_rtp_wire2 = nat_port(spec.caller_rtp_port2, &mut rng);
    let caller_sig = SocketAddr::new(caller_wire_ip, sip_wire_port);
    let callee_sig = SocketAddr::new(callee_ip, 5060);

    let dlg = Dialog {
        call_id: format!("{}@gen.voxtap", rng.hex(12)),
        from_tag: rng.hex(4),
        to_tag: rng.hex(4),
        caller_user: if spec.offnet[0] {
            format!("+4930555{i:04}")
        } else {
            format!("1{i:04}")
        },
        caller_display: spec.caller_display.clone(),
        callee_user: if spec.offnet[1] {
            format!("+4940666{i:04}")
        } else {
            format!("2{i:04}")
        },
        domain: spec.domain.map_or_else(|| host(callee_ip), str::to_string),
        caller_adv,
        callee_ip,
        caller_wire: caller_sig,
        nat: spec.nat,
        tcp: spec.tcp,
    };
    let mut em = Emitter {
        frames: Vec::new(),
        tags: spec.tags.clone(),
        ip_id: rng.next_u16(),
    };
    let mut sig = SigPath {
        caller: caller_sig,
        callee: callee_sig,
        tcp: None,
        frag_reverse: spec.frag_reverse,
    };
    let branch = |rng: &mut Rng| format!("z9hG4bK{}", rng.hex(8));

    let caller_sess = rng.range(1_000_000, 9_999_999);
    let callee_sess = rng.range(1_000_000, 9_999_999);

    // Keys come from their own stream: SRTP changes nothing else of the call.
    let mut krng = Rng::derive(spec.seed, 0x5EC0_0000 + spec.idx as u64);
    let (epochs, dtls) = match &spec.srtp {
        SrtpPlan::None => (Vec::new(), None),
        SrtpPlan::Sdes { offer, pick, rekey } => {
            let mut e = vec![KeyEpoch::new(offer, *pick, &mut krng)?];
            if *rekey {
                e.push(KeyEpoch::new(offer, *pick, &mut krng)?);
            }
            (e, None)
        }
        SrtpPlan::Dtls => {
            let fps = (fingerprint(&mut krng, 32), fingerprint(&mut krng, 32));
            (Vec::new(), Some(fps))
        }
    };
    // The caller offers every line of its keys; answering (a callee's re-INVITE) it gives
    // the chosen one. The callee always gives its answer's line.
    let caller_sec = |epoch: usize, offer: bool| match (&dtls, epochs.get(epoch)) {
        (Some((fp, _)), _) => Security::Dtls {
            fingerprint: fp.clone(),
            setup: "actpass",
        },
        (None, Some(e)) if offer => Security::Sdes(e.offer.iter().map(|a| a.to_string()).collect()),
        (None, Some(e)) => Security::Sdes(vec![e.chosen().to_string()]),
        (None, None) => Security::Plain,
    };
    let callee_sec = |epoch: usize| match (&dtls, epochs.get(epoch)) {
        (Some((_, fp)), _) => Security::Dtls {
            fingerprint: fp.clone(),
            setup: "active",
        },
        (None, Some(e)) => Security::Sdes(vec![e.answer.to_string()]),
        (None, None) => Security::Plain,
    };
    let caller_sdp = |version: u64, port: u16, dir: Direction, many: bool, security: Security| {
        Sdp {
            user: dlg.caller_user.clone(),
            session_id: caller_sess,
            version,
            addr: caller_adv,
            port,
            codec: spec.codec,
            direction: dir,
            many_codecs: many,
            security,
        }
        .render()
    };
    let callee_sdp = |version: u64, dir: Direction, security: Security| {
        Sdp {
            user: dlg.callee_user.clone(),
            session_id: callee_sess,
            version,
            addr: callee_ip,
            port: spec.callee_rtp_port,
            codec: spec.codec,
            direction: dir,
            many_codecs: false,
            security,
        }
        .render()
    };

    // ---- INVITE transaction -------------------------------------------------
    let mut t_inv = spec.start_ns;
    if spec.tcp {
        sig.open(&mut em, t_inv, &mut rng);
        t_inv += MS;
    }
    let inv_branch = branch(&mut rng);
    let mut invite = dlg
        .caller_request("INVITE", &dlg.request_uri(), &inv_branch, 1, false)
        .header("Contact", format!("<{}>", dlg.caller_contact_uri()))
        .header(
            "Allow",
            "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY",
        )
        .header("Supported", "replaces, timer")
        .header("User-Agent", "voxtap-gen caller");
    if let Some(mode) = spec.record_mode {
        invite = invite.header("X-Record-Mode", mode);
    }
    let session_id = format!("sess-{}", dlg.call_id);
    if spec.on_demand == OnDemandPlan::MediaControl {
        invite = invite.header("X-Session-Id", session_id.clone());
    }
    if spec.big_invite {
        invite = invite
            .header(
                "P-Asserted-Identity",
                format!(
                    "\"{}\" <sip:{}@{}>",
                    spec.caller_display.as_deref().unwrap_or("Caller"),
                    dlg.caller_user,
                    host(callee_ip)
                ),
            )
            .header("Privacy", "none")
            .header("Session-Expires", "1800;refresher=uac")
            .header("Min-SE", "90")
            .header(
                "Allow-Events",
                "talk, hold, conference, refer, check-sync, presence, dialog, message-summary",
            )
            .header(
                "Accept",
                "application/sdp, application/dtmf-relay, multipart/mixed",
            )
            .header("Accept-Language", "en, de;q=0.8, fr;q=0.5")
            .header(
                "Organization",
                "voxtap generator test organisation with a deliberately long name",
            )
            .header(
                "Subject",
                "Fragmented INVITE test call: this message is larger than the Ethernet MTU",
            );
        for n in 1..=24 {
            invite = invite.header(&format!("X-Voxtap-Pad-{n:02}"), rng.hex(32));
        }
    }
    let invite = invite
        .sdp(caller_sdp(
            1,
            spec.caller_rtp_port,
            Direction::SendRecv,
            spec.big_invite,
            caller_sec(0, true),
        ))
        .render();
    let split = spec.tcp.then_some(invite.len() * 2 / 5);
    sig.send(&mut em, t_inv, true, &invite, split);

    let trying = dlg
        .callee_response(100, "Trying", &inv_branch, 1, "INVITE", false)
        .render();
    let t_prog = t_inv + 40 * MS;
    let progress = if spec.early_media {
        dlg.callee_response(183, "Session Progress", &inv_branch, 1, "INVITE", true)
            .header("Contact", dlg.callee_contact())
            .sdp(callee_sdp(1, Direction::SendRecv, callee_sec(0)))
            .render()
    } else {
        dlg.callee_response(180, "Ringing", &inv_branch, 1, "INVITE", true)
            .header("Contact", dlg.callee_contact())
            .render()
    };
    if spec.tcp {
        let mut both = trying.clone();
        both.extend_from_slice(&progress);
        sig.send(&mut em, t_prog, false, &both, None);
    } else {
        sig.send(&mut em, t_inv + 2 * MS, false, &trying, None);
        sig.send(&mut em, t_prog, false, &progress, None);
    }

    let mut truth = CallTruth {
        sip_call_id: dlg.call_id.clone(),
        caller_user: dlg.caller_user.clone(),
        caller_display: spec.caller_display.clone(),
        callee_user: dlg.callee_user.clone(),
        answered: false,
        recorded: false,
        codec: spec.codec.name(),
        codec_id: spec.codec.id().to_string(),
        clock_rate: spec.codec.clock_rate(),
        fmtp: spec.codec.fmtp().to_string(),
        record_rate: spec.codec.record_rate(),
        security: match spec.srtp {
            SrtpPlan::None => "rtp",
            SrtpPlan::Sdes { .. } => "sdes-srtp",
            SrtpPlan::Dtls => "dtls-srtp",
        }
        .to_string(),
        srtp_suite: epochs.first().map(|e| e.answer.suite.name().to_string()),
        srtp_tag: epochs.first().map(|e| e.answer.tag),
        rekeys_at_secs: Vec::new(),
        recording_state: if dtls.is_some() {
            "no-audio"
        } else {
            "complete"
        }
        .to_string(),
        stream_status: if dtls.is_some() {
            "encrypted"
        } else {
            "decoded"
        }
        .to_string(),
        caller_tone_hz: spec.caller_tone_hz,
        callee_tone_hz: spec.callee_tone_hz,
        start_ns: t_inv,
        answer_ns: None,
        end_ns: 0,
        recorded_secs: 0.0,
        final_status: 0,
        end_reason: String::new(),
        transport: if spec.tcp { "tcp" } else { "udp" }.to_string(),
        dtmf: Vec::new(),
        silent_spans: Vec::new(),
        rtp_packets_caller: 0,
        rtp_packets_callee: 0,
        lost_caller: 0,
        lost_callee: 0,
        controls: Vec::new(),
        record_mode: spec.record_mode.map(str::to_string),
        conversation: None,
        leg: String::new(),
        segment: String::new(),
        via_server: [false; 2],
        parties_internal: [false; 2],
        expected_direction: String::new(),
        link_evidence: Vec::new(),
        relays_ssrc: false,
        sees_both_parties: false,
        tone_spans: Vec::new(),
    };

    if spec.cancel {
        let t_c = t_inv + spec.ring_ns;
        let cancel = dlg
            .caller_request("CANCEL", &dlg.request_uri(), &inv_branch, 1, false)
            .header("User-Agent", "voxtap-gen caller")
            .render();
        sig.send(&mut em, t_c, true, &cancel, None);
        let ok = dlg
            .callee_response(200, "OK", &inv_branch, 1, "CANCEL", true)
            .render();
        sig.send(&mut em, t_c + 3 * MS, false, &ok, None);
        let t_487 = t_c + 5 * MS;
        let term = dlg
            .callee_response(487, "Request Terminated", &inv_branch, 1, "INVITE", true)
            .render();
        sig.send(&mut em, t_487, false, &term, None);
        let ack = dlg
            .caller_request("ACK", &dlg.request_uri(), &inv_branch, 1, true)
            .render();
        sig.send(&mut em, t_c + 8 * MS, true, &ack, None);
        if spec.tcp {
            sig.close(&mut em, t_c + 100 * MS, true);
        }
        truth.end_ns = t_487;
        truth.final_status = 487;
        truth.end_reason = "cancelled".into();
        return Ok((em.frames, truth));
    }

    // ---- answer ---------------------------------------------------------------
    let t_a = t_inv + spec.ring_ns;
    let ok = dlg
        .callee_response(200, "OK", &inv_branch, 1, "INVITE", true)
        .header("Contact", dlg.callee_contact())
        .header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE")
        .sdp(callee_sdp(1, Direction::SendRecv, callee_sec(0)))
        .render();
    sig.send(&mut em, t_a, false, &ok, None);
    let ack = dlg
        .caller_request("ACK", &dlg.request_uri(), &branch(&mut rng), 1, true)
        .render();
    sig.send(&mut em, t_a + 3 * MS, true, &ack, None);

    let t_bye = t_a + spec.talk_ns;
    let mut caller_cseq = 1;

    // ---- on-demand requests from the callee ---------------------------------------
    let at = |f: f64| t_a + us_floor((spec.talk_ns as f64 * f) as u64);
    let rel_a = |t: u64| (t - t_a) as f64 / 1e9;
    let mut callee_cseq = 10;
    let plan: &[(f64, &str, &str)] = match spec.on_demand {
        OnDemandPlan::None | OnDemandPlan::DtmfPause => &[],
        OnDemandPlan::InfoRecord => &[(0.3, "stop", "sip-info"), (0.6, "start", "sip-info")],
        OnDemandPlan::MediaControl => &[
            (0.2, "pause", "message"),
            (0.35, "resume", "message"),
            (0.55, "pause", "message-json"),
            (0.75, "resume", "message-json"),
        ],
    };
    for &(f, action, via) in plan {
        let t = at(f);
        let b = branch(&mut rng);
        let operation = match action {
            "pause" => "pause-audio-recording",
            _ => "resume-audio-recording",
        };
        let (req, call_id, from, to, method) = match via {
            "sip-info" => {
                callee_cseq += 1;
                let value = if action == "start" { "on" } else { "off" };
                let m = Msg::request("INFO", &dlg.caller_contact_uri())
                    .header("Via", dlg.callee_via(&b))
                    .header("From", dlg.to(true))
                    .header("To", dlg.from())
                    .header("Call-ID", dlg.call_id.clone())
                    .header("CSeq", format!("{callee_cseq} INFO"))
                    .header("Record", value);
                (m, dlg.call_id.clone(), dlg.to(true), dlg.from(), "INFO")
            }
            "message" => {
                callee_cseq += 1;
                let m = Msg::request("MESSAGE", &dlg.caller_contact_uri())
                    .header("Via", dlg.callee_via(&b))
                    .header("From", dlg.to(true))
                    .header("To", dlg.from())
                    .header("Call-ID", dlg.call_id.clone())
                    .header("CSeq", format!("{callee_cseq} MESSAGE"))
                    .body("application/x-media-control", operation.to_string());
                (m, dlg.call_id.clone(), dlg.to(true), dlg.from(), "MESSAGE")
            }
            _ => {
                // Out of dialog: its own Call-ID; the agent's desk speaks for the callee.
                let call_id = format!("{}@desk.gen.voxtap", rng.hex(10));
                let from = format!(
                    "<sip:{}@{}>;tag={}",
                    dlg.callee_user,
                    host(callee_ip),
                    rng.hex(4)
                );
                let to = format!("<sip:recorder@{}>", host(callee_ip));
                let m = Msg::request("MESSAGE", &format!("sip:recorder@{}", host(callee_ip)))
                    .header("Via", dlg.callee_via(&b))
                    .header("From", from.clone())
                    .header("To", to.clone())
                    .header("Call-ID", call_id.clone())
                    .header("CSeq", "1 MESSAGE")
                    .body(
                        "application/x-media-control+json",
                        format!(
                            "{{\"operation\": \"{operation}\", \"session_id\": \"{session_id}\"}}"
                        ),
                    );
                (m, call_id, from, to, "MESSAGE")
            }
        };
        let cseq = req_cseq(&req);
        sig.send(
            &mut em,
            t,
            false,
            &req.header("Max-Forwards", "70").render(),
            None,
        );
        let ok = Msg::response(200, "OK")
            .header("Via", dlg.callee_via(&b))
            .header("From", from)
            .header("To", to)
            .header("Call-ID", call_id)
            .header("CSeq", format!("{cseq} {method}"))
            .render();
        sig.send(&mut em, t + 2 * MS, true, &ok, None);
        truth.controls.push(ControlTruth {
            action: action.into(),
            side: "callee".into(),
            via: via.into(),
            at_secs: rel_a(t),
        });
    }

    // ---- transfer to an external party ----------------------------------------------
    if spec.transfer_external {
        // RFC 3325 §9.1: the PBX names the party it put through in P-Asserted-Identity.
        let t = at(0.5);
        let b = branch(&mut rng);
        callee_cseq += 1;
        let reinv = Msg::request("INVITE", &dlg.caller_contact_uri())
            .header("Via", dlg.callee_via(&b))
            .header("Max-Forwards", "70")
            .header("From", dlg.to(true))
            .header("To", dlg.from())
            .header("Call-ID", dlg.call_id.clone())
            .header("CSeq", format!("{callee_cseq} INVITE"))
            .header("Contact", dlg.callee_contact())
            .header(
                "P-Asserted-Identity",
                format!("<sip:+4940777{i:04}@{}>", dlg.domain),
            )
            .sdp(callee_sdp(2, Direction::SendRecv, callee_sec(0)))
            .render();
        sig.send(&mut em, t, false, &reinv, None);
        let ok = Msg::response(200, "OK")
            .header("Via", dlg.callee_via(&b))
            .header("From", dlg.to(true))
            .header("To", dlg.from())
            .header("Call-ID", dlg.call_id.clone())
            .header("CSeq", format!("{callee_cseq} INVITE"))
            .header("Contact", format!("<{}>", dlg.caller_contact_uri()))
            .sdp(caller_sdp(
                2,
                spec.caller_rtp_port,
                Direction::SendRecv,
                false,
                caller_sec(0, false),
            ))
            .render();
        sig.send(&mut em, t + 20 * MS, true, &ok, None);
        let ack = Msg::request("ACK", &dlg.caller_contact_uri())
            .header("Via", dlg.callee_via(&branch(&mut rng)))
            .header("Max-Forwards", "70")
            .header("From", dlg.to(true))
            .header("To", dlg.from())
            .header("Call-ID", dlg.call_id.clone())
            .header("CSeq", format!("{callee_cseq} ACK"))
            .render();
        sig.send(&mut em, t + 23 * MS, false, &ack, None);
        truth.controls.push(ControlTruth {
            action: "stop".into(),
            side: "callee".into(),
            via: "transfer".into(),
            at_secs: rel_a(t),
        });
    }

    // ---- hold / move re-INVITEs -------------------------------------------------
    let mut hold_span = None;
    let mut t_switch = None;
    if spec.hold_move {
        let t_h = t_a + us_floor(spec.talk_ns / 3);
        let t_r = t_a + us_floor(spec.talk_ns * 2 / 3);
        for (n, (t, dir_c, dir_b, port)) in [
            (
                t_h,
                Direction::SendOnly,
                Direction::RecvOnly,
                spec.caller_rtp_port,
            ),
            (
                t_r,
                Direction::SendRecv,
                Direction::SendRecv,
                spec.caller_rtp_port2,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            caller_cseq += 1;
            let b = branch(&mut rng);
            let reinv = dlg
                .caller_request("INVITE", &dlg.request_uri(), &b, caller_cseq, true)
                .header("Contact", format!("<{}>", dlg.caller_contact_uri()))
                .header("User-Agent", "voxtap-gen caller")
                .sdp(caller_sdp(
                    2 + n as u64,
                    port,
                    dir_c,
                    false,
                    caller_sec(0, true),
                ))
                .render();
            sig.send(&mut em, t, true, &reinv, None);
            let ok = dlg
                .callee_response(200, "OK", &b, caller_cseq, "INVITE", true)
                .header("Contact", dlg.callee_contact())
                .sdp(callee_sdp(2 + n as u64, dir_b, callee_sec(0)))
                .render();
            sig.send(&mut em, t + 20 * MS, false, &ok, None);
            let ack = dlg
                .caller_request(
                    "ACK",
                    &dlg.request_uri(),
                    &branch(&mut rng),
                    caller_cseq,
                    true,
                )
                .render();
            sig.send(&mut em, t + 23 * MS, true, &ack, None);
        }
        let sw = t_r + 25 * MS;
        hold_span = Some((t_h, sw));
        t_switch = Some(sw);
    }

    // ---- SDES re-key ----------------------------------------------------------------
    // RFC 4568 §7.1.4: new keys take effect with the answer; both sides send with them from
    // just after the 200 OK.
    let mut key_switch = None;
    if epochs.len() > 1 {
        let t = at(0.5);
        caller_cseq += 1;
        let b = branch(&mut rng);
        let reinv = dlg
            .caller_request("INVITE", &dlg.request_uri(), &b, caller_cseq, true)
            .header("Contact", format!("<{}>", dlg.caller_contact_uri()))
            .header("User-Agent", "voxtap-gen caller")
            .sdp(caller_sdp(
                2,
                spec.caller_rtp_port,
                Direction::SendRecv,
                false,
                caller_sec(1, true),
            ))
            .render();
        sig.send(&mut em, t, true, &reinv, None);
        let ok = dlg
            .callee_response(200, "OK", &b, caller_cseq, "INVITE", true)
            .header("Contact", dlg.callee_contact())
            .sdp(callee_sdp(2, Direction::SendRecv, callee_sec(1)))
            .render();
        sig.send(&mut em, t + 20 * MS, false, &ok, None);
        let ack = dlg
            .caller_request(
                "ACK",
                &dlg.request_uri(),
                &branch(&mut rng),
                caller_cseq,
                true,
            )
            .render();
        sig.send(&mut em, t + 23 * MS, true, &ack, None);
        key_switch = Some(t + 22 * MS);
        truth.rekeys_at_secs.push(rel_a(t + 22 * MS));
    }
    let protect = |caller: bool| -> Result<Protect, GenError> {
        if dtls.is_some() {
            return Ok(Protect::Opaque(Rng::derive(
                spec.seed,
                0xD715_0000 + 2 * spec.idx as u64 + u64::from(caller),
            )));
        }
        if epochs.is_empty() {
            return Ok(Protect::None);
        }
        let mut keys = Vec::new();
        for (n, e) in epochs.iter().enumerate() {
            let from = if n == 0 { 0 } else { key_switch.unwrap_or(0) };
            // RFC 4568 §6.1: each side sends with the key of its own a=crypto line.
            let attr = if caller { e.chosen() } else { &e.answer };
            let ctx = SrtpContext::new(attr).map_err(|e| GenError::Srtp(e.to_string()))?;
            keys.push((from, ctx));
        }
        Ok(Protect::Srtp(keys))
    };

    // ---- media -------------------------------------------------------------------
    let media0 = if spec.early_media {
        t_prog + 10 * MS
    } else {
        t_a + 10 * MS
    };
    let last_ns = t_bye - 10 * MS;
    let callee_rtp = SocketAddr::new(callee_ip, spec.callee_rtp_port);
    let caller_rtp1 = SocketAddr::new(caller_wire_ip, caller_rtp_wire);
    let caller_rtp2 = SocketAddr::new(caller_wire_ip, caller_rtp_wire2);
    if dtls.is_some() {
        // The DTLS handshake on the media ports (client: the answerer, `a=setup:active`).
        let hello = dtls_record(&mut krng, 1, 180);
        em.udp(t_a + MS, callee_rtp, caller_rtp1, &hello, false);
        let hello = dtls_record(&mut krng, 2, 120);
        em.udp(t_a + 2 * MS, caller_rtp1, callee_rtp, &hello, false);
    }

    let mut caller_side = SidePlan {
        legs: vec![Leg {
            from_ns: t_a + 5 * MS,
            state: 0,
            src: caller_rtp1,
            dst: callee_rtp,
        }],
        states: vec![RtpState::new(&mut rng)],
        pauses: Vec::new(),
        dtmf: Vec::new(),
        inband: Vec::new(),
        tone_hz: spec.caller_tone_hz,
        codec: spec.codec,
        protect: protect(true)?,
    };
    let callee_start = if spec.early_media {
        t_prog + 5 * MS
    } else {
        t_a + 5 * MS
    };
    let mut callee_side = SidePlan {
        legs: vec![Leg {
            from_ns: callee_start,
            state: 0,
            src: callee_rtp,
            dst: caller_rtp1,
        }],
        states: vec![RtpState::new(&mut rng)],
        pauses: Vec::new(),
        dtmf: Vec::new(),
        inband: Vec::new(),
        tone_hz: spec.callee_tone_hz,
        codec: spec.codec,
        protect: protect(false)?,
    };
    if let Some(sw) = t_switch {
        caller_side.states.push(RtpState::new(&mut rng));
        caller_side.legs.push(Leg {
            from_ns: sw + 2 * MS,
            state: 1,
            src: caller_rtp2,
            dst: callee_rtp,
        });
        callee_side.legs.push(Leg {
            from_ns: sw + 2 * MS,
            state: 0,
            src: callee_rtp,
            dst: caller_rtp2,
        });
    }
    if let Some((a, b)) = hold_span {
        callee_side.pauses.push((a, b + 2 * MS));
    }
    if spec.dtmf {
        let at = |f: f64| t_a + us_floor((spec.talk_ns as f64 * f) as u64);
        caller_side.dtmf = vec![(at(0.25), '1'), (at(0.5), '#')];
        callee_side.dtmf = vec![(at(0.75), '5')];
    }
    if spec.on_demand == OnDemandPlan::DtmfPause {
        // One digit every 200 ms; the code counts from its last digit.
        for (f, code, action) in [
            (0.3, "*48", "pause"),
            (0.6, "*49", "resume"),
            (0.85, "*1", "stop"),
        ] {
            let t0 = at(f);
            for (n, d) in code.chars().enumerate() {
                callee_side.dtmf.push((t0 + n as u64 * 200 * MS, d));
            }
            let last = t0 + (code.len() as u64 - 1) * 200 * MS;
            truth.controls.push(ControlTruth {
                action: action.into(),
                side: "callee".into(),
                via: "rfc4733".into(),
                at_secs: rel_a(last),
            });
        }
    }

    let rel = |t: u64| (t as i64 - t_a as i64) as f64 / 1e9;
    if spec.inband_dtmf {
        // Each digit covers the packets sent in its 100 ms; the truth takes the first one's
        // send time as the press and the code's last tone end as the request.
        let at = |f: f64| t_a + us_floor((spec.talk_ns as f64 * f) as u64);
        let slot_at = |t: u64| media0 + (t.saturating_sub(media0)).div_ceil(PACKET_NS) * PACKET_NS;
        for (f, code, action) in [(0.25, "*48", "pause"), (0.65, "*49", "resume")] {
            let mut t = slot_at(at(f));
            for d in code.chars() {
                caller_side.inband.push((t, t + 100 * MS, d));
                truth.dtmf.push(DtmfTruth {
                    digit: d,
                    side: "caller".into(),
                    at_secs: rel(t),
                });
                t += 200 * MS;
            }
            truth.controls.push(ControlTruth {
                action: action.into(),
                side: "caller".into(),
                via: "inband".into(),
                at_secs: rel(t - 100 * MS),
            });
        }
    }
    for (is_caller, side) in [(true, &mut caller_side), (false, &mut callee_side)] {
        let mut res = plan_side(side, media0, last_ns, &mut rng)?;
        let lost = if spec.loss_reorder {
            impair(&mut res.pkts, &mut rng)
        } else {
            0
        };
        let count = res.pkts.len() as u64;
        for p in &res.pkts {
            em.udp(p.t, p.src, p.dst, &p.data, false);
        }
        let name = if is_caller { "caller" } else { "callee" };
        truth
            .dtmf
            .extend(res.dtmf_at.iter().map(|&(t, d)| DtmfTruth {
                digit: d,
                side: name.into(),
                at_secs: rel(t),
            }));
        truth
            .silent_spans
            .extend(res.silent.iter().map(|&(a, b)| SilentSpan {
                channel: if is_caller { "left" } else { "right" }.into(),
                from_secs: rel(a),
                to_secs: rel(b),
            }));
        if is_caller {
            truth.rtp_packets_caller = count;
            truth.lost_caller = lost;
        } else {
            truth.rtp_packets_callee = count;
            truth.lost_callee = lost;
        }
    }
    truth.dtmf.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));

    // ---- BYE -----------------------------------------------------------------------
    let bye_branch = branch(&mut rng);
    if spec.bye_by_callee {
        let cseq = rng.range(100, 999) as u32;
        let bye = Msg::request("BYE", &dlg.caller_contact_uri())
            .header("Via", dlg.callee_via(&bye_branch))
            .header("Max-Forwards", "70")
            .header("From", dlg.to(true))
            .header("To", dlg.from())
            .header("Call-ID", dlg.call_id.clone())
            .header("CSeq", format!("{cseq} BYE"))
            .header("User-Agent", "voxtap-gen PBX")
            .render();
        sig.send(&mut em, t_bye, false, &bye, None);
        let ok = Msg::response(200, "OK")
            .header("Via", dlg.callee_via(&bye_branch))
            .header("From", dlg.to(true))
            .header("To", dlg.from())
            .header("Call-ID", dlg.call_id.clone())
            .header("CSeq", format!("{cseq} BYE"))
            .render();
        sig.send(&mut em, t_bye + 3 * MS, true, &ok, None);
    } else {
        caller_cseq += 1;
        let bye = dlg
            .caller_request("BYE", &dlg.request_uri(), &bye_branch, caller_cseq, true)
            .header("User-Agent", "voxtap-gen caller")
            .render();
        sig.send(&mut em, t_bye, true, &bye, None);
        let ok = dlg
            .callee_response(200, "OK", &bye_branch, caller_cseq, "BYE", true)
            .render();
        sig.send(&mut em, t_bye + 3 * MS, false, &ok, None);
    }
    if spec.tcp {
        sig.close(&mut em, t_bye + 100 * MS, true);
    }

    truth.answered = true;
    truth.recorded = true;
    truth.answer_ns = Some(t_a);
    truth.end_ns = t_bye;
    truth.recorded_secs = (t_bye - t_a) as f64 / 1e9;
    truth.final_status = 200;
    truth.end_reason = "bye".into();
    Ok((em.frames, truth))
}
