//! MP3 (MPEG-1/2/2.5 Layer III) through libmp3lame, the reference free encoder, with our own
//! small extern block.
//!
//! CBR at the recording's own rate, so 8 kHz gives MPEG-2.5 and 16 kHz MPEG-2 Layer III: 32
//! kbit/s at 8-12 kHz, 48 at 16 kHz, 64 at 22-24 kHz, 96 at 32-48 kHz (stereo, joint stereo
//! chosen frame by frame). CBR keeps a cut file's duration computable from its size.
//!
//! On disk at creation: an ID3v2 tag (`TSSE voxtap`), a LAME "Info" frame (a frame that
//! decoders skip, carrying the frame count, the encoder delay and padding for gapless playback)
//! and two silent frames, counted in the delay (ffmpeg accepts a stream only once it finds two
//! frames after the Info frame).
//! Then the frames as LAME emits them, flushed every `flush_secs`; `finish` rewrites the Info
//! frame with the counts. A kill -9 loses what was not flushed plus LAME's lag (its lookahead
//! and the frame being filled); [`repair`] cuts a torn last frame and rewrites the Info frame.

use std::ffi::{CStr, c_int};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::sink::PooledFile;
use super::{
    AudioError, AudioFile, Finished, Interleave, audio_err, flush_every_frames, invalid, io_err,
    part_path,
};
use crate::StoreError;

const NAME: &str = "MP3";
/// Bytes after the Info frame's side info: `Info`, flags, frames, bytes, TOC, quality.
const XING_LEN: usize = 120;
/// The LAME extension after the Xing part.
const LAME_LEN: usize = 36;
const ID3_TEXT: &[u8] = b"voxtap";
/// Silent frames written at creation.
const SILENT_FRAMES: u32 = 2;

#[allow(non_camel_case_types)]
mod ffi {
    use std::ffi::{c_char, c_int};

    #[repr(C)]
    pub struct lame_global_flags {
        _opaque: [u8; 0],
    }

    pub const VBR_OFF: c_int = 0;
    pub const MODE_JOINT_STEREO: c_int = 1;
    pub const MODE_MONO: c_int = 3;

    #[link(name = "mp3lame")]
    unsafe extern "C" {
        pub fn lame_init() -> *mut lame_global_flags;
        pub fn lame_close(gfp: *mut lame_global_flags) -> c_int;
        pub fn lame_set_num_channels(gfp: *mut lame_global_flags, v: c_int) -> c_int;
        pub fn lame_set_in_samplerate(gfp: *mut lame_global_flags, v: c_int) -> c_int;
        pub fn lame_set_out_samplerate(gfp: *mut lame_global_flags, v: c_int) -> c_int;
        pub fn lame_set_brate(gfp: *mut lame_global_flags, v: c_int) -> c_int;
        pub fn lame_set_mode(gfp: *mut lame_global_flags, v: c_int) -> c_int;
        pub fn lame_set_VBR(gfp: *mut lame_global_flags, v: c_int) -> c_int;
        pub fn lame_set_quality(gfp: *mut lame_global_flags, v: c_int) -> c_int;
        pub fn lame_set_bWriteVbrTag(gfp: *mut lame_global_flags, v: c_int) -> c_int;
        pub fn lame_set_write_id3tag_automatic(gfp: *mut lame_global_flags, v: c_int);
        pub fn lame_init_params(gfp: *mut lame_global_flags) -> c_int;
        pub fn lame_encode_buffer_interleaved(
            gfp: *mut lame_global_flags,
            pcm: *mut i16,
            num_samples: c_int,
            mp3buf: *mut u8,
            mp3buf_size: c_int,
        ) -> c_int;
        pub fn lame_encode_buffer(
            gfp: *mut lame_global_flags,
            left: *const i16,
            right: *const i16,
            num_samples: c_int,
            mp3buf: *mut u8,
            mp3buf_size: c_int,
        ) -> c_int;
        pub fn lame_encode_flush(
            gfp: *mut lame_global_flags,
            mp3buf: *mut u8,
            size: c_int,
        ) -> c_int;
        pub fn lame_get_encoder_delay(gfp: *const lame_global_flags) -> c_int;
        pub fn lame_get_encoder_padding(gfp: *const lame_global_flags) -> c_int;
        pub fn lame_get_frameNum(gfp: *const lame_global_flags) -> c_int;
        pub fn lame_get_lowpassfreq(gfp: *const lame_global_flags) -> c_int;
        pub fn get_lame_short_version() -> *const c_char;
    }
}

