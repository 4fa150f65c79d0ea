//! FLAC through libFLAC, the reference encoder.
//!
//! Why libFLAC: it is the reference implementation, every distribution ships it, and its stream
//! encoder hands each frame to a write callback as soon as it is encoded, so this module owns the
//! file and decides when bytes reach it. (The pure-Rust encoders seen encode whole buffers, not
//! frame by frame.)
//!
//! On disk: `fLaC` and STREAMINFO (total samples 0 = unknown) at creation; then whole frames of
//! at most 128 ms each, flushed every `flush_secs`. `finish` lets libFLAC rewrite STREAMINFO
//! (total samples, MD5). A kill -9 loses what was not yet flushed plus the block being filled;
//! [`repair`] cuts a torn last frame (found by the frame CRC-16) and writes total samples.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::sink::PooledFile;
use super::{
    AudioError, AudioFile, Finished, Interleave, audio_err, flush_every_frames, invalid, io_err,
    part_path,
};
use crate::StoreError;

const NAME: &str = "FLAC";
const BITS: u32 = 16;
/// libFLAC's default: good compression at a fraction of the CPU of level 8.
const COMPRESSION_LEVEL: u32 = 5;
/// `fLaC`, the STREAMINFO block header and the 34-byte STREAMINFO.
const STREAMINFO_END: usize = 4 + 4 + 34;
/// A torn frame is searched for in this much of the end of a `.part`: frames are a few KiB.
const TAIL_BYTES: u64 = 4 << 20;

#[allow(non_camel_case_types, non_snake_case)]
mod ffi {
    use std::ffi::{c_char, c_int, c_void};

    #[repr(C)]
    pub struct FLAC__StreamEncoder {
        _opaque: [u8; 0],
    }

    pub type FLAC__bool = c_int;
    pub type WriteCallback = unsafe extern "C" fn(
        encoder: *const FLAC__StreamEncoder,
        buffer: *const u8,
        bytes: usize,
        samples: u32,
        current_frame: u32,
        client_data: *mut c_void,
    ) -> c_int;
    pub type SeekCallback = unsafe extern "C" fn(
        encoder: *const FLAC__StreamEncoder,
        absolute_byte_offset: u64,
        client_data: *mut c_void,
    ) -> c_int;
    pub type TellCallback = unsafe extern "C" fn(
        encoder: *const FLAC__StreamEncoder,
        absolute_byte_offset: *mut u64,
        client_data: *mut c_void,
    ) -> c_int;
    pub type MetadataCallback = unsafe extern "C" fn(
        encoder: *const FLAC__StreamEncoder,
        metadata: *const c_void,
        client_data: *mut c_void,
    );

    pub const WRITE_STATUS_OK: c_int = 0;
    pub const WRITE_STATUS_FATAL_ERROR: c_int = 1;
    pub const SEEK_STATUS_OK: c_int = 0;
    pub const SEEK_STATUS_ERROR: c_int = 1;
    pub const TELL_STATUS_OK: c_int = 0;
    pub const INIT_STATUS_OK: c_int = 0;

    #[link(name = "FLAC")]
    unsafe extern "C" {
        pub fn FLAC__stream_encoder_new() -> *mut FLAC__StreamEncoder;
        pub fn FLAC__stream_encoder_delete(encoder: *mut FLAC__StreamEncoder);
        pub fn FLAC__stream_encoder_set_channels(
            encoder: *mut FLAC__StreamEncoder,
            value: u32,
        ) -> FLAC__bool;
        pub fn FLAC__stream_encoder_set_bits_per_sample(
            encoder: *mut FLAC__StreamEncoder,
            value: u32,
        ) -> FLAC__bool;
        pub fn FLAC__stream_encoder_set_sample_rate(
            encoder: *mut FLAC__StreamEncoder,
            value: u32,
        ) -> FLAC__bool;
        pub fn FLAC__stream_encoder_set_compression_level(
            encoder: *mut FLAC__StreamEncoder,
            value: u32,
        ) -> FLAC__bool;
        pub fn FLAC__stream_encoder_set_blocksize(
            encoder: *mut FLAC__StreamEncoder,
            value: u32,
        ) -> FLAC__bool;
        pub fn FLAC__stream_encoder_init_stream(
            encoder: *mut FLAC__StreamEncoder,
            write_callback: Option<WriteCallback>,
            seek_callback: Option<SeekCallback>,
            tell_callback: Option<TellCallback>,
            metadata_callback: Option<MetadataCallback>,
            client_data: *mut c_void,
        ) -> c_int;
        pub fn FLAC__stream_encoder_process_interleaved(
            encoder: *mut FLAC__StreamEncoder,
            buffer: *const i32,
            samples: u32,
        ) -> FLAC__bool;
        pub fn FLAC__stream_encoder_finish(encoder: *mut FLAC__StreamEncoder) -> FLAC__bool;
        pub fn FLAC__stream_encoder_get_resolved_state_string(
            encoder: *const FLAC__StreamEncoder,
        ) -> *const c_char;
        pub static FLAC__StreamEncoderInitStatusString: [*const c_char; 14];
    }
}

