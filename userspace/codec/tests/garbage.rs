//! Any bytes, any lengths, in any order, interleaved with losses: no decoder panics or reads out
//! of bounds, `Ok(n)` appends exactly n samples and `Err` appends nothing.

mod common;

use common::*;
use proptest::prelude::*;
use voxtap_codec::{CodecSpec, Decoder, decoder_for};

/// Every decoder setup the registry has.
fn specs() -> Vec<CodecSpec> {
    let mut v: Vec<CodecSpec> = [
        ("PCMU", 8000, ""),
        ("PCMA", 8000, ""),
        ("G722", 8000, ""),
        ("G721", 8000, ""),
        ("G726-16", 8000, ""),
        ("G726-24", 8000, ""),
        ("G726-40", 8000, ""),
        ("AAL2-G726-16", 8000, ""),
        ("AAL2-G726-24", 8000, ""),
        ("AAL2-G726-32", 8000, ""),
        ("AAL2-G726-40", 8000, ""),
        ("L16", 8000, ""),
        ("opus", 48000, ""),
        ("G729", 8000, ""),
        ("GSM", 8000, ""),
        ("speex", 8000, ""),
        ("speex", 16000, ""),
        ("speex", 32000, ""),
        ("AMR", 8000, ""),
        ("AMR", 8000, "octet-align=1"),
        ("AMR", 8000, "octet-align=1; crc=1"),
        ("AMR-WB", 16000, ""),
        ("AMR-WB", 16000, "octet-align=1"),
        ("iLBC", 8000, "mode=20"),
        ("iLBC", 8000, ""),
    ]
    .iter()
    .map(|&(n, r, f)| spec(n, r, f))
    .collect();
    let mut stereo = spec("L16", 44100, "");
    stereo.channels = 2;
    v.push(stereo);
    v
}

/// The decoders this build has (a missing library is reported once per run).
fn decoders(rate_hint: u32) -> Vec<(String, Box<dyn Decoder>)> {
    specs()
        .iter()
        .filter_map(|s| {
            let d = match decoder_for(s, rate_hint) {
                Ok(d) => d,
                Err(voxtap_codec::Undecodable::NotBuilt { .. }) => return None,
                Err(e) => panic!("{}: {e}", s.name),
            };
            Some((format!("{}/{} {}", s.name, s.clock_rate, s.fmtp), d))
        })
        .collect()
}

#[test]
fn every_codec_is_fuzzed() {
    let built = decoders(8000).len();
    if built < specs().len() {
        missing(
            "some decoders",
            &format!("only {built} of {} built", specs().len()),
        );
    }
}

/// One step of a stream: a payload, a loss to conceal, or a loss to recover from the next one.
#[derive(Clone, Debug)]
enum Step {
    Payload(Vec<u8>),
    Conceal(usize),
    Recover(Vec<u8>, usize),
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..8),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(any::<u8>(), 0..1600),
        // Lengths a codec expects, with random content.
        prop::sample::select(vec![2usize, 10, 20, 33, 38, 50, 66, 76, 100, 160, 320])
            .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => bytes().prop_map(Step::Payload),
        1 => (0usize..20_000).prop_map(Step::Conceal),
        1 => (bytes(), 0usize..20_000).prop_map(|(b, n)| Step::Recover(b, n)),
    ]
}

fn run(steps: &[Step], rate_hint: u32) {
    for (name, mut d) in decoders(rate_hint) {
        let mut out = vec![1i16; 5];
        for s in steps {
            let before = out.len();
            match s {
                Step::Payload(p) => match d.decode(p, &mut out) {
                    Ok(n) => assert_eq!(out.len(), before + n, "{name}: decode count"),
                    Err(_) => assert_eq!(out.len(), before, "{name}: an error appended samples"),
                },
                Step::Conceal(n) => {
                    let got = d.conceal(*n, &mut out);
                    assert!(got <= *n, "{name}: conceal made more than asked");
                    assert_eq!(out.len(), before + got, "{name}: conceal count");
                }
                Step::Recover(p, n) => {
                    let got = d.recover(p, *n, &mut out);
                    assert!(got <= *n, "{name}: recover made more than asked");
                    assert_eq!(out.len(), before + got, "{name}: recover count");
                }
            }
            out.truncate(5);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics(steps in prop::collection::vec(step(), 1..24)) {
        run(&steps, 8000);
    }

    #[test]
    fn garbage_never_panics_opus_at_other_rates(steps in prop::collection::vec(step(), 1..12), hint in prop::sample::select(vec![12_000u32, 16_000, 44_100, 48_000])) {
        run(&steps, hint);
    }
}

/// Garbage in the middle of a real stream, then real payloads again: the decoder comes back
/// (Speex takes about a second).
#[test]
fn garbage_mid_stream_then_real_audio() {
    let mut rng = Rng(0x5eed);
    for s in specs() {
        let Ok(mut enc) = voxtap_codec::encode::encoder_for(&s, 20) else {
            continue;
        };
        let Some(mut d) = decoder(&s, enc.sample_rate()) else {
            continue;
        };
        let n = enc.frame_samples();
        let input = speechlike(1000.0, enc.sample_rate(), n * 100);
        let mut out = Vec::new();
        for (i, chunk) in input.chunks_exact(n).enumerate() {
            let p = enc.encode(chunk).expect("encodes");
            if (10..20).contains(&i) {
                let mut junk = p.clone();
                for b in junk.iter_mut() {
                    *b = rng.next() as u8;
                }
                let _ = d.decode(&junk, &mut out);
            } else {
                d.decode(&p, &mut out).unwrap_or_else(|e| {
                    panic!(
                        "{} {} packet {i}: {e} {:02x?}",
                        s.name,
                        s.fmtp,
                        &p[..p.len().min(8)]
                    )
                });
            }
        }
        let rate = d.sample_rate();
        let tail = &out[out.len() - rate as usize / 4..];
        assert!(
            (dominant(tail, rate) - 1000.0).abs() <= 30.0,
            "{}/{}: did not recover from garbage: {} Hz, rms {:.0}",
            s.name,
            s.clock_rate,
            dominant(tail, rate),
            rms(tail)
        );
    }
}