struct Lame(*mut ffi::lame_global_flags);

impl Drop for Lame {
    fn drop(&mut self) {
        // SAFETY: from lame_init, closed only here.
        unsafe { ffi::lame_close(self.0) };
    }
}

/// CBR bit rate for speech at a rate (kbit/s, both channels); each leaves room for the Info frame.
fn bitrate(sample_rate: u32) -> u32 {
    match sample_rate {
        0..=12_000 => 32,
        12_001..=16_000 => 48,
        16_001..=24_000 => 64,
        _ => 96,
    }
}

/// The MPEG layout of a stream: what its frame headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5 (the header's two version bits).
    version: u8,
    rate_index: u8,
    sample_rate: u32,
    mono: bool,
}

impl Layout {
    fn new(sample_rate: u32, channels: u16) -> Option<Layout> {
        let (version, rate_index) = match sample_rate {
            44_100 => (3, 0),
            48_000 => (3, 1),
            32_000 => (3, 2),
            22_050 => (2, 0),
            24_000 => (2, 1),
            16_000 => (2, 2),
            11_025 => (0, 0),
            12_000 => (0, 1),
            8_000 => (0, 2),
            _ => return None,
        };
        Some(Layout {
            version,
            rate_index,
            sample_rate,
            mono: channels == 1,
        })
    }

    fn mpeg1(&self) -> bool {
        self.version == 3
    }

    fn samples_per_frame(&self) -> u64 {
        if self.mpeg1() { 1152 } else { 576 }
    }

    fn side_info(&self) -> usize {
        match (self.mpeg1(), self.mono) {
            (true, false) => 32,
            (true, true) => 17,
            (false, false) => 17,
            (false, true) => 9,
        }
    }

    fn bitrates(&self) -> [u32; 15] {
        if self.mpeg1() {
            [
                0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
            ]
        } else {
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]
        }
    }

    fn frame_len(&self, kbps: u32, padding: bool) -> usize {
        let per = if self.mpeg1() { 144_000 } else { 72_000 };
        (per * kbps / self.sample_rate) as usize + usize::from(padding)
    }

    /// The header of an unpadded, unprotected frame at `kbps`.
    fn header(&self, kbps: u32) -> [u8; 4] {
        let index = self.bitrates().iter().position(|&b| b == kbps).unwrap_or(0) as u8;
        let mode = if self.mono { 3 } else { 1 }; // mono or joint stereo
        [
            0xff,
            0xe0 | self.version << 3 | 0b01 << 1 | 1, // layer III, no CRC
            index << 4 | self.rate_index << 2,
            mode << 6,
        ]
    }

    /// The length of the frame whose header is `h`, if `h` is a frame of this stream.
    fn frame_at(&self, h: &[u8]) -> Option<usize> {
        if h.len() < 4 || h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
            return None;
        }
        let version = (h[1] >> 3) & 3;
        let layer = (h[1] >> 1) & 3;
        let (index, rate, padding) = (h[2] >> 4, (h[2] >> 2) & 3, h[2] & 2 != 0);
        if version != self.version || layer != 1 || rate != self.rate_index {
            return None;
        }
        if index == 0 || index == 15 {
            return None;
        }
        Some(self.frame_len(self.bitrates()[usize::from(index)], padding))
    }
}

/// What the Info frame says; rewritten at finish and by repair.
struct InfoTag {
    frames: u32,
    /// Bytes from the Info frame's first byte to the end of the audio.
    bytes: u32,
    delay: u32,
    padding: u32,
    lowpass_hz: u32,
    music_crc: u16,
}

