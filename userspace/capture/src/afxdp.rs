//! AF_XDP capture: one XDP socket per NIC receive queue, receive only.
//!
//! Each queue has its own UMEM (one socket owns UMEM, fill, completion and RX rings). One UMEM
//! per queue keeps every ring single-producer single-consumer with no sharing between queues,
//! so a queue could later move to its own thread; the cost is `frames_per_queue * frame_size`
//! bytes of memory per queue (8 MiB at the defaults).
//!
//! Frames reach the sockets only once an XDP program redirects them into an `XSKMAP`: the
//! caller puts [`AfXdp::socket_fds`] into that map. We never transmit; the completion ring
//! exists only because the kernel requires one to bind.
//!
//! Kernel ≥ 5.9 for the full `XDP_STATISTICS`; `need_wakeup` (≥ 5.4) is used when the bind
//! accepts it.

use std::ffi::CString;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use voxtap_core::LinkType;
use xdpilone::{DeviceQueue, IfInfo, RingRx, Socket, SocketConfig, Umem, UmemConfig};

use crate::live::{BATCH, LiveCapture, LiveFrame, QueueStats, poll_fds, realtime_now};

/// Whether to ask the driver for zero-copy (frames DMA'd straight into the UMEM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Zero-copy where the driver supports it, else copy mode.
    #[default]
    Try,
    /// Zero-copy or fail.
    Require,
    /// Copy mode only.
    Never,
}

#[derive(Clone, Debug)]
pub struct AfXdpOptions {
    /// UMEM chunk size: 2048 or 4096. A frame longer than a chunk is dropped by the kernel.
    pub frame_size: u32,
    /// UMEM chunks per queue; at least `ring_size`.
    pub frames_per_queue: u32,
    /// Entries in each of the fill, completion and RX rings; a power of two.
    pub ring_size: u32,
    pub zero_copy: ZeroCopy,
}

