//! One recording on disk: a `.wav.part` written as audio arrives, made valid every
//! `flush_every_frames`, renamed to `.wav` when finished. Also repairs `.part` files a crash left.

use std::fs::{self, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::sink::PooledFile;
use super::{AudioFile, Finished, flush_every_frames, io_err, part_path};
use crate::StoreError;

const BITS: u16 = 16;
const BYTES_PER_SAMPLE: u64 = 2;
/// The 16-bit PCM `WAVEFORMAT` layout hound writes for up to two channels: RIFF, fmt, data headers.
pub const HEADER_LEN: u64 = 44;
/// RIFF sizes are u32: the RIFF size field (data + 36) must not wrap.
pub const MAX_DATA_BYTES: u64 = u32::MAX as u64 - (HEADER_LEN - 8);

fn wav_err(path: &Path) -> impl FnOnce(hound::Error) -> StoreError + '_ {
    move |source| StoreError::Wav {
        path: path.to_owned(),
        source,
    }
}

pub struct WavFile {
    final_path: PathBuf,
    out: PooledFile,
    channels: u16,
    sample_rate: u32,
    samples: u64,
    max_samples: u64,
    frames_since_flush: u64,
    flush_every_frames: u64,
    truncated: bool,
}

impl WavFile {
    pub fn create(
        final_path: PathBuf,
        channels: u16,
        sample_rate: u32,
        flush_secs: f64,
    ) -> Result<WavFile, StoreError> {
        let part = part_path(&final_path);
        let mut out = PooledFile::create(&part).map_err(io_err(&part))?;
        let channels = channels.max(1);
        // The header (no data yet) is the file's first bytes: it is valid from the start.
        out.write_all(&header(channels, sample_rate, 0))
            .map_err(io_err(&part))?;
        out.flush().map_err(io_err(&part))?;
        let block = u64::from(channels) * BYTES_PER_SAMPLE;
        let flush_every_frames = flush_every_frames(flush_secs, sample_rate);
        Ok(WavFile {
            final_path,
            out,
            channels,
            sample_rate,
            samples: 0,
            max_samples: MAX_DATA_BYTES / block * u64::from(channels),
            frames_since_flush: 0,
            flush_every_frames,
            truncated: false,
        })
    }

    /// Whole frames written so far.
    pub fn frames(&self) -> u64 {
        self.samples / u64::from(self.channels)
    }

    #[cfg(test)]
    pub fn set_max_samples(&mut self, n: u64) {
        self.max_samples = n;
    }

    fn part(&self) -> &Path {
        self.out.path()
    }

    /// Rewrites the header with the RIFF and data sizes for the whole frames written: the
    /// whole 44 bytes in one write (one `pwrite` at the flush), not the two sizes apart.
    fn rewrite_sizes(&mut self) -> io::Result<()> {
        let data = (self.frames() * u64::from(self.channels) * BYTES_PER_SAMPLE) as u32;
        self.out
            .write_all_at(&header(self.channels, self.sample_rate, data), 0)
    }

    /// Appends interleaved samples; a frame split across calls is completed by the next one.
    pub fn write(&mut self, samples: &[i16]) -> Result<(), StoreError> {
        let room = self.max_samples.saturating_sub(self.samples);
        let take = (samples.len() as u64).min(room) as usize;
        if take < samples.len() {
            self.truncated = true;
        }
        let before = self.frames();
        if let Err(e) = write_le(&mut self.out, &samples[..take]) {
            return Err(io_err(self.part())(e));
        }
        self.samples += take as u64;
        self.frames_since_flush += self.frames() - before;
        let aligned = self.samples.is_multiple_of(u64::from(self.channels));
        if aligned && self.frames_since_flush >= self.flush_every_frames {
            // The .part is a playable WAV up to here once this reaches the disk.
            if let Err(e) = self.rewrite_sizes().and_then(|()| self.out.flush()) {
                return Err(io_err(self.part())(e));
            }
            self.frames_since_flush = 0;
        }
        Ok(())
    }

    /// Completes a split frame with silence, writes the final header, syncs the data and
    /// renames `.part` to `.wav`.
    pub fn finish(mut self) -> Result<Finished, StoreError> {
        let part = self.part().to_path_buf();
        while !self.samples.is_multiple_of(u64::from(self.channels)) {
            self.out.write_all(&[0, 0]).map_err(io_err(&part))?;
            self.samples += 1;
        }
        let frames = self.frames();
        self.rewrite_sizes().map_err(io_err(&part))?;
        let size_bytes = self
            .out
            .finish_as(&self.final_path)
            .map_err(io_err(&part))?;
        Ok(Finished {
            frames,
            size_bytes,
            truncated: self.truncated,
        })
    }
}