/// Where libFLAC's callbacks write: the `.part`, buffered between flushes.
struct Sink {
    out: PooledFile,
    /// Where the next byte goes.
    pos: u64,
    /// The first write or seek error, reported by the call that made libFLAC fail.
    error: Option<io::Error>,
    samples_since_flush: u64,
    flush_every: u64,
}

impl Sink {
    fn record<T>(&mut self, r: io::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }
}

unsafe extern "C" fn write_cb(
    _encoder: *const ffi::FLAC__StreamEncoder,
    buffer: *const u8,
    bytes: usize,
    samples: u32,
    _current_frame: u32,
    client_data: *mut c_void,
) -> c_int {
    // SAFETY: client_data is the `Sink` boxed in `FlacFile`, alive and not otherwise borrowed
    // while libFLAC runs (only calls into libFLAC reach here); buffer holds `bytes` bytes.
    let (sink, data) = unsafe {
        (
            &mut *client_data.cast::<Sink>(),
            std::slice::from_raw_parts(buffer, bytes),
        )
    };
    let written = sink.out.write_all(data);
    if sink.record(written).is_none() {
        return ffi::WRITE_STATUS_FATAL_ERROR;
    }
    sink.pos += bytes as u64;
    // Frames only ever reach the file whole, so a crash tears at most the last one.
    sink.samples_since_flush += u64::from(samples);
    if samples > 0 && sink.samples_since_flush >= sink.flush_every {
        sink.samples_since_flush = 0;
        let flushed = sink.out.flush();
        if sink.record(flushed).is_none() {
            return ffi::WRITE_STATUS_FATAL_ERROR;
        }
    }
    ffi::WRITE_STATUS_OK
}

unsafe extern "C" fn seek_cb(
    _encoder: *const ffi::FLAC__StreamEncoder,
    offset: u64,
    client_data: *mut c_void,
) -> c_int {
    // SAFETY: as in `write_cb`.
    let sink = unsafe { &mut *client_data.cast::<Sink>() };
    let sought = sink.out.seek(SeekFrom::Start(offset));
    match sink.record(sought) {
        Some(p) => {
            sink.pos = p;
            ffi::SEEK_STATUS_OK
        }
        None => ffi::SEEK_STATUS_ERROR,
    }
}

unsafe extern "C" fn tell_cb(
    _encoder: *const ffi::FLAC__StreamEncoder,
    offset: *mut u64,
    client_data: *mut c_void,
) -> c_int {
    // SAFETY: as in `write_cb`; `offset` points to libFLAC's u64.
    unsafe { *offset = (*client_data.cast::<Sink>()).pos };
    ffi::TELL_STATUS_OK
}

/// Owns a libFLAC encoder; deleting it also finishes it if it was not finished.
struct Encoder(*mut ffi::FLAC__StreamEncoder);

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the pointer came from FLAC__stream_encoder_new and is deleted only here.
        unsafe { ffi::FLAC__stream_encoder_delete(self.0) }
    }
}

impl Encoder {
    fn state(&self) -> String {
        // SAFETY: a live encoder; libFLAC returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(ffi::FLAC__stream_encoder_get_resolved_state_string(self.0)) }
            .to_string_lossy()
            .into_owned()
    }
}

pub struct FlacFile {
    part: PathBuf,
    final_path: PathBuf,
    /// Declared before `sink`: deleting the encoder may still call back into the sink.
    encoder: Encoder,
    sink: Box<Sink>,
    channels: u16,
    interleave: Interleave,
    frames: u64,
    scratch: Vec<i32>,
}

