//! How the viewer reacts to keys and to new snapshots.

mod common;

use common::*;
use ratatui::crossterm::event::KeyCode;
use voxtap_view::proto::Snapshot;
use voxtap_view::tui::{Action, App, Pane, Screen};

#[test]
fn enter_opens_the_detail_and_esc_returns() {
    let mut app = app();
    assert_eq!(app.on_key(ch('j')), Action::None);
    assert_eq!(app.selected(), Some(12));
    assert_eq!(app.wanted_detail(), None);
    assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Follow(Some(12)));
    assert_eq!(app.screen(), Screen::Detail);
    assert_eq!(app.wanted_detail(), Some(12));
    // q in the detail goes back, it does not quit.
    assert_eq!(app.on_key(key(KeyCode::Esc)), Action::Follow(None));
    assert_eq!(app.screen(), Screen::List);
    assert_eq!(app.wanted_detail(), None);
    assert_eq!(app.selected(), Some(12));
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.on_key(ch('q')), Action::Follow(None));
    assert_eq!(app.screen(), Screen::List);
}

#[test]
fn q_quits_on_the_list_and_ctrl_c_anywhere() {
    let mut app = app();
    assert_eq!(app.on_key(ch('q')), Action::Quit);
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.on_key(ctrl('c')), Action::Quit);
    let mut app = self::app();
    app.on_key(ch('/'));
    assert_eq!(
        app.on_key(ch('q')),
        Action::None,
        "q is typed into the search"
    );
    assert_eq!(app.on_key(ctrl('c')), Action::Quit);
}

#[test]
fn search_filters_rows_and_esc_cancels() {
    let mut app = app();
    assert_eq!(app.visible_calls().len(), 6);
    app.on_key(ch('/'));
    for c in "ALICE".chars() {
        app.on_key(ch(c));
    }
    // Not applied until Enter.
    assert_eq!(app.visible_calls().len(), 6);
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.visible_calls(), vec![11, 12]);
    // By Call-ID too (call 14 is "ef00d@...").
    app.on_key(ch('/'));
    for _ in 0..5 {
        app.on_key(key(KeyCode::Backspace));
    }
    for c in "ef00d".chars() {
        app.on_key(ch(c));
    }
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.visible_calls(), vec![14]);
    assert_eq!(app.selected(), Some(14));
    // Esc while typing keeps the applied search.
    app.on_key(ch('/'));
    app.on_key(ch('z'));
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.visible_calls(), vec![14]);
    // x clears it.
    app.on_key(ch('x'));
    assert_eq!(app.visible_calls().len(), 6);
}

#[test]
fn sort_changes_the_order() {
    let mut app = app();
    assert_eq!(
        app.visible_calls(),
        vec![11, 12, 14, 15, 16, 13],
        "by start"
    );
    app.on_key(ch('s')); // caller
    assert_eq!(app.visible_calls(), vec![13, 11, 12, 14, 15, 16]);
    app.on_key(ch('z'));
    assert_eq!(
        app.visible_calls(),
        vec![16, 15, 14, 11, 12, 13],
        "reversed, ties stay"
    );
    app.on_key(ch('z'));
    for _ in 0..9 {
        app.on_key(ch('s'));
    }
    // MOS, worst first; calls without RTP below all.
    assert_eq!(app.visible_calls(), vec![13, 16, 14, 11, 12, 15]);
    app.on_key(ch('<')); // jitter
    assert_eq!(app.visible_calls(), vec![13, 16, 15, 12, 11, 14]);
}

#[test]
fn filters_cycle() {
    let mut app = app();
    app.on_key(ch('f'));
    assert_eq!(app.visible_calls(), vec![14, 15, 13], "live");
    app.on_key(ch('f'));
    assert_eq!(app.visible_calls(), vec![13], "ringing");
    for _ in 0..3 {
        app.on_key(ch('f'));
    }
    assert_eq!(app.visible_calls(), vec![11, 12, 16], "ended");
    app.on_key(ch('f'));
    app.on_key(ch('F'));
    assert_eq!(app.visible_calls(), vec![15], "recording");
    for _ in 0..3 {
        app.on_key(ch('F'));
    }
    assert_eq!(app.visible_calls(), vec![16], "not recorded");
}

#[test]
fn selection_follows_the_call_across_snapshots() {
    let mut app = app();
    app.on_key(key(KeyCode::End));
    assert_eq!(app.selected(), Some(13));
    app.on_key(ch('k'));
    assert_eq!(app.selected(), Some(16));
    // Two older calls go away and a new one comes: still on call 16.
    let mut s = snapshot();
    s.calls.retain(|c| c.id != 11 && c.id != 12);
    s.calls
        .push(call(17, NOW, "peggy@example.com", "trent@example.com"));
    app.set_snapshot(s.clone());
    assert_eq!(app.visible_calls(), vec![14, 15, 16, 13, 17]);
    assert_eq!(app.selected(), Some(16));
    // Call 16 itself goes: the selection stays at its row.
    s.calls.retain(|c| c.id != 16);
    app.set_snapshot(s);
    assert_eq!(app.selected(), Some(13));
    // Moves are bounded.
    app.on_key(key(KeyCode::Home));
    app.on_key(ch('k'));
    assert_eq!(app.selected(), Some(14));
    app.on_key(key(KeyCode::PageDown));
    assert_eq!(app.selected(), Some(17));
}

