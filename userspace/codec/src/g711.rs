//! ITU-T G.711 µ-law and A-law (PCMU, PCMA: RFC 3551 §4.5.14).

use crate::{DecodeError, Decoder};

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

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        out.extend(payload.iter().map(|&b| self.table[b as usize]));
        Ok(payload.len())
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
        let mut d = crate::decoder_for(&crate::CodecSpec::new("pcmu", 8000), 8000).expect("PCMU");
        let mut out = Vec::new();
        assert_eq!(d.decode(&[0xff, 0x00], &mut out), Ok(2));
        assert_eq!(out, vec![0, -32124]);
        assert!(crate::decoder_for(&crate::CodecSpec::new("PCMA", 8000), 8000).is_ok());
        assert!(crate::decoder_for(&crate::CodecSpec::new("X-NONE", 8000), 8000).is_err());
    }
}
