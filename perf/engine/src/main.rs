//! engine-bench: the single-threaded engine on generated concurrent G.711 calls.
//!
//! The frames are generated in memory first (not timed), then fed to `Engine::handle` in one
//! thread. Two stages are timed: `engine` (parse, correlate, decode and mix; the events are
//! drained and dropped) and `full` (the same, with every event written by the store: WAV files
//! and the SQLite catalog in a temporary directory). For a figure that does not move with the
//! machine's load, run it under callgrind with `--toggle-collect` on `Engine::handle` (the
//! command is printed) and divide the instructions by the packets.
//!
//! Usage: engine-bench [--calls N] [--talk-secs S] [--stage engine|full|both] [--inband]
//! (`--inband` runs the in-band DTMF detector on every stream, as a tenant with
//! `on_demand.inband` does).

use std::time::Instant;

use voxtap_core::{Engine, EngineConfig, LinkType, Timestamp};
use voxtap_gen::{GenConfig, Scenario, generate};
use voxtap_store::{RunSummary, Store, StoreOptions};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let calls: usize = arg("--calls").map_or(1000, |v| v.parse().expect("--calls N"));
    let talk: f64 = arg("--talk-secs").map_or(10.0, |v| v.parse().expect("--talk-secs S"));
    let stage = arg("--stage").unwrap_or_else(|| "both".into());
    let engine_cfg = EngineConfig {
        inband_dtmf: std::env::args().any(|a| a == "--inband"),
        ..EngineConfig::default()
    };

    let mut cfg = GenConfig::new(Scenario::Concurrent);
    cfg.calls = calls;
    cfg.talk_secs = talk;
    let t = Instant::now();
    let (frames, truth) = generate(&cfg);
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    eprintln!(
        "engine-bench: generated {} calls, {} frames, {:.1} MB in {:.1} s",
        truth.calls.len(),
        frames.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    println!("| stage | calls | frames | seconds | packets/s | recordings |");
    println!("|---|---:|---:|---:|---:|---:|");
    if stage == "engine" || stage == "both" {
        let mut engine = Engine::new(engine_cfg.clone());
        let t = Instant::now();
        let mut events = 0u64;
        for f in &frames {
            engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
            while engine.poll_event().is_some() {
                events += 1;
            }
        }
        engine.finish();
        while engine.poll_event().is_some() {
            events += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        let s = engine.stats();
        assert_eq!(s.frames, frames.len() as u64);
        assert!(events > 0);
        println!(
            "| engine | {calls} | {} | {secs:.3} | {:.0} | {} |",
            frames.len(),
            frames.len() as f64 / secs,
            s.recordings_started
        );
    }
    if stage == "full" || stage == "both" {
        let dir = std::env::temp_dir().join(format!("voxtap-engine-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir, StoreOptions::default()).expect("open store");
        let mut engine = Engine::new(engine_cfg.clone());
        let t = Instant::now();
        for f in &frames {
            engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
            while let Some(e) = engine.poll_event() {
                store.handle(e).expect("store");
            }
        }
        engine.finish();
        while let Some(e) = engine.poll_event() {
            store.handle(e).expect("store");
        }
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
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!();
    println!(
        "reproduce: cargo build --release -p voxtap-perf-engine && target/release/engine-bench --calls {calls} --talk-secs {talk}"
    );
    println!(
        "instructions: valgrind --tool=callgrind --toggle-collect='*Engine::handle*' target/release/engine-bench --calls {calls} --talk-secs {talk} --stage engine  (then Ir / frames)"
    );
}
