//! ITU-T G.726 (12/90) ADPCM at 16, 24, 32 and 40 kbit/s, decoder in pure Rust, following the
//! fixed-point blocks of §4.2 (inverse quantizer, step size adaptation, adaptive predictor,
//! tone and transition detector) with linear PCM out (§4.2.7 is not needed: no PCM law).
//!
//! Packing of the codewords into octets (RFC 3551 §4.5.4, RFC 3551 errata 3264):
//! - `G726-16`..`G726-40` (and the old static name `G721`): little-endian, the first codeword
//!   in the least significant bits of the first octet;
//! - `AAL2-G726-16`..`AAL2-G726-40` (RFC 3551 §4.5.4, ITU-T I.366.2 Annex E): big-endian, the
//!   first codeword in the most significant bits.

use crate::{DecodeError, Decoder};

/// Codeword packing in the RTP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// RFC 3551 §4.5.4: first codeword in the least significant bits.
    LittleEndian,
    /// ITU-T I.366.2 / AAL2: first codeword in the most significant bits.
    BigEndian,
}

/// The quantizer tables of one rate (G.726 tables 6-9): log of the inverse quantizer output
/// (DQLN), scale factor multiplier (W, ×32) and rate-of-change function (F, <<9).
struct Rate {
    bits: u32,
    dqln: &'static [i32],
    w: &'static [i32],
    f: &'static [i32],
}

const RATE16: Rate = Rate {
    bits: 2,
    dqln: &[116, 365, 365, 116],
    w: &[-704, 14048, 14048, -704],
    f: &[0x000, 0xE00, 0xE00, 0x000],
};
const RATE24: Rate = Rate {
    bits: 3,
    dqln: &[-2048, 135, 273, 373, 373, 273, 135, -2048],
    w: &[-128, 960, 4384, 18624, 18624, 4384, 960, -128],
    f: &[0x000, 0x200, 0x400, 0xE00, 0xE00, 0x400, 0x200, 0x000],
};
const RATE32: Rate = Rate {
    bits: 4,
    dqln: &[
        -2048, 4, 135, 213, 273, 323, 373, 425, 425, 373, 323, 273, 213, 135, 4, -2048,
    ],
    w: &[
        -384, 576, 1312, 2048, 3584, 6336, 11360, 35904, 35904, 11360, 6336, 3584, 2048, 1312, 576,
        -384,
    ],
    f: &[
        0x000, 0x000, 0x000, 0x200, 0x200, 0x200, 0x600, 0xE00, 0xE00, 0x600, 0x200, 0x200, 0x200,
        0x000, 0x000, 0x000,
    ],
};
const RATE40: Rate = Rate {
    bits: 5,
    dqln: &[
        -2048, -66, 28, 104, 169, 224, 274, 318, 358, 395, 429, 459, 488, 514, 539, 566, 566, 539,
        514, 488, 459, 429, 395, 358, 318, 274, 224, 169, 104, 28, -66, -2048,
    ],
    w: &[
        448, 448, 768, 1248, 1280, 1312, 1856, 3200, 4512, 5728, 7008, 8960, 11456, 14080, 16928,
        22272, 22272, 16928, 14080, 11456, 8960, 7008, 5728, 4512, 3200, 1856, 1312, 1280, 1248,
        768, 448, 448,
    ],
    f: &[
        0x000, 0x000, 0x000, 0x000, 0x000, 0x200, 0x200, 0x200, 0x200, 0x200, 0x400, 0x600, 0x800,
        0xA00, 0xC00, 0xC00, 0xC00, 0xC00, 0xA00, 0x800, 0x600, 0x400, 0x200, 0x200, 0x200, 0x200,
        0x200, 0x000, 0x000, 0x000, 0x000, 0x000,
    ],
};

/// Index of the highest set bit (x > 0), as G.726's floating point conversions need.
fn top_bit(x: i32) -> i32 {
    31 - (x as u32).leading_zeros() as i32
}

