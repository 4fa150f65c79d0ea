//! Audio decoders for the RTP payloads voxtap records, one file per codec family.
//!
//! [`decoder_for`] picks a [`Decoder`] from what the SDP said of a payload type
//! ([`CodecSpec`]); a codec this build cannot decode is an [`Undecodable`] with the reason, so
//! the engine can report the stream instead of writing noise. Decoders are fed one RTP payload
//! at a time, in sequence order, and produce mono 16-bit PCM at [`Decoder::sample_rate`]
//! (a stereo codec such as Opus is mixed down: each recording channel is one party).
//!
//! | codec | RTP (encoding name/clock) | decoder | why chosen |
//! |---|---|---|---|
//! | G.711 µ-law, A-law | `PCMU/8000`, `PCMA/8000` (RFC 3551 §4.5.14) | ours, pure Rust (`g711.rs`) | 256-entry tables; nothing to gain from a library |
//! | G.722 | `G722/8000`, 16 kHz audio (RFC 3551 §4.5.2) | ours, pure Rust from ITU-T G.722 (`g722.rs`) | small fixed-point algorithm; matches FFmpeg sample for sample; no C dependency |
//! | G.726 16/24/32/40 | `G726-16..40`, `AAL2-G726-16..40`, `G721` (RFC 3551 §4.5.4) | ours, pure Rust from ITU-T G.726 (`g726.rs`) | the same; both packings |
//! | L16 | `L16/<rate>/<ch>` (RFC 3551 §4.5.11) | ours (`l16.rs`) | big-endian PCM, channels mixed down |
//! | Opus | `opus/48000/2` (RFC 7587) | libopus (`libopus-dev`) | the reference implementation (Xiph/IETF), well kept; PLC and in-band FEC |
//! | G.729, G.729A, Annex B | `G729/8000` (RFC 3551 §4.5.6) | bcg729 (`libbcg729-dev`) | maintained (Belledonne, Linphone), Annex A and B, frame erasure |
//! | GSM 06.10 | `GSM/8000` (RFC 3551 §4.5.8) | libgsm (`libgsm1-dev`) | the de facto implementation (TU Berlin), in every VoIP stack |
//! | Speex NB/WB/UWB | `speex/8000,16000,32000` (RFC 5574) | libspeex (`libspeex-dev`) | the reference implementation (Xiph), with PLC |
//! | AMR, AMR-WB | `AMR/8000`, `AMR-WB/16000` (RFC 4867) | opencore-amr (`libopencore-amrnb-dev`, `libopencore-amrwb-dev`) | the 3GPP reference code as kept for Android; the only packaged AMR-WB decoder |
//! | iLBC | `iLBC/8000` (RFC 3952) | FFmpeg's libavcodec via a C shim (`libavcodec-dev`) | Debian 12 has no libilbc; libavcodec is kept and fuzzed |
//!
//! A C library missing at build time leaves its codecs out (`build.rs` warns) and
//! [`decoder_for`] answers [`Undecodable::NotBuilt`]; [`available`] lists what this build can
//! decode. Encoders for test traffic are in [`encode`] (feature `encode`).

pub mod amr;
mod g711;
mod g722;
mod g726;
mod l16;

#[cfg(have_bcg729)]
mod g729;
#[cfg(have_gsm)]
mod gsm;
#[cfg(have_avcodec)]
mod ilbc;
#[cfg(have_opus)]
mod opus;
#[cfg(have_speex)]
mod speex;

#[cfg(feature = "encode")]
pub mod encode;

pub use g711::G711;
pub use g722::G722;
pub use g726::{G726, Packing as G726Packing};
pub use l16::L16;

/// What the SDP says of one payload type (`a=rtpmap` and `a=fmtp`, RFC 4566 §6), or the static
/// table of RFC 3551 §6.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CodecSpec {
    /// Encoding name as the rtpmap gives it (compared case-insensitively).
    pub name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels of the rtpmap (1 when absent).
    pub channels: u8,
    /// The `a=fmtp` parameters of this payload type, as written (empty when none).
    pub fmtp: String,
}

