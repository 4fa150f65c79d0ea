//! Helpers shared by the codec tests: tones, Goertzel, spectral flatness, the rule for codecs
//! this build lacks, and RTP payloads out of the real captures.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use voxtap_codec::encode::{Encoder, encoder_for};
use voxtap_codec::{CodecSpec, Decoder, Undecodable, decoder_for};

/// CI sets VOXTAP_REQUIRE_CODECS=1: a codec whose library the build lacks is then a failure.
pub fn require_codecs() -> bool {
    std::env::var("VOXTAP_REQUIRE_CODECS").is_ok_and(|v| v == "1")
}

/// A loud line straight to stderr, past the test harness' capture, so a passing run shows it.
pub fn skipped(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {msg} ***\n");
}

/// A missing library: fails under VOXTAP_REQUIRE_CODECS=1, else prints SKIPPED.
pub fn missing(what: &str, why: &dyn std::fmt::Display) {
    if require_codecs() {
        panic!("{what}: {why} (VOXTAP_REQUIRE_CODECS=1)");
    }
    skipped(&format!("{what}: {why}"));
}

/// The decoder, or None after reporting a library this build lacks. Other errors panic.
pub fn decoder(spec: &CodecSpec, rate_hint: u32) -> Option<Box<dyn Decoder>> {
    match decoder_for(spec, rate_hint) {
        Ok(d) => Some(d),
        Err(e @ Undecodable::NotBuilt { .. }) => {
            missing(&spec.name, &e);
            None
        }
        Err(e) => panic!("{}: {e}", spec.name),
    }
}

pub fn encoder(spec: &CodecSpec, ptime: u32) -> Option<Box<dyn Encoder>> {
    match encoder_for(spec, ptime) {
        Ok(e) => Some(e),
        Err(e @ Undecodable::NotBuilt { .. }) => {
            missing(&format!("{} encoder", spec.name), &e);
            None
        }
        Err(e) => panic!("{} encoder: {e}", spec.name),
    }
}

pub fn spec(name: &str, rate: u32, fmtp: &str) -> CodecSpec {
    let mut s = CodecSpec::new(name, rate);
    s.fmtp = fmtp.to_string();
    s
}

pub fn tone(freq: f64, rate: u32, samples: usize, amplitude: f64) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16
        })
        .collect()
}

pub fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// A tone with a 4 Hz (syllabic) envelope and a little noise: predictive codecs (Speex) never
/// resynchronise on a perfectly periodic tone after a decoder upset, as they do on speech.
pub fn speechlike(freq: f64, rate: u32, samples: usize) -> Vec<i16> {
    let mut r = Rng(0x1234_5678);
    (0..samples)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let tau = 2.0 * std::f64::consts::PI;
            let env = 0.6 + 0.4 * (tau * 4.0 * t).sin();
            let noise = ((r.next() >> 52) as f64 - 2048.0) * 0.2;
            (8000.0 * env * (tau * freq * t).sin() + noise) as i16
        })
        .collect()
}

/// Goertzel power of `freq` in `x`.
pub fn goertzel(x: &[i16], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = v as f64 + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// The strongest frequency in 10 Hz steps from 100 Hz to just under Nyquist.
pub fn dominant(x: &[i16], rate: u32) -> f64 {
    let top = (rate as f64 / 2.0 - 100.0).min(15_000.0);
    let mut best = (0.0, 0.0);
    let mut f = 100.0;
    while f < top {
        let p = goertzel(x, rate, f);
        if p > best.1 {
            best = (f, p);
        }
        f += 10.0;
    }
    best.0
}

/// In-place radix-2 FFT (length a power of two), for the flatness measure.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * std::f64::consts::PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = ((ang * k as f64).cos(), (ang * k as f64).sin());
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * wr - im[b] * wi;
                let ti = re[b] * wi + im[b] * wr;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

/// Spectral flatness (geometric over arithmetic mean) of the average power spectrum of 512-
/// sample Hann frames, over the band 100 Hz - 0.9 Nyquist. White noise is near 1, speech and
/// tones far below.
pub fn flatness(x: &[i16], rate: u32) -> f64 {
    const N: usize = 512;
    let mut power = vec![0.0f64; N / 2];
    let mut frames = 0;
    for chunk in x.chunks_exact(N) {
        let mut re: Vec<f64> = chunk
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N as f64).cos();
                s as f64 * w
            })
            .collect();
        let mut im = vec![0.0; N];
        fft(&mut re, &mut im);
        for k in 0..N / 2 {
            power[k] += re[k] * re[k] + im[k] * im[k];
        }
        frames += 1;
    }
    assert!(frames > 0, "too little audio for a spectrum");
    let lo = (100.0 * N as f64 / rate as f64) as usize + 1;
    let hi = (N / 2) * 9 / 10;
    let band = &power[lo..hi];
    let eps = 1e-9;
    let geo = (band.iter().map(|p| (p + eps).ln()).sum::<f64>() / band.len() as f64).exp();
    let arith = band.iter().sum::<f64>() / band.len() as f64 + eps;
    geo / arith
}

/// A deterministic pseudo-random generator (xorshift), for noise and garbage.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub fn white_noise(samples: usize, seed: u64) -> Vec<i16> {
    let mut r = Rng(seed | 1);
    (0..samples).map(|_| (r.next() >> 48) as i16 / 4).collect()
}

/// `../shared/captures` from the workspace root, or None after a loud SKIPPED line.
pub fn captures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/captures");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: no real captures at {} (see its README.md)",
            dir.display()
        );
        None
    }
}

/// One RTP stream of a capture: what the sender's SDP said of its payload type, and its
/// payloads in arrival order (sequence number, payload).
pub struct Stream {
    pub spec: CodecSpec,
    pub port: u16,
    pub packets: Vec<(u16, Vec<u8>)>,
}

