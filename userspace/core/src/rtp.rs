//! RTP (RFC 3550) views and per-SSRC stream statistics.
//!
//! The loss and jitter figures follow tshark's `-z rtp,streams` (Wireshark's RTP analysis tap),
//! so an operator who checks voxtap against Wireshark sees the same numbers.

use core::fmt;

/// A checked view of an RTP packet. After [`Packet::new_checked`] no getter can panic.
#[derive(Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    /// Offset of the payload, past CSRCs and the header extension.
    payload_start: usize,
    /// End of the payload, before any padding.
    payload_end: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadVersion,
    BadPadding,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated RTP packet",
            Error::BadVersion => "not RTP version 2",
            Error::BadPadding => "RTP padding longer than the payload",
        })
    }
}

mod field {
    pub const FLAGS: usize = 0;
    pub const MARKER_PT: usize = 1;
    pub const SEQ: core::ops::Range<usize> = 2..4;
    pub const TIMESTAMP: core::ops::Range<usize> = 4..8;
    pub const SSRC: core::ops::Range<usize> = 8..12;
    pub const HEADER_LEN: usize = 12;
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let data = buffer.as_ref();
        if data.len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if data[field::FLAGS] >> 6 != 2 {
            return Err(Error::BadVersion);
        }
        let csrc_count = (data[field::FLAGS] & 0x0f) as usize;
        let mut start = field::HEADER_LEN + 4 * csrc_count;
        if data[field::FLAGS] & 0x10 != 0 {
            // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words.
            let ext = data.get(start..start + 4).ok_or(Error::Truncated)?;
            start += 4 + 4 * u16::from_be_bytes([ext[2], ext[3]]) as usize;
        }
        if start > data.len() {
            return Err(Error::Truncated);
        }
        let mut end = data.len();
        if data[field::FLAGS] & 0x20 != 0 {
            let pad = data[end - 1] as usize;
            if pad == 0 || pad > end - start {
                return Err(Error::BadPadding);
            }
            end -= pad;
        }
        Ok(Self {
            buffer,
            payload_start: start,
            payload_end: end,
        })
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn marker(&self) -> bool {
        self.data()[field::MARKER_PT] & 0x80 != 0
    }

    pub fn payload_type(&self) -> u8 {
        self.data()[field::MARKER_PT] & 0x7f
    }

    pub fn sequence_number(&self) -> u16 {
        let d = &self.data()[field::SEQ];
        u16::from_be_bytes([d[0], d[1]])
    }

    pub fn timestamp(&self) -> u32 {
        let d = &self.data()[field::TIMESTAMP];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    pub fn ssrc(&self) -> u32 {
        let d = &self.data()[field::SSRC];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }
}

impl<'a> Packet<&'a [u8]> {
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[self.payload_start..self.payload_end]
    }
}

/// Cheap content test for UDP that carries no SIP: RTP version 2 and a payload type that is
/// not in the RTCP range (RFC 5761 §4).
pub fn looks_like_rtp(payload: &[u8]) -> bool {
    payload.len() >= field::HEADER_LEN
        && payload[0] >> 6 == 2
        && !(72..=95).contains(&(payload[1] & 0x7f))
}

/// Stricter test for UDP that matches no call yet: RTP uses unprivileged ports (RFC 3550 §11)
/// and a static (RFC 3551) or dynamic payload type, which keeps DNS, NetBIOS and the like out
/// of the unmatched-RTP count.
pub fn looks_like_unknown_rtp(src_port: u16, dst_port: u16, payload: &[u8]) -> bool {
    let pt = payload.get(1).map_or(0, |b| b & 0x7f);
    src_port >= 1024 && dst_port >= 1024 && looks_like_rtp(payload) && (pt <= 34 || pt >= 96)
}

/// RTCP: version 2 and a packet type in 192..=223 (RFC 5761 §4).
pub fn looks_like_rtcp(payload: &[u8]) -> bool {
    payload.len() >= 8 && payload[0] >> 6 == 2 && (192..=223).contains(&payload[1])
}

/// Static payload type of comfort noise (RFC 3389), and the old value 19 some devices use.
pub const PT_CN: u8 = 13;
pub const PT_CN_OLD: u8 = 19;

/// One RFC 4733 §2.3 telephone-event payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    /// In RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let p = payload.get(..4)?;
        Some(TelephoneEvent {
            event: p[0],
            end: p[1] & 0x80 != 0,
            volume: p[1] & 0x3f,
            duration: u16::from_be_bytes([p[2], p[3]]),
        })
    }

    /// The DTMF character of this event (RFC 4733 §3.2), if it is one.
    pub fn digit(&self) -> Option<char> {
        Some(match self.event {
            0..=9 => (b'0' + self.event) as char,
            10 => '*',
            11 => '#',
            12..=15 => (b'A' + self.event - 12) as char,
            16 => 'F',
            _ => return None,
        })
    }
}

