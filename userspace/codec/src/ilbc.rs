//! iLBC (RFC 3951) in RTP (RFC 3952): 20 ms frames of 38 bytes or 30 ms frames of 50 bytes, one
//! or more per payload; the mode comes from the fmtp `mode` (RFC 3952 §5, 30 when absent) or,
//! when a payload fits only the other mode, from its length.
//!
//! Decoded by FFmpeg's native iLBC decoder in libavcodec, through a small C shim
//! (`csrc/ilbc_shim.c`), because Debian 12 packages no libilbc; libavcodec is packaged,
//! maintained and fuzzed, and its iLBC decoder follows the RFC 3951 reference code. That decoder
//! has no packet loss concealment entry point, so `conceal` returns 0 (the caller writes silence).

use std::ffi::c_int;
use std::ptr::NonNull;

use crate::{CodecSpec, DecodeError, Decoder};

#[repr(C)]
struct VxIlbc {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn vx_ilbc_new(block_align: c_int) -> *mut VxIlbc;
    fn vx_ilbc_free(d: *mut VxIlbc);
    fn vx_ilbc_decode(
        d: *mut VxIlbc,
        data: *const u8,
        len: c_int,
        out: *mut i16,
        cap: c_int,
    ) -> c_int;
}

/// Bytes per frame of each mode (RFC 3952 §3.1).
const MODE20: usize = 38;
const MODE30: usize = 50;

pub struct Ilbc {
    d: NonNull<VxIlbc>,
    block: usize,
}

// SAFETY: the shim's context (an AVCodecContext and buffers) has no thread affinity, is owned by
// this value and only used through &mut self.
unsafe impl Send for Ilbc {}

impl Ilbc {
    pub fn new(spec: &CodecSpec) -> Option<Self> {
        let block = match spec.fmtp_param("mode") {
            Some("20") => MODE20,
            _ => MODE30,
        };
        Self::with_block(block)
    }

    fn with_block(block: usize) -> Option<Self> {
        // SAFETY: block is 38 or 50; the shim returns an owned context or null.
        let d = NonNull::new(unsafe { vx_ilbc_new(block as c_int) })?;
        Some(Ilbc { d, block })
    }
}

impl Drop for Ilbc {
    fn drop(&mut self) {
        // SAFETY: created by vx_ilbc_new, freed once.
        unsafe { vx_ilbc_free(self.d.as_ptr()) }
    }
}

impl Decoder for Ilbc {
    fn sample_rate(&self) -> u32 {
        8000
    }

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        if payload.is_empty() {
            return Err(DecodeError);
        }
        if !payload.len().is_multiple_of(self.block) {
            let other = if self.block == MODE20 { MODE30 } else { MODE20 };
            if !payload.len().is_multiple_of(other) {
                return Err(DecodeError);
            }
            *self = Self::with_block(other).ok_or(DecodeError)?;
        }
        let start = out.len();
        let mut pcm = [0i16; 240];
        for frame in payload.chunks_exact(self.block) {
            // SAFETY: `frame` is `block` bytes, `pcm` has room for 240 samples (30 ms).
            let n = unsafe {
                vx_ilbc_decode(
                    self.d.as_ptr(),
                    frame.as_ptr(),
                    frame.len() as c_int,
                    pcm.as_mut_ptr(),
                    pcm.len() as c_int,
                )
            };
            let Ok(n) = usize::try_from(n) else {
                out.truncate(start);
                return Err(DecodeError);
            };
            out.extend_from_slice(&pcm[..n.min(pcm.len())]);
        }
        Ok(out.len() - start)
    }
}
