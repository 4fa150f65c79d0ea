//! Checked views over captured bytes, link layer to transport.
//!
//! Every view is built with `new_checked`, which validates lengths once; after that no getter
//! can panic and `payload()` borrows from the frame. Nothing here allocates.

pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod sll;
pub mod tcp;
pub mod tunnel;
pub mod udp;

use ethernet::EtherType;
use std::net::IpAddr;
use tunnel::MirroredFrame;

/// The capture's link layer, from the pcap/pcapng LINKTYPE (tcpdump.org/linktypes.html).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    Ethernet,
    LinuxSll,
    LinuxSll2,
    RawIp,
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    Null,
    /// OpenBSD loopback: the same family, big-endian.
    Loop,
    Unknown(u32),
}

impl LinkType {
    /// The pcap LINKTYPE_ number of frames of this type, for writing them out again (raw IP
    /// read as 12, 14, 228 or 229 is written as 101, which covers both IP versions).
    pub fn to_pcap(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::Unknown(n) => n,
        }
    }

    pub fn from_pcap(linktype: u32) -> LinkType {
        match linktype {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            // LINKTYPE_RAW is 101; 12 and 14 are DLT_RAW on some BSDs; 228/229 are IPv4/IPv6 only.
            12 | 14 | 101 | 228 | 229 => LinkType::RawIp,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            other => LinkType::Unknown(other),
        }
    }
}

/// Why a frame was not decoded. Callers count drops by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A header or a length field runs past the captured bytes.
    Truncated,
    /// A field holds a value no conforming sender produces.
    Malformed,
    /// Valid but not handled: unknown link type, jumbogram, GRE routing, nesting too deep.
    Unsupported,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Unsupported => "unsupported",
        })
    }
}

impl std::error::Error for Error {}

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub mod ip_proto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPV4: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DSTOPTS: u8 = 60;
}

/// TCP control bits (RFC 9293 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;

    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }

    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }

    pub fn psh(self) -> bool {
        self.0 & Self::PSH != 0
    }

    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    Udp {
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
    },
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        flags: TcpFlags,
        payload: &'a [u8],
    },
    Other {
        protocol: u8,
    },
}

/// One IPv4 or IPv6 fragment, for `reasm::Defragmenter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 identification or IPv6 fragment id.
    pub id: u32,
    /// Upper-layer protocol / next header of the fragmentable part.
    pub protocol: u8,
    /// In bytes.
    pub offset: usize,
    pub more: bool,
    pub payload: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    Packet {
        src: IpAddr,
        dst: IpAddr,
        transport: Transport<'a>,
    },
    Fragment(Fragment<'a>),
    /// ARP, LLDP, STP...: not ours, not malformed.
    NotIp,
}

/// Encapsulation steps (tags, tunnels, IP layers) walked before giving up.
pub const MAX_LAYERS: usize = 32;
/// MPLS labels walked before giving up.
pub const MAX_MPLS_LABELS: usize = 8;

/// Big-endian u16 at the start of `b`; callers have checked the length.
pub(crate) fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Big-endian u32 at the start of `b`; callers have checked the length.
pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Walks link → (VLAN/QinQ, any depth up to a bound) → (PPPoE session/PPP) → IPv4/IPv6 →
/// (tunnels: GRE incl. ERSPAN type II and III and transparent Ethernet bridging 0x6558;
/// IP-in-IP proto 4 and 41; VXLAN, Geneve and TZSP on their UDP ports) → UDP/TCP. Returns
/// the innermost packet. IPv6 extension headers (hop-by-hop, routing, destination options,
/// fragment) are walked with a bound.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Decoded<'_>, Error> {
    let first = match link {
        LinkType::Ethernet => {
            if let Some(d) = ethernet_ipv4_udp(frame) {
                return Ok(d);
            }
            Layer::Ethernet(frame)
        }
        LinkType::LinuxSll | LinkType::LinuxSll2 => {
            let version = if link == LinkType::LinuxSll {
                sll::Version::V1
            } else {
                sll::Version::V2
            };
            let p = sll::Packet::new_checked(frame, version)?;
            if p.hardware_type() == sll::ARPHRD_NETLINK {
                return Ok(Decoded::NotIp);
            }
            Layer::EtherType(p.protocol(), p.payload())
        }
        LinkType::RawIp => Layer::Ip(frame),
        LinkType::Null | LinkType::Loop => {
            let head = frame.get(..4).ok_or(Error::Truncated)?;
            let head = [head[0], head[1], head[2], head[3]];
            let family = if link == LinkType::Loop {
                u32::from_be_bytes(head)
            } else {
                // Host byte order of an unknown host: families are small, so the nonzero half tells.
                let le = u32::from_le_bytes(head);
                if le <= 0xffff {
                    le
                } else {
                    u32::from_be_bytes(head)
                }
            };
            match family {
                2 => Layer::Ipv4(&frame[4..]),
                // AF_INET6 is 10 on Linux, 24 on NetBSD/OpenBSD, 28 on FreeBSD, 30 on macOS.
                10 | 24 | 28 | 30 => Layer::Ipv6(&frame[4..]),
                _ => return Ok(Decoded::NotIp),
            }
        }
        LinkType::Unknown(_) => return Err(Error::Unsupported),
    };
    walk(first)
}

