//! End to end with every codec and with SRTP: generated captures (`voxtap-gen --codec`,
//! `--srtp`, the `codecs` and `srtp` scenarios) replayed by the real `voxtap` binary and
//! checked against the ground truth: the right tone on the right channel of every recording,
//! recorded at the codec's rate (16 kHz for wide-band codecs), `complete`, every stream
//! `decoded` with the SDP's codec and fmtp and nothing lost to decoding or decryption, SRTP
//! streams decrypted with the SDES keys (across a re-key), and a DTLS-SRTP call reported as
//! `no-audio` / `encrypted` rather than recorded as noise.
//!
//! The codecs need the C libraries (see userspace/codec/README.md): without one a test prints
//! a loud SKIPPED line and returns, or fails when VOXTAP_REQUIRE_CODECS=1.

use voxtap_gen::{Codec, GenConfig, Scenario};
use voxtap_tests::{
    Replayed, catalog, check_against_truth, codec_missing, have_codecs, replay_generated,
    streams_of,
};

fn check(r: &Replayed) {
    check_against_truth(&r.out, &r.truth, &r.summary);
}

/// `scenario` with every call in `codec` (and SRTP if asked), replayed; `None` after a SKIPPED
/// line when this build lacks the codec.
fn run_with(scenario: Scenario, codec: Codec, srtp: bool, name: &str) -> Option<Replayed> {
    if !have_codecs(name, &[codec]) {
        return None;
    }
    let mut cfg = GenConfig::new(scenario);
    cfg.codec = Some(codec);
    cfg.srtp = srtp;
    let r = replay_generated(&cfg, name, None);
    assert!(r.truth.calls.iter().all(|c| c.codec_id == codec.id()));
    Some(r)
}

#[test]
fn one_call_per_codec() {
    have_codecs("one_call_per_codec", &Codec::CATALOG);
    let encodable = Codec::catalog_available();
    if encodable.iter().any(|&c| codec_missing(c).is_some()) {
        return; // a codec the generator makes but the engine cannot decode: reported above
    }
    let r = replay_generated(&GenConfig::new(Scenario::Codecs), "codecs", None);
    let ids: Vec<&str> = r.truth.calls.iter().map(|c| c.codec_id.as_str()).collect();
    let want: Vec<&str> = encodable.iter().map(|c| c.id()).collect();
    assert_eq!(ids, want, "one call per codec, in catalog order");
    // The truth's record rate is what the brief of the engine says: wide-band codecs at 16 kHz.
    const WIDE: [&str; 8] = [
        "g722",
        "speex-16000",
        "speex-32000",
        "opus",
        "opus-stereo",
        "amr-wb",
        "amr-wb-be",
        "l16",
    ];
    for c in &r.truth.calls {
        let want = if WIDE.contains(&c.codec_id.as_str()) {
            16000
        } else {
            8000
        };
        assert_eq!(c.record_rate, want, "{}", c.codec_id);
    }
    check(&r);
}

