//! Encapsulations between IP and IP: GRE (RFC 2784, RFC 2890, enhanced GRE of RFC 2637 §4.1),
//! ERSPAN type II/III (draft-foschiano-erspan-03 §4), PPPoE session (RFC 2516 §4) and PPP
//! (RFC 1661 §2, RFC 1662 §3). IP-in-IP (RFC 2003, RFC 4213) has no header of its own. Over
//! UDP: VXLAN (RFC 7348, the encapsulation of AWS VPC Traffic Mirroring and Azure vTAP),
//! Geneve (RFC 8926) and TZSP (the TaZmen Sniffer Protocol, which MikroTik's packet sniffer
//! streams to a remote collector).

use super::ethernet::EtherType;
use super::{Error, be16, be32};

mod field {
    use core::ops::Range;
    // GRE
    pub const GRE_FLAGS: Range<usize> = 0..2;
    pub const GRE_PROTOCOL: Range<usize> = 2..4;
    pub const GRE_OPTIONAL: usize = 4;
    // ERSPAN II and III share the first word.
    pub const ERSPAN_VER_VLAN: Range<usize> = 0..2;
    pub const ERSPAN_SESSION: Range<usize> = 2..4;
    pub const ERSPAN2_INDEX: Range<usize> = 4..8;
    pub const ERSPAN2_PAYLOAD: usize = 8;
    pub const ERSPAN3_TIMESTAMP: Range<usize> = 4..8;
    pub const ERSPAN3_SGT: Range<usize> = 8..10;
    pub const ERSPAN3_P_FT_HWID: usize = 10;
    pub const ERSPAN3_HWID_D_GRA_O: usize = 11;
    pub const ERSPAN3_PAYLOAD: usize = 12;
    pub const ERSPAN3_SUBHEADER_LEN: usize = 8;
    // PPPoE
    pub const PPPOE_VER_TYPE: usize = 0;
    pub const PPPOE_CODE: usize = 1;
    pub const PPPOE_SESSION: Range<usize> = 2..4;
    pub const PPPOE_LENGTH: Range<usize> = 4..6;
    pub const PPPOE_PAYLOAD: usize = 6;
}

const GRE_CHECKSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQUENCE: u16 = 0x1000;
const GRE_ACK: u16 = 0x0080;

