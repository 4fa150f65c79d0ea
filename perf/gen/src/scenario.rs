//! Scenario planning: turns a [`GenConfig`] into per-call [`CallSpec`]s.

use voxtap_core::media::srtp::SrtpSuite;

use crate::call::{CallSpec, MS, OnDemandPlan, SrtpPlan, US};
use crate::net::{TPID_8021AD, TPID_8021Q};
use crate::rng::Rng;
use crate::rtp::Codec;
use crate::{GenConfig, Scenario};

/// Calls of one `Mix` round, in order. `FragmentedInvite` appears twice:
/// once with in-order fragments and once reversed.
pub const MIX_ROUND: [Scenario; 14] = [
    Scenario::Pcmu,
    Scenario::Pcma,
    Scenario::Dtmf,
    Scenario::HoldMove,
    Scenario::Nat,
    Scenario::LossReorder,
    Scenario::Vlan,
    Scenario::QinQ,
    Scenario::FragmentedInvite,
    Scenario::FragmentedInvite,
    Scenario::Tcp,
    Scenario::Ipv6,
    Scenario::CancelBeforeAnswer,
    Scenario::EarlyMedia,
];

/// Whether (caller, callee) is offnet, per call of a `Matrix` round: inbound, outbound,
/// internal, external-to-external.
pub const MATRIX_ROUND: [[bool; 2]; 4] =
    [[true, false], [false, true], [false, false], [true, true]];

/// The domain the `Matrix` calls name in From and To.
pub const MATRIX_DOMAIN: &str = "gen.test";

/// Calls of one `Srtp` round.
pub const SRTP_ROUND: usize = 5;

/// The suites every SDES offer lists, as tags 1 and 2 (RFC 4568 §9.1 example, RFC 6188).
pub(crate) const SDES_OFFER: [SrtpSuite; 2] = [
    SrtpSuite::AesCm128HmacSha1_80,
    SrtpSuite::AesCm256HmacSha1_80,
];

/// The media protection of call `nth` of an `Srtp` capture.
fn srtp_call(nth: usize) -> SrtpPlan {
    let sdes = |offer: [SrtpSuite; 2], pick, rekey| SrtpPlan::Sdes {
        offer: offer.to_vec(),
        pick,
        rekey,
    };
    match nth % SRTP_ROUND {
        0 => sdes(SDES_OFFER, 0, false),
        1 => sdes(SDES_OFFER, 1, false),
        2 => sdes(
            [SrtpSuite::AeadAes128Gcm, SrtpSuite::AesCm128HmacSha1_32],
            0,
            false,
        ),
        3 => sdes(SDES_OFFER, 0, true),
        _ => SrtpPlan::Dtls,
    }
}

/// Number of calls `generate` produces for `cfg`.
pub fn expected_calls(cfg: &GenConfig) -> usize {
    match cfg.scenario {
        Scenario::Mix => cfg.calls * MIX_ROUND.len(),
        Scenario::Matrix => cfg.calls * MATRIX_ROUND.len(),
        Scenario::Codecs => cfg.calls * Codec::catalog_available().len(),
        s if s.is_pbx() => cfg.calls * crate::pbx::legs_per_conversation(s, cfg.mirror),
        _ => cfg.calls,
    }
}

const DISPLAY_NAMES: [&str; 8] = [
    "Alice Example",
    "Bob Builder",
    "Carol Jones",
    "Dave O'Neil",
    "Erin Müller",
    "Frank Li",
    "Grace Hopper",
    "Heidi Park",
];

/// Pick (caller, callee) tones: multiples of 50 Hz in 300..=3000, at least
/// 100 Hz apart, preferring tones used least so far in this capture (so
/// calls of a small capture all have distinct tones).
fn pick_tones(rng: &mut Rng, used: &mut [u32; 61]) -> (f64, f64) {
    pick_tones_in(rng, used, (6, 60), 2)
}

/// [`pick_tones`] for codecs that model speech, not tones: 400..=2000 Hz, at least 200 Hz
/// apart, neither a multiple of the other (a harmonic of one must not read as the other).
fn pick_codec_tones(rng: &mut Rng, used: &mut [u32; 61]) -> (f64, f64) {
    pick_tones_in(rng, used, (8, 40), 4)
}

fn pick_tones_in(
    rng: &mut Rng,
    used: &mut [u32; 61],
    (lo, hi): (u64, u64),
    min_apart: u64,
) -> (f64, f64) {
    let mut best: Option<(u32, u64, u64)> = None;
    for _ in 0..200 {
        let a = rng.range(lo, hi);
        let b = rng.range(lo, hi);
        if a.abs_diff(b) < min_apart {
            continue;
        }
        if min_apart > 2 && (a.is_multiple_of(b) || b.is_multiple_of(a)) {
            continue;
        }
        let score = used[a as usize] + used[b as usize];
        if best.is_none_or(|(s, _, _)| score < s) {
            best = Some((score, a, b));
        }
        if score == 0 {
            break;
        }
    }
    let (_, a, b) = best.expect("tone candidates");
    used[a as usize] += 1;
    used[b as usize] += 1;
    ((a * 50) as f64, (b * 50) as f64)
}

