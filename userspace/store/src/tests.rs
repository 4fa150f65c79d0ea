//! Store tests: events built by hand, a temporary DIR, the catalog read back with SQL and the
//! WAV files read back with hound.

#![allow(clippy::type_complexity)] // row tuples read back whole

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use voxtap_core::vocab::{
    Action, DtmfSource, Party, RecordingFormat, Side, SipTransport, StreamHandle,
};

use super::*;

/// 2024-03-01T10:00:00Z.
const T0: u64 = 1_709_287_200;
const RATE: u32 = 8000;

fn t(ms: u64) -> Timestamp {
    Timestamp::from_nanos(T0 * 1_000_000_000 + ms * 1_000_000)
}

fn opts() -> StoreOptions {
    StoreOptions {
        source: "test.pcap".into(),
        ..StoreOptions::default()
    }
}

/// A known, frame-dependent stereo pattern: different on each channel.
fn frame(i: u64) -> (i16, i16) {
    (
        ((i % 2000) as i16) * 16 - 16000,
        -(((i * 7) % 3000) as i16) * 10 + 15000,
    )
}

fn audio(rec: u64, from: u64, frames: u64) -> Event {
    let mut samples = Vec::with_capacity(frames as usize * 2);
    for i in from..from + frames {
        let (l, r) = frame(i);
        samples.push(l);
        samples.push(r);
    }
    Event::RecordingAudio {
        rec: RecordingHandle(rec),
        samples,
    }
}

fn started(call: u64, ms: u64, call_id: &str) -> Event {
    Event::CallStarted(CallStarted {
        call: CallHandle(call),
        ts: t(ms),
        sip_call_id: call_id.into(),
        from_tag: "1928301774".into(),
        caller: Party {
            user: "alice".into(),
            host: "atlanta.com".into(),
            display_name: Some("Alice".into()),
        },
        callee: Party {
            user: "bob".into(),
            host: "biloxi.com".into(),
            display_name: None,
        },
        caller_signalling: "192.0.2.10:5060".parse().unwrap(),
        callee_signalling: "[2001:db8::1]:5061".parse().unwrap(),
        transport: SipTransport::Udp,
        picked_up: false,
    })
}

fn answered(call: u64, ms: u64) -> Event {
    Event::CallAnswered {
        call: CallHandle(call),
        ts: t(ms),
        to_tag: "a6c85cf".into(),
    }
}

fn rec_started(rec: u64, call: u64, ms: u64) -> Event {
    Event::RecordingStarted(RecordingStarted {
        rec: RecordingHandle(rec),
        call: CallHandle(call),
        ts: t(ms),
        sample_rate: RATE,
        channels: 2,
        format: RecordingFormat::Wav,
        codec: "PCMU".into(),
        reason: "rule all-calls".into(),
        min_secs: None,
        repeats: None,
    })
}

/// What the engine says of a recording whose channels both heard `frames` frames.
fn heard(frames: u64) -> RecordingOutcome {
    let ch = voxtap_core::event::ChannelReport {
        heard_frames: frames,
        ..Default::default()
    };
    RecordingOutcome {
        state: RecordingState::Complete,
        reason: None,
        channels: [ch, ch],
    }
}

fn rec_stopped(rec: u64, call: u64, ms: u64, frames: u64) -> Event {
    Event::RecordingStopped {
        rec: RecordingHandle(rec),
        call: CallHandle(call),
        ts: t(ms),
        frames,
        reason: StopReason::CallEnded,
        outcome: heard(frames),
    }
}

fn ended(call: u64, ms: u64, reason: EndReason, status: Option<u16>) -> Event {
    Event::CallEnded {
        call: CallHandle(call),
        ts: t(ms),
        reason,
        final_status: status,
    }
}

fn stream(call: u64, side: Side, src: &str, dst: &str, lost: i64) -> Event {
    Event::StreamEnded(StreamReport {
        stream: StreamHandle(call * 10 + side as u64),
        call: CallHandle(call),
        side,
        src: src.parse::<SocketAddr>().unwrap(),
        dst: dst.parse::<SocketAddr>().unwrap(),
        ssrc: 0xdead_beef,
        payload_type: 0,
        codec: "PCMU".into(),
        clock_rate: 8000,
        first_ts: t(2000),
        last_ts: t(5000),
        packets: 150 - lost.max(0) as u64,
        lost,
        expected: 150,
        max_jitter_ms: 3.5,
        mean_jitter_ms: 1.25,
        late: 1,
        duplicates: 0,
        telephone_events: 4,
        comfort_noise: 0,
        status: "decoded",
        status_reason: None,
        fmtp: String::new(),
        audio_rate: 8000,
        decoded_packets: 150,
        decoded_samples: 24_000,
        concealed_samples: 160,
        recovered_samples: 0,
        undecodable_packets: 0,
        decrypt_failures: 0,
        security: "rtp".into(),
    })
}

/// Feeds `frames` frames of the pattern in 20 ms batches starting at frame `from`.
fn feed(store: &mut Store, rec: u64, from: u64, frames: u64) {
    let mut i = from;
    while i < from + frames {
        let n = 160.min(from + frames - i);
        store.handle(audio(rec, i, n)).expect("audio");
        i += n;
    }
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("hound cannot read {}: {e}", path.display()));
    let spec = r.spec();
    let samples = r
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .expect("samples");
    (spec, samples)
}

fn assert_pattern(samples: &[i16], frames: u64) {
    assert_eq!(samples.len() as u64, frames * 2, "sample count");
    for i in 0..frames {
        let (l, r) = frame(i);
        assert_eq!(
            (samples[2 * i as usize], samples[2 * i as usize + 1]),
            (l, r),
            "frame {i}"
        );
    }
}

