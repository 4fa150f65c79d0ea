//! The per-packet path allocates nothing once the output buffer has grown, and what a packet
//! costs, suite by suite (printed; `cargo test --release` for meaningful figures).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write as _;
use std::time::Instant;
use voxtap_core::media::srtp::{CryptoAttr, InlineKey, Mki, SessionParams, SrtpContext, SrtpSuite};

/// Counts the allocations of the current thread; tests run on threads of their own.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; the counter is a const thread-local Cell.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn loud(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn attr(suite: SrtpSuite, mki: bool) -> CryptoAttr {
    let key: Vec<u8> = (0..suite.key_salt_len() as u8).map(|i| i ^ 0x5a).collect();
    let mut k = InlineKey::new(suite, &key).expect("key");
    if mki {
        k.mki = Some(Mki { value: 3, len: 2 });
    }
    CryptoAttr {
        tag: 1,
        suite,
        keys: vec![k],
        params: SessionParams::default(),
    }
}

/// 20 ms of PCMU: 12-byte header, 160-byte payload.
fn pcmu(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x0bad_cafeu32.to_be_bytes());
    p.extend(std::iter::repeat_n(0xd5, 160));
    p
}

#[test]
fn no_allocation_per_packet_after_warm_up() {
    for suite in SrtpSuite::ALL {
        for mki in [false, true] {
            let a = attr(suite, mki);
            let mut tx = SrtpContext::new(&a).expect("tx");
            let mut rx = SrtpContext::new(&a).expect("rx");
            let packets: Vec<Vec<u8>> = (0..100).map(|i| pcmu(65_500u16.wrapping_add(i))).collect();
            let rtcp = {
                let mut p = vec![0x81, 201, 0, 7, 0x0b, 0xad, 0xca, 0xfe];
                p.extend_from_slice(&[7; 24]);
                p
            };
            let mut wire = Vec::with_capacity(1500);
            let mut plain = Vec::with_capacity(1500);
            // Warm-up: the first packet of an SSRC stores its state.
            tx.protect_rtp(&packets[0], &mut wire).expect("protect");
            rx.unprotect_rtp(&wire, &mut plain).expect("unprotect");
            tx.protect_rtcp(&rtcp, &mut wire).expect("protect rtcp");
            rx.unprotect_rtcp(&wire, &mut plain)
                .expect("unprotect rtcp");
            let before = allocations();
            for p in &packets[1..] {
                tx.protect_rtp(p, &mut wire).expect("protect");
                rx.unprotect_rtp(&wire, &mut plain).expect("unprotect");
                assert_eq!(&plain, p);
                tx.protect_rtcp(&rtcp, &mut wire).expect("protect rtcp");
                rx.unprotect_rtcp(&wire, &mut plain)
                    .expect("unprotect rtcp");
            }
            assert_eq!(
                allocations(),
                before,
                "{suite} mki={mki}: allocations per packet"
            );
            // A failing packet (ROC search included) allocates nothing either.
            let mut bad = wire.clone();
            let before_bad = allocations();
            bad[9] ^= 1;
            let _ = rx.unprotect_rtp(&bad, &mut plain);
            let _ = rx.unprotect_rtcp(&bad, &mut plain);
            assert_eq!(allocations(), before_bad, "{suite} mki={mki}: failure path");
        }
    }
}

#[test]
fn per_packet_cost() {
    let n = if cfg!(debug_assertions) {
        2_000
    } else {
        50_000
    };
    let packets: Vec<Vec<u8>> = (0..n).map(|i| pcmu(i as u16)).collect();
    for suite in SrtpSuite::ALL {
        let a = attr(suite, false);
        let mut tx = SrtpContext::new(&a).expect("tx");
        let mut rx = SrtpContext::new(&a).expect("rx");
        let mut wire = Vec::with_capacity(1500);
        let mut plain = Vec::with_capacity(1500);
        let protected: Vec<Vec<u8>> = packets
            .iter()
            .map(|p| {
                tx.protect_rtp(p, &mut wire).expect("protect");
                wire.clone()
            })
            .collect();
        let t0 = Instant::now();
        for w in &protected {
            rx.unprotect_rtp(w, &mut plain).expect("unprotect");
        }
        let unprotect = t0.elapsed().as_nanos() as f64 / n as f64;
        let t0 = Instant::now();
        for p in &packets {
            tx.protect_rtp(p, &mut wire).expect("protect");
        }
        let protect = t0.elapsed().as_nanos() as f64 / n as f64;
        // A key that fails: estimated ROC, then ROC - 1 and + 1.
        let mut other = SrtpContext::new(&attr(suite, false)).expect("other");
        other.set_rollover_counter(0x0bad_cafe, 1, 0);
        let t0 = Instant::now();
        for w in protected.iter().take(n / 10) {
            let mut w = w.clone();
            w[12] ^= 1;
            let _ = other.unprotect_rtp(&w, &mut plain);
        }
        let failing = t0.elapsed().as_nanos() as f64 / (n / 10) as f64;
        loud(&format!(
            "srtp cost ({}): {suite:<24} unprotect {unprotect:>7.0} ns, protect {protect:>7.0} ns, \
             auth failure (3 ROCs, incl. a clone) {failing:>7.0} ns per 172-byte PCMU packet",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        ));
    }
}
