//! `run()` on a real terminal. It needs a tty, so it is ignored by default; run it by hand in a
//! terminal (or tmux) with
//! `cargo test -p voxtap-view --test tui_run -- --ignored --nocapture`:
//! it shows the fixture for about 3 s (keys work), then stops as SIGTERM would, and checks that
//! the loop returned.

mod common;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use voxtap_view::tui::{Feed, FeedEvent, run};

struct Script {
    start: Instant,
    polls: u32,
    stop: Arc<AtomicBool>,
    followed: Vec<Option<u64>>,
}

impl Feed for Script {
    fn poll(&mut self, timeout: Duration) -> FeedEvent {
        std::thread::sleep(timeout);
        self.polls += 1;
        let t = self.start.elapsed().as_secs_f64();
        if t > 3.0 {
            self.stop.store(true, Ordering::Relaxed);
        }
        match self.polls % 10 {
            0 if t > 1.5 => FeedEvent::Status(Some(
                "daemon gone (connection refused); retrying every 1 s".into(),
            )),
            0 => FeedEvent::Status(None),
            5 => {
                let mut s = snapshot_with_detail();
                s.uptime_s += t;
                s.now += t;
                s.workers[0].rtp_pps = 3000.0 + 3000.0 * (t * 2.0).sin().abs();
                FeedEvent::Snapshot(s)
            }
            _ => FeedEvent::Nothing,
        }
    }

    fn follow(&mut self, call: Option<u64>) {
        self.followed.push(call);
    }
}

#[test]
#[ignore = "needs a terminal"]
fn run_until_stopped() {
    if !std::io::stdout().is_terminal() {
        println!("SKIPPED: stdout is not a terminal");
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut feed = Script {
        start: Instant::now(),
        polls: 0,
        stop: Arc::clone(&stop),
        followed: Vec::new(),
    };
    run(&mut feed, &stop).expect("run");
    assert!(stop.load(Ordering::Relaxed));
    assert!(feed.polls > 10);
    println!(
        "run returned after {} polls; followed {:?}",
        feed.polls, feed.followed
    );
}

struct Panics;

impl Feed for Panics {
    fn poll(&mut self, _: Duration) -> FeedEvent {
        panic!("the feed broke");
    }

    fn follow(&mut self, _: Option<u64>) {}
}

/// A panic inside the loop: the hook restores the terminal before the panic is printed, and
/// the panic goes on to the caller.
#[test]
#[ignore = "needs a terminal"]
fn a_panic_restores_the_terminal() {
    if !std::io::stdout().is_terminal() {
        println!("SKIPPED: stdout is not a terminal");
        return;
    }
    let stop = AtomicBool::new(false);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut Panics, &stop)));
    let e = r.expect_err("the feed's panic reaches the caller");
    assert_eq!(e.downcast_ref::<&str>(), Some(&"the feed broke"));
    assert!(
        !ratatui::crossterm::terminal::is_raw_mode_enabled().unwrap(),
        "raw mode left on"
    );
    println!("restored after the panic");
}
