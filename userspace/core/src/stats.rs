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
}

impl Stats {
    pub fn count_malformed(&mut self, why: Malformed) {
        self.malformed[why as usize] += 1;
    }

    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}