/// FMULT (§4.2.4): multiplies a predictor coefficient by a value in G.726's 4-bit exponent,
/// 6-bit mantissa floating point format.
fn fmult(an: i16, srn: i16) -> i16 {
    let an = an as i32;
    let srn = srn as i32;
    let anmag = if an > 0 { an } else { (-an) & 0x1FFF };
    let anexp = if anmag == 0 { -6 } else { top_bit(anmag) - 5 };
    let anmant = if anmag == 0 {
        32
    } else if anexp >= 0 {
        anmag >> anexp
    } else {
        anmag << -anexp
    };
    let wanexp = anexp + ((srn >> 6) & 0xF) - 13;
    let wanmant = (anmant * (srn & 0x3F) + 0x30) >> 4;
    let retval = if wanexp >= 0 {
        (wanmant << wanexp) & 0x7FFF
    } else {
        wanmant >> -wanexp
    };
    (if (an ^ srn) < 0 { -retval } else { retval }) as i16
}

/// FLOATA/FLOATB (§4.2.4): a 16-bit magnitude and sign into the 11-bit floating point format.
fn to_float(mag: i32, negative: bool) -> i16 {
    let v = if mag == 0 {
        0x20
    } else {
        let exp = top_bit(mag) + 1;
        (exp << 6) + ((mag << 6) >> exp)
    };
    (if negative { v - 0x400 } else { v }) as i16
}

/// G.726 decoder: one codeword per 8 kHz sample, linear PCM out.
pub struct G726 {
    rate: &'static Rate,
    packing: Packing,
    /// Steady-state (locked) and transient (unlocked) step size multipliers YL, YU.
    yl: i32,
    yu: i16,
    /// Short- and long-term averages of F (DMS, DML) and the speed control AP.
    dms: i16,
    dml: i16,
    ap: i16,
    /// Pole coefficients A1, A2 and zero coefficients B1..B6.
    a: [i16; 2],
    b: [i16; 6],
    /// Signs of the last two partial reconstructed signals (PK1, PK2).
    pk: [bool; 2],
    /// The last six quantized differences and two reconstructed signals, in floating point.
    dq: [i16; 6],
    sr: [i16; 2],
    /// Tone detected (TD).
    td: bool,
}

impl G726 {
    /// `kbps` is 16, 24, 32 or 40.
    pub fn new(kbps: u32, packing: Packing) -> Option<Self> {
        let rate = match kbps {
            16 => &RATE16,
            24 => &RATE24,
            32 => &RATE32,
            40 => &RATE40,
            _ => return None,
        };
        Some(G726 {
            rate,
            packing,
            yl: 34816,
            yu: 544,
            dms: 0,
            dml: 0,
            ap: 0,
            a: [0; 2],
            b: [0; 6],
            pk: [false; 2],
            dq: [32; 6],
            sr: [32; 2],
            td: false,
        })
    }

    pub fn bits_per_sample(&self) -> u32 {
        self.rate.bits
    }

    /// Step size Y (§4.2.3, MIX): YU and YL mixed by the speed control AL.
    fn step_size(&self) -> i32 {
        if self.ap >= 256 {
            return self.yu as i32;
        }
        let y = self.yl >> 6;
        let dif = self.yu as i32 - y;
        let al = (self.ap >> 2) as i32;
        if dif > 0 {
            y + ((dif * al) >> 6)
        } else if dif < 0 {
            y + ((dif * al + 0x3F) >> 6)
        } else {
            y
        }
    }