#[test]
fn srtp_sdes_rekey_and_dtls() {
    let r = replay_generated(&GenConfig::new(Scenario::Srtp), "srtp", None);
    let kinds: Vec<(&str, Option<&str>, usize)> = r
        .truth
        .calls
        .iter()
        .map(|c| {
            (
                c.security.as_str(),
                c.srtp_suite.as_deref(),
                c.rekeys_at_secs.len(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("sdes-srtp", Some("AES_CM_128_HMAC_SHA1_80"), 0),
            ("sdes-srtp", Some("AES_256_CM_HMAC_SHA1_80"), 0),
            ("sdes-srtp", Some("AEAD_AES_128_GCM"), 0),
            ("sdes-srtp", Some("AES_CM_128_HMAC_SHA1_80"), 1),
            ("dtls-srtp", None, 0),
        ]
    );
    check(&r);
    // The re-keyed call: one stream per side across the re-key, every packet decrypted.
    let rekeyed = &r.truth.calls[3];
    let streams = streams_of(&r.out, &rekeyed.sip_call_id);
    assert_eq!(streams.len(), 2, "{streams:?}");
    for s in &streams {
        let sent = match s.side.as_str() {
            "caller" => rekeyed.rtp_packets_caller,
            _ => rekeyed.rtp_packets_callee,
        };
        assert_eq!(s.packets, sent as i64, "{s:?}");
        assert_eq!(s.decoded_packets, s.packets, "{s:?}");
    }
    // The DTLS call: its reason says why, and the run counts both of its streams.
    let dtls = &r.truth.calls[4];
    for s in streams_of(&r.out, &dtls.sip_call_id) {
        let why = s.status_reason.unwrap_or_default();
        assert!(why.contains("dtls"), "{why}");
    }
    let encrypted: i64 = catalog(&r.out)
        .query_row("SELECT SUM(encrypted_streams) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(encrypted, 2);
}

#[test]
fn srtp_with_opus_stereo() {
    let Some(r) = run_with(
        Scenario::Srtp,
        Codec::Opus { stereo: true },
        false,
        "srtp-opus",
    ) else {
        return;
    };
    check(&r);
}

#[test]
fn loss_and_reordering_with_opus() {
    let Some(r) = run_with(
        Scenario::LossReorder,
        Codec::Opus { stereo: false },
        false,
        "loss-opus",
    ) else {
        return;
    };
    assert!(
        r.truth
            .calls
            .iter()
            .all(|c| c.lost_caller > 0 && c.lost_callee > 0)
    );
    check(&r);
}

#[test]
fn loss_and_reordering_with_g729() {
    let Some(r) = run_with(Scenario::LossReorder, Codec::G729, false, "loss-g729") else {
        return;
    };
    check(&r);
}

#[test]
fn hold_and_move_with_g722() {
    let Some(r) = run_with(Scenario::HoldMove, Codec::G722, false, "hold-g722") else {
        return;
    };
    assert!(r.truth.calls.iter().all(|c| !c.silent_spans.is_empty()));
    check(&r);
}

#[test]
fn rfc4733_dtmf_on_the_amr_wb_clock() {
    let Some(r) = run_with(
        Scenario::Dtmf,
        Codec::AmrWb { octet_align: false },
        false,
        "dtmf-amrwb",
    ) else {
        return;
    };
    check(&r);
}

/// Early media (183 with SDP) in stateful wide-band codecs: the callee's stream starts ~1 s
/// before the answer and the recording.
#[test]
fn early_media_with_wideband_codecs() {
    for codec in [Codec::G722, Codec::AmrWb { octet_align: true }] {
        let name = format!("early-{codec}");
        let Some(r) = run_with(Scenario::EarlyMedia, codec, false, &name) else {
            continue;
        };
        check(&r);
    }
}

/// Stateful decoders must see a stream from its first packet. Early media: the callee's
/// stream starts ~50 packets before the answer, and the engine decodes it from the first
/// (dropping the audio until the recording starts). Hold and move: the callee's stream (same
/// SSRC, same encoder) goes on to the caller's new port after the hold, and stays the same
/// stream with the same decoder. Started mid-stream instead, on a pure tone libgsm never
/// builds up its long-term predictor (the callee's channel 28 dB down for the rest of the
/// call) and libspeex diverges to near full-scale noise within 1.5 s.
#[test]
fn decoders_started_mid_stream() {
    for (scenario, codec) in [
        (Scenario::EarlyMedia, Codec::Gsm),
        (Scenario::EarlyMedia, Codec::Speex { rate: 16000 }),
        (Scenario::HoldMove, Codec::Gsm),
    ] {
        let name = format!("mid-stream-{codec}");
        let Some(r) = run_with(scenario, codec, false, &name) else {
            continue;
        };
        check(&r);
    }
}

/// Long enough for every stream's sequence number to wrap (66,000 packets): SRTP's rollover
/// counter goes to 1 (RFC 3711 §3.3.1), before the re-key in one call and after it in another.
#[test]
fn srtp_across_a_sequence_number_wrap() {
    let mut cfg = GenConfig::new(Scenario::Srtp);
    cfg.calls = 4; // the SDES calls
    cfg.talk_secs = 1320.0;
    let r = replay_generated(&cfg, "srtp-wrap", None);
    assert!(
        r.truth
            .calls
            .iter()
            .all(|c| c.rtp_packets_caller > 65536 && c.rtp_packets_callee > 65536)
    );
    check(&r);
}

/// Every other scenario's call (TCP, IPv6, VLANs, NAT, fragments, cancel...) in G.722 and SRTP.
#[test]
fn mix_in_g722_over_srtp() {
    let Some(r) = run_with(Scenario::Mix, Codec::G722, true, "mix-g722-srtp") else {
        return;
    };
    assert!(
        r.truth
            .calls
            .iter()
            .all(|c| c.security == "sdes-srtp" && c.record_rate == 16000)
    );
    check(&r);
}

/// Loss and reordering in every codec: each decoder conceals (or the engine fills silence)
/// and the tone survives. Not narrow-band Speex: after a lost packet libspeex takes seconds
/// to fall back in step with its encoder on a pure tone and meanwhile decodes near full-scale
/// noise (decoding the same packets without voxtap does the same: a property of the codec on
/// this signal, not of the recording; its wide-band modes recover).
#[test]
fn loss_and_reordering_with_every_codec() {
    have_codecs("loss_and_reordering_with_every_codec", &Codec::CATALOG);
    for codec in Codec::catalog_available() {
        if codec_missing(codec).is_some() || codec == (Codec::Speex { rate: 8000 }) {
            continue;
        }
        let name = format!("loss-{codec}");
        let Some(r) = run_with(Scenario::LossReorder, codec, false, &name) else {
            continue;
        };
        check(&r);
    }
}
