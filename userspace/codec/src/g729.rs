//! ITU-T G.729 / G.729 Annex A with Annex B comfort noise (RFC 3551 §4.5.6) through bcg729, the
//! maintained free implementation (Belledonne, used by Linphone and Asterisk's codec_g729).
//!
//! A payload is zero or more 10-byte frames (10 ms each), optionally followed by one 2-byte
//! Annex B SID frame; G.729A streams decode with the same decoder (the bitstream is common).
//! Loss is concealed by the decoder's frame-erasure path (G.729 §4.4).

use std::ptr::NonNull;

use crate::{DecodeError, Decoder};

#[repr(C)]
struct Bcg729Decoder {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn initBcg729DecoderChannel() -> *mut Bcg729Decoder;
    fn closeBcg729DecoderChannel(ctx: *mut Bcg729Decoder);
    fn bcg729Decoder(
        ctx: *mut Bcg729Decoder,
        bitstream: *const u8,
        bitstream_len: u8,
        frame_erasure: u8,
        sid_frame: u8,
        rfc3389_payload: u8,
        signal: *mut i16,
    );
}

const FRAME_BYTES: usize = 10;
const SID_BYTES: usize = 2;
const FRAME_SAMPLES: usize = 80;

pub struct G729 {
    ctx: NonNull<Bcg729Decoder>,
}

// SAFETY: the bcg729 context is a heap block with no thread affinity, owned by this value and
// only used through &mut self.
unsafe impl Send for G729 {}

impl G729 {
    pub fn new() -> Option<Self> {
        // SAFETY: no arguments; returns an owned context or null.
        let ctx = NonNull::new(unsafe { initBcg729DecoderChannel() })?;
        Some(G729 { ctx })
    }

    /// One frame: `bits` of 10 bytes (speech), 2 (SID) or none (erased).
    fn frame(&mut self, bits: Option<&[u8]>, out: &mut Vec<i16>) {
        let mut pcm = [0i16; FRAME_SAMPLES];
        let zero = [0u8; FRAME_BYTES];
        let (data, erased, sid) = match bits {
            Some(b) => (b, 0, (b.len() == SID_BYTES) as u8),
            None => (&zero[..], 1, 0),
        };
        // SAFETY: `data` holds the 10 or 2 bytes bcg729 reads for this kind of frame, `pcm` the
        // 80 samples it writes, and the context is ours.
        unsafe {
            bcg729Decoder(
                self.ctx.as_ptr(),
                data.as_ptr(),
                data.len() as u8,
                erased,
                sid,
                0,
                pcm.as_mut_ptr(),
            )
        };
        out.extend_from_slice(&pcm);
    }
}

impl Drop for G729 {
    fn drop(&mut self) {
        // SAFETY: created by initBcg729DecoderChannel, closed once.
        unsafe { closeBcg729DecoderChannel(self.ctx.as_ptr()) }
    }
}

impl Decoder for G729 {
    fn sample_rate(&self) -> u32 {
        8000
    }

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        let sid = payload.len() % FRAME_BYTES;
        if payload.is_empty() || (sid != 0 && sid != SID_BYTES) {
            return Err(DecodeError);
        }
        let (speech, tail) = payload.split_at(payload.len() - sid);
        let start = out.len();
        for f in speech.chunks_exact(FRAME_BYTES) {
            self.frame(Some(f), out);
        }
        if sid == SID_BYTES {
            self.frame(Some(tail), out);
        }
        Ok(out.len() - start)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> usize {
        let frames = samples / FRAME_SAMPLES;
        for _ in 0..frames {
            self.frame(None, out);
        }
        frames * FRAME_SAMPLES
    }
}
