//! voxtap's XDP program.
//!
//! A passive tap on a SPAN port: every frame that might belong to a call (SIP on the configured
//! ports, SIP over UDP on any port by its first bytes, RTP/RTCP to or from an endpoint
//! userspace learned from SDP, IP fragments) is
//! redirected to the AF_XDP socket of its rx queue; everything else is dropped here, before the
//! kernel allocates an skb for it. Counters for every verdict live in a per-CPU array. A remote
//! mirror's frames (ERSPAN I/II/III, Ethernet or IP over GRE, VXLAN, Geneve, TZSP, IP-in-IP) are
//! judged by the frame they carry; PPPoE sessions and MPLS labels are looked through.
//!
//! Verifier notes: every packet read goes through [`load`], which checks `data + off + N` against
//! `data_end` right before the read; every variable offset is bounded (IHL is 4 bits, each IPv6
//! extension header at most 2 KiB, at most [`MAX_IPV6_EXT`] of them, at most [`MAX_VLAN_TAGS`]
//! VLAN tags and [`MAX_MPLS_LABELS`] labels, a GRE header at most 16 bytes and ERSPAN's 20, a
//! Geneve header at most 260, one level of encapsulation); loops have constant trip counts; no
//! code path can panic.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use voxtap_common::{
    CONFIG_COUNT, CONFIG_PASS_UNKNOWN_RTP, COUNTER_COUNT, COUNTER_DECAPSULATED, COUNTER_DROPPED,
    COUNTER_PARSE_FAILED,
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

/// One slot a tunnelled frame's inner offset passes through: see [`forget`].
#[map]
static SCRATCH: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The furthest an inner frame may start: no real mirror stacks a kilobyte of outer headers.
const MAX_INNER_OFFSET: usize = 1024;

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_QINQ_OLD: u16 = 0x9100;
const MAX_VLAN_TAGS: usize = 2;
const ETH_P_PPPOE_SESSION: u16 = 0x8864;
const ETH_P_MPLS_UC: u16 = 0x8847;
const ETH_P_MPLS_MC: u16 = 0x8848;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
/// MPLS labels followed before the IP header.
const MAX_MPLS_LABELS: usize = 4;
// GRE (RFC 2784, RFC 2890) and what a mirror sends over it.
const GRE_CHECKSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQUENCE: u16 = 0x1000;
const GRE_TEB: u16 = 0x6558;
const GRE_ERSPAN2: u16 = 0x88be;
const GRE_ERSPAN3: u16 = 0x22eb;
const VXLAN_PORT: u16 = 4789;
const GENEVE_PORT: u16 = 6081;
const VXLAN_FLAGS: u8 = 0x08;
const TZSP_PORT: u16 = 37008;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
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

/// Where a frame's parse starts: at an Ethernet header, or at an IP header (told by its
/// version nibble), as a tunnel may carry either.
#[derive(Clone, Copy)]
enum Start {
    Ethernet(usize),
    Ip(usize),
}

/// What one pass over a frame found: a verdict, or a mirror encapsulation to look into.
enum Step {
    Verdict(Verdict),
    Tunnel(Start),
}

/// A mirror port's frames, or a remote mirror's (ERSPAN, GRE, VXLAN, Geneve, TZSP,
/// IP-in-IP), whose inner frame is classified as a plain one would be. One level of
/// encapsulation is followed; a tunnel inside a tunnel is counted as a parse failure
/// (userspace, through AF_PACKET, follows any depth).
#[inline(always)]
fn classify(ctx: &XdpContext) -> Result<Verdict, ()> {
    match classify_from(ctx, Start::Ethernet(0))? {
        Step::Verdict(v) => Ok(v),
        Step::Tunnel(inner) => {
            count(COUNTER_DECAPSULATED);
            let inner = match inner {
                Start::Ethernet(at) => Start::Ethernet(forget(at)?),
                Start::Ip(at) => Start::Ip(forget(at)?),
            };
            match classify_from(ctx, inner)? {
                Step::Verdict(v) => Ok(v),
                Step::Tunnel(_) => Err(()),
            }
        }
    }
}

/// `off`, passed through a map so that the verifier no longer knows it, only its bound.
///
/// Every path through the outer headers (VLAN tags, IPv4 options, IPv6 extensions, GRE's
/// optional fields, ERSPAN's types, Geneve's options) reaches the inner frame with an offset
/// of its own range, and the verifier checked the whole inner classification again for each
/// of them: with TZSP added it ran past its million instructions. Through the slot every path
/// arrives with the same range, `0..=MAX_INNER_OFFSET`, and the inner frame is checked once.
#[inline(always)]
fn forget(off: usize) -> Result<usize, ()> {
    let slot = SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: a per-CPU slot that only this CPU uses while the program runs; volatile, so the
    // compiler keeps the round trip the verifier must not see through.
    let off = unsafe {
        core::ptr::write_volatile(slot, off as u32);
        core::ptr::read_volatile(slot)
    } as usize;
    if off > MAX_INNER_OFFSET {
        return Err(());
    }
    Ok(off)
}

