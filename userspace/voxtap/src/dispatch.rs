//! Dispatch of finished recordings (docs/dispatch.md): the `[[dispatch.*]]` config, the queue
//! worked at the end of `voxtap replay`, by a thread of `voxtap run`, by `voxtap dispatch`, and
//! what `voxtap explain` shows of it.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, params};
use serde::Deserialize;
use toml::Spanned;
use voxtap_dispatch::{
    Dispatcher, EmailTarget, HttpTarget, Method, Pass, Queue, Retry, ScriptTarget, Security,
    Target, template,
};

use crate::config::{Config, line_col};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchSection {
    http: Vec<HttpToml>,
    script: Vec<ScriptToml>,
    email: Vec<EmailToml>,
}

fn default_retries() -> u32 {
    Retry::default().retries
}
fn default_backoff() -> Spanned<f64> {
    Spanned::new(0..0, Retry::default().backoff.as_secs_f64())
}
fn default_max_backoff() -> Spanned<f64> {
    Spanned::new(0..0, Retry::default().max_backoff.as_secs_f64())
}
fn default_timeout() -> Spanned<f64> {
    Spanned::new(0..0, 30.0)
}
fn default_method() -> Spanned<String> {
    Spanned::new(0..0, "PUT".into())
}
fn one() -> Spanned<usize> {
    Spanned::new(0..0, 1)
}
fn two() -> Spanned<usize> {
    Spanned::new(0..0, 2)
}
fn yes() -> bool {
    true
}
fn default_security() -> Spanned<String> {
    Spanned::new(0..0, "starttls".into())
}
fn default_port() -> u16 {
    587
}
fn default_subject() -> Spanned<String> {
    Spanned::new(
        0..0,
        "voxtap recording of call {call_id}: {caller} to {callee}".into(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpToml {
    name: Spanned<String>,
    url: Spanned<String>,
    #[serde(default = "default_method")]
    method: Spanned<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    timeout_s: Spanned<f64>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    delete_after_upload: bool,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_backoff")]
    backoff_s: Spanned<f64>,
    #[serde(default = "default_max_backoff")]
    max_backoff_s: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptToml {
    name: Spanned<String>,
    command: Spanned<PathBuf>,
    #[serde(default = "default_timeout")]
    timeout_s: Spanned<f64>,
    #[serde(default = "two")]
    concurrency: Spanned<usize>,
    #[serde(default = "one")]
    batch: Spanned<usize>,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_backoff")]
    backoff_s: Spanned<f64>,
    #[serde(default = "default_max_backoff")]
    max_backoff_s: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailToml {
    name: Spanned<String>,
    server: Spanned<String>,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "default_security")]
    security: Spanned<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    from: Spanned<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    tenants: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    users: BTreeMap<String, Vec<String>>,
    #[serde(default = "yes")]
    attach: bool,
    #[serde(default)]
    link: Option<Spanned<String>>,
    #[serde(default = "default_subject")]
    subject: Spanned<String>,
    #[serde(default = "default_timeout")]
    timeout_s: Spanned<f64>,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_backoff")]
    backoff_s: Spanned<f64>,
    #[serde(default = "default_max_backoff")]
    max_backoff_s: Spanned<f64>,
}

fn at(text: &str, span: std::ops::Range<usize>) -> String {
    let (line, col) = line_col(text, span.start);
    format!("line {line}, column {col}")
}

fn seconds(text: &str, what: &str, v: &Spanned<f64>, max: f64) -> Result<Duration> {
    let s = *v.get_ref();
    if !(s > 0.0 && s <= max) {
        bail!(
            "{}: {what} must be above 0 and at most {max}, not {s}",
            at(text, v.span())
        );
    }
    Ok(Duration::from_secs_f64(s))
}

/// The retry keys every target has.
fn retry(
    text: &str,
    kind: &str,
    retries: u32,
    backoff_s: &Spanned<f64>,
    max_backoff_s: &Spanned<f64>,
) -> Result<Retry> {
    let backoff = seconds(
        text,
        &format!("dispatch.{kind}.backoff_s"),
        backoff_s,
        86_400.0,
    )?;
    let max_backoff = seconds(
        text,
        &format!("dispatch.{kind}.max_backoff_s"),
        max_backoff_s,
        7.0 * 86_400.0,
    )?;
    if max_backoff < backoff {
        bail!(
            "{}: dispatch.{kind}.max_backoff_s must not be below backoff_s",
            at(text, max_backoff_s.span())
        );
    }
    Ok(Retry {
        retries,
        backoff,
        max_backoff,
    })
}

impl DispatchSection {
    /// The targets, each checked; a bad value names its line.
    pub fn targets(&self, text: &str) -> Result<Vec<Target>> {
        // Names key the queue's jobs: the later of two alike is the one named.
        let mut all: Vec<&Spanned<String>> = (self.http.iter().map(|h| &h.name))
            .chain(self.script.iter().map(|s| &s.name))
            .chain(self.email.iter().map(|e| &e.name))
            .collect();
        all.sort_by_key(|n| n.span().start);
        let mut names = HashSet::new();
        for n in all {
            if !names.insert(n.get_ref().clone()) {
                bail!(
                    "{}: dispatch target name {:?} is used twice (names key the queue's jobs)",
                    at(text, n.span()),
                    n.get_ref()
                );
            }
        }
        let name = |n: &Spanned<String>, kind: &str| -> Result<String> {
            let v = n.get_ref();
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                bail!(
                    "{}: dispatch.{kind}.name must be letters, digits, '-', '_' or '.', not {v:?}",
                    at(text, n.span())
                );
            }
            Ok(v.clone())
        };
        let tmpl = |t: &Spanned<String>, what: &str| -> Result<()> {
            if let Some(e) = template::check(t.get_ref()) {
                bail!("{}: {what}: {e}", at(text, t.span()));
            }
            Ok(())
        };
        let mut out = Vec::new();
        for h in &self.http {
            let name = name(&h.name, "http")?;
            let url = h.url.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!(
                    "{}: dispatch.http.url must start with http:// or https://, not {url:?}",
                    at(text, h.url.span())
                );
            }
            tmpl(&h.url, "dispatch.http.url")?;
            let method = match h.method.get_ref().to_ascii_uppercase().as_str() {
                "PUT" => Method::Put,
                "POST" => Method::Post,
                m => bail!(
                    "{}: dispatch.http.method must be PUT or POST, not {m:?}",
                    at(text, h.method.span())
                ),
            };
            out.push(Target::Http(HttpTarget {
                name,
                url: url.clone(),
                method,
                headers: h.headers.clone().into_iter().collect(),
                timeout: seconds(text, "dispatch.http.timeout_s", &h.timeout_s, 86_400.0)?,
                ca_file: h.ca_file.clone(),
                delete_after_upload: h.delete_after_upload,
                retry: retry(text, "http", h.retries, &h.backoff_s, &h.max_backoff_s)?,
            }));
        }
        for s in &self.script {
            let name = name(&s.name, "script")?;
            if s.command.get_ref().as_os_str().is_empty() {
                bail!(
                    "{}: dispatch.script.command is empty",
                    at(text, s.command.span())
                );
            }
            for (what, v) in [("concurrency", &s.concurrency), ("batch", &s.batch)] {
                if !(1..=64).contains(v.get_ref()) {
                    bail!(
                        "{}: dispatch.script.{what} must be 1 to 64, not {}",
                        at(text, v.span()),
                        v.get_ref()
                    );
                }
            }
            out.push(Target::Script(ScriptTarget {
                name,
                command: s.command.get_ref().clone(),
                timeout: seconds(text, "dispatch.script.timeout_s", &s.timeout_s, 86_400.0)?,
                concurrency: *s.concurrency.get_ref(),
                batch: *s.batch.get_ref(),
                retry: retry(text, "script", s.retries, &s.backoff_s, &s.max_backoff_s)?,
            }));
        }
        for e in &self.email {
            let name = name(&e.name, "email")?;
            let security = match e.security.get_ref().as_str() {
                "starttls" => Security::StartTls,
                "tls" => Security::Tls,
                "none" => Security::None,
                s => bail!(
                    "{}: dispatch.email.security must be \"starttls\", \"tls\" or \"none\", not {s:?}",
                    at(text, e.security.span())
                ),
            };
            if e.server.get_ref().is_empty() {
                bail!(
                    "{}: dispatch.email.server is empty",
                    at(text, e.server.span())
                );
            }
            if !e.from.get_ref().contains('@') {
                bail!(
                    "{}: dispatch.email.from must be an address, not {:?}",
                    at(text, e.from.span()),
                    e.from.get_ref()
                );
            }
            if let Some(l) = &e.link {
                tmpl(l, "dispatch.email.link")?;
            }
            tmpl(&e.subject, "dispatch.email.subject")?;
            if !e.attach && e.link.is_none() {
                bail!(
                    "{}: dispatch.email needs attach = true or a link (or the mail says nothing of the recording)",
                    at(text, e.name.span())
                );
            }
            out.push(Target::Email(EmailTarget {
                name,
                server: e.server.get_ref().clone(),
                port: e.port,
                security,
                username: e.username.clone(),
                password_file: e.password_file.clone(),
                ca_file: e.ca_file.clone(),
                from: e.from.get_ref().clone(),
                to: e.to.clone(),
                tenants: e.tenants.clone(),
                users: e.users.clone(),
                attach: e.attach,
                link: e.link.as_ref().map(|l| l.get_ref().clone()),
                subject: e.subject.get_ref().clone(),
                timeout: seconds(text, "dispatch.email.timeout_s", &e.timeout_s, 86_400.0)?,
                retry: retry(text, "email", e.retries, &e.backoff_s, &e.max_backoff_s)?,
            }));
        }
        Ok(out)
    }
}

/// The store's view of the targets: their names and kinds.
pub fn store_targets(targets: &[Target]) -> Vec<voxtap_store::DispatchTarget> {
    targets
        .iter()
        .map(|t| voxtap_store::DispatchTarget {
            name: t.name().to_string(),
            kind: t.kind(),
        })
        .collect()
}

fn open(out: &Path, cfg: &Config) -> Result<Dispatcher> {
    let d = Dispatcher::open(out, cfg.dispatch_targets.clone())
        .with_context(|| format!("cannot start dispatch from {}", out.display()))?;
    if d.recovered().interrupted > 0 {
        eprintln!(
            "voxtap: dispatch: {} job(s) were interrupted mid-attempt by an earlier stop; they are tried again (what they sent may arrive twice)",
            d.recovered().interrupted
        );
    }
    Ok(d)
}

/// One line of the queue's state.
pub fn queue_line(q: &Queue) -> String {
    let mut s = format!(
        "{} done, {} failed (gave up), {} pending",
        q.done, q.failed, q.pending
    );
    if q.skipped > 0 {
        let _ = write!(s, ", {} skipped (no recipient)", q.skipped);
    }
    if q.unknown_target > 0 {
        let _ = write!(
            s,
            " ({} of them for targets this config does not name)",
            q.unknown_target
        );
    }
    if q.running > 0 {
        let _ = write!(s, ", {} running", q.running);
    }
    s
}

fn add(total: &mut Pass, p: &Pass) {
    total.attempts += p.attempts;
    total.ok += p.ok;
    total.retrying += p.retrying;
    total.gave_up += p.gave_up;
    total.skipped += p.skipped;
    total.files_removed += p.files_removed;
}

/// Works the queue until every job is settled or `wait` has passed; progress on stderr.
fn work(d: &mut Dispatcher, wait: Duration, who: &str) -> Result<(Pass, Queue)> {
    let deadline = Instant::now() + wait;
    let mut total = Pass::default();
    let mut last_line = Instant::now();
    loop {
        let p = d.run_due()?;
        add(&mut total, &p);
        let q = d.queue()?;
        if p.attempts > 0 && last_line.elapsed() >= Duration::from_millis(500) {
            last_line = Instant::now();
            eprintln!("voxtap {who}: dispatch: {}", queue_line(&q));
        }
        if q.settled() || Instant::now() >= deadline {
            return Ok((total, q));
        }
        let next = q.next_due.unwrap_or(Duration::from_millis(200));
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(
            next.clamp(Duration::from_millis(10), Duration::from_secs(1))
                .min(left),
        );
    }
}

/// The end of `voxtap replay`: the queue is worked for at most `wait`; what is left stays.
pub fn after_replay(out: &Path, cfg: &Config, wait: Duration) -> Result<Option<String>> {
    if cfg.dispatch_targets.is_empty() {
        return Ok(None);
    }
    let mut d = open(out, cfg)?;
    let (pass, q) = if wait.is_zero() {
        (Pass::default(), d.queue()?)
    } else {
        work(&mut d, wait, "replay")?
    };
    let mut line = format!(
        "{}; {} attempts this run ({} ok, {} to retry, {} gave up)",
        queue_line(&q),
        pass.attempts,
        pass.ok,
        pass.retrying,
        pass.gave_up
    );
    if pass.files_removed > 0 {
        let _ = write!(
            line,
            "; {} local files removed after upload",
            pass.files_removed
        );
    }
    if q.pending > 0 {
        let _ = write!(
            line,
            "; the pending stay in the catalog: `voxtap dispatch --out {}` sends them",
            out.display()
        );
    }
    Ok(Some(line))
}

/// `voxtap run`'s dispatcher: its own thread, a pass whenever a job is due, until `stop`.
pub struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    pub fn start(out: &Path, cfg: &Config) -> Result<Option<Background>> {
        if cfg.dispatch_targets.is_empty() {
            return Ok(None);
        }
        let mut d = open(out, cfg)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("voxtap-dispatch".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || {
                    let mut errors = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let wait = match d.run_due().and_then(|_| d.queue()) {
                            Ok(q) => q.next_due.unwrap_or(Duration::from_millis(500)),
                            Err(e) => {
                                // The queue is durable: an error (a busy catalog) is said and
                                // the pass is tried again.
                                errors += 1;
                                eprintln!(
                                    "voxtap run: dispatch: {e} (error {errors}; retrying in 5 s)"
                                );
                                Duration::from_secs(5)
                            }
                        };
                        // New recordings arrive at any time: look at least twice a second.
                        let until = Instant::now() + wait.min(Duration::from_millis(500));
                        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    match d.queue() {
                        Ok(q) => eprintln!("voxtap run: dispatch stopped: {}", queue_line(&q)),
                        Err(e) => eprintln!("voxtap run: dispatch stopped: {e}"),
                    }
                }
            })
            .context("cannot start the dispatch thread")?;
        Ok(Some(Background {
            stop,
            thread: Some(thread),
        }))
    }

    /// Ends the thread after its current attempt; what is left stays pending.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            eprintln!("voxtap run: the dispatch thread panicked");
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct DispatchArgs {
    /// The output directory voxtap wrote (holding catalog.sqlite).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// TOML configuration file with the [[dispatch.*]] targets.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Make jobs that gave up pending again first, with fresh retries.
    #[arg(long)]
    pub retry_failed: bool,
    /// Stop after this many seconds even if jobs are still waiting for a retry.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub wait: u64,
}

