//! Audio decoders for the RTP payloads voxtap records, one file per codec family.
//!
//! [`decoder_for`] picks a [`Decoder`] from what the SDP said of a payload type
//! ([`CodecSpec`]); a codec this build cannot decode is an [`Undecodable`] with the reason, so
//! the engine can report the stream instead of writing noise. Decoders are fed one RTP payload
//! at a time, in sequence order, and produce mono 16-bit PCM at [`Decoder::sample_rate`]
//! (a stereo codec such as Opus is mixed down: each recording channel is one party).

mod g711;

pub use g711::G711;

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
    /// Returns 0 when the codec or the payload has none; the caller then conceals.
    fn recover(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) -> usize {
        let _ = (next_payload, samples, out);
        0
    }
}

/// A decoder for `spec`. `rate_hint` is the recording's sample rate: a codec that can decode
/// straight to it (Opus) does, saving a resampling step; others ignore it.
pub fn decoder_for(spec: &CodecSpec, rate_hint: u32) -> Result<Box<dyn Decoder>, Undecodable> {
    let _ = rate_hint;
    match (spec.name.to_ascii_uppercase().as_str(), spec.clock_rate) {
        ("PCMU", 8000) => Ok(Box::new(G711::ulaw())),
        ("PCMA", 8000) => Ok(Box::new(G711::alaw())),
        _ => Err(Undecodable::UnknownCodec(format!(
            "{}/{}",
            spec.name, spec.clock_rate
        ))),
    }
}

/// The audio bandwidth a codec carries: narrow-band codecs are recorded at 8 kHz, wide-band
/// ones at 16 kHz (unless the policy sets a rate).
pub fn is_wideband(spec: &CodecSpec) -> bool {
    let name = spec.name.to_ascii_uppercase();
    match name.as_str() {
        "G722" | "AMR-WB" | "OPUS" => true,
        _ => spec.clock_rate >= 16_000 && name != "TELEPHONE-EVENT",
    }
}
