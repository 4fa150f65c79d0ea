//! SRTP and SRTCP (RFC 3711, RFC 6188, RFC 7714) with SDES keys (RFC 4568), for a passive
//! observer.
//!
//! One [`SrtpContext`] per direction: the keys of an offer's chosen `a=crypto` line decrypt
//! what the offerer sends, the answer's what the answerer sends (RFC 4568 §6.1). The context
//! keeps the rollover counter of each SSRC it has authenticated packets of, so reordering,
//! loss and a start in mid-stream are handled (RFC 3711 §3.3.1), and only authenticated
//! packets move that state. There is no replay protection: an observer records duplicates
//! rather than drops them.
//!
//! Per packet nothing is allocated once `out` has grown to the packet size: the AES key
//! schedules, GHASH keys and keyed HMAC states are built once per key and cloned or borrowed.
//!
//! Not done: key lifetimes are parsed but not enforced (an observer records what the peers
//! accept), RFC 6904 / cryptex header extension encryption, and keys not carried in SDP
//! (DTLS-SRTP, ZRTP, MIKEY).

mod crypto;
mod packet;
mod sdes;
mod suite;
#[cfg(test)]
mod tests;

pub use sdes::{
    CryptoAttr, FecOrder, InlineKey, MAX_KDR, MAX_KEYS, MAX_MKI_LEN, Mki, SdesError, SessionParams,
};
pub use suite::SrtpSuite;

use suite::CipherKind;

use crypto::{AesCtr, RTCP_LABELS, RTP_LABELS, Services, Transform, rtp_index};
use packet::{Layout, RTCP_HEADER_LEN, SrtcpPacket, SrtpPacket, rtp_header_len};

/// Why a packet was not unprotected (or protected). `Copy`, so callers count drops by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SrtpError {
    /// Shorter than its header, MKI and tag (or SRTCP trailer).
    #[error("SRTP packet too short")]
    TooShort,
    #[error("not RTP/RTCP version 2")]
    BadVersion,
    /// The MKI field names none of the keys of the `a=crypto` line.
    #[error("SRTP MKI names no known key")]
    UnknownMki,
    /// No candidate rollover counter authenticated the packet: wrong key, corrupted, or not
    /// SRTP at all.
    #[error("SRTP authentication failed")]
    AuthFailed,
}

/// Tuning for an observer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrtpOptions {
    /// For an SSRC not authenticated yet the ROC is unknown: ROC 0 is tried, then 1 up to
    /// this many, so that a capture that starts in a long call (ROC > 0 after 65536 packets,
    /// 22 minutes of 20 ms audio) still syncs. Each try costs one HMAC (or GCM pass) on
    /// packets that fail, so keep it small.
    pub unsynced_roc_search: u32,
    /// SSRCs whose rollover counter is kept; the least recently seen is forgotten beyond.
    pub max_streams: usize,
}

impl Default for SrtpOptions {
    fn default() -> Self {
        SrtpOptions {
            unsynced_roc_search: 8,
            max_streams: 16,
        }
    }
}

/// Counters since the context was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SrtpStats {
    pub rtp_ok: u64,
    pub rtcp_ok: u64,
    pub rtp_auth_failed: u64,
    pub rtcp_auth_failed: u64,
    /// Authenticated only with the estimated ROC − 1 (a late packet from before a wrap the
    /// estimate did not expect).
    pub roc_minus_one: u64,
    /// Authenticated only with the estimated ROC + 1 (a wrap hidden by a long loss).
    pub roc_plus_one: u64,
    /// First packet of an SSRC found at a nonzero ROC by [`SrtpOptions::unsynced_roc_search`].
    pub roc_searched: u64,
    /// SSRC states forgotten because [`SrtpOptions::max_streams`] were kept.
    pub streams_evicted: u64,
}

/// The highest authenticated packet of an SSRC: its ROC and sequence number (s_l).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Roc {
    roc: u32,
    s_l: u16,
}

