//! Evidence files: each call's frames ([`voxtap_core::evidence`]) as a pcapng compressed with
//! LZ4, `DIR/evidence/YYYY-MM-DD/<calls.id>-<Call-ID>.pcapng.lz4`, catalogued in `evidence`.
//!
//! A file is one pcapng section (a Section Header Block, an Interface Description Block per
//! link type as it first appears, an Enhanced Packet Block per frame, timestamps in
//! nanoseconds) compressed as one LZ4 frame. While the call runs, each chunk the engine hands
//! out is appended, uncompressed, to `<file>.part` with one open, one append and one close (no
//! descriptor kept between them, so thousands of calls cost neither descriptors nor a write
//! per packet); at the call's end the part is compressed into the file in one streamed pass
//! and removed (see docs/evidence.md for the figures). One LZ4 frame rather than one per
//! chunk: TShark 4.0 misreads some files of concatenated LZ4 frames.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use voxtap_core::Timestamp;
use voxtap_core::evidence::{EvidenceChunk, EvidenceFrame};
use voxtap_core::vocab::CallHandle;

use crate::names;

/// `evidence.format` of the files this writes.
pub const FORMAT: &str = "pcapng+lz4";
/// The extension of an evidence file.
pub const EXTENSION: &str = "pcapng.lz4";

/// `evidence/YYYY-MM-DD` of a UTC instant, relative to the store directory.
pub fn day_dir(ts: Timestamp) -> PathBuf {
    let text = ts.to_string(); // 2005-09-09T12:02:25.330Z
    PathBuf::from("evidence").join(&text[0..10])
}

/// One call's file while the call runs.
struct OpenEvidence {
    row: i64,
    rel: PathBuf,
    /// The link types given an Interface Description Block, in order: a frame's interface id
    /// is its link type's index here.
    interfaces: Vec<u32>,
    frames: u64,
    bytes: u64,
    last: Timestamp,
    /// Why the file could not be written; later chunks are counted and dropped.
    failed: Option<String>,
}

/// What the writer did in this run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvidenceReport {
    /// Evidence files started.
    pub files: u64,
    /// Appends (each one open, write, close) and end-of-call compressions: the write
    /// operations evidence cost.
    pub writes: u64,
    /// Bytes appended to `.part` files (uncompressed).
    pub bytes_written: u64,
    pub frames_written: u64,
    /// Files the disk refused (their rows are `failed`, with the reason).
    pub write_failed: u64,
    /// Frames of failed files dropped after the failure.
    pub frames_dropped: u64,
}

#[derive(Default)]
pub(crate) struct EvidenceWriter {
    open: HashMap<CallHandle, OpenEvidence>,
    pub(crate) report: EvidenceReport,
    /// Reused for each chunk's pcapng bytes.
    pcapng: Vec<u8>,
}

/// Errors name the file.
#[derive(Debug, thiserror::Error)]
#[error("evidence {}: {source}", path.display())]
pub struct EvidenceError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl EvidenceWriter {
    /// Writes one chunk of call `call_row`'s evidence. A write the disk refuses marks the row
    /// `failed` (counted); only a catalog error is returned.
    pub(crate) fn chunk(
        &mut self,
        dir: &Path,
        db: &Connection,
        call_row: i64,
        sip_call_id: &str,
        chunk: &EvidenceChunk,
    ) -> rusqlite::Result<()> {
        if !self.open.contains_key(&chunk.call) {
            let f = self.start(dir, db, call_row, sip_call_id, chunk.first_ts)?;
            self.open.insert(chunk.call, f);
        }
        let Some(f) = self.open.get_mut(&chunk.call) else {
            return Ok(());
        };
        if f.failed.is_none() && chunk.frames > 0 {
            let fresh = f.frames == 0 && f.bytes == 0;
            self.pcapng.clear();
            encode(&mut self.pcapng, fresh, &mut f.interfaces, chunk.frames());
            match append(&part_path(&dir.join(&f.rel)), &self.pcapng) {
                Ok(n) => {
                    f.bytes += n as u64;
                    f.frames += u64::from(chunk.frames);
                    f.last = f.last.max(chunk.last_ts);
                    self.report.writes += 1;
                    self.report.bytes_written += n as u64;
                    self.report.frames_written += u64::from(chunk.frames);
                }
                Err(e) => {
                    f.failed = Some(e.to_string());
                    self.report.write_failed += 1;
                }
            }
        }
        if f.failed.is_some() {
            self.report.frames_dropped += u64::from(chunk.frames);
        }
        if chunk.last && f.failed.is_none() {
            match compress(&dir.join(&f.rel)) {
                Ok(n) => {
                    f.bytes = n;
                    self.report.writes += 1;
                }
                Err(e) => {
                    f.failed = Some(e.to_string());
                    self.report.write_failed += 1;
                }
            }
        }
        let (state, reason) = match (&f.failed, chunk.last) {
            (Some(why), _) => ("failed", Some(why.clone())),
            (None, true) => ("complete", None),
            (None, false) => ("writing", None),
        };
        db.prepare_cached(
            "UPDATE evidence SET frames = ?2, size_bytes = ?3, last_time = ?4, state = ?5,
                state_reason = ?6
             WHERE id = ?1",
        )?
        .execute(params![
            f.row,
            f.frames as i64,
            f.bytes as i64,
            f.last.to_string(),
            state,
            reason
        ])?;
        if chunk.last {
            self.open.remove(&chunk.call);
        }
        Ok(())
    }

