//! Offline capture: pcap (µs and ns, either byte order) and pcapng files, read as a stream.
//!
//! Frames are handed out as borrowed slices of one reused buffer, so a long file costs no
//! allocation per packet. Files are damaged: a bad record (pcap) or block (pcapng) is skipped
//! to the next good one and the stretch noted in [`CaptureFile::skipped`], and every frame
//! outside it is read. A file cut inside a record, or damage with nothing good after it, ends
//! with an error that names the file and the byte offset; every frame before it has already
//! been handed out.
//!
//! Read by hand rather than through `pcap-file` (issue 12): that crate's readers stop for good
//! at a bad record, refuse captures with a snapshot length, and misread pcapng timestamps; see
//! "Capture file reading" in perf/RESULTS.md for the figures.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use voxtap_core::{LinkType, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The OS error is in the message, not behind it as a source, so an error chain names
    /// it once.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
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
    /// Frames the capture cut short (captured length under the original: a snapshot length
    /// smaller than the frames), and the longest captured length among them.
    cut: (u64, usize),
    /// Bytes of the read buffer lent out as the last frame, consumed at the next call.
    lent: usize,
    /// Frames may be lent from the read buffer (off only in tests, to compare with the
    /// general path).
    lend: bool,
}

/// An Ethernet frame check sequence: what an original length may count beyond the frame.
const FCS_LEN: usize = 4;

/// How far past a corrupt record the reader looks for the next good one.
const RESYNC_WINDOW: usize = 4 * 1024 * 1024;

/// A pcapng section header's block type, the same in either byte order.
const SHB_TYPE: u32 = 0x0a0d_0d0a;
const SHB_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// A section header's byte-order magic, as the bytes of a little- or big-endian section.
const BOM_LE: [u8; 4] = [0x4d, 0x3c, 0x2b, 0x1a];
const BOM_BE: [u8; 4] = [0x1a, 0x2b, 0x3c, 0x4d];

/// The smallest total length of a known pcapng block type (pcapng §4, §5), `None` for any other
/// type: what the reader accepts as the next good block after a bad one.
fn ng_min_len(block_type: u32) -> Option<usize> {
    match block_type {
        SHB_TYPE => Some(28),
        1 => Some(20),                   // interface description
        2 | 6 => Some(32),               // packet (obsolete), enhanced packet
        3 => Some(16),                   // simple packet
        4 => Some(16),                   // name resolution
        5 => Some(24),                   // interface statistics
        0xa => Some(20),                 // decryption secrets
        0xbad | 0x4000_0bad => Some(16), // custom
        _ => None,
    }
}

/// What [`CaptureFile::ng_candidate`] makes of a byte offset.
enum Candidate {
    No,
    /// More bytes are needed to tell.
    Need,
    Good {
        big_endian: bool,
    },
}

