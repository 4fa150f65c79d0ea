//! The sans-IO engine: `(timestamp, frame)` in, [`Event`]s out.
//!
//! ```text
//! handle(ts, link, frame)   feed one captured frame
//! handle_timeout(ts)        fire deadlines up to ts (handle() does this itself)
//! poll_timeout()            the next deadline, for a live loop that idles
//! poll_event()              drain what happened
//! finish()                  end of input: flush every call and recording
//! ```
//! Time comes only from packet timestamps, so a replay and a live capture of the same traffic
//! give the same output. The engine routes: frames to dialogs, RTP to the stream of the call
//! that owns its endpoints ([`crate::stream`]), and decisions to the call's recording
//! ([`crate::recording`]).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::codec::{self, CodecSpec};
use crate::conversation::{ConversationId, Conversations, Link};
use crate::dialog::{
    Call, CallState, DialogConfig, DialogEvent, Dialogs, MediaSecurity, PolicyHeaders, Rejected,
};
use crate::event::{
    CallDecision, CallStarted, ConversationLink, DtmfEvent, Event, RecordingControl,
    RecordingStarted, SipSeen, StopReason, StreamReport,
};
use crate::evidence::{CallEvidence, Evidence, EvidenceConfig, HoldKey};
use crate::media::TimelineConfig;
use crate::policy::{
    CallFacts, Command, InfoRecordHeader, IpNet, PartyEvidence, RecordAnswered, RecordOn,
    RecordingPolicy, Settings, Trigger,
};
use crate::reasm::{
    self, Budget, DefragConfig, DefragError, Defragmenter, Evict, FlowKey, TcpConfig, TcpError,
    TcpReassembler,
};
use crate::recording::{Limit, Recording};
use crate::rtp;
use crate::sdp::Direction;
use crate::servers::Servers;
use crate::sip::{self, Frame, Message};
use crate::stats::{Dropped, Malformed, Stats};
use crate::stream::{Digit, Stream, StreamCtx, StreamStatus};
use crate::time::Timestamp;
use crate::vocab::{
    Action, AddrMap, CallHandle, DtmfSource, RecordingFormat, RecordingHandle, Shard, Side,
    SipTransport, StreamHandle,
};
use crate::wire::{self, Decoded, LinkType, Transport};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub dialog: DialogConfig,
    pub defrag: DefragConfig,
    pub tcp: TcpConfig,
    /// TCP ports whose flows are always reassembled as SIP; other TCP flows are followed once a
    /// segment starts like a SIP message.
    pub sip_tcp_ports: Vec<u16>,
    /// How long a missing RTP packet is waited for before it counts as lost (and the codec
    /// conceals it); audio is also handed out this far behind the slowest live channel.
    pub reorder_window: Duration,
    /// A direction that sends nothing for this long stops holding the other back: a network
    /// stall shorter than this loses no audio.
    pub stall_allowance: Duration,
    /// Audio buffered per recording beyond what was written is bounded by this.
    pub max_buffered: Duration,
    /// A recording is cut at this length (the cut is counted and catalogued).
    pub max_recording: Duration,
    /// RTP that matches no call yet is held this long for an SDP that may claim it.
    pub pending_rtp_max_age: Duration,
    /// Upper bound on RTP packets held for a later SDP.
    pub pending_rtp_max_packets: usize,
    /// Bytes every buffer that waits for more input may hold together: TCP streams, IP
    /// datagrams in reassembly and RTP held for its SDP. The idlest buffers are evicted to
    /// make room (counted in `Stats::dropped`); the per-flow limits stay.
    pub buffer_budget_bytes: usize,
    /// How often timers are checked, in packet time.
    pub sweep_interval: Duration,
    /// Audio is handed out in chunks of at least this many frames.
    pub audio_chunk_frames: usize,
    /// Recording sample rate; `None` follows the call's codec: 16 kHz for wide-band codecs,
    /// 8 kHz otherwise. A policy's `sample_rate` wins over both.
    pub sample_rate: Option<u32>,
    /// Recording file format unless the policy chooses one.
    pub format: RecordingFormat,
    /// The header that sets a call's recording mode (`auto`, `force`, `deny`, `manual`).
    pub mode_header: String,
    /// The SIP INFO record key: header name, on value, off value.
    pub info_record: InfoRecordHeader,
    /// Listen for DTMF in the audio of answered calls ([`crate::dtmf`]); off costs nothing.
    pub inband_dtmf: bool,
    /// Headers a PBX or SBC puts on every leg of a conversation (see `crate::conversation`).
    pub correlation_headers: Vec<String>,
    /// Record every leg of a conversation, not only the one that sees both people. Each
    /// extra recording says whose audio it repeats.
    pub record_each_leg: bool,
    /// PBX, proxy, SBC and media relay addresses (`[rules.networks] servers`); more are
    /// learned from the traffic ([`crate::servers`]).
    pub servers: Vec<IpNet>,
    /// The calls this engine decodes, records and reports, when several workers share the
    /// input ([`Shard`]); all of them by default.
    pub shard: Shard,
    /// For a live view: report each SIP message of a call ([`Event::Sip`]) and, every
    /// `progress_interval` of packet time, where each call's media stands
    /// ([`Event::CallProgress`]). Off by default: a run without a viewer pays nothing.
    pub monitor: bool,
    pub progress_interval: Duration,
    /// Keep each call's frames as captured and hand them out as [`Event::Evidence`] chunks
    /// ([`crate::evidence`]). Off (`None`) by default: then no frame is copied.
    pub evidence: Option<EvidenceConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            dialog: DialogConfig::default(),
            defrag: DefragConfig::default(),
            tcp: TcpConfig::default(),
            sip_tcp_ports: vec![5060, 5061, 5080],
            reorder_window: Duration::from_millis(300),
            stall_allowance: Duration::from_secs(5),
            max_buffered: Duration::from_secs(30),
            max_recording: Duration::from_secs(6 * 3600),
            pending_rtp_max_age: Duration::from_secs(2),
            pending_rtp_max_packets: 8192,
            buffer_budget_bytes: DEFAULT_BUFFER_BUDGET,
            sweep_interval: Duration::from_millis(100),
            audio_chunk_frames: 4000,
            sample_rate: None,
            format: RecordingFormat::Wav,
            mode_header: PolicyHeaders::default().mode,
            info_record: InfoRecordHeader::default(),
            inband_dtmf: false,
            correlation_headers: PolicyHeaders::default().correlation,
            record_each_leg: false,
            servers: Vec::new(),
            shard: Shard::ALL,
            monitor: false,
            progress_interval: Duration::from_secs(1),
            evidence: None,
        }
    }
}

/// 64 MiB: normal traffic holds a few KiB per flow mid-message and per datagram mid-
/// reassembly, so this is room for thousands of them at once (and for 256 flows at their 256
/// KiB limit), while a flood of partial messages costs 64 MiB rather than the 16 GiB that
/// 65,536 flows at their per-flow limit would.
pub const DEFAULT_BUFFER_BUDGET: usize = 64 * 1024 * 1024;

/// A UDP flow's source and destination: the key of the flow table and of held RTP, looked up
/// for every packet. It hashes as one or two integers rather than through `SocketAddr`'s own
/// `Hash` (a discriminant, a length prefix, the octets and the port, for each address: eight
/// hasher calls a lookup), while the seeded hasher still keeps traffic from choosing
/// colliding keys: the integers are the addresses themselves, not a digest of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FlowTuple(SocketAddr, SocketAddr);

impl std::hash::Hash for FlowTuple {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match (self.0, self.1) {
            (SocketAddr::V4(a), SocketAddr::V4(b)) => {
                let one = |v: std::net::SocketAddrV4| {
                    (u64::from(v.ip().to_bits()) << 16) | u64::from(v.port())
                };
                state.write_u128((u128::from(one(a)) << 64) | u128::from(one(b)));
            }
            (a, b) => {
                for v in [a, b] {
                    match v {
                        SocketAddr::V4(v) => state
                            .write_u64((u64::from(v.ip().to_bits()) << 16) | u64::from(v.port())),
                        SocketAddr::V6(v) => {
                            state.write_u128(v.ip().to_bits());
                            state.write_u16(v.port());
                        }
                    }
                }
            }
        }
    }
}

/// The flow table: each known UDP flow and its call, and how many flows use each address
/// (for [`Dialogs::settle_media`]: an endpoint no flow uses decides no route).
#[derive(Default)]
struct FlowTable {
    map: AddrMap<FlowTuple, Flow>,
    addrs: AddrMap<SocketAddr, u32>,
}

impl FlowTable {
    fn get(&self, key: &FlowTuple) -> Option<&Flow> {
        self.map.get(key)
    }

    fn get_mut(&mut self, key: &FlowTuple) -> Option<&mut Flow> {
        self.map.get_mut(key)
    }

    fn insert(&mut self, key: FlowTuple, flow: Flow) {
        if self.map.insert(key, flow).is_none() {
            for a in [key.0, key.1] {
                *self.addrs.entry(a).or_insert(0) += 1;
            }
        }
    }

    fn remove(&mut self, key: &FlowTuple) {
        if self.map.remove(key).is_some() {
            for a in [key.0, key.1] {
                if let Some(n) = self.addrs.get_mut(&a) {
                    *n -= 1;
                    if *n == 0 {
                        self.addrs.remove(&a);
                    }
                }
            }
        }
    }

    /// Whether a known flow sends from or to `addr`.
    fn uses(&self, addr: SocketAddr) -> bool {
        self.addrs.contains_key(&addr)
    }
}

/// A UDP flow tied to a call, as of a media epoch ([`Dialogs::media_epoch`]): when endpoints
/// change hands the tie is checked again.
#[derive(Clone, Copy)]
struct Flow {
    call: CallHandle,
    epoch: u64,
    sender: Side,
    /// Where in its call's streams the flow's last packet went (a hint, checked before use;
    /// [`NO_STREAM`] before the first), so that a known stream's packet finds it at once.
    stream: u32,
}

/// [`Flow::stream`] before the flow's first packet reached a stream.
const NO_STREAM: u32 = u32::MAX;

/// What the decision at answer time asked of every recording of the call.
#[derive(Clone, Debug, Default)]
struct CallRecording {
    min_secs: Option<u32>,
    /// The recording's sample rate and format, when the policy chose them.
    sample_rate: Option<u32>,
    format: Option<RecordingFormat>,
    deadline: Option<Timestamp>,
    /// `record_on = bridge`: the recording waits for RTP in both directions; the reason to
    /// start it with and which directions have been seen.
    bridge: Option<(String, [bool; 2])>,
}

