//! Opus in Ogg (RFC 7845) through libopus, the reference encoder (a small extern block of our
//! own: create, ctl, encode, destroy), with our own Ogg pages (`ogg.rs`).
//!
//! 20 ms frames, the VoIP application, 16 kbit/s per channel (32 kbit/s for the stereo call),
//! the recording's own rate as the input rate when libopus takes it (8, 12, 16, 24 and 48 kHz);
//! other rates (the store's 32 and 44.1 kHz) are resampled to 48 kHz (`resample.rs`), its delay
//! added to the pre-skip, and OpusHead keeps the recording's rate. Granule positions count 48 kHz samples from the start, pre-skip included;
//! the last page trims the padding so the decoded length is exactly what was written.
//!
//! Stereo is two mono streams (channel mapping family 1, no coupled stream): caller and callee
//! are unrelated signals, and coupled stereo at speech bit rates lets each bleed into the other
//! (measured: a 440 Hz tone left, 1 kHz right, only 18 dB apart after a 32 kbit/s round trip).
//!
//! On disk at creation: the OpusHead and OpusTags pages and a page with one 20 ms packet of
//! silence that pre-skip discards (ffmpeg refuses an Ogg file with no audio page). Then one page
//! every `flush_secs`.
//! A kill -9 loses the unwritten page, the 20 ms frame being filled and the encoder's lookahead;
//! [`repair`] truncates to the last page whose CRC checks and marks it end of stream.

use std::ffi::{CStr, c_char, c_int};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::ogg::{self, PageWriter};
use super::resample::Resampler;
use super::sink::PooledFile;
use super::{
    AudioError, AudioFile, Finished, Interleave, audio_err, flush_every_frames, invalid, io_err,
    part_path,
};
use crate::StoreError;

const NAME: &str = "Opus";
/// Ogg Opus granule positions always count 48 kHz samples.
const GRANULE_RATE: u32 = 48_000;
/// 20 ms at 48 kHz.
const FRAME_GRANULES: u64 = 960;
const BITRATE_PER_CHANNEL: i32 = 16_000;
const COMPLEXITY: i32 = 5;
/// The largest packet of two streams (RFC 6716 §3.2.1: 1275 bytes each) plus room.
const MAX_PACKET: usize = 4000;

#[allow(non_camel_case_types)]
mod ffi {
    use std::ffi::{c_char, c_int};

    #[repr(C)]
    pub struct OpusMSEncoder {
        _opaque: [u8; 0],
    }

    pub const OPUS_OK: c_int = 0;
    pub const OPUS_APPLICATION_VOIP: c_int = 2048;
    pub const OPUS_SET_BITRATE_REQUEST: c_int = 4002;
    pub const OPUS_SET_SIGNAL_REQUEST: c_int = 4024;
    pub const OPUS_SET_COMPLEXITY_REQUEST: c_int = 4010;
    pub const OPUS_GET_LOOKAHEAD_REQUEST: c_int = 4027;
    pub const OPUS_SIGNAL_VOICE: c_int = 3001;

    #[link(name = "opus")]
    unsafe extern "C" {
        pub fn opus_multistream_encoder_create(
            fs: i32,
            channels: c_int,
            streams: c_int,
            coupled_streams: c_int,
            mapping: *const u8,
            application: c_int,
            error: *mut c_int,
        ) -> *mut OpusMSEncoder;
        pub fn opus_multistream_encoder_ctl(st: *mut OpusMSEncoder, request: c_int, ...) -> c_int;
        pub fn opus_multistream_encode(
            st: *mut OpusMSEncoder,
            pcm: *const i16,
            frame_size: c_int,
            data: *mut u8,
            max_data_bytes: i32,
        ) -> c_int;
        pub fn opus_multistream_encoder_destroy(st: *mut OpusMSEncoder);
        pub fn opus_strerror(error: c_int) -> *const c_char;
        pub fn opus_get_version_string() -> *const c_char;
    }
}

fn strerror(code: c_int) -> String {
    // SAFETY: opus_strerror returns a static NUL-terminated string for any code.
    unsafe { CStr::from_ptr(ffi::opus_strerror(code)) }
        .to_string_lossy()
        .into_owned()
}

fn version() -> String {
    // SAFETY: a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::opus_get_version_string() as *const c_char) }
        .to_string_lossy()
        .into_owned()
}

struct Encoder(*mut ffi::OpusMSEncoder);

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: from opus_multistream_encoder_create, destroyed only here.
        unsafe { ffi::opus_multistream_encoder_destroy(self.0) }
    }
}

