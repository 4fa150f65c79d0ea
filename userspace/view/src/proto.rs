//! The live-state protocol (version [`VERSION`]) between a running voxtap and its viewers
//! (`voxtap tui`), documented in docs/tui.md.
//!
//! The daemon listens on a Unix stream socket (`DIR/status.sock` by default). A viewer
//! connects, and the daemon sends one [`Snapshot`] as a line of JSON about four times a
//! second. The viewer may send lines of its own, each a [`Request`] as JSON: the call whose
//! detail (SIP ladder, streams, timeline, decision) later snapshots should carry. A viewer that
//! reads slowly only misses snapshots: the daemon never queues more than the latest for it.
//!
//! Times are seconds since the Unix epoch (packet time), as `f64`. New fields may be added
//! within a version; a viewer ignores fields it does not know. A change that would break a
//! viewer bumps [`VERSION`], and a viewer refuses a snapshot of another version.

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// What a viewer sends: `{"detail": 12}` to follow call 12's detail, `{"detail": null}` to
/// stop.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub detail: Option<u64>,
}

/// The state of a run at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// What is read: `eth0 (AF_XDP ..., zero-copy)` or the capture files of a replay.
    pub source: String,
    /// `xdp`, `afpacket` or `replay`.
    pub mode: String,
    /// Packet time of the latest frame.
    pub now: f64,
    /// Seconds since the run started (wall clock).
    pub uptime_s: f64,
    /// A replay: the share of its input read (0 to 1). `None` for a live run.
    pub progress: Option<f64>,
    /// The input is over (a replay that has finished): the state no longer changes.
    pub finished: bool,
    pub rates: Rates,
    pub totals: Totals,
    pub drops: Drops,
    /// XDP: what the kernel program made of the frames (zeros in other modes).
    #[serde(default)]
    pub kernel_filter: KernelFilter,
    pub workers: Vec<WorkerLoad>,
    pub active_calls: u64,
    pub active_recordings: u64,
    pub recordings: RecordingCounts,
    pub writer: WriterLoad,
    /// Live calls and those ended within the linger time, oldest first: the newest of them
    /// when there are more than a snapshot carries ([`Snapshot::calls_total`]).
    pub calls: Vec<CallRow>,
    /// How many calls the daemon knows now; more than `calls.len()` when the list was cut.
    #[serde(default)]
    pub calls_total: u64,
    /// The latest recordings, newest first.
    pub recent: Vec<RecordingRow>,
    /// The detail of the call the viewer asked for, if it is still known.
    pub detail: Option<CallDetail>,
}

/// Per second, over the last reporting interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub frames: f64,
    pub sip: f64,
    pub rtp: f64,
}

/// Counts since the run started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub frames: u64,
    pub bytes: u64,
    pub sip_messages: u64,
    pub rtp_packets: u64,
    pub rtcp_packets: u64,
    /// Frames that were neither SIP nor RTP.
    pub other: u64,
    pub calls_seen: u64,
    pub calls_answered: u64,
    /// Calls picked up from their 2xx answer, their INVITE not seen.
    #[serde(default)]
    pub calls_picked_up: u64,
}

/// XDP: the kernel program's verdicts, counts since the run started. Each frame has one
/// verdict; `decapsulated` counts again those of them that came through a remote mirror's
/// encapsulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelFilter {
    pub passed_sip: u64,
    pub passed_rtp: u64,
    pub passed_fragment: u64,
    /// RTP-looking UDP on endpoints no SDP named (only with `capture.pass_unknown_rtp`).
    pub passed_rtp_guess: u64,
    /// Not VoIP: dropped in the kernel.
    pub dropped: u64,
    /// Cut short or past the program's bounds: dropped in the kernel.
    pub parse_failed: u64,
    /// Frames of a remote mirror (ERSPAN, GRE, VXLAN, Geneve, TZSP, IP-in-IP) judged by the
    /// frame inside.
    pub decapsulated: u64,
}

