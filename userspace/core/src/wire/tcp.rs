//! TCP header view and option walk (RFC 9293 §3.1).

use super::{Error, TcpFlags, be16, be32};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

pub const MIN_HEADER_LEN: usize = field::URGENT.end;

/// A TCP segment; the buffer is the IP payload.
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
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    pub fn seq_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    pub fn ack_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    pub fn window_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    pub fn urgent_at(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Raw option bytes; walk them with [`TcpOption::parse`].
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// One TCP option (RFC 9293 §3.2, RFC 7323 §2-3, RFC 2018 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    WindowScale(u8),
    SackPermitted,
    /// Left/right edge pairs, 8 bytes each, unparsed.
    Sack(&'a [u8]),
    Timestamps {
        value: u32,
        echo: u32,
    },
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

impl<'a> TcpOption<'a> {
    /// Reads one option and returns the bytes after it; after `EndOfList` the rest is empty.
    pub fn parse(buf: &'a [u8]) -> Result<(&'a [u8], TcpOption<'a>), Error> {
        let (&kind, rest) = buf.split_first().ok_or(Error::Truncated)?;
        match kind {
            0 => return Ok((&[], TcpOption::EndOfList)),
            1 => return Ok((rest, TcpOption::NoOperation)),
            _ => {}
        }
        let (&len, _) = rest.split_first().ok_or(Error::Truncated)?;
        let len = usize::from(len);
        if len < 2 {
            return Err(Error::Malformed);
        }
        let data = buf.get(2..len).ok_or(Error::Truncated)?;
        let rest = &buf[len..];
        let option = match (kind, data.len()) {
            (2, 2) => TcpOption::MaxSegmentSize(be16(data)),
            (3, 1) => TcpOption::WindowScale(data[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n % 8 == 0 => TcpOption::Sack(data),
            (8, 8) => TcpOption::Timestamps {
                value: be32(&data[..4]),
                echo: be32(&data[4..]),
            },
            (2..=5 | 8, _) => return Err(Error::Malformed),
            (kind, _) => TcpOption::Unknown { kind, data },
        };
        Ok((rest, option))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SYN from 10.0.0.1:40000 to 5060 with MSS, SACK-permitted, timestamps, NOP, window scale.
    static SYN: [u8; 44] = [
        0x9c, 0x40, 0x13, 0xc4, // ports
        0x12, 0x34, 0x56, 0x78, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // data offset 10 (40 bytes), SYN, window
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // timestamps
        0x01, // NOP
        0x03, 0x03, 0x07, // window scale 7
        b'h', b'i', b'!', b'\n',
    ];

    #[test]
    fn fields_and_options() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 5060);
        assert_eq!(p.seq_number(), 0x1234_5678);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert!(p.flags().syn() && !p.flags().fin() && !p.flags().rst());
        assert_eq!(p.window_len(), 0xfaf0);
        assert_eq!(p.payload(), b"hi!\n");

        let mut rest = p.options();
        let mut seen = Vec::new();
        while !rest.is_empty() {
            let (r, option) = TcpOption::parse(rest).unwrap();
            seen.push(option);
            rest = r;
        }
        assert_eq!(
            seen,
            [
                TcpOption::MaxSegmentSize(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamps { value: 1, echo: 0 },
                TcpOption::NoOperation,
                TcpOption::WindowScale(7),
            ]
        );
    }

    #[test]
    fn errors() {
        for n in 0..40 {
            assert_eq!(
                Packet::new_checked(&SYN[..n]),
                Err(Error::Truncated),
                "len {n}"
            );
        }
        let mut b = SYN;
        b[12] = 0x40; // data offset 4
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        assert_eq!(TcpOption::parse(&[]), Err(Error::Truncated));
        assert_eq!(TcpOption::parse(&[2]), Err(Error::Truncated));
        assert_eq!(TcpOption::parse(&[2, 4, 5]), Err(Error::Truncated));
        assert_eq!(TcpOption::parse(&[2, 1]), Err(Error::Malformed));
        assert_eq!(TcpOption::parse(&[2, 3, 5]), Err(Error::Malformed));
        assert_eq!(
            TcpOption::parse(&[30, 3, 9, 1]),
            Ok((
                &[1u8][..],
                TcpOption::Unknown {
                    kind: 30,
                    data: &[9]
                }
            ))
        );
    }
}
