//! AMR (3GPP TS 26.071) and AMR-WB (TS 26.171) in RTP, RFC 4867, decoded by opencore-amr
//! (PacketVideo's 3GPP reference code as maintained for Android, packaged by Debian).
//!
//! The RTP payload is taken apart here (RFC 4867 §4.3 bandwidth-efficient, the default, and
//! §4.4 octet-aligned with `octet-align=1`, optionally with `crc=1`): the CMR, the table of
//! contents (one entry per frame, F bit set while more follow), and the speech bits of each
//! frame, which become one frame of the storage format of RFC 4867 §5.3 (a ToC octet then the
//! bits, octet-padded) that the library decodes. SID frames (FT 8 for AMR, 9 for AMR-WB)
//! give comfort noise; NO_DATA (FT 15) and AMR-WB's SPEECH_LOST (FT 14) let the decoder
//! conceal that 20 ms. With `crc=1` the CRC octets are skipped, not checked (they cover the
//! class A bits, whose order per mode is in TS 26.101 annex B). Interleaving (§4.4.1) and robust sorting need frames from other
//! packets and are refused at setup, as is more than one channel.

use crate::{CodecSpec, DecodeError, Undecodable};

/// Speech bits per frame type (RFC 4867 §3.6, TS 26.101 table 1a, TS 26.201 table 1a);
/// `None` for types this payload format does not carry.
pub fn frame_bits(wideband: bool, ft: u8) -> Option<usize> {
    const NB: [usize; 9] = [95, 103, 118, 134, 148, 159, 204, 244, 39];
    const WB: [usize; 10] = [132, 177, 253, 285, 317, 365, 397, 461, 477, 40];
    let table: &[usize] = if wideband { &WB } else { &NB };
    match ft {
        15 => Some(0),             // NO_DATA
        14 if wideband => Some(0), // SPEECH_LOST
        _ => table.get(ft as usize).copied(),
    }
}

/// Samples per 20 ms frame.
pub fn frame_samples(wideband: bool) -> usize {
    if wideband { 320 } else { 160 }
}

/// Room for the largest storage frame: one ToC octet and 477 bits.
pub const STORAGE_BYTES: usize = 64;
pub type StorageFrame = [u8; STORAGE_BYTES];

/// How the payloads of one payload type are laid out (the fmtp of RFC 4867 §8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub wideband: bool,
    pub octet_aligned: bool,
    pub crc: bool,
}

impl Layout {
    pub fn from_spec(spec: &CodecSpec, wideband: bool) -> Result<Self, Undecodable> {
        let on = |k: &str| spec.fmtp_param(k).map(|v| v.trim_matches('"')) == Some("1");
        let octet_aligned = on("octet-align");
        if spec.channels > 1 {
            return Err(Undecodable::BadParameters(format!(
                "{}: {} channels (only mono is supported)",
                spec.name, spec.channels
            )));
        }
        if spec.fmtp_param("interleaving").is_some() || on("robust-sorting") {
            return Err(Undecodable::BadParameters(format!(
                "{}: interleaving and robust sorting are not supported",
                spec.name
            )));
        }
        Ok(Layout {
            wideband,
            octet_aligned,
            // crc and robust-sorting imply octet-align (RFC 4867 §8.1).
            crc: octet_aligned && on("crc"),
        })
    }
}

/// MSB-first reader over a payload.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn left(&self) -> usize {
        self.data.len() * 8 - self.pos
    }

    fn read(&mut self, n: usize) -> Option<u32> {
        if n > self.left() {
            return None;
        }
        let mut v = 0u32;
        for _ in 0..n {
            let bit = (self.data[self.pos / 8] >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | bit as u32;
            self.pos += 1;
        }
        Some(v)
    }
}

/// Copies `n` bits starting at `from` in `src` to the start of `dst` (MSB first).
fn copy_bits(src: &[u8], from: usize, n: usize, dst: &mut [u8]) {
    for i in 0..n {
        let s = from + i;
        let bit = (src[s / 8] >> (7 - s % 8)) & 1;
        dst[i / 8] |= bit << (7 - i % 8);
    }
}

