//! Dispatch of finished recordings from the catalog's durable queue (docs/dispatch.md).
//!
//! The store writes a `dispatch_jobs` row per configured target in the transaction that makes
//! a recording final. A [`Dispatcher`] picks the jobs that are due, runs them (an HTTP upload,
//! a script, an email), writes each attempt and its result to `dispatch_attempts`, and
//! schedules a failed one again with exponential backoff until it has used its retries. A job
//! is marked `running` (and its attempt row written) before the attempt starts, so a crash
//! mid-attempt is seen at the next start: the attempt becomes `interrupted` and the job is
//! tried again (at least once, never lost).
//!
//! No thread of its own: the caller calls [`Dispatcher::run_due`] when it likes. Scripts run
//! a few at a time on scoped threads; HTTP and email one after the other.

mod email;
mod http;
mod script;
pub mod template;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

pub use email::{EmailTarget, Security};
pub use http::{HttpTarget, Method};
pub use script::ScriptTarget;

/// The lock one dispatcher holds on an output directory.
pub const LOCK_FILE: &str = "dispatch.lock";
/// Where journals for scripts and their output are written, inside DIR.
pub const WORK_DIR: &str = "dispatch";
/// Modes of what the dispatcher creates: journals hold personal data, as recordings do.
pub(crate) const FILE_MODE: u32 = 0o640;
pub(crate) const DIR_MODE: u32 = 0o750;

/// How often and how far apart a failed job is tried again.
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// Attempts after the first; then the job is `failed` (given up, kept, retried by
    /// `voxtap dispatch --retry-failed`).
    pub retries: u32,
    /// The wait after the first failure; doubled after each further one.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            retries: 5,
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(3600),
        }
    }
}

impl Retry {
    /// The wait before the next attempt, after `attempts` attempts that failed.
    pub fn delay(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// A configured target.
#[derive(Clone, Debug)]
pub enum Target {
    Http(HttpTarget),
    Script(ScriptTarget),
    Email(EmailTarget),
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Http(t) => &t.name,
            Target::Script(t) => &t.name,
            Target::Email(t) => &t.name,
        }
    }

    /// `dispatch_jobs.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Http(_) => "http",
            Target::Script(_) => "script",
            Target::Email(_) => "email",
        }
    }

    pub fn retry(&self) -> &Retry {
        match self {
            Target::Http(t) => &t.retry,
            Target::Script(t) => &t.retry,
            Target::Email(t) => &t.retry,
        }
    }
}

/// Every variant names what failed.
#[derive(thiserror::Error, Debug)]
pub enum DispatchError {
    #[error("catalog {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "catalog {}: it has no dispatch queue (schema version {found}; version 5 has one): run voxtap replay or run on it first",
        path.display()
    )]
    NoQueue { path: PathBuf, found: i32 },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lock {}: another voxtap is dispatching from this directory", path.display())]
    Locked { path: PathBuf },
    #[error("dispatch target {target}: {what}")]
    Target { target: String, what: String },
}

/// One job with what its attempt needs to know of the recording and the call.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: i64,
    pub recording_id: i64,
    pub call_id: i64,
    pub target: String,
    pub kind: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub sip_call_id: String,
    pub caller: String,
    pub callee: String,
    /// The recording's start time (RFC 3339 UTC).
    pub start: String,
    /// `recordings.path`, relative to DIR.
    pub path: String,
    pub format: String,
    /// `recordings.state`: `complete`, `partial` or `recovered`.
    pub state: String,
    pub duration_s: Option<f64>,
    pub size_bytes: Option<i64>,
    /// The tenant and users the rules found for the call (`calls.tenant`, `decisions.users`).
    pub tenant: Option<String>,
    pub users: Vec<String>,
}

