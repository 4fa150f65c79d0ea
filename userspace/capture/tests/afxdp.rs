//! AF_XDP capture on the host end of a veth pair, frames sent from a namespace.
//!
//! The redirect into the sockets is a six-instruction XDP program of this test's own (see
//! `redirect`), standing in for voxtap's real XDP program. Needs root; prints `SKIPPED:`
//! otherwise.

use std::time::{Duration, Instant};

use voxtap_capture::afxdp::{AfXdp, AfXdpError, AfXdpOptions, ZeroCopy};
use voxtap_capture::live::{LiveCapture, realtime_now};
use voxtap_capture::testnet::TestNet;
use voxtap_core::{LinkType, Timestamp};

const ETHERTYPE: u16 = 0x88b5;

fn frame(seq: u32) -> Vec<u8> {
    let len = 60 + (seq as usize * 97) % 1440;
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&[0x02, 0x00, 0x5e, 0x00, 0x00, 0x02]);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u32 ^ seq) as u8);
    }
    f
}

fn seq(data: &[u8]) -> u32 {
    u32::from_be_bytes(data[14..18].try_into().unwrap())
}

fn is_test_frame(data: &[u8]) -> bool {
    data.len() >= 18 && data[12..14] == ETHERTYPE.to_be_bytes()
}

fn collect(cap: &mut dyn LiveCapture, want: usize) -> Vec<(Timestamp, u32, Vec<u8>)> {
    collect_for(cap, want, Duration::from_secs(5))
}

fn collect_for(
    cap: &mut dyn LiveCapture,
    want: usize,
    limit: Duration,
) -> Vec<(Timestamp, u32, Vec<u8>)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    while got.len() < want && Instant::now() < deadline {
        let n = cap
            .poll(Duration::from_millis(50), &mut |f| {
                assert_eq!(f.link, LinkType::Ethernet);
                if is_test_frame(f.data) {
                    got.push((f.ts, f.queue, f.data.to_vec()));
                }
            })
            .expect("poll");
        assert!(
            n <= 128,
            "two queues give at most 2 x 64 frames per poll, got {n}"
        );
    }
    got
}

/// Opens AF_XDP on the host end of `net` and redirects its queue 0 into it.
fn open(net: &TestNet, opts: AfXdpOptions) -> (AfXdp, redirect::Redirect) {
    let xdp = AfXdp::open(net.host_if(), &[0], opts)
        .unwrap_or_else(|e| panic!("open AF_XDP on {}: {e}", net.host_if()));
    let redirect = redirect::Redirect::attach(net.host_if(), &xdp.socket_fds())
        .unwrap_or_else(|e| panic!("attach test XDP program to {}: {e}", net.host_if()));
    (xdp, redirect)
}

#[test]
fn every_frame_arrives_intact_through_the_umem() {
    let Some(net) = TestNet::new_or_skip("axd", "afxdp every_frame_arrives_intact") else {
        return;
    };
    let (mut xdp, _redirect) = open(&net, AfXdpOptions::default());
    let describe = xdp.describe();
    // veth has no zero-copy driver support, so `Try` must have fallen back.
    assert_eq!(
        describe,
        format!("AF_XDP on {}, 1 queue, copy mode", net.host_if())
    );
    assert!(!xdp.is_zero_copy());

    // More frames than the RX and fill rings hold, so chunks must be recycled to get them all.
    const N: u32 = 10_000;
    let frames: Vec<Vec<u8>> = (0..N).map(frame).collect();
    let before = realtime_now();
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            for chunk in frames.chunks(200) {
                let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
                net.send_frames(&refs).expect("send frames");
            }
        });
        collect(&mut xdp, N as usize)
    });
    let after = realtime_now();

    let stats = xdp.stats();
    eprintln!("{describe}: {stats:?}");
    assert_eq!(got.len(), N as usize, "frames received; stats {stats:?}");
    for (i, (ts, queue, data)) in got.iter().enumerate() {
        assert_eq!(*queue, 0);
        assert_eq!(seq(data), i as u32, "frame {i} out of order");
        assert!(data == &frames[i], "frame {i} differs");
        assert!(*ts >= before && *ts <= after, "frame {i} ts {ts:?}");
    }
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(s.queue, 0);
    assert_eq!(s.packets, N as u64);
    assert_eq!(s.bytes, frames.iter().map(|f| f.len() as u64).sum::<u64>());
    assert_eq!(s.rx_ring_full, 0);
}