/// A GRE header of version 0 (RFC 2784/2890) or 1 (PPTP, RFC 2637 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = GrePacket { buffer };
        p.check_len()?;
        Ok(p)
    }

    fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < field::GRE_OPTIONAL {
            return Err(Error::Truncated);
        }
        let flags = self.flags();
        match self.version() {
            // RFC 1701 source routing entries are obsolete (RFC 2784 §2.1 drops them).
            0 if flags & GRE_ROUTING != 0 => return Err(Error::Unsupported),
            0 => {}
            // Enhanced GRE always carries the key (payload length + call id), never a checksum.
            1 if flags & GRE_KEY == 0 || flags & (GRE_CHECKSUM | GRE_ROUTING) != 0 => {
                return Err(Error::Malformed);
            }
            1 => {}
            _ => return Err(Error::Unsupported),
        }
        if self.header_len() > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn flags(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::GRE_FLAGS])
    }

    pub fn version(&self) -> u8 {
        (self.flags() & 0x0007) as u8
    }

    pub fn checksum_present(&self) -> bool {
        self.flags() & GRE_CHECKSUM != 0
    }

    pub fn key_present(&self) -> bool {
        self.flags() & GRE_KEY != 0
    }

    pub fn sequence_present(&self) -> bool {
        self.flags() & GRE_SEQUENCE != 0
    }

    fn ack_present(&self) -> bool {
        self.version() == 1 && self.flags() & GRE_ACK != 0
    }

    pub fn protocol(&self) -> EtherType {
        EtherType::from(be16(&self.buffer.as_ref()[field::GRE_PROTOCOL]))
    }

    fn key_at(&self) -> usize {
        field::GRE_OPTIONAL + if self.checksum_present() { 4 } else { 0 }
    }

    fn sequence_at(&self) -> usize {
        self.key_at() + if self.key_present() { 4 } else { 0 }
    }

    pub fn header_len(&self) -> usize {
        self.sequence_at()
            + if self.sequence_present() { 4 } else { 0 }
            + if self.ack_present() { 4 } else { 0 }
    }

    pub fn key(&self) -> Option<u32> {
        let at = self.key_at();
        self.key_present()
            .then(|| be32(&self.buffer.as_ref()[at..at + 4]))
    }

    pub fn sequence(&self) -> Option<u32> {
        let at = self.sequence_at();
        self.sequence_present()
            .then(|| be32(&self.buffer.as_ref()[at..at + 4]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> GrePacket<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// What an ERSPAN header says the mirrored bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirroredFrame {
    Ethernet,
    /// ERSPAN III frame type 2: an IP packet with no L2 header.
    Ip,
}

/// ERSPAN type II (8 bytes) or type III (12 bytes, plus an 8-byte platform subheader when O is set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErspanPacket<T: AsRef<[u8]>> {
    buffer: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> ErspanPacket<T> {
    /// `type3` picks the layout; the GRE protocol (0x88be or 0x22eb) decides it.
    pub fn new_checked(buffer: T, type3: bool) -> Result<Self, Error> {
        let b = buffer.as_ref();
        let fixed = if type3 {
            field::ERSPAN3_PAYLOAD
        } else {
            field::ERSPAN2_PAYLOAD
        };
        if b.len() < fixed {
            return Err(Error::Truncated);
        }
        let version = b[0] >> 4;
        if version != if type3 { 2 } else { 1 } {
            return Err(Error::Malformed);
        }
        let mut header_len = fixed;
        if type3 && b[field::ERSPAN3_HWID_D_GRA_O] & 1 != 0 {
            header_len += field::ERSPAN3_SUBHEADER_LEN;
            if b.len() < header_len {
                return Err(Error::Truncated);
            }
        }
        Ok(ErspanPacket { buffer, header_len })
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// The original VLAN of the mirrored frame.
    pub fn vlan_id(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ERSPAN_VER_VLAN]) & 0x0fff
    }

    pub fn session_id(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ERSPAN_SESSION]) & 0x03ff
    }

    pub fn index(&self) -> Option<u32> {
        (self.version() == 1)
            .then(|| be32(&self.buffer.as_ref()[field::ERSPAN2_INDEX]) & 0x000f_ffff)
    }

    pub fn timestamp(&self) -> Option<u32> {
        (self.version() == 2).then(|| be32(&self.buffer.as_ref()[field::ERSPAN3_TIMESTAMP]))
    }

    pub fn security_group_tag(&self) -> Option<u16> {
        (self.version() == 2).then(|| be16(&self.buffer.as_ref()[field::ERSPAN3_SGT]))
    }

    /// Type II always mirrors Ethernet; type III names it in FT.
    pub fn frame(&self) -> Result<MirroredFrame, Error> {
        if self.version() == 1 {
            return Ok(MirroredFrame::Ethernet);
        }
        match (self.buffer.as_ref()[field::ERSPAN3_P_FT_HWID] >> 2) & 0x1f {
            0 => Ok(MirroredFrame::Ethernet),
            2 => Ok(MirroredFrame::Ip),
            _ => Err(Error::Unsupported),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ErspanPacket<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len..]
    }
}

/// A PPPoE session-stage header (RFC 2516 §4, §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PppoeSession<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PppoeSession<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < field::PPPOE_PAYLOAD {
            return Err(Error::Truncated);
        }
        // VER and TYPE are both 1, and session data always has CODE 0 (RFC 2516 §4, §6).
        if b[field::PPPOE_VER_TYPE] != 0x11 || b[field::PPPOE_CODE] != 0 {
            return Err(Error::Malformed);
        }
        let p = PppoeSession { buffer };
        if field::PPPOE_PAYLOAD + p.length() > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    pub fn session_id(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PPPOE_SESSION])
    }

    pub fn length(&self) -> usize {
        usize::from(be16(&self.buffer.as_ref()[field::PPPOE_LENGTH]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> PppoeSession<&'a T> {
    /// The PPP frame, cut at LENGTH so Ethernet padding is dropped.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PPPOE_PAYLOAD..field::PPPOE_PAYLOAD + self.length()]
    }
}

pub mod ppp_proto {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
}

/// A PPP frame without flags or FCS, as carried by PPPoE or GRE: optional 0xff 0x03
/// address/control (RFC 1662 §3.1) and a 1- or 2-byte protocol (PFC, RFC 1661 §6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PppFrame<T: AsRef<[u8]>> {
    buffer: T,
    protocol_at: usize,
    header_len: usize,
}

