//! Speex (RFC 5574) through libspeex (Xiph.org, the reference implementation). The clock rate
//! picks the mode (RFC 5574 §3: 8000 narrow-band, 16000 wide-band, 32000 ultra-wide-band), a
//! payload carries one or more 20 ms frames back to back, padded with the terminator code
//! (RFC 5574 §3.3), and `conceal` is libspeex' own packet loss concealment (a NULL bit-stream).

use std::ffi::{c_char, c_int, c_void};
use std::ptr::NonNull;

use crate::{DecodeError, Decoder};

/// libspeex' `SpeexBits` (speex_bits.h), which the caller allocates.
#[repr(C)]
pub(crate) struct SpeexBits {
    chars: *mut c_char,
    nb_bits: c_int,
    char_ptr: c_int,
    bit_ptr: c_int,
    owner: c_int,
    overflow: c_int,
    buf_size: c_int,
    reserved1: c_int,
    reserved2: *mut c_void,
}

unsafe extern "C" {
    pub(crate) fn speex_lib_get_mode(mode: c_int) -> *const c_void;
    fn speex_decoder_init(mode: *const c_void) -> *mut c_void;
    fn speex_decoder_destroy(state: *mut c_void);
    fn speex_decoder_ctl(state: *mut c_void, request: c_int, ptr: *mut c_void) -> c_int;
    fn speex_decode_int(state: *mut c_void, bits: *mut SpeexBits, out: *mut i16) -> c_int;
    pub(crate) fn speex_bits_init(bits: *mut SpeexBits);
    pub(crate) fn speex_bits_destroy(bits: *mut SpeexBits);
    fn speex_bits_read_from(bits: *mut SpeexBits, bytes: *const c_char, len: c_int);
}

pub(crate) const SPEEX_GET_FRAME_SIZE: c_int = 3;

/// The mode id for a clock rate (speex.h SPEEX_MODEID_NB/WB/UWB).
pub(crate) fn mode_for(clock_rate: u32) -> Option<c_int> {
    match clock_rate {
        8000 => Some(0),
        16_000 => Some(1),
        32_000 => Some(2),
        _ => None,
    }
}

impl SpeexBits {
    /// An initialised, empty bit-stream (boxed: libspeex keeps its own buffer behind it).
    pub(crate) fn new() -> Box<SpeexBits> {
        let mut bits = Box::new(SpeexBits {
            chars: std::ptr::null_mut(),
            nb_bits: 0,
            char_ptr: 0,
            bit_ptr: 0,
            owner: 0,
            overflow: 0,
            buf_size: 0,
            reserved1: 0,
            reserved2: std::ptr::null_mut(),
        });
        // SAFETY: `bits` is a live SpeexBits; speex_bits_init allocates its buffer.
        unsafe { speex_bits_init(&mut *bits) };
        bits
    }
}

impl Drop for SpeexBits {
    fn drop(&mut self) {
        // SAFETY: initialised by speex_bits_init in `new`, destroyed once.
        unsafe { speex_bits_destroy(self) }
    }
}

pub struct Speex {
    st: NonNull<c_void>,
    bits: Box<SpeexBits>,
    rate: u32,
    frame: usize,
    buf: Vec<i16>,
}

// SAFETY: the decoder state and bit buffer are heap blocks with no thread affinity, owned by this
// value and only used through &mut self.
unsafe impl Send for Speex {}

impl Speex {
    pub fn new(clock_rate: u32) -> Option<Self> {
        let mode_id = mode_for(clock_rate)?;
        // SAFETY: mode ids 0..=2 are valid; libspeex returns a static mode or null.
        let mode = unsafe { speex_lib_get_mode(mode_id) };
        if mode.is_null() {
            return None;
        }
        // SAFETY: `mode` is a valid static SpeexMode.
        let st = NonNull::new(unsafe { speex_decoder_init(mode) })?;
        let mut frame: c_int = 0;
        // SAFETY: SPEEX_GET_FRAME_SIZE writes one int.
        unsafe {
            speex_decoder_ctl(
                st.as_ptr(),
                SPEEX_GET_FRAME_SIZE,
                (&mut frame as *mut c_int).cast(),
            )
        };
        let frame = usize::try_from(frame).ok().filter(|&f| f > 0 && f <= 1280);
        let Some(frame) = frame else {
            // SAFETY: created above, destroyed once.
            unsafe { speex_decoder_destroy(st.as_ptr()) };
            return None;
        };
        Some(Speex {
            st,
            bits: SpeexBits::new(),
            rate: clock_rate,
            frame,
            buf: vec![0; frame],
        })
    }
}

impl Drop for Speex {
    fn drop(&mut self) {
        // SAFETY: created by speex_decoder_init, destroyed once.
        unsafe { speex_decoder_destroy(self.st.as_ptr()) }
    }
}

impl Decoder for Speex {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn clock_rate(&self) -> u32 {
        self.rate
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        let len = c_int::try_from(payload.len()).map_err(|_| DecodeError)?;
        if len == 0 {
            return Err(DecodeError);
        }
        // SAFETY: `payload` is valid for `len` bytes; libspeex copies it into its own buffer.
        unsafe { speex_bits_read_from(&mut *self.bits, payload.as_ptr().cast(), len) };
        let start = out.len();
        // Each frame takes at least 5 bits, so this bounds a stream of in-band requests too.
        for _ in 0..=payload.len() * 8 / 5 {
            // SAFETY: `buf` holds one frame, the bits were filled above, the state is ours.
            let r = unsafe {
                speex_decode_int(self.st.as_ptr(), &mut *self.bits, self.buf.as_mut_ptr())
            };
            match r {
                0 => out.extend_from_slice(&self.buf),
                -1 => break, // terminator or end of the bits (RFC 5574 §3.3)
                _ => {
                    out.truncate(start);
                    return Err(DecodeError);
                }
            }
        }
        if out.len() == start {
            return Err(DecodeError);
        }
        Ok(out.len() - start)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> usize {
        let frames = samples / self.frame;
        for _ in 0..frames {
            // SAFETY: a null bit-stream asks libspeex for concealment; `buf` holds one frame.
            unsafe {
                speex_decode_int(
                    self.st.as_ptr(),
                    std::ptr::null_mut(),
                    self.buf.as_mut_ptr(),
                )
            };
            out.extend_from_slice(&self.buf);
        }
        frames * self.frame
    }
}
