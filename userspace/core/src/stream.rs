//! One RTP stream's work: order, decode, conceal, resample and place its audio.
//!
//! A stream is one SSRC on one 5-tuple. Its packets go through a small reorder buffer so that
//! the decoder sees them in sequence order (ADPCM and CELP decoders keep state), a gap is known
//! as loss and concealed by the codec where it can, and duplicates are dropped. Telephone
//! events and comfort noise travel in the same sequence space, so they pass through the buffer
//! too. Nothing here knows SIP: what a payload type means comes from the caller
//! ([`StreamCtx::payloads`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use crate::codec::{self, CodecSpec, Decoder, Undecodable};
use crate::dtmf::DtmfDetector;
use crate::event::Event;
use crate::media::Resample;
use crate::media::srtp::{CryptoAttr, SrtpContext, SrtpError};
use crate::recording::Recording;
use crate::rtp::{self, StreamStats, TelephoneEvent};
use crate::time::Timestamp;
use crate::vocab::{DtmfSource, Side, StreamHandle};

/// Packets held at most while waiting for a missing one (160 ms of 20 ms packets).
const DEPTH: usize = 8;
/// Sequence numbers the buffer can hold ahead of the next one to release.
const SLOTS: usize = 64;
/// Loss longer than this is silence, not concealment: concealment of long gaps only rings.
const MAX_CONCEAL: Duration = Duration::from_millis(120);

/// `v * num / den`, without the 128-bit division when the rates are equal (G.711 and most
/// codecs: the RTP clock is the audio rate).
#[inline]
fn scale(v: i128, num: u32, den: u32) -> i128 {
    if num == den {
        v
    } else {
        v * i128::from(num) / i128::from(den)
    }
}

/// What the engine hands a stream with each packet.
pub struct StreamCtx<'a> {
    /// What each payload type means for this stream's sender, per its call's SDP.
    pub payloads: &'a dyn Fn(u8) -> Option<CodecSpec>,
    /// Bumped by the caller when the call's SDP changed what payload types mean.
    pub media_version: u32,
    pub telephone_event: Option<u8>,
    /// The call's running recording, if any.
    pub recording: Option<&'a mut Recording>,
    /// Listen for DTMF in the decoded audio.
    pub inband: bool,
    /// Decode even without a recording: the call may yet be recorded (early media before the
    /// answer), and a stateful decoder started mid-stream may never fall in step.
    pub prime: bool,
    /// The rate a recording of this call would have, for a decoder made before it starts.
    pub rate_hint: u32,
    pub events: &'a mut VecDeque<Event>,
    /// Digits heard (RFC 4733 or in band), for the caller to report and offer to the policy.
    pub digits: &'a mut Vec<Digit>,
    /// How long a missing packet is waited for before it counts as lost.
    pub reorder_window: Duration,
    /// Another worker owns the call ([`crate::vocab::Shard`]): only what every worker must
    /// know of the stream is kept — its packets' order and its RFC 4733 digits, which are
    /// policy input — and nothing is decoded, counted for its report or recorded.
    pub shadow: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digit {
    pub ts: Timestamp,
    pub digit: char,
    pub duration_ms: u32,
    pub source: DtmfSource,
}

/// Why a stream's audio is not in the recording, if it is not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamStatus {
    /// Audio was decoded.
    Decoded,
    /// Some audio was decoded and some could not be (a payload type without a decoder).
    Partial(String),
    /// Its payload could not be decoded: codec, payload type and why.
    Undecodable(String),
    /// Its payload is encrypted and could not be decrypted, and why.
    Encrypted(String),
    /// No audio payload: only telephone events or comfort noise, or nothing while recorded.
    NoAudio,
    /// It carried audio that nothing recorded (the rules did not record the call, another leg
    /// of its conversation was recorded, or the recording had ended), so it was not decoded.
    NotRecorded,
}

impl StreamStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamStatus::Decoded => "decoded",
            StreamStatus::Partial(_) => "partial",
            StreamStatus::Undecodable(_) => "undecodable",
            StreamStatus::Encrypted(_) => "encrypted",
            StreamStatus::NoAudio => "no-audio",
            StreamStatus::NotRecorded => "not-recorded",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            StreamStatus::Partial(r)
            | StreamStatus::Undecodable(r)
            | StreamStatus::Encrypted(r) => Some(r),
            _ => None,
        }
    }
}

/// Counts of what happened to a stream's packets and audio, beyond its RTP statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Packets that arrived after their place had been given up as lost.
    pub late: u64,
    pub duplicates: u64,
    /// Audio payloads decoded, and the frames of audio they gave (at the codec's rate).
    pub decoded_packets: u64,
    pub decoded_samples: u64,
    /// Samples made up by the codec's concealment (or rebuilt by its FEC) for lost packets.
    pub concealed_samples: u64,
    pub recovered_samples: u64,
    /// Audio payloads that could not be decoded (no decoder, or corrupt).
    pub undecodable_packets: u64,
    /// Packets that failed SRTP authentication or decryption.
    pub decrypt_failures: u64,
    pub telephone_events: u64,
    pub comfort_noise: u64,
    /// Audio payloads not decoded because nothing was recording the call.
    pub unrecorded_packets: u64,
}

