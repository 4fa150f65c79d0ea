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
//! give the same output.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::codec::{self, Decoder};
use crate::dialog::{Call, CallState, DialogConfig, DialogEvent, Dialogs, PolicyHeaders, Rejected};
use crate::dtmf::{Detected, DtmfDetector};
use crate::event::{
    CallDecision, CallHandle, CallStarted, DtmfEvent, DtmfSource, Event, RecordingControl,
    RecordingFormat, RecordingHandle, RecordingStarted, Side, SipTransport, StopReason,
    StreamHandle, StreamReport,
};
use crate::media::{Placement, Timeline};
use crate::policy::{
    Action, CallFacts, Command, InfoRecordHeader, RecordAnswered, RecordOn, RecordingPolicy,
    Settings, Trigger,
};
use crate::reasm::{DefragConfig, Defragmenter, FlowKey, TcpConfig, TcpReassembler};
use crate::rtp::{self, StreamStats, TelephoneEvent};
use crate::sip::{self, Frame, Message};
use crate::stats::{Malformed, Stats};
use crate::time::Timestamp;
use crate::wire::{self, Decoded, LinkType, Transport};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub dialog: DialogConfig,
    pub defrag: DefragConfig,
    pub tcp: TcpConfig,
    /// TCP ports whose flows are always reassembled as SIP; other TCP flows are followed once a
    /// segment starts like a SIP message.
    pub sip_tcp_ports: Vec<u16>,
    /// How long audio waits for late and reordered packets before it is written.
    pub reorder_window: Duration,
    /// RTP that matches no call yet is held this long for an SDP that may claim it.
    pub pending_rtp_max_age: Duration,
    /// Upper bound on RTP packets held for a later SDP.
    pub pending_rtp_max_packets: usize,
    /// How often timers are checked, in packet time.
    pub sweep_interval: Duration,
    /// Audio is handed out in chunks of at least this many frames.
    pub audio_chunk_frames: usize,
    /// Recording sample rate (G.711 is 8 kHz).
    pub sample_rate: u32,
    /// The header that sets a call's recording mode (`auto`, `force`, `deny`, `manual`).
    pub mode_header: String,
    /// The SIP INFO record key: header name, on value, off value.
    pub info_record: InfoRecordHeader,
    /// Listen for DTMF in the audio of answered calls ([`crate::dtmf`]); off costs nothing.
    pub inband_dtmf: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            dialog: DialogConfig::default(),
            defrag: DefragConfig::default(),
            tcp: TcpConfig::default(),
            sip_tcp_ports: vec![5060, 5061, 5080],
            reorder_window: Duration::from_millis(300),
            pending_rtp_max_age: Duration::from_secs(2),
            pending_rtp_max_packets: 8192,
            sweep_interval: Duration::from_millis(100),
            audio_chunk_frames: 4000,
            sample_rate: 8000,
            mode_header: PolicyHeaders::default().mode,
            info_record: InfoRecordHeader::default(),
            inband_dtmf: false,
        }
    }
}

type FlowTuple = (SocketAddr, SocketAddr);

/// A UDP flow tied to a call.
#[derive(Clone, Copy)]
struct Flow {
    call: CallHandle,
    sender: Side,
}

struct Stream {
    handle: StreamHandle,
    sender: Side,
    src: SocketAddr,
    dst: SocketAddr,
    ssrc: u32,
    stats: StreamStats,
    audio_pt: Option<u8>,
    codec: String,
    clock_rate: u32,
    decoder: Option<(u8, Box<dyn Decoder>)>,
    first_ts: Timestamp,
    last_ts: Timestamp,
    late: u64,
    telephone_events: u64,
    comfort_noise: u64,
    /// RTP timestamp of the last telephone event reported, so its repeats are not.
    last_event_ts: Option<u32>,
    /// In-band DTMF: the payload type, its own decoder (the recording's may hold state)
    /// and the detector. Only with [`EngineConfig::inband_dtmf`].
    inband: Option<(u8, Box<dyn Decoder>, DtmfDetector)>,
}