/// Per-SSRC statistics, computed as Wireshark's RTP analysis does.
///
/// Loss is `expected - received`, where expected runs from the first sequence number to the
/// last one seen (with wrap-around cycles); jitter is RFC 3550 §A.8 in milliseconds, taken over
/// packets with a known clock rate, and the max/mean skip the first packet, marker packets and
/// comfort noise.
#[derive(Clone, Debug, Default)]
pub struct StreamStats {
    started: bool,
    start_seq: u16,
    last_seq: u16,
    seq_in_order: u16,
    cycles: u32,
    under: bool,
    received: u64,
    /// Arrival of the last in-sequence packet, ms since the first.
    last_time_ms: f64,
    /// Extended RTP timestamp of the last in-sequence packet.
    last_ext_ts: i64,
    /// Extended RTP timestamp of the last packet with a clock rate: the nominal-time reference.
    nominal_ext_ts: i64,
    /// Unwrapping state for the 32-bit RTP timestamp.
    last_raw_ts: u32,
    ext_ts: i64,
    first_arrival_ns: u64,
    prev_pt: u8,
    jitter_ms: f64,
    max_jitter_ms: f64,
    mean_jitter_ms: f64,
    out_of_sequence: u64,
}

impl StreamStats {
    /// Feeds one packet. `clock_rate` is 0 for payloads whose timestamps do not advance with
    /// time (telephone-event, RFC 4733 §2.2.1) or whose rate is unknown.
    pub fn on_packet(
        &mut self,
        arrival_ns: u64,
        seq: u16,
        ts: u32,
        pt: u8,
        marker: bool,
        clock_rate: u32,
    ) {
        if !self.started {
            self.started = true;
            self.start_seq = seq;
            self.last_seq = seq;
            self.seq_in_order = seq;
            self.first_arrival_ns = arrival_ns;
            self.last_raw_ts = ts;
            self.ext_ts = ts as i64;
            self.last_ext_ts = self.ext_ts;
            self.nominal_ext_ts = self.ext_ts;
            self.last_time_ms = 0.0;
            self.prev_pt = pt;
            self.received = 1;
            return;
        }
        // Unwrap the timestamp to the value nearest the previous one.
        self.ext_ts += ts.wrapping_sub(self.last_raw_ts) as i32 as i64;
        self.last_raw_ts = ts;
        let now_ms = arrival_ns.saturating_sub(self.first_arrival_ns) as f64 / 1e6;
        let in_time = self.last_ext_ts <= self.ext_ts;

        if in_time {
            // A sequence number below the first one starts a new cycle; so does 0 after 65535
            // when the stream began at 0 (Wireshark's heuristic, kept for identical figures).
            let wrapped = seq < self.start_seq || (seq == 0 && self.last_seq == u16::MAX);
            if wrapped && !self.under {
                self.cycles += 1;
                self.under = true;
            } else if seq > self.start_seq && self.under {
                self.under = false;
            }
        }
        let next = self.seq_in_order.wrapping_add(1);
        if in_time && seq == next {
            self.seq_in_order = seq;
        } else if in_time && (next < seq || self.seq_in_order.wrapping_sub(seq) > 0xff00) {
            self.seq_in_order = seq;
            self.out_of_sequence += 1;
        } else if next > seq {
            self.out_of_sequence += 1;
        }

        let is_cn = pt == PT_CN || pt == PT_CN_OLD;
        let follows_cn = self.prev_pt == PT_CN || self.prev_pt == PT_CN_OLD;
        self.prev_pt = pt;
        let mut current_jitter = 0.0;
        if clock_rate != 0 {
            let ms_per_tick = 1.0 / f64::from(clock_rate / 1000).max(1.0);
            // Arrival is measured from the last in-sequence packet of any kind, nominal time from
            // the last one with a clock, as Wireshark does: so telephone events count.
            let expected =
                self.last_time_ms + (self.ext_ts - self.nominal_ext_ts) as f64 * ms_per_tick;
            let diff = (now_ms - expected).abs();
            current_jitter = (15.0 * self.jitter_ms + diff) / 16.0;
            self.jitter_ms = current_jitter;
            self.nominal_ext_ts = self.ext_ts;
        }
        let regular = !marker && !is_cn && in_time && !follows_cn;
        if regular && clock_rate != 0 {
            self.max_jitter_ms = self.max_jitter_ms.max(self.jitter_ms);
            let n = self.received as f64;
            self.mean_jitter_ms = (self.mean_jitter_ms * (n - 1.0) + current_jitter) / n;
        }
        if in_time {
            self.last_time_ms = now_ms;
            self.last_ext_ts = self.ext_ts;
        }
        self.last_seq = seq;
        self.received += 1;
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected from the first to the last sequence number seen.
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        (self.last_seq as i64 + self.cycles as i64 * 0x10000 - self.start_seq as i64 + 1).max(0)
            as u64
    }

