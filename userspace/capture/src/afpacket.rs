//! AF_PACKET capture through libpcap: the portable fallback when AF_XDP is not available.
//!
//! libpcap in immediate mode uses a TPACKET_V2 ring, so every frame is readable as soon as it
//! arrives. The handle is non-blocking; `poll` waits on its selectable fd, then takes up to
//! [`BATCH`] frames with one `pcap_dispatch`. Timestamps are the kernel's, in nanoseconds.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use voxtap_core::{LinkType, Timestamp};

use crate::live::{BATCH, LiveCapture, LiveFrame, QueueStats, poll_fds};

#[derive(Clone, Debug)]
pub struct AfPacketOptions {
    /// Bytes kept of each frame.
    pub snaplen: u32,
    /// Kernel ring size; absorbs bursts while the reader is busy.
    pub buffer_bytes: u32,
    pub promisc: bool,
    /// A pcap filter expression (`tcpdump` syntax), compiled and run in the kernel.
    pub bpf_filter: Option<String>,
}

impl Default for AfPacketOptions {
    fn default() -> Self {
        AfPacketOptions {
            snaplen: 65_535,
            buffer_bytes: 64 << 20,
            promisc: true,
            bpf_filter: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AfPacketError {
    #[error("{iface}: cannot open for capture: {source}")]
    Open { iface: String, source: pcap::Error },
    #[error("{iface}: capture filter {filter:?} rejected: {source}")]
    Filter {
        iface: String,
        filter: String,
        source: pcap::Error,
    },
    #[error("{iface}: {what}: {source}")]
    Setup {
        iface: String,
        what: &'static str,
        source: pcap::Error,
    },
}

pub struct AfPacket {
    iface: String,
    cap: pcap::Capture<pcap::Active>,
    fd: RawFd,
    link: LinkType,
    /// libpcap gives `tv_usec` in nanoseconds when nanosecond precision was granted.
    nanos: bool,
    packets: u64,
    bytes: u64,
    kernel_dropped: u64,
}

// The pcap crate does not bind these two.
#[link(name = "pcap")]
unsafe extern "C" {
    fn pcap_lib_version() -> *const libc::c_char;
    fn pcap_get_tstamp_precision(p: *mut libc::c_void) -> libc::c_int;
}

const PCAP_TSTAMP_PRECISION_NANO: libc::c_int = 1;

impl AfPacket {
    pub fn open(iface: &str, opts: AfPacketOptions) -> Result<AfPacket, AfPacketError> {
        let setup = |what| {
            let iface = iface.to_string();
            move |source| AfPacketError::Setup {
                iface,
                what,
                source,
            }
        };
        let open_err = |source| AfPacketError::Open {
            iface: iface.to_string(),
            source,
        };
        let snaplen = i32::try_from(opts.snaplen).unwrap_or(i32::MAX);
        let buffer = i32::try_from(opts.buffer_bytes).unwrap_or(i32::MAX);
        let mut cap = pcap::Capture::from_device(iface)
            .map_err(open_err)?
            .snaplen(snaplen)
            .buffer_size(buffer)
            .promisc(opts.promisc)
            .immediate_mode(true)
            .precision(pcap::Precision::Nano)
            .open()
            .map_err(open_err)?
            .setnonblock()
            .map_err(setup("cannot make the capture non-blocking"))?;
        if let Some(filter) = &opts.bpf_filter {
            cap.filter(filter, true)
                .map_err(|source| AfPacketError::Filter {
                    iface: iface.to_string(),
                    filter: filter.clone(),
                    source,
                })?;
        }
        let link = LinkType::from_pcap(cap.get_datalink().0 as u32);
        // SAFETY: the handle is live for the duration of the call.
        let nanos =
            unsafe { pcap_get_tstamp_precision(cap.as_ptr().cast()) } == PCAP_TSTAMP_PRECISION_NANO;
        let fd = cap.as_raw_fd();
        Ok(AfPacket {
            iface: iface.to_string(),
            cap,
            fd,
            link,
            nanos,
            packets: 0,
            bytes: 0,
            kernel_dropped: 0,
        })
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    fn dispatch(&mut self, f: &mut dyn FnMut(LiveFrame<'_>)) -> io::Result<usize> {
        let (link, nanos) = (self.link, self.nanos);
        let mut bytes = 0u64;
        let n = self
            .cap
            .dispatch(Some(BATCH), |pkt| {
                let sub = pkt.header.ts.tv_usec.max(0) as u32;
                let ts = Timestamp::from_secs_nanos(
                    pkt.header.ts.tv_sec.max(0) as u64,
                    if nanos { sub } else { sub * 1000 },
                );
                bytes += pkt.data.len() as u64;
                f(LiveFrame {
                    ts,
                    link,
                    data: pkt.data,
                    queue: 0,
                });
            })
            .map_err(|e| io::Error::other(format!("{}: capture failed: {e}", self.iface)))?;
        self.packets += n as u64;
        self.bytes += bytes;
        Ok(n)
    }
}

impl LiveCapture for AfPacket {
    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(LiveFrame<'_>)) -> io::Result<usize> {
        let n = self.dispatch(f)?;
        if n > 0 || timeout.is_zero() {
            return Ok(n);
        }
        let mut fds = [libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        if poll_fds(&mut fds, timeout)? == 0 {
            return Ok(0);
        }
        self.dispatch(f)
    }

    fn stats(&mut self) -> Vec<QueueStats> {
        // Keep the last good figure if libpcap cannot answer (e.g. the interface went away).
        if let Ok(s) = self.cap.stats() {
            self.kernel_dropped = u64::from(s.dropped) + u64::from(s.if_dropped);
        }
        vec![QueueStats {
            queue: 0,
            packets: self.packets,
            bytes: self.bytes,
            kernel_dropped: self.kernel_dropped,
            ..QueueStats::default()
        }]
    }

    fn describe(&self) -> String {
        // SAFETY: libpcap returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(pcap_lib_version()) }.to_string_lossy();
        // "libpcap version 1.10.3 (with TPACKET_V3)" -> "libpcap 1.10.3"
        let version = version
            .strip_prefix("libpcap version ")
            .map(|v| v.split_whitespace().next().unwrap_or(v))
            .unwrap_or(&version);
        format!("AF_PACKET on {} via libpcap {version}", self.iface)
    }
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<AfPacket>();
};
