//! live-bench: how many packets per second `voxtap run` takes on a veth pair before it loses
//! any, for `--capture xdp` and `--capture afpacket`.
//!
//! For each capture mode and each rate, a fresh `voxtap run` is attached to the host end of a
//! veth pair; from the namespace end a call is set up (INVITE, 200 OK, ACK, so the engine and
//! the XDP map know its media endpoints) and then its RTP is sent at the rate for a fixed time.
//! After SIGTERM, voxtap's own count of frames is compared with what was sent. The benchmark
//! prints a table and the command that reproduces it. It needs root; it is not a test.
//!
//! Usage: live-bench [--voxtap PATH] [--secs S] [--modes xdp,afpacket] [--rates 50000,100000,...]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use voxtap_capture::testnet::TestNet;
use voxtap_core::LinkType;
use voxtap_core::wire::{self, Decoded, Transport};
use voxtap_gen::{GenConfig, Scenario, generate};

struct Args {
    voxtap: String,
    secs: f64,
    modes: Vec<String>,
    rates: Vec<u64>,
}

fn parse_args() -> Args {
    let mut a = Args {
        voxtap: "target/release/voxtap".into(),
        secs: 2.0,
        modes: vec!["xdp".into(), "afpacket".into()],
        rates: vec![25_000, 50_000, 100_000, 200_000, 400_000, 800_000],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
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
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

/// The signalling of one generated call up to the ACK, and one RTP frame of it as a template.
fn call_setup() -> (Vec<Vec<u8>>, Vec<u8>) {
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    let payload = |d: &[u8]| match wire::decode(LinkType::Ethernet, d) {
        Ok(Decoded::Packet {
            transport: Transport::Udp { payload, .. },
            ..
        }) => Some(payload.to_vec()),
        _ => None,
    };
    let mut setup = Vec::new();
    let mut rtp = None;
    for f in &frames {
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
    (setup, rtp.expect("the call has RTP"))
}

/// Where the RTP header starts in the template: Ethernet 14 + IPv4 20 + UDP 8.
const RTP_AT: usize = 42;

struct Outcome {
    sent: u64,
    achieved_pps: f64,
    seen: u64,
    describe: String,
}

fn one_run(
    voxtap: &str,
    mode: &str,
    pps: u64,
    secs: f64,
    setup: &[Vec<u8>],
    rtp: &[u8],
) -> Outcome {
    let net = TestNet::new("bench").expect("create a veth pair (root needed)");
    let out =
        std::env::temp_dir().join(format!("voxtap-bench-{}-{mode}-{pps}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut child = Command::new(voxtap)
        .args(["run", "--iface", net.host_if(), "--capture", mode, "--out"])
        .arg(&out)
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
    let refs: Vec<&[u8]> = setup.iter().map(Vec::as_slice).collect();
    net.send_frames(&refs).expect("send the call setup");
    std::thread::sleep(Duration::from_millis(300));
    let count = (pps as f64 * secs) as u64;
    let template = rtp.to_vec();
    let took = net
        .send_at_rate(count, pps, move |i, frame| {
            frame.clear();
            frame.extend_from_slice(&template);
            let seq = (i as u16).wrapping_add(1000);
            frame[RTP_AT + 2..RTP_AT + 4].copy_from_slice(&seq.to_be_bytes());
            frame[RTP_AT + 4..RTP_AT + 8]
                .copy_from_slice(&((i as u32).wrapping_mul(160)).to_be_bytes());
            // No UDP checksum (valid for IPv4): the payload changed.
            frame[40..42].copy_from_slice(&[0, 0]);
        })
        .expect("send RTP");
    std::thread::sleep(Duration::from_millis(1500));
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
        sent: count + setup.len() as u64,
        achieved_pps: count as f64 / took.as_secs_f64(),
        seen,
        describe,
    }
}

fn main() {
    let args = parse_args();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: live-bench needs root to create a veth pair and attach XDP");
        std::process::exit(0);
    }
    let (setup, rtp) = call_setup();
    println!(
        "live-bench: {} s of RTP per step, one call; rates are offered packets per second",
        args.secs
    );
    println!("| capture | offered pps | achieved pps | sent | seen by the engine | lost |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut best = Vec::new();
    for mode in &args.modes {
        let mut zero_loss = None;
        let mut describe = String::new();
        for &pps in &args.rates {
            let o = one_run(&args.voxtap, mode, pps, args.secs, &setup, &rtp);
            let lost = o.sent.saturating_sub(o.seen);
            describe = o.describe.clone();
            println!(
                "| {mode} | {pps} | {:.0} | {} | {} | {lost} |",
                o.achieved_pps, o.sent, o.seen
            );
            if lost == 0 {
                zero_loss = Some(o.achieved_pps);
            } else {
                break;
            }
        }
        best.push((mode.clone(), describe, zero_loss));
    }
    println!();
    for (mode, describe, z) in best {
        match z {
            Some(pps) => println!("{mode} ({describe}): zero loss up to {pps:.0} packets/s"),
            None => println!("{mode} ({describe}): lost packets even at the lowest rate"),
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "machine: {cores} cores, kernel {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "reproduce: cargo build --release -p voxtap -p voxtap-perf-live && sudo target/release/live-bench --secs {} --rates {}",
        args.secs,
        args.rates
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
}
