//! Recording and catalog sink: engine [`Event`]s in, WAV files and an SQLite catalog out.
//!
//! Layout of the output directory `DIR` (see `docs/catalog.md` for the catalog schema):
//! ```text
//! DIR/catalog.sqlite                       the catalog (WAL mode; -wal and -shm beside it)
//! DIR/catalog.lock                         held (flock) while a Store is open
//! DIR/recordings/YYYY/MM/DD/<id>-<Call-ID>.wav        finished recordings
//! DIR/recordings/YYYY/MM/DD/<id>-<Call-ID>.wav.part   recordings in progress
//! ```
//! The store never sees packets. Engine handles are only unique within one run, so they are
//! mapped to catalog row ids here and never written out.

mod audio;
pub mod erase;
pub mod evidence;
mod names;
pub mod retention;
mod schema;

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};
use voxtap_core::Timestamp;
use voxtap_core::event::{
    CallDecision, CallStarted, ConversationLink, DtmfEvent, EndReason, Event, RecordingControl,
    RecordingOutcome, RecordingStarted, RecordingState, StopReason, StreamReport,
};
use voxtap_core::stats::Dropped;
use voxtap_core::vocab::{Action, CallHandle, RecordingFormat, RecordingHandle, Side};

pub use audio::sink::{PoolStats, pool_stats, set_pool_capacity};
pub use evidence::EvidenceReport;
pub use schema::SCHEMA_VERSION;

/// Mode of every directory the store creates: recordings are personal data.
pub const DIR_MODE: u32 = 0o750;
/// Mode of every file the store creates (recordings, catalog, lock).
pub const FILE_MODE: u32 = audio::FILE_MODE;
/// Catalog file name inside DIR.
pub const CATALOG_FILE: &str = "catalog.sqlite";
/// Lock file name inside DIR: one writer per directory.
pub const LOCK_FILE: &str = "catalog.lock";

/// Ended calls whose handles stay resolvable for late `StreamEnded`/`Dtmf` events; older ones
/// are forgotten so a long live run keeps bounded memory.
const ENDED_CALLS_KEPT: usize = 4096;
/// Conversations whose engine ids stay resolvable; older ones are forgotten (a leg joining one
/// later starts a new row, which the links still tie to the old leg's call).
const CONVERSATIONS_KEPT: usize = 8192;

#[derive(Clone, Debug, PartialEq)]
pub struct StoreOptions {
    /// Seconds of audio between WAV header rewrites; a crash loses at most this much of a `.part`
    /// (plus what the kernel had not written back, for a power loss). 0 flushes on every batch.
    pub wav_flush_secs: f64,
    /// Catalog-writing events per transaction (audio does not count). A recording's start
    /// always commits at once (its row is durable before its file exists); call end and
    /// recording stop commit at once, or inside a batch ([`Store::begin_batch`]) at its end.
    pub commit_every: usize,
    /// What was captured (file names or interface), saved in `runs.source`.
    pub source: String,
    /// Where finished recordings are sent on: a `dispatch_jobs` row per target is written in
    /// the transaction that makes a recording final (docs/dispatch.md).
    pub dispatch: Vec<DispatchTarget>,
}

/// A dispatch target as the store knows it: its configured name and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchTarget {
    pub name: String,
    /// `http`, `script` or `email`.
    pub kind: &'static str,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            wav_flush_secs: 1.0,
            commit_every: 512,
            source: String::new(),
            dispatch: Vec::new(),
        }
    }
}

/// The engine's counters at the end of a run, for the `runs` row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Packet time of the last frame, saved as `runs.capture_end_time`.
    pub ended_ts: Option<Timestamp>,
    pub frames: u64,
    pub sip_messages: u64,
    pub rtp_packets: u64,
    pub rtp_unmatched: u64,
    pub malformed: u64,
    pub ignored: u64,
    pub calls_seen: u64,
    pub calls_answered: u64,
    pub rtp_streams: u64,
    /// Audio the run could not use, by reason.
    pub late_packets: u64,
    pub duplicate_packets: u64,
    pub decrypt_failures: u64,
    pub concealed_ms: u64,
    pub undecodable_streams: u64,
    pub encrypted_streams: u64,
    pub recordings_cut: u64,
    pub rtp_after_end: u64,
    /// What was dropped for size or memory (see `voxtap_core::stats::Dropped`).
    pub sip_too_large: u64,
    /// TCP flows, IP datagrams and held RTP evicted for the buffer budget.
    pub evicted_for_memory: u64,
    pub over_budget: u64,
    pub buffered_peak_bytes: u64,
    /// Evidence frames the engine kept, and frames that waited for a call never claimed.
    pub evidence_frames: u64,
    pub evidence_unclaimed: u64,
}

impl RunSummary {
    /// The summary of an engine's counters; `last_packet` is the packet time it reached
    /// (`Engine::now`), or zero when it saw none.
    pub fn from_stats(stats: &voxtap_core::stats::Stats, last_packet: Timestamp) -> RunSummary {
        RunSummary {
            ended_ts: (last_packet > Timestamp(0)).then_some(last_packet),
            frames: stats.frames,
            sip_messages: stats.sip_messages,
            rtp_packets: stats.rtp_packets,
            rtp_unmatched: stats.rtp_unmatched,
            malformed: stats.malformed_total(),
            ignored: stats.ignored,
            calls_seen: stats.calls_seen,
            calls_answered: stats.calls_answered,
            rtp_streams: stats.rtp_streams,
            late_packets: stats.late_packets,
            duplicate_packets: stats.duplicate_packets,
            decrypt_failures: stats.decrypt_failures,
            concealed_ms: stats.concealed_ms,
            undecodable_streams: stats.undecodable_streams,
            encrypted_streams: stats.encrypted_streams,
            recordings_cut: stats.recordings_cut,
            rtp_after_end: stats.rtp_after_end,
            sip_too_large: stats.dropped[Dropped::SipTooLarge as usize],
            evicted_for_memory: [
                Dropped::TcpEvicted,
                Dropped::FragmentsEvicted,
                Dropped::HeldRtpEvicted,
            ]
            .iter()
            .map(|d| stats.dropped[*d as usize])
            .sum(),
            over_budget: stats.dropped[Dropped::OverBudget as usize],
            buffered_peak_bytes: stats.buffered_peak_bytes,
            evidence_frames: stats.evidence_frames,
            evidence_unclaimed: stats.evidence_unclaimed,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// Recordings started in this run.
    pub recordings: u64,
    /// Every `.wav` finished in this run, relative to DIR, in the order they were finished.
    pub recordings_finalised: Vec<PathBuf>,
    /// Recordings that held no audio (their file was removed), and ones that held only part.
    pub recordings_no_audio: u64,
    pub recordings_partial: u64,
    /// Calls inserted in this run.
    pub calls: u64,
    /// Events naming a handle the store did not know (or had forgotten); they were dropped.
    pub orphan_events: u64,
    /// Recordings whose file could not be created or written (a full disk, an I/O error):
    /// each row is `partial` with what reached the disk, or `missing`, and says why.
    pub recordings_write_failed: u64,
    /// Milliseconds of audio that arrived for those recordings after they failed, dropped.
    pub ms_after_write_failure: u64,
    /// Times the recordings filled the disk they share with the catalog, and the catalog's
    /// reserve was given up so it could still be written.
    pub reserve_released: u64,
    /// Evidence files written (docs/evidence.md).
    pub evidence: EvidenceReport,
}

/// How the recordings being written stand with the disk, for the live figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteHealth {
    /// Open recordings whose last write the disk refused (their bytes are held in memory).
    pub refused: u64,
    /// Bytes the disk refused, held in memory until it takes them.
    pub held_bytes: u64,
    /// Recordings given up on in this run.
    pub failed: u64,
}

/// What `Store::open` repaired from earlier runs that did not finish.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// `.part` files made valid and renamed (or `.wav` files already renamed), relative to DIR.
    pub recordings_recovered: Vec<PathBuf>,
    /// Rows in state `recording` with neither file on disk; now state `missing`.
    pub recordings_missing: Vec<PathBuf>,
    /// `.part` files that could not be repaired; left in state `recording`, retried next open.
    pub recordings_failed: Vec<(PathBuf, String)>,
    pub calls_interrupted: u64,
    pub runs_interrupted: u64,
}

