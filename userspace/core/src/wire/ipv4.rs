//! IPv4 header view (RFC 791 §3.1).

use super::{Error, be16};
use std::net::Ipv4Addr;

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

pub const MIN_HEADER_LEN: usize = field::DST.end;

/// An IPv4 packet whose header and total length fit the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version, header length and total length once; no getter can panic afterwards.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total = usize::from(self.total_len_field());
        // Total length 0 is what segmentation offload (TSO) leaves in a capture: use the buffer.
        if total != 0 && total < header_len {
            return Err(Error::Malformed);
        }
        if total > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    fn total_len_field(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The datagram length: the header field, or the buffer length when the field is 0 (TSO).
    pub fn total_len(&self) -> usize {
        match self.total_len_field() {
            0 => self.buffer.as_ref().len(),
            n => usize::from(n),
        }
    }

    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }

    pub fn dont_frag(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FLG_OFF]) & 0x4000 != 0
    }

    pub fn more_frags(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FLG_OFF]) & 0x2000 != 0
    }

    /// Fragment offset in bytes (the field counts 8-octet units, RFC 791 §3.1).
    pub fn frag_offset(&self) -> usize {
        usize::from(be16(&self.buffer.as_ref()[field::FLG_OFF]) & 0x1fff) * 8
    }

    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Options bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Not checked by `decode`: offloaded checksums in captures are routinely wrong.
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..self.header_len()];
        let mut sum: u32 = header
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload, cut at total length so trailing link padding is dropped.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 with a 4-byte option (Router Alert), UDP, 2 bytes of Ethernet padding after.
    static PACKET: [u8; 38] = [
        0x46, 0x00, 0x00, 0x24, // IHL 6, total 36
        0x12, 0x34, 0x20, 0x00, // id 0x1234, MF
        0x40, 0x11, 0x00, 0x00, // TTL 64, UDP, checksum (filled below)
        0xc0, 0xa8, 0x01, 0x01, // 192.168.1.1
        0xc0, 0xa8, 0x01, 0x02, // 192.168.1.2
        0x94, 0x04, 0x00, 0x00, // Router Alert option
        0x13, 0xc4, 0x13, 0xc4, 0x00, 0x0c, 0x00, 0x00, // UDP 5060 -> 5060, len 12
        0x41, 0x42, 0x43, 0x44, // payload
        0x00, 0x00, // padding
    ];

    #[test]
    fn fields() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 36);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.more_frags());
        assert!(!p.dont_frag());
        assert_eq!(p.frag_offset(), 0);
        assert!(p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload().len(), 12, "padding is cut by total length");
        assert_eq!(&p.payload()[8..], b"ABCD");
    }

    #[test]
    fn checksum() {
        // The outer IPv4 header of the first frame of erspan-refer-hold.pcapng (RFC 1071 sum).
        let hdr = [
            0x45, 0x00, 0x02, 0xe9, 0x69, 0x9f, 0x00, 0x00, 0x3f, 0x2f, 0x83, 0xdd, 0xc0, 0xa8,
            0x01, 0xd5, 0xc0, 0xa8, 0x08, 0x44,
        ];
        let mut buf = hdr.to_vec();
        buf.resize(0x2e9, 0);
        assert!(Packet::new_checked(&buf[..]).unwrap().verify_checksum());
        buf[11] ^= 1;
        assert!(!Packet::new_checked(&buf[..]).unwrap().verify_checksum());
    }

    #[test]
    fn offset_in_bytes() {
        let mut b = PACKET;
        b[6] = 0x00;
        b[7] = 0xb9; // offset 185 units, no MF
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.frag_offset(), 1480);
        assert!(!p.more_frags());
    }

    #[test]
    fn tso_zero_total_length_uses_buffer() {
        let mut b = PACKET;
        b[2] = 0;
        b[3] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 38 - 24);
    }

    #[test]
    fn rejects_bad_headers() {
        for n in 0..36 {
            assert_eq!(
                Packet::new_checked(&PACKET[..n]),
                Err(Error::Truncated),
                "len {n}"
            );
        }
        let mut b = PACKET;
        b[0] = 0x66;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[0] = 0x44; // IHL 4
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[0] = 0x4f; // IHL 15 = 60 bytes > 38
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Truncated));
        let mut b = PACKET;
        b[3] = 0x10; // total 16 < header 24
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
    }
}
