//! live-bench: how many packets per second `voxtap run` takes on a veth pair before it loses
//! any, for `--capture xdp` and `--capture afpacket`.
//!
//! For each capture mode and each rate, a fresh `voxtap run` is attached to the host end of a
//! veth pair; from the namespace end `--calls K` calls are set up, one after another (each its
//! own INVITE, 200 OK, ACK and media endpoints, so the engine and the XDP map know them), and
//! then their RTP is sent, interleaved round robin (call 0, 1, ..., K-1, 0, ...), at the total
//! rate for a fixed time. With `--workers N` voxtap runs N engine threads (calls are dealt out
//! round robin, so K calls spread the audio work over them); without it voxtap's default
//! applies. Before SIGTERM a SIGUSR1 asks voxtap for its live figures: the media frames it
//! shed because the workers were behind (and any other frames it dropped) count as loss
//! too. After SIGTERM, voxtap's own count of frames is compared with what was sent. The benchmark prints a table and the command that
//! reproduces it. It needs root; it is not a test.
//!
//! Each row also gives the CPU time voxtap's threads spent per RTP packet sent, from each
//! thread's `schedstat` before the RTP and after it has settled: the capture thread, the
//! workers and the rest (the writer, the live view). Below the rate a thread saturates at, its
//! figure includes its wake-ups (a poll that returns a few frames costs a context switch), so
//! it falls as the rate rises. The kernel's receive side (softirq) is not in it.
//!
//! With `--viewers V`, V dashboards' worth of readers stay attached to the run's status socket
//! for the whole measurement (each reading every snapshot; the first following call 1's
//! detail), to show what the live view costs the capture.
//!
//! Usage: live-bench [--voxtap PATH] [--secs S] [--modes xdp,afpacket] [--rates 50000,100000,...]
//!                   [--calls K] [--workers N] [--viewers V]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use voxtap_capture::testnet::TestNet;
use voxtap_core::LinkType;
use voxtap_core::wire::{self, Decoded, Transport};
use voxtap_gen::call::generate_call;
use voxtap_gen::{GenConfig, Scenario, scenario};

struct Args {
    voxtap: String,
    secs: f64,
    modes: Vec<String>,
    rates: Vec<u64>,
    calls: usize,
    workers: Option<u32>,
    viewers: usize,
}

/// The generator gives every call addresses of its own up to this many (`party_ips`).
const MAX_CALLS: usize = 63_750;

const USAGE: &str = "\
live-bench: packets per second `voxtap run` takes on a veth pair before it loses any

Usage: live-bench [--voxtap PATH] [--secs S] [--modes xdp,afpacket] [--rates N,N,...]
                  [--calls K] [--workers N] [--viewers V]

  --voxtap PATH   the voxtap binary (default target/release/voxtap)
  --secs S        seconds of RTP per rate (default 2)
  --modes LIST    capture modes to measure (default xdp,afpacket)
  --rates LIST    packets per second to send (default 25000,...,800000)
  --calls K       calls the RTP is spread over, 1 to 63750 (default 1)
  --workers N     voxtap's engine threads (default: voxtap's own)
  --viewers V     dashboards' worth of readers on the status socket (default 0)
  -h, --help      this text

Needs root (a veth pair, XDP); it is not a test.";