impl Roc {
    fn index(self) -> u64 {
        rtp_index(self.roc, self.s_l)
    }

    /// RFC 3711 §3.3.1 / Appendix A: the ROC a packet with `seq` most likely has.
    fn estimate(self, seq: u16) -> i64 {
        let roc = i64::from(self.roc);
        let (seq, s_l) = (i32::from(seq), i32::from(self.s_l));
        if s_l < 32768 {
            if seq - s_l > 32768 { roc - 1 } else { roc }
        } else if s_l - 32768 > seq {
            roc + 1
        } else {
            roc
        }
    }
}

/// A bounded SSRC → state map; a handful of entries, so a vector beats hashing.
#[derive(Clone, Debug)]
struct Streams<V> {
    entries: Vec<(u32, V, u64)>,
    max: usize,
    clock: u64,
}

impl<V: Copy> Streams<V> {
    fn new(max: usize) -> Self {
        Streams {
            entries: Vec::new(),
            max: max.max(1),
            clock: 0,
        }
    }

    fn get(&self, ssrc: u32) -> Option<V> {
        self.entries
            .iter()
            .find(|(s, _, _)| *s == ssrc)
            .map(|(_, v, _)| *v)
    }

    /// Returns whether an older entry was evicted to make room.
    fn set(&mut self, ssrc: u32, value: V) -> bool {
        self.clock += 1;
        if let Some(e) = self.entries.iter_mut().find(|(s, _, _)| *s == ssrc) {
            e.1 = value;
            e.2 = self.clock;
            return false;
        }
        let mut evicted = false;
        if self.entries.len() >= self.max
            && let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.2)
                .map(|(i, _)| i)
        {
            self.entries.swap_remove(oldest);
            evicted = true;
        }
        self.entries.push((ssrc, value, self.clock));
        evicted
    }
}

/// What a context does, fixed by its `a=crypto` line.
#[derive(Clone, Copy, Debug)]
struct Policy {
    suite: SrtpSuite,
    kdr: Option<u8>,
    encrypt_rtp: bool,
    authenticate_rtp: bool,
    encrypt_rtcp: bool,
    rtp: Layout,
    rtcp: Layout,
}

impl Policy {
    /// r = index DIV key_derivation_rate; the rate is 2^KDR, or 0 (derive once) without
    /// KDR (RFC 3711 §4.3.1, RFC 4568 §6.3.1).
    fn r(&self, index: u64) -> u64 {
        self.kdr.map_or(0, |n| index >> n)
    }
}

struct Derived {
    r: u64,
    t: Transform,
}

/// One master key and its session keys.
struct KeySlot {
    mki: Vec<u8>,
    prf: AesCtr,
    master_salt: Vec<u8>,
    rtp: Derived,
    rtcp: Derived,
}

impl KeySlot {
    fn new(p: &Policy, key: &InlineKey) -> Option<KeySlot> {
        let prf = AesCtr::new(&key.key)?;
        let rtp = p.rtp_transform(&prf, &key.salt, 0)?;
        let rtcp = p.rtcp_transform(&prf, &key.salt, 0)?;
        let mut mki = Vec::new();
        if let Some(m) = key.mki {
            m.write(&mut mki);
        }
        Some(KeySlot {
            mki,
            prf,
            master_salt: key.salt.clone(),
            rtp: Derived { r: 0, t: rtp },
            rtcp: Derived { r: 0, t: rtcp },
        })
    }

    /// With a key derivation rate the session keys change with the index (RFC 3711 §4.3.1).
    fn refresh_rtp(&mut self, p: &Policy, index: u64) {
        let r = p.r(index);
        if r != self.rtp.r
            && let Some(t) = p.rtp_transform(&self.prf, &self.master_salt, r)
        {
            self.rtp = Derived { r, t };
        }
    }

