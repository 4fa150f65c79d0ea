//! Offline capture: pcap (µs and ns, either byte order) and pcapng files, read as a stream.
//!
//! Frames are handed out as borrowed slices of one reused buffer, so a long file costs no
//! allocation per packet. A corrupt file ends with an error that names the file and the byte
//! offset of the bad record; every frame before it has already been handed out.
//!
//! Read by hand rather than through `pcap-file` (issue 12): that crate's readers stop for good
//! at a bad record, refuse captures with a snapshot length, and misread pcapng timestamps; see
//! "Capture file reading" in perf/RESULTS.md for the figures.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use voxtap_core::{LinkType, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt capture at byte offset {offset}: {what}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
}

/// One frame of a capture file.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef<'a> {
    pub ts: Timestamp,
    pub link: LinkType,
    pub data: &'a [u8],
    /// Byte offset of the frame's record in the file.
    pub offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        link: LinkType,
        /// The file header's snapshot length: no record is longer.
        snaplen: usize,
    },
    PcapNg,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    units_per_sec: u64,
    offset_secs: i64,
}

/// Largest record accepted; anything bigger is corruption, not a frame.
const MAX_RECORD: usize = 16 * 1024 * 1024;

pub struct CaptureFile {
    path: PathBuf,
    reader: BufReader<File>,
    format: Format,
    /// Byte order of the current pcapng section.
    ng_big_endian: bool,
    interfaces: Vec<Interface>,
    offset: u64,
    len: u64,
    buf: Vec<u8>,
    /// The pcapng magic was read by `open` and starts the first block.
    pending_ng_magic: bool,
    /// Bytes read ahead while looking for the next good record, read before the file.
    ahead: Vec<u8>,
    ahead_pos: usize,
    /// Corrupt stretches skipped: where they began and how many bytes.
    skipped: Vec<(u64, u64)>,
}

/// How far past a corrupt record the reader looks for the next good one.
const RESYNC_WINDOW: usize = 4 * 1024 * 1024;