/// A packet the reorder buffer holds.
struct Held {
    ext_seq: u64,
    arrival: Timestamp,
    ts: u32,
    pt: u8,
    data: Vec<u8>,
}

/// A packet coming out of the reorder buffer, in sequence order.
struct Released<'p> {
    arrival: Timestamp,
    ts: u32,
    pt: u8,
    payload: &'p [u8],
    /// Packets missing just before this one.
    lost_before: u64,
}

enum Arrival {
    /// Process it now; this many packets before it are lost.
    Now {
        lost_before: u64,
    },
    Held,
    Late,
    Duplicate,
}

#[derive(Default)]
struct Reorder {
    slots: Vec<Option<Held>>,
    held: usize,
    /// Next extended sequence number to release.
    next: Option<u64>,
    /// Highest extended sequence number seen, for unwrapping.
    max_seen: u64,
    /// Bit i set: `next - 1 - i` was released (duplicates are told from late packets).
    released: u64,
    spare: Vec<Vec<u8>>,
}

impl Reorder {
    /// The extended sequence number nearest the highest one seen (RFC 3550 §A.1).
    fn extend(&mut self, seq: u16) -> u64 {
        if self.next.is_none() {
            self.max_seen = (1 << 32) + seq as u64;
            return self.max_seen;
        }
        let diff = seq.wrapping_sub(self.max_seen as u16) as i16 as i64;
        let ext = (self.max_seen as i64 + diff) as u64;
        self.max_seen = self.max_seen.max(ext);
        ext
    }

    fn mark_released(&mut self, ext: u64) {
        let next = self.next.unwrap_or(ext);
        let step = (ext + 1).saturating_sub(next);
        self.released = if step >= 64 { 0 } else { self.released << step };
        self.released |= 1;
        self.next = Some(ext + 1);
    }

    fn arrive(&mut self, ext: u64, arrival: Timestamp, ts: u32, pt: u8, payload: &[u8]) -> Arrival {
        let Some(next) = self.next else {
            self.mark_released(ext);
            return Arrival::Now { lost_before: 0 };
        };
        if ext < next {
            let back = next - 1 - ext;
            return if back < 64 && self.released & (1 << back) != 0 {
                Arrival::Duplicate
            } else {
                Arrival::Late
            };
        }
        if ext == next {
            self.mark_released(ext);
            return Arrival::Now { lost_before: 0 };
        }
        if ext - next >= SLOTS as u64 {
            // Far ahead: a burst of loss or a sequence reset. The caller releases what is
            // held first, then takes this one.
            return Arrival::Now {
                lost_before: ext - next,
            };
        }
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, || None);
        }
        let i = (ext % SLOTS as u64) as usize;
        if self.slots[i].as_ref().is_some_and(|h| h.ext_seq == ext) {
            return Arrival::Duplicate;
        }
        let mut data = self.spare.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(payload);
        self.slots[i] = Some(Held {
            ext_seq: ext,
            arrival,
            ts,
            pt,
            data,
        });
        self.held += 1;
        Arrival::Held
    }

    /// The next packet to release: the one due, or, when `force` or the buffer waited too
    /// long or holds too many, the lowest one held (what is missing before it is lost).
    fn pop(&mut self, now: Timestamp, window: Duration, force: bool) -> Option<(Held, u64)> {
        if self.held == 0 {
            return None;
        }
        let next = self.next?;
        let i = (next % SLOTS as u64) as usize;
        if let Some(h) = self.slots[i].take_if(|h| h.ext_seq == next) {
            self.held -= 1;
            self.mark_released(next);
            return Some((h, 0));
        }
        let lowest = self
            .slots
            .iter()
            .flatten()
            .min_by_key(|h| h.ext_seq)
            .map(|h| (h.ext_seq, h.arrival))?;
        let waited = now.saturating_since(lowest.1) >= window;
        if !(force || waited || self.held > DEPTH) {
            return None;
        }
        let i = (lowest.0 % SLOTS as u64) as usize;
        let h = self.slots[i].take()?;
        self.held -= 1;
        let lost = h.ext_seq - next;
        self.mark_released(h.ext_seq);
        Some((h, lost))
    }

    fn recycle(&mut self, data: Vec<u8>) {
        if self.spare.len() < DEPTH {
            self.spare.push(data);
        }
    }
}

/// SRTP keys of a stream's sender: one context per `a=crypto` line it offered or answered,
/// newest first. The one that authenticates is used until another does (a re-key).
struct Srtp {
    lines: Vec<String>,
    contexts: Vec<SrtpContext>,
    current: usize,
    /// The plain packet of the last decryption.
    plain: Vec<u8>,
    authenticated: u64,
}

