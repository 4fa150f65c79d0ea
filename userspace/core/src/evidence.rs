//! Evidence: the raw frames of each call, as they were captured, for a per-call capture file.
//!
//! Only the engine knows which call a frame is for (a SIP message's dialog, an RTP or RTCP
//! packet's stream, the fragments of a SIP datagram, the TCP segments of a SIP message), so it
//! collects them here: each frame is appended, with its timestamp and link type, to a buffer
//! that the call's own state holds, and the buffer is handed out whole as an
//! [`EvidenceChunk`] when it reaches [`EvidenceConfig::chunk_bytes`], when all buffers together
//! pass [`EvidenceConfig::budget_bytes`] (the biggest go first), and at the call's end (the
//! last chunk says so). Nothing is allocated per packet: a buffer grows until it is handed out.
//!
//! A frame whose call is not known yet waits in [`HeldFrames`] under a key: RTP held for the
//! SDP that may claim it (the engine's held RTP), an IP fragment until its datagram is whole,
//! a TCP segment until the SIP message it carries part of is. When the call turns up, the held
//! frames go to it before the frame that decided it; when it does not, they are dropped and
//! counted (`Stats::evidence_unclaimed`).
//!
//! Chunk layout, one record per frame, little-endian, no padding:
//! ```text
//! ts_ns u64 | linktype u32 (the pcap LINKTYPE_ number) | len u32 | len bytes of the frame
//! ```

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::event::Event;
use crate::stats::Stats;
use crate::time::Timestamp;
use crate::vocab::{AddrMap, CallHandle};

/// Bytes of a record before the frame.
pub const RECORD_HEADER: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvidenceConfig {
    /// A call's buffer is handed out when it would pass this.
    pub chunk_bytes: usize,
    /// All calls' buffers together: past this, the biggest are handed out until they are
    /// back under three quarters of it.
    pub budget_bytes: usize,
    /// Frames waiting for their call (held RTP, fragments, TCP segments) may hold this many
    /// bytes; the oldest are dropped first.
    pub held_bytes: usize,
    /// Frames wait this long for their call.
    pub held_max_age: Duration,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            chunk_bytes: 256 * 1024,
            budget_bytes: 64 * 1024 * 1024,
            held_bytes: 8 * 1024 * 1024,
            held_max_age: Duration::from_secs(30),
        }
    }
}

/// A run of one call's frames ([`crate::Event::Evidence`]).
#[derive(Clone, Debug, PartialEq)]
pub struct EvidenceChunk {
    pub call: CallHandle,
    /// Records in `data`.
    pub frames: u32,
    /// Earliest and latest frame time in the chunk (frames are in the order they were fed).
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    /// Records, laid out as the module documentation says.
    pub data: Vec<u8>,
    /// The call ended: no more chunks will follow.
    pub last: bool,
}

/// One record of a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvidenceFrame<'a> {
    pub ts: Timestamp,
    /// The pcap LINKTYPE_ number.
    pub linktype: u32,
    pub data: &'a [u8],
}

impl EvidenceChunk {
    /// The chunk's frames in order. A record cut short (which the engine never writes) ends
    /// the walk.
    pub fn frames(&self) -> impl Iterator<Item = EvidenceFrame<'_>> {
        frames(&self.data)
    }
}

/// The frames of a chunk's `data`.
pub fn frames(mut data: &[u8]) -> impl Iterator<Item = EvidenceFrame<'_>> {
    std::iter::from_fn(move || {
        let head = data.get(..RECORD_HEADER)?;
        let ts = u64::from_le_bytes(head[0..8].try_into().ok()?);
        let linktype = u32::from_le_bytes(head[8..12].try_into().ok()?);
        let len = u32::from_le_bytes(head[12..16].try_into().ok()?) as usize;
        let frame = data.get(RECORD_HEADER..RECORD_HEADER + len)?;
        data = &data[RECORD_HEADER + len..];
        Some(EvidenceFrame {
            ts: Timestamp(ts),
            linktype,
            data: frame,
        })
    })
}

/// Appends one record to chunk data (the layout above).
pub fn push_record(buf: &mut Vec<u8>, ts: Timestamp, linktype: u32, frame: &[u8]) {
    buf.extend_from_slice(&ts.0.to_le_bytes());
    buf.extend_from_slice(&linktype.to_le_bytes());
    buf.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    buf.extend_from_slice(frame);
}

/// A call's frames not yet handed out: kept in the call's own state.
#[derive(Default)]
pub struct CallEvidence {
    buf: Vec<u8>,
    frames: u32,
    first_ts: Timestamp,
    last_ts: Timestamp,
}