fn catalog(dir: &Path) -> Connection {
    Connection::open_with_flags(
        dir.join(CATALOG_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open catalog read-only")
}

fn one<T: rusqlite::types::FromSql>(db: &Connection, sql: &str) -> T {
    db.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The whole life of an answered, recorded call with DTMF; returns the report.
fn full_call(store: &mut Store, call: u64, rec: u64, call_id: &str) {
    store.handle(started(call, 0, call_id)).unwrap();
    store.handle(answered(call, 2000)).unwrap();
    store.handle(rec_started(rec, call, 2000)).unwrap();
    feed(store, rec, 0, 3 * u64::from(RATE));
    store
        .handle(Event::Dtmf(DtmfEvent {
            call: CallHandle(call),
            ts: t(3500),
            digit: '5',
            duration_ms: 120,
            source: DtmfSource::Rfc4733,
            side: Side::Caller,
            offset_s: None,
        }))
        .unwrap();
    store
        .handle(stream(
            call,
            Side::Caller,
            "192.0.2.10:49170",
            "198.51.100.7:3456",
            3,
        ))
        .unwrap();
    store
        .handle(stream(
            call,
            Side::Callee,
            "[2001:db8::7]:3456",
            "192.0.2.10:49170",
            0,
        ))
        .unwrap();
    store
        .handle(rec_stopped(rec, call, 5000, 3 * u64::from(RATE)))
        .unwrap();
    store
        .handle(ended(call, 5000, EndReason::Bye, None))
        .unwrap();
}

fn summary() -> RunSummary {
    RunSummary {
        ended_ts: Some(t(6000)),
        frames: 1000,
        sip_messages: 9,
        rtp_packets: 300,
        rtp_unmatched: 2,
        malformed: 1,
        ignored: 5,
        calls_seen: 1,
        calls_answered: 1,
        rtp_streams: 2,
        late_packets: 1,
        concealed_ms: 20,
        ..RunSummary::default()
    }
}

#[test]
fn full_call_lifecycle_fills_every_table_and_writes_the_wav() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut store = Store::open(&dir, opts()).expect("open");
    assert_eq!(store.dir(), dir);
    full_call(&mut store, 1, 1, "a84b4c76e66710@pc33.atlanta.com");
    let report = store.finish(&summary()).expect("finish");

    let rel = PathBuf::from("recordings/2024/03/01/1-a84b4c76e66710_pc33.atlanta.com.wav");
    assert_eq!(
        report,
        StoreReport {
            recordings: 1,
            recordings_finalised: vec![rel.clone()],
            calls: 1,
            orphan_events: 0,
            ..StoreReport::default()
        }
    );

    // The WAV: format, length and content.
    let (spec, samples) = read_wav(&dir.join(&rel));
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, RATE, 16)
    );
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    assert_pattern(&samples, 24_000);
    assert!(
        !audio::part_path(&dir.join(&rel)).exists(),
        ".part left behind"
    );

    let db = catalog(&dir);
    assert_eq!(
        one::<i64>(&db, "PRAGMA user_version"),
        SCHEMA_VERSION as i64
    );
    assert_eq!(one::<String>(&db, "PRAGMA journal_mode"), "wal");

    let run: (String, Option<String>, String, i64, i64, i64, i64, i64, i64, i64, i64, i64, String, String) = db
        .query_row(
            "SELECT source, capture_end_time, state, frames, sip_messages, rtp_packets, rtp_unmatched,
                malformed, ignored, calls_seen, calls_answered, rtp_streams, started_at, ended_at FROM runs",
            [],
            |r| {
                Ok((
                    r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?,
                    r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(run.0, "test.pcap");
    assert_eq!(run.1.as_deref(), Some("2024-03-01T10:00:06.000Z"));
    assert_eq!(run.2, "complete");
    assert_eq!(
        (
            run.3, run.4, run.5, run.6, run.7, run.8, run.9, run.10, run.11
        ),
        (1000, 9, 300, 2, 1, 5, 1, 1, 2)
    );
    assert!(
        run.12.len() == 24 && run.12.ends_with('Z') && run.12 <= run.13,
        "wall clock {} {}",
        run.12,
        run.13
    );

    let call = db
        .query_row(
            "SELECT run_id, sip_call_id, from_tag, to_tag, caller_user, caller_host, caller_name, callee_user,
                callee_host, callee_name, caller_signalling, callee_signalling, transport, start_time,
                answer_time, end_time, duration_s, state, end_reason, final_status FROM calls",
            [],
            |r| {
                Ok(format!(
                    "{}|{}|{}|{:?}|{}|{}|{:?}|{}|{}|{:?}|{}|{}|{}|{}|{:?}|{:?}|{:?}|{}|{:?}|{:?}",
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                    r.get::<_, String>(12)?,
                    r.get::<_, String>(13)?,
                    r.get::<_, Option<String>>(14)?,
                    r.get::<_, Option<String>>(15)?,
                    r.get::<_, Option<f64>>(16)?,
                    r.get::<_, String>(17)?,
                    r.get::<_, Option<String>>(18)?,
                    r.get::<_, Option<i64>>(19)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        call,
        "1|a84b4c76e66710@pc33.atlanta.com|1928301774|Some(\"a6c85cf\")|alice|atlanta.com|Some(\"Alice\")|bob|\
         biloxi.com|None|192.0.2.10:5060|[2001:db8::1]:5061|udp|2024-03-01T10:00:00.000Z|\
         Some(\"2024-03-01T10:00:02.000Z\")|Some(\"2024-03-01T10:00:05.000Z\")|Some(3.0)|ended|Some(\"bye\")|None"
    );

    let mut s = db
        .prepare(
            "SELECT call_id, side, src_addr, src_port, dst_addr, dst_port, ssrc, payload_type, codec, clock_rate,
                first_time, last_time, packets, expected, lost, loss_pct, max_jitter_ms, mean_jitter_ms, late,
                telephone_events, comfort_noise FROM streams ORDER BY id",
        )
        .unwrap();
    let streams: Vec<String> = s
        .query_map([], |r| {
            Ok(format!(
                "{} {} {}:{} {}:{} {} {} {} {} {} {} {} {} {} {:.1} {} {} {} {} {}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, i64>(9)?,
                r.get::<_, String>(10)?,
                r.get::<_, String>(11)?,
                r.get::<_, i64>(12)?,
                r.get::<_, i64>(13)?,
                r.get::<_, i64>(14)?,
                r.get::<_, f64>(15)?,
                r.get::<_, f64>(16)?,
                r.get::<_, f64>(17)?,
                r.get::<_, i64>(18)?,
                r.get::<_, i64>(19)?,
                r.get::<_, i64>(20)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        streams,
        [
            "1 caller 192.0.2.10:49170 198.51.100.7:3456 3735928559 0 PCMU 8000 2024-03-01T10:00:02.000Z \
             2024-03-01T10:00:05.000Z 147 150 3 2.0 3.5 1.25 1 4 0",
            "1 callee 2001:db8::7:3456 192.0.2.10:49170 3735928559 0 PCMU 8000 2024-03-01T10:00:02.000Z \
             2024-03-01T10:00:05.000Z 150 150 0 0.0 3.5 1.25 1 4 0",
        ]
    );

    let rec = db
        .query_row(
            "SELECT id, call_id, path, format, channels, sample_rate, start_time, end_time, duration_s, size_bytes,
                state, reason, stop_reason FROM recordings",
            [],
            |r| {
                Ok(format!(
                    "{} {} {} {} {} {} {} {} {} {} {} {} {}",
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, f64>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                    r.get::<_, String>(12)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        rec,
        format!(
            "1 1 {} wav 2 8000 2024-03-01T10:00:02.000Z 2024-03-01T10:00:05.000Z 3 {} complete rule all-calls call-ended",
            rel.display(),
            44 + 24_000 * 4
        )
    );
    assert_eq!(fs::metadata(dir.join(&rel)).unwrap().len(), 44 + 24_000 * 4);

    let ev = db
        .query_row(
            "SELECT call_id, recording_id, time, offset_s, kind, value, duration_ms, source, side FROM events",
            [],
            |r| {
                Ok(format!(
                    "{} {:?} {} {:?} {} {} {} {} {}",
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        ev,
        "1 Some(1) 2024-03-01T10:00:03.500Z Some(1.5) dtmf 5 120 rfc4733 caller"
    );
    let dangling = db
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |_| Ok(()))
        .unwrap()
        .count();
    assert_eq!(dangling, 0, "no dangling references");
}

#[test]
fn cancelled_ringing_call_has_no_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    store.handle(started(4, 0, "cancel-me@host")).unwrap();
    store
        .handle(ended(4, 3000, EndReason::Cancelled, Some(487)))
        .unwrap();
    let report = store.finish(&RunSummary::default()).unwrap();
    assert_eq!(report.recordings, 0);
    assert!(report.recordings_finalised.is_empty());

    let db = catalog(tmp.path());
    let row: (String, Option<String>, Option<String>, Option<f64>, String, i64, Option<String>) = db
        .query_row(
            "SELECT state, answer_time, to_tag, duration_s, end_reason, final_status, end_time FROM calls",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "ended".into(),
            None,
            None,
            None,
            "cancelled".into(),
            487,
            Some("2024-03-01T10:00:03.000Z".into())
        )
    );
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM recordings"), 0);
    assert_eq!(
        fs::read_dir(tmp.path().join("recordings")).unwrap().count(),
        0,
        "no files or day dirs"
    );
}

#[test]
fn part_file_is_playable_mid_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    store.handle(started(1, 0, "mid@host")).unwrap();
    store.handle(answered(1, 100)).unwrap();
    store.handle(rec_started(1, 1, 100)).unwrap();
    let rel = "recordings/2024/03/01/1-mid_host.wav";
    let part = tmp.path().join(format!("{rel}.part"));
    assert!(part.exists(), ".part is created at RecordingStarted");
    assert!(!tmp.path().join(rel).exists());

    // 1.5 s: one flush (at 1.0 s of audio) has happened, the last 0.5 s is not yet in the header.
    store.handle(audio(1, 0, 4000)).unwrap();
    store.handle(audio(1, 4000, 4000)).unwrap();
    store.handle(audio(1, 8000, 4000)).unwrap();
    let (spec, samples) = read_wav(&part);
    assert_eq!((spec.channels, spec.sample_rate), (2, RATE));
    assert_pattern(&samples, 8000);

    // The catalog already knows the recording, readable while the store writes.
    let db = catalog(tmp.path());
    let (path, state): (String, String) = db
        .query_row("SELECT path, state FROM recordings", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((path.as_str(), state.as_str()), (rel, "recording"));
    drop(db);

    store.handle(audio(1, 12_000, 4000)).unwrap(); // 2.0 s: second flush
    assert_pattern(&read_wav(&part).1, 16_000);
    store.handle(rec_stopped(1, 1, 2100, 16_000)).unwrap();
    assert!(!part.exists());
    assert_pattern(&read_wav(&tmp.path().join(rel)).1, 16_000);
    store.finish(&RunSummary::default()).unwrap();
}

#[test]
fn crash_mid_call_is_recovered_on_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut store = Store::open(dir, opts()).unwrap();
    store.handle(started(1, 0, "crash@host")).unwrap();
    store.handle(answered(1, 1000)).unwrap();
    store.handle(rec_started(1, 1, 1000)).unwrap(); // commits the call and the recording row
    feed(&mut store, 1, 0, 20_000); // 2.5 s: flushed at 1.0 and 2.0 s
    store.handle(started(2, 1500, "uncommitted@host")).unwrap(); // in the open batch: lost
    let first_run = store.run_id();
    store.simulate_crash();

    let rel = PathBuf::from("recordings/2024/03/01/1-crash_host.wav");
    assert!(
        audio::part_path(&dir.join(&rel)).exists(),
        "crash leaves the .part"
    );

    let store = Store::open(dir, opts()).expect("reopen after crash");
    assert_eq!(
        store.recovery(),
        &Recovery {
            recordings_recovered: vec![rel.clone()],
            recordings_missing: vec![],
            recordings_failed: vec![],
            calls_interrupted: 1,
            runs_interrupted: 1,
        }
    );
    assert!(!audio::part_path(&dir.join(&rel)).exists());
    // Everything up to the last flush survives: 2.0 s, the rest was in the write buffer.
    let (spec, samples) = read_wav(&dir.join(&rel));
    assert_eq!((spec.channels, spec.sample_rate), (2, RATE));
    assert_pattern(&samples, 16_000);
    let second_run = store.run_id();
    store.finish(&RunSummary::default()).unwrap();

    let db = catalog(dir);
    let rec: (String, f64, i64, String, String) = db
        .query_row(
            "SELECT state, duration_s, size_bytes, stop_reason, end_time FROM recordings",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        rec,
        (
            "recovered".into(),
            2.0,
            44 + 16_000 * 4,
            "interrupted".into(),
            "2024-03-01T10:00:03.000Z".into()
        )
    );
    let calls: Vec<(String, String, String)> = db
        .prepare("SELECT sip_call_id, state, end_reason FROM calls")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        calls,
        [(
            "crash@host".into(),
            "interrupted".into(),
            "interrupted".into()
        )]
    );
    let runs: Vec<(i64, String)> = db
        .prepare("SELECT id, state FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        runs,
        [
            (first_run, "interrupted".into()),
            (second_run, "complete".into())
        ]
    );
}

#[test]
fn crash_loses_at_most_the_last_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(
        tmp.path(),
        StoreOptions {
            commit_every: 3,
            ..opts()
        },
    )
    .unwrap();
    for call in 1..=5 {
        store
            .handle(started(call, call * 10, &format!("batch-{call}")))
            .unwrap();
    }
    store.simulate_crash();
    let store = Store::open(tmp.path(), opts()).unwrap();
    assert_eq!(store.recovery().calls_interrupted, 3);
    drop(store);
    let db = catalog(tmp.path());
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM calls"), 3);
}

/// A `.part` whose header was never updated, with a torn last frame; a `.wav` renamed just
/// before the crash; a row whose file never got created.
#[test]
fn recovery_repairs_stale_headers_written_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    Store::open(dir, opts())
        .unwrap()
        .finish(&RunSummary::default())
        .unwrap();

    let day = dir.join("recordings/2024/03/01");
    fs::create_dir_all(&day).unwrap();
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let write = |path: &Path, frames: u64| {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..frames {
            let (l, r) = frame(i);
            w.write_sample(l).unwrap();
            w.write_sample(r).unwrap();
        }
        w.finalize().unwrap();
    };
    let stale = day.join("90-stale.wav.part");
    write(&stale, 1600);
    let mut bytes = fs::read(&stale).unwrap();
    bytes[4..8].fill(0); // RIFF size and data size as at creation, before any flush
    bytes[40..44].fill(0);
    bytes.extend_from_slice(&[1, 2, 3]); // a torn frame
    fs::write(&stale, bytes).unwrap();
    write(&day.join("91-renamed.wav"), 800);

    {
        let db = Connection::open(dir.join(CATALOG_FILE)).unwrap();
        db.execute_batch(
            "INSERT INTO calls (id, run_id, sip_call_id, from_tag, caller_user, caller_host, callee_user,
                callee_host, caller_signalling, callee_signalling, transport, start_time, answer_time, state)
             VALUES (90, 1, 'stale', 'f', 'a', 'h', 'b', 'h', '192.0.2.1:5060', '192.0.2.2:5060', 'udp',
                '2024-03-01T10:00:00.000Z', '2024-03-01T10:00:01.000Z', 'answered');
             INSERT INTO recordings (id, call_id, path, format, channels, sample_rate, start_time, state, reason)
             VALUES (1, 90, 'recordings/2024/03/01/90-stale.wav', 'wav', 2, 16000, '2024-03-01T10:00:01.000Z',
                'recording', 'test'),
                    (2, 90, 'recordings/2024/03/01/91-renamed.wav', 'wav', 2, 16000, '2024-03-01T10:00:01.000Z',
                'recording', 'test'),
                    (3, 90, 'recordings/2024/03/01/92-never.wav', 'wav', 2, 16000, '2024-03-01T10:00:01.000Z',
                'recording', 'test');",
        )
        .unwrap();
    }

    let store = Store::open(dir, opts()).unwrap();
    let r = store.recovery();
    assert_eq!(
        r.recordings_recovered,
        [
            PathBuf::from("recordings/2024/03/01/90-stale.wav"),
            PathBuf::from("recordings/2024/03/01/91-renamed.wav")
        ]
    );
    assert_eq!(
        r.recordings_missing,
        [PathBuf::from("recordings/2024/03/01/92-never.wav")]
    );
    assert!(r.recordings_failed.is_empty(), "{:?}", r.recordings_failed);
    assert_eq!((r.calls_interrupted, r.runs_interrupted), (1, 0));
    drop(store);

    let (spec_read, samples) = read_wav(&day.join("90-stale.wav"));
    assert_eq!(spec_read, spec);
    assert_pattern(&samples, 1600);
    let db = catalog(dir);
    let rows: Vec<(String, Option<f64>, Option<i64>, Option<String>)> = db
        .prepare("SELECT state, duration_s, size_bytes, end_time FROM recordings ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                "recovered".into(),
                Some(0.1),
                Some(44 + 1600 * 4),
                Some("2024-03-01T10:00:01.100Z".into())
            ),
            (
                "recovered".into(),
                Some(0.05),
                Some(44 + 800 * 4),
                Some("2024-03-01T10:00:01.050Z".into())
            ),
            ("missing".into(), None, None, None),
        ]
    );
}

/// An output directory that already exists open to every user (0777) is tightened to 0750,
/// as are its recordings/ and day directories; its parent is left alone.
#[test]
fn an_existing_0777_output_directory_is_tightened_to_0750() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("shared");
    let dir = parent.join("out");
    for d in [&dir, &dir.join("recordings/2024/03/01")] {
        fs::create_dir_all(d).unwrap();
    }
    for d in [
        "shared",
        "shared/out",
        "shared/out/recordings",
        "shared/out/recordings/2024/03/01",
    ] {
        fs::set_permissions(tmp.path().join(d), fs::Permissions::from_mode(0o777)).unwrap();
    }
    fs::set_permissions(
        dir.join("recordings/2024"),
        fs::Permissions::from_mode(0o2770),
    )
    .unwrap();
    let mut store = Store::open(&dir, opts()).unwrap();
    full_call(&mut store, 1, 1, "tight@host");
    store.finish(&RunSummary::default()).unwrap();
    assert_eq!(mode(&dir), 0o750);
    assert_eq!(mode(&dir.join("recordings")), 0o750);
    assert_eq!(mode(&dir.join("recordings/2024/03/01")), 0o750);
    // The setgid bit (a group's directory) is kept; only group write goes.
    let kept = fs::metadata(dir.join("recordings/2024"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(kept & 0o7777, 0o2750);
    assert_eq!(
        mode(&parent),
        0o777,
        "a parent voxtap did not make is not voxtap's"
    );
}

#[test]
fn files_are_0640_and_dirs_0750() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/out");
    let mut store = Store::open(&dir, opts()).unwrap();
    full_call(&mut store, 1, 1, "modes@host");
    store.handle(started(2, 0, "open@host")).unwrap();
    store.handle(rec_started(2, 2, 0)).unwrap();
    let part = dir.join("recordings/2024/03/01/2-open_host.wav.part");
    assert_eq!(mode(&part), 0o640, "{}", part.display());
    store.finish(&RunSummary::default()).unwrap();

    for d in [
        "a",
        "a/b",
        "a/b/out",
        "a/b/out/recordings",
        "a/b/out/recordings/2024",
        "a/b/out/recordings/2024/03",
    ] {
        assert_eq!(mode(&tmp.path().join(d)), 0o750, "{d}");
    }
    assert_eq!(mode(&dir.join("recordings/2024/03/01")), 0o750);
    for f in [
        "recordings/2024/03/01/1-modes_host.wav",
        "recordings/2024/03/01/2-open_host.wav",
        CATALOG_FILE,
        LOCK_FILE,
    ] {
        assert_eq!(mode(&dir.join(f)), 0o640, "{f}");
    }
    for f in ["catalog.sqlite-wal", "catalog.sqlite-shm"] {
        if dir.join(f).exists() {
            assert_eq!(mode(&dir.join(f)) & 0o007, 0, "{f} is not world-readable");
        }
    }
}

#[test]
fn reopening_appends_a_second_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut store = Store::open(
        dir,
        StoreOptions {
            source: "one.pcap".into(),
            ..opts()
        },
    )
    .unwrap();
    full_call(&mut store, 1, 1, "same@host");
    let first = store.finish(&summary()).unwrap();
    let first_wav = dir.join(&first.recordings_finalised[0]);
    let first_bytes = fs::read(&first_wav).unwrap();

    // Same handles and the same Call-ID again: handles are per run, rows are not.
    let mut store = Store::open(
        dir,
        StoreOptions {
            source: "two.pcap".into(),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(store.recovery(), &Recovery::default());
    full_call(&mut store, 1, 1, "same@host");
    let second = store.finish(&summary()).unwrap();

    assert_eq!(
        first.recordings_finalised,
        [PathBuf::from("recordings/2024/03/01/1-same_host.wav")]
    );
    assert_eq!(
        second.recordings_finalised,
        [PathBuf::from("recordings/2024/03/01/2-same_host.wav")]
    );
    assert_eq!(
        fs::read(&first_wav).unwrap(),
        first_bytes,
        "first run's recording untouched"
    );
    let db = catalog(dir);
    let runs: Vec<(i64, String, String)> = db
        .prepare("SELECT id, source, state FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        runs,
        [
            (1, "one.pcap".into(), "complete".into()),
            (2, "two.pcap".into(), "complete".into())
        ]
    );
    assert_eq!(
        one::<String>(&db, "SELECT group_concat(run_id || ':' || id) FROM calls"),
        "1:1,2:2"
    );
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM streams"), 4);
    assert_eq!(
        one::<String>(
            &db,
            "SELECT group_concat(call_id || ':' || recording_id) FROM events"
        ),
        "1:1,2:2"
    );
}

#[test]
fn errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let err = Store::open(&file, opts()).err().expect("DIR is a file");
    assert!(matches!(err, StoreError::Dir { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );

    let below = file.join("out");
    let err = Store::open(&below, opts()).err().expect("DIR below a file");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );

    // recordings/ occupied by a file.
    let dir = tmp.path().join("out");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("recordings"), b"x").unwrap();
    let err = Store::open(&dir, opts())
        .err()
        .expect("recordings is a file");
    assert!(err.to_string().contains("out/recordings"), "{err}");
}

#[test]
fn a_second_writer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), opts()).unwrap();
    let err = Store::open(tmp.path(), opts()).err().expect("locked");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains(LOCK_FILE), "{err}");
    store.finish(&RunSummary::default()).unwrap();
    Store::open(tmp.path(), opts())
        .expect("free again after finish")
        .finish(&RunSummary::default())
        .unwrap();
}

#[test]
fn newer_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    Store::open(tmp.path(), opts())
        .unwrap()
        .finish(&RunSummary::default())
        .unwrap();
    Connection::open(tmp.path().join(CATALOG_FILE))
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = Store::open(tmp.path(), opts()).err().expect("too new");
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found,
                supported,
                ..
            } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(CATALOG_FILE), "{err}");
}