impl Srtp {
    /// Decrypts into `self.plain`: the current context, then the others.
    fn unprotect(&mut self, packet: &[u8]) -> Result<(), SrtpError> {
        let mut err = SrtpError::AuthFailed;
        let n = self.contexts.len();
        for k in 0..n {
            let i = (self.current + k) % n;
            match self.contexts[i].unprotect_rtp(packet, &mut self.plain) {
                Ok(()) => {
                    if i != self.current {
                        // Carry the rollover counter over to the key now in use.
                        let ssrc =
                            u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
                        if let Some((roc, seq)) = self.contexts[self.current].rollover_counter(ssrc)
                            && self.contexts[i].rollover_counter(ssrc).is_none()
                        {
                            self.contexts[i].set_rollover_counter(ssrc, roc, seq);
                        }
                        self.current = i;
                    }
                    self.authenticated += 1;
                    return Ok(());
                }
                Err(e) => err = e,
            }
        }
        Err(err)
    }
}

struct ActiveDecoder {
    pt: u8,
    decoder: Box<dyn Decoder>,
    clock_rate: u32,
    rate: u32,
    /// Extended RTP timestamp at stream position 0, and where the last audio ended.
    base_ts: i64,
    end_ts: Option<i64>,
    /// Set when a change of clock needs the timeline to anchor the stream afresh.
    epoch: u64,
    /// Samples in the last payload decoded: the size of the frame a loss most likely took.
    frame: u32,
}

pub struct Stream {
    pub handle: StreamHandle,
    pub sender: Side,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub ssrc: u32,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    pub stats: StreamStats,
    pub counts: StreamCounts,
    /// The first audio payload type and what it is.
    pub audio: Option<(u8, CodecSpec)>,
    reorder: Reorder,
    /// Payload type → codec, resolved once per SDP version.
    specs: Vec<(u8, Option<CodecSpec>)>,
    specs_version: u32,
    /// The payload type resolved last, its slot and its clock rate (valid with
    /// `specs_version`): nearly every packet has the one before's, so the slots themselves,
    /// in their own allocation, are not read for it.
    last_spec: Option<(u8, Option<usize>, u32)>,
    decoder: Option<ActiveDecoder>,
    /// Why the latest undecodable payload type could not be decoded.
    undecodable: Option<String>,
    /// Set when the stream is SRTP and could not be decrypted.
    encrypted: Option<String>,
    srtp: Option<Srtp>,
    resample: Option<Resample>,
    /// Unwrapping of the RTP timestamp in release order.
    last_raw_ts: u32,
    ext_ts: i64,
    ts_started: bool,
    /// RTP timestamp of the last telephone event reported, so its repeats are not.
    last_event_ts: Option<u32>,
    inband: Option<DtmfDetector>,
    epochs: u64,
    pcm: Vec<i16>,
    concealed: Vec<i16>,
    /// The call's media version the keys were last taken from.
    pub keys_version: Option<u32>,
    /// Who this stream's audio is to the timeline: its own handle, or that of the stream it
    /// carries on from ([`Stream::carry_on_from`]).
    source_id: u64,
    /// How it was protected when another stream carried on from it.
    security_then: Option<String>,
}

impl Stream {
    pub fn new(
        handle: StreamHandle,
        sender: Side,
        src: SocketAddr,
        dst: SocketAddr,
        ssrc: u32,
        ts: Timestamp,
    ) -> Stream {
        Stream {
            handle,
            sender,
            src,
            dst,
            ssrc,
            first_ts: ts,
            last_ts: ts,
            stats: StreamStats::default(),
            counts: StreamCounts::default(),
            audio: None,
            reorder: Reorder::default(),
            specs: Vec::new(),
            specs_version: 0,
            last_spec: None,
            decoder: None,
            undecodable: None,
            encrypted: None,
            srtp: None,
            resample: None,
            last_raw_ts: 0,
            ext_ts: 0,
            ts_started: false,
            last_event_ts: None,
            inband: None,
            epochs: 0,
            pcm: Vec::new(),
            concealed: Vec::new(),
            keys_version: None,
            source_id: handle.0,
            security_then: None,
        }
    }

