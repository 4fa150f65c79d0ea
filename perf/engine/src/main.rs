//! engine-bench: the single-threaded engine on generated concurrent G.711 calls.
//!
//! The frames are generated in memory first (not timed), then fed to `Engine::handle` in one
//! thread. Two stages are timed: `engine` (parse, correlate, decode and mix; the events are
//! drained and dropped) and `full` (the same, with every event written by the store: WAV files
//! and the SQLite catalog in a temporary directory). For a figure that does not move with the
//! machine's load, run it under callgrind with `--toggle-collect` on `Engine::handle` (the
//! command is printed) and divide the instructions by the packets.
//!
//! The heap is counted by a wrapper around the allocator: its peak from the first packet to the
//! last, over what was live once the frames were generated, so the figure is what the engine
//! (and the store) hold, not the bench's frames; per recorded call, over the most recordings
//! open at once.
//!
//! Two more stages split the engine's cost: `parse` (each frame's layers, every SIP message
//! with its SDP, every RTP header; no state kept, under callgrind toggle `*parse_pass*`) and
//! `correlate` (the engine as a worker that owns no call: dialogs, flows, streams' order and
//! digits, conversations and decisions, without decoding or the timeline).
//!
//! Usage: engine-bench [--calls N] [--talk-secs S] [--ramp-ms MS]
//! [--stage parse|correlate|engine|full|both|all] [--inband] [--shard I/N]
//! (`--talk-secs`: talk time once every call is up, default 10; `--ramp-ms`: the calls start
//! within about MS ms and hang up over as long, instead of one every 20-50 ms and a BYE every
//! 5 ms, which takes 350 s of ramp for 10,000 calls; `--inband` runs the in-band DTMF detector
//! on every stream, as a tenant with `on_demand.inband` does). The frames are held in memory,
//! about 140 MB per 1,000 calls at `--talk-secs 3 --ramp-ms 2000`. Memory per call at scale:
//! `engine-bench --calls 50000 --talk-secs 3 --ramp-ms 2000` (6.9 GiB of frames, 8.9 GB of
//! WAV files in the temporary directory). Build with `--features system-alloc` to run it
//! under valgrind's dhat or massif, which see only malloc.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use voxtap_core::vocab::Shard;
use voxtap_core::{Engine, EngineConfig, LinkType, Timestamp};
use voxtap_gen::{GenConfig, Scenario, generate};
use voxtap_perf_args::{arg, flag};
use voxtap_store::{RunSummary, Store, StoreOptions};

/// mimalloc, as in `voxtap`, counting allocations and live bytes while `COUNTING` is set.
/// With the `system-alloc` feature, the system allocator instead (for valgrind's heap
/// profilers).
struct Counting;

