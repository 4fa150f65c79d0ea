//! A recordings volume that fills up: what fits in memory is kept and written when space
//! returns; past that a recording ends `partial` with what reached the disk, and the run goes
//! on. Mounts a tmpfs, so it needs root; says SKIPPED loudly without it.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rusqlite::Connection;
use voxtap_store::{RunSummary, Store, StoreOptions};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Option<Mount> {
    fs::create_dir_all(at).unwrap();
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0750"),
            "tmpfs",
        ])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(at.to_path_buf()))
}

/// The pooled files' hold-back is one per process (`audio::sink`, as one store runs per
/// process), so tests that fill a disk must not run at once: one test's full disk would hold
/// the other's files back (found flaky in CI, about one run in two).
static ONE_FULL_DISK_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_full_recordings_volume_loses_nothing_it_can_hold_and_resumes_when_space_returns() {
    let _one = ONE_FULL_DISK_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let test = "a_full_recordings_volume";
    if !is_root() {
        eprintln!("\n*** SKIPPED {test}: mounting a tmpfs needs root ***\n");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let Some(_mount) = mount_tmpfs(&dir.join("recordings"), "16m") else {
        eprintln!("\n*** SKIPPED {test}: cannot mount a tmpfs ***\n");
        return;
    };
    // The catalog stays on the big disk; the recordings volume is nearly full.
    let filler = dir.join("recordings/filler");
    let free = |p: &Path| {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let avail = free(&dir.join("recordings"));
    fs::write(&filler, vec![1u8; (avail - 256 * 1024) as usize]).unwrap();
    let mut store = Store::open(
        &dir,
        StoreOptions {
            source: "full".into(),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    // Ten calls of 20 s (640 KB each): the volume fills during the first seconds.
    const CALLS: u64 = 10;
    const PACKETS: u64 = 1000;
    for n in 1..=CALLS {
        open_call(&mut store, n);
    }
    let mut refused_seen = 0;
    for p in 0..PACKETS / 2 {
        for n in 1..=CALLS {
            store.handle(audio(n, p)).unwrap();
        }
        refused_seen = refused_seen.max(store.write_health().refused);
    }
    let health = store.write_health();
    eprintln!("half way, disk full: {health:?}");
    assert!(refused_seen > 0, "the disk refused some writes: {health:?}");
    assert!(health.held_bytes > 0);
    assert_eq!(
        health.failed, 0,
        "nothing given up yet: 10 s is within what is held"
    );
    // Space returns: everything held is written, and the calls go on.
    fs::remove_file(&filler).unwrap();
    for p in PACKETS / 2..PACKETS {
        for n in 1..=CALLS {
            store.handle(audio(n, p)).unwrap();
        }
    }
    assert_eq!(store.write_health().refused, 0);
    for n in 1..=CALLS {
        stop(&mut store, n, PACKETS * FRAMES);
    }
    let report = store.finish(&RunSummary::default()).unwrap();
    assert_eq!(report.recordings_write_failed, 0);
    let db = Connection::open(dir.join("catalog.sqlite")).unwrap();
    let rows: Vec<(i64, String, String)> = db
        .prepare("SELECT call_id, path, state FROM recordings ORDER BY call_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len() as u64, CALLS);
    for (id, rel, state) in rows {
        assert_eq!(state, "complete");
        check_wav(&dir.join(rel), id as u64, PACKETS * FRAMES);
    }
}

#[test]
fn a_volume_that_stays_full_ends_recordings_partial_and_the_run_goes_on() {
    let _one = ONE_FULL_DISK_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let test = "a_volume_that_stays_full";
    if !is_root() {
        eprintln!("\n*** SKIPPED {test}: mounting a tmpfs needs root ***\n");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let Some(_mount) = mount_tmpfs(&dir.join("recordings"), "1m") else {
        eprintln!("\n*** SKIPPED {test}: cannot mount a tmpfs ***\n");
        return;
    };
    let mut store = Store::open(&dir, StoreOptions::default()).unwrap();
    // Three calls of 3 minutes: 1 MiB holds 33 s of them, memory 4 MiB a file more.
    const CALLS: u64 = 3;
    const PACKETS: u64 = 9000;
    for n in 1..=CALLS {
        open_call(&mut store, n);
    }
    for p in 0..PACKETS {
        for n in 1..=CALLS {
            store.handle(audio(n, p)).unwrap();
        }
    }
    let health = store.write_health();
    assert_eq!(health.failed, CALLS, "{health:?}");
    for n in 1..=CALLS {
        stop(&mut store, n, PACKETS * FRAMES);
    }
    // A call after them still gets its row, and its recording says why it has no file.
    open_call(&mut store, CALLS + 1);
    store.handle(audio(CALLS + 1, 0)).unwrap();
    stop(&mut store, CALLS + 1, FRAMES);
    let report = store.finish(&RunSummary::default()).unwrap();
    assert!(report.ms_after_write_failure > 0);
    let db = Connection::open(dir.join("catalog.sqlite")).unwrap();
    let rows: Vec<(i64, String, String, Option<String>, f64, String)> = db
        .prepare(
            "SELECT call_id, path, state, state_reason, duration_s, stop_reason
             FROM recordings ORDER BY call_id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len() as u64, CALLS + 1);
    let mut states = HashSet::new();
    for (id, rel, state, why, secs, stop) in &rows {
        let why = why.as_deref().unwrap_or("");
        assert!(why.contains("write-failed"), "{id}: {why}");
        assert!(why.contains("No space left on device"), "{id}: {why}");
        assert_eq!(stop, "call-ended");
        states.insert(state.clone());
        let path = dir.join(rel);
        if state == "partial" {
            // What reached the disk plays, and the catalog says how long it is.
            let r = hound::WavReader::open(&path).unwrap();
            let frames = u64::from(r.duration());
            assert!(frames > 0);
            assert!((frames as f64 / f64::from(RATE) - secs).abs() < 1e-6);
            check_wav(&path, *id as u64, frames);
        } else {
            assert_eq!(state, "missing", "{id}");
            assert!(!path.exists());
        }
    }
    assert!(states.contains("partial"), "{rows:?}");
    let calls: i64 = db
        .query_row(
            "SELECT count(*) FROM calls WHERE state = 'ended'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(calls as u64, CALLS + 1, "every call catalogued");
}