impl CaptureFile {
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        let io_err = |source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut cf = CaptureFile {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            format: Format::PcapNg,
            ng_big_endian: false,
            interfaces: Vec::new(),
            offset: 0,
            len,
            buf: Vec::with_capacity(65_536),
            pending_ng_magic: false,
            ahead: Vec::new(),
            ahead_pos: 0,
            skipped: Vec::new(),
        };
        let mut magic = [0u8; 4];
        if !cf.read_exact_or_eof(&mut magic)? {
            return Err(cf.corrupt(0, "empty file, not a pcap or pcapng capture"));
        }
        match magic {
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d] => {
                let big_endian = magic[0] == 0xa1;
                let nanos = magic == [0x4d, 0x3c, 0xb2, 0xa1] || magic == [0xa1, 0xb2, 0x3c, 0x4d];
                let mut rest = [0u8; 20];
                if !cf.read_exact_or_eof(&mut rest)? {
                    return Err(cf.corrupt(4, "pcap file header is truncated"));
                }
                let linktype = u32_at(&rest, 16, big_endian) & 0x0fff_ffff;
                let snaplen = match u32_at(&rest, 12, big_endian) as usize {
                    // 0 (seen from some writers) and absurd values mean "no limit".
                    0 => MAX_RECORD,
                    n => n.min(MAX_RECORD),
                };
                cf.format = Format::Pcap {
                    big_endian,
                    nanos,
                    link: LinkType::from_pcap(linktype),
                    snaplen,
                };
            }
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                // The section header is read as an ordinary block.
                cf.format = Format::PcapNg;
                cf.pending_ng_magic = true;
            }
            _ => return Err(cf.corrupt(0, "not a pcap or pcapng file (unknown magic number)")),
        }
        Ok(cf)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes consumed so far, for progress reports.
    pub fn position(&self) -> u64 {
        self.offset
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Corrupt stretches of a pcap file skipped to reach the next good record: each one's byte
    /// offset and length, adjoining ones as one. Every record outside them was read. (A record
    /// that lost bytes is handed out with the next one's first bytes as its tail, and the skip
    /// starts after it.)
    pub fn skipped(&self) -> &[(u64, u64)] {
        &self.skipped
    }

    /// The next frame, `Ok(None)` at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<FrameRef<'_>>, CaptureError> {
        match self.format {
            Format::Pcap {
                big_endian,
                nanos,
                link,
                snaplen,
            } => self.next_pcap(big_endian, nanos, link, snaplen),
            Format::PcapNg => self.next_pcapng(),
        }
    }

    fn next_pcap(
        &mut self,
        be: bool,
        nanos: bool,
        link: LinkType,
        snaplen: usize,
    ) -> Result<Option<FrameRef<'_>>, CaptureError> {
        let mut at = self.offset;
        let mut hdr = [0u8; 16];
        if !self.read_exact_or_eof(&mut hdr)? {
            if self.offset > at {
                return Err(self.corrupt(at, "the file ends inside a record header"));
            }
            return Ok(None);
        }
        let record = PcapRecord { be, nanos, snaplen };
        if let Err(why) = record.check(&hdr) {
            // A damaged file (bytes lost or garbled): find the next good record and go on,
            // saying what was skipped, rather than read garbage or give up on the rest.
            match self.resync(&hdr, at, &record)? {
                Some((found, next)) => {
                    self.note_skip(at, found - at);
                    at = found;
                    hdr = next;
                }
                None => {
                    return Err(self.corrupt(at, &format!("{why}, and no good record follows")));
                }
            }
        }
        let secs = u32_at(&hdr, 0, be) as u64;
        let frac = u32_at(&hdr, 4, be) as u64;
        let caplen = u32_at(&hdr, 8, be) as usize;
        let nanos_part = if nanos { frac } else { frac * 1000 };
        self.buf.resize(caplen, 0);
        let mut buf = std::mem::take(&mut self.buf);
        let complete = self.read_exact_or_eof(&mut buf)?;
        self.buf = buf;
        if !complete {
            return Err(self.corrupt(
                at,
                &format!("record of {caplen} bytes is cut short by the end of the file"),
            ));
        }
        let ts = secs * 1_000_000_000 + nanos_part;
        Ok(Some(FrameRef {
            ts: Timestamp(ts),
            link,
            data: &self.buf,
            offset: at,
        }))
    }

    /// Looks past a bad record header (`hdr`, read at `at`) for the next good one: a header
    /// that passes every check and is followed by another that does (or by the end of the
    /// file). Returns its offset and its header, the reader placed just after it.
    fn resync(
        &mut self,
        hdr: &[u8; 16],
        at: u64,
        record: &PcapRecord,
    ) -> Result<Option<(u64, [u8; 16])>, CaptureError> {
        let mut window = hdr.to_vec();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = self.read_some(&mut chunk)?;
            window.extend_from_slice(&chunk[..n]);
            if n == 0 || window.len() >= RESYNC_WINDOW {
                break;
            }
        }
        let eof = window.len() < RESYNC_WINDOW;
        for p in 1..window.len().saturating_sub(15) {
            let h: [u8; 16] = window[p..p + 16].try_into().expect("16 bytes");
            let Ok(caplen) = record.check(&h) else {
                continue;
            };
            let next = p + 16 + caplen;
            let witnessed = match window.get(next..next + 16) {
                Some(n) => record.check(n.try_into().expect("16 bytes")).is_ok(),
                // A record that ends the file exactly is good enough.
                None => eof && next == window.len(),
            };
            if witnessed {
                // What follows the found header is read again, from the window (and then
                // whatever was read ahead beyond it).
                let rest = window.split_off(p + 16);
                self.unread(rest);
                self.offset = at + p as u64 + 16;
                return Ok(Some((at + p as u64, h)));
            }
        }
        Ok(None)
    }

    fn next_pcapng(&mut self) -> Result<Option<FrameRef<'_>>, CaptureError> {
        loop {
            let at = if self.pending_ng_magic {
                self.offset - 4
            } else {
                self.offset
            };
            let mut hdr = [0u8; 8];
            if self.pending_ng_magic {
                self.pending_ng_magic = false;
                hdr[..4].copy_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
                let mut len = [0u8; 4];
                if !self.read_exact_or_eof(&mut len)? {
                    return Err(self.corrupt(at, "section header is truncated"));
                }
                hdr[4..].copy_from_slice(&len);
            } else if !self.read_exact_or_eof(&mut hdr)? {
                return Ok(None);
            }
            let block_type = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            if block_type == 0x0a0d_0d0a {
                // Section header: its byte-order magic decides how the rest is read.
                let mut bom = [0u8; 4];
                if !self.read_exact_or_eof(&mut bom)? {
                    return Err(self.corrupt(at, "section header is truncated"));
                }
                self.ng_big_endian = match bom {
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    _ => return Err(self.corrupt(at, "section header has a bad byte-order magic")),
                };
                self.interfaces.clear();
                let total = u32_at(&hdr, 4, self.ng_big_endian) as usize;
                if !(28..=MAX_RECORD).contains(&total) || !total.is_multiple_of(4) {
                    return Err(
                        self.corrupt(at, &format!("section header length {total} is invalid"))
                    );
                }
                self.read_body(at, total - 12)?;
                continue;
            }
            let be = self.ng_big_endian;
            let block_type = u32_at(&hdr, 0, be);
            let total = u32_at(&hdr, 4, be) as usize;
            if !(12..=MAX_RECORD).contains(&total) || !total.is_multiple_of(4) {
                return Err(self.corrupt(at, &format!("block length {total} is invalid")));
            }
            self.read_body(at, total - 8)?;
            let body_len = total - 12;
            let trailer = u32_at(&self.buf, body_len, be) as usize;
            if trailer != total {
                return Err(self.corrupt(at, "block's trailing length does not match its header"));
            }
            match block_type {
                1 => {
                    // Interface description: link type, then options (if_tsresol, if_tsoffset).
                    if body_len < 8 {
                        return Err(self.corrupt(at, "interface description block is too short"));
                    }
                    let link = LinkType::from_pcap(u16_at(&self.buf, 0, be) as u32);
                    let (units_per_sec, offset_secs) = parse_if_options(&self.buf[8..body_len], be);
                    self.interfaces.push(Interface {
                        link,
                        units_per_sec,
                        offset_secs,
                    });
                }
                6 | 2 => {
                    // Enhanced packet (6), or the obsolete packet block (2) with a 16-bit id.
                    if body_len < 20 {
                        return Err(self.corrupt(at, "packet block is too short"));
                    }
                    let iface = if block_type == 6 {
                        u32_at(&self.buf, 0, be)
                    } else {
                        u16_at(&self.buf, 0, be) as u32
                    };
                    let ts_raw =
                        ((u32_at(&self.buf, 4, be) as u64) << 32) | u32_at(&self.buf, 8, be) as u64;
                    let caplen = u32_at(&self.buf, 12, be) as usize;
                    if 20 + caplen > body_len {
                        return Err(self
                            .corrupt(at, &format!("packet length {caplen} runs past its block")));
                    }
                    let Some(ifc) = self.interfaces.get(iface as usize).copied() else {
                        return Err(self.corrupt(
                            at,
                            &format!("packet names interface {iface}, which was never described"),
                        ));
                    };
                    let ts = ts_from_units(ts_raw, ifc.units_per_sec, ifc.offset_secs);
                    return Ok(Some(FrameRef {
                        ts,
                        link: ifc.link,
                        data: &self.buf[20..20 + caplen],
                        offset: at,
                    }));
                }
                3 => {
                    // Simple packet: interface 0, no timestamp; original length first.
                    let Some(ifc) = self.interfaces.first().copied() else {
                        return Err(self.corrupt(at, "simple packet block before any interface"));
                    };
                    if body_len < 4 {
                        return Err(self.corrupt(at, "simple packet block is too short"));
                    }
                    let orig = u32_at(&self.buf, 0, be) as usize;
                    let caplen = orig.min(body_len - 4);
                    return Ok(Some(FrameRef {
                        ts: Timestamp(0),
                        link: ifc.link,
                        data: &self.buf[4..4 + caplen],
                        offset: at,
                    }));
                }
                _ => {} // statistics, name resolution, custom blocks: not frames
            }
        }
    }

    /// Notes a corrupt stretch skipped; one that continues the last is added to it.
    fn note_skip(&mut self, at: u64, n: u64) {
        match self.skipped.last_mut() {
            Some((a, m)) if *a + *m == at => *m += n,
            _ => self.skipped.push((at, n)),
        }
    }

    /// Puts bytes back in front of whatever is still to be read.
    fn unread(&mut self, mut bytes: Vec<u8>) {
        bytes.extend_from_slice(&self.ahead[self.ahead_pos..]);
        self.ahead = bytes;
        self.ahead_pos = 0;
    }

    /// Reads `n` more bytes of the block that starts at `at` into the buffer.
    fn read_body(&mut self, at: u64, n: usize) -> Result<(), CaptureError> {
        self.buf.resize(n, 0);
        let mut buf = std::mem::take(&mut self.buf);
        let complete = self.read_exact_or_eof(&mut buf)?;
        self.buf = buf;
        if complete {
            Ok(())
        } else {
            Err(self.corrupt(at, "block is cut short by the end of the file"))
        }
    }

    /// Reads what is there, up to `buf.len()`: bytes read ahead first, then the file.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, CaptureError> {
        if self.ahead_pos < self.ahead.len() {
            let n = (self.ahead.len() - self.ahead_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.ahead[self.ahead_pos..self.ahead_pos + n]);
            self.ahead_pos += n;
            if self.ahead_pos == self.ahead.len() {
                self.ahead.clear();
                self.ahead_pos = 0;
            }
            return Ok(n);
        }
        loop {
            match self.reader.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// Fills `buf`; false at end of file (clean if nothing was read, else the caller reports it).
    fn read_exact_or_eof(&mut self, buf: &mut [u8]) -> Result<bool, CaptureError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read_some(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        self.offset += filled as u64;
        if filled == 0 && !buf.is_empty() {
            return Ok(false);
        }
        Ok(filled == buf.len())
    }

    fn corrupt(&self, offset: u64, what: &str) -> CaptureError {
        CaptureError::Corrupt {
            path: self.path.clone(),
            offset,
            what: what.to_string(),
        }
    }
}