#[test]
fn unknown_handles_are_counted_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    store.handle(audio(9, 0, 10)).unwrap();
    store.handle(answered(9, 0)).unwrap();
    store.handle(rec_started(9, 9, 0)).unwrap();
    store.handle(rec_stopped(9, 9, 0, 0)).unwrap();
    store
        .handle(stream(9, Side::Caller, "192.0.2.1:1", "192.0.2.2:2", 0))
        .unwrap();
    let report = store.finish(&RunSummary::default()).unwrap();
    assert_eq!(report.orphan_events, 5);
}

#[test]
fn finish_closes_open_recordings_and_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    store.handle(started(1, 0, "open@host")).unwrap();
    store.handle(answered(1, 0)).unwrap();
    store.handle(rec_started(1, 1, 0)).unwrap();
    store.handle(audio(1, 0, 4001)).unwrap();
    // A torn frame (left sample only) is completed with silence.
    store
        .handle(Event::RecordingAudio {
            rec: RecordingHandle(1),
            samples: vec![frame(4001).0],
        })
        .unwrap();
    let report = store.finish(&RunSummary::default()).unwrap();
    let rel = PathBuf::from("recordings/2024/03/01/1-open_host.wav");
    assert_eq!(report.recordings_finalised, std::slice::from_ref(&rel));
    let samples = read_wav(&tmp.path().join(&rel)).1;
    assert_pattern(&samples[..8002], 4001);
    assert_eq!(&samples[8002..], [frame(4001).0, 0]);
    let db = catalog(tmp.path());
    assert_eq!(
        one::<String>(
            &db,
            "SELECT state || ' ' || stop_reason || ' ' || end_time FROM recordings"
        ),
        "complete end-of-run 2024-03-01T10:00:00.500Z"
    );
    assert_eq!(
        one::<String>(&db, "SELECT state || ' ' || end_reason FROM calls"),
        "interrupted interrupted"
    );
}

