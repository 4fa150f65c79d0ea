//! Recording files in four formats behind one interface, each playable after a crash.
//!
//! Every file is written as `<name>.part` and renamed to `<name>` when finished. It is valid from
//! its first byte on disk: the header is written and flushed when the file is created, audio
//! reaches the file about every `flush_secs`, and [`recover`] makes a `.part` left by a crash whole.
//!
//! What a `kill -9` costs (the power-loss case adds what the kernel had not yet written back):
//!
//! | format | on disk at creation | audio reaches the file | lost by a kill -9, at most |
//! |--------|---------------------|------------------------|----------------------------|
//! | WAV  | 44-byte header, no data | every `flush_secs` (header rewritten) | `flush_secs` |
//! | FLAC | `fLaC` + STREAMINFO (total unknown) | whole frames, every `flush_secs` | `flush_secs` + one block (≤ 128 ms) |
//! | Opus | OpusHead, OpusTags, one silent packet | one Ogg page every `flush_secs` | `flush_secs` + 40 ms (frame being filled, lookahead) |
//! | MP3  | ID3v2 tag, Info frame, two silent frames | frames as LAME emits them, every `flush_secs` | `flush_secs` + LAME's lag (≤ 250 ms) |
//!
//! `userspace/store/src/audio/README.md` has the same table and the measured numbers.

mod flac;
mod mp3;
mod ogg;
mod opus;
mod resample;
pub mod sink;
pub mod wav;

use std::borrow::Cow;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use voxtap_core::vocab::RecordingFormat;

use crate::StoreError;

/// Mode of every recording file, whatever the umask.
pub const FILE_MODE: u32 = 0o640;

/// What a finished (or recovered) recording holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Audio frames (one sample per channel) at the recording's own rate.
    pub frames: u64,
    pub size_bytes: u64,
    /// Audio was dropped because the file reached its size limit (only WAV has one, 4 GiB).
    pub truncated: bool,
}

/// One recording being written.
pub trait AudioFile: Send {
    /// Appends interleaved 16-bit samples (a frame split across calls is completed by the next call).
    fn write(&mut self, samples: &[i16]) -> Result<(), StoreError>;
    /// Whole frames written so far.
    fn frames(&self) -> u64;
    /// Completes a split frame with silence, writes the trailer, syncs, renames `.part` to the
    /// final name.
    fn finish(self: Box<Self>) -> Result<Finished, StoreError>;
    /// Lowers the size limit, for tests of the WAV 4 GiB limit.
    #[cfg(test)]
    fn set_max_samples(&mut self, _n: u64) {
        unimplemented!("only WAV files have a size limit")
    }
}

