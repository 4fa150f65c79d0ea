//! Loader for voxtap's XDP pre-filter (`ebpf/voxtap-ebpf`).
//!
//! [`XdpProgram::attach`] loads the program that `build.rs` embedded, fills its maps and attaches
//! it to an interface through a bpf_link, so the kernel detaches it when the last reference to
//! the link goes away: on [`Drop`], and just as well when the process dies by `kill -9`.
//!
//! The program redirects SIP, RTP/RTCP of registered endpoints and IP fragments to the AF_XDP
//! socket registered for the frame's rx queue ([`XdpProgram::register_socket`]) and drops the
//! rest; see `ebpf/README.md`.

use std::ffi::CString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, XskMap};
use aya::programs::links::FdLink;
use aya::programs::{ProgramError, Xdp};
use aya::{Ebpf, EbpfLoader};
/// The most SIP ports the XDP program takes (its map's size).
pub use voxtap_common::SIP_PORTS_MAX;
use voxtap_common::{
    CONFIG_PASS_UNKNOWN_RTP, COUNTER_COUNT, COUNTER_DECAPSULATED, COUNTER_DROPPED,
    COUNTER_PARSE_FAILED, COUNTER_PASSED_FRAGMENT, COUNTER_PASSED_RTP, COUNTER_PASSED_RTP_GUESS,
    COUNTER_PASSED_SIP, COUNTER_REDIRECT_FAILED, MAP_CONFIG, MAP_COUNTERS, MAP_MEDIA_ENDPOINTS,
    MAP_SIP_PORTS, MAP_XSKS, MediaEndpointKey, MediaEndpointValue, PROGRAM_NAME,
};

/// The object file `build.rs` built, or `None` when it was built without it.
#[cfg(not(voxtap_no_ebpf))]
static PROGRAM: Option<&[u8]> = Some(aya::include_bytes_aligned!(concat!(
    env!("OUT_DIR"),
    "/voxtap-ebpf"
)));
#[cfg(voxtap_no_ebpf)]
static PROGRAM: Option<&[u8]> = None;

/// Whether this build carries the XDP program (`false` when `bpf-linker` was missing or
/// `AYA_BUILD_SKIP` was set at build time).
pub const fn program_available() -> bool {
    PROGRAM.is_some()
}

const AFPACKET_HINT: &str = "use --capture afpacket";

#[derive(Clone, Debug)]
pub struct XdpOptions {
    /// SIP ports, UDP and TCP, either direction. At most `SIP_PORTS_MAX` (64).
    pub sip_ports: Vec<u16>,
    /// Also pass UDP that looks like RTP between unknown endpoints (both ports >= 1024).
    pub pass_unknown_rtp: bool,
}

impl Default for XdpOptions {
    fn default() -> Self {
        Self {
            sip_ports: voxtap_common::DEFAULT_SIP_PORTS.to_vec(),
            pass_unknown_rtp: false,
        }
    }
}

/// How the program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver, before an skb exists.
    Native,
    /// Generic (SKB) mode: works on every interface, costs an skb per frame.
    Generic,
}

/// The program's counters, summed over CPUs; see `COUNTER_*` in voxtap-common.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    pub passed_sip: u64,
    pub passed_rtp: u64,
    pub passed_fragment: u64,
    pub passed_rtp_guess: u64,
    pub dropped: u64,
    pub parse_failed: u64,
    /// Frames counted as passed whose rx queue had no AF_XDP socket: dropped instead.
    pub redirect_failed: u64,
    /// A remote mirror's frames (ERSPAN, GRE, VXLAN, Geneve, IP-in-IP), judged by the frame
    /// inside; each is also in one of the counters above.
    pub decapsulated: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error(
        "this voxtap was built without its XDP program (bpf-linker missing): run `cargo xtask deps` and rebuild, or {AFPACKET_HINT}"
    )]
    NotBuilt,
    #[error("{}", crate::no_such_interface(.0))]
    NoSuchInterface(String),
    #[error(
        "not allowed to {what}: XDP needs root, or CAP_BPF and CAP_NET_ADMIN; run as root or {AFPACKET_HINT}"
    )]
    Permission {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "the kernel refused the voxtap XDP program ({0}); BPF may be unavailable here, {AFPACKET_HINT}"
    )]
    Load(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The verifier ran and said no: a defect of the program, never a matter of rights, so
    /// it is not reported (or skipped in tests) as one.
    #[error(
        "the kernel's verifier rejected the voxtap XDP program, a defect of this build ({AFPACKET_HINT}); the end of its log:\n{0}"
    )]
    Rejected(String),
    #[error(
        "cannot attach XDP to {iface}: native mode: {native}; generic mode: {generic}; {AFPACKET_HINT}"
    )]
    Attach {
        iface: String,
        native: String,
        generic: String,
    },
    #[error(
        "the kernel attached XDP to {0} without a bpf_link (Linux < 5.9?), so it would outlive a killed voxtap; {AFPACKET_HINT}"
    )]
    NoBpfLink(String),
    #[error("the XDP program has no map {0:?}: embedded object and loader disagree")]
    MissingMap(&'static str),
    #[error("too many SIP ports ({0}); the XDP program takes at most {SIP_PORTS_MAX}")]
    TooManySipPorts(usize),
    #[error("rx queue {queue} is out of range: {iface} has {queues} rx queues")]
    QueueOutOfRange {
        iface: String,
        queue: u32,
        queues: u32,
    },
    #[error("XDP map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
}