    fn start(
        &mut self,
        dir: &Path,
        db: &Connection,
        call_row: i64,
        sip_call_id: &str,
        first: Timestamp,
    ) -> rusqlite::Result<OpenEvidence> {
        let day = day_dir(first);
        let made = crate::create_private_dir(&dir.join("evidence"))
            .and_then(|()| crate::create_private_dir(&dir.join(&day)));
        let base = names::sanitise_call_id(sip_call_id);
        let mut n = 1;
        let rel = loop {
            let name = if n == 1 {
                format!("{call_row}-{base}.{EXTENSION}")
            } else {
                format!("{call_row}-{base}-{n}.{EXTENSION}")
            };
            let rel = day.join(name);
            if !dir.join(&rel).exists() && !part_path(&dir.join(&rel)).exists() {
                break rel;
            }
            n += 1;
        };
        let failed = made.err().map(|e| e.to_string());
        if failed.is_some() {
            self.report.write_failed += 1;
        }
        db.prepare_cached(
            "INSERT INTO evidence (call_id, path, format, frames, size_bytes, first_time,
                last_time, state, state_reason)
             VALUES (?1, ?2, ?3, 0, 0, ?4, ?4, ?5, ?6)",
        )?
        .execute(params![
            call_row,
            rel.to_string_lossy(),
            FORMAT,
            first.to_string(),
            if failed.is_some() {
                "failed"
            } else {
                "writing"
            },
            failed
        ])?;
        self.report.files += 1;
        Ok(OpenEvidence {
            row: db.last_insert_rowid(),
            rel,
            interfaces: Vec::new(),
            frames: 0,
            bytes: 0,
            last: first,
            failed,
        })
    }

    /// The end of a run: files whose call never sent its last chunk (a live run stopped) are
    /// complete as far as they go.
    pub(crate) fn finish(&mut self, dir: &Path, db: &Connection) -> rusqlite::Result<()> {
        for (_, f) in self.open.drain() {
            if f.failed.is_none() {
                let (state, reason, size) = match compress(&dir.join(&f.rel)) {
                    Ok(n) => ("complete", "end-of-run".to_string(), n),
                    Err(e) => {
                        self.report.write_failed += 1;
                        ("failed", e.to_string(), f.bytes)
                    }
                };
                db.prepare_cached(
                    "UPDATE evidence SET state = ?2, state_reason = ?3, size_bytes = ?4
                     WHERE id = ?1",
                )?
                .execute(params![f.row, state, reason, size as i64])?;
            }
        }
        Ok(())
    }
}

/// The uncompressed pcapng a running call's chunks are appended to.
pub fn part_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

