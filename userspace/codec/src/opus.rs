//! Opus (RFC 6716) in RTP (RFC 7587) through libopus, the reference implementation.
//!
//! RFC 7587 §4.1: the RTP clock is always 48000 whatever the audio bandwidth, and the rtpmap
//! always says 2 channels; a 1-channel libopus decoder mixes stereo packets down. libopus
//! decodes straight at 8, 12, 16, 24 or 48 kHz, so we decode at the recording's rate when it
//! is one of those. Loss: `conceal` is libopus' PLC (a NULL packet), `recover` its in-band FEC
//! (RFC 7587 §3.3, RFC 6716 §4.2.5: the LBRR frames of the next packet, `decode_fec=1`).

use std::ffi::c_int;
use std::ptr::NonNull;

use crate::{DecodeError, Decoder};

#[repr(C)]
struct OpusDecoderState {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn opus_decoder_create(fs: i32, channels: c_int, error: *mut c_int) -> *mut OpusDecoderState;
    fn opus_decoder_destroy(st: *mut OpusDecoderState);
    fn opus_decode(
        st: *mut OpusDecoderState,
        data: *const u8,
        len: i32,
        pcm: *mut i16,
        frame_size: c_int,
        decode_fec: c_int,
    ) -> c_int;
    fn opus_packet_get_nb_samples(packet: *const u8, len: i32, fs: i32) -> c_int;
    fn opus_packet_parse(
        data: *const u8,
        len: i32,
        out_toc: *mut u8,
        frames: *mut *const u8,
        size: *mut i16,
        payload_offset: *mut c_int,
    ) -> c_int;
}

/// The rates libopus decodes at natively (RFC 6716 §2).
pub const RATES: [u32; 5] = [8000, 12_000, 16_000, 24_000, 48_000];

pub struct Opus {
    st: NonNull<OpusDecoderState>,
    rate: u32,
    buf: Vec<i16>,
}

// SAFETY: the libopus decoder state is a plain heap block with no thread affinity, owned by this
// value alone, and only touched through &mut self.
unsafe impl Send for Opus {}

impl Opus {
    /// A mono decoder at `rate_hint` if libopus can decode at that rate, else at 48 kHz.
    pub fn new(rate_hint: u32) -> Option<Self> {
        let rate = if RATES.contains(&rate_hint) {
            rate_hint
        } else {
            48_000
        };
        let mut err: c_int = 0;
        // SAFETY: valid rate and channel count; `err` is a live out-pointer.
        let st = unsafe { opus_decoder_create(rate as i32, 1, &mut err) };
        let st = NonNull::new(st).filter(|_| err == 0)?;
        Some(Opus {
            st,
            rate,
            buf: vec![0; Self::max_frame(rate)],
        })
    }

    /// 120 ms, the longest packet (RFC 6716 §3.2.5).
    fn max_frame(rate: u32) -> usize {
        rate as usize * 120 / 1000
    }

    /// 2.5 ms, the unit libopus' frame sizes come in.
    fn quantum(&self) -> usize {
        self.rate as usize / 400
    }

    /// Runs opus_decode into `buf` and appends what it made. `data` None is a lost packet.
    fn run(
        &mut self,
        data: Option<&[u8]>,
        frame: usize,
        fec: bool,
        out: &mut Vec<i16>,
    ) -> Option<usize> {
        let frame = frame.min(self.buf.len());
        let (ptr, len) = match data {
            Some(d) => (d.as_ptr(), i32::try_from(d.len()).ok()?),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `ptr` is valid for `len` bytes (or null for PLC), `buf` holds `frame` samples,
        // and the state is ours.
        let n = unsafe {
            opus_decode(
                self.st.as_ptr(),
                ptr,
                len,
                self.buf.as_mut_ptr(),
                frame as c_int,
                fec as c_int,
            )
        };
        let n = usize::try_from(n).ok()?.min(frame);
        out.extend_from_slice(&self.buf[..n]);
        Some(n)
    }
}

impl Drop for Opus {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { opus_decoder_destroy(self.st.as_ptr()) }
    }
}

/// Whether the packet carries LBRR (FEC) data for the frame before it: only SILK and hybrid
/// frames can, and the LBRR flags are the first bits of the first frame's SILK header
/// (RFC 6716 §4.2.3-4.2.4; the same test as libopus 1.5's `opus_packet_has_lbrr`).
pub fn has_lbrr(packet: &[u8]) -> bool {
    let Some(&toc) = packet.first() else {
        return false;
    };
    let config = toc >> 3;
    if config >= 16 {
        return false; // CELT only
    }
    // SILK frames are 10, 20, 40 or 60 ms; hybrid 10 or 20 (RFC 6716 §3.1, table 2).
    let ms = if config < 12 {
        [10, 20, 40, 60][(config & 3) as usize]
    } else {
        [10, 20][(config & 1) as usize]
    };
    let silk_frames = (ms / 20).max(1);
    let stereo = toc & 0x04 != 0;
    let Ok(len) = i32::try_from(packet.len()) else {
        return false;
    };
    let mut frames = [std::ptr::null::<u8>(); 48];
    let mut sizes = [0i16; 48];
    // SAFETY: `packet` is valid for `len` bytes; the arrays have the 48 entries libopus writes.
    let n = unsafe {
        opus_packet_parse(
            packet.as_ptr(),
            len,
            std::ptr::null_mut(),
            frames.as_mut_ptr(),
            sizes.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    };
    if n <= 0 || sizes[0] <= 0 {
        return false;
    }
    // libopus points frames[0] into `packet`: read it back through the slice.
    let Some(&first) = (frames[0] as usize)
        .checked_sub(packet.as_ptr() as usize)
        .and_then(|at| packet.get(at))
    else {
        return false;
    };
    let mut lbrr = (first >> (7 - silk_frames)) & 1 != 0;
    if stereo {
        lbrr |= (first >> (6 - 2 * silk_frames)) & 1 != 0;
    }
    lbrr
}

impl Decoder for Opus {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn clock_rate(&self) -> u32 {
        48_000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        if payload.is_empty() {
            return Err(DecodeError);
        }
        let len = i32::try_from(payload.len()).map_err(|_| DecodeError)?;
        // SAFETY: `payload` is valid for `len` bytes.
        let n = unsafe { opus_packet_get_nb_samples(payload.as_ptr(), len, self.rate as i32) };
        let n = usize::try_from(n).map_err(|_| DecodeError)?;
        if n == 0 || n > Self::max_frame(self.rate) {
            return Err(DecodeError);
        }
        self.run(Some(payload), n, false, out).ok_or(DecodeError)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> usize {
        let q = self.quantum();
        let mut left = samples / q * q;
        let mut done = 0;
        while left > 0 {
            // PLC in steps of at most 20 ms keeps libopus' fade-out natural.
            let step = left.min(self.rate as usize / 50);
            match self.run(None, step, false, out) {
                Some(n) if n > 0 => {
                    done += n;
                    left = left.saturating_sub(n);
                }
                _ => break,
            }
        }
        done
    }

    fn recover(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) -> usize {
        if !has_lbrr(next_payload) {
            return 0;
        }
        let q = self.quantum();
        let frame = (samples / q * q).min(Self::max_frame(self.rate));
        if frame == 0 {
            return 0;
        }
        self.run(Some(next_payload), frame, true, out).unwrap_or(0)
    }
}