/// `voxtap dispatch`: works a queue left behind until nothing is left to try, or `--wait`.
pub fn command(args: &DispatchArgs) -> Result<()> {
    let cfg = Config::load_or_default(args.config.as_deref())?;
    if cfg.dispatch_targets.is_empty() {
        bail!(
            "no [[dispatch.http]], [[dispatch.script]] or [[dispatch.email]] in the config: nothing to send with"
        );
    }
    let mut d = open(&args.out, &cfg)?;
    if args.retry_failed {
        let n = d.retry_failed()?;
        eprintln!("voxtap dispatch: {n} job(s) that had given up are pending again");
    }
    let (pass, q) = work(&mut d, Duration::from_secs(args.wait), "dispatch")?;
    println!(
        "voxtap dispatch: {}: {}; {} attempts ({} ok, {} to retry, {} gave up, {} files removed after upload)",
        args.out.display(),
        queue_line(&q),
        pass.attempts,
        pass.ok,
        pass.retrying,
        pass.gave_up,
        pass.files_removed
    );
    Ok(())
}

/// `voxtap explain`: each dispatch job of the call and its attempts.
pub fn explain(db: &Connection, call: i64, out: &mut String) -> Result<()> {
    let has: bool = db.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'dispatch_jobs'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        return Ok(());
    }
    type JobRow = (
        i64,
        i64,
        String,
        String,
        String,
        i64,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let jobs: Vec<JobRow> = db
        .prepare(
            "SELECT id, recording_id, target, kind, state, attempts, next_attempt_at, done_at,
                destination, last_error
             FROM dispatch_jobs WHERE call_id = ?1 ORDER BY id",
        )?
        .query_map([call], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if jobs.is_empty() {
        return Ok(());
    }
    writeln!(out, "dispatch:")?;
    let removed: Vec<(i64, String)> = db
        .prepare(
            "SELECT id, removed_by FROM recordings WHERE call_id = ?1 AND removed_by IS NOT NULL",
        )?
        .query_map([call], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (rec, by) in removed {
        writeln!(
            out,
            "  recording {rec}: local file removed after its upload to {by} was acknowledged"
        )?;
    }
    for (id, rec, target, kind, state, attempts, next, done_at, dest, last_error) in jobs {
        let status = match state.as_str() {
            "done" => format!("done at {}", done_at.unwrap_or_default()),
            "skipped" => "skipped (nothing to send to)".to_string(),
            "failed" => format!(
                "failed: gave up after {attempts} attempts ({})",
                last_error.unwrap_or_default()
            ),
            "pending" if attempts > 0 => format!(
                "pending: next attempt at {next} ({})",
                last_error.unwrap_or_default()
            ),
            "pending" => format!("pending: first attempt due at {next}"),
            other => other.to_string(),
        };
        writeln!(
            out,
            "  job {id}  {kind} {target}  recording {rec}: {status}{}",
            dest.map(|d| format!(", to {d}")).unwrap_or_default()
        )?;
        let mut stmt = db.prepare(
            "SELECT started_at, ended_at, result, detail FROM dispatch_attempts
             WHERE job_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        for (i, row) in rows.enumerate() {
            let (started, _ended, result, detail) = row?;
            writeln!(
                out,
                "    attempt {} at {started}: {result}{}",
                i + 1,
                detail.map(|d| format!(" ({d})")).unwrap_or_default()
            )?;
        }
    }
    Ok(())
}
