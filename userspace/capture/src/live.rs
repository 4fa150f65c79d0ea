//! Live capture: one trait over AF_PACKET (libpcap) and AF_XDP.
//!
//! A backend owns its sockets and rings; `poll` waits, then lends each received frame to a
//! callback for the length of that call only, so AF_XDP can hand out UMEM slices and give the
//! chunk back to the kernel right after.

use std::io;
use std::time::Duration;

use voxtap_core::{LinkType, Timestamp};

/// Most frames taken from one queue in one `poll`: bounds the time between refills.
pub const BATCH: usize = 64;

/// One received frame, borrowed from the backend for the duration of the callback.
#[derive(Clone, Copy, Debug)]
pub struct LiveFrame<'a> {
    /// The kernel's receive timestamp where the backend has one (AF_PACKET), else
    /// `CLOCK_REALTIME` read when the batch was taken off the ring (AF_XDP).
    pub ts: Timestamp,
    pub link: LinkType,
    pub data: &'a [u8],
    /// NIC receive queue (AF_XDP); always 0 for AF_PACKET.
    pub queue: u32,
}

/// Counters for one receive queue since the capture was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: u32,
    /// Frames handed to the callback.
    pub packets: u64,
    /// Bytes handed to the callback (captured length).
    pub bytes: u64,
    /// AF_XDP: frames the kernel could not deliver to the socket, `rx_ring_full + rx_dropped`
    /// of `XDP_STATISTICS`: RX ring full, no free chunk on the fill ring, or a frame larger
    /// than a chunk. `fill_ring_empty` tells the second cause apart.
    pub rx_ring_full: u64,
    /// AF_XDP: times the kernel found the fill ring empty (`rx_fill_ring_empty_descs`).
    pub fill_ring_empty: u64,
    /// AF_PACKET: frames lost in the kernel or the interface (`ps_drop + ps_ifdrop`).
    pub kernel_dropped: u64,
}

pub trait LiveCapture: Send {
    /// Waits up to `timeout` for frames, calls `f` for each frame received (in batches, up to
    /// [`BATCH`] per queue per call) and returns how many. `Ok(0)` on timeout or a signal.
    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(LiveFrame<'_>)) -> io::Result<usize>;

    /// One entry per queue.
    fn stats(&mut self) -> Vec<QueueStats>;

    /// For logs and the TUI, e.g. "AF_XDP on eth0, 2 queues, zero-copy".
    fn describe(&self) -> String;
}

/// `CLOCK_REALTIME` now.
pub fn realtime_now() -> Timestamp {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    Timestamp::from_secs_nanos(ts.tv_sec.max(0) as u64, ts.tv_nsec as u32)
}

/// `poll(2)` on `fds` for input, retrying nothing: `Ok(0)` on timeout or EINTR.
pub(crate) fn poll_fds(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    // Round up so a 100 µs timeout still waits rather than spinning.
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(err);
    }
    Ok(r as usize)
}
