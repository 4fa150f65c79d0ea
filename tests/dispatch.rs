//! Dispatch end to end (docs/dispatch.md): generated calls through `voxtap replay` and
//! `voxtap run`, each dispatch kind against a real server started here: nginx taking PUTs,
//! aiosmtpd with STARTTLS and AUTH, a shell script. A server that fails twice then takes the
//! upload; one that never does; a dispatcher killed mid-queue: nothing lost, what was sent
//! twice is what the catalog calls interrupted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use voxtap_gen::{GenConfig, Scenario, generate, write_pcap};
use voxtap_tests::{Scratch, catalog, voxtap};

/// A free TCP port on the loopback (free when asked; the server binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < until,
            "{what} never listened on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn skipped(test: &str, why: &str) {
    eprintln!("SKIPPED: {test}: {why}");
}

fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
}

/// nginx on 127.0.0.1 taking PUTs under /rec/ into `root/www`, answering 503 until the file
/// `root/open` exists. Killed when dropped.
struct Nginx {
    child: Option<Child>,
    port: u16,
    root: PathBuf,
}

impl Nginx {
    fn prepare(test: &str, root: &Path) -> Option<Nginx> {
        Self::prepare_tls(test, root, None)
    }

    /// With `tls` (certificate, key) it speaks HTTPS.
    fn prepare_tls(test: &str, root: &Path, tls: Option<(&Path, &Path)>) -> Option<Nginx> {
        let Some(bin) = which("nginx") else {
            skipped(
                test,
                "nginx is not installed (cargo xtask test installs it)",
            );
            return None;
        };
        let _ = bin;
        std::fs::create_dir_all(root.join("www/rec")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        let port = free_port();
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let r = root.display();
        let (ssl, certs) = match tls {
            Some((c, k)) => (
                " ssl",
                format!(
                    "ssl_certificate {};\n        ssl_certificate_key {};",
                    c.display(),
                    k.display()
                ),
            ),
            None => ("", String::new()),
        };
        let conf = format!(
            "{user}
daemon off;
master_process off;
worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {r}/access.log;
    client_body_temp_path {r}/tmp/body;
    proxy_temp_path {r}/tmp/proxy;
    fastcgi_temp_path {r}/tmp/fastcgi;
    uwsgi_temp_path {r}/tmp/uwsgi;
    scgi_temp_path {r}/tmp/scgi;
    client_max_body_size 200m;
    server {{
        listen 127.0.0.1:{port}{ssl};
        {certs}
        root {r}/www;
        location /rec/ {{
            if (!-f {r}/open) {{ return 503; }}
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
"
        );
        std::fs::write(root.join("nginx.conf"), conf).unwrap();
        Some(Nginx {
            child: None,
            port,
            root: root.to_owned(),
        })
    }

    fn start(&mut self) {
        let bin = which("nginx").expect("nginx");
        let child = Command::new(bin)
            .arg("-p")
            .arg(&self.root)
            .arg("-e")
            .arg(self.root.join("error.log"))
            .arg("-c")
            .arg(self.root.join("nginx.conf"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx");
        self.child = Some(child);
        wait_for_port(self.port, "nginx");
    }

    /// From now on PUTs are stored (201).
    fn open(&self) {
        std::fs::write(self.root.join("open"), b"").unwrap();
    }

    fn stored(&self, rel: &str) -> PathBuf {
        self.root.join("www").join(rel)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A capture of `calls` answered calls, and where it is.
fn capture(s: &Scratch, calls: usize) -> PathBuf {
    let mut g = GenConfig::new(Scenario::Concurrent);
    g.calls = calls;
    g.talk_secs = 1.0;
    g.ramp_ms = Some(200.0);
    let (frames, truth) = generate(&g);
    assert_eq!(truth.calls.len(), calls);
    let pcap = s.path().join("calls.pcap");
    write_pcap(&pcap, &frames).unwrap();
    pcap
}

fn write(s: &Scratch, name: &str, text: &str) -> PathBuf {
    let p = s.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn replay_cmd(out: &Path, config: &Path, pcap: &Path, wait: u64) -> Command {
    let mut c = Command::new(voxtap());
    c.args([
        "replay",
        "--quiet",
        "--dispatch-wait",
        &wait.to_string(),
        "--config",
    ])
    .arg(config)
    .arg("--out")
    .arg(out)
    .arg(pcap);
    c
}

fn ok(o: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "{what} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        o.status
    );
    format!("{stdout}\n{stderr}")
}

fn dispatch_cmd(out: &Path, config: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(voxtap());
    c.args(["dispatch", "--out"])
        .arg(out)
        .arg("--config")
        .arg(config)
        .args(extra);
    c
}

fn explain(out: &Path, call: i64) -> String {
    let o = Command::new(voxtap())
        .args(["explain", "--out"])
        .arg(out)
        .arg(call.to_string())
        .output()
        .unwrap();
    ok(o, "voxtap explain")
}

#[derive(Debug)]
struct JobRow {
    id: i64,
    recording: i64,
    call: i64,
    target: String,
    state: String,
    attempts: i64,
    path: String,
    destination: Option<String>,
    /// (result, detail) of each attempt, in order.
    tries: Vec<(String, String)>,
}

fn jobs(out: &Path) -> Vec<JobRow> {
    let db = catalog(out);
    let mut rows: Vec<JobRow> = db
        .prepare(
            "SELECT j.id, j.recording_id, j.call_id, j.target, j.state, j.attempts, r.path, j.destination
             FROM dispatch_jobs j JOIN recordings r ON r.id = j.recording_id ORDER BY j.id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(JobRow {
                id: r.get(0)?,
                recording: r.get(1)?,
                call: r.get(2)?,
                target: r.get(3)?,
                state: r.get(4)?,
                attempts: r.get(5)?,
                path: r.get(6)?,
                destination: r.get(7)?,
                tries: Vec::new(),
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for j in &mut rows {
        j.tries = db
            .prepare("SELECT result, coalesce(detail, '') FROM dispatch_attempts WHERE job_id = ?1 ORDER BY id")
            .unwrap()
            .query_map([j.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    }
    rows
}

/// Error attempts of each job, read while another process writes the catalog.
fn errors_per_job(out: &Path) -> Vec<i64> {
    let Ok(db) = rusqlite::Connection::open_with_flags(
        out.join("catalog.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return Vec::new();
    };
    let _ = db.busy_timeout(Duration::from_secs(5));
    let Ok(mut s) = db.prepare(
        "SELECT (SELECT count(*) FROM dispatch_attempts a WHERE a.job_id = j.id AND a.result = 'error')
         FROM dispatch_jobs j ORDER BY j.id",
    ) else {
        return Vec::new();
    };
    s.query_map([], |r| r.get(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

fn recordings(out: &Path) -> Vec<(i64, String)> {
    catalog(out)
        .prepare("SELECT id, path FROM recordings WHERE state IN ('complete', 'partial', 'recovered') ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn http_target(port: u16, extra: &str) -> String {
    format!(
        "[[dispatch.http]]\nname = \"archive\"\nurl = \"http://127.0.0.1:{port}/rec/{{call_id}}/{{file}}\"\nmethod = \"PUT\"\nheaders = {{ X-Voxtap-Test = \"1\" }}\ntimeout_s = 10\n{extra}\n"
    )
}

/// Each job's upload: the bytes nginx stored are the local recording's.
fn check_uploads(out: &Path, nginx: &Nginx, jobs: &[JobRow], local: &BTreeMap<i64, Vec<u8>>) {
    for j in jobs.iter().filter(|j| j.target == "archive") {
        let file = Path::new(&j.path).file_name().unwrap().to_str().unwrap();
        let stored = std::fs::read(nginx.stored(&format!("rec/{}/{file}", j.call)))
            .unwrap_or_else(|e| panic!("job {}: nginx has no upload of {}: {e}", j.id, j.path));
        let mine = local
            .get(&j.recording)
            .cloned()
            .unwrap_or_else(|| std::fs::read(out.join(&j.path)).unwrap());
        assert!(mine.len() > 1000, "{}: a real recording", j.path);
        assert_eq!(
            stored, mine,
            "job {}: the uploaded bytes differ from {}",
            j.id, j.path
        );
        let dest = j.destination.as_deref().unwrap_or("");
        assert!(
            dest.starts_with("http")
                && dest.ends_with(&format!(
                    "://127.0.0.1:{}/rec/{}/{file}",
                    nginx.port, j.call
                )),
            "job {}: destination {dest}",
            j.id
        );
    }
}

#[test]
fn http_put_to_a_server_that_fails_twice_then_takes_it() {
    let test = "http_put_to_a_server_that_fails_twice_then_takes_it";
    let s = Scratch::new("dispatch-twice");
    let Some(mut nginx) = Nginx::prepare(test, &s.path().join("nginx")) else {
        return;
    };
    nginx.start();
    let pcap = capture(&s, 3);
    let config = write(
        &s,
        "voxtap.toml",
        &http_target(
            nginx.port,
            "retries = 6\nbackoff_s = 0.4\nmax_backoff_s = 0.4",
        ),
    );
    let out = s.path().join("out");
    let mut child = replay_cmd(&out, &config, &pcap, 60)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The server refuses (503) until every job has failed twice; then it stores the uploads.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let e = errors_per_job(&out);
        if e.len() == 3 && e.iter().all(|n| *n >= 2) {
            break;
        }
        assert!(Instant::now() < until, "jobs never failed twice: {e:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    nginx.open();
    let text = ok(child_output(&mut child), "voxtap replay");
    assert!(
        text.contains("dispatch        3 done, 0 failed (gave up), 0 pending"),
        "{text}"
    );

    let jobs = jobs(&out);
    assert_eq!(jobs.len(), 3, "a job per recording: {jobs:?}");
    assert_eq!(recordings(&out).len(), 3);
    for j in &jobs {
        assert_eq!(j.state, "done", "{j:?}");
        let (last, before) = j.tries.split_last().unwrap();
        assert_eq!(last.0, "ok", "{j:?}");
        assert!(last.1.starts_with("HTTP 201"), "{j:?}");
        assert!(before.len() >= 2, "{j:?}");
        for t in before {
            assert_eq!(t.0, "error", "{j:?}");
            assert!(t.1.starts_with("HTTP 503"), "{j:?}");
        }
        assert_eq!(j.attempts as usize, j.tries.len());
    }
    check_uploads(&out, &nginx, &jobs, &BTreeMap::new());
    // The header was sent: nginx's access log has three 201s.
    let log = std::fs::read_to_string(nginx.root.join("access.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("\" 201 ")).count(),
        3,
        "{log}"
    );

    let story = explain(&out, jobs[0].call);
    assert!(story.contains("dispatch:"), "{story}");
    assert!(
        story.contains(&format!("job {}  http archive", jobs[0].id)),
        "{story}"
    );
    assert!(
        story.contains("attempt 1 at ") && story.contains("error (HTTP 503"),
        "{story}"
    );
    assert!(story.contains(": ok (HTTP 201"), "{story}");
}

fn child_output(child: &mut Child) -> Output {
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(o) = child.stdout.take() {
        for l in BufReader::new(o).lines().map_while(Result::ok) {
            stdout.push_str(&l);
            stdout.push('\n');
        }
    }
    if let Some(e) = child.stderr.take() {
        for l in BufReader::new(e).lines().map_while(Result::ok) {
            stderr.push_str(&l);
            stderr.push('\n');
        }
    }
    let status = child.wait().unwrap();
    Output {
        status,
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
    }
}

#[test]
fn a_server_that_never_takes_it_leaves_failed_jobs_that_retry_failed_sends_later() {
    let test = "a_server_that_never_takes_it_leaves_failed_jobs_that_retry_failed_sends_later";
    let s = Scratch::new("dispatch-never");
    let Some(mut nginx) = Nginx::prepare(test, &s.path().join("nginx")) else {
        return;
    };
    nginx.start();
    let pcap = capture(&s, 3);
    let config = write(
        &s,
        "voxtap.toml",
        &http_target(
            nginx.port,
            "retries = 2\nbackoff_s = 0.1\nmax_backoff_s = 0.2\ndelete_after_upload = true",
        ),
    );
    let out = s.path().join("out");
    let text = ok(
        replay_cmd(&out, &config, &pcap, 30).output().unwrap(),
        "voxtap replay",
    );
    assert!(
        text.contains("dispatch        0 done, 3 failed (gave up), 0 pending"),
        "{text}"
    );
    let before = jobs(&out);
    for j in &before {
        assert_eq!(j.state, "failed", "{j:?}");
        assert_eq!(j.tries.len(), 3, "the first attempt and two retries: {j:?}");
        assert!(
            j.tries
                .iter()
                .all(|t| t.0 == "error" && t.1.starts_with("HTTP 503")),
            "{j:?}"
        );
        assert!(out.join(&j.path).exists(), "a failed upload keeps its file");
    }
    let story = explain(&out, before[0].call);
    assert!(
        story.contains("failed: gave up after 3 attempts (HTTP 503"),
        "{story}"
    );
    assert_eq!(story.matches(": error (HTTP 503").count(), 3, "{story}");

    // Without --retry-failed, given-up jobs stay given up.
    let text = ok(
        dispatch_cmd(&out, &config, &["--wait", "5"])
            .output()
            .unwrap(),
        "voxtap dispatch",
    );
    assert!(
        text.contains("0 done, 3 failed (gave up), 0 pending"),
        "{text}"
    );

    // The server works again: --retry-failed sends them, and the files go once acknowledged.
    nginx.open();
    let local: BTreeMap<i64, Vec<u8>> = before
        .iter()
        .map(|j| (j.recording, std::fs::read(out.join(&j.path)).unwrap()))
        .collect();
    let text = ok(
        dispatch_cmd(&out, &config, &["--retry-failed", "--wait", "30"])
            .output()
            .unwrap(),
        "voxtap dispatch --retry-failed",
    );
    assert!(
        text.contains("3 done, 0 failed (gave up), 0 pending"),
        "{text}"
    );
    assert!(text.contains("3 files removed after upload"), "{text}");
    let after = jobs(&out);
    for j in &after {
        assert_eq!(j.state, "done", "{j:?}");
        assert_eq!(j.tries.len(), 4, "{j:?}");
        assert_eq!(j.tries[3].0, "ok", "{j:?}");
        assert!(
            !out.join(&j.path).exists(),
            "{}: removed after the upload",
            j.path
        );
    }
    check_uploads(&out, &nginx, &after, &local);
    let removed: i64 = catalog(&out)
        .query_row(
            "SELECT count(*) FROM recordings WHERE removed_by = 'archive'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(removed, 3);
    let story = explain(&out, after[0].call);
    assert!(
        story.contains("local file removed after its upload to archive"),
        "{story}"
    );
}

/// A script that logs its arguments and keeps a copy of each journal; with `slow` present it
/// sleeps first (so it can be killed mid-attempt), writing its pid.
fn hook_script(s: &Scratch) -> PathBuf {
    let dir = s.path().join("hook");
    std::fs::create_dir_all(dir.join("journals")).unwrap();
    let d = dir.display();
    let script = format!(
        "#!/bin/sh
set -e
echo \"$# $*\" >> {d}/calls.log
while [ $# -ge 2 ]; do
  echo \"$1\" >> {d}/delivered
  cp \"$2\" {d}/journals/
  shift 2
done
if [ -f {d}/slow ]; then echo $$ >> {d}/pids; sleep 60; fi
"
    );
    let p = dir.join("hook.sh");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn a_script_hook_gets_each_recording_once_with_its_json_journal_in_batches() {
    let s = Scratch::new("dispatch-script");
    let pcap = capture(&s, 3);
    let hook = hook_script(&s);
    let config = write(
        &s,
        "voxtap.toml",
        &format!(
            "[[dispatch.script]]\nname = \"hook\"\ncommand = \"{}\"\ntimeout_s = 20\nconcurrency = 2\nbatch = 2\nbackoff_s = 0.2\n",
            hook.display()
        ),
    );
    let out = s.path().join("out");
    let text = ok(
        replay_cmd(&out, &config, &pcap, 30).output().unwrap(),
        "voxtap replay",
    );
    assert!(
        text.contains("dispatch        3 done, 0 failed (gave up), 0 pending"),
        "{text}"
    );
    let hookdir = s.path().join("hook");
    let calls = std::fs::read_to_string(hookdir.join("calls.log")).unwrap();
    // Three recordings in batches of two: one run with two pairs, one with one.
    let mut argc: Vec<&str> = calls
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    argc.sort();
    assert_eq!(argc, ["2", "4"], "{calls}");
    let delivered = std::fs::read_to_string(hookdir.join("delivered")).unwrap();
    let recs = recordings(&out);
    let mut got: Vec<&str> = delivered.lines().collect();
    got.sort();
    let mut want: Vec<String> = recs
        .iter()
        .map(|(_, p)| out.join(p).display().to_string())
        .collect();
    want.sort();
    assert_eq!(got, want, "each recording exactly once");
    let db = catalog(&out);
    for j in jobs(&out) {
        assert_eq!(j.state, "done");
        assert_eq!(j.tries, [("ok".to_string(), "exit 0".to_string())]);
        let journal =
            std::fs::read_to_string(hookdir.join(format!("journals/journal-{}.json", j.id)))
                .unwrap();
        let v: serde_json::Value = serde_json::from_str(&journal).unwrap();
        let (sip, caller, callee): (String, String, String) = db
            .query_row(
                "SELECT sip_call_id, caller_user, callee_user FROM calls WHERE id = ?1",
                [j.call],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(v["call"]["id"], j.call);
        assert_eq!(v["call"]["sip_call_id"], sip.as_str());
        assert_eq!(v["call"]["caller"], caller.as_str());
        assert_eq!(v["call"]["callee"], callee.as_str());
        assert_eq!(v["recording"]["id"], j.recording);
        assert_eq!(v["recording"]["path"], j.path.as_str());
        assert_eq!(v["recording"]["format"], "wav");
        assert_eq!(v["recording"]["state"], "complete");
        let size = std::fs::metadata(out.join(&j.path)).unwrap().len();
        assert_eq!(v["recording"]["size_bytes"], size);
        assert!(
            v["recording"]["duration_s"].as_f64().unwrap() > 0.5,
            "{journal}"
        );
    }
    // The journals were temporary: the script got copies, the dispatch dir keeps none.
    let left: Vec<_> = std::fs::read_dir(out.join("dispatch")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_dispatcher_killed_mid_queue_loses_nothing_and_says_what_may_have_gone_twice() {
    let test = "a_dispatcher_killed_mid_queue_loses_nothing_and_says_what_may_have_gone_twice";
    let s = Scratch::new("dispatch-restart");
    let Some(mut nginx) = Nginx::prepare(test, &s.path().join("nginx")) else {
        return;
    };
    let pcap = capture(&s, 3);
    let hook = hook_script(&s);
    let hookdir = s.path().join("hook");
    let config = write(
        &s,
        "voxtap.toml",
        &format!(
            "{}\n[[dispatch.script]]\nname = \"hook\"\ncommand = \"{}\"\ntimeout_s = 120\nconcurrency = 2\nbatch = 1\nretries = 10\nbackoff_s = 0.2\nmax_backoff_s = 0.5\n",
            http_target(
                nginx.port,
                "retries = 50\nbackoff_s = 0.2\nmax_backoff_s = 0.5"
            ),
            hook.display()
        ),
    );
    let out = s.path().join("out");
    // The replay leaves the whole queue: 3 recordings x 2 targets.
    let text = ok(
        replay_cmd(&out, &config, &pcap, 0).output().unwrap(),
        "voxtap replay",
    );
    assert!(
        text.contains("0 done, 0 failed (gave up), 6 pending"),
        "{text}"
    );
    assert!(text.contains("voxtap dispatch --out"), "{text}");
    assert!(
        jobs(&out)
            .iter()
            .all(|j| j.state == "pending" && j.tries.is_empty())
    );

    // A dispatcher with the web server down and a slow script, killed mid-attempt.
    std::fs::write(hookdir.join("slow"), b"").unwrap();
    let mut first = dispatch_cmd(&out, &config, &["--wait", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let running: i64 = rusqlite::Connection::open_with_flags(
            out.join("catalog.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|db| {
            db.query_row(
                "SELECT count(*) FROM dispatch_attempts a JOIN dispatch_jobs j ON j.id = a.job_id
                 WHERE a.result = 'running' AND j.kind = 'script'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0);
        let pids = std::fs::read_to_string(hookdir.join("pids")).unwrap_or_default();
        if running >= 1 && !pids.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "the script never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    first.wait().unwrap();
    // Its scripts are in their own process groups; end them too.
    for pid in std::fs::read_to_string(hookdir.join("pids"))
        .unwrap()
        .lines()
    {
        unsafe { libc::kill(pid.trim().parse::<i32>().unwrap(), libc::SIGKILL) };
    }
    let killed = jobs(&out);
    let stuck: Vec<i64> = killed
        .iter()
        .filter(|j| j.state == "running")
        .map(|j| j.id)
        .collect();
    assert!(!stuck.is_empty(), "the kill left a job running: {killed:?}");
    for j in killed.iter().filter(|j| j.target == "archive") {
        assert!(
            j.tries.iter().all(|t| t.0 == "error"),
            "nginx is down: uploads fail: {j:?}"
        );
    }

    // Start again with the server up and a fast script: everything goes, once, except the
    // interrupted attempts, which the catalog names.
    std::fs::remove_file(hookdir.join("slow")).unwrap();
    nginx.open();
    nginx.start();
    let text = ok(
        dispatch_cmd(&out, &config, &["--wait", "60"])
            .output()
            .unwrap(),
        "voxtap dispatch",
    );
    assert!(
        text.contains("6 done, 0 failed (gave up), 0 pending"),
        "{text}"
    );
    assert!(text.contains("interrupted mid-attempt"), "{text}");
    let after = jobs(&out);
    let mut interrupted = 0;
    for j in &after {
        assert_eq!(j.state, "done", "{j:?}");
        assert_eq!(j.tries.iter().filter(|t| t.0 == "ok").count(), 1, "{j:?}");
        assert_eq!(j.tries.last().unwrap().0, "ok", "{j:?}");
        let i = j.tries.iter().filter(|t| t.0 == "interrupted").count();
        assert_eq!(i, usize::from(stuck.contains(&j.id)), "{j:?}");
        interrupted += i;
    }
    check_uploads(&out, &nginx, &after, &BTreeMap::new());
    // At least once: each recording reached the script once, plus once per interrupted attempt.
    let delivered = std::fs::read_to_string(hookdir.join("delivered")).unwrap();
    assert_eq!(delivered.lines().count(), 3 + interrupted, "{delivered}");
    for (_, p) in recordings(&out) {
        let n = delivered.lines().filter(|l| l.ends_with(&p)).count();
        assert!(n >= 1, "{p} never reached the script");
    }
    let j = after.iter().find(|j| stuck.contains(&j.id)).unwrap();
    let story = explain(&out, j.call);
    assert!(
        story.contains(": interrupted (the dispatcher stopped during the attempt"),
        "{story}"
    );
    // The catalog names each upload exactly once in nginx's log: no upload went twice.
    let log = std::fs::read_to_string(nginx.root.join("access.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("\" 201 ")).count(),
        3,
        "{log}"
    );
}

/// A python that has aiosmtpd (Debian's python3-aiosmtpd is for /usr/bin/python3).
fn python_with_aiosmtpd() -> Option<PathBuf> {
    ["/usr/bin/python3", "python3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .args(["-c", "import aiosmtpd"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

struct Smtp {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp(test: &str, s: &Scratch, tempfail: u32) -> Option<(Smtp, PathBuf)> {
    let Some(python) = python_with_aiosmtpd() else {
        skipped(test, "no python3 with aiosmtpd (Debian: python3-aiosmtpd)");
        return None;
    };
    let dir = s.path().join("smtp");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = make_cert(test, &dir)?;
    let port = free_port();
    let mut child = Command::new(python)
        .arg(voxtap_tests::root().join("tests/smtp_sink.py"))
        .arg(port.to_string())
        .arg(dir.join("mail"))
        .arg(&cert)
        .arg(&key)
        .args(["voxtap", "s3cret pass", &tempfail.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the SMTP server did not start");
    wait_for_port(port, "aiosmtpd");
    Some((
        Smtp {
            child,
            port,
            dir: dir.join("mail"),
        },
        cert,
    ))
}

/// A self-signed certificate for 127.0.0.1 (an end-entity one: rustls refuses a CA as a
/// server's certificate) and its key, made by openssl in `dir`.
fn make_cert(test: &str, dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));

    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match o {
        Ok(o) if o.status.success() => {}
        other => {
            skipped(
                test,
                &format!("openssl could not make a certificate: {other:?}"),
            );
            return None;
        }
    }
    Some((cert, key))
}

/// The generated callees (20000...) are agents of tenant "gen"; the callers are outside.
const RULES: &str = r#"
[rules.networks]
onnet = ["10.2.0.0/16"]

[[rules.tenants]]
name = "gen"

[rules.tenants.settings]
inbound = { offnet = true }

[[rules.tenants.users]]
name = "agent0"
extensions = ["20000"]

[[rules.tenants.users]]
name = "agent1"
extensions = ["20001"]
"#;

#[test]
fn email_over_starttls_with_auth_reaches_the_tenant_and_user_addresses_with_the_recording() {
    let test =
        "email_over_starttls_with_auth_reaches_the_tenant_and_user_addresses_with_the_recording";
    let s = Scratch::new("dispatch-email");
    // The server answers the first two messages 451 (try later): they are retried.
    let Some((smtp, cert)) = start_smtp(test, &s, 2) else {
        return;
    };
    let pcap = capture(&s, 2);
    let password = write(&s, "smtp.pass", "s3cret pass\n");
    let config = write(
        &s,
        "voxtap.toml",
        &format!(
            "{RULES}
[[dispatch.email]]
name = \"mail\"
server = \"127.0.0.1\"
port = {}
security = \"starttls\"
ca_file = \"{}\"
username = \"voxtap\"
password_file = \"{}\"
from = \"voxtap@example.org\"
to = [\"archive@example.org\"]
tenants = {{ gen = [\"boss@gen.example\"] }}
users = {{ agent0 = [\"agent0@gen.example\"], agent1 = [\"agent1@gen.example\"] }}
link = \"https://archive.example.org/{{call_id}}/{{file}}\"
subject = \"call {{call_id}} from {{caller}} to {{callee}}\"
retries = 5
backoff_s = 0.2
timeout_s = 10
",
            smtp.port,
            cert.display(),
            password.display()
        ),
    );
    let out = s.path().join("out");
    let text = ok(
        replay_cmd(&out, &config, &pcap, 30).output().unwrap(),
        "voxtap replay",
    );
    assert!(
        text.contains("dispatch        2 done, 0 failed (gave up), 0 pending"),
        "{text}"
    );
    let jobs = jobs(&out);
    assert_eq!(jobs.len(), 2);
    let db = catalog(&out);
    let mut tempfails = 0;
    let mut seen = Vec::new();
    for j in &jobs {
        assert_eq!(j.state, "done", "{j:?}");
        let (last, before) = j.tries.split_last().unwrap();
        assert!(last.0 == "ok" && last.1.starts_with("SMTP 250"), "{j:?}");
        for t in before {
            assert!(t.0 == "error" && t.1.contains("451"), "{j:?}");
        }
        tempfails += before.len();
        let reply = last
            .1
            .split("accepted as ")
            .nth(1)
            .expect("the server names the message");
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(smtp.dir.join(format!("{}.json", reply.trim()))).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["tls"], true, "STARTTLS was used: {meta}");
        assert_eq!(meta["authenticated"], true, "{meta}");
        assert_eq!(meta["mail_from"], "voxtap@example.org");
        let callee: String = db
            .query_row(
                "SELECT callee_user FROM calls WHERE id = ?1",
                [j.call],
                |r| r.get(0),
            )
            .unwrap();
        let agent = match callee.as_str() {
            "20000" => "agent0",
            "20001" => "agent1",
            other => panic!("unexpected callee {other}"),
        };
        let mut to: Vec<String> = meta["rcpt_tos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        to.sort();
        let mut want = vec![
            "archive@example.org".to_string(),
            format!("{agent}@gen.example"),
            "boss@gen.example".to_string(),
        ];
        want.sort();
        assert_eq!(to, want, "every-call, tenant and user addresses: {meta}");
        let file = Path::new(&j.path)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(meta["attachments"], serde_json::json!([file]));
        let att = std::fs::read(smtp.dir.join(format!("{}.att-{file}", reply.trim()))).unwrap();
        assert_eq!(
            att,
            std::fs::read(out.join(&j.path)).unwrap(),
            "the attachment is the recording"
        );
        let text = meta["text"].as_str().unwrap();
        assert!(
            text.contains(&format!(
                "Listen: https://archive.example.org/{}/{file}",
                j.call
            )),
            "{text}"
        );
        assert!(text.contains("Tenant: gen"), "{text}");
        assert!(
            meta["subject"]
                .as_str()
                .unwrap()
                .starts_with(&format!("call {} from ", j.call))
        );
        seen.push(reply.trim().to_string());
    }
    assert_eq!(tempfails, 2, "the two 451s were retried: {jobs:?}");
    seen.sort();
    assert_eq!(seen, ["msg-1", "msg-2"], "each recording mailed once");
}

#[test]
fn bad_dispatch_config_names_its_line() {
    let s = Scratch::new("dispatch-badconfig");
    let pcap = capture(&s, 1);
    for (text, needle) in [
        (
            "[[dispatch.http]]\nname = \"a\"\nurl = \"ftp://x/{file}\"\n",
            "line 3",
        ),
        (
            "[[dispatch.http]]\nname = \"a\"\nurl = \"http://x/{callid}\"\n",
            "{callid} is not a field",
        ),
        (
            "[[dispatch.http]]\nname = \"a\"\nurl = \"http://x/\"\nmethod = \"GET\"\n",
            "line 4",
        ),
        (
            "[[dispatch.script]]\nname = \"a\"\ncommand = \"/bin/true\"\n[[dispatch.http]]\nname = \"a\"\nurl = \"http://x/\"\n",
            "line 5",
        ),
        (
            "[[dispatch.email]]\nname = \"m\"\nserver = \"h\"\nfrom = \"a@b\"\nsecurity = \"ssl\"\n",
            "line 5",
        ),
        (
            "[[dispatch.script]]\nname = \"a\"\ncommand = \"/bin/true\"\nbatch = 0\n",
            "line 4",
        ),
        (
            "[[dispatch.http]]\nname = \"a\"\nurl = \"http://x/\"\nretry = 3\n",
            "line 4",
        ),
    ] {
        let config = write(&s, "bad.toml", text);
        let out = s.path().join("out");
        let o = replay_cmd(&out, &config, &pcap, 0).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{text} was accepted");
        assert!(err.contains(needle), "{text}: {err}");
        assert!(!out.exists(), "a bad config writes nothing");
    }
}

#[test]
fn voxtap_run_uploads_each_recording_while_it_runs() {
    let test = "voxtap_run_uploads_each_recording_while_it_runs";
    let Some(net) = voxtap_capture::testnet::TestNet::new_or_skip("vtd", test) else {
        return;
    };
    let s = Scratch::new("dispatch-run");
    let Some(mut nginx) = Nginx::prepare(test, &s.path().join("nginx")) else {
        return;
    };
    nginx.open();
    nginx.start();
    let mut g = GenConfig::new(Scenario::Concurrent);
    g.calls = 3;
    g.talk_secs = 1.0;
    g.ramp_ms = Some(200.0);
    let (frames, _) = generate(&g);
    let config = write(
        &s,
        "voxtap.toml",
        &format!(
            "[capture]\nstats_interval_s = 1\n[evidence]\nenabled = true\n{}",
            http_target(nginx.port, "backoff_s = 0.2")
        ),
    );
    let out = s.path().join("out");
    let mut child = Command::new(voxtap())
        .args([
            "run",
            "--iface",
            net.host_if(),
            "--capture",
            "afpacket",
            "--config",
        ])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = Vec::new();
    loop {
        let l = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("voxtap run never got ready: {seen:?}"));
        seen.push(l.clone());
        if l.contains("ready") {
            break;
        }
    }
    let paced = voxtap_tests::paced(&frames);
    net.replay_paced(&paced, 1.0).expect("send the calls");
    // Still running: the uploads happen as the recordings finish, not at the stop.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let done: i64 = rusqlite::Connection::open_with_flags(
            out.join("catalog.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|db| {
            db.query_row(
                "SELECT count(*) FROM dispatch_jobs WHERE state = 'done'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0);
        if done == 3 {
            break;
        }
        assert!(
            Instant::now() < until,
            "voxtap run uploaded {done} of 3 while running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "voxtap run is still running"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    let stderr = seen.join("\n");
    assert!(o.status.success(), "voxtap run: {}\n{stderr}", o.status);
    assert!(
        stderr.contains("dispatch stopped: 3 done, 0 failed (gave up), 0 pending"),
        "{stderr}"
    );
    let jobs = jobs(&out);
    assert_eq!(jobs.len(), 3);
    for j in &jobs {
        assert_eq!(j.state, "done", "{j:?}");
        assert_eq!(j.tries.len(), 1, "{j:?}");
    }
    check_uploads(&out, &nginx, &jobs, &BTreeMap::new());
    live_evidence_is_complete(&out, s.path());
}

/// The live run also kept each call's evidence (`[evidence] enabled`): one complete file per
/// call, whose frames `voxtap evidence -w` writes out as a pcap of as many packets.
fn live_evidence_is_complete(out: &Path, scratch: &Path) {
    let rows: Vec<(i64, String, i64)> = {
        let db = rusqlite::Connection::open_with_flags(
            out.join("catalog.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut st = db
            .prepare("SELECT call_id, state, frames FROM evidence ORDER BY call_id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (call, state, frames) in rows {
        assert_eq!(state, "complete", "call {call}");
        // INVITE, 100, 180, 200, ACK, BYE, 200 and a second of RTP each way.
        assert!(frames > 100, "call {call}: {frames} frames");
        let pcap = scratch.join(format!("evidence-{call}.pcap"));
        let o = Command::new(voxtap())
            .args(["evidence", "--out"])
            .arg(out)
            .arg(call.to_string())
            .arg("-w")
            .arg(&pcap)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(pcap_packets(&pcap), frames as usize, "call {call}");
    }
}

/// Packets in a little- or big-endian libpcap file.
fn pcap_packets(path: &Path) -> usize {
    let b = std::fs::read(path).unwrap();
    let le = matches!(b[..4], [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]);
    let mut at = 24;
    let mut n = 0;
    while at + 16 <= b.len() {
        let len = b[at + 8..at + 12].try_into().unwrap();
        let len = if le {
            u32::from_le_bytes(len)
        } else {
            u32::from_be_bytes(len)
        } as usize;
        at += 16 + len;
        n += 1;
    }
    assert_eq!(at, b.len(), "{}: a cut record", path.display());
    n
}

#[test]
fn https_upload_trusts_only_the_configured_ca() {
    let test = "https_upload_trusts_only_the_configured_ca";
    let s = Scratch::new("dispatch-https");
    let tls = s.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let Some((cert, key)) = make_cert(test, &tls) else {
        return;
    };
    let Some(mut nginx) = Nginx::prepare_tls(test, &s.path().join("nginx"), Some((&cert, &key)))
    else {
        return;
    };
    nginx.open();
    nginx.start();
    let pcap = capture(&s, 2);
    let url = |name: &str, ca: &str| {
        format!(
            "[[dispatch.http]]\nname = \"{name}\"\nurl = \"https://127.0.0.1:{}/rec/{{call_id}}/{{file}}\"\ntimeout_s = 10\nretries = 1\nbackoff_s = 0.1\n{ca}\n",
            nginx.port
        )
    };
    let config = write(
        &s,
        "voxtap.toml",
        &format!(
            "{}{}",
            url("archive", &format!("ca_file = \"{}\"", cert.display())),
            url("untrusted", "")
        ),
    );
    let out = s.path().join("out");
    let text = ok(
        replay_cmd(&out, &config, &pcap, 30).output().unwrap(),
        "voxtap replay",
    );
    assert!(
        text.contains("dispatch        2 done, 2 failed (gave up), 0 pending"),
        "{text}"
    );
    let jobs = jobs(&out);
    for j in &jobs {
        if j.target == "archive" {
            assert_eq!(j.state, "done", "{j:?}");
            assert!(j.tries[0].1.starts_with("HTTP 201"), "{j:?}");
        } else {
            // The built-in roots do not know the test's certificate: refused, never sent.
            assert_eq!(j.state, "failed", "{j:?}");
            assert!(
                j.tries
                    .iter()
                    .all(|t| t.0 == "error" && t.1.contains("certificate")),
                "{j:?}"
            );
        }
    }
    check_uploads(&out, &nginx, &jobs, &BTreeMap::new());
}

#[test]
fn a_script_past_its_timeout_is_killed_with_its_children_and_the_attempt_says_timeout() {
    let s = Scratch::new("dispatch-timeout");
    let pcap = capture(&s, 1);
    let dir = s.path().join("hook");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("slow.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho started\nsleep 30 &\necho $! > {}/child\nwait\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write(
        &s,
        "voxtap.toml",
        &format!(
            "[[dispatch.script]]\nname = \"slow\"\ncommand = \"{}\"\ntimeout_s = 0.5\nretries = 1\nbackoff_s = 0.1\n",
            script.display()
        ),
    );
    let out = s.path().join("out");
    voxtap(); // built before the clock starts
    let started = Instant::now();
    let text = ok(
        replay_cmd(&out, &config, &pcap, 30).output().unwrap(),
        "voxtap replay",
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout held the replay"
    );
    assert!(
        text.contains("dispatch        0 done, 1 failed (gave up), 0 pending"),
        "{text}"
    );
    let jobs = jobs(&out);
    assert_eq!(jobs[0].tries.len(), 2, "{jobs:?}");
    for t in &jobs[0].tries {
        assert_eq!(t.0, "timeout", "{jobs:?}");
        assert!(
            t.1.starts_with("killed after 0.") && t.1.contains("started"),
            "{t:?}"
        );
    }
    // The script's own child went with it (its process group was killed).
    let child: i32 = std::fs::read_to_string(dir.join("child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive =
        std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|st| !st.contains(") Z "));
    assert!(!alive, "the script's child {child} outlived the timeout");
}
