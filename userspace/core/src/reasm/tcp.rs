//! One-direction TCP stream reassembly for a passive observer, with bounded memory: per flow by
//! [`TcpConfig`], over all flows (and the other buffers) by a [`Budget`].
//! Sequence numbers compare by serial arithmetic (RFC 9293 §3.4, RFC 1982 §3.2).

use super::budget::{self, Budget, Evict};
use crate::time::Timestamp;
use crate::wire::TcpFlags;
use core::time::Duration;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

/// One direction of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl FlowKey {
    /// The opposite direction.
    pub fn reverse(self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    pub max_flows: usize,
    /// Unconsumed in-order bytes plus queued out-of-order bytes, per flow.
    pub max_buffered_bytes: usize,
    /// Out-of-order segments queued per flow before the hole is given up on.
    pub max_out_of_order: usize,
    pub idle_timeout: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_flows: 65_536,
            max_buffered_bytes: 256 * 1024,
            max_out_of_order: 64,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpError {
    /// The flow's buffer overflowed: unconsumed bytes were dropped and the stream marked resynced.
    /// The segment's own bytes were kept (its tail, if it alone exceeds the limit).
    BufferFull,
    /// `max_flows` flows exist; the segment was not tracked.
    TableFull,
    /// The memory budget had no room for the segment's bytes even with every idler buffer
    /// evicted: they were dropped (with the flow's unconsumed bytes) and the stream marked
    /// resynced.
    OverBudget,
}

impl core::fmt::Display for TcpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TcpError::BufferFull => "tcp flow buffer full",
            TcpError::TableFull => "tcp flow table full",
            TcpError::OverBudget => "tcp bytes over the memory budget",
        })
    }
}

impl std::error::Error for TcpError {}

/// Bytes a cursor below this never triggers a compaction: not worth a memmove.
const COMPACT_MIN: usize = 4096;

/// The contiguous, in-order bytes of one direction not yet consumed.
#[derive(Debug, Default)]
pub struct ByteStream {
    buf: Vec<u8>,
    start: usize,
    resynced: bool,
    finished: bool,
    mid_stream: bool,
    /// Bytes still to come that [`ByteStream::discard`] drops as they arrive.
    to_discard: usize,
}