    /// This stream is `old`'s sender sending on to another address (RFC 3550 §8: the SSRC
    /// names the source): the decoder, the reorder buffer, the keys and the place on the
    /// timeline move over, so a stateful decoder stays in step and the audio runs on without a
    /// seam. Each keeps its own RTP figures, as tshark counts a stream per 5-tuple.
    pub fn carry_on_from(&mut self, old: &mut Stream) {
        use std::mem::swap;
        old.security_then = Some(old.security());
        swap(&mut self.reorder, &mut old.reorder);
        swap(&mut self.specs, &mut old.specs);
        swap(&mut self.specs_version, &mut old.specs_version);
        swap(&mut self.last_spec, &mut old.last_spec);
        swap(&mut self.decoder, &mut old.decoder);
        swap(&mut self.srtp, &mut old.srtp);
        swap(&mut self.encrypted, &mut old.encrypted);
        swap(&mut self.keys_version, &mut old.keys_version);
        swap(&mut self.resample, &mut old.resample);
        swap(&mut self.last_raw_ts, &mut old.last_raw_ts);
        swap(&mut self.ext_ts, &mut old.ext_ts);
        swap(&mut self.ts_started, &mut old.ts_started);
        swap(&mut self.last_event_ts, &mut old.last_event_ts);
        swap(&mut self.inband, &mut old.inband);
        swap(&mut self.epochs, &mut old.epochs);
        self.source_id = old.source_id;
        // The old stream's audio state went with the move; its figures stay.
        old.encrypted.clone_from(&self.encrypted);
    }

    /// What the stream amounted to, for its report.
    /// Why the stream's audio is (partly) unusable, as [`Stream::status`] would say, without
    /// a copy: asked for every packet.
    pub fn problem(&self) -> Option<&str> {
        self.encrypted.as_deref().or(self.undecodable.as_deref())
    }

    pub fn status(&self) -> StreamStatus {
        if let Some(why) = &self.encrypted {
            return if self.counts.decoded_packets == 0 {
                StreamStatus::Encrypted(why.clone())
            } else {
                // Audio until the keys changed hands, none after.
                StreamStatus::Partial(why.clone())
            };
        }
        match (&self.undecodable, self.counts.decoded_packets) {
            (Some(why), 0) => StreamStatus::Undecodable(why.clone()),
            (Some(why), _) => StreamStatus::Partial(why.clone()),
            (None, 0) if self.counts.unrecorded_packets > 0 => StreamStatus::NotRecorded,
            (None, 0) => StreamStatus::NoAudio,
            (None, _) => StreamStatus::Decoded,
        }
    }

    /// Marks the stream as encrypted beyond reach (no key, DTLS-SRTP, ZRTP...): its payload is
    /// dropped, not decoded into noise. `None`: plain RTP after all (the answer chose it).
    pub fn set_encrypted(&mut self, why: Option<String>) {
        self.encrypted = why;
        self.srtp = None;
    }

    pub fn is_encrypted(&self) -> bool {
        self.encrypted.is_some()
    }

    /// How the stream is protected, for its report.
    pub fn security(&self) -> String {
        if let Some(s) = &self.security_then {
            return s.clone();
        }
        match (&self.srtp, &self.encrypted) {
            (_, Some(why)) => format!("encrypted: {why}"),
            (Some(s), None) => match s.contexts.get(s.current) {
                Some(c) => format!("srtp {}", c.suite()),
                None => "srtp".into(),
            },
            (None, None) => "rtp".into(),
        }
    }

