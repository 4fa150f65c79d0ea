//! Counters. Every frame the engine is handed ends in exactly one outcome here, so nothing is
//! lost silently.

/// Why a frame or message was dropped as malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Malformed {
    Link,
    Ip,
    Transport,
    Fragment,
    Sip,
    Sdp,
    Rtp,
}

impl Malformed {
    pub const ALL: [Malformed; 7] = [
        Malformed::Link,
        Malformed::Ip,
        Malformed::Transport,
        Malformed::Fragment,
        Malformed::Sip,
        Malformed::Sdp,
        Malformed::Rtp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::Link => "link",
            Malformed::Ip => "ip",
            Malformed::Transport => "transport",
            Malformed::Fragment => "fragment",
            Malformed::Sip => "sip",
            Malformed::Sdp => "sdp",
            Malformed::Rtp => "rtp",
        }
    }
}

/// Why well-formed input was dropped to stay within bounds: one message too large, or the
/// buffers together over the memory budget (`EngineConfig::buffer_budget_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Dropped {
    /// SIP messages over TCP longer than a flow may buffer (header block over 64 KiB, body
    /// over 256 KiB, or both over `TcpConfig::max_buffered_bytes`): skipped whole, unparsed.
    SipTooLarge,
    /// TCP flows whose buffered bytes were evicted for memory (idlest first).
    TcpEvicted,
    /// Incomplete IP datagrams evicted for memory (oldest first).
    FragmentsEvicted,
    /// RTP packets held for their SDP, evicted for memory (oldest first; also unmatched).
    HeldRtpEvicted,
    /// Segments, fragments or held RTP refused because nothing idler was left to evict.
    OverBudget,
}

impl Dropped {
    pub const ALL: [Dropped; 5] = [
        Dropped::SipTooLarge,
        Dropped::TcpEvicted,
        Dropped::FragmentsEvicted,
        Dropped::HeldRtpEvicted,
        Dropped::OverBudget,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::SipTooLarge => "sip-too-large",
            Dropped::TcpEvicted => "tcp-evicted-for-memory",
            Dropped::FragmentsEvicted => "fragments-evicted-for-memory",
            Dropped::HeldRtpEvicted => "held-rtp-evicted-for-memory",
            Dropped::OverBudget => "over-budget",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub frames: u64,
    pub bytes: u64,
    pub sip_messages: u64,
    pub rtp_packets: u64,
    pub rtcp_packets: u64,
    /// RTP packets tied to a call.
    pub rtp_matched: u64,
    /// RTP-looking packets that never matched a call (counted when given up on).
    pub rtp_unmatched: u64,
    /// Frames that were none of ours (not SIP, not RTP): the XDP program drops these in the kernel.
    pub ignored: u64,
    pub malformed: [u64; Malformed::ALL.len()],
    pub ip_fragments: u64,
    pub ip_reassembled: u64,
    pub tcp_segments: u64,
    pub calls_seen: u64,
    /// Calls picked up from their 2xx answer: their INVITE was not seen (lost, or before
    /// the capture began).
    pub calls_picked_up: u64,
    pub calls_answered: u64,
    pub recordings_started: u64,
    pub rtp_streams: u64,
    /// Calls or streams dropped to stay within bounds.
    pub evictions: u64,
    /// ZRTP key-agreement packets seen on calls' media paths.
    pub zrtp_packets: u64,
    /// RTP of an ended call's own stream, arriving after its end (not recorded).
    pub rtp_after_end: u64,
    /// RTP packets that came after their place was given up as lost (past the reorder
    /// window), and duplicates: neither is in a recording.
    pub late_packets: u64,
    pub duplicate_packets: u64,
    /// SRTP packets no key authenticated (dropped, never decoded).
    pub decrypt_failures: u64,
    /// Milliseconds of audio made up by codec concealment for lost packets, counted when
    /// their stream ends.
    pub concealed_ms: u64,
    /// Streams whose audio could not be decoded (in part or whole), or decrypted.
    pub undecodable_streams: u64,
    pub encrypted_streams: u64,
    /// Recordings cut at their maximum length.
    pub recordings_cut: u64,
    /// Input dropped to stay within bounds, by [`Dropped`] reason.
    pub dropped: [u64; Dropped::ALL.len()],
    /// The most bytes the reassembly and held-RTP buffers held at once (never above the budget).
    pub buffered_peak_bytes: u64,
    /// Evidence ([`crate::evidence`]): frames put in calls' buffers, chunks handed out, chunks
    /// handed out early for the memory budget, and frames that waited for a call that never
    /// claimed them (or were dropped for the held-frames bound).
    pub evidence_frames: u64,
    pub evidence_chunks: u64,
    pub evidence_spills: u64,
    pub evidence_unclaimed: u64,
}

impl Stats {
    /// One run's figures from its workers' ([`crate::vocab::Shard`]). Every worker reads all
    /// the input and counts it alike, so those figures are the first worker's; what each
    /// counts of the audio of its own calls is added up. The sum equals one engine's count.
    pub fn merge_shards(shards: &[Stats]) -> Stats {
        let Some((first, rest)) = shards.split_first() else {
            return Stats::default();
        };
        let mut all = first.clone();
        for s in rest {
            all.late_packets += s.late_packets;
            all.duplicate_packets += s.duplicate_packets;
            all.decrypt_failures += s.decrypt_failures;
            all.concealed_ms += s.concealed_ms;
            all.undecodable_streams += s.undecodable_streams;
            all.encrypted_streams += s.encrypted_streams;
            all.recordings_cut += s.recordings_cut;
            all.evidence_frames += s.evidence_frames;
            all.evidence_chunks += s.evidence_chunks;
            all.evidence_spills += s.evidence_spills;
        }
        all
    }

    pub fn count_malformed(&mut self, why: Malformed) {
        self.malformed[why as usize] += 1;
    }

    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }

    pub fn count_dropped(&mut self, why: Dropped) {
        self.dropped[why as usize] += 1;
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}
