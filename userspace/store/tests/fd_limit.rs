//! 50,000 recordings open at once under a descriptor limit of 1,024: the writer does not
//! need a descriptor per recording. Its own process, as it lowers the process's limit.

mod common;

use std::fs;

use common::*;
use rusqlite::Connection;
use voxtap_store::{RunSummary, Store, StoreOptions};

#[test]
fn fifty_thousand_recordings_at_once_under_a_limit_of_1024_descriptors() {
    const CALLS: u64 = 50_000;
    const PACKETS: u64 = 8;
    set_nofile(1024);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut store = Store::open(
        &dir,
        StoreOptions {
            // A flush every 40 ms: each file goes to disk four times, closed in between.
            wav_flush_secs: 0.04,
            source: "limits".into(),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let mut most = open_fds();
    for n in 1..=CALLS {
        open_call(&mut store, n);
        if n % 1000 == 0 {
            most = most.max(open_fds());
        }
    }
    for p in 0..PACKETS {
        for n in 1..=CALLS {
            store.handle(audio(n, p)).unwrap();
        }
        most = most.max(open_fds());
    }
    let stats = voxtap_store::pool_stats();
    for n in 1..=CALLS {
        stop(&mut store, n, PACKETS * FRAMES);
    }
    let report = store.finish(&RunSummary::default()).unwrap();
    eprintln!(
        "{CALLS} recordings: at most {most} descriptors open; pool {stats:?}; {} finished",
        report.recordings_finalised.len()
    );
    assert!(most < 1024, "{most} descriptors open at once");
    assert!(
        stats.evictions > CALLS,
        "the pool closed files to stay under its limit: {stats:?}"
    );
    assert_eq!(report.recordings_finalised.len() as u64, CALLS);
    assert_eq!(report.recordings_write_failed, 0);

    let db = Connection::open(dir.join("catalog.sqlite")).unwrap();
    let complete: i64 = db
        .query_row(
            "SELECT count(*) FROM recordings WHERE state = 'complete' AND duration_s = ?1",
            [(PACKETS * FRAMES) as f64 / f64::from(RATE)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(complete as u64, CALLS);
    let files = wavs(&dir.join("recordings"));
    assert_eq!(
        files.len() as u64,
        CALLS,
        "one file per recording, no .part or .tmp left"
    );
    let want_len = 44 + PACKETS * FRAMES * 4;
    for f in &files {
        assert_eq!(fs::metadata(f).unwrap().len(), want_len, "{}", f.display());
    }
    // Every thousandth file, read back sample by sample.
    let mut paths: Vec<(i64, String)> = db
        .prepare("SELECT call_id, path FROM recordings ORDER BY call_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    paths.retain(|(id, _)| id % 1000 == 1);
    // Call rows are 1..=CALLS in order, as the recordings' handles.
    for (id, rel) in paths {
        check_wav(&dir.join(rel), id as u64, PACKETS * FRAMES);
    }
}
