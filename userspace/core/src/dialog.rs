//! Dialogs: the SIP state of each call and the media endpoints learned from its SDP.
//!
//! A call is one INVITE dialog, keyed by Call-ID and the caller's From tag (RFC 3261 §12).
//! Requests from the callee carry the tags the other way round, so a message's side is found
//! from its tags. The media index maps every endpoint either party announced in SDP to its
//! call, so RTP can be tied to a dialog from either address of a packet. No audio lives here,
//! nor what a message asks of the recording: [`crate::policy::signals`] reads the INFO record
//! key and the media-control requests, and the dialogs say which call and side sent them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::codec::CodecSpec;
use crate::event::EndReason;
use crate::policy::signals::{self, InfoRecordHeader, SESSION_ID_HEADER};
use crate::sdp::{self, Direction, MediaKind};
use crate::sip::{self, Message, Method};
use crate::time::Timestamp;
// At this path too for the engine, which indexes per-side arrays with it.
pub use crate::vocab::side_index;
use crate::vocab::{AddrMap, CallHandle, HandleMap, Party, Side, SipTransport};

#[derive(Clone, Debug)]
pub struct DialogConfig {
    /// An unanswered call with no final response ends after this.
    pub setup_timeout: Duration,
    /// An answered call with neither SIP nor RTP ends after this.
    pub media_timeout: Duration,
    /// An ended call stays to absorb retransmissions, the 200 to BYE and a new INVITE after a
    /// 401/407 challenge, before it is reported.
    pub linger: Duration,
    /// A call rejected with 401/407 waits this long for the INVITE that answers the challenge
    /// (same Call-ID and From tag, RFC 3261 §22.2), which continues the same call. A user may
    /// have to type a password, so this is long.
    pub challenge_linger: Duration,
    /// At most this many calls are tracked; unanswered ones are evicted first.
    pub max_calls: usize,
}

/// Header names the dialogs read for the recording policy (see `docs/rules.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyHeaders {
    /// The per-call recording mode, read from the INVITE or its 2xx.
    pub mode: String,
    /// The SIP INFO record key (Yealink `Record: on|off`).
    pub info_record: InfoRecordHeader,
    /// Headers a PBX or SBC puts on every leg of one conversation (see `docs/rules.md`).
    pub correlation: Vec<String>,
}

/// Correlation headers read unless configured: `Session-ID` (RFC 7989: the same UUIDs on
/// every leg through a B2BUA that keeps them; Cisco, Polycom, Avaya, Microsoft), `X-CID` (the
/// first leg's Call-ID on the next, as FreeSWITCH, Kamailio and OpenSIPS set it for Homer),
/// `P-Charging-Vector` (its `icid-value`, 3GPP TS 24.229: IMS cores and SBCs).
pub const DEFAULT_CORRELATION_HEADERS: [&str; 3] = ["Session-ID", "X-CID", "P-Charging-Vector"];

impl Default for PolicyHeaders {
    fn default() -> Self {
        Self {
            mode: "X-Record-Mode".into(),
            info_record: InfoRecordHeader::default(),
            correlation: DEFAULT_CORRELATION_HEADERS.map(String::from).to_vec(),
        }
    }
}

/// What a leg's signalling says beyond From and To: identities the network asserts, which
/// side sits behind infrastructure, and what ties it to other legs of the same conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Per side ([`side_index`]): P-Asserted-Identity (RFC 3325), else Remote-Party-ID, user.
    pub identity: [Option<String>; 2],
    /// Per side: the product of its User-Agent (requests) or Server (responses) header.
    pub agent: [Option<String>; 2],
    /// The number a forwarded call was first meant for: Diversion (RFC 5806), else the first
    /// History-Info entry (RFC 7044).
    pub diverted_from: Option<String>,
    /// `diverted_from` came from History-Info.
    pub diverted_by_history: bool,
    /// The INVITE came through a proxy: it has Record-Route, or more than one Via.
    pub proxied: bool,
    /// Referred-By (RFC 3892) user of the INVITE: it follows a transfer.
    pub referred_by: Option<String>,
    /// The Call-ID of the dialog the INVITE's Replaces (RFC 3891) takes over.
    pub replaces: Option<String>,
    /// Its `early-only` flag: it takes over a dialog still ringing (a directed pickup).
    pub replaces_early: bool,
    /// Correlation tokens: (header, value), values shared by the legs of one conversation or
    /// naming another leg's Call-ID.
    pub correlation: Vec<(String, String)>,
}

/// Correlation tokens kept per call, and their length.
const MAX_TOKENS: usize = 8;
const MAX_TOKEN_LEN: usize = 128;

impl Default for DialogConfig {
    fn default() -> Self {
        Self {
            setup_timeout: Duration::from_secs(180),
            media_timeout: Duration::from_secs(60),
            linger: Duration::from_secs(4),
            challenge_linger: Duration::from_secs(120),
            max_calls: 200_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// INVITE seen, no provisional response with a tag yet.
    Trying,
    /// 18x seen (possibly with early media).
    Early,
    Answered,
    /// Over; waiting out the linger before it is reported.
    Ended,
}

/// How a party's media is protected, from its latest SDP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MediaSecurity {
    /// Plain RTP.
    #[default]
    Plain,
    /// SRTP keyed by SDES (RFC 4568): the `a=crypto` values this party offered or answered,
    /// newest SDP first (a re-INVITE may re-key; packets in flight use the old key).
    Sdes(Vec<String>),
    /// SRTP whose keys a passive observer cannot see.
    Opaque(crate::sdp::KeyExchange),
    /// A secure profile (RTP/SAVP) but no keys in the SDP.
    NoKeys,
}

/// Keys kept per party across re-INVITEs.
const MAX_KEYS: usize = 8;

/// What one party announced in SDP.
#[derive(Clone, Debug, Default)]
pub struct SideMedia {
    /// RTP endpoints (address, port) of this party's audio streams.
    pub endpoints: Vec<SocketAddr>,
    /// Payload type → codec (rtpmap and fmtp), in the order the SDPs listed the rtpmaps.
    pub payloads: Vec<(u8, CodecSpec)>,
    /// The payload types of the latest SDP's first audio stream, in its m= line's order: the
    /// sender's preference (RFC 3264 §5.1), which the rtpmap lines need not follow, and which
    /// names static types (`m=audio 4000 RTP/AVP 0 8`) that no rtpmap line does.
    pub formats: Vec<u8>,
    pub telephone_event: Option<u8>,
    pub direction: Direction,
    pub security: MediaSecurity,
}

impl SideMedia {
    pub fn codec(&self, pt: u8) -> Option<&CodecSpec> {
        self.payloads.iter().find(|p| p.0 == pt).map(|p| &p.1)
    }
}

#[derive(Clone, Debug)]
pub struct Call {
    pub handle: CallHandle,
    pub sip_call_id: String,
    pub from_tag: String,
    pub to_tag: Option<String>,
    pub state: CallState,
    pub started: Timestamp,
    pub answered: Option<Timestamp>,
    pub ended: Option<(Timestamp, EndReason)>,
    pub final_status: Option<u16>,
    pub caller: Party,
    pub callee: Party,
    pub caller_signalling: SocketAddr,
    pub callee_signalling: SocketAddr,
    pub transport: SipTransport,
    pub invite_cseq: u32,
    pub cancelled: bool,
    pub last_activity: Timestamp,
    /// Indexed by [`side_index`].
    pub media: [SideMedia; 2],
    /// User part of the initial INVITE's Request-URI: the number dialled. Empty if none.
    pub request_user: String,
    /// The Contact URI each party sent: the caller's in the INVITE, the callee's in the 2xx.
    pub caller_contact: Option<String>,
    pub callee_contact: Option<String>,
    /// The mode header's value ([`PolicyHeaders::mode`]) in the INVITE, else in its 2xx.
    pub mode: Option<String>,
    /// `X-Session-Id` of the INVITE, else of its 2xx.
    pub session_id: Option<String>,
    /// Per side ([`side_index`]): the identity it last asserted in an in-dialog re-INVITE or
    /// UPDATE when that differs from the one it started with (a transfer through a B2BUA).
    pub asserted: [Option<String>; 2],
    /// Bumped whenever an SDP changes what this call's payload types or keys are.
    pub media_version: u32,
    /// What the signalling says of infrastructure, identities and other legs.
    pub evidence: Evidence,
    /// A REFER awaiting its final response: its CSeq, the side that sent it, the target and
    /// the dialog it replaces.
    pending_refer: Option<(u32, Side, String, Option<String>)>,
    /// When an ended call is reported and forgotten.
    linger_until: Option<Timestamp>,
    /// Its INVITE was never seen: the call was picked up from its 2xx answer (see
    /// [`Dialogs::on_message`]).
    pub picked_up: bool,
}

/// The user part of a message's P-Asserted-Identity (its first URI), if any.
fn asserted_user<'a>(msg: &Message<'a>) -> Option<&'a str> {
    let na = sip::parse_name_addr(msg.header_named("P-Asserted-Identity")?)?;
    sip::parse_uri(na.uri)?.user.filter(|u| !u.is_empty())
}