#[test]
fn a_full_rx_ring_is_counted() {
    let Some(net) = TestNet::new_or_skip("axf", "afxdp a_full_rx_ring_is_counted") else {
        return;
    };
    let opts = AfXdpOptions {
        frames_per_queue: 256,
        ring_size: 64,
        ..AfXdpOptions::default()
    };
    let (mut xdp, _redirect) = open(&net, opts);
    // Nobody polls while these go out: 64 fit the RX ring, the rest are dropped by the kernel.
    let frames: Vec<Vec<u8>> = (0..300).map(frame).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    net.send_frames(&refs).expect("send frames");
    std::thread::sleep(Duration::from_millis(100));
    let got = collect_for(&mut xdp, 300, Duration::from_millis(500));
    let s = xdp.stats().remove(0);
    eprintln!("full ring: got {} of 300, {s:?}", got.len());
    assert!(got.len() >= 64 && got.len() < 300, "got {}", got.len());
    assert_eq!(s.packets as usize, got.len());
    assert!(
        s.rx_ring_full + s.fill_ring_empty > 0,
        "drops not counted: {s:?}"
    );
    // Every frame the kernel delivered is one we sent, in order.
    for w in got.windows(2) {
        assert!(seq(&w[0].2) < seq(&w[1].2), "out of order");
    }
}

#[test]
fn options_and_interface_errors_are_clear() {
    let err = AfXdp::open("vxnosuch0", &[0], AfXdpOptions::default())
        .err()
        .expect("no such interface");
    assert!(matches!(err, AfXdpError::NoSuchInterface { .. }), "{err}");
    assert_eq!(err.to_string(), "vxnosuch0: no such interface");

    let err = AfXdp::open(
        "lo",
        &[0],
        AfXdpOptions {
            ring_size: 1000,
            ..AfXdpOptions::default()
        },
    )
    .err()
    .expect("bad ring size");
    assert!(err.to_string().contains("ring_size"), "{err}");

    let Some(net) = TestNet::new_or_skip("axe", "afxdp options_and_interface_errors") else {
        return;
    };
    let err = AfXdp::open(
        net.host_if(),
        &[0],
        AfXdpOptions {
            zero_copy: ZeroCopy::Require,
            ..AfXdpOptions::default()
        },
    )
    .err()
    .expect("veth has no zero-copy");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{} queue 0: bind", net.host_if())) && msg.contains("zero-copy"),
        "{msg}"
    );
    // A queue the device does not have.
    let err = AfXdp::open(net.host_if(), &[7], AfXdpOptions::default())
        .err()
        .expect("no queue 7");
    assert!(err.to_string().contains("queue 7"), "{err}");
}

#[test]
fn dropping_releases_the_queue_for_a_new_socket() {
    let Some(net) = TestNet::new_or_skip("axr", "afxdp dropping_releases_the_queue") else {
        return;
    };
    for round in 0..3u32 {
        let (mut xdp, redirect) = open(&net, AfXdpOptions::default());
        let frames: Vec<Vec<u8>> = (round * 10..round * 10 + 10).map(frame).collect();
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        net.send_frames(&refs).expect("send");
        let got = collect(&mut xdp, 10);
        assert_eq!(got.len(), 10, "round {round}");
        drop(redirect);
        drop(xdp);
    }
}

/// A minimal XDP program, `bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)`, loaded and
/// attached with raw bpf(2) calls. Test-only; voxtap's real program comes from voxtap-ebpf.
mod redirect {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    const BPF_MAP_CREATE: i64 = 0;
    const BPF_MAP_UPDATE_ELEM: i64 = 2;
    const BPF_PROG_LOAD: i64 = 5;
    const BPF_LINK_CREATE: i64 = 28;
    const BPF_MAP_TYPE_XSKMAP: u32 = 17;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    const BPF_XDP: u32 = 37;
    const BPF_FUNC_REDIRECT_MAP: i32 = 51;
    const XDP_PASS: i32 = 2;