pub(crate) fn talk_ns(cfg: &GenConfig) -> u64 {
    let secs = if cfg.talk_secs.is_finite() {
        cfg.talk_secs.max(0.5)
    } else {
        4.0
    };
    (secs * 1e6).round() as u64 * US
}

struct Planner {
    rng: Rng,
    next_port: u32,
    seed: u64,
    scenario: Scenario,
    /// Usage count per tone (index = Hz / 50).
    tones_used: [u32; 61],
    /// The same for the tones of codecs other than G.711, drawn from their own stream so
    /// that a codec changes nothing but the media.
    codec_rng: Rng,
    codec_tones_used: [u32; 61],
    /// `GenConfig::codec`.
    codec: Option<Codec>,
    /// `GenConfig::srtp`.
    srtp: bool,
    /// What `Codecs` cycles through.
    catalog: Vec<Codec>,
}

impl Planner {
    /// The next RTP port: they count up by two from 16384 across the capture (24,575 ports),
    /// and past 65532 start again at 16384, as each phone's own range would. In a capture of
    /// more than 12,287 two-party calls the port numbers repeat, the media endpoints do not:
    /// each call's parties have addresses of their own ([`crate::call::party_ips`]).
    fn port(&mut self) -> u16 {
        if self.next_port >= 65534 {
            self.next_port = 16384;
        }
        let p = self.next_port;
        self.next_port += 2;
        p as u16
    }

