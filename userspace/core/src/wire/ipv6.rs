//! IPv6 header (RFC 8200 §3) and the extension headers voxtap walks (RFC 8200 §4).

use super::{Error, be16, ip_proto};
use std::net::Ipv6Addr;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;

    // Generic extension header (RFC 8200 §4.3-4.6) and AH (RFC 4302 §2).
    pub const EXT_NXT_HDR: usize = 0;
    pub const EXT_LEN: usize = 1;

    // Fragment header (RFC 8200 §4.5).
    pub const FRAG_NXT_HDR: usize = 0;
    pub const FRAG_OFF_M: Range<usize> = 2..4;
    pub const FRAG_IDENT: Range<usize> = 4..8;
}

pub const HEADER_LEN: usize = field::DST.end;
pub const FRAGMENT_HEADER_LEN: usize = 8;
/// More extension headers than this is an attack or garbage, not a call.
pub const MAX_EXTENSION_HEADERS: usize = 8;

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}

/// An IPv6 packet whose payload length fits the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        let payload_len = self.payload_len();
        // Payload length 0 with a hop-by-hop header is a jumbogram (RFC 2675 §3).
        if payload_len == 0 && self.next_header() == ip_proto::HOPOPT {
            return Err(Error::Unsupported);
        }
        if HEADER_LEN + payload_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    pub fn payload_len(&self) -> usize {
        usize::from(be16(&self.buffer.as_ref()[field::LENGTH]))
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Extension headers and upper layer, cut at payload length (drops link padding).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len()]
    }
}

/// A hop-by-hop, routing, destination options or AH header: next header, length, opaque body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// `protocol` is the header's own type: AH counts 4-octet units (RFC 4302 §2.2), the rest 8.
    pub fn new_checked(buffer: T, protocol: u8) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < 2 {
            return Err(Error::Truncated);
        }
        let n = usize::from(b[field::EXT_LEN]);
        let header_len = if protocol == ip_proto::AH {
            (n + 2) * 4
        } else {
            (n + 1) * 8
        };
        if header_len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(ExtHeader { buffer, header_len })
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::EXT_NXT_HDR]
    }

    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Options (or routing data) after the two fixed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[2..self.header_len]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ExtHeader<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len..]
    }
}

/// The fragment header (RFC 8200 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(FragmentHeader { buffer })
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::FRAG_NXT_HDR]
    }

    /// Offset in bytes: the top 13 bits count 8-octet units.
    pub fn offset(&self) -> usize {
        usize::from(be16(&self.buffer.as_ref()[field::FRAG_OFF_M]) & 0xfff8)
    }

    pub fn more_frags(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FRAG_OFF_M]) & 1 != 0
    }

    pub fn ident(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::FRAG_IDENT];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> FragmentHeader<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[FRAGMENT_HEADER_LEN..]
    }
}

/// What follows the extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upper<'a> {
    Payload {
        protocol: u8,
        payload: &'a [u8],
    },
    Fragment {
        protocol: u8,
        ident: u32,
        offset: usize,
        more: bool,
        payload: &'a [u8],
    },
}

pub fn is_extension_header(protocol: u8) -> bool {
    matches!(
        protocol,
        ip_proto::HOPOPT
            | ip_proto::ROUTING
            | ip_proto::FRAGMENT
            | ip_proto::DSTOPTS
            | ip_proto::AH
    )
}