/// Everything lost, by where it was lost. Counts since the run started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Drops {
    /// AF_XDP: frames the kernel could not put on a full RX ring (or had no chunk for).
    pub kernel_ring_full: u64,
    /// AF_XDP: times the kernel found the fill ring empty.
    pub kernel_fill_ring_empty: u64,
    /// AF_PACKET: frames the kernel or the interface dropped.
    pub kernel_dropped: u64,
    /// XDP: frames the program passed for a queue that had no AF_XDP socket.
    #[serde(default)]
    pub kernel_redirect_failed: u64,
    /// Media frames voxtap shed because its workers were behind (queue full).
    pub queue_full: u64,
    /// Frames that could not be parsed.
    pub malformed: u64,
    /// Input dropped to stay within a memory or count bound.
    pub bounds: u64,
    /// RTP that came after its place in the recording was given up (late), and duplicates.
    pub late_audio: u64,
    /// SRTP packets no key authenticated.
    pub decrypt_failures: u64,
    pub undecodable_streams: u64,
    pub encrypted_streams: u64,
    /// RTP packets missing on the network: sequence gaps in the streams that ended.
    pub network_rtp_lost: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerLoad {
    /// RTP packets per second of the calls this worker owns.
    pub rtp_pps: f64,
    /// RTP packets of its calls since the start.
    pub rtp_packets: u64,
    /// Share of its input queue in use, 0 to 1.
    pub queue_fill: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordingCounts {
    pub started: u64,
    /// Finished and final on disk.
    pub written: u64,
    /// Given up on because the disk refused them.
    pub failed: u64,
    /// Deleted by retention or erasure.
    pub deleted: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriterLoad {
    /// Events waiting for the catalog writer.
    pub queued_events: u64,
    /// How far the catalog writer is behind the capture, in seconds of packet time.
    pub lag_s: f64,
    /// Open recordings whose last write the disk refused.
    pub refused: u64,
}

/// One call in the list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRow {
    /// The engine's call number (the catalog's `calls.call_handle`).
    pub id: u64,
    pub sip_call_id: String,
    pub start: f64,
    /// When it was answered, if it was.
    pub answered: Option<f64>,
    /// When it ended, if it has.
    pub end: Option<f64>,
    pub caller: String,
    pub callee: String,
    /// `inbound`, `outbound`, `internal`, `external-to-external`, or empty before the decision.
    pub direction: String,
    /// `ringing`, `talking`, `on hold` or `ended` (with the reason: `ended: bye`).
    pub state: String,
    pub codec: String,
    /// `recording`, `paused`, `recorded`, `not recorded: WHY`, or empty before the decision.
    pub recording: String,
    /// Share of the expected RTP packets lost, 0 to 1, over its streams.
    pub loss: f64,
    /// The worst stream's mean interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Estimated listening quality (E-model, G.107), 1 to 4.5; `None` without RTP.
    pub mos: Option<f64>,
    /// The conversation this leg belongs to.
    pub conversation: Option<u64>,
}

/// One finished recording.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordingRow {
    pub call: u64,
    pub path: String,
    pub format: String,
    pub bytes: u64,
    /// The catalog's `recordings.state`: `complete`, `partial`, `no-audio`, `failed`, ...
    pub state: String,
    pub start: f64,
    pub duration_s: f64,
}

/// Everything the call detail screen shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallDetail {
    pub call: CallRow,
    /// Every leg of its conversation, this one included, oldest first.
    pub legs: Vec<CallRow>,
    /// The SIP of all the legs, in order of arrival.
    pub messages: Vec<SipMessage>,
    /// Messages left out to stay within the memory bound.
    pub messages_dropped: u64,
    pub streams: Vec<StreamRow>,
    /// The recording's events: start, pause and resume (and who asked), DTMF, stop.
    pub timeline: Vec<TimelineEntry>,
    /// The policy's decision: the verdict line, then its trace as `voxtap explain` prints it.
    pub decision: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SipMessage {
    pub ts: f64,
    /// The leg (call id) it belongs to.
    pub leg: u64,
    /// `ip:port`.
    pub src: String,
    pub dst: String,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    /// The start line: `INVITE sip:...` or `SIP/2.0 200 OK`.
    pub first_line: String,
    /// The whole message as it was on the wire (lossy UTF-8), capped at [`MESSAGE_CAP`].
    pub text: String,
}

/// The longest message text kept; a longer one is cut and ends with `…`.
pub const MESSAGE_CAP: usize = 8192;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamRow {
    /// `caller` or `callee`: the party that sent it.
    pub side: String,
    pub src: String,
    pub dst: String,
    pub ssrc: u32,
    pub codec: String,
    pub packets: u64,
    pub lost: i64,
    pub expected: u64,
    pub jitter_ms: f64,
    pub max_jitter_ms: f64,
    pub mos: Option<f64>,
    /// `decoded`, `partial`, `undecodable`, `encrypted`, `no-audio`, `not-recorded`, or `live`
    /// while it runs.
    pub status: String,
    pub ended: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub ts: f64,
    /// e.g. `recording started (policy)`, `paused by caller *1`, `DTMF 5 from caller`.
    pub what: String,
}
