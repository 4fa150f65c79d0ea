//! Ogg pages (RFC 3533), written and read back.
//!
//! Our own ~150 lines rather than the `ogg` crate: the writer must end a page exactly when the
//! recording flushes, and recovery must read pages one by one, checking each CRC, to find where a
//! crash tore the file; both sides are short and share the CRC and the layout.

use std::io::{self, Read};

/// `OggS`, version, flags, granule, serial, sequence, CRC, segment count.
pub const HEADER_LEN: usize = 27;
pub const FLAG_BOS: u8 = 0x02;
pub const FLAG_EOS: u8 = 0x04;
/// Granule position of a page on which no packet ends.
pub const NO_GRANULE: u64 = u64::MAX;

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut j = 0;
        while j < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04c1_1db7
            } else {
                r << 1
            };
            j += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
};

/// The Ogg CRC-32: polynomial 0x04c11db7, initial 0, no reflection, no final xor.
pub fn crc32(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize]
    })
}

/// Builds one page holding `packets` whole.
pub fn page(flags: u8, granule: u64, serial: u32, sequence: u32, packets: &[&[u8]]) -> Vec<u8> {
    let mut lacing = Vec::new();
    for p in packets {
        lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
        lacing.push((p.len() % 255) as u8);
    }
    assert!(lacing.len() <= 255, "packets too large for one page");
    let body: usize = packets.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + lacing.len() + body);
    out.extend_from_slice(b"OggS");
    out.push(0);
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(lacing.len() as u8);
    out.extend_from_slice(&lacing);
    for p in packets {
        out.extend_from_slice(p);
    }
    set_crc(&mut out);
    out
}

/// Recomputes the CRC of a whole page in place (after its flags changed).
pub fn set_crc(page: &mut [u8]) {
    page[22..26].fill(0);
    let crc = crc32(page);
    page[22..26].copy_from_slice(&crc.to_le_bytes());
}

/// Collects packets into pages of whole packets.
pub struct PageWriter {
    serial: u32,
    sequence: u32,
    packets: Vec<Vec<u8>>,
    segments: usize,
    granule: u64,
}

impl PageWriter {
    /// `first_sequence` follows the header pages.
    pub fn new(serial: u32, first_sequence: u32) -> PageWriter {
        PageWriter {
            serial,
            sequence: first_sequence,
            packets: Vec::new(),
            segments: 0,
            granule: 0,
        }
    }

    /// Adds a packet ending at `granule`; returns the page it did not fit on, if any.
    pub fn packet(&mut self, data: &[u8], granule: u64) -> Option<Vec<u8>> {
        let segments = data.len() / 255 + 1;
        let full = (self.segments + segments > 255).then(|| self.page(0));
        self.packets.push(data.to_vec());
        self.segments += segments;
        self.granule = granule;
        full.flatten()
    }

    /// Sets the granule of the last packet added (end trimming on the last page).
    pub fn set_granule(&mut self, granule: u64) {
        self.granule = granule;
    }

    /// The page of the packets collected so far, `None` if there are none.
    pub fn page(&mut self, flags: u8) -> Option<Vec<u8>> {
        if self.packets.is_empty() {
            return None;
        }
        let refs: Vec<&[u8]> = self.packets.iter().map(Vec::as_slice).collect();
        let out = page(flags, self.granule, self.serial, self.sequence, &refs);
        self.sequence += 1;
        self.packets.clear();
        self.segments = 0;
        Some(out)
    }
}

/// One page read back whole, its CRC checked.
pub struct Page {
    /// The page's bytes, header included.
    pub bytes: Vec<u8>,
    pub body_start: usize,
    pub lacing: Vec<u8>,
}

impl Page {
    pub fn flags(&self) -> u8 {
        self.bytes[5]
    }

    pub fn granule(&self) -> u64 {
        u64::from_le_bytes(self.bytes[6..14].try_into().expect("8 bytes"))
    }

