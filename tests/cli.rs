//! The command line: help text, exit codes, bad configs and corrupt captures.

use std::process::Command;

use voxtap_gen::{GenConfig, Scenario, generate, write_pcap};
use voxtap_tests::{Scratch, catalog, replay, voxtap};

#[test]
fn help_describes_replay_and_its_options() {
    let out = Command::new(voxtap())
        .args(["replay", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--out",
        "--config",
        "--quiet",
        "CAPTURE",
        "catalog.sqlite",
        "pcapng",
    ] {
        assert!(
            help.contains(needle),
            "replay --help lacks {needle}:\n{help}"
        );
    }
    let top = Command::new(voxtap()).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&top.stdout).contains("replay"));
}

/// A usage error (a missing argument, an unknown option) exits 2, as clap and most Unix tools
/// do, and every help text that states the exit status says so.
#[test]
fn missing_arguments_fail_with_usage_and_exit_status_2() {
    let out = Command::new(voxtap()).arg("replay").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out"));
    let out = Command::new(voxtap())
        .args(["explain", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    for args in [
        &["--help"][..],
        &["replay", "--help"],
        &["rules", "check", "--help"],
    ] {
        let help = Command::new(voxtap()).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(help.status.success());
        assert!(text.contains("2 on a usage error"), "{args:?}:\n{text}");
    }
    let readme = std::fs::read_to_string(voxtap_tests::root().join("README.md")).unwrap();
    assert!(readme.contains("2 on a usage error"), "README");
}

#[test]
fn bad_config_names_the_line_and_writes_nothing() {
    let s = Scratch::new("badconfig");
    let cfg = s.path().join("voxtap.toml");
    std::fs::write(
        &cfg,
        "[engine]\nreorder_window_ms = 250\nreorder_widnow_ms = 3\n",
    )
    .unwrap();
    let pcap = s.path().join("c.pcap");
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    write_pcap(&pcap, &frames).unwrap();
    let out_dir = s.path().join("out");
    let out = Command::new(voxtap())
        .arg("replay")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out_dir)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("voxtap.toml") && err.contains("line 3") && err.contains("reorder_widnow_ms"),
        "{err}"
    );
    assert!(
        !out_dir.exists(),
        "a bad config must stop before anything is written"
    );
}

#[test]
fn corrupt_capture_names_file_and_offset_after_flushing() {
    let s = Scratch::new("corrupt");
    let pcap = s.path().join("cut.pcap");
    let (frames, truth) = generate(&GenConfig::new(Scenario::Pcmu));
    write_pcap(&pcap, &frames).unwrap();
    // Cut the file inside a record: the header says more bytes than remain.
    let mut bytes = std::fs::read(&pcap).unwrap();
    let keep = bytes.len() * 2 / 3;
    bytes.truncate(keep);
    // And a bogus record length well before the cut.
    std::fs::write(&pcap, &bytes).unwrap();
    let out_dir = s.path().join("out");
    let out = replay(&out_dir, &[&pcap]);
    assert!(!out.status.success(), "a corrupt capture is an error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.pcap") && err.contains("offset"), "{err}");
    // What was read before the damage is in the catalog, and the call was closed.
    let db = catalog(&out_dir);
    let (n, ended): (i64, i64) = db
        .query_row("SELECT COUNT(*), COUNT(end_time) FROM calls", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(n, truth.calls.len() as i64);
    assert_eq!(ended, n);
    let recs: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM recordings WHERE state = 'complete'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recs, 1, "the partial call is still recorded and finalised");
}

