//! codec-bench: what decoding costs, codec by codec.
//!
//! For each codec, 10 s of a speech-like tone (1 kHz with a syllabic envelope and a little
//! noise) is encoded once by the codec's own encoder (not timed), then a fresh decoder decodes
//! every payload, `--reps` times; the fastest pass gives ns per packet and per second of audio.
//! iLBC has no encoder here: it decodes pseudo-random 30 ms frames (its cost does not depend
//! on the bits much).
//!
//! Wall-clock time moves with the machine's load; the instruction count does not. `--callgrind`
//! re-runs this binary under `valgrind --tool=callgrind` once per codec, collecting only inside
//! the decode pass, and prints instructions per packet.
//!
//! Usage: codec-bench [--secs S] [--reps N] [--codec LABEL] [--callgrind]

use std::process::Command;
use std::time::Instant;

use voxtap_codec::encode::encoder_for;
use voxtap_codec::{CodecSpec, decoder_for};
use voxtap_perf_args::arg;

/// A codec setup to measure: label, encoding name, clock rate, channels, fmtp, rate hint.
struct Case {
    label: &'static str,
    name: &'static str,
    clock: u32,
    channels: u8,
    fmtp: &'static str,
    hint: u32,
}

const fn c(
    label: &'static str,
    name: &'static str,
    clock: u32,
    fmtp: &'static str,
    hint: u32,
) -> Case {
    Case {
        label,
        name,
        clock,
        channels: 1,
        fmtp,
        hint,
    }
}

const CASES: &[Case] = &[
    c("PCMU", "PCMU", 8000, "", 8000),
    c("PCMA", "PCMA", 8000, "", 8000),
    c("G722", "G722", 8000, "", 16_000),
    c("G726-16", "G726-16", 8000, "", 8000),
    c("G726-24", "G726-24", 8000, "", 8000),
    c("G726-32", "G726-32", 8000, "", 8000),
    c("G726-40", "G726-40", 8000, "", 8000),
    c("AAL2-G726-32", "AAL2-G726-32", 8000, "", 8000),
    c("L16/16000", "L16", 16_000, "", 16_000),
    Case {
        channels: 2,
        ..c("L16/48000/2", "L16", 48_000, "", 48_000)
    },
    c("opus@48k", "opus", 48_000, "", 48_000),
    c("opus@16k", "opus", 48_000, "", 16_000),
    c("opus@8k", "opus", 48_000, "", 8000),
    c("G729", "G729", 8000, "", 8000),
    c("GSM", "GSM", 8000, "", 8000),
    c("speex/8000", "speex", 8000, "", 8000),
    c("speex/16000", "speex", 16_000, "", 16_000),
    c("speex/32000", "speex", 32_000, "", 32_000),
    c("AMR 12.2 BE", "AMR", 8000, "", 8000),
    c("AMR 12.2 OA", "AMR", 8000, "octet-align=1", 8000),
    c("AMR-WB 23.85 BE", "AMR-WB", 16_000, "", 16_000),
    c("AMR-WB 23.85 OA", "AMR-WB", 16_000, "octet-align=1", 16_000),
    c("iLBC 30ms", "iLBC", 8000, "mode=30", 8000),
];

impl Case {
    fn spec(&self) -> CodecSpec {
        let mut s = CodecSpec::new(self.name, self.clock);
        s.channels = self.channels;
        s.fmtp = self.fmtp.to_string();
        s
    }
}

fn speechlike(rate: u32, samples: usize) -> Vec<i16> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..samples)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let tau = std::f64::consts::TAU;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = ((x >> 52) as f64 - 2048.0) * 0.2;
            (8000.0 * (0.6 + 0.4 * (tau * 4.0 * t).sin()) * (tau * 1000.0 * t).sin() + noise) as i16
        })
        .collect()
}

/// The payloads of `secs` seconds of audio, and the audio seconds they hold.
fn payloads(case: &Case, secs: u32) -> Result<Vec<Vec<u8>>, String> {
    let spec = case.spec();
    if case.name == "iLBC" {
        let mut x: u64 = 12345;
        let n = (secs * 1000 / 30) as usize;
        return Ok((0..n)
            .map(|_| {
                (0..50)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            })
            .collect());
    }
    let mut enc = encoder_for(&spec, 20).map_err(|e| e.to_string())?;
    let n = enc.frame_samples();
    let pcm = speechlike(
        enc.sample_rate(),
        enc.sample_rate() as usize * secs as usize,
    );
    pcm.chunks_exact(n)
        .map(|chunk| enc.encode(chunk).map_err(|e| e.to_string()))
        .collect()
}

/// One pass: a fresh decoder decodes every payload. Kept out of line so that callgrind can
/// collect in it alone (`--toggle-collect=*decode_pass*`).
#[inline(never)]
fn decode_pass(
    spec: &CodecSpec,
    hint: u32,
    payloads: &[Vec<u8>],
    out: &mut Vec<i16>,
) -> (usize, usize) {
    let Ok(mut d) = decoder_for(spec, hint) else {
        return (0, 0);
    };
    let (mut samples, mut errors) = (0, 0);
    for p in payloads {
        out.clear();
        match d.decode(p, out) {
            Ok(n) => samples += n,
            Err(_) => errors += 1,
        }
    }
    std::hint::black_box(&out);
    (samples, errors)
}