// SAFETY: the encoder is owned by this value alone, and libFLAC encoders have no thread
// affinity; the raw pointers are only used through `&mut self`.
unsafe impl Send for FlacFile {}

/// Samples per FLAC frame: the largest power of two of at most 128 ms, at most 4096.
fn blocksize(sample_rate: u32) -> u32 {
    let limit = (u64::from(sample_rate) * 128 / 1000).clamp(256, 4096) as u32;
    1 << (31 - limit.leading_zeros())
}

impl FlacFile {
    pub fn create(
        final_path: PathBuf,
        channels: u16,
        sample_rate: u32,
        flush_secs: f64,
    ) -> Result<FlacFile, StoreError> {
        let part = part_path(&final_path);
        if !(1..=655_350).contains(&sample_rate) {
            return Err(audio_err(
                &part,
                AudioError::Rate {
                    format: NAME,
                    rate: sample_rate,
                    accepted: "1 to 655350 Hz",
                },
            ));
        }
        let file = PooledFile::create(&part).map_err(io_err(&part))?;
        let mut sink = Box::new(Sink {
            out: file,
            pos: 0,
            error: None,
            samples_since_flush: 0,
            flush_every: flush_every_frames(flush_secs, sample_rate),
        });
        // SAFETY: FLAC__stream_encoder_new has no preconditions; null means out of memory.
        let raw = unsafe { ffi::FLAC__stream_encoder_new() };
        if raw.is_null() {
            return Err(audio_err(&part, AudioError::Flac("out of memory".into())));
        }
        let encoder = Encoder(raw);
        // SAFETY: a fresh encoder, before init, as the setters require.
        let set = unsafe {
            ffi::FLAC__stream_encoder_set_channels(raw, u32::from(channels)) != 0
                && ffi::FLAC__stream_encoder_set_bits_per_sample(raw, BITS) != 0
                && ffi::FLAC__stream_encoder_set_sample_rate(raw, sample_rate) != 0
                && ffi::FLAC__stream_encoder_set_compression_level(raw, COMPRESSION_LEVEL) != 0
                && ffi::FLAC__stream_encoder_set_blocksize(raw, blocksize(sample_rate)) != 0
        };
        if !set {
            return Err(audio_err(&part, AudioError::Flac(encoder.state())));
        }
        let client: *mut Sink = &mut *sink;
        // SAFETY: the callbacks match libFLAC's signatures; `client` points into the Box kept
        // in the returned FlacFile, which outlives the encoder (dropped first).
        let status = unsafe {
            ffi::FLAC__stream_encoder_init_stream(
                raw,
                Some(write_cb),
                Some(seek_cb),
                Some(tell_cb),
                None,
                client.cast(),
            )
        };
        if status != ffi::INIT_STATUS_OK {
            let what = match sink.error.take() {
                Some(e) => e.to_string(),
                None => init_status(status),
            };
            return Err(audio_err(&part, AudioError::Flac(what)));
        }
        // `fLaC` and STREAMINFO reach the file now: a crash never leaves an empty file.
        sink.out.flush().map_err(io_err(&part))?;
        Ok(FlacFile {
            part,
            final_path,
            encoder,
            sink,
            channels,
            interleave: Interleave::new(channels),
            frames: 0,
            scratch: Vec::new(),
        })
    }

    fn failed(&mut self) -> StoreError {
        match self.sink.error.take() {
            Some(e) => io_err(&self.part)(e),
            None => audio_err(&self.part, AudioError::Flac(self.encoder.state())),
        }
    }

    fn encode(&mut self, frames: &[i16]) -> Result<(), StoreError> {
        self.scratch.clear();
        self.scratch.extend(frames.iter().map(|&s| i32::from(s)));
        let n = frames.len() / usize::from(self.channels);
        // SAFETY: scratch holds n whole interleaved frames of `channels` samples.
        let ok = unsafe {
            ffi::FLAC__stream_encoder_process_interleaved(
                self.encoder.0,
                self.scratch.as_ptr(),
                n as u32,
            )
        };
        if ok == 0 {
            return Err(self.failed());
        }
        self.frames += n as u64;
        Ok(())
    }
}

fn init_status(status: c_int) -> String {
    let i = usize::try_from(status).unwrap_or(usize::MAX);
    // SAFETY: libFLAC's table of 14 static strings, indexed by the status it returned.
    let text: Option<*const c_char> =
        unsafe { (*std::ptr::addr_of!(ffi::FLAC__StreamEncoderInitStatusString)).get(i) }.copied();
    match text {
        // SAFETY: see above.
        Some(p) => unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned(),
        None => format!("init status {status}"),
    }
}

