//! Every codec: a tone encoded by an independent encoder (the C libraries, feature `encode`),
//! decoded by our decoder, comes back at the same frequency and about the same level; payloads
//! with several frames decode whole; conceal and recover make the samples they promise.

mod common;

use common::*;
use voxtap_codec::{CodecSpec, Decoder};

/// One codec setup under test.
struct Case {
    name: &'static str,
    rate: u32,
    channels: u8,
    fmtp: &'static str,
    ptime: u32,
    /// How far the decoded level may be from the input's, in dB.
    tolerance_db: f64,
    /// The second test frequency (the first is 1 kHz); above 4 kHz for wide-band codecs.
    high: f64,
    /// The codec has its own loss concealment.
    conceals: bool,
}

const fn case(name: &'static str, rate: u32, fmtp: &'static str, ptime: u32, tol: f64) -> Case {
    Case {
        name,
        rate,
        channels: 1,
        fmtp,
        ptime,
        tolerance_db: tol,
        high: 2400.0,
        conceals: false,
    }
}

impl Case {
    fn spec(&self) -> CodecSpec {
        let mut s = spec(self.name, self.rate, self.fmtp);
        s.channels = self.channels;
        s
    }

    fn wide(mut self) -> Self {
        self.high = 5600.0;
        self
    }

    fn conceals(mut self) -> Self {
        self.conceals = true;
        self
    }
}

/// What `run` made: the decoded audio, the decoder, the payloads and the input's level.
struct Run {
    out: Vec<i16>,
    dec: Box<dyn Decoder>,
    payloads: Vec<Vec<u8>>,
    level_in: f64,
}

/// Encodes 1.2 s of `freq` and decodes it at `rate_hint`. None when a library is missing
/// (already reported).
fn run(c: &Case, freq: f64, rate_hint: u32) -> Option<Run> {
    let spec = c.spec();
    let mut enc = encoder(&spec, c.ptime)?;
    let mut dec = decoder(&spec, rate_hint)?;
    let rate = enc.sample_rate();
    let n = enc.frame_samples();
    assert_eq!(
        n as u64 * 1000,
        rate as u64 * c.ptime as u64,
        "{}: frame size",
        c.name
    );
    assert_eq!(dec.clock_rate(), enc.clock_rate(), "{}: clock rate", c.name);
    let input = tone(freq, rate, rate as usize * 6 / 5 / n * n, 8000.0);
    let per_payload = n as u64 * dec.sample_rate() as u64 / rate as u64;
    let mut out = Vec::new();
    let mut payloads = Vec::new();
    for chunk in input.chunks_exact(n) {
        let p = enc
            .encode(chunk)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let before = out.len();
        let got = dec
            .decode(&p, &mut out)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(got, out.len() - before, "{}: returned count", c.name);
        assert_eq!(
            got as u64, per_payload,
            "{}: samples per {} ms payload",
            c.name, c.ptime
        );
        payloads.push(p);
    }
    Some(Run {
        out,
        dec,
        payloads,
        level_in: rms(&input),
    })
}

fn check_tone(c: &Case, rate_hint: u32) {
    for freq in [1000.0, c.high] {
        let Some(Run {
            out, dec, level_in, ..
        }) = run(c, freq, rate_hint)
        else {
            return;
        };
        let rate = dec.sample_rate();
        // Past the codec's start-up (and its delay).
        let steady = &out[rate as usize / 5..];
        let f = dominant(steady, rate);
        assert!(
            (f - freq).abs() <= 30.0,
            "{} {} Hz at {rate} Hz came back as {f} Hz",
            c.name,
            freq
        );
        let db = 20.0 * (rms(steady) / level_in).log10();
        assert!(
            db.abs() <= c.tolerance_db,
            "{} {} Hz: level {db:+.1} dB (allowed ±{})",
            c.name,
            freq,
            c.tolerance_db
        );
    }
}

/// conceal and recover: the samples promised, appended to `out`.
fn check_loss(c: &Case, expect_fec: bool) {
    let Some(Run {
        mut dec, payloads, ..
    }) = run(c, 1000.0, c.rate)
    else {
        return;
    };
    let samples = dec.sample_rate() as usize * c.ptime as usize / 1000;
    let mut out = vec![7i16; 3];
    let n = dec.conceal(samples, &mut out);
    assert_eq!(
        out.len(),
        3 + n,
        "{}: conceal appends what it returns",
        c.name
    );
    assert_eq!(
        n,
        if c.conceals { samples } else { 0 },
        "{}: conceal",
        c.name
    );
    // libopus stops sending LBRR once a steady tone needs none: take an early packet.
    let Some(next) = payloads.get(5) else {
        return;
    };
    let before = out.len();
    let r = dec.recover(next, samples, &mut out);
    assert_eq!(
        out.len(),
        before + r,
        "{}: recover appends what it returns",
        c.name
    );
    assert_eq!(
        r,
        if expect_fec { samples } else { 0 },
        "{}: recover",
        c.name
    );
    // The stream goes on after a loss.
    let before = out.len();
    let got = dec.decode(next, &mut out).expect("decodes after a loss");
    assert_eq!(got, out.len() - before);
}

