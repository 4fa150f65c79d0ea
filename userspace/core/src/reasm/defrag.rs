//! IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5) fragment reassembly with bounded memory: per
//! datagram and in count by [`DefragConfig`], in bytes with the other buffers by a [`Budget`].

use super::budget::{self, Budget, Evict};
use crate::time::Timestamp;
use crate::wire::Fragment;
use core::time::Duration;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragConfig {
    /// Incomplete datagrams held at once.
    pub max_datagrams: usize,
    /// Largest reassembled payload accepted.
    pub max_datagram_bytes: usize,
    /// Measured from a datagram's first fragment (RFC 8200 §4.5 uses 60 s; 30 s is Linux's default).
    pub timeout: Duration,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_datagrams: 1024,
            max_datagram_bytes: 65_535 + 64,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A whole datagram: `payload` starts with the transport (or IPv6 extension) header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassembled {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub payload: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefragError {
    /// The datagram would exceed `max_datagram_bytes`; it was dropped.
    TooLarge,
    /// Fragments disagree about some bytes or about the end; the datagram was dropped.
    Overlap,
    /// `max_datagrams` were in flight: the oldest was evicted to admit this one.
    TableFull,
    /// The memory budget had no room for the fragment even with every idler buffer evicted:
    /// the datagram was dropped.
    OverBudget,
}

impl core::fmt::Display for DefragError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DefragError::TooLarge => "datagram too large",
            DefragError::Overlap => "overlapping fragments",
            DefragError::TableFull => "fragment table full",
            DefragError::OverBudget => "fragments over the memory budget",
        })
    }
}

impl std::error::Error for DefragError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

/// Orders datagrams by first-fragment time; the counter breaks ties.
type Age = (Timestamp, u64);

struct Datagram {
    age: Age,
    buf: Vec<u8>,
    /// Received byte ranges, sorted, disjoint and not touching.
    have: Vec<(usize, usize)>,
    /// Set by the fragment without MF.
    total: Option<usize>,
}

/// Bytes of one entry of `Datagram::have`.
const RANGE_BYTES: usize = core::mem::size_of::<(usize, usize)>();

impl Datagram {
    fn complete(&self) -> bool {
        matches!((self.total, self.have.as_slice()), (Some(t), [(0, end)]) if *end == t)
    }

    /// Buffer bytes allocated: the payload so far and the list of ranges received.
    fn held(&self) -> usize {
        self.buf.capacity() + self.have.capacity() * RANGE_BYTES
    }
}

/// Reassembles fragments keyed by (src, dst, protocol, id).
///
/// When the table is full the oldest incomplete datagram is evicted so the new one is admitted
/// (old ones are the likeliest to be lost already), and `push` reports `TableFull` for the count.
pub struct Defragmenter {
    cfg: DefragConfig,
    datagrams: HashMap<Key, Datagram>,
    by_age: BTreeMap<Age, Key>,
    counter: u64,
    held: usize,
    evicted: u64,
}

/// The datagrams of a defragmenter other than the one being added to, as a budget holder.
struct Rest<'r> {
    datagrams: &'r mut HashMap<Key, Datagram>,
    by_age: &'r mut BTreeMap<Age, Key>,
    /// Every datagram's bytes, the one being added to included.
    held: &'r mut usize,
    evicted: &'r mut u64,
}

