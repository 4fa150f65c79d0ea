//! ITU-T G.711 encoders (μ-law and A-law), written from the recommendation's
//! segment tables. Input is 16-bit linear PCM.

/// μ-law bias added before segment search (33 in 14-bit units, 0x84 in 16-bit units).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude that can be represented after adding the bias.
const ULAW_CLIP: i32 = 32635;

/// Encode one 16-bit linear sample as G.711 μ-law (PCMU, RTP payload type 0).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut mag = sample as i32;
    let sign: i32 = if mag < 0 {
        mag = -mag;
        0x80
    } else {
        0
    };
    if mag > ULAW_CLIP {
        mag = ULAW_CLIP;
    }
    mag += ULAW_BIAS; // 132..=32767: highest set bit is 7..=14
    let exponent = (31 - (mag as u32).leading_zeros()) as i32 - 7;
    let mantissa = (mag >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Encode one 16-bit linear sample as G.711 A-law (PCMA, RTP payload type 8).
pub fn linear_to_alaw(sample: i16) -> u8 {
    // A-law works on 13-bit magnitudes.
    let mut mag = (sample as i32) >> 3;
    let mask: u8 = if mag >= 0 {
        0xD5
    } else {
        mag = -mag - 1;
        0x55
    };
    // mag is 0..=4095; segment 0 covers 0..=31, segment n>=1 covers 2^(n+4)..2^(n+5)-1.
    let seg = if mag < 32 {
        0
    } else {
        (31 - (mag as u32).leading_zeros()) as i32 - 4
    };
    let quant = if seg < 2 {
        (mag >> 1) & 0x0F
    } else {
        (mag >> seg) & 0x0F
    };
    (((seg << 4) | quant) as u8) ^ mask
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reference decoder (test only), per G.711 table 2a.
    pub fn ulaw_to_linear(u: u8) -> i32 {
        let u = !u;
        let exp = ((u >> 4) & 0x07) as i32;
        let mant = (u & 0x0F) as i32;
        let t = ((mant << 3) + ULAW_BIAS) << exp;
        if u & 0x80 != 0 {
            ULAW_BIAS - t
        } else {
            t - ULAW_BIAS
        }
    }

    /// Reference decoder (test only), per G.711 table 1a.
    pub fn alaw_to_linear(a: u8) -> i32 {
        let a = a ^ 0x55;
        let seg = ((a >> 4) & 0x07) as i32;
        let mut t = ((a & 0x0F) as i32) << 4;
        match seg {
            0 => t += 8,
            1 => t += 0x108,
            _ => {
                t += 0x108;
                t <<= seg - 1;
            }
        }
        if a & 0x80 != 0 { t } else { -t }
    }

    #[test]
    fn ulaw_known_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(1000), 0xCE);
        assert_eq!(linear_to_ulaw(-1000), 0x4E);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(linear_to_alaw(1000), 0xFA);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn roundtrip_within_quantisation_error() {
        for x in i16::MIN..=i16::MAX {
            let xi = x as i32;
            let mag = xi.abs().min(32635);
            let u = ulaw_to_linear(linear_to_ulaw(x));
            let target = if xi < 0 { -mag } else { mag };
            assert!(
                (u - target).abs() <= (mag + 132) / 32 + 1,
                "ulaw x={x} got {u}"
            );
            let a = alaw_to_linear(linear_to_alaw(x));
            assert!((a - xi).abs() <= xi.abs() / 32 + 16, "alaw x={x} got {a}");
        }
    }

    #[test]
    fn encoders_are_monotonic() {
        let mut prev_u = i32::MIN;
        let mut prev_a = i32::MIN;
        for x in i16::MIN..=i16::MAX {
            let u = ulaw_to_linear(linear_to_ulaw(x));
            let a = alaw_to_linear(linear_to_alaw(x));
            assert!(u >= prev_u && a >= prev_a, "x={x}");
            prev_u = u;
            prev_a = a;
        }
    }
}