impl Default for AfXdpOptions {
    fn default() -> Self {
        AfXdpOptions {
            frame_size: 2048,
            frames_per_queue: 4096,
            ring_size: 2048,
            zero_copy: ZeroCopy::Try,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    #[error("{iface}: no such interface")]
    NoSuchInterface { iface: String },
    #[error("{iface}: no receive queues given")]
    NoQueues { iface: String },
    #[error("AF_XDP option {option}: {why}")]
    BadOption { option: &'static str, why: String },
    #[error("{iface} queue {queue}: {step}: {source}")]
    Queue {
        iface: String,
        queue: u32,
        step: String,
        source: io::Error,
    },
}

/// One bound XDP socket and the memory it receives into. Field order is drop order: rings
/// unmapped, then the socket closed (which releases the kernel's hold on the UMEM), then the
/// UMEM unmapped.
struct Queue {
    queue: u32,
    rx: RingRx,
    /// Fill and completion rings; the socket fd lives as long as this and `rx`.
    device: DeviceQueue,
    zero_copy: bool,
    need_wakeup: bool,
    /// Chunk addresses we own and have not yet put on the fill ring.
    free: Vec<u64>,
    packets: u64,
    bytes: u64,
    /// Descriptors pointing outside the UMEM; never expected from a correct kernel.
    bad_desc: u64,
    area: UmemArea,
}

/// An anonymous private mapping registered as a UMEM.
struct UmemArea {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone and is only read through `&mut Queue`;
// moving it between threads moves the ownership with it.
unsafe impl Send for UmemArea {}

impl UmemArea {
    fn map(len: usize) -> io::Result<UmemArea> {
        // SAFETY: anonymous mapping, no fd, no fixed address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(UmemArea {
            ptr: NonNull::new(p.cast()).expect("mmap returned NULL"),
            len,
        })
    }

    fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: exactly the region mapped in `map`; no slice into it outlives `poll`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

pub struct AfXdp {
    iface: String,
    queues: Vec<Queue>,
    pollfds: Vec<libc::pollfd>,
    frame_size: u32,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<AfXdp>();
};

fn errno(e: xdpilone::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.get_raw().abs())
}

impl AfXdp {
    /// Binds one RX-only XDP socket to each of `queues` on `iface`. Frames arrive once the
    /// caller's XDP program redirects them to [`AfXdp::socket_fds`].
    pub fn open(iface: &str, queues: &[u32], opts: AfXdpOptions) -> Result<AfXdp, AfXdpError> {
        check_options(&opts)?;
        if queues.is_empty() {
            return Err(AfXdpError::NoQueues {
                iface: iface.to_string(),
            });
        }
        let name = CString::new(iface).map_err(|_| AfXdpError::NoSuchInterface {
            iface: iface.to_string(),
        })?;
        let mut info = IfInfo::invalid();
        info.from_name(&name)
            .map_err(|_| AfXdpError::NoSuchInterface {
                iface: iface.to_string(),
            })?;

        let mut opened = Vec::with_capacity(queues.len());
        for &queue in queues {
            info.set_queue(queue);
            opened.push(open_queue(iface, &info, queue, &opts)?);
        }
        let pollfds = opened
            .iter()
            .map(|q| libc::pollfd {
                fd: q.device.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        Ok(AfXdp {
            iface: iface.to_string(),
            queues: opened,
            pollfds,
            frame_size: opts.frame_size,
        })
    }

    /// `(queue, fd)` for each socket, to be stored at key `queue` in the XDP program's XSKMAP.
    /// The fds stay owned by `self`: do not close them.
    pub fn socket_fds(&self) -> Vec<(u32, RawFd)> {
        self.queues
            .iter()
            .map(|q| (q.queue, q.device.as_raw_fd()))
            .collect()
    }

    /// True if every queue was bound in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.queues.iter().all(|q| q.zero_copy)
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    fn drain(&mut self, f: &mut dyn FnMut(LiveFrame<'_>)) -> usize {
        let chunk_mask = !(u64::from(self.frame_size) - 1);
        let mut total = 0;
        for q in &mut self.queues {
            total += q.drain(chunk_mask, f);
        }
        total
    }
}

impl Queue {
    /// Takes up to [`BATCH`] frames off the RX ring, lends each to `f`, then gives the chunks
    /// straight back to the fill ring.
    fn drain(&mut self, chunk_mask: u64, f: &mut dyn FnMut(LiveFrame<'_>)) -> usize {
        // Chunks become ours again only once the batch is released: if `f` panics, the RX
        // ring rolls back and no chunk is both on the ring and in `free`.
        let mut taken = [0u64; BATCH];
        let mut n = 0;
        let mut rx = self.rx.receive(BATCH as u32);
        if rx.capacity() == 0 {
            return 0;
        }
        let ts = realtime_now();
        while let Some(desc) = rx.read() {
            taken[n] = desc.addr & chunk_mask;
            n += 1;
            let start = desc.addr as usize;
            match start.checked_add(desc.len as usize) {
                Some(end) if end <= self.area.len => {
                    // SAFETY: in bounds of the UMEM; the kernel does not write this chunk
                    // until we put it back on the fill ring, after `f` returns.
                    let data = unsafe {
                        std::slice::from_raw_parts(
                            self.area.ptr.as_ptr().add(start),
                            desc.len as usize,
                        )
                    };
                    self.packets += 1;
                    self.bytes += data.len() as u64;
                    f(LiveFrame {
                        ts,
                        link: LinkType::Ethernet,
                        data,
                        queue: self.queue,
                    });
                }
                _ => self.bad_desc += 1,
            }
        }
        rx.release();
        drop(rx);
        self.free.extend_from_slice(&taken[..n]);
        self.refill();
        n
    }

    /// Puts every free chunk the fill ring has room for back on it.
    fn refill(&mut self) {
        if self.free.is_empty() {
            return;
        }
        let mut fill = self.device.fill(self.free.len() as u32);
        let room = fill.capacity() as usize;
        let keep = self.free.len() - room;
        fill.insert(self.free[keep..].iter().copied());
        fill.commit();
        drop(fill);
        self.free.truncate(keep);
        if self.need_wakeup && self.device.needs_wakeup() {
            self.device.wake();
        }
    }

    fn stats(&self) -> QueueStats {
        let mut s = QueueStats {
            queue: self.queue,
            packets: self.packets,
            bytes: self.bytes,
            ..QueueStats::default()
        };
        if let Ok(x) = self.device.statistics_v2() {
            s.rx_ring_full = x.rx_ring_full + x.rx_dropped;
            s.fill_ring_empty = x.rx_fill_ring_empty_descs;
        }
        s
    }
}

fn check_options(opts: &AfXdpOptions) -> Result<(), AfXdpError> {
    let bad = |option, why: String| Err(AfXdpError::BadOption { option, why });
    if !matches!(opts.frame_size, 2048 | 4096) {
        return bad(
            "frame_size",
            format!("{} is not 2048 or 4096", opts.frame_size),
        );
    }
    if !opts.ring_size.is_power_of_two() {
        return bad(
            "ring_size",
            format!("{} is not a power of two", opts.ring_size),
        );
    }
    if opts.frames_per_queue < opts.ring_size {
        return bad(
            "frames_per_queue",
            format!(
                "{} is fewer than ring_size {}",
                opts.frames_per_queue, opts.ring_size
            ),
        );
    }
    if u64::from(opts.frames_per_queue) * u64::from(opts.frame_size) > 1 << 32 {
        return bad("frames_per_queue", "UMEM over 4 GiB per queue".to_string());
    }
    Ok(())
}

/// Bind modes to try, best first.
fn bind_attempts(zc: ZeroCopy) -> &'static [(bool, u16)] {
    const ZC: u16 = SocketConfig::XDP_BIND_ZEROCOPY;
    const COPY: u16 = SocketConfig::XDP_BIND_COPY;
    const WAKE: u16 = SocketConfig::XDP_BIND_NEED_WAKEUP;
    match zc {
        ZeroCopy::Try => &[
            (true, ZC | WAKE),
            (true, ZC),
            (false, COPY | WAKE),
            (false, COPY),
        ],
        ZeroCopy::Require => &[(true, ZC | WAKE), (true, ZC)],
        ZeroCopy::Never => &[(false, COPY | WAKE), (false, COPY)],
    }
}

fn open_queue(
    iface: &str,
    info: &IfInfo,
    queue: u32,
    opts: &AfXdpOptions,
) -> Result<Queue, AfXdpError> {
    let queue_err = |step: String, source| AfXdpError::Queue {
        iface: iface.to_string(),
        queue,
        step,
        source,
    };
    // The kernel frees a closed socket's hold on its queue from a workqueue, so a queue that
    // was just released can still be busy for a moment.
    let busy_until = Instant::now() + BUSY_WAIT;
    let mut tried: Vec<String> = Vec::new();
    for &(zero_copy, flags) in bind_attempts(opts.zero_copy) {
        let mode = format!(
            "{}{}",
            if zero_copy { "zero-copy" } else { "copy mode" },
            if flags & SocketConfig::XDP_BIND_NEED_WAKEUP != 0 {
                " + need_wakeup"
            } else {
                ""
            },
        );
        loop {
            // A failed bind may leave the socket half set up: each attempt starts from scratch.
            match try_open_queue(info, queue, opts, flags) {
                Ok(q) => return Ok(q),
                Err(("bind", e)) if e.raw_os_error() == Some(libc::EBUSY) => {
                    if Instant::now() < busy_until {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    return Err(queue_err(
                        format!(
                            "bind ({mode}): queue in use by another AF_XDP socket (still busy after {} ms)",
                            BUSY_WAIT.as_millis()
                        ),
                        e,
                    ));
                }
                Err(("bind", e)) => {
                    if tried.len() + 1 < bind_attempts(opts.zero_copy).len() {
                        tried.push(format!("{mode}: {e}"));
                        break;
                    }
                    // Last mode: its error is the source, the earlier ones go in the step.
                    tried.push(mode);
                    return Err(queue_err(format!("bind ({})", tried.join("; ")), e));
                }
                Err((step, source)) => return Err(queue_err(step.to_string(), source)),
            }
        }
    }
    unreachable!("the last bind attempt returns")
}

/// How long a busy queue is retried; see `open_queue`.
const BUSY_WAIT: Duration = Duration::from_secs(2);

fn try_open_queue(
    info: &IfInfo,
    queue: u32,
    opts: &AfXdpOptions,
    bind_flags: u16,
) -> Result<Queue, (&'static str, io::Error)> {
    let len = opts.frames_per_queue as usize * opts.frame_size as usize;
    let area = UmemArea::map(len).map_err(|e| ("mmap UMEM", e))?;
    let config = UmemConfig {
        fill_size: opts.ring_size,
        complete_size: opts.ring_size,
        frame_size: opts.frame_size,
        headroom: 0,
        flags: 0,
    };
    // SAFETY: page-aligned fresh mapping of `len` bytes; `Queue` keeps it alive (and drops it
    // last) for as long as the socket that registered it.
    let umem = unsafe { Umem::new(config, area.as_slice_ptr()) }
        .map_err(|e| ("register UMEM", errno(e)))?;
    let sock = Socket::with_shared(info, &umem).map_err(|e| ("socket", errno(e)))?;
    let mut device = umem
        .fq_cq(&sock)
        .map_err(|e| ("fill/completion rings", errno(e)))?;
    let user = umem
        .rx_tx(
            &sock,
            &SocketConfig {
                rx_size: NonZeroU32::new(opts.ring_size),
                tx_size: None,
                bind_flags,
            },
        )
        .map_err(|e| ("RX ring", errno(e)))?;
    let rx = user.map_rx().map_err(|e| ("map RX ring", errno(e)))?;
    umem.bind(&user).map_err(|e| ("bind", errno(e)))?;

    // Every chunk starts ours; the fill ring takes what it has room for.
    let mut free: Vec<u64> = (0..u64::from(opts.frames_per_queue))
        .rev()
        .map(|i| i * u64::from(opts.frame_size))
        .collect();
    {
        let mut fill = device.fill(free.len() as u32);
        let keep = free.len() - fill.capacity() as usize;
        fill.insert(free[keep..].iter().copied());
        fill.commit();
        drop(fill);
        free.truncate(keep);
    }
    Ok(Queue {
        queue,
        rx,
        device,
        zero_copy: bind_flags & SocketConfig::XDP_BIND_ZEROCOPY != 0,
        need_wakeup: bind_flags & SocketConfig::XDP_BIND_NEED_WAKEUP != 0,
        free,
        packets: 0,
        bytes: 0,
        bad_desc: 0,
        area,
    })
}

impl LiveCapture for AfXdp {
    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(LiveFrame<'_>)) -> io::Result<usize> {
        let n = self.drain(f);
        if n > 0 || timeout.is_zero() {
            return Ok(n);
        }
        // poll(2) on an XDP socket also kicks the driver when the fill ring needs a wakeup.
        for p in &mut self.pollfds {
            p.revents = 0;
        }
        if poll_fds(&mut self.pollfds, timeout)? == 0 {
            return Ok(0);
        }
        if let Some(p) = self
            .pollfds
            .iter()
            .find(|p| p.revents & (libc::POLLERR | libc::POLLNVAL) != 0)
        {
            return Err(io::Error::other(format!(
                "{}: XDP socket {} reports an error (revents {:#x})",
                self.iface, p.fd, p.revents
            )));
        }
        Ok(self.drain(f))
    }

    fn stats(&mut self) -> Vec<QueueStats> {
        self.queues.iter().map(Queue::stats).collect()
    }

    fn describe(&self) -> String {
        let n = self.queues.len();
        let zc = self.queues.iter().filter(|q| q.zero_copy).count();
        let mode = if zc == n {
            "zero-copy".to_string()
        } else if zc == 0 {
            "copy mode".to_string()
        } else {
            format!("zero-copy on {zc}, copy mode on {}", n - zc)
        };
        format!(
            "AF_XDP on {}, {n} queue{}, {mode}",
            self.iface,
            if n == 1 { "" } else { "s" }
        )
    }
}