    /// Spec for call `idx` exercising `kind`'s feature. `nth` is the index of
    /// the call among calls of the same kind.
    fn spec(
        &mut self,
        idx: usize,
        kind: Scenario,
        nth: usize,
        start_ns: u64,
        talk: u64,
    ) -> CallSpec {
        let forced = match kind {
            Scenario::Codecs => self.catalog.get(nth % self.catalog.len().max(1)).copied(),
            _ => None,
        };
        let forced = self.codec.or(forced);
        let (mut caller_tone_hz, mut callee_tone_hz) =
            pick_tones(&mut self.rng, &mut self.tones_used);
        if forced.is_some_and(|c| !c.is_g711()) {
            (caller_tone_hz, callee_tone_hz) =
                pick_codec_tones(&mut self.codec_rng, &mut self.codec_tones_used);
        }
        let ring_ns = self.rng.range(500_000, 1_500_000) * US;
        let scenario_codec = match kind {
            Scenario::Pcma => Codec::Pcma,
            Scenario::InbandDtmf if nth % 2 == 1 => Codec::Pcma,
            Scenario::Concurrent => {
                if self.rng.chance(0.5) {
                    Codec::Pcma
                } else {
                    Codec::Pcmu
                }
            }
            _ => Codec::Pcmu,
        };
        let codec = forced.unwrap_or(scenario_codec);
        let srtp = match kind {
            Scenario::Srtp => srtp_call(nth),
            _ if self.srtp => SrtpPlan::Sdes {
                offer: SDES_OFFER.to_vec(),
                pick: 0,
                rekey: false,
            },
            _ => SrtpPlan::None,
        };
        let caller_display = if kind == Scenario::Concurrent && idx % 5 == 4 {
            None
        } else {
            Some(DISPLAY_NAMES[idx % DISPLAY_NAMES.len()].to_string())
        };
        let bye_by_callee = match kind {
            Scenario::Pcmu => !nth.is_multiple_of(2),
            Scenario::Pcma => nth.is_multiple_of(2),
            _ => nth % 3 == 2,
        };
        let hold_move = kind == Scenario::HoldMove;
        let caller_rtp_port = self.port();
        let callee_rtp_port = self.port();
        let caller_rtp_port2 = if hold_move {
            self.port()
        } else {
            caller_rtp_port
        };
        // Mix the scenario into the per-call seed so different scenarios never
        // share Call-IDs, SSRCs or tags for the same `seed`.
        let seed = self.seed
            ^ (self.scenario as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ ((kind as u64 + 1) << 40);
        CallSpec {
            idx,
            seed,
            codec,
            start_ns,
            ring_ns,
            talk_ns: talk,
            bye_by_callee,
            dtmf: kind == Scenario::Dtmf,
            inband_dtmf: kind == Scenario::InbandDtmf,
            hold_move,
            nat: kind == Scenario::Nat,
            loss_reorder: kind == Scenario::LossReorder,
            tags: match kind {
                Scenario::Vlan => vec![(TPID_8021Q, 100)],
                Scenario::QinQ => vec![(TPID_8021AD, 200), (TPID_8021Q, 100)],
                _ => Vec::new(),
            },
            big_invite: kind == Scenario::FragmentedInvite,
            frag_reverse: kind == Scenario::FragmentedInvite && nth % 2 == 1,
            tcp: kind == Scenario::Tcp,
            ipv6: kind == Scenario::Ipv6,
            cancel: kind == Scenario::CancelBeforeAnswer,
            early_media: kind == Scenario::EarlyMedia,
            offnet: match kind {
                Scenario::Matrix => MATRIX_ROUND[idx % MATRIX_ROUND.len()],
                Scenario::TransferExternal => [true, false],
                _ => [false; 2],
            },
            domain: matches!(kind, Scenario::Matrix | Scenario::TransferExternal)
                .then_some(MATRIX_DOMAIN),
            transfer_external: kind == Scenario::TransferExternal,
            on_demand: match kind {
                Scenario::InfoRecord => OnDemandPlan::InfoRecord,
                Scenario::MediaControl => OnDemandPlan::MediaControl,
                Scenario::DtmfPause => OnDemandPlan::DtmfPause,
                _ => OnDemandPlan::None,
            },
            record_mode: match kind {
                Scenario::ModeHeader if nth.is_multiple_of(2) => Some("deny"),
                Scenario::ModeHeader => Some("force"),
                _ => None,
            },
            caller_display,
            caller_tone_hz,
            callee_tone_hz,
            caller_rtp_port,
            caller_rtp_port2,
            callee_rtp_port,
            srtp,
        }
    }
}

/// Plan every call of the capture (none for the PBX scenarios: [`crate::pbx`] builds their
/// legs).
pub fn plan(cfg: &GenConfig) -> Vec<CallSpec> {
    if cfg.scenario.is_pbx() {
        return Vec::new();
    }
    let mut p = Planner {
        rng: Rng::derive(cfg.seed, 0xC0FFEE),
        next_port: 16384,
        seed: cfg.seed,
        scenario: cfg.scenario,
        tones_used: [0; 61],
        codec_rng: Rng::derive(cfg.seed, 0xC0DEC),
        codec_tones_used: [0; 61],
        codec: cfg.codec,
        srtp: cfg.srtp,
        catalog: if cfg.scenario == Scenario::Codecs {
            Codec::catalog_available()
        } else {
            Vec::new()
        },
    };
    let talk = talk_ns(cfg);
    let base = cfg.start_unix_secs * 1_000_000_000 + 100 * MS;
    let mut specs = Vec::new();
    match cfg.scenario {
        Scenario::Concurrent => {
            let n = cfg.calls;
            // `ramp_ms`: the 20-50 ms between INVITEs (35 ms on average) scaled so that the
            // n - 1 gaps take about the ramp, and the BYEs as far apart on average.
            let ramp_us = cfg
                .ramp_ms
                .map(|ms| (ms.clamp(0.0, 86_400_000.0) * 1000.0).round() as u64);
            let gaps = n.saturating_sub(1).max(1) as u64;
            let mut start = base;
            for i in 0..n {
                specs.push(p.spec(i, Scenario::Concurrent, i, start, talk));
                let gap_us = p.rng.range(20_000, 50_000);
                start += match ramp_us {
                    None => gap_us,
                    Some(r) => {
                        (u128::from(gap_us) * u128::from(r) / u128::from(35_000 * gaps)) as u64
                    }
                } * US;
            }
            let bye_gap = match ramp_us {
                None => 5 * MS,
                Some(r) => r / gaps * US,
            };
            // Align the hang-ups: everyone is up from the last answer for `talk`,
            // then calls end a few ms apart.
            let all_up = specs
                .iter()
                .map(|s| s.start_ns + s.ring_ns)
                .max()
                .unwrap_or(base);
            for (i, s) in specs.iter_mut().enumerate() {
                let bye = all_up + talk + i as u64 * bye_gap;
                s.talk_ns = bye - (s.start_ns + s.ring_ns);
            }
        }
        Scenario::BackToBack => {
            let mut start = base;
            for i in 0..cfg.calls {
                let mut s = p.spec(i, Scenario::Pcmu, i, start, talk);
                if let Some(first) = specs.first() {
                    let first: &CallSpec = first;
                    // The same phones, addresses and RTP ports; new Call-ID, tags and SSRCs.
                    s.idx = first.idx;
                    s.caller_rtp_port = first.caller_rtp_port;
                    s.caller_rtp_port2 = first.caller_rtp_port;
                    s.callee_rtp_port = first.callee_rtp_port;
                    s.seed ^= (i as u64).wrapping_mul(0xA24B_AED4_963E_E407);
                }
                // The caller hangs up, and a second after the BYE dials again.
                s.bye_by_callee = false;
                start += s.ring_ns + s.talk_ns + 1000 * MS;
                specs.push(s);
            }
        }
        Scenario::Mix => {
            let mut start = base;
            let mut nth = std::collections::HashMap::new();
            for _round in 0..cfg.calls {
                for kind in MIX_ROUND {
                    let k = nth.entry(kind).or_insert(0usize);
                    let idx = specs.len();
                    specs.push(p.spec(idx, kind, *k, start, talk));
                    *k += 1;
                    start += p.rng.range(250_000, 400_000) * US;
                }
            }
        }
        kind => {
            let mut start = base;
            for i in 0..expected_calls(cfg) {
                specs.push(p.spec(i, kind, i, start, talk));
                start += p.rng.range(250_000, 400_000) * US;
            }
        }
    }
    specs
}