impl CodecSpec {
    pub fn new(name: &str, clock_rate: u32) -> Self {
        CodecSpec {
            name: name.to_string(),
            clock_rate,
            channels: 1,
            fmtp: String::new(),
        }
    }

    /// The value of one fmtp parameter (`octet-align=1; mode-set=0,2`), case-insensitive name.
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    }
}

/// Why a payload cannot be turned into audio. Shown to the user per stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Undecodable {
    /// No decoder for this encoding name and clock rate.
    #[error("no decoder for {0}")]
    UnknownCodec(String),
    /// The decoder exists but this build was made without the library it needs.
    #[error("{codec} needs {library}, which this build lacks")]
    NotBuilt {
        codec: String,
        library: &'static str,
    },
    /// The fmtp asks for something the decoder cannot do.
    #[error("{0}")]
    BadParameters(String),
}

/// One payload could not be decoded (corrupt, or not what the SDP said).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable payload")]
pub struct DecodeError;

/// Decodes one codec's RTP payloads, in sequence order, into mono 16-bit PCM.
pub trait Decoder: Send {
    /// Sample rate of the PCM that `decode` and `conceal` produce.
    fn sample_rate(&self) -> u32;
    /// The RTP clock rate: RTP timestamp ticks per second (G.722 runs its clock at 8 kHz for
    /// 16 kHz audio, RFC 3551 §4.5.2).
    fn clock_rate(&self) -> u32;
    /// Appends the audio of one payload to `out` and returns how many samples it appended. A
    /// payload may hold several frames (all are decoded) or only comfort-noise parameters.
    /// On `Err` nothing is appended, and the decoder stays usable for the next payload.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError>;
    /// Packet loss concealment: appends up to `samples` samples standing in for lost audio,
    /// from the codec's own concealment, and returns how many it appended. Codecs without
    /// concealment return 0 and the caller writes silence.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> usize {
        let _ = (samples, out);
        0
    }
    /// In-band forward error correction (Opus, RFC 7587 §3.3): rebuilds up to `samples` of the
    /// lost audio just before `next_payload` from the redundancy that payload carries.
    /// Returns 0 when the codec or the payload has none; the caller then conceals. It does not
    /// consume `next_payload`: the caller decodes it next, as usual.
    fn recover(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) -> usize {
        let _ = (next_payload, samples, out);
        0
    }
}

