//! voxtap's XDP program.
//!
//! A passive tap on a SPAN port: every frame that might belong to a call (SIP on the configured
//! ports, RTP/RTCP to or from an endpoint userspace learned from SDP, IP fragments) is
//! redirected to the AF_XDP socket of its rx queue; everything else is dropped here, before the
//! kernel allocates an skb for it. Counters for every verdict live in a per-CPU array.
//!
//! Verifier notes: every packet read goes through [`load`], which checks `data + off + N` against
//! `data_end` right before the read; every variable offset is bounded (IHL is 4 bits, each IPv6
//! extension header at most 2 KiB, at most [`MAX_IPV6_EXT`] of them, at most [`MAX_VLAN_TAGS`]
//! VLAN tags); loops have constant trip counts; no code path can panic.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use voxtap_common::{
    CONFIG_COUNT, CONFIG_PASS_UNKNOWN_RTP, COUNTER_COUNT, COUNTER_DROPPED, COUNTER_PARSE_FAILED,
    COUNTER_PASSED_FRAGMENT, COUNTER_PASSED_RTP, COUNTER_PASSED_RTP_GUESS, COUNTER_PASSED_SIP,
    COUNTER_REDIRECT_FAILED, FAMILY_IPV4, FAMILY_IPV6, MEDIA_ENDPOINTS_MAX, MediaEndpointKey,
    MediaEndpointValue, SIP_PORTS_MAX, XSKS_DEFAULT_MAX,
};

// Map statics are named exactly like the `MAP_*` constants in voxtap-common.
#[map]
static SIP_PORTS: HashMap<u16, u32> = HashMap::with_max_entries(SIP_PORTS_MAX, 0);

#[map]
static MEDIA_ENDPOINTS: HashMap<MediaEndpointKey, MediaEndpointValue> =
    HashMap::with_max_entries(MEDIA_ENDPOINTS_MAX, 0);

#[map]
static XSKS: XskMap = XskMap::with_max_entries(XSKS_DEFAULT_MAX, 0);

#[map]
static CONFIG: Array<u32> = Array::with_max_entries(CONFIG_COUNT, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_QINQ_OLD: u16 = 0x9100;
const MAX_VLAN_TAGS: usize = 2;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;
/// How many IPv6 extension headers (hop-by-hop, routing, destination options) are followed.
const MAX_IPV6_EXT: usize = 4;

enum Verdict {
    Sip,
    Rtp,
    Fragment,
    RtpGuess,
    Drop,
}

#[xdp]
pub fn voxtap_xdp(ctx: XdpContext) -> u32 {
    match try_voxtap_xdp(&ctx) {
        Ok(action) => action,
        // A passive tap never aborts (that would show up as an exception trace): a frame we
        // cannot parse is counted and dropped.
        Err(()) => {
            count(COUNTER_PARSE_FAILED);
            xdp_action::XDP_DROP
        }
    }
}

#[inline(always)]
fn try_voxtap_xdp(ctx: &XdpContext) -> Result<u32, ()> {
    let counter = match classify(ctx)? {
        Verdict::Sip => COUNTER_PASSED_SIP,
        Verdict::Rtp => COUNTER_PASSED_RTP,
        Verdict::Fragment => COUNTER_PASSED_FRAGMENT,
        Verdict::RtpGuess => COUNTER_PASSED_RTP_GUESS,
        Verdict::Drop => {
            count(COUNTER_DROPPED);
            return Ok(xdp_action::XDP_DROP);
        }
    };
    count(counter);
    // The flags' low bits are the action bpf_redirect_map returns when the queue's slot holds
    // no socket: XDP_DROP, so a queue nobody reads costs nothing further.
    match XSKS.redirect(ctx.rx_queue_index(), u64::from(xdp_action::XDP_DROP)) {
        Ok(action) => Ok(action),
        Err(_) => {
            count(COUNTER_REDIRECT_FAILED);
            Ok(xdp_action::XDP_DROP)
        }
    }
}

#[inline(always)]
fn count(index: u32) {
    if let Some(counter) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *counter += 1 };
    }
}

/// Reads `N` bytes at `off` from the start of the frame, bounds-checked for the verifier.
#[inline(always)]
fn load<const N: usize>(ctx: &XdpContext, off: usize) -> Result<[u8; N], ()> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + N > end {
        return Err(());
    }
    // SAFETY: `start + off .. start + off + N` lies inside the packet (checked just above);
    // `[u8; N]` has alignment 1.
    Ok(unsafe { *((start + off) as *const [u8; N]) })
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