impl ByteStream {
    pub fn data(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks `n` bytes read (clamped to what is there). Compacts once the read part passes half.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= COMPACT_MIN && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Drops the next `n` bytes of the stream: those here now, and the rest as they arrive, so
    /// a message too large to keep is never buffered.
    pub fn discard(&mut self, n: usize) {
        let here = n.min(self.len());
        self.consume(here);
        self.to_discard = n - here;
    }

    /// Bytes that [`ByteStream::discard`] will still drop as they arrive.
    pub fn discarding(&self) -> usize {
        self.to_discard
    }

    /// True once after bytes were skipped (a hole given up on, or a buffer overflow, or a new SYN
    /// on the same ports): the caller should hunt for the next message start.
    pub fn take_resynced(&mut self) -> bool {
        core::mem::take(&mut self.resynced)
    }

    /// FIN reached in sequence, or RST: no more bytes will arrive. Drain `data()`, then `remove`.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The flow was picked up without a SYN, so the first byte may be mid-message.
    pub fn started_mid_stream(&self) -> bool {
        self.mid_stream
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Gives the buffer back; returns its capacity.
    fn release(&mut self) -> usize {
        let cap = self.buf.capacity();
        self.buf = Vec::new();
        self.start = 0;
        cap
    }

    /// Appends `data` if the budget gives what the buffer must grow by; false (nothing
    /// appended) if not. Capacity doubles up to `max` so a long message costs few copies, and
    /// grows exactly when the budget is tight.
    fn append(&mut self, data: &[u8], max: usize, room: &mut Room<'_, '_, '_>) -> bool {
        if self.start == self.buf.len() {
            self.clear();
        }
        if self.buf.len() + data.len() > self.buf.capacity() && self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let needed = self.buf.len() + data.len();
        let cap = self.buf.capacity();
        if needed > cap {
            let want = needed.max(cap * 2).min(max.max(needed));
            let target = if room.take(want - cap) {
                want
            } else if want > needed && room.take(needed - cap) {
                needed
            } else {
                return false;
            };
            self.buf.reserve_exact(target - self.buf.len());
            // Vec allocates exactly what reserve_exact asks: the budget saw the true figure.
            debug_assert_eq!(self.buf.capacity(), target);
        }
        self.buf.extend_from_slice(data);
        true
    }

    #[cfg(test)]
    fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
}

/// Serial-number order: is `a` before `b` (RFC 1982 §3.2)?
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

type Age = (Timestamp, u64);

struct Segment {
    seq: u32,
    data: Vec<u8>,
}

struct Flow {
    next_seq: u32,
    stream: ByteStream,
    /// Queued segments, all starting after `next_seq`, sorted by sequence.
    ooo: Vec<Segment>,
    ooo_bytes: usize,
    fin_seq: Option<u32>,
    /// The SYN's sequence number, if one was seen.
    isn: Option<u32>,
    age: Age,
}

impl Flow {
    fn new(isn: u32, next_seq: u32, age: Age) -> Flow {
        Flow::new_opt(Some(isn), next_seq, age)
    }

    fn new_opt(isn: Option<u32>, next_seq: u32, age: Age) -> Flow {
        Flow {
            next_seq,
            stream: ByteStream {
                mid_stream: isn.is_none(),
                ..ByteStream::default()
            },
            ooo: Vec::new(),
            ooo_bytes: 0,
            fin_seq: None,
            isn,
            age,
        }
    }

    /// Buffer bytes allocated: the stream's capacity and the queued segments (each exact).
    fn held(&self) -> usize {
        self.stream.buf.capacity() + self.ooo_bytes
    }

    /// The stream jumped over bytes: the next message start must be hunted for.
    fn mark_resynced(&mut self) {
        self.stream.resynced = true;
        // Where a discarded message ends is unknown once bytes were skipped.
        self.stream.to_discard = 0;
    }

    fn ingest(
        &mut self,
        cfg: &TcpConfig,
        seq: u32,
        data: &[u8],
        room: &mut Room<'_, '_, '_>,
    ) -> Result<(), TcpError> {
        let mut result = Ok(());
        loop {
            let off = seq.wrapping_sub(self.next_seq) as i32;
            if off <= 0 {
                // Retransmitted bytes before `next_seq` are trimmed.
                let skip = off.unsigned_abs() as usize;
                if skip >= data.len() {
                    return result;
                }
                let delivered = self.deliver(cfg, &data[skip..], room);
                let drained = self.drain_ooo(cfg, room);
                return result.and(delivered).and(drained);
            }
            let fits = self.ooo.len() < cfg.max_out_of_order
                && self.stream.len() + self.ooo_bytes + data.len() <= cfg.max_buffered_bytes;
            if fits {
                return result.and(self.queue(seq, data, room));
            }
            if self.ooo.is_empty() {
                // No room to wait for the hole in front of this segment: jump over it.
                self.next_seq = seq;
                self.mark_resynced();
                continue;
            }
            result = result.and(self.skip_hole(cfg, room));
        }
    }

    /// Queues an out-of-order segment; one the budget has no room for is dropped.
    fn queue(
        &mut self,
        seq: u32,
        data: &[u8],
        room: &mut Room<'_, '_, '_>,
    ) -> Result<(), TcpError> {
        let next = self.next_seq;
        let rel = |s: u32| s.wrapping_sub(next);
        let at = self.ooo.partition_point(|s| rel(s.seq) < rel(seq));
        match self.ooo.get_mut(at) {
            Some(same) if same.seq == seq => {
                if data.len() > same.data.len() {
                    if !room.take(data.len()) {
                        return Err(TcpError::OverBudget);
                    }
                    let old = core::mem::replace(&mut same.data, data.to_vec());
                    self.ooo_bytes = self.ooo_bytes - old.len() + data.len();
                    room.give(old.len());
                }
            }
            _ => {
                if !room.take(data.len()) {
                    return Err(TcpError::OverBudget);
                }
                self.ooo_bytes += data.len();
                self.ooo.insert(
                    at,
                    Segment {
                        seq,
                        data: data.to_vec(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Appends in-order bytes. On overflow the unconsumed bytes go: a parser that has not found a
    /// message in a full buffer never will, and the new bytes may hold the next message start.
    /// The same when the budget has no room: the flow's own buffer goes first.
    fn deliver(
        &mut self,
        cfg: &TcpConfig,
        data: &[u8],
        room: &mut Room<'_, '_, '_>,
    ) -> Result<(), TcpError> {
        self.next_seq = self.next_seq.wrapping_add(data.len() as u32);
        let dropped = self.stream.to_discard.min(data.len());
        self.stream.to_discard -= dropped;
        let data = &data[dropped..];
        if data.is_empty() {
            return Ok(());
        }
        let flow_room = cfg.max_buffered_bytes.saturating_sub(self.ooo_bytes);
        let mut result = Ok(());
        if self.stream.len() + data.len() > flow_room {
            self.stream.clear();
            self.mark_resynced();
            result = Err(TcpError::BufferFull);
        }
        let keep = &data[data.len().saturating_sub(flow_room)..];
        if !self.stream.append(keep, cfg.max_buffered_bytes, room) {
            room.give(self.stream.release());
            self.mark_resynced();
            if !self.stream.append(keep, cfg.max_buffered_bytes, room) {
                room.give(self.stream.release());
            }
            result = Err(TcpError::OverBudget);
        }
        result
    }

    /// Delivers queued segments that became contiguous.
    fn drain_ooo(&mut self, cfg: &TcpConfig, room: &mut Room<'_, '_, '_>) -> Result<(), TcpError> {
        let mut result = Ok(());
        while let Some(first) = self.ooo.first() {
            if seq_lt(self.next_seq, first.seq) {
                break;
            }
            let seg = self.ooo.remove(0);
            self.ooo_bytes -= seg.data.len();
            let skip = self.next_seq.wrapping_sub(seg.seq) as usize;
            if skip < seg.data.len() {
                result = result.and(self.deliver(cfg, &seg.data[skip..], room));
            }
            // Given back only now: while its bytes were copied the segment still held them.
            room.give(seg.data.len());
        }
        result
    }

    /// Gives up on the hole before the first queued segment.
    fn skip_hole(&mut self, cfg: &TcpConfig, room: &mut Room<'_, '_, '_>) -> Result<(), TcpError> {
        let Some(first) = self.ooo.first() else {
            return Ok(());
        };
        self.next_seq = first.seq;
        self.mark_resynced();
        self.drain_ooo(cfg, room)
    }

    fn check_fin(&mut self) {
        if self.fin_seq.is_some_and(|fin| !seq_lt(self.next_seq, fin)) {
            self.stream.finished = true;
        }
    }
}

/// The flows of a reassembler other than the one being pushed to, as a budget holder.
struct Rest<'r> {
    flows: &'r mut HashMap<FlowKey, Flow>,
    by_age: &'r mut BTreeMap<Age, FlowKey>,
    holding: &'r mut BTreeMap<Age, FlowKey>,
    /// Every flow's bytes, the one being pushed to included.
    held: &'r mut usize,
    evicted: &'r mut u64,
}

impl Evict for Rest<'_> {
    fn held_bytes(&self) -> usize {
        *self.held
    }

    fn idlest(&self) -> Option<Timestamp> {
        self.holding.first_key_value().map(|(age, _)| age.0)
    }

    fn evict_idlest(&mut self) -> Option<usize> {
        let (age, key) = self.holding.pop_first()?;
        self.by_age.remove(&age);
        let freed = self.flows.remove(&key).map_or(0, |f| f.held());
        *self.held -= freed;
        *self.evicted += 1;
        Some(freed)
    }
}

impl budget::Rest for Rest<'_> {
    fn held_mut(&mut self) -> &mut usize {
        self.held
    }
}

type Room<'r, 'b, 'f> = budget::Room<'r, 'b, Rest<'f>>;

/// Reassembles each direction of many TCP flows into byte streams.
pub struct TcpReassembler {
    cfg: TcpConfig,
    flows: HashMap<FlowKey, Flow>,
    by_age: BTreeMap<Age, FlowKey>,
    /// The flows holding buffer bytes, idlest first: what the budget evicts.
    holding: BTreeMap<Age, FlowKey>,
    counter: u64,
    held: usize,
    evicted: u64,
}

impl TcpReassembler {
    pub fn new(cfg: TcpConfig) -> Self {
        TcpReassembler {
            cfg,
            flows: HashMap::new(),
            by_age: BTreeMap::new(),
            holding: BTreeMap::new(),
            counter: 0,
            held: 0,
            evicted: 0,
        }
    }

    /// Adds a segment of one direction. A flow picked up mid-stream (no SYN seen) starts at the
    /// first segment's seq. Retransmitted/overlapping bytes are trimmed; out-of-order segments wait
    /// (bounded) until the hole fills. If a hole persists (out-of-order queue full or buffer full),
    /// the hole is skipped and the stream marked `resynced`. FIN/RST end the flow after its data.
    /// The bytes come out of `budget`, which evicts idler flows (and the other holders' idler
    /// buffers) to make room; this flow's buffer goes last.
    ///
    /// Segments without payload or SYN never create a flow (pure ACKs would fill the table).
    pub fn push(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
        budget: &mut Budget<'_>,
    ) -> Result<(), TcpError> {
        let data_seq = if flags.syn() {
            seq.wrapping_add(1)
        } else {
            seq
        };
        self.counter += 1;
        let stamp = (ts, self.counter);

        // The flow is out of the tables while it is pushed to, so that the budget cannot evict it.
        let mut flow = match self.take_out(&key) {
            Some(mut flow) => {
                // Packet time can step back in merged captures; age only moves forward.
                if ts > flow.age.0 {
                    flow.age = stamp;
                }
                if flags.syn() && flow.isn != Some(seq) {
                    if flow.isn.is_none() && flow.next_seq == data_seq {
                        flow.isn = Some(seq);
                    } else {
                        // A SYN with a new ISN: the ports were reused for a new connection.
                        self.held -= flow.held();
                        flow = Flow::new(seq, data_seq, flow.age);
                        flow.stream.resynced = true;
                    }
                }
                flow
            }
            None => {
                if payload.is_empty() && !flags.syn() {
                    return Ok(());
                }
                if self.flows.len() >= self.cfg.max_flows {
                    return Err(TcpError::TableFull);
                }
                Flow::new_opt(flags.syn().then_some(seq), data_seq, stamp)
            }
        };

        let result = if flow.stream.finished {
            Ok(())
        } else {
            let cfg = self.cfg;
            let mut room = Room {
                budget,
                rest: Rest {
                    flows: &mut self.flows,
                    by_age: &mut self.by_age,
                    holding: &mut self.holding,
                    held: &mut self.held,
                    evicted: &mut self.evicted,
                },
            };
            let mut result = Ok(());
            if !payload.is_empty() {
                result = flow.ingest(&cfg, data_seq, payload, &mut room);
            }
            if flags.fin() && flow.fin_seq.is_none() {
                flow.fin_seq = Some(data_seq.wrapping_add(payload.len() as u32));
            }
            if flags.rst() {
                // Nothing more will come: hand over what is queued, holes and all.
                while !flow.ooo.is_empty() {
                    result = result.and(flow.skip_hole(&cfg, &mut room));
                }
                flow.stream.finished = true;
            }
            flow.check_fin();
            result
        };
        self.put_back(key, flow);
        result
    }

    /// The contiguous, in-order bytes of a flow not yet consumed.
    pub fn stream(&mut self, key: &FlowKey) -> Option<&mut ByteStream> {
        self.flows.get_mut(key).map(|f| &mut f.stream)
    }

    /// Gives back the buffer of a flow whose bytes were all consumed: an idle flow holds
    /// nothing. Call it after reading from [`TcpReassembler::stream`].
    pub fn settle(&mut self, key: &FlowKey) {
        let Some(flow) = self.flows.get_mut(key) else {
            return;
        };
        if flow.stream.is_empty() && flow.stream.buf.capacity() > 0 {
            self.held -= flow.stream.release();
            if flow.held() == 0 {
                self.holding.remove(&flow.age);
            }
        }
    }

    /// Drops flows idle for `idle_timeout`; returns how many.
    pub fn expire(&mut self, ts: Timestamp) -> usize {
        let mut dropped = 0;
        while let Some((&(last, _), _)) = self.by_age.first_key_value() {
            if last + self.cfg.idle_timeout > ts {
                break;
            }
            if let Some((age, key)) = self.by_age.pop_first() {
                self.holding.remove(&age);
                if let Some(flow) = self.flows.remove(&key) {
                    self.held -= flow.held();
                }
                dropped += 1;
            }
        }
        dropped
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.by_age
            .first_key_value()
            .map(|(&(last, _), _)| last + self.cfg.idle_timeout)
    }

    pub fn remove(&mut self, key: &FlowKey) {
        if let Some(flow) = self.take_out(key) {
            self.held -= flow.held();
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Flows evicted to keep within the memory budget, since the start.
    pub fn evicted_for_memory(&self) -> u64 {
        self.evicted
    }

    /// Takes a flow out of every table; its bytes stay counted in `held`.
    fn take_out(&mut self, key: &FlowKey) -> Option<Flow> {
        let flow = self.flows.remove(key)?;
        self.by_age.remove(&flow.age);
        self.holding.remove(&flow.age);
        Some(flow)
    }

    fn put_back(&mut self, key: FlowKey, flow: Flow) {
        self.by_age.insert(flow.age, key);
        if flow.held() > 0 {
            self.holding.insert(flow.age, key);
        }
        self.flows.insert(key, flow);
    }

    fn rest(&mut self) -> Rest<'_> {
        Rest {
            flows: &mut self.flows,
            by_age: &mut self.by_age,
            holding: &mut self.holding,
            held: &mut self.held,
            evicted: &mut self.evicted,
        }
    }
}

impl Evict for TcpReassembler {
    /// Buffer bytes of every flow: stream buffers' capacity and queued segments.
    fn held_bytes(&self) -> usize {
        self.held
    }

    fn idlest(&self) -> Option<Timestamp> {
        self.holding.first_key_value().map(|(age, _)| age.0)
    }

    fn evict_idlest(&mut self) -> Option<usize> {
        self.rest().evict_idlest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes with no budget, as the reassembler alone.
    trait Unbounded {
        fn push_unbounded(
            &mut self,
            ts: Timestamp,
            key: FlowKey,
            seq: u32,
            flags: TcpFlags,
            payload: &[u8],
        ) -> Result<(), TcpError>;
    }

    impl Unbounded for TcpReassembler {
        fn push_unbounded(
            &mut self,
            ts: Timestamp,
            key: FlowKey,
            seq: u32,
            flags: TcpFlags,
            payload: &[u8],
        ) -> Result<(), TcpError> {
            self.push(ts, key, seq, flags, payload, &mut Budget::unlimited())
        }
    }

    const NONE: TcpFlags = TcpFlags(TcpFlags::ACK);
    const PSH: TcpFlags = TcpFlags(TcpFlags::PSH | TcpFlags::ACK);
    const SYN: TcpFlags = TcpFlags(TcpFlags::SYN);
    const FIN: TcpFlags = TcpFlags(TcpFlags::FIN | TcpFlags::ACK);
    const RST: TcpFlags = TcpFlags(TcpFlags::RST);

    fn key() -> FlowKey {
        FlowKey {
            src: "10.0.0.1:40000".parse().unwrap(),
            dst: "10.0.0.2:5060".parse().unwrap(),
        }
    }

    fn t(s: u64) -> Timestamp {
        Timestamp::from_secs_nanos(s, 0)
    }

    fn data(r: &mut TcpReassembler) -> Vec<u8> {
        r.stream(&key()).expect("flow exists").data().to_vec()
    }

    #[test]
    fn in_order_mid_stream() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_unbounded(t(1), key(), 1000, PSH, b"INVITE sip:")
            .unwrap();
        r.push_unbounded(t(1), key(), 1011, PSH, b"bob SIP/2.0\r\n")
            .unwrap();
        assert_eq!(data(&mut r), b"INVITE sip:bob SIP/2.0\r\n");
        let s = r.stream(&key()).unwrap();
        assert!(s.started_mid_stream());
        assert!(!s.take_resynced());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn syn_then_data() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_unbounded(t(1), key(), 99, SYN, b"").unwrap();
        r.push_unbounded(t(1), key(), 99, SYN, b"").unwrap(); // retransmitted SYN
        r.push_unbounded(t(1), key(), 100, PSH, b"OPTIONS").unwrap();
        assert_eq!(data(&mut r), b"OPTIONS");
        assert!(!r.stream(&key()).unwrap().started_mid_stream());
    }

    #[test]
    fn pure_acks_create_no_flow() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_unbounded(t(1), key(), 5, NONE, b"").unwrap();
        r.push_unbounded(t(1), key(), 5, FIN, b"").unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn out_of_order() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_unbounded(t(1), key(), 0, PSH, b"AB").unwrap();
        r.push_unbounded(t(1), key(), 6, PSH, b"GH").unwrap();
        r.push_unbounded(t(1), key(), 4, PSH, b"EF").unwrap();
        assert_eq!(data(&mut r), b"AB");
        r.push_unbounded(t(1), key(), 2, PSH, b"CD").unwrap();
        assert_eq!(data(&mut r), b"ABCDEFGH");
        assert!(!r.stream(&key()).unwrap().take_resynced());
    }

    #[test]
    fn retransmission_overlap_is_trimmed() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_unbounded(t(1), key(), 10, PSH, b"0123456789")
            .unwrap();
        r.push_unbounded(t(1), key(), 10, PSH, b"0123456789")
            .unwrap(); // full retransmission
        r.push_unbounded(t(1), key(), 15, PSH, b"56789abcde")
            .unwrap(); // partial overlap
        r.push_unbounded(t(1), key(), 30, PSH, b"klm").unwrap(); // queued
        r.push_unbounded(t(1), key(), 28, PSH, b"ijklmn").unwrap(); // queued, overlaps the one above
        r.push_unbounded(t(1), key(), 20, PSH, b"abcdefgh").unwrap(); // fills the hole
        assert_eq!(data(&mut r), b"0123456789abcdefghijklmn");
    }

    #[test]
    fn wraps_at_2_pow_32() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_unbounded(t(1), key(), u32::MAX - 3, PSH, b"abcd")
            .unwrap();
        // Out of order across the wrap: seq 4 arrives before seq 0.
        r.push_unbounded(t(1), key(), 4, PSH, b"ijkl").unwrap();
        r.push_unbounded(t(1), key(), u32::MAX - 1, PSH, b"cdefgh")
            .unwrap(); // overlaps the first segment
        assert_eq!(data(&mut r), b"abcdefghijkl");
        r.push_unbounded(t(1), key(), 2, PSH, b"ghij").unwrap(); // old bytes
        assert_eq!(data(&mut r), b"abcdefghijkl");
    }

    #[test]
    fn two_messages_coalesced() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        let two = b"ACK sip:a SIP/2.0\r\n\r\nBYE sip:a SIP/2.0\r\n\r\n";
        r.push_unbounded(t(1), key(), 1, PSH, two).unwrap();
        let s = r.stream(&key()).unwrap();
        assert_eq!(s.data(), two);
        s.consume(21);
        assert_eq!(s.data(), b"BYE sip:a SIP/2.0\r\n\r\n");
        s.consume(100);
        assert!(s.is_empty());
    }

    #[test]
    fn message_split() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_unbounded(t(1), key(), 7, PSH, b"SIP/2.0 200")
            .unwrap();
        assert_eq!(data(&mut r), b"SIP/2.0 200");
        r.push_unbounded(t(1), key(), 18, PSH, b" OK\r\nContent-")
            .unwrap();
        r.push_unbounded(t(1), key(), 31, PSH, b"Length: 0\r\n\r\n")
            .unwrap();
        assert_eq!(data(&mut r), b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn hole_skip_marks_resynced() {
        let cfg = TcpConfig {
            max_out_of_order: 2,
            ..TcpConfig::default()
        };
        let mut r = TcpReassembler::new(cfg);
        r.push_unbounded(t(1), key(), 0, PSH, b"aaaa").unwrap();
        // bytes 4..8 are lost for good.
        r.push_unbounded(t(1), key(), 8, PSH, b"cccc").unwrap();
        r.push_unbounded(t(1), key(), 16, PSH, b"eeee").unwrap();
        assert_eq!(data(&mut r), b"aaaa");
        r.push_unbounded(t(1), key(), 12, PSH, b"dddd").unwrap(); // queue full: skip 4..8
        assert_eq!(data(&mut r), b"aaaaccccddddeeee");
        let s = r.stream(&key()).unwrap();
        assert!(s.take_resynced());
        assert!(!s.take_resynced(), "reported once");
        // The late retransmission of the skipped hole is now old.
        r.push_unbounded(t(1), key(), 4, PSH, b"bbbb").unwrap();
        assert_eq!(data(&mut r), b"aaaaccccddddeeee");
    }

    #[test]
    fn buffer_full_drops_unconsumed_bytes() {
        let cfg = TcpConfig {
            max_buffered_bytes: 16,
            ..TcpConfig::default()
        };
        let mut r = TcpReassembler::new(cfg);
        r.push_unbounded(t(1), key(), 0, PSH, b"0123456789")
            .unwrap();
        assert_eq!(
            r.push_unbounded(t(1), key(), 10, PSH, b"abcdefghij"),
            Err(TcpError::BufferFull)
        );
        assert_eq!(data(&mut r), b"abcdefghij");
        assert!(r.stream(&key()).unwrap().take_resynced());
        // Out of order within the budget waits; beyond it the hole is skipped, and with the
        // queued bytes now in order the unconsumed ones give way.
        r.stream(&key()).unwrap().consume(8);
        r.push_unbounded(t(1), key(), 40, PSH, b"XYZ").unwrap();
        assert_eq!(data(&mut r), b"ij");
        assert_eq!(
            r.push_unbounded(t(1), key(), 50, PSH, b"0123456789ab"),
            Err(TcpError::BufferFull)
        );
        assert_eq!(data(&mut r), b"0123456789ab");
        assert!(r.stream(&key()).unwrap().take_resynced());
    }

    #[test]
    fn fin_after_data_and_rst() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_unbounded(t(1), key(), 0, FIN, b"bye").unwrap();
        let s = r.stream(&key()).unwrap();
        assert!(s.is_finished());
        assert_eq!(s.data(), b"bye");

        // FIN beyond a hole waits for the hole.
        let k2 = key().reverse();
        r.push_unbounded(t(1), k2, 0, PSH, b"ab").unwrap();
        r.push_unbounded(t(1), k2, 4, FIN, b"ef").unwrap();
        assert!(!r.stream(&k2).unwrap().is_finished());
        r.push_unbounded(t(1), k2, 2, PSH, b"cd").unwrap();
        let s = r.stream(&k2).unwrap();
        assert!(s.is_finished());
        assert_eq!(s.data(), b"abcdef");

        // RST flushes what is queued.
        r.remove(&k2);
        r.push_unbounded(t(1), k2, 0, PSH, b"ab").unwrap();
        r.push_unbounded(t(1), k2, 4, PSH, b"ef").unwrap();
        r.push_unbounded(t(1), k2, 9, RST, b"").unwrap();
        let s = r.stream(&k2).unwrap();
        assert!(s.is_finished());
        assert!(s.take_resynced());
        assert_eq!(s.data(), b"abef");
    }

    #[test]
    fn new_syn_on_same_ports_restarts() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_unbounded(t(1), key(), 99, SYN, b"").unwrap();
        r.push_unbounded(t(1), key(), 100, FIN, b"old").unwrap();
        r.push_unbounded(t(2), key(), 5000, SYN, b"").unwrap();
        r.push_unbounded(t(2), key(), 5001, PSH, b"new").unwrap();
        let s = r.stream(&key()).unwrap();
        assert!(s.take_resynced());
        assert!(!s.is_finished());
        assert_eq!(s.data(), b"new");
    }

    #[test]
    fn table_full_and_expiry() {
        let cfg = TcpConfig {
            max_flows: 1,
            idle_timeout: Duration::from_secs(10),
            ..TcpConfig::default()
        };
        let mut r = TcpReassembler::new(cfg);
        r.push_unbounded(t(100), key(), 0, PSH, b"a").unwrap();
        assert_eq!(
            r.push_unbounded(t(100), key().reverse(), 0, PSH, b"b"),
            Err(TcpError::TableFull)
        );
        r.push_unbounded(t(105), key(), 1, PSH, b"b").unwrap();
        assert_eq!(r.next_deadline(), Some(t(115)));
        r.push_unbounded(t(103), key(), 2, PSH, b"c").unwrap(); // time stepped back: deadline unchanged
        assert_eq!(r.next_deadline(), Some(t(115)));
        assert_eq!(r.expire(t(114)), 0);
        assert_eq!(r.expire(t(115)), 1);
        assert!(r.is_empty());
        assert_eq!(r.next_deadline(), None);
        r.push_unbounded(t(120), key().reverse(), 0, PSH, b"b")
            .unwrap();
        assert_eq!(r.len(), 1);
    }

    proptest::proptest! {
        /// Any segmentation, any order, any duplicates: the stream comes out whole.
        #[test]
        fn reorders_back_into_the_stream(
            isn in proptest::prelude::any::<u32>(),
            cuts in proptest::collection::vec(1usize..40, 1..20),
            order in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..40),
        ) {
            let text: Vec<u8> = (0..cuts.iter().sum::<usize>()).map(|i| (i % 251) as u8).collect();
            let mut segs = Vec::new();
            let mut at = 0;
            for c in &cuts {
                segs.push((isn.wrapping_add(at as u32), &text[at..at + c]));
                at += c;
            }
            let mut r = TcpReassembler::new(TcpConfig::default());
            // The first segment pins the start; then a shuffled, duplicated rest.
            r.push_unbounded(t(1), key(), segs[0].0, PSH, segs[0].1).unwrap();
            for i in &order {
                let (seq, d) = segs[i.index(segs.len())];
                r.push_unbounded(t(1), key(), seq, PSH, d).unwrap();
            }
            for &(seq, d) in &segs {
                r.push_unbounded(t(1), key(), seq, PSH, d).unwrap();
            }
            proptest::prop_assert_eq!(data(&mut r), text);
            proptest::prop_assert!(!r.stream(&key()).unwrap().take_resynced());
        }

        /// Garbage never panics and never exceeds the byte budget.
        #[test]
        fn bounded_under_garbage(
            segs in proptest::collection::vec(
                (proptest::prelude::any::<u32>(), proptest::prelude::any::<u8>(), proptest::collection::vec(0u8..3, 0..64)),
                0..200,
            ),
        ) {
            let cfg = TcpConfig { max_buffered_bytes: 512, max_out_of_order: 8, ..TcpConfig::default() };
            let mut r = TcpReassembler::new(cfg);
            for (seq, flags, d) in segs {
                let _ = r.push_unbounded(t(1), key(), seq % 1024, TcpFlags(flags), &d);
                if let Some(s) = r.stream(&key()) {
                    proptest::prop_assert!(s.len() <= 512);
                    let n = s.len() / 2;
                    s.consume(n);
                }
            }
        }
    }