    pub fn sequence(&self) -> u32 {
        u32::from_le_bytes(self.bytes[18..22].try_into().expect("4 bytes"))
    }

    /// The first packet starting on this page (whole, if the page holds it whole).
    pub fn first_packet(&self) -> &[u8] {
        let len: usize = self
            .lacing
            .iter()
            .position(|&l| l < 255)
            .map_or(self.lacing.len(), |i| i + 1);
        let bytes: usize = self.lacing[..len].iter().map(|&l| usize::from(l)).sum();
        &self.bytes[self.body_start..self.body_start + bytes]
    }

    /// Whether the page's last packet ends on it.
    pub fn ends_whole(&self) -> bool {
        self.lacing.last().is_none_or(|&l| l < 255)
    }
}

/// The next whole page whose CRC checks; `Ok(None)` at the end of the data, at a torn page or at
/// anything that is not a page.
pub fn read_page(r: &mut impl Read) -> io::Result<Option<Page>> {
    let mut header = [0u8; HEADER_LEN];
    if !read_full(r, &mut header)? || &header[0..4] != b"OggS" || header[4] != 0 {
        return Ok(None);
    }
    let nseg = usize::from(header[26]);
    let mut lacing = vec![0u8; nseg];
    if !read_full(r, &mut lacing)? {
        return Ok(None);
    }
    let body: usize = lacing.iter().map(|&l| usize::from(l)).sum();
    let mut bytes = Vec::with_capacity(HEADER_LEN + nseg + body);
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&lacing);
    bytes.resize(HEADER_LEN + nseg + body, 0);
    if !read_full(r, &mut bytes[HEADER_LEN + nseg..])? {
        return Ok(None);
    }
    let stored = u32::from_le_bytes(bytes[22..26].try_into().expect("4 bytes"));
    bytes[22..26].fill(0);
    if crc32(&bytes) != stored {
        return Ok(None);
    }
    bytes[22..26].copy_from_slice(&stored.to_le_bytes());
    Ok(Some(Page {
        bytes,
        body_start: HEADER_LEN + nseg,
        lacing,
    }))
}

/// Fills `buf`; false if the data ends first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_a_known_page() {
        // CRC-32/POSIX (same polynomial, initial 0) without its final inversion: its check value
        // 0x765e7680 inverted.
        assert_eq!(crc32(b"123456789"), 0x89a1_897f);
    }

    #[test]
    fn pages_read_back_and_torn_pages_do_not() {
        let a = page(FLAG_BOS, 0, 7, 0, &[b"OpusHead....."]);
        let big = vec![9u8; 600];
        let b = page(0, 960, 7, 1, &[&big, b"x"]);
        assert_eq!(b[26], 4); // 255 + 255 + 90, then 1
        let mut data = [a.clone(), b.clone()].concat();
        let mut r = &data[..];
        let p = read_page(&mut r).unwrap().unwrap();
        assert_eq!(
            (p.flags(), p.granule(), p.first_packet()),
            (FLAG_BOS, 0, &b"OpusHead....."[..])
        );
        let p = read_page(&mut r).unwrap().unwrap();
        assert_eq!(
            (p.sequence(), p.granule(), p.first_packet().len()),
            (1, 960, 600)
        );
        assert!(p.ends_whole());
        assert!(read_page(&mut r).unwrap().is_none());
        data.truncate(data.len() - 1);
        let mut r = &data[..];
        assert!(read_page(&mut r).unwrap().is_some());
        assert!(read_page(&mut r).unwrap().is_none());
        let mut w = PageWriter::new(7, 2);
        for i in 0..300u64 {
            if let Some(page) = w.packet(&[1, 2, 3], i * 960) {
                assert_eq!(page[26], 255);
            }
        }
        assert!(w.page(FLAG_EOS).is_some());
        assert!(w.page(0).is_none());
    }
}
