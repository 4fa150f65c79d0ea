//! UDP header view (RFC 768).

use super::{Error, be16};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A UDP datagram; the buffer is the IP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.datagram_len() < HEADER_LEN {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    pub fn len_field(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Header plus payload. The IP length wins when the field is 0 (RFC 2675 §4) or claims more than
    /// the IP layer carried; a shorter field cuts padding.
    pub fn datagram_len(&self) -> usize {
        let available = self.buffer.as_ref().len();
        match usize::from(self.len_field()) {
            0 => available,
            n if n > available => available,
            n => n,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.datagram_len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DATAGRAM: [u8; 14] = [
        0x13, 0xc4, 0x27, 0x10, // 5060 -> 10000
        0x00, 0x0c, 0xab, 0xcd, // length 12, checksum
        0x80, 0x00, 0x00, 0x01, // payload
        0xff, 0xff, // trailing bytes beyond the UDP length
    ];

    #[test]
    fn fields() {
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 5060);
        assert_eq!(p.dst_port(), 10000);
        assert_eq!(p.checksum(), 0xabcd);
        assert_eq!(p.payload(), &[0x80, 0x00, 0x00, 0x01]);
    }

    #[test]
    fn length_field_zero_or_too_large_trusts_ip() {
        let mut b = DATAGRAM;
        b[5] = 0;
        assert_eq!(Packet::new_checked(&b[..]).unwrap().payload().len(), 6);
        b[4] = 0x01;
        assert_eq!(Packet::new_checked(&b[..]).unwrap().payload().len(), 6);
    }

    #[test]
    fn errors() {
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&DATAGRAM[..n]), Err(Error::Truncated));
        }
        let mut b = DATAGRAM;
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
    }
}