/// Every variant names the file or directory involved.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("directory {}: {source}", path.display())]
    Dir { path: PathBuf, source: io::Error },
    #[error("catalog {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("catalog {}: {source}", path.display())]
    CatalogIo { path: PathBuf, source: io::Error },
    #[error("catalog {}: schema version {found} is newer than this voxtap supports ({supported})", path.display())]
    SchemaTooNew {
        path: PathBuf,
        found: i32,
        supported: i32,
    },
    #[error("lock {}: another voxtap is writing to this directory", path.display())]
    Locked { path: PathBuf },
    #[error("lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error("recording {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("recording {}: {source}", path.display())]
    Wav { path: PathBuf, source: hound::Error },
}

struct CallState {
    row: i64,
    sip_call_id: String,
    start: Timestamp,
    answered: Option<Timestamp>,
    /// The recording DTMF events are attached to.
    open_rec: Option<RecordingHandle>,
    recordings: u32,
    ended: bool,
    /// Row of its conversation.
    conversation: Option<i64>,
}

struct OpenRecording {
    row: i64,
    call: CallHandle,
    start: Timestamp,
    sample_rate: u32,
    /// `record_min_sec`: a shorter finished recording is deleted.
    min_secs: Option<u32>,
    rel: PathBuf,
    format: RecordingFormat,
    channels: u16,
    file: Box<dyn audio::AudioFile>,
}

/// What `Store::salvage` needs of a recording whose writer is gone.
struct Salvage {
    row: i64,
    rel: PathBuf,
    format: RecordingFormat,
    channels: u16,
    sample_rate: u32,
    frames: u64,
}

impl OpenRecording {
    /// What salvaging its file needs, `frames` into it.
    fn salvage(&self, frames: u64) -> Salvage {
        Salvage {
            row: self.row,
            rel: self.rel.clone(),
            format: self.format,
            channels: self.channels,
            sample_rate: self.sample_rate,
            frames,
        }
    }
}

/// A recording whose file could not be written: its row says what reached the disk; later
/// audio for it is counted and dropped.
struct FailedRecording {
    row: i64,
    sample_rate: u32,
    /// Its state now (`partial` or `missing`) and why.
    state: &'static str,
    reason: String,
}

pub struct Store {
    dir: PathBuf,
    catalog: PathBuf,
    db: Connection,
    /// Holds the flock for the store's lifetime.
    _lock: File,
    opts: StoreOptions,
    run_id: i64,
    events_in_tx: usize,
    /// Inside a batch: events that commit wait for its end ([`Store::end_batch`]).
    batching: bool,
    /// Such an event came in the batch.
    commit_due: bool,
    calls: HashMap<CallHandle, CallState>,
    ended: VecDeque<CallHandle>,
    recs: HashMap<RecordingHandle, OpenRecording>,
    failed: HashMap<RecordingHandle, FailedRecording>,
    /// Engine conversation id -> `conversations.id`, oldest first in `conv_order`.
    conversations: HashMap<u64, i64>,
    conv_order: VecDeque<u64>,
    /// Rows of recordings that were open, for `repeats_recording_id` of later ones.
    rec_rows: HashMap<RecordingHandle, i64>,
    rec_order: VecDeque<RecordingHandle>,
    report: StoreReport,
    recovery: Recovery,
    /// Room kept for the catalog when it shares its file system with the recordings.
    reserve: Option<Reserve>,
    /// The latest recordings finished, for a live view ([`Store::take_finished`]).
    finished: VecDeque<FinishedRecording>,
    evidence: evidence::EvidenceWriter,
}

/// A recording the store has finished: what a live view lists ([`Store::take_finished`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedRecording {
    pub call: CallHandle,
    /// Relative to DIR.
    pub path: PathBuf,
    pub format: RecordingFormat,
    pub bytes: u64,
    /// The catalog's `recordings.state`: `complete`, `partial`, `no-audio`, `deleted`, ...
    pub state: String,
    pub start: Timestamp,
    pub duration_s: f64,
}

/// Finished recordings kept for [`Store::take_finished`] when nobody takes them.
pub const FINISHED_KEPT: usize = 64;

/// A file of zeros next to the catalog, given up when the recordings fill the disk they share
/// with it, so the catalog can still be written; made again when space returns.
struct Reserve {
    path: PathBuf,
    size: u64,
    present: bool,
    /// Events until the next try to make it again.
    countdown: u32,
}

/// The reserve's name inside DIR.
pub const RESERVE_FILE: &str = "catalog.reserve";

impl Reserve {
    /// A reserve for `dir` if its recordings share its file system: a sixteenth of what is
    /// free, 1 MiB (the WAL's most) to 16 MiB.
    fn new(dir: &Path) -> Option<Reserve> {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        if dev(dir)? != dev(&dir.join("recordings"))? {
            return None;
        }
        let free = audio::sink::free_bytes(dir)?;
        let mut r = Reserve {
            path: dir.join(RESERVE_FILE),
            size: (free / 16).clamp(1 << 20, 16 << 20),
            present: false,
            countdown: 0,
        };
        r.make();
        Some(r)
    }

    fn make(&mut self) {
        use std::io::Write;
        let zeros = [0u8; 64 * 1024];
        let made = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&self.path)
            .and_then(|mut f| {
                let mut left = self.size;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    f.write_all(&zeros[..n])?;
                    left -= n as u64;
                }
                f.sync_all()
            });
        self.present = made.is_ok();
        if !self.present {
            let _ = fs::remove_file(&self.path);
        }
    }

    fn give_up(&mut self) {
        let _ = fs::remove_file(&self.path);
        self.present = false;
        // Recordings wait until there is room for them and the reserve again.
        audio::sink::hold_back(Some(3 * self.size));
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        if !self.present {
            audio::sink::hold_back(None);
        }
    }
}

impl Store {
    /// Creates DIR and DIR/recordings (0750), takes the directory lock, opens or creates the
    /// catalog (0640), repairs what an earlier crashed run left, and inserts this run's row.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        create_private_dir(dir)?;
        let lock = take_lock(&dir.join(LOCK_FILE))?;
        create_private_dir(&dir.join("recordings"))?;
        let catalog = dir.join(CATALOG_FILE);
        let db = open_catalog(&catalog)?;
        let sq = |source| StoreError::Sqlite {
            path: catalog.clone(),
            source,
        };

        let recovery = recover(dir, &catalog, &db, &opts.dispatch)?;
        // Evidence a crashed run was writing: its uncompressed part holds every chunk that
        // reached the disk, and is compressed now.
        evidence::recover(dir, &db)?;
        db.prepare_cached(
            "INSERT INTO runs (started_at, source, state) VALUES (?1, ?2, 'running')",
        )
        .and_then(|mut s| s.execute(params![wall_clock().to_string(), opts.source]))
        .map_err(sq)?;
        let run_id = db.last_insert_rowid();