/// Rows a run left `writing` (it died): their `.part` is compressed into the file, which
/// holds every chunk that reached the disk; the rows become `complete`, `interrupted`.
pub(crate) fn recover(dir: &Path, db: &Connection) -> Result<(), crate::StoreError> {
    let catalog = dir.join(crate::CATALOG_FILE);
    let sq = |source| crate::StoreError::Sqlite {
        path: catalog.clone(),
        source,
    };
    let rows: Vec<(i64, String)> = db
        .prepare("SELECT id, path FROM evidence WHERE state = 'writing'")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(sq)?;
    for (id, rel) in rows {
        let abs = dir.join(&rel);
        let (state, reason, size) = if part_path(&abs).exists() {
            match compress(&abs) {
                Ok(n) => ("complete", "interrupted".to_string(), n as i64),
                Err(e) => ("failed", format!("interrupted; {e}"), 0),
            }
        } else {
            (
                "failed",
                "interrupted before any frame reached the disk".to_string(),
                0,
            )
        };
        db.prepare_cached(
            "UPDATE evidence SET state = ?2, state_reason = ?3, size_bytes = ?4 WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![id, state, reason, size]))
        .map_err(sq)?;
    }
    Ok(())
}

impl EvidenceWriter {}

/// Appends `pcapng` to `path` (created 0640): one open, one write, one close. Returns the
/// bytes appended.
fn append(path: &Path, pcapng: &[u8]) -> Result<usize, EvidenceError> {
    let err = |source| EvidenceError {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(crate::FILE_MODE)
        .open(path)
        .map_err(err)?;
    file.write_all(pcapng).map_err(err)?;
    Ok(pcapng.len())
}

/// Compresses `path`'s `.part` into `path` as one LZ4 frame (64 KiB blocks, streamed: a long
/// call's file is never held in memory), then removes the `.part`. Returns the size of
/// `path`. One frame, because TShark 4.0 misreads some files of concatenated LZ4 frames.
fn compress(path: &Path) -> Result<u64, EvidenceError> {
    let part = part_path(path);
    let err = |p: &Path| {
        let p = p.to_owned();
        move |source| EvidenceError { path: p, source }
    };
    let mut input = io::BufReader::new(std::fs::File::open(&part).map_err(err(&part))?);
    let out = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(crate::FILE_MODE)
        .open(path)
        .map_err(err(path))?;
    let info = lz4_flex::frame::FrameInfo::new().block_size(lz4_flex::frame::BlockSize::Max64KB);
    let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, io::BufWriter::new(out));
    io::copy(&mut input, &mut enc).map_err(err(path))?;
    let mut w = enc
        .finish()
        .map_err(|e| err(path)(io::Error::other(e.to_string())))?;
    w.flush().map_err(err(path))?;
    let file = w.into_inner().map_err(|e| err(path)(e.into_error()))?;
    file.sync_data().map_err(err(path))?;
    let size = file.metadata().map_err(err(path))?.len();
    std::fs::remove_file(&part).map_err(err(&part))?;
    Ok(size)
}

/// Snap length written in each Interface Description Block.
const SNAPLEN: u32 = 262_144;

/// Appends the pcapng blocks of `frames`: a Section Header Block first if `fresh`, an
/// Interface Description Block for each link type not in `interfaces` yet, an Enhanced
/// Packet Block per frame. Little-endian, timestamps in nanoseconds (`if_tsresol` 9).
pub fn encode<'a>(
    out: &mut Vec<u8>,
    fresh: bool,
    interfaces: &mut Vec<u32>,
    frames: impl Iterator<Item = EvidenceFrame<'a>>,
) {
    if fresh {
        // SHB: magic, version 1.0, section length unknown, no options.
        block(out, 0x0A0D_0D0A, |b| {
            b.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&(-1i64).to_le_bytes());
        });
    }
    for f in frames {
        let id = match interfaces.iter().position(|&l| l == f.linktype) {
            Some(i) => i,
            None => {
                interfaces.push(f.linktype);
                block(out, 1, |b| {
                    b.extend_from_slice(&(f.linktype as u16).to_le_bytes());
                    b.extend_from_slice(&0u16.to_le_bytes());
                    b.extend_from_slice(&SNAPLEN.to_le_bytes());
                    // if_tsresol = 9 (nanoseconds), then opt_endofopt.
                    b.extend_from_slice(&9u16.to_le_bytes());
                    b.extend_from_slice(&1u16.to_le_bytes());
                    b.extend_from_slice(&[9, 0, 0, 0]);
                    b.extend_from_slice(&[0, 0, 0, 0]);
                });
                interfaces.len() - 1
            }
        };
        block(out, 6, |b| {
            let ts = f.ts.0;
            b.extend_from_slice(&(id as u32).to_le_bytes());
            b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            b.extend_from_slice(&(ts as u32).to_le_bytes());
            let len = f.data.len() as u32;
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(f.data);
            b.resize(b.len().next_multiple_of(4), 0);
        });
    }
}

/// One block: type, total length, body (padded to 4), total length again.
fn block(out: &mut Vec<u8>, kind: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    body(out);
    out.resize(out.len().next_multiple_of(4), 0);
    let total = (out.len() - start + 4) as u32;
    out[start + 4..start + 8].copy_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
}

/// One frame read back from an evidence file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFrame {
    pub ts: Timestamp,
    pub linktype: u32,
    pub data: Vec<u8>,
}