/// Everything a call owns beside its dialog: its streams, its recording, what the decision
/// asked, the flows tied to it and its part in its conversation's recording. It is kept in
/// [`Dialogs`] with the dialog, as one entry: a reap drops both together.
#[derive(Default)]
struct CallMedia {
    streams: Vec<Stream>,
    recording: Option<Recording>,
    settings: CallRecording,
    flows: Vec<FlowTuple>,
    /// When the parties agreed ZRTP keys in the media path, if they did.
    zrtp: Option<Timestamp>,
    /// An answered leg the policy would record whose conversation another leg's recording
    /// already covers: the reason it gave, for a handover.
    covered: Option<String>,
    /// A recording handed over to this leg when the conversation's recording leg ended: held
    /// back (no events, no audio written) until the leg outlives [`HANDOVER_GRACE`], so legs
    /// that end together leave one recording.
    tentative: Option<(Timestamp, RecordingStarted)>,
    /// The call's frames not yet handed out ([`EngineConfig::evidence`]).
    evidence: CallEvidence,
}

struct PendingPacket {
    ts: Timestamp,
    data: Vec<u8>,
}

/// RTP that matches no call yet, per flow, for an SDP that may claim it: a holder under the
/// buffer budget.
#[derive(Default)]
struct HeldRtp {
    flows: AddrMap<FlowTuple, VecDeque<PendingPacket>>,
    packets: usize,
    bytes: usize,
    /// Packets evicted for memory, since the start.
    evicted: u64,
}

impl HeldRtp {
    fn hold(&mut self, ts: Timestamp, tuple: FlowTuple, payload: &[u8]) {
        self.packets += 1;
        self.bytes += payload.len();
        self.flows
            .entry(tuple)
            .or_default()
            .push_back(PendingPacket {
                ts,
                data: payload.to_vec(),
            });
    }

    fn take(&mut self, tuple: &FlowTuple) -> Option<VecDeque<PendingPacket>> {
        let q = self.flows.remove(tuple)?;
        self.packets -= q.len();
        self.bytes -= q.iter().map(|p| p.data.len()).sum::<usize>();
        Some(q)
    }

    /// Drops packets held longer than `max_age`; returns how many.
    fn expire(&mut self, now: Timestamp, max_age: Duration) -> usize {
        let mut dropped = 0usize;
        let mut bytes = 0usize;
        self.flows.retain(|_, q| {
            while q
                .front()
                .is_some_and(|p| now.saturating_since(p.ts) > max_age)
            {
                bytes += q.pop_front().map_or(0, |p| p.data.len());
                dropped += 1;
            }
            !q.is_empty()
        });
        self.packets -= dropped;
        self.bytes -= bytes;
        dropped
    }

    /// Drops everything; returns how many packets.
    fn clear(&mut self) -> usize {
        let n = self.packets;
        self.flows.clear();
        self.packets = 0;
        self.bytes = 0;
        n
    }

    /// The flow whose oldest packet is oldest (the lower tuple on a tie, so replays agree).
    fn oldest(&self) -> Option<(Timestamp, FlowTuple)> {
        self.flows
            .iter()
            .filter_map(|(t, q)| q.front().map(|p| (p.ts, *t)))
            .min()
    }
}

impl Evict for HeldRtp {
    fn held_bytes(&self) -> usize {
        self.bytes
    }

    fn idlest(&self) -> Option<Timestamp> {
        self.oldest().map(|(ts, _)| ts)
    }

    fn evict_idlest(&mut self) -> Option<usize> {
        let (_, tuple) = self.oldest()?;
        let before = self.bytes;
        let q = self.take(&tuple)?;
        self.evicted += q.len() as u64;
        Some(before - self.bytes)
    }
}

/// What came of a request of [`Engine::control`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlOutcome {
    /// Carried out.
    Done,
    /// No answered call has that Call-ID.
    NoCall,
    /// `start` on a call that is recording (and not paused).
    AlreadyRecording,
    /// `pause` on a paused recording.
    AlreadyPaused,
    /// `resume` on a recording that is not paused.
    NotPaused,
    /// `stop`, `pause` or `resume` on a call with no recording.
    NotRecording,
}

impl ControlOutcome {
    /// Why nothing was done, for the control socket's answer; `None` when it was done.
    pub fn refusal(self, sip_call_id: &str) -> Option<String> {
        Some(match self {
            ControlOutcome::Done => return None,
            ControlOutcome::NoCall => format!("no answered call with Call-ID {sip_call_id}"),
            ControlOutcome::AlreadyRecording => {
                format!("call {sip_call_id} is already recording")
            }
            ControlOutcome::AlreadyPaused => format!("call {sip_call_id} is already paused"),
            ControlOutcome::NotPaused => {
                format!("call {sip_call_id} is recording, not paused: nothing to resume")
            }
            ControlOutcome::NotRecording => format!("call {sip_call_id} is not being recorded"),
        })
    }
}

/// The engine. See the module documentation.
pub struct Engine {
    cfg: EngineConfig,
    stats: Stats,
    events: VecDeque<Event>,
    /// Every call: its dialog and its [`CallMedia`], one entry each.
    dialogs: Dialogs<CallMedia>,
    policy: Box<dyn RecordingPolicy>,
    defrag: Defragmenter,
    tcp: TcpReassembler,
    flows: FlowTable,
    /// Where matched flows send to, and who sends there: the answering direction's source.
    peers: AddrMap<SocketAddr, (CallHandle, Side)>,
    held_rtp: HeldRtp,
    next_stream: u64,
    next_recording: u64,
    now: Timestamp,
    next_sweep: Option<Timestamp>,
    /// When the next [`Event::CallProgress`] round is due ([`EngineConfig::monitor`]).
    next_progress: Timestamp,
    dialog_events: Vec<DialogEvent>,
    scratch: Vec<u8>,
    /// Digits the streams heard while handling one packet.
    digits: Vec<Digit>,
    conversations: Conversations,
    servers: Servers,
    /// How many legs are covered ([`CallMedia::covered`]): a call's end looks for a handover
    /// only when some are.
    covered_legs: usize,
    /// RTP packets of owned calls handed to their streams.
    owned_rtp: u64,
    route_rechecks: u64,
    /// With [`EngineConfig::evidence`]: whose the frame being handled is, and what waits.
    evidence: Option<Evidence>,
}

