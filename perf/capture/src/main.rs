//! capture-bench: reading capture files, voxtap-capture's own reader against the `pcap-file`
//! crate (issue 12: "use the crate, unless a benchmark shows that it costs").
//!
//! A capture of concurrent G.711 calls is generated with `voxtap-gen` (not timed) into
//! /dev/shm, and converted to pcapng with `editcap -F pcapng` when editcap is installed. Each
//! file is then read to its end by
//!
//! - `voxtap`: `voxtap_capture::CaptureFile` (`next_frame`), and
//! - `pcap-file`: `pcap_file::pcap::PcapReader::next_packet` or
//!   `pcap_file::pcapng::PcapNgReader::next_block` (packet blocks counted),
//!
//! `--reps` times, interleaved, counting frames, frame bytes and the sum of the timestamps (to
//! check that both readers see the same thing). The fastest pass gives frames/s and MB/s (of
//! the file). `--callgrind` re-runs this binary under `valgrind --tool=callgrind` for one pass
//! of each reader and format, collecting only inside the pass, and prints instructions/frame.
//!
//! Then damaged files: the first `--damage-frames` records of the capture, clean, cut inside a
//! record, with a record's length overwritten, with 4 bytes lost, and (not damage) cut to a
//! 96-byte snapshot length; as pcapng also cut inside a block header, a length 8 too long,
//! 1 byte lost, a packet on an undescribed interface, and two sections of either byte order
//! (the second's header damaged, too). For each, how many frames each reader hands out, how
//! many of them are intact, how it ends (for voxtap: each stretch skipped, bytes and offset),
//! and for pcap-file whether another call gets past an error.
//!
//! Usage: capture-bench [--calls N] [--talk-secs S] [--reps R] [--damage-frames N]
//!                      [--input FILE] [--callgrind] [--keep]
//!        capture-bench --pass voxtap|pcap-file --input FILE      (one pass, for callgrind)
//!
//! Every file is written under /dev/shm and deleted at the end (unless `--keep`).

use std::collections::HashMap;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use voxtap_capture::CaptureFile;
use voxtap_gen::{GenConfig, Scenario, generate, write_pcap};
use voxtap_perf_args::{arg, flag};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    Voxtap,
    PcapFile,
}

impl Reader {
    fn name(self) -> &'static str {
        match self {
            Reader::Voxtap => "voxtap",
            Reader::PcapFile => "pcap-file",
        }
    }
}

const READERS: [Reader; 2] = [Reader::Voxtap, Reader::PcapFile];

/// What one pass saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    frames: u64,
    bytes: u64,
    /// Wrapping sum of the timestamps in ns, as the reader gives them.
    ts_sum: u64,
    /// The first frame's timestamp in ns, as the reader gives it.
    first_ts: u64,
}

fn is_pcapng(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x0a, 0x0d, 0x0d, 0x0a]
}

/// One pass with voxtap's reader. Out of line so that callgrind can collect only here.
#[inline(never)]
fn read_pass_voxtap(path: &Path) -> Result<Count, String> {
    let mut f = CaptureFile::open(path).map_err(|e| e.to_string())?;
    let mut c = Count::default();
    while let Some(fr) = f.next_frame().map_err(|e| e.to_string())? {
        c.frames += 1;
        c.bytes += fr.data.len() as u64;
        c.ts_sum = c.ts_sum.wrapping_add(fr.ts.0);
        if c.frames == 1 {
            c.first_ts = fr.ts.0;
        }
    }
    Ok(c)
}