#[test]
fn audio_beyond_the_wav_size_limit_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    store.handle(started(1, 0, "big@host")).unwrap();
    store.handle(rec_started(1, 1, 0)).unwrap();
    store
        .recs
        .get_mut(&RecordingHandle(1))
        .unwrap()
        .file
        .set_max_samples(200);
    store.handle(audio(1, 0, 80)).unwrap();
    store.handle(audio(1, 80, 80)).unwrap();
    store.handle(rec_stopped(1, 1, 1000, 160)).unwrap();
    store.finish(&RunSummary::default()).unwrap();
    assert_pattern(
        &read_wav(&tmp.path().join("recordings/2024/03/01/1-big_host.wav")).1,
        100,
    );
    let db = catalog(tmp.path());
    assert_eq!(
        one::<String>(&db, "SELECT stop_reason FROM recordings"),
        "size-limit"
    );
}

#[test]
fn second_recording_of_a_call_gets_its_own_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    store.handle(started(1, 0, "twice@host")).unwrap();
    store.handle(rec_started(1, 1, 0)).unwrap();
    store.handle(audio(1, 0, 160)).unwrap();
    store.handle(rec_stopped(1, 1, 20, 160)).unwrap();
    store.handle(rec_started(2, 1, 1000)).unwrap();
    store.handle(audio(2, 0, 160)).unwrap();
    store.handle(rec_stopped(2, 1, 1020, 160)).unwrap();
    let report = store.finish(&RunSummary::default()).unwrap();
    assert_eq!(
        report.recordings_finalised,
        [
            PathBuf::from("recordings/2024/03/01/1-twice_host.wav"),
            PathBuf::from("recordings/2024/03/01/1-twice_host-2.wav")
        ]
    );
}

/// Every ```sql block of docs/catalog.md runs against a real catalog.
#[test]
fn documented_queries_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    full_call(&mut store, 1, 1, "doc@host");
    store.handle(started(2, 0, "unanswered@host")).unwrap();
    store
        .handle(ended(2, 1000, EndReason::Rejected, Some(486)))
        .unwrap();
    store.handle(started(3, 0, "oneway@host")).unwrap();
    store.handle(answered(3, 500)).unwrap();
    let callee_only = stream(3, Side::Callee, "192.0.2.2:4000", "192.0.2.1:5000", 0);
    store.handle(callee_only).unwrap();
    store.handle(ended(3, 9000, EndReason::Bye, None)).unwrap();
    store.finish(&summary()).unwrap();

    let doc = include_str!("../../../docs/catalog.md");
    let blocks: Vec<&str> = doc
        .split("```sql\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 7, "only {} example queries", blocks.len());
    let db = catalog(tmp.path());
    let mut results = Vec::new();
    for sql in blocks {
        let mut stmt = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}\n{e}"));
        for i in 1..=stmt.parameter_count() {
            assert_eq!(stmt.parameter_name(i), Some(":sip_call_id"), "{sql}");
            stmt.raw_bind_parameter(i, "doc@host").unwrap();
        }
        let cols = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap_or_else(|e| panic!("{sql}\n{e}")) {
            let cells: Vec<String> = (0..cols)
                .map(|c| format!("{:?}", row.get::<_, rusqlite::types::Value>(c).unwrap()))
                .collect();
            out.push(cells.join("|"));
        }
        results.push(out);
    }
    let joined = results
        .iter()
        .map(|r| r.join("\n"))
        .collect::<Vec<_>>()
        .join("\n--\n");
    assert!(
        joined.contains("recordings/2024/03/01/1-doc_host.wav"),
        "{joined}"
    );
    assert!(
        joined.contains("Integer(486)"),
        "unanswered call listed: {joined}"
    );
    assert!(
        joined.contains("Text(\"5\")"),
        "dtmf digit listed: {joined}"
    );
    assert!(
        joined.contains("Real(2.0)"),
        "lossy stream listed: {joined}"
    );
    assert!(
        joined.contains("Text(\"oneway@host\")"),
        "one-way call listed: {joined}"
    );
    assert!(
        !joined.contains("Text(\"doc@host\")|Text(\"2024-03-01T10:00:00.000Z\")|Real(3.0)|"),
        "two-way call not listed as one-way: {joined}"
    );
}

#[test]
fn pause_and_resume_are_on_the_recording_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), opts()).unwrap();
    store.handle(started(1, 0, "pause@test")).unwrap();
    store.handle(answered(1, 2000)).unwrap();
    store.handle(rec_started(1, 1, 2000)).unwrap();
    feed(&mut store, 1, 0, u64::from(RATE));
    for (ms, action) in [(2500, Action::Pause), (2800, Action::Resume)] {
        store
            .handle(Event::RecordingControl(RecordingControl {
                rec: RecordingHandle(1),
                call: CallHandle(1),
                ts: t(ms),
                action,
                reason: "key *48".into(),
                requested_by: Some(Side::Callee),
                // Who asked: named on the pause, unknown on the resume.
                requested_by_user: (action == Action::Pause).then(|| "alice".to_string()),
                requested_by_device: (action == Action::Pause).then(|| "alice-desk".to_string()),
                offset_s: None,
            }))
            .unwrap();
    }
    store
        .handle(rec_stopped(1, 1, 3000, u64::from(RATE)))
        .unwrap();
    store.handle(ended(1, 3000, EndReason::Bye, None)).unwrap();
    store.finish(&summary()).unwrap();
    let db = catalog(dir.path());
    let rows: Vec<(String, String, f64, String, String, i64)> = db
        .prepare("SELECT kind, value, offset_s, source, side, recording_id FROM events ORDER BY id")
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
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0].0.as_str(),
            rows[0].1.as_str(),
            rows[0].3.as_str(),
            rows[0].4.as_str()
        ),
        ("pause", "key *48", "policy", "callee")
    );
    assert_eq!(rows[1].0, "resume");
    assert!(
        (rows[0].2 - 0.5).abs() < 1e-9 && (rows[1].2 - 0.8).abs() < 1e-9,
        "{rows:?}"
    );
    assert_eq!(rows[0].5, 1);
    let who: Vec<(Option<String>, Option<String>)> = db
        .prepare("SELECT user, device FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        who,
        [
            (Some("alice".into()), Some("alice-desk".into())),
            (None, None)
        ]
    );
}

fn rec_started_min(rec: u64, call: u64, ms: u64, min_secs: u32) -> Event {
    match rec_started(rec, call, ms) {
        Event::RecordingStarted(r) => Event::RecordingStarted(RecordingStarted {
            min_secs: Some(min_secs),
            ..r
        }),
        _ => unreachable!(),
    }
}

#[test]
fn a_recording_shorter_than_record_min_sec_is_deleted_and_the_catalog_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut store = Store::open(&dir, opts()).expect("open");
    // Call 1: 2 s recorded, 5 s required. Call 2: 3 s recorded, 3 s required.
    store.handle(started(1, 0, "short@x")).unwrap();
    store.handle(answered(1, 1000)).unwrap();
    store.handle(rec_started_min(1, 1, 1000, 5)).unwrap();
    feed(&mut store, 1, 0, 2 * u64::from(RATE));
    store
        .handle(rec_stopped(1, 1, 3000, 2 * u64::from(RATE)))
        .unwrap();
    store.handle(ended(1, 3000, EndReason::Bye, None)).unwrap();
    store.handle(started(2, 0, "long@x")).unwrap();
    store.handle(answered(2, 1000)).unwrap();
    store.handle(rec_started_min(2, 2, 1000, 3)).unwrap();
    feed(&mut store, 2, 0, 3 * u64::from(RATE));
    store
        .handle(rec_stopped(2, 2, 4000, 3 * u64::from(RATE)))
        .unwrap();
    store.handle(ended(2, 4000, EndReason::Bye, None)).unwrap();
    let report = store.finish(&summary()).expect("finish");
    assert_eq!(report.recordings_finalised.len(), 1, "{report:?}");

    let db = catalog(&dir);
    let (path, state, stop, size): (String, String, String, i64) = db
        .query_row(
            "SELECT r.path, r.state, r.stop_reason, r.size_bytes FROM recordings r
             JOIN calls c ON c.id = r.call_id WHERE c.sip_call_id = 'short@x'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (state.as_str(), stop.as_str(), size),
        ("deleted", "shorter-than-min", 0)
    );
    assert!(!dir.join(&path).exists(), "{path} deleted");
    assert!(!audio::part_path(&dir.join(&path)).exists());
    let kept: String = one(
        &db,
        "SELECT r.state FROM recordings r JOIN calls c ON c.id = r.call_id
         WHERE c.sip_call_id = 'long@x'",
    );
    assert_eq!(kept, "complete");
}