impl<T: AsRef<[u8]>> PppFrame<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        let protocol_at = if b.starts_with(&[0xff, 0x03]) { 2 } else { 0 };
        let first = *b.get(protocol_at).ok_or(Error::Truncated)?;
        // Protocol numbers have an even first octet, so an odd one is a compressed 1-byte field.
        let header_len = protocol_at + if first & 1 == 1 { 1 } else { 2 };
        if b.len() < header_len {
            return Err(Error::Truncated);
        }
        Ok(PppFrame {
            buffer,
            protocol_at,
            header_len,
        })
    }

    pub fn protocol(&self) -> u16 {
        let b = &self.buffer.as_ref()[self.protocol_at..self.header_len];
        match *b {
            [one] => u16::from(one),
            [hi, lo] => u16::from_be_bytes([hi, lo]),
            _ => 0,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> PppFrame<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len..]
    }
}

/// IANA's UDP port for VXLAN (RFC 7348 §5).
pub const VXLAN_PORT: u16 = 4789;
/// IANA's UDP port for Geneve (RFC 8926 §3.3).
pub const GENEVE_PORT: u16 = 6081;
const VXLAN_HEADER_LEN: usize = 8;
/// VXLAN's flags octet with only the I flag (a valid VNI) set, as RFC 7348 §5 has senders
/// send it. RTP and RTCP (version 2: 0x80-0xbf) and SIP (a letter) never start with it.
const VXLAN_FLAGS: u8 = 0x08;
const GENEVE_FIXED_LEN: usize = 8;
/// The UDP port TZSP is sent to (0x9090).
pub const TZSP_PORT: u16 = 37008;
/// TZSP version 1, type 0 ("received tag list": a frame as sniffed), encapsulation 1
/// (Ethernet): what a sniffer streams.
const TZSP_HEAD: [u8; 4] = [1, 0, 0, 1];
/// Tagged fields walked before the frame: padding (0) and end (1) are one byte, the others a
/// tag, a length and that many bytes.
const TZSP_MAX_TAGS: usize = 32;

/// What a UDP datagram to a tunnel port carries, when it is a tunnel packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpTunnel<'a> {
    /// An Ethernet frame (VXLAN, or Geneve protocol 0x6558).
    Ethernet(&'a [u8]),
    /// An IP packet with no link layer (Geneve protocol 0x0800 or 0x86dd).
    Ip(&'a [u8]),
}

/// The frame inside a UDP datagram to `dst_port`, if the datagram is VXLAN or Geneve.
/// `Ok(None)` is an ordinary datagram that happens to use the port (its first octet is not a
/// tunnel header's); a tunnel header cut short is `Truncated`.
pub fn udp_tunnel(dst_port: u16, payload: &[u8]) -> Result<Option<UdpTunnel<'_>>, Error> {
    match dst_port {
        VXLAN_PORT if payload.first() == Some(&VXLAN_FLAGS) => payload
            .get(VXLAN_HEADER_LEN..)
            .map(|inner| Some(UdpTunnel::Ethernet(inner)))
            .ok_or(Error::Truncated),
        // Version 0 in the top two bits: RTP's version 2 never matches. The O bit marks a
        // control message, which carries no traffic.
        GENEVE_PORT if payload.first().is_some_and(|b| b >> 6 == 0) => {
            let fixed = payload.get(..GENEVE_FIXED_LEN).ok_or(Error::Truncated)?;
            let header_len = GENEVE_FIXED_LEN + usize::from(fixed[0] & 0x3f) * 4;
            let inner = payload.get(header_len..).ok_or(Error::Truncated)?;
            if fixed[1] & 0x80 != 0 {
                return Ok(None);
            }
            Ok(match EtherType::from(be16(&fixed[2..4])) {
                EtherType::TransparentEthernet => Some(UdpTunnel::Ethernet(inner)),
                EtherType::Ipv4 | EtherType::Ipv6 => Some(UdpTunnel::Ip(inner)),
                _ => None,
            })
        }
        TZSP_PORT if payload.starts_with(&TZSP_HEAD) => {
            let mut at = TZSP_HEAD.len();
            for _ in 0..TZSP_MAX_TAGS {
                match *payload.get(at).ok_or(Error::Truncated)? {
                    0 => at += 1,
                    1 => return Ok(Some(UdpTunnel::Ethernet(&payload[at + 1..]))),
                    _ => at += 2 + usize::from(*payload.get(at + 1).ok_or(Error::Truncated)?),
                }
            }
            Err(Error::Unsupported)
        }
        _ => Ok(None),
    }
}