        Ok(Store {
            dir: dir.to_owned(),
            catalog,
            db,
            _lock: lock,
            opts,
            run_id,
            events_in_tx: 0,
            batching: false,
            commit_due: false,
            calls: HashMap::new(),
            ended: VecDeque::new(),
            recs: HashMap::new(),
            failed: HashMap::new(),
            conversations: HashMap::new(),
            conv_order: VecDeque::new(),
            rec_rows: HashMap::new(),
            rec_order: VecDeque::new(),
            report: StoreReport::default(),
            recovery,
            reserve: Reserve::new(dir),
            finished: VecDeque::new(),
            evidence: evidence::EvidenceWriter::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `catalog.sqlite` inside DIR.
    pub fn catalog_path(&self) -> &Path {
        &self.catalog
    }

    /// This run's `runs.id`.
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// What `open` repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Consumes one engine event. Events naming unknown handles are counted in
    /// `StoreReport::orphan_events` and dropped.
    pub fn handle(&mut self, event: Event) -> Result<(), StoreError> {
        self.watch_disk();
        let commit_now = match event {
            Event::RecordingAudio { rec, samples } => return self.audio(rec, &samples),
            Event::RecordingSilence { rec, frames } => return self.silence(rec, frames),
            Event::CallStarted(c) => {
                self.begin()?;
                self.call_started(c)?;
                false
            }
            Event::CallAnswered { call, ts, to_tag } => {
                self.begin()?;
                self.call_answered(call, ts, &to_tag)?;
                false
            }
            Event::CallEnded {
                call,
                ts,
                reason,
                final_status,
            } => {
                self.begin()?;
                self.call_ended(call, ts, reason, final_status)?;
                true
            }
            Event::StreamEnded(r) => {
                self.begin()?;
                self.stream_ended(&r)?;
                false
            }
            Event::RecordingStarted(r) => {
                self.begin()?;
                self.recording_started(r)?;
                true
            }
            Event::RecordingStopped {
                rec,
                call: _,
                ts,
                frames: _,
                reason,
                outcome,
            } => {
                self.begin()?;
                self.recording_stopped(rec, ts, reason, &outcome)?;
                true
            }
            Event::Dtmf(d) => {
                self.begin()?;
                self.dtmf(&d)?;
                false
            }
            Event::RecordingControl(c) => {
                self.begin()?;
                self.recording_control(&c)?;
                true
            }
            Event::Decision(d) => {
                self.begin()?;
                self.decision(&d)?;
                false
            }
            Event::Conversation(l) => {
                self.begin()?;
                self.conversation(&l)?;
                false
            }
            Event::Transfer {
                call,
                ts,
                side,
                target,
                replaces,
                status,
            } => {
                self.begin()?;
                self.transfer(call, ts, side, &target, replaces.as_deref(), status)?;
                false
            }
            Event::Evidence(chunk) => {
                self.begin()?;
                self.evidence_chunk(&chunk)?;
                chunk.last
            }
            // For live capture's kernel filter and a live view; nothing to catalog.
            Event::MediaEndpoint { .. } | Event::Sip(_) | Event::CallProgress { .. } => {
                return Ok(());
            }
        };
        self.events_in_tx += 1;
        if (commit_now && !self.batching) || self.events_in_tx >= self.opts.commit_every.max(1) {
            self.commit()?;
        } else if commit_now {
            self.commit_due = true;
        }
        Ok(())
    }

    /// Starts a batch of events handed over together (the writer's): a call's end or a
    /// recording's stop then commits once, at [`Store::end_batch`], with the rest of the
    /// batch, instead of once each. A call that ends commits its recording's stop, its
    /// streams and its end together; calls ending together share a transaction. A
    /// recording's start still commits at once: its row is durable before its file exists.
    /// A kill inside a batch loses what the batch has not committed, as it would lose the
    /// batch not yet handed over; the catalog stays consistent.
    pub fn begin_batch(&mut self) {
        self.batching = true;
    }

    /// Ends the batch begun by [`Store::begin_batch`], committing if an event in it asked to.
    pub fn end_batch(&mut self) -> Result<(), StoreError> {
        self.batching = false;
        if self.commit_due {
            self.commit()?;
        }
        Ok(())
    }

    /// Finalises every open recording (stop reason `end-of-run`), marks calls of this run that
    /// never ended as `interrupted`, writes the run's counters and commits.
    pub fn finish(mut self, summary: &RunSummary) -> Result<StoreReport, StoreError> {
        self.begin()?;
        self.evidence
            .finish(&self.dir, &self.db)
            .map_err(self.sq())?;
        let mut open: Vec<_> = self.recs.drain().collect();
        open.sort_by_key(|(h, _)| *h);
        for (_, rec) in open {
            let secs = rec.file.frames() as f64 / f64::from(rec.sample_rate.max(1));
            let end = rec.start + Duration::from_secs_f64(secs);
            self.finalise(rec, end, "end-of-run", None)?;
        }
        let mut failed: Vec<_> = self.failed.drain().collect();
        failed.sort_by_key(|(h, _)| *h);
        for (_, f) in failed {
            self.failed_stopped(f, summary.ended_ts.unwrap_or_default(), "end-of-run")?;
        }
        let (run_id, db) = (self.run_id, &self.db);
        let sq = |source| StoreError::Sqlite {
            path: self.catalog.clone(),
            source,
        };
        db.prepare_cached(
            "UPDATE calls SET state = 'interrupted', end_reason = 'interrupted'
             WHERE run_id = ?1 AND state IN ('ringing', 'answered')",
        )
        .and_then(|mut s| s.execute(params![run_id]))
        .map_err(sq)?;
        db.prepare_cached(
            "UPDATE runs SET ended_at = ?2, capture_end_time = ?3, frames = ?4, sip_messages = ?5,
                rtp_packets = ?6, rtp_unmatched = ?7, malformed = ?8, ignored = ?9, calls_seen = ?10,
                calls_answered = ?11, rtp_streams = ?12, late_packets = ?13, concealed_s = ?14,
                undecodable_streams = ?15, encrypted_streams = ?16, recordings_cut = ?17,
                rtp_after_end = ?18, duplicate_packets = ?19, decrypt_failures = ?20,
                sip_too_large = ?21, evicted_for_memory = ?22, over_budget = ?23,
                buffered_peak_bytes = ?24, recordings_write_failed = ?25, evidence_frames = ?26,
                evidence_unclaimed = ?27, evidence_writes = ?28, evidence_write_failed = ?29,
                state = 'complete'
             WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                run_id,
                wall_clock().to_string(),
                summary.ended_ts.map(|t| t.to_string()),
                int(summary.frames),
                int(summary.sip_messages),
                int(summary.rtp_packets),
                int(summary.rtp_unmatched),
                int(summary.malformed),
                int(summary.ignored),
                int(summary.calls_seen),
                int(summary.calls_answered),
                int(summary.rtp_streams),
                int(summary.late_packets),
                summary.concealed_ms as f64 / 1000.0,
                int(summary.undecodable_streams),
                int(summary.encrypted_streams),
                int(summary.recordings_cut),
                int(summary.rtp_after_end),
                int(summary.duplicate_packets),
                int(summary.decrypt_failures),
                int(summary.sip_too_large),
                int(summary.evicted_for_memory),
                int(summary.over_budget),
                int(summary.buffered_peak_bytes),
                int(self.report.recordings_write_failed),
                int(summary.evidence_frames),
                int(summary.evidence_unclaimed),
                int(self.evidence.report.writes),
                int(self.evidence.report.write_failed),
            ])
        })
        .map_err(sq)?;
        self.commit()?;
        self.report.evidence = self.evidence.report.clone();
        // Folds the WAL into the main file so a copied catalog.sqlite is whole; a busy reader
        // only makes this partial, which is harmless.
        let _ = self
            .db
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(std::mem::take(&mut self.report))
    }

    fn sq(&self) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.catalog.clone(),
            source,
        }
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if self.db.is_autocommit() {
            // Cached like every other statement: `execute_batch` parses the SQL each time.
            self.db
                .prepare_cached("BEGIN IMMEDIATE")
                .and_then(|mut s| s.execute([]))
                .map_err(self.sq())?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if !self.db.is_autocommit() {
            self.db
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
                .map_err(self.sq())?;
        }
        self.events_in_tx = 0;
        self.commit_due = false;
        Ok(())
    }

    fn call_started(&mut self, c: CallStarted) -> Result<(), StoreError> {
        self.db
            .prepare_cached(
                "INSERT INTO calls (run_id, sip_call_id, from_tag, caller_user, caller_host, caller_name,
                    callee_user, callee_host, callee_name, caller_signalling, callee_signalling,
                    transport, start_time, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'ringing')",
            )
            .and_then(|mut s| {
                s.execute(params![
                    self.run_id,
                    c.sip_call_id,
                    c.from_tag,
                    c.caller.user,
                    c.caller.host,
                    c.caller.display_name,
                    c.callee.user,
                    c.callee.host,
                    c.callee.display_name,
                    c.caller_signalling.to_string(),
                    c.callee_signalling.to_string(),
                    c.transport.as_str(),
                    c.ts.to_string(),
                ])
            })
            .map_err(self.sq())?;
        let row = self.db.last_insert_rowid();
        if c.picked_up {
            self.db
                .prepare_cached(
                    "INSERT INTO events (call_id, time, kind, value) VALUES (?1, ?2, 'picked-up', ?3)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        row,
                        c.ts.to_string(),
                        "its INVITE was not seen: followed from its 2xx answer, without its \
                         ringing or the caller's offer",
                    ])
                })
                .map_err(self.sq())?;
        }
        self.report.calls += 1;
        self.calls.insert(
            c.call,
            CallState {
                row,
                sip_call_id: c.sip_call_id,
                start: c.ts,
                answered: None,
                open_rec: None,
                recordings: 0,
                ended: false,
                conversation: None,
            },
        );
        Ok(())
    }

    fn evidence_chunk(
        &mut self,
        chunk: &voxtap_core::evidence::EvidenceChunk,
    ) -> Result<(), StoreError> {
        let Some(state) = self.calls.get(&chunk.call) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        let (row, id) = (state.row, state.sip_call_id.clone());
        self.evidence
            .chunk(&self.dir, &self.db, row, &id, chunk)
            .map_err(|source| StoreError::Sqlite {
                path: self.catalog.clone(),
                source,
            })
    }

    /// What evidence cost so far (the live figures).
    pub fn evidence_report(&self) -> &EvidenceReport {
        &self.evidence.report
    }

    fn call_answered(
        &mut self,
        call: CallHandle,
        ts: Timestamp,
        to_tag: &str,
    ) -> Result<(), StoreError> {
        let Some(state) = self.calls.get_mut(&call) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        state.answered = Some(ts);
        let row = state.row;
        self.db
            .prepare_cached(
                "UPDATE calls SET to_tag = ?2, answer_time = ?3, state = 'answered' WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![row, to_tag, ts.to_string()]))
            .map_err(self.sq())?;
        Ok(())
    }

    fn call_ended(
        &mut self,
        call: CallHandle,
        ts: Timestamp,
        reason: EndReason,
        final_status: Option<u16>,
    ) -> Result<(), StoreError> {
        let Some(state) = self.calls.get_mut(&call) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        let duration = state.answered.map(|a| ts.saturating_since(a).as_secs_f64());
        let row = state.row;
        let newly_ended = !std::mem::replace(&mut state.ended, true);
        self.db
            .prepare_cached(
                "UPDATE calls SET end_time = ?2, duration_s = ?3, state = 'ended', end_reason = ?4,
                    final_status = ?5
                 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    row,
                    ts.to_string(),
                    duration,
                    reason.as_str(),
                    final_status
                ])
            })
            .map_err(self.sq())?;
        self.db
            .prepare_cached(
                "UPDATE conversations SET end_time = ?2
                 WHERE id = (SELECT conversation_id FROM calls WHERE id = ?1)
                   AND (end_time IS NULL OR end_time < ?2)",
            )
            .and_then(|mut s| s.execute(params![row, ts.to_string()]))
            .map_err(self.sq())?;
        if newly_ended {
            self.ended.push_back(call);
            while self.ended.len() > ENDED_CALLS_KEPT {
                if let Some(old) = self.ended.pop_front() {
                    self.calls.remove(&old);
                }
            }
        }
        Ok(())
    }

    fn stream_ended(&mut self, r: &StreamReport) -> Result<(), StoreError> {
        let Some(state) = self.calls.get(&r.call) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        let rate = f64::from(r.audio_rate.max(1));
        let secs = |samples: u64| samples as f64 / rate;
        let loss_pct = if r.expected > 0 {
            r.lost as f64 * 100.0 / r.expected as f64
        } else {
            0.0
        };
        self.db
            .prepare_cached(
                "INSERT INTO streams (call_id, side, src_addr, src_port, dst_addr, dst_port, ssrc,
                    payload_type, codec, clock_rate, first_time, last_time, packets, expected, lost,
                    loss_pct, max_jitter_ms, mean_jitter_ms, late, telephone_events, comfort_noise,
                    status, status_reason, fmtp, security, duplicates, decoded_packets, decoded_s,
                    concealed_s, recovered_s, undecodable_packets, decrypt_failures)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                    ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    state.row,
                    r.side.as_str(),
                    r.src.ip().to_string(),
                    r.src.port(),
                    r.dst.ip().to_string(),
                    r.dst.port(),
                    r.ssrc,
                    r.payload_type,
                    r.codec,
                    r.clock_rate,
                    r.first_ts.to_string(),
                    r.last_ts.to_string(),
                    int(r.packets),
                    int(r.expected),
                    r.lost,
                    loss_pct,
                    r.max_jitter_ms,
                    r.mean_jitter_ms,
                    int(r.late),
                    int(r.telephone_events),
                    int(r.comfort_noise),
                    r.status,
                    r.status_reason,
                    r.fmtp,
                    r.security,
                    int(r.duplicates),
                    int(r.decoded_packets),
                    secs(r.decoded_samples),
                    secs(r.concealed_samples),
                    secs(r.recovered_samples),
                    int(r.undecodable_packets),
                    int(r.decrypt_failures),
                ])
            })
            .map_err(self.sq())?;
        Ok(())
    }

    fn recording_started(&mut self, r: RecordingStarted) -> Result<(), StoreError> {
        let Some(call) = self.calls.get_mut(&r.call) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        call.recordings += 1;
        let (call_row, call_start, conversation) = (call.row, call.start, call.conversation);
        let sip_call_id = call.sip_call_id.clone();
        let mut n = call.recordings;

        let day = names::day_dir(call_start);
        // A directory the disk refuses fails this recording (below), not the run.
        let made = [
            day.parent().and_then(Path::parent),
            day.parent(),
            Some(day.as_path()),
        ]
        .into_iter()
        .flatten()
        .try_for_each(|d| create_private_dir(&self.dir.join(d)));
        // Never reuse a name, even if rows were deleted by hand and ids reused.
        let rel = loop {
            let rel = day.join(names::file_name(
                call_row,
                &sip_call_id,
                n,
                r.format.extension(),
            ));
            let abs = self.dir.join(&rel);
            if !abs.exists() && !audio::part_path(&abs).exists() {
                break rel;
            }
            n += 1;
        };
        let channels = if r.channels == 0 { 2 } else { r.channels };
        let rel_text = rel.to_string_lossy().into_owned();
        self.db
            .prepare_cached(
                "INSERT INTO recordings (call_id, path, format, channels, sample_rate, start_time,
                    state, reason, codec, conversation_id, repeats_recording_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'recording', ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    call_row,
                    rel_text,
                    r.format.as_str(),
                    channels,
                    r.sample_rate,
                    r.ts.to_string(),
                    r.reason,
                    r.codec,
                    conversation,
                    r.repeats.and_then(|h| self.rec_rows.get(&h).copied()),
                ])
            })
            .map_err(self.sq())?;
        let row = self.db.last_insert_rowid();
        self.rec_rows.insert(r.rec, row);
        self.rec_order.push_back(r.rec);
        while self.rec_order.len() > ENDED_CALLS_KEPT {
            if let Some(old) = self.rec_order.pop_front() {
                self.rec_rows.remove(&old);
            }
        }
        // The row is durable before the file exists, so recovery always finds the file.
        self.commit()?;

        let file = match made.and_then(|()| {
            audio::create(
                r.format,
                self.dir.join(&rel),
                channels,
                r.sample_rate,
                self.opts.wav_flush_secs,
            )
        }) {
            Ok(f) => f,
            Err(e) => {
                self.report.recordings += 1;
                let reason = format!("write-failed: {e}");
                self.db
                    .prepare_cached(
                        "UPDATE recordings SET state = 'missing', stop_reason = 'error',
                            state_reason = ?2, size_bytes = 0
                         WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![row, reason]))
                    .map_err(self.sq())?;
                self.report.recordings_write_failed += 1;
                self.failed.insert(
                    r.rec,
                    FailedRecording {
                        row,
                        sample_rate: r.sample_rate,
                        state: "missing",
                        reason,
                    },
                );
                return Ok(());
            }
        };
        self.report.recordings += 1;
        if let Some(call) = self.calls.get_mut(&r.call) {
            call.open_rec = Some(r.rec);
        }
        self.recs.insert(
            r.rec,
            OpenRecording {
                row,
                call: r.call,
                start: r.ts,
                sample_rate: r.sample_rate,
                min_secs: r.min_secs,
                rel,
                format: r.format,
                channels,
                file,
            },
        );
        Ok(())
    }

    fn audio(&mut self, rec: RecordingHandle, samples: &[i16]) -> Result<(), StoreError> {
        let written = match self.recs.get_mut(&rec) {
            Some(open) => open.file.write(samples),
            None if self.failed.contains_key(&rec) => {
                self.dropped_after_failure(rec, samples.len() as u64 / 2);
                return Ok(());
            }
            None => {
                self.report.orphan_events += 1;
                return Ok(());
            }
        };
        match written {
            Ok(()) => Ok(()),
            Err(e) => self.write_failed(rec, &e),
        }
    }

    /// A recording whose file the disk will not take: what reached the disk is kept and
    /// catalogued (`partial`, or `missing` if nothing did), the run goes on.
    fn write_failed(&mut self, rec: RecordingHandle, e: &StoreError) -> Result<(), StoreError> {
        let Some(open) = self.take_open(rec) else {
            return Ok(());
        };
        let lost = open.salvage(open.file.frames());
        // Dropping the writer lets go of what the disk refused.
        drop(open);
        let f = self.salvage(&lost, e)?;
        self.failed.insert(rec, f);
        Ok(())
    }

    /// The .part on disk is cut to its last whole frame and renamed, as after a crash, and
    /// the row says what reached the disk.
    fn salvage(&mut self, open: &Salvage, e: &StoreError) -> Result<FailedRecording, StoreError> {
        let at = open.frames as f64 / f64::from(open.sample_rate.max(1));
        let abs = self.dir.join(&open.rel);
        let part = audio::part_path(&abs);
        let saved = if part.exists() {
            audio::recover(open.format, &part, &abs, open.channels, open.sample_rate).ok()
        } else {
            None
        };
        let reason = format!("write-failed at {at:.1} s: {e}");
        let (state, frames, size) = match &saved {
            Some(done) if done.frames > 0 => ("partial", done.frames, done.size_bytes),
            Some(_) => {
                let _ = fs::remove_file(&abs);
                ("missing", 0, 0)
            }
            None => {
                let _ = fs::remove_file(&part);
                ("missing", 0, 0)
            }
        };
        let duration = frames as f64 / f64::from(open.sample_rate.max(1));
        self.begin()?;
        self.db
            .prepare_cached(
                "UPDATE recordings SET state = ?2, state_reason = ?3, duration_s = ?4,
                    size_bytes = ?5
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![open.row, state, reason, duration, int(size)]))
            .map_err(self.sq())?;
        self.commit()?;
        self.report.recordings_write_failed += 1;
        if state == "partial" {
            self.report.recordings_partial += 1;
            self.report.recordings_finalised.push(open.rel.clone());
        }
        Ok(FailedRecording {
            row: open.row,
            sample_rate: open.sample_rate,
            state,
            reason,
        })
    }

    /// Ends the row of a recording that failed earlier: its stop time and reason.
    /// The recordings finished since the last call, oldest first (at most [`FINISHED_KEPT`]).
    pub fn take_finished(&mut self) -> Vec<FinishedRecording> {
        self.finished.drain(..).collect()
    }

    fn note_finished(&mut self, mut done: FinishedRecording) {
        if self.finished.len() >= FINISHED_KEPT {
            self.finished.pop_front();
        }
        done.duration_s = done.duration_s.max(0.0);
        self.finished.push_back(done);
    }

    fn failed_stopped(
        &mut self,
        f: FailedRecording,
        end: Timestamp,
        stop_reason: &str,
    ) -> Result<(), StoreError> {
        self.db
            .prepare_cached(
                "UPDATE recordings SET end_time = ?2, stop_reason = ?3, state = ?4,
                    state_reason = ?5
                 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    f.row,
                    end.to_string(),
                    stop_reason,
                    f.state,
                    f.reason
                ])
            })
            .map_err(self.sq())?;
        if f.state == "partial" {
            enqueue_dispatch(&self.db, f.row, &self.opts.dispatch).map_err(self.sq())?;
        }
        Ok(())
    }

    fn dropped_after_failure(&mut self, rec: RecordingHandle, frames: u64) {
        if let Some(f) = self.failed.get(&rec) {
            self.report.ms_after_write_failure += frames * 1000 / u64::from(f.sample_rate.max(1));
        }
    }

    /// On a disk shared with the recordings: when less than a reserve is left free (or a
    /// recording is refused), the reserve goes and the recordings hold their bytes back, so
    /// the catalog keeps room; when there is room for both again, the reserve comes back and
    /// the recordings write what they held.
    fn watch_disk(&mut self) {
        let Some(r) = &mut self.reserve else {
            return;
        };
        let refused = audio::sink::refused_files() > 0;
        if r.countdown > 0 && !(refused && r.present) {
            r.countdown -= 1;
            return;
        }
        // A statfs every 16 events: an event holds at most a few KiB of audio.
        r.countdown = 16;
        let free = audio::sink::free_bytes(&self.dir).unwrap_or(u64::MAX);
        if r.present {
            if refused || free < r.size {
                r.give_up();
                self.report.reserve_released += 1;
            }
        } else if !audio::sink::holding_back() && !refused && free >= 2 * r.size {
            r.make();
        }
    }

    /// The disk as the open recordings see it.
    pub fn write_health(&self) -> WriteHealth {
        let pool = audio::sink::pool_stats();
        WriteHealth {
            refused: pool.refused_files as u64,
            held_bytes: pool.refused_bytes as u64,
            failed: self.report.recordings_write_failed,
        }
    }

    /// Writes `frames` of silence in bounded pieces: a gap of hours is never one allocation.
    fn silence(&mut self, rec: RecordingHandle, frames: u64) -> Result<(), StoreError> {
        static ZEROS: [i16; 8192] = [0; 8192];
        let Some(open) = self.recs.get_mut(&rec) else {
            if self.failed.contains_key(&rec) {
                self.dropped_after_failure(rec, frames);
            } else {
                self.report.orphan_events += 1;
            }
            return Ok(());
        };
        let mut samples = frames.saturating_mul(2);
        while samples > 0 {
            let n = samples.min(ZEROS.len() as u64) as usize;
            if let Err(e) = open.file.write(&ZEROS[..n]) {
                return self.write_failed(rec, &e);
            }
            samples -= n as u64;
        }
        Ok(())
    }

    fn recording_stopped(
        &mut self,
        rec: RecordingHandle,
        ts: Timestamp,
        reason: StopReason,
        outcome: &RecordingOutcome,
    ) -> Result<(), StoreError> {
        if let Some(f) = self.failed.remove(&rec) {
            return self.failed_stopped(f, ts, reason.as_str());
        }
        let Some(open) = self.take_open(rec) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        self.finalise(open, ts, reason.as_str(), Some(outcome))
    }

    /// Takes an open recording out, and off its call's DTMF attachment.
    fn take_open(&mut self, rec: RecordingHandle) -> Option<OpenRecording> {
        let open = self.recs.remove(&rec)?;
        if let Some(call) = self.calls.get_mut(&open.call)
            && call.open_rec == Some(rec)
        {
            call.open_rec = None;
        }
        Some(open)
    }

    /// Ends a recording's file and row. `outcome` says what the engine put in it (none at the
    /// end of a run that stopped before its calls): a recording without audio has its file
    /// removed and says why; one with some of its audio says what is missing.
    fn finalise(
        &mut self,
        open: OpenRecording,
        end: Timestamp,
        stop_reason: &str,
        outcome: Option<&RecordingOutcome>,
    ) -> Result<(), StoreError> {
        let lost = open.salvage(open.file.frames());
        let finished = |bytes: u64, state: &str, duration_s: f64| FinishedRecording {
            call: open.call,
            path: open.rel.clone(),
            format: open.format,
            bytes,
            state: state.to_string(),
            start: open.start,
            duration_s,
        };
        let done = match open.file.finish() {
            Ok(done) => done,
            Err(e) => {
                let f = self.salvage(&lost, &e)?;
                self.note_finished(finished(0, f.state, 0.0));
                return self.failed_stopped(f, end, stop_reason);
            }
        };
        let stop_reason = if done.truncated {
            "size-limit"
        } else {
            stop_reason
        };
        let duration = done.frames as f64 / f64::from(open.sample_rate.max(1));
        let rate = f64::from(open.sample_rate.max(1));
        let (state, reason) = match outcome {
            Some(o) => (o.state, o.reason.clone()),
            None => (RecordingState::Complete, None),
        };
        let delete = match (state, open.min_secs) {
            (RecordingState::NoAudio, _) => Some((state.as_str(), reason.clone())),
            (_, Some(min)) if duration < f64::from(min) => {
                Some(("deleted", Some("shorter-than-min".to_string())))
            }
            _ => None,
        };
        let figures = outcome.map(|o| {
            let [l, r] = o.channels;
            (
                l.heard_frames as f64 / rate,
                r.heard_frames as f64 / rate,
                (l.slip_frames + r.slip_frames) as f64 / rate,
                (l.shift_frames + r.shift_frames) as f64 / rate,
                int(l.reanchors + r.reanchors),
            )
        });
        let (caller_s, callee_s, slipped, shifted, reanchors) = match figures {
            Some((a, b, c, d, e)) => (Some(a), Some(b), Some(c), Some(d), Some(e)),
            None => (None, None, None, None, None),
        };
        if let Some((state, why)) = delete {
            let path = self.dir.join(&open.rel);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { path, source }),
            }
            // A recording shorter than its minimum keeps its old stop reason column value.
            let stop = if state == "deleted" {
                "shorter-than-min"
            } else {
                stop_reason
            };
            if state == RecordingState::NoAudio.as_str() {
                self.report.recordings_no_audio += 1;
            }
            self.db
                .prepare_cached(
                    "UPDATE recordings SET end_time = ?2, duration_s = ?3, size_bytes = 0,
                        state = ?4, stop_reason = ?5, state_reason = ?6, caller_audio_s = ?7,
                        callee_audio_s = ?8, slipped_s = ?9, shifted_s = ?10, reanchors = ?11
                     WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        open.row,
                        end.to_string(),
                        duration,
                        state,
                        stop,
                        why,
                        caller_s,
                        callee_s,
                        slipped,
                        shifted,
                        reanchors
                    ])
                })
                .map_err(self.sq())?;
            self.note_finished(finished(0, state, duration));
            return Ok(());
        }
        if state == RecordingState::Partial {
            self.report.recordings_partial += 1;
        }
        self.db
            .prepare_cached(
                "UPDATE recordings SET end_time = ?2, duration_s = ?3, size_bytes = ?4, state = ?5,
                    stop_reason = ?6, state_reason = ?7, caller_audio_s = ?8, callee_audio_s = ?9,
                    slipped_s = ?10, shifted_s = ?11, reanchors = ?12
                 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    open.row,
                    end.to_string(),
                    duration,
                    int(done.size_bytes),
                    state.as_str(),
                    stop_reason,
                    reason,
                    caller_s,
                    callee_s,
                    slipped,
                    shifted,
                    reanchors
                ])
            })
            .map_err(self.sq())?;
        enqueue_dispatch(&self.db, open.row, &self.opts.dispatch).map_err(self.sq())?;
        self.note_finished(finished(done.size_bytes, state.as_str(), duration));
        self.report.recordings_finalised.push(open.rel);
        Ok(())
    }

    fn dtmf(&mut self, d: &DtmfEvent) -> Result<(), StoreError> {
        let Some(call) = self.calls.get(&d.call) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        let rec = call.open_rec.and_then(|h| self.recs.get(&h)).map(|r| {
            let at = d
                .offset_s
                .unwrap_or_else(|| d.ts.saturating_since(r.start).as_secs_f64());
            (r.row, at)
        });
        self.db
            .prepare_cached(
                "INSERT INTO events (call_id, recording_id, time, offset_s, kind, value, duration_ms, source, side)
                 VALUES (?1, ?2, ?3, ?4, 'dtmf', ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    call.row,
                    rec.map(|r| r.0),
                    d.ts.to_string(),
                    rec.map(|r| r.1),
                    d.digit.to_string(),
                    d.duration_ms,
                    d.source.as_str(),
                    d.side.as_str(),
                ])
            })
            .map_err(self.sq())?;
        Ok(())
    }

    /// The policy's decision for a call and its trace, one line per step.
    fn decision(&mut self, d: &CallDecision) -> Result<(), StoreError> {
        let Some(call) = self.calls.get(&d.call) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        let covered = d.covered_by.and_then(|h| self.calls.get(&h)).map(|c| c.row);
        self.db
            .prepare_cached(
                "INSERT INTO decisions (call_id, time, record, reason, trace, direction, covered_by_call_id, tenant, users)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    call.row,
                    d.ts.to_string(),
                    d.record,
                    d.reason,
                    d.trace.join("\n"),
                    d.direction,
                    covered,
                    d.tenant,
                    (!d.users.is_empty()).then(|| d.users.join("\n")),
                ])
            })
            .map_err(self.sq())?;
        if d.direction.is_some() || d.tenant.is_some() {
            self.db
                .prepare_cached(
                    "UPDATE calls SET direction = coalesce(?2, direction), tenant = coalesce(?3, tenant)
                     WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![call.row, d.direction, d.tenant]))
                .map_err(self.sq())?;
        }
        Ok(())
    }

    /// A leg joined a conversation: a new `conversations` row or the earlier leg's, and a
    /// `conversation_links` row with the evidence. Shared media can join two conversations:
    /// the later one is folded into the earlier (`merged_into`), its legs moved.
    fn conversation(&mut self, l: &ConversationLink) -> Result<(), StoreError> {
        let Some(call) = self.calls.get(&l.call) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        let call_row = call.row;
        let linked_row = l.linked_to.and_then(|h| self.calls.get(&h)).map(|c| c.row);
        let conv_row = match self.conversations.get(&l.conversation) {
            Some(&row) => row,
            None => {
                self.db
                    .prepare_cached(
                        "INSERT INTO conversations (run_id, start_time, caller_user, callee_user, legs)
                         SELECT ?1, start_time, caller_user, callee_user, 0 FROM calls WHERE id = ?2",
                    )
                    .and_then(|mut s| s.execute(params![self.run_id, call_row]))
                    .map_err(self.sq())?;
                let row = self.db.last_insert_rowid();
                self.conversations.insert(l.conversation, row);
                self.conv_order.push_back(l.conversation);
                while self.conv_order.len() > CONVERSATIONS_KEPT {
                    if let Some(old) = self.conv_order.pop_front() {
                        self.conversations.remove(&old);
                    }
                }
                row
            }
        };
        let merged_row = l.merged.and_then(|m| self.conversations.remove(&m));
        if let Some(old) = merged_row.filter(|&m| m != conv_row) {
            for sql in [
                "UPDATE calls SET conversation_id = ?1 WHERE conversation_id = ?2",
                "UPDATE recordings SET conversation_id = ?1 WHERE conversation_id = ?2",
                "UPDATE conversation_links SET conversation_id = ?1 WHERE conversation_id = ?2",
                "UPDATE conversations SET merged_into = ?1, legs = 0 WHERE id = ?2",
            ] {
                self.db
                    .prepare_cached(sql)
                    .and_then(|mut s| s.execute(params![conv_row, old]))
                    .map_err(self.sq())?;
            }
            for c in self.calls.values_mut() {
                if c.conversation == Some(old) {
                    c.conversation = Some(conv_row);
                }
            }
        }
        self.db
            .prepare_cached("UPDATE calls SET conversation_id = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![call_row, conv_row]))
            .map_err(self.sq())?;
        self.db
            .prepare_cached("UPDATE recordings SET conversation_id = ?2 WHERE call_id = ?1")
            .and_then(|mut s| s.execute(params![call_row, conv_row]))
            .map_err(self.sq())?;
        // A leg moved from the conversation weak evidence had put it in: both are recounted.
        let before = self.calls.get(&l.call).and_then(|c| c.conversation);
        if let Some(c) = self.calls.get_mut(&l.call) {
            c.conversation = Some(conv_row);
        }
        for row in std::iter::once(conv_row).chain(before.filter(|&b| b != conv_row)) {
            self.db
                .prepare_cached(
                    // The legs are found from the row itself, not from the bound id: a
                    // subquery on `?1` made SQLite (built with STAT4) plan the statement
                    // again at every run, 88,000 instructions each.
                    "UPDATE conversations SET (legs, start_time) = (
                        SELECT count(*), coalesce(min(c.start_time), conversations.start_time)
                        FROM calls c WHERE c.conversation_id = conversations.id)
                     WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![row]))
                .map_err(self.sq())?;
        }
        if let Some([caller, callee]) = &l.people {
            self.db
                .prepare_cached(
                    "UPDATE conversations SET caller_user = ?2, callee_user = ?3 WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![conv_row, caller, callee]))
                .map_err(self.sq())?;
        }
        if l.linked_to.is_some() {
            self.db
                .prepare_cached(
                    "INSERT INTO conversation_links (conversation_id, call_id, linked_call_id, time, evidence, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        conv_row,
                        call_row,
                        linked_row,
                        l.ts.to_string(),
                        l.evidence,
                        l.detail
                    ])
                })
                .map_err(self.sq())?;
        }
        Ok(())
    }

    /// A REFER: an `events` row of kind `transfer` (accepted) or `transfer-failed` (refused),
    /// the target in `value` and `user`, `source` saying whether it was blind (`refer`) or
    /// attended (`refer-replaces`) and, when refused, the status (`refer-replaces/488`).
    fn transfer(
        &mut self,
        call: CallHandle,
        ts: Timestamp,
        side: Side,
        target: &str,
        replaces: Option<&str>,
        status: u16,
    ) -> Result<(), StoreError> {
        let Some(state) = self.calls.get(&call) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        let rec = state
            .open_rec
            .and_then(|h| self.recs.get(&h))
            .map(|r| (r.row, ts.saturating_since(r.start).as_secs_f64()));
        let how = if replaces.is_some() {
            "refer-replaces"
        } else {
            "refer"
        };
        let accepted = (200..300).contains(&status);
        let (kind, source) = if accepted {
            ("transfer", how.to_string())
        } else {
            ("transfer-failed", format!("{how}/{status}"))
        };
        self.db
            .prepare_cached(
                "INSERT INTO events (call_id, recording_id, time, offset_s, kind, value, source, side, user)
                 VALUES (?1, ?2, ?3, ?4, ?9, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    state.row,
                    rec.map(|r| r.0),
                    ts.to_string(),
                    rec.map(|r| r.1),
                    target,
                    source,
                    side.as_str(),
                    target,
                    kind,
                ])
            })
            .map_err(self.sq())?;
        Ok(())
    }

    /// A pause or resume, or an on-demand start or stop: an `events` row on the recording's
    /// timeline.
    fn recording_control(&mut self, c: &RecordingControl) -> Result<(), StoreError> {
        let (Some(call), Some(rec)) = (self.calls.get(&c.call), self.recs.get(&c.rec)) else {
            self.report.orphan_events += 1;
            return Ok(());
        };
        self.db
            .prepare_cached(
                "INSERT INTO events (call_id, recording_id, time, offset_s, kind, value, duration_ms, source, side, user, device)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, 'policy', ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    call.row,
                    rec.row,
                    c.ts.to_string(),
                    c.offset_s
                        .unwrap_or_else(|| c.ts.saturating_since(rec.start).as_secs_f64()),
                    match c.action {
                        Action::Start => "record-start",
                        Action::Stop => "record-stop",
                        a => a.as_str(),
                    },
                    c.reason,
                    c.requested_by.map(|s| s.as_str()),
                    c.requested_by_user,
                    c.requested_by_device,
                ])
            })
            .map_err(self.sq())?;
        Ok(())
    }

    /// Dies as `kill -9` would: the open transaction is lost, WAV headers are not rewritten and
    /// buffered audio is not written. Only the lock and the catalog connection are released, so
    /// the test can reopen the directory from the same process.
    #[cfg(test)]
    fn simulate_crash(self) {
        let Store {
            db, _lock, recs, ..
        } = self;
        let _ = db.execute_batch("ROLLBACK");
        for (_, rec) in recs {
            std::mem::forget(rec);
        }
        drop(db);
        drop(_lock);
    }
}