fn parse_args() -> Args {
    let mut a = Args {
        voxtap: "target/release/voxtap".into(),
        secs: 2.0,
        modes: vec!["xdp".into(), "afpacket".into()],
        rates: vec![25_000, 50_000, 100_000, 200_000, 400_000, 800_000],
        calls: 1,
        workers: None,
        viewers: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let Some(v) = it.next() else {
            eprintln!("live-bench: {flag} needs a value\n\n{USAGE}");
            std::process::exit(2);
        };
        match flag.as_str() {
            "--voxtap" => a.voxtap = v,
            "--secs" => a.secs = v.parse().expect("--secs S"),
            "--modes" => a.modes = v.split(',').map(str::to_string).collect(),
            "--rates" => {
                a.rates = v
                    .split(',')
                    .map(|r| r.parse().expect("--rates N,N"))
                    .collect()
            }
            "--calls" => {
                a.calls = v.parse().expect("--calls K");
                assert!(
                    (1..=MAX_CALLS).contains(&a.calls),
                    "--calls takes 1 to {MAX_CALLS}"
                );
            }
            "--workers" => a.workers = Some(v.parse().expect("--workers N")),
            "--viewers" => a.viewers = v.parse().expect("--viewers V"),
            _ => {
                eprintln!("live-bench: unknown argument {flag:?}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    a
}

/// One call as the bench sends it: its signalling up to the ACK, and one RTP frame of it as a
/// template.
struct Call {
    setup: Vec<Vec<u8>>,
    rtp: Vec<u8>,
}

/// `count` generated PCMU calls, each with addresses and RTP ports of its own (the generator
/// gives call `i` 10.1.x.y calling 10.2.x.y). With one call, the same call as `voxtap-gen`'s
/// `pcmu` scenario.
fn calls_setup(count: usize) -> Vec<Call> {
    let cfg = GenConfig {
        calls: count,
        ..GenConfig::new(Scenario::Pcmu)
    };
    scenario::plan(&cfg)
        .iter()
        .map(|spec| {
            let (mut frames, _) = generate_call(spec).expect("generate a PCMU call");
            // As `generate` does: stable, so equal stamps keep the call's order.
            frames.sort_by_key(|f| f.ts_ns);
            call_setup(&frames)
        })
        .collect()
}

/// The signalling of one call up to the ACK, and one RTP frame of it as a template.
fn call_setup(frames: &[voxtap_gen::Frame]) -> Call {
    let payload = |d: &[u8]| match wire::decode(LinkType::Ethernet, d) {
        Ok(Decoded::Packet {
            transport: Transport::Udp { payload, .. },
            ..
        }) => Some(payload.to_vec()),
        _ => None,
    };
    let mut setup = Vec::new();
    let mut rtp = None;
    for f in frames {
        let p = payload(&f.data).unwrap_or_default();
        if p.starts_with(b"ACK ") {
            setup.push(f.data.clone());
            break;
        }
        if voxtap_core::sip::looks_like_sip(&p) {
            setup.push(f.data.clone());
        } else if rtp.is_none() && voxtap_core::rtp::looks_like_rtp(&p) {
            rtp = Some(f.data.clone());
        }
    }
    let rtp = rtp.or_else(|| {
        frames
            .iter()
            .map(|f| f.data.clone())
            .find(|d| payload(d).is_some_and(|p| voxtap_core::rtp::looks_like_rtp(&p)))
    });
    Call {
        setup,
        rtp: rtp.expect("the call has RTP"),
    }
}

/// Where the RTP header starts in the template: Ethernet 14 + IPv4 20 + UDP 8.
const RTP_AT: usize = 42;

struct Outcome {
    sent: u64,
    achieved_pps: f64,
    seen: u64,
    describe: String,
    /// CPU spent from just before the RTP to just before the live figures are asked for.
    cpu: CpuSpent,
    /// What voxtap's live figures said just before it was stopped (SIGUSR1).
    figures: Option<Figures>,
}

/// CPU time of voxtap's threads, in nanoseconds (each thread's `schedstat`): the capture
/// thread (its main thread), the engine workers and the rest. The kernel's receive side (the
/// XDP program, the copy into AF_XDP or AF_PACKET) is not in it: it runs in softirq, and a
/// kernel without `CONFIG_IRQ_TIME_ACCOUNTING` (this one) only samples that time by the tick.
#[derive(Clone, Copy, Debug, Default)]
struct CpuSpent {
    capture: u64,
    workers: u64,
    other: u64,
}

impl CpuSpent {
    fn sample(pid: u32) -> CpuSpent {
        let mut c = CpuSpent::default();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return c;
        };
        for t in tasks.flatten() {
            let dir = t.path();
            let tid: u32 = t.file_name().to_string_lossy().parse().unwrap_or(0);
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            // schedstat: time on a CPU (ns), time waiting for one, timeslices.
            let ns: u64 = std::fs::read_to_string(dir.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
                .unwrap_or(0);
            if tid == pid {
                c.capture += ns;
            } else if comm.starts_with("voxtap-worker") {
                c.workers += ns;
            } else {
                c.other += ns;
            }
        }
        c
    }

    fn since(self, before: CpuSpent) -> CpuSpent {
        CpuSpent {
            capture: self.capture.saturating_sub(before.capture),
            workers: self.workers.saturating_sub(before.workers),
            other: self.other.saturating_sub(before.other),
        }
    }
}

/// The parts of a `voxtap run` live figures line the bench uses.
#[derive(Default)]
struct Figures {
    /// Engine threads (the line names them only when there are more than one).
    workers: usize,
    /// Frames dropped because the workers were behind (`behind, shed M media frames, dropped
    /// O other frames`).
    shed_media: u64,
    dropped_other: u64,
    /// Each worker's RTP packets per second of its own calls.
    worker_pps: Vec<f64>,
    active_calls: u64,
    unmatched_rtp: u64,
    endpoint_map_errors: u64,
}

/// The number right after `key` in `line`.
fn number_after<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn parse_figures(line: &str) -> Figures {
    let mut f = Figures {
        workers: 1,
        active_calls: number_after(line, "active calls ").unwrap_or(0),
        unmatched_rtp: number_after(line, "unmatched RTP ").unwrap_or(0),
        endpoint_map_errors: number_after(line, "endpoint map errors ").unwrap_or(0),
        ..Figures::default()
    };
    if let Some(at) = line.find("| workers ") {
        let part = &line[at..];
        f.workers = number_after(part, "| workers ").unwrap_or(1);
        f.shed_media = number_after(part, "shed ").unwrap_or(0);
        f.dropped_other = number_after(part, "dropped ").unwrap_or(0);
        f.worker_pps = (0..f.workers)
            .map(|i| number_after(part, &format!(", w{i} ")).unwrap_or(0.0))
            .collect();
    }
    f
}

fn one_run(args: &Args, mode: &str, pps: u64, calls: &[Call]) -> Outcome {
    let net = TestNet::new("bench").expect("create a veth pair (root needed)");
    let out =
        std::env::temp_dir().join(format!("voxtap-bench-{}-{mode}-{pps}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = Command::new(&args.voxtap);
    cmd.args(["run", "--iface", net.host_if(), "--capture", mode, "--out"])
        .arg(&out);
    if let Some(n) = args.workers {
        cmd.args(["--workers", &n.to_string()]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start voxtap run");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut describe = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("voxtap run did not get ready");
        if let Some(d) =
            line.strip_prefix(&format!("voxtap run: capturing on {} with ", net.host_if()))
        {
            describe = d.to_string();
        }
        if line.contains("ready") {
            break;
        }
    }
    // Viewers attached for the whole measurement, reading all the while.
    let stop_viewers = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let viewers: Vec<_> = (0..args.viewers)
        .map(|i| {
            let socket = out.join("status.sock");
            let stop = std::sync::Arc::clone(&stop_viewers);
            std::thread::spawn(move || view(&socket, i == 0, &stop))
        })
        .collect();
    // Every call's INVITE ... ACK, call after call.
    let refs: Vec<&[u8]> = calls
        .iter()
        .flat_map(|c| c.setup.iter().map(Vec::as_slice))
        .collect();
    net.send_frames(&refs).expect("send the call setup");
    std::thread::sleep(Duration::from_millis(300));
    let count = (pps as f64 * args.secs) as u64;
    let templates: Vec<Vec<u8>> = calls.iter().map(|c| c.rtp.clone()).collect();
    let k = templates.len() as u64;
    let cpu_before = CpuSpent::sample(child.id());
    let took = net
        .send_at_rate(count, pps, move |i, frame| {
            // Round robin: frame i is packet i / K of call i % K.
            let (call, n) = (i % k, i / k);
            frame.clear();
            frame.extend_from_slice(&templates[call as usize]);
            let seq = (n as u16).wrapping_add(1000);
            frame[RTP_AT + 2..RTP_AT + 4].copy_from_slice(&seq.to_be_bytes());
            frame[RTP_AT + 4..RTP_AT + 8]
                .copy_from_slice(&((n as u32).wrapping_mul(160)).to_be_bytes());
            // No UDP checksum (valid for IPv4): the payload changed.
            frame[40..42].copy_from_slice(&[0, 0]);
        })
        .expect("send RTP");
    std::thread::sleep(Duration::from_millis(1500));
    let cpu = CpuSpent::sample(child.id()).since(cpu_before);
    // The live figures (worker drops are only in them), then stop. A line asked for now is
    // built after the last frame was handled: nothing more arrives.
    while rx.try_recv().is_ok() {}
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    let until = Instant::now() + Duration::from_secs(10);
    let mut figures = None;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("voxtap run:") && line.contains(" | engine frames ") => {
                figures = Some(parse_figures(&line));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if figures.is_none() {
        eprintln!("live-bench: {mode} {pps}: no live figures from voxtap after SIGUSR1");
    }
    stop_viewers.store(true, std::sync::atomic::Ordering::Relaxed);
    let lines: Vec<u64> = viewers.into_iter().map(|v| v.join().unwrap_or(0)).collect();
    if !lines.is_empty() {
        eprintln!("live-bench: {mode} {pps}: viewers read {lines:?} snapshots");
        assert!(lines.iter().all(|&n| n > 0), "a viewer got no snapshot");
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().expect("wait for voxtap run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen = stdout
        .split(", ")
        .find_map(|part| part.strip_suffix(" frames"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {stdout:?}"));
    let _ = std::fs::remove_dir_all(&out);
    Outcome {
        sent: count + refs.len() as u64,
        achieved_pps: count as f64 / took.as_secs_f64(),
        seen,
        describe,
        cpu,
        figures,
    }
}

/// A dashboard's worth of reading: every snapshot line until `stop`; returns how many.
fn view(socket: &std::path::Path, follow: bool, stop: &std::sync::atomic::AtomicBool) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        eprintln!("live-bench: cannot attach a viewer to {}", socket.display());
        return 0;
    };
    if follow {
        let _ = s.write_all(b"{\"detail\": 1}\n");
    }
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = vec![0u8; 1 << 16];
    let mut lines = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64,
            Err(_) => {}
        }
    }
    lines
}

/// Each worker's share of the RTP of its calls, e.g. `49.8/50.2`.
fn split(pps: &[f64]) -> String {
    let total: f64 = pps.iter().sum();
    if pps.len() < 2 || total <= 0.0 {
        return "-".into();
    }
    pps.iter()
        .map(|p| format!("{:.0}", 100.0 * p / total))
        .collect::<Vec<_>>()
        .join("/")
}

fn main() {
    let args = parse_args();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: live-bench needs root to create a veth pair and attach XDP");
        std::process::exit(0);
    }
    let calls = calls_setup(args.calls);
    let setup_frames: usize = calls.iter().map(|c| c.setup.len()).sum();
    let calls_text = if args.calls == 1 {
        "one call".to_string()
    } else {
        format!(
            "{} calls ({setup_frames} SIP frames), their RTP interleaved round robin",
            args.calls
        )
    };
    let workers_asked = args
        .workers
        .map_or_else(|| "voxtap's default".to_string(), |n| n.to_string());
    println!(
        "live-bench: {} s of RTP per step, {calls_text}, workers {workers_asked}; rates are offered packets per second (all calls together)",
        args.secs
    );
    println!(
        "| capture | calls | workers | offered pps | achieved pps | sent | seen by the engine | shed while the workers were behind: media (other) | lost | RTP % per worker | voxtap CPU ns/pkt: capture thread, workers, other |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    let mut best = Vec::new();
    let mut notes = Vec::new();
    for mode in &args.modes {
        let mut zero_loss = None;
        let mut describe = String::new();
        let mut workers_used = String::from("?");
        for &pps in &args.rates {
            let o = one_run(&args, mode, pps, &calls);
            describe = o.describe.clone();
            // Frames shed while the workers were behind never reach the engines, so they are in
            // sent - seen already; they are also shown on their own.
            let lost = o.sent.saturating_sub(o.seen);
            let (workers, dropped, share) = match &o.figures {
                Some(f) => {
                    if f.active_calls < args.calls as u64 {
                        notes.push(format!(
                            "{mode} {pps}: voxtap tracked {} of {} calls",
                            f.active_calls, args.calls
                        ));
                    }
                    if f.unmatched_rtp > 0 || f.endpoint_map_errors > 0 {
                        notes.push(format!(
                            "{mode} {pps}: {} unmatched RTP, {} endpoint map errors",
                            f.unmatched_rtp, f.endpoint_map_errors
                        ));
                    }
                    let dropped = if f.workers > 1 {
                        format!("{} ({})", f.shed_media, f.dropped_other)
                    } else {
                        // One engine runs on the capture thread: there is no queue to drop.
                        "-".to_string()
                    };
                    (f.workers.to_string(), dropped, split(&f.worker_pps))
                }
                None => ("?".into(), "?".into(), "?".into()),
            };
            workers_used = workers.clone();
            let rtp = (o.sent - setup_frames as u64).max(1);
            let per = |ns: u64| ns as f64 / rtp as f64;
            println!(
                "| {mode} | {} | {workers} | {pps} | {:.0} | {} | {} | {dropped} | {lost} | {share} | {:.0}, {:.0}, {:.0} |",
                args.calls,
                o.achieved_pps,
                o.sent,
                o.seen,
                per(o.cpu.capture),
                per(o.cpu.workers),
                per(o.cpu.other)
            );
            let worker_drop = o
                .figures
                .as_ref()
                .map_or(0, |f| f.shed_media + f.dropped_other);
            if lost == 0 && worker_drop == 0 && o.figures.is_some() {
                zero_loss = Some(o.achieved_pps);
            } else {
                break;
            }
        }
        best.push((mode.clone(), describe, workers_used, zero_loss));
    }
    println!();
    for note in &notes {
        println!("note: {note}");
    }
    for (mode, describe, workers, z) in best {
        let what = format!(
            "{mode} ({describe}; {}, {workers} worker{})",
            if args.calls == 1 {
                "1 call".to_string()
            } else {
                format!("{} calls", args.calls)
            },
            if workers == "1" { "" } else { "s" }
        );
        match z {
            Some(pps) => println!("{what}: zero loss up to {pps:.0} packets/s"),
            None => println!("{what}: lost packets even at the lowest rate"),
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "machine: {cores} cores, kernel {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    let workers_flag = args
        .workers
        .map_or_else(String::new, |n| format!(" --workers {n}"))
        + &if args.viewers > 0 {
            format!(" --viewers {}", args.viewers)
        } else {
            String::new()
        };
    println!(
        "reproduce: cargo build --release -p voxtap -p voxtap-perf-live && sudo target/release/live-bench --secs {} --modes {} --rates {} --calls {}{workers_flag}",
        args.secs,
        args.modes.join(","),
        args.rates
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        args.calls
    );
}
