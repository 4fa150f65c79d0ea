//! Retention and erasure end to end: generated calls replayed into an output directory on a
//! small tmpfs, then `voxtap prune` (dry run, by age, by quota), the daemon pruning as it
//! runs, and `voxtap erase` checked by grepping every file of the directory for the number.
//!
//! The tmpfs and the live run need root; without it those tests print a loud SKIPPED line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use voxtap_capture::testnet::TestNet;
use voxtap_gen::{GenConfig, Scenario};
use voxtap_tests::{Scratch, catalog, is_root, tmpfs, voxtap};

/// The Mix scenario (14 calls, 4 s of talk each, 2026-01-01) replayed into `out`.
fn replay_mix(scratch: &Path, out: &Path, config: &str) {
    let (frames, _) = voxtap_gen::generate(&GenConfig::new(Scenario::Mix));
    let pcap = scratch.join("mix.pcap");
    voxtap_gen::write_pcap(&pcap, &frames).unwrap();
    let cfg = scratch.join("voxtap.toml");
    std::fs::write(&cfg, config).unwrap();
    let o = Command::new(voxtap())
        .args(["replay", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(out)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(o.status.success(), "replay: {}", text(&o));
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn voxtap_ok(args: &[&str]) -> String {
    let o = Command::new(voxtap()).args(args).output().unwrap();
    assert!(o.status.success(), "voxtap {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Recording paths and states, by recording id.
fn recordings(out: &Path) -> Vec<(i64, String, String, i64)> {
    let db = catalog(out);
    let mut s = db
        .prepare("SELECT id, path, state, coalesce(size_bytes, 0) FROM recordings ORDER BY id")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn used_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

#[test]
fn prune_by_age_and_by_quota_on_a_small_tmpfs() {
    let test = "prune_by_age_and_by_quota_on_a_small_tmpfs";
    let mnt = Scratch::new("prune");
    let Some(_mount) = tmpfs(test, &mnt.path().join("mnt"), "8m") else {
        return;
    };
    let scratch = Scratch::new("prune-in");
    let out = mnt.path().join("mnt/out");
    replay_mix(scratch.path(), &out, "");
    let before = recordings(&out);
    assert!(before.len() >= 8, "{before:?}");
    let total: i64 = before.iter().map(|r| r.3).sum();
    let out_s = out.to_str().unwrap();

    // Age: the calls are of 2026-01-01; 90 days (the default) later, by noon of April 1st,
    // they are all due. A dry run says so and deletes nothing.
    let dry = voxtap_ok(&[
        "prune",
        "--out",
        out_s,
        "--dry-run",
        "--as-of",
        "2026-04-02T00:00:00Z",
    ]);
    assert!(
        dry.contains(&format!("would expire {} of them", before.len())),
        "{dry}"
    );
    assert!(dry.contains("older than 90 d"), "{dry}");
    assert_eq!(recordings(&out), before, "a dry run changes nothing");
    for r in &before {
        assert!(out.join(&r.1).exists());
    }
    // A month after the calls nothing is due.
    let early = voxtap_ok(&["prune", "--out", out_s, "--as-of", "2026-02-01T00:00:00Z"]);
    assert!(early.contains("expired 0 item(s)"), "{early}");

    // Quota: room for about a third of them; the oldest go first.
    let quota = total as f64 / 3.0;
    let cfg = scratch.path().join("quota.toml");
    std::fs::write(
        &cfg,
        format!(
            "[retention]\nmax_age_days = 0\nmax_gib = {}\n",
            quota / (1u64 << 30) as f64
        ),
    )
    .unwrap();
    let used_before = used_bytes(&out);
    let q = voxtap_ok(&["prune", "--out", out_s, "--config", cfg.to_str().unwrap()]);
    assert!(q.contains("over the total quota"), "{q}");
    let after = recordings(&out);
    let kept: Vec<_> = after.iter().filter(|r| r.2 != "expired").collect();
    let gone: Vec<_> = after.iter().filter(|r| r.2 == "expired").collect();
    assert!(!kept.is_empty() && !gone.is_empty(), "{after:?}");
    let kept_bytes: i64 = kept.iter().map(|r| r.3).sum();
    assert!(kept_bytes as f64 <= quota, "{kept_bytes} > {quota}");
    for r in &gone {
        assert!(!out.join(&r.1).exists(), "{} still there", r.1);
    }
    for r in &kept {
        assert!(out.join(&r.1).exists(), "{} was deleted", r.1);
    }
    // Oldest first: every expired call started no later than every kept one.
    let db = catalog(&out);
    let start = |id: i64| -> String {
        db.query_row(
            "SELECT c.start_time FROM recordings r JOIN calls c ON c.id = r.call_id WHERE r.id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    let newest_gone = gone.iter().map(|r| start(r.0)).max().unwrap();
    let oldest_kept = kept.iter().map(|r| start(r.0)).min().unwrap();
    assert!(newest_gone <= oldest_kept, "{newest_gone} > {oldest_kept}");
    // The tmpfs has the room back, and the rows their metadata.
    assert!(used_bytes(&out) < used_before);
    let (reason, dur): (String, f64) = db
        .query_row(
            "SELECT removed_reason, duration_s FROM recordings WHERE state = 'expired' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(reason.contains("quota"), "{reason}");
    assert!(dur > 3.0, "duration kept: {dur}");
    let id: i64 = db
        .query_row(
            "SELECT call_id FROM recordings WHERE state = 'expired' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let story = voxtap_ok(&["explain", "--out", out_s, &id.to_string()]);
    assert!(
        story.contains("expired") && story.contains("file removed"),
        "{story}"
    );
}

#[test]
fn the_daemon_prunes_as_it_runs() {
    let test = "the_daemon_prunes_as_it_runs";
    let mnt = Scratch::new("prune-live");
    let Some(_mount) = tmpfs(test, &mnt.path().join("mnt"), "8m") else {
        return;
    };
    let Some(net) = TestNet::new_or_skip("vxret", test) else {
        return;
    };
    let scratch = Scratch::new("prune-live-in");
    let out = mnt.path().join("mnt/out");
    // Calls of 2026-01-01, older than a day by the wall clock.
    replay_mix(scratch.path(), &out, "");
    let cfg = scratch.path().join("run.toml");
    std::fs::write(&cfg, "[retention]\nmax_age_days = 1\ninterval_s = 1\n").unwrap();
    let child = Command::new(voxtap())
        .args(["run", "--capture", "afpacket", "--iface", net.host_if()])
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut expired = 0;
    let total = recordings(&out).len();
    while Instant::now() < deadline {
        expired = recordings(&out).iter().filter(|r| r.2 == "expired").count();
        if expired == total {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) on our child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        expired, total,
        "the daemon expired {expired} of {total}: {err}"
    );
    assert!(err.contains("retention: expired"), "{err}");
    assert!(
        !out.join("recordings/2026/01/01").exists()
            || std::fs::read_dir(out.join("recordings/2026/01/01"))
                .unwrap()
                .next()
                .is_none(),
        "files are left"
    );
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if std::fs::read(&p)
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
fn erase_leaves_no_trace_of_the_number_and_is_for_root_only() {
    let test = "erase_leaves_no_trace_of_the_number_and_is_for_root_only";
    if !is_root() {
        eprintln!("\n*** SKIPPED {test}: voxtap erase is for root, and this is not root ***\n");
        return;
    }
    let scratch = Scratch::new("erase");
    let out = scratch.path().join("out");
    replay_mix(scratch.path(), &out, "");
    let out_s = out.to_str().unwrap();
    let (number, call, others): (String, i64, i64) = {
        let db = catalog(&out);
        let (n, c): (String, i64) = db
            .query_row(
                "SELECT c.caller_user, c.id FROM calls c JOIN recordings r ON r.call_id = c.id
                 WHERE c.id >= 5 ORDER BY c.id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let others = db
            .query_row(
                "SELECT count(*) FROM calls WHERE caller_user <> ?1 AND callee_user <> ?1",
                [&n],
                |r| r.get(0),
            )
            .unwrap();
        (n, c, others)
    };
    let digits = number.trim_start_matches('+').to_owned();
    assert!(
        !files_containing(&out, digits.as_bytes()).is_empty(),
        "the number is there before"
    );
    let rec: String = catalog(&out)
        .query_row(
            "SELECT path FROM recordings WHERE call_id = ?1",
            [call],
            |r| r.get(0),
        )
        .unwrap();
    assert!(out.join(&rec).exists());

    // Not an administrator: refused, nothing touched.
    let setpriv = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(voxtap())
        .args([
            "erase", "--out", out_s, "--number", &number, "--reason", "x",
        ])
        .output();
    match setpriv {
        Ok(o) if o.status.code() == Some(1) => {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("only an administrator"), "{err}");
            assert!(out.join(&rec).exists());
        }
        Ok(o) => panic!("erase as nobody: {}", text(&o)),
        Err(e) => eprintln!("\n*** SKIPPED {test} (the non-root part): setpriv: {e} ***\n"),
    }

    // A number no call has: nothing matches, and it says so.
    let o = Command::new(voxtap())
        .args([
            "erase",
            "--out",
            out_s,
            "--number",
            "0305550999",
            "--reason",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no call matches"));

    let dry = voxtap_ok(&[
        "erase",
        "--out",
        out_s,
        "--number",
        &number,
        "--reason",
        "DSR-1",
        "--dry-run",
    ]);
    assert!(dry.contains("would erase 1 call(s)"), "{dry}");
    assert!(out.join(&rec).exists());
    let done = voxtap_ok(&[
        "erase",
        "--out",
        out_s,
        "--number",
        &format!("+{digits}"),
        "--reason",
        "DSR-2026-118",
    ]);
    assert!(done.contains("erased 1 call(s)"), "{done}");
    assert!(done.contains("vacuumed"), "{done}");
    assert!(!out.join(&rec).exists(), "the recording is deleted");
    let left = files_containing(&out, digits.as_bytes());
    assert!(left.is_empty(), "the number is still in {left:?}");

    let db = catalog(&out);
    let (reason, calls, uid): (String, String, i64) = db
        .query_row(
            "SELECT reason, calls, operator_uid FROM erasures",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((reason.as_str(), calls), ("DSR-2026-118", call.to_string()));
    assert_eq!(uid, 0);
    let state: String = db
        .query_row(
            "SELECT state FROM recordings WHERE call_id = ?1",
            [call],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "erased");
    // Every other call keeps its parties.
    let kept: i64 = db
        .query_row(
            "SELECT count(*) FROM calls WHERE caller_user <> ''",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, others);
    // explain still tells the erased call's story, without the people.
    let story = voxtap_ok(&["explain", "--out", out_s, &call.to_string()]);
    assert!(!story.contains(&digits), "{story}");
    assert!(
        story.contains("file removed") && story.contains("erased (erasures.id 1)"),
        "{story}"
    );
}
