//! Every screen drawn at many sizes, from 1x1 up: none may panic.

mod common;

use common::*;
use ratatui::crossterm::event::KeyCode;
use voxtap_view::proto::Snapshot;
use voxtap_view::tui::App;

/// A viewer on each screen and pane, with and without the banner, help and search.
fn screens() -> Vec<(&'static str, App)> {
    let mut out = Vec::new();
    out.push(("empty", App::new()));
    out.push(("list", app()));
    let mut a = app();
    a.set_status(Some(
        "daemon gone (connection refused); retrying every 1 s".into(),
    ));
    out.push(("banner", a));
    let mut a = app();
    a.on_key(ch('?'));
    out.push(("help", a));
    let mut a = app();
    a.on_key(ch('/'));
    a.on_key(ch('x'));
    out.push(("search", a));
    let mut a = app();
    a.on_key(ch('r'));
    out.push(("recordings", a));
    let mut a = app();
    a.on_key(key(KeyCode::Enter));
    out.push(("waiting", a));
    for (name, k) in [
        ("flow", '1'),
        ("streams", '2'),
        ("timeline", '3'),
        ("decision", '4'),
    ] {
        let mut a = app();
        a.on_key(key(KeyCode::Enter));
        a.set_snapshot(snapshot_with_detail());
        a.on_key(ch(k));
        a.on_key(key(KeyCode::End));
        out.push((name, a));
    }
    // Degenerate data: no calls, no workers, empty strings, huge and odd numbers.
    let mut a = App::new();
    let mut s = Snapshot {
        uptime_s: f64::NAN,
        now: -5.0,
        progress: Some(7.0),
        ..Snapshot::default()
    };
    s.workers = vec![Default::default(); 40];
    s.calls = vec![Default::default(); 3];
    s.calls[0].mos = Some(f64::INFINITY);
    s.calls[0].caller = "\u{1F600}wide\u{4E2D}文字\r\n\t".into();
    s.drops.queue_full = u64::MAX;
    a.set_snapshot(s.clone());
    out.push(("odd", a));
    let mut a = App::new();
    let mut d = detail();
    d.messages.truncate(1);
    d.messages[0].dst = d.messages[0].src.clone();
    d.messages[0].text = "x".repeat(9000);
    d.legs.clear();
    d.streams.clear();
    d.timeline.clear();
    d.decision.clear();
    let mut s = snapshot();
    s.detail = Some(d);
    a.set_snapshot(s);
    a.on_key(key(KeyCode::Enter));
    out.push(("self-message", a));
    out
}

#[test]
fn no_size_panics() {
    for (name, mut app) in screens() {
        for w in (1..=120u16).step_by(7).chain([59, 60, 61, 139, 140, 200]) {
            for h in (1..=50u16).step_by(3).chain([15, 16, 17]) {
                let text = render(&app, w, h);
                assert_eq!(text.lines().count(), h as usize, "{name} at {w}x{h}");
            }
        }
        // Scrolling keys after drawing at a small size stay in bounds.
        for k in [
            KeyCode::PageDown,
            KeyCode::Char('J'),
            KeyCode::End,
            KeyCode::Down,
        ] {
            app.on_key(key(k));
        }
        render(&app, 60, 16);
    }
}

#[test]
fn too_small_says_so() {
    let text = render(&app(), 59, 30);
    assert!(
        text.starts_with("terminal too small\n59x30, need 60x16"),
        "{text}"
    );
    let text = render(&app(), 60, 15);
    assert!(text.starts_with("terminal too small"), "{text}");
    assert!(!render(&app(), 60, 16).contains("too small"));
    assert_eq!(render(&app(), 1, 1), "…\n");
}