/// A leg must outlive the recording leg of its conversation by this much to take over the
/// recording (a B2BUA hangs its legs up within milliseconds of each other).
pub const HANDOVER_GRACE: Duration = Duration::from_millis(500);

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self::with_policy(cfg, Box::new(RecordAnswered))
    }

    pub fn with_policy(cfg: EngineConfig, policy: Box<dyn RecordingPolicy>) -> Self {
        let servers = Servers::new(cfg.servers.clone());
        let cfg_evidence = cfg.evidence;
        Self {
            dialogs: Dialogs::with_headers(
                cfg.dialog.clone(),
                PolicyHeaders {
                    mode: cfg.mode_header.clone(),
                    info_record: cfg.info_record.clone(),
                    correlation: cfg.correlation_headers.clone(),
                },
            ),
            defrag: Defragmenter::new(cfg.defrag),
            tcp: TcpReassembler::new(cfg.tcp),
            cfg,
            stats: Stats::default(),
            events: VecDeque::new(),
            policy,
            flows: FlowTable::default(),
            peers: AddrMap::default(),
            held_rtp: HeldRtp::default(),
            next_stream: 0,
            next_recording: 0,
            now: Timestamp(0),
            next_sweep: None,
            next_progress: Timestamp(0),
            dialog_events: Vec::new(),
            scratch: Vec::new(),
            digits: Vec::new(),
            conversations: Conversations::default(),
            servers,
            covered_legs: 0,
            owned_rtp: 0,
            route_rechecks: 0,
            evidence: cfg_evidence.map(Evidence::new),
        }
    }

    /// Replaces the recording policy (a configuration reload). Calls already answered keep the
    /// recordings they have; the new policy decides for calls answered from now on and for
    /// the triggers it sees from now on.
    pub fn set_policy(&mut self, policy: Box<dyn RecordingPolicy>) {
        self.policy = policy;
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Calls currently tracked (including ended ones still lingering).
    pub fn active_calls(&self) -> usize {
        self.dialogs.len()
    }

    /// Recordings open now (of a worker: those of its calls).
    pub fn active_recordings(&self) -> usize {
        self.dialogs
            .exts()
            .filter(|(_, m)| m.recording.as_ref().is_some_and(|r| !r.is_ghost()))
            .count()
    }

    /// Bytes the reassembly and held-RTP buffers hold now (at most
    /// `EngineConfig::buffer_budget_bytes`).
    pub fn buffered_bytes(&self) -> usize {
        self.tcp.held_bytes() + self.defrag.held_bytes() + self.held_rtp.held_bytes()
    }

    /// Bytes in the calls' evidence buffers now (at most about
    /// [`EvidenceConfig::budget_bytes`]), and in frames waiting for their call.
    pub fn evidence_bytes(&self) -> (usize, usize) {
        self.evidence
            .as_ref()
            .map_or((0, 0), |e| (e.buffered, e.held.bytes()))
    }

    /// The latest packet time seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The next event. A worker ([`EngineConfig::shard`]) reports only the calls it owns,
    /// and the first worker what is no call's; the others' events, made alike in every
    /// worker, are dropped here.
    pub fn poll_event(&mut self) -> Option<Event> {
        let shard = self.cfg.shard;
        if shard.count <= 1 {
            return self.events.pop_front();
        }
        while let Some(ev) = self.events.pop_front() {
            let ours = match &ev {
                // Only a recording this worker owns hands audio out.
                Event::RecordingAudio { .. } | Event::RecordingSilence { .. } => true,
                ev => ev.call().map_or(shard.is_first(), |c| shard.owns(c)),
            };
            if ours {
                return Some(ev);
            }
        }
        None
    }

    /// RTP packets of the calls this engine owns, handed to their streams: a worker's share
    /// of the audio work.
    pub fn owned_rtp_packets(&self) -> u64 {
        self.owned_rtp
    }

    /// Packets of known flows whose route was checked again because an endpoint that some
    /// flow uses changed hands since the flow was tied (what the media epoch costs).
    pub fn route_rechecks(&self) -> u64 {
        self.route_rechecks
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_sweep
    }

    /// Feeds one captured frame. Malformed input is counted and skipped; nothing panics.
    pub fn handle(&mut self, ts: Timestamp, link: LinkType, frame: &[u8]) {
        self.stats.frames += 1;
        self.stats.bytes += frame.len() as u64;
        // Merged captures are not always in order; timers only move forward.
        if ts > self.now {
            self.now = ts;
        }
        if self.next_sweep.is_some_and(|t| self.now >= t) {
            self.handle_timeout(self.now);
        }
        if self.next_sweep.is_none() {
            self.next_sweep = Some(self.now + self.cfg.sweep_interval);
        }
        if let Some(ev) = self.evidence.as_mut() {
            ev.begin_frame();
        }
        self.dispatch(ts, link, frame);
        if self.evidence.is_some() {
            self.end_frame_evidence(ts, link, frame);
        }
    }

    fn dispatch(&mut self, ts: Timestamp, link: LinkType, frame: &[u8]) {
        match wire::decode(link, frame) {
            Ok(Decoded::Packet {
                src,
                dst,
                transport,
            }) => self.on_transport(ts, src, dst, transport),
            Ok(Decoded::Fragment(frag)) => {
                self.stats.ip_fragments += 1;
                let (pushed, peak) = {
                    let mut others: [&mut dyn Evict; 2] = [&mut self.tcp, &mut self.held_rtp];
                    let mut budget = Budget::new(self.cfg.buffer_budget_bytes, &mut others);
                    let pushed = self.defrag.push(ts, &frag, &mut budget);
                    (pushed, budget.peak())
                };
                self.count_buffers(peak);
                if let Some(ev) = self.evidence.as_mut() {
                    let key = HoldKey::Fragment(frag.src, frag.dst, frag.id, frag.protocol);
                    ev.join(key, matches!(pushed, Ok(None)));
                }
                match pushed {
                    Ok(Some(whole)) => {
                        self.stats.ip_reassembled += 1;
                        match wire::decode_transport(whole.protocol, &whole.payload) {
                            Ok(t) => self.on_transport(ts, whole.src, whole.dst, t),
                            Err(_) => self.stats.count_malformed(Malformed::Transport),
                        }
                    }
                    Ok(None) => {}
                    Err(DefragError::OverBudget) => self.stats.count_dropped(Dropped::OverBudget),
                    Err(_) => self.stats.count_malformed(Malformed::Fragment),
                }
            }
            Ok(Decoded::NotIp) => self.stats.ignored += 1,
            Err(wire::Error::Unsupported) => self.stats.ignored += 1,
            Err(wire::Error::Truncated) | Err(wire::Error::Malformed) => {
                self.stats.count_malformed(Malformed::Link)
            }
        }
    }

    fn on_transport(&mut self, ts: Timestamp, src: IpAddr, dst: IpAddr, transport: Transport<'_>) {
        match transport {
            Transport::Udp {
                src_port,
                dst_port,
                payload,
            } => self.on_udp(
                ts,
                SocketAddr::new(src, src_port),
                SocketAddr::new(dst, dst_port),
                payload,
            ),
            Transport::Tcp {
                src_port,
                dst_port,
                seq,
                flags,
                payload,
            } => {
                self.stats.tcp_segments += 1;
                let key = FlowKey {
                    src: SocketAddr::new(src, src_port),
                    dst: SocketAddr::new(dst, dst_port),
                };
                self.on_tcp(ts, key, seq, flags, payload)
            }
            Transport::Other { .. } => self.stats.ignored += 1,
        }
    }

    fn on_udp(&mut self, ts: Timestamp, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        if self.dialogs.media_unsettled() {
            self.settle_media();
        }
        let known = self.flows.get(&FlowTuple(src, dst)).copied();
        if let Some(flow) = known
            && let Some(kind) = zrtp_message(payload)
        {
            self.evidence_mark(flow.call);
            return self.on_zrtp(ts, flow, kind);
        }
        if let Some(flow) = known
            && rtp::looks_like_rtp(payload)
        {
            // A flow checked in this media epoch whose call is up goes straight to it (one
            // lookup of the call); anything else is routed again first.
            if flow.epoch == self.dialogs.media_epoch()
                && self.on_rtp(ts, src, dst, flow, payload, Lookup::Live)
            {
                return;
            }
            match self.route(flow, src, dst, payload) {
                Route::To(flow) => {
                    self.evidence_mark(flow.call);
                    self.on_rtp(ts, src, dst, flow, payload, Lookup::Any);
                }
                Route::Hold => self.hold_pending(ts, src, dst, payload),
                Route::AfterEnd => {
                    self.evidence_mark(flow.call);
                    self.stats.rtp_packets += 1;
                    self.stats.rtp_after_end += 1;
                }
            }
            return;
        }
        if sip::looks_like_sip(payload) {
            self.on_sip_bytes(ts, src, dst, SipTransport::Udp, payload);
        } else if rtp::looks_like_rtcp(payload) {
            self.stats.rtcp_packets += 1;
            if self.evidence.is_some()
                && let Some(call) = self.rtcp_call(src, dst)
            {
                self.evidence_mark(call);
            }
        } else if rtp::looks_like_unknown_rtp(src.port(), dst.port(), payload) {
            match self.match_flow(src, dst) {
                Some(flow) => {
                    self.add_flow(src, dst, flow);
                    self.evidence_mark(flow.call);
                    self.on_rtp(ts, src, dst, flow, payload, Lookup::Any);
                }
                None => self.hold_pending(ts, src, dst, payload),
            }
        } else {
            self.stats.ignored += 1;
        }
    }

    fn on_tcp(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        seq: u32,
        flags: wire::TcpFlags,
        payload: &[u8],
    ) {
        // A flow is followed while the reassembler holds it; it forgets idle ones by itself.
        let tracked = self.tcp.stream(&key).is_some();
        if !tracked {
            let on_sip_port = self.cfg.sip_tcp_ports.contains(&key.src.port())
                || self.cfg.sip_tcp_ports.contains(&key.dst.port());
            if !(on_sip_port || (!payload.is_empty() && sip::looks_like_sip(payload))) {
                self.stats.ignored += 1;
                return;
            }
            if payload.is_empty() && !flags.syn() {
                return;
            }
        }
        let (pushed, peak) = {
            let mut others: [&mut dyn Evict; 2] = [&mut self.defrag, &mut self.held_rtp];
            let mut budget = Budget::new(self.cfg.buffer_budget_bytes, &mut others);
            let pushed = self.tcp.push(ts, key, seq, flags, payload, &mut budget);
            (pushed, budget.peak())
        };
        self.count_buffers(peak);
        let over_budget = pushed == Err(TcpError::OverBudget);
        match pushed {
            Ok(()) => {}
            Err(TcpError::OverBudget) => self.stats.count_dropped(Dropped::OverBudget),
            Err(_) => self.stats.count_malformed(Malformed::Transport),
        }
        // A message longer than the flow may buffer could never complete: skip it whole.
        let max_message = self.cfg.tcp.max_buffered_bytes;
        let mut whole = 0usize;
        while let Some(stream) = self.tcp.stream(&key) {
            // Bytes given up for the budget are counted as that, not as malformed.
            if stream.take_resynced() && !over_budget {
                self.stats.count_malformed(Malformed::Transport);
            }
            match sip::frame_within(stream.data(), max_message) {
                Frame::Complete(n) => {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(&stream.data()[..n]);
                    stream.consume(n);
                    let msg = std::mem::take(&mut self.scratch);
                    self.on_sip_bytes(ts, key.src, key.dst, SipTransport::Tcp, &msg);
                    self.scratch = msg;
                    whole += 1;
                }
                Frame::Skip(n) => {
                    stream.consume(n.max(1));
                }
                Frame::TooLarge(n) => {
                    self.stats.count_dropped(Dropped::SipTooLarge);
                    stream.discard(n.max(1));
                }
                Frame::Incomplete => break,
            }
        }
        if let Some(ev) = self.evidence.as_mut() {
            // A segment that ends no message waits for the one that does.
            ev.join(
                HoldKey::Tcp(key.src, key.dst),
                whole == 0 && !payload.is_empty(),
            );
        }
        if self.tcp.stream(&key).is_some_and(|s| s.is_finished()) {
            self.tcp.remove(&key);
        } else {
            self.tcp.settle(&key);
        }
    }

    /// After a push that may have evicted buffers: the eviction counters and the peak.
    fn count_buffers(&mut self, peak: usize) {
        let held = self.held_rtp.evicted - self.stats.dropped[Dropped::HeldRtpEvicted as usize];
        // Evicted held RTP never matched a call: its outcome is unmatched, as on expiry.
        self.stats.rtp_packets += held;
        self.stats.rtp_unmatched += held;
        self.stats.dropped[Dropped::HeldRtpEvicted as usize] = self.held_rtp.evicted;
        self.stats.dropped[Dropped::TcpEvicted as usize] = self.tcp.evicted_for_memory();
        self.stats.dropped[Dropped::FragmentsEvicted as usize] = self.defrag.evicted_for_memory();
        let now = self.buffered_bytes().max(peak) as u64;
        self.stats.buffered_peak_bytes = self.stats.buffered_peak_bytes.max(now);
    }

    fn on_sip_bytes(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        transport: SipTransport,
        data: &[u8],
    ) {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(_) => {
                self.stats.count_malformed(Malformed::Sip);
                return;
            }
        };
        self.stats.sip_messages += 1;
        let mut out = std::mem::take(&mut self.dialog_events);
        out.clear();
        let call = match self
            .dialogs
            .on_message(ts, src, dst, transport, &msg, &mut out)
        {
            Ok(call) => call,
            Err(Rejected::MissingHeaders) => {
                self.stats.count_malformed(Malformed::Sip);
                None
            }
            Err(Rejected::BadSdp(call)) => {
                self.stats.count_malformed(Malformed::Sdp);
                Some(call)
            }
        };
        self.settle_media();
        self.apply(&out);
        self.dialog_events = out;
        if let Some(call) = call {
            self.evidence_mark(call);
        }
        // After what it caused, so a viewer knows the call the first INVITE starts.
        if self.cfg.monitor
            && let Some(call) = call
        {
            self.events.push_back(Event::Sip(SipSeen {
                call,
                ts,
                src,
                dst,
                transport,
                message: data.into(),
            }));
        }
    }

    /// Acts on what the dialog layer decided.
    fn apply(&mut self, out: &[DialogEvent]) {
        for ev in out {
            match *ev {
                DialogEvent::Started(call) => self.on_call_started(call),
                DialogEvent::Answered(call) => self.on_answered(call),
                DialogEvent::Stopped(call) => {
                    self.stop_recording(call, self.call_end(call), StopReason::CallEnded)
                }
                DialogEvent::Reaped(call) => self.reap(call),
                DialogEvent::MediaLearned {
                    call,
                    ref endpoints,
                    ..
                } => {
                    for &endpoint in endpoints {
                        self.events.push_back(Event::MediaEndpoint {
                            call,
                            endpoint,
                            active: true,
                        });
                    }
                    self.claim_pending(call);
                }
                DialogEvent::InfoDtmf {
                    call,
                    ts,
                    side,
                    digit,
                    duration_ms,
                } => {
                    self.on_dtmf(DtmfEvent {
                        call,
                        ts,
                        digit,
                        duration_ms,
                        source: DtmfSource::SipInfo,
                        side,
                        offset_s: None,
                    });
                }
                DialogEvent::InfoRecord { call, ts, side, on } => {
                    self.on_trigger(call, ts, Trigger::SipInfoRecord { on, side })
                }
                DialogEvent::MediaControl {
                    call,
                    ts,
                    side,
                    pause,
                } => self.on_trigger(call, ts, Trigger::MediaControl { pause, side }),
                DialogEvent::Refer {
                    call,
                    ts,
                    side,
                    ref target,
                    ref replaces,
                    status,
                } => {
                    if !(200..300).contains(&status) {
                        self.events.push_back(Event::Transfer {
                            call,
                            ts,
                            side,
                            target: target.clone(),
                            replaces: replaces.clone(),
                            status,
                        });
                        continue;
                    }
                    let dialogs = &self.dialogs;
                    let live = |h: CallHandle| dialogs.get(h).is_some();
                    if let Some(made) =
                        self.conversations
                            .on_refer(call, ts, target, replaces.as_deref(), &live)
                    {
                        self.events.push_back(linked(call, ts, made));
                    }
                    self.events.push_back(Event::Transfer {
                        call,
                        ts,
                        side,
                        target: target.clone(),
                        replaces: replaces.clone(),
                        status,
                    });
                    // The party who asked is being replaced by the target (RFC 3515 §2.4.1).
                    self.on_trigger(
                        call,
                        ts,
                        Trigger::PartyChanged {
                            side,
                            user: target.clone(),
                        },
                    );
                }
                DialogEvent::PartyChanged {
                    call,
                    ts,
                    side,
                    ref user,
                } => self.on_trigger(
                    call,
                    ts,
                    Trigger::PartyChanged {
                        side,
                        user: user.clone(),
                    },
                ),
            }
        }
    }

    fn on_call_started(&mut self, handle: CallHandle) {
        let Some(c) = self.dialogs.get(handle) else {
            return;
        };
        self.stats.calls_seen += 1;
        self.stats.calls_picked_up += u64::from(c.picked_up);
        self.servers.observe(c);
        self.events.push_back(Event::CallStarted(CallStarted {
            call: handle,
            ts: c.started,
            sip_call_id: c.sip_call_id.clone(),
            from_tag: c.from_tag.clone(),
            caller: c.caller.clone(),
            callee: c.callee.clone(),
            caller_signalling: c.caller_signalling,
            callee_signalling: c.callee_signalling,
            transport: c.transport,
            picked_up: c.picked_up,
        }));
        let dialogs = &self.dialogs;
        let live = |h: CallHandle| dialogs.get(h).is_some();
        let ringing = |h: CallHandle| {
            dialogs
                .get(h)
                .is_some_and(|c| c.answered.is_none() && c.state != CallState::Ended)
        };
        let (id, link) = self.conversations.on_started(c, c.started, &live, &ringing);
        let people = link
            .is_none()
            .then(|| [c.caller.user.clone(), c.callee.user.clone()]);
        let (linked_to, evidence, detail) = match link {
            Some(l) => (Some(l.to), l.evidence.as_str(), l.detail),
            None => (None, String::new(), String::new()),
        };
        self.events.push_back(Event::Conversation(ConversationLink {
            call: handle,
            ts: c.started,
            conversation: id.0,
            linked_to,
            evidence,
            detail,
            merged: None,
            people,
        }));
    }

    fn on_answered(&mut self, handle: CallHandle) {
        let Some(c) = self.dialogs.get(handle) else {
            return;
        };
        let answered_at = c.answered.unwrap_or(self.now);
        self.stats.calls_answered += 1;
        self.events.push_back(Event::CallAnswered {
            call: handle,
            ts: answered_at,
            to_tag: c.to_tag.clone().unwrap_or_default(),
        });
        self.servers.observe(c);
        let dialogs = &self.dialogs;
        let unanswered = |h: CallHandle| dialogs.get(h).is_some_and(|o| o.answered.is_none());
        if let Some((link, conv)) = self.conversations.confirm_pickup(c, &unanswered) {
            self.events.push_back(Event::Conversation(ConversationLink {
                call: handle,
                ts: answered_at,
                conversation: conv.0,
                linked_to: Some(link.to),
                evidence: link.evidence.as_str(),
                detail: link.detail,
                merged: None,
                people: None,
            }));
        }
        let legs = self.conversations.others(handle);
        let others = other_facts(&self.dialogs, &self.servers, &legs);
        let link = self.conversations.link_of(handle).map(|l| &l.evidence);
        let mut facts = call_facts(c, answered_at, &self.servers, &others, link);
        facts.picked_up = link == Some(&crate::conversation::Evidence::Pickup)
            || link == Some(&crate::conversation::Evidence::Replaces) && c.evidence.replaces_early;
        if let Some(people) = self.conversations.on_answered(c, facts.picked_up)
            && let Some(id) = self.conversations.of(handle)
        {
            self.events.push_back(Event::Conversation(ConversationLink {
                call: handle,
                ts: answered_at,
                conversation: id.0,
                linked_to: None,
                evidence: String::new(),
                detail: String::new(),
                merged: None,
                people: Some(people),
            }));
        }
        let mut decision = self.policy.on_answer(&facts);
        // One recording per conversation: a leg whose conversation another leg already
        // records is covered by it, unless every leg is recorded (and says so).
        let recorder = decision
            .record
            .then(|| self.recorder_of(handle))
            .flatten()
            .map(|r| {
                let id = self
                    .dialogs
                    .get(r)
                    .map(|c| c.sip_call_id.clone())
                    .unwrap_or_default();
                let rec = self.recording(r).map(|x| x.handle);
                (r, id, rec)
            });
        let mut covered_by = None;
        let mut repeats = None;
        if let Some((r, id, rec)) = recorder {
            if self.cfg.record_each_leg {
                decision.trace.push(format!(
                    "also recorded on this leg (record_each_leg): it repeats the recording of leg {id}"
                ));
                repeats = rec;
            } else {
                decision.trace.push(format!(
                    "recorded on leg {id} of the same conversation: one recording per conversation"
                ));
                covered_by = Some(r);
            }
        }
        self.events.push_back(Event::Decision(CallDecision {
            call: handle,
            ts: answered_at,
            record: decision.record,
            reason: decision.reason.clone(),
            trace: decision.trace.clone(),
            direction: decision.direction.map(|d| d.as_str()),
            covered_by,
            tenant: decision.tenant.clone(),
            users: decision.users.clone(),
        }));
        if decision.external_to_external_refused {
            self.stop_conversation(handle, answered_at, &decision.reason);
        }
        let mut settings = call_settings(answered_at, &decision.settings);
        if covered_by.is_some() {
            self.set_settings(handle, settings);
            self.set_covered(handle, decision.reason);
            self.follow_recorder(handle);
            return;
        }
        let bridge = decision.settings.record_on == Some(RecordOn::Bridge);
        if decision.record && bridge {
            settings.bridge = Some((decision.reason, [false; 2]));
            self.set_settings(handle, settings);
            return;
        }
        self.set_settings(handle, settings);
        if decision.record
            && let Some(r) = self.begin_recording(handle, answered_at, decision.reason, repeats)
        {
            self.events.push_back(Event::RecordingStarted(r));
        }
    }

    /// A leg connects two external parties the tenant does not record: the conversation's
    /// other legs carry the same people now, so their recordings stop and nothing takes over.
    fn stop_conversation(&mut self, call: CallHandle, ts: Timestamp, reason: &str) {
        for leg in self.conversations.others(call) {
            self.take_covered(leg);
            if let Some(rec) = self.recording(leg) {
                let handle = rec.handle;
                self.push_control(RecordingControl {
                    rec: handle,
                    call: leg,
                    ts,
                    action: Action::Stop,
                    reason: reason.to_string(),
                    requested_by: None,
                    requested_by_user: None,
                    requested_by_device: None,
                    offset_s: None,
                });
                self.stop_recording(leg, ts, StopReason::ExternalToExternal);
            }
        }
    }

    /// The leg of `call`'s conversation whose recording covers it: another leg recording
    /// (or waiting for its bridge), the oldest first.
    fn recorder_of(&self, call: CallHandle) -> Option<CallHandle> {
        self.conversations.others(call).into_iter().find(|l| {
            self.dialogs
                .ext(*l)
                .is_some_and(|m| m.recording.is_some() || m.settings.bridge.is_some())
        })
    }

    /// A covered leg's packets are matched again, so audio its SDP shares with the recording
    /// leg (a PBX passing the phone's and the carrier's SDP through) reaches that recording.
    fn follow_recorder(&mut self, call: CallHandle) {
        let Some(m) = self.dialogs.ext(call) else {
            return;
        };
        for key in &m.flows {
            if self.flows.get(key).is_some_and(|f| f.call == call) {
                self.flows.remove(key);
            }
        }
    }

    /// A flow of a covered leg whose endpoints the recording leg's SDP also names belongs
    /// to the recording leg.
    fn redirect(&self, flow: Flow, src: SocketAddr, dst: SocketAddr) -> Flow {
        if !self.is_covered(flow.call) {
            return flow;
        }
        let Some(r) = self.recorder_of(flow.call) else {
            return flow;
        };
        let Some(c) = self.dialogs.get(r) else {
            return flow;
        };
        for side in [Side::Caller, Side::Callee] {
            let eps = &c.media[crate::dialog::side_index(side)].endpoints;
            if eps.contains(&dst) {
                return Flow {
                    call: r,
                    sender: side.other(),
                    ..flow
                };
            }
            if eps.contains(&src) {
                return Flow {
                    call: r,
                    sender: side,
                    ..flow
                };
            }
        }
        flow
    }

    /// The recording leg of a conversation ended: the oldest covered leg still up takes the
    /// recording over, once it has outlived [`HANDOVER_GRACE`].
    fn hand_over(&mut self, from: CallHandle, at: Timestamp) {
        let ended_by_input = self
            .dialogs
            .get(from)
            .and_then(|c| c.ended)
            .is_some_and(|(_, r)| r == crate::event::EndReason::EndOfInput);
        if ended_by_input || self.covered_legs == 0 {
            return;
        }
        let from_id = self
            .dialogs
            .get(from)
            .map(|c| c.sip_call_id.clone())
            .unwrap_or_default();
        let next = self.conversations.others(from).into_iter().find(|l| {
            self.is_covered(*l)
                && self
                    .dialogs
                    .get(*l)
                    .is_some_and(|c| c.answered.is_some() && c.state != CallState::Ended)
        });
        let Some(next) = next else {
            return;
        };
        // Another leg of the conversation records it still (legs joined by a transfer each
        // had theirs): that one goes on.
        if self.recorder_of(next).is_some() {
            return;
        }
        let reason = self.take_covered(next).unwrap_or_default();
        let reason = format!("handover from leg {from_id}: {reason}");
        if let Some(r) = self.begin_recording(next, at, reason, None)
            && let Some(m) = self.dialogs.ext_mut(next)
        {
            m.tentative = Some((at + HANDOVER_GRACE, r));
        }
    }

    /// A handed-over recording whose leg outlived the grace: it starts for real.
    fn confirm(&mut self, call: CallHandle) {
        if let Some((_, r)) = self.dialogs.ext_mut(call).and_then(|m| m.tentative.take()) {
            self.events.push_back(Event::RecordingStarted(r));
        }
    }

    fn start_recording(&mut self, call: CallHandle, ts: Timestamp, reason: String) {
        self.take_covered(call);
        if let Some(r) = self.begin_recording(call, ts, reason, None) {
            self.events.push_back(Event::RecordingStarted(r));
        }
    }

    /// Sets a recording up on the call; the caller reports it (or holds it back).
    fn begin_recording(
        &mut self,
        call: CallHandle,
        ts: Timestamp,
        reason: String,
        repeats: Option<RecordingHandle>,
    ) -> Option<RecordingStarted> {
        let (c, media) = self.dialogs.entry(call)?;
        if media.recording.is_some() {
            return None;
        }
        // An on-demand start while a bridge is awaited starts now: no more waiting.
        media.settings.bridge = None;
        let s = media.settings.clone();
        // Past the call's time limit nothing more is recorded.
        if s.deadline.is_some_and(|d| ts >= d) {
            return None;
        }
        let primary = c.primary_codec();
        let rate = recording_rate(&self.cfg, &s, c);
        let format = s.format.unwrap_or(self.cfg.format);
        self.next_recording += 1;
        let rec = RecordingHandle(self.next_recording);
        self.stats.recordings_started += 1;
        let mut timeline = TimelineConfig::new(rate);
        timeline.margin = self.cfg.reorder_window;
        timeline.stall = self.cfg.stall_allowance;
        timeline.max_ahead = self.cfg.max_buffered;
        timeline.stream_timeout = self.cfg.dialog.media_timeout;
        let frames = |d: Duration| (d.as_nanos() * rate as u128 / 1_000_000_000) as u64;
        // The time limit counts from the answer; the maximum length from this start.
        let limit = match s.deadline {
            Some(d) if d.saturating_since(ts) < self.cfg.max_recording => Limit {
                frames: frames(d.saturating_since(ts)),
                reason: StopReason::TimeLimit,
                end: d,
            },
            _ => Limit {
                frames: frames(self.cfg.max_recording),
                reason: StopReason::MaxLength,
                end: ts + self.cfg.max_recording,
            },
        };
        let mut recording = Recording::new(rec, call, ts, format, timeline, limit);
        if !self.cfg.shard.owns(call) {
            recording.set_ghost();
        }
        media.recording = Some(recording);
        Some(RecordingStarted {
            rec,
            call,
            ts,
            sample_rate: rate,
            channels: 2,
            format,
            codec: primary.map(|c| c.name).unwrap_or_default(),
            reason,
            min_secs: s.min_secs,
            repeats,
        })
    }

    /// A DTMF digit: reported, then offered to the policy (on-demand recording).
    fn on_dtmf(&mut self, mut ev: DtmfEvent) {
        ev.offset_s = self.recording(ev.call).map(|r| r.offset_s(ev.ts));
        let trigger = Trigger::Dtmf {
            digit: ev.digit,
            side: ev.side,
            source: ev.source,
        };
        let (call, ts) = (ev.call, ev.ts);
        self.events.push_back(Event::Dtmf(ev));
        self.on_trigger(call, ts, trigger);
    }

    /// Offers something seen in an answered call to the policy (on-demand recording).
    fn on_trigger(&mut self, call: CallHandle, ts: Timestamp, trigger: Trigger) {
        let Some(c) = self.dialogs.get(call) else {
            return;
        };
        let (Some(answered_at), false) = (c.answered, c.state == CallState::Ended) else {
            return;
        };
        let legs = self.conversations.others(call);
        let others = other_facts(&self.dialogs, &self.servers, &legs);
        let link = self.conversations.link_of(call).map(|l| &l.evidence);
        let mut facts = call_facts(c, answered_at, &self.servers, &others, link);
        facts.picked_up = link == Some(&crate::conversation::Evidence::Pickup)
            || link == Some(&crate::conversation::Evidence::Replaces) && c.evidence.replaces_early;
        let Some(cmd) = self.policy.on_trigger(&facts, &trigger) else {
            return;
        };
        if cmd.external_to_external && cmd.action == Action::Stop {
            // The catalog says why, in the stop reason and in a row with the policy's words.
            if let Some(rec) = self.recording(call) {
                let handle = rec.handle;
                self.push_control(RecordingControl {
                    rec: handle,
                    call,
                    ts,
                    action: Action::Stop,
                    reason: cmd.reason,
                    requested_by: None,
                    requested_by_user: None,
                    requested_by_device: None,
                    offset_s: None,
                });
                return self.stop_recording(call, ts, StopReason::ExternalToExternal);
            }
        }
        let _ = self.apply_command(call, ts, cmd);
    }

    /// Reports a pause, resume, start or stop, placed on the file where it happened.
    fn push_control(&mut self, mut c: RecordingControl) {
        c.offset_s = self.recording(c.call).map(|r| r.offset_s(c.ts));
        self.events.push_back(Event::RecordingControl(c));
    }

    fn recording(&self, call: CallHandle) -> Option<&Recording> {
        self.dialogs.ext(call)?.recording.as_ref()
    }

    /// A request from outside the wire (the local control API of `voxtap run`): start, stop,
    /// pause or resume the recording of the answered call with this SIP Call-ID, at `ts`.
    /// Says what came of it: done, no such call, or the state the recording is already in.
    pub fn control(&mut self, sip_call_id: &str, ts: Timestamp, cmd: Command) -> ControlOutcome {
        let Some(call) = self.dialogs.answered_by_call_id(sip_call_id) else {
            return ControlOutcome::NoCall;
        };
        self.apply_command(call, ts.max(self.now), cmd)
    }

    /// Carries out what the policy asked of a running call.
    fn apply_command(&mut self, call: CallHandle, ts: Timestamp, cmd: Command) -> ControlOutcome {
        let paused = self.recording(call).map(Recording::is_paused);
        let (action, pause) = match (cmd.action, paused) {
            (Action::Start, None) => {
                self.start_recording(call, ts, cmd.reason.clone());
                // A party asked: the catalog keeps who, on the new recording's timeline.
                self.note_request(call, ts, cmd);
                return ControlOutcome::Done;
            }
            (Action::Stop, Some(_)) => {
                self.note_request(call, ts, cmd);
                self.stop_recording(call, ts, StopReason::Policy);
                return ControlOutcome::Done;
            }
            (Action::Stop, None) => {
                // A recording still waiting for the bridge is called off.
                let waiting = self
                    .dialogs
                    .ext_mut(call)
                    .and_then(|m| m.settings.bridge.take())
                    .is_some();
                return if waiting {
                    ControlOutcome::Done
                } else {
                    ControlOutcome::NotRecording
                };
            }
            (Action::Pause, Some(false)) => (Action::Pause, true),
            (Action::Resume | Action::Start, Some(true)) => (Action::Resume, false),
            // Nothing to do: already in the state asked for.
            (Action::Start, Some(false)) => return ControlOutcome::AlreadyRecording,
            (Action::Pause, Some(true)) => return ControlOutcome::AlreadyPaused,
            (Action::Resume, Some(false)) => return ControlOutcome::NotPaused,
            (Action::Pause | Action::Resume, None) => return ControlOutcome::NotRecording,
        };
        let Some(rec) = self
            .dialogs
            .ext_mut(call)
            .and_then(|m| m.recording.as_mut())
        else {
            return ControlOutcome::NotRecording;
        };
        if pause {
            rec.pause(ts);
        } else {
            rec.resume(ts);
        }
        let handle = rec.handle;
        self.push_control(RecordingControl {
            rec: handle,
            call,
            ts,
            action,
            reason: cmd.reason,
            requested_by: cmd.requested_by,
            requested_by_user: cmd.requested_by_user,
            requested_by_device: cmd.requested_by_device,
            offset_s: None,
        });
        ControlOutcome::Done
    }

    /// Reports an on-demand start or stop with the party that asked, on the open recording.
    fn note_request(&mut self, call: CallHandle, ts: Timestamp, cmd: Command) {
        let (Some(rec), Some(_)) = (self.recording(call), cmd.requested_by) else {
            return;
        };
        let handle = rec.handle;
        self.push_control(RecordingControl {
            rec: handle,
            call,
            ts,
            action: cmd.action,
            reason: cmd.reason,
            requested_by: cmd.requested_by,
            requested_by_user: cmd.requested_by_user,
            requested_by_device: cmd.requested_by_device,
            offset_s: None,
        });
    }

    /// When a call's media stopped: its end if it has one, else now.
    fn call_end(&self, call: CallHandle) -> Timestamp {
        self.dialogs
            .get(call)
            .and_then(|c| c.ended.map(|(t, _)| t))
            .unwrap_or(self.now)
    }

    /// Finishes a call's recording: the streams give up what they hold, then the file ends.
    fn stop_recording(&mut self, call: CallHandle, end: Timestamp, reason: StopReason) {
        if self
            .dialogs
            .ext(call)
            .is_some_and(|m| m.tentative.is_some())
        {
            let by_input = self
                .dialogs
                .get(call)
                .and_then(|c| c.ended)
                .is_some_and(|(_, r)| r == crate::event::EndReason::EndOfInput);
            if by_input || reason != StopReason::CallEnded {
                self.confirm(call);
            } else {
                // It ended with the leg it took over from: the earlier recording was all, or
                // another covered leg goes on.
                if let Some(m) = self.dialogs.ext_mut(call) {
                    m.tentative = None;
                    m.recording = None;
                }
                return self.hand_over(call, end);
            }
        }
        let Some((c, media)) = self.dialogs.entry(call) else {
            return;
        };
        if media.recording.is_none() {
            return;
        }
        {
            let events = &mut self.events;
            let digits = &mut self.digits;
            let (window, inband) = (self.cfg.reorder_window, false);
            for stream in &mut media.streams {
                let sender = stream.sender;
                let payloads = |pt: u8| c.codec_for(sender, pt);
                let mut ctx = StreamCtx {
                    payloads: &payloads,
                    media_version: c.media_version,
                    telephone_event: c.telephone_event_pt(),
                    recording: media.recording.as_mut(),
                    inband,
                    prime: false,
                    rate_hint: 8000,
                    events,
                    digits,
                    reorder_window: window,
                    shadow: !self.cfg.shard.owns(call),
                };
                stream.flush(end, &mut ctx);
            }
            // Digits flushed out at the very end are reported, not acted on.
            for d in self.digits.drain(..) {
                let _ = d;
            }
        }
        let Some(rec) = media.recording.take() else {
            return;
        };
        if rec.at_limit() && rec.limit_reason() == StopReason::MaxLength {
            self.stats.recordings_cut += 1;
        }
        rec.stop(end, reason, &mut self.events);
        if reason == StopReason::CallEnded {
            self.hand_over(call, end);
        }
    }

    fn set_settings(&mut self, call: CallHandle, settings: CallRecording) {
        if let Some(m) = self.dialogs.ext_mut(call) {
            m.settings = settings;
        }
    }

    fn is_covered(&self, call: CallHandle) -> bool {
        self.dialogs.ext(call).is_some_and(|m| m.covered.is_some())
    }

    fn set_covered(&mut self, call: CallHandle, reason: String) {
        if let Some(m) = self.dialogs.ext_mut(call)
            && m.covered.replace(reason).is_none()
        {
            self.covered_legs += 1;
        }
    }

    fn take_covered(&mut self, call: CallHandle) -> Option<String> {
        let reason = self.dialogs.ext_mut(call)?.covered.take()?;
        self.covered_legs -= 1;
        Some(reason)
    }

    /// Reports a call's streams and its end, then forgets it: one entry, its dialog and
    /// everything it owned.
    fn reap(&mut self, handle: CallHandle) {
        self.stop_recording(handle, self.call_end(handle), StopReason::CallEnded);
        let Some((call, mut media)) = self.dialogs.remove(handle) else {
            return;
        };
        if let Some(ev) = self.evidence.as_mut()
            && self.cfg.shard.owns(handle)
        {
            ev.flush(handle, &mut media.evidence, true, &mut self.events);
            ev.sync(&mut self.stats);
        }
        if media.covered.is_some() {
            self.covered_legs -= 1;
        }
        for side in &call.media {
            for &endpoint in &side.endpoints {
                // Another call may have announced the same endpoint since: it keeps it.
                if self.dialogs.owner_of(endpoint).is_none() {
                    self.events.push_back(Event::MediaEndpoint {
                        call: handle,
                        endpoint,
                        active: false,
                    });
                }
            }
        }
        let mut streams = media.streams;
        streams.sort_by_key(|s| s.handle);
        // Another worker reports the streams of a call it owns.
        if !self.cfg.shard.owns(handle) {
            streams.clear();
        }
        for s in streams {
            let status = s.status();
            match status {
                StreamStatus::Undecodable(_) | StreamStatus::Partial(_) => {
                    self.stats.undecodable_streams += 1
                }
                StreamStatus::Encrypted(_) => self.stats.encrypted_streams += 1,
                _ => {}
            }
            self.stats.concealed_ms +=
                s.counts.concealed_samples * 1000 / u64::from(s.audio_rate().max(1));

            self.events
                .push_back(Event::StreamEnded(stream_report(&s, handle, &status)));
        }
        for FlowTuple(src, dst) in media.flows {
            if self
                .flows
                .get(&FlowTuple(src, dst))
                .is_some_and(|f| f.call == handle)
            {
                self.flows.remove(&FlowTuple(src, dst));
            }
            if self.peers.get(&dst).is_some_and(|(c, _)| *c == handle) {
                self.peers.remove(&dst);
            }
        }
        // Its flows are gone: the endpoints it gave up end the media epoch only if another
        // call's flows use them.
        self.settle_media();
        let (ts, reason) = call
            .ended
            .unwrap_or((call.last_activity, crate::event::EndReason::EndOfInput));
        self.policy.on_call_ended(handle);
        self.conversations.forget(handle);
        self.events.push_back(Event::CallEnded {
            call: handle,
            ts,
            reason,
            final_status: call.final_status,
        });
    }

    /// The frame being handled is `call`'s evidence (when the engine keeps evidence and owns
    /// the call).
    fn evidence_mark(&mut self, call: CallHandle) {
        if let Some(ev) = self.evidence.as_mut()
            && self.cfg.shard.owns(call)
        {
            ev.mark(call);
        }
    }

    /// The call an RTCP packet reports on: its own flow's (RTCP multiplexed with RTP, RFC
    /// 5761), or the flow one port below on both sides (RFC 3550 §11).
    fn rtcp_call(&self, src: SocketAddr, dst: SocketAddr) -> Option<CallHandle> {
        if let Some(f) = self.flows.get(&FlowTuple(src, dst)) {
            return Some(f.call);
        }
        let below = |a: SocketAddr| (a.port() > 0).then(|| SocketAddr::new(a.ip(), a.port() - 1));
        let (s, d) = (below(src)?, below(dst)?);
        if let Some(f) = self.flows.get(&FlowTuple(s, d)) {
            return Some(f.call);
        }
        self.match_endpoints(s, d).map(|f| f.call)
    }

    /// Puts the frame just handled where it belongs: in its calls' buffers (after the frames
    /// that waited for it), with the frames it waits with, or nowhere.
    fn end_frame_evidence(&mut self, ts: Timestamp, link: LinkType, frame: &[u8]) {
        let Some(ev) = self.evidence.as_mut() else {
            return;
        };
        let ctx = ev.take_frame();
        let linktype = link.to_pcap();
        if !ctx.calls.is_empty() {
            for &call in &ctx.calls {
                let Some(m) = self.dialogs.ext_mut(call) else {
                    continue;
                };
                if let Some((key, _)) = ctx.join {
                    ev.claim(key, call, &mut m.evidence, &mut self.events);
                }
                ev.append(call, &mut m.evidence, ts, linktype, frame, &mut self.events);
            }
        } else if let Some(hold) = ctx.hold {
            if let Some((key, _)) = ctx.join {
                ev.rekey(key, hold);
            }
            ev.hold(hold, ts, linktype, frame);
        } else if let Some((key, waits)) = ctx.join {
            if waits {
                ev.hold(key, ts, linktype, frame);
            } else {
                ev.discard(key);
            }
        }
        ev.put_frame(ctx);
        if ev.buffered > ev.cfg.budget_bytes {
            // The biggest buffers go out first, until three quarters of the budget is left.
            let target = ev.cfg.budget_bytes / 4 * 3;
            let mut sizes: Vec<(usize, CallHandle)> = self
                .dialogs
                .exts()
                .filter(|(_, m)| !m.evidence.is_empty())
                .map(|(h, m)| (m.evidence.len(), h))
                .collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            for (_, h) in sizes {
                if ev.buffered <= target {
                    break;
                }
                if let Some(m) = self.dialogs.ext_mut(h) {
                    ev.flush(h, &mut m.evidence, false, &mut self.events);
                    ev.spills += 1;
                }
            }
        }
        ev.sync(&mut self.stats);
    }

    /// Checks a known flow's call still owns it. A newer call's SDP may have taken the
    /// endpoint (a desk phone's fixed RTP port, a PBX's port pool): then the flow follows the
    /// endpoint, except for packets of a stream the old call already has (its own, late).
    fn route(&mut self, flow: Flow, src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Route {
        let epoch = self.dialogs.media_epoch();
        let live = self
            .dialogs
            .get(flow.call)
            .is_some_and(|c| c.state != CallState::Ended);
        if flow.epoch == epoch && live {
            return Route::To(flow);
        }
        self.route_rechecks += u64::from(flow.epoch != epoch);
        let ssrc = rtp::Packet::new_checked(payload).map_or(0, |p| p.ssrc());
        let own = self.dialogs.ext(flow.call).is_some_and(|m| {
            m.streams
                .iter()
                .any(|s| s.src == src && s.dst == dst && s.ssrc == ssrc)
        });
        let claim = self.match_flow(src, dst).filter(|f| f.call != flow.call);
        let route = match claim {
            Some(_) if own && live => Route::To(Flow { epoch, ..flow }),
            Some(new) => {
                self.add_flow(src, dst, new);
                Route::To(new)
            }
            None if live => Route::To(Flow { epoch, ..flow }),
            None if own => Route::AfterEnd,
            None => {
                self.flows.remove(&FlowTuple(src, dst));
                Route::Hold
            }
        };
        if let Route::To(f) = route
            && let Some(kept) = self.flows.get_mut(&FlowTuple(src, dst))
            && kept.call == f.call
        {
            kept.epoch = epoch;
        }
        route
    }

    /// Hands an RTP packet of `flow` to its call's stream, creating the stream on its first
    /// packet. With [`Lookup::Live`] (a flow routed in this media epoch) it does nothing
    /// and returns false unless the call is up and the packet well formed, for the caller to
    /// route it again; otherwise it returns true.
    fn on_rtp(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        flow: Flow,
        packet: &[u8],
        lookup: Lookup,
    ) -> bool {
        let fast = lookup == Lookup::Live;
        let pkt = match rtp::Packet::new_checked(packet) {
            Ok(p) => p,
            Err(_) if fast => return false,
            Err(_) => {
                self.stats.count_malformed(Malformed::Rtp);
                return true;
            }
        };
        if !fast {
            self.stats.rtp_packets += 1;
            self.stats.rtp_matched += 1;
        }
        // The packet is the call's sign of life (its media timeout counts from the last).
        let found = if fast {
            self.dialogs.live_entry_touched(flow.call, ts)
        } else {
            self.dialogs.entry_touched(flow.call, ts)
        };
        let Some((mut call, mut media)) = found else {
            return !fast;
        };
        if fast {
            self.stats.rtp_packets += 1;
            self.stats.rtp_matched += 1;
            if let Some(ev) = self.evidence.as_mut()
                && self.cfg.shard.owns(flow.call)
            {
                ev.mark(flow.call);
            }
        }
        let pt = pkt.payload_type();
        if call.answered.is_some()
            && Some(pt) != call.telephone_event_pt()
            && pt != rtp::PT_CN
            && pt != rtp::PT_CN_OLD
            && let Some((reason, seen)) = media.settings.bridge.as_mut()
        {
            seen[crate::dialog::side_index(flow.sender)] = true;
            if *seen == [true, true] {
                let reason = std::mem::take(reason);
                self.start_recording(flow.call, ts, reason);
                let Some((c, m)) = self.dialogs.entry(flow.call) else {
                    return true;
                };
                (call, media) = (c, m);
            }
        }
        let ssrc = pkt.ssrc();
        let at_hint = |s: &Stream| s.ssrc == ssrc && s.src == src && s.dst == dst;
        let idx = match media.streams.get(flow.stream as usize) {
            Some(s) if at_hint(s) => flow.stream as usize,
            _ => match media.streams.iter().position(at_hint) {
                Some(i) => {
                    remember_stream(&mut self.flows, src, dst, flow.call, i);
                    i
                }
                None => {
                    self.next_stream += 1;
                    self.stats.rtp_streams += 1;
                    let mut s = Stream::new(
                        StreamHandle(self.next_stream),
                        flow.sender,
                        src,
                        dst,
                        ssrc,
                        ts,
                    );
                    // The same source sending to a new address (the other party moved): its
                    // audio carries on, decoder and all.
                    if let Some(old) = media
                        .streams
                        .iter_mut()
                        .rev()
                        .find(|o| o.ssrc == ssrc && o.src == src)
                    {
                        s.carry_on_from(old);
                    }
                    media.streams.push(s);
                    let idx = media.streams.len() - 1;
                    remember_stream(&mut self.flows, src, dst, flow.call, idx);
                    let dialogs = &self.dialogs;
                    let live = |h: CallHandle| dialogs.get(h).is_some();
                    if let Some(made) = self.conversations.on_stream(flow.call, ssrc, &live) {
                        self.events.push_back(linked(flow.call, ts, made));
                    }
                    // Found again only for a new stream, whose conversation check read the
                    // other calls; a known stream's packet looks its call up once.
                    let Some((c, m)) = self.dialogs.entry(flow.call) else {
                        return true;
                    };
                    (call, media) = (c, m);
                    idx
                }
            },
        };
        let answered = call.answered.is_some();
        let owned = self.cfg.shard.owns(flow.call);
        self.owned_rtp += u64::from(owned);
        let stream = &mut media.streams[idx];
        let sender = stream.sender;
        if stream.keys_version != Some(call.media_version) {
            stream.keys_version = Some(call.media_version);
            match stream_keys(call, sender) {
                _ if media.zrtp.is_some() => stream.set_encrypted(Some(zrtp_reason())),
                Keys::Plain => stream.set_encrypted(None),
                Keys::Sdes(lines, tag) => stream.set_srtp_keys(&lines, tag),
                Keys::Unreadable(why) => stream.set_encrypted(Some(why)),
            }
        }
        // A shadow stream's packet in order, with no digit in it, only moves the stream on:
        // no audio, no figures, no digits, no limit (its recording is a ghost).
        if !owned
            && stream.problem().is_none()
            && stream.shadow_in_order(ts, &pkt, call.telephone_event_pt())
        {
            return true;
        }
        let payloads = |pt: u8| call.codec_for(sender, pt);
        let mut ctx = StreamCtx {
            payloads: &payloads,
            media_version: call.media_version,
            telephone_event: call.telephone_event_pt(),
            recording: media.recording.as_mut().filter(|_| answered),
            inband: self.cfg.inband_dtmf && answered,
            // Early media and a call waiting for the bridge may yet be recorded: their
            // decoders run from the first packet, so they are in step when it starts.
            prime: !answered || media.settings.bridge.is_some(),
            // Needed once, to make the decoder; a shadow stream never makes one, so it
            // does not ask (the recording's rate was looked up for every shadow packet).
            rate_hint: if owned && stream.audio_rate() == 0 {
                recording_rate(&self.cfg, &media.settings, call)
            } else {
                0
            },
            events: &mut self.events,
            digits: &mut self.digits,
            reorder_window: self.cfg.reorder_window,
            shadow: !owned,
        };
        let before = stream.counts;
        stream.on_wire(ts, packet, &mut ctx);
        // Live counts, so the figures of a running capture show what audio is being lost.
        if owned {
            let after = stream.counts;
            self.stats.late_packets += after.late - before.late;
            self.stats.duplicate_packets += after.duplicates - before.duplicates;
            self.stats.decrypt_failures += after.decrypt_failures - before.decrypt_failures;
        }
        if let (Some(why), Some(rec)) = (stream.problem(), media.recording.as_mut()) {
            rec.note_problem(sender, why);
        }
        let at_limit = media
            .recording
            .as_ref()
            .filter(|r| r.at_limit())
            .map(Recording::limit_reason);
        if !self.digits.is_empty() {
            self.report_digits(flow.call, sender);
        }
        if let Some(reason) = at_limit {
            self.stop_recording(flow.call, ts, reason);
        }
        true
    }

    /// A ZRTP message on a call's media path (RFC 6189): once the parties confirm a key, their
    /// media is SRTP under keys no observer can learn. What came before stays recorded; what
    /// follows is dropped and the recording says why.
    fn on_zrtp(&mut self, ts: Timestamp, flow: Flow, kind: [u8; 8]) {
        self.stats.zrtp_packets += 1;
        if !matches!(&kind, b"Confirm1" | b"Confirm2" | b"Conf2ACK") {
            return;
        }
        let Some(media) = self.dialogs.ext_mut(flow.call) else {
            return;
        };
        if media.zrtp.is_some() {
            return;
        }
        media.zrtp = Some(ts);
        let why = zrtp_reason();
        for s in &mut media.streams {
            s.set_encrypted(Some(why.clone()));
        }
    }

    /// Reports the digits the streams heard and offers them to the policy.
    fn report_digits(&mut self, call: CallHandle, side: Side) {
        if self.digits.is_empty() {
            return;
        }
        let digits = std::mem::take(&mut self.digits);
        for d in &digits {
            self.on_dtmf(DtmfEvent {
                call,
                ts: d.ts,
                digit: d.digit,
                duration_ms: d.duration_ms,
                source: d.source,
                side,
                offset_s: None,
            });
        }
        self.digits = digits;
        self.digits.clear();
    }

    /// Ends the media epoch if an endpoint that changed hands is one a known flow uses.
    fn settle_media(&mut self) {
        let flows = &self.flows;
        self.dialogs.settle_media(|ep| flows.uses(ep));
    }

    /// Ties a new flow to a call. A source that an earlier flow of the call sends to is that
    /// flow's peer answering back (symmetric RTP, RFC 4961), which holds where SDP addresses
    /// lie: behind NAT, or through a media relay whose address no SDP names. Otherwise the SDP
    /// endpoints decide.
    fn match_flow(&self, src: SocketAddr, dst: SocketAddr) -> Option<Flow> {
        let flow = self.match_endpoints(src, dst)?;
        Some(self.redirect(flow, src, dst))
    }

    fn match_endpoints(&self, src: SocketAddr, dst: SocketAddr) -> Option<Flow> {
        let epoch = self.dialogs.media_epoch();
        let by_sdp = self.dialogs.lookup_media(src, dst);
        if let Some(&(call, sender)) = self.peers.get(&src)
            && self
                .dialogs
                .get(call)
                .is_some_and(|c| c.state != CallState::Ended)
            // A newer call's SDP naming the endpoint wins over an older call's peer.
            && by_sdp.is_none_or(|(c, _)| c <= call)
        {
            return Some(Flow {
                call,
                sender: sender.other(),
                epoch,
                stream: NO_STREAM,
            });
        }
        by_sdp.map(|(call, sender)| Flow {
            call,
            sender,
            epoch,
            stream: NO_STREAM,
        })
    }

    fn add_flow(&mut self, src: SocketAddr, dst: SocketAddr, flow: Flow) {
        self.flows.insert(FlowTuple(src, dst), flow);
        if let Some(m) = self.dialogs.ext_mut(flow.call) {
            m.flows.push(FlowTuple(src, dst));
        }
        let peer = self.peers.entry(dst).or_insert((flow.call, flow.sender));
        // A peer left by an ended call is the new call's now.
        if peer.0 != flow.call
            && self
                .dialogs
                .get(peer.0)
                .is_none_or(|c| c.state == CallState::Ended)
        {
            *peer = (flow.call, flow.sender);
        }
    }

    /// Keeps RTP that matches no call yet, for an SDP that may still arrive.
    fn hold_pending(&mut self, ts: Timestamp, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        if self.held_rtp.packets >= self.cfg.pending_rtp_max_packets {
            self.stats.rtp_packets += 1;
            self.stats.rtp_unmatched += 1;
            return;
        }
        let fits = reasm::budget::fit(
            self.cfg.buffer_budget_bytes,
            payload.len(),
            &mut self.held_rtp,
            &mut [&mut self.tcp, &mut self.defrag],
        );
        if fits {
            self.held_rtp.hold(ts, FlowTuple(src, dst), payload);
            if let Some(ev) = self.evidence.as_mut() {
                ev.hold_flow(src, dst);
            }
        } else {
            self.stats.count_dropped(Dropped::OverBudget);
            self.stats.rtp_packets += 1;
            self.stats.rtp_unmatched += 1;
        }
        self.count_buffers(0);
    }

    /// Replays held RTP that the call's new endpoints now claim.
    fn claim_pending(&mut self, call: CallHandle) {
        if self.held_rtp.flows.is_empty() {
            return;
        }
        let mut claimed: Vec<(FlowTuple, Flow)> = Vec::new();
        for &FlowTuple(src, dst) in self.held_rtp.flows.keys() {
            if let Some(flow) = self.match_flow(src, dst)
                && flow.call == call
            {
                claimed.push((FlowTuple(src, dst), flow));
            }
        }
        claimed.sort_by_key(|(t, _)| *t);
        for (tuple, flow) in claimed {
            let Some(packets) = self.held_rtp.take(&tuple) else {
                continue;
            };
            self.add_flow(tuple.0, tuple.1, flow);
            if let Some(ev) = self.evidence.as_mut() {
                let key = HoldKey::Flow(tuple.0, tuple.1);
                match self.dialogs.ext_mut(flow.call) {
                    Some(m) if self.cfg.shard.owns(flow.call) => {
                        ev.claim(key, flow.call, &mut m.evidence, &mut self.events)
                    }
                    _ => ev.discard(key),
                }
            }
            for p in packets {
                self.on_rtp(p.ts, tuple.0, tuple.1, flow, &p.data, Lookup::Any);
            }
        }
    }

    /// Fires every deadline up to `ts`: dialog timeouts, reassembly expiry, held RTP, streams
    /// waiting for a missing packet, and audio that no stream can still change.
    pub fn handle_timeout(&mut self, ts: Timestamp) {
        if ts > self.now {
            self.now = ts;
        }
        let now = self.now;
        let mut out = std::mem::take(&mut self.dialog_events);
        out.clear();
        self.dialogs.sweep(now, &mut out);
        self.apply(&out);
        self.dialog_events = out;

        let expired = self.defrag.expire(now);
        self.stats.malformed[Malformed::Fragment as usize] += expired as u64;
        self.tcp.expire(now);

        let dropped = self.held_rtp.expire(now, self.cfg.pending_rtp_max_age);
        self.stats.rtp_packets += dropped as u64;
        self.stats.rtp_unmatched += dropped as u64;
        if let Some(ev) = self.evidence.as_mut() {
            ev.expire(now);
            ev.sync(&mut self.stats);
        }

        let handles = self.dialogs.handles();
        let mut stop: Vec<(CallHandle, Timestamp, StopReason)> = Vec::new();
        let progress = self.cfg.monitor && now >= self.next_progress;
        if progress {
            self.next_progress = now + self.cfg.progress_interval;
        }
        for h in handles {
            let Some((call, media)) = self.dialogs.entry(h) else {
                continue;
            };
            if progress && self.cfg.shard.owns(h) && call.ended.is_none() {
                self.events.push_back(Event::CallProgress {
                    call: h,
                    ts: now,
                    on_hold: call
                        .media
                        .iter()
                        .any(|m| m.direction != Direction::SendRecv),
                    streams: media
                        .streams
                        .iter()
                        .map(|s| stream_report(s, h, &s.status()))
                        .collect(),
                });
            }
            let answered = call.answered.is_some();
            for stream in media.streams.iter_mut().filter(|s| s.holds_packets()) {
                let sender = stream.sender;
                let payloads = |pt: u8| call.codec_for(sender, pt);
                let mut ctx = StreamCtx {
                    payloads: &payloads,
                    media_version: call.media_version,
                    telephone_event: call.telephone_event_pt(),
                    recording: media.recording.as_mut().filter(|_| answered),
                    inband: self.cfg.inband_dtmf && answered,
                    prime: !answered || media.settings.bridge.is_some(),
                    rate_hint: recording_rate(&self.cfg, &media.settings, call),
                    events: &mut self.events,
                    digits: &mut self.digits,
                    reorder_window: self.cfg.reorder_window,
                    shadow: !self.cfg.shard.owns(h),
                };
                stream.expire(now, &mut ctx);
            }
            if let Some((due, _)) = &media.tentative {
                if now < *due {
                    continue;
                }
                // Reported before any of its audio.
                if let Some((_, r)) = media.tentative.take() {
                    self.events.push_back(Event::RecordingStarted(r));
                }
            }
            let Some(rec) = media.recording.as_mut() else {
                continue;
            };
            // Audio runs up to the call's last sign of life, so a call that ends by timeout or
            // at the end of input has no trailing silence past its end time.
            rec.drain(
                now,
                call.last_activity,
                self.cfg.audio_chunk_frames as u64,
                &mut self.events,
            );
            if rec.at_limit() {
                stop.push((h, now, rec.limit_reason()));
            }
        }
        // Digits released by the timers: reported, but the call they belong to is unknown
        // here only by side; streams keep their sender, so report per stream is not needed.
        self.digits.clear();
        for (h, at, reason) in stop {
            self.stop_recording(h, at, reason);
        }
        self.stats.evictions = self.dialogs.evicted();
        self.next_sweep = Some(now + self.cfg.sweep_interval);
    }

    /// End of input: every call ends, every recording is flushed, held RTP is counted.
    pub fn finish(&mut self) {
        let mut out = std::mem::take(&mut self.dialog_events);
        out.clear();
        self.dialogs.finish(&mut out);
        self.apply(&out);
        self.dialog_events = out;
        let held = self.held_rtp.clear();
        self.stats.rtp_packets += held as u64;
        self.stats.rtp_unmatched += held as u64;
        if let Some(ev) = self.evidence.as_mut() {
            ev.clear_held();
            ev.sync(&mut self.stats);
        }
        self.next_sweep = None;
    }
}