    /// Expected minus received; negative when packets were duplicated.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    pub fn max_jitter_ms(&self) -> f64 {
        self.max_jitter_ms
    }

    pub fn mean_jitter_ms(&self) -> f64 {
        self.mean_jitter_ms
    }

    /// Packets that were late, duplicated or jumped the sequence.
    pub fn out_of_sequence(&self) -> u64 {
        self.out_of_sequence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ts: u32, pt: u8, marker: bool) -> Vec<u8> {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(&[0xff; 160]);
        p
    }

    #[test]
    fn parses_header_fields_and_payload() {
        let bytes = rtp(7, 1600, 8, true);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.marker());
        assert_eq!(p.payload_type(), 8);
        assert_eq!(p.sequence_number(), 7);
        assert_eq!(p.timestamp(), 1600);
        assert_eq!(p.ssrc(), 0x1234_5678);
        assert_eq!(p.payload().len(), 160);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        // V=2, P=1, X=1, CC=1.
        let mut b = vec![0xb1, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&[9, 9, 9, 9]); // CSRC
        b.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension, one word
        b.extend_from_slice(&[0xaa, 0xbb]);
        b.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        assert_eq!(
            Packet::new_checked(&[0x80u8; 11][..]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&[0x40u8; 12][..]).err(),
            Some(Error::BadVersion)
        );
        let mut cc = vec![0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Packet::new_checked(&cc[..]).err(), Some(Error::Truncated));
        cc[0] = 0xa0; // padding with a zero count
        cc.push(0);
        assert_eq!(Packet::new_checked(&cc[..]).err(), Some(Error::BadPadding));
        for n in 0..40 {
            let b = vec![0xbf; n];
            let _ = Packet::new_checked(&b[..]);
        }
    }

    #[test]
    fn classifies_rtp_and_rtcp() {
        assert!(looks_like_rtp(&rtp(1, 1, 0, false)));
        let rtcp_sr = [0x80, 200, 0, 6, 0, 0, 0, 1];
        assert!(looks_like_rtcp(&rtcp_sr));
        assert!(!looks_like_rtp(&[0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0]));
        assert!(!looks_like_rtp(b"INVITE sip:a@b SIP/2.0\r\n"));
        assert!(looks_like_unknown_rtp(4000, 14904, &rtp(1, 1, 8, false)));
        assert!(
            !looks_like_unknown_rtp(137, 137, &rtp(1, 1, 8, false)),
            "NetBIOS is not RTP"
        );
        assert!(
            !looks_like_unknown_rtp(4000, 4002, &rtp(1, 1, 50, false)),
            "unassigned payload type"
        );
    }

    #[test]
    fn telephone_event_digits() {
        let e = TelephoneEvent::parse(&[11, 0x8a, 0x03, 0x20]).unwrap();
        assert_eq!(e.digit(), Some('#'));
        assert!(e.end);
        assert_eq!(e.volume, 10);
        assert_eq!(e.duration, 800);
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
    }

    #[test]
    fn counts_loss_across_sequence_wrap() {
        let mut s = StreamStats::default();
        let mut seq = 65_530u16;
        let mut ts = 0u32;
        for i in 0..20u64 {
            if i != 8 && i != 9 {
                s.on_packet(i * 20_000_000, seq, ts, 0, false, 8000);
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
        }
        assert_eq!(s.expected(), 20);
        assert_eq!(s.received(), 18);
        assert_eq!(s.lost(), 2);
    }

    #[test]
    fn perfect_pacing_has_zero_jitter_and_late_packets_add_it() {
        let mut s = StreamStats::default();
        for i in 0..50u64 {
            s.on_packet(i * 20_000_000, i as u16, (i * 160) as u32, 0, false, 8000);
        }
        assert_eq!(s.max_jitter_ms(), 0.0);
        // One packet 16 ms late: D = 16 ms, J = 16/16 = 1 ms.
        s.on_packet(50 * 20_000_000 + 16_000_000, 50, 50 * 160, 0, false, 8000);
        assert!(
            (s.max_jitter_ms() - 1.0).abs() < 1e-9,
            "{}",
            s.max_jitter_ms()
        );
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn duplicates_make_loss_negative_like_tshark() {
        let mut s = StreamStats::default();
        for (i, seq) in [1u16, 2, 2, 3].into_iter().enumerate() {
            s.on_packet(i as u64 * 20_000_000, seq, seq as u32 * 160, 0, false, 8000);
        }
        assert_eq!(s.lost(), -1);
        assert_eq!(s.out_of_sequence(), 1);
    }
}
