//! The codecs a generated call can carry: how SDP names them (rtpmap, fmtp, RFC 4566 §6), how
//! RTP clocks them, the rate a recorder should record them at, and the encoder that turns a
//! call's tone into payloads.
//!
//! G.711 is encoded here ([`crate::g711`]), byte for byte as ever; every other codec by the
//! real encoder of `voxtap-codec` (feature `encode`: libspandsp, libgsm, bcg729, libopus,
//! libspeex, opencore-amrnb, vo-amrwbenc; L16 by our own code). A build without one of those
//! libraries cannot generate that codec: [`Codec::encoder_available`] says why.
//!
//! Every codec is packetised at 20 ms (`a=ptime:20`):
//!
//! | id | rtpmap | PT | fmtp | payload | RTP ticks | PCM in |
//! |---|---|---|---|---|---|---|
//! | `pcmu`, `pcma` | `PCMU/8000`, `PCMA/8000` | 0, 8 | | 160 B | 160 | 8 kHz |
//! | `g722` | `G722/8000` | 9 | | 160 B | 160 (RFC 3551 §4.5.2) | 16 kHz |
//! | `g726-16..40` | `G726-16/8000`... | 96 | | 40-100 B, little-endian (RFC 3551 §4.5.4) | 160 | 8 kHz |
//! | `aal2-g726-16..40` | `AAL2-G726-32/8000`... | 96 | | big-endian (ITU-T I.366.2) | 160 | 8 kHz |
//! | `g729` | `G729/8000` | 18 | `annexb=no` | 2 frames, 20 B | 160 | 8 kHz |
//! | `gsm` | `GSM/8000` | 3 | | 1 frame, 33 B | 160 | 8 kHz |
//! | `speex-8000/16000/32000` | `speex/<rate>` | 96 | | 1 frame (quality 8) | 160/320/640 | 8/16/32 kHz |
//! | `opus`, `opus-stereo` | `opus/48000/2` (RFC 7587 §7) | 96 | `useinbandfec=1` (+`stereo=1; sprop-stereo=1`) | 1 frame | 960 | 48 kHz |
//! | `amr`, `amr-be` | `AMR/8000` | 96 | `octet-align=1; mode-set=7` / `mode-set=7` | 1 frame, 12.2 kbit/s | 160 | 8 kHz |
//! | `amr-wb`, `amr-wb-be` | `AMR-WB/16000` | 96 | `octet-align=1; mode-set=8` / `mode-set=8` | 1 frame, 23.85 kbit/s | 320 | 16 kHz |
//! | `l16` | `L16/16000` | 96 | | 640 B big-endian | 320 | 16 kHz |
//!
//! telephone-event runs on the codec's RTP clock (RFC 4733 §2.1).

use std::fmt;

use voxtap_codec::CodecSpec;
use voxtap_codec::encode::{Encoder, encoder_for};

use crate::g711::{linear_to_alaw, linear_to_ulaw};

/// Packet time of every codec, in ms.
pub const PTIME_MS: u32 = 20;

/// The dynamic payload type of codecs without a static one (RFC 3551 §6).
pub const PT_DYNAMIC: u8 = 96;

/// One codec setup a call can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Codec {
    Pcmu,
    Pcma,
    G722,
    /// G.726 at `kbps` (16, 24, 32 or 40); `aal2`: the big-endian packing of `AAL2-G726-*`.
    G726 {
        kbps: u8,
        aal2: bool,
    },
    G729,
    Gsm,
    /// Narrow-band (8000), wide-band (16000) or ultra-wide-band (32000) Speex.
    Speex {
        rate: u32,
    },
    /// Opus; `stereo`: the tone on both channels.
    Opus {
        stereo: bool,
    },
    /// AMR 12.2 kbit/s in either RFC 4867 layout.
    Amr {
        octet_align: bool,
    },
    /// AMR-WB 23.85 kbit/s in either RFC 4867 layout.
    AmrWb {
        octet_align: bool,
    },
    /// Linear 16-bit PCM, mono.
    L16 {
        rate: u32,
    },
}

