//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags (IEEE 802.3 §3.2, IEEE 802.1Q §9.6).

use super::Error;

/// The EtherType space; values voxtap walks through get a name, the rest stay `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    /// 0x8100, IEEE 802.1Q customer tag.
    Vlan,
    /// 0x88a8, IEEE 802.1ad service tag (QinQ outer).
    ServiceVlan,
    /// 0x9100, the pre-802.1ad QinQ outer tag still sent by some switches.
    QinQLegacy,
    PppoeDiscovery,
    PppoeSession,
    Mpls,
    /// 0x6558, Ethernet carried in GRE (RFC 1701 "transparent Ethernet bridging").
    TransparentEthernet,
    /// 0x88be, ERSPAN type I/II inside GRE.
    ErspanII,
    /// 0x22eb, ERSPAN type III inside GRE.
    ErspanIII,
    /// 0x880b, PPP inside enhanced GRE (RFC 2637 §4.1).
    Ppp,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::ServiceVlan,
            0x9100 => EtherType::QinQLegacy,
            0x8863 => EtherType::PppoeDiscovery,
            0x8864 => EtherType::PppoeSession,
            0x8847 => EtherType::Mpls,
            0x6558 => EtherType::TransparentEthernet,
            0x88be => EtherType::ErspanII,
            0x22eb => EtherType::ErspanIII,
            0x880b => EtherType::Ppp,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> u16 {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::ServiceVlan => 0x88a8,
            EtherType::QinQLegacy => 0x9100,
            EtherType::PppoeDiscovery => 0x8863,
            EtherType::PppoeSession => 0x8864,
            EtherType::Mpls => 0x8847,
            EtherType::TransparentEthernet => 0x6558,
            EtherType::ErspanII => 0x88be,
            EtherType::ErspanIII => 0x22eb,
            EtherType::Ppp => 0x880b,
            EtherType::Unknown(other) => other,
        }
    }
}

impl EtherType {
    /// Values below 0x0600 are an 802.3 length, not a type (IEEE 802.3 §3.2.6).
    pub fn is_length(self) -> bool {
        u16::from(self) < 0x0600
    }

    pub fn is_vlan_tag(self) -> bool {
        matches!(
            self,
            EtherType::Vlan | EtherType::ServiceVlan | EtherType::QinQLegacy
        )
    }
}

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;

    pub const TCI: Range<usize> = 0..2;
    pub const TAG_ETHERTYPE: Range<usize> = 2..4;
    pub const TAG_PAYLOAD: usize = 4;
}

pub const HEADER_LEN: usize = field::PAYLOAD;
pub const VLAN_TAG_LEN: usize = field::TAG_PAYLOAD;

/// An Ethernet II frame without FCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let frame = Frame { buffer };
        frame.check_len()?;
        Ok(frame)
    }

    fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    pub fn src_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// Everything after the header, trailing padding included: the next layer cuts it by its own length.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

/// One 802.1Q/802.1ad tag: TCI then the inner EtherType (the outer EtherType was the TPID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let tag = VlanTag { buffer };
        tag.check_len()?;
        Ok(tag)
    }

    fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn tci(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TCI];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn vlan_id(&self) -> u16 {
        self.tci() & 0x0fff
    }

    pub fn priority(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::TAG_ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> VlanTag<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::TAG_PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 18] = [
        0x00, 0x50, 0x56, 0x94, 0x8b, 0x61, // dst
        0x48, 0x7a, 0xda, 0x95, 0x87, 0x8d, // src
        0x81, 0x00, // 802.1Q
        0x20, 0x9b, // PCP 1, VID 155
        0x08, 0x00, // IPv4
    ];

    #[test]
    fn frame_fields() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), [0x00, 0x50, 0x56, 0x94, 0x8b, 0x61]);
        assert_eq!(f.src_addr(), [0x48, 0x7a, 0xda, 0x95, 0x87, 0x8d]);
        assert_eq!(f.ethertype(), EtherType::Vlan);
        let tag = VlanTag::new_checked(f.payload()).unwrap();
        assert_eq!(tag.vlan_id(), 155);
        assert_eq!(tag.priority(), 1);
        assert_eq!(tag.ethertype(), EtherType::Ipv4);
        assert!(tag.payload().is_empty());
    }

    #[test]
    fn truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(Frame::new_checked(&FRAME[..n]), Err(Error::Truncated));
        }
        assert_eq!(VlanTag::new_checked(&FRAME[14..17]), Err(Error::Truncated));
    }

    #[test]
    fn ethertype_round_trip() {
        for v in [
            0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x8864, 0x6558, 0x88be, 0x22eb, 0x1234,
        ] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
        assert!(EtherType::from(0x0026).is_length());
    }
}