/// Where a packet on a known flow goes.
/// The event for a link [`Conversations`] made: `call` joined a conversation (the one kept,
/// with the one merged into it, if any).
fn linked(
    call: CallHandle,
    ts: Timestamp,
    (link, keep, merged): (Link, ConversationId, Option<ConversationId>),
) -> Event {
    Event::Conversation(ConversationLink {
        call,
        ts,
        conversation: keep.0,
        linked_to: Some(link.to),
        evidence: link.evidence.as_str(),
        detail: link.detail,
        merged: merged.map(|m| m.0),
        people: None,
    })
}

/// How [`Engine::on_rtp`] finds the flow's call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// Only a call still up: a flow routed in this media epoch, not routed again.
    Live,
    /// Any call: the flow was just routed to it.
    Any,
}

/// Keeps where a flow's stream is, when the flow is still the call's.
fn remember_stream(
    flows: &mut FlowTable,
    src: SocketAddr,
    dst: SocketAddr,
    call: CallHandle,
    idx: usize,
) {
    if let Some(f) = flows.get_mut(&FlowTuple(src, dst))
        && f.call == call
    {
        f.stream = u32::try_from(idx).unwrap_or(NO_STREAM);
    }
}

enum Route {
    To(Flow),
    /// Its call ended and no other claims it yet: hold it for an SDP that may.
    Hold,
    /// A late packet of an ended call's own stream.
    AfterEnd,
}

