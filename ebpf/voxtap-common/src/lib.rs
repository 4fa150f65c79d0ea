//! Types shared between the XDP program (`voxtap-ebpf`, next issue) and userspace.
//!
//! Everything here is `#[repr(C)]`, fixed width and free of padding, so the same bytes mean the
//! same thing on both sides of a BPF map. No logic lives here.
#![no_std]

/// Address family tags used in [`MediaEndpointKey::family`].
pub const FAMILY_IPV4: u8 = 4;
pub const FAMILY_IPV6: u8 = 6;

/// Default SIP signalling ports that the XDP program passes to userspace.
pub const DEFAULT_SIP_PORTS: [u16; 2] = [5060, 5061];

/// Key of the media-endpoint map: one RTP/RTCP endpoint learned from SDP.
///
/// IPv4 addresses are stored in the first four bytes of `addr`, the rest zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MediaEndpointKey {
    pub addr: [u8; 16],
    /// UDP port in host byte order.
    pub port: u16,
    pub family: u8,
    pub _pad: u8,
}

impl MediaEndpointKey {
    pub const fn v4(addr: [u8; 4], port: u16) -> Self {
        let mut a = [0u8; 16];
        a[0] = addr[0];
        a[1] = addr[1];
        a[2] = addr[2];
        a[3] = addr[3];
        Self {
            addr: a,
            port,
            family: FAMILY_IPV4,
            _pad: 0,
        }
    }

    pub const fn v6(addr: [u8; 16], port: u16) -> Self {
        Self {
            addr,
            port,
            family: FAMILY_IPV6,
            _pad: 0,
        }
    }
}

/// Value of the media-endpoint map: which engine shard owns the endpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MediaEndpointValue {
    pub shard: u32,
    /// Bit flags, see `ENDPOINT_FLAG_*`.
    pub flags: u32,
}

/// The endpoint also carries RTCP on `port + 1`.
pub const ENDPOINT_FLAG_RTCP_MUX: u32 = 1;

/// Metadata the XDP program may prepend to a frame (`bpf_xdp_adjust_meta`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PacketMeta {
    /// One of the `CLASS_*` constants.
    pub class: u32,
    pub shard: u32,
}

pub const CLASS_UNKNOWN: u32 = 0;
pub const CLASS_SIP: u32 = 1;
pub const CLASS_RTP: u32 = 2;
pub const CLASS_FRAGMENT: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_types_have_no_padding() {
        assert_eq!(core::mem::size_of::<MediaEndpointKey>(), 20);
        assert_eq!(core::mem::size_of::<MediaEndpointValue>(), 8);
        assert_eq!(core::mem::size_of::<PacketMeta>(), 8);
        let k = MediaEndpointKey::v4([10, 0, 0, 1], 4000);
        assert_eq!(&k.addr[..4], &[10, 0, 0, 1]);
        assert_eq!(k.family, FAMILY_IPV4);
    }
}