/// A pending `dispatch_jobs` row per target for a recording just made final, in the caller's
/// transaction, so a recording is never final without its jobs (docs/dispatch.md).
fn enqueue_dispatch(db: &Connection, rec: i64, targets: &[DispatchTarget]) -> rusqlite::Result<()> {
    for t in targets {
        db.prepare_cached(
            "INSERT OR IGNORE INTO dispatch_jobs (recording_id, call_id, target, kind, state,
                next_attempt_at, created_at)
             SELECT id, call_id, ?2, ?3, 'pending', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             FROM recordings WHERE id = ?1",
        )?
        .execute(params![rec, t.name, t.kind])?;
    }
    Ok(())
}

/// Catalog integers are signed 64-bit; counters beyond that saturate.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn wall_clock() -> Timestamp {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Timestamp::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// Creates `path` and its missing ancestors with mode 0750 whatever the umask; leaves existing
/// directories as they are.
/// Creates `path` (and missing parents) 0750; an existing `path` open to others (0777, say)
/// is tightened to at most 0750, or refused when it is not ours to change. Parents that
/// already exist are left as they are (`/tmp` is not ours to tighten).
fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    if let Ok(m) = fs::metadata(path)
        && m.is_dir()
    {
        return tighten_dir(path, &m);
    }
    make_private_dir(path)
}