impl CallEvidence {
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends one frame; returns a chunk of what was there before when this one would have
    /// made it pass `chunk_bytes`.
    fn push(
        &mut self,
        call: CallHandle,
        chunk_bytes: usize,
        ts: Timestamp,
        linktype: u32,
        frame: &[u8],
    ) -> Option<EvidenceChunk> {
        let full = (!self.buf.is_empty()
            && self.buf.len() + RECORD_HEADER + frame.len() > chunk_bytes)
            .then(|| self.take(call, false, chunk_bytes));
        if self.frames == 0 {
            self.first_ts = ts;
            self.last_ts = ts;
        }
        self.first_ts = self.first_ts.min(ts);
        self.last_ts = self.last_ts.max(ts);
        push_record(&mut self.buf, ts, linktype, frame);
        self.frames += 1;
        full
    }

    /// Hands out everything buffered; the next buffer is sized like a full one.
    fn take(&mut self, call: CallHandle, last: bool, chunk_bytes: usize) -> EvidenceChunk {
        let cap = if last {
            0
        } else {
            chunk_bytes.min(self.buf.capacity())
        };
        let chunk = EvidenceChunk {
            call,
            frames: self.frames,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            data: std::mem::replace(&mut self.buf, Vec::with_capacity(cap)),
            last,
        };
        self.frames = 0;
        chunk
    }
}

/// Where a frame waits for its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HoldKey {
    /// RTP held for the SDP that may claim its flow.
    Flow(SocketAddr, SocketAddr),
    /// A fragment of an IP datagram not yet whole: source, destination, id, protocol.
    Fragment(IpAddr, IpAddr, u32, u8),
    /// A TCP segment carrying part of a SIP message not yet whole.
    Tcp(SocketAddr, SocketAddr),
}

struct HeldFrame {
    ts: Timestamp,
    linktype: u32,
    data: Vec<u8>,
}

/// Frames waiting for their call, bounded in bytes and age.
#[derive(Default)]
pub(crate) struct HeldFrames {
    by_key: AddrMap<HoldKey, VecDeque<HeldFrame>>,
    /// Keys in the order their first frame came, for dropping the oldest.
    order: VecDeque<(Timestamp, HoldKey)>,
    bytes: usize,
    /// Frames dropped: never claimed, too old, or evicted for room.
    pub(crate) dropped: u64,
}

impl HeldFrames {
    fn hold(&mut self, key: HoldKey, ts: Timestamp, linktype: u32, frame: &[u8], cap: usize) {
        while self.bytes + frame.len() > cap {
            let Some((_, old)) = self.order.pop_front() else {
                break;
            };
            self.drop_key(old);
        }
        if frame.len() > cap {
            self.dropped += 1;
            return;
        }
        let q = self.by_key.entry(key).or_default();
        if q.is_empty() {
            self.order.push_back((ts, key));
        }
        q.push_back(HeldFrame {
            ts,
            linktype,
            data: frame.to_vec(),
        });
        self.bytes += frame.len();
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn take(&mut self, key: HoldKey) -> Option<VecDeque<HeldFrame>> {
        let q = self.by_key.remove(&key)?;
        self.bytes -= q.iter().map(|f| f.data.len()).sum::<usize>();
        Some(q)
    }

    fn drop_key(&mut self, key: HoldKey) {
        if let Some(q) = self.take(key) {
            self.dropped += q.len() as u64;
        }
    }

    /// Drops keys whose first frame is older than `max_age`.
    fn expire(&mut self, now: Timestamp, max_age: Duration) {
        while let Some(&(ts, key)) = self.order.front() {
            if now.saturating_since(ts) <= max_age && self.by_key.contains_key(&key) {
                break;
            }
            self.order.pop_front();
            // A key taken (claimed) and held again later has a newer entry further on.
            if self.order.iter().all(|(_, k)| *k != key) {
                self.drop_key(key);
            }
        }
    }
}

/// What the engine learned about the frame it is handling.
#[derive(Default)]
pub(crate) struct FrameCtx {
    /// The calls the frame belongs to (a TCP segment may end messages of two).
    pub(crate) calls: Vec<CallHandle>,
    /// RTP held for an SDP: the frame waits with it.
    pub(crate) hold: Option<HoldKey>,
    /// A fragment or TCP segment: the key its earlier parts wait under, and whether this one
    /// waits too (the datagram or message is not whole yet).
    pub(crate) join: Option<(HoldKey, bool)>,
}

/// The engine's evidence state (only with [`crate::EngineConfig::evidence`]).
pub(crate) struct Evidence {
    pub(crate) cfg: EvidenceConfig,
    frame: FrameCtx,
    pub(crate) held: HeldFrames,
    /// Bytes in every call's buffer.
    pub(crate) buffered: usize,
    pub(crate) frames: u64,
    pub(crate) chunks: u64,
    /// Chunks handed out early because the buffers were over the budget.
    pub(crate) spills: u64,
}

impl Evidence {
    pub(crate) fn new(cfg: EvidenceConfig) -> Evidence {
        Evidence {
            cfg,
            frame: FrameCtx::default(),
            held: HeldFrames::default(),
            buffered: 0,
            frames: 0,
            chunks: 0,
            spills: 0,
        }
    }

