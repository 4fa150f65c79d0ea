//! End to end: `voxtap replay` at its resource limits. More concurrent recordings than the
//! process has descriptors; a recordings volume that is full; a kill -9 mid-run. In each the
//! run goes on (or the next one repairs it), every call is catalogued, and no file on disk is
//! empty or unplayable. The volume test mounts a tmpfs and says SKIPPED loudly without root.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use voxtap_gen::{GenConfig, Scenario, generate, write_pcap};
use voxtap_tests::{Scratch, catalog, tmpfs, voxtap};

fn concurrent(calls: usize, talk_secs: f64) -> GenConfig {
    GenConfig {
        calls,
        talk_secs,
        ..GenConfig::new(Scenario::Concurrent)
    }
}

fn pcap_of(scratch: &Scratch, cfg: &GenConfig) -> PathBuf {
    let pcap = scratch.path().join("in.pcap");
    let (frames, _) = generate(cfg);
    write_pcap(&pcap, &frames).unwrap();
    pcap
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn count(out: &Path, sql: &str) -> i64 {
    catalog(out).query_row(sql, [], |r| r.get(0)).unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn two_hundred_concurrent_recordings_under_a_limit_of_64_descriptors() {
    let scratch = Scratch::new("fd_limit_replay");
    let pcap = pcap_of(&scratch, &concurrent(200, 1.0));
    let out = scratch.path().join("out");
    let mut cmd = Command::new(voxtap());
    cmd.arg("replay").arg("--out").arg(&out).arg(&pcap);
    // SAFETY: setrlimit is async-signal-safe; the closure touches only a local.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{stderr}");
    // Before the descriptor pool, each open recording held two: the run died at about 28.
    assert_eq!(
        count(
            &out,
            "SELECT count(*) FROM recordings WHERE state = 'complete'"
        ),
        200,
        "{stdout}"
    );
    assert_eq!(
        count(&out, "SELECT count(*) FROM runs WHERE state = 'complete'"),
        1
    );
    for f in files_under(&out.join("recordings")) {
        let r = hound::WavReader::open(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            r.duration() > 8000,
            "{}: at least the second of talk",
            f.display()
        );
    }
}

/// `voxtap replay --out OUT PCAP`: its stdout, after asserting it exited 0.
fn replay_through(out: &Path, pcap: &Path, why: &str) -> String {
    let o = Command::new(voxtap())
        .arg("replay")
        .arg("--out")
        .arg(out)
        .arg(pcap)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{why}\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn a_full_recordings_volume_fails_recordings_not_the_run() {
    let scratch = Scratch::new("disk_full_replay");
    let out = scratch.path().join("out");
    let rec_dir = out.join("recordings");
    let Some(_mount) = tmpfs(
        "a_full_recordings_volume_fails_recordings_not_the_run",
        &rec_dir,
        "1m",
    ) else {
        return;
    };
    let pcap = pcap_of(&scratch, &concurrent(20, 30.0));
    let stdout = replay_through(&out, &pcap, "a full disk is not the end of the run");
    // 20 calls of 30 s need 20 MB; 1 MB holds about 1.5 s of each.
    assert!(stdout.contains("write failed"), "{stdout}");
    assert_eq!(
        count(&out, "SELECT count(*) FROM calls WHERE state = 'ended'"),
        20
    );
    assert_eq!(
        count(&out, "SELECT count(*) FROM runs WHERE state = 'complete'"),
        1
    );
    let failed = count(
        &out,
        "SELECT count(*) FROM recordings
         WHERE state IN ('partial', 'missing') AND state_reason LIKE 'write-failed%No space left%'",
    );
    assert!(failed > 0, "{stdout}");
    assert_eq!(
        count(&out, "SELECT recordings_write_failed FROM runs"),
        failed,
        "the run's row counts them"
    );
    assert_eq!(
        failed
            + count(
                &out,
                "SELECT count(*) FROM recordings WHERE state = 'complete'"
            ),
        20,
        "every recording is complete or says why not\n{stdout}"
    );
    // What is on the volume plays, and nothing is empty or left as .part.
    for f in files_under(&rec_dir) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".wav"), "{name} left on the volume");
        let r = hound::WavReader::open(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(r.duration() > 0, "{name} is empty");
    }
}

#[test]
fn a_full_disk_shared_by_catalog_and_recordings_still_catalogues_every_call() {
    let scratch = Scratch::new("disk_full_shared");
    let out = scratch.path().join("out");
    let Some(_mount) = tmpfs("a_full_disk_shared_by_catalog_and_recordings", &out, "4m") else {
        return;
    };
    let pcap = pcap_of(&scratch, &concurrent(20, 30.0));
    // Before the reserve, the first catalog write on the full disk ended the run.
    let stdout = replay_through(&out, &pcap, "a full shared disk is not the end of the run");
    assert_eq!(
        count(&out, "SELECT count(*) FROM calls WHERE state = 'ended'"),
        20
    );
    assert_eq!(
        count(&out, "SELECT count(*) FROM runs WHERE state = 'complete'"),
        1
    );
    assert_eq!(
        count(&out, "SELECT count(*) FROM streams"),
        40,
        "every stream catalogued"
    );
    let failed = count(&out, "SELECT recordings_write_failed FROM runs");
    assert!(failed > 0, "{stdout}");
    assert_eq!(
        failed,
        count(
            &out,
            "SELECT count(*) FROM recordings WHERE state_reason LIKE 'write-failed%'"
        )
    );
    assert!(
        !out.join("catalog.reserve").exists(),
        "the reserve goes with the run"
    );
    for f in files_under(&out.join("recordings")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".wav"), "{name} left on the volume");
        hound::WavReader::open(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn kill_dash_nine_leaves_no_empty_or_headless_file_and_the_next_run_repairs_all() {
    let scratch = Scratch::new("kill_nine");
    let pcap = pcap_of(&scratch, &concurrent(300, 20.0));
    let out = scratch.path().join("out");
    let rec_dir = out.join("recordings");
    let mut child = Command::new(voxtap())
        .arg("replay")
        .arg("--out")
        .arg(&out)
        .arg(&pcap)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill while recordings are being created and written: once a hundred exist.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let parts = files_under(&rec_dir)
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".part"))
            .count();
        if parts >= 100 || Instant::now() > deadline {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("the replay ended before it could be killed: make the capture longer");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = files_under(&rec_dir);
    let parts: Vec<&PathBuf> = left
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(
        parts.len() >= 100,
        "killed mid-run: {} .part files",
        parts.len()
    );
    for p in &left {
        let bytes = fs::read(p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            // A first write the kill cut short: never the recording's name, removed below.
            continue;
        }
        assert!(bytes.len() >= 44, "{name}: {} bytes", bytes.len());
        assert_eq!(&bytes[..4], b"RIFF", "{name} has no header");
    }

    // The next run repairs every .part, removes any temporary, and nothing is lost.
    let empty = scratch.path().join("empty.pcap");
    write_pcap(&empty, &[]).unwrap();
    let o = Command::new(voxtap())
        .arg("replay")
        .arg("--out")
        .arg(&out)
        .arg(&empty)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    for f in files_under(&rec_dir) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".wav"), "{name} left after recovery");
        hound::WavReader::open(&f).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(
        count(
            &out,
            "SELECT count(*) FROM recordings WHERE state = 'recording'"
        ),
        0
    );
    let recovered = count(
        &out,
        "SELECT count(*) FROM recordings WHERE state = 'recovered'",
    );
    assert!(recovered >= parts.len() as i64, "{recovered} recovered");
}