/// Takes group write and every bit for others off a directory of recordings.
fn tighten_dir(path: &Path, m: &fs::Metadata) -> Result<(), StoreError> {
    let mode = m.permissions().mode() & 0o7777;
    let open = mode & 0o027;
    if open == 0 {
        return Ok(());
    }
    match fs::set_permissions(path, fs::Permissions::from_mode(mode & !0o027)) {
        Ok(()) => Ok(()),
        // Group write on a directory someone else owns (root:voxtap 0770) is their choice;
        // access for every user is not, for personal data.
        Err(_) if open & 0o007 == 0 => Ok(()),
        Err(e) => Err(StoreError::Dir {
            path: path.to_owned(),
            source: io::Error::new(
                e.kind(),
                format!(
                    "is mode {mode:04o}, open to every user, and cannot be tightened to 0750 ({e}): chmod o-rwx it or choose another directory"
                ),
            ),
        }),
    }
}

fn make_private_dir(path: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::Dir {
        path: path.to_owned(),
        source,
    };
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "exists and is not a directory",
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        make_private_dir(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE)).map_err(err),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Creates `path` with mode 0640 if it does not exist.
fn ensure_private_file(path: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(f) => {
            f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
            Ok(f)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            OpenOptions::new().read(true).write(true).open(path)
        }
        Err(e) => Err(e),
    }
}