/// A capture taken with a small snapshot length (`tcpdump -s 96`, a common way to save disk)
/// holds every frame but only its first bytes: no SIP body, no audio. The replay must say so
/// in words, naming the file, how many frames and the cut, rather than leave the user with
/// an empty catalog and a count of malformed frames.
#[test]
fn a_capture_cut_by_its_snapshot_length_says_so() {
    let s = Scratch::new("snaplen");
    let pcap = s.path().join("snap96.pcap");
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    write_pcap(&pcap, &frames).unwrap();
    // Rewrite each record as `tcpdump -s 96` would have kept it.
    let bytes = std::fs::read(&pcap).unwrap();
    let mut cut = bytes[..24].to_vec();
    cut[16..20].copy_from_slice(&96u32.to_le_bytes());
    let (mut at, mut longer) = (24, 0);
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let kept = len.min(96);
        longer += usize::from(len > 96);
        cut.extend_from_slice(&bytes[at..at + 8]);
        cut.extend_from_slice(&(kept as u32).to_le_bytes());
        cut.extend_from_slice(&(len as u32).to_le_bytes());
        cut.extend_from_slice(&bytes[at + 16..at + 16 + kept]);
        at += 16 + len;
    }
    assert!(longer > 100, "the call's frames are longer than 96 bytes");
    std::fs::write(&pcap, &cut).unwrap();
    let out = replay(&s.path().join("out"), &[&pcap]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let want = format!(
        "snap96.pcap: {longer} of its {} frames were cut short by the capture, to at most 96 bytes",
        frames.len()
    );
    assert!(err.contains(&want), "wanted {want:?} in:\n{err}");
    assert!(err.contains("tcpdump -s 0"), "{err}");
}

#[test]
fn not_a_capture_is_a_clear_error() {
    let s = Scratch::new("notpcap");
    let f = s.path().join("notes.txt");
    std::fs::write(&f, "hello, this is not a capture\n").unwrap();
    let out = replay(&s.path().join("out"), &[&f]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("not a pcap"),
        "{err}"
    );
}

#[test]
fn summary_reports_the_run() {
    let s = Scratch::new("summary");
    let pcap = s.path().join("c.pcap");
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcma));
    write_pcap(&pcap, &frames).unwrap();
    let out = replay(&s.path().join("out"), &[&pcap]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "calls seen",
        "answered",
        "recorded",
        "RTP streams",
        "packets",
        "unmatched RTP",
        "malformed",
        "elapsed",
        "packets/s",
        "writer queue",
    ] {
        assert!(text.contains(needle), "summary lacks {needle}:\n{text}");
    }
    let frames_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("packets"))
        .unwrap();
    assert!(
        frames_line.contains(&frames.len().to_string()),
        "{frames_line} vs {} frames",
        frames.len()
    );
}

#[test]
fn rules_check_summarises_a_valid_config() {
    let example = voxtap_tests::root().join("docs/rules.example.toml");
    let out = Command::new(voxtap())
        .args(["rules", "check"])
        .arg(&example)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rules OK: 1 tenants, 2 users, 2 devices, 3 DDIs, 1 role rules"),
        "{stdout}"
    );
    assert!(stdout.contains("tenant acme:"), "{stdout}");
}

