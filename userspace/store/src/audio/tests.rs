//! Every format written, finished, cut and recovered, then read back with an independent
//! decoder (ffmpeg/ffprobe) and checked: duration, channels, rate, and that the left channel
//! holds the left tone and the right channel the right one (Goertzel on the decoded PCM).

use std::f64::consts::PI;
use std::process::Command;

use voxtap_core::vocab::RecordingFormat;

use super::*;

const LEFT_HZ: f64 = 440.0;
const RIGHT_HZ: f64 = 1000.0;
const RATES: [u32; 3] = [8000, 16000, 48000];
/// The other rates a policy may choose (Opus resamples them).
const OTHER_RATES: [u32; 2] = [32000, 44100];

/// Frames `from..from + n` of a stereo tone: 440 Hz left, 1000 Hz right.
fn tone(rate: u32, from: u64, n: u64) -> Vec<i16> {
    let mut v = Vec::with_capacity(n as usize * 2);
    for i in from..from + n {
        let t = i as f64 / f64::from(rate);
        v.push(((2.0 * PI * LEFT_HZ * t).sin() * 8000.0) as i16);
        v.push(((2.0 * PI * RIGHT_HZ * t).sin() * 8000.0) as i16);
    }
    v
}

/// Writes `n` frames of the tone in chunks of `chunk` samples (odd sizes split frames).
fn write_tone(f: &mut dyn AudioFile, rate: u32, n: u64, chunk: usize) {
    let all = tone(rate, 0, n);
    for c in all.chunks(chunk) {
        f.write(c).unwrap();
    }
}

fn name(format: RecordingFormat) -> String {
    format!("rec.{}", format.extension())
}

#[derive(Debug, PartialEq)]
struct Probe {
    codec: String,
    channels: u16,
    sample_rate: u32,
}

fn ffprobe(path: &Path) -> Result<Probe, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args([
            "stream=codec_name,channels,sample_rate",
            "-of",
            "default=nw=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_owned)
            .ok_or_else(|| format!("no {k} in {text:?}"))
    };
    Ok(Probe {
        codec: field("codec_name")?,
        channels: field("channels")?.parse().map_err(|e| format!("{e}"))?,
        sample_rate: field("sample_rate")?.parse().map_err(|e| format!("{e}"))?,
    })
}

