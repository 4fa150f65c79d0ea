//! The audio of the real captures: every codec capture gives a recording whose audio is
//! really there (as long as its RTP, speech- or tone-like rather than noise), matching an
//! independent decode by FFmpeg where FFmpeg can read the raw payloads; the SRTP capture gives
//! speech, not ciphertext noise; ZRTP and DTLS media are said to be encrypted.

use std::path::Path;
use std::process::Command;

use voxtap_tests::{Scratch, Stereo, catalog, read_wav, replay_ok, shared_captures};

/// Spectral flatness (geometric over arithmetic mean of the power spectrum) averaged over the
/// 256-sample blocks that carry sound: white noise is near 1, speech and tones far below.
fn flatness(x: &[f64]) -> f64 {
    const N: usize = 256;
    let mut sum = 0.0;
    let mut blocks = 0;
    for block in x.chunks_exact(N) {
        let energy: f64 = block.iter().map(|v| v * v).sum::<f64>() / N as f64;
        if energy < 1e-6 {
            continue;
        }
        let mut logs = 0.0;
        let mut mean = 0.0;
        for k in 1..N / 2 {
            let (mut re, mut im) = (0.0, 0.0);
            for (n, v) in block.iter().enumerate() {
                // A Hann window keeps a tone's leakage from looking like noise.
                let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N as f64).cos();
                let a = 2.0 * std::f64::consts::PI * (k * n) as f64 / N as f64;
                re += v * w * a.cos();
                im -= v * w * a.sin();
            }
            let p = re * re + im * im + 1e-12;
            logs += p.ln();
            mean += p;
        }
        let m = (N / 2 - 1) as f64;
        sum += (logs / m).exp() / (mean / m);
        blocks += 1;
    }
    if blocks == 0 {
        1.0
    } else {
        sum / blocks as f64
    }
}

/// Seconds of a channel from its first to its last non-silent sample.
fn sounding_secs(x: &[f64], rate: u32) -> f64 {
    let first = x.iter().position(|v| v.abs() > 1e-3);
    let last = x.iter().rposition(|v| v.abs() > 1e-3);
    match (first, last) {
        (Some(a), Some(b)) => (b - a) as f64 / rate as f64,
        _ => 0.0,
    }
}

/// The best normalised correlation of `b` against `a` over shifts of `b` up to `max_lag`
/// samples, on 10 ms energy envelopes first and then sample by sample around the best.
fn best_correlation(a: &[f64], b: &[f64], rate: u32, max_lag: usize) -> f64 {
    let hop = (rate / 100) as usize;
    let env = |x: &[f64]| -> Vec<f64> {
        x.chunks(hop)
            .map(|c| c.iter().map(|v| v * v).sum::<f64>())
            .collect()
    };
    let (ea, eb) = (env(a), env(b));
    let corr = |x: &[f64], y: &[f64], lag: isize| -> f64 {
        let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
        for (i, &xv) in x.iter().enumerate() {
            let j = i as isize + lag;
            if j < 0 || j as usize >= y.len() {
                continue;
            }
            let yv = y[j as usize];
            xy += xv * yv;
            xx += xv * xv;
            yy += yv * yv;
        }
        if xx == 0.0 || yy == 0.0 {
            0.0
        } else {
            xy / (xx * yy).sqrt()
        }
    };
    let coarse = (max_lag / hop) as isize;
    let best_block = (-coarse..=coarse)
        .max_by(|&p, &q| corr(&ea, &eb, p).total_cmp(&corr(&ea, &eb, q)))
        .unwrap_or(0);
    let centre = best_block * hop as isize;
    (centre - 2 * hop as isize..=centre + 2 * hop as isize)
        .map(|lag| corr(a, b, lag))
        .fold(f64::MIN, f64::max)
}

