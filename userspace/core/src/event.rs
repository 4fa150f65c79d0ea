//! What the engine tells the outside world. A sink (WAV files, SQLite, a TUI) consumes these;
//! the engine never learns what the sink did with them.

use std::net::SocketAddr;

use crate::evidence::EvidenceChunk;
use crate::time::Timestamp;
use crate::vocab::{
    Action, CallHandle, DtmfSource, Party, RecordingFormat, RecordingHandle, Side, SipTransport,
    StreamHandle,
};

#[derive(Clone, Debug, PartialEq)]
pub struct CallStarted {
    pub call: CallHandle,
    pub ts: Timestamp,
    pub sip_call_id: String,
    pub from_tag: String,
    pub caller: Party,
    pub callee: Party,
    /// Where the INVITE came from and went to, as seen on the wire.
    pub caller_signalling: SocketAddr,
    pub callee_signalling: SocketAddr,
    pub transport: SipTransport,
    /// Its INVITE was never seen: followed from its 2xx answer, so its ringing and its
    /// offer are missing, and its parties are as the answer names them.
    pub picked_up: bool,
}

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// A BYE ended an answered call.
    Bye,
    /// The caller cancelled before a final response (CANCEL, usually with 487).
    Cancelled,
    /// A non-2xx final response to the INVITE.
    Rejected,
    /// An answered call saw neither SIP nor RTP for the media timeout.
    MediaTimeout,
    /// An unanswered call saw no final response for the setup timeout.
    SetupTimeout,
    /// The input ended with the call still open.
    EndOfInput,
    /// The engine evicted the call to stay within its bounds.
    Evicted,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Bye => "bye",
            EndReason::Cancelled => "cancelled",
            EndReason::Rejected => "rejected",
            EndReason::MediaTimeout => "media-timeout",
            EndReason::SetupTimeout => "setup-timeout",
            EndReason::EndOfInput => "end-of-input",
            EndReason::Evicted => "evicted",
        }
    }
}

/// Final figures of one RTP stream; the loss and jitter are computed as tshark's
/// `-z rtp,streams` does (RFC 3550 §6.4.1 and §A.8).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamReport {
    pub stream: StreamHandle,
    pub call: CallHandle,
    /// The party that sent this stream.
    pub side: Side,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub ssrc: u32,
    /// The first audio payload type seen (not telephone-event or comfort noise).
    pub payload_type: u8,
    /// Encoding name from the SDP rtpmap or the static table, e.g. `PCMU`.
    pub codec: String,
    pub clock_rate: u32,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    pub packets: u64,
    /// Expected minus received, as tshark counts it (negative with duplicates).
    pub lost: i64,
    pub expected: u64,
    pub max_jitter_ms: f64,
    pub mean_jitter_ms: f64,
    /// Packets that arrived after their place had been given up as lost (past the reorder
    /// window), and duplicates; neither is in the recording.
    pub late: u64,
    pub duplicates: u64,
    /// RFC 4733 telephone-event packets in this stream.
    pub telephone_events: u64,
    /// Comfort-noise (PT 13) packets in this stream.
    pub comfort_noise: u64,
    /// `decoded`, `partial`, `undecodable`, `encrypted` or `no-audio`.
    pub status: &'static str,
    /// Why the audio is not (all) there, for the three states that say so.
    pub status_reason: Option<String>,
    /// The codec's fmtp parameters, if the SDP had any.
    pub fmtp: String,
    /// The sample rate the codec decoded to (0 when nothing was decoded).
    pub audio_rate: u32,
    /// Audio payloads decoded, and the samples they gave at `audio_rate`.
    pub decoded_packets: u64,
    pub decoded_samples: u64,
    /// Samples made up for lost packets by the codec's concealment, and of those, rebuilt by
    /// in-band FEC.
    pub concealed_samples: u64,
    pub recovered_samples: u64,
    /// Audio payloads that could not be decoded, and packets that failed SRTP.
    pub undecodable_packets: u64,
    pub decrypt_failures: u64,
    /// How the stream was protected: `rtp`, `srtp` (with the suite) or why it could not be read.
    pub security: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DtmfEvent {
    pub call: CallHandle,
    pub ts: Timestamp,
    /// One of `0-9 * # A-D`, or `F` for flash.
    pub digit: char,
    pub duration_ms: u32,
    pub source: DtmfSource,
    /// The party that sent the digit.
    pub side: Side,
    /// Where in the open recording's file the digit falls, in seconds (set by the engine).
    pub offset_s: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordingStarted {
    pub rec: RecordingHandle,
    pub call: CallHandle,
    pub ts: Timestamp,
    pub sample_rate: u32,
    /// Always 2: the caller left, the callee right.
    pub channels: u16,
    pub format: RecordingFormat,
    /// The codec the call settled on when the recording started (empty when none yet).
    pub codec: String,
    /// The policy's reason for recording, for the catalog.
    pub reason: String,
    /// A finished recording shorter than this is deleted (`record_min_sec`).
    pub min_secs: Option<u32>,
    /// With `record_each_leg`: the recording of another leg of the same conversation that
    /// this one repeats (the same people, relayed).
    pub repeats: Option<RecordingHandle>,
}

/// Why a recording stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    CallEnded,
    Policy,
    /// The decision's `time_limit` was reached.
    TimeLimit,
    /// A transfer left two external parties talking and the tenant does not record them.
    ExternalToExternal,
    /// The recording reached the maximum length (`recording.max_length`) and was cut.
    MaxLength,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::CallEnded => "call-ended",
            StopReason::Policy => "policy",
            StopReason::TimeLimit => "time-limit",
            StopReason::ExternalToExternal => "external-to-external",
            StopReason::MaxLength => "max-length",
        }
    }
}

