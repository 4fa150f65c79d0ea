//! A script hook (pascom's shape): `$1` the recording, `$2` a JSON journal of the call; with
//! `batch` above one, the pairs of several recordings follow each other (`$3 $4`, ...).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{AttemptResult, DIR_MODE, FILE_MODE, Job, Outcome, Retry, WORK_DIR, tail};

#[derive(Clone, Debug)]
pub struct ScriptTarget {
    pub name: String,
    /// The program, run without a shell.
    pub command: PathBuf,
    /// It is killed (with its process group) after this long; the attempt is `timeout`.
    pub timeout: Duration,
    /// Scripts of this target running at once.
    pub concurrency: usize,
    /// Recordings per run of the script.
    pub batch: usize,
    pub retry: Retry,
}

impl ScriptTarget {
    /// Runs each batch once, `concurrency` at a time; an outcome per batch, in order.
    pub(crate) fn run_batches(&self, dir: &Path, batches: &[Vec<Job>]) -> Vec<Outcome> {
        let next = Mutex::new(0usize);
        let results = Mutex::new(vec![None; batches.len()]);
        std::thread::scope(|s| {
            for _ in 0..self.concurrency.clamp(1, batches.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let i = {
                            let mut n = next.lock().expect("not poisoned");
                            let i = *n;
                            *n += 1;
                            i
                        };
                        let Some(batch) = batches.get(i) else { break };
                        let outcome = self.run(dir, batch);
                        results.lock().expect("not poisoned")[i] = Some(outcome);
                    }
                });
            }
        });
        results
            .into_inner()
            .expect("not poisoned")
            .into_iter()
            .map(|o| o.expect("every batch ran"))
            .collect()
    }

    fn run(&self, dir: &Path, batch: &[Job]) -> Outcome {
        let destination = format!(
            "{} ({} recording{})",
            self.command.display(),
            batch.len(),
            if batch.len() == 1 { "" } else { "s" }
        );
        let fail = |result, detail: String| Outcome {
            result,
            detail,
            destination: destination.clone(),
        };
        let work = dir.join(WORK_DIR);
        if let Err(e) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&work)
        {
            return fail(
                AttemptResult::Error,
                format!("cannot create {}: {e}", work.display()),
            );
        }
        let mut journals = Vec::new();
        let mut cmd = Command::new(&self.command);
        for job in batch {
            let journal = work.join(format!("journal-{}.json", job.id));
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(FILE_MODE)
                .open(&journal)
                .and_then(|mut f| f.write_all(journal_json(job).as_bytes()));
            if let Err(e) = written {
                return fail(
                    AttemptResult::Error,
                    format!("cannot write {}: {e}", journal.display()),
                );
            }
            cmd.arg(dir.join(&job.path)).arg(&journal);
            journals.push(journal);
        }
        let first = batch.first().map_or(0, |j| j.id);
        let out_path = work.join(format!("script-{first}.out"));
        let outcome = (|| {
            let out = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(FILE_MODE)
                .open(&out_path)
                .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
            let err = out
                .try_clone()
                .map_err(|e| format!("{}: {e}", out_path.display()))?;
            cmd.stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .current_dir(dir)
                .process_group(0);
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", self.command.display()))?;
            let started = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => return Ok((Some(status), started.elapsed())),
                    Ok(None) if started.elapsed() >= self.timeout => {
                        // SAFETY: kill(2) on the child's own process group.
                        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                        let _ = child.wait();
                        return Ok((None, started.elapsed()));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(e) => return Err(format!("waiting for {}: {e}", self.command.display())),
                }
            }
        })();
        let printed = std::fs::read_to_string(&out_path).unwrap_or_default();
        let _ = std::fs::remove_file(&out_path);
        for j in &journals {
            let _ = std::fs::remove_file(j);
        }
        match outcome {
            Err(e) => fail(AttemptResult::Error, e),
            Ok((None, took)) => fail(
                AttemptResult::Timeout,
                format!(
                    "killed after {:.1} s (timeout_s); it printed: {}",
                    took.as_secs_f64(),
                    tail(&printed, 200)
                ),
            ),
            Ok((Some(status), _)) if status.success() => fail(AttemptResult::Ok, "exit 0".into()),
            Ok((Some(status), _)) => fail(
                AttemptResult::Error,
                format!("{status}; it printed: {}", tail(&printed, 300)),
            ),
        }
    }
}

/// The journal a script gets as `$2`: the call and the recording, as the catalog has them.
pub fn journal_json(job: &Job) -> String {
    let v = serde_json::json!({
        "job_id": job.id,
        "target": job.target,
        "attempt": job.attempts + 1,
        "call": {
            "id": job.call_id,
            "sip_call_id": job.sip_call_id,
            "caller": job.caller,
            "callee": job.callee,
            "tenant": job.tenant,
            "users": job.users,
        },
        "recording": {
            "id": job.recording_id,
            "path": job.path,
            "file": job.file_name(),
            "format": job.format,
            "state": job.state,
            "start": job.start,
            "duration_s": job.duration_s,
            "size_bytes": job.size_bytes,
        },
    });
    let mut s = serde_json::to_string_pretty(&v).expect("a JSON value serialises");
    s.push('\n');
    s
}
