//! Encoders for generated test traffic and tests (feature `encode`); the recorder never
//! encodes. Where a library exists they use it rather than our own code, so that a round trip
//! through our pure-Rust decoders tests them against an independent implementation:
//!
//! | codec | encoder |
//! |---|---|
//! | PCMU, PCMA | ours (G.711 §3 compression), L16 ours |
//! | G.722, G.726 (both packings) | libspandsp |
//! | GSM | libgsm |
//! | G.729 | bcg729 (VAD off: 10-byte frames only) |
//! | Opus | libopus (in-band FEC when the fmtp says `useinbandfec=1`; stereo, the same signal on both channels, when it says `stereo=1` or `sprop-stereo=1`) |
//! | Speex | libspeex |
//! | AMR | opencore-amrnb |
//! | AMR-WB | vo-amrwbenc |
//! | iLBC | none: no encoder is packaged here (the real capture covers the decoder) |
//!
//! AMR frames are packed by [`crate::amr`] in either RFC 4867 layout, per the fmtp.

#![allow(unused_imports)]

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;

use crate::{CodecSpec, Undecodable, g726_variant};

/// One codec's encoder for test traffic.
pub trait Encoder: Send {
    /// Sample rate of the PCM that `encode` takes.
    fn sample_rate(&self) -> u32;
    /// The RTP clock rate.
    fn clock_rate(&self) -> u32;
    /// Mono samples `encode` takes for one payload.
    fn frame_samples(&self) -> usize;
    /// RTP timestamp ticks of one payload.
    fn ticks_per_payload(&self) -> u32 {
        (self.frame_samples() as u64 * self.clock_rate() as u64 / self.sample_rate() as u64) as u32
    }
    /// Exactly `frame_samples()` samples to one RTP payload.
    fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, EncodeError>;
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("an encoder takes {expected} samples, not {got}")]
    WrongLength { expected: usize, got: usize },
    #[error("{0} failed to encode")]
    Library(&'static str),
}

fn check(pcm: &[i16], expected: usize) -> Result<(), EncodeError> {
    if pcm.len() == expected {
        Ok(())
    } else {
        Err(EncodeError::WrongLength {
            expected,
            got: pcm.len(),
        })
    }
}