impl Encoder {
    fn ctl_set(&self, request: c_int, value: c_int) -> Result<(), String> {
        // SAFETY: a live encoder; SET requests take one int argument.
        let r = unsafe { ffi::opus_multistream_encoder_ctl(self.0, request, value) };
        (r == ffi::OPUS_OK).then_some(()).ok_or_else(|| strerror(r))
    }

    fn lookahead(&self) -> Result<i32, String> {
        let mut v: i32 = 0;
        // SAFETY: a live encoder; OPUS_GET_LOOKAHEAD takes a pointer to an opus_int32.
        let r = unsafe {
            ffi::opus_multistream_encoder_ctl(
                self.0,
                ffi::OPUS_GET_LOOKAHEAD_REQUEST,
                &mut v as *mut i32,
            )
        };
        (r == ffi::OPUS_OK).then_some(v).ok_or_else(|| strerror(r))
    }
}

pub struct OpusFile {
    part: PathBuf,
    final_path: PathBuf,
    file: PooledFile,
    encoder: Encoder,
    pages: PageWriter,
    channels: usize,
    /// Input samples per 20 ms frame, per channel.
    frame_len: usize,
    /// The recording's rate (the encoder's, unless resampled to 48 kHz).
    rate: u32,
    /// To 48 kHz, for rates libopus does not take.
    resampler: Option<Resampler>,
    pre_skip: u64,
    interleave: Interleave,
    /// Interleaved samples not yet making a whole 20 ms frame.
    pcm: Vec<i16>,
    frames: u64,
    packets: u64,
    frames_since_flush: u64,
    flush_every: u64,
    packet: Vec<u8>,
}

// SAFETY: the encoder is owned by this value alone and libopus encoders have no thread
// affinity; the pointer is only used through `&mut self`.
unsafe impl Send for OpusFile {}

fn serial() -> u32 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u32)
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

impl OpusFile {
    pub fn create(
        final_path: PathBuf,
        channels: u16,
        sample_rate: u32,
        flush_secs: f64,
    ) -> Result<OpusFile, StoreError> {
        let part = part_path(&final_path);
        if !(1000..=GRANULE_RATE * 4).contains(&sample_rate) {
            return Err(audio_err(
                &part,
                AudioError::Rate {
                    format: NAME,
                    rate: sample_rate,
                    accepted: "1000 to 192000 Hz",
                },
            ));
        }
        let resampler = (!matches!(sample_rate, 8000 | 12000 | 16000 | 24000 | 48000))
            .then(|| Resampler::new(sample_rate, GRANULE_RATE, channels));
        let encoder_rate = if resampler.is_some() {
            GRANULE_RATE
        } else {
            sample_rate
        };
        let opus_err = |what: String| audio_err(&part, AudioError::Opus(what));
        let mut error: c_int = 0;
        // One mono stream per channel, channel i in stream i.
        let mapping = [0u8, 1];
        // SAFETY: valid rate, channels 1 or 2 (checked by audio::create) as streams, none
        // coupled, `mapping` has one entry per channel, a pointer to an int.
        let raw = unsafe {
            ffi::opus_multistream_encoder_create(
                encoder_rate as i32,
                c_int::from(channels),
                c_int::from(channels),
                0,
                mapping.as_ptr(),
                ffi::OPUS_APPLICATION_VOIP,
                &mut error,
            )
        };
        if raw.is_null() || error != ffi::OPUS_OK {
            return Err(opus_err(strerror(error)));
        }
        let encoder = Encoder(raw);
        encoder
            .ctl_set(
                ffi::OPUS_SET_BITRATE_REQUEST,
                BITRATE_PER_CHANNEL * c_int::from(channels),
            )
            .and_then(|()| encoder.ctl_set(ffi::OPUS_SET_SIGNAL_REQUEST, ffi::OPUS_SIGNAL_VOICE))
            .and_then(|()| encoder.ctl_set(ffi::OPUS_SET_COMPLEXITY_REQUEST, COMPLEXITY))
            .map_err(opus_err)?;
        let scale = u64::from(GRANULE_RATE / encoder_rate);
        // The lookahead, the resampler's delay and the silent packet written at creation.
        let lookahead = u64::try_from(encoder.lookahead().map_err(opus_err)?).unwrap_or(0);
        let pre_skip =
            lookahead * scale + resampler.as_ref().map_or(0, Resampler::delay) + FRAME_GRANULES;

        let serial = serial();
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(channels as u8);
        head.extend_from_slice(&(pre_skip as u16).to_le_bytes());
        head.extend_from_slice(&sample_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        if channels == 1 {
            head.push(0); // mapping family 0: one mono stream
        } else {
            // Mapping family 1: two streams, none coupled, left in the first.
            head.extend_from_slice(&[1, 2, 0, mapping[0], mapping[1]]);
        }
        let vendor = version();
        let comment = b"ENCODER=voxtap";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor.as_bytes());
        tags.extend_from_slice(&1u32.to_le_bytes());
        tags.extend_from_slice(&(comment.len() as u32).to_le_bytes());
        tags.extend_from_slice(comment);
        let file = PooledFile::create(&part).map_err(io_err(&part))?;
        let mut f = OpusFile {
            part,
            final_path,
            file,
            encoder,
            pages: PageWriter::new(serial, 2),
            channels: usize::from(channels),
            frame_len: encoder_rate as usize / 50,
            rate: sample_rate,
            resampler,
            pre_skip,
            interleave: Interleave::new(channels),
            pcm: Vec::new(),
            frames: 0,
            packets: 0,
            frames_since_flush: 0,
            flush_every: flush_every_frames(flush_secs, sample_rate),
            packet: vec![0; MAX_PACKET],
        };
        f.file
            .write_all(
                &[
                    ogg::page(ogg::FLAG_BOS, 0, serial, 0, &[&head]),
                    ogg::page(0, 0, serial, 1, &[&tags]),
                ]
                .concat(),
            )
            .map_err(io_err(&f.part))?;
        // Both header pages and one page of audio reach the file now: it parses from creation on.
        let silence = vec![0i16; f.frame_len * f.channels];
        f.encode(&silence)?;
        f.flush_page(0)?;
        f.file.flush().map_err(io_err(&f.part))?;
        Ok(f)
    }