    /// The map and the link; dropping them detaches the program.
    pub struct Redirect {
        _map: OwnedFd,
        _prog: OwnedFd,
        _link: OwnedFd,
    }

    fn bpf<T>(cmd: i64, attr: &mut T) -> io::Result<OwnedFd> {
        // SAFETY: attr is a properly laid out, zero-padded bpf_attr prefix of its own size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut T,
                std::mem::size_of::<T>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the commands used here return a new fd, or 0 for UPDATE_ELEM (not wrapped).
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }

    #[repr(C)]
    struct MapCreate {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
    }

    #[repr(C)]
    struct MapUpdate {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }

    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }

    #[repr(C)]
    struct LinkCreate {
        prog_fd: u32,
        target_ifindex: u32,
        attach_type: u32,
        flags: u32,
    }

    /// One eBPF instruction: opcode, dst/src registers (low/high nibble), offset, immediate.
    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
        let regs = (src << 4) | dst;
        u64::from(code)
            | u64::from(regs) << 8
            | u64::from(off as u16) << 16
            | u64::from(imm as u32) << 32
    }

    impl Redirect {
        pub fn attach(iface: &str, sockets: &[(u32, RawFd)]) -> io::Result<Redirect> {
            let max_entries = sockets.iter().map(|(q, _)| q + 1).max().unwrap_or(1);
            let map = bpf(
                BPF_MAP_CREATE,
                &mut MapCreate {
                    map_type: BPF_MAP_TYPE_XSKMAP,
                    key_size: 4,
                    value_size: 4,
                    max_entries,
                    map_flags: 0,
                },
            )
            .map_err(|e| io::Error::new(e.kind(), format!("create XSKMAP: {e}")))?;
            for &(queue, fd) in sockets {
                let (key, value) = (queue, fd as u32);
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_bpf,
                        BPF_MAP_UPDATE_ELEM,
                        &mut MapUpdate {
                            map_fd: map.as_raw_fd() as u32,
                            _pad: 0,
                            key: &key as *const u32 as u64,
                            value: &value as *const u32 as u64,
                            flags: 0,
                        } as *mut MapUpdate,
                        std::mem::size_of::<MapUpdate>() as u32,
                    )
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    return Err(io::Error::new(
                        e.kind(),
                        format!("XSKMAP[{queue}] = fd {fd}: {e}"),
                    ));
                }
            }

            let prog = [
                // r2 = ((struct xdp_md *)r1)->rx_queue_index
                insn(0x61, 2, 1, 16, 0),
                // r1 = &xsks (ld_imm64 with BPF_PSEUDO_MAP_FD; two slots)
                insn(0x18, 1, 1, 0, map.as_raw_fd()),
                0,
                // r3 = XDP_PASS: the action when the map has no socket at that key
                insn(0xb7, 3, 0, 0, XDP_PASS),
                // r0 = bpf_redirect_map(r1, r2, r3)
                insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
                // return r0
                insn(0x95, 0, 0, 0, 0),
            ];
            let license = c"GPL";
            let mut log = vec![0u8; 4096];
            let mut name = [0u8; 16];
            name[..12].copy_from_slice(b"voxtap_xtest");
            let prog_fd = bpf(
                BPF_PROG_LOAD,
                &mut ProgLoad {
                    prog_type: BPF_PROG_TYPE_XDP,
                    insn_cnt: prog.len() as u32,
                    insns: prog.as_ptr() as u64,
                    license: license.as_ptr() as u64,
                    log_level: 1,
                    log_size: log.len() as u32,
                    log_buf: log.as_mut_ptr() as u64,
                    kern_version: 0,
                    prog_flags: 0,
                    prog_name: name,
                    prog_ifindex: 0,
                    expected_attach_type: BPF_XDP,
                },
            )
            .map_err(|e| {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                io::Error::new(
                    e.kind(),
                    format!(
                        "load XDP program: {e}\n{}",
                        String::from_utf8_lossy(&log[..end])
                    ),
                )
            })?;

            let cname = std::ffi::CString::new(iface).map_err(io::Error::other)?;
            let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
            }
            let link = bpf(
                BPF_LINK_CREATE,
                &mut LinkCreate {
                    prog_fd: prog_fd.as_raw_fd() as u32,
                    target_ifindex: ifindex,
                    attach_type: BPF_XDP,
                    flags: 0,
                },
            )
            .map_err(|e| io::Error::new(e.kind(), format!("attach XDP to {iface}: {e}")))?;
            Ok(Redirect {
                _map: map,
                _prog: prog_fd,
                _link: link,
            })
        }
    }
}

