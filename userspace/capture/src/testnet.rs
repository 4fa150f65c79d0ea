//! Test fixture: a network namespace joined to this one by a veth pair, and a raw sender inside
//! it. Frames sent from the namespace end arrive on the host end, where a capture listens.
//!
//! Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and `ip` from iproute2. Tests call
//! [`TestNet::new_or_skip`], which prints a loud `SKIPPED:` line where that is missing.
//! IPv6 is off on both ends so the kernel sends nothing of its own (router solicitations, MLD):
//! only the test's frames cross the link.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace with one end of a veth pair; the other end is in the caller's namespace.
/// Dropping it deletes the namespace, which deletes both ends.
#[derive(Debug)]
pub struct TestNet {
    ns: String,
    host_if: String,
    ns_if: String,
}

impl TestNet {
    /// Creates namespace and veth pair, both ends up. Names are unique per process and call,
    /// built from up to 4 characters of `prefix` so they fit IFNAMSIZ.
    pub fn new(prefix: &str) -> io::Result<TestNet> {
        TestNet::with_queues(prefix, 1)
    }

    /// Like [`TestNet::new`] with `queues` RX and TX queues on each end. veth delivers a frame
    /// sent on TX queue `i` of one end to RX queue `i` of the other; see
    /// [`TestNet::send_frames_on_queue`].
    pub fn with_queues(prefix: &str, queues: u32) -> io::Result<TestNet> {
        sweep_stale();
        let short: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(4)
            .collect();
        let tag = format!(
            "{:x}x{:x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let net = TestNet {
            ns: format!("voxtap-{short}-{tag}"),
            host_if: format!("{short}h{tag}"),
            ns_if: format!("{short}n{tag}"),
        };
        if net.host_if.len() > 15 {
            return Err(io::Error::other(format!(
                "interface name {} too long",
                net.host_if
            )));
        }
        ip(&["netns", "add", &net.ns])?;
        // From here on Drop cleans up, also on the error paths below.
        let q = queues.max(1).to_string();
        ip(&[
            "link",
            "add",
            &net.host_if,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &net.ns_if,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "netns",
            &net.ns,
        ])?;
        // Before the link is up, so no link-local address and no IPv6 chatter ever appears.
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", net.host_if),
            "1",
        );
        let _ = run(Command::new("ip").args([
            "netns",
            "exec",
            &net.ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", net.ns_if),
        ]));
        ip(&["link", "set", &net.host_if, "up"])?;
        ip(&["-n", &net.ns, "link", "set", &net.ns_if, "up"])?;
        net.wait_running()?;
        Ok(net)
    }

    /// Like [`TestNet::new`], but where the fixture cannot be built (not root, no `ip`, no
    /// netns support) prints `SKIPPED: <test>: <reason>` past the test harness's output capture
    /// and returns `None`, so a skipped test is visible in the log, never silently green.
    pub fn new_or_skip(prefix: &str, test: &str) -> Option<TestNet> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skipped(
                test,
                "needs root to create a network namespace and veth pair",
            );
            return None;
        }
        match TestNet::new(prefix) {
            Ok(net) => Some(net),
            Err(e) => {
                skipped(test, &format!("cannot create netns + veth: {e}"));
                None
            }
        }
    }

    /// Name of the namespace, for `ip netns exec`.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The end in the caller's namespace: capture here.
    pub fn host_if(&self) -> &str {
        &self.host_if
    }

    /// The end inside the namespace: frames are sent from here.
    pub fn ns_if(&self) -> &str {
        &self.ns_if
    }

    /// Runs `f` on a thread that has joined the namespace; sockets it opens live there.
    pub fn in_ns<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
                // SAFETY: a valid netns fd; setns only changes this (short-lived) thread.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    let e = io::Error::last_os_error();
                    return Err(io::Error::new(e.kind(), format!("setns {path}: {e}")));
                }
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Sends each frame (a full Ethernet frame, without FCS) out of the namespace end, in order.
    pub fn send_frames(&self, frames: &[&[u8]]) -> io::Result<()> {
        self.in_ns(|| {
            let sock = RawSender::open(&self.ns_if)?;
            for frame in frames {
                sock.send(frame)?;
            }
            Ok(())
        })
    }

    /// Sends the frames out of TX queue `queue` of the namespace end, so they arrive on RX
    /// queue `queue` of the host end. AF_PACKET picks the TX queue from the sending CPU, so the
    /// sender pins itself to CPU `queue`, which must exist.
    pub fn send_frames_on_queue(&self, queue: u32, frames: &[&[u8]]) -> io::Result<()> {
        self.in_ns(|| {
            pin_to_cpu(queue as usize)?;
            let sock = RawSender::open(&self.ns_if)?;
            sock.bypass_qdisc()?;
            for frame in frames {
                sock.send(frame)?;
            }
            Ok(())
        })
    }

    /// Sends `(ts_ns, frame)` pairs with the gaps between their timestamps divided by `speed`
    /// (1.0 = real time, 2.0 = twice as fast). Blocks until the last frame is sent.
    pub fn replay_paced(&self, frames: &[(u64, Vec<u8>)], speed: f64) -> io::Result<()> {
        if !(speed > 0.0 && speed.is_finite()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("replay speed must be positive, got {speed}"),
            ));
        }
        let Some(first) = frames.first().map(|(ts, _)| *ts) else {
            return Ok(());
        };
        self.in_ns(|| {
            let sock = RawSender::open(&self.ns_if)?;
            let start = Instant::now();
            for (ts_ns, frame) in frames {
                // Out-of-order timestamps are sent at once rather than waited for.
                let offset = ts_ns.saturating_sub(first) as f64 / speed;
                let due = start + Duration::from_nanos(offset as u64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                sock.send(frame)?;
            }
            Ok(())
        })
    }

    /// Sends `count` frames made by `make(i, &mut frame)` at `pps` frames per second, in 1 ms
    /// bursts, from the namespace end. Returns how long sending took, so callers can tell the
    /// rate they asked for from the rate the sender managed.
    pub fn send_at_rate(
        &self,
        count: u64,
        pps: u64,
        mut make: impl FnMut(u64, &mut Vec<u8>) + Send,
    ) -> io::Result<Duration> {
        self.in_ns(|| {
            let sock = RawSender::open(&self.ns_if)?;
            let per_ms = (pps / 1000).max(1);
            let mut frame = Vec::with_capacity(2048);
            let start = Instant::now();
            let mut sent = 0u64;
            while sent < count {
                let due = start + Duration::from_nanos(sent * 1_000_000_000 / pps.max(1));
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
                for _ in 0..per_ms.min(count - sent) {
                    make(sent, &mut frame);
                    sock.send(&frame)?;
                    sent += 1;
                }
            }
            Ok(start.elapsed())
        })
    }

    /// veth reports carrier only once both ends are up; wait so the first frame is not lost.
    fn wait_running(&self) -> io::Result<()> {
        let path = format!("/sys/class/net/{}/operstate", self.host_if);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(&path).unwrap_or_default();
            if state.trim() == "up" {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{} did not come up (operstate {:?})",
                    self.host_if,
                    state.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the host end.
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Deletes namespaces left by test processes that died without running Drop (`kill -9`, abort).
/// Names carry the creating pid, so a live process's namespaces are never touched.
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // voxtap-{short}-{pid:x}x{n}
        let pid = name
            .strip_prefix("voxtap-")
            .and_then(|rest| rest.rsplit_once('-'))
            .and_then(|(_, tag)| tag.split_once('x'))
            .and_then(|(pid, _)| u32::from_str_radix(pid, 16).ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// Prints `SKIPPED: test: reason` straight to stderr: libtest captures `eprintln!`, not this.
pub fn skipped(test: &str, reason: &str) {
    // One write, so lines from tests running in parallel do not interleave.
    let line = format!("\nSKIPPED: {test}: {reason}\n\n");
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: valid set of the given size; 0 = the calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("pin sender to CPU {cpu}: {e}"),
        ));
    }
    Ok(())
}