/// Walks extension headers from `next`, at most [`MAX_EXTENSION_HEADERS`] of them.
pub fn walk_extensions(mut next: u8, mut data: &[u8]) -> Result<Upper<'_>, Error> {
    for _ in 0..MAX_EXTENSION_HEADERS {
        match next {
            ip_proto::HOPOPT | ip_proto::ROUTING | ip_proto::DSTOPTS | ip_proto::AH => {
                let h = ExtHeader::new_checked(data, next)?;
                next = h.next_header();
                data = h.payload();
            }
            ip_proto::FRAGMENT => {
                let f = FragmentHeader::new_checked(data)?;
                // An atomic fragment is processed as a whole packet (RFC 6946 §4).
                if f.offset() == 0 && !f.more_frags() {
                    next = f.next_header();
                    data = f.payload();
                    continue;
                }
                return Ok(Upper::Fragment {
                    protocol: f.next_header(),
                    ident: f.ident(),
                    offset: f.offset(),
                    more: f.more_frags(),
                    payload: f.payload(),
                });
            }
            protocol => {
                return Ok(Upper::Payload {
                    protocol,
                    payload: data,
                });
            }
        }
    }
    Err(Error::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv6, hop-by-hop (PadN), fragment header (offset 0, M), then 8 bytes of UDP header.
    static PACKET: [u8; 64] = [
        0x60, 0x00, 0x00, 0x01, 0x00, 0x18, 0x00, 0x40, // flow 1, payload 24, HBH, hop 64
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // 2001:db8::2
        0x2c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // HBH: next frag, len 0, PadN(4)
        0x11, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, // Frag: next UDP, offset 0, M, id
        0x13, 0xc4, 0x13, 0xc4, 0x00, 0x20, 0x00, 0x00, // UDP header (first fragment)
    ];

    #[test]
    fn header_and_extensions() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.flow_label(), 1);
        assert_eq!(p.payload_len(), 24);
        assert_eq!(p.next_header(), ip_proto::HOPOPT);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        match walk_extensions(p.next_header(), p.payload()).unwrap() {
            Upper::Fragment {
                protocol,
                ident,
                offset,
                more,
                payload,
            } => {
                assert_eq!((protocol, ident, offset, more), (17, 0xdead_beef, 0, true));
                assert_eq!(payload, &PACKET[56..64]);
            }
            other => panic!("expected a fragment, got {other:?}"),
        }
    }

    #[test]
    fn atomic_fragment_is_walked_through() {
        let mut b = PACKET;
        b[51] = 0x00; // clear M
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            walk_extensions(p.next_header(), p.payload()),
            Ok(Upper::Payload {
                protocol: 17,
                payload: &b[56..64]
            })
        );
    }

    #[test]
    fn fragment_offset_bytes() {
        let f = FragmentHeader::new_checked(&[0x11, 0x00, 0x05, 0xa8, 0, 0, 0, 7][..]).unwrap();
        assert_eq!(f.offset(), 1448);
        assert!(!f.more_frags());
        assert_eq!(f.ident(), 7);
    }

    #[test]
    fn errors() {
        for n in 0..64 {
            assert_eq!(
                Packet::new_checked(&PACKET[..n]),
                Err(Error::Truncated),
                "len {n}"
            );
        }
        let mut b = PACKET;
        b[0] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        let mut b = PACKET;
        b[4] = 0;
        b[5] = 0; // jumbogram
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Unsupported));
        // Truncated extension chain.
        assert_eq!(
            walk_extensions(ip_proto::HOPOPT, &PACKET[40..46]),
            Err(Error::Truncated)
        );
        assert_eq!(
            walk_extensions(ip_proto::FRAGMENT, &PACKET[48..54]),
            Err(Error::Truncated)
        );
        // A loop of destination options headers hits the bound.
        let looped = [ip_proto::DSTOPTS, 0, 1, 4, 0, 0, 0, 0].repeat(MAX_EXTENSION_HEADERS + 1);
        assert_eq!(
            walk_extensions(ip_proto::DSTOPTS, &looped),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn ah_counts_four_octet_units() {
        // AH with length 4 -> (4 + 2) * 4 = 24 bytes, then UDP.
        let mut ah = vec![ip_proto::UDP, 4];
        ah.resize(24, 0);
        ah.extend_from_slice(&[1, 2]);
        assert_eq!(
            walk_extensions(ip_proto::AH, &ah),
            Ok(Upper::Payload {
                protocol: ip_proto::UDP,
                payload: &[1, 2][..]
            })
        );
    }
}
