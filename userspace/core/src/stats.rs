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
}

impl Stats {
    pub fn count_malformed(&mut self, why: Malformed) {
        self.malformed[why as usize] += 1;
    }

    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}