/// One pass with pcap-file's readers. Out of line so that callgrind can collect only here.
#[inline(never)]
fn read_pass_pcap_file(path: &Path) -> Result<Count, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut c = Count::default();
    if is_pcapng(path) {
        let mut r = PcapNgReader::new(file).map_err(|e| e.to_string())?;
        while let Some(block) = r.next_block() {
            let (data_len, ts) = match block.map_err(|e| e.to_string())? {
                Block::EnhancedPacket(p) => (p.data.len(), p.timestamp.as_nanos() as u64),
                Block::Packet(p) => (p.data.len(), p.timestamp),
                Block::SimplePacket(p) => (p.data.len(), 0),
                _ => continue,
            };
            c.frames += 1;
            c.bytes += data_len as u64;
            c.ts_sum = c.ts_sum.wrapping_add(ts);
            if c.frames == 1 {
                c.first_ts = ts;
            }
        }
    } else {
        let mut r = PcapReader::new(file).map_err(|e| e.to_string())?;
        while let Some(p) = r.next_packet() {
            let p = p.map_err(|e| e.to_string())?;
            c.frames += 1;
            c.bytes += p.data.len() as u64;
            c.ts_sum = c.ts_sum.wrapping_add(p.timestamp.as_nanos() as u64);
            if c.frames == 1 {
                c.first_ts = p.timestamp.as_nanos() as u64;
            }
        }
    }
    Ok(c)
}

fn read_pass(reader: Reader, path: &Path) -> Result<Count, String> {
    match reader {
        Reader::Voxtap => read_pass_voxtap(path),
        Reader::PcapFile => read_pass_pcap_file(path),
    }
}

