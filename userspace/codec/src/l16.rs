//! L16: uncompressed 16-bit linear PCM (RFC 3551 §4.5.11): network byte order (big-endian),
//! any sample rate (the RTP clock rate is the sample rate), interleaved channels (RFC 3551
//! §4.1), which we mix down to mono.

use crate::{DecodeError, Decoder};

pub struct L16 {
    rate: u32,
    channels: usize,
}

impl L16 {
    /// `channels` is at least 1.
    pub fn new(rate: u32, channels: u8) -> Self {
        L16 {
            rate,
            channels: channels.max(1) as usize,
        }
    }
}

impl Decoder for L16 {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn clock_rate(&self) -> u32 {
        self.rate
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, DecodeError> {
        let frame = 2 * self.channels;
        if !payload.len().is_multiple_of(frame) {
            return Err(DecodeError);
        }
        let n = payload.len() / frame;
        out.reserve(n);
        for f in payload.chunks_exact(frame) {
            let sum: i32 = f
                .chunks_exact(2)
                .map(|s| i16::from_be_bytes([s[0], s[1]]) as i32)
                .sum();
            out.push((sum / self.channels as i32) as i16);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_mono_and_stereo_mixdown() {
        let mut out = Vec::new();
        assert_eq!(
            L16::new(44100, 1).decode(&[0x01, 0x02, 0xff, 0xfe], &mut out),
            Ok(2)
        );
        assert_eq!(out, vec![0x0102, -2]);
        out.clear();
        let mut st = L16::new(48000, 2);
        assert_eq!(st.decode(&[0x10, 0x00, 0x20, 0x00], &mut out), Ok(1));
        assert_eq!(out, vec![0x1800]);
        assert_eq!(st.decode(&[0, 0, 0], &mut out), Err(DecodeError));
    }
}