    /// Encodes the first 20 ms of `pcm` as the next packet.
    fn encode(&mut self, pcm: &[i16]) -> Result<(), StoreError> {
        // SAFETY: pcm holds frame_len whole interleaved frames; packet has MAX_PACKET bytes.
        let n = unsafe {
            ffi::opus_multistream_encode(
                self.encoder.0,
                pcm.as_ptr(),
                self.frame_len as c_int,
                self.packet.as_mut_ptr(),
                MAX_PACKET as i32,
            )
        };
        if n < 0 {
            return Err(audio_err(&self.part, AudioError::Opus(strerror(n))));
        }
        self.packets += 1;
        let granule = self.packets * FRAME_GRANULES;
        if let Some(page) = self.pages.packet(&self.packet[..n as usize], granule) {
            self.file.write_all(&page).map_err(io_err(&self.part))?;
        }
        Ok(())
    }

    /// Encodes every whole 20 ms frame in `pcm`.
    fn drain(&mut self) -> Result<(), StoreError> {
        let step = self.frame_len * self.channels;
        let mut at = 0;
        let pcm = std::mem::take(&mut self.pcm);
        let r = (|| {
            while pcm.len() - at >= step {
                self.encode(&pcm[at..at + step])?;
                at += step;
            }
            Ok(())
        })();
        self.pcm = pcm;
        self.pcm.drain(..at);
        r
    }

    fn flush_page(&mut self, flags: u8) -> Result<(), StoreError> {
        if let Some(page) = self.pages.page(flags) {
            self.file.write_all(&page).map_err(io_err(&self.part))?;
        }
        Ok(())
    }
}

impl AudioFile for OpusFile {
    fn write(&mut self, samples: &[i16]) -> Result<(), StoreError> {
        let whole = self.interleave.whole(samples);
        let n = (whole.len() / self.channels) as u64;
        match &mut self.resampler {
            Some(r) => r.process(&whole, &mut self.pcm),
            None => self.pcm.extend_from_slice(&whole),
        }
        self.frames += n;
        self.drain()?;
        self.frames_since_flush += n;
        if self.frames_since_flush >= self.flush_every {
            self.frames_since_flush = 0;
            self.flush_page(0)?;
            self.file.flush().map_err(io_err(&self.part))?;
        }
        Ok(())
    }

    fn frames(&self) -> u64 {
        self.frames
    }

