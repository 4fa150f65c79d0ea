//! The stereo timeline of one recording.
//!
//! Each channel (left: caller, right: callee) lays its stream's decoded audio end to end by RTP
//! timestamp, so every sample received is kept, lost packets and silence suppression become
//! gaps of the right length, and the channel follows its sender's media clock however the
//! capture clock drifts, stalls or runs fast (a replay at 4x). Arrival time is used only to
//! anchor a stream, to tell a real discontinuity from a stall, and to keep the two channels
//! together:
//!
//! - a stream starts where the other channel is at its arrival (or where the recording's clock
//!   is), never over audio already placed;
//! - a new stream on a channel while the old one still talks is shadowed (a relay's second leg);
//! - a timestamp jump that arrival time does not show re-anchors the stream at its arrival;
//!   an arrival gap that the timestamps do not show (a stall, a stepped capture clock) does not;
//! - when one channel's clock runs slower than the other's, silence is slipped into it once it
//!   lags by more than a few tens of milliseconds (nothing is dropped: the faster clock leads);
//! - audio reaches the sink once the slowest live channel has moved past it, or a channel has
//!   been silent for the stall allowance; buffered audio is bounded, and a gap in time is
//!   handed out as a silence count, never allocated.
//!
//! Packets reach [`Timeline::place`] in sequence order (the stream's reorder buffer sees to
//! that): a packet whose place was already handed out is shifted to the next free frame and
//! counted, not dropped.

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Timestamp;
use crate::vocab::Side;

/// Where finished audio goes, in order.
pub trait AudioSink {
    /// Room for `samples` more interleaved stereo samples (left caller, right callee), which
    /// the timeline fills in place: the audio is interleaved straight into what the sink
    /// keeps, with no buffer of the timeline's own in between.
    fn audio_room(&mut self, samples: usize) -> &mut [i16];
    /// `frames` frames of silence on both channels.
    fn silence(&mut self, frames: u64);
}

/// Audio handed to the sink in pieces of at most this many seconds.
const PIECE_SECS: i64 = 5;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimelineConfig {
    /// Frames per second of the recording.
    pub rate: u32,
    /// Audio is handed out this far behind the slowest live channel.
    pub margin: Duration,
    /// A channel that has sent nothing for this long stops holding the other back; a network
    /// stall shorter than this loses nothing and moves nothing.
    pub stall: Duration,
    /// At most this much audio is buffered ahead of what was handed out.
    pub max_ahead: Duration,
    /// One channel lagging the other by more than this (a slower sender clock) gets silence.
    pub slip: Duration,
    /// The recording is cut at this many frames (its maximum length).
    pub limit_frames: Option<u64>,
    /// A stream silent for longer than this (the media timeout) has ended: when it sends
    /// again it is anchored afresh, not trusted to carry on by its timestamps.
    pub stream_timeout: Duration,
}

impl TimelineConfig {
    pub fn new(rate: u32) -> Self {
        TimelineConfig {
            rate,
            margin: Duration::from_millis(300),
            stall: Duration::from_secs(5),
            max_ahead: Duration::from_secs(30),
            slip: Duration::from_millis(40),
            limit_frames: None,
            stream_timeout: Duration::from_secs(60),
        }
    }

    fn frames(&self, d: Duration) -> i64 {
        (d.as_nanos() as i128 * self.rate as i128 / 1_000_000_000) as i64
    }
}

/// What happened to one packet's audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Placed,
    /// Nothing to place.
    Empty,
    /// Another stream already feeds this channel: a media relay's second leg, or a forked
    /// copy. The first stream keeps the channel until it goes quiet.
    Shadowed,
    /// Before the recording started (early media).
    Early,
    /// Past the recording's maximum length.
    PastLimit,
}

/// Per-channel figures, for the stream and recording reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelFigures {
    /// Frames of audio placed (decoded or concealed).
    pub placed_frames: u64,
    /// Times a stream was re-anchored on a timestamp jump or a new source.
    pub reanchors: u64,
    /// Silence slipped in to keep up with the other channel's faster clock: times and frames.
    pub slips: u64,
    pub slip_frames: u64,
    /// Audio that arrived after its place had been handed out and was moved later instead:
    /// times and frames.
    pub shifts: u64,
    pub shift_frames: u64,
    /// Packets not placed because another stream fed the channel.
    pub shadowed: u64,
    /// Frames placed inside a muted span (a pause): silence in the file.
    pub muted_frames: u64,
}

/// Frames per second a channel's media clock advances per second of capture time, measured
/// over recent packet pairs (a stall, a silence or a jump is not a sample).
#[derive(Clone, Copy, Debug, Default)]
struct RateEstimate {
    frames: f64,
    nanos: f64,
}

impl RateEstimate {
    /// A pair counts when both steps are short: it says how fast the clocks run, not how long
    /// the sender was silent or the network stalled.
    fn add(&mut self, frames: i64, nanos: i64, rate: u32) {
        if frames <= 0 || nanos <= 0 || frames > rate as i64 || nanos > 1_000_000_000 {
            return;
        }
        // About the last 200 pairs (4 s of 20 ms packets) weigh.
        self.frames = self.frames * 0.995 + frames as f64;
        self.nanos = self.nanos * 0.995 + nanos as f64;
    }

