//! The stereo timeline of one recording.
//!
//! Each channel (left: caller, right: callee) places decoded audio by RTP timestamp, anchored
//! to packet arrival time, so lost packets, silence suppression and hold become silence of the
//! right length and the two channels stay aligned with the wall clock of the call. Audio is
//! handed out in order once it is older than the reorder window; packets that arrive after
//! their place was handed out are counted as late.

use std::collections::VecDeque;

use crate::codec::Decoder;
use crate::event::Side;

/// Where a channel's RTP timestamps meet the timeline.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    source: u64,
    /// Extended RTP timestamp that sits at `frame`.
    base_ts: i64,
    frame: i64,
    /// The latest extended timestamp, and the raw value it came from (for unwrapping).
    ext_ts: i64,
    last_raw_ts: u32,
}

impl Anchor {
    fn new(source: u64, rtp_ts: u32, frame: i64) -> Self {
        Self {
            source,
            base_ts: rtp_ts as i64,
            frame,
            ext_ts: rtp_ts as i64,
            last_raw_ts: rtp_ts,
        }
    }
}

#[derive(Default)]
struct Channel {
    /// Samples from the timeline's `emitted` frame onward.
    buf: VecDeque<i16>,
    anchor: Option<Anchor>,
    /// Frame position of the end of the last placed packet.
    last_end: i64,
    /// Arrival frame of the last packet placed from the anchored source.
    last_arrival: i64,
    late: u64,
}

/// What happened to one packet's audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Placed,
    /// Its place was already handed out.
    Late,
    /// Nothing to place (empty payload or no decoder).
    Empty,
    /// Another stream already feeds this channel: a media relay's second leg, or a forked
    /// copy. The first stream keeps the channel until it goes quiet.
    Shadowed,
}

pub struct Timeline {
    rate: u32,
    /// Frames already handed out.
    emitted: i64,
    channels: [Channel; 2],
    /// Upper bound on buffered audio ahead of `emitted`, in frames.
    max_ahead: i64,
    /// A timestamp that disagrees with arrival time by more than this many frames re-anchors.
    resync: i64,
    scratch: Vec<i16>,
}

fn index(side: Side) -> usize {
    match side {
        Side::Caller => 0,
        Side::Callee => 1,
    }
}

impl Timeline {
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            emitted: 0,
            channels: [Channel::default(), Channel::default()],
            max_ahead: rate as i64 * 30,
            resync: rate as i64,
            scratch: Vec::new(),
        }
    }

    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Frames handed out so far.
    pub fn emitted(&self) -> u64 {
        self.emitted as u64
    }

    pub fn late(&self, side: Side) -> u64 {
        self.channels[index(side)].late
    }

    /// Places one packet's audio. `arrival_frame` is the packet's arrival time as a frame
    /// offset from the start of the recording; `source` identifies the RTP stream, so a new
    /// SSRC or a media move re-anchors the channel.
    pub fn place(
        &mut self,
        side: Side,
        source: u64,
        rtp_ts: u32,
        arrival_frame: i64,
        decoder: &mut dyn Decoder,
        payload: &[u8],
    ) -> Placement {
        let quiet = self.resync / 4;
        if let Some(a) = self.channels[index(side)].anchor {
            let ch = &self.channels[index(side)];
            if a.source != source && arrival_frame - ch.last_arrival < quiet {
                return Placement::Shadowed;
            }
        }
        self.scratch.clear();
        let _ = decoder.decode(payload, &mut self.scratch);
        if self.scratch.is_empty() {
            return Placement::Empty;
        }
        if decoder.sample_rate() != self.rate {
            resample(&mut self.scratch, decoder.sample_rate(), self.rate);
        }
        let ticks_per_frame =
            decoder.clock_rate() as f64 / self.rate as f64;
        let resync = self.resync;
        let ch = &mut self.channels[index(side)];
        let frame = match ch.anchor {
            Some(mut a) if a.source == source => {
                a.ext_ts += rtp_ts.wrapping_sub(a.last_raw_ts) as i32 as i64;
                a.last_raw_ts = rtp_ts;
                let at = a.frame + ((a.ext_ts - a.base_ts) as f64 / ticks_per_frame).round() as i64;
                if (at - arrival_frame).abs() > resync {
                    // The timestamp jumped (a new talk spurt from a broken sender, or a clock
                    // reset): trust arrival time again.
                    ch.anchor = Some(Anchor::new(source, rtp_ts, arrival_frame));
                    arrival_frame
                } else {
                    ch.anchor = Some(a);
                    at
                }
            }
            _ => {
                // A stream that moves on after another one keeps going from where the old one
                // stopped if that is close to its arrival; otherwise arrival time wins.
                let start = if (ch.last_end - arrival_frame).abs() < resync / 4 && ch.last_end > 0 {
                    ch.last_end.max(self.emitted)
                } else {
                    arrival_frame
                };
                ch.anchor = Some(Anchor::new(source, rtp_ts, start));
                start
            }
        };
        let n = self.scratch.len() as i64;
        let emitted = self.emitted;
        if frame + n <= emitted {
            ch.late += 1;
            return Placement::Late;
        }
        if frame - emitted > self.max_ahead {
            ch.late += 1;
            return Placement::Late;
        }
        let skip = (emitted - frame).max(0);
        let start = (frame + skip - emitted) as usize;
        let end = (frame + n - emitted) as usize;
        if ch.buf.len() < end {
            ch.buf.resize(end, 0);
        }
        // At most two contiguous runs: no per-sample index arithmetic or bounds check.
        for (dst, src) in ch
            .buf
            .range_mut(start..end)
            .zip(&self.scratch[skip as usize..])
        {
            *dst = *src;
        }
        ch.last_end = ch.last_end.max(frame + n);
        ch.last_arrival = ch.last_arrival.max(arrival_frame);
        Placement::Placed
    }

    /// Hands out every frame before `until` as interleaved stereo (left caller, right callee),
    /// silence where a channel has nothing.
    pub fn drain_until(&mut self, until: i64, out: &mut Vec<i16>) -> usize {
        let n = (until - self.emitted).max(0) as usize;
        out.reserve(n * 2);
        let [left, right] = &mut self.channels;
        for ch in [&mut *left, &mut *right] {
            if ch.buf.len() < n {
                ch.buf.resize(n, 0);
            }
        }
        out.extend(
            left.buf
                .drain(..n)
                .zip(right.buf.drain(..n))
                .flat_map(|(l, r)| [l, r]),
        );
        self.emitted += n as i64;
        n
    }
}

