//! ITU-T G.711 µ-law and A-law (PCMU, PCMA: RFC 3551 §4.5.14).

use crate::{DecodeError, Decoder};

/// ITU-T G.711: 16 bytes at a time with AVX2 where the CPU has it (about one instruction a
/// sample), and from a 256-entry table otherwise and for the last few bytes (about four).
pub struct G711 {
    table: &'static [i16; 256],
    alaw: bool,
}

impl G711 {
    pub fn ulaw() -> Self {
        Self {
            table: &ULAW,
            alaw: false,
        }
    }

    pub fn alaw() -> Self {
        Self {
            table: &ALAW,
            alaw: true,
        }
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
        expand(self.table, self.alaw, payload, out);
        Ok(payload.len())
    }
}

/// Appends the linear samples of `payload` to `out`.
fn expand(table: &[i16; 256], alaw: bool, payload: &[u8], out: &mut Vec<i16>) {
    #[cfg(target_arch = "x86_64")]
    if payload.len() >= simd::LANES && std::arch::is_x86_feature_detected!("avx2") {
        out.reserve(payload.len());
        let whole = payload.len() / simd::LANES * simd::LANES;
        let at = out.len();
        let spare = &mut out.spare_capacity_mut()[..whole];
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { simd::expand(alaw, &payload[..whole], spare) };
        // SAFETY: `simd::expand` wrote all `whole` samples after `at`, within capacity.
        unsafe { out.set_len(at + whole) };
        out.extend(payload[whole..].iter().map(|&b| table[b as usize]));
        return;
    }
    let _ = alaw;
    out.extend(payload.iter().map(|&b| table[b as usize]));
}

/// G.711 expansion in 16 lanes of 16 bits, with the segment's power of two looked up by
/// `vpshufb` (no variable shift needed). The same arithmetic as [`ulaw_to_linear`] and
/// [`alaw_to_linear`]; a test holds it to the tables for every byte at every position.
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    pub const LANES: usize = 16;

    /// # Safety
    /// The CPU must have AVX2. Whole blocks of [`LANES`] bytes are expanded; a shorter tail
    /// is left to the caller.
    #[target_feature(enable = "avx2")]
    pub unsafe fn expand(alaw: bool, input: &[u8], out: &mut [MaybeUninit<i16>]) {
        assert!(out.len() >= input.len(), "room for every sample");
        // 1 << segment (A-law: 1 << (segment - 1), and 1 for segment 0), in each 128-bit half.
        let pow = if alaw {
            _mm256_setr_epi8(
                1, 1, 2, 4, 8, 16, 32, 64, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 4, 8, 16, 32, 64, 0, 0,
                0, 0, 0, 0, 0, 0,
            )
        } else {
            _mm256_setr_epi8(
                1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, -128,
                0, 0, 0, 0, 0, 0, 0, 0,
            )
        };
        // A-law's segment 0 has no implicit leading bit (0x100 after the shift left by 4).
        let lead = _mm256_setr_epi8(
            0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
            0, 0, 0,
        );
        let seven = _mm256_set1_epi16(7);
        let high_zero = _mm256_set1_epi16(0x8000u16 as i16);
        let low_zero = _mm256_set1_epi16(0x0080);
        let fifteen = _mm256_set1_epi16(0x0f);
        let (flip, bias) = if alaw {
            (_mm256_set1_epi16(0x55), _mm256_set1_epi16(8))
        } else {
            (_mm256_set1_epi16(0xff), _mm256_set1_epi16(0x84))
        };
        let (src, dst) = (input.as_ptr(), out.as_mut_ptr().cast::<i16>());
        let positive = _mm256_set1_epi16(0x7f);
        let below_sign = _mm256_set1_epi16(0x80);
        for k in (0..input.len() / LANES).map(|k| k * LANES) {
            // SAFETY: `k + 16` bytes are in `input`, and `k + 16` samples fit in `out`.
            unsafe {
                let bytes = _mm_loadu_si128(src.add(k).cast());
                let v = _mm256_xor_si256(_mm256_cvtepu8_epi16(bytes), flip);
                let segment = _mm256_and_si256(_mm256_srli_epi16::<4>(v), seven);
                // Index in the low byte, 0x80 (gives 0) in the high byte: the power as a word.
                let scale = _mm256_shuffle_epi8(pow, _mm256_or_si256(segment, high_zero));
                let mantissa = _mm256_and_si256(v, fifteen);
                let magnitude = if alaw {
                    // ((m << 4) + 8 + (segment != 0) << 8) << (segment - 1)
                    let leading = _mm256_shuffle_epi8(
                        lead,
                        _mm256_or_si256(_mm256_slli_epi16::<8>(segment), low_zero),
                    );
                    let base = _mm256_add_epi16(
                        _mm256_add_epi16(_mm256_slli_epi16::<4>(mantissa), bias),
                        leading,
                    );
                    _mm256_mullo_epi16(base, scale)
                } else {
                    // (((m << 3) + 0x84) << segment) - 0x84
                    let base = _mm256_add_epi16(_mm256_slli_epi16::<3>(mantissa), bias);
                    _mm256_sub_epi16(_mm256_mullo_epi16(base, scale), bias)
                };
                // All ones where the sample is negative: μ-law when the flipped byte's sign
                // bit is set, A-law when it is clear.
                let negate = if alaw {
                    _mm256_cmpgt_epi16(below_sign, v)
                } else {
                    _mm256_cmpgt_epi16(v, positive)
                };
                let linear = _mm256_sub_epi16(_mm256_xor_si256(magnitude, negate), negate);
                _mm256_storeu_si256(dst.add(k).cast(), linear);
            }
        }
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

    /// The vector path against the tables: every byte, at every position of a 16-byte block,
    /// for every payload length around the block sizes (so the table tail is covered too).
    #[test]
    fn every_byte_decodes_as_the_table_says_at_every_position_and_length() {
        for (mut d, table) in [(G711::ulaw(), &ULAW), (G711::alaw(), &ALAW)] {
            let all: Vec<u8> = (0..=255u8).collect();
            for shift in 0..16 {
                let rotated: Vec<u8> = all.iter().map(|b| b.wrapping_add(shift)).collect();
                for len in [0, 1, 15, 16, 17, 31, 32, 33, 160, 255, 256] {
                    let payload = &rotated[..len];
                    let mut out = vec![7i16; 3];
                    assert_eq!(d.decode(payload, &mut out), Ok(len));
                    assert_eq!(&out[..3], &[7, 7, 7]);
                    let want: Vec<i16> = payload.iter().map(|&b| table[b as usize]).collect();
                    assert_eq!(&out[3..], &want[..], "shift {shift}, len {len}");
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("SKIPPED: this CPU has no AVX2; only the table path was checked");
        }
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