impl AudioFile for WavFile {
    fn write(&mut self, samples: &[i16]) -> Result<(), StoreError> {
        WavFile::write(self, samples)
    }

    fn frames(&self) -> u64 {
        WavFile::frames(self)
    }

    fn finish(self: Box<Self>) -> Result<Finished, StoreError> {
        WavFile::finish(*self)
    }

    #[cfg(test)]
    fn set_max_samples(&mut self, n: u64) {
        WavFile::set_max_samples(self, n);
    }
}

/// Writes 16-bit samples as little-endian bytes. On a little-endian machine those are the
/// samples' own bytes, handed on with no copy through a zeroed buffer. They go in 1 KiB
/// pieces: glibc copies bigger blocks with `rep movsb`, which callgrind counts one
/// instruction a byte, and the figures in perf/ are callgrind's.
fn write_le(out: &mut impl Write, samples: &[i16]) -> std::io::Result<()> {
    #[cfg(target_endian = "little")]
    {
        for chunk in samples.chunks(512) {
            // SAFETY: an `i16` is two initialised bytes with no padding, and `u8` has
            // alignment 1, so the chunk's memory is a valid `[u8]` twice as long, borrowed
            // for as long as `samples`.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    chunk.as_ptr().cast::<u8>(),
                    std::mem::size_of_val(chunk),
                )
            };
            out.write_all(bytes)?;
        }
        Ok(())
    }
    #[cfg(not(target_endian = "little"))]
    {
        let mut bytes = [0u8; 1024];
        for chunk in samples.chunks(bytes.len() / 2) {
            for (b, s) in bytes.chunks_exact_mut(2).zip(chunk) {
                b.copy_from_slice(&s.to_le_bytes());
            }
            out.write_all(&bytes[..chunk.len() * 2])?;
        }
        Ok(())
    }
}

/// The canonical 44-byte header of a 16-bit PCM WAV holding `data_bytes` of samples.
fn header(channels: u16, sample_rate: u32, data_bytes: u32) -> [u8; HEADER_LEN as usize] {
    let block_align = channels * (BITS / 8);
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(data_bytes + (HEADER_LEN as u32 - 8)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // WAVE_FORMAT_PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&BITS.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// Makes a `.part` a valid WAV and renames it to `final_path`.
///
/// We wrote the file, so its layout is known: the header is rewritten whole from the catalog's
/// channels and rate (it may be stale, or not on disk at all if the crash came before the first
/// flush), the data size is taken from the file length, and a trailing partial frame is cut.
pub fn recover_part(
    part: &Path,
    final_path: &Path,
    channels: u16,
    sample_rate: u32,
) -> Result<Finished, StoreError> {
    if channels == 0 || sample_rate == 0 {
        return Err(StoreError::Io {
            path: part.to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "catalog row has no channels or sample rate",
            ),
        });
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(part)
        .map_err(io_err(part))?;
    let len = file.metadata().map_err(io_err(part))?.len();
    let block = u64::from(channels) * BYTES_PER_SAMPLE;
    let data = (len.saturating_sub(HEADER_LEN) / block * block).min(MAX_DATA_BYTES / block * block);
    file.set_len(HEADER_LEN + data).map_err(io_err(part))?;
    file.seek(SeekFrom::Start(0)).map_err(io_err(part))?;
    file.write_all(&header(channels, sample_rate, data as u32))
        .map_err(io_err(part))?;
    file.sync_data().map_err(io_err(part))?;
    drop(file);

    let frames = data / block;
    let reader = hound::WavReader::open(part).map_err(wav_err(part))?;
    if u64::from(reader.len()) != frames * u64::from(channels) {
        return Err(StoreError::Io {
            path: part.to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "repaired header does not read back",
            ),
        });
    }
    drop(reader);
    fs::rename(part, final_path).map_err(io_err(final_path))?;
    Ok(Finished {
        frames,
        size_bytes: HEADER_LEN + data,
        truncated: false,
    })
}

/// Reads the length of a finished `.wav` (the crash came after the rename, before the commit).
pub fn inspect_final(path: &Path) -> Result<Finished, StoreError> {
    let reader = hound::WavReader::open(path).map_err(wav_err(path))?;
    let frames = u64::from(reader.duration());
    drop(reader);
    let size_bytes = fs::metadata(path).map_err(io_err(path))?.len();
    Ok(Finished {
        frames,
        size_bytes,
        truncated: false,
    })
}
