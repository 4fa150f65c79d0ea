//! The catalog schema, version 5. A public interface: `docs/catalog.md` documents every column.
//! Change it only additively, and bump `SCHEMA_VERSION` with a migration step when you do.

use rusqlite::Connection;

/// `PRAGMA user_version` of a catalog this code writes.
pub const SCHEMA_VERSION: i32 = 5;

/// Version 1. `IF NOT EXISTS` everywhere so that re-running it on a version-1 catalog is a no-op.
/// No CHECK constraints on the enumerated TEXT columns: SQLite cannot alter a CHECK, and new
/// values (e.g. more `events.kind`s) must not need a table rebuild.
pub(crate) const V1: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at       TEXT NOT NULL,
    ended_at         TEXT,
    capture_end_time TEXT,
    source           TEXT NOT NULL,
    frames           INTEGER NOT NULL DEFAULT 0,
    sip_messages     INTEGER NOT NULL DEFAULT 0,
    rtp_packets      INTEGER NOT NULL DEFAULT 0,
    rtp_unmatched    INTEGER NOT NULL DEFAULT 0,
    malformed        INTEGER NOT NULL DEFAULT 0,
    ignored          INTEGER NOT NULL DEFAULT 0,
    calls_seen       INTEGER NOT NULL DEFAULT 0,
    calls_answered   INTEGER NOT NULL DEFAULT 0,
    rtp_streams      INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL DEFAULT 'running'
);

CREATE TABLE IF NOT EXISTS calls (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            INTEGER NOT NULL REFERENCES runs(id),
    sip_call_id       TEXT NOT NULL,
    from_tag          TEXT NOT NULL,
    to_tag            TEXT,
    caller_user       TEXT NOT NULL,
    caller_host       TEXT NOT NULL,
    caller_name       TEXT,
    callee_user       TEXT NOT NULL,
    callee_host       TEXT NOT NULL,
    callee_name       TEXT,
    caller_signalling TEXT NOT NULL,
    callee_signalling TEXT NOT NULL,
    transport         TEXT NOT NULL,
    start_time        TEXT NOT NULL,
    answer_time       TEXT,
    end_time          TEXT,
    duration_s        REAL,
    state             TEXT NOT NULL,
    end_reason        TEXT,
    final_status      INTEGER
);
CREATE INDEX IF NOT EXISTS calls_sip_call_id ON calls(sip_call_id);
CREATE INDEX IF NOT EXISTS calls_start_time ON calls(start_time);
CREATE INDEX IF NOT EXISTS calls_run_id ON calls(run_id);
CREATE INDEX IF NOT EXISTS calls_open ON calls(state) WHERE state IN ('ringing', 'answered');

CREATE TABLE IF NOT EXISTS streams (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id          INTEGER NOT NULL REFERENCES calls(id),
    side             TEXT NOT NULL,
    src_addr         TEXT NOT NULL,
    src_port         INTEGER NOT NULL,
    dst_addr         TEXT NOT NULL,
    dst_port         INTEGER NOT NULL,
    ssrc             INTEGER NOT NULL,
    payload_type     INTEGER NOT NULL,
    codec            TEXT NOT NULL,
    clock_rate       INTEGER NOT NULL,
    first_time       TEXT NOT NULL,
    last_time        TEXT NOT NULL,
    packets          INTEGER NOT NULL,
    expected         INTEGER NOT NULL,
    lost             INTEGER NOT NULL,
    loss_pct         REAL NOT NULL,
    max_jitter_ms    REAL NOT NULL,
    mean_jitter_ms   REAL NOT NULL,
    late             INTEGER NOT NULL,
    telephone_events INTEGER NOT NULL,
    comfort_noise    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS streams_call_id ON streams(call_id);

CREATE TABLE IF NOT EXISTS recordings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     INTEGER NOT NULL REFERENCES calls(id),
    path        TEXT NOT NULL UNIQUE,
    format      TEXT NOT NULL,
    channels    INTEGER NOT NULL,
    sample_rate INTEGER NOT NULL,
    start_time  TEXT NOT NULL,
    end_time    TEXT,
    duration_s  REAL,
    size_bytes  INTEGER,
    state       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    stop_reason TEXT
);
CREATE INDEX IF NOT EXISTS recordings_call_id ON recordings(call_id);
CREATE INDEX IF NOT EXISTS recordings_open ON recordings(state) WHERE state = 'recording';

