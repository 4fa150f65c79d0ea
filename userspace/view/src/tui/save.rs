//! Saving a call's SIP: as a classic pcap of synthesized Ethernet/IP/UDP frames, or as text.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::text::datetime_us;
use crate::proto::SipMessage;

/// The largest UDP payload put in a frame (the message texts are capped far below it anyway).
const MAX_PAYLOAD: usize = 65_000;

/// Writes `messages` as a classic (microsecond, little-endian) pcap with Ethernet link type.
/// Each message becomes one Ethernet/IPv4-or-IPv6/UDP frame from its `src` to its `dst` with the
/// message text as the payload and its timestamp, whatever its transport was (TCP and TLS
/// are written as UDP too: the text is what matters). An address that is not `ip:port` is
/// written as 0.0.0.0:0.
pub fn write_pcap(messages: &[SipMessage], mut w: impl Write) -> io::Result<()> {
    // Global header: magic, version 2.4, thiszone, sigfigs, snaplen, LINKTYPE_ETHERNET.
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&0i32.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&65_535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;
    for m in messages {
        let frame = frame(m);
        let (sec, usec) = split_ts(m.ts);
        w.write_all(&sec.to_le_bytes())?;
        w.write_all(&usec.to_le_bytes())?;
        let len = frame.len() as u32;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&frame)?;
    }
    w.flush()
}

/// Writes `messages` as text: for each, a line `time src -> dst transport` (UTC), the message
/// as it was, and a blank line.
pub fn write_text(messages: &[SipMessage], mut w: impl Write) -> io::Result<()> {
    for m in messages {
        writeln!(
            w,
            "{} UTC {} -> {} {}",
            datetime_us(m.ts),
            m.src,
            m.dst,
            m.transport
        )?;
        let text = m.text.replace("\r\n", "\n");
        w.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            writeln!(w)?;
        }
        writeln!(w)?;
    }
    w.flush()
}

fn split_ts(ts: f64) -> (u32, u32) {
    if !ts.is_finite() || ts <= 0.0 {
        return (0, 0);
    }
    let mut sec = ts.floor();
    let mut usec = ((ts - sec) * 1e6).round();
    if usec >= 1e6 {
        sec += 1.0;
        usec = 0.0;
    }
    (sec.min(u32::MAX as f64) as u32, usec as u32)
}

fn addr(s: &str) -> SocketAddr {
    s.trim()
        .parse()
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// One's-complement sum of 16-bit big-endian words, folded.
fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The UDP checksum over the IPv4 or IPv6 pseudo-header (`src`, `dst`, UDP, the length) and
/// the datagram, whose checksum field is still zero; 0 is sent as 0xffff.
fn set_udp_checksum(udp: &mut [u8], src: &[u8], dst: &[u8]) {
    let pseudo = csum_add(csum_add(0, src), dst) + 17 + udp.len() as u32;
    let c = match csum_fold(csum_add(pseudo, udp)) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
}

/// The Ethernet frame carrying one message.
fn frame(m: &SipMessage) -> Vec<u8> {
    let payload = &m.text.as_bytes()[..m.text.len().min(MAX_PAYLOAD)];
    let (src, dst) = (addr(&m.src), addr(&m.dst));
    let udp_len = (8 + payload.len()) as u16;
    let mut udp = Vec::with_capacity(udp_len as usize);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]); // checksum, filled below
    udp.extend_from_slice(payload);

    let mut f = Vec::with_capacity(14 + 40 + udp.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // dst MAC (locally administered)
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // src MAC
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64; // TTL
            ip[9] = 17; // UDP
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = csum_fold(csum_add(0, &ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            set_udp_checksum(&mut udp, &s.octets(), &d.octets());
            f.extend_from_slice(&ip);
        }
        (s, d) => {
            let (s, d) = (v6(s), v6(d));
            f.extend_from_slice(&0x86DDu16.to_be_bytes());
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
            ip[6] = 17; // next header: UDP
            ip[7] = 64; // hop limit
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            set_udp_checksum(&mut udp, &s.octets(), &d.octets());
            f.extend_from_slice(&ip);
        }
    }
    f.extend_from_slice(&udp);
    f
}