impl Evict for Rest<'_> {
    fn held_bytes(&self) -> usize {
        *self.held
    }

    fn idlest(&self) -> Option<Timestamp> {
        self.by_age.first_key_value().map(|(age, _)| age.0)
    }

    fn evict_idlest(&mut self) -> Option<usize> {
        let (_, key) = self.by_age.pop_first()?;
        let freed = self.datagrams.remove(&key).map_or(0, |d| d.held());
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

impl Defragmenter {
    pub fn new(cfg: DefragConfig) -> Self {
        Defragmenter {
            cfg,
            datagrams: HashMap::new(),
            by_age: BTreeMap::new(),
            counter: 0,
            held: 0,
            evicted: 0,
        }
    }

    /// Adds one fragment; returns the whole datagram payload (transport header included) when complete.
    /// Its bytes come out of `budget`, which evicts the oldest datagrams (and the other holders'
    /// idler buffers) to make room; this datagram goes last.
    ///
    /// On `Err(TableFull)` the fragment *was* stored (the oldest datagram was dropped instead).
    /// On `TooLarge`, `Overlap` and `OverBudget` the fragment's datagram is dropped.
    pub fn push(
        &mut self,
        ts: Timestamp,
        frag: &Fragment<'_>,
        budget: &mut Budget<'_>,
    ) -> Result<Option<Reassembled>, DefragError> {
        let key = Key {
            src: frag.src,
            dst: frag.dst,
            protocol: frag.protocol,
            id: frag.id,
        };
        let Some(end) = frag.offset.checked_add(frag.payload.len()) else {
            self.remove(&key);
            return Err(DefragError::TooLarge);
        };
        if end > self.cfg.max_datagram_bytes {
            self.remove(&key);
            return Err(DefragError::TooLarge);
        }
        // Offset 0 without MF is a whole datagram: nothing to hold.
        if frag.offset == 0 && !frag.more && !self.datagrams.contains_key(&key) {
            return Ok(Some(Reassembled {
                src: frag.src,
                dst: frag.dst,
                protocol: frag.protocol,
                payload: frag.payload.to_vec(),
            }));
        }

        let mut full = false;
        // The datagram is out of the tables while it is added to, so that the budget cannot
        // evict it; its bytes stay counted in `held`.
        let mut d = match self.datagrams.remove(&key) {
            Some(d) => {
                self.by_age.remove(&d.age);
                d
            }
            None => {
                if self.datagrams.len() >= self.cfg.max_datagrams {
                    full = true;
                    if let Some((_, oldest)) = self.by_age.pop_first()
                        && let Some(old) = self.datagrams.remove(&oldest)
                    {
                        self.held -= old.held();
                    }
                    if self.cfg.max_datagrams == 0 {
                        return Err(DefragError::TableFull);
                    }
                }
                self.counter += 1;
                Datagram {
                    age: (ts, self.counter),
                    buf: Vec::new(),
                    have: Vec::new(),
                    total: None,
                }
            }
        };

        let strict = frag.src.is_ipv6();
        let mut room = Room {
            budget,
            rest: Rest {
                datagrams: &mut self.datagrams,
                by_age: &mut self.by_age,
                held: &mut self.held,
                evicted: &mut self.evicted,
            },
        };
        let result = add(&mut d, frag, end, strict, &mut room);
        match result {
            Err(e) => {
                self.held -= d.held();
                Err(e)
            }
            Ok(()) if d.complete() => {
                self.held -= d.held();
                let mut payload = d.buf;
                payload.truncate(d.total.unwrap_or(0));
                let done = Reassembled {
                    src: key.src,
                    dst: key.dst,
                    protocol: key.protocol,
                    payload,
                };
                if full {
                    Err(DefragError::TableFull)
                } else {
                    Ok(Some(done))
                }
            }
            Ok(()) => {
                self.by_age.insert(d.age, key);
                self.datagrams.insert(key, d);
                if full {
                    Err(DefragError::TableFull)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Drops incomplete datagrams older than the timeout; returns how many were dropped.
    pub fn expire(&mut self, ts: Timestamp) -> usize {
        let mut dropped = 0;
        while let Some((&(first, _), _)) = self.by_age.first_key_value() {
            if first + self.cfg.timeout > ts {
                break;
            }
            if let Some((_, key)) = self.by_age.pop_first() {
                if let Some(d) = self.datagrams.remove(&key) {
                    self.held -= d.held();
                }
                dropped += 1;
            }
        }
        dropped
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.by_age
            .first_key_value()
            .map(|(&(first, _), _)| first + self.cfg.timeout)
    }

    /// Incomplete datagrams held.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Datagrams evicted to keep within the memory budget, since the start.
    pub fn evicted_for_memory(&self) -> u64 {
        self.evicted
    }

    fn remove(&mut self, key: &Key) -> Option<Datagram> {
        let d = self.datagrams.remove(key)?;
        self.by_age.remove(&d.age);
        self.held -= d.held();
        Some(d)
    }
}

impl Evict for Defragmenter {
    /// Buffer bytes of every incomplete datagram.
    fn held_bytes(&self) -> usize {
        self.held
    }

    /// The oldest datagram by its first fragment: the likeliest to be lost already.
    fn idlest(&self) -> Option<Timestamp> {
        self.by_age.first_key_value().map(|(age, _)| age.0)
    }

    fn evict_idlest(&mut self) -> Option<usize> {
        Rest {
            datagrams: &mut self.datagrams,
            by_age: &mut self.by_age,
            held: &mut self.held,
            evicted: &mut self.evicted,
        }
        .evict_idlest()
    }
}

/// Merges one fragment into `d`. `strict` applies RFC 5722 §4: any overlap that is not an exact
/// duplicate drops the datagram. Otherwise overlap is fine when the bytes agree.
fn add(
    d: &mut Datagram,
    frag: &Fragment<'_>,
    end: usize,
    strict: bool,
    room: &mut Room<'_, '_, '_>,
) -> Result<(), DefragError> {
    let start = frag.offset;
    // The last fragment fixes the length; everything must agree with it (RFC 8200 §4.5).
    if !frag.more {
        match d.total {
            Some(t) if t != end => return Err(DefragError::Overlap),
            _ => d.total = Some(end),
        }
        if d.have.last().is_some_and(|&(_, e)| e > end) {
            return Err(DefragError::Overlap);
        }
    } else if d.total.is_some_and(|t| end > t) {
        return Err(DefragError::Overlap);
    }
    if start == end {
        return Ok(());
    }

    let mut overlapped = false;
    let mut exact = false;
    for &(s, e) in &d.have {
        if s < end && start < e {
            overlapped = true;
            let (lo, hi) = (s.max(start), e.min(end));
            if d.buf[lo..hi] != frag.payload[lo - start..hi - start] {
                return Err(DefragError::Overlap);
            }
            exact |= s <= start && end <= e;
        }
    }
    if overlapped && strict && !exact {
        return Err(DefragError::Overlap);
    }
    if d.buf.len() < end {
        let cap = d.buf.capacity();
        if end > cap {
            if !room.take(end - cap) {
                return Err(DefragError::OverBudget);
            }
            // Exact, so the budget saw the true figure.
            d.buf.reserve_exact(end - d.buf.len());
        }
        d.buf.resize(end, 0);
    }
    d.buf[start..end].copy_from_slice(frag.payload);

    // Insert and merge ranges that overlap or touch.
    let mut merged = (start, end);
    d.have.retain(|&(s, e)| {
        if s <= merged.1 && merged.0 <= e {
            merged = (merged.0.min(s), merged.1.max(e));
            false
        } else {
            true
        }
    });
    if d.have.len() == d.have.capacity() {
        let more = d.have.capacity().max(4);
        if !room.take(more * RANGE_BYTES) {
            return Err(DefragError::OverBudget);
        }
        d.have.reserve_exact(more);
    }
    let at = d.have.partition_point(|&(s, _)| s < merged.0);
    d.have.insert(at, merged);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    impl Defragmenter {
        fn push_unbounded(
            &mut self,
            ts: Timestamp,
            frag: &Fragment<'_>,
        ) -> Result<Option<Reassembled>, DefragError> {
            self.push(ts, frag, &mut Budget::unlimited())
        }
    }

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    /// 24 bytes: a UDP header then "REGISTER sip:x SIP/2.0" cut to fit.
    const DATAGRAM: &[u8; 24] = b"\x13\xc4\x13\xc4\x00\x18\x00\x00REGISTER sip:x S";

    fn frag(offset: usize, len: usize, more: bool) -> Fragment<'static> {
        Fragment {
            src: SRC,
            dst: DST,
            id: 7,
            protocol: 17,
            offset,
            more,
            payload: &DATAGRAM[offset..offset + len],
        }
    }

    fn t(s: u64) -> Timestamp {
        Timestamp::from_secs_nanos(s, 0)
    }

    fn expect_whole(r: Result<Option<Reassembled>, DefragError>) {
        let r = r.expect("no error").expect("complete");
        assert_eq!((r.src, r.dst, r.protocol), (SRC, DST, 17));
        assert_eq!(r.payload, DATAGRAM);
    }

    #[test]
    fn in_order() {
        let mut d = Defragmenter::new(DefragConfig::default());
        assert_eq!(d.push_unbounded(t(1), &frag(0, 8, true)), Ok(None));
        assert_eq!(d.push_unbounded(t(1), &frag(8, 8, true)), Ok(None));
        assert_eq!(d.len(), 1);
        expect_whole(d.push_unbounded(t(1), &frag(16, 8, false)));
        assert_eq!(d.len(), 0);
        assert_eq!(d.next_deadline(), None);
    }

    #[test]
    fn reverse_order() {
        let mut d = Defragmenter::new(DefragConfig::default());
        assert_eq!(d.push_unbounded(t(1), &frag(16, 8, false)), Ok(None));
        assert_eq!(d.push_unbounded(t(1), &frag(8, 8, true)), Ok(None));
        expect_whole(d.push_unbounded(t(1), &frag(0, 8, true)));
    }

    #[test]
    fn duplicate_is_harmless() {
        let mut d = Defragmenter::new(DefragConfig::default());
        assert_eq!(d.push_unbounded(t(1), &frag(0, 16, true)), Ok(None));
        assert_eq!(d.push_unbounded(t(1), &frag(0, 16, true)), Ok(None));
        expect_whole(d.push_unbounded(t(1), &frag(16, 8, false)));
    }

    #[test]
    fn overlap() {
        // Conflicting bytes: dropped, for IPv4 too.
        let mut d = Defragmenter::new(DefragConfig::default());
        assert_eq!(d.push_unbounded(t(1), &frag(0, 16, true)), Ok(None));
        let mut other = *DATAGRAM;
        other[9] = b'X';
        let bad = Fragment {
            offset: 8,
            payload: &other[8..16],
            ..frag(8, 8, true)
        };
        assert_eq!(d.push_unbounded(t(1), &bad), Err(DefragError::Overlap));
        assert_eq!(d.len(), 0);

        // IPv4 overlap with identical bytes merges.
        assert_eq!(d.push_unbounded(t(1), &frag(0, 16, true)), Ok(None));
        expect_whole(d.push_unbounded(t(1), &frag(8, 16, false)));

        // IPv6: any partial overlap drops the datagram (RFC 5722 §4).
        let six: IpAddr = "2001:db8::1".parse().unwrap();
        let f6 = |offset, len, more| Fragment {
            src: six,
            dst: six,
            ..frag(offset, len, more)
        };
        assert_eq!(d.push_unbounded(t(1), &f6(0, 16, true)), Ok(None));
        assert_eq!(
            d.push_unbounded(t(1), &f6(0, 16, true)),
            Ok(None),
            "exact duplicate"
        );
        assert_eq!(
            d.push_unbounded(t(1), &f6(8, 16, false)),
            Err(DefragError::Overlap)
        );
        assert_eq!(d.len(), 0);

        // Two different ends.
        assert_eq!(d.push_unbounded(t(1), &frag(16, 8, false)), Ok(None));
        assert_eq!(
            d.push_unbounded(t(1), &frag(8, 8, false)),
            Err(DefragError::Overlap)
        );
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn timeout() {
        let mut d = Defragmenter::new(DefragConfig::default());
        assert_eq!(d.push_unbounded(t(100), &frag(0, 8, true)), Ok(None));
        assert_eq!(
            d.push_unbounded(
                t(110),
                &Fragment {
                    id: 8,
                    ..frag(0, 8, true)
                }
            ),
            Ok(None)
        );
        assert_eq!(d.next_deadline(), Some(t(130)));
        assert_eq!(d.expire(t(129)), 0);
        assert_eq!(d.expire(t(130)), 1);
        assert_eq!(d.next_deadline(), Some(t(140)));
        // A late fragment of the expired datagram starts a new, incomplete one.
        assert_eq!(d.push_unbounded(t(131), &frag(8, 16, false)), Ok(None));
        assert_eq!(d.expire(t(200)), 2);
        assert!(d.is_empty());
    }

    #[test]
    fn table_full_evicts_oldest_and_reports() {
        let cfg = DefragConfig {
            max_datagrams: 2,
            ..DefragConfig::default()
        };
        let mut d = Defragmenter::new(cfg);
        assert_eq!(
            d.push_unbounded(
                t(1),
                &Fragment {
                    id: 1,
                    ..frag(0, 8, true)
                }
            ),
            Ok(None)
        );
        assert_eq!(
            d.push_unbounded(
                t(2),
                &Fragment {
                    id: 2,
                    ..frag(0, 8, true)
                }
            ),
            Ok(None)
        );
        assert_eq!(
            d.push_unbounded(
                t(3),
                &Fragment {
                    id: 3,
                    ..frag(0, 8, true)
                }
            ),
            Err(DefragError::TableFull)
        );
        assert_eq!(d.len(), 2);
        // id 1 was evicted; id 3 was admitted and completes.
        assert_eq!(
            d.push_unbounded(
                t(4),
                &Fragment {
                    id: 1,
                    ..frag(8, 16, false)
                }
            ),
            Err(DefragError::TableFull)
        );
        let r = d
            .push_unbounded(
                t(4),
                &Fragment {
                    id: 3,
                    ..frag(8, 16, false)
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!(r.payload, DATAGRAM);
    }

    #[test]
    fn oversize() {
        let cfg = DefragConfig {
            max_datagram_bytes: 20,
            ..DefragConfig::default()
        };
        let mut d = Defragmenter::new(cfg);
        assert_eq!(d.push_unbounded(t(1), &frag(0, 8, true)), Ok(None));
        assert_eq!(
            d.push_unbounded(t(1), &frag(16, 8, false)),
            Err(DefragError::TooLarge)
        );
        assert_eq!(d.len(), 0, "the whole datagram is dropped");
        let huge = Fragment {
            offset: usize::MAX - 2,
            ..frag(0, 8, true)
        };
        assert_eq!(d.push_unbounded(t(1), &huge), Err(DefragError::TooLarge));
    }

    proptest::proptest! {
        /// Any order, with duplicates, gives back the datagram exactly once.
        #[test]
        fn any_order(
            cuts in proptest::collection::vec(1usize..=3, 1..8),
            order in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..12),
        ) {
            let data: Vec<u8> = (0..cuts.iter().sum::<usize>() * 8).map(|i| i as u8).collect();
            let mut frags = Vec::new();
            let mut at = 0;
            for c in &cuts {
                let end = at + c * 8;
                frags.push(Fragment { offset: at, more: end < data.len(), payload: &data[at..end], ..frag(0, 0, true) });
                at = end;
            }
            let mut d = Defragmenter::new(DefragConfig::default());
            let mut done = Vec::new();
            // Stop at completion: a later duplicate legitimately starts a new datagram.
            for i in &order {
                if !done.is_empty() {
                    break;
                }
                if let Some(r) = d.push_unbounded(t(1), &frags[i.index(frags.len())]).unwrap() {
                    done.push(r.payload);
                }
            }
            for f in &frags {
                if done.is_empty()
                    && let Some(r) = d.push_unbounded(t(1), f).unwrap()
                {
                    done.push(r.payload);
                }
            }
            proptest::prop_assert_eq!(done.len(), 1);
            proptest::prop_assert_eq!(&done[0], &data);
        }

        /// Garbage never panics and stays within the table bound.
        #[test]
        fn bounded_under_garbage(
            frags in proptest::collection::vec(
                (0u32..4, 0usize..100, proptest::prelude::any::<bool>(), proptest::collection::vec(0u8..2, 0..40)),
                0..100,
            ),
        ) {
            let cfg = DefragConfig { max_datagrams: 3, max_datagram_bytes: 120, ..DefragConfig::default() };
            let mut d = Defragmenter::new(cfg);
            for (id, offset, more, payload) in &frags {
                let f = Fragment { id: *id, offset: *offset, more: *more, payload, ..frag(0, 0, true) };
                if let Ok(Some(r)) = d.push_unbounded(t(1), &f) {
                    proptest::prop_assert!(r.payload.len() <= 120);
                }
                proptest::prop_assert!(d.len() <= 3);
            }
        }

        /// Garbage under a small budget: the bytes held never pass it, and always add up.
        #[test]
        fn budget_holds_under_garbage(
            frags in proptest::collection::vec(
                (0u32..6, 0usize..100, proptest::prelude::any::<bool>(), proptest::collection::vec(0u8..2, 0..40)),
                0..100,
            ),
            limit in 0usize..400,
        ) {
            let mut d = Defragmenter::new(DefragConfig { max_datagram_bytes: 120, ..DefragConfig::default() });
            for (n, (id, offset, more, payload)) in frags.iter().enumerate() {
                let f = Fragment { id: *id, offset: *offset, more: *more, payload, ..frag(0, 0, true) };
                let _ = d.push(t(n as u64), &f, &mut Budget::new(limit, &mut []));
                proptest::prop_assert!(d.held_bytes() <= limit);
                let sum: usize = d.datagrams.values().map(Datagram::held).sum();
                proptest::prop_assert_eq!(d.held_bytes(), sum);
            }
        }
    }

    #[test]
    fn unfragmented_passes_through() {
        let mut d = Defragmenter::new(DefragConfig::default());
        expect_whole(d.push_unbounded(t(1), &frag(0, 24, false)));
        assert!(d.is_empty());
    }

    fn frag_id(id: u32, offset: usize, len: usize, more: bool) -> Fragment<'static> {
        Fragment {
            id,
            ..frag(offset, len, more)
        }
    }

    #[test]
    fn budget_accounts_every_datagram_and_gives_back_on_completion() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let limit = 1000;
        let push = |d: &mut Defragmenter, ts, f: &Fragment<'_>| {
            let r = d.push(t(ts), f, &mut Budget::new(limit, &mut []));
            assert!(d.held_bytes() <= limit);
            r
        };
        assert_eq!(push(&mut d, 1, &frag(0, 8, true)), Ok(None));
        // The payload so far and room for four received ranges.
        assert_eq!(d.held_bytes(), 8 + 4 * RANGE_BYTES);
        expect_whole(push(&mut d, 1, &frag(8, 16, false)));
        assert_eq!(d.held_bytes(), 0, "a whole datagram leaves the budget");
        // Expiry and drops give back too.
        assert_eq!(push(&mut d, 2, &frag(0, 8, true)), Ok(None));
        assert_eq!(d.expire(t(100)), 1);
        assert_eq!(d.held_bytes(), 0);
    }

    #[test]
    fn budget_evicts_the_oldest_datagram_then_refuses() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let one = 16 + 4 * RANGE_BYTES; // a datagram holding its first 16 bytes
        let limit = 2 * one;
        let push = |d: &mut Defragmenter, ts, f: &Fragment<'_>| {
            d.push(t(ts), f, &mut Budget::new(limit, &mut []))
        };
        assert_eq!(push(&mut d, 1, &frag_id(1, 0, 16, true)), Ok(None));
        assert_eq!(push(&mut d, 2, &frag_id(2, 0, 16, true)), Ok(None));
        assert_eq!(push(&mut d, 3, &frag_id(3, 0, 16, true)), Ok(None));
        assert_eq!((d.len(), d.evicted_for_memory()), (2, 1));
        // id 1 went. id 1 again at 4 s evicts id 2, the oldest now.
        assert_eq!(push(&mut d, 4, &frag_id(1, 0, 16, true)), Ok(None));
        assert_eq!((d.len(), d.evicted_for_memory()), (2, 2));
        // id 3 is the oldest, but the fragment is its own: id 1 goes, and id 3 completes.
        let whole = push(&mut d, 5, &frag_id(3, 16, 8, false)).unwrap().unwrap();
        assert_eq!(whole.payload, DATAGRAM);
        assert_eq!((d.len(), d.evicted_for_memory(), d.held_bytes()), (0, 3, 0));
        // One fragment larger than the budget is refused, and its datagram dropped.
        let big = [0u8; 200];
        let f = Fragment {
            payload: &big,
            ..frag_id(9, 0, 0, true)
        };
        assert_eq!(push(&mut d, 6, &f), Err(DefragError::OverBudget));
        assert!(d.held_bytes() <= limit);
        assert!(!d.datagrams.contains_key(&Key {
            src: SRC,
            dst: DST,
            protocol: 17,
            id: 9
        }));
    }

    /// Datagrams and TCP flows share one budget: the oldest buffer goes first, whichever holds it.
    #[test]
    fn budget_shared_with_tcp_goes_oldest_first() {
        use crate::reasm::{FlowKey, TcpConfig, TcpReassembler};
        use crate::wire::TcpFlags;
        let psh = TcpFlags(TcpFlags::PSH | TcpFlags::ACK);
        let key = |port| FlowKey {
            src: std::net::SocketAddr::new(SRC, port),
            dst: std::net::SocketAddr::new(DST, 5060),
        };
        let mut d = Defragmenter::new(DefragConfig::default());
        let mut tcp = TcpReassembler::new(TcpConfig::default());
        let one = 16 + 4 * RANGE_BYTES;
        let limit = one + 100 + one;
        // A datagram at 1 s, a TCP flow at 2 s, a datagram at 3 s: the budget is full.
        d.push(
            t(1),
            &frag_id(1, 0, 16, true),
            &mut Budget::new(limit, &mut [&mut tcp]),
        )
        .unwrap();
        tcp.push(
            t(2),
            key(1),
            0,
            psh,
            &[7; 100],
            &mut Budget::new(limit, &mut [&mut d]),
        )
        .unwrap();
        d.push(
            t(3),
            &frag_id(2, 0, 16, true),
            &mut Budget::new(limit, &mut [&mut tcp]),
        )
        .unwrap();
        // A new TCP flow at 4 s needs 50 bytes: the datagram of 1 s goes, not the flow of 2 s.
        tcp.push(
            t(4),
            key(2),
            0,
            psh,
            &[8; 50],
            &mut Budget::new(limit, &mut [&mut d]),
        )
        .unwrap();
        assert_eq!((d.len(), d.evicted_for_memory(), tcp.len()), (1, 1, 2));
        // 100 more: the flow of 2 s is next, then the datagram of 3 s is not needed.
        tcp.push(
            t(5),
            key(3),
            0,
            psh,
            &[9; 100],
            &mut Budget::new(limit, &mut [&mut d]),
        )
        .unwrap();
        assert_eq!((d.len(), tcp.evicted_for_memory()), (1, 1));
        assert!(tcp.stream(&key(1)).is_none());
        assert!(d.held_bytes() + tcp.held_bytes() <= limit);
    }
}