impl Codec {
    /// Every codec `--codec` takes.
    pub const ALL: [Codec; 23] = [
        Codec::Pcmu,
        Codec::Pcma,
        Codec::G722,
        Codec::G726 {
            kbps: 16,
            aal2: false,
        },
        Codec::G726 {
            kbps: 24,
            aal2: false,
        },
        Codec::G726 {
            kbps: 32,
            aal2: false,
        },
        Codec::G726 {
            kbps: 40,
            aal2: false,
        },
        Codec::G726 {
            kbps: 16,
            aal2: true,
        },
        Codec::G726 {
            kbps: 24,
            aal2: true,
        },
        Codec::G726 {
            kbps: 32,
            aal2: true,
        },
        Codec::G726 {
            kbps: 40,
            aal2: true,
        },
        Codec::G729,
        Codec::Gsm,
        Codec::Speex { rate: 8000 },
        Codec::Speex { rate: 16000 },
        Codec::Speex { rate: 32000 },
        Codec::Opus { stereo: false },
        Codec::Opus { stereo: true },
        Codec::Amr { octet_align: true },
        Codec::Amr { octet_align: false },
        Codec::AmrWb { octet_align: true },
        Codec::AmrWb { octet_align: false },
        Codec::L16 { rate: 16000 },
    ];

    /// The calls of one `Codecs` round, in order (those this build can encode).
    pub const CATALOG: [Codec; 20] = [
        Codec::Pcmu,
        Codec::Pcma,
        Codec::G722,
        Codec::G726 {
            kbps: 16,
            aal2: false,
        },
        Codec::G726 {
            kbps: 24,
            aal2: false,
        },
        Codec::G726 {
            kbps: 32,
            aal2: false,
        },
        Codec::G726 {
            kbps: 40,
            aal2: false,
        },
        Codec::G726 {
            kbps: 32,
            aal2: true,
        },
        Codec::G729,
        Codec::Gsm,
        Codec::Speex { rate: 8000 },
        Codec::Speex { rate: 16000 },
        Codec::Speex { rate: 32000 },
        Codec::Opus { stereo: false },
        Codec::Opus { stereo: true },
        Codec::Amr { octet_align: true },
        Codec::Amr { octet_align: false },
        Codec::AmrWb { octet_align: true },
        Codec::AmrWb { octet_align: false },
        Codec::L16 { rate: 16000 },
    ];