    pub(crate) fn begin_frame(&mut self) {
        self.frame.calls.clear();
        self.frame.hold = None;
        self.frame.join = None;
    }

    /// The frame belongs to `call`.
    pub(crate) fn mark(&mut self, call: CallHandle) {
        if !self.frame.calls.contains(&call) {
            self.frame.calls.push(call);
        }
    }

    pub(crate) fn hold_flow(&mut self, src: SocketAddr, dst: SocketAddr) {
        self.frame.hold = Some(HoldKey::Flow(src, dst));
    }

    pub(crate) fn join(&mut self, key: HoldKey, waits: bool) {
        self.frame.join = Some((key, waits));
    }

    pub(crate) fn expire(&mut self, now: Timestamp) {
        self.held.expire(now, self.cfg.held_max_age);
    }

    /// Appends one frame to a call's buffer, handing out a full chunk.
    pub(crate) fn append(
        &mut self,
        call: CallHandle,
        buf: &mut CallEvidence,
        ts: Timestamp,
        linktype: u32,
        frame: &[u8],
        events: &mut VecDeque<Event>,
    ) {
        let before = buf.len();
        if let Some(chunk) = buf.push(call, self.cfg.chunk_bytes, ts, linktype, frame) {
            self.chunks += 1;
            events.push_back(Event::Evidence(chunk));
        }
        self.frames += 1;
        self.buffered = self.buffered.saturating_sub(before) + buf.len();
    }

    /// Moves the frames held under `key` to a call's buffer (they came before the frame
    /// being handled).
    pub(crate) fn claim(
        &mut self,
        key: HoldKey,
        call: CallHandle,
        buf: &mut CallEvidence,
        events: &mut VecDeque<Event>,
    ) {
        if let Some(q) = self.held.take(key) {
            for f in q {
                self.append(call, buf, f.ts, f.linktype, &f.data, events);
            }
        }
    }

    /// Hands out a call's buffer (the last one at its end).
    pub(crate) fn flush(
        &mut self,
        call: CallHandle,
        buf: &mut CallEvidence,
        last: bool,
        events: &mut VecDeque<Event>,
    ) {
        if buf.is_empty() && !last {
            return;
        }
        self.buffered -= buf.len().min(self.buffered);
        self.chunks += 1;
        events.push_back(Event::Evidence(buf.take(call, last, self.cfg.chunk_bytes)));
    }

    /// The frame's context, taken for `end_frame`; hand it back with [`Evidence::put_frame`].
    pub(crate) fn take_frame(&mut self) -> FrameCtx {
        std::mem::take(&mut self.frame)
    }

    pub(crate) fn put_frame(&mut self, ctx: FrameCtx) {
        self.frame = ctx;
    }

    /// Keeps a frame that waits for its call.
    pub(crate) fn hold(&mut self, key: HoldKey, ts: Timestamp, linktype: u32, frame: &[u8]) {
        let cap = self.cfg.held_bytes;
        self.held.hold(key, ts, linktype, frame, cap);
    }

    /// Moves frames from one key to another (a whole datagram whose RTP waits for its SDP).
    pub(crate) fn rekey(&mut self, from: HoldKey, to: HoldKey) {
        if let Some(q) = self.held.take(from) {
            for f in q {
                let cap = self.cfg.held_bytes;
                self.held.hold(to, f.ts, f.linktype, &f.data, cap);
            }
        }
    }

    pub(crate) fn discard(&mut self, key: HoldKey) {
        self.held.drop_key(key);
    }

    /// End of input: what still waits will never be claimed.
    pub(crate) fn clear_held(&mut self) {
        let keys: Vec<HoldKey> = self.held.by_key.keys().copied().collect();
        for k in keys {
            self.held.drop_key(k);
        }
        self.held.order.clear();
    }

    /// Copies the counters into the engine's.
    pub(crate) fn sync(&self, stats: &mut Stats) {
        stats.evidence_frames = self.frames;
        stats.evidence_chunks = self.chunks;
        stats.evidence_spills = self.spills;
        stats.evidence_unclaimed = self.held.dropped;
    }
}
