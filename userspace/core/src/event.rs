//! What the engine tells the outside world. A sink (WAV files, SQLite, a TUI) consumes these;
//! the engine never learns what the sink did with them.

use std::net::SocketAddr;

use crate::time::Timestamp;

/// Engine-local handle of one call (one INVITE dialog, keyed by Call-ID and From tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// A hasher for the engine's own handles: they are counters the engine hands out, never
/// chosen by a peer, so a multiplicative hash is safe where SipHash would cost more than the
/// lookup (maps keyed by peers' addresses keep the collision-resistant default).
#[derive(Clone, Copy, Default)]
pub struct HandleHasher(u64);

impl core::hash::Hasher for HandleHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by engine handles.
pub type HandleMap<K, V> =
    std::collections::HashMap<K, V, core::hash::BuildHasherDefault<HandleHasher>>;

/// Engine-local handle of one recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingHandle(pub u64);

/// Engine-local handle of one RTP stream (one SSRC on one 5-tuple).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamHandle(pub u64);

/// Which party of a call: the caller sent the INVITE; the callee answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Caller,
    Callee,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
}

impl SipTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
        }
    }
}

/// A party as named in From or To.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Party {
    /// User part of the URI (`alice` in `sip:alice@example.com`), or the number of a `tel:` URI.
    pub user: String,
    /// Host part of the URI, if any.
    pub host: String,
    /// Display name, unquoted, if present.
    pub display_name: Option<String>,
}

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

/// Where a DTMF digit was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event RTP packets.
    Rfc4733,
    /// SIP INFO, `application/dtmf-relay` or `application/dtmf`.
    SipInfo,
    /// Dual tones in the decoded audio ([`crate::dtmf`]).
    InBand,
}

impl DtmfSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::SipInfo => "sip-info",
            DtmfSource::InBand => "inband",
        }
    }
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

/// Audio format of a recording file (the `format` setting, `recording.format` by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RecordingFormat {
    /// 16-bit PCM WAV.
    #[default]
    Wav,
    /// FLAC, lossless.
    Flac,
    /// Opus in Ogg (RFC 7845), the small one.
    Opus,
    /// MPEG-1/2 Layer III.
    Mp3,
}

impl RecordingFormat {
    pub const ALL: [RecordingFormat; 4] = [
        RecordingFormat::Wav,
        RecordingFormat::Flac,
        RecordingFormat::Opus,
        RecordingFormat::Mp3,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordingFormat::Wav => "wav",
            RecordingFormat::Flac => "flac",
            RecordingFormat::Opus => "opus",
            RecordingFormat::Mp3 => "mp3",
        }
    }

    /// File name extension.
    pub fn extension(self) -> &'static str {
        match self {
            RecordingFormat::Opus => "ogg",
            other => other.as_str(),
        }
    }

    pub fn from_name(name: &str) -> Option<RecordingFormat> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(name))
    }
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
    pub action: crate::policy::Action,
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
}