    #[test]
    fn consume_compacts() {
        let mut s = ByteStream::default();
        s.extend(&[7u8; 10_000]);
        s.consume(3000);
        assert_eq!(s.start, 3000, "below half: just a cursor");
        s.consume(3000);
        assert_eq!((s.start, s.buf.len()), (0, 4000), "past half: drained");
        s.consume(4000);
        assert_eq!((s.start, s.buf.len()), (0, 0));
    }

    impl TcpReassembler {
        /// The tables agree: `held` is every flow's bytes, `holding` the flows with any.
        fn check(&self) {
            let sum: usize = self.flows.values().map(Flow::held).sum();
            assert_eq!(self.held, sum, "held bytes drifted from the flows' buffers");
            assert_eq!(self.by_age.len(), self.flows.len());
            let holding = self.flows.values().filter(|f| f.held() > 0).count();
            assert_eq!(self.holding.len(), holding);
        }

        fn push_within(
            &mut self,
            limit: usize,
            ts: Timestamp,
            key: FlowKey,
            seq: u32,
            payload: &[u8],
        ) -> Result<(), TcpError> {
            let r = self.push(ts, key, seq, PSH, payload, &mut Budget::new(limit, &mut []));
            self.check();
            assert!(self.held <= limit, "{} bytes held over {limit}", self.held);
            r
        }
    }