impl Stream {
    /// Runs one audio payload through the in-band detector: a digit released in it, if any.
    fn detect_inband(
        &mut self,
        pt: u8,
        codec_info: Option<&(String, u32)>,
        payload: &[u8],
        pcm: &mut Vec<i16>,
    ) -> Option<Detected> {
        if self.inband.as_ref().is_none_or(|(p, _, _)| *p != pt) {
            self.inband = codec_info
                .and_then(|(name, rate)| codec::decoder_for(&codec::CodecSpec::new(name, *rate), *rate).ok())
                .filter(|d| d.sample_rate() == 8000)
                .map(|d| (pt, d, DtmfDetector::new()));
        }
        let (_, decoder, detector) = self.inband.as_mut()?;
        pcm.clear();
        let _ = decoder.decode(payload, pcm);
        let mut found = None;
        detector.feed(pcm, |d| found = Some(d));
        found
    }
}

struct Recording {
    handle: RecordingHandle,
    start: Timestamp,
    timeline: Timeline,
    /// While paused, audio is not placed: the file carries silence.
    paused: bool,
    /// The call's time limit: the recording stops here ([`StopReason::TimeLimit`]).
    deadline: Option<Timestamp>,
}

/// What the decision at answer time asked of every recording of the call.
#[derive(Clone, Debug, Default)]
struct CallRecording {
    min_secs: Option<u32>,
    /// The recording's sample rate, when the policy chose one (else the engine's).
    sample_rate: Option<u32>,
    deadline: Option<Timestamp>,
    /// `record_on = bridge`: the recording waits for RTP in both directions; the reason to
    /// start it with and which directions have been seen.
    bridge: Option<(String, [bool; 2])>,
}

struct PendingPacket {
    ts: Timestamp,
    data: Vec<u8>,
}

