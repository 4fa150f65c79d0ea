//! Types shared between the XDP program (`ebpf/voxtap-ebpf`) and userspace
//! (`voxtap-capture::xdp`): map names, map slots, counter indices and map key/value types.
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

// ---- XDP program and maps -------------------------------------------------------------------

/// Name of the `#[xdp]` function in the object file.
pub const PROGRAM_NAME: &str = "voxtap_xdp";

/// `HashMap<u16, u32>`: SIP ports (host byte order) to pass; the value is unused (1).
pub const MAP_SIP_PORTS: &str = "SIP_PORTS";
pub const SIP_PORTS_MAX: u32 = 64;

/// `HashMap<MediaEndpointKey, MediaEndpointValue>`: RTP/RTCP endpoints learned from SDP.
pub const MAP_MEDIA_ENDPOINTS: &str = "MEDIA_ENDPOINTS";
pub const MEDIA_ENDPOINTS_MAX: u32 = 65_536;

/// `XskMap`: one AF_XDP socket per rx queue, indexed by the rx queue index.
pub const MAP_XSKS: &str = "XSKS";
/// Compiled-in size of [`MAP_XSKS`]; the loader resizes it to the interface's rx queue count.
pub const XSKS_DEFAULT_MAX: u32 = 64;

/// `Array<u32>`: configuration flags written by userspace, indexed by `CONFIG_*`.
pub const MAP_CONFIG: &str = "CONFIG";
/// Non-zero: pass UDP that looks like RTP even when its endpoints are unknown.
pub const CONFIG_PASS_UNKNOWN_RTP: u32 = 0;
pub const CONFIG_COUNT: u32 = 1;

/// `PerCpuArray<u64>`: packet counters, indexed by `COUNTER_*`.
pub const MAP_COUNTERS: &str = "COUNTERS";
/// SIP (UDP or TCP on a port in [`MAP_SIP_PORTS`]) classified for redirect.
pub const COUNTER_PASSED_SIP: u32 = 0;
/// RTP/RTCP to or from a [`MAP_MEDIA_ENDPOINTS`] endpoint classified for redirect.
pub const COUNTER_PASSED_RTP: u32 = 1;
/// IPv4 fragment or IPv6 packet with a fragment header classified for redirect.
pub const COUNTER_PASSED_FRAGMENT: u32 = 2;
/// RTP-looking UDP on unknown endpoints (only when [`CONFIG_PASS_UNKNOWN_RTP`] is set).
pub const COUNTER_PASSED_RTP_GUESS: u32 = 3;
/// Parsed fine, not ours: dropped.
pub const COUNTER_DROPPED: u32 = 4;
/// Truncated or unparseable within the program's bounds: dropped.
pub const COUNTER_PARSE_FAILED: u32 = 5;
/// Classified for redirect but no AF_XDP socket in the rx queue's slot: dropped.
/// (Counted in addition to the `PASSED_*` counter of the packet.)
pub const COUNTER_REDIRECT_FAILED: u32 = 6;
/// A remote mirror's frame (ERSPAN, GRE, VXLAN, Geneve, IP-in-IP) whose inner frame was
/// classified. (Counted in addition to the inner frame's own verdict.)
pub const COUNTER_DECAPSULATED: u32 = 7;
pub const COUNTER_COUNT: u32 = 8;

#[cfg(feature = "user")]
mod user {
    // SAFETY: both types are `#[repr(C)]`, made of integers and byte arrays only, without
    // padding (checked by `shared_types_have_no_padding`), so every bit pattern is valid.
    unsafe impl aya::Pod for super::MediaEndpointKey {}
    unsafe impl aya::Pod for super::MediaEndpointValue {}
    unsafe impl aya::Pod for super::PacketMeta {}
}

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