/// What a classic pcap record header must be.
struct PcapRecord {
    be: bool,
    nanos: bool,
    snaplen: usize,
}

impl PcapRecord {
    /// The record's captured length, or why the header cannot be one. Times are not judged:
    /// real captures jump by years (anonymised, merged), and the engine bounds what time does.
    fn check(&self, h: &[u8; 16]) -> Result<usize, &'static str> {
        let frac = u32_at(h, 4, self.be);
        let caplen = u32_at(h, 8, self.be) as usize;
        let origlen = u32_at(h, 12, self.be) as usize;
        if frac >= if self.nanos { 1_000_000_000 } else { 1_000_000 } {
            return Err("record timestamp fraction is out of range");
        }
        if caplen > self.snaplen || caplen > MAX_RECORD {
            return Err("record is longer than the file's snapshot length");
        }
        // Not `caplen > origlen`: some writers count a pseudo-header (Linux cooked) in one
        // only. No packet is empty: zeros where records should be are damage.
        if origlen == 0 || origlen > MAX_RECORD {
            return Err("record's original length is implausible");
        }
        Ok(caplen)
    }
}

fn u32_at(b: &[u8], i: usize, be: bool) -> u32 {
    let x = [b[i], b[i + 1], b[i + 2], b[i + 3]];
    if be {
        u32::from_be_bytes(x)
    } else {
        u32::from_le_bytes(x)
    }
}