/// voxtap's XDP program, loaded and attached to one interface. Dropping it detaches it.
pub struct XdpProgram {
    // Declared first so it is dropped (detached) before the program and maps go away.
    link: Option<FdLink>,
    iface: String,
    ifindex: u32,
    mode: XdpMode,
    queues: u32,
    xsks: XskMap<MapData>,
    endpoints: HashMap<MapData, MediaEndpointKey, MediaEndpointValue>,
    counters: PerCpuArray<MapData, u64>,
    _ebpf: Ebpf,
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpProgram")
            .field("iface", &self.iface)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Loads, fills SIP_PORTS, attaches to `iface`: native (driver) mode first, then generic
    /// (SKB) mode. Attaches through a bpf_link (Linux >= 5.9), so the program detaches when the
    /// process exits, also on `kill -9`; an attachment without a link is refused.
    pub fn attach(iface: &str, opts: &XdpOptions) -> Result<XdpProgram, XdpError> {
        let object = PROGRAM.ok_or(XdpError::NotBuilt)?;
        if opts.sip_ports.len() > SIP_PORTS_MAX as usize {
            return Err(XdpError::TooManySipPorts(opts.sip_ports.len()));
        }
        let ifindex = if_index(iface)?;
        let queues = rx_queue_count(iface).unwrap_or(1).max(1);

        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_XSKS, queues)
            .load(object)
            .map_err(|e| classify("load the XDP program", e))?;