    fn finish(mut self: Box<Self>) -> Result<Finished, StoreError> {
        if let Some(frame) = self.interleave.take_padded() {
            match &mut self.resampler {
                Some(r) => r.process(&frame, &mut self.pcm),
                None => self.pcm.extend_from_slice(&frame),
            }
            self.frames += 1;
        }
        if let Some(r) = &mut self.resampler {
            r.flush(&mut self.pcm);
        }
        // Silence until the packets cover pre-skip and every sample; the last page's granule
        // then trims the decoded stream to exactly `frames`.
        let rate = u64::from(self.rate);
        let end = self.pre_skip + (self.frames * u64::from(GRANULE_RATE)).div_ceil(rate);
        let step = self.frame_len * self.channels;
        while self.packets * FRAME_GRANULES < end {
            let pad = step - self.pcm.len() % step;
            self.pcm.resize(self.pcm.len() + pad, 0);
            self.drain()?;
        }
        self.pages.set_granule(end);
        let last = self.pages.page(ogg::FLAG_EOS);
        // Pre-skip exceeds the silent packet, so the loop above always left a packet to write.
        let page = last.ok_or_else(|| invalid(&self.part, NAME, "no packet for the last page"))?;
        self.file.write_all(&page).map_err(io_err(&self.part))?;
        let size_bytes = self
            .file
            .finish_as(&self.final_path)
            .map_err(io_err(&self.part))?;
        Ok(Finished {
            frames: self.frames,
            size_bytes,
            truncated: false,
        })
    }
}

/// The pages of a file up to the first torn or bad one.
struct Scan {
    /// Bytes of the whole pages.
    end: u64,
    pre_skip: u64,
    /// The last whole page, if it holds audio.
    last_audio: Option<ogg::Page>,
}

fn scan(path: &Path) -> Result<Scan, StoreError> {
    let mut r = BufReader::new(File::open(path).map_err(io_err(path))?);
    let head = ogg::read_page(&mut r).map_err(io_err(path))?;
    let head = head.ok_or_else(|| invalid(path, NAME, "no whole OpusHead page"))?;
    let packet = head.first_packet();
    if head.flags() & ogg::FLAG_BOS == 0 || packet.len() < 19 || &packet[0..8] != b"OpusHead" {
        return Err(invalid(path, NAME, "first page is not OpusHead"));
    }
    let pre_skip = u64::from(u16::from_le_bytes([packet[10], packet[11]]));
    let tags = ogg::read_page(&mut r).map_err(io_err(path))?;
    let tags = tags.ok_or_else(|| invalid(path, NAME, "no whole OpusTags page"))?;
    if !tags.first_packet().starts_with(b"OpusTags") || !tags.ends_whole() {
        return Err(invalid(path, NAME, "second page is not OpusTags"));
    }
    let mut end = (head.bytes.len() + tags.bytes.len()) as u64;
    let mut last_audio = None;
    let mut sequence = 2;
    while let Some(page) = ogg::read_page(&mut r).map_err(io_err(path))? {
        // A page of another stream or out of sequence is not ours: stop before it.
        if page.sequence() != sequence || page.bytes[14..18] != head.bytes[14..18] {
            break;
        }
        sequence += 1;
        end += page.bytes.len() as u64;
        let flags = page.flags();
        last_audio = Some(page);
        if flags & ogg::FLAG_EOS != 0 {
            break;
        }
    }
    Ok(Scan {
        end,
        pre_skip,
        last_audio,
    })
}

/// Frames at `sample_rate` that a stream ending at `granule` decodes to.
fn frames_at(granule: u64, pre_skip: u64, sample_rate: u32) -> u64 {
    if granule == ogg::NO_GRANULE {
        return 0;
    }
    granule.saturating_sub(pre_skip) * u64::from(sample_rate) / u64::from(GRANULE_RATE)
}

/// Truncates to the last whole page (its CRC checked) and marks it end of stream.
pub fn repair(part: &Path, sample_rate: u32) -> Result<Finished, StoreError> {
    let s = scan(part)?;
    let file = OpenOptions::new()
        .write(true)
        .open(part)
        .map_err(io_err(part))?;
    file.set_len(s.end).map_err(io_err(part))?;
    let mut frames = 0;
    if let Some(mut page) = s.last_audio {
        frames = frames_at(page.granule(), s.pre_skip, sample_rate);
        if page.flags() & ogg::FLAG_EOS == 0 {
            page.bytes[5] |= ogg::FLAG_EOS;
            ogg::set_crc(&mut page.bytes);
            let at = s.end - page.bytes.len() as u64;
            std::os::unix::fs::FileExt::write_all_at(&file, &page.bytes, at)
                .map_err(io_err(part))?;
        }
    }
    file.sync_data().map_err(io_err(part))?;
    Ok(Finished {
        frames,
        size_bytes: s.end,
        truncated: false,
    })
}

/// The length of a finished file, from its last page's granule position.
pub fn inspect(path: &Path, sample_rate: u32) -> Result<Finished, StoreError> {
    let s = scan(path)?;
    let frames = s
        .last_audio
        .as_ref()
        .map_or(0, |p| frames_at(p.granule(), s.pre_skip, sample_rate));
    let size_bytes = fs::metadata(path).map_err(io_err(path))?.len();
    Ok(Finished {
        frames,
        size_bytes,
        truncated: false,
    })
}