#[test]
fn two_queues_each_deliver_their_own_frames() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        voxtap_capture::testnet::skipped(
            "afxdp two_queues",
            "needs 2 CPUs to steer frames to 2 queues",
        );
        return;
    }
    let Some(net) = TestNet::new_or_skip("axq", "afxdp two_queues") else {
        return;
    };
    drop(net);
    let net = TestNet::with_queues("axq", 2).expect("veth with 2 queues");
    let mut xdp = AfXdp::open(net.host_if(), &[0, 1], AfXdpOptions::default())
        .unwrap_or_else(|e| panic!("open AF_XDP: {e}"));
    assert_eq!(
        xdp.describe(),
        format!("AF_XDP on {}, 2 queues, copy mode", net.host_if())
    );
    let fds = xdp.socket_fds();
    assert_eq!(fds.iter().map(|(q, _)| *q).collect::<Vec<_>>(), [0, 1]);
    let _redirect = redirect::Redirect::attach(net.host_if(), &fds).expect("attach");

    let frames: Vec<Vec<u8>> = (0..400).map(frame).collect();
    let (q0, q1) = frames.split_at(150);
    let r0: Vec<&[u8]> = q0.iter().map(Vec::as_slice).collect();
    let r1: Vec<&[u8]> = q1.iter().map(Vec::as_slice).collect();
    net.send_frames_on_queue(0, &r0).expect("send on queue 0");
    net.send_frames_on_queue(1, &r1).expect("send on queue 1");
    let got = collect(&mut xdp, frames.len());
    assert_eq!(got.len(), frames.len());
    let seqs =
        |q: u32| -> Vec<u32> { got.iter().filter(|g| g.1 == q).map(|g| seq(&g.2)).collect() };
    assert_eq!(seqs(0), (0..150).collect::<Vec<_>>(), "queue 0");
    assert_eq!(seqs(1), (150..400).collect::<Vec<_>>(), "queue 1");
    for (_, q, data) in &got {
        assert_eq!(
            data,
            &frames[seq(data) as usize],
            "frame on queue {q} differs"
        );
    }
    let stats = xdp.stats();
    assert_eq!(
        stats
            .iter()
            .map(|s| (s.queue, s.packets))
            .collect::<Vec<_>>(),
        [(0, 150), (1, 250)]
    );
}

#[test]
fn a_panicking_callback_loses_no_chunk() {
    let Some(net) = TestNet::new_or_skip("axp", "afxdp a_panicking_callback") else {
        return;
    };
    let opts = AfXdpOptions {
        frames_per_queue: 64,
        ring_size: 64,
        ..AfXdpOptions::default()
    };
    let (mut xdp, _redirect) = open(&net, opts);
    let frames: Vec<Vec<u8>> = (0..10).map(frame).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    net.send_frames(&refs).expect("send");
    std::thread::sleep(Duration::from_millis(50));
    let mut seen = 0;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        xdp.poll(Duration::from_millis(500), &mut |_| {
            seen += 1;
            assert!(seen < 3, "callback gives up on the third frame");
        })
    }));
    assert!(r.is_err());
    // The unreleased batch is delivered again, whole.
    let got = collect(&mut xdp, 10);
    assert_eq!(
        got.iter().map(|g| seq(&g.2)).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    // And every one of the 64 chunks still cycles: 3 more rounds through the whole UMEM.
    for round in 0..3u32 {
        let frames: Vec<Vec<u8>> = (100 + round * 64..100 + round * 64 + 60)
            .map(frame)
            .collect();
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        net.send_frames(&refs).expect("send");
        let got = collect(&mut xdp, 60);
        assert_eq!(got.len(), 60, "round {round}: {:?}", xdp.stats());
    }
}