        let mut sip_ports: HashMap<MapData, u16, u32> = take_map(&mut ebpf, MAP_SIP_PORTS)?;
        for &port in &opts.sip_ports {
            sip_ports
                .insert(port, 1, 0)
                .map_err(|e| map_err(MAP_SIP_PORTS, e))?;
        }
        let mut config: Array<MapData, u32> = take_map(&mut ebpf, MAP_CONFIG)?;
        config
            .set(CONFIG_PASS_UNKNOWN_RTP, u32::from(opts.pass_unknown_rtp), 0)
            .map_err(|e| map_err(MAP_CONFIG, e))?;
        let xsks: XskMap<MapData> = take_map(&mut ebpf, MAP_XSKS)?;
        let endpoints = take_map(&mut ebpf, MAP_MEDIA_ENDPOINTS)?;
        let counters = take_map(&mut ebpf, MAP_COUNTERS)?;

        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| XdpError::Load(format!("no program {PROGRAM_NAME:?}").into()))?
            .try_into()
            .map_err(|e: ProgramError| XdpError::Load(Box::new(e)))?;
        program.load().map_err(|e| match &e {
            ProgramError::LoadError { verifier_log, .. } => {
                let log = format!("{verifier_log:?}");
                if log.trim().is_empty() {
                    classify("load the XDP program", e)
                } else {
                    let lines: Vec<&str> = log.trim_end().lines().collect();
                    XdpError::Rejected(lines[lines.len().saturating_sub(40)..].join("\n"))
                }
            }
            _ => classify("load the XDP program", e),
        })?;

        let (link_id, mode) =
            match program.attach_to_if_index(ifindex, aya::programs::XdpMode::Driver) {
                Ok(id) => (id, XdpMode::Native),
                Err(native) => {
                    if is_permission(&native) {
                        return Err(permission("attach XDP", native));
                    }
                    match program.attach_to_if_index(ifindex, aya::programs::XdpMode::Skb) {
                        Ok(id) => (id, XdpMode::Generic),
                        Err(generic) => {
                            if is_permission(&generic) {
                                return Err(permission("attach XDP", generic));
                            }
                            return Err(XdpError::Attach {
                                iface: iface.to_string(),
                                native: chain(&native),
                                generic: chain(&generic),
                            });
                        }
                    }
                }
            };
        let link = program
            .take_link(link_id)
            .map_err(|e| XdpError::Load(Box::new(e)))?;
        // aya falls back to a netlink attachment on kernels without XDP links; such an
        // attachment survives the process, which a passive tap must not do.
        let link = FdLink::try_from(link).map_err(|_| XdpError::NoBpfLink(iface.to_string()))?;

        Ok(XdpProgram {
            link: Some(link),
            iface: iface.to_string(),
            ifindex,
            mode,
            queues,
            xsks,
            endpoints,
            counters,
            _ebpf: ebpf,
        })
    }

    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// How many instructions the kernel's verifier processed to accept the program (Linux
    /// 5.16 and later; `None` before). Its limit is 1,000,000: a program near it verifies on
    /// one kernel and not the next.
    pub fn verified_instructions(&self) -> Option<u32> {
        let program: &Xdp = self._ebpf.program(PROGRAM_NAME)?.try_into().ok()?;
        program.info().ok()?.verified_instruction_count()
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Puts an AF_XDP socket fd into the XskMap slot of its rx queue.
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), XdpError> {
        if queue >= self.queues {
            return Err(XdpError::QueueOutOfRange {
                iface: self.iface.clone(),
                queue,
                queues: self.queues,
            });
        }
        // SAFETY: the caller hands us an open socket fd; the map only reads its number.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        self.xsks
            .set(queue, fd, 0)
            .map_err(|e| map_err(MAP_XSKS, e))
    }

    /// Passes RTP to and from `ep`, and RTCP on `ep.port() + 1`.
    pub fn add_endpoint(&mut self, ep: SocketAddr) -> Result<(), XdpError> {
        self.endpoints
            .insert(endpoint_key(ep), MediaEndpointValue::default(), 0)
            .map_err(|e| map_err(MAP_MEDIA_ENDPOINTS, e))
    }

    /// Stops passing `ep`. Removing an endpoint that is not there is not an error.
    pub fn remove_endpoint(&mut self, ep: SocketAddr) -> Result<(), XdpError> {
        match self.endpoints.remove(&endpoint_key(ep)) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(())
            }
            Err(e) => Err(map_err(MAP_MEDIA_ENDPOINTS, e)),
        }
    }

    /// The program's counters since it was loaded, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let mut sums = [0u64; COUNTER_COUNT as usize];
        for (index, sum) in (0..COUNTER_COUNT).zip(sums.iter_mut()) {
            let per_cpu = self
                .counters
                .get(&index, 0)
                .map_err(|e| map_err(MAP_COUNTERS, e))?;
            *sum = per_cpu.iter().copied().fold(0, u64::wrapping_add);
        }
        let at = |i: u32| sums[i as usize];
        Ok(XdpCounters {
            passed_sip: at(COUNTER_PASSED_SIP),
            passed_rtp: at(COUNTER_PASSED_RTP),
            passed_fragment: at(COUNTER_PASSED_FRAGMENT),
            passed_rtp_guess: at(COUNTER_PASSED_RTP_GUESS),
            dropped: at(COUNTER_DROPPED),
            parse_failed: at(COUNTER_PARSE_FAILED),
            redirect_failed: at(COUNTER_REDIRECT_FAILED),
            decapsulated: at(COUNTER_DECAPSULATED),
        })
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Closing the only fd of the bpf_link detaches the program from the interface.
        drop(self.link.take());
    }
}

/// The media-map key for `ep`; an IPv4-mapped IPv6 address counts as IPv4.
fn endpoint_key(ep: SocketAddr) -> MediaEndpointKey {
    match ep {
        SocketAddr::V4(v4) => MediaEndpointKey::v4(v4.ip().octets(), v4.port()),
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => MediaEndpointKey::v4(v4.octets(), v6.port()),
            None => MediaEndpointKey::v6(v6.ip().octets(), v6.port()),
        },
    }
}

fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, XdpError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(XdpError::MissingMap(name))?;
    T::try_from(map).map_err(|e| map_err(name, e))
}

fn map_err(map: &'static str, source: MapError) -> XdpError {
    if is_permission(&source) {
        return permission("update BPF maps", source);
    }
    XdpError::Map { map, source }
}

fn if_index(iface: &str) -> Result<u32, XdpError> {
    let name = CString::new(iface).map_err(|_| XdpError::NoSuchInterface(iface.to_string()))?;
    // SAFETY: a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(XdpError::NoSuchInterface(iface.to_string())),
        index => Ok(index),
    }
}

fn classify<E: std::error::Error + Send + Sync + 'static>(what: &'static str, e: E) -> XdpError {
    if is_permission(&e) {
        permission(what, e)
    } else {
        XdpError::Load(Box::new(e))
    }
}

fn permission<E: std::error::Error + Send + Sync + 'static>(what: &'static str, e: E) -> XdpError {
    XdpError::Permission {
        what,
        source: Box::new(e),
    }
}

/// Whether an `EPERM`/`EACCES` from the kernel is somewhere in `e`'s source chain.
fn is_permission(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// `e` and its sources on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        out.push_str(": ");
        out.push_str(&err.to_string());
        cur = err.source();
    }
    out
}

/// Number of rx queues of `iface`: the `queues/rx-*` entries in sysfs, else the ethtool
/// channel counts (`ETHTOOL_GCHANNELS`: rx + combined).
pub fn rx_queue_count(iface: &str) -> io::Result<u32> {
    let dir = std::path::Path::new("/sys/class/net")
        .join(iface)
        .join("queues");
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut n = 0u32;
            for entry in entries {
                if entry?.file_name().to_string_lossy().starts_with("rx-") {
                    n += 1;
                }
            }
            if n > 0 {
                return Ok(n);
            }
            ethtool_rx_channels(iface)
        }
        Err(_) => ethtool_rx_channels(iface),
    }
}

fn ethtool_rx_channels(iface: &str) -> io::Result<u32> {
    #[repr(C)]
    #[derive(Default)]
    struct EthtoolChannels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    const ETHTOOL_GCHANNELS: u32 = 0x3c;

    let name = iface.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    // SAFETY: plain C structs, zero-initialised; the socket fd is closed below.
    unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, &src) in ifr.ifr_name.iter_mut().zip(name) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = (&raw mut channels).cast();
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let rc = libc::ioctl(fd, libc::SIOCETHTOOL, &raw mut ifr);
        let err = io::Error::last_os_error();
        libc::close(fd);
        if rc < 0 {
            return Err(err);
        }
    }
    Ok((channels.rx_count + channels.combined_count).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keys() {
        let k = endpoint_key("10.1.2.3:4000".parse().unwrap());
        assert_eq!(k, MediaEndpointKey::v4([10, 1, 2, 3], 4000));
        let mapped = endpoint_key("[::ffff:10.1.2.3]:4000".parse().unwrap());
        assert_eq!(mapped, k);
        let v6 = endpoint_key("[2001:db8::1]:5004".parse().unwrap());
        assert_eq!(v6.family, voxtap_common::FAMILY_IPV6);
        assert_eq!(v6.port, 5004);
    }

    #[test]
    fn loopback_has_a_queue() {
        assert!(rx_queue_count("lo").unwrap() >= 1);
    }

    #[test]
    fn unknown_interface_lists_the_ones_there_are() {
        if !program_available() {
            let e = XdpProgram::attach("lo", &XdpOptions::default()).unwrap_err();
            assert!(matches!(e, XdpError::NotBuilt));
            assert!(e.to_string().contains("--capture afpacket"));
            return;
        }
        let e = XdpProgram::attach("vt-no-such-if0", &XdpOptions::default()).unwrap_err();
        assert!(matches!(e, XdpError::NoSuchInterface(_)), "{e}");
        let text = e.to_string();
        // AF_PACKET would not find it either.
        assert!(!text.contains("afpacket"), "{text}");
        assert!(
            text.contains("no network interface named \"vt-no-such-if0\"") && text.contains("lo"),
            "{text}"
        );
    }
}
