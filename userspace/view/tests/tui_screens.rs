//! Every screen of the dashboard drawn on the fixture, compared with
//! `tests/snapshots/*.txt`. `BLESS=1 cargo test -p voxtap-view --test tui_screens` rewrites
//! those files from what is drawn; review each by eye before committing (they are the spec).

mod common;

use common::*;
use ratatui::crossterm::event::KeyCode;
use voxtap_view::proto::Snapshot;

fn detail_app() -> voxtap_view::tui::App {
    let mut app = app();
    app.on_key(key(KeyCode::Enter)); // call 11, the first
    app.set_snapshot(snapshot_with_detail());
    app
}

#[test]
fn list() {
    check("list_120x40", &render(&app(), 120, 40));
}

#[test]
fn list_small() {
    check("list_80x24", &render(&app(), 80, 24));
}

#[test]
fn list_replay_finished() {
    let mut app = app();
    app.set_snapshot(Snapshot {
        mode: "replay".into(),
        source: "capture-1.pcap, capture-2.pcap".into(),
        progress: Some(1.0),
        finished: true,
        ..snapshot()
    });
    check("list_replay", &render(&app, 100, 30));
}

#[test]
fn no_snapshot_yet() {
    check(
        "no_snapshot",
        &render(&voxtap_view::tui::App::new(), 80, 24),
    );
}

#[test]
fn detail_flow() {
    let app = detail_app();
    check("detail_flow_120x40", &render(&app, 120, 40));
}

#[test]
fn detail_flow_cursor_moved_and_wide() {
    let mut app = detail_app();
    for _ in 0..4 {
        app.on_key(ch('j'));
    }
    check("detail_flow_160x45", &render(&app, 160, 45));
}

#[test]
fn detail_flow_scrolls_with_the_cursor() {
    let mut app = detail_app();
    app.on_key(key(KeyCode::End));
    check("detail_flow_end_80x24", &render(&app, 80, 24));
}

#[test]
fn detail_panes() {
    let mut app = detail_app();
    app.on_key(ch('2'));
    check("detail_streams", &render(&app, 120, 30));
    app.on_key(key(KeyCode::Tab));
    check("detail_timeline", &render(&app, 100, 24));
    app.on_key(ch('4'));
    check("detail_decision", &render(&app, 100, 24));
}

#[test]
fn detail_waiting() {
    let mut app = app();
    app.on_key(key(KeyCode::Enter));
    check("detail_waiting", &render(&app, 100, 24));
}

#[test]
fn help() {
    let mut app = app();
    app.on_key(ch('?'));
    check("help", &render(&app, 100, 40));
}

#[test]
fn search() {
    let mut app = app();
    app.on_key(ch('/'));
    for c in "example.org".chars() {
        app.on_key(ch(c));
    }
    check("search_typing", &render(&app, 100, 24));
    app.on_key(key(KeyCode::Enter));
    check("search_applied", &render(&app, 100, 24));
}

#[test]
fn filter() {
    let mut app = app();
    app.on_key(ch('f')); // live
    app.on_key(ch('F')); // recording
    check("filter_live_recording", &render(&app, 100, 24));
}

#[test]
fn banner() {
    let mut app = app();
    app.set_status(Some(
        "daemon gone (connection refused); retrying every 1 s".into(),
    ));
    check("banner_daemon_gone", &render(&app, 100, 24));
}

#[test]
fn recordings() {
    let mut app = app();
    app.on_key(ch('r'));
    check("recordings", &render(&app, 100, 20));
}

#[test]
fn tiny() {
    check("tiny_30x8", &render(&app(), 30, 8));
}

#[test]
fn saved_note() {
    let mut app = voxtap_view::tui::App::with_save_dir("/nonexistent-voxtap-dir");
    app.set_snapshot(snapshot());
    app.on_key(ch('w'));
    check("save_refused", &render(&app, 100, 20));
}

#[test]
fn a_list_the_daemon_cut_says_how_many_calls_there_are() {
    let mut app = app();
    let s = snapshot();
    app.set_snapshot(Snapshot {
        calls_total: 9000,
        ..s.clone()
    });
    let screen = render(&app, 120, 40);
    assert!(screen.contains("(newest of 9000)"), "{screen}");
    app.set_snapshot(s);
    assert!(!render(&app, 120, 40).contains("newest of"));
}