/// Silence events write zeros without a buffer of their size; a recording the engine says has
/// no audio loses its file and says why; a partial one keeps its file and says what is missing.
#[test]
fn silence_no_audio_and_partial_recordings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut store = Store::open(&dir, opts()).expect("open");
    for (call, id) in [(1u64, "silent@x"), (2, "partial@x")] {
        store.handle(started(call, 0, id)).unwrap();
        store.handle(answered(call, 1000)).unwrap();
        store.handle(rec_started(call, call, 1000)).unwrap();
        store.handle(audio(call, 0, 800)).unwrap();
        store
            .handle(Event::RecordingSilence {
                rec: RecordingHandle(call),
                frames: 8000 * 60,
            })
            .unwrap();
        store.handle(audio(call, 800, 800)).unwrap();
    }
    let mut none = heard(0);
    none.state = RecordingState::NoAudio;
    none.reason = Some("callee: G729/8000 (payload type 18): no decoder for G729/8000".into());
    let mut part = heard(1600);
    part.state = RecordingState::Partial;
    part.reason = Some("callee: encrypted".into());
    for (call, outcome) in [(1u64, none), (2, part)] {
        store
            .handle(Event::RecordingStopped {
                rec: RecordingHandle(call),
                call: CallHandle(call),
                ts: t(62_000),
                frames: 8000 * 60 + 1600,
                reason: StopReason::CallEnded,
                outcome,
            })
            .unwrap();
    }
    let report = store.finish(&summary()).expect("finish");
    assert_eq!(
        (report.recordings_no_audio, report.recordings_partial),
        (1, 1)
    );
    let db = catalog(&dir);
    let rows: Vec<(String, Option<String>, i64, f64)> = db
        .prepare("SELECT state, state_reason, size_bytes, duration_s FROM recordings ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows[0].0, "no-audio");
    assert!(rows[0].1.as_deref().unwrap().contains("G729"));
    assert_eq!(rows[0].2, 0);
    assert_eq!(rows[1].0, "partial");
    assert!((rows[1].3 - (60.0 + 0.2)).abs() < 1e-6, "{}", rows[1].3);
    let path: String = db
        .query_row("SELECT path FROM recordings WHERE id = 2", [], |r| r.get(0))
        .unwrap();
    let (_, samples) = read_wav(&dir.join(path));
    assert_eq!(samples.len(), (8000 * 60 + 1600) * 2);
    assert!(samples[1600..1600 + 8000 * 120].iter().all(|&s| s == 0));
    let silent: String = db
        .query_row("SELECT path FROM recordings WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert!(
        !dir.join(silent).exists(),
        "a recording with no audio leaves no file"
    );
}

/// A version-1 catalog gains the version-2 columns and keeps its rows.
#[test]
fn a_version_1_catalog_is_upgraded_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(CATALOG_FILE);
    {
        let db = Connection::open(&path).unwrap();
        db.execute_batch(schema::V1).unwrap();
        db.pragma_update(None, "user_version", 1).unwrap();
        db.execute(
            "INSERT INTO runs (started_at, source, state) VALUES ('2024-01-01T00:00:00.000Z', 'old', 'complete')",
            [],
        )
        .unwrap();
    }
    Store::open(tmp.path(), opts())
        .unwrap()
        .finish(&summary())
        .unwrap();
    let db = catalog(tmp.path());
    assert_eq!(
        one::<i64>(&db, "PRAGMA user_version"),
        SCHEMA_VERSION as i64
    );
    assert_eq!(one::<i64>(&db, "SELECT COUNT(*) FROM runs"), 2);
    assert_eq!(one::<i64>(&db, "SELECT COUNT(*) FROM conversations"), 0);
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT COUNT(*) FROM calls WHERE conversation_id IS NOT NULL"
        ),
        0
    );
    assert_eq!(
        one::<i64>(&db, "SELECT late_packets FROM runs WHERE id = 2"),
        1
    );
    assert_eq!(
        one::<String>(&db, "SELECT source FROM runs WHERE id = 1"),
        "old"
    );
}

/// Every format through the store: named by its extension, finished or, after a crash,
/// recovered from the format the catalog row names.
#[test]
fn every_format_is_recorded_named_and_recovered() {
    for format in RecordingFormat::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut store = Store::open(dir, opts()).unwrap();
        let start = |rec: u64, call: u64| {
            Event::RecordingStarted(RecordingStarted {
                format,
                ..match rec_started(rec, call, 0) {
                    Event::RecordingStarted(r) => r,
                    _ => unreachable!(),
                }
            })
        };
        store.handle(started(1, 0, "done@host")).unwrap();
        store.handle(start(1, 1)).unwrap();
        feed(&mut store, 1, 0, 16_000);
        store.handle(rec_stopped(1, 1, 2000, 16_000)).unwrap();
        store.handle(started(2, 0, "crash@host")).unwrap();
        store.handle(start(2, 2)).unwrap();
        feed(&mut store, 2, 0, 20_000); // 2.5 s, flushed about every second
        store.simulate_crash();

        let ext = format.extension();
        let done = PathBuf::from(format!("recordings/2024/03/01/1-done_host.{ext}"));
        let crashed = PathBuf::from(format!("recordings/2024/03/01/2-crash_host.{ext}"));
        assert!(dir.join(&done).exists(), "{ext}");
        assert!(audio::part_path(&dir.join(&crashed)).exists(), "{ext}");

        let store = Store::open(dir, opts()).unwrap();
        assert_eq!(store.recovery().recordings_recovered, [crashed], "{ext}");
        assert!(store.recovery().recordings_failed.is_empty(), "{ext}");
        store.finish(&RunSummary::default()).unwrap();
        let db = catalog(dir);
        let rows: Vec<(String, String, f64)> = db
            .prepare("SELECT path, format, duration_s FROM recordings ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows[0].0, done.to_string_lossy(), "{ext}");
        assert_eq!(rows[0].1, format.as_str());
        assert!((rows[0].2 - 2.0).abs() < 1e-9, "{ext}: {}", rows[0].2);
        // The crashed one kept at least what was flushed a second before the crash.
        assert!(rows[1].2 >= 1.2 && rows[1].2 <= 2.5, "{ext}: {}", rows[1].2);
    }
}

fn link(
    call: u64,
    ms: u64,
    conv: u64,
    to: Option<u64>,
    evidence: &str,
    merged: Option<u64>,
) -> Event {
    Event::Conversation(ConversationLink {
        call: CallHandle(call),
        ts: t(ms),
        conversation: conv,
        linked_to: to.map(CallHandle),
        evidence: evidence.into(),
        detail: format!("detail of {evidence}"),
        merged,
        people: None,
    })
}

