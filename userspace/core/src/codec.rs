//! Audio decoders. Each codec is a [`Decoder`]; [`decoder_for`] picks one by encoding name, so
//! G.722, Opus and others plug in here without touching the media timeline.

/// Decodes one RTP payload into 16-bit linear PCM at [`Decoder::sample_rate`].
pub trait Decoder: Send {
    fn sample_rate(&self) -> u32;
    /// RTP timestamp ticks per output sample (G.722 runs its RTP clock at 8 kHz, RFC 3551 §4.5.2).
    fn rtp_ticks_per_sample(&self) -> f64 {
        1.0
    }
    /// Appends the decoded samples of `payload` to `out`; returns how many were appended.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> usize;
}

/// The codecs this build decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    /// Looks a codec up by its SDP encoding name (case-insensitive, RFC 4566 §6).
    pub fn from_name(name: &str, clock_rate: u32) -> Option<Codec> {
        match (name.to_ascii_uppercase().as_str(), clock_rate) {
            ("PCMU", 8000) => Some(Codec::Pcmu),
            ("PCMA", 8000) => Some(Codec::Pcma),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    pub fn sample_rate(self) -> u32 {
        8000
    }

    pub fn decoder(self) -> Box<dyn Decoder> {
        match self {
            Codec::Pcmu => Box::new(G711::ulaw()),
            Codec::Pcma => Box::new(G711::alaw()),
        }
    }
}

/// A decoder for an SDP encoding name, or `None` when this build cannot decode it.
pub fn decoder_for(name: &str, clock_rate: u32) -> Option<Box<dyn Decoder>> {
    Codec::from_name(name, clock_rate).map(Codec::decoder)
}

/// ITU-T G.711, table-driven: 256 entries decode every byte.
pub struct G711 {
    table: &'static [i16; 256],
}

impl G711 {
    pub fn ulaw() -> Self {
        Self { table: &ULAW }
    }

    pub fn alaw() -> Self {
        Self { table: &ALAW }
    }
}

impl Decoder for G711 {
    fn sample_rate(&self) -> u32 {
        8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> usize {
        out.extend(payload.iter().map(|&b| self.table[b as usize]));
        payload.len()
    }
}

/// μ-law expansion, G.711 §3.2: bits are inverted, then sign, 3-bit segment, 4-bit mantissa.
const fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// A-law expansion, G.711 §3.3: even bits are inverted (XOR 0x55).
const fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if a & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

const fn table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_to_linear(i as u8)
        } else {
            ulaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW: [i16; 256] = table(false);
static ALAW: [i16; 256] = table(true);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        // G.711 μ-law: 0xFF and 0x7F are the two zeros, 0x00 is the most negative value.
        assert_eq!(ULAW[0xff], 0);
        assert_eq!(ULAW[0x7f], 0);
        assert_eq!(ULAW[0x00], -32124);
        assert_eq!(ULAW[0x80], 32124);
        assert_eq!(ULAW[0xfe], 8);
        assert_eq!(ULAW[0x7e], -8);
    }

    #[test]
    fn alaw_known_values() {
        // G.711 A-law: 0xD5 and 0x55 decode to ±8, 0x2A to the most negative value.
        assert_eq!(ALAW[0xd5], 8);
        assert_eq!(ALAW[0x55], -8);
        assert_eq!(ALAW[0x2a], -32256);
        assert_eq!(ALAW[0xaa], 32256);
    }

    #[test]
    fn tables_are_monotonic_within_each_sign() {
        // μ-law codes 0x80..=0xFF go from +32124 down to 0.
        for i in 0x80..0xff {
            assert!(ULAW[i] >= ULAW[i + 1], "μ-law {i:#x}");
        }
        // A-law: codes with the sign bit set are positive; magnitude grows with segment.
        let mut positive: Vec<i16> = (0x80..=0xffu8).map(|b| ALAW[b as usize]).collect();
        positive.sort();
        positive.dedup();
        assert_eq!(positive.len(), 128);
    }

    #[test]
    fn registry_finds_g711_by_name_any_case() {
        let mut d = decoder_for("pcmu", 8000).expect("PCMU decoder");
        let mut out = Vec::new();
        assert_eq!(d.decode(&[0xff, 0x00], &mut out), 2);
        assert_eq!(out, vec![0, -32124]);
        assert!(decoder_for("PCMA", 8000).is_some());
        assert!(decoder_for("opus", 48000).is_none());
        assert_eq!(Codec::from_name("PCMA", 8000), Some(Codec::Pcma));
    }
}
