//! Frame builders: Ethernet (+802.1Q / 802.1ad tags), IPv4 (+fragmentation),
//! IPv6, UDP and TCP, with valid header and transport checksums.
//! Also a small decoder used by the unit tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// 802.1Q customer VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;
/// 802.1ad service (outer, QinQ) tag.
pub const TPID_8021AD: u16 = 0x88A8;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Ethernet MTU used for IPv4 fragmentation decisions.
pub const MTU: usize = 1500;

pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// One VLAN tag: (TPID, VLAN id). Tags are listed outermost first.
pub type VlanTag = (u16, u16);

/// Locally administered MAC derived from an IP address (stable per host).
pub fn mac_for(ip: IpAddr) -> [u8; 6] {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            [0x02, 0x00, o[0], o[1], o[2], o[3]]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [0x02, 0x06, o[12], o[13], o[14], o[15]]
        }
    }
}

/// RFC 1071 Internet checksum accumulator over a sequence of byte slices
/// (treated as one concatenated buffer).
#[derive(Default)]
pub struct Checksum {
    sum: u64,
    pending: Option<u8>,
}

impl Checksum {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, mut data: &[u8]) -> &mut Self {
        if let Some(hi) = self.pending.take() {
            if let Some((&lo, rest)) = data.split_first() {
                self.sum += u16::from_be_bytes([hi, lo]) as u64;
                data = rest;
            } else {
                self.pending = Some(hi);
                return self;
            }
        }
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            self.sum += u16::from_be_bytes([c[0], c[1]]) as u64;
        }
        if let [b] = chunks.remainder() {
            self.pending = Some(*b);
        }
        self
    }

    pub fn finish(&self) -> u16 {
        let mut sum = self.sum;
        if let Some(hi) = self.pending {
            sum += (hi as u64) << 8;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        !(sum as u16)
    }
}

pub fn checksum(data: &[u8]) -> u16 {
    Checksum::new().add(data).finish()
}

/// Checksum of a TCP/UDP segment including the IPv4 or IPv6 pseudo header.
/// The segment's own checksum field must be zero (or the result is the
/// verification value, 0 when valid).
pub fn l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> u16 {
    let mut c = Checksum::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            c.add(&s.octets()).add(&d.octets());
            c.add(&[0, proto])
                .add(&(segment.len() as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            c.add(&s.octets()).add(&d.octets());
            c.add(&(segment.len() as u32).to_be_bytes())
                .add(&[0, 0, 0, proto]);
        }
        _ => panic!("mixed address families"),
    }
    c.add(segment).finish()
}

/// Ethernet II frame (no FCS), padded to the 60-byte minimum.
pub fn ethernet(
    src: [u8; 6],
    dst: [u8; 6],
    tags: &[VlanTag],
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for &(tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(vid & 0x0FFF).to_be_bytes()); // PCP 0, DEI 0
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// 20-byte IPv4 header with checksum. `flags_frag` holds the DF/MF bits and
/// the fragment offset (in 8-byte units) exactly as on the wire.
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    id: u16,
    flags_frag: u16,
    ttl: u8,
    payload_len: usize,
) -> [u8; 20] {
    let total = (20 + payload_len) as u16;
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&flags_frag.to_be_bytes());
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

pub const IP_DF: u16 = 0x4000;
pub const IP_MF: u16 = 0x2000;

pub fn ipv4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    id: u16,
    df: bool,
    ttl: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(20 + l4.len());
    p.extend_from_slice(&ipv4_header(
        src,
        dst,
        proto,
        id,
        if df { IP_DF } else { 0 },
        ttl,
        l4.len(),
    ));
    p.extend_from_slice(l4);
    p
}

/// Split a transport segment into IPv4 fragments that fit `mtu`.
/// Returned in natural (offset) order.
pub fn ipv4_fragments(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    id: u16,
    ttl: u8,
    l4: &[u8],
    mtu: usize,
) -> Vec<Vec<u8>> {
    let max_payload = (mtu - 20) / 8 * 8;
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < l4.len() {
        let end = (off + max_payload).min(l4.len());
        let more = end < l4.len();
        let flags = ((off / 8) as u16) | if more { IP_MF } else { 0 };
        let mut p = Vec::with_capacity(20 + end - off);
        p.extend_from_slice(&ipv4_header(src, dst, proto, id, flags, ttl, end - off));
        p.extend_from_slice(&l4[off..end]);
        out.push(p);
        off = end;
    }
    out
}

pub fn ipv6_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + l4.len());
    let vtf: u32 = 6 << 28; // version 6, traffic class 0, flow label 0
    p.extend_from_slice(&vtf.to_be_bytes());
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.push(next_header);
    p.push(hop_limit);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(l4);
    p
}

/// UDP datagram (header + payload) with checksum.
pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut d = Vec::with_capacity(len);
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&(len as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    let mut c = l4_checksum(src, dst, PROTO_UDP, &d);
    if c == 0 {
        c = 0xFFFF;
    }
    d[6..8].copy_from_slice(&c.to_be_bytes());
    d
}