/// A LAME-style Info frame: a Layer III frame with zero side info (no audio), the Xing counts,
/// a linear TOC (CBR) and the LAME extension with the encoder delay and padding.
fn info_frame(layout: &Layout, kbps: u32, version: &str, tag: &InfoTag) -> Vec<u8> {
    let mut f = vec![0u8; layout.frame_len(kbps, false)];
    f[..4].copy_from_slice(&layout.header(kbps));
    let x = 4 + layout.side_info();
    f[x..x + 4].copy_from_slice(b"Info");
    f[x + 4..x + 8].copy_from_slice(&0x0fu32.to_be_bytes()); // frames, bytes, TOC, quality
    f[x + 8..x + 12].copy_from_slice(&tag.frames.to_be_bytes());
    f[x + 12..x + 16].copy_from_slice(&tag.bytes.to_be_bytes());
    for i in 0..100 {
        f[x + 16 + i] = (i * 256 / 100) as u8;
    }
    f[x + 116..x + 120].copy_from_slice(&50u32.to_be_bytes());
    let l = x + XING_LEN;
    let mut name = format!("LAME{version}").into_bytes();
    name.resize(9, b' ');
    f[l..l + 9].copy_from_slice(&name[..9]);
    f[l + 9] = 0x01; // tag revision 0, CBR
    f[l + 10] = (tag.lowpass_hz / 100).min(255) as u8;
    f[l + 20] = kbps.min(255) as u8;
    let dp = (tag.delay.min(4095) << 12) | tag.padding.min(4095);
    f[l + 21..l + 24].copy_from_slice(&dp.to_be_bytes()[1..]);
    f[l + 28..l + 32].copy_from_slice(&tag.bytes.to_be_bytes());
    f[l + 32..l + 34].copy_from_slice(&tag.music_crc.to_be_bytes());
    let crc = crc16(0, &f[..l + 34]);
    f[l + 34..l + 36].copy_from_slice(&crc.to_be_bytes());
    f
}

/// The CRC-16 of LAME tags (polynomial 0x8005 reflected, initial 0).
fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// An ID3v2.4 tag naming the software.
fn id3v2() -> Vec<u8> {
    let frame_len = 1 + ID3_TEXT.len();
    let tag_len = 10 + frame_len;
    let mut t = Vec::with_capacity(10 + tag_len);
    t.extend_from_slice(b"ID3\x04\x00\x00");
    t.extend_from_slice(&syncsafe(tag_len as u32));
    t.extend_from_slice(b"TSSE");
    t.extend_from_slice(&syncsafe(frame_len as u32));
    t.extend_from_slice(&[0, 0, 3]); // flags, UTF-8
    t.extend_from_slice(ID3_TEXT);
    t
}

fn syncsafe(n: u32) -> [u8; 4] {
    [
        (n >> 21) as u8 & 0x7f,
        (n >> 14) as u8 & 0x7f,
        (n >> 7) as u8 & 0x7f,
        n as u8 & 0x7f,
    ]
}

fn lame_version() -> String {
    // SAFETY: a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::get_lame_short_version()) }
        .to_string_lossy()
        .into_owned()
}

pub struct Mp3File {
    part: PathBuf,
    final_path: PathBuf,
    out: PooledFile,
    lame: Lame,
    layout: Layout,
    kbps: u32,
    channels: usize,
    interleave: Interleave,
    frames: u64,
    /// Offset of the Info frame (the ID3v2 tag's length).
    info_at: u64,
    info_len: u64,
    /// Bytes after the Info frame, the silent frames included.
    audio_bytes: u64,
    /// LAME's delay and the silent frames.
    delay: u32,
    music_crc: u16,
    frames_since_flush: u64,
    flush_every: u64,
    scratch: Vec<i16>,
    mp3buf: Vec<u8>,
}

// SAFETY: the LAME context is owned by this value alone and has no thread affinity; the
// pointer is only used through `&mut self`.
unsafe impl Send for Mp3File {}