fn u16_at(b: &[u8], i: usize, be: bool) -> u16 {
    let x = [b[i], b[i + 1]];
    if be {
        u16::from_be_bytes(x)
    } else {
        u16::from_le_bytes(x)
    }
}

/// Reads if_tsresol (9) and if_tsoffset (14) from an interface's options (pcapng §4.2).
fn parse_if_options(mut opts: &[u8], be: bool) -> (u64, i64) {
    let mut units = 1_000_000u64;
    let mut offset = 0i64;
    while opts.len() >= 4 {
        let code = u16_at(opts, 0, be);
        let len = u16_at(opts, 2, be) as usize;
        let padded = (len + 3) & !3;
        let Some(value) = opts.get(4..4 + len) else {
            break;
        };
        match (code, len) {
            (0, _) => break,
            (9, 1) => {
                let r = value[0];
                let exp = (r & 0x7f) as u32;
                units = if r & 0x80 != 0 {
                    2u64.checked_pow(exp)
                } else {
                    10u64.checked_pow(exp)
                }
                .unwrap_or(1_000_000);
            }
            (14, 8) => {
                let v = [
                    value[0], value[1], value[2], value[3], value[4], value[5], value[6], value[7],
                ];
                offset = if be {
                    i64::from_be_bytes(v)
                } else {
                    i64::from_le_bytes(v)
                };
            }
            _ => {}
        }
        opts = opts.get(4 + padded..).unwrap_or(&[]);
    }
    (units.max(1), offset)
}