#[inline(always)]
fn classify(ctx: &XdpContext) -> Result<Verdict, ()> {
    let mut ethertype = be16(load::<2>(ctx, 12)?);
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD || ethertype == ETH_P_QINQ_OLD {
            ethertype = be16(load::<2>(ctx, off + 2)?);
            off += 4;
        }
    }
    match ethertype {
        ETH_P_IP => classify_ipv4(ctx, off),
        ETH_P_IPV6 => classify_ipv6(ctx, off),
        // ARP, LLDP, a third VLAN tag, ...: nothing for a call recorder.
        _ => Ok(Verdict::Drop),
    }
}

#[inline(always)]
fn classify_ipv4(ctx: &XdpContext, off: usize) -> Result<Verdict, ()> {
    let hdr = load::<20>(ctx, off)?;
    if hdr[0] >> 4 != 4 {
        return Err(());
    }
    let ihl = usize::from(hdr[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(());
    }
    // MF set or a non-zero fragment offset: may be part of a large SIP message.
    if be16([hdr[6], hdr[7]]) & 0x3fff != 0 {
        return Ok(Verdict::Fragment);
    }
    let src = [
        hdr[12], hdr[13], hdr[14], hdr[15], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let dst = [
        hdr[16], hdr[17], hdr[18], hdr[19], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    classify_l4(ctx, hdr[9], off + ihl, FAMILY_IPV4, src, dst)
}

#[inline(always)]
fn classify_ipv6(ctx: &XdpContext, off: usize) -> Result<Verdict, ()> {
    let first = load::<8>(ctx, off)?;
    if first[0] >> 4 != 6 {
        return Err(());
    }
    let src = load::<16>(ctx, off + 8)?;
    let dst = load::<16>(ctx, off + 24)?;
    let mut next = first[6];
    let mut l4 = off + 40;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let ext = load::<2>(ctx, l4)?;
                next = ext[0];
                l4 += (usize::from(ext[1]) + 1) * 8;
            }
            _ => break,
        }
    }
    match next {
        IPPROTO_FRAGMENT => Ok(Verdict::Fragment),
        // More extension headers than we follow.
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => Err(()),
        proto => classify_l4(ctx, proto, l4, FAMILY_IPV6, src, dst),
    }
}

#[inline(always)]
fn classify_l4(
    ctx: &XdpContext,
    proto: u8,
    l4: usize,
    family: u8,
    src: [u8; 16],
    dst: [u8; 16],
) -> Result<Verdict, ()> {
    if proto != IPPROTO_UDP && proto != IPPROTO_TCP {
        return Ok(Verdict::Drop);
    }
    let ports = load::<4>(ctx, l4)?;
    let sport = be16([ports[0], ports[1]]);
    let dport = be16([ports[2], ports[3]]);
    if is_sip_port(sport) || is_sip_port(dport) {
        return Ok(Verdict::Sip);
    }
    if proto == IPPROTO_TCP {
        return Ok(Verdict::Drop);
    }
    if is_media(family, src, sport) || is_media(family, dst, dport) {
        return Ok(Verdict::Rtp);
    }
    if pass_unknown_rtp() && sport >= 1024 && dport >= 1024 {
        // The first two bytes of the RTP header: version 2, then marker and payload type.
        if let Ok(rtp) = load::<2>(ctx, l4 + 8) {
            let pt = rtp[1] & 0x7f;
            if rtp[0] >> 6 == 2 && (pt <= 34 || pt >= 96) {
                return Ok(Verdict::RtpGuess);
            }
        }
    }
    Ok(Verdict::Drop)
}

#[inline(always)]
fn is_sip_port(port: u16) -> bool {
    SIP_PORTS.get_ptr(port).is_some()
}

/// The endpoint itself, or for an odd (RTCP) port the RTP endpoint on `port - 1`.
#[inline(always)]
fn is_media(family: u8, addr: [u8; 16], port: u16) -> bool {
    let mut key = MediaEndpointKey {
        addr,
        port,
        family,
        _pad: 0,
    };
    if MEDIA_ENDPOINTS.get_ptr(key).is_some() {
        return true;
    }
    if port & 1 == 1 {
        key.port = port - 1;
        return MEDIA_ENDPOINTS.get_ptr(key).is_some();
    }
    false
}

#[inline(always)]
fn pass_unknown_rtp() -> bool {
    CONFIG
        .get(CONFIG_PASS_UNKNOWN_RTP)
        .is_some_and(|flag| *flag != 0)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable by construction; if a path to it existed the verifier would reject the
    // program ("last insn is not an exit or jmp").
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