    fn flow(i: u32) -> FlowKey {
        FlowKey {
            src: SocketAddr::new([10, 1, (i >> 8) as u8, i as u8].into(), 40000),
            dst: "10.0.0.2:5060".parse().unwrap(),
        }
    }

    /// 1,000 flows each part way into a 250 KB message, sent in 1,400-byte segments in turn:
    /// the per-flow limits alone let them hold 262 MB; the budget holds them to 64 MiB.
    #[test]
    fn budget_bounds_a_thousand_partial_messages() {
        const FLOWS: u32 = 1000;
        const MESSAGE: usize = 250_000;
        const SEGMENT: usize = 1400;
        let seg = [b'a'; SEGMENT];
        let run = |limit: usize| {
            let mut r = TcpReassembler::new(TcpConfig::default());
            let mut peak = 0;
            for round in 0..MESSAGE.div_ceil(SEGMENT) {
                let at = round * SEGMENT;
                let len = SEGMENT.min(MESSAGE - at);
                for i in 0..FLOWS {
                    let ts = Timestamp::from_nanos(round as u64 * 1_000_000 + i as u64);
                    let _ = r.push_within(limit, ts, flow(i), at as u32, &seg[..len]);
                    peak = peak.max(r.held_bytes());
                }
            }
            (r, peak)
        };
        let (free, free_peak) = run(usize::MAX);
        // Each buffer doubled up to the 256 KiB per-flow limit.
        assert_eq!(free_peak, FLOWS as usize * 256 * 1024);
        assert_eq!(free.evicted_for_memory(), 0);
        let limit = 64 * 1024 * 1024;
        let (bounded, peak) = run(limit);
        assert!(peak <= limit, "peak {peak} over the budget {limit}");
        assert!(bounded.evicted_for_memory() > 0);
        eprintln!(
            "1,000 flows x 250 KB partial: {free_peak} bytes held without a budget, {peak} with {limit} ({} flows evicted)",
            bounded.evicted_for_memory()
        );
    }