    /// One codeword to one linear sample.
    fn decode_code(&mut self, code: usize) -> i16 {
        let rate = self.rate;
        let sign = code & (1 << (rate.bits - 1)) != 0;

        // Adaptive predictor (§4.2.4): zeros, then poles.
        let mut sezi = 0i32;
        for (&b, &dq) in self.b.iter().zip(&self.dq) {
            sezi += fmult(b >> 2, dq) as i32;
        }
        let sezi = sezi as i16;
        let sez = sezi >> 1;
        let sei = (sezi as i32
            + fmult(self.a[1] >> 2, self.sr[1]) as i32
            + fmult(self.a[0] >> 2, self.sr[0]) as i32) as i16;
        let se = sei >> 1;

        // Inverse quantizer (§4.2.2): DQLN + Y/4, then the antilog.
        let y = self.step_size();
        let dql = rate.dqln[code] + (y >> 2);
        let dq: i16 = if dql < 0 {
            if sign { i16::MIN } else { 0 }
        } else {
            let dex = (dql >> 7) & 15;
            let dqt = 128 + (dql & 127);
            let mag = ((dqt << 7) >> (14 - dex).max(0)) as i16;
            if sign {
                mag.wrapping_sub(i16::MIN)
            } else {
                mag
            }
        };

        // Reconstructed signal SR = SE + DQ (DQ is sign-magnitude here).
        let sr = if dq < 0 {
            (se as i32 - (dq as i32 & 0x3FFF)) as i16
        } else {
            (se as i32 + dq as i32) as i16
        };
        let dqsez = (sr as i32 + sez as i32 - se as i32) as i16;

        self.update(y, rate.w[code], rate.f[code], dq, sr, dqsez);
        sr.saturating_mul(4)
    }

    /// The state update of §4.2.3-4.2.6 after one sample.
    fn update(&mut self, y: i32, wi: i32, fi: i32, dq: i16, sr: i16, dqsez: i16) {
        let pk0 = dqsez < 0;
        let dqmag = (dq as i32) & 0x7FFF;

        // Transition detector (TRANS, §4.2.6).
        let ylint = self.yl >> 15;
        let ylfrac = (self.yl >> 10) & 0x1F;
        let thr = if ylint > 9 {
            31 << 10
        } else {
            (32 + ylfrac) << ylint
        };
        let dqthr = (thr + (thr >> 1)) >> 1;
        let tr = self.td && dqmag > dqthr;

        // Quantizer scale factor adaptation (§4.2.3): FUNCTW, FILTD, LIMB, FILTE.
        self.yu = (y + ((wi - y) >> 5)).clamp(544, 5120) as i16;
        self.yl += self.yu as i32 + ((-self.yl) >> 6);

        let mut a2p: i16 = 0;
        if tr {
            // A tone or modem signal: reset the predictor (TRIGB).
            self.a = [0; 2];
            self.b = [0; 6];
        } else {
            // UPA2
            let pks1 = pk0 ^ self.pk[0];
            a2p = self.a[1].wrapping_sub(self.a[1] >> 7);
            if dqsez != 0 {
                let fa1 = if pks1 {
                    self.a[0]
                } else {
                    self.a[0].wrapping_neg()
                };
                if fa1 < -8191 {
                    a2p = a2p.wrapping_sub(0x100);
                } else if fa1 > 8191 {
                    a2p = a2p.wrapping_add(0xFF);
                } else {
                    a2p = a2p.wrapping_add(fa1 >> 5);
                }
                // LIMC
                a2p = if pk0 ^ self.pk[1] {
                    if a2p <= -12160 {
                        -12288
                    } else if a2p >= 12416 {
                        12288
                    } else {
                        a2p - 0x80
                    }
                } else if a2p <= -12416 {
                    -12288
                } else if a2p >= 12160 {
                    12288
                } else {
                    a2p + 0x80
                };
            }
            self.a[1] = a2p;

            // UPA1, LIMD
            self.a[0] = self.a[0].wrapping_sub(self.a[0] >> 8);
            if dqsez != 0 {
                self.a[0] = if pks1 {
                    self.a[0].wrapping_sub(192)
                } else {
                    self.a[0].wrapping_add(192)
                };
            }
            let a1ul = 15360 - a2p;
            self.a[0] = self.a[0].clamp(-a1ul, a1ul);

            // UPB: the 40 kbit/s leak is 2^-9, the others 2^-8 (§4.2.4).
            let leak = if self.rate.bits == 5 { 9 } else { 8 };
            for (b, &dqi) in self.b.iter_mut().zip(&self.dq) {
                *b = b.wrapping_sub(*b >> leak);
                if dqmag != 0 {
                    *b = if (dq ^ dqi) >= 0 {
                        b.wrapping_add(128)
                    } else {
                        b.wrapping_sub(128)
                    };
                }
            }
        }

        // DELAY and FLOAT A/B.
        self.dq.copy_within(0..5, 1);
        self.dq[0] = to_float(dqmag, dq < 0);
        self.sr[1] = self.sr[0];
        self.sr[0] = if sr == i16::MIN {
            0xFC20u16 as i16
        } else {
            to_float((sr as i32).abs(), sr < 0)
        };
        self.pk = [pk0, self.pk[0]];

        // Tone detector (TONE, §4.2.6).
        self.td = !tr && a2p < -11776;

        // Adaptation speed control (§4.2.5): FILTA, FILTB, SUBTC, FILTC.
        self.dms = self.dms.wrapping_add(((fi - self.dms as i32) >> 5) as i16);
        self.dml = self
            .dml
            .wrapping_add((((fi << 2) - self.dml as i32) >> 7) as i16);
        let ap = self.ap as i32;
        self.ap = if tr {
            256
        } else if y < 1536
            || self.td
            || ((self.dms as i32) << 2).abs_diff(self.dml as i32) as i32 >= (self.dml as i32 >> 3)
        {
            (ap + ((0x200 - ap) >> 4)) as i16
        } else {
            (ap + ((-ap) >> 4)) as i16
        };
    }
}

