//! ITU-T G.722 (11/88, 09/2012) 64 kbit/s decoder, mode 1, in pure Rust: sub-band ADPCM
//! (§3.2-3.6 block diagrams, §6 computational details of the decoder) and the receive QMF
//! (§4.4). RFC 3551 §4.5.2: the audio is 16 kHz but the RTP clock runs at 8000 Hz, and each
//! octet carries one sample pair (bits 7-6 the higher sub-band, bits 5-0 the lower).
//!
//! The arithmetic follows the ITU's 16-bit fixed point, so the output matches other
//! implementations of the recommendation (FFmpeg's `g722` decoder) sample for sample.

use crate::{DecodeError, Decoder};

/// QM6: inverse quantizer of the 6-bit lower sub-band codeword (§6.2.1.3, table 15 ×8).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// QM4: the 4-bit truncated lower codeword that drives the predictor (§6.2.1.2).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// QM2: inverse quantizer of the 2-bit higher sub-band codeword (§6.2.2.1).
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// WL and RIL→index map: log scale factor multipliers of the lower band (LOGSCL, §6.2.1.4).
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// WH and IH→index map for the higher band (LOGSCH, §6.2.2.2).
const WH: [i32; 3] = [0, -214, 798];
const RH2: [usize; 4] = [2, 1, 2, 1];
/// ILB: the antilog table of SCALEL/SCALEH (§6.2.1.5).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// The 24-tap QMF, as 12 coefficient pairs (§4.4, table 3 scaled to integers).
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

fn sat16(x: i32) -> i32 {
    x.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// The adaptive predictor and scale factor of one sub-band (block 4 of §3, shared by both).
#[derive(Clone, Default)]
struct Band {
    /// Predicted signal: pole part + zero part (PREDIC).
    s: i32,
    /// Zero-section output (FILTEZ).
    sz: i32,
    /// Reconstructed signals r(n-1), r(n-2).
    r: [i32; 2],
    /// Partially reconstructed signals p(n-1), p(n-2) (PARREC).
    p: [i32; 2],
    /// Pole coefficients a1, a2.
    a: [i32; 2],
    /// Zero coefficients b1..b6.
    b: [i32; 6],
    /// Quantized differences d(n-1)..d(n-6).
    d: [i32; 6],
    /// Log scale factor (NBL/NBH) and scale factor (DETL/DETH).
    nb: i32,
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Band {
            det,
            ..Band::default()
        }
    }

    /// Block 4 (§6.2.3): update the predictor with the quantized difference `d`.
    fn adapt(&mut self, d: i32) {
        let r = sat16(self.s + d); // RECONS
        let p = sat16(self.sz + d); // PARREC
        let neg = |x: i32| x < 0;
        // UPPOL2
        let wd1 = sat16(self.a[0] << 2);
        let wd2 = if neg(p) == neg(self.p[0]) { -wd1 } else { wd1 };
        let wd2 = sat16(wd2) >> 7;
        let wd3 = if neg(p) == neg(self.p[1]) { 128 } else { -128 };
        let a2 = (wd2 + wd3 + ((self.a[1] * 32512) >> 15)).clamp(-12288, 12288);
        // UPPOL1
        let wd1 = if neg(p) == neg(self.p[0]) { 192 } else { -192 };
        let a1 = wd1 + ((self.a[0] * 32640) >> 15);
        let limit = 15360 - a2;
        self.a = [a1.clamp(-limit, limit), a2];
        // UPZERO
        let step = if d == 0 { 0 } else { 128 };
        for (b, &dn) in self.b.iter_mut().zip(&self.d) {
            let wd2 = if neg(d) == neg(dn) { step } else { -step };
            *b = wd2 + ((*b * 32640) >> 15);
        }
        // DELAYA
        self.d.copy_within(0..5, 1);
        self.d[0] = d;
        self.p = [p, self.p[0]];
        self.r = [r, self.r[0]];
        // FILTEP, FILTEZ, PREDIC
        let sp = sat16(
            ((self.a[0] * sat16(self.r[0] << 1)) >> 15)
                + ((self.a[1] * sat16(self.r[1] << 1)) >> 15),
        );
        let mut sz = 0;
        for (b, d) in self.b.iter().zip(&self.d) {
            sz += (b * sat16(d << 1)) >> 15;
        }
        self.sz = sat16(sz);
        self.s = sat16(sp + self.sz);
    }

    /// LOGSCL/LOGSCH and SCALEL/SCALEH (§6.2.1.4-5): the next scale factor.
    fn scale(&mut self, w: i32, nb_max: i32, offset: i32) {
        self.nb = (((self.nb * 127) >> 7) + w).clamp(0, nb_max);
        let wd1 = ILB[((self.nb >> 6) & 31) as usize];
        let shift = offset - (self.nb >> 11);
        let wd3 = if shift < 0 {
            wd1 << -shift
        } else {
            wd1 >> shift
        };
        self.det = wd3 << 2;
    }
}