/// Reads an evidence file back: decompresses its LZ4 frames and walks the pcapng this
/// module writes (its own blocks only; another pcapng is refused with the offset).
pub fn read(path: &Path) -> Result<Vec<StoredFrame>, EvidenceError> {
    let err = |source| EvidenceError {
        path: path.to_owned(),
        source,
    };
    // A call still running has only its uncompressed part so far.
    let part = part_path(path);
    if !path.exists() && part.exists() {
        let raw = std::fs::read(&part).map_err(|source| EvidenceError {
            path: part.clone(),
            source,
        })?;
        return walk(path, raw);
    }
    let packed = std::fs::read(path).map_err(err)?;
    // One LZ4 frame per chunk: each decoder reads exactly one and leaves the rest.
    let mut rest: &[u8] = &packed;
    let mut raw = Vec::new();
    while !rest.is_empty() {
        let before = rest.len();
        io::Read::read_to_end(&mut lz4_flex::frame::FrameDecoder::new(&mut rest), &mut raw)
            .map_err(err)?;
        if rest.len() == before {
            break;
        }
    }
    walk(path, raw)
}

/// The frames of the pcapng `raw` (read from `path`, for the errors).
fn walk(path: &Path, raw: Vec<u8>) -> Result<Vec<StoredFrame>, EvidenceError> {
    let err = |source| EvidenceError {
        path: path.to_owned(),
        source,
    };
    let bad = |at: usize, what: &str| {
        err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("pcapng byte {at}: {what}"),
        ))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(raw.get(at..at + 4)?.try_into().ok()?))
    };
    let mut interfaces: Vec<u32> = Vec::new();
    let mut frames = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let (Some(kind), Some(len)) = (u32_at(at), u32_at(at + 4)) else {
            return Err(bad(at, "block cut short"));
        };
        let len = len as usize;
        if len < 12 || at + len > raw.len() {
            return Err(bad(at, "block length out of range"));
        }
        let body = &raw[at + 8..at + len - 4];
        match kind {
            0x0A0D_0D0A => {
                if body.get(..4) != Some(&0x1A2B_3C4Du32.to_le_bytes()[..]) {
                    return Err(bad(at, "not a little-endian section"));
                }
                interfaces.clear();
            }
            1 => {
                let Some(lt) = body.get(..2) else {
                    return Err(bad(at, "interface block cut short"));
                };
                interfaces.push(u32::from(u16::from_le_bytes([lt[0], lt[1]])));
            }
            6 => {
                let field = |i: usize| u32_at(at + 8 + i * 4);
                let (Some(id), Some(hi), Some(lo), Some(cap)) =
                    (field(0), field(1), field(2), field(3))
                else {
                    return Err(bad(at, "packet block cut short"));
                };
                let Some(&linktype) = interfaces.get(id as usize) else {
                    return Err(bad(at, "packet of an undeclared interface"));
                };
                let Some(data) = body.get(20..20 + cap as usize) else {
                    return Err(bad(at, "packet data cut short"));
                };
                frames.push(StoredFrame {
                    ts: Timestamp((u64::from(hi) << 32) | u64::from(lo)),
                    linktype,
                    data: data.to_vec(),
                });
            }
            _ => {}
        }
        at += len;
    }
    Ok(frames)
}

/// An evidence file's catalog row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceRow {
    pub id: i64,
    pub call_id: i64,
    /// Relative to DIR.
    pub path: PathBuf,
    pub format: String,
    pub frames: i64,
    pub size_bytes: i64,
    pub first_time: String,
    pub last_time: String,
    pub state: String,
    pub state_reason: Option<String>,
}

/// The evidence rows of call `call_id` (calls.id), oldest first.
pub fn rows_of_call(db: &Connection, call_id: i64) -> rusqlite::Result<Vec<EvidenceRow>> {
    let mut s = db.prepare(
        "SELECT id, call_id, path, format, frames, size_bytes, first_time, last_time, state,
            state_reason
         FROM evidence WHERE call_id = ?1 ORDER BY id",
    )?;
    let rows = s.query_map(params![call_id], |r| {
        Ok(EvidenceRow {
            id: r.get(0)?,
            call_id: r.get(1)?,
            path: PathBuf::from(r.get::<_, String>(2)?),
            format: r.get(3)?,
            frames: r.get(4)?,
            size_bytes: r.get(5)?,
            first_time: r.get(6)?,
            last_time: r.get(7)?,
            state: r.get(8)?,
            state_reason: r.get(9)?,
        })
    })?;
    rows.collect()
}

/// The `calls.id` a CALL argument names: a row id, or the latest call with that SIP Call-ID.
pub fn find_call(db: &Connection, call: &str) -> rusqlite::Result<Option<i64>> {
    if let Ok(id) = call.parse::<i64>()
        && let Some(id) = db
            .query_row("SELECT id FROM calls WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()?
    {
        return Ok(Some(id));
    }
    db.query_row(
        "SELECT id FROM calls WHERE sip_call_id = ?1 ORDER BY id DESC LIMIT 1",
        params![call],
        |r| r.get(0),
    )
    .optional()
}