/// Why an encoder or a repair failed; carried in [`StoreError::Io`], which names the file.
#[derive(thiserror::Error, Debug)]
pub enum AudioError {
    #[error("libFLAC: {0}")]
    Flac(String),
    #[error("libopus: {0}")]
    Opus(String),
    #[error("LAME: {0}")]
    Lame(String),
    #[error("{format} cannot record at {rate} Hz ({accepted})")]
    Rate {
        format: &'static str,
        rate: u32,
        accepted: &'static str,
    },
    #[error("{channels} channels: only 1 or 2 are recorded")]
    Channels { channels: u16 },
    #[error("not a {format} file voxtap wrote: {what}")]
    Invalid { format: &'static str, what: String },
}

/// Starts a recording at `final_path` + `.part`; its header is on disk when this returns.
pub fn create(
    format: RecordingFormat,
    final_path: PathBuf,
    channels: u16,
    sample_rate: u32,
    flush_secs: f64,
) -> Result<Box<dyn AudioFile>, StoreError> {
    if !(1..=2).contains(&channels) && format != RecordingFormat::Wav {
        return Err(audio_err(
            &part_path(&final_path),
            AudioError::Channels { channels },
        ));
    }
    Ok(match format {
        RecordingFormat::Wav => Box::new(wav::WavFile::create(
            final_path,
            channels,
            sample_rate,
            flush_secs,
        )?),
        RecordingFormat::Flac => Box::new(flac::FlacFile::create(
            final_path,
            channels,
            sample_rate,
            flush_secs,
        )?),
        RecordingFormat::Opus => Box::new(opus::OpusFile::create(
            final_path,
            channels,
            sample_rate,
            flush_secs,
        )?),
        RecordingFormat::Mp3 => Box::new(mp3::Mp3File::create(
            final_path,
            channels,
            sample_rate,
            flush_secs,
        )?),
    })
}

/// Makes a `.part` left by a crash whole (a torn tail cut, the header made consistent), and
/// renames it to `final_path`. `channels` and `sample_rate` come from the catalog row.
pub fn recover(
    format: RecordingFormat,
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
    let done = match format {
        RecordingFormat::Wav => return wav::recover_part(part, final_path, channels, sample_rate),
        RecordingFormat::Flac => flac::repair(part)?,
        RecordingFormat::Opus => opus::repair(part, sample_rate)?,
        RecordingFormat::Mp3 => mp3::repair(part)?,
    };
    sync_path(part)?;
    fs::rename(part, final_path).map_err(io_err(final_path))?;
    Ok(done)
}

/// Reads the length of a finished file (the crash came after the rename, before the commit).
pub fn inspect_final(
    format: RecordingFormat,
    path: &Path,
    sample_rate: u32,
) -> Result<Finished, StoreError> {
    match format {
        RecordingFormat::Wav => wav::inspect_final(path),
        RecordingFormat::Flac => flac::inspect(path),
        RecordingFormat::Opus => opus::inspect(path, sample_rate),
        RecordingFormat::Mp3 => mp3::inspect(path),
    }
}

/// The format a catalog row names (`recordings.format`).
pub fn format_named(name: &str, path: &Path) -> Result<RecordingFormat, StoreError> {
    RecordingFormat::from_name(name).ok_or_else(|| StoreError::Io {
        path: path.to_owned(),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("catalog row names an unknown format {name:?}"),
        ),
    })
}

/// `path` with `.part` appended: `x.wav` -> `x.wav.part`.
pub fn part_path(final_path: &Path) -> PathBuf {
    let mut s = final_path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn audio_err(path: &Path, e: AudioError) -> StoreError {
    let kind = match e {
        AudioError::Invalid { .. } => io::ErrorKind::InvalidData,
        AudioError::Rate { .. } | AudioError::Channels { .. } => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    StoreError::Io {
        path: path.to_owned(),
        source: io::Error::new(kind, e),
    }
}

pub(crate) fn invalid(path: &Path, format: &'static str, what: impl Into<String>) -> StoreError {
    audio_err(
        path,
        AudioError::Invalid {
            format,
            what: what.into(),
        },
    )
}

fn sync_path(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|f| f.sync_data())
        .map_err(io_err(path))
}

/// Seconds of audio between flushes as a frame count; 0 (or nonsense) flushes on every write.
fn flush_every_frames(flush_secs: f64, sample_rate: u32) -> u64 {
    if flush_secs.is_finite() && flush_secs > 0.0 {
        ((flush_secs * f64::from(sample_rate)) as u64).max(1)
    } else {
        1
    }
}

/// Carries the samples of a frame split across `write` calls, so encoders see whole frames.
struct Interleave {
    channels: usize,
    pending: Vec<i16>,
}

impl Interleave {
    fn new(channels: u16) -> Interleave {
        Interleave {
            channels: usize::from(channels.max(1)),
            pending: Vec::new(),
        }
    }

    /// The whole interleaved frames made of what was pending and `samples`; the samples of a
    /// frame left split are kept for the next call.
    fn whole<'a>(&mut self, samples: &'a [i16]) -> Cow<'a, [i16]> {
        if self.pending.is_empty() && samples.len().is_multiple_of(self.channels) {
            return Cow::Borrowed(samples);
        }
        let mut all = std::mem::take(&mut self.pending);
        all.extend_from_slice(samples);
        let whole = all.len() / self.channels * self.channels;
        self.pending = all.split_off(whole);
        Cow::Owned(all)
    }

    /// The split frame completed with silence, if there is one.
    fn take_padded(&mut self) -> Option<Vec<i16>> {
        if self.pending.is_empty() {
            return None;
        }
        let mut frame = std::mem::take(&mut self.pending);
        frame.resize(self.channels, 0);
        Some(frame)
    }
}

#[cfg(test)]
mod tests;