impl Mp3File {
    pub fn create(
        final_path: PathBuf,
        channels: u16,
        sample_rate: u32,
        flush_secs: f64,
    ) -> Result<Mp3File, StoreError> {
        let part = part_path(&final_path);
        let Some(layout) = Layout::new(sample_rate, channels) else {
            return Err(audio_err(
                &part,
                AudioError::Rate {
                    format: NAME,
                    rate: sample_rate,
                    accepted: "MPEG audio has 8000, 11025, 12000, 16000, 22050, 24000, 32000, \
                               44100 and 48000 Hz",
                },
            ));
        };
        let kbps = bitrate(sample_rate);
        let lame_err = |what: &str| audio_err(&part, AudioError::Lame(what.to_owned()));
        // SAFETY: lame_init has no preconditions; null means out of memory.
        let raw = unsafe { ffi::lame_init() };
        if raw.is_null() {
            return Err(lame_err("out of memory"));
        }
        let lame = Lame(raw);
        let mode = if channels == 1 {
            ffi::MODE_MONO
        } else {
            ffi::MODE_JOINT_STEREO
        };
        // SAFETY: a fresh context, configured before lame_init_params as LAME requires.
        let status = unsafe {
            ffi::lame_set_num_channels(raw, c_int::from(channels));
            ffi::lame_set_in_samplerate(raw, sample_rate as c_int);
            ffi::lame_set_out_samplerate(raw, sample_rate as c_int);
            ffi::lame_set_VBR(raw, ffi::VBR_OFF);
            ffi::lame_set_brate(raw, kbps as c_int);
            ffi::lame_set_mode(raw, mode);
            ffi::lame_set_quality(raw, 5);
            // Our own Info frame replaces LAME's, which it would only fill in at the end.
            ffi::lame_set_bWriteVbrTag(raw, 0);
            ffi::lame_set_write_id3tag_automatic(raw, 0);
            ffi::lame_init_params(raw)
        };
        if status < 0 {
            return Err(lame_err(&format!("lame_init_params failed ({status})")));
        }
        let mut file = PooledFile::create(&part).map_err(io_err(&part))?;
        let id3 = id3v2();
        // SAFETY: an initialised context.
        let (delay, lowpass) = unsafe {
            (
                ffi::lame_get_encoder_delay(raw),
                ffi::lame_get_lowpassfreq(raw),
            )
        };
        let info_len = layout.frame_len(kbps, false) as u64;
        let delay = delay.max(0) as u32 + SILENT_FRAMES * layout.samples_per_frame() as u32;
        let info = info_frame(
            &layout,
            kbps,
            &lame_version(),
            &InfoTag {
                frames: SILENT_FRAMES,
                bytes: (1 + SILENT_FRAMES) * info_len as u32,
                delay,
                padding: 0,
                lowpass_hz: lowpass.max(0) as u32,
                music_crc: 0,
            },
        );
        // Zero side info, no main data: a frame that decodes to silence.
        let mut frame = vec![0u8; info_len as usize];
        frame[..4].copy_from_slice(&layout.header(kbps));
        let silent = frame.repeat(SILENT_FRAMES as usize);
        // The tag, the Info frame and a frame reach the file now: it plays from creation on.
        file.write_all(&[id3.as_slice(), &info, &silent].concat())
            .and_then(|()| file.flush())
            .map_err(io_err(&part))?;
        Ok(Mp3File {
            part,
            final_path,
            out: file,
            lame,
            layout,
            kbps,
            channels: usize::from(channels),
            interleave: Interleave::new(channels),
            frames: 0,
            info_at: id3.len() as u64,
            info_len,
            audio_bytes: silent.len() as u64,
            music_crc: crc16(0, &silent),
            delay,
            frames_since_flush: 0,
            flush_every: flush_every_frames(flush_secs, sample_rate),
            scratch: Vec::new(),
            mp3buf: Vec::new(),
        })
    }

    fn emit(&mut self, n: c_int) -> Result<(), StoreError> {
        if n < 0 {
            return Err(audio_err(
                &self.part,
                AudioError::Lame(format!("encoding failed ({n})")),
            ));
        }
        let bytes = &self.mp3buf[..n as usize];
        self.music_crc = crc16(self.music_crc, bytes);
        self.audio_bytes += bytes.len() as u64;
        self.out.write_all(bytes).map_err(io_err(&self.part))
    }