/// The frame nearly every packet is, Ethernet, IPv4 and UDP, read by the same typed views as
/// [`walk`] but without its steps: `None` for anything else, or anything they refuse, which
/// the walk then reads (and refuses alike).
#[inline]
fn ethernet_ipv4_udp(frame: &[u8]) -> Option<Decoded<'_>> {
    // Read from the bytes with the checks the views make (a proptest holds it to the walk):
    // through the views it cost about 145 instructions a frame, each getter checking again.
    let (eth, ip) = frame.split_at_checked(ethernet::HEADER_LEN)?;
    if eth[12..14] != [0x08, 0x00] || ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    // RFC 791: a header of 20 to 60 bytes; a total length of 0 is what segmentation offload
    // leaves in a capture (the frame's length then); not a fragment; UDP.
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let total = match usize::from(be16(&ip[2..4])) {
        0 => ip.len(),
        n => n,
    };
    if header_len < 20
        || total < header_len
        || total > ip.len()
        || be16(&ip[6..8]) & 0x3fff != 0
        || ip[9] != ip_proto::UDP
    {
        return None;
    }
    let udp = &ip[header_len..total];
    if udp.len() < udp::HEADER_LEN {
        return None;
    }
    // RFC 768 length: 0, or more than IP carried, means IP's; a shorter one cuts padding.
    let len = match usize::from(be16(&udp[4..6])) {
        0 => udp.len(),
        n => n.min(udp.len()),
    };
    let dst_port = be16(&udp[2..4]);
    if len < udp::HEADER_LEN || tunnel::is_udp_tunnel(dst_port, &udp[udp::HEADER_LEN..len]) {
        return None;
    }
    Some(Decoded::Packet {
        src: IpAddr::V4(std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
        dst: IpAddr::V4(std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
        transport: Transport::Udp {
            src_port: be16(&udp[0..2]),
            dst_port,
            payload: &udp[udp::HEADER_LEN..len],
        },
    })
}

/// Parses the transport header of a reassembled datagram's payload (after defragmentation).
/// IPv6 extension headers that followed the fragment header are walked first.
pub fn decode_transport(protocol: u8, payload: &[u8]) -> Result<Transport<'_>, Error> {
    let (protocol, payload) = if ipv6::is_extension_header(protocol) {
        match ipv6::walk_extensions(protocol, payload)? {
            ipv6::Upper::Payload { protocol, payload } => (protocol, payload),
            // A fragment header inside a reassembled fragment is nonsense (RFC 8200 §4.5).
            ipv6::Upper::Fragment { .. } => return Err(Error::Malformed),
        }
    } else {
        (protocol, payload)
    };
    transport(protocol, payload)
}

/// Like [`decode`] for a reassembled datagram: also walks tunnels (GRE, IP-in-IP) in `payload`,
/// so a fragmented outer tunnel packet still yields its inner packet.
pub fn decode_datagram(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    payload: &[u8],
) -> Result<Decoded<'_>, Error> {
    walk(Layer::IpPayload {
        src,
        dst,
        protocol,
        payload,
    })
}

fn transport(protocol: u8, payload: &[u8]) -> Result<Transport<'_>, Error> {
    match protocol {
        ip_proto::UDP => {
            let p = udp::Packet::new_checked(payload)?;
            Ok(Transport::Udp {
                src_port: p.src_port(),
                dst_port: p.dst_port(),
                payload: p.payload(),
            })
        }
        ip_proto::TCP => {
            let p = tcp::Packet::new_checked(payload)?;
            Ok(Transport::Tcp {
                src_port: p.src_port(),
                dst_port: p.dst_port(),
                seq: p.seq_number(),
                flags: p.flags(),
                payload: p.payload(),
            })
        }
        protocol => Ok(Transport::Other { protocol }),
    }
}