CREATE TABLE IF NOT EXISTS events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id      INTEGER NOT NULL REFERENCES calls(id),
    recording_id INTEGER REFERENCES recordings(id),
    time         TEXT NOT NULL,
    offset_s     REAL,
    kind         TEXT NOT NULL,
    value        TEXT,
    duration_ms  INTEGER,
    source       TEXT,
    side         TEXT,
    user         TEXT,
    device       TEXT
);
CREATE INDEX IF NOT EXISTS events_call_id ON events(call_id);
CREATE INDEX IF NOT EXISTS events_recording_id ON events(recording_id);
CREATE TABLE IF NOT EXISTS decisions (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id  INTEGER NOT NULL REFERENCES calls(id),
    time     TEXT NOT NULL,
    record   INTEGER NOT NULL,
    reason   TEXT NOT NULL,
    trace    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_call_id ON decisions(call_id);
";

/// Version 2: what each stream and recording really holds (decoded, concealed, why not), and
/// the run's counts of audio it could not use. Columns only added, so readers of version 1
/// keep working.
const V2: &[&str] = &[
    "ALTER TABLE streams ADD COLUMN status TEXT NOT NULL DEFAULT 'decoded'",
    "ALTER TABLE streams ADD COLUMN status_reason TEXT",
    "ALTER TABLE streams ADD COLUMN fmtp TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE streams ADD COLUMN security TEXT NOT NULL DEFAULT 'rtp'",
    "ALTER TABLE streams ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE streams ADD COLUMN decoded_packets INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE streams ADD COLUMN decoded_s REAL NOT NULL DEFAULT 0",
    "ALTER TABLE streams ADD COLUMN concealed_s REAL NOT NULL DEFAULT 0",
    "ALTER TABLE streams ADD COLUMN recovered_s REAL NOT NULL DEFAULT 0",
    "ALTER TABLE streams ADD COLUMN undecodable_packets INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE streams ADD COLUMN decrypt_failures INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE recordings ADD COLUMN codec TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE recordings ADD COLUMN state_reason TEXT",
    "ALTER TABLE recordings ADD COLUMN caller_audio_s REAL",
    "ALTER TABLE recordings ADD COLUMN callee_audio_s REAL",
    "ALTER TABLE recordings ADD COLUMN slipped_s REAL",
    "ALTER TABLE recordings ADD COLUMN shifted_s REAL",
    "ALTER TABLE recordings ADD COLUMN reanchors INTEGER",
    "ALTER TABLE runs ADD COLUMN late_packets INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN duplicate_packets INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN decrypt_failures INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN concealed_s REAL NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN undecodable_streams INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN encrypted_streams INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN recordings_cut INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN rtp_after_end INTEGER NOT NULL DEFAULT 0",
];

/// Version 3: conversations (the legs of one call as people see it, and the evidence tying
/// them), which way each call goes, and which leg's recording covers a conversation.
const V3: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS conversations (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id        INTEGER NOT NULL REFERENCES runs(id),
        start_time    TEXT NOT NULL,
        end_time      TEXT,
        caller_user   TEXT NOT NULL,
        callee_user   TEXT NOT NULL,
        legs          INTEGER NOT NULL DEFAULT 1,
        merged_into   INTEGER REFERENCES conversations(id)
    )",
    "CREATE INDEX IF NOT EXISTS conversations_start_time ON conversations(start_time)",
    "CREATE TABLE IF NOT EXISTS conversation_links (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        call_id         INTEGER NOT NULL REFERENCES calls(id),
        linked_call_id  INTEGER REFERENCES calls(id),
        time            TEXT NOT NULL,
        evidence        TEXT NOT NULL,
        detail          TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS conversation_links_conversation_id ON conversation_links(conversation_id)",
    "ALTER TABLE calls ADD COLUMN conversation_id INTEGER REFERENCES conversations(id)",
    "ALTER TABLE calls ADD COLUMN direction TEXT",
    "CREATE INDEX IF NOT EXISTS calls_conversation_id ON calls(conversation_id)",
    "ALTER TABLE decisions ADD COLUMN direction TEXT",
    "ALTER TABLE decisions ADD COLUMN covered_by_call_id INTEGER REFERENCES calls(id)",
    "ALTER TABLE recordings ADD COLUMN conversation_id INTEGER REFERENCES conversations(id)",
    "ALTER TABLE recordings ADD COLUMN repeats_recording_id INTEGER REFERENCES recordings(id)",
];

/// Version 4: what a run dropped for memory or size, how high its buffers went, and how many
/// recordings the disk refused.
const V4: &[&str] = &[
    "ALTER TABLE runs ADD COLUMN sip_too_large INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN evicted_for_memory INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN over_budget INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN buffered_peak_bytes INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN recordings_write_failed INTEGER NOT NULL DEFAULT 0",
];