impl CaptureFile {
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        let io_err = |error| CaptureError::Io {
            path: path.to_path_buf(),
            error,
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
            cut: (0, 0),
            lent: 0,
            lend: true,
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

    /// Corrupt stretches skipped to reach the next good record (pcap) or block (pcapng): each
    /// one's byte offset and length, adjoining ones as one. Every record or block outside them
    /// was read. (A pcap record that lost bytes is handed out with the next one's first bytes
    /// as its tail, and the skip starts after it; a pcapng block's trailing length catches
    /// that, and the skip starts at the block.)
    pub fn skipped(&self) -> &[(u64, u64)] {
        &self.skipped
    }

    /// How many frames so far the capture cut short of their length on the wire (a snapshot
    /// length, `tcpdump -s N`, smaller than the frames), and the longest captured length
    /// among them: what the capture kept of a frame. `None` if none was cut.
    pub fn cut_short(&self) -> Option<(u64, usize)> {
        (self.cut.0 > 0).then_some(self.cut)
    }

    #[inline(always)]
    fn note_cut(&mut self, caplen: usize, origlen: usize) {
        // Not every `caplen != origlen`: some writers count a Linux cooked pseudo-header in
        // the captured length only, which makes it the larger, and capture cards that keep
        // no frame check sequence may count its 4 bytes in the original length alone.
        if origlen > caplen + FCS_LEN {
            self.cut.0 += 1;
            self.cut.1 = self.cut.1.max(caplen);
        }
    }

    /// The next frame, `Ok(None)` at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<FrameRef<'_>>, CaptureError> {
        if self.lent > 0 {
            self.reader.consume(std::mem::take(&mut self.lent));
        }
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
        let record = PcapRecord { be, nanos, snaplen };
        // The usual case: a good record whole in the read buffer, lent from it in place (no
        // copy). Anything else (the buffer's end, bytes put back, a bad header) takes the
        // general path below, which reads the same bytes again.
        if let Some(b) = self.buffered()
            && let Some(h) = b.first_chunk::<16>()
            && let Ok(caplen) = record.check(h)
            && b.len() >= 16 + caplen
        {
            let ts = pcap_ts(h, be, nanos);
            let origlen = u32_at(h, 12, be) as usize;
            let at = self.offset;
            self.offset += (16 + caplen) as u64;
            self.lent = 16 + caplen;
            self.note_cut(caplen, origlen);
            return Ok(Some(FrameRef {
                ts,
                link,
                data: &self.reader.buffer()[16..16 + caplen],
                offset: at,
            }));
        }
        let mut at = self.offset;
        let mut hdr = [0u8; 16];
        if !self.read_exact_or_eof(&mut hdr)? {
            if self.offset > at {
                return Err(self.corrupt(at, "the file ends inside a record header"));
            }
            return Ok(None);
        }
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
        let caplen = u32_at(&hdr, 8, be) as usize;
        self.note_cut(caplen, u32_at(&hdr, 12, be) as usize);
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
        Ok(Some(FrameRef {
            ts: pcap_ts(&hdr, be, nanos),
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
        // The usual case: a good enhanced packet block whole in the read buffer, lent from it
        // in place. Anything else takes the general path, which reads the same bytes again.
        if !self.pending_ng_magic
            && let Some(b) = self.buffered()
            && let Some((total, ts, link, caplen, origlen)) = self.ng_whole_packet(b)
        {
            let at = self.offset;
            self.note_cut(caplen, origlen);
            self.offset += total as u64;
            self.lent = total;
            return Ok(Some(FrameRef {
                ts,
                link,
                data: &self.reader.buffer()[28..28 + caplen],
                offset: at,
            }));
        }
        loop {
            let at = if self.pending_ng_magic {
                self.offset - 4
            } else {
                self.offset
            };
            let mut hdr = [0u8; 8];
            if self.pending_ng_magic {
                self.pending_ng_magic = false;
                hdr[..4].copy_from_slice(&SHB_MAGIC);
                let mut len = [0u8; 4];
                if !self.read_exact_or_eof(&mut len)? {
                    return Err(self.corrupt(at, "section header is truncated"));
                }
                hdr[4..].copy_from_slice(&len);
            } else if !self.read_exact_or_eof(&mut hdr)? {
                if self.offset > at {
                    return Err(self.corrupt(at, "the file ends inside a block header"));
                }
                return Ok(None);
            }
            // A damaged block (bad length, bytes lost or garbled) goes to ng_recover: find the
            // next good block and go on, saying what was skipped, rather than read garbage or
            // give up on the rest.
            if hdr[..4] == SHB_MAGIC {
                // Section header: its byte-order magic decides how the rest is read.
                let mut bom = [0u8; 4];
                if !self.read_exact_or_eof(&mut bom)? {
                    return Err(self.corrupt(at, "section header is truncated"));
                }
                let seen = || [&hdr[..], &bom[..]].concat();
                let be = match bom {
                    BOM_LE => false,
                    BOM_BE => true,
                    _ => {
                        let w = seen();
                        let why = "section header has a bad byte-order magic";
                        self.ng_recover(at, w, why, false)?;
                        continue;
                    }
                };
                let total = u32_at(&hdr, 4, be) as usize;
                if !(28..=MAX_RECORD).contains(&total) || !total.is_multiple_of(4) {
                    let w = seen();
                    let why = format!("section header length {total} is invalid");
                    self.ng_recover(at, w, &why, false)?;
                    continue;
                }
                let complete = self.read_body(total - 12)?;
                if !complete || u32_at(&self.buf, total - 16, be) as usize != total {
                    let mut w = seen();
                    w.extend_from_slice(&self.buf);
                    let why = if complete {
                        "section header's trailing length does not match its header"
                    } else {
                        "section header is cut short by the end of the file"
                    };
                    self.ng_recover(at, w, why, !complete)?;
                    continue;
                }
                self.ng_big_endian = be;
                self.interfaces.clear();
                continue;
            }
            let be = self.ng_big_endian;
            let block_type = u32_at(&hdr, 0, be);
            let total = u32_at(&hdr, 4, be) as usize;
            if !(12..=MAX_RECORD).contains(&total) || !total.is_multiple_of(4) {
                let why = format!("block length {total} is invalid");
                self.ng_recover(at, hdr.to_vec(), &why, false)?;
                continue;
            }
            let complete = self.read_body(total - 8)?;
            let body_len = total - 12;
            if !complete || u32_at(&self.buf, body_len, be) as usize != total {
                let mut w = hdr.to_vec();
                w.extend_from_slice(&self.buf);
                let why = if complete {
                    "block's trailing length does not match its header".to_string()
                } else {
                    format!("block of {total} bytes is cut short by the end of the file")
                };
                self.ng_recover(at, w, &why, !complete)?;
                continue;
            }
            // From here the block's two lengths agree: its extent is known, so a block whose
            // content is bad is skipped whole, and only it.
            match block_type {
                1 => {
                    // Interface description: link type, then options (if_tsresol, if_tsoffset).
                    if body_len < 8 {
                        self.note_skip(at, total as u64);
                        continue;
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
                    let Some((ts, link, caplen, origlen)) =
                        self.ng_packet(block_type, &self.buf[..body_len])
                    else {
                        self.note_skip(at, total as u64);
                        continue;
                    };
                    self.note_cut(caplen, origlen);
                    return Ok(Some(FrameRef {
                        ts,
                        link,
                        data: &self.buf[20..20 + caplen],
                        offset: at,
                    }));
                }
                3 => {
                    // Simple packet: interface 0, no timestamp; original length first.
                    let Some(ifc) = self.interfaces.first().copied() else {
                        self.note_skip(at, total as u64);
                        continue;
                    };
                    if body_len < 4 {
                        self.note_skip(at, total as u64);
                        continue;
                    }
                    let orig = u32_at(&self.buf, 0, be) as usize;
                    let caplen = orig.min(body_len - 4);
                    self.note_cut(caplen, orig);
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

    /// An enhanced packet block at the start of `b`, whole and passing every check the
    /// general path makes (the block's lengths here, its content in [`Self::ng_packet`]): its
    /// total length, time, link and captured length.
    #[inline(always)]
    fn ng_whole_packet(&self, b: &[u8]) -> Option<(usize, Timestamp, LinkType, usize, usize)> {
        let be = self.ng_big_endian;
        let h = b.first_chunk::<28>()?;
        let total = u32_at(h, 4, be) as usize;
        if u32_at(h, 0, be) != 6
            || !(32..=MAX_RECORD).contains(&total)
            || !total.is_multiple_of(4)
            || b.len() < total
            || u32_at(b, total - 4, be) as usize != total
        {
            return None;
        }
        let (ts, link, caplen, origlen) = self.ng_packet(6, &b[8..total - 4])?;
        Some((total, ts, link, caplen, origlen))
    }

    /// A packet block's frame — enhanced (6), or the obsolete packet block (2) with a 16-bit
    /// interface id — from its body (between the 8-byte block header and the trailing
    /// length): its time, link and captured length, the frame being `body[20..20 + caplen]`.
    /// `None` for damage: too short, a captured length past the block, an interface never
    /// described.
    #[inline(always)]
    fn ng_packet(
        &self,
        block_type: u32,
        body: &[u8],
    ) -> Option<(Timestamp, LinkType, usize, usize)> {
        let be = self.ng_big_endian;
        if body.len() < 20 {
            return None;
        }
        let iface = if block_type == 6 {
            u32_at(body, 0, be)
        } else {
            u16_at(body, 0, be) as u32
        };
        let caplen = u32_at(body, 12, be) as usize;
        let ifc = self
            .interfaces
            .get(iface as usize)
            .filter(|_| caplen <= body.len() - 20)?;
        let ts_raw = ((u32_at(body, 4, be) as u64) << 32) | u32_at(body, 8, be) as u64;
        let ts = ts_from_units(ts_raw, ifc.units_per_sec, ifc.offset_secs);
        Some((ts, ifc.link, caplen, u32_at(body, 16, be) as usize))
    }

    /// After a bad pcapng block at `at` (`seen`: the bytes read of it), places the reader at
    /// the next good block and notes the skip; or, if none follows, the error that ends the
    /// file: `why`, and (unless the block was `cut` by the end of the file, which says it all)
    /// that no good block follows.
    #[cold]
    #[inline(never)]
    fn ng_recover(
        &mut self,
        at: u64,
        seen: Vec<u8>,
        why: &str,
        cut: bool,
    ) -> Result<(), CaptureError> {
        match self.ng_resync(at, seen)? {
            Some(found) => {
                self.note_skip(at, found - at);
                Ok(())
            }
            None if cut => Err(self.corrupt(at, why)),
            None => Err(self.corrupt(at, &format!("{why}, and no good block follows"))),
        }
    }

    /// Looks past a bad pcapng block that starts at `at` for the next good one, reading on
    /// from `window` (the bytes from `at` read so far). A good block is a known block type
    /// whose two lengths agree and fit, whose content passes [`CaptureFile::ng_block_ok`], and
    /// which is followed by another plausible block (or by the end of the file).
    ///
    /// Every byte offset is tried, not only multiples of 4: one lost byte puts every later
    /// block off the file's alignment. Tried in the section's byte order, then the other (a
    /// new section whose header was the damage). Each offset is looked at once, and at most
    /// [`RESYNC_WINDOW`] past the bad block (or past what was read of it, if more): a file of
    /// garbage costs a bounded scan, not a quadratic one.
    ///
    /// Returns the good block's offset, the reader placed on it, or `None`.
    fn ng_resync(&mut self, at: u64, mut window: Vec<u8>) -> Result<Option<u64>, CaptureError> {
        let limit = window.len().max(RESYNC_WINDOW);
        let mut eof = false;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut p = 1;
        while p < limit {
            let verdict = match self.ng_candidate(&window, p, self.ng_big_endian, eof) {
                Candidate::No => self.ng_candidate(&window, p, !self.ng_big_endian, eof),
                v => v,
            };
            match verdict {
                Candidate::No => p += 1,
                Candidate::Need if eof => p += 1,
                Candidate::Need => {
                    let n = self.read_some(&mut chunk)?;
                    window.extend_from_slice(&chunk[..n]);
                    eof = n == 0;
                }
                Candidate::Good { big_endian } => {
                    if big_endian != self.ng_big_endian {
                        // Another section, its header lost: its interfaces are its own.
                        self.ng_big_endian = big_endian;
                        self.interfaces.clear();
                    }
                    let rest = window.split_off(p);
                    self.unread(rest);
                    self.offset = at + p as u64;
                    return Ok(Some(self.offset));
                }
            }
            if eof && p >= window.len() {
                break;
            }
        }
        Ok(None)
    }

    /// Whether a good block, read in byte order `be`, starts at `w[p..]`; or how many bytes of
    /// `w` it takes to tell.
    fn ng_candidate(&self, w: &[u8], p: usize, be: bool, eof: bool) -> Candidate {
        let need = || {
            if eof { Candidate::No } else { Candidate::Need }
        };
        let Some(head) = w.get(p..p + 12) else {
            return need();
        };
        let shb = head[..4] == SHB_MAGIC;
        let be = if shb {
            match [head[8], head[9], head[10], head[11]] {
                BOM_LE => false,
                BOM_BE => true,
                _ => return Candidate::No,
            }
        } else {
            be
        };
        let block_type = u32_at(head, 0, be);
        let total = u32_at(head, 4, be) as usize;
        let Some(min) = ng_min_len(block_type) else {
            return Candidate::No;
        };
        if total < min || total > MAX_RECORD || !total.is_multiple_of(4) {
            return Candidate::No;
        }
        let end = p + total;
        let Some(block) = w.get(p..end) else {
            return need();
        };
        if u32_at(block, total - 4, be) as usize != total {
            return Candidate::No;
        }
        // Read in the other byte order the block starts a new section: none of this one's
        // interfaces are its.
        let same_section = be == self.ng_big_endian || shb;
        if !self.ng_block_ok(block, block_type, be, same_section) {
            return Candidate::No;
        }
        // The witness: what follows starts a plausible block too, or the file ends (or is cut
        // too short to tell).
        match w.get(end..end + 8) {
            Some(next) => {
                let t = u32_at(next, 0, be);
                let n = u32_at(next, 4, be) as usize;
                let ok = next[..4] == SHB_MAGIC
                    || ng_min_len(t)
                        .is_some_and(|m| n >= m && n <= MAX_RECORD && n.is_multiple_of(4));
                if ok {
                    Candidate::Good { big_endian: be }
                } else {
                    Candidate::No
                }
            }
            None if eof => Candidate::Good { big_endian: be },
            None => Candidate::Need,
        }
    }

    /// Whether a whole block (both lengths checked) holds what its type needs: a packet names a
    /// described interface and fits its block; a section header is version 1.
    fn ng_block_ok(&self, block: &[u8], block_type: u32, be: bool, same_section: bool) -> bool {
        let ifaces = if same_section {
            self.interfaces.len()
        } else {
            0
        };
        match block_type {
            SHB_TYPE => u16_at(block, 12, be) == 1,
            6 | 2 => {
                let iface = if block_type == 6 {
                    u32_at(block, 8, be) as usize
                } else {
                    u16_at(block, 8, be) as usize
                };
                let caplen = u32_at(block, 20, be) as usize;
                iface < ifaces && caplen <= block.len() - 32
            }
            3 => ifaces > 0,
            5 => (u32_at(block, 8, be) as usize) < ifaces,
            _ => true,
        }
    }

    /// The read buffer's unread bytes, when nothing was put back in front of them (the only
    /// case where they are the next bytes of the file).
    #[inline(always)]
    fn buffered(&self) -> Option<&[u8]> {
        (self.lend && self.ahead_pos >= self.ahead.len()).then(|| self.reader.buffer())
    }

    /// Notes a corrupt stretch skipped; one that continues the last is added to it.
    #[cold]
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

    /// Reads `n` more bytes into the buffer; false if the file ends first (the buffer then
    /// holds what there was).
    fn read_body(&mut self, n: usize) -> Result<bool, CaptureError> {
        self.buf.resize(n, 0);
        let mut buf = std::mem::take(&mut self.buf);
        let before = self.offset;
        let complete = self.read_exact_or_eof(&mut buf)?;
        self.buf = buf;
        if !complete {
            self.buf.truncate((self.offset - before) as usize);
        }
        Ok(complete)
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
                Err(error) => {
                    return Err(CaptureError::Io {
                        path: self.path.clone(),
                        error,
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

/// A classic pcap record header's time.
#[inline(always)]
fn pcap_ts(h: &[u8; 16], be: bool, nanos: bool) -> Timestamp {
    let secs = u32_at(h, 0, be) as u64;
    let frac = u32_at(h, 4, be) as u64;
    Timestamp(secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 })
}

// Always inlined: out of line (as LLVM chose once the resync added callers) the pcapng reader
// ran 8% more instructions a frame on clean input.
#[inline(always)]
fn u32_at(b: &[u8], i: usize, be: bool) -> u32 {
    let x = [b[i], b[i + 1], b[i + 2], b[i + 3]];
    if be {
        u32::from_be_bytes(x)
    } else {
        u32::from_le_bytes(x)
    }
}

#[inline(always)]
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
        read_frames_lending(bytes, true)
    }

    /// As [`read_frames`]; with `lend` false, every frame takes the general path.
    fn read_frames_lending(
        bytes: &[u8],
        lend: bool,
    ) -> (Vec<Frame>, Vec<(u64, u64)>, Option<String>) {
        let path = scratch_path();
        std::fs::write(&path, bytes).unwrap();
        let mut f = CaptureFile::open(&path).unwrap();
        f.lend = lend;
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

    /// `n` records, a second apart, each numbered and of a size from 60 bytes to a full
    /// Ethernet frame.
    fn sized_records(n: usize) -> Vec<(u32, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let mut d = payload(i);
                d.resize(60 + (i * 7919) % 1455, (i % 13) as u8);
                (1_700_000_000 + i as u32, d)
            })
            .collect()
    }

    /// Frames are lent from the read buffer in place when whole in it; a record across the
    /// buffer's end is read the general way. A file of several buffers' worth, records of
    /// every size up to a full Ethernet frame, reads back exact: bytes, times and offsets.
    /// Four bytes lost in the record across the first buffer's end cost only that record.
    #[test]
    fn records_across_the_read_buffers_end_read_exact() {
        let recs = sized_records(6_000);
        let bytes = pcap(&recs);
        assert!(bytes.len() > 3 << 20, "several read buffers");
        let mut at = 24u64;
        let want: Vec<Frame> = recs
            .iter()
            .map(|(secs, d)| {
                let f = (
                    u64::from(*secs) * 1_000_000_000 + 500_000_000,
                    d.clone(),
                    at,
                );
                at += 16 + d.len() as u64;
                f
            })
            .collect();
        let (frames, skipped, err) = read_frames(&bytes);
        assert!(err.is_none() && skipped.is_empty(), "{err:?} {skipped:?}");
        assert_same(&frames, &want);
        // The record the first buffer's end falls in: 4 bytes of its header lost.
        let k = want.iter().rposition(|f| f.2 < 1 << 20).unwrap();
        assert!(want[k].2 + 16 + (want[k].1.len() as u64) > 1 << 20);
        let cut = want[k].2 as usize + 4;
        let mut damaged = bytes.clone();
        damaged.drain(cut..cut + 4);
        let (frames, skipped, err) = read_frames(&damaged);
        assert!(err.is_none(), "{err:?}");
        assert_same(&frames, &without(&want, k, -4));
        assert_eq!(skipped, vec![(want[k].2, 16 + want[k].1.len() as u64 - 4)]);
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

    // --- pcapng ---

    /// A writer for pcapng bodies in either byte order.
    struct W {
        be: bool,
        out: Vec<u8>,
    }

    impl W {
        fn u16(&mut self, v: u16) -> &mut W {
            let b = if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.out.extend_from_slice(&b);
            self
        }
        fn u32(&mut self, v: u32) -> &mut W {
            let b = if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.out.extend_from_slice(&b);
            self
        }
        fn bytes(&mut self, b: &[u8]) -> &mut W {
            self.out.extend_from_slice(b);
            while !self.out.len().is_multiple_of(4) {
                self.out.push(0);
            }
            self
        }
        /// Appends a block of `block_type` around `body`; returns its offset and total length.
        fn block(&mut self, block_type: u32, body: &[u8]) -> (usize, usize) {
            let at = self.out.len();
            let total = 12 + body.len().div_ceil(4) * 4;
            self.u32(block_type)
                .u32(total as u32)
                .bytes(body)
                .u32(total as u32);
            (at, total)
        }
        fn body(&self) -> W {
            W {
                be: self.be,
                out: Vec::new(),
            }
        }
    }

    struct NgIface {
        tsresol: Option<u8>,
        tsoffset: Option<i64>,
    }

    struct NgPacket {
        iface: u32,
        raw_ts: u64,
        data: Vec<u8>,
        /// The timestamp the reader must give, in ns.
        ns: u64,
    }

    struct NgSection {
        be: bool,
        ifaces: Vec<NgIface>,
        packets: Vec<NgPacket>,
    }

    /// A pcapng of `sections`, each: section header, name resolution, interfaces, packets (a
    /// custom block among them, options on some), interface statistics. Returns the file and
    /// each packet block's offset and total length.
    fn pcapng(sections: &[NgSection]) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut w = W {
            be: false,
            out: Vec::new(),
        };
        let mut blocks = Vec::new();
        for s in sections {
            w.be = s.be;
            let mut b = w.body();
            b.u32(0x1a2b_3c4d).u16(1).u16(0).u32(u32::MAX).u32(u32::MAX);
            w.block(SHB_TYPE, &b.out);
            let mut b = w.body();
            b.u16(0).u16(0); // no records
            w.block(4, &b.out);
            for ifc in &s.ifaces {
                let mut b = w.body();
                b.u16(1).u16(0).u32(0);
                if let Some(r) = ifc.tsresol {
                    b.u16(9).u16(1).bytes(&[r]);
                }
                if let Some(o) = ifc.tsoffset {
                    let v = if s.be {
                        o.to_be_bytes()
                    } else {
                        o.to_le_bytes()
                    };
                    b.u16(14).u16(8).bytes(&v);
                }
                b.u16(0).u16(0);
                w.block(1, &b.out);
            }
            for (i, p) in s.packets.iter().enumerate() {
                if i == s.packets.len() / 3 {
                    let mut b = w.body();
                    b.u32(32_473).bytes(b"not a frame");
                    w.block(0xbad, &b.out);
                }
                let mut b = w.body();
                b.u32(p.iface)
                    .u32((p.raw_ts >> 32) as u32)
                    .u32(p.raw_ts as u32)
                    .u32(p.data.len() as u32)
                    .u32(p.data.len() as u32)
                    .bytes(&p.data);
                if i % 3 == 0 {
                    b.u16(2).u16(4).u32(1).u16(0).u16(0); // epb_flags: inbound
                }
                blocks.push(w.block(6, &b.out));
            }
            let mut b = w.body();
            b.u32(0).u32(0).u32(0).u16(0).u16(0);
            w.block(5, &b.out);
        }
        (w.out, blocks)
    }

    /// A frame's bytes: its number first (so that none is like another), then a length that is
    /// rarely a multiple of 4.
    fn payload(i: usize) -> Vec<u8> {
        let len = 60 + (i * 37) % 200;
        let mut d = vec![(i % 251) as u8; len];
        d[0] = (i >> 8) as u8;
        d[1] = i as u8;
        d
    }

    const T0: u64 = 1_767_225_600_000_000_000;

    /// A little-endian section: interface 0 in ns (if_tsresol 9), interface 1 in the default
    /// µs with if_tsoffset one hour; `n` packets, alternately on each.
    fn le_section(n: usize) -> NgSection {
        let ifaces = vec![
            NgIface {
                tsresol: Some(9),
                tsoffset: None,
            },
            NgIface {
                tsresol: None,
                tsoffset: Some(3600),
            },
        ];
        let packets = (0..n)
            .map(|i| {
                let iface = (i % 2) as u32;
                if iface == 0 {
                    let ns = T0 + i as u64 * 20_000_000 + 7;
                    NgPacket {
                        iface,
                        raw_ts: ns,
                        data: payload(i),
                        ns,
                    }
                } else {
                    let ns = T0 + i as u64 * 20_000_000 + 3_000;
                    NgPacket {
                        iface,
                        raw_ts: (ns - 3_600_000_000_000) / 1_000,
                        data: payload(i),
                        ns,
                    }
                }
            })
            .collect();
        NgSection {
            be: false,
            ifaces,
            packets,
        }
    }

    /// A big-endian section: interface 0 in 2^-20 s (if_tsresol 0x94), interface 1 in ms with
    /// if_tsoffset -60 s; `n` packets numbered from `first`.
    fn be_section(first: usize, n: usize) -> NgSection {
        let ifaces = vec![
            NgIface {
                tsresol: Some(0x94),
                tsoffset: None,
            },
            NgIface {
                tsresol: Some(3),
                tsoffset: Some(-60),
            },
        ];
        let secs0 = T0 / 1_000_000_000 + 86_400;
        let packets = (0..n)
            .map(|i| {
                let iface = (i % 2) as u32;
                let (raw_ts, ns) = if iface == 0 {
                    // k/64 s exactly: 2^14 units of 2^-20 s.
                    let k = (i % 64) as u64;
                    (
                        ((secs0 + i as u64) << 20) | (k << 14),
                        (secs0 + i as u64) * 1_000_000_000 + k * 15_625_000,
                    )
                } else {
                    let ms = (secs0 + i as u64) * 1_000 + 250;
                    (ms + 60_000, ms * 1_000_000)
                };
                NgPacket {
                    iface,
                    raw_ts,
                    data: payload(first + i),
                    ns,
                }
            })
            .collect();
        NgSection {
            be: true,
            ifaces,
            packets,
        }
    }

    /// What the reader must give for `sections`: each packet's timestamp and bytes.
    fn expected(sections: &[NgSection]) -> Vec<(u64, Vec<u8>)> {
        sections
            .iter()
            .flat_map(|s| s.packets.iter().map(|p| (p.ns, p.data.clone())))
            .collect()
    }

    fn ts_and_bytes(frames: &[Frame]) -> Vec<(u64, Vec<u8>)> {
        frames.iter().map(|f| (f.0, f.1.clone())).collect()
    }

    /// The clean file's frames with frame `k` taken out, the later ones' offsets moved by
    /// `shift` (bytes lost before them).
    fn without(clean: &[Frame], k: usize, shift: i64) -> Vec<Frame> {
        clean
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != k)
            .map(|(i, f)| {
                let off = if i > k {
                    (f.2 as i64 + shift) as u64
                } else {
                    f.2
                };
                (f.0, f.1.clone(), off)
            })
            .collect()
    }

    /// Reads a capture written to a temporary file, with or without lending, and says what
    /// the reader counted as cut short by the capture.
    fn cut_short_of(bytes: &[u8], lend: bool) -> (usize, Option<(u64, usize)>) {
        let path = scratch_path();
        std::fs::write(&path, bytes).unwrap();
        let mut f = CaptureFile::open(&path).unwrap();
        f.lend = lend;
        let mut n = 0;
        while f.next_frame().unwrap().is_some() {
            n += 1;
        }
        let _ = std::fs::remove_file(&path);
        (n, f.cut_short())
    }

    /// A capture taken with a small snapshot length (`tcpdump -s 96`) keeps every frame but
    /// cut: the reader counts the frames whose captured length is under their length on the
    /// wire, and what the capture kept, in pcap and pcapng, on the lent and the general path.
    /// A record whose captured length is the larger (a Linux cooked pseudo-header counted in
    /// it alone), or smaller by a frame check sequence alone, is not cut.
    #[test]
    fn frames_cut_by_the_snapshot_length_are_counted() {
        let recs = records(40);
        let mut bytes = pcap(&recs);
        let mut at = 24;
        for (i, (_, data)) in recs.iter().enumerate() {
            let orig = match i % 4 {
                0 => data.len() + 900,
                1 => data.len().saturating_sub(16),
                2 => data.len() + FCS_LEN, // a frame check sequence not kept: nothing lost
                _ => data.len(),
            };
            bytes[at + 12..at + 16].copy_from_slice(&(orig as u32).to_le_bytes());
            at += 16 + data.len();
        }
        let longest_cut = recs.iter().step_by(4).map(|r| r.1.len()).max().unwrap();
        for lend in [true, false] {
            assert_eq!(
                cut_short_of(&bytes, lend),
                (40, Some((10, longest_cut))),
                "lend {lend}"
            );
        }
        assert_eq!(cut_short_of(&pcap(&recs), true), (40, None));

        let (mut ng, blocks) = pcapng(&[le_section(30)]);
        let epbs: Vec<(usize, usize)> = blocks.iter().copied().step_by(3).collect();
        for &(at, _) in &epbs {
            let orig = u32::from_le_bytes(ng[at + 24..at + 28].try_into().unwrap()) + 100;
            ng[at + 24..at + 28].copy_from_slice(&orig.to_le_bytes());
        }
        let longest: usize = epbs
            .iter()
            .map(|&(at, _)| u32::from_le_bytes(ng[at + 20..at + 24].try_into().unwrap()) as usize)
            .max()
            .unwrap();
        for lend in [true, false] {
            assert_eq!(
                cut_short_of(&ng, lend),
                (30, Some((epbs.len() as u64, longest))),
                "lend {lend}"
            );
        }
    }

    #[test]
    fn a_clean_pcapng_reads_whole_with_its_timestamps() {
        assert_pcapng_reads_exact(&[le_section(80)]);
    }

    /// Writes `sections` as one pcapng, reads it back and checks every frame's time, bytes and
    /// block offset, with nothing skipped; returns the file's size.
    #[track_caller]
    fn assert_pcapng_reads_exact(sections: &[NgSection]) -> usize {
        let (bytes, blocks) = pcapng(sections);
        let (frames, skipped, err) = read_frames(&bytes);
        assert!(err.is_none() && skipped.is_empty(), "{err:?} {skipped:?}");
        assert_eq!(ts_and_bytes(&frames), expected(sections));
        let offsets: Vec<u64> = frames.iter().map(|f| f.2).collect();
        let want: Vec<u64> = blocks.iter().map(|b| b.0 as u64).collect();
        assert_eq!(offsets, want);
        bytes.len()
    }

    /// Lending frames from the read buffer changes nothing a reader gives, on damaged files
    /// too: files of several buffers' worth, damaged one to eight times (bytes flipped, lost
    /// or added; half of it in a record's or block's header, half anywhere), read with
    /// lending and with every frame on the general path, give the same frames, times,
    /// offsets, skips and errors.
    #[test]
    fn lending_frames_reads_damaged_files_as_the_general_path_does() {
        let recs = sized_records(5_000);
        let (ng, _) = pcapng(&[le_section(6_000), be_section(6_000, 3_000)]);
        let clean = [pcap(&recs), ng];
        // Where the records and blocks begin: half the damage goes into their headers.
        let starts: Vec<Vec<usize>> = clean
            .iter()
            .map(|c| read_frames(c).0.iter().map(|f| f.2 as usize).collect())
            .collect();
        // xorshift64*: the same damage on every run.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for round in 0..48 {
            let mut bytes = clean[round % 2].clone();
            let starts = &starts[round % 2];
            for _ in 0..1 + next() % 8 {
                // Past the file header, so that both readers open the file.
                let at = if next() % 2 == 0 {
                    starts[1 + (next() as usize) % (starts.len() - 2)] + (next() as usize) % 28
                } else {
                    64 + (next() as usize) % (bytes.len() - 128)
                };
                match next() % 3 {
                    0 => bytes[at] ^= 1 << (next() % 8),
                    1 => {
                        let n = 1 + (next() as usize) % 9;
                        bytes.drain(at..at + n);
                    }
                    _ => {
                        let n = 1 + (next() as usize) % 9;
                        let junk: Vec<u8> = (0..n).map(|_| next() as u8).collect();
                        bytes.splice(at..at, junk);
                    }
                }
            }
            let lent = read_frames_lending(&bytes, true);
            let general = read_frames_lending(&bytes, false);
            assert!(!general.0.is_empty(), "round {round}: frames read");
            assert_same(&lent.0, &general.0);
            assert_eq!(lent.1, general.1, "round {round}: skips");
            assert_eq!(lent.2, general.2, "round {round}: how it ends");
        }
    }

    /// Several read buffers' worth of blocks (some across a buffer's end, read the general
    /// way; the rest lent in place) read back exact, in both byte orders.
    #[test]
    fn pcapng_blocks_across_the_read_buffers_end_read_exact() {
        let size = assert_pcapng_reads_exact(&[le_section(12_000), be_section(12_000, 12_000)]);
        assert!(size > 4 << 20, "several read buffers");
    }

    /// The damaged block's frame goes, and only it; the skip is its block, where it was.
    fn damaged_block_is_skipped(damage: impl Fn(&mut Vec<u8>, usize, usize), lost: usize) {
        let (bytes, blocks) = pcapng(&[le_section(80)]);
        let (clean, _, _) = read_frames(&bytes);
        let k = 40;
        let (at, total) = blocks[k];
        let mut damaged = bytes.clone();
        damage(&mut damaged, at, total);
        let (frames, skipped, err) = read_frames(&damaged);
        assert!(err.is_none(), "{err:?}");
        assert_same(&frames, &without(&clean, k, -(lost as i64)));
        assert_eq!(skipped, vec![(at as u64, (total - lost) as u64)]);
    }

    #[test]
    fn pcapng_garbage_block_length_costs_only_that_block() {
        damaged_block_is_skipped(
            |b, at, _| b[at + 4..at + 8].copy_from_slice(&0x5a3c_91e7u32.to_le_bytes()),
            0,
        );
    }

    #[test]
    fn pcapng_block_length_8_too_long_costs_only_that_block() {
        damaged_block_is_skipped(
            |b, at, total| {
                // (Were the next block 8 longer, its length would pass for this one's trailer.)
                let next =
                    u32::from_le_bytes(b[at + total + 4..at + total + 8].try_into().unwrap());
                assert_ne!(next as usize, total + 8);
                b[at + 4..at + 8].copy_from_slice(&(total as u32 + 8).to_le_bytes());
            },
            0,
        );
    }

    #[test]
    fn pcapng_4_bytes_lost_cost_only_their_block() {
        damaged_block_is_skipped(|b, at, _| drop(b.drain(at + 40..at + 44)), 4);
    }

    /// One byte lost: every later block is off the file's 4-byte alignment, and still read.
    #[test]
    fn pcapng_1_byte_lost_costs_only_its_block() {
        damaged_block_is_skipped(|b, at, _| drop(b.drain(at + 41..at + 42)), 1);
    }

    #[test]
    fn pcapng_packet_on_an_undescribed_interface_is_skipped() {
        damaged_block_is_skipped(
            |b, at, _| b[at + 8..at + 12].copy_from_slice(&7u32.to_le_bytes()),
            0,
        );
    }

    #[test]
    fn pcapng_captured_length_past_its_block_is_skipped() {
        damaged_block_is_skipped(
            |b, at, _| b[at + 20..at + 24].copy_from_slice(&9_000u32.to_le_bytes()),
            0,
        );
        // One byte past the packet data's room: the block's own trailing length would be
        // read as frame bytes.
        damaged_block_is_skipped(
            |b, at, total| b[at + 20..at + 24].copy_from_slice(&(total as u32 - 31).to_le_bytes()),
            0,
        );
    }

    /// Cut inside a block at the end: every frame before it, then an error naming its offset.
    #[test]
    fn a_pcapng_cut_inside_a_block_ends_with_an_error_at_it() {
        let (bytes, blocks) = pcapng(&[le_section(80)]);
        let (clean, _, _) = read_frames(&bytes);
        let k = 50;
        let at = blocks[k].0;
        for (cut, what) in [(at + 20, "cut short"), (at + 5, "inside a block header")] {
            let (frames, skipped, err) = read_frames(&bytes[..cut]);
            assert_same(&frames, &clean[..k]);
            assert!(skipped.is_empty(), "{skipped:?}");
            let err = err.expect("a cut file must not end silently");
            assert!(
                err.contains(&format!("byte offset {at}:")) && err.contains(what),
                "{err}"
            );
        }
    }

    /// Two files concatenated, little- then big-endian: each section read in its own byte
    /// order, with its own interfaces' time units and offsets.
    #[test]
    fn concatenated_pcapng_sections_keep_their_byte_orders() {
        let sections = [le_section(30), be_section(30, 30)];
        let (bytes, blocks) = pcapng(&sections);
        let (frames, skipped, err) = read_frames(&bytes);
        assert!(err.is_none() && skipped.is_empty(), "{err:?} {skipped:?}");
        assert_eq!(ts_and_bytes(&frames), expected(&sections));
        assert_eq!(frames[45].2, blocks[45].0 as u64);

        // Damage in the big-endian section is found and skipped in its byte order.
        let (at, total) = blocks[45];
        let mut damaged = bytes.clone();
        damaged.drain(at + 40..at + 44);
        let (got, skipped, err) = read_frames(&damaged);
        assert!(err.is_none(), "{err:?}");
        assert_same(&got, &without(&frames, 45, -4));
        assert_eq!(skipped, vec![(at as u64, total as u64 - 4)]);
    }

    /// The second section's header is the damage: what follows is found in the other byte
    /// order, as a new section, and every frame of both is read.
    #[test]
    fn a_damaged_section_header_costs_only_itself() {
        let first = le_section(30);
        let (one, _) = pcapng(std::slice::from_ref(&first));
        let sections = [first, be_section(30, 30)];
        let (bytes, _) = pcapng(&sections);
        let (clean, _, _) = read_frames(&bytes);
        let shb = one.len();
        let shb_len = 28;
        let mut damaged = bytes.clone();
        damaged[shb + 4..shb + 8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let (frames, skipped, err) = read_frames(&damaged);
        assert!(err.is_none(), "{err:?}");
        assert_same(&frames, &clean);
        assert_eq!(skipped, vec![(shb as u64, shb_len)]);
    }

    /// A megabyte of garbage between two blocks is skipped in one stretch.
    #[test]
    fn pcapng_garbage_between_blocks_is_skipped() {
        let (bytes, blocks) = pcapng(&[le_section(80)]);
        let (clean, _, _) = read_frames(&bytes);
        let at = blocks[40].0;
        let garbage: Vec<u8> = (0..1_000_003u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut damaged = bytes.clone();
        damaged.splice(at..at, garbage.iter().copied());
        let (frames, skipped, err) = read_frames(&damaged);
        assert!(err.is_none(), "{err:?}");
        let shifted: Vec<Frame> = clean
            .iter()
            .map(|f| {
                let off = if f.2 >= at as u64 {
                    f.2 + garbage.len() as u64
                } else {
                    f.2
                };
                (f.0, f.1.clone(), off)
            })
            .collect();
        assert_same(&frames, &shifted);
        assert_eq!(skipped, vec![(at as u64, garbage.len() as u64)]);
    }

    /// After the header, nothing but garbage: an error after a bounded look, naming where the
    /// garbage starts.
    #[test]
    fn a_pcapng_of_garbage_ends_with_an_error() {
        let (bytes, blocks) = pcapng(&[le_section(4)]);
        let at = blocks[2].0;
        let mut damaged = bytes[..at].to_vec();
        damaged.extend((0..6_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
        let t = std::time::Instant::now();
        let (frames, _, err) = read_frames(&damaged);
        assert_eq!(frames.len(), 2);
        let err = err.expect("garbage must not end silently");
        assert!(
            err.contains(&format!("byte offset {at}:")) && err.contains("no good block follows"),
            "{err}"
        );
        assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
    }
}