/// Converts one packet's samples from `from` Hz to `to` Hz by linear interpolation, in place.
/// Recordings may run at a higher rate than the codec (a policy's `sample_rate`); voice loses
/// nothing from it, and packet boundaries hold the last sample rather than reach ahead.
fn resample(samples: &mut Vec<i16>, from: u32, to: u32) {
    let n = samples.len();
    let out_len = (n as u64 * to as u64 / from as u64) as usize;
    let step = from as f64 / to as f64;
    let input = std::mem::take(samples);
    samples.reserve(out_len);
    for j in 0..out_len {
        let x = j as f64 * step;
        let i = x as usize;
        let frac = x - i as f64;
        let a = input[i.min(n - 1)] as f64;
        let b = input[(i + 1).min(n - 1)] as f64;
        samples.push((a + (b - a) * frac).round() as i16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::G711;

    /// μ-law byte for a linear value near ±4000, enough to tell channels apart.
    const LOUD: u8 = 0x9f;

    fn drain_all(t: &mut Timeline, until: i64) -> Vec<i16> {
        let mut out = Vec::new();
        t.drain_until(until, &mut out);
        out
    }

    #[test]
    fn packets_land_by_timestamp_and_gaps_are_silence() {
        let mut t = Timeline::new(8000);
        let mut dec = G711::ulaw();
        // Caller: packets 0, 1 and 3 of 20 ms (packet 2 lost).
        for i in [0i64, 1, 3] {
            let p = t.place(
                Side::Caller,
                1,
                1000 + 160 * i as u32,
                160 * i,
                &mut dec,
                &[LOUD; 160],
            );
            assert_eq!(p, Placement::Placed);
        }
        let out = drain_all(&mut t, 640);
        assert_eq!(out.len(), 1280);
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        let right: Vec<i16> = out.iter().skip(1).step_by(2).copied().collect();
        assert!(left[..320].iter().all(|&s| s != 0));
        assert!(
            left[320..480].iter().all(|&s| s == 0),
            "lost packet must be silence"
        );
        assert!(left[480..].iter().all(|&s| s != 0));
        assert!(right.iter().all(|&s| s == 0));
    }

    #[test]
    fn reordered_packets_within_the_window_are_placed() {
        let mut t = Timeline::new(8000);
        let mut dec = G711::ulaw();
        t.place(Side::Callee, 7, 0, 0, &mut dec, &[LOUD; 160]);
        t.place(Side::Callee, 7, 320, 320, &mut dec, &[LOUD; 160]);
        t.place(Side::Callee, 7, 160, 330, &mut dec, &[LOUD; 160]);
        let out = drain_all(&mut t, 480);
        assert!(out.iter().skip(1).step_by(2).all(|&s| s != 0));
    }

    #[test]
    fn late_packets_are_counted_not_placed() {
        let mut t = Timeline::new(8000);
        let mut dec = G711::ulaw();
        t.place(Side::Caller, 1, 0, 0, &mut dec, &[LOUD; 160]);
        drain_all(&mut t, 800);
        assert_eq!(
            t.place(Side::Caller, 1, 160, 800, &mut dec, &[LOUD; 160]),
            Placement::Late
        );
        assert_eq!(t.late(Side::Caller), 1);
    }

    #[test]
    fn a_timestamp_jump_reanchors_on_arrival() {
        let mut t = Timeline::new(8000);
        let mut dec = G711::ulaw();
        t.place(Side::Caller, 1, 0, 0, &mut dec, &[LOUD; 160]);
        // The sender's clock jumps by an hour; arrival says 20 ms later.
        t.place(Side::Caller, 1, 28_800_000, 160, &mut dec, &[LOUD; 160]);
        let out = drain_all(&mut t, 320);
        assert!(out.iter().step_by(2).all(|&s| s != 0));
    }

    #[test]
    fn a_second_stream_does_not_fight_the_first_for_a_channel() {
        let mut t = Timeline::new(8000);
        let mut dec = G711::ulaw();
        for i in 0..10u32 {
            let at = 160 * i as i64;
            assert_eq!(
                t.place(Side::Caller, 1, 160 * i, at, &mut dec, &[LOUD; 160]),
                Placement::Placed
            );
            // A relay's copy of the same audio, with its own timestamps.
            assert_eq!(
                t.place(
                    Side::Caller,
                    2,
                    90_000 + 160 * i,
                    at + 8,
                    &mut dec,
                    &[0x80; 160]
                ),
                Placement::Shadowed
            );
        }
        // Once the first goes quiet, the second takes over (a media move).
        let at = 160 * 10 + 4000;
        assert_eq!(
            t.place(Side::Caller, 2, 95_000, at, &mut dec, &[LOUD; 160]),
            Placement::Placed
        );
        let out = drain_all(&mut t, 1600);
        let mut loud = Vec::new();
        dec.decode(&[LOUD], &mut loud).unwrap();
        assert!(
            out.iter().step_by(2).all(|&s| s == loud[0]),
            "only the first stream's audio"
        );
    }

    #[test]
    fn a_16_khz_recording_places_8_khz_audio_at_twice_the_frames() {
        let mut t = Timeline::new(16_000);
        let mut dec = G711::ulaw();
        // Two 20 ms packets, the second lost, the third present: RTP timestamps in 8 kHz ticks.
        t.place(Side::Caller, 1, 0, 0, &mut dec, &[LOUD; 160]);
        t.place(Side::Caller, 1, 320, 640, &mut dec, &[LOUD; 160]);
        let out = drain_all(&mut t, 960);
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        assert_eq!(left.len(), 960);
        assert!(
            left[..320].iter().all(|&s| s != 0),
            "first packet fills 20 ms = 320 frames"
        );
        assert!(
            left[320..640].iter().all(|&s| s == 0),
            "the lost packet is 20 ms of silence"
        );
        assert!(left[640..].iter().all(|&s| s != 0));
    }

    #[test]
    fn resampling_keeps_a_tone_and_its_length() {
        let tone: Vec<i16> = (0..160)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * 400.0 / 8000.0).sin() * 8000.0) as i16
            })
            .collect();
        let mut up = tone.clone();
        resample(&mut up, 8000, 48_000);
        assert_eq!(up.len(), 960);
        // Every sixth output sample is an input sample.
        for (i, s) in tone.iter().enumerate() {
            assert_eq!(up[i * 6], *s);
        }
    }

    #[test]
    fn timestamp_wraps_without_a_gap() {
        let mut t = Timeline::new(8000);
        let mut dec = G711::ulaw();
        let ts0 = u32::MAX - 100;
        t.place(Side::Caller, 1, ts0, 0, &mut dec, &[LOUD; 160]);
        t.place(
            Side::Caller,
            1,
            ts0.wrapping_add(160),
            160,
            &mut dec,
            &[LOUD; 160],
        );
        let out = drain_all(&mut t, 320);
        assert!(out.iter().step_by(2).all(|&s| s != 0));
    }
}