#[test]
fn the_detail_cursor_and_panes() {
    let mut app = app();
    app.on_key(key(KeyCode::Enter));
    app.set_snapshot(snapshot_with_detail());
    assert_eq!(app.detail().map(|d| d.call.id), Some(11));
    app.on_key(ch('j'));
    app.on_key(key(KeyCode::Down));
    assert_eq!(app.message_cursor(), 2);
    app.on_key(key(KeyCode::End));
    assert_eq!(app.message_cursor(), 13);
    app.on_key(ch('j'));
    assert_eq!(app.message_cursor(), 13, "stays on the last");
    app.on_key(key(KeyCode::Home));
    app.on_key(ch('k'));
    assert_eq!(app.message_cursor(), 0);
    assert_eq!(app.pane(), Pane::Flow);
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.pane(), Pane::Streams);
    app.on_key(key(KeyCode::BackTab));
    app.on_key(key(KeyCode::BackTab));
    assert_eq!(app.pane(), Pane::Decision);
    app.on_key(ch('3'));
    assert_eq!(app.pane(), Pane::Timeline);
    // The detail of another call is not this one's.
    let mut s = snapshot_with_detail();
    s.detail.as_mut().unwrap().call.id = 99;
    app.set_snapshot(s);
    assert!(app.detail().is_none());
}

#[test]
fn help_opens_and_any_key_closes_it() {
    let mut app = app();
    app.on_key(key(KeyCode::F(1)));
    assert!(app.help_shown());
    assert_eq!(
        app.on_key(ch('q')),
        Action::None,
        "q closes the help, not the viewer"
    );
    assert!(!app.help_shown());
    app.on_key(ch('?'));
    assert!(app.help_shown());
    app.on_key(key(KeyCode::Esc));
    assert!(!app.help_shown());
}

#[test]
fn recordings_screen() {
    let mut app = app();
    app.on_key(ch('r'));
    assert_eq!(app.screen(), Screen::Recordings);
    assert_eq!(app.on_key(ch('q')), Action::None);
    assert_eq!(app.screen(), Screen::List);
}

#[test]
fn saving_needs_the_detail() {
    let mut app = App::with_save_dir(std::env::temp_dir());
    app.set_snapshot(snapshot());
    match app.on_key(ch('w')) {
        Action::Saved(Err(e)) => assert!(e.contains("not loaded"), "{e}"),
        other => panic!("{other:?}"),
    }
    app.on_key(key(KeyCode::Enter));
    match app.on_key(ch('w')) {
        Action::Saved(Err(e)) => assert!(e.contains("not arrived"), "{e}"),
        other => panic!("{other:?}"),
    }
    let empty = App::new();
    let mut empty = empty;
    empty.set_snapshot(Snapshot::default());
    assert_eq!(
        empty.on_key(ch('w')),
        Action::Saved(Err("no call selected".into()))
    );
}

/// Moves the selection down to call `id`.
fn select(app: &mut App, id: u64) {
    for _ in 0..20 {
        if app.selected() == Some(id) {
            return;
        }
        app.on_key(ch('j'));
    }
    panic!("call {id} is not in the list");
}

#[test]
fn p_and_r_control_the_selected_calls_recording_through_the_control_socket() {
    use std::sync::{Arc, Mutex};
    let asked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = Arc::clone(&asked);
    let mut app = app().with_control(Box::new(move |action, call| {
        log.lock().unwrap().push((action.into(), call.into()));
        Ok("ok".into())
    }));
    let sip = |app: &App, id: u64| {
        app.snapshot()
            .unwrap()
            .calls
            .iter()
            .find(|c| c.id == id)
            .unwrap()
            .sip_call_id
            .clone()
    };
    // 14 is paused: p resumes it, R stops it.
    select(&mut app, 14);
    assert_eq!(
        app.on_key(ch('p')),
        Action::Controlled(Ok("resume call 14: ok".into()))
    );
    assert!(matches!(app.on_key(ch('R')), Action::Controlled(Ok(_))));
    // 15 is recording: p pauses it.
    select(&mut app, 15);
    assert!(matches!(app.on_key(ch('p')), Action::Controlled(Ok(_))));
    let (s14, s15) = (sip(&app, 14), sip(&app, 15));
    assert_eq!(
        *asked.lock().unwrap(),
        [
            ("resume".to_string(), s14.clone()),
            ("stop".to_string(), s14),
            ("pause".to_string(), s15),
        ]
    );
    // An ended call is not asked about.
    select(&mut app, 16);
    match app.on_key(ch('R')) {
        Action::Controlled(Err(e)) => assert!(e.contains("has ended"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(asked.lock().unwrap().len(), 3);
}

#[test]
fn a_viewer_without_the_control_socket_says_so() {
    let mut app = app();
    select(&mut app, 15);
    match app.on_key(ch('p')) {
        Action::Controlled(Err(e)) => assert!(e.contains("may not control"), "{e}"),
        other => panic!("{other:?}"),
    }
}