/// A decoder for `spec`. `rate_hint` is the recording's sample rate: a codec that can decode
/// straight to it (Opus) does, saving a resampling step; others ignore it.
pub fn decoder_for(spec: &CodecSpec, rate_hint: u32) -> Result<Box<dyn Decoder>, Undecodable> {
    let name = spec.name.to_ascii_uppercase();
    let unknown = || Undecodable::UnknownCodec(format!("{}/{}", spec.name, spec.clock_rate));
    let failed = |library: &str| {
        Undecodable::BadParameters(format!(
            "{} could not start a {} decoder",
            library, spec.name
        ))
    };
    let _ = (rate_hint, &failed); // unused in a build without the C libraries
    match (name.as_str(), spec.clock_rate) {
        ("PCMU", 8000) => Ok(Box::new(G711::ulaw())),
        ("PCMA", 8000) => Ok(Box::new(G711::alaw())),
        ("G722", 8000) => Ok(Box::new(G722::new())),
        ("L16", rate) if rate > 0 => Ok(Box::new(L16::new(rate, spec.channels))),
        (n, 8000) if g726_variant(n).is_some() => {
            let (kbps, packing) = g726_variant(n).ok_or_else(unknown)?;
            Ok(Box::new(G726::new(kbps, packing).ok_or_else(unknown)?))
        }
        ("OPUS", 48000) => {
            #[cfg(have_opus)]
            return match opus::Opus::new(rate_hint) {
                Some(d) => Ok(Box::new(d) as Box<dyn Decoder>),
                None => Err(failed("libopus")),
            };
            #[cfg(not(have_opus))]
            Err(not_built(spec, "libopus"))
        }
        ("G729" | "G729A" | "G729B" | "G729AB", 8000) => {
            #[cfg(have_bcg729)]
            return match g729::G729::new() {
                Some(d) => Ok(Box::new(d) as Box<dyn Decoder>),
                None => Err(failed("bcg729")),
            };
            #[cfg(not(have_bcg729))]
            Err(not_built(spec, "bcg729"))
        }
        ("GSM", 8000) => {
            #[cfg(have_gsm)]
            return match gsm::Gsm::new() {
                Some(d) => Ok(Box::new(d) as Box<dyn Decoder>),
                None => Err(failed("libgsm")),
            };
            #[cfg(not(have_gsm))]
            Err(not_built(spec, "libgsm"))
        }
        ("SPEEX", 8000 | 16000 | 32000) => {
            #[cfg(have_speex)]
            return match speex::Speex::new(spec.clock_rate) {
                Some(d) => Ok(Box::new(d) as Box<dyn Decoder>),
                None => Err(failed("libspeex")),
            };
            #[cfg(not(have_speex))]
            Err(not_built(spec, "libspeex"))
        }
        ("AMR", 8000) | ("AMR-WB", 16000) => {
            let wideband = name == "AMR-WB";
            let layout = amr::Layout::from_spec(spec, wideband)?;
            let library = if wideband {
                "opencore-amrwb"
            } else {
                "opencore-amrnb"
            };
            #[cfg(any(have_amrnb, have_amrwb))]
            if let Some(d) = amr::Amr::new(layout) {
                return Ok(Box::new(d));
            }
            let _ = layout;
            Err(not_built(spec, library))
        }
        ("ILBC", 8000) => {
            #[cfg(have_avcodec)]
            return match ilbc::Ilbc::new(spec) {
                Some(d) => Ok(Box::new(d) as Box<dyn Decoder>),
                None => Err(failed("libavcodec")),
            };
            #[cfg(not(have_avcodec))]
            Err(not_built(spec, "libavcodec"))
        }
        _ => Err(unknown()),
    }
}

#[allow(dead_code)] // unused when every library is there
fn not_built(spec: &CodecSpec, library: &'static str) -> Undecodable {
    Undecodable::NotBuilt {
        codec: spec.name.clone(),
        library,
    }
}

/// The G.726 rate and packing an encoding name stands for (RFC 3551 §4.5.4; `G721` is the
/// old static payload type 2, RFC 1890, now G726-32).
pub(crate) fn g726_variant(upper_name: &str) -> Option<(u32, G726Packing)> {
    if upper_name == "G721" {
        return Some((32, G726Packing::LittleEndian));
    }
    let (packing, rate) = match upper_name.strip_prefix("AAL2-G726-") {
        Some(rate) => (G726Packing::BigEndian, rate),
        None => (G726Packing::LittleEndian, upper_name.strip_prefix("G726-")?),
    };
    match rate {
        "16" => Some((16, packing)),
        "24" => Some((24, packing)),
        "32" => Some((32, packing)),
        "40" => Some((40, packing)),
        _ => None,
    }
}

/// Each codec family and whether this build decodes it (false: its library was missing).
pub fn available() -> Vec<(&'static str, bool)> {
    vec![
        ("PCMU", true),
        ("PCMA", true),
        ("G722", true),
        ("G726", true),
        ("L16", true),
        ("opus", cfg!(have_opus)),
        ("G729", cfg!(have_bcg729)),
        ("GSM", cfg!(have_gsm)),
        ("speex", cfg!(have_speex)),
        ("AMR", cfg!(have_amrnb)),
        ("AMR-WB", cfg!(have_amrwb)),
        ("iLBC", cfg!(have_avcodec)),
    ]
}

/// The audio bandwidth a codec carries: narrow-band codecs are recorded at 8 kHz, wide-band
/// ones at 16 kHz (unless the policy sets a rate).
pub fn is_wideband(spec: &CodecSpec) -> bool {
    let is = |n: &str| spec.name.eq_ignore_ascii_case(n);
    is("G722")
        || is("AMR-WB")
        || is("OPUS")
        || (spec.clock_rate >= 16_000 && !is("telephone-event"))
}