/// Whether a UDP datagram to `dst_port` is (or claims to be) VXLAN, Geneve or TZSP: the cheap
/// check that keeps such datagrams off the plain-UDP shortcut. Always inlined: every frame the
/// shortcut reads asks, and as a call it cost 8 instructions a packet.
///
/// It looks at the first bytes only, so it says yes to a few datagrams that [`udp_tunnel`]
/// then reads as ordinary ones (a Geneve control message, Geneve carrying neither Ethernet
/// nor IP): the walk gives those the same plain datagram the shortcut would have. Defined
/// through `udp_tunnel` instead, it put a call on the shortcut, and every frame's decode paid
/// 11 instructions more for it (callgrind, `engine-bench --calls 100`).
#[inline(always)]
pub fn is_udp_tunnel(dst_port: u16, payload: &[u8]) -> bool {
    match dst_port {
        VXLAN_PORT => payload.first() == Some(&VXLAN_FLAGS),
        GENEVE_PORT => payload.first().is_some_and(|b| b >> 6 == 0),
        TZSP_PORT => payload.starts_with(&TZSP_HEAD),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_and_geneve_are_told_from_ordinary_datagrams() {
        let inner = [0xaa; 14];
        let vxlan = [&[0x08, 0, 0, 0, 0, 0x12, 0x34, 0][..], &inner].concat();
        assert_eq!(
            udp_tunnel(VXLAN_PORT, &vxlan),
            Ok(Some(UdpTunnel::Ethernet(&inner[..])))
        );
        assert!(is_udp_tunnel(VXLAN_PORT, &vxlan));
        // The same bytes to another port, and RTP to the VXLAN port, are ordinary datagrams.
        assert_eq!(udp_tunnel(4790, &vxlan), Ok(None));
        let rtp = [0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1];
        for port in [VXLAN_PORT, GENEVE_PORT] {
            assert_eq!(udp_tunnel(port, &rtp), Ok(None));
            assert!(!is_udp_tunnel(port, &rtp));
        }
        assert_eq!(udp_tunnel(VXLAN_PORT, &vxlan[..7]), Err(Error::Truncated));

        // Geneve with 8 bytes of options, Ethernet, then IPv4, then an OAM message.
        let geneve = |b1: u8, proto: [u8; 2]| {
            [
                &[0x02, b1, proto[0], proto[1], 0, 0, 0x2a, 0][..],
                &[0; 8],
                &inner,
            ]
            .concat()
        };
        let eth = geneve(0, [0x65, 0x58]);
        assert_eq!(
            udp_tunnel(GENEVE_PORT, &eth),
            Ok(Some(UdpTunnel::Ethernet(&inner[..])))
        );
        assert_eq!(
            udp_tunnel(GENEVE_PORT, &geneve(0, [0x08, 0x00])),
            Ok(Some(UdpTunnel::Ip(&inner[..])))
        );
        assert_eq!(
            udp_tunnel(GENEVE_PORT, &geneve(0x80, [0x65, 0x58])),
            Ok(None)
        );
        assert_eq!(udp_tunnel(GENEVE_PORT, &geneve(0, [0x12, 0x34])), Ok(None));
        for n in 1..16 {
            assert_eq!(
                udp_tunnel(GENEVE_PORT, &eth[..n]),
                Err(Error::Truncated),
                "{n}"
            );
        }

        // TZSP as MikroTik's sniffer sends it (the end tag at once), and with a padding tag
        // and a tagged field (signal strength, 1 byte) before the end.
        for head in [&[1, 0, 0, 1, 1][..], &[1, 0, 0, 1, 0, 10, 1, 0xc4, 1][..]] {
            let tzsp = [head, &inner].concat();
            assert_eq!(
                udp_tunnel(TZSP_PORT, &tzsp),
                Ok(Some(UdpTunnel::Ethernet(&inner[..])))
            );
            assert!(is_udp_tunnel(TZSP_PORT, &tzsp));
            for n in 4..head.len() {
                assert_eq!(
                    udp_tunnel(TZSP_PORT, &tzsp[..n]),
                    Err(Error::Truncated),
                    "{n}"
                );
            }
        }
        // Another encapsulation (802.11) or a keepalive is no Ethernet frame: not ours.
        assert_eq!(udp_tunnel(TZSP_PORT, &[1, 0, 0, 18, 1, 0xaa]), Ok(None));
        assert_eq!(udp_tunnel(TZSP_PORT, &[1, 4, 0, 1, 1]), Ok(None));
        assert_eq!(udp_tunnel(TZSP_PORT, &rtp), Ok(None));
    }

    #[test]
    fn gre_key_and_sequence() {
        // Enhanced GRE from vlan-qinq-gre-sip.pcapng: K, S, version 1, PPP, length 444, call 45916.
        let b = [
            0x30, 0x01, 0x88, 0x0b, 0x01, 0xbc, 0xb3, 0x5c, 0x00, 0x00, 0x74, 0xa1, 0xff,
        ];
        let g = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!(g.version(), 1);
        assert_eq!(g.protocol(), EtherType::Ppp);
        assert_eq!(g.key(), Some(0x01bc_b35c));
        assert_eq!(g.sequence(), Some(0x74a1));
        assert_eq!(g.header_len(), 12);
        assert_eq!(g.payload(), &[0xff]);
        for n in 0..12 {
            assert_eq!(GrePacket::new_checked(&b[..n]), Err(Error::Truncated));
        }
    }

    #[test]
    fn gre_checksum_and_bad_versions() {
        let b = [0x80, 0x00, 0x08, 0x00, 0xab, 0xcd, 0x00, 0x00, 0x45];
        let g = GrePacket::new_checked(&b[..]).unwrap();
        assert!(g.checksum_present());
        assert_eq!(g.key(), None);
        assert_eq!(g.payload(), &[0x45]);
        assert_eq!(
            GrePacket::new_checked(&[0x40, 0, 8, 0, 0, 0, 0, 0][..]),
            Err(Error::Unsupported)
        );
        assert_eq!(
            GrePacket::new_checked(&[0x00, 2, 8, 0][..]),
            Err(Error::Unsupported)
        );
        assert_eq!(
            GrePacket::new_checked(&[0x00, 1, 0x88, 0x0b][..]),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn erspan_headers() {
        // Type II: version 1, VLAN 10, session 5, index 0x12345.
        let ii = [0x10, 0x0a, 0x00, 0x05, 0x00, 0x01, 0x23, 0x45, 0xaa];
        let e = ErspanPacket::new_checked(&ii[..], false).unwrap();
        assert_eq!((e.version(), e.vlan_id(), e.session_id()), (1, 10, 5));
        assert_eq!(e.index(), Some(0x12345));
        assert_eq!(e.frame(), Ok(MirroredFrame::Ethernet));
        assert_eq!(e.payload(), &[0xaa]);
        assert_eq!(
            ErspanPacket::new_checked(&ii[..7], false),
            Err(Error::Truncated)
        );
        assert_eq!(
            ErspanPacket::new_checked(&ii[..], true),
            Err(Error::Truncated)
        );

        // Type III: version 2, frame type IP (2), O set so an 8-byte subheader follows.
        let mut iii = vec![0x20, 0x00, 0x00, 0x07, 0, 0, 0, 9, 0x00, 0x2a, 0x08, 0x01];
        iii.extend_from_slice(&[0; 8]);
        iii.push(0x45);
        let e = ErspanPacket::new_checked(&iii[..], true).unwrap();
        assert_eq!(e.session_id(), 7);
        assert_eq!(e.timestamp(), Some(9));
        assert_eq!(e.security_group_tag(), Some(42));
        assert_eq!(e.frame(), Ok(MirroredFrame::Ip));
        assert_eq!(e.payload(), &[0x45]);
        assert_eq!(
            ErspanPacket::new_checked(&iii[..19], true),
            Err(Error::Truncated)
        );
        assert_eq!(
            ErspanPacket::new_checked(&iii[..], false),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn pppoe_and_ppp() {
        let b = [
            0x11, 0x00, 0x83, 0x7a, 0x00, 0x03, 0x00, 0x21, 0x45, 0x00, 0x00,
        ];
        let s = PppoeSession::new_checked(&b[..]).unwrap();
        assert_eq!(s.session_id(), 0x837a);
        assert_eq!(s.payload(), &[0x00, 0x21, 0x45], "cut by LENGTH");
        let p = PppFrame::new_checked(s.payload()).unwrap();
        assert_eq!(p.protocol(), ppp_proto::IPV4);
        assert_eq!(p.payload(), &[0x45]);

        let p = PppFrame::new_checked(&[0xff, 0x03, 0x57, 0x60][..]).unwrap();
        assert_eq!(p.protocol(), ppp_proto::IPV6, "address/control and PFC");
        assert_eq!(p.payload(), &[0x60]);

        for n in 0..9 {
            assert!(PppoeSession::new_checked(&b[..n]).is_err());
        }
        assert_eq!(
            PppoeSession::new_checked(&[0x11, 0x09, 0, 0, 0, 0][..]),
            Err(Error::Malformed)
        );
        assert_eq!(
            PppFrame::new_checked(&[0xff, 0x03][..]),
            Err(Error::Truncated)
        );
        assert_eq!(PppFrame::new_checked(&[0x00][..]), Err(Error::Truncated));
    }
}
