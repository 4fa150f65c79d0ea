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
    term.wait_for(&["decision: "], Duration::from_secs(5));

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