/// An encoder for `spec` making payloads of `ptime_ms` (a whole number of the codec's frames).
pub fn encoder_for(spec: &CodecSpec, ptime_ms: u32) -> Result<Box<dyn Encoder>, Undecodable> {
    let name = spec.name.to_ascii_uppercase();
    let bad = |why: &str| Undecodable::BadParameters(format!("{}: {why}", spec.name));
    if ptime_ms == 0 || ptime_ms > 200 {
        return Err(bad("ptime must be 1-200 ms"));
    }
    // Codecs with frames take a whole number of them.
    let frames = |frame_ms: u32| {
        if ptime_ms.is_multiple_of(frame_ms) {
            Ok((ptime_ms / frame_ms) as usize)
        } else {
            Err(bad(&format!(
                "ptime {ptime_ms} is not a multiple of {frame_ms} ms"
            )))
        }
    };
    let per_ms = |rate: u32| (rate / 1000 * ptime_ms) as usize;
    let _ = &frames;
    match (name.as_str(), spec.clock_rate) {
        ("PCMU", 8000) => Ok(Box::new(G711Enc {
            alaw: false,
            n: per_ms(8000),
        })),
        ("PCMA", 8000) => Ok(Box::new(G711Enc {
            alaw: true,
            n: per_ms(8000),
        })),
        ("L16", rate) if rate >= 1000 => Ok(Box::new(L16Enc {
            rate,
            channels: spec.channels.max(1) as usize,
            n: (rate as u64 * ptime_ms as u64 / 1000) as usize,
        })),
        ("G722", 8000) => {
            #[cfg(have_spandsp)]
            return Ok(Box::new(
                spandsp::G722Enc::new(per_ms(16_000)).ok_or_else(|| bad("spandsp"))?,
            ));
            #[cfg(not(have_spandsp))]
            Err(crate::not_built(spec, "libspandsp"))
        }
        (n, 8000) if g726_variant(n).is_some() => {
            let (kbps, packing) = g726_variant(n).ok_or_else(|| bad("rate"))?;
            let samples = per_ms(8000);
            if !(samples * (kbps as usize / 8)).is_multiple_of(8) {
                return Err(bad("ptime does not fill whole octets"));
            }
            #[cfg(have_spandsp)]
            return Ok(Box::new(
                spandsp::G726Enc::new(kbps, packing, samples).ok_or_else(|| bad("spandsp"))?,
            ));
            #[cfg(not(have_spandsp))]
            {
                let _ = packing;
                Err(crate::not_built(spec, "libspandsp"))
            }
        }
        ("GSM", 8000) => {
            let n = frames(20)?;
            #[cfg(have_gsm)]
            return Ok(Box::new(GsmEnc::new(n).ok_or_else(|| bad("libgsm"))?));
            #[cfg(not(have_gsm))]
            {
                let _ = n;
                Err(crate::not_built(spec, "libgsm"))
            }
        }
        ("G729" | "G729A" | "G729B" | "G729AB", 8000) => {
            let n = frames(10)?;
            #[cfg(have_bcg729)]
            return Ok(Box::new(G729Enc::new(n).ok_or_else(|| bad("bcg729"))?));
            #[cfg(not(have_bcg729))]
            {
                let _ = n;
                Err(crate::not_built(spec, "bcg729"))
            }
        }
        ("OPUS", 48000) => {
            if ![10, 20, 40, 60].contains(&ptime_ms) {
                return Err(bad("Opus ptime is 10, 20, 40 or 60 ms"));
            }
            let fec = spec.fmtp_param("useinbandfec") == Some("1");
            // RFC 7587 §7.1: `sprop-stereo=1` says the sender sends stereo (`stereo=1` that it
            // would receive it); either makes a stereo encoder, the mono input on both channels.
            let stereo = ["stereo", "sprop-stereo"]
                .iter()
                .any(|k| spec.fmtp_param(k) == Some("1"));
            #[cfg(have_opus)]
            return Ok(Box::new(
                OpusEnc::new(per_ms(48_000), fec, stereo).ok_or_else(|| bad("libopus"))?,
            ));
            #[cfg(not(have_opus))]
            {
                let _ = (fec, stereo);
                Err(crate::not_built(spec, "libopus"))
            }
        }
        ("SPEEX", rate @ (8000 | 16000 | 32000)) => {
            let n = frames(20)?;
            #[cfg(have_speex)]
            return Ok(Box::new(
                SpeexEnc::new(rate, n).ok_or_else(|| bad("libspeex"))?,
            ));
            #[cfg(not(have_speex))]
            {
                let _ = (n, rate);
                Err(crate::not_built(spec, "libspeex"))
            }
        }
        ("AMR", 8000) | ("AMR-WB", 16000) => {
            let wideband = name == "AMR-WB";
            let n = frames(20)?;
            let layout = crate::amr::Layout::from_spec(spec, wideband)?;
            if layout.crc {
                // The CRC covers the class A bits (RFC 4867 §4.4.2.1), an ordering we lack.
                return Err(bad("the AMR encoder does not make CRCs (crc=1)"));
            }
            let mode = spec
                .fmtp_param("mode-set")
                .and_then(|m| {
                    m.trim_matches('"')
                        .split(',')
                        .next_back()?
                        .trim()
                        .parse::<c_int>()
                        .ok()
                })
                .unwrap_or(if wideband { 8 } else { 7 });
            let _ = (n, layout, mode);
            if wideband {
                #[cfg(have_voamrwbenc)]
                return Ok(Box::new(
                    AmrEnc::wideband(layout, mode, n).ok_or_else(|| bad("vo-amrwbenc"))?,
                ));
                #[cfg(not(have_voamrwbenc))]
                Err(crate::not_built(spec, "vo-amrwbenc"))
            } else {
                #[cfg(have_amrnb)]
                return Ok(Box::new(
                    AmrEnc::narrowband(layout, mode, n).ok_or_else(|| bad("opencore-amrnb"))?,
                ));
                #[cfg(not(have_amrnb))]
                Err(crate::not_built(spec, "opencore-amrnb"))
            }
        }
        ("ILBC", 8000) => Err(bad("no iLBC encoder is available in this build")),
        _ => Err(Undecodable::UnknownCodec(format!(
            "{}/{}",
            spec.name, spec.clock_rate
        ))),
    }
}