impl Decoder for G726 {
    fn sample_rate(&self) -> u32 {
        8000
    }

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        let bits = self.rate.bits;
        let mask = (1u32 << bits) - 1;
        let start = out.len();
        let (mut acc, mut n) = (0u32, 0u32);
        for &byte in payload {
            match self.packing {
                Packing::LittleEndian => acc |= (byte as u32) << n,
                Packing::BigEndian => acc = (acc << 8) | byte as u32,
            }
            n += 8;
            while n >= bits {
                let code = match self.packing {
                    Packing::LittleEndian => {
                        let c = acc & mask;
                        acc >>= bits;
                        c
                    }
                    Packing::BigEndian => (acc >> (n - bits)) & mask,
                };
                n -= bits;
                if self.packing == Packing::BigEndian {
                    acc &= (1 << n) - 1;
                }
                let s = self.decode_code(code as usize);
                out.push(s);
            }
        }
        // A trailing part of a codeword (a payload not a whole number of samples) is dropped.
        Ok(out.len() - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_sample_counts() {
        for (kbps, samples) in [(16, 80), (24, 53), (32, 40), (40, 32)] {
            for packing in [Packing::LittleEndian, Packing::BigEndian] {
                let mut d = G726::new(kbps, packing).expect("rate");
                let mut out = Vec::new();
                assert_eq!(d.decode(&[0x5a; 20], &mut out), Ok(samples), "{kbps}");
            }
        }
        assert!(G726::new(48, Packing::BigEndian).is_none());
    }

    #[test]
    fn packings_read_the_same_codewords_in_opposite_order() {
        // 0x12 holds codewords 2,1 (little-endian) or 1,2 (big-endian) at 32 kbit/s.
        let mut le = G726::new(32, Packing::LittleEndian).expect("rate");
        let mut be = G726::new(32, Packing::BigEndian).expect("rate");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        le.decode(&[0x12, 0x34], &mut a).expect("le");
        be.decode(&[0x21, 0x43], &mut b).expect("be");
        assert_eq!(a, b);
    }
}
