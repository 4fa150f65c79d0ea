//! Remote mirroring: every frame of a capture wrapped the way a switch or a cloud mirror
//! sends a copy to a collector that is not on the same wire.
//!
//! - `erspan2`: Cisco ERSPAN type II (GRE protocol 0x88be with a sequence number, the 8-byte
//!   ERSPAN header of draft-foschiano-erspan-03 §4.1), the default of Catalyst and Nexus
//!   `monitor session ... type erspan-source`;
//! - `erspan3`: ERSPAN type III (GRE 0x22eb, the 12-byte header with a timestamp, §4.2);
//! - `gre`: transparent Ethernet bridging over GRE (0x6558), as Linux `gretap` and many
//!   routers send it;
//! - `vxlan`: VXLAN on UDP 4789 (RFC 7348), as AWS VPC Traffic Mirroring and Azure vTAP send
//!   it: the UDP source port varies with the inner flow, the UDP checksum is zero;
//! - `geneve`: Geneve on UDP 6081 (RFC 8926) with one 8-byte option;
//! - `tzsp`: TZSP on UDP 37008, as MikroTik RouterOS's packet sniffer streams what it sees
//!   (version 1, a received frame, Ethernet, the end tag at once).
//!
//! The outer packets go from the mirror source 172.31.0.1 to the collector 172.31.0.2 with
//! DF set. Nothing inside changes, so a capture's ground truth holds for its encapsulated
//! copy. A mirror of a full-size frame is larger than a 1500-byte MTU, as it is on a real
//! network, where the collector's link takes jumbo frames.

use std::net::{IpAddr, Ipv4Addr};

use crate::Frame;
use crate::net::{self, ETHERTYPE_IPV4};

/// How the mirrored frames reach the collector (`voxtap-gen --encap`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Encap {
    /// ERSPAN type II over GRE (Cisco's default remote SPAN).
    Erspan2,
    /// ERSPAN type III over GRE (with a timestamp).
    Erspan3,
    /// Ethernet over GRE (transparent Ethernet bridging, Linux `gretap`).
    Gre,
    /// VXLAN on UDP 4789 (AWS VPC Traffic Mirroring, Azure vTAP).
    Vxlan,
    /// Geneve on UDP 6081, with one option.
    Geneve,
    /// TZSP on UDP 37008 (MikroTik's packet sniffer streaming).
    Tzsp,
}

/// The mirror source (a switch's or an ENI's address) and the collector.
pub const MIRROR_SOURCE: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 1);
pub const COLLECTOR: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 2);
/// The ERSPAN session and the VXLAN/Geneve network identifier the mirror uses.
pub const SESSION: u32 = 7;

const GRE_SEQUENCE: u16 = 0x1000;
const GRE_ERSPAN2: u16 = 0x88be;
const GRE_ERSPAN3: u16 = 0x22eb;
const GRE_TEB: u16 = 0x6558;
const PROTO_GRE: u8 = 47;

/// Wraps every frame of `frames` (Ethernet frames, as the generator makes them) in `encap`.
pub fn encapsulate(frames: &mut [Frame], encap: Encap) {
    let src_mac = net::mac_for(IpAddr::V4(MIRROR_SOURCE));
    let dst_mac = net::mac_for(IpAddr::V4(COLLECTOR));
    for (n, frame) in frames.iter_mut().enumerate() {
        let seq = n as u32;
        let inner = &frame.data;
        let (proto, l4) = match encap {
            Encap::Erspan2 | Encap::Erspan3 | Encap::Gre => {
                (PROTO_GRE, gre(encap, seq, frame.ts_ns, inner))
            }
            Encap::Vxlan => {
                let mut h = vec![0x08, 0, 0, 0];
                h.extend_from_slice(&(SESSION << 8).to_be_bytes());
                h.extend_from_slice(inner);
                (net::PROTO_UDP, udp(flow_port(inner), 4789, &h))
            }
            Encap::Geneve => {
                // Version 0, 2 words of options, protocol Ethernet, the VNI; then one option
                // (class 0x0103, type 1, 4 bytes of data).
                let mut h = vec![0x02, 0x00];
                h.extend_from_slice(&GRE_TEB.to_be_bytes());
                h.extend_from_slice(&(SESSION << 8).to_be_bytes());
                h.extend_from_slice(&[0x01, 0x03, 0x01, 0x01, 0, 0, 0, seq as u8]);
                h.extend_from_slice(inner);
                (net::PROTO_UDP, udp(flow_port(inner), 6081, &h))
            }
            Encap::Tzsp => {
                let mut h = vec![1, 0, 0, 1, 1];
                h.extend_from_slice(inner);
                (net::PROTO_UDP, udp(37008, 37008, &h))
            }
        };
        let ip = net::ipv4_packet(MIRROR_SOURCE, COLLECTOR, proto, seq as u16, true, 64, &l4);
        frame.data = net::ethernet(src_mac, dst_mac, &[], ETHERTYPE_IPV4, &ip);
    }
}

