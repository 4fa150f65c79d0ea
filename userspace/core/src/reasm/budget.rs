//! One byte budget over every buffer that holds input while it waits for more: TCP streams, IP
//! datagrams in reassembly, RTP held for its SDP. Per-flow limits bound one flow; only a shared
//! budget bounds them all (65,536 TCP flows × 256 KiB would otherwise be 16 GiB).
//!
//! A holder takes bytes from the budget before it allocates them. When they do not fit, the
//! idlest buffers go first, whichever holder has them, and the buffer being added to last of
//! all; when even that is not enough the new bytes are refused. So the bytes held never pass
//! the limit, not even for the length of one push.

use crate::time::Timestamp;

/// A holder of buffers under the budget that can give up its idlest one.
pub trait Evict {
    /// Bytes of buffer this holder has allocated and not given back.
    fn held_bytes(&self) -> usize;
    /// The packet time of the buffer [`Evict::evict_idlest`] would drop (its last input, or for
    /// buffers that expire from their first input, that).
    fn idlest(&self) -> Option<Timestamp>;
    /// Drops that buffer and counts it as evicted for memory; returns the bytes given back, or
    /// `None` when there was no buffer to drop.
    fn evict_idlest(&mut self) -> Option<usize>;
}

/// The limit and the other holders, for the one holder that is adding bytes.
pub struct Budget<'a> {
    limit: usize,
    others: &'a mut [&'a mut dyn Evict],
    /// The most bytes held together that a fit allowed.
    peak: usize,
}

impl<'a> Budget<'a> {
    /// At most `limit` bytes over the holder being pushed to and `others`.
    pub fn new(limit: usize, others: &'a mut [&'a mut dyn Evict]) -> Budget<'a> {
        Budget {
            limit,
            others,
            peak: 0,
        }
    }

    /// No bound: for a holder used on its own, as before the budget existed.
    pub fn unlimited() -> Budget<'static> {
        Budget {
            limit: usize::MAX,
            others: &mut [],
            peak: 0,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most bytes held over every holder that this budget let a push reach.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Evicts the idlest buffers, across `own` and the others, until `need` more bytes fit.
    /// `own` is the pushing holder without the buffer being added to. True if they fit; the
    /// caller then adds them to its held bytes.
    pub fn fit(&mut self, need: usize, own: &mut dyn Evict) -> bool {
        loop {
            let held = self
                .others
                .iter()
                .map(|h| h.held_bytes())
                .fold(own.held_bytes(), usize::saturating_add);
            if let Some(total) = held.checked_add(need)
                && total <= self.limit
            {
                self.peak = self.peak.max(total);
                return true;
            }
            // Ties go to `own`, then to the others in order: deterministic.
            let mut pick: Option<(Timestamp, usize)> = own.idlest().map(|t| (t, 0));
            for (i, h) in self.others.iter().enumerate() {
                if let Some(t) = h.idlest()
                    && pick.is_none_or(|(best, _)| t < best)
                {
                    pick = Some((t, i + 1));
                }
            }
            // Every turn drops a buffer, so the loop ends.
            let dropped = match pick {
                None => None,
                Some((_, 0)) => own.evict_idlest(),
                Some((_, i)) => self.others[i - 1].evict_idlest(),
            };
            if dropped.is_none() {
                return false;
            }
        }
    }
}

/// The other buffers of the holder being pushed to, and its count of bytes held (all of its
/// buffers, the one being pushed to included).
pub(crate) trait Rest: Evict {
    fn held_mut(&mut self) -> &mut usize;
}

/// What a buffer being pushed to takes its bytes from.
pub(crate) struct Room<'r, 'b, R: Rest> {
    pub budget: &'r mut Budget<'b>,
    pub rest: R,
}

impl<R: Rest> Room<'_, '_, R> {
    /// Takes `n` bytes, evicting idler buffers if they do not fit; false if they cannot.
    pub fn take(&mut self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        if !self.budget.fit(n, &mut self.rest) {
            return false;
        }
        *self.rest.held_mut() += n;
        true
    }

    pub fn give(&mut self, n: usize) {
        *self.rest.held_mut() -= n;
    }
}

/// Adds `need` bytes to `own` if they fit in `limit` beside `others`, evicting the idlest first:
/// [`Budget::fit`] for a holder that has no buffer of its own to protect.
pub fn fit<'a>(
    limit: usize,
    need: usize,
    own: &mut dyn Evict,
    others: &'a mut [&'a mut dyn Evict],
) -> bool {
    Budget::new(limit, others).fit(need, own)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buffers with a time and a size, evicted oldest first.
    #[derive(Default)]
    struct Fake {
        bufs: Vec<(Timestamp, usize)>,
        evicted: Vec<u64>,
    }

    impl Evict for Fake {
        fn held_bytes(&self) -> usize {
            self.bufs.iter().map(|b| b.1).sum()
        }
        fn idlest(&self) -> Option<Timestamp> {
            self.bufs.iter().map(|b| b.0).min()
        }
        fn evict_idlest(&mut self) -> Option<usize> {
            let i = (0..self.bufs.len()).min_by_key(|&i| self.bufs[i].0)?;
            let (t, n) = self.bufs.remove(i);
            self.evicted.push(t.0);
            Some(n)
        }
    }

    fn fake(bufs: &[(u64, usize)]) -> Fake {
        Fake {
            bufs: bufs.iter().map(|&(t, n)| (Timestamp(t), n)).collect(),
            evicted: Vec::new(),
        }
    }

    #[test]
    fn evicts_the_idlest_across_holders_until_it_fits() {
        let mut own = fake(&[(5, 10), (9, 10)]);
        let mut a = fake(&[(3, 10), (8, 10)]);
        let mut b = fake(&[(4, 10)]);
        // 50 held, limit 60: 25 more need 15 freed, so the buffers of time 3 and 4 go.
        assert!(fit(60, 25, &mut own, &mut [&mut a, &mut b]));
        assert_eq!(
            (a.evicted.as_slice(), b.evicted.as_slice()),
            (&[3][..], &[4][..])
        );
        assert!(own.evicted.is_empty());
        // Nothing fits more than the limit, even with every buffer gone.
        assert!(!fit(60, 61, &mut own, &mut [&mut a, &mut b]));
        assert_eq!(own.held_bytes() + a.held_bytes() + b.held_bytes(), 0);
        assert_eq!(own.evicted, [5, 9]);
    }

    #[test]
    fn fits_without_eviction_and_ties_go_to_own() {
        let mut own = fake(&[(7, 10)]);
        let mut a = fake(&[(7, 10)]);
        assert!(fit(30, 10, &mut own, &mut [&mut a]));
        assert!(own.evicted.is_empty() && a.evicted.is_empty());
        assert!(fit(30, 15, &mut own, &mut [&mut a]));
        assert_eq!((own.evicted.len(), a.evicted.len()), (1, 0));
        assert!(Budget::unlimited().fit(usize::MAX, &mut own));
    }
}