impl Call {
    pub fn media(&self, side: Side) -> &SideMedia {
        &self.media[side_index(side)]
    }

    /// The codec of a payload type sent by `sender`: its own SDP first, then the peer's
    /// (RFC 3264 §5.1 lets either list the numbers), then the static table.
    pub fn codec_for(&self, sender: Side, pt: u8) -> Option<CodecSpec> {
        self.media(sender)
            .codec(pt)
            .or_else(|| self.media(sender.other()).codec(pt))
            .cloned()
            .or_else(|| sdp::static_codec(pt).map(|(n, r)| CodecSpec::new(n, r)))
    }

    /// The codec the call settled on: the answer's first audio payload type, else the offer's
    /// (the first in its m= line's order that is not comfort noise or telephone-event; the
    /// rtpmap lines' order when the m= line names none of those).
    pub fn primary_codec(&self) -> Option<CodecSpec> {
        let te = self.telephone_event_pt();
        let audio = |pt: u8, c: &CodecSpec| {
            Some(pt) != te
                && pt != crate::rtp::PT_CN
                && !c.name.eq_ignore_ascii_case("CN")
                && !c.name.eq_ignore_ascii_case("telephone-event")
        };
        [Side::Callee, Side::Caller].into_iter().find_map(|side| {
            let media = self.media(side);
            media
                .formats
                .iter()
                .find_map(|&pt| self.codec_for(side, pt).filter(|c| audio(pt, c)))
                .or_else(|| {
                    media
                        .payloads
                        .iter()
                        .find(|(pt, c)| audio(*pt, c))
                        .map(|(_, c)| c.clone())
                })
        })
    }

    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.media[0]
            .telephone_event
            .or(self.media[1].telephone_event)
    }

    fn side_of_tag(&self, from_tag: Option<&str>) -> Side {
        match from_tag {
            Some(t) if t == self.from_tag => Side::Caller,
            Some(_) => Side::Callee,
            None => Side::Caller,
        }
    }
}

/// What the engine must act on after a SIP message or a sweep.
#[derive(Clone, Debug, PartialEq)]
pub enum DialogEvent {
    Started(CallHandle),
    Answered(CallHandle),
    /// Media stops here (BYE, CANCEL, rejection, timeout); the call is reported later.
    Stopped(CallHandle),
    /// The linger is over: report the call and forget it.
    Reaped(CallHandle),
    /// New endpoints were announced for a side.
    MediaLearned {
        call: CallHandle,
        side: Side,
        endpoints: Vec<SocketAddr>,
    },
    /// A DTMF digit in a SIP INFO body.
    InfoDtmf {
        call: CallHandle,
        ts: Timestamp,
        side: Side,
        digit: char,
        duration_ms: u32,
    },
    /// A SIP INFO with the record key header (`Record: on` / `Record: off`).
    InfoRecord {
        call: CallHandle,
        ts: Timestamp,
        side: Side,
        on: bool,
    },
    /// A MESSAGE asking to pause or resume the audio recording: in dialog
    /// (`application/x-media-control`) or out of dialog, matched by `X-Session-Id`.
    MediaControl {
        call: CallHandle,
        ts: Timestamp,
        side: Side,
        pause: bool,
    },
    /// A side of an answered call now asserts another identity (P-Asserted-Identity in an
    /// in-dialog re-INVITE or UPDATE): a PBX in the path put someone else through.
    PartyChanged {
        call: CallHandle,
        ts: Timestamp,
        side: Side,
        user: String,
    },
    /// A side of the call asked (RFC 3515 REFER) that the other be put through to `target`:
    /// a blind transfer, or an attended one when `replaces` names the consultation dialog.
    Refer {
        call: CallHandle,
        ts: Timestamp,
        side: Side,
        target: String,
        replaces: Option<String>,
        /// The final response: 2xx accepted it, anything else refused it.
        status: u16,
    },
}

/// Why a SIP message could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Required headers (Call-ID, From, To, CSeq) missing or unreadable.
    MissingHeaders,
    /// The SDP body of a message of this call could not be parsed.
    BadSdp(CallHandle),
}

/// A call's dialog and what its owner keeps beside it (the engine: the call's streams, its
/// recording and what the decision asked), dropped together.
struct Entry<X> {
    call: Call,
    ext: X,
}

/// The SIP side of every call, and the index that finds a call from a Call-ID, a session id
/// or a media endpoint. Each call is one entry: its dialog and the owner's `X` beside it, so
/// that [`Dialogs::remove`] hands back everything the call had.
#[derive(Default)]
pub struct Dialogs<X = ()> {
    cfg: DialogConfig,
    headers: PolicyHeaders,
    calls: HandleMap<CallHandle, Entry<X>>,
    by_call_id: HashMap<String, Vec<CallHandle>>,
    /// `X-Session-Id` → the call whose INVITE or 2xx carried it.
    by_session_id: HashMap<String, CallHandle>,
    /// Endpoint → the call and the party that announced it.
    media_index: AddrMap<SocketAddr, (CallHandle, Side)>,
    /// Bumped when an endpoint that a known flow uses changes hands (a newer SDP claims it,
    /// or its call goes), so flows tied before are checked again ([`Dialogs::settle_media`]).
    media_epoch: u64,
    /// Endpoints that changed hands since the last [`Dialogs::settle_media`].
    media_changes: Vec<SocketAddr>,
    next_handle: u64,
    evicted: u64,
    /// Call-IDs of calls reported and forgotten lately, with when: a 2xx still retransmitted
    /// after its call was forgotten (its ACK lost) must not pick the call up again.
    forgotten: HashMap<String, Timestamp>,
    forgotten_order: VecDeque<(Timestamp, String)>,
}

/// How long a forgotten call's Call-ID keeps a late 2xx from picking it up again: a 2xx is
/// retransmitted for 64 × T1 = 32 s at most (RFC 3261 §13.3.1.4), twice that for slack.
const FORGOTTEN_FOR: Duration = Duration::from_secs(64);

impl<X: Default> Dialogs<X> {
    pub fn new(cfg: DialogConfig) -> Self {
        Self::with_headers(cfg, PolicyHeaders::default())
    }

    pub fn with_headers(cfg: DialogConfig, headers: PolicyHeaders) -> Self {
        Self {
            cfg,
            headers,
            ..Default::default()
        }
    }

    pub fn get(&self, call: CallHandle) -> Option<&Call> {
        self.calls.get(&call).map(|e| &e.call)
    }

    /// What the owner keeps beside the call.
    pub fn ext(&self, call: CallHandle) -> Option<&X> {
        self.calls.get(&call).map(|e| &e.ext)
    }

    pub fn ext_mut(&mut self, call: CallHandle) -> Option<&mut X> {
        self.calls.get_mut(&call).map(|e| &mut e.ext)
    }

    /// The call's dialog, and what the owner keeps beside it to change.
    pub fn entry(&mut self, call: CallHandle) -> Option<(&Call, &mut X)> {
        self.calls.get_mut(&call).map(|e| (&e.call, &mut e.ext))
    }

    /// [`Dialogs::entry`] after [`Dialogs::touch`], in one lookup (a packet of the call).
    pub fn entry_touched(&mut self, call: CallHandle, ts: Timestamp) -> Option<(&Call, &mut X)> {
        self.calls.get_mut(&call).map(|e| {
            e.call.last_activity = e.call.last_activity.max(ts);
            (&e.call, &mut e.ext)
        })
    }

    /// [`Dialogs::entry_touched`] for a call that has not ended; an ended call is left
    /// untouched.
    pub fn live_entry_touched(
        &mut self,
        call: CallHandle,
        ts: Timestamp,
    ) -> Option<(&Call, &mut X)> {
        let e = self.calls.get_mut(&call)?;
        if e.call.state == CallState::Ended {
            return None;
        }
        e.call.last_activity = e.call.last_activity.max(ts);
        Some((&e.call, &mut e.ext))
    }

