//! RTP (RFC 3550) packets, tone and in-band DTMF audio, and RFC 4733 telephone-events.

pub use crate::codec::Codec;
use crate::g711::{linear_to_alaw, linear_to_ulaw};

/// Samples per 20 ms packet at 8 kHz (G.711).
pub const SAMPLES_PER_PACKET: u32 = 160;
pub const PACKET_NS: u64 = 20_000_000;
/// The G.711 sample rate.
pub const SAMPLE_RATE: f64 = 8000.0;
/// Dynamic payload type used for telephone-event.
pub const PT_TELEPHONE_EVENT: u8 = 101;
/// Peak amplitude of the test tones: -6 dBFS.
pub const TONE_AMPLITUDE: f64 = 16384.0;

#[derive(Clone, Copy, Debug)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

pub fn rtp_packet(h: &RtpHeader, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80); // V=2, P=0, X=0, CC=0
    p.push(((h.marker as u8) << 7) | (h.payload_type & 0x7F));
    p.extend_from_slice(&h.seq.to_be_bytes());
    p.extend_from_slice(&h.timestamp.to_be_bytes());
    p.extend_from_slice(&h.ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// `n` samples at `rate` Hz of a pure sine at `freq_hz`, starting at absolute sample index
/// `first_sample` (so consecutive packets are phase-continuous).
pub fn tone_pcm(freq_hz: f64, rate: u32, first_sample: u64, n: u32) -> Vec<i16> {
    let rate = f64::from(rate);
    (0..u64::from(n))
        .map(|i| {
            let n = (first_sample + i) as f64;
            let v = TONE_AMPLITUDE * (2.0 * std::f64::consts::PI * freq_hz * n / rate).sin();
            v.round() as i16
        })
        .collect()
}

/// 160 G.711 samples of a pure sine at `freq_hz` (see [`tone_pcm`]).
pub fn tone_payload(codec: Codec, freq_hz: f64, first_sample: u64) -> Vec<u8> {
    g711(
        codec,
        &tone_pcm(freq_hz, 8000, first_sample, SAMPLES_PER_PACKET),
    )
}

fn g711(codec: Codec, pcm: &[i16]) -> Vec<u8> {
    let f = match codec {
        Codec::Pcma => linear_to_alaw,
        _ => linear_to_ulaw,
    };
    pcm.iter().map(|&s| f(s)).collect()
}

/// Peak amplitude of each tone of an in-band DTMF digit: -12 dBFS.
pub const DTMF_TONE_AMPLITUDE: f64 = 8192.0;

/// Row and column frequency of a DTMF digit (ITU-T Q.23).
pub fn dtmf_frequencies(digit: char) -> Option<(f64, f64)> {
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    KEYS.iter()
        .enumerate()
        .find_map(|(r, k)| k.find(digit).map(|c| (ROWS[r], COLS[c])))
}

/// `n` samples at `rate` Hz of an in-band DTMF digit (both tones), phase-continuous like
/// [`tone_pcm`]; silence for a character that is no digit.
pub fn dtmf_pcm(digit: char, rate: u32, first_sample: u64, n: u32) -> Vec<i16> {
    let Some((row, col)) = dtmf_frequencies(digit) else {
        return vec![0; n as usize];
    };
    let rate = f64::from(rate);
    (0..u64::from(n))
        .map(|i| {
            let n = (first_sample + i) as f64;
            let w = 2.0 * std::f64::consts::PI * n / rate;
            let v = DTMF_TONE_AMPLITUDE * ((w * row).sin() + (w * col).sin());
            v.round() as i16
        })
        .collect()
}

/// 160 G.711 samples of an in-band DTMF digit (see [`dtmf_pcm`]).
pub fn dtmf_payload(codec: Codec, digit: char, first_sample: u64) -> Vec<u8> {
    g711(
        codec,
        &dtmf_pcm(digit, 8000, first_sample, SAMPLES_PER_PACKET),
    )
}

/// RFC 4733 event code for a DTMF digit.
pub fn dtmf_event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(12 + (digit as u8 - b'A')),
        _ => None,
    }
}

/// RFC 4733 telephone-event payload (4 bytes).
pub fn telephone_event(event: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [event, ((end as u8) << 7) | (volume & 0x3F), d[0], d[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let p = rtp_packet(
            &RtpHeader {
                marker: true,
                payload_type: 8,
                seq: 0x1234,
                timestamp: 0xdeadbeef,
                ssrc: 0x01020304,
            },
            &[1, 2],
        );
        assert_eq!(
            p,
            vec![
                0x80, 0x88, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 1, 2
            ]
        );
    }

    #[test]
    fn telephone_event_layout() {
        assert_eq!(telephone_event(11, true, 10, 800), [11, 0x8A, 0x03, 0x20]);
        assert_eq!(dtmf_event_code('#'), Some(11));
        assert_eq!(dtmf_event_code('5'), Some(5));
        assert_eq!(dtmf_frequencies('*'), Some((941.0, 1209.0)));
        assert_eq!(dtmf_frequencies('B'), Some((770.0, 1633.0)));
        assert_eq!(dtmf_frequencies('x'), None);
    }
}