macro_rules! codec_tests {
    ($($test:ident: $case:expr, fec: $fec:expr;)*) => {$(
        #[test]
        fn $test() {
            let c: Case = $case;
            check_tone(&c, c.rate);
            check_loss(&c, $fec);
        }
    )*};
}

codec_tests! {
    pcmu: case("PCMU", 8000, "", 20, 0.5), fec: false;
    pcma: case("PCMA", 8000, "", 30, 0.5), fec: false;
    l16_stereo_44k: Case { channels: 2, ..case("L16", 44100, "", 20, 0.1).wide() }, fec: false;
    l16_mono_16k: case("L16", 16000, "", 10, 0.1).wide(), fec: false;
    g722: case("G722", 8000, "", 20, 1.0).wide(), fec: false;
    g722_30ms: case("G722", 8000, "", 30, 1.0).wide(), fec: false;
    g721: case("G721", 8000, "", 20, 1.5), fec: false;
    g726_16: case("G726-16", 8000, "", 20, 4.0), fec: false;
    g726_24: case("G726-24", 8000, "", 20, 2.0), fec: false;
    g726_32: case("G726-32", 8000, "", 20, 1.5), fec: false;
    g726_40: case("G726-40", 8000, "", 20, 1.0), fec: false;
    aal2_g726_16: case("AAL2-G726-16", 8000, "", 20, 4.0), fec: false;
    aal2_g726_24: case("AAL2-G726-24", 8000, "", 20, 2.0), fec: false;
    aal2_g726_32: case("AAL2-G726-32", 8000, "", 20, 1.5), fec: false;
    aal2_g726_40: case("AAL2-G726-40", 8000, "", 20, 1.0), fec: false;
    gsm_two_frames: case("GSM", 8000, "", 40, 3.0).conceals(), fec: false;
    gsm: case("GSM", 8000, "", 20, 3.0).conceals(), fec: false;
    g729_six_frames: case("G729", 8000, "", 60, 4.0).conceals(), fec: false;
    g729a: case("G729a", 8000, "annexb=no", 20, 4.0).conceals(), fec: false;
    opus: case("opus", 48000, "", 20, 3.0).wide().conceals(), fec: false;
    opus_fec: case("opus", 48000, "useinbandfec=1", 20, 3.0).wide().conceals(), fec: true;
    opus_60ms: case("opus", 48000, "", 60, 3.0).wide().conceals(), fec: false;
    opus_stereo: case("opus", 48000, "stereo=1; sprop-stereo=1", 20, 3.0).wide().conceals(), fec: false;
    speex_nb_two_frames: case("speex", 8000, "", 40, 4.0).conceals(), fec: false;
    // Speex codes the band above 4 kHz with a coarse spectral model that keeps where a tone
    // is but not its level: the second tone stays in the low band.
    speex_wb: case("speex", 16000, "", 20, 4.0).conceals(), fec: false;
    speex_uwb_two_frames: case("speex", 32000, "", 40, 4.0).conceals(), fec: false;
    amr_bandwidth_efficient: case("AMR", 8000, "", 20, 4.0).conceals(), fec: false;
    amr_be_three_frames_475: case("AMR", 8000, "mode-set=0", 60, 6.0).conceals(), fec: false;
    amr_octet_aligned_two_frames: case("AMR", 8000, "octet-align=1", 40, 4.0).conceals(), fec: false;
    // 12.65 kbit/s (mode 2) loses a few dB at 5.6 kHz.
    amr_wb_bandwidth_efficient: case("AMR-WB", 16000, "mode-set=\"0,1,2\"", 20, 6.0).wide().conceals(), fec: false;
    amr_wb_octet_aligned_three_frames: case("AMR-WB", 16000, "octet-align=1", 60, 4.0).wide().conceals(), fec: false;
}

/// Opus decodes straight at the recording's rate when libopus can (RFC 7587 §4.1: the RTP clock
/// stays 48000), else at 48 kHz.
#[test]
fn opus_decodes_at_the_rate_hint() {
    let c = case("opus", 48000, "", 20, 3.0);
    for (hint, rate) in [
        (8000, 8000),
        (16_000, 16_000),
        (24_000, 24_000),
        (44_100, 48_000),
    ] {
        let Some(d) = decoder(&c.spec(), hint) else {
            return;
        };
        assert_eq!(
            (d.sample_rate(), d.clock_rate()),
            (rate, 48_000),
            "hint {hint}"
        );
    }
    check_tone(&c, 16_000);
    check_tone(&c, 8000);
}

