//! Checked views of SRTP and SRTCP packets. After `new_checked` no getter can panic.

use super::SrtpError;

/// Where the MKI and the tag sit, which differs between HMAC and AEAD suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub mki_len: usize,
    pub tag_len: usize,
    /// AEAD: the tag follows the ciphertext and the MKI comes last (RFC 7714 §8, §9; as
    /// libsrtp writes it). HMAC: the MKI precedes the tag (RFC 3711 §3.1, §3.4).
    pub aead: bool,
}

mod field {
    pub const FLAGS: usize = 0;
    pub const SEQ: core::ops::Range<usize> = 2..4;
    pub const SSRC: core::ops::Range<usize> = 8..12;
    pub const RTP_HEADER_LEN: usize = 12;
    pub const RTCP_SSRC: core::ops::Range<usize> = 4..8;
    /// The first RTCP header and sender SSRC stay in the clear (RFC 3711 §3.4).
    pub const RTCP_HEADER_LEN: usize = 8;
    pub const SRTCP_TRAILER_LEN: usize = 4;
}

pub(crate) use field::{RTCP_HEADER_LEN, SRTCP_TRAILER_LEN};

fn be16(b: &[u8]) -> u16 {
    match b {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn be32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// Fixed header, CSRCs and header extension: what SRTP leaves in the clear (RFC 3550 §5.1,
/// §5.3.1; RFC 3711 §3.1).
pub(crate) fn rtp_header_len(data: &[u8]) -> Result<usize, SrtpError> {
    let flags = *data.get(field::FLAGS).ok_or(SrtpError::TooShort)?;
    if data.len() < field::RTP_HEADER_LEN {
        return Err(SrtpError::TooShort);
    }
    if flags >> 6 != 2 {
        return Err(SrtpError::BadVersion);
    }
    let mut len = field::RTP_HEADER_LEN + 4 * usize::from(flags & 0x0f);
    if flags & 0x10 != 0 {
        let ext = data.get(len..len + 4).ok_or(SrtpError::TooShort)?;
        len += 4 + 4 * usize::from(be16(&ext[2..]));
    }
    if len > data.len() {
        return Err(SrtpError::TooShort);
    }
    Ok(len)
}

/// An SRTP packet (RFC 3711 §3.1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SrtpPacket<T: AsRef<[u8]>> {
    buffer: T,
    header_len: usize,
    /// End of the encrypted payload.
    payload_end: usize,
    layout: Layout,
}

impl<T: AsRef<[u8]>> SrtpPacket<T> {
    pub fn new_checked(buffer: T, layout: Layout) -> Result<Self, SrtpError> {
        let data = buffer.as_ref();
        let header_len = rtp_header_len(data)?;
        let payload_end = data
            .len()
            .checked_sub(layout.mki_len + layout.tag_len)
            .filter(|&end| end >= header_len)
            .ok_or(SrtpError::TooShort)?;
        Ok(SrtpPacket {
            buffer,
            header_len,
            payload_end,
            layout,
        })
    }

    /// A plain RTP packet whose header length [`rtp_header_len`] returned: no MKI, no tag.
    pub fn new_unchecked_header(buffer: T, header_len: usize) -> Self {
        let payload_end = buffer.as_ref().len();
        SrtpPacket {
            buffer,
            header_len: header_len.min(payload_end),
            payload_end,
            layout: Layout {
                mki_len: 0,
                tag_len: 0,
                aead: false,
            },
        }
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn sequence_number(&self) -> u16 {
        be16(&self.data()[field::SEQ])
    }

    pub fn ssrc(&self) -> u32 {
        be32(&self.data()[field::SSRC])
    }

    pub fn header(&self) -> &[u8] {
        &self.data()[..self.header_len]
    }

    pub fn payload(&self) -> &[u8] {
        &self.data()[self.header_len..self.payload_end]
    }

    /// Header and encrypted payload: what HMAC covers (RFC 3711 §3.1).
    pub fn authenticated(&self) -> &[u8] {
        &self.data()[..self.payload_end]
    }

    pub fn mki(&self) -> &[u8] {
        let d = self.data();
        if self.layout.aead {
            &d[d.len() - self.layout.mki_len..]
        } else {
            &d[self.payload_end..self.payload_end + self.layout.mki_len]
        }
    }

    pub fn tag(&self) -> &[u8] {
        let d = self.data();
        if self.layout.aead {
            &d[self.payload_end..self.payload_end + self.layout.tag_len]
        } else {
            &d[d.len() - self.layout.tag_len..]
        }
    }
}

/// An SRTCP packet (RFC 3711 §3.4): the first 8 bytes in the clear, the rest of the compound
/// packet encrypted, then the E flag with the 31-bit SRTCP index, the MKI and the tag.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SrtcpPacket<T: AsRef<[u8]>> {
    buffer: T,
    payload_end: usize,
    layout: Layout,
}

impl<T: AsRef<[u8]>> SrtcpPacket<T> {
    pub fn new_checked(buffer: T, layout: Layout) -> Result<Self, SrtpError> {
        let data = buffer.as_ref();
        let flags = *data.first().ok_or(SrtpError::TooShort)?;
        if data.len() < field::RTCP_HEADER_LEN {
            return Err(SrtpError::TooShort);
        }
        if flags >> 6 != 2 {
            return Err(SrtpError::BadVersion);
        }
        let payload_end = data
            .len()
            .checked_sub(field::SRTCP_TRAILER_LEN + layout.mki_len + layout.tag_len)
            .filter(|&end| end >= field::RTCP_HEADER_LEN)
            .ok_or(SrtpError::TooShort)?;
        Ok(SrtcpPacket {
            buffer,
            payload_end,
            layout,
        })
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn ssrc(&self) -> u32 {
        be32(&self.data()[field::RTCP_SSRC])
    }

    pub fn header(&self) -> &[u8] {
        &self.data()[..field::RTCP_HEADER_LEN]
    }

    pub fn payload(&self) -> &[u8] {
        &self.data()[field::RTCP_HEADER_LEN..self.payload_end]
    }

    fn trailer_start(&self) -> usize {
        if self.layout.aead {
            self.payload_end + self.layout.tag_len
        } else {
            self.payload_end
        }
    }

    /// The E flag and SRTCP index word.
    pub fn trailer(&self) -> &[u8] {
        let s = self.trailer_start();
        &self.data()[s..s + field::SRTCP_TRAILER_LEN]
    }

    pub fn encrypted(&self) -> bool {
        be32(self.trailer()) >> 31 == 1
    }

    pub fn index(&self) -> u32 {
        be32(self.trailer()) & 0x7fff_ffff
    }

    /// Everything before the MKI: what HMAC covers, trailer included (RFC 3711 §3.4).
    pub fn authenticated(&self) -> &[u8] {
        &self.data()[..self.payload_end + field::SRTCP_TRAILER_LEN]
    }

    pub fn mki(&self) -> &[u8] {
        let s = self.trailer_start() + field::SRTCP_TRAILER_LEN;
        if self.layout.aead {
            &self.data()[s..s + self.layout.mki_len]
        } else {
            &self.data()[self.payload_end + field::SRTCP_TRAILER_LEN..][..self.layout.mki_len]
        }
    }

    pub fn tag(&self) -> &[u8] {
        let d = self.data();
        if self.layout.aead {
            &d[self.payload_end..self.payload_end + self.layout.tag_len]
        } else {
            &d[d.len() - self.layout.tag_len..]
        }
    }
}
