//! Same output whatever the worker count (issue 12). Every worker reads all the input and
//! keeps the same state for every call, but decodes, records and reports only the calls it
//! owns ([`voxtap_core::vocab::Shard`]). These tests run generated captures — every scenario
//! of the mix, SRTP, RFC 4733 digits, loss and reordering, and calls through a PBX seen on
//! both sides, whose legs make one conversation — through one engine and through two and
//! three, and check that together the workers say exactly what one engine says: each call's
//! events in the same order, each recording's audio sample for sample, the same events for
//! each packet, and the same run figures. The end-to-end test replays the same captures with
//! `voxtap replay --workers 1` and `--workers 3`: the same catalog rows (ids and run times
//! aside) and byte-identical recordings.

use std::collections::BTreeMap;
use std::path::Path;

use voxtap_core::event::Event;
use voxtap_core::stats::Stats;
use voxtap_core::vocab::Shard;
use voxtap_core::{Engine, EngineConfig, LinkType, Timestamp};
use voxtap_gen::{Frame, GenConfig, Mirror, Scenario};
use voxtap_tests::{Scratch, catalog, replay_workers};

/// A recording's output: audio and silence runs, adjacent runs of a kind joined (how the
/// engine cuts them into events depends on what else is queued, and changes nothing).
#[derive(Debug, PartialEq)]
enum Run {
    Audio(Vec<i16>),
    Silence(u64),
}

#[derive(Default)]
struct Outcome {
    /// Each call's events (audio aside), in order.
    calls: BTreeMap<u64, Vec<String>>,
    /// Each recording's audio.
    audio: BTreeMap<u64, Vec<Run>>,
    /// The events (audio aside) each input packet caused, sorted: several calls' events for
    /// one packet may come in another order.
    per_packet: BTreeMap<usize, Vec<String>>,
    stats: Stats,
    owned: Vec<u64>,
}

fn note(out: &mut Outcome, packet: usize, ev: Event) {
    match ev {
        Event::RecordingAudio { rec, samples } => {
            let runs = out.audio.entry(rec.0).or_default();
            match runs.last_mut() {
                Some(Run::Audio(a)) => a.extend_from_slice(&samples),
                _ => runs.push(Run::Audio(samples)),
            }
        }
        Event::RecordingSilence { rec, frames } => {
            let runs = out.audio.entry(rec.0).or_default();
            match runs.last_mut() {
                Some(Run::Silence(f)) => *f += frames,
                _ => runs.push(Run::Silence(frames)),
            }
        }
        ev => {
            let call = ev.call().map_or(u64::MAX, |c| c.0);
            let text = format!("{ev:?}");
            out.calls.entry(call).or_default().push(text.clone());
            out.per_packet.entry(packet).or_default().push(text);
        }
    }
}

/// Replays `frames` through `count` workers, as `voxtap replay --workers` does.
fn replay(frames: &[Frame], count: u32, inband: bool) -> Outcome {
    let mut engines: Vec<Engine> = (0..count)
        .map(|index| {
            let cfg = EngineConfig {
                shard: Shard { index, count },
                inband_dtmf: inband,
                ..EngineConfig::default()
            };
            Engine::new(cfg)
        })
        .collect();
    let mut out = Outcome::default();
    for (i, f) in frames.iter().enumerate() {
        for e in &mut engines {
            e.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
            while let Some(ev) = e.poll_event() {
                note(&mut out, i, ev);
            }
        }
    }
    for e in &mut engines {
        e.finish();
        while let Some(ev) = e.poll_event() {
            note(&mut out, usize::MAX, ev);
        }
    }
    for v in out.per_packet.values_mut() {
        v.sort();
    }
    let stats: Vec<Stats> = engines.iter().map(|e| e.stats().clone()).collect();
    out.stats = Stats::merge_shards(&stats);
    out.owned = engines.iter().map(Engine::owned_rtp_packets).collect();
    out
}

fn assert_same(frames: &[Frame], what: &str) {
    let one = replay(frames, 1, false);
    assert!(
        one.audio
            .values()
            .any(|r| r.iter().any(|x| matches!(x, Run::Audio(_)))),
        "{what}: the capture must record audio"
    );
    for count in [2, 3] {
        let many = replay(frames, count, false);
        assert_eq!(
            one.calls.keys().collect::<Vec<_>>(),
            many.calls.keys().collect::<Vec<_>>(),
            "{what}: the same calls with {count} workers"
        );
        for (call, evs) in &one.calls {
            assert_eq!(
                evs, &many.calls[call],
                "{what}: call {call}'s events with {count} workers"
            );
        }
        assert_eq!(
            one.audio.keys().collect::<Vec<_>>(),
            many.audio.keys().collect::<Vec<_>>(),
            "{what}: the same recordings with {count} workers"
        );
        for (rec, runs) in &one.audio {
            assert!(
                runs == &many.audio[rec],
                "{what}: recording {rec}'s audio differs with {count} workers"
            );
        }
        assert_eq!(
            one.per_packet, many.per_packet,
            "{what}: events per packet with {count} workers"
        );
        assert_eq!(
            one.stats, many.stats,
            "{what}: run figures with {count} workers"
        );
        // The audio work is shared out: every worker owns some of it, and together all of it.
        assert_eq!(
            many.owned.iter().sum::<u64>(),
            one.owned[0],
            "{what}: every RTP packet of a call is one worker's"
        );
        assert!(
            many.owned.iter().all(|&n| n > 0),
            "{what}: every worker has work with {count} workers: {:?}",
            many.owned
        );
    }
}

