//! One-direction TCP stream reassembly for a passive observer, with bounded memory.
//! Sequence numbers compare by serial arithmetic (RFC 9293 §3.4, RFC 1982 §3.2).

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
}

impl core::fmt::Display for TcpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TcpError::BufferFull => "tcp flow buffer full",
            TcpError::TableFull => "tcp flow table full",
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

    fn extend(&mut self, data: &[u8]) {
        if self.start == self.buf.len() {
            self.clear();
        }
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

    fn ingest(&mut self, cfg: &TcpConfig, seq: u32, data: &[u8]) -> Result<(), TcpError> {
        let mut result = Ok(());
        loop {
            let off = seq.wrapping_sub(self.next_seq) as i32;
            if off <= 0 {
                // Retransmitted bytes before `next_seq` are trimmed.
                let skip = off.unsigned_abs() as usize;
                if skip >= data.len() {
                    return result;
                }
                let delivered = self.deliver(cfg, &data[skip..]);
                let drained = self.drain_ooo(cfg);
                return result.and(delivered).and(drained);
            }
            let fits = self.ooo.len() < cfg.max_out_of_order
                && self.stream.len() + self.ooo_bytes + data.len() <= cfg.max_buffered_bytes;
            if fits {
                self.queue(seq, data);
                return result;
            }
            if self.ooo.is_empty() {
                // No room to wait for the hole in front of this segment: jump over it.
                self.next_seq = seq;
                self.stream.resynced = true;
                continue;
            }
            result = result.and(self.skip_hole(cfg));
        }
    }

    fn queue(&mut self, seq: u32, data: &[u8]) {
        let next = self.next_seq;
        let rel = |s: u32| s.wrapping_sub(next);
        let at = self.ooo.partition_point(|s| rel(s.seq) < rel(seq));
        match self.ooo.get_mut(at) {
            Some(same) if same.seq == seq => {
                if data.len() > same.data.len() {
                    self.ooo_bytes = self.ooo_bytes - same.data.len() + data.len();
                    same.data = data.to_vec();
                }
            }
            _ => {
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
    }

    /// Appends in-order bytes. On overflow the unconsumed bytes go: a parser that has not found a
    /// message in a full buffer never will, and the new bytes may hold the next message start.
    fn deliver(&mut self, cfg: &TcpConfig, data: &[u8]) -> Result<(), TcpError> {
        let room = cfg.max_buffered_bytes.saturating_sub(self.ooo_bytes);
        let mut result = Ok(());
        if self.stream.len() + data.len() > room {
            self.stream.clear();
            self.stream.resynced = true;
            result = Err(TcpError::BufferFull);
        }
        let keep = &data[data.len().saturating_sub(room)..];
        self.stream.extend(keep);
        self.next_seq = self.next_seq.wrapping_add(data.len() as u32);
        result
    }

    /// Delivers queued segments that became contiguous.
    fn drain_ooo(&mut self, cfg: &TcpConfig) -> Result<(), TcpError> {
        let mut result = Ok(());
        while let Some(first) = self.ooo.first() {
            if seq_lt(self.next_seq, first.seq) {
                break;
            }
            let seg = self.ooo.remove(0);
            self.ooo_bytes -= seg.data.len();
            let skip = self.next_seq.wrapping_sub(seg.seq) as usize;
            if skip < seg.data.len() {
                result = result.and(self.deliver(cfg, &seg.data[skip..]));
            }
        }
        result
    }

    /// Gives up on the hole before the first queued segment.
    fn skip_hole(&mut self, cfg: &TcpConfig) -> Result<(), TcpError> {
        let Some(first) = self.ooo.first() else {
            return Ok(());
        };
        self.next_seq = first.seq;
        self.stream.resynced = true;
        self.drain_ooo(cfg)
    }

    fn check_fin(&mut self) {
        if self.fin_seq.is_some_and(|fin| !seq_lt(self.next_seq, fin)) {
            self.stream.finished = true;
        }
    }
}

/// Reassembles each direction of many TCP flows into byte streams.
pub struct TcpReassembler {
    cfg: TcpConfig,
    flows: HashMap<FlowKey, Flow>,
    by_age: BTreeMap<Age, FlowKey>,
    counter: u64,
}

impl TcpReassembler {
    pub fn new(cfg: TcpConfig) -> Self {
        TcpReassembler {
            cfg,
            flows: HashMap::new(),
            by_age: BTreeMap::new(),
            counter: 0,
        }
    }

    /// Adds a segment of one direction. A flow picked up mid-stream (no SYN seen) starts at the
    /// first segment's seq. Retransmitted/overlapping bytes are trimmed; out-of-order segments wait
    /// (bounded) until the hole fills. If a hole persists (out-of-order queue full or buffer full),
    /// the hole is skipped and the stream marked `resynced`. FIN/RST end the flow after its data.
    ///
    /// Segments without payload or SYN never create a flow (pure ACKs would fill the table).
    pub fn push(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
    ) -> Result<(), TcpError> {
        let data_seq = if flags.syn() {
            seq.wrapping_add(1)
        } else {
            seq
        };
        self.counter += 1;
        let stamp = (ts, self.counter);

        let flow = match self.flows.get_mut(&key) {
            Some(flow) => {
                // Packet time can step back in merged captures; age only moves forward.
                if ts > flow.age.0 {
                    self.by_age.remove(&flow.age);
                    self.by_age.insert(stamp, key);
                    flow.age = stamp;
                }
                if flags.syn() && flow.isn != Some(seq) {
                    if flow.isn.is_none() && flow.next_seq == data_seq {
                        flow.isn = Some(seq);
                    } else {
                        // A SYN with a new ISN: the ports were reused for a new connection.
                        *flow = Flow::new(seq, data_seq, flow.age);
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
                self.by_age.insert(stamp, key);
                let isn = flags.syn().then_some(seq);
                self.flows
                    .entry(key)
                    .or_insert_with(|| Flow::new_opt(isn, data_seq, stamp))
            }
        };

        if flow.stream.finished {
            return Ok(());
        }
        let mut result = Ok(());
        if !payload.is_empty() {
            result = flow.ingest(&self.cfg, data_seq, payload);
        }
        if flags.fin() && flow.fin_seq.is_none() {
            flow.fin_seq = Some(data_seq.wrapping_add(payload.len() as u32));
        }
        if flags.rst() {
            // Nothing more will come: hand over what is queued, holes and all.
            while !flow.ooo.is_empty() {
                result = result.and(flow.skip_hole(&self.cfg));
            }
            flow.stream.finished = true;
        }
        flow.check_fin();
        result
    }

    /// The contiguous, in-order bytes of a flow not yet consumed.
    pub fn stream(&mut self, key: &FlowKey) -> Option<&mut ByteStream> {
        self.flows.get_mut(key).map(|f| &mut f.stream)
    }

    /// Drops flows idle for `idle_timeout`; returns how many.
    pub fn expire(&mut self, ts: Timestamp) -> usize {
        let mut dropped = 0;
        while let Some((&(last, _), _)) = self.by_age.first_key_value() {
            if last + self.cfg.idle_timeout > ts {
                break;
            }
            if let Some((_, key)) = self.by_age.pop_first() {
                self.flows.remove(&key);
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
        if let Some(flow) = self.flows.remove(key) {
            self.by_age.remove(&flow.age);
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        r.push(t(1), key(), 1000, PSH, b"INVITE sip:").unwrap();
        r.push(t(1), key(), 1011, PSH, b"bob SIP/2.0\r\n").unwrap();
        assert_eq!(data(&mut r), b"INVITE sip:bob SIP/2.0\r\n");
        let s = r.stream(&key()).unwrap();
        assert!(s.started_mid_stream());
        assert!(!s.take_resynced());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn syn_then_data() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push(t(1), key(), 99, SYN, b"").unwrap();
        r.push(t(1), key(), 99, SYN, b"").unwrap(); // retransmitted SYN
        r.push(t(1), key(), 100, PSH, b"OPTIONS").unwrap();
        assert_eq!(data(&mut r), b"OPTIONS");
        assert!(!r.stream(&key()).unwrap().started_mid_stream());
    }

    #[test]
    fn pure_acks_create_no_flow() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push(t(1), key(), 5, NONE, b"").unwrap();
        r.push(t(1), key(), 5, FIN, b"").unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn out_of_order() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push(t(1), key(), 0, PSH, b"AB").unwrap();
        r.push(t(1), key(), 6, PSH, b"GH").unwrap();
        r.push(t(1), key(), 4, PSH, b"EF").unwrap();
        assert_eq!(data(&mut r), b"AB");
        r.push(t(1), key(), 2, PSH, b"CD").unwrap();
        assert_eq!(data(&mut r), b"ABCDEFGH");
        assert!(!r.stream(&key()).unwrap().take_resynced());
    }

    #[test]
    fn retransmission_overlap_is_trimmed() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push(t(1), key(), 10, PSH, b"0123456789").unwrap();
        r.push(t(1), key(), 10, PSH, b"0123456789").unwrap(); // full retransmission
        r.push(t(1), key(), 15, PSH, b"56789abcde").unwrap(); // partial overlap
        r.push(t(1), key(), 30, PSH, b"klm").unwrap(); // queued
        r.push(t(1), key(), 28, PSH, b"ijklmn").unwrap(); // queued, overlaps the one above
        r.push(t(1), key(), 20, PSH, b"abcdefgh").unwrap(); // fills the hole
        assert_eq!(data(&mut r), b"0123456789abcdefghijklmn");
    }

    #[test]
    fn wraps_at_2_pow_32() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push(t(1), key(), u32::MAX - 3, PSH, b"abcd").unwrap();
        // Out of order across the wrap: seq 4 arrives before seq 0.
        r.push(t(1), key(), 4, PSH, b"ijkl").unwrap();
        r.push(t(1), key(), u32::MAX - 1, PSH, b"cdefgh").unwrap(); // overlaps the first segment
        assert_eq!(data(&mut r), b"abcdefghijkl");
        r.push(t(1), key(), 2, PSH, b"ghij").unwrap(); // old bytes
        assert_eq!(data(&mut r), b"abcdefghijkl");
    }

    #[test]
    fn two_messages_coalesced() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        let two = b"ACK sip:a SIP/2.0\r\n\r\nBYE sip:a SIP/2.0\r\n\r\n";
        r.push(t(1), key(), 1, PSH, two).unwrap();
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
        r.push(t(1), key(), 7, PSH, b"SIP/2.0 200").unwrap();
        assert_eq!(data(&mut r), b"SIP/2.0 200");
        r.push(t(1), key(), 18, PSH, b" OK\r\nContent-").unwrap();
        r.push(t(1), key(), 31, PSH, b"Length: 0\r\n\r\n").unwrap();
        assert_eq!(data(&mut r), b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn hole_skip_marks_resynced() {
        let cfg = TcpConfig {
            max_out_of_order: 2,
            ..TcpConfig::default()
        };
        let mut r = TcpReassembler::new(cfg);
        r.push(t(1), key(), 0, PSH, b"aaaa").unwrap();
        // bytes 4..8 are lost for good.
        r.push(t(1), key(), 8, PSH, b"cccc").unwrap();
        r.push(t(1), key(), 16, PSH, b"eeee").unwrap();
        assert_eq!(data(&mut r), b"aaaa");
        r.push(t(1), key(), 12, PSH, b"dddd").unwrap(); // queue full: skip 4..8
        assert_eq!(data(&mut r), b"aaaaccccddddeeee");
        let s = r.stream(&key()).unwrap();
        assert!(s.take_resynced());
        assert!(!s.take_resynced(), "reported once");
        // The late retransmission of the skipped hole is now old.
        r.push(t(1), key(), 4, PSH, b"bbbb").unwrap();
        assert_eq!(data(&mut r), b"aaaaccccddddeeee");
    }

    #[test]
    fn buffer_full_drops_unconsumed_bytes() {
        let cfg = TcpConfig {
            max_buffered_bytes: 16,
            ..TcpConfig::default()
        };
        let mut r = TcpReassembler::new(cfg);
        r.push(t(1), key(), 0, PSH, b"0123456789").unwrap();
        assert_eq!(
            r.push(t(1), key(), 10, PSH, b"abcdefghij"),
            Err(TcpError::BufferFull)
        );
        assert_eq!(data(&mut r), b"abcdefghij");
        assert!(r.stream(&key()).unwrap().take_resynced());
        // Out of order within the budget waits; beyond it the hole is skipped, and with the
        // queued bytes now in order the unconsumed ones give way.
        r.stream(&key()).unwrap().consume(8);
        r.push(t(1), key(), 40, PSH, b"XYZ").unwrap();
        assert_eq!(data(&mut r), b"ij");
        assert_eq!(
            r.push(t(1), key(), 50, PSH, b"0123456789ab"),
            Err(TcpError::BufferFull)
        );
        assert_eq!(data(&mut r), b"0123456789ab");
        assert!(r.stream(&key()).unwrap().take_resynced());
    }

    #[test]
    fn fin_after_data_and_rst() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push(t(1), key(), 0, FIN, b"bye").unwrap();
        let s = r.stream(&key()).unwrap();
        assert!(s.is_finished());
        assert_eq!(s.data(), b"bye");

        // FIN beyond a hole waits for the hole.
        let k2 = key().reverse();
        r.push(t(1), k2, 0, PSH, b"ab").unwrap();
        r.push(t(1), k2, 4, FIN, b"ef").unwrap();
        assert!(!r.stream(&k2).unwrap().is_finished());
        r.push(t(1), k2, 2, PSH, b"cd").unwrap();
        let s = r.stream(&k2).unwrap();
        assert!(s.is_finished());
        assert_eq!(s.data(), b"abcdef");

        // RST flushes what is queued.
        r.remove(&k2);
        r.push(t(1), k2, 0, PSH, b"ab").unwrap();
        r.push(t(1), k2, 4, PSH, b"ef").unwrap();
        r.push(t(1), k2, 9, RST, b"").unwrap();
        let s = r.stream(&k2).unwrap();
        assert!(s.is_finished());
        assert!(s.take_resynced());
        assert_eq!(s.data(), b"abef");
    }

    #[test]
    fn new_syn_on_same_ports_restarts() {
        let mut r = TcpReassembler::new(TcpConfig::default());
        r.push(t(1), key(), 99, SYN, b"").unwrap();
        r.push(t(1), key(), 100, FIN, b"old").unwrap();
        r.push(t(2), key(), 5000, SYN, b"").unwrap();
        r.push(t(2), key(), 5001, PSH, b"new").unwrap();
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
        r.push(t(100), key(), 0, PSH, b"a").unwrap();
        assert_eq!(
            r.push(t(100), key().reverse(), 0, PSH, b"b"),
            Err(TcpError::TableFull)
        );
        r.push(t(105), key(), 1, PSH, b"b").unwrap();
        assert_eq!(r.next_deadline(), Some(t(115)));
        r.push(t(103), key(), 2, PSH, b"c").unwrap(); // time stepped back: deadline unchanged
        assert_eq!(r.next_deadline(), Some(t(115)));
        assert_eq!(r.expire(t(114)), 0);
        assert_eq!(r.expire(t(115)), 1);
        assert!(r.is_empty());
        assert_eq!(r.next_deadline(), None);
        r.push(t(120), key().reverse(), 0, PSH, b"b").unwrap();
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
            r.push(t(1), key(), segs[0].0, PSH, segs[0].1).unwrap();
            for i in &order {
                let (seq, d) = segs[i.index(segs.len())];
                r.push(t(1), key(), seq, PSH, d).unwrap();
            }
            for &(seq, d) in &segs {
                r.push(t(1), key(), seq, PSH, d).unwrap();
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
                let _ = r.push(t(1), key(), seq % 1024, TcpFlags(flags), &d);
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
}