    fn refresh_rtcp(&mut self, p: &Policy, index: u32) {
        let r = p.r(u64::from(index));
        if r != self.rtcp.r
            && let Some(t) = p.rtcp_transform(&self.prf, &self.master_salt, r)
        {
            self.rtcp = Derived { r, t };
        }
    }
}

impl Policy {
    fn rtp_transform(&self, prf: &AesCtr, salt: &[u8], r: u64) -> Option<Transform> {
        Transform::derive(
            self.suite,
            prf,
            salt,
            RTP_LABELS,
            r,
            Services {
                encrypt: self.encrypt_rtp,
                authenticate: self.authenticate_rtp,
                tag_len: self.rtp.tag_len,
            },
        )
    }

    fn rtcp_transform(&self, prf: &AesCtr, salt: &[u8], r: u64) -> Option<Transform> {
        // The cipher is kept even with UNENCRYPTED_SRTCP: the E flag decides per packet.
        Transform::derive(
            self.suite,
            prf,
            salt,
            RTCP_LABELS,
            r,
            Services {
                encrypt: true,
                authenticate: true,
                tag_len: self.rtcp.tag_len,
            },
        )
    }
}

/// Which candidate ROC authenticated a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Estimate,
    MinusOne,
    PlusOne,
    Search,
}

/// The cryptographic context of one sender's `a=crypto` line (RFC 3711 §3.2), for every SSRC
/// that sender uses.
pub struct SrtpContext {
    policy: Policy,
    keys: Vec<KeySlot>,
    /// The key `protect_*` uses.
    tx_key: usize,
    rx: Streams<Roc>,
    tx: Streams<Roc>,
    tx_rtcp: Streams<u32>,
    options: SrtpOptions,
    stats: SrtpStats,
}