/// The engine. See the module documentation.
pub struct Engine {
    cfg: EngineConfig,
    stats: Stats,
    events: VecDeque<Event>,
    dialogs: Dialogs,
    policy: Box<dyn RecordingPolicy>,
    defrag: Defragmenter,
    tcp: TcpReassembler,
    flows: HashMap<FlowTuple, Flow>,
    /// Flows of each call, to forget them with it.
    call_flows: HashMap<CallHandle, Vec<FlowTuple>>,
    /// Where matched flows send to, and who sends there: the answering direction's source.
    peers: HashMap<SocketAddr, (CallHandle, Side)>,
    streams: HashMap<(SocketAddr, SocketAddr, u32), Stream>,
    /// Streams of each call, for the report at its end.
    call_streams: HashMap<CallHandle, Vec<(SocketAddr, SocketAddr, u32)>>,
    recordings: HashMap<CallHandle, Recording>,
    /// Calls whose decision applied settings (limits, bridge); absent for the defaults.
    call_recording: HashMap<CallHandle, CallRecording>,
    pending: HashMap<FlowTuple, VecDeque<PendingPacket>>,
    pending_packets: usize,
    next_stream: u64,
    next_recording: u64,
    now: Timestamp,
    next_sweep: Option<Timestamp>,
    dialog_events: Vec<DialogEvent>,
    scratch: Vec<u8>,
    audio: Vec<i16>,
    /// Decoded audio of one packet for the in-band DTMF detector.
    pcm: Vec<i16>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self::with_policy(cfg, Box::new(RecordAnswered))
    }

    pub fn with_policy(cfg: EngineConfig, policy: Box<dyn RecordingPolicy>) -> Self {
        Self {
            dialogs: Dialogs::with_headers(
                cfg.dialog.clone(),
                PolicyHeaders {
                    mode: cfg.mode_header.clone(),
                    info_record: cfg.info_record.clone(),
                },
            ),
            defrag: Defragmenter::new(cfg.defrag),
            tcp: TcpReassembler::new(cfg.tcp),
            cfg,
            stats: Stats::default(),
            events: VecDeque::new(),
            policy,
            flows: HashMap::new(),
            peers: HashMap::new(),
            call_flows: HashMap::new(),
            streams: HashMap::new(),
            call_streams: HashMap::new(),
            recordings: HashMap::new(),
            call_recording: HashMap::new(),
            pending: HashMap::new(),
            pending_packets: 0,
            next_stream: 0,
            next_recording: 0,
            now: Timestamp(0),
            next_sweep: None,
            dialog_events: Vec::new(),
            scratch: Vec::new(),
            audio: Vec::new(),
            pcm: Vec::new(),
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

    /// The latest packet time seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
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
        match wire::decode(link, frame) {
            Ok(Decoded::Packet {
                src,
                dst,
                transport,
            }) => self.on_transport(ts, src, dst, transport),
            Ok(Decoded::Fragment(frag)) => {
                self.stats.ip_fragments += 1;
                match self.defrag.push(ts, &frag) {
                    Ok(Some(whole)) => {
                        self.stats.ip_reassembled += 1;
                        match wire::decode_transport(whole.protocol, &whole.payload) {
                            Ok(t) => self.on_transport(ts, whole.src, whole.dst, t),
                            Err(_) => self.stats.count_malformed(Malformed::Transport),
                        }
                    }
                    Ok(None) => {}
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
        if let Some(flow) = self.flows.get(&(src, dst)).copied()
            && rtp::looks_like_rtp(payload)
        {
            self.on_rtp(ts, src, dst, flow, payload);
            return;
        }
        if sip::looks_like_sip(payload) {
            self.on_sip_bytes(ts, src, dst, SipTransport::Udp, payload);
        } else if rtp::looks_like_rtcp(payload) {
            self.stats.rtcp_packets += 1;
        } else if rtp::looks_like_unknown_rtp(src.port(), dst.port(), payload) {
            match self.match_flow(src, dst) {
                Some(flow) => {
                    self.add_flow(src, dst, flow);
                    self.on_rtp(ts, src, dst, flow, payload);
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
        if self.tcp.push(ts, key, seq, flags, payload).is_err() {
            self.stats.count_malformed(Malformed::Transport);
        }
        while let Some(stream) = self.tcp.stream(&key) {
            if stream.take_resynced() {
                self.stats.count_malformed(Malformed::Transport);
            }
            match sip::frame(stream.data()) {
                Frame::Complete(n) => {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(&stream.data()[..n]);
                    stream.consume(n);
                    let msg = std::mem::take(&mut self.scratch);
                    self.on_sip_bytes(ts, key.src, key.dst, SipTransport::Tcp, &msg);
                    self.scratch = msg;
                }
                Frame::Skip(n) => {
                    stream.consume(n.max(1));
                }
                Frame::Incomplete => break,
            }
        }
        if self.tcp.stream(&key).is_some_and(|s| s.is_finished()) {
            self.tcp.remove(&key);
        }
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
        match self
            .dialogs
            .on_message(ts, src, dst, transport, &msg, &mut out)
        {
            Ok(()) => {}
            Err(Rejected::MissingHeaders) => self.stats.count_malformed(Malformed::Sip),
            Err(Rejected::BadSdp) => self.stats.count_malformed(Malformed::Sdp),
        }
        self.apply(&out);
        self.dialog_events = out;
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
        let facts = call_facts(c, answered_at);
        let decision = self.policy.on_answer(&facts);
        self.events.push_back(Event::Decision(CallDecision {
            call: handle,
            ts: answered_at,
            record: decision.record,
            reason: decision.reason.clone(),
            trace: decision.trace.clone(),
        }));
        let settings = self.call_settings(answered_at, &decision.settings);
        let bridge = decision.settings.record_on == Some(RecordOn::Bridge);
        if decision.record && bridge {
            let mut s = settings.unwrap_or_default();
            s.bridge = Some((decision.reason, [false; 2]));
            self.call_recording.insert(handle, s);
            return;
        }
        if let Some(s) = settings {
            self.call_recording.insert(handle, s);
        }
        if decision.record {
            self.start_recording(handle, answered_at, decision.reason);
        }
    }

    /// The limits a decision's settings put on the call's recordings, if any.
    fn call_settings(&self, answered_at: Timestamp, s: &Settings) -> Option<CallRecording> {
        (s.record_min_sec.is_some() || s.time_limit.is_some() || s.sample_rate.is_some()).then(
            || CallRecording {
                min_secs: s.record_min_sec,
                sample_rate: s.sample_rate,
                deadline: s
                    .time_limit
                    .map(|secs| answered_at + Duration::from_secs(secs.into())),
                bridge: None,
            },
        )
    }

    fn start_recording(&mut self, call: CallHandle, ts: Timestamp, reason: String) {
        let (min_secs, deadline, rate) = match self.call_recording.get_mut(&call) {
            Some(l) => {
                // An on-demand start while a bridge is awaited starts now: no more waiting.
                l.bridge = None;
                (l.min_secs, l.deadline, l.sample_rate)
            }
            None => (None, None, None),
        };
        let rate = rate.unwrap_or(self.cfg.sample_rate);
        // Past the call's time limit nothing more is recorded.
        if deadline.is_some_and(|d| ts >= d) {
            return;
        }
        self.next_recording += 1;
        let rec = RecordingHandle(self.next_recording);
        self.stats.recordings_started += 1;
        self.recordings.insert(
            call,
            Recording {
                handle: rec,
                start: ts,
                timeline: Timeline::new(rate),
                paused: false,
                deadline,
            },
        );
        self.events
            .push_back(Event::RecordingStarted(RecordingStarted {
                rec,
                call,
                ts,
                sample_rate: rate,
                channels: 2,
                format: RecordingFormat::Wav,
                reason,
                min_secs,
            }));
    }

    /// A DTMF digit: reported, then offered to the policy (on-demand recording).
    fn on_dtmf(&mut self, ev: DtmfEvent) {
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
        let facts = call_facts(c, answered_at);
        let Some(cmd) = self.policy.on_trigger(&facts, &trigger) else {
            return;
        };
        let transfer = matches!(
            trigger,
            Trigger::PartyChanged { .. } | Trigger::BecameExternalToExternal
        );
        if transfer && cmd.action == Action::Stop {
            // The catalog says why, in the stop reason and in a row with the policy's words.
            if let Some(rec) = self.recordings.get(&call) {
                self.events
                    .push_back(Event::RecordingControl(RecordingControl {
                        rec: rec.handle,
                        call,
                        ts,
                        action: Action::Stop,
                        reason: cmd.reason,
                        requested_by: None,
                        requested_by_user: None,
                        requested_by_device: None,
                    }));
                return self.stop_recording(call, ts, StopReason::ExternalToExternal);
            }
        }
        self.apply_command(call, ts, cmd);
    }

    /// A request from outside the wire (the local control API of `voxtap run`): start, stop,
    /// pause or resume the recording of the answered call with this SIP Call-ID, at `ts`.
    /// Returns false when no such call is running.
    pub fn control(&mut self, sip_call_id: &str, ts: Timestamp, cmd: Command) -> bool {
        let Some(call) = self.dialogs.answered_by_call_id(sip_call_id) else {
            return false;
        };
        self.apply_command(call, ts.max(self.now), cmd);
        true
    }

    /// Carries out what the policy asked of a running call.
    fn apply_command(&mut self, call: CallHandle, ts: Timestamp, cmd: Command) {
        let paused = self.recordings.get(&call).map(|r| r.paused);
        let (action, pause) = match (cmd.action, paused) {
            (Action::Start, None) => {
                self.start_recording(call, ts, cmd.reason.clone());
                // A party asked: the catalog keeps who, on the new recording's timeline.
                return self.note_request(call, ts, cmd);
            }
            (Action::Stop, Some(_)) => {
                self.note_request(call, ts, cmd);
                return self.stop_recording(call, ts, StopReason::Policy);
            }
            (Action::Stop, None) => {
                // A recording still waiting for the bridge is called off.
                if let Some(l) = self.call_recording.get_mut(&call) {
                    l.bridge = None;
                }
                return;
            }
            (Action::Pause, Some(false)) => (Action::Pause, true),
            (Action::Resume | Action::Start, Some(true)) => (Action::Resume, false),
            // Nothing to do: already in the state asked for.
            _ => return,
        };
        let rec = self.recordings.get_mut(&call).expect("checked above");
        rec.paused = pause;
        self.events
            .push_back(Event::RecordingControl(RecordingControl {
                rec: rec.handle,
                call,
                ts,
                action,
                reason: cmd.reason,
                requested_by: cmd.requested_by,
                requested_by_user: cmd.requested_by_user,
                requested_by_device: cmd.requested_by_device,
            }));
    }

    /// Reports an on-demand start or stop with the party that asked, on the open recording.
    fn note_request(&mut self, call: CallHandle, ts: Timestamp, cmd: Command) {
        let (Some(rec), Some(_)) = (self.recordings.get(&call), cmd.requested_by) else {
            return;
        };
        self.events
            .push_back(Event::RecordingControl(RecordingControl {
                rec: rec.handle,
                call,
                ts,
                action: cmd.action,
                reason: cmd.reason,
                requested_by: cmd.requested_by,
                requested_by_user: cmd.requested_by_user,
                requested_by_device: cmd.requested_by_device,
            }));
    }

    /// When a call's media stopped: its end if it has one, else now.
    fn call_end(&self, call: CallHandle) -> Timestamp {
        self.dialogs
            .get(call)
            .and_then(|c| c.ended.map(|(t, _)| t))
            .unwrap_or(self.now)
    }

    fn stop_recording(&mut self, call: CallHandle, end: Timestamp, reason: StopReason) {
        let Some(mut rec) = self.recordings.remove(&call) else {
            return;
        };
        let (end, reason) = match rec.deadline {
            Some(d) if end >= d => (d, StopReason::TimeLimit),
            _ => (end, reason),
        };
        let end = end.max(rec.start);
        let frames = frame_at(rec.start, end, rec.timeline.sample_rate());
        self.audio.clear();
        rec.timeline.drain_until(frames, &mut self.audio);
        if !self.audio.is_empty() {
            self.events.push_back(Event::RecordingAudio {
                rec: rec.handle,
                samples: std::mem::take(&mut self.audio),
            });
        }
        self.events.push_back(Event::RecordingStopped {
            rec: rec.handle,
            call,
            ts: end,
            frames: rec.timeline.emitted(),
            reason,
        });
    }

    /// Reports a call's streams and its end, then forgets it.
    fn reap(&mut self, handle: CallHandle) {
        self.stop_recording(handle, self.call_end(handle), StopReason::CallEnded);
        let Some(call) = self.dialogs.remove(handle) else {
            return;
        };
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
        let mut keys = self.call_streams.remove(&handle).unwrap_or_default();
        keys.sort_by_key(|k| self.streams.get(k).map(|s| s.handle));
        for key in keys {
            let Some(s) = self.streams.remove(&key) else {
                continue;
            };
            self.events.push_back(Event::StreamEnded(StreamReport {
                stream: s.handle,
                call: handle,
                side: s.sender,
                src: s.src,
                dst: s.dst,
                ssrc: s.ssrc,
                payload_type: s.audio_pt.unwrap_or(0),
                codec: s.codec,
                clock_rate: s.clock_rate,
                first_ts: s.first_ts,
                last_ts: s.last_ts,
                packets: s.stats.received(),
                lost: s.stats.lost(),
                expected: s.stats.expected(),
                max_jitter_ms: s.stats.max_jitter_ms(),
                mean_jitter_ms: s.stats.mean_jitter_ms(),
                late: s.late,
                telephone_events: s.telephone_events,
                comfort_noise: s.comfort_noise,
            }));
        }
        for (src, dst) in self.call_flows.remove(&handle).unwrap_or_default() {
            self.flows.remove(&(src, dst));
            if self.peers.get(&dst).is_some_and(|(c, _)| *c == handle) {
                self.peers.remove(&dst);
            }
        }
        let (ts, reason) = call
            .ended
            .unwrap_or((call.last_activity, crate::event::EndReason::EndOfInput));
        self.call_recording.remove(&handle);
        self.policy.on_call_ended(handle);
        self.events.push_back(Event::CallEnded {
            call: handle,
            ts,
            reason,
            final_status: call.final_status,
        });
    }

    fn on_rtp(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        flow: Flow,
        payload: &[u8],
    ) {
        let pkt = match rtp::Packet::new_checked(payload) {
            Ok(p) => p,
            Err(_) => {
                self.stats.count_malformed(Malformed::Rtp);
                return;
            }
        };
        self.stats.rtp_packets += 1;
        self.stats.rtp_matched += 1;
        let Some(call) = self.dialogs.get(flow.call) else {
            return;
        };
        if call.state == CallState::Ended {
            return;
        }
        let pt = pkt.payload_type();
        let tev_pt = call.telephone_event_pt();
        let codec_info = call.codec_for(flow.sender, pt);
        let answered = call.answered.is_some();
        self.dialogs.touch(flow.call, ts);
        if answered
            && Some(pt) != tev_pt
            && pt != rtp::PT_CN
            && pt != rtp::PT_CN_OLD
            && let Some(limits) = self.call_recording.get_mut(&flow.call)
            && let Some((reason, seen)) = limits.bridge.as_mut()
        {
            seen[crate::dialog::side_index(flow.sender)] = true;
            if *seen == [true, true] {
                let reason = std::mem::take(reason);
                self.start_recording(flow.call, ts, reason);
            }
        }

        let key = (src, dst, pkt.ssrc());
        let stream = match self.streams.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                self.next_stream += 1;
                self.stats.rtp_streams += 1;
                self.call_streams.entry(flow.call).or_default().push(key);
                e.insert(Stream {
                    handle: StreamHandle(self.next_stream),
                    sender: flow.sender,
                    src,
                    dst,
                    ssrc: pkt.ssrc(),
                    stats: StreamStats::default(),
                    audio_pt: None,
                    codec: String::new(),
                    clock_rate: 0,
                    decoder: None,
                    first_ts: ts,
                    last_ts: ts,
                    late: 0,
                    telephone_events: 0,
                    comfort_noise: 0,
                    last_event_ts: None,
                    inband: None,
                })
            }
        };
        stream.last_ts = ts;
        let is_event = Some(pt) == tev_pt;
        let is_cn = pt == rtp::PT_CN || pt == rtp::PT_CN_OLD;
        // Telephone-event timestamps do not advance with time (RFC 4733 §2.2.1).
        let clock = if is_event {
            0
        } else {
            codec_info.as_ref().map_or(0, |c| c.1)
        };
        stream.stats.on_packet(
            ts.as_nanos(),
            pkt.sequence_number(),
            pkt.timestamp(),
            pt,
            pkt.marker(),
            clock,
        );

        if is_event {
            stream.telephone_events += 1;
            let mut dtmf = None;
            if let Some(ev) = TelephoneEvent::parse(pkt.payload())
                && ev.end
                && stream.last_event_ts != Some(pkt.timestamp())
            {
                stream.last_event_ts = Some(pkt.timestamp());
                dtmf = ev.digit().map(|digit| DtmfEvent {
                    call: flow.call,
                    ts,
                    digit,
                    duration_ms: (ev.duration as u64 * 1000 / 8000) as u32,
                    source: DtmfSource::Rfc4733,
                    side: flow.sender,
                });
            }
            if let Some(d) = dtmf {
                self.on_dtmf(d);
            }
            return;
        }
        if is_cn {
            stream.comfort_noise += 1;
            return;
        }
        if stream.audio_pt.is_none() {
            stream.audio_pt = Some(pt);
            if let Some((name, rate)) = &codec_info {
                stream.codec = name.clone();
                stream.clock_rate = *rate;
            } else {
                stream.codec = format!("PT{pt}");
            }
        }
        let stream = if self.cfg.inband_dtmf && answered {
            let found = stream.detect_inband(pt, codec_info.as_ref(), pkt.payload(), &mut self.pcm);
            // A stream that signals digits as RFC 4733 events may leave their tones in the
            // audio too: hearing them again would double every digit and break the codes.
            if let Some(d) = found.filter(|_| stream.telephone_events == 0) {
                self.on_dtmf(DtmfEvent {
                    call: flow.call,
                    ts,
                    digit: d.digit,
                    duration_ms: d.duration_ms,
                    source: DtmfSource::InBand,
                    side: flow.sender,
                });
            }
            // on_dtmf borrowed the whole engine: take the stream again.
            let Some(stream) = self.streams.get_mut(&key) else {
                return;
            };
            stream
        } else {
            stream
        };
        let Some(rec) = self.recordings.get_mut(&flow.call).filter(|r| !r.paused) else {
            return;
        };
        if stream.decoder.as_ref().is_none_or(|(p, _)| *p != pt) {
            stream.decoder = codec_info
                .as_ref()
                .and_then(|(name, rate)| codec::decoder_for(&codec::CodecSpec::new(name, *rate), *rate).ok())
                .map(|d| (pt, d));
        }
        let Some((_, decoder)) = stream.decoder.as_mut() else {
            return;
        };
        let arrival = frame_at(rec.start, ts, rec.timeline.sample_rate());
        if arrival < 0 {
            // Early media before the answer is not part of the recording.
            return;
        }
        let source = stream.handle.0;
        if rec.timeline.place(
            flow.sender,
            source,
            pkt.timestamp(),
            arrival,
            decoder.as_mut(),
            pkt.payload(),
        ) == Placement::Late
        {
            stream.late += 1;
        }
    }

    /// Ties a new flow to a call. A source that an earlier flow of the call sends to is that
    /// flow's peer answering back (symmetric RTP, RFC 4961), which holds where SDP addresses
    /// lie: behind NAT, or through a media relay whose address no SDP names. Otherwise the SDP
    /// endpoints decide.
    fn match_flow(&self, src: SocketAddr, dst: SocketAddr) -> Option<Flow> {
        if let Some(&(call, sender)) = self.peers.get(&src)
            && self
                .dialogs
                .get(call)
                .is_some_and(|c| c.state != CallState::Ended)
        {
            return Some(Flow {
                call,
                sender: sender.other(),
            });
        }
        self.dialogs
            .lookup_media(src, dst)
            .map(|(call, sender)| Flow { call, sender })
    }

    fn add_flow(&mut self, src: SocketAddr, dst: SocketAddr, flow: Flow) {
        self.flows.insert((src, dst), flow);
        self.call_flows
            .entry(flow.call)
            .or_default()
            .push((src, dst));
        self.peers.entry(dst).or_insert((flow.call, flow.sender));
    }

    /// Keeps RTP that matches no call yet, for an SDP that may still arrive.
    fn hold_pending(&mut self, ts: Timestamp, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        if self.pending_packets >= self.cfg.pending_rtp_max_packets {
            self.stats.rtp_packets += 1;
            self.stats.rtp_unmatched += 1;
            return;
        }
        self.pending_packets += 1;
        self.pending
            .entry((src, dst))
            .or_default()
            .push_back(PendingPacket {
                ts,
                data: payload.to_vec(),
            });
    }

    /// Replays held RTP that the call's new endpoints now claim.
    fn claim_pending(&mut self, call: CallHandle) {
        if self.pending.is_empty() {
            return;
        }
        let mut claimed: Vec<(FlowTuple, Flow)> = Vec::new();
        for &(src, dst) in self.pending.keys() {
            if let Some(flow) = self.match_flow(src, dst)
                && flow.call == call
            {
                claimed.push(((src, dst), flow));
            }
        }
        claimed.sort_by_key(|(t, _)| *t);
        for (tuple, flow) in claimed {
            let Some(packets) = self.pending.remove(&tuple) else {
                continue;
            };
            self.pending_packets -= packets.len();
            self.add_flow(tuple.0, tuple.1, flow);
            for p in packets {
                self.on_rtp(p.ts, tuple.0, tuple.1, flow, &p.data);
            }
        }
    }

    /// Fires every deadline up to `ts`: dialog timeouts, reassembly expiry, held RTP and audio
    /// that has waited out the reorder window.
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

        let max_age = self.cfg.pending_rtp_max_age;
        let mut dropped = 0usize;
        self.pending.retain(|_, q| {
            while q
                .front()
                .is_some_and(|p| now.saturating_since(p.ts) > max_age)
            {
                q.pop_front();
                dropped += 1;
            }
            !q.is_empty()
        });
        self.pending_packets -= dropped;
        self.stats.rtp_packets += dropped as u64;
        self.stats.rtp_unmatched += dropped as u64;

        let mut expired: Vec<(CallHandle, Timestamp)> = self
            .recordings
            .iter()
            .filter_map(|(h, r)| r.deadline.filter(|d| now >= *d).map(|d| (*h, d)))
            .collect();
        expired.sort();
        for (h, d) in expired {
            self.stop_recording(h, d, StopReason::TimeLimit);
        }

        let window = self.cfg.reorder_window;
        let chunk = self.cfg.audio_chunk_frames as i64;
        let mut handles: Vec<CallHandle> = self.recordings.keys().copied().collect();
        handles.sort();
        for h in handles {
            // Audio runs up to the call's last sign of life, so a call that ends by timeout or
            // at the end of input has no trailing silence past its end time.
            let last_activity = self.dialogs.get(h).map_or(now, |c| c.last_activity);
            let rec = self.recordings.get_mut(&h).expect("listed");
            let until = frame_at(
                rec.start,
                (now - window).min(last_activity),
                rec.timeline.sample_rate(),
            );
            if until - rec.timeline.emitted() as i64 >= chunk {
                self.audio.clear();
                rec.timeline.drain_until(until, &mut self.audio);
                self.events.push_back(Event::RecordingAudio {
                    rec: rec.handle,
                    samples: std::mem::take(&mut self.audio),
                });
            }
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
        let held: usize = self.pending.values().map(VecDeque::len).sum();
        self.pending.clear();
        self.pending_packets = 0;
        self.stats.rtp_packets += held as u64;
        self.stats.rtp_unmatched += held as u64;
        self.next_sweep = None;
    }
}

/// What the policy sees of a call.
fn call_facts(c: &Call, answered_at: Timestamp) -> CallFacts<'_> {
    CallFacts {
        call: c.handle,
        sip_call_id: &c.sip_call_id,
        caller: &c.caller,
        callee: &c.callee,
        transport: c.transport,
        answered_at,
        request_user: &c.request_user,
        caller_addr: c.caller_signalling.ip(),
        callee_addr: c.callee_signalling.ip(),
        caller_contact: c.caller_contact.as_deref(),
        callee_contact: c.callee_contact.as_deref(),
        mode_header: c.mode.as_deref(),
    }
}

/// Frame offset of `ts` from `start` at `rate` (negative before the start).
fn frame_at(start: Timestamp, ts: Timestamp, rate: u32) -> i64 {
    let ns = ts.as_nanos() as i128 - start.as_nanos() as i128;
    (ns * rate as i128 / 1_000_000_000) as i64
}