/// One writer per directory: a second voxtap would otherwise "recover" the first one's
/// recordings. flock is released by the kernel when the process dies, however it dies.
fn take_lock(path: &Path) -> Result<File, StoreError> {
    let file = ensure_private_file(path).map_err(|source| StoreError::Lock {
        path: path.to_owned(),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: path.to_owned(),
        }),
        Err(fs::TryLockError::Error(source)) => Err(StoreError::Lock {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The catalog of an output directory voxtap wrote, for maintenance (retention, erasure) beside
/// a running voxtap or none: no writer lock is taken, the schema is brought up to date.
pub fn open_existing(dir: &Path) -> Result<Connection, StoreError> {
    let path = dir.join(CATALOG_FILE);
    match fs::metadata(&path) {
        Ok(m) if m.is_file() => open_catalog(&path),
        Ok(_) => Err(StoreError::CatalogIo {
            path,
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        }),
        Err(source) => Err(StoreError::CatalogIo { path, source }),
    }
}

fn open_catalog(path: &Path) -> Result<Connection, StoreError> {
    let sq = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    // SQLite would create the file 0644; -wal and -shm copy the main file's mode.
    ensure_private_file(path).map_err(|source| StoreError::CatalogIo {
        path: path.to_owned(),
        source,
    })?;
    let db = Connection::open(path).map_err(sq)?;
    db.busy_timeout(Duration::from_secs(5)).map_err(sq)?;
    db.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        .map_err(sq)?;
    db.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sq)?;
    db.pragma_update(None, "foreign_keys", "ON").map_err(sq)?;
    // The WAL is folded back every 256 pages (1 MiB) and cut back to 1 MiB after: what the
    // catalog needs on top of its own size stays within the reserve it keeps on a shared disk.
    db.pragma_update(None, "wal_autocheckpoint", 256)
        .map_err(sq)?;
    db.pragma_update(None, "journal_size_limit", 1 << 20)
        .map_err(sq)?;
    db.set_prepared_statement_cache_capacity(32);
    match schema::migrate(&db).map_err(sq)? {
        schema::Migration::Current => Ok(db),
        schema::Migration::TooNew(found) => Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }),
    }
}