impl core::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.policy.suite)
            .field("keys", &self.keys.len())
            .field("streams", &self.rx.entries.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn be16(b: &[u8]) -> u16 {
    match b {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn be32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

impl SrtpContext {
    /// The context of the sender that wrote `attr`; fails only on a hand-built `attr` that
    /// [`CryptoAttr::validate`] refuses.
    pub fn new(attr: &CryptoAttr) -> Result<SrtpContext, SdesError> {
        SrtpContext::with_options(attr, SrtpOptions::default())
    }

    pub fn with_options(attr: &CryptoAttr, options: SrtpOptions) -> Result<SrtpContext, SdesError> {
        attr.validate()?;
        let suite = attr.suite;
        let mki_len = attr.mki_len();
        let aead = suite.is_aead();
        let p = &attr.params;
        let policy = Policy {
            suite,
            kdr: p.kdr,
            encrypt_rtp: !p.unencrypted_srtp,
            authenticate_rtp: !p.unauthenticated_srtp,
            // The E flag says whether SRTCP is encrypted; with the NULL cipher it is not.
            encrypt_rtcp: !p.unencrypted_srtcp && suite.cipher() != CipherKind::Null,
            rtp: Layout {
                mki_len,
                tag_len: if p.unauthenticated_srtp && !aead {
                    0
                } else {
                    suite.rtp_tag_len()
                },
                aead,
            },
            rtcp: Layout {
                mki_len,
                tag_len: suite.rtcp_tag_len(),
                aead,
            },
        };
        let keys = attr
            .keys
            .iter()
            .map(|k| {
                KeySlot::new(&policy, k).ok_or(SdesError::BadKeyLength {
                    suite,
                    expected: suite.key_salt_len(),
                    got: k.key.len() + k.salt.len(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SrtpContext {
            policy,
            keys,
            tx_key: 0,
            rx: Streams::new(options.max_streams),
            tx: Streams::new(options.max_streams),
            tx_rtcp: Streams::new(options.max_streams),
            options,
            stats: SrtpStats::default(),
        })
    }

    pub fn suite(&self) -> SrtpSuite {
        self.policy.suite
    }

    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    /// The rollover counter and highest sequence number authenticated for `ssrc`.
    pub fn rollover_counter(&self, ssrc: u32) -> Option<(u32, u16)> {
        self.rx.get(ssrc).map(|r| (r.roc, r.s_l))
    }

    /// Starts `ssrc` at a known ROC instead of searching, e.g. when a re-key replaces the
    /// context of a stream that goes on (take [`SrtpContext::rollover_counter`] of the old).
    pub fn set_rollover_counter(&mut self, ssrc: u32, roc: u32, highest_seq: u16) {
        let evicted = self.rx.set(
            ssrc,
            Roc {
                roc,
                s_l: highest_seq,
            },
        );
        self.stats.streams_evicted += u64::from(evicted);
    }

    /// Which key `protect_*` uses, by position on the `a=crypto` line. False when out of range.
    pub fn set_protect_key(&mut self, index: usize) -> bool {
        if index < self.keys.len() {
            self.tx_key = index;
            true
        } else {
            false
        }
    }

    /// RFC 3711 §3.1: the MKI field selects the master key.
    fn key_for(&self, mki: &[u8]) -> Result<usize, SrtpError> {
        if self.keys.len() == 1 && mki.is_empty() {
            return Ok(0);
        }
        self.keys
            .iter()
            .position(|k| k.mki == mki)
            .ok_or(SrtpError::UnknownMki)
    }

    fn open_rtp(&mut self, k: usize, pkt: &SrtpPacket<&[u8]>, roc: u32, out: &mut Vec<u8>) -> bool {
        let p = self.policy;
        let Some(slot) = self.keys.get_mut(k) else {
            return false;
        };
        slot.refresh_rtp(&p, rtp_index(roc, pkt.sequence_number()));
        crypto::rtp_open(&slot.rtp.t, pkt, roc, out)
    }

    /// Verifies and decrypts an SRTP packet (RFC 3711 §3.3): `out` gets the RTP packet, header
    /// and payload, without MKI and tag. `out` is meaningless on error.
    ///
    /// With `UNAUTHENTICATED_SRTP` nothing can be verified: the estimated ROC is taken and
    /// moves the state, as it must.
    pub fn unprotect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let pkt = SrtpPacket::new_checked(packet, self.policy.rtp)?;
        let k = self.key_for(pkt.mki())?;
        let ssrc = pkt.ssrc();
        let seq = pkt.sequence_number();
        let state = self.rx.get(ssrc);
        let found = match state {
            Some(st) => {
                // RFC 3711 §3.3.1, then its neighbours: a reordering across the wrap or a
                // loss of more than 2^15 packets fools the estimate by one.
                let v = st.estimate(seq);
                [
                    (v, Found::Estimate),
                    (v - 1, Found::MinusOne),
                    (v + 1, Found::PlusOne),
                ]
                .into_iter()
                .filter_map(|(v, how)| Some((u32::try_from(v).ok()?, how)))
                .find(|&(roc, _)| self.open_rtp(k, &pkt, roc, out))
            }
            None => (0..=self.options.unsynced_roc_search)
                .find(|&roc| self.open_rtp(k, &pkt, roc, out))
                .map(|roc| (roc, Found::Search)),
        };
        let Some((roc, how)) = found else {
            self.stats.rtp_auth_failed += 1;
            return Err(SrtpError::AuthFailed);
        };
        self.stats.rtp_ok += 1;
        match how {
            Found::Estimate => {}
            Found::MinusOne => self.stats.roc_minus_one += 1,
            Found::PlusOne => self.stats.roc_plus_one += 1,
            Found::Search => self.stats.roc_searched += u64::from(roc != 0),
        }
        // RFC 3711 §3.3.1: only an authenticated packet updates ROC and s_l, and only forward.
        let new = Roc { roc, s_l: seq };
        if state.is_none_or(|st| new.index() > st.index()) {
            let evicted = self.rx.set(ssrc, new);
            self.stats.streams_evicted += u64::from(evicted);
        }
        Ok(())
    }

    /// Verifies and decrypts an SRTCP packet (RFC 3711 §3.4): `out` gets the RTCP compound
    /// packet without trailer, MKI and tag. The index is explicit, so no state is needed.
    pub fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let pkt = SrtcpPacket::new_checked(packet, self.policy.rtcp)?;
        let k = self.key_for(pkt.mki())?;
        let p = self.policy;
        let slot = self.keys.get_mut(k).ok_or(SrtpError::UnknownMki)?;
        slot.refresh_rtcp(&p, pkt.index());
        if crypto::rtcp_open(&slot.rtcp.t, &pkt, out) {
            self.stats.rtcp_ok += 1;
            Ok(())
        } else {
            self.stats.rtcp_auth_failed += 1;
            Err(SrtpError::AuthFailed)
        }
    }

    /// Protects an RTP packet as a sender would, tracking the ROC per SSRC from the sequence
    /// numbers (they may come reordered, as an observer would see them).
    pub fn protect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        rtp_header_len(packet)?;
        let ssrc = be32(packet.get(8..12).unwrap_or_default());
        let seq = be16(packet.get(2..4).unwrap_or_default());
        let roc = match self.tx.get(ssrc) {
            None => {
                self.tx.set(ssrc, Roc { roc: 0, s_l: seq });
                0
            }
            Some(st) => {
                let roc = u32::try_from(st.estimate(seq).max(0)).unwrap_or(u32::MAX);
                let new = Roc { roc, s_l: seq };
                if new.index() > st.index() {
                    self.tx.set(ssrc, new);
                }
                roc
            }
        };
        self.protect_rtp_with_roc(packet, roc, out)
    }

    /// Protects an RTP packet with an explicit rollover counter.
    pub fn protect_rtp_with_roc(
        &mut self,
        packet: &[u8],
        roc: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), SrtpError> {
        let header_len = rtp_header_len(packet)?;
        let seq = be16(packet.get(2..4).unwrap_or_default());
        let p = self.policy;
        let slot = self
            .keys
            .get_mut(self.tx_key)
            .ok_or(SrtpError::UnknownMki)?;
        slot.refresh_rtp(&p, rtp_index(roc, seq));
        crypto::rtp_seal(&slot.rtp.t, packet, header_len, roc, &slot.mki, out);
        Ok(())
    }

    /// Protects an RTCP compound packet with the next SRTCP index of its SSRC (0 first).
    pub fn protect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let ssrc = be32(packet.get(4..8).ok_or(SrtpError::TooShort)?);
        let index = self.tx_rtcp.get(ssrc).unwrap_or(0);
        self.protect_rtcp_with_index(packet, index, out)?;
        self.tx_rtcp.set(ssrc, (index + 1) & 0x7fff_ffff);
        Ok(())
    }

    /// Protects an RTCP compound packet with an explicit SRTCP index (31 bits).
    pub fn protect_rtcp_with_index(
        &mut self,
        packet: &[u8],
        index: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), SrtpError> {
        let flags = *packet.first().ok_or(SrtpError::TooShort)?;
        if packet.len() < RTCP_HEADER_LEN {
            return Err(SrtpError::TooShort);
        }
        if flags >> 6 != 2 {
            return Err(SrtpError::BadVersion);
        }
        let ssrc = be32(&packet[4..8]);
        let p = self.policy;
        let slot = self
            .keys
            .get_mut(self.tx_key)
            .ok_or(SrtpError::UnknownMki)?;
        slot.refresh_rtcp(&p, index & 0x7fff_ffff);
        crypto::rtcp_seal(
            &slot.rtcp.t,
            packet,
            ssrc,
            index,
            p.encrypt_rtcp,
            &slot.mki,
            out,
        );
        Ok(())
    }
}