/// Three legs: two tied by a header, a third first on its own and then joined by shared
/// media. One conversation row remains, with every leg and its evidence; the recording of a
/// leg names the conversation, and a repeat names the recording it repeats.
#[test]
fn conversations_tie_legs_and_fold_when_media_joins_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    store.handle(started(1, 0, "leg-a@pbx")).unwrap();
    store.handle(link(1, 0, 7, None, "", None)).unwrap();
    store.handle(started(2, 100, "leg-b@pbx")).unwrap();
    store
        .handle(link(2, 100, 7, Some(1), "header:X-CID", None))
        .unwrap();
    store.handle(started(3, 200, "leg-c@sbc")).unwrap();
    store.handle(link(3, 200, 8, None, "", None)).unwrap();
    store.handle(answered(2, 1000)).unwrap();
    store.handle(answered(1, 1100)).unwrap();
    store.handle(rec_started(1, 1, 1100)).unwrap();
    store
        .handle(Event::Decision(CallDecision {
            call: CallHandle(2),
            ts: t(1100),
            record: true,
            reason: "covered".into(),
            trace: vec!["recorded on leg leg-a@pbx".into()],
            direction: Some("outbound"),
            covered_by: Some(CallHandle(1)),
            tenant: None,
            users: Vec::new(),
        }))
        .unwrap();
    store.handle(answered(3, 1200)).unwrap();
    let repeat = match rec_started(2, 3, 1200) {
        Event::RecordingStarted(r) => Event::RecordingStarted(RecordingStarted {
            repeats: Some(RecordingHandle(1)),
            ..r
        }),
        _ => unreachable!(),
    };
    store.handle(repeat).unwrap();
    store
        .handle(link(3, 1300, 7, Some(2), "media:ssrc", Some(8)))
        .unwrap();
    store
        .handle(Event::Transfer {
            call: CallHandle(1),
            ts: t(1500),
            side: Side::Callee,
            target: "2002".into(),
            replaces: None,
            status: 202,
        })
        .unwrap();
    store.handle(ended(3, 5000, EndReason::Bye, None)).unwrap();
    store.handle(ended(2, 5000, EndReason::Bye, None)).unwrap();
    store.handle(ended(1, 6000, EndReason::Bye, None)).unwrap();
    store.finish(&summary()).unwrap();

    let db = catalog(tmp.path());
    let live: Vec<(i64, i64, Option<String>)> = db
        .prepare("SELECT id, legs, end_time FROM conversations WHERE merged_into IS NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(live.len(), 1, "{live:?}");
    let (conv, legs, end) = live[0].clone();
    assert_eq!(legs, 3);
    assert_eq!(end.as_deref(), Some("2024-03-01T10:00:06.000Z"));
    // It starts with its earliest leg, whichever leg joined first.
    assert_eq!(
        one::<String>(
            &db,
            &format!("SELECT start_time FROM conversations WHERE id = {conv}")
        ),
        one::<String>(
            &db,
            &format!("SELECT min(start_time) FROM calls WHERE conversation_id = {conv}")
        )
    );
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT merged_into FROM conversations WHERE merged_into IS NOT NULL"
        ),
        conv
    );
    assert_eq!(
        one::<i64>(
            &db,
            &format!("SELECT COUNT(*) FROM calls WHERE conversation_id = {conv}")
        ),
        3
    );
    let links: Vec<(i64, Option<i64>, String)> = db
        .prepare("SELECT call_id, linked_call_id, evidence FROM conversation_links ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        links,
        [
            (2, Some(1), "header:X-CID".to_string()),
            (3, Some(2), "media:ssrc".to_string())
        ]
    );
    let recs: Vec<(i64, Option<i64>, Option<i64>)> = db
        .prepare(
            "SELECT call_id, conversation_id, repeats_recording_id FROM recordings ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(recs, [(1, Some(conv), None), (3, Some(conv), Some(1))]);
    let (dir, covered): (String, i64) = db
        .query_row(
            "SELECT direction, covered_by_call_id FROM decisions WHERE call_id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((dir.as_str(), covered), ("outbound", 1));
    assert_eq!(
        one::<String>(&db, "SELECT direction FROM calls WHERE id = 2"),
        "outbound"
    );
    let transfer: (String, String, String) = db
        .query_row(
            "SELECT value, source, side FROM events WHERE kind = 'transfer'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        transfer,
        (
            "2002".to_string(),
            "refer".to_string(),
            "callee".to_string()
        )
    );
}

// ---- Retention and erasure ----------------------------------------------------------------

const DAY_MS: u64 = 86_400_000;

/// An answered call starting `start_ms` after T0, recorded for 1 s, of `tenant`, from `caller`.
fn call_at(store: &mut Store, call: u64, start_ms: u64, tenant: Option<&str>, caller: &str) {
    let Event::CallStarted(mut s) = started(call, start_ms, &format!("c{call}@test")) else {
        unreachable!()
    };
    s.caller.user = caller.into();
    store.handle(Event::CallStarted(s)).unwrap();
    store.handle(answered(call, start_ms + 1000)).unwrap();
    store
        .handle(Event::Decision(CallDecision {
            call: CallHandle(call),
            ts: t(start_ms + 1000),
            record: true,
            reason: format!("user {caller} records"),
            trace: vec![format!("caller {caller} is ours")],
            direction: Some("outbound"),
            covered_by: None,
            tenant: tenant.map(str::to_owned),
            users: vec![caller.to_owned()],
        }))
        .unwrap();
    store
        .handle(rec_started(call, call, start_ms + 1000))
        .unwrap();
    feed(store, call, 0, u64::from(RATE));
    store
        .handle(Event::Dtmf(DtmfEvent {
            call: CallHandle(call),
            ts: t(start_ms + 1500),
            digit: '7',
            duration_ms: 100,
            source: DtmfSource::Rfc4733,
            side: Side::Caller,
            offset_s: None,
        }))
        .unwrap();
    store
        .handle(rec_stopped(call, call, start_ms + 2000, u64::from(RATE)))
        .unwrap();
    store
        .handle(ended(call, start_ms + 2000, EndReason::Bye, None))
        .unwrap();
}

fn rec_path(dir: &Path, call: i64) -> PathBuf {
    let db = catalog(dir);
    let p: String = db
        .query_row(
            "SELECT path FROM recordings WHERE call_id = ?1",
            [call],
            |r| r.get(0),
        )
        .unwrap();
    dir.join(p)
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

#[test]
fn retention_by_age_follows_each_tenant_and_keeps_the_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    call_at(&mut store, 1, 0, Some("acme"), "alice");
    call_at(&mut store, 2, 5 * DAY_MS, Some("acme"), "alice");
    call_at(&mut store, 3, 0, None, "carol");
    store.finish(&summary()).unwrap();
    assert_eq!(
        one::<String>(
            &catalog(tmp.path()),
            "SELECT tenant FROM calls WHERE id = 1"
        ),
        "acme"
    );
    let policy = retention::RetentionPolicy {
        default: retention::Limits {
            max_age: Some(days(30)),
            max_bytes: None,
        },
        tenants: [(
            "acme".to_owned(),
            retention::Limits {
                max_age: Some(days(3)),
                max_bytes: None,
            },
        )]
        .into(),
        ..retention::RetentionPolicy::default()
    };
    let now = t(6 * DAY_MS);
    let db = open_existing(tmp.path()).unwrap();
    let plan = retention::plan(&db, &policy, now).unwrap();
    assert_eq!(plan.items, 3);
    let ids: Vec<i64> = plan.expire.iter().map(|e| e.item.call_id).collect();
    assert_eq!(ids, [1], "{plan:?}");
    assert!(
        plan.expire[0]
            .reason
            .contains("older than 3 d (tenant acme)"),
        "{}",
        plan.expire[0].reason
    );
    // Planning deletes nothing.
    assert!(rec_path(tmp.path(), 1).exists());
    let applied = retention::apply(&db, tmp.path(), &plan, now).unwrap();
    assert_eq!(applied.expired, 1);
    assert!(applied.bytes_freed > 16_000, "{applied:?}");
    assert!(!rec_path(tmp.path(), 1).exists());
    assert!(rec_path(tmp.path(), 2).exists());
    assert!(rec_path(tmp.path(), 3).exists());
    let cat = catalog(tmp.path());
    let row: (String, String, String, f64) = cat
        .query_row(
            "SELECT state, state_before_removal, removed_reason, duration_s FROM recordings WHERE call_id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(row.0, "expired");
    assert_eq!(row.1, "complete");
    assert!(row.2.contains("tenant acme"));
    assert!((row.3 - 1.0).abs() < 0.01, "metadata kept: {row:?}");
    // Nothing more to do the second time.
    let again = retention::plan(&db, &policy, now).unwrap();
    assert!(again.expire.is_empty(), "{again:?}");
    assert_eq!(again.items, 2);
}

#[test]
fn retention_by_quota_removes_the_oldest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    call_at(&mut store, 1, 0, Some("acme"), "a");
    call_at(&mut store, 2, DAY_MS, Some("acme"), "b");
    call_at(&mut store, 3, 2 * DAY_MS, Some("acme"), "c");
    call_at(&mut store, 4, 3 * DAY_MS, None, "d");
    store.finish(&summary()).unwrap();
    let db = open_existing(tmp.path()).unwrap();
    let size: i64 = one(&db, "SELECT size_bytes FROM recordings WHERE call_id = 1");
    let size = size as u64;
    let policy = retention::RetentionPolicy {
        default: retention::Limits::default(),
        tenants: [(
            "acme".to_owned(),
            retention::Limits {
                max_age: None,
                max_bytes: Some(size * 2),
            },
        )]
        .into(),
        // Over all four: after acme's quota three remain; room for two.
        total_bytes: Some(size * 2 + size / 2),
        ..retention::RetentionPolicy::default()
    };
    let plan = retention::plan(&db, &policy, t(4 * DAY_MS)).unwrap();
    let gone: Vec<(i64, &str)> = plan
        .expire
        .iter()
        .map(|e| (e.item.call_id, e.reason.as_str()))
        .collect();
    assert_eq!(gone.len(), 2, "{gone:?}");
    assert_eq!(gone[0].0, 1);
    assert!(gone[0].1.contains("tenant acme"), "{gone:?}");
    assert_eq!(gone[1].0, 2);
    assert!(gone[1].1.contains("total quota"), "{gone:?}");
    retention::apply(&db, tmp.path(), &plan, t(4 * DAY_MS)).unwrap();
    let left: u64 = one::<i64>(
        &db,
        "SELECT sum(size_bytes) FROM recordings WHERE state <> 'expired'",
    ) as u64;
    assert!(left <= size * 2 + size / 2);
    // A file deleted by hand is marked all the same.
    fs::remove_file(rec_path(tmp.path(), 3)).unwrap();
    let plan = retention::plan(
        &db,
        &retention::RetentionPolicy {
            total_bytes: Some(0),
            default: retention::Limits::default(),
            ..retention::RetentionPolicy::default()
        },
        t(4 * DAY_MS),
    )
    .unwrap();
    let applied = retention::apply(&db, tmp.path(), &plan, t(4 * DAY_MS)).unwrap();
    assert_eq!((applied.expired, applied.already_missing), (2, 1));
}

#[test]
fn a_pending_dispatch_holds_a_recording_back_for_its_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    call_at(&mut store, 1, 0, None, "a");
    store.finish(&summary()).unwrap();
    let db = open_existing(tmp.path()).unwrap();
    if !retention_table_exists(&db, "dispatch_jobs") {
        // The shape retention relies on, as the dispatcher's schema has it.
        db.execute_batch(
            "CREATE TABLE dispatch_jobs (id INTEGER PRIMARY KEY, recording_id INTEGER, call_id INTEGER,
                 kind TEXT, target TEXT, state TEXT, created_at TEXT, last_error TEXT)",
        )
        .unwrap();
        db.execute(
            "INSERT INTO dispatch_jobs (recording_id, call_id, kind, target, state, created_at)
             VALUES (1, 1, 'http', 'archive', 'pending', ?1)",
            [t(DAY_MS).to_string()],
        )
        .unwrap();
    } else {
        // The real queue (schema 5): a job as the store writes one for a configured target.
        db.execute(
            "INSERT INTO dispatch_jobs (recording_id, call_id, kind, target, state, next_attempt_at,
                 created_at)
             VALUES (1, 1, 'http', 'archive', 'pending', ?1, ?1)",
            [t(DAY_MS).to_string()],
        )
        .unwrap();
    }
    let policy = retention::RetentionPolicy {
        default: retention::Limits {
            max_age: Some(days(1)),
            max_bytes: None,
        },
        dispatch_grace: days(2),
        ..retention::RetentionPolicy::default()
    };
    let plan = retention::plan(&db, &policy, t(2 * DAY_MS)).unwrap();
    assert!(plan.expire.is_empty(), "{plan:?}");
    assert_eq!(plan.held.len(), 1);
    assert_eq!(plan.held[0].until, t(3 * DAY_MS).to_string());
    let plan = retention::plan(&db, &policy, t(3 * DAY_MS + 1)).unwrap();
    assert_eq!(plan.expire.len(), 1);
    assert!(plan.expire[0].dispatch_abandoned);
    let applied = retention::apply(&db, tmp.path(), &plan, t(3 * DAY_MS + 1)).unwrap();
    assert_eq!(applied.dispatch_abandoned, 1);
    let (state, err): (String, String) = db
        .query_row("SELECT state, last_error FROM dispatch_jobs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(state, "failed");
    assert!(err.contains("expired"), "{err}");
}