#[test]
fn mix_is_the_same_with_two_and_three_workers() {
    let mut cfg = GenConfig::new(Scenario::Mix);
    cfg.calls = 2;
    let (frames, _) = voxtap_gen::generate(&cfg);
    assert_same(&frames, "mix");
}

#[test]
fn srtp_dtmf_and_loss_are_the_same_with_workers() {
    for scenario in [
        Scenario::Srtp,
        Scenario::Dtmf,
        Scenario::LossReorder,
        Scenario::BackToBack,
    ] {
        let mut cfg = GenConfig::new(scenario);
        // Enough calls that every worker owns some.
        cfg.calls = cfg.calls.max(3);
        let (frames, _) = voxtap_gen::generate(&cfg);
        assert_same(&frames, &format!("{scenario:?}"));
    }
}

/// The legs of a conversation through a PBX are different calls, and may be different
/// workers': which leg records, and which is covered, is the same in every worker.
#[test]
fn pbx_conversations_are_the_same_with_workers() {
    for scenario in Scenario::PBX {
        let mut cfg = GenConfig::new(scenario);
        cfg.mirror = Mirror::Both;
        let (frames, _) = voxtap_gen::generate(&cfg);
        assert_same(&frames, &format!("{scenario:?} seen on both sides"));
    }
}

/// The catalog's rows as text, ids and run times left out, sorted.
fn rows(out: &Path) -> BTreeMap<String, Vec<String>> {
    let db = catalog(out);
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut all = BTreeMap::new();
    for t in tables {
        if t == "runs" || t == "schema_version" {
            continue;
        }
        let mut st = db.prepare(&format!("SELECT * FROM {t}")).unwrap();
        let names: Vec<String> = st.column_names().map(str::to_string).collect();
        let keep: Vec<usize> = (0..names.len())
            .filter(|&i| {
                let n = names[i].as_str();
                n != "id" && !n.ends_with("_id") && n != "run" && n != "path"
            })
            .collect();
        let mut lines: Vec<String> = st
            .query_map([], |r| {
                let cells: Vec<String> = keep
                    .iter()
                    .map(|&i| format!("{}={:?}", names[i], r.get_ref(i).unwrap()))
                    .collect();
                Ok(cells.join(" "))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        lines.sort();
        all.insert(t, lines);
    }
    all
}

/// Every recording's bytes, by file name.
fn recordings(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![out.join("recordings")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let name = p.strip_prefix(out).unwrap().display().to_string();
                files.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

#[test]
fn replay_writes_the_same_catalog_and_files_with_workers() {
    let scratch = Scratch::new("workers");
    let mut cfg = GenConfig::new(Scenario::Mix);
    cfg.calls = 2;
    let (mut frames, _) = voxtap_gen::generate(&cfg);
    let mut pbx = GenConfig::new(Scenario::AttendedTransfer);
    pbx.mirror = Mirror::Both;
    let (more, _) = voxtap_gen::generate(&pbx);
    frames.extend(more);
    frames.sort_by_key(|f| f.ts_ns);
    let pcap = scratch.path().join("mix.pcap");
    voxtap_gen::write_pcap(&pcap, &frames).unwrap();
    let mut outs = Vec::new();
    for workers in ["1", "3"] {
        let out = scratch.path().join(format!("out{workers}"));
        let o = replay_workers(&out, None, &[&pcap], Some(workers));
        assert!(
            o.status.success(),
            "replay --workers {workers}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            stdout.contains(&format!("workers         {workers:>10}")),
            "the summary names the workers: {stdout}"
        );
        outs.push((out, stdout));
    }
    let (a, b) = (rows(&outs[0].0), rows(&outs[1].0));
    assert!(
        a["recordings"].len() >= 10,
        "the mix records: {:?}",
        a["recordings"]
    );
    for (t, lines) in &a {
        assert_eq!(lines, &b[t], "table {t} with 1 and 3 workers");
    }
    let (fa, fb) = (recordings(&outs[0].0), recordings(&outs[1].0));
    assert_eq!(
        fa.keys().collect::<Vec<_>>(),
        fb.keys().collect::<Vec<_>>(),
        "the same recording files"
    );
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs with 1 and 3 workers");
    }
    // The summaries agree but for timings and the per-worker lines.
    let figures = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| {
                !l.contains("elapsed")
                    && !l.contains("writer queue")
                    && !l.starts_with("  worker")
                    && !l.starts_with("voxtap replay:")
                    && !l.contains("catalog  ")
                    && !l.contains("recordings      /")
            })
            .map(str::to_string)
            .collect()
    };
    assert_eq!(figures(&outs[0].1), figures(&outs[1].1));
}