fn hash_frame(data: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

/// How a reader fared on a (possibly damaged) file.
struct Survey {
    /// Hashes of the frames handed out, in order.
    frames: Vec<u64>,
    /// The first error, if any.
    error: Option<String>,
    /// Frames handed out after the first error (pcap-file: by calling again).
    after_error: usize,
    /// pcap-file: calling again after the error gave an error again, three times.
    stuck: bool,
    /// voxtap: corrupt stretches skipped (byte offset, bytes).
    skipped: Vec<(u64, u64)>,
}

/// pcap-file's iterator, either reader: `Ok(None)` for a block that is not a frame.
type NextFrame = Box<dyn FnMut() -> Option<Result<Option<Vec<u8>>, String>>>;

fn survey(reader: Reader, path: &Path) -> Survey {
    let mut s = Survey {
        frames: Vec::new(),
        error: None,
        after_error: 0,
        stuck: false,
        skipped: Vec::new(),
    };
    match reader {
        Reader::Voxtap => {
            let mut f = match CaptureFile::open(path) {
                Ok(f) => f,
                Err(e) => {
                    s.error = Some(e.to_string());
                    return s;
                }
            };
            loop {
                match f.next_frame() {
                    Ok(Some(fr)) => s.frames.push(hash_frame(fr.data)),
                    Ok(None) => break,
                    // voxtap's reader ends at an error: that is its contract.
                    Err(e) => {
                        s.error = Some(e.to_string());
                        break;
                    }
                }
            }
            s.skipped = f.skipped().to_vec();
        }
        Reader::PcapFile => {
            // The library's iterator: `None` at the end, `Some(Err)` for a bad record. A
            // caller that wants the rest of a damaged file can only call again.
            let file = File::open(path).expect("open");
            let mut next: NextFrame = if is_pcapng(path) {
                match PcapNgReader::new(file) {
                    Ok(mut r) => Box::new(move || {
                        r.next_block().map(|b| match b {
                            Ok(Block::EnhancedPacket(p)) => Ok(Some(p.data.to_vec())),
                            Ok(Block::Packet(p)) => Ok(Some(p.data.to_vec())),
                            Ok(Block::SimplePacket(p)) => Ok(Some(p.data.to_vec())),
                            Ok(_) => Ok(None),
                            Err(e) => Err(e.to_string()),
                        })
                    }),
                    Err(e) => {
                        s.error = Some(e.to_string());
                        return s;
                    }
                }
            } else {
                match PcapReader::new(file) {
                    Ok(mut r) => Box::new(move || {
                        r.next_packet().map(|p| match p {
                            Ok(p) => Ok(Some(p.data.to_vec())),
                            Err(e) => Err(e.to_string()),
                        })
                    }),
                    Err(e) => {
                        s.error = Some(e.to_string());
                        return s;
                    }
                }
            };
            let mut errors_in_a_row = 0;
            while let Some(r) = next() {
                match r {
                    Ok(Some(data)) => {
                        errors_in_a_row = 0;
                        if s.error.is_some() {
                            s.after_error += 1;
                        }
                        s.frames.push(hash_frame(&data));
                    }
                    Ok(None) => errors_in_a_row = 0,
                    Err(e) => {
                        s.error.get_or_insert(e);
                        errors_in_a_row += 1;
                        if errors_in_a_row > 3 {
                            s.stuck = true;
                            break;
                        }
                    }
                }
            }
        }
    }
    s
}

/// Offsets of the records of a classic pcap (after its 24-byte header), from the bytes.
fn pcap_records(bytes: &[u8]) -> Vec<usize> {
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= bytes.len() {
        out.push(at);
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    out
}

/// The blocks of a little-endian pcapng: offset, type, total length.
fn pcapng_blocks(bytes: &[u8]) -> Vec<(usize, u32, usize)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 12 <= bytes.len() {
        let kind = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if len < 12 || at + len > bytes.len() {
            break;
        }
        out.push((at, kind, len));
        at += len;
    }
    out
}

/// Offsets of the packet blocks (enhanced, simple, obsolete) of a little-endian pcapng.
fn pcapng_packet_blocks(bytes: &[u8]) -> Vec<usize> {
    pcapng_blocks(bytes)
        .into_iter()
        .filter(|b| matches!(b.1, 2 | 3 | 6))
        .map(|b| b.0)
        .collect()
}

/// A big-endian copy of a little-endian pcapng as editcap writes it: the section header,
/// the interfaces (link type, snapshot length, if_tsresol, if_tsoffset) and the enhanced
/// packets; other blocks and options left out.
fn pcapng_big_endian(le: &[u8]) -> Vec<u8> {
    let u16le = |b: &[u8], i: usize| u16::from_le_bytes(b[i..i + 2].try_into().unwrap());
    let u32le = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut block = |kind: u32, body: &[u8]| {
        let total = 12 + body.len().div_ceil(4) * 4;
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + (total - 12 - body.len()), 0);
        out.extend_from_slice(&(total as u32).to_be_bytes());
    };
    for (at, kind, total) in pcapng_blocks(le) {
        let b = &le[at + 8..at + total - 4];
        let mut body = Vec::new();
        match kind {
            0x0a0d_0d0a => {
                body.extend_from_slice(&0x1a2b_3c4du32.to_be_bytes());
                body.extend_from_slice(&1u16.to_be_bytes());
                body.extend_from_slice(&0u16.to_be_bytes());
                body.extend_from_slice(&(-1i64).to_be_bytes());
            }
            1 => {
                body.extend_from_slice(&u16le(b, 0).to_be_bytes());
                body.extend_from_slice(&0u16.to_be_bytes());
                body.extend_from_slice(&u32le(b, 4).to_be_bytes());
                let mut opts = &b[8..];
                while opts.len() >= 4 {
                    let (code, len) = (u16le(opts, 0), u16le(opts, 2) as usize);
                    let Some(value) = opts.get(4..4 + len) else {
                        break;
                    };
                    let value: Vec<u8> = match (code, len) {
                        (9, 1) => value.to_vec(),
                        (14, 8) => {
                            let v = i64::from_le_bytes(value.try_into().unwrap());
                            v.to_be_bytes().to_vec()
                        }
                        _ => Vec::new(),
                    };
                    if !value.is_empty() {
                        body.extend_from_slice(&code.to_be_bytes());
                        body.extend_from_slice(&(len as u16).to_be_bytes());
                        body.extend_from_slice(&value);
                        body.resize(body.len().div_ceil(4) * 4, 0);
                    }
                    opts = opts.get(4 + len.div_ceil(4) * 4..).unwrap_or(&[]);
                }
                body.extend_from_slice(&[0; 4]);
            }
            6 => {
                for i in 0..5 {
                    body.extend_from_slice(&u32le(b, 4 * i).to_be_bytes());
                }
                let caplen = u32le(b, 12) as usize;
                body.extend_from_slice(&b[20..20 + caplen]);
            }
            _ => continue,
        }
        block(kind, &body);
    }
    out
}