fn retention_table_exists(db: &Connection, name: &str) -> bool {
    db.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        > 0
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn erasure_by_number_leaves_nothing_of_it_and_an_audit_row() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    call_at(&mut store, 1, 0, None, "+49 30 5550123");
    call_at(&mut store, 2, 1000, None, "carol");
    store.finish(&summary()).unwrap();
    let before = files_containing(tmp.path(), b"5550123");
    assert!(
        !before.is_empty(),
        "the number is in the catalog to begin with"
    );
    let db = open_existing(tmp.path()).unwrap();
    let req = erase::Request {
        subjects: vec![erase::Subject::Number("0049305550123".into())],
        reason: "GDPR art. 17 request #4411".into(),
        operator: "dpo".into(),
        operator_uid: 0,
        dry_run: true,
    };
    let dry = erase::erase(&db, tmp.path(), &req, t(DAY_MS)).unwrap();
    assert_eq!(dry.calls, [1]);
    assert_eq!(dry.audit_id, None);
    assert!(
        rec_path(tmp.path(), 1).exists(),
        "a dry run deletes nothing"
    );
    let done = erase::erase(
        &db,
        tmp.path(),
        &erase::Request {
            dry_run: false,
            ..req
        },
        t(DAY_MS),
    )
    .unwrap();
    assert_eq!(
        (done.calls.len(), done.recordings, done.files_deleted),
        (1, 1, 1)
    );
    assert!(done.vacuumed);
    drop(db);
    let left = files_containing(tmp.path(), b"5550123");
    assert!(left.is_empty(), "the number is still in {left:?}");
    let cat = catalog(tmp.path());
    let audit: (String, String, String, i64) = cat
        .query_row(
            "SELECT operator, reason, calls, vacuumed FROM erasures",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        audit,
        (
            "dpo".into(),
            "GDPR art. 17 request #4411".into(),
            "1".into(),
            1
        )
    );
    let (state, erasure): (String, i64) = cat
        .query_row(
            "SELECT r.state, c.erasure_id FROM recordings r JOIN calls c ON c.id = r.call_id WHERE c.id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), erasure), ("erased", 1));
    let dtmf: Option<String> = one(
        &cat,
        "SELECT value FROM events WHERE call_id = 1 AND kind = 'dtmf'",
    );
    assert_eq!(dtmf, None);
    // The other call is untouched.
    assert_eq!(
        one::<String>(&cat, "SELECT caller_user FROM calls WHERE id = 2"),
        "carol"
    );
    assert!(rec_path(tmp.path(), 2).exists());
    assert_eq!(
        one::<String>(
            &cat,
            "SELECT value FROM events WHERE call_id = 2 AND kind = 'dtmf'"
        ),
        "7"
    );
}

#[test]
fn erasure_refuses_a_call_in_progress_and_an_unknown_number() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(
        tmp.path(),
        StoreOptions {
            commit_every: 1,
            ..opts()
        },
    )
    .unwrap();
    store.handle(started(1, 0, "live@test")).unwrap();
    store.handle(answered(1, 1000)).unwrap();
    let db = open_existing(tmp.path()).unwrap();
    let req = |s| erase::Request {
        subjects: vec![s],
        reason: "test".into(),
        operator: "root".into(),
        operator_uid: 0,
        dry_run: false,
    };
    let e = erase::erase(
        &db,
        tmp.path(),
        &req(erase::Subject::Call("live@test".into())),
        t(2000),
    )
    .unwrap_err();
    assert!(matches!(e, erase::EraseError::InProgress(1)), "{e}");
    let e = erase::erase(
        &db,
        tmp.path(),
        &req(erase::Subject::Number("999".into())),
        t(2000),
    )
    .unwrap_err();
    assert!(matches!(e, erase::EraseError::NothingMatches(_)), "{e}");
    assert_eq!(one::<String>(&db, "SELECT caller_user FROM calls"), "alice");
    drop(store);
}

fn dispatch_opts() -> StoreOptions {
    StoreOptions {
        dispatch: vec![
            DispatchTarget {
                name: "archive".into(),
                kind: "http",
            },
            DispatchTarget {
                name: "hook".into(),
                kind: "script",
            },
        ],
        ..opts()
    }
}

/// (recording_id, target, kind, state, attempts) of every dispatch job.
fn dispatch_jobs(dir: &Path) -> Vec<(i64, String, String, String, i64)> {
    catalog(dir)
        .prepare(
            "SELECT recording_id, target, kind, state, attempts FROM dispatch_jobs ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_final_recording_has_a_dispatch_job_per_target_and_an_open_one_none() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut store = Store::open(dir, dispatch_opts()).unwrap();
    store.handle(started(2, 0, "open@host")).unwrap();
    store.handle(answered(2, 500)).unwrap();
    store.handle(rec_started(2, 2, 500)).unwrap();
    feed(&mut store, 2, 0, 8000);
    assert!(
        dispatch_jobs(dir).is_empty(),
        "an open recording has no job"
    );
    full_call(&mut store, 1, 1, "a84b4c76e66710@pc33.atlanta.com");
    let rec: i64 = one(
        &catalog(dir),
        "SELECT id FROM recordings WHERE path LIKE '%a84b4c76e66710%'",
    );
    // Committed with the recording's final state, before the run ends.
    assert_eq!(
        dispatch_jobs(dir),
        [
            (rec, "archive".into(), "http".into(), "pending".into(), 0),
            (rec, "hook".into(), "script".into(), "pending".into(), 0),
        ]
    );
    store.finish(&summary()).unwrap();
    assert_eq!(
        dispatch_jobs(dir).len(),
        4,
        "end-of-run finalises the open one too"
    );
}

#[test]
fn a_recording_recovered_after_a_crash_is_queued_for_dispatch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut store = Store::open(dir, dispatch_opts()).unwrap();
    store.handle(started(1, 0, "crash@host")).unwrap();
    store.handle(answered(1, 1000)).unwrap();
    store.handle(rec_started(1, 1, 1000)).unwrap();
    feed(&mut store, 1, 0, 20_000);
    store.simulate_crash();
    assert!(dispatch_jobs(dir).is_empty());
    let store = Store::open(dir, dispatch_opts()).unwrap();
    assert_eq!(store.recovery().recordings_recovered.len(), 1);
    let jobs = dispatch_jobs(dir);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|j| j.3 == "pending"));
    drop(store);
    // Reopening again queues nothing twice.
    let store = Store::open(dir, dispatch_opts()).unwrap();
    drop(store);
    assert_eq!(dispatch_jobs(dir).len(), 2);
}

/// A chunk of call `call`'s evidence: `frames` as (ms, linktype, bytes).
fn evidence(call: u64, frames: &[(u64, u32, &[u8])], last: bool) -> Event {
    let mut data = Vec::new();
    for &(ms, lt, bytes) in frames {
        voxtap_core::evidence::push_record(&mut data, t(ms), lt, bytes);
    }
    Event::Evidence(voxtap_core::evidence::EvidenceChunk {
        call: CallHandle(call),
        frames: frames.len() as u32,
        first_ts: t(frames.first().map_or(0, |f| f.0)),
        last_ts: t(frames.last().map_or(0, |f| f.0)),
        data,
        last,
    })
}

