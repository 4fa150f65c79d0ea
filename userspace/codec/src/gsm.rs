//! GSM 06.10 full rate (RFC 3551 §4.5.8) through libgsm (Jutta Degener and Carsten Bormann, TU
//! Berlin), the implementation every VoIP stack uses. A payload is one or more 33-byte frames
//! of 20 ms, each starting with the 0xD signature nibble.
//!
//! libgsm has no loss concealment; `conceal` does the substitution and muting of GSM 06.11 §6:
//! the last good frame again, its block amplitudes (xmaxc) lowered each frame, silent after
//! 320 ms.

use std::ffi::c_void;
use std::ptr::NonNull;

use crate::{DecodeError, Decoder};

unsafe extern "C" {
    fn gsm_create() -> *mut c_void;
    fn gsm_destroy(g: *mut c_void);
    fn gsm_decode(g: *mut c_void, frame: *mut u8, out: *mut i16) -> std::ffi::c_int;
}

const FRAME_BYTES: usize = 33;
const FRAME_SAMPLES: usize = 160;
/// Frames of muting until silence (GSM 06.11: 320 ms).
const MUTE_FRAMES: u32 = 16;

pub struct Gsm {
    g: NonNull<c_void>,
    last: Option<[u8; FRAME_BYTES]>,
    lost: u32,
}

// SAFETY: the libgsm state is a heap block with no thread affinity, owned by this value and only
// used through &mut self.
unsafe impl Send for Gsm {}

impl Gsm {
    pub fn new() -> Option<Self> {
        // SAFETY: no arguments; returns an owned state or null.
        let g = NonNull::new(unsafe { gsm_create() })?;
        Some(Gsm {
            g,
            last: None,
            lost: 0,
        })
    }

    fn frame(&mut self, frame: &[u8; FRAME_BYTES], out: &mut Vec<i16>) -> Result<(), DecodeError> {
        let mut bits = *frame;
        let mut pcm = [0i16; FRAME_SAMPLES];
        // SAFETY: libgsm reads 33 bytes and writes 160 samples; both buffers are that size.
        let r = unsafe { gsm_decode(self.g.as_ptr(), bits.as_mut_ptr(), pcm.as_mut_ptr()) };
        if r != 0 {
            return Err(DecodeError);
        }
        out.extend_from_slice(&pcm);
        Ok(())
    }
}

impl Drop for Gsm {
    fn drop(&mut self) {
        // SAFETY: created by gsm_create, destroyed once.
        unsafe { gsm_destroy(self.g.as_ptr()) }
    }
}

/// Bit offset of subframe `k`'s 6-bit xmaxc: after the signature (4) and LARs (36), each
/// subframe is Nc 7, bc 2, Mc 2, xmaxc 6, 13 × 3 pulses (GSM 06.10 table 1.1).
fn xmaxc_offset(k: usize) -> usize {
    4 + 36 + 56 * k + 11
}

fn get_bits(f: &[u8], at: usize, n: usize) -> u32 {
    (at..at + n).fold(0, |v, i| (v << 1) | ((f[i / 8] >> (7 - i % 8)) & 1) as u32)
}

fn set_bits(f: &mut [u8], at: usize, n: usize, v: u32) {
    for j in 0..n {
        let i = at + j;
        let bit = ((v >> (n - 1 - j)) & 1) as u8;
        f[i / 8] = (f[i / 8] & !(0x80 >> (i % 8))) | (bit << (7 - i % 8));
    }
}

/// The last good frame with every xmaxc lowered by `step` (GSM 06.11 §6 muting).
fn muted(frame: &[u8; FRAME_BYTES], step: u32) -> [u8; FRAME_BYTES] {
    let mut f = *frame;
    for k in 0..4 {
        let x = get_bits(&f, xmaxc_offset(k), 6);
        set_bits(&mut f, xmaxc_offset(k), 6, x.saturating_sub(step));
    }
    f
}

impl Decoder for Gsm {
    fn sample_rate(&self) -> u32 {
        8000
    }

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        if payload.is_empty() || !payload.len().is_multiple_of(FRAME_BYTES) {
            return Err(DecodeError);
        }
        if payload.chunks_exact(FRAME_BYTES).any(|f| f[0] >> 4 != 0xD) {
            return Err(DecodeError);
        }
        let start = out.len();
        for f in payload.chunks_exact(FRAME_BYTES) {
            let mut frame = [0u8; FRAME_BYTES];
            frame.copy_from_slice(f);
            self.frame(&frame, out)?;
            self.last = Some(frame);
        }
        self.lost = 0;
        Ok(out.len() - start)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> usize {
        let Some(last) = self.last else {
            return 0;
        };
        let frames = samples / FRAME_SAMPLES;
        let start = out.len();
        for _ in 0..frames {
            let frame = if self.lost >= MUTE_FRAMES {
                muted(&last, 64)
            } else {
                muted(&last, 4 * self.lost)
            };
            self.lost += 1;
            if self.frame(&frame, out).is_err() {
                break;
            }
        }
        out.len() - start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xmaxc_bits_round_trip() {
        let mut f = [0u8; FRAME_BYTES];
        for k in 0..4 {
            set_bits(&mut f, xmaxc_offset(k), 6, 40 + k as u32);
        }
        assert_eq!(get_bits(&f, xmaxc_offset(3), 6), 43);
        let m = muted(&f, 8);
        assert_eq!(get_bits(&m, xmaxc_offset(0), 6), 32);
        assert_eq!(get_bits(&muted(&f, 64), xmaxc_offset(2), 6), 0);
    }
}