#[test]
fn rules_check_names_the_bad_line_and_fails() {
    let scratch = voxtap_tests::Scratch::new("rules-check");
    let cfg = scratch.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[rules.tenants]]\nname = \"acme\"\n\n[[rules.tenants.devices]]\nid = \"desk\"\naddress = \"10.0.0.9\"\nuser = \"nobody\"\n",
    )
    .unwrap();
    let out = Command::new(voxtap())
        .args(["rules", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 7, column 8"), "{stderr}");
    assert!(
        stderr.contains("device desk belongs to unknown user nobody"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // No rules at all is valid: every answered call is recorded.
    std::fs::write(&cfg, "[recording]\nenabled = true\n").unwrap();
    let out = Command::new(voxtap())
        .args(["rules", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no [rules] section"));
}

#[test]
fn run_on_a_missing_interface_says_why_and_writes_nothing() {
    let s = Scratch::new("noiface");
    let out_dir = s.path().join("out");
    for capture in ["xdp", "afpacket"] {
        let out = Command::new(voxtap())
            .args([
                "run",
                "--iface",
                "voxtap-nosuch0",
                "--capture",
                capture,
                "--out",
            ])
            .arg(&out_dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{capture}");
        let err = String::from_utf8_lossy(&out.stderr);
        // The interface is not there: no other capture method would find it either, so
        // the error lists the ones that are there instead of suggesting afpacket.
        assert!(
            err.contains(
                "no network interface named \"voxtap-nosuch0\"; the interfaces here are: "
            ) && err.contains("lo"),
            "{capture}: {err}"
        );
        assert!(!err.contains("afpacket"), "{capture}: {err}");
        assert!(
            !out_dir.exists(),
            "{capture}: nothing may be written when capture cannot start"
        );
    }
}

#[test]
fn run_help_names_the_capture_modes_and_capabilities() {
    let out = Command::new(voxtap())
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--iface",
        "--capture",
        "xdp",
        "afpacket",
        "--out",
        "--queues",
        "SIGTERM",
        "CAP_BPF",
    ] {
        assert!(help.contains(needle), "run --help lacks {needle}:\n{help}");
    }
}

#[test]
fn explain_tells_a_call_from_the_catalog() {
    let s = Scratch::new("explain");
    let pcap = s.path().join("dtmf.pcap");
    let (frames, truth) = generate(&GenConfig::new(Scenario::Dtmf));
    write_pcap(&pcap, &frames).unwrap();
    let out_dir = s.path().join("out");
    assert!(replay(&out_dir, &[&pcap]).status.success());
    let call_id = &truth.calls[0].sip_call_id;
    let out = Command::new(voxtap())
        .args(["explain", "--out"])
        .arg(&out_dir)
        .arg(call_id)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        call_id.as_str(),
        "decision at",
        "record (default: record every answered call)",
        "1. default: record every answered call",
        "dtmf 1  [rfc4733, caller]",
        "dtmf 5  [rfc4733, callee]",
        "complete",
        "PCMU",
    ] {
        assert!(text.contains(needle), "explain lacks {needle:?}:\n{text}");
    }
    let missing = Command::new(voxtap())
        .args(["explain", "--out"])
        .arg(&out_dir)
        .arg("nope@nowhere")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no call \"nope@nowhere\""));
}

#[test]
fn a_missing_capture_stops_the_replay_before_anything_is_written_and_says_why_once() {
    let s = Scratch::new("missing_capture");
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    let good = s.path().join("good.pcap");
    write_pcap(&good, &frames).unwrap();
    let out_dir = s.path().join("out");
    // The missing file comes second: nothing of the first is written either.
    let out = replay(&out_dir, &[&good, &s.path().join("nosuch.pcap")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuch.pcap"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(!out_dir.join("catalog.sqlite").exists());
    assert!(
        out.stdout.is_empty(),
        "no summary of a run that did not happen"
    );
}

#[test]
fn a_capture_of_a_link_type_voxtap_cannot_read_is_an_error_not_a_run_of_nothing() {
    let s = Scratch::new("unknown_link");
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    let pcap = s.path().join("c.pcap");
    write_pcap(&pcap, &frames).unwrap();
    // Link type 147 (a user-defined DLT) in the global header.
    let mut bytes = std::fs::read(&pcap).unwrap();
    bytes[20..24].copy_from_slice(&147u32.to_le_bytes());
    std::fs::write(&pcap, &bytes).unwrap();
    let out = replay(&s.path().join("out"), &[&pcap]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("link type 147") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn replay_into_a_closed_pipe_ends_quietly_without_a_panic() {
    use std::process::Stdio;
    let s = Scratch::new("broken_pipe");
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    let pcap = s.path().join("c.pcap");
    write_pcap(&pcap, &frames).unwrap();
    let out_dir = s.path().join("out");
    let mut child = Command::new(voxtap())
        .args(["replay", "--quiet", "--out"])
        .arg(&out_dir)
        .arg(&pcap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reader goes before voxtap writes its summary.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // The run itself was written before the summary.
    let db = catalog(&out_dir);
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM recordings WHERE state = 'complete'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

/// `explain` on a catalog this user may not read says permission denied with the path, not
/// "no catalog". As root every permission is granted, so it runs as `nobody`.
#[test]
fn explain_on_an_unreadable_catalog_says_permission_denied() {
    let test = "explain_on_an_unreadable_catalog_says_permission_denied";
    let s = Scratch::new("explain_perm");
    let pcap = s.path().join("c.pcap");
    let (frames, truth) = generate(&GenConfig::new(Scenario::Pcmu));
    write_pcap(&pcap, &frames).unwrap();
    let out_dir = s.path().join("out");
    assert!(replay(&out_dir, &[&pcap]).status.success());
    // A copy in a directory every user may enter (/tmp), the file itself mode 000.
    use std::os::unix::fs::PermissionsExt;
    let open_dir = std::env::temp_dir().join(format!("voxtap-explain-perm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&open_dir);
    let copy = open_dir.join("out");
    std::fs::create_dir_all(&copy).unwrap();
    for d in [&open_dir, &copy] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let db = copy.join("catalog.sqlite");
    std::fs::copy(out_dir.join("catalog.sqlite"), &db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(open_dir.clone());
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if is_root {
        if Command::new("setpriv").arg("--version").output().is_err() {
            eprintln!("\n*** SKIPPED {test}: setpriv (util-linux) is not installed ***\n");
            return;
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(voxtap());
        c
    } else {
        Command::new(voxtap())
    };
    let out = cmd
        .args(["explain", "--out"])
        .arg(&copy)
        .arg(&truth.calls[0].sip_call_id)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot read the catalog")
            && err.contains(&db.display().to_string())
            && err.contains("Permission denied"),
        "{err}"
    );
    assert!(!err.contains("no catalog"), "{err}");
}

/// The first example query of docs/catalog.md finds the demo's calls (it used to ask for calls
/// started today, and the demo's capture is of another day), and every example without a
/// parameter runs on the demo's catalog. The demo is `cargo xtask demo`: the `mix` scenario.
#[test]
fn the_catalog_doc_s_example_queries_find_the_demo_s_calls() {
    let s = Scratch::new("catalog_queries");
    let pcap = s.path().join("demo.pcap");
    let (frames, truth) = generate(&GenConfig::new(Scenario::Mix));
    write_pcap(&pcap, &frames).unwrap();
    let out_dir = s.path().join("out");
    assert!(replay(&out_dir, &[&pcap]).status.success());
    let doc = std::fs::read_to_string(voxtap_tests::root().join("docs/catalog.md")).unwrap();
    let examples = &doc[doc.find("## Example queries").expect("the section")..];
    let queries: Vec<&str> = examples
        .split("```sql\n")
        .skip(1)
        .map(|q| &q[..q.find("```").expect("a closed block")])
        .collect();
    assert!(queries.len() >= 5, "{queries:?}");
    let db = catalog(&out_dir);
    for (i, q) in queries.iter().enumerate() {
        if q.contains(':') && q.contains(":sip_call_id") {
            continue;
        }
        let mut stmt = db
            .prepare(q)
            .unwrap_or_else(|e| panic!("query {i}: {e}\n{q}"));
        let rows = stmt.query_map([], |_| Ok(())).unwrap().count();
        if i == 0 {
            let recorded = truth.calls.iter().filter(|c| c.answered).count();
            assert_eq!(
                rows, recorded,
                "the first query finds every recorded call:\n{q}"
            );
        }
    }
}

/// `calls.final_status` is as docs/catalog.md says: the final response to the INVITE, 200
/// for an answered call whatever ended it (BYE here), the failure code for one that failed.
#[test]
fn final_status_is_the_invite_s_final_response_as_documented() {
    let s = Scratch::new("final_status");
    let pcap = s.path().join("demo.pcap");
    let (frames, _) = generate(&GenConfig::new(Scenario::Mix));
    write_pcap(&pcap, &frames).unwrap();
    let out_dir = s.path().join("out");
    assert!(replay(&out_dir, &[&pcap]).status.success());
    let db = catalog(&out_dir);
    let rows: Vec<(String, Option<i64>, Option<String>)> = db
        .prepare("SELECT end_reason, final_status, answer_time FROM calls")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let byes: Vec<_> = rows.iter().filter(|r| r.0 == "bye").collect();
    assert!(!byes.is_empty(), "{rows:?}");
    assert!(
        byes.iter().all(|r| r.1 == Some(200) && r.2.is_some()),
        "{rows:?}"
    );
    let cancelled: Vec<_> = rows.iter().filter(|r| r.0 == "cancelled").collect();
    assert!(!cancelled.is_empty(), "{rows:?}");
    assert!(
        cancelled.iter().all(|r| r.1 == Some(487) && r.2.is_none()),
        "{rows:?}"
    );
    let doc = std::fs::read_to_string(voxtap_tests::root().join("docs/catalog.md")).unwrap();
    let line = doc
        .lines()
        .find(|l| l.starts_with("| `final_status`"))
        .unwrap();
    assert!(line.contains("200") && line.contains("answered"), "{line}");
}

/// `voxtap man` renders as a man page (groff, or man -l, with no warnings) naming every
/// command, `--out-dir` writes one page per command, and `voxtap completions bash` loads in
/// bash and completes the commands.
#[test]
fn the_man_page_renders_and_the_bash_completion_loads() {
    let test = "the_man_page_renders_and_the_bash_completion_loads";
    let s = Scratch::new("man");
    let page = Command::new(voxtap()).arg("man").output().unwrap();
    assert!(page.status.success());
    let file = s.path().join("voxtap.1");
    std::fs::write(&file, &page.stdout).unwrap();
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have("groff") {
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success());
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(warnings.trim().is_empty(), "groff warns:\n{warnings}");
    }
    if have("man") {
        let out = Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for needle in [
            "NAME",
            "voxtap",
            "SUBCOMMANDS",
            "replay",
            "run",
            "explain",
            "completions",
        ] {
            assert!(text.contains(needle), "man -l lacks {needle}:\n{text}");
        }
    } else if !have("groff") {
        eprintln!("\n*** SKIPPED {test} (man page part): neither man nor groff is installed ***\n");
    }
    let dir = s.path().join("man1");
    std::fs::create_dir(&dir).unwrap();
    let out = Command::new(voxtap())
        .args(["man", "--out-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in [
        "voxtap.1",
        "voxtap-replay.1",
        "voxtap-run.1",
        "voxtap-rules-check.1",
    ] {
        assert!(dir.join(p).exists(), "{p}");
    }

    if !have("bash") {
        eprintln!("\n*** SKIPPED {test} (completion part): bash is not installed ***\n");
        return;
    }
    let script = Command::new(voxtap())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success());
    let file = s.path().join("voxtap.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    // Load it as bash-completion would, then ask it to complete `voxtap re`.
    let probe = format!(
        ". {} && complete -p voxtap && COMP_WORDS=(voxtap re) COMP_CWORD=1 COMP_LINE='voxtap re' COMP_POINT=9 && _voxtap voxtap re voxtap && echo \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("-F _voxtap voxtap"), "{text}");
    assert!(
        text.lines().last().unwrap_or("").contains("replay"),
        "{text}"
    );
}

/// What an adversarial run found accepted: a timer of 2^64-1 seconds, 10^11 calls, 66 SIP
/// ports (refused only later by the XDP loader), and on-demand codes where one begins another.
/// Each is refused at load, by `replay` before anything is written and by `rules check`,
/// naming its line.
#[test]
fn hostile_config_values_are_refused_at_load_with_their_line() {
    let s = Scratch::new("hostile_config");
    let pcap = s.path().join("c.pcap");
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    write_pcap(&pcap, &frames).unwrap();
    let ports: Vec<String> = (0..66).map(|p| (5000 + p).to_string()).collect();
    let cases = [
        (
            "[engine]\nmedia_timeout_s = 18446744073709551615\n".to_string(),
            "line 2, column 19: engine.media_timeout_s must be between 1 and 86400",
        ),
        (
            "[engine]\nmax_calls = 100000000000\n".to_string(),
            "line 2, column 13: engine.max_calls must be between 1 and 10000000",
        ),
        (
            format!("[capture]\nsip_ports = [{}]\n", ports.join(", ")),
            "line 2, column 13: capture.sip_ports lists 66 ports; the XDP program takes at most 64",
        ),
        (
            "[[rules.tenants]]\nname = \"a\"\n[rules.tenants.on_demand]\nenabled = true\ntoggle = \"*4\"\npause = \"*48\"\n".to_string(),
            "line 6, column 9: on_demand.toggle (*4) and on_demand.pause (*48) of tenant a overlap",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let cfg = s.path().join(format!("c{i}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let check = Command::new(voxtap())
            .args(["rules", "check"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "rules check: want {want:?}:\n{err}");
        let out_dir = s.path().join(format!("out{i}"));
        let out = voxtap_tests::replay_configured(&out_dir, Some(&cfg), &[&pcap]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "replay: want {want:?}:\n{err}");
        assert!(!out_dir.exists(), "nothing is written with a bad config");
    }
}