/// The message type of a ZRTP packet (RFC 6189 §5: version 0 header, magic cookie `ZRTP`),
/// if `payload` is one.
fn zrtp_message(payload: &[u8]) -> Option<[u8; 8]> {
    let header = payload.get(..24)?;
    if header[0] & 0xf0 != 0x10 || &header[4..8] != b"ZRTP" || header[12..14] != [0x50, 0x5a] {
        return None;
    }
    header[16..24].try_into().ok()
}

fn zrtp_reason() -> String {
    "SRTP keyed by ZRTP in the media path: a passive observer cannot decrypt it".into()
}

/// How a sender's stream is protected, from the call's SDP.
enum Keys {
    Plain,
    /// SDES keys, newest first, and the tag the answer chose.
    Sdes(Vec<String>, Option<u32>),
    Unreadable(String),
}

fn stream_keys(call: &Call, sender: Side) -> Keys {
    let peer = &call.media(sender.other()).security;
    match &call.media(sender).security {
        MediaSecurity::Plain => Keys::Plain,
        // An offer of SRTP that the answer turned down for plain RTP is plain RTP.
        MediaSecurity::Sdes(_) | MediaSecurity::NoKeys
            if *peer == MediaSecurity::Plain && !call.media(sender.other()).payloads.is_empty() =>
        {
            Keys::Plain
        }
        MediaSecurity::Sdes(lines) => {
            let tag = match peer {
                MediaSecurity::Sdes(theirs) => theirs
                    .first()
                    .and_then(|l| l.split_ascii_whitespace().next())
                    .and_then(|t| t.trim_start_matches("a=crypto:").parse().ok()),
                _ => None,
            };
            Keys::Sdes(lines.clone(), tag)
        }
        MediaSecurity::Opaque(kx) => Keys::Unreadable(format!(
            "SRTP keyed by {}: a passive observer cannot decrypt it",
            kx.as_str()
        )),
        MediaSecurity::NoKeys => Keys::Unreadable("SRTP profile without keys in the SDP".into()),
    }
}