const USAGE: &str = "\
codec-bench: what decoding one RTP payload costs, codec by codec

Usage: codec-bench [--secs S] [--reps N] [--codec LABEL] [--callgrind]

  --secs S        seconds of audio to encode and decode per codec (default 10)
  --reps N        decode passes; the fastest is reported (default 20)
  --codec LABEL   only this row (PCMU, G722, opus@8k, ...; labels as printed)
  --callgrind     instructions per packet instead, one valgrind run per codec
  -h, --help      this text

A codec whose library this build lacks is listed as not built.";

fn main() {
    voxtap_perf_args::check_or_exit(USAGE, &["--secs", "--reps", "--codec"], &["--callgrind"]);
    let secs: u32 = arg("--secs").map_or(10, |v| v.parse().expect("--secs S"));
    let reps: usize = arg("--reps").map_or(20, |v| v.parse().expect("--reps N"));
    let only = arg("--codec");
    let callgrind = voxtap_perf_args::flag("--callgrind");
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| o == c.label))
        .collect();
    if callgrind {
        return run_callgrind(&cases, secs);
    }

    println!(
        "| codec | packets | audio s | ns/packet (best of {reps}) | ns per s of audio | × real time |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for case in cases {
        let spec = case.spec();
        let p = match payloads(case, secs) {
            Ok(p) => p,
            Err(e) => {
                println!("| {} | — | — | not built: {e} | | |", case.label);
                continue;
            }
        };
        if let Err(e) = decoder_for(&spec, case.hint) {
            println!("| {} | — | — | not built: {e} | | |", case.label);
            continue;
        }
        let mut out = Vec::with_capacity(8192);
        let mut best = f64::MAX;
        let mut result = (0, 0);
        for _ in 0..reps {
            let t = Instant::now();
            result = decode_pass(&spec, case.hint, &p, &mut out);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let (samples, errors) = result;
        let rate = decoder_for(&spec, case.hint).map_or(1, |d| d.sample_rate());
        let audio = samples as f64 / rate as f64;
        let note = if errors > 0 {
            format!(" ({errors} errors)")
        } else {
            String::new()
        };
        println!(
            "| {}{note} | {} | {:.1} | {:.0} | {:.0} | {:.0} |",
            case.label,
            p.len(),
            audio,
            best * 1e9 / p.len() as f64,
            best * 1e9 / audio,
            audio / best
        );
    }
    println!();
    println!(
        "Reproduce: cargo build --release -p voxtap-perf-codec && target/release/codec-bench --secs {secs} --reps {reps}{}",
        only.as_deref()
            .map(|o| format!(" --codec {o}"))
            .unwrap_or_default()
    );
}

/// Runs this binary under callgrind for each codec and prints instructions per packet.
fn run_callgrind(cases: &[&Case], secs: u32) {
    let exe = std::env::current_exe().expect("own path");
    let out_file =
        std::env::temp_dir().join(format!("codec-bench-callgrind-{}.out", std::process::id()));
    println!("| codec | packets | instructions (Ir) | per packet | per second of audio |");
    println!("|---|---:|---:|---:|---:|");
    for case in cases {
        let packets = match payloads(case, secs) {
            Ok(p) => p.len(),
            Err(e) => {
                println!("| {} | — | not built: {e} | | |", case.label);
                continue;
            }
        };
        let run = Command::new("valgrind")
            .args(["--tool=callgrind", "--toggle-collect=*decode_pass*"])
            .arg(format!("--callgrind-out-file={}", out_file.display()))
            .arg(&exe)
            .args([
                "--secs",
                &secs.to_string(),
                "--reps",
                "1",
                "--codec",
                case.label,
            ])
            .output();
        let _ = std::fs::remove_file(&out_file);
        let Ok(run) = run else {
            println!("valgrind is not installed");
            return;
        };
        let stderr = String::from_utf8_lossy(&run.stderr);
        let ir: Option<u64> = stderr
            .lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|v| v.trim().replace(',', "").parse().ok());
        match ir {
            Some(ir) => println!(
                "| {} | {packets} | {ir} | {} | {} |",
                case.label,
                ir / packets.max(1) as u64,
                ir / secs.max(1) as u64
            ),
            None => println!(
                "| {} | {packets} | callgrind gave no count | | |",
                case.label
            ),
        }
    }
    println!();
    println!(
        "Reproduce: cargo build --release -p voxtap-perf-codec && target/release/codec-bench --secs {secs} --callgrind"
    );
    println!(
        "(each row: valgrind --tool=callgrind --toggle-collect='*decode_pass*' target/release/codec-bench --secs {secs} --reps 1 --codec LABEL)"
    );
}