/// Version 5, dispatch: the durable queue of finished recordings to send on (HTTP, a script,
/// email), each attempt and its result, and which recordings' files an upload removed.
const V5_DISPATCH: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS dispatch_jobs (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        recording_id    INTEGER NOT NULL REFERENCES recordings(id),
        call_id         INTEGER NOT NULL REFERENCES calls(id),
        target          TEXT NOT NULL,
        kind            TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        done_at         TEXT,
        destination     TEXT,
        last_error      TEXT,
        UNIQUE (recording_id, target)
    )",
    "CREATE INDEX IF NOT EXISTS dispatch_jobs_due ON dispatch_jobs(state, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS dispatch_jobs_call_id ON dispatch_jobs(call_id)",
    "CREATE TABLE IF NOT EXISTS dispatch_attempts (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id     INTEGER NOT NULL REFERENCES dispatch_jobs(id),
        started_at TEXT NOT NULL,
        ended_at   TEXT,
        result     TEXT NOT NULL,
        detail     TEXT
    )",
    "CREATE INDEX IF NOT EXISTS dispatch_attempts_job_id ON dispatch_attempts(job_id)",
    "ALTER TABLE recordings ADD COLUMN removed_by TEXT",
];

/// Version 5 (retention and erasure): each call's tenant, when recordings and evidence left
/// the disk and why (rows stay, `expired` or `erased`, with their metadata), and the audit
/// trail of erasures.
const V5_RETENTION: &[&str] = &[
    "ALTER TABLE calls ADD COLUMN tenant TEXT",
    "ALTER TABLE decisions ADD COLUMN tenant TEXT",
    "ALTER TABLE decisions ADD COLUMN users TEXT",
    "ALTER TABLE recordings ADD COLUMN removed_at TEXT",
    "ALTER TABLE recordings ADD COLUMN removed_reason TEXT",
    "ALTER TABLE recordings ADD COLUMN state_before_removal TEXT",
    "CREATE INDEX IF NOT EXISTS recordings_start_time ON recordings(start_time)",
    "CREATE TABLE IF NOT EXISTS erasures (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        time           TEXT NOT NULL,
        operator       TEXT NOT NULL,
        operator_uid   INTEGER NOT NULL,
        subject        TEXT NOT NULL,
        reason         TEXT NOT NULL,
        calls          TEXT NOT NULL,
        recordings     INTEGER NOT NULL,
        evidence_files INTEGER NOT NULL,
        files_deleted  INTEGER NOT NULL,
        bytes_deleted  INTEGER NOT NULL,
        copies_sent    TEXT NOT NULL,
        vacuumed       INTEGER NOT NULL
    )",
    "ALTER TABLE calls ADD COLUMN erasure_id INTEGER REFERENCES erasures(id)",
];

/// Version 5, evidence: each call's frames as a pcapng+lz4 file (docs/evidence.md), and what
/// a run wrote of them and failed to.
const V5_EVIDENCE: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS evidence (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id      INTEGER NOT NULL REFERENCES calls(id),
        path         TEXT NOT NULL,
        format       TEXT NOT NULL,
        frames       INTEGER NOT NULL DEFAULT 0,
        size_bytes   INTEGER NOT NULL DEFAULT 0,
        first_time   TEXT NOT NULL,
        last_time    TEXT NOT NULL,
        state        TEXT NOT NULL,
        state_reason TEXT
    )",
    "CREATE INDEX IF NOT EXISTS evidence_call_id ON evidence(call_id)",
    "CREATE INDEX IF NOT EXISTS evidence_last_time ON evidence(last_time)",
    "ALTER TABLE runs ADD COLUMN evidence_frames INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN evidence_unclaimed INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN evidence_writes INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN evidence_write_failed INTEGER NOT NULL DEFAULT 0",
];

pub enum Migration {
    Current,
    /// The catalog was written by a newer voxtap.
    TooNew(i32),
}

/// Creates or upgrades the schema inside one transaction.
pub fn migrate(db: &Connection) -> rusqlite::Result<Migration> {
    let found: i32 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Ok(Migration::TooNew(found));
    }
    if found < SCHEMA_VERSION {
        db.execute_batch("BEGIN IMMEDIATE")?;
        let mut step = if found < 1 {
            db.execute_batch(V1)
        } else {
            Ok(())
        };
        if found < 2 {
            for stmt in V2 {
                step = step.and_then(|()| db.execute_batch(stmt));
            }
        }
        if found < 3 {
            for stmt in V3 {
                step = step.and_then(|()| db.execute_batch(stmt));
            }
        }
        if found < 4 {
            for stmt in V4 {
                step = step.and_then(|()| db.execute_batch(stmt));
            }
        }
        if found < 5 {
            for stmt in V5_RETENTION {
                step = step.and_then(|()| db.execute_batch(stmt));
            }
            for stmt in V5_DISPATCH {
                step = step.and_then(|()| db.execute_batch(stmt));
            }
            for stmt in V5_EVIDENCE {
                step = step.and_then(|()| db.execute_batch(stmt));
            }
        }
        let step = step.and_then(|()| db.pragma_update(None, "user_version", SCHEMA_VERSION));
        match step {
            Ok(()) => db.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = db.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(Migration::Current)
}