fn editcap_pcapng(from: &Path, to: &Path) -> bool {
    Command::new("editcap")
        .args(["-F", "pcapng"])
        .arg(from)
        .arg(to)
        .status()
        .is_ok_and(|s| s.success())
}

const USAGE: &str = "\
capture-bench: reading capture files, voxtap-capture's reader against the pcap-file crate

Usage: capture-bench [--calls N] [--talk-secs S] [--reps R] [--damage-frames N]
                     [--input FILE] [--callgrind] [--keep]
       capture-bench --pass voxtap|pcap-file --input FILE      (one pass, for callgrind)

  --calls N           calls in the generated capture (default 1000)
  --talk-secs S       their talk time (default 10)
  --reps R            passes per reader and format; the fastest is reported (default 5)
  --damage-frames N   frames in the damaged files (default 20000)
  --input FILE        read FILE instead of generating a capture
  --callgrind         instructions per frame instead, one valgrind run per reader
  --keep              keep the files written under /dev/shm
  -h, --help          this text";

fn main() {
    voxtap_perf_args::check_or_exit(
        USAGE,
        &[
            "--calls",
            "--talk-secs",
            "--reps",
            "--damage-frames",
            "--input",
            "--pass",
        ],
        &["--callgrind", "--keep"],
    );
    if let Some(pass) = arg("--pass") {
        return one_pass(&pass);
    }
    let calls: usize = arg("--calls").and_then(|v| v.parse().ok()).unwrap_or(1000);
    let talk: f64 = arg("--talk-secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let reps: usize = arg("--reps").and_then(|v| v.parse().ok()).unwrap_or(5);
    let damage_frames: usize = arg("--damage-frames")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let callgrind = flag("--callgrind");
    let keep = flag("--keep");
    let input = arg("--input").map(PathBuf::from);

    let work = PathBuf::from(format!(
        "/dev/shm/voxtap-capture-bench-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&work).expect("create the work directory under /dev/shm");
    let mut command = format!(
        "cargo build --release -p voxtap-perf-capture && target/release/capture-bench --reps {reps} --damage-frames {damage_frames}"
    );
    let pcap = match &input {
        Some(p) => {
            command += &format!(" --input {}", p.display());
            p.clone()
        }
        None => {
            command += &format!(" --calls {calls} --talk-secs {talk}");
            let mut cfg = GenConfig::new(Scenario::Concurrent);
            cfg.calls = calls;
            cfg.talk_secs = talk;
            let t = Instant::now();
            let (frames, _) = generate(&cfg);
            let path = work.join("capture.pcap");
            write_pcap(&path, &frames).expect("write the generated capture");
            eprintln!(
                "capture-bench: generated {calls} calls, {} frames in {:.1} s",
                frames.len(),
                t.elapsed().as_secs_f64()
            );
            path
        }
    };
    if callgrind {
        command += " --callgrind";
    }
    println!("# command: {command}");
    let pcapng = work.join("capture.pcapng");
    let have_pcapng = if is_pcapng(&pcap) {
        std::fs::copy(&pcap, &pcapng).is_ok()
    } else {
        editcap_pcapng(&pcap, &pcapng)
    };
    let mut files = vec![("pcap", pcap.clone())];
    if have_pcapng {
        files.push(("pcapng", pcapng.clone()));
    } else {
        println!(
            "(no pcapng: `editcap -F pcapng` failed or is not installed; pcapng rows skipped)"
        );
    }

    throughput(&files, reps);
    if callgrind {
        instructions(&files);
    }
    if !is_pcapng(&pcap) {
        damage(&pcap, &work, damage_frames);
    }
    if keep {
        println!("\nfiles kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
}

/// `--pass READER --input FILE`: one pass, the figures on stdout (for callgrind).
fn one_pass(reader: &str) {
    let reader = match reader {
        "voxtap" => Reader::Voxtap,
        "pcap-file" => Reader::PcapFile,
        other => panic!("--pass voxtap|pcap-file, not {other:?}"),
    };
    let path = PathBuf::from(arg("--input").expect("--pass needs --input FILE"));
    match read_pass(reader, &path) {
        Ok(c) => println!("frames {} bytes {}", c.frames, c.bytes),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

fn throughput(files: &[(&str, PathBuf)], reps: usize) {
    println!();
    println!("## Throughput: {reps} interleaved passes each, fastest pass");
    println!();
    println!(
        "| format | reader | frames | frame MB | file MB | seconds (fastest–slowest) | frames/s | MB/s (file) | same frames, bytes, timestamps as voxtap |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for (format, path) in files {
        let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut secs: HashMap<&str, Vec<f64>> = HashMap::new();
        let mut counts: HashMap<&str, Result<Count, String>> = HashMap::new();
        for _ in 0..reps.max(1) {
            for reader in READERS {
                let t = Instant::now();
                let c = read_pass(reader, path);
                secs.entry(reader.name())
                    .or_default()
                    .push(t.elapsed().as_secs_f64());
                counts.insert(reader.name(), c);
            }
        }
        let ours = counts["voxtap"].clone();
        for reader in READERS {
            let s = &secs[reader.name()];
            let best = s.iter().cloned().fold(f64::INFINITY, f64::min);
            let worst = s.iter().cloned().fold(0.0, f64::max);
            match &counts[reader.name()] {
                Ok(c) => {
                    let agree = match &ours {
                        Ok(o) if o == c => "yes".to_string(),
                        Ok(o) if o.frames == c.frames && o.bytes == c.bytes => format!(
                            "frames and bytes; timestamps differ (first frame {} ns, voxtap {} ns)",
                            c.first_ts, o.first_ts
                        ),
                        Ok(_) => "NO".to_string(),
                        Err(_) => "—".to_string(),
                    };
                    println!(
                        "| {format} | {} | {} | {:.1} | {:.1} | {best:.3}–{worst:.3} | {:.2} M | {:.0} | {agree} |",
                        reader.name(),
                        c.frames,
                        c.bytes as f64 / 1e6,
                        file_bytes as f64 / 1e6,
                        c.frames as f64 / best / 1e6,
                        file_bytes as f64 / best / 1e6,
                    );
                }
                Err(e) => println!("| {format} | {} | error: {e} | | | | | | |", reader.name()),
            }
        }
    }
}

fn instructions(files: &[(&str, PathBuf)]) {
    let exe = std::env::current_exe().expect("own path");
    let out_file = std::env::temp_dir().join(format!(
        "capture-bench-callgrind-{}.out",
        std::process::id()
    ));
    println!();
    println!("## Instructions (callgrind, one pass, collected inside the pass only)");
    println!();
    println!("| format | reader | frames | instructions (Ir) | per frame |");
    println!("|---|---|---:|---:|---:|");
    for (format, path) in files {
        for reader in READERS {
            let toggle = match reader {
                Reader::Voxtap => "--toggle-collect=*read_pass_voxtap*",
                Reader::PcapFile => "--toggle-collect=*read_pass_pcap_file*",
            };
            let run = Command::new("valgrind")
                .args(["--tool=callgrind", toggle])
                .arg(format!("--callgrind-out-file={}", out_file.display()))
                .arg(&exe)
                .args(["--pass", reader.name(), "--input"])
                .arg(path)
                .output();
            let _ = std::fs::remove_file(&out_file);
            let Ok(run) = run else {
                println!("valgrind is not installed");
                return;
            };
            let stdout = String::from_utf8_lossy(&run.stdout);
            let frames: u64 = stdout
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let ir: Option<u64> = String::from_utf8_lossy(&run.stderr)
                .lines()
                .find_map(|l| l.split("Collected :").nth(1))
                .and_then(|v| v.trim().replace(',', "").parse().ok());
            match ir {
                Some(ir) => println!(
                    "| {format} | {} | {frames} | {ir} | {} |",
                    reader.name(),
                    ir / frames.max(1)
                ),
                None => println!(
                    "| {format} | {} | {frames} | callgrind gave no count | |",
                    reader.name()
                ),
            }
        }
    }
    println!();
    println!(
        "(each row: valgrind --tool=callgrind --toggle-collect='*read_pass_voxtap*' (or '*read_pass_pcap_file*') target/release/capture-bench --pass voxtap|pcap-file --input FILE)"
    );
}

/// Damaged copies of the first `n` records of `pcap`, and how each reader fares on them.
fn damage(pcap: &Path, work: &Path, n: usize) {
    let full = std::fs::read(pcap).expect("read the capture");
    let offsets = pcap_records(&full);
    let n = n.min(offsets.len()).max(4);
    let end = offsets.get(n).copied().unwrap_or(full.len());
    let base = full[..end].to_vec();
    drop(full);
    let recs = pcap_records(&base);
    let mid = recs[recs.len() / 2];
    let le = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());

    let mut cases: Vec<(&str, String, Vec<u8>)> = Vec::new();
    cases.push(("pcap", "clean".into(), base.clone()));
    cases.push((
        "pcap",
        "cut inside a record (the file ends there)".into(),
        base[..mid + 16 + 7].to_vec(),
    ));
    let mut garbage = base.clone();
    garbage[mid + 8..mid + 12].copy_from_slice(&0x5a3c_91e7u32.to_le_bytes());
    cases.push((
        "pcap",
        "mid-file record's length overwritten with garbage".into(),
        garbage,
    ));
    let mut plausible = base.clone();
    let caplen = le(&plausible, mid + 8);
    plausible[mid + 8..mid + 12].copy_from_slice(&(caplen + 100).to_le_bytes());
    cases.push((
        "pcap",
        "mid-file record's length 100 too long (still under the snaplen)".into(),
        plausible,
    ));
    let mut lost = base.clone();
    lost.drain(mid + 40..mid + 44);
    cases.push(("pcap", "4 bytes lost mid-file".into(), lost));
    // Not damage: a capture taken with a 96-byte snapshot length (tcpdump -s 96).
    let mut snap = base[..24].to_vec();
    snap[16..20].copy_from_slice(&96u32.to_le_bytes());
    for &at in &recs {
        let caplen = le(&base, at + 8) as usize;
        let keep = caplen.min(96);
        snap.extend_from_slice(&base[at..at + 8]);
        snap.extend_from_slice(&(keep as u32).to_le_bytes());
        snap.extend_from_slice(&base[at + 12..at + 16]);
        snap.extend_from_slice(&base[at + 16..at + 16 + keep]);
    }
    let snap_clean = snap.clone();
    cases.push((
        "pcap",
        "not damaged: 96-byte snapshot length (tcpdump -s 96)".into(),
        snap,
    ));

    let base_path = work.join("damage-base.pcap");
    std::fs::write(&base_path, &base).expect("write");
    let ng_path = work.join("damage-base.pcapng");
    if editcap_pcapng(&base_path, &ng_path) {
        let ng = std::fs::read(&ng_path).expect("read");
        let blocks = pcapng_packet_blocks(&ng);
        let mid = blocks[blocks.len() / 2];
        let mid_len = le(&ng, mid + 4) as usize;
        cases.push(("pcapng", "clean".into(), ng.clone()));
        cases.push((
            "pcapng",
            "cut inside a block (the file ends there)".into(),
            ng[..mid + 8 + 7].to_vec(),
        ));
        cases.push((
            "pcapng",
            "cut inside a block header (the file ends there)".into(),
            ng[..mid + 5].to_vec(),
        ));
        let mut garbage = ng.clone();
        garbage[mid + 4..mid + 8].copy_from_slice(&0x5a3c_91e8u32.to_le_bytes());
        cases.push((
            "pcapng",
            "mid-file block's length overwritten with garbage".into(),
            garbage,
        ));
        let mut longer = ng.clone();
        longer[mid + 4..mid + 8].copy_from_slice(&(mid_len as u32 + 8).to_le_bytes());
        cases.push((
            "pcapng",
            "mid-file block's length 8 too long".into(),
            longer,
        ));
        let mut lost = ng.clone();
        lost.drain(mid + 40..mid + 44);
        cases.push(("pcapng", "4 bytes lost mid-file".into(), lost));
        let mut lost1 = ng.clone();
        lost1.drain(mid + 41..mid + 42);
        cases.push((
            "pcapng",
            "1 byte lost mid-file (every later block unaligned)".into(),
            lost1,
        ));
        let mut iface = ng.clone();
        iface[mid + 8..mid + 12].copy_from_slice(&7u32.to_le_bytes());
        cases.push((
            "pcapng",
            "a mid-file packet names interface 7, never described".into(),
            iface,
        ));
        // Two files concatenated, the second big-endian: read as two sections.
        let mut two = ng.clone();
        two.extend_from_slice(&pcapng_big_endian(&ng));
        cases.push((
            "pcapng",
            "not damaged: the file, then a big-endian copy (two sections)".into(),
            two.clone(),
        ));
        let mut two_bad = two.clone();
        two_bad[ng.len() + 4..ng.len() + 8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        cases.push((
            "pcapng",
            "the same, the big-endian section header's length garbage".into(),
            two_bad,
        ));
    }
    let _ = std::fs::remove_file(&ng_path);

    println!();
    println!(
        "## Damaged files: the first {} records of the capture ({} KB)",
        recs.len(),
        base.len() / 1000
    );
    println!();
    println!("| format | file | reader | frames out | intact | how it ends | past the error? |");
    println!("|---|---|---|---:|---:|---|---|");
    let clean: Vec<u64> = survey(Reader::Voxtap, &base_path).frames;
    let snap_path = work.join("snap.pcap");
    std::fs::write(&snap_path, &snap_clean).expect("write");
    let snap_frames: Vec<u64> = survey(Reader::Voxtap, &snap_path).frames;
    let _ = std::fs::remove_file(&snap_path);
    let _ = std::fs::remove_file(&base_path);
    for (format, what, bytes) in &cases {
        let path = work.join(format!("damaged.{format}"));
        std::fs::write(&path, bytes).expect("write");
        let twice: Vec<u64> = clean.iter().chain(&clean).copied().collect();
        let reference = if what.contains("two sections") || what.starts_with("the same") {
            &twice
        } else if what.starts_with("not damaged") {
            &snap_frames
        } else {
            &clean
        };
        let mut pool: HashMap<u64, usize> = HashMap::new();
        for h in reference {
            *pool.entry(*h).or_default() += 1;
        }
        for reader in READERS {
            let s = survey(reader, &path);
            let mut left = pool.clone();
            let intact = s
                .frames
                .iter()
                .filter(|h| match left.get_mut(h) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                })
                .count();
            let k = s.skipped.len();
            let stretches = s
                .skipped
                .iter()
                .map(|(at, n)| format!("{n} bytes at {at}"))
                .collect::<Vec<_>>()
                .join(", ");
            let ends = match (&s.error, k) {
                (None, 0) => "clean end".to_string(),
                (None, k) => {
                    format!("clean end, {k} corrupt stretch(es) skipped and reported ({stretches})")
                }
                (Some(e), k) => {
                    let e = e.rsplit(": ").take(2).collect::<Vec<_>>();
                    let e = e.into_iter().rev().collect::<Vec<_>>().join(": ");
                    if k > 0 {
                        format!("error: {e} ({k} skipped before)")
                    } else {
                        format!("error: {e}")
                    }
                }
            };
            let past = match (reader, &s.error) {
                (_, None) => "—".to_string(),
                (Reader::Voxtap, Some(_)) => "no: the error ends the file".to_string(),
                (Reader::PcapFile, Some(_)) if s.stuck => {
                    "no: calling again repeats the error".to_string()
                }
                (Reader::PcapFile, Some(_)) => format!("{} frames after it", s.after_error),
            };
            println!(
                "| {format} | {what} | {} | {} of {} | {intact} | {ends} | {past} |",
                reader.name(),
                s.frames.len(),
                reference.len()
            );
        }
        let _ = std::fs::remove_file(&path);
    }
}