/// spandsp's own G.722 or G.726 decoder, which follows the ITU-T fixed-point reference (it
/// passes the ITU test vectors): a second oracle for our pure-Rust decoders, in tests.
pub fn reference_decoder(spec: &CodecSpec) -> Result<Box<dyn crate::Decoder>, Undecodable> {
    let name = spec.name.to_ascii_uppercase();
    let bad = || Undecodable::BadParameters(format!("spandsp could not decode {}", spec.name));
    match (name.as_str(), spec.clock_rate) {
        ("G722", 8000) => {
            #[cfg(have_spandsp)]
            return Ok(Box::new(spandsp::Reference::g722().ok_or_else(bad)?));
            #[cfg(not(have_spandsp))]
            Err(crate::not_built(spec, "libspandsp"))
        }
        (n, 8000) if g726_variant(n).is_some() => {
            let (kbps, packing) = g726_variant(n).ok_or_else(bad)?;
            #[cfg(have_spandsp)]
            return Ok(Box::new(
                spandsp::Reference::g726(kbps, packing).ok_or_else(bad)?,
            ));
            #[cfg(not(have_spandsp))]
            {
                let _ = (kbps, packing);
                Err(crate::not_built(spec, "libspandsp"))
            }
        }
        _ => Err(Undecodable::UnknownCodec(spec.name.clone())),
    }
}

/// G.711 compression (G.711 §3, as in the ITU's reference tables).
struct G711Enc {
    alaw: bool,
    n: usize,
}