/// One RFC 4867 payload to storage-format frames (appended to `frames`).
pub fn unpack(
    layout: Layout,
    payload: &[u8],
    frames: &mut Vec<StorageFrame>,
) -> Result<(), DecodeError> {
    let mut toc = Vec::with_capacity(4);
    let mut r = Bits {
        data: payload,
        pos: 0,
    };
    if layout.octet_aligned {
        // §4.4.1: CMR (4) + reserved (4), then one ToC octet per frame: F FT(4) Q P P.
        r.read(8).ok_or(DecodeError)?;
        loop {
            let b = r.read(8).ok_or(DecodeError)? as u8;
            toc.push(((b >> 3) & 0x0f, (b >> 2) & 1));
            if b & 0x80 == 0 {
                break;
            }
        }
    } else {
        // §4.3.1: CMR (4), then 6-bit ToC entries F FT(4) Q, no padding between.
        r.read(4).ok_or(DecodeError)?;
        loop {
            let e = r.read(6).ok_or(DecodeError)? as u8;
            toc.push(((e >> 1) & 0x0f, e & 1));
            if e & 0x20 == 0 {
                break;
            }
        }
    }
    let sizes: Vec<usize> = toc
        .iter()
        .map(|&(ft, _)| frame_bits(layout.wideband, ft).ok_or(DecodeError))
        .collect::<Result<_, _>>()?;
    if layout.crc {
        // §4.4.2.1: one CRC octet per frame that has speech or SID bits.
        let crcs = sizes.iter().filter(|&&s| s > 0).count();
        if crcs * 8 > r.left() {
            return Err(DecodeError);
        }
        r.pos += crcs * 8;
    }
    for (&(ft, q), &bits) in toc.iter().zip(&sizes) {
        // Octet-aligned frames are each padded to an octet (§4.4.2).
        let take = if layout.octet_aligned {
            bits.div_ceil(8) * 8
        } else {
            bits
        };
        if take > r.left() {
            return Err(DecodeError);
        }
        let mut f = [0u8; STORAGE_BYTES];
        f[0] = (ft << 3) | (q << 2);
        copy_bits(payload, r.pos, bits, &mut f[1..]);
        r.pos += take;
        frames.push(f);
    }
    Ok(())
}

/// Storage-format frames (each a ToC octet then the octet-padded bits, as the encoders give
/// them) to one RFC 4867 payload with no mode request (CMR 15).
#[cfg(feature = "encode")]
pub fn pack(layout: Layout, frames: &[&[u8]]) -> Vec<u8> {
    struct W {
        out: Vec<u8>,
        n: usize,
    }
    impl W {
        fn put(&mut self, v: u32, bits: usize) {
            for i in (0..bits).rev() {
                if self.n.is_multiple_of(8) {
                    self.out.push(0);
                }
                let bit = ((v >> i) & 1) as u8;
                if let Some(last) = self.out.last_mut() {
                    *last |= bit << (7 - self.n % 8);
                }
                self.n += 1;
            }
        }
    }
    let mut w = W {
        out: Vec::new(),
        n: 0,
    };
    let last = frames.len().saturating_sub(1);
    let head = |f: &[u8]| {
        let h = f.first().copied().unwrap_or(15 << 3);
        ((h >> 3) & 0x0f, (h >> 2) & 1)
    };
    if layout.octet_aligned {
        w.put(0xf0, 8);
        for (i, f) in frames.iter().enumerate() {
            let (ft, q) = head(f);
            w.put(
                (((i != last) as u32) << 7) | ((ft as u32) << 3) | ((q as u32) << 2),
                8,
            );
        }
        for f in frames {
            let bits = frame_bits(layout.wideband, head(f).0).unwrap_or(0);
            for &b in f.iter().skip(1).take(bits.div_ceil(8)) {
                w.put(b as u32, 8);
            }
        }
    } else {
        w.put(15, 4);
        for (i, f) in frames.iter().enumerate() {
            let (ft, q) = head(f);
            w.put(
                (((i != last) as u32) << 5) | ((ft as u32) << 1) | q as u32,
                6,
            );
        }
        for f in frames {
            let bits = frame_bits(layout.wideband, head(f).0).unwrap_or(0);
            for i in 0..bits {
                let b = f.get(1 + i / 8).copied().unwrap_or(0);
                w.put(((b >> (7 - i % 8)) & 1) as u32, 1);
            }
        }
    }
    w.out
}