    fn encode(&mut self, pcm: &[i16]) -> Result<(), StoreError> {
        let n = pcm.len() / self.channels;
        // LAME's documented worst case: 1.25 × samples + 7200.
        self.mp3buf.resize(n * 5 / 4 + 7200, 0);
        let size = self.mp3buf.len() as c_int;
        let out = if self.channels == 2 {
            // LAME's interleaved entry point takes a mutable buffer: give it our copy.
            self.scratch.clear();
            self.scratch.extend_from_slice(pcm);
            // SAFETY: scratch holds n interleaved stereo frames; mp3buf has `size` bytes.
            unsafe {
                ffi::lame_encode_buffer_interleaved(
                    self.lame.0,
                    self.scratch.as_mut_ptr(),
                    n as c_int,
                    self.mp3buf.as_mut_ptr(),
                    size,
                )
            }
        } else {
            // SAFETY: pcm holds n mono samples (right is ignored for one channel).
            unsafe {
                ffi::lame_encode_buffer(
                    self.lame.0,
                    pcm.as_ptr(),
                    pcm.as_ptr(),
                    n as c_int,
                    self.mp3buf.as_mut_ptr(),
                    size,
                )
            }
        };
        self.emit(out)?;
        self.frames += n as u64;
        Ok(())
    }
}

impl AudioFile for Mp3File {
    fn write(&mut self, samples: &[i16]) -> Result<(), StoreError> {
        let whole = self.interleave.whole(samples);
        if whole.is_empty() {
            return Ok(());
        }
        let before = self.frames;
        self.encode(&whole)?;
        self.frames_since_flush += self.frames - before;
        if self.frames_since_flush >= self.flush_every {
            self.frames_since_flush = 0;
            self.out.flush().map_err(io_err(&self.part))?;
        }
        Ok(())
    }

    fn frames(&self) -> u64 {
        self.frames
    }

    fn finish(mut self: Box<Self>) -> Result<Finished, StoreError> {
        if let Some(frame) = self.interleave.take_padded() {
            self.encode(&frame)?;
        }
        self.mp3buf.resize(7200, 0);
        // SAFETY: an initialised context; mp3buf has 7200 bytes, LAME's bound for a flush.
        let n =
            unsafe { ffi::lame_encode_flush(self.lame.0, self.mp3buf.as_mut_ptr(), 7200 as c_int) };
        self.emit(n)?;
        self.out.flush().map_err(io_err(&self.part))?;
        // SAFETY: an initialised, flushed context.
        let (mp3_frames, padding, lowpass) = unsafe {
            (
                ffi::lame_get_frameNum(self.lame.0),
                ffi::lame_get_encoder_padding(self.lame.0),
                ffi::lame_get_lowpassfreq(self.lame.0),
            )
        };
        let info = info_frame(
            &self.layout,
            self.kbps,
            &lame_version(),
            &InfoTag {
                frames: mp3_frames.max(0) as u32 + SILENT_FRAMES,
                bytes: (self.info_len + self.audio_bytes).min(u64::from(u32::MAX)) as u32,
                delay: self.delay,
                padding: padding.max(0) as u32,
                lowpass_hz: lowpass.max(0) as u32,
                music_crc: self.music_crc,
            },
        );
        self.out
            .write_all_at(&info, self.info_at)
            .map_err(io_err(&self.part))?;
        let size_bytes = self
            .out
            .finish_as(&self.final_path)
            .map_err(io_err(&self.part))?;
        Ok(Finished {
            frames: self.frames,
            size_bytes,
            truncated: false,
        })
    }
}

/// A file's Info frame and where its whole frames end.
struct Scan {
    info_at: u64,
    layout: Layout,
    kbps: u32,
    info: Vec<u8>,
    /// End of the last whole frame.
    end: u64,
    frames: u32,
    music_crc: u16,
}