/// µ-law: bias 0x84, segment = position of the top bit, bits inverted (G.711 §3.2).
pub fn linear_to_ulaw(s: i16) -> u8 {
    let sign = if s < 0 { 0x80u8 } else { 0 };
    let v = (s as i32).unsigned_abs().min(32635) + 0x84;
    let exponent = (31 - v.leading_zeros()) - 7;
    let mantissa = (v >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// A-law: 13-bit magnitude, segment and 4-bit mantissa, even bits inverted (G.711 §3.3).
pub fn linear_to_alaw(s: i16) -> u8 {
    let v = (s as i32) >> 3;
    let (mask, v) = if v >= 0 {
        (0xD5u8, v)
    } else {
        (0x55u8, -v - 1)
    };
    let v = v.min(0xFFF) as u32;
    let seg = if v < 32 {
        0
    } else {
        32 - v.leading_zeros() - 5
    };
    let mantissa = if seg < 2 {
        (v >> 1) & 0x0f
    } else {
        (v >> seg) & 0x0f
    };
    ((seg << 4) as u8 | mantissa as u8) ^ mask
}

impl Encoder for G711Enc {
    fn sample_rate(&self) -> u32 {
        8000
    }
    fn clock_rate(&self) -> u32 {
        8000
    }
    fn frame_samples(&self) -> usize {
        self.n
    }
    fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, EncodeError> {
        check(pcm, self.n)?;
        let f = if self.alaw {
            linear_to_alaw
        } else {
            linear_to_ulaw
        };
        Ok(pcm.iter().map(|&s| f(s)).collect())
    }
}

/// L16 (RFC 3551 §4.5.11): big-endian, the mono signal on every channel.
struct L16Enc {
    rate: u32,
    channels: usize,
    n: usize,
}

impl Encoder for L16Enc {
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn clock_rate(&self) -> u32 {
        self.rate
    }
    fn frame_samples(&self) -> usize {
        self.n
    }
    fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, EncodeError> {
        check(pcm, self.n)?;
        let mut out = Vec::with_capacity(pcm.len() * 2 * self.channels);
        for s in pcm {
            for _ in 0..self.channels {
                out.extend_from_slice(&s.to_be_bytes());
            }
        }
        Ok(out)
    }
}

#[cfg(have_spandsp)]
mod spandsp {
    use std::ffi::{c_int, c_void};
    use std::ptr::NonNull;

    use super::{EncodeError, Encoder, check};
    use crate::G726Packing;

    unsafe extern "C" {
        fn g722_encode_init(s: *mut c_void, rate: c_int, options: c_int) -> *mut c_void;
        fn g722_encode_free(s: *mut c_void) -> c_int;
        fn g722_encode(s: *mut c_void, out: *mut u8, amp: *const i16, len: c_int) -> c_int;
        fn g726_init(
            s: *mut c_void,
            bit_rate: c_int,
            ext_coding: c_int,
            packing: c_int,
        ) -> *mut c_void;
        fn g726_free(s: *mut c_void) -> c_int;
        fn g726_encode(s: *mut c_void, out: *mut u8, amp: *const i16, len: c_int) -> c_int;
    }

    unsafe extern "C" {
        fn g722_decode_init(s: *mut c_void, rate: c_int, options: c_int) -> *mut c_void;
        fn g722_decode_free(s: *mut c_void) -> c_int;
        fn g722_decode(s: *mut c_void, amp: *mut i16, data: *const u8, len: c_int) -> c_int;
        fn g726_decode(s: *mut c_void, amp: *mut i16, data: *const u8, len: c_int) -> c_int;
    }

    /// spandsp's decoders, as a test oracle (see `reference_decoder`).
    pub struct Reference {
        s: NonNull<c_void>,
        g722: bool,
    }

    // SAFETY: as for G722Enc.
    unsafe impl Send for Reference {}

    impl Reference {
        pub fn g722() -> Option<Self> {
            // SAFETY: null asks spandsp to allocate; 64 kbit/s, 16 kHz output.
            let s = NonNull::new(unsafe { g722_decode_init(std::ptr::null_mut(), 64000, 0) })?;
            Some(Reference { s, g722: true })
        }

        pub fn g726(kbps: u32, packing: G726Packing) -> Option<Self> {
            let packing = match packing {
                G726Packing::LittleEndian => PACKING_RIGHT,
                G726Packing::BigEndian => PACKING_LEFT,
            };
            // SAFETY: null asks spandsp to allocate; linear output.
            let s = unsafe { g726_init(std::ptr::null_mut(), kbps as c_int * 1000, 0, packing) };
            Some(Reference {
                s: NonNull::new(s)?,
                g722: false,
            })
        }
    }

    impl Drop for Reference {
        fn drop(&mut self) {
            // SAFETY: allocated by the matching init, freed once.
            unsafe {
                if self.g722 {
                    g722_decode_free(self.s.as_ptr());
                } else {
                    g726_free(self.s.as_ptr());
                }
            }
        }
    }

    impl crate::Decoder for Reference {
        fn sample_rate(&self) -> u32 {
            if self.g722 { 16_000 } else { 8000 }
        }
        fn clock_rate(&self) -> u32 {
            8000
        }
        fn decode(
            &mut self,
            payload: &[u8],
            out: &mut Vec<i16>,
        ) -> Result<usize, crate::DecodeError> {
            let len = c_int::try_from(payload.len()).map_err(|_| crate::DecodeError)?;
            // At most 4 samples per octet (G.726-16); G.722 gives 2.
            let mut pcm = vec![0i16; payload.len() * 4];
            // SAFETY: `payload` is valid for `len` bytes and `pcm` has room for every sample.
            let n = unsafe {
                if self.g722 {
                    g722_decode(self.s.as_ptr(), pcm.as_mut_ptr(), payload.as_ptr(), len)
                } else {
                    g726_decode(self.s.as_ptr(), pcm.as_mut_ptr(), payload.as_ptr(), len)
                }
            };
            let n = usize::try_from(n)
                .map_err(|_| crate::DecodeError)?
                .min(pcm.len());
            out.extend_from_slice(&pcm[..n]);
            Ok(n)
        }
    }

    /// spandsp's G726_PACKING_LEFT puts the first codeword in the high bits (AAL2), RIGHT in
    /// the low bits (RFC 3551).
    const PACKING_LEFT: c_int = 1;
    const PACKING_RIGHT: c_int = 2;

    pub struct G722Enc {
        s: NonNull<c_void>,
        n: usize,
    }

    // SAFETY: the spandsp state is a heap block with no thread affinity, owned by this value.
    unsafe impl Send for G722Enc {}

    impl G722Enc {
        pub fn new(n: usize) -> Option<Self> {
            // SAFETY: null asks spandsp to allocate; 64 kbit/s, 16 kHz input, unpacked octets.
            let s = NonNull::new(unsafe { g722_encode_init(std::ptr::null_mut(), 64000, 0) })?;
            Some(G722Enc { s, n })
        }
    }

    impl Drop for G722Enc {
        fn drop(&mut self) {
            // SAFETY: allocated by g722_encode_init, freed once.
            unsafe { g722_encode_free(self.s.as_ptr()) };
        }
    }

    impl Encoder for G722Enc {
        fn sample_rate(&self) -> u32 {
            16_000
        }
        fn clock_rate(&self) -> u32 {
            8000
        }
        fn frame_samples(&self) -> usize {
            self.n
        }
        fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, EncodeError> {
            check(pcm, self.n)?;
            let mut out = vec![0u8; self.n / 2 + 1];
            // SAFETY: `out` has room for one octet per two samples; `pcm` holds n samples.
            let r = unsafe {
                g722_encode(
                    self.s.as_ptr(),
                    out.as_mut_ptr(),
                    pcm.as_ptr(),
                    pcm.len() as c_int,
                )
            };
            out.truncate(usize::try_from(r).map_err(|_| EncodeError::Library("spandsp"))?);
            Ok(out)
        }
    }

    pub struct G726Enc {
        s: NonNull<c_void>,
        n: usize,
        bytes: usize,
    }

    // SAFETY: as for G722Enc.
    unsafe impl Send for G726Enc {}

    impl G726Enc {
        pub fn new(kbps: u32, packing: G726Packing, n: usize) -> Option<Self> {
            let packing = match packing {
                G726Packing::LittleEndian => PACKING_RIGHT,
                G726Packing::BigEndian => PACKING_LEFT,
            };
            // SAFETY: null asks spandsp to allocate; linear input (G726_ENCODING_LINEAR = 0).
            let s = unsafe { g726_init(std::ptr::null_mut(), kbps as c_int * 1000, 0, packing) };
            Some(G726Enc {
                s: NonNull::new(s)?,
                n,
                bytes: n * (kbps as usize / 8) / 8,
            })
        }
    }

    impl Drop for G726Enc {
        fn drop(&mut self) {
            // SAFETY: allocated by g726_init, freed once.
            unsafe { g726_free(self.s.as_ptr()) };
        }
    }

    impl Encoder for G726Enc {
        fn sample_rate(&self) -> u32 {
            8000
        }
        fn clock_rate(&self) -> u32 {
            8000
        }
        fn frame_samples(&self) -> usize {
            self.n
        }
        fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, EncodeError> {
            check(pcm, self.n)?;
            let mut out = vec![0u8; self.bytes + 1];
            // SAFETY: `out` has room for n codewords of at most 5 bits; `pcm` holds n samples.
            let r = unsafe {
                g726_encode(
                    self.s.as_ptr(),
                    out.as_mut_ptr(),
                    pcm.as_ptr(),
                    pcm.len() as c_int,
                )
            };
            out.truncate(usize::try_from(r).map_err(|_| EncodeError::Library("spandsp"))?);
            Ok(out)
        }
    }
}

#[cfg(have_gsm)]
unsafe extern "C" {
    fn gsm_create() -> *mut c_void;
    fn gsm_destroy(g: *mut c_void);
    fn gsm_encode(g: *mut c_void, sig: *mut i16, out: *mut u8);
}

#[cfg(have_gsm)]
struct GsmEnc {
    g: NonNull<c_void>,
    frames: usize,
}

// SAFETY: the libgsm state is a heap block with no thread affinity, owned by this value.
#[cfg(have_gsm)]
unsafe impl Send for GsmEnc {}

#[cfg(have_gsm)]
impl GsmEnc {
    fn new(frames: usize) -> Option<Self> {
        // SAFETY: no arguments; returns an owned state or null.
        let g = NonNull::new(unsafe { gsm_create() })?;
        Some(GsmEnc { g, frames })
    }
}

#[cfg(have_gsm)]
impl Drop for GsmEnc {
    fn drop(&mut self) {
        // SAFETY: created by gsm_create, destroyed once.
        unsafe { gsm_destroy(self.g.as_ptr()) }
    }
}

#[cfg(have_gsm)]
impl Encoder for GsmEnc {
    fn sample_rate(&self) -> u32 {
        8000
    }
    fn clock_rate(&self) -> u32 {
        8000
    }
    fn frame_samples(&self) -> usize {
        160 * self.frames
    }
    fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, EncodeError> {
        check(pcm, self.frame_samples())?;
        let mut out = Vec::with_capacity(33 * self.frames);
        for chunk in pcm.chunks_exact(160) {
            let mut sig = [0i16; 160];
            sig.copy_from_slice(chunk);
            let mut frame = [0u8; 33];
            // SAFETY: libgsm reads 160 samples and writes 33 bytes.
            unsafe { gsm_encode(self.g.as_ptr(), sig.as_mut_ptr(), frame.as_mut_ptr()) };
            out.extend_from_slice(&frame);
        }
        Ok(out)
    }
}

#[cfg(have_bcg729)]
unsafe extern "C" {
    fn initBcg729EncoderChannel(enable_vad: u8) -> *mut c_void;
    fn closeBcg729EncoderChannel(ctx: *mut c_void);
    fn bcg729Encoder(ctx: *mut c_void, input: *const i16, out: *mut u8, out_len: *mut u8);
}

#[cfg(have_bcg729)]
struct G729Enc {
    ctx: NonNull<c_void>,
    frames: usize,
}

// SAFETY: the bcg729 context is a heap block with no thread affinity, owned by this value.
#[cfg(have_bcg729)]
unsafe impl Send for G729Enc {}

#[cfg(have_bcg729)]
impl G729Enc {
    fn new(frames: usize) -> Option<Self> {
        // SAFETY: VAD off; returns an owned context or null.
        let ctx = NonNull::new(unsafe { initBcg729EncoderChannel(0) })?;
        Some(G729Enc { ctx, frames })
    }
}

#[cfg(have_bcg729)]
impl Drop for G729Enc {
    fn drop(&mut self) {
        // SAFETY: created by initBcg729EncoderChannel, closed once.
        unsafe { closeBcg729EncoderChannel(self.ctx.as_ptr()) }
    }
}

#[cfg(have_bcg729)]
impl Encoder for G729Enc {
    fn sample_rate(&self) -> u32 {
        8000
    }
    fn clock_rate(&self) -> u32 {
        8000
    }
    fn frame_samples(&self) -> usize {
        80 * self.frames
    }
    fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, EncodeError> {
        check(pcm, self.frame_samples())?;
        let mut out = Vec::with_capacity(10 * self.frames);
        for chunk in pcm.chunks_exact(80) {
            let mut bits = [0u8; 10];
            let mut len = 0u8;
            // SAFETY: bcg729 reads 80 samples and writes at most 10 bytes and their count.
            unsafe {
                bcg729Encoder(
                    self.ctx.as_ptr(),
                    chunk.as_ptr(),
                    bits.as_mut_ptr(),
                    &mut len,
                )
            };
            out.extend_from_slice(&bits[..(len as usize).min(10)]);
        }
        Ok(out)
    }
}

#[cfg(have_opus)]
unsafe extern "C" {
    fn opus_encoder_create(
        fs: i32,
        channels: c_int,
        application: c_int,
        error: *mut c_int,
    ) -> *mut c_void;
    fn opus_encoder_destroy(st: *mut c_void);
    fn opus_encode(st: *mut c_void, pcm: *const i16, frame: c_int, data: *mut u8, max: i32) -> i32;
    fn opus_encoder_ctl(st: *mut c_void, request: c_int, ...) -> c_int;
}

#[cfg(have_opus)]
struct OpusEnc {
    st: NonNull<c_void>,
    n: usize,
    channels: usize,
}

// SAFETY: the libopus encoder state is a heap block with no thread affinity, owned by this value.
#[cfg(have_opus)]
unsafe impl Send for OpusEnc {}

#[cfg(have_opus)]
impl OpusEnc {
    fn new(n: usize, fec: bool, stereo: bool) -> Option<Self> {
        const APPLICATION_VOIP: c_int = 2048;
        const SET_INBAND_FEC: c_int = 4012;
        const SET_PACKET_LOSS_PERC: c_int = 4014;
        let mut err = 0;
        let channels = if stereo { 2 } else { 1 };
        // SAFETY: valid rate, channels and application; `err` is a live out-pointer.
        let st = unsafe { opus_encoder_create(48_000, channels, APPLICATION_VOIP, &mut err) };
        let st = NonNull::new(st).filter(|_| err == 0)?;
        if fec {
            // SAFETY: both requests take one int argument.
            unsafe {
                opus_encoder_ctl(st.as_ptr(), SET_INBAND_FEC, 1 as c_int);
                opus_encoder_ctl(st.as_ptr(), SET_PACKET_LOSS_PERC, 20 as c_int);
            }
        }
        Some(OpusEnc {
            st,
            n,
            channels: channels as usize,
        })
    }
}

#[cfg(have_opus)]
impl Drop for OpusEnc {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { opus_encoder_destroy(self.st.as_ptr()) }
    }
}

#[cfg(have_opus)]
impl Encoder for OpusEnc {
    fn sample_rate(&self) -> u32 {
        48_000
    }
    fn clock_rate(&self) -> u32 {
        48_000
    }
    fn frame_samples(&self) -> usize {
        self.n
    }
    fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, EncodeError> {
        check(pcm, self.n)?;
        // Interleaved: the mono signal on every channel.
        let pcm: Vec<i16> = pcm
            .iter()
            .flat_map(|&s| std::iter::repeat_n(s, self.channels))
            .collect();
        let mut out = vec![0u8; 1500];
        // SAFETY: `pcm` holds one frame of a valid duration per channel, `out` 1500 bytes.
        let r = unsafe {
            opus_encode(
                self.st.as_ptr(),
                pcm.as_ptr(),
                self.n as c_int,
                out.as_mut_ptr(),
                1500,
            )
        };
        out.truncate(usize::try_from(r).map_err(|_| EncodeError::Library("libopus"))?);
        Ok(out)
    }
}

#[cfg(have_speex)]
unsafe extern "C" {
    fn speex_encoder_init(mode: *const c_void) -> *mut c_void;
    fn speex_encoder_destroy(st: *mut c_void);
    fn speex_encoder_ctl(st: *mut c_void, request: c_int, ptr: *mut c_void) -> c_int;
    fn speex_encode_int(
        st: *mut c_void,
        pcm: *mut i16,
        bits: *mut crate::speex::SpeexBits,
    ) -> c_int;
    fn speex_bits_reset(bits: *mut crate::speex::SpeexBits);
    fn speex_bits_write(bits: *mut crate::speex::SpeexBits, out: *mut i8, max: c_int) -> c_int;
}

#[cfg(have_speex)]
struct SpeexEnc {
    st: NonNull<c_void>,
    bits: Box<crate::speex::SpeexBits>,
    rate: u32,
    frame: usize,
    frames: usize,
}

// SAFETY: the libspeex state and bits are heap blocks with no thread affinity, owned by this value.
#[cfg(have_speex)]
unsafe impl Send for SpeexEnc {}

#[cfg(have_speex)]
impl SpeexEnc {
    fn new(rate: u32, frames: usize) -> Option<Self> {
        use crate::speex::{SPEEX_GET_FRAME_SIZE, mode_for, speex_lib_get_mode};
        const SET_QUALITY: c_int = 4;
        // SAFETY: mode ids 0..=2 are valid; libspeex returns a static mode or null.
        let mode = unsafe { speex_lib_get_mode(mode_for(rate)?) };
        if mode.is_null() {
            return None;
        }
        // SAFETY: `mode` is a valid static SpeexMode.
        let st = NonNull::new(unsafe { speex_encoder_init(mode) })?;
        let mut q: c_int = 8;
        let mut frame: c_int = 0;
        // SAFETY: both requests read or write one int.
        unsafe {
            speex_encoder_ctl(st.as_ptr(), SET_QUALITY, (&mut q as *mut c_int).cast());
            speex_encoder_ctl(
                st.as_ptr(),
                SPEEX_GET_FRAME_SIZE,
                (&mut frame as *mut c_int).cast(),
            );
        }
        let enc = SpeexEnc {
            st,
            bits: crate::speex::SpeexBits::new(),
            rate,
            frame: usize::try_from(frame).unwrap_or(0),
            frames,
        };
        (enc.frame * 50 == rate as usize).then_some(enc)
    }
}

#[cfg(have_speex)]
impl Drop for SpeexEnc {
    fn drop(&mut self) {
        // SAFETY: created by speex_encoder_init, destroyed once.
        unsafe { speex_encoder_destroy(self.st.as_ptr()) }
    }
}

#[cfg(have_speex)]
impl Encoder for SpeexEnc {
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn clock_rate(&self) -> u32 {
        self.rate
    }
    fn frame_samples(&self) -> usize {
        self.frame * self.frames
    }
    fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, EncodeError> {
        check(pcm, self.frame_samples())?;
        // SAFETY: the bits were initialised by SpeexBits::new.
        unsafe { speex_bits_reset(&mut *self.bits) };
        let mut buf = pcm.to_vec();
        for chunk in buf.chunks_exact_mut(self.frame) {
            // SAFETY: `chunk` is one frame; libspeex may scale it in place.
            unsafe { speex_encode_int(self.st.as_ptr(), chunk.as_mut_ptr(), &mut *self.bits) };
        }
        let mut out = vec![0u8; 2048];
        // SAFETY: `out` has 2048 bytes; libspeex writes at most that and pads with a terminator.
        let n = unsafe { speex_bits_write(&mut *self.bits, out.as_mut_ptr().cast(), 2048) };
        out.truncate(usize::try_from(n).map_err(|_| EncodeError::Library("libspeex"))?);
        Ok(out)
    }
}

#[cfg(have_amrnb)]
unsafe extern "C" {
    fn Encoder_Interface_init(dtx: c_int) -> *mut c_void;
    fn Encoder_Interface_exit(state: *mut c_void);
    fn Encoder_Interface_Encode(
        state: *mut c_void,
        mode: c_int,
        speech: *mut i16,
        out: *mut u8,
        force_speech: c_int,
    ) -> c_int;
}

#[cfg(have_voamrwbenc)]
unsafe extern "C" {
    fn E_IF_init() -> *mut c_void;
    fn E_IF_encode(
        state: *mut c_void,
        mode: c_int,
        speech: *mut i16,
        out: *mut u8,
        dtx: c_int,
    ) -> c_int;
    fn E_IF_exit(state: *mut c_void);
}

/// AMR (opencore-amrnb) or AMR-WB (vo-amrwbenc): the libraries make storage-format frames,
/// which [`crate::amr::pack`] puts into one RFC 4867 payload.
#[cfg(any(have_amrnb, have_voamrwbenc))]
struct AmrEnc {
    st: NonNull<c_void>,
    layout: crate::amr::Layout,
    mode: c_int,
    frames: usize,
}

// SAFETY: the encoder state is a heap block with no thread affinity, owned by this value.
#[cfg(any(have_amrnb, have_voamrwbenc))]
unsafe impl Send for AmrEnc {}

#[cfg(any(have_amrnb, have_voamrwbenc))]
impl AmrEnc {
    #[cfg(have_amrnb)]
    fn narrowband(layout: crate::amr::Layout, mode: c_int, frames: usize) -> Option<Self> {
        // SAFETY: DTX off; returns an owned state or null.
        let st = NonNull::new(unsafe { Encoder_Interface_init(0) })?;
        Some(AmrEnc {
            st,
            layout,
            mode: mode.clamp(0, 7),
            frames,
        })
    }

    #[cfg(have_voamrwbenc)]
    fn wideband(layout: crate::amr::Layout, mode: c_int, frames: usize) -> Option<Self> {
        // SAFETY: no arguments; returns an owned state or null.
        let st = NonNull::new(unsafe { E_IF_init() })?;
        Some(AmrEnc {
            st,
            layout,
            mode: mode.clamp(0, 8),
            frames,
        })
    }

    fn one(&mut self, pcm: &[i16], out: &mut [u8; 64]) -> c_int {
        // The AMR encoders pre-process (high-pass, halve) their input in place despite the
        // `const` in their headers: they get a copy.
        let mut speech = [0i16; 320];
        let n = pcm.len().min(320);
        speech[..n].copy_from_slice(&pcm[..n]);
        if self.layout.wideband {
            #[cfg(have_voamrwbenc)]
            // SAFETY: `speech` is 320 samples, `out` 64 bytes (a frame is at most 61).
            return unsafe {
                E_IF_encode(
                    self.st.as_ptr(),
                    self.mode,
                    speech.as_mut_ptr(),
                    out.as_mut_ptr(),
                    0,
                )
            };
        } else {
            #[cfg(have_amrnb)]
            // SAFETY: `speech` is 160 samples, `out` 64 bytes (a frame is at most 32).
            return unsafe {
                Encoder_Interface_Encode(
                    self.st.as_ptr(),
                    self.mode,
                    speech.as_mut_ptr(),
                    out.as_mut_ptr(),
                    0,
                )
            };
        }
        #[allow(unreachable_code)]
        -1
    }
}

#[cfg(any(have_amrnb, have_voamrwbenc))]
impl Drop for AmrEnc {
    fn drop(&mut self) {
        if self.layout.wideband {
            #[cfg(have_voamrwbenc)]
            // SAFETY: created by E_IF_init, freed once.
            unsafe {
                E_IF_exit(self.st.as_ptr())
            };
        } else {
            #[cfg(have_amrnb)]
            // SAFETY: created by Encoder_Interface_init, freed once.
            unsafe {
                Encoder_Interface_exit(self.st.as_ptr())
            };
        }
    }
}

#[cfg(any(have_amrnb, have_voamrwbenc))]
impl Encoder for AmrEnc {
    fn sample_rate(&self) -> u32 {
        if self.layout.wideband { 16_000 } else { 8000 }
    }
    fn clock_rate(&self) -> u32 {
        self.sample_rate()
    }
    fn frame_samples(&self) -> usize {
        crate::amr::frame_samples(self.layout.wideband) * self.frames
    }
    fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, EncodeError> {
        check(pcm, self.frame_samples())?;
        let n = crate::amr::frame_samples(self.layout.wideband);
        let mut frames = Vec::with_capacity(self.frames);
        for chunk in pcm.chunks_exact(n) {
            let mut buf = [0u8; 64];
            let len = self.one(chunk, &mut buf);
            let len = usize::try_from(len).ok().filter(|&l| (1..=61).contains(&l));
            let len = len.ok_or(EncodeError::Library("AMR encoder"))?;
            frames.push(buf[..len].to_vec());
        }
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        Ok(crate::amr::pack(self.layout, &refs))
    }
}