#[cfg(any(have_amrnb, have_amrwb))]
pub use ffi::Amr;

#[cfg(any(have_amrnb, have_amrwb))]
mod ffi {
    use std::ffi::{c_int, c_void};
    use std::ptr::NonNull;

    use super::{Layout, StorageFrame, frame_samples, unpack};
    use crate::{DecodeError, Decoder};

    #[cfg(have_amrnb)]
    unsafe extern "C" {
        fn Decoder_Interface_init() -> *mut c_void;
        fn Decoder_Interface_exit(state: *mut c_void);
        fn Decoder_Interface_Decode(
            state: *mut c_void,
            input: *const u8,
            out: *mut i16,
            bfi: c_int,
        );
    }

    #[cfg(have_amrwb)]
    unsafe extern "C" {
        fn D_IF_init() -> *mut c_void;
        fn D_IF_decode(state: *mut c_void, bits: *const u8, synth: *mut i16, bfi: c_int);
        fn D_IF_exit(state: *mut c_void);
    }

    pub struct Amr {
        st: NonNull<c_void>,
        layout: Layout,
        frames: Vec<StorageFrame>,
    }

    // SAFETY: the opencore decoder state is a heap block with no thread affinity, owned by this
    // value and only used through &mut self.
    unsafe impl Send for Amr {}

    impl Amr {
        /// None when this build lacks the library for that band.
        pub fn new(layout: Layout) -> Option<Self> {
            let st: *mut c_void = if layout.wideband {
                #[cfg(have_amrwb)]
                // SAFETY: no arguments; returns an owned state or null.
                let st = unsafe { D_IF_init() };
                #[cfg(not(have_amrwb))]
                let st = std::ptr::null_mut();
                st
            } else {
                #[cfg(have_amrnb)]
                // SAFETY: no arguments; returns an owned state or null.
                let st = unsafe { Decoder_Interface_init() };
                #[cfg(not(have_amrnb))]
                let st = std::ptr::null_mut();
                st
            };
            Some(Amr {
                st: NonNull::new(st)?,
                layout,
                frames: Vec::new(),
            })
        }

        /// Decodes one storage frame (always STORAGE_BYTES long, more than the library reads).
        fn frame(&mut self, f: &StorageFrame, out: &mut Vec<i16>) {
            let mut pcm = [0i16; 320];
            let n = frame_samples(self.layout.wideband);
            if self.layout.wideband {
                #[cfg(have_amrwb)]
                // SAFETY: `f` holds a ToC octet and more bytes than its frame type needs, `pcm`
                // the 320 samples the decoder writes; the state is ours.
                unsafe {
                    D_IF_decode(self.st.as_ptr(), f.as_ptr(), pcm.as_mut_ptr(), 0)
                };
            } else {
                #[cfg(have_amrnb)]
                // SAFETY: as above, with 160 samples.
                unsafe {
                    Decoder_Interface_Decode(self.st.as_ptr(), f.as_ptr(), pcm.as_mut_ptr(), 0)
                };
            }
            out.extend_from_slice(&pcm[..n]);
        }
    }

    impl Drop for Amr {
        fn drop(&mut self) {
            if self.layout.wideband {
                #[cfg(have_amrwb)]
                // SAFETY: created by D_IF_init, freed once.
                unsafe {
                    D_IF_exit(self.st.as_ptr())
                };
            } else {
                #[cfg(have_amrnb)]
                // SAFETY: created by Decoder_Interface_init, freed once.
                unsafe {
                    Decoder_Interface_exit(self.st.as_ptr())
                };
            }
        }
    }

    impl Decoder for Amr {
        fn sample_rate(&self) -> u32 {
            if self.layout.wideband { 16_000 } else { 8000 }
        }

        fn clock_rate(&self) -> u32 {
            self.sample_rate()
        }

        fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
            let mut frames = std::mem::take(&mut self.frames);
            frames.clear();
            let r = unpack(self.layout, payload, &mut frames);
            let start = out.len();
            if r.is_ok() {
                for f in &frames {
                    self.frame(f, out);
                }
            }
            self.frames = frames;
            r.map(|()| out.len() - start)
        }

        fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> usize {
            let n = frame_samples(self.layout.wideband);
            // A NO_DATA frame: the decoder conceals (or goes on with comfort noise after SID).
            let mut f = [0u8; super::STORAGE_BYTES];
            f[0] = (15 << 3) | (1 << 2);
            for _ in 0..samples / n {
                self.frame(&f, out);
            }
            samples / n * n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(wideband: bool, octet_aligned: bool) -> Layout {
        Layout {
            wideband,
            octet_aligned,
            crc: false,
        }
    }

    #[test]
    fn bandwidth_efficient_single_frame_by_hand() {
        // RFC 4867 §4.3.5.1 layout: CMR=1 (4 bits), ToC F=0 FT=0 Q=1 (6 bits), then 95 bits.
        // Speech bits: all ones. Total 105 bits -> 14 octets.
        let mut p = vec![0u8; 14];
        let mut w = |pos: usize, bit: u8| p[pos / 8] |= bit << (7 - pos % 8);
        for (i, b) in [0, 0, 0, 1, 0, 0, 0, 0, 0, 1].into_iter().enumerate() {
            w(i, b);
        }
        for i in 0..95 {
            w(10 + i, 1);
        }
        let mut frames = Vec::new();
        unpack(layout(false, false), &p, &mut frames).expect("valid");
        assert_eq!(frames.len(), 1);
        let f = &frames[0];
        assert_eq!(f[0], 0x04); // FT 0, Q 1
        assert!(f[1..12].iter().all(|&b| b == 0xff));
        assert_eq!(f[12], 0xfe); // 95 = 11*8 + 7
        assert_eq!(f[13], 0);
    }

    #[test]
    fn octet_aligned_two_frames_and_no_data() {
        // CMR 15, ToC: F=1 FT=8 (SID, 39 bits) Q=1; F=1 FT=15 Q=1; F=0 FT=8 Q=1.
        let mut p = vec![
            0xf0,
            0x80 | (8 << 3) | 4,
            0x80 | (15 << 3) | 4,
            (8 << 3) | 4,
        ];
        p.extend([0xaa; 5]);
        p.extend([0x55; 5]);
        let mut frames = Vec::new();
        unpack(layout(false, true), &p, &mut frames).expect("valid");
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0][0], 0x44);
        assert_eq!(frames[0][1..6], [0xaa; 5], "the 40th bit is 0 already");
        assert_eq!(frames[1][0], 0x7c);
        assert_eq!(frames[2][1..6], [0x55, 0x55, 0x55, 0x55, 0x54], "39 bits");
        // One octet short.
        assert!(unpack(layout(false, true), &p[..p.len() - 1], &mut Vec::new()).is_err());
    }

    #[test]
    fn reserved_frame_types_and_truncation_are_errors() {
        let mut frames = Vec::new();
        assert!(unpack(layout(false, true), &[0xf0, 12 << 3], &mut frames).is_err());
        assert!(unpack(layout(true, false), &[], &mut frames).is_err());
        assert!(unpack(layout(true, false), &[0xf1, 0xff], &mut frames).is_err());
    }

    #[cfg(feature = "encode")]
    #[test]
    fn pack_then_unpack_both_layouts() {
        let mut a = [0u8; 61];
        a[0] = (8 << 3) | 4; // WB FT 8: 477 bits
        for (i, b) in a.iter_mut().enumerate().skip(1) {
            *b = (i as u8).wrapping_mul(37);
        }
        a[60] &= 0xf8; // 477 = 59*8 + 5
        let sid = [(9 << 3) | 4, 0x12, 0x34, 0x56, 0x78, 0x9a];
        for oa in [false, true] {
            let l = layout(true, oa);
            let p = pack(l, &[&a, &sid]);
            let mut frames = Vec::new();
            unpack(l, &p, &mut frames).expect("round trip");
            assert_eq!(frames.len(), 2);
            assert_eq!(frames[0][..61], a);
            assert_eq!(frames[1][..6], sid);
        }
    }
}