impl Job {
    /// The recording's file name without its directories.
    pub fn file_name(&self) -> String {
        Path::new(&self.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The MIME type of the recording's format.
    pub fn content_type(&self) -> &'static str {
        match self.format.as_str() {
            "wav" => "audio/wav",
            "flac" => "audio/flac",
            "opus" => "audio/ogg",
            "mp3" => "audio/mpeg",
            _ => "application/octet-stream",
        }
    }
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub result: AttemptResult,
    /// HTTP status, exit status, SMTP reply, or the error, in one line.
    pub detail: String,
    /// The rendered URL, command or recipients.
    pub destination: String,
}

/// `dispatch_attempts.result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    Ok,
    Error,
    Timeout,
    /// Nothing to do (an email whose rules choose no recipient): the job is `skipped`.
    Skipped,
}

impl AttemptResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Ok => "ok",
            AttemptResult::Error => "error",
            AttemptResult::Timeout => "timeout",
            AttemptResult::Skipped => "skipped",
        }
    }
}

/// The queue's jobs by state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Queue {
    pub pending: u64,
    pub running: u64,
    pub done: u64,
    pub skipped: u64,
    /// Gave up after their retries.
    pub failed: u64,
    /// Pending jobs whose target is not in the configuration: kept, not tried.
    pub unknown_target: u64,
    /// Until the next pending job of a configured target is due (zero if one is now).
    pub next_due: Option<Duration>,
}

impl Queue {
    /// Nothing is left that this configuration will try.
    pub fn settled(&self) -> bool {
        self.pending == self.unknown_target && self.running == 0
    }
}

/// What one [`Dispatcher::run_due`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub attempts: u64,
    pub ok: u64,
    /// Attempts that failed (error or timeout) and will be tried again.
    pub retrying: u64,
    /// Jobs that failed their last try and were given up.
    pub gave_up: u64,
    pub skipped: u64,
    /// Recording files removed after an acknowledged upload.
    pub files_removed: u64,
}

/// What [`Dispatcher::open`] repaired: jobs a dead process left `running`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub interrupted: u64,
}

pub struct Dispatcher {
    dir: PathBuf,
    catalog: PathBuf,
    db: Connection,
    targets: Vec<Target>,
    http: BTreeMap<String, ureq::Agent>,
    _lock: File,
    recovered: Recovered,
}

/// Most jobs looked at in one pass; the rest wait for the next.
const PASS_LIMIT: i64 = 256;

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