impl AudioFile for FlacFile {
    fn write(&mut self, samples: &[i16]) -> Result<(), StoreError> {
        let whole = self.interleave.whole(samples);
        if whole.is_empty() {
            return Ok(());
        }
        self.encode(&whole)
    }

    fn frames(&self) -> u64 {
        self.frames
    }

    fn finish(mut self: Box<Self>) -> Result<Finished, StoreError> {
        if let Some(frame) = self.interleave.take_padded() {
            self.encode(&frame)?;
        }
        // SAFETY: a live, initialised encoder; finish writes the last frame and rewrites
        // STREAMINFO through the callbacks.
        let ok = unsafe { ffi::FLAC__stream_encoder_finish(self.encoder.0) };
        if ok == 0 || self.sink.error.is_some() {
            return Err(self.failed());
        }
        let part = self.part.clone();
        let size_bytes = self
            .sink
            .out
            .finish_as(&self.final_path)
            .map_err(io_err(&part))?;
        Ok(Finished {
            frames: self.frames,
            size_bytes,
            truncated: false,
        })
    }
}

/// What the metadata of a FLAC file says.
struct Header {
    /// Offset of the first frame.
    audio_start: u64,
    blocksize: u32,
    channels: u8,
    total_samples: u64,
}

fn read_header(path: &Path, file: &mut File) -> Result<Header, StoreError> {
    let mut head = [0u8; STREAMINFO_END];
    file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    file.read_exact(&mut head)
        .map_err(|_| invalid(path, NAME, "shorter than fLaC and STREAMINFO"))?;
    if &head[0..4] != b"fLaC" || head[4] & 0x7f != 0 {
        return Err(invalid(path, NAME, "no fLaC and STREAMINFO at the start"));
    }
    let info = &head[8..];
    let blocksize = u32::from(u16::from_be_bytes([info[0], info[1]]));
    let packed = u64::from_be_bytes(info[10..18].try_into().expect("8 bytes"));
    let channels = ((packed >> 41) & 7) as u8 + 1;
    let total_samples = packed & ((1 << 36) - 1);
    // Skip any further metadata blocks.
    let mut pos = 4u64;
    let mut block = [0u8; 4];
    block.copy_from_slice(&head[4..8]);
    loop {
        let len = u64::from(u32::from_be_bytes([0, block[1], block[2], block[3]]));
        pos += 4 + len;
        if block[0] & 0x80 != 0 {
            break;
        }
        file.seek(SeekFrom::Start(pos)).map_err(io_err(path))?;
        file.read_exact(&mut block)
            .map_err(|_| invalid(path, NAME, "metadata cut short"))?;
    }
    Ok(Header {
        audio_start: pos,
        blocksize,
        channels,
        total_samples,
    })
}