fn stream_report(s: &Stream, call: CallHandle, status: &StreamStatus) -> StreamReport {
    let (pt, spec) = s.audio.clone().unwrap_or((0, CodecSpec::default()));
    let codec = if spec.name.is_empty() && s.audio.is_some() {
        format!("PT{pt}")
    } else {
        spec.name.clone()
    };
    StreamReport {
        stream: s.handle,
        call,
        side: s.sender,
        src: s.src,
        dst: s.dst,
        ssrc: s.ssrc,
        payload_type: pt,
        codec,
        clock_rate: spec.clock_rate,
        first_ts: s.first_ts,
        last_ts: s.last_ts,
        packets: s.stats.received(),
        lost: s.stats.lost(),
        expected: s.stats.expected(),
        max_jitter_ms: s.stats.max_jitter_ms(),
        mean_jitter_ms: s.stats.mean_jitter_ms(),
        late: s.counts.late,
        duplicates: s.counts.duplicates,
        telephone_events: s.counts.telephone_events,
        comfort_noise: s.counts.comfort_noise,
        status: status.as_str(),
        status_reason: status.reason().map(str::to_string),
        fmtp: spec.fmtp,
        audio_rate: s.audio_rate(),
        decoded_packets: s.counts.decoded_packets,
        decoded_samples: s.counts.decoded_samples,
        concealed_samples: s.counts.concealed_samples,
        recovered_samples: s.counts.recovered_samples,
        undecodable_packets: s.counts.undecodable_packets,
        decrypt_failures: s.counts.decrypt_failures,
        security: s.security(),
    }
}

