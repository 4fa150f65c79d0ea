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

#[test]
fn missing_arguments_fail_with_usage() {
    let out = Command::new(voxtap()).arg("replay").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out"));
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
        assert!(err.contains("voxtap-nosuch0"), "{capture}: {err}");
        if capture == "xdp" {
            assert!(
                err.contains("--capture afpacket"),
                "the XDP error suggests AF_PACKET: {err}"
            );
        }
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