    fn per_sec(&self, rate: u32) -> f64 {
        let nominal = rate as f64;
        if self.nanos < 5e8 {
            return nominal;
        }
        let r = self.frames / self.nanos * 1e9;
        // Within 2 % is clock drift, which extrapolation over a silence cannot see anyway.
        if (r / nominal - 1.0).abs() < 0.02 {
            nominal
        } else {
            r.clamp(nominal / 16.0, nominal * 16.0)
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Source {
    id: u64,
    /// Recording frame = stream position + offset.
    offset: i64,
    /// Stream positions of the last placement: its start and its end.
    last_pos: i64,
    end_pos: i64,
    last_arrival: Timestamp,
}

/// The lag behind the other channel, lowest over a window: jitter only ever adds to it.
#[derive(Clone, Copy, Debug, Default)]
struct Drift {
    base: Option<i64>,
    window: Option<(Timestamp, i64)>,
}

const DRIFT_WINDOW: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Channel {
    /// Samples from the timeline's `emitted` frame onward.
    buf: VecDeque<i16>,
    source: Option<Source>,
    /// End frame of the furthest placement.
    hw: i64,
    last_arrival: Option<Timestamp>,
    /// The sender said it is silent (comfort noise): it does not hold the other channel back.
    quiet: bool,
    rate: RateEstimate,
    drift: Drift,
    figures: ChannelFigures,
    /// A new stream held back while the old one may still be talking.
    candidate: Option<Candidate>,
}

/// A stream waiting to take a channel over: its packets as they came.
struct Candidate {
    id: u64,
    packets: Vec<(i64, Timestamp, Vec<i16>)>,
    frames: usize,
}

/// A new stream takes a channel over once the old one has been silent this long.
const TAKEOVER: Duration = Duration::from_millis(250);
/// Audio a held-back stream may keep: a little over the takeover time.
const MAX_CANDIDATE_FRAMES: usize = 48_000 / 2;

impl Channel {
    /// Where this channel's audio would be at `ts`, from its last packet.
    fn predict(&self, ts: Timestamp, rate: u32) -> Option<i64> {
        let last = self.last_arrival?;
        let per_sec = self.rate.per_sec(rate);
        Some(self.hw + round(signed_nanos(ts, last) as f64 * per_sec / 1e9))
    }

    fn live(&self, now: Timestamp, stall_ns: u64) -> bool {
        self.source.is_some()
            && !self.quiet
            && self
                .last_arrival
                .is_some_and(|t| now.0.saturating_sub(t.0) < stall_ns)
    }
}

pub struct Timeline {
    cfg: TimelineConfig,
    /// What each packet's placement asks of `cfg`, converted once.
    per_packet: PerPacket,
    start: Timestamp,
    /// Frames already handed out.
    emitted: i64,
    channels: [Channel; 2],
    /// Muted spans `[from, to)` in frames (pauses); the last may be open (`to` = `i64::MAX`).
    mutes: Vec<(i64, i64)>,
}

/// `a - b` in nanoseconds, signed, in 64 bits (saturating past 292 years, where only a
/// damaged clock goes): a 128-bit value converted to a float is a library call.
fn signed_nanos(a: Timestamp, b: Timestamp) -> i64 {
    if a >= b {
        (a.0 - b.0).min(i64::MAX as u64) as i64
    } else {
        -((b.0 - a.0).min(i64::MAX as u64) as i64)
    }
}

#[derive(Clone, Copy, Debug)]
struct PerPacket {
    /// `cfg.slip`, `cfg.max_ahead` and `cfg.margin` in frames (a 128-bit division each).
    slip: i64,
    max_ahead: i64,
    margin: i64,
    /// `cfg.stall` and `cfg.stream_timeout` in nanoseconds.
    stall_ns: u64,
    stream_timeout_ns: i64,
}

/// Nearest integer, halves away from zero, as `f64::round`, which on baseline x86-64 (no
/// SSE4.1 `roundsd`) is a library call of about 24 instructions. Only a value one step
/// below a half can differ: it is rounded up here.
fn round(x: f64) -> i64 {
    (x + 0.5f64.copysign(x)) as i64
}

fn index(side: Side) -> usize {
    match side {
        Side::Caller => 0,
        Side::Callee => 1,
    }
}

impl Timeline {
    /// A timeline whose frame 0 is at capture time `start`.
    pub fn new(cfg: TimelineConfig, start: Timestamp) -> Self {
        Self {
            per_packet: PerPacket {
                slip: cfg.frames(cfg.slip).max(1),
                max_ahead: cfg.frames(cfg.max_ahead),
                margin: cfg.frames(cfg.margin),
                stall_ns: u64::try_from(cfg.stall.as_nanos()).unwrap_or(u64::MAX),
                stream_timeout_ns: i64::try_from(cfg.stream_timeout.as_nanos()).unwrap_or(i64::MAX),
            },
            cfg,
            start,
            emitted: 0,
            channels: [Channel::default(), Channel::default()],
            mutes: Vec::new(),
        }
    }

    pub fn sample_rate(&self) -> u32 {
        self.cfg.rate
    }

    /// Frames handed out so far.
    pub fn emitted(&self) -> u64 {
        self.emitted as u64
    }

    pub fn figures(&self, side: Side) -> ChannelFigures {
        self.channels[index(side)].figures
    }

    /// Whether the recording has reached its maximum length.
    pub fn at_limit(&self) -> bool {
        self.cfg
            .limit_frames
            .is_some_and(|l| self.emitted as u64 >= l)
    }

    fn limit(&self) -> i64 {
        self.cfg.limit_frames.map_or(i64::MAX, |l| l as i64)
    }

    /// Frames of capture time `ts` after the start, at the nominal rate.
    fn clock(&self, ts: Timestamp) -> i64 {
        let ns = ts.as_nanos() as i128 - self.start.as_nanos() as i128;
        (ns * self.cfg.rate as i128 / 1_000_000_000) as i64
    }

    /// Where the recording is at capture time `ts`: the furthest channel's prediction, or the
    /// clock since the start when no audio came yet.
    pub fn frame_at(&self, ts: Timestamp) -> i64 {
        let rate = self.cfg.rate;
        self.channels
            .iter()
            .filter_map(|c| c.predict(ts, rate))
            .max()
            .unwrap_or_else(|| self.clock(ts))
    }

    /// The sender of `side` signalled silence (comfort noise, RFC 3389): until it sends audio
    /// again, the other channel does not wait for it.
    pub fn mark_quiet(&mut self, side: Side, arrival: Timestamp) {
        let ch = &mut self.channels[index(side)];
        ch.quiet = true;
        ch.last_arrival = Some(ch.last_arrival.map_or(arrival, |t| t.max(arrival)));
    }

    /// Places one packet's audio, `samples` at the recording's rate, whose first sample is at
    /// `pos` in the stream's own frame count (RTP timestamp scaled to the recording rate).
    /// `source` identifies the stream: a new one re-anchors the channel. Audio pushed out to
    /// make room goes to `sink`. Inside a muted span (a pause) silence is placed instead.
    ///
    /// A new stream that starts while the channel's stream still talks is held back: if the
    /// old one carries on, the new one was a copy (a relay's second leg) and is dropped; if
    /// the old one falls silent, the new one took over (a media move) and what was held is
    /// placed, so a move loses nothing.
    pub fn place(
        &mut self,
        side: Side,
        source: u64,
        pos: i64,
        arrival: Timestamp,
        samples: &[i16],
        sink: &mut dyn AudioSink,
    ) -> Placement {
        if samples.is_empty() {
            return Placement::Empty;
        }
        if arrival < self.start {
            return Placement::Early;
        }
        let takeover = TAKEOVER;
        let ch = &mut self.channels[index(side)];
        if let Some(s) = ch.source {
            if s.id == source {
                if let Some(c) = ch.candidate.take() {
                    // The old stream goes on: what waited was a copy of it.
                    ch.figures.shadowed += c.packets.len() as u64;
                }
            } else if arrival.saturating_since(s.last_arrival) < takeover {
                let c = ch.candidate.get_or_insert_with(|| Candidate {
                    id: source,
                    packets: Vec::new(),
                    frames: 0,
                });
                if c.id != source {
                    ch.figures.shadowed += c.packets.len() as u64;
                    *c = Candidate {
                        id: source,
                        packets: Vec::new(),
                        frames: 0,
                    };
                }
                if c.frames + samples.len() <= MAX_CANDIDATE_FRAMES {
                    c.frames += samples.len();
                    c.packets.push((pos, arrival, samples.to_vec()));
                } else {
                    ch.figures.shadowed += 1;
                }
                return Placement::Shadowed;
            } else if ch.candidate.as_ref().is_some_and(|c| c.id == source) {
                self.promote(side, sink);
            } else if let Some(c) = ch.candidate.take() {
                ch.figures.shadowed += c.packets.len() as u64;
            }
        }
        self.place_now(side, source, pos, arrival, samples, sink)
    }

    /// The held-back stream of `side` takes the channel over: its packets are placed. One
    /// that began no later than the old stream's last packet ran beside it: a copy, dropped.
    fn promote(&mut self, side: Side, sink: &mut dyn AudioSink) {
        let ch = &mut self.channels[index(side)];
        let Some(c) = ch.candidate.take() else {
            return;
        };
        let began_after = c
            .packets
            .first()
            .is_some_and(|p| ch.source.is_none_or(|s| p.1 > s.last_arrival));
        if !began_after {
            ch.figures.shadowed += c.packets.len() as u64;
            return;
        }
        for (pos, arrival, samples) in c.packets {
            self.place_now(side, c.id, pos, arrival, &samples, sink);
        }
    }

    fn place_now(
        &mut self,
        side: Side,
        source: u64,
        pos: i64,
        arrival: Timestamp,
        samples: &[i16],
        sink: &mut dyn AudioSink,
    ) -> Placement {
        let rate = self.cfg.rate;
        let n = samples.len() as i64;
        let slip = self.per_packet.slip;
        let emitted = self.emitted;
        let (me, other) = match side {
            Side::Caller => {
                let [a, b] = &mut self.channels;
                (a, &*b)
            }
            Side::Callee => {
                let [a, b] = &mut self.channels;
                (b, &*a)
            }
        };
        let other_live = other.live(arrival, self.per_packet.stall_ns);
        // A packet arrives once its last sample was taken: where the other channel (or this
        // one's earlier stream) is at its arrival is where it ends.
        let reference = |me: &Channel| -> Option<i64> {
            if other_live {
                other.predict(arrival, rate).map(|end| end - n)
            } else {
                me.predict(arrival, rate).map(|end| end - n)
            }
        };
        let mut frame = match me.source {
            Some(mut s) if s.id == source => {
                let rtp_gap = pos - s.end_pos;
                let dt = arrival.as_nanos() as i64 - s.last_arrival.as_nanos() as i64;
                let per_sec = me.rate.per_sec(rate);
                let arrival_gap = (dt as f64 * per_sec / 1e9) as i64;
                let tolerance = (rate as i64 / 2).max(arrival_gap.abs() / 4);
                // RFC 3550 §5.1: timestamps advance with the sampling clock, so a jump that
                // arrival does not show (or a step back) is a reset, not time passing.
                let ended = dt > self.per_packet.stream_timeout_ns;
                if ended || rtp_gap > arrival_gap.max(0) + tolerance || rtp_gap < -n {
                    let at = reference(&*me).unwrap_or(me.hw).max(me.hw).max(emitted);
                    s.offset = at - pos;
                    me.figures.reanchors += 1;
                    me.drift = Drift::default();
                } else {
                    me.rate.add(pos - s.last_pos, dt, rate);
                    if other_live && let Some(theirs) = other.predict(arrival, rate) {
                        let lag = theirs - (pos + s.offset + n);
                        if let Some(excess) = me.drift.observe(arrival, lag)
                            && excess > slip
                        {
                            s.offset += excess;
                            me.figures.slips += 1;
                            me.figures.slip_frames += excess as u64;
                        }
                    }
                }
                me.source = Some(s);
                pos + s.offset
            }
            previous => {
                let mut at = reference(&*me).unwrap_or_else(|| {
                    let ns = arrival.as_nanos() as i128 - self.start.as_nanos() as i128;
                    (ns * rate as i128 / 1_000_000_000) as i64 - n
                });
                // A stream that takes over from one that just stopped (a media move, a new
                // SSRC) carries on where it left off: no gap, no overlap, no phase jump.
                if previous.is_some() && (at - me.hw).abs() <= 3 * n {
                    at = me.hw;
                }
                let at = at.max(me.hw).max(emitted);
                if previous.is_some() {
                    me.figures.reanchors += 1;
                }
                me.source = Some(Source {
                    id: source,
                    offset: at - pos,
                    last_pos: pos,
                    end_pos: pos,
                    last_arrival: arrival,
                });
                me.drift = Drift::default();
                at
            }
        };
        let mut samples = samples;
        if frame < 0 {
            // Audio from before the recording started (the first packet after the answer
            // began before it): only what is inside the recording is placed.
            let skip = (-frame).min(n) as usize;
            samples = &samples[skip..];
            frame = 0;
            if let Some(s) = me.source.as_mut() {
                s.offset += skip as i64;
            }
            if samples.is_empty() {
                return Placement::Early;
            }
        }
        let n = samples.len() as i64;
        if frame < emitted {
            // Its place was handed out (a stall longer than the allowance): keep the audio,
            // later, and say so.
            let shift = emitted - frame;
            if let Some(s) = me.source.as_mut() {
                s.offset += shift;
            }
            me.figures.shifts += 1;
            me.figures.shift_frames += shift as u64;
            frame = emitted;
        }
        let limit = self.limit();
        if frame >= limit {
            return Placement::PastLimit;
        }
        let max_ahead = self.per_packet.max_ahead.max(n);
        if frame + n - emitted > max_ahead {
            self.advance((frame + n - max_ahead).min(limit), sink);
        }
        let emitted = self.emitted;
        let ch = &mut self.channels[index(side)];
        let n = n.min(limit - frame);
        let samples = &samples[..n as usize];
        let at = (frame - emitted) as usize;
        let end = at + n as usize;
        if ch.buf.len() < at {
            ch.buf.resize(at, 0);
        }
        let overlap = ch.buf.len().min(end) - at;
        for (d, s) in ch.buf.range_mut(at..at + overlap).zip(samples) {
            *d = *s;
        }
        ch.buf.extend(&samples[overlap..n as usize]);
        for &(from, to) in &self.mutes {
            let (a, b) = (from.max(frame), to.min(frame + n));
            if a < b {
                ch.figures.muted_frames += (b - a) as u64;
                for s in ch
                    .buf
                    .range_mut((a - emitted) as usize..(b - emitted) as usize)
                {
                    *s = 0;
                }
            }
        }
        ch.hw = ch.hw.max(frame + n);
        ch.figures.placed_frames += n as u64;
        ch.last_arrival = Some(ch.last_arrival.map_or(arrival, |t| t.max(arrival)));
        ch.quiet = false;
        if let Some(s) = ch.source.as_mut() {
            s.last_pos = pos;
            s.end_pos = pos + n;
            s.last_arrival = s.last_arrival.max(arrival);
        }
        Placement::Placed
    }

    /// Silence from `frame` on (a pause), also over audio already placed there.
    pub fn mute_from(&mut self, frame: i64) {
        let frame = frame.max(self.emitted);
        if self.mutes.last().is_some_and(|m| m.1 == i64::MAX) {
            return;
        }
        // Spans wholly written out no longer matter.
        let emitted = self.emitted;
        self.mutes.retain(|m| m.1 > emitted);
        self.mutes.push((frame, i64::MAX));
        for ch in &mut self.channels {
            let at = (frame - emitted) as usize;
            for s in ch.buf.range_mut(at.min(ch.buf.len())..) {
                *s = 0;
            }
        }
    }

    /// The open muted span ends at `frame` (a resume).
    pub fn unmute_at(&mut self, frame: i64) {
        if let Some(m) = self.mutes.last_mut()
            && m.1 == i64::MAX
        {
            m.1 = frame.max(m.0);
        }
    }

    /// Held-back streams whose rival fell silent take their channel over.
    fn promote_due(&mut self, now: Timestamp, sink: &mut dyn AudioSink) {
        for side in [Side::Caller, Side::Callee] {
            let ch = &self.channels[index(side)];
            if ch.candidate.is_some()
                && ch
                    .source
                    .is_none_or(|s| now.saturating_since(s.last_arrival) >= TAKEOVER)
            {
                self.promote(side, sink);
            }
        }
    }

    /// Hands out the audio that no live channel can still change, once at least `chunk`
    /// frames are ready. `last_activity` is the call's last sign of life: silence is not
    /// written past it.
    pub fn drain(
        &mut self,
        now: Timestamp,
        last_activity: Timestamp,
        chunk: u64,
        sink: &mut dyn AudioSink,
    ) {
        self.promote_due(now, sink);
        let target = self.drain_point(now, last_activity).min(self.limit());
        if target - self.emitted >= chunk as i64 {
            self.advance(target, sink);
        }
    }

    fn drain_point(&self, now: Timestamp, last_activity: Timestamp) -> i64 {
        let margin = self.per_packet.margin;
        let holding = self
            .channels
            .iter()
            .filter(|c| c.live(now, self.per_packet.stall_ns))
            .map(|c| c.hw)
            .min();
        let point = match holding {
            Some(hw) => hw - margin,
            None => self.frame_at(now.min(last_activity)) - margin,
        };
        let furthest = self.channels.iter().map(|c| c.hw).max().unwrap_or(0);
        point
            .max(furthest - self.per_packet.max_ahead)
            .max(self.emitted)
    }

    /// Hands out everything: the audio placed, and silence up to where the recording is at
    /// `end`; with `cut`, nothing past `end` (a stop on request or at a time limit). Returns
    /// the frames handed out in all.
    pub fn finish(&mut self, end: Timestamp, cut: bool, sink: &mut dyn AudioSink) -> u64 {
        self.promote_due(Timestamp(u64::MAX), sink);
        let furthest = self.channels.iter().map(|c| c.hw).max().unwrap_or(0);
        let at_end = self.frame_at(end);
        let target = if cut { at_end } else { furthest.max(at_end) }.min(self.limit());
        self.advance(target, sink);
        self.emitted as u64
    }

    /// Hands out frames up to `target`: buffered audio interleaved, then silence.
    fn advance(&mut self, target: i64, sink: &mut dyn AudioSink) {
        let piece = self.cfg.rate as i64 * PIECE_SECS;
        while self.emitted < target {
            let have = self.channels.iter().map(|c| c.buf.len()).max().unwrap_or(0) as i64;
            if have == 0 {
                sink.silence((target - self.emitted) as u64);
                self.emitted = target;
                break;
            }
            let n = (target - self.emitted).min(have).min(piece) as usize;
            let [left, right] = &mut self.channels;
            for ch in [&mut *left, &mut *right] {
                if ch.buf.len() < n {
                    ch.buf.resize(n, 0);
                }
            }
            // Interleaved into the sink's own room from the ring buffers' contiguous pieces
            // as they lie (at most three stretches where both channels are contiguous), a
            // loop the compiler vectorises. Rotating a wrapped buffer first
            // (`make_contiguous`) moved everything it held, look-ahead included, at every
            // chunk.
            let out = sink.audio_room(n * 2);
            let (l, r) = (left.buf.as_slices(), right.buf.as_slices());
            let mut done = 0;
            while done < n {
                let (a, b) = (from(l, done), from(r, done));
                let k = a.len().min(b.len()).min(n - done);
                for ((o, &x), &y) in out[done * 2..(done + k) * 2]
                    .chunks_exact_mut(2)
                    .zip(&a[..k])
                    .zip(&b[..k])
                {
                    o[0] = x;
                    o[1] = y;
                }
                done += k;
            }
            left.buf.drain(..n);
            right.buf.drain(..n);
            self.emitted += n as i64;
        }
    }
}

/// A ring buffer's samples from `at` on, up to the end of the piece `at` falls in.
fn from<'a>((head, tail): (&'a [i16], &'a [i16]), at: usize) -> &'a [i16] {
    match head.get(at..) {
        Some(rest) if !rest.is_empty() => rest,
        _ => &tail[at - head.len()..],
    }
}

#[cfg(test)]
impl Timeline {
    fn finish_all(&mut self, end: Timestamp, sink: &mut dyn AudioSink) -> u64 {
        self.finish(end, false, sink)
    }
}

impl Drift {
    /// Takes one lag sample; at the end of each window returns how far the window's lowest lag
    /// exceeds the first window's (positive: this channel fell behind).
    fn observe(&mut self, at: Timestamp, lag: i64) -> Option<i64> {
        let (start, low) = match self.window {
            Some((start, low)) => (start, low.min(lag)),
            None => (at, lag),
        };
        if at.saturating_since(start) < DRIFT_WINDOW {
            self.window = Some((start, low));
            return None;
        }
        self.window = None;
        match self.base {
            None => {
                self.base = Some(low);
                None
            }
            Some(base) => Some(low - base),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_is_f64_round() {
        for x in [
            0.0,
            0.4,
            0.5,
            0.6,
            1.5,
            2.5,
            -0.4,
            -0.5,
            -0.6,
            -1.5,
            -2.5,
            1e12 + 0.5,
            -7.49,
        ] {
            assert_eq!(round(x), x.round() as i64, "{x}");
        }
        for i in -10_000i64..10_000 {
            let x = i as f64 * 0.037;
            assert_eq!(round(x), x.round() as i64, "{x}");
        }
    }

    /// Collects what the timeline hands out.
    #[derive(Default)]
    struct Collect {
        frames: Vec<[i16; 2]>,
        silence_calls: usize,
    }

    impl AudioSink for Collect {
        fn audio_room(&mut self, samples: usize) -> &mut [i16] {
            let start = self.frames.len();
            self.frames.resize(start + samples / 2, [0, 0]);
            self.frames[start..].as_flattened_mut()
        }
        fn silence(&mut self, frames: u64) {
            self.silence_calls += 1;
            assert!(frames < 1 << 32, "a test never asks for this much");
            self.frames.extend((0..frames).map(|_| [0, 0]));
        }
    }

    impl Collect {
        fn side(&self, side: Side) -> Vec<i16> {
            self.frames.iter().map(|f| f[index(side)]).collect()
        }
    }

    /// Panics naming the first frame where `got` and `want` differ, not with both vectors.
    fn same(got: &[i16], want: &[i16], what: &str) {
        if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
            panic!(
                "{what}: frame {i} is {} not {} ({} vs {} frames)",
                got[i],
                want[i],
                got.len(),
                want.len()
            );
        }
        assert_eq!(got.len(), want.len(), "{what}: lengths");
    }

    const T0: u64 = 1_700_000_000_000_000_000;
    const MS: u64 = 1_000_000;

    fn at(ms: u64) -> Timestamp {
        Timestamp(T0 + ms * MS)
    }

    fn tl() -> Timeline {
        Timeline::new(TimelineConfig::new(8000), at(0))
    }

    /// A packet of 160 samples whose value is its number (never 0), so each can be traced.
    fn pkt(i: i64) -> Vec<i16> {
        vec![(i % 30000 + 1) as i16; 160]
    }

    #[test]
    fn packets_land_by_timestamp_and_gaps_are_silence() {
        let mut t = tl();
        let mut out = Collect::default();
        for i in [0i64, 1, 3] {
            let p = t.place(
                Side::Caller,
                1,
                160 * i,
                at(20 * i as u64),
                &pkt(i),
                &mut out,
            );
            assert_eq!(p, Placement::Placed);
        }
        // A packet arrives once its last sample was taken: the call is at frame 640 at 60 ms.
        t.finish_all(at(60), &mut out);
        let left = out.side(Side::Caller);
        assert_eq!(left.len(), 640);
        assert!(left[..320].iter().all(|&s| s != 0));
        assert!(
            left[320..480].iter().all(|&s| s == 0),
            "lost packet is silence"
        );
        assert!(left[480..].iter().all(|&s| s == 4));
        assert!(out.side(Side::Callee).iter().all(|&s| s == 0));
    }

    /// A sender clock 0.5 % faster than the capture clock: every sample is kept, in order,
    /// and nothing is shifted or lost however long the call.
    #[test]
    fn clock_drift_keeps_every_sample() {
        for ppm in [-5000i64, -1000, 1000, 5000] {
            let mut t = tl();
            let mut out = Collect::default();
            let packets = 60 * 50 * 10; // ten minutes
            for i in 0..packets {
                // Arrival runs at (1 + ppm) of the media clock.
                let arrival_us = (i * 20_000) as i128 * (1_000_000 + ppm as i128) / 1_000_000;
                let ts = Timestamp(T0 + arrival_us as u64 * 1000);
                for side in [Side::Caller, Side::Callee] {
                    t.place(side, 1, 160 * i, ts, &pkt(i), &mut out);
                }
                if i % 5 == 0 {
                    t.drain(ts, ts, 4000, &mut out);
                }
            }
            t.finish_all(Timestamp(T0 + 600 * 1_000_000_000), &mut out);
            for side in [Side::Caller, Side::Callee] {
                let got = out.side(side);
                let want: Vec<i16> = (0..packets).flat_map(pkt).collect();
                same(
                    &got[..want.len().min(got.len())],
                    &want,
                    &format!("{ppm} ppm {side:?}"),
                );
                let f = t.figures(side);
                assert_eq!(
                    (f.shifts, f.slips, f.reanchors),
                    (0, 0, 0),
                    "{ppm} ppm: {f:?}"
                );
            }
        }
    }

    /// Every sample distinct and the two channels different, handed out in odd chunks while
    /// the ring buffers wrap at different places: each frame is the two channels' samples of
    /// that frame, in order.
    #[test]
    fn chunks_from_wrapped_buffers_interleave_each_frame_in_order() {
        let value = |k: i64| (k % 30_000 + 1) as i16;
        let mut t = tl();
        let mut out = Collect::default();
        let packets = 50 * 60;
        // The callee starts 7 packets (1,120 frames) late and sends 80-frame packets, so its
        // buffer holds a different stretch and wraps elsewhere.
        for i in 0..packets {
            let ts = at(20 * i as u64);
            let left: Vec<i16> = (0..160).map(|j| value(160 * i + j)).collect();
            t.place(Side::Caller, 1, 160 * i, ts, &left, &mut out);
            if i >= 7 {
                for half in 0..2 {
                    let first = 160 * i + 80 * half;
                    let right: Vec<i16> = (0..80).map(|j| -value(first + j)).collect();
                    let sent = at(20 * i as u64 + 10 * half as u64);
                    t.place(Side::Callee, 2, first, sent, &right, &mut out);
                }
            }
            if i % 3 == 0 {
                t.drain(ts, ts, 700, &mut out);
            }
        }
        t.finish_all(at(20 * packets as u64), &mut out);
        let n = (160 * packets) as usize;
        assert!(out.frames.len() >= n, "{} frames", out.frames.len());
        let want_left: Vec<i16> = (0..n as i64).map(value).collect();
        same(&out.side(Side::Caller)[..n], &want_left, "caller");
        // Where the callee's first packet lands is the timeline's anchoring (on arrival);
        // from there on every sample follows in order.
        let right = out.side(Side::Callee);
        let start = right
            .iter()
            .position(|&s| s != 0)
            .expect("the callee is heard");
        assert!(
            (1120..=1200).contains(&start),
            "the callee starts at {start}"
        );
        let want_right: Vec<i16> = (1120..(n - start + 1120) as i64)
            .map(|k| -value(k))
            .collect();
        same(&right[start..n], &want_right, "callee");
    }

    /// Timestamps compressed 4x (a fast replay): the recording is as long as the media.
    #[test]
    fn fast_replay_keeps_the_media_length() {
        let mut t = tl();
        let mut out = Collect::default();
        for i in 0..500i64 {
            let ts = at(5 * i as u64);
            t.place(Side::Caller, 1, 160 * i, ts, &pkt(i), &mut out);
            t.place(Side::Callee, 2, 160 * i, ts, &pkt(i), &mut out);
            t.drain(ts, ts, 4000, &mut out);
        }
        let frames = t.finish_all(at(2495), &mut out);
        assert_eq!(frames, 500 * 160);
        same(
            &out.side(Side::Callee),
            &(0..500).flat_map(pkt).collect::<Vec<_>>(),
            "callee",
        );
    }

    /// One direction stalls for 2 s, then its packets arrive in a burst: all are placed where
    /// their timestamps say, the other channel's audio waits for them.
    #[test]
    fn a_stall_then_a_burst_loses_nothing() {
        let mut t = tl();
        let mut out = Collect::default();
        for i in 0..500i64 {
            let ts = at(20 * i as u64);
            t.place(Side::Caller, 1, 160 * i, ts, &pkt(i), &mut out);
            // The callee's packets 100..200 are held by the network and arrive at 4 s, in
            // order before packet 200.
            if i == 200 {
                for j in 100..200 {
                    t.place(Side::Callee, 2, 160 * j, ts, &pkt(j), &mut out);
                }
            }
            if !(100..200).contains(&i) {
                t.place(Side::Callee, 2, 160 * i, ts, &pkt(i), &mut out);
            }
            t.drain(ts, ts, 800, &mut out);
        }
        t.finish_all(at(9_980), &mut out);
        let want: Vec<i16> = (0..500).flat_map(pkt).collect();
        same(&out.side(Side::Callee), &want, "callee");
        same(&out.side(Side::Caller), &want, "caller");
        assert_eq!(t.figures(Side::Callee).shifts, 0);
    }

    #[test]
    fn a_timestamp_jump_reanchors_on_arrival() {
        let mut t = tl();
        let mut out = Collect::default();
        t.place(Side::Caller, 1, 0, at(0), &pkt(1), &mut out);
        // The sender's clock jumps by an hour; arrival says 20 ms later.
        t.place(Side::Caller, 1, 28_800_000, at(20), &pkt(2), &mut out);
        t.finish_all(at(20), &mut out);
        let left = out.side(Side::Caller);
        assert_eq!(left.len(), 320);
        assert!(left[160..].iter().all(|&s| s == 3));
        assert_eq!(t.figures(Side::Caller).reanchors, 1);
    }

    /// The capture clock steps forward 30 s mid-call (NTP): the timestamps are continuous,
    /// so the audio is too, and no silence appears. A step past the stream timeout (the
    /// media timeout, after which the dialog layer ends the call anyway) ends the stream: it
    /// is anchored afresh where arrival says, the gap is silence, handed out as a count.
    #[test]
    fn a_capture_clock_step_is_not_a_gap() {
        for (step_ms, gap) in [(30_000u64, false), (3_600_000, true)] {
            let mut t = tl();
            let mut out = Counting::default();
            for i in 0..100i64 {
                let ms = 20 * i as u64 + if i >= 50 { step_ms } else { 0 };
                t.place(Side::Caller, 1, 160 * i, at(ms), &pkt(i), &mut out);
                t.place(Side::Callee, 2, 160 * i, at(ms), &pkt(i), &mut out);
                t.drain(at(ms), at(ms), 800, &mut out);
            }
            let frames = t.finish_all(at(step_ms + 1980), &mut out);
            if gap {
                assert!(frames > 8000 * 3600, "{frames}");
                assert_eq!(t.figures(Side::Caller).reanchors, 1);
            } else {
                assert_eq!(frames, 100 * 160, "a {step_ms} ms step");
                assert_eq!(t.figures(Side::Caller).reanchors, 0);
            }
        }
    }

    /// Silence for days is handed out as a count, never allocated, and a limit cuts it.
    #[test]
    fn a_gap_of_days_is_counted_not_allocated() {
        let mut cfg = TimelineConfig::new(8000);
        cfg.limit_frames = Some(8000 * 3600 * 4);
        let mut t = Timeline::new(cfg, at(0));
        let mut out = Counting::default();
        t.place(Side::Caller, 1, 0, at(0), &pkt(1), &mut out);
        let days = at(3 * 86_400_000);
        assert_eq!(
            t.place(Side::Caller, 2, 0, days, &pkt(2), &mut out),
            Placement::PastLimit
        );
        t.finish_all(days, &mut out);
        assert_eq!(out.frames, 8000 * 3600 * 4);
        assert!(t.at_limit());
    }

    #[derive(Default)]
    struct Counting {
        frames: u64,
        room: Vec<i16>,
    }

    impl AudioSink for Counting {
        fn audio_room(&mut self, samples: usize) -> &mut [i16] {
            self.frames += samples as u64 / 2;
            self.room.resize(samples, 0);
            &mut self.room
        }
        fn silence(&mut self, frames: u64) {
            self.frames += frames;
        }
    }

    /// The caller's clock runs 1000 ppm slower than the callee's: the caller gets silence
    /// slipped in so the two stay within the slip threshold over ten minutes, and nothing is
    /// dropped from either.
    #[test]
    fn two_sender_clocks_stay_aligned() {
        let mut t = tl();
        let mut out = Collect::default();
        let packets = 50 * 600i64;
        let mut caller_i = 0i64;
        for i in 0..packets {
            let ts = at(20 * i as u64);
            t.place(Side::Callee, 2, 160 * i, ts, &pkt(i), &mut out);
            // The caller's packets carry 0.1 % less media per second of arrival.
            while (caller_i * 20 * 1001) / 1000 <= 20 * i {
                let ts = at(((caller_i * 20 * 1001) / 1000) as u64);
                t.place(
                    Side::Caller,
                    1,
                    160 * caller_i,
                    ts,
                    &pkt(caller_i),
                    &mut out,
                );
                caller_i += 1;
            }
            t.drain(ts, ts, 4000, &mut out);
        }
        t.finish_all(at(20 * packets as u64), &mut out);
        let f = t.figures(Side::Caller);
        assert!(f.slips > 0, "{f:?}");
        assert_eq!(f.shifts, 0);
        assert_eq!(f.placed_frames, 160 * caller_i as u64);
        // Where the last caller packet sits against the callee's audio of the same moment.
        let left = out.side(Side::Caller);
        let last = (caller_i - 1) % 30000 + 1;
        let end = left
            .iter()
            .rposition(|&s| s == last as i16)
            .expect("last packet");
        let want_end = 160 * (caller_i as usize - 1) * 1001 / 1000 + 160;
        assert!(
            (end as i64 - want_end as i64).abs() < 8 * 60,
            "caller ends at {end}, wall clock says {want_end}"
        );
        assert_eq!(t.figures(Side::Callee).slips, 0);
    }

    #[test]
    fn a_second_stream_does_not_fight_the_first_for_a_channel() {
        let mut t = tl();
        let mut out = Collect::default();
        for i in 0..10i64 {
            let ts = at(20 * i as u64);
            assert_eq!(
                t.place(Side::Caller, 1, 160 * i, ts, &pkt(i), &mut out),
                Placement::Placed
            );
            assert_eq!(
                t.place(Side::Caller, 2, 90_000 + 160 * i, ts, &[999; 160], &mut out),
                Placement::Shadowed
            );
        }
        // Once the first goes quiet, the second takes over (a media move).
        assert_eq!(
            t.place(Side::Caller, 2, 95_000, at(700), &[999; 160], &mut out),
            Placement::Placed
        );
        t.finish_all(at(720), &mut out);
        let left = out.side(Side::Caller);
        assert!(
            left[..1600].iter().all(|&s| s != 999),
            "only the first stream's audio"
        );
        assert!(
            left[5600..5760].iter().all(|&s| s == 999),
            "the second at its arrival"
        );
    }

    #[test]
    fn muted_audio_keeps_the_timeline_running() {
        let mut t = tl();
        let mut out = Collect::default();
        for i in 0..10i64 {
            if i == 3 {
                t.mute_from(480);
            }
            if i == 6 {
                t.unmute_at(960);
            }
            t.place(
                Side::Caller,
                1,
                160 * i,
                at(20 * i as u64),
                &pkt(i),
                &mut out,
            );
        }
        t.finish_all(at(180), &mut out);
        let left = out.side(Side::Caller);
        assert_eq!(left.len(), 1600);
        assert!(left[480..960].iter().all(|&s| s == 0));
        assert!(left[960..].iter().all(|&s| s != 0));
    }

    /// A media move: the new stream starts a few ms before the old one's last packet; once
    /// the old one is silent the new one takes over, and nothing it sent is lost.
    #[test]
    fn a_media_move_loses_nothing_of_the_new_stream() {
        let mut t = tl();
        let mut out = Collect::default();
        for i in 0..50i64 {
            t.place(
                Side::Caller,
                1,
                160 * i,
                at(20 * i as u64),
                &pkt(i),
                &mut out,
            );
        }
        // The new port's stream, its own timestamps, from 990 ms on.
        for k in 0..50i64 {
            let ts = at(990 + 20 * k as u64);
            let p = t.place(Side::Caller, 2, 7_000 + 160 * k, ts, &[999; 160], &mut out);
            if k == 0 {
                assert_eq!(p, Placement::Shadowed, "held while the old one may go on");
            }
            t.drain(ts, ts, 800, &mut out);
        }
        t.finish_all(at(990 + 20 * 49), &mut out);
        let left = out.side(Side::Caller);
        assert_eq!(left.iter().filter(|&&s| s == 999).count(), 50 * 160);
        assert_eq!(t.figures(Side::Caller).shadowed, 0);
    }

    /// A relay's copy of the same audio beside the original is dropped, and said so.
    #[test]
    fn a_copy_beside_the_original_is_shadowed() {
        let mut t = tl();
        let mut out = Collect::default();
        for i in 0..50i64 {
            let ts = at(20 * i as u64);
            t.place(Side::Caller, 1, 160 * i, ts, &pkt(i), &mut out);
            t.place(Side::Caller, 2, 90_000 + 160 * i, ts, &[999; 160], &mut out);
        }
        t.finish_all(at(980), &mut out);
        assert!(out.side(Side::Caller).iter().all(|&s| s != 999));
        assert!(t.figures(Side::Caller).shadowed >= 49);
    }

    #[test]
    fn early_media_is_not_placed() {
        let mut t = Timeline::new(TimelineConfig::new(8000), at(1000));
        let mut out = Collect::default();
        assert_eq!(
            t.place(Side::Caller, 1, 0, at(980), &pkt(1), &mut out),
            Placement::Early
        );
    }

    #[test]
    fn nothing_heard_at_all_is_silence_up_to_the_end() {
        let mut t = tl();
        let mut out = Counting::default();
        assert_eq!(t.finish_all(at(2000), &mut out), 16_000);
    }
}