/// A recording's sample rate: the policy's, else the config's, else by the call's codec
/// (16 kHz for wide-band codecs).
fn recording_rate(cfg: &EngineConfig, s: &CallRecording, call: &Call) -> u32 {
    s.sample_rate.or(cfg.sample_rate).unwrap_or_else(|| {
        if call.primary_codec().is_some_and(|c| codec::is_wideband(&c)) {
            16_000
        } else {
            8000
        }
    })
}

/// The limits a decision's settings put on the call's recordings.
fn call_settings(answered_at: Timestamp, s: &Settings) -> CallRecording {
    CallRecording {
        min_secs: s.record_min_sec,
        sample_rate: s.sample_rate,
        format: s.format,
        deadline: s
            .time_limit
            .map(|secs| answered_at + Duration::from_secs(secs.into())),
        bridge: None,
    }
}

/// What the policy sees of a call: its own signalling, what is known of the addresses its
/// parties are signalled at, and the other legs of its conversation.
fn call_facts<'a>(
    c: &'a Call,
    answered_at: Timestamp,
    servers: &Servers,
    conversation: &'a [CallFacts<'a>],
    link: Option<&crate::conversation::Evidence>,
) -> CallFacts<'a> {
    let transferred = link.is_some_and(crate::conversation::Evidence::is_transfer);
    let addrs = [c.caller_signalling.ip(), c.callee_signalling.ip()];
    let parties = [0, 1].map(|i| PartyEvidence {
        server: servers.judge(addrs[i]),
        identity: c.evidence.identity[i].as_deref(),
        media: c.media[i].endpoints.first().map(|e| e.ip()),
    });
    CallFacts {
        call: c.handle,
        sip_call_id: &c.sip_call_id,
        caller: &c.caller,
        callee: &c.callee,
        transport: c.transport,
        answered_at,
        request_user: &c.request_user,
        caller_addr: addrs[0],
        callee_addr: addrs[1],
        caller_contact: c.caller_contact.as_deref(),
        callee_contact: c.callee_contact.as_deref(),
        mode_header: c.mode.as_deref(),
        parties,
        diverted_from: c.evidence.diverted_from.as_deref(),
        conversation,
        transferred,
        picked_up: false,
    }
}

/// The facts of a conversation's other legs, for the policy to judge this one by.
fn other_facts<'a, X: Default>(
    dialogs: &'a Dialogs<X>,
    servers: &Servers,
    legs: &[CallHandle],
) -> Vec<CallFacts<'a>> {
    legs.iter()
        .filter_map(|&l| dialogs.get(l))
        .map(|o| call_facts(o, o.answered.unwrap_or(o.started), servers, &[], None))
        .collect()
}