/// Closes what earlier runs left open. Runs before this run's row exists, under the lock, so
/// everything still `running`, `ringing`, `answered` or `recording` belongs to a dead process.
fn recover(
    dir: &Path,
    catalog: &Path,
    db: &Connection,
    dispatch: &[DispatchTarget],
) -> Result<Recovery, StoreError> {
    let sq = |source| StoreError::Sqlite {
        path: catalog.to_owned(),
        source,
    };
    let mut out = Recovery::default();
    db.execute_batch("BEGIN IMMEDIATE").map_err(sq)?;
    out.runs_interrupted = db
        .execute(
            "UPDATE runs SET state = 'interrupted' WHERE state = 'running'",
            [],
        )
        .map_err(sq)? as u64;
    out.calls_interrupted = db
        .execute(
            "UPDATE calls SET state = 'interrupted', end_reason = 'interrupted'
             WHERE state IN ('ringing', 'answered')",
            [],
        )
        .map_err(sq)? as u64;

    let open: Vec<(i64, String, u16, u32, String)> = db
        .prepare("SELECT id, path, channels, sample_rate, format FROM recordings WHERE state = 'recording' ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?.collect())
        .map_err(sq)?;
    for (id, rel, channels, rate, format) in open {
        let abs = dir.join(&rel);
        let part = audio::part_path(&abs);
        // A kill during a file's first write leaves its hidden temporary name, never an
        // empty .part: what it holds never became the recording's.
        let tmp = audio::sink::tmp_path(&part);
        if tmp.exists() {
            let _ = fs::remove_file(&tmp);
        }
        let result = audio::format_named(&format, &part).and_then(|format| {
            if part.exists() {
                audio::recover(format, &part, &abs, channels, rate).map(Some)
            } else if abs.exists() {
                audio::inspect_final(format, &abs, rate).map(Some)
            } else {
                Ok(None)
            }
        });
        match result {
            Ok(Some(done)) => {
                let duration = done.frames as f64 / f64::from(rate.max(1));
                db.execute(
                    "UPDATE recordings SET state = 'recovered', stop_reason = 'interrupted',
                        duration_s = ?2, size_bytes = ?3,
                        end_time = strftime('%Y-%m-%dT%H:%M:%fZ', start_time, printf('%+.3f seconds', ?2))
                     WHERE id = ?1",
                    params![id, duration, int(done.size_bytes)],
                )
                .map_err(sq)?;
                enqueue_dispatch(db, id, dispatch).map_err(sq)?;
                out.recordings_recovered.push(PathBuf::from(rel));
            }
            Ok(None) => {
                db.execute(
                    "UPDATE recordings SET state = 'missing', stop_reason = 'interrupted' WHERE id = ?1",
                    params![id],
                )
                .map_err(sq)?;
                out.recordings_missing.push(PathBuf::from(rel));
            }
            Err(e) => out
                .recordings_failed
                .push((PathBuf::from(rel), e.to_string())),
        }
    }
    db.execute_batch("COMMIT").map_err(sq)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