    /// The stream is SRTP keyed by these `a=crypto` lines of its sender (newest first); lines
    /// already known keep their contexts (and rollover counters). The answer's tag, when
    /// known, says which of an offer's lines is in use: it is tried first.
    pub fn set_srtp_keys(&mut self, lines: &[String], tag: Option<u32>) {
        if self.srtp.as_ref().is_some_and(|s| s.lines == lines) {
            return;
        }
        let old = self.srtp.take();
        let mut srtp = Srtp {
            lines: lines.to_vec(),
            contexts: Vec::new(),
            current: 0,
            plain: Vec::new(),
            authenticated: old.as_ref().map_or(0, |o| o.authenticated),
        };
        let mut errors = Vec::new();
        let mut attrs: Vec<CryptoAttr> = Vec::new();
        for line in lines {
            match CryptoAttr::parse(line) {
                Ok(a) => attrs.push(a),
                Err(e) => errors.push(e.to_string()),
            }
        }
        // The tag the answer chose first; the rest in the order given.
        attrs.sort_by_key(|a| Some(a.tag) != tag);
        for a in attrs {
            match SrtpContext::new(&a) {
                Ok(c) => srtp.contexts.push(c),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if let Some(old) = old {
            // The previous keys stay, behind the new ones, for packets still in flight.
            for c in old.contexts {
                if srtp.contexts.len() < 8 {
                    srtp.contexts.push(c);
                }
            }
        }
        if srtp.contexts.is_empty() {
            let why = errors
                .first()
                .cloned()
                .unwrap_or_else(|| "no usable SDES key".into());
            self.encrypted = Some(why);
        } else {
            self.encrypted = None;
        }
        self.srtp = Some(srtp);
    }

    /// Feeds one packet as captured: decrypted first when the stream is SRTP. A packet no key
    /// authenticates is dropped and counted, never decoded as noise.
    pub fn on_wire(&mut self, ts: Timestamp, packet: &[u8], ctx: &mut StreamCtx<'_>) {
        if ctx.shadow && ctx.telephone_event.is_none() {
            // No digits can come of it: nothing of the stream is policy input.
            self.last_ts = self.last_ts.max(ts);
            return;
        }
        let Some(srtp) = self.srtp.as_mut() else {
            if let Ok(pkt) = rtp::Packet::new_checked(packet) {
                self.on_packet(ts, &pkt, ctx);
            }
            return;
        };
        if self.encrypted.is_some() {
            // No usable key: the packet still counts in the RTP figures, its payload is dropped.
            if let Ok(pkt) = rtp::Packet::new_checked(packet) {
                self.on_packet(ts, &pkt, ctx);
            }
            return;
        }
        match srtp.unprotect(packet) {
            Ok(()) => {
                let plain = std::mem::take(&mut srtp.plain);
                if let Ok(pkt) = rtp::Packet::new_checked(plain.as_slice()) {
                    self.on_packet(ts, &pkt, ctx);
                }
                if let Some(s) = self.srtp.as_mut() {
                    s.plain = plain;
                }
            }
            Err(_) => {
                self.counts.decrypt_failures += 1;
                self.last_ts = self.last_ts.max(ts);
                if srtp.authenticated == 0 && self.counts.decrypt_failures >= 50 {
                    self.encrypted =
                        Some("SRTP: no packet authenticated with the keys in the SDP".into());
                }
            }
        }
    }

    /// A shadow stream follows the order only for its digits. A plain packet that is not a
    /// telephone event, next in sequence with nothing held, changes nothing else: it is
    /// released at once, and a shadow decodes nothing. Takes such a packet (its header as
    /// the caller read it) and returns true; anything else is left for [`Stream::on_wire`].
    pub fn shadow_in_order(
        &mut self,
        ts: Timestamp,
        pkt: &rtp::Packet<&[u8]>,
        telephone_event: Option<u8>,
    ) -> bool {
        if self.srtp.is_some() || self.reorder.held != 0 {
            return false;
        }
        if Some(pkt.payload_type()) == telephone_event {
            return false;
        }
        let ext = self.reorder.extend(pkt.sequence_number());
        if self.reorder.next != Some(ext) {
            return false;
        }
        self.last_ts = self.last_ts.max(ts);
        self.reorder.mark_released(ext);
        true
    }

    /// The rate of the decoded audio (0 before any was decoded).
    pub fn audio_rate(&self) -> u32 {
        self.decoder.as_ref().map_or(0, |d| d.rate)
    }

    /// Where in `self.specs` the codec of a payload type is, resolved once per SDP version
    /// (no copy per packet); `None` when no SDP or static table names it.
    #[inline]
    fn spec_slot(&mut self, pt: u8, ctx: &StreamCtx<'_>) -> Option<usize> {
        // The usual packet, of the type the one before had, takes this inlined test; the
        // rest is out of line (its call alone cost about 20 instructions, twice a packet).
        if self.specs_version == ctx.media_version
            && let Some((p, slot, _)) = self.last_spec
            && p == pt
        {
            return slot;
        }
        self.resolve_spec(pt, ctx)
    }

    #[inline(never)]
    fn resolve_spec(&mut self, pt: u8, ctx: &StreamCtx<'_>) -> Option<usize> {
        if self.specs_version != ctx.media_version {
            self.specs.clear();
            self.specs_version = ctx.media_version;
            self.last_spec = None;
        }
        if let Some((p, slot, _)) = self.last_spec
            && p == pt
        {
            return slot;
        }
        let i = match self.specs.iter().position(|(p, _)| *p == pt) {
            Some(i) => i,
            None => {
                // Bounded: a stream that cycles through payload types re-resolves the rest.
                if self.specs.len() >= 16 {
                    self.specs.clear();
                }
                self.specs.push((pt, (ctx.payloads)(pt)));
                self.specs.len() - 1
            }
        };
        let slot = self.specs[i].1.is_some().then_some(i);
        let clock = self.specs[i].1.as_ref().map_or(0, |s| s.clock_rate);
        self.last_spec = Some((pt, slot, clock));
        slot
    }

    fn spec_at(&self, slot: usize) -> &CodecSpec {
        self.specs[slot]
            .1
            .as_ref()
            .expect("slots name known codecs")
    }

    /// RTP clock rate of a payload type, for the RTP statistics (0: not a clock, such as
    /// telephone events, or unknown).
    pub fn clock_of(&mut self, pt: u8, ctx: &StreamCtx<'_>) -> u32 {
        if Some(pt) == ctx.telephone_event {
            return 0;
        }
        self.spec_slot(pt, ctx);
        self.last_spec.map_or(0, |(_, _, clock)| clock)
    }

    /// Feeds one (plain) RTP packet as it arrived.
    pub fn on_packet(&mut self, ts: Timestamp, pkt: &rtp::Packet<&[u8]>, ctx: &mut StreamCtx<'_>) {
        self.last_ts = self.last_ts.max(ts);
        let pt = pkt.payload_type();
        if !ctx.shadow {
            let clock = self.clock_of(pt, ctx);
            self.stats.on_packet(
                ts.as_nanos(),
                pkt.sequence_number(),
                pkt.timestamp(),
                pt,
                pkt.marker(),
                clock,
            );
        }
        let ext = self.reorder.extend(pkt.sequence_number());
        match self
            .reorder
            .arrive(ext, ts, pkt.timestamp(), pt, pkt.payload())
        {
            Arrival::Late => self.counts.late += 1,
            Arrival::Duplicate => self.counts.duplicates += 1,
            Arrival::Held => self.release(ts, false, ctx),
            Arrival::Now { lost_before } => {
                if lost_before >= SLOTS as u64 {
                    // What is held comes first; then this one, after its gap.
                    self.release(ts, true, ctx);
                    self.reorder.next = None;
                    self.reorder.extend(pkt.sequence_number());
                    self.reorder.mark_released(ext);
                }
                let r = Released {
                    arrival: ts,
                    ts: pkt.timestamp(),
                    pt,
                    payload: pkt.payload(),
                    lost_before: lost_before.min(SLOTS as u64),
                };
                self.process(&r, ctx);
                self.release(ts, false, ctx);
            }
        }
    }

    /// Releases held packets that waited out the reorder window (called on timers).
    pub fn expire(&mut self, now: Timestamp, ctx: &mut StreamCtx<'_>) {
        self.release(now, false, ctx);
    }

    /// End of the stream: everything held is released, the resampler flushed.
    pub fn flush(&mut self, now: Timestamp, ctx: &mut StreamCtx<'_>) {
        self.release(now, true, ctx);
        self.flush_resampler(ctx);
    }

    pub fn holds_packets(&self) -> bool {
        self.reorder.held > 0
    }

    #[inline]
    fn release(&mut self, now: Timestamp, force: bool, ctx: &mut StreamCtx<'_>) {
        // Nothing is held for nearly every packet: no call for it.
        if self.reorder.held > 0 {
            self.release_held(now, force, ctx);
        }
    }

    #[inline(never)]
    fn release_held(&mut self, now: Timestamp, force: bool, ctx: &mut StreamCtx<'_>) {
        while let Some((h, lost_before)) = self.reorder.pop(now, ctx.reorder_window, force) {
            let r = Released {
                arrival: h.arrival,
                ts: h.ts,
                pt: h.pt,
                payload: &h.data,
                lost_before,
            };
            self.process(&r, ctx);
            self.reorder.recycle(h.data);
        }
    }

    /// One packet, in sequence order.
    fn process(&mut self, r: &Released<'_>, ctx: &mut StreamCtx<'_>) {
        if Some(r.pt) == ctx.telephone_event {
            self.counts.telephone_events += 1;
            if let Some(ev) = TelephoneEvent::parse(r.payload)
                && ev.end
                && self.last_event_ts != Some(r.ts)
            {
                self.last_event_ts = Some(r.ts);
                if let Some(digit) = ev.digit() {
                    ctx.digits.push(Digit {
                        ts: r.arrival,
                        digit,
                        duration_ms: (ev.duration as u64 * 1000 / 8000) as u32,
                        source: DtmfSource::Rfc4733,
                    });
                }
            }
            return;
        }
        if ctx.shadow {
            return;
        }
        if r.pt == rtp::PT_CN || r.pt == rtp::PT_CN_OLD {
            self.counts.comfort_noise += 1;
            if let Some(rec) = ctx.recording.as_deref_mut() {
                rec.mark_quiet(self.sender, r.arrival);
            }
            return;
        }
        let Some(slot) = self.spec_slot(r.pt, ctx) else {
            self.counts.undecodable_packets += 1;
            self.undecodable = Some(format!("payload type {} is in no SDP", r.pt));
            return;
        };
        if self.audio.is_none() {
            self.audio = Some((r.pt, self.spec_at(slot).clone()));
        }
        if self.encrypted.is_some() {
            return;
        }
        let wants_audio = ctx.recording.is_some() || ctx.inband || ctx.prime;
        if !wants_audio {
            self.counts.unrecorded_packets += 1;
            return;
        }
        let rec_rate = ctx
            .recording
            .as_deref()
            .map_or(ctx.rate_hint, Recording::sample_rate);
        if !self.ensure_decoder(r.pt, slot, rec_rate) {
            self.counts.undecodable_packets += 1;
            return;
        }
        let ext = self.extend_ts(r.ts);
        let dec = self.decoder.as_mut().expect("ensured above");
        // Loss first: the codec's concealment, then silence past MAX_CONCEAL.
        self.concealed.clear();
        let mut concealed_at = None;
        if r.lost_before > 0
            && let Some(end) = dec.end_ts
        {
            let gap_ticks = ext - end;
            let max_ticks = MAX_CONCEAL.as_millis() as i64 * dec.clock_rate as i64 / 1000;
            if gap_ticks > 0 && gap_ticks <= max_ticks {
                let samples = scale(gap_ticks as i128, dec.rate, dec.clock_rate) as usize;
                // In time order: concealment for all but the last lost frame, then that frame
                // rebuilt from the next packet's redundancy where the codec has it (Opus FEC).
                let last = (dec.frame as usize).clamp(1, samples);
                dec.decoder.conceal(samples - last, &mut self.concealed);
                let n = dec.decoder.recover(r.payload, last, &mut self.concealed);
                if n > 0 {
                    self.counts.recovered_samples += n as u64;
                } else {
                    dec.decoder.conceal(last, &mut self.concealed);
                }
                self.counts.concealed_samples += self.concealed.len() as u64;
                if !self.concealed.is_empty() {
                    concealed_at = Some(end);
                }
            }
        }
        self.pcm.clear();
        match dec.decoder.decode(r.payload, &mut self.pcm) {
            Ok(_) => {
                self.counts.decoded_packets += 1;
                self.counts.decoded_samples += self.pcm.len() as u64;
                if !self.pcm.is_empty() {
                    dec.frame = self.pcm.len() as u32;
                }
            }
            Err(_) => {
                self.counts.undecodable_packets += 1;
                let name = &self.specs[slot].1.as_ref().map_or("", |s| s.name.as_str());
                self.undecodable = Some(format!("{name} payload could not be decoded"));
                self.pcm.clear();
            }
        }
        let (clock, rate, base, epoch) = (dec.clock_rate, dec.rate, dec.base_ts, dec.epoch);
        if !self.pcm.is_empty() {
            dec.end_ts = Some(ext + scale(self.pcm.len() as i128, clock, rate) as i64);
        } else if dec.end_ts.is_none_or(|e| e < ext) && self.concealed.is_empty() {
            dec.end_ts = dec.end_ts.or(Some(ext));
        }
        if ctx.inband && rate == 8000 {
            let detector = self.inband.get_or_insert_with(DtmfDetector::new);
            // A stream that signals digits as RFC 4733 events may leave their tones in the
            // audio too: hearing them again would double every digit.
            let events = self.counts.telephone_events;
            let arrival = r.arrival;
            for pcm in [&self.concealed, &self.pcm] {
                detector.feed(pcm, |d| {
                    if events == 0 {
                        ctx.digits.push(Digit {
                            ts: arrival,
                            digit: d.digit,
                            duration_ms: d.duration_ms,
                            source: DtmfSource::InBand,
                        });
                    }
                });
            }
        }
        let Some(rec) = ctx.recording.as_deref_mut() else {
            return;
        };
        let to_pos = |ts: i64| scale((ts - base) as i128, rate, clock) as i64;
        let source = (self.source_id << 8) | (epoch & 0xff);
        if let Some(end) = concealed_at {
            place(
                rec,
                &mut self.resample,
                self.sender,
                source,
                to_pos(end),
                r.arrival,
                rate,
                &self.concealed,
                ctx.events,
            );
        }
        if !self.pcm.is_empty() {
            place(
                rec,
                &mut self.resample,
                self.sender,
                source,
                to_pos(ext),
                r.arrival,
                rate,
                &self.pcm,
                ctx.events,
            );
        }
    }

    /// The decoder for `pt`, made once; false if the payload cannot be decoded.
    #[inline]
    fn ensure_decoder(&mut self, pt: u8, slot: usize, rec_rate: u32) -> bool {
        self.decoder.as_ref().is_some_and(|d| d.pt == pt) || self.make_decoder(pt, slot, rec_rate)
    }

    #[inline(never)]
    fn make_decoder(&mut self, pt: u8, slot: usize, rec_rate: u32) -> bool {
        let spec = self.spec_at(slot).clone();
        let spec = &spec;
        match codec::decoder_for(spec, rec_rate) {
            Ok(decoder) => {
                let clock_rate = decoder.clock_rate().max(1);
                let rate = decoder.sample_rate().max(1);
                // A new clock puts the stream's positions on a new scale: anchor afresh.
                let same_clock = self
                    .decoder
                    .as_ref()
                    .is_some_and(|d| d.clock_rate == clock_rate && d.rate == rate);
                let (base_ts, end_ts, epoch) = match &self.decoder {
                    Some(d) if same_clock => (d.base_ts, d.end_ts, d.epoch),
                    _ => {
                        self.epochs += 1;
                        (i64::MIN, None, self.epochs)
                    }
                };
                self.decoder = Some(ActiveDecoder {
                    pt,
                    decoder,
                    clock_rate,
                    rate,
                    base_ts,
                    end_ts,
                    epoch,
                    frame: rate / 50,
                });
                true
            }
            Err(why) => {
                self.undecodable = Some(describe(pt, spec, &why));
                false
            }
        }
    }

    /// The RTP timestamp unwrapped in release order (RFC 3550 §5.1: it wraps).
    fn extend_ts(&mut self, ts: u32) -> i64 {
        if !self.ts_started {
            self.ts_started = true;
            self.ext_ts = ts as i64;
        } else {
            self.ext_ts += ts.wrapping_sub(self.last_raw_ts) as i32 as i64;
        }
        self.last_raw_ts = ts;
        let ext = self.ext_ts;
        if let Some(d) = self.decoder.as_mut()
            && d.base_ts == i64::MIN
        {
            d.base_ts = ext;
        }
        ext
    }

    fn flush_resampler(&mut self, ctx: &mut StreamCtx<'_>) {
        let (Some(rs), Some(rec)) = (self.resample.as_mut(), ctx.recording.as_deref_mut()) else {
            return;
        };
        let (side, arrival) = (self.sender, self.last_ts);
        let source = self.decoder.as_ref().map_or(self.source_id << 8, |d| {
            (self.source_id << 8) | (d.epoch & 0xff)
        });
        let events = &mut *ctx.events;
        rs.flush(&mut |pos, pcm| {
            rec.place(side, source, pos, arrival, pcm, events);
        });
    }
}

/// Places decoded audio at `pos` (codec frames), through the resampler when the recording
/// runs at another rate.
#[allow(clippy::too_many_arguments)]
fn place(
    rec: &mut Recording,
    resample: &mut Option<Resample>,
    side: Side,
    source: u64,
    pos: i64,
    arrival: Timestamp,
    rate: u32,
    pcm: &[i16],
    events: &mut VecDeque<Event>,
) {
    let to = rec.sample_rate();
    if rate == to {
        rec.place(side, source, pos, arrival, pcm, events);
        return;
    }
    if resample.as_ref().is_none_or(|r| r.rates() != (rate, to)) {
        *resample = Resample::new(rate, to).ok();
    }
    let Some(rs) = resample.as_mut() else {
        return;
    };
    rs.push(pos, pcm, &mut |p, out| {
        rec.place(side, source, p, arrival, out, events);
    });
}

fn describe(pt: u8, spec: &CodecSpec, why: &Undecodable) -> String {
    format!(
        "{}/{} (payload type {pt}): {why}",
        spec.name, spec.clock_rate
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_order(r: &mut Reorder, arrivals: &[u16]) -> (Vec<(u64, u64)>, usize, usize) {
        let t = Timestamp(1_000_000_000);
        let mut out = Vec::new();
        let (mut late, mut dup) = (0, 0);
        for &s in arrivals {
            let ext = r.extend(s);
            match r.arrive(ext, t, 0, 0, &[1, 2, 3]) {
                Arrival::Now { lost_before } => out.push((ext, lost_before)),
                Arrival::Held => {}
                Arrival::Late => late += 1,
                Arrival::Duplicate => dup += 1,
            }
            while let Some((h, lost)) = r.pop(t, Duration::from_millis(300), false) {
                out.push((h.ext_seq, lost));
            }
        }
        while let Some((h, lost)) = r.pop(t, Duration::from_millis(300), true) {
            out.push((h.ext_seq, lost));
        }
        (out, late, dup)
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let mut r = Reorder::default();
        let (out, late, dup) = held_order(&mut r, &[10, 12, 11, 13, 13, 15, 14]);
        let seqs: Vec<u64> = out.iter().map(|(e, _)| e - (1 << 32)).collect();
        assert_eq!(seqs, [10, 11, 12, 13, 14, 15]);
        assert!(out.iter().all(|(_, lost)| *lost == 0));
        assert_eq!((late, dup), (0, 1));
    }

    #[test]
    fn a_gap_is_released_as_loss_after_the_depth() {
        let mut r = Reorder::default();
        let seq: Vec<u16> = [1u16].into_iter().chain(3..=12).collect();
        let (out, _, _) = held_order(&mut r, &seq);
        let lost: u64 = out.iter().map(|(_, l)| l).sum();
        assert_eq!(lost, 1, "packet 2 counted lost once");
        assert_eq!(out.len(), 11);
        // Packet 2 arriving now is late.
        let ext = r.extend(2);
        assert!(matches!(
            r.arrive(ext, Timestamp(0), 0, 0, &[]),
            Arrival::Late
        ));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = Reorder::default();
        let (out, late, dup) = held_order(&mut r, &[65534, 65535, 1, 0, 2]);
        let seqs: Vec<u64> = out.iter().map(|(e, _)| *e).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        assert_eq!((late, dup), (0, 0));
    }

    #[test]
    fn a_held_packet_is_released_when_it_waited_out_the_window() {
        let mut r = Reorder::default();
        let t = Timestamp(1_000_000_000);
        for s in [1u16, 3] {
            let e = r.extend(s);
            r.arrive(e, t, 0, 0, &[]);
        }
        assert!(r.pop(t, Duration::from_millis(300), false).is_none());
        let later = t + Duration::from_millis(301);
        let (h, lost) = r
            .pop(later, Duration::from_millis(300), false)
            .expect("released");
        assert_eq!((h.ext_seq - (1 << 32), lost), (3, 1));
    }
}