#[cfg(not(feature = "system-alloc"))]
const INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(feature = "system-alloc")]
const INNER: std::alloc::System = std::alloc::System;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the inner allocator unchanged; the counters are side effects only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        let live = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { INNER.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { INNER.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        if new >= l.size() {
            let live = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        // SAFETY: as in `dealloc`, and `new` is the caller's.
        unsafe { INNER.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Events per batch of `voxtap`'s writer thread (`userspace/voxtap/src/writer.rs`, `BATCH`).
const WRITER_BATCH: usize = 512;

const USAGE: &str = "\
engine-bench: the single-threaded engine on generated concurrent G.711 calls

Usage: engine-bench [--calls N] [--talk-secs S] [--ramp-ms MS]
                    [--stage parse|correlate|engine|full|both|all]
                    [--shard I/N] [--inband] [--monitor] [--evidence]

  --calls N        concurrent calls to generate (default 1000)
  --talk-secs S    talk time once every call is up (default 10)
  --ramp-ms MS     start the calls within about MS ms and hang up over as long
                   (default: one every 20-50 ms, a BYE every 5 ms)
  --stage STAGE    parse (each frame's layers, SIP with its SDP, RTP headers; no state),
                   correlate (the engine without the audio: dialogs, flows, streams'
                   order and digits, conversations, decisions; a worker owning no call),
                   engine (parse, correlate, decode, mix), full (and the store writing
                   WAV and the catalog to a temporary directory), both (engine and full,
                   the default) or all four
  --shard I/N      the engine as worker I of N (`voxtap replay --workers N`)
  --inband         run the in-band DTMF detector on every stream
  --monitor        emit the live view's events, as `voxtap run` does
  --evidence       keep each call's frames as evidence
  -h, --help       this text

The frames are generated in memory first (about 140 MB per 1,000 calls at --talk-secs 3
--ramp-ms 2000) and are not timed. For a figure that does not move with the machine's load,
run it under callgrind (the command is printed at the end).";

fn main() {
    voxtap_perf_args::check_or_exit(
        USAGE,
        &["--calls", "--talk-secs", "--stage", "--ramp-ms", "--shard"],
        &["--inband", "--monitor", "--evidence"],
    );
    let calls: usize = arg("--calls").map_or(1000, |v| v.parse().expect("--calls N"));
    let talk: f64 = arg("--talk-secs").map_or(10.0, |v| v.parse().expect("--talk-secs S"));
    let stage = arg("--stage").unwrap_or_else(|| "both".into());
    let stages: &[&str] = match stage.as_str() {
        "parse" => &["parse"],
        "correlate" => &["correlate"],
        "engine" => &["engine"],
        "full" => &["full"],
        "both" => &["engine", "full"],
        "all" => &["parse", "correlate", "engine", "full"],
        other => {
            eprintln!("engine-bench: unknown --stage {other:?}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runs = |s: &str| stages.contains(&s);
    let ramp_ms: Option<f64> = arg("--ramp-ms").map(|v| v.parse().expect("--ramp-ms MS"));
    // `--shard I/N`: the engine as worker I of N (`voxtap replay --workers N`), which reads
    // every packet and decodes and records only its calls.
    let shard = arg("--shard").map_or(Shard::ALL, |v| {
        let (i, n) = v.split_once('/').expect("--shard I/N");
        Shard {
            index: i.parse().expect("--shard I/N"),
            count: n.parse().expect("--shard I/N"),
        }
    });
    let engine_cfg = EngineConfig {
        inband_dtmf: flag("--inband"),
        // As `voxtap run` with its live view (the default there): SIP and progress events.
        monitor: flag("--monitor"),
        // Each call's frames kept as evidence (`[evidence] enabled`), chunks dropped here.
        evidence: flag("--evidence").then(voxtap_core::evidence::EvidenceConfig::default),
        shard,
        ..EngineConfig::default()
    };

    let mut cfg = GenConfig::new(Scenario::Concurrent);
    cfg.calls = calls;
    cfg.talk_secs = talk;
    cfg.ramp_ms = ramp_ms;
    let t = Instant::now();
    let (frames, truth) = generate(&cfg);
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    eprintln!(
        "engine-bench: generated {} calls, {} frames, {:.1} MB in {:.1} s (the bench's heap: {:.1} MiB, not counted below)",
        truth.calls.len(),
        frames.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        LIVE.load(Ordering::Relaxed) as f64 / 1048576.0
    );
    let ramp = ramp_ms.map_or_else(String::new, |ms| format!(" --ramp-ms {ms}"));
    let shard_arg = if shard == Shard::ALL {
        String::new()
    } else {
        format!(" --shard {}/{}", shard.index, shard.count)
    };

    println!("| stage | calls | frames | seconds | packets/s | recordings |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut memory = None;
    let mut full_memory = None;
    if runs("parse") {
        let t = Instant::now();
        let c = parse_pass(&frames);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(c.frames, frames.len() as u64);
        assert!(c.sip > 0 && c.rtp > 0, "SIP and RTP parsed: {c:?}");
        eprintln!(
            "engine-bench: parse: {} SIP messages ({} with SDP), {} RTP packets, {} other frames",
            c.sip, c.sdp, c.rtp, c.other
        );
        println!(
            "| parse | {calls} | {} | {secs:.3} | {:.0} | - |",
            frames.len(),
            frames.len() as f64 / secs
        );
    }
    if runs("correlate") {
        // A worker that owns no call: every call's state, no call's audio.
        let nobody = Shard {
            index: u32::MAX,
            count: u32::MAX,
        };
        let mut engine = Engine::new(EngineConfig {
            shard: nobody,
            ..engine_cfg.clone()
        });
        let t = Instant::now();
        for f in &frames {
            engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
            while engine.poll_event().is_some() {}
        }
        engine.finish();
        while engine.poll_event().is_some() {}
        let secs = t.elapsed().as_secs_f64();
        let s = engine.stats();
        assert_eq!(s.frames, frames.len() as u64);
        assert_eq!(
            s.rtp_matched, s.rtp_packets,
            "every RTP packet tied to its call"
        );
        println!(
            "| correlate | {calls} | {} | {secs:.3} | {:.0} | - |",
            frames.len(),
            frames.len() as f64 / secs
        );
    }
    if runs("engine") {
        let mut engine = Engine::new(engine_cfg.clone());
        let t = Instant::now();
        let mut events = 0u64;
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let mut most_calls = 0usize;
        // Allocations are counted over the middle half, when every call is up and talking:
        // what the packets themselves cost, not the calls' setup and teardown.
        let (from, to) = (frames.len() / 4, frames.len() * 3 / 4);
        for (i, f) in frames.iter().enumerate() {
            if i == from {
                COUNTING.store(true, Ordering::Relaxed);
            } else if i == to {
                COUNTING.store(false, Ordering::Relaxed);
            }
            engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
            while engine.poll_event().is_some() {
                events += 1;
            }
            if i % 4096 == 0 {
                most_calls = most_calls.max(engine.active_recordings());
            }
        }
        let peak = PEAK.load(Ordering::Relaxed) - base;
        // Said now too: a large run's store stage may still fail (a full disk).
        eprintln!(
            "engine-bench: engine: heap peak {:.1} MiB with {most_calls} recordings open",
            peak as f64 / 1048576.0
        );
        memory = Some((
            ALLOCS.load(Ordering::Relaxed) as f64 / (to - from) as f64,
            peak,
            most_calls,
        ));
        engine.finish();
        while engine.poll_event().is_some() {
            events += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        let s = engine.stats();
        assert_eq!(s.frames, frames.len() as u64);
        assert!(events > 0);
        eprintln!(
            "engine-bench: engine: {} of {} RTP packets had their route checked again (an endpoint a flow uses changed hands)",
            engine.route_rechecks(),
            s.rtp_packets
        );
        println!(
            "| engine | {calls} | {} | {secs:.3} | {:.0} | {} |",
            frames.len(),
            frames.len() as f64 / secs,
            s.recordings_started
        );
    }
    if runs("full") {
        let dir = std::env::temp_dir().join(format!("voxtap-engine-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir, StoreOptions::default()).expect("open store");
        let mut engine = Engine::new(engine_cfg.clone());
        let t = Instant::now();
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let mut most = 0usize;
        // As `voxtap`'s writer takes them: in batches of up to 512 events, each one
        // transaction for what commits in it.
        let mut in_batch = 0usize;
        store.begin_batch();
        for (i, f) in frames.iter().enumerate() {
            engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
            while let Some(e) = engine.poll_event() {
                store.handle(e).expect("store");
                in_batch += 1;
                if in_batch == WRITER_BATCH {
                    store.end_batch().expect("store");
                    store.begin_batch();
                    in_batch = 0;
                }
            }
            if i % 4096 == 0 {
                most = most.max(engine.active_recordings());
            }
        }
        let full_peak = PEAK.load(Ordering::Relaxed) - base;
        eprintln!(
            "engine-bench: full: heap peak {:.1} MiB with {most} recordings open",
            full_peak as f64 / 1048576.0
        );
        engine.finish();
        while let Some(e) = engine.poll_event() {
            store.handle(e).expect("store");
        }
        store.end_batch().expect("store");
        let s = engine.stats().clone();
        let report = store
            .finish(&RunSummary::from_stats(&s, engine.now()))
            .expect("finish store");
        let secs = t.elapsed().as_secs_f64();
        println!(
            "| full (WAV + catalog) | {calls} | {} | {secs:.3} | {:.0} | {} |",
            frames.len(),
            frames.len() as f64 / secs,
            report.recordings
        );
        full_memory = Some((full_peak, most));
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!();
    if let Some((per_packet, peak, most)) = memory {
        println!(
            "engine: {per_packet:.3} allocations per packet while every call talks (events included); heap peak {:.1} MiB with {most} recordings open, {:.1} KiB per recorded call",
            peak as f64 / 1048576.0,
            peak as f64 / 1024.0 / most.max(1) as f64
        );
    }
    if let Some((peak, most)) = full_memory {
        println!(
            "full: heap peak {:.1} MiB with {most} recordings open, {:.1} KiB per recorded call (engine, WAV buffers, catalog)",
            peak as f64 / 1048576.0,
            peak as f64 / 1024.0 / most.max(1) as f64
        );
    }
    println!(
        "reproduce: cargo build --release -p voxtap-perf-engine && target/release/engine-bench --calls {calls} --talk-secs {talk}{ramp}{shard_arg} --stage {stage}"
    );
    println!(
        "instructions: valgrind --tool=callgrind --toggle-collect='*Engine::handle*' target/release/engine-bench --calls {calls} --talk-secs {talk}{ramp} --stage engine  (then Ir / frames; --stage correlate the same way; --stage parse with --toggle-collect='*parse_pass*')"
    );
}

/// What the parse stage found.
#[derive(Debug, Default)]
struct ParseCounts {
    frames: u64,
    sip: u64,
    sdp: u64,
    rtp: u64,
    other: u64,
}

/// Parse only: each frame's layers, then a SIP message (and its SDP body) or an RTP header, as
/// the engine reads them, keeping nothing.
#[inline(never)]
fn parse_pass(frames: &[voxtap_gen::Frame]) -> ParseCounts {
    use std::hint::black_box;
    use voxtap_core::wire::{self, Decoded, Transport};
    use voxtap_core::{rtp, sdp, sip};
    let mut c = ParseCounts::default();
    for f in frames {
        c.frames += 1;
        let payload = match wire::decode(LinkType::Ethernet, &f.data) {
            Ok(Decoded::Packet {
                transport: Transport::Udp { payload, .. } | Transport::Tcp { payload, .. },
                ..
            }) => payload,
            _ => {
                c.other += 1;
                continue;
            }
        };
        if sip::looks_like_sip(payload) {
            if let Ok(m) = sip::Message::parse(payload) {
                c.sip += 1;
                if m.content_type().is_some_and(|t| t.contains("sdp"))
                    && let Ok(d) = sdp::parse(m.body)
                {
                    c.sdp += 1;
                    black_box(&d);
                }
                black_box(&m);
            } else {
                c.other += 1;
            }
        } else if rtp::looks_like_rtp(payload)
            && let Ok(p) = rtp::Packet::new_checked(payload)
        {
            c.rtp += 1;
            black_box((
                p.ssrc(),
                p.sequence_number(),
                p.timestamp(),
                p.payload_type(),
            ));
        } else {
            c.other += 1;
        }
    }
    c
}