/// G.722 at 64 kbit/s: 16 kHz PCM out, two samples per payload octet.
pub struct G722 {
    low: Band,
    high: Band,
    /// The QMF delay line, oldest first (24 taps, written two at a time).
    x: [i32; 24],
}

impl Default for G722 {
    fn default() -> Self {
        Self::new()
    }
}

impl G722 {
    pub fn new() -> Self {
        G722 {
            low: Band::new(32),
            high: Band::new(8),
            x: [0; 24],
        }
    }

    /// One octet: both sub-band decoders, then the receive QMF. Returns two 16 kHz samples.
    fn decode_octet(&mut self, code: u8) -> [i16; 2] {
        let ilow = (code & 0x3f) as usize;
        let ihigh = (code >> 6) as usize;

        // Lower sub-band (§6.2.1): the output uses all 6 bits, the predictor only the top 4.
        let low = &mut self.low;
        let dl = (low.det * QM6[ilow]) >> 15;
        let rl = (low.s + dl).clamp(-16384, 16383);
        let dlt = (low.det * QM4[ilow >> 2]) >> 15;
        low.scale(WL[RL42[ilow >> 2]], 18432, 8);
        low.adapt(dlt);

        // Higher sub-band (§6.2.2).
        let high = &mut self.high;
        let dh = (high.det * QM2[ihigh]) >> 15;
        let rh = (high.s + dh).clamp(-16384, 16383);
        high.scale(WH[RH2[ihigh]], 22528, 10);
        high.adapt(dh);

        // Receive QMF (§4.4): the sum and difference feed alternate taps.
        self.x.copy_within(2.., 0);
        self.x[22] = rl + rh;
        self.x[23] = rl - rh;
        let (mut even, mut odd) = (0i32, 0i32);
        for (i, &c) in QMF.iter().enumerate() {
            even += self.x[2 * i] * c;
            odd += self.x[2 * i + 1] * QMF[11 - i];
        }
        [sat16(odd >> 11) as i16, sat16(even >> 11) as i16]
    }
}

impl Decoder for G722 {
    fn sample_rate(&self) -> u32 {
        16_000
    }

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        out.reserve(payload.len() * 2);
        for &code in payload {
            out.extend_from_slice(&self.decode_octet(code));
        }
        Ok(payload.len() * 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_stays_quiet_and_state_is_bounded() {
        // 0xff is the code the encoder emits for digital silence in both bands.
        let mut d = G722::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(&[0xff; 320], &mut out), Ok(640));
        assert!(
            out.iter().all(|s| s.unsigned_abs() < 64),
            "{:?}",
            &out[..16]
        );
    }

    #[test]
    fn any_octets_never_overflow() {
        let mut d = G722::new();
        let mut out = Vec::new();
        let payload: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        d.decode(&payload, &mut out).expect("decodes");
        assert_eq!(out.len(), 8192);
    }
}