/// The next thing to parse; each step borrows from the original frame.
#[derive(Clone, Copy, Debug)]
enum Layer<'a> {
    Ethernet(&'a [u8]),
    EtherType(EtherType, &'a [u8]),
    /// IPv4 or IPv6, told by the version nibble.
    Ip(&'a [u8]),
    Ipv4(&'a [u8]),
    Ipv6(&'a [u8]),
    Ppp(&'a [u8]),
    Mpls(&'a [u8]),
    Gre(&'a [u8]),
    IpPayload {
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        payload: &'a [u8],
    },
}

enum Step<'a> {
    Next(Layer<'a>),
    Done(Decoded<'a>),
}

fn walk(mut layer: Layer<'_>) -> Result<Decoded<'_>, Error> {
    for _ in 0..MAX_LAYERS {
        match step(layer)? {
            Step::Next(next) => layer = next,
            Step::Done(decoded) => return Ok(decoded),
        }
    }
    // Deeper than any real encapsulation: a crafted loop of tags or tunnels.
    Err(Error::Unsupported)
}

fn step(layer: Layer<'_>) -> Result<Step<'_>, Error> {
    use Step::{Done, Next};
    Ok(match layer {
        Layer::Ethernet(buf) => {
            let f = ethernet::Frame::new_checked(buf)?;
            Next(Layer::EtherType(f.ethertype(), f.payload()))
        }
        Layer::EtherType(ethertype, buf) => match ethertype {
            EtherType::Ipv4 => Next(Layer::Ipv4(buf)),
            EtherType::Ipv6 => Next(Layer::Ipv6(buf)),
            EtherType::Vlan | EtherType::ServiceVlan | EtherType::QinQLegacy => {
                let tag = ethernet::VlanTag::new_checked(buf)?;
                Next(Layer::EtherType(tag.ethertype(), tag.payload()))
            }
            EtherType::PppoeSession => Next(Layer::Ppp(
                tunnel::PppoeSession::new_checked(buf)?.payload(),
            )),
            EtherType::Ppp => Next(Layer::Ppp(buf)),
            EtherType::Mpls => Next(Layer::Mpls(buf)),
            EtherType::TransparentEthernet => Next(Layer::Ethernet(buf)),
            _ => Done(Decoded::NotIp),
        },
        Layer::Ip(buf) => match buf.first().map(|b| b >> 4) {
            Some(4) => Next(Layer::Ipv4(buf)),
            Some(6) => Next(Layer::Ipv6(buf)),
            Some(_) => return Err(Error::Malformed),
            None => return Err(Error::Truncated),
        },
        Layer::Ipv4(buf) => {
            let p = ipv4::Packet::new_checked(buf)?;
            let (src, dst) = (IpAddr::V4(p.src_addr()), IpAddr::V4(p.dst_addr()));
            if p.is_fragment() {
                Done(Decoded::Fragment(Fragment {
                    src,
                    dst,
                    id: u32::from(p.ident()),
                    protocol: p.protocol(),
                    offset: p.frag_offset(),
                    more: p.more_frags(),
                    payload: p.payload(),
                }))
            } else {
                Next(Layer::IpPayload {
                    src,
                    dst,
                    protocol: p.protocol(),
                    payload: p.payload(),
                })
            }
        }
        Layer::Ipv6(buf) => {
            let p = ipv6::Packet::new_checked(buf)?;
            let (src, dst) = (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()));
            ipv6_upper(src, dst, p.next_header(), p.payload())?
        }
        Layer::IpPayload {
            src,
            dst,
            protocol,
            payload,
        } => match protocol {
            ip_proto::IPV4 => Next(Layer::Ipv4(payload)),
            ip_proto::IPV6 => Next(Layer::Ipv6(payload)),
            ip_proto::GRE => Next(Layer::Gre(payload)),
            p if src.is_ipv6() && ipv6::is_extension_header(p) => ipv6_upper(src, dst, p, payload)?,
            _ => {
                let transport = transport(protocol, payload)?;
                if let Transport::Udp {
                    dst_port,
                    payload: datagram,
                    ..
                } = transport
                {
                    match tunnel::udp_tunnel(dst_port, datagram)? {
                        Some(tunnel::UdpTunnel::Ethernet(inner)) => {
                            return Ok(Next(Layer::Ethernet(inner)));
                        }
                        Some(tunnel::UdpTunnel::Ip(inner)) => return Ok(Next(Layer::Ip(inner))),
                        None => {}
                    }
                }
                Done(Decoded::Packet {
                    src,
                    dst,
                    transport,
                })
            }
        },
        Layer::Gre(buf) => {
            let g = tunnel::GrePacket::new_checked(buf)?;
            match g.protocol() {
                // Without a sequence number 0x88be is ERSPAN type I: no header at all.
                EtherType::ErspanII if !g.sequence_present() => Next(Layer::Ethernet(g.payload())),
                EtherType::ErspanII | EtherType::ErspanIII => {
                    let type3 = g.protocol() == EtherType::ErspanIII;
                    let e = tunnel::ErspanPacket::new_checked(g.payload(), type3)?;
                    match e.frame()? {
                        MirroredFrame::Ethernet => Next(Layer::Ethernet(e.payload())),
                        MirroredFrame::Ip => Next(Layer::Ip(e.payload())),
                    }
                }
                ethertype => Next(Layer::EtherType(ethertype, g.payload())),
            }
        }
        Layer::Ppp(buf) => {
            let p = tunnel::PppFrame::new_checked(buf)?;
            match p.protocol() {
                tunnel::ppp_proto::IPV4 => Next(Layer::Ipv4(p.payload())),
                tunnel::ppp_proto::IPV6 => Next(Layer::Ipv6(p.payload())),
                // LCP, IPCP, CHAP...: PPP control traffic.
                _ => Done(Decoded::NotIp),
            }
        }
        Layer::Mpls(mut buf) => {
            // Label stack entries until bottom-of-stack (RFC 3032 §2.1), then IP by version nibble.
            for _ in 0..MAX_MPLS_LABELS {
                let entry = buf.get(..4).ok_or(Error::Truncated)?;
                let bottom = entry[2] & 1 != 0;
                buf = &buf[4..];
                if bottom {
                    return Ok(match buf.first().map(|b| b >> 4) {
                        Some(4 | 6) => Next(Layer::Ip(buf)),
                        Some(_) => return Err(Error::Unsupported),
                        None => return Err(Error::Truncated),
                    });
                }
            }
            return Err(Error::Unsupported);
        }
    })
}

fn ipv6_upper<'a>(
    src: IpAddr,
    dst: IpAddr,
    next: u8,
    payload: &'a [u8],
) -> Result<Step<'a>, Error> {
    Ok(match ipv6::walk_extensions(next, payload)? {
        ipv6::Upper::Payload { protocol, payload } => Step::Next(Layer::IpPayload {
            src,
            dst,
            protocol,
            payload,
        }),
        ipv6::Upper::Fragment {
            protocol,
            ident,
            offset,
            more,
            payload,
        } => Step::Done(Decoded::Fragment(Fragment {
            src,
            dst,
            id: ident,
            protocol,
            offset,
            more,
            payload,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    proptest! {
        /// The Ethernet/IPv4/UDP shortcut reads every frame as the walk does: an IPv4 UDP
        /// frame with any byte changed, cut short or padded.
        #[test]
        fn shortcut_reads_as_the_walk(at in 0usize..48, byte: u8, cut in 0usize..56, pad in 0usize..8) {
            let mut frame = ETH_IPV4.to_vec();
            frame.extend_from_slice(&SIP_UDP4);
            let at = at % frame.len();
            frame[at] = byte;
            frame.truncate(cut.max(1).min(frame.len()));
            frame.extend(std::iter::repeat_n(0u8, pad));
            let walked = walk(Layer::Ethernet(&frame));
            match ethernet_ipv4_udp(&frame) {
                Some(d) => prop_assert_eq!(Ok(d), walked),
                None => {
                    // What the shortcut leaves is no plain IPv4 UDP packet to the walk either.
                    let plain_udp = frame.get(12..14) == Some(&[0x08, 0x00][..])
                        && matches!(walked, Ok(Decoded::Packet { transport: Transport::Udp { .. }, .. }));
                    prop_assert!(!plain_udp);
                }
            }
        }
    }

    /// Every byte of the headers set to every value, each frame cut at every length: the
    /// shortcut and the walk agree (a UDP packet from both, or none from the shortcut and no
    /// plain IPv4 UDP packet from the walk).
    #[test]
    fn shortcut_reads_as_the_walk_for_every_header_byte() {
        let mut base = ETH_IPV4.to_vec();
        base.extend_from_slice(&SIP_UDP4);
        let headers = 14 + 20 + 8;
        for at in 0..headers {
            for byte in 0..=255u8 {
                let mut frame = base.clone();
                frame[at] = byte;
                for cut in (1..=frame.len()).rev() {
                    let f = &frame[..cut];
                    let walked = walk(Layer::Ethernet(f));
                    match ethernet_ipv4_udp(f) {
                        Some(d) => assert_eq!(Ok(d), walked, "byte {at} = {byte}, cut {cut}"),
                        None => assert!(
                            !(f.get(12..14) == Some(&[0x08, 0x00][..])
                                && matches!(
                                    walked,
                                    Ok(Decoded::Packet {
                                        transport: Transport::Udp { .. },
                                        ..
                                    })
                                )),
                            "byte {at} = {byte}, cut {cut}: {walked:?}"
                        ),
                    }
                }
            }
        }
    }

    const ETH_IPV4: [u8; 14] = [
        0x00, 0x50, 0x56, 0x94, 0x8b, 0x61, 0x48, 0x7a, 0xda, 0x95, 0x87, 0x8d, 0x08, 0x00,
    ];
    const ETH_IPV6: [u8; 14] = [
        0x00, 0x50, 0x56, 0x94, 0x8b, 0x61, 0x48, 0x7a, 0xda, 0x95, 0x87, 0x8d, 0x86, 0xdd,
    ];
    /// 10.0.0.1:5060 -> 10.0.0.2:5060, UDP, "INVITE".
    const SIP_UDP4: [u8; 34] = [
        0x45, 0x00, 0x00, 0x22, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00,
        0x00, // IPv4, 34 bytes
        0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, // 10.0.0.1 -> 10.0.0.2
        0x13, 0xc4, 0x13, 0xc4, 0x00, 0x0e, 0x00, 0x00, // UDP 5060 -> 5060, 14 bytes
        b'I', b'N', b'V', b'I', b'T', b'E',
    ];
    /// [2001:db8::1]:5060 -> [2001:db8::2]:5060, UDP, "INVITE".
    const SIP_UDP6: [u8; 54] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x11, 0x40, // IPv6, payload 14, UDP
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0x13, 0xc4, 0x13, 0xc4, 0x00, 0x0e, 0x00, 0x00, //
        b'I', b'N', b'V', b'I', b'T', b'E',
    ];
    /// 10.0.0.1:5060 -> 10.0.0.2:40000, TCP with NOP NOP timestamps, PSH|ACK, "SIP/2.0".
    const SIP_TCP4: [u8; 59] = [
        0x45, 0x00, 0x00, 0x3b, 0x00, 0x02, 0x40, 0x00, 0x40, 0x06, 0x00,
        0x00, // IPv4, 59 bytes, DF
        0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, //
        0x13, 0xc4, 0x9c, 0x40, 0xff, 0xff, 0xff, 0xf0, // 5060 -> 40000, seq 2^32 - 16
        0x00, 0x00, 0x00, 0x01, 0x80, 0x18, 0x01, 0xf5, // ack, offset 8, PSH|ACK, window
        0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, // checksum, urgent, NOP NOP TS
        0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x03, //
        b'S', b'I', b'P', b'/', b'2', b'.', b'0',
    ];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// An outer IPv4 header 192.0.2.1 -> 192.0.2.2 around `payload`.
    fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).expect("test packet fits");
        let mut v = vec![
            0x45, 0, 0, 0, 0, 0x2a, 0x40, 0x00, 64, protocol, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        v[2..4].copy_from_slice(&total.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// A UDP header around `payload` (checksum 0, as tunnel endpoints send it).
    fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(8 + payload.len()).expect("test datagram fits");
        let mut v = [
            src_port.to_be_bytes(),
            dst_port.to_be_bytes(),
            len.to_be_bytes(),
            [0, 0],
        ]
        .concat();
        v.extend_from_slice(payload);
        v
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse::<Ipv6Addr>().expect("test address"))
    }

    fn expect_invite4(d: Result<Decoded<'_>, Error>) {
        assert_eq!(
            d,
            Ok(Decoded::Packet {
                src: v4(10, 0, 0, 1),
                dst: v4(10, 0, 0, 2),
                transport: Transport::Udp {
                    src_port: 5060,
                    dst_port: 5060,
                    payload: b"INVITE"
                },
            })
        );
    }

    fn expect_invite6(d: Result<Decoded<'_>, Error>) {
        assert_eq!(
            d,
            Ok(Decoded::Packet {
                src: v6("2001:db8::1"),
                dst: v6("2001:db8::2"),
                transport: Transport::Udp {
                    src_port: 5060,
                    dst_port: 5060,
                    payload: b"INVITE"
                },
            })
        );
    }

    /// An Ethernet/IPv4/UDP frame to a tunnel's `port`, carrying `tunnel_and_inner`.
    fn udp_tunnel_frame(port: u16, tunnel_and_inner: &[u8]) -> Vec<u8> {
        cat(&[
            &ETH_IPV4,
            &ipv4(ip_proto::UDP, &udp(40123, port, tunnel_and_inner)),
        ])
    }

    fn gre_frame(gre_and_inner: &[u8]) -> Vec<u8> {
        cat(&[&ETH_IPV4, &ipv4(ip_proto::GRE, gre_and_inner)])
    }

    /// Every well-formed frame used below: none has trailing padding, so every strict prefix must fail.
    fn samples() -> Vec<(&'static str, LinkType, Vec<u8>)> {
        let inner_eth = cat(&[&ETH_IPV4, &SIP_UDP4]);
        vec![
            ("ethernet", LinkType::Ethernet, cat(&[&ETH_IPV4, &SIP_UDP4])),
            (
                "ethernet ipv6",
                LinkType::Ethernet,
                cat(&[&ETH_IPV6, &SIP_UDP6]),
            ),
            ("tcp", LinkType::Ethernet, cat(&[&ETH_IPV4, &SIP_TCP4])),
            (
                "802.1q",
                LinkType::Ethernet,
                cat(&[
                    &ETH_IPV4[..12],
                    &[0x81, 0x00, 0x20, 0x9b, 0x08, 0x00],
                    &SIP_UDP4,
                ]),
            ),
            (
                "qinq 88a8",
                LinkType::Ethernet,
                cat(&[
                    &ETH_IPV4[..12],
                    &[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00],
                    &SIP_UDP4,
                ]),
            ),
            (
                "qinq 9100",
                LinkType::Ethernet,
                cat(&[
                    &ETH_IPV4[..12],
                    &[0x91, 0x00, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x86, 0xdd],
                    &SIP_UDP6,
                ]),
            ),
            (
                "sll",
                LinkType::LinuxSll,
                cat(&[
                    &[
                        0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x00, 0x0c, 0x29, 0x12, 0x34, 0x56, 0,
                        0,
                    ],
                    &[0x86, 0xdd],
                    &SIP_UDP6,
                ]),
            ),
            (
                "sll2",
                LinkType::LinuxSll2,
                cat(&[
                    &[
                        0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x04, 0x06,
                    ],
                    &[0x00, 0x0c, 0x29, 0x12, 0x34, 0x56, 0, 0],
                    &SIP_UDP4,
                ]),
            ),
            ("null le", LinkType::Null, cat(&[&[2, 0, 0, 0], &SIP_UDP4])),
            (
                "null be ipv6",
                LinkType::Null,
                cat(&[&[0, 0, 0, 30], &SIP_UDP6]),
            ),
            ("loop", LinkType::Loop, cat(&[&[0, 0, 0, 2], &SIP_UDP4])),
            ("raw", LinkType::RawIp, SIP_UDP6.to_vec()),
            (
                "pppoe in qinq",
                LinkType::Ethernet,
                cat(&[
                    &ETH_IPV4[..12],
                    &[0x81, 0x00, 0x00, 0x9b, 0x81, 0x00, 0x00, 0x01, 0x88, 0x64],
                    &[0x11, 0x00, 0x83, 0x7a, 0x00, 0x24, 0x00, 0x21], // session, length 36, IPv4
                    &SIP_UDP4,
                ]),
            ),
            (
                "gre teb",
                LinkType::Ethernet,
                gre_frame(&cat(&[&[0x20, 0x00, 0x65, 0x58, 0, 0, 0, 0], &inner_eth])),
            ),
            (
                "erspan i",
                LinkType::Ethernet,
                gre_frame(&cat(&[&[0x00, 0x00, 0x88, 0xbe], &inner_eth])),
            ),
            (
                "erspan ii",
                LinkType::Ethernet,
                gre_frame(&cat(&[
                    &[0x10, 0x00, 0x88, 0xbe, 0x00, 0x00, 0x00, 0x01], // S, ERSPAN, seq 1
                    &[0x10, 0x0a, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00], // v1, VLAN 10, session 5
                    &inner_eth,
                ])),
            ),
            (
                "erspan iii",
                LinkType::Ethernet,
                gre_frame(&cat(&[
                    &[0x10, 0x00, 0x22, 0xeb, 0x00, 0x00, 0x00, 0x01],
                    &[
                        0x20, 0x0a, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                    ],
                    &inner_eth,
                ])),
            ),
            (
                "erspan iii ip with subheader",
                LinkType::Ethernet,
                gre_frame(&cat(&[
                    &[0x10, 0x00, 0x22, 0xeb, 0x00, 0x00, 0x00, 0x01],
                    &[
                        0x20, 0x0a, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x08, 0x01,
                    ],
                    &[0; 8],
                    &SIP_UDP4,
                ])),
            ),
            (
                "gre v1 ppp",
                LinkType::Ethernet,
                gre_frame(&cat(&[
                    &[
                        0x30, 0x01, 0x88, 0x0b, 0x00, 0x26, 0xb3, 0x5c, 0x00, 0x00, 0x74, 0xa1,
                    ],
                    &[0xff, 0x03, 0x00, 0x21],
                    &SIP_UDP4,
                ])),
            ),
            (
                "gre ipv6",
                LinkType::Ethernet,
                gre_frame(&cat(&[&[0x00, 0x00, 0x86, 0xdd], &SIP_UDP6])),
            ),
            (
                "ipip",
                LinkType::Ethernet,
                cat(&[&ETH_IPV4, &ipv4(ip_proto::IPV4, &SIP_UDP4)]),
            ),
            (
                "6in4",
                LinkType::Ethernet,
                cat(&[&ETH_IPV4, &ipv4(ip_proto::IPV6, &SIP_UDP6)]),
            ),
            (
                "vxlan",
                LinkType::Ethernet,
                udp_tunnel_frame(
                    tunnel::VXLAN_PORT,
                    &cat(&[&[0x08, 0, 0, 0, 0, 0, 0x64, 0], &inner_eth]),
                ),
            ),
            (
                "geneve ipv6 with an option",
                LinkType::Ethernet,
                udp_tunnel_frame(
                    tunnel::GENEVE_PORT,
                    &cat(&[&[0x01, 0, 0x86, 0xdd, 0, 0, 0x64, 0], &[0; 4], &SIP_UDP6]),
                ),
            ),
            (
                "tzsp",
                LinkType::Ethernet,
                udp_tunnel_frame(tunnel::TZSP_PORT, &cat(&[&[1, 0, 0, 1, 1], &inner_eth])),
            ),
            (
                "mpls",
                LinkType::Ethernet,
                cat(&[
                    &ETH_IPV4[..12],
                    &[0x88, 0x47, 0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40],
                    &SIP_UDP4,
                ]),
            ),
        ]
    }

    #[test]
    fn every_sample_decodes_to_its_invite() {
        for (name, link, frame) in samples() {
            let d = decode(link, &frame);
            match d {
                Ok(Decoded::Packet {
                    src: IpAddr::V6(_), ..
                }) => expect_invite6(d),
                Ok(Decoded::Packet {
                    transport: Transport::Tcp { .. },
                    ..
                }) => {}
                _ => expect_invite4(d),
            }
            let _ = name;
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for (name, link, frame) in samples() {
            for n in 0..frame.len() {
                let d = decode(link, &frame[..n]);
                assert!(d.is_err(), "{name}: prefix of {n} bytes gave {d:?}");
            }
        }
    }

    /// A datagram to a tunnel port that is no tunnel packet (RTP from a relay that picked
    /// 4789 or 6081) is read as the datagram it is, by the shortcut and the walk alike.
    #[test]
    fn rtp_on_a_tunnel_port_is_plain_udp() {
        let rtp = [0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0xa0, 0, 0, 0, 1];
        for port in [tunnel::VXLAN_PORT, tunnel::GENEVE_PORT] {
            let frame = cat(&[&ETH_IPV4, &ipv4(ip_proto::UDP, &udp(30000, port, &rtp))]);
            let want = Ok(Decoded::Packet {
                src: v4(192, 0, 2, 1),
                dst: v4(192, 0, 2, 2),
                transport: Transport::Udp {
                    src_port: 30000,
                    dst_port: port,
                    payload: &rtp[..],
                },
            });
            assert_eq!(ethernet_ipv4_udp(&frame).ok_or(Error::Unsupported), want);
            assert_eq!(walk(Layer::Ethernet(&frame)), want);
        }
    }

    #[test]
    fn tcp_with_options() {
        let frame = cat(&[&ETH_IPV4, &SIP_TCP4]);
        assert_eq!(
            decode(LinkType::Ethernet, &frame),
            Ok(Decoded::Packet {
                src: v4(10, 0, 0, 1),
                dst: v4(10, 0, 0, 2),
                transport: Transport::Tcp {
                    src_port: 5060,
                    dst_port: 40000,
                    seq: 0xffff_fff0,
                    flags: TcpFlags(TcpFlags::PSH | TcpFlags::ACK),
                    payload: b"SIP/2.0",
                },
            })
        );
    }

    #[test]
    fn ipv4_options_and_ethernet_padding() {
        // IHL 6 (Router Alert), then 60-byte minimum frame padding.
        let mut ip = vec![
            0x46, 0x00, 0x00, 0x26, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00,
        ];
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0x94, 0x04, 0x00, 0x00]);
        ip.extend_from_slice(&SIP_UDP4[20..]);
        let mut frame = cat(&[&ETH_IPV4, &ip]);
        frame.resize(60, 0);
        expect_invite4(decode(LinkType::Ethernet, &frame));
        // UDP length larger than the IP payload: the IP length wins.
        let mut bad = frame.clone();
        bad[14 + 24 + 5] = 0x40;
        expect_invite4(decode(LinkType::Ethernet, &bad));
        // UDP length below its own header.
        bad[14 + 24 + 5] = 0x04;
        assert_eq!(decode(LinkType::Ethernet, &bad), Err(Error::Malformed));
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment: MF, offset 0, carries the UDP header.
        let mut first = SIP_UDP4;
        first[6] = 0x20;
        let d = decode(LinkType::RawIp, &first);
        assert_eq!(
            d,
            Ok(Decoded::Fragment(Fragment {
                src: v4(10, 0, 0, 1),
                dst: v4(10, 0, 0, 2),
                id: 1,
                protocol: ip_proto::UDP,
                offset: 0,
                more: true,
                payload: &SIP_UDP4[20..],
            }))
        );
        // Last fragment at offset 1480: data only, never read as UDP.
        let mut last = SIP_UDP4;
        last[6] = 0x00;
        last[7] = 0xb9;
        match decode(LinkType::RawIp, &last) {
            Ok(Decoded::Fragment(f)) => {
                assert_eq!((f.offset, f.more, f.payload.len()), (1480, false, 14))
            }
            other => panic!("expected a fragment, got {other:?}"),
        }
    }

    #[test]
    fn ipv6_hop_by_hop_and_fragment() {
        let frame = cat(&[
            &ETH_IPV6,
            &[0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x40], // payload 24, next HBH
            &SIP_UDP6[8..40],
            &[0x2c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00], // HBH, PadN
            &[0x11, 0x00, 0x00, 0x01, 0x00, 0x00, 0x30, 0x39], // Frag: UDP, offset 0, M, id 12345
            &SIP_UDP6[40..48],
        ]);
        assert_eq!(
            decode(LinkType::Ethernet, &frame),
            Ok(Decoded::Fragment(Fragment {
                src: v6("2001:db8::1"),
                dst: v6("2001:db8::2"),
                id: 12345,
                protocol: ip_proto::UDP,
                offset: 0,
                more: true,
                payload: &SIP_UDP6[40..48],
            }))
        );
        for n in 0..frame.len() {
            assert!(decode(LinkType::Ethernet, &frame[..n]).is_err());
        }
        // Routing + destination options before a plain UDP payload.
        let frame = cat(&[
            &ETH_IPV6,
            &[0x60, 0x00, 0x00, 0x00, 0x00, 0x2e, 0x2b, 0x40], // payload 46, next routing
            &SIP_UDP6[8..40],
            &[0x3c, 0x02, 0x00, 0x00, 0, 0, 0, 0], // routing, len 2 (24 bytes), next dst opts
            &[0; 16],
            &[0x11, 0x00, 0x01, 0x04, 0, 0, 0, 0], // dst opts, next UDP
            &SIP_UDP6[40..],
        ]);
        expect_invite6(decode(LinkType::Ethernet, &frame));
        // Jumbogram.
        let mut jumbo = frame.clone();
        jumbo[14 + 4] = 0;
        jumbo[14 + 5] = 0;
        jumbo[14 + 6] = 0;
        assert_eq!(decode(LinkType::Ethernet, &jumbo), Err(Error::Unsupported));
    }

    #[test]
    fn not_ip() {
        let arp = cat(&[&ETH_IPV4[..12], &[0x08, 0x06], &[0; 28]]);
        assert_eq!(decode(LinkType::Ethernet, &arp), Ok(Decoded::NotIp));
        let stp = cat(&[&ETH_IPV4[..12], &[0x00, 0x26, 0x42, 0x42, 0x03]]);
        assert_eq!(decode(LinkType::Ethernet, &stp), Ok(Decoded::NotIp));
        let lcp = cat(&[
            &ETH_IPV4[..12],
            &[0x88, 0x64, 0x11, 0x00, 0x00, 0x01, 0x00, 0x02, 0xc0, 0x21],
        ]);
        assert_eq!(decode(LinkType::Ethernet, &lcp), Ok(Decoded::NotIp));
        assert_eq!(
            decode(LinkType::Null, &[0x18, 0, 0, 0]),
            Err(Error::Truncated)
        );
        assert_eq!(
            decode(LinkType::Null, &[0x07, 0, 0, 0, 1]),
            Ok(Decoded::NotIp)
        );
        assert_eq!(
            decode(LinkType::Unknown(147), &SIP_UDP4),
            Err(Error::Unsupported)
        );
        assert_eq!(decode(LinkType::RawIp, &[0x55]), Err(Error::Malformed));
    }

    #[test]
    fn other_transport_is_reported() {
        let frame = ipv4(ip_proto::ICMP, &[8, 0, 0, 0]);
        assert!(matches!(
            decode(LinkType::RawIp, &frame),
            Ok(Decoded::Packet {
                transport: Transport::Other { protocol: 1 },
                ..
            })
        ));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut tags = Vec::new();
        for _ in 0..40 {
            tags.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        }
        let frame = cat(&[&ETH_IPV4[..12], &tags, &[0x08, 0x00], &SIP_UDP4]);
        assert_eq!(decode(LinkType::Ethernet, &frame), Err(Error::Unsupported));
        let frame = cat(&[&ETH_IPV4[..12], &tags[..20], &[0x08, 0x00], &SIP_UDP4]);
        expect_invite4(decode(LinkType::Ethernet, &frame));

        let mut ip = SIP_UDP4.to_vec();
        for _ in 0..20 {
            ip = ipv4(ip_proto::IPV4, &ip);
        }
        assert_eq!(decode(LinkType::RawIp, &ip), Err(Error::Unsupported));
    }

    #[test]
    fn reassembled_payloads() {
        assert_eq!(
            decode_transport(ip_proto::UDP, &SIP_UDP4[20..]),
            Ok(Transport::Udp {
                src_port: 5060,
                dst_port: 5060,
                payload: b"INVITE"
            })
        );
        // IPv6: destination options after the fragment header are part of the fragmentable part.
        let with_opts = cat(&[&[0x11, 0x00, 0x01, 0x04, 0, 0, 0, 0], &SIP_UDP6[40..]]);
        assert_eq!(
            decode_transport(ip_proto::DSTOPTS, &with_opts),
            Ok(Transport::Udp {
                src_port: 5060,
                dst_port: 5060,
                payload: b"INVITE"
            })
        );
        assert_eq!(
            decode_transport(ip_proto::UDP, &SIP_UDP4[20..25]),
            Err(Error::Truncated)
        );
        assert_eq!(
            decode_transport(ip_proto::GRE, b"x"),
            Ok(Transport::Other { protocol: 47 })
        );
        // A fragmented GRE packet, once reassembled, still yields the inner INVITE.
        let gre = cat(&[&[0x00, 0x00, 0x08, 0x00], &SIP_UDP4]);
        expect_invite4(decode_datagram(
            v4(192, 0, 2, 1),
            v4(192, 0, 2, 2),
            ip_proto::GRE,
            &gre,
        ));
    }

    #[test]
    fn link_types() {
        assert_eq!(LinkType::from_pcap(1), LinkType::Ethernet);
        assert_eq!(LinkType::from_pcap(113), LinkType::LinuxSll);
        assert_eq!(LinkType::from_pcap(276), LinkType::LinuxSll2);
        for raw in [12, 14, 101, 228, 229] {
            assert_eq!(LinkType::from_pcap(raw), LinkType::RawIp);
        }
        assert_eq!(LinkType::from_pcap(0), LinkType::Null);
        assert_eq!(LinkType::from_pcap(108), LinkType::Loop);
        assert_eq!(LinkType::from_pcap(127), LinkType::Unknown(127));
    }

    const LINKS: [LinkType; 7] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Null,
        LinkType::Loop,
        LinkType::Unknown(9),
    ];

    /// Any slice `decode` hands back must point into the frame it was given.
    fn assert_inside(frame: &[u8], d: &Decoded<'_>) {
        let payload = match d {
            Decoded::Packet {
                transport: Transport::Udp { payload, .. },
                ..
            }
            | Decoded::Packet {
                transport: Transport::Tcp { payload, .. },
                ..
            }
            | Decoded::Fragment(Fragment { payload, .. }) => *payload,
            _ => return,
        };
        let outer = frame.as_ptr_range();
        let inner = payload.as_ptr_range();
        assert!(
            outer.start <= inner.start && inner.end <= outer.end,
            "payload escapes the frame"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(link in 0..LINKS.len(), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(d) = decode(LINKS[link], &bytes) {
                assert_inside(&bytes, &d);
            }
        }

        #[test]
        fn mutated_samples_never_panic(
            which in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let samples = samples();
            let (_, link, mut frame) = samples[which.index(samples.len())].clone();
            for (at, x) in flips {
                let i = at.index(frame.len());
                frame[i] ^= x;
            }
            frame.truncate(cut.index(frame.len() + 1));
            if let Ok(d) = decode(link, &frame) {
                assert_inside(&frame, &d);
            }
            let _ = decode_transport(frame.first().copied().unwrap_or(0), &frame);
        }
    }
}