/// A send-only `AF_PACKET` raw socket bound to one interface of the current namespace.
struct RawSender {
    fd: OwnedFd,
}

impl RawSender {
    fn open(iface: &str) -> io::Result<RawSender> {
        let name = CString::new(iface).map_err(io::Error::other)?;
        // SAFETY: valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("{iface}: {e}")));
        }
        // Protocol 0: this socket receives nothing, it only sends.
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("AF_PACKET socket: {e}")));
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: addr is a valid sockaddr_ll of the given size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("bind to {iface}: {e}")));
        }
        Ok(RawSender { fd })
    }

    /// Without the qdisc, the kernel picks the TX queue from the sending CPU
    /// (`packet_pick_tx_queue`) instead of hashing a flow our test frames do not have.
    fn bypass_qdisc(&self) -> io::Result<()> {
        const PACKET_QDISC_BYPASS: libc::c_int = 20;
        let on: libc::c_int = 1;
        // SAFETY: valid int option of the given size.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_QDISC_BYPASS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("PACKET_QDISC_BYPASS: {e}"),
            ));
        }
        Ok(())
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: frame is a valid readable buffer.
            let n =
                unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // The device queue is momentarily full: back off instead of losing the frame.
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) => {
                    std::thread::sleep(Duration::from_micros(100))
                }
                _ => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("send of a {}-byte frame: {e}", frame.len()),
                    ));
                }
            }
        }
    }
}

fn ip(args: &[&str]) -> io::Result<()> {
    run(Command::new("ip").args(args))
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