fn scan(path: &Path) -> Result<Scan, StoreError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut head = [0u8; 10];
    file.read_exact(&mut head)
        .map_err(|_| invalid(path, NAME, "shorter than an ID3v2 header"))?;
    if &head[..3] != b"ID3" {
        return Err(invalid(path, NAME, "no ID3v2 tag at the start"));
    }
    let size = head[6..10]
        .iter()
        .fold(0u64, |n, &b| (n << 7) | u64::from(b & 0x7f));
    let info_at = 10 + size;
    let mut h = [0u8; 4];
    file.seek(SeekFrom::Start(info_at)).map_err(io_err(path))?;
    file.read_exact(&mut h)
        .map_err(|_| invalid(path, NAME, "no Info frame after the ID3v2 tag"))?;
    // The Info frame tells the stream's layout.
    let version = (h[1] >> 3) & 3;
    let rate_index = (h[2] >> 2) & 3;
    let mono = h[3] >> 6 == 3;
    let rates: [[u32; 3]; 4] = [
        [11_025, 12_000, 8_000],
        [0, 0, 0],
        [22_050, 24_000, 16_000],
        [44_100, 48_000, 32_000],
    ];
    let sample_rate = rates[usize::from(version)]
        .get(usize::from(rate_index))
        .copied()
        .unwrap_or(0);
    let layout = Layout::new(sample_rate, if mono { 1 } else { 2 })
        .filter(|l| l.version == version)
        .ok_or_else(|| invalid(path, NAME, "Info frame header is not Layer III"))?;
    let info_len = layout
        .frame_at(&h)
        .ok_or_else(|| invalid(path, NAME, "Info frame header is not Layer III"))?;
    let kbps = layout.bitrates()[usize::from(h[2] >> 4)];
    let mut info = vec![0u8; info_len];
    file.seek(SeekFrom::Start(info_at)).map_err(io_err(path))?;
    file.read_exact(&mut info)
        .map_err(|_| invalid(path, NAME, "Info frame cut short"))?;
    let x = 4 + layout.side_info();
    if &info[x..x + 4] != b"Info" || info.len() < x + XING_LEN + LAME_LEN {
        return Err(invalid(path, NAME, "no Info tag in the first frame"));
    }
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let mut pos = info_at + info_len as u64;
    let (mut frames, mut music_crc) = (0u32, 0u16);
    let mut frame = Vec::new();
    while pos + 4 <= len {
        let mut h = [0u8; 4];
        r.read_exact(&mut h).map_err(io_err(path))?;
        let Some(flen) = layout.frame_at(&h) else {
            break;
        };
        if pos + flen as u64 > len {
            break; // torn by the crash
        }
        frame.resize(flen, 0);
        frame[..4].copy_from_slice(&h);
        r.read_exact(&mut frame[4..]).map_err(io_err(path))?;
        music_crc = crc16(music_crc, &frame);
        frames += 1;
        pos += flen as u64;
    }
    Ok(Scan {
        info_at,
        layout,
        kbps,
        info,
        end: pos,
        frames,
        music_crc,
    })
}

fn read_tag(s: &Scan) -> (u32, u32, u32) {
    let l = 4 + s.layout.side_info() + XING_LEN;
    let i = &s.info;
    let dp = u32::from_be_bytes([0, i[l + 21], i[l + 22], i[l + 23]]);
    let x = 4 + s.layout.side_info();
    let frames = u32::from_be_bytes(i[x + 8..x + 12].try_into().expect("4 bytes"));
    (dp >> 12, dp & 0xfff, frames)
}

/// Cuts a torn last frame (and anything after the last whole frame) and rewrites the Info frame
/// with the frames that remain, no end padding.
pub fn repair(part: &Path) -> Result<Finished, StoreError> {
    let s = scan(part)?;
    let (delay, _, _) = read_tag(&s);
    let l = 4 + s.layout.side_info() + XING_LEN;
    let info = info_frame(
        &s.layout,
        s.kbps,
        &lame_version(),
        &InfoTag {
            frames: s.frames,
            bytes: (s.end - s.info_at).min(u64::from(u32::MAX)) as u32,
            delay,
            padding: 0,
            lowpass_hz: u32::from(s.info[l + 10]) * 100,
            music_crc: s.music_crc,
        },
    );
    let file = OpenOptions::new()
        .write(true)
        .open(part)
        .map_err(io_err(part))?;
    file.set_len(s.end).map_err(io_err(part))?;
    file.write_all_at(&info, s.info_at).map_err(io_err(part))?;
    file.sync_data().map_err(io_err(part))?;
    Ok(Finished {
        frames: (u64::from(s.frames) * s.layout.samples_per_frame())
            .saturating_sub(u64::from(delay)),
        size_bytes: s.end,
        truncated: false,
    })
}

/// The length of a finished file, from its Info frame.
pub fn inspect(path: &Path) -> Result<Finished, StoreError> {
    let s = scan(path)?;
    let (delay, padding, frames) = read_tag(&s);
    let total = u64::from(frames) * s.layout.samples_per_frame();
    Ok(Finished {
        frames: total.saturating_sub(u64::from(delay) + u64::from(padding)),
        size_bytes: fs::metadata(path).map_err(io_err(path))?.len(),
        truncated: false,
    })
}
