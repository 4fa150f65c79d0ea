//! Offline capture: pcap (µs and ns, either byte order) and pcapng files, read as a stream.
//!
//! Frames are handed out as borrowed slices of one reused buffer, so a long file costs no
//! allocation per packet. A corrupt file ends with an error that names the file and the byte
//! offset of the bad record; every frame before it has already been handed out.

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
}

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
                cf.format = Format::Pcap {
                    big_endian,
                    nanos,
                    link: LinkType::from_pcap(linktype),
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

    /// The next frame, `Ok(None)` at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<FrameRef<'_>>, CaptureError> {
        match self.format {
            Format::Pcap {
                big_endian,
                nanos,
                link,
            } => self.next_pcap(big_endian, nanos, link),
            Format::PcapNg => self.next_pcapng(),
        }
    }

    fn next_pcap(
        &mut self,
        be: bool,
        nanos: bool,
        link: LinkType,
    ) -> Result<Option<FrameRef<'_>>, CaptureError> {
        let at = self.offset;
        let mut hdr = [0u8; 16];
        if !self.read_exact_or_eof(&mut hdr)? {
            return Ok(None);
        }
        let secs = u32_at(&hdr, 0, be) as u64;
        let frac = u32_at(&hdr, 4, be) as u64;
        let caplen = u32_at(&hdr, 8, be) as usize;
        if caplen > MAX_RECORD {
            return Err(self.corrupt(at, &format!("record length {caplen} is implausible")));
        }
        let nanos_part = if nanos { frac } else { frac * 1000 };
        if nanos_part >= 1_000_000_000 {
            return Err(self.corrupt(at, "record timestamp fraction is out of range"));
        }
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
            ts: Timestamp(secs * 1_000_000_000 + nanos_part),
            link,
            data: &self.buf,
            offset: at,
        }))
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

    /// Fills `buf`; false at end of file (clean if nothing was read, else the caller reports it).
    fn read_exact_or_eof(&mut self, buf: &mut [u8]) -> Result<bool, CaptureError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
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