/// Every RTP payload of one payload type in a capture, in order, as tshark reads them.
fn payloads(capture: &Path, pt: u8) -> Vec<Vec<u8>> {
    let filter = format!("rtp.p_type == {pt}");
    voxtap_tests::tshark_fields(capture, &filter, &["rtp.payload"], &[])
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let hex: String = l.chars().filter(char::is_ascii_hexdigit).collect();
            (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

/// FFmpeg's decode of raw codec frames (`format` its raw demuxer), at `rate`, mono.
fn ffmpeg_decode(
    dir: &Path,
    format: &str,
    header: &[u8],
    frames: &[Vec<u8>],
    rate: u32,
) -> Vec<f64> {
    let raw = dir.join(format!("{format}.raw"));
    let mut bytes = header.to_vec();
    for f in frames {
        bytes.extend_from_slice(f);
    }
    std::fs::write(&raw, bytes).expect("write raw payloads");
    let out = dir.join(format!("{format}.s16"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", format])
        .arg("-i")
        .arg(&raw)
        .args(["-f", "s16le", "-ac", "1", "-ar", &rate.to_string()])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not decode {format}");
    std::fs::read(&out)
        .expect("ffmpeg output")
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64 / 32768.0)
        .collect()
}

fn tools(test: &str) -> bool {
    let ok = |p: &str| {
        Command::new(p)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
            || Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
    };
    let have = ok("tshark") && ok("ffmpeg");
    if !have {
        assert!(
            std::env::var_os("VOXTAP_REQUIRE_CODECS").is_none(),
            "{test}: tshark and ffmpeg are required"
        );
        eprintln!("\n*** SKIPPED {test}: tshark or ffmpeg is not installed ***\n");
    }
    have
}

struct Recording {
    state: String,
    rate: i64,
    codec: String,
    wav: Stereo,
}

fn recordings(out: &Path) -> Vec<Recording> {
    let db = catalog(out);
    let mut s = db
        .prepare("SELECT path, state, sample_rate, codec FROM recordings ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String, i64, String)> = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.into_iter()
        .map(|(path, state, rate, codec)| Recording {
            state,
            rate,
            codec,
            wav: read_wav(&out.join(path)),
        })
        .collect()
}

/// (capture, recordings expected, their rate, what FFmpeg reads the payloads as: raw demuxer,
/// its file header, payload type and decode rate).
type Case = (
    &'static str,
    usize,
    i64,
    Option<(&'static str, &'static [u8], u8, u32)>,
);

const CODECS: &[Case] = &[
    (
        "sip-rtp-g722.pcap",
        1,
        16_000,
        Some(("g722", b"", 9, 16_000)),
    ),
    ("sip-rtp-g729a.pcap", 1, 8000, Some(("g729", b"", 18, 8000))),
    ("sip-rtp-gsm.pcap", 1, 8000, Some(("gsm", b"", 3, 8000))),
    ("sip-rtp-opus.pcap", 1, 16_000, None),
    ("extra/sip-rtp-g726.pcap", 8, 8000, None),
    (
        "extra/sip-rtp-ilbc.pcap",
        1,
        8000,
        Some(("ilbc", b"#!iLBC30\n", 99, 8000)),
    ),
    ("extra/sip-rtp-speex.pcap", 3, 0, None),
];

/// Each codec capture (the callee sends, one way): a complete recording at the codec's rate
/// whose callee channel sounds for as long as its RTP stream (8.5 s), is not noise, and is
/// what FFmpeg decodes from the same payloads.
#[test]
fn every_codec_capture_gives_its_audio() {
    let Some(dir) = shared_captures("every_codec_capture_gives_its_audio") else {
        return;
    };
    if !tools("every_codec_capture_gives_its_audio") {
        return;
    }
    for &(name, count, rate, oracle) in CODECS {
        let cap = dir.join(name);
        let scratch = Scratch::new(&format!("audio-{}", name.replace('/', "-")));
        let out = scratch.path().join("out");
        replay_ok(&out, &[&cap]);
        let recs = recordings(&out);
        assert_eq!(recs.len(), count, "{name}: recordings");
        for r in &recs {
            assert_eq!(r.state, "complete", "{name} {}: state", r.codec);
            if rate != 0 {
                assert_eq!(r.rate, rate, "{name}: sample rate");
            }
            let secs = sounding_secs(&r.wav.right, r.wav.rate);
            assert!(
                (secs - 8.48).abs() < 0.2,
                "{name} {}: the callee sounds for {secs:.2} s, its RTP lasts 8.48 s",
                r.codec
            );
            let f = flatness(&r.wav.right);
            assert!(
                f < 0.5,
                "{name} {}: flatness {f:.2} is noise, not audio",
                r.codec
            );
            eprintln!("{name} {}: {secs:.2} s of audio, flatness {f:.3}", r.codec);
        }
        if let Some((format, header, pt, at)) = oracle {
            let theirs = ffmpeg_decode(scratch.path(), format, header, &payloads(&cap, pt), at);
            let ours = &recs[0].wav.right;
            let c = best_correlation(&theirs, ours, recs[0].wav.rate, 2 * at as usize);
            eprintln!("{name}: correlation with FFmpeg's decode {c:.4}");
            assert!(
                c > 0.95,
                "{name}: our audio and FFmpeg's differ (correlation {c:.3})"
            );
        }
    }
}

/// The SRTP capture: four PCMU streams under SDES keys, two legs of one conversation through
/// a PBX. Decrypted, each is speech (flatness far from noise) and the PBX relays the audio
/// unchanged between its two legs, so each direction decrypted under one key is the same audio
/// as under the other. By default the conversation is recorded once; with `record_each_leg`
/// both legs are, the second saying it repeats the first.
#[test]
fn srtp_capture_is_speech_not_noise() {
    let Some(dir) = shared_captures("srtp_capture_is_speech_not_noise") else {
        return;
    };
    let scratch = Scratch::new("audio-srtp");
    let once = scratch.path().join("once");
    replay_ok(&once, &[&dir.join("voipshark-srtp-call.pcap")]);
    let db = catalog(&once);
    let (recs, convs): (i64, i64) = db
        .query_row(
            "SELECT (SELECT count(*) FROM recordings WHERE state = 'complete'),
                    (SELECT count(DISTINCT conversation_id) FROM calls)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((recs, convs), (1, 1), "one conversation, recorded once");
    let config = scratch.path().join("each-leg.toml");
    std::fs::write(&config, "[conversations]\nrecord_each_leg = true\n").unwrap();
    let out = scratch.path().join("out");
    let o = voxtap_tests::replay_configured(
        &out,
        Some(&config),
        &[&dir.join("voipshark-srtp-call.pcap")],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let db = catalog(&out);
    let repeats: i64 = db
        .query_row(
            "SELECT count(*) FROM recordings WHERE repeats_recording_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        repeats, 1,
        "the second leg's recording says it repeats the first"
    );
    let security: Vec<(String, i64)> = db
        .prepare("SELECT security, decrypt_failures FROM streams")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(security.len(), 4);
    for (s, failed) in &security {
        assert!(s.starts_with("srtp AES_CM_128_HMAC_SHA1_80"), "{s}");
        assert_eq!(*failed, 0);
    }
    let recs = recordings(&out);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.state, "complete");
        for ch in [&r.wav.left, &r.wav.right] {
            let f = flatness(ch);
            eprintln!("SRTP channel flatness {f:.3}");
            assert!(f < 0.6, "flatness {f:.2}: still ciphertext noise");
        }
    }
    // The PBX relays each party's audio unchanged from one leg to the other: the channel of
    // one call decrypted under one key is the same audio as a channel of the other call under
    // another key. Both directions must match.
    for a in [&recs[0].wav.left, &recs[0].wav.right] {
        let best = [&recs[1].wav.left, &recs[1].wav.right]
            .iter()
            .map(|b| best_correlation(a, b, 8000, 8000))
            .fold(f64::MIN, f64::max);
        eprintln!("SRTP legs: best correlation {best:.4}");
        assert!(
            best > 0.95,
            "the relayed audio differs between the legs: {best:.3}"
        );
    }
}

/// ZRTP agrees keys in the media path: the audio before it is recorded, the rest is said to
/// be encrypted, and nothing is decoded as noise.
#[test]
fn zrtp_media_is_reported_encrypted() {
    let Some(dir) = shared_captures("zrtp_media_is_reported_encrypted") else {
        return;
    };
    let scratch = Scratch::new("audio-zrtp");
    let out = scratch.path().join("out");
    replay_ok(&out, &[&dir.join("asterisk-zfone-zrtp.pcap")]);
    let db = catalog(&out);
    let (state, why): (String, Option<String>) = db
        .query_row("SELECT state, state_reason FROM recordings", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(state, "partial");
    assert!(
        why.as_deref().is_some_and(|w| w.contains("ZRTP")),
        "{why:?}"
    );
    let r = &recordings(&out)[0];
    for ch in [&r.wav.left, &r.wav.right] {
        // After the key agreement (about 0.3 s in) the channels are silent, not noise.
        let tail = &ch[(r.wav.rate as usize)..];
        assert!(
            tail.iter().all(|&v| v == 0.0),
            "encrypted audio was written"
        );
    }
}