/// CRC-8 of FLAC frame headers: polynomial x^8 + x^2 + x + 1, initial 0.
fn crc8(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |mut crc, &b| {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// CRC-16 of FLAC frames: polynomial x^16 + x^15 + x^2 + 1, initial 0, MSB first.
fn crc16_update(mut crc: u16, b: u8) -> u16 {
    crc ^= u16::from(b) << 8;
    for _ in 0..8 {
        crc = if crc & 0x8000 != 0 {
            (crc << 1) ^ 0x8005
        } else {
            crc << 1
        };
    }
    crc
}

/// A frame header at the start of `buf` (fixed block size, as libFLAC writes here):
/// its frame number and block size.
fn frame_header(buf: &[u8], channels: u8) -> Option<(u64, u32)> {
    if buf.len() < 6 || buf[0] != 0xff || buf[1] != 0xf8 {
        return None;
    }
    let (bs_code, rate_code) = (buf[2] >> 4, buf[2] & 0x0f);
    let (assign, size_code) = (buf[3] >> 4, (buf[3] >> 1) & 7);
    if bs_code == 0 || rate_code == 15 || buf[3] & 1 != 0 || size_code == 3 || size_code == 7 {
        return None;
    }
    let frame_channels = match assign {
        0..=7 => assign + 1,
        8..=10 => 2,
        _ => return None,
    };
    if frame_channels != channels {
        return None;
    }
    // The frame number, UTF-8 style.
    let first = buf[4];
    let extra = match first.leading_ones() {
        0 => 0,
        n @ 2..=6 => n as usize - 1,
        _ => return None,
    };
    let mut number = u64::from(first & (0x7f >> extra));
    let mut i = 5;
    for _ in 0..extra {
        let b = *buf.get(i)?;
        if b & 0xc0 != 0x80 {
            return None;
        }
        number = (number << 6) | u64::from(b & 0x3f);
        i += 1;
    }
    let blocksize = match bs_code {
        1 => 192,
        2..=5 => 576 << (bs_code - 2),
        6 => {
            i += 1;
            u32::from(*buf.get(i - 1)?) + 1
        }
        7 => {
            i += 2;
            u32::from(u16::from_be_bytes([*buf.get(i - 2)?, *buf.get(i - 1)?])) + 1
        }
        _ => 256 << (bs_code - 8),
    };
    i += match rate_code {
        12 => 1,
        13 | 14 => 2,
        _ => 0,
    };
    (crc8(buf.get(..i)?) == *buf.get(i)?).then_some((number, blocksize))
}

/// The end of the last whole frame of the file and the samples up to there.
fn last_whole_frame(path: &Path, file: &mut File, h: &Header) -> Result<(u64, u64), StoreError> {
    let len = file.metadata().map_err(io_err(path))?.len();
    let start = h.audio_start.max(len.saturating_sub(TAIL_BYTES));
    let mut buf = Vec::with_capacity((len - start.min(len)) as usize);
    file.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
    file.read_to_end(&mut buf).map_err(io_err(path))?;
    let candidates: Vec<(usize, u64, u32)> = (0..buf.len().saturating_sub(1))
        .filter(|&i| buf[i] == 0xff && buf[i + 1] == 0xf8)
        .filter_map(|i| frame_header(&buf[i..], h.channels).map(|(n, bs)| (i, n, bs)))
        .collect();
    // From the last candidate back: the first that is a whole frame (its CRC-16 checks at the
    // next frame's header or at the end of the file) is the last whole frame.
    for (k, &(pos, number, bs)) in candidates.iter().enumerate().rev() {
        let mut ends = candidates[k + 1..]
            .iter()
            .filter(|c| c.1 == number + 1)
            .map(|c| c.0)
            .chain(std::iter::once(buf.len()))
            .peekable();
        let mut crc = 0u16;
        let mut at = pos;
        while let Some(&end) = ends.peek() {
            for &b in &buf[at..end] {
                crc = crc16_update(crc, b);
            }
            at = end;
            if crc == 0 && end > pos + 6 {
                let samples = number * u64::from(h.blocksize) + u64::from(bs);
                return Ok((start + end as u64, samples));
            }
            ends.next();
        }
    }
    if start == h.audio_start {
        Ok((h.audio_start, 0))
    } else {
        Err(invalid(path, NAME, "no whole frame near the end"))
    }
}

/// Cuts a torn last frame and writes total samples into STREAMINFO.
pub fn repair(part: &Path) -> Result<Finished, StoreError> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(part)
        .map_err(io_err(part))?;
    let h = read_header(part, &mut file)?;
    let (end, samples) = last_whole_frame(part, &mut file, &h)?;
    file.set_len(end).map_err(io_err(part))?;
    let mut packed = [0u8; 8];
    file.seek(SeekFrom::Start(18)).map_err(io_err(part))?;
    file.read_exact(&mut packed).map_err(io_err(part))?;
    let packed = (u64::from_be_bytes(packed) & !((1 << 36) - 1)) | (samples & ((1 << 36) - 1));
    file.seek(SeekFrom::Start(18)).map_err(io_err(part))?;
    file.write_all(&packed.to_be_bytes())
        .map_err(io_err(part))?;
    file.sync_data().map_err(io_err(part))?;
    Ok(Finished {
        frames: samples,
        size_bytes: end,
        truncated: false,
    })
}

/// The length of a finished file: STREAMINFO's total samples, or the frames if it has none.
pub fn inspect(path: &Path) -> Result<Finished, StoreError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let h = read_header(path, &mut file)?;
    let size_bytes = file.metadata().map_err(io_err(path))?.len();
    let frames = if h.total_samples > 0 {
        h.total_samples
    } else {
        last_whole_frame(path, &mut file, &h)?.1
    };
    Ok(Finished {
        frames,
        size_bytes,
        truncated: false,
    })
}