/// TCP segment with checksum. `options` must be a multiple of 4 bytes.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert!(options.len().is_multiple_of(4));
    let hlen = 20 + options.len();
    let mut s = Vec::with_capacity(hlen + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&ack.to_be_bytes());
    s.push(((hlen / 4) as u8) << 4);
    s.push(flags);
    s.extend_from_slice(&window.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    s.extend_from_slice(options);
    s.extend_from_slice(payload);
    let c = l4_checksum(src, dst, PROTO_TCP, &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// Minimal frame decoder (used by tests and handy for debugging).
pub mod decode {
    use super::*;

    #[derive(Debug, Clone)]
    pub struct Ip<'a> {
        pub tags: Vec<VlanTag>,
        pub src: IpAddr,
        pub dst: IpAddr,
        pub proto: u8,
        /// IPv4 identification (0 for IPv6).
        pub id: u16,
        /// Fragment offset in bytes (IPv4).
        pub frag_offset: usize,
        pub more_fragments: bool,
        /// IPv4 header checksum verifies (always true for IPv6).
        pub header_ok: bool,
        /// IP payload (transport segment or fragment of it).
        pub payload: &'a [u8],
    }

    pub fn ip(frame: &[u8]) -> Option<Ip<'_>> {
        let mut off = 12;
        let mut tags = Vec::new();
        loop {
            let et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
            match et {
                TPID_8021Q | TPID_8021AD => {
                    let vid = u16::from_be_bytes([frame[off + 2], frame[off + 3]]) & 0x0FFF;
                    tags.push((et, vid));
                    off += 4;
                }
                ETHERTYPE_IPV4 => {
                    let p = &frame[off + 2..];
                    let ihl = ((p[0] & 0x0F) as usize) * 4;
                    let total = u16::from_be_bytes([p[2], p[3]]) as usize;
                    let ff = u16::from_be_bytes([p[6], p[7]]);
                    return Some(Ip {
                        tags,
                        src: IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15])),
                        dst: IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19])),
                        proto: p[9],
                        id: u16::from_be_bytes([p[4], p[5]]),
                        frag_offset: ((ff & 0x1FFF) as usize) * 8,
                        more_fragments: ff & IP_MF != 0,
                        header_ok: checksum(&p[..ihl]) == 0,
                        payload: &p[ihl..total],
                    });
                }
                ETHERTYPE_IPV6 => {
                    let p = &frame[off + 2..];
                    let plen = u16::from_be_bytes([p[4], p[5]]) as usize;
                    let a: [u8; 16] = p[8..24].try_into().ok()?;
                    let b: [u8; 16] = p[24..40].try_into().ok()?;
                    return Some(Ip {
                        tags,
                        src: IpAddr::V6(Ipv6Addr::from(a)),
                        dst: IpAddr::V6(Ipv6Addr::from(b)),
                        proto: p[6],
                        id: 0,
                        frag_offset: 0,
                        more_fragments: false,
                        header_ok: true,
                        payload: &p[40..40 + plen],
                    });
                }
                _ => return None,
            }
        }
    }

    /// (sport, dport, payload) of a complete UDP datagram.
    pub fn udp(seg: &[u8]) -> (u16, u16, &[u8]) {
        let sport = u16::from_be_bytes([seg[0], seg[1]]);
        let dport = u16::from_be_bytes([seg[2], seg[3]]);
        let len = u16::from_be_bytes([seg[4], seg[5]]) as usize;
        (sport, dport, &seg[8..len])
    }

    #[derive(Debug, Clone)]
    pub struct Tcp<'a> {
        pub sport: u16,
        pub dport: u16,
        pub seq: u32,
        pub ack: u32,
        pub flags: u8,
        pub payload: &'a [u8],
    }

    pub fn tcp(seg: &[u8]) -> Tcp<'_> {
        let hlen = ((seg[12] >> 4) as usize) * 4;
        Tcp {
            sport: u16::from_be_bytes([seg[0], seg[1]]),
            dport: u16::from_be_bytes([seg[2], seg[3]]),
            seq: u32::from_be_bytes(seg[4..8].try_into().unwrap()),
            ack: u32::from_be_bytes(seg[8..12].try_into().unwrap()),
            flags: seg[13],
            payload: &seg[hlen..],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // Example from RFC 1071 section 3: sum 0xddf2 -> checksum 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2u16);
        // Split across odd boundaries gives the same result.
        let mut c = Checksum::new();
        c.add(&data[..3]).add(&data[3..5]).add(&data[5..]);
        assert_eq!(c.finish(), checksum(&data));
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let h = ipv4_header(
            Ipv4Addr::new(10, 1, 1, 1),
            Ipv4Addr::new(10, 2, 1, 1),
            PROTO_UDP,
            0x1234,
            0,
            64,
            100,
        );
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn udp_checksum_verifies_v4_and_v6() {
        let a4: IpAddr = "10.1.1.1".parse().unwrap();
        let b4: IpAddr = "10.2.1.1".parse().unwrap();
        let d = udp(a4, b4, 5060, 5060, b"hello");
        assert_eq!(l4_checksum(a4, b4, PROTO_UDP, &d), 0);
        let a6: IpAddr = "fd00:1::1".parse().unwrap();
        let b6: IpAddr = "fd00:2::1".parse().unwrap();
        let d = udp(a6, b6, 5060, 5060, b"hello!");
        assert_eq!(l4_checksum(a6, b6, PROTO_UDP, &d), 0);
    }

    #[test]
    fn fragments_have_correct_offsets() {
        let payload: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
        let frags = ipv4_fragments(
            Ipv4Addr::new(1, 2, 3, 4),
            Ipv4Addr::new(5, 6, 7, 8),
            PROTO_UDP,
            9,
            64,
            &payload,
            MTU,
        );
        assert_eq!(frags.len(), 3);
        let mut re = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= MTU);
            assert_eq!(checksum(&f[..20]), 0);
            let ff = u16::from_be_bytes([f[6], f[7]]);
            assert_eq!(((ff & 0x1FFF) as usize) * 8, re.len());
            assert_eq!(ff & IP_MF != 0, i < 2);
            re.extend_from_slice(&f[20..]);
        }
        assert_eq!(re, payload);
    }
}