impl Dispatcher {
    /// Opens DIR's catalog (which must hold the version-5 queue), takes DIR/dispatch.lock
    /// (one dispatcher per directory), builds the targets' clients (reading CA and password
    /// files) and returns jobs and attempts a dead dispatcher left `running` to the queue.
    pub fn open(dir: &Path, targets: Vec<Target>) -> Result<Dispatcher, DispatchError> {
        let catalog = dir.join("catalog.sqlite");
        let sq = |source| DispatchError::Sqlite {
            path: catalog.clone(),
            source,
        };
        if !catalog.exists() {
            return Err(DispatchError::Io {
                path: catalog.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no catalog"),
            });
        }
        let lock = take_lock(&dir.join(LOCK_FILE))?;
        let db = Connection::open(&catalog).map_err(sq)?;
        // The store commits a batch at a time; waiting out its transaction is normal.
        db.busy_timeout(Duration::from_secs(30)).map_err(sq)?;
        db.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .map_err(sq)?;
        db.pragma_update(None, "foreign_keys", "ON").map_err(sq)?;
        let found: i32 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sq)?;
        let has_queue: bool = db
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'dispatch_jobs'",
                [],
                |r| r.get(0),
            )
            .map_err(sq)?;
        if !has_queue {
            return Err(DispatchError::NoQueue {
                path: catalog,
                found,
            });
        }
        let mut http = BTreeMap::new();
        for t in &targets {
            if let Target::Http(h) = t {
                http.insert(h.name.clone(), h.agent()?);
            }
            if let Target::Email(e) = t {
                e.check()?;
            }
        }
        let mut d = Dispatcher {
            dir: dir.to_owned(),
            catalog,
            db,
            targets,
            http,
            _lock: lock,
            recovered: Recovered::default(),
        };
        d.recovered = d.recover()?;
        Ok(d)
    }

    /// What `open` repaired.
    pub fn recovered(&self) -> &Recovered {
        &self.recovered
    }

    fn sq(&self) -> impl FnOnce(rusqlite::Error) -> DispatchError + '_ {
        |source| DispatchError::Sqlite {
            path: self.catalog.clone(),
            source,
        }
    }

    /// Jobs left `running` belong to a dispatcher that died mid-attempt (the lock says no
    /// other is alive): the attempt is `interrupted` and the job due again. Whatever that
    /// attempt sent may have arrived: this is where at-least-once delivers twice.
    fn recover(&mut self) -> Result<Recovered, DispatchError> {
        let tx = self
            .db
            .transaction()
            .map_err(|source| DispatchError::Sqlite {
                path: self.catalog.clone(),
                source,
            })?;
        let run = || -> rusqlite::Result<u64> {
            tx.execute(
                &format!(
                    "UPDATE dispatch_attempts SET result = 'interrupted', ended_at = {NOW},
                        detail = 'the dispatcher stopped during the attempt (killed or crashed); it may have been delivered'
                     WHERE result = 'running'"
                ),
                [],
            )?;
            let n = tx.execute(
                &format!(
                    "UPDATE dispatch_jobs SET state = 'pending', next_attempt_at = {NOW},
                        last_error = 'interrupted'
                     WHERE state = 'running'"
                ),
                [],
            )?;
            Ok(n as u64)
        };
        let interrupted = run().and_then(|n| tx.commit().map(|()| n));
        interrupted
            .map(|interrupted| Recovered { interrupted })
            .map_err(|source| DispatchError::Sqlite {
                path: self.catalog.clone(),
                source,
            })
    }

    /// `failed` jobs (given up) are pending again, with a fresh count of retries.
    pub fn retry_failed(&mut self) -> Result<u64, DispatchError> {
        let n = self
            .db
            .execute(
                &format!(
                    "UPDATE dispatch_jobs SET state = 'pending', attempts = 0, next_attempt_at = {NOW}
                     WHERE state = 'failed'"
                ),
                [],
            )
            .map_err(self.sq())?;
        Ok(n as u64)
    }

    /// The queue's jobs by state, and when the next is due.
    pub fn queue(&self) -> Result<Queue, DispatchError> {
        let mut q = Queue::default();
        let mut stmt = self
            .db
            .prepare("SELECT state, target, count(*) FROM dispatch_jobs GROUP BY state, target")
            .map_err(self.sq())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.sq())?;
        for (state, target, n) in rows {
            let n = n as u64;
            match state.as_str() {
                "pending" => {
                    q.pending += n;
                    if self.target(&target).is_none() {
                        q.unknown_target += n;
                    }
                }
                "running" => q.running += n,
                "done" => q.done += n,
                "skipped" => q.skipped += n,
                _ => q.failed += n,
            }
        }
        let names: Vec<String> = self.targets.iter().map(|t| t.name().to_string()).collect();
        let mut next: Option<f64> = None;
        for name in names {
            let wait: Option<f64> = self
                .db
                .query_row(
                    "SELECT max(0.0, (julianday(min(next_attempt_at)) - julianday('now')) * 86400.0)
                     FROM dispatch_jobs WHERE state = 'pending' AND target = ?1",
                    [&name],
                    |r| r.get(0),
                )
                .map_err(self.sq())?;
            if let Some(w) = wait {
                next = Some(next.map_or(w, |n| n.min(w)));
            }
        }
        q.next_due = next.map(|s| Duration::from_secs_f64(s.max(0.0)));
        Ok(q)
    }

    fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name() == name)
    }

    /// Runs every job that is due now (at most a few hundred), and returns what it did.
    pub fn run_due(&mut self) -> Result<Pass, DispatchError> {
        let due = self.due_jobs()?;
        let mut pass = Pass::default();
        let mut scripts: BTreeMap<String, Vec<Job>> = BTreeMap::new();
        for job in due {
            let Some(target) = self.target(&job.target).cloned() else {
                continue;
            };
            match target {
                Target::Http(h) => {
                    let attempt = self.start_attempt(&job)?;
                    let agent = self.http.get(&h.name).expect("an agent per HTTP target");
                    let outcome = h.send(agent, &self.dir, &job);
                    self.end_attempt(&job, attempt, &outcome, &h.retry, &mut pass)?;
                }
                Target::Email(e) => {
                    let attempt = self.start_attempt(&job)?;
                    let outcome = e.send(&self.dir, &job);
                    self.end_attempt(&job, attempt, &outcome, &e.retry, &mut pass)?;
                }
                Target::Script(_) => scripts.entry(job.target.clone()).or_default().push(job),
            }
        }
        for (name, jobs) in scripts {
            let Some(Target::Script(s)) = self.target(&name).cloned() else {
                continue;
            };
            let batches: Vec<Vec<Job>> = jobs.chunks(s.batch.max(1)).map(<[Job]>::to_vec).collect();
            // A wave of `concurrency` runs at a time, each job marked running only when its
            // run starts: a kill interrupts no job that had not begun.
            for wave in batches.chunks(s.concurrency.max(1)) {
                let mut attempts = Vec::new();
                for batch in wave {
                    let ids = batch
                        .iter()
                        .map(|j| self.start_attempt(j))
                        .collect::<Result<Vec<i64>, _>>()?;
                    attempts.push(ids);
                }
                let outcomes = s.run_batches(&self.dir, wave);
                for ((batch, ids), outcome) in wave.iter().zip(attempts).zip(outcomes) {
                    for (job, id) in batch.iter().zip(ids) {
                        self.end_attempt(job, id, &outcome, &s.retry, &mut pass)?;
                    }
                }
            }
        }
        Ok(pass)
    }

    fn due_jobs(&self) -> Result<Vec<Job>, DispatchError> {
        let mut stmt = self
            .db
            .prepare_cached(&format!(
                "SELECT j.id, j.recording_id, j.call_id, j.target, j.kind, j.attempts,
                    c.sip_call_id, c.caller_user, c.callee_user, r.start_time, r.path, r.format,
                    r.state, r.duration_s, r.size_bytes,
                    (SELECT users FROM decisions d WHERE d.call_id = j.call_id ORDER BY d.id DESC LIMIT 1),
                    c.tenant
                 FROM dispatch_jobs j
                 JOIN recordings r ON r.id = j.recording_id
                 JOIN calls c ON c.id = j.call_id
                 WHERE j.state = 'pending' AND j.next_attempt_at <= {NOW}
                 ORDER BY j.next_attempt_at, j.id LIMIT {PASS_LIMIT}"
            ))
            .map_err(self.sq())?;
        stmt.query_map([], |r| {
            let users: Vec<String> = r
                .get::<_, Option<String>>(15)?
                .map(|u| u.lines().map(str::to_owned).collect())
                .unwrap_or_default();
            let tenant = r.get::<_, Option<String>>(16)?;
            Ok(Job {
                id: r.get(0)?,
                recording_id: r.get(1)?,
                call_id: r.get(2)?,
                target: r.get(3)?,
                kind: r.get(4)?,
                attempts: r.get(5)?,
                sip_call_id: r.get(6)?,
                caller: r.get(7)?,
                callee: r.get(8)?,
                start: r.get(9)?,
                path: r.get(10)?,
                format: r.get(11)?,
                state: r.get(12)?,
                duration_s: r.get(13)?,
                size_bytes: r.get(14)?,
                tenant,
                users,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.sq())
    }

    /// Marks the job `running` and writes its attempt row, committed before anything is sent.
    fn start_attempt(&self, job: &Job) -> Result<i64, DispatchError> {
        let tx = self.db.unchecked_transaction().map_err(self.sq())?;
        tx.execute(
            "UPDATE dispatch_jobs SET state = 'running', attempts = attempts + 1 WHERE id = ?1",
            [job.id],
        )
        .map_err(self.sq())?;
        tx.execute(
            &format!(
                "INSERT INTO dispatch_attempts (job_id, started_at, result) VALUES (?1, {NOW}, 'running')"
            ),
            [job.id],
        )
        .map_err(self.sq())?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(self.sq())?;
        Ok(id)
    }

    fn end_attempt(
        &self,
        job: &Job,
        attempt: i64,
        outcome: &Outcome,
        retry: &Retry,
        pass: &mut Pass,
    ) -> Result<(), DispatchError> {
        pass.attempts += 1;
        let attempts = job.attempts + 1;
        let tx = self.db.unchecked_transaction().map_err(self.sq())?;
        tx.execute(
            &format!(
                "UPDATE dispatch_attempts SET ended_at = {NOW}, result = ?2, detail = ?3 WHERE id = ?1"
            ),
            params![attempt, outcome.result.as_str(), outcome.detail],
        )
        .map_err(self.sq())?;
        match outcome.result {
            AttemptResult::Ok | AttemptResult::Skipped => {
                let state = if outcome.result == AttemptResult::Ok {
                    pass.ok += 1;
                    "done"
                } else {
                    pass.skipped += 1;
                    "skipped"
                };
                tx.execute(
                    &format!(
                        "UPDATE dispatch_jobs SET state = ?2, done_at = {NOW}, destination = ?3,
                            last_error = NULL
                         WHERE id = ?1"
                    ),
                    params![job.id, state, outcome.destination],
                )
                .map_err(self.sq())?;
            }
            AttemptResult::Error | AttemptResult::Timeout if attempts > retry.retries => {
                pass.gave_up += 1;
                tx.execute(
                    "UPDATE dispatch_jobs SET state = 'failed', destination = ?2, last_error = ?3
                     WHERE id = ?1",
                    params![job.id, outcome.destination, outcome.detail],
                )
                .map_err(self.sq())?;
            }
            AttemptResult::Error | AttemptResult::Timeout => {
                pass.retrying += 1;
                let wait = retry.delay(attempts).as_secs_f64();
                tx.execute(
                    "UPDATE dispatch_jobs SET state = 'pending', destination = ?2, last_error = ?3,
                        next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('+%.3f seconds', ?4))
                     WHERE id = ?1",
                    params![job.id, outcome.destination, outcome.detail, wait],
                )
                .map_err(self.sq())?;
            }
        }
        tx.commit().map_err(self.sq())?;
        if outcome.result == AttemptResult::Ok && self.remove_file_if_sent(job)? {
            pass.files_removed += 1;
        }
        Ok(())
    }

    /// After an acknowledged upload to a target with `delete_after_upload`, the local file is
    /// removed once every job of its recording is done (another target may still need it).
    fn remove_file_if_sent(&self, job: &Job) -> Result<bool, DispatchError> {
        let rows: Vec<(String, String)> = self
            .db
            .prepare_cached("SELECT target, state FROM dispatch_jobs WHERE recording_id = ?1")
            .and_then(|mut s| {
                s.query_map([job.recording_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(self.sq())?;
        if rows
            .iter()
            .any(|(_, state)| state != "done" && state != "skipped")
        {
            return Ok(false);
        }
        let Some(by) = rows.iter().find_map(|(target, state)| {
            (state == "done"
                && matches!(self.target(target), Some(Target::Http(h)) if h.delete_after_upload))
            .then_some(target)
        }) else {
            return Ok(false);
        };
        let already: Option<String> = self
            .db
            .query_row(
                "SELECT removed_by FROM recordings WHERE id = ?1",
                [job.recording_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sq())?
            .flatten();
        if already.is_some() {
            return Ok(false);
        }
        let path = self.dir.join(&job.path);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(DispatchError::Io { path, source }),
        }
        self.db
            .execute(
                "UPDATE recordings SET removed_by = ?2 WHERE id = ?1",
                params![job.recording_id, by],
            )
            .map_err(self.sq())?;
        Ok(true)
    }
}

fn take_lock(path: &Path) -> Result<File, DispatchError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|source| DispatchError::Io {
            path: path.to_owned(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DispatchError::Locked {
            path: path.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(DispatchError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The last `max` bytes of `text` on one line, for an attempt's detail.
pub(crate) fn tail(text: &str, max: usize) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.len() <= max {
        return one;
    }
    let mut start = one.len() - max;
    while !one.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &one[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_most() {
        let r = Retry {
            retries: 5,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
        };
        let d: Vec<u64> = (1..=5).map(|a| r.delay(a).as_secs()).collect();
        assert_eq!(d, [2, 4, 8, 10, 10]);
    }
}