/// UDP datagrams of an Ethernet (or Linux cooked) pcap: (source port, dest port, payload).
fn udp_datagrams(path: &std::path::Path) -> Vec<(u16, u16, Vec<u8>)> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("a pcap file");
    let linktype = reader.header().datalink;
    let mut out = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let Ok(pkt) = pkt else { break };
        let d = &pkt.data[..];
        let (mut ethertype, mut off) = match linktype {
            pcap_file::DataLink::LINUX_SLL => (u16::from_be_bytes([d[14], d[15]]), 16),
            _ => (u16::from_be_bytes([d[12], d[13]]), 14),
        };
        while ethertype == 0x8100 && d.len() >= off + 4 {
            ethertype = u16::from_be_bytes([d[off + 2], d[off + 3]]);
            off += 4;
        }
        let udp = match ethertype {
            0x0800 if d.len() > off + 20 => {
                let ihl = (d[off] & 0x0f) as usize * 4;
                let frag = u16::from_be_bytes([d[off + 6], d[off + 7]]) & 0x3fff;
                if d[off + 9] != 17 || frag != 0 {
                    continue;
                }
                off + ihl
            }
            0x86dd if d.len() > off + 40 && d[off + 6] == 17 => off + 40,
            _ => continue,
        };
        if d.len() < udp + 8 {
            continue;
        }
        let sport = u16::from_be_bytes([d[udp], d[udp + 1]]);
        let dport = u16::from_be_bytes([d[udp + 2], d[udp + 3]]);
        let len = (u16::from_be_bytes([d[udp + 4], d[udp + 5]]) as usize).min(d.len() - udp);
        out.push((sport, dport, d[udp + 8..udp + len.max(8)].to_vec()));
    }
    out
}

/// The audio streams of a capture: each SDP `m=audio PORT` with its first payload type's
/// rtpmap and fmtp, and the RTP the capture has from that port with that payload type.
pub fn rtp_streams(path: &std::path::Path) -> Vec<Stream> {
    let datagrams = udp_datagrams(path);
    let mut specs: BTreeMap<u16, (u8, CodecSpec)> = BTreeMap::new();
    for (_, _, p) in &datagrams {
        let text = String::from_utf8_lossy(p);
        let Some(m) = text.lines().find_map(|l| l.strip_prefix("m=audio ")) else {
            continue;
        };
        let mut it = m.split_whitespace();
        let (Some(port), Some(pt)) = (it.next().and_then(|p| p.parse().ok()), it.nth(1)) else {
            continue;
        };
        let rtpmap = format!("a=rtpmap:{pt} ");
        let fmtp = format!("a=fmtp:{pt} ");
        let mut spec = CodecSpec::default();
        for l in text.lines() {
            if let Some(v) = l.strip_prefix(&rtpmap) {
                let mut parts = v.trim().split('/');
                spec.name = parts.next().unwrap_or_default().to_string();
                spec.clock_rate = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
                spec.channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
            } else if let Some(v) = l.strip_prefix(&fmtp) {
                spec.fmtp = v.trim().to_string();
            }
        }
        let pt: u8 = pt.parse().unwrap_or(255);
        if spec.name.is_empty() {
            // A static payload type (RFC 3551 §6).
            let (name, rate) = match pt {
                0 => ("PCMU", 8000),
                3 => ("GSM", 8000),
                8 => ("PCMA", 8000),
                9 => ("G722", 8000),
                18 => ("G729", 8000),
                _ => continue,
            };
            spec = CodecSpec::new(name, rate);
        }
        specs.entry(port).or_insert((pt, spec));
    }
    let mut streams = Vec::new();
    for (&port, (pt, spec)) in &specs {
        let pt = *pt;
        let mut packets = Vec::new();
        for (sport, _, p) in &datagrams {
            if *sport != port || p.len() < 12 || p[0] >> 6 != 2 || p[1] & 0x7f != pt {
                continue;
            }
            let cc = (p[0] & 0x0f) as usize;
            let mut start = 12 + 4 * cc;
            if p[0] & 0x10 != 0 && p.len() >= start + 4 {
                start += 4 + 4 * u16::from_be_bytes([p[start + 2], p[start + 3]]) as usize;
            }
            let mut end = p.len();
            if p[0] & 0x20 != 0 {
                end = end.saturating_sub(*p.last().unwrap_or(&0) as usize);
            }
            if start < end {
                packets.push((u16::from_be_bytes([p[2], p[3]]), p[start..end].to_vec()));
            }
        }
        if !packets.is_empty() {
            streams.push(Stream {
                spec: spec.clone(),
                port,
                packets,
            });
        }
    }
    streams
}

/// Runs ffmpeg (the oracle) to decode `input` (raw codec bytes) with `args` before `-i`;
/// returns the s16le mono samples, or None after reporting that ffmpeg is missing.
pub fn ffmpeg_decode(input: &[u8], args: &[&str], tag: &str) -> Option<Vec<i16>> {
    let dir = std::env::temp_dir().join(format!("voxtap-codec-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let inp = dir.join("in.bin");
    let outp = dir.join("out.raw");
    std::fs::write(&inp, input).expect("write");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .arg("-i")
        .arg(&inp)
        .args(["-f", "s16le", "-ac", "1"])
        .arg(&outp)
        .status();
    let result = match status {
        Ok(s) if s.success() => {
            let raw = std::fs::read(&outp).expect("ffmpeg output");
            Some(
                raw.chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            )
        }
        Ok(s) => panic!("ffmpeg {args:?} failed: {s}"),
        Err(e) => {
            missing("ffmpeg (the G.722/G.726 oracle)", &e);
            None
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}
