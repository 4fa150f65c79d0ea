//! The words every layer shares: the engine's handles, the two sides of a call, a party, the
//! SIP transport, where a DTMF digit came from, a recording's file format, and the actions a
//! policy asks of a recording. Plain data that imports nothing of the crate, so the events,
//! the policy, the dialogs and the store can all name them without importing one another.
//! (Not `call`: that name is kept for the object that owns one call's state, issue 12.)

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

/// A map keyed by what the wire says (addresses, flows): a fast hash with a random per-map
/// seed (foldhash), so traffic cannot choose colliding keys the way it could against a fixed
/// multiplicative hash; SipHash, the std default, cost a tenth of the engine's instructions.
pub type AddrMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Which part of the calls an engine records, when several engines (workers) share the
/// input. Every worker reads all of it and keeps the same state for every call — the dialogs,
/// the conversations, the servers, the decisions, the RTP streams' sequence and events — but
/// decodes and records only the calls it owns, and reports only theirs. Calls are dealt out
/// by handle, which every worker hands out alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// One engine, owning every call.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn owns(self, call: CallHandle) -> bool {
        self.count <= 1 || call.0 % u64::from(self.count) == u64::from(self.index)
    }

    /// Whether this shard reports what is no call's (run-wide events).
    pub fn is_first(self) -> bool {
        self.index == 0
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

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

/// A side as an index into per-side arrays: the caller 0, the callee 1.
pub fn side_index(side: Side) -> usize {
    match side {
        Side::Caller => 0,
        Side::Callee => 1,
    }
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

/// What a policy asks of a running call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    /// Start recording (or resume, if paused).
    #[default]
    Start,
    /// Stop and finalise the recording; a later `Start` begins a new file.
    Stop,
    /// Keep the timeline running but write silence until `Resume`.
    Pause,
    Resume,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }
}