/// The GRE header and what follows it, for the GRE-borne encapsulations.
fn gre(encap: Encap, seq: u32, ts_ns: u64, inner: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(24 + inner.len());
    match encap {
        Encap::Gre => {
            h.extend_from_slice(&0u16.to_be_bytes());
            h.extend_from_slice(&GRE_TEB.to_be_bytes());
        }
        Encap::Erspan2 => {
            h.extend_from_slice(&GRE_SEQUENCE.to_be_bytes());
            h.extend_from_slice(&GRE_ERSPAN2.to_be_bytes());
            h.extend_from_slice(&seq.to_be_bytes());
            // Version 1, VLAN 0; COS 0, encapsulation 0 (untagged), T 0, session id; index 0.
            h.extend_from_slice(&0x1000u16.to_be_bytes());
            h.extend_from_slice(&(SESSION as u16 & 0x03ff).to_be_bytes());
            h.extend_from_slice(&0u32.to_be_bytes());
        }
        Encap::Erspan3 => {
            h.extend_from_slice(&GRE_SEQUENCE.to_be_bytes());
            h.extend_from_slice(&GRE_ERSPAN3.to_be_bytes());
            h.extend_from_slice(&seq.to_be_bytes());
            // Version 2, VLAN 0; BSO/T 0, session id; a timestamp in 100 µs units (granularity
            // 00); SGT 0; P 0, frame type 0 (Ethernet), hardware id 1, direction 0, gra 00, O 0.
            h.extend_from_slice(&0x2000u16.to_be_bytes());
            h.extend_from_slice(&(SESSION as u16 & 0x03ff).to_be_bytes());
            h.extend_from_slice(&((ts_ns / 100_000) as u32).to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x00, 0x04]);
        }
        Encap::Vxlan | Encap::Geneve | Encap::Tzsp => unreachable!("UDP-borne"),
    }
    h.extend_from_slice(inner);
    h
}

/// A UDP datagram with a zero checksum, as VXLAN and Geneve senders leave it over IPv4.
fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + payload.len());
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    d
}

/// RFC 7348 §5: a source port from a hash of the inner frame's headers, in the dynamic range,
/// so one inner flow keeps one outer port.
fn flow_port(inner: &[u8]) -> u16 {
    let headers = &inner[..inner.len().min(38)];
    let h = headers.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    49152 + (h % 16384) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encapsulation_keeps_the_frame_whole_after_its_headers() {
        let inner = net::ethernet([2; 6], [4; 6], &[], ETHERTYPE_IPV4, &[0x45; 40]);
        for (encap, outer) in [
            (Encap::Erspan2, 14 + 20 + 8 + 8),
            (Encap::Erspan3, 14 + 20 + 8 + 12),
            (Encap::Gre, 14 + 20 + 4),
            (Encap::Vxlan, 14 + 20 + 8 + 8),
            (Encap::Geneve, 14 + 20 + 8 + 16),
            (Encap::Tzsp, 14 + 20 + 8 + 5),
        ] {
            let mut frames = vec![Frame {
                ts_ns: 1_000_000_000,
                data: inner.clone(),
            }];
            encapsulate(&mut frames, encap);
            let data = &frames[0].data;
            assert_eq!(&data[outer..], &inner[..], "{encap:?}");
            assert_eq!(data.len(), outer + inner.len(), "{encap:?}");
            assert_eq!(&data[26..34], &[172, 31, 0, 1, 172, 31, 0, 2], "{encap:?}");
        }
    }
}