fn ts_from_units(raw: u64, units_per_sec: u64, offset_secs: i64) -> Timestamp {
    let secs = raw / units_per_sec;
    let frac = raw % units_per_sec;
    let nanos = (frac as u128 * 1_000_000_000 / units_per_sec as u128) as u64;
    let secs = (secs as i64).saturating_add(offset_secs).max(0) as u64;
    Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A µs pcap (Ethernet) of `records` (seconds, payload).
    fn pcap(records: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65_535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (secs, data) in records {
            out.extend_from_slice(&secs.to_le_bytes());
            out.extend_from_slice(&500_000u32.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    fn records(n: usize) -> Vec<(u32, Vec<u8>)> {
        (0..n)
            .map(|i| {
                // Payloads that look like real frames: small numbers, repeated bytes.
                let len = 60 + (i * 37) % 200;
                (1_700_000_000 + i as u32 / 50, vec![(i % 7) as u8; len])
            })
            .collect()
    }

    /// The frames' first bytes and lengths, the skipped stretches, and the error it ended with.
    type Outcome = (Vec<(u8, usize)>, Vec<(u64, u64)>, Option<String>);

    /// A temporary file of its own for each capture a test reads (tests run in parallel).
    fn scratch_path() -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("voxtap-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        dir.join(format!("{n}.cap"))
    }

    /// Reads a capture written to a temporary file.
    fn read(bytes: &[u8]) -> Outcome {
        let path = scratch_path();
        std::fs::write(&path, bytes).unwrap();
        let mut f = CaptureFile::open(&path).unwrap();
        let mut frames = Vec::new();
        let err = loop {
            match f.next_frame() {
                Ok(Some(fr)) => frames.push((fr.data[0], fr.data.len())),
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        let skipped = f.skipped().to_vec();
        let _ = std::fs::remove_file(&path);
        (frames, skipped, err)
    }

    /// A frame as read: timestamp (ns), bytes, offset of its record or block.
    type Frame = (u64, Vec<u8>, u64);

    /// Asserts two frame lists are the same, naming the first difference (not printing
    /// thousands of bytes).
    #[track_caller]
    fn assert_same(got: &[Frame], want: &[Frame]) {
        let brief = |f: &Frame| (f.0, f.1.len(), f.1.get(..2).map(|b| b.to_vec()), f.2);
        if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
            panic!(
                "frame {i} of {}: got {:?}, want {:?}",
                want.len(),
                brief(&got[i]),
                brief(&want[i])
            );
        }
        assert_eq!(got.len(), want.len(), "frames read, frames wanted");
    }

    fn read_frames(bytes: &[u8]) -> (Vec<Frame>, Vec<(u64, u64)>, Option<String>) {
        let path = scratch_path();
        std::fs::write(&path, bytes).unwrap();
        let mut f = CaptureFile::open(&path).unwrap();
        let mut frames = Vec::new();
        let err = loop {
            match f.next_frame() {
                Ok(Some(fr)) => frames.push((fr.ts.0, fr.data.to_vec(), fr.offset)),
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        let skipped = f.skipped().to_vec();
        let _ = std::fs::remove_file(&path);
        (frames, skipped, err)
    }

    #[test]
    fn a_clean_file_reads_whole() {
        let recs = records(300);
        let (frames, skipped, err) = read(&pcap(&recs));
        assert_eq!(frames.len(), 300);
        assert!(skipped.is_empty() && err.is_none());
    }

    /// Four bytes lost in the middle: the damaged record goes, every other record is read,
    /// and the skip is reported where it happened.
    #[test]
    fn lost_bytes_cost_only_the_record_they_were_in() {
        let recs = records(300);
        let bytes = pcap(&recs);
        for cut in [
            bytes.len() / 3,
            bytes.len() / 2 + 5,
            bytes.len() * 3 / 4 + 11,
        ] {
            let mut damaged = bytes.clone();
            damaged.drain(cut..cut + 4);
            let (frames, skipped, err) = read(&damaged);
            assert!(err.is_none(), "{err:?}");
            assert!(frames.len() >= 298, "{} of 300 records read", frames.len());
            assert_eq!(skipped.len(), 1, "{skipped:?}");
            // The record the bytes went from reads short into the next header: the skip
            // starts within a record of the cut.
            assert!(
                skipped[0].0.abs_diff(cut as u64) < 300,
                "{skipped:?} vs cut at {cut}"
            );
        }
    }

    /// After a skip, frames are where they are: every later one as in the clean file, at its
    /// offset less the bytes lost. (The record the bytes went from reads 4 bytes of the next
    /// header as its own: a pcap record has no trailer to catch that.)
    #[test]
    fn offsets_after_a_pcap_skip_are_right() {
        let bytes = pcap(&records(300));
        let (clean, _, _) = read_frames(&bytes);
        let cut = bytes.len() / 2 + 5;
        let hit = clean.iter().rposition(|f| f.2 <= cut as u64).unwrap();
        let mut damaged = bytes.clone();
        damaged.drain(cut..cut + 4);
        let (frames, skipped, err) = read_frames(&damaged);
        assert!(err.is_none(), "{err:?}");
        assert_same(&frames[..hit], &clean[..hit]);
        assert_eq!(frames[hit].2, clean[hit].2);
        let after: Vec<Frame> = clean[hit + 2..]
            .iter()
            .map(|f| (f.0, f.1.clone(), f.2 - 4))
            .collect();
        assert_same(&frames[hit + 1..], &after);
        // The skip: from where the damaged record was read to end (4 bytes into the next
        // header) to the record after that one.
        let from = clean[hit + 1].2;
        assert_eq!(skipped, vec![(from, clean[hit + 2].2 - 4 - from)]);
    }

    #[test]
    fn garbage_in_the_middle_is_skipped() {
        let recs = records(100);
        let mut bytes = pcap(&recs);
        let at = bytes.len() / 2;
        let garbage: Vec<u8> = (0..997u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        bytes.splice(at..at, garbage);
        let (frames, skipped, err) = read(&bytes);
        assert!(err.is_none(), "{err:?}");
        assert!(frames.len() >= 99, "{}", frames.len());
        assert_eq!(skipped.len(), 1);
    }

    /// A capture that was quiet for a week is not corrupt.
    #[test]
    fn a_real_gap_of_days_is_kept() {
        let mut recs = records(20);
        for r in &mut recs[10..] {
            r.0 += 7 * 86_400;
        }
        let (frames, skipped, err) = read(&pcap(&recs));
        assert_eq!(frames.len(), 20);
        assert!(skipped.is_empty() && err.is_none());
    }

    #[test]
    fn a_file_cut_inside_a_record_header_is_an_error() {
        let bytes = pcap(&records(10));
        let cut = &bytes[..bytes.len() - 60 - 9 - 16 + 7];
        let (_, _, err) = read(cut);
        assert!(
            err.is_some_and(|e| e.contains("record")),
            "must not end silently"
        );
    }
}