/// An Opus stream without FEC has nothing to recover; the caller then conceals.
#[test]
fn opus_without_fec_recovers_nothing() {
    let c = case("opus", 48000, "", 20, 3.0);
    let Some(Run {
        dec: mut d,
        payloads,
        ..
    }) = run(&c, 1000.0, 48_000)
    else {
        return;
    };
    let mut out = Vec::new();
    assert_eq!(d.recover(&payloads[10], 960, &mut out), 0);
    assert!(out.is_empty());
}

/// A G.729 payload may end with an Annex B SID frame (RFC 3551 §4.5.6): comfort noise.
#[test]
fn g729_sid_frame_gives_comfort_noise() {
    let Some(mut d) = decoder(&spec("G729", 8000, ""), 8000) else {
        return;
    };
    let mut out = Vec::new();
    assert_eq!(d.decode(&[0u8; 12], &mut out), Ok(160), "speech + SID");
    assert_eq!(d.decode(&[0x12, 0x34], &mut out), Ok(80), "SID alone");
    assert!(d.decode(&[0u8; 13], &mut out).is_err());
}

/// AMR NO_DATA and SID frames (RFC 4867 §4.3.2): the decoder fills their 20 ms.
#[test]
fn amr_no_data_and_sid_frames() {
    let Some(mut d) = decoder(&spec("AMR", 8000, "octet-align=1"), 8000) else {
        return;
    };
    let mut out = Vec::new();
    // CMR 15; ToC SID (F=1), NO_DATA (F=0); 5 SID octets.
    let p = [0xf0, 0x80 | (8 << 3) | 4, (15 << 3) | 4, 1, 2, 3, 4, 0];
    assert_eq!(d.decode(&p, &mut out), Ok(320));
    assert!(
        d.decode(&[0xf0, 12 << 3], &mut out).is_err(),
        "reserved frame type"
    );
}

/// Setup errors that are not a missing library.
#[test]
fn amr_refuses_interleaving_and_stereo() {
    use voxtap_codec::{Undecodable, decoder_for};
    let e = decoder_for(&spec("AMR", 8000, "octet-align=1; interleaving=4"), 8000).err();
    assert!(matches!(e, Some(Undecodable::BadParameters(_))), "{e:?}");
    let mut s = spec("AMR-WB", 16000, "");
    s.channels = 2;
    assert!(matches!(
        decoder_for(&s, 16000).err(),
        Some(Undecodable::BadParameters(_))
    ));
}

/// The registry knows every name of the brief and nothing else.
#[test]
fn registry_names() {
    use voxtap_codec::{Undecodable, available, decoder_for};
    for (name, rate) in [
        ("G722", 8000),
        ("g726-24", 8000),
        ("AAL2-G726-40", 8000),
        ("G721", 8000),
        ("L16", 22050),
        ("OPUS", 48000),
        ("G729", 8000),
        ("GSM", 8000),
        ("speex", 32000),
        ("AMR", 8000),
        ("AMR-WB", 16000),
        ("iLBC", 8000),
    ] {
        match decoder_for(&spec(name, rate, ""), rate) {
            Ok(_) | Err(Undecodable::NotBuilt { .. }) => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
    for (name, rate) in [
        ("G726-48", 8000),
        ("speex", 44100),
        ("G722", 16000),
        ("X-FOO", 8000),
    ] {
        assert!(
            matches!(
                decoder_for(&spec(name, rate, ""), rate),
                Err(Undecodable::UnknownCodec(_))
            ),
            "{name}/{rate}"
        );
    }
    let a = available();
    assert_eq!(a.len(), 12);
    for (codec, built) in &a {
        if !built {
            missing(codec, &"its library was missing at build time");
        }
    }
}

/// iLBC (RFC 3952 §3.1): the mode comes from the fmtp, or from the payload length when a payload
/// fits only the other mode; several frames per payload. (No iLBC encoder is packaged here:
/// pseudo-random frames stand in, and the real capture checks the audio.)
#[test]
fn ilbc_modes_and_frames_per_payload() {
    let Some(mut d) = decoder(&spec("iLBC", 8000, "mode=20"), 8000) else {
        return;
    };
    let mut r = Rng(99);
    let mut frames = |n: usize| -> Vec<u8> { (0..n).map(|_| r.next() as u8).collect() };
    let mut out = Vec::new();
    assert_eq!(d.decode(&frames(38), &mut out), Ok(160));
    assert_eq!(d.decode(&frames(76), &mut out), Ok(320), "two 20 ms frames");
    assert_eq!(
        d.decode(&frames(100), &mut out),
        Ok(480),
        "switches to 30 ms"
    );
    assert_eq!(d.decode(&frames(50), &mut out), Ok(240));
    assert!(d.decode(&frames(37), &mut out).is_err());
    assert_eq!(
        d.conceal(240, &mut out),
        0,
        "no concealment: the caller writes silence"
    );
}