#[inline(always)]
fn classify_from(ctx: &XdpContext, start: Start) -> Result<Step, ()> {
    let (mut ethertype, mut off) = match start {
        Start::Ethernet(at) => {
            let mut ethertype = be16(load::<2>(ctx, at + 12)?);
            let mut off = at + ETH_HLEN;
            for _ in 0..MAX_VLAN_TAGS {
                if ethertype == ETH_P_8021Q
                    || ethertype == ETH_P_8021AD
                    || ethertype == ETH_P_QINQ_OLD
                {
                    ethertype = be16(load::<2>(ctx, off + 2)?);
                    off += 4;
                }
            }
            (ethertype, off)
        }
        Start::Ip(at) => (ip_version(ctx, at)?, at),
    };
    match ethertype {
        // RFC 2516 §4: version and type 1, code 0 (session data), then PPP's protocol.
        ETH_P_PPPOE_SESSION => {
            let h = load::<8>(ctx, off)?;
            if h[0] != 0x11 || h[1] != 0 {
                return Err(());
            }
            ethertype = match be16([h[6], h[7]]) {
                PPP_IPV4 => ETH_P_IP,
                PPP_IPV6 => ETH_P_IPV6,
                // LCP, IPCP, CHAP...: PPP's own traffic.
                _ => return Ok(Step::Verdict(Verdict::Drop)),
            };
            off += 8;
        }
        // RFC 3032 §2.1: label stack entries up to bottom-of-stack, then IP.
        ETH_P_MPLS_UC | ETH_P_MPLS_MC => {
            let mut bottom = false;
            for _ in 0..MAX_MPLS_LABELS {
                if !bottom {
                    bottom = load::<4>(ctx, off)?[2] & 1 != 0;
                    off += 4;
                }
            }
            if !bottom {
                return Err(());
            }
            ethertype = ip_version(ctx, off)?;
        }
        _ => {}
    }
    match ethertype {
        ETH_P_IP => classify_ipv4(ctx, off),
        ETH_P_IPV6 => classify_ipv6(ctx, off),
        // ARP, LLDP, a third VLAN tag, ...: nothing for a call recorder.
        _ => Ok(Step::Verdict(Verdict::Drop)),
    }
}

/// The EtherType of the IP header at `off`, by its version nibble.
#[inline(always)]
fn ip_version(ctx: &XdpContext, off: usize) -> Result<u16, ()> {
    // Two bytes, not one: LLVM turns a one-byte bounds check into `ptr >= end`, from which
    // the verifier learns no readable range.
    match load::<2>(ctx, off)?[0] >> 4 {
        4 => Ok(ETH_P_IP),
        6 => Ok(ETH_P_IPV6),
        _ => Err(()),
    }
}