    #[test]
    fn budget_evicts_the_idlest_flow_first_and_never_the_one_pushed_to() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        let (a, b, c) = (flow(1), flow(2), flow(3));
        r.push_within(300, t(1), a, 0, &[1; 100]).unwrap();
        r.push_within(300, t(2), b, 0, &[2; 100]).unwrap();
        r.push_within(300, t(3), c, 0, &[3; 100]).unwrap();
        assert_eq!(r.held_bytes(), 300);
        // `a` is the idlest but is pushed to: `b` goes, then `a` grows by what it needs.
        r.push_within(300, t(4), a, 100, &[1; 100]).unwrap();
        assert!(r.stream(&b).is_none(), "the idlest flow is evicted");
        assert_eq!(r.stream(&a).unwrap().data(), &[1; 200][..]);
        assert_eq!(r.stream(&c).unwrap().len(), 100);
        assert_eq!(r.evicted_for_memory(), 1);
        // A flow that consumed its bytes holds nothing once settled, and is not evicted.
        r.stream(&c).unwrap().consume(100);
        r.settle(&c);
        assert_eq!(r.held_bytes(), 200);
        r.check();
        r.push_within(300, t(5), b, 0, &[2; 100]).unwrap();
        assert_eq!(r.evicted_for_memory(), 1);
        // More than the whole budget: everything idler goes, then the segment is refused and
        // the flow's own bytes too.
        assert_eq!(
            r.push_within(300, t(6), a, 200, &[1; 400]),
            Err(TcpError::OverBudget)
        );
        assert_eq!(r.evicted_for_memory(), 2, "b evicted; c held nothing");
        let s = r.stream(&a).unwrap();
        assert!(s.is_empty() && s.take_resynced());
        assert_eq!(r.held_bytes(), 0);
        // The flow carries on with its next bytes.
        r.push_within(300, t(7), a, 600, b"INVITE").unwrap();
        assert_eq!(r.stream(&a).unwrap().data(), b"INVITE");
    }

    #[test]
    fn budget_refuses_out_of_order_segments_it_cannot_queue() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_within(100, t(1), key(), 0, &[1; 60]).unwrap();
        assert_eq!(
            r.push_within(100, t(1), key(), 100, &[3; 50]),
            Err(TcpError::OverBudget)
        );
        assert_eq!(r.held_bytes(), 60, "the segment was not queued");
        // The hole fills and the stream goes on; the refused bytes are simply missing.
        r.push_within(100, t(1), key(), 60, &[2; 40]).unwrap();
        assert_eq!(r.stream(&key()).unwrap().len(), 100);
        assert!(!r.stream(&key()).unwrap().take_resynced());
    }

    #[test]
    fn discard_drops_bytes_as_they_arrive() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push_unbounded(t(1), key(), 0, PSH, b"HEAD|body").unwrap();
        let s = r.stream(&key()).unwrap();
        // A message of 5 + 20 bytes: 9 are here, 16 to come.
        s.discard(25);
        assert!(s.is_empty());
        assert_eq!(s.discarding(), 16);
        r.push_unbounded(t(1), key(), 9, PSH, &[b'x'; 10]).unwrap();
        assert!(r.stream(&key()).unwrap().is_empty());
        r.push_unbounded(t(1), key(), 19, PSH, b"xxxxxxNEXT")
            .unwrap();
        let s = r.stream(&key()).unwrap();
        assert_eq!((s.data(), s.discarding()), (&b"NEXT"[..], 0));
        // A skipped hole forgets the discard: where the message ends is unknown past it.
        s.discard(100);
        let cfg = TcpConfig {
            max_out_of_order: 1,
            ..TcpConfig::default()
        };
        let mut r2 = TcpReassembler::new(cfg);
        r2.push_unbounded(t(1), key(), 0, PSH, b"HEAD").unwrap();
        r2.stream(&key()).unwrap().discard(100);
        r2.push_unbounded(t(1), key(), 50, PSH, b"a").unwrap();
        // The queue is full: the hole before `a` is skipped and `a` kept.
        r2.push_unbounded(t(1), key(), 60, PSH, b"SIP/2.0").unwrap();
        let s = r2.stream(&key()).unwrap();
        assert_eq!((s.data(), s.discarding()), (&b"a"[..], 0));
    }

    proptest::proptest! {
        /// Many flows, garbage segments, a small budget: the bytes held never pass it and the
        /// tables always agree with the flows' buffers.
        #[test]
        fn budget_holds_under_garbage(
            segs in proptest::collection::vec(
                (0u32..6, 0u32..2048, proptest::prelude::any::<u8>(), 0usize..300),
                0..300,
            ),
            limit in 0usize..2048,
        ) {
            let cfg = TcpConfig { max_buffered_bytes: 700, max_out_of_order: 4, ..TcpConfig::default() };
            let mut r = TcpReassembler::new(cfg);
            let data = [b'z'; 300];
            for (n, (f, seq, flags, len)) in segs.into_iter().enumerate() {
                let ts = Timestamp::from_nanos(n as u64);
                let _ = r.push(ts, flow(f), seq, TcpFlags(flags), &data[..len], &mut Budget::new(limit, &mut []));
                r.check();
                proptest::prop_assert!(r.held_bytes() <= limit);
                if n % 3 == 0 && let Some(s) = r.stream(&flow(f)) {
                    let half = s.len() / 2;
                    s.consume(half);
                    r.settle(&flow(f));
                    r.check();
                }
            }
        }
    }
}