#[test]
fn evidence_chunks_make_one_pcapng_lz4_file_and_its_catalog_row() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut store = Store::open(&dir, opts()).unwrap();
    store.handle(started(1, 0, "ev@host")).unwrap();
    let eth = [0xAAu8; 60];
    let raw = [0x45u8, 0, 0, 20, 1, 2, 3];
    store
        .handle(evidence(1, &[(0, 1, &eth), (20, 1, &eth[..59])], false))
        .unwrap();
    // A second link type later in the file gets its own interface.
    store
        .handle(evidence(1, &[(40, 101, &raw), (60, 1, &eth)], true))
        .unwrap();
    store.handle(ended(1, 100, EndReason::Bye, None)).unwrap();
    let report = store.finish(&summary()).unwrap();
    assert_eq!(report.evidence.files, 1);
    assert_eq!(
        report.evidence.writes, 3,
        "one append per chunk, one compression"
    );
    assert_eq!(report.evidence.frames_written, 4);

    let rel = PathBuf::from("evidence/2024-03-01/1-ev_host.pcapng.lz4");
    let abs = dir.join(&rel);
    let frames = evidence::read(&abs).unwrap();
    let got: Vec<(Timestamp, u32, usize)> = frames
        .iter()
        .map(|f| (f.ts, f.linktype, f.data.len()))
        .collect();
    assert_eq!(
        got,
        vec![
            (t(0), 1, 60),
            (t(20), 1, 59),
            (t(40), 101, 7),
            (t(60), 1, 60)
        ]
    );
    assert_eq!(frames[2].data, raw);
    assert_eq!(mode(&abs), FILE_MODE);
    assert_eq!(mode(&dir.join("evidence/2024-03-01")), DIR_MODE);

    let db = catalog(&dir);
    let rows = evidence::rows_of_call(&db, 1).unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.path, rel);
    assert_eq!(r.format, "pcapng+lz4");
    assert_eq!((r.frames, r.state.as_str()), (4, "complete"));
    assert_eq!(r.size_bytes as u64, fs::metadata(&abs).unwrap().len());
    assert_eq!(r.first_time, t(0).to_string());
    assert_eq!(r.last_time, t(60).to_string());
    let writes: i64 = one(&db, "SELECT evidence_writes FROM runs");
    assert_eq!(writes, 3);
    assert!(!evidence::part_path(&abs).exists(), "the part is gone");
}

#[test]
fn evidence_the_disk_refuses_is_failed_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut store = Store::open(&dir, opts()).unwrap();
    // A file where the evidence directory should be: nothing can be written under it.
    fs::write(dir.join("evidence"), b"in the way").unwrap();
    store.handle(started(1, 0, "refused@host")).unwrap();
    store
        .handle(evidence(1, &[(0, 1, &[1u8; 60])], false))
        .unwrap();
    store
        .handle(evidence(1, &[(20, 1, &[1u8; 60])], true))
        .unwrap();
    let report = store.finish(&summary()).unwrap();
    assert_eq!(report.evidence.write_failed, 1);
    assert_eq!(report.evidence.frames_dropped, 2);
    let db = catalog(&dir);
    let (state, reason): (String, String) = db
        .query_row("SELECT state, state_reason FROM evidence", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(state, "failed");
    assert!(
        reason.contains("evidence"),
        "the reason names the path: {reason}"
    );
    let failed: i64 = one(&db, "SELECT evidence_write_failed FROM runs");
    assert_eq!(failed, 1);
}

#[test]
fn evidence_of_a_crashed_run_reads_up_to_its_last_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut store = Store::open(dir, opts()).unwrap();
    store.handle(started(1, 0, "crash-ev@host")).unwrap();
    store
        .handle(evidence(1, &[(0, 1, &[7u8; 80])], false))
        .unwrap();
    store.handle(answered(1, 10)).unwrap();
    store.handle(rec_started(1, 1, 10)).unwrap(); // commits
    // While the call runs its frames so far are readable (from the uncompressed part).
    let rel = PathBuf::from("evidence/2024-03-01/1-crash-ev_host.pcapng.lz4");
    assert_eq!(evidence::read(&dir.join(&rel)).unwrap().len(), 1);
    store.simulate_crash();
    let store = Store::open(dir, opts()).unwrap();
    drop(store);
    let db = catalog(dir);
    let (state, reason, path): (String, String, String) = db
        .query_row("SELECT state, state_reason, path FROM evidence", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("complete", "interrupted")
    );
    assert_eq!(evidence::read(&dir.join(path)).unwrap().len(), 1);
}

#[test]
fn evidence_is_erased_per_call_and_expired_by_age() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut store = Store::open(&dir, opts()).unwrap();
    for call in 1..=3 {
        store
            .handle(started(call, call * 1000, &format!("c{call}@h")))
            .unwrap();
        store
            .handle(evidence(call, &[(call * 1000, 1, &[9u8; 64])], true))
            .unwrap();
    }
    store.finish(&summary()).unwrap();
    let db = Connection::open(dir.join(CATALOG_FILE)).unwrap();
    let path =
        |id: i64| -> PathBuf { dir.join(evidence::rows_of_call(&db, id).unwrap()[0].path.clone()) };
    let (p1, p2, p3) = (path(1), path(2), path(3));
    let req = erase::Request {
        subjects: vec![erase::Subject::Call("c2@h".into())],
        reason: "request 42".into(),
        operator: "dpo".into(),
        operator_uid: 0,
        dry_run: false,
    };
    let erased = erase::erase(&db, &dir, &req, t(2000)).unwrap();
    assert_eq!(
        (
            erased.calls.as_slice(),
            erased.evidence_files,
            erased.files_deleted
        ),
        (&[2][..], 1, 1)
    );
    assert!(!p2.exists() && p1.exists() && p3.exists());
    let policy = retention::RetentionPolicy {
        default: retention::Limits {
            max_age: Some(Duration::from_secs(86_400)),
            max_bytes: None,
        },
        ..retention::RetentionPolicy::default()
    };
    let now = t(DAY_MS + 2500);
    let plan = retention::plan(&db, &policy, now).unwrap();
    assert_eq!(
        plan.expire
            .iter()
            .map(|e| e.item.call_id)
            .collect::<Vec<_>>(),
        [1],
        "only call 1 is older (call 2 is erased already)"
    );
    assert_eq!(plan.expire[0].item.kind, retention::ItemKind::Evidence);
    retention::apply(&db, &dir, &plan, now).unwrap();
    assert!(!p1.exists() && p3.exists());
    let states: Vec<(String, Option<String>)> = db
        .prepare("SELECT state, state_reason FROM evidence ORDER BY call_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(states[0], ("expired".into(), Some("older than 1 d".into())));
    assert_eq!(states[1].0, "erased");
    assert_eq!(states[2], ("complete".into(), None));
    // Erasing again finds the call, with nothing left to remove.
    let by_id = erase::Request {
        subjects: vec![erase::Subject::Call("2".into())],
        ..req
    };
    let again = erase::erase(&db, &dir, &by_id, t(3000)).unwrap();
    assert_eq!((again.evidence_files, again.files_deleted), (0, 0));
}

/// What another reader of the catalog sees: the call's state and its recording's.
fn seen(dir: &Path) -> (String, String) {
    let db = catalog(dir);
    db.query_row(
        "SELECT c.state, r.state FROM calls c JOIN recordings r ON r.call_id = c.id",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn a_batch_commits_a_calls_end_once_at_its_end_and_a_recordings_start_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path(), opts()).unwrap();
    store.begin_batch();
    store.handle(started(1, 0, "batch@host")).unwrap();
    store.handle(answered(1, 100)).unwrap();
    // The start commits inside the batch too: the row is durable before the file exists.
    store.handle(rec_started(1, 1, 100)).unwrap();
    let rel = "recordings/2024/03/01/1-batch_host.wav";
    assert!(tmp.path().join(format!("{rel}.part")).exists());
    assert_eq!(seen(tmp.path()), ("answered".into(), "recording".into()));
    store.handle(audio(1, 0, 8000)).unwrap();
    store.end_batch().unwrap();

    store.begin_batch();
    store.handle(rec_stopped(1, 1, 1100, 8000)).unwrap();
    store
        .handle(ended(1, 1100, EndReason::Bye, Some(200)))
        .unwrap();
    // The file is final; the catalog says so once the batch ends, both rows together.
    assert!(tmp.path().join(rel).exists());
    assert_eq!(seen(tmp.path()), ("answered".into(), "recording".into()));
    store.end_batch().unwrap();
    assert_eq!(seen(tmp.path()), ("ended".into(), "complete".into()));

    // Outside a batch, a call's end commits at once, as before.
    store.handle(started(2, 2000, "alone@host")).unwrap();
    store.handle(answered(2, 2100)).unwrap();
    store.handle(rec_started(2, 2, 2100)).unwrap();
    store.handle(rec_stopped(2, 2, 3100, 0)).unwrap();
    store
        .handle(ended(2, 3100, EndReason::Bye, Some(200)))
        .unwrap();
    let db = catalog(tmp.path());
    let state: String = db
        .query_row(
            "SELECT state FROM calls WHERE sip_call_id = 'alone@host'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "ended");
    drop(db);
    store.finish(&RunSummary::default()).unwrap();
}

/// A kill inside a batch, after the file was made final and before the batch committed:
/// the next open finds the `.wav` and says the recording was recovered; the call was
/// interrupted. Nothing is inconsistent.
#[test]
fn a_kill_inside_a_batch_leaves_a_catalog_the_next_open_repairs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut store = Store::open(dir, opts()).unwrap();
    store.handle(started(1, 0, "killed@host")).unwrap();
    store.handle(answered(1, 100)).unwrap();
    store.handle(rec_started(1, 1, 100)).unwrap();
    feed(&mut store, 1, 0, 16_000);
    store.begin_batch();
    store.handle(rec_stopped(1, 1, 2100, 16_000)).unwrap();
    store
        .handle(ended(1, 2100, EndReason::Bye, Some(200)))
        .unwrap();
    store.simulate_crash();

    let store = Store::open(dir, opts()).unwrap();
    let rel = PathBuf::from("recordings/2024/03/01/1-killed_host.wav");
    assert_eq!(store.recovery().recordings_recovered, vec![rel.clone()]);
    assert_pattern(&read_wav(&dir.join(&rel)).1, 16_000);
    assert_eq!(seen(dir), ("interrupted".into(), "recovered".into()));
    store.finish(&RunSummary::default()).unwrap();
}