#[inline(always)]
fn classify_ipv4(ctx: &XdpContext, off: usize) -> Result<Step, ()> {
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
        return Ok(Step::Verdict(Verdict::Fragment));
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
fn classify_ipv6(ctx: &XdpContext, off: usize) -> Result<Step, ()> {
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
        IPPROTO_FRAGMENT => Ok(Step::Verdict(Verdict::Fragment)),
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
) -> Result<Step, ()> {
    match proto {
        IPPROTO_UDP | IPPROTO_TCP => {}
        IPPROTO_GRE => return gre(ctx, l4),
        IPPROTO_IPIP | IPPROTO_IPV6 => return Ok(Step::Tunnel(Start::Ip(l4))),
        _ => return Ok(Step::Verdict(Verdict::Drop)),
    }
    let ports = load::<4>(ctx, l4)?;
    let sport = be16([ports[0], ports[1]]);
    let dport = be16([ports[2], ports[3]]);
    if proto == IPPROTO_UDP && (dport == VXLAN_PORT || dport == GENEVE_PORT || dport == TZSP_PORT) {
        if let Some(inner) = udp_tunnel(ctx, dport, l4 + 8)? {
            return Ok(Step::Tunnel(inner));
        }
    }
    let verdict = if is_sip_port(sport) || is_sip_port(dport) {
        Verdict::Sip
    } else if proto == IPPROTO_TCP {
        Verdict::Drop
    } else if is_media(family, src, sport) || is_media(family, dst, dport) {
        Verdict::Rtp
    } else if looks_like_sip(ctx, l4 + 8) {
        // SIP over UDP on a port nobody configured (FreeSWITCH's 5080, a trunk's 5070...):
        // userspace finds SIP by its content on any port, so the program passes it too.
        Verdict::Sip
    } else if pass_unknown_rtp() && sport >= 1024 && dport >= 1024 && looks_like_rtp(ctx, l4 + 8)
    {
        Verdict::RtpGuess
    } else {
        Verdict::Drop
    };
    Ok(Step::Verdict(verdict))
}

/// A datagram that starts as a SIP message does: `SIP/` (a response) or the first four
/// bytes of a request method of RFC 3261 or its extensions (PRACK, SUBSCRIBE, NOTIFY,
/// PUBLISH, INFO, REFER, MESSAGE, UPDATE). A message of another extension method on an
/// unconfigured port is not recognised here.
#[inline(always)]
fn looks_like_sip(ctx: &XdpContext, off: usize) -> bool {
    match load::<4>(ctx, off) {
        Ok(b) => matches!(
            &b,
            b"SIP/"
                | b"INVI"
                | b"ACK "
                | b"BYE "
                | b"CANC"
                | b"REGI"
                | b"OPTI"
                | b"PRAC"
                | b"SUBS"
                | b"NOTI"
                | b"PUBL"
                | b"INFO"
                | b"REFE"
                | b"MESS"
                | b"UPDA"
        ),
        Err(()) => false,
    }
}

/// The first two bytes of an RTP header: version 2, then marker and an audio/video or
/// dynamic payload type.
#[inline(always)]
fn looks_like_rtp(ctx: &XdpContext, off: usize) -> bool {
    match load::<2>(ctx, off) {
        Ok(rtp) => {
            let pt = rtp[1] & 0x7f;
            rtp[0] >> 6 == 2 && (pt <= 34 || pt >= 96)
        }
        Err(()) => false,
    }
}

/// GRE (RFC 2784/2890, version 0) carrying a mirrored frame: ERSPAN type I, II or III
/// (draft-foschiano-erspan-03), Ethernet (0x6558) or IP. Anything else GRE carries (PPTP's
/// PPP, WCCP...) is not a mirror's.
#[inline(always)]
fn gre(ctx: &XdpContext, off: usize) -> Result<Step, ()> {
    let h = load::<4>(ctx, off)?;
    let flags = be16([h[0], h[1]]);
    if flags & 0x0007 != 0 {
        return Ok(Step::Verdict(Verdict::Drop));
    }
    if flags & GRE_ROUTING != 0 {
        return Err(());
    }
    let mut inner = off + 4;
    if flags & GRE_CHECKSUM != 0 {
        inner += 4;
    }
    if flags & GRE_KEY != 0 {
        inner += 4;
    }
    let sequence = flags & GRE_SEQUENCE != 0;
    if sequence {
        inner += 4;
    }
    Ok(match be16([h[2], h[3]]) {
        // Without a sequence number 0x88be is ERSPAN type I: the frame follows at once.
        GRE_ERSPAN2 if !sequence => Step::Tunnel(Start::Ethernet(inner)),
        GRE_ERSPAN2 => {
            if load::<8>(ctx, inner)?[0] >> 4 != 1 {
                return Err(());
            }
            Step::Tunnel(Start::Ethernet(inner + 8))
        }
        GRE_ERSPAN3 => {
            let e = load::<12>(ctx, inner)?;
            if e[0] >> 4 != 2 {
                return Err(());
            }
            // The O bit adds an 8-byte platform subheader; frame type 2 is IP with no link
            // layer, 0 Ethernet.
            let at = inner + 12 + if e[11] & 1 != 0 { 8 } else { 0 };
            match (e[10] >> 2) & 0x1f {
                0 => Step::Tunnel(Start::Ethernet(at)),
                2 => Step::Tunnel(Start::Ip(at)),
                _ => return Err(()),
            }
        }
        GRE_TEB => Step::Tunnel(Start::Ethernet(inner)),
        ETH_P_IP | ETH_P_IPV6 => Step::Tunnel(Start::Ip(inner)),
        _ => Step::Verdict(Verdict::Drop),
    })
}

/// VXLAN (RFC 7348: the I flag alone, as senders set it), Geneve (RFC 8926: version 0, not a
/// control message, Ethernet or IP) or TZSP (a sniffed Ethernet frame) after the UDP header at
/// `off`; `None` for an ordinary datagram that uses the port (RTP never starts with any of
/// these headers).
#[inline(always)]
fn udp_tunnel(ctx: &XdpContext, dport: u16, off: usize) -> Result<Option<Start>, ()> {
    let h = load::<4>(ctx, off)?;
    if dport == VXLAN_PORT {
        return Ok((h[0] == VXLAN_FLAGS).then_some(Start::Ethernet(off + 8)));
    }
    if dport == TZSP_PORT {
        // Version 1, a received frame (type 0), Ethernet (1), then the end tag (1) at once, as
        // MikroTik's sniffer sends it. Tagged fields before the end are not followed: each
        // length would make the verifier check everything after it again for every offset it
        // allows (a loop of 8 tags ran past its million instructions). Such frames are
        // counted as parse failures; AF_PACKET reads them.
        if h != [1, 0, 0, 1] {
            return Ok(None);
        }
        return match load::<2>(ctx, off + 4)?[0] {
            1 => Ok(Some(Start::Ethernet(off + 5))),
            _ => Err(()),
        };
    }
    if h[0] >> 6 != 0 || h[1] & 0x80 != 0 {
        return Ok(None);
    }
    let at = off + 8 + usize::from(h[0] & 0x3f) * 4;
    Ok(match be16([h[2], h[3]]) {
        GRE_TEB => Some(Start::Ethernet(at)),
        ETH_P_IP | ETH_P_IPV6 => Some(Start::Ip(at)),
        _ => None,
    })
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