    /// The name `--codec` and the JSON use.
    pub fn id(self) -> &'static str {
        match self {
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
            Codec::G722 => "g722",
            Codec::G726 { kbps, aal2 } => match (kbps, aal2) {
                (16, false) => "g726-16",
                (24, false) => "g726-24",
                (32, false) => "g726-32",
                (40, false) => "g726-40",
                (16, true) => "aal2-g726-16",
                (24, true) => "aal2-g726-24",
                (40, true) => "aal2-g726-40",
                (_, true) => "aal2-g726-32",
                (_, false) => "g726-32",
            },
            Codec::G729 => "g729",
            Codec::Gsm => "gsm",
            Codec::Speex { rate: 16000 } => "speex-16000",
            Codec::Speex { rate: 32000 } => "speex-32000",
            Codec::Speex { .. } => "speex-8000",
            Codec::Opus { stereo: false } => "opus",
            Codec::Opus { stereo: true } => "opus-stereo",
            Codec::Amr { octet_align: true } => "amr",
            Codec::Amr { octet_align: false } => "amr-be",
            Codec::AmrWb { octet_align: true } => "amr-wb",
            Codec::AmrWb { octet_align: false } => "amr-wb-be",
            Codec::L16 { .. } => "l16",
        }
    }

    /// The codec of an id (case-insensitive); `speex` is `speex-8000`.
    pub fn from_id(id: &str) -> Option<Codec> {
        if id.eq_ignore_ascii_case("speex") {
            return Some(Codec::Speex { rate: 8000 });
        }
        Codec::ALL
            .into_iter()
            .find(|c| c.id().eq_ignore_ascii_case(id))
    }

    pub fn is_g711(self) -> bool {
        matches!(self, Codec::Pcmu | Codec::Pcma)
    }

    /// The static payload type (RFC 3551 §6), else [`PT_DYNAMIC`].
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Gsm => 3,
            Codec::Pcma => 8,
            Codec::G722 => 9,
            Codec::G729 => 18,
            _ => PT_DYNAMIC,
        }
    }

    /// The encoding name of the rtpmap.
    pub fn name(self) -> String {
        match self {
            Codec::Pcmu => "PCMU".into(),
            Codec::Pcma => "PCMA".into(),
            Codec::G722 => "G722".into(),
            Codec::G726 { kbps, aal2: false } => format!("G726-{kbps}"),
            Codec::G726 { kbps, aal2: true } => format!("AAL2-G726-{kbps}"),
            Codec::G729 => "G729".into(),
            Codec::Gsm => "GSM".into(),
            Codec::Speex { .. } => "speex".into(),
            Codec::Opus { .. } => "opus".into(),
            Codec::Amr { .. } => "AMR".into(),
            Codec::AmrWb { .. } => "AMR-WB".into(),
            Codec::L16 { .. } => "L16".into(),
        }
    }

    /// RTP timestamp ticks per second.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Speex { rate } | Codec::L16 { rate } => rate,
            Codec::Opus { .. } => 48_000,
            Codec::AmrWb { .. } => 16_000,
            _ => 8000,
        }
    }

    /// Channels of the rtpmap: Opus always says 2 (RFC 7587 §7), the rest are mono.
    pub fn rtpmap_channels(self) -> u8 {
        match self {
            Codec::Opus { .. } => 2,
            _ => 1,
        }
    }

    /// `<encoding name>/<clock rate>[/<channels>]` (RFC 4566 §6).
    pub fn rtpmap(self) -> String {
        match self.rtpmap_channels() {
            1 => format!("{}/{}", self.name(), self.clock_rate()),
            n => format!("{}/{}/{n}", self.name(), self.clock_rate()),
        }
    }

    /// The `a=fmtp` parameters, empty when the codec has none.
    pub fn fmtp(self) -> &'static str {
        match self {
            // RFC 4856 §2.1.9: no Annex B comfort noise (the encoder runs without VAD).
            Codec::G729 => "annexb=no",
            Codec::Opus { stereo: false } => "useinbandfec=1",
            Codec::Opus { stereo: true } => "stereo=1; sprop-stereo=1; useinbandfec=1",
            // RFC 4867 §8.1: 12.2 (mode 7) and 23.85 kbit/s (mode 8) only; no octet-align is
            // the bandwidth-efficient layout.
            Codec::Amr { octet_align: true } => "octet-align=1; mode-set=7",
            Codec::Amr { octet_align: false } => "mode-set=7",
            Codec::AmrWb { octet_align: true } => "octet-align=1; mode-set=8",
            Codec::AmrWb { octet_align: false } => "mode-set=8",
            _ => "",
        }
    }

    /// What the SDP says of the codec, as `voxtap-codec` takes it.
    pub fn spec(self) -> CodecSpec {
        let mut s = CodecSpec::new(&self.name(), self.clock_rate());
        s.channels = self.rtpmap_channels();
        s.fmtp = self.fmtp().to_string();
        s
    }

    /// Sample rate of the PCM the encoder takes (the tone is made at this rate).
    pub fn pcm_rate(self) -> u32 {
        match self {
            Codec::G722 | Codec::AmrWb { .. } => 16_000,
            Codec::Opus { .. } => 48_000,
            Codec::Speex { rate } | Codec::L16 { rate } => rate,
            _ => 8000,
        }
    }

    /// PCM samples in one packet.
    pub fn samples_per_packet(self) -> u32 {
        self.pcm_rate() / 1000 * PTIME_MS
    }

    /// RTP timestamp ticks of one packet.
    pub fn ticks_per_packet(self) -> u32 {
        self.clock_rate() / 1000 * PTIME_MS
    }

    /// The rate a recorder records the codec at: 16 kHz for wide-band audio, else 8 kHz.
    pub fn record_rate(self) -> u32 {
        match self {
            Codec::G722 | Codec::Opus { .. } | Codec::AmrWb { .. } => 16_000,
            Codec::Speex { rate } | Codec::L16 { rate } if rate >= 16_000 => 16_000,
            _ => 8000,
        }
    }

    /// Ok when this build can encode the codec, else why not.
    pub fn encoder_available(self) -> Result<(), String> {
        PayloadEncoder::new(self).map(|_| ())
    }

    /// The codecs of [`Codec::CATALOG`] this build can encode.
    pub fn catalog_available() -> Vec<Codec> {
        Codec::CATALOG
            .into_iter()
            .filter(|c| c.encoder_available().is_ok())
            .collect()
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl From<Codec> for String {
    fn from(c: Codec) -> String {
        c.id().to_string()
    }
}

impl TryFrom<String> for Codec {
    type Error = String;

    fn try_from(s: String) -> Result<Codec, String> {
        Codec::from_id(&s).ok_or_else(|| format!("unknown codec {s:?}"))
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    fn from_str(s: &str) -> Result<Codec, String> {
        Codec::try_from(s.to_string())
    }
}

impl clap::ValueEnum for Codec {
    fn value_variants<'a>() -> &'a [Self] {
        &Codec::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let v = clap::builder::PossibleValue::new(self.id());
        Some(match self {
            Codec::Speex { rate: 8000 } => v.alias("speex"),
            _ => v,
        })
    }
}

/// Turns one direction's PCM into payloads, one packet at a time and in order: stateful
/// encoders see the consecutive frames of their stream.
pub enum PayloadEncoder {
    /// Our G.711 tables, as the generator always had them.
    G711(Codec),
    Real(Box<dyn Encoder>),
}

impl PayloadEncoder {
    pub fn new(codec: Codec) -> Result<PayloadEncoder, String> {
        if codec.is_g711() {
            return Ok(PayloadEncoder::G711(codec));
        }
        let enc = encoder_for(&codec.spec(), PTIME_MS).map_err(|e| e.to_string())?;
        // The encoder must agree with the table above, or the RTP clock would lie.
        if enc.sample_rate() != codec.pcm_rate()
            || enc.clock_rate() != codec.clock_rate()
            || enc.frame_samples() != codec.samples_per_packet() as usize
        {
            return Err(format!(
                "{codec}: the encoder takes {} samples at {} Hz on a {} Hz clock",
                enc.frame_samples(),
                enc.sample_rate(),
                enc.clock_rate()
            ));
        }
        Ok(PayloadEncoder::Real(enc))
    }

    /// One packet's payload from exactly [`Codec::samples_per_packet`] samples.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, String> {
        match self {
            PayloadEncoder::G711(Codec::Pcma) => {
                Ok(pcm.iter().map(|&s| linear_to_alaw(s)).collect())
            }
            PayloadEncoder::G711(_) => Ok(pcm.iter().map(|&s| linear_to_ulaw(s)).collect()),
            PayloadEncoder::Real(e) => e.encode(pcm).map_err(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for c in Codec::ALL {
            assert_eq!(Codec::from_id(c.id()), Some(c), "{c:?}");
            assert_eq!(Codec::from_id(&c.id().to_ascii_uppercase()), Some(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Codec>(&json).unwrap(), c);
            assert_eq!(c.samples_per_packet() * 50, c.pcm_rate());
        }
        let ids: std::collections::HashSet<_> = Codec::ALL.iter().map(|c| c.id()).collect();
        assert_eq!(ids.len(), Codec::ALL.len());
        assert!(Codec::CATALOG.iter().all(|c| Codec::ALL.contains(c)));
        assert_eq!(Codec::from_id("speex"), Some(Codec::Speex { rate: 8000 }));
        assert_eq!(Codec::from_id("ilbc"), None);
    }

    #[test]
    fn sdp_names() {
        assert_eq!(Codec::G722.rtpmap(), "G722/8000");
        assert_eq!(Codec::G722.ticks_per_packet(), 160);
        assert_eq!(Codec::G722.samples_per_packet(), 320);
        assert_eq!(Codec::Opus { stereo: true }.rtpmap(), "opus/48000/2");
        assert_eq!(Codec::Opus { stereo: false }.ticks_per_packet(), 960);
        assert_eq!(Codec::AmrWb { octet_align: true }.rtpmap(), "AMR-WB/16000");
        assert_eq!(
            Codec::G726 {
                kbps: 32,
                aal2: true
            }
            .rtpmap(),
            "AAL2-G726-32/8000"
        );
        assert_eq!(Codec::Speex { rate: 32000 }.record_rate(), 16000);
        assert_eq!(Codec::Gsm.record_rate(), 8000);
        assert_eq!(Codec::L16 { rate: 16000 }.rtpmap(), "L16/16000");
    }
}