/// What a finished recording holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingState {
    /// Audio was decoded, and no stream of the call was left out.
    Complete,
    /// Audio was decoded, but some stream's audio could not be (see the reason).
    Partial,
    /// No audio at all: no RTP reached it, or it could not be decoded or decrypted.
    NoAudio,
}

impl RecordingState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Complete => "complete",
            RecordingState::Partial => "partial",
            RecordingState::NoAudio => "no-audio",
        }
    }
}

/// One channel of a finished recording: how much audio it got and what the timeline did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelReport {
    /// Frames of decoded (or concealed) audio placed.
    pub heard_frames: u64,
    /// Silence slipped in to keep pace with the other side's faster sender clock.
    pub slips: u64,
    pub slip_frames: u64,
    /// Audio that came after its place was written and went in later instead.
    pub shifts: u64,
    pub shift_frames: u64,
    /// Streams re-anchored on a new source or a timestamp jump.
    pub reanchors: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordingOutcome {
    pub state: RecordingState,
    pub reason: Option<String>,
    /// Left (caller) then right (callee).
    pub channels: [ChannelReport; 2],
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordingControl {
    pub rec: RecordingHandle,
    pub call: CallHandle,
    pub ts: Timestamp,
    /// `Pause` or `Resume`; `Start` (just after the recording started) or `Stop` (just before
    /// it stops) when a party asked for it.
    pub action: Action,
    pub reason: String,
    /// The party whose request it was, if one asked.
    pub requested_by: Option<Side>,
    /// That party's user and device, when the rules know them.
    pub requested_by_user: Option<String>,
    pub requested_by_device: Option<String>,
    /// Where in the file it falls, in seconds (set by the engine).
    pub offset_s: Option<f64>,
}

/// The recording policy's decision for a call, with the steps that led to it.
#[derive(Clone, Debug, PartialEq)]
pub struct CallDecision {
    pub call: CallHandle,
    pub ts: Timestamp,
    pub record: bool,
    pub reason: String,
    /// One line per rule, scope or mode the policy looked at, in order.
    pub trace: Vec<String>,
    /// `inbound`, `outbound`, `internal` or `external-to-external`, when the policy
    /// classified the call.
    pub direction: Option<&'static str>,
    /// Recorded, but on another leg of its conversation: that leg.
    pub covered_by: Option<CallHandle>,
    /// The tenant the rules put the call in, if any.
    pub tenant: Option<String>,
    /// The tenant's users the parties were matched to (caller's first).
    pub users: Vec<String>,
}

/// A leg's place in its conversation: a new conversation, or the one of an earlier leg and
/// the evidence that ties them.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationLink {
    pub call: CallHandle,
    pub ts: Timestamp,
    /// Engine-local conversation id (unique within a run).
    pub conversation: u64,
    /// The earlier leg it is tied to, if any.
    pub linked_to: Option<CallHandle>,
    /// `header:<name>`, `replaces`, `referred-by`, `refer`, `media:ssrc`, `timing`, `pickup`.
    pub evidence: String,
    pub detail: String,
    /// When shared media joined two conversations: the one folded into this.
    pub merged: Option<u64>,
    /// The conversation's people as they see it, when this event sets them: who called (the
    /// first leg's caller) and who answered (the last phone to answer, not a PBX).
    pub people: Option<[String; 2]>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    CallStarted(CallStarted),
    /// A 2xx answered the INVITE.
    CallAnswered {
        call: CallHandle,
        ts: Timestamp,
        to_tag: String,
    },
    /// The call is over and forgotten; `ts` is when it ended (BYE, final response, last
    /// activity on a timeout or at the end of input).
    CallEnded {
        call: CallHandle,
        ts: Timestamp,
        reason: EndReason,
        final_status: Option<u16>,
    },
    StreamEnded(StreamReport),
    /// What the policy decided when the call was answered, and why.
    Decision(CallDecision),
    RecordingStarted(RecordingStarted),
    /// The next stereo frames of a recording, interleaved left (caller), right (callee).
    /// Frames arrive in order and without gaps, with [`Event::RecordingSilence`] between.
    RecordingAudio {
        rec: RecordingHandle,
        samples: Vec<i16>,
    },
    /// The next `frames` frames of a recording are silence on both channels.
    RecordingSilence {
        rec: RecordingHandle,
        frames: u64,
    },
    RecordingStopped {
        rec: RecordingHandle,
        call: CallHandle,
        ts: Timestamp,
        /// Frames in the recording (audio and silence).
        frames: u64,
        reason: StopReason,
        outcome: RecordingOutcome,
    },
    /// The policy paused or resumed a recording: the span between is silence in the file, and
    /// the catalog keeps the timeline.
    RecordingControl(RecordingControl),
    Dtmf(DtmfEvent),
    /// A leg joined a conversation (see [`crate::conversation`]).
    Conversation(ConversationLink),
    /// A side of the call asked (REFER) that the other be put through to `target`.
    Transfer {
        call: CallHandle,
        ts: Timestamp,
        side: Side,
        target: String,
        /// An attended transfer names the consultation dialog it replaces.
        replaces: Option<String>,
        /// The REFER's final response: 2xx accepted; a refused transfer changes nothing.
        status: u16,
    },
    /// An RTP endpoint a call's SDP announced became live (`active`) or was forgotten with its
    /// call. A live capture uses these to keep the kernel's media filter (the XDP endpoint map)
    /// in step with the calls; the catalog ignores them.
    MediaEndpoint {
        call: CallHandle,
        endpoint: SocketAddr,
        active: bool,
    },
    /// A SIP message of a call, as it was on the wire (only with
    /// [`crate::engine::EngineConfig::monitor`]): for a live view's ladder. The catalog
    /// ignores it.
    Sip(SipSeen),
    /// Where a live call stands (only with `monitor`), every progress interval of packet
    /// time: its streams so far, and whether a side has put it on hold (an SDP direction other
    /// than sendrecv). The catalog ignores it.
    CallProgress {
        call: CallHandle,
        ts: Timestamp,
        on_hold: bool,
        streams: Vec<StreamReport>,
    },
    /// The next frames of a call as they were captured (only with
    /// [`crate::engine::EngineConfig::evidence`]): see [`crate::evidence`]. The last chunk of a
    /// call comes just before its [`Event::CallEnded`].
    Evidence(EvidenceChunk),
}

/// A SIP message that belongs to a call ([`Event::Sip`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SipSeen {
    pub call: CallHandle,
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: SipTransport,
    pub message: Box<[u8]>,
}

impl Event {
    /// The call an event is about; `None` for a recording's audio, which only its recording
    /// names.
    pub fn call(&self) -> Option<CallHandle> {
        match self {
            Event::CallStarted(c) => Some(c.call),
            Event::CallAnswered { call, .. }
            | Event::CallEnded { call, .. }
            | Event::RecordingStopped { call, .. }
            | Event::Transfer { call, .. }
            | Event::MediaEndpoint { call, .. }
            | Event::CallProgress { call, .. } => Some(*call),
            Event::Sip(m) => Some(m.call),
            Event::Evidence(c) => Some(c.call),
            Event::StreamEnded(r) => Some(r.call),
            Event::Decision(d) => Some(d.call),
            Event::RecordingStarted(r) => Some(r.call),
            Event::RecordingControl(c) => Some(c.call),
            Event::Dtmf(d) => Some(d.call),
            Event::Conversation(c) => Some(c.call),
            Event::RecordingAudio { .. } | Event::RecordingSilence { .. } => None,
        }
    }
}
