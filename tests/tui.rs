//! The dashboard on a real terminal (tmux): `voxtap replay --tui` on a generated PBX capture
//! lists its calls, Enter shows the ladder of the conversation with its INVITEs, the panes
//! show the streams and the decision, and q exits 0 with the summary after. Without tmux it
//! prints a loud SKIPPED line.

use std::time::Duration;

use voxtap_gen::{GenConfig, Scenario, generate, write_pcap};
use voxtap_tests::{Scratch, Tmux, catalog, voxtap};

#[test]
fn replay_tui_lists_the_calls_shows_the_ladder_and_quits_cleanly() {
    let test = "replay_tui";
    let s = Scratch::new(test);
    let cfg = GenConfig {
        calls: 2,
        ..GenConfig::new(Scenario::PbxInbound)
    };
    let (frames, truth) = generate(&cfg);
    let pcap = s.path().join("pbx.pcap");
    write_pcap(&pcap, &frames).unwrap();
    let out = s.path().join("out");
    let command = format!(
        "{} replay --tui --out {} {}",
        voxtap().display(),
        out.display(),
        pcap.display()
    );
    let Some(term) = Tmux::start_or_skip(test, 150, 45, &command) else {
        return;
    };
    // Every leg listed, the replay over, nothing dropped anywhere.
    let first = &truth.calls[0];
    let list = term.wait_for(
        &["finished", "calls 4/4", &first.caller_user],
        Duration::from_secs(30),
    );
    for c in &truth.calls {
        assert!(
            list.contains(&c.caller_user),
            "{} not listed:\n{list}",
            c.caller_user
        );
    }
    assert!(list.contains("ended: bye"), "{list}");
    assert!(list.contains("recorded"), "{list}");
    assert!(list.contains("on leg"), "{list}");
    assert!(list.contains("queue full 0"), "{list}");

    // The second leg's detail (the recorded one): its conversation's ladder, both legs'
    // INVITEs.
    term.keys(&["Down", "Enter"]);
    let ladder = term.wait_for(&["1 Flow", "INVITE sip:"], Duration::from_secs(10));
    assert!(ladder.matches("INVITE sip:").count() >= 2, "{ladder}");
    assert!(
        ladder.contains("───>") || ladder.contains("──>"),
        "{ladder}"
    );
    assert!(ladder.contains("<──"), "{ladder}");
    assert!(ladder.contains("180 Ringing"), "{ladder}");
    assert!(ladder.contains("BYE"), "{ladder}");
    // The message under the cursor in full: the first INVITE's headers and SDP.
    assert!(ladder.contains("Call-ID: "), "{ladder}");
    assert!(ladder.contains("m=audio"), "{ladder}");

    term.keys(&["2"]);
    let streams = term.wait_for(&["RTP streams", "PCM"], Duration::from_secs(5));
    assert!(streams.contains("decoded"), "{streams}");
    term.keys(&["4"]);
    term.wait_for(&["decision at ", "1. default"], Duration::from_secs(5));

    // Esc back to the list, q quits: exit 0, the terminal handed back, the summary printed.
    term.keys(&["Escape"]);
    term.wait_for(&["calls 4/4"], Duration::from_secs(5));
    term.keys(&["q"]);
    assert_eq!(term.exit_status(Duration::from_secs(15)), Some(0));
    let after = term.screen();
    assert!(after.contains("calls seen"), "{after}");
    assert!(after.contains("recorded"), "{after}");

    let db = catalog(&out);
    let n: i64 = db
        .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
}

#[test]
fn replay_tui_refuses_without_a_terminal_and_writes_nothing() {
    let s = Scratch::new("replay_tui_no_tty");
    let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
    let pcap = s.path().join("call.pcap");
    write_pcap(&pcap, &frames).unwrap();
    let out = s.path().join("out");
    let o = std::process::Command::new(voxtap())
        .args(["replay", "--tui", "--out"])
        .arg(&out)
        .arg(&pcap)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs a terminal"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.join("catalog.sqlite").exists());
}

/// `voxtap tui` with no daemon behind its socket: it says so and keeps trying, never exits on
/// its own; SIGTERM ends it with 0 and the terminal back in order.
#[test]
fn the_dashboard_without_a_daemon_says_so_and_sigterm_ends_it_cleanly() {
    let test = "tui_no_daemon";
    let s = Scratch::new(test);
    let socket = s.path().join("status.sock");
    let pidfile = s.path().join("tui.pid");
    // The shell's own pid becomes voxtap's (exec), so SIGTERM reaches the dashboard itself.
    let command = format!(
        "sh -c 'echo $$ > {}; exec {} tui --socket {}'",
        pidfile.display(),
        voxtap().display(),
        socket.display()
    );
    let Some(term) = Tmux::start_or_skip(test, 240, 30, &command) else {
        return;
    };
    let screen = term.wait_for(&["cannot attach", "retrying"], Duration::from_secs(10));
    assert!(screen.contains(&socket.display().to_string()), "{screen}");
    // Still there a few retries later.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(term.exit_status(Duration::from_millis(10)), None);
    term.wait_for(&["retrying"], Duration::from_secs(2));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(term.exit_status(Duration::from_secs(5)), Some(0));
    // The alternate screen is gone: the shell's screen is back, without the dashboard.
    let after = term.screen();
    assert!(!after.contains("retrying"), "{after}");
}

/// `--realtime` replays at the capture's own pace: a call of about five seconds takes about
/// five seconds, and gives the same catalog as a replay as fast as it goes.
#[test]
fn realtime_replay_keeps_the_captures_pace_and_its_output() {
    let s = Scratch::new("replay_realtime");
    let cfg = GenConfig {
        talk_secs: 4.0,
        ..GenConfig::new(Scenario::Pcmu)
    };
    let (frames, _) = generate(&cfg);
    let span = Duration::from_nanos(frames.last().unwrap().ts_ns - frames[0].ts_ns);
    let pcap = s.path().join("call.pcap");
    write_pcap(&pcap, &frames).unwrap();
    let t = std::time::Instant::now();
    let o = std::process::Command::new(voxtap())
        .args(["replay", "--realtime", "--quiet", "--out"])
        .arg(s.path().join("paced"))
        .arg(&pcap)
        .output()
        .unwrap();
    let took = t.elapsed();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        took >= span.mul_f64(0.95),
        "took {took:?} for a capture of {span:?}"
    );
    let fast = voxtap_tests::replay_ok(&s.path().join("fast"), &[&pcap]);
    assert!(fast.contains("recorded"));
    let rows = |dir: &str| -> Vec<(String, f64)> {
        catalog(&s.path().join(dir))
            .prepare("SELECT c.sip_call_id, r.duration_s FROM calls c JOIN recordings r ON r.call_id = c.id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(rows("paced"), rows("fast"));
}