/// Decoded interleaved stereo at the stream's own rate, and what ffmpeg complained about.
fn decode(path: &Path) -> (Vec<i16>, String) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-acodec", "pcm_s16le", "-"])
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let pcm = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (pcm, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Power of `freq` in `x` (Goertzel).
fn goertzel(x: &[f64], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * PI * freq / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// The left channel carries the left tone and the right channel the right one, each at least
/// 20 dB above the other's.
fn check_tones(pcm: &[i16], rate: u32, what: &str) {
    let frames = pcm.len() / 2;
    assert!(frames > rate as usize / 2, "{what}: only {frames} frames");
    // A middle second (or what there is), away from the encoders' start and end.
    let from = frames / 4;
    let n = (frames / 2).min(rate as usize);
    let chan = |c: usize| -> Vec<f64> {
        (from..from + n)
            .map(|i| f64::from(pcm[2 * i + c]))
            .collect()
    };
    let (l, r) = (chan(0), chan(1));
    let db = |a: f64, b: f64| 10.0 * (a / b.max(1e-9)).log10();
    let left = db(goertzel(&l, rate, LEFT_HZ), goertzel(&l, rate, RIGHT_HZ));
    let right = db(goertzel(&r, rate, RIGHT_HZ), goertzel(&r, rate, LEFT_HZ));
    assert!(
        left > 20.0 && right > 20.0,
        "{what}: left {left:.1} dB, right {right:.1} dB"
    );
}

/// What `ffprobe` reports for a format written at `rate`.
fn expected(format: RecordingFormat, rate: u32) -> Probe {
    let (codec, sample_rate) = match format {
        RecordingFormat::Wav => ("pcm_s16le", rate),
        RecordingFormat::Flac => ("flac", rate),
        RecordingFormat::Opus => ("opus", 48_000), // Opus always decodes at 48 kHz
        RecordingFormat::Mp3 => ("mp3", rate),
    };
    Probe {
        codec: codec.into(),
        channels: 2,
        sample_rate,
    }
}

/// Decoded frames (at the decoder's rate) that `frames` written at `rate` may come back as:
/// WAV and FLAC exactly, Opus and MP3 within two codec frames.
fn assert_length(format: RecordingFormat, decoded: u64, frames: u64, rate: u32, what: &str) {
    let (want, slack) = match format {
        RecordingFormat::Wav | RecordingFormat::Flac => (frames, 0),
        RecordingFormat::Opus => ((frames * 48_000).div_ceil(u64::from(rate)), 2 * 960),
        RecordingFormat::Mp3 => (frames, 2 * if rate >= 32_000 { 1152 } else { 576 }),
    };
    assert!(
        decoded.abs_diff(want) <= slack,
        "{what}: decoded {decoded} frames, wrote {want} (± {slack})"
    );
}

/// The most audio a kill -9 may cost, as documented in mod.rs and README.md.
fn max_loss_secs(format: RecordingFormat, flush_secs: f64) -> f64 {
    match format {
        RecordingFormat::Wav => flush_secs,
        RecordingFormat::Flac => flush_secs + 0.128,
        RecordingFormat::Opus => flush_secs + 0.040,
        RecordingFormat::Mp3 => flush_secs + 0.25,
    }
}

#[test]
fn a_stereo_tone_round_trips_in_every_format_and_rate() {
    let tmp = tempfile::tempdir().unwrap();
    for format in RecordingFormat::ALL {
        for rate in RATES.into_iter().chain(OTHER_RATES) {
            let what = format!("{} at {rate} Hz", format.as_str());
            let path = tmp.path().join(format!("{rate}-{}", name(format)));
            let frames = u64::from(rate) * 3 + 77;
            let mut f = create(format, path.clone(), 2, rate, 1.0).unwrap();
            write_tone(f.as_mut(), rate, frames, 333);
            assert_eq!(f.frames(), frames, "{what}");
            let done = f.finish().unwrap();
            assert_eq!(done.frames, frames, "{what}");
            assert!(!done.truncated);
            assert!(!part_path(&path).exists(), "{what}: .part left");
            assert_eq!(
                done.size_bytes,
                fs::metadata(&path).unwrap().len(),
                "{what}"
            );
            assert_eq!(ffprobe(&path).unwrap(), expected(format, rate), "{what}");
            let (pcm, errors) = decode(&path);
            assert_eq!(errors, "", "{what}");
            let probe_rate = expected(format, rate).sample_rate;
            assert_length(format, pcm.len() as u64 / 2, frames, rate, &what);
            check_tones(&pcm, probe_rate, &what);
            let again = inspect_final(format, &path, rate).unwrap();
            assert_eq!(again, done, "{what}: inspect_final");
            if format == RecordingFormat::Opus {
                // OpusHead keeps the input rate.
                let bytes = fs::read(&path).unwrap();
                let head = &bytes[28..47];
                assert_eq!(&head[..8], b"OpusHead");
                assert_eq!(u32::from_le_bytes(head[12..16].try_into().unwrap()), rate);
            }
        }
    }
}

#[test]
fn a_file_just_created_is_not_empty_and_parses() {
    let tmp = tempfile::tempdir().unwrap();
    for format in RecordingFormat::ALL {
        let path = tmp.path().join(name(format));
        let f = create(format, path.clone(), 2, 16000, 1.0).unwrap();
        let part = part_path(&path);
        let len = fs::metadata(&part).unwrap().len();
        assert!(len > 0, "{}: empty", format.as_str());
        let probe = ffprobe(&part).unwrap_or_else(|e| panic!("{}: {e}", format.as_str()));
        assert_eq!(probe, expected(format, 16000), "{}", format.as_str());
        // Killed before any audio: recovers to an empty recording that still parses.
        std::mem::forget(f);
        let done = recover(format, &part, &path, 2, 16000).unwrap();
        assert_eq!(done.frames, 0, "{}", format.as_str());
        assert_eq!(ffprobe(&path).unwrap(), expected(format, 16000));
    }
}

/// `.part` bytes as a kill -9 leaves them: the writer is leaked, never finished or dropped.
fn killed_after(format: RecordingFormat, dir: &Path, rate: u32, frames: u64) -> PathBuf {
    let path = dir.join(name(format));
    let mut f = create(format, path.clone(), 2, rate, 1.0).unwrap();
    // 20 ms batches, as the engine sends them, with an odd split now and then.
    let all = tone(rate, 0, frames);
    let batch = rate as usize / 50 * 2;
    for (i, c) in all.chunks(batch).enumerate() {
        if i % 7 == 3 {
            f.write(&c[..3]).unwrap();
            f.write(&c[3..]).unwrap();
        } else {
            f.write(c).unwrap();
        }
    }
    std::mem::forget(f);
    part_path(&path)
}

#[test]
fn a_killed_recording_plays_as_is_and_recovers_within_the_documented_loss() {
    let tmp = tempfile::tempdir().unwrap();
    for format in RecordingFormat::ALL {
        for rate in [8000, 44100, 48000] {
            let what = format!("{} at {rate} Hz", format.as_str());
            let dir = tmp.path().join(format!("{}-{rate}", format.as_str()));
            fs::create_dir(&dir).unwrap();
            let written = u64::from(rate) * 5 + u64::from(rate) / 3;
            let part = killed_after(format, &dir, rate, written);
            let probe_rate = expected(format, rate).sample_rate;
            let loss = (max_loss_secs(format, 1.0) * f64::from(rate)) as u64;
            let scaled = |frames: u64| frames * u64::from(probe_rate) / u64::from(rate);

            // Plays as it is, before any repair.
            let as_is = dir.join(format!("as-is.{}", format.extension()));
            fs::copy(&part, &as_is).unwrap();
            let (pcm, _) = decode(&as_is);
            assert!(
                pcm.len() as u64 / 2 >= scaled(written - loss),
                "{what}: the .part plays {} of {} frames",
                pcm.len() / 2,
                scaled(written)
            );
            check_tones(&pcm, probe_rate, &format!("{what}, as is"));

            // Torn copies: cut mid-frame or mid-page, 1 to 1000 bytes from the end.
            let bytes = fs::read(&part).unwrap();
            for cut in [1usize, 5, 77, 1000] {
                let torn_final = dir.join(format!("torn-{cut}.{}", format.extension()));
                let torn = part_path(&torn_final);
                fs::write(&torn, &bytes[..bytes.len() - cut]).unwrap();
                let done = recover(format, &torn, &torn_final, 2, rate).unwrap();
                let (pcm, errors) = decode(&torn_final);
                let what = format!("{what}, cut {cut}");
                assert_eq!(errors, "", "{what}");
                // One more frame or page may go with the cut.
                let page = u64::from(rate) + u64::from(rate) / 5;
                assert!(
                    done.frames + loss + page >= written,
                    "{what}: {}",
                    done.frames
                );
                assert_length(format, pcm.len() as u64 / 2, done.frames, rate, &what);
            }

            let final_path = dir.join(name(format));
            let done = recover(format, &part, &final_path, 2, rate).unwrap();
            assert!(!part.exists());
            assert!(
                done.frames + loss >= written && done.frames <= written,
                "{what}: recovered {} of {written} frames, {loss} may be lost",
                done.frames
            );
            assert_eq!(done.size_bytes, fs::metadata(&final_path).unwrap().len());
            assert_eq!(
                ffprobe(&final_path).unwrap(),
                expected(format, rate),
                "{what}"
            );
            let (pcm, errors) = decode(&final_path);
            assert_eq!(errors, "", "{what}");
            assert_length(format, pcm.len() as u64 / 2, done.frames, rate, &what);
            check_tones(&pcm, probe_rate, &what);
            assert_eq!(
                inspect_final(format, &final_path, rate).unwrap(),
                done,
                "{what}"
            );
        }
    }
}

#[test]
fn rates_an_encoder_cannot_take_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.ogg");
    let e = create(RecordingFormat::Opus, path.clone(), 2, 500_000, 1.0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("x.ogg.part") && e.contains("500000 Hz"), "{e}");
    assert!(!part_path(&path).exists());
    let e = create(
        RecordingFormat::Mp3,
        tmp.path().join("x.mp3"),
        2,
        13_000,
        1.0,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("x.mp3.part") && e.contains("13000 Hz"), "{e}");
}

#[test]
fn a_part_that_is_not_ours_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    for format in [
        RecordingFormat::Flac,
        RecordingFormat::Opus,
        RecordingFormat::Mp3,
    ] {
        let final_path = tmp.path().join(name(format));
        let part = part_path(&final_path);
        fs::write(&part, b"not audio at all, just some bytes of text").unwrap();
        let e = recover(format, &part, &final_path, 2, 8000).err().unwrap();
        assert!(e.to_string().contains(".part"), "{e}");
        assert!(part.exists() && !final_path.exists());
    }
}

