//! Linux "cooked" capture headers: LINKTYPE_LINUX_SLL (113) and LINKTYPE_LINUX_SLL2 (276),
//! as documented at tcpdump.org/linktypes.

use super::ethernet::EtherType;
use super::{Error, be16};

mod field {
    use core::ops::Range;
    // SLL v1
    pub const PKTTYPE: Range<usize> = 0..2;
    pub const HATYPE: Range<usize> = 2..4;
    pub const HALEN: Range<usize> = 4..6;
    pub const ADDR: Range<usize> = 6..14;
    pub const PROTOCOL: Range<usize> = 14..16;
    pub const PAYLOAD: usize = 16;
    // SLL v2
    pub const V2_PROTOCOL: Range<usize> = 0..2;
    pub const V2_IFINDEX: Range<usize> = 4..8;
    pub const V2_HATYPE: Range<usize> = 8..10;
    pub const V2_PKTTYPE: usize = 10;
    pub const V2_HALEN: usize = 11;
    pub const V2_ADDR: Range<usize> = 12..20;
    pub const V2_PAYLOAD: usize = 20;
}

pub const HEADER_LEN: usize = field::PAYLOAD;
pub const V2_HEADER_LEN: usize = field::V2_PAYLOAD;

/// ARPHRD_NETLINK: the protocol field is a netlink family, not an EtherType.
pub const ARPHRD_NETLINK: u16 = 824;

/// Which cooked header a [`Packet`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A Linux cooked-capture header of either version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    version: Version,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T, version: Version) -> Result<Self, Error> {
        let p = Packet { buffer, version };
        p.check_len()?;
        Ok(p)
    }

    fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn header_len(&self) -> usize {
        match self.version {
            Version::V1 => HEADER_LEN,
            Version::V2 => V2_HEADER_LEN,
        }
    }

    /// 0 to us, 1 broadcast, 2 multicast, 3 to someone else, 4 sent by us.
    pub fn packet_type(&self) -> u16 {
        let b = self.buffer.as_ref();
        match self.version {
            Version::V1 => be16(&b[field::PKTTYPE]),
            Version::V2 => u16::from(b[field::V2_PKTTYPE]),
        }
    }

    pub fn hardware_type(&self) -> u16 {
        let b = self.buffer.as_ref();
        match self.version {
            Version::V1 => be16(&b[field::HATYPE]),
            Version::V2 => be16(&b[field::V2_HATYPE]),
        }
    }

    /// The link-layer source address, at most 8 bytes.
    pub fn addr(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let (len, range) = match self.version {
            Version::V1 => (usize::from(be16(&b[field::HALEN])), field::ADDR),
            Version::V2 => (usize::from(b[field::V2_HALEN]), field::V2_ADDR),
        };
        &b[range.start..range.start + len.min(8)]
    }

    /// Interface index; SLL v1 does not carry one.
    pub fn ifindex(&self) -> Option<u32> {
        let b = &self.buffer.as_ref();
        match self.version {
            Version::V1 => None,
            Version::V2 => {
                let i = &b[field::V2_IFINDEX];
                Some(u32::from_be_bytes([i[0], i[1], i[2], i[3]]))
            }
        }
    }

    pub fn protocol(&self) -> EtherType {
        let b = self.buffer.as_ref();
        let range = match self.version {
            Version::V1 => field::PROTOCOL,
            Version::V2 => field::V2_PROTOCOL,
        };
        EtherType::from(be16(&b[range]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SLL: [u8; 18] = [
        0x00, 0x04, // sent by us
        0x00, 0x01, // ARPHRD_ETHER
        0x00, 0x06, // address length
        0x00, 0x0c, 0x29, 0x12, 0x34, 0x56, 0x00, 0x00, // address, padded to 8
        0x86, 0xdd, // IPv6
        0x60, 0x00,
    ];

    static SLL2: [u8; 22] = [
        0x08, 0x00, // IPv4
        0x00, 0x00, // reserved
        0x00, 0x00, 0x00, 0x03, // ifindex 3
        0x00, 0x01, // ARPHRD_ETHER
        0x00, // to us
        0x06, // address length
        0x00, 0x0c, 0x29, 0x12, 0x34, 0x56, 0x00, 0x00, //
        0x45, 0x00,
    ];

    #[test]
    fn sll_v1() {
        let p = Packet::new_checked(&SLL[..], Version::V1).unwrap();
        assert_eq!(p.packet_type(), 4);
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.addr(), &[0x00, 0x0c, 0x29, 0x12, 0x34, 0x56]);
        assert_eq!(p.protocol(), EtherType::Ipv6);
        assert_eq!(p.ifindex(), None);
        assert_eq!(p.payload(), &[0x60, 0x00]);
    }

    #[test]
    fn sll_v2() {
        let p = Packet::new_checked(&SLL2[..], Version::V2).unwrap();
        assert_eq!(p.packet_type(), 0);
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.ifindex(), Some(3));
        assert_eq!(p.protocol(), EtherType::Ipv4);
        assert_eq!(p.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&SLL[..n], Version::V1),
                Err(Error::Truncated)
            );
        }
        for n in 0..V2_HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&SLL2[..n], Version::V2),
                Err(Error::Truncated)
            );
        }
    }
}