    /// Every call's handle and what its owner keeps, in no order.
    pub fn exts(&self) -> impl Iterator<Item = (CallHandle, &X)> {
        self.calls.iter().map(|(h, e)| (*h, &e.ext))
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Changes when an endpoint that some flow uses changes owner ([`Dialogs::settle_media`]).
    pub fn media_epoch(&self) -> u64 {
        debug_assert!(self.media_changes.is_empty(), "media changes not settled");
        self.media_epoch
    }

    /// Whether endpoints changed hands since the last [`Dialogs::settle_media`].
    pub fn media_unsettled(&self) -> bool {
        !self.media_changes.is_empty()
    }

    /// Ends the media epoch if an endpoint that changed hands is one that `in_use` says a
    /// flow sends from or to. An endpoint no flow uses decides no flow's route, so its change
    /// makes no flow check its route again: with calls coming and going all the time, every
    /// packet would (each new call's SDP would end the epoch for every call).
    pub fn settle_media(&mut self, in_use: impl Fn(SocketAddr) -> bool) {
        if self.media_changes.iter().any(|&ep| in_use(ep)) {
            self.media_epoch += 1;
        }
        self.media_changes.clear();
    }

    /// The answered, still running call with this SIP Call-ID, if there is one.
    pub fn answered_by_call_id(&self, sip_call_id: &str) -> Option<CallHandle> {
        self.by_call_id
            .get(sip_call_id)?
            .iter()
            .rev()
            .copied()
            .find(|h| self.get(*h).is_some_and(|c| c.state == CallState::Answered))
    }

    pub fn handles(&self) -> Vec<CallHandle> {
        let mut v: Vec<_> = self.calls.keys().copied().collect();
        v.sort();
        v
    }

    /// Ties an RTP packet to a call: the destination is an endpoint a party announced (so the
    /// other party sent it), or the source is (that party sent it). Checking both covers NAT,
    /// where one side's SDP address is private and its RTP comes from elsewhere.
    pub fn lookup_media(&self, src: SocketAddr, dst: SocketAddr) -> Option<(CallHandle, Side)> {
        let live = |c: &CallHandle| self.get(*c).is_some_and(|c| c.state != CallState::Ended);
        if let Some(&(call, owner)) = self.media_index.get(&dst)
            && live(&call)
        {
            return Some((call, owner.other()));
        }
        if let Some(&(call, owner)) = self.media_index.get(&src)
            && live(&call)
        {
            return Some((call, owner));
        }
        None
    }

    /// Notes activity (RTP) on a call so the media timeout does not fire.
    pub fn touch(&mut self, call: CallHandle, ts: Timestamp) {
        if let Some(c) = self.calls.get_mut(&call).map(|e| &mut e.call) {
            c.last_activity = c.last_activity.max(ts);
        }
    }

    /// Follows one SIP message; returns the call it belongs to, if it belongs to one.
    pub fn on_message(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        transport: SipTransport,
        msg: &Message<'_>,
        out: &mut Vec<DialogEvent>,
    ) -> Result<Option<CallHandle>, Rejected> {
        let call_id = msg.call_id().ok_or(Rejected::MissingHeaders)?;
        let from = msg.from().ok_or(Rejected::MissingHeaders)?;
        let to = msg.to().ok_or(Rejected::MissingHeaders)?;
        let (cseq, cseq_method) = msg.cseq().ok_or(Rejected::MissingHeaders)?;
        let method = msg.method().unwrap_or(cseq_method);

        let found = self.find(call_id, from.tag, to.tag);
        let handle = match found {
            Some(h) => h,
            None if msg.is_request() && method == Method::Invite && to.tag.is_none() => {
                let h = self.create(ts, src, dst, transport, call_id, &from, &to, cseq, out);
                out.push(DialogEvent::Started(h));
                h
            }
            // A 2xx with an answer to an INVITE of a dialog never seen: its INVITE was lost
            // (a dropped or unreassemblable packet) or came before the capture did. The call
            // is followed from here, as its answer names it: From the caller, To the callee,
            // the answer's sender the callee.
            None if !msg.is_request()
                && cseq_method == Method::Invite
                && to.tag.is_some()
                && msg.status().is_some_and(|c| (200..300).contains(&c))
                && msg.sdp_body().is_some()
                && !self.forgotten_lately(call_id, ts) =>
            {
                let h = self.create(ts, dst, src, transport, call_id, &from, &to, cseq, out);
                if let Some(e) = self.calls.get_mut(&h) {
                    e.call.picked_up = true;
                }
                out.push(DialogEvent::Started(h));
                h
            }
            None if msg.is_request() && method == Method::Message => {
                self.out_of_dialog_message(ts, src, &from, msg, out);
                return Ok(None);
            }
            // Out-of-dialog traffic (REGISTER, OPTIONS...) or a dialog we never saw start.
            None => return Ok(None),
        };
        let call = self
            .calls
            .get_mut(&handle)
            .map(|e| &mut e.call)
            .expect("found handles are live");
        call.last_activity = call.last_activity.max(ts);
        // The party that sent this message.
        let sender = if msg.is_request() {
            call.side_of_tag(from.tag)
        } else {
            call.side_of_tag(from.tag).other()
        };

        self.learn_policy_facts(handle, msg, method, cseq, to.tag.is_none());
        self.learn_evidence(handle, msg, method, sender, to.tag.is_none());

        let mut sdp_error = false;
        if let Some(body) = msg.sdp_body() {
            match sdp::parse(body) {
                Ok(sd) => {
                    let endpoints = self.learn_media(handle, sender, &sd);
                    if !endpoints.is_empty() {
                        out.push(DialogEvent::MediaLearned {
                            call: handle,
                            side: sender,
                            endpoints,
                        });
                    }
                }
                Err(_) => sdp_error = true,
            }
        }
        let call = self
            .calls
            .get_mut(&handle)
            .map(|e| &mut e.call)
            .expect("found handles are live");

        if msg.is_request() {
            match method {
                Method::Invite
                    if to.tag.is_none() && call.state == CallState::Ended
                    // A new INVITE after a 401/407 challenge continues the same call.
                    && cseq > call.invite_cseq && call.answered.is_none() =>
                {
                    call.invite_cseq = cseq;
                    call.state = CallState::Trying;
                    call.ended = None;
                    call.final_status = None;
                    call.linger_until = None;
                    call.cancelled = false;
                }
                Method::Invite if to.tag.is_none() => {
                    call.invite_cseq = call.invite_cseq.max(cseq);
                }
                Method::Cancel if call.answered.is_none() => {
                    call.cancelled = true;
                }
                Method::Bye if call.state != CallState::Ended => {
                    let reason = if call.answered.is_some() {
                        EndReason::Bye
                    } else {
                        EndReason::Cancelled
                    };
                    end(call, ts, reason, &self.cfg, out);
                }
                Method::Info => {
                    if let (Some(ct), false) = (msg.content_type(), msg.body.is_empty())
                        && let Some((digit, duration_ms)) = sip::info_dtmf(ct, msg.body)
                    {
                        out.push(DialogEvent::InfoDtmf {
                            call: handle,
                            ts,
                            side: sender,
                            digit,
                            duration_ms,
                        });
                    }
                    if let Some(on) = signals::info_record(msg, &self.headers.info_record) {
                        out.push(DialogEvent::InfoRecord {
                            call: handle,
                            ts,
                            side: sender,
                            on,
                        });
                    }
                }
                // RFC 3325 §9.1: a B2BUA that transfers names the new party in the
                // P-Asserted-Identity of a target refresh (RFC 3261 §12.2).
                Method::Invite | Method::Update if to.tag.is_some() && call.answered.is_some() => {
                    let started_as = match sender {
                        Side::Caller => &call.caller.user,
                        Side::Callee => &call.callee.user,
                    };
                    let slot = &mut call.asserted[side_index(sender)];
                    if let Some(user) = asserted_user(msg)
                        && slot.as_deref().unwrap_or(started_as) != user
                    {
                        *slot = (user != started_as).then(|| user.to_string());
                        out.push(DialogEvent::PartyChanged {
                            call: handle,
                            ts,
                            side: sender,
                            user: user.to_string(),
                        });
                    }
                }
                // RFC 3515 §2.4.1: REFER in a dialog; its Refer-To may embed a Replaces header
                // (RFC 3891 §7) naming the consultation dialog of an attended transfer.
                Method::Refer if to.tag.is_some() => {
                    if let Some(na) = msg.header_named("Refer-To").and_then(sip::parse_name_addr)
                        && let Some(target) = sip::parse_uri(na.uri).and_then(|u| u.user)
                    {
                        let replaces = na
                            .uri
                            .split_once('?')
                            .and_then(|(_, hdrs)| {
                                hdrs.split('&').find_map(|h| {
                                    let (k, v) = h.split_once('=')?;
                                    k.eq_ignore_ascii_case("Replaces").then_some(v)
                                })
                            })
                            .map(|v| {
                                unescape(v)
                                    .split(';')
                                    .next()
                                    .unwrap_or("")
                                    .trim()
                                    .to_string()
                            })
                            .filter(|v| !v.is_empty());
                        // Nothing happens until the other side accepts it (202): a PBX may
                        // refuse a transfer (403, 488) or challenge it (401, 407).
                        call.pending_refer = Some((cseq, sender, target.to_string(), replaces));
                    }
                }
                Method::Message => {
                    if let Some(pause) = signals::media_control(msg) {
                        out.push(DialogEvent::MediaControl {
                            call: handle,
                            ts,
                            side: sender,
                            pause,
                        });
                    }
                }
                _ => {}
            }
        } else if let (Some(code), Method::Refer) = (msg.status(), cseq_method) {
            if code >= 200
                && let Some((refer_cseq, side, target, replaces)) = call.pending_refer.take()
            {
                if refer_cseq == cseq {
                    out.push(DialogEvent::Refer {
                        call: handle,
                        ts,
                        side,
                        target,
                        replaces,
                        status: code,
                    });
                } else {
                    call.pending_refer = Some((refer_cseq, side, target, replaces));
                }
            }
        } else if let (Some(code), Method::Invite) = (msg.status(), cseq_method) {
            let initial = cseq == call.invite_cseq;
            // The ranges are disjoint: a guard that fails ends in `_`, never in another arm.
            match code {
                100..=199 if code > 100 && call.state == CallState::Trying => {
                    call.state = CallState::Early;
                }
                200..=299 if call.answered.is_none() && call.state != CallState::Ended => {
                    call.answered = Some(ts);
                    call.state = CallState::Answered;
                    call.to_tag = to.tag.map(str::to_string);
                    call.final_status = Some(code);
                    if let Some(name) = to.display_name {
                        call.callee
                            .display_name
                            .get_or_insert_with(|| name.to_string());
                    }
                    out.push(DialogEvent::Answered(handle));
                }
                300..=699
                    if initial && call.answered.is_none() && call.state != CallState::Ended =>
                {
                    call.final_status = Some(code);
                    let reason = if code == 487 || call.cancelled {
                        EndReason::Cancelled
                    } else {
                        EndReason::Rejected
                    };
                    end(call, ts, reason, &self.cfg, out);
                }
                _ => {}
            }
        }
        if sdp_error {
            Err(Rejected::BadSdp(handle))
        } else {
            Ok(Some(handle))
        }
    }

    fn find(
        &self,
        call_id: &str,
        from_tag: Option<&str>,
        to_tag: Option<&str>,
    ) -> Option<CallHandle> {
        let handles = self.by_call_id.get(call_id)?;
        let matches = |c: &Call| {
            let t = Some(c.from_tag.as_str());
            from_tag == t || to_tag == t || (c.from_tag.is_empty() && from_tag.is_none())
        };
        handles
            .iter()
            .rev()
            .copied()
            .find(|h| self.get(*h).is_some_and(matches))
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        transport: SipTransport,
        call_id: &str,
        from: &sip::NameAddr<'_>,
        to: &sip::NameAddr<'_>,
        cseq: u32,
        out: &mut Vec<DialogEvent>,
    ) -> CallHandle {
        if self.calls.len() >= self.cfg.max_calls {
            self.evict_one(ts, out);
        }
        self.next_handle += 1;
        let handle = CallHandle(self.next_handle);
        let call = Call {
            handle,
            sip_call_id: call_id.to_string(),
            from_tag: from.tag.unwrap_or("").to_string(),
            to_tag: None,
            state: CallState::Trying,
            started: ts,
            answered: None,
            ended: None,
            final_status: None,
            caller: party(from),
            callee: party(to),
            caller_signalling: src,
            callee_signalling: dst,
            transport,
            invite_cseq: cseq,
            cancelled: false,
            last_activity: ts,
            media: Default::default(),
            request_user: String::new(),
            caller_contact: None,
            callee_contact: None,
            mode: None,
            session_id: None,
            asserted: Default::default(),
            media_version: 0,
            evidence: Evidence::default(),
            pending_refer: None,
            linger_until: None,
            picked_up: false,
        };
        self.calls.insert(
            handle,
            Entry {
                call,
                ext: X::default(),
            },
        );
        self.by_call_id
            .entry(call_id.to_string())
            .or_default()
            .push(handle);
        handle
    }

    /// Makes room under `max_calls`: an ended call first, then the oldest unanswered one. Answered
    /// calls that may be recording are never evicted for a new INVITE.
    /// The victim is reported like any ended call (the engine forgets it on `Reaped`), with
    /// `EndReason::Evicted` unless it had already ended.
    fn evict_one(&mut self, now: Timestamp, out: &mut Vec<DialogEvent>) {
        let victim = self
            .calls
            .values()
            .map(|e| &e.call)
            .filter(|c| c.state == CallState::Ended && c.linger_until.is_some())
            .min_by_key(|c| c.last_activity)
            .or_else(|| {
                self.calls
                    .values()
                    .map(|e| &e.call)
                    .filter(|c| c.answered.is_none() && c.state != CallState::Ended)
                    .min_by_key(|c| c.started)
            })
            .map(|c| c.handle);
        let Some(h) = victim else { return };
        let cfg = self.cfg.clone();
        let call = self
            .calls
            .get_mut(&h)
            .map(|e| &mut e.call)
            .expect("chosen from the table");
        if call.state != CallState::Ended {
            end(call, now, EndReason::Evicted, &cfg, out);
        }
        // Reaped once: a second eviction must not pick it again before the engine forgets it.
        call.linger_until = None;
        self.evicted += 1;
        out.push(DialogEvent::Reaped(h));
    }

    /// Keeps what the recording policy reads from the initial INVITE and its 2xx: the number
    /// dialled, the Contacts, the mode header and the session id. The INVITE's values win.
    fn learn_policy_facts(
        &mut self,
        handle: CallHandle,
        msg: &Message<'_>,
        method: Method<'_>,
        cseq: u32,
        initial: bool,
    ) {
        let Some(call) = self.calls.get_mut(&handle).map(|e| &mut e.call) else {
            return;
        };
        if call.answered.is_some() || method != Method::Invite {
            return;
        }
        let contact = || msg.contact().map(|c| c.uri.to_string());
        match msg.start {
            sip::StartLine::Request { uri, .. } if initial => {
                call.request_user = sip::parse_uri(uri)
                    .and_then(|u| u.user)
                    .unwrap_or("")
                    .to_string();
                call.caller_contact = contact().or(call.caller_contact.take());
            }
            sip::StartLine::Response { code, .. }
                if (200..300).contains(&code) && cseq == call.invite_cseq =>
            {
                call.callee_contact = contact();
            }
            _ => return,
        }
        let value = |name: &str| {
            msg.header_named(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        if call.mode.is_none() {
            call.mode = value(&self.headers.mode);
        }
        if call.session_id.is_none()
            && let Some(id) = value(SESSION_ID_HEADER)
        {
            self.by_session_id.insert(id.clone(), handle);
            call.session_id = Some(id);
        }
    }

    /// Keeps what tells infrastructure from parties and ties legs together, from the initial
    /// INVITE (the caller's side) and its provisional and final responses (the callee's).
    fn learn_evidence(
        &mut self,
        handle: CallHandle,
        msg: &Message<'_>,
        method: Method<'_>,
        sender: Side,
        initial: bool,
    ) {
        let Some(call) = self.calls.get_mut(&handle).map(|e| &mut e.call) else {
            return;
        };
        if method != Method::Invite || call.answered.is_some() && msg.is_request() {
            return;
        }
        let ev = &mut call.evidence;
        let i = side_index(sender);
        let request = msg.is_request();
        let first_request = request && initial;
        if !first_request && ev.identity[i].is_some() && ev.agent[i].is_some() {
            // A response seen before: only correlation headers can add anything.
            if self.headers.correlation.is_empty() {
                return;
            }
        }
        let user_of = |value: &str| {
            sip::parse_name_addr(value)
                .and_then(|na| sip::parse_uri(na.uri).and_then(|u| u.user))
                .filter(|u| !u.is_empty())
                .map(str::to_string)
        };
        // One pass over the headers (a message has a dozen or two; each name compared once).
        let (mut pai, mut rpid, mut agent) = (None, None, None);
        let (mut diversion, mut history, mut referred, mut replaces) = (None, None, None, None);
        let (mut vias, mut record_route) = (0usize, false);
        for h in msg.headers() {
            let n = h.name;
            let is = |x: &str| n.eq_ignore_ascii_case(x);
            if is("P-Asserted-Identity") {
                pai = pai.or(Some(h.value));
            } else if is("Remote-Party-ID") {
                rpid = rpid.or(Some(h.value));
            } else if (request && is("User-Agent")) || (!request && is("Server")) {
                agent = agent.or(Some(h.value));
            } else if first_request {
                if is("Via") || is("v") {
                    vias += h.value.split(',').count();
                } else if is("Record-Route") {
                    record_route = true;
                } else if is("Diversion") {
                    diversion = diversion.or(Some(h.value));
                } else if is("History-Info") {
                    history = history.or(Some(h.value));
                } else if is("Referred-By") || is("b") {
                    referred = referred.or(Some(h.value));
                } else if is("Replaces") {
                    replaces = replaces.or(Some(h.value));
                }
            }
            if let Some(name) = self
                .headers
                .correlation
                .iter()
                .find(|c| n.eq_ignore_ascii_case(c))
            {
                for token in correlation_tokens(name, h.value) {
                    if ev.correlation.len() < MAX_TOKENS
                        && !ev.correlation.iter().any(|(_, t)| *t == token)
                    {
                        ev.correlation.push((name.clone(), token));
                    }
                }
            }
        }
        if ev.identity[i].is_none() {
            ev.identity[i] = pai.and_then(user_of).or_else(|| rpid.and_then(user_of));
        }
        if ev.agent[i].is_none() {
            ev.agent[i] = agent.map(|a| a.chars().take(64).collect::<String>());
        }
        if first_request {
            ev.diverted_from = diversion.and_then(user_of);
            if ev.diverted_from.is_none() {
                ev.diverted_from = history.and_then(user_of);
                ev.diverted_by_history = ev.diverted_from.is_some();
            }
            ev.referred_by = referred.and_then(user_of);
            ev.replaces = replaces
                .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
                .filter(|v| !v.is_empty());
            ev.replaces_early = replaces.is_some_and(|v| {
                v.split(';')
                    .skip(1)
                    .any(|p| p.trim().eq_ignore_ascii_case("early-only"))
            });
            ev.proxied = vias > 1 || record_route;
        }
    }

    /// An out-of-dialog MESSAGE `application/x-media-control+json`: its `session_id` names the
    /// call (the `X-Session-Id` of its INVITE or 2xx). The side that asked is the party whose
    /// user sent it, else the party whose signalling address it came from, else the callee (on
    /// a contact-centre call, the agent who answered).
    fn out_of_dialog_message(
        &self,
        ts: Timestamp,
        src: SocketAddr,
        from: &sip::NameAddr<'_>,
        msg: &Message<'_>,
        out: &mut Vec<DialogEvent>,
    ) {
        let Some((pause, id)) = signals::media_control_json(msg) else {
            return;
        };
        let Some(call) = self.by_session_id.get(id).and_then(|h| self.get(*h)) else {
            return;
        };
        if call.state == CallState::Ended {
            return;
        }
        let user = sip::parse_uri(from.uri).and_then(|u| u.user).unwrap_or("");
        let side = if !user.is_empty() && user == call.callee.user {
            Side::Callee
        } else if (!user.is_empty() && user == call.caller.user)
            || src.ip() == call.caller_signalling.ip()
        {
            Side::Caller
        } else {
            Side::Callee
        };
        out.push(DialogEvent::MediaControl {
            call: call.handle,
            ts,
            side,
            pause,
        });
    }

    /// Records the endpoints and payload types of one SDP; true if an endpoint was new.
    fn learn_media(
        &mut self,
        handle: CallHandle,
        side: Side,
        sd: &sdp::SessionDescription,
    ) -> Vec<SocketAddr> {
        let Some(call) = self.calls.get_mut(&handle).map(|e| &mut e.call) else {
            return Vec::new();
        };
        call.media_version = call.media_version.wrapping_add(1);
        let media = &mut call.media[side_index(side)];
        let mut new_endpoints = Vec::new();
        let mut first = true;
        let mut formats = None;
        for m in sd.media.iter().filter(|m| m.kind == MediaKind::Audio) {
            if first {
                media.direction = sd.direction_of(m);
                media.security = security(m, &media.security);
                first = false;
            }
            if formats.is_none() && !m.is_disabled() && !m.formats.is_empty() {
                formats = Some(m.formats.clone());
            }
            for map in &m.rtpmaps {
                let spec = CodecSpec {
                    name: map.encoding.clone(),
                    clock_rate: map.clock_rate,
                    channels: map.channels,
                    fmtp: m.fmtp(map.payload_type).unwrap_or("").to_string(),
                };
                // A later SDP may say more of a payload type (its fmtp): the latest wins.
                match media.payloads.iter_mut().find(|p| p.0 == map.payload_type) {
                    Some(p) => p.1 = spec,
                    None => media.payloads.push((map.payload_type, spec)),
                }
            }
            if let Some(te) = m.telephone_event_pt() {
                media.telephone_event = Some(te);
            }
            let Some(addr) = sd.address_of(m) else {
                continue;
            };
            // Port 0 disables a stream; 0.0.0.0 is the old way to put it on hold (RFC 3264 §8.4).
            if m.port == 0 || addr.is_unspecified() {
                continue;
            }
            let ep = SocketAddr::new(addr, m.port);
            if !media.endpoints.contains(&ep) {
                media.endpoints.push(ep);
                new_endpoints.push(ep);
            }
            if self.media_index.insert(ep, (handle, side)).map(|(h, _)| h) != Some(handle) {
                self.media_changes.push(ep);
            }
        }
        if let Some(formats) = formats {
            media.formats = formats;
        }
        new_endpoints
    }

    /// The call whose SDP announced this endpoint last, if it is still tracked.
    pub fn owner_of(&self, ep: SocketAddr) -> Option<CallHandle> {
        self.media_index.get(&ep).map(|(h, _)| *h)
    }

    /// Fires timeouts and reaps lingering calls.
    pub fn sweep(&mut self, now: Timestamp, out: &mut Vec<DialogEvent>) {
        let cfg = self.cfg.clone();
        let mut reap = Vec::new();
        for call in self.calls.values_mut().map(|e| &mut e.call) {
            match call.state {
                CallState::Ended => {
                    if call.linger_until.is_some_and(|t| now >= t) {
                        reap.push(call.handle);
                    }
                }
                CallState::Answered => {
                    if now.saturating_since(call.last_activity) >= cfg.media_timeout {
                        let at = call.last_activity;
                        end(call, at, EndReason::MediaTimeout, &cfg, out);
                    }
                }
                CallState::Trying | CallState::Early => {
                    if now.saturating_since(call.last_activity) >= cfg.setup_timeout {
                        let at = call.last_activity;
                        end(call, at, EndReason::SetupTimeout, &cfg, out);
                    }
                }
            }
        }
        reap.sort();
        for h in reap {
            out.push(DialogEvent::Reaped(h));
        }
    }

    /// Ends every call (end of input): open ones at their last activity.
    pub fn finish(&mut self, out: &mut Vec<DialogEvent>) {
        let cfg = self.cfg.clone();
        let mut all: Vec<_> = self.calls.keys().copied().collect();
        all.sort();
        for h in &all {
            let call = self.calls.get_mut(h).map(|e| &mut e.call).expect("listed");
            if call.state != CallState::Ended {
                let at = call.last_activity;
                end(call, at, EndReason::EndOfInput, &cfg, out);
            }
        }
        for h in all {
            out.push(DialogEvent::Reaped(h));
        }
    }

    /// Notes that a call of `call_id` was forgotten at `at`, and lets go of those forgotten
    /// [`FORGOTTEN_FOR`] before (and of the oldest past [`DialogConfig::max_calls`]).
    fn remember_forgotten(&mut self, call_id: &str, at: Timestamp) {
        while let Some((t, _)) = self.forgotten_order.front()
            && (at.saturating_since(*t) > FORGOTTEN_FOR
                || self.forgotten_order.len() >= self.cfg.max_calls.max(1))
        {
            let (t, id) = self.forgotten_order.pop_front().expect("checked");
            if self.forgotten.get(&id) == Some(&t) {
                self.forgotten.remove(&id);
            }
        }
        self.forgotten.insert(call_id.to_string(), at);
        self.forgotten_order.push_back((at, call_id.to_string()));
    }

    fn forgotten_lately(&self, call_id: &str, now: Timestamp) -> bool {
        self.forgotten
            .get(call_id)
            .is_some_and(|t| now.saturating_since(*t) <= FORGOTTEN_FOR)
    }

    /// Forgets a call and its endpoints; hands back its dialog and what the owner kept.
    pub fn remove(&mut self, handle: CallHandle) -> Option<(Call, X)> {
        let Entry { call, ext } = self.calls.remove(&handle)?;
        self.remember_forgotten(&call.sip_call_id, call.last_activity);
        if let Some(id) = &call.session_id
            && self.by_session_id.get(id) == Some(&handle)
        {
            self.by_session_id.remove(id);
        }
        if let Some(v) = self.by_call_id.get_mut(&call.sip_call_id) {
            v.retain(|h| *h != handle);
            if v.is_empty() {
                self.by_call_id.remove(&call.sip_call_id);
            }
        }
        for side in &call.media {
            for ep in &side.endpoints {
                if self.media_index.get(ep).is_some_and(|(h, _)| *h == handle) {
                    self.media_index.remove(ep);
                    self.media_changes.push(*ep);
                }
            }
        }
        Some((call, ext))
    }
}

/// How the audio of one m= section is protected; keys from earlier SDPs are kept behind the
/// new ones, for packets still in flight after a re-key.
fn security(m: &sdp::MediaDescription, before: &MediaSecurity) -> MediaSecurity {
    if let Some(kx) = m.key_exchange
        && m.crypto.is_empty()
    {
        return MediaSecurity::Opaque(kx);
    }
    if !m.crypto.is_empty() {
        let mut keys = m.crypto.clone();
        if let MediaSecurity::Sdes(old) = before {
            keys.extend(old.iter().filter(|k| !m.crypto.contains(k)).cloned());
        }
        keys.truncate(MAX_KEYS);
        return MediaSecurity::Sdes(keys);
    }
    if m.proto.to_ascii_uppercase().contains("SAVP") {
        MediaSecurity::NoKeys
    } else {
        MediaSecurity::Plain
    }
}

fn end(
    call: &mut Call,
    ts: Timestamp,
    reason: EndReason,
    cfg: &DialogConfig,
    out: &mut Vec<DialogEvent>,
) {
    call.state = CallState::Ended;
    call.ended = Some((ts, reason));
    let linger = if matches!(call.final_status, Some(401 | 407)) {
        cfg.challenge_linger
    } else {
        cfg.linger
    };
    call.linger_until = Some(ts.max(call.last_activity) + linger);
    out.push(DialogEvent::Stopped(call.handle));
}

/// The values of a correlation header that tie legs together: RFC 7989's local and remote
/// UUIDs (never the null one), P-Charging-Vector's `icid-value`, else the value itself.
fn correlation_tokens(name: &str, value: &str) -> Vec<String> {
    let v = value.trim();
    let mut out: Vec<&str> = Vec::new();
    if name.eq_ignore_ascii_case("Session-ID") {
        let mut parts = v.split(';');
        out.extend(parts.next());
        out.extend(parts.filter_map(|p| {
            let (k, val) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("remote").then_some(val)
        }));
    } else if name.eq_ignore_ascii_case("P-Charging-Vector") {
        out.extend(sip::param(v, "icid-value"));
    } else {
        out.push(v);
    }
    out.into_iter()
        .map(|t| t.trim().trim_matches('"'))
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN && !t.bytes().all(|b| b == b'0'))
        .map(|t| t.to_ascii_lowercase())
        .collect()
}

/// `%XX` escapes of a URI header value decoded (RFC 3261 §19.1.2).
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(x) = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn party(na: &sip::NameAddr<'_>) -> Party {
    let uri = sip::parse_uri(na.uri);
    Party {
        user: uri.and_then(|u| u.user).unwrap_or("").to_string(),
        host: uri.map(|u| u.host).unwrap_or("").to_string(),
        display_name: na
            .display_name
            .filter(|d| !d.is_empty())
            .map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "10.0.0.1:5060";
    const B: &str = "10.0.0.2:5060";

    fn msg(start: &str, cseq: &str, from_tag: &str, to_tag: Option<&str>, body: &str) -> String {
        let to = match to_tag {
            Some(t) => format!("<sip:bob@b>;tag={t}"),
            None => "<sip:bob@b>".to_string(),
        };
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nFrom: \"Alice\" <sip:alice@a>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: c1@a\r\nCSeq: {cseq}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn feed(d: &mut Dialogs, t: u64, from: &str, to: &str, text: &str) -> Vec<DialogEvent> {
        let mut out = Vec::new();
        let m = Message::parse(text.as_bytes()).expect("test message parses");
        d.on_message(
            Timestamp(t),
            from.parse().unwrap(),
            to.parse().unwrap(),
            SipTransport::Udp,
            &m,
            &mut out,
        )
        .expect("accepted");
        out
    }

    const SDP_A: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    const SDP_B: &str = "v=0\r\no=- 2 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

    #[test]
    fn provisional_responses_do_not_end_a_call_and_200_answers_it() {
        let mut d = Dialogs::new(DialogConfig::default());
        let ev = feed(
            &mut d,
            1,
            A,
            B,
            &msg("INVITE sip:bob@b SIP/2.0", "1 INVITE", "a1", None, SDP_A),
        );
        let h = match ev[0] {
            DialogEvent::Started(h) => h,
            ref e => panic!("{e:?}"),
        };
        assert!(
            feed(
                &mut d,
                2,
                B,
                A,
                &msg("SIP/2.0 100 Trying", "1 INVITE", "a1", None, "")
            )
            .is_empty()
        );
        assert!(
            feed(
                &mut d,
                3,
                B,
                A,
                &msg("SIP/2.0 180 Ringing", "1 INVITE", "a1", Some("b1"), "")
            )
            .is_empty()
        );
        assert_eq!(d.get(h).unwrap().state, CallState::Early);
        let ev = feed(
            &mut d,
            4,
            B,
            A,
            &msg("SIP/2.0 200 OK", "1 INVITE", "a1", Some("b1"), SDP_B),
        );
        assert!(ev.contains(&DialogEvent::Answered(h)));
        assert_eq!(d.get(h).unwrap().to_tag.as_deref(), Some("b1"));
        // RTP between the SDP endpoints, in both directions.
        assert_eq!(
            d.lookup_media(
                "10.0.0.1:4000".parse().unwrap(),
                "10.0.0.2:5000".parse().unwrap()
            ),
            Some((h, Side::Caller))
        );
        assert_eq!(
            d.lookup_media(
                "10.0.0.2:5000".parse().unwrap(),
                "10.0.0.1:4000".parse().unwrap()
            ),
            Some((h, Side::Callee))
        );
        // A BYE from the callee carries the tags the other way round (RFC 3261 §12.2.1.1).
        let bye = "BYE sip:alice@a SIP/2.0\r\nFrom: <sip:bob@b>;tag=b1\r\nTo: <sip:alice@a>;tag=a1\r\nCall-ID: c1@a\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        let ev = feed(&mut d, 9, B, A, bye);
        assert_eq!(ev, vec![DialogEvent::Stopped(h)]);
        assert_eq!(
            d.get(h).unwrap().ended,
            Some((Timestamp(9), EndReason::Bye))
        );
    }

    /// The call's codec is the answer's first audio payload type in its m= line's order,
    /// whatever order the rtpmap lines come in, and a static type needs no rtpmap line.
    #[test]
    fn the_primary_codec_follows_the_m_line_not_the_rtpmap_lines() {
        let sdp = |port: u16, m: &str, maps: &str| {
            format!(
                "v=0\r\no=- 2 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio {port} RTP/AVP {m}\r\n{maps}"
            )
        };
        let call = |offer: &str, answer: Option<&str>| {
            let mut d = Dialogs::new(DialogConfig::default());
            let ev = feed(
                &mut d,
                1,
                A,
                B,
                &msg("INVITE sip:bob@b SIP/2.0", "1 INVITE", "a1", None, offer),
            );
            let DialogEvent::Started(h) = ev[0] else {
                panic!("{ev:?}")
            };
            if let Some(answer) = answer {
                feed(
                    &mut d,
                    2,
                    B,
                    A,
                    &msg("SIP/2.0 200 OK", "1 INVITE", "a1", Some("b1"), answer),
                );
            }
            d.get(h).unwrap().primary_codec().map(|c| c.name)
        };
        let offer = sdp(
            4000,
            "8 18 0 101",
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:18 G729/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        // The rtpmap lines list PCMU first; the m= line prefers PCMA (a real PBX's answer).
        let answer = sdp(
            5000,
            "8 0 3 101",
            "a=rtpmap:0 pcmu/8000\r\na=rtpmap:8 pcma/8000\r\na=rtpmap:3 gsm/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        assert_eq!(call(&offer, Some(&answer)).as_deref(), Some("pcma"));
        // Static types only, no rtpmap line (older equipment): the table names them.
        assert_eq!(
            call(&offer, Some(&sdp(5000, "18 0", ""))).as_deref(),
            Some("G729")
        );
        // Telephone-event and comfort noise first are passed over.
        assert_eq!(
            call(
                &offer,
                Some(&sdp(
                    5000,
                    "101 13 0",
                    "a=rtpmap:101 telephone-event/8000\r\n"
                ))
            )
            .as_deref(),
            Some("PCMU")
        );
        // Unanswered: the offer's order.
        assert_eq!(call(&offer, None).as_deref(), Some("PCMA"));
        assert_eq!(call(&sdp(4000, "0 8", ""), None).as_deref(), Some("PCMU"));
        // A disabled first stream does not name the codec; the next audio stream does.
        let two = format!(
            "{}m=audio 6000 RTP/AVP 9\r\n",
            sdp(0, "18", "a=rtpmap:18 G729/8000\r\n")
        );
        assert_eq!(call(&offer, Some(&two)).as_deref(), Some("G722"));
    }

    /// A 2xx with SDP to an INVITE never seen starts the call, answered, with From as the
    /// caller; without SDP, or while a forgotten call's 2xx may still be retransmitted, it
    /// does not.
    #[test]
    fn a_2xx_whose_invite_was_not_seen_picks_the_call_up() {
        let ok = |body: &str| msg("SIP/2.0 200 OK", "1 INVITE", "a1", Some("b1"), body);
        let mut d = Dialogs::new(DialogConfig::default());
        assert!(feed(&mut d, 1, B, A, &ok("")).is_empty(), "no SDP, no call");
        let ev = feed(&mut d, 2, B, A, &ok(SDP_B));
        let DialogEvent::Started(h) = ev[0] else {
            panic!("{ev:?}")
        };
        assert!(ev.contains(&DialogEvent::Answered(h)), "{ev:?}");
        let c = d.get(h).unwrap();
        assert!(c.picked_up);
        assert_eq!(c.caller.user, "alice");
        assert_eq!(c.callee.user, "bob");
        assert_eq!(c.caller_signalling, A.parse().unwrap());
        assert_eq!(c.callee_signalling, B.parse().unwrap());
        // The callee's SDP ties media to the call, both ways.
        assert_eq!(
            d.lookup_media(
                "10.0.0.1:4000".parse().unwrap(),
                "10.0.0.2:5000".parse().unwrap()
            )
            .map(|(c, _)| c),
            Some(h)
        );
        // Its retransmissions belong to it.
        assert!(
            !feed(&mut d, 3, B, A, &ok(SDP_B))
                .iter()
                .any(|e| matches!(e, DialogEvent::Started(_)))
        );
        // Once forgotten, a late retransmission does not start it again...
        d.remove(h).unwrap();
        assert!(feed(&mut d, 30_000_000_000, B, A, &ok(SDP_B)).is_empty());
        // ...but a 2xx after a 2xx could no longer be a retransmission does.
        let ev = feed(&mut d, 70_000_000_000, B, A, &ok(SDP_B));
        assert!(matches!(ev[0], DialogEvent::Started(_)), "{ev:?}");
    }

    #[test]
    fn an_invite_answering_a_challenge_continues_the_call() {
        let mut d = Dialogs::new(DialogConfig::default());
        feed(
            &mut d,
            1,
            A,
            B,
            &msg("INVITE sip:bob@b SIP/2.0", "1 INVITE", "a1", None, SDP_A),
        );
        let ev = feed(
            &mut d,
            2,
            B,
            A,
            &msg(
                "SIP/2.0 407 Proxy Authentication Required",
                "1 INVITE",
                "a1",
                Some("x"),
                "",
            ),
        );
        assert!(matches!(ev[..], [DialogEvent::Stopped(_)]));
        // 30 s later (a user typing a password), the INVITE with credentials.
        let ev = feed(
            &mut d,
            30_000_000_000,
            A,
            B,
            &msg("INVITE sip:bob@b SIP/2.0", "2 INVITE", "a1", None, SDP_A),
        );
        assert!(
            ev.iter().all(|e| !matches!(e, DialogEvent::Started(_))),
            "no new call: {ev:?}"
        );
        assert_eq!(d.len(), 1);
        let ev = feed(
            &mut d,
            30_100_000_000,
            B,
            A,
            &msg("SIP/2.0 200 OK", "2 INVITE", "a1", Some("b1"), SDP_B),
        );
        assert!(ev.iter().any(|e| matches!(e, DialogEvent::Answered(_))));
    }

    #[test]
    fn cancel_then_487_ends_as_cancelled() {
        let mut d = Dialogs::new(DialogConfig::default());
        feed(
            &mut d,
            1,
            A,
            B,
            &msg("INVITE sip:bob@b SIP/2.0", "1 INVITE", "a1", None, SDP_A),
        );
        feed(
            &mut d,
            2,
            A,
            B,
            &msg("CANCEL sip:bob@b SIP/2.0", "1 CANCEL", "a1", None, ""),
        );
        let ev = feed(
            &mut d,
            3,
            B,
            A,
            &msg(
                "SIP/2.0 487 Request Terminated",
                "1 INVITE",
                "a1",
                Some("b1"),
                "",
            ),
        );
        let DialogEvent::Stopped(h) = ev[0] else {
            panic!("{ev:?}")
        };
        let c = d.get(h).unwrap();
        assert_eq!(
            (c.ended, c.final_status),
            (Some((Timestamp(3), EndReason::Cancelled)), Some(487))
        );
        // Reported once the linger is over.
        let mut out = Vec::new();
        d.sweep(Timestamp(3) + Duration::from_secs(5), &mut out);
        assert_eq!(out, vec![DialogEvent::Reaped(h)]);
    }

    #[test]
    fn a_reinvite_on_hold_adds_no_endpoint_and_a_media_move_does() {
        let mut d = Dialogs::new(DialogConfig::default());
        feed(
            &mut d,
            1,
            A,
            B,
            &msg("INVITE sip:bob@b SIP/2.0", "1 INVITE", "a1", None, SDP_A),
        );
        feed(
            &mut d,
            2,
            B,
            A,
            &msg("SIP/2.0 200 OK", "1 INVITE", "a1", Some("b1"), SDP_B),
        );
        let hold = SDP_A.replace("c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0");
        let ev = feed(
            &mut d,
            3,
            A,
            B,
            &msg(
                "INVITE sip:bob@b SIP/2.0",
                "2 INVITE",
                "a1",
                Some("b1"),
                &hold,
            ),
        );
        assert!(ev.is_empty(), "hold by 0.0.0.0 learns nothing: {ev:?}");
        let moved = SDP_A.replace("4000", "4100");
        let ev = feed(
            &mut d,
            4,
            A,
            B,
            &msg(
                "INVITE sip:bob@b SIP/2.0",
                "3 INVITE",
                "a1",
                Some("b1"),
                &moved,
            ),
        );
        assert!(matches!(
            ev[..],
            [DialogEvent::MediaLearned {
                side: Side::Caller,
                ..
            }]
        ));
        let (h, side) = d
            .lookup_media(
                "10.0.0.1:4100".parse().unwrap(),
                "10.9.9.9:1".parse().unwrap(),
            )
            .unwrap();
        assert_eq!(side, Side::Caller);
        assert_eq!(d.get(h).unwrap().state, CallState::Answered);
    }

    #[test]
    fn forked_early_dialogs_share_the_call_and_the_answering_fork_wins() {
        let mut d = Dialogs::new(DialogConfig::default());
        let ev = feed(
            &mut d,
            1,
            A,
            B,
            &msg("INVITE sip:bob@b SIP/2.0", "1 INVITE", "a1", None, SDP_A),
        );
        let DialogEvent::Started(h) = ev[0] else {
            panic!("{ev:?}")
        };
        // A forking proxy: two phones ring, each with early media from its own endpoint.
        let sdp_b2 = SDP_B
            .replace("10.0.0.2", "10.0.0.3")
            .replace("5000", "5002");
        let ev = feed(
            &mut d,
            2,
            B,
            A,
            &msg(
                "SIP/2.0 183 Session Progress",
                "1 INVITE",
                "a1",
                Some("fork1"),
                SDP_B,
            ),
        );
        assert!(matches!(
            ev[..],
            [DialogEvent::MediaLearned {
                side: Side::Callee,
                ..
            }]
        ));
        let ev = feed(
            &mut d,
            3,
            B,
            A,
            &msg(
                "SIP/2.0 183 Session Progress",
                "1 INVITE",
                "a1",
                Some("fork2"),
                &sdp_b2,
            ),
        );
        assert!(matches!(
            ev[..],
            [DialogEvent::MediaLearned {
                side: Side::Callee,
                ..
            }]
        ));
        assert_eq!(d.len(), 1, "forks are early dialogs of one call");
        for ep in ["10.0.0.2:5000", "10.0.0.3:5002"] {
            assert_eq!(
                d.lookup_media(ep.parse().unwrap(), "10.0.0.1:4000".parse().unwrap()),
                Some((h, Side::Callee)),
                "{ep}"
            );
        }
        let ev = feed(
            &mut d,
            4,
            B,
            A,
            &msg("SIP/2.0 200 OK", "1 INVITE", "a1", Some("fork2"), &sdp_b2),
        );
        assert!(ev.contains(&DialogEvent::Answered(h)));
        assert_eq!(d.get(h).unwrap().to_tag.as_deref(), Some("fork2"));
        // A late 200 from the other fork does not answer the call again.
        let ev = feed(
            &mut d,
            5,
            B,
            A,
            &msg("SIP/2.0 200 OK", "1 INVITE", "a1", Some("fork1"), SDP_B),
        );
        assert!(!ev.iter().any(|e| matches!(e, DialogEvent::Answered(_))));
    }

    fn feed_any(d: &mut Dialogs, from: &str, to: &str, text: &str) -> Vec<DialogEvent> {
        let mut out = Vec::new();
        let m = Message::parse(text.as_bytes()).expect("test message parses");
        d.on_message(
            Timestamp(9),
            from.parse().unwrap(),
            to.parse().unwrap(),
            SipTransport::Udp,
            &m,
            &mut out,
        )
        .expect("accepted");
        out
    }

    /// A message with extra headers and an optional typed body.
    fn with(
        start: &str,
        cseq: &str,
        to_tag: Option<&str>,
        extra: &str,
        ct: &str,
        body: &str,
    ) -> String {
        let to = match to_tag {
            Some(t) => format!("<sip:+4940100@pbx>;tag={t}"),
            None => "<sip:+4940100@pbx>".to_string(),
        };
        let ct = if ct.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {ct}\r\n")
        };
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:alice@a>;tag=a1\r\nTo: {to}\r\nCall-ID: f1@a\r\nCSeq: {cseq}\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// An answered call: the INVITE to `sip:201@pbx` (To the DDI) and its 200.
    fn answered_call(d: &mut Dialogs, invite_extra: &str, ok_extra: &str) -> CallHandle {
        let ev = feed_any(
            d,
            A,
            B,
            &with(
                "INVITE sip:201@pbx;user=phone SIP/2.0",
                "1 INVITE",
                None,
                &format!(
                    "Contact: \"Alice\" <sip:alice@10.0.0.1:5060;transport=udp>;expires=60\r\n{invite_extra}"
                ),
                "",
                "",
            ),
        );
        let DialogEvent::Started(h) = ev[0] else {
            panic!("{ev:?}")
        };
        let ev = feed_any(
            d,
            B,
            A,
            &with(
                "SIP/2.0 200 OK",
                "1 INVITE",
                Some("b1"),
                &format!("Contact: <sip:201@10.0.0.2:5062>\r\n{ok_extra}"),
                "",
                "",
            ),
        );
        assert_eq!(ev, vec![DialogEvent::Answered(h)]);
        h
    }

    #[test]
    fn request_uri_user_contacts_mode_and_session_id_are_kept() {
        let mut d = Dialogs::new(DialogConfig::default());
        let h = answered_call(
            &mut d,
            "X-Record-Mode: deny\r\n",
            "x-record-mode: force\r\nX-Session-Id:  s-42 \r\n",
        );
        let c = d.get(h).unwrap();
        assert_eq!(c.request_user, "201");
        assert_eq!(c.callee.user, "+4940100");
        assert_eq!(
            c.caller_contact.as_deref(),
            Some("sip:alice@10.0.0.1:5060;transport=udp")
        );
        assert_eq!(c.callee_contact.as_deref(), Some("sip:201@10.0.0.2:5062"));
        // The INVITE's mode wins over the 2xx's; the session id comes from the 2xx.
        assert_eq!(c.mode.as_deref(), Some("deny"));
        assert_eq!(c.session_id.as_deref(), Some("s-42"));
    }

    #[test]
    fn the_mode_header_name_is_configurable() {
        let headers = PolicyHeaders {
            mode: "X-Rec".into(),
            ..PolicyHeaders::default()
        };
        let mut d = Dialogs::with_headers(DialogConfig::default(), headers);
        let h = answered_call(&mut d, "X-Record-Mode: deny\r\n", "X-Rec: manual\r\n");
        assert_eq!(d.get(h).unwrap().mode.as_deref(), Some("manual"));
    }

    #[test]
    fn a_re_invite_does_not_change_the_facts() {
        let mut d = Dialogs::new(DialogConfig::default());
        let h = answered_call(&mut d, "", "");
        feed_any(
            &mut d,
            A,
            B,
            &with(
                "INVITE sip:999@elsewhere SIP/2.0",
                "2 INVITE",
                Some("b1"),
                "Contact: <sip:moved@10.0.0.9>\r\nX-Record-Mode: force\r\n",
                "",
                "",
            ),
        );
        let c = d.get(h).unwrap();
        assert_eq!(c.request_user, "201");
        assert_eq!(
            c.caller_contact.as_deref(),
            Some("sip:alice@10.0.0.1:5060;transport=udp")
        );
        assert_eq!(c.mode, None);
    }

    #[test]
    fn info_record_key_is_reported_with_the_sender() {
        let mut d = Dialogs::new(DialogConfig::default());
        let h = answered_call(&mut d, "", "");
        // From the callee: tags the other way round.
        let info = |v: &str| {
            format!(
                "INFO sip:alice@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2\r\nFrom: <sip:201@pbx>;tag=b1\r\nTo: <sip:alice@a>;tag=a1\r\nCall-ID: f1@a\r\nCSeq: 7 INFO\r\nRecord: {v}\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let ev = feed_any(&mut d, B, A, &info("off"));
        assert_eq!(
            ev,
            vec![DialogEvent::InfoRecord {
                call: h,
                ts: Timestamp(9),
                side: Side::Callee,
                on: false
            }]
        );
        let ev = feed_any(&mut d, B, A, &info("ON"));
        assert!(
            matches!(ev[..], [DialogEvent::InfoRecord { on: true, .. }]),
            "{ev:?}"
        );
        assert!(feed_any(&mut d, B, A, &info("maybe")).is_empty());

        let mut custom = Dialogs::with_headers(
            DialogConfig::default(),
            PolicyHeaders {
                info_record: InfoRecordHeader {
                    name: "X-Rec".into(),
                    on: "start".into(),
                    off: "stop".into(),
                },
                ..PolicyHeaders::default()
            },
        );
        answered_call(&mut custom, "", "");
        assert!(feed_any(&mut custom, B, A, &info("on")).is_empty());
        let ev = feed_any(
            &mut custom,
            B,
            A,
            &info("on").replace("Record: on", "X-Rec: stop"),
        );
        assert!(
            matches!(ev[..], [DialogEvent::InfoRecord { on: false, .. }]),
            "{ev:?}"
        );
    }

    #[test]
    fn in_dialog_media_control_message_pauses_and_resumes() {
        let mut d = Dialogs::new(DialogConfig::default());
        let h = answered_call(&mut d, "", "");
        let message = |body: &str| {
            with(
                "MESSAGE sip:201@10.0.0.2 SIP/2.0",
                "2 MESSAGE",
                Some("b1"),
                "",
                "application/x-media-control",
                body,
            )
        };
        let ev = feed_any(&mut d, A, B, &message("pause-audio-recording\r\n"));
        assert_eq!(
            ev,
            vec![DialogEvent::MediaControl {
                call: h,
                ts: Timestamp(9),
                side: Side::Caller,
                pause: true
            }]
        );
        let ev = feed_any(&mut d, A, B, &message("resume-audio-recording"));
        assert!(
            matches!(ev[..], [DialogEvent::MediaControl { pause: false, .. }]),
            "{ev:?}"
        );
        assert!(feed_any(&mut d, A, B, &message("pause-video-recording")).is_empty());
        // The right body with another content type is not a media-control request.
        let plain =
            message("pause-audio-recording").replace("application/x-media-control", "text/plain");
        assert!(feed_any(&mut d, A, B, &plain).is_empty());
    }

    #[test]
    fn a_target_refresh_with_another_asserted_identity_changes_the_party() {
        let mut d = Dialogs::new(DialogConfig::default());
        let h = answered_call(&mut d, "", "");
        let refresh = |start: &str, cseq: &str, pai: &str| {
            let extra = if pai.is_empty() {
                String::new()
            } else {
                format!("P-Asserted-Identity: \"New\" <sip:{pai}@pbx>\r\n")
            };
            with(start, cseq, Some("b1"), &extra, "", "")
        };
        let reinvite = |cseq: &str, pai: &str| refresh("INVITE sip:201@pbx SIP/2.0", cseq, pai);
        assert!(feed_any(&mut d, A, B, &reinvite("2 INVITE", "")).is_empty());
        assert!(feed_any(&mut d, A, B, &reinvite("3 INVITE", "alice")).is_empty());
        let ev = feed_any(&mut d, A, B, &reinvite("4 INVITE", "+4930999"));
        assert_eq!(
            ev,
            vec![DialogEvent::PartyChanged {
                call: h,
                ts: Timestamp(9),
                side: Side::Caller,
                user: "+4930999".into()
            }]
        );
        // Told once; an UPDATE back to the first identity is a change again.
        assert!(feed_any(&mut d, A, B, &reinvite("5 INVITE", "+4930999")).is_empty());
        let ev = feed_any(
            &mut d,
            A,
            B,
            &refresh("UPDATE sip:201@pbx SIP/2.0", "6 UPDATE", "alice"),
        );
        assert!(
            matches!(&ev[..], [DialogEvent::PartyChanged { user, .. }] if user == "alice"),
            "{ev:?}"
        );
        assert_eq!(d.get(h).unwrap().asserted, [None, None]);
    }

    #[test]
    fn out_of_dialog_json_message_is_matched_by_session_id() {
        let mut d = Dialogs::new(DialogConfig::default());
        let h = answered_call(&mut d, "X-Session-Id: abc-1\r\n", "");
        let message = |from_user: &str, body: &str| {
            format!(
                "MESSAGE sip:recorder@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.50\r\nFrom: <sip:{from_user}@pbx>;tag=m1\r\nTo: <sip:recorder@pbx>\r\nCall-ID: other@desk\r\nCSeq: 1 MESSAGE\r\nContent-Type: application/x-media-control+json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let ev = feed_any(
            &mut d,
            "10.0.0.50:5060",
            B,
            &message(
                "+4940100",
                r#"{ "operation" : "pause-audio-recording", "session_id": "abc-1" }"#,
            ),
        );
        assert_eq!(
            ev,
            vec![DialogEvent::MediaControl {
                call: h,
                ts: Timestamp(9),
                side: Side::Callee,
                pause: true
            }]
        );
        // The caller's user asked; keys in any order.
        let ev = feed_any(
            &mut d,
            "10.0.0.50:5060",
            B,
            &message(
                "alice",
                r#"{"session_id":"abc-1","operation":"resume-audio-recording"}"#,
            ),
        );
        assert!(
            matches!(
                ev[..],
                [DialogEvent::MediaControl {
                    side: Side::Caller,
                    pause: false,
                    ..
                }]
            ),
            "{ev:?}"
        );
        // An unknown session, a bad operation, or broken JSON do nothing.
        for body in [
            r#"{"operation":"pause-audio-recording","session_id":"nope"}"#,
            r#"{"operation":"explode","session_id":"abc-1"}"#,
            r#"{"operation":"pause-audio-recording""#,
            "",
        ] {
            assert!(
                feed_any(&mut d, "10.0.0.50:5060", B, &message("x", body)).is_empty(),
                "{body}"
            );
        }
        // Forgotten with its call.
        d.remove(h);
        assert!(d.by_session_id.is_empty());
    }
}