/// Thread CPU time, in seconds, from the scheduler's accounting.
fn cpu_secs() -> f64 {
    let s = fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e9
}

/// `cargo test -p voxtap-store --release -- --ignored --nocapture encoding_speed`; with
/// `VOXTAP_KEEP=DIR` the files are left in DIR for other tools to look at.
#[test]
#[ignore = "a measurement, not a check"]
fn encoding_speed() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("VOXTAP_KEEP").map(PathBuf::from);
    for format in RecordingFormat::ALL {
        for rate in RATES.into_iter().chain(OTHER_RATES) {
            let secs = 60;
            let pcm = tone(rate, 0, u64::from(rate) * secs);
            let dir = keep.as_deref().unwrap_or(tmp.path());
            let path = dir.join(format!("{rate}-{}", name(format)));
            let _ = fs::remove_file(&path);
            let start = cpu_secs();
            let mut f = create(format, path, 2, rate, 1.0).unwrap();
            for c in pcm.chunks(rate as usize / 50 * 2) {
                f.write(c).unwrap();
            }
            f.finish().unwrap();
            let cpu = cpu_secs() - start;
            println!(
                "{:>4} {rate:>5} Hz: {:>8.0} s of stereo audio per CPU second",
                format.as_str(),
                secs as f64 / cpu
            );
        }
    }
}

/// `cargo test -p voxtap-store -- --ignored --nocapture kill_loss`: the most audio a kill cost
/// over kills at 40 points in a second, per format and rate (flush every second).
#[test]
#[ignore = "a measurement, not a check"]
fn kill_loss() {
    let tmp = tempfile::tempdir().unwrap();
    for format in RecordingFormat::ALL {
        for rate in RATES.into_iter().chain(OTHER_RATES) {
            let mut worst = 0.0f64;
            for k in 0..40u64 {
                let dir = tmp.path().join(format!("{}-{rate}-{k}", format.as_str()));
                fs::create_dir(&dir).unwrap();
                let written = u64::from(rate) * 3 + u64::from(rate) * k / 40;
                let part = killed_after(format, &dir, rate, written);
                let done = recover(format, &part, &dir.join(name(format)), 2, rate).unwrap();
                let lost = (written - done.frames) as f64 / f64::from(rate);
                worst = worst.max(lost);
            }
            println!(
                "{:>4} {rate:>5} Hz: at most {worst:.3} s lost (documented {:.3})",
                format.as_str(),
                max_loss_secs(format, 1.0)
            );
        }
    }
}
